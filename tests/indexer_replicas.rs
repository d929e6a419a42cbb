//! Indexer replicas on a real Kafka-protocol broker (tansu): a collector, two `windsock
//! indexer` replicas (each its own consumer group, `indexer.replica`) and a `windsock ui`
//! given both URLs. Both replicas index every partition (the second, started late, from the
//! start of the topics); after the first is killed with -9,
//! every search through the UI still answers with hits (the proxy fails over to the second),
//! and so does `windsock search` given both URLs.

use chrono::{DateTime, Duration as Span, DurationRound, Utc};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};
use windsock_testkit::tansu::Tansu;
use windsock_testkit::{http_get, WindsockProcess};

const BIN: &str = env!("CARGO_BIN_EXE_windsock");
/// The regions of the default configuration, each observed once a round.
const REGIONS: usize = 14;
/// Consecutive searches through the UI that must each answer with hits after the kill.
const SEARCHES_AFTER_KILL: usize = 30;

fn enc(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn get_json(url: &str) -> (u16, Value) {
    let (status, body) = http_get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"));
    (status, value)
}

/// The ids of the observations `base` has indexed from `from` to `to` (both included).
fn observations(base: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> BTreeSet<String> {
    let url = format!(
        "{base}/api/search?q=kind:observation&from={}&to={}&limit=1000",
        enc(&from.to_rfc3339()),
        enc(&to.to_rfc3339())
    );
    let (status, body) = get_json(&url);
    assert_eq!(status, 200, "{url}: {body}");
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["id"].as_str().unwrap().to_string())
        .collect()
}

fn tail(logs: &str) -> String {
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The last lines of each process's log, for failure messages.
fn logs(processes: &[(&str, &WindsockProcess)]) -> String {
    processes
        .iter()
        .map(|(name, process)| format!("--- {name}\n{}\n", tail(&process.logs())))
        .collect()
}

fn on_kafka(process: WindsockProcess, broker: &Tansu) -> WindsockProcess {
    process
        .env("WINDSOCK_BUS__KIND", "kafka")
        .env("WINDSOCK_BUS__BROKERS", broker.bootstrap())
}

#[test]
fn two_replicas_index_everything_and_search_survives_one_killed() {
    let broker = Tansu::start();
    let dir = tempfile::tempdir().unwrap();
    let indexer = |replica: &str| {
        on_kafka(
            WindsockProcess::new(
                BIN,
                &["indexer"],
                &dir.path().join(format!("indexer-{replica}")),
            ),
            &broker,
        )
        .env("WINDSOCK_INDEXER__REPLICA", replica)
        .env("WINDSOCK_INDEXER__COMMIT_INTERVAL", "150ms")
    };
    let mut replica_a = indexer("a");
    let mut replica_b = indexer("b");
    replica_a.start().unwrap();
    let mut collector = on_kafka(
        WindsockProcess::new(BIN, &["collector"], &dir.path().join("collector")),
        &broker,
    )
    .env("WINDSOCK_COLLECTOR__SCHEDULE", "* * * * * *")
    .env("WINDSOCK_COLLECTOR__BACKFILL", "0s");
    collector.start().unwrap();
    let (a, b) = (replica_a.base_url(), replica_b.base_url());
    let mut ui = on_kafka(
        WindsockProcess::new(BIN, &["ui"], &dir.path().join("ui")),
        &broker,
    )
    .env("WINDSOCK_INDEXER__URL", format!("{a},{b}"))
    .env("WINDSOCK_UI__PROXY_TIMEOUT", "10s");
    ui.start().unwrap();
    let front = ui.base_url();

    // Replica b starts once a has indexed a few rounds: a replica added later fills its index
    // from what the topics retain (its new group reads from the earliest offset).
    let since = Utc::now() - Span::minutes(5);
    let deadline = Instant::now() + Duration::from_secs(30);
    while observations(&a, since, Utc::now()).len() < 2 * REGIONS {
        assert!(
            Instant::now() < deadline,
            "replica a indexed nothing:\n{}",
            logs(&[("indexer a", &replica_a), ("collector", &collector)])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    replica_b.start().unwrap();
    // Both replicas hold every observation of whole rounds, the same ones, those from before
    // b started included: each reads every partition (replicas sharing a group would each
    // hold a part).
    let first_seen = observations(&a, since, Utc::now());
    let deadline = Instant::now() + Duration::from_secs(40);
    let (in_a, in_b) = loop {
        let until = Utc::now().duration_trunc(Span::seconds(1)).unwrap() - Span::seconds(2);
        let in_a = observations(&a, since, until);
        let in_b = observations(&b, since, until);
        let whole_rounds = in_a.len() >= 3 * REGIONS && in_a.len().is_multiple_of(REGIONS);
        if (whole_rounds && in_a == in_b) || Instant::now() > deadline {
            break (in_a, in_b);
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        in_a.len() >= 3 * REGIONS && in_a.len().is_multiple_of(REGIONS),
        "replica a has {} observations, not whole rounds of every region (a replica sharing \
         its group reads only some partitions):\n{}",
        in_a.len(),
        logs(&[
            ("indexer a", &replica_a),
            ("indexer b", &replica_b),
            ("collector", &collector)
        ])
    );
    assert_eq!(in_a, in_b, "both replicas hold the same observations");
    assert!(
        first_seen.is_subset(&observations(&b, since, Utc::now())),
        "replica b indexed what was collected before it started"
    );

    // How long searches through the UI take, printed for people (not asserted): with both
    // replicas up, then after the kill (the first one pays the failover).
    let search_url = format!("{front}/api/search?q=kind:observation&from=now-5m&limit=5");
    let timed = |took: &mut Vec<Duration>| {
        let start = Instant::now();
        let answer = get_json(&search_url);
        took.push(start.elapsed());
        answer
    };
    let mut both_up = Vec::new();
    for _ in 0..SEARCHES_AFTER_KILL {
        assert_eq!(timed(&mut both_up).0, 200);
    }

    // The replica the UI asks first dies.
    replica_a.kill9();
    let killed_at = Utc::now();
    let mut after_kill = Vec::new();
    for i in 0..SEARCHES_AFTER_KILL {
        let (status, answer) = timed(&mut after_kill);
        assert_eq!(
            (status, answer["total"].as_u64().is_some_and(|t| t > 0)),
            (200, true),
            "search {i} after the kill: {answer}\n{}",
            logs(&[("indexer b", &replica_b), ("ui", &ui)])
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let median = |took: &mut Vec<Duration>| {
        took.sort();
        took[took.len() / 2]
    };
    eprintln!(
        "searches through the UI: median {:?} with both replicas up; after the kill, the \
         first {:?}, median {:?}",
        median(&mut both_up),
        after_kill[0],
        median(&mut after_kill.clone())
    );
    // And what is collected after the kill is searchable through the UI (replica b goes on).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let url = format!(
            "{front}/api/search?q=kind:observation&from={}&limit=1",
            enc(&(killed_at + Span::seconds(1)).to_rfc3339())
        );
        let (status, answer) = get_json(&url);
        assert_eq!(status, 200, "{answer}");
        if answer["total"].as_u64() > Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing collected after the kill reached the search:\n{}",
            logs(&[
                ("indexer b", &replica_b),
                ("collector", &collector),
                ("ui", &ui)
            ])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, metrics) = http_get(&format!("{front}/metrics")).unwrap();
    let failovers = metrics
        .lines()
        .find_map(|l| l.strip_prefix("windsock_proxy_failovers_total{service=\"indexer\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(
        failovers.is_some_and(|n| n >= 1.0),
        "the failover is counted: {failovers:?}"
    );
    // The dead replica is skipped for a while: most searches went straight to b.
    assert!(
        failovers.unwrap() < SEARCHES_AFTER_KILL as f64,
        "{failovers:?}"
    );

    // `windsock search` given both URLs answers from the one alive.
    let out = Command::new(BIN)
        .args(["search", "kind:observation", "--from", "now-5m", "--url"])
        .arg(format!("{a},{b}"))
        .env_remove("RUST_LOG")
        .env("WINDSOCK_DATA_DIR", dir.path().join("cli"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("TIME"), "{stdout}");
    assert!(stdout.contains("observation"), "{stdout}");
    // The same through WINDSOCK_INDEXER__URL, and with both dead it names each.
    replica_b.kill9();
    let out = Command::new(BIN)
        .args(["search", "kind:observation", "--from", "now-5m"])
        .env_remove("RUST_LOG")
        .env("WINDSOCK_DATA_DIR", dir.path().join("cli"))
        .env("WINDSOCK_INDEXER__URL", format!("{a},{b}"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot reach the search API at any of its 2 URLs")
            && stderr.contains(&a)
            && stderr.contains(&b),
        "{stderr}"
    );
    let (status, answer) = get_json(&format!("{front}/api/search?q=*"));
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["detail"]["replicas_tried"], 2);

    assert!(
        collector.stop(Duration::from_secs(20)),
        "{}",
        collector.logs()
    );
    assert!(ui.stop(Duration::from_secs(20)), "{}", ui.logs());
}
