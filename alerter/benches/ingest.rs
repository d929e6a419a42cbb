//! Alerter ingest benchmark (harness = false): observations per second through the engine and
//! the store, as the service handles them, at 1,000 and 10,000 regions, beside a baseline
//! measured in the same process on the same events: decoding them only.
//!
//! Each region reports once an hour for 72 hours (`WINDSOCK_BENCH_HOURS` changes it), in
//! rounds; the messages are decoded, given to the engine, and every `BATCH` of them is one
//! evaluation and one commit (the service's drain batch), the default rule set watching every
//! region. The cost per observation must not grow with the number of regions: the last
//! column, the ratio to the decode-only baseline, should read about the same at both sizes.
//!
//! Run: `cargo bench -p windsock-alerter --bench ingest`.

use chrono::{DateTime, TimeZone, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};
use windsock_alerter::engine::{Alert, Engine, Lifecycle};
use windsock_alerter::rules::{self, RuleContext};
use windsock_alerter::store::Store;
use windsock_core::config::default_rules;
use windsock_core::event::{Envelope, Event, Observation};

/// Messages per evaluation and commit (the service drains up to this many at once).
const BATCH: usize = 512;

fn hours() -> i64 {
    std::env::var("WINDSOCK_BENCH_HOURS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(72)
        .max(1)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
}

/// One region's reading of one hour, encoded as on the bus.
fn payload(region: &str, i: usize, hour: i64) -> Vec<u8> {
    let at = t0() + chrono::Duration::hours(hour) + chrono::Duration::milliseconds(i as i64);
    Envelope::new(Event::Observation(Observation {
        region: region.to_string(),
        lat: (i % 90) as f64,
        lon: (i % 180) as f64,
        observed_at: at,
        fetched_at: at,
        source: "simulated".into(),
        temperature_c: 25.0 + (i % 7) as f64 * 0.5 + (hour % 24) as f64 * 0.1,
        humidity_pct: Some(60.0),
        wind_speed_ms: Some(4.0 + (i % 5) as f64),
        ..Default::default()
    }))
    .to_json()
}

/// CPU time this process has used (user + system), from `/proc/self/stat` (clock ticks of
/// 10 ms): on a busy machine the wall time also counts the waits for a core.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are the 14th and
    // 15th of the line.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn decode(payload: &[u8]) -> Observation {
    match Envelope::from_json(payload).unwrap().event {
        Event::Observation(observation) => observation,
        other => panic!("not an observation: {other:?}"),
    }
}

struct Run {
    observations: usize,
    decode_only: Duration,
    alerter: Duration,
    commits: usize,
    memory_rows: usize,
    /// Time in observe (with decoding), evaluate, take_memory, commit.
    phases: [Duration; 4],
    /// CPU time of the engine and store part.
    cpu: Duration,
}

fn run(regions: usize) -> Run {
    let names: Vec<String> = (0..regions).map(|i| format!("R{i:05}")).collect();
    let hours = hours();
    let payloads: Vec<Vec<u8>> = (0..hours)
        .flat_map(|hour| {
            names
                .iter()
                .enumerate()
                .map(move |(i, name)| payload(name, i, hour))
        })
        .collect();

    // Baseline: decoding alone (the best of three passes: it is short, and a busy machine
    // would otherwise make it the noisiest number here).
    let decode_only = (0..3)
        .map(|_| {
            let started = Instant::now();
            let mut decoded = 0usize;
            for payload in &payloads {
                decoded += decode(payload).region.len();
            }
            assert!(decoded > 0);
            started.elapsed()
        })
        .min()
        .unwrap();

    // Engine and store, as the service loop drives them.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let context = RuleContext {
        regions: names.clone(),
        collection_interval: Duration::from_secs(3600),
        since: t0(),
    };
    let mut engine = Engine::new(
        rules::build(&default_rules(), &context),
        Lifecycle {
            min_hold: Duration::from_secs(60),
            repeat_interval: Duration::ZERO,
        },
    );
    let mut commits = 0;
    let mut memory_rows = 0;
    let mut phases = [Duration::ZERO; 4];
    let cpu_started = cpu_time();
    let started = Instant::now();
    for (n, chunk) in payloads.chunks(BATCH).enumerate() {
        // The clock of a live run: each round arrives in its hour.
        let hour = (n * BATCH / regions) as i64;
        let now = t0() + chrono::Duration::hours(hour) + chrono::Duration::seconds(2);
        let mut phase = Instant::now();
        let mut lap = |i: usize, phases: &mut [Duration; 4]| {
            phases[i] += phase.elapsed();
            phase = Instant::now();
        };
        for payload in chunk {
            engine.observe(now, &decode(payload));
        }
        lap(0, &mut phases);
        let changes = engine.evaluate(now);
        lap(1, &mut phases);
        let memory = engine.take_memory();
        lap(2, &mut phases);
        memory_rows += memory.len();
        let alerts: Vec<Alert> = changes.iter().map(|c| c.alert.clone()).collect();
        let events: Vec<_> = changes
            .iter()
            .filter_map(|c| Some((c.alert.id.clone(), c.event.clone()?)))
            .collect();
        store.commit(&alerts, &events, &[], &memory, now).unwrap();
        engine.changed_regions();
        lap(3, &mut phases);
        commits += 1;
    }
    let alerter = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_started);
    Run {
        observations: payloads.len(),
        decode_only,
        alerter,
        commits,
        memory_rows,
        phases,
        cpu,
    }
}

fn main() {
    println!(
        "alerter ingest: {} hourly observations per region, {BATCH} per evaluation and commit, default rules",
        hours()
    );
    println!(
        "{:>8} {:>12} {:>16} {:>16} {:>14} {:>11} {:>9} {:>14}",
        "regions",
        "observations",
        "decode-only /s",
        "alerter /s",
        "us/observation",
        "CPU us/obs",
        "commits",
        "alerter/decode"
    );
    let mut ratios = Vec::new();
    let mut costs = Vec::new();
    for regions in [1_000, 10_000] {
        let run = run(regions);
        let per_second = |d: Duration| run.observations as f64 / d.as_secs_f64();
        let ratio = run.alerter.as_secs_f64() / run.decode_only.as_secs_f64();
        println!(
            "{:>8} {:>12} {:>16.0} {:>16.0} {:>14.2} {:>11.2} {:>9} {:>14.1}",
            regions,
            run.observations,
            per_second(run.decode_only),
            per_second(run.alerter),
            run.alerter.as_secs_f64() * 1e6 / run.observations as f64,
            run.cpu.as_secs_f64() * 1e6 / run.observations as f64,
            run.commits,
            ratio,
        );
        let us = |d: Duration| d.as_secs_f64() * 1e6 / run.observations as f64;
        println!(
            "         ({} memory rows written: {:.1} per observation; us per observation: observe {:.1}, evaluate {:.1}, memory {:.1}, commit {:.1})",
            run.memory_rows,
            run.memory_rows as f64 / run.observations as f64,
            us(run.phases[0]),
            us(run.phases[1]),
            us(run.phases[2]),
            us(run.phases[3]),
        );
        ratios.push(ratio);
        costs.push((
            run.alerter.as_secs_f64() / run.observations as f64,
            run.cpu.as_secs_f64() / run.observations as f64,
        ));
    }
    println!(
        "cost per observation at 10,000 regions / at 1,000: {:.2} (wall time), {:.2} (CPU time)",
        costs[1].0 / costs[0].0,
        costs[1].1 / costs[0].1
    );
    println!(
        "cost per observation at 10,000 regions / at 1,000 (relative to decoding): {:.2}",
        ratios[1] / ratios[0]
    );
}
