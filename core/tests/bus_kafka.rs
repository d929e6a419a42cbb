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
    let mut consumer = bus.subscribe(&[Topic::Observations], "outage").await.unwrap();
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
    assert_eq!(after, (10..30).collect(), "everything published during the outage, once");
}
