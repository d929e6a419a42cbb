//! The index's schema and how an event becomes a document.
//!
//! | field | type | why |
//! | --- | --- | --- |
//! | `id` | raw string, stored | idempotent upserts (delete the id term, add) and `/api/events/{id}` |
//! | `timestamp` | date (µs), fast | time ranges, newest-first sort, the histogram |
//! | `kind`, `region`, `level`, `service`, `source` | raw strings, fast | exact filters and facet counts |
//! | `message` | full text with positions | bare words and phrases (`"clear sky"`) |
//! | one f64 per [`Observation::METRICS`] | fast | `temperature_c:[30 TO *]` |
//! | `event` | JSON text, stored only | the envelope exactly as published, returned with each hit |
//! | `fields` | JSON, indexed only | any attribute by path: `fields.condition:rain`, `fields.status:500` |
//!
//! The timestamp and the metrics have no terms: every query of them is a range, which tantivy
//! answers from the fast field (the query layer turns an exact value into a one-value range),
//! and a term per value cost indexing time, most of them unique for the timestamp.
//!
//! `fields` holds the envelope's attributes, less those already held by a field of their own
//! (`fields.region:Dakar` is read as `region:Dakar` too, see `query`), with a log's own
//! `fields` map hoisted to the top, so a log written as `warn!(status = 500, "fetch
//! failed")` is found by `fields.status:500` (as a Kibana user would write it) rather than
//! by `fields.fields.status:500`. Its strings
//! use the default tokenizer (split on punctuation, lowercased), so matching is
//! case-insensitive: `fields.condition:Rain` and `fields.condition:rain` find the same.
//! Strings that are RFC 3339 times are indexed as dates (one term, to the second), except the
//! event's own time (`observed_at`, a log's `timestamp`, ...), which `timestamp` holds.

use crate::attribute::{Attribute, Entries};
use crate::describe::{describe, Description};
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, JsonObjectOptions, NumericOptions,
    Schema, TextFieldIndexing, TextOptions, STORED, STRING,
};
use tantivy::{DateTime, TantivyDocument};
use windsock_core::bus::Delivery;
use windsock_core::event::{DecodeError, Envelope, Event, Observation};

/// The precision of `timestamp` (log records carry sub-second times; ordering needs them).
pub const TIMESTAMP_PRECISION: DateTimePrecision = DateTimePrecision::Microseconds;

/// The fields that facet (raw, fast): the search answer counts their top values.
pub const FACETS: [&str; 4] = ["kind", "region", "level", "service"];

/// (kind, attribute) for the attribute of each kind of event that `timestamp` holds. It is
/// left out of `fields` (a near-unique term per event, the costliest kind to index), and the
/// query layer reads `fields.observed_at:...` as that kind's `timestamp`.
pub const TIME_ATTRIBUTES: [(&str, &str); 5] = [
    ("observation", "observed_at"),
    ("log", "timestamp"),
    ("forecast", "generated_at"),
    ("alert", "at"),
    ("dead_letter", "at"),
];

/// The kinds of event whose `timestamp` the attribute `name` is (none for other attributes).
pub fn kinds_timed_by(name: &str) -> Vec<&'static str> {
    TIME_ATTRIBUTES
        .iter()
        .filter(|(_, attribute)| *attribute == name)
        .map(|(kind, _)| *kind)
        .collect()
}

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
        DateOptions::default()
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
        builder.add_f64_field(metric, NumericOptions::default().set_fast());
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

    /// Whether the attribute `name` has a field of its own (`region`, `temperature_c`, ...).
    pub fn has_own_field(&self, name: &str) -> bool {
        FACETS.contains(&name) || name == "source" || name == "message" || self.is_metric(name)
    }

    /// Whether `name` is a fast field only (no terms): the timestamp and the metrics.
    pub fn is_fast_only(&self, name: &str) -> bool {
        name == "timestamp" || self.is_metric(name)
    }

    fn is_metric(&self, name: &str) -> bool {
        self.metrics.iter().any(|(metric, _)| *metric == name)
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

    /// An event's id and document from its payload as published: decoded on the thread that
    /// reads the payload for the document too (a builder), not on the consuming loop.
    pub fn document_of_payload(
        &self,
        payload: &[u8],
    ) -> Result<(String, TantivyDocument), DecodeError> {
        let json = std::str::from_utf8(payload)?;
        let envelope = Envelope::from_json_text(json)?;
        let document = self.document_with_json(&envelope, json);
        Ok((envelope.id, document))
    }

    /// The document of one event whose wire form (`json`, as published) is at hand: it is
    /// stored as is, so a hit shows exactly what was published.
    pub fn document_with_json(&self, envelope: &Envelope, json: &str) -> TantivyDocument {
        let description = describe(&envelope.event);
        let d = &description;
        let mut doc = TantivyDocument::new();
        doc.add_text(self.id, &envelope.id);
        doc.add_date(self.timestamp, to_tantivy(envelope.event.timestamp()));
        doc.add_text(self.kind, d.kind);
        if let Some(region) = &d.region {
            doc.add_text(self.region, region);
        }
        doc.add_text(self.level, d.level);
        doc.add_text(self.service, &d.service);
        if !d.source.is_empty() {
            doc.add_text(self.source, &d.source);
        }
        doc.add_text(self.message, &d.message);
        let observation = match &envelope.event {
            Event::Observation(o) => Some(o),
            _ => None,
        };
        if let Some(o) = observation {
            for (name, field) in &self.metrics {
                if let Some(value) = o.metric(name).filter(|v| v.is_finite()) {
                    doc.add_f64(*field, value);
                }
            }
        }
        // Read as a tree borrowing from the payload (see `attribute`), which tantivy copies.
        if let Ok(Attribute::Object(whole)) = serde_json::from_str::<Attribute>(json) {
            let own = OwnFields {
                description: d,
                observation,
            };
            doc.add_field_value(self.attributes, &Attribute::Object(attributes(whole, &own)));
        }
        doc.add_text(self.event, json);
        doc
    }
}

/// The envelope's attributes for `fields` (all but `id` and `schema_version`): a log's own
/// `fields` map hoisted to the top (where a name is already taken, the attribute stays under
/// `fields.fields`); attributes the document already holds in a field of their own, with the
/// same name and value, left out (the query layer reads `fields.region` as `region` too): an
/// observation's facets and metrics would otherwise be indexed twice, about a third of its
/// postings. Strings that are times are indexed as dates (see [`Attribute`]).
fn attributes<'a>(whole: Entries<'a>, own: &OwnFields) -> Entries<'a> {
    let is_log = own.description.kind == "log";
    let mut top = Vec::with_capacity(whole.len() + 4);
    // Names left out because their own field holds them: still taken, for the hoisting.
    let mut held = Vec::new();
    let mut logged = Vec::new();
    for (key, value) in whole {
        match (key.as_ref(), value) {
            // The id has its own field; a unique term per event twice over would make every
            // segment's term dictionary (and indexing) markedly larger.
            ("id" | "schema_version", _) => {}
            ("fields", Attribute::Object(fields)) if is_log => logged = fields,
            (_, value) if own.holds(&key, &value) => held.push(key),
            (_, value) => top.push((key, value)),
        }
    }
    let mut clashing = Vec::new();
    for (key, value) in logged {
        if held.contains(&key) || top.iter().any(|(k, _)| *k == key) {
            clashing.push((key, value));
        } else {
            top.push((key, value));
        }
    }
    if !clashing.is_empty() {
        top.push(("fields".into(), Attribute::Object(clashing)));
    }
    top
}

/// What a document holds in fields of its own: its description, and an observation's metrics.
struct OwnFields<'a> {
    description: &'a Description,
    observation: Option<&'a Observation>,
}

impl OwnFields<'_> {
    /// Whether the attribute `key` = `value` is already in the field named `key`.
    fn holds(&self, key: &str, value: &Attribute) -> bool {
        let d = self.description;
        // The event was decoded from this very key: it is the timestamp.
        let is_time = |key: &str| TIME_ATTRIBUTES.contains(&(d.kind, key));
        match (key, value) {
            (key, Attribute::Str(_)) if is_time(key) => true,
            ("kind", Attribute::Str(v)) => v == d.kind,
            ("region", Attribute::Str(v)) => d.region.as_deref() == Some(v.as_ref()),
            ("level", Attribute::Str(v)) => v == d.level,
            ("service", Attribute::Str(v)) => *v == d.service,
            ("source", Attribute::Str(v)) => *v == d.source,
            ("message", Attribute::Str(v)) => *v == d.message,
            (metric, value) => value.as_number().is_some_and(|n| {
                self.observation.and_then(|o| o.metric(metric)) == Some(n) && n.is_finite()
            }),
        }
    }
}

/// tantivy's dates are nanoseconds in an `i64` (1677-09-21 to 2262-04-11); a time beyond
/// saturates to that end (an event of year 9999 sorts last, a search from year 1 starts at
/// the first), where tantivy's `from_timestamp_micros` would overflow.
pub fn to_tantivy(at: chrono::DateTime<chrono::Utc>) -> DateTime {
    let micros = at
        .timestamp_micros()
        .clamp(i64::MIN / 1_000, i64::MAX / 1_000);
    DateTime::from_timestamp_micros(micros).truncate(TIMESTAMP_PRECISION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use tantivy::schema::OwnedValue;

    /// The `fields` attributes of an envelope written as JSON, as tantivy indexes them.
    fn attributes_of(envelope: Value) -> Vec<(String, OwnedValue)> {
        let text = envelope.to_string();
        let parsed: Envelope = serde_json::from_value(envelope).unwrap();
        let description = describe(&parsed.event);
        let own = OwnFields {
            description: &description,
            observation: match &parsed.event {
                Event::Observation(o) => Some(o),
                _ => None,
            },
        };
        let Ok(Attribute::Object(whole)) = serde_json::from_str::<Attribute>(&text) else {
            unreachable!("an object")
        };
        let indexed = Attribute::Object(attributes(whole, &own)).indexed();
        let OwnedValue::Object(entries) = indexed else {
            unreachable!("an object")
        };
        entries
    }

    fn as_json(attributes: Vec<(String, OwnedValue)>) -> Value {
        serde_json::to_value(OwnedValue::Object(attributes)).unwrap()
    }

    #[test]
    fn a_logs_own_fields_are_hoisted_unless_the_name_is_taken() {
        let attributes = as_json(attributes_of(json!({
            "schema_version": 1, "id": "abc", "kind": "log", "service": "collector",
            "level": "warn", "message": "fetch failed", "target": "windsock_collector",
            "timestamp": "2026-11-25T12:00:00Z",
            "fields": {"status": 500, "message": "upstream said no", "region": "Dakar"}
        })));
        // kind, service, level and message have fields of their own; the log's own
        // `message` clashes with that taken name and stays nested.
        assert_eq!(attributes["status"], 500);
        assert_eq!(attributes["region"], "Dakar");
        assert_eq!(attributes["target"], "windsock_collector");
        assert_eq!(attributes["fields"], json!({"message": "upstream said no"}));
        for held in [
            "kind",
            "service",
            "level",
            "message",
            "timestamp",
            "id",
            "schema_version",
        ] {
            assert!(
                attributes.get(held).is_none(),
                "{held} is not indexed twice"
            );
        }
    }

    #[test]
    fn only_a_logs_fields_are_hoisted() {
        let attributes = as_json(attributes_of(json!({
            "schema_version": 1, "id": "abc", "kind": "alert", "fingerprint": "f",
            "rule": "late_data", "state": "firing", "severity": "warning",
            "at": "2026-11-25T12:00:00Z", "started_at": "2026-11-25T11:00:00Z",
            "message": "no data", "fields": {"status": 500}
        })));
        assert_eq!(attributes["fields"], json!({"status": 500}));
        assert_eq!(attributes["rule"], "late_data");
    }

    #[test]
    fn an_observations_metrics_and_facets_are_left_to_their_own_fields() {
        let attributes = attributes_of(json!({
            "schema_version": 1, "id": "abc", "kind": "observation", "region": "Dakar",
            "lat": 14.7, "lon": -17.4, "observed_at": "2026-11-25T12:00:00Z",
            "fetched_at": "2026-11-25T12:00:03.250Z", "source": "simulated",
            "temperature_c": 27.5, "humidity_pct": 60.0, "condition": "Clear"
        }));
        let names: Vec<&str> = attributes.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["condition", "fetched_at", "lat", "lon"],
            "kind, region, source, the metrics and the time have fields of their own"
        );
        let value = |name: &str| &attributes.iter().find(|(k, _)| k == name).unwrap().1;
        assert_eq!(
            *value("fetched_at"),
            OwnedValue::Date(DateTime::from_timestamp_millis(1_795_608_003_250)),
            "times are dates: one term each"
        );
        assert_eq!(*value("condition"), OwnedValue::Str("Clear".into()));
    }

    #[test]
    fn an_attribute_whose_value_differs_from_its_fields_is_kept_and_times_become_dates() {
        // A forecast's `level` is its interval's (0.95), not the log level its field holds.
        let attributes = as_json(attributes_of(json!({
            "schema_version": 1, "id": "abc", "kind": "forecast", "region": "Dakar",
            "model": "mstl_ets", "generated_at": "2026-11-25T12:00:00+01:00", "level": 0.95,
            "valid_from": "2026-11-25T12:00:00+01:00",
            "points": [{"timestamp": "2026-11-25T13:00:00Z", "temperature_c": 27.0,
                        "lower": 26.0, "upper": 28.0}],
            "note": "2026-11-25 is not a time", "odd": "2026-13-45T99:00:00Z"
        })));
        assert_eq!(attributes["level"], 0.95);
        assert!(attributes.get("region").is_none());
        // Times anywhere are dates (tantivy writes them back as RFC 3339 in UTC); strings
        // that only look like one stay text.
        assert_eq!(attributes["valid_from"], "2026-11-25T11:00:00Z");
        assert!(
            attributes.get("generated_at").is_none(),
            "a forecast's time is its timestamp"
        );
        assert_eq!(attributes["points"][0]["timestamp"], "2026-11-25T13:00:00Z");
        assert_eq!(attributes["note"], "2026-11-25 is not a time");
        assert_eq!(attributes["odd"], "2026-13-45T99:00:00Z");
        assert_eq!(attributes["points"][0]["temperature_c"], 27.0);
    }
}
