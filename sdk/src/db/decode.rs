//! Rows into Rust types with serde (what [`Row::decode`] runs): a struct or
//! a map by column name, a tuple by column position, or one value from a
//! row of one column.
//!
//! Values convert as [`Row::get`] converts them: integers into any integer
//! type they fit (and into floats), floats, text (also into unit enum
//! variants), bytes (`Vec<u8>`), booleans (also from the integers 0 and 1,
//! SQLite's booleans), and `NULL` into `None`.

use serde::de::value::{BorrowedStrDeserializer, Error as DecodeError, SeqDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;

use super::{Row, Value};

/// Deserialises one row.
pub(super) struct RowDeserializer<'de> {
    row: &'de Row,
}

impl<'de> RowDeserializer<'de> {
    pub(super) fn new(row: &'de Row) -> Self {
        RowDeserializer { row }
    }

    /// The only value of a one-column row.
    fn single(&self) -> Result<ValueDeserializer<'de>, DecodeError> {
        match self.row.values() {
            [value] => Ok(ValueDeserializer(value)),
            values => Err(de::Error::custom(format_args!(
                "expected a row of one column, found {} columns (decode into a struct or a tuple)",
                values.len()
            ))),
        }
    }

    fn columns(&self) -> Columns<'de> {
        Columns { row: self.row, next: 0 }
    }

    /// Visits the values in order; a tuple must take every column.
    fn visit_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let mut columns = self.columns();
        let value = visitor.visit_seq(&mut columns)?;
        let found = self.row.values().len();
        if columns.next != found {
            return Err(de::Error::custom(format_args!(
                "the row has {found} columns, the tuple takes {}",
                columns.next
            )));
        }
        Ok(value)
    }
}

/// The primitive methods decode a one-column row's value.
macro_rules! single_column {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            self.single()?.$method(visitor)
        }
    )*};
}

impl<'de> Deserializer<'de> for RowDeserializer<'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_map(self.columns())
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.visit_seq(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DecodeError> {
        self.visit_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.visit_seq(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.single()?.deserialize_enum(name, variants, visitor)
    }

    single_column!(
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit
    );

    forward_to_deserialize_any! { i128 u128 unit_struct map struct identifier ignored_any }
}

/// The columns of a row, as a map (name → value) or a sequence of values.
struct Columns<'de> {
    row: &'de Row,
    next: usize,
}

impl Columns<'_> {
    /// Puts the column's name in front of a value's decoding error.
    fn in_column(&self, index: usize, error: DecodeError) -> DecodeError {
        match self.row.columns().get(index) {
            Some(name) => de::Error::custom(format_args!("column {name:?}: {error}")),
            None => error,
        }
    }
}

impl<'de> MapAccess<'de> for Columns<'de> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DecodeError> {
        let Some(name) = self.row.columns().get(self.next) else {
            return Ok(None);
        };
        seed.deserialize(BorrowedStrDeserializer::new(name)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DecodeError> {
        let index = self.next;
        self.next += 1;
        let value = self.row.values().get(index).unwrap_or(&Value::Null);
        seed.deserialize(ValueDeserializer(value))
            .map_err(|e| self.in_column(index, e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.row.values().len() - self.next)
    }
}

impl<'de> SeqAccess<'de> for Columns<'de> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DecodeError> {
        let index = self.next;
        let Some(value) = self.row.values().get(index) else {
            return Ok(None);
        };
        self.next += 1;
        seed.deserialize(ValueDeserializer(value))
            .map(Some)
            .map_err(|e| self.in_column(index, e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.row.values().len() - self.next)
    }
}

/// Deserialises one column value.
struct ValueDeserializer<'de>(&'de Value);

/// Integers also come from booleans (PostgreSQL's), as in [`Row::get`].
macro_rules! integer {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            match self.0 {
                Value::Bool(b) => visitor.visit_i64(i64::from(*b)),
                _ => self.deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for ValueDeserializer<'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Int(n) => visitor.visit_i64(*n),
            Value::Float(x) => visitor.visit_f64(*x),
            Value::Text(s) => visitor.visit_borrowed_str(s),
            Value::Bytes(b) => visitor.visit_borrowed_bytes(b),
            Value::Bool(b) => visitor.visit_bool(*b),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    /// SQLite keeps booleans as the integers 0 and 1.
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Int(0) => visitor.visit_bool(false),
            Value::Int(1) => visitor.visit_bool(true),
            _ => self.deserialize_any(visitor),
        }
    }

    integer!(
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64
    );

    /// `Vec<u8>` deserialises from a sequence of bytes.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Bytes(b) => visitor.visit_seq(SeqDeserializer::new(b.iter().copied())),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    /// Text into a unit variant of the same name.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Text(s) => {
                let text: BorrowedStrDeserializer<'de, DecodeError> = BorrowedStrDeserializer::new(s);
                text.deserialize_enum(name, variants, visitor)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    forward_to_deserialize_any! {
        i128 u128 f32 f64 char str string bytes byte_buf unit unit_struct tuple tuple_struct map struct identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests;
