//! `/api/export`: every hit, oldest first, streamed in chunks whatever the count; CSV that a
//! CSV reader reads back; a cut at `indexer.max_export_events` said up front and at the end.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{Duration, TimeZone, Utc};
use common::{enc, get, routes, start};
use futures::StreamExt;
use serde_json::Value;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tower::ServiceExt;
use windsock_core::clock::ManualClock;
use windsock_core::config::Config;
use windsock_core::event::{Envelope, Event, Level, LogEvent};
use windsock_indexer::export::ExportFormat;
use windsock_indexer::{synthetic, EventIndex, SearchService};

/// The response of `uri`: status, headers, and the body's frames as they arrive.
async fn fetch(
    router: &axum::Router,
    uri: &str,
) -> (StatusCode, axum::http::HeaderMap, Vec<bytes::Bytes>) {
    let response = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let mut stream = body.into_data_stream();
    let mut frames = Vec::new();
    while let Some(frame) = stream.next().await {
        frames.push(frame.unwrap());
    }
    (parts.status, parts.headers, frames)
}

/// Counts the bytes allocated and the most held at once since [`Allocations::reset_peak`]:
/// an export's memory, measured rather than guessed.
struct Allocations;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Allocations {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            let held = HELD.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(held, Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

impl Allocations {
    fn reset_peak() -> usize {
        let held = HELD.load(Ordering::Relaxed);
        PEAK.store(held, Ordering::Relaxed);
        held
    }

    fn peak() -> usize {
        PEAK.load(Ordering::Relaxed)
    }
}

#[global_allocator]
static ALLOCATOR: Allocations = Allocations;

/// The tests of this file one at a time, so one's allocations are not counted in another's.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn an_export_of_100000_events_streams_in_bounded_memory_oldest_first() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let count = 100_000;
    let index = EventIndex::in_ram().unwrap();
    {
        let mut sink = index.writer(200).unwrap();
        let events = synthetic::events(count, start(), Duration::days(1), 11);
        for (i, envelope) in events.iter().enumerate() {
            sink.upsert(envelope, None).unwrap();
            if i % 40_000 == 39_999 {
                sink.commit("test").unwrap();
            }
        }
        sink.commit("test").unwrap();
        sink.finish().unwrap();
    }
    let (router, _) = routes(&index, start() + Duration::days(2));
    let uri = format!(
        "/api/export?q=*&from={}&to=now&format=ndjson",
        enc("2026-11-22T00:00:00Z")
    );
    // What every event's id is kept as here (8 bytes each), so the test's own memory stays
    // small beside what it measures.
    let mut seen: HashSet<u64> = HashSet::with_capacity(count);
    let before = Allocations::reset_peak();
    let response = router
        .clone()
        .oneshot(Request::get(uri.as_str()).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/x-ndjson");
    assert_eq!(headers["x-windsock-export-total"], "100000");
    assert_eq!(headers["x-windsock-export-truncated"], "false");
    assert!(headers.get("content-length").is_none(), "{headers:?}");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert_eq!(
        disposition,
        "attachment; filename=\"windsock-export-20261122T000000Z-20261125T000000Z.ndjson\""
    );
    let mut stream = response.into_body().into_data_stream();
    let (mut frames, mut largest, mut total_bytes) = (0, 0, 0);
    let mut last = None;
    let mut partial = Vec::new();
    while let Some(frame) = stream.next().await {
        let frame = frame.unwrap();
        frames += 1;
        largest = largest.max(frame.len());
        total_bytes += frame.len();
        partial.extend_from_slice(&frame);
        let complete = partial
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        for line in std::str::from_utf8(&partial[..complete]).unwrap().lines() {
            let envelope = Envelope::from_json_text(line).unwrap();
            let at = envelope.event.timestamp();
            assert!(last.is_none_or(|l| l <= at), "out of order at {at}");
            last = Some(at);
            let hash = std::hash::BuildHasher::hash_one(
                &std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default(),
                &envelope.id,
            );
            assert!(seen.insert(hash), "an event twice");
        }
        partial.drain(..complete);
    }
    let peak = Allocations::peak().saturating_sub(before);
    assert!(partial.is_empty());
    assert_eq!(seen.len(), count);
    // Streamed: many chunks, none more than a page of events, and at no time most of the
    // body held (a body built whole holds all of it, some 37 MB, at once; here a window of
    // 20,000 addresses, tantivy's document store caches, a few chunks and the test's own
    // line: 19 MB measured).
    assert!(frames >= 50, "{frames} frames");
    assert!(
        largest < 2 << 20,
        "a frame of {largest} bytes of {total_bytes}"
    );
    assert!(total_bytes > 30 << 20, "{total_bytes}");
    assert!(
        peak < total_bytes * 3 / 4,
        "{peak} bytes held at most during an export of {total_bytes}"
    );
    println!("export of {total_bytes} bytes in {frames} chunks held at most {peak} bytes more");
}

fn log(at: chrono::DateTime<Utc>, message: &str, seq: usize) -> Envelope {
    let mut fields = serde_json::Map::new();
    fields.insert("seq".into(), seq.into());
    Envelope::new(Event::Log(LogEvent {
        timestamp: at,
        service: "collector".into(),
        level: Level::Warn,
        message: message.into(),
        region: Some("Dakar".into()),
        target: Some("windsock_collector::run".into()),
        fields,
    }))
}

fn service(index: &EventIndex, config: Config) -> axum::Router {
    let clock = ManualClock::new(start() + Duration::days(2));
    let service = SearchService::new(index.clone(), Arc::new(config), Arc::new(clock));
    windsock_indexer::api::routes(service)
}

#[tokio::test]
async fn hits_sharing_an_instant_across_windows_come_once_each() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // 5,000 events at one instant between others: more than two windows of 2,000.
    let index = EventIndex::in_ram().unwrap();
    let mut sink = index.writer(50).unwrap();
    let instant = start() + Duration::hours(1);
    let mut expected = HashSet::new();
    for i in 0..7_000 {
        let at = match i {
            0..1_000 => start() + Duration::seconds(i as i64),
            1_000..6_000 => instant,
            _ => instant + Duration::seconds(i as i64),
        };
        let envelope = log(at, "fetch failed", i);
        expected.insert(envelope.id.clone());
        sink.upsert(&envelope, None).unwrap();
    }
    sink.commit("test").unwrap();
    let from = start() - Duration::days(1);
    let to = start() + Duration::days(1);
    for fetch in [2_000, 999, 7_000, windsock_indexer::export::FETCH] {
        let export = index
            .export("*", from, to, ExportFormat::Ndjson, u64::MAX)
            .unwrap()
            .with_fetch(fetch);
        let mut text = Vec::new();
        export
            .write(|chunk| {
                text.extend_from_slice(&chunk);
                true
            })
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| Envelope::from_json_text(l).unwrap().id)
            .collect();
        assert_eq!(ids.len(), 7_000, "windows of {fetch}");
        assert_eq!(
            ids.into_iter().collect::<HashSet<_>>(),
            expected,
            "windows of {fetch}"
        );
    }
    // Through the API too.
    let (router, _) = routes(&index, start() + Duration::days(2));
    let (status, _, frames) = fetch(
        &router,
        &format!(
            "/api/export?q=*&from={}&format=ndjson",
            enc("2026-11-22T00:00:00Z")
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(frames.concat()).unwrap();
    assert_eq!(text.lines().count(), 7_000);
}

#[tokio::test]
async fn csv_reads_back_with_its_header_and_quoting_and_defused_formulas() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let index = EventIndex::in_ram().unwrap();
    let mut sink = index.writer(50).unwrap();
    let tricky = "fetch failed: \"upstream\", said\nno";
    let formula = "=HYPERLINK(\"http://evil\")";
    sink.upsert(&log(start(), tricky, 1), None).unwrap();
    sink.upsert(&log(start() + Duration::seconds(1), formula, 2), None)
        .unwrap();
    for envelope in synthetic::events(300, start() + Duration::minutes(1), Duration::hours(1), 3) {
        sink.upsert(&envelope, None).unwrap();
    }
    sink.commit("test").unwrap();
    let (router, _) = routes(&index, start() + Duration::days(2));
    let (status, headers, frames) = fetch(
        &router,
        &format!("/api/export?q=*&from={}", enc("2026-11-22T00:00:00Z")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .ends_with(".csv\""));
    let text = frames.concat();
    let mut reader = csv::Reader::from_reader(text.as_slice());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        &header[..8],
        [
            "id",
            "timestamp",
            "kind",
            "region",
            "level",
            "service",
            "source",
            "message"
        ]
    );
    assert!(header.contains(&"temperature_c".to_string()));
    assert_eq!(header.last().unwrap(), "attributes");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 302);
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(&rows[0][column("message")], tricky);
    assert_eq!(&rows[1][column("message")], &format!("'{formula}"));
    let attributes: Value = serde_json::from_str(&rows[0][column("attributes")]).unwrap();
    assert_eq!(attributes["fields"]["seq"], 1, "{attributes}");
    assert_eq!(attributes["target"], "windsock_collector::run");
    // An observation: its metrics in their columns, negative or not, as numbers.
    let observation = rows
        .iter()
        .find(|r| &r[column("kind")] == "observation")
        .unwrap();
    let temperature: f64 = observation[column("temperature_c")].parse().unwrap();
    assert!((10.0..45.0).contains(&temperature), "{temperature}");
    assert_eq!(observation.len(), header.len());
}

#[tokio::test]
async fn an_export_past_the_maximum_is_cut_and_says_so() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let index = EventIndex::in_ram().unwrap();
    let mut sink = index.writer(50).unwrap();
    for i in 0..500 {
        sink.upsert(
            &log(start() + Duration::seconds(i), "fetch failed", i as usize),
            None,
        )
        .unwrap();
    }
    sink.commit("test").unwrap();
    let mut config = Config::default();
    config.indexer.max_export_events = 120;
    let router = service(&index, config);
    let from = enc("2026-11-22T00:00:00Z");
    let (status, headers, frames) = fetch(
        &router,
        &format!("/api/export?q=*&from={from}&format=ndjson"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-windsock-export-total"], "500");
    assert_eq!(headers["x-windsock-export-truncated"], "true");
    let text = String::from_utf8(frames.concat()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 121);
    let last: Value = serde_json::from_str(lines[120]).unwrap();
    assert_eq!(
        last,
        serde_json::json!({"truncated": true, "total": 500, "exported": 120})
    );
    // The oldest 120.
    let first: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first["fields"]["seq"], 0);
    let (_, headers, frames) = fetch(&router, &format!("/api/export?q=*&from={from}")).await;
    assert_eq!(headers["x-windsock-export-truncated"], "true");
    let text = frames.concat();
    assert_eq!(
        csv::Reader::from_reader(text.as_slice()).records().count(),
        120
    );

    // A narrower search is whole.
    let (_, headers, _) = fetch(
        &router,
        &format!(
            "/api/export?q=*&from={from}&to={}&format=ndjson",
            enc(&(start() + Duration::seconds(99)).to_rfc3339())
        ),
    )
    .await;
    assert_eq!(headers["x-windsock-export-total"], "100");
    assert_eq!(headers["x-windsock-export-truncated"], "false");
}

#[tokio::test]
async fn a_bad_format_or_query_is_a_400_naming_it() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let index = EventIndex::in_ram().unwrap();
    let (router, _) = routes(&index, Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap());
    for (query, parameter) in [
        ("format=xlsx", Some("format")),
        ("from=yesterday", Some("from")),
        ("q=region%3A%28Dakar", None),
    ] {
        let (status, body) = get(&router, &format!("/api/export?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        match parameter {
            Some(p) => assert_eq!(body["detail"]["parameter"], p, "{body}"),
            None => assert_eq!(body["detail"]["reason"], "syntax", "{body}"),
        }
    }
}
