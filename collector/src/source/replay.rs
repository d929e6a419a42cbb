//! Replays a CSV of real observations (`timestamp,temperature_c`, RFC 3339 timestamps, and
//! optionally more columns named after observation metrics such as `humidity_pct`) at
//! `speed` recorded seconds per wall-clock second.
//!
//! The recording's first row is played at the anchor instant; a tick plays the rows recorded
//! in the span its `(previous, at]` maps to. That mapping is a pure function of the tick, so
//! a past tick plays the same rows again (backfill) and observations keep their recorded
//! timestamps (so their ids) however often they are played.

use super::{blank, FetchError, Source};
use crate::schedule::Tick;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use windsock_core::clock::SharedClock;
use windsock_core::config::{Region, ReplayConfig, ReplayOnto};
use windsock_core::event::Observation;
use windsock_core::telemetry::Counters;

pub const NAME: &str = "replay";

/// How many bad rows are described one by one in the log before just counting.
const BAD_ROWS_DESCRIBED: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no replay file is configured")]
    NoPath,
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: the header needs `timestamp` and `temperature_c` columns, found `{found}`")]
    Header { path: PathBuf, found: String },
    #[error("{path}: no usable rows ({bad} bad; first: {first})")]
    NoRows {
        path: PathBuf,
        bad: usize,
        first: String,
    },
    #[error("collector.replay.speed: must be more than 0")]
    Speed,
}

/// One recorded row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub at: DateTime<Utc>,
    pub temperature_c: f64,
    /// Other metric columns, by observation metric name.
    pub metrics: Vec<(&'static str, f64)>,
}

/// A parsed recording: its rows in time order, and the rows that did not parse.
#[derive(Debug)]
pub struct Recording {
    pub rows: Vec<Row>,
    /// `line N: reason`, one per bad row.
    pub bad: Vec<String>,
}

pub struct Replay {
    rows: Vec<Row>,
    regions: Vec<String>,
    speed: f64,
    anchor: DateTime<Utc>,
    finished: AtomicBool,
    clock: SharedClock,
}

impl Replay {
    pub fn open(
        config: &ReplayConfig,
        regions: &[Region],
        clock: SharedClock,
        started: DateTime<Utc>,
    ) -> Result<Self, ReplayError> {
        let path = config.path.as_deref().ok_or(ReplayError::NoPath)?;
        if config.speed <= 0.0 || !config.speed.is_finite() {
            return Err(ReplayError::Speed);
        }
        let recording = read(path)?;
        if !recording.bad.is_empty() {
            Counters::new("collector").dropped(recording.bad.len() as u64, "replay_bad_row");
            tracing::warn!(
                path = %path.display(),
                bad_rows = recording.bad.len(),
                first = ?recording.bad.iter().take(BAD_ROWS_DESCRIBED).collect::<Vec<_>>(),
                "skipped rows of the replay file that do not parse"
            );
        }
        let regions = match config.onto {
            ReplayOnto::Each => regions.iter().map(|r| r.name.clone()).collect(),
            ReplayOnto::First => regions.iter().take(1).map(|r| r.name.clone()).collect(),
        };
        Ok(Self {
            rows: recording.rows,
            regions,
            speed: config.speed,
            anchor: config.anchor.unwrap_or(started),
            finished: AtomicBool::new(false),
            clock,
        })
    }

    /// The recorded instant being played at wall-clock `at`.
    fn recorded_at(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let first = self.rows[0].at;
        let elapsed_ms = (at - self.anchor).num_milliseconds() as f64 * self.speed;
        first + chrono::Duration::milliseconds(elapsed_ms as i64)
    }

    fn play(&self, region: &Region, tick: &Tick) -> Vec<Observation> {
        if !self.regions.contains(&region.name) {
            return Vec::new();
        }
        let (from, to) = (self.recorded_at(tick.previous), self.recorded_at(tick.at));
        let start = self.rows.partition_point(|r| r.at <= from);
        let end = self.rows.partition_point(|r| r.at <= to);
        if end == self.rows.len() && start == end && !self.finished.swap(true, Ordering::Relaxed) {
            tracing::info!(
                rows = self.rows.len(),
                "the replay reached the end of its recording"
            );
        }
        let fetched_at = self.clock.now();
        self.rows[start..end]
            .iter()
            .map(|row| {
                let mut observation = Observation {
                    temperature_c: row.temperature_c,
                    ..blank(region, NAME, row.at, fetched_at)
                };
                for (name, value) in &row.metrics {
                    set_metric(&mut observation, name, *value);
                }
                observation
            })
            .collect()
    }
}

#[async_trait]
impl Source for Replay {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn current(&self, region: &Region, tick: Tick) -> Result<Vec<Observation>, FetchError> {
        Ok(self.play(region, &tick))
    }

    fn past_batch(&self) -> Option<usize> {
        Some(usize::MAX)
    }

    async fn past(&self, region: &Region, ticks: &[Tick]) -> Result<Vec<Observation>, FetchError> {
        Ok(ticks.iter().flat_map(|t| self.play(region, t)).collect())
    }
}

/// Reads a recording; rows that do not parse are listed in `bad`, not fatal, unless no row
/// parses at all.
pub fn read(path: &Path) -> Result<Recording, ReplayError> {
    let file = std::fs::File::open(path).map_err(|err| ReplayError::Read {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })?;
    parse(file, path)
}

/// As [`read`], from any reader (`path` names it in errors).
pub fn parse(input: impl std::io::Read, path: &Path) -> Result<Recording, ReplayError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = reader.headers().map_err(|err| ReplayError::Read {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })?;
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (Some(timestamp), Some(temperature)) = (column("timestamp"), column("temperature_c"))
    else {
        return Err(ReplayError::Header {
            path: path.to_path_buf(),
            found: headers.iter().collect::<Vec<_>>().join(","),
        });
    };
    let metrics: Vec<(usize, &'static str)> = headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let name = Observation::METRICS
                .iter()
                .find(|m| **m == h && **m != "temperature_c")?;
            Some((i, *name))
        })
        .collect();

    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for (index, record) in reader.records().enumerate() {
        // Line 1 is the header.
        let line = index + 2;
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                bad.push(format!("line {line}: {err}"));
                continue;
            }
        };
        let field = |i: usize| record.get(i).unwrap_or("");
        let at = match DateTime::parse_from_rfc3339(field(timestamp)) {
            Ok(at) => at.with_timezone(&Utc),
            Err(err) => {
                bad.push(format!(
                    "line {line}: timestamp `{}` is not RFC 3339: {err}",
                    field(timestamp)
                ));
                continue;
            }
        };
        let temperature_c = match field(temperature).parse::<f64>() {
            Ok(t) if t.is_finite() => t,
            _ => {
                bad.push(format!(
                    "line {line}: temperature_c `{}` is not a number",
                    field(temperature)
                ));
                continue;
            }
        };
        let metrics = metrics
            .iter()
            .filter_map(|(i, name)| {
                Some((
                    *name,
                    field(*i).parse::<f64>().ok().filter(|v| v.is_finite())?,
                ))
            })
            .collect();
        rows.push(Row {
            at,
            temperature_c,
            metrics,
        });
    }
    if rows.is_empty() {
        return Err(ReplayError::NoRows {
            path: path.to_path_buf(),
            bad: bad.len(),
            first: bad
                .first()
                .cloned()
                .unwrap_or_else(|| "the file has a header only".into()),
        });
    }
    rows.sort_by_key(|r| r.at);
    Ok(Recording { rows, bad })
}

fn set_metric(o: &mut Observation, name: &str, value: f64) {
    let slot = match name {
        "feels_like_c" => &mut o.feels_like_c,
        "humidity_pct" => &mut o.humidity_pct,
        "pressure_hpa" => &mut o.pressure_hpa,
        "dew_point_c" => &mut o.dew_point_c,
        "wind_speed_ms" => &mut o.wind_speed_ms,
        "wind_deg" => &mut o.wind_deg,
        "wind_gust_ms" => &mut o.wind_gust_ms,
        "clouds_pct" => &mut o.clouds_pct,
        "visibility_m" => &mut o.visibility_m,
        "uvi" => &mut o.uvi,
        _ => return,
    };
    *slot = Some(value);
}
