//! Running searches: hits in order, the total, a date histogram and facet counts over all
//! hits in one pass; single events; an event's neighbours in time.

use crate::describe::describe;
use crate::query::{parse_query, QueryError};
use crate::schema::{to_tantivy, FACETS, TIMESTAMP_PRECISION};
use crate::store::EventIndex;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::ops::Bound;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::AggregationCollector;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, EnableScoring, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value as _};
use tantivy::{DocAddress, Order, Searcher, TantivyDocument, Term};
use utoipa::ToSchema;
use windsock_core::event::{Envelope, Observation};

/// How many values each facet lists.
pub const FACET_SIZE: u32 = 20;
/// How many values the `region` facet lists: every region (a deployment watches tens, not
/// thousands), so a page can tell a region without hits from one left off the list.
pub const REGION_FACET_SIZE: u32 = 1000;
/// The most buckets a histogram may have with an interval given by the client: a chart has
/// no use for more, and each is an entry of the aggregation and of the answer.
pub const MAX_BUCKETS: i64 = 2000;

/// The order of the hits: `newest`, `oldest`, `relevance`, or by a numeric field
/// (`temperature_c:desc`). Written and read as that text (see [`Sort::parse`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum Sort {
    #[default]
    Newest,
    Oldest,
    /// By score (BM25), best first.
    Relevance,
    /// By one of the observation metrics ([`Observation::METRICS`], fast f64 fields), events
    /// without it last, then newest first among equal values.
    Field {
        field: &'static str,
        descending: bool,
    },
}

/// Why a `sort` was refused: the text, and a sentence naming what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortError {
    pub value: String,
    pub reason: String,
}

impl Sort {
    /// The words `newest`, `oldest` and `relevance` (`desc`, `asc`, `score` as aliases), or
    /// `FIELD:asc|desc` for a numeric field ([`Observation::METRICS`]) or `timestamp` (the same
    /// as `newest`/`oldest`); the field alone sorts descending. Anything else is an error naming
    /// the field or the order.
    pub fn parse(text: &str) -> Result<Sort, SortError> {
        let refuse = |reason: String| SortError {
            value: text.to_string(),
            reason,
        };
        match text {
            "newest" | "desc" => return Ok(Sort::Newest),
            "oldest" | "asc" => return Ok(Sort::Oldest),
            "relevance" | "score" => return Ok(Sort::Relevance),
            _ => {}
        }
        let (name, order) = text.split_once(':').unwrap_or((text, "desc"));
        let descending = match order {
            "desc" => true,
            "asc" => false,
            other => {
                return Err(refuse(format!(
                    "the order `{other}` is neither `asc` nor `desc`"
                )))
            }
        };
        // The time is a field too: `timestamp:asc` is `oldest`.
        if name == "timestamp" {
            return Ok(if descending {
                Sort::Newest
            } else {
                Sort::Oldest
            });
        }
        let field = Observation::METRICS
            .iter()
            .copied()
            .find(|m| *m == name)
            .ok_or_else(|| {
                refuse(format!(
                    "`{name}` is not a field to sort by (`timestamp` or a numeric field: {})",
                    Observation::METRICS.join(", ")
                ))
            })?;
        Ok(Sort::Field { field, descending })
    }
}

impl std::fmt::Display for Sort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sort::Newest => f.write_str("newest"),
            Sort::Oldest => f.write_str("oldest"),
            Sort::Relevance => f.write_str("relevance"),
            Sort::Field { field, descending } => {
                write!(f, "{field}:{}", if *descending { "desc" } else { "asc" })
            }
        }
    }
}

impl From<Sort> for String {
    fn from(sort: Sort) -> String {
        sort.to_string()
    }
}

// By hand, not derived: a derive would borrow the field name (`&'static str`) from the
// input, which only a `'static` input could give.
impl<'de> Deserialize<'de> for Sort {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Sort, D::Error> {
        let text = String::deserialize(deserializer)?;
        Sort::parse(&text).map_err(|e| serde::de::Error::custom(e.reason))
    }
}

impl utoipa::PartialSchema for Sort {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(format!(
                "`newest`, `oldest`, `relevance` (best score first), or `FIELD:asc` / \
                 `FIELD:desc` for a numeric field ({}), events without it last \
                 (`timestamp:asc` and `timestamp:desc` are `oldest` and `newest`)",
                Observation::METRICS.join(", ")
            )))
            .pattern(Some("^(newest|oldest|relevance|[a-z_]+:(asc|desc))$"))
            .examples(["newest", "temperature_c:desc"])
            .into()
    }
}

impl ToSchema for Sort {}

#[derive(Clone, Debug)]
pub struct SearchRequest {
    pub q: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub limit: usize,
    pub offset: usize,
    pub sort: Sort,
    /// Whether to compute the histogram and facets (the API always does; a caller that only
    /// wants hits saves the work).
    pub aggregate: bool,
}

/// An indexed event: the fields every event has, and the event itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Hit {
    pub id: String,
    pub timestamp: DateTime<Utc>,
    pub kind: String,
    /// Null for an event about no region.
    #[schema(required = true)]
    pub region: Option<String>,
    pub level: String,
    pub message: String,
    /// The envelope as published.
    pub event: Value,
}

/// A histogram bucket: the hits from `start` to the next bucket's start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub count: u64,
}

/// A date histogram of the hits over the range searched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Histogram {
    /// Each bucket's width, in milliseconds.
    pub interval_ms: i64,
    pub buckets: Vec<Bucket>,
}

/// A value of a facet and how many hits have it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FacetValue {
    pub value: String,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchResults {
    pub total: usize,
    pub hits: Vec<Hit>,
    pub histogram: Histogram,
    /// For each of `kind`, `region`, `level`, `service`: its most frequent values over all hits
    /// (20 of each; every region, up to 1,000), most hits first.
    pub facets: BTreeMap<String, Vec<FacetValue>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{}", .0.message)]
    Query(QueryError),
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
}

/// A histogram bucket width for a range: about 75 buckets, in a width people read easily
/// (consecutive candidates differ by at most 2x, so one always gives 50 to 100 buckets).
pub fn bucket_width_ms(range_ms: i64) -> i64 {
    const S: i64 = 1000;
    const M: i64 = 60 * S;
    const H: i64 = 60 * M;
    const D: i64 = 24 * H;
    const NICE: &[i64] = &[
        S,
        2 * S,
        5 * S,
        10 * S,
        15 * S,
        20 * S,
        30 * S,
        M,
        2 * M,
        3 * M,
        5 * M,
        10 * M,
        15 * M,
        20 * M,
        30 * M,
        H,
        2 * H,
        3 * H,
        4 * H,
        6 * H,
        8 * H,
        12 * H,
        D,
        2 * D,
        3 * D,
        4 * D,
        7 * D,
        14 * D,
        28 * D,
        56 * D,
        112 * D,
        224 * D,
        448 * D,
    ];
    let range_ms = range_ms.max(1);
    NICE.iter()
        .copied()
        .filter(|w| (50..=100).contains(&(range_ms / w)))
        .min_by_key(|w| (range_ms / w - 75).abs())
        .unwrap_or_else(|| (range_ms / 75).max(1))
}

/// The times a search can span: tantivy's dates (nanoseconds in an `i64`, 1677-09-21 to
/// 2262-04-11), taken in to whole years so the histogram's bucket arithmetic, in nanoseconds
/// too, stays inside them. Beyond them a time would overflow; no event is stored there.
pub fn searchable(at: DateTime<Utc>) -> DateTime<Utc> {
    let first = DateTime::from_timestamp(-9_183_024_000, 0).unwrap_or_default(); // 1679-01-01
    let last = DateTime::from_timestamp(9_183_110_400, 0).unwrap_or_default(); // 2261-01-01
    at.clamp(first, last)
}

impl EventIndex {
    pub fn search(&self, request: &SearchRequest) -> Result<SearchResults, SearchError> {
        self.search_bucketed(request, None)
    }

    /// [`EventIndex::search`] with the histogram's bucket width given (milliseconds, within
    /// [`MAX_BUCKETS`] over the range: the caller checks), or chosen by [`bucket_width_ms`].
    pub fn search_bucketed(
        &self,
        request: &SearchRequest,
        interval_ms: Option<i64>,
    ) -> Result<SearchResults, SearchError> {
        let started = std::time::Instant::now();
        let results = self.run_search(request, interval_ms)?;
        metrics::histogram!(crate::store::SEARCH_DURATION).record(started.elapsed().as_secs_f64());
        Ok(results)
    }

    fn run_search(
        &self,
        request: &SearchRequest,
        interval_ms: Option<i64>,
    ) -> Result<SearchResults, SearchError> {
        let request = &SearchRequest {
            from: searchable(request.from),
            to: searchable(request.to),
            ..request.clone()
        };
        let parsed = parse_query(self, &request.q).map_err(SearchError::Query)?;
        let query = BooleanQuery::new(vec![
            (Occur::Must, parsed),
            (
                Occur::Must,
                self.time_range(Bound::Included(request.from), Bound::Included(request.to)),
            ),
        ]);
        let searcher = self.reader.searcher();
        runnable(&searcher, &query, &request.q)?;
        let from_ms = request.from.timestamp_millis();
        let to_ms = request.to.timestamp_millis();
        let width = interval_ms
            .filter(|w| *w > 0)
            .unwrap_or_else(|| bucket_width_ms(to_ms - from_ms));
        let aggregations = request
            .aggregate
            .then(|| self.aggregations(from_ms, to_ms, width))
            .transpose()?;
        // TopDocs refuses a limit of 0; ask for one and drop it.
        let top = TopDocs::with_limit(request.limit.max(1)).and_offset(request.offset);
        let (total, addresses, aggregated) = match request.sort {
            Sort::Relevance => {
                let (total, top, aggs) =
                    searcher.search(&query, &(Count, top.order_by_score(), aggregations))?;
                (
                    total,
                    top.into_iter().map(|(_, a)| a).collect::<Vec<_>>(),
                    aggs,
                )
            }
            Sort::Field { field, descending } => {
                let order = if descending { Order::Desc } else { Order::Asc };
                // Ties (a whole region at 25.0 °C) newest first, as a page without a sort.
                let by_field = top.order_by((
                    (
                        tantivy::collector::sort_key::SortByStaticFastValue::<f64>::for_field(
                            field,
                        ),
                        order,
                    ),
                    (
                        tantivy::collector::sort_key::SortByStaticFastValue::<
                            tantivy::DateTime,
                        >::for_field("timestamp"),
                        Order::Desc,
                    ),
                ));
                let (total, top, aggs) =
                    searcher.search(&query, &(Count, by_field, aggregations))?;
                (total, top.into_iter().map(|(_, a)| a).collect(), aggs)
            }
            sort => {
                let order = if sort == Sort::Oldest {
                    Order::Asc
                } else {
                    Order::Desc
                };
                let by_time = top.order_by_fast_field::<tantivy::DateTime>("timestamp", order);
                let (total, top, aggs) =
                    searcher.search(&query, &(Count, by_time, aggregations))?;
                (total, top.into_iter().map(|(_, a)| a).collect(), aggs)
            }
        };
        let hits = addresses
            .into_iter()
            .take(request.limit)
            .map(|a| self.hit(&searcher, a))
            .collect::<Result<_, _>>()?;
        let aggregated = match aggregated {
            Some(results) => serde_json::to_value(results).map_err(|e| {
                tantivy::TantivyError::InternalError(format!("aggregation results: {e}"))
            })?,
            None => Value::Null,
        };
        Ok(SearchResults {
            total,
            hits,
            histogram: histogram(&aggregated["histogram"], width),
            facets: FACETS
                .iter()
                .map(|f| (f.to_string(), facet_values(&aggregated[*f])))
                .collect(),
        })
    }

    fn aggregations(
        &self,
        from_ms: i64,
        to_ms: i64,
        width: i64,
    ) -> Result<AggregationCollector, tantivy::TantivyError> {
        let bounds = json!({"min": from_ms, "max": to_ms});
        let mut request = json!({
            "histogram": {"date_histogram": {
                "field": "timestamp",
                "fixed_interval": format!("{width}ms"),
                // The grid starts at `from`, not at the epoch.
                "offset": format!("{}ms", from_ms.rem_euclid(width)),
                "min_doc_count": 0,
                "hard_bounds": bounds,
                "extended_bounds": bounds,
            }},
        });
        for facet in FACETS {
            // segment_size above any facet's cardinality keeps the counts exact.
            let size = if facet == "region" {
                REGION_FACET_SIZE
            } else {
                FACET_SIZE
            };
            request[facet] =
                json!({"terms": {"field": facet, "size": size, "segment_size": 10_000}});
        }
        let aggregations: Aggregations = serde_json::from_value(request).map_err(|e| {
            tantivy::TantivyError::InvalidArgument(format!("aggregation request: {e}"))
        })?;
        Ok(AggregationCollector::from_aggs(
            aggregations,
            Default::default(),
        ))
    }

    /// Events whose timestamp lies within the bounds.
    pub fn time_range(
        &self,
        from: Bound<DateTime<Utc>>,
        to: Bound<DateTime<Utc>>,
    ) -> Box<dyn Query> {
        let term = |t: DateTime<Utc>| {
            Term::from_field_date(
                self.fields.timestamp,
                to_tantivy(t).truncate(TIMESTAMP_PRECISION),
            )
        };
        Box::new(RangeQuery::new(from.map(term), to.map(term)))
    }

    fn hit(&self, searcher: &Searcher, address: DocAddress) -> Result<Hit, tantivy::TantivyError> {
        let doc: TantivyDocument = searcher.doc(address)?;
        let event: Value = doc
            .get_first(self.fields.event)
            .and_then(|v| v.as_str())
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or(Value::Null);
        let envelope: Envelope = serde_json::from_value(event.clone()).map_err(|e| {
            tantivy::TantivyError::InternalError(format!("a stored event does not decode: {e}"))
        })?;
        let description = describe(&envelope.event);
        Ok(Hit {
            id: envelope.id,
            timestamp: envelope.event.timestamp(),
            kind: description.kind.to_string(),
            region: description.region,
            level: description.level.to_string(),
            message: description.message,
            event,
        })
    }

    /// The event with this id, if indexed.
    pub fn get(&self, id: &str) -> Result<Option<Hit>, tantivy::TantivyError> {
        let searcher = self.reader.searcher();
        let query = TermQuery::new(
            Term::from_field_text(self.fields.id, id),
            IndexRecordOption::Basic,
        );
        let found = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
        found
            .into_iter()
            .next()
            .map(|(_, a)| self.hit(&searcher, a))
            .transpose()
    }

    /// Up to `before` events just before `anchor` and `after` just after it, in time order
    /// (ties broken by id, so every event has one place in the sequence).
    pub fn context(
        &self,
        anchor: &Hit,
        before: usize,
        after: usize,
    ) -> Result<(Vec<Hit>, Vec<Hit>), tantivy::TantivyError> {
        self.context_matching(anchor, before, after, None)
    }

    /// [`EventIndex::context`] among the events `filter` matches (a search's query, so the
    /// surrounding events keep its filters); the anchor itself need not match.
    pub fn context_matching(
        &self,
        anchor: &Hit,
        before: usize,
        after: usize,
        filter: Option<&dyn Query>,
    ) -> Result<(Vec<Hit>, Vec<Hit>), tantivy::TantivyError> {
        let key = |h: &Hit| (h.timestamp, h.id.clone());
        let at = anchor.timestamp;
        // Every event of that instant, to order them by id: counted first, since the
        // collector sets aside memory for as many hits as it is asked for.
        let instant = self.filtered(
            self.time_range(Bound::Included(at), Bound::Included(at)),
            filter,
        );
        let at_instant = self.reader.searcher().search(instant.as_ref(), &Count)?;
        let same_instant = self.in_range(
            Bound::Included(at),
            Bound::Included(at),
            at_instant,
            Order::Asc,
            filter,
        )?;
        let mut earlier = self.in_range(
            Bound::Unbounded,
            Bound::Excluded(at),
            before,
            Order::Desc,
            filter,
        )?;
        let mut later = self.in_range(
            Bound::Excluded(at),
            Bound::Unbounded,
            after,
            Order::Asc,
            filter,
        )?;
        for hit in same_instant {
            if key(&hit) < key(anchor) {
                earlier.push(hit);
            } else if key(&hit) > key(anchor) {
                later.push(hit);
            }
        }
        earlier.sort_by_key(|h| std::cmp::Reverse(key(h)));
        earlier.truncate(before);
        earlier.reverse();
        later.sort_by_key(key);
        later.truncate(after);
        Ok((earlier, later))
    }

    /// `query`, and `filter` too when there is one.
    fn filtered(&self, query: Box<dyn Query>, filter: Option<&dyn Query>) -> Box<dyn Query> {
        match filter {
            Some(filter) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, query),
                (Occur::Must, filter.box_clone()),
            ])),
            None => query,
        }
    }

    fn in_range(
        &self,
        from: Bound<DateTime<Utc>>,
        to: Bound<DateTime<Utc>>,
        limit: usize,
        order: Order,
        filter: Option<&dyn Query>,
    ) -> Result<Vec<Hit>, tantivy::TantivyError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let limit = limit.min(searcher.num_docs() as usize).max(1);
        let top =
            TopDocs::with_limit(limit).order_by_fast_field::<tantivy::DateTime>("timestamp", order);
        let found = searcher.search(
            self.filtered(self.time_range(from, to), filter).as_ref(),
            &top,
        )?;
        found
            .into_iter()
            .map(|(_, a)| self.hit(&searcher, a))
            .collect()
    }

    /// The newest observation of a region.
    pub fn last_observation(&self, region: &str) -> Result<Option<Hit>, tantivy::TantivyError> {
        let searcher = self.reader.searcher();
        let term = |field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            ))
        };
        let query = BooleanQuery::new(vec![
            (Occur::Must, term(self.fields.kind, "observation")),
            (Occur::Must, term(self.fields.region, region)),
        ]);
        let top = TopDocs::with_limit(1)
            .order_by_fast_field::<tantivy::DateTime>("timestamp", Order::Desc);
        let found = searcher.search(&query, &top)?;
        found
            .into_iter()
            .next()
            .map(|(_, a)| self.hit(&searcher, a))
            .transpose()
    }

    /// Documents in the index (after deletes).
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A query tantivy cannot run (an exists query on a field without a column, say) fails in
/// building its weight, before any segment is read: that is the client's query, a 400, where
/// a failure while reading the index stays a 500. `parse_query` refuses the cases known; this
/// catches the rest.
fn runnable(searcher: &Searcher, query: &dyn Query, q: &str) -> Result<(), SearchError> {
    query
        .weight(EnableScoring::disabled_from_searcher(searcher))
        .map(drop)
        .map_err(|e| SearchError::Query(cannot_run(q, e)))
}

/// tantivy refused to run the query: its words, as a 400 about the query.
fn cannot_run(q: &str, error: tantivy::TantivyError) -> QueryError {
    let reason = match &error {
        tantivy::TantivyError::SchemaError(reason)
        | tantivy::TantivyError::InvalidArgument(reason) => reason.clone(),
        other => other.to_string(),
    };
    QueryError {
        message: format!("invalid query: it cannot run: {reason}"),
        detail: json!({"query": q, "reason": "cannot_run"}),
    }
}

fn histogram(result: &Value, width: i64) -> Histogram {
    let buckets = result["buckets"]
        .as_array()
        .map(|buckets| {
            buckets
                .iter()
                .map(|b| Bucket {
                    start: DateTime::from_timestamp_millis(
                        b["key"].as_f64().unwrap_or_default() as i64
                    )
                    .unwrap_or_default(),
                    count: b["doc_count"].as_u64().unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    Histogram {
        interval_ms: width,
        buckets,
    }
}

fn facet_values(result: &Value) -> Vec<FacetValue> {
    result["buckets"]
        .as_array()
        .map(|buckets| {
            buckets
                .iter()
                .map(|b| FacetValue {
                    value: b["key"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| b["key"].to_string()),
                    count: b["doc_count"].as_u64().unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::query::ExistsQuery;

    #[test]
    fn a_query_tantivy_cannot_run_is_the_clients_error() {
        let index = EventIndex::in_ram().unwrap();
        let searcher = index.reader.searcher();
        // What `id:*` became before `parse_query` refused it by name: a 500 then.
        let exists = ExistsQuery::new("id".into(), false);
        match runnable(&searcher, &exists, "id:*") {
            Err(SearchError::Query(e)) => {
                assert!(e.message.contains("not a fast field"), "{}", e.message);
                assert_eq!(e.detail["reason"], "cannot_run");
            }
            other => panic!("{other:?}"),
        }
        let kind = ExistsQuery::new("kind".into(), false);
        assert!(runnable(&searcher, &kind, "kind:*").is_ok());
    }
}
