//! The OpenWeatherMap key reaches the API and nothing else: no log line (at any level), no
//! error, no event, no status response.

use crate::fake::{FakeApi, Reply};
use crate::fixtures;
use crate::*;
use parking_lot::Mutex;
use serde_json::json;
use tower::ServiceExt;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn status_json(collector: &windsock_collector::Collector) -> String {
    let response = collector
        .routes()
        .oneshot(
            axum::http::Request::get("/api/collector/status")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn the_api_key_appears_in_no_log_line_error_event_or_status() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Every way a fetch can go wrong, and a server that echoes the URL (key and all) back.
    let api = FakeApi::start(|req| {
        let echoed = format!(
            "no such thing: {}?appid={}",
            req.path,
            req.query.get("appid").cloned().unwrap_or_default()
        );
        match (req.path.as_str(), req.lat() as i64) {
            ("/data/3.0/onecall", 14) => Reply::status(
                401,
                fixtures::owm_error(json!(401), fixtures::ONE_CALL_NOT_SUBSCRIBED),
            ),
            ("/data/2.5/weather", 14) => {
                Reply::status(404, fixtures::owm_error(json!("404"), &echoed))
            }
            (_, 15) => Reply::Text {
                status: 500,
                body: echoed,
            },
            (_, 16) => Reply::Hang(Duration::from_secs(5)),
            (_, 12) => Reply::Text {
                status: 200,
                body: format!("{{\"oops\": \"{echoed}"),
            },
            ("/data/3.0/onecall/timemachine", _) => {
                Reply::status(401, fixtures::owm_error(json!(401), &echoed))
            }
            _ => Reply::Json {
                status: 429,
                body: fixtures::owm_error(json!(429), &echoed),
                retry_after: Some("0".into()),
            },
        }
    })
    .await;
    let mut config = config(SourceKind::Openweathermap, &api.base, 14);
    config.collector.retries = 1;
    config.collector.timeout = Duration::from_millis(200);
    config.collector.backfill = Duration::from_secs(1800);
    let bus = bus();
    let (collector, _) = collector(config.clone(), &bus, noon());
    let backfill = collector.backfill().await;
    let round = collector.round(tick(&collector, noon())).await;

    // And a server that is not there at all.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    config.collector.openweathermap.base_url = nowhere;
    let (unreachable, _) = crate::collector(config, &bus, noon());
    let refused = unreachable.round(tick(&unreachable, noon())).await;

    let mut everything = String::new();
    for report in [&round, &refused] {
        everything.push_str(&serde_json::to_string(report).unwrap());
    }
    everything.push_str(&serde_json::to_string(&backfill).unwrap());
    for topic in Topic::ALL {
        for envelope in published(&bus, topic).await {
            everything.push_str(&String::from_utf8(envelope.to_json()).unwrap());
        }
    }
    everything.push_str(&status_json(&collector).await);
    everything.push_str(&status_json(&unreachable).await);
    let log = String::from_utf8(captured.0.lock().clone()).unwrap();

    // The scenarios really happened, so the absence of the key means something.
    assert!(
        round.outcomes().get("failed").copied().unwrap_or(0) >= 5,
        "{round:?}"
    );
    assert!(
        refused
            .regions
            .iter()
            .all(|r| r.error.as_deref().unwrap().starts_with("request failed")),
        "{refused:?}"
    );
    assert!(
        everything.contains("no such thing"),
        "echoed messages were kept, minus the key"
    );
    assert!(
        log.contains("appid=[redacted]"),
        "requests are logged, redacted"
    );
    assert!(
        api.requests().iter().all(|r| r.query["appid"] == API_KEY),
        "the key did reach the API"
    );

    assert!(
        !everything.contains(API_KEY),
        "the key leaked into an error, event or status"
    );
    assert!(
        !log.contains(API_KEY),
        "the key leaked into the log:\n{log}"
    );
}
