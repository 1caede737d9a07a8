//! `Path<T>`: the route's path parameters, typed.

use std::sync::Arc;

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::forward_to_deserialize_any;

use super::text::Text;
use super::{FromRequestRef, Rejection};
use crate::request::Request;

/// The path parameters of the route (`/accounts/{id}`), percent-decoded and
/// parsed into `T` with serde:
///
/// * one parameter into a single value: `Path(id): Path<u64>`;
/// * several, in pattern order, into a tuple: `Path((user, post)): Path<(String, u32)>`;
/// * by name into a struct (or a map): `Path(p): Path<Params>`.
///
/// Values parse as [`Query`](crate::Query) values do. A value that does not
/// parse is a `400` [`Rejection::InvalidPath`]; a type that takes another
/// number of parameters than the route has is a mistake in the app, and a
/// `500` ([`Rejection::PathParameterCount`]).
///
/// ```
/// use crabcat_sdk::prelude::*;
///
/// #[derive(serde::Deserialize)]
/// struct Post {
///     user: String,
///     number: u32,
/// }
///
/// // routes.get("/users/{user}/posts/{number}", show)
/// async fn show(Path(post): Path<Post>) -> String {
///     format!("post {} of {}", post.number, post.user)
/// }
///
/// // The same route, as a tuple:
/// async fn show_tuple(Path((user, number)): Path<(String, u32)>) -> String {
///     format!("post {number} of {user}")
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Path<T>(pub T);

impl<A, T: DeserializeOwned> FromRequestRef<A> for Path<T> {
    type Rejection = Rejection;

    fn from_request_ref(req: &Request, _app: &Arc<A>) -> Result<Self, Rejection> {
        let params: Vec<(&str, &str)> = req.params().collect();
        T::deserialize(PathDeserializer { params: &params })
            .map(Path)
            .map_err(PathError::into_rejection)
    }
}

/// What can go wrong while deserialising path parameters.
#[derive(Debug, thiserror::Error)]
enum PathError {
    #[error("the handler takes {expected} path parameters, its route has {found}")]
    Count { expected: usize, found: usize },
    #[error("{0}")]
    Value(String),
}

impl de::Error for PathError {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        PathError::Value(message.to_string())
    }
}

impl PathError {
    fn into_rejection(self) -> Rejection {
        match self {
            PathError::Count { expected, found } => Rejection::PathParameterCount { expected, found },
            PathError::Value(message) => Rejection::InvalidPath(de::Error::custom(message)),
        }
    }
}

/// Picks the shape from what `T` asks for: a map, a sequence, or one value.
struct PathDeserializer<'a, 'de> {
    params: &'a [(&'de str, &'de str)],
}

impl<'de> PathDeserializer<'_, 'de> {
    /// The only parameter, for a single value.
    fn single(&self) -> Result<Text<'de, PathError>, PathError> {
        match self.params {
            [(_, value)] => Ok(Text::new(*value)),
            _ => Err(self.count(1)),
        }
    }

    fn count(&self, expected: usize) -> PathError {
        PathError::Count {
            expected,
            found: self.params.len(),
        }
    }

    fn visit_values<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        visitor.visit_seq(SeqDeserializer::new(self.params.iter().map(|(_, v)| Text::new(*v))))
    }
}

/// Single values: delegated to the only parameter.
macro_rules! single {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
            self.single()?.$method(visitor)
        }
    )*};
}

impl<'de> Deserializer<'de> for PathDeserializer<'_, 'de> {
    type Error = PathError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        let pairs = self.params.iter().map(|(k, v)| (Text::new(*k), Text::new(*v)));
        visitor.visit_map(MapDeserializer::new(pairs))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        self.visit_values(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, PathError> {
        if len != self.params.len() {
            return Err(self.count(len));
        }
        self.visit_values(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, PathError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PathError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PathError> {
        self.single()?.deserialize_enum(name, variants, visitor)
    }

    single!(
        deserialize_bool,
        deserialize_char,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit
    );

    forward_to_deserialize_any! { unit_struct map struct identifier ignored_any }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::Deserialize;

    use super::*;
    use crate::ffi::testing::TestRequest;

    fn extract<T: DeserializeOwned>(params: &[(&str, &str)]) -> Result<T, Rejection> {
        let req = params
            .iter()
            .fold(TestRequest::get("/"), |r, (k, v)| r.param(k, v))
            .build();
        Path::<T>::from_request_ref(&req, &Arc::new(())).map(|Path(t)| t)
    }

    #[test]
    fn one_parameter_into_a_value() {
        assert_eq!(extract::<String>(&[("name", "Jürgen X")]).unwrap(), "Jürgen X");
        assert_eq!(extract::<u64>(&[("id", "42")]).unwrap(), 42);
        let error = extract::<u64>(&[("id", "x")]).unwrap_err();
        assert_eq!(error.status().as_u16(), 400);
        assert_eq!(
            crate::Error::from(error).message(),
            "invalid path parameter: cannot parse \"x\" as u64: invalid digit found in string"
        );
    }

    #[test]
    fn several_into_a_tuple_or_a_struct() {
        let params = [("user", "ann"), ("number", "7")];
        assert_eq!(extract::<(String, u32)>(&params).unwrap(), ("ann".to_owned(), 7));
        #[derive(Debug, PartialEq, Deserialize)]
        struct Post {
            number: u32,
            user: String,
        }
        let expected = Post {
            number: 7,
            user: "ann".into(),
        };
        assert_eq!(extract::<Post>(&params).unwrap(), expected, "by name, in any order");
        let map: HashMap<String, String> = extract(&params).unwrap();
        assert_eq!(map["user"], "ann");
    }

    #[test]
    fn a_type_that_does_not_fit_the_route_is_a_500() {
        let error = extract::<String>(&[("a", "1"), ("b", "2")]).unwrap_err();
        assert!(
            matches!(error, Rejection::PathParameterCount { expected: 1, found: 2 }),
            "{error:?}"
        );
        assert_eq!(error.status().as_u16(), 500);
        let error = extract::<(String, String, String)>(&[("a", "1")]).unwrap_err();
        assert!(matches!(error, Rejection::PathParameterCount { expected: 3, found: 1 }));
        assert!(matches!(extract::<u8>(&[]), Err(Rejection::PathParameterCount { .. })));
    }
}
