//! The alerter's durable state in `<data_dir>/alerter/alerter.db` (SQLite, WAL,
//! `synchronous = FULL`): alert occurrences, their history, silences, rule memory (one row
//! per rule and region, written only when it changed), and the outbox.
//!
//! A commit is synced to disk when it returns (one fsync a batch, not a row): the batch's bus
//! offsets are acked after it, so neither a crash of the process nor a power loss can lose
//! what the bus no longer holds for us.
//!
//! One evaluation's decisions (state changes, history, the Slack messages they call for and
//! the rules' memory) are committed in one transaction before anything leaves the process;
//! the delivery worker then works through the outbox in order and marks each message. A
//! crash between decision and send leaves the message pending: it is sent after the restart,
//! once. (The only window left is between Slack's `200 ok` and our commit of it, a few
//! microseconds; a message caught there is sent twice rather than lost.)
//!
//! When SQLite cannot write (a full disk: `SQLITE_FULL`, an I/O error), alerting goes on from
//! memory ([`Fallback`]): the messages of a commit that failed are held and sent from there,
//! and the outcomes of messages already in the outbox are kept beside them, until a write
//! succeeds again and all of it goes into the outbox in one transaction (a message sent from
//! memory is written as delivered, so it is not sent twice). `/api/deliveries` marks what is
//! only in memory (`durable: false`); a crash meanwhile loses it.

use crate::engine::{region_key, Alert, MemoryEntry, NoticeKind, RegionState};
use crate::silence::Silence;
use chrono::{DateTime, TimeZone, Utc};
use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use windsock_core::event::{AlertEvent, AlertState};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("alert store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("alert store: {0}")]
    Io(#[from] std::io::Error),
    #[error("alert store holds a record that does not decode: {0}")]
    Decode(#[from] serde_json::Error),
    /// The runtime shut down before a store task could run.
    #[error("alert store: the task was cancelled (shutting down)")]
    Cancelled,
}

impl StoreError {
    /// Whether the disk is full (`SQLITE_FULL`, or the OS saying so).
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Sqlite(err) => {
                err.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
            }
            StoreError::Io(err) => err.kind() == std::io::ErrorKind::StorageFull,
            _ => false,
        }
    }

    /// Whether the store cannot write for now, though it reads (a full disk, a read-only
    /// database, an I/O error): a condition of the machine, not a bug.
    pub fn is_unwritable(&self) -> bool {
        self.is_disk_full()
            || matches!(
                self,
                StoreError::Sqlite(err) if matches!(
                    err.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::SystemIoFailure)
                )
            )
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// Runs `work` on tokio's blocking pool (see [`Store::blocking`]); a panic in it is resumed
/// here, as if it had run inline.
pub async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => Ok(value),
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(_) => Err(StoreError::Cancelled),
    }
}

pub struct Store {
    db: Mutex<Connection>,
    /// What could not be written (always locked after `db` when both are).
    fallback: Mutex<Fallback>,
    /// The rule memory of the older format (`memory`, one document per rule) is still there:
    /// the first commit writes it per region and deletes it.
    legacy_memory: std::sync::atomic::AtomicBool,
    /// Regions whose outbox changed (a message delivered or given up) since the last
    /// [`Store::changed_regions`].
    changed: Mutex<BTreeSet<String>>,
}

/// The outbox's part that is only in memory, while SQLite cannot write.
#[derive(Default)]
struct Fallback {
    /// Messages decided while writes failed, oldest first; their seqs are negative (-1, -2,
    /// ...) so they are never taken for a row of the outbox.
    messages: Vec<Delivery>,
    /// What happened to messages of the outbox since their rows could not be updated.
    outcomes: BTreeMap<i64, Outcome>,
    last_seq: i64,
    /// A message's seq in memory -> its row, once written (the delivery worker may still be
    /// sending it under the old one).
    moved: HashMap<i64, i64>,
    /// Set while writes fail: the episode is logged once.
    failing: bool,
}

impl Fallback {
    fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.outcomes.is_empty()
    }
}

/// Attempts and outcome of an outbox row, not written yet.
#[derive(Clone, Debug)]
struct Outcome {
    status: DeliveryStatus,
    attempts: u32,
    last_error: Option<String>,
    updated_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
}

impl Outcome {
    fn apply(&self, delivery: &mut Delivery) {
        delivery.status = self.status;
        delivery.attempts += self.attempts;
        if self.last_error.is_some() {
            delivery.last_error.clone_from(&self.last_error);
        }
        delivery.updated_at = self.updated_at;
        delivery.delivered_at = self.delivered_at.or(delivery.delivered_at);
        delivery.durable = false;
    }
}

/// What a restart needs back.
pub struct Loaded {
    /// Alerts not resolved.
    pub open: Vec<Alert>,
    pub silences: Vec<Silence>,
    /// Each rule's memory, by (rule name, region).
    pub memory: BTreeMap<(String, String), serde_json::Value>,
    /// Rule memory in the older format (one document per rule), by rule name.
    pub legacy: BTreeMap<String, serde_json::Value>,
}

/// A Slack message decided and not yet delivered, as it moves with its region
/// ([`RegionState::outbox`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub alert_id: String,
    pub rule: String,
    pub region: Option<String>,
    pub notice: String,
    pub created_at: DateTime<Utc>,
    pub payload: String,
    pub attempts: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Slack refused it for good (400, 403, 404, 410).
    Failed,
    /// Retryable failures for longer than `give_up_after`.
    Expired,
    /// No webhook configured: kept, not sent.
    NotConfigured,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
        DeliveryStatus::Expired,
        DeliveryStatus::NotConfigured,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Expired => "expired",
            DeliveryStatus::NotConfigured => "not_configured",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// One Slack message in the outbox.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub seq: i64,
    pub alert_id: String,
    pub rule: String,
    pub region: Option<String>,
    pub notice: String,
    pub created_at: DateTime<Utc>,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub payload: String,
    /// False while it (or its last outcome) is only in memory: SQLite could not write it.
    pub durable: bool,
}

/// A message decided, to be put in the outbox.
pub struct NewMessage {
    pub alert: Alert,
    pub notice: NoticeKind,
    pub payload: String,
    pub status: DeliveryStatus,
}

/// One history entry of an alert.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub seq: i64,
    pub alert_id: String,
    pub event: AlertEvent,
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    region TEXT,
    started_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, started_at);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    at INTEGER NOT NULL,
    event TEXT NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS history_alert ON history(alert_id);
CREATE INDEX IF NOT EXISTS history_fingerprint ON history(fingerprint);
CREATE INDEX IF NOT EXISTS history_unpublished ON history(published, seq);
CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS memory (rule TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rule_memory (
    rule TEXT NOT NULL,
    region TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (rule, region)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    region TEXT,
    notice TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_status ON outbox(status, seq);
CREATE INDEX IF NOT EXISTS outbox_alert ON outbox(alert_id);
CREATE INDEX IF NOT EXISTS outbox_region ON outbox(region, status);
CREATE INDEX IF NOT EXISTS alerts_region ON alerts(region, state);
";

impl Store {
    /// Opens (creating) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let db = Connection::open(dir.join("alerter.db"))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: the log is synced at each commit. Offsets are acked after a commit, so a
        // commit only in the OS's cache (NORMAL) could be lost by a power cut with its
        // messages already gone from the bus. One fsync per batch keeps that cheap.
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(SCHEMA)?;
        db.execute_batch(crate::acknowledge::SCHEMA)?;
        db.execute_batch(crate::rule_store::SCHEMA)?;
        let legacy: i64 = db.query_row("SELECT COUNT(*) FROM memory", [], |row| row.get(0))?;
        Ok(Self {
            db: Mutex::new(db),
            fallback: Mutex::new(Fallback::default()),
            legacy_memory: std::sync::atomic::AtomicBool::new(legacy > 0),
            changed: Mutex::new(BTreeSet::new()),
        })
    }

    /// Runs `work` on tokio's blocking pool. Every store call from async code goes through
    /// here: a commit is a synchronous fsync (`synchronous = FULL`) and the connection's lock
    /// may be held by another writer, either of which would stall a runtime thread and every
    /// task on it. A panic in `work` is resumed here, as if it had run inline.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> Result<T> {
        let store = Arc::clone(self);
        run_blocking(move || work(&store)).await
    }

    /// The connection, for the store's parts kept in their own files (acknowledgements).
    pub(crate) fn connection(&self) -> parking_lot::MutexGuard<'_, Connection> {
        self.db.lock()
    }

    /// Caps the database at `pages` pages: past it every write fails with `SQLITE_FULL`, as
    /// on a full disk (tests and drills).
    pub fn limit_pages(&self, pages: i64) -> Result<()> {
        self.db
            .lock()
            .pragma_update(None, "max_page_count", pages)?;
        Ok(())
    }

    /// Refuses every write while `on` (`SQLITE_READONLY`, as a database reopened read-only
    /// would), and accepts them again (tests and drills).
    pub fn refuse_writes(&self, on: bool) -> Result<()> {
        self.db.lock().pragma_update(None, "query_only", on)?;
        Ok(())
    }

    /// Whether everything the outbox holds is written (false while SQLite cannot write and
    /// messages or outcomes wait in memory).
    pub fn is_durable(&self) -> bool {
        let fallback = self.fallback.lock();
        fallback.is_empty() && !fallback.failing
    }

    /// Keeps in memory the messages of a commit that failed, so they are sent anyway; they
    /// are written with the next write that succeeds.
    pub fn hold(&self, messages: Vec<NewMessage>, error: &StoreError, now: DateTime<Utc>) {
        let mut fallback = self.fallback.lock();
        Self::writes_failed(&mut fallback, error);
        for message in messages {
            fallback.last_seq -= 1;
            let seq = fallback.last_seq;
            fallback.messages.push(Delivery {
                seq,
                alert_id: message.alert.id.clone(),
                rule: message.alert.rule.clone(),
                region: message.alert.region.clone(),
                notice: message.notice.as_str().to_string(),
                created_at: now,
                status: message.status,
                attempts: 0,
                last_error: (message.status == DeliveryStatus::NotConfigured)
                    .then(|| NOT_CONFIGURED.to_string()),
                updated_at: now,
                delivered_at: None,
                payload: message.payload,
                durable: false,
            });
        }
    }

    /// Writes what waits in memory, if anything does; returns whether all is written.
    pub fn flush(&self) -> Result<bool> {
        let mut db = self.db.lock();
        let mut fallback = self.fallback.lock();
        if fallback.is_empty() {
            // Nothing to write says nothing of whether writes work again.
            return Ok(!fallback.failing);
        }
        let written = db.transaction().map_err(StoreError::from).and_then(|tx| {
            let moved = Self::write_fallback(&tx, &fallback)?;
            tx.commit()?;
            Ok(moved)
        });
        match written {
            Ok(moved) => {
                Self::written(&mut fallback, moved);
                Ok(true)
            }
            Err(err) => {
                Self::writes_failed(&mut fallback, &err);
                Err(err)
            }
        }
    }

    /// A write failed: the first failure of an episode is logged.
    fn writes_failed(fallback: &mut Fallback, error: &StoreError) {
        if !fallback.failing {
            fallback.failing = true;
            metrics::gauge!("windsock_outbox_durable", "service" => "alerter").set(0.0);
            tracing::warn!(
                %error,
                "the alert store cannot write (disk full?): alerts are still evaluated and Slack \
                 messages sent, from memory, until it can (a restart meanwhile loses them)"
            );
        }
    }

    /// What waited in memory is written: forget it.
    fn written(fallback: &mut Fallback, moved: Vec<(i64, i64)>) {
        let messages = fallback.messages.len();
        let outcomes = fallback.outcomes.len();
        fallback.messages.clear();
        fallback.outcomes.clear();
        fallback.moved.extend(moved);
        if fallback.failing {
            fallback.failing = false;
            metrics::gauge!("windsock_outbox_durable", "service" => "alerter").set(1.0);
            tracing::info!(
                messages,
                outcomes,
                "the alert store writes again: the Slack messages kept in memory are in the outbox"
            );
        }
    }

    /// Inserts the messages held in memory (as they stand: a sent one as delivered) and
    /// applies the outcomes kept; returns each message's seq in memory and in the outbox.
    fn write_fallback(
        tx: &rusqlite::Transaction<'_>,
        fallback: &Fallback,
    ) -> Result<Vec<(i64, i64)>> {
        let mut moved = Vec::with_capacity(fallback.messages.len());
        for message in &fallback.messages {
            tx.execute(
                "INSERT INTO outbox (alert_id, rule, region, notice, created_at, payload, status,
                 attempts, last_error, updated_at, delivered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    message.alert_id,
                    message.rule,
                    message.region,
                    message.notice,
                    millis(message.created_at),
                    message.payload,
                    message.status.as_str(),
                    message.attempts,
                    message.last_error,
                    millis(message.updated_at),
                    message.delivered_at.map(millis),
                ],
            )?;
            moved.push((message.seq, tx.last_insert_rowid()));
        }
        for (seq, outcome) in &fallback.outcomes {
            tx.execute(
                "UPDATE outbox SET status = ?2, attempts = attempts + ?3,
                 last_error = COALESCE(?4, last_error), updated_at = ?5,
                 delivered_at = COALESCE(?6, delivered_at) WHERE seq = ?1",
                params![
                    seq,
                    outcome.status.as_str(),
                    outcome.attempts,
                    outcome.last_error,
                    millis(outcome.updated_at),
                    outcome.delivered_at.map(millis),
                ],
            )?;
        }
        Ok(moved)
    }

    /// Records an attempt or outcome of message `seq` in memory instead of the outbox: the
    /// message is in memory, or writes fail (or did, and what waits must be written first).
    /// Returns `false` when it is for the outbox to record.
    fn record_in_memory(
        &self,
        seq: i64,
        status: Option<DeliveryStatus>,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> (bool, i64) {
        let mut fallback = self.fallback.lock();
        let seq = fallback.moved.get(&seq).copied().unwrap_or(seq);
        let delivered_at = (status == Some(DeliveryStatus::Delivered)).then_some(now);
        if let Some(message) = fallback.messages.iter_mut().find(|m| m.seq == seq) {
            message.attempts += 1;
            if let Some(status) = status {
                message.status = status;
            }
            if let Some(error) = error {
                message.last_error = Some(error.to_string());
            }
            message.updated_at = now;
            message.delivered_at = delivered_at.or(message.delivered_at);
            return (true, seq);
        }
        if fallback.is_empty() && !fallback.failing {
            return (false, seq);
        }
        let outcome = fallback.outcomes.entry(seq).or_insert(Outcome {
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_error: None,
            updated_at: now,
            delivered_at: None,
        });
        outcome.attempts += 1;
        if let Some(status) = status {
            outcome.status = status;
        }
        if let Some(error) = error {
            outcome.last_error = Some(error.to_string());
        }
        outcome.updated_at = now;
        outcome.delivered_at = delivered_at.or(outcome.delivered_at);
        (true, seq)
    }

    /// Keeps an outbox update that failed in memory (it is written with the next write).
    fn update_failed(
        &self,
        seq: i64,
        status: Option<DeliveryStatus>,
        error: Option<&str>,
        now: DateTime<Utc>,
        err: &StoreError,
    ) {
        Self::writes_failed(&mut self.fallback.lock(), err);
        self.record_in_memory(seq, status, error, now);
    }

    pub fn load(&self) -> Result<Loaded> {
        let db = self.db.lock();
        let mut open = db
            .prepare("SELECT body FROM alerts WHERE state != 'resolved'")?
            .query_map([], |row| row.get::<_, String>(0))?
            .map(|body| Ok(serde_json::from_str(&body?)?))
            .collect::<Result<Vec<Alert>>>()?;
        crate::acknowledge::overlay(&db, &mut open)?;
        let silences = db
            .prepare("SELECT body FROM silences")?
            .query_map([], |row| row.get::<_, String>(0))?
            .map(|body| Ok(serde_json::from_str(&body?)?))
            .collect::<Result<Vec<Silence>>>()?;
        let mut legacy = BTreeMap::new();
        for pair in db
            .prepare("SELECT rule, body FROM memory")?
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?
        {
            let (rule, body) = pair?;
            match serde_json::from_str(&body) {
                Ok(body) => {
                    legacy.insert(rule, body);
                }
                Err(err) => tracing::warn!(
                    rule,
                    error = %err,
                    "rule memory in the old format does not decode; dropped (the rule starts afresh)"
                ),
            }
        }
        let mut memory = BTreeMap::new();
        for row in db
            .prepare("SELECT rule, region, body FROM rule_memory")?
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })?
        {
            let (rule, region, body) = row?;
            match serde_json::from_str(&body) {
                Ok(body) => {
                    memory.insert((rule, region), body);
                }
                Err(err) => tracing::warn!(
                    rule,
                    region,
                    error = %err,
                    "a rule's memory of a region does not decode; dropped"
                ),
            }
        }
        Ok(Loaded {
            open,
            silences,
            memory,
            legacy,
        })
    }

    /// Commits one evaluation's decisions in one transaction.
    pub fn commit(
        &self,
        alerts: &[Alert],
        events: &[(String, AlertEvent)],
        messages: &[NewMessage],
        memory: &[MemoryEntry],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut db = self.db.lock();
        let mut fallback = self.fallback.lock();
        let legacy = self
            .legacy_memory
            .load(std::sync::atomic::Ordering::Relaxed);
        let written = Self::commit_in(
            &mut db, &fallback, alerts, events, messages, memory, legacy, now,
        );
        match written {
            Ok(moved) => {
                Self::written(&mut fallback, moved);
                if legacy {
                    self.legacy_memory
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(())
            }
            Err(err) => {
                Self::writes_failed(&mut fallback, &err);
                Err(err)
            }
        }
    }

    /// One transaction: what waits in memory first (it is older), then the decisions.
    #[allow(clippy::too_many_arguments)]
    fn commit_in(
        db: &mut Connection,
        fallback: &Fallback,
        alerts: &[Alert],
        events: &[(String, AlertEvent)],
        messages: &[NewMessage],
        memory: &[MemoryEntry],
        drop_legacy: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<(i64, i64)>> {
        let tx = db.transaction()?;
        let moved = Self::write_fallback(&tx, fallback)?;
        for alert in alerts {
            tx.prepare_cached(
                "INSERT INTO alerts (id, fingerprint, state, region, started_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(id) DO UPDATE SET state = excluded.state, body = excluded.body",
            )?
            .execute(params![
                    alert.id,
                    alert.fingerprint,
                    alert.state.as_str(),
                    alert.region,
                    millis(alert.started_at),
                    serde_json::to_string(alert)?
                ],
            )?;
        }
        for (alert_id, event) in events {
            tx.execute(
                "INSERT INTO history (alert_id, fingerprint, at, event) VALUES (?1, ?2, ?3, ?4)",
                params![
                    alert_id,
                    event.fingerprint,
                    millis(event.at),
                    serde_json::to_string(event)?
                ],
            )?;
        }
        for message in messages {
            let delivered = message.status != DeliveryStatus::Pending;
            tx.execute(
                "INSERT INTO outbox (alert_id, rule, region, notice, created_at, payload, status, updated_at, last_error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?5, ?8)",
                params![
                    message.alert.id,
                    message.alert.rule,
                    message.alert.region,
                    message.notice.as_str(),
                    millis(now),
                    message.payload,
                    message.status.as_str(),
                    delivered.then_some(NOT_CONFIGURED),
                ],
            )?;
        }
        Self::write_memory(&tx, memory)?;
        if drop_legacy {
            // Its content was read at start-up and is in `memory`, per region.
            tx.execute("DELETE FROM memory", [])?;
        }
        tx.commit()?;
        Ok(moved)
    }

    /// Writes the memory entries that changed: a row per (rule, region), deleted when the
    /// rule remembers nothing of the region any more.
    fn write_memory(tx: &rusqlite::Transaction<'_>, memory: &[MemoryEntry]) -> Result<()> {
        for entry in memory {
            match &entry.body {
                Some(body) => tx
                    .prepare_cached(
                        "INSERT INTO rule_memory (rule, region, body) VALUES (?1, ?2, ?3)
                         ON CONFLICT(rule, region) DO UPDATE SET body = excluded.body",
                    )?
                    .execute(params![entry.rule, entry.region, body])?,
                None => tx
                    .prepare_cached("DELETE FROM rule_memory WHERE rule = ?1 AND region = ?2")?
                    .execute(params![entry.rule, entry.region])?,
            };
        }
        Ok(())
    }

    /// The messages of `region` (`""`: of no region) not delivered yet, oldest first: what
    /// moves with the region ([`RegionState::outbox`]).
    pub fn region_outbox(&self, region: &str) -> Result<Vec<OutboxMessage>> {
        let db = self.db.lock();
        let mut statement = db.prepare_cached(&format!(
            "{SELECT_DELIVERY} WHERE status = 'pending' AND region IS ?1 ORDER BY seq"
        ))?;
        let key = (!region.is_empty()).then_some(region);
        let rows = statement
            .query_map(params![key], delivery_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let fallback = self.fallback.lock();
        let done = |d: &Delivery| {
            fallback
                .outcomes
                .get(&d.seq)
                .is_some_and(|o| o.status != DeliveryStatus::Pending)
        };
        let held = fallback
            .messages
            .iter()
            .filter(|m| m.status == DeliveryStatus::Pending);
        Ok(rows
            .iter()
            .filter(|d| !done(d))
            .chain(held.filter(|m| region_key(m.region.as_deref()) == region))
            .map(|d| OutboxMessage {
                alert_id: d.alert_id.clone(),
                rule: d.rule.clone(),
                region: d.region.clone(),
                notice: d.notice.clone(),
                created_at: d.created_at,
                payload: d.payload.clone(),
                attempts: d.attempts,
            })
            .collect())
    }

    /// Puts a region's state (from another instance) in the store, in one transaction: its
    /// memory rows and alerts replace what was here, and its undelivered messages replace
    /// those of the region in the outbox (this instance sends them now).
    pub fn restore_region(&self, state: &RegionState, memory: &[MemoryEntry]) -> Result<()> {
        let mut db = self.db.lock();
        let tx = db.transaction()?;
        Self::delete_region(&tx, &state.region)?;
        Self::write_memory(&tx, memory)?;
        for alert in &state.alerts {
            tx.prepare_cached(
                "INSERT INTO alerts (id, fingerprint, state, region, started_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(id) DO UPDATE SET state = excluded.state, body = excluded.body",
            )?
            .execute(params![
                alert.id,
                alert.fingerprint,
                alert.state.as_str(),
                alert.region,
                millis(alert.started_at),
                serde_json::to_string(alert)?
            ])?;
        }
        for message in &state.outbox {
            tx.execute(
                "INSERT INTO outbox (alert_id, rule, region, notice, created_at, payload, status, attempts, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?5)",
                params![
                    message.alert_id,
                    message.rule,
                    message.region,
                    message.notice,
                    millis(message.created_at),
                    message.payload,
                    message.attempts,
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Drops a region's state from the store, sending and resolving nothing: another
    /// instance owns it now. Its history and delivered messages stay (what happened here).
    pub fn forget_region(&self, region: &str) -> Result<()> {
        let mut db = self.db.lock();
        let tx = db.transaction()?;
        Self::delete_region(&tx, region)?;
        tx.commit()?;
        self.changed.lock().remove(region);
        Ok(())
    }

    /// Deletes a region's memory rows, open alerts and undelivered messages.
    fn delete_region(tx: &rusqlite::Transaction<'_>, region: &str) -> Result<()> {
        let key = (!region.is_empty()).then_some(region);
        tx.execute("DELETE FROM rule_memory WHERE region = ?1", [region])?;
        tx.execute(
            "DELETE FROM alerts WHERE region IS ?1 AND state != 'resolved'",
            params![key],
        )?;
        tx.execute(
            "DELETE FROM outbox WHERE region IS ?1 AND status = 'pending'",
            params![key],
        )?;
        Ok(())
    }

    /// Regions whose outbox changed (a message delivered, failed or expired) since the last
    /// call.
    pub fn changed_regions(&self) -> Vec<String> {
        std::mem::take(&mut *self.changed.lock())
            .into_iter()
            .collect()
    }

    /// Notes that the outbox of message `seq`'s region changed.
    fn outbox_changed(&self, seq: i64) {
        let region: Option<Option<String>> = self
            .db
            .lock()
            .query_row("SELECT region FROM outbox WHERE seq = ?1", [seq], |row| {
                row.get(0)
            })
            .optional()
            .ok()
            .flatten();
        let region = match region {
            Some(region) => region,
            None => self
                .fallback
                .lock()
                .messages
                .iter()
                .find(|m| m.seq == seq)
                .map(|m| m.region.clone())
                .unwrap_or_default(),
        };
        self.changed
            .lock()
            .insert(region_key(region.as_deref()).to_string());
    }

    pub fn put_silence(&self, silence: &Silence) -> Result<()> {
        self.db.lock().execute(
            "INSERT INTO silences (id, body) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET body = excluded.body",
            params![silence.id, serde_json::to_string(silence)?],
        )?;
        Ok(())
    }

    pub fn delete_silence(&self, id: &str) -> Result<()> {
        self.db
            .lock()
            .execute("DELETE FROM silences WHERE id = ?1", [id])?;
        Ok(())
    }

    /// State changes not yet published on the bus, oldest first.
    pub fn unpublished(&self, limit: usize) -> Result<Vec<(i64, AlertEvent)>> {
        let db = self.db.lock();
        let mut statement =
            db.prepare("SELECT seq, event FROM history WHERE published = 0 ORDER BY seq LIMIT ?1")?;
        let rows = statement
            .query_map([limit as i64], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })?
            .map(|row| {
                let (seq, event) = row?;
                Ok((seq, serde_json::from_str(&event)?))
            })
            .collect();
        rows
    }

    pub fn mark_published(&self, seq: i64) -> Result<()> {
        self.db
            .lock()
            .execute("UPDATE history SET published = 1 WHERE seq = ?1", [seq])?;
        Ok(())
    }

    /// The oldest message still to send: the outbox's first (less those that memory knows
    /// are done), then those held in memory.
    pub fn next_pending(&self) -> Result<Option<Delivery>> {
        let db = self.db.lock();
        let fallback = self.fallback.lock();
        let done = fallback
            .outcomes
            .values()
            .filter(|o| o.status != DeliveryStatus::Pending)
            .count();
        let mut statement = db.prepare(&format!(
            "{SELECT_DELIVERY} WHERE status = 'pending' ORDER BY seq LIMIT ?1"
        ))?;
        let mut rows = statement.query_map([done as i64 + 1], delivery_row)?;
        while let Some(mut delivery) = rows.next().transpose()? {
            match fallback.outcomes.get(&delivery.seq) {
                Some(outcome) if outcome.status != DeliveryStatus::Pending => continue,
                Some(outcome) => outcome.apply(&mut delivery),
                None => {}
            }
            return Ok(Some(delivery));
        }
        Ok(fallback
            .messages
            .iter()
            .find(|m| m.status == DeliveryStatus::Pending)
            .cloned())
    }

    /// A failed attempt that will be retried.
    pub fn record_attempt(&self, seq: i64, error: &str, now: DateTime<Utc>) -> Result<()> {
        let (in_memory, seq) = self.record_in_memory(seq, None, Some(error), now);
        if in_memory {
            return Ok(());
        }
        let updated = self.db.lock().execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, updated_at = ?3 WHERE seq = ?1",
            params![seq, error, millis(now)],
        );
        if let Err(err) = updated {
            self.update_failed(seq, None, Some(error), now, &err.into());
        }
        Ok(())
    }

    /// The final outcome of a message: delivered, failed or expired.
    pub fn finish(
        &self,
        seq: i64,
        status: DeliveryStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.outbox_changed(seq);
        let (in_memory, seq) = self.record_in_memory(seq, Some(status), error, now);
        if in_memory {
            return Ok(());
        }
        let delivered_at = (status == DeliveryStatus::Delivered).then_some(millis(now));
        let updated = self.db.lock().execute(
            "UPDATE outbox SET status = ?2, attempts = attempts + 1, last_error = COALESCE(?3, last_error),
             updated_at = ?4, delivered_at = ?5 WHERE seq = ?1",
            params![seq, status.as_str(), error, millis(now), delivered_at],
        );
        if let Err(err) = updated {
            // Kept in memory: were it lost, a delivered message would be sent again.
            self.update_failed(seq, Some(status), error, now, &err.into());
        }
        Ok(())
    }

    /// Messages, newest first, optionally of one status or one alert.
    pub fn deliveries(
        &self,
        status: Option<DeliveryStatus>,
        alert_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let db = self.db.lock();
        let mut statement = db.prepare(&format!(
            "{SELECT_DELIVERY} WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR alert_id = ?2) ORDER BY seq DESC LIMIT ?3"
        ))?;
        let rows = statement
            .query_map(
                params![status.map(|s| s.as_str()), alert_id, limit as i64],
                delivery_row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let fallback = self.fallback.lock();
        let wanted = |d: &Delivery| {
            status.is_none_or(|s| d.status == s) && alert_id.is_none_or(|a| d.alert_id == a)
        };
        // Those only in memory are the newest.
        let mut deliveries: Vec<Delivery> = fallback
            .messages
            .iter()
            .rev()
            .filter(|d| wanted(d))
            .cloned()
            .collect();
        for mut row in rows {
            if let Some(outcome) = fallback.outcomes.get(&row.seq) {
                outcome.apply(&mut row);
            }
            if wanted(&row) {
                deliveries.push(row);
            }
        }
        deliveries.truncate(limit);
        Ok(deliveries)
    }

    pub fn delivery_counts(&self) -> Result<BTreeMap<&'static str, i64>> {
        let db = self.db.lock();
        let mut counts: BTreeMap<&'static str, i64> = DeliveryStatus::ALL
            .iter()
            .map(|s| (s.as_str(), 0))
            .collect();
        let mut statement = db.prepare("SELECT status, COUNT(*) FROM outbox GROUP BY status")?;
        for row in statement.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })? {
            let (status, n) = row?;
            if let Some(status) = DeliveryStatus::parse(&status) {
                counts.insert(status.as_str(), n);
            }
        }
        let fallback = self.fallback.lock();
        for message in &fallback.messages {
            *counts.entry(message.status.as_str()).or_default() += 1;
        }
        for (seq, outcome) in &fallback.outcomes {
            let was: Option<String> = db
                .query_row("SELECT status FROM outbox WHERE seq = ?1", [seq], |row| {
                    row.get(0)
                })
                .optional()?;
            if let Some(was) = was.as_deref().and_then(DeliveryStatus::parse) {
                *counts.entry(was.as_str()).or_default() -= 1;
                *counts.entry(outcome.status.as_str()).or_default() += 1;
            }
        }
        Ok(counts)
    }

    /// Alert occurrences, newest first, by state (`None`: any) and region.
    pub fn alerts(
        &self,
        states: &[AlertState],
        region: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Alert>> {
        let db = self.db.lock();
        let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let mut statement = db.prepare(
            "SELECT body FROM alerts WHERE instr(?1, ',' || state || ',') > 0 AND (?2 IS NULL OR region = ?2)
             ORDER BY started_at DESC LIMIT ?3",
        )?;
        let rows = statement
            .query_map(
                params![format!(",{},", states.join(",")), region, limit as i64],
                |row| row.get::<_, String>(0),
            )?
            .map(|body| Ok(serde_json::from_str(&body?)?))
            .collect();
        rows
    }

    /// An occurrence by id, or the latest occurrence of a fingerprint.
    pub fn alert(&self, id: &str) -> Result<Option<Alert>> {
        let db = self.db.lock();
        let body: Option<String> = db
            .query_row(
                "SELECT body FROM alerts WHERE id = ?1 OR fingerprint = ?1 ORDER BY started_at DESC LIMIT 1",
                [id],
                |row| row.get(0),
            )
            .optional()?;
        Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
    }

    /// State changes of an occurrence (by alert id) or of every occurrence (by fingerprint).
    pub fn history(&self, id: &str) -> Result<Vec<HistoryEntry>> {
        let db = self.db.lock();
        let mut statement =
            db.prepare("SELECT seq, alert_id, event FROM history WHERE alert_id = ?1 OR fingerprint = ?1 ORDER BY seq")?;
        let rows = statement
            .query_map([id], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })?
            .map(|row| {
                let (seq, alert_id, event) = row?;
                Ok(HistoryEntry {
                    seq,
                    alert_id,
                    event: serde_json::from_str(&event)?,
                })
            })
            .collect();
        rows
    }

    /// Forgets history, finished messages and resolved occurrences older than `before`.
    pub fn prune(&self, before: DateTime<Utc>) -> Result<usize> {
        let db = self.db.lock();
        let cut = millis(before);
        let mut removed =
            db.execute("DELETE FROM history WHERE at < ?1 AND published = 1", [cut])?;
        removed += db.execute(
            "DELETE FROM outbox WHERE created_at < ?1 AND status != 'pending'",
            [cut],
        )?;
        removed += db.execute(
            "DELETE FROM alerts WHERE state = 'resolved' AND started_at < ?1",
            [cut],
        )?;
        removed += crate::acknowledge::prune(&db)?;
        Ok(removed)
    }
}

const NOT_CONFIGURED: &str = "no Slack webhook configured (set WINDSOCK_SLACK_WEBHOOK_URL)";

const SELECT_DELIVERY: &str =
    "SELECT seq, alert_id, rule, region, notice, created_at, status, attempts, last_error,
    updated_at, delivered_at, payload FROM outbox";

fn delivery_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        seq: row.get(0)?,
        alert_id: row.get(1)?,
        rule: row.get(2)?,
        region: row.get(3)?,
        notice: row.get(4)?,
        created_at: time(row.get(5)?),
        status: DeliveryStatus::parse(&row.get::<_, String>(6)?).unwrap_or(DeliveryStatus::Failed),
        attempts: row.get(7)?,
        last_error: row.get(8)?,
        updated_at: time(row.get(9)?),
        delivered_at: row.get::<_, Option<i64>>(10)?.map(time),
        payload: row.get(11)?,
        durable: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use windsock_core::config::Severity;

    fn alert(id: &str, state: AlertState, started_at: DateTime<Utc>) -> Alert {
        Alert {
            id: id.into(),
            fingerprint: format!("fp-{id}"),
            rule: "hot".into(),
            region: Some("Dakar".into()),
            subject: None,
            severity: Severity::Warning,
            state,
            started_at,
            fired_at: Some(started_at),
            resolved_at: None,
            value: Some(41.0),
            expected: None,
            summary: "hot".into(),
            clear_since: None,
            silenced_by: None,
            inhibited_by: None,
            notified_firing: true,
            last_notified_at: None,
            acknowledged_by: None,
            acknowledged_at: None,
        }
    }

    #[test]
    fn history_is_kept_for_the_retention_and_pruned_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
        let old = now - chrono::Duration::days(40);
        let recent = now - chrono::Duration::days(31);
        for (id, at) in [("old", old), ("recent", recent)] {
            let a = alert(id, AlertState::Resolved, at);
            store
                .commit(
                    std::slice::from_ref(&a),
                    &[(a.id.clone(), a.event(at))],
                    &[],
                    &[],
                    at,
                )
                .unwrap();
            let (seq, _) = store.unpublished(10).unwrap()[0].clone();
            store.mark_published(seq).unwrap();
        }
        let firing = alert("open", AlertState::Firing, old);
        store
            .commit(std::slice::from_ref(&firing), &[], &[], &[], old)
            .unwrap();
        let removed = store.prune(now - chrono::Duration::days(35)).unwrap();
        assert_eq!(
            removed, 2,
            "the old history entry and the old resolved occurrence"
        );
        assert!(store.history("old").unwrap().is_empty());
        assert_eq!(
            store.history("recent").unwrap().len(),
            1,
            "31 days old is kept"
        );
        assert_eq!(
            store.load().unwrap().open.len(),
            1,
            "an open alert is never pruned"
        );
    }

    fn message(id: &str, now: DateTime<Utc>, payload_len: usize) -> NewMessage {
        NewMessage {
            alert: alert(id, AlertState::Firing, now),
            notice: NoticeKind::Firing,
            payload: format!("{{\"text\":\"{}\"}}", "x".repeat(payload_len)),
            status: DeliveryStatus::Pending,
        }
    }

    #[test]
    fn a_full_database_keeps_messages_in_memory_until_it_can_write_them_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
        store
            .commit(&[], &[], &[message("a0", now, 10)], &[], now)
            .unwrap();
        assert!(store.is_durable());

        // No page more: a message of 8 kB needs several, and SQLite says SQLITE_FULL.
        store.limit_pages(1).unwrap();
        let decided = vec![message("a1", now, 8000)];
        let err = store
            .commit(&[], &[], &decided, &[], now)
            .expect_err("the database is full");
        assert!(err.to_string().contains("full"), "{err}");
        store.hold(decided, &err, now);
        assert!(!store.is_durable());

        // The outbox's own message first, then the one in memory.
        let first = store.next_pending().unwrap().unwrap();
        assert_eq!((first.alert_id.as_str(), first.durable), ("a0", true));
        store
            .finish(first.seq, DeliveryStatus::Delivered, None, now)
            .unwrap();
        let held = store.next_pending().unwrap().unwrap();
        assert_eq!((held.alert_id.as_str(), held.durable), ("a1", false));
        assert!(held.seq < 0, "never taken for a row: {}", held.seq);
        store
            .record_attempt(held.seq, "HTTP 500: internal_error", now)
            .unwrap();
        store
            .finish(held.seq, DeliveryStatus::Delivered, None, now)
            .unwrap();
        assert!(store.next_pending().unwrap().is_none(), "each sent once");
        let shown = store.deliveries(None, None, 10).unwrap();
        assert_eq!(shown.len(), 2);
        assert!(!shown[0].durable && shown[0].status == DeliveryStatus::Delivered);
        assert_eq!(shown[0].attempts, 2);
        assert!(store.flush().is_err(), "still full");

        // Space again: written, as delivered, and nothing left to send.
        store.limit_pages(1_000_000).unwrap();
        assert!(store.flush().unwrap());
        assert!(store.is_durable());
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert!(store.next_pending().unwrap().is_none());
        let kept = store.deliveries(None, None, 10).unwrap();
        assert_eq!(kept.len(), 2);
        assert!(kept
            .iter()
            .all(|d| d.durable && d.status == DeliveryStatus::Delivered));
        assert_eq!(kept[0].payload.len(), 8000 + 11);
        assert_eq!(store.delivery_counts().unwrap()["delivered"], 2);
    }

    #[test]
    fn an_outcome_that_cannot_be_written_is_kept_so_the_message_is_not_sent_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
        store
            .commit(
                &[],
                &[],
                &[message("a0", now, 10), message("a1", now, 10)],
                &[],
                now,
            )
            .unwrap();
        store.refuse_writes(true).unwrap();
        let first = store.next_pending().unwrap().unwrap();
        store
            .finish(first.seq, DeliveryStatus::Delivered, None, now)
            .unwrap();
        assert!(!store.is_durable());
        let next = store.next_pending().unwrap().unwrap();
        assert_eq!(next.alert_id, "a1", "a0 is not sent again");
        assert_eq!(store.delivery_counts().unwrap()["delivered"], 1);
        store.refuse_writes(false).unwrap();
        assert!(store.flush().unwrap());
        let rows = store
            .deliveries(Some(DeliveryStatus::Delivered), None, 10)
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert!(rows[0].durable);
        assert_eq!(store.next_pending().unwrap().unwrap().alert_id, "a1");
    }

    #[test]
    fn a_region_state_moves_from_one_store_to_another_with_its_undelivered_messages() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
        let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = Store::open(from.path()).unwrap();
        let firing = alert("a1", AlertState::Firing, now);
        let mut other = alert("a2", AlertState::Firing, now);
        other.region = Some("Thiès".into());
        let memory = [MemoryEntry {
            rule: "hot".into(),
            region: "Dakar".into(),
            body: Some("{\"value\":41.0}".into()),
        }];
        first
            .commit(
                &[firing.clone(), other.clone()],
                &[],
                &[message("a1", now, 10), message("a1", now, 20)],
                &memory,
                now,
            )
            .unwrap();
        let delivered = first.next_pending().unwrap().unwrap();
        first
            .finish(delivered.seq, DeliveryStatus::Delivered, None, now)
            .unwrap();
        assert_eq!(first.changed_regions(), ["Dakar"], "its outbox changed");
        let outbox = first.region_outbox("Dakar").unwrap();
        assert_eq!(outbox.len(), 1, "only the undelivered message");
        assert!(first.region_outbox("Thiès").unwrap().is_empty());
        let mut state = RegionState::empty("Dakar");
        state.alerts = vec![firing.clone()];
        state.outbox = outbox;
        state
            .memory
            .insert("hot".into(), serde_json::json!({"value": 41.0}));

        let second = Store::open(to.path()).unwrap();
        second.restore_region(&state, &memory).unwrap();
        drop(second);
        let second = Store::open(to.path()).unwrap();
        let loaded = second.load().unwrap();
        assert_eq!(loaded.open, [firing]);
        assert_eq!(
            loaded.memory[&("hot".to_string(), "Dakar".to_string())],
            serde_json::json!({"value": 41.0})
        );
        let pending = second.next_pending().unwrap().unwrap();
        assert_eq!(pending.payload.len(), 20 + 11, "the undelivered one");

        first.forget_region("Dakar").unwrap();
        assert!(first.next_pending().unwrap().is_none(), "not sent here");
        let loaded = first.load().unwrap();
        assert_eq!(loaded.open, [other], "Thiès stays");
        assert!(loaded.memory.is_empty());
    }

    #[test]
    fn memory_in_the_old_format_is_loaded_once_then_deleted_with_the_first_commit() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let db = store.db.lock();
            db.execute(
                "INSERT INTO memory (rule, body) VALUES ('hot', '{\"Dakar\":{}}'), ('odd', 'not json')",
                [],
            )
            .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(
            loaded.legacy.keys().collect::<Vec<_>>(),
            ["hot"],
            "what does not decode is dropped"
        );
        let entry = MemoryEntry {
            rule: "hot".into(),
            region: "Dakar".into(),
            body: Some("{}".into()),
        };
        store.commit(&[], &[], &[], &[entry], now).unwrap();
        drop(store);
        let loaded = Store::open(dir.path()).unwrap().load().unwrap();
        assert!(loaded.legacy.is_empty());
        assert_eq!(loaded.memory.len(), 1);
    }

    #[test]
    fn the_outbox_is_worked_in_order_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let messages: Vec<NewMessage> = (0..3)
                .map(|i| NewMessage {
                    alert: alert(&format!("a{i}"), AlertState::Firing, now),
                    notice: NoticeKind::Firing,
                    payload: format!("{{\"text\":\"{i}\"}}"),
                    status: DeliveryStatus::Pending,
                })
                .collect();
            store.commit(&[], &[], &messages, &[], now).unwrap();
            let first = store.next_pending().unwrap().unwrap();
            store
                .finish(first.seq, DeliveryStatus::Delivered, None, now)
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let next = store.next_pending().unwrap().unwrap();
        assert_eq!(next.alert_id, "a1");
        store
            .record_attempt(next.seq, "HTTP 500: boom", now)
            .unwrap();
        assert_eq!(
            store.next_pending().unwrap().unwrap().alert_id,
            "a1",
            "retried before later ones"
        );
        let counts = store.delivery_counts().unwrap();
        assert_eq!((counts["delivered"], counts["pending"]), (1, 2));
    }
}
