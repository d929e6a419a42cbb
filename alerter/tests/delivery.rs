//! Slack delivery against a local server that answers like Slack's incoming webhook.

mod support;

use std::time::Duration;
use support::*;
use windsock_core::clock::ManualClock;

const SECOND: Duration = Duration::from_secs(1);

/// Fires (and then resolves) `hot` in each region in turn: 2 messages per region, in order.
async fn fire_and_resolve(h: &Harness, names: &[&str]) -> Vec<String> {
    let mut expected = Vec::new();
    for name in names {
        h.observe(name, 42.0).await;
        h.advance(SECOND).await;
        expected.push(format!("FIRING: hot — {name}"));
    }
    for name in names {
        h.observe(name, 30.0).await;
    }
    h.advance(SECOND).await;
    h.advance(Duration::from_secs(61)).await;
    // Resolved in one evaluation: decided (and so sent) in the order the rule lists regions.
    let mut sorted = names.to_vec();
    sorted.sort();
    expected.extend(sorted.iter().map(|name| format!("RESOLVED: hot — {name}")));
    expected
}

#[tokio::test]
async fn a_webhook_outage_ends_with_every_message_delivered_once_in_order() {
    let slack = FakeSlack::start().await;
    // A rate limit first, then the outage: every POST fails with 500 until it ends.
    slack.script([Answer::TooMany { retry_after: 1 }]);
    slack.set_default(Some(Answer::ServerError));
    let dir = tempfile::tempdir().unwrap();
    let names = ["Dakar", "Thiès", "Louga", "Matam", "Kolda"];
    let config = config(
        dir.path(),
        Some(&slack.url),
        vec![hot_rule(Duration::ZERO, 0.0)],
        regions(&names),
    );
    let h = Harness::start(config, ManualClock::new(t0())).await;
    let expected = fire_and_resolve(&h, &names).await;
    // The "10 minutes" of outage, scaled down with the backoff (10-40 ms instead of 1-60 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(slack.delivered().is_empty());
    let failed_posts = slack.posts();
    assert!(
        failed_posts >= 5,
        "retried during the outage: {failed_posts}"
    );
    slack.set_default(None);
    eventually(Duration::from_secs(10), "every message", || {
        slack.delivered().len() >= expected.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let headers: Vec<String> = slack
        .headers()
        .iter()
        .map(|h| h.split_once(' ').unwrap().1.to_string())
        .collect();
    assert_eq!(headers, expected, "each once, in the order decided");
    let deliveries = h.get("/api/deliveries").await;
    assert_eq!(deliveries["counts"]["delivered"], 10);
    assert_eq!(deliveries["counts"]["pending"], 0);
    let first = deliveries["deliveries"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(first["attempts"].as_u64().unwrap() > 2, "{first}");
    assert!(
        first["last_error"].as_str().unwrap().starts_with("HTTP"),
        "{first}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_429_waits_for_retry_after_then_sends_the_same_message() {
    let slack = FakeSlack::start().await;
    slack.script([Answer::TooMany { retry_after: 1 }]);
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        Some(&slack.url),
        vec![hot_rule(Duration::ZERO, 0.0)],
        regions(&["Dakar"]),
    );
    let h = Harness::start(config, ManualClock::new(t0())).await;
    h.observe("Dakar", 42.0).await;
    h.advance(SECOND).await;
    eventually(Duration::from_secs(5), "the message", || {
        slack.delivered().len() == 1
    })
    .await;
    let arrivals = slack.arrivals();
    assert_eq!(arrivals.len(), 2);
    // The backoff alone would have retried after 10 ms; Retry-After said one second.
    assert!(
        arrivals[1] - arrivals[0] >= SECOND,
        "retried after {:?}",
        arrivals[1] - arrivals[0]
    );
    let deliveries = h.get("/api/deliveries").await;
    assert_eq!(deliveries["deliveries"][0]["attempts"], 2);
    assert_eq!(
        deliveries["deliveries"][0]["last_error"],
        "HTTP 429: rate_limited"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_429_with_an_http_date_waits_until_that_date() {
    let slack = FakeSlack::start().await;
    slack.script([Answer::TooManyUntil {
        ahead: Duration::from_secs(3),
    }]);
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        Some(&slack.url),
        vec![hot_rule(Duration::ZERO, 0.0)],
        regions(&["Dakar"]),
    );
    let h = Harness::start(config, ManualClock::new(t0())).await;
    h.observe("Dakar", 42.0).await;
    h.advance(SECOND).await;
    eventually(Duration::from_secs(5), "the message", || {
        slack.delivered().len() == 1
    })
    .await;
    let arrivals = slack.arrivals();
    assert_eq!(arrivals.len(), 2);
    // The date is 3 s ahead in whole seconds, so at least 2 s after the first POST. Not read
    // as a date, it would be a 429 without a Retry-After: one second.
    assert!(
        arrivals[1] - arrivals[0] >= 2 * SECOND,
        "retried after {:?}",
        arrivals[1] - arrivals[0]
    );
    let deliveries = h.get("/api/deliveries").await;
    assert_eq!(deliveries["deliveries"][0]["attempts"], 2);
    assert_eq!(
        deliveries["deliveries"][0]["last_error"],
        "HTTP 429: rate_limited"
    );
    h.stop().await;
}

#[tokio::test]
async fn permanent_failures_are_counted_shown_and_not_retried() {
    let slack = FakeSlack::start().await;
    slack.script([
        Answer::InvalidPayload,
        Answer::NoService,
        Answer::ChannelNotFound,
        Answer::Gone,
    ]);
    let dir = tempfile::tempdir().unwrap();
    let names = ["Dakar", "Thiès", "Louga", "Matam", "Kolda"];
    let config = config(
        dir.path(),
        Some(&slack.url),
        vec![hot_rule(Duration::ZERO, 0.0)],
        regions(&names),
    );
    let h = Harness::start(config, ManualClock::new(t0())).await;
    for name in names {
        h.observe(name, 42.0).await;
        h.advance(SECOND).await;
    }
    eventually(Duration::from_secs(5), "the fifth message", || {
        slack.delivered().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(slack.posts(), 5, "a refused message is not retried");
    assert!(slack.headers()[0].contains("Kolda"));
    let deliveries = h.get("/api/deliveries").await;
    assert_eq!(deliveries["counts"]["failed"], 4);
    assert_eq!(deliveries["counts"]["delivered"], 1);
    let failed = h.get("/api/deliveries?status=failed").await;
    let errors: Vec<&str> = failed["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["last_error"].as_str().unwrap())
        .collect();
    assert_eq!(
        errors,
        [
            "HTTP 410: channel_is_archived",
            "HTTP 404: channel_not_found",
            "HTTP 404: no_service",
            "HTTP 400: invalid_payload"
        ]
    );
    // The alert API shows it too.
    let dakar = h.get("/api/alerts?region=Dakar").await;
    assert_eq!(dakar["alerts"][0]["deliveries"][0]["status"], "failed");
    let bad = h
        .http
        .get(format!("{}/api/deliveries?status=lost", h.api))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    h.stop().await;
}

#[tokio::test]
async fn a_hanging_webhook_times_out_and_the_message_is_sent_once() {
    let slack = FakeSlack::start().await;
    slack.script([Answer::Hang, Answer::ServerError]);
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        Some(&slack.url),
        vec![hot_rule(Duration::ZERO, 0.0)],
        regions(&["Dakar"]),
    );
    let h = Harness::start(config, ManualClock::new(t0())).await;
    h.observe("Dakar", 42.0).await;
    h.advance(SECOND).await;
    eventually(Duration::from_secs(5), "the message", || {
        slack.delivered().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(slack.posts(), 3);
    assert_eq!(slack.delivered().len(), 1);
    let deliveries = h.get("/api/deliveries").await;
    assert_eq!(deliveries["deliveries"][0]["attempts"], 3);
    h.stop().await;
}

#[tokio::test]
async fn without_a_webhook_alerts_are_tracked_and_marked_not_configured() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        None,
        vec![hot_rule(Duration::ZERO, 0.0)],
        regions(&["Dakar"]),
    );
    let h = Harness::start(config, ManualClock::new(t0())).await;
    h.observe("Dakar", 42.0).await;
    h.advance(SECOND).await;
    let alerts = h.get("/api/alerts?state=firing").await;
    assert_eq!(alerts["slack_configured"], false);
    assert_eq!(alerts["alerts"][0]["alert"]["rule"], "hot");
    let deliveries = h.get("/api/deliveries").await;
    assert_eq!(deliveries["counts"]["not_configured"], 1);
    assert!(deliveries["deliveries"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("WINDSOCK_SLACK_WEBHOOK_URL"));
    h.stop().await;
}
