//! The look-back on start: every scheduled instant of the `backfill` window is fetched from
//! sources that serve the past, beside the live rounds (never before them), at the pace of
//! [`crate::pace`]. Observations carry deterministic ids, so what was already published
//! before a restart replaces itself downstream rather than duplicating, and `backfill: true`,
//! so the late-data rule does not take them for arrivals.

use crate::round::{elapsed_ms, Outcome, Phase, RegionReport};
use crate::source::FetchError;
use crate::status::BackfillState;
use crate::{Collector, Tick};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use windsock_core::config::Region;
use windsock_core::event::Event;

/// The most scheduled instants a backfill covers (the newest ones): a per-second schedule
/// with a day of look-back would otherwise be 86,400 requests per region.
pub const MAX_BACKFILL_INSTANTS: usize = 5_000;

/// How a backfill (on start, or the catch-up of missed instants) went.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct BackfillReport {
    /// The oldest instant covered; null when nothing was.
    #[schema(required = true)]
    pub from: Option<DateTime<Utc>>,
    /// The newest instant covered; null when nothing was.
    #[schema(required = true)]
    pub to: Option<DateTime<Utc>>,
    /// Scheduled instants covered.
    pub instants: usize,
    pub observations: usize,
    pub published: usize,
    /// Region batches that failed after their retries.
    pub failures: usize,
    /// Why there was no backfill (or why it stopped), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl Collector {
    /// Backfills the configured look-back up to now. Safe to call again: repeats publish the
    /// same ids.
    pub async fn backfill(&self) -> BackfillReport {
        self.backfill_until(self.inner.clock.now()).await
    }

    /// Backfills the look-back up to `now`: the live rounds take the instants after it.
    pub(crate) async fn backfill_until(&self, now: DateTime<Utc>) -> BackfillReport {
        let report = self.backfill_inner(now).await;
        match &report.skipped {
            Some(why) => {
                tracing::info!(reason = %why, published = report.published, "backfill skipped")
            }
            None => tracing::info!(
                instants = report.instants,
                published = report.published,
                failures = report.failures,
                "backfill finished"
            ),
        }
        let mut status = self.inner.status.lock();
        status.backfill_progress.state = if report.skipped.is_some() {
            BackfillState::Skipped
        } else {
            BackfillState::Finished
        };
        status.record_backfill(report.clone());
        report
    }

    async fn backfill_inner(&self, now: DateTime<Utc>) -> BackfillReport {
        let inner = &self.inner;
        let mut report = BackfillReport::default();
        let since = match self.past_window(now) {
            Ok(since) => since,
            Err(why) => {
                report.skipped = Some(why);
                return report;
            }
        };
        let ticks = inner
            .schedule
            .ticks_between(since, now, MAX_BACKFILL_INSTANTS);
        let (Some(first), Some(last)) = (ticks.first(), ticks.last()) else {
            report.skipped = Some("no scheduled instant in the look-back".into());
            return report;
        };
        report.from = Some(first.at);
        report.to = Some(last.at);
        {
            let mut status = inner.status.lock();
            let progress = &mut status.backfill_progress;
            // From zero: a run restarted after a failure backfills again.
            progress.state = BackfillState::Running;
            progress.regions_total = inner.config.regions.len();
            progress.regions_done = 0;
            progress.instants = ticks.len();
            progress.observations = 0;
            progress.published = 0;
        }
        self.fetch_past(&ticks, Phase::Backfill, &mut report).await;
        report
    }

    /// Where the past the collector may fetch begins, `collector.backfill` before `now`; or
    /// why it fetches no past.
    pub(crate) fn past_window(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
        let inner = &self.inner;
        if inner.source.past_batch().is_none() {
            return Err(format!(
                "the {} source cannot serve the past",
                inner.source.name()
            ));
        }
        if inner.config.collector.backfill.is_zero() {
            return Err("collector.backfill is 0".into());
        }
        // Checked: a look-back of a million years would otherwise panic on the subtraction.
        chrono::Duration::from_std(inner.config.collector.backfill)
            .ok()
            .and_then(|look_back| now.checked_sub_signed(look_back))
            .ok_or_else(|| "collector.backfill is too long".into())
    }

    /// Fetches the missed instants of occurrence `occurrence` from the past (the caller
    /// checked the source serves it), and records how it went in the status.
    pub(crate) async fn catch_up(&self, occurrence: u64, ticks: Vec<Tick>) {
        let mut report = BackfillReport {
            from: ticks.first().map(|t| t.at),
            to: ticks.last().map(|t| t.at),
            ..Default::default()
        };
        self.fetch_past(&ticks, Phase::CatchUp, &mut report).await;
        match &report.skipped {
            Some(why) => {
                tracing::warn!(reason = %why, "missed collection instants could not be fetched")
            }
            None => tracing::info!(
                instants = report.instants,
                published = report.published,
                failures = report.failures,
                "missed collection instants caught up"
            ),
        }
        self.inner.status.lock().record_catch_up(occurrence, report);
    }

    /// Fetches `ticks` from the past, every region (a bounded number at once, each region's
    /// batches in order), into `report`.
    async fn fetch_past(&self, ticks: &[Tick], phase: Phase, report: &mut BackfillReport) {
        let inner = &self.inner;
        let Some(batch) = inner.source.past_batch() else {
            report.skipped = Some(format!(
                "the {} source cannot serve the past",
                inner.source.name()
            ));
            return;
        };
        report.instants = ticks.len();
        let chunks: Arc<Vec<Vec<Tick>>> =
            Arc::new(ticks.chunks(batch.max(1)).map(<[Tick]>::to_vec).collect());
        // A source that cannot serve the past after all (an OpenWeatherMap key without One
        // Call) says so once; the remaining units are not tried.
        let unsupported = Arc::new(AtomicBool::new(false));
        // Each region a task of its own, so encoding what it fetched uses every core; ended
        // with the backfill when it is dropped (at shutdown).
        let mut regions = futures::stream::iter(0..inner.config.regions.len())
            .map(|index| {
                let (collector, chunks, unsupported) =
                    (self.clone(), chunks.clone(), unsupported.clone());
                AbortOnDropHandle::new(tokio::spawn(async move {
                    let region = &collector.inner.config.regions[index];
                    collector
                        .backfill_region(region, &chunks, phase, &unsupported)
                        .await
                }))
            })
            .buffer_unordered(inner.config.collector.concurrency.max(1));
        while let Some(region) = regions.next().await {
            let region = region.unwrap_or_else(|err| {
                tracing::error!(error = %err, "a region's backfill panicked");
                RegionPast {
                    failures: 1,
                    ..RegionPast::default()
                }
            });
            report.observations += region.observations;
            report.published += region.published;
            report.failures += region.failures;
            if let Some(why) = region.unsupported {
                report.skipped = Some(why);
            }
            if matches!(phase, Phase::Backfill) {
                let mut status = inner.status.lock();
                let progress = &mut status.backfill_progress;
                progress.regions_done += 1;
                progress.observations += region.observations;
                progress.published += region.published;
            }
        }
    }

    /// Fetches one region's past, batch after batch, publishing each as it comes.
    async fn backfill_region(
        &self,
        region: &Region,
        chunks: &[Vec<Tick>],
        phase: Phase,
        unsupported: &AtomicBool,
    ) -> RegionPast {
        let mut past = RegionPast::default();
        for chunk in chunks {
            if unsupported.load(Ordering::Relaxed) {
                break;
            }
            let (report, error) = self.backfill_unit(region, chunk, phase, unsupported).await;
            past.observations += report.observations;
            past.published += report.published;
            match error {
                Some(FetchError::Unsupported(why)) => {
                    past.unsupported = Some(why);
                    break;
                }
                Some(_) => past.failures += 1,
                None => {}
            }
        }
        past
    }

    async fn backfill_unit(
        &self,
        region: &Region,
        ticks: &[Tick],
        phase: Phase,
        unsupported: &AtomicBool,
    ) -> (RegionReport, Option<FetchError>) {
        let inner = &self.inner;
        let mut report = RegionReport {
            region: region.name.clone(),
            outcome: Outcome::Ok,
            observations: 0,
            published: 0,
            attempts: 0,
            latency_ms: 0,
            http_status: None,
            error: None,
        };
        let started = Instant::now();
        let (result, attempts) = inner
            .retry
            .run(|| async {
                // Every attempt, a retry too, waits for its turn: after the live round under
                // way, a 429's pause, and a slot of collector.backfill_rate.
                inner.pace.ready().await;
                let fetched = inner.source.past(region, ticks).await;
                if let Err(FetchError::RateLimited { retry_after, .. }) = &fetched {
                    inner.pace.slow_down(*retry_after);
                }
                fetched
            })
            .await;
        report.attempts = attempts;
        report.latency_ms = elapsed_ms(started);
        let error = match result {
            Ok(mut observations) => {
                report.observations = observations.len();
                if observations.is_empty() {
                    report.outcome = Outcome::NoData;
                }
                for observation in &mut observations {
                    observation.backfill = true;
                }
                report.published = self.publish(observations).await;
                None
            }
            Err(err @ FetchError::Unsupported(_)) => {
                unsupported.store(true, Ordering::Relaxed);
                return (report, Some(err));
            }
            Err(err) => {
                report.fail(&err);
                Some(err)
            }
        };
        let tick = *ticks.last().expect("units are never empty");
        let outcome: Event = self.outcome_event(region, tick, phase, &report);
        self.publish_logs(vec![outcome]).await;
        (report, error)
    }
}

/// How one region's past went.
#[derive(Default)]
struct RegionPast {
    observations: usize,
    published: usize,
    /// Batches that failed after their retries.
    failures: usize,
    unsupported: Option<String>,
}
