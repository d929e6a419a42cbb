//! The alert API: thin handlers over the engine (live state) and the store (history).
//!
//! - `GET /api/alerts?state=firing|pending|resolved|all&region=&limit=`
//! - `GET /api/alerts/{id}/history` (an occurrence id, or a fingerprint for all occurrences)
//! - `GET /api/silences`, `POST /api/silences`, `DELETE /api/silences/{id}`
//! - `GET /api/rules`: each rule's latest evaluation, region by region, with its origin
//! - `POST /api/rules`, `PUT /api/rules/{name}`, `DELETE /api/rules/{name}`: query rules
//!   created through the API (persisted; the file's rules cannot be changed here)
//! - `GET /api/deliveries?status=&limit=`: the outbox, with counts per status
//!
//! Changing silences or rules needs `Authorization: Bearer <token>` when `http.api_token` is set.
//!
//! Every route is described by its `#[utoipa::path]` and the types it really returns, and
//! [`router`] is built from those very descriptions, so [`openapi`] cannot drift from what is
//! served. Errors are [`ApiError`]s (`{"error": ..., "detail": ...}`).
//!
//! Every input is bounded and checked before it is used (a silence lasts at most
//! [`MAX_SILENCE_DAYS`], its texts have a length limit, bodies at most [`MAX_BODY_BYTES`]),
//! and every failure is a JSON `{"error": ...}` with a 4xx that says what is wrong. A store
//! that cannot write (a full disk) is a 503 that says so, not a 500.

use crate::acknowledge::{AckAction, Acknowledgement};
use crate::engine::Alert;
use crate::rules::{Finding, Verdict};
use crate::service::Shared;
use crate::silence::{Silence, SilenceStatus};
use crate::slack::message;
use crate::store::{Delivery, DeliveryStatus, HistoryEntry, StoreError};
use crate::wording;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use windsock_core::config::{RuleConfig, Severity};
use windsock_core::event::{stable_id, AlertState};
use windsock_core::http::{ApiError, Body, ErrorBody, Params};

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

/// The OpenAPI tag of every alerter route.
const TAG: &str = "alerter";

/// The routes with their descriptions; state is given by [`router`].
fn described() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new()
        .routes(routes!(list_alerts))
        .routes(routes!(alert_history))
        .routes(routes!(alert_detail))
        .routes(routes!(acknowledge_alert, unacknowledge_alert))
        .routes(routes!(list_silences, create_silence))
        .routes(routes!(expire_silence))
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(replace_rule, delete_rule))
        .routes(routes!(list_deliveries))
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let (router, _) = described().split_for_parts();
    router
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}

/// The OpenAPI document of the alerter's routes (no service needed).
pub fn openapi() -> utoipa::openapi::OpenApi {
    described().split_for_parts().1
}

/// A value from the request, cut to a length fit for an error message.
fn shown(value: &str) -> String {
    if value.chars().count() <= ECHO_CHARS {
        return value.to_string();
    }
    let cut: String = value.chars().take(ECHO_CHARS).collect();
    format!("{cut}…")
}

/// A store failure as an answer: a store that cannot write is a condition of the machine the
/// client can wait out (503, saying which); anything else is a 500 whose cause is logged.
fn store_error(err: StoreError) -> ApiError {
    if err.is_disk_full() {
        ApiError::unavailable(
            "the disk is full: the alert store cannot write; try again once space is freed",
        )
        .with_detail(serde_json::json!({ "reason": "disk_full" }))
    } else if err.is_unwritable() {
        ApiError::unavailable("the alert store cannot write for now; try again later")
            .with_detail(serde_json::json!({ "reason": "store_unwritable" }))
    } else {
        ApiError::internal(err)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        store_error(err)
    }
}

/// Runs store work on the blocking pool: SQLite calls must not hold a runtime thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|err| {
            Err(ApiError::internal(format!(
                "an alert API task failed: {err}"
            )))
        })
}

fn limit(requested: Option<usize>) -> usize {
    requested.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

fn slack_configured(shared: &Shared) -> bool {
    shared
        .config
        .alerter
        .slack
        .webhook_url
        .as_ref()
        .is_some_and(|w| !w.is_empty())
}

/// Which alerts `GET /api/alerts` lists (read by hand, so a wrong value is quoted cut short).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum StateFilter {
    /// Pending and firing.
    Open,
    Firing,
    Pending,
    Resolved,
    All,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    /// Which alerts: `all` when absent.
    #[param(value_type = Option<StateFilter>, inline)]
    state: Option<String>,
    /// Only the alerts of this region.
    region: Option<String>,
    /// How many, newest first: 100 when absent, at most 1000 (more is taken as 1000, 0 as 1).
    #[param(minimum = 0)]
    limit: Option<usize>,
}

/// An alert with its latest Slack messages (at most 20).
#[derive(Serialize, ToSchema)]
struct AlertItem {
    alert: Alert,
    deliveries: Vec<Delivery>,
}

/// `GET /api/alerts`.
#[derive(Serialize, ToSchema)]
struct AlertsAnswer {
    /// Newest first; open alerts as the engine sees them now.
    alerts: Vec<AlertItem>,
    /// Whether a Slack webhook is configured (without one, alerts are tracked, not sent).
    slack_configured: bool,
}

/// Alerts, open and resolved, with their latest Slack messages.
#[utoipa::path(
    get,
    path = "/api/alerts",
    params(AlertsQuery),
    responses(
        (status = 200, description = "The alerts, newest first", body = AlertsAnswer),
        (status = 400, description = "A parameter is malformed, repeated or unknown", body = ErrorBody),
        (status = 500, description = "Internal error (logged)", body = ErrorBody),
    ),
    tag = TAG
)]
async fn list_alerts(
    State(shared): State<Arc<Shared>>,
    Params(query): Params<AlertsQuery>,
) -> Result<Json<AlertsAnswer>, ApiError> {
    let states: &[AlertState] = match query.state.as_deref().unwrap_or("all") {
        "open" => &[AlertState::Pending, AlertState::Firing],
        "firing" => &[AlertState::Firing],
        "pending" => &[AlertState::Pending],
        "resolved" => &[AlertState::Resolved],
        "all" => &[
            AlertState::Pending,
            AlertState::Firing,
            AlertState::Resolved,
        ],
        other => {
            return Err(ApiError::bad_request(format!(
                "state `{}` is not one of open, firing, pending, resolved, all",
                shown(other)
            ))
            .with_detail(serde_json::json!({ "parameter": "state" })))
        }
    };
    let limit = limit(query.limit);
    blocking(move || alerts_of(&shared, states, query.region.as_deref(), limit))
        .await
        .map(Json)
}

fn alerts_of(
    shared: &Shared,
    states: &[AlertState],
    region: Option<&str>,
    limit: usize,
) -> Result<AlertsAnswer, ApiError> {
    let mut stored = shared.store.alerts(states, region, limit)?;
    shared.store.overlay_acknowledgements(&mut stored)?;
    // Open alerts are read live from the engine (their values move every round).
    let live: std::collections::HashMap<String, Alert> = shared
        .engine
        .lock()
        .alerts()
        .map(|a| (a.id.clone(), a.clone()))
        .collect();
    let now = shared.clock.now();
    let min_hold = shared.config.alerter.min_hold;
    let mut alerts = Vec::with_capacity(stored.len());
    for alert in stored {
        let alert = as_shown(live.get(&alert.id).cloned().unwrap_or(alert), min_hold, now);
        let deliveries = shared.store.deliveries(None, Some(&alert.id), 20)?;
        alerts.push(AlertItem { alert, deliveries });
    }
    Ok(AlertsAnswer {
        alerts,
        slack_configured: slack_configured(shared),
    })
}

/// `GET /api/alerts/{id}/history`.
#[derive(Serialize, ToSchema)]
struct AlertHistory {
    /// The occurrence (or, for a fingerprint, its latest occurrence).
    alert: Alert,
    /// Its state changes, oldest first.
    history: Vec<HistoryEntry>,
    /// Its Slack messages, newest first (empty for a fingerprint).
    deliveries: Vec<Delivery>,
}

/// An alert's state changes and Slack messages.
#[utoipa::path(
    get,
    path = "/api/alerts/{id}/history",
    params(("id" = String, Path, description = "An occurrence's id, or a fingerprint for all its occurrences")),
    responses(
        (status = 200, description = "The alert and its history", body = AlertHistory),
        (status = 400, description = "The id is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such alert or fingerprint", body = ErrorBody),
        (status = 500, description = "Internal error (logged)", body = ErrorBody),
    ),
    tag = TAG
)]
async fn alert_history(
    State(shared): State<Arc<Shared>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<AlertHistory>, ApiError> {
    let Path(id) = id?;
    blocking(move || history_of(&shared, id)).await.map(Json)
}

fn history_of(shared: &Shared, id: String) -> Result<AlertHistory, ApiError> {
    // As its page shows it: live, acknowledgement included, its summary matching its state.
    let alert = as_shown(
        current(shared, &id)?,
        shared.config.alerter.min_hold,
        shared.clock.now(),
    );
    let history = shared.store.history(&id)?;
    let deliveries = if id == alert.fingerprint {
        Vec::new()
    } else {
        shared.store.deliveries(None, Some(&id), MAX_LIMIT)?
    };
    Ok(AlertHistory {
        alert,
        history,
        deliveries,
    })
}

/// Where an alert stands now, in its summary: a firing alert whose condition has cleared
/// but not yet for `min_hold` says it is still firing (the rule's words alone, "Dakar is
/// reporting again", would contradict its state).
fn as_shown(mut alert: Alert, min_hold: std::time::Duration, now: DateTime<Utc>) -> Alert {
    if let (AlertState::Firing, Some(clear_since)) = (alert.state, alert.clear_since) {
        alert.summary = format!(
            "Still firing: clear for {} of the {} it must stay clear to resolve. {}",
            wording::since(now - clear_since),
            wording::duration(min_hold),
            alert.summary
        );
    }
    alert
}

/// What `GET /api/alerts/{id}` shows of an alert's past, oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum TimelineKind {
    Pending,
    Firing,
    Resolved,
    Acknowledged,
    Unacknowledged,
}

/// One moment of an alert's timeline: a state change or an acknowledgement.
#[derive(Serialize, ToSchema)]
struct TimelineEntry {
    at: DateTime<Utc>,
    kind: TimelineKind,
    /// In words: the alert's summary at a state change; who and why for an acknowledgement.
    text: String,
    /// Who acknowledged (or withdrew the acknowledgement), for those entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    by: Option<String>,
    /// The value at a state change, in the rule's unit ([`AlertDetail::unit`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
}

/// A threshold rule's limits, for a chart of the value against them.
#[derive(Serialize, ToSchema)]
struct ThresholdView {
    metric: String,
    /// Fires above this (absent: no upper limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    above: Option<f64>,
    /// Fires below this (absent: no lower limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    below: Option<f64>,
    /// How far back inside a limit the value must come to clear.
    hysteresis: f64,
}

/// The forecast band the latest observation was judged against (forecast_deviation).
#[derive(Serialize, ToSchema)]
struct BandView {
    lower: f64,
    upper: f64,
}

/// The silence the alert page offers, filled in: `POST /api/silences` takes these fields
/// (plus `author` and `comment`).
#[derive(Serialize, ToSchema)]
struct SilenceTemplate {
    /// The alert's name (what silences match).
    rule: String,
    /// Its region (absent for an alert about the whole pipeline or a service).
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    /// A default duration, in `POST /api/silences`'s syntax.
    #[schema(example = "2h")]
    duration: String,
}

/// The default duration of a silence started from an alert.
const DEFAULT_SILENCE: &str = "2h";

/// `GET /api/alerts/{id}`: everything an alert's page shows.
#[derive(Serialize, ToSchema)]
struct AlertDetail {
    /// The occurrence (for a fingerprint, its latest), as the engine sees it now, with its
    /// acknowledgement; its `summary` matches its state.
    alert: Alert,
    /// Its rule's kind: `late_data`, `threshold`, `forecast_deviation`, `outlier`,
    /// `pipeline_health` (empty if the rule is no longer configured).
    kind: String,
    /// Its rule in one sentence.
    description: String,
    /// The unit of `alert.value` and of the limits (`°C`, `m/s`, `%`; `s` of silence for
    /// late data); empty when none.
    unit: String,
    /// State changes and acknowledgements, oldest first.
    timeline: Vec<TimelineEntry>,
    /// Its acknowledgement log, oldest first.
    acknowledgements: Vec<Acknowledgement>,
    /// Its Slack messages (state, attempts, sent time), newest first.
    deliveries: Vec<Delivery>,
    /// For a threshold rule, its limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold: Option<ThresholdView>,
    /// For a forecast deviation, the forecast band at the latest observation.
    #[serde(skip_serializing_if = "Option::is_none")]
    band: Option<BandView>,
    /// The UI search of related events (the region's, or the service's logs) around it.
    search_url: String,
    /// This page: `<public_url>/alerts/<id>`.
    alert_url: String,
    /// This page with the silence form open and filled: `<public_url>/alerts/<id>?silence=1`.
    silence_url: String,
    /// The silence to offer, filled in.
    silence_template: SilenceTemplate,
    /// Whether a Slack webhook is configured (without one, alerts are tracked, not sent).
    slack_configured: bool,
}

/// One alert with everything its page needs: timeline, acknowledgement, deliveries, the
/// rule's limits or forecast band, links and a filled-in silence.
#[utoipa::path(
    get,
    path = "/api/alerts/{id}",
    params(("id" = String, Path, description = "An occurrence's id, or a fingerprint for its latest occurrence")),
    responses(
        (status = 200, description = "The alert and what its page shows", body = AlertDetail),
        (status = 400, description = "The id is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such alert or fingerprint", body = ErrorBody),
        (status = 500, description = "Internal error (logged)", body = ErrorBody),
    ),
    tag = TAG
)]
async fn alert_detail(
    State(shared): State<Arc<Shared>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<AlertDetail>, ApiError> {
    let Path(id) = id?;
    blocking(move || detail_of(&shared, &id)).await.map(Json)
}

/// The occurrence `id` (or a fingerprint's latest), live from the engine when it holds it.
fn current(shared: &Shared, id: &str) -> Result<Alert, ApiError> {
    let Some(stored) = shared.store.alert(id)? else {
        return Err(ApiError::not_found(format!(
            "no alert or fingerprint `{}`",
            shown(id)
        )));
    };
    let live = shared
        .engine
        .lock()
        .alert_mut(&stored.id)
        .map(|a| a.clone());
    let mut alert = live.unwrap_or(stored);
    shared
        .store
        .overlay_acknowledgements(std::slice::from_mut(&mut alert))?;
    Ok(alert)
}

fn detail_of(shared: &Shared, id: &str) -> Result<AlertDetail, ApiError> {
    let now = shared.clock.now();
    let alert = as_shown(current(shared, id)?, shared.config.alerter.min_hold, now);
    let history = shared.store.history(&alert.id)?;
    let acknowledgements = shared.store.acknowledgements(&alert.id)?;
    let deliveries = shared.store.deliveries(None, Some(&alert.id), MAX_LIMIT)?;
    let mut timeline: Vec<TimelineEntry> = history
        .into_iter()
        .map(|entry| TimelineEntry {
            at: entry.event.at,
            kind: match entry.event.state {
                AlertState::Pending => TimelineKind::Pending,
                AlertState::Firing => TimelineKind::Firing,
                AlertState::Resolved => TimelineKind::Resolved,
            },
            text: entry.event.message,
            by: None,
            value: entry.event.value,
        })
        .collect();
    for ack in &acknowledgements {
        let (kind, verb) = match ack.action {
            AckAction::Acknowledged => (TimelineKind::Acknowledged, "Acknowledged"),
            AckAction::Unacknowledged => {
                (TimelineKind::Unacknowledged, "Acknowledgement withdrawn")
            }
        };
        let mut text = verb.to_string();
        if !ack.by.is_empty() {
            text.push_str(&format!(" by {}", ack.by));
        }
        if !ack.comment.is_empty() {
            text.push_str(&format!(": {}", ack.comment));
        }
        timeline.push(TimelineEntry {
            at: ack.at,
            kind,
            text,
            by: (!ack.by.is_empty()).then(|| ack.by.clone()),
            value: None,
        });
    }
    // Stable: a state change and an acknowledgement at the same instant keep this order.
    timeline.sort_by_key(|entry| entry.at);

    let (kind, description) = {
        let engine = shared.engine.lock();
        let rule = engine
            .rules()
            .find(|r| r.alert_names().contains(&alert.rule.as_str()));
        let kind = rule.map(|r| r.kind().to_string()).unwrap_or_default();
        let config = shared
            .config
            .alerter
            .rules
            .iter()
            .find(|c| c.name() == alert.rule);
        let description = match (wording::describe_name(&alert.rule), config) {
            (Some(text), _) => text.to_string(),
            (None, Some(config)) => wording::describe(config, collection_interval(shared)),
            (None, None) => format!("{} is no longer configured", alert.rule),
        };
        (kind, description)
    };
    let threshold = shared.config.alerter.rules.iter().find_map(|c| match c {
        RuleConfig::Threshold {
            name,
            metric,
            above,
            below,
            hysteresis,
            ..
        } if *name == alert.rule => Some(ThresholdView {
            metric: metric.clone(),
            above: *above,
            below: *below,
            hysteresis: *hysteresis,
        }),
        _ => None,
    });
    let band = (kind == "forecast_deviation")
        .then(|| alert.expected.as_deref().and_then(wording::parse_range))
        .flatten()
        .map(|(lower, upper)| BandView { lower, upper });
    let unit = match (&threshold, kind.as_str()) {
        (Some(t), _) => wording::unit_of(&t.metric).to_string(),
        (None, "late_data") => "s".to_string(),
        (None, "forecast_deviation") => "°C".to_string(),
        _ => alert
            .expected
            .as_deref()
            .map(wording::unit_in)
            .unwrap_or("")
            .to_string(),
    };
    let public_url = &shared.public_url;
    let until = alert.resolved_at.unwrap_or(now);
    Ok(AlertDetail {
        kind,
        description,
        unit,
        timeline,
        acknowledgements,
        deliveries,
        threshold,
        band,
        search_url: message::related_search_link(&alert, public_url, until),
        alert_url: message::alert_link(public_url, &alert.id),
        silence_url: message::silence_link(public_url, &alert.id),
        silence_template: SilenceTemplate {
            rule: alert.rule.clone(),
            region: alert.region.clone(),
            duration: DEFAULT_SILENCE.to_string(),
        },
        slack_configured: slack_configured(shared),
        alert,
    })
}

/// The collector's interval, as the rules judge it.
fn collection_interval(shared: &Shared) -> std::time::Duration {
    crate::schedule::collection_interval(&shared.config.collector.schedule())
        .unwrap_or(crate::schedule::FALLBACK_INTERVAL)
}

/// `POST /api/alerts/{id}/acknowledge` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewAcknowledgement {
    /// Who is on it (at most 100 characters).
    by: String,
    /// What is being done (optional, at most 1000 characters).
    #[serde(default)]
    comment: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct WithdrawQuery {
    /// Who withdraws the acknowledgement (optional, at most 100 characters).
    by: Option<String>,
}

/// Acknowledges an open (pending or firing) alert: someone is on it. No reminders are sent
/// until it resolves or fires again (a new occurrence); recorded in its timeline.
#[utoipa::path(
    post,
    path = "/api/alerts/{id}/acknowledge",
    params(("id" = String, Path, description = "An occurrence's id, or a fingerprint for its latest occurrence")),
    request_body = NewAcknowledgement,
    responses(
        (status = 200, description = "The alert, acknowledged", body = Alert),
        (status = 400, description = "The body is invalid; the message lists every problem", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 409, description = "The alert is resolved: there is nothing to acknowledge", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON", body = ErrorBody),
        (status = 500, description = "Internal error (logged)", body = ErrorBody),
        (status = 503, description = "The alert store cannot write (a full disk)", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = TAG
)]
async fn acknowledge_alert(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Body<NewAcknowledgement>, ApiError>,
) -> Result<Json<Alert>, ApiError> {
    authorize(&shared, &headers)?;
    let Path(id) = id?;
    let Body(body) = body.map_err(body_error)?;
    let by = body.by.trim().to_string();
    let comment = body.comment.trim().to_string();
    let mut problems = Vec::new();
    if by.is_empty() {
        problems.push("`by` must say who acknowledges".to_string());
    }
    check_length(&mut problems, "by", &by, MAX_AUTHOR_CHARS);
    check_length(&mut problems, "comment", &comment, MAX_COMMENT_CHARS);
    if !problems.is_empty() {
        return Err(ApiError::bad_request(problems.join("; ")));
    }
    let alert =
        blocking(move || set_acknowledgement(&shared, &id, AckAction::Acknowledged, &by, &comment))
            .await?;
    tracing::info!(alert = %alert.id, by = alert.acknowledged_by.as_deref().unwrap_or(""), "alert acknowledged");
    Ok(Json(alert))
}

/// Withdraws an alert's acknowledgement: reminders resume. An alert not acknowledged is
/// answered as it is.
#[utoipa::path(
    delete,
    path = "/api/alerts/{id}/acknowledge",
    params(
        ("id" = String, Path, description = "An occurrence's id, or a fingerprint for its latest occurrence"),
        WithdrawQuery,
    ),
    responses(
        (status = 200, description = "The alert, no longer acknowledged", body = Alert),
        (status = 400, description = "A parameter is malformed, repeated or unknown", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 409, description = "The alert is resolved: its acknowledgement ended with it", body = ErrorBody),
        (status = 500, description = "Internal error (logged)", body = ErrorBody),
        (status = 503, description = "The alert store cannot write (a full disk)", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = TAG
)]
async fn unacknowledge_alert(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    Params(query): Params<WithdrawQuery>,
) -> Result<Json<Alert>, ApiError> {
    authorize(&shared, &headers)?;
    let Path(id) = id?;
    let by = query.by.unwrap_or_default().trim().to_string();
    let mut problems = Vec::new();
    check_length(&mut problems, "by", &by, MAX_AUTHOR_CHARS);
    if !problems.is_empty() {
        return Err(ApiError::bad_request(problems.join("; ")));
    }
    let alert =
        blocking(move || set_acknowledgement(&shared, &id, AckAction::Unacknowledged, &by, ""))
            .await?;
    tracing::info!(alert = %alert.id, "alert acknowledgement withdrawn");
    Ok(Json(alert))
}

fn check_length(problems: &mut Vec<String>, field: &str, text: &str, limit: usize) {
    let chars = text.chars().count();
    if chars > limit {
        problems.push(format!(
            "`{field}` is {chars} characters long; the limit is {limit} characters"
        ));
    }
}

/// Records an acknowledgement (or its withdrawal) of the open occurrence `id`, in the log and
/// on the engine's alert at once (the engine is held meanwhile, so the alert cannot resolve
/// in between).
fn set_acknowledgement(
    shared: &Shared,
    id: &str,
    action: AckAction,
    by: &str,
    comment: &str,
) -> Result<Alert, ApiError> {
    let Some(stored) = shared.store.alert(id)? else {
        return Err(ApiError::not_found(format!("no alert `{}`", shown(id))));
    };
    let now = shared.clock.now();
    let mut engine = shared.engine.lock();
    let Some(alert) = engine
        .alert_mut(&stored.id)
        .filter(|a| a.state != AlertState::Resolved)
    else {
        return Err(ApiError::conflict(format!(
            "alert `{}` is resolved: an acknowledgement lasts while an alert is open",
            shown(&stored.id)
        ))
        .with_detail(serde_json::json!({ "state": "resolved" })));
    };
    match action {
        AckAction::Acknowledged => {
            shared
                .store
                .record_acknowledgement(&alert.id, action, by, comment, now)?;
            alert.acknowledged_by = Some(by.to_string());
            alert.acknowledged_at = Some(now);
        }
        AckAction::Unacknowledged if alert.acknowledged_by.is_some() => {
            shared
                .store
                .record_acknowledgement(&alert.id, action, by, comment, now)?;
            alert.acknowledged_by = None;
            alert.acknowledged_at = None;
        }
        AckAction::Unacknowledged => {}
    }
    let alert = alert.clone();
    drop(engine);
    Ok(as_shown(alert, shared.config.alerter.min_hold, now))
}

/// A silence and where it stands now.
#[derive(Serialize, ToSchema)]
struct SilenceView {
    #[serde(flatten)]
    silence: Silence,
    /// `pending` before `starts_at`, `active` until `ends_at`, `expired` after.
    status: SilenceStatus,
}

impl SilenceView {
    fn of(silence: Silence, now: DateTime<Utc>) -> Self {
        let status = silence.status(now);
        Self { silence, status }
    }
}

/// `GET /api/silences`.
#[derive(Serialize, ToSchema)]
struct SilencesAnswer {
    /// Newest first, expired ones included (until the history's retention).
    silences: Vec<SilenceView>,
}

/// Silences, newest first.
#[utoipa::path(
    get,
    path = "/api/silences",
    responses((status = 200, description = "Every silence, newest first", body = SilencesAnswer)),
    tag = TAG
)]
async fn list_silences(State(shared): State<Arc<Shared>>) -> Json<SilencesAnswer> {
    let now = shared.clock.now();
    let engine = shared.engine.lock();
    let mut silences: Vec<&Silence> = engine.silences().collect();
    silences.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    let silences = silences
        .into_iter()
        .map(|s| SilenceView::of(s.clone(), now))
        .collect();
    Json(SilencesAnswer { silences })
}

/// `POST /api/silences` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    /// The name alerts carry (see `GET /api/rules`); give `rule`, `region` or both.
    rule: Option<String>,
    /// A configured region.
    region: Option<String>,
    /// Now when absent; at most 365 days ahead.
    starts_at: Option<DateTime<Utc>>,
    /// Give `ends_at` or `duration`; a silence lasts at most 365 days.
    ends_at: Option<DateTime<Utc>>,
    /// Instead of `ends_at`: `2h`, `30m`.
    #[schema(example = "2h")]
    duration: Option<String>,
    /// Who silences (at most 100 characters).
    author: String,
    /// Why (at most 1000 characters).
    comment: String,
}

fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    windsock_core::http::authorize(&shared.config.http, headers)
}

/// The body's rejections, in the alerter's words: its own limit, and what to send.
fn body_error(err: ApiError) -> ApiError {
    match err.status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than the limit of {} KiB",
                MAX_BODY_BYTES / 1024
            ),
        )
        .with_detail(serde_json::json!({ "limit_bytes": MAX_BODY_BYTES })),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON with `content-type: application/json`",
        ),
        _ => err,
    }
}

/// Silences alerts of a rule, a region or both for a while (they are still tracked and
/// shown; their Slack messages wait until it ends).
#[utoipa::path(
    post,
    path = "/api/silences",
    request_body = NewSilence,
    responses(
        (status = 201, description = "The silence created", body = SilenceView),
        (status = 400, description = "The silence is invalid; the message lists every problem", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON", body = ErrorBody),
        (status = 500, description = "Internal error (logged)", body = ErrorBody),
        (status = 503, description = "The alert store cannot write (a full disk)", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = TAG
)]
async fn create_silence(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Body<NewSilence>, ApiError>,
) -> Result<(StatusCode, Json<SilenceView>), ApiError> {
    authorize(&shared, &headers)?;
    let Body(body) = body.map_err(body_error)?;
    let now = shared.clock.now();
    let silence = validate_silence(&shared, body, now)?;
    let stored = silence.clone();
    let store = shared.store.clone();
    blocking(move || Ok(store.put_silence(&stored)?)).await?;
    shared.engine.lock().add_silence(silence.clone());
    tracing::info!(silence = %silence.id, author = %silence.author, "silence created");
    Ok((StatusCode::CREATED, Json(SilenceView::of(silence, now))))
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
        _ => return Err(ApiError::bad_request(problems.join("; "))),
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

/// Ends a silence now (it is kept, expired, for the history).
#[utoipa::path(
    delete,
    path = "/api/silences/{id}",
    params(("id" = String, Path, description = "The silence's id")),
    responses(
        (status = 200, description = "The silence, expired", body = SilenceView),
        (status = 400, description = "The id is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 404, description = "No such silence", body = ErrorBody),
        (status = 500, description = "Internal error (logged)", body = ErrorBody),
        (status = 503, description = "The alert store cannot write (a full disk)", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = TAG
)]
async fn expire_silence(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<SilenceView>, ApiError> {
    authorize(&shared, &headers)?;
    let Path(id) = id?;
    let now = shared.clock.now();
    let silence = shared.engine.lock().expire_silence(&id, now);
    let Some(silence) = silence else {
        return Err(ApiError::not_found(format!("no silence `{}`", shown(&id))));
    };
    let stored = silence.clone();
    let store = shared.store.clone();
    blocking(move || Ok(store.put_silence(&stored)?)).await?;
    tracing::info!(silence = %silence.id, "silence expired");
    debug_assert_ne!(silence.status(now), SilenceStatus::Active);
    Ok(Json(SilenceView::of(silence, now)))
}

/// One name alerts carry, with the latest evaluation of its rule.
#[derive(Serialize, ToSchema)]
struct RuleView {
    /// The name its alerts carry, which silences match (late_data's `pipeline_down`,
    /// pipeline_health's `service_failing` and `disk_full` are names of their own).
    name: String,
    /// `late_data`, `threshold`, `forecast_deviation`, `outlier`, `pipeline_health`.
    kind: String,
    /// The rule's own name in the configuration.
    rule: String,
    /// Where the rule comes from: the configuration file, or the API (only those can be
    /// changed or deleted through the API).
    origin: RuleOrigin,
    /// The rule's configuration (`alerter.rules`) as configured, keys left unset omitted
    /// (never `null`).
    #[schema(value_type = Object)]
    config: serde_json::Value,
    /// What the name's alerts mean, in one sentence.
    description: String,
    /// How many of its findings are active.
    active: usize,
    /// Its latest findings, one per region (or one for the whole pipeline).
    evaluation: Vec<Finding>,
}

/// A rule's configuration without the keys left unset (`below: null` reads as a value).
fn without_nulls(config: &RuleConfig) -> serde_json::Value {
    let mut value = serde_json::to_value(config).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    value
}

/// Where a rule comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum RuleOrigin {
    /// `alerter.rules` in the configuration file: changed by editing it.
    File,
    /// Created through `POST /api/rules` (or the search page): kept in the alerter's store.
    Api,
}

/// `GET /api/rules`.
#[derive(Serialize, ToSchema)]
struct RulesAnswer {
    rules: Vec<RuleView>,
}

/// Each rule's latest evaluation, region by region.
#[utoipa::path(
    get,
    path = "/api/rules",
    responses((status = 200, description = "Every name alerts carry, by rule", body = RulesAnswer)),
    tag = TAG
)]
async fn list_rules(State(shared): State<Arc<Shared>>) -> Json<RulesAnswer> {
    Json(RulesAnswer {
        rules: rule_views(&shared, None),
    })
}

/// The views of every rule (or of the rule named `only`), one per name its alerts carry.
fn rule_views(shared: &Shared, only: Option<&str>) -> Vec<RuleView> {
    let interval = collection_interval(shared);
    let engine = shared.engine.lock();
    let api_rules = shared.api_rules.lock();
    let findings = engine.findings();
    let mut rules = Vec::new();
    for rule in engine.rules() {
        if only.is_some_and(|name| name != rule.name()) {
            continue;
        }
        let file = shared
            .config
            .alerter
            .rules
            .iter()
            .find(|c| c.name() == rule.name());
        let origin = if file.is_some() {
            RuleOrigin::File
        } else {
            RuleOrigin::Api
        };
        let config = file.or_else(|| api_rules.iter().find(|c| c.name() == rule.name()));
        // One entry per name its alerts carry (late_data's pipeline_down, pipeline_health's
        // service_failing and disk_full): the names silences take.
        for name in rule.alert_names() {
            let evaluation: Vec<Finding> = findings
                .iter()
                .filter(|f| f.rule == name)
                .cloned()
                .collect();
            let active = evaluation
                .iter()
                .filter(|f| f.verdict == Verdict::Active)
                .count();
            let description = match (wording::describe_name(name), config) {
                (Some(text), _) => text.to_string(),
                (None, Some(config)) => wording::describe(config, interval),
                (None, None) => String::new(),
            };
            rules.push(RuleView {
                name: name.to_string(),
                kind: rule.kind().to_string(),
                rule: rule.name().to_string(),
                origin,
                config: config
                    .map(without_nulls)
                    .unwrap_or_else(|| serde_json::json!({})),
                description,
                active,
                evaluation,
            });
        }
    }
    rules
}

/// The longest name of a rule created through the API (it is part of URLs and messages).
pub const MAX_RULE_NAME_CHARS: usize = 100;
/// The longest search of a rule created through the API.
pub const MAX_RULE_QUERY_CHARS: usize = 2000;

/// `POST /api/rules` and `PUT /api/rules/{name}` body: a query rule, with the keys of a
/// `kind = "query"` table of `alerter.rules` (checked by the same code as `config check`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewRule {
    /// `query` (the only kind the API creates; absent means `query`).
    #[schema(example = "query")]
    kind: Option<String>,
    /// Letters, digits, `_`, `-`, `.`; at most 100 characters; unique among every rule.
    /// Required by `POST`; in a `PUT`, absent or the name of the path.
    #[schema(example = "source_failing")]
    name: Option<String>,
    /// A search in the language of `/api/search` (at most 2000 characters).
    #[schema(example = "service:collector AND fields.status:failed")]
    query: String,
    /// The window the matching events are counted over, from 1s to 24h: `1m` when absent.
    #[schema(example = "5m")]
    window: Option<String>,
    /// Fires when more than this many events matched within the window.
    above: Option<u64>,
    /// Fires when fewer than this many events matched within the window.
    below: Option<u64>,
    /// One alert per value of this field (`region`, `service`, `level`, `source`, `kind` or
    /// `fields.<attribute>`).
    group_by: Option<String>,
    /// `info`, `warning` (when absent) or `critical`.
    severity: Option<Severity>,
    /// How long the condition must hold before firing (`0s` when absent).
    #[serde(rename = "for")]
    #[schema(example = "2m")]
    pending_for: Option<String>,
}

/// The rule `body` describes, named `name`, checked as `config check` checks a rule of the
/// file (the problems under `rule.<key>`), or a 400 listing every problem.
fn rule_of(name: &str, body: NewRule) -> Result<RuleConfig, ApiError> {
    let mut problems = Vec::new();
    if let Some(kind) = body.kind.as_deref().filter(|k| *k != "query") {
        problems.push(format!(
            "`kind` `{}`: only query rules are created through the API; other kinds are \
             configured in the file (alerter.rules)",
            shown(kind)
        ));
    }
    if name.is_empty() {
        problems.push("`name` must not be empty".to_string());
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        problems.push(format!(
            "`name` `{}` may hold letters, digits, `_`, `-` and `.` only",
            shown(name)
        ));
    }
    check_length(&mut problems, "name", name, MAX_RULE_NAME_CHARS);
    check_length(&mut problems, "query", &body.query, MAX_RULE_QUERY_CHARS);
    if !problems.is_empty() {
        return Err(ApiError::bad_request(problems.join("; ")));
    }
    // Through the configuration's own reading: the same defaults, durations and checks.
    let mut table = serde_json::json!({
        "kind": "query",
        "name": name,
        "query": body.query,
    });
    let fields = [
        ("window", body.window.map(serde_json::Value::from)),
        ("above", body.above.map(serde_json::Value::from)),
        ("below", body.below.map(serde_json::Value::from)),
        ("group_by", body.group_by.map(serde_json::Value::from)),
        (
            "severity",
            body.severity.map(|s| serde_json::Value::from(s.as_str())),
        ),
        ("for", body.pending_for.map(serde_json::Value::from)),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            table[key] = value;
        }
    }
    let rule: RuleConfig = serde_json::from_value(table)
        .map_err(|err| ApiError::bad_request(format!("the rule does not read: {err}")))?;
    let problems = rule.check("rule");
    if !problems.is_empty() {
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        return Err(ApiError::bad_request(text.join("; "))
            .with_detail(serde_json::json!({ "keys": problems.iter().map(|p| p.key.clone()).collect::<Vec<_>>() })));
    }
    Ok(rule)
}

/// A 409 for a rule of the configuration file.
fn file_rule(name: &str) -> ApiError {
    ApiError::conflict(format!(
        "rule `{}` is defined in the configuration file (alerter.rules): change or delete it \
         there, not through the API",
        shown(name)
    ))
    .with_detail(serde_json::json!({ "origin": "file" }))
}

/// What creating, replacing or deleting an API rule does, under one lock so two requests
/// cannot both take the last place or the same name.
enum RuleChange {
    Create(RuleConfig),
    Replace(RuleConfig),
    Delete(String),
}

/// Applies `change`: checked against the rules as they are, written to the store, then the
/// engine's rules are rebuilt (the other rules keep their memory and alerts). Runs on the
/// blocking pool (the store's write).
fn apply_rule_change(shared: &Shared, change: RuleChange) -> Result<Option<RuleView>, ApiError> {
    static CHANGING: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
    let _one_at_a_time = CHANGING.lock();
    let name = match &change {
        RuleChange::Create(rule) | RuleChange::Replace(rule) => rule.name().to_string(),
        RuleChange::Delete(name) => name.clone(),
    };
    if shared.config.alerter.rules.iter().any(|r| r.name() == name) {
        return Err(file_rule(&name));
    }
    let exists = shared.api_rules.lock().iter().any(|r| r.name() == name);
    let now = shared.clock.now();
    match change {
        RuleChange::Create(rule) => {
            if exists {
                return Err(ApiError::conflict(format!(
                    "a rule named `{}` exists already: names are unique (PUT /api/rules/{{name}} \
                     replaces it)",
                    shown(&name)
                )));
            }
            let count = shared.api_rules.lock().len();
            if count >= crate::rule_store::MAX_API_RULES {
                return Err(ApiError::conflict(format!(
                    "there are {count} rules created through the API, the most allowed: delete \
                     one first"
                ))
                .with_detail(serde_json::json!({ "limit": crate::rule_store::MAX_API_RULES })));
            }
            put_rule(shared, rule, now)?;
        }
        RuleChange::Replace(rule) => {
            if !exists {
                return Err(ApiError::not_found(format!(
                    "no rule `{}` (POST /api/rules creates one)",
                    shown(&name)
                )));
            }
            put_rule(shared, rule, now)?;
        }
        RuleChange::Delete(name) => {
            if !exists {
                return Err(ApiError::not_found(format!("no rule `{}`", shown(&name))));
            }
            let view = rule_views(shared, Some(&name)).into_iter().next();
            shared.store.delete_api_rule(&name)?;
            shared.engine.lock().remove_rule(&name);
            shared.api_rules.lock().retain(|r| r.name() != name);
            shared.refresh_every_log();
            tracing::info!(rule = %name, "rule deleted through the API");
            return Ok(view);
        }
    }
    Ok(rule_views(shared, Some(&name)).into_iter().next())
}

/// Writes `rule` and runs it (added, or replacing the API rule of its name).
fn put_rule(shared: &Shared, rule: RuleConfig, now: DateTime<Utc>) -> Result<(), ApiError> {
    shared.store.put_api_rule(&rule, now)?;
    let built = crate::rules::build(std::slice::from_ref(&rule), &shared.rule_context());
    {
        let mut engine = shared.engine.lock();
        for built in built {
            engine.set_rule(built);
        }
    }
    {
        let mut api_rules = shared.api_rules.lock();
        match api_rules.iter_mut().find(|r| r.name() == rule.name()) {
            Some(slot) => *slot = rule.clone(),
            None => api_rules.push(rule.clone()),
        }
    }
    shared.refresh_every_log();
    tracing::info!(
        rule = rule.name(),
        "rule created or replaced through the API"
    );
    Ok(())
}

fn changed_view(view: Option<RuleView>) -> Result<Json<RuleView>, ApiError> {
    view.map(Json)
        .ok_or_else(|| ApiError::internal("the rule changed is not among the engine's rules"))
}

/// Creates a query rule: it counts from now on, and is kept across restarts.
#[utoipa::path(
    post,
    path = "/api/rules",
    request_body = NewRule,
    responses(
        (status = 201, description = "The rule created, as `GET /api/rules` lists it", body = RuleView),
        (status = 400, description = "The rule is invalid (a malformed query, a bad window, a kind other than query); the message lists every problem", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 409, description = "The name is taken, or 100 rules exist already through the API", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON", body = ErrorBody),
        (status = 500, description = "Internal error (logged)", body = ErrorBody),
        (status = 503, description = "The alert store cannot write (a full disk)", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = TAG
)]
async fn create_rule(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Body<NewRule>, ApiError>,
) -> Result<(StatusCode, Json<RuleView>), ApiError> {
    authorize(&shared, &headers)?;
    let Body(body) = body.map_err(body_error)?;
    let name = body.name.clone().unwrap_or_default().trim().to_string();
    let rule = rule_of(&name, body)?;
    let view = blocking(move || apply_rule_change(&shared, RuleChange::Create(rule))).await?;
    Ok((StatusCode::CREATED, changed_view(view)?))
}

/// Replaces a query rule created through the API (it starts counting afresh; its open
/// alerts carry on if it finds them again, else they resolve).
#[utoipa::path(
    put,
    path = "/api/rules/{name}",
    params(("name" = String, Path, description = "The rule's name")),
    request_body = NewRule,
    responses(
        (status = 200, description = "The rule as replaced", body = RuleView),
        (status = 400, description = "The rule is invalid; the message lists every problem", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 404, description = "No rule of that name", body = ErrorBody),
        (status = 409, description = "The rule is the configuration file's: it is changed there", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON", body = ErrorBody),
        (status = 500, description = "Internal error (logged)", body = ErrorBody),
        (status = 503, description = "The alert store cannot write (a full disk)", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = TAG
)]
async fn replace_rule(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    body: Result<Body<NewRule>, ApiError>,
) -> Result<Json<RuleView>, ApiError> {
    authorize(&shared, &headers)?;
    let Path(name) = name?;
    let Body(body) = body.map_err(body_error)?;
    if let Some(other) = body.name.as_deref().filter(|n| n.trim() != name) {
        return Err(ApiError::bad_request(format!(
            "`name` `{}` is not the rule of the path `{}`: a rule is not renamed (delete it and \
             create another)",
            shown(other),
            shown(&name)
        )));
    }
    if shared.config.alerter.rules.iter().any(|r| r.name() == name) {
        return Err(file_rule(&name));
    }
    let rule = rule_of(&name, body)?;
    let view = blocking(move || apply_rule_change(&shared, RuleChange::Replace(rule))).await?;
    changed_view(view)
}

/// Deletes a query rule created through the API. Its open alerts resolve as if their
/// condition cleared (after `min_hold`; the resolution is announced if the firing was).
#[utoipa::path(
    delete,
    path = "/api/rules/{name}",
    params(("name" = String, Path, description = "The rule's name")),
    responses(
        (status = 200, description = "The rule deleted, as it was last listed", body = RuleView),
        (status = 400, description = "The name is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "Missing or wrong API token", body = ErrorBody),
        (status = 404, description = "No rule of that name", body = ErrorBody),
        (status = 409, description = "The rule is the configuration file's: it is deleted there", body = ErrorBody),
        (status = 500, description = "Internal error (logged)", body = ErrorBody),
        (status = 503, description = "The alert store cannot write (a full disk)", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = TAG
)]
async fn delete_rule(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<RuleView>, ApiError> {
    authorize(&shared, &headers)?;
    let Path(name) = name?;
    let view = blocking(move || apply_rule_change(&shared, RuleChange::Delete(name))).await?;
    changed_view(view)
}

/// Which messages `GET /api/deliveries` lists (read by hand, so a wrong value is quoted).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum StatusFilter {
    All,
    Pending,
    Delivered,
    Failed,
    Expired,
    NotConfigured,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    /// Only the messages of this status: `all` when absent.
    #[param(value_type = Option<StatusFilter>, inline)]
    status: Option<String>,
    /// How many, newest first: 100 when absent, at most 1000 (more is taken as 1000, 0 as 1).
    #[param(minimum = 0)]
    limit: Option<usize>,
}

/// `GET /api/deliveries`.
#[derive(Serialize, ToSchema)]
struct DeliveriesAnswer {
    /// Whether a Slack webhook is configured (without one, messages are `not_configured`).
    slack_configured: bool,
    /// False while the store cannot write (a full disk): some messages, or what became of
    /// them, are only in memory (each such delivery says `durable: false`).
    outbox_durable: bool,
    /// How many messages the outbox holds, by status (every status, 0 included).
    #[schema(value_type = BTreeMap<String, i64>)]
    counts: BTreeMap<&'static str, i64>,
    /// Newest first.
    deliveries: Vec<Delivery>,
}

/// The Slack outbox: messages newest first, and counts per status.
#[utoipa::path(
    get,
    path = "/api/deliveries",
    params(DeliveriesQuery),
    responses(
        (status = 200, description = "The outbox", body = DeliveriesAnswer),
        (status = 400, description = "A parameter is malformed, repeated or unknown", body = ErrorBody),
        (status = 500, description = "Internal error (logged)", body = ErrorBody),
    ),
    tag = TAG
)]
async fn list_deliveries(
    State(shared): State<Arc<Shared>>,
    Params(query): Params<DeliveriesQuery>,
) -> Result<Json<DeliveriesAnswer>, ApiError> {
    let status = match query.status.as_deref() {
        None | Some("all") => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status `{}` is not one of all, {}",
                shown(s),
                DeliveryStatus::ALL.map(|s| s.as_str()).join(", ")
            ))
            .with_detail(serde_json::json!({ "parameter": "status" }))
        })?),
    };
    let limit = limit(query.limit);
    blocking(move || {
        Ok(DeliveriesAnswer {
            slack_configured: slack_configured(&shared),
            outbox_durable: shared.store.is_durable(),
            counts: shared.store.delivery_counts()?,
            deliveries: shared.store.deliveries(status, None, limit)?,
        })
    })
    .await
    .map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn document() -> Value {
        serde_json::to_value(openapi()).unwrap()
    }

    /// Every `$ref` under `value`.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("$ref", Value::String(target)) => out.push(target),
                        _ => refs(value, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_route_is_described_with_its_answer_and_security() {
        let doc = document();
        let routes = [
            ("/api/alerts", "get", "200", "AlertsAnswer", false),
            (
                "/api/alerts/{id}/history",
                "get",
                "200",
                "AlertHistory",
                false,
            ),
            ("/api/alerts/{id}", "get", "200", "AlertDetail", false),
            ("/api/alerts/{id}/acknowledge", "post", "200", "Alert", true),
            (
                "/api/alerts/{id}/acknowledge",
                "delete",
                "200",
                "Alert",
                true,
            ),
            ("/api/silences", "get", "200", "SilencesAnswer", false),
            ("/api/silences", "post", "201", "SilenceView", true),
            ("/api/silences/{id}", "delete", "200", "SilenceView", true),
            ("/api/rules", "get", "200", "RulesAnswer", false),
            ("/api/rules", "post", "201", "RuleView", true),
            ("/api/rules/{name}", "put", "200", "RuleView", true),
            ("/api/rules/{name}", "delete", "200", "RuleView", true),
            ("/api/deliveries", "get", "200", "DeliveriesAnswer", false),
        ];
        for (path, method, status, schema, secured) in routes {
            let operation = &doc["paths"][path][method];
            assert!(operation.is_object(), "{method} {path} is not described");
            assert_eq!(operation["tags"][0], "alerter", "{method} {path}");
            let answer = &operation["responses"][status]["content"]["application/json"]["schema"];
            assert_eq!(
                answer["$ref"],
                format!("#/components/schemas/{schema}"),
                "{method} {path}: {answer}"
            );
            let errors = operation["responses"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(code, _)| code.starts_with('4') || code.starts_with('5'));
            for (code, response) in errors {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {code}"
                );
            }
            let security = &operation["security"];
            if secured {
                assert_eq!(
                    security,
                    &serde_json::json!([{ "bearer": [] }]),
                    "{method} {path}"
                );
                for code in ["401", "413", "415", "503"] {
                    if method == "delete" && ["413", "415"].contains(&code) {
                        continue;
                    }
                    assert!(
                        operation["responses"][code].is_object(),
                        "{method} {path} lacks its {code}"
                    );
                }
            } else {
                assert!(security.is_null(), "{method} {path}: {security}");
            }
        }
        let described: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(
            described,
            routes.len(),
            "a route is described but not tested"
        );
        assert!(
            doc["paths"]["/api/silences"]["post"]["requestBody"]["content"]["application/json"]
                ["schema"]["$ref"]
                .as_str()
                .unwrap()
                .ends_with("/NewSilence")
        );
        let alerts = doc["paths"]["/api/alerts"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let names: Vec<&str> = alerts.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["state", "region", "limit"]);
        let states = serde_json::to_string(&alerts[0]["schema"]).unwrap();
        for state in ["firing", "pending", "resolved", "all"] {
            assert!(states.contains(&format!("\"{state}\"")), "{states}");
        }
        let statuses = serde_json::to_string(
            &doc["paths"]["/api/deliveries"]["get"]["parameters"][0]["schema"],
        )
        .unwrap();
        for status in DeliveryStatus::ALL
            .map(|s| s.as_str())
            .iter()
            .chain(&["all"])
        {
            assert!(statuses.contains(&format!("\"{status}\"")), "{statuses}");
        }
    }

    #[test]
    fn every_schema_referred_to_is_in_the_document() {
        let doc = document();
        let mut targets = Vec::new();
        refs(&doc, &mut targets);
        assert!(!targets.is_empty());
        for target in targets {
            let name = target.strip_prefix("#/components/schemas/").unwrap();
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{target} is referred to but not in the document"
            );
        }
        // The fields of what the UI reads, as it reads them.
        let schemas = &doc["components"]["schemas"];
        for (schema, fields) in [
            ("AlertsAnswer", &["alerts", "slack_configured"][..]),
            ("AlertItem", &["alert", "deliveries"]),
            ("AlertHistory", &["alert", "history", "deliveries"]),
            (
                "AlertDetail",
                &[
                    "alert",
                    "kind",
                    "description",
                    "unit",
                    "timeline",
                    "acknowledgements",
                    "deliveries",
                    "threshold",
                    "band",
                    "search_url",
                    "alert_url",
                    "silence_url",
                    "silence_template",
                    "slack_configured",
                ],
            ),
            ("Alert", &["acknowledged_by", "acknowledged_at", "summary"]),
            ("TimelineEntry", &["at", "kind", "text", "by", "value"]),
            ("SilenceTemplate", &["rule", "region", "duration"]),
            (
                "RuleView",
                &[
                    "name",
                    "kind",
                    "rule",
                    "config",
                    "description",
                    "active",
                    "evaluation",
                ],
            ),
            (
                "DeliveriesAnswer",
                &["slack_configured", "outbox_durable", "counts", "deliveries"],
            ),
        ] {
            for field in fields {
                assert!(
                    schemas[schema]["properties"][field].is_object(),
                    "{schema}.{field}"
                );
            }
        }
        assert!(schemas["Delivery"]["properties"]["payload"].is_null());
        assert!(schemas["Finding"]["properties"]["pending_for"].is_null());
    }

    #[test]
    fn a_silence_view_is_the_silence_and_its_status() {
        let t = |h| chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 1, h, 0, 0).unwrap();
        let silence = Silence {
            id: "s1".into(),
            rule: None,
            region: Some("Dakar".into()),
            starts_at: t(1),
            ends_at: t(3),
            author: "awa".into(),
            comment: "maintenance".into(),
            created_at: t(0),
        };
        let view = serde_json::to_value(SilenceView::of(silence, t(2))).unwrap();
        assert_eq!(
            view,
            serde_json::json!({
                "id": "s1",
                "region": "Dakar",
                "starts_at": "2026-01-01T01:00:00Z",
                "ends_at": "2026-01-01T03:00:00Z",
                "author": "awa",
                "comment": "maintenance",
                "created_at": "2026-01-01T00:00:00Z",
                "status": "active",
            })
        );
    }

    #[test]
    fn a_firing_alert_inside_its_hold_says_it_still_fires() {
        let t = |s| chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 1, 12, 0, s).unwrap();
        let alert = Alert {
            id: "a1".into(),
            fingerprint: "f1".into(),
            rule: "late_data".into(),
            region: Some("Dakar".into()),
            subject: None,
            severity: windsock_core::config::Severity::Warning,
            state: AlertState::Firing,
            started_at: t(0),
            fired_at: Some(t(0)),
            resolved_at: None,
            value: Some(3.0),
            expected: None,
            summary: "Dakar is reporting (last report 3 s ago)".into(),
            clear_since: Some(t(10)),
            silenced_by: None,
            inhibited_by: None,
            notified_firing: true,
            last_notified_at: Some(t(0)),
            acknowledged_by: None,
            acknowledged_at: None,
        };
        let hold = std::time::Duration::from_secs(60);
        let shown = as_shown(alert.clone(), hold, t(30));
        assert_eq!(
            shown.summary,
            "Still firing: clear for 20 s of the 1 min it must stay clear to resolve. \
             Dakar is reporting (last report 3 s ago)"
        );
        let mut resolved = alert;
        resolved.state = AlertState::Resolved;
        resolved.clear_since = None;
        assert_eq!(
            as_shown(resolved, hold, t(30)).summary,
            "Dakar is reporting (last report 3 s ago)"
        );
    }

    #[test]
    fn a_store_that_cannot_write_is_a_503_and_other_failures_a_bare_500() {
        let full = StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        ));
        let err = ApiError::from(full);
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(err.message().contains("disk is full"), "{}", err.message());
        let read_only = StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
            None,
        ));
        assert_eq!(
            ApiError::from(read_only).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let io_full = StoreError::Io(std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert_eq!(
            ApiError::from(io_full).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let broken = StoreError::Decode(serde_json::from_str::<u8>("x").unwrap_err());
        let err = ApiError::from(broken);
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.message(), "internal error");
    }
}
