//! What only the embedded bus promises: bounded memory with backpressure (a consumer that
//! falls behind slows the producer, nothing is dropped), retention released when a group leaves, and
//! group semantics that hold while members come and go under load.

mod support;

use bytes::Bytes;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{collect, within, TIMEOUT};
use windsock_core::bus::{Bus, EmbeddedBus, Subscription, Topic};
use windsock_core::config::BusConfig;

fn bus(partitions: u32, capacity: usize) -> Arc<EmbeddedBus> {
    Arc::new(EmbeddedBus::new(&BusConfig {
        partitions,
        capacity,
        ..BusConfig::default()
    }))
}

fn payload(n: usize) -> Bytes {
    Bytes::from(n.to_string())
}

fn number(payload: &[u8]) -> usize {
    std::str::from_utf8(payload).unwrap().parse().unwrap()
}

/// Long enough for a task that could run to have run; used only to show that one is blocked.
const SETTLE: Duration = Duration::from_millis(100);

/// Publishes each number of `numbers` to one partition's key, each within the timeout.
async fn publish_numbers(bus: &EmbeddedBus, numbers: std::ops::Range<usize>) {
    for n in numbers {
        within(
            TIMEOUT,
            bus.publish(Topic::Observations, "Dakar", payload(n)),
        )
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_messages_make_the_producer_wait_until_the_consumer_reads() {
    let bus = bus(1, 4);
    let mut slow = bus.subscribe(&[Topic::Observations], "slow").await.unwrap();
    publish_numbers(bus.as_ref(), 0..4).await;
    let fifth = tokio::spawn({
        let bus = bus.clone();
        async move { bus.publish(Topic::Observations, "Dakar", payload(4)).await }
    });
    tokio::time::sleep(SETTLE).await;
    assert!(
        !fifth.is_finished(),
        "four unread messages fill a partition of capacity 4"
    );

    let first_four = collect(slow.as_mut(), 4).await;
    within(TIMEOUT, fifth).await.unwrap().unwrap();
    // Read but unacked messages leave room (the consumer bounds them by acking)...
    publish_numbers(bus.as_ref(), 5..8).await;
    // ...and are still kept: a member that never acked them hands them to the next one.
    assert_eq!(number(&first_four[0].payload), 0);
    drop(slow);
    let mut next = bus.subscribe(&[Topic::Observations], "slow").await.unwrap();
    let everything: Vec<usize> = collect(next.as_mut(), 8)
        .await
        .iter()
        .map(|d| number(&d.payload))
        .collect();
    assert_eq!(
        everything,
        (0..8).collect::<Vec<_>>(),
        "nothing was dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_gets_everything_in_order() {
    let bus = bus(2, 8);
    let mut consumer = bus.subscribe(&[Topic::Logs], "slow").await.unwrap();
    let total = 5_000;
    let producer = tokio::spawn({
        let bus = bus.clone();
        async move {
            for n in 0..total {
                bus.publish(Topic::Logs, if n % 2 == 0 { "a" } else { "b" }, payload(n))
                    .await
                    .unwrap();
            }
        }
    });
    let mut last: HashMap<String, usize> = HashMap::new();
    for _ in 0..total {
        let delivery = within(TIMEOUT, consumer.next()).await.unwrap().unwrap();
        let n = number(&delivery.payload);
        let key = delivery.key.clone().unwrap();
        if let Some(previous) = last.insert(key, n) {
            assert_eq!(n, previous + 2, "per-key order, nothing dropped");
        }
        consumer.ack(&delivery).unwrap();
        if n.is_multiple_of(500) {
            tokio::task::yield_now().await;
        }
    }
    within(TIMEOUT, producer).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_leaves_releases_what_only_it_held() {
    let bus = bus(1, 2);
    let mut fast = bus.subscribe(&[Topic::Alerts], "fast").await.unwrap();
    let stalled = bus.subscribe(&[Topic::Alerts], "stalled").await.unwrap();
    for n in 0..2 {
        bus.publish(Topic::Alerts, "Dakar", payload(n))
            .await
            .unwrap();
    }
    for delivery in collect(fast.as_mut(), 2).await {
        fast.ack(&delivery).unwrap();
    }
    let third = tokio::spawn({
        let bus = bus.clone();
        async move { bus.publish(Topic::Alerts, "Dakar", payload(2)).await }
    });
    tokio::time::sleep(SETTLE).await;
    assert!(
        !third.is_finished(),
        "a group that has not acked holds the partition"
    );
    drop(stalled);
    within(TIMEOUT, third).await.unwrap().unwrap();
    assert_eq!(number(&collect(fast.as_mut(), 1).await[0].payload), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_listening_keeps_the_newest_capacity_without_blocking() {
    let bus = bus(1, 3);
    for n in 0..10 {
        within(TIMEOUT, bus.publish(Topic::Logs, "Dakar", payload(n)))
            .await
            .unwrap();
    }
    let mut replay = bus.replay(Topic::Logs).await.unwrap();
    let mut kept = Vec::new();
    while let Some(delivery) = replay.next().await.unwrap() {
        kept.push(number(&delivery.payload));
    }
    assert_eq!(kept, vec![7, 8, 9]);
}

/// Two members of one group while messages flow: the second joins, both work, then the
/// first leaves. Every message is processed (and acked) by some member, and both did work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_joining_and_leaving_under_load_lose_nothing() {
    let bus = bus(4, 64);
    let total = 20_000usize;
    let keys: Vec<String> = (0..16).map(|k| format!("region-{k}")).collect();
    let first = bus
        .subscribe(&[Topic::Observations], "shared")
        .await
        .unwrap();
    let producer = tokio::spawn({
        let bus = bus.clone();
        async move {
            for n in 0..total {
                bus.publish(Topic::Observations, &keys[n % keys.len()], payload(n))
                    .await
                    .unwrap();
            }
        }
    });

    let processed = Arc::new(parking_lot::Mutex::new(BTreeSet::new()));
    let by_second = Arc::new(AtomicUsize::new(0));
    // Each member processes (and acks) until `leave` says so or everything was processed.
    let consume = |mut member: Box<dyn Subscription>,
                   leave: Box<dyn Fn() -> bool + Send>,
                   count: Arc<AtomicUsize>| {
        let processed = processed.clone();
        tokio::spawn(async move {
            while !leave() && processed.lock().len() < total {
                let next = tokio::time::timeout(Duration::from_millis(50), member.next()).await;
                let Ok(next) = next else { continue };
                let delivery = next.unwrap().expect("the bus stays open");
                processed.lock().insert(number(&delivery.payload));
                member.ack(&delivery).unwrap();
                count.fetch_add(1, Ordering::Relaxed);
            }
            member // the caller drops it: the member leaves the group
        })
    };

    let first = consume(
        first,
        Box::new({
            let by_second = by_second.clone();
            move || by_second.load(Ordering::Relaxed) >= 1_000
        }),
        Arc::new(AtomicUsize::new(0)),
    );
    // Let the first member work alone for a while, then join the second.
    within(TIMEOUT, async {
        while processed.lock().len() < total / 10 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let second = bus
        .subscribe(&[Topic::Observations], "shared")
        .await
        .unwrap();
    let second = consume(second, Box::new(|| false), by_second.clone());
    drop(within(TIMEOUT, first).await.unwrap());
    assert!(
        processed.lock().len() < total,
        "the first member left while messages flowed"
    );
    drop(within(TIMEOUT, second).await.unwrap());
    within(TIMEOUT, producer).await.unwrap();
    assert_eq!(processed.lock().len(), total, "every message was processed");
}
