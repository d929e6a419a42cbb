//! The `windsock` binary end to end: `windsock up` with the simulated source, `config check`.

use std::process::Command;
use std::time::{Duration, Instant};
use windsock_testkit::{http_get, WindsockProcess};

const BIN: &str = env!("CARGO_BIN_EXE_windsock");

fn get(url: &str) -> (u16, String) {
    http_get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

fn json(url: &str) -> serde_json::Value {
    let (status, body) = get(url);
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

#[test]
fn up_with_the_simulated_source_publishes_every_region_within_one_round() {
    let dir = tempfile::tempdir().unwrap();
    let mut windsock = WindsockProcess::new(BIN, &["up"], &dir.path().join("data"))
        .env("WINDSOCK_COLLECTOR__SCHEDULE", "*/2 * * * * *")
        .env("WINDSOCK_COLLECTOR__BACKFILL", "0s");
    windsock.start().unwrap();
    let base = windsock.base_url();

    // One scheduled round (every 2 s) plus the indexer's commit interval: well within 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    let regions = loop {
        let answer = json(&format!("{base}/api/regions"));
        let regions = answer["regions"].as_array().cloned().unwrap_or_default();
        let seen = regions.iter().filter(|r| !r["last_seen"].is_null()).count();
        if seen == 14 || Instant::now() > deadline {
            break regions;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let unseen: Vec<&str> = regions
        .iter()
        .filter(|r| r["last_seen"].is_null())
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(regions.len(), 14, "{regions:?}");
    assert!(
        unseen.is_empty(),
        "regions without an observation after one round: {unseen:?}\n{}",
        windsock.logs()
    );

    // The pipeline's own logs are searchable beside the data.
    let logs = json(&format!("{base}/api/search?q=kind:log&from=now-1h"));
    assert!(
        logs["total"].as_u64().unwrap_or(0) > 0,
        "no log events indexed: {logs}"
    );

    // Prometheus counters per service.
    let (status, metrics) = get(&format!("{base}/metrics"));
    assert_eq!(status, 200);
    assert!(
        metrics.contains("windsock_sent_total{service=\"collector\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("windsock_received_total{service=\"indexer\"}"),
        "{metrics}"
    );

    // SIGTERM shuts down cleanly.
    assert!(
        windsock.stop(Duration::from_secs(20)),
        "unclean shutdown:\n{}",
        windsock.logs()
    );
}

#[test]
fn config_check_prints_every_problem_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("windsock.toml");
    std::fs::write(
        &file,
        "[collector]\nconcurrency = 0\n\n[[regions]]\nname = \"Dakar\"\nlat = 120.0\nlon = 0.0\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("collector.concurrency"), "{stderr}");
    assert!(stderr.contains("regions[0].lat"), "{stderr}");

    std::fs::write(&file, "[http]\nlisten = \"127.0.0.1:9999\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration ok"));
}

#[test]
fn config_show_never_prints_secrets() {
    let out = Command::new(BIN)
        .args(["config", "show"])
        .env(
            "WINDSOCK_SLACK_WEBHOOK_URL",
            "https://hooks.slack.com/services/T1/B2/very-secret",
        )
        .env("OPENWEATHERMAP_API_KEY", "owm-very-secret")
        .env("WINDSOCK_API_TOKEN", "token-very-secret")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[redacted]"), "{stdout}");
    assert!(!stdout.contains("very-secret"), "{stdout}");
}
