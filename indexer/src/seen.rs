//! Which event ids the index may already hold, so an upsert deletes the earlier copy only
//! when there can be one.
//!
//! Deleting by id costs at every commit: tantivy looks each delete term up in every segment
//! (the new ones and all committed ones). Almost every event is new, so the indexer asks this
//! filter first: a Bloom filter has no false negatives, so an id it has never seen is surely
//! not in the index and needs no delete; a false positive only costs a delete that matches
//! nothing. It is seeded from the index's `id` terms on open, so a duplicate arriving after a
//! restart is still replaced.

use fastbloom::BloomFilter;

/// The ids the first filter is sized for (2 MB); each next one is twice the size of the last.
/// Every insert asks each filter of the chain: starting small made a million ids ask five.
const FIRST_CAPACITY: usize = 1 << 20;

/// The false-positive rate of each filter (each costs ~15 bits an id).
const FALSE_POSITIVES: f64 = 0.001;

/// A Bloom filter that grows: a chain of filters, each twice as large as the one before,
/// so the false-positive rate stays low however many ids arrive.
pub struct SeenIds {
    filters: Vec<BloomFilter>,
    /// Ids the newest filter is sized for, and how many more it has room for.
    capacity: usize,
    room: usize,
}

impl SeenIds {
    /// An empty set sized for about `expected` ids before it first grows.
    pub fn with_capacity(expected: usize) -> Self {
        Self::starting_at(expected.max(FIRST_CAPACITY))
    }

    /// A chain whose first filter is sized for `capacity` ids.
    fn starting_at(capacity: usize) -> Self {
        Self {
            filters: vec![filter(capacity)],
            capacity,
            room: capacity,
        }
    }

    /// Whether `id` may have been inserted (false: it surely was not).
    #[cfg(test)]
    pub fn may_contain(&self, id: &[u8]) -> bool {
        let hash = self.hash(id);
        self.filters.iter().any(|f| f.contains_hash(hash))
    }

    /// Adds `id`; returns whether it may have been there already.
    pub fn insert(&mut self, id: &[u8]) -> bool {
        // Hashed once for the whole chain (every filter has the same seed), and the newest
        // filter is asked and set in one pass: this ran for every event indexed.
        let hash = self.hash(id);
        if self.room == 0 {
            self.capacity *= 2;
            self.filters.push(filter(self.capacity));
            self.room = self.capacity;
        }
        let (newest, older) = self
            .filters
            .split_last_mut()
            .expect("there is always a filter");
        if older.iter().any(|f| f.contains_hash(hash)) {
            return true;
        }
        let was_there = newest.insert_hash(hash);
        if !was_there {
            self.room -= 1;
        }
        was_there
    }

    fn hash(&self, id: &[u8]) -> u64 {
        self.filters[0].source_hash(id)
    }
}

/// One seed for every filter, so an id's hash serves the whole chain. Fixed: ids that
/// collide cost only a delete that matches nothing.
const SEED: u128 = 0x77696e64736f636b5f73656e5f696473;

fn filter(capacity: usize) -> BloomFilter {
    BloomFilter::with_false_pos(FALSE_POSITIVES)
        .seed(&SEED)
        .expected_items(capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inserted_id_is_always_seen_even_after_growing() {
        let mut seen = SeenIds::starting_at(1 << 12);
        let ids: Vec<String> = (0..3 << 12).map(|i| format!("id-{i}")).collect();
        for id in &ids {
            seen.insert(id.as_bytes());
        }
        assert!(seen.filters.len() >= 2, "grew past its first filter");
        assert!(ids.iter().all(|id| seen.may_contain(id.as_bytes())));
        assert!(seen.insert(ids[7].as_bytes()), "a second insert says seen");
    }

    #[test]
    fn ids_never_inserted_are_mostly_unseen() {
        let mut seen = SeenIds::with_capacity(10_000);
        for i in 0..10_000 {
            seen.insert(format!("in-{i}").as_bytes());
        }
        let false_positives = (0..10_000)
            .filter(|i| seen.may_contain(format!("out-{i}").as_bytes()))
            .count();
        assert!(false_positives < 500, "{false_positives} false positives");
    }
}
