//! Query rules through the API: created with the token (401 without), checked as
//! `config check` checks the file's rules (400 naming the problem), listed with their origin,
//! the file's rules untouchable (409); a created rule pages on the fake Slack when matching
//! logs exceed its count and, once deleted, resolves and pages no more; API rules survive a
//! restart.

mod support;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use support::*;
use windsock_core::bus::publish_event;
use windsock_core::clock::{Clock, ManualClock};
use windsock_core::event::{Event, Level, LogEvent};

const TOKEN: &str = "let-me-in";
const SECOND: Duration = Duration::from_secs(1);

fn failed_fetch(at: DateTime<Utc>) -> Event {
    let mut fields = serde_json::Map::new();
    fields.insert("status".into(), json!("failed"));
    Event::Log(LogEvent {
        timestamp: at,
        service: "collector".into(),
        level: Level::Warn,
        message: "fetch of Dakar failed".into(),
        region: Some("Dakar".into()),
        target: Some("windsock_collector::fetch".into()),
        fields,
    })
}

async fn failed_fetches(h: &Harness, count: usize) {
    for _ in 0..count {
        publish_event(h.bus.as_ref(), failed_fetch(h.clock.now()))
            .await
            .unwrap();
    }
}

/// The rules `GET /api/rules` lists, as (name, origin).
async fn listed(h: &Harness) -> Vec<(String, String)> {
    h.get("/api/rules").await["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["origin"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn failing_rule(name: &str) -> Value {
    json!({
        "name": name,
        "query": "service:collector AND fields.status:failed",
        "window": "1m",
        "above": 3,
        "severity": "warning",
    })
}

#[tokio::test]
async fn a_rule_created_through_the_api_pages_until_it_is_deleted() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(
        dir.path(),
        Some(&slack.url),
        vec![hot_rule(Duration::ZERO, 1.0)],
        regions(&["Dakar"]),
    );
    config.http.api_token = Some(windsock_core::Secret::new(TOKEN));
    config.alerter.min_hold = Duration::from_secs(30);
    let h = Harness::start(config, ManualClock::new(t0())).await;
    let rule = failing_rule("api_fetch_failing");

    let (status, _) = h
        .send(Method::POST, "/api/rules", None, Some(rule.clone()))
        .await;
    assert_eq!(status, 401, "no token");
    let (status, _) = h
        .send(
            Method::POST,
            "/api/rules",
            Some("wrong"),
            Some(rule.clone()),
        )
        .await;
    assert_eq!(status, 401, "a wrong token");

    let mut broken = rule.clone();
    broken["query"] = json!("service:collector AND (fields.status:failed");
    let (status, answer) = h
        .send(Method::POST, "/api/rules", Some(TOKEN), Some(broken))
        .await;
    assert_eq!(status, 400, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains("rule.query") && error.contains("api_fetch_failing"),
        "names the key and the rule: {error}"
    );
    let mut unbounded = rule.clone();
    unbounded.as_object_mut().unwrap().remove("above");
    unbounded["window"] = json!("3d");
    let (status, answer) = h
        .send(Method::POST, "/api/rules", Some(TOKEN), Some(unbounded))
        .await;
    assert_eq!(status, 400, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("rule.window"), "{error}");
    assert!(error.contains("`above` or `below`"), "{error}");
    let mut threshold = rule.clone();
    threshold["kind"] = json!("threshold");
    let (status, answer) = h
        .send(Method::POST, "/api/rules", Some(TOKEN), Some(threshold))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("only query rules"));
    let mut named_hot = rule.clone();
    named_hot["name"] = json!("hot");
    let (status, answer) = h
        .send(Method::POST, "/api/rules", Some(TOKEN), Some(named_hot))
        .await;
    assert_eq!(status, 409, "the file's rule has that name: {answer}");

    let (status, created) = h
        .send(Method::POST, "/api/rules", Some(TOKEN), Some(rule.clone()))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["origin"], "api");
    assert_eq!(created["kind"], "query");
    assert_eq!(created["config"]["window"], "1m");
    let (status, _) = h
        .send(Method::POST, "/api/rules", Some(TOKEN), Some(rule))
        .await;
    assert_eq!(status, 409, "names are unique");
    assert_eq!(
        listed(&h).await,
        [
            ("hot".to_string(), "file".to_string()),
            ("api_fetch_failing".to_string(), "api".to_string())
        ]
    );

    let (status, answer) = h
        .send(Method::DELETE, "/api/rules/hot", Some(TOKEN), None)
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("configuration file"));
    let (status, _) = h
        .send(
            Method::PUT,
            "/api/rules/hot",
            Some(TOKEN),
            Some(failing_rule("hot")),
        )
        .await;
    assert_eq!(status, 409, "the file's rule is not replaced either");

    // Three matching logs are not more than 3; the fourth is.
    failed_fetches(&h, 3).await;
    h.advance(SECOND).await;
    assert!(slack.delivered().is_empty());
    failed_fetches(&h, 1).await;
    h.advance(SECOND).await;
    eventually(Duration::from_secs(5), "the firing notice", || {
        slack.delivered().len() == 1
    })
    .await;
    assert!(
        slack.headers()[0].contains("FIRING: api_fetch_failing"),
        "{:?}",
        slack.headers()
    );

    let (status, deleted) = h
        .send(
            Method::DELETE,
            "/api/rules/api_fetch_failing",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["name"], "api_fetch_failing");
    assert_eq!(listed(&h).await, [("hot".to_string(), "file".to_string())]);
    // Still failing, but nothing counts it any more: the alert clears, its firing having
    // been announced, so is its resolution, once min_hold has passed.
    failed_fetches(&h, 10).await;
    h.advance(SECOND).await;
    h.advance(Duration::from_secs(31)).await;
    eventually(Duration::from_secs(5), "the resolved notice", || {
        slack.delivered().len() == 2
    })
    .await;
    assert!(
        slack.headers()[1].contains("RESOLVED"),
        "{:?}",
        slack.headers()
    );
    failed_fetches(&h, 10).await;
    h.advance(SECOND).await;
    h.advance(SECOND).await;
    assert_eq!(slack.delivered().len(), 2, "a deleted rule pages no more");
    let (status, _) = h
        .send(
            Method::DELETE,
            "/api/rules/api_fetch_failing",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 404);
    h.stop().await;
}

#[tokio::test]
async fn api_rules_are_replaced_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(
        dir.path(),
        None,
        vec![hot_rule(Duration::ZERO, 1.0)],
        regions(&["Dakar"]),
    );
    config.http.api_token = Some(windsock_core::Secret::new(TOKEN));
    let h = Harness::start(config.clone(), ManualClock::new(t0())).await;
    let (status, answer) = h
        .send(
            Method::POST,
            "/api/rules",
            Some(TOKEN),
            Some(failing_rule("api_kept")),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let mut renamed = failing_rule("api_other");
    renamed["above"] = json!(10);
    let (status, _) = h
        .send(
            Method::PUT,
            "/api/rules/api_kept",
            Some(TOKEN),
            Some(renamed),
        )
        .await;
    assert_eq!(status, 400, "a rule is not renamed");
    let mut replaced = failing_rule("api_kept");
    replaced["above"] = json!(10);
    replaced["group_by"] = json!("region");
    let (status, answer) = h
        .send(
            Method::PUT,
            "/api/rules/api_kept",
            Some(TOKEN),
            Some(replaced),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["config"]["above"], 10);
    let (status, _) = h
        .send(
            Method::PUT,
            "/api/rules/api_missing",
            Some(TOKEN),
            Some(failing_rule("api_missing")),
        )
        .await;
    assert_eq!(status, 404);
    h.stop().await;

    let h = Harness::start(config, ManualClock::new(t0())).await;
    let rules = h.get("/api/rules").await;
    let kept = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "api_kept")
        .unwrap_or_else(|| panic!("not kept: {rules}"));
    assert_eq!(kept["origin"], "api");
    assert_eq!(kept["config"]["above"], 10);
    assert_eq!(kept["config"]["group_by"], "region");
    h.stop().await;
}
