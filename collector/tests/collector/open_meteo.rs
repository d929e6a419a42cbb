use crate::fake::{FakeApi, Reply};
use crate::fixtures;
use crate::*;
use chrono::TimeZone;
use windsock_collector::Outcome;

#[tokio::test]
async fn current_weather_maps_every_field_and_the_weather_code() {
    let api = FakeApi::start(|req| {
        Reply::ok(fixtures::open_meteo_current(
            req.lat(),
            req.lon(),
            "2026-11-25T11:45",
        ))
    })
    .await;
    let bus = bus();
    let (collector, _) = collector(config(SourceKind::OpenMeteo, &api.base, 1), &bus, noon());
    let report = collector.round(tick(&collector, noon())).await;
    assert_eq!(report.regions[0].outcome, Outcome::Ok, "{report:?}");

    let o = &observations(&bus).await[0];
    assert_eq!(o.source, "open-meteo");
    assert_eq!(
        o.observed_at,
        Utc.with_ymd_and_hms(2026, 11, 25, 11, 45, 0).unwrap()
    );
    assert_eq!(o.temperature_c, 31.4);
    assert_eq!(o.humidity_pct, Some(41.0));
    assert_eq!(o.feels_like_c, Some(32.9));
    assert_eq!(o.pressure_hpa, Some(1009.8));
    assert_eq!(o.wind_speed_ms, Some(4.3));
    assert_eq!(o.wind_deg, Some(315.0));
    assert_eq!(o.wind_gust_ms, Some(8.9));
    assert_eq!(o.clouds_pct, Some(12.0));
    assert_eq!(o.condition.as_deref(), Some("Rain"));
    assert_eq!(o.description.as_deref(), Some("slight rain"));

    let request = &api.requests()[0];
    assert_eq!(request.path, "/v1/forecast");
    assert_eq!(request.query["wind_speed_unit"], "ms");
    assert_eq!(
        request.query["current"],
        "temperature_2m,relative_humidity_2m,apparent_temperature,pressure_msl,wind_speed_10m,wind_direction_10m,wind_gusts_10m,cloud_cover,weather_code"
    );
    assert_eq!(request.query["latitude"], "14.6928");
}

#[tokio::test]
async fn an_error_body_gives_its_reason_and_a_400_is_not_retried() {
    let reason =
        "Cannot initialize WeatherVariable from invalid String value tempeture_2m for key current";
    let api = FakeApi::start(move |_| Reply::status(400, fixtures::open_meteo_error(reason))).await;
    let bus = bus();
    let (collector, _) = collector(config(SourceKind::OpenMeteo, &api.base, 1), &bus, noon());
    let report = collector.round(tick(&collector, noon())).await;
    let region = &report.regions[0];
    assert_eq!(region.outcome, Outcome::Failed);
    assert_eq!(region.attempts, 1);
    assert_eq!(
        region.error.as_deref(),
        Some(format!("HTTP 400: {reason}").as_str())
    );
}

#[tokio::test]
async fn a_current_block_without_temperature_is_malformed() {
    let api = FakeApi::start(|req| {
        let mut body = fixtures::open_meteo_current(req.lat(), req.lon(), "2026-11-25T11:45");
        body["current"]["temperature_2m"] = serde_json::Value::Null;
        Reply::ok(body)
    })
    .await;
    let bus = bus();
    let (collector, _) = collector(config(SourceKind::OpenMeteo, &api.base, 1), &bus, noon());
    let report = collector.round(tick(&collector, noon())).await;
    assert_eq!(
        report.regions[0].error.as_deref(),
        Some("malformed response: no temperature_2m at 2026-11-25T11:45")
    );
}

#[tokio::test]
async fn backfill_asks_past_days_once_per_region_and_keeps_the_hours_of_the_look_back() {
    let now = noon() + chrono::Duration::minutes(5);
    let missing = noon() - chrono::Duration::hours(1);
    let api = FakeApi::start(move |req| {
        let days: i64 = req.query["past_days"].parse().unwrap();
        Reply::ok(fixtures::open_meteo_hourly(
            req.lat(),
            req.lon(),
            now,
            days,
            Some(missing),
        ))
    })
    .await;
    let bus = bus();
    let mut config = config(SourceKind::OpenMeteo, &api.base, 2);
    config.collector.backfill = Duration::from_secs(3 * 3600);
    let (collector, _) = collector(config, &bus, now);
    let report = collector.backfill().await;
    assert_eq!(report.failures, 0, "{report:?}");
    assert_eq!(report.instants, 12, "every 15 minutes over 3 hours");

    let requests = api.requests();
    assert_eq!(requests.len(), 2, "one request per region");
    assert_eq!(requests[0].query["past_days"], "1");
    assert!(requests[0].query["hourly"].starts_with("temperature_2m,relative_humidity_2m"));
    let dakar: Vec<_> = observations(&bus)
        .await
        .into_iter()
        .filter(|o| o.region == "Dakar")
        .collect();
    let hours: Vec<_> = dakar.iter().map(|o| o.observed_at).collect();
    // The look-back is (09:05, 12:05]: hours 10, 11 (null temperature: skipped) and 12.
    assert_eq!(hours, vec![noon() - chrono::Duration::hours(2), noon()]);
    assert_eq!(dakar[0].humidity_pct, Some(55.0));
    assert_eq!(dakar[0].condition.as_deref(), Some("Clear"));
}
