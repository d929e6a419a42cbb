//! Scale-out on Kafka loses and repeats nothing (issue 15): two `windsock alerter` processes
//! in one consumer group on a real broker (tansu), observations of Senegal's regions published
//! by the test every half second, Dakar silent. Its late-data alert fires and reaches the fake
//! Slack once; the alerter that owns Dakar's partition is killed with -9; Dakar reports
//! again; the alerter that takes the partition over restores the region's state from the
//! changelog and resolves the alert, and the resolved notice reaches Slack once. Every notice
//! is counted by alert id and kind: none twice, and none but those two (the regions taken over
//! are not judged late for the time their partition had no owner).
//!
//! tansu 0.6.0 does not move a dead member's partitions: when a member's session expires it
//! drops the member but keeps the group's assignment, so the survivor is handed its old
//! partitions again. A real Kafka broker reassigns them to the survivor; on tansu the test
//! starts a replacement alerter once the session expired (as `restart: unless-stopped` would),
//! whose joining makes the group rebalance, and whichever of the two gets Dakar's partition
//! must resolve the alert.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use windsock_core::bus::{publish_event, KafkaBus};
use windsock_core::config::{BusConfig, BusKind, Config};
use windsock_core::event::Event;
use windsock_testkit::tansu::Tansu;
use windsock_testkit::{wait_until, WindsockProcess};

const BIN: &str = env!("CARGO_BIN_EXE_windsock");
const SILENT: &str = "Dakar";

/// A notice as Slack received it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Notice {
    alert_id: String,
    /// FIRING, STILL FIRING or RESOLVED.
    kind: String,
    header: String,
}

async fn webhook(State(slack): State<Arc<Mutex<Vec<Notice>>>>, body: String) -> StatusCode {
    let Ok(payload) = serde_json::from_str::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let header = payload["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let kind = ["STILL FIRING", "FIRING", "RESOLVED"]
        .into_iter()
        .find(|word| header.contains(&format!("{word}:")))
        .unwrap_or("?")
        .to_string();
    // The alert's page is linked from the message: <public_url>/alerts/<id>[?...].
    let alert_id = body
        .split("/alerts/")
        .nth(1)
        .and_then(|rest| rest.split(['?', '"']).next())
        .unwrap_or("?")
        .to_string();
    slack.lock().unwrap().push(Notice {
        alert_id,
        kind,
        header,
    });
    StatusCode::OK
}

/// `text` without its terminal colours.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('\u{1b}') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        rest = rest.find('m').map_or("", |end| &rest[end + 1..]);
    }
    out.push_str(rest);
    out
}

fn dakar(notices: &[Notice], kind: &str) -> Vec<Notice> {
    notices
        .iter()
        .filter(|n| n.kind == kind && n.header.contains("late_data") && n.header.contains(SILENT))
        .cloned()
        .collect()
}

/// Whether `alerter` holds Dakar's late-data alert as firing.
fn holds_firing(alerter: &WindsockProcess) -> bool {
    windsock_testkit::http_get(&format!(
        "{}/api/alerts?state=firing&region={SILENT}",
        alerter.base_url()
    ))
    .is_ok_and(|(status, body)| status == 200 && body.contains("\"state\":\"firing\""))
}

#[test]
fn a_killed_alerters_firing_alert_is_resolved_by_the_other_once() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let broker = Tansu::start();

    let slack: Arc<Mutex<Vec<Notice>>> = Arc::default();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let webhook_url = format!(
        "http://{}/services/T0001/B0002/scaleout",
        listener.local_addr().unwrap()
    );
    let app = Router::new()
        .route("/services/{*path}", post(webhook))
        .with_state(slack.clone());
    runtime.spawn(async move { axum::serve(listener, app).await });

    // The observations: every region but the silent ones, twice a second.
    let regions = Config::load_with_env(None, BTreeMap::new())
        .expect("the default configuration")
        .regions;
    let silent: Arc<Mutex<BTreeSet<String>>> =
        Arc::new(Mutex::new(BTreeSet::from([SILENT.to_string()])));
    let bus = runtime
        .block_on(KafkaBus::connect(&BusConfig {
            kind: BusKind::Kafka,
            brokers: broker.bootstrap(),
            ..BusConfig::default()
        }))
        .unwrap_or_else(|e| panic!("connecting to tansu: {e}\n{}", broker.logs()));
    runtime.spawn({
        let silent = silent.clone();
        async move {
            loop {
                let now = chrono::Utc::now();
                let quiet = silent.lock().unwrap().clone();
                for region in regions.iter().filter(|r| !quiet.contains(&r.name)) {
                    let observation = serde_json::from_value(serde_json::json!({
                        "region": region.name,
                        "lat": region.lat,
                        "lon": region.lon,
                        "observed_at": now.to_rfc3339(),
                        "fetched_at": now.to_rfc3339(),
                        "source": "simulated",
                        "temperature_c": 27.5,
                    }))
                    .expect("an observation");
                    let _ = publish_event(&bus, Event::Observation(observation)).await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("windsock.toml");
    std::fs::write(
        &config,
        r#"
[collector]
schedule = "*/1 * * * * *"

[alerter]
evaluation_interval = "200ms"
min_hold = "1s"
repeat_interval = "1h"
[[alerter.rules]]
kind = "late_data"
name = "late_data"
late_after = "3s"
"#,
    )
    .unwrap();
    let alerter = |name: &str| {
        WindsockProcess::new(
            BIN,
            &["alerter", "--config", config.to_str().unwrap()],
            &dir.path().join(name),
        )
        .env("WINDSOCK_BUS__KIND", "kafka")
        .env("WINDSOCK_BUS__BROKERS", broker.bootstrap())
        .env("WINDSOCK_SLACK_WEBHOOK_URL", &webhook_url)
    };
    let mut alerters = [alerter("a"), alerter("b")];
    for process in &mut alerters {
        process.start().unwrap();
    }
    let logs = |alerters: &[WindsockProcess]| {
        let broker_logs = broker.logs();
        let group: Vec<&str> = broker_logs
            .lines()
            .filter(|l| l.contains("alerter") || l.contains("heartbeat"))
            .collect();
        format!(
            "{}\n---- the broker on group windsock-alerter ----\n{}",
            alerters
                .iter()
                .map(|a| a.logs())
                .collect::<Vec<_>>()
                .join("\n---- the other alerter ----\n"),
            group.join("\n")
        )
    };

    wait_until(
        "Dakar's late-data alert to reach Slack",
        Duration::from_secs(40),
        || !dakar(&slack.lock().unwrap(), "FIRING").is_empty(),
        || logs(&alerters),
    );
    // Long enough for a duplicate (a second instance judging Dakar too) to show up, and for
    // the group to have settled with both members.
    std::thread::sleep(Duration::from_secs(3));
    let owner = match (holds_firing(&alerters[0]), holds_firing(&alerters[1])) {
        (true, false) => 0,
        (false, true) => 1,
        both => panic!(
            "exactly one alerter holds Dakar's firing alert, got {both:?}; logs:\n{}",
            logs(&alerters)
        ),
    };
    alerters[owner].kill9();
    let killed = Instant::now();
    silent.lock().unwrap().clear();
    let survivor = 1 - owner;
    // Past the session timeout (6 s) and the heartbeat that notices it (see the module docs).
    std::thread::sleep(Duration::from_secs(8));
    let mut replacement = alerter("c");
    replacement.start().unwrap();
    let joined = Instant::now();
    let [first, second] = alerters;
    let alerters = [first, second, replacement];

    wait_until(
        "another alerter to resolve Dakar's alert",
        Duration::from_secs(40),
        || !dakar(&slack.lock().unwrap(), "RESOLVED").is_empty(),
        || logs(&alerters),
    );
    // Not asserted (no timed assertions): what a run took, for the record.
    eprintln!(
        "resolved notice {:.1?} after the kill, {:.1?} after the replacement was healthy",
        killed.elapsed(),
        joined.elapsed()
    );
    std::thread::sleep(Duration::from_secs(3));
    let resolver = [survivor, 2]
        .into_iter()
        .find(|i| {
            windsock_testkit::http_get(&format!(
                "{}/api/alerts?state=resolved&region={SILENT}",
                alerters[*i].base_url()
            ))
            .is_ok_and(|(status, body)| status == 200 && body.contains("\"state\":\"resolved\""))
        })
        .unwrap_or_else(|| {
            panic!(
                "no live alerter holds the resolved alert; logs:\n{}",
                logs(&alerters)
            )
        });
    let resolver_logs = alerters[resolver].logs();
    let notices = slack.lock().unwrap().clone();

    let fired = dakar(&notices, "FIRING");
    let resolved = dakar(&notices, "RESOLVED");
    assert_eq!(fired.len(), 1, "Dakar fired once: {notices:#?}");
    assert_eq!(resolved.len(), 1, "Dakar resolved once: {notices:#?}");
    assert_eq!(
        fired[0].alert_id, resolved[0].alert_id,
        "the alert that fired is the one resolved"
    );
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for notice in &notices {
        *counts
            .entry((notice.alert_id.clone(), notice.kind.clone()))
            .or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "no notice twice (by alert id and kind): {repeated:?} in {notices:#?}"
    );
    assert_eq!(
        notices.len(),
        2,
        "nothing but Dakar's two notices (no region taken over judged late): {notices:#?}"
    );
    let restored = plain(&resolver_logs)
        .lines()
        .filter(|l| l.contains("alerter partitions moved"))
        .filter_map(|l| {
            l.split("restored=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum::<usize>();
    assert!(
        restored > 0,
        "the resolver restored regions from the changelog:\n{resolver_logs}"
    );
    let mut alerters = alerters;
    for process in &mut alerters {
        process.stop(Duration::from_secs(10));
    }
}
