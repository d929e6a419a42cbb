//! Scheduled instants whose round did not start in time (a suspended process, a starved
//! runtime, rounds overrunning every slot) are logged, counted, shown in the status and
//! fetched from the past; a round that starts late is logged. The loop is woken by hand on a
//! `ManualClock`, so nothing waits for the real schedule.

use crate::*;
use async_trait::async_trait;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;
use windsock_collector::source::simulated::Simulated;
use windsock_collector::{FetchError, Schedule, Source};
use windsock_core::CancellationToken;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Captures this thread's log records (the tests run on a current-thread runtime, so the
    /// collector's tasks log here too).
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn lines(&self, containing: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock())
            .lines()
            .filter(|l| l.contains(containing))
            .map(str::to_string)
            .collect()
    }
}

pub async fn status(collector: &Collector) -> serde_json::Value {
    let response = collector
        .routes()
        .oneshot(
            axum::http::Request::get("/api/collector/status")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let answer = serde_json::from_slice(&body).unwrap();
    assert_documented(&answer);
    answer
}

/// Polls the status until `done` holds (the loop runs on this thread: each poll yields to it).
pub async fn until(collector: &Collector, what: &str, done: impl Fn(&serde_json::Value) -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if done(&status(collector).await) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "never {what}: {:#}",
        status(collector).await
    );
}

fn missed_total() -> f64 {
    let text = windsock_core::telemetry::prometheus().render();
    text.lines()
        .find(|l| l.starts_with("windsock_collector_missed_ticks_total{service=\"collector\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

fn at(seconds: i64, millis: i64) -> DateTime<Utc> {
    noon() + chrono::Duration::seconds(seconds) + chrono::Duration::milliseconds(millis)
}

async fn observed_at(bus: &SharedBus, instant: DateTime<Utc>) -> Vec<String> {
    let mut regions: Vec<String> = observations(bus)
        .await
        .into_iter()
        .filter(|o| o.observed_at == instant)
        .map(|o| o.region)
        .collect();
    regions.sort();
    regions.dedup();
    regions
}

#[tokio::test]
async fn a_suspended_process_logs_counts_and_fetches_the_instants_it_missed() {
    let logs = Captured::default();
    let _guard = logs.install();
    let mut config = config(SourceKind::Simulated, "http://unused", 3);
    config.collector.schedule = Some("*/10 * * * * *".into());
    config.collector.backfill = Duration::from_secs(120);
    let bus = bus();
    let (collector, clock) = collector(config, &bus, at(3, 0));
    let (wake, wakeups) = mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(
        collector
            .clone()
            .run_with_wakeups(shutdown.clone(), wakeups),
    );
    until(&collector, "backfilled", |s| !s["backfill"].is_null()).await;
    let counted_before = missed_total();

    // On time: no miss.
    clock.set(at(10, 300));
    wake.send(()).await.unwrap();
    until(&collector, "ran the 12:00:10 round", |s| {
        s["rounds_completed"] == 1
    })
    .await;
    assert_eq!(status(&collector).await["missed_ticks"]["total"], 0);

    // Suspended from 12:00:15 to 12:01:00.4: 12:00:20 to 12:00:50 were missed.
    clock.set(at(60, 400));
    wake.send(()).await.unwrap();
    until(&collector, "caught up", |s| {
        s["rounds_completed"] == 2 && !s["missed_ticks"]["last"]["catch_up"].is_null()
    })
    .await;
    let missed = status(&collector).await["missed_ticks"].clone();
    assert_eq!(missed["total"], 4, "{missed:#}");
    let last = &missed["last"];
    assert_eq!(last["count"], 4);
    assert_eq!(last["oldest"], "2026-11-25T12:00:20Z");
    assert_eq!(last["newest"], "2026-11-25T12:00:50Z");
    assert_eq!(last["late_seconds"], 40.4);
    assert_eq!(last["catching_up"], 4);
    assert_eq!(last["catch_up"]["published"], 4 * 3, "{last:#}");
    assert!(last.get("not_fetched").is_none(), "{last:#}");
    assert!(
        missed_total() >= counted_before + 4.0,
        "the counter counts the 4 missed instants"
    );
    let warned = logs.lines("scheduled collection instants were missed");
    assert_eq!(warned.len(), 1, "one warning per occurrence: {warned:?}");
    assert!(
        warned[0].contains("WARN") && warned[0].contains("missed=4"),
        "{}",
        warned[0]
    );
    for second in [20, 30, 40, 50] {
        assert_eq!(
            observed_at(&bus, at(second, 0)).await.len(),
            3,
            "every region has an observation for the missed 12:00:{second}"
        );
    }
    assert_eq!(
        observed_at(&bus, at(60, 0)).await.len(),
        3,
        "the live round ran"
    );
    let catch_up_logs = logs_with_phase(&bus, "catch_up").await;
    assert_eq!(catch_up_logs, 3, "one fetch outcome per region");

    // Late within its own slot (12:01:10 started at 12:01:13): logged, not missed.
    clock.set(at(73, 0));
    wake.send(()).await.unwrap();
    until(&collector, "ran the 12:01:10 round", |s| {
        s["rounds_completed"] == 3
    })
    .await;
    assert_eq!(status(&collector).await["missed_ticks"]["total"], 4);
    let late = logs.lines("collection round started late");
    assert_eq!(late.len(), 1, "{late:?}");
    assert!(late[0].contains("late_s=3"), "{}", late[0]);

    shutdown.cancel();
    running.await.unwrap().unwrap();
}

async fn logs_with_phase(bus: &SharedBus, phase: &str) -> usize {
    logs(bus)
        .await
        .iter()
        .filter(|l| l.fields.get("phase").and_then(|p| p.as_str()) == Some(phase))
        .count()
}

/// The simulated weather, with live fetches held until the gate opens.
struct Gated {
    weather: Simulated,
    open: watch::Receiver<bool>,
    calls: AtomicUsize,
}

#[async_trait]
impl Source for Gated {
    fn name(&self) -> &'static str {
        "gated"
    }

    async fn current(&self, region: &Region, tick: Tick) -> Result<Vec<Observation>, FetchError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.clone();
        open.wait_for(|open| *open).await.unwrap();
        self.weather.current(region, tick).await
    }

    fn past_batch(&self) -> Option<usize> {
        self.weather.past_batch()
    }

    async fn past(&self, region: &Region, ticks: &[Tick]) -> Result<Vec<Observation>, FetchError> {
        self.weather.past(region, ticks).await
    }
}

#[tokio::test]
async fn rounds_overrunning_every_slot_make_the_next_instant_missed_and_caught_up() {
    let logs = Captured::default();
    let _guard = logs.install();
    let mut config = config(SourceKind::Simulated, "http://unused", 2);
    config.collector.schedule = Some("*/10 * * * * *".into());
    config.collector.backfill = Duration::from_secs(60);
    let clock = ManualClock::new(at(3, 0));
    let (gate, open) = watch::channel(false);
    let source = Arc::new(Gated {
        weather: Simulated::new(
            config.collector.simulated.clone(),
            Arc::new(clock.clone()),
            clock.now(),
        ),
        open,
        calls: AtomicUsize::new(0),
    });
    let bus = bus();
    let collector = Collector::with_source(
        Arc::new(config),
        bus.clone(),
        Arc::new(clock.clone()),
        source.clone(),
        Schedule::parse("*/10 * * * * *").unwrap(),
    );
    let (wake, wakeups) = mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(
        collector
            .clone()
            .run_with_wakeups(shutdown.clone(), wakeups),
    );
    until(&collector, "backfilled", |s| !s["backfill"].is_null()).await;

    // Four rounds, each started on time and stuck on the API: every slot is taken.
    for (n, second) in [10, 20, 30, 40].into_iter().enumerate() {
        clock.set(at(second, 200));
        wake.send(()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while source.calls.load(Ordering::SeqCst) < (n + 1) * 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the round started");
    }
    // 12:00:50 fires while no slot is free; when one frees up, 12:01:00 has come too.
    clock.set(at(50, 200));
    wake.send(()).await.unwrap();
    clock.set(at(60, 500));
    gate.send(true).unwrap();
    until(&collector, "caught up", |s| {
        s["rounds_completed"] == 5 && !s["missed_ticks"]["last"]["catch_up"].is_null()
    })
    .await;

    let missed = status(&collector).await["missed_ticks"].clone();
    assert_eq!(missed["total"], 1, "{missed:#}");
    assert_eq!(missed["last"]["oldest"], "2026-11-25T12:00:50Z");
    assert_eq!(missed["last"]["catch_up"]["published"], 2);
    assert_eq!(observed_at(&bus, at(50, 0)).await.len(), 2);
    assert_eq!(observed_at(&bus, at(60, 0)).await.len(), 2);
    assert_eq!(
        logs.lines("scheduled collection instants were missed")
            .len(),
        1
    );

    shutdown.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn missed_instants_beyond_the_look_back_are_counted_and_said_not_fetched() {
    let mut config = config(SourceKind::Simulated, "http://unused", 1);
    config.collector.schedule = Some("* * * * * *".into());
    config.collector.backfill = Duration::from_secs(5);
    let bus = bus();
    let (collector, clock) = collector(config, &bus, at(0, 500));
    let (wake, wakeups) = mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(
        collector
            .clone()
            .run_with_wakeups(shutdown.clone(), wakeups),
    );
    until(&collector, "backfilled", |s| !s["backfill"].is_null()).await;

    // A day suspended on a per-second schedule: 86,399 missed, the last 5 s fetched.
    clock.set(at(86_400, 100));
    wake.send(()).await.unwrap();
    until(&collector, "caught up", |s| {
        !s["missed_ticks"]["last"]["catch_up"].is_null()
    })
    .await;
    let last = status(&collector).await["missed_ticks"]["last"].clone();
    assert_eq!(last["count"], 86_399, "{last:#}");
    assert_eq!(last["oldest"], "2026-11-25T12:00:01Z");
    assert_eq!(last["catching_up"], 4, "11:59:56 .. 11:59:59 the next day");
    assert_eq!(last["catch_up"]["published"], 4);
    let why = last["not_fetched"].as_str().unwrap();
    assert!(
        why.contains("86395 missed instants are older than collector.backfill (5s)"),
        "{why}"
    );

    shutdown.cancel();
    running.await.unwrap().unwrap();
}
