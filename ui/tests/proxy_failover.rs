//! The API proxy in front of several indexer replicas (`indexer.url` listing them): a
//! replica that does not answer or answers 5xx is passed over for the next one and skipped
//! for a while, then tried again; a 4xx is the answer; when none answers, a 502 names the
//! service without the URLs' credentials. Each failover is counted.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use windsock_core::config::Config;
use windsock_ui::proxy::{Service, Upstreams};

/// A fake indexer replica on `listener`: answers `{"replica": name}` with the status set in
/// the returned cell (200 to start with), and counts the requests it saw.
struct FakeReplica {
    url: String,
    status: Arc<AtomicU16>,
    seen: Arc<AtomicUsize>,
}

fn fake_replica(name: &'static str, listener: std::net::TcpListener) -> FakeReplica {
    let status = Arc::new(AtomicU16::new(200));
    let seen = Arc::new(AtomicUsize::new(0));
    let (answer, count) = (status.clone(), seen.clone());
    let app = Router::new().fallback(any(move || {
        let status = StatusCode::from_u16(answer.load(Ordering::SeqCst)).unwrap();
        count.fetch_add(1, Ordering::SeqCst);
        async move { (status, axum::Json(json!({ "replica": name }))).into_response() }
    }));
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    FakeReplica { url, status, seen }
}

fn bind() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap()
}

/// A port nobody listens on (for now).
fn closed_port() -> u16 {
    bind().local_addr().unwrap().port()
}

fn upstreams(urls: &[String]) -> Upstreams {
    let mut config = Config::default();
    config.indexer.url = urls.to_vec();
    Upstreams::from_config(&config)
        .unwrap()
        .replica_skip(Duration::from_millis(300), Duration::from_millis(300))
}

async fn search(upstreams: &Upstreams, query: &str) -> (StatusCode, Value) {
    let request = Request::get(format!("/api/search?{query}"))
        .body(Body::empty())
        .unwrap();
    let response = upstreams.forward(Service::Indexer, request).await;
    let status = response.status();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        !text.contains("hunter2"),
        "a URL's credentials never reach the browser: {text}"
    );
    (status, serde_json::from_str(&text).unwrap())
}

/// `windsock_proxy_failovers_total{service="indexer"}` as this process renders it.
fn failovers() -> f64 {
    let text = windsock_core::telemetry::prometheus().render();
    text.lines()
        .find_map(|line| line.strip_prefix("windsock_proxy_failovers_total{service=\"indexer\"} "))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

// One test, so the failover counter it reads is moved by nothing else in this binary (the
// other test here never fails over).
#[tokio::test]
async fn a_failing_replica_is_passed_over_skipped_for_a_while_then_asked_again() {
    let port_a = closed_port();
    let b = fake_replica("b", bind());
    let upstreams = upstreams(&[
        format!("http://reader:hunter2@127.0.0.1:{port_a}"),
        b.url.clone(),
    ]);
    let metrics = windsock_core::telemetry::prometheus().render();
    assert!(
        metrics.contains("# TYPE windsock_proxy_failovers_total counter"),
        "{metrics}"
    );
    assert_eq!(failovers(), 0.0, "listed at zero from the start");

    // A is down (connection refused): B answers, and that was one failover.
    let (status, body) = search(&upstreams, "q=*").await;
    assert_eq!(
        (status, body["replica"].as_str()),
        (StatusCode::OK, Some("b"))
    );
    assert_eq!(failovers(), 1.0);
    // Right after, A is skipped: B is asked directly.
    let (status, body) = search(&upstreams, "q=*").await;
    assert_eq!(
        (status, body["replica"].as_str()),
        (StatusCode::OK, Some("b"))
    );
    assert_eq!(failovers(), 1.0, "a skipped replica is not tried first");
    assert_eq!(b.seen.load(Ordering::SeqCst), 2);

    // A comes back: once its skip is over (300 ms, up to twice that with jitter) it is
    // asked first again, as configured.
    let a = fake_replica(
        "a",
        std::net::TcpListener::bind(("127.0.0.1", port_a)).unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, body) = search(&upstreams, "q=*").await;
    assert_eq!(
        (status, body["replica"].as_str()),
        (StatusCode::OK, Some("a"))
    );
    assert_eq!(failovers(), 1.0);

    // A 5xx is a failure too: B answers.
    a.status.store(500, Ordering::SeqCst);
    let (status, body) = search(&upstreams, "q=*").await;
    assert_eq!(
        (status, body["replica"].as_str()),
        (StatusCode::OK, Some("b"))
    );
    assert_eq!(failovers(), 2.0);
    assert_eq!(a.seen.load(Ordering::SeqCst), 2);

    // Every replica answering 5xx: the last one's answer is given as it is.
    b.status.store(503, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, body) = search(&upstreams, "q=*").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["replica"], "b");

    // A 4xx is the answer (the same query is as wrong at every replica): no failover.
    a.status.store(400, Ordering::SeqCst);
    b.status.store(200, Ordering::SeqCst);
    let before = (failovers(), b.seen.load(Ordering::SeqCst));
    let fresh = self::upstreams(&[a.url.clone(), b.url.clone()]);
    let (status, body) = search(&fresh, "q=region:(").await;
    assert_eq!(
        (status, body["replica"].as_str()),
        (StatusCode::BAD_REQUEST, Some("a"))
    );
    assert_eq!((failovers(), b.seen.load(Ordering::SeqCst)), before);

    // None answers: a 502 naming the service, having tried both, without credentials.
    let down = self::upstreams(&[
        format!("http://reader:hunter2@127.0.0.1:{}", closed_port()),
        format!("http://reader:hunter2@127.0.0.1:{}", closed_port()),
    ]);
    let before = failovers();
    let (status, body) = search(&down, "q=*").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"], "the indexer is unavailable");
    assert_eq!(body["detail"]["service"], "indexer");
    assert_eq!(body["detail"]["replicas_tried"], 2);
    let reason = body["detail"]["reason"].as_str().unwrap();
    assert!(reason.contains("Connection refused"), "says why: {reason}");
    assert_eq!(failovers(), before + 1.0);
}

/// A request that is not idempotent (a POST) is not sent again to the next replica once one
/// received it: a 5xx is then the answer (the first may have acted on it).
#[tokio::test]
async fn a_post_that_reached_a_replica_is_not_sent_to_another() {
    let a = fake_replica("a", bind());
    let b = fake_replica("b", bind());
    a.status.store(500, Ordering::SeqCst);
    let upstreams = upstreams(&[a.url.clone(), b.url.clone()]);
    let request = Request::post("/api/search").body(Body::from("{}")).unwrap();
    let response = upstreams.forward(Service::Indexer, request).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(a.seen.load(Ordering::SeqCst), 1);
    assert_eq!(b.seen.load(Ordering::SeqCst), 0, "not sent twice");
}
