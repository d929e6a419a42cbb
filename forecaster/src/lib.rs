//! windsock's forecaster: per-region hourly temperature forecasts.
//!
//! - History: observations from the bus, resampled hourly ([`series`]), kept per region in
//!   `<data_dir>/forecaster/` ([`store`]); rebuilt by replaying the observations topic when
//!   that directory is empty.
//! - Models ([`models`]): MSTL(24) + AutoETS trend, with persistence and seasonal naive
//!   always beside it. Each refit records every model's forecast; once actuals arrive those
//!   are the models' rolling-origin backtest ([`calibration`]), which picks the model with
//!   the lowest recent MAE and calibrates its intervals (split-conformal).
//! - Refits on a cron schedule and after the history loads, off the async runtime, a bounded
//!   number at once; each publishes a `Forecast` event ([`engine`], [`service`]).
//! - HTTP ([`api`]): `/api/forecast/{region}`, `/api/forecast/{region}/backtest`, `/predict`
//!   (the contract of the FastAPI/Prophet service it replaces), described by [`openapi`].
//! - Metrics: `windsock_forecast_fit_seconds{model}`, each model's fit and forecast
//!   ([`models::forecast`]), besides the counters every service has.

pub mod api;
pub mod calibration;
pub mod engine;
pub mod models;
pub mod predict;
pub mod series;
pub mod service;
pub mod store;

use service::{Shared, COUNTERS};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use windsock_core::bus::{
    BusError, Delivery, EventSubscription, RunSubscription, SharedBus, Topic,
};
use windsock_core::clock::SharedClock;
use windsock_core::Config;

/// The OpenAPI document of the forecaster's routes (generated from the handlers, see [`api`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::openapi()
}

/// Describes the forecaster's own metric families (`# HELP`), and makes each model's fit
/// histogram exist before its first fit, so a dashboard has series from the start.
pub fn describe_metrics() {
    metrics::describe_histogram!(
        models::FIT_SECONDS,
        metrics::Unit::Seconds,
        "Time to fit one model and forecast with it, by model: scheduled refits, /predict, \
         and the backfills and backtests that score the models."
    );
    for kind in models::ModelKind::ALL {
        let _ = metrics::histogram!(models::FIT_SECONDS, "model" => kind.name());
    }
}

/// The consumer group the forecaster reads observations as.
pub const GROUP: &str = "forecaster";

/// Deliveries persisted and acked together at most this often...
const FLUSH_INTERVAL: Duration = Duration::from_millis(500);
/// ...or as soon as this many are waiting.
const FLUSH_BATCH: usize = 2_000;
/// How long to wait before persisting again after a failure.
const FLUSH_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ForecasterError {
    #[error("forecaster state: {0}")]
    Store(#[from] store::StoreError),
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error("refit schedule `{schedule}`: {reason}")]
    Schedule { schedule: String, reason: String },
}

pub struct Forecaster {
    shared: Arc<Shared>,
    bus: SharedBus,
    subscription: RunSubscription,
}

impl Forecaster {
    /// Opens the state in `<data_dir>/forecaster/` and subscribes to observations.
    pub async fn new(config: Arc<Config>, bus: SharedBus) -> Result<Self, ForecasterError> {
        Self::with_clock(config, bus, windsock_core::clock::system()).await
    }

    /// As [`Forecaster::new`], with the clock that stamps `generated_at`.
    pub async fn with_clock(
        config: Arc<Config>,
        bus: SharedBus,
        clock: SharedClock,
    ) -> Result<Self, ForecasterError> {
        describe_metrics();
        let shared = Arc::new(Shared::open(config, clock)?);
        let subscription = RunSubscription::new(bus.clone(), &[Topic::Observations], GROUP).await?;
        Ok(Self {
            shared,
            bus,
            subscription,
        })
    }

    /// `/api/forecast/{region}`, `/api/forecast/{region}/backtest`, `/predict`.
    pub fn routes(&self) -> axum::Router {
        api::router(self.shared.clone())
    }

    /// Loads history (replaying the bus if the state is empty), refits, then ingests
    /// observations and refits on the schedule until `shutdown`.
    ///
    /// It can run again after a run failed (the supervisor restarts it; the routes stay): that
    /// run subscribes again, resuming from the last committed offsets, so what the failed run
    /// had not persisted is delivered again.
    pub fn run(
        &self,
        shutdown: CancellationToken,
    ) -> impl std::future::Future<Output = Result<(), ForecasterError>> + Send + 'static {
        let subscription = self.subscription.next_run();
        let shared = self.shared.clone();
        let bus = self.bus.clone();
        async move { run_with(shared, bus, subscription.await?, shutdown).await }
    }
}

/// One run of the forecaster, on its subscription.
async fn run_with(
    shared: Arc<Shared>,
    bus: SharedBus,
    mut subscription: EventSubscription,
    shutdown: CancellationToken,
) -> Result<(), ForecasterError> {
    if shared.store_is_empty() {
        let added = service::replay_observations(&shared, &bus).await?;
        tracing::info!(
            observations = added,
            "forecaster history rebuilt from the bus"
        );
        shared.persist().await?;
    }
    let (ticks, mut tick_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut scheduler = schedule_refits(&shared.config.forecaster.schedule, ticks).await?;
    let mut refitting = Some(spawn_refit(&shared, &bus, None));
    // The scheduled refit, spread over the interval (see service::RefitSpread): apart from
    // `refitting`, so regions that reach enough history meanwhile are not kept waiting.
    let mut spreading: Option<tokio::task::JoinHandle<()>> = None;

    let mut pending: Vec<Delivery> = Vec::new();
    let mut flush_at: Option<Instant> = None;
    let result = loop {
        let flush_deadline = flush_at.unwrap_or_else(|| Instant::now() + FLUSH_INTERVAL);
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            _ = tokio::time::sleep_until(flush_deadline), if flush_at.is_some() => {
                flush_at = None;
                if flush(&shared, &mut subscription, &mut pending).await.is_err() {
                    flush_at = Some(Instant::now() + FLUSH_RETRY);
                    continue;
                }
                if refitting.as_ref().is_none_or(|t| t.is_finished()) {
                    let missing = shared.regions_without_forecast();
                    if !missing.is_empty() {
                        refitting = Some(spawn_refit(&shared, &bus, Some(missing)));
                    }
                }
            }
            Some(()) = tick_rx.recv() => {
                if spreading.as_ref().is_none_or(|t| t.is_finished()) {
                    spreading = Some(spawn_spread_refit(&shared, &bus, &shutdown));
                } else {
                    COUNTERS.dropped(1, "refit_still_running");
                    tracing::warn!("scheduled refit skipped: the previous one is still running");
                }
            }
            // While a batch waits to be persisted (a failing disk), stop taking more.
            next = subscription.next(), if pending.len() < FLUSH_BATCH => match next {
                Ok(Some((delivery, envelope))) => {
                    service::ingest_event(&shared, &delivery, &envelope.event);
                    pending.push(delivery);
                    flush_at.get_or_insert_with(|| Instant::now() + FLUSH_INTERVAL);
                    if pending.len() >= FLUSH_BATCH {
                        flush_at = Some(Instant::now());
                    }
                }
                Ok(None) => break Ok(()),
                Err(err) => {
                    COUNTERS.error("consume");
                    tracing::warn!(error = %err, "reading observations failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    };
    let flushed = flush(&shared, &mut subscription, &mut pending).await;
    if let Some(task) = refitting {
        let _ = task.await;
    }
    if let Some(task) = spreading {
        // It stops at shutdown, after the refit under way.
        let _ = task.await;
    }
    let _ = scheduler.shutdown().await;
    result.and(flushed)
}

/// Persists what was ingested, then acks it. A failure is logged and counted and the
/// deliveries stay pending (unacked, so nothing is lost): the caller retries later.
async fn flush(
    shared: &Shared,
    subscription: &mut EventSubscription,
    pending: &mut Vec<Delivery>,
) -> Result<(), ForecasterError> {
    if pending.is_empty() {
        return Ok(());
    }
    if let Err(err) = shared.persist().await {
        COUNTERS.error("persist");
        tracing::error!(error = %err, "could not persist observations; they stay unacked");
        return Err(err.into());
    }
    for delivery in pending.drain(..) {
        if let Err(err) = subscription.ack(&delivery) {
            // Typically a partition moved to another member, which re-reads from the last
            // commit: a duplicate there, never a loss.
            COUNTERS.error("ack");
            tracing::warn!(error = %err, offset = delivery.offset, "ack failed");
        }
    }
    if let Err(err) = subscription.commit().await {
        COUNTERS.error("commit");
        tracing::warn!(error = %err, "commit failed; acked offsets are committed later");
    }
    if let Some(lag) = subscription.lag() {
        COUNTERS.gauge("windsock_bus_lag", lag as f64);
    }
    Ok(())
}

fn spawn_refit(
    shared: &Arc<Shared>,
    bus: &SharedBus,
    regions: Option<Vec<String>>,
) -> tokio::task::JoinHandle<()> {
    let shared = shared.clone();
    let bus = bus.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let refitted = shared.refit(&bus, regions).await;
        tracing::info!(
            regions = refitted,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "forecasts refitted"
        );
    })
}

/// The scheduled refit of every region, spread over the schedule's interval.
fn spawn_spread_refit(
    shared: &Arc<Shared>,
    bus: &SharedBus,
    stop: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (shared, bus, stop) = (shared.clone(), bus.clone(), stop.clone());
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let spread = service::refit_spread(&shared.config.forecaster.schedule, shared.clock.now());
        let refitted = shared
            .refit_spread(&bus, spread, service::SPREAD_POLL, &stop)
            .await;
        tracing::info!(
            regions = refitted,
            spread_s = spread.as_secs(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "scheduled forecasts refitted"
        );
    })
}

/// Sends a tick on `ticks` at each time of the cron `schedule` (ticks coalesce).
async fn schedule_refits(
    schedule: &str,
    ticks: tokio::sync::mpsc::Sender<()>,
) -> Result<JobScheduler, ForecasterError> {
    let error = |reason: String| ForecasterError::Schedule {
        schedule: schedule.to_string(),
        reason,
    };
    let scheduler = JobScheduler::new()
        .await
        .map_err(|e| error(e.to_string()))?;
    let job = Job::new_async(schedule, move |_, _| {
        let ticks = ticks.clone();
        Box::pin(async move {
            let _ = ticks.try_send(());
        })
    })
    .map_err(|e| error(e.to_string()))?;
    scheduler.add(job).await.map_err(|e| error(e.to_string()))?;
    scheduler.start().await.map_err(|e| error(e.to_string()))?;
    Ok(scheduler)
}
