//! How a round copes with a misbehaving API: 429, 500, timeouts, malformed JSON, and one
//! region failing while the others succeed.

use crate::fake::{FakeApi, Reply};
use crate::fixtures;
use crate::*;
use serde_json::json;
use windsock_collector::Outcome;
use windsock_core::event::Level;

const DT: i64 = 1_795_953_600;

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    let api = FakeApi::start(|req| {
        if req.nth == 0 {
            Reply::Json {
                status: 429,
                body: fixtures::owm_error(json!(429), "Your account is temporary blocked due to exceeding of requests limitation of your subscription type."),
                retry_after: Some("1".into()),
            }
        } else {
            Reply::ok(fixtures::one_call(req.lat(), req.lon(), DT))
        }
    })
    .await;
    let (report, bus) = round_at_noon(config(SourceKind::Openweathermap, &api.base, 1)).await;
    let region = &report.regions[0];
    assert_eq!(region.outcome, Outcome::Ok, "{region:?}");
    assert_eq!(region.attempts, 2);
    let requests = api.requests_to("/data/3.0/onecall");
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(990),
        "the retry came {waited:?} after the 429, before its Retry-After of 1s (the backoff alone is 5-20ms)"
    );
    assert_eq!(observations(&bus).await.len(), 1);
}

#[tokio::test]
async fn a_429_with_an_http_date_is_retried_no_earlier_than_that_date() {
    // HTTP dates have whole seconds: two seconds ahead is a wait of more than one.
    let retry_at = std::time::SystemTime::now() + Duration::from_secs(2);
    let api = FakeApi::start(move |req| {
        if req.nth == 0 {
            Reply::Json {
                status: 429,
                body: fixtures::owm_error(json!(429), "Too many requests"),
                retry_after: Some(httpdate::fmt_http_date(retry_at)),
            }
        } else {
            Reply::ok(fixtures::one_call(req.lat(), req.lon(), DT))
        }
    })
    .await;
    let (report, _) = round_at_noon(config(SourceKind::Openweathermap, &api.base, 1)).await;
    assert_eq!(report.regions[0].outcome, Outcome::Ok, "{report:?}");
    let requests = api.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(990),
        "retried after {waited:?}"
    );
}

#[tokio::test]
async fn a_429_asking_for_too_long_a_wait_gives_the_region_up_for_this_round() {
    let api = FakeApi::start(|_| Reply::Json {
        status: 429,
        body: fixtures::owm_error(json!(429), "slow down"),
        retry_after: Some("3600".into()),
    })
    .await;
    let (report, _) = round_at_noon(config(SourceKind::Openweathermap, &api.base, 1)).await;
    let region = &report.regions[0];
    assert_eq!(region.outcome, Outcome::Failed);
    assert_eq!(region.attempts, 1);
    assert_eq!(region.http_status, Some(429));
    assert!(
        region
            .error
            .as_deref()
            .unwrap()
            .contains("retry after 3600s"),
        "{region:?}"
    );
}

#[tokio::test]
async fn a_500_is_retried_then_given_up_and_logged_as_an_event() {
    let api = FakeApi::start(|_| Reply::Text {
        status: 500,
        body: "upstream exploded".into(),
    })
    .await;
    let bus = bus();
    let (collector, _) = collector(
        config(SourceKind::Openweathermap, &api.base, 1),
        &bus,
        noon(),
    );
    let report = collector.round(tick(&collector, noon())).await;
    let region = &report.regions[0];
    assert_eq!(region.outcome, Outcome::Failed);
    assert_eq!(region.attempts, 3, "the first attempt and 2 retries");
    assert_eq!(api.requests().len(), 3);
    assert!(observations(&bus).await.is_empty());

    let logs = logs(&bus).await;
    assert_eq!(logs.len(), 1, "{logs:?}");
    let log = &logs[0];
    assert_eq!(log.service, "collector");
    assert_eq!(log.level, Level::Warn);
    assert_eq!(log.region.as_deref(), Some("Dakar"));
    assert_eq!(log.fields["source"], "openweathermap");
    assert_eq!(log.fields["status"], "failed");
    assert_eq!(log.fields["attempts"], 3);
    assert_eq!(log.fields["http_status"], 500);
    assert_eq!(log.fields["error"], "HTTP 500: upstream exploded");
    assert!(log.fields["latency_ms"].is_u64());
}

#[tokio::test]
async fn a_timeout_fails_the_fetch_with_a_clear_error() {
    let api = FakeApi::start(|_| Reply::Hang(Duration::from_secs(5))).await;
    let bus = bus();
    let mut config = config(SourceKind::Openweathermap, &api.base, 1);
    config.collector.retries = 1;
    config.collector.timeout = Duration::from_millis(200);
    let (collector, _) = collector(config, &bus, noon());
    let report = collector.round(tick(&collector, noon())).await;
    let region = &report.regions[0];
    assert_eq!(region.outcome, Outcome::Failed);
    assert_eq!(region.attempts, 2, "timeouts are retried");
    assert_eq!(region.error.as_deref(), Some("timed out after 200ms"));
}

#[tokio::test]
async fn malformed_json_is_a_clear_error_and_not_retried() {
    let api = FakeApi::start(|_| Reply::Text {
        status: 200,
        body: "{\"current\": {\"dt\": 17".into(),
    })
    .await;
    let (report, _) = round_at_noon(config(SourceKind::Openweathermap, &api.base, 1)).await;
    let region = &report.regions[0];
    assert_eq!(region.outcome, Outcome::Failed);
    assert_eq!(region.attempts, 1);
    let error = region.error.as_deref().unwrap();
    assert!(
        error.starts_with("malformed response: EOF while parsing"),
        "{error}"
    );
}

#[tokio::test]
async fn one_failing_region_never_blocks_or_drops_the_others() {
    let config = config(SourceKind::Openweathermap, "http://placeholder", 5);
    let regions = config.regions.clone();
    let (broken, hanging) = (regions[1].lat, regions[3].lat);
    let api = FakeApi::start(move |req| {
        if req.lat() == broken {
            Reply::Text {
                status: 503,
                body: "".into(),
            }
        } else if req.lat() == hanging {
            Reply::Hang(Duration::from_secs(5))
        } else {
            Reply::ok(fixtures::one_call(req.lat(), req.lon(), DT))
        }
    })
    .await;
    let mut config = config;
    config.collector.openweathermap.base_url = api.base.clone();
    config.collector.concurrency = 2;
    config.collector.retries = 1;
    config.collector.timeout = Duration::from_millis(300);
    let bus = bus();
    let (collector, _) = collector(config, &bus, noon());
    let report = collector.round(tick(&collector, noon())).await;

    assert_eq!(report.outcomes().get("ok"), Some(&3), "{report:?}");
    assert_eq!(report.outcomes().get("failed"), Some(&2));
    assert_eq!(
        report.region(&regions[1].name).unwrap().error.as_deref(),
        Some("HTTP 503: (empty body)")
    );
    assert_eq!(
        report.region(&regions[3].name).unwrap().error.as_deref(),
        Some("timed out after 300ms")
    );
    let mut published: Vec<String> = observations(&bus)
        .await
        .into_iter()
        .map(|o| o.region)
        .collect();
    published.sort();
    let mut expected: Vec<String> = [0, 2, 4].iter().map(|i| regions[*i].name.clone()).collect();
    expected.sort();
    assert_eq!(published, expected);
    let logs = logs(&bus).await;
    assert_eq!(logs.len(), 5, "one outcome event per region");
    assert_eq!(
        logs.iter().filter(|l| l.fields["status"] == "ok").count(),
        3
    );
}
