use super::Problems;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexerConfig {
    /// Commit (make searchable and durable) after this many documents...
    ///
    /// Under load commits are driven by `commit_interval`; this bounds what one commit holds
    /// (its memory, and what a crash makes the indexer read again). Each commit writes new
    /// segments, so committing more often than needed costs ingest speed.
    pub commit_docs: usize,
    /// ...or this long after the first uncommitted one, whichever comes first (four times
    /// this while the indexer drains a backlog).
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// Events older than this (by their own timestamp) are deleted, swept every tenth of it
    /// (at most every minute).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Memory for tantivy's writer.
    pub writer_memory_mb: usize,
    /// The most hits one search returns; larger limits are clamped (and said so).
    pub max_limit: usize,
    /// Where the UI and `windsock search` reach the search API in distributed mode
    /// (`http://indexer:8080`); unset, they use this process's own HTTP address.
    pub url: Option<String>,
}

impl Default for IndexerConfig {
    fn default() -> Self {
        Self {
            commit_docs: 100_000,
            commit_interval: Duration::from_millis(500),
            retention: Duration::from_secs(30 * 24 * 3600),
            writer_memory_mb: 128,
            max_limit: 1000,
            url: None,
        }
    }
}

impl IndexerConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        if self.commit_docs == 0 {
            problems.push("indexer.commit_docs", "must be at least 1");
        }
        if self.commit_interval.is_zero() {
            problems.push("indexer.commit_interval", "must be more than 0s");
        }
        if self.retention.is_zero() {
            problems.push(
                "indexer.retention",
                "must be more than 0s (it is how long events are kept)",
            );
        }
        if self.writer_memory_mb < 15 {
            problems.push("indexer.writer_memory_mb", "tantivy needs at least 15 MB");
        }
        if self.max_limit == 0 {
            problems.push("indexer.max_limit", "must be at least 1");
        }
    }
}
