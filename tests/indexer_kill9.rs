//! The indexer survives `kill -9` while events stream in: after restarts the index holds
//! exactly the produced set, none missing and none twice. On Kafka (a real tansu broker, the
//! producer in this process, a child `windsock indexer`) and on the embedded bus (a child
//! `windsock up` whose collector backfills what died in memory with the process).

use chrono::{DateTime, Duration, DurationRound, Utc};
use std::collections::BTreeSet;
use std::time::{Duration as StdDuration, Instant};
use windsock_core::bus::{KafkaBus, Topic};
use windsock_core::config::{BusConfig, BusKind};
use windsock_core::event::Envelope;
use windsock_testkit::tansu::Tansu;
use windsock_testkit::{http_get, WindsockProcess};

const BIN: &str = env!("CARGO_BIN_EXE_windsock");

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

/// The total and the ids of every hit of `q` in `[from, to]`.
fn search(base: &str, q: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> (u64, Vec<String>) {
    let url = format!(
        "{base}/api/search?q={}&from={}&to={}&limit=100000",
        enc(q),
        enc(&from.to_rfc3339()),
        enc(&to.to_rfc3339())
    );
    let (status, body) = http_get(&url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(status, 200, "{url}: {body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect();
    (body["total"].as_u64().unwrap(), ids)
}

/// Polls until the total of `q` reaches `expected` (or 90 s pass), then returns what is there.
fn settle(
    base: &str,
    q: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    expected: u64,
) -> (u64, Vec<String>) {
    let deadline = Instant::now() + StdDuration::from_secs(90);
    loop {
        let found = search(base, q, from, to);
        if found.0 >= expected || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(StdDuration::from_millis(200));
    }
}

fn assert_exactly(total: u64, ids: &[String], want: &BTreeSet<String>, logs: &str) {
    let got: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len() as u64, total, "every hit returned");
    assert_eq!(got.len(), ids.len(), "no event twice");
    let missing: Vec<_> = want.difference(&got).take(5).collect();
    let extra: Vec<_> = got.difference(want).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, unexpected {extra:?} ({} of {})\n{}",
        got.len(),
        want.len(),
        tail(logs)
    );
}

/// The last lines a child printed, for failure messages.
fn tail(logs: &str) -> String {
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
fn kill_9_while_streaming_from_kafka_loses_and_duplicates_nothing() {
    let broker = Tansu::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bus_config = BusConfig {
        kind: BusKind::Kafka,
        brokers: broker.bootstrap(),
        ..BusConfig::default()
    };
    let bus = runtime
        .block_on(KafkaBus::connect(&bus_config))
        .expect("connect to tansu");

    let start = Utc::now() - Duration::hours(1);
    let events: Vec<Envelope> =
        windsock_indexer::synthetic::events(4000, start, Duration::minutes(50), 11)
            .into_iter()
            .filter(|e| e.event.kind() == "observation")
            .collect();
    let want: BTreeSet<String> = events.iter().map(|e| e.id.clone()).collect();
    let producer = runtime.spawn(async move {
        // 40 batches over ~40 s, so the kills land while events stream in.
        for chunk in events.chunks(70) {
            let messages = chunk
                .iter()
                .map(|e| (e.event.key(), e.to_json().into()))
                .collect();
            windsock_core::bus::Bus::publish_batch(&bus, Topic::Observations, messages)
                .await
                .expect("publish");
            tokio::time::sleep(StdDuration::from_millis(1000)).await;
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let mut indexer = WindsockProcess::new(BIN, &["indexer"], &dir.path().join("data"))
        .env("WINDSOCK_BUS__KIND", "kafka")
        .env("WINDSOCK_BUS__BROKERS", broker.bootstrap())
        .env("WINDSOCK_INDEXER__COMMIT_INTERVAL", "150ms")
        .env("WINDSOCK_INDEXER__COMMIT_DOCS", "200")
        .env("WINDSOCK_INDEXER__MAX_LIMIT", "100000")
        .env("WINDSOCK_INDEXER__MAX_RESULT_WINDOW", "100000");
    indexer.start().unwrap();
    let window = (start - Duration::hours(1), Utc::now());
    let indexed = |indexer: &WindsockProcess| {
        search(&indexer.base_url(), "kind:observation", window.0, window.1).0
    };
    // Each kill lands a moment after the new process has indexed something, at a different
    // point of its commit cycle. A Kafka group hands a dead member's partitions over only
    // once its session (10 s) times out, and a member killed during that rebalance stalls the
    // group for the whole rebalance timeout; so each process lives past the previous one's
    // session before it is killed.
    let mut last_kill: Option<Instant> = None;
    let mut before = 0;
    for pause in [150u64, 400, 50] {
        let deadline = Instant::now() + StdDuration::from_secs(60);
        while indexed(&indexer) <= before
            || last_kill.is_some_and(|k| k.elapsed() < StdDuration::from_secs(11))
        {
            assert!(
                Instant::now() < deadline,
                "no progress after a restart:\n{}",
                tail(&indexer.logs())
            );
            std::thread::sleep(StdDuration::from_millis(50));
        }
        std::thread::sleep(StdDuration::from_millis(pause));
        before = indexed(&indexer);
        indexer.kill9();
        last_kill = Some(Instant::now());
        indexer.start().unwrap();
    }
    assert!(
        !producer.is_finished(),
        "the kills happened while events streamed in"
    );
    runtime.block_on(producer).unwrap();

    let (total, ids) = settle(
        &indexer.base_url(),
        "kind:observation",
        window.0,
        window.1,
        want.len() as u64,
    );
    assert_exactly(total, &ids, &want, &indexer.logs());
    // Nothing more arrives later (say, a redelivery that was only late).
    std::thread::sleep(StdDuration::from_millis(1500));
    let (total, ids) = search(&indexer.base_url(), "kind:observation", window.0, window.1);
    assert_exactly(total, &ids, &want, &indexer.logs());
    assert!(
        indexer.stop(StdDuration::from_secs(20)),
        "a clean stop after the kills:\n{}",
        indexer.logs()
    );
}

#[test]
fn kill_9_of_windsock_up_is_repaired_by_the_collectors_backfill() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = WindsockProcess::new(BIN, &["up"], &dir.path().join("data"))
        .env("WINDSOCK_COLLECTOR__SCHEDULE", "*/1 * * * * *")
        .env("WINDSOCK_COLLECTOR__BACKFILL", "5m")
        .env("WINDSOCK_INDEXER__COMMIT_INTERVAL", "150ms")
        .env("WINDSOCK_INDEXER__MAX_LIMIT", "100000")
        .env("WINDSOCK_INDEXER__MAX_RESULT_WINDOW", "100000");
    up.start().unwrap();
    let first = Utc::now().duration_trunc(Duration::seconds(1)).unwrap() + Duration::seconds(1);
    for pause in [1200u64, 700, 1500, 900] {
        std::thread::sleep(StdDuration::from_millis(pause));
        up.kill9();
        up.start().unwrap();
    }
    // Every second from the first start to now is a scheduled instant: the live rounds and
    // the backfill after each restart must leave exactly one observation per region for each.
    let last = Utc::now().duration_trunc(Duration::seconds(1)).unwrap() - Duration::seconds(1);
    let instants = (last - first).num_seconds() as u64 + 1;
    let regions = 14;
    let base = up.base_url();
    let (total, ids) = settle(&base, "kind:observation", first, last, instants * regions);
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no observation twice");
    assert_eq!(
        total,
        instants * regions,
        "one observation per region and second from {first} to {last}\n{}",
        up.logs()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    for second in 0..instants {
        let at = first + Duration::seconds(second as i64);
        if second % 5 == 0 {
            let (n, _) = search(&base, "kind:observation", at, at);
            assert_eq!(n, regions, "observations at {at}");
        }
    }
}
