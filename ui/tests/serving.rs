//! The UI's HTTP side: pages, embedded assets with their content types and cache headers,
//! and the API proxy of `windsock ui` against a real upstream HTTP server.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use axum::Router;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tower::ServiceExt;
use windsock_core::config::Config;
use windsock_ui::{assets, Ui};

async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    (status, headers, body)
}

async fn get_page(router: &Router, uri: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    call(router, Method::GET, uri, &[], "").await
}

fn ui(config: Config) -> Router {
    Ui::from_config(&config).unwrap().routes()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

#[tokio::test]
async fn every_page_path_serves_the_shell_uncached_with_a_strict_policy() {
    let mut config = Config::default();
    config.ui.title = "ops <weather>".into();
    let router = ui(config);
    for path in [
        "/",
        "/?q=region:Dakar&from=now-15m",
        "/regions",
        "/regions/K%C3%A9dougou",
        "/alerts",
        "/health",
        // The API viewer: a page, though everything under `/api/` is API.
        "/api",
    ] {
        let (status, headers, body) = get_page(&router, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            header_str(&headers, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert_eq!(header_str(&headers, header::CACHE_CONTROL), "no-cache");
        let csp = header_str(&headers, header::CONTENT_SECURITY_POLICY);
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(
            header_str(&headers, header::X_CONTENT_TYPE_OPTIONS),
            "nosniff"
        );
        let page = String::from_utf8(body).unwrap();
        assert!(page.contains(&format!("/assets/{}/main.js", assets::version())));
        assert!(
            page.contains("<title>ops &lt;weather&gt;</title>"),
            "the title is escaped"
        );
    }
}

#[tokio::test]
async fn assets_have_their_content_type_and_are_cached_by_version() {
    let router = ui(Config::default());
    let version = assets::version();
    for (file, content_type) in [
        ("main.js", "text/javascript; charset=utf-8"),
        ("search.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) = get_page(&router, &format!("/assets/{version}/{file}")).await;
        assert_eq!(status, StatusCode::OK, "{file}");
        assert_eq!(
            header_str(&headers, header::CONTENT_TYPE),
            content_type,
            "{file}"
        );
        assert_eq!(
            header_str(&headers, header::CACHE_CONTROL),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            body,
            assets::find(file).unwrap().bytes,
            "{file} is served byte for byte"
        );

        // A revalidation with the same ETag is answered without the body.
        let etag = header_str(&headers, header::ETAG).to_string();
        assert!(etag.starts_with("W/\""), "{etag}");
        let (status, _, body) = call(
            &router,
            Method::GET,
            &format!("/assets/{version}/{file}"),
            &[("if-none-match", &etag)],
            "",
        )
        .await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
    }
    // A page of an older build still gets the file, but may not keep it forever.
    let (status, headers, _) = get_page(&router, "/assets/0000000000000000/main.js").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header_str(&headers, header::CACHE_CONTROL), "no-cache");

    let (status, headers, body) = get_page(&router, &format!("/assets/{version}/missing.js")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        header_str(&headers, header::CONTENT_TYPE),
        "application/json"
    );
    assert!(String::from_utf8(body).unwrap().contains("missing.js"));
}

#[tokio::test]
async fn assets_and_pages_are_gzipped_for_browsers_that_accept_it() {
    let router = ui(Config::default());
    let path = format!("/assets/{}/search.js", assets::version());
    let (status, headers, body) = call(
        &router,
        Method::GET,
        &path,
        &[("accept-encoding", "gzip")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header_str(&headers, header::CONTENT_ENCODING), "gzip");
    assert_eq!(
        header_str(&headers, header::CONTENT_TYPE),
        "text/javascript; charset=utf-8"
    );
    assert!(
        body.len() * 2 < assets::find("search.js").unwrap().bytes.len(),
        "{} bytes gzipped",
        body.len()
    );
    let (_, headers, _) = call(
        &router,
        Method::GET,
        "/",
        &[("accept-encoding", "gzip")],
        "",
    )
    .await;
    assert_eq!(header_str(&headers, header::CONTENT_ENCODING), "gzip");
    let (_, headers, body) = get_page(&router, &path).await;
    assert_eq!(
        header_str(&headers, header::CONTENT_ENCODING),
        "",
        "plain for clients that did not ask"
    );
    assert_eq!(body, assets::find("search.js").unwrap().bytes);
}

#[tokio::test]
async fn unknown_apis_are_json_errors_and_pages_refuse_other_methods() {
    let router = ui(Config::default());
    for path in ["/api/", "/api/openapi.json"] {
        // Without the binary's document route, nothing under `/api/` is ever the page.
        let (status, headers, _) = get_page(&router, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            header_str(&headers, header::CONTENT_TYPE),
            "application/json",
            "{path}"
        );
    }
    let (status, headers, body) = get_page(&router, "/api/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        header_str(&headers, header::CONTENT_TYPE),
        "application/json"
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("/api/nothing-here"));

    let (status, _, _) = call(&router, Method::POST, "/alerts", &[], "x").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn without_service_urls_nothing_is_proxied_and_the_answer_says_which_key_to_set() {
    // As in `windsock up`: the services' own routes answer; a path of a service that is not
    // here gets a JSON 503 naming the setting, never the page.
    let router = ui(Config::default());
    let (status, headers, body) = get_page(&router, "/api/collector/status").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        header_str(&headers, header::CONTENT_TYPE),
        "application/json"
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["detail"]["service"], "collector");
    assert!(body["detail"]["hint"]
        .as_str()
        .unwrap()
        .contains("ui.collector_url"));
}

/// What the fake upstream saw of each request.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path_and_query: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: String,
}

/// A real HTTP server on 127.0.0.1 standing in for a service: answers `/api/search` with a
/// 400 JSON error (as the indexer does for a bad query), `/metrics` with counters, and
/// records every request.
async fn fake_service(service: &'static str) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Router::new()
        .route(
            "/metrics",
            get(move || async move {
                format!("# TYPE windsock_received_total counter\nwindsock_received_total{{service=\"{service}\"}} 12\nwindsock_bus_lag{{service=\"{service}\"}} 3\n")
            }),
        )
        .fallback(any(move |request: Request| {
            let record = record.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = String::from_utf8(to_bytes(body, usize::MAX).await.unwrap().to_vec()).unwrap();
                let header = |name: header::HeaderName| parts.headers.get(name).map(|v| v.to_str().unwrap().to_string());
                record.lock().unwrap().push(Seen {
                    method: parts.method.to_string(),
                    path_and_query: parts.uri.path_and_query().unwrap().to_string(),
                    authorization: header(header::AUTHORIZATION),
                    content_type: header(header::CONTENT_TYPE),
                    body,
                });
                if parts.uri.path() == "/api/search" {
                    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "syntax error at 7", "detail": {"position": 7}}))).into_response()
                } else {
                    ([(header::CACHE_CONTROL, "no-store")], axum::Json(json!({"ok": true, "service": service}))).into_response()
                }
            }
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// A URL nobody listens on.
fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://user:hunter2@{address}")
}

#[tokio::test]
async fn apis_are_forwarded_to_their_service_with_method_query_body_and_token() {
    let (indexer_url, indexer_seen) = fake_service("indexer").await;
    let (alerter_url, alerter_seen) = fake_service("alerter").await;
    let mut config = Config::default();
    config.indexer.url = vec![format!("{indexer_url}/")];
    config.alerter.url = Some(alerter_url);
    let router = ui(config);

    // An error answer comes back as the service gave it: status, type and body.
    let (status, headers, body) = get_page(
        &router,
        "/api/search?q=region%3A%22Saint-Louis%22%20AND&from=now-15m",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        header_str(&headers, header::CONTENT_TYPE),
        "application/json"
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["detail"]["position"], 7);
    let seen = indexer_seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(
        seen[0].path_and_query,
        "/api/search?q=region%3A%22Saint-Louis%22%20AND&from=now-15m"
    );

    let silence = r#"{"matchers":[{"name":"region","value":"Dakar"}]}"#;
    let (status, headers, body) = call(
        &router,
        Method::POST,
        "/api/silences",
        &[
            ("authorization", "Bearer s3cret"),
            ("content-type", "application/json"),
            ("cookie", "session=1"),
        ],
        silence,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header_str(&headers, header::CACHE_CONTROL),
        "no-store",
        "response headers the browser needs pass"
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["service"],
        "alerter"
    );
    let (status, _, _) = call(
        &router,
        Method::DELETE,
        "/api/silences/42",
        &[("authorization", "Bearer s3cret")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let seen = alerter_seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path_and_query.as_str()),
        ("POST", "/api/silences")
    );
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer s3cret"));
    assert_eq!(seen[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(seen[0].body, silence);
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path_and_query.as_str()),
        ("DELETE", "/api/silences/42")
    );
    assert_eq!(
        indexer_seen.lock().unwrap().len(),
        1,
        "each path goes to its own service only"
    );
}

#[tokio::test]
async fn an_unreachable_service_is_a_502_naming_it_without_its_credentials() {
    let mut config = Config::default();
    config.forecaster.url = Some(closed_url());
    let router = ui(config);
    let (status, headers, body) = get_page(&router, "/api/forecast/Dakar?horizon=24").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        header_str(&headers, header::CONTENT_TYPE),
        "application/json"
    );
    let text = String::from_utf8(body).unwrap();
    assert!(
        !text.contains("hunter2"),
        "credentials in a service URL never reach the browser: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"], "the forecaster is unavailable");
    assert_eq!(body["detail"]["service"], "forecaster");
}

#[tokio::test]
async fn health_sums_every_services_counters_and_lists_the_unreachable_ones() {
    let (indexer_url, _) = fake_service("indexer").await;
    let mut config = Config::default();
    config.indexer.url = vec![indexer_url];
    config.alerter.url = Some(closed_url());
    let router = ui(config);
    let (status, headers, body) = get_page(&router, "/_ui/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header_str(&headers, header::CONTENT_TYPE),
        "application/json"
    );
    let report: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(report["services"]["indexer"]["received"], 12.0);
    assert_eq!(report["services"]["indexer"]["bus_lag"], 3.0);
    let scrapes = report["scrapes"].as_array().unwrap();
    let alerter = scrapes.iter().find(|s| s["source"] == "alerter").unwrap();
    assert_eq!(alerter["ok"], false);
    assert!(!alerter["url"].as_str().unwrap().contains("hunter2"));
    assert!(scrapes
        .iter()
        .any(|s| s["source"] == "indexer" && s["ok"] == true));
}

#[tokio::test]
async fn the_search_page_knows_the_result_window_it_pages_within() {
    let mut config = Config::default();
    config.indexer.max_result_window = 1234;
    let (_, _, body) = get_page(&ui(config), "/").await;
    let page = String::from_utf8(body).unwrap();
    assert!(
        page.contains(r#"<meta name="windsock-result-window" content="1234">"#),
        "{page}"
    );
}

#[tokio::test]
async fn the_document_describes_the_health_route_the_router_serves() {
    let document = serde_json::to_value(windsock_ui::openapi()).unwrap();
    let paths = document["paths"].as_object().unwrap();
    assert_eq!(
        paths.keys().collect::<Vec<_>>(),
        ["/_ui/health"],
        "the UI's one API route; pages and assets are not an API"
    );
    let get = &paths["/_ui/health"]["get"];
    assert_eq!(get["tags"], json!(["ui"]));
    assert_eq!(get["operationId"], "ui_health");
    assert_eq!(
        get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/HealthReport"
    );
    let schemas = &document["components"]["schemas"];
    for (schema, field) in [
        ("HealthReport", "services"),
        ("HealthReport", "scrapes"),
        ("ServiceCounters", "bus_lag"),
        ("ServiceCounters", "errors_by_kind"),
        ("Scrape", "source"),
    ] {
        assert!(
            schemas[schema]["properties"][field].is_object(),
            "{schema}.{field} is documented: {}",
            schemas[schema]
        );
    }

    // The served answer has exactly the documented fields.
    let (status, _, body) = get_page(&ui(Config::default()), "/_ui/health").await;
    assert_eq!(status, StatusCode::OK);
    let report: Value = serde_json::from_slice(&body).unwrap();
    let documented = |schema: &str| {
        let mut names: Vec<String> = schemas[schema]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    };
    let served = |value: &Value| {
        let mut names: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        names.sort();
        names
    };
    assert_eq!(served(&report), documented("HealthReport"));
    assert_eq!(served(&report["scrapes"][0]), documented("Scrape"));
}
