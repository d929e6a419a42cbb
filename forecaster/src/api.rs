//! The forecaster's HTTP API. Handlers are thin: parse, hand to the engine (off the async
//! runtime), shape the answer. Every failure is an [`ApiError`].

use crate::calibration::Scores;
use crate::engine::{self, Backtest, Refit, Setup};
use crate::predict::{self, Grid, InputError};
use crate::service::Shared;
use crate::series;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The forecaster's routes, as `(method, path)`.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/forecast/{region}"),
    ("get", "/api/forecast/{region}/backtest"),
    ("post", "/predict"),
];

/// The largest backtest the API runs (each day is four refits).
pub const MAX_BACKTEST_DAYS: usize = 14;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/forecast/{region}", get(get_forecast))
        .route("/api/forecast/{region}/backtest", get(get_backtest))
        .route("/predict", post(post_predict))
        .with_state(shared)
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Internal(String),
    /// An extractor's refusal (a body over the limit, a path that is not UTF-8), with its
    /// status, so it is JSON like every other error.
    #[error("{1}")]
    Rejected(StatusCode, String),
}

impl From<PathRejection> for ApiError {
    fn from(err: PathRejection) -> Self {
        ApiError::Rejected(err.status(), err.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(err: BytesRejection) -> Self {
        ApiError::Rejected(err.status(), err.body_text())
    }
}

impl From<InputError> for ApiError {
    fn from(err: InputError) -> Self {
        ApiError::BadRequest(err.0)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = match &self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Rejected(status, _) => (*status, "bad_request"),
        };
        crate::service::COUNTERS.error(kind);
        windsock_core::http::error_response(status, self.to_string(), None)
    }
}

/// Query parameters, refused when unknown or repeated, parsed with exact complaints.
struct Query(BTreeMap<String, String>);

impl Query {
    fn parse(raw: Option<String>, allowed: &[&str]) -> Result<Query, ApiError> {
        let mut params = BTreeMap::new();
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            if !allowed.contains(&key.as_ref()) {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter `{key}` (known: {})",
                    allowed.join(", ")
                )));
            }
            if params.insert(key.to_string(), value.to_string()).is_some() {
                return Err(ApiError::BadRequest(format!(
                    "query parameter `{key}` is given twice"
                )));
            }
        }
        Ok(Query(params))
    }

    fn count(&self, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        let Some(text) = self.0.get(name) else {
            return Ok(default);
        };
        match text.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!(
                "{name} must be a whole number from 1 to {max}, got `{text}`"
            ))),
        }
    }

    fn level(&self, default: f64) -> Result<f64, ApiError> {
        let Some(text) = self.0.get("level") else {
            return Ok(default);
        };
        match text.parse::<f64>() {
            Ok(level) if level > 0.0 && level < 1.0 => Ok(level),
            _ => Err(ApiError::BadRequest(format!(
                "level must be a number between 0 and 1 (exclusive), such as 0.95, got `{text}`"
            ))),
        }
    }
}

async fn get_forecast(
    State(shared): State<Arc<Shared>>,
    region: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let Path(region) = region?;
    let query = Query::parse(raw, &["horizon", "level"])?;
    let config = &shared.config.forecaster;
    let horizon = query.count("horizon", config.horizon_hours, config.max_horizon)?;
    let level = query.level(config.level)?;
    shared.check_region(&region)?;
    let latest = shared.latest(&region).ok_or_else(|| {
        let (hours, needed) = shared.history_hours(&region);
        ApiError::NotFound(format!(
            "no forecast for {region} yet: it has {hours} hours of usable history, a forecast needs {needed}"
        ))
    })?;
    let refit = &latest.refit;
    let model = refit.chosen();
    let points: Vec<Value> = (0..horizon.min(model.points.len()))
        .map(|step| {
            let (lower, upper) = model.interval(step, level);
            json!({
                "timestamp": series::hour_start(refit.origin + step as i64),
                "temperature_c": model.points[step],
                "lower": lower,
                "upper": upper,
            })
        })
        .collect();
    Ok(Json(json!({
        "region": region,
        "model": refit.chosen.name(),
        "generated_at": latest.generated_at,
        "level": level,
        "horizon": points.len(),
        "points": points,
        "backtest_mae": refit.backtest_mae(),
        "calibration": {
            "method": model.calibration.method,
            "calibrated_steps": model.calibration.calibrated_steps(),
            "samples": model.calibration.samples(),
        },
        "history_hours": latest.history_hours,
    })))
}

async fn get_backtest(
    State(shared): State<Arc<Shared>>,
    region: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let Path(region) = region?;
    let query = Query::parse(raw, &["days", "level"])?;
    let days = query.count("days", 7, MAX_BACKTEST_DAYS)?;
    let level = query.level(shared.config.forecaster.level)?;
    shared.check_region(&region)?;
    let series = shared.series(&region);
    let setup = shared.setup.clone();
    let horizon = setup.calibration_horizon;
    let needed = setup.min_points() + days * 24;
    if series.len() < needed {
        return Err(ApiError::BadRequest(format!(
            "{region} has {} hours of usable history; a {days}-day backtest needs at least {needed}",
            series.len()
        )));
    }
    // Origins every 6 hours over the last `days` days, each with a whole horizon of actuals.
    let end = series.end();
    let mut origins: Vec<i64> = (0..)
        .map(|k| end - horizon as i64 - 6 * k)
        .take_while(|o| *o >= end - (days * 24) as i64)
        .collect();
    origins.reverse();
    let report = shared
        .compute(move || engine::backtest(&series, &setup, &origins, horizon, level))
        .await?;
    Ok(Json(backtest_json(&region, days, horizon, level, &report)))
}

fn backtest_json(
    region: &str,
    days: usize,
    horizon: usize,
    level: f64,
    report: &Backtest,
) -> Value {
    let scores = |s: &Scores| json!({"mae": s.mae, "rmse": s.rmse, "coverage": s.coverage, "points": s.points});
    let naive_mae = report.by_model.get("seasonal_naive").map(|s| s.mae);
    let models: serde_json::Map<String, Value> = report
        .by_model
        .iter()
        .map(|(name, s)| {
            let mut v = scores(s);
            if let Some(naive) = naive_mae.filter(|m| *m > 0.0) {
                v["mae_vs_seasonal_naive"] = json!(s.mae / naive);
            }
            (name.to_string(), v)
        })
        .collect();
    json!({
        "region": region,
        "days": days,
        "horizon": horizon,
        "level": level,
        "origins": report.origins,
        "models": models,
        "chosen": report.chosen.as_ref().map(scores),
    })
}

async fn post_predict(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body?;
    let query = Query::parse(raw, &["horizon", "level"])?;
    let config = &shared.config.forecaster;
    let horizon = query.count("horizon", 24, config.max_horizon)?;
    let level = query.level(config.level)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let rows = match essence.as_str() {
        "application/json" | "" => predict::parse_json(&body)?,
        "text/csv" => predict::parse_csv(&body)?,
        other => {
            return Err(ApiError::BadRequest(format!(
                "unsupported content type `{other}`: send application/json or text/csv"
            )))
        }
    };
    crate::service::COUNTERS.received(rows.points.len() as u64);
    let grid = predict::to_grid(&rows)?;
    // Before the fit, so every forecast step can be dated in the answer.
    grid.check_horizon(horizon)?;
    let naive_dates = rows.naive_dates;
    let (grid, refit) = shared
        .compute(move || {
            let setup = predict_setup(&grid, horizon);
            let refit = engine::refit(&grid.series, &mut Default::default(), &setup, horizon);
            (grid, refit)
        })
        .await?;
    let refit = refit.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(Json(predictions_json(&grid, &refit, level, naive_dates)?))
}

/// A stateless request is modelled on all it sent, calibrated by a backfilled backtest.
fn predict_setup(grid: &Grid, horizon: usize) -> Setup {
    let season = grid.season;
    Setup {
        season,
        // As the bus history: 28 days at most (what MSTL needs; Prophet's habit of fitting
        // on everything sent costs time and helps no 24-step forecast).
        train_len: grid.series.len().min(season.map_or(1000, |p| 28 * p)),
        calibration_horizon: horizon.min(season.unwrap_or(horizon)).max(1),
        calibration_window: grid.series.len() as i64,
        backfill_origins: 12,
        backfill_spacing: season.map_or(1, |p| (p / 4).max(1)),
    }
}

fn predictions_json(
    grid: &Grid,
    refit: &Refit,
    level: f64,
    naive_dates: bool,
) -> Result<Value, ApiError> {
    let model = refit.chosen();
    let predictions = model
        .points
        .iter()
        .enumerate()
        .map(|(step, point)| {
            let at = grid.instant(refit.origin + step as i64).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "horizon: the forecast runs past {}",
                    predict::LATEST
                ))
            })?;
            let timestamp = if naive_dates {
                at.format("%Y-%m-%d %H:%M:%S").to_string()
            } else {
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            };
            let (lower, upper) = model.interval(step, level);
            Ok(json!({"timestamp": timestamp, "temperature": point, "lower": lower, "upper": upper}))
        })
        .collect::<Result<Vec<Value>, ApiError>>()?;
    Ok(json!({
        "predictions": predictions,
        "model": refit.chosen.name(),
        "level": level,
        "frequency": grid.step_name(),
    }))
}
