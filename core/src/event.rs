//! The events that flow on the bus.
//!
//! On the wire every event is one JSON object: an envelope (`schema_version`, `id`)
//! flattened together with the event, whose `kind` tag says which variant it is:
//!
//! ```json
//! {"schema_version":1,"id":"4f0c…","kind":"observation","region":"Dakar", …}
//! ```
//!
//! Ids are deterministic (a hash of what makes the event unique), so the same
//! observation fetched twice has the same id and every consumer can be idempotent.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Bumped when the wire format changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

/// An event with its envelope, as published on the bus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub schema_version: u32,
    pub id: String,
    #[serde(flatten)]
    pub event: Event,
}

impl Envelope {
    /// Wraps an event, deriving its deterministic id.
    pub fn new(event: Event) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            id: event.id(),
            event,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("events always serialize")
    }

    /// Decodes an envelope, refusing schema versions this build does not know.
    ///
    /// Decodes the same as the derived `Deserialize`, in a third fewer instructions
    /// (callgrind: 21k against 14k an event of the indexer bench's mix): a flattened,
    /// internally tagged enum is read through serde's buffered `Content` (every key and value
    /// copied into a tree first), and decoding was a fifth of what indexing an event costs.
    /// Events as windsock writes them (`schema_version`, `id` and `kind` first) are read in one
    /// pass straight into the struct the kind names; any other order takes two passes, which
    /// cost what the derived one does.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        // Checked as UTF-8 once, whole: read from bytes, serde_json checks each string on its
        // own, and those 24 calls an event cost ten times the one check (callgrind).
        Self::from_json_text(std::str::from_utf8(bytes)?)
    }

    /// [`Envelope::from_json`] of a payload already known to be UTF-8 text.
    pub fn from_json_text(text: &str) -> Result<Self, DecodeError> {
        let mut json = serde_json::Deserializer::from_str(text);
        let read = json.deserialize_map(HeadFirst)?;
        json.end()?;
        match read {
            Read::Envelope(envelope) => Ok(envelope),
            Read::Version(version) => Err(DecodeError::UnsupportedVersion(version)),
            Read::OtherOrder => Self::from_json_in_any_order(text),
        }
    }

    /// Two passes: the envelope's own keys, then the event's as the struct its kind names.
    fn from_json_in_any_order(text: &str) -> Result<Self, DecodeError> {
        let head: Head = serde_json::from_str(text)?;
        if head.schema_version != SCHEMA_VERSION {
            return Err(DecodeError::UnsupportedVersion(head.schema_version));
        }
        // The event structs ignore keys they do not know, here `schema_version`, `id`, `kind`.
        let mut json = serde_json::Deserializer::from_str(text);
        let event = head.kind.read(&mut json)?;
        json.end()?;
        Ok(Self {
            schema_version: head.schema_version,
            id: head.id,
            event,
        })
    }
}

/// The envelope's own keys (the rest is skipped without being copied).
#[derive(Deserialize)]
struct Head {
    schema_version: u32,
    id: String,
    kind: Kind,
}

/// A key of the envelope, as the one-pass reader tells them apart.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum HeadKey {
    SchemaVersion,
    Id,
    Kind,
    #[serde(other)]
    Event,
}

/// [`Event`]'s tag.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Observation,
    Log,
    Forecast,
    Alert,
    DeadLetter,
}

impl Kind {
    /// The event of this kind that `from` holds (a whole object, or the rest of one).
    fn read<'de, D: Deserializer<'de>>(self, from: D) -> Result<Event, D::Error> {
        Ok(match self {
            Kind::Observation => Event::Observation(Deserialize::deserialize(from)?),
            Kind::Log => Event::Log(Deserialize::deserialize(from)?),
            Kind::Forecast => Event::Forecast(Deserialize::deserialize(from)?),
            Kind::Alert => Event::Alert(Deserialize::deserialize(from)?),
            Kind::DeadLetter => Event::DeadLetter(Deserialize::deserialize(from)?),
        })
    }
}

/// What the one-pass reader made of an envelope.
// Returned once and unpacked at once: boxing the envelope would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
enum Read {
    Envelope(Envelope),
    Version(u32),
    /// An event key came before the envelope's: read again in two passes.
    OtherOrder,
}

/// Reads `schema_version`, `id`, `kind`, then hands the rest of the object to the struct
/// the kind names.
struct HeadFirst;

impl<'de> serde::de::Visitor<'de> for HeadFirst {
    type Value = Read;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a windsock event (a JSON object)")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Read, A::Error> {
        use serde::de::value::MapAccessDeserializer;
        use serde::de::IgnoredAny;
        let (mut schema_version, mut id) = (None, None);
        while let Some(key) = map.next_key::<HeadKey>()? {
            match key {
                HeadKey::SchemaVersion => schema_version = Some(map.next_value::<u32>()?),
                HeadKey::Id => id = Some(map.next_value::<String>()?),
                HeadKey::Kind => {
                    let kind: Kind = map.next_value()?;
                    let (Some(schema_version), Some(id)) = (schema_version, id.take()) else {
                        break;
                    };
                    if schema_version != SCHEMA_VERSION {
                        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                        return Ok(Read::Version(schema_version));
                    }
                    let event = kind.read(MapAccessDeserializer::new(map))?;
                    return Ok(Read::Envelope(Envelope {
                        schema_version,
                        id,
                        event,
                    }));
                }
                HeadKey::Event => {
                    map.next_value::<IgnoredAny>()?;
                    break;
                }
            }
        }
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Read::OtherOrder)
    }
}

/// Reads an event's time as chrono's own `Deserialize` does, in about a third of the
/// instructions: chrono reads every time through its relaxed parser (which also takes a
/// space for the `T`, and goes through its general format machinery), 1.8k instructions a
/// time and two times an observation. Here its strict RFC 3339 parser goes first, and the
/// relaxed one only when the strict one refuses, so what is accepted, and every error, is
/// chrono's.
fn rfc3339<'de, D: Deserializer<'de>>(from: D) -> Result<DateTime<Utc>, D::Error> {
    struct Rfc3339;
    impl serde::de::Visitor<'_> for Rfc3339 {
        type Value = DateTime<Utc>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            // chrono's own words, so a wrong type reads as it did.
            f.write_str("an RFC 3339 formatted date and time string")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            DateTime::parse_from_rfc3339(text)
                .or_else(|_| text.parse::<DateTime<chrono::FixedOffset>>())
                .map(|at| at.with_timezone(&Utc))
                .map_err(E::custom)
        }
    }
    from.deserialize_str(Rfc3339)
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a windsock event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported schema_version {0} (this build reads {SCHEMA_VERSION})")]
    UnsupportedVersion(u32),
    #[error("not a windsock event: not UTF-8 text ({0})")]
    NotText(#[from] std::str::Utf8Error),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Observation(Observation),
    Log(LogEvent),
    Forecast(Forecast),
    Alert(AlertEvent),
    DeadLetter(DeadLetter),
}

impl Event {
    /// The name of the variant, as in the `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Observation(_) => "observation",
            Event::Log(_) => "log",
            Event::Forecast(_) => "forecast",
            Event::Alert(_) => "alert",
            Event::DeadLetter(_) => "dead_letter",
        }
    }

    /// The instant the event is about: when it was observed, logged, generated or changed state.
    pub fn timestamp(&self) -> DateTime<Utc> {
        match self {
            Event::Observation(o) => o.observed_at,
            Event::Log(l) => l.timestamp,
            Event::Forecast(f) => f.generated_at,
            Event::Alert(a) => a.at,
            Event::DeadLetter(d) => d.at,
        }
    }

    pub fn region(&self) -> Option<&str> {
        match self {
            Event::Observation(o) => Some(&o.region),
            Event::Log(l) => l.region.as_deref(),
            Event::Forecast(f) => Some(&f.region),
            Event::Alert(a) => a.region.as_deref(),
            Event::DeadLetter(_) => None,
        }
    }

    /// The bus key: a region's events share a key so they stay ordered.
    pub fn key(&self) -> String {
        match self {
            // Health reports (see [`health`]) are about the pipeline: the key of the
            // region-less state (`""`), so the one alerter owning its partition reads them all.
            Event::Log(l) if l.region.is_none() && l.health().is_some() => String::new(),
            Event::Log(l) => l.region.clone().unwrap_or_else(|| l.service.clone()),
            Event::Alert(a) => a.region.clone().unwrap_or_else(|| a.rule.clone()),
            Event::DeadLetter(d) => d.topic.clone(),
            other => other.region().unwrap_or_default().to_string(),
        }
    }

    /// The deterministic id: a hash of what makes this event unique.
    pub fn id(&self) -> String {
        let ts = |t: &DateTime<Utc>| t.timestamp_nanos_opt().unwrap_or_default().to_string();
        match self {
            Event::Observation(o) => {
                stable_id(&["observation", &o.region, &o.source, &ts(&o.observed_at)])
            }
            Event::Log(l) => {
                let fields = serde_json::to_string(&l.fields).unwrap_or_default();
                stable_id(&[
                    "log",
                    &l.service,
                    &ts(&l.timestamp),
                    &l.message,
                    l.region.as_deref().unwrap_or(""),
                    &fields,
                ])
            }
            Event::Forecast(f) => {
                stable_id(&["forecast", &f.region, &f.model, &ts(&f.generated_at)])
            }
            Event::Alert(a) => stable_id(&["alert", &a.fingerprint, a.state.as_str(), &ts(&a.at)]),
            Event::DeadLetter(d) => stable_id(&[
                "dead_letter",
                &d.topic,
                &d.partition.to_string(),
                &d.offset.to_string(),
            ]),
        }
    }
}

/// A 128-bit hex digest of the parts, separated so `["ab","c"]` and `["a","bc"]` differ.
pub fn stable_id(parts: &[&str]) -> String {
    let mut hasher = blake3::Hasher::new();
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().to_hex()[..32].to_string()
}

/// Current weather at one region, as one source reported it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub region: String,
    pub lat: f64,
    pub lon: f64,
    #[serde(deserialize_with = "rfc3339")]
    pub observed_at: DateTime<Utc>,
    #[serde(deserialize_with = "rfc3339")]
    pub fetched_at: DateTime<Utc>,
    /// The source's name: `openweathermap`, `open-meteo`, `simulated`, `replay`.
    pub source: String,
    pub temperature_c: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feels_like_c: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub humidity_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressure_hpa: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dew_point_c: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wind_speed_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wind_deg: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wind_gust_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clouds_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility_m: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uvi: Option<f64>,
    /// A short condition such as `Clear`, `Rain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Fetched by a backfill, not a live round: not an arrival for late-data.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backfill: bool,
}

impl Observation {
    /// The numeric metrics by name, for rules and indexing that go by metric name.
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "temperature_c" => Some(self.temperature_c),
            "feels_like_c" => self.feels_like_c,
            "humidity_pct" => self.humidity_pct,
            "pressure_hpa" => self.pressure_hpa,
            "dew_point_c" => self.dew_point_c,
            "wind_speed_ms" => self.wind_speed_ms,
            "wind_deg" => self.wind_deg,
            "wind_gust_ms" => self.wind_gust_ms,
            "clouds_pct" => self.clouds_pct,
            "visibility_m" => self.visibility_m,
            "uvi" => self.uvi,
            _ => None,
        }
    }

    /// Every metric name [`Observation::metric`] knows.
    pub const METRICS: &'static [&'static str] = &[
        "temperature_c",
        "feels_like_c",
        "humidity_pct",
        "pressure_hpa",
        "dew_point_c",
        "wind_speed_ms",
        "wind_deg",
        "wind_gust_ms",
        "clouds_pct",
        "visibility_m",
        "uvi",
    ];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(&self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl From<&tracing::Level> for Level {
    fn from(level: &tracing::Level) -> Self {
        match *level {
            tracing::Level::TRACE => Level::Trace,
            tracing::Level::DEBUG => Level::Debug,
            tracing::Level::INFO => Level::Info,
            tracing::Level::WARN => Level::Warn,
            tracing::Level::ERROR => Level::Error,
        }
    }
}

/// A log record of one of windsock's own services (or a fetch outcome), searchable beside the data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEvent {
    #[serde(deserialize_with = "rfc3339")]
    pub timestamp: DateTime<Utc>,
    /// `collector`, `indexer`, `forecaster`, `alerter`, `ui` or `windsock`.
    pub service: String,
    pub level: Level,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The tracing target (module path) that emitted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub fields: Map<String, Value>,
}

/// The health conditions a service reports about itself as log events on the logs topic
/// (the alerter turns a failing one into an alert and its `ok` into the resolve). The contract
/// lives in `fields`: `condition` (one of these), `state` (`failing` or `ok`), `service` (the
/// one failing) and, when failing, `error` (text with no secret in it).
pub mod health {
    /// The data directory's disk (or quota) is full: a service cannot make its data durable.
    pub const DISK_FULL: &str = "disk_full";
    /// A service keeps failing (and is being restarted).
    pub const SERVICE_FAILING: &str = "service_failing";
    pub const FAILING: &str = "failing";
    pub const OK: &str = "ok";
}

/// A health condition as read back from a [`LogEvent`] (see [`health`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCondition {
    pub service: String,
    pub condition: String,
    pub failing: bool,
    pub error: Option<String>,
}

impl LogEvent {
    /// A health condition of `service`: `failing` (an error, with what failed) or back to
    /// `ok` (info). Both sides of the contract go through this and [`LogEvent::health`].
    pub fn health_condition(
        service: &str,
        condition: &str,
        failing: bool,
        error: Option<String>,
        message: String,
        now: DateTime<Utc>,
    ) -> Self {
        let mut fields = Map::new();
        fields.insert("condition".into(), Value::from(condition));
        let state = if failing { health::FAILING } else { health::OK };
        fields.insert("state".into(), Value::from(state));
        fields.insert("service".into(), Value::from(service));
        if let Some(error) = error {
            fields.insert("error".into(), Value::from(error));
        }
        Self {
            timestamp: now,
            service: service.to_string(),
            level: if failing { Level::Error } else { Level::Info },
            message,
            region: None,
            target: None,
            fields,
        }
    }

    /// The health condition this log event reports, if it is one.
    pub fn health(&self) -> Option<HealthCondition> {
        let text = |key: &str| self.fields.get(key).and_then(Value::as_str);
        let failing = match text("state")? {
            health::FAILING => true,
            health::OK => false,
            _ => return None,
        };
        Some(HealthCondition {
            service: text("service").unwrap_or(&self.service).to_string(),
            condition: text("condition")?.to_string(),
            failing,
            error: text("error").map(str::to_string),
        })
    }
}

/// One point of a forecast, with its prediction interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForecastPoint {
    #[serde(deserialize_with = "rfc3339")]
    pub timestamp: DateTime<Utc>,
    pub temperature_c: f64,
    pub lower: f64,
    pub upper: f64,
}

/// A region's temperature forecast from one refit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    pub region: String,
    /// The model in use: `mstl_ets`, `regression`, `combined`, `seasonal_naive`, `persistence`.
    pub model: String,
    #[serde(deserialize_with = "rfc3339")]
    pub generated_at: DateTime<Utc>,
    /// The prediction interval's level, such as 0.95.
    pub level: f64,
    pub points: Vec<ForecastPoint>,
    /// Mean absolute error of each model in the recent backtest, by model name.
    #[serde(default)]
    pub backtest_mae: Map<String, Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Pending,
    Firing,
    Resolved,
}

impl AlertState {
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// A change of an alert's state, published so alerts are searchable beside the data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertEvent {
    /// Identifies one alert: the rule and region it is about.
    pub fingerprint: String,
    pub rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub state: AlertState,
    /// `critical`, `warning` or `info`.
    pub severity: String,
    /// When this state change happened.
    #[serde(deserialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// When the alert started firing (or pending).
    #[serde(deserialize_with = "rfc3339")]
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The threshold or expected range, in words: `> 40`, `[21.3, 27.9]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    pub message: String,
}

/// A message that could not be decoded, with the reason, so nothing is silently lost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    #[serde(deserialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// The topic the message was read from.
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub reason: String,
    /// The payload as text (invalid UTF-8 replaced).
    pub payload: String,
    /// Which consumer group refused it.
    pub group: String,
}

#[cfg(test)]
mod tests {
    #[test]
    fn health_reports_share_the_key_of_the_regionless_state() {
        use super::*;
        let now = Utc::now();
        let report = |service: &str| {
            Event::Log(LogEvent::health_condition(
                service,
                health::SERVICE_FAILING,
                true,
                None,
                "failing".into(),
                now,
            ))
        };
        assert_eq!(report("indexer").key(), "");
        assert_eq!(report("forecaster").key(), "");
        let Event::Log(mut other) = report("indexer") else {
            unreachable!()
        };
        other.fields.clear();
        assert_eq!(Event::Log(other).key(), "indexer", "other logs: by service");
    }

    use super::*;
    use chrono::TimeZone;

    fn observation() -> Observation {
        Observation {
            region: "Dakar".into(),
            lat: 14.7167,
            lon: -17.4677,
            observed_at: Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap(),
            fetched_at: Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 3).unwrap(),
            source: "simulated".into(),
            temperature_c: 27.5,
            humidity_pct: Some(60.0),
            ..Default::default()
        }
    }

    #[test]
    fn a_health_condition_reads_back_as_it_was_made() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let failing = LogEvent::health_condition(
            "indexer",
            health::DISK_FULL,
            true,
            Some("No space left on device (os error 28)".into()),
            "disk full".into(),
            now,
        );
        assert_eq!(failing.level, Level::Error);
        assert_eq!(failing.fields["state"], "failing");
        let read = failing.health().expect("a health condition");
        assert_eq!(read.service, "indexer");
        assert_eq!(read.condition, "disk_full");
        assert!(read.failing);
        assert_eq!(
            read.error.as_deref(),
            Some("No space left on device (os error 28)")
        );
        // It survives the wire.
        let envelope = Envelope::new(Event::Log(failing));
        let Event::Log(decoded) = Envelope::from_json(&envelope.to_json()).unwrap().event else {
            panic!("a log event");
        };
        assert_eq!(decoded.health(), Some(read));

        let ok =
            LogEvent::health_condition("indexer", health::DISK_FULL, false, None, "ok".into(), now);
        assert_eq!(ok.level, Level::Info);
        let read = ok.health().unwrap();
        assert!(!read.failing && read.error.is_none());

        let mut plain = ok.clone();
        plain.fields.clear();
        assert_eq!(plain.health(), None, "an ordinary log is no condition");
    }

    #[test]
    fn the_same_observation_fetched_twice_has_the_same_id() {
        let first = Event::Observation(observation());
        let mut again = observation();
        again.fetched_at += chrono::Duration::seconds(30);
        assert_eq!(first.id(), Event::Observation(again).id());
        let mut later = observation();
        later.observed_at += chrono::Duration::minutes(15);
        assert_ne!(first.id(), Event::Observation(later).id());
    }

    #[test]
    fn envelope_round_trips_with_a_flat_kind_tag() {
        let envelope = Envelope::new(Event::Observation(observation()));
        let json: Value = serde_json::from_slice(&envelope.to_json()).unwrap();
        assert_eq!(json["kind"], "observation");
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["region"], "Dakar");
        assert!(
            json.get("feels_like_c").is_none(),
            "absent optionals are omitted"
        );
        let back = Envelope::from_json(&envelope.to_json()).unwrap();
        assert_eq!(back, envelope);
    }

    #[test]
    fn the_fast_decoding_reads_every_kind_as_the_derived_one_does() {
        let at = "2026-11-25T12:00:00Z".parse().unwrap();
        let mut fields = Map::new();
        fields.insert("status".into(), 503.into());
        let events = [
            Event::Observation(observation()),
            Event::Log(LogEvent {
                timestamp: at,
                service: "collector".into(),
                level: Level::Warn,
                message: "fetch failed".into(),
                region: Some("Dakar".into()),
                target: None,
                fields,
            }),
            Event::Forecast(Forecast {
                region: "Dakar".into(),
                model: "mstl_ets".into(),
                generated_at: at,
                level: 0.95,
                points: vec![ForecastPoint {
                    timestamp: at,
                    temperature_c: 27.5,
                    lower: 25.0,
                    upper: 30.0,
                }],
                backtest_mae: Map::new(),
            }),
            Event::Alert(AlertEvent {
                fingerprint: "heat/Dakar".into(),
                rule: "heat".into(),
                region: None,
                state: AlertState::Firing,
                severity: "critical".into(),
                at,
                started_at: at,
                value: Some(41.5),
                expected: Some("> 40".into()),
                message: "41.5 °C".into(),
            }),
            Event::DeadLetter(DeadLetter {
                at,
                topic: "observations".into(),
                partition: 1,
                offset: 7,
                key: None,
                reason: "not json".into(),
                payload: "{".into(),
                group: "windsock-indexer".into(),
            }),
        ];
        for event in events {
            let json = Envelope::new(event).to_json();
            let derived: Envelope = serde_json::from_slice(&json).unwrap();
            assert_eq!(Envelope::from_json(&json).unwrap(), derived);
        }
        // Keys in any order, the tag last and unknown keys among them.
        let reordered = br#"{"temperature_c":27.5,"extra":[1,{"a":2}],"region":"Dakar","lat":14.7,"lon":-17.4,
            "observed_at":"2026-11-25T12:00:00Z","fetched_at":"2026-11-25T12:00:02Z","source":"simulated",
            "id":"abc","schema_version":1,"kind":"observation"}"#;
        let envelope = Envelope::from_json(reordered).unwrap();
        assert_eq!(envelope.id, "abc");
        assert_eq!(envelope.event.region(), Some("Dakar"));
        let kind_first = br#"{"kind":"log","service":"collector","schema_version":1,"level":"warn",
            "message":"fetch failed","timestamp":"2026-11-25T12:00:00Z","id":"def"}"#;
        let envelope = Envelope::from_json(kind_first).unwrap();
        assert_eq!(
            (envelope.id.as_str(), envelope.event.kind()),
            ("def", "log")
        );
        // Trailing bytes are refused, as by the derived decoding.
        let mut trailing = Envelope::new(Event::Observation(observation())).to_json();
        trailing.extend_from_slice(b" x");
        assert!(Envelope::from_json(&trailing).is_err());
    }

    #[test]
    fn a_missing_or_unknown_kind_and_a_bad_event_say_what_is_wrong() {
        let err = |json: &str| {
            Envelope::from_json(json.as_bytes())
                .unwrap_err()
                .to_string()
        };
        let missing = err(r#"{"schema_version":1,"id":"a"}"#);
        assert!(missing.contains("missing field `kind`"), "{missing}");
        let unknown = err(r#"{"schema_version":1,"id":"a","kind":"rumour"}"#);
        assert!(
            unknown.contains("unknown variant `rumour`") && unknown.contains("observation"),
            "{unknown}"
        );
        let bad = err(r#"{"schema_version":1,"id":"a","kind":"observation","region":3}"#);
        assert!(bad.contains("invalid type"), "{bad}");
    }

    #[test]
    fn unknown_versions_and_garbage_are_refused_with_a_reason() {
        let mut json: Value =
            serde_json::from_slice(&Envelope::new(Event::Observation(observation())).to_json())
                .unwrap();
        json["schema_version"] = 99.into();
        let err = Envelope::from_json(json.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("schema_version 99"), "{err}");
        let err = Envelope::from_json(b"{not json").unwrap_err();
        assert!(err.to_string().starts_with("not a windsock event"), "{err}");
        // Even where the bytes would be skipped (a key no event has), JSON is UTF-8 text.
        let mut not_text = br#"{"schema_version":1,"id":"a","kind":"log","odd":""#.to_vec();
        not_text.extend_from_slice(&[0xff, b'"', b'}']);
        let err = Envelope::from_json(&not_text).unwrap_err();
        assert!(err.to_string().contains("not UTF-8 text"), "{err}");
    }

    #[test]
    fn times_decode_as_chronos_own_decoding_does() {
        #[derive(Debug, Deserialize)]
        struct Ours {
            #[serde(deserialize_with = "rfc3339")]
            at: DateTime<Utc>,
        }
        #[derive(Debug, Deserialize)]
        struct Chronos {
            at: DateTime<Utc>,
        }
        let ours = |json: &str| serde_json::from_str::<Ours>(json).map(|o| o.at);
        let chronos = |json: &str| serde_json::from_str::<Chronos>(json).map(|c| c.at);
        for at in [
            r#""2026-11-25T12:00:00Z""#,
            r#""2026-11-25T12:00:00.123456789Z""#,
            r#""2026-11-25t12:00:00z""#,
            r#""2026-11-25 12:00:00Z""#,
            r#""2026-11-25T13:30:00+01:30""#,
            r#""2026-11-25T12:00:00-00:00""#,
            r#""2026-12-31T23:59:60Z""#,
            r#""2026-13-01T00:00:00Z""#,
            r#""2026-11-25T12:00:00""#,
            r#""yesterday""#,
            "3",
            "null",
        ] {
            let json = format!(r#"{{"at":{at}}}"#);
            match (ours(&json), chronos(&json)) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{at}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{at}"),
                (a, b) => panic!("{at}: ours {a:?}, chrono's {b:?}"),
            }
        }
        assert!(
            ours(r#"{"at":"2026-11-25 12:00:00Z"}"#).is_ok(),
            "relaxed forms stay accepted"
        );
    }

    #[test]
    fn stable_id_separates_parts() {
        assert_ne!(stable_id(&["ab", "c"]), stable_id(&["a", "bc"]));
        assert_eq!(stable_id(&["a"]).len(), 32);
    }
}
