//! Alerter benchmarks (harness = false; `WINDSOCK_BENCH_SCALE` scales the sizes, default 1):
//!
//! 1. threshold latency: an anomalous observation published -> its POST arriving at a local
//!    webhook, p50/p99 over many alerts, beside the evaluation interval (target p99 < 1 s);
//! 2. late-data latency: a region's deadline passing -> its POST arriving, same measures;
//! 3. evaluation throughput: (region, rule) pairs judged per second by the engine (a round of
//!    every region observed, then one evaluation), for the default rule set and, as the
//!    in-process baseline, a single threshold rule. (`--bench ingest`: the same through the
//!    store, at 1,000 and 10,000 regions.)
//!
//! Slack pacing (one message a second per webhook) is set to zero here: it is a deliberate
//! queue, and this measures the alerter's own latency from condition to POST.
//!
//! Run: `cargo bench -p windsock-alerter` (`WINDSOCK_BENCH_SCALE=5` for more samples).

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use windsock_alerter::engine::{Engine, Lifecycle};
use windsock_alerter::rules::{self, RuleContext};
use windsock_alerter::Alerter;
use windsock_core::bus::{publish_event, EmbeddedBus};
use windsock_core::config::{default_rules, BusConfig, Region, RuleConfig, Severity};
use windsock_core::event::{Event, Observation};
use windsock_core::{Config, Secret, SharedBus};

fn scale() -> usize {
    std::env::var("WINDSOCK_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// Arrival instants of POSTs, by the region named in the header.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn webhook(State(arrivals): State<Arrivals>, body: String) -> &'static str {
    let at = Instant::now();
    let payload: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let header = payload["blocks"][0]["text"]["text"].as_str().unwrap_or("");
    if let Some((_, region)) = header.rsplit_once(" — ") {
        arrivals.lock().entry(region.to_string()).or_insert(at);
    }
    "ok"
}

async fn fake_slack() -> (String, Arrivals) {
    let arrivals: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/services/T/B/bench",
        listener.local_addr().unwrap()
    );
    let app = Router::new()
        .route("/services/{*path}", post(webhook))
        .with_state(arrivals.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, arrivals)
}

fn names(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:04}")).collect()
}

fn bench_config(
    dir: &std::path::Path,
    webhook: &str,
    rules: Vec<RuleConfig>,
    regions: &[String],
) -> Config {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        regions: regions
            .iter()
            .enumerate()
            .map(|(i, n)| Region::new(n, (i % 90) as f64, 0.0))
            .collect(),
        ..Config::default()
    };
    config.collector.schedule = Some("*/1 * * * * *".into());
    config.alerter.rules = rules;
    config.alerter.slack.webhook_url = Some(Secret::new(webhook));
    config.alerter.slack.min_interval = Duration::ZERO;
    config
}

fn observation(region: &str, temperature_c: f64) -> Observation {
    let now = chrono::Utc::now();
    Observation {
        region: region.into(),
        observed_at: now,
        fetched_at: now,
        source: "simulated".into(),
        temperature_c,
        ..Default::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut latencies: Vec<Duration>, interval: Duration) {
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    println!(
        "{name}: {} alerts, p50 {:.1} ms, p99 {:.1} ms; evaluation interval {} ms; p99/interval = {:.3} (target p99 < 1 s: {})",
        latencies.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        interval.as_millis(),
        p99.as_secs_f64() / interval.as_secs_f64(),
        if p99 < Duration::from_secs(1) { "met" } else { "MISSED" }
    );
}

async fn threshold_latency(alerts: usize) {
    let (url, arrivals) = fake_slack().await;
    let dir = tempfile::tempdir().unwrap();
    let regions = names(alerts, "T");
    let hot = RuleConfig::Threshold {
        name: "hot".into(),
        severity: Severity::Critical,
        metric: "temperature_c".into(),
        region: None,
        above: Some(40.0),
        below: None,
        pending_for: Duration::ZERO,
        hysteresis: 0.0,
    };
    let config = bench_config(dir.path(), &url, vec![hot], &regions);
    let interval = config.alerter.evaluation_interval;
    let bus: SharedBus = Arc::new(EmbeddedBus::new(&BusConfig::default()));
    let alerter = Alerter::new(Arc::new(config), bus.clone()).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(alerter.run(stop.clone()));
    let mut published = HashMap::new();
    for region in &regions {
        published.insert(region.clone(), Instant::now());
        publish_event(bus.as_ref(), Event::Observation(observation(region, 45.0)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_all(&arrivals, alerts).await;
    let arrivals = arrivals.lock().clone();
    let latencies = regions.iter().map(|r| arrivals[r] - published[r]).collect();
    report(
        "threshold: observation published -> POST",
        latencies,
        interval,
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}

async fn late_data_latency(alerts: usize) {
    let (url, arrivals) = fake_slack().await;
    let dir = tempfile::tempdir().unwrap();
    let mut regions = names(alerts, "L");
    regions.push("keeper".into());
    let late_after = Duration::from_secs(1);
    let late = RuleConfig::LateData {
        name: "late_data".into(),
        severity: Severity::Warning,
        late_after: Some(late_after),
        grace: Duration::ZERO,
        pipeline_down: true,
    };
    let mut config = bench_config(dir.path(), &url, vec![late], &regions);
    config.alerter.evaluation_interval = Duration::from_millis(100);
    let interval = config.alerter.evaluation_interval;
    let bus: SharedBus = Arc::new(EmbeddedBus::new(&BusConfig::default()));
    let alerter = Alerter::new(Arc::new(config), bus.clone()).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(alerter.run(stop.clone()));
    // Each region reports once, 37 ms after the previous one, then falls silent; the keeper
    // reports throughout, so each silence is that region's own.
    let keeper_bus = bus.clone();
    let keeper_stop = stop.clone();
    let keeper = tokio::spawn(async move {
        while !keeper_stop.is_cancelled() {
            let _ = publish_event(
                keeper_bus.as_ref(),
                Event::Observation(observation("keeper", 25.0)),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut deadlines = HashMap::new();
    for region in &regions[..alerts] {
        publish_event(bus.as_ref(), Event::Observation(observation(region, 25.0)))
            .await
            .unwrap();
        deadlines.insert(region.clone(), Instant::now() + late_after);
        tokio::time::sleep(Duration::from_millis(37)).await;
    }
    wait_all(&arrivals, alerts).await;
    let arrivals = arrivals.lock().clone();
    let latencies = regions[..alerts]
        .iter()
        .map(|r| arrivals[r].saturating_duration_since(deadlines[r]))
        .collect();
    report("late_data: deadline passed -> POST", latencies, interval);
    stop.cancel();
    keeper.await.unwrap();
    task.await.unwrap().unwrap();
}

async fn wait_all(arrivals: &Arrivals, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while arrivals.lock().len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} alerts arrived",
            arrivals.lock().len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// (region, rule) pairs evaluated per second, with the latest readings in place.
fn throughput(regions: usize, rules: Vec<RuleConfig>, label: &str) -> f64 {
    let names = names(regions, "R");
    let context = RuleContext {
        regions: names.clone(),
        collection_interval: Duration::from_secs(600),
        since: chrono::Utc::now(),
    };
    let n_rules = rules.len();
    let mut engine = Engine::new(
        rules::build(&rules, &context),
        Lifecycle {
            min_hold: Duration::from_secs(60),
            repeat_interval: Duration::ZERO,
        },
    );
    let now = chrono::Utc::now();
    let ingest = Instant::now();
    for round in 0..6 {
        for (i, name) in names.iter().enumerate() {
            let mut o = observation(name, 25.0 + (i % 7) as f64 * 0.5 + round as f64 * 0.1);
            o.observed_at = now + chrono::Duration::minutes(10 * round);
            o.fetched_at = o.observed_at;
            engine.observe(now, &o);
        }
    }
    let ingest = ingest.elapsed();
    engine.evaluate(now);
    let mut evaluations = 0;
    let started = Instant::now();
    // The engine judges what changed: each evaluation follows a new round of every region.
    while started.elapsed() < Duration::from_millis(300) || evaluations < 3 {
        let round = 6 + evaluations as i64;
        let at = now + chrono::Duration::minutes(10 * round);
        for (i, name) in names.iter().enumerate() {
            let mut o = observation(name, 25.0 + (i % 7) as f64 * 0.5 + round as f64 * 0.1);
            o.observed_at = at;
            o.fetched_at = at;
            engine.observe(at, &o);
        }
        engine.evaluate(at);
        evaluations += 1;
    }
    let per_second = (regions * n_rules * evaluations) as f64 / started.elapsed().as_secs_f64();
    println!(
        "throughput [{label}]: {regions} regions x {n_rules} rules: {:.0} (region, rule) pairs/s, {:.2} ms per round observed and evaluated; ingest {:.0} observations/s",
        per_second,
        started.elapsed().as_secs_f64() * 1e3 / evaluations as f64,
        (regions * 6) as f64 / ingest.as_secs_f64()
    );
    per_second
}

fn main() {
    let scale = scale();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(threshold_latency(50 * scale));
    runtime.block_on(late_data_latency(30 * scale));
    for regions in [14, 140 * scale] {
        let baseline_rules = vec![default_rules()[1].clone()];
        let baseline = throughput(regions, baseline_rules, "baseline: one threshold rule");
        let full = throughput(regions, default_rules(), "default rule set");
        println!(
            "  default rule set / baseline (per pair) = {:.2}",
            full / baseline
        );
    }
}
