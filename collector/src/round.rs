//! One collection round: every region fetched at once (bounded), each with its own retries,
//! so one failing region never blocks or drops the others. Every fetch outcome is published
//! as a `LogEvent` besides the observations.

use crate::source::FetchError;
use crate::{Collector, Tick, COUNTERS};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Instant;
use windsock_core::bus::Topic;
use windsock_core::config::Region;
use windsock_core::event::{Envelope, Event, Level, LogEvent, Observation};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Observations fetched.
    Ok,
    /// The source answered with nothing for this region (a silent region).
    NoData,
    /// The fetch failed after its retries.
    Failed,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NoData => "no_data",
            Outcome::Failed => "failed",
        }
    }
}

/// How one region's fetch went.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RegionReport {
    pub region: String,
    pub outcome: Outcome,
    pub observations: usize,
    /// Observations the bus accepted.
    pub published: usize,
    pub attempts: u32,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RoundReport {
    pub tick: DateTime<Utc>,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub regions: Vec<RegionReport>,
}

impl RoundReport {
    /// Regions by outcome: `{"ok": 13, "failed": 1}`.
    pub fn outcomes(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for region in &self.regions {
            *counts.entry(region.outcome.as_str()).or_default() += 1;
        }
        counts
    }

    /// Whether the source answered for at least one region: the collection works, even if
    /// some regions fail or report nothing (those have late-data alerts of their own).
    pub fn succeeded(&self) -> bool {
        self.regions.iter().any(|r| r.outcome != Outcome::Failed)
    }

    pub fn region(&self, name: &str) -> Option<&RegionReport> {
        self.regions.iter().find(|r| r.region == name)
    }
}

/// When a round last finished, whatever its outcome.
pub const LAST_ROUND: &str = "windsock_collector_last_round_timestamp_seconds";
/// When a round last finished with at least one region answering.
pub const LAST_SUCCESS: &str = "windsock_collector_last_success_timestamp_seconds";
/// The schedule's interval, as of the last round.
pub const INTERVAL: &str = "windsock_collector_interval_seconds";

/// Describes the collector's families and lists its gauges from the start. The last success
/// starts at `started`: "no successful round for N intervals" then holds from the start too,
/// without firing before the first round had a chance to run, and fires if none ever does.
pub(crate) fn register_metrics(started: DateTime<Utc>, schedule: &crate::Schedule) {
    use metrics::Unit;
    windsock_core::telemetry::prometheus();
    metrics::describe_histogram!(
        crate::source::FETCH_DURATION,
        Unit::Seconds,
        "Time each fetch attempt from a weather source took (a retry is an attempt of its own), \
         by source."
    );
    metrics::describe_gauge!(
        LAST_ROUND,
        Unit::Seconds,
        "Unix time the last collection round finished, whatever its outcome."
    );
    metrics::describe_gauge!(
        LAST_SUCCESS,
        Unit::Seconds,
        "Unix time the last successful collection round (at least one region's fetch did not \
         fail) finished; the collector's start before the first."
    );
    metrics::describe_gauge!(
        INTERVAL,
        Unit::Seconds,
        "Seconds between two scheduled rounds (collector.schedule), as of the last round."
    );
    metrics::describe_counter!(
        crate::MISSED_TICKS,
        Unit::Count,
        "Scheduled instants whose round could not start in time (caught up afterwards)."
    );
    metrics::describe_gauge!(
        crate::TICK_LATENESS,
        Unit::Seconds,
        "How late the last round started after its scheduled instant."
    );
    COUNTERS.gauge(LAST_SUCCESS, unix_seconds(started));
    if let Some(tick) = schedule.tick_at(started) {
        record_interval(tick);
    }
}

fn record_interval(tick: Tick) {
    if let Ok(interval) = (tick.at - tick.previous).to_std() {
        COUNTERS.gauge(INTERVAL, interval.as_secs_f64());
    }
}

fn unix_seconds(at: DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

/// Whether a fetch was for the live round, the backfill on start, or missed instants, as
/// recorded in its log event.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Phase {
    Live,
    Backfill,
    CatchUp,
}

/// Regions whose fetched observations (and fetch outcomes) are published in one bus batch.
/// A round of 10,000 simulated regions is then 10 batches, not 20,000 awaited publishes;
/// a slow HTTP source publishes what has come back each time, so nothing waits for the end.
const PUBLISH_BATCH_REGIONS: usize = 1_000;

impl Collector {
    /// Runs one round for `tick`: fetches every region, publishes what came back, and
    /// records the round in the status. The scheduler calls this; tests may too.
    pub async fn round(&self, tick: Tick) -> RoundReport {
        let inner = &self.inner;
        let started = inner.clock.now();
        // Requests for the past wait until this round is over: live rounds go first.
        let _live = inner.pace.live_round();
        // A cloned handle and an index per fetch keep the stream's futures 'static-free of
        // borrows of the region list, so the round can be spawned.
        let mut fetched = futures::stream::iter(0..inner.config.regions.len())
            .map(|index| {
                let collector = self.clone();
                async move {
                    let region = &collector.inner.config.regions[index];
                    let (report, observations) = collector.fetch_region(region, tick).await;
                    (index, report, observations)
                }
            })
            .buffer_unordered(inner.config.collector.concurrency.max(1))
            .ready_chunks(PUBLISH_BATCH_REGIONS);
        let mut regions = Vec::with_capacity(inner.config.regions.len());
        while let Some(batch) = fetched.next().await {
            regions.extend(self.publish_fetched(batch, tick).await);
        }
        regions.sort_by(|a, b| a.region.cmp(&b.region));
        let report = RoundReport {
            tick: tick.at,
            started,
            finished: inner.clock.now(),
            regions,
        };
        let outcomes = report.outcomes();
        tracing::info!(
            tick = %tick.at,
            ok = outcomes.get("ok").copied().unwrap_or(0),
            no_data = outcomes.get("no_data").copied().unwrap_or(0),
            failed = outcomes.get("failed").copied().unwrap_or(0),
            "collection round finished"
        );
        COUNTERS.gauge(LAST_ROUND, unix_seconds(report.finished));
        if report.succeeded() {
            COUNTERS.gauge(LAST_SUCCESS, unix_seconds(report.finished));
        }
        record_interval(tick);
        inner.status.lock().record_round(report.clone());
        report
    }

    /// Fetches one region for the live round; what came back is published by the caller.
    async fn fetch_region(&self, region: &Region, tick: Tick) -> (RegionReport, Vec<Observation>) {
        let inner = &self.inner;
        let clock = std::time::Instant::now();
        let (result, attempts) = inner
            .retry
            .run(|| async {
                let fetched = inner.source.current(region, tick).await;
                // The quota is spent: the backfill waits too, so the next round finds it.
                if let Err(FetchError::RateLimited { retry_after, .. }) = &fetched {
                    inner.pace.slow_down(*retry_after);
                }
                fetched
            })
            .await;
        let mut report = RegionReport {
            region: region.name.clone(),
            outcome: Outcome::Ok,
            observations: 0,
            published: 0,
            attempts,
            latency_ms: elapsed_ms(clock),
            http_status: None,
            error: None,
        };
        let observations = match result {
            Ok(observations) if observations.is_empty() => {
                report.outcome = Outcome::NoData;
                observations
            }
            Ok(observations) => {
                report.observations = observations.len();
                observations
            }
            Err(err) => {
                report.fail(&err);
                Vec::new()
            }
        };
        (report, observations)
    }

    /// Publishes a batch of regions' observations at once, then their fetch outcomes; returns
    /// the regions' reports with what the bus accepted.
    async fn publish_fetched(
        &self,
        batch: Vec<(usize, RegionReport, Vec<Observation>)>,
        tick: Tick,
    ) -> Vec<RegionReport> {
        let regions = &self.inner.config.regions;
        let batch: Vec<(usize, RegionReport, Vec<Message>)> = batch
            .into_iter()
            .map(|(index, report, observations)| (index, report, encode_all(observations)))
            .collect();
        let total: usize = batch.iter().map(|(_, _, m)| m.len()).sum();
        COUNTERS.received(total as u64);
        // Cheap copies: the payloads are shared, not copied.
        let all: Vec<Message> = batch.iter().flat_map(|(_, _, m)| m.clone()).collect();
        let batched = self.publish_batch(all).await;
        let mut reports = Vec::with_capacity(batch.len());
        let mut outcomes = Vec::with_capacity(batch.len());
        for (index, mut report, messages) in batch {
            report.published = if batched {
                messages.len()
            } else {
                // One by one, so each region's count says what the bus took.
                self.publish_each(messages).await
            };
            outcomes.push(self.outcome_event(&regions[index], tick, Phase::Live, &report));
            reports.push(report);
        }
        if batched {
            COUNTERS.sent(total as u64);
        }
        self.publish_logs(outcomes).await;
        reports
    }

    /// Publishes observations, in one bus batch when it takes it, else one by one; returns
    /// how many the bus accepted.
    pub(crate) async fn publish(&self, observations: Vec<Observation>) -> usize {
        let messages = encode_all(observations);
        let count = messages.len();
        COUNTERS.received(count as u64);
        if self.publish_batch(messages.clone()).await {
            COUNTERS.sent(count as u64);
            return count;
        }
        self.publish_each(messages).await
    }

    /// Publishes observations one by one, counting what the bus refuses; returns how many it
    /// accepted.
    async fn publish_each(&self, messages: Vec<Message>) -> usize {
        let mut published = 0;
        for (key, payload) in messages {
            match self
                .inner
                .bus
                .publish(Topic::Observations, &key, payload)
                .await
            {
                Ok(()) => published += 1,
                Err(err) => {
                    tracing::error!(error = %err.chain(), "an observation could not be published");
                    COUNTERS.error("publish");
                    COUNTERS.dropped(1, "publish_failed");
                }
            }
        }
        COUNTERS.sent(published as u64);
        published
    }

    /// Publishes observations in one bus batch; false if the batch failed (some may have
    /// been published: publishing them again gives the same ids, which replace themselves
    /// downstream).
    async fn publish_batch(&self, messages: Vec<Message>) -> bool {
        if messages.is_empty() {
            return true;
        }
        match self
            .inner
            .bus
            .publish_batch(Topic::Observations, messages)
            .await
        {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(error = %err.chain(), "a batch of observations could not be published; publishing them one by one");
                false
            }
        }
    }

    /// Publishes fetch outcomes on the logs topic (directly, so they are there whatever the
    /// log level).
    pub(crate) async fn publish_logs(&self, events: Vec<Event>) {
        let count = events.len() as u64;
        if count == 0 {
            return;
        }
        let messages = events.into_iter().map(encode).collect();
        if let Err(err) = self.inner.bus.publish_batch(Topic::Logs, messages).await {
            tracing::warn!(error = %err.chain(), "fetch outcomes could not be published");
            COUNTERS.dropped(count, "log_publish_failed");
        }
    }

    /// A fetch outcome as a log event, traced at debug for the console too.
    pub(crate) fn outcome_event(
        &self,
        region: &Region,
        tick: Tick,
        phase: Phase,
        report: &RegionReport,
    ) -> Event {
        let source = self.inner.source.name();
        tracing::debug!(
            region = %region.name,
            source,
            outcome = report.outcome.as_str(),
            attempts = report.attempts,
            latency_ms = report.latency_ms,
            error = report.error.as_deref().unwrap_or(""),
            "fetch outcome"
        );
        let (level, message) = match report.outcome {
            Outcome::Ok => (Level::Info, "fetch succeeded"),
            Outcome::NoData => (Level::Warn, "fetch returned no data"),
            Outcome::Failed => (Level::Warn, "fetch failed"),
        };
        let mut fields = Map::new();
        fields.insert("source".into(), source.into());
        fields.insert("status".into(), report.outcome.as_str().into());
        fields.insert("latency_ms".into(), report.latency_ms.into());
        fields.insert("attempts".into(), report.attempts.into());
        fields.insert("observations".into(), report.observations.into());
        fields.insert("tick".into(), json!(tick.at));
        fields.insert(
            "phase".into(),
            match phase {
                Phase::Live => "live",
                Phase::Backfill => "backfill",
                Phase::CatchUp => "catch_up",
            }
            .into(),
        );
        if let Some(status) = report.http_status {
            fields.insert("http_status".into(), status.into());
        }
        if let Some(error) = &report.error {
            fields.insert("error".into(), Value::String(error.clone()));
        }
        Event::Log(LogEvent {
            timestamp: self.inner.clock.now(),
            service: "collector".into(),
            level,
            message: message.into(),
            region: Some(region.name.clone()),
            target: Some(module_path!().into()),
            fields,
        })
    }
}

/// A bus message: its key and its payload.
type Message = (String, Bytes);

fn encode_all(observations: Vec<Observation>) -> Vec<Message> {
    observations
        .into_iter()
        .map(|o| encode(Event::Observation(o)))
        .collect()
}

/// An event as a bus message: its key and its envelope, as `publish_event` sends it.
fn encode(event: Event) -> Message {
    let key = event.key();
    (key, Bytes::from(Envelope::new(event).to_json()))
}

impl RegionReport {
    pub(crate) fn fail(&mut self, err: &FetchError) {
        COUNTERS.error(err.kind());
        self.outcome = Outcome::Failed;
        self.http_status = err.http_status();
        self.error = Some(err.to_string());
    }
}

pub(crate) fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis().min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{timed, FetchError, Source, FETCH_DURATION};
    use std::sync::Arc;
    use std::time::Duration;

    fn region(name: &str, outcome: Outcome) -> RegionReport {
        RegionReport {
            region: name.into(),
            outcome,
            observations: 0,
            published: 0,
            attempts: 1,
            latency_ms: 0,
            http_status: None,
            error: None,
        }
    }

    fn round(outcomes: &[Outcome]) -> RoundReport {
        let now = Utc::now();
        RoundReport {
            tick: now,
            started: now,
            finished: now,
            regions: outcomes
                .iter()
                .enumerate()
                .map(|(i, o)| region(&format!("r{i}"), *o))
                .collect(),
        }
    }

    #[test]
    fn a_round_succeeds_when_the_source_answered_for_any_region() {
        assert!(round(&[Outcome::Failed, Outcome::Ok]).succeeded());
        // A silent region is the source answering with nothing: collection works.
        assert!(round(&[Outcome::NoData, Outcome::Failed]).succeeded());
        assert!(!round(&[Outcome::Failed, Outcome::Failed]).succeeded());
        assert!(!round(&[]).succeeded());
    }

    struct Flaky;

    #[async_trait::async_trait]
    impl Source for Flaky {
        fn name(&self) -> &'static str {
            "flaky_for_the_timing_test"
        }

        async fn current(
            &self,
            region: &Region,
            _tick: Tick,
        ) -> Result<Vec<Observation>, FetchError> {
            match region.name.as_str() {
                "ok" => Ok(Vec::new()),
                _ => Err(FetchError::Timeout(Duration::from_millis(1))),
            }
        }
    }

    fn count(text: &str) -> Option<u64> {
        let series = format!("{FETCH_DURATION}_count{{source=\"flaky_for_the_timing_test\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&series))
            .and_then(|value| value.parse().ok())
    }

    #[tokio::test]
    async fn every_fetch_attempt_is_timed_by_source_whatever_its_outcome() {
        let handle = windsock_core::telemetry::prometheus();
        let source = timed(Arc::new(Flaky));
        assert_eq!(
            count(&handle.render()),
            Some(0),
            "listed at zero before the first fetch"
        );
        let tick = Tick {
            at: Utc::now(),
            previous: Utc::now(),
        };
        let region = |name: &str| Region {
            name: name.into(),
            lat: 0.0,
            lon: 0.0,
        };
        assert!(source.current(&region("ok"), tick).await.is_ok());
        assert!(source.current(&region("down"), tick).await.is_err());
        assert_eq!(source.name(), "flaky_for_the_timing_test");
        assert_eq!(count(&handle.render()), Some(2));
    }
}
