//! A changelog, as Kafka Streams keeps its state stores: a keyed, compacted log a service
//! writes its state to, one value per key, so that whoever owns a partition next restores
//! that partition's keys from it.
//!
//! A changelog has the partitions of the observations topic and is keyed like it (by region),
//! so the state of a region lives on the partition number of that region's observations: a
//! member of a consumer group restores exactly the keys of the partitions it was assigned.
//! Only the last value of a key matters; a tombstone (no value, or an empty one) deletes it.

use super::BusError;
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;

pub type SharedChangelog = Arc<dyn Changelog>;

#[async_trait]
pub trait Changelog: Send + Sync + 'static {
    /// The changelog's name on the bus.
    fn name(&self) -> &str;

    /// Writes the new value of each key (`None` deletes it), in order, and returns once the
    /// bus has them durably. On error some may have been written: write them again (a value
    /// written twice is the same state).
    async fn put_batch(&self, entries: Vec<(String, Option<Bytes>)>) -> Result<(), BusError>;

    /// Writes one key's new value (`None` deletes it).
    async fn put(&self, key: &str, value: Option<Bytes>) -> Result<(), BusError> {
        self.put_batch(vec![(key.to_string(), value)]).await
    }

    /// The last value of every key on `partitions`, as of this call (what was written before
    /// it returned is in), deleted keys left out; sorted by key.
    async fn restore(&self, partitions: &[i32]) -> Result<Vec<(String, Bytes)>, BusError>;
}

/// A changelog in memory, for a bus that lives in one process (the embedded bus): nothing
/// moves to another process, so it only has to answer like a Kafka one would.
pub struct MemoryChangelog {
    name: String,
    partition_of: Box<dyn Fn(&str) -> i32 + Send + Sync>,
    entries: Mutex<BTreeMap<String, Bytes>>,
}

impl MemoryChangelog {
    /// A changelog whose key lands on partition `partition_of(key)`.
    pub fn new(name: &str, partition_of: impl Fn(&str) -> i32 + Send + Sync + 'static) -> Self {
        Self {
            name: name.to_string(),
            partition_of: Box::new(partition_of),
            entries: Mutex::new(BTreeMap::new()),
        }
    }
}

#[async_trait]
impl Changelog for MemoryChangelog {
    fn name(&self) -> &str {
        &self.name
    }

    async fn put_batch(&self, entries: Vec<(String, Option<Bytes>)>) -> Result<(), BusError> {
        let mut stored = self.entries.lock();
        for (key, value) in entries {
            match value.filter(|v| !v.is_empty()) {
                Some(value) => stored.insert(key, value),
                None => stored.remove(&key),
            };
        }
        Ok(())
    }

    async fn restore(&self, partitions: &[i32]) -> Result<Vec<(String, Bytes)>, BusError> {
        Ok(self
            .entries
            .lock()
            .iter()
            .filter(|(key, _)| partitions.contains(&(self.partition_of)(key)))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }
}
