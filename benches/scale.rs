//! The scale benchmark (issue 15): `windsock up` with thousands of simulated regions and a
//! 72-hour hourly backfill, beside the indexer alone ingesting the same events.
//!
//! ```sh
//! cargo bench --bench scale                                   # 1,000 then 10,000 regions
//! SCALE_BENCH_REGIONS=10000 cargo bench --bench scale         # one size
//! ```
//!
//! For each number of regions it prints:
//! 1. **Baseline, the indexer alone** (in this process): the simulated collector's backfill is
//!    published into an embedded bus nobody reads yet (the same events `windsock up` makes:
//!    same seed, same regions, same instants), then an indexer subscribes and drains it; the
//!    time from its start to every message committed and searchable.
//! 2. **Catch-up through `windsock up`** (the release binary as a child process, with a
//!    generated configuration of N regions, an hourly schedule and `collector.backfill = 72h`):
//!    the time from the start of the process until every observation is searchable
//!    (`kind:observation` counted by `/api/search`, as many as the collector published) and
//!    every consumer's `windsock_bus_lag` is 0; each consumer's throughput (observations over
//!    the time it took to catch up) and its ratio to the indexer's; peak RSS (`VmHWM`); a
//!    timeline every 5 s of what each service received and its lag (where it bottlenecks).
//! 3. **Steady state**: the process restarted on the same data with the collector's
//!    15-minute schedule compressed `SCALE_BENCH_SPEEDUP` times (default 30: a round every
//!    30 s) and the forecaster on its real hourly schedule; the CPU (utime + stime of
//!    `/proc/<pid>/stat`) over a window after two rounds. Two parts, since a refit of
//!    thousands of regions outlasts any short window (and the forecaster refits every region
//!    at its start): the rounds and the rest, estimated at the real schedule as
//!    `idle + (measured - idle) / speedup` where `idle` is the quietest 5 s (what runs
//!    whatever the schedule); and the hourly refits, from what a region's refit costs in the
//!    window (`windsock_forecast_fit_seconds_sum` over the forecasts published) times the
//!    regions, over an hour. `SCALE_BENCH_SPEEDUP=1` runs the real 15-minute schedule.
//!
//! Settings (environment): `SCALE_BENCH_REGIONS` (default `1000,10000`), `SCALE_BENCH_HOURS`
//! (72), `SCALE_BENCH_TIMEOUT_SECS` (how long a catch-up may take before it is reported as
//! not done, 600), `SCALE_BENCH_SPEEDUP` (30), `SCALE_BENCH_STEADY_SECS` (the window, 120),
//! `SCALE_BENCH_SKIP` (comma-separated parts to skip: `baseline`, `up`, `steady`),
//! `SCALE_BENCH_KEEP=1` keeps the data directories and logs (printed), `SCALE_BENCH_BINARY`
//! runs another `windsock` binary than the one cargo built.
//!
//! Not part of the test suite: it takes minutes and its numbers depend on the machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use windsock_testkit::{http_get, WindsockProcess};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The `windsock` binary cargo built with the bench; `SCALE_BENCH_BINARY` names another (a
/// copy kept aside, so a build running meanwhile cannot replace it under the bench).
fn binary() -> PathBuf {
    std::env::var_os("SCALE_BENCH_BINARY").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_windsock")),
        PathBuf::from,
    )
}

/// The consumers of `windsock up`, whose lag and throughput are reported.
const CONSUMERS: [&str; 3] = ["indexer", "alerter", "forecaster"];

/// How often the child process is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// A timeline line every this long.
const TIMELINE_EVERY: Duration = Duration::from_secs(5);

struct Settings {
    regions: Vec<usize>,
    hours: u64,
    timeout: Duration,
    speedup: u64,
    steady: Duration,
    skip: Vec<String>,
    keep: bool,
}

impl Settings {
    fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let number = |name: &str, default: u64| {
            var(name).map_or(default, |v| {
                v.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
            })
        };
        let regions = var("SCALE_BENCH_REGIONS")
            .unwrap_or_else(|| "1000,10000".into())
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("SCALE_BENCH_REGIONS: {n} is not a number"))
            })
            .collect();
        Self {
            regions,
            hours: number("SCALE_BENCH_HOURS", 72).max(1),
            timeout: Duration::from_secs(number("SCALE_BENCH_TIMEOUT_SECS", 600)),
            speedup: number("SCALE_BENCH_SPEEDUP", 30).clamp(1, 900),
            steady: Duration::from_secs(number("SCALE_BENCH_STEADY_SECS", 120).max(10)),
            skip: var("SCALE_BENCH_SKIP")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
            keep: var("SCALE_BENCH_KEEP").is_some_and(|v| v == "1"),
        }
    }

    fn runs(&self, part: &str) -> bool {
        !self.skip.iter().any(|s| s == part)
    }
}

fn main() {
    let settings = Settings::from_env();
    println!("scale benchmark: {}", machine());
    println!(
        "regions {:?}, {} h of hourly backfill, steady state with rounds at 1/{} of a \
         15-minute schedule over {:?}",
        settings.regions, settings.hours, settings.speedup, settings.steady
    );
    for &regions in &settings.regions {
        println!(
            "\n=== {regions} regions, {} observations expected ===",
            regions as u64 * settings.hours
        );
        let dir = tempfile::Builder::new()
            .prefix("windsock-scale-")
            .tempdir()
            .expect("a temporary directory");
        let baseline = settings
            .runs("baseline")
            .then(|| baseline(dir.path(), regions, settings.hours));
        if settings.runs("up") || settings.runs("steady") {
            up(dir.path(), regions, &settings, baseline.as_ref());
        }
        if settings.keep {
            println!("kept: {}", dir.keep().display());
        }
    }
}

/// The configuration of a run: `regions` generated regions on a grid over the land-ish
/// latitudes (names `R00001`…), the simulated source, an hourly schedule, `hours` of backfill.
fn write_config(dir: &Path, name: &str, regions: usize, hours: u64, capacity: usize) -> PathBuf {
    use std::fmt::Write;
    let data_dir = dir.join(name);
    let mut text = String::new();
    writeln!(text, "data_dir = {:?}", data_dir.display().to_string()).unwrap();
    text.push_str(
        "[log]\nlevel = \"warn\"\n\
         [collector]\nsource = \"simulated\"\nschedule = \"0 0 * * * *\"\n",
    );
    writeln!(text, "backfill = \"{hours}h\"").unwrap();
    writeln!(text, "[bus]\ncapacity = {capacity}").unwrap();
    let columns = (regions as f64).sqrt().ceil() as usize;
    for i in 0..regions {
        let (row, column) = (i / columns, i % columns);
        let lat = -60.0 + 130.0 * (row as f64 + 0.5) / columns as f64;
        let lon = -180.0 + 360.0 * (column as f64 + 0.5) / columns as f64;
        writeln!(
            text,
            "[[regions]]\nname = \"R{:05}\"\nlat = {lat:.4}\nlon = {lon:.4}",
            i + 1
        )
        .unwrap();
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("writing the configuration");
    path
}

struct Baseline {
    observations: u64,
    documents: u64,
    publish: Duration,
    index: Duration,
}

impl Baseline {
    fn observations_per_second(&self) -> f64 {
        self.observations as f64 / self.index.as_secs_f64()
    }
}

/// The indexer alone: the backfill published into an embedded bus first (nobody reads it
/// yet; its capacity holds it all), then an indexer drains it.
fn baseline(dir: &Path, regions: usize, hours: u64) -> Baseline {
    use windsock_core::bus::{EmbeddedBus, SharedBus};
    use windsock_core::config::Config;
    // Every message of the backfill retained on 4 partitions, with room to spare.
    let capacity = regions * (hours as usize + 2) + 100_000;
    let path = write_config(dir, "baseline", regions, hours, capacity);
    let config = Arc::new(
        Config::load_with_env(Some(&path), Vec::<(String, String)>::new())
            .expect("the baseline configuration"),
    );
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async move {
        let embedded = EmbeddedBus::new(&config.bus);
        let bus: SharedBus = Arc::new(embedded.clone());
        let collector = windsock_collector::Collector::new(config.clone(), bus.clone())
            .await
            .expect("the collector");
        let started = Instant::now();
        let report = collector.backfill().await;
        let publish = started.elapsed();
        let observations = report.published as u64;
        println!(
            "baseline: the collector published {observations} observations in {:.1} s \
             ({:.0}/s), alone",
            publish.as_secs_f64(),
            observations as f64 / publish.as_secs_f64()
        );
        let started = Instant::now();
        let indexer = windsock_indexer::Indexer::new(config.clone(), bus.clone())
            .await
            .expect("the indexer");
        // Everything the bus holds is now unread by the indexer's group.
        let documents = bus.unread().expect("the embedded bus counts");
        let stop = windsock_core::CancellationToken::new();
        let run = tokio::spawn(indexer.run(stop.clone()));
        let index = indexer.index().clone();
        while index.len() < documents {
            if run.is_finished() {
                panic!("the indexer stopped: {:?}", run.await);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = started.elapsed();
        stop.cancel();
        let _ = run.await;
        embedded.close();
        let baseline = Baseline {
            observations,
            documents,
            publish,
            index: took,
        };
        println!(
            "baseline: the indexer alone indexed {documents} messages ({observations} \
             observations, the rest the collector's logs) in {:.1} s: {:.0} observations/s, \
             {:.0} messages/s",
            took.as_secs_f64(),
            baseline.observations_per_second(),
            documents as f64 / took.as_secs_f64()
        );
        baseline
    })
}

/// One look at the child process.
#[derive(Clone, Debug, Default)]
struct Sample {
    at: Duration,
    /// `windsock_bus_lag` per consumer (absent until the consumer has set it).
    lag: BTreeMap<String, f64>,
    /// `windsock_received_total` per service.
    received: BTreeMap<String, f64>,
    /// `windsock_sent_total` per service.
    sent: BTreeMap<String, f64>,
    rss_kb: u64,
    /// Of `rss_kb`, what is not a file's pages (tantivy's segments are mapped: their pages
    /// count in RSS, but the kernel can drop them under pressure).
    anon_kb: u64,
    hwm_kb: u64,
    cpu_seconds: f64,
    /// `windsock_forecast_fit_seconds_sum` over every model: time spent fitting.
    fit_seconds: f64,
}

fn sample(process: &WindsockProcess, pid: u32, at: Duration) -> Option<Sample> {
    let (status, text) = http_get(&format!("{}/metrics", process.base_url())).ok()?;
    if status != 200 {
        return None;
    }
    let mut sample = Sample {
        at,
        ..Default::default()
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        if name == "windsock_forecast_fit_seconds_sum" {
            sample.fit_seconds += value;
            continue;
        }
        let Some(service) = label(labels, "service") else {
            continue;
        };
        let into = match name {
            "windsock_bus_lag" => &mut sample.lag,
            "windsock_received_total" => &mut sample.received,
            "windsock_sent_total" => &mut sample.sent,
            _ => continue,
        };
        *into.entry(service.to_string()).or_default() += value;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    sample.rss_kb = kb("VmRSS:");
    sample.anon_kb = kb("RssAnon:");
    sample.hwm_kb = kb("VmHWM:");
    sample.cpu_seconds = cpu_seconds(pid)?;
    Some(sample)
}

fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels
        .trim_end_matches('}')
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim_matches('"'))
}

/// utime + stime of every thread of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); 12 and 13 after the name and state.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// How many observations `/api/search` counts.
fn searchable_observations(process: &WindsockProcess) -> Option<u64> {
    let url = format!(
        "{}/api/search?q=kind:observation&from=now-400d&to=now%2B1d&limit=1",
        process.base_url()
    );
    let (status, body) = http_get(&url).ok()?;
    if status != 200 {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(&body).ok()?["total"].as_u64()
}

fn collector_status(process: &WindsockProcess) -> serde_json::Value {
    http_get(&format!("{}/api/collector/status", process.base_url()))
        .ok()
        .and_then(|(_, body)| serde_json::from_str(&body).ok())
        .unwrap_or_default()
}

/// The catch-up through `windsock up`, then the steady state.
fn up(dir: &Path, regions: usize, settings: &Settings, baseline: Option<&Baseline>) {
    let capacity = windsock_core::config::BusConfig::default().capacity;
    let path = write_config(dir, "up", regions, settings.hours, capacity);
    let data = dir.join("up");
    let expected = regions as u64 * settings.hours;
    if settings.runs("up") {
        let mut process = WindsockProcess::new(binary(), &["up"], &data)
            .env("WINDSOCK_CONFIG", path.display().to_string());
        let spawned = Instant::now();
        process.start().expect("windsock up starts");
        let pid = pid_of(&process);
        let caught_up = catch_up(&process, pid, spawned, expected, settings.timeout);
        report_catch_up(&caught_up, baseline, expected);
        if !process.stop(Duration::from_secs(30)) {
            println!(
                "(windsock up did not stop cleanly: see {})",
                log_path(&process)
            );
        }
    }
    if settings.runs("steady") {
        steady(&path, &data, regions, settings);
    }
}

fn pid_of(process: &WindsockProcess) -> u32 {
    process.pid().expect("the windsock child process runs")
}

fn log_path(process: &WindsockProcess) -> String {
    process
        .data_dir
        .with_extension(format!("{}.log", process.port))
        .display()
        .to_string()
}

struct CatchUp {
    /// When everything was searchable and every lag 0 (None: not within the timeout).
    done: Option<Duration>,
    /// When each consumer's lag last became 0 for good (after the collector had published
    /// all it would), from the start of the process.
    consumer_done: BTreeMap<String, Duration>,
    published: u64,
    searchable: u64,
    last: Sample,
    collector_done: Option<Duration>,
    /// The most anonymous memory seen at any look.
    peak_anon_kb: u64,
}

fn catch_up(
    process: &WindsockProcess,
    pid: u32,
    spawned: Instant,
    expected: u64,
    timeout: Duration,
) -> CatchUp {
    let mut result = CatchUp {
        done: None,
        consumer_done: BTreeMap::new(),
        published: 0,
        searchable: 0,
        last: Sample::default(),
        collector_done: None,
        peak_anon_kb: 0,
    };
    let mut next_line = Duration::ZERO;
    let mut previous: Option<Sample> = None;
    let mut last_search: Option<Instant> = None;
    let mut searchable_at: Option<Duration> = None;
    println!(
        "{:>6} {:>9} {:>20} {:>20} {:>20} {:>8} {:>6}",
        "t (s)",
        "collected",
        "indexer recv (lag)",
        "alerter recv (lag)",
        "forecaster (lag)",
        "RSS MB",
        "CPU %"
    );
    while spawned.elapsed() < timeout {
        std::thread::sleep(SAMPLE_EVERY);
        let at = spawned.elapsed();
        let Some(now) = sample(process, pid, at) else {
            continue;
        };
        let published = now.sent.get("collector").copied().unwrap_or(0.0) as u64;
        result.published = published;
        // A consumer has caught up at the first look, after one that saw everything
        // published, where its lag is 0 and it has received at least every observation (its
        // lag gauge is set when it last committed: a 0 from before the end of the backfill
        // says nothing). Later lag is live traffic (logs, live rounds).
        if result.collector_done.is_some_and(|done| done < at) {
            for consumer in CONSUMERS {
                let received = now.received.get(consumer).copied().unwrap_or(0.0) as u64;
                if now.lag.get(consumer) == Some(&0.0) && received >= expected {
                    result
                        .consumer_done
                        .entry(consumer.to_string())
                        .or_insert(at);
                }
            }
        }
        if published >= expected && result.collector_done.is_none() {
            result.collector_done = Some(at);
        }
        if at >= next_line {
            next_line += TIMELINE_EVERY;
            print_line(&now, previous.as_ref());
            previous = Some(now.clone());
        }
        result.peak_anon_kb = result.peak_anon_kb.max(now.anon_kb);
        result.last = now;
        // Once the indexer has read everything: is it all searchable? (At most twice a
        // second: a search over the whole index is work the indexer's process does too.)
        let search_due = last_search.is_none_or(|t| t.elapsed() >= Duration::from_millis(500));
        if searchable_at.is_none() && result.consumer_done.contains_key("indexer") && search_due {
            last_search = Some(Instant::now());
            let searchable = searchable_observations(process).unwrap_or(0);
            result.searchable = searchable;
            if searchable >= expected && searchable + regions_slack(expected) >= published {
                searchable_at = Some(at);
            }
        }
        if let Some(searchable) = searchable_at {
            if result.consumer_done.len() == CONSUMERS.len() {
                // The indexer is done when everything is searchable, which its lag alone
                // does not say.
                let indexer = result.consumer_done.entry("indexer".into()).or_default();
                *indexer = (*indexer).max(searchable);
                result.done = result.consumer_done.values().max().copied();
                break;
            }
        }
    }
    print_line(&result.last, previous.as_ref());
    let status = collector_status(process);
    println!(
        "collector: rounds_completed {}, backfill {}",
        status["rounds_completed"], status["backfill"]
    );
    result
}

/// Observations the live rounds may publish with the id of a backfilled one (the same region
/// and instant): those replace it in the index rather than adding one.
fn regions_slack(expected: u64) -> u64 {
    expected / 50
}

fn print_line(now: &Sample, previous: Option<&Sample>) {
    let get = |map: &BTreeMap<String, f64>, key: &str| map.get(key).copied().unwrap_or(0.0);
    let lag = |key: &str| {
        now.lag
            .get(key)
            .map_or_else(|| "-".to_string(), |l| format!("{l:.0}"))
    };
    let cpu = previous.map_or(0.0, |p| {
        100.0 * (now.cpu_seconds - p.cpu_seconds) / (now.at - p.at).as_secs_f64().max(0.001)
    });
    println!(
        "{:>6.1} {:>9.0} {:>20} {:>20} {:>20} {:>8.0} {:>6.0}",
        now.at.as_secs_f64(),
        get(&now.sent, "collector"),
        format!("{:.0} ({})", get(&now.received, "indexer"), lag("indexer")),
        format!("{:.0} ({})", get(&now.received, "alerter"), lag("alerter")),
        format!(
            "{:.0} ({})",
            get(&now.received, "forecaster"),
            lag("forecaster")
        ),
        now.rss_kb as f64 / 1024.0,
        cpu
    );
}

fn report_catch_up(result: &CatchUp, baseline: Option<&Baseline>, expected: u64) {
    match result.done {
        Some(done) => println!(
            "catch-up: {} observations searchable and every lag 0 after {:.1} s \
             (target: within 120 s: {})",
            result.searchable,
            done.as_secs_f64(),
            if done.as_secs_f64() <= 120.0 {
                "met"
            } else {
                "NOT met"
            }
        ),
        None => println!(
            "catch-up: NOT done within the timeout: {} of {expected} observations published, \
             {} searchable at the last look, lags {:?}",
            result.published, result.searchable, result.last.lag
        ),
    }
    if let Some(at) = result.collector_done {
        println!(
            "collector: {expected} observations published after {:.1} s ({:.0}/s)",
            at.as_secs_f64(),
            expected as f64 / at.as_secs_f64()
        );
    }
    let observations = result.published.max(expected) as f64;
    let indexer = result.consumer_done.get("indexer").copied();
    println!(
        "{:<12} {:>12} {:>14} {:>16}",
        "consumer", "caught up (s)", "observations/s", "vs the indexer"
    );
    for consumer in CONSUMERS {
        let Some(at) = result
            .consumer_done
            .get(consumer)
            .filter(|_| result.done.is_some())
        else {
            println!("{consumer:<12} {:>12} {:>14} {:>16}", "not", "-", "-");
            continue;
        };
        let rate = observations / at.as_secs_f64();
        let ratio = indexer.map_or(f64::NAN, |i| at.as_secs_f64() / i.as_secs_f64());
        println!(
            "{consumer:<12} {:>12.1} {:>14.0} {:>15.2}x",
            at.as_secs_f64(),
            rate,
            ratio
        );
    }
    if let Some(baseline) = baseline {
        if let Some(at) = indexer.filter(|_| result.done.is_some()) {
            let rate = observations / at.as_secs_f64();
            println!(
                "indexer alone (baseline): {:.0} observations/s ({:.1} s); in windsock up: \
                 {rate:.0}/s = {:.2} of the baseline",
                baseline.observations_per_second(),
                baseline.index.as_secs_f64(),
                rate / baseline.observations_per_second()
            );
        }
        println!(
            "(baseline publishing alone: {:.1} s for {} observations, {} messages in all)",
            baseline.publish.as_secs_f64(),
            baseline.observations,
            baseline.documents
        );
    }
    let peak = result.last.hwm_kb as f64 / 1024.0;
    println!(
        "peak RSS (VmHWM): {peak:.0} MB (target: under 1 GB: {}); of which anonymous memory \
         at most {:.0} MB where sampled, the rest the index's mapped files",
        if peak < 1024.0 { "met" } else { "NOT met" },
        result.peak_anon_kb as f64 / 1024.0
    );
}

/// The steady state: the collector's schedule compressed `speedup` times, the forecaster's
/// hourly refits at their real pace (measured by what they cost a region, see the module
/// docs), the CPU over a window after a warm-up.
fn steady(config: &Path, data: &Path, regions: usize, settings: &Settings) {
    let round = (900 / settings.speedup).max(1);
    let schedule = match round {
        s if s % 60 == 0 => format!("0 */{} * * * *", s / 60),
        s => format!("*/{s} * * * * *"),
    };
    let mut process = WindsockProcess::new(binary(), &["up"], data)
        .env("WINDSOCK_CONFIG", config.display().to_string())
        .env("WINDSOCK_COLLECTOR__SCHEDULE", schedule)
        .env("WINDSOCK_COLLECTOR__BACKFILL", "0s");
    let spawned = Instant::now();
    process.start().expect("windsock up starts (steady state)");
    let pid = pid_of(&process);
    // The forecaster refits every region once at its start: a whole hourly refit's cost.
    let origin = sample(&process, pid, spawned.elapsed()).expect("the process answers");
    // Warm-up: the start (the forecaster loading its history, the alerter its state) and
    // two rounds through every consumer.
    let warm_until = spawned + Duration::from_secs(round.max(20) * 2);
    while Instant::now() < warm_until {
        std::thread::sleep(Duration::from_secs(1));
    }
    let window = settings.steady;
    let first = sample(&process, pid, spawned.elapsed()).expect("the process answers");
    let mut last = first.clone();
    // The CPU of the quietest 5 s, less the forecaster's fits in them: what runs whatever
    // the schedule (timers, metrics, the alerter's evaluation tick).
    let mut quietest = f64::INFINITY;
    while spawned.elapsed() < first.at + window {
        std::thread::sleep(Duration::from_secs(5));
        let Some(now) = sample(&process, pid, spawned.elapsed()) else {
            continue;
        };
        let seconds = (now.at - last.at).as_secs_f64();
        let busy = (now.cpu_seconds - last.cpu_seconds) - (now.fit_seconds - last.fit_seconds);
        quietest = quietest.min(busy.max(0.0) / seconds);
        last = now;
    }
    let seconds = (last.at - first.at).as_secs_f64();
    let used = last.cpu_seconds - first.cpu_seconds;
    let fits = last.fit_seconds - first.fit_seconds;
    let get = |s: &Sample, key: &str| s.sent.get(key).copied().unwrap_or(0.0);
    let forecasts = get(&last, "forecaster") - get(&first, "forecaster");
    // What a region's refit costs, over every refit since the start.
    let all_fits = last.fit_seconds - origin.fit_seconds;
    let all_forecasts = get(&last, "forecaster") - get(&origin, "forecaster");
    let rounds_rate = (used - fits).max(0.0) / seconds;
    let idle = quietest.min(rounds_rate);
    let rounds_real = idle + (rounds_rate - idle) / settings.speedup as f64;
    // A region's refit (its fits and backtests) costs `fits / forecasts` seconds; each region
    // is refitted once an hour.
    let refits_real =
        (all_forecasts > 0.0).then(|| all_fits / all_forecasts * regions as f64 / 3600.0);
    println!(
        "steady state, {regions} regions, {seconds:.0} s window with a round every {round} s \
         (1/{} of 15 minutes): {:.1}% of one core in all ({used:.1} CPU s), of which the \
         forecaster's fits {fits:.1} s for {forecasts:.0} forecasts",
        settings.speedup,
        100.0 * used / seconds,
    );
    println!(
        "  rounds and the rest: {:.1}% at 1/{} (quietest 5 s {:.2}%), about {:.2}% of one core \
         at a 15-minute schedule",
        100.0 * rounds_rate,
        settings.speedup,
        100.0 * idle,
        100.0 * rounds_real
    );
    match refits_real {
        Some(refits) => {
            let total = rounds_real + refits;
            println!(
                "  hourly refits: {:.4} s of fitting a region ({all_fits:.1} s for \
                 {all_forecasts:.0} forecasts since the start) = {:.2}% of one core for \
                 {regions} regions every hour (fit time is wall time on a busy machine: an \
                 upper bound of CPU)",
                all_fits / all_forecasts,
                100.0 * refits
            );
            println!(
                "  steady state at a 15-minute schedule: about {:.1}% of one core (target: \
                 under 5%: {})",
                100.0 * total,
                if total < 0.05 { "met" } else { "NOT met" }
            );
        }
        None => println!(
            "  no forecast was published since the start: the refits' cost is not measured \
             (steady state without them: {:.2}% of one core)",
            100.0 * rounds_real
        ),
    }
    // Fit time leaves out what a refit does around the fits (history, ledgers written,
    // forecasts published): the CPU of the warm-up, which holds the start, the refit of every
    // region and two rounds, bounds a whole refit from above.
    let warm_up = first.cpu_seconds - origin.cpu_seconds;
    println!(
        "  the warm-up (start, a refit of every region, two rounds) took {warm_up:.1} CPU s in \
         {:.0} s: as an hourly cost, at most {:.2}% of one core",
        (first.at - origin.at).as_secs_f64(),
        100.0 * warm_up / 3600.0
    );
    let status = collector_status(&process);
    println!(
        "  rounds_completed {}, lags {:?}, RSS {:.0} MB",
        status["rounds_completed"],
        last.lag,
        last.rss_kb as f64 / 1024.0
    );
    if !process.stop(Duration::from_secs(30)) {
        println!(
            "(windsock up did not stop cleanly: see {})",
            log_path(&process)
        );
    }
}

/// The machine, for the record: cores and model.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores, {model}")
}
