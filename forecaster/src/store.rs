//! Each region's observed temperatures and model ledger, in memory and on disk.
//!
//! One JSON file per region under `<data_dir>/forecaster/`, replaced atomically (written
//! beside, synced, renamed), so a crash leaves either the old or the new file. Observations
//! are kept raw, keyed by (instant, source): a message delivered twice (a replay followed by
//! the group's own delivery, a redelivery after a restart) counts once.

use crate::calibration::Ledger;
use crate::series::{regularize, RegularSeries, HOUR};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const FILE_VERSION: u32 = 1;

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
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
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

#[derive(Serialize, Deserialize)]
struct RegionFile {
    version: u32,
    region: String,
    /// `[observed_at_ms, source, temperature_c]`, oldest first.
    observations: Vec<(i64, String, f64)>,
    ledger: Ledger,
}

/// Every region's state, and which regions changed since the last flush.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    regions: BTreeMap<String, RegionState>,
    dirty: BTreeSet<String>,
    /// Observations older than this many hours before a region's newest are dropped.
    retention_hours: i64,
}

/// Files to write: (region, final path, contents).
pub type PendingWrites = Vec<(String, PathBuf, Vec<u8>)>;

impl Store {
    /// Opens (creating) the directory and loads every region file in it.
    pub fn open(dir: &Path, retention_hours: usize) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let mut regions = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
            let path = entry.map_err(io_error(dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(io_error(&path))?;
            let file: RegionFile =
                serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                    path: path.clone(),
                    source,
                })?;
            let state = RegionState {
                observations: file
                    .observations
                    .into_iter()
                    .map(|(ms, source, v)| ((ms, source), v))
                    .collect(),
                ledger: file.ledger,
            };
            regions.insert(file.region, state);
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            regions,
            dirty: BTreeSet::new(),
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
        // Drop what is older than the retention, measured from the region's newest.
        if let Some(((newest, _), _)) = state.observations.last_key_value() {
            let oldest_kept = newest - self.retention_hours * HOUR * 1000;
            if state
                .observations
                .first_key_value()
                .is_some_and(|((ms, _), _)| *ms < oldest_kept)
            {
                state.observations = state.observations.split_off(&(oldest_kept, String::new()));
            }
        }
        self.dirty.insert(region.to_string());
        true
    }

    /// Replaces a region's ledger after a refit.
    pub fn set_ledger(&mut self, region: &str, ledger: Ledger) {
        if let Some(state) = self.regions.get_mut(region) {
            state.ledger = ledger;
            self.dirty.insert(region.to_string());
        }
    }

    /// Marks regions as changed again (their write failed).
    pub fn mark_unflushed(&mut self, writes: &PendingWrites) {
        self.dirty
            .extend(writes.iter().map(|(name, _, _)| name.clone()));
    }

    pub fn has_unflushed(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Serializes the regions changed since the last call; write them with [`write_all`].
    pub fn take_writes(&mut self) -> PendingWrites {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .filter_map(|name| {
                let state = self.regions.get(&name)?;
                let file = RegionFile {
                    version: FILE_VERSION,
                    region: name.clone(),
                    observations: state
                        .observations
                        .iter()
                        .map(|((ms, source), v)| (*ms, source.clone(), *v))
                        .collect(),
                    ledger: state.ledger.clone(),
                };
                let bytes = serde_json::to_vec(&file).expect("region state always serializes");
                let path = self.dir.join(file_name(&name));
                Some((name, path, bytes))
            })
            .collect()
    }
}

/// Writes each file atomically: to a temporary beside it, synced, then renamed over it.
pub fn write_all(writes: &PendingWrites) -> Result<(), StoreError> {
    use std::io::Write;
    for (_, path, bytes) in writes {
        let tmp = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp).map_err(io_error(&tmp))?;
        file.write_all(bytes).map_err(io_error(&tmp))?;
        file.sync_all().map_err(io_error(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_error(path))?;
    }
    if let Some(dir) = writes.first().and_then(|(_, p, _)| p.parent()) {
        // Make the renames themselves durable.
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// A file name for a region: readable ASCII plus a hash, so `Thiès` and `Thies` differ.
fn file_name(region: &str) -> String {
    let readable: String = region
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    let hash = &windsock_core::event::stable_id(&[region])[..8];
    format!("{readable}-{hash}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary files left: {names:?}");
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
    fn a_failed_write_is_written_again_next_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), 48).unwrap();
        store.add("Fatick", 0, "simulated", 30.0);
        let writes = store.take_writes();
        // A non-empty directory where the file goes makes the rename fail.
        let (_, path, _) = &writes[0];
        std::fs::create_dir_all(path.join("blocker")).unwrap();
        assert!(write_all(&writes).is_err());
        store.mark_unflushed(&writes);
        std::fs::remove_dir_all(path).unwrap();
        let again = store.take_writes();
        assert_eq!(again.len(), 1);
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
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.json"), b"{oops").unwrap();
        let err = Store::open(dir.path(), 48).unwrap_err();
        assert!(err.to_string().contains("x.json"), "{err}");
    }
}
