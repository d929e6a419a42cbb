//! windsock's indexer: every event on the bus searchable in tantivy, with a search API shaped
//! after Kibana Discover (hits, a date histogram, facet counts, surrounding documents).
//!
//! - [`schema`]: fields, and how an event becomes a document (its attributes read as an
//!   [`attribute`] tree that borrows from the payload);
//! - [`store`]: the index on disk, commits carrying bus offsets, upserts by id, retention;
//! - `ingest`: the consuming loop (commit, then ack), with the index writer on its own
//!   thread (`writer`), a filter of ids already indexed (`seen`) so only a possible
//!   duplicate pays for a delete by id, and merges held back while it drains a backlog
//!   (`merge`);
//! - [`query`], [`search`], [`timespec`]: the search language, execution, and times;
//! - [`api`]: the HTTP routes; [`cli`]: `windsock search`.
//!
//! Exactly-once results: each commit records the last offset of every partition it contains;
//! on start the indexer skips deliveries at or below them (Kafka may redeliver what was
//! indexed but not yet acked), and an event indexed twice replaces itself (delete the id
//! term, add, in one commit), so neither a crash nor a redelivery duplicates anything.

pub mod aggregate;
mod analysis_api;
pub mod api;
pub mod attribute;
pub mod cli;
pub mod describe;
pub mod export;
mod ingest;
mod merge;
pub mod query;
pub mod saved;
pub mod schema;
pub mod search;
mod seen;
pub mod store;
pub mod synthetic;
pub mod timespec;
mod writer;

pub use api::SearchService;
pub use cli::{CliError, SearchArgs};
pub use store::{CommitPayload, EventIndex};

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use windsock_core::bus::{BusError, EventSubscription, SharedBus, Topic};
use windsock_core::clock::{self, SharedClock};
use windsock_core::config::{BusKind, Config};

/// The OpenAPI document of the indexer's routes (built from the same router they are served
/// from; no index or bus needed).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::openapi()
}

/// The consumer group of the indexer when it is not a named replica (`indexer.replica`;
/// see `IndexerConfig::group`).
pub const GROUP: &str = "indexer";

#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    /// No thread for the index writer (the system's thread limit, say): the cause is kept as
    /// the source, so `{:#}` says why.
    #[error("cannot start the index writer")]
    WriterThread(#[source] std::io::Error),
}

pub struct Indexer {
    index: EventIndex,
    service: SearchService,
    /// The first run's consumer, subscribed in `new` (so nothing published after it is
    /// missed); a run after a failed one starts its own (see [`Indexer::run`]).
    ingest: std::sync::Mutex<Option<ingest::Ingest>>,
    config: Arc<Config>,
    bus: SharedBus,
    clock: SharedClock,
    retention_every: Duration,
    disk_full_retry: ingest::DiskFullRetry,
}

impl Indexer {
    /// Opens the index under `<data_dir>/index` and subscribes to every topic.
    pub async fn new(config: Arc<Config>, bus: SharedBus) -> Result<Self, IndexerError> {
        Self::with_clock(config, bus, clock::system()).await
    }

    /// As [`Indexer::new`], with the clock that relative times and retention go by.
    pub async fn with_clock(
        config: Arc<Config>,
        bus: SharedBus,
        clock: SharedClock,
    ) -> Result<Self, IndexerError> {
        let index = EventIndex::open(&config.data_dir.join("index"))?;
        Self::with_index(config, bus, clock, index).await
    }

    /// As [`Indexer::with_clock`], writing `index` (opened by the caller, say over a
    /// directory of its own) instead of the one under `<data_dir>/index`.
    pub async fn with_index(
        config: Arc<Config>,
        bus: SharedBus,
        clock: SharedClock,
        index: EventIndex,
    ) -> Result<Self, IndexerError> {
        let settings = &config.indexer;
        let retention_every =
            (settings.retention / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
        let disk_full_retry = ingest::DiskFullRetry::default();
        let ingest = start_ingest(
            &index,
            &config,
            &bus,
            &clock,
            retention_every,
            disk_full_retry,
        )
        .await?;
        let service = SearchService::new(index.clone(), config.clone(), clock.clone());
        Ok(Self {
            index,
            service,
            ingest: std::sync::Mutex::new(Some(ingest)),
            config,
            bus,
            clock,
            retention_every,
            disk_full_retry,
        })
    }

    /// How long a commit that failed on a full disk waits before it is tried again: from
    /// `min`, doubling, up to `max` (default 1 s to 30 s; tests scale it down).
    pub fn disk_full_retry(mut self, min: Duration, max: Duration) -> Self {
        self.disk_full_retry = ingest::DiskFullRetry { min, max };
        if let Some(ingest) = self.ingest.get_mut().ok().and_then(Option::as_mut) {
            ingest.disk_full.retry = self.disk_full_retry;
        }
        self
    }

    /// How often old events are swept (default: a tenth of the retention, at most a minute).
    pub fn retention_every(mut self, every: Duration) -> Self {
        self.retention_every = every.max(Duration::from_millis(1));
        if let Some(ingest) = self.ingest.get_mut().ok().and_then(Option::as_mut) {
            ingest.retention_every = self.retention_every;
        }
        self
    }

    /// The index this indexer writes (for tests and tools that read it in-process).
    pub fn index(&self) -> &EventIndex {
        &self.index
    }

    /// `/api/search`, `/api/events/{id}`, `/api/events/{id}/context`, `/api/regions`: the
    /// routes [`openapi`] describes.
    pub fn routes(&self) -> axum::Router {
        api::routes(self.service.clone())
    }

    /// Indexes until `shutdown`, then commits what it has, acks it, and returns.
    ///
    /// It can run again after a run failed (the supervisor restarts it; the routes stay):
    /// that run opens a new index writer and a new subscription, which resumes from the last
    /// committed offsets, so what the failed run had not committed is delivered again.
    pub fn run(
        &self,
        shutdown: CancellationToken,
    ) -> impl std::future::Future<Output = Result<(), IndexerError>> + Send + 'static {
        let first = self
            .ingest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let index = self.index.clone();
        let config = self.config.clone();
        let bus = self.bus.clone();
        let clock = self.clock.clone();
        let retention_every = self.retention_every;
        let disk_full_retry = self.disk_full_retry;
        async move {
            let ingest = match first {
                Some(ingest) => ingest,
                None => {
                    start_ingest(
                        &index,
                        &config,
                        &bus,
                        &clock,
                        retention_every,
                        disk_full_retry,
                    )
                    .await?
                }
            };
            // The group says whether this is a replica of its own (see `indexer.replica`).
            tracing::info!(
                documents = index.len(),
                group = %format!("{}{}", config.bus.group_prefix, config.indexer.group()),
                "indexer started"
            );
            ingest.run(shutdown).await
        }
    }
}

/// The consuming side of an indexer: a writer on `index` resuming from its last commit, and
/// a subscription to every topic.
async fn start_ingest(
    index: &EventIndex,
    config: &Arc<Config>,
    bus: &SharedBus,
    clock: &SharedClock,
    retention_every: Duration,
    disk_full_retry: ingest::DiskFullRetry,
) -> Result<ingest::Ingest, IndexerError> {
    let mut sink = index.writer(config.indexer.writer_memory_mb)?;
    let committed = index.committed()?;
    // Only Kafka's offsets survive a restart; the embedded bus numbers from 0 each time.
    let skip = if bus.kind() == BusKind::Kafka && committed.bus == BusKind::Kafka.as_str() {
        committed
    } else {
        CommitPayload::default()
    };
    sink.resume_from(skip.clone());
    // Each replica its own group, so each reads every partition into its own index.
    let group = config.indexer.group();
    let subscription = EventSubscription::new(bus.clone(), &Topic::ALL, &group).await?;
    let settings = &config.indexer;
    let backlog = sink.backlog();
    let writer =
        writer::Writer::spawn(sink, bus.kind().as_str()).map_err(IndexerError::WriterThread)?;
    Ok(ingest::Ingest {
        subscription,
        writer,
        fields: index.fields.clone(),
        skip,
        backlog,
        commit_docs: settings.commit_docs,
        commit_interval: settings.commit_interval,
        retention: settings.retention,
        retention_every,
        clock: clock.clone(),
        uncommitted: 0,
        last_full_read: None,
        in_flight: 0,
        disk_full: ingest::DiskFull::new(
            bus.clone(),
            config.data_dir.join("index"),
            disk_full_retry,
        ),
    })
}
