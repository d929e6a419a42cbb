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

/// Checks `answer` against the schema `windsock_forecaster::openapi()` gives for `status` of
/// `method path`, reading object schemas that list properties as closed (a field served but
/// not documented is a mismatch). Only what the forecaster's schemas use is checked: `$ref`, `oneOf`, `type`,
/// `properties`/`required`, `additionalProperties`, `items`, `enum` and numeric bounds.
pub fn assert_documented(method: &str, path: &str, status: StatusCode, answer: &Value) {
    let doc = serde_json::to_value(windsock_forecaster::openapi()).unwrap();
    let schema = &doc["paths"][path][method]["responses"][status.as_str()]["content"]
        ["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} documents no {status} answer"
    );
    if let Err(err) = conforms(&doc, schema, answer, "$") {
        panic!("{method} {path} {status}: {err}\nanswer: {answer}");
    }
}

/// Whether `windsock_forecaster::openapi()` documents an answer of `status` for `method path`.
pub fn is_documented(method: &str, path: &str, status: StatusCode) -> bool {
    let doc = serde_json::to_value(windsock_forecaster::openapi()).unwrap();
    doc["paths"][path][method]["responses"][status.as_str()].is_object()
}

fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return conforms(doc, &doc["components"]["schemas"][name], value, at);
    }
    if let Some(branches) = schema["oneOf"].as_array() {
        let matching = branches
            .iter()
            .filter(|branch| conforms(doc, branch, value, at).is_ok())
            .count();
        return match matching {
            1 => Ok(()),
            n => Err(format!("{at}: {value} matches {n} of the oneOf branches")),
        };
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let is = |t: &str| match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    };
    if !types.is_empty() && !types.iter().any(|t| is(t)) {
        return Err(format!("{at}: {value} is not of type {types:?}"));
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            return Err(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(x) = value.as_f64() {
        let bound = |key: &str| schema[key].as_f64();
        let within = bound("minimum").is_none_or(|m| x >= m)
            && bound("maximum").is_none_or(|m| x <= m)
            && bound("exclusiveMinimum").is_none_or(|m| x > m)
            && bound("exclusiveMaximum").is_none_or(|m| x < m);
        if !within {
            return Err(format!("{at}: {x} is outside the documented bounds"));
        }
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            conforms(doc, &schema["items"], item, &format!("{at}[{i}]"))?;
        }
    }
    if let Some(fields) = value.as_object() {
        let properties = schema["properties"].as_object();
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !fields.contains_key(name) {
                return Err(format!("{at}: the required `{name}` is missing"));
            }
        }
        for (name, field) in fields {
            let field_at = format!("{at}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(property) => conforms(doc, property, field, &field_at)?,
                None if schema["additionalProperties"].is_object() => {
                    conforms(doc, &schema["additionalProperties"], field, &field_at)?
                }
                // A free-form object (`detail`) documents no fields.
                None if properties.is_none() => {}
                None => return Err(format!("{field_at} is served but not documented")),
            }
        }
    }
    Ok(())
}
