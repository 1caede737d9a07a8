//! Text values into typed fields: the one decoder behind [`Path`](super::Path),
//! [`Query`](super::Query) and [`Form`](super::Form).
//!
//! Each value is percent-decoded text. A field takes it as text, or parses
//! it (`FromStr`) into a number, `bool` or `char`; a unit enum variant is
//! picked by name; an empty value is `None` for an `Option` (HTML forms send
//! empty fields). This is what `serde_urlencoded` does, except for the
//! empty-`Option` rule (which is `serde_html_form`'s).

use std::borrow::Cow;
use std::fmt::Display;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::value::{CowStrDeserializer, Error as DeError, MapDeserializer};
use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

/// One text value; `E` is the error type of the deserializer using it.
pub(crate) struct Text<'de, E> {
    value: Cow<'de, str>,
    error: PhantomData<E>,
}

impl<'de, E> Text<'de, E> {
    pub(crate) fn new(value: impl Into<Cow<'de, str>>) -> Self {
        Text {
            value: value.into(),
            error: PhantomData,
        }
    }
}

impl<E: de::Error> Text<'_, E> {
    fn parse<T: FromStr>(&self) -> Result<T, E>
    where
        T::Err: Display,
    {
        self.value.parse().map_err(|e| {
            E::custom(format_args!(
                "cannot parse {:?} as {}: {e}",
                self.value,
                short_type_name::<T>()
            ))
        })
    }
}

/// `T`'s name without module paths: `NonZero<u32>`, not
/// `core::num::nonzero::NonZero<u32>`.
fn short_type_name<T>() -> String {
    let mut name = String::new();
    for piece in std::any::type_name::<T>().split_inclusive(['<', '>', ',', ' ']) {
        name.push_str(piece.rsplit("::").next().unwrap_or(piece));
    }
    name
}

/// Deserialises `T` from (name, value) pairs, e.g. a decoded query string.
pub(crate) fn from_pairs<'de, T, I>(pairs: I) -> Result<T, DeError>
where
    T: Deserialize<'de>,
    I: Iterator<Item = (Cow<'de, str>, Cow<'de, str>)>,
{
    T::deserialize(MapDeserializer::new(pairs.map(|(k, v)| (Text::new(k), Text::new(v)))))
}

impl<'de, E: de::Error> IntoDeserializer<'de, E> for Text<'de, E> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! parsed {
    ($($method:ident => $visit:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
            visitor.$visit(self.parse()?)
        }
    )*};
}

impl<'de, E: de::Error> Deserializer<'de> for Text<'de, E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.value {
            Cow::Borrowed(s) => visitor.visit_borrowed_str(s),
            Cow::Owned(s) => visitor.visit_string(s),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        if self.value.is_empty() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, E> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        let text: CowStrDeserializer<'de, E> = self.value.into_deserializer();
        text.deserialize_enum(name, variants, visitor)
    }

    parsed!(
        deserialize_bool => visit_bool, deserialize_char => visit_char,
        deserialize_i8 => visit_i8, deserialize_i16 => visit_i16, deserialize_i32 => visit_i32,
        deserialize_i64 => visit_i64, deserialize_i128 => visit_i128,
        deserialize_u8 => visit_u8, deserialize_u16 => visit_u16, deserialize_u32 => visit_u32,
        deserialize_u64 => visit_u64, deserialize_u128 => visit_u128,
        deserialize_f32 => visit_f32, deserialize_f64 => visit_f64
    );

    forward_to_deserialize_any! {
        str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    fn decode<T: for<'de> Deserialize<'de>>(pairs: &[(&str, &str)]) -> Result<T, DeError> {
        from_pairs(pairs.iter().map(|(k, v)| (Cow::Borrowed(*k), Cow::Borrowed(*v))))
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Order {
        Asc,
        Desc,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Search {
        q: String,
        page: Option<u32>,
        exact: Option<bool>,
        order: Order,
        #[serde(default)]
        limit: u8,
    }

    #[test]
    fn values_parse_into_their_fields() {
        let search: Search = decode(&[("q", "a b"), ("page", "3"), ("exact", "true"), ("order", "desc")]).unwrap();
        assert_eq!(
            search,
            Search {
                q: "a b".into(),
                page: Some(3),
                exact: Some(true),
                order: Order::Desc,
                limit: 0
            }
        );
        let search: Search = decode(&[("q", ""), ("page", ""), ("order", "asc")]).unwrap();
        assert_eq!((search.q.as_str(), search.page, search.order), ("", None, Order::Asc));
    }

    #[test]
    fn mismatches_say_what_and_why() {
        let error = decode::<Search>(&[("q", "x"), ("page", "two"), ("order", "asc")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot parse \"two\" as u32: invalid digit found in string"
        );
        let error = decode::<Search>(&[("q", "x"), ("order", "sideways")]).unwrap_err();
        assert!(error.to_string().contains("unknown variant `sideways`"), "{error}");
        let error = decode::<Search>(&[("order", "asc")]).unwrap_err();
        assert_eq!(error.to_string(), "missing field `q`");
        let error = decode::<Search>(&[("q", "1"), ("q", "2"), ("order", "asc")]).unwrap_err();
        assert_eq!(error.to_string(), "duplicate field `q`");
    }

    #[test]
    fn type_names_lose_their_paths() {
        assert_eq!(short_type_name::<u32>(), "u32");
        assert_eq!(short_type_name::<std::num::NonZeroU32>(), "NonZero<u32>");
        assert_eq!(short_type_name::<Option<String>>(), "Option<String>");
    }

    #[test]
    fn maps_and_pair_lists_take_everything() {
        let map: BTreeMap<String, i64> = decode(&[("a", "1"), ("b", "-2")]).unwrap();
        assert_eq!(map, BTreeMap::from([("a".into(), 1), ("b".into(), -2)]));
        let pairs: Vec<(String, String)> = decode(&[("a", "1"), ("a", "2")]).unwrap();
        assert_eq!(pairs, [("a".into(), "1".into()), ("a".into(), "2".into())]);
    }
}
