//! The OpenAPI 3 document of the forecaster's routes (hand-written; a test checks it against
//! [`crate::api::ROUTES`] and that each documented operation is served).

use serde_json::{json, Value};
use windsock_core::config::ForecasterConfig;

/// The document, with the limits of this configuration.
pub fn document(config: &ForecasterConfig) -> Value {
    let max_horizon = config.max_horizon;
    let error = json!({"description": "what is wrong, in words", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let region = json!({"name": "region", "in": "path", "required": true, "schema": {"type": "string"}, "example": "Dakar"});
    let level = json!({"name": "level", "in": "query", "schema": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": config.level}, "description": "prediction interval level"});
    let horizon = json!({"name": "horizon", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": max_horizon, "default": config.horizon_hours}, "description": "hours ahead"});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "windsock forecaster",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Per-region hourly temperature forecasts (MSTL + AutoETS with persistence and seasonal-naive baselines; conformally calibrated intervals)."
        },
        "paths": {
            "/api/forecast/{region}": {"get": {
                "summary": "The latest forecast of a region",
                "parameters": [region, horizon.clone(), level.clone()],
                "responses": {
                    "200": {"description": "the forecast", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RegionForecast"}}}},
                    "400": error.clone(),
                    "404": {"description": "no forecast yet (not enough history)", "content": error["content"].clone()}
                }
            }},
            "/api/forecast/{region}/backtest": {"get": {
                "summary": "Rolling-origin backtest of every model on the stored history",
                "parameters": [region, {"name": "days", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": crate::api::MAX_BACKTEST_DAYS, "default": 7}}, level.clone()],
                "responses": {
                    "200": {"description": "scores per model", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Backtest"}}}},
                    "400": error.clone()
                }
            }},
            "/predict": {"post": {
                "summary": "Forecast a series sent in the request (contract of the replaced FastAPI/Prophet service)",
                "parameters": [{"name": "horizon", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": max_horizon, "default": 24}, "description": "steps ahead, at the data's own frequency"}, level],
                "requestBody": {"required": true, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}},
                    "text/csv": {"schema": {"type": "string", "description": "a header row with columns ds and y, then one row per point"}, "example": "ds,y\n2023-07-21 10:00:00,27.1\n"}
                }},
                "responses": {
                    "200": {"description": "the forecast", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictResponse"}}}},
                    "400": error
                }
            }},
            "/api/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3 document", "content": {"application/json": {"schema": {"type": "object"}}}}}
            }}
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}, "detail": {}}},
            "Point": {"type": "object", "required": ["timestamp", "temperature_c", "lower", "upper"], "properties": {
                "timestamp": {"type": "string", "format": "date-time"},
                "temperature_c": {"type": "number"}, "lower": {"type": "number"}, "upper": {"type": "number"}
            }},
            "RegionForecast": {"type": "object", "required": ["region", "model", "generated_at", "level", "points", "backtest_mae"], "properties": {
                "region": {"type": "string"},
                "model": {"type": "string", "enum": ["mstl_ets", "seasonal_naive", "persistence"], "description": "the model in use: lowest recent backtest MAE"},
                "generated_at": {"type": "string", "format": "date-time"},
                "level": {"type": "number"},
                "horizon": {"type": "integer"},
                "points": {"type": "array", "items": {"$ref": "#/components/schemas/Point"}},
                "backtest_mae": {"type": "object", "additionalProperties": {"type": "number"}, "description": "recent MAE by model name"},
                "calibration": {"type": "object", "properties": {"method": {"type": "string", "enum": ["conformal", "series_changes"]}, "calibrated_steps": {"type": "integer"}, "samples": {"type": "integer"}}},
                "history_hours": {"type": "integer"}
            }},
            "Scores": {"type": "object", "properties": {"mae": {"type": "number"}, "rmse": {"type": "number"}, "coverage": {"type": "number"}, "points": {"type": "integer"}, "mae_vs_seasonal_naive": {"type": "number"}}},
            "Backtest": {"type": "object", "properties": {
                "region": {"type": "string"}, "days": {"type": "integer"}, "horizon": {"type": "integer"}, "level": {"type": "number"}, "origins": {"type": "integer"},
                "models": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Scores"}},
                "chosen": {"$ref": "#/components/schemas/Scores"}
            }},
            "PredictRequest": {"type": "object", "required": ["data"], "properties": {
                "latitude": {"type": "number"}, "longitude": {"type": "number"},
                "data": {"type": "array", "items": {"type": "object", "required": ["ds", "y"], "properties": {"ds": {"type": "string", "example": "2023-07-21 10:00:00"}, "y": {"type": "number"}}}}
            }},
            "PredictResponse": {"type": "object", "required": ["predictions"], "properties": {
                "predictions": {"type": "array", "items": {"type": "object", "required": ["timestamp", "temperature", "lower", "upper"], "properties": {
                    "timestamp": {"type": "string"}, "temperature": {"type": "number"}, "lower": {"type": "number"}, "upper": {"type": "number"}
                }}},
                "model": {"type": "string"}, "level": {"type": "number"}, "frequency": {"type": "string"}
            }}
        }}
    })
}
