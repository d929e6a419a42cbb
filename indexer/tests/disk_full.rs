//! The indexer on a full disk: it stops taking messages, acks nothing it has not committed,
//! keeps serving what is committed, says so on the logs topic, and resumes by itself when
//! space returns, with every event indexed exactly once.
//!
//! The disk is a tantivy `Directory` over a real one whose writes fail with `StorageFull`
//! while a switch is on (as ENOSPC does: opening a file, writing to it, `meta.json`).

mod common;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Duration;
use common::start;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};
use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    AntiCallToken, Directory, DirectoryLock, FileHandle, Lock, MmapDirectory, TerminatingWrite,
    WatchCallback, WatchHandle, WritePtr,
};
use tokio_util::sync::CancellationToken;
use windsock_core::bus::{
    publish_event, Bus, BusError, Delivery, EmbeddedBus, EventSubscription, SharedBus,
    Subscription, Topic,
};
use windsock_core::clock;
use windsock_core::config::{BusKind, Config};
use windsock_core::event::{Envelope, Event, HealthCondition};
use windsock_indexer::search::{SearchRequest, Sort};
use windsock_indexer::{synthetic, EventIndex, Indexer};

/// A directory whose writes fail as on a full disk while `full` is set.
#[derive(Clone, Debug)]
struct FullDisk {
    inner: MmapDirectory,
    full: Arc<AtomicBool>,
    /// Writes refused so far (each commit attempt on the full disk adds some).
    refused: Arc<AtomicU64>,
}

impl FullDisk {
    fn no_space(&self) -> io::Error {
        self.refused.fetch_add(1, Ordering::SeqCst);
        io::Error::from(io::ErrorKind::StorageFull)
    }

    fn is_full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }
}

impl Directory for FullDisk {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        self.inner.get_file_handle(path)
    }
    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        self.inner.delete(path)
    }
    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.inner.exists(path)
    }
    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        if self.is_full() {
            return Err(OpenWriteError::wrap_io_error(
                self.no_space(),
                path.to_path_buf(),
            ));
        }
        let inner = self.inner.open_write(path)?;
        Ok(io::BufWriter::new(Box::new(FullWrite {
            inner,
            disk: self.clone(),
        })))
    }
    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.inner.atomic_read(path)
    }
    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        if self.is_full() {
            return Err(self.no_space());
        }
        self.inner.atomic_write(path, data)
    }
    fn sync_directory(&self) -> io::Result<()> {
        self.inner.sync_directory()
    }
    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        self.inner.acquire_lock(lock)
    }
    fn watch(&self, callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.inner.watch(callback)
    }
}

/// A file being written on a [`FullDisk`]: its writes fail while the disk is full.
struct FullWrite {
    inner: WritePtr,
    disk: FullDisk,
}

impl Write for FullWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.disk.is_full() {
            return Err(self.disk.no_space());
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.disk.is_full() {
            return Err(self.disk.no_space());
        }
        self.inner.flush()
    }
}

impl TerminatingWrite for FullWrite {
    fn terminate_ref(&mut self, token: AntiCallToken) -> io::Result<()> {
        if self.disk.is_full() {
            return Err(self.disk.no_space());
        }
        self.inner.terminate_ref(token)
    }
}

/// What the indexer's group was handed and acked, per partition.
#[derive(Default)]
struct Ledger {
    handed: BTreeMap<(Topic, i32), Vec<i64>>,
    acked: BTreeMap<(Topic, i32), i64>,
    /// Acks made while the disk was full.
    acked_while_full: u64,
}

impl Ledger {
    fn handed(&self) -> usize {
        self.handed.values().map(Vec::len).sum()
    }

    /// Deliveries handed out that no ack covers yet.
    fn unacked(&self) -> usize {
        self.handed
            .iter()
            .map(|(partition, offsets)| {
                let acked = self.acked.get(partition).copied().unwrap_or(-1);
                offsets.iter().filter(|&&o| o > acked).count()
            })
            .sum()
    }
}

/// The embedded bus, with the indexer's deliveries and acks written in a [`Ledger`].
struct LedgerBus {
    inner: EmbeddedBus,
    ledger: Arc<Mutex<Ledger>>,
    full: Arc<AtomicBool>,
}

struct LedgerSubscription {
    inner: Box<dyn Subscription>,
    ledger: Arc<Mutex<Ledger>>,
    full: Arc<AtomicBool>,
}

#[async_trait]
impl Bus for LedgerBus {
    async fn publish(&self, topic: Topic, key: &str, payload: Bytes) -> Result<(), BusError> {
        self.inner.publish(topic, key, payload).await
    }
    async fn subscribe(
        &self,
        topics: &[Topic],
        group: &str,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let inner = self.inner.subscribe(topics, group).await?;
        if group != windsock_indexer::GROUP {
            return Ok(inner);
        }
        Ok(Box::new(LedgerSubscription {
            inner,
            ledger: self.ledger.clone(),
            full: self.full.clone(),
        }))
    }
    async fn replay(&self, topic: Topic) -> Result<Box<dyn Subscription>, BusError> {
        self.inner.replay(topic).await
    }
    fn kind(&self) -> BusKind {
        self.inner.kind()
    }
}

#[async_trait]
impl Subscription for LedgerSubscription {
    async fn next(&mut self) -> Result<Option<Delivery>, BusError> {
        let next = self.inner.next().await?;
        if let Some(delivery) = &next {
            self.ledger
                .lock()
                .handed
                .entry((delivery.topic, delivery.partition))
                .or_default()
                .push(delivery.offset);
        }
        Ok(next)
    }
    fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let mut ledger = self.ledger.lock();
        if self.full.load(Ordering::SeqCst) {
            ledger.acked_while_full += 1;
        }
        let acked = ledger
            .acked
            .entry((delivery.topic, delivery.partition))
            .or_insert(delivery.offset);
        *acked = (*acked).max(delivery.offset);
        drop(ledger);
        self.inner.ack(delivery)
    }
    async fn commit(&mut self) -> Result<(), BusError> {
        self.inner.commit().await
    }
    fn lag(&self) -> Option<i64> {
        self.inner.lag()
    }
}

/// Waits (up to 30 s) until `check` holds.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + StdDuration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(StdDuration::from_millis(10)).await;
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
    let mut ids: Vec<String> = index
        .search(&all)
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.id)
        .collect();
    ids.sort();
    ids
}

async fn publish_all(bus: &dyn Bus, events: &[Envelope]) {
    for e in events {
        publish_event(bus, e.event.clone()).await.unwrap();
    }
}

/// The next health condition on the logs topic, with its event's id.
async fn next_condition(logs: &mut EventSubscription) -> (String, HealthCondition) {
    let deadline = StdDuration::from_secs(30);
    loop {
        let (delivery, envelope) = tokio::time::timeout(deadline, logs.next())
            .await
            .expect("a health condition within 30 s")
            .unwrap()
            .expect("the bus is open");
        logs.ack(&delivery).unwrap();
        if let Event::Log(log) = &envelope.event {
            if let Some(condition) = log.health() {
                return (envelope.id, condition);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_holds_the_events_unacked_and_indexes_each_once_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.indexer.commit_interval = StdDuration::from_millis(50);
    config.indexer.writer_memory_mb = 20;
    let config = Arc::new(config);

    let full = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let bus: SharedBus = Arc::new(LedgerBus {
        inner: EmbeddedBus::new(&config.bus),
        ledger: ledger.clone(),
        full: full.clone(),
    });
    let mut logs = EventSubscription::new(bus.clone(), &[Topic::Logs], "watcher")
        .await
        .unwrap();

    let path = dir.path().join("index");
    std::fs::create_dir_all(&path).unwrap();
    let disk = FullDisk {
        inner: MmapDirectory::open(&path).unwrap(),
        full: full.clone(),
        refused: refused.clone(),
    };
    let index = EventIndex::open_in(disk, &path).unwrap();
    let indexer = Indexer::with_index(config.clone(), bus.clone(), clock::system(), index)
        .await
        .unwrap()
        .disk_full_retry(StdDuration::from_millis(20), StdDuration::from_millis(100));
    let index = indexer.index().clone();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(indexer.run(shutdown.clone()));

    let events = synthetic::events(300, start(), Duration::hours(6), 3);
    let (before, rest) = events.split_at(100);
    let (while_full, after_stall) = rest.split_at(150);
    publish_all(bus.as_ref(), before).await;
    eventually("the first events committed and acked", || {
        ids(&index).len() == 100 && ledger.lock().unacked() == 0
    })
    .await;

    full.store(true, Ordering::SeqCst);
    publish_all(bus.as_ref(), while_full).await;
    let (failing_id, failing) = next_condition(&mut logs).await;
    assert_eq!(failing.service, "indexer");
    assert_eq!(failing.condition, "disk_full");
    assert!(failing.failing);
    let error = failing.error.clone().unwrap_or_default();
    assert!(error.contains("StorageFull"), "the error says why: {error}");

    // Stalled: nothing more is taken off the bus, nothing acked, and it keeps retrying.
    publish_all(bus.as_ref(), after_stall).await;
    let handed = ledger.lock().handed();
    let tried = refused.load(Ordering::SeqCst);
    eventually("a few more commit attempts", || {
        refused.load(Ordering::SeqCst) >= tried + 3
    })
    .await;
    {
        let ledger = ledger.lock();
        assert_eq!(
            ledger.handed(),
            handed,
            "no message taken while the disk is full"
        );
        assert!(ledger.unacked() > 0, "what was taken is held, unacked");
        assert_eq!(
            ledger.acked_while_full, 0,
            "nothing acked while the disk is full"
        );
    }
    assert!(
        !running.is_finished(),
        "the indexer does not fail on a full disk"
    );
    // Search keeps serving what is committed.
    assert_eq!(ids(&index).len(), 100);

    full.store(false, Ordering::SeqCst);
    let (ok_id, ok) = next_condition(&mut logs).await;
    assert_eq!(ok.condition, "disk_full");
    assert!(!ok.failing, "{ok:?}");

    let mut want: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    want.extend([failing_id, ok_id]);
    want.sort();
    eventually("every event indexed once space returned", || {
        ids(&index).len() >= want.len()
    })
    .await;
    let got = ids(&index);
    assert_eq!(got, want, "each event exactly once, none lost");
    eventually("everything acked", || ledger.lock().unacked() == 0).await;
    assert_eq!(
        got.iter().collect::<BTreeSet<_>>().len(),
        got.len(),
        "no duplicate"
    );

    shutdown.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_on_a_full_disk_is_not_an_error_and_loses_nothing_on_kafka_like_buses() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.indexer.commit_interval = StdDuration::from_millis(50);
    config.indexer.writer_memory_mb = 20;
    let config = Arc::new(config);
    let full = Arc::new(AtomicBool::new(true));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let bus: SharedBus = Arc::new(LedgerBus {
        inner: EmbeddedBus::new(&config.bus),
        ledger: ledger.clone(),
        full: full.clone(),
    });
    let mut logs = EventSubscription::new(bus.clone(), &[Topic::Logs], "watcher")
        .await
        .unwrap();
    let path = dir.path().join("index");
    std::fs::create_dir_all(&path).unwrap();
    // Created while there is space, then full from the first event on.
    full.store(false, Ordering::SeqCst);
    let disk = FullDisk {
        inner: MmapDirectory::open(&path).unwrap(),
        full: full.clone(),
        refused: Arc::new(AtomicU64::new(0)),
    };
    let index = EventIndex::open_in(disk, &path).unwrap();
    let indexer = Indexer::with_index(config.clone(), bus.clone(), clock::system(), index)
        .await
        .unwrap()
        .disk_full_retry(StdDuration::from_millis(20), StdDuration::from_millis(100));
    full.store(true, Ordering::SeqCst);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(indexer.run(shutdown.clone()));
    let events = synthetic::events(50, start(), Duration::hours(1), 5);
    publish_all(bus.as_ref(), &events).await;
    let (_, failing) = next_condition(&mut logs).await;
    assert!(failing.failing);

    shutdown.cancel();
    running
        .await
        .unwrap()
        .expect("a full disk at shutdown is said in the log, not an error");
    let ledger = ledger.lock();
    assert_eq!(ledger.acked_while_full, 0);
    assert!(ledger.unacked() > 0, "what was not indexed stays unacked");
}
