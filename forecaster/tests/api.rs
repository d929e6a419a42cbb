//! The HTTP API: the `/predict` contract (JSON and CSV), every bad input, the routes served,
//! and the region endpoints on a running service.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;
use windsock_core::bus::{EmbeddedBus, SharedBus};
use windsock_core::CancellationToken;
use windsock_forecaster::Forecaster;

async fn forecaster(dir: &std::path::Path) -> (Forecaster, SharedBus) {
    let config = config(dir);
    let bus: SharedBus = Arc::new(EmbeddedBus::new(&config.bus));
    (Forecaster::new(config, bus.clone()).await.unwrap(), bus)
}

/// Rows of Sand Point as the replaced service's callers sent them.
fn rows(hours: usize) -> Vec<(String, f64)> {
    let Some(series) = sand_point() else {
        return Vec::new();
    };
    series[2000..2000 + hours]
        .iter()
        .map(|(at, y)| (at.format("%Y-%m-%d %H:%M:%S").to_string(), *y))
        .collect()
}

fn json_body(rows: &[(String, f64)]) -> String {
    let data: Vec<Value> = rows
        .iter()
        .map(|(ds, y)| json!({"ds": ds, "y": y}))
        .collect();
    json!({"latitude": 55.3, "longitude": -160.5, "data": data}).to_string()
}

/// The JSON body with row `index`'s y written as `raw` (which may not be JSON at all).
fn json_with_raw_y(rows: &[(String, f64)], index: usize, raw: &str) -> String {
    let data: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, (ds, y))| {
            let y = if i == index {
                raw.to_string()
            } else {
                y.to_string()
            };
            format!(r#"{{"ds":"{ds}","y":{y}}}"#)
        })
        .collect();
    format!(
        r#"{{"latitude":55.3,"longitude":-160.5,"data":[{}]}}"#,
        data.join(",")
    )
}

fn csv_body(rows: &[(String, f64)]) -> String {
    let mut csv = String::from("ds,y\n");
    for (ds, y) in rows {
        csv.push_str(&format!("{ds},{y}\n"));
    }
    csv
}

#[tokio::test]
async fn predict_answers_like_the_prophet_service_in_json_and_csv() {
    let rows = rows(28 * 24);
    if rows.is_empty() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (forecaster, _bus) = forecaster(dir.path()).await;
    let router = forecaster.routes();

    let (status, body) = call(
        &router,
        "POST",
        "/predict",
        Some("application/json"),
        json_body(&rows),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_documented("post", "/predict", status, &body);
    let predictions = body["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 24);
    let last = chrono::NaiveDateTime::parse_from_str(&rows.last().unwrap().0, "%Y-%m-%d %H:%M:%S")
        .unwrap();
    for (i, p) in predictions.iter().enumerate() {
        let expected = last + chrono::Duration::hours(i as i64 + 1);
        assert_eq!(
            p["timestamp"],
            expected.format("%Y-%m-%d %H:%M:%S").to_string(),
            "same format, one step apart"
        );
        let (t, lo, hi) = (
            p["temperature"].as_f64().unwrap(),
            p["lower"].as_f64().unwrap(),
            p["upper"].as_f64().unwrap(),
        );
        assert!(lo < t && t < hi, "{p}");
        assert!((-40.0..40.0).contains(&t), "a plausible temperature: {p}");
    }
    assert_eq!(body["frequency"], "1h");
    assert!([
        "mstl_ets",
        "seasonal_naive",
        "persistence",
        "regression",
        "combined"
    ]
    .contains(&body["model"].as_str().unwrap()));

    let (status, csv) = call(
        &router,
        "POST",
        "/predict",
        Some("text/csv; charset=utf-8"),
        csv_body(&rows),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    assert_eq!(
        csv["predictions"], body["predictions"],
        "the same data as CSV gives the same answer"
    );

    let (status, longer) = call(
        &router,
        "POST",
        "/predict?horizon=48&level=0.8",
        Some("application/json"),
        json_body(&rows),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let longer = longer["predictions"].as_array().unwrap();
    assert_eq!(longer.len(), 48);
    let width = |p: &Value| p["upper"].as_f64().unwrap() - p["lower"].as_f64().unwrap();
    assert!(
        width(&longer[0]) < width(&predictions[0]),
        "80% intervals are narrower than 95%"
    );
}

#[tokio::test]
async fn predict_works_at_the_datas_own_frequency() {
    let dir = tempfile::tempdir().unwrap();
    let (forecaster, _bus) = forecaster(dir.path()).await;
    let router = forecaster.routes();
    // Three days every 30 minutes, with time zones: answers step 30 minutes, in RFC 3339.
    let start = chrono::DateTime::parse_from_rfc3339("2023-07-21T00:00:00+00:00").unwrap();
    let data: Vec<Value> = (0..144)
        .map(|i| {
            let at = start + chrono::Duration::minutes(30 * i);
            let y = 25.0 + 4.0 * (i as f64 * std::f64::consts::TAU / 48.0).sin();
            json!({"ds": at.to_rfc3339(), "y": y})
        })
        .collect();
    let (status, body) = call(
        &router,
        "POST",
        "/predict?horizon=3",
        None,
        json!({"data": data}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["frequency"], "30m");
    let stamps: Vec<&str> = body["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["timestamp"].as_str().unwrap())
        .collect();
    assert_eq!(
        stamps,
        [
            "2023-07-24T00:00:00Z",
            "2023-07-24T00:30:00Z",
            "2023-07-24T01:00:00Z"
        ]
    );
}

#[tokio::test]
async fn an_interval_too_short_to_calibrate_is_unbounded_null_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let (forecaster, _bus) = forecaster(dir.path()).await;
    let router = forecaster.routes();
    // Eight weekly rows: enough to forecast, too few for any interval width.
    let start = chrono::NaiveDate::from_ymd_opt(2023, 1, 2).unwrap();
    let data: Vec<Value> = (0..8)
        .map(|i| json!({"ds": (start + chrono::Duration::weeks(i)).to_string(), "y": 20 + i % 3}))
        .collect();
    let (status, body) = call(
        &router,
        "POST",
        "/predict?horizon=2",
        None,
        json!({ "data": data }).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["frequency"], "7d");
    let first = &body["predictions"][0];
    assert!(first["temperature"].is_number(), "{body}");
    assert_eq!(
        (&first["lower"], &first["upper"]),
        (&Value::Null, &Value::Null),
        "{body}"
    );
    assert_documented("post", "/predict", status, &body);
}

#[tokio::test]
async fn every_bad_input_is_a_400_that_says_what_is_wrong() {
    let rows = rows(60);
    if rows.is_empty() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (forecaster, _bus) = forecaster(dir.path()).await;
    let router = forecaster.routes();
    let good = json_body(&rows);

    let mut swapped = rows.clone();
    swapped.swap(10, 11);
    let mut duplicated = rows.clone();
    duplicated[11].0 = duplicated[10].0.clone();
    let mut bad_date = rows.clone();
    bad_date[5].0 = "21/07/2023 10h".into();
    let nan_json = json_with_raw_y(&rows, 3, "NaN");
    let mut nan_rows = rows.clone();
    nan_rows[3].1 = f64::NAN;
    let nan_csv = csv_body(&nan_rows);

    let cases: Vec<(&str, &str, Option<&str>, String, &str)> = vec![
        (
            "too few points",
            "/predict",
            None,
            json_body(&rows[..30]),
            "too few points: got 30, at least 49",
        ),
        (
            "non-monotonic",
            "/predict",
            None,
            json_body(&swapped),
            "row 12: timestamps must increase",
        ),
        (
            "duplicate",
            "/predict",
            None,
            json_body(&duplicated),
            "row 12: duplicate timestamp",
        ),
        (
            "NaN in JSON",
            "/predict",
            None,
            nan_json,
            "NaN and Infinity are not JSON numbers",
        ),
        (
            "NaN in CSV",
            "/predict",
            Some("text/csv"),
            nan_csv,
            "row 4: y is NaN",
        ),
        (
            "unparseable date",
            "/predict",
            None,
            json_body(&bad_date),
            "row 6: ds `21/07/2023 10h` is not a date",
        ),
        (
            "horizon over the cap",
            "/predict?horizon=500",
            None,
            good.clone(),
            "horizon must be a whole number from 1 to 168, got `500`",
        ),
        (
            "horizon zero",
            "/predict?horizon=0",
            None,
            good.clone(),
            "horizon must be a whole number from 1 to 168",
        ),
        (
            "horizon not a number",
            "/predict?horizon=ten",
            None,
            good.clone(),
            "got `ten`",
        ),
        (
            "level over 1",
            "/predict?level=95",
            None,
            good.clone(),
            "level must be a number between 0 and 1",
        ),
        (
            "level not a number",
            "/predict?level=high",
            None,
            good.clone(),
            "got `high`",
        ),
        (
            "unknown parameter",
            "/predict?horizn=3",
            None,
            good.clone(),
            "invalid query parameter `horizn`: unknown field `horizn`, expected `horizon` or `level`",
        ),
        (
            "repeated parameter",
            "/predict?horizon=3&horizon=4",
            None,
            good.clone(),
            "invalid query parameter `horizon`: duplicate field `horizon`",
        ),
        (
            "not JSON",
            "/predict",
            None,
            "{\"data\": [".into(),
            "body is not valid JSON",
        ),
        (
            "no data",
            "/predict",
            None,
            "{\"latitude\": 1}".into(),
            "no `data` array",
        ),
        (
            "null y",
            "/predict",
            None,
            json_with_raw_y(&rows, 0, "null"),
            "row 1: y is null",
        ),
        (
            "string y",
            "/predict",
            None,
            json_with_raw_y(&rows, 0, "\"warm\""),
            "row 1: y must be a number",
        ),
        (
            "bad latitude",
            "/predict",
            None,
            good.replace("55.3", "123"),
            "latitude must be a number from -90 to 90",
        ),
        (
            "empty data",
            "/predict",
            None,
            "{\"data\": []}".into(),
            "data is empty",
        ),
        (
            "CSV without columns",
            "/predict",
            Some("text/csv"),
            "time,temp\n2023-07-21 10:00:00,1\n".into(),
            "columns ds and y",
        ),
        (
            "CSV y not a number",
            "/predict",
            Some("text/csv"),
            "ds,y\n2023-07-21 10:00:00,warm\n".into(),
            "row 1: y `warm` is not a number",
        ),
        (
            "unknown region",
            "/api/forecast/Atlantis",
            None,
            String::new(),
            "unknown region `Atlantis`",
        ),
        (
            "forecast horizon over the cap",
            "/api/forecast/Dakar?horizon=169",
            None,
            String::new(),
            "from 1 to 168",
        ),
        (
            "forecast bad level",
            "/api/forecast/Dakar?level=0",
            None,
            String::new(),
            "level must be a number between 0 and 1",
        ),
        (
            "backtest days over the cap",
            "/api/forecast/Dakar/backtest?days=99",
            None,
            String::new(),
            "days must be a whole number from 1 to 14",
        ),
        (
            "backtest without history",
            "/api/forecast/Dakar/backtest?days=2",
            None,
            String::new(),
            "Dakar has 0 hours of usable history; a 2-day backtest needs at least 97",
        ),
        (
            "backtest unknown region",
            "/api/forecast/Atlantis/backtest",
            None,
            String::new(),
            "unknown region",
        ),
    ];
    for (name, uri, content_type, body, expected) in cases {
        let method = if uri.starts_with("/predict") {
            "POST"
        } else {
            "GET"
        };
        let (status, answer) = call(&router, method, uri, content_type, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {answer}");
        let path = if uri.starts_with("/predict") {
            "/predict"
        } else if uri.contains("/backtest") {
            "/api/forecast/{region}/backtest"
        } else {
            "/api/forecast/{region}"
        };
        assert_documented(&method.to_lowercase(), path, status, &answer);
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no error field in {answer}"));
        assert!(
            error.contains(expected),
            "{name}: `{error}` does not say `{expected}`"
        );
    }

    let (status, answer) = call(
        &router,
        "POST",
        "/predict",
        Some("application/xml"),
        "<data/>",
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{answer}");
    assert_documented("post", "/predict", status, &answer);
    assert!(
        answer["error"].as_str().unwrap().contains(
            "unsupported content type `application/xml`: send application/json or text/csv"
        ),
        "{answer}"
    );
    assert_eq!(
        answer["detail"]["expected"],
        json!(["application/json", "text/csv"])
    );

    // Over the body limit (2 MiB by default; the router's own here, harden's in the binary).
    let (status, answer) = call(
        &router,
        "POST",
        "/predict",
        Some("text/csv"),
        "x".repeat(3 << 20),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(
        answer["error"],
        "the request body is over the limit of 2097152 bytes"
    );
    assert_eq!(answer["detail"]["limit_bytes"], 2097152);
    assert_documented("post", "/predict", status, &answer);

    let (status, answer) = get(&router, "/api/forecast/Dakar").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a known region without history: {answer}"
    );
    assert_documented("get", "/api/forecast/{region}", status, &answer);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("no forecast for Dakar yet: it has 0 hours"),
        "{answer}"
    );
}

#[tokio::test]
async fn every_route_answers_json_and_the_merged_document_is_not_served_here() {
    let dir = tempfile::tempdir().unwrap();
    let (forecaster, _bus) = forecaster(dir.path()).await;
    let router = forecaster.routes();
    for (method, path) in windsock_forecaster::api::ROUTES {
        let uri = path.replace("{region}", "Dakar");
        let (status, body) = call(&router, &method.to_uppercase(), &uri, None, "{}").await;
        // The router's own 404/405 have no body; every handler answers JSON.
        assert!(
            status != StatusCode::METHOD_NOT_ALLOWED && body.is_object(),
            "{method} {path}: {status} {body}"
        );
    }
    // The binary serves one generated document for every service: a second route here would
    // make the merged router panic at start.
    let (status, _) = get(&router, "/api/openapi.json").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_running_forecaster_serves_forecasts_and_backtests_of_its_regions() {
    let Some(series) = sand_point() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (forecaster, bus) = forecaster(dir.path()).await;
    let router = forecaster.routes();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(forecaster.run(shutdown.clone()));
    // 32 days arrive live, after the service started.
    publish_observations(&bus, "Dakar", &series[4000..4000 + 32 * 24]).await;

    let forecast = wait_for_ok(&router, "/api/forecast/Dakar?horizon=36&level=0.9").await;
    assert_documented("get", "/api/forecast/{region}", StatusCode::OK, &forecast);
    assert_eq!(forecast["region"], "Dakar");
    assert_eq!(forecast["level"], 0.9);
    let points = forecast["points"].as_array().unwrap();
    assert_eq!(points.len(), 36);
    let next_hour = series[4000 + 32 * 24].0;
    assert_eq!(
        points[0]["timestamp"],
        json!(next_hour),
        "the forecast starts after the last observed hour"
    );
    for p in points {
        assert!(
            p["lower"].as_f64() < p["temperature_c"].as_f64()
                && p["temperature_c"].as_f64() < p["upper"].as_f64(),
            "{p}"
        );
    }
    let mae = forecast["backtest_mae"].as_object().unwrap();
    assert_eq!(
        mae.len(),
        5,
        "every model and their combination is scored: {mae:?}"
    );
    let model = forecast["model"].as_str().unwrap();
    assert!(mae.contains_key(model));
    assert_eq!(forecast["calibration"]["method"], "conformal");
    let by_hour: Vec<f64> = forecast["calibration"]["width_by_utc_hour"]
        .as_array()
        .expect("widths by hour")
        .iter()
        .map(|w| w.as_f64().unwrap())
        .collect();
    assert_eq!(by_hour.len(), 24);
    assert!(
        by_hour.iter().all(|w| (0.5..=2.0).contains(w)),
        "{by_hour:?}"
    );
    assert!(
        by_hour.iter().any(|w| (w - 1.0).abs() > 0.01),
        "real weather changes more at some hours than at others: {by_hour:?}"
    );
    assert_eq!(forecast["history_hours"], 32 * 24);

    let (status, backtest) = get(&router, "/api/forecast/Dakar/backtest?days=2").await;
    assert_eq!(status, StatusCode::OK, "{backtest}");
    assert_documented("get", "/api/forecast/{region}/backtest", status, &backtest);
    assert_eq!(
        backtest["origins"], 5,
        "every 6 hours over 2 days, each with 24 h of actuals"
    );
    for model in ["mstl_ets", "seasonal_naive", "persistence", "regression"] {
        let scores = &backtest["models"][model];
        assert_eq!(scores["points"], 5 * 24, "{model}");
        assert!(
            scores["mae"].as_f64().unwrap() > 0.0
                && scores["rmse"].as_f64() >= scores["mae"].as_f64()
        );
        assert!((0.0..=1.0).contains(&scores["coverage"].as_f64().unwrap()));
    }
    assert_eq!(
        backtest["models"]["seasonal_naive"]["mae_vs_seasonal_naive"],
        1.0
    );

    shutdown.cancel();
    running.await.unwrap().unwrap();
}
