//! Each region's observed temperatures and model ledger, in memory and on disk.
//!
//! On disk: one SQLite database, `<data_dir>/forecaster/forecaster.db` (WAL,
//! `synchronous = FULL`, like the alerter's store: one fsync a flush, before the bus offsets
//! are acked), with one row per observation and one
//! per region's ledger. A flush writes only what changed since the last one (new
//! observations, changed ledgers, rows past the retention deleted) in one transaction, so
//! its cost follows the batch, not the regions' history. Observations are kept raw, keyed
//! by (region, instant, source): a message delivered twice (a replay followed by the
//! group's own delivery, a redelivery after a restart) counts once.
//!
//! The previous layout (one JSON file per region in the same directory) is imported at
//! open, in one transaction, and its files removed.

use crate::calibration::Ledger;
use crate::series::{regularize, RegularSeries, HOUR};
use parking_lot::Mutex;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const DB_FILE: &str = "forecaster.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS observations (
    region TEXT NOT NULL,
    observed_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (region, observed_ms, source)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledgers (
    region TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
";

/// A changed temperature for an already stored (instant, source) replaces it, as in memory.
const UPSERT_OBSERVATION: &str = "INSERT INTO observations (region, observed_ms, source, value)
     VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (region, observed_ms, source) DO UPDATE SET value = excluded.value";
const UPSERT_LEDGER: &str = "INSERT INTO ledgers (region, body) VALUES (?1, ?2)
     ON CONFLICT (region) DO UPDATE SET body = excluded.body";
const PRUNE: &str = "DELETE FROM observations WHERE region = ?1 AND observed_ms < ?2";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a forecaster state file: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sqlite_error(path: &Path) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// One region's state.
#[derive(Clone, Debug, Default)]
pub struct RegionState {
    /// Temperature by (observed at, in Unix milliseconds; source).
    observations: BTreeMap<(i64, String), f64>,
    pub ledger: Ledger,
}

impl RegionState {
    /// The hourly series (hourly means, short gaps filled, cut at long gaps).
    pub fn hourly(&self) -> RegularSeries {
        regularize(
            self.observations
                .iter()
                .map(|((ms, _), v)| (ms.div_euclid(HOUR * 1000), *v)),
        )
    }

    pub fn observation_count(&self) -> usize {
        self.observations.len()
    }
}

/// A region file of the previous layout, read only to import it.
#[derive(Serialize, Deserialize)]
struct RegionFile {
    version: u32,
    region: String,
    /// `[observed_at_ms, source, temperature_c]`, oldest first.
    observations: Vec<(i64, String, f64)>,
    ledger: Ledger,
}

/// What changed since the last flush.
#[derive(Debug, Default)]
struct Changes {
    /// New or changed observations: (region, observed at ms, source) → temperature.
    observations: BTreeMap<(String, i64, String), f64>,
    /// Regions whose ledger changed.
    ledgers: BTreeSet<String>,
    /// Per region, the oldest instant kept: rows before it are deleted.
    prunes: BTreeMap<String, i64>,
}

/// Every region's state, and what changed since the last flush.
#[derive(Debug)]
pub struct Store {
    db_path: PathBuf,
    db: Arc<Mutex<Connection>>,
    regions: BTreeMap<String, RegionState>,
    changes: Changes,
    /// Observations older than this many hours before a region's newest are dropped.
    retention_hours: i64,
}

/// The rows to write, taken by [`Store::take_writes`]; write them with [`write_all`].
#[derive(Debug)]
pub struct PendingWrites {
    db_path: PathBuf,
    db: Arc<Mutex<Connection>>,
    observations: Vec<((String, i64, String), f64)>,
    /// (region, ledger as JSON).
    ledgers: Vec<(String, String)>,
    prunes: Vec<(String, i64)>,
}

impl PendingWrites {
    pub fn is_empty(&self) -> bool {
        self.observations.is_empty() && self.ledgers.is_empty() && self.prunes.is_empty()
    }
}

impl Store {
    /// Opens (creating) the directory and its database, imports the region files of the
    /// previous layout if any, and loads every region.
    pub fn open(dir: &Path, retention_hours: usize) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let db_path = dir.join(DB_FILE);
        let mut db = Connection::open(&db_path).map_err(sqlite_error(&db_path))?;
        db.pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| db.pragma_update(None, "synchronous", "FULL"))
            .and_then(|()| db.execute_batch(SCHEMA))
            .map_err(sqlite_error(&db_path))?;
        import_region_files(dir, &db_path, &mut db)?;
        let regions = load(&db_path, &db)?;
        Ok(Store {
            db_path,
            db: Arc::new(Mutex::new(db)),
            regions,
            changes: Changes::default(),
            retention_hours: retention_hours as i64,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.regions.values().all(|r| r.observations.is_empty())
    }

    pub fn region(&self, name: &str) -> Option<&RegionState> {
        self.regions.get(name)
    }

    pub fn regions(&self) -> impl Iterator<Item = (&String, &RegionState)> {
        self.regions.iter()
    }

    /// Adds an observation; false if it was already there (same instant and source).
    pub fn add(
        &mut self,
        region: &str,
        observed_at_ms: i64,
        source: &str,
        temperature_c: f64,
    ) -> bool {
        let state = self.regions.entry(region.to_string()).or_default();
        let key = (observed_at_ms, source.to_string());
        if state.observations.get(&key) == Some(&temperature_c) {
            return false;
        }
        state.observations.insert(key, temperature_c);
        self.changes.observations.insert(
            (region.to_string(), observed_at_ms, source.to_string()),
            temperature_c,
        );
        // Drop what is older than the retention, measured from the region's newest.
        if let Some(((newest, _), _)) = state.observations.last_key_value() {
            let oldest_kept = newest - self.retention_hours * HOUR * 1000;
            if state
                .observations
                .first_key_value()
                .is_some_and(|((ms, _), _)| *ms < oldest_kept)
            {
                state.observations = state.observations.split_off(&(oldest_kept, String::new()));
                let prune = self
                    .changes
                    .prunes
                    .entry(region.to_string())
                    .or_insert(oldest_kept);
                *prune = (*prune).max(oldest_kept);
            }
        }
        true
    }

    /// Replaces a region's ledger after a refit.
    pub fn set_ledger(&mut self, region: &str, ledger: Ledger) {
        if let Some(state) = self.regions.get_mut(region) {
            state.ledger = ledger;
            self.changes.ledgers.insert(region.to_string());
        }
    }

    /// Takes back writes that failed, so the next flush writes them again. A row changed
    /// since they were taken keeps its newer value.
    pub fn mark_unflushed(&mut self, writes: &PendingWrites) {
        for (key, value) in &writes.observations {
            self.changes
                .observations
                .entry(key.clone())
                .or_insert(*value);
        }
        // The ledger is serialized again at the next flush: its newest version.
        self.changes
            .ledgers
            .extend(writes.ledgers.iter().map(|(region, _)| region.clone()));
        for (region, oldest_kept) in &writes.prunes {
            let prune = self
                .changes
                .prunes
                .entry(region.clone())
                .or_insert(*oldest_kept);
            *prune = (*prune).max(*oldest_kept);
        }
    }

    pub fn has_unflushed(&self) -> bool {
        let changes = &self.changes;
        !(changes.observations.is_empty()
            && changes.ledgers.is_empty()
            && changes.prunes.is_empty())
    }

    /// The rows changed since the last call; write them with [`write_all`].
    pub fn take_writes(&mut self) -> PendingWrites {
        let changes = std::mem::take(&mut self.changes);
        let ledgers = changes
            .ledgers
            .into_iter()
            .filter_map(|region| {
                let state = self.regions.get(&region)?;
                let body =
                    serde_json::to_string(&state.ledger).expect("a ledger always serializes");
                Some((region, body))
            })
            .collect();
        PendingWrites {
            db_path: self.db_path.clone(),
            db: self.db.clone(),
            observations: changes.observations.into_iter().collect(),
            ledgers,
            prunes: changes.prunes.into_iter().collect(),
        }
    }
}

/// Writes the rows in one transaction (one commit, whatever the number of regions).
pub fn write_all(writes: &PendingWrites) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Ok(());
    }
    let mut db = writes.db.lock();
    let write = |db: &mut Connection| -> rusqlite::Result<()> {
        let tx = db.transaction()?;
        {
            let mut upsert = tx.prepare_cached(UPSERT_OBSERVATION)?;
            for ((region, ms, source), value) in &writes.observations {
                upsert.execute(params![region, ms, source, value])?;
            }
            let mut ledger = tx.prepare_cached(UPSERT_LEDGER)?;
            for (region, body) in &writes.ledgers {
                ledger.execute(params![region, body])?;
            }
            // After the inserts: a row written again after a failure may be past the
            // retention by now.
            let mut prune = tx.prepare_cached(PRUNE)?;
            for (region, oldest_kept) in &writes.prunes {
                prune.execute(params![region, oldest_kept])?;
            }
        }
        tx.commit()
    };
    write(&mut db).map_err(sqlite_error(&writes.db_path))
}

/// Reads every region's rows.
fn load(db_path: &Path, db: &Connection) -> Result<BTreeMap<String, RegionState>, StoreError> {
    let mut regions: BTreeMap<String, RegionState> = BTreeMap::new();
    let read =
        |regions: &mut BTreeMap<String, RegionState>| -> rusqlite::Result<Vec<(String, String)>> {
            let mut rows =
                db.prepare("SELECT region, observed_ms, source, value FROM observations")?;
            let mut rows = rows.query([])?;
            while let Some(row) = rows.next()? {
                let region: String = row.get(0)?;
                regions
                    .entry(region)
                    .or_default()
                    .observations
                    .insert((row.get(1)?, row.get(2)?), row.get(3)?);
            }
            let mut ledgers = db.prepare("SELECT region, body FROM ledgers")?;
            let ledgers = ledgers
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(ledgers)
        };
    let ledgers = read(&mut regions).map_err(sqlite_error(db_path))?;
    for (region, body) in ledgers {
        let ledger = serde_json::from_str(&body).map_err(|source| StoreError::Corrupt {
            path: db_path.to_path_buf(),
            source,
        })?;
        // A ledger without observations (all past the retention) still makes the region known.
        regions.entry(region).or_default().ledger = ledger;
    }
    Ok(regions)
}

/// Imports the region files of the previous layout (one JSON file per region) in one
/// transaction, then removes them. A file that does not parse is an error naming it, and
/// nothing is imported.
fn import_region_files(dir: &Path, db_path: &Path, db: &mut Connection) -> Result<(), StoreError> {
    let mut files = Vec::new();
    let mut leftovers = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.ends_with(".json.tmp") {
            // A write of the previous layout cut short: its file holds the last complete one.
            leftovers.push(path);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(io_error(&path))?;
        let file: RegionFile =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                path: path.clone(),
                source,
            })?;
        files.push((path, file));
    }
    if !files.is_empty() {
        let import = |db: &mut Connection| -> rusqlite::Result<()> {
            let tx = db.transaction()?;
            {
                let mut upsert = tx.prepare_cached(UPSERT_OBSERVATION)?;
                let mut ledger = tx.prepare_cached(UPSERT_LEDGER)?;
                for (_, file) in &files {
                    for (ms, source, value) in &file.observations {
                        upsert.execute(params![file.region, ms, source, value])?;
                    }
                    let body =
                        serde_json::to_string(&file.ledger).expect("a ledger always serializes");
                    ledger.execute(params![file.region, body])?;
                }
            }
            tx.commit()
        };
        import(db).map_err(sqlite_error(db_path))?;
        tracing::info!(
            files = files.len(),
            database = %db_path.display(),
            "imported the forecaster's region files into its database and removed them"
        );
    }
    // Only once the import is committed: a crash before this imports them again, harmlessly.
    for path in files.into_iter().map(|(path, _)| path).chain(leftovers) {
        std::fs::remove_file(&path).map_err(io_error(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibration::PastForecast;

    fn a_ledger(origin: i64) -> Ledger {
        let mut ledger = Ledger::default();
        ledger.record(PastForecast {
            origin,
            model: crate::models::ModelKind::SeasonalNaive,
            points: vec![20.5, 21.0],
        });
        ledger
    }

    #[test]
    fn state_survives_a_reopen_and_duplicates_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), 48).unwrap();
        assert!(store.is_empty());
        assert!(store.add("Thiès", 0, "simulated", 20.0));
        assert!(store.add("Thiès", 1_800_000, "simulated", 22.0));
        assert!(
            !store.add("Thiès", 1_800_000, "simulated", 22.0),
            "a duplicate"
        );
        assert!(
            store.add("Thiès", 1_800_000, "open-meteo", 24.0),
            "another source"
        );
        write_all(&store.take_writes()).unwrap();
        assert!(!store.has_unflushed());

        let reopened = Store::open(dir.path(), 48).unwrap();
        let thies = reopened.region("Thiès").unwrap();
        assert_eq!(thies.observation_count(), 3);
        assert_eq!(thies.hourly().values, vec![22.0]);
    }

    #[test]
    fn observations_past_the_retention_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), 2).unwrap();
        for h in 0..5 {
            store.add("Dakar", h * HOUR * 1000, "simulated", h as f64);
        }
        let series = store.region("Dakar").unwrap().hourly();
        assert_eq!(series.start, 2);
        assert_eq!(series.values, vec![2.0, 3.0, 4.0]);
    }

    #[test]
    fn a_flush_writes_only_the_changes_and_prunes_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), 2).unwrap();
        for h in 0..3 {
            store.add("Dakar", h * HOUR * 1000, "simulated", h as f64);
        }
        store.add("Thiès", 0, "simulated", 1.0);
        write_all(&store.take_writes()).unwrap();
        store.add("Dakar", 3 * HOUR * 1000, "simulated", 3.0);
        let writes = store.take_writes();
        assert_eq!(writes.observations.len(), 1, "only the new row");
        assert_eq!(writes.prunes, vec![("Dakar".to_string(), HOUR * 1000)]);
        write_all(&writes).unwrap();
        assert!(store.take_writes().is_empty());

        let reopened = Store::open(dir.path(), 2).unwrap();
        assert_eq!(
            reopened.region("Dakar").unwrap().hourly().values,
            vec![1.0, 2.0, 3.0]
        );
        assert_eq!(reopened.region("Thiès").unwrap().observation_count(), 1);
    }

    #[test]
    fn a_changed_ledger_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), 48).unwrap();
        store.add("Kaolack", 0, "simulated", 30.0);
        let ledger = a_ledger(7);
        store.set_ledger("Kaolack", ledger.clone());
        write_all(&store.take_writes()).unwrap();
        assert_eq!(
            Store::open(dir.path(), 48)
                .unwrap()
                .region("Kaolack")
                .unwrap()
                .ledger,
            ledger
        );
    }

    #[test]
    fn a_failed_write_is_written_again_next_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), 48).unwrap();
        store.add("Fatick", 0, "simulated", 30.0);
        let writes = store.take_writes();
        // A read-only connection makes the transaction fail, as a full disk would.
        store
            .db
            .lock()
            .pragma_update(None, "query_only", true)
            .unwrap();
        let err = write_all(&writes).unwrap_err();
        assert!(err.to_string().contains(DB_FILE), "{err}");
        store.mark_unflushed(&writes);
        assert!(store.has_unflushed());
        store
            .db
            .lock()
            .pragma_update(None, "query_only", false)
            .unwrap();
        let again = store.take_writes();
        assert_eq!(again.observations.len(), 1);
        write_all(&again).unwrap();
        assert_eq!(
            Store::open(dir.path(), 48)
                .unwrap()
                .region("Fatick")
                .unwrap()
                .observation_count(),
            1
        );
    }

    #[test]
    fn region_files_of_the_previous_layout_are_imported_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = a_ledger(3);
        let file = RegionFile {
            version: 1,
            region: "Thiès".into(),
            observations: vec![
                (0, "simulated".into(), 20.0),
                (1_800_000, "simulated".into(), 22.0),
            ],
            ledger: ledger.clone(),
        };
        std::fs::write(
            dir.path().join("Thi_s-0123abcd.json"),
            serde_json::to_vec(&file).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("Thi_s-0123abcd.json.tmp"), b"{cut sh").unwrap();
        let store = Store::open(dir.path(), 48).unwrap();
        let thies = store.region("Thiès").unwrap();
        assert_eq!(thies.observation_count(), 2);
        assert_eq!(thies.ledger, ledger);
        drop(store);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.contains(".json"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(
            Store::open(dir.path(), 48)
                .unwrap()
                .region("Thiès")
                .unwrap()
                .observation_count(),
            2
        );
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.json"), b"{oops").unwrap();
        let err = Store::open(dir.path(), 48).unwrap_err();
        assert!(err.to_string().contains("x.json"), "{err}");
    }
}
