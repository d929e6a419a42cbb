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
    /// The deepest hit a search reaches: `offset + limit` above it is refused, as
    /// Elasticsearch's `index.max_result_window` (each search keeps `offset + limit` hits in
    /// memory). Beyond it, page by time: `to` set to the last hit's timestamp.
    pub max_result_window: usize,
    /// The longest query (`q`) accepted, in bytes.
    pub max_query_length: usize,
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
            max_result_window: 10_000,
            max_query_length: 4096,
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
        if self.max_result_window < self.max_limit {
            problems.push(
                "indexer.max_result_window",
                format!(
                    "must be at least indexer.max_limit ({}), or a first page of that many hits is refused",
                    self.max_limit
                ),
            );
        }
        // Past about a million hits kept per search, one request holds hundreds of MB.
        if self.max_result_window > 1_000_000 {
            problems.push(
                "indexer.max_result_window",
                "must be at most 1000000 (each search holds offset + limit hits in memory); page by time instead",
            );
        }
        if self.max_query_length == 0 {
            problems.push("indexer.max_query_length", "must be at least 1");
        }
        // The nesting limits keep the parsers' recursion safe at any length; this bounds the
        // work (and the error messages that quote the query) of one request.
        if self.max_query_length > 65_536 {
            problems.push("indexer.max_query_length", "must be at most 65536 bytes");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(config: IndexerConfig) -> Vec<String> {
        let mut problems = Problems::default();
        config.validate(&mut problems);
        problems.0.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn the_search_bounds_are_checked() {
        assert!(problems(IndexerConfig::default()).is_empty());
        // A window smaller than a page would refuse a first page of max_limit hits.
        let small_window = IndexerConfig {
            max_result_window: 999,
            ..Default::default()
        };
        assert_eq!(problems(small_window), ["indexer.max_result_window"]);
        let huge_window = IndexerConfig {
            max_result_window: 2_000_000,
            ..Default::default()
        };
        assert_eq!(problems(huge_window), ["indexer.max_result_window"]);
        for max_query_length in [0, 100_000] {
            let config = IndexerConfig {
                max_query_length,
                ..Default::default()
            };
            assert_eq!(problems(config), ["indexer.max_query_length"]);
        }
    }
}
