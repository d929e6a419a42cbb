//! The tantivy index on disk: opening it, the one writer, commits that carry the bus offsets
//! they contain, idempotent upserts and retention deletes.

use crate::schema::{build_schema, to_tantivy, Fields};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use tantivy::directory::MmapDirectory;
use tantivy::indexer::LogMergePolicy;
use tantivy::query::RangeQuery;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use windsock_core::bus::{Delivery, Topic};
use windsock_core::event::Envelope;

pub type StoreResult<T> = Result<T, tantivy::TantivyError>;

/// Batches at least this large build their documents on two threads.
const PARALLEL_BATCH: usize = 64;

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
            tantivy::TantivyError::SystemError(format!("cannot create {}: {e}", dir.display()))
        })?;
        let directory = MmapDirectory::open(dir)?;
        Self::from_index(Index::open_or_create(directory, build_schema())?)
    }

    /// An index in memory (tests and benchmarks).
    pub fn in_ram() -> StoreResult<Self> {
        Self::from_index(Index::create_in_ram(build_schema()))
    }

    fn from_index(index: Index) -> StoreResult<Self> {
        let fields = Arc::new(Fields::new(&index.schema())?);
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
        let writer: IndexWriter = self.index.writer(memory_mb.max(15) * 1_000_000)?;
        let mut policy = LogMergePolicy::default();
        // Retention deletes whole time ranges: merge segments once a third of them is gone,
        // so the index stays compact rather than carrying tombstones.
        policy.set_del_docs_ratio_before_merge(0.3);
        writer.set_merge_policy(Box::new(policy));
        Ok(IndexSink {
            committed: self.committed()?,
            writer,
            index: self.clone(),
            uncommitted: 0,
        })
    }
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
        let slot = self
            .offsets
            .entry(delivery.topic.suffix().to_string())
            .or_default()
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
    uncommitted: usize,
}

impl IndexSink {
    /// Adds (or replaces: same id, one document) an event read from `delivery`.
    pub fn upsert(&mut self, envelope: &Envelope, delivery: Option<&Delivery>) -> StoreResult<()> {
        let document = self.index.fields.document_of(envelope, delivery);
        self.add(envelope, document, delivery)
    }

    /// Upserts deliveries in order, building their documents on two threads first (building
    /// costs as much as tantivy's own indexing of them, and the consuming loop is one task).
    pub fn upsert_all(&mut self, batch: &[(Delivery, Envelope)]) -> StoreResult<()> {
        let fields = &self.index.fields;
        let build = |part: &[(Delivery, Envelope)]| -> Vec<TantivyDocument> {
            part.iter()
                .map(|(d, e)| fields.document_of(e, Some(d)))
                .collect()
        };
        let documents = if batch.len() < PARALLEL_BATCH {
            build(batch)
        } else {
            let (first, second) = batch.split_at(batch.len() / 2);
            std::thread::scope(|scope| {
                let other = scope.spawn(|| build(second));
                let mut documents = build(first);
                documents.extend(other.join().expect("building documents does not panic"));
                documents
            })
        };
        for ((delivery, envelope), document) in batch.iter().zip(documents) {
            self.add(envelope, document, Some(delivery))?;
        }
        Ok(())
    }

    fn add(
        &mut self,
        envelope: &Envelope,
        document: TantivyDocument,
        delivery: Option<&Delivery>,
    ) -> StoreResult<()> {
        // Delete and add get consecutive opstamps in the same commit: the delete applies to
        // every earlier copy, never to this one.
        self.writer
            .delete_term(Term::from_field_text(self.index.fields.id, &envelope.id));
        self.writer.add_document(document)?;
        if let Some(delivery) = delivery {
            self.committed.record(delivery);
        }
        self.uncommitted += 1;
        Ok(())
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
        self.committed = payload;
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
        self.uncommitted = 0;
        self.index.reader.reload()?;
        Ok(())
    }

    /// Waits for merges in flight (clean shutdown).
    pub fn finish(self) -> StoreResult<()> {
        self.writer.wait_merging_threads()
    }
}
