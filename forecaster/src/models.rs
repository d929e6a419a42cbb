//! The models: MSTL + AutoETS trend (the default), two baselines that are always
//! computed beside it (persistence and seasonal naive), and the combination of the default
//! with seasonal naive, weighted by their backtest errors (made by the engine, which holds
//! the errors).

use augurs::ets::model::{
    self as ets, ErrorComponent, ModelType, SeasonalComponent, TrendComponent, Unfit,
};
use augurs::ets::AutoETS;
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
    /// MSTL + ETS and seasonal naive averaged, each weighted by the inverse of its own
    /// backtest MAE: combining forecasts whose errors differ is the most reliable gain in the
    /// forecasting literature (the M4 competition's best entries combine). Served only when
    /// its own backtest MAE is the lowest.
    Combined,
}

impl ModelKind {
    /// The models fitted on a series ([`forecast`] makes their points).
    pub const ALL: [ModelKind; 3] = [
        ModelKind::MstlEts,
        ModelKind::SeasonalNaive,
        ModelKind::Persistence,
    ];

    /// What [`ModelKind::Combined`] combines.
    /// (Adding persistence measured worse on Greensboro in the bench: MAE 2.62 against 2.51.)
    pub const COMBINED: [ModelKind; 2] = [ModelKind::MstlEts, ModelKind::SeasonalNaive];

    /// The model used when nothing says another one is better.
    pub const DEFAULT: ModelKind = ModelKind::MstlEts;

    pub fn name(&self) -> &'static str {
        match self {
            ModelKind::MstlEts => "mstl_ets",
            ModelKind::SeasonalNaive => "seasonal_naive",
            ModelKind::Persistence => "persistence",
            ModelKind::Combined => "combined",
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
        (ModelKind::MstlEts | ModelKind::Combined, None) => 8,
        (ModelKind::Combined, Some(p)) => 2 * p + 1,
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
    let points =
        match kind {
            ModelKind::Persistence => vec![y[y.len() - 1]; horizon],
            ModelKind::SeasonalNaive => {
                let p = season.unwrap_or(1);
                let last_season = &y[y.len() - p..];
                (0..horizon).map(|h| last_season[h % p]).collect()
            }
            ModelKind::MstlEts => mstl_ets(y, season, horizon)?,
            ModelKind::Combined => return Err(ModelError::Fit {
                model: kind.name(),
                reason:
                    "a combination is made from the other models' forecasts and errors, not fitted"
                        .into(),
            }),
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
    let Some(p) = season else {
        // Without a season, plain AutoETS with additive errors.
        let trend = AutoETS::new(1, "AZN").map_err(|e| fit_error(e.to_string()))?;
        return Ok(trend
            .fit(y)
            .map_err(|e| fit_error(e.to_string()))?
            .predict(horizon, None)
            .map_err(|e| fit_error(e.to_string()))?
            .point);
    };
    let values: Vec<f32> = y.iter().map(|v| *v as f32).collect();
    let (seasonal, deseasonalised) = decompose(&values, p).map_err(fit_error)?;
    let trend = fit_trend(&deseasonalised)
        .map_err(fit_error)?
        .predict(horizon, None)
        .map_err(|e| fit_error(e.to_string()))?;
    Ok(with_last_season(&trend.point, &seasonal, p))
}

/// MSTL of one daily period: the seasonal component and the rest (trend plus remainder).
/// One pass: MSTL's second iteration refines how several seasons share the variation, and
/// costs as much as the first.
fn decompose(values: &[f32], season: usize) -> Result<(Vec<f64>, Vec<f64>), String> {
    let mut params = augurs::mstl::stlrs::MstlParams::new();
    params.iterations(1);
    let parts = params.fit(values, &[season]).map_err(|e| e.to_string())?;
    let seasonal = parts.seasonal()[0].iter().map(|v| *v as f64).collect();
    let deseasonalised = parts
        .trend()
        .iter()
        .zip(parts.remainder())
        .map(|(t, r)| (t + r) as f64)
        .collect();
    Ok((seasonal, deseasonalised))
}

/// A trend forecast plus the last whole season of the seasonal component, repeated.
fn with_last_season(trend: &[f64], seasonal: &[f64], season: usize) -> Vec<f64> {
    let last_season = &seasonal[seasonal.len() - season..];
    trend
        .iter()
        .enumerate()
        .map(|(h, t)| t + last_season[h % season])
        .collect()
}

/// The ETS models searched for the deseasonalised series, as (type, damped): simple
/// exponential smoothing, and a damped additive trend. augurs' ETS has no usable 24-step
/// season, so the season comes from MSTL; multiplicative errors suit only positive data of
/// a growing scale, which temperatures are not; an undamped trend extrapolates a day's drift
/// for the whole horizon. Two candidates instead of the six AutoETS tries on positive data.
fn trend_candidates() -> [(ModelType, bool); 2] {
    let model = |trend| ModelType {
        error: ErrorComponent::Additive,
        trend,
        season: SeasonalComponent::None,
    };
    [
        (model(TrendComponent::None), false),
        (model(TrendComponent::Additive), true),
    ]
}

/// The candidate of [`trend_candidates`] with the lowest AICc, as AutoETS chooses.
fn fit_trend(deseasonalised: &[f64]) -> Result<ets::Model, String> {
    trend_candidates()
        .into_iter()
        .filter_map(|(model_type, damped)| {
            Unfit::new(model_type)
                .damped(damped)
                .fit(deseasonalised)
                .ok()
                .filter(|m| !m.aicc().is_nan())
        })
        .min_by(|a, b| a.aicc().total_cmp(&b.aicc()))
        .ok_or_else(|| "no ETS model could be fitted to the deseasonalised series".to_string())
}

/// MSTL + ETS forecasts of `horizon` steps from several past origins of one window `y`,
/// sharing the work a fit per origin would repeat: the ETS trend model (none or damped
/// trend) is chosen once, on the deseasonalised window, and each origin `end` (forecasting
/// from `y[end]` on) decomposes only `y[..end]` and fits only that model's parameters, the
/// origins in parallel on rayon's pool. One entry per origin, `None` where the prefix is too
/// short or the fit failed. `y` should end at the newest origin, so that the one choice made
/// on the whole window never sees an actual that is scored.
pub fn mstl_ets_past_origins(
    y: &[f64],
    season: usize,
    ends: &[usize],
    horizon: usize,
) -> Vec<Option<Vec<f64>>> {
    use rayon::prelude::*;
    let started = std::time::Instant::now();
    let needed = min_points(ModelKind::MstlEts, Some(season));
    let values: Vec<f32> = y.iter().map(|v| *v as f32).collect();
    let chosen = (y.len() >= needed)
        .then(|| decompose(&values, season).ok())
        .flatten()
        .and_then(|(_, deseasonalised)| fit_trend(&deseasonalised).ok())
        .map(|model| (model.model_type(), model.damped()));
    let Some((model_type, damped)) = chosen else {
        return vec![None; ends.len()];
    };
    let forecasts = ends
        .par_iter()
        .map(|&end| {
            if end < needed || end > y.len() {
                return None;
            }
            // Each origin decomposes only what was known then: the window's decomposition has
            // seen the values after the origin, and errors scored from it were so optimistic
            // that the intervals they calibrated covered 77% on smooth data.
            let (seasonal, deseasonalised) = decompose(&values[..end], season).ok()?;
            let trend = Unfit::new(model_type)
                .damped(damped)
                .fit(&deseasonalised)
                .ok()?
                .predict(horizon, None)
                .ok()?;
            let points = with_last_season(&trend.point, &seasonal, season);
            points.iter().all(|v| v.is_finite()).then_some(points)
        })
        .collect();
    metrics::histogram!(FIT_SECONDS, "model" => "mstl_ets_past_origins")
        .record(started.elapsed().as_secs_f64());
    forecasts
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
    fn past_origins_from_one_decomposition_follow_the_cycle_like_their_own_fits() {
        let y = daily_cycle(20);
        let truth = daily_cycle(21);
        let ends = [y.len() - 48, y.len() - 24, 30];
        let shared = mstl_ets_past_origins(&y, 24, &ends, 24);
        assert!(shared[2].is_none(), "30 points are too few for MSTL");
        for (end, points) in ends.iter().zip(&shared).take(2) {
            let points = points.as_ref().expect("a forecast");
            let own = forecast(ModelKind::MstlEts, &y[..*end], Some(24), 24).unwrap();
            let mae = |p: &[f64]| {
                p.iter()
                    .zip(&truth[*end..])
                    .map(|(p, t)| (p - t).abs())
                    .sum::<f64>()
                    / 24.0
            };
            assert!(mae(points) < 0.5, "shared MAE {}", mae(points));
            assert!(mae(&own) < 0.5, "own fit MAE {}", mae(&own));
        }
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
