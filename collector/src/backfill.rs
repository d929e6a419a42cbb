//! The look-back on start: every scheduled instant of the `backfill` window is fetched from
//! sources that serve the past, before the first live round. Observations carry
//! deterministic ids, so what was already published before a restart replaces itself
//! downstream rather than duplicating.

use crate::round::{elapsed_ms, Outcome, Phase, RegionReport};
use crate::source::FetchError;
use crate::{Collector, Tick};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use windsock_core::config::Region;

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
        let report = self.backfill_inner().await;
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
        self.inner.status.lock().record_backfill(report.clone());
        report
    }

    async fn backfill_inner(&self) -> BackfillReport {
        let inner = &self.inner;
        let mut report = BackfillReport::default();
        let now = inner.clock.now();
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

    /// Fetches `ticks` from the past, every region, into `report`.
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
        let units: Vec<(Region, Vec<Tick>)> = inner
            .config
            .regions
            .iter()
            .flat_map(|region| {
                ticks
                    .chunks(batch.max(1))
                    .map(move |chunk| (region.clone(), chunk.to_vec()))
            })
            .collect();
        // A source that cannot serve the past after all (an OpenWeatherMap key without One
        // Call) says so once; the remaining units are not tried.
        let unsupported = Arc::new(AtomicBool::new(false));
        let outcomes: Vec<(RegionReport, Option<FetchError>)> = futures::stream::iter(units)
            .map(|(region, chunk)| {
                let (collector, unsupported) = (self.clone(), unsupported.clone());
                async move {
                    collector
                        .backfill_unit(&region, &chunk, phase, &unsupported)
                        .await
                }
            })
            .buffer_unordered(inner.config.collector.concurrency.max(1))
            .collect()
            .await;
        for (unit, err) in outcomes {
            report.observations += unit.observations;
            report.published += unit.published;
            match err {
                Some(FetchError::Unsupported(why)) => report.skipped = Some(why),
                Some(_) => report.failures += 1,
                None => {}
            }
        }
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
        if unsupported.load(Ordering::Relaxed) {
            return (report, None);
        }
        let started = Instant::now();
        let (result, attempts) = inner.retry.run(|| inner.source.past(region, ticks)).await;
        report.attempts = attempts;
        report.latency_ms = elapsed_ms(started);
        let error = match result {
            Ok(observations) => {
                report.observations = observations.len();
                if observations.is_empty() {
                    report.outcome = Outcome::NoData;
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
        self.publish_outcome(region, tick, phase, &report).await;
        (report, error)
    }
}
