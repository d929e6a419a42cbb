//! Accuracy on real weather: the rolling-origin protocol of the issue on the Sand Point
//! (Alaska) TMY3 hourly series, and through `/predict`'s path on Greensboro (North Carolina),
//! held out from tuning: 28 days of history, 24 hours ahead, 30 origins evenly spaced.

use windsock_forecaster::calibration::{Scorer, Scores};
use windsock_forecaster::engine::{backtest, Setup};
use windsock_forecaster::models::ModelKind;
use windsock_forecaster::predict;
use windsock_forecaster::series::{hour_of, regularize, RegularSeries};

mod common;

fn sand_point() -> Option<RegularSeries> {
    let points = common::sand_point()?;
    Some(regularize(
        points
            .into_iter()
            .map(|(at, temperature)| (hour_of(at), temperature)),
    ))
}

#[test]
fn the_default_model_beats_seasonal_naive_and_its_95_percent_intervals_cover() {
    let Some(series) = sand_point() else { return };
    assert_eq!(series.len(), 8760);
    let setup = Setup::hourly(28 * 24, 24, 7);
    // Each origin needs 28 days to train on, plus the few days before that its calibration
    // backtest starts from; the last needs 24 hours of actuals after it.
    let first = series.start + 28 * 24;
    let last = series.end() - 24;
    let origins: Vec<i64> = (0..30).map(|k| first + (last - first) * k / 29).collect();
    let report = backtest(&series, &setup, &origins, 24, 0.95);
    for (model, scores) in &report.by_model {
        eprintln!(
            "{model:>15}: MAE {:.3} °C  RMSE {:.3}  95% coverage {:.1}%",
            scores.mae,
            scores.rmse,
            scores.coverage * 100.0
        );
    }
    eprintln!("{:>15}: {:?}", "chosen", report.chosen);
    assert_eq!(report.origins, 30);
    let default = &report.by_model["mstl_ets"];
    let naive = &report.by_model["seasonal_naive"];
    assert_eq!(default.points, 30 * 24);
    assert!(
        default.mae < naive.mae,
        "MSTL+ETS MAE {:.3} vs seasonal naive {:.3}",
        default.mae,
        naive.mae
    );
    let chosen = report.chosen.expect("scores of the model in use");
    assert_beats_naive_and_covers("sand point, the model in use", &chosen, naive, 0.85..=0.99);
}

/// The served forecasts' MAE is below seasonal naive's, and their 95% intervals covered a
/// share of the actuals within `coverage`.
fn assert_beats_naive_and_covers(
    what: &str,
    served: &Scores,
    naive: &Scores,
    coverage: std::ops::RangeInclusive<f64>,
) {
    assert!(
        served.mae < naive.mae,
        "{what}: MAE {:.3} vs seasonal naive {:.3}",
        served.mae,
        naive.mae
    );
    assert!(
        coverage.contains(&served.coverage),
        "{what}: 95% intervals covered {:.1}% of actuals",
        served.coverage * 100.0
    );
}

const GREENSBORO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/data/greensboro-nc-tmy3-hourly.csv"
);

/// Miami FL, tropical with a small daily range (added after the models were chosen).
const MIAMI: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/data/miami-fl-tmy2-hourly.csv"
);

/// Greensboro NC, a humid subtropical climate with a wide daily range (in the repository, so
/// always there).
fn greensboro() -> Vec<(chrono::DateTime<chrono::Utc>, f64)> {
    read_series(GREENSBORO)
}

fn read_series(path: &str) -> Vec<(chrono::DateTime<chrono::Utc>, f64)> {
    std::fs::read_to_string(path)
        .expect("the series is in the repository")
        .lines()
        .skip(1)
        .map(|line| {
            let (ts, temp) = line.split_once(',').unwrap();
            (ts.parse().unwrap(), temp.parse().unwrap())
        })
        .collect()
}

/// `/predict`'s forecast of 672 hourly rows ending before `origin`.
fn predict_at(
    points: &[(chrono::DateTime<chrono::Utc>, f64)],
    origin: usize,
) -> std::sync::Arc<windsock_forecaster::engine::Refit> {
    let rows = predict::Rows {
        points: points[origin - 672..origin].to_vec(),
        naive_dates: true,
    };
    predict::forecast(&predict::to_grid(&rows).unwrap(), 24).unwrap()
}

fn origins(len: usize) -> Vec<usize> {
    (0..30).map(|k| 672 + (len - 24 - 672) * k / 29).collect()
}

#[test]
fn the_served_model_never_has_a_worse_backtest_than_another() {
    let mut sets = vec![greensboro()];
    sets.extend(common::sand_point());
    let mut combined_served = 0;
    for points in &sets {
        for origin in origins(points.len()).into_iter().step_by(3) {
            let refit = predict_at(points, origin);
            let served = refit.chosen().backtest_mae.expect("a scored model");
            for (kind, model) in &refit.models {
                let mae = model.backtest_mae.expect("every model scored");
                assert!(
                    served <= mae,
                    "{:?} (backtest MAE {served:.3}) served over {kind:?} ({mae:.3})",
                    refit.chosen
                );
            }
            combined_served += usize::from(refit.chosen == ModelKind::Combined);
        }
    }
    assert!(
        combined_served > 0,
        "the combination wins somewhere on real weather"
    );
}

#[test]
fn on_two_other_climates_predict_beats_seasonal_naive_and_its_95_percent_intervals_cover() {
    for (name, path) in [("greensboro", GREENSBORO), ("miami", MIAMI)] {
        let points = read_series(path);
        let mut served = Scorer::default();
        let mut naive = Scorer::default();
        for origin in origins(points.len()) {
            let refit = predict_at(&points, origin);
            let model = refit.chosen();
            for step in 0..24 {
                let actual = points[origin + step].1;
                let (lower, upper) = model.interval(step, 0.95);
                served.add(actual, model.points[step], lower, upper);
                naive.add(actual, points[origin - 24 + step].1, lower, upper);
            }
        }
        let (served, naive) = (served.scores().unwrap(), naive.scores().unwrap());
        eprintln!("{name}: served {served:?}\n{name}: seasonal naive {naive:?}");
        // The bench's target is 93-97%; these 30 origins measured 95-96% when this was written.
        assert_beats_naive_and_covers(name, &served, &naive, 0.92..=0.98);
    }
}
