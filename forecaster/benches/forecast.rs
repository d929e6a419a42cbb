//! Forecaster benchmark (issue 18), each result beside baselines measured in the same run:
//!
//! 1. Accuracy and time per request of `POST /predict` on three hourly temperature series
//!    (Sand Point AK and Greensboro NC, real TMY3 observations; San Francisco 2010, smooth
//!    normals): 30 origins evenly spaced, 672 h of history each, 24 h ahead, 95% intervals.
//!    Windsock runs the handler's own steps (JSON body parsed, put on its grid, forecast by
//!    `predict::forecast` with its cache emptied, intervals made); beside it seasonal naive,
//!    and Prophet and statsforecast's MSTL + AutoETS run by `bench-python/baselines.py` in a
//!    virtual environment this bench creates (skipped with a message when Python or PyPI is
//!    unavailable).
//! 2. A scheduled refit of 10,000 regions on 2 cores (steady state: ledgers already filled).
//!
//! `WINDSOCK_BENCH_SCALE` scales the number of regions (1.0 = 10,000; CI uses a small value).
//! Run: `cargo bench -p windsock-forecaster --bench forecast`.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use windsock_forecaster::calibration::{Ledger, Scorer, Scores};
use windsock_forecaster::engine::{self, Setup};
use windsock_forecaster::models::ModelKind;
use windsock_forecaster::predict;
use windsock_forecaster::series::{hour_of, regularize, RegularSeries};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");
const WORKERS: usize = 2;
const HISTORY: usize = 672;
const HORIZON: usize = 24;
const ORIGINS: usize = 30;
const LEVEL: f64 = 0.95;
/// How long the Python baselines may take to install before they are skipped.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

struct Dataset {
    name: &'static str,
    path: PathBuf,
}

fn datasets() -> Vec<Dataset> {
    let shared = Path::new(MANIFEST).join("../../shared/data");
    vec![
        Dataset {
            name: "sand_point",
            path: shared.join("sand-point-ak-tmy3-hourly.csv"),
        },
        Dataset {
            name: "greensboro",
            path: Path::new(MANIFEST).join("benches/data/greensboro-nc-tmy3-hourly.csv"),
        },
        Dataset {
            name: "sf_normals",
            path: shared.join("sf-temps-2010-hourly.csv"),
        },
        Dataset {
            name: "miami",
            path: Path::new(MANIFEST).join("benches/data/miami-fl-tmy2-hourly.csv"),
        },
    ]
}

/// An hourly series as read: instants and temperatures.
type Points = Vec<(DateTime<Utc>, f64)>;

fn read_points(path: &Path) -> Option<Points> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .skip(1)
            .map(|line| {
                let (ts, temp) = line.split_once(',').unwrap();
                (ts.parse().unwrap(), temp.parse().unwrap())
            })
            .collect(),
    )
}

fn main() {
    let scale: f64 = std::env::var("WINDSOCK_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let regions = ((10_000.0 * scale).round() as usize).max(2);
    println!("windsock-forecaster benchmark: {regions} regions, {WORKERS} workers");

    let mut loaded = Vec::new();
    for dataset in datasets() {
        match read_points(&dataset.path) {
            Some(points) => loaded.push((dataset, points)),
            None => eprintln!(
                "skipping {}: {} is missing",
                dataset.name,
                dataset.path.display()
            ),
        }
    }
    // `cargo bench ... -- --no-baselines` skips Python (a quicker run while tuning).
    let baselines = if std::env::args().any(|a| a == "--no-baselines") {
        println!("skipping Prophet and statsforecast: --no-baselines");
        None
    } else {
        python_baselines(&loaded)
    };
    for (dataset, points) in &loaded {
        predict_backtest(dataset.name, points, baselines.as_ref());
    }
    if let Some((_, points)) = loaded.first() {
        let series = regularize(points.iter().map(|(at, t)| (hour_of(*at), *t)));
        refit_all(&series, regions);
    }
}

/// The origins of a dataset of `len` hours: 30 evenly spaced, each with 672 h before it and
/// 24 h after it.
fn origins(len: usize) -> Vec<usize> {
    let first = HISTORY;
    let last = len - HORIZON;
    (0..ORIGINS)
        .map(|k| first + (last - first) * k / (ORIGINS - 1))
        .collect()
}

fn json_body(history: &[(DateTime<Utc>, f64)]) -> Vec<u8> {
    let rows: Vec<String> = history
        .iter()
        .map(|(at, y)| format!(r#"{{"ds":"{}","y":{y}}}"#, at.format("%Y-%m-%d %H:%M:%S")))
        .collect();
    format!(
        r#"{{"latitude":0,"longitude":0,"data":[{}]}}"#,
        rows.join(",")
    )
    .into_bytes()
}

/// What one `/predict` request answers: the chosen model's points and bounds, and the
/// other models' (for the per-model lines).
struct Answer {
    chosen: ModelKind,
    by_model: BTreeMap<ModelKind, Vec<(f64, f64, f64)>>,
}

/// The handler's steps for one body (its cache emptied first, so every request fits).
fn predict_request(body: &[u8]) -> Answer {
    predict::clear_cache();
    let rows = predict::parse_json(body).expect("a valid body");
    let grid = predict::to_grid(&rows).expect("a regular grid");
    grid.check_horizon(HORIZON).expect("a datable horizon");
    let refit = predict::forecast(&grid, HORIZON).expect("a forecast");
    let by_model = refit
        .models
        .iter()
        .map(|(kind, model)| {
            let points = (0..HORIZON)
                .map(|step| {
                    let (lower, upper) = model.interval(step, LEVEL);
                    (model.points[step], lower, upper)
                })
                .collect();
            (*kind, points)
        })
        .collect();
    Answer {
        chosen: refit.chosen,
        by_model,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Per dataset, Prophet's and statsforecast's answers: `(series, model) -> (points, seconds)`.
type BaselineAnswers = BTreeMap<(String, String), (Vec<(f64, f64, f64)>, f64)>;

/// Runs the rolling-origin protocol of `/predict` on one dataset and prints the scores
/// beside the baselines' and the targets.
fn predict_backtest(
    name: &str,
    points: &[(DateTime<Utc>, f64)],
    baselines: Option<&BaselineAnswers>,
) {
    let mut windsock = Scorer::default();
    let mut per_model: BTreeMap<ModelKind, Scorer> = BTreeMap::new();
    let mut naive = Scorer::default();
    let mut chosen_counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut seconds = Vec::new();
    let mut naive_seconds = Vec::new();
    let mut python: BTreeMap<String, (Scorer, Vec<f64>)> = BTreeMap::new();
    for (k, origin) in origins(points.len()).into_iter().enumerate() {
        let history = &points[origin - HISTORY..origin];
        let actuals = &points[origin..origin + HORIZON];
        let body = json_body(history);
        let started = Instant::now();
        let answer = predict_request(&body);
        seconds.push(started.elapsed().as_secs_f64());
        *chosen_counts.entry(answer.chosen.name()).or_default() += 1;
        for (step, (_, actual)) in actuals.iter().enumerate() {
            let (point, lower, upper) = answer.by_model[&answer.chosen][step];
            windsock.add(*actual, point, lower, upper);
            for (kind, forecast) in &answer.by_model {
                let (point, lower, upper) = forecast[step];
                per_model
                    .entry(*kind)
                    .or_default()
                    .add(*actual, point, lower, upper);
            }
        }
        // Seasonal naive on its own: the same hour of the last day, with windsock's
        // calibration of it for an interval.
        let started = Instant::now();
        let last_day: Vec<f64> = history[HISTORY - 24..].iter().map(|(_, y)| *y).collect();
        naive_seconds.push(started.elapsed().as_secs_f64());
        for (step, (_, actual)) in actuals.iter().enumerate() {
            let (_, lower, upper) = answer.by_model[&ModelKind::SeasonalNaive][step];
            naive.add(*actual, last_day[step % 24], lower, upper);
        }
        if let Some(baselines) = baselines {
            for ((series, model), (forecast, secs)) in baselines {
                if *series != format!("{name}-{k}") {
                    continue;
                }
                let entry = python.entry(model.clone()).or_default();
                entry.1.push(*secs);
                for (step, (_, actual)) in actuals.iter().enumerate() {
                    let (point, lower, upper) = forecast[step];
                    entry.0.add(*actual, point, lower, upper);
                }
            }
        }
    }
    // A repeated request (the same rows again) is answered from the cache.
    let body = json_body(&points[points.len() - HISTORY..]);
    predict_request(&body);
    let started = Instant::now();
    let rows = predict::parse_json(&body).unwrap();
    let grid = predict::to_grid(&rows).unwrap();
    predict::forecast(&grid, HORIZON).unwrap();
    let repeated = started.elapsed().as_secs_f64();

    let windsock_median = median(seconds.clone());
    println!(
        "\n{name}: /predict backtest ({ORIGINS} origins, {HISTORY} h history, {HORIZON} h ahead, 95% intervals)"
    );
    let line = |label: &str, s: &Scores, secs: Option<f64>| {
        let time = secs.map_or(String::new(), |t| {
            format!("  median {:8.2} ms/request", t * 1e3)
        });
        println!(
            "  {label:<28} MAE {:.3} °C  RMSE {:.3}  coverage {:5.1}%{time}",
            s.mae,
            s.rmse,
            s.coverage * 100.0
        );
    };
    let windsock_scores = windsock.scores().unwrap();
    line("windsock /predict", &windsock_scores, Some(windsock_median));
    for (kind, scorer) in &per_model {
        line(
            &format!("  its {}", kind.name()),
            &scorer.scores().unwrap(),
            None,
        );
    }
    println!(
        "    chosen: {chosen_counts:?}; a repeated request (cached): {:.3} ms",
        repeated * 1e3
    );
    let naive_scores = naive.scores().unwrap();
    line("seasonal naive", &naive_scores, Some(median(naive_seconds)));
    let mut prophet_median = None;
    let mut statsforecast_mae = None;
    for (model, (scorer, secs)) in &python {
        let Some(scores) = scorer.scores() else {
            continue;
        };
        let secs = median(secs.clone());
        line(model, &scores, Some(secs));
        if model == "prophet" {
            prophet_median = Some(secs);
        } else {
            statsforecast_mae = Some(scores.mae);
        }
    }
    let best_baseline = statsforecast_mae.map_or(naive_scores.mae, |m| m.min(naive_scores.mae));
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "  target MAE <= best of seasonal naive and statsforecast ({best_baseline:.3}{}): {} ({:.3})",
        if statsforecast_mae.is_none() { ", statsforecast skipped" } else { "" },
        met(windsock_scores.mae <= best_baseline),
        windsock_scores.mae
    );
    println!(
        "  target coverage 93-97%: {} ({:.1}%)",
        met((0.93..=0.97).contains(&windsock_scores.coverage)),
        windsock_scores.coverage * 100.0
    );
    match prophet_median {
        Some(prophet) => println!(
            "  target /predict median <= Prophet's / 10 ({:.2} ms): {} ({:.2} ms, {:.1}x faster)",
            prophet * 1e2,
            met(windsock_median <= prophet / 10.0),
            windsock_median * 1e3,
            prophet / windsock_median
        ),
        None => println!("  target /predict vs Prophet: not measured (Prophet skipped)"),
    }
}

/// The bench's Python: a venv under the user's cache with prophet and statsforecast from
/// PyPI, created on the first run.
fn bench_python() -> Result<PathBuf, String> {
    let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
    let venv = Path::new(&home).join(".cache/windsock-tools/bench-venv");
    let python = venv.join("bin/python");
    let ready = |python: &Path| {
        Command::new(python)
            .args(["-c", "import prophet, statsforecast"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ready(&python) {
        return Ok(python);
    }
    println!(
        "creating {} with prophet and statsforecast (at most {} s)...",
        venv.display(),
        INSTALL_TIMEOUT.as_secs()
    );
    let created = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .map_err(|e| format!("python3: {e}"))?;
    if !created.success() {
        return Err("python3 -m venv failed".into());
    }
    let requirements = Path::new(MANIFEST).join("bench-python/requirements.txt");
    let mut install = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "-r"])
        .arg(requirements)
        .spawn()
        .map_err(|e| format!("pip: {e}"))?;
    let started = Instant::now();
    loop {
        if let Some(status) = install.try_wait().map_err(|e| e.to_string())? {
            if status.success() && ready(&python) {
                return Ok(python);
            }
            return Err(format!("pip install failed ({status})"));
        }
        if started.elapsed() > INSTALL_TIMEOUT {
            let _ = install.kill();
            return Err(format!(
                "pip install took over {} s",
                INSTALL_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Prophet's and statsforecast's forecasts of every origin of every dataset, or `None` (and
/// why) when they cannot run.
fn python_baselines(loaded: &[(Dataset, Points)]) -> Option<BaselineAnswers> {
    let python = match bench_python() {
        Ok(python) => python,
        Err(why) => {
            println!("skipping Prophet and statsforecast: {why}");
            return None;
        }
    };
    let dir = tempfile::tempdir().ok()?;
    let histories = dir.path().join("histories.csv");
    let forecasts = dir.path().join("forecasts.csv");
    let mut text = String::from("series,ds,y\n");
    for (dataset, points) in loaded {
        for (k, origin) in origins(points.len()).into_iter().enumerate() {
            for (at, y) in &points[origin - HISTORY..origin] {
                text.push_str(&format!(
                    "{}-{k},{},{y}\n",
                    dataset.name,
                    at.format("%Y-%m-%d %H:%M:%S")
                ));
            }
        }
    }
    std::fs::write(&histories, text).ok()?;
    println!("running Prophet and statsforecast on every origin (one series at a time)...");
    let status = Command::new(&python)
        .arg(Path::new(MANIFEST).join("bench-python/baselines.py"))
        .arg(&histories)
        .arg(&forecasts)
        .arg(HORIZON.to_string())
        .status();
    if !status.is_ok_and(|s| s.success()) {
        println!("skipping Prophet and statsforecast: baselines.py failed");
        return None;
    }
    let mut answers = BaselineAnswers::new();
    let text = std::fs::read_to_string(&forecasts).ok()?;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let number = |i: usize| f[i].parse::<f64>().unwrap_or(f64::NAN);
        let entry = answers
            .entry((f[0].to_string(), f[1].to_string()))
            .or_insert_with(|| (Vec::new(), number(6)));
        entry.0.push((number(3), number(4), number(5)));
    }
    Some(answers)
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

/// A scheduled refit of every region (every model, ledger, calibration, combination, choice)
/// on 2 cores, in the steady state: each region's ledger already holds its recent forecasts.
/// Ledgers are warmed for up to 200 distinct regions and shared by the others (region i
/// refits the series and ledger of region i mod 200): every refit still does all its work.
fn refit_all(series: &RegularSeries, regions: usize) {
    let setup = Setup::hourly(HISTORY, HORIZON, 7);
    let distinct = regions.min(200);
    let warm = |i: usize| {
        let region = region_series(series, i);
        let mut ledger = Ledger::default();
        engine::refit(
            &region.until(region.end() - 1),
            &mut ledger,
            &setup,
            HORIZON,
        )
        .expect("a warm-up refit");
        (region, ledger)
    };
    let cold_start = Instant::now();
    let prepared: Vec<(RegularSeries, Ledger)> = {
        use rayon::prelude::*;
        (0..distinct).into_par_iter().map(warm).collect()
    };
    let cold = cold_start.elapsed();
    println!(
        "\nfirst refit after a start (empty ledger: backfills {} past origins) of {distinct} regions on {} threads: {:.2} s, {:.1} s per 10,000 regions",
        setup.backfill_origins,
        rayon::current_num_threads(),
        cold.as_secs_f64(),
        cold.as_secs_f64() * 10_000.0 / distinct as f64
    );
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let mut per_region: Vec<Duration> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                scope.spawn(|| {
                    let mut times = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= regions {
                            break;
                        }
                        let (region, ledger) = &prepared[i % distinct];
                        let mut ledger = ledger.clone();
                        let t = Instant::now();
                        engine::refit(region, &mut ledger, &setup, HORIZON).expect("a refit");
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
    let total = start.elapsed();
    per_region.sort();
    println!(
        "\nscheduled refit of {regions} regions on {WORKERS} cores (all models, ledger, calibration, combination, choice):"
    );
    println!(
        "  total {:.2} s ({:.0} regions/s); per region median {:.2} ms, p99 {:.2} ms",
        total.as_secs_f64(),
        regions as f64 / total.as_secs_f64(),
        ms(percentile(&per_region, 0.5)),
        ms(percentile(&per_region, 0.99))
    );
    let per_10k = total.as_secs_f64() * 10_000.0 / regions as f64;
    println!(
        "  for 10,000 regions: {per_10k:.1} s (target <= 60 s: {})",
        if per_10k <= 60.0 { "met" } else { "MISSED" }
    );
}
