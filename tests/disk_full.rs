//! A real full disk under `windsock up`: the data directory is a 16 MB tmpfs, filled to the
//! last byte after start. The process keeps serving `/healthz` and search, a region that goes
//! silent meanwhile is still alerted on Slack (the alerter's outbox falls back to memory),
//! the indexer says `disk_full` and holds what it cannot commit; once the filler is deleted,
//! new events are searchable again and every observation is indexed exactly once.
//!
//! Mounting needs root (or CAP_SYS_ADMIN): elsewhere the test says it is skipped and passes.
//! To run it: `sudo -E cargo test --test disk_full` (or in a container with
//! `--cap-add SYS_ADMIN`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use windsock_testkit::{http_get, wait_until, WindsockProcess};

const BIN: &str = env!("CARGO_BIN_EXE_windsock");

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Self(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a process being killed): detach it, the kernel frees it after.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

#[derive(Default)]
struct Slack {
    /// Each delivered payload, with when it arrived.
    delivered: Vec<(Instant, serde_json::Value)>,
}

async fn webhook(
    State(slack): State<Arc<Mutex<Slack>>>,
    body: String,
) -> (StatusCode, &'static str) {
    match serde_json::from_str(&body) {
        Ok(payload) => {
            slack
                .lock()
                .unwrap()
                .delivered
                .push((Instant::now(), payload));
            (StatusCode::OK, "ok")
        }
        Err(_) => (StatusCode::BAD_REQUEST, "invalid_payload"),
    }
}

fn json(url: &str) -> Option<serde_json::Value> {
    let (status, body) = http_get(url).ok()?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

/// Writes until the file system refuses (ENOSPC); returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 256 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(err) => {
                assert_eq!(
                    err.raw_os_error(),
                    Some(28),
                    "filling stopped on something else than ENOSPC: {err}"
                );
                break;
            }
        }
    }
    // Whatever is left in a partial page.
    let _ = file.write(&[0u8; 1]);
    let _ = file.sync_all();
    written
}

/// The indexed observations of `region`: their observed instants, duplicates kept.
fn observations(base: &str, region: &str) -> Vec<String> {
    let answer = json(&format!(
        "{base}/api/search?q=kind:observation%20AND%20region:{region}&from=now-1h&limit=1000"
    ))
    .expect("search answers");
    answer["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| {
            hit["event"]["observed_at"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// Regions still reporting throughout (Dakar goes silent).
const REPORTING: [&str; 3] = ["Louga", "Kaolack", "Matam"];

fn headers(slack: &Mutex<Slack>) -> Vec<(Instant, String)> {
    slack
        .lock()
        .unwrap()
        .delivered
        .iter()
        .map(|(at, p)| (*at, p.to_string()))
        .collect()
}

#[test]
fn a_full_disk_neither_stops_alerting_nor_loses_events() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tmpfs = match Tmpfs::mount(&data, "16m") {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            println!("skipping: cannot mount a tmpfs here ({why}); run as root to include it");
            return;
        }
    };

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let slack = Arc::new(Mutex::new(Slack::default()));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let webhook_url = format!(
        "http://{}/services/T0001/B0002/diskfullSECRET",
        listener.local_addr().unwrap()
    );
    let app = Router::new()
        .route("/services/{*path}", post(webhook))
        .with_state(slack.clone());
    runtime.spawn(async move { axum::serve(listener, app).await });

    let config = dir.path().join("windsock.toml");
    // Dakar goes silent 12 s after start: after the disk is filled (a few seconds in).
    std::fs::write(
        &config,
        r#"
[collector]
schedule = "*/1 * * * * *"
backfill = "0s"
[[collector.simulated.faults]]
kind = "silent"
region = "Dakar"
after = "12s"
duration = "10h"

[indexer]
commit_interval = "200ms"
writer_memory_mb = 15

[alerter]
evaluation_interval = "200ms"
min_hold = "1h"
[[alerter.rules]]
kind = "late_data"
name = "late_data"
late_after = "3s"
[[alerter.rules]]
kind = "pipeline_health"
name = "pipeline_health"
"#,
    )
    .unwrap();
    let mut windsock =
        WindsockProcess::new(BIN, &["up", "--config", config.to_str().unwrap()], &data)
            .env("WINDSOCK_SLACK_WEBHOOK_URL", &webhook_url);
    windsock.start().unwrap();
    let base = windsock.base_url();

    wait_until(
        "the first observations indexed",
        Duration::from_secs(30),
        || observations(&base, "Louga").len() >= 2,
        || windsock.logs(),
    );

    // The disk fills.
    let filler = data.join("filler");
    let filled_at = Instant::now();
    let written = fill(&filler);
    println!("filled the tmpfs with {written} bytes");

    // The indexer holds what it cannot commit and says so; the process keeps serving.
    wait_until(
        "the indexer's disk_full",
        Duration::from_secs(30),
        || {
            http_get(&format!("{base}/metrics"))
                .is_ok_and(|(_, m)| m.contains("windsock_disk_full{service=\"indexer\"} 1"))
        },
        || windsock.logs(),
    );
    let full_at = chrono::Utc::now();
    let (status, _) = http_get(&format!("{base}/healthz")).expect("/healthz answers");
    assert!(status == 200 || status == 503, "/healthz: {status}");
    let during = observations(&base, "Louga");
    assert!(!during.is_empty(), "search keeps serving what is committed");

    // Dakar goes silent while the disk is full: its late-data alert reaches Slack.
    wait_until(
        "Dakar's late-data alert on Slack",
        Duration::from_secs(40),
        || {
            headers(&slack)
                .iter()
                .any(|(_, text)| text.contains("late_data") && text.contains("Dakar"))
        },
        || windsock.logs(),
    );
    let (arrived, _) = headers(&slack)
        .into_iter()
        .find(|(_, text)| text.contains("late_data") && text.contains("Dakar"))
        .unwrap();
    assert!(arrived > filled_at, "the alert came after the disk filled");
    // Whether the alerter's outbox had to fall back to memory depends on whether SQLite
    // needed a new page meanwhile (its WAL reuses its own); either way the notice went out.
    let deliveries = json(&format!("{base}/api/deliveries")).expect("/api/deliveries answers");
    println!(
        "outbox_durable on the full disk: {}",
        deliveries["outbox_durable"]
    );
    // And the pipeline alerts about itself.
    wait_until(
        "the disk_full alert on Slack",
        Duration::from_secs(30),
        || {
            headers(&slack)
                .iter()
                .any(|(_, text)| text.contains("disk_full"))
        },
        || windsock.logs(),
    );
    assert!(
        windsock.is_running(),
        "the process keeps running:\n{}",
        windsock.logs()
    );
    let (status, _) = http_get(&format!("{base}/api/search?q=*&from=now-1h")).unwrap();
    assert_eq!(status, 200, "search answers on a full disk");

    // Space returns: everything held is indexed, once.
    std::fs::remove_file(&filler).unwrap();
    let freed_at = chrono::Utc::now();
    wait_until(
        "the indexer committing again",
        Duration::from_secs(60),
        || {
            http_get(&format!("{base}/metrics"))
                .is_ok_and(|(_, m)| m.contains("windsock_disk_full{service=\"indexer\"} 0"))
        },
        || windsock.logs(),
    );
    let fresh = |seen: &[String]| {
        seen.iter()
            .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .any(|t| t > freed_at + chrono::Duration::seconds(1))
    };
    wait_until(
        "new events searchable again",
        Duration::from_secs(30),
        || REPORTING.iter().all(|r| fresh(&observations(&base, r))),
        || windsock.logs(),
    );
    let mut after: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for region in REPORTING {
        after.insert(region, observations(&base, region));
    }
    for (region, instants) in &after {
        let unique: BTreeSet<&String> = instants.iter().collect();
        assert_eq!(
            unique.len(),
            instants.len(),
            "{region} has a duplicate: {instants:?}"
        );
        // Every scheduled second of the full-disk episode is there: what the indexer held
        // and what waited on the bus, none lost.
        let seconds: BTreeSet<i64> = instants
            .iter()
            .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp())
            .collect();
        let missing: Vec<i64> = (full_at.timestamp()..freed_at.timestamp())
            .filter(|s| !seconds.contains(s))
            .collect();
        assert!(
            missing.is_empty(),
            "observations of {region} missing for seconds {missing:?} of {}..{}:\n{}",
            full_at.timestamp(),
            freed_at.timestamp(),
            windsock.logs()
        );
    }
    let search = json(&format!(
        "{base}/api/search?q=fields.condition:disk_full&from=now-1h"
    ))
    .unwrap();
    assert!(
        search["total"].as_u64().unwrap_or(0) >= 2,
        "the failing and ok conditions are searchable: {search}"
    );

    assert!(
        windsock.stop(Duration::from_secs(20)),
        "unclean shutdown:\n{}",
        windsock.logs()
    );
    drop(windsock);
    drop(tmpfs);
}
