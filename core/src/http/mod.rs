//! What every service serves besides its own API: `/healthz` and `/metrics`; the hardening
//! every router gets ([`harden`]); and serving.

mod auth;
mod error;
pub mod openapi;
mod params;
mod retry_after;

pub use auth::authorize;
pub use error::{ApiError, ErrorBody};
pub use params::{Body, Params};
pub use retry_after::{retry_after, MAX_RETRY_AFTER};

use crate::config::HttpConfig;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::any::Any;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// `/healthz` (JSON: 200 `ok`, or 503 `degraded` naming the failing services, see
/// [`crate::health`]) and `/metrics` (Prometheus text).
pub fn base_routes() -> Router {
    base_router().split_for_parts().0
}

/// The OpenAPI description of [`base_routes`]; [`openapi::document`] includes it.
pub fn base_openapi() -> utoipa::openapi::OpenApi {
    base_router().split_for_parts().1
}

fn base_router() -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(prometheus_metrics))
}

/// The health of this process's services.
///
/// 200 while every service runs fine; 503 (`degraded`) while one is failing or restarting,
/// naming it with its error, restarts and next attempt, while the process keeps serving.
#[utoipa::path(
    get,
    path = "/healthz",
    responses(
        (status = 200, description = "Every service is ok", body = crate::health::ProcessHealth),
        (
            status = 503,
            description = "A service is failing or restarting (`status` is `degraded`)",
            body = crate::health::ProcessHealth,
        ),
    ),
    tag = "windsock",
)]
async fn healthz() -> Response {
    crate::health::global().response()
}

/// Prometheus metrics of this process, in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    responses((
        status = 200,
        description = "Every metric family of this process",
        body = String,
        content_type = "text/plain",
    )),
    tag = "windsock",
)]
async fn prometheus_metrics() -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        crate::telemetry::prometheus().render(),
    )
        .into_response()
}

/// The JSON error body every windsock API answers with: `{"error": "...", "detail": ...}`
/// (an [`ErrorBody`]). Prefer returning an [`ApiError`] from handlers.
pub fn error_response(
    status: StatusCode,
    error: impl Into<String>,
    detail: Option<serde_json::Value>,
) -> Response {
    let mut error = ApiError::new(status, error);
    error.body.detail = detail;
    error.into_response()
}

/// Serves `router` on `listen` until `shutdown`, finishing requests in flight.
pub async fn serve(
    listen: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    serve_on(listener, router, shutdown).await
}

/// As [`serve`], on a listener already bound (tests bind port 0 and read the address).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    tracing::info!(address = %listener.local_addr()?, "serving HTTP");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Wraps `router` in what keeps a hostile or broken request from costing more than a JSON
/// 4xx:
///
/// - `Host` check (DNS rebinding): when listening on loopback, a request addressed to any
///   other name than a loopback one or `http.public_url`'s host is a 421;
/// - URI and body limits (`http.max_uri_bytes`, `http.max_body_bytes`): 414 and 413;
/// - a panic in a handler is a JSON 500 with no detail, logged and counted
///   (`windsock_http_panics_total`);
/// - every error response that is not JSON (axum's 404 and 405, its plain-text extractor
///   rejections, a handler's text) is rewritten into `{"error": ...}`, and every 4xx/5xx is
///   counted by status (`windsock_http_errors_total{status}`).
///
/// Apply it once, to the whole router, after every service's routes are merged.
pub fn harden(router: Router, config: &HttpConfig) -> Router {
    register_metrics();
    let guard = Arc::new(Guard {
        max_body_bytes: config.max_body_bytes,
        max_uri_bytes: config.max_uri_bytes,
        check_host: config.listen.ip().is_loopback(),
        public_host: config.public_host(),
    });
    // Extractors (Json, Bytes) read up to this, instead of axum's own default.
    let routes = router.layer(DefaultBodyLimit::max(config.max_body_bytes));
    // The layers wrap the whole router rather than each route (`Router::layer`): they then
    // run before routing, and see the `Allow` header axum adds to a 405 outside its route.
    Router::new()
        .fallback_service(routes)
        // Refuses a declared Content-Length over the limit before any handler runs.
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
        .layer(middleware::from_fn_with_state(guard.clone(), check_request))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(guard, json_errors))
}

/// Statuses `harden` answers itself, counted from zero so a dashboard sees them before the
/// first one happens.
const HARDEN_STATUSES: &[StatusCode] = &[
    StatusCode::BAD_REQUEST,
    StatusCode::NOT_FOUND,
    StatusCode::METHOD_NOT_ALLOWED,
    StatusCode::PAYLOAD_TOO_LARGE,
    StatusCode::URI_TOO_LONG,
    StatusCode::MISDIRECTED_REQUEST,
    StatusCode::INTERNAL_SERVER_ERROR,
];

fn register_metrics() {
    crate::telemetry::prometheus();
    metrics::counter!("windsock_http_panics_total").increment(0);
    for status in HARDEN_STATUSES {
        metrics::counter!("windsock_http_errors_total", "status" => status.as_u16().to_string())
            .increment(0);
    }
}

struct Guard {
    max_body_bytes: usize,
    max_uri_bytes: usize,
    /// On when listening on loopback: only a browser tricked by DNS rebinding sends a
    /// foreign name there. On a network address the API token protects changes instead.
    check_host: bool,
    public_host: Option<String>,
}

/// The longest `Host` value quoted back in an error.
const MAX_QUOTED: usize = 200;

async fn check_request(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    if guard.check_host {
        if let Some(host) = foreign_host(&request, guard.public_host.as_deref()) {
            let host: String = host.chars().take(MAX_QUOTED).collect();
            return error_response(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this server listens on a loopback address and answers only requests \
                     addressed to localhost, 127.0.0.0/8, [::1] or the host of \
                     http.public_url, not `{host}` (protection against DNS rebinding)"
                ),
                Some(serde_json::json!({
                    "host": host,
                    "hint": "reach it by a loopback name, or set http.public_url to the URL \
                             it is reached at",
                })),
            );
        }
    }
    let uri = request.uri();
    let length = uri.path_and_query().map_or(0, |pq| pq.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if length > guard.max_uri_bytes {
        return too_long(guard.max_uri_bytes);
    }
    next.run(request).await
}

fn too_long(limit: usize) -> Response {
    error_response(
        StatusCode::URI_TOO_LONG,
        format!("the request URI is over the limit of {limit} bytes"),
        Some(serde_json::json!({ "limit_bytes": limit })),
    )
}

/// The first name the request is addressed to (its `Host` headers, or the authority of an
/// HTTP/2 or absolute-form URI) that is not allowed, if any. No name at all (HTTP/1.0) is
/// allowed: a browser always sends one.
fn foreign_host(request: &Request, public_host: Option<&str>) -> Option<String> {
    for value in request.headers().get_all(header::HOST) {
        let text = String::from_utf8_lossy(value.as_bytes());
        if text.trim().is_empty() {
            continue;
        }
        let allowed = text
            .trim()
            .parse::<Authority>()
            .is_ok_and(|authority| allowed_host(authority.host(), public_host));
        if !allowed {
            return Some(text.into_owned());
        }
    }
    let authority = request.uri().authority()?;
    (!allowed_host(authority.host(), public_host)).then(|| authority.to_string())
}

/// Whether `host` (no port; IPv6 in brackets) names this machine, or is `public_host`.
pub fn allowed_host(host: &str, public_host: Option<&str>) -> bool {
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    if host == "localhost" || host.ends_with(".localhost") || Some(host) == public_host {
        return true;
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return ip.is_loopback();
    }
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse::<Ipv6Addr>().ok())
        .is_some_and(|ip| {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        })
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    metrics::counter!("windsock_http_panics_total").increment(1);
    // The request's method and path are on the enclosing request span.
    tracing::error!(panic = message, "a request handler panicked; answered 500");
    error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error", None)
}

/// The most of a non-JSON error body read to quote it.
const MAX_ERROR_TEXT: usize = 16 * 1024;
/// The most of it quoted, in characters.
const MAX_QUOTED_TEXT: usize = 1000;

async fn json_errors(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    metrics::counter!("windsock_http_errors_total", "status" => status.as_u16().to_string())
        .increment(1);
    if is_json(response.headers()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // A compressed body is not text to quote; a 5xx's text may be internal detail.
    let quotable =
        !status.is_server_error() && !parts.headers.contains_key(header::CONTENT_ENCODING);
    let text = if quotable {
        axum::body::to_bytes(body, MAX_ERROR_TEXT)
            .await
            .ok()
            .map(|bytes| {
                String::from_utf8_lossy(&bytes)
                    .trim()
                    .chars()
                    .take(MAX_QUOTED_TEXT)
                    .collect::<String>()
            })
            .filter(|text| !text.is_empty())
    } else {
        None
    };
    let reason = || {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    };
    let path = uri.path();
    let (message, detail) = match status {
        StatusCode::INTERNAL_SERVER_ERROR => ("internal error".to_string(), None),
        StatusCode::PAYLOAD_TOO_LARGE => (
            format!(
                "the request body is over the limit of {} bytes",
                guard.max_body_bytes
            ),
            Some(serde_json::json!({ "limit_bytes": guard.max_body_bytes })),
        ),
        StatusCode::URI_TOO_LONG => (
            format!(
                "the request URI is over the limit of {} bytes",
                guard.max_uri_bytes
            ),
            Some(serde_json::json!({ "limit_bytes": guard.max_uri_bytes })),
        ),
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed: Vec<String> = parts
                .headers
                .get_all(header::ALLOW)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect();
            let message = text.unwrap_or_else(|| format!("{method} is not allowed on {path}"));
            let detail = (!allowed.is_empty()).then(|| serde_json::json!({ "allowed": allowed }));
            (message, detail)
        }
        StatusCode::NOT_FOUND => (
            text.unwrap_or_else(|| format!("no route for {method} {path}")),
            None,
        ),
        _ => (text.unwrap_or_else(reason), None),
    };
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::TRANSFER_ENCODING,
    ] {
        parts.headers.remove(name);
    }
    let mut rewritten = error_response(status, message, detail);
    for (name, value) in &parts.headers {
        rewritten.headers_mut().append(name, value.clone());
    }
    rewritten
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase())
        .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"))
}
