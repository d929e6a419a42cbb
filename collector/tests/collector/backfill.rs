use crate::fake::{FakeApi, Reply};
use crate::fixtures;
use crate::*;
use serde_json::json;
use std::collections::BTreeSet;

async fn ids(bus: &SharedBus) -> BTreeSet<String> {
    published(bus, Topic::Observations)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect()
}

#[tokio::test]
async fn a_restart_backfills_exactly_the_ids_the_live_rounds_published() {
    // Before the "crash": live rounds at 11:59:30 .. 12:00:00 on a 10-second schedule.
    let mut config = config(SourceKind::Simulated, "http://unused", 3);
    config.collector.schedule = Some("*/10 * * * * *".into());
    let live_bus = bus();
    let (live, clock) = collector(
        config.clone(),
        &live_bus,
        noon() - chrono::Duration::seconds(30),
    );
    for _ in 0..4 {
        live.round(tick(&live, clock.now())).await;
        clock.advance(chrono::Duration::seconds(10));
    }
    let live_ids = ids(&live_bus).await;
    assert_eq!(live_ids.len(), 4 * 3);

    // After it: a new process at 12:00:07 backfills a minute.
    config.collector.backfill = Duration::from_secs(60);
    let restarted_bus = bus();
    let (restarted, _) = collector(
        config,
        &restarted_bus,
        noon() + chrono::Duration::seconds(7),
    );
    let report = restarted.backfill().await;
    assert_eq!(report.instants, 6, "11:59:10 to 12:00:00");
    assert_eq!(report.published, 6 * 3);
    let backfilled = ids(&restarted_bus).await;
    assert!(
        live_ids.is_subset(&backfilled),
        "every live observation is restored with its id"
    );

    // And what was restored is the same observation, not only the same id.
    let live_obs = observations(&live_bus).await;
    let restored = observations(&restarted_bus).await;
    for o in &live_obs {
        let again = restored
            .iter()
            .find(|r| r.region == o.region && r.observed_at == o.observed_at)
            .unwrap();
        assert_eq!(again.temperature_c, o.temperature_c);
        assert_eq!(again.humidity_pct, o.humidity_pct);
    }
}

#[tokio::test]
async fn openweathermap_backfills_through_timemachine_one_instant_per_request() {
    let api = FakeApi::start(|req| match req.path.as_str() {
        "/data/3.0/onecall/timemachine" => {
            let dt: i64 = req.query["dt"].parse().unwrap();
            Reply::ok(fixtures::time_machine(req.lat(), req.lon(), dt))
        }
        _ => Reply::status(404, fixtures::owm_error(json!("404"), "Internal error")),
    })
    .await;
    let bus = bus();
    let mut config = config(SourceKind::Openweathermap, &api.base, 2);
    config.collector.backfill = Duration::from_secs(3600);
    let (collector, _) = collector(config, &bus, noon() + chrono::Duration::minutes(1));
    let report = collector.backfill().await;
    assert_eq!(report.instants, 4);
    assert_eq!(report.published, 8, "{report:?}");

    let requests = api.requests_to("/data/3.0/onecall/timemachine");
    let mut asked: Vec<i64> = requests
        .iter()
        .map(|r| r.query["dt"].parse().unwrap())
        .collect();
    asked.sort();
    asked.dedup();
    let expected: Vec<i64> = (0..4)
        .map(|i| (noon() - chrono::Duration::minutes(45 - 15 * i)).timestamp())
        .collect();
    assert_eq!(asked, expected);
    assert!(requests
        .iter()
        .all(|r| r.query["units"] == "metric" && r.query["appid"] == API_KEY));
    let o = observations(&bus)
        .await
        .into_iter()
        .find(|o| o.observed_at == noon())
        .unwrap();
    assert_eq!(o.temperature_c, 26.1);
    assert_eq!(o.dew_point_c, Some(19.2));
    assert_eq!(o.condition.as_deref(), Some("Clear"));
}

#[tokio::test]
async fn a_key_without_one_call_skips_the_backfill_after_one_refusal() {
    let api = FakeApi::start(|_| {
        Reply::status(
            401,
            fixtures::owm_error(json!(401), fixtures::ONE_CALL_NOT_SUBSCRIBED),
        )
    })
    .await;
    let bus = bus();
    let mut config = config(SourceKind::Openweathermap, &api.base, 3);
    config.collector.backfill = Duration::from_secs(3600);
    config.collector.concurrency = 1;
    let (collector, _) = collector(config, &bus, noon());
    let report = collector.backfill().await;
    assert_eq!(api.requests().len(), 1);
    assert_eq!(report.published, 0);
    assert!(
        report
            .skipped
            .as_deref()
            .unwrap()
            .contains("no One Call 3.0 subscription"),
        "{report:?}"
    );
}

#[tokio::test]
async fn sources_without_a_past_and_a_zero_look_back_skip_with_a_reason() {
    let bus = bus();
    let mut config = config(SourceKind::Simulated, "http://unused", 1);
    config.collector.backfill = Duration::ZERO;
    let (collector, _) = collector(config, &bus, noon());
    let report = collector.backfill().await;
    assert_eq!(report.skipped.as_deref(), Some("collector.backfill is 0"));
    assert!(observations(&bus).await.is_empty());
}

#[tokio::test]
async fn a_look_back_past_the_start_of_time_is_skipped_not_a_panic() {
    let bus = bus();
    let mut config = config(SourceKind::Simulated, "http://unused", 1);
    // 300,000 years: a valid duration, but no date is that far back.
    config.collector.backfill = Duration::from_secs(300_000 * 365 * 86_400);
    let (collector, _) = collector(config, &bus, noon());
    let report = collector.backfill().await;
    assert_eq!(
        report.skipped.as_deref(),
        Some("collector.backfill is too long")
    );
}
