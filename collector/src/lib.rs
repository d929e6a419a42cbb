//! windsock's collector: on a cron schedule, fetches the weather of every region from the
//! configured source and publishes each observation, and each fetch's outcome as a log
//! event, on the bus. On start it backfills the look-back window where the source can serve
//! the past, so a restart leaves no gap.
//!
//! - [`schedule`]: the cron, aligned ticks, past ticks.
//! - [`source`]: OpenWeatherMap, Open-Meteo, simulated, replay.
//! - [`round`]: one collection round (all regions, bounded concurrency, retries, isolation).
//! - [`backfill`]: the look-back on start, beside the live rounds.
//! - [`pace`]: the rate of requests for the past; live rounds go first.
//! - [`status`]: `GET /api/collector/status`.

pub mod backfill;
mod pace;
pub mod retry;
pub mod round;
pub mod schedule;
pub mod source;
pub mod status;

pub use backfill::BackfillReport;
pub use round::{Outcome, RegionReport, RoundReport};
pub use schedule::{Due, Schedule, Tick, TickCursor};
pub use source::{FetchError, Source};
pub use status::{
    openapi, BackfillProgress, BackfillState, LastRound, MissedTicks, MissedView, StatusView,
};

use backfill::MAX_BACKFILL_INSTANTS;
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

/// Rounds running at once (a slow API with long retries can make rounds overlap).
const ROUNDS_IN_FLIGHT: usize = 4;
/// A round starting later than this after its instant is logged as late. The scheduler polls
/// every 500 ms, so a healthy round starts well within it.
const LATE_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

const MISSED_TICKS: &str = "windsock_collector_missed_ticks_total";
const TICK_LATENESS: &str = "windsock_collector_tick_lateness_seconds";

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
    pub(crate) pace: pace::BackfillPace,
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
        round::register_metrics(clock.now(), &schedule);
        let source = source::timed(source);
        let pace = pace::BackfillPace::new(config.collector.backfill_rate());
        let status = status::StatusState::new(config.regions.len(), pace.rate());
        Self {
            inner: Arc::new(Inner {
                config,
                bus,
                clock,
                source,
                schedule,
                retry,
                pace,
                status: Mutex::new(status),
            }),
        }
    }

    /// `GET /api/collector/status`: the routes [`openapi`] describes.
    pub fn routes(&self) -> axum::Router {
        status::routes(self.inner.clone())
    }

    pub fn schedule(&self) -> &Schedule {
        &self.inner.schedule
    }

    pub fn source(&self) -> &SharedSource {
        &self.inner.source
    }

    /// Starts the schedule and runs a round per tick until `shutdown`, backfilling the
    /// look-back beside them; rounds under way are finished before it returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), CollectorError> {
        // One pending wake-up is enough: each hands out every instant due by then.
        let (wake, wakeups) = mpsc::channel(1);
        let mut scheduler = self.start_scheduler(wake).await?;
        let result = self.run_with_wakeups(shutdown, wakeups).await;
        if let Err(err) = scheduler.shutdown().await {
            tracing::warn!(error = %err, "the scheduler did not stop cleanly");
        }
        result
    }

    /// As [`Collector::run`], woken by `wakeups` instead of the cron scheduler (tests wake it
    /// on a `ManualClock`). Each wake-up, and each round that ends, hands out every scheduled
    /// instant due on the collector's clock: the newest gets a round; older ones were missed
    /// (the scheduler fired late, the runtime was starved, the process was suspended, or
    /// every round slot was taken), so they are logged, counted and fetched from the past
    /// where the source serves it.
    pub async fn run_with_wakeups(
        self,
        shutdown: CancellationToken,
        mut wakeups: mpsc::Receiver<()>,
    ) -> Result<(), CollectorError> {
        // Listed from the start (at zero), so rate() and increase() see the first miss.
        metrics::counter!(MISSED_TICKS, "service" => COUNTERS.service).increment(0);
        COUNTERS.gauge(TICK_LATENESS, 0.0);
        // The backfill covers up to `started`, the live rounds every instant after it: no
        // gap between the two, and no instant fetched by both.
        let started = self.inner.clock.now();
        let mut cursor = TickCursor::after(self.inner.schedule.clone(), started);
        tracing::info!(
            source = self.inner.source.name(),
            schedule = self.inner.schedule.pattern(),
            regions = self.inner.config.regions.len(),
            "collector started"
        );
        // Beside the live rounds, never before them: a long backfill must not leave every
        // region looking late. Its requests give way to the live rounds' (see `pace`).
        let backfill = tokio::spawn({
            let (collector, shutdown) = (self.clone(), shutdown.clone());
            async move {
                tokio::select! {
                    _ = collector.backfill_until(started) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        });
        let mut rounds = JoinSet::new();
        self.dispatch(&mut cursor, &mut rounds);
        let mut awake = true;
        while !shutdown.is_cancelled() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                // At the limit, a wake-up waits in the channel; the instants it was for
                // stay due in the cursor.
                wake = wakeups.recv(), if awake && rounds.len() < ROUNDS_IN_FLIGHT => match wake {
                    Some(()) => self.dispatch(&mut cursor, &mut rounds),
                    None => awake = false,
                },
                Some(done) = rounds.join_next(), if !rounds.is_empty() => {
                    if let Err(err) = done {
                        tracing::error!(error = %err, "a collection round panicked");
                    }
                    // A slot is free: what came due while every slot was taken runs now,
                    // not at the next firing.
                    if rounds.len() < ROUNDS_IN_FLIGHT {
                        self.dispatch(&mut cursor, &mut rounds);
                    }
                }
            }
        }
        while rounds.join_next().await.is_some() {}
        if let Err(err) = backfill.await {
            tracing::error!(error = %err, "the backfill panicked");
        }
        tracing::info!("collector stopped");
        Ok(())
    }

    /// Starts a round for the newest due instant, and a catch-up for the missed ones.
    fn dispatch(&self, cursor: &mut TickCursor, rounds: &mut JoinSet<()>) {
        let now = self.inner.clock.now();
        let due = cursor.due(now, MAX_BACKFILL_INSTANTS + 1);
        let Some((&live, missed)) = due.ticks.split_last() else {
            return;
        };
        if due.total() > 1 {
            if let Some((occurrence, ticks)) = self.missed(&due, missed, now) {
                let collector = self.clone();
                // Beside the live round, even at the limit: holding it back would only
                // make the live round late too.
                rounds.spawn(async move { collector.catch_up(occurrence, ticks).await });
            }
        }
        let late = now - live.at;
        COUNTERS.gauge(TICK_LATENESS, seconds(late));
        if late > LATE_AFTER {
            tracing::warn!(
                tick = %live.at,
                late_s = seconds(late),
                "collection round started late"
            );
        }
        let collector = self.clone();
        rounds.spawn(async move {
            collector.round(live).await;
        });
    }

    /// Logs, counts and records the missed instants of `due` (all but its newest); returns
    /// the occurrence and the instants to fetch from the past, if any.
    fn missed(&self, due: &Due, missed: &[Tick], now: DateTime<Utc>) -> Option<(u64, Vec<Tick>)> {
        let count = due.total() - 1;
        let newest = missed.last()?.at;
        let oldest = due.oldest.unwrap_or(newest);
        // Fetched like the backfill on start: within its look-back, where the source can.
        let (fetch, not_fetched): (Vec<Tick>, Option<String>) = match self.past_window(now) {
            Ok(since) => {
                let fetch: Vec<Tick> = missed.iter().filter(|t| t.at > since).copied().collect();
                let left = count - fetch.len() as u64;
                let why = (left > 0).then(|| {
                    format!(
                        "{left} missed instants are older than collector.backfill ({}) or beyond the {MAX_BACKFILL_INSTANTS} fetched at once",
                        humantime::format_duration(self.inner.config.collector.backfill)
                    )
                });
                (fetch, why)
            }
            Err(why) => (Vec::new(), Some(why)),
        };
        let late = now - oldest;
        tracing::warn!(
            missed = count,
            oldest = %oldest,
            newest = %newest,
            late_s = seconds(late),
            catching_up = fetch.len(),
            not_fetched = not_fetched.as_deref().unwrap_or(""),
            "scheduled collection instants were missed; catching up"
        );
        metrics::counter!(MISSED_TICKS, "service" => COUNTERS.service).increment(count);
        let occurrence = self.inner.status.lock().record_missed(status::MissedTicks {
            noticed: now,
            count,
            oldest,
            newest,
            late_seconds: seconds(late),
            catching_up: fetch.len(),
            not_fetched,
            catch_up: None,
            occurrence: 0,
        });
        (!fetch.is_empty()).then_some((occurrence, fetch))
    }

    async fn start_scheduler(
        &self,
        wake: mpsc::Sender<()>,
    ) -> Result<JobScheduler, CollectorError> {
        let scheduler_error = |err: tokio_cron_scheduler::JobSchedulerError| {
            CollectorError::Scheduler(err.to_string())
        };
        let scheduler = JobScheduler::new().await.map_err(scheduler_error)?;
        let job = Job::new_async(self.inner.schedule.pattern(), move |_id, _scheduler| {
            // Full means a wake-up is pending already, which hands out this instant too.
            let _ = wake.try_send(());
            Box::pin(async {})
        })
        .map_err(scheduler_error)?;
        scheduler.add(job).await.map_err(scheduler_error)?;
        scheduler.start().await.map_err(scheduler_error)?;
        Ok(scheduler)
    }
}

fn seconds(delta: chrono::TimeDelta) -> f64 {
    delta.num_milliseconds() as f64 / 1000.0
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
