//! The search API. Handlers are thin: parse parameters (every problem is a 400 that says
//! which parameter and why), run the search off the async threads, answer JSON.
//!
//! The routes are an [`OpenApiRouter`]: each handler's `#[utoipa::path]` describes what it
//! answers, and [`openapi`] is the document of the very routes [`routes`] serves, so the two
//! cannot drift apart.

use crate::query::{check_limits, parse_query, QueryPosition};
use crate::search::{
    searchable, Hit, SearchError, SearchRequest, SearchResults, Sort, MAX_BUCKETS,
};
use crate::store::EventIndex;
use crate::timespec::{self, parse_interval, parse_time};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use windsock_core::clock::SharedClock;
use windsock_core::config::Config;
use windsock_core::http::{ApiError, ErrorBody, Params};

/// Defaults of `/api/search` when a parameter is absent.
pub const DEFAULT_FROM: &str = "now-24h";
pub const DEFAULT_TO: &str = "now";
pub const DEFAULT_LIMIT: usize = 50;
/// Default neighbours on each side for `/api/events/{id}/context`.
pub const DEFAULT_CONTEXT: usize = 5;
/// The most neighbours on each side `/api/events/{id}/context` gives: each is a stored
/// document read and decoded, and a page of context is for reading, not for export.
pub const MAX_CONTEXT: usize = 100;

/// The OpenAPI tag of every indexer route.
pub const TAG: &str = "indexer";

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
        self.request_bucketed(params)
            .map(|(request, clamped, _)| (request, clamped))
    }

    /// [`SearchService::request`] with the histogram's interval asked for (milliseconds;
    /// None: `auto`), checked against the range: at most [`MAX_BUCKETS`] buckets.
    pub fn request_bucketed(
        &self,
        params: &SearchParams,
    ) -> Result<(SearchRequest, Option<LimitClamped>, Option<i64>), ApiError> {
        let now = self.clock.now();
        let time = |name: &'static str, value: Option<&String>, default: &str| {
            let value = value.map(String::as_str).unwrap_or(default);
            parse_time(value, now).map_err(|e| {
                ApiError::bad_request(format!("invalid `{name}`: {e}")).with_detail(json!({
                    "parameter": name,
                    "value": value,
                    "reason": e.reason,
                    "expected": timespec::EXPECTED,
                }))
            })
        };
        let from = time("from", params.from.as_ref(), DEFAULT_FROM)?;
        let to = time("to", params.to.as_ref(), DEFAULT_TO)?;
        if from > to {
            return Err(ApiError::bad_request("`from` is after `to`")
                .with_detail(json!({"parameter": "from", "from": from, "to": to})));
        }
        // What the index can hold; the answer says the range it searched.
        let (from, to) = (searchable(from), searchable(to));
        let q = params.q.clone().unwrap_or_default();
        check_limits(&q, self.config.indexer.max_query_length)
            .map_err(|e| ApiError::bad_request(e.message).with_detail(e.detail))?;
        let requested = number("limit", params.limit.as_ref(), DEFAULT_LIMIT as u64)?;
        let max = self.config.indexer.max_limit;
        let clamped = (requested > max as u64).then_some(LimitClamped { requested, max });
        // At most `max`, a `usize`, so the conversion holds.
        let limit = requested.min(max as u64) as usize;
        let offset = number("offset", params.offset.as_ref(), 0)?;
        let sort = Sort::parse(params.sort.as_deref().unwrap_or("newest")).map_err(|e| {
            ApiError::bad_request(format!("invalid `sort`: {}", e.reason)).with_detail(json!({
                "parameter": "sort",
                "value": e.value,
                "reason": e.reason,
                "expected": ["newest", "oldest", "relevance", "FIELD:asc", "FIELD:desc"],
                "fields": windsock_core::event::Observation::METRICS,
            }))
        })?;
        self.check_window(offset, limit, sort)?;
        // Within the window now, itself a `usize`.
        let offset = offset as usize;
        let interval = interval_ms(params.interval.as_deref(), from, to)?;
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
            interval,
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
            Sort::Relevance | Sort::Field { .. } => {
                "to see further, narrow the query or the time range (`from`, `to`), or sort by \
                 time and page with `to` set to the timestamp of the last hit you have"
            }
        };
        Err(ApiError::bad_request(format!(
            "`offset` + `limit` is {end}, past the result window of {window} hits \
             (indexer.max_result_window); {how}"
        ))
        .with_detail(json!({
            "parameter": "offset",
            "offset": offset,
            "limit": limit,
            "max_result_window": window,
            "hint": how,
        })))
    }
}

/// What the routes of other modules (`analysis_api`) read of the service.
impl SearchService {
    pub(crate) fn shared_index(&self) -> &EventIndex {
        &self.index
    }

    pub(crate) fn shared_config(&self) -> &Arc<Config> {
        &self.config
    }

    pub(crate) fn shared_clock(&self) -> &SharedClock {
        &self.clock
    }
}

/// The histogram interval asked for, in milliseconds (None: `auto`, absent too), or a 400
/// naming `interval`: malformed, or giving more than [`MAX_BUCKETS`] buckets over the range.
fn interval_ms(
    value: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Option<i64>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let interval = parse_interval(value).map_err(|e| {
        ApiError::bad_request(format!("invalid `interval`: {e}")).with_detail(json!({
            "parameter": "interval",
            "value": value,
            "reason": e.reason,
            "expected": timespec::INTERVAL_EXPECTED,
        }))
    })?;
    let Some(interval) = interval else {
        return Ok(None);
    };
    // Within a week of weeks of `i64` milliseconds: `parse_interval` bounds the units.
    let width = interval.num_milliseconds().max(1);
    let range = (to - from).num_milliseconds().max(0);
    let buckets = range / width + i64::from(range % width != 0);
    if buckets > MAX_BUCKETS {
        return Err(ApiError::bad_request(format!(
            "invalid `interval`: {value} over this range gives {buckets} buckets; at most \
             {MAX_BUCKETS}: choose a wider interval (or `auto`) or a shorter range"
        ))
        .with_detail(json!({
            "parameter": "interval",
            "value": value,
            "buckets": buckets,
            "limit": MAX_BUCKETS,
        })));
    }
    Ok(Some(width))
}

/// A whole number from a query parameter, or a 400 that names it. Read as text and parsed
/// here (not by serde) so that a number past `u64` is "too large", not "not a number"; read
/// as `u64` and checked before anything adds or allocates with it.
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
        ApiError::bad_request(message)
            .with_detail(json!({"parameter": name, "value": text, "expected": expected}))
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
        return Err(ApiError::bad_request(format!(
            "invalid `{name}`: {n} is more than {max}, the most it may be"
        ))
        .with_detail(json!({"parameter": name, "value": n, "limit": max})));
    }
    Ok(n as usize)
}

/// The last segment of the path, percent-decoded: an event's id. Read by hand so a path that
/// does not decode (`%FF`) is a 400 naming `id`, not axum's wording.
pub struct EventId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for EventId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(Self(id)),
            Err(e) => Err(ApiError::bad_request(format!(
                "invalid event id in the path: {}",
                e.body_text()
            ))
            .with_detail(json!({"parameter": "id", "reason": "path"}))),
        }
    }
}

/// `/api/search` parameters. Each may be given once (a repeated one is a 400 naming it:
/// which was meant is a guess); unknown ones are ignored, as cache-busters and the like are.
///
/// The numbers and `sort` are read as text and checked in [`SearchService::request`], whose
/// messages say more than serde's (a number too large, the page window, the sorts there are);
/// the document gives their real types.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The query, in tantivy's query language (`region:Dakar AND temperature_c:[30 TO *]`,
    /// `fields.status:[500 TO 599]`); absent or empty matches every event. At most
    /// `indexer.max_query_length` bytes (4,096 by default), nesting at most 32 levels.
    pub q: Option<String>,
    /// Start of the time range: RFC 3339 (`2026-11-25T00:00:00Z`) or relative (`now-15m`,
    /// `now-24h`, `now-7d`).
    #[param(default = "now-24h", example = "now-1h")]
    pub from: Option<String>,
    /// End of the time range, as `from`.
    #[param(default = "now")]
    pub to: Option<String>,
    /// The most hits to return. Above `indexer.max_limit` (1,000 by default) it is lowered to
    /// it, and the answer's `limit_clamped` says so.
    #[param(value_type = Option<u64>, default = 50)]
    pub limit: Option<String>,
    /// Hits to skip. `offset + limit` is at most `indexer.max_result_window` (10,000 by
    /// default); to page further, page by time (see the 400's `hint`).
    #[param(value_type = Option<u64>, default = 0)]
    pub offset: Option<String>,
    /// The order of the hits (`desc`, `asc` and `score` are accepted as aliases of `newest`,
    /// `oldest` and `relevance`), or by a numeric field, `temperature_c:desc` or
    /// `temperature_c:asc` (events without it last); another field is a 400 naming it.
    #[param(value_type = Option<Sort>, default = "newest")]
    pub sort: Option<String>,
    /// The histogram's bucket width: `auto` (about 75 buckets over the range) or a whole
    /// number of `s`, `m`, `h`, `d` or `w` (`1m`, `1h`, `1d`), at least `1s`. Over the range it
    /// may give at most 2,000 buckets; more is a 400 naming `interval`.
    #[param(default = "auto", example = "1h")]
    pub interval: Option<String>,
}

/// Present in a search's answer when the requested limit was above the maximum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LimitClamped {
    /// The limit asked for.
    pub requested: u64,
    /// The limit used: `indexer.max_limit`.
    pub max: usize,
}

/// The answer of `/api/search`: the search as run (times resolved, the limit used) and its
/// results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchResponse {
    /// The query as given (empty: every event).
    pub query: String,
    /// Start of the range searched (within what the index can hold: 1677 to 2262).
    pub from: DateTime<Utc>,
    /// End of the range searched.
    pub to: DateTime<Utc>,
    pub sort: Sort,
    /// The limit used (see `limit_clamped`).
    pub limit: usize,
    pub offset: usize,
    /// Present when the requested limit was above the maximum and was lowered to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_clamped: Option<LimitClamped>,
    /// How long the search took, in milliseconds.
    pub took_ms: f64,
    #[serde(flatten)]
    pub results: SearchResults,
}

/// The answer of `/api/events/{id}/context`: an event and its neighbours in time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContextResponse {
    pub event: Hit,
    /// Oldest first, ending just before `event`.
    pub before: Vec<Hit>,
    /// Oldest first, starting just after `event`.
    pub after: Vec<Hit>,
}

/// A configured region and the last observation indexed for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegionStatus {
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    /// When its last observation was made; null before the first one.
    #[schema(required = true)]
    pub last_seen: Option<DateTime<Utc>>,
    /// Its last observation's event, as published; null before the first one.
    #[schema(required = true)]
    pub last_observation: Option<Value>,
}

/// The answer of `/api/regions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegionsResponse {
    /// Every configured region, in configuration order.
    pub regions: Vec<RegionStatus>,
}

/// `/api/events/{id}/context` parameters, read as text for the same reasons as
/// [`SearchParams`].
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContextParams {
    /// Neighbours before the event, oldest first.
    #[param(value_type = Option<u64>, default = 5, maximum = 100)]
    pub before: Option<String>,
    /// Neighbours after the event.
    #[param(value_type = Option<u64>, default = 5, maximum = 100)]
    pub after: Option<String>,
    /// Only neighbours matching this query (the search's, filters included, as in
    /// `/api/search`); the event itself is given whether it matches or not. Absent, empty or
    /// `*`: every event. Bounded as `/api/search`'s `q`.
    pub q: Option<String>,
}

impl From<SearchError> for ApiError {
    fn from(err: SearchError) -> Self {
        match err {
            SearchError::Query(q) => ApiError::bad_request(q.message).with_detail(q.detail),
            SearchError::Index(e) => index_error(e),
        }
    }
}

/// An index failure: a 500 whose cause (tantivy's words, paths) goes to the log alone.
pub fn index_error(err: tantivy::TantivyError) -> ApiError {
    ApiError::internal(format!("index: {err}"))
}

#[derive(OpenApi)]
#[openapi(
    components(schemas(QueryPosition)),
    info(
        title = "windsock indexer",
        description = "Search every event: hits, a date histogram and facets; single events \
                       and their neighbours in time; each region's last observation."
    ),
    tags((name = "indexer", description = "Search over every indexed event (tantivy)."))
)]
struct IndexerApi;

/// The indexer's routes with their OpenAPI description, without state: [`routes`] serves
/// them, [`openapi`] describes them.
pub fn router() -> OpenApiRouter<SearchService> {
    OpenApiRouter::with_openapi(IndexerApi::openapi())
        // One `routes!` per path: the handlers of one `routes!` share one path.
        .routes(routes!(search))
        .routes(routes!(event))
        .routes(routes!(context))
        .routes(routes!(regions))
        .routes(routes!(crate::analysis_api::aggregate))
        .routes(routes!(crate::analysis_api::daily))
        .routes(routes!(crate::analysis_api::export))
        .routes(routes!(
            crate::analysis_api::list_saved_searches,
            crate::analysis_api::save_search
        ))
        .routes(routes!(crate::analysis_api::delete_saved_search))
}

/// The OpenAPI document of the indexer's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    router().into_openapi()
}

pub fn routes(service: SearchService) -> Router {
    let (router, _) = router().split_for_parts();
    // A wrong method gets axum's empty 405 with the `Allow` header of its own path (GET,HEAD
    // here, GET,HEAD,POST on /api/saved-searches), which `http::harden` turns into JSON
    // naming that method, the path and the allowed methods: no fixed list to keep in step.
    router.with_state(service)
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
        ApiError::internal(format!("search task: {detail}"))
    })?
}

/// Searches every event.
///
/// The hits (newest first by default), their total, a date histogram over the range and the
/// most frequent values of `kind`, `region`, `level` and `service` over all hits.
#[utoipa::path(
    get,
    path = "/api/search",
    tag = TAG,
    params(SearchParams),
    responses(
        (status = 200, description = "The hits, the total, the histogram and the facets", body = SearchResponse),
        (status = 400, description = "A parameter is malformed, repeated or over its bound; \
                                      `detail.parameter` names it. A query that does not parse \
                                      has `detail.reason` `syntax` and `detail.position` (a \
                                      `QueryPosition`: `offset`, `column`, `near`), the column \
                                      its message names; so has an error about a field the \
                                      query names (`detail.field`)", body = ErrorBody),
        (status = 500, description = "The index failed (details in the log)", body = ErrorBody),
    )
)]
async fn search(
    State(service): State<SearchService>,
    Params(params): Params<SearchParams>,
) -> Result<Json<SearchResponse>, ApiError> {
    let (request, limit_clamped, interval) = service.request_bucketed(&params)?;
    let started = Instant::now();
    let index = service.index.clone();
    let (request, results) = off_thread(move || {
        let results = index.search_bucketed(&request, interval)?;
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

/// One event by its id.
#[utoipa::path(
    get,
    path = "/api/events/{id}",
    tag = TAG,
    params(("id" = String, Path, description = "The event's id")),
    responses(
        (status = 200, description = "The event", body = Hit),
        (status = 400, description = "The id does not decode", body = ErrorBody),
        (status = 404, description = "No event has this id", body = ErrorBody),
        (status = 500, description = "The index failed (details in the log)", body = ErrorBody),
    )
)]
async fn event(
    State(service): State<SearchService>,
    EventId(id): EventId,
) -> Result<Json<Hit>, ApiError> {
    let index = service.index.clone();
    off_thread(move || {
        index
            .get(&id)
            .map_err(index_error)?
            .ok_or_else(|| ApiError::not_found(format!("no event with id `{id}`")))
    })
    .await
    .map(Json)
}

/// An event and its neighbours in time.
#[utoipa::path(
    get,
    path = "/api/events/{id}/context",
    tag = TAG,
    params(("id" = String, Path, description = "The event's id"), ContextParams),
    responses(
        (status = 200, description = "The event, the events just before it and just after it", body = ContextResponse),
        (status = 400, description = "The id does not decode, `before`/`after` is malformed, \
                                      repeated or over 100, or `q` is malformed (as in \
                                      `/api/search`); `detail.parameter` or `detail.reason` \
                                      names it", body = ErrorBody),
        (status = 404, description = "No event has this id", body = ErrorBody),
        (status = 500, description = "The index failed (details in the log)", body = ErrorBody),
    )
)]
async fn context(
    State(service): State<SearchService>,
    EventId(id): EventId,
    Params(params): Params<ContextParams>,
) -> Result<Json<ContextResponse>, ApiError> {
    let before = count(
        "before",
        params.before.as_ref(),
        DEFAULT_CONTEXT,
        MAX_CONTEXT,
    )?;
    let after = count("after", params.after.as_ref(), DEFAULT_CONTEXT, MAX_CONTEXT)?;
    let q = params.q.unwrap_or_default();
    check_limits(&q, service.config.indexer.max_query_length)
        .map_err(|e| ApiError::bad_request(e.message).with_detail(e.detail))?;
    let index = service.index.clone();
    off_thread(move || {
        let event = index
            .get(&id)
            .map_err(index_error)?
            .ok_or_else(|| ApiError::not_found(format!("no event with id `{id}`")))?;
        let filter = match q.trim() {
            "" | "*" => None,
            q => Some(parse_query(&index, q).map_err(SearchError::Query)?),
        };
        let (before, after) = index
            .context_matching(&event, before, after, filter.as_deref())
            .map_err(index_error)?;
        Ok(ContextResponse {
            event,
            before,
            after,
        })
    })
    .await
    .map(Json)
}

/// Every configured region with its last observation.
#[utoipa::path(
    get,
    path = "/api/regions",
    tag = TAG,
    responses(
        (status = 200, description = "Every configured region, in configuration order", body = RegionsResponse),
        (status = 500, description = "The index failed (details in the log)", body = ErrorBody),
    )
)]
async fn regions(State(service): State<SearchService>) -> Result<Json<RegionsResponse>, ApiError> {
    let index = service.index.clone();
    let config = service.config.clone();
    off_thread(move || {
        let regions = config
            .regions
            .iter()
            .map(|region| {
                let last = index.last_observation(&region.name).map_err(index_error)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use std::collections::BTreeSet;
    use tower::ServiceExt;
    use windsock_core::clock;

    const PATHS: [&str; 4] = [
        "/api/search",
        "/api/events/{id}",
        "/api/events/{id}/context",
        "/api/regions",
    ];

    fn document() -> Value {
        serde_json::to_value(openapi()).unwrap()
    }

    /// Follows a `$ref` (`#/components/schemas/Name`) to its schema.
    fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(reference) => {
                let name = reference
                    .strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("not a component: {reference}"));
                let target = &doc["components"]["schemas"][name];
                assert!(target.is_object(), "dangling reference {reference}");
                resolve(doc, target)
            }
            None => schema,
        }
    }

    /// The properties a schema documents (through `$ref` and `allOf`), and the required ones.
    fn properties(doc: &Value, schema: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
        let schema = resolve(doc, schema);
        let mut names: BTreeSet<String> = schema["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let mut required: BTreeSet<String> = schema["required"]
            .as_array()
            .map(|r| r.iter().map(|n| n.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        for part in schema["allOf"].as_array().into_iter().flatten() {
            let (n, r) = properties(doc, part);
            names.extend(n);
            required.extend(r);
        }
        (names, required)
    }

    fn ok_schema<'a>(doc: &'a Value, path: &str) -> &'a Value {
        let get = &doc["paths"][path]["get"];
        assert!(get.is_object(), "{path} is not documented");
        assert_eq!(get["tags"][0], TAG, "{path}");
        let schema = &get["responses"]["200"]["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "{path} has no 200 schema: {get}");
        schema
    }

    #[test]
    fn the_document_lists_every_route_with_a_200_schema() {
        let doc = document();
        let documented: BTreeSet<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // The aggregation, export and saved-search routes are checked in their own tests.
        let ours: BTreeSet<&str> = PATHS
            .into_iter()
            .chain(crate::analysis_api::PATHS)
            .collect();
        assert_eq!(documented, ours);
        for path in PATHS {
            let (names, _) = properties(&doc, ok_schema(&doc, path));
            assert!(!names.is_empty(), "{path}: an answer without properties");
            let get = &doc["paths"][path]["get"];
            for status in ["400", "500"] {
                if path == "/api/regions" && status == "400" {
                    continue;
                }
                let error = &get["responses"][status]["content"]["application/json"]["schema"];
                assert_eq!(
                    error["$ref"], "#/components/schemas/ErrorBody",
                    "{path} {status}"
                );
            }
        }
        // The search's parameters, with the types they really take.
        let params = doc["paths"]["/api/search"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["q", "from", "to", "limit", "offset", "sort", "interval"]
        );
        let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(limit["in"], "query");
        assert!(limit["schema"].to_string().contains("integer"), "{limit}");
        let context = doc["paths"]["/api/events/{id}/context"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let before = context.iter().find(|p| p["name"] == "before").unwrap();
        assert_eq!(
            before["schema"]["maximum"].as_u64(),
            Some(MAX_CONTEXT as u64),
            "{before}"
        );
        // Every reference resolves: the answer types' own types are in the document.
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let reference = reference.split('"').next().unwrap();
            resolve(&doc, &json!({ "$ref": reference }));
        }
    }

    fn service() -> SearchService {
        let config = Config::default();
        SearchService::new(
            EventIndex::in_ram().unwrap(),
            Arc::new(config),
            clock::system(),
        )
    }

    async fn get(router: &Router, uri: &str) -> (StatusCode, Value) {
        let response = router
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_repeated_or_malformed_parameter_is_a_json_400_naming_it() {
        let router = routes(service());
        for (uri, parameter) in [
            ("/api/search?q=a&q=b", "q"),
            ("/api/search?limit=5&limit=6", "limit"),
            ("/api/search?limit=ten", "limit"),
            ("/api/search?offset=-1", "offset"),
            ("/api/search?sort=sideways", "sort"),
            ("/api/search?from=yesterday", "from"),
            ("/api/events/x/context?after=1&after=2", "after"),
            ("/api/events/x/context?before=many", "before"),
        ] {
            let (status, body) = get(&router, uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
            assert_eq!(body["detail"]["parameter"], parameter, "{uri}: {body}");
            let error = body["error"].as_str().unwrap();
            assert!(error.contains(&format!("`{parameter}`")), "{uri}: {body}");
        }
        // Past u64: the hardening's own wording, not serde's.
        let (_, body) = get(&router, "/api/search?limit=99999999999999999999999").await;
        assert!(
            body["error"].as_str().unwrap().contains("too large"),
            "{body}"
        );
        // Unknown parameters (cache-busters) are ignored.
        let (status, body) = get(&router, "/api/search?q=*&_=1733100000").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Each documented route is served, and a live answer has exactly the documented fields
    /// (the required ones at least, nothing undocumented).
    #[tokio::test]
    async fn every_documented_route_answers_with_its_documented_fields() {
        let doc = document();
        let router = routes(service());
        let (status, body) = get(&router, "/api/search?q=*&limit=2000").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (names, required) = properties(&doc, ok_schema(&doc, "/api/search"));
        let answered: BTreeSet<String> = body.as_object().unwrap().keys().cloned().collect();
        assert!(
            answered.is_subset(&names),
            "{answered:?} not all in {names:?}"
        );
        assert!(
            required.is_subset(&answered),
            "{required:?} not all in {answered:?}"
        );
        assert!(answered.contains("limit_clamped"), "{body}");

        let (status, body) = get(&router, "/api/regions").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (names, _) = properties(&doc, ok_schema(&doc, "/api/regions"));
        let answered: BTreeSet<String> = body.as_object().unwrap().keys().cloned().collect();
        assert_eq!(answered, names);
        let region = &body["regions"][0];
        let item =
            &resolve(&doc, ok_schema(&doc, "/api/regions"))["properties"]["regions"]["items"];
        let (names, required) = properties(&doc, item);
        let answered: BTreeSet<String> = region.as_object().unwrap().keys().cloned().collect();
        assert_eq!(answered, names, "{region}");
        assert_eq!(
            required, names,
            "always present, null before the first observation"
        );

        // An empty index: the id routes answer our 404, not the router's.
        for uri in ["/api/events/none", "/api/events/none/context"] {
            let (status, body) = get(&router, uri).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(body["error"], "no event with id `none`", "{uri}");
        }
    }

    /// An index of 600 synthetic events (observations of every region, logs, alerts) over
    /// the last hour, and its routes on the system clock.
    fn indexed() -> (Router, Vec<windsock_core::event::Envelope>) {
        let index = EventIndex::in_ram().unwrap();
        let mut sink = index.writer(15).unwrap();
        let start = chrono::Utc::now() - chrono::Duration::minutes(61);
        let events = crate::synthetic::events(600, start, chrono::Duration::hours(1), 19);
        for event in &events {
            sink.upsert(event, None).unwrap();
        }
        sink.commit("embedded").unwrap();
        let service = SearchService::new(index, Arc::new(Config::default()), clock::system());
        (routes(service), events)
    }

    #[tokio::test]
    async fn hits_sort_by_a_numeric_field_and_an_unknown_one_is_a_400_naming_it() {
        let (router, _) = indexed();
        let temperatures = |body: &Value| -> Vec<Option<f64>> {
            body["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["event"]["temperature_c"].as_f64())
                .collect()
        };
        let (status, body) = get(
            &router,
            "/api/search?q=*&from=now-2h&sort=temperature_c:desc&limit=1000",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["sort"], "temperature_c:desc");
        let hot_first = temperatures(&body);
        let readings: Vec<f64> = hot_first.iter().map_while(|t| *t).collect();
        assert!(readings.len() > 10, "{hot_first:?}");
        assert!(readings.windows(2).all(|w| w[0] >= w[1]), "{readings:?}");
        // Events without a temperature (logs, alerts) come after every reading.
        assert!(hot_first[readings.len()..].iter().all(Option::is_none));
        let (_, body) = get(
            &router,
            "/api/search?q=kind:observation&from=now-2h&sort=temperature_c:asc&limit=1000",
        )
        .await;
        let cold_first: Vec<f64> = temperatures(&body).into_iter().flatten().collect();
        assert!(
            cold_first.windows(2).all(|w| w[0] <= w[1]),
            "{cold_first:?}"
        );
        assert_eq!(cold_first.first(), readings.last());
        // The time is a field too.
        let (status, body) = get(&router, "/api/search?q=*&sort=timestamp:asc").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["sort"], "oldest");

        for (bad, named) in [
            ("colour:desc", "`colour`"),
            ("message:asc", "`message`"),
            ("temperature_c:up", "`up`"),
        ] {
            let (status, body) = get(&router, &format!("/api/search?q=*&sort={bad}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
            assert_eq!(body["detail"]["parameter"], "sort", "{body}");
            let error = body["error"].as_str().unwrap();
            assert!(error.contains(named), "{bad}: {error}");
        }
    }

    #[tokio::test]
    async fn the_histogram_takes_an_interval_bounded_in_buckets() {
        let (router, _) = indexed();
        let (status, body) = get(&router, "/api/search?q=*&from=now-2h&interval=1m").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["histogram"]["interval_ms"], 60_000);
        let buckets = body["histogram"]["buckets"].as_array().unwrap();
        assert!((120..=121).contains(&buckets.len()), "{}", buckets.len());
        let counted: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
        assert_eq!(counted, body["total"].as_u64().unwrap());

        // `auto` is the indexer's choice, as when absent: about 75 buckets.
        let (_, auto) = get(&router, "/api/search?q=*&from=now-2h&interval=auto").await;
        let (_, absent) = get(&router, "/api/search?q=*&from=now-2h").await;
        assert_eq!(
            auto["histogram"]["interval_ms"],
            absent["histogram"]["interval_ms"]
        );
        assert_eq!(
            auto["histogram"]["interval_ms"].as_i64(),
            Some(crate::search::bucket_width_ms(2 * 3_600_000))
        );

        // A minute over 7 days is 10,080 buckets: refused, saying how many and the bound.
        let (status, body) = get(&router, "/api/search?q=*&from=now-7d&interval=1m").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["detail"]["parameter"], "interval");
        assert_eq!(body["detail"]["buckets"], 10_080);
        assert_eq!(body["detail"]["limit"], MAX_BUCKETS);
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("10080 buckets") && error.contains("2000"),
            "{error}"
        );
        let (status, _) = get(&router, "/api/search?q=*&from=now-7d&interval=1h").await;
        assert_eq!(status, StatusCode::OK);

        for bad in ["1y", "0m", "fast", "1h&interval=1d"] {
            let (status, body) = get(&router, &format!("/api/search?q=*&interval={bad}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
            assert_eq!(body["detail"]["parameter"], "interval", "{bad}: {body}");
        }
    }

    #[tokio::test]
    async fn surrounding_events_keep_the_query_when_given_one() {
        let (router, events) = indexed();
        let observation = |e: &&windsock_core::event::Envelope| {
            matches!(e.event, windsock_core::event::Event::Observation(_))
        };
        let anchor = events.iter().filter(observation).nth(200).unwrap();
        let region = match &anchor.event {
            windsock_core::event::Event::Observation(o) => o.region.clone(),
            _ => unreachable!(),
        };
        let uri = |q: Option<&str>| {
            let q = q
                .map(|q| format!("&q={}", q.replace(' ', "%20").replace('"', "%22")))
                .unwrap_or_default();
            format!("/api/events/{}/context?before=8&after=8{q}", anchor.id)
        };
        let regions = |body: &Value| -> Vec<String> {
            let before = body["before"].as_array().unwrap();
            let after = body["after"].as_array().unwrap();
            before
                .iter()
                .chain(after)
                .map(|h| h["region"].as_str().unwrap_or("").to_string())
                .collect()
        };
        let (status, all) = get(&router, &uri(None)).await;
        assert_eq!(status, StatusCode::OK, "{all}");
        assert!(
            regions(&all).iter().any(|r| *r != region),
            "unfiltered neighbours are of several regions: {:?}",
            regions(&all)
        );
        let query = format!("region:\"{region}\" AND kind:observation");
        let (status, matching) = get(&router, &uri(Some(&query))).await;
        assert_eq!(status, StatusCode::OK, "{matching}");
        assert_eq!(matching["event"]["id"], anchor.id.as_str());
        let found = regions(&matching);
        assert_eq!(found.len(), 16, "{matching}");
        assert!(found.iter().all(|r| *r == region), "{found:?}");
        // Still in time order around the anchor.
        let at = |h: &Value| h["timestamp"].as_str().unwrap().to_string();
        let anchor_at = at(&matching["event"]);
        assert!(matching["before"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| at(h) <= anchor_at));
        assert!(matching["after"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| at(h) >= anchor_at));

        // `*` is every event; a broken query is the search's 400.
        let (_, star) = get(&router, &uri(Some("*"))).await;
        assert_eq!(regions(&star), regions(&all));
        let (status, body) = get(&router, &uri(Some("region:(Dakar"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["detail"]["reason"], "syntax");
    }

    #[tokio::test]
    async fn a_syntax_error_carries_its_position_as_documented() {
        let router = routes(service());
        let (status, body) = get(&router, "/api/search?q=%28region%3ADakar%29%29").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            body["error"],
            "query syntax error: unexpected `)` (no `(` opens it) at column 15"
        );
        let position: QueryPosition =
            serde_json::from_value(body["detail"]["position"].clone()).unwrap();
        assert_eq!(
            position,
            QueryPosition {
                offset: 14,
                column: 15,
                near: ")".into()
            }
        );
        // Documented: the schema, and the 400 that names it.
        let doc = document();
        let (names, required) =
            properties(&doc, &json!({"$ref": "#/components/schemas/QueryPosition"}));
        assert_eq!(names, required);
        assert_eq!(
            names,
            BTreeSet::from(["offset", "column", "near"].map(String::from))
        );
        let described = doc["paths"]["/api/search"]["get"]["responses"]["400"]["description"]
            .as_str()
            .unwrap();
        assert!(described.contains("detail.position") && described.contains("QueryPosition"));
    }

    #[tokio::test]
    async fn a_wrong_method_is_a_405_naming_the_methods_of_its_own_path() {
        let config = Config::default();
        let router = windsock_core::http::harden(routes(service()), &config.http);
        for (method, uri, allowed) in [
            ("PUT", "/api/saved-searches", vec!["GET", "HEAD", "POST"]),
            ("POST", "/api/search", vec!["GET", "HEAD"]),
            ("GET", "/api/saved-searches/3", vec!["DELETE"]),
        ] {
            let response = router
                .clone()
                .oneshot(
                    Request::builder()
                        .method(method)
                        .uri(uri)
                        .header("host", "127.0.0.1")
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri}"
            );
            let mut header: Vec<String> = response.headers()["allow"]
                .to_str()
                .unwrap()
                .split(',')
                .map(|m| m.trim().to_string())
                .collect();
            header.sort();
            assert_eq!(header, allowed, "{method} {uri}");
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(body["error"], format!("{method} is not allowed on {uri}"));
            let mut listed: Vec<&str> = body["detail"]["allowed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap())
                .collect();
            listed.sort();
            assert_eq!(listed, allowed, "{method} {uri}: {body}");
        }
    }
}
