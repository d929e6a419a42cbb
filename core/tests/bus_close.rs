//! Shutdown on the embedded bus: how much consumers have yet to read (the drain's signal), and
//! a deadline past which a publisher waiting for room gives up instead of holding the process.

use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use windsock_core::bus::{Bus, EmbeddedBus, Topic};
use windsock_core::config::BusConfig;

/// A hang guard, not a performance bound.
const PATIENCE: Duration = Duration::from_secs(10);

fn bus(capacity: usize) -> Arc<EmbeddedBus> {
    Arc::new(EmbeddedBus::new(&BusConfig {
        partitions: 1,
        capacity,
        ..BusConfig::default()
    }))
}

#[tokio::test]
async fn unread_counts_what_groups_with_members_have_not_read_yet() {
    let bus = bus(100);
    bus.publish(Topic::Logs, "a", Bytes::from("0"))
        .await
        .unwrap();
    assert_eq!(bus.unread(), Some(0), "nobody listens: nothing to wait for");

    let mut consumer = bus.subscribe(&[Topic::Logs], "indexer").await.unwrap();
    for n in 1..3 {
        bus.publish(Topic::Logs, "a", Bytes::from(n.to_string()))
            .await
            .unwrap();
    }
    assert_eq!(bus.unread(), Some(3));
    for _ in 0..3 {
        consumer.next().await.unwrap().unwrap();
    }
    assert_eq!(bus.unread(), Some(0));
}

#[tokio::test]
async fn past_the_close_deadline_a_publisher_waiting_for_room_gives_up() {
    let bus = bus(1);
    // A member that never reads: the second message waits for room.
    let _stalled = bus.subscribe(&[Topic::Logs], "stalled").await.unwrap();
    bus.publish(Topic::Logs, "a", Bytes::from("0"))
        .await
        .unwrap();
    bus.close_by(Instant::now() + Duration::from_millis(50));
    let waiting = tokio::time::timeout(PATIENCE, bus.publish(Topic::Logs, "a", Bytes::from("1")))
        .await
        .expect("the deadline ends the wait");
    assert!(waiting.is_err(), "{waiting:?}");
    assert!(
        bus.shutdown().await.is_complete(),
        "the embedded bus has nothing to flush"
    );
}
