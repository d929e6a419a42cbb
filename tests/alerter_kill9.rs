//! The alerter survives `kill -9` between deciding to send a Slack message and Slack
//! acknowledging it: the real `windsock up` (simulated weather, Dakar silent from the start)
//! decides a late_data alert, the fake Slack (a local HTTP server speaking the webhook's
//! answers) holds the first POST open, the process is killed, and after a restart the
//! message arrives exactly once, with nothing else repeated.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use windsock_testkit::{wait_until, WindsockProcess};

const BIN: &str = env!("CARGO_BIN_EXE_windsock");
const SECRET_PATH: &str = "T0001/B0002/kill9SECRETwebhook";

#[derive(Default)]
struct Slack {
    hang: bool,
    posts: usize,
    delivered: Vec<serde_json::Value>,
}

async fn webhook(
    State(slack): State<Arc<Mutex<Slack>>>,
    body: String,
) -> (StatusCode, &'static str) {
    let hang = {
        let mut s = slack.lock().unwrap();
        s.posts += 1;
        s.hang
    };
    if hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    match serde_json::from_str(&body) {
        Ok(payload) => {
            slack.lock().unwrap().delivered.push(payload);
            (StatusCode::OK, "ok")
        }
        Err(_) => (StatusCode::BAD_REQUEST, "invalid_payload"),
    }
}

fn headers(slack: &Mutex<Slack>) -> Vec<String> {
    slack
        .lock()
        .unwrap()
        .delivered
        .iter()
        .map(|p| {
            p["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn kill_9_between_decision_and_send_loses_and_duplicates_nothing() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let slack = Arc::new(Mutex::new(Slack {
        hang: true,
        ..Default::default()
    }));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let webhook_url = format!(
        "http://{}/services/{SECRET_PATH}",
        listener.local_addr().unwrap()
    );
    let app = Router::new()
        .route("/services/{*path}", post(webhook))
        .with_state(slack.clone());
    runtime.spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("windsock.toml");
    std::fs::write(
        &config,
        r#"
[collector]
schedule = "*/1 * * * * *"
backfill = "0s"
[[collector.simulated.faults]]
kind = "silent"
region = "Dakar"
after = "0s"
duration = "10h"

[alerter]
evaluation_interval = "200ms"
min_hold = "1h"
[alerter.slack]
timeout = "30s"
[[alerter.rules]]
kind = "late_data"
name = "late_data"
late_after = "3s"
"#,
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut windsock =
        WindsockProcess::new(BIN, &["up", "--config", config.to_str().unwrap()], &data)
            .env("WINDSOCK_SLACK_WEBHOOK_URL", &webhook_url);
    windsock.start().unwrap();

    // The decision is committed before the POST: once the POST is in, kill -9.
    wait_until(
        "the first POST",
        Duration::from_secs(60),
        || slack.lock().unwrap().posts >= 1,
        || windsock.logs(),
    );
    windsock.kill9();
    assert!(slack.lock().unwrap().delivered.is_empty());

    slack.lock().unwrap().hang = false;
    windsock.start().unwrap();
    wait_until(
        "the message after the restart",
        Duration::from_secs(60),
        || !headers(&slack).is_empty(),
        || windsock.logs(),
    );
    // Long enough for a duplicate (paced at 1/s) or a repeated decision to show up.
    std::thread::sleep(Duration::from_secs(4));
    let alerts = windsock_testkit::http_get(&format!(
        "{}/api/alerts?state=firing&region=Dakar",
        windsock.base_url()
    ))
    .unwrap();
    let logs = windsock.logs();
    windsock.stop(Duration::from_secs(10));

    let headers = headers(&slack);
    let dakar: Vec<&String> = headers
        .iter()
        .filter(|h| h.contains("late_data") && h.contains("Dakar"))
        .collect();
    assert_eq!(
        dakar.len(),
        1,
        "exactly one message for the alert: {headers:?}"
    );
    assert!(dakar[0].contains("FIRING"), "{headers:?}");
    assert_eq!(headers.len(), 1, "nothing else was sent: {headers:?}");
    assert!(
        alerts.1.contains("\"state\":\"firing\""),
        "still firing after the restart: {}",
        alerts.1
    );
    assert!(
        !logs.contains("kill9SECRETwebhook"),
        "the webhook URL must never be logged"
    );
}
