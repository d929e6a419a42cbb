//! Bus throughput: 500-byte observations, one producer and one consumer group.
//!
//! - the embedded bus, publish and consume concurrently (target: >= 1,000,000 msg/s);
//! - the Kafka bus on a tansu broker started here, produce then consume, each beside raw
//!   rdkafka (same broker, same process, same producer settings) as a ratio
//!   (target: >= 0.8 of raw).
//!
//! `WINDSOCK_BENCH_MESSAGES` sets the message count (default 200000).
//! Run: `cargo bench -p windsock-core --bench bus_throughput`.

use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::sync::Arc;
use std::time::{Duration, Instant};
use windsock_core::bus::{Bus, EmbeddedBus, KafkaBus, Topic};
use windsock_core::config::{senegal_regions, BusConfig, BusKind};
use windsock_core::event::{Envelope, Event, Observation};
use windsock_testkit::tansu::Tansu;

const PAYLOAD_BYTES: usize = 500;
/// Messages per `publish_batch` call of the Kafka bus.
const BATCH: usize = 10_000;
/// Messages published one awaited `publish` at a time (slow by nature: kept short).
const AWAITED: usize = 300;
/// Turns each of raw rdkafka and the Kafka bus takes.
const ROUNDS: usize = 3;

fn main() {
    let messages: usize = std::env::var("WINDSOCK_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
        .max(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let workload = Workload::new(messages);
    println!(
        "bus throughput: {messages} messages of {} bytes, 1 producer, 1 consumer group",
        workload.messages[0].1.len()
    );
    if messages < 50_000 {
        println!("(a small run: a smoke test, its Kafka rates and ratios are noise)");
    }
    println!(
        "(kafka: produce = publish_batch of {BATCH} per call; consume = group subscription acking every message)"
    );
    runtime.block_on(async {
        let embedded = embedded(&workload).await;
        println!(
            "embedded bus      publish+consume {:>12} msg/s   target >= 1,000,000: {}",
            rate(embedded),
            verdict(embedded >= 1_000_000.0)
        );

        // Raw and bus take turns on one broker, going first in alternate rounds (the broker
        // slows as it fills, and other work on the machine comes and goes); each keeps its
        // best round.
        let broker = Tansu::start();
        let mut raw = KafkaRates::default();
        let mut bus = KafkaRates::default();
        for round in 0..ROUNDS {
            if round % 2 == 0 {
                raw = raw.best(raw_kafka(&broker, &workload, round).await);
                bus = bus.best(kafka_bus(&broker, &workload, round).await);
            } else {
                bus = bus.best(kafka_bus(&broker, &workload, round).await);
                raw = raw.best(raw_kafka(&broker, &workload, round).await);
            }
        }
        for (phase, bus, raw) in [
            ("produce", bus.produce, raw.produce),
            ("consume", bus.consume, raw.consume),
        ] {
            let ratio = bus / raw;
            println!(
                "kafka bus {phase}   {:>12} msg/s   raw rdkafka {:>12} msg/s   ratio {ratio:.2}   target >= 0.80: {}",
                rate(bus),
                rate(raw),
                verdict(ratio >= 0.8)
            );
        }
        let awaited = kafka_awaited_publish(&broker, &workload).await;
        println!(
            "kafka bus publish awaited one by one {:>8} msg/s   (latency-bound: each waits for its ack; publish_batch keeps many in flight)",
            rate(awaited)
        );
    });
}

struct Workload {
    messages: Vec<(String, Bytes)>,
}

impl Workload {
    /// Observations of the 14 regions in turn, each padded to exactly 500 bytes of JSON.
    fn new(count: usize) -> Self {
        let regions = senegal_regions();
        let now = chrono::Utc::now();
        let messages = (0..count)
            .map(|n| {
                let region = &regions[n % regions.len()];
                let mut observation = Observation {
                    region: region.name.clone(),
                    lat: region.lat,
                    lon: region.lon,
                    observed_at: now + chrono::Duration::seconds(n as i64),
                    fetched_at: now,
                    source: "simulated".into(),
                    temperature_c: 25.0 + (n % 100) as f64 / 10.0,
                    feels_like_c: Some(27.5),
                    humidity_pct: Some(64.0),
                    pressure_hpa: Some(1012.0),
                    wind_speed_ms: Some(4.2),
                    wind_deg: Some(310.0),
                    clouds_pct: Some(20.0),
                    condition: Some("Clouds".into()),
                    description: Some(String::new()),
                    ..Observation::default()
                };
                let short = Envelope::new(Event::Observation(observation.clone()))
                    .to_json()
                    .len();
                observation.description = Some("x".repeat(PAYLOAD_BYTES.saturating_sub(short)));
                let json = Envelope::new(Event::Observation(observation)).to_json();
                (region.name.clone(), Bytes::from(json))
            })
            .collect();
        Self { messages }
    }

    fn len(&self) -> usize {
        self.messages.len()
    }
}

/// Messages per second, publish and consume running at once.
async fn embedded(workload: &Workload) -> f64 {
    let bus = Arc::new(EmbeddedBus::new(&BusConfig::default()));
    let mut subscription = bus
        .subscribe(&[Topic::Observations], "bench")
        .await
        .unwrap();
    let total = workload.len();
    let messages = workload.messages.clone();
    let start = Instant::now();
    let producer = tokio::spawn({
        let bus = bus.clone();
        async move {
            for (key, payload) in messages {
                bus.publish(Topic::Observations, &key, payload)
                    .await
                    .unwrap();
            }
        }
    });
    for _ in 0..total {
        let delivery = subscription.next().await.unwrap().expect("a message");
        subscription.ack(&delivery).unwrap();
    }
    producer.await.unwrap();
    total as f64 / start.elapsed().as_secs_f64()
}

#[derive(Default)]
struct KafkaRates {
    produce: f64,
    consume: f64,
}

impl KafkaRates {
    fn best(self, other: Self) -> Self {
        Self {
            produce: self.produce.max(other.produce),
            consume: self.consume.max(other.consume),
        }
    }
}

async fn kafka_bus(broker: &Tansu, workload: &Workload, round: usize) -> KafkaRates {
    let config = BusConfig {
        kind: BusKind::Kafka,
        brokers: broker.bootstrap(),
        ..BusConfig::default()
    };
    let bus = KafkaBus::connect(&config)
        .await
        .expect("connecting to tansu");
    // Warm up (connections, producer id), as for raw rdkafka; consumers read past it.
    let (key, payload) = &workload.messages[0];
    bus.publish(Topic::Observations, key, payload.clone())
        .await
        .unwrap();
    let start = Instant::now();
    for chunk in workload.messages.chunks(BATCH) {
        bus.publish_batch(Topic::Observations, chunk.to_vec())
            .await
            .unwrap();
    }
    let produce = workload.len() as f64 / start.elapsed().as_secs_f64();

    // Each round's group reads the first `len` messages of the topic from the start.
    let group = format!("bench-{round}");
    let mut subscription = bus.subscribe(&[Topic::Observations], &group).await.unwrap();
    // Time from the first message on: joining the group is not throughput.
    let first = subscription.next().await.unwrap().expect("a message");
    let start = Instant::now();
    subscription.ack(&first).unwrap();
    for _ in 1..workload.len() {
        let delivery = subscription.next().await.unwrap().expect("a message");
        subscription.ack(&delivery).unwrap();
    }
    let consume = (workload.len() - 1) as f64 / start.elapsed().as_secs_f64();
    KafkaRates { produce, consume }
}

/// `publish` awaited message by message, as a caller with one message at a time does.
async fn kafka_awaited_publish(broker: &Tansu, workload: &Workload) -> f64 {
    let config = BusConfig {
        kind: BusKind::Kafka,
        brokers: broker.bootstrap(),
        ..BusConfig::default()
    };
    let bus = KafkaBus::connect(&config)
        .await
        .expect("connecting to tansu");
    let (key, payload) = &workload.messages[0];
    bus.publish(Topic::Logs, key, payload.clone())
        .await
        .unwrap();
    let count = workload.len().min(AWAITED);
    let start = Instant::now();
    for (key, payload) in &workload.messages[..count] {
        bus.publish(Topic::Logs, key, payload.clone())
            .await
            .unwrap();
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// The same work with rdkafka alone: a threaded producer with the bus's producer settings,
/// then a plain stream consumer (auto commit, no offset store per message).
async fn raw_kafka(broker: &Tansu, workload: &Workload, round: usize) -> KafkaRates {
    let topic = "raw-observations";
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", broker.bootstrap());
    if round == 0 {
        create_topic(&client, topic).await;
    }

    let producer: ThreadedProducer<DefaultProducerContext> = client
        .clone()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "1")
        .create()
        .unwrap();
    let messages = workload.messages.clone();
    let produce = tokio::task::spawn_blocking(move || {
        let (key, payload) = &messages[0];
        let warm_up = BaseRecord::to(topic)
            .key(key.as_str())
            .payload(payload.as_ref());
        producer.send(warm_up).map_err(|(err, _)| err).unwrap();
        producer.flush(Duration::from_secs(30)).unwrap();
        let start = Instant::now();
        for (key, payload) in &messages {
            let mut record = BaseRecord::to(topic)
                .key(key.as_str())
                .payload(payload.as_ref());
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((err, _)) => panic!("raw produce: {err}"),
                }
            }
        }
        producer.flush(Duration::from_secs(120)).unwrap();
        messages.len() as f64 / start.elapsed().as_secs_f64()
    })
    .await
    .unwrap();

    let consumer: StreamConsumer = client
        .clone()
        .set("group.id", format!("raw-bench-{round}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    consumer.recv().await.unwrap();
    let start = Instant::now();
    for _ in 1..workload.len() {
        let message = consumer.recv().await.unwrap();
        std::hint::black_box(&message);
    }
    let consume = (workload.len() - 1) as f64 / start.elapsed().as_secs_f64();
    KafkaRates { produce, consume }
}

async fn create_topic(client: &ClientConfig, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<_> = client.create().unwrap();
    let partitions = BusConfig::default().partitions as i32;
    admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
}

fn rate(per_second: f64) -> String {
    let digits = (per_second.round() as u64).to_string();
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}
