//! The indexer on a bus: commit-then-ack, idempotence, dead letters, restarts, retention.

mod common;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Duration;
use common::start;
use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};
use tokio_util::sync::CancellationToken;
use windsock_core::bus::{
    publish_event, Bus, BusError, Delivery, EmbeddedBus, SharedBus, Subscription, Topic,
};
use windsock_core::clock::ManualClock;
use windsock_core::config::{BusKind, Config};
use windsock_core::event::Envelope;
use windsock_indexer::search::{SearchRequest, Sort};
use windsock_indexer::{synthetic, EventIndex, Indexer};

fn config(dir: &std::path::Path) -> Arc<Config> {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    config.indexer.commit_interval = StdDuration::from_millis(100);
    config.indexer.writer_memory_mb = 20;
    Arc::new(config)
}

/// Waits (up to 30 s) until `check` holds; the index commits within 100 ms here, so this only
/// waits long on a badly overloaded machine.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + StdDuration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

fn ids(index: &EventIndex) -> Vec<String> {
    let all = SearchRequest {
        q: "*".into(),
        from: chrono::DateTime::UNIX_EPOCH,
        to: chrono::Utc::now() + Duration::days(3650),
        limit: 100_000,
        offset: 0,
        sort: Sort::Oldest,
        aggregate: false,
    };
    index
        .search(&all)
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.id)
        .collect()
}

async fn publish_all(bus: &dyn Bus, events: &[Envelope]) {
    for e in events {
        publish_event(bus, e.event.clone()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_events_become_searchable_once_even_when_delivered_twice() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let bus: SharedBus = Arc::new(EmbeddedBus::new(&config.bus));
    let indexer = Indexer::new(config.clone(), bus.clone()).await.unwrap();
    let index = indexer.index().clone();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(indexer.run(shutdown.clone()));

    let events = synthetic::events(500, start(), Duration::hours(6), 1);
    publish_all(bus.as_ref(), &events).await;
    publish_all(bus.as_ref(), &events[..200]).await; // a producer retrying
    bus.publish(
        Topic::Observations,
        "Dakar",
        Bytes::from_static(b"{not json"),
    )
    .await
    .unwrap();

    eventually("every event and the dead letter", || index.len() == 501).await;
    let mut got = ids(&index);
    got.sort();
    let mut want: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let letter = index
        .search(&SearchRequest {
            q: "kind:dead_letter AND service:indexer".into(),
            from: chrono::DateTime::UNIX_EPOCH,
            to: chrono::Utc::now() + Duration::hours(1),
            limit: 10,
            offset: 0,
            sort: Sort::Newest,
            aggregate: true,
        })
        .unwrap();
    assert_eq!(letter.total, 1);
    assert!(
        letter.hits[0].message.contains("not a windsock event"),
        "{}",
        letter.hits[0].message
    );
    want.push(letter.hits[0].id.clone());
    want.sort();
    assert_eq!(got, want, "each event exactly once");

    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(
        bus.subscribe(&[Topic::Observations], "probe")
            .await
            .unwrap()
            .lag(),
        Some(0),
        "a new group sees only what is retained"
    );
}

/// A bus that says it is Kafka and loses acks, like a crash between the index commit and the
/// offset commit: a restarted indexer is sent everything again.
struct AckLosingBus {
    inner: EmbeddedBus,
    acked: Arc<Mutex<Vec<(Topic, i32, i64)>>>,
}

struct AckLosingSubscription {
    inner: Box<dyn Subscription>,
    acked: Arc<Mutex<Vec<(Topic, i32, i64)>>>,
}

#[async_trait]
impl Bus for AckLosingBus {
    async fn publish(&self, topic: Topic, key: &str, payload: Bytes) -> Result<(), BusError> {
        self.inner.publish(topic, key, payload).await
    }
    async fn subscribe(
        &self,
        topics: &[Topic],
        group: &str,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let inner = self.inner.subscribe(topics, group).await?;
        Ok(Box::new(AckLosingSubscription {
            inner,
            acked: self.acked.clone(),
        }))
    }
    async fn replay(&self, topic: Topic) -> Result<Box<dyn Subscription>, BusError> {
        self.inner.replay(topic).await
    }
    fn kind(&self) -> BusKind {
        BusKind::Kafka
    }
}

#[async_trait]
impl Subscription for AckLosingSubscription {
    async fn next(&mut self) -> Result<Option<Delivery>, BusError> {
        self.inner.next().await
    }
    fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        self.acked
            .lock()
            .push((delivery.topic, delivery.partition, delivery.offset));
        Ok(())
    }
    async fn commit(&mut self) -> Result<(), BusError> {
        Ok(())
    }
    fn lag(&self) -> Option<i64> {
        self.inner.lag()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_the_offsets_in_the_commit_payload() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let acked = Arc::new(Mutex::new(Vec::new()));
    let bus: SharedBus = Arc::new(AckLosingBus {
        inner: EmbeddedBus::new(&config.bus),
        acked: acked.clone(),
    });
    let events = synthetic::events(300, start(), Duration::hours(6), 2);

    let first = Indexer::new(config.clone(), bus.clone()).await.unwrap();
    let index = first.index().clone();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(first.run(shutdown.clone()));
    publish_all(bus.as_ref(), &events).await;
    eventually("the first run to index everything", || index.len() == 300).await;
    shutdown.cancel();
    running.await.unwrap().unwrap();
    drop(index);

    let payload = EventIndex::open(&dir.path().join("index"))
        .unwrap()
        .committed()
        .unwrap();
    assert_eq!(payload.bus, "kafka");
    let recorded: i64 = payload
        .offsets
        .values()
        .flat_map(|p| p.values())
        .map(|last| last + 1)
        .sum();
    assert_eq!(
        recorded, 300,
        "the payload holds the last offset of every partition"
    );

    // The bus redelivers all 300 (their acks were lost); the restarted indexer skips them.
    acked.lock().clear();
    let second = Indexer::new(config.clone(), bus.clone()).await.unwrap();
    let index = second.index().clone();
    let opstamp = index.index.load_metas().unwrap().opstamp;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(second.run(shutdown.clone()));
    eventually("the redelivered events to be acked", || {
        acked.lock().len() == 300
    })
    .await;
    assert_eq!(
        index.index.load_metas().unwrap().opstamp,
        opstamp,
        "nothing was indexed again"
    );

    let more = synthetic::events(20, start() + Duration::hours(7), Duration::hours(1), 3);
    publish_all(bus.as_ref(), &more).await;
    eventually("the new events", || index.len() == 320).await;
    shutdown.cancel();
    running.await.unwrap().unwrap();
    let got: BTreeSet<String> = ids(&index).into_iter().collect();
    let want: BTreeSet<String> = events.iter().chain(&more).map(|e| e.id.clone()).collect();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_acked_with_the_commit_of_the_events_before_it() {
    // No commit before shutdown: the events before the malformed message stay uncommitted.
    let dir = tempfile::tempdir().unwrap();
    let mut settings = (*config(dir.path())).clone();
    settings.indexer.commit_interval = StdDuration::from_secs(3600);
    // One partition a topic, so the logs' offsets are their order.
    settings.bus.partitions = 1;
    let config = Arc::new(settings);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let bus: SharedBus = Arc::new(AckLosingBus {
        inner: EmbeddedBus::new(&config.bus),
        acked: acked.clone(),
    });
    let indexer = Indexer::new(config.clone(), bus.clone()).await.unwrap();
    let index = indexer.index().clone();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(indexer.run(shutdown.clone()));

    let events = synthetic::events(50, start(), Duration::hours(1), 5);
    publish_all(bus.as_ref(), &events).await;
    bus.publish(Topic::Logs, "collector", Bytes::from_static(b"{not json"))
        .await
        .unwrap();
    let mut letters = bus.replay(Topic::DeadLetters).await.unwrap();
    tokio::time::timeout(StdDuration::from_secs(30), letters.next())
        .await
        .expect("the malformed message is dead-lettered")
        .unwrap()
        .expect("a dead letter");
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    assert!(
        acked.lock().is_empty(),
        "nothing is acked before the commit, the dead letter neither: {:?}",
        acked.lock()
    );
    assert_eq!(index.len(), 0);

    shutdown.cancel();
    running.await.unwrap().unwrap();
    let got: BTreeSet<String> = ids(&index).into_iter().collect();
    assert!(
        events.iter().all(|e| got.contains(&e.id)),
        "the shutdown's commit holds the events"
    );
    let logs_acked = acked
        .lock()
        .iter()
        .filter(|(topic, _, _)| *topic == Topic::Logs)
        .map(|(_, _, offset)| *offset)
        .max();
    let logs = events
        .iter()
        .filter(|e| Topic::of(&e.event) == Topic::Logs)
        .count() as i64;
    assert_eq!(
        logs_acked,
        Some(logs),
        "the commit acks the logs partition up to the dead letter (offset {logs})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_bus_restarts_from_zero_and_upserts_keep_one_copy() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let events = synthetic::events(200, start(), Duration::hours(2), 4);
    for round in 0..2 {
        // A new process: a new embedded bus whose offsets start at 0 again.
        let bus: SharedBus = Arc::new(EmbeddedBus::new(&config.bus));
        let indexer = Indexer::new(config.clone(), bus.clone()).await.unwrap();
        let index = indexer.index().clone();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(indexer.run(shutdown.clone()));
        let batch = &events[..100 + 100 * round];
        publish_all(bus.as_ref(), batch).await;
        eventually("the batch", || index.len() == batch.len() as u64).await;
        shutdown.cancel();
        running.await.unwrap().unwrap();
        assert_eq!(ids(&index).len(), batch.len(), "round {round}");
    }
}

/// A copy of `envelope` with the same id but a different observed temperature (a
/// backfill correcting a reading).
fn corrected(envelope: &Envelope, temperature_c: f64) -> Bytes {
    let mut json: serde_json::Value = serde_json::from_slice(&envelope.to_json()).unwrap();
    json["temperature_c"] = temperature_c.into();
    Bytes::from(serde_json::to_vec(&json).unwrap())
}

/// The indexer skips the delete-by-id for ids it has never seen; a duplicate arriving after
/// the first copy was committed, and after a restart (the seen ids come from the index
/// then), must still replace it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_after_a_commit_or_a_restart_replaces_the_earlier_copy() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let events = synthetic::events(300, start(), Duration::hours(6), 6);
    let observation = events
        .iter()
        .find(|e| matches!(e.event, windsock_core::event::Event::Observation(_)))
        .expect("the synthetic stream has observations")
        .clone();
    let temperature = |index: &EventIndex| {
        index.get(&observation.id).unwrap().expect("indexed").event["temperature_c"]
            .as_f64()
            .unwrap()
    };
    for (round, corrected_to) in [(0, 41.5), (1, -3.25)] {
        // Round 1 is a new process on the same index directory.
        let bus: SharedBus = Arc::new(EmbeddedBus::new(&config.bus));
        let indexer = Indexer::new(config.clone(), bus.clone()).await.unwrap();
        let index = indexer.index().clone();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(indexer.run(shutdown.clone()));
        publish_all(bus.as_ref(), &events).await;
        eventually("every event", || index.len() == 300).await;
        // Committed now; the same events again (a redelivery), and one corrected.
        publish_all(bus.as_ref(), &events[..100]).await;
        bus.publish(
            Topic::Observations,
            &observation.event.key(),
            corrected(&observation, corrected_to),
        )
        .await
        .unwrap();
        eventually("the corrected copy", || temperature(&index) == corrected_to).await;
        shutdown.cancel();
        running.await.unwrap().unwrap();
        let got = ids(&index);
        assert_eq!(got.len(), 300, "round {round}: one copy of each event");
        let got: BTreeSet<String> = got.into_iter().collect();
        let want: BTreeSet<String> = events.iter().map(|e| e.id.clone()).collect();
        assert_eq!(got, want, "round {round}");
        let hits = index
            .search(&SearchRequest {
                q: format!("id:{}", observation.id),
                from: chrono::DateTime::UNIX_EPOCH,
                to: chrono::Utc::now() + Duration::days(3650),
                limit: 10,
                offset: 0,
                sort: Sort::Newest,
                aggregate: false,
            })
            .unwrap();
        assert_eq!(hits.total, 1, "round {round}: the corrected event once");
        assert_eq!(temperature(&index), corrected_to, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_older_than_the_retention_are_deleted_as_the_clock_moves() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = (*config(dir.path())).clone();
    config.indexer.retention = StdDuration::from_secs(24 * 3600);
    let config = Arc::new(config);
    let clock = ManualClock::new(start() + Duration::days(2));
    let bus: SharedBus = Arc::new(EmbeddedBus::new(&config.bus));
    let indexer = Indexer::with_clock(config.clone(), bus.clone(), Arc::new(clock.clone()))
        .await
        .unwrap()
        .retention_every(StdDuration::from_millis(50));
    let index = indexer.index().clone();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(indexer.run(shutdown.clone()));

    let events = synthetic::events(1000, start(), Duration::days(2), 5);
    publish_all(bus.as_ref(), &events).await;
    let kept = |now: chrono::DateTime<chrono::Utc>| -> BTreeSet<String> {
        events
            .iter()
            .filter(|e| e.event.timestamp() >= now - Duration::days(1))
            .map(|e| e.id.clone())
            .collect()
    };
    let want = kept(clock.now());
    eventually("the first day to be deleted", || {
        index.len() == want.len() as u64
    })
    .await;
    assert_eq!(ids(&index).into_iter().collect::<BTreeSet<_>>(), want);

    clock.advance(Duration::hours(12));
    let want = kept(clock.now());
    eventually("the next 12 hours to be deleted", || {
        index.len() == want.len() as u64
    })
    .await;
    assert_eq!(ids(&index).into_iter().collect::<BTreeSet<_>>(), want);
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

use windsock_core::clock::Clock;
