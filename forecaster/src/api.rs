//! The forecaster's HTTP API. Handlers are thin: parse, hand to the engine (off the async
//! runtime), shape the answer. Every failure is a [`windsock_core::http::ApiError`]; the
//! engine's and the service's own errors are mapped to one here.
//!
//! The routes and their OpenAPI description come from one [`OpenApiRouter`], so the document
//! ([`openapi`]) cannot describe a route that is not served, nor miss one that is.

use crate::calibration::{CalibrationMethod, Scores};
use crate::engine::{self, Backtest, EngineError, Refit};
use crate::models::ModelKind;
use crate::predict::{self, Grid, InputError, PredictRequest, PredictResponse, Prediction};
use crate::series;
use crate::service::{Shared, UnknownRegion};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use windsock_core::http::{ApiError, ErrorBody, Params};

/// The forecaster's routes, as `(method, path)`.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/forecast/{region}"),
    ("get", "/api/forecast/{region}/backtest"),
    ("post", "/predict"),
];

/// The largest backtest the API runs (each day is four refits).
pub const MAX_BACKTEST_DAYS: usize = 14;
/// The backtest's length when `days` is not given.
const DEFAULT_BACKTEST_DAYS: usize = 7;
/// The `/predict` horizon when none is given, as the replaced service had it.
const DEFAULT_PREDICT_HORIZON: usize = 24;

/// The tag of every forecaster operation in the merged document.
const TAG: &str = "forecaster";

/// The routes with their descriptions; state is added by [`router`].
fn api() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new()
        .routes(routes!(get_forecast))
        .routes(routes!(get_backtest))
        .routes(routes!(post_predict))
}

pub fn router(shared: Arc<Shared>) -> Router {
    let (router, _) = api().split_for_parts();
    router.with_state(shared)
}

/// The OpenAPI document of the forecaster's routes. Limits that come from the configuration
/// (`forecaster.max_horizon`, `forecaster.level`, `forecaster.horizon_hours`) are described
/// at their defaults.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

// Parameters. Values are parsed here (a value that is not a number is a 400 naming the
// parameter, through `Params`); the handlers check them against the configured bounds. The
// bounds and defaults in `#[param]` are the configuration's defaults (utoipa takes literals
// there); a test holds them to `ForecasterConfig::default()` and the constants.

/// `horizon` and `level` of a region's forecast.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ForecastParams {
    /// Hours ahead, from 1 to `forecaster.max_horizon` (168 by default);
    /// `forecaster.horizon_hours` (24 by default) when absent.
    #[serde(default, deserialize_with = "whole_number")]
    #[param(value_type = Option<usize>, minimum = 1, maximum = 168, default = 24)]
    pub horizon: Option<usize>,
    /// The prediction interval's level, between 0 and 1 (exclusive); `forecaster.level`
    /// (0.95 by default) when absent.
    #[serde(default, deserialize_with = "number")]
    #[param(value_type = Option<f64>, exclusive_minimum = 0, exclusive_maximum = 1, default = 0.95, example = 0.95)]
    pub level: Option<f64>,
}

/// `days` and `level` of a backtest.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BacktestParams {
    /// Days of history backtested, from 1 to 14 (each is four refits); 7 when absent.
    #[serde(default, deserialize_with = "whole_number")]
    #[param(value_type = Option<usize>, minimum = 1, maximum = 14, default = 7)]
    pub days: Option<usize>,
    /// The prediction interval's level scored for coverage, between 0 and 1 (exclusive);
    /// `forecaster.level` (0.95 by default) when absent.
    #[serde(default, deserialize_with = "number")]
    #[param(value_type = Option<f64>, exclusive_minimum = 0, exclusive_maximum = 1, default = 0.95, example = 0.95)]
    pub level: Option<f64>,
}

/// `horizon` and `level` of `/predict`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PredictParams {
    /// Steps ahead, at the data's own frequency, from 1 to `forecaster.max_horizon` (168 by
    /// default); 24 when absent.
    #[serde(default, deserialize_with = "whole_number")]
    #[param(value_type = Option<usize>, minimum = 1, maximum = 168, default = 24)]
    pub horizon: Option<usize>,
    /// The prediction interval's level, between 0 and 1 (exclusive); `forecaster.level`
    /// (0.95 by default) when absent.
    #[serde(default, deserialize_with = "number")]
    #[param(value_type = Option<f64>, exclusive_minimum = 0, exclusive_maximum = 1, default = 0.95, example = 0.95)]
    pub level: Option<f64>,
}

fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<usize>, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse()
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("a whole number is expected, got `{text}`")))
}

fn number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse()
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("a number is expected, got `{text}`")))
}

/// `value`, or `default`, if it is from 1 to `max`.
fn count(name: &str, value: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    match value {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "{name} must be a whole number from 1 to {max}, got `{n}`"
        ))
        .with_detail(serde_json::json!({"parameter": name, "minimum": 1, "maximum": max}))),
    }
}

/// `value`, or `default`, if it is strictly between 0 and 1.
fn level(value: Option<f64>, default: f64) -> Result<f64, ApiError> {
    match value {
        None => Ok(default),
        Some(level) if level > 0.0 && level < 1.0 => Ok(level),
        Some(level) => Err(ApiError::bad_request(format!(
            "level must be a number between 0 and 1 (exclusive), such as 0.95, got `{level:?}`"
        ))
        .with_detail(serde_json::json!({"parameter": "level"}))),
    }
}

// Answers.

/// The latest forecast of a region.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct RegionForecast {
    #[schema(example = "Dakar")]
    pub region: String,
    /// The model in use: the lowest recent backtest MAE (the default model keeps an edge).
    pub model: ModelKind,
    /// When the refit that made it ran.
    pub generated_at: DateTime<Utc>,
    /// The level of the prediction intervals.
    #[schema(exclusive_minimum = 0, exclusive_maximum = 1, example = 0.95)]
    pub level: f64,
    /// How many points follow: the horizon asked for, fewer if the refit made fewer.
    pub horizon: usize,
    /// One per hour, from the hour after the last complete observed hour.
    pub points: Vec<RegionForecastPoint>,
    /// Recent backtest MAE (°C) by model name, for the models that have one.
    pub backtest_mae: BTreeMap<String, f64>,
    pub calibration: ForecastCalibration,
    /// Hours of usable history the models were fitted on.
    pub history_hours: usize,
}

/// One hour of a region's forecast, with its prediction interval.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct RegionForecastPoint {
    /// The start of the hour.
    pub timestamp: DateTime<Utc>,
    pub temperature_c: f64,
    /// The interval's bounds; null when it is unbounded (too little history to calibrate it).
    #[schema(required = true)]
    pub lower: Option<f64>,
    #[schema(required = true)]
    pub upper: Option<f64>,
}

/// How the intervals of a forecast were calibrated.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ForecastCalibration {
    pub method: CalibrationMethod,
    /// Steps ahead with their own calibration; later ones are widened from the last.
    pub calibrated_steps: usize,
    /// Errors each calibrated step's quantile is taken from.
    pub samples: usize,
    /// What the interval's width is multiplied by at each UTC hour of the day (index 0 is
    /// 00:00-01:00 UTC): how much more that hour's temperature changes from one day to the
    /// next than the average hour's, from 0.5 to 2. Empty when widths do not depend on the
    /// hour (too little history, or no calibration from backtests yet).
    #[schema(max_items = 24)]
    pub width_by_utc_hour: Vec<f64>,
}

/// A rolling-origin backtest of every model on a region's stored history: origins every 6
/// hours over the last `days` days, each scored on a whole horizon of actuals.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct RegionBacktest {
    #[schema(example = "Dakar")]
    pub region: String,
    pub days: usize,
    /// Steps ahead scored at each origin.
    pub horizon: usize,
    /// The level of the prediction intervals whose coverage is scored.
    #[schema(exclusive_minimum = 0, exclusive_maximum = 1, example = 0.95)]
    pub level: f64,
    /// Origins that could be refitted and scored.
    pub origins: usize,
    /// Scores by model name.
    pub models: BTreeMap<String, BacktestScores>,
    /// Scores of the model the service would have chosen at each origin; null when no
    /// origin could be scored.
    pub chosen: Option<BacktestScores>,
}

/// Errors of a model's forecasts against what happened.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct BacktestScores {
    /// Mean absolute error, °C.
    pub mae: f64,
    /// Root mean squared error, °C.
    pub rmse: f64,
    /// The share of actuals inside the interval.
    #[schema(minimum = 0, maximum = 1)]
    pub coverage: f64,
    /// Forecast points scored.
    pub points: usize,
    /// This model's MAE over seasonal naive's (below 1 is better than the baseline); absent
    /// when seasonal naive was not scored or was perfect, and on `chosen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mae_vs_seasonal_naive: Option<f64>,
}

impl BacktestScores {
    fn new(scores: &Scores, naive_mae: Option<f64>) -> Self {
        BacktestScores {
            mae: scores.mae,
            rmse: scores.rmse,
            coverage: scores.coverage,
            points: scores.points,
            mae_vs_seasonal_naive: naive_mae.map(|naive| scores.mae / naive),
        }
    }
}

/// An interval's bound, `None` when the interval is unbounded (nothing calibrated its width):
/// JSON has no infinity, and serde would write it as null anyway, undocumented.
fn bound(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

// Errors of the service and the engine, as answers.

fn unknown_region(err: UnknownRegion) -> ApiError {
    let detail = serde_json::json!({"region": err.region, "known": err.known});
    ApiError::bad_request(err.to_string()).with_detail(detail)
}

fn bad_input(err: InputError) -> ApiError {
    ApiError::bad_request(err.0)
}

/// A computation that did not finish: the work panicked (a bug, logged with its cause).
fn failed(err: tokio::task::JoinError) -> ApiError {
    ApiError::internal(format!("the computation failed: {err}"))
}

/// A body that could not be read: over the size limit (as `harden` words its own 413), or
/// cut off.
fn unreadable_body(err: BytesRejection, max_body_bytes: usize) -> ApiError {
    let status = err.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            status,
            format!("the request body is over the limit of {max_body_bytes} bytes"),
        )
        .with_detail(serde_json::json!({ "limit_bytes": max_body_bytes }));
    }
    ApiError::new(
        status,
        format!("the request body could not be read: {}", err.body_text()),
    )
}

// Handlers.

/// The latest forecast of a region.
#[utoipa::path(
    get,
    path = "/api/forecast/{region}",
    params(
        ("region" = String, Path, description = "a configured region, or one observations arrived for", example = "Dakar"),
        ForecastParams,
    ),
    responses(
        (status = 200, description = "the latest forecast", body = RegionForecast),
        (status = 400, description = "a bad parameter or an unknown region", body = ErrorBody),
        (status = 404, description = "no forecast yet: the region has too little history", body = ErrorBody),
    ),
    tag = TAG,
)]
async fn get_forecast(
    State(shared): State<Arc<Shared>>,
    region: Result<Path<String>, PathRejection>,
    Params(params): Params<ForecastParams>,
) -> Result<Json<RegionForecast>, ApiError> {
    let Path(region) = region?;
    let config = &shared.config.forecaster;
    let horizon = count(
        "horizon",
        params.horizon,
        config.horizon_hours,
        config.max_horizon,
    )?;
    let level = level(params.level, config.level)?;
    shared.check_region(&region).map_err(unknown_region)?;
    let latest = shared.latest(&region).ok_or_else(|| {
        let (hours, needed) = shared.history_hours(&region);
        ApiError::not_found(format!(
            "no forecast for {region} yet: it has {hours} hours of usable history, a forecast needs {needed}"
        ))
        .with_detail(serde_json::json!({"history_hours": hours, "needed_hours": needed}))
    })?;
    let refit = &latest.refit;
    let model = refit.chosen();
    let points: Vec<RegionForecastPoint> = (0..horizon.min(model.points.len()))
        .map(|step| {
            let (lower, upper) = model.interval(step, level);
            RegionForecastPoint {
                timestamp: series::hour_start(refit.origin + step as i64),
                temperature_c: model.points[step],
                lower: bound(lower),
                upper: bound(upper),
            }
        })
        .collect();
    Ok(Json(RegionForecast {
        region,
        model: refit.chosen,
        generated_at: latest.generated_at,
        level,
        horizon: points.len(),
        points,
        backtest_mae: refit
            .backtest_mae()
            .into_iter()
            .map(|(name, mae)| (name.to_string(), mae))
            .collect(),
        calibration: ForecastCalibration {
            method: model.calibration.method,
            calibrated_steps: model.calibration.calibrated_steps(),
            samples: model.calibration.samples(),
            width_by_utc_hour: model.calibration.hour_scales().to_vec(),
        },
        history_hours: latest.history_hours,
    }))
}

/// A rolling-origin backtest of every model on the region's stored history.
#[utoipa::path(
    get,
    path = "/api/forecast/{region}/backtest",
    params(
        ("region" = String, Path, description = "a configured region, or one observations arrived for", example = "Dakar"),
        BacktestParams,
    ),
    responses(
        (status = 200, description = "scores per model and of the model chosen", body = RegionBacktest),
        (status = 400, description = "a bad parameter, an unknown region, or too little history for the days asked", body = ErrorBody),
        (status = 500, description = "the backtest failed", body = ErrorBody),
    ),
    tag = TAG,
)]
async fn get_backtest(
    State(shared): State<Arc<Shared>>,
    region: Result<Path<String>, PathRejection>,
    Params(params): Params<BacktestParams>,
) -> Result<Json<RegionBacktest>, ApiError> {
    let Path(region) = region?;
    let days = count(
        "days",
        params.days,
        DEFAULT_BACKTEST_DAYS,
        MAX_BACKTEST_DAYS,
    )?;
    let level = level(params.level, shared.config.forecaster.level)?;
    shared.check_region(&region).map_err(unknown_region)?;
    let series = shared.series(&region);
    let setup = shared.setup.clone();
    let horizon = setup.calibration_horizon;
    let needed = setup.min_points() + days * 24;
    if series.len() < needed {
        return Err(ApiError::bad_request(format!(
            "{region} has {} hours of usable history; a {days}-day backtest needs at least {needed}",
            series.len()
        ))
        .with_detail(serde_json::json!({"history_hours": series.len(), "needed_hours": needed})));
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
        .await
        .map_err(failed)?;
    Ok(Json(backtest_answer(region, days, horizon, level, &report)))
}

fn backtest_answer(
    region: String,
    days: usize,
    horizon: usize,
    level: f64,
    report: &Backtest,
) -> RegionBacktest {
    let naive_mae = report
        .by_model
        .get(ModelKind::SeasonalNaive.name())
        .map(|s| s.mae)
        .filter(|mae| *mae > 0.0);
    RegionBacktest {
        region,
        days,
        horizon,
        level,
        origins: report.origins,
        models: report
            .by_model
            .iter()
            .map(|(name, s)| (name.to_string(), BacktestScores::new(s, naive_mae)))
            .collect(),
        chosen: report.chosen.as_ref().map(|s| BacktestScores::new(s, None)),
    }
}

/// Forecasts a series sent in the request: the contract of the FastAPI/Prophet service it
/// replaces. The rows are `{ds, y}` at any regular step (the answer steps the same); a body
/// without a content type is read as JSON.
#[utoipa::path(
    post,
    path = "/predict",
    params(PredictParams),
    request_body(
        description = "rows in increasing time, at one regular step (gaps are filled); at most 20000",
        content(
            (PredictRequest = "application/json"),
            (String = "text/csv", example = json!("ds,y\n2023-07-21 10:00:00,27.1\n2023-07-21 11:00:00,27.4\n")),
        ),
    ),
    responses(
        (status = 200, description = "the forecast", body = PredictResponse),
        (status = 400, description = "a bad parameter or row (the message names it), or too few rows", body = ErrorBody),
        (status = 413, description = "the body is over `http.max_body_bytes`", body = ErrorBody),
        (status = 415, description = "a content type other than application/json or text/csv", body = ErrorBody),
        (status = 500, description = "the fit failed", body = ErrorBody),
    ),
    tag = TAG,
)]
async fn post_predict(
    State(shared): State<Arc<Shared>>,
    Params(params): Params<PredictParams>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PredictResponse>, ApiError> {
    let body = body.map_err(|err| unreadable_body(err, shared.config.http.max_body_bytes))?;
    let config = &shared.config.forecaster;
    let horizon = count(
        "horizon",
        params.horizon,
        DEFAULT_PREDICT_HORIZON,
        config.max_horizon,
    )?;
    let level = level(params.level, config.level)?;
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
        "application/json" | "" => predict::parse_json(&body),
        "text/csv" => predict::parse_csv(&body),
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported content type `{other}`: send application/json or text/csv"),
            )
            .with_detail(serde_json::json!({"expected": ["application/json", "text/csv"]})))
        }
    }
    .map_err(bad_input)?;
    crate::service::COUNTERS.received(rows.points.len() as u64);
    let grid = predict::to_grid(&rows).map_err(bad_input)?;
    // Before the fit, so every forecast step can be dated in the answer.
    grid.check_horizon(horizon).map_err(bad_input)?;
    let naive_dates = rows.naive_dates;
    let (grid, refit) = shared
        .compute(move || {
            let refit = predict::forecast(&grid, horizon);
            (grid, refit)
        })
        .await
        .map_err(failed)?;
    let refit = refit.map_err(|e: EngineError| ApiError::bad_request(e.to_string()))?;
    Ok(Json(predictions(&grid, &refit, level, naive_dates)?))
}

fn predictions(
    grid: &Grid,
    refit: &Refit,
    level: f64,
    naive_dates: bool,
) -> Result<PredictResponse, ApiError> {
    let model = refit.chosen();
    let predictions = model
        .points
        .iter()
        .enumerate()
        .map(|(step, point)| {
            let at = grid.instant(refit.origin + step as i64).ok_or_else(|| {
                ApiError::bad_request(format!(
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
            Ok(Prediction {
                timestamp,
                temperature: *point,
                lower: bound(lower),
                upper: bound(upper),
            })
        })
        .collect::<Result<Vec<Prediction>, ApiError>>()?;
    Ok(PredictResponse {
        predictions,
        model: refit.chosen,
        level,
        frequency: grid.step_name(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use windsock_core::config::ForecasterConfig;

    fn document() -> Value {
        serde_json::to_value(openapi()).unwrap()
    }

    /// `#/components/schemas/X` → the schema X.
    fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(reference) => {
                let name = reference.rsplit('/').next().unwrap();
                &doc["components"]["schemas"][name]
            }
            None => schema,
        }
    }

    fn parameter<'a>(doc: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path} has parameters"))
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{method} {path} documents `{name}`"))
    }

    #[test]
    fn the_document_lists_every_route_with_its_answer_and_errors() {
        let doc = document();
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, operations) in doc["paths"].as_object().unwrap() {
            for (method, _) in operations.as_object().unwrap() {
                documented.push((method.clone(), path.clone()));
            }
        }
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        documented.sort();
        routes.sort();
        assert_eq!(documented, routes);

        for (method, path, answer, properties) in [
            (
                "get",
                "/api/forecast/{region}",
                "RegionForecast",
                &[
                    "region",
                    "model",
                    "generated_at",
                    "level",
                    "horizon",
                    "points",
                    "backtest_mae",
                    "calibration",
                    "history_hours",
                ][..],
            ),
            (
                "get",
                "/api/forecast/{region}/backtest",
                "RegionBacktest",
                &[
                    "region", "days", "horizon", "level", "origins", "models", "chosen",
                ][..],
            ),
            (
                "post",
                "/predict",
                "PredictResponse",
                &["predictions", "model", "level", "frequency"][..],
            ),
        ] {
            let operation = &doc["paths"][path][method];
            assert_eq!(operation["tags"][0], TAG, "{method} {path}");
            let ok = &operation["responses"]["200"]["content"]["application/json"]["schema"];
            assert_eq!(
                ok["$ref"],
                format!("#/components/schemas/{answer}"),
                "{method} {path}"
            );
            let schema = resolve(&doc, ok);
            for property in properties {
                assert!(
                    schema["properties"][property].is_object(),
                    "{answer} documents `{property}`: {schema}"
                );
            }
            let error = &operation["responses"]["400"]["content"]["application/json"]["schema"];
            assert_eq!(
                error["$ref"], "#/components/schemas/ErrorBody",
                "{method} {path}"
            );
        }
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
        assert!(doc["paths"]["/api/forecast/{region}"]["get"]["responses"]["404"].is_object());
        for status in ["413", "415"] {
            assert!(
                doc["paths"]["/predict"]["post"]["responses"][status].is_object(),
                "/predict documents {status}"
            );
        }
    }

    #[test]
    fn predict_documents_both_request_content_types() {
        let doc = document();
        let body = &doc["paths"]["/predict"]["post"]["requestBody"]["content"];
        assert_eq!(
            body["application/json"]["schema"]["$ref"],
            "#/components/schemas/PredictRequest"
        );
        assert_eq!(body["text/csv"]["schema"]["type"], "string");
        assert!(body["text/csv"]["example"]
            .as_str()
            .unwrap()
            .starts_with("ds,y\n"));
        let request = &doc["components"]["schemas"]["PredictRequest"];
        assert_eq!(request["required"], serde_json::json!(["data"]));
        assert_eq!(request["properties"]["data"]["maxItems"], predict::MAX_ROWS);
        // Unbounded intervals are null, and the bounds are always there.
        for (schema, point) in [
            ("Prediction", "temperature"),
            ("RegionForecastPoint", "temperature_c"),
        ] {
            let schema = &doc["components"]["schemas"][schema];
            assert_eq!(
                schema["required"],
                serde_json::json!(["timestamp", point, "lower", "upper"]),
                "{schema}"
            );
            assert_eq!(
                schema["properties"]["lower"]["type"],
                serde_json::json!(["number", "null"])
            );
        }
    }

    #[test]
    fn the_bounds_of_horizon_days_and_level_are_in_the_schema() {
        let doc = document();
        let defaults = ForecasterConfig::default();
        for (method, path, default) in [
            ("get", "/api/forecast/{region}", defaults.horizon_hours),
            ("post", "/predict", DEFAULT_PREDICT_HORIZON),
        ] {
            let horizon = parameter(&doc, method, path, "horizon");
            assert_eq!(horizon["in"], "query");
            assert_eq!(horizon["required"], false, "{path}");
            let schema = &horizon["schema"];
            assert_eq!(schema["type"], "integer");
            assert_eq!(schema["minimum"], 1);
            assert_eq!(schema["maximum"], defaults.max_horizon, "{path}");
            assert_eq!(schema["default"], default, "{path}");
        }
        let days = &parameter(&doc, "get", "/api/forecast/{region}/backtest", "days")["schema"];
        assert_eq!(
            (&days["minimum"], &days["maximum"]),
            (&1.into(), &MAX_BACKTEST_DAYS.into())
        );
        for (method, path) in [
            ("get", "/api/forecast/{region}"),
            ("get", "/api/forecast/{region}/backtest"),
            ("post", "/predict"),
        ] {
            // OpenAPI 3.1 (JSON Schema 2020-12): exclusive bounds are numbers, not booleans.
            let level = &parameter(&doc, method, path, "level")["schema"];
            assert_eq!(level["type"], "number");
            assert_eq!(level["exclusiveMinimum"], 0, "{path}");
            assert_eq!(level["exclusiveMaximum"], 1, "{path}");
            assert_eq!(level["default"], defaults.level);
        }
        for path in ["/api/forecast/{region}", "/api/forecast/{region}/backtest"] {
            let region = parameter(&doc, "get", path, "region");
            assert_eq!(
                (&region["in"], &region["required"]),
                (&"path".into(), &true.into())
            );
        }
    }

    #[test]
    fn parameters_are_parsed_and_bad_ones_named() {
        let params = Params::<ForecastParams>::parse("horizon=36&level=0.9").unwrap();
        assert_eq!((params.horizon, params.level), (Some(36), Some(0.9)));
        let err = Params::<PredictParams>::parse("horizon=ten").unwrap_err();
        assert!(err.message().contains("`horizon`"), "{}", err.message());
        assert!(err.message().contains("got `ten`"), "{}", err.message());
        let err = Params::<BacktestParams>::parse("horizon=3").unwrap_err();
        assert!(
            err.message().contains("unknown field `horizon`"),
            "{}",
            err.message()
        );
        let err = count("days", Some(15), 7, MAX_BACKTEST_DAYS).unwrap_err();
        assert_eq!(
            err.message(),
            "days must be a whole number from 1 to 14, got `15`"
        );
        assert_eq!(err.body.detail.unwrap()["maximum"], 14);
        assert!(level(Some(f64::NAN), 0.95).is_err());
        // Quoted short, however the number was written.
        let err = level(Some(1e308), 0.95).unwrap_err();
        assert!(err.message().ends_with("got `1e308`"), "{}", err.message());
        assert!(level(Some(1.0), 0.95).is_err());
        assert_eq!(level(None, 0.95).unwrap(), 0.95);
    }

    #[test]
    fn a_backtest_answer_has_the_wire_shape_of_before() {
        let scores = |mae: f64| Scores {
            mae,
            rmse: mae * 1.5,
            coverage: 0.9,
            points: 48,
        };
        let report = Backtest {
            origins: 2,
            by_model: [("mstl_ets", scores(1.0)), ("seasonal_naive", scores(2.0))]
                .into_iter()
                .collect(),
            chosen: Some(scores(1.0)),
        };
        let answer =
            serde_json::to_value(backtest_answer("Dakar".into(), 2, 24, 0.95, &report)).unwrap();
        assert_eq!(
            answer,
            serde_json::json!({
                "region": "Dakar", "days": 2, "horizon": 24, "level": 0.95, "origins": 2,
                "models": {
                    "mstl_ets": {"mae": 1.0, "rmse": 1.5, "coverage": 0.9, "points": 48, "mae_vs_seasonal_naive": 0.5},
                    "seasonal_naive": {"mae": 2.0, "rmse": 3.0, "coverage": 0.9, "points": 48, "mae_vs_seasonal_naive": 1.0},
                },
                "chosen": {"mae": 1.0, "rmse": 1.5, "coverage": 0.9, "points": 48},
            })
        );
        let empty = serde_json::to_value(backtest_answer(
            "Dakar".into(),
            1,
            24,
            0.95,
            &Backtest::default(),
        ))
        .unwrap();
        assert_eq!(empty["chosen"], Value::Null, "present, as null");
        assert_eq!(empty["models"], serde_json::json!({}));
    }
}
