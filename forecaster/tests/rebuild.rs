//! History comes from the bus: ingested, persisted, acked; and rebuilt by replaying the
//! observations topic when the data directory is wiped.

mod common;

use axum::http::StatusCode;
use common::*;
use std::sync::Arc;
use windsock_core::bus::{EmbeddedBus, EventSubscription, SharedBus, Topic};
use windsock_core::clock::ManualClock;
use windsock_core::event::Event;
use windsock_core::CancellationToken;
use windsock_forecaster::Forecaster;

#[tokio::test]
async fn state_is_rebuilt_from_the_bus_after_the_data_directory_is_wiped() {
    let Some(series) = sand_point() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let bus: SharedBus = Arc::new(EmbeddedBus::new(&config.bus));
    // Another consumer (as the indexer would be) that has not acked keeps the topic's
    // messages retained, as Kafka's retention would.
    let _slow_consumer = bus
        .subscribe(&[Topic::Observations], "slow-indexer")
        .await
        .unwrap();
    let mut forecasts = EventSubscription::new(bus.clone(), &[Topic::Forecasts], "test")
        .await
        .unwrap();
    let history = &series[100..100 + 30 * 24];
    publish_observations(&bus, "Dakar", history).await;
    // A duplicate delivery must not count twice.
    publish_observations(&bus, "Dakar", &history[..5]).await;

    let generated_at = "2030-01-01T00:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(generated_at));
    let first = Forecaster::with_clock(config.clone(), bus.clone(), clock.clone())
        .await
        .unwrap();
    let router = first.routes();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(first.run(shutdown.clone()));
    let before = wait_for_ok(&router, "/api/forecast/Dakar").await;
    assert_eq!(before["history_hours"], 30 * 24);
    assert_eq!(
        before["generated_at"], "2030-01-01T00:00:00Z",
        "stamped by the service's clock"
    );

    // The refit was published as a Forecast event.
    let (delivery, envelope) = forecasts.next().await.unwrap().unwrap();
    forecasts.ack(&delivery).unwrap();
    let Event::Forecast(forecast) = envelope.event else {
        panic!("{envelope:?}")
    };
    assert_eq!(forecast.region, "Dakar");
    assert_eq!(forecast.generated_at, generated_at);
    assert_eq!(forecast.points.len(), config.forecaster.horizon_hours);
    assert_eq!(forecast.level, 0.95);
    assert_eq!(forecast.points[0].timestamp, series[100 + 30 * 24].0);
    assert!(forecast
        .points
        .iter()
        .all(|p| p.lower < p.temperature_c && p.temperature_c < p.upper));
    assert_eq!(
        forecast.backtest_mae.len(),
        5,
        "{:?}",
        forecast.backtest_mae
    );
    assert_eq!(forecast.model, before["model"]);

    shutdown.cancel();
    running.await.unwrap().unwrap();
    let state_dir = dir.path().join("forecaster");
    assert!(
        persisted_hours(&state_dir) >= 30 * 24,
        "Dakar's history is in the database"
    );

    // Wipe the state. The forecaster group has acked everything, so only a replay of the
    // topic can bring the history back.
    std::fs::remove_dir_all(&state_dir).unwrap();
    let second = Forecaster::with_clock(config.clone(), bus.clone(), clock)
        .await
        .unwrap();
    let router = second.routes();
    let (status, _) = get(&router, "/api/forecast/Dakar").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing before it runs");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(second.run(shutdown.clone()));
    let after = wait_for_ok(&router, "/api/forecast/Dakar").await;
    assert_eq!(after["history_hours"], 30 * 24);
    assert_eq!(
        after["points"], before["points"],
        "the same history gives the same forecast"
    );
    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert!(
        persisted_hours(&state_dir) >= 30 * 24,
        "the state is persisted again"
    );
}

/// How many observations of Dakar the state directory's database holds.
fn persisted_hours(state_dir: &std::path::Path) -> usize {
    let store = windsock_forecaster::store::Store::open(state_dir, 24 * 365).unwrap();
    store.region("Dakar").map_or(0, |r| r.observation_count())
}

#[tokio::test]
async fn a_restart_loads_the_persisted_state_without_the_bus() {
    let Some(series) = sand_point() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let bus: SharedBus = Arc::new(EmbeddedBus::new(&config.bus));
    let first = Forecaster::new(config.clone(), bus.clone()).await.unwrap();
    let router = first.routes();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(first.run(shutdown.clone()));
    publish_observations(&bus, "Kaolack", &series[..3 * 24]).await;
    wait_for_ok(&router, "/api/forecast/Kaolack").await;
    shutdown.cancel();
    running.await.unwrap().unwrap();

    // A new bus: nothing to replay, so what it serves comes from the data directory.
    let empty_bus: SharedBus = Arc::new(EmbeddedBus::new(&config.bus));
    let second = Forecaster::new(config, empty_bus).await.unwrap();
    let router = second.routes();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(second.run(shutdown.clone()));
    let forecast = wait_for_ok(&router, "/api/forecast/Kaolack").await;
    assert_eq!(forecast["history_hours"], 3 * 24);
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_hour_still_in_progress_is_forecast_not_used_as_history() {
    let Some(series) = sand_point() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let bus: SharedBus = Arc::new(EmbeddedBus::new(&config.bus));
    let history = &series[..3 * 24];
    publish_observations(&bus, "Matam", history).await;
    // The clock is ten minutes into the hour of the last observation.
    let last = history.last().unwrap().0;
    let clock = Arc::new(ManualClock::new(last + chrono::Duration::minutes(10)));
    let forecaster = Forecaster::with_clock(config, bus, clock).await.unwrap();
    let router = forecaster.routes();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(forecaster.run(shutdown.clone()));
    let forecast = wait_for_ok(&router, "/api/forecast/Matam").await;
    assert_eq!(forecast["history_hours"], 3 * 24 - 1);
    assert_eq!(forecast["points"][0]["timestamp"], serde_json::json!(last));
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_undecodable_message_is_dead_lettered_and_the_rest_still_counts() {
    let Some(series) = sand_point() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let bus: SharedBus = Arc::new(EmbeddedBus::new(&config.bus));
    let mut dead_letters = EventSubscription::new(bus.clone(), &[Topic::DeadLetters], "test")
        .await
        .unwrap();
    let forecaster = Forecaster::new(config, bus.clone()).await.unwrap();
    let router = forecaster.routes();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(forecaster.run(shutdown.clone()));
    bus.publish(
        Topic::Observations,
        "Ziguinchor",
        bytes::Bytes::from_static(b"{\"kind\":\"observation\",\"temperature_c\":NaN}"),
    )
    .await
    .unwrap();
    publish_observations(&bus, "Ziguinchor", &series[..3 * 24]).await;
    let forecast = wait_for_ok(&router, "/api/forecast/Ziguinchor").await;
    assert_eq!(forecast["history_hours"], 3 * 24);
    let (_, envelope) = dead_letters.next().await.unwrap().unwrap();
    let Event::DeadLetter(letter) = envelope.event else {
        panic!("{envelope:?}")
    };
    assert!(letter.group.ends_with("forecaster"), "{letter:?}");
    assert_eq!(letter.topic, "observations");
    shutdown.cancel();
    running.await.unwrap().unwrap();
}
