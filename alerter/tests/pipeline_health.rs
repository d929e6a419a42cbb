//! The pipeline alerting about itself: health reports among the logs on the bus become
//! `service_failing` / `disk_full` alerts on Slack, and history read again after a restart
//! never pages.

mod support;

use std::time::Duration;
use support::*;
use windsock_core::bus::publish_event;
use windsock_core::clock::{Clock, ManualClock};
use windsock_core::config::{RuleConfig, Severity};
use windsock_core::event::{health, Event, Level, LogEvent};
use windsock_core::Bus;

const SECOND: Duration = Duration::from_secs(1);
const DISK_ERROR: &str = "writing segment: No space left on device (os error 28)";

fn health_rule() -> RuleConfig {
    RuleConfig::PipelineHealth {
        name: "pipeline_health".into(),
        severity: Severity::Critical,
        startup_window: Duration::from_secs(60),
    }
}

fn report(
    service: &str,
    condition: &str,
    failing: bool,
    error: Option<&str>,
    at: chrono::DateTime<chrono::Utc>,
) -> Event {
    Event::Log(LogEvent::health_condition(
        service,
        condition,
        failing,
        error.map(str::to_string),
        format!("{service}: {condition}"),
        at,
    ))
}

async fn publish(bus: &dyn Bus, event: Event) {
    publish_event(bus, event).await.unwrap();
}

/// An ordinary log, and one whose fields merely mention a condition (the weather's).
fn noise(at: chrono::DateTime<chrono::Utc>) -> Vec<Event> {
    let plain = LogEvent {
        timestamp: at,
        service: "collector".into(),
        level: Level::Warn,
        message: "fetch failed: disk_full of rain".into(),
        region: Some("Dakar".into()),
        target: None,
        fields: Default::default(),
    };
    let mut weather = plain.clone();
    weather
        .fields
        .insert("condition".into(), serde_json::json!("Rain"));
    weather
        .fields
        .insert("state".into(), serde_json::json!("failing"));
    vec![Event::Log(plain), Event::Log(weather)]
}

#[tokio::test]
async fn a_failing_service_pages_once_with_its_error_and_resolves_once() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        Some(&slack.url),
        vec![hot_rule(Duration::ZERO, 0.0), health_rule()],
        regions(&["Dakar"]),
    );
    let h = Harness::start(config, ManualClock::new(t0())).await;
    for event in noise(h.clock.now()) {
        publish(h.bus.as_ref(), event).await;
    }
    h.advance(SECOND).await;
    assert!(h.get("/api/alerts").await["alerts"]
        .as_array()
        .unwrap()
        .is_empty());

    publish(
        h.bus.as_ref(),
        report(
            "indexer",
            health::DISK_FULL,
            true,
            Some(DISK_ERROR),
            h.clock.now(),
        ),
    )
    .await;
    h.advance(SECOND).await;
    eventually(Duration::from_secs(5), "the firing notice", || {
        slack.delivered().len() == 1
    })
    .await;
    let firing = &slack.delivered()[0];
    let header = firing["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(header.contains("FIRING: disk_full — indexer"), "{header}");
    assert!(
        firing["text"].as_str().unwrap().contains(DISK_ERROR),
        "{firing}"
    );
    let alerts = h.get("/api/alerts?state=firing").await;
    let alert = &alerts["alerts"][0]["alert"];
    assert_eq!(alert["rule"], "disk_full");
    assert_eq!(alert["subject"], "indexer");
    assert_eq!(alert["severity"], "critical");

    // The same failure reported again, and while it lasts: still one alert, one message.
    for _ in 0..3 {
        publish(
            h.bus.as_ref(),
            report(
                "indexer",
                health::DISK_FULL,
                true,
                Some(DISK_ERROR),
                h.clock.now(),
            ),
        )
        .await;
        h.advance(SECOND * 5).await;
    }
    // Listed under the names its alerts carry (the names silences take).
    let rules = h.get("/api/rules").await;
    let listed = |name: &str| {
        rules["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not listed: {rules}"))
            .clone()
    };
    let disk = listed("disk_full");
    assert_eq!(disk["kind"], "pipeline_health");
    assert_eq!(disk["rule"], "pipeline_health");
    assert_eq!(disk["config"]["startup_window"], "1m");
    assert_eq!(disk["active"], 1, "{disk}");
    assert_eq!(listed("service_failing")["active"], 0);

    publish(
        h.bus.as_ref(),
        report("indexer", health::DISK_FULL, false, None, h.clock.now()),
    )
    .await;
    h.advance(SECOND).await;
    // Resolved only after `min_hold` (60 s here), like every alert.
    h.advance(Duration::from_secs(61)).await;
    eventually(Duration::from_secs(5), "the resolved notice", || {
        slack.delivered().len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let headers = slack.headers();
    assert_eq!(headers.len(), 2, "{headers:?}");
    assert!(
        headers[1].contains("RESOLVED: disk_full — indexer"),
        "{headers:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn one_alert_per_failing_service_and_silences_by_condition() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        Some(&slack.url),
        vec![health_rule()],
        regions(&["Dakar"]),
    );
    let h = Harness::start(config, ManualClock::new(t0())).await;
    let silence = h
        .http
        .post(format!("{}/api/silences", h.api))
        .json(&serde_json::json!({
            "rule": "service_failing", "duration": "1h", "author": "awa", "comment": "upgrade"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(silence.status(), 201);
    for service in ["indexer", "forecaster"] {
        publish(
            h.bus.as_ref(),
            report(
                service,
                health::SERVICE_FAILING,
                true,
                Some("panicked"),
                h.clock.now(),
            ),
        )
        .await;
    }
    publish(
        h.bus.as_ref(),
        report(
            "indexer",
            health::DISK_FULL,
            true,
            Some(DISK_ERROR),
            h.clock.now(),
        ),
    )
    .await;
    h.advance(SECOND).await;
    let firing = h.get("/api/alerts?state=firing").await;
    let mut seen: Vec<(String, String)> = firing["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["alert"]["rule"].as_str().unwrap().to_string(),
                a["alert"]["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("disk_full".to_string(), "indexer".to_string()),
            ("service_failing".to_string(), "forecaster".to_string()),
            ("service_failing".to_string(), "indexer".to_string()),
        ]
    );
    // Only disk_full is announced: the service_failing ones are silenced.
    eventually(Duration::from_secs(5), "the disk_full notice", || {
        slack.delivered().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(slack.headers().len(), 1);
    assert!(slack.headers()[0].contains("disk_full — indexer"));
    h.stop().await;
}

#[tokio::test]
async fn history_read_again_at_start_never_pages() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        Some(&slack.url),
        vec![health_rule()],
        regions(&["Dakar"]),
    );
    let bus: windsock_core::SharedBus = std::sync::Arc::new(windsock_core::bus::EmbeddedBus::new(
        &windsock_core::config::BusConfig::default(),
    ));
    let minutes = |m: i64| t0() - chrono::Duration::minutes(m);
    // Before the alerter starts: a failure and its recovery, and a failure with no recovery
    // from long ago (state unknown now: the service will say again if it still fails).
    publish(
        bus.as_ref(),
        report(
            "indexer",
            health::SERVICE_FAILING,
            true,
            Some("old crash"),
            minutes(30),
        ),
    )
    .await;
    publish(
        bus.as_ref(),
        report("indexer", health::SERVICE_FAILING, false, None, minutes(29)),
    )
    .await;
    publish(
        bus.as_ref(),
        report(
            "collector",
            health::DISK_FULL,
            true,
            Some(DISK_ERROR),
            minutes(20),
        ),
    )
    .await;
    let h = Harness::start_on(config, ManualClock::new(t0()), bus).await;
    for _ in 0..5 {
        h.advance(SECOND).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(slack.posts(), 0, "{:?}", slack.headers());
    assert!(h.get("/api/alerts").await["alerts"]
        .as_array()
        .unwrap()
        .is_empty());

    // A report made now still pages: the quiet above is not a deaf alerter.
    publish(
        h.bus.as_ref(),
        report(
            "collector",
            health::DISK_FULL,
            true,
            Some(DISK_ERROR),
            h.clock.now(),
        ),
    )
    .await;
    h.advance(SECOND).await;
    eventually(Duration::from_secs(5), "the new failure's notice", || {
        slack.delivered().len() == 1
    })
    .await;
    assert!(slack.headers()[0].contains("FIRING: disk_full — collector"));
    h.stop().await;
}
