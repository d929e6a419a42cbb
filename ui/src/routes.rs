//! The UI's HTTP surface: versioned assets, the health summary, and a fallback that serves
//! the page for every other path outside the APIs (path routing is done in the browser).
//!
//! `/_ui/health` is built through an [`OpenApiRouter`], so the document ([`openapi`]) is made
//! from the very handler that is mounted. Assets and pages are not an API and stay out of it.

use crate::assets::{self, Caching};
use crate::health;
use crate::proxy::{self, Upstreams};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
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
            index: assets::render_index(
                &config.ui.title,
                config.ui.live_interval.as_secs(),
                config.indexer.max_result_window,
            )
            .into(),
            upstreams: Arc::new(upstreams),
        }
    }
}

/// The UI's documented routes. Built without state, so the document needs no running UI.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health))
}

/// The OpenAPI description of the UI's own routes (`/_ui/health`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

pub fn router(state: AppState) -> Router {
    let (api, _) = api().split_for_parts();
    api.route("/assets/{version}/{*file}", get(asset))
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

/// Every service's counters, summed per service, and where they were read from.
///
/// In `windsock up` the counters are this process's; in `windsock ui` each service with a
/// configured URL is scraped too (its `/metrics`), and one that cannot be read is listed in
/// `scrapes` with the reason rather than failing the answer.
#[utoipa::path(
    get,
    path = "/_ui/health",
    // Operation ids are unique across the merged document: `health` alone invites a clash.
    operation_id = "ui_health",
    responses(
        (status = 200, description = "Counters per service, and each source read", body = health::HealthReport),
    ),
    tag = "ui"
)]
async fn health(State(state): State<AppState>) -> Json<health::HealthReport> {
    Json(health::report(&state.upstreams).await)
}

/// APIs go to their service (when proxying), unknown APIs get a JSON 404, and every other
/// GET gets the page, which routes by path itself. `/api` itself is a page (the API viewer);
/// only what is under `/api/` is API.
async fn fallback(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path();
    if let Some(service) = proxy::service_for(path) {
        return state.upstreams.forward(service, request).await;
    }
    if path.starts_with("/api/") || path.starts_with("/assets/") || path.starts_with("/_ui/") {
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
