//! One failing service never stops the others (the real binary): it is restarted with backoff,
//! `/healthz` says degraded, `/metrics` counts the restarts, the pipeline reports it as a
//! `service_failing` health condition; and a fatal error exits non-zero.

mod support;

use std::process::{Command, Stdio};
use support::{json, Windsock, BIN, PATIENCE};

#[test]
fn a_failing_service_is_restarted_while_the_others_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    // A real fault, not a test hook: a refit schedule of six fields passes `config check`
    // (which only counts them), and the scheduler refuses hour 25 when the forecaster's run
    // starts: every run of the forecaster fails.
    let mut windsock = Windsock::start(
        &["up"],
        &dir.path().join("data"),
        &[("WINDSOCK_FORECASTER__SCHEDULE", "0 0 25 * * *")],
    );

    let (status, body) = windsock.wait_for("/healthz", |_, body| {
        serde_json::from_str::<serde_json::Value>(body)
            .is_ok_and(|h| h["services"]["forecaster"]["restarts"].as_u64() >= Some(1))
    });
    assert_eq!(status, 503, "{body}");
    let health = json(&body);
    assert_eq!(health["status"], "degraded");
    let forecaster = &health["services"]["forecaster"];
    assert!(
        ["failing", "restarting"].contains(&forecaster["state"].as_str().unwrap()),
        "{health}"
    );
    assert!(
        forecaster["error"]
            .as_str()
            .unwrap()
            .contains("0 0 25 * * *"),
        "{health}"
    );
    for service in ["indexer", "alerter", "collector", "ui"] {
        assert_eq!(health["services"][service]["state"], "ok", "{health}");
    }

    let (_, metrics) = windsock.wait_for("/metrics", |status, _| status == 200);
    let restarts = |service: &str| -> u64 {
        let series = format!("windsock_service_restarts_total{{service=\"{service}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series}in\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(restarts("forecaster") >= 1, "{metrics}");
    assert_eq!(restarts("indexer"), 0, "registered at zero: {metrics}");

    // The others keep serving...
    let (status, body) = windsock.wait_for("/api/alerts", |_, _| true);
    assert_eq!(status, 200, "{body}");
    // ...and the pipeline reports the failure about itself, searchable like any event.
    let (_, body) = windsock.wait_for(
        "/api/search?q=fields.condition:service_failing&from=now-1h",
        |status, body| {
            status == 200
                && serde_json::from_str::<serde_json::Value>(body)
                    .is_ok_and(|a| a["total"].as_u64() > Some(0))
        },
    );
    let answer = json(&body);
    let event = &answer["hits"][0]["event"];
    assert_eq!(event["service"], "windsock", "{answer}");
    assert_eq!(event["fields"]["service"], "forecaster", "{answer}");
    assert_eq!(event["fields"]["state"], "failing", "{answer}");
    assert!(
        event["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("refit schedule"),
        "{answer}"
    );

    // It was failing when it stopped: not a clean stop.
    let (status, logs) = windsock.terminate(PATIENCE);
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(
        logs.contains("service was failing when it stopped"),
        "{logs}"
    );
    // The degraded /healthz answered 503 to every probe above: each is not an ERROR of its
    // own (a load balancer probing every few seconds would flood the log and the events).
    assert!(
        !logs
            .lines()
            .any(|line| line.contains("ERROR") && line.contains("response failed")),
        "{logs}"
    );
}

#[test]
fn a_port_in_use_is_a_fatal_error_and_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .arg("up")
        .env_remove("RUST_LOG")
        .env("WINDSOCK_HTTP__LISTEN", address.to_string())
        .env("WINDSOCK_DATA_DIR", dir.path().join("data"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("listening on {address}")),
        "{stderr}"
    );
}

#[test]
fn a_clean_stop_exits_0_and_healthz_is_ok_while_all_services_are() {
    let dir = tempfile::tempdir().unwrap();
    let mut windsock = Windsock::start(&["up"], &dir.path().join("data"), &[]);
    let (status, body) = windsock.wait_for("/healthz", |status, _| status == 200);
    let health = json(&body);
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    for service in ["indexer", "forecaster", "alerter", "collector", "ui"] {
        assert_eq!(health["services"][service]["state"], "ok", "{health}");
        assert_eq!(health["services"][service]["restarts"], 0, "{health}");
    }
    let (status, logs) = windsock.terminate(PATIENCE);
    assert_eq!(status.code(), Some(0), "{logs}");
}
