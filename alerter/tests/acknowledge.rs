//! Acknowledging an alert through the API, end to end on a manual clock: the token is
//! needed, reminders stop while it is acknowledged and resume when that is withdrawn, it is
//! on the alert's page (timeline, links, a filled-in silence), it survives a restart, and a
//! resolved alert cannot be acknowledged (409).

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::*;
use windsock_core::clock::ManualClock;

const TOKEN: &str = "let-me-in";

/// Readings of 45 °C every 10 s for `seconds`, one evaluation per 10 s.
async fn hot_for(h: &Harness, seconds: u64, temperature: f64) {
    for _ in 0..seconds / 10 {
        h.observe("Dakar", temperature).await;
        h.advance(Duration::from_secs(10)).await;
    }
}

#[tokio::test]
async fn an_acknowledged_alert_is_not_reminded_about_until_that_is_withdrawn() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(
        dir.path(),
        Some(&slack.url),
        vec![hot_rule(Duration::ZERO, 1.0)],
        regions(&["Dakar"]),
    );
    config.http.api_token = Some(windsock_core::Secret::new(TOKEN));
    config.alerter.repeat_interval = Duration::from_secs(60);
    config.alerter.min_hold = Duration::from_secs(30);
    let h = Harness::start(config.clone(), ManualClock::new(t0())).await;
    h.observe("Dakar", 45.0).await;
    h.advance(Duration::ZERO).await;
    eventually(Duration::from_secs(5), "the firing message", || {
        slack.delivered().len() == 1
    })
    .await;
    let firing = h.get("/api/alerts?state=open").await;
    let alert = firing["alerts"][0]["alert"].clone();
    let id = alert["id"].as_str().unwrap().to_string();
    assert_eq!(alert["acknowledged_by"], Value::Null, "{alert}");

    // The token is needed, and the body is checked.
    let path = format!("/api/alerts/{id}/acknowledge");
    let body = json!({"by": "awa", "comment": "looking at the sensor"});
    let (status, answer) = h
        .send(reqwest::Method::POST, &path, None, Some(body.clone()))
        .await;
    assert_eq!(status, 401, "{answer}");
    let (status, answer) = h
        .send(
            reqwest::Method::POST,
            &path,
            Some(TOKEN),
            Some(json!({"by": " ", "comment": "x".repeat(1001)})),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("`by`") && error.contains("1000"), "{error}");
    let (status, answer) = h
        .send(
            reqwest::Method::POST,
            "/api/alerts/nope/acknowledge",
            Some(TOKEN),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 404, "{answer}");

    let (status, acked) = h
        .send(reqwest::Method::POST, &path, Some(TOKEN), Some(body))
        .await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["acknowledged_by"], "awa");
    assert_eq!(acked["acknowledged_at"], "2026-11-25T12:00:00Z");

    // Three repeat intervals, still firing: no reminder.
    hot_for(&h, 200, 45.0).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(slack.delivered().len(), 1, "{:?}", slack.headers());

    // Its page shows who is on it, the timeline, the links and a filled-in silence.
    let page = h.get(&format!("/api/alerts/{id}")).await;
    assert_eq!(page["alert"]["acknowledged_by"], "awa", "{page}");
    assert_eq!(page["kind"], "threshold");
    assert_eq!(page["unit"], "°C");
    assert_eq!(
        page["threshold"],
        json!({"metric": "temperature_c", "above": 40.0, "hysteresis": 1.0})
    );
    let kinds: Vec<&str> = page["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["firing", "acknowledged"], "{page}");
    assert_eq!(
        page["timeline"][1]["text"],
        "Acknowledged by awa: looking at the sensor"
    );
    assert_eq!(
        page["alert_url"],
        format!("http://windsock.test:8080/alerts/{id}")
    );
    assert_eq!(
        page["silence_url"],
        format!("http://windsock.test:8080/alerts/{id}?silence=1")
    );
    assert!(page["search_url"]
        .as_str()
        .unwrap()
        .starts_with("http://windsock.test:8080/?q=region%3A%22Dakar%22"));
    assert_eq!(
        page["silence_template"],
        json!({"rule": "hot", "region": "Dakar", "duration": "2h"})
    );
    assert_eq!(page["deliveries"].as_array().unwrap().len(), 1);
    // The Slack message's buttons lead to that page and its silence form.
    let buttons = slack.delivered()[0]["blocks"][3]["elements"].clone();
    assert_eq!(buttons[0]["url"], page["alert_url"], "{buttons}");
    assert_eq!(buttons[1]["url"], page["silence_url"], "{buttons}");

    // Withdrawn: the next reminder is due at once (the last message is long past).
    let (status, answer) = h
        .send(
            reqwest::Method::DELETE,
            &format!("{path}?by=moussa"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 401, "{answer}");
    let (status, withdrawn) = h
        .send(
            reqwest::Method::DELETE,
            &format!("{path}?by=moussa"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{withdrawn}");
    assert_eq!(withdrawn["acknowledged_by"], Value::Null);
    hot_for(&h, 10, 45.0).await;
    eventually(Duration::from_secs(5), "a reminder", || {
        slack.delivered().len() == 2
    })
    .await;
    assert!(
        slack.headers()[1].contains("STILL FIRING"),
        "{:?}",
        slack.headers()
    );

    // Acknowledged again, it is still acknowledged after a restart.
    let (status, _) = h
        .send(
            reqwest::Method::POST,
            &path,
            Some(TOKEN),
            Some(json!({"by": "awa"})),
        )
        .await;
    assert_eq!(status, 200);
    let clock = h.clock.clone();
    h.stop().await;
    let h = Harness::start(config, clock).await;
    let page = h.get(&format!("/api/alerts/{id}")).await;
    assert_eq!(page["alert"]["acknowledged_by"], "awa", "{page}");
    let kinds: Vec<&str> = page["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["firing", "acknowledged", "unacknowledged", "acknowledged"]
    );
    hot_for(&h, 100, 45.0).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(slack.delivered().len(), 2, "{:?}", slack.headers());

    // Resolved: nothing to acknowledge any more.
    hot_for(&h, 60, 20.0).await;
    eventually(Duration::from_secs(5), "the resolved message", || {
        slack.delivered().len() == 3
    })
    .await;
    let (status, answer) = h
        .send(
            reqwest::Method::POST,
            &path,
            Some(TOKEN),
            Some(json!({"by": "awa"})),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("resolved"),
        "{answer}"
    );
    let (status, answer) = h
        .send(reqwest::Method::DELETE, &path, Some(TOKEN), None)
        .await;
    assert_eq!(status, 409, "{answer}");
    let resolved = h.get(&format!("/api/alerts/{id}")).await;
    assert_eq!(resolved["alert"]["state"], "resolved");
    assert_eq!(
        resolved["alert"]["acknowledged_by"], "awa",
        "who was on it stays on record"
    );

    // The condition comes back: a new occurrence, not acknowledged.
    hot_for(&h, 10, 45.0).await;
    let open = h.get("/api/alerts?state=open").await;
    let again = &open["alerts"][0]["alert"];
    assert_ne!(again["id"], id.as_str(), "{again}");
    assert_eq!(again["acknowledged_by"], Value::Null, "{again}");
    h.stop().await;
}
