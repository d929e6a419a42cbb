//! The partition contract, run against both buses (`EmbeddedBus`, and `KafkaBus` on a real
//! tansu broker): `partition_of` names where a key's messages land (and `end_offsets` how far
//! each partition goes), a member of a group reports the partitions it owns as they move, and
//! a changelog keeps the last value of each key on that key's partition.

mod support;

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use support::{collect, within, Harness, TIMEOUT};
use windsock_core::bus::{Assignment, Subscription, Topic};

/// The region-less key ("") among regions: state without a region lives on its partition.
const KEYS: [&str; 9] = [
    "",
    "Dakar",
    "Thies",
    "Kaolack",
    "Ziguinchor",
    "Louga",
    "Matam",
    "Fatick",
    "Kolda",
];

mod contract {
    use super::*;

    fn all_partitions(h: &Harness) -> BTreeSet<i32> {
        (0..h.config.partitions as i32).collect()
    }

    pub async fn partition_of_names_where_a_key_lands(h: &Harness) {
        let bus = h.bus();
        let mut subscription = bus
            .subscribe(&[Topic::Observations], "partition-of")
            .await
            .unwrap();
        for round in 0..3 {
            for key in KEYS {
                bus.publish(
                    Topic::Observations,
                    key,
                    Bytes::from(format!("{key}#{round}")),
                )
                .await
                .unwrap();
            }
        }
        let mut partitions: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
        for delivery in collect(subscription.as_mut(), KEYS.len() * 3).await {
            let key = delivery.key.clone().unwrap_or_default();
            partitions
                .entry(key)
                .or_default()
                .insert(delivery.partition);
        }
        for key in KEYS {
            let expected = bus.partition_of(Topic::Observations, key);
            assert_eq!(
                partitions[key],
                BTreeSet::from([expected]),
                "every message keyed {key:?} lands on partition_of's answer"
            );
            assert_eq!(
                bus.partition_of(Topic::Forecasts, key),
                expected,
                "the topics are partitioned alike"
            );
        }
        let used: BTreeSet<i32> = partitions.values().flatten().copied().collect();
        assert!(
            used.len() > 1,
            "keys spread over partitions: {partitions:?}"
        );

        // Each partition ends past the last message published to it (the topic is new).
        let all: Vec<i32> = all_partitions(h).into_iter().collect();
        let ends = bus.end_offsets(Topic::Observations, &all).await.unwrap();
        for partition in &all {
            let published = KEYS
                .iter()
                .filter(|key| bus.partition_of(Topic::Observations, key) == *partition)
                .count() as i64
                * 3;
            assert_eq!(
                ends.get(partition),
                Some(&published),
                "end of partition {partition}"
            );
        }
    }

    /// Awaits `next` on each member for a moment, so their group protocol runs.
    async fn poll(members: &mut [&mut Box<dyn Subscription>]) {
        for member in members.iter_mut() {
            if let Ok(next) = tokio::time::timeout(Duration::from_millis(100), member.next()).await
            {
                let delivery = next.unwrap().expect("a message");
                member.ack(&delivery).unwrap();
            }
        }
    }

    fn owned(assignment: &tokio::sync::watch::Receiver<Assignment>) -> BTreeSet<i32> {
        assignment.borrow().partitions(Topic::Observations)
    }

    pub async fn members_report_the_partitions_they_own(h: &Harness) {
        let bus = h.bus();
        let all = all_partitions(h);
        let topics = [Topic::Observations, Topic::Forecasts];
        let mut first = bus.subscribe(&topics, "owners").await.unwrap();
        let first_owns = first.assignment();
        within(TIMEOUT, async {
            while owned(&first_owns) != all {
                poll(&mut [&mut first]).await;
            }
        })
        .await;
        let alone = first_owns.borrow().clone();
        assert_eq!(
            alone.partitions(Topic::Forecasts),
            all,
            "a member owns the same partitions of every topic it reads"
        );

        let mut second = bus.subscribe(&topics, "owners").await.unwrap();
        let second_owns = second.assignment();
        within(TIMEOUT, async {
            loop {
                let (a, b) = (owned(&first_owns), owned(&second_owns));
                if !a.is_empty() && !b.is_empty() && a.is_disjoint(&b) && &a | &b == all {
                    break;
                }
                poll(&mut [&mut first, &mut second]).await;
            }
        })
        .await;
        let shared = first_owns.borrow().clone();
        let change = shared.change_since(&alone, Topic::Observations);
        assert_eq!(
            change.revoked.iter().copied().collect::<BTreeSet<_>>(),
            owned(&second_owns),
            "the first member gave up what the second took: {change:?}"
        );
        for member in [&first_owns, &second_owns] {
            let a = member.borrow();
            assert_eq!(
                a.partitions(Topic::Forecasts),
                a.partitions(Topic::Observations),
                "co-partitioned"
            );
        }

        drop(second);
        within(TIMEOUT, async {
            while owned(&first_owns) != all {
                poll(&mut [&mut first]).await;
            }
        })
        .await;
        let again = first_owns.borrow().clone();
        let change = again.change_since(&shared, Topic::Observations);
        let taken: BTreeSet<i32> = change.assigned.iter().copied().collect();
        assert!(
            taken.is_superset(&(&all - &shared.partitions(Topic::Observations))),
            "what the second member had is assigned afresh: {change:?}"
        );
    }

    pub async fn a_changelog_keeps_the_last_value_of_each_key_on_its_partition(h: &Harness) {
        let bus = h.bus();
        let changelog = bus.changelog("contract").await.unwrap();
        let value = |text: &str| Some(Bytes::from(text.to_string()));
        changelog
            .put_batch(
                KEYS.iter()
                    .map(|key| (key.to_string(), value(&format!("{key}=1"))))
                    .collect(),
            )
            .await
            .unwrap();
        changelog.put("Dakar", value("Dakar=2")).await.unwrap();
        changelog.put("Thies", None).await.unwrap();
        changelog.put("", value("=2")).await.unwrap();

        let expected: BTreeMap<String, Bytes> = KEYS
            .iter()
            .filter(|key| **key != "Thies")
            .map(|key| {
                let version = if matches!(*key, "Dakar" | "") { 2 } else { 1 };
                (key.to_string(), Bytes::from(format!("{key}={version}")))
            })
            .collect();
        let all: Vec<i32> = all_partitions(h).into_iter().collect();
        let restored: BTreeMap<String, Bytes> = within(TIMEOUT, changelog.restore(&all))
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(
            restored, expected,
            "last value per key, the deleted one gone"
        );

        // Each partition holds exactly its keys, as partition_of says (through a second
        // handle on the same changelog, as another process would open it).
        let again = bus.changelog("contract").await.unwrap();
        for partition in &all {
            let keys: BTreeSet<String> = within(TIMEOUT, again.restore(&[*partition]))
                .await
                .unwrap()
                .into_iter()
                .map(|(key, _)| key)
                .collect();
            let wanted: BTreeSet<String> = expected
                .keys()
                .filter(|key| bus.partition_of(Topic::Observations, key) == *partition)
                .cloned()
                .collect();
            assert_eq!(keys, wanted, "the keys of partition {partition}");
        }
        assert!(within(TIMEOUT, again.restore(&[]))
            .await
            .unwrap()
            .is_empty());
        // A name is its own log.
        let other = bus.changelog("other").await.unwrap();
        assert!(within(TIMEOUT, other.restore(&all))
            .await
            .unwrap()
            .is_empty());
    }
}

/// One test per contract function for a harness constructor.
macro_rules! partition_suite {
    ($harness:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn partition_of_names_where_a_key_lands() {
            contract::partition_of_names_where_a_key_lands(&$harness.await).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn members_report_the_partitions_they_own() {
            contract::members_report_the_partitions_they_own(&$harness.await).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_changelog_keeps_the_last_value_of_each_key_on_its_partition() {
            contract::a_changelog_keeps_the_last_value_of_each_key_on_its_partition(
                &$harness.await,
            )
            .await;
        }
    };
}

mod embedded {
    use super::*;
    partition_suite!(Harness::embedded(1024));
}

mod kafka {
    use super::*;
    partition_suite!(Harness::kafka());
}
