//! The index's schema and how an event becomes a document.
//!
//! | field | type | why |
//! | --- | --- | --- |
//! | `id` | raw string, stored | idempotent upserts (delete the id term, add) and `/api/events/{id}` |
//! | `timestamp` | date (µs), indexed, fast | time ranges, newest-first sort, the histogram |
//! | `kind`, `region`, `level`, `service`, `source` | raw strings, fast | exact filters and facet counts |
//! | `message` | full text with positions | bare words and phrases (`"clear sky"`) |
//! | one f64 per [`Observation::METRICS`] | indexed, fast | `temperature_c:[30 TO *]` |
//! | `event` | JSON text, stored only | the envelope exactly as published, returned with each hit |
//! | `fields` | JSON, indexed only | any attribute by path: `fields.condition:rain`, `fields.status:500` |
//!
//! `fields` holds the envelope's attributes with a log's own `fields` map hoisted to the top,
//! so a log written as `warn!(status = 500, "fetch failed")` is found by `fields.status:500`
//! (as a Kibana user would write it) rather than by `fields.fields.status:500`. Its strings
//! use the default tokenizer (split on punctuation, lowercased), so matching is
//! case-insensitive: `fields.condition:Rain` and `fields.condition:rain` find the same.

use crate::describe::{describe, Description};
use serde_json::{Map, Value};
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, JsonObjectOptions, NumericOptions,
    OwnedValue, Schema, TextFieldIndexing, TextOptions, INDEXED, STORED, STRING,
};
use tantivy::{DateTime, TantivyDocument};
use windsock_core::bus::Delivery;
use windsock_core::event::{Envelope, Event, Observation};

/// The precision of `timestamp` (log records carry sub-second times; ordering needs them).
pub const TIMESTAMP_PRECISION: DateTimePrecision = DateTimePrecision::Microseconds;

/// The fields that facet (raw, fast): the search answer counts their top values.
pub const FACETS: [&str; 4] = ["kind", "region", "level", "service"];

/// Every field of the schema, by handle.
#[derive(Clone, Debug)]
pub struct Fields {
    pub id: Field,
    pub timestamp: Field,
    pub kind: Field,
    pub region: Field,
    pub level: Field,
    pub service: Field,
    pub source: Field,
    pub message: Field,
    pub event: Field,
    pub attributes: Field,
    /// (metric name, field) for each of [`Observation::METRICS`].
    pub metrics: Vec<(&'static str, Field)>,
}

pub fn build_schema() -> Schema {
    let mut builder = Schema::builder();
    builder.add_text_field("id", STRING | STORED);
    builder.add_date_field(
        "timestamp",
        DateOptions::from(INDEXED)
            .set_fast()
            .set_precision(TIMESTAMP_PRECISION),
    );
    let facet = TextOptions::default()
        .set_indexing_options(TextFieldIndexing::default().set_tokenizer("raw"))
        .set_fast("raw");
    for name in ["kind", "region", "level", "service", "source"] {
        builder.add_text_field(name, facet.clone());
    }
    builder.add_text_field(
        "message",
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("default")
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        ),
    );
    for metric in Observation::METRICS {
        builder.add_f64_field(metric, NumericOptions::default().set_indexed().set_fast());
    }
    builder.add_text_field("event", STORED);
    builder.add_json_field(
        "fields",
        JsonObjectOptions::default()
            .set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("default")
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            )
            .set_expand_dots_enabled(),
    );
    builder.build()
}

impl Fields {
    pub fn new(schema: &Schema) -> Result<Self, tantivy::TantivyError> {
        let get = |name: &str| schema.get_field(name);
        Ok(Self {
            id: get("id")?,
            timestamp: get("timestamp")?,
            kind: get("kind")?,
            region: get("region")?,
            level: get("level")?,
            service: get("service")?,
            source: get("source")?,
            message: get("message")?,
            event: get("event")?,
            attributes: get("fields")?,
            metrics: Observation::METRICS
                .iter()
                .map(|m| get(m).map(|f| (*m, f)))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The document of one event.
    pub fn document(&self, envelope: &Envelope) -> TantivyDocument {
        let json = envelope.to_json();
        self.document_with_json(
            envelope,
            std::str::from_utf8(&json).expect("serde_json writes UTF-8"),
        )
    }

    /// The document of an event, from its delivery's payload when there is one.
    pub fn document_of(&self, envelope: &Envelope, delivery: Option<&Delivery>) -> TantivyDocument {
        match delivery.and_then(|d| std::str::from_utf8(&d.payload).ok()) {
            Some(json) => self.document_with_json(envelope, json),
            None => self.document(envelope),
        }
    }

    /// The document of one event whose wire form (`json`, as published) is at hand: it is
    /// stored as is, so a hit shows exactly what was published.
    pub fn document_with_json(&self, envelope: &Envelope, json: &str) -> TantivyDocument {
        let Description {
            kind,
            region,
            level,
            service,
            source,
            message,
        } = describe(&envelope.event);
        let mut doc = TantivyDocument::new();
        doc.add_text(self.id, &envelope.id);
        doc.add_date(self.timestamp, to_tantivy(envelope.event.timestamp()));
        doc.add_text(self.kind, kind);
        if let Some(region) = region {
            doc.add_text(self.region, region);
        }
        doc.add_text(self.level, level);
        doc.add_text(self.service, service);
        if !source.is_empty() {
            doc.add_text(self.source, source);
        }
        doc.add_text(self.message, message);
        if let Event::Observation(o) = &envelope.event {
            for (name, field) in &self.metrics {
                if let Some(value) = o.metric(name).filter(|v| v.is_finite()) {
                    doc.add_f64(*field, value);
                }
            }
        }
        if let Ok(whole) = serde_json::from_str::<Map<String, Value>>(json) {
            doc.add_field_value(self.attributes, &owned(Value::Object(attributes(whole))));
        }
        doc.add_text(self.event, json);
        doc
    }
}

/// The envelope's attributes for `fields` (all but `id` and `schema_version`): a log's own
/// `fields` map hoisted to the top (where a name is already taken, the attribute stays under
/// `fields.fields`).
fn attributes(mut whole: Map<String, Value>) -> Map<String, Value> {
    // The id has its own field; a unique term per event twice over would make every
    // segment's term dictionary (and indexing) markedly larger.
    whole.remove("id");
    whole.remove("schema_version");
    if whole.get("kind").and_then(Value::as_str) != Some("log") {
        return whole;
    }
    let Some(Value::Object(own)) = whole.remove("fields") else {
        return whole;
    };
    let mut clashing = Map::new();
    for (key, value) in own {
        if whole.contains_key(&key) {
            clashing.insert(key, value);
        } else {
            whole.insert(key, value);
        }
    }
    if !clashing.is_empty() {
        whole.insert("fields".into(), Value::Object(clashing));
    }
    whole
}

/// JSON as tantivy's value, strings kept as strings: tantivy's own conversion tries to read
/// every string as a date, which costs more than indexing the event (times are searched
/// through `timestamp`).
fn owned(value: Value) -> OwnedValue {
    match value {
        Value::Null => OwnedValue::Null,
        Value::Bool(b) => OwnedValue::Bool(b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => OwnedValue::I64(i),
            (None, Some(u)) => OwnedValue::U64(u),
            _ => OwnedValue::F64(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => OwnedValue::Str(s),
        Value::Array(items) => OwnedValue::Array(items.into_iter().map(owned).collect()),
        Value::Object(map) => {
            OwnedValue::Object(map.into_iter().map(|(k, v)| (k, owned(v))).collect())
        }
    }
}

pub fn to_tantivy(at: chrono::DateTime<chrono::Utc>) -> DateTime {
    DateTime::from_timestamp_micros(at.timestamp_micros()).truncate(TIMESTAMP_PRECISION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_logs_own_fields_are_hoisted_unless_the_name_is_taken() {
        let Value::Object(envelope) = json!({
            "schema_version": 1, "id": "abc", "kind": "log", "message": "fetch failed",
            "fields": {"status": 500, "message": "upstream said no"}
        }) else {
            unreachable!()
        };
        let attributes = attributes(envelope);
        assert_eq!(attributes["status"], 500);
        assert_eq!(attributes["message"], "fetch failed");
        assert_eq!(attributes["fields"], json!({"message": "upstream said no"}));
        assert!(!attributes.contains_key("id") && !attributes.contains_key("schema_version"));
    }

    #[test]
    fn strings_stay_strings_and_numbers_keep_their_kind() {
        assert_eq!(
            owned(json!("2026-11-25T12:00:00Z")),
            OwnedValue::Str("2026-11-25T12:00:00Z".into())
        );
        assert_eq!(owned(json!(-3)), OwnedValue::I64(-3));
        assert_eq!(owned(json!(u64::MAX)), OwnedValue::U64(u64::MAX));
        assert_eq!(owned(json!(27.5)), OwnedValue::F64(27.5));
    }
}
