//! The consuming loop: deliveries into the index, commits every `commit_docs` documents or
//! `commit_interval` after the first uncommitted one (longer while draining a backlog, see
//! [`BEHIND_COMMIT_INTERVALS`]), acks only after the commit that holds
//! them, and retention sweeps. The index writer runs on its own thread ([`Writer`]), so the
//! loop keeps decoding and building documents while a commit runs.
//!
//! A full disk stalls the loop rather than failing it ([`DiskFull`]): it stops reading the
//! bus (what it has not acked stays there), says so once in the log and as a `disk_full`
//! health condition on the logs topic, asks the writer to commit again with backoff, and
//! carries on by itself once a commit succeeds.

use crate::merge::Backlog;
use crate::schema::Fields;
use crate::store::CommitPayload;
use crate::writer::{Answer, Built, Committed, Document, Writer};
use crate::IndexerError;
use backon::BackoffBuilder;
use futures::FutureExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use windsock_core::bus::{publish_event, Delivery, EventSubscription, SharedBus};
use windsock_core::clock::SharedClock;
use windsock_core::event::{health, DecodeError, Event, LogEvent};
use windsock_core::telemetry::Counters;

pub const COUNTERS: Counters = Counters::new("indexer");

/// The most deliveries taken off the bus at once (without waiting) and indexed together.
const MAX_BATCH: usize = 1024;

/// Batches at least this large build their documents on two threads.
const PARALLEL_BATCH: usize = 64;

/// How often Kafka is told the acked offsets (acks are also committed on shutdown).
const BUS_COMMIT_EVERY: Duration = Duration::from_secs(1);

/// While the indexer drains a backlog, a commit that `commit_interval` asks for waits up to
/// this many intervals (unless `commit_docs` come first). Each commit writes a segment per
/// indexing thread; at half-second commits a fast backlog makes so many small segments that
/// merging them cost a quarter of the ingest's CPU. Nobody is waiting on a single event
/// then: they arrived long before the indexer reached them.
const BEHIND_COMMIT_INTERVALS: u32 = 4;

/// The indexer counts as caught up once no read has filled a batch for this long. A single
/// short read says little under load (the producer paused, a partition ran dry for a
/// moment): taken at its word, it let merges start in the middle of a backlog.
const CAUGHT_UP_AFTER: Duration = Duration::from_secs(1);

pub struct Ingest {
    pub subscription: EventSubscription,
    pub writer: Writer,
    pub fields: Arc<Fields>,
    /// Deliveries the index already contains (from the last commit's payload); acked, skipped.
    pub skip: CommitPayload,
    /// Told after each read whether the bus had more ready than one batch takes.
    pub backlog: Backlog,
    pub commit_docs: usize,
    pub commit_interval: Duration,
    pub retention: Duration,
    pub retention_every: Duration,
    pub clock: SharedClock,
    /// Operations sent to the writer since the last commit was asked for.
    pub uncommitted: usize,
    /// When a read last filled a batch (the bus had more ready than it took).
    pub last_full_read: Option<Instant>,
    /// Commits asked of the writer and not answered yet.
    pub in_flight: usize,
    /// What a full disk does to this loop.
    pub disk_full: DiskFull,
}

/// How long a commit that failed on a full disk waits before it is tried again: growing
/// exponentially (with jitter) from `min` to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskFullRetry {
    pub min: Duration,
    pub max: Duration,
}

impl Default for DiskFullRetry {
    fn default() -> Self {
        Self {
            min: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

impl DiskFullRetry {
    fn delays(&self) -> backon::ExponentialBackoff {
        backon::ExponentialBuilder::new()
            .with_min_delay(self.min)
            .with_max_delay(self.max.max(self.min))
            .with_jitter()
            .without_max_times()
            .build()
    }
}

/// The loop's state on a full disk, and where it tells about it.
pub struct DiskFull {
    pub retry: DiskFullRetry,
    /// Where the health conditions are published.
    pub bus: SharedBus,
    /// The index's directory, for the messages.
    pub dir: PathBuf,
    /// Set while commits fail on a full disk.
    stall: Option<Stall>,
    /// The health condition being published: the next one waits for it, so an `ok` never
    /// overtakes its `failing` (a publish waits while the bus is full).
    publishing: Option<tokio::task::JoinHandle<()>>,
}

struct Stall {
    delays: backon::ExponentialBackoff,
    /// When the next commit is asked for (`None` while one is in flight).
    retry_at: Option<Instant>,
    attempts: u64,
}

impl DiskFull {
    pub fn new(bus: SharedBus, dir: PathBuf, retry: DiskFullRetry) -> Self {
        // The series exist from the start, at 0, so a dashboard or a rate() sees them.
        metrics::counter!("windsock_disk_full_total", "service" => "indexer").increment(0);
        metrics::gauge!("windsock_disk_full", "service" => "indexer").set(0.0);
        Self {
            retry,
            bus,
            dir,
            stall: None,
            publishing: None,
        }
    }

    pub fn is_stalled(&self) -> bool {
        self.stall.is_some()
    }

    fn retry_at(&self) -> Option<Instant> {
        self.stall.as_ref().and_then(|s| s.retry_at)
    }

    /// A commit failed on a full disk: the first failure of an episode is logged and
    /// published; each schedules the next attempt once no commit is in flight.
    fn failed(&mut self, error: &tantivy::TantivyError, held: usize, in_flight: usize) {
        let first = self.stall.is_none();
        let stall = self.stall.get_or_insert_with(|| Stall {
            delays: self.retry.delays(),
            retry_at: None,
            attempts: 0,
        });
        stall.attempts += 1;
        if in_flight == 0 {
            let delay = stall.delays.next().unwrap_or(self.retry.max);
            stall.retry_at = Some(Instant::now() + delay);
        }
        let error = error.to_string();
        if !first {
            tracing::debug!(%error, held, attempts = stall.attempts, "the index still cannot commit: the disk is full");
            return;
        }
        metrics::counter!("windsock_disk_full_total", "service" => "indexer").increment(1);
        metrics::gauge!("windsock_disk_full", "service" => "indexer").set(1.0);
        let message = format!(
            "disk full: cannot commit the index at {}; holding {held} events unacked, retrying",
            self.dir.display()
        );
        tracing::error!(%error, held, "{message}");
        self.publish(true, Some(error), message);
    }

    /// A commit succeeded: the end of an episode, if one was going on.
    fn succeeded(&mut self) {
        let Some(stall) = self.stall.take() else {
            return;
        };
        metrics::gauge!("windsock_disk_full", "service" => "indexer").set(0.0);
        let message = format!(
            "disk space is back: the index at {} commits again (after {} attempts)",
            self.dir.display(),
            stall.attempts
        );
        tracing::info!("{message}");
        self.publish(false, None, message);
    }

    fn publish(&mut self, failing: bool, error: Option<String>, message: String) {
        let event = LogEvent::health_condition(
            "indexer",
            health::DISK_FULL,
            failing,
            error,
            message,
            chrono::Utc::now(),
        );
        let bus = self.bus.clone();
        let previous = self.publishing.take();
        self.publishing = Some(tokio::spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            if let Err(err) = publish_event(bus.as_ref(), Event::Log(event)).await {
                tracing::warn!(error = %err.chain(), "publishing the disk_full condition failed");
            }
        }));
    }
}

impl Ingest {
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), IndexerError> {
        let result = self.consume(shutdown).await;
        // Whatever happened, let the writer finish what it has (a commit asked for is
        // answered; if the loop failed, its deliveries stay unacked and come again).
        self.writer.close();
        while let Some(answer) = self.writer.next_commit().await {
            match answer {
                Ok(committed) => self.ack(committed)?,
                Err(failed) if failed.disk_full() => {
                    tracing::warn!(
                        error = %failed.error,
                        held = failed.held,
                        "stopping with events not indexed: the disk is full; they stay \
                         unacked on the bus (Kafka delivers them again after a restart)"
                    );
                }
                Err(failed) => return Err(failed.error.into()),
            }
        }
        let mut writer = self.writer;
        blocking(move || writer.join())?;
        result?;
        self.subscription.commit().await?;
        Ok(())
    }

    async fn consume(&mut self, shutdown: CancellationToken) -> Result<(), IndexerError> {
        let mut commit_due: Option<Instant> = None;
        let mut postponed = false;
        let mut last_bus_commit = Instant::now();
        let mut retention = tokio::time::interval(self.retention_every);
        retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                answer = self.writer.next_commit() => match answer {
                    Some(answer) => self.answered(answer)?,
                    None => return Err(tantivy::TantivyError::SystemError(
                        "the index writer thread stopped".into()).into()),
                },
                // A commit that failed on a full disk, asked for again.
                _ = sleep_until(self.disk_full.retry_at()), if self.disk_full.retry_at().is_some() => {
                    if let Some(stall) = self.disk_full.stall.as_mut() {
                        stall.retry_at = None;
                    }
                    // Everything sent since is held by the writer and goes in this commit.
                    self.writer.commit().await?;
                    self.in_flight += 1;
                    self.uncommitted = 0;
                    commit_due = None;
                    postponed = false;
                }
                _ = sleep_until(commit_due), if commit_due.is_some() && !self.disk_full.is_stalled() => {
                    // Judged now, not at the last read: a backlog may have ended on a full
                    // read with nothing since (merges would stay held back until the next).
                    if self.update_behind() && !postponed {
                        postponed = true;
                        commit_due = commit_due
                            .map(|due| due + self.commit_interval * (BEHIND_COMMIT_INTERVALS - 1));
                    } else {
                        self.commit().await?;
                        commit_due = None;
                        postponed = false;
                    }
                }
                // The end of a backlog that ended on a full read, with nothing since.
                _ = sleep_until(self.last_full_read.map(|at| at + CAUGHT_UP_AFTER)),
                    if self.backlog.is_behind() => {
                    self.update_behind();
                }
                _ = retention.tick(), if !self.disk_full.is_stalled() => {
                    // A retention reaching before the calendar starts keeps everything.
                    let cutoff = chrono::Duration::from_std(self.retention)
                        .ok()
                        .and_then(|keep| self.clock.now().checked_sub_signed(keep));
                    if let Some(cutoff) = cutoff {
                        self.writer.delete_before(cutoff).await?;
                        self.uncommitted += 1;
                        commit_due.get_or_insert_with(|| Instant::now() + self.commit_interval);
                    }
                }
                // Not read while the disk is full: the bus keeps what is not taken.
                next = self.subscription.next_delivery(), if !self.disk_full.is_stalled() => match next {
                    Ok(Some(first)) => {
                        let (batch, filled, closed) = self.take_ready(first);
                        self.index_batch(batch).await?;
                        // A postponed commit is made as soon as the bus runs dry: its own
                        // interval has passed, and the backlog it waited for is gone.
                        if self.uncommitted >= self.commit_docs || (postponed && !filled) {
                            self.commit().await?;
                            commit_due = None;
                            postponed = false;
                        } else if self.uncommitted > 0 {
                            commit_due.get_or_insert_with(|| Instant::now() + self.commit_interval);
                        }
                        if closed {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(err) => {
                        COUNTERS.error("bus");
                        tracing::warn!(error = %err.chain(), "reading the bus failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                },
            }
            if last_bus_commit.elapsed() >= BUS_COMMIT_EVERY {
                last_bus_commit = Instant::now();
                if let Err(err) = self.subscription.commit().await {
                    tracing::warn!(error = %err.chain(), "committing offsets to the bus failed; will retry");
                }
            }
        }
        self.commit().await?;
        Ok(())
    }

    /// `first` and whatever else the bus has ready right now (without waiting), up to the
    /// next commit; whether that filled the batch (more is probably waiting); and whether the
    /// bus said it closed.
    fn take_ready(&mut self, first: Delivery) -> (Vec<Delivery>, bool, bool) {
        let room = self
            .commit_docs
            .saturating_sub(self.uncommitted)
            .clamp(1, MAX_BATCH);
        let mut batch = vec![first];
        // Filling the batch means more is probably waiting.
        let mut filled = true;
        while batch.len() < room {
            match self.subscription.next_delivery().now_or_never() {
                Some(Ok(Some(next))) => batch.push(next),
                Some(Ok(None)) => return (batch, false, true),
                Some(Err(err)) => {
                    COUNTERS.error("bus");
                    tracing::warn!(error = %err.chain(), "reading the bus failed; retrying");
                    break;
                }
                None => {
                    filled = false;
                    break;
                }
            }
        }
        if filled {
            self.last_full_read = Some(Instant::now());
        }
        self.update_behind();
        (batch, filled, false)
    }

    /// Whether the indexer is draining a backlog (a read filled a batch in the last
    /// [`CAUGHT_UP_AFTER`]); merges are held back while it is.
    fn update_behind(&mut self) -> bool {
        let behind = self
            .last_full_read
            .is_some_and(|at| at.elapsed() < CAUGHT_UP_AFTER);
        self.backlog.set_behind(behind);
        behind
    }

    /// Decodes a batch and builds its documents, dead-letters what does not decode, and
    /// queues all of it for the writer, skipping (and acking) what the index already holds.
    async fn index_batch(&mut self, batch: Vec<Delivery>) -> Result<(), IndexerError> {
        COUNTERS.received(batch.len() as u64);
        let mut fresh = Vec::with_capacity(batch.len());
        for delivery in batch {
            if self.skip.contains(&delivery) {
                // Indexed before a restart whose ack did not reach the bus.
                self.subscription.ack(&delivery)?;
            } else {
                fresh.push(delivery);
            }
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let documents = build_documents(&self.fields, &fresh);
        self.uncommitted += fresh.len();
        let mut built = Vec::with_capacity(fresh.len());
        for (delivery, document) in fresh.into_iter().zip(documents) {
            let event = match document {
                Ok(event) => Some(event),
                Err(err) => {
                    // Its ack waits for the commit, like the events before it: acked now, it
                    // would commit their offsets before they are durable.
                    self.subscription
                        .dead_letter(&delivery, err.to_string())
                        .await?;
                    None
                }
            };
            built.push(Built { delivery, event });
        }
        self.writer.add(built).await?;
        Ok(())
    }

    /// Asks the writer to commit what it was sent (the acks follow its answer).
    async fn commit(&mut self) -> Result<(), IndexerError> {
        if self.uncommitted == 0 {
            return Ok(());
        }
        self.writer.commit().await?;
        self.in_flight += 1;
        self.uncommitted = 0;
        Ok(())
    }

    /// The writer's answer to a commit: acks what it made durable; a full disk stalls the
    /// loop until a commit succeeds again; any other error ends it.
    fn answered(&mut self, answer: Answer) -> Result<(), IndexerError> {
        self.in_flight = self.in_flight.saturating_sub(1);
        match answer {
            Ok(committed) => {
                self.disk_full.succeeded();
                self.ack(committed)
            }
            Err(failed) if failed.disk_full() => {
                self.disk_full
                    .failed(&failed.error, failed.held, self.in_flight);
                Ok(())
            }
            Err(failed) => Err(failed.error.into()),
        }
    }

    /// Acks what a commit made durable.
    fn ack(&mut self, committed: Committed) -> Result<(), IndexerError> {
        for delivery in committed.values() {
            self.subscription.ack(delivery)?;
        }
        if let Some(lag) = self.subscription.lag() {
            COUNTERS.gauge("windsock_bus_lag", lag as f64);
        }
        Ok(())
    }
}

/// The ids and documents of a batch, in order, decoded and built on two threads (building
/// costs as much as tantivy's own indexing of them, and the consuming loop is one task).
fn build_documents(fields: &Fields, batch: &[Delivery]) -> Vec<Result<Document, DecodeError>> {
    let build = |part: &[Delivery]| -> Vec<Result<Document, DecodeError>> {
        part.iter()
            .map(|d| fields.document_of_payload(&d.payload))
            .collect()
    };
    if batch.len() < PARALLEL_BATCH {
        return build(batch);
    }
    let (first, second) = batch.split_at(batch.len() / 2);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| build(second));
        let mut documents = build(first);
        documents.extend(other.join().expect("building documents does not panic"));
        documents
    })
}

/// Runs blocking index work without stalling the other tasks of a multi-threaded runtime.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
