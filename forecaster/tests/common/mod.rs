#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;
use windsock_core::bus::{publish_event, SharedBus};
use windsock_core::event::{Event, Observation};
use windsock_core::Config;

pub const SAND_POINT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/sand-point-ak-tmy3-hourly.csv"
);

/// The Sand Point hourly series, or `None` (and a message) when the data is missing on a
/// developer's machine. In CI (`CI` set) the data is always beside the clone, so missing data
/// fails the test instead of letting it pass without checking anything.
pub fn sand_point() -> Option<Vec<(DateTime<Utc>, f64)>> {
    let Ok(text) = std::fs::read_to_string(SAND_POINT) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{SAND_POINT} is missing in CI"
        );
        eprintln!("skipping: {SAND_POINT} is missing");
        return None;
    };
    Some(
        text.lines()
            .skip(1)
            .map(|line| {
                let (ts, temp) = line.split_once(',').unwrap();
                (ts.parse().unwrap(), temp.parse().unwrap())
            })
            .collect(),
    )
}

pub fn config(data_dir: &std::path::Path) -> Arc<Config> {
    Arc::new(Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    })
}

pub async fn publish_observations(bus: &SharedBus, region: &str, points: &[(DateTime<Utc>, f64)]) {
    for (at, temperature_c) in points {
        let observation = Observation {
            region: region.into(),
            lat: 14.69,
            lon: -17.45,
            observed_at: *at,
            fetched_at: *at,
            source: "replay".into(),
            temperature_c: *temperature_c,
            ..Default::default()
        };
        publish_event(bus.as_ref(), Event::Observation(observation))
            .await
            .unwrap();
    }
}

/// Sends a request to the router; returns the status and the body as JSON (`Null` if the
/// body is empty, as the router's own 404 and 405 are).
pub async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let response = router
        .clone()
        .oneshot(request.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .unwrap();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, json)
}

pub async fn get(router: &Router, uri: &str) -> (StatusCode, Value) {
    call(router, "GET", uri, None, Body::empty()).await
}

/// Polls `GET uri` until it answers 200 (at most a minute: refits are fast, CI is slow).
pub async fn wait_for_ok(router: &Router, uri: &str) -> Value {
    for _ in 0..1200 {
        let (status, body) = get(router, uri).await;
        if status == StatusCode::OK {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{uri} never answered 200");
}
