//! The Slack webhook URL is a secret: it never shows in logs, API answers or events, even
//! when deliveries fail in every way. Alone in its test binary: tracing's per-thread
//! subscriber sees every record only when no other test runs beside it.

mod support;

use std::sync::Arc;
use std::time::Duration;
use support::*;
use windsock_core::clock::ManualClock;

const SECOND: Duration = Duration::from_secs(1);

/// Captures every log line of the test (current-thread runtime: all its tasks log here).
#[derive(Clone, Default)]
struct Captured(Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_webhook_url_never_shows_in_logs_api_answers_or_events() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let slack = FakeSlack::start().await;
    slack.script([Answer::ServerError, Answer::Hang, Answer::InvalidPayload]);
    let dir = tempfile::tempdir().unwrap();
    let names = ["Dakar", "Thiès"];
    let first = config(
        dir.path(),
        Some(&slack.url),
        vec![hot_rule(Duration::ZERO, 0.0)],
        regions(&names),
    );
    let h = Harness::start(first, ManualClock::new(t0())).await;
    for name in names {
        h.observe(name, 42.0).await;
        h.advance(SECOND).await;
    }
    eventually(Duration::from_secs(5), "the second message", || {
        slack.delivered().len() == 1
    })
    .await;
    // And a webhook that refuses connections, with the secret in its path.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let unreachable = format!("http://{closed}/services/{WEBHOOK_SECRET}");
    let config2 = config(
        dir2.path(),
        Some(&unreachable),
        vec![hot_rule(Duration::ZERO, 0.0)],
        regions(&names),
    );
    let h2 = Harness::start(config2, ManualClock::new(t0())).await;
    h2.observe("Dakar", 42.0).await;
    h2.advance(SECOND).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut answers = String::new();
    for harness in [&h, &h2] {
        for path in [
            "/api/alerts",
            "/api/deliveries",
            "/api/rules",
            "/api/silences",
        ] {
            answers.push_str(&harness.get(path).await.to_string());
        }
    }
    let mut events = String::new();
    let mut replay = h.bus.replay(windsock_core::Topic::Alerts).await.unwrap();
    while let Some(delivery) = replay.next().await.unwrap() {
        events.push_str(&String::from_utf8_lossy(&delivery.payload));
    }
    h.stop().await;
    h2.stop().await;
    let logs = String::from_utf8_lossy(&captured.0.lock()).to_string();
    assert!(
        logs.contains("Slack delivery will be retried"),
        "the failures were logged: {logs}"
    );
    assert!(logs.contains("connection failed"), "{logs}");
    assert!(
        logs.contains("HTTP 500") && logs.contains("timeout"),
        "{logs}"
    );
    assert!(
        answers.contains("invalid_payload") && answers.contains("connection failed"),
        "{answers}"
    );
    assert!(events.contains("\"state\":\"firing\""), "{events}");
    for (what, text) in [
        ("logs", &logs),
        ("API answers", &answers),
        ("events", &events),
    ] {
        assert!(
            !text.contains("xoxSECRETxox"),
            "the webhook URL leaked into {what}"
        );
        assert!(
            !text.contains("/services/T0001"),
            "the webhook URL leaked into {what}"
        );
    }
}
