//! The alerter when its store cannot write (a full disk): it keeps evaluating, still sends
//! Slack messages from memory, says so in `/api/deliveries`, and writes them to the outbox
//! once it can, without sending any twice.

mod support;

use std::sync::Arc;
use std::time::Duration;
use support::*;
use tokio_util::sync::CancellationToken;
use windsock_alerter::Alerter;
use windsock_core::bus::{publish_event, EmbeddedBus};
use windsock_core::clock::{Clock, ManualClock};
use windsock_core::config::BusConfig;
use windsock_core::event::{Event, Observation};
use windsock_core::SharedBus;

const SECOND: Duration = Duration::from_secs(1);

async fn observe(bus: &SharedBus, clock: &ManualClock, region: &str, temperature_c: f64) {
    let now = clock.now();
    let observation = Observation {
        region: region.into(),
        observed_at: now,
        fetched_at: now,
        source: "simulated".into(),
        temperature_c,
        ..Default::default()
    };
    publish_event(bus.as_ref(), Event::Observation(observation))
        .await
        .unwrap();
}

async fn get(api: &str, path: &str) -> serde_json::Value {
    reqwest::get(format!("{api}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_reach_slack_from_memory_while_the_store_cannot_write_and_are_kept_after() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let names = ["Dakar", "Thiès"];
    let config = Arc::new(config(
        dir.path(),
        Some(&slack.url),
        vec![hot_rule(Duration::ZERO, 0.0)],
        regions(&names),
    ));
    let clock = ManualClock::new(t0());
    let bus: SharedBus = Arc::new(EmbeddedBus::new(&BusConfig::default()));
    let alerter = Alerter::with_clock(config, bus.clone(), Arc::new(clock.clone()))
        .await
        .unwrap();
    let store = alerter.store();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let routes = alerter.routes();
    let serve_stop = shutdown.clone();
    tokio::spawn(async move { windsock_core::http::serve_on(listener, routes, serve_stop).await });
    let probe = alerter.probe();
    let running = tokio::spawn(alerter.run(shutdown.clone()));
    let advance = |by: Duration| {
        clock.advance(chrono::Duration::from_std(by).unwrap());
        let mut probe = probe.clone();
        async move { probe.settled().await }
    };

    // Healthy: Dakar fires, and its message is in the outbox.
    observe(&bus, &clock, "Dakar", 42.0).await;
    advance(SECOND).await;
    eventually(Duration::from_secs(10), "Dakar's notice", || {
        slack.delivered().len() == 1
    })
    .await;
    // Slack has it; the outbox records it a moment later (on the blocking pool). The disk
    // fills after that, or this outcome too would be one kept in memory.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while get(&api, "/api/deliveries").await["counts"]["delivered"] != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for Dakar's delivery in the outbox"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The disk fills: every write fails from now on.
    store.refuse_writes(true).unwrap();
    observe(&bus, &clock, "Thiès", 43.0).await;
    advance(SECOND).await;
    eventually(
        Duration::from_secs(10),
        "Thiès's notice, sent from memory",
        || slack.delivered().len() == 2,
    )
    .await;
    assert!(
        slack.headers()[1].contains("FIRING: hot — Thiès"),
        "{:?}",
        slack.headers()
    );
    // Evaluation goes on: Dakar resolves, and that is sent too.
    observe(&bus, &clock, "Dakar", 30.0).await;
    advance(SECOND).await;
    advance(Duration::from_secs(61)).await;
    eventually(Duration::from_secs(10), "Dakar's resolve", || {
        slack.delivered().len() == 3
    })
    .await;
    let deliveries = get(&api, "/api/deliveries").await;
    assert_eq!(deliveries["outbox_durable"], false, "{deliveries}");
    let in_memory: Vec<&serde_json::Value> = deliveries["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["durable"] == false)
        .collect();
    assert_eq!(in_memory.len(), 2, "{deliveries}");
    assert!(
        in_memory.iter().all(|d| d["status"] == "delivered"),
        "{deliveries}"
    );
    assert_eq!(deliveries["counts"]["delivered"], 3, "{deliveries}");

    // Space is back: what was in memory is written, as delivered; nothing is sent again.
    store.refuse_writes(false).unwrap();
    eventually(Duration::from_secs(10), "the outbox durable again", || {
        store.is_durable()
    })
    .await;
    advance(SECOND).await;
    let deliveries = get(&api, "/api/deliveries").await;
    assert_eq!(deliveries["outbox_durable"], true, "{deliveries}");
    let all = deliveries["deliveries"].as_array().unwrap();
    assert_eq!(all.len(), 3, "{deliveries}");
    assert!(
        all.iter()
            .all(|d| d["durable"] == true && d["status"] == "delivered"),
        "{deliveries}"
    );
    // The store holds them: a reopened one would see the same (no pending left to send).
    assert!(store.next_pending().unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slack.posts(), 3, "no message sent twice");

    // The alert state written meanwhile is there too.
    let firing = get(&api, "/api/alerts?state=firing").await;
    let text = firing.to_string();
    assert!(text.contains("Thiès"), "{text}");

    shutdown.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_silence_the_store_cannot_write_is_a_503_that_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        None,
        vec![hot_rule(Duration::ZERO, 0.0)],
        regions(&["Dakar"]),
    );
    let h = Harness::start(config, ManualClock::new(t0())).await;
    let body = serde_json::json!({
        "region": "Dakar", "author": "awa", "comment": "maintenance", "duration": "1h"
    });
    h.store.refuse_writes(true).unwrap();
    let response = h
        .http
        .post(format!("{}/api/silences", h.api))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert!(
        answer["error"].as_str().unwrap().contains("cannot write"),
        "{answer}"
    );
    assert_eq!(answer["detail"]["reason"], "store_unwritable");
    let silences = h.get("/api/silences").await;
    assert_eq!(
        silences["silences"].as_array().unwrap().len(),
        0,
        "{silences}"
    );
    h.store.refuse_writes(false).unwrap();
    let response = h
        .http
        .post(format!("{}/api/silences", h.api))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    h.stop().await;
}
