//! The consuming loop: deliveries into the index, commits every `commit_docs` documents or
//! `commit_interval` after the first uncommitted one, acks only after the commit that holds
//! them, and retention sweeps.

use crate::store::{CommitPayload, IndexSink, StoreResult};
use crate::IndexerError;
use futures::FutureExt;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use windsock_core::bus::{Delivery, EventSubscription, Topic};
use windsock_core::clock::SharedClock;
use windsock_core::event::Envelope;
use windsock_core::telemetry::Counters;

pub const COUNTERS: Counters = Counters::new("indexer");

/// The most deliveries taken off the bus at once (without waiting) and indexed together.
const MAX_BATCH: usize = 1024;

/// How often Kafka is told the acked offsets (acks are also committed on shutdown).
const BUS_COMMIT_EVERY: Duration = Duration::from_secs(1);

pub struct Ingest {
    pub subscription: EventSubscription,
    pub sink: IndexSink,
    /// Deliveries the index already contains (from the last commit's payload); acked, skipped.
    pub skip: CommitPayload,
    pub bus_kind: &'static str,
    pub commit_docs: usize,
    pub commit_interval: Duration,
    pub retention: Duration,
    pub retention_every: Duration,
    pub clock: SharedClock,
}

/// The newest uncommitted delivery per partition: acking it acks those before it.
type Unacked = HashMap<(Topic, i32), Delivery>;

impl Ingest {
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), IndexerError> {
        let mut unacked = Unacked::new();
        let mut commit_due: Option<Instant> = None;
        let mut last_bus_commit = Instant::now();
        let mut retention = tokio::time::interval(self.retention_every);
        retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = sleep_until(commit_due), if commit_due.is_some() => {
                    self.commit(&mut unacked)?;
                    commit_due = None;
                }
                _ = retention.tick() => {
                    // A retention reaching before the calendar starts keeps everything.
                    let cutoff = chrono::Duration::from_std(self.retention)
                        .ok()
                        .and_then(|keep| self.clock.now().checked_sub_signed(keep));
                    if let Some(cutoff) = cutoff {
                        self.sink.delete_before(cutoff)?;
                        commit_due.get_or_insert_with(|| Instant::now() + self.commit_interval);
                    }
                }
                next = self.subscription.next() => match next {
                    Ok(Some(first)) => {
                        let (batch, closed) = self.take_ready(first);
                        self.index_batch(batch, &mut unacked)?;
                        if self.sink.uncommitted() >= self.commit_docs {
                            self.commit(&mut unacked)?;
                            commit_due = None;
                        } else if self.sink.uncommitted() > 0 {
                            commit_due.get_or_insert_with(|| Instant::now() + self.commit_interval);
                        }
                        if closed {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(err) => {
                        COUNTERS.error("bus");
                        tracing::warn!(error = %err, "reading the bus failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                },
            }
            if last_bus_commit.elapsed() >= BUS_COMMIT_EVERY {
                last_bus_commit = Instant::now();
                if let Err(err) = self.subscription.commit().await {
                    tracing::warn!(error = %err, "committing offsets to the bus failed; will retry");
                }
            }
        }
        self.commit(&mut unacked)?;
        self.subscription.commit().await?;
        blocking(move || self.sink.finish())?;
        Ok(())
    }

    /// `first` and whatever else the bus has ready right now (without waiting), up to the
    /// next commit; and whether the bus said it closed.
    fn take_ready(&mut self, first: (Delivery, Envelope)) -> (Vec<(Delivery, Envelope)>, bool) {
        let room = self
            .commit_docs
            .saturating_sub(self.sink.uncommitted())
            .clamp(1, MAX_BATCH);
        let mut batch = vec![first];
        while batch.len() < room {
            match self.subscription.next().now_or_never() {
                Some(Ok(Some(next))) => batch.push(next),
                Some(Ok(None)) => return (batch, true),
                Some(Err(err)) => {
                    COUNTERS.error("bus");
                    tracing::warn!(error = %err, "reading the bus failed; retrying");
                    break;
                }
                None => break,
            }
        }
        (batch, false)
    }

    /// Indexes a batch, skipping (and acking) what the index already holds.
    fn index_batch(
        &mut self,
        batch: Vec<(Delivery, Envelope)>,
        unacked: &mut Unacked,
    ) -> Result<(), IndexerError> {
        COUNTERS.received(batch.len() as u64);
        let mut fresh = Vec::with_capacity(batch.len());
        for (delivery, envelope) in batch {
            if self.skip.contains(&delivery) {
                // Indexed before a restart whose ack did not reach the bus.
                self.subscription.ack(&delivery)?;
            } else {
                fresh.push((delivery, envelope));
            }
        }
        self.sink.upsert_all(&fresh)?;
        for (delivery, _) in fresh {
            unacked.insert((delivery.topic, delivery.partition), delivery);
        }
        Ok(())
    }

    /// Commits the index with the offsets it now holds, then acks those deliveries.
    fn commit(&mut self, unacked: &mut Unacked) -> Result<(), IndexerError> {
        let pending = self.sink.uncommitted();
        if pending == 0 && unacked.is_empty() {
            return Ok(());
        }
        let bus_kind = self.bus_kind;
        let sink = &mut self.sink;
        blocking(|| sink.commit(bus_kind)).inspect_err(|_| COUNTERS.error("commit"))?;
        COUNTERS.sent(pending as u64);
        for delivery in unacked.values() {
            self.subscription.ack(delivery)?;
        }
        unacked.clear();
        if let Some(lag) = self.subscription.lag() {
            COUNTERS.gauge("windsock_bus_lag", lag as f64);
        }
        Ok(())
    }
}

/// Runs blocking index work without stalling the other tasks of a multi-threaded runtime.
fn blocking<T>(work: impl FnOnce() -> StoreResult<T>) -> StoreResult<T> {
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
