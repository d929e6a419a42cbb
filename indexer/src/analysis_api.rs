//! The routes of aggregations (`/api/aggregate`), daily figures (`/api/daily`), export
//! (`/api/export`) and saved searches (`/api/saved-searches`). Parameters are read and
//! bounded here (every problem a 400 naming it); the work is in [`crate::aggregate`],
//! [`crate::export`] and [`crate::saved`], run off the async threads.

use crate::aggregate::{
    AggregateRequest, AggregateResults, DailyRegion, Metric, DEFAULT_SIZE, FUNCTIONS, MAX_DAYS,
    MAX_SIZE, TERM_FIELDS,
};
use crate::api::{SearchParams, SearchService, TAG};
use crate::export::ExportFormat;
use crate::saved::{NewSavedSearch, SavedError, SavedSearch, SavedSearches, MAX_SAVED};
use crate::search::{bucket_width_ms, SearchError};
use crate::timespec::{self, parse_time};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Instant;
use utoipa::{IntoParams, ToSchema};
use windsock_core::http::{ApiError, Body, ErrorBody, Params};

/// The paths of these routes (the document's test lists them beside the search's).
#[cfg(test)]
pub(crate) const PATHS: [&str; 5] = [
    "/api/aggregate",
    "/api/daily",
    "/api/export",
    "/api/saved-searches",
    "/api/saved-searches/{id}",
];

/// The header saying how many events the export's search matched.
pub const TOTAL_HEADER: &str = "x-windsock-export-total";
/// The header saying whether the export was cut at `indexer.max_export_events`.
pub const TRUNCATED_HEADER: &str = "x-windsock-export-truncated";
/// Chunks (pages of [`crate::export::PAGE`] events) waiting to be sent: what an export holds
/// in memory besides the page being written.
const EXPORT_CHANNEL: usize = 2;

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("aggregation task: {e}")))?
}

fn search_error(err: SearchError) -> ApiError {
    ApiError::from(err)
}

/// `/api/aggregate` parameters (read as text and checked in the handler, as `/api/search`'s).
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AggregateParams {
    /// The query, as `/api/search`'s `q`.
    pub q: Option<String>,
    /// Start of the time range, as `/api/search`'s `from`.
    #[param(default = "now-24h")]
    pub from: Option<String>,
    /// End of the time range, as `/api/search`'s `to`.
    #[param(default = "now")]
    pub to: Option<String>,
    /// The bucket width, as `/api/search`'s `interval`: `auto` (about 75 buckets), `1m`,
    /// `1h`, `1d`, any whole number of `s`, `m`, `h`, `d`, `w`; at most 2,000 buckets.
    #[param(default = "auto", example = "1h")]
    pub interval: Option<String>,
    /// `count`, or `avg`, `min`, `max`, `sum`, `p50`, `p95`, `p99` of a numeric field:
    /// `avg(temperature_c)`. The numeric fields are the observation metrics
    /// (`temperature_c`, `humidity_pct`, `wind_speed_ms`, ...); percentiles are estimates
    /// (within about 1%).
    #[param(default = "count", example = "avg(temperature_c)")]
    pub metric: Option<String>,
    /// Split into one series per value of this field (`kind`, `region`, `level`, `service`,
    /// `source`): the top `size` values by hits, then an `other` series of the rest.
    pub by: Option<String>,
    /// How many values of `by` get a series of their own (1 to 100).
    #[param(value_type = Option<u64>, default = 10, minimum = 1, maximum = 100)]
    pub size: Option<String>,
}

/// The answer of `/api/aggregate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AggregateResponse {
    /// The query as given (empty: every event).
    pub query: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The bucket width used (`1h`, `30m`, `90s`, or milliseconds `250ms`).
    pub interval: String,
    pub interval_ms: i64,
    /// The metric as read (`count`, `avg(temperature_c)`).
    pub metric: String,
    /// The field split by; null without one.
    #[schema(required = true)]
    pub by: Option<String>,
    pub took_ms: f64,
    #[serde(flatten)]
    pub results: AggregateResults,
}

fn bad(parameter: &str, message: String, value: &str) -> ApiError {
    ApiError::bad_request(message).with_detail(json!({"parameter": parameter, "value": value}))
}

/// A width in the largest unit that divides it.
fn width_text(ms: i64) -> String {
    for (unit, size) in [
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// A search's query, time range and interval (milliseconds; None: `auto`).
type SearchParts = (String, DateTime<Utc>, DateTime<Utc>, Option<i64>);

/// The time range, query and interval of a search's parameters, checked as `/api/search`
/// checks them.
fn search_parts(
    service: &SearchService,
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
    interval: Option<String>,
) -> Result<SearchParts, ApiError> {
    let params = SearchParams {
        q,
        from,
        to,
        interval,
        ..Default::default()
    };
    let (request, _, interval) = service.request_bucketed(&params)?;
    Ok((request.q, request.from, request.to, interval))
}

/// Aggregates the hits of a search over time.
///
/// A date histogram of the hits with a metric in each bucket (`count`, or `avg`, `min`, `max`,
/// `sum`, `p50`, `p95`, `p99` of a numeric field), optionally one series per top value of a
/// field (`by`) and one for the rest.
#[utoipa::path(
    get,
    path = "/api/aggregate",
    tag = TAG,
    params(AggregateParams),
    responses(
        (status = 200, description = "The series of points", body = AggregateResponse),
        (status = 400, description = "A parameter is malformed, repeated or over its bound \
                                      (`detail.parameter` names it): an unknown function or a \
                                      field that is not numeric in `metric`, a `by` field \
                                      without terms, a query as `/api/search` refuses it", body = ErrorBody),
        (status = 500, description = "The index failed (details in the log)", body = ErrorBody),
    )
)]
pub(crate) async fn aggregate(
    State(service): State<SearchService>,
    Params(params): Params<AggregateParams>,
) -> Result<Json<AggregateResponse>, ApiError> {
    let (q, from, to, interval) =
        search_parts(&service, params.q, params.from, params.to, params.interval)?;
    let interval_ms = interval
        .unwrap_or_else(|| bucket_width_ms((to - from).num_milliseconds()))
        .max(1);
    let index = service.shared_index().clone();
    let metric_text = params.metric.unwrap_or_else(|| "count".into());
    let metric = Metric::parse(&metric_text, &index).map_err(|e| {
        ApiError::bad_request(format!("invalid `metric`: {}", e.message)).with_detail(json!({
            "parameter": "metric",
            "value": metric_text,
            "reason": e.reason,
            "expected": FUNCTIONS,
        }))
    })?;
    let by = match params.by.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(field) if TERM_FIELDS.contains(&field) => Some(field.to_string()),
        Some(field) => {
            return Err(ApiError::bad_request(format!(
                "invalid `by`: field \"{field}\" cannot split a series; expected one of {}",
                TERM_FIELDS.join(", ")
            ))
            .with_detail(json!({"parameter": "by", "value": field, "expected": TERM_FIELDS})))
        }
    };
    let size = match params.size.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_SIZE,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_SIZE).contains(&n) => n,
            _ => {
                return Err(bad(
                    "size",
                    format!("invalid `size`: `{text}` is not a whole number from 1 to {MAX_SIZE}"),
                    text,
                ))
            }
        },
    };
    let request = AggregateRequest {
        q: q.clone(),
        from,
        to,
        interval_ms,
        metric,
        by: by.clone().map(|field| (field, size)),
    };
    let started = Instant::now();
    let results = blocking(move || index.aggregate(&request).map_err(search_error)).await?;
    Ok(Json(AggregateResponse {
        query: q,
        from,
        to,
        interval: width_text(interval_ms),
        interval_ms,
        metric: metric_text.trim().to_string(),
        by,
        took_ms: started.elapsed().as_secs_f64() * 1000.0,
        results,
    }))
}

/// `/api/daily` parameters.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DailyParams {
    /// Regions, comma-separated (`Dakar,Thiès`); absent: every configured region.
    pub regions: Option<String>,
    /// The first day: its UTC date is taken (`now-7d`, `2026-11-25T00:00:00Z`).
    #[param(default = "now-7d")]
    pub from: Option<String>,
    /// The last day, included.
    #[param(default = "now")]
    pub to: Option<String>,
}

/// The answer of `/api/daily`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DailyResponse {
    /// The first day (UTC date).
    pub from: String,
    /// The last day, included.
    pub to: String,
    /// Each region asked for, in the order asked, every day listed.
    pub regions: Vec<DailyRegion>,
}

/// The most regions one `/api/daily` names, and the longest name.
const MAX_DAILY_REGIONS: usize = 1_000;
const MAX_REGION_CHARS: usize = 200;

/// Daily temperature per region: observed and forecast.
///
/// For each region and UTC day: the minimum, mean and maximum observed temperature and how
/// many observations, and beside them the same figures of the forecast's points for that day
/// (from the newest forecast event with points in it), null where there are none. At most 366
/// days.
#[utoipa::path(
    get,
    path = "/api/daily",
    tag = TAG,
    params(DailyParams),
    responses(
        (status = 200, description = "Each region's days", body = DailyResponse),
        (status = 400, description = "A parameter is malformed or over its bound (more than \
                                      366 days, 1,000 regions); `detail.parameter` names it", body = ErrorBody),
        (status = 500, description = "The index failed (details in the log)", body = ErrorBody),
    )
)]
pub(crate) async fn daily(
    State(service): State<SearchService>,
    Params(params): Params<DailyParams>,
) -> Result<Json<DailyResponse>, ApiError> {
    let now = service.shared_clock().now();
    let time = |name: &'static str, value: Option<&String>, default: &str| {
        let value = value.map(String::as_str).unwrap_or(default);
        parse_time(value, now).map_err(|e| {
            ApiError::bad_request(format!("invalid `{name}`: {e}")).with_detail(json!({
                "parameter": name,
                "value": value,
                "expected": timespec::EXPECTED,
            }))
        })
    };
    let from = time("from", params.from.as_ref(), "now-7d")?.date_naive();
    let to = time("to", params.to.as_ref(), "now")?.date_naive();
    if from > to {
        return Err(bad(
            "from",
            "`from` is after `to`".into(),
            &from.to_string(),
        ));
    }
    let days = (to - from).num_days() + 1;
    if days > MAX_DAYS {
        return Err(ApiError::bad_request(format!(
            "invalid `from`: the range is {days} days; at most {MAX_DAYS}"
        ))
        .with_detail(json!({"parameter": "from", "days": days, "limit": MAX_DAYS})));
    }
    let regions: Vec<String> = match params.regions.as_deref() {
        Some(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .collect(),
        _ => service
            .shared_config()
            .regions
            .iter()
            .map(|r| r.name.clone())
            .collect(),
    };
    if regions.len() > MAX_DAILY_REGIONS
        || regions.iter().any(|r| r.chars().count() > MAX_REGION_CHARS)
    {
        return Err(ApiError::bad_request(format!(
            "invalid `regions`: at most {MAX_DAILY_REGIONS} names of at most {MAX_REGION_CHARS} characters"
        ))
        .with_detail(json!({"parameter": "regions", "limit": MAX_DAILY_REGIONS})));
    }
    let index = service.shared_index().clone();
    let regions = blocking(move || index.daily(&regions, from, to).map_err(search_error)).await?;
    Ok(Json(DailyResponse {
        from: from.to_string(),
        to: to.to_string(),
        regions,
    }))
}

/// `/api/export` parameters.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// The query, as `/api/search`'s `q`.
    pub q: Option<String>,
    /// Start of the time range, as `/api/search`'s `from`.
    #[param(default = "now-24h")]
    pub from: Option<String>,
    /// End of the time range, as `/api/search`'s `to`.
    #[param(default = "now")]
    pub to: Option<String>,
    /// `csv` or `ndjson`.
    #[param(default = "csv")]
    pub format: Option<String>,
}

fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Exports every hit of a search, oldest first.
///
/// Streamed, whatever the count, up to `indexer.max_export_events` (1,000,000 by default).
/// `X-Windsock-Export-Total` says how many events the search matched and
/// `X-Windsock-Export-Truncated` (`true`/`false`) whether the export is cut at the maximum;
/// an NDJSON export that is cut ends with the line `{"truncated": true, "total": N,
/// "exported": M}`. CSV: a header row, then one row per event: `id`, `timestamp`, `kind`,
/// `region`, `level`, `service`, `source`, `message`, one column per observation metric, and
/// `attributes` (every other attribute, as a JSON object). NDJSON: each event as published,
/// one a line.
#[utoipa::path(
    get,
    path = "/api/export",
    tag = TAG,
    params(ExportParams),
    responses(
        (status = 200, description = "Every hit, oldest first",
         headers(
            ("X-Windsock-Export-Total" = u64, description = "Events the search matched"),
            ("X-Windsock-Export-Truncated" = bool, description = "Whether the export stops at indexer.max_export_events"),
            ("Content-Disposition" = String, description = "attachment; filename=\"windsock-export-<from>-<to>.csv\""),
         ),
         content(
            (String = "text/csv"),
            (String = "application/x-ndjson"),
         )),
        (status = 400, description = "A parameter is malformed or repeated (`detail.parameter` \
                                      names it), or the query is refused as `/api/search` \
                                      refuses it", body = ErrorBody),
        (status = 500, description = "The index failed (details in the log)", body = ErrorBody),
    )
)]
pub(crate) async fn export(
    State(service): State<SearchService>,
    Params(params): Params<ExportParams>,
) -> Result<Response, ApiError> {
    let format = match params.format.as_deref().map(str::trim) {
        None | Some("") | Some("csv") => ExportFormat::Csv,
        Some("ndjson" | "jsonl") => ExportFormat::Ndjson,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid `format`: `{other}`; expected csv or ndjson"
            ))
            .with_detail(
                json!({"parameter": "format", "value": other, "expected": ["csv", "ndjson"]}),
            ))
        }
    };
    let (q, from, to, _) = search_parts(&service, params.q, params.from, params.to, None)?;
    let index = service.shared_index().clone();
    let max = service.shared_config().indexer.max_export_events;
    let export = blocking(move || {
        index
            .export(&q, from, to, format, max)
            .map_err(search_error)
    })
    .await?;
    let (total, truncated) = (export.total, export.truncated());
    let (sender, mut receiver) =
        tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(EXPORT_CHANNEL);
    tokio::task::spawn_blocking(move || {
        let sent = sender.clone();
        // A panic (a bug, here or in tantivy) is a failure like an error, not a body that
        // ends as if it were whole.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            export.write(|chunk| sent.blocking_send(Ok(chunk)).is_ok())
        }));
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("a panic".to_string()),
        };
        if let Some(error) = failure {
            // Headers are gone: the stream ends in an error, which cuts the connection, so a
            // client cannot take a part for the whole.
            tracing::warn!(%error, "export failed");
            let _ = sender.blocking_send(Err(std::io::Error::other("export failed")));
        }
    });
    let stream = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let filename = format!(
        "windsock-export-{}-{}.{}",
        stamp(from),
        stamp(to),
        format.extension()
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(TOTAL_HEADER, HeaderValue::from(total));
    headers.insert(
        TRUNCATED_HEADER,
        HeaderValue::from_static(if truncated { "true" } else { "false" }),
    );
    Ok((
        StatusCode::OK,
        headers,
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// The saved searches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SavedSearchesResponse {
    /// Oldest first; at most 1,000.
    pub saved_searches: Vec<SavedSearch>,
}

/// `Authorization: Bearer <token>` when `http.api_token` is set (as the alerter's silences).
fn authorize(service: &SearchService, headers: &HeaderMap) -> Result<(), ApiError> {
    windsock_core::http::authorize(&service.shared_config().http, headers)
}

fn saved_error(err: SavedError) -> ApiError {
    match err {
        SavedError::Invalid(message) => ApiError::bad_request(message),
        SavedError::Full => ApiError::conflict(SavedError::Full.to_string())
            .with_detail(json!({"limit": MAX_SAVED})),
        io @ SavedError::Io { .. } => ApiError::internal(io),
    }
}

fn store(service: &SearchService) -> SavedSearches {
    SavedSearches::new(&service.shared_config().data_dir)
}

/// Lists the saved searches.
#[utoipa::path(
    get,
    path = "/api/saved-searches",
    tag = TAG,
    responses(
        (status = 200, description = "Every saved search, oldest first", body = SavedSearchesResponse),
        (status = 500, description = "The list cannot be read (details in the log)", body = ErrorBody),
    )
)]
pub(crate) async fn list_saved_searches(
    State(service): State<SearchService>,
) -> Result<Json<SavedSearchesResponse>, ApiError> {
    let store = store(&service);
    let saved_searches = blocking(move || store.list().map_err(saved_error)).await?;
    Ok(Json(SavedSearchesResponse { saved_searches }))
}

/// Saves a search.
#[utoipa::path(
    post,
    path = "/api/saved-searches",
    tag = TAG,
    request_body = NewSavedSearch,
    responses(
        (status = 201, description = "Saved, with its id", body = SavedSearch),
        (status = 400, description = "The body is invalid; the message lists every problem", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 409, description = "1,000 searches are saved already", body = ErrorBody),
        (status = 413, description = "The body is over the size limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON", body = ErrorBody),
        (status = 500, description = "The list cannot be written (details in the log)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn save_search(
    State(service): State<SearchService>,
    headers: HeaderMap,
    body: Result<Body<NewSavedSearch>, ApiError>,
) -> Result<(StatusCode, Json<SavedSearch>), ApiError> {
    authorize(&service, &headers)?;
    let Body(new) = body?;
    let store = store(&service);
    let max_query_length = service.shared_config().indexer.max_query_length;
    let now = service.shared_clock().now();
    let saved =
        blocking(move || store.add(new, max_query_length, now).map_err(saved_error)).await?;
    tracing::info!(id = %saved.id, "search saved");
    Ok((StatusCode::CREATED, Json(saved)))
}

/// Deletes a saved search.
#[utoipa::path(
    delete,
    path = "/api/saved-searches/{id}",
    tag = TAG,
    params(("id" = String, Path, description = "The saved search's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id does not decode", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 404, description = "No saved search has this id", body = ErrorBody),
        (status = 500, description = "The list cannot be written (details in the log)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn delete_saved_search(
    State(service): State<SearchService>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    authorize(&service, &headers)?;
    // Read by hand so an id that does not decode (`%FF`) is our 400, not axum's text.
    let Path(id) = id.map_err(|e| {
        ApiError::bad_request(format!("invalid id in the path: {}", e.body_text()))
            .with_detail(json!({"parameter": "id", "reason": "path"}))
    })?;
    let store = store(&service);
    let shown = id.chars().take(100).collect::<String>();
    let deleted = blocking(move || store.delete(&id).map_err(saved_error)).await?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no saved search `{shown}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_describes_these_routes_as_served() {
        let doc = serde_json::to_value(crate::api::openapi()).unwrap();
        for path in PATHS {
            assert!(doc["paths"][path].is_object(), "{path} is not documented");
        }
        let export = &doc["paths"]["/api/export"]["get"]["responses"]["200"];
        let content = export["content"].as_object().unwrap();
        let types: Vec<&str> = content.keys().map(String::as_str).collect();
        assert_eq!(types, ["application/x-ndjson", "text/csv"], "{export}");
        for header in ["X-Windsock-Export-Total", "X-Windsock-Export-Truncated"] {
            assert!(export["headers"][header].is_object(), "{export}");
        }
        for (method, path) in [
            ("post", "/api/saved-searches"),
            ("delete", "/api/saved-searches/{id}"),
        ] {
            let operation = &doc["paths"][path][method];
            assert_eq!(operation["security"], json!([{"bearer": []}]), "{path}");
            assert_eq!(operation["tags"][0], TAG);
        }
        let aggregate = &doc["paths"]["/api/aggregate"]["get"];
        let names: Vec<&str> = aggregate["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["q", "from", "to", "interval", "metric", "by", "size"]
        );
        let schemas = &doc["components"]["schemas"];
        for schema in [
            "AggregateResponse",
            "Series",
            "Point",
            "DailyResponse",
            "DailyRegion",
            "Day",
            "DailyFigures",
            "SavedSearch",
            "NewSavedSearch",
            "SavedSearchesResponse",
        ] {
            assert!(schemas[schema].is_object(), "{schema} missing");
        }
        assert_eq!(
            schemas["Point"]["required"],
            json!(["start", "value", "count"]),
            "a point's value is always there, null when no hit has the field"
        );
    }

    #[test]
    fn widths_read_in_their_largest_unit() {
        assert_eq!(width_text(3_600_000), "1h");
        assert_eq!(width_text(86_400_000), "1d");
        assert_eq!(width_text(90_000), "90s");
        assert_eq!(width_text(1_800_000), "30m");
        assert_eq!(width_text(250), "250ms");
        assert_eq!(width_text(604_800_000 * 2), "2w");
    }
}
