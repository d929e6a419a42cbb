//! Aggregations over a search (`/api/aggregate`) and daily figures per region
//! (`/api/daily`), built on tantivy's aggregations: a date histogram of the hits with a
//! metric in each bucket, optionally split by the top values of a term field.
//!
//! A metric reads a fast field: the observation metrics (`temperature_c`, `humidity_pct`,
//! ...). Attributes (`fields.*`) are indexed as terms only, so they cannot be aggregated: a
//! metric over one is a 400 saying so.

use crate::query::{parse_query, QueryError};
use crate::search::SearchError;
use crate::store::EventIndex;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::ops::Bound;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::AggregationCollector;
use tantivy::collector::Count;
use tantivy::query::{BooleanQuery, EnableScoring, Occur, Query, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::Term;
use utoipa::ToSchema;

/// The fields `by` may split on: raw, fast string fields.
pub const TERM_FIELDS: [&str; 5] = ["kind", "region", "level", "service", "source"];
/// Series split by `by` when `size` is absent, and the most it may be.
pub const DEFAULT_SIZE: usize = 10;
pub const MAX_SIZE: usize = 100;
/// The functions a metric may apply, for the 400 that lists them.
pub const FUNCTIONS: [&str; 8] = ["count", "avg", "min", "max", "sum", "p50", "p95", "p99"];

/// What is computed in each bucket.
#[derive(Clone, Debug, PartialEq)]
pub enum Metric {
    /// The number of hits (the point's `value` is its `count`).
    Count,
    /// A function of a numeric field over the hits that have it.
    Of { function: Function, field: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    Avg,
    Min,
    Max,
    Sum,
    /// A percentile (50, 95, 99): tantivy's are estimated (DDSketch, within 1% of the value).
    Percentile(u8),
}

/// A `metric` parameter that is not one: what is wrong, for the 400.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricError {
    pub message: String,
    pub reason: &'static str,
}

impl Metric {
    /// `count`, or `avg|min|max|sum|p50|p95|p99(FIELD)` where FIELD is a numeric fast field of
    /// `index`.
    pub fn parse(text: &str, index: &EventIndex) -> Result<Self, MetricError> {
        let text = text.trim();
        if text == "count" || text == "count()" {
            return Ok(Metric::Count);
        }
        let Some((name, rest)) = text.split_once('(') else {
            return Err(MetricError {
                message: format!(
                    "`{text}` is not `count` or FUNCTION(FIELD); expected one of {}",
                    FUNCTIONS.join(", ")
                ),
                reason: "syntax",
            });
        };
        let Some(field) = rest.strip_suffix(')') else {
            return Err(MetricError {
                message: format!("`{text}` does not end with `)`"),
                reason: "syntax",
            });
        };
        let function = match name.trim() {
            "avg" | "mean" => Function::Avg,
            "min" => Function::Min,
            "max" => Function::Max,
            "sum" => Function::Sum,
            "p50" => Function::Percentile(50),
            "p95" => Function::Percentile(95),
            "p99" => Function::Percentile(99),
            other => {
                return Err(MetricError {
                    message: format!(
                        "unknown function \"{other}\", expected one of {}",
                        FUNCTIONS.join(", ")
                    ),
                    reason: "unknown_function",
                })
            }
        };
        let field = field.trim();
        let numeric: Vec<&str> = index.fields.metrics.iter().map(|(name, _)| *name).collect();
        if !numeric.contains(&field) {
            let why = if field.starts_with("fields.") {
                "attributes are indexed as terms, not as numeric columns"
            } else if field.is_empty() {
                "no field given"
            } else if index.index.schema().get_field(field).is_ok() {
                "it has no numeric column"
            } else {
                "there is no such field"
            };
            return Err(MetricError {
                message: format!(
                    "field \"{field}\" is not numeric ({why}); numeric fields: {}",
                    numeric.join(", ")
                ),
                reason: "not_numeric",
            });
        }
        Ok(Metric::Of {
            function,
            field: field.to_string(),
        })
    }

    /// The tantivy sub-aggregation computing the value, if any.
    fn request(&self) -> Option<Value> {
        let Metric::Of { function, field } = self else {
            return None;
        };
        Some(match function {
            Function::Avg => json!({"avg": {"field": field}}),
            Function::Min => json!({"min": {"field": field}}),
            Function::Max => json!({"max": {"field": field}}),
            Function::Sum => json!({"sum": {"field": field}}),
            Function::Percentile(p) => {
                json!({"percentiles": {"field": field, "percents": [f64::from(*p)], "keyed": false}})
            }
        })
    }

    /// The value in one result bucket (None: no hit in the bucket has the field).
    fn value(&self, bucket: &Value, count: u64) -> Option<f64> {
        match self {
            Metric::Count => Some(count as f64),
            Metric::Of { function, .. } => {
                if count == 0 {
                    return None;
                }
                let result = &bucket["value"];
                let value = match function {
                    Function::Percentile(_) => match &result["values"] {
                        Value::Array(values) => values.first().map(|v| &v["value"]),
                        Value::Object(values) => values.values().next(),
                        _ => None,
                    },
                    _ => Some(&result["value"]),
                };
                value.and_then(Value::as_f64).filter(|v| v.is_finite())
            }
        }
    }
}

/// An aggregation to run: the search (query and range), the bucket width, the metric and
/// the split.
#[derive(Clone, Debug)]
pub struct AggregateRequest {
    pub q: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Each bucket's width (milliseconds), checked by the caller against the range.
    pub interval_ms: i64,
    pub metric: Metric,
    /// A field of [`TERM_FIELDS`] to split by, with the number of top values.
    pub by: Option<(String, usize)>,
}

/// One bucket of a series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Point {
    /// The bucket's start; it covers up to the next bucket's start.
    pub start: DateTime<Utc>,
    /// The metric over the bucket's hits; null when none of them has the field (`count` is
    /// never null).
    #[schema(required = true)]
    pub value: Option<f64>,
    /// The hits in the bucket (those without the field included).
    pub count: u64,
}

/// The points of one value of `by` (or of every hit without `by`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Series {
    /// The value of the `by` field (`Dakar`); null without `by`, and for the other series.
    #[schema(required = true)]
    pub key: Option<String>,
    /// True for the series of every hit outside the top values (those without the field
    /// too): present with `by` when such hits exist.
    pub other: bool,
    /// Hits in the series over the whole range.
    pub count: u64,
    pub points: Vec<Point>,
}

/// The results of an aggregation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AggregateResults {
    /// Hits of the search over the range.
    pub total: u64,
    /// The series: without `by` one (key null); with it the top values by hits, most first,
    /// then the other series if any hit is outside them.
    pub series: Vec<Series>,
}

/// A query and time range, as `/api/search` builds them.
pub(crate) fn search_query(
    index: &EventIndex,
    q: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Box<dyn Query>, SearchError> {
    let parsed = parse_query(index, q).map_err(SearchError::Query)?;
    Ok(Box::new(BooleanQuery::new(vec![
        (Occur::Must, parsed),
        (
            Occur::Must,
            index.time_range(Bound::Included(from), Bound::Included(to)),
        ),
    ])))
}

/// A query tantivy refuses to run (found when building its weight) is the client's: a 400.
pub(crate) fn check_runnable(
    searcher: &tantivy::Searcher,
    query: &dyn Query,
    q: &str,
) -> Result<(), SearchError> {
    query
        .weight(EnableScoring::disabled_from_searcher(searcher))
        .map(drop)
        .map_err(|e| {
            SearchError::Query(QueryError {
                message: format!("invalid query: it cannot run: {e}"),
                detail: json!({"query": q, "reason": "cannot_run"}),
            })
        })
}

fn internal(what: &str, e: impl std::fmt::Display) -> SearchError {
    SearchError::Index(tantivy::TantivyError::InternalError(format!("{what}: {e}")))
}

impl EventIndex {
    /// Runs an aggregation: one pass over the hits, and a second for the other series when
    /// `by`'s top values leave hits out.
    pub fn aggregate(&self, request: &AggregateRequest) -> Result<AggregateResults, SearchError> {
        let started = std::time::Instant::now();
        let query = search_query(self, &request.q, request.from, request.to)?;
        let searcher = self.reader.searcher();
        check_runnable(&searcher, query.as_ref(), &request.q)?;
        let from_ms = request.from.timestamp_millis();
        let to_ms = request.to.timestamp_millis();
        let histogram = date_histogram(from_ms, to_ms, request.interval_ms, &request.metric);
        let mut series = Vec::new();
        let total;
        match &request.by {
            None => {
                let (count, result) = run(&searcher, query.as_ref(), json!({"h": histogram}))?;
                total = count;
                series.push(Series {
                    key: None,
                    other: false,
                    count,
                    points: points(&result["h"], &request.metric),
                });
            }
            Some((field, size)) => {
                let request_json = json!({"top": {
                    "terms": {"field": field, "size": size, "segment_size": 10_000},
                    "aggs": {"h": histogram},
                }});
                let (count, result) = run(&searcher, query.as_ref(), request_json)?;
                total = count;
                let mut keys = Vec::new();
                let mut in_top = 0;
                for bucket in result["top"]["buckets"].as_array().into_iter().flatten() {
                    let key = bucket["key"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| bucket["key"].to_string());
                    let hits = bucket["doc_count"].as_u64().unwrap_or_default();
                    in_top += hits;
                    keys.push(key.clone());
                    series.push(Series {
                        key: Some(key),
                        other: false,
                        count: hits,
                        points: points(&bucket["h"], &request.metric),
                    });
                }
                if in_top < total {
                    let field_handle = self
                        .index
                        .schema()
                        .get_field(field)
                        .map_err(|e| internal("by field", e))?;
                    let mut clauses: Vec<(Occur, Box<dyn Query>)> =
                        vec![(Occur::Must, query.box_clone())];
                    for key in &keys {
                        clauses.push((
                            Occur::MustNot,
                            Box::new(TermQuery::new(
                                Term::from_field_text(field_handle, key),
                                IndexRecordOption::Basic,
                            )),
                        ));
                    }
                    let others = BooleanQuery::new(clauses);
                    let (count, result) = run(&searcher, &others, json!({"h": histogram}))?;
                    series.push(Series {
                        key: None,
                        other: true,
                        count,
                        points: points(&result["h"], &request.metric),
                    });
                }
            }
        }
        metrics::histogram!(crate::store::SEARCH_DURATION).record(started.elapsed().as_secs_f64());
        Ok(AggregateResults { total, series })
    }
}

/// The date histogram of `metric` over `[from_ms, to_ms]` in buckets of `width` ms from
/// `from_ms` (as the search's histogram).
pub(crate) fn date_histogram(from_ms: i64, to_ms: i64, width: i64, metric: &Metric) -> Value {
    let width = width.max(1);
    let bounds = json!({"min": from_ms, "max": to_ms});
    let mut histogram = json!({"date_histogram": {
        "field": "timestamp",
        "fixed_interval": format!("{width}ms"),
        "offset": format!("{}ms", from_ms.rem_euclid(width)),
        "min_doc_count": 0,
        "hard_bounds": bounds,
        "extended_bounds": bounds,
    }});
    if let Some(value) = metric.request() {
        histogram["aggs"] = json!({ "value": value });
    }
    histogram
}

/// Runs `aggregations` (tantivy's request JSON) with a count of the hits.
pub(crate) fn run(
    searcher: &tantivy::Searcher,
    query: &dyn Query,
    aggregations: Value,
) -> Result<(u64, Value), SearchError> {
    let aggregations: Aggregations =
        serde_json::from_value(aggregations).map_err(|e| internal("aggregation request", e))?;
    let collector = AggregationCollector::from_aggs(aggregations, Default::default());
    let (count, results) = searcher
        .search(query, &(Count, collector))
        .map_err(SearchError::Index)?;
    let results = serde_json::to_value(results).map_err(|e| internal("aggregation results", e))?;
    Ok((count as u64, results))
}

fn points(histogram: &Value, metric: &Metric) -> Vec<Point> {
    histogram["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|bucket| {
            let count = bucket["doc_count"].as_u64().unwrap_or_default();
            Point {
                start: DateTime::from_timestamp_millis(
                    bucket["key"].as_f64().unwrap_or_default() as i64
                )
                .unwrap_or_default(),
                value: metric.value(bucket, count),
                count,
            }
        })
        .collect()
}

/// The most days `/api/daily` covers.
pub const MAX_DAYS: i64 = 366;
/// The most forecast events one daily view reads (newest first): each is a stored document
/// decoded with its points.
pub const MAX_FORECASTS_READ: usize = 5_000;
/// How far before the range a forecast may have been made and still cover a day of it.
pub const FORECAST_LOOKBACK_DAYS: i64 = 16;

/// Minimum, mean and maximum temperature of one day, and how many values they are of.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DailyFigures {
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    /// Observations (or forecast points) of the day.
    pub count: u64,
}

/// One UTC day of a region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Day {
    /// The day, `2026-11-25` (UTC, from midnight to midnight).
    pub date: String,
    /// The observed temperature (`temperature_c`); null on a day without observations.
    #[schema(required = true)]
    pub observed: Option<DailyFigures>,
    /// The forecast's points for that day, from the newest forecast event that has points in
    /// it; null where no forecast covers the day.
    #[schema(required = true)]
    pub forecast: Option<DailyFigures>,
}

/// A region's days, oldest first, every day of the range listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DailyRegion {
    pub region: String,
    pub days: Vec<Day>,
}

impl EventIndex {
    /// Daily figures of `regions` over the UTC days from `from`'s to `to`'s (both included;
    /// the caller bounds them to [`MAX_DAYS`]).
    pub fn daily(
        &self,
        regions: &[String],
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<DailyRegion>, SearchError> {
        use std::collections::BTreeMap;
        let start = from.and_time(chrono::NaiveTime::MIN).and_utc();
        let end = (to + chrono::Duration::days(1))
            .and_time(chrono::NaiveTime::MIN)
            .and_utc();
        let days: Vec<chrono::NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
        let searcher = self.reader.searcher();
        let term = |field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            ))
        };
        let of_regions = || -> Box<dyn Query> {
            Box::new(BooleanQuery::new(
                regions
                    .iter()
                    .map(|r| (Occur::Should, term(self.fields.region, r)))
                    .collect(),
            ))
        };
        // Observed: by region, by day (aligned on UTC midnight), the temperature's stats.
        let observations = BooleanQuery::new(vec![
            (Occur::Must, term(self.fields.kind, "observation")),
            (Occur::Must, of_regions()),
            (
                Occur::Must,
                self.time_range(Bound::Included(start), Bound::Excluded(end)),
            ),
        ]);
        let day_ms = 86_400_000;
        let request = json!({"region": {
            "terms": {"field": "region", "size": regions.len().max(1), "segment_size": 10_000},
            "aggs": {"day": {
                "date_histogram": {"field": "timestamp", "fixed_interval": format!("{day_ms}ms")},
                "aggs": {"t": {"stats": {"field": "temperature_c"}}},
            }},
        }});
        let (_, result) = run(&searcher, &observations, request)?;
        let mut observed: BTreeMap<(String, chrono::NaiveDate), DailyFigures> = BTreeMap::new();
        for region in result["region"]["buckets"].as_array().into_iter().flatten() {
            let name = region["key"].as_str().unwrap_or_default().to_string();
            for day in region["day"]["buckets"].as_array().into_iter().flatten() {
                let stats = &day["t"];
                let count = stats["count"].as_u64().unwrap_or_default();
                let (Some(min), Some(mean), Some(max)) = (
                    stats["min"].as_f64(),
                    stats["avg"].as_f64(),
                    stats["max"].as_f64(),
                ) else {
                    continue;
                };
                if count == 0 {
                    continue;
                }
                let Some(date) =
                    DateTime::from_timestamp_millis(day["key"].as_f64().unwrap_or_default() as i64)
                else {
                    continue;
                };
                observed.insert(
                    (name.clone(), date.date_naive()),
                    DailyFigures {
                        min,
                        mean,
                        max,
                        count,
                    },
                );
            }
        }

        // Forecast: the newest forecast with points on a day gives that day's figures.
        let forecasts = BooleanQuery::new(vec![
            (Occur::Must, term(self.fields.kind, "forecast")),
            (Occur::Must, of_regions()),
            (
                Occur::Must,
                self.time_range(
                    Bound::Included(start - chrono::Duration::days(FORECAST_LOOKBACK_DAYS)),
                    Bound::Excluded(end),
                ),
            ),
        ]);
        let newest = tantivy::collector::TopDocs::with_limit(MAX_FORECASTS_READ)
            .order_by_fast_field::<tantivy::DateTime>("timestamp", tantivy::Order::Desc);
        let found = searcher
            .search(&forecasts, &newest)
            .map_err(SearchError::Index)?;
        let mut forecast: BTreeMap<(String, chrono::NaiveDate), DailyFigures> = BTreeMap::new();
        for (_, address) in found {
            let doc: tantivy::TantivyDocument =
                searcher.doc(address).map_err(SearchError::Index)?;
            use tantivy::schema::Value as _;
            let Some(text) = doc.get_first(self.fields.event).and_then(|v| v.as_str()) else {
                continue;
            };
            let Ok(envelope) = windsock_core::event::Envelope::from_json_text(text) else {
                continue;
            };
            let windsock_core::event::Event::Forecast(f) = envelope.event else {
                continue;
            };
            let mut by_day: BTreeMap<chrono::NaiveDate, Vec<f64>> = BTreeMap::new();
            for point in &f.points {
                let date = point.timestamp.date_naive();
                if date >= from && date <= to && point.temperature_c.is_finite() {
                    by_day.entry(date).or_default().push(point.temperature_c);
                }
            }
            for (date, values) in by_day {
                forecast
                    .entry((f.region.clone(), date))
                    .or_insert_with(|| figures(&values));
            }
        }

        Ok(regions
            .iter()
            .map(|region| DailyRegion {
                region: region.clone(),
                days: days
                    .iter()
                    .map(|date| {
                        let key = (region.clone(), *date);
                        Day {
                            date: date.to_string(),
                            observed: observed.get(&key).cloned(),
                            forecast: forecast.get(&key).cloned(),
                        }
                    })
                    .collect(),
            })
            .collect())
    }
}

fn figures(values: &[f64]) -> DailyFigures {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    DailyFigures {
        min,
        mean: values.iter().sum::<f64>() / values.len() as f64,
        max,
        count: values.len() as u64,
    }
}
