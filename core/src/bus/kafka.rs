//! The Kafka bus (rdkafka on a bundled librdkafka).
//!
//! - One idempotent producer (`acks=all`) per bus; a message is keyed by its region, so a
//!   region's events land on one partition, in order. `publish` returns once the broker acked.
//! - One consumer per subscription, in group `<group_prefix><group>`. Offsets are *stored*
//!   only on [`Subscription::ack`] (`enable.auto.offset.store=false`) and committed
//!   periodically, on [`Subscription::commit`], on partition revoke and on close, so the group
//!   never moves past a message that was not processed.
//! - A replay is a consumer outside any group's membership (it assigns partitions itself and
//!   never commits) reading every partition from the beginning up to the high watermarks
//!   taken when it starts.
//! - `publish` awaits the broker's ack, so one awaited `publish` at a time is bound by the
//!   round trip (hundreds per second); `publish_batch` keeps many in flight, in order.
//! - A subscription's members are assigned partitions by the range assignor, so a member owns
//!   the same partition numbers of every topic it reads (they all have the same partition
//!   count and keys), and [`Subscription::assignment`] follows the rebalances.
//! - A changelog (see [`super::Changelog`]) is topic `<topic_prefix>changelog-<name>`,
//!   compacted, with as many partitions as the observations topic, written by a producer
//!   of its own; restoring reads the requested partitions to their high watermarks.
//! - Shutdown is bounded ([`Bus::close_by`]): past its deadline publishes and commits stop
//!   waiting for a broker that may be gone, and [`Bus::shutdown`] reports what was left undone.

use super::{
    Assignment, Bus, BusError, Changelog, CloseReport, Delivery, SharedChangelog, Subscription,
    Topic,
};
use crate::config::{BusConfig, BusKind};
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::RwLock;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a produced message may wait for the broker (through retries and outages)
/// before `publish` reports it failed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(300);

/// Timeout of metadata and watermark requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long dropping a subscription waits for its consumer to close (see its `Drop`).
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// Numbers replays, whose group ids must not collide.
static REPLAYS: AtomicU64 = AtomicU64::new(0);

/// How many times a publish starts over on a fresh producer after a fatal producer error.
const FATAL_RETRIES: usize = 3;

/// How long a commit or the final flush may still take once the shutdown deadline passed:
/// long enough for a broker that is there to answer, short enough not to matter if it is gone.
const PAST_DEADLINE: Duration = Duration::from_millis(500);

/// How long dropping a bus that was never closed waits for its queued messages.
const DROP_FLUSH: Duration = Duration::from_secs(5);

pub struct KafkaBus {
    config: BusConfig,
    /// Replaced when librdkafka declares it fatally failed (see [`KafkaBus::renew_if_fatal`]).
    producer: RwLock<Arc<FutureProducer>>,
    closing: Arc<Closing>,
    /// The partition count of each of windsock's topics, by name, as the cluster has them.
    partitions: RwLock<HashMap<String, i32>>,
}

/// The shutdown deadline (see [`Bus::close_by`]), shared by the bus and its subscriptions,
/// and what was given up on because of it.
struct Closing {
    deadline: tokio::sync::watch::Sender<Option<Instant>>,
    abandoned: AtomicU64,
    uncommitted: AtomicU64,
    /// [`Bus::shutdown`] ran: its flush replaces the one on drop.
    closed: AtomicBool,
}

impl Closing {
    fn new() -> Self {
        Self {
            deadline: tokio::sync::watch::Sender::new(None),
            abandoned: AtomicU64::new(0),
            uncommitted: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        *self.deadline.borrow()
    }

    fn passed(&self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() >= d)
    }

    /// Completes at the deadline; never, while none is set.
    async fn reached(&self) {
        let mut deadline = self.deadline.subscribe();
        loop {
            let at = *deadline.borrow_and_update();
            if let Some(at) = at {
                tokio::time::sleep_until(at.into()).await;
                return;
            }
            if deadline.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// How long to wait for the broker: `usual`, or during shutdown what is left until the
    /// deadline (at least [`PAST_DEADLINE`]).
    fn wait(&self, usual: Duration) -> Duration {
        match self.deadline() {
            None => usual,
            Some(at) => at
                .saturating_duration_since(Instant::now())
                .max(PAST_DEADLINE)
                .min(usual),
        }
    }

    fn abandon(&self) -> BusError {
        self.abandoned.fetch_add(1, Ordering::Relaxed);
        BusError::Closed
    }
}

impl KafkaBus {
    /// Connects to the configured brokers and creates windsock's topics where missing.
    pub async fn connect(config: &BusConfig) -> Result<Self, BusError> {
        let bus = Self {
            config: config.clone(),
            producer: RwLock::new(Arc::new(new_producer(config)?)),
            closing: Arc::new(Closing::new()),
            partitions: RwLock::new(HashMap::new()),
        };
        bus.create_topics().await?;
        Ok(bus)
    }

    /// Creates the topics the cluster does not have yet (only those: a cluster whose topics
    /// are provisioned beforehand need not allow creating any).
    async fn create_topics(&self) -> Result<(), BusError> {
        let producer = self.producer();
        let metadata = tokio::task::spawn_blocking(move || {
            producer.client().fetch_metadata(None, REQUEST_TIMEOUT)
        })
        .await
        .map_err(|e| BusError::Other(format!("metadata request panicked: {e}")))?
        .map_err(kafka("fetching the cluster's metadata"))?;
        let mut missing = Vec::new();
        for name in Topic::ALL.iter().map(|t| self.topic_name(*t)) {
            match metadata.topics().iter().find(|t| t.name() == name) {
                Some(found) if !found.partitions().is_empty() => {
                    self.partitions
                        .write()
                        .insert(name, found.partitions().len() as i32);
                }
                _ => missing.push(name),
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let new_topics: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|name| {
                NewTopic::new(
                    name,
                    self.config.partitions as i32,
                    TopicReplication::Fixed(self.config.replication_factor as i32),
                )
            })
            .collect();
        self.create(&new_topics).await?;
        for name in missing {
            self.partitions
                .write()
                .insert(name, self.config.partitions as i32);
        }
        Ok(())
    }

    /// Creates `topics`; one that exists already is no error.
    async fn create(&self, topics: &[NewTopic<'_>]) -> Result<(), BusError> {
        let admin: AdminClient<DefaultClientContext> = client_config(&self.config)
            .create()
            .map_err(kafka("creating an admin client"))?;
        let options = AdminOptions::new()
            .operation_timeout(Some(REQUEST_TIMEOUT))
            .request_timeout(Some(REQUEST_TIMEOUT));
        let results = admin
            .create_topics(topics, &options)
            .await
            .map_err(kafka("creating topics"))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(kafka(format!("creating topic {name}"))(
                        KafkaError::AdminOp(code),
                    ))
                }
            }
        }
        Ok(())
    }

    /// The partition count of a topic, from the cluster's metadata (blocking: call it off
    /// the async workers); `None` if the topic does not exist.
    fn partition_count(config: &BusConfig, name: &str) -> Result<Option<i32>, BusError> {
        let consumer: BaseConsumer = client_config(config)
            .create()
            .map_err(kafka("creating a metadata client"))?;
        let metadata = consumer
            .fetch_metadata(Some(name), REQUEST_TIMEOUT)
            .map_err(kafka(format!("fetching the metadata of {name}")))?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == name && t.error().is_none())
            .map(|t| t.partitions().len() as i32)
            .filter(|n| *n > 0))
    }

    fn topic_name(&self, topic: Topic) -> String {
        topic.name(&self.config.topic_prefix)
    }

    fn producer(&self) -> Arc<FutureProducer> {
        self.producer.read().clone()
    }

    /// An idempotent producer stops for good after a fatal error (the broker lost or
    /// rejected its sequence state): start a fresh one in its place. True if it was fatal.
    fn renew_if_fatal(&self, failed: &Arc<FutureProducer>) -> bool {
        let Some((code, reason)) = failed.client().fatal_error() else {
            return false;
        };
        let mut current = self.producer.write();
        if Arc::ptr_eq(&current, failed) {
            tracing::warn!(
                target: "windsock_core::bus",
                %code,
                %reason,
                "the Kafka producer failed fatally; starting a new one and publishing again"
            );
            match new_producer(&self.config) {
                Ok(fresh) => *current = Arc::new(fresh),
                Err(err) => tracing::error!(
                    target: "windsock_core::bus",
                    err = %err.chain(),
                    "no new Kafka producer"
                ),
            }
        }
        true
    }

    /// Publishes `messages` in order with all of them in flight, starting over (from the
    /// first unconfirmed message) on a fresh producer if the producer fails fatally.
    async fn publish_all(
        &self,
        topic: Topic,
        messages: &[(&str, Option<&[u8]>)],
    ) -> Result<(), BusError> {
        let name = self.topic_name(topic);
        let mut confirmed = 0;
        let mut attempt = 0;
        if self.closing.passed() {
            return Err(self.closing.abandon());
        }
        loop {
            let producer = self.producer();
            // A message given up on here stays queued in librdkafka: `shutdown` flushes it
            // if the broker is back, and counts it if not.
            let sent = tokio::select! {
                sent = send_in_order(&producer, &name, &messages[confirmed..]) => sent,
                _ = self.closing.reached() => return Err(self.closing.abandon()),
            };
            match sent {
                Ok(()) => return Ok(()),
                Err((sent, err)) => {
                    confirmed += sent;
                    attempt += 1;
                    if attempt > FATAL_RETRIES || !self.renew_if_fatal(&producer) {
                        return Err(err);
                    }
                }
            }
        }
    }
}

/// Sends `messages` with all of them in flight, then awaits every ack in order. On failure,
/// says how many leading messages were acked. (Messages after a failed one may also have
/// landed: a retry can duplicate, never lose; event ids make duplicates harmless.)
async fn send_in_order(
    producer: &FutureProducer,
    topic: &str,
    messages: &[(&str, Option<&[u8]>)],
) -> Result<(), (usize, BusError)> {
    let mut in_flight = VecDeque::with_capacity(messages.len());
    let mut acked = 0;
    for (key, payload) in messages {
        loop {
            let mut record = FutureRecord::<str, [u8]>::to(topic).key(*key);
            if let Some(payload) = payload {
                record = record.payload(*payload);
            }
            match producer.send_result(record) {
                Ok(delivery) => {
                    in_flight.push_back(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // Make room by waiting for our oldest message in flight, or for
                    // librdkafka to drain what other callers queued.
                    match in_flight.pop_front() {
                        Some(oldest) => {
                            delivered(oldest, topic).await.map_err(|e| (acked, e))?;
                            acked += 1;
                        }
                        None => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
                Err((err, _)) => return Err((acked, kafka(format!("publishing to {topic}"))(err))),
            }
        }
    }
    for delivery in in_flight {
        delivered(delivery, topic).await.map_err(|e| (acked, e))?;
        acked += 1;
    }
    Ok(())
}

/// The idempotent producer every publish goes through.
fn new_producer(config: &BusConfig) -> Result<FutureProducer, BusError> {
    client_config(config)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set(
            "delivery.timeout.ms",
            DELIVERY_TIMEOUT.as_millis().to_string(),
        )
        // The Java client's partitioner: a key maps to the same partition from any client.
        .set("partitioner", "murmur2_random")
        // Batches still form under load; a lone awaited `publish` waits 1 ms, not 5.
        .set("linger.ms", "1")
        .create()
        .map_err(kafka("creating the producer"))
}

/// Waits for a message's acknowledgement.
async fn delivered(delivery: DeliveryFuture, topic: &str) -> Result<(), BusError> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((err, _))) => Err(kafka(format!("publishing to {topic}"))(err)),
        Err(_) => Err(BusError::Closed),
    }
}

#[async_trait]
impl Bus for KafkaBus {
    async fn publish(&self, topic: Topic, key: &str, payload: Bytes) -> Result<(), BusError> {
        self.publish_all(topic, &[(key, Some(&payload))]).await
    }

    async fn publish_batch(
        &self,
        topic: Topic,
        messages: Vec<(String, Bytes)>,
    ) -> Result<(), BusError> {
        let messages: Vec<(&str, Option<&[u8]>)> = messages
            .iter()
            .map(|(key, payload)| (key.as_str(), Some(payload.as_ref())))
            .collect();
        self.publish_all(topic, &messages).await
    }

    async fn subscribe(
        &self,
        topics: &[Topic],
        group: &str,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let context = GroupContext::new(&self.config.topic_prefix);
        let lag = context.lag.clone();
        let group = format!("{}{group}", self.config.group_prefix);
        let consumer: StreamConsumer<GroupContext> = client_config(&self.config)
            .set("group.id", &group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .set("statistics.interval.ms", "1000")
            // Eager and co-partitioned: a member owns the same partition numbers of every
            // topic it reads, so a region's observations and forecasts go to one member.
            .set("partition.assignment.strategy", "range")
            .create_with_context(context)
            .map_err(kafka(format!("creating a consumer in group {group}")))?;
        let names: Vec<String> = topics.iter().map(|t| self.topic_name(*t)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        consumer.subscribe(&names).map_err(kafka(format!(
            "subscribing group {group} to {}",
            names.join(", ")
        )))?;
        Ok(Box::new(GroupSubscription {
            consumer: Some(Arc::new(consumer)),
            topic_prefix: self.config.topic_prefix.clone(),
            lag,
            closing: self.closing.clone(),
        }))
    }

    async fn replay(&self, topic: Topic) -> Result<Box<dyn Subscription>, BusError> {
        let name = self.topic_name(topic);
        // librdkafka needs a group to assign partitions; this one never joins nor commits.
        let group = format!(
            "{}replay-{}-{}",
            self.config.group_prefix,
            std::process::id(),
            REPLAYS.fetch_add(1, Ordering::Relaxed)
        );
        let consumer: StreamConsumer = client_config(&self.config)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .create()
            .map_err(kafka(format!("creating a consumer to replay {name}")))?;
        // Metadata and watermarks are blocking requests: keep them off the async workers.
        let (consumer, ends) = tokio::task::spawn_blocking(move || {
            let ends = high_watermarks(&consumer, &name)?;
            let mut assignment = TopicPartitionList::new();
            for partition in ends.keys() {
                assignment
                    .add_partition_offset(&name, *partition, Offset::Beginning)
                    .map_err(kafka(format!("assigning {name}/{partition} to a replay")))?;
            }
            consumer
                .assign(&assignment)
                .map_err(kafka(format!("assigning {name} to a replay")))?;
            Ok::<_, BusError>((consumer, ends))
        })
        .await
        .map_err(|e| BusError::Other(format!("replay setup panicked: {e}")))??;
        let pending = ends
            .into_iter()
            .filter(|(_, (low, high))| high > low)
            .collect();
        Ok(Box::new(ReplaySubscription {
            consumer,
            topic,
            pending,
        }))
    }

    fn kind(&self) -> BusKind {
        BusKind::Kafka
    }

    fn partition_of(&self, topic: Topic, key: &str) -> i32 {
        let count = self
            .partitions
            .read()
            .get(&self.topic_name(topic))
            .copied()
            .unwrap_or(self.config.partitions as i32);
        murmur2_partition(key, count)
    }

    async fn end_offsets(
        &self,
        topic: Topic,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, i64>, BusError> {
        let name = self.topic_name(topic);
        let config = self.config.clone();
        let partitions = partitions.to_vec();
        // Watermark requests block: off the async workers.
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = client_config(&config)
                .create()
                .map_err(kafka("creating a watermark client"))?;
            partitions
                .into_iter()
                .map(|p| {
                    let (_, high) = consumer
                        .fetch_watermarks(&name, p, REQUEST_TIMEOUT)
                        .map_err(kafka(format!("fetching the watermarks of {name}/{p}")))?;
                    Ok((p, high))
                })
                .collect()
        })
        .await
        .map_err(|e| BusError::Other(format!("watermark request panicked: {e}")))?
    }

    async fn changelog(&self, name: &str) -> Result<SharedChangelog, BusError> {
        let topic = format!("{}changelog-{name}", self.config.topic_prefix);
        let partitions = self
            .partitions
            .read()
            .get(&self.topic_name(Topic::Observations))
            .copied()
            .unwrap_or(self.config.partitions as i32);
        let config = self.config.clone();
        let lookup = topic.clone();
        let existing = tokio::task::spawn_blocking(move || Self::partition_count(&config, &lookup))
            .await
            .map_err(|e| BusError::Other(format!("metadata request panicked: {e}")))??;
        match existing {
            Some(count) if count != partitions => {
                return Err(BusError::KafkaState(format!(
                    "changelog topic {topic} has {count} partitions and the observations topic \
                     {partitions}: a region's state would not live on its partition (recreate \
                     {topic} with {partitions})"
                )))
            }
            Some(_) => {}
            None => {
                let replication = || TopicReplication::Fixed(self.config.replication_factor as i32);
                let compacted = NewTopic::new(&topic, partitions, replication())
                    .set("cleanup.policy", "compact");
                if let Err(err) = self.create(&[compacted]).await {
                    // Restoring keeps the last value per key, so an uncompacted changelog
                    // only grows; a broker that refuses the setting still gets the topic.
                    tracing::warn!(
                        target: "windsock_core::bus",
                        err = %err.chain(),
                        topic,
                        "could not create the changelog compacted; creating it without cleanup.policy"
                    );
                    self.create(&[NewTopic::new(&topic, partitions, replication())])
                        .await?;
                }
            }
        }
        Ok(Arc::new(KafkaChangelog {
            config: self.config.clone(),
            producer: new_producer(&self.config)?,
            topic,
            closing: self.closing.clone(),
        }))
    }

    fn close_by(&self, deadline: Instant) {
        self.closing.deadline.send_replace(Some(deadline));
    }

    async fn shutdown(&self) -> CloseReport {
        self.closing.closed.store(true, Ordering::Relaxed);
        let producer = self.producer();
        let wait = self.closing.wait(DROP_FLUSH);
        // On a thread of its own: a flush blocks, and must not hold up a runtime worker.
        let flushed = detached("windsock-kafka-flush", move || {
            let _ = producer.flush(wait);
            producer.in_flight_count()
        });
        let queued = match tokio::time::timeout(wait + PAST_DEADLINE, flushed).await {
            Ok(Ok(queued)) => queued.max(0) as u64,
            _ => self.producer().in_flight_count().max(0) as u64,
        };
        let report = CloseReport {
            undelivered: queued,
            abandoned: self.closing.abandoned.load(Ordering::Relaxed),
            uncommitted: self.closing.uncommitted.load(Ordering::Relaxed),
        };
        if !report.is_complete() {
            tracing::warn!(
                target: "windsock_core::bus",
                undelivered = report.undelivered,
                abandoned_publishes = report.abandoned,
                unconfirmed_commits = report.uncommitted,
                "the Kafka bus closed with work undone (is the broker down?): undelivered \
                 messages are lost; what was not committed is delivered again on restart"
            );
        }
        report
    }
}

impl Drop for KafkaBus {
    fn drop(&mut self) {
        // Whatever was accepted gets a last chance to reach the broker; bounded so a dead
        // broker cannot hang shutdown. After `shutdown`, that was done already.
        if !self.closing.closed.load(Ordering::Relaxed) {
            let _ = self.producer().flush(DROP_FLUSH);
        }
    }
}

/// The partition librdkafka's `murmur2_random` partitioner (the Java client's) gives `key`
/// among `partitions`: the one it publishes to.
fn murmur2_partition(key: &str, partitions: i32) -> i32 {
    if partitions <= 1 {
        return 0;
    }
    // SAFETY: librdkafka's own partitioner function (so the answer cannot drift from where
    // the producer puts the key) reads `keylen` bytes of `key` and nothing else: it never
    // touches the topic or the opaque pointers, which may be null.
    unsafe {
        rdkafka::bindings::rd_kafka_msg_partitioner_murmur2(
            std::ptr::null(),
            key.as_ptr().cast(),
            key.len(),
            partitions,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    }
}

/// A changelog on a compacted topic (see [`Bus::changelog`]).
struct KafkaChangelog {
    config: BusConfig,
    producer: FutureProducer,
    topic: String,
    closing: Arc<Closing>,
}

#[async_trait]
impl Changelog for KafkaChangelog {
    fn name(&self) -> &str {
        &self.topic
    }

    async fn put_batch(&self, entries: Vec<(String, Option<Bytes>)>) -> Result<(), BusError> {
        if self.closing.passed() {
            return Err(self.closing.abandon());
        }
        let messages: Vec<(&str, Option<&[u8]>)> = entries
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_deref().filter(|v| !v.is_empty())))
            .collect();
        tokio::select! {
            sent = send_in_order(&self.producer, &self.topic, &messages) => sent.map_err(|(_, err)| err),
            _ = self.closing.reached() => Err(self.closing.abandon()),
        }
    }

    async fn restore(&self, partitions: &[i32]) -> Result<Vec<(String, Bytes)>, BusError> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let topic = self.topic.clone();
        // librdkafka needs a group to assign partitions; this one never joins nor commits.
        let group = format!(
            "{}restore-{}-{}",
            self.config.group_prefix,
            std::process::id(),
            REPLAYS.fetch_add(1, Ordering::Relaxed)
        );
        let consumer: StreamConsumer = client_config(&self.config)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .create()
            .map_err(kafka(format!("creating a consumer to restore {topic}")))?;
        let wanted = partitions.to_vec();
        let (consumer, mut pending) = tokio::task::spawn_blocking(move || {
            let mut pending = HashMap::new();
            let mut assignment = TopicPartitionList::new();
            for partition in wanted {
                let (low, high) = consumer
                    .fetch_watermarks(&topic, partition, REQUEST_TIMEOUT)
                    .map_err(kafka(format!(
                        "fetching the watermarks of {topic}/{partition}"
                    )))?;
                if high > low {
                    pending.insert(partition, high);
                    assignment
                        .add_partition_offset(&topic, partition, Offset::Beginning)
                        .map_err(kafka(format!("assigning {topic}/{partition} to a restore")))?;
                }
            }
            consumer
                .assign(&assignment)
                .map_err(kafka(format!("assigning {topic} to a restore")))?;
            Ok::<_, BusError>((consumer, pending))
        })
        .await
        .map_err(|e| BusError::Other(format!("restore setup panicked: {e}")))??;
        let mut values: BTreeMap<String, Bytes> = BTreeMap::new();
        while !pending.is_empty() {
            let message = match tokio::time::timeout(REQUEST_TIMEOUT, consumer.recv()).await {
                Ok(Ok(message)) => message,
                Ok(Err(err @ KafkaError::MessageConsumptionFatal(_))) => {
                    return Err(kafka(format!("restoring {}", self.topic))(err))
                }
                Ok(Err(err)) => {
                    tracing::debug!(target: "windsock_core::bus", %err, "restore error; retrying");
                    continue;
                }
                Err(_) => {
                    return Err(BusError::KafkaState(format!(
                        "restore of {} stalled: no message within {REQUEST_TIMEOUT:?} with partitions {:?} unfinished",
                        self.topic,
                        pending.keys().collect::<Vec<_>>()
                    )))
                }
            };
            let Some(high) = pending.get(&message.partition()).copied() else {
                continue;
            };
            if message.offset() + 1 >= high {
                pending.remove(&message.partition());
            }
            if message.offset() >= high {
                continue; // written after the restore started
            }
            let Some(key) = message.key() else { continue };
            let key = String::from_utf8_lossy(key).into_owned();
            match message.payload().filter(|v| !v.is_empty()) {
                Some(value) => values.insert(key, Bytes::copy_from_slice(value)),
                None => values.remove(&key),
            };
        }
        Ok(values.into_iter().collect())
    }
}

/// Settings every client shares: the brokers, and quick reconnects after an outage.
fn client_config(config: &BusConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.brokers)
        .set("client.id", "windsock")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "1000")
        .set("retry.backoff.ms", "100")
        .set("retry.backoff.max.ms", "1000")
        .set("log_level", "3");
    client
}

/// Wraps librdkafka's error, kept as the source, with what was being done.
fn kafka(context: impl Into<String>) -> impl FnOnce(KafkaError) -> BusError {
    let context = context.into();
    move |source| BusError::Kafka { context, source }
}

/// (low, high) watermarks of every partition of `topic`.
fn high_watermarks<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    topic: &str,
) -> Result<HashMap<i32, (i64, i64)>, BusError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(kafka(format!("fetching the metadata of {topic}")))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(BusError::KafkaState(format!(
            "topic {topic} has no partitions"
        )));
    }
    partitions
        .into_iter()
        .map(|p| {
            let marks = consumer
                .fetch_watermarks(topic, p, REQUEST_TIMEOUT)
                .map_err(kafka(format!("fetching the watermarks of {topic}/{p}")))?;
            Ok((p, marks))
        })
        .collect()
}

/// Commits stored offsets before partitions are taken away, follows the member's assignment,
/// and keeps the consumer's lag from librdkafka's statistics (no extra requests).
struct GroupContext {
    lag: Arc<AtomicI64>,
    topic_prefix: String,
    assignment: watch::Sender<Assignment>,
    /// Rebalances that assigned partitions to this member so far.
    rebalances: AtomicU64,
    /// What the last revocation took, with since when each was owned: the eager protocol
    /// revokes everything at each rebalance, and a partition assigned again right after was
    /// owned by nobody else in between (unless the assignment was lost: then it is not kept).
    revoked: parking_lot::Mutex<BTreeMap<(Topic, i32), u64>>,
}

impl GroupContext {
    fn new(topic_prefix: &str) -> Self {
        Self {
            lag: Arc::default(),
            topic_prefix: topic_prefix.to_string(),
            assignment: watch::Sender::new(Assignment::default()),
            rebalances: AtomicU64::new(0),
            revoked: parking_lot::Mutex::new(BTreeMap::new()),
        }
    }

    fn partitions<'a>(
        &'a self,
        list: &'a TopicPartitionList,
    ) -> impl Iterator<Item = (Topic, i32)> + 'a {
        list.elements().into_iter().filter_map(|element| {
            Topic::from_name(&self.topic_prefix, element.topic())
                .map(|topic| (topic, element.partition()))
        })
    }
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: Statistics) {
        let lag: i64 = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0 && p.desired && p.hi_offset >= 0)
            .map(|p| {
                // What the group has acked: the stored offset, else the committed one, else
                // (a new group reading from the earliest) the log start.
                let acked = [p.stored_offset, p.committed_offset, p.lo_offset, 0]
                    .into_iter()
                    .find(|offset| *offset >= 0)
                    .unwrap_or(0);
                (p.hi_offset - acked).max(0)
            })
            .sum();
        self.lag.store(lag, Ordering::Relaxed);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            // Reported before the partitions go, so nothing more is done for them here.
            let lost = consumer.assignment_lost();
            let mut revoked = self.revoked.lock();
            self.assignment.send_if_modified(|assignment| {
                let mut changed = false;
                for (topic, partition) in self.partitions(partitions) {
                    if let Some(since) = assignment.give_up(topic, partition) {
                        changed = true;
                        if !lost {
                            revoked.insert((topic, partition), since);
                        }
                    }
                }
                changed
            });
            drop(revoked);
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(err) => tracing::warn!(
                    target: "windsock_core::bus",
                    %err,
                    partitions = partitions.count(),
                    "could not commit offsets before a rebalance; unacked messages will be redelivered"
                ),
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            let rebalance = self.rebalances.fetch_add(1, Ordering::Relaxed) + 1;
            let kept = std::mem::take(&mut *self.revoked.lock());
            self.assignment.send_if_modified(|assignment| {
                let mut changed = false;
                for (topic, partition) in self.partitions(partitions) {
                    let since = kept.get(&(topic, partition)).copied().unwrap_or(rebalance);
                    changed |= assignment.take(topic, [partition], since);
                }
                changed
            });
        }
    }
}

struct GroupSubscription {
    /// Shared with blocking commits; `None` only once dropped (closed off the async workers).
    consumer: Option<Arc<StreamConsumer<GroupContext>>>,
    topic_prefix: String,
    lag: Arc<AtomicI64>,
    closing: Arc<Closing>,
}

impl GroupSubscription {
    fn consumer(&self) -> &Arc<StreamConsumer<GroupContext>> {
        self.consumer
            .as_ref()
            .expect("the consumer lives until the subscription is dropped")
    }
}

#[async_trait]
impl Subscription for GroupSubscription {
    async fn next(&mut self) -> Result<Option<Delivery>, BusError> {
        loop {
            match self.consumer().recv().await {
                Ok(message) => {
                    let Some(topic) = Topic::from_name(&self.topic_prefix, message.topic()) else {
                        continue;
                    };
                    return Ok(Some(to_delivery(topic, &message)));
                }
                Err(err @ KafkaError::MessageConsumptionFatal(_)) => {
                    return Err(kafka("consuming")(err))
                }
                // Transport errors and the like: librdkafka reconnects and resumes by itself.
                Err(err) => {
                    tracing::debug!(target: "windsock_core::bus", %err, "consumer error; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let name = delivery.topic.name(&self.topic_prefix);
        // librdkafka stores `offset + 1`: the next message to read.
        let stored = self
            .consumer()
            .store_offset(&name, delivery.partition, delivery.offset);
        match stored {
            Ok(()) => Ok(()),
            // The partition moved to another member in a rebalance: it redelivers from the
            // last committed offset, so this message is not lost.
            Err(KafkaError::StoreOffset(RDKafkaErrorCode::State)) => Ok(()),
            Err(err) => Err(kafka(format!(
                "storing the offset of {name}/{}",
                delivery.partition
            ))(err)),
        }
    }

    async fn commit(&mut self) -> Result<(), BusError> {
        let consumer = self.consumer().clone();
        let committed = detached("windsock-kafka-commit", move || {
            consumer.commit_consumer_state(CommitMode::Sync)
        });
        let wait = self.closing.wait(REQUEST_TIMEOUT);
        let result = match tokio::time::timeout(wait, committed).await {
            Ok(Ok(Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)))) => Ok(()),
            Ok(Ok(Err(err))) => Err(kafka("committing offsets")(err)),
            Ok(Err(_)) => Err(BusError::Other("the commit thread panicked".into())),
            Err(_) => Err(BusError::KafkaState(format!(
                "commit not confirmed within {wait:?} (is the broker down?)"
            ))),
        };
        if result.is_err() && self.closing.deadline().is_some() {
            self.closing.uncommitted.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn lag(&self) -> Option<i64> {
        Some(self.lag.load(Ordering::Relaxed))
    }

    fn assignment(&self) -> watch::Receiver<Assignment> {
        self.consumer().context().assignment.subscribe()
    }
}

impl Drop for GroupSubscription {
    fn drop(&mut self) {
        // Closing commits what was acked and leaves the group: milliseconds with a broker,
        // but up to the session timeout without one (and longer if the broker dies mid-close).
        // So it runs on a thread of its own and the drop waits for it only a little: long
        // enough that a member subscribing right after finds the group already left, short
        // enough that a dead broker cannot hang shutdown. If the process exits before the
        // close is done, what was acked since the last commit is redelivered, not lost.
        let Some(consumer) = self.consumer.take() else {
            return;
        };
        let (closed, close_done) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("windsock-kafka-close".into())
            .spawn(move || {
                drop(consumer);
                let _ = closed.send(());
            });
        // (Had the thread not started, the consumer was closed right here, when the closure
        // was dropped.)
        // During shutdown, no longer than its deadline: nobody subscribes after it.
        let wait = match self.closing.deadline() {
            None => CLOSE_WAIT,
            Some(at) => at.saturating_duration_since(Instant::now()).min(CLOSE_WAIT),
        };
        if spawned.is_ok() && close_done.recv_timeout(wait).is_err() {
            tracing::debug!(target: "windsock_core::bus", "a consumer is still closing in the background");
        }
    }
}

/// Runs blocking librdkafka work on a thread of its own; the receiver gets its result.
/// (Not `spawn_blocking`: a runtime waits for those when it shuts down, and a request to a
/// broker that went away can take far longer than a shutdown should.)
fn detached<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> tokio::sync::oneshot::Receiver<T> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let _ = sender.send(work());
        });
    if let Err(err) = spawned {
        tracing::warn!(target: "windsock_core::bus", %err, "could not start a thread for {name}");
    }
    receiver
}

fn to_delivery(topic: Topic, message: &impl Message) -> Delivery {
    Delivery {
        topic,
        partition: message.partition(),
        offset: message.offset(),
        key: message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned()),
        payload: Bytes::copy_from_slice(message.payload().unwrap_or_default()),
    }
}

/// Reads every partition of one topic from the beginning to the high watermark it had when
/// the replay started.
struct ReplaySubscription {
    consumer: StreamConsumer,
    topic: Topic,
    /// Partitions not read to their end yet: partition -> (low, high) watermark.
    pending: HashMap<i32, (i64, i64)>,
}

#[async_trait]
impl Subscription for ReplaySubscription {
    async fn next(&mut self) -> Result<Option<Delivery>, BusError> {
        while !self.pending.is_empty() {
            let message = match tokio::time::timeout(REQUEST_TIMEOUT, self.consumer.recv()).await
            {
                Ok(Ok(message)) => message,
                Ok(Err(err @ KafkaError::MessageConsumptionFatal(_))) => {
                    return Err(kafka(format!("replaying {}", self.topic.suffix()))(err))
                }
                Ok(Err(err)) => {
                    tracing::debug!(target: "windsock_core::bus", %err, "replay error; retrying");
                    continue;
                }
                Err(_) => {
                    return Err(BusError::KafkaState(format!(
                        "replay of {} stalled: no message within {REQUEST_TIMEOUT:?} with partitions {:?} unfinished",
                        self.topic.suffix(),
                        self.pending.keys().collect::<Vec<_>>()
                    )))
                }
            };
            let partition = message.partition();
            let Some((_, high)) = self.pending.get(&partition).copied() else {
                continue; // this partition is done: what came after the replay started
            };
            if message.offset() + 1 >= high {
                self.pending.remove(&partition);
            }
            if message.offset() < high {
                return Ok(Some(to_delivery(self.topic, &message)));
            }
        }
        Ok(None)
    }

    fn ack(&mut self, _delivery: &Delivery) -> Result<(), BusError> {
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), BusError> {
        Ok(())
    }

    fn lag(&self) -> Option<i64> {
        None
    }
}
