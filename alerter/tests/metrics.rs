//! The alerter's metrics on `/metrics`: `windsock_alerts_firing{severity}` present at 0 from
//! the start and following the firing alerts, `windsock_slack_delivery_seconds{outcome}`
//! observing each POST to Slack. Alone in its file: the recorder is global to the process.

mod support;

use std::time::Duration;
use support::*;
use windsock_core::clock::ManualClock;

const SECOND: Duration = Duration::from_secs(1);

fn render() -> String {
    windsock_core::telemetry::prometheus().render()
}

/// The value of the series `series` (name and labels, as rendered), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn firing_alerts_by_severity_and_slack_latency_by_outcome() {
    render();
    let slack = FakeSlack::start().await;
    slack.script([Answer::ServerError]);
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        Some(&slack.url),
        vec![hot_rule(Duration::ZERO, 0.0)],
        regions(&["Dakar"]),
    );
    let h = Harness::start(config, ManualClock::new(t0())).await;
    let text = render();
    assert!(text.contains("# HELP windsock_alerts_firing "), "{text}");
    assert!(
        text.contains("# HELP windsock_slack_delivery_seconds "),
        "{text}"
    );
    for severity in ["critical", "warning", "info"] {
        let series = format!("windsock_alerts_firing{{severity=\"{severity}\"}}");
        assert_eq!(value(&text, &series), Some(0.0), "{series} in\n{text}");
    }
    assert_eq!(
        value(&text, "windsock_outbox_durable{service=\"alerter\"}"),
        Some(1.0),
        "{text}"
    );
    for outcome in ["delivered", "retry", "failed"] {
        let series = format!("windsock_slack_delivery_seconds_count{{outcome=\"{outcome}\"}}");
        assert_eq!(value(&text, &series), Some(0.0), "{series} in\n{text}");
    }

    // `hot` is critical: it fires, and its message is sent after a 500 (one retry).
    h.observe("Dakar", 42.0).await;
    h.advance(SECOND).await;
    let critical = "windsock_alerts_firing{severity=\"critical\"}";
    assert_eq!(value(&render(), critical), Some(1.0));
    eventually(Duration::from_secs(5), "the message", || {
        slack.delivered().len() == 1
    })
    .await;
    let delivered = "windsock_slack_delivery_seconds_count{outcome=\"delivered\"}";
    let retried = "windsock_slack_delivery_seconds_count{outcome=\"retry\"}";
    eventually(Duration::from_secs(5), "both POSTs observed", || {
        let text = render();
        value(&text, delivered) == Some(1.0) && value(&text, retried) == Some(1.0)
    })
    .await;
    assert_eq!(
        value(&render(), "windsock_alerts_firing{severity=\"warning\"}"),
        Some(0.0)
    );

    // Resolved (after `min_hold`): back to 0.
    h.observe("Dakar", 30.0).await;
    h.advance(SECOND).await;
    h.advance(Duration::from_secs(61)).await;
    assert_eq!(value(&render(), critical), Some(0.0));
    h.stop().await;
}
