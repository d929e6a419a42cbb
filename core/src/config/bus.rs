use super::Problems;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// In-process: nothing to install; what is in flight lives in memory.
    Embedded,
    /// Kafka (or any Kafka-protocol broker): services run as separate processes.
    Kafka,
}

impl BusKind {
    /// The name as configured (`bus.kind`), in logs and in what the indexer records with a
    /// commit.
    pub fn as_str(self) -> &'static str {
        match self {
            BusKind::Embedded => "embedded",
            BusKind::Kafka => "kafka",
        }
    }
}

impl std::fmt::Display for BusKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    pub kind: BusKind,
    /// Kafka bootstrap servers, comma separated.
    pub brokers: String,
    /// Prepended to every topic name: `windsock.` gives `windsock.observations`.
    pub topic_prefix: String,
    /// Prepended to every consumer group name.
    pub group_prefix: String,
    /// Partitions per topic (the embedded bus, and topics windsock creates on Kafka).
    pub partitions: u32,
    /// Replication factor of topics windsock creates on Kafka.
    pub replication_factor: u32,
    /// Embedded bus: messages a partition holds unread (by its slowest consumer group) before
    /// the producer waits. Read but unacked messages are kept (for redelivery) and do not count.
    pub capacity: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            kind: BusKind::Embedded,
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: "windsock.".into(),
            group_prefix: "windsock-".into(),
            partitions: 4,
            replication_factor: 1,
            capacity: 16_384,
        }
    }
}

impl BusConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        if self.kind == BusKind::Kafka && self.brokers.trim().is_empty() {
            problems.push("bus.brokers", "kafka needs at least one broker (host:port)");
        }
        if self.partitions == 0 {
            problems.push("bus.partitions", "must be at least 1");
        }
        if self.capacity == 0 {
            problems.push("bus.capacity", "must be at least 1");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BusKind;

    #[test]
    fn the_printed_name_is_the_configured_one() {
        for kind in [BusKind::Embedded, BusKind::Kafka] {
            let configured = serde_json::to_value(kind).unwrap();
            assert_eq!(configured.as_str(), Some(kind.as_str()));
            assert_eq!(kind.to_string(), kind.as_str());
        }
    }
}
