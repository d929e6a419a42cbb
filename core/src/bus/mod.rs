//! The bus services meet on: one trait, two implementations.
//!
//! - [`EmbeddedBus`]: in-process, bounded, with backpressure and consumer groups.
//! - [`KafkaBus`]: rdkafka, idempotent producer, consumer groups with offsets stored
//!   only after a message is processed and durable.
//!
//! Both carry bytes; [`EventSubscription`] decodes them into [`Envelope`]s and sends what
//! does not decode to the dead-letter topic, so one bad message never stops a consumer.

mod changelog;
mod embedded;
mod kafka;

pub use changelog::{Changelog, MemoryChangelog, SharedChangelog};
pub use embedded::EmbeddedBus;
pub use kafka::KafkaBus;

use crate::config::{BusConfig, BusKind};
use crate::event::{DeadLetter, Envelope, Event};
use async_trait::async_trait;
use bytes::Bytes;
pub use rdkafka::error::KafkaError;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::watch;

pub type SharedBus = Arc<dyn Bus>;

/// The topics of windsock. Names on the wire are `<topic_prefix><suffix>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    Observations,
    Logs,
    Forecasts,
    Alerts,
    DeadLetters,
}

impl Topic {
    pub const ALL: [Topic; 5] = [
        Topic::Observations,
        Topic::Logs,
        Topic::Forecasts,
        Topic::Alerts,
        Topic::DeadLetters,
    ];

    pub fn suffix(&self) -> &'static str {
        match self {
            Topic::Observations => "observations",
            Topic::Logs => "logs",
            Topic::Forecasts => "forecasts",
            Topic::Alerts => "alerts",
            Topic::DeadLetters => "dead-letters",
        }
    }

    pub fn name(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.suffix())
    }

    pub fn from_name(prefix: &str, name: &str) -> Option<Topic> {
        let suffix = name.strip_prefix(prefix)?;
        Topic::ALL.into_iter().find(|t| t.suffix() == suffix)
    }

    /// The topic an event is published on.
    pub fn of(event: &Event) -> Topic {
        match event {
            Event::Observation(_) => Topic::Observations,
            Event::Log(_) => Topic::Logs,
            Event::Forecast(_) => Topic::Forecasts,
            Event::Alert(_) => Topic::Alerts,
            Event::DeadLetter(_) => Topic::DeadLetters,
        }
    }
}

/// One message as a consumer receives it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub topic: Topic,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the bus is closed")]
    Closed,
    /// A Kafka operation failed; `{:#}` (or any error-chain printer) shows librdkafka's
    /// cause, kept as the source.
    #[error("kafka: {context}")]
    Kafka {
        /// What was being done (`publishing to windsock.observations`).
        context: String,
        #[source]
        source: KafkaError,
    },
    /// A Kafka condition windsock itself detects (no librdkafka error to keep).
    #[error("kafka: {0}")]
    KafkaState(String),
    #[error("{0}")]
    Other(String),
}

impl BusError {
    /// This error and its causes on one line, `a: b: c` as anyhow's `{:#}` prints them: a
    /// log field or a published log event keeps only what `Display` shows, which is not the
    /// cause.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(err) = cause {
            text.push_str(": ");
            text.push_str(&err.to_string());
            cause = err.source();
        }
        text
    }
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes one message. Returns once the bus has it durably (Kafka: acknowledged by
    /// all in-sync replicas) or, on the embedded bus, once it is queued; waits while the
    /// embedded bus is full (backpressure), never drops. On Kafka each awaited call costs a
    /// broker round trip: to send many messages, use [`Bus::publish_batch`].
    async fn publish(&self, topic: Topic, key: &str, payload: Bytes) -> Result<(), BusError>;

    /// Publishes `(key, payload)` messages in order (per key, as `publish` one after the
    /// other would) with all of them in flight at once, and returns once all are durable.
    /// On Kafka this is many times faster than awaiting each `publish`. On error, some of
    /// the messages may have been published: retry the batch (event ids are deterministic,
    /// so consumers drop the duplicates).
    async fn publish_batch(
        &self,
        topic: Topic,
        messages: Vec<(String, Bytes)>,
    ) -> Result<(), BusError> {
        for (key, payload) in messages {
            self.publish(topic, &key, payload).await?;
        }
        Ok(())
    }

    /// Joins consumer group `group` (the configured group prefix is added) on `topics`.
    /// Members of one group share the partitions; each group receives every message.
    async fn subscribe(
        &self,
        topics: &[Topic],
        group: &str,
    ) -> Result<Box<dyn Subscription>, BusError>;

    /// Reads `topic` from its earliest retained message to its end as of this call,
    /// outside any group (nothing is committed); `next` returns `None` at the end.
    async fn replay(&self, topic: Topic) -> Result<Box<dyn Subscription>, BusError>;

    /// Which bus this is.
    fn kind(&self) -> BusKind;

    /// The partition of `topic` a message keyed `key` lands on (the same in every process):
    /// what a member must own (see [`Subscription::assignment`]) to receive that key's
    /// messages. A bus that does not partition answers 0.
    fn partition_of(&self, _topic: Topic, _key: &str) -> i32 {
        0
    }

    /// The offset the next message published to each of `partitions` of `topic` will have
    /// (Kafka's high watermarks), as of this call: a consumer has read a partition up to
    /// this call once it was handed the offset before it. A bus that cannot tell answers
    /// nothing.
    async fn end_offsets(
        &self,
        _topic: Topic,
        _partitions: &[i32],
    ) -> Result<BTreeMap<i32, i64>, BusError> {
        Ok(BTreeMap::new())
    }

    /// The changelog `name` (topic `<topic_prefix>changelog-<name>` on Kafka): a keyed,
    /// compacted log of a service's state with the partitions of the observations topic,
    /// so the state of a key lives on the partition of that key's observations and moves
    /// with it (see [`Changelog`]). Made where missing. A bus without one keeps it in memory.
    async fn changelog(&self, name: &str) -> Result<SharedChangelog, BusError> {
        Ok(Arc::new(MemoryChangelog::new(name, |_| 0)))
    }

    /// Shutdown has begun: from `deadline` on, nothing waits for the broker any more. A
    /// publish still waiting for its acknowledgement (or for room) then fails with
    /// [`BusError::Closed`], as does any publish after it, and a commit waits at most a
    /// moment; so a broker that went away cannot hold the process. Before the deadline the
    /// bus works as usual, so what services publish and commit while stopping gets through.
    fn close_by(&self, _deadline: std::time::Instant) {}

    /// The last step of shutdown, once the services stopped: delivers what is still queued
    /// (until the [`Bus::close_by`] deadline) and reports what could not be delivered or
    /// committed; logs it too.
    async fn shutdown(&self) -> CloseReport {
        CloseReport::default()
    }

    /// Messages published but not yet handed to a consumer, over every group with members,
    /// when the bus knows (the embedded bus); `None` on Kafka, where the broker keeps them.
    fn unread(&self) -> Option<u64> {
        None
    }
}

/// What a shutdown could not finish on the bus (see [`Bus::shutdown`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CloseReport {
    /// Messages still queued for the broker, unacknowledged, when the bus closed.
    pub undelivered: u64,
    /// Publishes that gave up waiting for the broker at the shutdown deadline.
    pub abandoned: u64,
    /// Commits not confirmed by the broker during shutdown (those messages are delivered
    /// again after a restart: duplicates, which event ids make harmless, not losses).
    pub uncommitted: u64,
}

impl CloseReport {
    /// True if nothing was left undone.
    pub fn is_complete(&self) -> bool {
        *self == CloseReport::default()
    }
}

#[async_trait]
pub trait Subscription: Send {
    /// The next message; `None` once the bus is closed (or a replay reached its end).
    async fn next(&mut self) -> Result<Option<Delivery>, BusError>;

    /// Marks a message processed and durable: its offset may now be committed. Call it only
    /// after whatever the message produced is safe (indexed and committed, persisted...).
    fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError>;

    /// Commits what was acked now (it is also committed periodically and on rebalance).
    async fn commit(&mut self) -> Result<(), BusError>;

    /// Messages published but not yet acked by this group, over this member's partitions.
    fn lag(&self) -> Option<i64>;

    /// The partitions this member of its group owns, updated at each rebalance (which happens
    /// while [`Subscription::next`] is being awaited, as the group's protocol runs there). A
    /// subscription outside any group (a replay) owns none.
    fn assignment(&self) -> watch::Receiver<Assignment> {
        watch::channel(Assignment::default()).1
    }
}

/// The partitions a member of a consumer group owns (see [`Subscription::assignment`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Each partition owned, with the number of the rebalance since which this member has
    /// owned it without a break. A partition lost and regained gets a new number: another
    /// member may have owned it meanwhile, so what this member knew of it is stale.
    owned: BTreeMap<(Topic, i32), u64>,
}

/// How an [`Assignment`] changed for one topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssignmentChange {
    /// Partitions owned now and not before, or lost and regained since.
    pub assigned: Vec<i32>,
    /// Partitions owned before and not now, or lost and regained since.
    pub revoked: Vec<i32>,
}

impl AssignmentChange {
    pub fn is_empty(&self) -> bool {
        self.assigned.is_empty() && self.revoked.is_empty()
    }
}

impl Assignment {
    /// The partitions of `topic` owned.
    pub fn partitions(&self, topic: Topic) -> BTreeSet<i32> {
        self.owned
            .keys()
            .filter(|(t, _)| *t == topic)
            .map(|(_, p)| *p)
            .collect()
    }

    pub fn owns(&self, topic: Topic, partition: i32) -> bool {
        self.owned.contains_key(&(topic, partition))
    }

    /// What changed for `topic` since `before`. A partition owned in both but with a break
    /// in between is in both lists: forget what was known of it, then take it afresh.
    pub fn change_since(&self, before: &Assignment, topic: Topic) -> AssignmentChange {
        let of = |a: &Assignment| -> BTreeMap<i32, u64> {
            a.owned
                .iter()
                .filter(|((t, _), _)| *t == topic)
                .map(|((_, p), since)| (*p, *since))
                .collect()
        };
        let (now, then) = (of(self), of(before));
        AssignmentChange {
            assigned: now
                .iter()
                .filter(|(p, since)| then.get(p) != Some(since))
                .map(|(p, _)| *p)
                .collect(),
            revoked: then
                .iter()
                .filter(|(p, since)| now.get(p) != Some(since))
                .map(|(p, _)| *p)
                .collect(),
        }
    }

    /// `partitions` of `topic` are owned from rebalance `rebalance` on (those already owned
    /// keep their number).
    pub(crate) fn take(
        &mut self,
        topic: Topic,
        partitions: impl IntoIterator<Item = i32>,
        rebalance: u64,
    ) -> bool {
        let mut changed = false;
        for partition in partitions {
            self.owned.entry((topic, partition)).or_insert_with(|| {
                changed = true;
                rebalance
            });
        }
        changed
    }

    /// `partition` of `topic` is no longer owned; when it was, since which rebalance.
    pub(crate) fn give_up(&mut self, topic: Topic, partition: i32) -> Option<u64> {
        self.owned.remove(&(topic, partition))
    }

    /// Keeps only the partitions `keep` of `topic`; true if any was given up.
    pub(crate) fn retain(&mut self, topic: Topic, keep: &BTreeSet<i32>) -> bool {
        let before = self.owned.len();
        self.owned
            .retain(|(t, p), _| *t != topic || keep.contains(p));
        self.owned.len() != before
    }
}

/// Connects to the configured bus.
pub async fn connect(config: &BusConfig) -> Result<SharedBus, BusError> {
    Ok(match config.kind {
        BusKind::Embedded => Arc::new(EmbeddedBus::new(config)),
        BusKind::Kafka => Arc::new(KafkaBus::connect(config).await?),
    })
}

/// Publishes an event on its topic, keyed so a region's events stay ordered.
pub async fn publish_event(bus: &dyn Bus, event: Event) -> Result<(), BusError> {
    let topic = Topic::of(&event);
    let key = event.key();
    let envelope = Envelope::new(event);
    bus.publish(topic, &key, Bytes::from(envelope.to_json()))
        .await
}

/// A subscription that yields decoded events and dead-letters what does not decode.
pub struct EventSubscription {
    inner: Box<dyn Subscription>,
    bus: SharedBus,
    group: String,
    /// A message taken off the bus whose dead-lettering was interrupted (the `next` future
    /// dropped, say by a `select!`): finished first on the next call, so `next` is cancel-safe.
    undecodable: Option<(Delivery, String)>,
    /// Where this consumer stands on each partition, for the acks of dead letters.
    partitions: HashMap<(Topic, i32), Standing>,
}

/// What a consumer was handed and has acked on one partition.
///
/// An ack is cumulative (the bus commits the offset after it), so a dead letter acked at once
/// would also commit the deliveries handed out before it that the consumer has not made
/// durable yet (the indexer holds them until its next commit, the forecaster until its next
/// flush), and a crash then would lose them. A dead letter's ack waits instead until
/// everything handed out before it is acked; an ack of anything after it covers it.
#[derive(Debug, Default)]
struct Standing {
    /// The offset of the last delivery handed out or dead-lettered.
    handed: Option<i64>,
    /// The highest offset acked.
    acked: Option<i64>,
    /// Dead letters not acked yet, oldest first, each with the offset handed out before it.
    waiting: VecDeque<(Delivery, Option<i64>)>,
}

impl Standing {
    /// Whether every delivery up to `offset` was acked (`None`: nothing was handed out).
    fn acked_through(&self, offset: Option<i64>) -> bool {
        match (offset, self.acked) {
            (None, _) => true,
            (Some(offset), Some(acked)) => acked >= offset,
            (Some(_), None) => false,
        }
    }
}

impl EventSubscription {
    pub async fn new(bus: SharedBus, topics: &[Topic], group: &str) -> Result<Self, BusError> {
        let inner = bus.subscribe(topics, group).await?;
        // Listed at zero, so rate() and the rules see the group before its first dead letter.
        metrics::counter!("windsock_dead_letters_total", "group" => group.to_string()).increment(0);
        Ok(Self {
            inner,
            bus,
            group: group.to_string(),
            undecodable: None,
            partitions: HashMap::new(),
        })
    }

    /// The next event that decodes; a message that does not is published to the dead-letter
    /// topic with the reason, counted, and skipped. It is acked once every delivery handed
    /// out before it on its partition is (see [`Standing`]).
    ///
    /// Cancel-safe: dropping the future loses nothing (an interrupted dead-lettering is
    /// finished by the next call).
    pub async fn next(&mut self) -> Result<Option<(Delivery, Envelope)>, BusError> {
        loop {
            if let Some((delivery, reason)) = self.undecodable.clone() {
                self.dead_letter(&delivery, reason).await?;
                self.settle(delivery)?;
                self.undecodable = None;
            }
            let Some(delivery) = self.inner.next().await? else {
                return Ok(None);
            };
            match Envelope::from_json(&delivery.payload) {
                Ok(envelope) => {
                    self.standing(&delivery).handed = Some(delivery.offset);
                    return Ok(Some((delivery, envelope)));
                }
                Err(err) => self.undecodable = Some((delivery, err.to_string())),
            }
        }
    }

    /// The next message as it came, undecoded, for a consumer that decodes it on threads of
    /// its own (the indexer, beside building its document). That consumer sends what does not
    /// decode to [`EventSubscription::dead_letter`] and acks every delivery itself, in its
    /// own order; not to be mixed with [`EventSubscription::next`], whose dead letters'
    /// acks wait for the acks of what it handed out.
    pub async fn next_delivery(&mut self) -> Result<Option<Delivery>, BusError> {
        self.inner.next().await
    }

    fn standing(&mut self, delivery: &Delivery) -> &mut Standing {
        self.partitions
            .entry((delivery.topic, delivery.partition))
            .or_default()
    }

    /// Acks a dead-lettered delivery now if everything before it is acked, else later.
    fn settle(&mut self, letter: Delivery) -> Result<(), BusError> {
        let standing = self
            .partitions
            .entry((letter.topic, letter.partition))
            .or_default();
        let before = standing.handed.replace(letter.offset);
        if standing.acked_through(Some(letter.offset)) {
            // Covered by an ack already (this member's state from before a rebalance):
            // acking it again would move the group back.
            return Ok(());
        }
        if standing.acked_through(before) && standing.waiting.is_empty() {
            self.inner.ack(&letter)?;
            standing.acked = Some(letter.offset);
        } else {
            standing.waiting.push_back((letter, before));
        }
        Ok(())
    }

    /// Sends a message this consumer cannot use to the dead-letter topic.
    ///
    /// The returned future borrows nothing from `self`: a `&EventSubscription` held across an
    /// await would make `next()` (and every consumer loop calling it) non-`Send`, because
    /// `dyn Subscription` is not `Sync`.
    pub fn dead_letter(
        &self,
        delivery: &Delivery,
        reason: String,
    ) -> impl std::future::Future<Output = Result<(), BusError>> + Send + 'static {
        tracing::warn!(
            target: "windsock_core::bus",
            topic = delivery.topic.suffix(),
            partition = delivery.partition,
            offset = delivery.offset,
            group = %self.group,
            %reason,
            "message sent to the dead-letter topic"
        );
        metrics::counter!("windsock_dead_letters_total", "group" => self.group.clone())
            .increment(1);
        let letter = DeadLetter {
            at: chrono::Utc::now(),
            topic: delivery.topic.suffix().to_string(),
            partition: delivery.partition,
            offset: delivery.offset,
            key: delivery.key.clone(),
            reason,
            payload: String::from_utf8_lossy(&delivery.payload)
                .chars()
                .take(64 * 1024)
                .collect(),
            group: self.group.clone(),
        };
        let bus = self.bus.clone();
        async move { publish_event(bus.as_ref(), Event::DeadLetter(letter)).await }
    }

    pub fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        self.inner.ack(delivery)?;
        let Some(standing) = self
            .partitions
            .get_mut(&(delivery.topic, delivery.partition))
        else {
            return Ok(());
        };
        standing.acked = Some(
            standing
                .acked
                .map_or(delivery.offset, |a| a.max(delivery.offset)),
        );
        // The dead letters this ack lets through, in order; never one below what is acked
        // (an ack stores its offset as is: acking an older one would move the group back).
        while let Some((letter, before)) = standing.waiting.front() {
            if standing.acked_through(Some(letter.offset)) {
                standing.waiting.pop_front();
            } else if standing.acked_through(*before) {
                self.inner.ack(letter)?;
                standing.acked = Some(letter.offset);
                standing.waiting.pop_front();
            } else {
                break;
            }
        }
        Ok(())
    }

    pub async fn commit(&mut self) -> Result<(), BusError> {
        self.inner.commit().await
    }

    pub fn lag(&self) -> Option<i64> {
        self.inner.lag()
    }

    /// The partitions this member owns (see [`Subscription::assignment`]).
    pub fn assignment(&self) -> watch::Receiver<Assignment> {
        self.inner.assignment()
    }
}

/// A stable partition for a key, the same in every process.
pub(crate) fn partition_for(key: &str, partitions: u32) -> i32 {
    // FNV-1a: tiny, stable across builds and platforms (std's hasher is not guaranteed to be).
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in key.as_bytes() {
        hash ^= *byte as u64;
        hash = hash.wrapping_mul(0x100000001b3);
    }
    (hash % partitions.max(1) as u64) as i32
}

/// A consumer's subscription across the runs of its service. It is made when the service is
/// built, so nothing published after that is missed, and handed to the first run; a run after
/// a failed one (the supervisor restarts it) subscribes again, resuming from the group's
/// committed offsets, so what the failed run had not acked is delivered again.
pub struct RunSubscription {
    bus: SharedBus,
    topics: &'static [Topic],
    group: &'static str,
    first: parking_lot::Mutex<Option<EventSubscription>>,
}

impl RunSubscription {
    pub async fn new(
        bus: SharedBus,
        topics: &'static [Topic],
        group: &'static str,
    ) -> Result<Self, BusError> {
        let first = EventSubscription::new(bus.clone(), topics, group).await?;
        Ok(Self {
            bus,
            topics,
            group,
            first: parking_lot::Mutex::new(Some(first)),
        })
    }

    /// The subscription of the next run: the one made at build time, then a new one each
    /// time. The future owns what it needs, so a run can be spawned from `&self`.
    pub fn next_run(
        &self,
    ) -> impl std::future::Future<Output = Result<EventSubscription, BusError>> + Send + 'static
    {
        let first = self.first.lock().take();
        let (bus, topics, group) = (self.bus.clone(), self.topics, self.group);
        async move {
            match first {
                Some(subscription) => Ok(subscription),
                None => EventSubscription::new(bus, topics, group).await,
            }
        }
    }
}

#[cfg(test)]
mod run_subscription_tests {
    use super::*;
    use crate::event::{Level, LogEvent};

    fn log(message: &str) -> Event {
        Event::Log(LogEvent {
            timestamp: chrono::Utc::now(),
            service: "test".into(),
            level: Level::Info,
            message: message.into(),
            region: None,
            target: None,
            fields: Default::default(),
        })
    }

    #[tokio::test]
    async fn the_first_run_misses_nothing_since_build_and_a_later_run_gets_the_unacked_again() {
        let bus: SharedBus = Arc::new(EmbeddedBus::new(&BusConfig::default()));
        let runs = RunSubscription::new(bus.clone(), &[Topic::Logs], "runs")
            .await
            .unwrap();
        // Published after the service was built, before its first run started.
        publish_event(bus.as_ref(), log("early")).await.unwrap();

        let mut first = runs.next_run().await.unwrap();
        let (_, envelope) = first.next().await.unwrap().unwrap();
        assert!(matches!(&envelope.event, Event::Log(l) if l.message == "early"));
        // The run fails before acking: its subscription is dropped.
        drop(first);

        let mut second = runs.next_run().await.unwrap();
        let (_, envelope) = second.next().await.unwrap().unwrap();
        assert!(
            matches!(&envelope.event, Event::Log(l) if l.message == "early"),
            "what the failed run had not acked is delivered again"
        );
    }
}

#[cfg(test)]
mod assignment_tests {
    use super::*;

    fn owned(partitions: &[(i32, u64)]) -> Assignment {
        let mut assignment = Assignment::default();
        for (partition, since) in partitions {
            assignment.take(Topic::Observations, [*partition], *since);
        }
        assignment.take(Topic::Logs, [9], 1);
        assignment
    }

    #[test]
    fn a_change_names_what_came_what_went_and_what_was_lost_meanwhile() {
        let before = owned(&[(0, 1), (1, 1), (2, 1)]);
        // 0 kept throughout; 1 gone; 2 lost and regained (owned since a later rebalance); 3 new.
        let now = owned(&[(0, 1), (2, 4), (3, 4)]);
        let change = now.change_since(&before, Topic::Observations);
        assert_eq!(change.assigned, [2, 3]);
        assert_eq!(change.revoked, [1, 2]);
        assert!(
            now.change_since(&before, Topic::Logs).is_empty(),
            "per topic"
        );
        assert!(now.change_since(&now, Topic::Observations).is_empty());
        assert_eq!(
            now.partitions(Topic::Observations),
            BTreeSet::from([0, 2, 3])
        );
    }

    #[test]
    fn taking_a_partition_again_keeps_since_when_it_was_owned() {
        let mut assignment = owned(&[(0, 1)]);
        assert!(
            !assignment.take(Topic::Observations, [0], 5),
            "already owned"
        );
        assert_eq!(assignment.give_up(Topic::Observations, 0), Some(1));
        assert!(!assignment.owns(Topic::Observations, 0));
        assert!(assignment.retain(Topic::Logs, &BTreeSet::new()));
        assert_eq!(assignment, Assignment::default());
    }
}
