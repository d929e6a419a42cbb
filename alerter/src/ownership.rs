//! Which regions this alerter instance owns, when several share the Kafka consumer group.
//!
//! Observations are keyed by region, so a region's messages live on one partition, and the
//! member of group `alerter` that owns that partition owns the region: it alone judges the
//! region's rules and delivers its Slack messages. The region-less state (key `""`: the
//! pipeline-level alerts) belongs to the owner of the partition of key `""`, so two
//! instances never both page for the pipeline.
//!
//! The state of a region moves with its partition through a changelog (Kafka Streams'
//! idea; topic `<topic_prefix>changelog-alerter`, compacted, keyed by region): after each
//! committed evaluation the changed regions' [`RegionState`]s are written to it, *before*
//! the batch's offsets are acked, so whoever owns the partition next finds at least the
//! state of every message the group committed. On an assignment, the regions of the new
//! partitions are restored from it before any of their messages is read; they are judged
//! once the partition was read up to where it ended when it was taken over (until then
//! their state is as old as the handover, and every one of them would look late), or a
//! [`catch_up_limit`] later at the latest. On a revocation they are forgotten (nothing
//! resolved, nothing sent).
//!
//! On the embedded bus one process owns everything and its local SQLite is the state: there
//! is no [`Ownership`] and every region is judged.

use crate::engine::RegionState;
use crate::service::Shared;
use crate::store::run_blocking;
use parking_lot::RwLock;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use windsock_core::bus::{Assignment, BusError, Delivery, SharedChangelog};
use windsock_core::config::BusKind;
use windsock_core::{SharedBus, Topic};

/// The changelog's name (topic `<topic_prefix>changelog-alerter`).
pub const CHANGELOG: &str = "alerter";

/// How long the regions of a partition taken over wait at most to be judged when the
/// partition is not read to its end before (no new message arrives, the broker is slow):
/// two collection intervals, at least ten seconds.
pub fn catch_up_limit(collection_interval: Duration) -> Duration {
    (collection_interval * 2).max(Duration::from_secs(10))
}

/// Where an owned partition stands.
#[derive(Clone, Copy, Debug)]
enum Standing {
    /// Read past where it ended when it was taken over: its regions are judged.
    Ready,
    /// Taken over: judged once the message at `through` was read, or at `until`.
    CatchingUp { through: i64, until: Instant },
}

/// The partitions this instance owns, shared with the engine's filter.
#[derive(Clone)]
pub(crate) struct Owned {
    bus: SharedBus,
    partitions: Arc<RwLock<BTreeMap<i32, Standing>>>,
}

impl Owned {
    fn partition(&self, region: &str) -> i32 {
        self.bus.partition_of(Topic::Observations, region)
    }

    /// Whether this instance owns `region` (`""`: the region-less state).
    pub(crate) fn region(&self, region: &str) -> bool {
        self.partitions.read().contains_key(&self.partition(region))
    }

    /// Whether this instance judges `region`: it owns it and has caught up with it.
    pub(crate) fn judged(&self, region: &str) -> bool {
        matches!(
            self.partitions.read().get(&self.partition(region)),
            Some(Standing::Ready)
        )
    }
}

pub(crate) struct Ownership {
    shared: Arc<Shared>,
    bus: SharedBus,
    changelog: SharedChangelog,
    assignment: watch::Receiver<Assignment>,
    /// The assignment the local state follows; `None` before the first one.
    applied: Option<Assignment>,
    owned: Owned,
    /// A partition caught up since the engine's filter was last installed.
    caught_up: bool,
    catch_up_limit: Duration,
    /// The regions there can be state of: the configured ones and `""`.
    regions: Vec<String>,
    /// Changed regions whose state is not in the changelog yet (a write failed): the batch
    /// is not acked until they are.
    unwritten: BTreeSet<String>,
}

impl Ownership {
    /// On a Kafka bus, the ownership of the group member whose `assignment` this is, with the
    /// engine judging only what it owns (nothing until the group assigns it partitions);
    /// `None` on the embedded bus.
    pub(crate) async fn start(
        shared: &Arc<Shared>,
        bus: &SharedBus,
        assignment: watch::Receiver<Assignment>,
        collection_interval: Duration,
    ) -> Result<Option<Self>, BusError> {
        if bus.kind() != BusKind::Kafka {
            return Ok(None);
        }
        let changelog = bus.changelog(CHANGELOG).await?;
        let mut regions: Vec<String> = shared
            .config
            .regions
            .iter()
            .map(|r| r.name.clone())
            .collect();
        regions.push(String::new());
        let ownership = Self {
            shared: shared.clone(),
            bus: bus.clone(),
            changelog,
            assignment,
            applied: None,
            owned: Owned {
                bus: bus.clone(),
                partitions: Arc::default(),
            },
            caught_up: false,
            catch_up_limit: catch_up_limit(collection_interval),
            regions,
            unwritten: BTreeSet::new(),
        };
        ownership.install();
        Ok(Some(ownership))
    }

    /// The engine judges the regions this instance judges, each of them at the next
    /// evaluation (one taken over without a state in the changelog has deadlines too).
    fn install(&self) {
        let filter = self.owned.clone();
        self.shared
            .engine
            .lock()
            .set_owner(Some(Box::new(move |region: &str| filter.judged(region))));
    }

    /// Whether this instance owns `region` (see [`Owned::region`]).
    pub(crate) fn owns(&self, region: &str) -> bool {
        self.owned.region(region)
    }

    /// Notes that `delivery` is about to be judged: the partition it comes from may have
    /// caught up.
    pub(crate) fn read(&mut self, delivery: &Delivery) {
        if delivery.topic != Topic::Observations {
            return;
        }
        let mut partitions = self.owned.partitions.write();
        if let Some(standing) = partitions.get_mut(&delivery.partition) {
            if matches!(*standing, Standing::CatchingUp { through, .. } if delivery.offset >= through)
            {
                *standing = Standing::Ready;
                self.caught_up = true;
            }
        }
    }

    /// Whether the group moved partitions, or a partition caught up, since the engine last
    /// followed: call [`Ownership::follow`] before judging any message read since.
    pub(crate) fn stale(&mut self) -> bool {
        let now = Instant::now();
        for standing in self.owned.partitions.write().values_mut() {
            if matches!(*standing, Standing::CatchingUp { until, .. } if until <= now) {
                *standing = Standing::Ready;
                self.caught_up = true;
            }
        }
        self.caught_up || self.applied.as_ref() != Some(&*self.assignment.borrow())
    }

    /// Completes when the assignment changes after this call (never, once the subscription
    /// is gone). A change before it is what [`Ownership::stale`] tells.
    pub(crate) fn changed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut assignment = self.assignment.clone();
        assignment.mark_unchanged();
        async move {
            if assignment.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    fn regions_on(&self, partitions: &[i32]) -> Vec<String> {
        self.regions
            .iter()
            .filter(|region| partitions.contains(&self.owned.partition(region)))
            .cloned()
            .collect()
    }

    /// Brings the local state in line with the partitions owned now: forgets the regions of
    /// revoked partitions, restores those of assigned ones from the changelog. On the first
    /// assignment, the local state of every region not owned is forgotten too (it is from a
    /// run before this one, and another instance may have owned the region since).
    pub(crate) async fn follow(&mut self) -> Result<(), BusError> {
        let now = self.assignment.borrow().clone();
        let (assigned, revoked) = match &self.applied {
            Some(before) => {
                let change = now.change_since(before, Topic::Observations);
                (change.assigned, change.revoked)
            }
            None => {
                let owned = now.partitions(Topic::Observations);
                let all: BTreeSet<i32> = self
                    .regions
                    .iter()
                    .map(|r| self.owned.partition(r))
                    .collect();
                (
                    owned.iter().copied().collect(),
                    all.difference(&owned).copied().collect(),
                )
            }
        };
        if self.applied.is_some() && assigned.is_empty() && revoked.is_empty() {
            // Only a partition caught up: its regions are judged from now on.
            self.caught_up = false;
            self.install();
            return Ok(());
        }
        let shared = self.shared.clone();
        // Revoked first: no longer judged, then dropped without a word.
        {
            let mut owned = self.owned.partitions.write();
            for partition in &revoked {
                owned.remove(partition);
            }
        }
        let leaving = self.regions_on(&revoked);
        for region in &leaving {
            self.unwritten.remove(region);
            let (shared, region) = (shared.clone(), region.clone());
            run_blocking(move || shared.forget_region(&region))
                .await
                .map_err(|e| BusError::Other(format!("forgetting a region was cancelled: {e}")))?
                .map_err(|e| BusError::Other(format!("forgetting a region: {e}")))?;
        }
        // Assigned: where each partition ends now, then its regions' state, restored before
        // any of their messages is read.
        let ends = self.bus.end_offsets(Topic::Observations, &assigned).await?;
        let restored = self.changelog.restore(&assigned).await?;
        let count = restored.len();
        for (region, bytes) in restored {
            let state = match RegionState::from_json(&bytes) {
                Ok(state) if state.region == region => state,
                Ok(state) => {
                    tracing::warn!(key = %region, region = %state.region, "a changelog entry holds another region's state; skipped");
                    continue;
                }
                Err(reason) => {
                    tracing::warn!(region = %region, %reason, "an unreadable region state in the changelog; skipped");
                    continue;
                }
            };
            let shared = shared.clone();
            run_blocking(move || shared.restore_region(state))
                .await
                .map_err(|e| BusError::Other(format!("restoring a region was cancelled: {e}")))?
                .map_err(|e| BusError::Other(format!("restoring a region: {e}")))?;
        }
        let until = Instant::now() + self.catch_up_limit;
        {
            let mut owned = self.owned.partitions.write();
            for partition in &assigned {
                let standing = match ends.get(partition) {
                    // Judged once the message before the end is read (none: nothing to wait for).
                    Some(end) if *end > 0 => Standing::CatchingUp {
                        through: end - 1,
                        until,
                    },
                    _ => Standing::Ready,
                };
                owned.insert(*partition, standing);
            }
        }
        tracing::info!(
            assigned = ?assigned,
            revoked = ?revoked,
            restored = count,
            forgotten = leaving.len(),
            "alerter partitions moved"
        );
        self.applied = Some(now);
        self.caught_up = false;
        self.install();
        Ok(())
    }

    /// Writes the state of the owned regions that changed to the changelog; call it after
    /// the decisions are committed and before their messages are acked. False if the write
    /// failed: then nothing may be acked (it is tried again with the next evaluation).
    pub(crate) async fn record(&mut self) -> bool {
        self.unwritten.extend(self.shared.changed_regions());
        let regions: Vec<String> = std::mem::take(&mut self.unwritten)
            .into_iter()
            .filter(|region| self.owns(region))
            .collect();
        if regions.is_empty() {
            return true;
        }
        let states = {
            let shared = self.shared.clone();
            let regions = regions.clone();
            run_blocking(move || {
                regions
                    .iter()
                    .map(|region| shared.region_state(region))
                    .collect::<Result<Vec<RegionState>, _>>()
            })
            .await
        };
        let entries = match states {
            Ok(Ok(states)) => states
                .into_iter()
                .map(|state| (state.region.clone(), Some(state.to_json().into())))
                .collect(),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "reading region states for the changelog failed; will retry");
                self.unwritten.extend(regions);
                return false;
            }
            Err(err) => {
                tracing::warn!(error = %err, "reading region states for the changelog was cancelled");
                self.unwritten.extend(regions);
                return false;
            }
        };
        match self.changelog.put_batch(entries).await {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(error = %err.chain(), "writing the alerter's changelog failed; will retry before acking");
                crate::service::COUNTERS.error("bus");
                self.unwritten.extend(regions);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_taken_over_waits_at_most_two_collection_intervals() {
        assert_eq!(
            catch_up_limit(Duration::from_secs(900)),
            Duration::from_secs(1800)
        );
        assert_eq!(
            catch_up_limit(Duration::from_secs(1)),
            Duration::from_secs(10)
        );
    }
}
