//! Shared by the indexer's tests: generated events, an index of them, the HTTP routes over it,
//! and brute-force answers to compare the index against.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;
use windsock_core::clock::ManualClock;
use windsock_core::config::Config;
use windsock_core::event::Envelope;
use windsock_indexer::describe::{describe, Description};
use windsock_indexer::{synthetic, EventIndex, SearchService};

pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap()
}

/// 4000 events over two days, indexed in RAM in several commits (several segments).
pub fn indexed_events() -> (EventIndex, Vec<Envelope>) {
    let events = synthetic::events(4000, start(), Duration::days(2), 7);
    let index = EventIndex::in_ram().unwrap();
    let mut sink = index.writer(50).unwrap();
    for (i, envelope) in events.iter().enumerate() {
        sink.upsert(envelope, None).unwrap();
        if i % 1500 == 1499 {
            sink.commit("test").unwrap();
        }
    }
    sink.commit("test").unwrap();
    (index, events)
}

/// The routes over `index`, with a clock at `now`.
pub fn routes(index: &EventIndex, now: DateTime<Utc>) -> (axum::Router, ManualClock) {
    let clock = ManualClock::new(now);
    let config = Arc::new(Config::default());
    let service = SearchService::new(index.clone(), config, Arc::new(clock.clone()));
    (windsock_indexer::api::routes(service), clock)
}

/// GET `uri` on `router`: the status and JSON body.
pub async fn get(router: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let response = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body)
}

/// Percent-encodes a query parameter value.
pub fn enc(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn describe_all(events: &[Envelope]) -> Vec<(&Envelope, Description)> {
    events.iter().map(|e| (e, describe(&e.event))).collect()
}
