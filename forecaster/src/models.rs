//! The models: MSTL + ETS level (the default), a regression per step ahead, two baselines
//! that are always computed beside them (persistence and seasonal naive), and the combination
//! of the default, the regression and seasonal naive, weighted by their backtest errors (made
//! by the engine, which holds the errors).

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
    /// MSTL decomposition with the daily season, simple exponential smoothing (ETS(A,N,N)) of
    /// the deseasonalised rest.
    MstlEts,
    /// The value at the same step one season earlier (same hour yesterday).
    SeasonalNaive,
    /// The last value, carried forward.
    Persistence,
    /// Per step ahead, a least-squares blend of the last value, the same hour yesterday and
    /// the mean of that hour over the last week (the blend each step ahead learns from the
    /// window): how fast today's departure from the usual day fades, learned rather than
    /// assumed.
    Regression,
    /// MSTL + ETS, the regression and seasonal naive averaged, each weighted by the inverse
    /// of its own backtest MAE: combining forecasts whose errors differ is the most reliable
    /// gain in the forecasting literature (the M4 competition's best entries combine). Served
    /// only when its own backtest MAE is the lowest.
    Combined,
}

impl ModelKind {
    /// The models fitted on a series ([`forecast`] makes their points).
    pub const ALL: [ModelKind; 4] = [
        ModelKind::MstlEts,
        ModelKind::SeasonalNaive,
        ModelKind::Persistence,
        ModelKind::Regression,
    ];

    /// What [`ModelKind::Combined`] combines. Adding persistence made the combination worse
    /// on every real series of the bench (MAE 1.075 against 1.062 °C at Sand Point, 2.365
    /// against 2.263 at Greensboro, 1.545 against 1.443 at Miami).
    pub const COMBINED: [ModelKind; 3] = [
        ModelKind::MstlEts,
        ModelKind::SeasonalNaive,
        ModelKind::Regression,
    ];

    /// The model used when nothing says another one is better.
    pub const DEFAULT: ModelKind = ModelKind::MstlEts;

    pub fn name(&self) -> &'static str {
        match self {
            ModelKind::MstlEts => "mstl_ets",
            ModelKind::SeasonalNaive => "seasonal_naive",
            ModelKind::Persistence => "persistence",
            ModelKind::Regression => "regression",
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
        // The week of profile, then two days of origins to learn each step's blend from.
        (ModelKind::Regression, Some(p)) => (PROFILE_DAYS + 3) * p,
        (ModelKind::Regression, None) => usize::MAX,
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
            ModelKind::Regression => regression(y, season.unwrap_or(1), horizon)?,
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
    let y = &y[y.len().saturating_sub(DECOMPOSED_SEASONS * p)..];
    let values: Vec<f32> = y.iter().map(|v| *v as f32).collect();
    let (seasonal, deseasonalised) = decompose(&values, p).map_err(fit_error)?;
    let recent = &deseasonalised[deseasonalised.len().saturating_sub(LEVEL_WINDOW)..];
    let trend = fit_level(recent)
        .map_err(fit_error)?
        .predict(horizon, None)
        .map_err(|e| fit_error(e.to_string()))?;
    Ok(with_last_season(&trend.point, &seasonal, p))
}

/// Days of the hour's mean profile in [`ModelKind::Regression`].
const PROFILE_DAYS: usize = 7;

/// The inputs of [`ModelKind::Regression`] at origin `o` (the first unknown index) for step
/// `h`: 1, the last value, the mean of the last value's hour over the days before it, the
/// same hour one season back, and that hour's mean over the last [`PROFILE_DAYS`] seasons.
/// `profile[i]` is the mean of `y[i - k·p]` for k in 1..=PROFILE_DAYS.
fn regression_inputs(y: &[f64], profile: &[f64], p: usize, o: usize, h: usize) -> [f64; 5] {
    let same_hour = o + h % p;
    [
        1.0,
        y[o - 1],
        profile[o - 1],
        y[same_hour - p],
        profile[same_hour],
    ]
}

fn regression(y: &[f64], p: usize, horizon: usize) -> Result<Vec<f64>, ModelError> {
    use nalgebra::{Matrix5, Vector5};
    let n = y.len();
    let first_profiled = PROFILE_DAYS * p;
    // profile[i] for i in first_profiled..=n (index n is the first step ahead's hour).
    let mut profile = vec![f64::NAN; n + p];
    for (i, slot) in profile.iter_mut().enumerate().skip(first_profiled) {
        *slot = (1..=PROFILE_DAYS).map(|k| y[i - k * p]).sum::<f64>() / PROFILE_DAYS as f64;
    }
    let too_short = || ModelError::TooShort {
        model: ModelKind::Regression.name(),
        needed: min_points(ModelKind::Regression, Some(p)),
        got: n,
    };
    // Training origins o need profile[o - 1], and their actual y[o + h] known.
    let first_origin = first_profiled + 1;
    let mut coefficients = Vec::with_capacity(p.min(horizon));
    for h in 0..p.min(horizon) {
        let mut gram = Matrix5::<f64>::zeros();
        let mut moment = Vector5::<f64>::zeros();
        let mut samples = 0;
        for o in first_origin..n.saturating_sub(h) {
            let x = Vector5::from(regression_inputs(y, &profile, p, o, h));
            gram += x * x.transpose();
            moment += x * y[o + h];
            samples += 1;
        }
        if samples < 2 * p {
            return Err(too_short());
        }
        // The inputs move together (yesterday's hour and the week's mean of it): a ridge of
        // a millionth of the diagonal keeps the system solvable without biasing the fit.
        let ridge = gram.trace() * 1e-6 / 5.0;
        gram += Matrix5::identity() * ridge;
        let beta = gram.cholesky().ok_or_else(|| ModelError::Fit {
            model: ModelKind::Regression.name(),
            reason: "the inputs' Gram matrix is not positive definite".into(),
        })?;
        coefficients.push(beta.solve(&moment));
    }
    Ok((0..horizon)
        .map(|h| {
            let x = Vector5::from(regression_inputs(y, &profile, p, n, h));
            coefficients[h % p].dot(&x)
        })
        .collect())
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

/// The most recent seasons (days) MSTL decomposes: in the bench, two weeks gave the same
/// forecasts as four (MAE within 0.001 °C on each series) for half the decomposition's time.
const DECOMPOSED_SEASONS: usize = 14;

/// The most recent deseasonalised steps the level is fitted on. The level of hourly
/// temperatures follows the last hours (its smoothing weight is high), so older steps hardly
/// move it: in the bench, fitting on the last week instead of four gave the same forecasts
/// (MAE within 0.005 °C on each series) in 0.6 times the time of a request.
const LEVEL_WINDOW: usize = 168;

/// The ETS model of the deseasonalised series: simple exponential smoothing, ETS(A,N,N).
///
/// AutoETS would also try trends, and multiplicative errors on positive data. In the bench a
/// damped additive trend chosen by AICc beside it made the forecasts worse on both real series
/// (MAE 1.106 against 1.092 °C at Sand Point, 2.525 against 2.410 at Greensboro: a day's
/// drift extrapolated is mostly noise) and cost ten times the fit. Multiplicative errors suit
/// only positive data of a growing scale, which temperatures are not; and augurs' ETS has no
/// usable 24-step season, so the season comes from MSTL.
fn fit_level(deseasonalised: &[f64]) -> Result<ets::Model, String> {
    let simple = ModelType {
        error: ErrorComponent::Additive,
        trend: TrendComponent::None,
        season: SeasonalComponent::None,
    };
    Unfit::new(simple)
        .fit(deseasonalised)
        .map_err(|e| e.to_string())
        .and_then(|model| {
            if model.aicc().is_nan() {
                Err("the level of the deseasonalised series could not be fitted".to_string())
            } else {
                Ok(model)
            }
        })
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
    fn regression_learns_how_a_departure_fades_and_follows_the_cycle() {
        // A daily cycle plus a departure that decays by half each hour from random shocks:
        // the regression should forecast the cycle, and the first step should keep about
        // half of the last departure.
        let mut departure = 0.0;
        // The last value is a shock's: the first step must keep half of it.
        let y: Vec<f64> = (0..37 * 18 + 1)
            .map(|i| {
                let shock = if i % 37 == 0 { 3.0 } else { 0.0 };
                departure = departure * 0.5 + shock;
                10.0 + 5.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin() + departure
            })
            .collect();
        let points = forecast(ModelKind::Regression, &y, Some(24), 48).unwrap();
        let cycle = |i: usize| 10.0 + 5.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin();
        let n = y.len();
        let expected_first = cycle(n) + 0.5 * (y[n - 1] - cycle(n - 1));
        assert!(
            (points[0] - expected_first).abs() < 0.2,
            "{} vs {expected_first}",
            points[0]
        );
        // Far ahead only the cycle and the departures' mean (3 / 37 · 2) are predictable;
        // yesterday's shocks leave some trace (persistence would err by about 3 here).
        let mean_departure = 3.0 / 37.0 * 2.0;
        let far_mae = (6..48)
            .map(|h| (points[h] - cycle(n + h) - mean_departure).abs())
            .sum::<f64>()
            / 42.0;
        assert!(far_mae < 0.5, "MAE {far_mae} against the cycle");
        assert_eq!(
            forecast(ModelKind::Regression, &y[..200], Some(24), 24).unwrap_err(),
            ModelError::TooShort {
                model: "regression",
                needed: 240,
                got: 200
            }
        );
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
