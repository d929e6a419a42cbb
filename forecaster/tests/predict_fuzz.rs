//! Generated hostile input through the forecaster's router: `/predict` bodies (JSON of
//! every shape, CSV of every dialect) and the query strings of every route. Whatever comes in,
//! the answer is never a panic nor a 5xx, every error is JSON with an `error` string, and
//! every answer of a documented status has the documented shape.
//! Valid bodies are kept small, so the few that fit a model fit it in milliseconds.

mod common;

use axum::http::StatusCode;
use axum::Router;
use common::*;
use proptest::prelude::*;
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use windsock_core::bus::{EmbeddedBus, SharedBus};
use windsock_forecaster::Forecaster;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: Router,
    _dir: tempfile::TempDir,
    _forecaster: Forecaster,
}

/// One forecaster for every case of every test in this file.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let forecaster = runtime.block_on(async {
            let bus: SharedBus = Arc::new(EmbeddedBus::new(&config.bus));
            Forecaster::new(config, bus).await.unwrap()
        });
        Fixture {
            runtime,
            router: forecaster.routes(),
            _dir: dir,
            _forecaster: forecaster,
        }
    })
}

/// Sends one request and checks the contract; returns the status.
fn send(method: &str, uri: &str, content_type: Option<&str>, body: Vec<u8>) -> StatusCode {
    let fixture = fixture();
    let (status, body) =
        fixture
            .runtime
            .block_on(call(&fixture.router, method, uri, content_type, body));
    assert!(!status.is_server_error(), "{method} {uri}: {status} {body}");
    if !status.is_success() {
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{method} {uri}: {status} is not a JSON error: {body}"
        );
    }
    // Every answer the document promises has the documented shape (the router's own 404s
    // for paths that are no route, such as an empty region, are not the API's).
    let path = if uri.starts_with("/predict") {
        "/predict"
    } else if uri.contains("/backtest") {
        "/api/forecast/{region}/backtest"
    } else {
        "/api/forecast/{region}"
    };
    let method = method.to_lowercase();
    if is_documented(&method, path, status) {
        assert_documented(&method, path, status, &body);
    }
    status
}

fn predict(query: &str, content_type: &str, body: impl Into<Vec<u8>>) -> StatusCode {
    send(
        "POST",
        &format!("/predict{query}"),
        Some(content_type),
        body.into(),
    )
}

/// Numbers as they are written, JSON or not: the hostile ones are what matters.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|x| format!("{x:?}")),
        (-50.0..50.0f64).prop_map(|x| format!("{x:.2}")),
        any::<i64>().prop_map(|x| x.to_string()),
        Just("1e308".to_string()),
        Just("-1e308".to_string()),
        Just("1e999".to_string()),
        Just("NaN".to_string()),
        Just("Infinity".to_string()),
        Just("-0".to_string()),
        Just("123456789012345678901234567890".to_string()),
        Just("0.0000000000000000000000001".to_string()),
        Just("\"27.1\"".to_string()),
        Just("null".to_string()),
        Just("true".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
    ]
}

/// Date strings: the usual spellings at the edges of time, and garbage.
fn date_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..=9999i32, 1..=12u32, 1..=31u32, 0..=23u32)
            .prop_map(|(y, m, d, h)| format!("{y:04}-{m:02}-{d:02} {h:02}:00:00")),
        Just("9999-12-31 23:59:59".to_string()),
        Just("9999-12-31T23:59:59+00:00".to_string()),
        Just("0000-01-01 00:00:00".to_string()),
        Just("0000-01-01T00:00:00-23:59".to_string()),
        Just("2023-07-21T10:00:00+99:00".to_string()),
        Just("+275760-09-13".to_string()),
        Just("2023-02-30".to_string()),
        Just("2023-07-21 24:00:00".to_string()),
        Just("2023-07-21 10:00:60".to_string()),
        Just("".to_string()),
        ".{0,30}",
    ]
}

/// A row: `{"ds": .., "y": ..}`, sometimes with a field missing, extra or of the wrong type.
fn row_text() -> impl Strategy<Value = String> {
    (date_text(), number_text(), 0..8u8).prop_map(|(ds, y, shape)| {
        let ds = Value::String(ds).to_string();
        match shape {
            0 => format!(r#"{{"y":{y}}}"#),
            1 => format!(r#"{{"ds":{ds}}}"#),
            2 => format!(r#"{{"ds":{ds},"y":{y},"extra":[1,{{"a":null}}]}}"#),
            3 => format!(r#"{{"ds":{y},"y":{ds}}}"#),
            4 => format!("[{ds},{y}]"),
            _ => format!(r#"{{"ds":{ds},"y":{y}}}"#),
        }
    })
}

/// A regular series that may be valid: any start in years 0..9999, a step from a second to
/// a millennium, up to 80 rows. Near year 9999 its forecast runs past the end of time.
fn series_rows() -> impl Strategy<Value = Vec<(String, String)>> {
    let step = prop_oneof![
        Just(1i64),
        Just(60),
        Just(3600),
        Just(86_400),
        Just(7 * 86_400),
        Just(365 * 86_400),
        Just(1000 * 365 * 86_400),
        1..10_000_000i64,
    ];
    // Finite values, mostly temperatures, sometimes at the edges of f64.
    let y = prop_oneof![
        6 => (-50.0..50.0f64).prop_map(|x| format!("{x:.3}")),
        1 => prop_oneof![
            Just("1e308".to_string()),
            Just("-1.7976931348623157e308".to_string()),
            Just("1e-300".to_string()),
            Just("0".to_string()),
            any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| format!("{x:e}")),
        ],
    ];
    let start = prop_oneof![
        -62_167_219_200i64..=253_402_300_799, // 0000-01-01 .. 9999-12-31T23:59:59
        253_370_764_800i64..=253_402_300_799, // its last year
        -62_167_219_200i64..=-62_135_596_800, // its first year
        1_600_000_000i64..=1_700_000_000,
    ];
    (
        start,
        step,
        0..80usize,
        prop::collection::vec(y, 1..8),
        any::<bool>(),
    )
        .prop_map(|(start, step, n, ys, rfc3339)| {
            (0..n as i64)
                .map_while(|i| {
                    let at = chrono::DateTime::from_timestamp(start.checked_add(i * step)?, 0)?;
                    let ds = if rfc3339 {
                        at.to_rfc3339()
                    } else {
                        at.format("%Y-%m-%d %H:%M:%S").to_string()
                    };
                    Some((ds, ys[i as usize % ys.len()].clone()))
                })
                .collect()
        })
}

fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|x| x.to_string()),
        any::<u64>().prop_map(|x| x.to_string()),
        any::<f64>().prop_map(|x| x.to_string()),
        (0..200u32).prop_map(|x| x.to_string()),
        Just("1000000000000".to_string()),
        Just("18446744073709551616".to_string()),
        Just("0.95".to_string()),
        Just("NaN".to_string()),
        Just("-0".to_string()),
        Just("%FF%FE".to_string()),
        Just("".to_string()),
        "[a-z0-9%.+-]{0,12}",
    ]
}

/// A query string of known and unknown parameters, repeated or not.
fn query_text() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("horizon"),
        Just("level"),
        Just("days"),
        Just("periods"),
        Just("freq"),
        Just("x"),
    ];
    prop::collection::vec((name, query_value()), 0..4).prop_map(|params| {
        if params.is_empty() {
            return String::new();
        }
        let pairs: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("?{}", pairs.join("&"))
    })
}

fn content_type() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => Just("application/json"),
        1 => Just("application/json; charset=utf-8"),
        1 => Just("APPLICATION/JSON"),
        1 => Just("text/plain"),
        1 => Just(""),
        1 => Just(";;;"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn json_bodies_of_any_shape_get_an_answer(
        rows in prop::collection::vec(row_text(), 0..60),
        latitude in number_text(),
        longitude in number_text(),
        extra in any::<bool>(),
        query in query_text(),
        content_type in content_type(),
    ) {
        let extra = if extra { r#","periods":1e12,"freq":"1ns""# } else { "" };
        let body = format!(
            r#"{{"latitude":{latitude},"longitude":{longitude},"data":[{}]{extra}}}"#,
            rows.join(",")
        );
        predict(&query, content_type, body);
    }

    #[test]
    fn regular_series_anywhere_in_time_get_an_answer(
        rows in series_rows(),
        query in query_text(),
        csv in any::<bool>(),
    ) {
        let status = if csv {
            let mut body = String::from("ds,y\n");
            for (ds, y) in &rows {
                body.push_str(&format!("{ds},{y}\n"));
            }
            predict(&query, "text/csv", body)
        } else {
            let data: Vec<String> = rows
                .iter()
                .map(|(ds, y)| format!(r#"{{"ds":"{ds}","y":{y}}}"#))
                .collect();
            predict(&query, "application/json", format!(r#"{{"data":[{}]}}"#, data.join(",")))
        };
        // An answer that is not a refusal is a forecast of every step asked for.
        prop_assert!(status == StatusCode::OK || status == StatusCode::BAD_REQUEST, "{status}");
    }

    #[test]
    fn arbitrary_bytes_get_an_answer(
        body in prop::collection::vec(any::<u8>(), 0..512),
        content_type in prop_oneof![Just("application/json"), Just("text/csv")],
    ) {
        predict("", content_type, body);
    }

    #[test]
    fn csv_in_any_dialect_gets_an_answer(
        header in prop_oneof![
            Just("ds,y".to_string()),
            Just("\u{feff}ds,y".to_string()),
            Just("y;ds".to_string()),
            Just("\"ds\",\"y\",\"extra\"".to_string()),
            Just("DS,Y".to_string()),
            Just(String::new()),
            "[a-z,;\"]{0,12}",
        ],
        rows in prop::collection::vec(
            (date_text(), number_text(), prop_oneof![
                Just(","), Just(";"), Just("\t"), Just(",,"), Just("\","),
            ]),
            0..60,
        ),
        crlf in any::<bool>(),
        query in query_text(),
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut body = format!("{header}{eol}");
        for (ds, y, separator) in &rows {
            body.push_str(&format!("{ds}{separator}{y}{eol}"));
        }
        predict(&query, "text/csv", body);
    }

    #[test]
    fn query_strings_of_the_region_routes_get_an_answer(
        region in prop_oneof![
            Just("Dakar".to_string()),
            Just("Nowhere".to_string()),
            Just("%FF".to_string()),
            Just("%00".to_string()),
            "[A-Za-z%0-9]{1,12}",
        ],
        backtest in any::<bool>(),
        query in query_text(),
    ) {
        let path = if backtest { "/backtest" } else { "" };
        send("GET", &format!("/api/forecast/{region}{path}{query}"), None, Vec::new());
    }
}

// Regressions: the concrete inputs each of the properties above once failed on.

fn hourly_rows(start: &str, n: usize) -> String {
    let start = chrono::NaiveDateTime::parse_from_str(start, "%Y-%m-%d %H:%M:%S").unwrap();
    let data: Vec<String> = (0..n as i64)
        .map(|i| {
            let at = start + chrono::Duration::hours(i);
            format!(
                r#"{{"ds":"{}","y":{}}}"#,
                at.format("%Y-%m-%d %H:%M:%S"),
                20 + i % 7
            )
        })
        .collect();
    format!(r#"{{"data":[{}]}}"#, data.join(","))
}

#[test]
fn json_nested_ten_thousand_deep_is_a_400() {
    let body = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(
        predict("", "application/json", body),
        StatusCode::BAD_REQUEST
    );
    let body = format!(r#"{{"data":{}{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(
        predict("", "application/json", body),
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn huge_horizons_and_days_are_400s_before_any_work() {
    let body = hourly_rows("2023-07-01 00:00:00", 60);
    for query in [
        "?horizon=1000000000000",
        "?horizon=18446744073709551616",
        "?horizon=0",
        "?horizon=-1",
        "?level=1e308",
        "?level=NaN",
    ] {
        assert_eq!(
            predict(query, "application/json", body.clone()),
            StatusCode::BAD_REQUEST,
            "{query}"
        );
    }
    for query in ["?days=1000000000", "?days=0", "?horizon=1000000000000"] {
        let path = if query.starts_with("?days") {
            "/api/forecast/Dakar/backtest"
        } else {
            "/api/forecast/Dakar"
        };
        assert_eq!(
            send("GET", &format!("{path}{query}"), None, Vec::new()),
            StatusCode::BAD_REQUEST,
            "{path}{query}"
        );
    }
}

#[test]
fn a_forecast_that_would_run_past_year_9999_is_a_400() {
    // 60 hours ending at the last hour chrono can write: the next 24 cannot be dated.
    let body = hourly_rows("9999-12-29 12:00:00", 60);
    assert_eq!(
        predict("", "application/json", body),
        StatusCode::BAD_REQUEST
    );
    // Weekly rows from year 0: dated fine, forecast fine.
    let start = chrono::NaiveDate::from_ymd_opt(0, 1, 1).unwrap();
    let data: Vec<String> = (0..20)
        .map(|i| {
            format!(
                r#"{{"ds":"{}","y":{}}}"#,
                start + chrono::Duration::weeks(i),
                i % 3
            )
        })
        .collect();
    let body = format!(r#"{{"data":[{}]}}"#, data.join(","));
    assert_eq!(predict("", "application/json", body), StatusCode::OK);
}

#[test]
fn values_beyond_a_billion_are_400s_naming_the_row() {
    let body = hourly_rows("2023-07-01 00:00:00", 60).replace(r#""y":20}"#, r#""y":1e308}"#);
    let fixture = fixture();
    let (status, answer) = fixture.runtime.block_on(call(
        &fixture.router,
        "POST",
        "/predict",
        Some("application/json"),
        body,
    ));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = answer["error"].as_str().unwrap();
    assert!(error.starts_with("row 1: y is 1e308"), "{error}");
}

#[test]
fn too_many_csv_rows_are_refused_by_count_then_by_size() {
    let rows = |n: usize| {
        let mut csv = String::from("ds,y\n");
        for i in 0..n {
            csv.push_str(&format!("{i},1\n"));
        }
        csv
    };
    // Refused on the first row past the limit, before any date is compared.
    assert_eq!(
        predict(
            "",
            "text/csv",
            rows(windsock_forecaster::predict::MAX_ROWS + 1)
        ),
        StatusCode::BAD_REQUEST
    );
    // A body over the size limit never reaches the parser, and is a JSON 413 all the same.
    assert_eq!(
        predict("", "text/csv", rows(400_000)),
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[test]
fn a_region_that_is_not_utf8_is_a_json_400() {
    for uri in ["/api/forecast/%aA", "/api/forecast/%FF/backtest?days=1"] {
        assert_eq!(
            send("GET", uri, None, Vec::new()),
            StatusCode::BAD_REQUEST,
            "{uri}"
        );
    }
}
