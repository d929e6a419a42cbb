//! What every service serves besides its own API: `/healthz` and `/metrics`; and serving.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

/// `/healthz` (liveness, JSON) and `/metrics` (Prometheus text).
pub fn base_routes() -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/metrics",
            get(|| async {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    crate::telemetry::prometheus().render(),
                )
            }),
        )
}

/// The JSON error body every windsock API answers with: `{"error": "...", "detail": ...}`.
pub fn error_response(
    status: StatusCode,
    error: impl Into<String>,
    detail: Option<serde_json::Value>,
) -> Response {
    let mut body = serde_json::json!({ "error": error.into() });
    if let Some(detail) = detail {
        body["detail"] = detail;
    }
    (status, Json(body)).into_response()
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
