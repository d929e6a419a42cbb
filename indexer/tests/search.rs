//! Searches over generated events, checked against brute-force answers over the same events.

mod common;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use windsock_core::event::{Envelope, Event, Level, LogEvent};
use windsock_indexer::describe::Description;
use windsock_indexer::search::{bucket_width_ms, SearchRequest, Sort};
use windsock_indexer::EventIndex;

type Predicate = fn(&Envelope, &Description) -> bool;

/// Queries and what they mean, written out by hand.
fn cases() -> Vec<(&'static str, Predicate)> {
    vec![
        ("*", |_, _| true),
        ("kind:observation", |_, d| d.kind == "observation"),
        ("region:Dakar", |_, d| d.region.as_deref() == Some("Dakar")),
        ("region:Saint-Louis", |_, d| {
            d.region.as_deref() == Some("Saint-Louis")
        }),
        ("level:error OR level:warn", |_, d| {
            matches!(d.level, "error" | "warn")
        }),
        (
            "temperature_c:[30 TO *]",
            |e, _| matches!(&e.event, Event::Observation(o) if o.temperature_c >= 30.0),
        ),
        ("\"fetch failed\"", |_, d| {
            d.message.contains("fetch failed")
        }),
        (
            "fields.status:500",
            |e, _| matches!(&e.event, Event::Log(l) if l.fields.get("status") == Some(&500.into())),
        ),
        (
            "fields.condition:Rain",
            |e, _| matches!(&e.event, Event::Observation(o) if o.condition.as_deref() == Some("Rain")),
        ),
        // An attribute with a field of its own is found under `fields.` too.
        ("fields.region:Dakar", |_, d| {
            d.region.as_deref() == Some("Dakar")
        }),
        (
            "fields.temperature_c:[30 TO *] AND NOT fields.kind:log",
            |e, _| matches!(&e.event, Event::Observation(o) if o.temperature_c >= 30.0),
        ),
        // Metrics are fast fields only: an exact value is a one-value range.
        (
            "temperature_c:27.5",
            |e, _| matches!(&e.event, Event::Observation(o) if o.temperature_c == 27.5),
        ),
        (
            "temperature_c: IN [27.5 30]",
            |e, _| matches!(&e.event, Event::Observation(o) if [27.5, 30.0].contains(&o.temperature_c)),
        ),
        ("fields.humidity_pct:60 OR temperature_c:30", |e, _| {
            matches!(&e.event, Event::Observation(o)
                if o.humidity_pct == Some(60.0) || o.temperature_c == 30.0)
        }),
        ("kind:log AND NOT level:info", |_, d| {
            d.kind == "log" && d.level != "info"
        }),
        ("kind:alert region:Matam", |_, d| {
            d.kind == "alert" && d.region.as_deref() == Some("Matam")
        }),
        // Ranges of attributes without a field of its own: over the terms of `fields`.
        ("fields.status:[500 TO 502]", |e, _| {
            log_number(e, "status").is_some_and(|s| (500.0..=502.0).contains(&s))
        }),
        ("fields.attempt:>=2 OR fields.status:<500", |e, _| {
            log_number(e, "attempt").is_some_and(|a| a >= 2.0)
                || log_number(e, "status").is_some_and(|s| s < 500.0)
        }),
        (
            "kind:log AND fields.status:{429 TO *] AND NOT level:error",
            |e, d| log_number(e, "status").is_some_and(|s| s > 429.0) && d.level != "error",
        ),
        (
            "fields.lat:[14.5 TO 15}",
            |e, _| matches!(&e.event, Event::Observation(o) if (14.5..15.0).contains(&o.lat)),
        ),
        (
            "fields.value:>40.5",
            |e, _| matches!(&e.event, Event::Alert(a) if a.value.is_some_and(|v| v > 40.5)),
        ),
        (
            "fields.fetched_at:[2026-11-23T05:00:00Z TO 2026-11-23T11:00:00Z}",
            |e, _| {
                let (from, to) = (start() + Duration::hours(5), start() + Duration::hours(11));
                matches!(&e.event, Event::Observation(o) if from <= o.fetched_at && o.fetched_at < to)
            },
        ),
    ]
}

/// A number among a log's own fields.
fn log_number(e: &Envelope, name: &str) -> Option<f64> {
    match &e.event {
        Event::Log(l) => l.fields.get(name).and_then(Value::as_f64),
        _ => None,
    }
}

fn in_range(e: &Envelope, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    let t = e.event.timestamp();
    from <= t && t <= to
}

#[test]
fn totals_histograms_and_facets_match_a_brute_force_count() {
    let (index, events) = indexed_events();
    let described = describe_all(&events);
    let windows = [
        (start(), start() + Duration::days(2)),
        (
            start() + Duration::hours(5),
            start() + Duration::hours(11) + Duration::minutes(17),
        ),
    ];
    for (q, predicate) in cases() {
        for (from, to) in windows {
            let matching: Vec<&(&Envelope, Description)> = described
                .iter()
                .filter(|(e, d)| predicate(e, d) && in_range(e, from, to))
                .collect();
            let request = SearchRequest {
                q: q.into(),
                from,
                to,
                limit: 10,
                offset: 0,
                sort: Sort::Newest,
                aggregate: true,
            };
            let results = index
                .search(&request)
                .unwrap_or_else(|e| panic!("{q}: {e}"));
            assert!(
                !matching.is_empty() || q.contains("Matam"),
                "{q} should match something in the data"
            );
            assert_eq!(
                results.total,
                matching.len(),
                "total of {q} in {from}..{to}"
            );

            // Histogram: every bucket of the grid that starts at `from`, counted by hand.
            let width = results.histogram.interval_ms;
            assert_eq!(width, bucket_width_ms((to - from).num_milliseconds()));
            let buckets = ((to - from).num_milliseconds() / width + 1) as usize;
            let mut expected = vec![0u64; buckets];
            for (e, _) in &matching {
                let k = (e.event.timestamp().timestamp_millis() - from.timestamp_millis()) / width;
                expected[k as usize] += 1;
            }
            let got: Vec<u64> = results.histogram.buckets.iter().map(|b| b.count).collect();
            assert_eq!(got, expected, "histogram of {q}");
            for (k, bucket) in results.histogram.buckets.iter().enumerate() {
                assert_eq!(
                    bucket.start,
                    from + Duration::milliseconds(width * k as i64)
                );
            }

            // Facets: every value's count over all hits, not just the page.
            let mut expected: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
            for (_, d) in &matching {
                let values = [
                    ("kind", Some(d.kind.to_string())),
                    ("region", d.region.clone()),
                    ("level", Some(d.level.to_string())),
                    ("service", Some(d.service.clone())),
                ];
                for (facet, value) in values {
                    if let Some(value) = value {
                        *expected.entry(facet).or_default().entry(value).or_default() += 1;
                    }
                }
            }
            for facet in ["kind", "region", "level", "service"] {
                let got: BTreeMap<String, u64> = results.facets[facet]
                    .iter()
                    .map(|v| (v.value.clone(), v.count))
                    .collect();
                assert_eq!(
                    got,
                    expected.remove(facet).unwrap_or_default(),
                    "facet {facet} of {q}"
                );
                let counts: Vec<u64> = results.facets[facet].iter().map(|v| v.count).collect();
                assert!(
                    counts.windows(2).all(|w| w[0] >= w[1]),
                    "facet {facet} is most frequent first"
                );
            }

            // Hits: the newest matching events, newest first.
            let mut newest: Vec<&Envelope> = matching.iter().map(|(e, _)| *e).collect();
            newest.sort_by_key(|e| std::cmp::Reverse(e.event.timestamp()));
            let got: Vec<&str> = results.hits.iter().map(|h| h.id.as_str()).collect();
            let want: Vec<&str> = newest.iter().take(10).map(|e| e.id.as_str()).collect();
            assert_eq!(got, want, "hits of {q}");
        }
    }
}

#[test]
fn an_exact_timestamp_finds_the_events_of_that_instant() {
    let (index, events) = indexed_events();
    let at = events[10].event.timestamp();
    let q = format!(
        "timestamp:\"{}\"",
        at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    );
    let results = index.search(&over_two_days(&q)).unwrap();
    let want = events.iter().filter(|e| e.event.timestamp() == at).count();
    assert_eq!((results.total, want), (1, 1), "{q}");
    assert_eq!(results.hits[0].id, events[10].id);
}

/// `q` over the two days of [`indexed_events`], newest first, up to 100 hits, no aggregations.
fn over_two_days(q: &str) -> SearchRequest {
    SearchRequest {
        q: q.into(),
        from: start(),
        to: start() + Duration::days(2),
        limit: 100,
        offset: 0,
        sort: Sort::Newest,
        aggregate: false,
    }
}

#[test]
fn a_time_attribute_is_matched_to_the_second_as_a_date() {
    let (index, events) = indexed_events();
    let observation = events
        .iter()
        .find_map(|e| match &e.event {
            Event::Observation(o) => Some(o),
            _ => None,
        })
        .expect("the synthetic events hold observations");
    let second = observation.fetched_at.timestamp();
    let search = |q: &str| index.search(&over_two_days(q)).unwrap().total;
    // Written as published (sub-second, UTC), or in another offset: the same second.
    let q = format!(
        "fields.fetched_at:\"{}\"",
        observation
            .fetched_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    let want = events
        .iter()
        .filter(|e| match &e.event {
            Event::Observation(o) => o.fetched_at.timestamp() == second,
            _ => false,
        })
        .count();
    assert!(want >= 1);
    assert_eq!(search(&q), want, "{q}");
    let elsewhere = observation
        .fetched_at
        .with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap())
        .to_rfc3339();
    assert_eq!(
        search(&format!("fields.fetched_at:\"{elsewhere}\"")),
        want,
        "{elsewhere}"
    );
    // A time is one term, not digits to match one by one.
    assert_eq!(search("fields.fetched_at:2026"), 0);
}

#[test]
fn an_attribute_range_takes_integers_fractions_and_numbers_beyond_i64_alike() {
    // tantivy indexes each under its own type (i64, f64, u64): a range must walk all three.
    let values = [
        "-3",
        "0",
        "2",
        "2.5",
        "499",
        "499.5",
        "500",
        "10000000000000000000",
    ];
    let index = EventIndex::in_ram().unwrap();
    let mut sink = index.writer(50).unwrap();
    for (i, n) in values.iter().enumerate() {
        let log = LogEvent {
            timestamp: start() + Duration::minutes(i as i64),
            service: "indexer".into(),
            level: Level::Info,
            message: "measured".into(),
            region: None,
            target: None,
            fields: serde_json::from_str(&format!("{{\"n\": {n}}}")).unwrap(),
        };
        sink.upsert(&Envelope::new(Event::Log(log)), None).unwrap();
    }
    sink.commit("test").unwrap();
    let found = |q: &str| -> Vec<String> {
        let mut request = over_two_days(q);
        request.sort = Sort::Oldest;
        let results = index
            .search(&request)
            .unwrap_or_else(|e| panic!("{q}: {e}"));
        results
            .hits
            .iter()
            .map(|h| h.event["fields"]["n"].to_string())
            .collect()
    };
    assert_eq!(found("fields.n:[2 TO 499.5]"), ["2", "2.5", "499", "499.5"]);
    assert_eq!(found("fields.n:{2 TO 499.5}"), ["2.5", "499"]);
    assert_eq!(found("fields.n:[2.1 TO 499.9]"), ["2.5", "499", "499.5"]);
    assert_eq!(
        found("fields.n:[2.0 TO 500.0}"),
        ["2", "2.5", "499", "499.5"]
    );
    assert_eq!(found("fields.n:>=500"), ["500", "10000000000000000000"]);
    assert_eq!(found("fields.n:[1e19 TO *]"), ["10000000000000000000"]);
    assert_eq!(found("fields.n:<0"), ["-3"]);
    assert_eq!(found("fields.n:[* TO *]").len(), values.len());
    assert!(found("fields.n:[600 TO 700]").is_empty());
    assert!(
        found("fields.other:[0 TO *]").is_empty(),
        "another path's terms"
    );
}

#[test]
fn an_events_own_time_attribute_is_searched_as_its_timestamp() {
    let (index, events) = indexed_events();
    let search = |q: &str| index.search(&over_two_days(q));
    let total = |q: &str| search(q).unwrap_or_else(|e| panic!("{q}: {e:?}")).total;
    let count = |keep: &dyn Fn(&Event) -> bool| events.iter().filter(|e| keep(&e.event)).count();
    let millis = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let observed = events
        .iter()
        .find_map(|e| match &e.event {
            Event::Observation(o) => Some(o.observed_at),
            _ => None,
        })
        .unwrap();
    let logged = events
        .iter()
        .find_map(|e| match &e.event {
            Event::Log(l) => Some(l.timestamp),
            _ => None,
        })
        .unwrap();
    let second = |at: DateTime<Utc>| at.timestamp();

    // A time matches its second, written as published (sub-second) or not.
    let q = format!("fields.observed_at:\"{}\"", millis(observed));
    let want =
        count(&|e| matches!(e, Event::Observation(o) if second(o.observed_at) == second(observed)));
    assert!(want >= 1);
    assert_eq!(total(&q), want, "{q}");
    let q = format!("fields.timestamp:\"{}\"", millis(logged));
    let want = count(&|e| matches!(e, Event::Log(l) if second(l.timestamp) == second(logged)));
    assert!(want >= 1);
    assert_eq!(total(&q), want, "{q}");

    // A range, which other attributes do not have.
    let (from, to) = (start() + Duration::hours(3), start() + Duration::hours(5));
    let q = format!(
        "fields.observed_at:[{} TO {}}}",
        from.to_rfc3339(),
        to.to_rfc3339()
    );
    let want = count(
        &|e| matches!(e, Event::Observation(o) if o.observed_at >= from && o.observed_at < to),
    );
    assert!(want >= 10);
    assert_eq!(total(&q), want, "{q}");

    // Only events of the kinds whose timestamp it is: `at` is the time of alerts and of dead
    // letters alike, and of nothing else.
    let want = count(&|e| matches!(e, Event::Alert(_) | Event::DeadLetter(_)));
    assert!(want >= 1);
    assert_eq!(total("fields.at:*"), want);

    // Not a time: a 400 that says so, not an empty answer.
    let err = format!("{:?}", search("fields.observed_at:2026").unwrap_err());
    assert!(err.contains("not_a_date"), "{err}");
}

#[test]
fn hits_carry_the_event_as_published_and_pages_follow_each_other() {
    let (index, events) = indexed_events();
    let from = start();
    let to = start() + Duration::days(2);
    let page = |offset, sort| {
        index
            .search(&SearchRequest {
                q: "region:Kolda".into(),
                from,
                to,
                limit: 25,
                offset,
                sort,
                aggregate: true,
            })
            .unwrap()
    };
    let first = page(0, Sort::Oldest);
    let second = page(25, Sort::Oldest);
    let mut kolda: Vec<&Envelope> = events
        .iter()
        .filter(|e| e.event.region() == Some("Kolda"))
        .collect();
    kolda.sort_by_key(|e| e.event.timestamp());
    let got: Vec<&str> = first
        .hits
        .iter()
        .chain(&second.hits)
        .map(|h| h.id.as_str())
        .collect();
    let want: Vec<&str> = kolda.iter().take(50).map(|e| e.id.as_str()).collect();
    assert_eq!(got, want);
    for hit in &first.hits {
        let original = events.iter().find(|e| e.id == hit.id).unwrap();
        let stored: Envelope = serde_json::from_value(hit.event.clone()).unwrap();
        assert_eq!(&stored, original, "the stored event is the published one");
        assert_eq!(hit.timestamp, original.event.timestamp());
    }
    let relevance = page(0, Sort::Relevance);
    assert_eq!(relevance.total, kolda.len());
    assert_eq!(relevance.hits.len(), 25);
}

#[tokio::test]
async fn relative_ranges_follow_the_clock() {
    let (index, events) = indexed_events();
    let now = start() + Duration::hours(30);
    let (router, clock) = routes(&index, now);
    for (from, span) in [
        ("now-15m", Duration::minutes(15)),
        ("now-24h", Duration::hours(24)),
        ("now-7d", Duration::days(7)),
    ] {
        let (status, body) = get(&router, &format!("/api/search?q=*&from={from}&limit=0")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let expected = events
            .iter()
            .filter(|e| in_range(e, now - span, now))
            .count();
        assert_eq!(body["total"], expected, "{from}");
        assert_eq!(body["from"], serde_json::to_value(now - span).unwrap());
        let buckets = body["histogram"]["buckets"].as_array().unwrap().len();
        assert!((50..=101).contains(&buckets), "{from}: {buckets} buckets");
    }
    // Moving the clock moves the window.
    clock.advance(Duration::hours(1));
    let (_, body) = get(&router, "/api/search?from=now-1h&to=now&limit=0").await;
    let expected = events
        .iter()
        .filter(|e| in_range(e, now, now + Duration::hours(1)))
        .count();
    assert_eq!(body["total"], expected);
    // Absolute times work the same.
    let (_, body) = get(
        &router,
        &format!(
            "/api/search?from={}&to={}&limit=0",
            enc(&now.to_rfc3339()),
            enc(&(now + Duration::hours(1)).to_rfc3339())
        ),
    )
    .await;
    assert_eq!(body["total"], expected);
}

#[tokio::test]
async fn every_malformed_request_is_a_400_that_says_what_and_where() {
    let (index, _) = indexed_events();
    let (router, _) = routes(&index, start() + Duration::days(1));
    let bad = |uri: &'static str| {
        let router = router.clone();
        async move {
            let (status, body) = get(&router, uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{uri}: {body}"
            );
            body
        }
    };
    let body = bad("/api/search?q=region%3A%28Dakar").await;
    assert_eq!(body["detail"]["reason"], "syntax");
    assert_eq!(body["detail"]["query"], "region:(Dakar");
    assert!(body["detail"]["errors"][0]["position"].is_u64(), "{body}");

    let body = bad("/api/search?q=regoin%3ADakar").await;
    assert_eq!(body["detail"]["reason"], "unknown_field");
    assert_eq!(body["detail"]["field"], "regoin");
    assert!(body["detail"]["hint"]
        .as_str()
        .unwrap()
        .contains("fields.<attribute>"));

    let body = bad("/api/search?q=temperature_c%3Ahot").await;
    assert_eq!(body["detail"]["reason"], "not_a_number");

    let body = bad("/api/search?q=-level%3Ainfo").await;
    assert_eq!(body["detail"]["reason"], "only_exclusions");

    let body = bad("/api/search?q=timestamp%3A%5Byesterday%20TO%20*%5D").await;
    assert_eq!(body["detail"]["reason"], "not_a_date");

    // A range on an attribute takes numbers or times, not words, nor one of each.
    for uri in [
        "/api/search?q=kind%3Alog%20AND%20fields.condition%3A%5Bclear%20TO%20rain%5D",
        "/api/search?q=fields.condition%3A%5B500%20TO%202026-11-25T00%3A00%3A00Z%5D",
    ] {
        let body = bad(uri).await;
        assert_eq!(body["detail"]["reason"], "range_on_attribute", "{body}");
        assert_eq!(body["detail"]["field"], "fields.condition");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("numbers or RFC 3339 times"),
            "{body}"
        );
    }
    // Exclusions alone, with an attribute range among them, match nothing: said so.
    let body = bad("/api/search?q=-fields.status%3A%5B500%20TO%20*%5D").await;
    assert_eq!(body["detail"]["reason"], "only_exclusions");

    let body = bad("/api/search?from=yesterday").await;
    assert_eq!(body["detail"]["parameter"], "from");
    assert_eq!(body["detail"]["value"], "yesterday");

    let body = bad("/api/search?to=now-3x").await;
    assert_eq!(body["detail"]["parameter"], "to");
    assert!(body["detail"]["reason"]
        .as_str()
        .unwrap()
        .contains("unknown unit"));

    let body = bad("/api/search?from=now&to=now-1h").await;
    assert_eq!(body["detail"]["parameter"], "from");

    let body = bad("/api/search?limit=ten").await;
    assert_eq!(body["detail"]["parameter"], "limit");
    let body = bad("/api/search?offset=-1").await;
    assert_eq!(body["detail"]["parameter"], "offset");
    let body = bad("/api/search?sort=sideways").await;
    assert_eq!(body["detail"]["parameter"], "sort");
    let body = bad("/api/events/x/context?before=many").await;
    assert_eq!(body["detail"]["parameter"], "before");

    let (status, body) = get(&router, "/api/events/no-such-id").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("no-such-id"));
}

#[tokio::test]
async fn a_limit_above_the_cap_is_clamped_and_said_so() {
    let (index, _) = indexed_events();
    let (router, _) = routes(&index, start() + Duration::days(2));
    let (status, body) = get(&router, "/api/search?from=now-7d&limit=5000").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["limit"], 1000);
    assert_eq!(
        body["limit_clamped"],
        serde_json::json!({"requested": 5000, "max": 1000})
    );
    assert_eq!(body["hits"].as_array().unwrap().len(), 1000);
    assert_eq!(body["total"], 4000);
    let (_, body) = get(&router, "/api/search?from=now-7d&limit=3").await;
    assert!(body.get("limit_clamped").is_none());
    assert_eq!(body["hits"].as_array().unwrap().len(), 3);
    for field in ["id", "timestamp", "kind", "level", "message", "event"] {
        assert!(
            !body["hits"][0][field].is_null(),
            "hits carry {field}: {}",
            body["hits"][0]
        );
    }
    assert!(body["took_ms"].as_f64().unwrap() >= 0.0);
}

#[tokio::test]
async fn context_gives_the_neighbours_in_time() {
    let (index, events) = indexed_events();
    let (router, _) = routes(&index, start());
    let mut ordered: Vec<&Envelope> = events.iter().collect();
    ordered.sort_by_key(|e| (e.event.timestamp(), e.id.clone()));
    for position in [0, 1, 2000, ordered.len() - 2, ordered.len() - 1] {
        let anchor = ordered[position];
        let (status, body) = get(
            &router,
            &format!("/api/events/{}/context?before=3&after=4", anchor.id),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["event"]["id"], anchor.id);
        let ids = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|h| h["id"].as_str().unwrap().to_string())
                .collect()
        };
        let want_before: Vec<String> = ordered[position.saturating_sub(3)..position]
            .iter()
            .map(|e| e.id.clone())
            .collect();
        let want_after: Vec<String> = ordered[position + 1..(position + 5).min(ordered.len())]
            .iter()
            .map(|e| e.id.clone())
            .collect();
        assert_eq!(ids(&body["before"]), want_before, "before #{position}");
        assert_eq!(ids(&body["after"]), want_after, "after #{position}");
    }
    let (status, body) = get(&router, &format!("/api/events/{}", ordered[10].id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_value::<Envelope>(body["event"].clone()).unwrap(),
        *ordered[10]
    );
}

#[test]
fn context_orders_events_of_the_same_instant_by_id() {
    let index = windsock_indexer::EventIndex::in_ram().unwrap();
    let mut events = windsock_indexer::synthetic::events(6, start(), Duration::minutes(1), 3);
    for e in &mut events {
        if let Event::Log(l) = &mut e.event {
            l.timestamp = start();
        }
        if let Event::Observation(o) = &mut e.event {
            o.observed_at = start();
        }
        *e = Envelope::new(e.event.clone());
    }
    let mut sink = index.writer(20).unwrap();
    for e in &events {
        sink.upsert(e, None).unwrap();
    }
    sink.commit("test").unwrap();
    let mut ids: Vec<String> = events
        .iter()
        .filter(|e| e.event.timestamp() == start())
        .map(|e| e.id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert!(ids.len() >= 3, "the data has events of the same instant");
    let anchor = index.get(&ids[1]).unwrap().unwrap();
    let (before, after) = index.context(&anchor, 10, 10).unwrap();
    assert_eq!(
        before.iter().map(|h| h.id.clone()).collect::<Vec<_>>(),
        vec![ids[0].clone()]
    );
    assert_eq!(
        after
            .iter()
            .filter(|h| h.timestamp == start())
            .map(|h| h.id.clone())
            .collect::<Vec<_>>(),
        ids[2..].to_vec()
    );
}

#[tokio::test]
async fn regions_report_their_last_observation_or_never() {
    let (index, events) = indexed_events();
    let (router, _) = routes(&index, start());
    let (status, body) = get(&router, "/api/regions").await;
    assert_eq!(status, StatusCode::OK);
    let regions = body["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 14, "every configured region");
    for region in regions {
        let name = region["name"].as_str().unwrap();
        let last = events
            .iter()
            .filter(|e| matches!(&e.event, Event::Observation(o) if o.region == name))
            .max_by_key(|e| e.event.timestamp())
            .unwrap();
        assert_eq!(
            region["last_seen"],
            serde_json::to_value(last.event.timestamp()).unwrap(),
            "{name}"
        );
        assert_eq!(region["last_observation"]["id"], last.id, "{name}");
    }
    let empty = windsock_indexer::EventIndex::in_ram().unwrap();
    let (router, _) = routes(&empty, start());
    let (_, body) = get(&router, "/api/regions").await;
    assert!(body["regions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["last_seen"].is_null() && r["last_observation"].is_null()));
}

#[test]
fn bucket_widths_give_50_to_100_buckets_for_every_range() {
    let mut range = 60_000i64;
    while range < 400 * 86_400_000 {
        let width = bucket_width_ms(range);
        let n = range / width;
        assert!((50..=100).contains(&n), "{range} ms -> {width} ms x {n}");
        range = range * 11 / 10;
    }
}

#[tokio::test]
async fn the_cli_prints_a_table_of_hits_and_the_api_error_otherwise() {
    let (index, _) = indexed_events();
    let (router, _) = routes(&index, chrono::Utc::now());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let from = start().to_rfc3339();
    let args = |q: &str| windsock_indexer::SearchArgs {
        query: q.into(),
        from: from.clone(),
        to: (start() + Duration::days(2)).to_rfc3339(),
        limit: 5,
    };
    let text = windsock_indexer::cli::search(&base, args("region:Dakar AND kind:observation"))
        .await
        .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("TIME") && lines[0].contains("MESSAGE"),
        "{text}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("Dakar") && l.contains("°C"))
            .count(),
        5,
        "{text}"
    );
    assert!(lines.last().unwrap().contains("hits (5 shown)"), "{text}");
    let err = windsock_indexer::cli::search(&base, args("region:("))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("syntax"), "{err}");
    let err = windsock_indexer::cli::search("http://127.0.0.1:1", args("*"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot reach"), "{err}");
}
