//! Hostile input to the search API: the inputs that once crashed the process or answered
//! with a 500 or plain text (a regression corpus), queries at the limits on a runtime
//! thread's stack, and generated queries, times and numbers (proptest), all through the HTTP
//! routes. Whatever comes in, the answer is a 2xx or a 4xx with a JSON `error`: never a
//! panic, never a 5xx.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Duration;
use common::*;
use proptest::prelude::*;
use serde_json::Value;
use std::sync::{Arc, LazyLock, Mutex};
use tower::ServiceExt;
use windsock_indexer::query::limits::{MAX_DEPTH, MAX_OPENINGS};
use windsock_indexer::search::{SearchRequest, Sort};
use windsock_indexer::{synthetic, EventIndex};

/// A small index, built once for the whole file: every case searches it.
static INDEX: LazyLock<EventIndex> = LazyLock::new(|| {
    let events = synthetic::events(300, start(), Duration::days(2), 11);
    let index = EventIndex::in_ram().unwrap();
    let mut sink = index.writer(50).unwrap();
    for envelope in &events {
        sink.upsert(envelope, None).unwrap();
    }
    sink.commit("test").unwrap();
    index
});

fn router() -> axum::Router {
    routes(&INDEX, start() + Duration::days(1)).0
}

/// The request's answer, checked for the one promise every answer keeps: a success, or a
/// client error whose JSON body says what is wrong.
async fn answer(router: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let (status, body) = get(router, uri).await;
    assert!(
        status.is_success() || status.is_client_error(),
        "{uri}: {status} {body}"
    );
    if !status.is_success() {
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{uri}: {status}, not our JSON error: {body}"
        );
    }
    (status, body)
}

/// As [`answer`], expecting a 400; its body.
async fn refused(router: &axum::Router, uri: &str) -> Value {
    let (status, body) = answer(router, uri).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
    body
}

fn search_uri(q: &str) -> String {
    format!("/api/search?q={}&from=now-7d", enc(q))
}

// The regression corpus: each of these aborted the process or answered a 500 or plain text.

#[tokio::test]
async fn nested_parentheses_are_refused_before_any_parser_recurses() {
    let router = router();
    let q = format!("{}a{}", "(".repeat(2200), ")".repeat(2200));
    let body = refused(&router, &search_uri(&q)).await;
    assert_eq!(
        body["error"], "query nests 2200 levels deep; the limit is 32",
        "{body}"
    );
    assert_eq!(body["detail"]["parameter"], "q");
    assert_eq!(body["detail"]["limit"], MAX_DEPTH);
    assert_eq!(body["detail"]["depth"], 2200);

    // Unclosed, they recurse just the same.
    let body = refused(&router, &search_uri(&"(".repeat(3000))).await;
    assert_eq!(body["detail"]["reason"], "too_deep", "{body}");
}

#[tokio::test]
async fn plus_parenthesis_repeated_is_refused() {
    let body = refused(&router(), &search_uri(&"+(".repeat(5000))).await;
    assert_eq!(body["detail"]["reason"], "too_deep", "{body}");
    assert_eq!(body["detail"]["depth"], 5000);
}

#[tokio::test]
async fn not_repeated_is_refused() {
    let body = refused(&router(), &search_uri(&format!("{}a", "NOT ".repeat(1000)))).await;
    assert_eq!(body["detail"]["reason"], "too_deep", "{body}");
}

#[tokio::test]
async fn an_offset_past_the_result_window_is_a_400_that_says_how_to_page() {
    let router = router();
    for offset in [
        "300000000000",
        "9223372036854775807",
        "18446744073709551615",
    ] {
        let body = refused(&router, &format!("/api/search?q=*&offset={offset}")).await;
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("result window of 10000"), "{body}");
        assert!(error.contains("`to`"), "says how to page further: {body}");
        assert_eq!(body["detail"]["parameter"], "offset");
        assert_eq!(body["detail"]["max_result_window"], 10_000);
    }
    // Past u64: too large, not "not a number".
    let body = refused(&router, "/api/search?q=*&offset=99999999999999999999999").await;
    assert!(
        body["error"].as_str().unwrap().contains("too large"),
        "{body}"
    );

    // The window counts offset and limit together; oldest-first pages by `from`.
    let body = refused(&router, "/api/search?offset=9990&limit=20&sort=oldest").await;
    assert_eq!(body["detail"]["limit"], 20);
    assert!(body["error"].as_str().unwrap().contains("`from`"), "{body}");
    let (status, _) = answer(&router, "/api/search?offset=9980&limit=20").await;
    assert_eq!(status, StatusCode::OK);
}

/// Every event at or before `to`, walked page by page as the window's message says.
#[tokio::test]
async fn keyset_paging_by_time_reaches_past_the_window() {
    let router = router();
    let mut seen = std::collections::BTreeSet::new();
    let mut to = (start() + Duration::days(3)).to_rfc3339();
    loop {
        let uri = format!("/api/search?q=*&from=now-30d&to={}&limit=70", enc(&to));
        let (status, body) = answer(&router, &uri).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let hits = body["hits"].as_array().unwrap();
        let fresh = hits
            .iter()
            .filter(|h| seen.insert(h["id"].as_str().unwrap().to_string()))
            .count();
        if fresh == 0 {
            break;
        }
        to = hits.last().unwrap()["timestamp"]
            .as_str()
            .unwrap()
            .to_string();
    }
    assert_eq!(seen.len(), 300);
}

#[tokio::test]
async fn exists_on_a_field_without_a_column_is_a_400_that_says_why() {
    let router = router();
    // The handler logs on this thread: `tokio::test` runs on one.
    let (levels, _guard) = capture_levels();
    for (q, field) in [
        ("id:*", "id"),
        ("message:*", "message"),
        ("kind:log AND id:*", "id"),
        ("fields.status:*", "fields.status"),
        ("fields.message:*", "message"),
        ("event:*", "event"),
    ] {
        let body = refused(&router, &search_uri(q)).await;
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("`{field}:*` is not supported")),
            "{q}: {body}"
        );
        assert_eq!(body["detail"]["reason"], "exists_not_supported", "{q}");
    }
    // A client's mistake pages nobody.
    assert!(
        !levels.lock().unwrap().contains(&tracing::Level::ERROR),
        "logged at ERROR: {:?}",
        levels.lock().unwrap()
    );
    // Fields with a column answer it.
    for q in [
        "kind:*",
        "temperature_c:*",
        "fields.region:*",
        "fields.observed_at:*",
    ] {
        let (status, body) = answer(&router, &search_uri(q)).await;
        assert_eq!(status, StatusCode::OK, "{q}: {body}");
        assert!(body["total"].as_u64().unwrap() > 0, "{q}: {body}");
    }
}

/// tantivy's dates are nanoseconds in an i64 (1677 to 2262): times beyond overflowed its
/// conversions (a panic, a 500; a wrapped, wrong range in a release build).
#[tokio::test]
async fn times_beyond_tantivys_dates_saturate() {
    let router = router();
    for (from, to, q) in [
        ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z", "*"),
        ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "*"),
        (
            "now-7d",
            "now",
            "fields.fetched_at:[9999-01-01T00:00:00Z TO *]",
        ),
        ("now-7d", "now", "timestamp:[* TO 0001-01-01T00:00:00Z]"),
    ] {
        let uri = format!("/api/search?q={}&from={}&to={}", enc(q), enc(from), enc(to));
        let (status, body) = answer(&router, &uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        let everything = from.starts_with("0001");
        let expected = if everything { 300 } else { 0 };
        assert_eq!(body["total"], expected, "{uri}: {body}");
    }
    // tantivy's parser refuses a time it cannot hold: a 400 that says which times it holds.
    let uri = search_uri("fields.observed_at:\"9999-12-31T23:59:59Z\"");
    let body = refused(&router, &uri).await;
    assert!(
        body["detail"]["hint"]
            .as_str()
            .unwrap()
            .contains("2262-04-11"),
        "{body}"
    );
}

#[tokio::test]
async fn a_repeated_parameter_is_our_json_400_naming_it() {
    let router = router();
    let body = refused(&router, "/api/search?q=a&q=b").await;
    assert_eq!(body["detail"]["parameter"], "q", "{body}");
    assert!(body["error"].as_str().unwrap().contains("`q`"));
    let body = refused(&router, "/api/events/x/context?before=1&before=2").await;
    assert_eq!(body["detail"]["parameter"], "before", "{body}");
}

#[tokio::test]
async fn every_route_answers_our_json_whatever_the_request() {
    let router = router();
    let id = INDEX_ID.clone();
    for uri in [
        "/api/events/%FF".to_string(),
        "/api/events/%FF/context".to_string(),
        format!("/api/events/{id}/context?before=101"),
        format!("/api/events/{id}/context?after=99999999999999999999999"),
        format!("/api/events/{id}/context?after=-1"),
        "/api/search?limit=99999999999999999999999".to_string(),
        "/api/search?limit=%FF".to_string(),
        "/api/search?q=%FF%FE(".to_string(),
        "/api/search?from=now%C3".to_string(),
        "/api/search?from=now-99999999999d".to_string(),
    ] {
        let (status, body) = answer(&router, &uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
    }
    let (status, body) = answer(
        &router,
        &format!("/api/events/{id}/context?before=100&after=100"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A method the routes do not serve: JSON too, once hardened as every served router is
    // (axum's 405 carries the path's `Allow`; `http::harden` writes the JSON from it).
    let hardened = windsock_core::http::harden(
        router.clone(),
        &windsock_core::config::Config::default().http,
    );
    for uri in ["/api/search", "/api/regions", "/api/events/x"] {
        let response = hardened
            .clone()
            .oneshot(
                Request::post(uri)
                    .header("host", "127.0.0.1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{uri}");
        let allow: Vec<_> = response.headers().get_all("allow").iter().collect();
        assert_eq!(allow, ["GET,HEAD"], "{uri}");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body["error"],
            format!("POST is not allowed on {uri}"),
            "{body}"
        );
        assert_eq!(body["detail"]["allowed"][0], "GET", "{body}");
    }
}

/// An id in the index, for the routes that take one.
static INDEX_ID: LazyLock<String> = LazyLock::new(|| {
    let request = SearchRequest {
        q: "*".into(),
        from: start() - Duration::days(1),
        to: start() + Duration::days(3),
        limit: 1,
        offset: 0,
        sort: Sort::Newest,
        aggregate: false,
    };
    INDEX.search(&request).unwrap().hits[0].id.clone()
});

#[tokio::test]
async fn an_internal_error_says_internal_error_and_nothing_more() {
    use axum::response::IntoResponse;
    let response = windsock_indexer::api::index_error(tantivy::TantivyError::SystemError(
        "Schema error: /var/lib/windsock/index/meta.json".into(),
    ))
    .into_response();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body, serde_json::json!({"error": "internal error"}));
}

#[tokio::test]
async fn a_query_longer_than_the_limit_is_a_400_that_names_it() {
    let router = router();
    let q = "a ".repeat(3000);
    let body = refused(&router, &search_uri(&q)).await;
    assert_eq!(
        body["error"],
        "query is 6000 bytes long; the limit is 4096 (indexer.max_query_length)"
    );
    assert_eq!(body["detail"]["limit"], 4096);
    assert_eq!(body["detail"]["parameter"], "q");
}

// At the limits, on the stack a search runs on.

/// Runs `work` on a thread with the stack of tokio's worker and blocking threads (2 MiB),
/// where searches run: an overflow aborts the test binary, so passing is the assertion.
fn on_runtime_stack<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    on_stack(2 * 1024 * 1024, work)
}

fn on_stack<T: Send + 'static>(bytes: usize, work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(bytes)
        .spawn(work)
        .unwrap()
        .join()
        .unwrap()
}

/// Queries as long as `indexer.max_query_length` allows, each a shape that could recurse.
fn queries_at_the_length_limit() -> Vec<String> {
    let max = 4096;
    let fill = |unit: &str, tail: &str| {
        let mut q = unit.repeat((max - tail.len()) / unit.len());
        q.push_str(tail);
        q
    };
    let deepest = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    vec![
        fill("+", "a"),
        fill("-", "a"),
        fill("!", "a"),
        fill("~", "a"),
        fill("^", "a"),
        fill(":", "a"),
        fill("a AND ", "a"),
        fill("a OR ", "a"),
        fill("-a ", "a"),
        fill("a^2", ""),
        fill("\"", ""),
        fill("\\", "a"),
        fill("a:", "b"),
        fill("kind:(", ""),
        fill(&format!("{deepest} "), ""),
        fill("NOT a ", ""),
        fill("NOT (a) AND ", "a"),
        fill(&format!("{}a{} OR ", "NOT ".repeat(MAX_DEPTH - 1), ""), "a"),
        format!(
            "{}{}a",
            "NOT ".repeat(MAX_DEPTH),
            "+".repeat(max - 4 * MAX_DEPTH - 1)
        ),
        // Openings hidden in quotes where the depth scan does not count them.
        fill("\"((((((((((\" ", ""),
        fill("a:[\"( TO (] ", ""),
        fill("[( TO ", ""),
        fill("IN [", ""),
        fill("/(/ ", ""),
    ]
}

#[test]
fn queries_at_the_limits_do_not_overflow_a_runtime_stack() {
    let index = INDEX.clone();
    on_runtime_stack(move || {
        for q in queries_at_the_length_limit() {
            assert!(q.len() <= 4096, "{}", q.len());
            let request = SearchRequest {
                q: q.clone(),
                from: start() - Duration::days(1),
                to: start() + Duration::days(3),
                limit: 10,
                offset: 0,
                sort: Sort::Relevance,
                aggregate: true,
            };
            // Refused or answered, either is fine; an overflow is not.
            if let Err(e) = index.search(&request) {
                assert!(
                    matches!(e, windsock_indexer::search::SearchError::Query(_)),
                    "{q:.60}…: an index error for a query: {e}"
                );
            }
        }
    });
}

/// The bound that holds whatever the depth scan makes of quotes: tantivy's parsers (strict,
/// and the lenient one that locates errors) at `MAX_OPENINGS` levels of each kind, on half
/// the stack of a runtime thread. (In this build they overflow 2 MiB at about 700 levels.)
#[test]
fn the_grammar_survives_as_many_openings_as_a_query_may_hold() {
    on_stack(1024 * 1024, || {
        let n = MAX_OPENINGS;
        for q in [
            format!("{}a{}", "(".repeat(n), ")".repeat(n)),
            "(".repeat(n),
            "+(".repeat(n / 2),
            format!("{}a", "NOT ".repeat(n)),
            format!("{}a", "a:(".repeat(n)),
            format!("{}a", "NOT (".repeat(n / 2)),
        ] {
            let _ = tantivy::query_grammar::parse_query(&q);
            let _ = tantivy::query_grammar::parse_query_lenient(&q);
        }
    });
}

// Generated input.

/// Pieces of the query language, and of what it is not.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9]{1,8}",
        Just("kind:".to_string()),
        Just("region:".to_string()),
        Just("id:".to_string()),
        Just("message:".to_string()),
        Just("event:".to_string()),
        Just("level:".to_string()),
        Just("nope:".to_string()),
        Just("timestamp:".to_string()),
        Just("temperature_c:".to_string()),
        Just("fields.status:".to_string()),
        Just("fields.condition:".to_string()),
        Just("fields.observed_at:".to_string()),
        Just("fields.region:".to_string()),
        Just("fields.a.b.c:".to_string()),
        prop::sample::select(vec![
            "\"",
            "'",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            "TO",
            "*",
            "+",
            "-",
            "!",
            "^",
            "~",
            ":",
            "AND",
            "OR",
            "NOT",
            "IN",
            "\\",
            "/",
            ">",
            ">=",
            "<",
            "<=",
            "?",
            "&&",
            "||",
            "é",
            "日本",
            "🌬",
            "\u{0}",
            "\u{301}",
            "2026-11-25T00:00:00Z",
            "-1.5",
            "1e308",
            "NaN",
            "inf",
            "9223372036854775808",
            "-9223372036854775809",
            "now-1h",
            "^2",
            "~3",
            "*a",
            "a*",
            "/.*/",
            "/[/",
            "\"a b\"~2",
        ])
        .prop_map(str::to_string),
        (1usize..600).prop_map(|n| "x".repeat(n)),
    ]
}

/// A field and what may follow its colon, so that generated queries reach the query
/// builders and not only the grammar's errors.
fn clause() -> impl Strategy<Value = String> {
    let field = prop::sample::select(vec![
        "id",
        "message",
        "event",
        "kind",
        "region",
        "level",
        "service",
        "source",
        "timestamp",
        "temperature_c",
        "humidity_pct",
        "fields",
        "fields.status",
        "fields.condition",
        "fields.observed_at",
        "fields.at",
        "fields.region",
        "fields.temperature_c",
        "fields.a.b",
        "nope",
        "",
    ]);
    let value = prop_oneof![
        2 => "[a-zA-Z0-9.-]{0,12}",
        // `field:*` on a field without a column once answered a 500.
        2 => Just("*".to_string()),
        3 => prop::sample::select(vec![
            "*",
            "a*",
            "\"a b\"",
            "\"a b\"*",
            "\"a b\"~3",
            "'a'",
            "[1 TO 2]",
            "{1 TO 2]",
            "[* TO *]",
            "[a TO *}",
            ">1",
            ">=2026-11-25T00:00:00Z",
            "<-1.5",
            "<=1e308",
            "[2026-11-25T00:00:00Z TO 9999-12-31T23:59:59Z]",
            "[1 TO 2026-11-25T00:00:00Z]",
            "IN [a b c]",
            "IN [1 2.5]",
            "IN []",
            "/a.*/",
            "/(a{1000}){1000}/",
            "/[/",
            "(a b)",
            "(a OR NOT b)",
            "NaN",
            "-0",
            "18446744073709551616",
            "\"2026-11-25T12:00:03Z\"",
        ])
        .prop_map(str::to_string),
    ];
    (field, value).prop_map(|(field, value)| format!("{field}:{value}"))
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (
            prop::collection::vec(token(), 0..40),
            prop::sample::select(vec!["", " ", "  "]),
        )
            .prop_map(|(tokens, sep)| tokens.join(sep)),
        3 => (
            prop::collection::vec(
                (
                    prop::sample::select(vec!["", "+", "-", "NOT ", "(", ")"]),
                    clause(),
                ),
                1..6,
            ),
            prop::sample::select(vec![" ", " AND ", " OR "]),
        )
            .prop_map(|(clauses, sep)| {
                clauses
                    .into_iter()
                    .map(|(op, clause)| format!("{op}{clause}"))
                    .collect::<Vec<_>>()
                    .join(sep)
            }),
        1 => any::<String>(),
        1 => "[ -~]{0,300}",
    ]
}

fn time() -> impl Strategy<Value = String> {
    prop_oneof![
        "now[+-]?[0-9]{0,22}[smhdwyé]{0,2}",
        "[+-]?[0-9]{1,7}-[0-9]{1,2}-[0-9]{1,2}T[0-9]{1,2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})",
        any::<String>(),
        Just("now-99999999999d".to_string()),
        Just("+262143-12-31T23:59:59Z".to_string()),
        Just("-262143-01-01T00:00:00Z".to_string()),
        Just("9999-12-31T23:59:59Z".to_string()),
        Just("0000-01-01T00:00:00Z".to_string()),
        // tantivy's dates end here (nanoseconds in an i64).
        Just("1677-09-21T00:12:43Z".to_string()),
        Just("2262-04-11T23:47:16Z".to_string()),
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{0,25}",
        "-[0-9]{1,20}",
        " ?[0-9]{1,6} ?",
        any::<String>(),
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..20_000).prop_map(|n| n.to_string()),
    ]
}

fn sort() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "newest",
            "oldest",
            "relevance",
            "desc",
            "asc",
            "score"
        ])
        .prop_map(str::to_string),
        any::<String>(),
    ]
}

/// A tokio runtime for the generated cases (proptest's closures are synchronous); its
/// blocking threads, where searches run, have tokio's default 2 MiB stack.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// 256 cases a property (about a second for the file); `PROPTEST_CASES` asks for more when
/// hunting.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn generated_queries_never_crash_nor_answer_5xx(
        q in query(),
        sort in prop::sample::select(vec!["newest", "oldest", "relevance"]),
    ) {
        let router = router();
        // Relevance scores the query (BM25 weights), which sorting by time does not.
        let uri = format!("{}&sort={sort}", search_uri(&q));
        runtime().block_on(async { answer(&router, &uri).await });
    }

    #[test]
    fn generated_times_never_crash_nor_answer_5xx(from in time(), to in time()) {
        let router = router();
        let uri = format!("/api/search?q=*&from={}&to={}&limit=1", enc(&from), enc(&to));
        runtime().block_on(async { answer(&router, &uri).await });
    }

    #[test]
    fn generated_numbers_and_sorts_never_crash_nor_answer_5xx(
        limit in number(),
        offset in number(),
        sort in sort(),
        before in number(),
        after in number(),
    ) {
        let router = router();
        runtime().block_on(async {
            let uri = format!(
                "/api/search?q=*&limit={}&offset={}&sort={}",
                enc(&limit), enc(&offset), enc(&sort)
            );
            answer(&router, &uri).await;
            let uri = format!(
                "/api/events/{}/context?before={}&after={}",
                enc(&INDEX_ID), enc(&before), enc(&after)
            );
            answer(&router, &uri).await;
        });
    }

    /// Any id in the path: found or not, never a crash.
    #[test]
    fn generated_event_ids_never_crash_nor_answer_5xx(
        // An empty one is no route of these (the server's own 404 answers it).
        id in any::<String>().prop_filter("a path segment", |id| !id.is_empty()),
    ) {
        let router = router();
        runtime().block_on(async {
            answer(&router, &format!("/api/events/{}", enc(&id))).await;
            answer(&router, &format!("/api/events/{}/context", enc(&id))).await;
        });
    }

    /// The time parser alone, on any text: an answer or an error, never a panic.
    #[test]
    fn the_time_parser_never_panics(text in time()) {
        let _ = windsock_indexer::timespec::parse_time(&text, start());
    }
}

/// The levels of the events logged on this thread while the guard lives.
fn capture_levels() -> (
    Arc<Mutex<Vec<tracing::Level>>>,
    tracing::subscriber::DefaultGuard,
) {
    let levels = Arc::new(Mutex::new(Vec::new()));
    let guard = tracing::subscriber::set_default(Levels(levels.clone()));
    (levels, guard)
}

struct Levels(Arc<Mutex<Vec<tracing::Level>>>);

impl tracing::Subscriber for Levels {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        self.0.lock().unwrap().push(*event.metadata().level());
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
