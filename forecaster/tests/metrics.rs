//! The forecaster's metrics as `/metrics` renders them: the fit histogram is described and
//! present for every model from the start, and each fit is recorded, by model.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;
use std::sync::Arc;
use windsock_core::bus::{EmbeddedBus, SharedBus};
use windsock_forecaster::Forecaster;

/// The value of the sample `name{labels}` in the Prometheus text, if it is there.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn each_model_fit_is_timed_in_a_described_histogram() {
    // This test binary's process-wide recorder, as the service's is.
    let prometheus = windsock_core::telemetry::prometheus();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let bus: SharedBus = Arc::new(EmbeddedBus::new(&config.bus));
    let forecaster = Forecaster::new(config, bus).await.unwrap();

    let before = prometheus.render();
    assert!(
        before.contains("# HELP windsock_forecast_fit_seconds ")
            && before.contains("# TYPE windsock_forecast_fit_seconds histogram"),
        "described, as a histogram:\n{before}"
    );
    for model in ["mstl_ets", "seasonal_naive", "persistence", "regression"] {
        let count = format!("windsock_forecast_fit_seconds_count{{model=\"{model}\"}}");
        assert_eq!(
            sample(&before, &count),
            Some(0.0),
            "{model} before any fit:\n{before}"
        );
    }

    // Twelve days of a daily cycle: every model fits (the regression needs ten).
    let data: Vec<_> = (0..288)
        .map(|i| {
            let at = chrono::DateTime::from_timestamp(1_690_000_000 / 3600 * 3600 + i * 3600, 0)
                .unwrap();
            let y = 20.0 + 5.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin();
            json!({"ds": at.to_rfc3339(), "y": y})
        })
        .collect();
    let (status, answer) = call(
        &forecaster.routes(),
        "POST",
        "/predict?horizon=6",
        Some("application/json"),
        json!({ "data": data }).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let after = prometheus.render();
    // The fit the answer comes from, and the backfilled ones that calibrate it.
    for (model, fits) in [
        ("mstl_ets", 2.0),
        ("seasonal_naive", 2.0),
        ("persistence", 2.0),
        ("regression", 2.0),
    ] {
        let count = format!("windsock_forecast_fit_seconds_count{{model=\"{model}\"}}");
        assert!(
            sample(&after, &count).is_some_and(|n| n >= fits),
            "{model}:\n{after}"
        );
        let top = format!("windsock_forecast_fit_seconds_bucket{{model=\"{model}\",le=\"+Inf\"}}");
        assert_eq!(
            sample(&after, &top),
            sample(&after, &count),
            "{model} has buckets"
        );
    }
}
