//! `/metrics` per Prometheus conventions, on a live `windsock up`: `promtool check metrics`
//! finds nothing to say, every family windsock documents is there with `# HELP` and `# TYPE`,
//! counters are listed at zero before anything happens, and the dashboard and alerting rules
//! in `deploy/` name only families windsock exports (and pass promtool's own checks).
//!
//! promtool comes with Debian's `prometheus` package (`scripts/test.sh` installs it). Without
//! it the promtool checks fail under `CI=true` and are skipped with a message elsewhere.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use windsock_testkit::{http_get, WindsockProcess};

const BIN: &str = env!("CARGO_BIN_EXE_windsock");

/// Every family windsock exports in `windsock up`, with its type.
const FAMILIES: &[(&str, &str)] = &[
    ("windsock_received_total", "counter"),
    ("windsock_sent_total", "counter"),
    ("windsock_errors_total", "counter"),
    ("windsock_dropped_total", "counter"),
    ("windsock_bus_lag", "gauge"),
    ("windsock_service_restarts_total", "counter"),
    ("windsock_http_errors_total", "counter"),
    ("windsock_http_panics_total", "counter"),
    ("windsock_dead_letters_total", "counter"),
    ("windsock_fetch_duration_seconds", "histogram"),
    ("windsock_collector_last_round_timestamp_seconds", "gauge"),
    ("windsock_collector_last_success_timestamp_seconds", "gauge"),
    ("windsock_collector_interval_seconds", "gauge"),
    ("windsock_collector_missed_ticks_total", "counter"),
    ("windsock_collector_tick_lateness_seconds", "gauge"),
    ("windsock_search_duration_seconds", "histogram"),
    ("windsock_index_commit_duration_seconds", "histogram"),
    ("windsock_index_documents", "gauge"),
    ("windsock_index_size_bytes", "gauge"),
    ("windsock_disk_full", "gauge"),
    ("windsock_disk_full_total", "counter"),
    ("windsock_slack_delivery_seconds", "histogram"),
    ("windsock_alerts_firing", "gauge"),
    ("windsock_forecast_fit_seconds", "histogram"),
];

/// The services `windsock up` runs, each with its counters from the start.
const SERVICES: &[&str] = &["collector", "indexer", "forecaster", "alerter", "ui"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// promtool, or `None` (and a message) where it is missing outside CI.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("promtool"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!(
                "promtool is missing: scripts/test.sh installs it (Debian's prometheus package)"
            );
        }
        eprintln!(
            "skipping: promtool is missing (apt-get install prometheus, or run scripts/test.sh)"
        );
    }
    found
}

/// Runs promtool with `args` in `dir`, `stdin` piped in; its exit status and its output.
fn run_promtool(promtool: &Path, dir: &Path, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Family name to type, from the `# TYPE` lines.
fn types(metrics: &str) -> BTreeMap<String, String> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_string(), kind.trim().to_string()))
        .collect()
}

/// The value of the sample `series` (a name with its labels, as rendered).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Every `windsock_...` metric name in `expr`, each as its family (a histogram's `_bucket`,
/// `_sum` and `_count` series belong to it).
fn families_in(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("windsock_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        names.insert(family.to_string());
        rest = &tail[end..];
    }
    names
}

/// Every string under a key named `key`, anywhere in `value`.
fn strings_under(value: &serde_json::Value, key: &str, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match v {
                    serde_json::Value::String(s) if k == key => found.push(s.clone()),
                    _ => strings_under(v, key, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings_under(v, key, found)),
        _ => {}
    }
}

/// Scrapes a live `windsock up` once a collection round has been fetched, indexed and
/// searched, so every histogram has seen samples.
fn live_metrics() -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut windsock = WindsockProcess::new(BIN, &["up"], &dir.path().join("data"))
        .env("WINDSOCK_COLLECTOR__SCHEDULE", "*/2 * * * * *")
        .env("WINDSOCK_COLLECTOR__BACKFILL", "0s");
    windsock.start().unwrap();
    let base = windsock.base_url();
    let get = |path: &str| {
        let url = format!("{base}{path}");
        http_get(&url).unwrap_or_else(|e| panic!("GET {url}: {e}"))
    };
    // From the start, every service's counters are there (its supervisor registers them as
    // it starts it, which may come a moment after the first /healthz answers).
    let all_listed = |metrics: &str| {
        SERVICES.iter().all(|service| {
            sample(
                metrics,
                &format!("windsock_received_total{{service=\"{service}\"}}"),
            )
            .is_some()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let early = loop {
        let (status, early) = get("/metrics");
        assert_eq!(status, 200, "{early}");
        if all_listed(&early) || Instant::now() > deadline {
            break early;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(all_listed(&early), "{SERVICES:?}:\n{early}");
    assert_eq!(
        sample(
            &early,
            r#"windsock_errors_total{service="indexer",kind="commit"}"#
        ),
        Some(0.0),
        "{early}"
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let (status, body) = get("/api/search?q=*&from=now-1h");
        assert_eq!(status, 200, "{body}");
        let (_, metrics) = get("/metrics");
        let ready = sample(
            &metrics,
            r#"windsock_collector_last_round_timestamp_seconds{service="collector"}"#,
        )
        .is_some()
            && sample(&metrics, "windsock_index_commit_duration_seconds_count")
                .is_some_and(|n| n > 0.0)
            && sample(&metrics, "windsock_index_documents").is_some_and(|n| n > 0.0);
        if ready || Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        windsock.stop(Duration::from_secs(20)),
        "unclean shutdown:\n{}",
        windsock.logs()
    );
    metrics
}

#[test]
fn live_metrics_follow_prometheus_conventions_and_the_dashboard_and_rules_name_only_them() {
    let metrics = live_metrics();
    let exported = types(&metrics);

    for (family, kind) in FAMILIES {
        assert_eq!(
            exported.get(*family).map(String::as_str),
            Some(*kind),
            "{family} is not exported as a {kind}:\n{metrics}"
        );
        assert!(
            metrics.contains(&format!("# HELP {family} ")),
            "{family} has no HELP:\n{metrics}"
        );
    }
    for (family, kind) in &exported {
        assert!(
            metrics.contains(&format!("# HELP {family} ")),
            "{family} ({kind}) has no HELP:\n{metrics}"
        );
    }
    // A round went through: fetched, indexed, searched, the interval known.
    for series in [
        r#"windsock_fetch_duration_seconds_count{source="simulated"}"#,
        "windsock_search_duration_seconds_count",
        "windsock_index_commit_duration_seconds_count",
        r#"windsock_collector_interval_seconds{service="collector"}"#,
    ] {
        assert!(
            sample(&metrics, series).is_some_and(|n| n > 0.0),
            "{series}:\n{metrics}"
        );
    }
    assert!(
        metrics.contains(r#"windsock_fetch_duration_seconds_bucket{source="simulated",le="0.01"}"#),
        "fetch latency has its buckets:\n{metrics}"
    );
    // Failures that did not happen are counted at zero, for every service.
    for service in SERVICES {
        for family in ["windsock_errors_total", "windsock_dropped_total"] {
            let prefix = format!("{family}{{service=\"{service}\",");
            assert!(
                metrics.lines().any(|l| l.starts_with(&prefix)),
                "{prefix}:\n{metrics}"
            );
        }
        let restarts = format!("windsock_service_restarts_total{{service=\"{service}\"}}");
        assert_eq!(sample(&metrics, &restarts), Some(0.0), "{metrics}");
    }
    assert_eq!(
        sample(
            &metrics,
            r#"windsock_errors_total{service="collector",kind="timeout"}"#
        ),
        Some(0.0),
        "{metrics}"
    );

    if let Some(promtool) = promtool() {
        // Silent and successful: promtool prints each lint problem it finds.
        let (ok, said) = run_promtool(&promtool, &root(), &["check", "metrics"], &metrics);
        assert!(
            ok && said.trim().is_empty(),
            "promtool check metrics:\n{said}"
        );
    }

    // Every PromQL expression of the dashboard and the rules names exported families only.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/grafana/windsock.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    strings_under(&dashboard, "expr", &mut exprs);
    assert!(exprs.len() >= 20, "the dashboard has its panels: {exprs:?}");
    strings_under(&dashboard["templating"], "query", &mut exprs);
    let rules: serde_json::Value = serde_norway::from_str(
        &std::fs::read_to_string(root().join("deploy/prometheus/windsock-rules.yml")).unwrap(),
    )
    .expect("the rules are YAML");
    let mut rule_exprs = Vec::new();
    strings_under(&rules, "expr", &mut rule_exprs);
    assert!(rule_exprs.len() >= 8, "{rule_exprs:?}");
    let mut named = BTreeSet::new();
    for expr in exprs.iter().chain(&rule_exprs) {
        for family in families_in(expr) {
            assert!(
                exported.contains_key(&family),
                "`{expr}` names {family}, which windsock does not export"
            );
            named.insert(family);
        }
    }
    // The dashboard shows every family an operator acts on.
    for (family, _) in FAMILIES {
        assert!(
            named.contains(*family),
            "neither the dashboard nor the rules use {family}"
        );
    }
}

#[test]
fn the_alerting_rules_pass_promtool_and_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    let dir = root().join("deploy/prometheus");
    let (ok, said) = run_promtool(
        &promtool,
        &dir,
        &["check", "rules", "windsock-rules.yml"],
        "",
    );
    assert!(ok, "promtool check rules:\n{said}");
    assert!(said.contains("SUCCESS"), "{said}");
    let (ok, said) = run_promtool(
        &promtool,
        &dir,
        &["test", "rules", "windsock-rules.test.yml"],
        "",
    );
    assert!(ok, "promtool test rules:\n{said}");
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let names = families_in(
        r#"histogram_quantile(0.99, sum by (le) (rate(windsock_search_duration_seconds_bucket{instance=~"$instance"}[5m]))) / windsock_bus_lag"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["windsock_bus_lag", "windsock_search_duration_seconds"]
    );
}
