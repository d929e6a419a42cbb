//! Saved searches: named searches kept server-side, in one JSON file of the indexer's data
//! directory (`saved-searches.json`), rewritten whole on each change through a temporary
//! file renamed over it, so a crash leaves the old list or the new one, never half of one.
//! A replica keeps its own list (in its own data directory).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use utoipa::ToSchema;

/// The file, in the data directory.
pub const FILE: &str = "saved-searches.json";
/// The most saved searches kept.
pub const MAX_SAVED: usize = 1_000;
/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The most columns a saved search lists, and the longest column name.
pub const MAX_COLUMNS: usize = 50;
pub const MAX_COLUMN_CHARS: usize = 200;
/// The longest `from` or `to`, in bytes (an RFC 3339 time or `now-7d`).
pub const MAX_TIME_BYTES: usize = 64;

/// A saved search as sent to be saved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSavedSearch {
    /// What it is called (1 to 100 characters).
    pub name: String,
    /// The query, as `/api/search`'s `q` (bounded as it is; may be empty: every event).
    #[serde(default)]
    pub query: String,
    /// Start of its time range, as `/api/search`'s `from` (`now-24h`, an RFC 3339 time).
    #[serde(default)]
    pub from: Option<String>,
    /// End of its time range, as `/api/search`'s `to`.
    #[serde(default)]
    pub to: Option<String>,
    /// The columns the search page shows (`region`, `fields.status`, ...), in order.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
}

/// A saved search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SavedSearch {
    /// Its id, given when it was saved.
    pub id: String,
    pub name: String,
    pub query: String,
    #[schema(required = true)]
    pub from: Option<String>,
    #[schema(required = true)]
    pub to: Option<String>,
    #[schema(required = true)]
    pub columns: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    #[error("{0}")]
    Invalid(String),
    #[error("there are already {MAX_SAVED} saved searches, the most kept; delete one first")]
    Full,
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The saved searches of a data directory. Every change reads the file, changes the list and
/// replaces the file under one lock (one for the process: the routes open the list per
/// request), so concurrent requests do not lose each other's changes.
pub struct SavedSearches {
    path: PathBuf,
}

static LOCK: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

impl SavedSearches {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(FILE),
        }
    }

    /// Every saved search, oldest first.
    pub fn list(&self) -> Result<Vec<SavedSearch>, SavedError> {
        let _held = LOCK.lock();
        self.read()
    }

    /// Checks and saves `new`, giving it an id and `created_at` = `now`.
    pub fn add(
        &self,
        new: NewSavedSearch,
        max_query_length: usize,
        now: DateTime<Utc>,
    ) -> Result<SavedSearch, SavedError> {
        let new = check(new, max_query_length)?;
        let _held = LOCK.lock();
        let mut all = self.read()?;
        if all.len() >= MAX_SAVED {
            return Err(SavedError::Full);
        }
        // The hash is seeded anew each time: another try never gives the same id.
        let id = std::iter::repeat_with(|| new_id(now, &new.name, all.len()))
            .find(|id| all.iter().all(|s| s.id != *id))
            .unwrap_or_default();
        let saved = SavedSearch {
            id,
            name: new.name,
            query: new.query,
            from: new.from,
            to: new.to,
            columns: new.columns,
            created_at: now,
        };
        all.push(saved.clone());
        self.write(&all)?;
        Ok(saved)
    }

    /// Deletes the saved search `id`; false when there is none.
    pub fn delete(&self, id: &str) -> Result<bool, SavedError> {
        let _held = LOCK.lock();
        let mut all = self.read()?;
        let before = all.len();
        all.retain(|s| s.id != id);
        if all.len() == before {
            return Ok(false);
        }
        self.write(&all)?;
        Ok(true)
    }

    fn io(&self, source: std::io::Error) -> SavedError {
        SavedError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn read(&self) -> Result<Vec<SavedSearch>, SavedError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| self.io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(self.io(e)),
        }
    }

    fn write(&self, all: &[SavedSearch]) -> Result<(), SavedError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| self.io(e))?;
        serde_json::to_writer_pretty(&mut file, all)
            .map_err(|e| self.io(std::io::Error::other(e)))?;
        file.as_file().sync_all().map_err(|e| self.io(e))?;
        file.persist(&self.path).map_err(|e| self.io(e.error))?;
        Ok(())
    }
}

/// An id unique in practice: the time in microseconds and a hash of the name and position.
fn new_id(now: DateTime<Utc>, name: &str, position: usize) -> String {
    use std::hash::BuildHasher;
    let hash = std::collections::hash_map::RandomState::new().hash_one((name, position));
    format!("{:x}-{:04x}", now.timestamp_micros(), hash & 0xffff)
}

/// `new`, trimmed, or every problem it has in one message.
fn check(mut new: NewSavedSearch, max_query_length: usize) -> Result<NewSavedSearch, SavedError> {
    let mut problems = Vec::new();
    new.name = new.name.trim().to_string();
    let chars = new.name.chars().count();
    if chars == 0 {
        problems.push("`name` must not be empty".to_string());
    } else if chars > MAX_NAME_CHARS {
        problems.push(format!(
            "`name` is {chars} characters long; the limit is {MAX_NAME_CHARS}"
        ));
    }
    if let Err(e) = crate::query::check_limits(&new.query, max_query_length) {
        problems.push(format!("`query`: {}", e.message));
    }
    for (name, value) in [("from", &new.from), ("to", &new.to)] {
        if let Some(value) = value {
            if value.len() > MAX_TIME_BYTES {
                problems.push(format!("`{name}` is longer than {MAX_TIME_BYTES} bytes"));
            } else if let Err(e) = crate::timespec::parse_time(value, Utc::now()) {
                problems.push(format!("`{name}`: {e}"));
            }
        }
    }
    if let Some(columns) = &new.columns {
        if columns.len() > MAX_COLUMNS {
            problems.push(format!(
                "`columns` lists {}; at most {MAX_COLUMNS}",
                columns.len()
            ));
        }
        if columns
            .iter()
            .any(|c| c.is_empty() || c.chars().count() > MAX_COLUMN_CHARS)
        {
            problems.push(format!(
                "every column must be 1 to {MAX_COLUMN_CHARS} characters"
            ));
        }
    }
    if problems.is_empty() {
        Ok(new)
    } else {
        Err(SavedError::Invalid(problems.join("; ")))
    }
}
