use crate::fake::{FakeApi, Reply};
use crate::fixtures;
use crate::*;
use serde_json::json;
use windsock_collector::Outcome;

const DT: i64 = 1_795_953_600; // 2026-11-29T08:00:00Z, what the API says it measured at

#[tokio::test]
async fn one_call_maps_every_field_and_is_asked_for_in_metric_units() {
    let api = FakeApi::start(|req| match req.path.as_str() {
        "/data/3.0/onecall" => Reply::ok(fixtures::one_call(req.lat(), req.lon(), DT)),
        _ => Reply::status(404, fixtures::owm_error(json!("404"), "Internal error")),
    })
    .await;
    let (report, bus) = round_at_noon(config(SourceKind::Openweathermap, &api.base, 2)).await;
    assert_eq!(report.outcomes().get("ok"), Some(&2), "{report:?}");

    let mut got = observations(&bus).await;
    got.sort_by(|a, b| a.region.cmp(&b.region));
    assert_eq!(got.len(), 2);
    let dakar = &got[0];
    assert_eq!(dakar.region, "Dakar");
    assert_eq!(dakar.source, "openweathermap");
    assert_eq!(
        dakar.observed_at,
        DateTime::from_timestamp(DT, 0).unwrap(),
        "observed_at is the API's dt"
    );
    assert_eq!(dakar.fetched_at, noon());
    assert_eq!(dakar.temperature_c, 29.46);
    assert_eq!(dakar.feels_like_c, Some(31.2));
    assert_eq!(dakar.humidity_pct, Some(58.0));
    assert_eq!(dakar.pressure_hpa, Some(1011.0));
    assert_eq!(dakar.dew_point_c, Some(20.31));
    assert_eq!(dakar.uvi, Some(7.42));
    assert_eq!(dakar.clouds_pct, Some(20.0));
    assert_eq!(dakar.visibility_m, Some(10000.0));
    assert_eq!(dakar.wind_speed_ms, Some(5.66));
    assert_eq!(dakar.wind_deg, Some(340.0));
    assert_eq!(dakar.wind_gust_ms, Some(7.2));
    assert_eq!(dakar.condition.as_deref(), Some("Clouds"));
    assert_eq!(dakar.description.as_deref(), Some("few clouds"));

    let request = &api.requests_to("/data/3.0/onecall")[0];
    assert_eq!(request.query["units"], "metric");
    assert_eq!(request.query["exclude"], "minutely,hourly,daily,alerts");
    assert_eq!(request.query["appid"], API_KEY);
    assert!(api.requests_to("/data/2.5/weather").is_empty());
}

#[tokio::test]
async fn a_key_without_one_call_falls_back_to_current_weather_and_remembers() {
    let api = FakeApi::start(|req| match req.path.as_str() {
        "/data/3.0/onecall" => Reply::status(
            401,
            fixtures::owm_error(json!(401), fixtures::ONE_CALL_NOT_SUBSCRIBED),
        ),
        "/data/2.5/weather" => Reply::ok(fixtures::current_weather(req.lat(), req.lon(), DT)),
        _ => Reply::status(404, fixtures::owm_error(json!("404"), "Internal error")),
    })
    .await;
    let bus = bus();
    let mut config = config(SourceKind::Openweathermap, &api.base, 1);
    config.collector.concurrency = 1;
    let (collector, _) = collector(config, &bus, noon());
    let first = collector.round(tick(&collector, noon())).await;
    assert_eq!(first.regions[0].outcome, Outcome::Ok, "{first:?}");
    assert_eq!(first.regions[0].attempts, 1, "a 401 is not retried");
    let later = noon() + chrono::Duration::minutes(15);
    let second = collector.round(tick(&collector, later)).await;
    assert_eq!(second.regions[0].outcome, Outcome::Ok);

    assert_eq!(
        api.requests_to("/data/3.0/onecall").len(),
        1,
        "One Call is not asked again"
    );
    assert_eq!(api.requests_to("/data/2.5/weather").len(), 2);
    let got = observations(&bus).await;
    let o = &got[0];
    assert_eq!(o.temperature_c, 27.8);
    assert_eq!(o.feels_like_c, Some(30.4));
    assert_eq!(o.humidity_pct, Some(74.0));
    assert_eq!(o.pressure_hpa, Some(1010.0));
    assert_eq!(o.wind_speed_ms, Some(3.6));
    assert_eq!(o.wind_deg, Some(220.0));
    assert_eq!(o.wind_gust_ms, Some(5.1));
    assert_eq!(o.clouds_pct, Some(75.0));
    assert_eq!(o.visibility_m, Some(9000.0));
    assert_eq!(o.condition.as_deref(), Some("Rain"));
    assert_eq!(o.description.as_deref(), Some("light rain"));
    assert_eq!(o.dew_point_c, None, "2.5 does not report it");
    assert_eq!(o.observed_at, DateTime::from_timestamp(DT, 0).unwrap());
}

#[tokio::test]
async fn error_bodies_with_a_string_cod_give_their_message_and_are_not_retried() {
    let api =
        FakeApi::start(|_| Reply::status(404, fixtures::owm_error(json!("404"), "city not found")))
            .await;
    let (report, _) = round_at_noon(config(SourceKind::Openweathermap, &api.base, 1)).await;
    let region = &report.regions[0];
    assert_eq!(region.outcome, Outcome::Failed);
    assert_eq!(region.attempts, 1);
    assert_eq!(region.http_status, Some(404));
    assert_eq!(region.error.as_deref(), Some("HTTP 404: city not found"));
}

#[tokio::test]
async fn an_invalid_key_fails_on_the_fallback_too_with_the_apis_message() {
    let api = FakeApi::start(|_| {
        Reply::status(401, fixtures::owm_error(json!(401), fixtures::INVALID_KEY))
    })
    .await;
    let (report, _) = round_at_noon(config(SourceKind::Openweathermap, &api.base, 1)).await;
    let region = &report.regions[0];
    assert_eq!(region.outcome, Outcome::Failed);
    assert_eq!(region.http_status, Some(401));
    assert!(
        region.error.as_deref().unwrap().contains("Invalid API key"),
        "{region:?}"
    );
    assert_eq!(
        api.requests_to("/data/2.5/weather").len(),
        1,
        "the fallback was tried"
    );
}

#[tokio::test]
async fn an_error_body_served_with_200_is_believed() {
    let api =
        FakeApi::start(|_| Reply::ok(fixtures::owm_error(json!("400"), "wrong latitude"))).await;
    let (report, _) = round_at_noon(config(SourceKind::Openweathermap, &api.base, 1)).await;
    assert_eq!(
        report.regions[0].error.as_deref(),
        Some("HTTP 400: wrong latitude")
    );
}
