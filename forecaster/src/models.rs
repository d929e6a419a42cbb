//! The models: MSTL + AutoETS trend (the default) and two baselines that are always
//! computed beside it, persistence and seasonal naive.

use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::{Fit, Predict};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A forecasting model, by the name the API and events give it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// MSTL decomposition with the daily season, AutoETS on the deseasonalised trend.
    MstlEts,
    /// The value at the same step one season earlier (same hour yesterday).
    SeasonalNaive,
    /// The last value, carried forward.
    Persistence,
}

impl ModelKind {
    pub const ALL: [ModelKind; 3] = [
        ModelKind::MstlEts,
        ModelKind::SeasonalNaive,
        ModelKind::Persistence,
    ];

    /// The model used when nothing says another one is better.
    pub const DEFAULT: ModelKind = ModelKind::MstlEts;

    pub fn name(&self) -> &'static str {
        match self {
            ModelKind::MstlEts => "mstl_ets",
            ModelKind::SeasonalNaive => "seasonal_naive",
            ModelKind::Persistence => "persistence",
        }
    }
}

/// Why a model produced no forecast (augurs' errors, mapped so they never panic a service).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("{model} needs at least {needed} points, got {got}")]
    TooShort {
        model: &'static str,
        needed: usize,
        got: usize,
    },
    #[error("{model} could not be fitted: {reason}")]
    Fit { model: &'static str, reason: String },
    #[error("{model} produced a non-finite forecast")]
    NonFinite { model: &'static str },
}

/// The fewest points a model can be fitted on, for a season of `season` steps.
pub fn min_points(kind: ModelKind, season: Option<usize>) -> usize {
    match (kind, season) {
        // MSTL needs two whole seasons; one step more keeps STL's windows well defined.
        (ModelKind::MstlEts, Some(p)) => 2 * p + 1,
        (ModelKind::MstlEts, None) => 8,
        (ModelKind::SeasonalNaive, Some(p)) => p,
        (ModelKind::SeasonalNaive, None) | (ModelKind::Persistence, _) => 1,
    }
}

/// The histogram of [`forecast`]'s durations, labelled `model`.
pub const FIT_SECONDS: &str = "windsock_forecast_fit_seconds";

/// Point forecasts of `horizon` steps after the end of `y`; its duration is recorded in
/// [`FIT_SECONDS`] (refused inputs, which fit nothing, are not).
///
/// Without a season (data too coarse for a daily cycle), MSTL + ETS is plain AutoETS and
/// seasonal naive is persistence.
pub fn forecast(
    kind: ModelKind,
    y: &[f64],
    season: Option<usize>,
    horizon: usize,
) -> Result<Vec<f64>, ModelError> {
    let started = std::time::Instant::now();
    let result = fit_and_forecast(kind, y, season, horizon);
    if !matches!(result, Err(ModelError::TooShort { .. })) {
        metrics::histogram!(FIT_SECONDS, "model" => kind.name())
            .record(started.elapsed().as_secs_f64());
    }
    result
}

fn fit_and_forecast(
    kind: ModelKind,
    y: &[f64],
    season: Option<usize>,
    horizon: usize,
) -> Result<Vec<f64>, ModelError> {
    let needed = min_points(kind, season);
    if y.len() < needed {
        return Err(ModelError::TooShort {
            model: kind.name(),
            needed,
            got: y.len(),
        });
    }
    let points = match kind {
        ModelKind::Persistence => vec![y[y.len() - 1]; horizon],
        ModelKind::SeasonalNaive => {
            let p = season.unwrap_or(1);
            let last_season = &y[y.len() - p..];
            (0..horizon).map(|h| last_season[h % p]).collect()
        }
        ModelKind::MstlEts => mstl_ets(y, season, horizon)?,
    };
    if points.iter().any(|v| !v.is_finite()) {
        return Err(ModelError::NonFinite { model: kind.name() });
    }
    Ok(points)
}

fn mstl_ets(y: &[f64], season: Option<usize>, horizon: usize) -> Result<Vec<f64>, ModelError> {
    let fit_error = |reason: String| ModelError::Fit {
        model: ModelKind::MstlEts.name(),
        reason,
    };
    // The trend is searched among ETS models without a season ("ZZN"): augurs' ETS has no
    // usable 24-step season, so the season comes from MSTL.
    let trend = AutoETS::non_seasonal();
    let forecast = match season {
        Some(p) => MSTLModel::new(vec![p], trend.into_trend_model())
            .fit(y)
            .map_err(|e| fit_error(e.to_string()))?
            .predict(horizon, None)
            .map_err(|e| fit_error(e.to_string()))?,
        None => trend
            .fit(y)
            .map_err(|e| fit_error(e.to_string()))?
            .predict(horizon, None)
            .map_err(|e| fit_error(e.to_string()))?,
    };
    Ok(forecast.point)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daily_cycle(days: usize) -> Vec<f64> {
        (0..days * 24)
            .map(|i| 10.0 + 5.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin() + i as f64 * 0.01)
            .collect()
    }

    #[test]
    fn baselines_repeat_the_last_value_and_the_last_day() {
        let y: Vec<f64> = (0..48).map(|i| i as f64).collect();
        assert_eq!(
            forecast(ModelKind::Persistence, &y, Some(24), 3).unwrap(),
            vec![47.0; 3]
        );
        let naive = forecast(ModelKind::SeasonalNaive, &y, Some(24), 26).unwrap();
        assert_eq!(naive[0], 24.0);
        assert_eq!(naive[23], 47.0);
        assert_eq!(naive[24], 24.0, "the last season repeats");
    }

    #[test]
    fn mstl_ets_follows_a_daily_cycle() {
        let y = daily_cycle(14);
        let points = forecast(ModelKind::MstlEts, &y, Some(24), 24).unwrap();
        let truth = daily_cycle(15);
        let mae: f64 = points
            .iter()
            .zip(&truth[y.len()..])
            .map(|(p, t)| (p - t).abs())
            .sum::<f64>()
            / 24.0;
        assert!(mae < 0.5, "MAE {mae} on a clean cycle");
    }

    #[test]
    fn too_short_and_constant_series_are_errors_or_values_never_panics() {
        let err = forecast(ModelKind::MstlEts, &[1.0; 10], Some(24), 24).unwrap_err();
        assert_eq!(
            err,
            ModelError::TooShort {
                model: "mstl_ets",
                needed: 49,
                got: 10
            }
        );
        // A flat line is a legitimate input; whatever augurs makes of it must not panic.
        let _ = forecast(ModelKind::MstlEts, &[3.0; 72], Some(24), 24);
        let _ = forecast(ModelKind::MstlEts, &[3.0; 20], None, 5);
    }
}
