//! The alert lifecycle end to end: bus in, Slack (a real local HTTP server) out, on a manual
//! clock that moves one second per evaluation.

mod support;

use std::time::Duration;
use support::*;
use windsock_core::clock::{Clock, ManualClock};

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn late_data_fires_at_the_first_evaluation_past_the_deadline_and_resolves_with_one_message() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let names = ["Dakar", "Thiès", "Louga"];
    let mut config = config(
        dir.path(),
        Some(&slack.url),
        vec![late_rule(Duration::from_secs(30))],
        regions(&names),
    );
    config.alerter.min_hold = Duration::from_secs(20);
    let h = Harness::start(config, ManualClock::new(t0())).await;
    for region in names {
        h.observe(region, 25.0).await;
    }
    h.advance(Duration::ZERO).await;
    // Louga goes silent after t0; the others report every 10 s. One evaluation per second.
    let deadline = t0() + chrono::Duration::seconds(30);
    let mut fired_at = None;
    for second in 1..=40 {
        if second % 10 == 0 {
            h.observe("Dakar", 25.0).await;
            h.observe("Thiès", 25.0).await;
        }
        h.advance(SECOND).await;
        let firing = h.get("/api/alerts?state=firing&region=Louga").await;
        if let Some(alert) = firing["alerts"].as_array().unwrap().first() {
            fired_at = Some(
                alert["alert"]["fired_at"]
                    .as_str()
                    .unwrap()
                    .parse::<chrono::DateTime<chrono::Utc>>()
                    .unwrap(),
            );
            break;
        }
    }
    let fired_at = fired_at.expect("Louga's late_data alert fired");
    assert!(fired_at > deadline, "not before the deadline: {fired_at}");
    assert!(
        fired_at <= deadline + chrono::Duration::seconds(1),
        "within one evaluation of the deadline: {fired_at}"
    );
    eventually(Duration::from_secs(5), "the firing message", || {
        slack.delivered().len() == 1
    })
    .await;

    // Louga is back: resolved once the hold (20 s) has passed, with one message.
    for second in 0..30 {
        if second % 10 == 0 {
            for region in names {
                h.observe(region, 25.0).await;
            }
        }
        h.advance(SECOND).await;
    }
    eventually(Duration::from_secs(5), "the resolved message", || {
        slack.delivered().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let headers = slack.headers();
    assert_eq!(headers.len(), 2, "{headers:?}");
    assert!(
        headers[0].contains("FIRING: late_data") && headers[0].contains("Louga"),
        "{headers:?}"
    );
    assert!(
        headers[1].contains("RESOLVED: late_data") && headers[1].contains("Louga"),
        "{headers:?}"
    );
    let resolved = slack.delivered()[1].to_string();
    assert!(resolved.contains("Lasted"), "{resolved}");
    let link = "http://windsock.test:8080/?q=region%3A%22Louga%22&from=";
    assert!(resolved.contains(link), "{resolved}");
    h.stop().await;
}

#[tokio::test]
async fn a_flapping_series_gives_one_firing_and_one_resolved_message() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(
        dir.path(),
        Some(&slack.url),
        vec![hot_rule(Duration::ZERO, 0.0)],
        regions(&["Dakar"]),
    );
    config.alerter.min_hold = Duration::from_secs(60);
    let h = Harness::start(config, ManualClock::new(t0())).await;
    // Five minutes of a value crossing the threshold every reading.
    for i in 0..60 {
        h.observe("Dakar", if i % 2 == 0 { 41.0 } else { 39.0 })
            .await;
        h.advance(Duration::from_secs(5)).await;
    }
    eventually(Duration::from_secs(5), "the firing message", || {
        !slack.delivered().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(slack.delivered().len(), 1, "{:?}", slack.headers());
    // Then it stays below: one resolved message once the hold has passed.
    for _ in 0..20 {
        h.observe("Dakar", 30.0).await;
        h.advance(Duration::from_secs(5)).await;
    }
    eventually(Duration::from_secs(5), "the resolved message", || {
        slack.delivered().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let headers = slack.headers();
    assert_eq!(headers.len(), 2, "{headers:?}");
    assert!(headers[0].contains("FIRING: hot"), "{headers:?}");
    assert!(headers[1].contains("RESOLVED: hot"), "{headers:?}");
    h.stop().await;
}

#[tokio::test]
async fn pipeline_down_is_one_message_and_inhibits_the_fourteen_regions() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = windsock_core::config::senegal_regions()
        .into_iter()
        .map(|r| r.name)
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut config = config(
        dir.path(),
        Some(&slack.url),
        vec![late_rule(Duration::from_secs(30))],
        regions(&names),
    );
    config.alerter.min_hold = Duration::from_secs(10);
    let h = Harness::start(config, ManualClock::new(t0())).await;
    for region in &names {
        h.observe(region, 25.0).await;
    }
    h.advance(Duration::ZERO).await;
    for _ in 0..45 {
        h.advance(SECOND).await;
    }
    eventually(Duration::from_secs(5), "the pipeline_down message", || {
        !slack.delivered().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let headers = slack.headers();
    assert_eq!(headers.len(), 1, "one message, not fifteen: {headers:?}");
    assert!(headers[0].contains("FIRING: pipeline_down"), "{headers:?}");
    let firing = h.get("/api/alerts?state=firing").await;
    let firing = firing["alerts"].as_array().unwrap();
    assert_eq!(
        firing.len(),
        15,
        "the regions are tracked, just not announced"
    );
    let inhibited = firing
        .iter()
        .filter(|a| a["alert"]["inhibited_by"] == "pipeline_down")
        .count();
    assert_eq!(inhibited, 14);
    // Data is back: one resolved message.
    for second in 0..15 {
        if second % 10 == 0 {
            for region in &names {
                h.observe(region, 25.0).await;
            }
        }
        h.advance(SECOND).await;
    }
    eventually(Duration::from_secs(5), "the resolved message", || {
        slack.delivered().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let headers = slack.headers();
    assert_eq!(headers.len(), 2, "{headers:?}");
    assert!(
        headers[1].contains("RESOLVED: pipeline_down"),
        "{headers:?}"
    );
    assert!(h.get("/api/alerts?state=firing").await["alerts"]
        .as_array()
        .unwrap()
        .is_empty());
    h.stop().await;
}

#[tokio::test]
async fn silences_suppress_until_they_expire_or_are_deleted_and_need_the_token() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(
        dir.path(),
        Some(&slack.url),
        vec![hot_rule(Duration::ZERO, 0.0)],
        regions(&["Dakar", "Thiès", "Louga"]),
    );
    config.http.api_token = Some(windsock_core::Secret::new("let-me-in"));
    let h = Harness::start(config, ManualClock::new(t0())).await;
    let silence = serde_json::json!({
        "rule": "hot", "region": "Dakar", "duration": "2m", "author": "awa", "comment": "sensor swap"
    });
    let post = |token: Option<&str>, body: serde_json::Value| {
        let mut request = h.http.post(format!("{}/api/silences", h.api)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(post(None, silence.clone()).await.unwrap().status(), 401);
    assert_eq!(
        post(Some("wrong"), silence.clone()).await.unwrap().status(),
        401
    );
    let created = post(Some("let-me-in"), silence).await.unwrap();
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.unwrap();
    assert_eq!(created["status"], "active");
    // Bad silences are refused with a reason.
    let refused = post(
        Some("let-me-in"),
        serde_json::json!({"author": "awa", "comment": "x", "duration": "1h"}),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 400);
    let reason: serde_json::Value = refused.json().await.unwrap();
    assert!(
        reason["error"]
            .as_str()
            .unwrap()
            .contains("`rule`, `region` or both"),
        "{reason}"
    );
    let refused = post(
        Some("let-me-in"),
        serde_json::json!({"rule": "hott", "author": "awa", "comment": "x", "duration": "1h"}),
    )
    .await
    .unwrap();
    let reason: serde_json::Value = refused.json().await.unwrap();
    assert!(
        reason["error"]
            .as_str()
            .unwrap()
            .contains("rule `hott` does not exist"),
        "{reason}"
    );

    // Dakar (silenced) and Thiès (not) get hot.
    h.observe("Dakar", 42.0).await;
    h.observe("Thiès", 42.0).await;
    h.advance(SECOND).await;
    eventually(Duration::from_secs(5), "Thiès's message", || {
        slack.delivered().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(slack.headers().len(), 1);
    assert!(slack.headers()[0].contains("Thiès"));
    let dakar = h.get("/api/alerts?state=firing&region=Dakar").await;
    assert_eq!(dakar["alerts"][0]["alert"]["silenced_by"], created["id"]);

    // The silence expires: Dakar's firing message goes out then, once.
    for _ in 0..3 {
        h.observe("Dakar", 42.0).await;
        h.advance(Duration::from_secs(60)).await;
    }
    eventually(Duration::from_secs(5), "Dakar's message", || {
        slack.delivered().len() == 2
    })
    .await;
    assert!(
        slack.headers()[1].contains("FIRING: hot — Dakar"),
        "{:?}",
        slack.headers()
    );
    let silences = h.get("/api/silences").await;
    assert_eq!(silences["silences"][0]["status"], "expired");

    // A silence deleted early stops suppressing at once.
    let louga = post(Some("let-me-in"), serde_json::json!({"region": "Louga", "duration": "1h", "author": "awa", "comment": "visit"})).await.unwrap();
    let louga: serde_json::Value = louga.json().await.unwrap();
    h.observe("Louga", 42.0).await;
    h.advance(SECOND).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(slack.delivered().len(), 2);
    let url = format!("{}/api/silences/{}", h.api, louga["id"].as_str().unwrap());
    assert_eq!(h.http.delete(&url).send().await.unwrap().status(), 401);
    let deleted = h
        .http
        .delete(&url)
        .bearer_auth("let-me-in")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(
        h.http
            .delete(format!("{}/api/silences/nope", h.api))
            .bearer_auth("let-me-in")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    h.advance(SECOND).await;
    eventually(Duration::from_secs(5), "Louga's message", || {
        slack.delivered().len() == 3
    })
    .await;
    assert!(slack.headers()[2].contains("Louga"));
    h.stop().await;
}

#[tokio::test]
async fn state_survives_a_restart_without_resending_or_forgetting() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = || {
        config(
            dir.path(),
            Some(&slack.url),
            vec![hot_rule(Duration::ZERO, 0.0)],
            regions(&["Dakar", "Thiès"]),
        )
    };
    let clock = ManualClock::new(t0());
    // First run: Dakar fires and is announced; Thiès fires while Slack hangs.
    let h = Harness::start(cfg(), clock.clone()).await;
    h.observe("Dakar", 42.0).await;
    h.advance(SECOND).await;
    eventually(Duration::from_secs(5), "Dakar's message", || {
        slack.delivered().len() == 1
    })
    .await;
    slack.set_default(Some(Answer::Hang));
    h.observe("Thiès", 43.0).await;
    h.advance(SECOND).await;
    eventually(Duration::from_secs(5), "the hanging POST", || {
        slack.posts() == 2
    })
    .await;
    h.stop().await;

    // Second run on the same data: Thiès's message is sent once; Dakar's is not sent again.
    slack.set_default(None);
    let h = Harness::start(cfg(), clock.clone()).await;
    h.advance(SECOND).await;
    eventually(Duration::from_secs(5), "Thiès's message", || {
        slack.delivered().len() == 2
    })
    .await;
    let firing = h.get("/api/alerts?state=firing").await;
    assert_eq!(
        firing["alerts"].as_array().unwrap().len(),
        2,
        "nothing firing is forgotten"
    );
    // Both resolve after the hold: exactly one resolved message each.
    h.observe("Dakar", 30.0).await;
    h.observe("Thiès", 30.0).await;
    h.advance(SECOND).await;
    h.advance(Duration::from_secs(61)).await;
    eventually(Duration::from_secs(5), "the resolved messages", || {
        slack.delivered().len() == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let headers = slack.headers();
    assert_eq!(headers.len(), 4, "{headers:?}");
    assert_eq!(
        headers.iter().filter(|h| h.contains("FIRING")).count(),
        2,
        "{headers:?}"
    );
    assert!(clock.now() > t0());
    h.stop().await;
}

#[tokio::test]
async fn deviation_and_outlier_rules_fire_on_constructed_series_from_the_bus() {
    use windsock_core::config::{OutlierMethod, OutlierScope, RuleConfig, Severity};
    use windsock_core::event::{Event, Forecast, ForecastPoint};
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let names = ["Dakar", "Thiès", "Louga", "Matam", "Kolda", "Fatick"];
    let rules = vec![
        RuleConfig::ForecastDeviation {
            name: "deviation".into(),
            severity: Severity::Warning,
            region: Some("Dakar".into()),
            consecutive: 3,
            level: None,
        },
        RuleConfig::Outlier {
            name: "odd_one_out".into(),
            severity: Severity::Warning,
            metric: "temperature_c".into(),
            scope: OutlierScope::Regions,
            method: OutlierMethod::Mad,
            sensitivity: 0.5,
            min_history: 2,
            window: 48,
            consecutive: 1,
            min_deviation: 5.0,
        },
    ];
    let h = Harness::start(
        config(dir.path(), Some(&slack.url), rules, regions(&names)),
        ManualClock::new(t0()),
    )
    .await;
    let forecast = Forecast {
        region: "Dakar".into(),
        model: "mstl_ets".into(),
        generated_at: t0(),
        level: 0.95,
        points: (0..48)
            .map(|i| ForecastPoint {
                timestamp: t0() + chrono::Duration::minutes(30 * i),
                temperature_c: 26.0,
                lower: 24.0,
                upper: 28.0,
            })
            .collect(),
        backtest_mae: Default::default(),
    };
    windsock_core::bus::publish_event(h.bus.as_ref(), Event::Forecast(forecast))
        .await
        .unwrap();
    // Topics are not ordered among themselves: let the forecast in before the readings.
    h.advance(Duration::ZERO).await;
    // Rounds every 10 minutes: Dakar drifts above its forecast (29, 30, 31) while staying in
    // line with the others; in round 4 Matam reads far from everyone.
    let dakar = [26.5, 29.0, 30.0, 31.0, 27.0];
    let normal = [26.8, 27.3, 28.1, 27.6, 26.9];
    for round in 0..5 {
        for (i, name) in names.iter().enumerate() {
            let value = match *name {
                "Dakar" => dakar[round],
                "Matam" if round == 4 => 44.0,
                _ => normal[(round + i) % 5] + if (1..=3).contains(&round) { 2.0 } else { 0.0 },
            };
            h.observe(name, value).await;
        }
        // Judged as they arrive (a deviation needs fresh readings), then the next round.
        h.advance(Duration::ZERO).await;
        let rules = h.get("/api/rules").await;
        let deviation = &rules["rules"][0]["evaluation"][0];
        let expected = if round == 3 {
            "active"
        } else if round == 0 {
            "clear"
        } else {
            deviation["verdict"].as_str().unwrap()
        };
        assert_eq!(deviation["verdict"], expected, "round {round}: {deviation}");
        h.advance(Duration::from_secs(600)).await;
    }
    eventually(Duration::from_secs(5), "both alerts", || {
        slack.delivered().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let headers = slack.headers();
    assert!(
        headers
            .iter()
            .any(|h| h.contains("FIRING: deviation — Dakar")),
        "{headers:?}"
    );
    assert!(
        headers
            .iter()
            .any(|h| h.contains("FIRING: odd_one_out — Matam")),
        "{headers:?}"
    );
    let outliers = headers.iter().filter(|h| h.contains("odd_one_out")).count();
    assert_eq!(outliers, 1, "only Matam stands out: {headers:?}");
    let deviation = slack
        .delivered()
        .into_iter()
        .find(|p| p.to_string().contains("deviation"))
        .unwrap()
        .to_string();
    assert!(
        deviation.contains("*Value*\\n31 °C") && deviation.contains("*Expected*\\n24–28 °C"),
        "value and expected range: {deviation}"
    );
    h.stop().await;
}

#[tokio::test]
async fn every_state_change_is_published_and_kept_in_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(
        dir.path(),
        None,
        vec![hot_rule(Duration::from_secs(30), 0.0)],
        regions(&["Dakar"]),
    );
    config.alerter.min_hold = Duration::from_secs(10);
    let h = Harness::start(config, ManualClock::new(t0())).await;
    // Two occurrences: pending -> firing -> resolved, twice.
    for _ in 0..2 {
        h.observe("Dakar", 42.0).await;
        h.advance(SECOND).await;
        h.advance(Duration::from_secs(30)).await;
        h.observe("Dakar", 30.0).await;
        h.advance(SECOND).await;
        h.advance(Duration::from_secs(10)).await;
    }
    let all = h.get("/api/alerts?state=resolved&region=Dakar").await;
    let occurrences = all["alerts"].as_array().unwrap();
    assert_eq!(occurrences.len(), 2);
    let id = occurrences[0]["alert"]["id"].as_str().unwrap();
    let history = h.get(&format!("/api/alerts/{id}/history")).await;
    let states: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["pending", "firing", "resolved"]);
    let fingerprint = occurrences[0]["alert"]["fingerprint"].as_str().unwrap();
    let history = h.get(&format!("/api/alerts/{fingerprint}/history")).await;
    assert_eq!(
        history["history"].as_array().unwrap().len(),
        6,
        "both occurrences by fingerprint"
    );
    let missing = h
        .http
        .get(format!("{}/api/alerts/nope/history", h.api))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let bad = h
        .http
        .get(format!("{}/api/alerts?state=burning", h.api))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("burning"),
        "{body}"
    );

    // The same six changes went out on the bus as Alert events.
    let mut replay = h.bus.replay(windsock_core::Topic::Alerts).await.unwrap();
    let mut published = Vec::new();
    while let Some(delivery) = replay.next().await.unwrap() {
        let envelope = windsock_core::Envelope::from_json(&delivery.payload).unwrap();
        if let windsock_core::Event::Alert(alert) = envelope.event {
            published.push(alert.state.as_str());
        }
    }
    assert_eq!(
        published,
        ["pending", "firing", "resolved", "pending", "firing", "resolved"]
    );
    h.stop().await;
}
