use crate::*;
use tower::ServiceExt;
use windsock_core::bus::EventSubscription;
use windsock_core::CancellationToken;

async fn status(collector: &Collector) -> serde_json::Value {
    let response = collector
        .routes()
        .oneshot(
            axum::http::Request::get("/api/collector/status")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let answer = serde_json::from_slice(&body).unwrap();
    assert_documented(&answer);
    answer
}

#[tokio::test]
async fn status_shows_the_source_schedule_last_round_and_next_round() {
    let mut config = config(SourceKind::Simulated, "http://unused", 4);
    config.collector.schedule = Some("*/10 * * * * *".into());
    config.collector.simulated.faults = vec![windsock_core::config::FaultConfig::Silent {
        region: "Fatick".into(),
        after: Duration::ZERO,
        duration: Duration::from_secs(60),
    }];
    let bus = bus();
    let (collector, clock) = collector(config, &bus, noon() - chrono::Duration::seconds(1));

    let before = status(&collector).await;
    assert_eq!(before["source"], "simulated");
    assert_eq!(before["schedule"], "*/10 * * * * *");
    assert!(before["last_round"].is_null());
    assert_eq!(before["next_round"], "2026-11-25T12:00:00Z");

    clock.advance(chrono::Duration::seconds(4));
    collector.round(tick(&collector, clock.now())).await;
    clock.advance(chrono::Duration::seconds(4));
    let after = status(&collector).await;
    assert_eq!(after["rounds_completed"], 1);
    let last = &after["last_round"];
    assert_eq!(last["tick"], "2026-11-25T12:00:00Z");
    assert_eq!(last["started"], "2026-11-25T12:00:03Z");
    assert_eq!(last["outcomes"]["ok"], 3);
    assert_eq!(last["outcomes"]["no_data"], 1);
    assert_eq!(last["regions"].as_array().unwrap().len(), 4);
    assert_eq!(after["next_round"], "2026-11-25T12:00:10Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_collects_every_region_on_a_per_second_schedule_and_stops_on_shutdown() {
    let mut config = config(SourceKind::Simulated, "http://unused", 14);
    config.collector.schedule = Some("*/1 * * * * *".into());
    config.collector.backfill = Duration::from_secs(3);
    let bus = bus();
    let mut subscription = EventSubscription::new(bus.clone(), &[Topic::Observations], "test")
        .await
        .unwrap();
    let collector = Collector::new(Arc::new(config), bus.clone()).await.unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(collector.clone().run(shutdown.clone()));

    // Backfill first (3 seconds of ticks), then live rounds: wait for a live tick that
    // every region reported, i.e. an instant after the start.
    let started = Utc::now();
    let mut live: std::collections::BTreeMap<DateTime<Utc>, std::collections::BTreeSet<String>> =
        Default::default();
    let complete = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (delivery, envelope) = subscription.next().await.unwrap().unwrap();
            subscription.ack(&delivery).unwrap();
            let Event::Observation(o) = envelope.event else {
                continue;
            };
            if o.observed_at > started {
                let regions = live.entry(o.observed_at).or_default();
                regions.insert(o.region);
                if regions.len() == 14 {
                    return;
                }
            }
        }
    })
    .await;
    assert!(
        complete.is_ok(),
        "no live round reported every region: {live:?}"
    );
    let backfill = status(&collector).await["backfill"].clone();
    assert!(
        backfill["published"].as_u64().unwrap() >= 14 * 2,
        "{backfill}"
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("run returns on shutdown")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn rounds_count_received_sent_errors_and_stamp_the_last_round() {
    let metrics = windsock_core::telemetry::prometheus();
    let api = crate::fake::FakeApi::start(|req| {
        if req.lat() > 14.5 {
            crate::fake::Reply::Text {
                status: 502,
                body: "bad gateway".into(),
            }
        } else {
            crate::fake::Reply::ok(crate::fixtures::open_meteo_current(
                req.lat(),
                req.lon(),
                "2026-11-25T12:00",
            ))
        }
    })
    .await;
    let bus = bus();
    let (collector, _) = collector(config(SourceKind::OpenMeteo, &api.base, 3), &bus, noon());
    let report = collector.round(tick(&collector, noon())).await;
    assert_eq!(report.outcomes().get("failed"), Some(&2), "{report:?}");

    let text = metrics.render();
    let value = |series: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("windsock_received_total{service=\"collector\"}") >= 1.0);
    assert!(value("windsock_sent_total{service=\"collector\"}") >= 1.0);
    assert!(value("windsock_errors_total{service=\"collector\",kind=\"http_5xx\"}") >= 2.0);
    assert!(
        value("windsock_collector_last_round_timestamp_seconds{service=\"collector\"}")
            >= noon().timestamp() as f64
    );
}

/// The document check used by every status read refuses what the document does not say.
#[tokio::test]
async fn an_answer_the_document_does_not_describe_is_refused() {
    let config = config(SourceKind::Simulated, "http://unused", 2);
    let bus = bus();
    let (collector, _) = collector(config, &bus, noon());
    let answer = status(&collector).await;
    let refused = |answer: serde_json::Value| {
        std::panic::catch_unwind(|| assert_documented(&answer)).is_err()
    };
    let mut extra = answer.clone();
    extra["surprise"] = 1.into();
    assert!(refused(extra), "an undocumented field");
    let mut missing = answer.clone();
    missing.as_object_mut().unwrap().remove("rounds_completed");
    assert!(refused(missing), "a required field absent");
    let mut wrong = answer;
    wrong["regions"] = "two".into();
    assert!(refused(wrong), "a field of the wrong type");
}
