//! The backfill runs beside the live rounds, never before them, and gives way to them; its
//! requests keep to `collector.backfill_rate` and pause for a 429's `Retry-After`; what it
//! fetches is marked `backfill: true`.

use crate::fake::{FakeApi, Reply};
use crate::fixtures;
use crate::missed_ticks::{status, until};
use crate::*;
use async_trait::async_trait;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tokio::sync::{mpsc, Semaphore};
use windsock_collector::source::simulated::Simulated;
use windsock_collector::{FetchError, Schedule, Source};
use windsock_core::CancellationToken;

/// An OpenWeatherMap that answers every current and past request.
async fn owm() -> FakeApi {
    FakeApi::start(|req| match req.path.as_str() {
        "/data/3.0/onecall" => Reply::ok(fixtures::one_call(
            req.lat(),
            req.lon(),
            (noon() + chrono::Duration::minutes(15)).timestamp(),
        )),
        "/data/3.0/onecall/timemachine" => {
            let dt: i64 = req.query["dt"].parse().unwrap();
            Reply::ok(fixtures::time_machine(req.lat(), req.lon(), dt))
        }
        _ => Reply::status(404, fixtures::owm_error(json!("404"), "Internal error")),
    })
    .await
}

fn running(collector: &Collector) -> (mpsc::Sender<()>, CancellationToken, RunHandle) {
    let (wake, wakeups) = mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(
        collector
            .clone()
            .run_with_wakeups(shutdown.clone(), wakeups),
    );
    (wake, shutdown, handle)
}

type RunHandle = tokio::task::JoinHandle<Result<(), windsock_collector::CollectorError>>;

#[tokio::test]
async fn live_rounds_complete_while_a_slow_rate_limited_backfill_runs() {
    let api = owm().await;
    let mut config = config(SourceKind::Openweathermap, &api.base, 3);
    // 4 instants x 3 regions = 12 requests, one a second: 11 s at least to finish.
    config.collector.backfill = Duration::from_secs(3600);
    config.collector.backfill_rate = Some(1.0);
    let bus = bus();
    let (collector, clock) = collector(config, &bus, noon() + chrono::Duration::seconds(5));
    let (wake, shutdown, handle) = running(&collector);
    until(&collector, "started the backfill", |s| {
        s["backfill_progress"]["state"] == "running"
    })
    .await;

    clock.set(noon() + chrono::Duration::minutes(15) + chrono::Duration::milliseconds(300));
    wake.send(()).await.unwrap();
    until(&collector, "ran the 12:15 round", |s| {
        s["rounds_completed"] == 1
    })
    .await;
    let answer = status(&collector).await;
    let progress = &answer["backfill_progress"];
    assert_eq!(progress["state"], "running", "{answer:#}");
    assert_eq!(progress["regions_total"], 3);
    assert_eq!(progress["instants"], 4);
    assert_eq!(progress["rate_per_second"], 1.0);
    assert!(answer["backfill"].is_null(), "not finished: {answer:#}");
    assert_eq!(answer["last_round"]["outcomes"]["ok"], 3, "{answer:#}");

    shutdown.cancel();
    handle.await.unwrap().unwrap();
    let observations = observations(&bus).await;
    let live: Vec<&Observation> = observations.iter().filter(|o| !o.backfill).collect();
    let past: Vec<&Observation> = observations.iter().filter(|o| o.backfill).collect();
    assert_eq!(live.len(), 3, "the live round's, not marked");
    assert!(live
        .iter()
        .all(|o| o.observed_at == noon() + chrono::Duration::minutes(15)));
    assert!(!past.is_empty(), "the backfill had fetched some");
    assert!(past.len() < 12, "and was still going: {}", past.len());
    assert!(past.iter().all(|o| o.observed_at <= noon()));
}

/// The simulated weather, counting every fetch; live fetches wait for `live`, past ones for
/// `past` (one permit a fetch).
struct Gated {
    weather: Simulated,
    live: Semaphore,
    past: Semaphore,
    current_calls: AtomicUsize,
    past_calls: AtomicUsize,
}

#[async_trait]
impl Source for Gated {
    fn name(&self) -> &'static str {
        "gated"
    }

    async fn current(&self, region: &Region, tick: Tick) -> Result<Vec<Observation>, FetchError> {
        self.current_calls.fetch_add(1, Ordering::SeqCst);
        self.live.acquire().await.unwrap().forget();
        self.weather.current(region, tick).await
    }

    fn past_batch(&self) -> Option<usize> {
        Some(1)
    }

    async fn past(&self, region: &Region, ticks: &[Tick]) -> Result<Vec<Observation>, FetchError> {
        self.past_calls.fetch_add(1, Ordering::SeqCst);
        self.past.acquire().await.unwrap().forget();
        self.weather.past(region, ticks).await
    }
}

async fn eventually(what: &str, done: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never {what}"));
}

#[tokio::test]
async fn the_backfill_gives_way_to_a_live_round_and_marks_what_it_fetched() {
    let mut config = config(SourceKind::Simulated, "http://unused", 2);
    config.collector.schedule = Some("*/10 * * * * *".into());
    config.collector.backfill = Duration::from_secs(60);
    // One request at a time, so exactly one is under way when the live round starts.
    config.collector.concurrency = 1;
    let clock = ManualClock::new(noon() + chrono::Duration::seconds(3));
    let source = Arc::new(Gated {
        weather: Simulated::new(
            config.collector.simulated.clone(),
            Arc::new(clock.clone()),
            clock.now(),
        ),
        live: Semaphore::new(0),
        past: Semaphore::new(0),
        current_calls: AtomicUsize::new(0),
        past_calls: AtomicUsize::new(0),
    });
    let bus = bus();
    let collector = Collector::with_source(
        Arc::new(config),
        bus.clone(),
        Arc::new(clock.clone()),
        source.clone(),
        Schedule::parse("*/10 * * * * *").unwrap(),
    );
    let (wake, shutdown, handle) = running(&collector);
    eventually("asked for the past", || {
        source.past_calls.load(Ordering::SeqCst) == 1
    })
    .await;

    // The 12:00:10 round starts while the backfill's first request is under way.
    clock.set(noon() + chrono::Duration::milliseconds(10_200));
    wake.send(()).await.unwrap();
    eventually("started the live round", || {
        source.current_calls.load(Ordering::SeqCst) == 1
    })
    .await;
    // Every past request may go now, but none does while the live round is under way.
    source.past.add_permits(1_000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        source.past_calls.load(Ordering::SeqCst),
        1,
        "the backfill waits for the live round"
    );
    assert_eq!(
        status(&collector).await["backfill_progress"]["state"],
        "running"
    );

    source.live.add_permits(1_000);
    until(&collector, "backfilled", |s| !s["backfill"].is_null()).await;
    let answer = status(&collector).await;
    assert_eq!(answer["rounds_completed"], 1);
    let progress = &answer["backfill_progress"];
    assert_eq!(progress["state"], "finished", "{answer:#}");
    assert_eq!(progress["regions_done"], 2);
    assert_eq!(progress["observations"], 2 * 6, "11:59:10 .. 12:00:00");
    assert_eq!(progress["published"], 2 * 6);
    assert_eq!(progress["rate_per_second"], 1_000.0);
    assert_eq!(source.past_calls.load(Ordering::SeqCst), 2 * 6);

    shutdown.cancel();
    handle.await.unwrap().unwrap();
    for o in observations(&bus).await {
        let live = o.observed_at == noon() + chrono::Duration::seconds(10);
        assert_eq!(o.backfill, !live, "{o:?}");
    }
    // On the wire, a live observation carries no `backfill` key at all.
    let envelopes = published(&bus, Topic::Observations).await;
    let live = envelopes
        .iter()
        .map(|e| serde_json::to_value(&e.event).unwrap())
        .find(|v| v["observed_at"] == "2026-11-25T12:00:10Z")
        .unwrap();
    assert!(live.get("backfill").is_none(), "{live}");
}

#[tokio::test]
async fn backfill_requests_keep_to_the_rate() {
    let api = owm().await;
    let mut config = config(SourceKind::Openweathermap, &api.base, 2);
    // 24 instants x 2 regions = 48 requests at 40 a second.
    config.collector.backfill = Duration::from_secs(6 * 3600);
    config.collector.backfill_rate = Some(40.0);
    let bus = bus();
    let (collector, _) = collector(config, &bus, noon() + chrono::Duration::seconds(5));
    let report = collector.backfill().await;
    assert_eq!(report.published, 48, "{report:?}");

    let mut at: Vec<Instant> = api
        .requests_to("/data/3.0/onecall/timemachine")
        .iter()
        .map(|r| r.at)
        .collect();
    at.sort();
    assert_eq!(at.len(), 48);
    // In any half second, at most 20 (evenly spaced: one each 25 ms) and the first; one
    // more for the time a request takes to reach the server.
    let window = Duration::from_millis(500);
    let busiest = (0..at.len())
        .map(|i| at[i..].iter().take_while(|t| **t - at[i] < window).count())
        .max()
        .unwrap();
    assert!(busiest <= 22, "{busiest} requests within {window:?}");
}

#[tokio::test]
async fn a_429_pauses_the_whole_backfill_for_its_retry_after() {
    let served = Arc::new(AtomicUsize::new(0));
    let api = FakeApi::start({
        let served = served.clone();
        move |req| match req.path.as_str() {
            "/data/3.0/onecall/timemachine" => {
                // The third request of all is refused, whichever region's: both regions
                // have most of theirs still to come.
                if served.fetch_add(1, Ordering::SeqCst) == 2 {
                    return Reply::Json {
                        status: 429,
                        body: fixtures::owm_error(json!(429), "Too many requests"),
                        retry_after: Some("1".into()),
                    };
                }
                let dt: i64 = req.query["dt"].parse().unwrap();
                Reply::ok(fixtures::time_machine(req.lat(), req.lon(), dt))
            }
            _ => Reply::status(404, fixtures::owm_error(json!("404"), "Internal error")),
        }
    })
    .await;
    let mut config = config(SourceKind::Openweathermap, &api.base, 2);
    config.collector.backfill = Duration::from_secs(3 * 3600);
    config.collector.backfill_rate = Some(50.0);
    let bus = bus();
    let (collector, _) = collector(config, &bus, noon() + chrono::Duration::seconds(5));
    let report = collector.backfill().await;
    assert_eq!(
        report.published,
        2 * 12,
        "the refused one retried: {report:?}"
    );
    assert_eq!(report.failures, 0);

    let mut at: Vec<Instant> = api
        .requests_to("/data/3.0/onecall/timemachine")
        .iter()
        .map(|r| r.at)
        .collect();
    at.sort();
    assert_eq!(at.len(), 2 * 12 + 1);
    let refused = at[2];
    // Unpaced, the other region's requests would come on at 50 a second in the second after
    // the 429. Paused, at most one let through before the 429 was read may arrive in it.
    let during: Vec<Duration> = at
        .iter()
        .filter(|t| **t > refused && **t - refused < Duration::from_millis(950))
        .map(|t| *t - refused)
        .collect();
    assert!(during.len() <= 2, "requests during the pause: {during:?}");
}

#[tokio::test]
async fn a_second_backfill_counts_its_progress_from_zero() {
    let mut config = config(SourceKind::Simulated, "http://unused", 3);
    config.collector.schedule = Some("*/10 * * * * *".into());
    config.collector.backfill = Duration::from_secs(60);
    let bus = bus();
    let (collector, _) = collector(config, &bus, noon() + chrono::Duration::seconds(3));
    for _ in 0..2 {
        collector.backfill().await;
        let answer = status(&collector).await;
        let progress = &answer["backfill_progress"];
        assert_eq!(progress["state"], "finished", "{answer:#}");
        assert_eq!(progress["regions_done"], 3);
        assert_eq!(progress["observations"], 3 * 6);
    }
}
