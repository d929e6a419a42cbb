//! What indexing an event costs, part by part, in a form an instruction counter can read:
//! decoding the payload, building the tantivy document, and tantivy's own indexing and commit,
//! each in a function of its own.
//!
//! Rates on a shared machine swing by a third between runs; instruction counts do not. Run it
//! under callgrind and read each part's inclusive count:
//!
//! ```sh
//! cargo build --release -p windsock-indexer --example event_cost
//! valgrind --tool=callgrind --callgrind-out-file=cost.out target/release/examples/event_cost
//! callgrind_annotate --inclusive=yes cost.out | grep -E 'part_|index_documents '
//! ```
//!
//! Divide by the events (`WINDSOCK_COST_EVENTS`, default 30,000) for a per-event figure; tantivy's
//! share is `index_documents` (its indexing threads), the rest is the three `part_` functions.

use bytes::Bytes;
use tantivy::{IndexWriter, TantivyDocument};
use windsock_core::event::Envelope;
use windsock_indexer::{synthetic, EventIndex};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[inline(never)]
fn part_decode(payloads: &[Bytes]) -> Vec<Envelope> {
    payloads
        .iter()
        .map(|p| Envelope::from_json(p).expect("the generator writes valid events"))
        .collect()
}

#[inline(never)]
fn part_build(
    index: &EventIndex,
    payloads: &[Bytes],
    envelopes: &[Envelope],
) -> Vec<TantivyDocument> {
    payloads
        .iter()
        .zip(envelopes)
        .map(|(payload, envelope)| {
            let json = std::str::from_utf8(payload).expect("serde_json writes UTF-8");
            index.fields.document_with_json(envelope, json)
        })
        .collect()
}

#[inline(never)]
fn part_index(writer: &mut IndexWriter, documents: Vec<TantivyDocument>) {
    for document in documents {
        writer.add_document(document).expect("the writer is open");
    }
    writer.commit().expect("the commit is written");
}

fn main() {
    let events = std::env::var("WINDSOCK_COST_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    let payloads: Vec<Bytes> = synthetic::benchmark_mix(events)
        .map(|e| Bytes::from(e.to_json()))
        .collect();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let index = EventIndex::open(dir.path()).expect("a new index");
    let mut writer: IndexWriter = index.index.writer(128_000_000).expect("one writer");
    let envelopes = part_decode(&payloads);
    let documents = part_build(&index, &payloads, &envelopes);
    part_index(&mut writer, documents);
    println!("{events} events decoded, built and indexed");
}
