//! What the bus tests share: a bus under test (with its broker) and bounded waits.
#![allow(dead_code)] // each test binary uses its own part of this

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use windsock_core::bus::{Delivery, EmbeddedBus, KafkaBus, SharedBus, Subscription};
use windsock_core::config::{BusConfig, BusKind};
use windsock_testkit::tansu::Tansu;

/// Long enough for a consumer group to form on tansu; a failing test ends well within it.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A bus under test, with the broker it talks to (if any), which lives as long as it does.
pub struct Harness {
    bus: SharedBus,
    pub config: BusConfig,
    pub broker: Option<Tansu>,
}

impl Harness {
    pub async fn embedded(capacity: usize) -> Self {
        let config = BusConfig {
            capacity,
            ..BusConfig::default()
        };
        Self {
            bus: Arc::new(EmbeddedBus::new(&config)),
            config,
            broker: None,
        }
    }

    /// A KafkaBus on a fresh in-memory tansu broker.
    pub async fn kafka() -> Self {
        Self::kafka_on(Tansu::start()).await
    }

    pub async fn kafka_on(broker: Tansu) -> Self {
        let config = BusConfig {
            kind: BusKind::Kafka,
            brokers: broker.bootstrap(),
            ..BusConfig::default()
        };
        let bus = within(TIMEOUT, KafkaBus::connect(&config))
            .await
            .unwrap_or_else(|e| panic!("connecting to tansu: {e}\n{}", broker.logs()));
        Self {
            bus: Arc::new(bus),
            config,
            broker: Some(broker),
        }
    }

    pub fn bus(&self) -> SharedBus {
        self.bus.clone()
    }
}

/// Awaits `future`, failing the test if it takes longer than `timeout`.
pub async fn within<T>(timeout: Duration, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(timeout, future)
        .await
        .unwrap_or_else(|_| panic!("still waiting after {timeout:?}"))
}

/// The next `n` messages of a subscription.
pub async fn collect(subscription: &mut dyn Subscription, n: usize) -> Vec<Delivery> {
    let mut deliveries = Vec::with_capacity(n);
    let result = tokio::time::timeout(TIMEOUT, async {
        while deliveries.len() < n {
            match subscription.next().await.expect("next") {
                Some(delivery) => deliveries.push(delivery),
                None => panic!(
                    "the subscription ended after {} of {n} messages",
                    deliveries.len()
                ),
            }
        }
    })
    .await;
    if result.is_err() {
        panic!(
            "received {} of {n} messages within {TIMEOUT:?}",
            deliveries.len()
        );
    }
    deliveries
}

/// Asserts that no message arrives for `quiet`.
pub async fn expect_none_within(subscription: &mut dyn Subscription, quiet: Duration) {
    if let Ok(next) = tokio::time::timeout(quiet, subscription.next()).await {
        if let Some(delivery) = next.expect("next") {
            panic!("expected no more messages, got {delivery:?}");
        }
    }
}
