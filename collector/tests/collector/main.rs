//! The collector against real HTTP servers speaking the weather APIs' wire formats, on the
//! embedded bus.

mod backfill;
mod fake;
mod fixtures;
mod live_and_backfill;
mod missed_ticks;
mod open_meteo;
mod openweathermap;
mod rounds;
mod secrets;
mod simulated_and_replay;
mod status_and_schedule;

use chrono::{DateTime, TimeZone, Utc};
use std::sync::Arc;
use std::time::Duration;
use windsock_collector::{Collector, RoundReport, Tick};
use windsock_core::bus::{EmbeddedBus, Topic};
use windsock_core::clock::{Clock, ManualClock};
use windsock_core::config::{BusConfig, Config, Region, SourceKind};
use windsock_core::event::{Envelope, Event, LogEvent, Observation};
use windsock_core::SharedBus;

pub const API_KEY: &str = "k3y-5f1d0c9e8b7a6";

pub fn regions(n: usize) -> Vec<Region> {
    windsock_core::config::senegal_regions()
        .into_iter()
        .take(n)
        .collect()
}

/// A config for `source` with `n` regions, fast retries and a short timeout.
pub fn config(source: SourceKind, base: &str, n: usize) -> Config {
    let mut config = Config {
        regions: regions(n),
        ..Config::default()
    };
    let c = &mut config.collector;
    c.source = source;
    c.schedule = Some("0 */15 * * * *".into());
    c.retries = 2;
    c.retry_min_delay = Duration::from_millis(5);
    c.retry_max_delay = Duration::from_millis(20);
    c.timeout = Duration::from_millis(400);
    c.backfill = Duration::ZERO;
    // The APIs' default pace (one request a second) would make every backfill test slow;
    // the tests of the pace set their own.
    c.backfill_rate = Some(1_000.0);
    c.openweathermap.base_url = base.to_string();
    c.openweathermap.api_key = Some(windsock_core::Secret::new(API_KEY));
    c.open_meteo.base_url = base.to_string();
    config
}

pub fn bus() -> SharedBus {
    Arc::new(EmbeddedBus::new(&BusConfig::default()))
}

pub fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

pub fn collector(config: Config, bus: &SharedBus, now: DateTime<Utc>) -> (Collector, ManualClock) {
    let clock = ManualClock::new(now);
    let collector =
        Collector::with_clock(Arc::new(config), bus.clone(), Arc::new(clock.clone())).unwrap();
    (collector, clock)
}

/// One round at noon of `config`, on a fresh bus: its report, and the bus holding what it published.
pub async fn round_at_noon(config: Config) -> (RoundReport, SharedBus) {
    let bus = bus();
    let (collector, _) = collector(config, &bus, noon());
    let report = collector.round(tick(&collector, noon())).await;
    (report, bus)
}

/// The tick of the schedule at `now`.
pub fn tick(collector: &Collector, now: DateTime<Utc>) -> Tick {
    collector.schedule().tick_at(now).unwrap()
}

/// Everything published on `topic` so far.
pub async fn published(bus: &SharedBus, topic: Topic) -> Vec<Envelope> {
    let mut replay = bus.replay(topic).await.unwrap();
    let mut out = Vec::new();
    while let Some(delivery) = replay.next().await.unwrap() {
        out.push(Envelope::from_json(&delivery.payload).unwrap());
    }
    out
}

pub async fn observations(bus: &SharedBus) -> Vec<Observation> {
    published(bus, Topic::Observations)
        .await
        .into_iter()
        .filter_map(|e| match e.event {
            Event::Observation(o) => Some(o),
            _ => None,
        })
        .collect()
}

pub async fn logs(bus: &SharedBus) -> Vec<LogEvent> {
    published(bus, Topic::Logs)
        .await
        .into_iter()
        .filter_map(|e| match e.event {
            Event::Log(l) => Some(l),
            _ => None,
        })
        .collect()
}

/// The collector's OpenAPI document, as JSON.
static DOCUMENT: std::sync::LazyLock<serde_json::Value> =
    std::sync::LazyLock::new(|| serde_json::to_value(windsock_collector::openapi()).unwrap());

/// Checks an answer of `GET /api/collector/status` against the document: every field is
/// documented, every required one is there, nulls only where allowed, scalars of the
/// documented type and enum, all the way down. Every test reading the status goes through
/// it, so the document cannot drift from what is answered.
pub fn assert_documented(answer: &serde_json::Value) {
    let schema = &DOCUMENT["paths"]["/api/collector/status"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"];
    assert!(schema.is_object(), "the status route has no 200 schema");
    check_documented(schema, answer, "status");
}

fn resolve(schema: &serde_json::Value) -> &serde_json::Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            let target = &DOCUMENT["components"]["schemas"][name];
            assert!(target.is_object(), "dangling reference {reference}");
            resolve(target)
        }
        None => schema,
    }
}

fn check_documented(schema: &serde_json::Value, value: &serde_json::Value, at: &str) {
    use serde_json::Value;
    let schema = resolve(schema);
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if let Some(alternatives) = schema["oneOf"].as_array() {
        // An `Option<T>`: null, or the other alternative.
        if value.is_null() && alternatives.iter().any(|a| a["type"] == "null") {
            return;
        }
        let other = alternatives.iter().find(|a| a["type"] != "null").unwrap();
        return check_documented(other, value, at);
    }
    if value.is_null() {
        assert!(
            types.contains(&"null"),
            "{at}: null, not allowed by {schema}"
        );
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        assert!(
            allowed.contains(value),
            "{at}: {value} is not one of {allowed:?}"
        );
    }
    match value {
        Value::Object(map) => {
            assert!(
                types.is_empty() || types.contains(&"object"),
                "{at}: {schema}"
            );
            let properties = schema["properties"].as_object();
            for (name, field) in map {
                let at = format!("{at}.{name}");
                match properties.and_then(|p| p.get(name)) {
                    Some(field_schema) => check_documented(field_schema, field, &at),
                    None => {
                        let additional = &schema["additionalProperties"];
                        assert!(additional.is_object(), "{at} is not documented");
                        check_documented(additional, field, &at);
                    }
                }
            }
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap();
                assert!(map.contains_key(name), "{at}.{name} is required but absent");
            }
        }
        Value::Array(items) => {
            assert!(types.contains(&"array"), "{at}: {schema}");
            for (i, item) in items.iter().enumerate() {
                check_documented(&schema["items"], item, &format!("{at}[{i}]"));
            }
        }
        Value::String(_) => assert!(types.contains(&"string"), "{at}: {schema}"),
        Value::Bool(_) => assert!(types.contains(&"boolean"), "{at}: {schema}"),
        Value::Number(n) => assert!(
            types.contains(&"number") || (types.contains(&"integer") && !n.is_f64()),
            "{at}: {value} is not a {types:?}"
        ),
        Value::Null => unreachable!(),
    }
}
