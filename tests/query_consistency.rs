//! The alerter's query rules match events in memory (`windsock-query`); `/api/search` asks
//! the index. Over generated logs, every query below counts the same events both ways, so
//! the two cannot drift apart unnoticed (a change to the indexer's schema or query rules
//! fails here until the matcher follows).

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use tantivy::collector::Count;
use windsock_core::event::{Envelope, Event, Level, LogEvent};
use windsock_indexer::store::EventIndex;
use windsock_query::{Document, LogRecord};

const QUERIES: &[&str] = &[
    "*",
    "fetch",
    "fetch failed",
    "fetch OR timeout",
    "\"fetch failed\"",
    "\"failed fetch\"",
    "Dakar",
    "service:collector",
    "service:collector AND fields.status:failed",
    "service:collector AND NOT fields.status:failed",
    "kind:log -level:info",
    "level:(warn OR error)",
    "level: IN [warn error]",
    "region:Dakar",
    "region:Thiès OR region:Kaolack",
    "fields.region:Dakar",
    "fields.fields.region:dakar",
    "fields.status:FAILED",
    "fields.status:timeout OR fields.attempt:3",
    "fields.attempt:[2 TO 4]",
    "fields.attempt:{2 TO *]",
    "fields.attempt:>=3",
    "fields.retry:true",
    "fields.target:fetch",
    "source:windsock_collector\\:\\:fetch",
    "region:*",
    "source:*",
    "(fetch AND failed) OR (service:alerter AND -level:error)",
    "+retry -timeout",
    "timestamp:[2026-11-25T12:00:10Z TO 2026-11-25T12:00:20Z}",
    "fields.timestamp:\"2026-11-25T12:00:05Z\"",
    "temperature_c:[30 TO *]",
    "kind:observation",
];

const WORDS: &[&str] = &["fetch", "failed", "timeout", "Dakar", "ok", "retry", "rain"];
const SERVICES: &[&str] = &["collector", "indexer", "alerter"];
const REGIONS: &[&str] = &["Dakar", "Thiès", "Kaolack"];
const STATUSES: &[&str] = &["failed", "ok", "timeout", "Failed"];

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

prop_compose! {
    fn log_event()(
        second in 0i64..30,
        millis in 0i64..1000,
        service in 0..SERVICES.len(),
        level in 0usize..3,
        words in prop::collection::vec(0..WORDS.len(), 0..5),
        region in prop::option::of(0..REGIONS.len()),
        target in any::<bool>(),
        status in prop::option::of(0..STATUSES.len()),
        attempt in prop::option::of(0i64..6),
        retry in prop::option::of(any::<bool>()),
        own_region in prop::option::of(0..REGIONS.len()),
    ) -> LogEvent {
        let mut fields = serde_json::Map::new();
        if let Some(s) = status {
            fields.insert("status".into(), STATUSES[s].into());
        }
        if let Some(a) = attempt {
            fields.insert("attempt".into(), a.into());
        }
        if let Some(r) = retry {
            fields.insert("retry".into(), r.into());
        }
        // A `region` of its own: hoisted, or kept under fields.fields when the log has one.
        if let Some(r) = own_region {
            fields.insert("region".into(), REGIONS[r].into());
        }
        LogEvent {
            timestamp: start() + Duration::seconds(second) + Duration::milliseconds(millis),
            service: SERVICES[service].into(),
            level: [Level::Info, Level::Warn, Level::Error][level],
            message: words.iter().map(|w| WORDS[*w]).collect::<Vec<_>>().join(" "),
            region: region.map(|r| REGIONS[r].to_string()),
            target: target.then(|| "windsock_collector::fetch".to_string()),
            fields,
        }
    }
}

fn index_of(logs: &[LogEvent]) -> EventIndex {
    let index = EventIndex::in_ram().unwrap();
    let mut writer: tantivy::IndexWriter =
        index.index.writer_with_num_threads(1, 15_000_000).unwrap();
    for log in logs {
        let envelope = Envelope::new(Event::Log(log.clone()));
        writer
            .add_document(index.fields.document(&envelope))
            .unwrap();
    }
    writer.commit().unwrap();
    index.reader.reload().unwrap();
    index
}

fn document(log: &LogEvent) -> Document {
    Document::log(&LogRecord {
        timestamp: log.timestamp,
        service: &log.service,
        level: log.level.as_str(),
        message: &log.message,
        region: log.region.as_deref(),
        target: log.target.as_deref(),
        fields: &log.fields,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn the_matcher_counts_what_the_index_finds(logs in prop::collection::vec(log_event(), 1..40)) {
        let index = index_of(&logs);
        let searcher = index.reader.searcher();
        let documents: Vec<Document> = logs.iter().map(document).collect();
        for q in QUERIES {
            let query = windsock_indexer::query::parse_query(&index, q)
                .unwrap_or_else(|e| panic!("the index refuses {q}: {e:?}"));
            let indexed = searcher.search(&query, &Count).unwrap();
            let matcher = windsock_query::parse(q)
                .unwrap_or_else(|e| panic!("the matcher refuses {q}: {e}"));
            let matched = documents.iter().filter(|d| matcher.matches(d)).count();
            prop_assert_eq!(matched, indexed, "{}", q);
        }
    }
}

/// What the index refuses, the matcher refuses too (a rule cannot hold a search that
/// `/api/search` would not run).
#[test]
fn what_the_index_refuses_the_matcher_refuses() {
    let index = EventIndex::in_ram().unwrap();
    for q in [
        "regoin:Dakar",
        "-kind:log",
        "kind:log AND (",
        "temperature_c:hot",
        "message:*",
        "fields.status:[clear TO rain]",
    ] {
        assert!(
            windsock_indexer::query::parse_query(&index, q).is_err(),
            "the index runs {q}"
        );
        assert!(windsock_query::parse(q).is_err(), "the matcher runs {q}");
    }
}
