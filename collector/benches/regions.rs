//! The collector at 10,000 regions with the simulated source, on the embedded bus with no
//! consumer (so the bus never holds it back): how long one live round takes, and how fast
//! a 72-hour hourly backfill (720,000 observations) goes beside the bus's own speed (the
//! same observations, already encoded, published in batches of 1,000) and beside the least
//! any producer does (encode them, then publish, on one thread). The backfill should run at
//! that speed or better: the simulated weather is its only other cost, and it encodes on
//! every core.
//!
//! `WINDSOCK_BENCH_REGIONS` (default 10000) and `WINDSOCK_BENCH_HOURS` (default 72) scale it.
//! Run: `cargo bench -p windsock-collector --bench regions`.

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};
use windsock_collector::Collector;
use windsock_core::bus::{EmbeddedBus, Topic};
use windsock_core::clock::ManualClock;
use windsock_core::config::{BusConfig, Config, Region};
use windsock_core::event::{Envelope, Event};
use windsock_core::SharedBus;

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` regions on a grid over Senegal, as a generated config file would list them.
fn grid(n: usize) -> Vec<Region> {
    let columns = (n as f64).sqrt().ceil() as usize;
    (0..n)
        .map(|i| {
            let (row, column) = (i / columns, i % columns);
            let lat = 12.3 + 4.4 * row as f64 / columns as f64;
            let lon = -17.5 + 6.1 * column as f64 / columns as f64;
            Region::new(&format!("R{i:05}"), lat, lon)
        })
        .collect()
}

fn bus(capacity: usize) -> SharedBus {
    Arc::new(EmbeddedBus::new(&BusConfig {
        capacity,
        ..BusConfig::default()
    }))
}

fn main() {
    let regions = var("WINDSOCK_BENCH_REGIONS", 10_000).max(1);
    let hours = var("WINDSOCK_BENCH_HOURS", 72).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let start: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 30).unwrap();
    let mut config = Config {
        regions: grid(regions),
        ..Config::default()
    };
    config.collector.schedule = Some("0 0 * * * *".into());
    config.collector.backfill = Duration::from_secs(hours as u64 * 3600);
    let config = Arc::new(config);
    let observations = regions * hours;
    println!("collector: {regions} simulated regions, {hours} h of hourly backfill ({observations} observations)");

    runtime.block_on(async {
        let collector = Collector::with_clock(
            config.clone(),
            bus(observations + regions + 1),
            Arc::new(ManualClock::new(start)),
        )
        .expect("a collector");
        let tick = collector.schedule().tick_at(start).expect("a tick");
        let weather = windsock_collector::source::simulated::Simulated::new(
            config.collector.simulated.clone(),
            Arc::new(ManualClock::new(start)),
            start,
        );
        let mut fetched = Vec::with_capacity(observations);
        for region in &config.regions {
            for hour in 0..hours {
                let at = tick.at - chrono::Duration::hours(hour as i64);
                fetched.extend(weather.observe(region, at));
            }
        }
        let encode = |fetched: Vec<windsock_core::event::Observation>| -> Vec<(String, Bytes)> {
            fetched
                .into_iter()
                .map(|o| {
                    let event = Event::Observation(o);
                    (event.key(), Bytes::from(Envelope::new(event).to_json()))
                })
                .collect()
        };
        let publish = |messages: Vec<(String, Bytes)>| async move {
            let alone = bus(messages.len() + 1);
            let mut messages = messages.into_iter().peekable();
            while messages.peek().is_some() {
                let batch: Vec<_> = messages.by_ref().take(1_000).collect();
                alone
                    .publish_batch(Topic::Observations, batch)
                    .await
                    .expect("published");
            }
        };
        let messages = encode(fetched.clone());
        let began = Instant::now();
        publish(messages).await;
        let bus_rate = observations as f64 / began.elapsed().as_secs_f64();
        let began = Instant::now();
        publish(encode(fetched)).await;
        let producer_rate = observations as f64 / began.elapsed().as_secs_f64();

        let began = Instant::now();
        let round = collector.round(tick).await;
        let round_time = began.elapsed();
        assert_eq!(round.regions.len(), regions);

        let began = Instant::now();
        let report = collector.backfill().await;
        let backfill_time = began.elapsed();
        assert_eq!(report.published, observations, "{report:?}");
        let backfill_rate = observations as f64 / backfill_time.as_secs_f64();

        println!(
            "live round of {regions} regions        {:>10.1} ms",
            round_time.as_secs_f64() * 1000.0
        );
        println!(
            "backfill (fetch, encode, publish)   {:>10.0} obs/s  ({:.2} s)",
            backfill_rate,
            backfill_time.as_secs_f64()
        );
        println!("bus alone (publish pre-encoded)     {bus_rate:>10.0} obs/s");
        println!("encode and publish, one thread      {producer_rate:>10.0} obs/s");
        println!(
            "backfill / bus alone                {:>10.2}",
            backfill_rate / bus_rate
        );
        println!(
            "backfill / encode and publish       {:>10.2}",
            backfill_rate / producer_rate
        );
    });
}
