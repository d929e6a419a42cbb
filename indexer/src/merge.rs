//! When segments are merged: tantivy's log merge policy, held back while the indexer drains a
//! backlog.
//!
//! Each commit writes a few new segments, and merging them costs about a third of the CPU of
//! a fast ingest. While the bus has more waiting than the indexer takes at once (catching up
//! after an outage, a replay, a burst), merging now would rewrite segments that the next
//! commits will want merged again, on the cores the backlog needs. So merges wait until the
//! indexer has caught up (the first commit after that considers them), or until the segment
//! count reaches [`MAX_SEGMENTS_WHILE_BEHIND`], which bounds what searches pay meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tantivy::indexer::{LogMergePolicy, MergeCandidate, MergePolicy};
use tantivy::SegmentMeta;

/// The most segments a backlog may leave unmerged; beyond it merges go on as usual.
pub const MAX_SEGMENTS_WHILE_BEHIND: usize = 64;

/// Segments of more documents than this are not merged further.
pub const MAX_DOCS_PER_SEGMENT: usize = 2_000_000;

/// Whether the indexer is behind the bus; set by the consuming loop, read by the policy.
#[derive(Clone, Debug, Default)]
pub struct Backlog(Arc<AtomicBool>);

impl Backlog {
    pub fn set_behind(&self, behind: bool) {
        self.0.store(behind, Ordering::Relaxed);
    }

    pub fn is_behind(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub struct IndexMergePolicy {
    log: LogMergePolicy,
    backlog: Backlog,
}

impl IndexMergePolicy {
    pub fn new(backlog: Backlog) -> Self {
        let mut log = LogMergePolicy::default();
        // Retention deletes whole time ranges: merge segments once a third of them is gone,
        // so the index stays compact rather than carrying tombstones.
        log.set_del_docs_ratio_before_merge(0.3);
        // Merging 16 segments at a time rather than 8 rewrites each document fewer times, for
        // a few more segments to search.
        log.set_min_num_segments(16);
        // Segments stop growing at 2M documents: a search runs a thread per segment, so a
        // large index of several similar segments uses both cores where one giant segment
        // would leave one idle; and no merge rewrites the whole index.
        log.set_max_docs_before_merge(MAX_DOCS_PER_SEGMENT);
        Self { log, backlog }
    }
}

impl MergePolicy for IndexMergePolicy {
    fn compute_merge_candidates(&self, segments: &[SegmentMeta]) -> Vec<MergeCandidate> {
        if self.backlog.is_behind() && segments.len() < MAX_SEGMENTS_WHILE_BEHIND {
            return Vec::new();
        }
        self.log.compute_merge_candidates(segments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::index::SegmentId;
    use tantivy::Index;

    fn segments_of(count: usize, docs: u32) -> Vec<SegmentMeta> {
        let index = Index::create_in_ram(crate::schema::build_schema());
        (0..count)
            .map(|_| index.new_segment_meta(SegmentId::generate_random(), docs))
            .collect()
    }

    fn segments(count: usize) -> Vec<SegmentMeta> {
        segments_of(count, 10_000)
    }

    #[test]
    fn merges_wait_while_behind_until_the_segment_cap() {
        let backlog = Backlog::default();
        let policy = IndexMergePolicy::new(backlog.clone());
        let some = segments(20);
        assert!(
            !policy.compute_merge_candidates(&some).is_empty(),
            "20 equal segments are merged when the indexer keeps up"
        );
        backlog.set_behind(true);
        assert!(policy.compute_merge_candidates(&some).is_empty());
        let many = segments(MAX_SEGMENTS_WHILE_BEHIND);
        assert!(
            !policy.compute_merge_candidates(&many).is_empty(),
            "at the cap, merges go on even while behind"
        );
        backlog.set_behind(false);
        assert!(!policy.compute_merge_candidates(&some).is_empty());
    }

    #[test]
    fn segments_past_the_size_cap_are_not_merged_again() {
        let policy = IndexMergePolicy::new(Backlog::default());
        let large = segments_of(20, MAX_DOCS_PER_SEGMENT as u32 + 1);
        assert!(policy.compute_merge_candidates(&large).is_empty());
        let at_cap = segments_of(20, MAX_DOCS_PER_SEGMENT as u32 / 20);
        assert!(!policy.compute_merge_candidates(&at_cap).is_empty());
    }
}
