//! An event's attributes as a JSON tree that borrows from the payload, handed to tantivy as
//! the `fields` value without being copied first.
//!
//! Parsing the payload into tantivy's `OwnedValue` allocated a string for every key and
//! value, only for tantivy to copy each into the document and drop the tree: that was an
//! eighth of an event's indexing instructions (callgrind). Here strings without escapes are
//! slices of the payload; only objects and arrays allocate.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use tantivy::schema::document::{ReferenceValue, ReferenceValueLeaf, Value};
use tantivy::DateTime;

/// A JSON value whose strings borrow from the text it was parsed from where they can.
#[derive(Clone, Debug, PartialEq)]
pub enum Attribute<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'a, str>),
    Array(Vec<Attribute<'a>>),
    Object(Entries<'a>),
}

/// An object's entries, in the payload's order; keys borrowed where they can be.
pub type Entries<'a> = Vec<(Cow<'a, str>, Attribute<'a>)>;

impl Attribute<'_> {
    /// The value as tantivy indexes it (times as dates), in tantivy's own tree.
    pub fn indexed(&self) -> tantivy::schema::OwnedValue {
        self.as_value().into()
    }

    /// The number, whichever kind JSON wrote it as.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Attribute::F64(n) => Some(*n),
            Attribute::I64(n) => Some(*n as f64),
            Attribute::U64(n) => Some(*n as f64),
            _ => None,
        }
    }
}

/// What tantivy indexes: strings that are RFC 3339 times become dates, as Elasticsearch's
/// date detection maps them (one term each, matched by `fields.fetched_at:"…"` to the
/// second, where the default tokenizer cut a time into digit runs nobody searches for).
/// Judged here, as tantivy reads each value once, so the times left out of `fields` are
/// never parsed.
impl<'a, 'text: 'a> Value<'a> for &'a Attribute<'text> {
    type ArrayIter = std::slice::Iter<'a, Attribute<'text>>;
    type ObjectIter = EntryIter<'a, 'text>;

    fn as_value(&self) -> ReferenceValue<'a, Self> {
        match self {
            Attribute::Null => ReferenceValueLeaf::Null.into(),
            Attribute::Bool(b) => ReferenceValueLeaf::Bool(*b).into(),
            Attribute::U64(n) => ReferenceValueLeaf::U64(*n).into(),
            Attribute::I64(n) => ReferenceValueLeaf::I64(*n).into(),
            Attribute::F64(n) => ReferenceValueLeaf::F64(*n).into(),
            Attribute::Str(text) => match parse_time(text) {
                Some(at) => ReferenceValueLeaf::Date(at).into(),
                None => ReferenceValueLeaf::Str(text).into(),
            },
            Attribute::Array(items) => ReferenceValue::Array(items.iter()),
            Attribute::Object(entries) => ReferenceValue::Object(EntryIter(entries.iter())),
        }
    }
}

/// An object's entries as tantivy walks them.
pub struct EntryIter<'a, 'text>(std::slice::Iter<'a, (Cow<'text, str>, Attribute<'text>)>);

impl<'a, 'text> Iterator for EntryIter<'a, 'text> {
    type Item = (&'a str, &'a Attribute<'text>);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(key, value)| (key.as_ref(), value))
    }
}

/// The date an RFC 3339 string names, if it is one.
fn parse_time(text: &str) -> Option<DateTime> {
    let b = text.as_bytes();
    // Most strings are not times: the shape is checked before the parser runs.
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    let at = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(DateTime::from_timestamp_nanos(at.timestamp_nanos_opt()?))
}

impl<'de> Deserialize<'de> for Attribute<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AttributeVisitor)
    }
}

struct AttributeVisitor;

impl<'de> Visitor<'de> for AttributeVisitor {
    type Value = Attribute<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Attribute::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Attribute::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Attribute::Bool(b))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Attribute::U64(n))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Attribute::I64(n))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        Ok(Attribute::F64(n))
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Attribute::Str(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Attribute::Str(Cow::Owned(text.to_string())))
    }

    fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
        Ok(Attribute::Str(Cow::Owned(text)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Attribute::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(key) = map.next_key_seed(Key)? {
            entries.push((key, map.next_value()?));
        }
        Ok(Attribute::Object(entries))
    }
}

/// A key, borrowed where it can be (a derived `Cow<str>` always copies).
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(text))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(text.to_string()))
    }

    fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::schema::OwnedValue;

    fn indexed(json: &str) -> OwnedValue {
        serde_json::from_str::<Attribute>(json).unwrap().indexed()
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let parsed: Attribute =
            serde_json::from_str(r#"{"plain":"a b","esc\"aped":"x\ny"}"#).unwrap();
        let Attribute::Object(entries) = parsed else {
            unreachable!("an object")
        };
        assert!(matches!(entries[0].0, Cow::Borrowed("plain")));
        assert!(matches!(
            &entries[0].1,
            Attribute::Str(Cow::Borrowed("a b"))
        ));
        assert_eq!(entries[1].0, "esc\"aped");
        assert_eq!(entries[1].1, Attribute::Str(Cow::Owned("x\ny".into())));
    }

    #[test]
    fn tantivy_sees_the_same_values_as_json_wrote_with_times_as_dates() {
        assert_eq!(
            indexed(r#"[-3, 18446744073709551615, 27.5, true, null, "Clear"]"#),
            OwnedValue::Array(vec![
                OwnedValue::I64(-3),
                OwnedValue::U64(u64::MAX),
                OwnedValue::F64(27.5),
                OwnedValue::Bool(true),
                OwnedValue::Null,
                OwnedValue::Str("Clear".into()),
            ])
        );
        assert_eq!(
            indexed(r#"{"at":"2026-11-25T13:00:00+01:00","odd":"2026-13-45T99:00:00Z"}"#),
            OwnedValue::Object(vec![
                (
                    "at".into(),
                    OwnedValue::Date(DateTime::from_timestamp_secs(1_795_608_000))
                ),
                // Only shaped like a time: stays text.
                ("odd".into(), OwnedValue::Str("2026-13-45T99:00:00Z".into())),
            ])
        );
    }
}
