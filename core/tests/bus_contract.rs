//! The bus contract, written once and run against both buses: `EmbeddedBus`, and `KafkaBus`
//! on a real tansu broker (one broker per test, so they run in parallel).
//!
//! Then what only one of them promises: backpressure and retention on the embedded bus,
//! surviving a broker outage on Kafka.

mod support;

use support::{collect, expect_none_within, within, Harness};
use windsock_core::bus::{Bus, Delivery, EventSubscription, Topic};
use windsock_core::event::{Envelope, Event, Level, LogEvent};

mod contract {
    use super::*;
    use bytes::Bytes;
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    fn message(key: &str, sequence: usize) -> Bytes {
        Bytes::from(format!("{key}#{sequence}"))
    }

    /// (key, sequence) of a message made by [`message`].
    fn parse(delivery: &Delivery) -> (String, usize) {
        let text = std::str::from_utf8(&delivery.payload).expect("utf-8 payload");
        let (key, sequence) = text.rsplit_once('#').expect("a test message");
        assert_eq!(
            delivery.key.as_deref(),
            Some(key),
            "the key travels with the message"
        );
        (
            key.to_string(),
            sequence.parse().expect("a sequence number"),
        )
    }

    const KEYS: [&str; 6] = ["Dakar", "Thies", "Kaolack", "Ziguinchor", "Louga", "Matam"];

    /// Publishes `per_key` messages for each key, interleaved, half one at a time and half
    /// as batches.
    async fn publish_interleaved(bus: &dyn Bus, topic: Topic, per_key: usize) {
        let half = per_key / 2;
        for sequence in 0..half {
            for key in KEYS {
                bus.publish(topic, key, message(key, sequence))
                    .await
                    .expect("publish");
            }
        }
        let batch: Vec<(String, Bytes)> = (half..per_key)
            .flat_map(|sequence| KEYS.map(|key| (key.to_string(), message(key, sequence))))
            .collect();
        bus.publish_batch(topic, batch)
            .await
            .expect("publish_batch");
    }

    pub async fn keeps_order_per_key(h: &Harness) {
        let bus = h.bus();
        let mut subscription = bus.subscribe(&[Topic::Logs], "order").await.unwrap();
        publish_interleaved(bus.as_ref(), Topic::Logs, 100).await;
        let deliveries = collect(subscription.as_mut(), KEYS.len() * 100).await;
        let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
        for delivery in &deliveries {
            let (key, sequence) = parse(delivery);
            assert_eq!(delivery.topic, Topic::Logs);
            seen.entry(key).or_default().push(sequence);
        }
        for key in KEYS {
            assert_eq!(seen[key], (0..100).collect::<Vec<_>>(), "order of {key}");
        }
    }

    pub async fn every_group_gets_every_message_and_members_split_partitions(h: &Harness) {
        let bus = h.bus();
        let mut alerts = bus
            .subscribe(&[Topic::Observations], "alerter")
            .await
            .unwrap();
        let mut indexer = bus
            .subscribe(&[Topic::Observations], "indexer")
            .await
            .unwrap();
        let mut first = bus
            .subscribe(&[Topic::Observations], "shared")
            .await
            .unwrap();
        let mut second = bus
            .subscribe(&[Topic::Observations], "shared")
            .await
            .unwrap();
        publish_interleaved(bus.as_ref(), Topic::Observations, 20).await;
        let total = KEYS.len() * 20;

        for group in [&mut alerts, &mut indexer] {
            let got: BTreeSet<(String, usize)> = collect(group.as_mut(), total)
                .await
                .iter()
                .map(parse)
                .collect();
            assert_eq!(got.len(), total, "each group receives every message once");
        }

        // Two members of one group: publish rounds (one message for each of 16 keys) until
        // both members have received some; together they receive everything. They ack as they
        // go, so a rebalance while the second joins redelivers only what was not acked.
        let mut received: [BTreeMap<(String, usize), i32>; 2] = Default::default();
        let mut published = BTreeSet::new();
        let mut round = 0;
        within(support::TIMEOUT, async {
            while received.iter().any(BTreeMap::is_empty) {
                round += 1;
                publish_round(bus.as_ref(), round, &mut published).await;
                receive_all(&mut first, &mut second, &published, &mut received).await;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            // Now the group is settled: in one more round, no partition goes to both.
            round += 1;
            publish_round(bus.as_ref(), round, &mut published).await;
            let mut last: [BTreeMap<(String, usize), i32>; 2] = Default::default();
            let this_round: BTreeSet<_> =
                published.iter().filter(|m| m.1 == round).cloned().collect();
            receive_all(&mut first, &mut second, &this_round, &mut last).await;
            let partitions: Vec<BTreeSet<i32>> =
                last.iter().map(|m| m.values().copied().collect()).collect();
            assert!(
                partitions[0].is_disjoint(&partitions[1]),
                "a partition belongs to one member of a group: {partitions:?}"
            );
        })
        .await;
    }

    async fn publish_round(bus: &dyn Bus, round: usize, published: &mut BTreeSet<(String, usize)>) {
        for k in 0..16 {
            let key = format!("region-{k:02}");
            bus.publish(Topic::Observations, &key, message(&key, round))
                .await
                .unwrap();
            published.insert((key, round));
        }
    }

    /// Reads from both members (acking) until every message of `expected` arrived at one.
    async fn receive_all(
        first: &mut Box<dyn windsock_core::bus::Subscription>,
        second: &mut Box<dyn windsock_core::bus::Subscription>,
        expected: &BTreeSet<(String, usize)>,
        received: &mut [BTreeMap<(String, usize), i32>; 2],
    ) {
        while !expected
            .iter()
            .all(|m| received.iter().any(|r| r.contains_key(m)))
        {
            let (index, delivery) = tokio::select! {
                d = first.next() => (0, d),
                d = second.next() => (1, d),
            };
            let delivery = delivery.unwrap().expect("a message");
            let member = if index == 0 {
                &mut *first
            } else {
                &mut *second
            };
            member.ack(&delivery).unwrap();
            received[index].insert(parse(&delivery), delivery.partition);
        }
    }

    pub async fn resumes_from_acked_offsets_after_a_restart(h: &Harness) {
        let bus = h.bus();
        let mut subscription = bus.subscribe(&[Topic::Forecasts], "resume").await.unwrap();
        publish_interleaved(bus.as_ref(), Topic::Forecasts, 10).await;
        let deliveries = collect(subscription.as_mut(), KEYS.len() * 10).await;

        // Ack the first half of what each partition delivered (acks are in order per partition).
        let mut per_partition: BTreeMap<i32, Vec<&Delivery>> = BTreeMap::new();
        for delivery in &deliveries {
            per_partition
                .entry(delivery.partition)
                .or_default()
                .push(delivery);
        }
        let mut unacked = BTreeSet::new();
        for partition in per_partition.values() {
            let (acked, rest) = partition.split_at(partition.len() / 2);
            for delivery in acked {
                subscription.ack(delivery).unwrap();
            }
            unacked.extend(rest.iter().map(|d| parse(d)));
        }
        assert!(!unacked.is_empty());
        drop(subscription);

        let mut subscription = bus.subscribe(&[Topic::Forecasts], "resume").await.unwrap();
        // One last message per key: once each arrived, every partition was read past its
        // committed offset, so what came before them is exactly what will be redelivered.
        for key in KEYS {
            bus.publish(Topic::Forecasts, key, message(key, 1000))
                .await
                .unwrap();
        }
        let mut redelivered = BTreeSet::new();
        let mut sentinels = 0;
        let finished = tokio::time::timeout(support::TIMEOUT, async {
            while sentinels < KEYS.len() {
                let delivery = subscription.next().await.unwrap().expect("a message");
                let (key, sequence) = parse(&delivery);
                if sequence == 1000 {
                    sentinels += 1;
                } else {
                    redelivered.insert((key, sequence));
                }
            }
        })
        .await;
        assert!(
            finished.is_ok(),
            "after a restart, got {sentinels} of {} last messages and redeliveries {redelivered:?} (unacked: {unacked:?})",
            KEYS.len()
        );
        assert_eq!(
            redelivered, unacked,
            "exactly the unacked messages come back"
        );
    }

    pub async fn lag_counts_what_is_not_acked(h: &Harness) {
        let bus = h.bus();
        let mut subscription = bus.subscribe(&[Topic::Logs], "lag").await.unwrap();
        publish_interleaved(bus.as_ref(), Topic::Logs, 2).await;
        let deliveries = collect(subscription.as_mut(), KEYS.len() * 2).await;
        // Ack whole partitions, so the acks are in order.
        let acked_partition = deliveries[0].partition;
        let mut unacked = 0;
        for delivery in &deliveries {
            if delivery.partition == acked_partition {
                subscription.ack(delivery).unwrap();
            } else {
                unacked += 1;
            }
        }
        // Kafka's lag comes from periodic statistics, served while the consumer polls.
        within(support::TIMEOUT, async {
            while subscription.lag() != Some(unacked) {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_millis(100),
                    subscription.next(),
                )
                .await;
            }
        })
        .await;
    }

    pub async fn dead_letters_a_malformed_message_and_carries_on(h: &Harness) {
        let bus = h.bus();
        let mut events = EventSubscription::new(bus.clone(), &[Topic::Logs], "dead-letter")
            .await
            .unwrap();
        bus.publish(Topic::Logs, "Dakar", Bytes::from_static(b"{not json"))
            .await
            .unwrap();
        let log = Event::Log(LogEvent {
            timestamp: chrono::Utc::now(),
            service: "collector".into(),
            level: Level::Info,
            message: "fetched".into(),
            region: Some("Dakar".into()),
            target: None,
            fields: Default::default(),
        });
        windsock_core::bus::publish_event(bus.as_ref(), log.clone())
            .await
            .unwrap();

        let (delivery, envelope) = within(support::TIMEOUT, events.next())
            .await
            .unwrap()
            .expect("the valid event after the malformed one");
        assert_eq!(envelope.event, log);
        events.ack(&delivery).unwrap();

        let mut letters = bus.replay(Topic::DeadLetters).await.unwrap();
        let letter = within(support::TIMEOUT, letters.next())
            .await
            .unwrap()
            .expect("a dead letter");
        let Event::DeadLetter(letter) = Envelope::from_json(&letter.payload).unwrap().event else {
            panic!("the dead-letter topic holds dead letters");
        };
        assert_eq!(letter.topic, "logs");
        assert_eq!(letter.payload, "{not json");
        assert_eq!(letter.key.as_deref(), Some("Dakar"));
        assert!(letter.group.ends_with("dead-letter"), "{}", letter.group);
        assert!(
            letter.reason.contains("not a windsock event"),
            "{}",
            letter.reason
        );
        assert!(within(support::TIMEOUT, letters.next())
            .await
            .unwrap()
            .is_none());
    }

    /// The next event of `events`, which must be a log: its delivery and message.
    async fn next_log(events: &mut EventSubscription) -> (Delivery, String) {
        match within(support::TIMEOUT, events.next()).await.unwrap() {
            Some((
                delivery,
                Envelope {
                    event: Event::Log(l),
                    ..
                },
            )) => (delivery, l.message),
            other => panic!("expected a log, got {other:?}"),
        }
    }

    /// A dead letter's ack is cumulative like any other: given at once, it would commit the
    /// deliveries before it that the consumer has not acked (made durable) yet.
    pub async fn acks_a_dead_letter_only_once_what_came_before_it_is_acked(h: &Harness) {
        let bus = h.bus();
        let log = |message: &str| {
            Event::Log(LogEvent {
                timestamp: chrono::Utc::now(),
                service: "collector".into(),
                level: Level::Info,
                message: message.into(),
                region: Some("Dakar".into()),
                target: None,
                fields: Default::default(),
            })
        };
        // One key, so one partition, in this order.
        let publish = windsock_core::bus::publish_event;
        publish(bus.as_ref(), log("before")).await.unwrap();
        bus.publish(Topic::Logs, "Dakar", Bytes::from_static(b"{not json"))
            .await
            .unwrap();
        publish(bus.as_ref(), log("after")).await.unwrap();
        let subscribe = || EventSubscription::new(bus.clone(), &[Topic::Logs], "letter-acks");

        // Handed out and dead-lettered, nothing acked: a restart is handed everything again.
        let mut events = subscribe().await.unwrap();
        let (_, first) = next_log(&mut events).await;
        let (_, second) = next_log(&mut events).await;
        assert_eq!((first.as_str(), second.as_str()), ("before", "after"));
        events.commit().await.unwrap();
        drop(events);

        // Acking what came before the malformed message acks it too.
        let mut events = subscribe().await.unwrap();
        let (before, first) = next_log(&mut events).await;
        assert_eq!(
            first, "before",
            "the unacked delivery before the dead letter came again"
        );
        events.ack(&before).unwrap();
        let (_, second) = next_log(&mut events).await;
        assert_eq!(second, "after");
        events.commit().await.unwrap();
        drop(events);

        let mut events = subscribe().await.unwrap();
        let (_, first) = next_log(&mut events).await;
        assert_eq!(
            first, "after",
            "acked, the dead letter is not handed out again"
        );
        drop(events);
        // Dead-lettered each time it was read unacked: twice.
        let mut letters = bus.replay(Topic::DeadLetters).await.unwrap();
        let mut count = 0;
        while within(support::TIMEOUT, letters.next())
            .await
            .unwrap()
            .is_some()
        {
            count += 1;
        }
        assert_eq!(count, 2);
    }

    pub async fn replay_reads_everything_to_the_end(h: &Harness) {
        let bus = h.bus();
        publish_interleaved(bus.as_ref(), Topic::Alerts, 10).await;
        let mut replay = bus.replay(Topic::Alerts).await.unwrap();
        // Published after the replay started: not part of it.
        bus.publish(Topic::Alerts, "Dakar", message("Dakar", 99))
            .await
            .unwrap();
        let mut got = BTreeSet::new();
        within(support::TIMEOUT, async {
            while let Some(delivery) = replay.next().await.unwrap() {
                assert!(got.insert(parse(&delivery)), "no duplicates in a replay");
            }
        })
        .await;
        assert_eq!(got.len(), KEYS.len() * 10);
        assert!(!got.contains(&("Dakar".to_string(), 99)));
        // A replay commits nothing: a group still starts from the earliest message.
        let mut group = bus
            .subscribe(&[Topic::Alerts], "after-replay")
            .await
            .unwrap();
        collect(group.as_mut(), KEYS.len() * 10 + 1).await;
        expect_none_within(group.as_mut(), std::time::Duration::from_millis(200)).await;
    }
}

/// One test per contract function for a harness constructor.
macro_rules! contract_suite {
    ($harness:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn keeps_order_per_key() {
            contract::keeps_order_per_key(&$harness.await).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn every_group_gets_every_message_and_members_split_partitions() {
            contract::every_group_gets_every_message_and_members_split_partitions(&$harness.await)
                .await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn resumes_from_acked_offsets_after_a_restart() {
            contract::resumes_from_acked_offsets_after_a_restart(&$harness.await).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn lag_counts_what_is_not_acked() {
            contract::lag_counts_what_is_not_acked(&$harness.await).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn dead_letters_a_malformed_message_and_carries_on() {
            contract::dead_letters_a_malformed_message_and_carries_on(&$harness.await).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn acks_a_dead_letter_only_once_what_came_before_it_is_acked() {
            contract::acks_a_dead_letter_only_once_what_came_before_it_is_acked(&$harness.await)
                .await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn replay_reads_everything_to_the_end() {
            contract::replay_reads_everything_to_the_end(&$harness.await).await;
        }
    };
}

mod embedded {
    use super::*;
    contract_suite!(Harness::embedded(1024));
}

mod kafka {
    use super::*;
    contract_suite!(Harness::kafka());
}
