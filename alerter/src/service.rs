//! [`Alerter`]: the service. Consumes observations, forecasts and the pipeline's health
//! reports among its logs (group `alerter`),
//! evaluates on every batch and every `evaluation_interval`, commits decisions to the store
//! before acking and before anything is sent, publishes state changes as `Alert` events,
//! and runs the Slack delivery worker.

use crate::engine::{Alert, Change, Engine, Lifecycle, MemoryEntry, RegionState};
use crate::ownership::Ownership;
use crate::rules::{self, RuleContext};
use crate::schedule;
use crate::slack::{message, Deliverer, Outcome, DELIVERY_SECONDS};
use crate::store::{run_blocking, DeliveryStatus, NewMessage, Store, StoreError};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use windsock_core::bus::{publish_event, BusError, Delivery, EventSubscription, RunSubscription};
use windsock_core::clock::{self, SharedClock};
use windsock_core::config::{RuleConfig, Severity, HEALTH_CONDITIONS};
use windsock_core::event::{AlertEvent, AlertState, Envelope, Event};
use windsock_core::telemetry::Counters;
use windsock_core::{Config, SharedBus, Topic};

pub(crate) const COUNTERS: Counters = Counters::new("alerter");

/// Messages taken from the bus before evaluating (more wait for the next round).
const DRAIN_BATCH: usize = 512;
/// How often old history is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum AlerterError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("alerter bus: {0}")]
    Bus(#[from] BusError),
    #[error("alerter: {0}")]
    Config(String),
}

/// What the service loop, the delivery worker and the API share.
pub(crate) struct Shared {
    pub config: Arc<Config>,
    pub engine: Mutex<Engine>,
    pub store: Arc<Store>,
    pub clock: SharedClock,
    pub public_url: String,
    pub wake_delivery: Arc<Notify>,
    /// How many evaluations finished (tests and benchmarks wait on it).
    pub evaluations: tokio::sync::watch::Sender<u64>,
    /// The rules created through the API (the file's are `config.alerter.rules`), as the
    /// engine runs them; changed with the engine's lock held after it.
    pub api_rules: Mutex<Vec<RuleConfig>>,
    /// Whether a query rule runs (then every log is decoded, see [`read`]).
    pub every_log: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// What rules built now need to know (`since`: now, so a new rule's `below` waits for a
    /// whole window of its own).
    pub(crate) fn rule_context(&self) -> RuleContext {
        RuleContext {
            regions: self.config.regions.iter().map(|r| r.name.clone()).collect(),
            collection_interval: schedule::collection_interval(&self.config.collector.schedule())
                .unwrap_or(schedule::FALLBACK_INTERVAL),
            since: self.clock.now(),
        }
    }

    /// Whether logs must be decoded whole: some rule, from the file or the API, counts them.
    pub(crate) fn refresh_every_log(&self) {
        let any = self.engine.lock().rules().any(|r| r.kind() == "query");
        self.every_log
            .store(any, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The alerter's state region by region: what moves with a region when another instance
/// takes it over (Kafka partitions changing hands, through a changelog). Each call works on
/// SQLite: from async code, call them on the blocking pool (`Store::blocking`,
/// `run_blocking`), as [`Alerter`]'s async versions do.
impl Shared {
    /// What this instance knows of `region` (`""`: the region-less state): each rule's memory
    /// of it, its alerts, its undelivered messages.
    pub(crate) fn region_state(&self, region: &str) -> Result<RegionState, StoreError> {
        let mut state = self.engine.lock().region_state(region);
        state.outbox = self.store.region_outbox(region)?;
        Ok(state)
    }

    /// Regions whose state changed since the last call: after each commit, what to write to
    /// the changelog (their [`Shared::region_state`]).
    pub(crate) fn changed_regions(&self) -> Vec<String> {
        let mut regions = self.engine.lock().changed_regions();
        regions.extend(self.store.changed_regions());
        regions.sort();
        regions.dedup();
        regions
    }

    /// Replaces what is known of `state.region` with `state` and persists it locally (one
    /// transaction): a firing alert keeps firing, announced already; its undelivered
    /// messages are sent from here.
    pub(crate) fn restore_region(&self, state: RegionState) -> Result<(), StoreError> {
        let memory: Vec<MemoryEntry> = self
            .engine
            .lock()
            .rules()
            .map(|rule| MemoryEntry {
                rule: rule.name().to_string(),
                region: state.region.clone(),
                body: state.memory.get(rule.name()).map(|m| m.to_string()),
            })
            .collect();
        self.store.restore_region(&state, &memory)?;
        self.engine.lock().restore_region(&state);
        if !state.outbox.is_empty() {
            self.wake_delivery.notify_one();
        }
        Ok(())
    }

    /// Drops `region` locally without resolving or announcing anything: another instance
    /// owns it now.
    pub(crate) fn forget_region(&self, region: &str) -> Result<(), StoreError> {
        self.engine.lock().forget_region(region);
        self.store.forget_region(region)
    }
}

/// Waits on the alerter's evaluations.
#[derive(Clone)]
pub struct Probe {
    evaluations: tokio::sync::watch::Receiver<u64>,
}

impl Probe {
    /// Returns once an evaluation that started after this call has finished: it saw the clock
    /// as it is now and every message published before the call.
    pub async fn settled(&mut self) {
        let start = *self.evaluations.borrow_and_update();
        let _ = self.evaluations.wait_for(|n| *n >= start + 2).await;
    }

    /// Evaluations finished so far.
    pub fn count(&self) -> u64 {
        *self.evaluations.borrow()
    }
}

pub struct Alerter {
    shared: Arc<Shared>,
    bus: SharedBus,
    subscription: RunSubscription,
}

/// Decisions committed or waiting to be (a failed commit is retried, never dropped).
#[derive(Default)]
struct Batch {
    alerts: BTreeMap<String, Alert>,
    events: Vec<(String, AlertEvent)>,
    messages: Vec<NewMessage>,
    /// Rule memory that changed, by (rule, region): the latest wins.
    memory: BTreeMap<(String, String), MemoryEntry>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.alerts.is_empty()
            && self.events.is_empty()
            && self.messages.is_empty()
            && self.memory.is_empty()
    }
}

impl Alerter {
    pub async fn new(config: Arc<Config>, bus: SharedBus) -> Result<Self, AlerterError> {
        Self::with_clock(config, bus, clock::system()).await
    }

    /// As [`Alerter::new`] on the given clock (tests use a `ManualClock`).
    pub async fn with_clock(
        config: Arc<Config>,
        bus: SharedBus,
        clock: SharedClock,
    ) -> Result<Self, AlerterError> {
        register_metrics();
        let dir = config.data_dir.join("alerter");
        let (store, loaded) = run_blocking(move || {
            let store = Store::open(&dir)?;
            let loaded = store.load()?;
            let api_rules = store.api_rules()?;
            Ok::<_, StoreError>((Arc::new(store), (loaded, api_rules)))
        })
        .await??;
        let (loaded, api_rules) = loaded;
        let collection_interval = schedule::collection_interval(&config.collector.schedule()).unwrap_or_else(|| {
            tracing::warn!("cannot read the collector schedule; late data is judged against a 15-minute interval");
            schedule::FALLBACK_INTERVAL
        });
        let context = RuleContext {
            regions: config.regions.iter().map(|r| r.name.clone()).collect(),
            collection_interval,
            since: clock.now(),
        };
        let lifecycle = Lifecycle {
            min_hold: config.alerter.min_hold,
            repeat_interval: config.alerter.repeat_interval,
        };
        // The API's rules after the file's; a name the file took since is the file's.
        let api_rules: Vec<RuleConfig> = api_rules
            .into_iter()
            .filter(|api| {
                let shadowed = config.alerter.rules.iter().any(|r| r.name() == api.name());
                if shadowed {
                    tracing::warn!(rule = api.name(), "a rule created through the API has the name of a rule of the configuration file: the file's is used");
                }
                !shadowed
            })
            .collect();
        let mut all_rules = config.alerter.rules.clone();
        all_rules.extend(api_rules.iter().cloned());
        let every_log = all_rules
            .iter()
            .any(|r| matches!(r, RuleConfig::Query { .. }));
        let mut engine = Engine::new(rules::build(&all_rules, &context), lifecycle);
        let open = loaded.open.len();
        engine.restore(loaded.open, loaded.silences, loaded.memory, loaded.legacy);
        if open > 0 {
            tracing::info!(open, "alert state restored");
        }
        let subscription = RunSubscription::new(
            bus.clone(),
            &[Topic::Observations, Topic::Forecasts, Topic::Logs],
            "alerter",
        )
        .await?;
        if config
            .alerter
            .slack
            .webhook_url
            .as_ref()
            .is_none_or(|w| w.is_empty())
        {
            tracing::warn!("no Slack webhook configured (WINDSOCK_SLACK_WEBHOOK_URL): alerts are tracked and shown, not sent");
        }
        Ok(Self {
            shared: Arc::new(Shared {
                public_url: config.http.public_url(),
                config,
                engine: Mutex::new(engine),
                store,
                clock,
                wake_delivery: Arc::new(Notify::new()),
                evaluations: tokio::sync::watch::Sender::new(0),
                api_rules: Mutex::new(api_rules),
                every_log: std::sync::atomic::AtomicBool::new(every_log),
            }),
            bus,
            subscription,
        })
    }

    pub fn routes(&self) -> axum::Router {
        crate::api::router(self.shared.clone())
    }

    /// The alert store (tests make it fail its writes, as a full disk would).
    pub fn store(&self) -> Arc<Store> {
        self.shared.store.clone()
    }

    /// A handle to wait on evaluations (tests and benchmarks).
    pub fn probe(&self) -> Probe {
        Probe {
            evaluations: self.shared.evaluations.subscribe(),
        }
    }

    /// What this instance knows of `region` (see [`RegionState`]).
    pub async fn region_state(&self, region: &str) -> Result<RegionState, StoreError> {
        let shared = self.shared.clone();
        let region = region.to_string();
        run_blocking(move || shared.region_state(&region)).await?
    }

    /// Regions whose state changed since the last call (see [`Shared::changed_regions`]).
    pub fn changed_regions(&self) -> Vec<String> {
        self.shared.changed_regions()
    }

    /// Takes over a region's state (see [`Shared::restore_region`]).
    pub async fn restore_region(&self, state: RegionState) -> Result<(), StoreError> {
        let shared = self.shared.clone();
        run_blocking(move || shared.restore_region(state)).await?
    }

    /// Drops a region another instance owns now (see [`Shared::forget_region`]).
    pub async fn forget_region(&self, region: &str) -> Result<(), StoreError> {
        let shared = self.shared.clone();
        let region = region.to_string();
        run_blocking(move || shared.forget_region(&region)).await?
    }

    /// Evaluates and notifies until `shutdown`.
    ///
    /// It can run again after a run failed (the supervisor restarts it; the routes stay): that
    /// run subscribes again, resuming from the last committed offsets.
    pub fn run(
        &self,
        shutdown: CancellationToken,
    ) -> impl std::future::Future<Output = Result<(), AlerterError>> + Send + 'static {
        let subscription = self.subscription.next_run();
        let shared = self.shared.clone();
        let bus = self.bus.clone();
        async move { run_with(shared, bus, subscription.await?, shutdown).await }
    }
}

/// One run of the alerter, on its subscription.
async fn run_with(
    shared: Arc<Shared>,
    bus: SharedBus,
    mut subscription: EventSubscription,
    shutdown: CancellationToken,
) -> Result<(), AlerterError> {
    let deliveries = CancellationToken::new();
    let worker = shared
        .config
        .alerter
        .slack
        .webhook_url
        .clone()
        .filter(|w| !w.is_empty())
        .map(|webhook| {
            let deliverer = Deliverer {
                store: shared.store.clone(),
                webhook,
                config: shared.config.alerter.slack.clone(),
                clock: shared.clock.clone(),
                wake: shared.wake_delivery.clone(),
                counters: COUNTERS,
            };
            tokio::spawn(deliverer.run(deliveries.clone()))
        });
    // On Kafka, only the regions of this member's partitions, their state moving with them.
    let collection_interval = schedule::collection_interval(&shared.config.collector.schedule())
        .unwrap_or(schedule::FALLBACK_INTERVAL);
    let mut ownership = Ownership::start(
        &shared,
        &bus,
        subscription.assignment(),
        collection_interval,
    )
    .await?;
    let mut ticker = tokio::time::interval(shared.config.alerter.evaluation_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unacked: Vec<Delivery> = Vec::new();
    let mut batch = Batch::default();
    let mut last_prune: Option<tokio::time::Instant> = None;
    let mut bus_open = true;
    // What was decided but not published before a restart goes out first.
    publish_pending(&shared, bus.as_ref()).await;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            next = subscription.next_delivery(), if bus_open => match next {
                Ok(Some(delivery)) => {
                    let mut undecodable = Vec::new();
                    // A rebalance happens while reading: the new partitions' state first.
                    take_in(&mut ownership, &delivery).await?;
                    ingest(&shared, delivery, &mut unacked, &mut undecodable);
                    // Take what else is already there, so a round is judged as a whole.
                    while unacked.len() < DRAIN_BATCH {
                        match subscription.next_delivery().now_or_never() {
                            Some(Ok(Some(delivery))) => {
                                take_in(&mut ownership, &delivery).await?;
                                ingest(&shared, delivery, &mut unacked, &mut undecodable)
                            }
                            Some(Ok(None)) => { bus_open = false; break }
                            Some(Err(err)) => { tracing::warn!(error = %err.chain(), "reading the bus failed"); COUNTERS.error("bus"); break }
                            None => break,
                        }
                    }
                    for (delivery, reason) in undecodable {
                        // Acked with the rest of the batch: a message nobody can read
                        // is reported, not retried forever.
                        if let Err(err) = subscription.dead_letter(&delivery, reason).await {
                            tracing::warn!(error = %err.chain(), "publishing a dead letter failed");
                            COUNTERS.error("publish");
                        }
                    }
                }
                Ok(None) => bus_open = false,
                Err(err) => {
                    tracing::warn!(error = %err.chain(), "reading the bus failed");
                    COUNTERS.error("bus");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
            _ = ticker.tick() => {}
            _ = ownership_changed(&ownership) => {}
            // The earliest late-data deadline (or outlier round) wakes the loop on time.
            _ = tokio::time::sleep(until_next_due(&shared)) => {}
        }
        follow_if_stale(&mut ownership).await?;
        step(
            &shared,
            bus.as_ref(),
            &mut subscription,
            &mut batch,
            &mut unacked,
            &mut ownership,
        )
        .await;
        if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(tokio::time::Instant::now());
            prune(&shared).await;
        }
        if let Some(lag) = subscription.lag() {
            COUNTERS.gauge("windsock_bus_lag", lag as f64);
        }
    }
    // Finish what was accepted: judge and commit what was read, then stop sending.
    step(
        &shared,
        bus.as_ref(),
        &mut subscription,
        &mut batch,
        &mut unacked,
        &mut ownership,
    )
    .await;
    let _ = subscription.commit().await;
    deliveries.cancel();
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    Ok(())
}

/// Brings the local state in line with the partitions this member owns, if they moved (see
/// `ownership.rs`); an error fails the run (the next one starts from the changelog again).
async fn follow_if_stale(ownership: &mut Option<Ownership>) -> Result<(), AlerterError> {
    if let Some(ownership) = ownership {
        if ownership.stale() {
            ownership.follow().await?;
        }
    }
    Ok(())
}

/// Before judging `delivery`: the state of the partitions this member owns now, and whether
/// the partition it comes from has caught up since it was taken over (see `ownership.rs`).
async fn take_in(
    ownership: &mut Option<Ownership>,
    delivery: &Delivery,
) -> Result<(), AlerterError> {
    follow_if_stale(ownership).await?;
    if let Some(ownership) = ownership {
        ownership.read(delivery);
    }
    Ok(())
}

/// Completes when this member's partitions move (never on the embedded bus).
async fn ownership_changed(ownership: &Option<Ownership>) {
    match ownership {
        Some(ownership) => ownership.changed().await,
        None => std::future::pending().await,
    }
}

/// How long until the engine's next deadline (a day when it has none; the ticker runs
/// beside it).
fn until_next_due(shared: &Shared) -> Duration {
    let next = shared.engine.lock().next_due();
    match next {
        Some(at) => (at - shared.clock.now()).to_std().unwrap_or(Duration::ZERO),
        None => Duration::from_secs(86_400),
    }
}

/// The event a message from the bus holds; `None` for a log that is no health report (most
/// of the logs topic, passed over undecoded); the reason it does not decode.
/// With `every_log` (a query rule counts logs), every log is decoded.
fn read(delivery: &Delivery, every_log: bool) -> Result<Option<Event>, String> {
    if delivery.topic == Topic::Logs && !every_log {
        // The logs topic carries every log record of the pipeline, and only health reports
        // matter here: a substring search is far cheaper than decoding each one.
        let Ok(text) = std::str::from_utf8(&delivery.payload) else {
            return Ok(None);
        };
        if !text.contains("\"condition\"") || !HEALTH_CONDITIONS.iter().any(|c| text.contains(c)) {
            return Ok(None);
        }
        return match Envelope::from_json_text(text) {
            Ok(envelope) => Ok(Some(envelope.event)),
            Err(err) => Err(err.to_string()),
        };
    }
    match Envelope::from_json(&delivery.payload) {
        Ok(envelope) => Ok(Some(envelope.event)),
        Err(err) => Err(err.to_string()),
    }
}

fn ingest(
    shared: &Shared,
    delivery: Delivery,
    unacked: &mut Vec<Delivery>,
    undecodable: &mut Vec<(Delivery, String)>,
) {
    let now = shared.clock.now();
    COUNTERS.received(1);
    let every_log = shared.every_log.load(std::sync::atomic::Ordering::Relaxed);
    match read(&delivery, every_log) {
        Ok(Some(Event::Observation(observation))) => {
            shared.engine.lock().observe(now, &observation)
        }
        Ok(Some(Event::Forecast(forecast))) => shared.engine.lock().forecast(&forecast),
        Ok(Some(Event::Log(log))) => shared.engine.lock().log(now, &log),
        Ok(_) => {}
        Err(reason) => undecodable.push((delivery.clone(), reason)),
    }
    unacked.push(delivery);
}

/// One evaluation: decide, commit, ack, publish, wake the delivery worker.
async fn step(
    shared: &Shared,
    bus: &dyn windsock_core::Bus,
    subscription: &mut EventSubscription,
    batch: &mut Batch,
    unacked: &mut Vec<Delivery>,
    ownership: &mut Option<Ownership>,
) {
    let now = shared.clock.now();
    let webhook = shared
        .config
        .alerter
        .slack
        .webhook_url
        .as_ref()
        .is_some_and(|w| !w.is_empty());
    {
        let mut engine = shared.engine.lock();
        let changes = engine.evaluate(now);
        for entry in engine.take_memory() {
            batch
                .memory
                .insert((entry.rule.clone(), entry.region.clone()), entry);
        }
        for change in changes {
            add_change(batch, change, now, &shared.public_url, webhook);
        }
    }
    set_firing(shared);
    let mut wake = false;
    if !batch.is_empty() {
        // The batch goes to the blocking pool and comes back: on a failure it is kept.
        let taken = std::mem::take(batch);
        let committed = shared
            .store
            .blocking(move |store| {
                let durable = store.is_durable();
                let alerts: Vec<Alert> = taken.alerts.values().cloned().collect();
                let memory: Vec<MemoryEntry> = taken.memory.values().cloned().collect();
                let result = store.commit(&alerts, &taken.events, &taken.messages, &memory, now);
                (result, durable, taken)
            })
            .await;
        let (result, durable, taken) = match committed {
            Ok(committed) => committed,
            Err(err) => {
                // Only when the runtime is going away: what was decided is decided again
                // after the restart (nothing was acked).
                tracing::warn!(error = %err, "committing alert decisions was cancelled");
                shared.evaluations.send_modify(|n| *n += 1);
                return;
            }
        };
        *batch = taken;
        match result {
            Ok(()) => {
                // Woken once the changelog has the decisions too (below).
                wake = !batch.messages.is_empty();
                *batch = Batch::default();
            }
            Err(err) => {
                // Kept in `batch` and committed with the next evaluation: nothing decided is
                // lost. Its Slack messages cannot wait for that (the disk may stay full for
                // hours): the store holds them in memory and they are sent from there.
                // Once an episode: the store said so already if it is one (a full disk).
                if durable {
                    tracing::error!(error = %err, "committing alert decisions failed; will retry");
                }
                COUNTERS.error("store");
                if !batch.messages.is_empty() {
                    // No SQLite, but the lock it takes is held through a flush's write.
                    let messages = std::mem::take(&mut batch.messages);
                    let held = shared
                        .store
                        .blocking(move |store| store.hold(messages, &err, now))
                        .await;
                    if let Err(err) = held {
                        tracing::warn!(error = %err, "holding Slack messages in memory was cancelled");
                    }
                    shared.wake_delivery.notify_one();
                }
                shared.evaluations.send_modify(|n| *n += 1);
                return;
            }
        }
    }
    // On Kafka, the changed regions' state goes to the changelog before the acks: whoever
    // owns a partition next finds the state of everything the group committed. And before
    // the Slack messages go: an instance killed after a message went out but before the
    // changelog said so would leave the next owner to decide and send it again.
    let recorded = match ownership {
        Some(ownership) => ownership.record().await,
        None => true,
    };
    if wake {
        // Even if the changelog could not be written: a decided message is not held back.
        shared.wake_delivery.notify_one();
    }
    if !recorded {
        shared.evaluations.send_modify(|n| *n += 1);
        return;
    }
    // Also retries what an earlier bus failure left unpublished.
    publish_pending(shared, bus).await;
    for delivery in unacked.drain(..) {
        if let Err(err) = subscription.ack(&delivery) {
            tracing::warn!(error = %err.chain(), "ack failed");
        }
    }
    shared.evaluations.send_modify(|n| *n += 1);
}

fn add_change(
    batch: &mut Batch,
    change: Change,
    now: DateTime<Utc>,
    public_url: &str,
    webhook: bool,
) {
    if let Some(event) = change.event {
        tracing::info!(
            rule = %change.alert.rule,
            region = change.alert.region.as_deref().unwrap_or(""),
            subject = change.alert.subject.as_deref().unwrap_or(""),
            state = change.alert.state.as_str(),
            "alert state changed"
        );
        batch.events.push((change.alert.id.clone(), event));
    }
    if let Some(notice) = change.notice {
        let payload = message::render(&change.alert, notice, now, public_url).to_string();
        batch.messages.push(NewMessage {
            alert: change.alert.clone(),
            notice,
            payload,
            status: if webhook {
                DeliveryStatus::Pending
            } else {
                DeliveryStatus::NotConfigured
            },
        });
    }
    batch.alerts.insert(change.alert.id.clone(), change.alert);
}

/// Publishes committed state changes not yet on the bus (their ids are deterministic, so one
/// published twice after a crash is recognised downstream).
async fn publish_pending(shared: &Shared, bus: &dyn windsock_core::Bus) {
    loop {
        let pending = shared
            .store
            .blocking(|store| store.unpublished(256))
            .await
            .and_then(|pending| pending);
        let pending = match pending {
            Ok(pending) => pending,
            Err(err) => {
                tracing::error!(error = %err, "reading unpublished alert events failed");
                return;
            }
        };
        if pending.is_empty() {
            return;
        }
        for (seq, event) in pending {
            if let Err(err) = publish_event(bus, Event::Alert(event)).await {
                tracing::warn!(error = %err.chain(), "publishing an alert event failed; will retry");
                COUNTERS.error("publish");
                return;
            }
            COUNTERS.sent(1);
            let marked = shared
                .store
                .blocking(move |store| store.mark_published(seq))
                .await
                .and_then(|marked| marked);
            if let Err(err) = marked {
                tracing::error!(error = %err, "marking an alert event published failed");
                return;
            }
        }
    }
}

async fn prune(shared: &Shared) {
    let retention = chrono::Duration::from_std(shared.config.alerter.history_retention)
        .unwrap_or(chrono::Duration::days(35));
    let before = shared.clock.now() - retention;
    let forgotten = shared.engine.lock().forget_silences(before);
    let pruned = shared
        .store
        .blocking(move |store| {
            for id in forgotten {
                if let Err(err) = store.delete_silence(&id) {
                    tracing::warn!(error = %err, "forgetting an old silence failed");
                }
            }
            store.prune(before)
        })
        .await
        .and_then(|pruned| pruned);
    match pruned {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "pruned alert history past its retention"),
        Err(err) => tracing::warn!(error = %err, "pruning alert history failed"),
    }
}

/// Every severity a rule can have, as the `severity` label of `windsock_alerts_firing`.
const SEVERITIES: [Severity; 3] = [Severity::Critical, Severity::Warning, Severity::Info];

/// The alerter's own metric families, described (HELP) and present from the start: a
/// dashboard or an alert rule then has a series to read before the first alert or message.
pub(crate) fn register_metrics() {
    metrics::describe_gauge!(
        FIRING,
        metrics::Unit::Count,
        "Alerts firing now, by severity (updated after each evaluation)"
    );
    metrics::describe_histogram!(
        DELIVERY_SECONDS,
        metrics::Unit::Seconds,
        "Latency of each POST to the Slack webhook, by outcome: delivered, retry (429, 5xx, \
         timeout, connection failure) or failed (refused for good)"
    );
    metrics::describe_gauge!(
        OUTBOX_DURABLE,
        "1 while everything the Slack outbox holds is written; 0 while messages or their \
         outcomes wait in memory because the alert store cannot write (a full disk)"
    );
    // A new store writes (it was just opened); the store sets 0 when a write fails.
    metrics::gauge!(OUTBOX_DURABLE, "service" => "alerter").set(1.0);
    for severity in SEVERITIES {
        metrics::gauge!(FIRING, "severity" => severity.as_str()).set(0.0);
    }
    for outcome in Outcome::LABELS {
        // A handle is enough for the exporter to show the histogram, empty.
        let _ = metrics::histogram!(DELIVERY_SECONDS, "outcome" => outcome);
    }
}

/// Set by the store as writes fail and succeed again.
const OUTBOX_DURABLE: &str = "windsock_outbox_durable";

/// `windsock_alerts_firing`: the alerts firing now, by severity.
const FIRING: &str = "windsock_alerts_firing";

fn set_firing(shared: &Shared) {
    let mut firing = [0usize; SEVERITIES.len()];
    for alert in shared.engine.lock().open_alerts() {
        if alert.state == AlertState::Firing {
            if let Some(i) = SEVERITIES.iter().position(|s| *s == alert.severity) {
                firing[i] += 1;
            }
        }
    }
    for (severity, count) in SEVERITIES.iter().zip(firing) {
        metrics::gauge!(FIRING, "severity" => severity.as_str()).set(count as f64);
    }
}
