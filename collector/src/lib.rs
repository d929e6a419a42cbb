//! windsock's collector: on a cron schedule, fetches the weather of every region from the
//! configured source and publishes each observation, and each fetch's outcome as a log
//! event, on the bus. On start it backfills the look-back window where the source can serve
//! the past, so a restart leaves no gap.
//!
//! - [`schedule`]: the cron, aligned ticks, past ticks.
//! - [`source`]: OpenWeatherMap, Open-Meteo, simulated, replay.
//! - [`round`]: one collection round (all regions, bounded concurrency, retries, isolation).
//! - [`backfill`]: the look-back on start.
//! - [`status`]: `GET /api/collector/status`.

pub mod backfill;
pub mod retry;
pub mod round;
pub mod schedule;
pub mod source;
pub mod status;

pub use backfill::BackfillReport;
pub use round::{Outcome, RegionReport, RoundReport};
pub use schedule::{Schedule, Tick, TickCursor};
pub use source::{FetchError, Source};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use retry::RetryPolicy;
use source::SharedSource;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use windsock_core::clock::{self, SharedClock};
use windsock_core::config::FaultConfig;
use windsock_core::telemetry::Counters;
use windsock_core::{Config, SharedBus};

pub(crate) const COUNTERS: Counters = Counters::new("collector");

/// Ticks waiting while earlier rounds (or the backfill) run; a tick beyond this is skipped
/// (and counted).
const TICK_QUEUE: usize = 256;
/// Rounds running at once (a slow API with long retries can make rounds overlap).
const ROUNDS_IN_FLIGHT: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error(transparent)]
    Schedule(#[from] schedule::ScheduleError),
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error("{key}: {message}")]
    Config { key: String, message: String },
    #[error("scheduler: {0}")]
    Scheduler(String),
}

/// The collector service. Cheap to clone: clones share one state.
#[derive(Clone)]
pub struct Collector {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: Arc<Config>,
    pub(crate) bus: SharedBus,
    pub(crate) clock: SharedClock,
    pub(crate) source: SharedSource,
    pub(crate) schedule: Schedule,
    pub(crate) retry: RetryPolicy,
    pub(crate) status: Mutex<status::StatusState>,
}

impl Collector {
    /// Builds the collector on the wall clock.
    pub async fn new(config: Arc<Config>, bus: SharedBus) -> Result<Self, CollectorError> {
        Self::with_clock(config, bus, clock::system())
    }

    /// Builds the collector on `clock` (tests move a `ManualClock`). What is relative to the
    /// start (fault windows, a replay without an anchor) is relative to `clock.now()` here.
    pub fn with_clock(
        config: Arc<Config>,
        bus: SharedBus,
        clock: SharedClock,
    ) -> Result<Self, CollectorError> {
        let schedule = Schedule::parse(&config.collector.schedule())?;
        check_faults(&config)?;
        let started = clock.now();
        let source = source::build(&config, clock.clone(), started)?;
        Ok(Self::with_source(config, bus, clock, source, schedule))
    }

    /// Builds the collector around a source of your own.
    pub fn with_source(
        config: Arc<Config>,
        bus: SharedBus,
        clock: SharedClock,
        source: SharedSource,
        schedule: Schedule,
    ) -> Self {
        let retry = RetryPolicy::from_config(&config.collector);
        Self {
            inner: Arc::new(Inner {
                config,
                bus,
                clock,
                source,
                schedule,
                retry,
                status: Mutex::new(status::StatusState::default()),
            }),
        }
    }

    /// `GET /api/collector/status`.
    pub fn routes(&self) -> axum::Router {
        status::routes(self.inner.clone())
    }

    pub fn schedule(&self) -> &Schedule {
        &self.inner.schedule
    }

    pub fn source(&self) -> &SharedSource {
        &self.inner.source
    }

    /// Starts the schedule, backfills the look-back, then runs a round per tick until
    /// `shutdown`; rounds under way are finished before it returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), CollectorError> {
        let (tick_tx, mut ticks) = mpsc::channel(TICK_QUEUE);
        // The schedule starts before the backfill, so ticks during a long backfill queue up
        // and the backfill window (up to now) meets the first live tick with no gap.
        let mut scheduler = self.start_scheduler(tick_tx).await?;
        tracing::info!(
            source = self.inner.source.name(),
            schedule = self.inner.schedule.pattern(),
            regions = self.inner.config.regions.len(),
            "collector started"
        );
        tokio::select! {
            _ = self.backfill() => {}
            _ = shutdown.cancelled() => {}
        }
        let mut rounds = JoinSet::new();
        while !shutdown.is_cancelled() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                // At the limit, ticks wait in the queue for a round to finish.
                Some(tick) = ticks.recv(), if rounds.len() < ROUNDS_IN_FLIGHT => {
                    let collector = self.clone();
                    rounds.spawn(async move { collector.round(tick).await });
                }
                Some(done) = rounds.join_next(), if !rounds.is_empty() => {
                    if let Err(err) = done {
                        tracing::error!(error = %err, "a collection round panicked");
                    }
                }
            }
        }
        if let Err(err) = scheduler.shutdown().await {
            tracing::warn!(error = %err, "the scheduler did not stop cleanly");
        }
        while rounds.join_next().await.is_some() {}
        tracing::info!("collector stopped");
        Ok(())
    }

    async fn start_scheduler(
        &self,
        ticks: mpsc::Sender<Tick>,
    ) -> Result<JobScheduler, CollectorError> {
        let scheduler_error = |err: tokio_cron_scheduler::JobSchedulerError| {
            CollectorError::Scheduler(err.to_string())
        };
        let scheduler = JobScheduler::new().await.map_err(scheduler_error)?;
        let collector = self.clone();
        // The cursor starts at the tick the backfill (which runs after this) covers up to.
        let cursor = Arc::new(Mutex::new(TickCursor::after(
            self.inner.schedule.clone(),
            self.inner.clock.now(),
        )));
        let job = Job::new_async(self.inner.schedule.pattern(), move |_id, _scheduler| {
            let collector = collector.clone();
            let ticks = ticks.clone();
            let cursor = cursor.clone();
            Box::pin(async move {
                let due = cursor.lock().due(collector.inner.clock.now(), TICK_QUEUE);
                for tick in due {
                    if ticks.try_send(tick).is_err() {
                        collector.skip(tick.at, "too many ticks are queued");
                    }
                }
            })
        })
        .map_err(scheduler_error)?;
        scheduler.add(job).await.map_err(scheduler_error)?;
        scheduler.start().await.map_err(scheduler_error)?;
        Ok(scheduler)
    }

    fn skip(&self, tick: DateTime<Utc>, why: &str) {
        tracing::warn!(tick = %tick, reason = why, "collection round skipped");
        COUNTERS.dropped(self.inner.config.regions.len() as u64, "round_skipped");
    }
}

/// A fault about a region that is not configured would silently do nothing: refuse it.
fn check_faults(config: &Config) -> Result<(), CollectorError> {
    for (i, fault) in config.collector.simulated.faults.iter().enumerate() {
        let region = match fault {
            FaultConfig::Silent { region, .. } | FaultConfig::OutOfRange { region, .. } => region,
        };
        if config.region(region).is_none() {
            return Err(CollectorError::Config {
                key: format!("collector.simulated.faults[{i}].region"),
                message: format!("`{region}` is not a configured region"),
            });
        }
    }
    Ok(())
}
