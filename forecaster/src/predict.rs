//! The input of `POST /predict`, the contract of the FastAPI/Prophet service it replaces:
//! JSON `{"latitude":..,"longitude":..,"data":[{"ds":"2023-07-21 10:00:00","y":27.1},..]}`
//! or the same rows as CSV (`ds,y`). Every problem is reported with the row it is on.

use crate::engine::{self, EngineError, Refit, Setup};
use crate::models::{self, ModelKind};
use crate::series::{regularize, RegularSeries};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::{Arc, LazyLock};
use utoipa::ToSchema;

/// The most rows one request may carry.
pub const MAX_ROWS: usize = 20_000;
/// The largest value (in absolute terms) a row may carry.
pub const MAX_ABS_Y: f64 = 1e9;

// Read by `parse_json` (whose messages name the row at fault) rather than through this type,
// which describes the body in the OpenAPI document; a test checks the two agree.
/// The JSON body of `POST /predict`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PredictRequest {
    /// Where the series was measured (accepted for compatibility; not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -90, maximum = 90, example = 14.7)]
    pub latitude: Option<f64>,
    /// Where the series was measured (accepted for compatibility; not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -180, maximum = 180, example = -17.4)]
    pub longitude: Option<f64>,
    /// Rows in increasing time at one regular step: enough for two days plus one step of
    /// the data's frequency, at most 20000.
    #[schema(min_items = 1, max_items = 20000)]
    pub data: Vec<PredictRow>,
}

/// One point of the series sent to `/predict`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PredictRow {
    /// A date: `2023-07-21 10:00:00` (UTC, and the answer is written the same way), RFC 3339,
    /// or a day.
    #[schema(example = "2023-07-21 10:00:00")]
    pub ds: String,
    /// A finite value from -1e9 to 1e9.
    #[schema(minimum = -1e9, maximum = 1e9, example = 27.1)]
    pub y: f64,
}

/// The answer of `POST /predict`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct PredictResponse {
    /// One per step after the last row, at the rows' own step.
    pub predictions: Vec<Prediction>,
    /// The model chosen: the lowest MAE in a backtest on the rows sent.
    pub model: ModelKind,
    /// The level of the prediction intervals.
    #[schema(exclusive_minimum = 0, exclusive_maximum = 1, example = 0.95)]
    pub level: f64,
    /// The rows' step: `1h`, `30m`, `1d`, `90s`.
    #[schema(example = "1h")]
    pub frequency: String,
}

/// One step of a `/predict` forecast, with its prediction interval.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Prediction {
    /// Written as the request wrote its dates: `2023-07-21 10:00:00` when they had no time
    /// zone, RFC 3339 in UTC (`2023-07-21T10:00:00Z`) when they had one.
    #[schema(example = "2023-07-21 10:00:00")]
    pub timestamp: String,
    pub temperature: f64,
    /// The interval's bounds; null when it is unbounded (too few rows to calibrate it).
    #[schema(required = true)]
    pub lower: Option<f64>,
    #[schema(required = true)]
    pub upper: Option<f64>,
}

/// Parsed rows: instants, values, and whether the dates came without a time zone (then the
/// answer's timestamps are written the same way).
#[derive(Clone, Debug, PartialEq)]
pub struct Rows {
    pub points: Vec<(DateTime<Utc>, f64)>,
    pub naive_dates: bool,
}

/// A bad request body, in words.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

fn bad(message: impl Into<String>) -> InputError {
    InputError(message.into())
}

pub fn parse_json(body: &[u8]) -> Result<Rows, InputError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        let text = String::from_utf8_lossy(body);
        if ["NaN", "Infinity"].iter().any(|t| text.contains(t)) {
            bad(format!("body is not valid JSON ({e}): NaN and Infinity are not JSON numbers; leave such rows out"))
        } else {
            bad(format!("body is not valid JSON: {e}"))
        }
    })?;
    let object = value
        .as_object()
        .ok_or_else(|| bad("body must be a JSON object with a `data` array"))?;
    for (key, range) in [("latitude", 90.0), ("longitude", 180.0)] {
        match object.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_f64() {
                Some(x) if x.abs() <= range => {}
                _ => {
                    return Err(bad(format!(
                        "{key} must be a number from -{range} to {range}, got {v}"
                    )))
                }
            },
        }
    }
    let data = match object.get("data") {
        Some(Value::Array(rows)) => rows,
        Some(other) => {
            return Err(bad(format!(
                "data must be an array of {{\"ds\", \"y\"}} rows, got {other}"
            )))
        }
        None => return Err(bad("body has no `data` array of {\"ds\", \"y\"} rows")),
    };
    check_row_count(data.len())?;
    let mut rows = RowsBuilder::default();
    for (i, row) in data.iter().enumerate() {
        let n = i + 1;
        let ds = match row.get("ds") {
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(bad(format!(
                "row {n}: ds must be a date string such as \"2023-07-21 10:00:00\", got {other}"
            )))
            }
            None => return Err(bad(format!("row {n}: missing ds"))),
        };
        let y = match row.get("y") {
            Some(Value::Number(x)) => x.as_f64().unwrap_or(f64::NAN),
            Some(Value::Null) => {
                return Err(bad(format!(
                    "row {n}: y is null; leave rows without a value out"
                )))
            }
            Some(other) => return Err(bad(format!("row {n}: y must be a number, got {other}"))),
            None => return Err(bad(format!("row {n}: missing y"))),
        };
        rows.push(n, ds, y)?;
    }
    Ok(rows.finish())
}

pub fn parse_csv(body: &[u8]) -> Result<Rows, InputError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| bad(format!("CSV header: {e}")))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(ds_col), Some(y_col)) = (column("ds"), column("y")) else {
        return Err(bad(format!(
            "CSV needs a header row with columns ds and y, got: {}",
            headers.iter().collect::<Vec<_>>().join(",")
        )));
    };
    let mut rows = RowsBuilder::default();
    for (i, record) in reader.records().enumerate() {
        let n = i + 1;
        let record = record.map_err(|e| bad(format!("row {n}: {e}")))?;
        check_row_count(n)?;
        let ds = record.get(ds_col).unwrap_or_default();
        let y_text = record.get(y_col).unwrap_or_default();
        if y_text.is_empty() {
            return Err(bad(format!(
                "row {n}: y is empty; leave rows without a value out"
            )));
        }
        let y: f64 = y_text
            .parse()
            .map_err(|_| bad(format!("row {n}: y `{y_text}` is not a number")))?;
        rows.push(n, ds, y)?;
    }
    Ok(rows.finish())
}

fn check_row_count(n: usize) -> Result<(), InputError> {
    if n > MAX_ROWS {
        return Err(bad(format!(
            "too many rows: at most {MAX_ROWS} per request"
        )));
    }
    Ok(())
}

#[derive(Default)]
struct RowsBuilder {
    points: Vec<(DateTime<Utc>, f64)>,
    naive: Option<bool>,
}

impl RowsBuilder {
    fn push(&mut self, n: usize, ds: &str, y: f64) -> Result<(), InputError> {
        // Bounded so that sums of squares over every row stay finite in the fits.
        if !y.is_finite() || y.abs() > MAX_ABS_Y {
            return Err(bad(format!(
                "row {n}: y is {y:e}; values must be finite numbers from -1e9 to 1e9"
            )));
        }
        let (at, naive) = parse_date(ds).ok_or_else(|| {
            bad(format!(
                "row {n}: ds `{ds}` is not a date (use e.g. 2023-07-21 10:00:00 or RFC 3339)"
            ))
        })?;
        if let Some((previous, _)) = self.points.last() {
            if at == *previous {
                return Err(bad(format!(
                    "row {n}: duplicate timestamp {ds} (same as row {})",
                    n - 1
                )));
            }
            if at < *previous {
                return Err(bad(format!(
                    "row {n}: timestamps must increase, but {ds} is before row {}",
                    n - 1
                )));
            }
        }
        self.naive.get_or_insert(naive);
        self.points.push((at, y));
        Ok(())
    }

    fn finish(self) -> Rows {
        Rows {
            points: self.points,
            naive_dates: self.naive.unwrap_or(true),
        }
    }
}

/// A date with or without a time zone (without one, it is taken as UTC).
fn parse_date(text: &str) -> Option<(DateTime<Utc>, bool)> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some((at.with_timezone(&Utc), false));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(at) = DateTime::parse_from_str(text, format) {
            return Some((at.with_timezone(&Utc), false));
        }
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Some((at.and_utc(), true));
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|at| (at.and_utc(), true))
}

/// The latest instant a forecast may reach: the last one RFC 3339 (four-digit years) writes.
pub const LATEST: &str = "9999-12-31T23:59:59Z";

fn latest() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(LATEST)
        .expect("LATEST is RFC 3339")
        .with_timezone(&Utc)
}

/// Rows on a regular grid, ready for the engine.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub series: RegularSeries,
    /// The instant of step 0.
    pub epoch: DateTime<Utc>,
    pub step_seconds: i64,
    /// Steps per day, when the step divides a day into at least two.
    pub season: Option<usize>,
}

impl Grid {
    /// The instant of `step`, if it is no later than [`LATEST`].
    pub fn instant(&self, step: i64) -> Option<DateTime<Utc>> {
        let seconds = step.checked_mul(self.step_seconds)?;
        let at = self
            .epoch
            .checked_add_signed(chrono::TimeDelta::try_seconds(seconds)?)?;
        (at <= latest()).then_some(at)
    }

    /// Refuses a forecast of `horizon` steps after the rows whose instants could not be
    /// written back in the dates the request may use (years 0 to 9999).
    pub fn check_horizon(&self, horizon: usize) -> Result<(), InputError> {
        let last = i64::try_from(horizon)
            .ok()
            .and_then(|h| self.series.end().checked_add(h - 1))
            .and_then(|step| self.instant(step));
        if last.is_none() {
            return Err(bad(format!(
                "horizon: {horizon} steps of {} after the last row run past {LATEST}; send a shorter horizon",
                self.step_name()
            )));
        }
        Ok(())
    }

    /// The step in words: `1h`, `30m`, `1d`.
    pub fn step_name(&self) -> String {
        let s = self.step_seconds;
        match s {
            _ if s % 86_400 == 0 => format!("{}d", s / 86_400),
            _ if s % 3600 == 0 => format!("{}h", s / 3600),
            _ if s % 60 == 0 => format!("{}m", s / 60),
            _ => format!("{s}s"),
        }
    }
}

/// Past origins a stateless request is backtested from, to choose and calibrate a model.
pub const PREDICT_BACKFILL_ORIGINS: usize = 24;

/// How a stateless request is modelled: on all it sent (28 days at most), calibrated by a
/// backfilled backtest.
pub fn setup(grid: &Grid, horizon: usize) -> Setup {
    let season = grid.season;
    Setup {
        season,
        // As the bus history: 28 days at most (what MSTL needs; Prophet's habit of fitting
        // on everything sent costs time and helps no 24-step forecast).
        train_len: grid.series.len().min(season.map_or(1000, |p| 28 * p)),
        calibration_horizon: horizon.min(season.unwrap_or(horizon)).max(1),
        calibration_window: grid.series.len() as i64,
        // Twelve days of past origins 12 h apart. Three days (12 origins 6 h apart) chose the
        // model by luck: on Miami, added to the bench after the models were chosen, the model
        // served erred more than seasonal naive (MAE 1.66 against 1.59 °C) and covered 89%.
        backfill_origins: PREDICT_BACKFILL_ORIGINS,
        backfill_spacing: season.map_or(1, |p| (p / 2).max(1)),
    }
}

/// Forecasts learned from recent requests, so that a repeated request (a dashboard polling,
/// a client retrying) costs a lookup instead of a backtest.
pub const CACHED_FORECASTS: usize = 64;

/// What a cached forecast was made from: the whole grid (compared, not only hashed, so a
/// hash collision can never answer with another series' forecast) and the horizon.
#[derive(PartialEq)]
struct CacheKey {
    epoch: DateTime<Utc>,
    step_seconds: i64,
    horizon: usize,
    start: i64,
    values: Vec<u64>,
}

impl CacheKey {
    fn new(grid: &Grid, horizon: usize) -> Self {
        CacheKey {
            epoch: grid.epoch,
            step_seconds: grid.step_seconds,
            horizon,
            start: grid.series.start,
            values: grid.series.values.iter().map(|v| v.to_bits()).collect(),
        }
    }

    fn hash(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (self.epoch, self.step_seconds, self.horizon, self.start).hash(&mut hasher);
        self.values.hash(&mut hasher);
        hasher.finish()
    }
}

type ForecastCache = lru::LruCache<u64, (CacheKey, Arc<Refit>)>;

static CACHE: LazyLock<Mutex<ForecastCache>> = LazyLock::new(|| {
    Mutex::new(lru::LruCache::new(
        NonZeroUsize::new(CACHED_FORECASTS).expect("a positive capacity"),
    ))
});

/// The forecast of a stateless request: every model fitted on the rows, scored on a backfilled
/// backtest, chosen and calibrated by [`engine::refit`]; answered from [`CACHED_FORECASTS`]
/// recent ones when the same rows and horizon came before. Blocking: run it off async threads.
pub fn forecast(grid: &Grid, horizon: usize) -> Result<Arc<Refit>, EngineError> {
    let key = CacheKey::new(grid, horizon);
    let hash = key.hash();
    if let Some((cached_key, refit)) = CACHE.lock().get(&hash) {
        if *cached_key == key {
            return Ok(refit.clone());
        }
    }
    let refit = Arc::new(engine::refit(
        &grid.series,
        &mut Default::default(),
        &setup(grid, horizon),
        horizon,
    )?);
    CACHE.lock().put(hash, (key, refit.clone()));
    Ok(refit)
}

/// Forgets every cached forecast (for benchmarks that time the fits themselves).
pub fn clear_cache() {
    CACHE.lock().clear();
}

/// Puts the rows on the grid of their own step (the smallest interval between rows).
pub fn to_grid(rows: &Rows) -> Result<Grid, InputError> {
    let Some(&(epoch, _)) = rows.points.first() else {
        return Err(bad("data is empty"));
    };
    let step_seconds = rows
        .points
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).num_seconds())
        .min()
        .unwrap_or(3600);
    if step_seconds <= 0 {
        return Err(bad(
            "timestamps closer than one second apart are not supported",
        ));
    }
    let mut steps = Vec::with_capacity(rows.points.len());
    for (i, (at, y)) in rows.points.iter().enumerate() {
        let offset = (*at - epoch).num_seconds();
        if offset % step_seconds != 0 {
            return Err(bad(format!(
                "row {}: timestamps are not on a regular grid: {at} is not a whole number of {step_seconds}-second steps after row 1",
                i + 1
            )));
        }
        steps.push((offset / step_seconds, *y));
    }
    let season = (86_400 % step_seconds == 0)
        .then_some((86_400 / step_seconds) as usize)
        .filter(|p| *p >= 2);
    let grid = Grid {
        series: regularize(steps),
        epoch,
        step_seconds,
        season,
    };
    let needed = models::min_points(ModelKind::DEFAULT, season);
    if rows.points.len() < needed {
        let why = if season.is_some() {
            " (two days plus one step)"
        } else {
            ""
        };
        return Err(bad(format!(
            "too few points: got {}, at least {needed} needed for data every {}{why}",
            rows.points.len(),
            grid.step_name()
        )));
    }
    Ok(grid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hourly_json(n: usize) -> String {
        let rows: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"ds":"2023-07-{:02} {:02}:00:00","y":{}}}"#,
                    1 + i / 24,
                    i % 24,
                    20 + i % 5
                )
            })
            .collect();
        format!(
            r#"{{"latitude":14.7,"longitude":-17.4,"data":[{}]}}"#,
            rows.join(",")
        )
    }

    #[test]
    fn the_documented_request_is_what_parse_json_reads() {
        let body = hourly_json(72);
        let request: PredictRequest = serde_json::from_str(&body).unwrap();
        assert_eq!(request.data.len(), 72);
        let rows = parse_json(serde_json::to_string(&request).unwrap().as_bytes()).unwrap();
        assert_eq!(rows, parse_json(body.as_bytes()).unwrap());
        let bare = serde_json::json!({"data": [{"ds": "2023-07-21 10:00:00", "y": 1.5}]});
        assert!(serde_json::from_value::<PredictRequest>(bare.clone()).is_ok());
        assert_eq!(
            parse_json(bare.to_string().as_bytes())
                .unwrap()
                .points
                .len(),
            1
        );
        assert!(
            parse_json(b"{\"latitude\": 1}").is_err(),
            "data is required, as documented"
        );
    }

    #[test]
    fn json_rows_parse_onto_an_hourly_grid() {
        let rows = parse_json(hourly_json(72).as_bytes()).unwrap();
        assert!(rows.naive_dates);
        let grid = to_grid(&rows).unwrap();
        assert_eq!(grid.step_seconds, 3600);
        assert_eq!(grid.season, Some(24));
        assert_eq!(grid.series.len(), 72);
        assert_eq!(grid.step_name(), "1h");
    }

    #[test]
    fn dates_in_the_usual_spellings_parse() {
        for text in [
            "2023-07-21 10:00:00",
            "2023-07-21T10:00:00",
            "2023-07-21 10:00",
            "2023-07-21T10:00:00.000",
        ] {
            assert_eq!(
                parse_date(text).unwrap().0.to_rfc3339(),
                "2023-07-21T10:00:00+00:00",
                "{text}"
            );
        }
        assert_eq!(
            parse_date("2023-07-21T12:00:00+02:00").unwrap(),
            (parse_date("2023-07-21 10:00").unwrap().0, false)
        );
        assert_eq!(
            parse_date("2023-07-21 12:00:00+02:00").unwrap().0,
            parse_date("2023-07-21 10:00").unwrap().0
        );
        assert!(parse_date("21/07/2023").is_none());
    }

    #[test]
    fn csv_takes_columns_by_name() {
        let rows = parse_csv(b"y,ds\n1.5,2023-07-21 10:00:00\n2.5,2023-07-21 11:00:00\n").unwrap();
        assert_eq!(rows.points.len(), 2);
        assert_eq!(rows.points[1].1, 2.5);
        let err = parse_csv(b"time,value\n1,2\n").unwrap_err();
        assert!(err.0.contains("columns ds and y"), "{err}");
    }

    #[test]
    fn irregular_rows_are_refused_and_short_gaps_filled() {
        let rows = parse_csv(b"ds,y\n2023-07-21 10:00,1\n2023-07-21 10:20,2\n2023-07-21 10:50,3\n")
            .unwrap();
        let err = to_grid(&rows).unwrap_err();
        assert!(
            err.0.contains("row 3") && err.0.contains("regular grid"),
            "{err}"
        );
        let mut json = hourly_json(60);
        // Remove two hours in the middle: filled, not refused.
        json = json.replace(r#"{"ds":"2023-07-02 03:00:00","y":22},"#, "");
        json = json.replace(r#"{"ds":"2023-07-02 04:00:00","y":23},"#, "");
        let grid = to_grid(&parse_json(json.as_bytes()).unwrap()).unwrap();
        assert_eq!((grid.series.len(), grid.series.filled), (60, 2));
    }
}
