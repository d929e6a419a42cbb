//! The in-process bus: Kafka's model (topics, partitions, offsets, consumer groups) in memory.
//!
//! - A topic has `partitions` logs; a key always lands on the same partition, so a
//!   region's events stay ordered.
//! - A consumer group's members share the partitions (assigned round-robin, reassigned when
//!   a member joins or leaves); after a rebalance a member resumes at the group's committed
//!   offset, so an unacked message is delivered again, never lost.
//! - A message stays until every group with members has acked it (so it can be delivered
//!   again after a rebalance). A partition with `capacity` messages some group has not read
//!   yet makes the producer wait: a slow consumer slows the producer, nothing is dropped.
//!   Messages read but not yet acked do not count: each consumer bounds those itself (the
//!   indexer acks at every commit), and counting them would stall the producer for as long
//!   as a consumer batches before committing. A topic nobody subscribes to keeps only its
//!   newest `capacity`.

use super::{
    partition_for, Assignment, Bus, BusError, Delivery, MemoryChangelog, SharedChangelog,
    Subscription, Topic,
};
use crate::config::{BusConfig, BusKind};
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How many messages a consumer takes from a partition per lock, to keep the lock cheap.
const FETCH_BATCH: usize = 256;

#[derive(Clone)]
pub struct EmbeddedBus {
    shared: Arc<Shared>,
}

struct Shared {
    topics: HashMap<Topic, Arc<TopicLog>>,
    capacity: usize,
    group_prefix: String,
    closed: CancellationToken,
    next_member: AtomicU64,
    partitions: u32,
    /// The changelogs by name: one process, so one in-memory log each.
    changelogs: Mutex<HashMap<String, SharedChangelog>>,
}

struct TopicLog {
    topic: Topic,
    state: Mutex<TopicState>,
    /// Signalled when messages arrive or membership changes.
    data: Notify,
    /// Signalled when acked messages are released.
    space: Notify,
}

struct TopicState {
    partitions: Vec<PartitionLog>,
    groups: HashMap<String, GroupState>,
}

struct PartitionLog {
    /// The offset of `messages[0]`.
    base: i64,
    messages: VecDeque<(Option<String>, Bytes)>,
}

impl PartitionLog {
    fn end(&self) -> i64 {
        self.base + self.messages.len() as i64
    }
}

struct GroupState {
    members: BTreeSet<u64>,
    generation: u64,
    /// The next offset to deliver to the group after a rebalance, per partition.
    committed: Vec<i64>,
    /// The next offset the partition's owner will read, per partition (from `committed`
    /// again at each rebalance): what lies beyond it is unread, and counts against capacity.
    delivered: Vec<i64>,
}

impl GroupState {
    /// A membership change: owners start again from the committed offsets.
    fn rebalance(&mut self) {
        self.generation += 1;
        self.delivered.clone_from(&self.committed);
    }
}

impl GroupState {
    fn owner_of(&self, partition: i32) -> Option<u64> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        self.members.iter().nth(partition as usize % n).copied()
    }
}

impl EmbeddedBus {
    pub fn new(config: &BusConfig) -> Self {
        let partitions = config.partitions.max(1) as usize;
        let topics = Topic::ALL
            .into_iter()
            .map(|topic| {
                let log = TopicLog {
                    topic,
                    state: Mutex::new(TopicState {
                        partitions: (0..partitions)
                            .map(|_| PartitionLog {
                                base: 0,
                                messages: VecDeque::new(),
                            })
                            .collect(),
                        groups: HashMap::new(),
                    }),
                    data: Notify::new(),
                    space: Notify::new(),
                };
                (topic, Arc::new(log))
            })
            .collect();
        Self {
            shared: Arc::new(Shared {
                topics,
                capacity: config.capacity.max(1),
                group_prefix: config.group_prefix.clone(),
                closed: CancellationToken::new(),
                next_member: AtomicU64::new(1),
                partitions: partitions as u32,
                changelogs: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Closes the bus: waiting consumers get `None`, publishers get [`BusError::Closed`].
    pub fn close(&self) {
        self.shared.closed.cancel();
        for log in self.shared.topics.values() {
            log.data.notify_waiters();
            log.space.notify_waiters();
        }
    }

    fn log(&self, topic: Topic) -> &Arc<TopicLog> {
        &self.shared.topics[&topic]
    }
}

impl TopicLog {
    /// Drops messages every active group has acked, and wakes producers if any were dropped.
    fn release(&self, state: &mut TopicState, partition: usize) {
        let active: Vec<&GroupState> = state
            .groups
            .values()
            .filter(|g| !g.members.is_empty())
            .collect();
        let log = &mut state.partitions[partition];
        let Some(low) = active.iter().map(|g| g.committed[partition]).min() else {
            return;
        };
        let mut released = false;
        while log.base < low && !log.messages.is_empty() {
            log.messages.pop_front();
            log.base += 1;
            released = true;
        }
        if released {
            self.space.notify_waiters();
        }
    }
}

#[async_trait]
impl Bus for EmbeddedBus {
    async fn publish(&self, topic: Topic, key: &str, payload: Bytes) -> Result<(), BusError> {
        let log = self.log(topic);
        let capacity = self.shared.capacity;
        loop {
            if self.shared.closed.is_cancelled() {
                return Err(BusError::Closed);
            }
            let space = log.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            {
                let mut guard = log.state.lock();
                let TopicState { partitions, groups } = &mut *guard;
                let partition = partition_for(key, partitions.len() as u32) as usize;
                let part = &mut partitions[partition];
                let mut listening = groups.values().filter(|g| !g.members.is_empty()).peekable();
                if listening.peek().is_none() && part.messages.len() >= capacity {
                    // Nobody listens: keep the newest `capacity`, as a retention limit would.
                    part.messages.pop_front();
                    part.base += 1;
                }
                // What the slowest group has yet to read (everything, when nobody listens).
                let unread = listening
                    .map(|g| part.end() - g.delivered[partition].max(part.base))
                    .max()
                    .unwrap_or(part.messages.len() as i64);
                if unread < capacity as i64 {
                    part.messages.push_back((Some(key.to_string()), payload));
                    drop(guard);
                    log.data.notify_waiters();
                    return Ok(());
                }
            }
            tokio::select! {
                _ = &mut space => {}
                _ = self.shared.closed.cancelled() => return Err(BusError::Closed),
            }
        }
    }

    async fn subscribe(
        &self,
        topics: &[Topic],
        group: &str,
    ) -> Result<Box<dyn Subscription>, BusError> {
        if self.shared.closed.is_cancelled() {
            return Err(BusError::Closed);
        }
        let group = format!("{}{group}", self.shared.group_prefix);
        let member = self.shared.next_member.fetch_add(1, Ordering::Relaxed);
        let mut members = Vec::new();
        for topic in topics {
            let log = self.log(*topic).clone();
            {
                let mut state = log.state.lock();
                let partitions = state.partitions.len();
                let earliest: Vec<i64> = state.partitions.iter().map(|p| p.base).collect();
                let g = state
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| GroupState {
                        members: BTreeSet::new(),
                        generation: 0,
                        // A new group starts at the earliest retained message, like Kafka's
                        // `auto.offset.reset=earliest`.
                        committed: earliest.clone(),
                        delivered: earliest,
                    });
                debug_assert_eq!(g.committed.len(), partitions);
                g.members.insert(member);
                g.rebalance();
            }
            log.data.notify_waiters();
            members.push(MemberTopic {
                log,
                generation: 0,
                positions: Vec::new(),
                next_partition: 0,
            });
        }
        Ok(Box::new(EmbeddedSubscription {
            bus: self.clone(),
            group,
            member,
            topics: members,
            buffer: VecDeque::new(),
            next_topic: 0,
            assignment: watch::Sender::new(Assignment::default()),
        }))
    }

    async fn replay(&self, topic: Topic) -> Result<Box<dyn Subscription>, BusError> {
        let log = self.log(topic);
        let state = log.state.lock();
        let mut messages = VecDeque::new();
        for (partition, part) in state.partitions.iter().enumerate() {
            for (i, (key, payload)) in part.messages.iter().enumerate() {
                messages.push_back(Delivery {
                    topic,
                    partition: partition as i32,
                    offset: part.base + i as i64,
                    key: key.clone(),
                    payload: payload.clone(),
                });
            }
        }
        Ok(Box::new(ReplaySubscription { messages }))
    }

    fn kind(&self) -> BusKind {
        BusKind::Embedded
    }

    fn partition_of(&self, _topic: Topic, key: &str) -> i32 {
        partition_for(key, self.shared.partitions)
    }

    async fn end_offsets(
        &self,
        topic: Topic,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, i64>, BusError> {
        let state = self.log(topic).state.lock();
        Ok(partitions
            .iter()
            .filter_map(|p| Some((*p, state.partitions.get(usize::try_from(*p).ok()?)?.end())))
            .collect())
    }

    async fn changelog(&self, name: &str) -> Result<SharedChangelog, BusError> {
        let partitions = self.shared.partitions;
        Ok(self
            .shared
            .changelogs
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(MemoryChangelog::new(name, move |key| {
                    partition_for(key, partitions)
                }))
            })
            .clone())
    }

    fn close_by(&self, deadline: std::time::Instant) {
        // Past the deadline a publisher waiting for room (its consumer stopped) gives up.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let bus = self.clone();
        runtime.spawn(async move {
            tokio::time::sleep_until(deadline.into()).await;
            bus.close();
        });
    }

    fn unread(&self) -> Option<u64> {
        let mut unread = 0;
        for log in self.shared.topics.values() {
            let state = log.state.lock();
            for group in state.groups.values().filter(|g| !g.members.is_empty()) {
                for (partition, part) in state.partitions.iter().enumerate() {
                    let read = group.delivered[partition].max(part.base);
                    unread += (part.end() - read).max(0) as u64;
                }
            }
        }
        Some(unread)
    }
}

struct MemberTopic {
    log: Arc<TopicLog>,
    /// The group generation `positions` were computed for.
    generation: u64,
    /// (partition, next offset to deliver) for the partitions this member owns.
    positions: Vec<(usize, i64)>,
    next_partition: usize,
}

struct EmbeddedSubscription {
    bus: EmbeddedBus,
    group: String,
    member: u64,
    topics: Vec<MemberTopic>,
    buffer: VecDeque<Delivery>,
    next_topic: usize,
    /// The partitions this member owns, as of the last rebalance `fetch` saw.
    assignment: watch::Sender<Assignment>,
}

impl EmbeddedSubscription {
    /// After a rebalance of a topic's group: takes this member's share, resuming each
    /// partition at the committed offset, and reports it in the assignment.
    fn follow_rebalances(&mut self) {
        for mt in &mut self.topics {
            let state = mt.log.state.lock();
            let g = &state.groups[&self.group];
            if g.generation == mt.generation {
                continue;
            }
            mt.generation = g.generation;
            mt.positions = (0..state.partitions.len())
                .filter(|p| g.owner_of(*p as i32) == Some(self.member))
                .map(|p| (p, g.committed[p].max(state.partitions[p].base)))
                .collect();
            let owned: BTreeSet<i32> = mt.positions.iter().map(|(p, _)| *p as i32).collect();
            let (topic, generation) = (mt.log.topic, g.generation);
            drop(state);
            // Buffered messages may belong to partitions this member lost; drop them so
            // the new owner delivers them (it resumes at the committed offset).
            self.buffer.retain(|d| d.topic != topic);
            self.assignment.send_if_modified(|assignment| {
                let lost = assignment.retain(topic, &owned);
                let gained = assignment.take(topic, owned.iter().copied(), generation);
                lost || gained
            });
        }
    }

    /// Moves up to a batch of messages into the buffer; false if none were available.
    fn fetch(&mut self) -> bool {
        self.follow_rebalances();
        let n = self.topics.len();
        for step in 0..n {
            let index = (self.next_topic + step) % n;
            let group = &self.group;
            let mt = &mut self.topics[index];
            let mut state = mt.log.state.lock();
            let owned = mt.positions.len();
            for pstep in 0..owned {
                let slot = (mt.next_partition + pstep) % owned;
                let (partition, position) = mt.positions[slot];
                let log = &state.partitions[partition];
                let position = position.max(log.base);
                if position >= log.end() {
                    continue;
                }
                let start = (position - log.base) as usize;
                let take = (log.messages.len() - start).min(FETCH_BATCH);
                for (i, (key, payload)) in log.messages.range(start..start + take).enumerate() {
                    self.buffer.push_back(Delivery {
                        topic: mt.log.topic,
                        partition: partition as i32,
                        offset: position + i as i64,
                        key: key.clone(),
                        payload: payload.clone(),
                    });
                }
                let read_to = position + take as i64;
                mt.positions[slot].1 = read_to;
                mt.next_partition = (slot + 1) % owned;
                self.next_topic = (index + 1) % n;
                let g = state
                    .groups
                    .get_mut(group)
                    .expect("a member's group exists");
                g.delivered[partition] = g.delivered[partition].max(read_to);
                drop(state);
                // Reading made room (see the module docs).
                mt.log.space.notify_waiters();
                return true;
            }
        }
        false
    }
}

#[async_trait]
impl Subscription for EmbeddedSubscription {
    async fn next(&mut self) -> Result<Option<Delivery>, BusError> {
        loop {
            if self.bus.shared.closed.is_cancelled() {
                return Ok(None);
            }
            if let Some(delivery) = self.buffer.pop_front() {
                return Ok(Some(delivery));
            }
            // Register for wake-ups before looking, so a publish in between is not missed.
            let logs: Vec<Arc<TopicLog>> = self.topics.iter().map(|t| t.log.clone()).collect();
            let mut waits: Vec<_> = logs.iter().map(|l| Box::pin(l.data.notified())).collect();
            for wait in &mut waits {
                wait.as_mut().enable();
            }
            if self.fetch() {
                continue;
            }
            let closed = self.bus.shared.closed.clone();
            tokio::select! {
                _ = futures::future::select_all(waits) => {}
                _ = closed.cancelled() => return Ok(None),
            }
        }
    }

    fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let Some(mt) = self.topics.iter().find(|t| t.log.topic == delivery.topic) else {
            return Err(BusError::Other(format!(
                "ack for topic {} this subscription does not read",
                delivery.topic.suffix()
            )));
        };
        let mut state = mt.log.state.lock();
        let partition = delivery.partition as usize;
        let g = state
            .groups
            .get_mut(&self.group)
            .expect("a member's group exists");
        // Only the partition's current owner moves the group forward; after a rebalance the
        // new owner re-delivers from the committed offset, so nothing acked late is lost.
        if g.owner_of(delivery.partition) == Some(self.member)
            && g.committed[partition] < delivery.offset + 1
        {
            g.committed[partition] = delivery.offset + 1;
            mt.log.release(&mut state, partition);
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), BusError> {
        // Acks commit at once in memory.
        Ok(())
    }

    fn assignment(&self) -> watch::Receiver<Assignment> {
        self.assignment.subscribe()
    }

    fn lag(&self) -> Option<i64> {
        let mut lag = 0;
        for mt in &self.topics {
            let state = mt.log.state.lock();
            let g = &state.groups[&self.group];
            for (p, log) in state.partitions.iter().enumerate() {
                if g.owner_of(p as i32) == Some(self.member) {
                    lag += log.end() - g.committed[p].max(log.base);
                }
            }
        }
        Some(lag)
    }
}

impl Drop for EmbeddedSubscription {
    fn drop(&mut self) {
        for mt in &self.topics {
            let mut state = mt.log.state.lock();
            if let Some(g) = state.groups.get_mut(&self.group) {
                g.members.remove(&self.member);
                g.rebalance();
            }
            // Leaving may release messages only this group held.
            for p in 0..state.partitions.len() {
                mt.log.release(&mut state, p);
            }
            drop(state);
            mt.log.data.notify_waiters();
        }
    }
}

/// A finite read of what a topic retains, outside any group.
struct ReplaySubscription {
    messages: VecDeque<Delivery>,
}

#[async_trait]
impl Subscription for ReplaySubscription {
    async fn next(&mut self) -> Result<Option<Delivery>, BusError> {
        Ok(self.messages.pop_front())
    }

    fn ack(&mut self, _delivery: &Delivery) -> Result<(), BusError> {
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), BusError> {
        Ok(())
    }

    fn lag(&self) -> Option<i64> {
        Some(self.messages.len() as i64)
    }
}
