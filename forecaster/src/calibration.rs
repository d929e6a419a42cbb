//! What the models said before the actuals came, and the intervals that follow from it.
//!
//! Every refit records each model's forecast in a [`Ledger`]. Once the actuals arrive, the
//! ledger yields each model's errors by step ahead: the model's own rolling-origin backtest,
//! paid for by refits that happen anyway. Those errors pick the model (lowest MAE) and
//! calibrate its intervals: split-conformal, the interval at step h is the point forecast
//! plus or minus the `level` quantile of recent absolute errors at steps near h. augurs' own
//! intervals assume a model that is right; on real weather they covered 71-93% at 95%.

use crate::models::ModelKind;
use crate::series::RegularSeries;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Errors of neighbouring steps (h-2..=h+2) are pooled: adjacent steps err alike, and five
/// times the samples make a 95% quantile meaningful from a few days of origins.
const POOL_RADIUS: usize = 2;

/// A step whose pool has fewer errors than this is extrapolated instead of calibrated.
const MIN_POOL: usize = 8;

/// The share of the miss rate (1 - level) that the quantile of past errors is taken at: the
/// model served is the one whose recent errors were smallest, so its errors to come tend to
/// be larger than its recent ones (at 95%, the 96th percentile is taken). Without it, the
/// served model's 95% intervals covered 91-94% of what came next in the bench.
pub const SELECTION_ALLOWANCE: f64 = 0.8;

/// One model's forecast from one origin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PastForecast {
    /// The step of the first forecast point.
    pub origin: i64,
    pub model: ModelKind,
    pub points: Vec<f64>,
}

/// Past forecasts, ordered by origin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ledger {
    entries: Vec<PastForecast>,
}

impl Ledger {
    /// Records a forecast, replacing one of the same model from the same origin.
    pub fn record(&mut self, forecast: PastForecast) {
        self.entries
            .retain(|e| !(e.origin == forecast.origin && e.model == forecast.model));
        let at = self
            .entries
            .partition_point(|e| e.origin <= forecast.origin);
        self.entries.insert(at, forecast);
    }

    /// Forgets forecasts made before `oldest`.
    pub fn prune(&mut self, oldest: i64) {
        self.entries.retain(|e| e.origin >= oldest);
    }

    pub fn has(&self, origin: i64, model: ModelKind) -> bool {
        self.entries
            .iter()
            .any(|e| e.origin == origin && e.model == model)
    }

    /// Distinct origins in `[from, to)` with at least one actual in `actual`.
    pub fn scored_origins(&self, actual: &RegularSeries, from: i64, to: i64) -> usize {
        let mut origins: Vec<i64> = self
            .entries
            .iter()
            .filter(|e| e.origin >= from && e.origin < to && actual.at(e.origin).is_some())
            .map(|e| e.origin)
            .collect();
        origins.dedup();
        origins.len()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A model's errors (actual minus forecast) by step ahead, over forecasts made from
    /// origins in `[from, to)`, against the actuals `actual` holds, up to `steps` ahead.
    pub fn errors(
        &self,
        model: ModelKind,
        actual: &RegularSeries,
        from: i64,
        to: i64,
        steps: usize,
    ) -> StepErrors {
        let mut errors = StepErrors::new(steps);
        for entry in self.entries.iter().filter(|e| e.model == model) {
            if entry.origin < from || entry.origin >= to {
                continue;
            }
            for (h, predicted) in entry.points.iter().take(steps).enumerate() {
                let at = entry.origin + h as i64;
                if let Some(truth) = actual.at(at) {
                    errors.push(h, at, truth - predicted);
                }
            }
        }
        errors
    }

    /// The errors of a weighted sum of models' forecasts (weights summing to one), over the
    /// origins in `[from, to)` where every weighted model forecast: what their combination
    /// would have erred.
    pub fn combined_errors(
        &self,
        weights: &[(ModelKind, f64)],
        actual: &RegularSeries,
        from: i64,
        to: i64,
        steps: usize,
    ) -> StepErrors {
        let mut errors = StepErrors::new(steps);
        let in_range = |e: &&PastForecast| e.origin >= from && e.origin < to;
        let mut entries = self.entries.iter().filter(in_range).peekable();
        while let Some(first) = entries.peek().map(|e| e.origin) {
            let mut same_origin = Vec::new();
            while let Some(entry) = entries.next_if(|e| e.origin == first) {
                same_origin.push(entry);
            }
            let parts: Option<Vec<(&PastForecast, f64)>> = weights
                .iter()
                .map(|(kind, w)| {
                    same_origin
                        .iter()
                        .find(|e| e.model == *kind)
                        .map(|e| (*e, *w))
                })
                .collect();
            let Some(parts) = parts else { continue };
            let len = parts.iter().map(|(e, _)| e.points.len()).min().unwrap_or(0);
            for h in 0..len.min(steps) {
                let at = first + h as i64;
                if let Some(truth) = actual.at(at) {
                    let predicted: f64 = parts.iter().map(|(e, w)| w * e.points[h]).sum();
                    errors.push(h, at, truth - predicted);
                }
            }
        }
        errors
    }
}

/// Errors by step ahead (index 0 is one step ahead).
#[derive(Clone, Debug, Default)]
pub struct StepErrors {
    pub by_step: Vec<Vec<f64>>,
    /// The series step each error's actual was at, beside `by_step`.
    at: Vec<Vec<i64>>,
}

impl StepErrors {
    fn new(steps: usize) -> Self {
        StepErrors {
            by_step: vec![Vec::new(); steps],
            at: vec![Vec::new(); steps],
        }
    }

    fn push(&mut self, step: usize, at: i64, error: f64) {
        self.by_step[step].push(error);
        self.at[step].push(at);
    }

    pub fn count(&self) -> usize {
        self.by_step.iter().map(Vec::len).sum()
    }

    pub fn mae(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| self.by_step.iter().flatten().map(|e| e.abs()).sum::<f64>() / n as f64)
    }

    /// Turns the errors into per-step pools of sorted absolute errors, each divided by the
    /// `hour_scale` of the hour its actual was at (normalised conformal scores): a width is a
    /// pool's quantile times the scale of the hour forecast.
    pub fn calibration(&self, hour_scale: HourScale) -> Calibration {
        let steps = self.by_step.len();
        let mut pools = Vec::with_capacity(steps);
        for h in 0..steps {
            let lo = h.saturating_sub(POOL_RADIUS);
            let hi = (h + POOL_RADIUS).min(steps.saturating_sub(1));
            let mut pool: Vec<f64> = (lo..=hi)
                .flat_map(|step| self.by_step[step].iter().zip(&self.at[step]))
                .map(|(e, at)| e.abs() / hour_scale.at(*at))
                .collect();
            if pool.len() < MIN_POOL {
                break;
            }
            pool.sort_by(f64::total_cmp);
            pools.push(pool);
        }
        Calibration {
            pools,
            method: CalibrationMethod::Conformal,
            range: None,
            hour_scale,
        }
    }
}

/// Changes of neighbouring hours (h-1..=h+1 of the day) are pooled into an hour's scale.
const HOUR_RADIUS: usize = 1;

/// An hour's mean change is shrunk toward the overall mean as if this many changes of the
/// overall mean were added to its own (four weeks give each pooled hour about 80).
const HOUR_PRIOR: f64 = 24.0;

/// How much more (or less) than the average hour each hour of the day (the series step
/// modulo the season) changes from one day to the next, `|y[t] - y[t - season]|`, from 0.5 to
/// 2. Intervals are scaled by it, so that their width follows the hour of the day as well as
/// the horizon: afternoons, whose temperature depends on the day's sun and cloud, are less
/// predictable than nights. It is taken from the series rather than from the backtest's
/// errors: a dozen days of origins leave each hour too few errors, and a scale made from
/// them lowered coverage on every series of the bench (to 91% at Greensboro).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HourScale {
    /// Indexed by the step modulo the season; empty means 1 everywhere.
    scale: Vec<f64>,
}

impl HourScale {
    /// From the series' own day-to-day changes at each hour, `|y[t] - y[t - season]|`, over
    /// `values` whose first is at series step `first`.
    pub fn of_changes(values: &[f64], first: i64, season: usize) -> HourScale {
        let mut sums = vec![0.0; season];
        let mut counts = vec![0usize; season];
        for i in season..values.len() {
            let hour = (first + i as i64).rem_euclid(season as i64) as usize;
            sums[hour] += (values[i] - values[i - season]).abs();
            counts[hour] += 1;
        }
        let total: usize = counts.iter().sum();
        if total == 0 {
            return HourScale::default();
        }
        let overall = sums.iter().sum::<f64>() / total as f64;
        if overall <= 0.0 {
            return HourScale::default();
        }
        let scale = (0..season)
            .map(|hour| {
                let (mut sum, mut count) = (0.0, 0);
                for offset in 0..=2 * HOUR_RADIUS {
                    let h = (hour + season + offset - HOUR_RADIUS) % season;
                    sum += sums[h];
                    count += counts[h];
                }
                let shrunk = (sum + HOUR_PRIOR * overall) / (count as f64 + HOUR_PRIOR);
                (shrunk / overall).clamp(0.5, 2.0)
            })
            .collect();
        HourScale { scale }
    }

    /// The scales by step modulo the season (empty when they are all 1).
    pub fn by_phase(&self) -> &[f64] {
        &self.scale
    }

    /// The scale at series step `at`.
    pub fn at(&self, at: i64) -> f64 {
        if self.scale.is_empty() {
            return 1.0;
        }
        self.scale[at.rem_euclid(self.scale.len() as i64) as usize]
    }
}

/// How a forecast's intervals were calibrated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationMethod {
    /// Quantiles of the model's own recent backtest errors.
    #[default]
    Conformal,
    /// Too few past forecasts: quantiles of the series' own changes over h steps (what
    /// persistence would have erred), a wide but honest stand-in.
    SeriesChanges,
}

/// Interval half-widths by step, from sorted absolute errors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Calibration {
    pools: Vec<Vec<f64>>,
    pub method: CalibrationMethod,
    /// The plausible range of the values: bounds are clipped to it.
    range: Option<(f64, f64)>,
    /// The pools' errors are divided by their hour's scale; widths are multiplied by it.
    hour_scale: HourScale,
}

/// How far past the observed values an interval may reach, as a fraction of their range:
/// a day ahead rarely leaves the last weeks' range by more than a quarter of it, and a band
/// from -1.3 to 43.6 °C around 25 °C tells nobody anything.
pub const RANGE_MARGIN: f64 = 0.25;

impl Calibration {
    /// From the series itself: at step h, the absolute changes `|y[t+h] - y[t]|`.
    pub fn from_series_changes(values: &[f64], steps: usize) -> Calibration {
        let mut pools = Vec::new();
        for h in 1..=steps {
            if values.len() <= h + MIN_POOL {
                break;
            }
            let mut pool: Vec<f64> = values.windows(h + 1).map(|w| (w[h] - w[0]).abs()).collect();
            pool.sort_by(f64::total_cmp);
            pools.push(pool);
        }
        Calibration {
            pools,
            method: CalibrationMethod::SeriesChanges,
            range: None,
            hour_scale: HourScale::default(),
        }
    }

    /// Clips intervals to the observed values' range widened by [`RANGE_MARGIN`] of it on
    /// each side (at least one unit, so a flat series keeps a band).
    pub fn within_range_of(mut self, values: &[f64]) -> Calibration {
        let (min, max) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(*v), hi.max(*v))
            });
        if min.is_finite() && max.is_finite() {
            let margin = ((max - min) * RANGE_MARGIN).max(1.0);
            self.range = Some((min - margin, max + margin));
        }
        self
    }

    /// An interval clipped to the plausible range; an unbounded one (nothing to calibrate
    /// from) stays unbounded, and a point outside the range keeps a bound at the point.
    pub fn clip(&self, point: f64, lower: f64, upper: f64) -> (f64, f64) {
        match self.range {
            Some((min, max)) if lower.is_finite() && upper.is_finite() => {
                (lower.max(min).min(point), upper.min(max).max(point))
            }
            _ => (lower, upper),
        }
    }

    /// Steps that have their own pool; later steps are extrapolated.
    pub fn calibrated_steps(&self) -> usize {
        self.pools.len()
    }

    /// The width multipliers by series step modulo the season (for a region's hourly series,
    /// by UTC hour); empty when widths do not depend on the hour.
    pub fn hour_scales(&self) -> &[f64] {
        self.hour_scale.by_phase()
    }

    /// How many errors the pools hold (each error counted once per pool it is in).
    pub fn samples(&self) -> usize {
        self.pools.first().map_or(0, Vec::len)
    }

    /// The half-width of the interval at `step` (0 is one step ahead) of a forecast from
    /// `origin` (the series step of its first point) for `level`, or `None` when there is
    /// nothing to calibrate from. Past the calibrated steps the width grows with the square
    /// root of the horizon, as a random walk's would.
    pub fn half_width(&self, origin: i64, step: usize, level: f64) -> Option<f64> {
        let last = self.pools.len().checked_sub(1)?;
        let pool = &self.pools[step.min(last)];
        let width = conformal_quantile(pool, 1.0 - (1.0 - level) * SELECTION_ALLOWANCE)
            * self.hour_scale.at(origin + step as i64);
        if step <= last {
            Some(width)
        } else {
            Some(width * ((step + 1) as f64 / (last + 1) as f64).sqrt())
        }
    }
}

/// The split-conformal quantile: the ceil((n+1)·level)-th smallest of n sorted scores (the
/// largest when that rank is past n).
fn conformal_quantile(sorted: &[f64], level: f64) -> f64 {
    let n = sorted.len();
    let rank = ((n as f64 + 1.0) * level).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// Mean absolute error, root mean squared error and interval coverage of some forecasts.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Scores {
    pub mae: f64,
    pub rmse: f64,
    pub coverage: f64,
    pub points: usize,
}

/// Accumulates forecast-versus-actual comparisons into [`Scores`].
#[derive(Clone, Debug, Default)]
pub struct Scorer {
    abs: f64,
    sq: f64,
    covered: usize,
    n: usize,
}

impl Scorer {
    pub fn add(&mut self, actual: f64, point: f64, lower: f64, upper: f64) {
        let e = actual - point;
        self.abs += e.abs();
        self.sq += e * e;
        self.covered += usize::from(lower <= actual && actual <= upper);
        self.n += 1;
    }

    pub fn scores(&self) -> Option<Scores> {
        (self.n > 0).then(|| Scores {
            mae: self.abs / self.n as f64,
            rmse: (self.sq / self.n as f64).sqrt(),
            coverage: self.covered as f64 / self.n as f64,
            points: self.n,
        })
    }
}

/// Scores by model name, as the API shows them.
pub type ScoresByModel = BTreeMap<&'static str, Scores>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::regularize;

    fn ledger_with_errors(errors: &[f64]) -> (Ledger, RegularSeries) {
        // Actuals are all zero; the forecast from origin k is -errors[k] at every step.
        let actual = regularize((0..200).map(|i| (i, 0.0)));
        let mut ledger = Ledger::default();
        for (k, e) in errors.iter().enumerate() {
            ledger.record(PastForecast {
                origin: k as i64,
                model: ModelKind::Persistence,
                points: vec![-e; 4],
            });
        }
        (ledger, actual)
    }

    #[test]
    fn errors_come_only_from_actuals_known_and_origins_in_range() {
        let (ledger, actual) = ledger_with_errors(&[1.0, 2.0, 3.0]);
        let errors = ledger.errors(ModelKind::Persistence, &actual.until(2), 0, 10, 4);
        // Origin 0 has actuals at steps 0,1; origin 1 at step 1 only; origin 2 none.
        assert_eq!(errors.by_step[0], vec![1.0, 2.0]);
        assert_eq!(errors.by_step[1], vec![1.0]);
        assert!(errors.by_step[2].is_empty());
        assert_eq!(
            ledger
                .errors(ModelKind::Persistence, &actual, 1, 2, 4)
                .count(),
            4
        );
        assert_eq!(
            ledger.errors(ModelKind::MstlEts, &actual, 0, 10, 4).count(),
            0
        );
        assert_eq!(ledger.scored_origins(&actual.until(2), 0, 10), 2);
    }

    #[test]
    fn recording_the_same_origin_again_replaces_it_and_prune_forgets_old_ones() {
        let (mut ledger, _) = ledger_with_errors(&[1.0, 2.0, 3.0]);
        ledger.record(PastForecast {
            origin: 1,
            model: ModelKind::Persistence,
            points: vec![0.0],
        });
        assert_eq!(ledger.len(), 3);
        ledger.prune(2);
        assert_eq!(ledger.len(), 1);
        assert!(ledger.has(2, ModelKind::Persistence));
    }

    #[test]
    fn the_conformal_width_is_the_level_quantile_of_pooled_errors() {
        let errors: Vec<f64> = (1..=19).map(f64::from).collect();
        let (ledger, actual) = ledger_with_errors(&errors);
        let calibration = ledger
            .errors(ModelKind::Persistence, &actual, 0, 100, 4)
            .calibration(HourScale::default());
        assert_eq!(calibration.calibrated_steps(), 4);
        // 19 origins × 4 steps pooled = 76 errors, each value 4 times. With the selection
        // allowance, 0.9 is taken at 0.92: rank ceil(77·0.92) = 71, the value 18; 0.5 at 0.6:
        // rank ceil(77·0.6) = 47, the value 12.
        assert_eq!(calibration.half_width(0, 0, 0.9), Some(18.0));
        assert_eq!(calibration.half_width(0, 0, 0.5), Some(12.0));
        // Past the calibrated steps, widths grow like a random walk's.
        let w = calibration.half_width(0, 15, 0.5).unwrap();
        assert!((w - 12.0 * 2.0).abs() < 1e-9, "{w}");
    }

    #[test]
    fn a_combination_errs_by_its_weighted_forecasts_at_origins_where_all_forecast() {
        let actual = regularize((0..10).map(|i| (i, 10.0)));
        let mut ledger = Ledger::default();
        for (origin, model, value) in [
            (0, ModelKind::MstlEts, 8.0),
            (0, ModelKind::SeasonalNaive, 11.0),
            (1, ModelKind::MstlEts, 9.0),
        ] {
            ledger.record(PastForecast {
                origin,
                model,
                points: vec![value; 2],
            });
        }
        let weights = [(ModelKind::MstlEts, 0.25), (ModelKind::SeasonalNaive, 0.75)];
        let errors = ledger.combined_errors(&weights, &actual, 0, 10, 2);
        // Origin 0: 10 - (0.25·8 + 0.75·11) = -0.25 at both steps; origin 1 lacks naive.
        assert_eq!(errors.by_step, vec![vec![-0.25], vec![-0.25]]);
    }

    #[test]
    fn intervals_are_clipped_to_the_observed_range_with_a_margin() {
        let calibration = Calibration::default().within_range_of(&[20.0, 24.0, 28.0]);
        // Range 8, margin 2: plausible from 18 to 30.
        assert_eq!(calibration.clip(25.0, -1.3, 43.6), (18.0, 30.0));
        assert_eq!(calibration.clip(25.0, 23.0, 27.0), (23.0, 27.0));
        assert_eq!(
            calibration.clip(31.0, 29.0, 33.0),
            (29.0, 31.0),
            "the point stays inside"
        );
        let unbounded = calibration.clip(25.0, f64::NEG_INFINITY, f64::INFINITY);
        assert_eq!(unbounded, (f64::NEG_INFINITY, f64::INFINITY));
    }

    #[test]
    fn too_few_errors_calibrate_nothing() {
        let (ledger, actual) = ledger_with_errors(&[1.0]);
        let calibration = ledger
            .errors(ModelKind::Persistence, &actual, 0, 100, 4)
            .calibration(HourScale::default());
        assert_eq!(calibration.half_width(0, 0, 0.95), None);
        let fallback = Calibration::from_series_changes(
            &[0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
            2,
        );
        assert_eq!(fallback.half_width(0, 0, 0.95), Some(1.0));
        assert_eq!(fallback.half_width(0, 1, 0.95), Some(0.0));
    }

    #[test]
    fn widths_follow_the_hour_of_the_day_the_series_changes_most_at() {
        // Two weeks in which hour 14 jumps by ±4 from one day to the next and the other
        // hours by ±1.
        let values: Vec<f64> = (0..24 * 14)
            .map(|i: usize| {
                let sign = if (i / 24).is_multiple_of(2) {
                    1.0
                } else {
                    -1.0
                };
                sign * if i % 24 == 14 { 2.0 } else { 0.5 }
            })
            .collect();
        let scale = HourScale::of_changes(&values, 0, 24);
        assert!(scale.at(14) > 1.5 * scale.at(2), "{scale:?}");
        assert_eq!(scale.at(14), scale.at(14 + 24 * 5), "by hour of the day");
        assert!(scale.at(2) < 1.0 && scale.at(2) >= 0.5);
        // The series' first value at step 10: its hour 14 is at index 4.
        let shifted = HourScale::of_changes(&values[10..], 10, 24);
        assert!((shifted.at(14) - scale.at(14)).abs() < 0.05, "{shifted:?}");

        // The same errors at every hour: a forecast's width at hour 14 is wider by the
        // scale, and errors measured at a wide hour count for less.
        let (ledger, actual) = ledger_with_errors(&[1.0; 30]);
        let calibration = ledger
            .errors(ModelKind::Persistence, &actual, 0, 100, 4)
            .calibration(scale.clone());
        let at = |origin: i64| calibration.half_width(origin, 0, 0.9).unwrap();
        assert!((at(14) / at(2) - scale.at(14) / scale.at(2)).abs() < 1e-9);
        assert_eq!(
            Calibration::default().half_width(14, 0, 0.9),
            None,
            "nothing to scale"
        );
    }

    #[test]
    fn scorer_counts_coverage() {
        let mut scorer = Scorer::default();
        scorer.add(1.0, 0.0, -1.0, 1.0);
        scorer.add(3.0, 0.0, -1.0, 1.0);
        let scores = scorer.scores().unwrap();
        assert_eq!(scores.mae, 2.0);
        assert_eq!(scores.coverage, 0.5);
        assert!((scores.rmse - 5f64.sqrt()).abs() < 1e-12);
    }
}
