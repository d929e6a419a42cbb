//! The alert API: thin handlers over the engine (live state) and the store (history).
//!
//! - `GET /api/alerts?state=firing|pending|resolved|all&region=&limit=`
//! - `GET /api/alerts/{id}/history` (an occurrence id, or a fingerprint for all occurrences)
//! - `GET /api/silences`, `POST /api/silences`, `DELETE /api/silences/{id}`
//! - `GET /api/rules`: each rule's latest evaluation, region by region
//! - `GET /api/deliveries?status=&limit=`: the outbox, with counts per status
//!
//! Changing silences needs `Authorization: Bearer <token>` when `http.api_token` is set.
//!
//! Every input is bounded and checked before it is used (a silence lasts at most
//! [`MAX_SILENCE_DAYS`], its texts have a length limit, bodies at most [`MAX_BODY_BYTES`]),
//! and every failure is a JSON `{"error": ...}` with a 4xx that says what is wrong.

use crate::engine::Alert;
use crate::rules::Finding;
use crate::service::Shared;
use crate::silence::{Silence, SilenceStatus};
use crate::store::{DeliveryStatus, StoreError};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use windsock_core::event::{stable_id, AlertState};
use windsock_core::http::error_response;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// The longest a silence may last, and the farthest ahead it may start.
pub const MAX_SILENCE_DAYS: i64 = 365;
/// Characters (not bytes) of a silence's `author` and `comment`.
pub const MAX_AUTHOR_CHARS: usize = 100;
pub const MAX_COMMENT_CHARS: usize = 1000;
/// A request body larger than this is refused with a 413 (a silence is a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The most characters of a request's own value repeated in an error message.
const ECHO_CHARS: usize = 64;

pub(crate) fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/alerts", get(list_alerts))
        .route("/api/alerts/{id}/history", get(alert_history))
        .route("/api/silences", get(list_silences).post(create_silence))
        .route("/api/silences/{id}", delete(expire_silence))
        .route("/api/rules", get(list_rules))
        .route("/api/deliveries", get(list_deliveries))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}

/// A value from the request, cut to a length fit for an error message.
fn shown(value: &str) -> String {
    if value.chars().count() <= ECHO_CHARS {
        return value.to_string();
    }
    let cut: String = value.chars().take(ECHO_CHARS).collect();
    format!("{cut}…")
}

/// Every way an alert API request fails, mapped to one JSON error shape.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong API token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    /// The body or query could not be read (too large, wrong content type, malformed).
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    /// Nothing of what went wrong is shown: it is in the log.
    #[error("internal error")]
    Internal,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Rejected { status, .. } => *status,
            ApiError::Store(_) | ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error_response(status, self.to_string(), None)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // axum says 422 for a body of the wrong shape; to a client it is a bad request all
        // the same. Only the two statuses a client acts on differently are kept.
        let (status, message) = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is larger than the limit of {} KiB",
                    MAX_BODY_BYTES / 1024
                ),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON with `content-type: application/json`".to_string(),
            ),
            _ => (StatusCode::BAD_REQUEST, rejection.body_text()),
        };
        ApiError::Rejected { status, message }
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// Runs store work on the blocking pool: SQLite calls must not hold a runtime thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|err| {
            tracing::error!(error = %err, "an alert API task failed");
            Err(ApiError::Internal)
        })
}

fn limit(requested: Option<usize>) -> usize {
    requested.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    state: Option<String>,
    region: Option<String>,
    limit: Option<usize>,
}

async fn list_alerts(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<AlertsQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query?;
    let states: &[AlertState] = match query.state.as_deref().unwrap_or("all") {
        "firing" => &[AlertState::Firing],
        "pending" => &[AlertState::Pending],
        "resolved" => &[AlertState::Resolved],
        "all" => &[
            AlertState::Pending,
            AlertState::Firing,
            AlertState::Resolved,
        ],
        other => {
            return Err(ApiError::BadRequest(format!(
                "state `{}` is not one of firing, pending, resolved, all",
                shown(other)
            )))
        }
    };
    let limit = limit(query.limit);
    blocking(move || alerts_of(&shared, states, query.region.as_deref(), limit)).await
}

fn alerts_of(
    shared: &Shared,
    states: &[AlertState],
    region: Option<&str>,
    limit: usize,
) -> ApiResult {
    let stored = shared.store.alerts(states, region, limit)?;
    // Open alerts are read live from the engine (their values move every round).
    let live: std::collections::HashMap<String, Alert> = shared
        .engine
        .lock()
        .alerts()
        .map(|a| (a.id.clone(), a.clone()))
        .collect();
    let mut alerts = Vec::with_capacity(stored.len());
    for alert in stored {
        let alert = live.get(&alert.id).cloned().unwrap_or(alert);
        let deliveries = shared.store.deliveries(None, Some(&alert.id), 20)?;
        alerts.push(json!({
            "alert": alert,
            "deliveries": deliveries,
        }));
    }
    let configured = shared
        .config
        .alerter
        .slack
        .webhook_url
        .as_ref()
        .is_some_and(|w| !w.is_empty());
    Ok(Json(
        json!({ "alerts": alerts, "slack_configured": configured }),
    ))
}

async fn alert_history(
    State(shared): State<Arc<Shared>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(id) = id?;
    blocking(move || history_of(&shared, id)).await
}

fn history_of(shared: &Shared, id: String) -> ApiResult {
    let Some(alert) = shared.store.alert(&id)? else {
        return Err(ApiError::NotFound(format!(
            "no alert or fingerprint `{}`",
            shown(&id)
        )));
    };
    let history = shared.store.history(&id)?;
    let deliveries = if id == alert.fingerprint {
        Vec::new()
    } else {
        shared.store.deliveries(None, Some(&id), MAX_LIMIT)?
    };
    Ok(Json(
        json!({ "alert": alert, "history": history, "deliveries": deliveries }),
    ))
}

fn silence_view(silence: &Silence, now: DateTime<Utc>) -> Value {
    let mut view = serde_json::to_value(silence).unwrap_or_default();
    view["status"] = serde_json::to_value(silence.status(now)).unwrap_or_default();
    view
}

async fn list_silences(State(shared): State<Arc<Shared>>) -> ApiResult {
    let now = shared.clock.now();
    let engine = shared.engine.lock();
    let mut silences: Vec<&Silence> = engine.silences().collect();
    silences.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    let views: Vec<Value> = silences.iter().map(|s| silence_view(s, now)).collect();
    Ok(Json(json!({ "silences": views })))
}

/// `POST /api/silences` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    rule: Option<String>,
    region: Option<String>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    /// Instead of `ends_at`: `2h`, `30m`.
    duration: Option<String>,
    author: String,
    comment: String,
}

fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = shared
        .config
        .http
        .api_token
        .as_ref()
        .filter(|t| !t.is_empty())
    else {
        return Ok(());
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

async fn create_silence(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Json<NewSilence>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&shared, &headers)?;
    let Json(body) = body?;
    let now = shared.clock.now();
    let silence = validate_silence(&shared, body, now)?;
    let stored = silence.clone();
    let store = shared.store.clone();
    blocking(move || Ok(store.put_silence(&stored)?)).await?;
    shared.engine.lock().add_silence(silence.clone());
    tracing::info!(silence = %silence.id, author = %silence.author, "silence created");
    Ok((StatusCode::CREATED, Json(silence_view(&silence, now))))
}

fn validate_silence(
    shared: &Shared,
    body: NewSilence,
    now: DateTime<Utc>,
) -> Result<Silence, ApiError> {
    let mut problems = Vec::new();
    let blank = |s: &Option<String>| s.as_ref().is_none_or(|s| s.trim().is_empty());
    if blank(&body.rule) && blank(&body.region) {
        problems.push(
            "give `rule`, `region` or both: a silence of everything is not allowed".to_string(),
        );
    }
    if let Some(rule) = body
        .rule
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        // What silences match is the name an alert carries, which is not always its rule's
        // (late_data's pipeline_down, pipeline_health's service_failing and disk_full).
        let known: Vec<String> = {
            let engine = shared.engine.lock();
            let mut known: Vec<String> = Vec::new();
            for name in engine.rules().flat_map(|r| r.alert_names()) {
                if !known.iter().any(|k| k == name) {
                    known.push(name.to_string());
                }
            }
            known
        };
        if !known.iter().any(|k| k == rule) {
            problems.push(format!(
                "rule `{}` does not exist (rules: {})",
                shown(rule),
                known.join(", ")
            ));
        }
    }
    if let Some(region) = body
        .region
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        let regions = &shared.config.regions;
        if !regions.iter().any(|r| r.name == region) {
            let mut names: Vec<&str> = regions.iter().take(20).map(|r| r.name.as_str()).collect();
            if regions.len() > names.len() {
                names.push("…");
            }
            problems.push(format!(
                "region `{}` is not a configured region (regions: {})",
                shown(region),
                names.join(", ")
            ));
        }
    }
    let author = body.author.trim();
    let comment = body.comment.trim();
    if author.is_empty() {
        problems.push("`author` must not be empty".into());
    }
    if comment.is_empty() {
        problems.push("`comment` must say why".into());
    }
    for (field, text, limit) in [
        ("author", author, MAX_AUTHOR_CHARS),
        ("comment", comment, MAX_COMMENT_CHARS),
    ] {
        let chars = text.chars().count();
        if chars > limit {
            problems.push(format!(
                "`{field}` is {chars} characters long; the limit is {limit} characters"
            ));
        }
    }
    let max = chrono::Duration::days(MAX_SILENCE_DAYS);
    let longest = format!("{MAX_SILENCE_DAYS} days");
    // Every bound is checked before any arithmetic on times, and the arithmetic is checked
    // anyway: a time out of chrono's range is refused, never a panic.
    let latest_start = now.checked_add_signed(max);
    let starts_at = body.starts_at.unwrap_or(now);
    if latest_start.is_none_or(|latest| starts_at > latest) {
        problems.push(format!(
            "`starts_at` is more than {longest} ahead: plan silences at most {longest} ahead"
        ));
    }
    let ends_at = match (body.ends_at, body.duration.as_deref()) {
        (Some(_), Some(_)) => {
            problems.push("give `ends_at` or `duration`, not both".into());
            None
        }
        (Some(end), None) => Some(end),
        (None, Some(d)) => match parse_duration(d, max) {
            Ok(d) => {
                let end = starts_at.checked_add_signed(d);
                if end.is_none() {
                    problems.push("`starts_at` plus `duration` is not a representable time".into());
                }
                end
            }
            Err(problem) => {
                problems.push(problem);
                None
            }
        },
        (None, None) => {
            problems.push("give `ends_at` or `duration`".into());
            None
        }
    };
    if let Some(end) = ends_at {
        if end <= starts_at {
            problems.push("the silence must end after it starts".into());
        } else if end <= now {
            problems.push("`ends_at` is in the past".into());
        } else if end.signed_duration_since(starts_at) > max {
            problems.push(format!(
                "a silence lasts at most {longest}; this one would last longer"
            ));
        }
    }
    // Every path that leaves `ends_at` unset has said why in `problems`.
    let ends_at = match ends_at {
        Some(end) if problems.is_empty() => end,
        _ => return Err(ApiError::BadRequest(problems.join("; "))),
    };
    let trimmed = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let rule = trimmed(body.rule);
    let region = trimmed(body.region);
    let created = now.timestamp_nanos_opt().unwrap_or_default().to_string();
    Ok(Silence {
        id: stable_id(&[
            "silence",
            &created,
            author,
            rule.as_deref().unwrap_or(""),
            region.as_deref().unwrap_or(""),
        ]),
        rule,
        region,
        starts_at,
        ends_at,
        author: author.to_string(),
        comment: comment.to_string(),
        created_at: now,
    })
}

/// A silence's `duration` (`2h`, `30m`), refused past `max` before it is turned into time.
fn parse_duration(text: &str, max: chrono::Duration) -> Result<chrono::Duration, String> {
    let longest = format!("{MAX_SILENCE_DAYS} days");
    let parsed = humantime::parse_duration(text.trim())
        .map_err(|err| format!("`duration` `{}`: {err} (try 2h, 30m)", shown(text)))?;
    let max_std = max.to_std().unwrap_or(std::time::Duration::MAX);
    if parsed > max_std {
        return Err(format!(
            "`duration` `{}` is longer than the maximum of {longest}",
            shown(text)
        ));
    }
    if parsed.is_zero() {
        return Err("`duration` must be more than 0s".into());
    }
    chrono::Duration::from_std(parsed)
        .map_err(|_| format!("`duration` `{}` is out of range", shown(text)))
}

async fn expire_silence(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    authorize(&shared, &headers)?;
    let Path(id) = id?;
    let now = shared.clock.now();
    let silence = shared.engine.lock().expire_silence(&id, now);
    let Some(silence) = silence else {
        return Err(ApiError::NotFound(format!("no silence `{}`", shown(&id))));
    };
    let stored = silence.clone();
    let store = shared.store.clone();
    blocking(move || Ok(store.put_silence(&stored)?)).await?;
    tracing::info!(silence = %silence.id, "silence expired");
    debug_assert_ne!(silence.status(now), SilenceStatus::Active);
    Ok(Json(silence_view(&silence, now)))
}

async fn list_rules(State(shared): State<Arc<Shared>>) -> ApiResult {
    let engine = shared.engine.lock();
    let findings = engine.findings();
    let mut rules = Vec::new();
    for rule in engine.rules() {
        let config = shared
            .config
            .alerter
            .rules
            .iter()
            .find(|c| c.name() == rule.name());
        // One entry per name its alerts carry (late_data's pipeline_down, pipeline_health's
        // service_failing and disk_full): the names silences take.
        for name in rule.alert_names() {
            let evaluation: Vec<&Finding> = findings.iter().filter(|f| f.rule == name).collect();
            let active = evaluation
                .iter()
                .filter(|f| f.verdict == crate::rules::Verdict::Active)
                .count();
            rules.push(json!({
                "name": name,
                "kind": rule.kind(),
                "rule": rule.name(),
                "config": config,
                "active": active,
                "evaluation": evaluation,
            }));
        }
    }
    Ok(Json(json!({ "rules": rules })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    status: Option<String>,
    limit: Option<usize>,
}

async fn list_deliveries(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<DeliveriesQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query?;
    let status = match query.status.as_deref() {
        None | Some("all") => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "status `{s}` is not one of all, {}",
                DeliveryStatus::ALL.map(|s| s.as_str()).join(", ")
            ))
        })?),
    };
    let deliveries = shared.store.deliveries(status, None, limit(query.limit))?;
    let counts = shared.store.delivery_counts()?;
    let configured = shared
        .config
        .alerter
        .slack
        .webhook_url
        .as_ref()
        .is_some_and(|w| !w.is_empty());
    Ok(Json(json!({
        "slack_configured": configured,
        // False while the store cannot write (a full disk): some messages, or what became of
        // them, are only in memory (each such delivery says `durable: false`).
        "outbox_durable": shared.store.is_durable(),
        "counts": counts,
        "deliveries": deliveries,
    })))
}
