//! `windsock ui` alone, in front of the services of another process: it serves the pages and
//! reverse-proxies every API to the configured URLs, so the browser talks to one origin; a
//! service that goes away is a JSON 502 naming it, never a broken page.

use serde_json::Value;
use std::time::{Duration, Instant};
use windsock_testkit::{http_get, WindsockProcess};

const BIN: &str = env!("CARGO_BIN_EXE_windsock");

fn get(url: &str) -> (u16, String) {
    http_get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// The status line and headers of a GET (the body left unread), lower-cased.
fn head(url: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (address, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut lines = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        lines.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break head.to_ascii_lowercase();
        }
        head.push_str(&line);
    }
}

fn json(url: &str) -> (u16, Value) {
    let (status, body) = get(url);
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"));
    (status, value)
}

#[test]
fn windsock_ui_proxies_every_api_to_its_service_and_survives_one_going_away() {
    let dir = tempfile::tempdir().unwrap();
    let mut services = WindsockProcess::new(BIN, &["up"], &dir.path().join("services"))
        .env("WINDSOCK_COLLECTOR__SCHEDULE", "*/1 * * * * *")
        .env("WINDSOCK_COLLECTOR__BACKFILL", "0s");
    services.start().unwrap();
    let upstream = services.base_url();
    let mut ui = WindsockProcess::new(BIN, &["ui"], &dir.path().join("ui"))
        .env("WINDSOCK_INDEXER__URL", &upstream)
        .env("WINDSOCK_FORECASTER__URL", &upstream)
        .env("WINDSOCK_ALERTER__URL", &upstream)
        .env("WINDSOCK_UI__COLLECTOR_URL", &upstream);
    ui.start().unwrap();
    let front = ui.base_url();

    let (status, page) = get(&format!("{front}/regions/Dakar"));
    assert_eq!(status, 200);
    assert!(page.contains("<script type=\"module\""), "{page}");

    // Wait for the first round to be indexed, as seen through the proxy.
    let deadline = Instant::now() + Duration::from_secs(20);
    let hits = loop {
        let (status, answer) = json(&format!(
            "{front}/api/search?q=kind:observation&from=now-5m&limit=5"
        ));
        assert_eq!(status, 200, "{answer}");
        let total = answer["total"].as_u64().unwrap_or(0);
        if total > 0 || Instant::now() > deadline {
            break total;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        hits > 0,
        "no observation reached the search API through the proxy:\n{}",
        services.logs()
    );

    // Each service's answer comes through as it gave it, errors included.
    for path in [
        "/api/regions",
        "/api/collector/status",
        "/api/alerts?state=all",
        "/api/rules",
    ] {
        let (status, through_ui) = json(&format!("{front}{path}"));
        let (direct_status, _) = json(&format!("{upstream}{path}"));
        assert_eq!((status, direct_status), (200, 200), "{path}: {through_ui}");
    }
    // The indexer's analysis routes come through too, the export streamed (chunked, not
    // read whole first) with the headers that name the file and say how much matched.
    let (status, aggregate) = json(&format!(
        "{front}/api/aggregate?q=kind:observation&from=now-5m&metric=avg(temperature_c)"
    ));
    assert_eq!(status, 200, "{aggregate}");
    assert_eq!(aggregate["metric"], "avg(temperature_c)", "{aggregate}");
    let export = format!("{front}/api/export?q=kind:observation&from=now-5m&format=ndjson");
    let export_head = head(&export);
    assert!(export_head.starts_with("http/1.1 200"), "{export_head}");
    for header in [
        "content-type: application/x-ndjson",
        "content-disposition: attachment; filename=",
        "x-windsock-export-total: ",
        "x-windsock-export-truncated: false",
        "transfer-encoding: chunked",
    ] {
        assert!(export_head.contains(header), "{header}: {export_head}");
    }
    let (status, lines) = get(&export);
    assert_eq!(status, 200, "{lines}");
    let events: Vec<Value> = lines
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(!events.is_empty(), "the export through the UI is empty");
    assert!(
        events.iter().all(|event| event["kind"] == "observation"),
        "{lines}"
    );
    let (status, saved) = json(&format!("{front}/api/saved-searches"));
    assert_eq!(status, 200, "{saved}");

    let (status, error) = json(&format!("{front}/api/search?q=temperature_c:%5B30%20TO"));
    assert_eq!(status, 400);
    let (_, direct) = json(&format!("{upstream}/api/search?q=temperature_c:%5B30%20TO"));
    assert_eq!(
        error["error"], direct["error"],
        "the indexer's own message reaches the browser"
    );

    // The health summary reads every service's counters.
    let (status, health) = json(&format!("{front}/_ui/health"));
    assert_eq!(status, 200);
    let scrapes = health["scrapes"].as_array().unwrap();
    for service in ["indexer", "forecaster", "alerter", "collector"] {
        assert!(
            scrapes
                .iter()
                .any(|s| s["source"] == service && s["ok"] == true),
            "{service} was not read: {health}"
        );
    }
    assert!(
        health["services"]["collector"]["sent"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0,
        "{health}"
    );

    // The services go away: APIs say which one is unavailable, pages still load.
    assert!(
        services.stop(Duration::from_secs(20)),
        "{}",
        services.logs()
    );
    let (status, error) = json(&format!("{front}/api/regions"));
    assert_eq!(status, 502, "{error}");
    assert_eq!(error["detail"]["service"], "indexer");
    let (status, health) = json(&format!("{front}/_ui/health"));
    assert_eq!(status, 200);
    assert!(
        health["scrapes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["source"] == "indexer" && s["ok"] == false),
        "{health}"
    );
    assert_eq!(get(&format!("{front}/")).0, 200);
    assert!(ui.stop(Duration::from_secs(20)), "{}", ui.logs());
}
