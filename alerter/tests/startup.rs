//! No page at start-up (issue 19): an alerter that starts on a bus holding hours of history
//! (its group reads from the beginning on a fresh data dir) judges it, but a threshold breach
//! and a forecast deviation that were over long before it started send nothing to Slack; a
//! breach that happens once it runs still pages.

mod support;

use std::sync::Arc;
use std::time::Duration;
use support::*;
use windsock_core::bus::{publish_event, EmbeddedBus};
use windsock_core::clock::{Clock, ManualClock};
use windsock_core::config::{BusConfig, OutlierMethod, OutlierScope, RuleConfig, Severity};
use windsock_core::event::{Event, Forecast, ForecastPoint, Observation};
use windsock_core::SharedBus;

/// The regions that stay normal throughout, each with its reading.
const OTHERS: [(&str, f64); 4] = [
    ("Matam", 28.5),
    ("Kolda", 29.0),
    ("Louga", 29.5),
    ("Fatick", 30.0),
];

fn reading(region: &str, at: chrono::DateTime<chrono::Utc>, temperature_c: f64) -> Event {
    Event::Observation(Observation {
        region: region.into(),
        observed_at: at,
        fetched_at: at,
        source: "simulated".into(),
        temperature_c,
        ..Default::default()
    })
}

#[tokio::test]
async fn history_read_at_start_never_pages_and_a_live_breach_does() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = vec![
        hot_rule(Duration::ZERO, 1.0),
        RuleConfig::ForecastDeviation {
            name: "forecast_deviation".into(),
            severity: Severity::Warning,
            region: None,
            consecutive: 3,
            level: None,
        },
        RuleConfig::Outlier {
            name: "regional_outlier".into(),
            severity: Severity::Warning,
            metric: "temperature_c".into(),
            scope: OutlierScope::Regions,
            method: OutlierMethod::Mad,
            sensitivity: 0.5,
            min_history: 2,
            window: 48,
            consecutive: 1,
            min_deviation: 5.0,
        },
    ];
    let config = config(
        dir.path(),
        Some(&slack.url),
        rules,
        regions(&["Dakar", "Ziguinchor", "Matam", "Kolda", "Louga", "Fatick"]),
    );
    // 100 minutes of rounds every 10 s, an hour before the alerter starts: two regions out
    // of bounds from minute 8 to minute 92 (Dakar above 40 °C and far from the others,
    // Ziguinchor outside its forecast band of 24–28 °C), back to normal after. 3,600
    // readings: the alerter judges them in several batches, some of which end in the
    // middle of the breach.
    let history_start = t0();
    let now = history_start + chrono::Duration::minutes(160);
    let bus: SharedBus = Arc::new(EmbeddedBus::new(&BusConfig::default()));
    let forecast = Forecast {
        region: "Ziguinchor".into(),
        model: "mstl_ets".into(),
        generated_at: history_start,
        level: 0.95,
        points: (0..12)
            .map(|i| ForecastPoint {
                timestamp: history_start + chrono::Duration::minutes(30 * i),
                temperature_c: 26.0,
                lower: 24.0,
                upper: 28.0,
            })
            .collect(),
        backtest_mae: Default::default(),
    };
    publish_event(bus.as_ref(), Event::Forecast(forecast))
        .await
        .unwrap();
    for step in 0..600 {
        let at = history_start + chrono::Duration::seconds(10 * step);
        let breach = (48..552).contains(&step);
        let (dakar, ziguinchor) = if breach { (50.0, 29.0) } else { (30.0, 26.0) };
        publish_event(bus.as_ref(), reading("Dakar", at, dakar))
            .await
            .unwrap();
        publish_event(bus.as_ref(), reading("Ziguinchor", at, ziguinchor))
            .await
            .unwrap();
        for (region, value) in OTHERS {
            publish_event(bus.as_ref(), reading(region, at, value))
                .await
                .unwrap();
        }
    }

    let h = Harness::start_on(config, ManualClock::new(now), bus).await;
    // Until the whole history is read: the latest readings are the normal ones.
    let mut read = false;
    for _ in 0..200 {
        h.advance(Duration::ZERO).await;
        let rules = h.get("/api/rules").await;
        let latest: Vec<f64> = rules["rules"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["evaluation"].as_array().unwrap().clone())
            .filter_map(|f| f["value"].as_f64())
            .collect();
        // Each region's threshold finding, Ziguinchor's deviation, the outlier's round.
        let normal = [30.0, 26.0, 28.5, 29.0, 29.5];
        if latest.len() >= 7 && latest.iter().all(|v| normal.contains(v)) {
            read = true;
            break;
        }
    }
    assert!(read, "the history was read");
    // What the rules table shows has no `null` (hot has no `below`, the deviation no
    // `level`), and each rule says what it does.
    let rules = h.get("/api/rules").await;
    assert!(!rules.to_string().contains("null"), "{rules}");
    assert_eq!(
        rules["rules"][0]["description"],
        "Fires when temperature is above 40 °C; clears 1 °C back inside"
    );
    assert_eq!(rules["rules"][0]["config"]["above"], 40.0);
    assert!(rules["rules"][0]["config"].get("below").is_none());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(slack.posts(), 0, "{:?}", slack.headers());
    let alerts = h.get("/api/alerts?state=all").await;
    assert!(
        alerts["alerts"].as_array().unwrap().is_empty(),
        "nothing even opened: {alerts}"
    );

    // Live: Dakar breaches now (and stands out), Ziguinchor leaves its band for three rounds.
    let live = Forecast {
        region: "Ziguinchor".into(),
        model: "mstl_ets".into(),
        generated_at: now,
        level: 0.95,
        points: (0..6)
            .map(|i| ForecastPoint {
                timestamp: now + chrono::Duration::minutes(30 * i),
                temperature_c: 26.0,
                lower: 24.0,
                upper: 28.0,
            })
            .collect(),
        backtest_mae: Default::default(),
    };
    publish_event(h.bus.as_ref(), Event::Forecast(live))
        .await
        .unwrap();
    h.advance(Duration::ZERO).await;
    for _ in 0..3 {
        let at = h.clock.now();
        publish_event(h.bus.as_ref(), reading("Dakar", at, 50.0))
            .await
            .unwrap();
        publish_event(h.bus.as_ref(), reading("Ziguinchor", at, 29.0))
            .await
            .unwrap();
        for (region, value) in OTHERS {
            publish_event(h.bus.as_ref(), reading(region, at, value))
                .await
                .unwrap();
        }
        h.advance(Duration::ZERO).await;
        h.advance(Duration::from_secs(10)).await;
    }
    eventually(Duration::from_secs(5), "the live alerts", || {
        slack.delivered().len() >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let headers = slack.headers();
    assert_eq!(headers.len(), 3, "{headers:?}");
    assert!(
        headers
            .iter()
            .any(|h| h.contains("FIRING: regional_outlier — Dakar")),
        "{headers:?}"
    );
    assert!(
        headers.iter().any(|h| h.contains("FIRING: hot — Dakar")),
        "{headers:?}"
    );
    assert!(
        headers
            .iter()
            .any(|h| h.contains("FIRING: forecast_deviation — Ziguinchor")),
        "{headers:?}"
    );
    let deviation = slack
        .delivered()
        .into_iter()
        .find(|p| p.to_string().contains("forecast_deviation"))
        .unwrap();
    let summary = deviation["blocks"][2]["text"]["text"].as_str().unwrap();
    assert_eq!(
        summary,
        "Temperature in Ziguinchor is 29 °C: 3 observations in a row outside the forecast band 24–28 °C"
    );
    h.stop().await;
}
