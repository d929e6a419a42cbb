use crate::*;
use chrono::TimeZone;
use std::io::Write;
use std::path::PathBuf;
use windsock_collector::source::replay;
use windsock_collector::source::simulated::weather;
use windsock_collector::Outcome;
use windsock_core::config::{FaultConfig, ReplayOnto};

fn region(name: &str) -> Region {
    windsock_core::config::senegal_regions()
        .into_iter()
        .find(|r| r.name == name)
        .unwrap()
}

#[test]
fn the_same_seed_region_and_instant_give_the_same_weather() {
    let at = noon();
    let dakar = region("Dakar");
    let a = weather(42, &dakar, at, at);
    let b = weather(42, &dakar, at, at + chrono::Duration::minutes(3));
    assert_eq!(a.temperature_c, b.temperature_c);
    assert_eq!(a.humidity_pct, b.humidity_pct);
    assert_eq!(a.wind_deg, b.wind_deg);
    assert_ne!(
        weather(43, &dakar, at, at).temperature_c,
        a.temperature_c,
        "another seed, other weather"
    );
    assert_ne!(
        weather(42, &region("Thiès"), at, at).temperature_c,
        a.temperature_c
    );
}

#[test]
fn the_day_peaks_in_the_solar_afternoon_and_bottoms_before_dawn() {
    // Matam is at 13.26°W: solar noon is about 12:53 UTC.
    let matam = region("Matam");
    let day = Utc.with_ymd_and_hms(2026, 4, 20, 0, 0, 0).unwrap();
    let hourly: Vec<f64> = (0..24)
        .map(|h| weather(42, &matam, day + chrono::Duration::hours(h), day).temperature_c)
        .collect();
    let warmest = (0..24)
        .max_by(|a, b| hourly[*a].total_cmp(&hourly[*b]))
        .unwrap();
    let coolest = (0..24)
        .min_by(|a, b| hourly[*a].total_cmp(&hourly[*b]))
        .unwrap();
    assert!(
        (14..=18).contains(&warmest),
        "warmest at {warmest}h UTC: {hourly:?}"
    );
    assert!(
        !(8..=20).contains(&coolest),
        "coolest at {coolest}h UTC: {hourly:?}"
    );
    assert!(
        hourly[warmest] - hourly[coolest] > 8.0,
        "an inland dry-season day swings: {hourly:?}"
    );
    assert!(
        hourly.iter().all(|t| (18.0..=45.0).contains(t)),
        "{hourly:?}"
    );
    // Consecutive readings are correlated: no jumps between 10-second ticks.
    let steps: Vec<f64> = (0..360)
        .map(|i| weather(42, &matam, day + chrono::Duration::seconds(10 * i), day).temperature_c)
        .collect();
    assert!(
        steps.windows(2).all(|w| (w[1] - w[0]).abs() <= 0.2),
        "the series is smooth"
    );
}

#[tokio::test]
async fn faults_silence_a_region_and_inject_an_out_of_range_value_for_their_window() {
    let mut config = config(SourceKind::Simulated, "http://unused", 3);
    config.collector.schedule = Some("*/10 * * * * *".into());
    config.collector.simulated.faults = vec![
        FaultConfig::Silent {
            region: "Diourbel".into(),
            after: Duration::from_secs(20),
            duration: Duration::from_secs(30),
        },
        FaultConfig::OutOfRange {
            region: "Fatick".into(),
            temperature_c: 71.5,
            after: Duration::ZERO,
            duration: Duration::from_secs(15),
        },
    ];
    let bus = bus();
    let (collector, clock) = collector(config, &bus, noon());
    let mut silent_at = Vec::new();
    let mut hot_at = Vec::new();
    for i in 0..8 {
        let report = collector.round(tick(&collector, clock.now())).await;
        if report.region("Diourbel").unwrap().outcome == Outcome::NoData {
            silent_at.push(i * 10);
        }
        assert_eq!(report.region("Dakar").unwrap().outcome, Outcome::Ok);
        clock.advance(chrono::Duration::seconds(10));
    }
    for o in observations(&bus).await {
        if o.region == "Fatick" && o.temperature_c == 71.5 {
            hot_at.push((o.observed_at - noon()).num_seconds());
        }
    }
    assert_eq!(silent_at, vec![20, 30, 40], "silent from 20s for 30s");
    assert_eq!(hot_at, vec![0, 10], "out of range for the first 15s");
    let logs = logs(&bus).await;
    let silent_logs = logs
        .iter()
        .filter(|l| l.fields["status"] == "no_data")
        .count();
    assert_eq!(silent_logs, 3, "a silent fetch is logged too");
}

#[tokio::test]
async fn a_fault_for_an_unknown_region_is_refused_with_its_key() {
    let mut config = config(SourceKind::Simulated, "http://unused", 1);
    config.collector.simulated.faults = vec![FaultConfig::Silent {
        region: "Atlantis".into(),
        after: Duration::ZERO,
        duration: Duration::from_secs(1),
    }];
    let err = Collector::with_clock(Arc::new(config), bus(), windsock_core::clock::system())
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "collector.simulated.faults[0].region: `Atlantis` is not a configured region"
    );
}

fn sand_point() -> Option<PathBuf> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/sand-point-ak-tmy3-hourly.csv"
    ));
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipped: {} is missing", path.display());
        None
    }
}

#[test]
fn replay_reads_the_real_recording() {
    let Some(path) = sand_point() else { return };
    let recording = replay::read(&path).unwrap();
    assert_eq!(recording.rows.len(), 8760);
    assert!(recording.bad.is_empty(), "{:?}", recording.bad);
    assert_eq!(
        recording.rows[0].at,
        Utc.with_ymd_and_hms(2010, 1, 1, 10, 0, 0).unwrap()
    );
    assert_eq!(recording.rows[0].temperature_c, 4.0);
}

#[test]
fn bad_rows_are_skipped_with_their_line_and_reason() {
    let csv = "timestamp,temperature_c,humidity_pct\n\
               2010-01-01T00:00:00Z,4.5,80\n\
               yesterday,3.0,80\n\
               2010-01-01T01:00:00Z,warm,80\n\
               2010-01-01T02:00:00Z,5.5,\n";
    let recording = replay::parse(csv.as_bytes(), "test.csv".as_ref()).unwrap();
    assert_eq!(recording.rows.len(), 2);
    assert_eq!(recording.rows[0].metrics, vec![("humidity_pct", 80.0)]);
    assert!(
        recording.rows[1].metrics.is_empty(),
        "an empty optional cell is no value"
    );
    assert_eq!(recording.bad.len(), 2);
    assert!(
        recording.bad[0].starts_with("line 3: timestamp `yesterday` is not RFC 3339"),
        "{:?}",
        recording.bad
    );
    assert_eq!(
        recording.bad[1],
        "line 4: temperature_c `warm` is not a number"
    );

    let err = replay::parse("time,temp\n".as_bytes(), "x.csv".as_ref())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "x.csv: the header needs `timestamp` and `temperature_c` columns, found `time,temp`"
    );
    let err = replay::parse(
        "timestamp,temperature_c\nnope,1\n".as_bytes(),
        "x.csv".as_ref(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("x.csv: no usable rows (1 bad; first: line 2"),
        "{err}"
    );
}

#[tokio::test]
async fn replay_plays_recorded_rows_at_speed_with_their_recorded_timestamps() {
    let Some(path) = sand_point() else { return };
    let mut config = config(SourceKind::Replay, "http://unused", 3);
    config.collector.schedule = Some("*/10 * * * * *".into());
    config.collector.replay.path = Some(path);
    config.collector.replay.speed = 3600.0; // an hour of recording per second
    config.collector.replay.onto = ReplayOnto::First;
    let bus = bus();
    let (collector, clock) = collector(config, &bus, noon());
    let first = collector.round(tick(&collector, clock.now())).await;
    clock.advance(chrono::Duration::seconds(10));
    let second = collector.round(tick(&collector, clock.now())).await;
    // The first tick plays the first row; each later one the ten hours after it.
    assert_eq!(first.region("Dakar").unwrap().observations, 1, "{first:?}");
    assert_eq!(second.region("Dakar").unwrap().observations, 10);
    assert_eq!(
        second.region("Diourbel").unwrap().outcome,
        Outcome::NoData,
        "onto the first region only"
    );

    let got = observations(&bus).await;
    assert_eq!(got.len(), 11);
    let start = Utc.with_ymd_and_hms(2010, 1, 1, 10, 0, 0).unwrap();
    let times: Vec<_> = got.iter().map(|o| o.observed_at).collect();
    let expected: Vec<_> = (0..11)
        .map(|h| start + chrono::Duration::hours(h))
        .collect();
    assert_eq!(
        times, expected,
        "each row once, in order, at its recorded time"
    );
    assert!(got
        .iter()
        .all(|o| o.source == "replay" && o.region == "Dakar"));
}

#[tokio::test]
async fn an_anchored_replay_backfills_what_a_restart_missed() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "timestamp,temperature_c").unwrap();
    for h in 0..100 {
        writeln!(
            file,
            "2010-06-01T{:02}:{:02}:00Z,{}",
            h / 60,
            h % 60,
            10.0 + h as f64 / 10.0
        )
        .unwrap();
    }
    let mut config = config(SourceKind::Replay, "http://unused", 2);
    config.collector.schedule = Some("*/10 * * * * *".into());
    config.collector.replay.path = Some(file.path().to_path_buf());
    config.collector.replay.speed = 6.0; // a minute of recording per 10-second tick
    config.collector.replay.anchor = Some(noon());
    config.collector.backfill = Duration::from_secs(60);

    let live_bus = bus();
    let (live, _) = collector(
        config.clone(),
        &live_bus,
        noon() + chrono::Duration::seconds(30),
    );
    live.round(tick(&live, noon() + chrono::Duration::seconds(30)))
        .await;
    let live_ids: Vec<String> = published(&live_bus, Topic::Observations)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(live_ids.len(), 2, "one row per region");

    let restarted_bus = bus();
    let (restarted, _) = collector(
        config,
        &restarted_bus,
        noon() + chrono::Duration::seconds(45),
    );
    let report = restarted.backfill().await;
    // Ticks 12:00:00 .. 12:00:40 play recorded 00:00 .. 00:04 onto both regions.
    assert_eq!(report.published, 2 * 5, "{report:?}");
    let backfilled: Vec<String> = published(&restarted_bus, Topic::Observations)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert!(live_ids.iter().all(|id| backfilled.contains(id)));
}
