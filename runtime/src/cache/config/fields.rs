//! The field names serde's derive gives a struct, read from serde itself: deserializing a struct
//! hands its field list to `Deserializer::deserialize_struct`, so a deserializer that records
//! that list and stops answers "which keys does this type take?" with no hand-kept copy.

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The names (serde's spelling, after `rename`) of the fields `T` deserializes from, or `None`
/// when `T` is not read as a plain struct (a map, an enum, a struct with `#[serde(flatten)]`,
/// which serde reads as a map).
pub fn serde_fields<T: for<'de> Deserialize<'de>>() -> Option<&'static [&'static str]> {
    let mut fields = None;
    // The capture always ends in an error: it only wanted the field list.
    let _ = T::deserialize(FieldCapture { fields: &mut fields });
    fields
}

/// A deserializer that records the field list of the struct asked of it and then fails.
struct FieldCapture<'a> {
    fields: &'a mut Option<&'static [&'static str]>,
}

/// Why the capture stopped (never shown: [`serde_fields`] discards it).
#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field capture ends here")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for FieldCapture<'_> {
    type Error = Stop;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        *self.fields = Some(fields);
        Err(Stop)
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)] // only its field list is read
    struct Plain {
        a: u8,
        #[serde(rename = "Bee")]
        b: u8,
        #[serde(skip)]
        c: u8,
    }

    #[derive(serde::Deserialize)]
    #[allow(dead_code)] // only its field list is read
    struct Flattened {
        a: u8,
        #[serde(flatten)]
        rest: std::collections::BTreeMap<String, u8>,
    }

    #[test]
    fn fields_are_serdes_spelling_without_skipped_ones() {
        assert_eq!(serde_fields::<Plain>(), Some(&["a", "Bee"][..]));
        assert_eq!(serde_fields::<Flattened>(), None);
        assert_eq!(serde_fields::<u8>(), None);
    }
}
