//! Query rules: the count of logs matching a search within a window pages on Slack (with a
//! link to that search) and resolves once they stop; grouped by region, one alert per
//! region; logs older than the window (history read again) never page.

mod support;

use chrono::{DateTime, Utc};
use std::time::Duration;
use support::*;
use windsock_core::bus::publish_event;
use windsock_core::clock::{Clock, ManualClock};
use windsock_core::config::{RuleConfig, Severity};
use windsock_core::event::{Event, Level, LogEvent};

const SECOND: Duration = Duration::from_secs(1);

/// Each test names its rule differently: the search link of a rule is looked up by its name
/// in the process (see `rules::query::search_of`), and tests share the process.
fn query_rule(name: &str, group_by: Option<&str>) -> RuleConfig {
    RuleConfig::Query {
        name: name.into(),
        severity: Severity::Warning,
        query: "service:collector AND fields.status:failed".into(),
        window: Duration::from_secs(60),
        above: Some(3),
        below: None,
        group_by: group_by.map(str::to_string),
        pending_for: Duration::ZERO,
    }
}

fn fetch_log(at: DateTime<Utc>, service: &str, region: &str, status: &str) -> Event {
    let mut fields = serde_json::Map::new();
    fields.insert("status".into(), serde_json::json!(status));
    Event::Log(LogEvent {
        timestamp: at,
        service: service.into(),
        level: Level::Warn,
        message: format!("fetch of {region} {status}"),
        region: Some(region.into()),
        target: Some("windsock_collector::fetch".into()),
        fields,
    })
}

async fn publish(h: &Harness, events: impl IntoIterator<Item = Event>) {
    for event in events {
        publish_event(h.bus.as_ref(), event).await.unwrap();
    }
}

#[tokio::test]
async fn matching_logs_above_the_count_page_with_the_search_and_resolve_when_they_stop() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        Some(&slack.url),
        vec![query_rule("source_failing", None)],
        regions(&["Dakar"]),
    );
    let h = Harness::start(config, ManualClock::new(t0())).await;
    let now = h.clock.now();
    // History from before the window (a replay after a restart): never counted.
    let old = now - chrono::Duration::minutes(5);
    publish(
        &h,
        (0..10).map(|_| fetch_log(old, "collector", "Dakar", "failed")),
    )
    .await;
    // Three matching (not more than 3), and logs that do not match.
    publish(
        &h,
        (0..3)
            .map(|_| fetch_log(now, "collector", "Dakar", "failed"))
            .chain([
                fetch_log(now, "indexer", "Dakar", "failed"),
                fetch_log(now, "collector", "Dakar", "ok"),
            ]),
    )
    .await;
    h.advance(SECOND).await;
    let rules = h.get("/api/rules").await;
    let listed = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "source_failing")
        .unwrap_or_else(|| panic!("not listed: {rules}"))
        .clone();
    assert_eq!(listed["kind"], "query");
    assert!(h.get("/api/alerts?state=firing").await["alerts"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(slack.delivered().len(), 0);

    // A fourth within the minute: more than 3.
    publish(
        &h,
        [fetch_log(h.clock.now(), "collector", "Dakar", "failed")],
    )
    .await;
    h.advance(SECOND).await;
    eventually(Duration::from_secs(5), "the firing notice", || {
        slack.delivered().len() == 1
    })
    .await;
    let firing = slack.delivered()[0].to_string();
    assert!(
        slack.headers()[0].contains("FIRING: source_failing"),
        "{:?}",
        slack.headers()
    );
    assert!(firing.contains("4 events matched"), "{firing}");
    assert!(
        firing.contains("q=service%3Acollector+AND+fields.status%3Afailed"),
        "the link opens the rule's search: {firing}"
    );
    let alerts = h.get("/api/alerts?state=firing").await;
    assert_eq!(alerts["alerts"][0]["alert"]["rule"], "source_failing");
    assert_eq!(alerts["alerts"][0]["alert"]["value"], 4.0);

    // They stop: the window empties a minute later, then `min_hold` (60 s) passes.
    h.advance(Duration::from_secs(60)).await;
    h.advance(Duration::from_secs(61)).await;
    eventually(Duration::from_secs(5), "the resolved notice", || {
        slack.delivered().len() == 2
    })
    .await;
    assert!(
        slack.headers()[1].contains("RESOLVED: source_failing"),
        "{:?}",
        slack.headers()
    );
    h.stop().await;
}

#[tokio::test]
async fn grouped_by_region_one_alert_per_region() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        Some(&slack.url),
        vec![query_rule("source_failing_in_region", Some("region"))],
        regions(&["Dakar", "Thiès", "Kaolack"]),
    );
    let h = Harness::start(config, ManualClock::new(t0())).await;
    let now = h.clock.now();
    for (region, n) in [("Dakar", 4), ("Thiès", 5), ("Kaolack", 2)] {
        publish(
            &h,
            (0..n).map(|_| fetch_log(now, "collector", region, "failed")),
        )
        .await;
    }
    h.advance(SECOND).await;
    eventually(Duration::from_secs(5), "two firing notices", || {
        slack.delivered().len() == 2
    })
    .await;
    let firing = h.get("/api/alerts?state=firing").await;
    let mut regions: Vec<String> = firing["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alert"]["region"].as_str().unwrap().to_string())
        .collect();
    regions.sort();
    assert_eq!(regions, ["Dakar", "Thiès"]);
    let messages: String = slack.delivered().iter().map(|m| m.to_string()).collect();
    // Each links to the search narrowed to its region.
    assert!(
        messages.contains("region%3A%22Dakar%22") && messages.contains("region%3A%22Thi"),
        "{messages}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(slack.delivered().len(), 2);
    h.stop().await;
}
