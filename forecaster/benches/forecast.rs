//! Forecaster benchmark: fit + 24 h predict time per region, a whole refit of many regions
//! on 2 cores, and the Sand Point backtest MAE; each beside the seasonal-naive baseline.
//!
//! `WINDSOCK_BENCH_SCALE` scales the number of regions (1.0 = 1,000; CI uses a small value).
//! Run: `cargo bench -p windsock-forecaster --bench forecast`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use windsock_forecaster::calibration::Ledger;
use windsock_forecaster::engine::{self, backtest, Setup};
use windsock_forecaster::models::{self, ModelKind};
use windsock_forecaster::series::{hour_of, regularize, RegularSeries};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/sand-point-ak-tmy3-hourly.csv"
);
const WORKERS: usize = 2;

fn main() {
    let Ok(text) = std::fs::read_to_string(DATA) else {
        eprintln!("skipping: {DATA} is missing");
        return;
    };
    let scale: f64 = std::env::var("WINDSOCK_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let regions = ((1000.0 * scale).round() as usize).max(2);
    let series = regularize(text.lines().skip(1).map(|line| {
        let (ts, temp) = line.split_once(',').unwrap();
        (hour_of(ts.parse().unwrap()), temp.parse::<f64>().unwrap())
    }));
    let setup = Setup::hourly(28 * 24, 24, 7);

    println!("windsock-forecaster benchmark: {regions} regions, {WORKERS} workers");
    model_times(&series, regions.min(200));
    refit_all(&series, &setup, regions);
    sand_point_backtest(&series, &setup);
}

/// A region: the real series shifted by a region-specific number of hours, 30 days long.
fn region_series(series: &RegularSeries, i: usize) -> RegularSeries {
    let span = 30 * 24;
    let offset = (i * 97) % (series.len() - span);
    regularize(
        series.values[offset..offset + span]
            .iter()
            .enumerate()
            .map(|(h, v)| (h as i64, *v)),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Fitting one model and predicting 24 hours, per region.
fn model_times(series: &RegularSeries, regions: usize) {
    let times = |kind: ModelKind| {
        let mut t: Vec<Duration> = (0..regions)
            .map(|i| {
                let region = region_series(series, i);
                let train = &region.values[region.len() - 28 * 24..];
                let start = Instant::now();
                models::forecast(kind, train, Some(24), 24).expect("a forecast");
                start.elapsed()
            })
            .collect();
        t.sort();
        (percentile(&t, 0.5), percentile(&t, 0.99))
    };
    let (naive_p50, naive_p99) = times(ModelKind::SeasonalNaive);
    let (p50, p99) = times(ModelKind::MstlEts);
    println!("\nfit + 24 h predict, 672 hourly points, per region ({regions} regions):");
    println!(
        "  mstl_ets        median {:8.3} ms   p99 {:8.3} ms",
        ms(p50),
        ms(p99)
    );
    println!(
        "  seasonal_naive  median {:8.4} ms   p99 {:8.4} ms",
        ms(naive_p50),
        ms(naive_p99)
    );
    println!(
        "  ratio mstl_ets / seasonal_naive (median): {:.0}x",
        p50.as_secs_f64() / naive_p50.as_secs_f64().max(1e-9)
    );
}

/// A scheduled refit of every region (every model, ledger, calibration, choice) on 2 cores,
/// in the steady state: each region's ledger already holds its recent forecasts.
fn refit_all(series: &RegularSeries, setup: &Setup, regions: usize) {
    // Warm-up (untimed, on both cores): the first refit backfills each region's ledger.
    let warm = |i: usize| {
        let region = region_series(series, i);
        let mut ledger = Ledger::default();
        engine::refit(&region.until(region.end() - 1), &mut ledger, setup, 24)
            .expect("a warm-up refit");
        (region, ledger)
    };
    let mut prepared: Vec<(RegularSeries, Ledger)> = std::thread::scope(|scope| {
        let halves: Vec<_> = (0..WORKERS)
            .map(|w| {
                scope.spawn(move || (w..regions).step_by(WORKERS).map(warm).collect::<Vec<_>>())
            })
            .collect();
        halves.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let run = |prepared: &mut Vec<(RegularSeries, Ledger)>,
               naive_only: bool|
     -> (Duration, Vec<Duration>) {
        let next = AtomicUsize::new(0);
        let slots: Vec<std::sync::Mutex<&mut (RegularSeries, Ledger)>> =
            prepared.iter_mut().map(std::sync::Mutex::new).collect();
        let start = Instant::now();
        let mut per_region: Vec<Duration> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..WORKERS)
                .map(|_| {
                    scope.spawn(|| {
                        let mut times = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(slot) = slots.get(i) else { break };
                            let mut guard = slot.lock().unwrap();
                            let (region, ledger) = &mut **guard;
                            let t = Instant::now();
                            if naive_only {
                                models::forecast(
                                    ModelKind::SeasonalNaive,
                                    &region.values,
                                    Some(24),
                                    24,
                                )
                                .unwrap();
                            } else {
                                let mut ledger = ledger.clone();
                                engine::refit(region, &mut ledger, setup, 24).expect("a refit");
                            }
                            times.push(t.elapsed());
                        }
                        times
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        per_region.sort();
        (start.elapsed(), per_region)
    };
    let (naive_total, _) = run(&mut prepared, true);
    let (total, per_region) = run(&mut prepared, false);
    println!("\nscheduled refit of {regions} regions on {WORKERS} cores (all 3 models, ledger, calibration, choice):");
    println!(
        "  total {:.2} s ({:.0} forecasts/s); per region median {:.2} ms, p99 {:.2} ms",
        total.as_secs_f64(),
        regions as f64 / total.as_secs_f64(),
        ms(percentile(&per_region, 0.5)),
        ms(percentile(&per_region, 0.99))
    );
    println!(
        "  seasonal naive alone: total {:.4} s; ratio {:.0}x",
        naive_total.as_secs_f64(),
        total.as_secs_f64() / naive_total.as_secs_f64().max(1e-9)
    );
    let per_1000 = total.as_secs_f64() * 1000.0 / regions as f64;
    println!(
        "  projected for 1,000 regions: {per_1000:.2} s (target < 10 s: {})",
        if per_1000 < 10.0 { "met" } else { "MISSED" }
    );
}

/// The protocol: 28 days of history, 24 hours ahead, 30 origins evenly spaced.
fn sand_point_backtest(series: &RegularSeries, setup: &Setup) {
    let first = series.start + 28 * 24;
    let last = series.end() - 24;
    let origins: Vec<i64> = (0..30).map(|k| first + (last - first) * k / 29).collect();
    let start = Instant::now();
    let report = backtest(series, setup, &origins, 24, 0.95);
    let naive = report.by_model["seasonal_naive"].mae;
    println!("\nSand Point backtest (30 origins, 28 days history, 24 h ahead, 95% intervals) in {:.2} s:", start.elapsed().as_secs_f64());
    for (model, s) in &report.by_model {
        println!(
            "  {model:<15} MAE {:.3} °C  RMSE {:.3}  coverage {:5.1}%  MAE / seasonal naive {:.3}",
            s.mae,
            s.rmse,
            s.coverage * 100.0,
            s.mae / naive
        );
    }
    if let Some(s) = &report.chosen {
        println!(
            "  {:<15} MAE {:.3} °C  RMSE {:.3}  coverage {:5.1}%  MAE / seasonal naive {:.3}",
            "model in use",
            s.mae,
            s.rmse,
            s.coverage * 100.0,
            s.mae / naive
        );
    }
    let ratio = report.by_model["mstl_ets"].mae / naive;
    println!(
        "  target MAE >= 15% below seasonal naive: {} ({:.1}% below)",
        if ratio <= 0.85 { "met" } else { "MISSED" },
        (1.0 - ratio) * 100.0
    );
}
