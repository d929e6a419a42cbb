//! Accuracy on real weather: the rolling-origin protocol of the issue on the Sand Point
//! (Alaska) TMY3 hourly series: 28 days of history, 24 hours ahead, 30 origins evenly spaced.

use windsock_forecaster::engine::{backtest, Setup};
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
    assert!(
        chosen.mae < naive.mae,
        "the model in use: MAE {:.3} vs seasonal naive {:.3}",
        chosen.mae,
        naive.mae
    );
    assert!(
        (0.85..=0.99).contains(&default.coverage),
        "95% intervals covered {:.1}% of actuals",
        default.coverage * 100.0
    );
}
