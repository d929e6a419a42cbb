//! Refits follow the configured cron schedule.

mod common;

use common::*;
use std::sync::Arc;
use std::time::Duration;
use windsock_core::bus::{EmbeddedBus, EventSubscription, SharedBus, Topic};
use windsock_core::clock::ManualClock;
use windsock_core::event::Event;
use windsock_core::{CancellationToken, Config};
use windsock_forecaster::Forecaster;

#[tokio::test]
async fn scheduled_refits_publish_new_forecasts() {
    let Some(series) = sand_point() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.forecaster.schedule = "* * * * * *".into(); // every second
    let config = Arc::new(config);
    let bus: SharedBus = Arc::new(EmbeddedBus::new(&config.bus));
    let mut forecasts = EventSubscription::new(bus.clone(), &[Topic::Forecasts], "test")
        .await
        .unwrap();
    publish_observations(&bus, "Louga", &series[..4 * 24]).await;

    let start = "2030-06-01T12:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let forecaster = Forecaster::with_clock(config, bus.clone(), clock.clone())
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(forecaster.run(shutdown.clone()));

    assert_eq!(
        next_generated_at(&mut forecasts).await,
        start,
        "the refit after the history loads"
    );
    let later = start + chrono::Duration::hours(1);
    clock.set(later);
    let mut seen = next_generated_at(&mut forecasts).await;
    while seen == start {
        seen = next_generated_at(&mut forecasts).await;
    }
    assert_eq!(seen, later, "a scheduled refit");
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

async fn next_generated_at(forecasts: &mut EventSubscription) -> chrono::DateTime<chrono::Utc> {
    let (delivery, envelope) = tokio::time::timeout(Duration::from_secs(30), forecasts.next())
        .await
        .expect("a forecast within 30 s")
        .unwrap()
        .unwrap();
    forecasts.ack(&delivery).unwrap();
    let Event::Forecast(forecast) = envelope.event else {
        panic!("{envelope:?}")
    };
    assert_eq!(forecast.region, "Louga");
    forecast.generated_at
}
