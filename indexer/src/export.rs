//! Exporting every hit of a search (`/api/export`), oldest first, as CSV or NDJSON.
//!
//! The hits are read from one searcher (a snapshot: the count said up front is what is
//! streamed, whatever is committed meanwhile) in windows of [`FETCH`] addresses sorted by
//! time: the next window starts after the last one's last instant, and every hit of that
//! instant is read at once, so hits sharing a timestamp are neither repeated nor skipped.
//! Every [`PAGE`] hits make one chunk handed to `emit`, which the HTTP side sends through a
//! bounded channel: memory is a window of addresses (sorted by tantivy's collector: about
//! 8 MB) and a few chunks whatever the count, and a client that stops reading stops the export.

use crate::aggregate::{check_runnable, search_query};
use crate::describe::describe;
use crate::search::SearchError;
use crate::store::EventIndex;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use std::collections::BTreeSet;
use std::ops::Bound;
use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query};
use tantivy::schema::Value as _;
use tantivy::{DocAddress, Order, Searcher, TantivyDocument};
use windsock_core::event::{Envelope, Event, Observation};

/// Hits sent at a time: one chunk of the body.
pub const PAGE: usize = 2_000;
/// Hits whose addresses are read at a time (sorted by time from every hit after the last
/// read). Each read visits every hit left, so small windows make a large export quadratic
/// (windows of 2,000 took minutes over 7 million hits, 50,000 took 23 s); each costs memory
/// (tantivy's top-N collector per segment: about 8 MB at 20,000, 18 MB at 50,000, measured).
pub const FETCH: usize = 20_000;

/// The CSV columns before the metrics; `attributes` (JSON) comes after them.
pub const CSV_COLUMNS: [&str; 8] = [
    "id",
    "timestamp",
    "kind",
    "region",
    "level",
    "service",
    "source",
    "message",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Ndjson,
}

impl ExportFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Ndjson => "application/x-ndjson",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Ndjson => "ndjson",
        }
    }
}

/// A search ready to export: its hits counted, on the searcher that will read them.
pub struct Export {
    /// Hits of the search.
    pub total: u64,
    /// Hits that will be streamed: `total`, at most the maximum.
    pub exported: u64,
    format: ExportFormat,
    searcher: Searcher,
    query: Box<dyn Query>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    index: EventIndex,
    fetch: usize,
}

impl Export {
    /// Reads `fetch` addresses at a time instead of [`FETCH`] (tests of the windows' edges).
    pub fn with_fetch(mut self, fetch: usize) -> Self {
        self.fetch = fetch.max(1);
        self
    }

    pub fn truncated(&self) -> bool {
        self.exported < self.total
    }
}

impl EventIndex {
    /// Parses and counts the search `q` over `[from, to]` (a 400 as `/api/search` gives for
    /// a query that is not one).
    pub fn export(
        &self,
        q: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        format: ExportFormat,
        max_events: u64,
    ) -> Result<Export, SearchError> {
        let query = search_query(self, q, from, to)?;
        let searcher = self.reader.searcher();
        check_runnable(&searcher, query.as_ref(), q)?;
        let total = searcher
            .search(query.as_ref(), &Count)
            .map_err(SearchError::Index)? as u64;
        Ok(Export {
            total,
            exported: total.min(max_events),
            format,
            searcher,
            query,
            from,
            to,
            index: self.clone(),
            fetch: FETCH,
        })
    }
}

impl Export {
    /// Writes every hit (up to `exported`), oldest first, a page a chunk, into `emit`; stops
    /// early when `emit` says the reader is gone (false). Blocking: run it off async threads.
    pub fn write(self, mut emit: impl FnMut(Bytes) -> bool) -> Result<(), tantivy::TantivyError> {
        let mut out = Vec::with_capacity(PAGE * 512);
        if self.format == ExportFormat::Csv {
            let mut header: Vec<&str> = CSV_COLUMNS.to_vec();
            header.extend(Observation::METRICS.iter().copied());
            header.push("attributes");
            write_csv_row(&mut out, header.iter().map(|s| s.to_string()));
        }
        let mut written = 0u64;
        let mut in_chunk = 0;
        let mut lower = Bound::Included(self.from);
        'pages: while written < self.exported {
            let page = self.page(lower)?;
            let Some(&(last, _)) = page.last() else {
                break;
            };
            let complete = page.len() < self.fetch;
            let mut addresses: Vec<DocAddress> = if complete {
                page.iter().map(|(_, a)| *a).collect()
            } else {
                page.iter()
                    .filter(|(at, _)| *at < last)
                    .map(|(_, a)| *a)
                    .collect()
            };
            if !complete {
                // Every hit of the last instant, which the page may have cut in the middle.
                let instant = BooleanQuery::new(vec![
                    (Occur::Must, self.query.box_clone()),
                    (
                        Occur::Must,
                        self.index.time_range(
                            Bound::Included(from_tantivy(last)),
                            Bound::Included(from_tantivy(last)),
                        ),
                    ),
                ]);
                let at_instant: BTreeSet<DocAddress> = self
                    .searcher
                    .search(&instant, &DocSetCollector)?
                    .into_iter()
                    .collect();
                addresses.extend(at_instant);
            }
            for address in addresses {
                if written >= self.exported {
                    break;
                }
                let doc: TantivyDocument = self.searcher.doc(address)?;
                let Some(json) = doc
                    .get_first(self.index.fields.event)
                    .and_then(|v| v.as_str())
                else {
                    continue;
                };
                match self.format {
                    ExportFormat::Ndjson => {
                        out.extend_from_slice(json.as_bytes());
                        out.push(b'\n');
                    }
                    ExportFormat::Csv => csv_line(&mut out, json),
                }
                written += 1;
                in_chunk += 1;
                if in_chunk == PAGE {
                    if !emit(Bytes::from(std::mem::take(&mut out))) {
                        return Ok(());
                    }
                    out.reserve(PAGE * 512);
                    in_chunk = 0;
                }
            }
            if complete {
                break 'pages;
            }
            lower = Bound::Excluded(from_tantivy(last));
        }
        if self.format == ExportFormat::Ndjson && self.truncated() {
            out.extend_from_slice(
                serde_json::json!({
                    "truncated": true,
                    "total": self.total,
                    "exported": written,
                })
                .to_string()
                .as_bytes(),
            );
            out.push(b'\n');
        }
        if !out.is_empty() {
            emit(Bytes::from(out));
        }
        Ok(())
    }

    /// The next `fetch` hits from `lower`, oldest first, with their timestamps.
    fn page(
        &self,
        lower: Bound<DateTime<Utc>>,
    ) -> Result<Vec<(tantivy::DateTime, DocAddress)>, tantivy::TantivyError> {
        let query = BooleanQuery::new(vec![
            (Occur::Must, self.query.box_clone()),
            (
                Occur::Must,
                self.index.time_range(lower, Bound::Included(self.to)),
            ),
        ]);
        let top = TopDocs::with_limit(self.fetch)
            .order_by_fast_field::<tantivy::DateTime>("timestamp", Order::Asc);
        // Every hit has a timestamp (the range query matched on it).
        Ok(self
            .searcher
            .search(&query, &top)?
            .into_iter()
            .filter_map(|(at, address)| at.map(|at| (at, address)))
            .collect())
    }
}

fn from_tantivy(at: tantivy::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.into_timestamp_micros()).unwrap_or_default()
}

/// One CSV row of a stored event: the fixed columns, the metrics, and every other attribute
/// as one JSON object.
fn csv_line(out: &mut Vec<u8>, json: &str) {
    let Ok(envelope) = Envelope::from_json_text(json) else {
        return;
    };
    let d = describe(&envelope.event);
    let observation = match &envelope.event {
        Event::Observation(o) => Some(o),
        _ => None,
    };
    let region = d.region.clone().unwrap_or_default();
    let mut attributes: serde_json::Map<String, Value> =
        serde_json::from_str(json).unwrap_or_default();
    attributes.remove("id");
    attributes.remove("schema_version");
    let time_key = crate::schema::TIME_ATTRIBUTES
        .iter()
        .find(|(kind, _)| *kind == d.kind)
        .map(|(_, key)| *key);
    // What a column holds already is left out of `attributes`.
    attributes.retain(|key, value| {
        let same_text = |column: &str| value.as_str() == Some(column);
        match key.as_str() {
            k if Some(k) == time_key => false,
            "kind" => !same_text(d.kind),
            "region" => !same_text(&region),
            "level" => !same_text(d.level),
            "service" => !same_text(&d.service),
            "source" => !same_text(&d.source),
            "message" => !same_text(&d.message),
            metric => {
                !(observation.is_some()
                    && Observation::METRICS.contains(&metric)
                    && value.is_number())
            }
        }
    });
    let mut row = vec![
        envelope.id.clone(),
        envelope
            .event
            .timestamp()
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        d.kind.to_string(),
        defused(&region),
        d.level.to_string(),
        defused(&d.service),
        defused(&d.source),
        defused(&d.message),
    ];
    for metric in Observation::METRICS {
        row.push(
            observation
                .and_then(|o| o.metric(metric))
                .filter(|v| v.is_finite())
                .map(|v| v.to_string())
                .unwrap_or_default(),
        );
    }
    row.push(if attributes.is_empty() {
        String::new()
    } else {
        Value::Object(attributes).to_string()
    });
    write_csv_row(out, row.into_iter());
}

/// A text cell a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, tab or carriage
/// return first) gets a `'` in front, as OWASP advises; numbers and times are left as
/// they are (a negative temperature stays a number).
fn defused(text: &str) -> String {
    match text.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{text}"),
        _ => text.to_string(),
    }
}

fn write_csv_row(out: &mut Vec<u8>, cells: impl Iterator<Item = String>) {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    // Writing to a Vec cannot fail.
    let _ = writer.write_record(cells.collect::<Vec<_>>());
    let _ = writer.flush();
}
