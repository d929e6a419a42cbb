//! What only the Kafka bus must survive: the broker going away and coming back.

mod support;

use bytes::Bytes;
use std::collections::BTreeSet;
use std::time::Duration;
use support::{collect, within, Harness, TIMEOUT};
use windsock_core::bus::Topic;

fn payload(n: usize) -> Bytes {
    Bytes::from(n.to_string())
}

fn number(payload: &[u8]) -> usize {
    std::str::from_utf8(payload).unwrap().parse().unwrap()
}

/// The broker is down for a while: what is published meanwhile waits (publish does not
/// return before the broker has it), then reaches the broker, and the consumer (whose
/// acked offsets were committed) carries on where it was, losing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_loses_nothing() {
    let mut harness = Harness::kafka().await;
    let bus = harness.bus();
    let mut consumer = bus
        .subscribe(&[Topic::Observations], "outage")
        .await
        .unwrap();
    for n in 0..10 {
        bus.publish(Topic::Observations, &format!("r{}", n % 3), payload(n))
            .await
            .unwrap();
    }
    for delivery in collect(consumer.as_mut(), 10).await {
        consumer.ack(&delivery).unwrap();
    }
    consumer.commit().await.unwrap();

    let broker = harness.broker.as_mut().expect("a tansu broker");
    broker.stop();
    let publisher = tokio::spawn({
        let bus = bus.clone();
        async move {
            let batch = (10..30)
                .map(|n| (format!("r{}", n % 3), payload(n)))
                .collect();
            bus.publish_batch(Topic::Observations, batch).await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !publisher.is_finished(),
        "publish must not report success while the broker is down"
    );
    broker.restart();
    within(TIMEOUT, publisher)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("publishing across the outage: {e}\n{}", broker.logs()));

    let after: BTreeSet<usize> = collect(consumer.as_mut(), 20)
        .await
        .iter()
        .map(|d| number(&d.payload))
        .collect();
    assert_eq!(
        after,
        (10..30).collect(),
        "everything published during the outage, once"
    );
}

/// Shutting down while the broker is gone must not hang: closing a consumer (which commits
/// and leaves its group) gives up waiting after a few seconds and finishes in the background;
/// dropping the bus (which flushes) is bounded too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_while_the_broker_is_down_does_not_hang() {
    let mut harness = Harness::kafka().await;
    let bus = harness.bus();
    let mut consumer = bus.subscribe(&[Topic::Logs], "closing").await.unwrap();
    bus.publish(Topic::Logs, "Dakar", payload(1)).await.unwrap();
    let delivery = collect(consumer.as_mut(), 1).await.remove(0);
    consumer.ack(&delivery).unwrap();
    harness.broker.as_mut().expect("a tansu broker").stop();

    // The drop waits a little for the close, then lets it go on in the background.
    within(Duration::from_secs(5), async move { drop(consumer) }).await;
    within(
        Duration::from_secs(15),
        tokio::task::spawn_blocking(move || {
            drop(bus);
            drop(harness);
        }),
    )
    .await
    .unwrap();
}

/// librdkafka's idempotent producer stops for good after a fatal error, such as the broker
/// answering a produce with a sequence it cannot reconcile. tansu cannot be made to do that
/// on demand, so this uses librdkafka's mock cluster: the bus must start a new producer and
/// publish again, losing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatally_failed_producer_is_replaced_and_the_message_published() {
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    use windsock_core::bus::{Bus, KafkaBus};
    use windsock_core::config::{BusConfig, BusKind};

    let cluster = MockCluster::new(1).unwrap();
    let config = BusConfig {
        kind: BusKind::Kafka,
        brokers: cluster.bootstrap_servers(),
        ..BusConfig::default()
    };
    // The mock cluster cannot create topics on request: provision them beforehand.
    for topic in Topic::ALL {
        let name = topic.name(&config.topic_prefix);
        cluster
            .create_topic(&name, config.partitions as i32, 1)
            .unwrap();
    }
    let bus = within(TIMEOUT, KafkaBus::connect(&config)).await.unwrap();
    bus.publish(Topic::Alerts, "Dakar", payload(0))
        .await
        .unwrap();

    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    within(TIMEOUT, bus.publish(Topic::Alerts, "Dakar", payload(1)))
        .await
        .expect("published on a new producer");
    bus.publish(Topic::Alerts, "Dakar", payload(2))
        .await
        .unwrap();

    let mut replay = bus.replay(Topic::Alerts).await.unwrap();
    let mut got = Vec::new();
    while let Some(delivery) = within(TIMEOUT, replay.next()).await.unwrap() {
        got.push(number(&delivery.payload));
    }
    assert_eq!(got, vec![0, 1, 2], "in order, nothing lost");
}

/// A Kafka failure keeps librdkafka's error as its source: what was being done reads first,
/// the broker's or the client's reason after it, as `{:#}` or a log line prints the chain.
/// A message over librdkafka's `message.max.bytes` (1 MB by default) is refused by the
/// producer itself, on any broker, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_error_keeps_its_cause() {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::mocking::MockCluster;
    use std::error::Error;
    use windsock_core::bus::{Bus, BusError, KafkaBus};
    use windsock_core::config::{BusConfig, BusKind};

    let cluster = MockCluster::new(1).unwrap();
    let config = BusConfig {
        kind: BusKind::Kafka,
        brokers: cluster.bootstrap_servers(),
        ..BusConfig::default()
    };
    for topic in Topic::ALL {
        let name = topic.name(&config.topic_prefix);
        cluster
            .create_topic(&name, config.partitions as i32, 1)
            .unwrap();
    }
    let bus = within(TIMEOUT, KafkaBus::connect(&config)).await.unwrap();
    assert_eq!(bus.kind(), BusKind::Kafka);
    let err = within(
        TIMEOUT,
        bus.publish(Topic::Logs, "Dakar", Bytes::from(vec![b'x'; 2_000_000])),
    )
    .await
    .expect_err("over message.max.bytes");

    assert!(matches!(err, BusError::Kafka { .. }), "{err:?}");
    let cause = err
        .source()
        .and_then(|source| source.downcast_ref::<KafkaError>())
        .unwrap_or_else(|| panic!("no KafkaError source in {err:?}"));
    assert_eq!(
        cause.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge)
    );
    let chain = err.chain();
    assert!(
        chain.starts_with("kafka: publishing to windsock.logs: ")
            && chain.contains(&cause.to_string()),
        "{chain}"
    );
    assert!(
        !err.to_string().contains(&cause.to_string()),
        "the cause is printed once, as the source: {err}"
    );
}
