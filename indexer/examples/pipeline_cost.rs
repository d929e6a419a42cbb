//! What the pipeline adds to an event's cost: the same events as `event_cost`, published on
//! the embedded bus and indexed by the indexer (its consuming loop, builders, writer thread),
//! committed once, as `event_cost` commits once. The difference between the two programs'
//! instruction totals is what the bus and the indexer's own machinery cost an event.
//!
//! ```sh
//! cargo build --release -p windsock-indexer --examples
//! valgrind --tool=callgrind --callgrind-out-file=pipeline.out target/release/examples/pipeline_cost
//! valgrind --tool=callgrind --callgrind-out-file=cost.out target/release/examples/event_cost
//! callgrind_annotate --inclusive=yes pipeline.out | head -60
//! ```
//!
//! The one commit is made when the last event is read (`commit_docs` is the event count and
//! one, for the first retention sweep; the interval is an hour): under callgrind time runs
//! fifty times slower, and commits by the clock would multiply.

use bytes::Bytes;
use std::collections::HashSet;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use windsock_core::bus::{EmbeddedBus, SharedBus, Topic};
use windsock_core::config::Config;
use windsock_indexer::{synthetic, Indexer};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let events = std::env::var("WINDSOCK_COST_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    let envelopes: Vec<_> = synthetic::benchmark_mix(events).collect();
    // An id that comes twice is one document (the generator repeats a few).
    let documents = envelopes
        .iter()
        .map(|e| &e.id)
        .collect::<HashSet<_>>()
        .len() as u64;
    let messages: Vec<(Topic, String, Bytes)> = envelopes
        .iter()
        .map(|e| (Topic::of(&e.event), e.event.key(), Bytes::from(e.to_json())))
        .collect();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    // The first retention sweep counts as an operation of the commit.
    config.indexer.commit_docs = events + 1;
    config.indexer.commit_interval = std::time::Duration::from_secs(3600);
    // The events are from October 2026: kept, whatever today is.
    config.indexer.retention = std::time::Duration::from_secs(100 * 365 * 24 * 3600);
    let config = Arc::new(config);
    let bus: SharedBus = Arc::new(EmbeddedBus::new(&config.bus));
    let indexer = Indexer::new(config, bus.clone()).await.expect("an indexer");
    let index = indexer.index().clone();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(indexer.run(shutdown.clone()));
    for (topic, key, payload) in messages {
        bus.publish(topic, &key, payload).await.expect("published");
    }
    // The commit of the last event makes it searchable.
    while index.len() < documents {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    running.await.expect("joined").expect("the indexer ran");
    println!("{events} events published, indexed and committed");
}
