//! `harden`: one JSON error shape for every status, no panic escaping a handler, bounded
//! requests, and DNS-rebinding protection on loopback. Each test drives a small router
//! through the layers, as every service's routes are driven in the binary.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query};
use axum::http::{header, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use proptest::prelude::*;
use serde_json::Value;
use std::net::SocketAddr;
use tower::ServiceExt;
use windsock_core::config::HttpConfig;
use windsock_core::http::{error_response, harden};

const BODY_LIMIT: usize = 1024;
const URI_LIMIT: usize = 300;
const INTERNAL: &str = "the disk at /var/lib/windsock-internal failed";

#[derive(serde::Deserialize, serde::Serialize)]
struct Item {
    name: String,
}

#[derive(serde::Deserialize)]
struct Search {
    q: String,
}

async fn panics() -> &'static str {
    panic!("{INTERNAL}")
}

fn routes() -> Router {
    Router::new()
        .route(
            "/items",
            get(|| async { Json(Vec::<Item>::new()) })
                .post(|Json(item): Json<Item>| async move { Json(item) }),
        )
        .route(
            "/items/{id}",
            get(|Path(id): Path<u32>| async move { id.to_string() }).delete(|| async { "gone" }),
        )
        .route(
            "/search",
            get(|Query(search): Query<Search>| async move { search.q }),
        )
        .route(
            "/upload",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
        .route("/panic", get(panics))
        .route(
            "/broken",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, INTERNAL) }),
        )
        .route(
            "/teapot",
            get(|| async {
                (
                    StatusCode::IM_A_TEAPOT,
                    [("x-kept", "yes"), ("retry-after", "5")],
                    "short and stout",
                )
            }),
        )
        .route(
            "/conflict",
            get(|| async {
                error_response(
                    StatusCode::CONFLICT,
                    "already there",
                    Some(serde_json::json!({"id": 1})),
                )
            }),
        )
}

fn config(listen: &str) -> HttpConfig {
    HttpConfig {
        listen: listen.parse().unwrap(),
        public_url: Some("https://windsock.example.org/ui".into()),
        max_body_bytes: BODY_LIMIT,
        max_uri_bytes: URI_LIMIT,
        ..HttpConfig::default()
    }
}

fn app() -> Router {
    harden(routes(), &config("127.0.0.1:8080"))
}

fn request(method: Method, uri: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "127.0.0.1:8080")
        .body(Body::empty())
        .unwrap()
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        assert_eq!(
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{} {}",
            self.status,
            self.text
        );
        serde_json::from_str(&self.text)
            .unwrap_or_else(|err| panic!("{} is not JSON ({err}): {}", self.status, self.text))
    }

    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no `error` in {}", self.text))
            .to_string()
    }
}

async fn send(router: Router, request: Request<Body>) -> Answer {
    let response: Response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// The value of a counter in the process's Prometheus text (0 when not there yet).
fn counter(series: &str) -> f64 {
    windsock_core::telemetry::prometheus()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

#[tokio::test]
async fn an_unknown_route_is_a_json_404() {
    let answer = send(app(), request(Method::GET, "/nothing/here?x=1")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.error(), "no route for GET /nothing/here");
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_naming_the_allowed_ones() {
    let answer = send(app(), request(Method::PUT, "/items/3")).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.error(), "PUT is not allowed on /items/3");
    let json = answer.json();
    let allowed: Vec<&str> = json["detail"]["allowed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for method in ["GET", "DELETE"] {
        assert!(allowed.contains(&method), "{allowed:?}");
    }
    assert!(
        answer.headers.contains_key(header::ALLOW),
        "the Allow header is kept"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_json_413_naming_the_limit() {
    let big = vec![b'x'; BODY_LIMIT + 1];
    // Declared up front (refused before the handler) and streamed without a length (refused
    // by the extractor reading it): the same answer.
    let declared = Request::post("/upload")
        .header(header::HOST, "localhost")
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big.clone()))
        .unwrap();
    let chunks: Vec<Result<Bytes, std::io::Error>> = big
        .chunks(100)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let streamed = Request::post("/upload")
        .header(header::HOST, "localhost")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    let json = Request::post("/items")
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(format!(
            "{{\"name\": \"{}\"}}",
            "n".repeat(BODY_LIMIT)
        )))
        .unwrap();
    for request in [declared, streamed, json] {
        let answer = send(app(), request).await;
        assert_eq!(
            answer.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{}",
            answer.text
        );
        assert_eq!(
            answer.error(),
            format!("the request body is over the limit of {BODY_LIMIT} bytes")
        );
        assert_eq!(answer.json()["detail"]["limit_bytes"], BODY_LIMIT);
    }
    let answer = send(
        app(),
        Request::post("/upload")
            .header(header::HOST, "localhost")
            .body(Body::from(vec![b'x'; BODY_LIMIT]))
            .unwrap(),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "the limit itself is accepted"
    );
}

#[tokio::test]
async fn a_uri_over_the_limit_is_a_json_414_naming_the_limit() {
    let uri = format!("/search?q={}", "a".repeat(URI_LIMIT));
    let answer = send(app(), request(Method::GET, &uri)).await;
    assert_eq!(answer.status, StatusCode::URI_TOO_LONG);
    assert_eq!(
        answer.error(),
        format!("the request URI is over the limit of {URI_LIMIT} bytes")
    );
    let uri = format!("/search?q={}", "a".repeat(URI_LIMIT - "/search?q=".len()));
    let answer = send(app(), request(Method::GET, &uri)).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "the limit itself is accepted"
    );
}

#[tokio::test]
async fn a_panicking_handler_is_a_json_500_without_detail_and_is_counted() {
    // Registered at zero before any panic.
    assert!(windsock_core::telemetry::prometheus()
        .render()
        .contains("windsock_http_panics_total"));
    let panics = counter("windsock_http_panics_total");
    let errors = counter("windsock_http_errors_total{status=\"500\"}");
    let answer = send(app(), request(Method::GET, "/panic")).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.text, r#"{"error":"internal error"}"#);
    assert!(counter("windsock_http_panics_total") >= panics + 1.0);
    assert!(counter("windsock_http_errors_total{status=\"500\"}") >= errors + 1.0);
}

#[tokio::test]
async fn plain_text_errors_become_json_and_a_5xx_keeps_no_internal_text() {
    // axum's own plain-text rejections: a repeated parameter, a path that is not a number,
    // a body that is not JSON.
    let answer = send(app(), request(Method::GET, "/search?q=a&q=b")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.error().contains("duplicate field `q`"),
        "{}",
        answer.text
    );
    let answer = send(app(), request(Method::GET, "/items/many")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.error().contains("many"), "{}", answer.text);
    let answer = send(
        app(),
        Request::post("/items")
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{\"name\":"))
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.error().contains("JSON"), "{}", answer.text);

    let answer = send(app(), request(Method::GET, "/broken")).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.error(), "internal error");
    assert!(
        !answer.text.contains("windsock-internal"),
        "{}",
        answer.text
    );

    // The status and every other header stay.
    let answer = send(app(), request(Method::GET, "/teapot")).await;
    assert_eq!(answer.status, StatusCode::IM_A_TEAPOT);
    assert_eq!(answer.error(), "short and stout");
    assert_eq!(answer.headers["x-kept"], "yes");
    assert_eq!(answer.headers[header::RETRY_AFTER], "5");
}

#[tokio::test]
async fn a_json_error_passes_untouched_and_every_error_is_counted_by_status() {
    let before = counter("windsock_http_errors_total{status=\"409\"}");
    let answer = send(app(), request(Method::GET, "/conflict")).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(
        answer.json(),
        serde_json::json!({"error": "already there", "detail": {"id": 1}})
    );
    assert!(counter("windsock_http_errors_total{status=\"409\"}") >= before + 1.0);
    for status in ["400", "404", "405", "413", "414", "421", "500"] {
        let series = format!("windsock_http_errors_total{{status=\"{status}\"}}");
        assert!(
            windsock_core::telemetry::prometheus()
                .render()
                .contains(&series),
            "{series} is registered"
        );
    }
}

fn with_host(host: &str, router: Router) -> impl std::future::Future<Output = Answer> {
    let request = Request::post("/items")
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"name": "x"}"#))
        .unwrap();
    send(router, request)
}

#[tokio::test]
async fn on_loopback_a_foreign_host_is_refused() {
    for host in [
        "evil.example.com",
        "evil.example.com:8080",
        "127.0.0.1.evil.example.com",
        "localhost.evil.example.com",
        "10.0.0.1:8080",
        "[::2]:8080",
        "windsock.example.org.evil.com",
        "not a host",
    ] {
        let answer = with_host(host, app()).await;
        assert_eq!(answer.status, StatusCode::MISDIRECTED_REQUEST, "{host}");
        assert!(answer.error().contains("DNS rebinding"), "{}", answer.text);
        assert_eq!(answer.json()["detail"]["host"], host);
    }
    // An HTTP/2 or absolute-form request names its host in the URI.
    let request = Request::get("http://evil.example.com/items")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(app(), request).await.status,
        StatusCode::MISDIRECTED_REQUEST
    );
}

#[tokio::test]
async fn on_loopback_loopback_names_and_the_public_host_are_allowed() {
    for host in [
        "localhost",
        "localhost:8080",
        "LOCALHOST:8080",
        "ui.localhost:3000",
        "127.0.0.1",
        "127.0.0.1:8080",
        "127.1.2.3:80",
        "[::1]",
        "[::1]:8080",
        "windsock.example.org",
        "windsock.example.org:443",
    ] {
        let answer = with_host(host, app()).await;
        assert_eq!(answer.status, StatusCode::OK, "{host}: {}", answer.text);
    }
    // HTTP/1.0 sends no Host at all.
    let request = Request::get("/items").body(Body::empty()).unwrap();
    assert_eq!(send(app(), request).await.status, StatusCode::OK);
}

#[tokio::test]
async fn on_a_network_address_the_host_is_not_checked() {
    let router = harden(routes(), &config("0.0.0.0:8080"));
    let answer = with_host("evil.example.com", router).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}

/// Through a real socket: hyper parses the request before any layer runs.
async fn raw(address: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn over_a_socket_the_limits_and_host_check_answer_json() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop = windsock_core::CancellationToken::new();
    let server = tokio::spawn(windsock_core::http::serve_on(
        listener,
        harden(routes(), &config(&address.to_string())),
        stop.clone(),
    ));
    let long = "a".repeat(URI_LIMIT * 4);
    let answer = raw(
        address,
        &format!("GET /search?q={long} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 414"), "{answer}");
    assert!(
        answer.contains(r#""error":"the request URI is over the limit"#),
        "{answer}"
    );
    let answer = raw(
        address,
        "GET /items HTTP/1.1\r\nHost: rebound.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");
    let answer = raw(address, "GET /items HTTP/1.0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    let answer = raw(
        address,
        "DELETE /items HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("\r\nallow: "),
        "{answer}"
    );
    assert!(
        answer.contains(r#""error":"DELETE is not allowed on /items""#),
        "{answer}"
    );
    stop.cancel();
    server.await.unwrap().unwrap();
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::PUT),
        Just(Method::DELETE),
        Just(Method::PATCH),
        Just(Method::HEAD),
        Just(Method::OPTIONS),
        "[A-Z]{1,10}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

fn path() -> impl Strategy<Value = String> {
    let segment = "[a-zA-Z0-9%._~!$&'()*+,;=:@-]{0,12}";
    prop_oneof![
        Just("/items".to_string()),
        segment.prop_map(|s| format!("/items/{s}")),
        "[a-z=&%0-9]{0,30}".prop_map(|q| format!("/search?{q}")),
        Just("/upload".to_string()),
        Just("/panic".to_string()),
        Just("/broken".to_string()),
        Just("/teapot".to_string()),
        Just("/conflict".to_string()),
        proptest::collection::vec(segment, 0..6).prop_map(|s| format!("/{}", s.join("/"))),
        (0..URI_LIMIT * 2).prop_map(|n| format!("/items/{}", "9".repeat(n))),
    ]
}

fn host() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        Just("localhost:8080".to_string()),
        "127\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(:[0-9]{1,5})?",
        Just("[::1]:8080".to_string()),
        "[a-z0-9.-]{1,30}(:[0-9]{1,5})?",
        "[ -~]{0,40}",
    ])
}

fn body() -> impl Strategy<Value = (Vec<u8>, bool, Option<&'static str>)> {
    (
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..BODY_LIMIT * 2),
            "\\{\"name\": \"[a-z]{0,20}\"\\}".prop_map(String::into_bytes),
            "[ -~]{0,60}".prop_map(String::into_bytes),
        ],
        any::<bool>(),
        proptest::option::of(prop_oneof![
            Just("application/json"),
            Just("text/plain"),
            Just("application/x-www-form-urlencoded"),
        ]),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever arrives, the answer is a response (never a panic), and every answer that is
    /// not a success is a JSON error with no internal text.
    #[test]
    fn every_request_gets_a_response_and_every_failure_is_a_json_error(
        method in method(),
        path in path(),
        host in host(),
        (body, declare_length, content_type) in body(),
        loopback in any::<bool>(),
    ) {
        let mut request = Request::builder().method(method.clone());
        request = request.uri(path.as_str());
        if let Some(host) = &host {
            request = request.header(header::HOST, host.as_str());
        }
        if declare_length {
            request = request.header(header::CONTENT_LENGTH, body.len());
        }
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        // Strings no client could send (an invalid URI or header) are not requests.
        let Ok(request) = request.body(Body::from(body)) else {
            return Ok(());
        };
        let listen = if loopback { "127.0.0.1:8080" } else { "0.0.0.0:8080" };
        let router = harden(routes(), &config(listen));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let answer = runtime.block_on(send(router, request));
        if !answer.status.is_success() {
            // A HEAD answer has its body removed, as hyper would; its headers still say JSON.
            if method == Method::HEAD {
                prop_assert_eq!(
                    answer.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
                    Some("application/json")
                );
            } else {
                prop_assert!(!answer.error().is_empty());
            }
            prop_assert!(!answer.text.contains("windsock-internal"), "{}", answer.text);
        }
        if !loopback || host.is_none() {
            prop_assert_ne!(answer.status, StatusCode::MISDIRECTED_REQUEST);
        }
    }
}

#[test]
fn a_response_type_that_is_already_json_is_recognised_by_its_mime_type() {
    // `application/problem+json` and a charset parameter are JSON too.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for content_type in [
        "application/problem+json",
        "application/json; charset=utf-8",
    ] {
        let router = harden(
            Router::new().route(
                "/x",
                get(move || async move {
                    (
                        StatusCode::BAD_REQUEST,
                        [(header::CONTENT_TYPE, content_type)],
                        r#"{"title": "kept"}"#,
                    )
                        .into_response()
                }),
            ),
            &config("127.0.0.1:8080"),
        );
        let answer = runtime.block_on(send(router, request(Method::GET, "/x")));
        assert_eq!(answer.text, r#"{"title": "kept"}"#);
    }
}
