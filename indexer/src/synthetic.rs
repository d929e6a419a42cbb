//! Realistic, deterministic events for tests and benchmarks: observations of the configured
//! regions with a daily temperature cycle, and the log records, alerts and dead letters a
//! running windsock writes beside them.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map};
use windsock_core::config::senegal_regions;
use windsock_core::event::{
    AlertEvent, AlertState, DeadLetter, Envelope, Event, Level, LogEvent, Observation,
};

/// splitmix64: tiny, deterministic, good enough for spreading test data.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const CONDITIONS: &[(&str, &str)] = &[
    ("Clear", "clear sky"),
    ("Clouds", "few clouds"),
    ("Clouds", "scattered clouds"),
    ("Rain", "light rain"),
    ("Dust", "dust"),
    ("Haze", "haze"),
];

const LOG_MESSAGES: &[(&str, Level, &str)] = &[
    ("collector", Level::Info, "fetched current weather"),
    ("collector", Level::Warn, "fetch failed, retrying"),
    ("collector", Level::Error, "fetch failed after retries"),
    ("forecaster", Level::Info, "refitted model"),
    ("alerter", Level::Info, "evaluated rules"),
    ("indexer", Level::Debug, "committed index"),
    ("windsock", Level::Info, "serving HTTP"),
];

/// The days the benchmark's events span.
pub const BENCHMARK_SPAN_DAYS: i64 = 30;

/// Where the benchmark's events start (October 2026: runs after it need a long retention).
pub fn benchmark_start() -> DateTime<Utc> {
    chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 10, 1, 0, 0, 0).unwrap()
}

/// The benchmark's `count` events: one generator, seed and span for every size, and for
/// every program that measures indexing (the bench, `examples/event_cost.rs`,
/// `examples/pipeline_cost.rs`), so their figures speak of the same events.
pub fn benchmark_mix(count: usize) -> impl Iterator<Item = Envelope> {
    stream(
        count,
        benchmark_start(),
        Duration::days(BENCHMARK_SPAN_DAYS),
        42,
    )
}

/// `count` events spread evenly over `[start, start + span)`: about 70% observations, 27%
/// logs, 2% alerts, 1% dead letters. The same arguments give the same events.
pub fn events(count: usize, start: DateTime<Utc>, span: Duration, seed: u64) -> Vec<Envelope> {
    stream(count, start, span, seed).collect()
}

/// [`events`], one at a time (benchmarks of millions of events never hold them all).
pub fn stream(
    count: usize,
    start: DateTime<Utc>,
    span: Duration,
    seed: u64,
) -> impl Iterator<Item = Envelope> {
    let regions = senegal_regions();
    let mut mix = Mix(seed);
    let step_us = (span.num_microseconds().unwrap_or(i64::MAX) / count.max(1) as i64).max(1);
    (0..count).map(move |i| {
        let at = start + Duration::microseconds(step_us * i as i64);
        let region = &regions[mix.below(regions.len() as u64) as usize];
        let roll = mix.below(100);
        let event = if roll < 70 {
            let hour = at.format("%H").to_string().parse::<f64>().unwrap_or(12.0);
            let daily = (std::f64::consts::PI * (hour - 9.0) / 12.0).sin();
            let (condition, description) = CONDITIONS[mix.below(CONDITIONS.len() as u64) as usize];
            Event::Observation(Observation {
                region: region.name.clone(),
                lat: region.lat,
                lon: region.lon,
                observed_at: at,
                fetched_at: at + Duration::seconds(2),
                source: if mix.below(10) == 0 {
                    "openweathermap"
                } else {
                    "simulated"
                }
                .into(),
                temperature_c: ((27.0 + 6.0 * daily + 4.0 * (mix.unit() - 0.5)) * 10.0).round()
                    / 10.0,
                feels_like_c: Some(29.0),
                humidity_pct: Some((40.0 + 50.0 * mix.unit()).round()),
                pressure_hpa: Some(1008.0 + (8.0 * mix.unit()).round()),
                wind_speed_ms: Some((12.0 * mix.unit() * 10.0).round() / 10.0),
                wind_deg: Some((360.0 * mix.unit()).round()),
                clouds_pct: Some((100.0 * mix.unit()).round()),
                condition: Some(condition.into()),
                description: Some(description.into()),
                ..Default::default()
            })
        } else if roll < 97 {
            let (service, level, message) =
                LOG_MESSAGES[mix.below(LOG_MESSAGES.len() as u64) as usize];
            let mut fields = Map::new();
            if level >= Level::Warn {
                fields.insert(
                    "status".into(),
                    json!([500, 502, 503, 429][mix.below(4) as usize]),
                );
                fields.insert("attempt".into(), json!(1 + mix.below(3)));
            }
            fields.insert("seq".into(), json!(i));
            Event::Log(LogEvent {
                timestamp: at,
                service: service.into(),
                level,
                message: message.into(),
                region: (service == "collector").then(|| region.name.clone()),
                target: Some(format!("windsock_{service}::run")),
                fields,
            })
        } else if roll < 99 {
            let state = [
                AlertState::Pending,
                AlertState::Firing,
                AlertState::Resolved,
            ][mix.below(3) as usize];
            Event::Alert(AlertEvent {
                fingerprint: format!("heat/{}", region.name),
                rule: "heat".into(),
                region: Some(region.name.clone()),
                state,
                severity: ["critical", "warning"][mix.below(2) as usize].into(),
                at,
                started_at: at - Duration::minutes(5),
                value: Some(41.5),
                expected: Some("> 40".into()),
                message: format!("{} is at 41.5 °C", region.name),
            })
        } else {
            Event::DeadLetter(DeadLetter {
                at,
                topic: "observations".into(),
                partition: (i % 4) as i32,
                offset: i as i64,
                key: Some(region.name.clone()),
                reason: "not a windsock event: expected value at line 1 column 1".into(),
                payload: "garbage".into(),
                group: "windsock-alerter".into(),
            })
        };
        Envelope::new(event)
    })
}
