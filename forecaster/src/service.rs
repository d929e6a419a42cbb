//! The running service: state shared with the HTTP handlers, ingestion from the bus
//! (acked only once persisted), and refits (off the async runtime, a bounded number at once).

use crate::calibration::Ledger;
use crate::engine::{self, EngineError, Refit, Setup};
use crate::series::{hour_of, hour_start, RegularSeries};
use crate::store::{self, RegionState, Store, StoreError};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Semaphore;
use windsock_core::bus::{publish_event, BusError, Delivery, SharedBus, Topic};
use windsock_core::clock::SharedClock;
use windsock_core::event::{Envelope, Event, Forecast, ForecastPoint, Observation};
use windsock_core::telemetry::Counters;
use windsock_core::Config;

pub static COUNTERS: Counters = Counters::new("forecaster");

/// Observations beyond the training window kept for backtests and calibration.
const EXTRA_RETENTION_HOURS: usize = (crate::api::MAX_BACKTEST_DAYS + 1) * 24;

/// A region neither configured nor observed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown region `{region}` (known: {})", known.join(", "))]
pub struct UnknownRegion {
    pub region: String,
    /// The configured regions.
    pub known: Vec<String>,
}

/// The latest refit of a region.
#[derive(Debug)]
pub struct Latest {
    pub generated_at: DateTime<Utc>,
    pub refit: Refit,
    pub history_hours: usize,
}

/// What the run loop and the HTTP handlers share.
pub struct Shared {
    pub config: Arc<Config>,
    pub setup: Setup,
    store: Mutex<Store>,
    latest: Mutex<HashMap<String, Arc<Latest>>>,
    /// Held while region files are written, so an ack never precedes the write of its data.
    persisting: tokio::sync::Mutex<()>,
    /// Bounds CPU-heavy work (refits, backtests, /predict) to the configured cores.
    compute_slots: Arc<Semaphore>,
    pub clock: SharedClock,
}

impl Shared {
    pub fn open(config: Arc<Config>, clock: SharedClock) -> Result<Shared, StoreError> {
        let fc = &config.forecaster;
        let setup = Setup::hourly(fc.history_hours, fc.horizon_hours, fc.calibration_days);
        let retention = fc.history_hours + EXTRA_RETENTION_HOURS.max(fc.calibration_days * 24 + 24);
        let store = Store::open(&config.data_dir.join("forecaster"), retention)?;
        Ok(Shared {
            setup,
            store: Mutex::new(store),
            latest: Mutex::new(HashMap::new()),
            persisting: tokio::sync::Mutex::new(()),
            compute_slots: Arc::new(Semaphore::new(fc.refit_workers.max(1))),
            clock,
            config,
        })
    }

    pub fn store_is_empty(&self) -> bool {
        self.store.lock().is_empty()
    }

    /// A region is known when it is configured or observations of it have arrived.
    pub fn check_region(&self, region: &str) -> Result<(), UnknownRegion> {
        if self.config.region(region).is_some() || self.store.lock().region(region).is_some() {
            return Ok(());
        }
        Err(UnknownRegion {
            region: region.to_string(),
            known: self.config.regions.iter().map(|r| r.name.clone()).collect(),
        })
    }

    pub fn latest(&self, region: &str) -> Option<Arc<Latest>> {
        self.latest.lock().get(region).cloned()
    }

    /// A region's hourly series of complete hours: the hour the clock is in is still
    /// accumulating observations, and its mean so far would be a biased actual.
    pub fn series(&self, region: &str) -> RegularSeries {
        let store = self.store.lock();
        store
            .region(region)
            .map(|r| self.complete_hours(r))
            .unwrap_or_default()
    }

    fn complete_hours(&self, state: &RegionState) -> RegularSeries {
        state.hourly().until(hour_of(self.clock.now()))
    }

    /// (usable hours of history, hours a forecast needs).
    pub fn history_hours(&self, region: &str) -> (usize, usize) {
        (self.series(region).len(), self.setup.min_points())
    }

    /// Runs CPU-heavy work on the blocking pool, at most `refit_workers` at once.
    pub async fn compute<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let permit = self.compute_slots.clone().acquire_owned().await;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
    }

    /// Adds an observation to its region; false if it was already there.
    pub fn ingest(&self, observation: &Observation) -> bool {
        self.store.lock().add(
            &observation.region,
            observation.observed_at.timestamp_millis(),
            &observation.source,
            observation.temperature_c,
        )
    }

    /// Writes the rows changed since the last call in one transaction; returns once it is
    /// committed. On failure the rows are taken back, so the next call writes them again.
    pub async fn persist(&self) -> Result<(), StoreError> {
        let _guard = self.persisting.lock().await;
        let writes = self.store.lock().take_writes();
        if writes.is_empty() {
            return Ok(());
        }
        let (writes, result) = tokio::task::spawn_blocking(move || {
            let result = store::write_all(&writes);
            (writes, result)
        })
        .await
        .map_err(|e| StoreError::Io {
            path: "forecaster state".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        if result.is_err() {
            self.store.lock().mark_unflushed(&writes);
        }
        result
    }

    /// Regions with enough history for a forecast but none yet.
    pub fn regions_without_forecast(&self) -> Vec<String> {
        let latest = self.latest.lock();
        let store = self.store.lock();
        store
            .regions()
            .filter(|(name, state)| {
                !latest.contains_key(*name)
                    && self.complete_hours(state).len() >= self.setup.min_points()
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Refits the given regions (all when `None`), a bounded number at once, and publishes
    /// each forecast. Returns how many regions got a new forecast.
    ///
    /// A region's job is spawned only once a compute slot is free, so an API request waiting
    /// for a slot queues behind one refit, not behind every region's.
    pub async fn refit(self: &Arc<Self>, bus: &SharedBus, regions: Option<Vec<String>>) -> usize {
        let names: Vec<String> = match regions {
            Some(names) => names,
            None => self
                .store
                .lock()
                .regions()
                .map(|(name, _)| name.clone())
                .collect(),
        };
        let horizon = self.config.forecaster.max_horizon;
        let mut tasks = tokio::task::JoinSet::new();
        let mut refitted = 0;
        for region in names {
            let Ok(permit) = self.compute_slots.clone().acquire_owned().await else {
                break;
            };
            // The newest history, taken as late as possible.
            let Some((series, mut ledger)) = self
                .store
                .lock()
                .region(&region)
                .map(|state| (self.complete_hours(state), state.ledger.clone()))
            else {
                continue;
            };
            let setup = self.setup.clone();
            tasks.spawn_blocking(move || {
                let _permit = permit;
                let refit = engine::refit(&series, &mut ledger, &setup, horizon);
                (region, refit, ledger, series.len())
            });
            while let Some(done) = tasks.try_join_next() {
                refitted += usize::from(self.finish_refit(bus, done).await);
            }
        }
        while let Some(done) = tasks.join_next().await {
            refitted += usize::from(self.finish_refit(bus, done).await);
        }
        if let Err(err) = self.persist().await {
            COUNTERS.error("persist");
            tracing::warn!(error = %err, "could not persist the models' ledgers");
        }
        refitted
    }

    /// Keeps a region's refit and publishes its forecast; true if there was one.
    async fn finish_refit(
        &self,
        bus: &SharedBus,
        done: Result<(String, Result<Refit, EngineError>, Ledger, usize), tokio::task::JoinError>,
    ) -> bool {
        let (region, refit, ledger, history_hours) = match done {
            Ok(done) => done,
            Err(err) => {
                COUNTERS.error("refit");
                tracing::warn!(error = %err, "a refit task failed");
                return false;
            }
        };
        let refit = match refit {
            Ok(refit) => refit,
            Err(EngineError::TooShort { needed, got }) => {
                tracing::debug!(region = %region, needed, got, "not enough history to forecast yet");
                return false;
            }
            Err(err) => {
                COUNTERS.error("refit");
                tracing::warn!(region = %region, error = %err, "refit failed");
                return false;
            }
        };
        for (model, err) in &refit.failures {
            tracing::warn!(region = %region, model = model.name(), error = %err, "a model could not forecast");
        }
        self.store.lock().set_ledger(&region, ledger);
        let latest = Arc::new(Latest {
            generated_at: self.clock.now(),
            refit,
            history_hours,
        });
        self.latest.lock().insert(region.clone(), latest.clone());
        match publish_event(bus.as_ref(), self.forecast_event(&region, &latest)).await {
            Ok(()) => COUNTERS.sent(1),
            Err(err) => {
                COUNTERS.error("publish");
                tracing::warn!(region = %region, error = %err.chain(), "could not publish a forecast");
            }
        }
        true
    }

    fn forecast_event(&self, region: &str, latest: &Latest) -> Event {
        let refit = &latest.refit;
        let model = refit.chosen();
        let level = self.config.forecaster.level;
        let points = (0..self.config.forecaster.horizon_hours.min(model.points.len()))
            .map(|step| {
                let (lower, upper) = model.interval(step, level);
                ForecastPoint {
                    timestamp: hour_start(refit.origin + step as i64),
                    temperature_c: model.points[step],
                    lower,
                    upper,
                }
            })
            .collect();
        Event::Forecast(Forecast {
            region: region.to_string(),
            model: refit.chosen.name().to_string(),
            generated_at: latest.generated_at,
            level,
            points,
            backtest_mae: refit
                .backtest_mae()
                .into_iter()
                .map(|(name, mae)| (name.to_string(), mae.into()))
                .collect(),
        })
    }
}

/// Scheduled refits are spread over this share of the schedule's interval: the last
/// region's refit then has a tenth of the interval to end before the next one begins.
const SPREAD_SHARE: f64 = 0.9;

/// How often a spread refit looks at the clock for regions whose turn has come.
pub const SPREAD_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// How long after each scheduled instant its refits are spread over: 90% of the time to
/// the instant after (an hourly schedule: 54 minutes). Zero (all at once) for a schedule
/// croner cannot read or that has no two instants ahead.
pub fn refit_spread(schedule: &str, now: DateTime<Utc>) -> std::time::Duration {
    let Ok(cron) = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(schedule)
    else {
        return std::time::Duration::ZERO;
    };
    let interval = cron
        .find_next_occurrence(&now, false)
        .ok()
        .and_then(|next| {
            let after = cron.find_next_occurrence(&next, false).ok()?;
            (after - next).to_std().ok()
        });
    interval.map_or(std::time::Duration::ZERO, |i| i.mul_f64(SPREAD_SHARE))
}

/// One scheduled refit of every region, spread evenly over `spread` from `start` rather
/// than all at once: 10,000 regions refitted hourly are about three a second, not 10,000
/// fits (and their forecasts, and their writes) in one burst. Regions take their turn in
/// the order of a stable hash of their name, so a region keeps its slot from one interval
/// to the next (its forecasts stay about an interval apart) and neighbours in the
/// configuration are not refitted together.
#[derive(Debug)]
pub struct RefitSpread {
    /// (when due, region), soonest first.
    queue: std::collections::VecDeque<(DateTime<Utc>, String)>,
}

impl RefitSpread {
    pub fn new(
        mut regions: Vec<String>,
        start: DateTime<Utc>,
        spread: std::time::Duration,
    ) -> Self {
        regions.sort_by_cached_key(|name| (slot_hash(name), name.clone()));
        let count = regions.len().max(1) as u32;
        let queue = regions
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                let offset = spread.mul_f64(i as f64 / count as f64);
                let offset = chrono::Duration::from_std(offset).unwrap_or(chrono::Duration::MAX);
                (start.checked_add_signed(offset).unwrap_or(start), name)
            })
            .collect();
        Self { queue }
    }

    /// The regions whose turn has come by `now` and were not handed out yet.
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let mut due = Vec::new();
        while self.queue.front().is_some_and(|(at, _)| *at <= now) {
            due.extend(self.queue.pop_front().map(|(_, name)| name));
        }
        due
    }

    /// When the next region's turn comes; `None` once every region has had it.
    pub fn next_at(&self) -> Option<DateTime<Utc>> {
        self.queue.front().map(|(at, _)| *at)
    }
}

/// FNV-1a of a region's name: stable across runs and releases, unlike std's hasher.
fn slot_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Shared {
    /// The scheduled refit: every region once, spread over `spread` from now (see
    /// [`RefitSpread`]); the regions due are refitted together each time the clock is looked
    /// at, at most `poll` apart. Stops between refits when `stop` is cancelled. Returns how
    /// many regions got a new forecast.
    pub async fn refit_spread(
        self: &Arc<Self>,
        bus: &SharedBus,
        spread: std::time::Duration,
        poll: std::time::Duration,
        stop: &tokio_util::sync::CancellationToken,
    ) -> usize {
        let names: Vec<String> = self
            .store
            .lock()
            .regions()
            .map(|(name, _)| name.clone())
            .collect();
        let mut plan = RefitSpread::new(names, self.clock.now(), spread);
        let mut refitted = 0;
        while !stop.is_cancelled() {
            let now = self.clock.now();
            let due = plan.due(now);
            if !due.is_empty() {
                refitted += self.refit(bus, Some(due)).await;
            }
            let Some(next) = plan.next_at() else {
                break;
            };
            let wait = (next - self.clock.now())
                .to_std()
                .unwrap_or_default()
                .min(poll);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => {}
            }
        }
        refitted
    }
}

/// Reads every retained observation into the store (the state was empty: a first start, or
/// the data directory was wiped). Undecodable messages are skipped here; the live
/// subscription dead-letters them.
pub async fn replay_observations(shared: &Shared, bus: &SharedBus) -> Result<usize, BusError> {
    let mut replay = bus.replay(Topic::Observations).await?;
    let mut added = 0;
    while let Some(delivery) = replay.next().await? {
        if let Ok(Envelope {
            event: Event::Observation(o),
            ..
        }) = Envelope::from_json(&delivery.payload)
        {
            if o.temperature_c.is_finite() && shared.ingest(&o) {
                added += 1;
            }
        }
    }
    Ok(added)
}

/// Takes one delivered event in; true if it changed the state.
pub fn ingest_event(shared: &Shared, delivery: &Delivery, event: &Event) -> bool {
    let Event::Observation(observation) = event else {
        return false;
    };
    COUNTERS.received(1);
    if !observation.temperature_c.is_finite() {
        COUNTERS.dropped(1, "non_finite_temperature");
        tracing::warn!(
            region = %observation.region,
            offset = delivery.offset,
            "observation with a non-finite temperature ignored"
        );
        return false;
    }
    shared.ingest(observation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::collections::BTreeMap;
    use std::time::Duration;
    use windsock_core::clock::{Clock, ManualClock};

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("R{i:05}")).collect()
    }

    #[test]
    fn the_spread_is_nine_tenths_of_the_schedules_interval() {
        assert_eq!(
            refit_spread("0 0 * * * *", noon()),
            Duration::from_secs(54 * 60)
        );
        assert_eq!(
            refit_spread("*/10 * * * * *", noon()),
            Duration::from_secs(9)
        );
        assert_eq!(refit_spread("not a cron", noon()), Duration::ZERO);
    }

    #[test]
    fn an_hours_refits_come_due_evenly_over_the_spread_each_region_once() {
        let clock = ManualClock::new(noon());
        let spread = Duration::from_secs(54 * 60);
        let mut plan = RefitSpread::new(names(600), clock.now(), spread);
        let mut per_minute = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        for minute in 0..60 {
            clock.set(noon() + chrono::Duration::minutes(minute));
            let due = plan.due(clock.now());
            for region in &due {
                assert!(seen.insert(region.clone()), "{region} twice");
            }
            per_minute.insert(minute, due.len());
        }
        assert_eq!(seen.len(), 600, "every region had its turn");
        assert_eq!(plan.next_at(), None);
        // 600 over 54 minutes: one each 5.4 s, 11 or 12 a minute; nothing after minute 54.
        assert_eq!(
            per_minute[&0], 1,
            "only the first slot at the scheduled instant"
        );
        for minute in 1..=53 {
            let due = per_minute[&minute];
            assert!((11..=12).contains(&due), "minute {minute}: {due}");
        }
        assert!(per_minute.range(55..).all(|(_, due)| *due == 0));

        // A region keeps its slot whatever the order it is listed in.
        let mut reversed = names(600);
        reversed.reverse();
        let again = RefitSpread::new(reversed, noon(), spread);
        let first = RefitSpread::new(names(600), noon(), spread);
        assert_eq!(again.queue, first.queue);
        // And the slots are not the listed order (neighbours are not refitted together).
        let order: Vec<&String> = first.queue.iter().map(|(_, name)| name).collect();
        assert_ne!(order, names(600).iter().collect::<Vec<_>>());
    }

    #[test]
    fn no_spread_is_every_region_at_once() {
        let mut plan = RefitSpread::new(names(5), noon(), Duration::ZERO);
        assert_eq!(plan.due(noon()).len(), 5);
        assert_eq!(plan.next_at(), None);
    }

    #[tokio::test]
    async fn the_spread_refit_follows_the_clock_and_stops_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let clock = ManualClock::new(noon());
        let shared =
            Arc::new(Shared::open(Arc::new(config.clone()), Arc::new(clock.clone())).unwrap());
        for region in ["Dakar", "Matam", "Kolda"] {
            // Too little history to forecast: each turn is quick, and refits nothing.
            shared.ingest(&Observation {
                region: region.into(),
                observed_at: noon() - chrono::Duration::hours(1),
                source: "simulated".into(),
                temperature_c: 25.0,
                ..Default::default()
            });
        }
        let bus: SharedBus = Arc::new(windsock_core::bus::EmbeddedBus::new(&config.bus));
        let stop = tokio_util::sync::CancellationToken::new();
        let spread = Duration::from_secs(3600);
        let running = tokio::spawn({
            let (shared, bus, stop) = (shared.clone(), bus.clone(), stop.clone());
            async move {
                shared
                    .refit_spread(&bus, spread, Duration::from_millis(5), &stop)
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!running.is_finished(), "two regions wait for their turn");
        clock.advance(chrono::Duration::hours(1));
        let refitted = tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .expect("done once the clock passed every turn")
            .unwrap();
        assert_eq!(refitted, 0);

        // A spread stopped halfway ends at once.
        let stopped = tokio::spawn({
            let (shared, bus, stop) = (shared.clone(), bus.clone(), stop.clone());
            async move { shared.refit_spread(&bus, spread, spread, &stop).await }
        });
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), stopped)
            .await
            .expect("stopped")
            .unwrap();
    }
}
