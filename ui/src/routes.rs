//! The UI's HTTP surface: versioned assets, the health summary, and a fallback that serves
//! the page for every other path outside the APIs (path routing is done in the browser).

use crate::assets::{self, Caching};
use crate::health;
use crate::proxy::{self, Upstreams};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use windsock_core::config::Config;
use windsock_core::http::error_response;

#[derive(Clone)]
pub struct AppState {
    index: Arc<str>,
    upstreams: Arc<Upstreams>,
}

impl AppState {
    pub fn new(config: &Config, upstreams: Upstreams) -> Self {
        Self {
            index: assets::render_index(&config.ui.title, config.ui.live_interval.as_secs()).into(),
            upstreams: Arc::new(upstreams),
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/assets/{version}/{*file}", get(asset))
        .route("/_ui/health", get(health))
        .fallback(fallback)
        .with_state(state)
        // The scripts and styles shrink to a quarter gzipped: it matters on a phone.
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
}

async fn asset(Path((version, file)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let Some(asset) = assets::find(&file) else {
        return error_response(
            StatusCode::NOT_FOUND,
            format!("no asset named `{file}`"),
            None,
        );
    };
    // A page from an older binary still gets today's file, but must not cache it forever.
    let caching = if version == assets::version() {
        Caching::Immutable
    } else {
        Caching::Revalidate
    };
    assets::respond(
        &headers,
        assets::content_type(asset.name),
        asset.bytes,
        caching,
    )
}

async fn health(State(state): State<AppState>) -> Json<health::HealthReport> {
    Json(health::report(&state.upstreams).await)
}

/// APIs go to their service (when proxying), unknown APIs get a JSON 404, and every other
/// GET gets the page, which routes by path itself.
async fn fallback(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path();
    if let Some(service) = proxy::service_for(path) {
        return state.upstreams.forward(service, request).await;
    }
    if path == "/api"
        || path.starts_with("/api/")
        || path.starts_with("/assets/")
        || path.starts_with("/_ui/")
    {
        return error_response(StatusCode::NOT_FOUND, format!("no route for {path}"), None);
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "pages only answer GET",
            None,
        );
    }
    let page = bytes::Bytes::copy_from_slice(state.index.as_bytes());
    assets::respond(
        request.headers(),
        "text/html; charset=utf-8",
        page,
        Caching::Revalidate,
    )
    .into_response()
}
