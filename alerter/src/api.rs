//! The alert API: thin handlers over the engine (live state) and the store (history).
//!
//! - `GET /api/alerts?state=firing|pending|resolved|all&region=&limit=`
//! - `GET /api/alerts/{id}/history` (an occurrence id, or a fingerprint for all occurrences)
//! - `GET /api/silences`, `POST /api/silences`, `DELETE /api/silences/{id}`
//! - `GET /api/rules`: each rule's latest evaluation, region by region
//! - `GET /api/deliveries?status=&limit=`: the outbox, with counts per status
//!
//! Changing silences needs `Authorization: Bearer <token>` when `http.api_token` is set.

use crate::engine::Alert;
use crate::rules::{Finding, PIPELINE_DOWN};
use crate::service::Shared;
use crate::silence::{Silence, SilenceStatus};
use crate::store::{DeliveryStatus, StoreError};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
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

pub(crate) fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/alerts", get(list_alerts))
        .route("/api/alerts/{id}/history", get(alert_history))
        .route("/api/silences", get(list_silences).post(create_silence))
        .route("/api/silences/{id}", delete(expire_silence))
        .route("/api/rules", get(list_rules))
        .route("/api/deliveries", get(list_deliveries))
        .with_state(shared)
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
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error_response(status, self.to_string(), None)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

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
                "state `{other}` is not one of firing, pending, resolved, all"
            )))
        }
    };
    let limit = limit(query.limit);
    let stored = shared
        .store
        .alerts(states, query.region.as_deref(), limit)?;
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

async fn alert_history(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let Some(alert) = shared.store.alert(&id)? else {
        return Err(ApiError::NotFound(format!(
            "no alert or fingerprint `{id}`"
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
    shared.store.put_silence(&silence)?;
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
    if let Some(rule) = body.rule.as_deref().filter(|r| !r.trim().is_empty()) {
        let mut known: Vec<String> = shared
            .config
            .alerter
            .rules
            .iter()
            .map(|r| r.name().to_string())
            .collect();
        known.push(PIPELINE_DOWN.to_string());
        if !known.iter().any(|k| k == rule) {
            problems.push(format!(
                "rule `{rule}` does not exist (rules: {})",
                known.join(", ")
            ));
        }
    }
    if body.author.trim().is_empty() {
        problems.push("`author` must not be empty".into());
    }
    if body.comment.trim().is_empty() {
        problems.push("`comment` must say why".into());
    }
    let starts_at = body.starts_at.unwrap_or(now);
    let ends_at = match (body.ends_at, body.duration.as_deref()) {
        (Some(_), Some(_)) => {
            problems.push("give `ends_at` or `duration`, not both".into());
            None
        }
        (Some(end), None) => Some(end),
        (None, Some(d)) => match humantime::parse_duration(d) {
            Ok(d) => chrono::Duration::from_std(d).ok().map(|d| starts_at + d),
            Err(err) => {
                problems.push(format!("`duration` `{d}`: {err} (try 2h, 30m)"));
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
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::BadRequest(problems.join("; ")));
    }
    let trimmed = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let rule = trimmed(body.rule);
    let region = trimmed(body.region);
    let created = now.timestamp_nanos_opt().unwrap_or_default().to_string();
    Ok(Silence {
        id: stable_id(&[
            "silence",
            &created,
            &body.author,
            rule.as_deref().unwrap_or(""),
            region.as_deref().unwrap_or(""),
        ]),
        rule,
        region,
        starts_at,
        ends_at: ends_at.expect("checked above"),
        author: body.author.trim().to_string(),
        comment: body.comment.trim().to_string(),
        created_at: now,
    })
}

async fn expire_silence(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    authorize(&shared, &headers)?;
    let now = shared.clock.now();
    let silence = shared.engine.lock().expire_silence(&id, now);
    let Some(silence) = silence else {
        return Err(ApiError::NotFound(format!("no silence `{id}`")));
    };
    shared.store.put_silence(&silence)?;
    tracing::info!(silence = %silence.id, "silence expired");
    debug_assert_ne!(silence.status(now), SilenceStatus::Active);
    Ok(Json(silence_view(&silence, now)))
}

async fn list_rules(State(shared): State<Arc<Shared>>) -> ApiResult {
    let engine = shared.engine.lock();
    let findings = engine.findings();
    let of = |name: &str| -> Vec<&Finding> { findings.iter().filter(|f| f.rule == name).collect() };
    let mut rules = Vec::new();
    for rule in engine.rules() {
        let config = shared
            .config
            .alerter
            .rules
            .iter()
            .find(|c| c.name() == rule.name());
        let evaluation = of(rule.name());
        let active = evaluation
            .iter()
            .filter(|f| f.verdict == crate::rules::Verdict::Active)
            .count();
        rules.push(json!({
            "name": rule.name(),
            "kind": rule.kind(),
            "config": config,
            "active": active,
            "evaluation": evaluation,
        }));
        if rule.kind() == "late_data" {
            let evaluation = of(PIPELINE_DOWN);
            if !evaluation.is_empty() {
                rules.push(json!({
                    "name": PIPELINE_DOWN,
                    "kind": "late_data",
                    "config": config,
                    "active": evaluation.iter().filter(|f| f.verdict == crate::rules::Verdict::Active).count(),
                    "evaluation": evaluation,
                }));
            }
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
        "counts": counts,
        "deliveries": deliveries,
    })))
}
