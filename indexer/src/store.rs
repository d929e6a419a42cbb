//! The tantivy index on disk: opening it, the one writer, commits that carry the bus offsets
//! they contain, idempotent upserts and retention deletes.

use crate::merge::{Backlog, IndexMergePolicy};
use crate::schema::{build_schema, to_tantivy, Fields};
use crate::seen::SeenIds;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use tantivy::directory::error::OpenWriteError;
use tantivy::directory::{Directory, MmapDirectory};
use tantivy::query::RangeQuery;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use windsock_core::bus::{Delivery, Topic};
use windsock_core::event::Envelope;

pub type StoreResult<T> = Result<T, tantivy::TantivyError>;

/// Events the committed index holds.
pub const DOCUMENTS: &str = "windsock_index_documents";
/// Bytes of the committed index's segments.
pub const SIZE_BYTES: &str = "windsock_index_size_bytes";
pub const COMMIT_DURATION: &str = "windsock_index_commit_duration_seconds";
pub const SEARCH_DURATION: &str = "windsock_search_duration_seconds";

/// Describes the indexer's families (one place for the crate) and lists its histograms at
/// zero, so a dashboard has every series from the start.
pub fn register_metrics() {
    use metrics::Unit;
    windsock_core::telemetry::prometheus();
    metrics::describe_gauge!(DOCUMENTS, Unit::Count, "Events the committed index holds.");
    metrics::describe_gauge!(
        SIZE_BYTES,
        Unit::Bytes,
        "Bytes of the committed index's segments (what tantivy's space usage counts)."
    );
    metrics::describe_histogram!(
        COMMIT_DURATION,
        Unit::Seconds,
        "Time each index commit took (finishing segments, fsync; a retry after a full disk \
         includes adding again what it holds)."
    );
    metrics::describe_histogram!(
        SEARCH_DURATION,
        Unit::Seconds,
        "Time each search that answered took (query, top hits, histogram and facets)."
    );
    metrics::describe_gauge!(
        "windsock_disk_full",
        Unit::Count,
        "1 while the indexer cannot write because the disk is full, else 0."
    );
    metrics::describe_counter!(
        "windsock_disk_full_total",
        Unit::Count,
        "Times the indexer found the disk full (a commit or an add failed for want of space)."
    );
    // Registering the handle is what lists a histogram; it records nothing.
    let _ = metrics::histogram!(COMMIT_DURATION);
    let _ = metrics::histogram!(SEARCH_DURATION);
}

/// The index and a reader of it; shared by the writer side and the search API.
#[derive(Clone)]
pub struct EventIndex {
    pub index: Index,
    pub reader: IndexReader,
    pub fields: Arc<Fields>,
}

impl EventIndex {
    /// Opens the index in `dir`, creating it (and the directory) if needed.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            // Kept an I/O error, so a full disk is told apart from a fatal error.
            tantivy::TantivyError::IoError(Arc::new(std::io::Error::new(
                e.kind(),
                format!("cannot create {}: {e}", dir.display()),
            )))
        })?;
        Self::open_in(MmapDirectory::open(dir)?, dir)
    }

    /// Opens (or creates) the index stored in `directory`, which `dir` names in messages
    /// (tests give a directory that fails its writes on demand).
    pub fn open_in(directory: impl Directory, dir: &Path) -> StoreResult<Self> {
        let directory: Box<dyn Directory> = Box::new(directory);
        let schema = build_schema();
        if !Index::exists(directory.as_ref())? {
            return Self::from_index(Index::create(directory, schema, Default::default())?);
        }
        let index = Index::open(directory)?;
        let another_version = |what: String| {
            tantivy::TantivyError::SchemaError(format!(
                "the index in {} was written by another version of windsock, {what}; move it \
                 aside (or delete it) and the indexer starts a new one",
                dir.display()
            ))
        };
        if index.schema() != schema {
            return Err(another_version("with another schema".into()));
        }
        let opened = Self::from_index(index)?;
        // The same schema may sit on another term dictionary format (windsock's first indexes
        // used tantivy's FST, which this build does not read): tantivy only finds out when a
        // segment's terms are first read, deep in a search; here it is said at start (the
        // reader was just made, so it holds every committed segment).
        for segment in opened.reader.searcher().segment_readers() {
            segment.inverted_index(opened.fields.id).map_err(|err| {
                another_version(format!("in a format this one cannot read ({err})"))
            })?;
        }
        Ok(opened)
    }

    /// An index in memory (tests and benchmarks).
    pub fn in_ram() -> StoreResult<Self> {
        Self::from_index(Index::create_in_ram(build_schema()))
    }

    fn from_index(mut index: Index) -> StoreResult<Self> {
        let fields = Arc::new(Fields::new(&index.schema())?);
        // A search visits the segments on every core, not one after the other: a query
        // matching most of ten million events takes half the time on two cores.
        index.set_default_multithread_executor()?;
        // Reloaded by the writer after each commit, so a commit is searchable at once.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            reader,
            fields,
        })
    }

    /// The bus positions the last commit contains (empty for a new index).
    pub fn committed(&self) -> StoreResult<CommitPayload> {
        let metas = self.index.load_metas()?;
        Ok(metas
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default())
    }

    /// The writer: there is one per index (tantivy locks the directory).
    pub fn writer(&self, memory_mb: usize) -> StoreResult<IndexSink> {
        register_metrics();
        let writer: IndexWriter = self.index.writer(memory_mb.max(15) * 1_000_000)?;
        let backlog = Backlog::default();
        writer.set_merge_policy(Box::new(IndexMergePolicy::new(backlog.clone())));
        let resumed = self.committed()?;
        self.record_size();
        Ok(IndexSink {
            committed: resumed.clone(),
            durable: resumed,
            seen: self.indexed_ids()?,
            writer,
            index: self.clone(),
            uncommitted: 0,
            backlog,
        })
    }

    /// Sets the documents and size gauges from the reader's view of the committed index.
    fn record_size(&self) {
        let searcher = self.reader.searcher();
        metrics::gauge!(DOCUMENTS).set(searcher.num_docs() as f64);
        match searcher.space_usage() {
            Ok(usage) => metrics::gauge!(SIZE_BYTES).set(usage.total().get_bytes() as f64),
            // The gauge keeps its last value; the next commit tries again.
            Err(err) => tracing::debug!(error = %err, "the index size could not be read"),
        }
    }

    /// Every id the committed index holds (and some it held before a delete).
    fn indexed_ids(&self) -> StoreResult<SeenIds> {
        self.reader.reload()?;
        let searcher = self.reader.searcher();
        let held: usize = searcher
            .segment_readers()
            .iter()
            .map(|s| s.max_doc() as usize)
            .sum();
        // Room for as many again before the filter grows.
        let mut seen = SeenIds::with_capacity(2 * held);
        for segment in searcher.segment_readers() {
            let ids = segment.inverted_index(self.fields.id)?;
            let mut terms = ids.terms().stream()?;
            while terms.advance() {
                seen.insert(terms.key());
            }
        }
        Ok(seen)
    }
}

/// Whether `err` says the disk (or the quota) is full: a condition that passes once space is
/// freed, not a fault of the index. tantivy keeps the `io::Error` in most variants; an error
/// that crossed a thread only keeps its text.
pub fn is_disk_full(err: &tantivy::TantivyError) -> bool {
    use tantivy::TantivyError as E;
    let io = match err {
        E::IoError(io) => Some(io.as_ref()),
        E::OpenWriteError(OpenWriteError::IoError { io_error, .. }) => Some(io_error.as_ref()),
        E::LockFailure(tantivy::directory::error::LockError::IoError(io), _) => Some(io.as_ref()),
        _ => None,
    };
    io.is_some_and(io_is_disk_full) || text_says_disk_full(&format!("{err} {err:?}"))
}

/// ENOSPC or EDQUOT, however deep it is wrapped.
pub fn io_is_disk_full(err: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded
    ) {
        return true;
    }
    let mut source = err
        .get_ref()
        .map(|e| e as &(dyn std::error::Error + 'static));
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            if matches!(io.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded) {
                return true;
            }
        }
        source = inner.source();
    }
    text_says_disk_full(&err.to_string())
}

fn text_says_disk_full(text: &str) -> bool {
    [
        "StorageFull",
        "QuotaExceeded",
        "os error 28)",
        "os error 122)",
    ]
    .iter()
    .any(|needle| text.contains(needle))
        || text.contains("No space left on device")
        || text.contains("Disk quota exceeded")
}

/// What a commit records about the bus: the last offset indexed per topic and partition, and
/// which bus they are offsets of (the embedded bus starts at 0 in every process, so its
/// offsets mean nothing to the next one).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CommitPayload {
    pub bus: String,
    /// topic suffix -> partition -> last offset contained in the index.
    pub offsets: BTreeMap<String, BTreeMap<i32, i64>>,
}

impl CommitPayload {
    pub fn offset(&self, topic: Topic, partition: i32) -> Option<i64> {
        self.offsets.get(topic.suffix())?.get(&partition).copied()
    }

    /// Whether the index already contains this delivery.
    pub fn contains(&self, delivery: &Delivery) -> bool {
        self.offset(delivery.topic, delivery.partition)
            .is_some_and(|o| delivery.offset <= o)
    }

    fn record(&mut self, delivery: &Delivery) {
        let topic = delivery.topic.suffix();
        // Looked up before inserting: `entry` would allocate the topic's name for every event.
        if !self.offsets.contains_key(topic) {
            self.offsets.insert(topic.to_string(), BTreeMap::new());
        }
        let partitions = self.offsets.get_mut(topic).expect("inserted above");
        let slot = partitions
            .entry(delivery.partition)
            .or_insert(delivery.offset);
        *slot = (*slot).max(delivery.offset);
    }
}

/// The writing side: upserts, deletes and commits with their payload.
pub struct IndexSink {
    writer: IndexWriter,
    index: EventIndex,
    /// What the index will contain once the pending operations commit.
    committed: CommitPayload,
    /// What the last commit made durable (a rollback returns to it).
    durable: CommitPayload,
    /// Every id added so far (committed or not, and seeded from the index): only these can
    /// have an earlier copy to replace.
    seen: SeenIds,
    uncommitted: usize,
    /// Holds merges back while the consuming loop is behind the bus.
    backlog: Backlog,
}

impl IndexSink {
    /// Adds (or replaces: same id, one document) an event read from `delivery`.
    pub fn upsert(&mut self, envelope: &Envelope, delivery: Option<&Delivery>) -> StoreResult<()> {
        let document = self.index.fields.document_of(envelope, delivery);
        self.add(&envelope.id, document, delivery)
    }

    /// Adds (or replaces: same id, one document) the event `id` whose document is built.
    pub fn add(
        &mut self,
        id: &str,
        document: TantivyDocument,
        delivery: Option<&Delivery>,
    ) -> StoreResult<()> {
        // An id never seen cannot have an earlier copy: no delete (each delete term is looked
        // up in every segment at commit, which cost more than indexing). Otherwise delete
        // and add get consecutive opstamps in the same commit: the delete applies to every
        // earlier copy, never to this one.
        if self.seen.insert(id.as_bytes()) {
            self.writer
                .delete_term(Term::from_field_text(self.index.fields.id, id));
        }
        if let Err(err) = self.writer.add_document(document) {
            return Err(self.cause_of(err));
        }
        if let Some(delivery) = delivery {
            self.committed.record(delivery);
        }
        self.uncommitted += 1;
        Ok(())
    }

    /// Adds the event `delivery` holds, its document built again from the payload (the
    /// retry of a commit that failed: nothing else keeps the documents, which cost memory).
    pub fn add_delivery(&mut self, delivery: &Delivery) -> StoreResult<()> {
        match self.index.fields.document_of_payload(&delivery.payload) {
            Ok((id, document)) => self.add(&id, document, Some(delivery)),
            // It decoded the first time; were it to differ, it is read as a dead letter was.
            Err(_) => {
                self.pass(delivery);
                Ok(())
            }
        }
    }

    /// Why an add failed. An indexing thread that fails (say a write to a full disk while it
    /// flushes a segment) only leaves "the index writer was killed" for the next add to say;
    /// its own error comes back from joining it, which preparing a commit does (the commit
    /// is never made: a rollback follows a failed add).
    fn cause_of(&mut self, err: tantivy::TantivyError) -> tantivy::TantivyError {
        match self.writer.prepare_commit() {
            Err(cause) => cause,
            Ok(_) => err,
        }
    }

    /// Records a delivery that holds no event (it was dead-lettered) as read: the next
    /// commit's payload holds its offset, so a restart does not read it again.
    pub fn pass(&mut self, delivery: &Delivery) {
        self.committed.record(delivery);
    }

    /// Deletes every event before `cutoff` (applied at the next commit).
    pub fn delete_before(&mut self, cutoff: chrono::DateTime<chrono::Utc>) -> StoreResult<()> {
        let upper = Term::from_field_date(self.index.fields.timestamp, to_tantivy(cutoff));
        self.writer.delete_query(Box::new(RangeQuery::new(
            Bound::Unbounded,
            Bound::Excluded(upper),
        )))?;
        self.uncommitted += 1;
        Ok(())
    }

    /// Sets what this session starts from: the bus positions the index is known to contain
    /// (empty when they mean nothing to this bus).
    pub fn resume_from(&mut self, payload: CommitPayload) {
        self.durable = payload.clone();
        self.committed = payload;
    }

    /// Drops every operation since the last commit, with whatever a failed commit left
    /// behind: a failed commit may leave tantivy's writer unusable (an indexing thread that
    /// died on a write, segments the updater counts as committed while `meta.json` was never
    /// written), so the writer is replaced by one opened on the last commit, and the files
    /// of the failed attempt are deleted (on a full disk they hold the space a retry needs).
    pub fn rollback(&mut self) -> StoreResult<()> {
        self.writer.rollback()?;
        // The new writer starts with tantivy's default policy.
        self.writer
            .set_merge_policy(Box::new(IndexMergePolicy::new(self.backlog.clone())));
        if let Err(err) = self.writer.garbage_collect_files().wait() {
            tracing::debug!(error = %err, "deleting the files of a failed commit failed");
        }
        self.committed = self.durable.clone();
        self.uncommitted = 0;
        Ok(())
    }

    /// The switch that holds merges back while the consumer drains a backlog.
    pub fn backlog(&self) -> Backlog {
        self.backlog.clone()
    }

    /// Operations since the last commit.
    pub fn uncommitted(&self) -> usize {
        self.uncommitted
    }

    /// Makes everything so far durable and searchable, recording `bus` offsets with it.
    /// Blocks (tantivy finishes indexing and fsyncs).
    pub fn commit(&mut self, bus: &str) -> StoreResult<()> {
        self.committed.bus = bus.to_string();
        let payload = serde_json::to_string(&self.committed).expect("payload serializes");
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.durable.clone_from(&self.committed);
        self.uncommitted = 0;
        self.index.reader.reload()?;
        self.index.record_size();
        Ok(())
    }

    /// Waits for merges in flight (clean shutdown).
    pub fn finish(self) -> StoreResult<()> {
        self.writer.wait_merging_threads()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_apart_however_tantivy_wraps_it() {
        use std::io::{Error, ErrorKind};
        let enospc = || Error::from_raw_os_error(28);
        assert!(is_disk_full(&tantivy::TantivyError::IoError(Arc::new(
            enospc()
        ))));
        assert!(is_disk_full(&tantivy::TantivyError::IoError(Arc::new(
            Error::from_raw_os_error(122)
        ))));
        assert!(is_disk_full(&tantivy::TantivyError::OpenWriteError(
            OpenWriteError::wrap_io_error(enospc(), "x.idx".into())
        )));
        assert!(is_disk_full(&tantivy::TantivyError::IoError(Arc::new(
            Error::other(Error::from(ErrorKind::StorageFull))
        ))));
        assert!(is_disk_full(&tantivy::TantivyError::ErrorInThread(
            format!("{:?}", enospc())
        )));
        assert!(!is_disk_full(&tantivy::TantivyError::IoError(Arc::new(
            Error::from(ErrorKind::PermissionDenied)
        ))));
        assert!(!is_disk_full(&tantivy::TantivyError::SchemaError(
            "no".into()
        )));
    }

    /// The value of the first sample of `series` (a name with its labels, if any).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.parse().ok())
    }

    #[test]
    fn commits_set_the_documents_and_size_gauges_and_searches_are_timed() {
        let index = EventIndex::in_ram().unwrap();
        let mut sink = index.writer(15).unwrap();
        let start = chrono::Utc::now() - chrono::Duration::hours(1);
        let events = crate::synthetic::events(5, start, chrono::Duration::minutes(1), 7);
        for event in &events {
            sink.upsert(event, None).unwrap();
        }
        sink.commit("embedded").unwrap();
        let searches = |text: &str| {
            sample(text, "windsock_search_duration_seconds_count").expect("listed from the start")
        };
        let before = searches(&windsock_core::telemetry::prometheus().render());
        let request = crate::search::SearchRequest {
            q: "*".into(),
            from: start - chrono::Duration::hours(1),
            to: chrono::Utc::now(),
            limit: 10,
            offset: 0,
            sort: crate::search::Sort::Newest,
            aggregate: true,
        };
        index.search(&request).unwrap();

        let text = windsock_core::telemetry::prometheus().render();
        for (family, kind) in [
            (DOCUMENTS, "gauge"),
            (SIZE_BYTES, "gauge"),
            (SEARCH_DURATION, "histogram"),
            (COMMIT_DURATION, "histogram"),
        ] {
            assert!(
                text.contains(&format!("# HELP {family} ")),
                "{family}:\n{text}"
            );
            assert!(
                text.contains(&format!("# TYPE {family} {kind}\n")),
                "{family}:\n{text}"
            );
        }
        // Other tests of this binary commit too (the gauges are the process's), so only
        // what no other test can undo is checked: the series exist, and this search counted.
        assert!(sample(&text, DOCUMENTS).is_some(), "{text}");
        assert!(sample(&text, SIZE_BYTES).is_some(), "{text}");
        assert!(searches(&text) > before, "{text}");
    }

    #[test]
    fn an_index_of_another_schema_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let mut other = tantivy::schema::Schema::builder();
        other.add_text_field("id", tantivy::schema::STRING);
        Index::create_in_dir(dir.path(), other.build()).unwrap();
        let err = EventIndex::open(dir.path()).err().expect("refused");
        let message = err.to_string();
        assert!(message.contains("another version of windsock"), "{message}");
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );

        let ours = tempfile::tempdir().unwrap();
        drop(EventIndex::open(ours.path()).unwrap());
        EventIndex::open(ours.path()).expect("our own index opens again");
    }
}
