//! The search API. Handlers are thin: parse parameters (every problem is a 400 that says
//! which parameter and why), run the search off the async threads, answer JSON.

use crate::query::check_limits;
use crate::search::{searchable, Hit, SearchError, SearchRequest, SearchResults, Sort};
use crate::store::EventIndex;
use crate::timespec::{self, parse_time};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
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
/// The most neighbours on each side `/api/events/{id}/context` gives: each is a stored
/// document read and decoded, and a page of context is for reading, not for export.
pub const MAX_CONTEXT: usize = 100;

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
        // What the index can hold; the answer says the range it searched.
        let (from, to) = (searchable(from), searchable(to));
        let q = params.q.clone().unwrap_or_default();
        check_limits(&q, self.config.indexer.max_query_length).map_err(|e| {
            ApiError::BadRequest {
                message: e.message,
                detail: e.detail,
            }
        })?;
        let requested = number("limit", params.limit.as_ref(), DEFAULT_LIMIT as u64)?;
        let max = self.config.indexer.max_limit;
        let clamped = (requested > max as u64).then_some(LimitClamped { requested, max });
        // At most `max`, a `usize`, so the conversion holds.
        let limit = requested.min(max as u64) as usize;
        let offset = number("offset", params.offset.as_ref(), 0)?;
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
        self.check_window(offset, limit, sort)?;
        // Within the window now, itself a `usize`.
        let offset = offset as usize;
        Ok((
            SearchRequest {
                q,
                from,
                to,
                limit,
                offset,
                sort,
                aggregate: true,
            },
            clamped,
        ))
    }

    /// Hits past `indexer.max_result_window` are refused, as Elasticsearch refuses them: the
    /// collector keeps `offset + limit` hits in memory to return the last `limit`, so deep
    /// pages cost memory and time without bound. Keyset paging by time reaches any depth.
    fn check_window(&self, offset: u64, limit: usize, sort: Sort) -> Result<(), ApiError> {
        let window = self.config.indexer.max_result_window;
        // `offset` is whatever the client sent, up to u64::MAX: saturate rather than wrap.
        let end = offset.saturating_add(limit as u64);
        if end <= window as u64 {
            return Ok(());
        }
        let how = match sort {
            Sort::Newest => {
                "to page further, search again with `to` set to the timestamp of the last hit \
                 you have and `offset=0` (hits at that very instant come again: skip them by id)"
            }
            Sort::Oldest => {
                "to page further, search again with `from` set to the timestamp of the last hit \
                 you have and `offset=0` (hits at that very instant come again: skip them by id)"
            }
            Sort::Relevance => {
                "to see further, narrow the query or the time range (`from`, `to`), or sort by \
                 time and page with `to` set to the timestamp of the last hit you have"
            }
        };
        Err(ApiError::bad_request(
            format!(
                "`offset` + `limit` is {end}, past the result window of {window} hits \
                 (indexer.max_result_window); {how}"
            ),
            json!({
                "parameter": "offset",
                "offset": offset,
                "limit": limit,
                "max_result_window": window,
                "hint": how,
            }),
        ))
    }
}

/// A whole number from a query parameter, or a 400 that names it. Read as `u64` and checked
/// before anything adds or allocates with it.
fn number(name: &'static str, value: Option<&String>, default: u64) -> Result<u64, ApiError> {
    let Some(text) = value else {
        return Ok(default);
    };
    let digits = text.trim();
    digits.parse().map_err(|_| {
        let (message, expected) =
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                (
                    format!("invalid `{name}`: `{digits}` is too large"),
                    format!("a whole number from 0 to {}", u64::MAX),
                )
            } else {
                (
                    format!("invalid `{name}`: `{text}` is not a whole number"),
                    "a whole number, 0 or more".to_string(),
                )
            };
        ApiError::bad_request(
            message,
            json!({"parameter": name, "value": text, "expected": expected}),
        )
    })
}

/// As [`number`], for a count of hits: more than `max` is a 400 that says the bound.
fn count(
    name: &'static str,
    value: Option<&String>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    let n = number(name, value, default as u64)?;
    if n > max as u64 {
        return Err(ApiError::bad_request(
            format!("invalid `{name}`: {n} is more than {max}, the most it may be"),
            json!({"parameter": name, "value": n, "limit": max}),
        ));
    }
    Ok(n as usize)
}

/// The parameters of a query string, each given once.
///
/// Extracted by hand rather than with axum's `Query<T>`, whose rejections (a repeated
/// parameter, a value of the wrong type) are plain text: every problem here is our JSON 400,
/// naming the parameter. A parameter given twice is refused, since which one was meant is a
/// guess; unknown ones are ignored (cache-busters and the like).
#[derive(Clone, Debug, Default)]
pub struct Params(pub BTreeMap<String, String>);

impl Params {
    pub fn from_uri(uri: &axum::http::Uri) -> Result<Self, ApiError> {
        let mut params = BTreeMap::new();
        // Pairs of strings cannot fail to deserialize (the decoding is lossy, never an
        // error), but whatever axum says, the client hears it as our JSON.
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri).map_err(|e| {
            ApiError::bad_request(
                format!("the query string does not decode: {}", e.body_text()),
                json!({"reason": "query_string"}),
            )
        })?;
        for (name, value) in pairs {
            if params.contains_key(&name) {
                return Err(ApiError::bad_request(
                    format!("`{name}` is given more than once; give it once"),
                    json!({"parameter": name, "reason": "repeated"}),
                ));
            }
            params.insert(name, value);
        }
        Ok(Self(params))
    }

    fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Params::from_uri(&parts.uri)
    }
}

/// The last segment of the path, percent-decoded: an event's id. Read by hand so a path that
/// does not decode (`%FF`) is our JSON 400, not axum's plain-text rejection.
pub struct EventId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for EventId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(Self(id)),
            Err(e) => Err(ApiError::bad_request(
                format!("invalid event id in the path: {}", e.body_text()),
                json!({"parameter": "id", "reason": "path"}),
            )),
        }
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

impl From<Params> for SearchParams {
    fn from(mut params: Params) -> Self {
        Self {
            q: params.take("q"),
            from: params.take("from"),
            to: params.take("to"),
            limit: params.take("limit"),
            offset: params.take("offset"),
            sort: params.take("sort"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitClamped {
    pub requested: u64,
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

/// What a client reads of an internal error: its detail (tantivy's words, paths, a panic's
/// message) is for the log.
pub const INTERNAL_ERROR: &str = "internal error";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest { message, detail } => {
                // The client's mistake, not the service's: no ERROR to page anyone.
                tracing::debug!(%message, "search request refused");
                error_response(StatusCode::BAD_REQUEST, message, Some(detail))
            }
            ApiError::NotFound(what) => error_response(StatusCode::NOT_FOUND, what, None),
            ApiError::Internal(message) => {
                tracing::error!(%message, "search failed");
                error_response(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR, None)
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
        // axum's own answer is an empty 405; ours says which methods there are.
        .method_not_allowed_fallback(|| async {
            (
                // HTTP requires it with a 405; axum answers HEAD wherever it answers GET.
                [(axum::http::header::ALLOW, "GET,HEAD")],
                error_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed: the search API answers GET only",
                    Some(json!({"allowed": ["GET", "HEAD"]})),
                ),
            )
        })
        .with_state(service)
}

/// Runs index work on the blocking pool: searches are CPU-bound. A panic in it (a bug, in
/// tantivy or here) is a 500 whose detail goes to the log alone.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        let detail = match e.try_into_panic() {
            Ok(panic) => panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into()),
            Err(e) => e.to_string(),
        };
        ApiError::Internal(format!("search task: {detail}"))
    })?
}

async fn search(
    State(service): State<SearchService>,
    params: Params,
) -> Result<Json<SearchResponse>, ApiError> {
    let params = SearchParams::from(params);
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
    EventId(id): EventId,
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

impl From<Params> for ContextParams {
    fn from(mut params: Params) -> Self {
        Self {
            before: params.take("before"),
            after: params.take("after"),
        }
    }
}

async fn context(
    State(service): State<SearchService>,
    EventId(id): EventId,
    params: Params,
) -> Result<Json<ContextResponse>, ApiError> {
    let params = ContextParams::from(params);
    let before = count(
        "before",
        params.before.as_ref(),
        DEFAULT_CONTEXT,
        MAX_CONTEXT,
    )?;
    let after = count("after", params.after.as_ref(), DEFAULT_CONTEXT, MAX_CONTEXT)?;
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
