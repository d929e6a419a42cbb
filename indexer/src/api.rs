//! The search API. Handlers are thin: parse parameters (every problem is a 400 that says
//! which parameter and why), run the search off the async threads, answer JSON.

use crate::search::{Hit, SearchError, SearchRequest, SearchResults, Sort};
use crate::store::EventIndex;
use crate::timespec::{self, parse_time};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;
use windsock_core::clock::SharedClock;
use windsock_core::config::Config;
use windsock_core::http::error_response;

/// Defaults of `/api/search` when a parameter is absent.
pub const DEFAULT_FROM: &str = "now-24h";
pub const DEFAULT_TO: &str = "now";
pub const DEFAULT_LIMIT: usize = 50;
/// Default neighbours on each side for `/api/events/{id}/context`.
pub const DEFAULT_CONTEXT: usize = 5;

/// What the routes share: the index, the configuration (regions, limits), the clock.
#[derive(Clone)]
pub struct SearchService {
    index: EventIndex,
    config: Arc<Config>,
    clock: SharedClock,
}

impl SearchService {
    pub fn new(index: EventIndex, config: Arc<Config>, clock: SharedClock) -> Self {
        Self {
            index,
            config,
            clock,
        }
    }

    /// Validates a search's parameters against this service's clock and limits.
    pub fn request(
        &self,
        params: &SearchParams,
    ) -> Result<(SearchRequest, Option<LimitClamped>), ApiError> {
        let now = self.clock.now();
        let time = |name: &'static str, value: Option<&String>, default: &str| {
            let value = value.map(String::as_str).unwrap_or(default);
            parse_time(value, now).map_err(|e| {
                ApiError::bad_request(
                    format!("invalid `{name}`: {e}"),
                    json!({"parameter": name, "value": value, "reason": e.reason, "expected": timespec::EXPECTED}),
                )
            })
        };
        let from = time("from", params.from.as_ref(), DEFAULT_FROM)?;
        let to = time("to", params.to.as_ref(), DEFAULT_TO)?;
        if from > to {
            return Err(ApiError::bad_request(
                "`from` is after `to`",
                json!({"parameter": "from", "from": from, "to": to}),
            ));
        }
        let requested = number("limit", params.limit.as_ref(), DEFAULT_LIMIT)?;
        let max = self.config.indexer.max_limit;
        let clamped = (requested > max).then_some(LimitClamped { requested, max });
        let sort = match params.sort.as_deref().unwrap_or("newest") {
            "newest" | "desc" => Sort::Newest,
            "oldest" | "asc" => Sort::Oldest,
            "relevance" | "score" => Sort::Relevance,
            other => {
                return Err(ApiError::bad_request(
                    format!("invalid `sort`: `{other}`"),
                    json!({"parameter": "sort", "value": other, "expected": ["newest", "oldest", "relevance"]}),
                ))
            }
        };
        Ok((
            SearchRequest {
                q: params.q.clone().unwrap_or_default(),
                from,
                to,
                limit: requested.min(max),
                offset: number("offset", params.offset.as_ref(), 0)?,
                sort,
                aggregate: true,
            },
            clamped,
        ))
    }
}

fn number(name: &'static str, value: Option<&String>, default: usize) -> Result<usize, ApiError> {
    match value {
        None => Ok(default),
        Some(text) => text.trim().parse().map_err(|_| {
            ApiError::bad_request(
                format!("invalid `{name}`: `{text}` is not a whole number"),
                json!({"parameter": name, "value": text, "expected": "a whole number, 0 or more"}),
            )
        }),
    }
}

/// `/api/search` parameters, as text so a bad one gets our error rather than axum's.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SearchParams {
    pub q: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<String>,
    pub offset: Option<String>,
    pub sort: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitClamped {
    pub requested: usize,
    pub max: usize,
}

/// The answer of `/api/search`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchResponse {
    pub query: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub sort: Sort,
    pub limit: usize,
    pub offset: usize,
    /// Present when the requested limit was above the maximum and was lowered to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_clamped: Option<LimitClamped>,
    pub took_ms: f64,
    #[serde(flatten)]
    pub results: SearchResults,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContextResponse {
    pub event: Hit,
    /// Oldest first, ending just before `event`.
    pub before: Vec<Hit>,
    /// Oldest first, starting just after `event`.
    pub after: Vec<Hit>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionStatus {
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    pub last_seen: Option<DateTime<Utc>>,
    pub last_observation: Option<Value>,
}

/// Every way a request fails, mapped to one JSON shape by [`error_response`].
#[derive(Debug)]
pub enum ApiError {
    BadRequest { message: String, detail: Value },
    NotFound(String),
    Internal(String),
}

impl ApiError {
    fn bad_request(message: impl Into<String>, detail: Value) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            detail,
        }
    }
}

impl From<SearchError> for ApiError {
    fn from(err: SearchError) -> Self {
        match err {
            SearchError::Query(q) => ApiError::BadRequest {
                message: q.message,
                detail: q.detail,
            },
            SearchError::Index(e) => e.into(),
        }
    }
}

impl From<tantivy::TantivyError> for ApiError {
    fn from(err: tantivy::TantivyError) -> Self {
        ApiError::Internal(format!("index: {err}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest { message, detail } => {
                error_response(StatusCode::BAD_REQUEST, message, Some(detail))
            }
            ApiError::NotFound(what) => error_response(StatusCode::NOT_FOUND, what, None),
            ApiError::Internal(message) => {
                tracing::error!(%message, "search failed");
                error_response(StatusCode::INTERNAL_SERVER_ERROR, message, None)
            }
        }
    }
}

pub fn routes(service: SearchService) -> Router {
    Router::new()
        .route("/api/search", get(search))
        .route("/api/events/{id}", get(event))
        .route("/api/events/{id}/context", get(context))
        .route("/api/regions", get(regions))
        .with_state(service)
}

/// Runs index work on the blocking pool: searches are CPU-bound.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(format!("search task: {e}")))?
}

async fn search(
    State(service): State<SearchService>,
    Query(params): Query<SearchParams>,
) -> Result<Json<SearchResponse>, ApiError> {
    let (request, limit_clamped) = service.request(&params)?;
    let started = Instant::now();
    let index = service.index.clone();
    let (request, results) = off_thread(move || {
        let results = index.search(&request)?;
        Ok((request, results))
    })
    .await?;
    Ok(Json(SearchResponse {
        query: request.q,
        from: request.from,
        to: request.to,
        sort: request.sort,
        limit: request.limit,
        offset: request.offset,
        limit_clamped,
        took_ms: started.elapsed().as_secs_f64() * 1000.0,
        results,
    }))
}

async fn event(
    State(service): State<SearchService>,
    Path(id): Path<String>,
) -> Result<Json<Hit>, ApiError> {
    let index = service.index.clone();
    off_thread(move || {
        index
            .get(&id)?
            .ok_or_else(|| ApiError::NotFound(format!("no event with id `{id}`")))
    })
    .await
    .map(Json)
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ContextParams {
    pub before: Option<String>,
    pub after: Option<String>,
}

async fn context(
    State(service): State<SearchService>,
    Path(id): Path<String>,
    Query(params): Query<ContextParams>,
) -> Result<Json<ContextResponse>, ApiError> {
    let max = service.config.indexer.max_limit;
    let before = number("before", params.before.as_ref(), DEFAULT_CONTEXT)?.min(max);
    let after = number("after", params.after.as_ref(), DEFAULT_CONTEXT)?.min(max);
    let index = service.index.clone();
    off_thread(move || {
        let event = index
            .get(&id)?
            .ok_or_else(|| ApiError::NotFound(format!("no event with id `{id}`")))?;
        let (before, after) = index.context(&event, before, after)?;
        Ok(ContextResponse {
            event,
            before,
            after,
        })
    })
    .await
    .map(Json)
}

/// The answer of `/api/regions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionsResponse {
    /// Every configured region, in configuration order.
    pub regions: Vec<RegionStatus>,
}

async fn regions(State(service): State<SearchService>) -> Result<Json<RegionsResponse>, ApiError> {
    let index = service.index.clone();
    let config = service.config.clone();
    off_thread(move || {
        let regions = config
            .regions
            .iter()
            .map(|region| {
                let last = index.last_observation(&region.name)?;
                Ok(RegionStatus {
                    name: region.name.clone(),
                    lat: region.lat,
                    lon: region.lon,
                    last_seen: last.as_ref().map(|h| h.timestamp),
                    last_observation: last.map(|h| h.event),
                })
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(RegionsResponse { regions })
    })
    .await
    .map(Json)
}
