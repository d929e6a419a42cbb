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
    /// The most events one `/api/export` streams; a search matching more is cut there, and
    /// the answer says so (`X-Windsock-Export-Truncated`, and a last line in NDJSON).
    pub max_export_events: u64,
    /// Where the UI and `windsock search` reach the search API in distributed mode
    /// (`http://indexer:8080`); unset, they use this process's own HTTP address. Several
    /// replicas are a comma-separated list (`http://indexer-a:8080,http://indexer-b:8080`,
    /// as `WINDSOCK_INDEXER__URL` gives it) or a TOML array: they are tried in order, one
    /// that fails is skipped for a while.
    #[serde(
        default,
        deserialize_with = "url_list::deserialize",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub url: Vec<String>,
    /// This indexer's replica name: each replica consumes every partition into its own
    /// index, in its own consumer group (`indexer-<replica>`). Unset, the group is `indexer`,
    /// which is right for one indexer; indexers sharing a group split the partitions between
    /// them, each indexing only a part.
    pub replica: Option<String>,
}

/// The most replicas `indexer.url` lists.
pub const MAX_INDEXER_URLS: usize = 16;
/// The longest replica name.
pub const MAX_REPLICA_NAME: usize = 64;

/// A list of URLs written as one comma-separated string or as an array of strings.
mod url_list {
    use serde::de::{Deserializer, SeqAccess, Visitor};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<String>, D::Error> {
        struct Urls;
        impl<'de> Visitor<'de> for Urls {
            type Value = Vec<String>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a URL, comma-separated URLs, or an array of URLs")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(split(value))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut urls = Vec::new();
                while let Some(url) = seq.next_element::<String>()? {
                    urls.extend(split(&url));
                }
                Ok(urls)
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(Urls)
            }
        }
        deserializer.deserialize_any(Urls)
    }

    /// The URLs of `value`, each trimmed, with its trailing `/` dropped; blanks are skipped.
    fn split(value: &str) -> Vec<String> {
        value
            .split(',')
            .map(|url| url.trim().trim_end_matches('/'))
            .filter(|url| !url.is_empty())
            .map(str::to_string)
            .collect()
    }
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
            max_export_events: 1_000_000,
            url: Vec::new(),
            replica: None,
        }
    }
}

impl IndexerConfig {
    /// The consumer group of this indexer (without `bus.group_prefix`): `indexer`, or
    /// `indexer-<replica>` for a named replica, so each replica reads every partition.
    pub fn group(&self) -> String {
        match &self.replica {
            Some(replica) => format!("indexer-{replica}"),
            None => "indexer".to_string(),
        }
    }

    pub(super) fn validate(&self, problems: &mut Problems) {
        if self.url.len() > MAX_INDEXER_URLS {
            problems.push(
                "indexer.url",
                format!(
                    "lists {} URLs; at most {MAX_INDEXER_URLS} replicas",
                    self.url.len()
                ),
            );
        }
        for url in self.url.iter().take(MAX_INDEXER_URLS) {
            match url::Url::parse(url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                _ => problems.push(
                    "indexer.url",
                    format!("`{}` is not an http(s) URL", crate::secret::redact_url(url)),
                ),
            }
        }
        if let Some(replica) = &self.replica {
            let valid = !replica.is_empty()
                && replica.len() <= MAX_REPLICA_NAME
                && replica
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
            if !valid {
                problems.push(
                    "indexer.replica",
                    format!(
                        "must be 1 to {MAX_REPLICA_NAME} letters, digits, `-`, `_` or `.` (it names a consumer group)"
                    ),
                );
            }
        }
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
        if self.max_export_events == 0 {
            problems.push("indexer.max_export_events", "must be at least 1");
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

    #[test]
    fn an_export_of_nothing_is_refused() {
        let config = IndexerConfig {
            max_export_events: 0,
            ..Default::default()
        };
        assert_eq!(problems(config), ["indexer.max_export_events"]);
        assert_eq!(IndexerConfig::default().max_export_events, 1_000_000);
    }

    #[test]
    fn replica_urls_and_names_are_checked() {
        let config = IndexerConfig {
            url: vec!["http://a:8080".into(), "ftp://user:pw@b".into()],
            replica: Some("a b".into()),
            ..Default::default()
        };
        assert_eq!(problems(config), ["indexer.url", "indexer.replica"]);
        let too_many = IndexerConfig {
            url: (0..17).map(|i| format!("http://i{i}:8080")).collect(),
            ..Default::default()
        };
        assert_eq!(problems(too_many), ["indexer.url"]);
        let named = IndexerConfig {
            replica: Some("eu-west.1".into()),
            ..Default::default()
        };
        assert_eq!(named.group(), "indexer-eu-west.1");
        assert_eq!(IndexerConfig::default().group(), "indexer");
    }

    #[test]
    fn the_url_may_list_replicas_as_a_comma_separated_string_or_an_array() {
        use crate::config::Config;
        let load = |file: Option<&str>, env: &[(&str, &str)]| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("windsock.toml");
            if let Some(text) = file {
                std::fs::write(&path, text).unwrap();
            }
            let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
            Config::load_with_env(file.map(|_| path.as_path()), env.collect::<Vec<_>>())
        };
        let from_env = load(
            None,
            &[(
                "WINDSOCK_INDEXER__URL",
                "http://indexer-a:8080/, http://indexer-b:8080",
            )],
        )
        .unwrap();
        assert_eq!(
            from_env.indexer.url,
            ["http://indexer-a:8080", "http://indexer-b:8080"]
        );
        let one = load(None, &[("WINDSOCK_INDEXER__URL", "http://indexer:8080")]).unwrap();
        assert_eq!(one.indexer.url, ["http://indexer:8080"]);
        let from_file = load(
            Some("[indexer]\nurl = [\"http://a:1\", \"http://b:2\"]\nreplica = \"a\"\n"),
            &[],
        )
        .unwrap();
        assert_eq!(from_file.indexer.url, ["http://a:1", "http://b:2"]);
        assert_eq!(from_file.indexer.group(), "indexer-a");
        let err = load(Some("[indexer]\nurl = [1, 2]\n"), &[]).unwrap_err();
        assert_eq!(err.problems[0].key, "indexer.url.0", "{err}");
        // `config show` writes what loads again.
        let shown = toml::to_string(&from_file).unwrap();
        let again = load(Some(&shown), &[]).unwrap();
        assert_eq!(again.indexer.url, from_file.indexer.url);
        assert!(!toml::to_string(&Config::default())
            .unwrap()
            .contains("url = []"));
    }
}
