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

#[derive(Clone, Debug, Default, Serialize)]
pub struct BackfillReport {
    pub from: Option<DateTime<Utc>>,
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
        let Some(batch) = inner.source.past_batch() else {
            report.skipped = Some(format!(
                "the {} source cannot serve the past",
                inner.source.name()
            ));
            return report;
        };
        let Ok(look_back) = chrono::Duration::from_std(inner.config.collector.backfill) else {
            report.skipped = Some("collector.backfill is too long".into());
            return report;
        };
        if look_back.is_zero() {
            report.skipped = Some("collector.backfill is 0".into());
            return report;
        }
        let now = inner.clock.now();
        let ticks = inner
            .schedule
            .ticks_between(now - look_back, now, MAX_BACKFILL_INSTANTS);
        let (Some(first), Some(last)) = (ticks.first(), ticks.last()) else {
            report.skipped = Some("no scheduled instant in the look-back".into());
            return report;
        };
        report.from = Some(first.at);
        report.to = Some(last.at);
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
                async move { collector.backfill_unit(&region, &chunk, &unsupported).await }
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
        report
    }

    async fn backfill_unit(
        &self,
        region: &Region,
        ticks: &[Tick],
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
        self.publish_outcome(region, tick, Phase::Backfill, &report)
            .await;
        (report, error)
    }
}
