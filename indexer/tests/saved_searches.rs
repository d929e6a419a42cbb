//! Saved searches: saved, listed, deleted through the API; kept across a restart (a new
//! service over the same data directory); writes need the API token when one is set; bad
//! bodies are 400s that say what is wrong.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use tower::ServiceExt;
use windsock_core::clock::ManualClock;
use windsock_core::config::Config;
use windsock_core::secret::Secret;
use windsock_indexer::{EventIndex, SearchService};

const TOKEN: &str = "s3cret-token";

fn router(data_dir: &Path, token: Option<&str>) -> axum::Router {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Default::default()
    };
    config.http.api_token = token.map(Secret::new);
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap());
    let service = SearchService::new(
        EventIndex::in_ram().unwrap(),
        Arc::new(config),
        Arc::new(clock),
    );
    windsock_indexer::api::routes(service)
}

async fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn saved_searches_round_trip_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let api = router(dir.path(), Some(TOKEN));
    let (status, body) = call(&api, "GET", "/api/saved-searches", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"saved_searches": []}));

    let hot = json!({
        "name": "Hot in Dakar",
        "query": "region:Dakar AND temperature_c:[35 TO *]",
        "from": "now-7d",
        "to": "now",
        "columns": ["region", "temperature_c", "fields.condition"],
    });
    // Without the token, or with a wrong one: 401, nothing saved.
    for token in [None, Some("wrong")] {
        let (status, body) = call(
            &api,
            "POST",
            "/api/saved-searches",
            Some(hot.clone()),
            token,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let (status, saved) = call(
        &api,
        "POST",
        "/api/saved-searches",
        Some(hot.clone()),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{saved}");
    for key in ["name", "query", "from", "to", "columns"] {
        assert_eq!(saved[key], hot[key], "{key}");
    }
    assert_eq!(saved["created_at"], "2026-11-25T12:00:00Z");
    let id = saved["id"].as_str().unwrap().to_string();
    let (status, failing) = call(
        &api,
        "POST",
        "/api/saved-searches",
        Some(json!({"name": "  Failing sources ", "query": "fields.status:failed"})),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{failing}");
    assert_eq!(failing["name"], "Failing sources");
    assert_eq!(failing["columns"], Value::Null);
    assert_ne!(failing["id"], saved["id"]);

    // Another service over the same data directory (a restart) lists both, in order.
    let restarted = router(dir.path(), Some(TOKEN));
    let (_, listed) = call(&restarted, "GET", "/api/saved-searches", None, None).await;
    let listed = listed["saved_searches"].as_array().unwrap().clone();
    assert_eq!(listed, vec![saved.clone(), failing.clone()]);

    // Deleting needs the token; an unknown id is a 404.
    let path = format!("/api/saved-searches/{id}");
    let (status, _) = call(&restarted, "DELETE", &path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&restarted, "DELETE", &path, None, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(&restarted, "DELETE", &path, None, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, listed) = call(&api, "GET", "/api/saved-searches", None, None).await;
    assert_eq!(listed["saved_searches"], json!([failing]));
}

#[tokio::test]
async fn a_bad_saved_search_is_a_400_saying_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    // No token configured: writes are open (as on a loopback-only process).
    let api = router(dir.path(), None);
    for (body, says) in [
        (json!({"name": ""}), "`name` must not be empty"),
        (
            json!({"name": "x".repeat(101)}),
            "`name` is 101 characters long; the limit is 100",
        ),
        (json!({"name": "q", "query": "a".repeat(5000)}), "`query`"),
        (json!({"name": "t", "from": "yesterday"}), "`from`"),
        (
            json!({"name": "c", "columns": vec!["c"; 51]}),
            "`columns` lists 51",
        ),
        (json!({"name": "u", "colour": "red"}), "colour"),
    ] {
        let (status, answer) = call(
            &api,
            "POST",
            "/api/saved-searches",
            Some(body.clone()),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(says), "{body}: {error}");
    }
    let (_, listed) = call(&api, "GET", "/api/saved-searches", None, None).await;
    assert_eq!(listed["saved_searches"], json!([]));
    // Not JSON: 415, in the API's error shape.
    let response = api
        .clone()
        .oneshot(
            Request::post("/api/saved-searches")
                .body(Body::from("name=x"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}
