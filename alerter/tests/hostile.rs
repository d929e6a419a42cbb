//! Hostile input against the alert API: the inputs that crashed or slipped through once, and
//! generated ones (proptest). Never a panic, never a 5xx; every 4xx is the JSON error shape.

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use support::*;
use windsock_core::clock::ManualClock;

async fn harness() -> (Harness, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        None,
        vec![hot_rule(Duration::ZERO, 0.0)],
        regions(&["Dakar", "Thiès"]),
    );
    (Harness::start(config, ManualClock::new(t0())).await, dir)
}

/// Sends a request and returns its status and body; a dropped connection (a panicking
/// handler) fails the test.
async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Vec<u8>) {
    let response = request
        .send()
        .await
        .expect("an answer, not a dropped connection");
    let status = response.status();
    (status, response.bytes().await.unwrap().to_vec())
}

/// The status, and the `error` message the JSON error shape must carry on a 4xx.
fn judged(status: StatusCode, body: &[u8]) -> Result<Option<String>, String> {
    if status.is_server_error() {
        return Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(500)])
        ));
    }
    if !status.is_client_error() {
        return Ok(None);
    }
    let parsed: Value = serde_json::from_slice(body).map_err(|err| {
        format!(
            "{status} with a body that is not JSON ({err}): {}",
            String::from_utf8_lossy(&body[..body.len().min(500)])
        )
    })?;
    match parsed["error"].as_str() {
        Some(error) if !error.is_empty() => Ok(Some(error.to_string())),
        _ => Err(format!("{status} without an `error` string: {parsed}")),
    }
}

async fn post_silence(h: &Harness, body: &Value) -> (StatusCode, String) {
    let (status, bytes) = send(h.http.post(format!("{}/api/silences", h.api)).json(body)).await;
    let error = judged(status, &bytes).unwrap();
    (status, error.unwrap_or_default())
}

fn silence(extra: Value) -> Value {
    let mut body = json!({"region": "Dakar", "author": "awa", "comment": "maintenance"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test]
async fn huge_durations_are_a_400_that_says_the_maximum() {
    let (h, _dir) = harness().await;
    for duration in ["300000y", "1000000000y", "366d", "9999999999999999999999s"] {
        let (status, error) = post_silence(&h, &silence(json!({ "duration": duration }))).await;
        assert_eq!(status, 400, "{duration}: {error}");
        assert!(error.contains("`duration`"), "{duration}: {error}");
    }
    let (_, error) = post_silence(&h, &silence(json!({ "duration": "300000y" }))).await;
    assert!(error.contains("maximum of 365 days"), "{error}");
    let (status, _) = post_silence(&h, &silence(json!({ "duration": "365d" }))).await;
    assert_eq!(status, 201);
    h.stop().await;
}

#[tokio::test]
async fn times_far_away_are_refused_not_added() {
    let (h, _dir) = harness().await;
    for (extra, says) in [
        (
            json!({"starts_at": "9999-12-31T23:59:59Z", "duration": "1y"}),
            "ahead",
        ),
        (
            json!({"ends_at": "9999-12-31T23:59:59Z"}),
            "at most 365 days",
        ),
        (
            json!({"starts_at": "0001-01-01T00:00:00Z", "ends_at": "2026-11-26T00:00:00Z"}),
            "at most 365 days",
        ),
        (
            json!({"starts_at": "0001-01-01T00:00:00Z", "duration": "1h"}),
            "in the past",
        ),
        (
            json!({"ends_at": "0001-01-01T00:00:00Z"}),
            "end after it starts",
        ),
        (
            json!({"starts_at": "+262142-12-31T23:59:59Z", "duration": "300d"}),
            "",
        ),
        (json!({"ends_at": "not a time"}), ""),
        (json!({"starts_at": 1e300, "duration": "1h"}), ""),
    ] {
        let body = silence(extra.clone());
        let (status, error) = post_silence(&h, &body).await;
        assert_eq!(status, 400, "{extra}: {error}");
        assert!(error.contains(says), "{extra}: {error}");
    }
    h.stop().await;
}

#[tokio::test]
async fn unknown_regions_and_oversized_texts_are_refused() {
    let (h, _dir) = harness().await;
    let (status, error) = post_silence(
        &h,
        &silence(json!({"region": "Atlantis", "duration": "1h"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error.contains("region `Atlantis` is not a configured region (regions: Dakar, Thiès)"),
        "{error}"
    );
    let (status, error) = post_silence(
        &h,
        &silence(json!({"region": "x".repeat(5000), "duration": "1h"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error.len() < 500,
        "the error echoes a bounded part: {error}"
    );

    let (status, error) = post_silence(
        &h,
        &silence(json!({"comment": "é".repeat(1001), "duration": "1h"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error.contains("`comment` is 1001 characters long; the limit is 1000 characters"),
        "{error}"
    );
    let (status, error) = post_silence(
        &h,
        &silence(json!({"author": "a".repeat(101), "duration": "1h"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error.contains("`author`") && error.contains("100"),
        "{error}"
    );
    let (status, _) = post_silence(
        &h,
        &silence(json!({"comment": "é".repeat(1000), "duration": "1h"})),
    )
    .await;
    assert_eq!(status, 201, "exactly at the limit is fine");

    // 1.5 MB of comment: refused before it is read whole, in the JSON shape.
    let (status, error) = post_silence(
        &h,
        &silence(json!({"comment": "c".repeat(1_500_000), "duration": "1h"})),
    )
    .await;
    assert_eq!(status, 413);
    assert!(error.contains("larger than the limit of 64 KiB"), "{error}");
    h.stop().await;
}

#[tokio::test]
async fn malformed_requests_are_json_4xx_with_the_right_status() {
    let (h, _dir) = harness().await;
    let url = format!("{}/api/silences", h.api);
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (h.http.post(&url).body("{\"region\":").header("content-type", "application/json"), 400),
        (h.http.post(&url).json(&json!({"region": "Dakar", "author": 5, "comment": "x", "duration": "1h"})), 400),
        (h.http.post(&url).json(&json!([1, 2, 3])), 400),
        (h.http.post(&url).json(&json!({"region": "Dakar", "author": "a", "comment": "b", "duration": "1h", "extra": true})), 400),
        (h.http.post(&url).body("{}").header("content-type", "text/plain"), 415),
        (h.http.post(&url).body("{}"), 415),
        (h.http.get(format!("{}/api/alerts?limit=99999999999999999999999", h.api)), 400),
        (h.http.get(format!("{}/api/alerts?limit=-1", h.api)), 400),
        (h.http.get(format!("{}/api/alerts?state=firing&state=resolved", h.api)), 400),
        (h.http.get(format!("{}/api/alerts?state={}", h.api, "z".repeat(20_000))), 400),
        (h.http.get(format!("{}/api/alerts?nope=1", h.api)), 400),
        (h.http.get(format!("{}/api/alerts/{}/history", h.api, "a".repeat(20_000))), 404),
        (h.http.delete(format!("{}/api/silences/{}", h.api, "%F0%9F%92%A5".repeat(500))), 404),
        (h.http.get(format!("{}/api/deliveries?limit=nan", h.api)), 400),
        (h.http.get(format!("{}/api/alerts/%FF%FE/history", h.api)), 400),
        // One alert, and acknowledging one.
        (h.http.get(format!("{}/api/alerts/{}", h.api, "a".repeat(20_000))), 404),
        (h.http.get(format!("{}/api/alerts/%FF%FE", h.api)), 400),
        (h.http.post(format!("{}/api/alerts/nope/acknowledge", h.api)).json(&json!({"by": "awa"})), 404),
        (h.http.post(format!("{}/api/alerts/nope/acknowledge", h.api)).json(&json!({"by": "awa", "extra": 1})), 400),
        (h.http.post(format!("{}/api/alerts/nope/acknowledge", h.api)).json(&json!({"by": "a".repeat(101)})), 400),
        (h.http.post(format!("{}/api/alerts/nope/acknowledge", h.api)).body("{}"), 415),
        (h.http.post(format!("{}/api/alerts/nope/acknowledge", h.api)).body(vec![b' '; 70 * 1024]).header("content-type", "application/json"), 413),
        (h.http.delete(format!("{}/api/alerts/nope/acknowledge?by={}", h.api, "b".repeat(101))), 400),
        (h.http.delete(format!("{}/api/alerts/nope/acknowledge?who=x", h.api)), 400),
        (h.http.delete(format!("{}/api/alerts/{}/acknowledge", h.api, "%F0%9F%92%A5".repeat(500))), 404),
    ];
    for (request, expected) in cases {
        let described = format!("{request:?}");
        let (status, body) = send(request).await;
        let error = judged(status, &body).unwrap_or_else(|e| panic!("{described}: {e}"));
        assert_eq!(status.as_u16(), expected, "{described}: {error:?}");
        let error = error.unwrap();
        assert!(error.chars().count() < 600, "{described}: {error}");
    }
    // Accepted `limit`s out of range are clamped, not refused.
    let (status, _) = send(h.http.get(format!("{}/api/alerts?limit=0", h.api))).await;
    assert_eq!(status, 200);
    h.stop().await;
}

/// A JSON value of any shape, nested a few levels.
fn junk() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn duration() -> impl Strategy<Value = Value> {
    let units = prop::sample::select(vec![
        "", "ns", "us", "µs", "ms", "s", "sec", "m", "min", "h", "hr", "d", "day", "w", "week",
        "M", "month", "y", "year", "years", "x",
    ]);
    prop_oneof![
        ("[0-9]{1,30}", units.clone()).prop_map(|(n, u)| Value::from(format!("{n}{u}"))),
        ("[0-9]{1,6}", units.clone(), "[0-9]{1,20}", units)
            .prop_map(|(a, u, b, v)| Value::from(format!("{a}{u} {b}{v}"))),
        "\\PC{0,30}".prop_map(Value::from),
        junk(),
    ]
}

fn time() -> impl Strategy<Value = Value> {
    prop_oneof![
        // Any instant chrono can hold, and years it cannot.
        (chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp()
            ..chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp())
            .prop_map(|s| {
                let t = chrono::DateTime::from_timestamp(s, 0).unwrap();
                Value::from(t.to_rfc3339())
            }),
        (-300_000i64..300_000, 1u32..13, 1u32..29)
            .prop_map(|(y, m, d)| { Value::from(format!("{y:+07}-{m:02}-{d:02}T00:00:00Z")) }),
        // Near the alerter's clock (t0), either side.
        (-800i64 * 86_400..800 * 86_400)
            .prop_map(|s| { Value::from((t0() + chrono::Duration::seconds(s)).to_rfc3339()) }),
        "[0-9T:+Z-]{0,30}".prop_map(Value::from),
        junk(),
    ]
}

fn text() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::from("Dakar")),
        Just(Value::from("hot")),
        "\\PC{0,40}".prop_map(Value::from),
        (1usize..3000).prop_map(|n| Value::from("ü".repeat(n))),
        junk(),
    ]
}

fn silence_body() -> impl Strategy<Value = Vec<u8>> {
    let object = (
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(time()),
        prop::option::of(time()),
        prop::option::of(duration()),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(junk()),
    )
        .prop_map(
            |(rule, region, starts_at, ends_at, duration, author, comment, extra)| {
                let mut body = serde_json::Map::new();
                for (key, value) in [
                    ("rule", rule),
                    ("region", region),
                    ("starts_at", starts_at),
                    ("ends_at", ends_at),
                    ("duration", duration),
                    ("author", author),
                    ("comment", comment),
                    ("extra", extra),
                ] {
                    if let Some(value) = value {
                        body.insert(key.to_string(), value);
                    }
                }
                serde_json::to_vec(&Value::Object(body)).unwrap()
            },
        );
    prop_oneof![
        6 => object,
        1 => junk().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// Runs `check` on a multi-threaded runtime shared by every case (the alerter keeps running
/// between them, as it would under a stream of bad requests).
fn fuzz<S: Strategy>(
    cases: u32,
    strategy: S,
    check: impl Fn(&tokio::runtime::Runtime, &Harness, S::Value) -> Result<(), TestCaseError>,
) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (h, _dir) = runtime.block_on(harness());
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&strategy, |value| check(&runtime, &h, value));
    runtime.block_on(h.stop());
    if let Err(err) = result {
        panic!("{err}");
    }
}

#[test]
fn generated_silences_never_panic_nor_5xx_and_every_4xx_is_json() {
    fuzz(256, silence_body(), |runtime, h, body| {
        let (status, bytes) = runtime.block_on(send(
            h.http
                .post(format!("{}/api/silences", h.api))
                .header("content-type", "application/json")
                .body(body.clone()),
        ));
        judged(status, &bytes).map_err(|e| {
            TestCaseError::fail(format!("{e} for {}", String::from_utf8_lossy(&body)))
        })?;
        prop_assert!(
            status == StatusCode::CREATED || status.is_client_error(),
            "{status}"
        );
        Ok(())
    });
}

#[test]
fn generated_queries_and_ids_never_panic_nor_5xx() {
    let path = prop_oneof![
        Just("/api/alerts?".to_string()),
        Just("/api/deliveries?".to_string()),
        Just("/api/rules?".to_string()),
        Just("/api/silences?".to_string()),
        "[a-zA-Z0-9%._~-]{0,80}".prop_map(|id| format!("/api/alerts/{id}/history?")),
        // Led by a letter: an empty or dot segment (`/api/alerts/`, `/api/alerts/..`) is no
        // route of the alerter's (the served process answers its JSON 404 from the hardening
        // layer).
        "[a-zA-Z0-9%._~-]{0,80}".prop_map(|id| format!("/api/alerts/a{id}?")),
    ];
    let pair = (
        prop::sample::select(vec!["state", "region", "limit", "status", "x", ""]),
        prop_oneof![
            "[a-zA-Z0-9%+&=._-]{0,40}".boxed(),
            "[0-9]{1,40}".boxed(),
            Just("-1".to_string()).boxed(),
        ],
    );
    let query = prop::collection::vec(pair, 0..4);
    fuzz(128, (path, query), |runtime, h, (path, query)| {
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let url = format!("{}{path}{}", h.api, query.join("&"));
        let (status, bytes) = runtime.block_on(send(h.http.get(&url)));
        judged(status, &bytes).map_err(|e| TestCaseError::fail(format!("{e} for {url}")))?;
        Ok(())
    });
}
