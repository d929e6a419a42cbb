//! The Kafka bus (rdkafka). Owned by the bus helper; being written.

use super::{Bus, BusError, Subscription, Topic};
use crate::config::BusConfig;
use async_trait::async_trait;
use bytes::Bytes;

pub struct KafkaBus {
    _config: BusConfig,
}

impl KafkaBus {
    pub async fn connect(config: &BusConfig) -> Result<Self, BusError> {
        Ok(Self { _config: config.clone() })
    }
}

#[async_trait]
impl Bus for KafkaBus {
    async fn publish(&self, _topic: Topic, _key: &str, _payload: Bytes) -> Result<(), BusError> {
        Err(BusError::Kafka("not yet implemented".into()))
    }
    async fn subscribe(&self, _topics: &[Topic], _group: &str) -> Result<Box<dyn Subscription>, BusError> {
        Err(BusError::Kafka("not yet implemented".into()))
    }
    async fn replay(&self, _topic: Topic) -> Result<Box<dyn Subscription>, BusError> {
        Err(BusError::Kafka("not yet implemented".into()))
    }
    fn kind(&self) -> &'static str {
        "kafka"
    }
}
