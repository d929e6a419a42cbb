//! `/api/aggregate` and `/api/daily` over an index of generated events: the figures against
//! the export of the same search and against the events themselves; the split by a field; the
//! 400s that name what is wrong.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{Duration, TimeZone, Utc};
use common::{enc, get, indexed_events, routes, start};
use serde_json::Value;
use std::collections::BTreeSet;
use tower::ServiceExt;
use windsock_core::event::{Envelope, Event, Forecast, ForecastPoint, Observation};
use windsock_indexer::EventIndex;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

async fn body_text(router: &axum::Router, uri: &str) -> String {
    let response = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{uri}");
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn a_days_average_equals_the_average_of_the_export_of_the_same_search() {
    let (index, events) = indexed_events();
    let (router, _) = routes(&index, start() + Duration::days(3));
    let q = "kind:observation AND region:Dakar";
    let from = "2026-11-23T00:00:00Z";
    let to = "2026-11-23T23:59:59.999999Z";
    let (status, body) = get(
        &router,
        &format!(
            "/api/aggregate?q={}&from={}&to={}&interval=1d&metric={}",
            enc(q),
            enc(from),
            enc(to),
            enc("avg(temperature_c)")
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["interval"], "1d");
    let series = body["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{body}");
    assert_eq!(series[0]["key"], Value::Null);
    let points = series[0]["points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{body}");
    assert_eq!(points[0]["start"], "2026-11-23T00:00:00Z");
    let aggregated = points[0]["value"].as_f64().unwrap();
    let counted = points[0]["count"].as_u64().unwrap();

    let exported = body_text(
        &router,
        &format!(
            "/api/export?q={}&from={}&to={}&format=ndjson",
            enc(q),
            enc(from),
            enc(to)
        ),
    )
    .await;
    let temperatures: Vec<f64> = exported
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line).unwrap();
            event["temperature_c"].as_f64().unwrap()
        })
        .collect();
    assert!(temperatures.len() > 50, "{}", temperatures.len());
    assert_eq!(temperatures.len() as u64, counted);
    let mean = temperatures.iter().sum::<f64>() / temperatures.len() as f64;
    assert!(close(aggregated, mean), "{aggregated} vs {mean}");

    // And from the events themselves, not through the index.
    let day_end = Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap();
    let truth: Vec<f64> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Observation(o)
                if o.region == "Dakar" && o.observed_at >= start() && o.observed_at < day_end =>
            {
                Some(o.temperature_c)
            }
            _ => None,
        })
        .collect();
    assert_eq!(truth.len(), temperatures.len());

    // min, max and sum agree with the same values; p50 lies between min and max.
    for (function, expected) in [
        ("min", truth.iter().copied().fold(f64::INFINITY, f64::min)),
        (
            "max",
            truth.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        ),
        ("sum", truth.iter().sum::<f64>()),
    ] {
        let (status, body) = get(
            &router,
            &format!(
                "/api/aggregate?q={}&from={}&to={}&interval=1d&metric={function}(temperature_c)",
                enc(q),
                enc(from),
                enc(to)
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let value = body["series"][0]["points"][0]["value"].as_f64().unwrap();
        assert!(close(value, expected), "{function}: {value} vs {expected}");
    }
    let (_, body) = get(
        &router,
        &format!(
            "/api/aggregate?q={}&from={}&to={}&interval=1d&metric=p50(temperature_c)",
            enc(q),
            enc(from),
            enc(to)
        ),
    )
    .await;
    let p50 = body["series"][0]["points"][0]["value"].as_f64().unwrap();
    let mut sorted = truth.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    assert!(
        (p50 - median).abs() <= 0.02 * median.abs() + 0.2,
        "{p50} vs {median}"
    );
}

#[tokio::test]
async fn by_region_gives_a_series_per_region_and_one_for_the_rest() {
    let (index, _) = indexed_events();
    let (router, _) = routes(&index, start() + Duration::days(3));
    let range = format!("from={}&to={}", enc("2026-11-23T00:00:00Z"), enc("now"));
    let (status, body) = get(
        &router,
        &format!("/api/aggregate?q=*&{range}&interval=6h&by=region&size=100"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let total = body["total"].as_u64().unwrap();
    let series = body["series"].as_array().unwrap();
    let keys: BTreeSet<String> = series
        .iter()
        .filter(|s| s["other"] == false)
        .map(|s| s["key"].as_str().unwrap().to_string())
        .collect();
    // Every region has events; the logs of other services have none: they are the rest.
    assert_eq!(keys.len(), 14, "{keys:?}");
    let other: Vec<&Value> = series.iter().filter(|s| s["other"] == true).collect();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0]["key"], Value::Null);
    let sum: u64 = series.iter().map(|s| s["count"].as_u64().unwrap()).sum();
    assert_eq!(sum, total);
    // Each series' points add up to its count; `count` is the point's value.
    for s in series {
        let points = s["points"].as_array().unwrap();
        let counted: u64 = points.iter().map(|p| p["count"].as_u64().unwrap()).sum();
        assert_eq!(counted, s["count"].as_u64().unwrap(), "{s}");
        assert!(points
            .iter()
            .all(|p| p["value"].as_f64() == p["count"].as_f64()));
    }

    // The top 3 by hits, most first, and the rest in one series.
    let (status, top) = get(
        &router,
        &format!("/api/aggregate?q=kind:observation&{range}&interval=1d&by=region&size=3&metric=avg(temperature_c)"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{top}");
    let series = top["series"].as_array().unwrap();
    assert_eq!(series.len(), 4, "{top}");
    let counts: Vec<u64> = series[..3]
        .iter()
        .map(|s| s["count"].as_u64().unwrap())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
    assert_eq!(series[3]["other"], true);
    let sum: u64 = series.iter().map(|s| s["count"].as_u64().unwrap()).sum();
    assert_eq!(sum, top["total"].as_u64().unwrap());
    let value = series[3]["points"][0]["value"].as_f64().unwrap();
    assert!((15.0..40.0).contains(&value), "{value}");
}

#[tokio::test]
async fn a_bad_metric_field_or_interval_is_a_400_naming_it() {
    let (index, _) = indexed_events();
    let (router, _) = routes(&index, start() + Duration::days(3));
    for (query, parameter, says) in [
        (
            "metric=median(temperature_c)",
            "metric",
            "unknown function \"median\", expected one of count, avg",
        ),
        (
            "metric=avg(message)",
            "metric",
            "field \"message\" is not numeric",
        ),
        (
            "metric=avg(fields.status)",
            "metric",
            "field \"fields.status\" is not numeric",
        ),
        (
            "metric=avg(nothing)",
            "metric",
            "field \"nothing\" is not numeric",
        ),
        (
            "metric=avg(temperature_c",
            "metric",
            "does not end with `)`",
        ),
        (
            "metric=temperature_c",
            "metric",
            "is not `count` or FUNCTION(FIELD)",
        ),
        (
            "by=message",
            "by",
            "field \"message\" cannot split a series",
        ),
        ("by=region&size=0", "size", "from 1 to 100"),
        ("by=region&size=101", "size", "from 1 to 100"),
        ("from=now-7d&interval=1m", "interval", "10080 buckets"),
        ("interval=fast", "interval", "invalid `interval`"),
        ("from=yesterday", "from", "invalid `from`"),
        (
            "metric=count&metric=count",
            "metric",
            "duplicate field `metric`",
        ),
    ] {
        let (status, body) = get(&router, &format!("/api/aggregate?q=*&{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["detail"]["parameter"], parameter, "{query}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(says), "{query}: {error}");
    }
    // The query is the search's: a syntax error with its position.
    let (status, body) = get(
        &router,
        &format!("/api/aggregate?q={}", enc("region:(Dakar")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["detail"]["reason"], "syntax");
    let long = "a".repeat(5000);
    let (status, body) = get(&router, &format!("/api/aggregate?q={long}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["detail"]["parameter"], "q");
}

fn observation(region: &str, at: chrono::DateTime<Utc>, temperature_c: f64) -> Envelope {
    Envelope::new(Event::Observation(Observation {
        region: region.into(),
        lat: 14.7,
        lon: -17.4,
        observed_at: at,
        fetched_at: at,
        source: "simulated".into(),
        temperature_c,
        ..Default::default()
    }))
}

#[tokio::test]
async fn daily_figures_per_region_with_the_forecasts_beside_them() {
    let index = EventIndex::in_ram().unwrap();
    let mut sink = index.writer(50).unwrap();
    let day = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
    for (region, d, h, t) in [
        ("Dakar", 23, 1, 20.0),
        ("Dakar", 23, 13, 30.0),
        ("Dakar", 23, 23, 25.0),
        ("Dakar", 24, 12, 31.0),
        ("Thiès", 23, 12, 33.5),
        // Another region, not asked for.
        ("Matam", 23, 12, 45.0),
    ] {
        sink.upsert(&observation(region, day(d, h), t), None)
            .unwrap();
    }
    let forecast = |generated_at, values: &[(u32, u32, f64)]| {
        Envelope::new(Event::Forecast(Forecast {
            region: "Dakar".into(),
            model: "mstl_ets".into(),
            generated_at,
            level: 0.95,
            points: values
                .iter()
                .map(|(d, h, t)| ForecastPoint {
                    timestamp: day(*d, *h),
                    temperature_c: *t,
                    lower: t - 2.0,
                    upper: t + 2.0,
                })
                .collect(),
            backtest_mae: Default::default(),
        }))
    };
    // An older forecast covering both days, and a newer one for the 24th only: the 24th is
    // the newer one's.
    sink.upsert(
        &forecast(day(22, 12), &[(23, 6, 22.0), (23, 18, 28.0), (24, 6, 10.0)]),
        None,
    )
    .unwrap();
    sink.upsert(
        &forecast(day(23, 20), &[(24, 6, 24.0), (24, 18, 30.0)]),
        None,
    )
    .unwrap();
    sink.commit("test").unwrap();
    let (router, _) = routes(&index, day(25, 0));
    let (status, body) = get(
        &router,
        &format!(
            "/api/daily?regions={}&from={}&to={}",
            enc("Dakar,Thiès"),
            enc("2026-11-23T10:00:00Z"),
            enc("2026-11-24T00:00:00Z")
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["from"], "2026-11-23");
    assert_eq!(body["to"], "2026-11-24");
    let regions = body["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 2, "{body}");
    let dakar = &regions[0];
    assert_eq!(dakar["region"], "Dakar");
    let days = dakar["days"].as_array().unwrap();
    assert_eq!(days.len(), 2);
    assert_eq!(days[0]["date"], "2026-11-23");
    let observed = &days[0]["observed"];
    assert_eq!(observed["min"], 20.0);
    assert_eq!(observed["max"], 30.0);
    assert_eq!(observed["mean"], 25.0);
    assert_eq!(observed["count"], 3);
    assert_eq!(days[0]["forecast"]["mean"], 25.0);
    assert_eq!(days[0]["forecast"]["min"], 22.0);
    assert_eq!(days[1]["observed"]["count"], 1);
    assert_eq!(
        days[1]["forecast"]["min"], 24.0,
        "the newer forecast: {body}"
    );
    assert_eq!(days[1]["forecast"]["max"], 30.0);
    let thies = &regions[1]["days"].as_array().unwrap();
    assert_eq!(thies[0]["observed"]["max"], 33.5);
    assert_eq!(thies[0]["forecast"], Value::Null);
    assert_eq!(thies[1]["observed"], Value::Null);

    let (status, body) = get(&router, "/api/daily?from=now-400d").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["detail"]["parameter"], "from");
    assert!(
        body["error"].as_str().unwrap().contains("at most 366"),
        "{body}"
    );
}
