//! One refit: backfill the ledger if it is thin, forecast with every model, record, score,
//! choose and calibrate. The same procedure serves the scheduled refits, `/predict` and the
//! backtests, so what the backtests measure is what the service does.

use crate::calibration::{
    Calibration, HourScale, Ledger, PastForecast, Scorer, ScoresByModel, StepErrors,
};
use crate::models::{self, ModelError, ModelKind};
use crate::series::RegularSeries;
use std::collections::BTreeMap;

/// How a series is modelled.
#[derive(Clone, Debug, PartialEq)]
pub struct Setup {
    /// Steps per daily season (24 for hourly data); `None` for data too coarse for one.
    pub season: Option<usize>,
    /// The most recent steps each model is fitted on.
    pub train_len: usize,
    /// Steps ahead whose errors are recorded and calibrated.
    pub calibration_horizon: usize,
    /// Origins this many steps back (and newer) score and calibrate the models.
    pub calibration_window: i64,
    /// When the ledger holds fewer scored origins than half this, a backtest from this many
    /// past origins fills it (at start-up, and for stateless requests).
    pub backfill_origins: usize,
    /// Steps between backfilled origins.
    pub backfill_spacing: usize,
}

impl Setup {
    /// Hourly data as the bus history holds it. A region's start-up backfill takes past
    /// origins 12 h apart, as `/predict` does, as many as the calibration window holds (at
    /// most `/predict`'s 24); the refits that follow add one origin an hour.
    pub fn hourly(train_len: usize, calibration_horizon: usize, calibration_days: usize) -> Self {
        let spacing = 12;
        let window = calibration_days * 24;
        Setup {
            season: Some(24),
            train_len,
            calibration_horizon,
            calibration_window: window as i64,
            backfill_origins: (window.saturating_sub(calibration_horizon) / spacing + 1)
                .min(crate::predict::PREDICT_BACKFILL_ORIGINS),
            backfill_spacing: spacing,
        }
    }

    /// The fewest points a refit needs: enough for the default model.
    pub fn min_points(&self) -> usize {
        models::min_points(ModelKind::DEFAULT, self.season)
    }
}

/// One model's forecast from the latest origin, with its calibration.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelForecast {
    /// The series step of the first point.
    pub origin: i64,
    pub points: Vec<f64>,
    pub calibration: Calibration,
    /// Mean absolute error over the ledger's scored forecasts, if there are any.
    pub backtest_mae: Option<f64>,
}

impl ModelForecast {
    /// The interval at `step` for `level`.
    pub fn interval(&self, step: usize, level: f64) -> (f64, f64) {
        let point = self.points[step];
        let width = self
            .calibration
            .half_width(self.origin, step, level)
            .unwrap_or(f64::INFINITY);
        self.calibration.clip(point, point - width, point + width)
    }
}

/// Every model's forecast from one origin, and the one chosen.
#[derive(Clone, Debug, PartialEq)]
pub struct Refit {
    /// The step of the first forecast point.
    pub origin: i64,
    pub chosen: ModelKind,
    pub models: BTreeMap<ModelKind, ModelForecast>,
    /// Models that could not forecast, and why.
    pub failures: BTreeMap<ModelKind, ModelError>,
}

impl Refit {
    pub fn chosen(&self) -> &ModelForecast {
        &self.models[&self.chosen]
    }

    /// Backtest MAE by model name, for models that have one.
    pub fn backtest_mae(&self) -> BTreeMap<&'static str, f64> {
        self.models
            .iter()
            .filter_map(|(kind, m)| m.backtest_mae.map(|mae| (kind.name(), mae)))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("too few points: {got} after gaps are handled, at least {needed} needed")]
    TooShort { needed: usize, got: usize },
    #[error("no model could forecast: {0}")]
    NoModel(String),
}

/// Refits on `series` (everything known up to now), recording into `ledger`, and forecasts
/// `horizon` steps.
pub fn refit(
    series: &RegularSeries,
    ledger: &mut Ledger,
    setup: &Setup,
    horizon: usize,
) -> Result<Refit, EngineError> {
    let needed = setup.min_points();
    if series.len() < needed {
        return Err(EngineError::TooShort {
            needed,
            got: series.len(),
        });
    }
    let origin = series.end();
    let window_start = origin - setup.calibration_window;
    let train = training_window(series, origin, setup.train_len);
    let steps = horizon.max(setup.calibration_horizon);
    let fit_all =
        || ModelKind::ALL.map(|kind| (kind, models::forecast(kind, train, setup.season, steps)));
    // The backfill and today's fits are independent: side by side, a stateless request's
    // wall time is their larger share rather than their sum.
    let fitted = if ledger.scored_origins(series, window_start, origin) * 2 < setup.backfill_origins
    {
        rayon::join(|| backfill(series, ledger, setup), fit_all).1
    } else {
        fit_all()
    };

    let mut forecasts = BTreeMap::new();
    let mut failures = BTreeMap::new();
    for (kind, fit) in fitted {
        match fit {
            Ok(points) => {
                ledger.record(PastForecast {
                    origin,
                    model: kind,
                    points: points[..setup.calibration_horizon].to_vec(),
                });
                forecasts.insert(kind, points);
            }
            Err(err) => {
                failures.insert(kind, err);
            }
        }
    }
    ledger.prune(window_start);

    let past = PastWindow {
        ledger,
        series,
        window_start,
        origin,
        steps: setup.calibration_horizon,
    };
    // One scale for every model: it comes from the training window, not from a model.
    let hour_scale = hour_scale(train, origin, setup);
    let mut models = BTreeMap::new();
    for (kind, mut points) in forecasts {
        let errors = past.errors(kind);
        let mut calibration = errors.calibration(hour_scale.clone());
        if calibration.calibrated_steps() == 0 {
            calibration = Calibration::from_series_changes(train, setup.calibration_horizon);
        }
        points.truncate(horizon);
        models.insert(
            kind,
            ModelForecast {
                origin,
                points,
                calibration: calibration.within_range_of(train),
                backtest_mae: errors.mae(),
            },
        );
    }
    if let Some(combined) = combine(&models, &past, hour_scale, train) {
        models.insert(ModelKind::Combined, combined);
    }
    let chosen = choose(&models).ok_or_else(|| {
        EngineError::NoModel(
            failures
                .values()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    Ok(Refit {
        origin,
        chosen,
        models,
        failures,
    })
}

/// The scored past of a refit: the ledger's forecasts from origins in `[window_start, origin)`
/// against the actuals of `series`, up to `steps` ahead.
struct PastWindow<'a> {
    ledger: &'a Ledger,
    series: &'a RegularSeries,
    window_start: i64,
    origin: i64,
    steps: usize,
}

impl PastWindow<'_> {
    fn errors(&self, kind: ModelKind) -> StepErrors {
        self.ledger.errors(
            kind,
            self.series,
            self.window_start,
            self.origin,
            self.steps,
        )
    }

    fn combined_errors(&self, weights: &[(ModelKind, f64)]) -> StepErrors {
        self.ledger.combined_errors(
            weights,
            self.series,
            self.window_start,
            self.origin,
            self.steps,
        )
    }
}

/// [`ModelKind::Combined`] from the forecasts of [`ModelKind::COMBINED`], each weighted by
/// the inverse of its backtest MAE, scored on the same past origins; `None` when fewer than
/// two of them have a forecast and a backtest.
fn combine(
    models: &BTreeMap<ModelKind, ModelForecast>,
    past: &PastWindow,
    hour_scale: HourScale,
    train: &[f64],
) -> Option<ModelForecast> {
    // Whichever of them forecast and have a backtest (the regression needs ten days of
    // history): two make a combination.
    let parts: Vec<(ModelKind, &ModelForecast, f64)> = ModelKind::COMBINED
        .iter()
        .filter_map(|kind| {
            let model = models.get(kind)?;
            // A perfect backtest would take all the weight: the floor keeps the division finite.
            Some((*kind, model, 1.0 / model.backtest_mae?.max(1e-9)))
        })
        .collect();
    if parts.len() < 2 {
        return None;
    }
    let total: f64 = parts.iter().map(|(_, _, w)| w).sum();
    let weights: Vec<(ModelKind, f64)> = parts
        .iter()
        .map(|(kind, _, w)| (*kind, w / total))
        .collect();
    let len = parts.iter().map(|(_, m, _)| m.points.len()).min()?;
    let points = (0..len)
        .map(|h| {
            parts
                .iter()
                .map(|(_, m, w)| w / total * m.points[h])
                .sum::<f64>()
        })
        .collect();
    let errors = past.combined_errors(&weights);
    let calibration = errors.calibration(hour_scale);
    if calibration.calibrated_steps() == 0 {
        return None;
    }
    Some(ModelForecast {
        origin: past.origin,
        points,
        calibration: calibration.within_range_of(train),
        backtest_mae: errors.mae(),
    })
}

/// The model with the lowest backtest MAE (a tie goes to the default); the default when none
/// has been scored yet. No model gets an edge: serving a model whose own backtest erred more
/// than another's is what the region page showed as wrong (issue 18).
fn choose(models: &BTreeMap<ModelKind, ModelForecast>) -> Option<ModelKind> {
    let best_scored = models
        .iter()
        .filter_map(|(kind, m)| {
            let rank = u8::from(*kind != ModelKind::DEFAULT);
            m.backtest_mae.map(|mae| (mae, rank, *kind))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
        .map(|(_, _, kind)| kind);
    best_scored.or_else(|| {
        [
            ModelKind::DEFAULT,
            ModelKind::SeasonalNaive,
            ModelKind::Persistence,
        ]
        .into_iter()
        .find(|k| models.contains_key(k))
    })
}

/// How much each hour of the day varies in `train` (the steps before `origin`), to scale the
/// intervals by: see [`HourScale`].
fn hour_scale(train: &[f64], origin: i64, setup: &Setup) -> HourScale {
    setup
        .season
        .map(|p| HourScale::of_changes(train, origin - train.len() as i64, p))
        .unwrap_or_default()
}

fn training_window(series: &RegularSeries, end: i64, len: usize) -> &[f64] {
    let end = (end - series.start).clamp(0, series.len() as i64) as usize;
    &series.values[end.saturating_sub(len)..end]
}

/// Forecasts from past origins (the newest a whole calibration horizon back, so its actuals
/// are all in), as the models would have made them then.
///
/// A stateless `/predict` backfills 12 origins per request, and a start-up every region: the
/// fits of different origins run in parallel on rayon's pool (one thread per core).
fn backfill(series: &RegularSeries, ledger: &mut Ledger, setup: &Setup) {
    let newest = series.end() - setup.calibration_horizon as i64;
    let missing: Vec<(i64, ModelKind)> = (0..setup.backfill_origins)
        .map(|k| newest - (k * setup.backfill_spacing) as i64)
        .take_while(|origin| {
            training_window(series, *origin, setup.train_len).len() >= setup.min_points()
        })
        .flat_map(|origin| ModelKind::ALL.map(|kind| (origin, kind)))
        .filter(|(origin, kind)| !ledger.has(*origin, *kind))
        .collect();
    use rayon::prelude::*;
    let forecasts: Vec<PastForecast> = missing
        .into_par_iter()
        .filter_map(|(origin, model)| {
            let train = training_window(series, origin, setup.train_len);
            let points =
                models::forecast(model, train, setup.season, setup.calibration_horizon).ok()?;
            Some(PastForecast {
                origin,
                model,
                points,
            })
        })
        .collect();
    for forecast in forecasts {
        ledger.record(forecast);
    }
}

/// A rolling-origin backtest's scores, per model and for the model the service would have
/// chosen at each origin.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Backtest {
    pub origins: usize,
    pub by_model: ScoresByModel,
    /// Scores of whichever model was chosen at each origin.
    pub chosen: Option<crate::calibration::Scores>,
}

/// Runs the service's own procedure at each origin (ascending steps of `series`), seeing only
/// what was known then, and scores `horizon` steps ahead at `level`. The ledger carries over
/// from one origin to the next, as it does between scheduled refits.
pub fn backtest(
    series: &RegularSeries,
    setup: &Setup,
    origins: &[i64],
    horizon: usize,
    level: f64,
) -> Backtest {
    let mut ledger = Ledger::default();
    let mut scorers: BTreeMap<ModelKind, Scorer> = BTreeMap::new();
    let mut chosen = Scorer::default();
    let mut scored = 0;
    for &origin in origins {
        let known = series.until(origin);
        let Ok(refit) = refit(&known, &mut ledger, setup, horizon) else {
            continue;
        };
        scored += 1;
        for (kind, model) in &refit.models {
            for step in 0..horizon {
                let Some(actual) = series.at(origin + step as i64) else {
                    break;
                };
                let (lower, upper) = model.interval(step, level);
                scorers
                    .entry(*kind)
                    .or_default()
                    .add(actual, model.points[step], lower, upper);
                if *kind == refit.chosen {
                    chosen.add(actual, model.points[step], lower, upper);
                }
            }
        }
    }
    Backtest {
        origins: scored,
        by_model: scorers
            .iter()
            .filter_map(|(kind, s)| s.scores().map(|scores| (kind.name(), scores)))
            .collect(),
        chosen: chosen.scores(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::regularize;

    fn cycle(hours: i64) -> RegularSeries {
        regularize((0..hours).map(|i| {
            let noise = ((i * 7919) % 13) as f64 / 13.0 - 0.5;
            (
                i,
                10.0 + 4.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin() + noise,
            )
        }))
    }

    #[test]
    fn a_first_refit_backfills_then_later_ones_reuse_the_ledger() {
        let series = cycle(24 * 10);
        let setup = Setup::hourly(24 * 7, 24, 7);
        let mut ledger = Ledger::default();
        let refit1 = refit(&series, &mut ledger, &setup, 48).unwrap();
        assert_eq!(refit1.origin, 240);
        assert_eq!(refit1.chosen().points.len(), 48);
        // 13 backfilled origins 12 h apart (what 7 days of calibration hold before the last
        // horizon) plus the current one; three models each, as the regression needs ten days.
        assert_eq!(ledger.len(), 14 * 3);
        assert!(refit1.models.values().all(|m| m.backtest_mae.is_some()));
        assert!(!refit1.models.contains_key(&ModelKind::Regression));
        assert!(
            refit1.models.contains_key(&ModelKind::Combined),
            "MSTL + ETS and seasonal naive combine without the regression"
        );
        let mstl = &refit1.models[&ModelKind::MstlEts];
        assert!(mstl.calibration.calibrated_steps() == 24);
        let (lo, hi) = mstl.interval(0, 0.95);
        assert!(lo < mstl.points[0] && mstl.points[0] < hi);
        let (lo80, hi80) = mstl.interval(0, 0.8);
        assert!(hi80 - lo80 <= hi - lo, "a lower level is no wider");

        let refit2 = refit(&cycle(24 * 10 + 1), &mut ledger, &setup, 24).unwrap();
        assert_eq!(refit2.origin, 241);
        assert_eq!(
            ledger.len(),
            14 * 3,
            "no second backfill: the new origin added, the oldest out of the window pruned"
        );
        assert!(!ledger.has(240 - 24 - 12 * 12, ModelKind::MstlEts));
        assert!(ledger.has(241, ModelKind::MstlEts));
    }

    #[test]
    fn the_clean_cycle_is_won_by_a_seasonal_model() {
        let series = cycle(24 * 10);
        let refit = refit(
            &series,
            &mut Ledger::default(),
            &Setup::hourly(24 * 7, 24, 7),
            24,
        )
        .unwrap();
        assert_ne!(
            refit.chosen,
            ModelKind::Persistence,
            "{:?}",
            refit.backtest_mae()
        );
    }

    #[test]
    fn the_lowest_backtest_mae_serves_and_the_default_has_no_edge() {
        let model = |mae: Option<f64>| ModelForecast {
            origin: 0,
            points: vec![0.0],
            calibration: Calibration::default(),
            backtest_mae: mae,
        };
        // The region page of issue 18: MSTL+ETS 1.05 was served over seasonal naive 0.95.
        let mut models = BTreeMap::from([
            (ModelKind::MstlEts, model(Some(1.05))),
            (ModelKind::SeasonalNaive, model(Some(0.95))),
            (ModelKind::Persistence, model(Some(1.4))),
        ]);
        assert_eq!(choose(&models), Some(ModelKind::SeasonalNaive));
        models.insert(ModelKind::Combined, model(Some(0.9)));
        assert_eq!(choose(&models), Some(ModelKind::Combined));
        models.insert(ModelKind::MstlEts, model(Some(0.9)));
        assert_eq!(
            choose(&models),
            Some(ModelKind::MstlEts),
            "a tie goes to the default"
        );
        let unscored = BTreeMap::from([
            (ModelKind::SeasonalNaive, model(None)),
            (ModelKind::MstlEts, model(None)),
        ]);
        assert_eq!(choose(&unscored), Some(ModelKind::MstlEts));
    }

    #[test]
    fn too_short_a_series_is_an_error() {
        let err = refit(
            &cycle(30),
            &mut Ledger::default(),
            &Setup::hourly(672, 24, 7),
            24,
        )
        .unwrap_err();
        assert_eq!(
            err,
            EngineError::TooShort {
                needed: 49,
                got: 30
            }
        );
    }

    #[test]
    fn backtests_see_only_the_past() {
        let series = cycle(24 * 12);
        let setup = Setup::hourly(24 * 7, 24, 7);
        let origins: Vec<i64> = (0..4).map(|k| 24 * 9 + k * 12).collect();
        let report = backtest(&series, &setup, &origins, 24, 0.95);
        assert_eq!(report.origins, 4);
        let naive = &report.by_model["seasonal_naive"];
        assert_eq!(naive.points, 4 * 24);
        assert!(naive.mae < 1.0, "{naive:?}");
        assert!(report.chosen.is_some());
    }
}
