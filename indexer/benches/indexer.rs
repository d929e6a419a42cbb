//! The indexer's benchmark, on the same synthetic events (observations and logs, with some
//! alerts and dead letters):
//!
//! 1. ingest through the bus into a committed index, beside raw tantivy indexing of the same
//!    documents in this process (decode, build the document, add, one commit): the ratio;
//! 2. search latency p50/p99 of a fixed mix (term, phrase, range, term + time range with
//!    histogram and facets), beside SQLite FTS5 answering the same queries on the same events,
//!    at each index size asked for;
//! 3. index size on disk per million events, and the indexer's peak memory;
//! 4. aggregations (`/api/aggregate`: a metric per bucket, split by region) p50/p99 beside
//!    the same search without aggregation, and an export's rate (events/s).
//!
//! - `WINDSOCK_BENCH_EVENTS`: events ingested (default 1,000,000);
//! - `WINDSOCK_BENCH_ROUNDS`: ingest rounds, raw then pipeline each time (default 3; the
//!   medians are reported, since a shared machine's speed drifts between runs);
//! - `WINDSOCK_BENCH_SEARCH_SIZES`: index sizes to search (default `1000000,10000000`; the
//!   size ingested reuses that index, others are built from the same generator);
//! - `WINDSOCK_BENCH_SEARCHES`: runs of each query (default 50; 0 skips the search part);
//! - `WINDSOCK_BENCH_SQLITE`: 0 skips the SQLite FTS5 baseline (to rerun tantivy alone);
//! - `WINDSOCK_INDEXER__*` and `WINDSOCK_BUS__*` override the indexer's settings, as in
//!   `windsock` itself, to try them.
//!
//! Run: `cargo bench -p windsock-indexer` (about 10 minutes; most of it loading 10 million
//! events into SQLite), or `WINDSOCK_BENCH_SEARCH_SIZES=1000000 cargo bench -p windsock-indexer`.

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};
use tokio_util::sync::CancellationToken;
use windsock_core::bus::{EmbeddedBus, SharedBus, Topic};
use windsock_core::config::Config;
use windsock_core::event::{Envelope, Event};
use windsock_indexer::describe::describe;
use windsock_indexer::schema::Fields;
use windsock_indexer::search::{bucket_width_ms, SearchRequest, Sort};
use windsock_indexer::synthetic::{benchmark_start as start, BENCHMARK_SPAN_DAYS as SPAN_DAYS};
use windsock_indexer::{synthetic, EventIndex, Indexer};

// The allocator the `windsock` binary runs with, so the rates are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn env_numbers(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .split(',')
            .filter_map(|n| n.trim().replace('_', "").parse().ok())
            .collect(),
        Err(_) => default.to_vec(),
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The events of an index of `n`: the same generator, seed and span at every size.
fn events(n: usize) -> impl Iterator<Item = Envelope> {
    synthetic::benchmark_mix(n)
}

/// The indexer's settings: defaults, or what `WINDSOCK_INDEXER__*` / `WINDSOCK_BUS__*` say.
fn config(dir: &Path) -> Config {
    // The events are from October 2026 (the same at every run): the default retention of 30
    // days would have a sweep delete them in the middle of a slow round, and the round wait
    // for them forever. Kept for a century unless the environment says otherwise.
    let century = (
        "WINDSOCK_INDEXER__RETENTION".to_string(),
        "36500d".to_string(),
    );
    let config = Config::load_with_env(
        None,
        std::iter::once(century).chain(std::env::vars().filter(|(k, _)| {
            k.starts_with("WINDSOCK_INDEXER__") || k.starts_with("WINDSOCK_BUS__")
        })),
    )
    .expect("the environment's config is valid");
    Config {
        data_dir: dir.to_path_buf(),
        ..config
    }
}

fn main() {
    let n = env_number("WINDSOCK_BENCH_EVENTS", 1_000_000);
    let rounds = env_number("WINDSOCK_BENCH_ROUNDS", 3).max(1);
    let searches = env_number("WINDSOCK_BENCH_SEARCHES", 50);
    let with_sqlite = env_number("WINDSOCK_BENCH_SQLITE", 1) != 0;
    let sizes = env_numbers("WINDSOCK_BENCH_SEARCH_SIZES", &[1_000_000, 10_000_000]);
    let settings = config(Path::new(".")).indexer;
    println!(
        "windsock-indexer benchmark: {n} events over {SPAN_DAYS} days, {} cores; commit every {} documents or {:?}",
        cores(),
        settings.commit_docs,
        settings.commit_interval,
    );

    // Only the wire form is kept: ~0.4 KB an event.
    let payloads: Vec<(Topic, String, Bytes)> = events(n)
        .map(|e| (Topic::of(&e.event), e.event.key(), Bytes::from(e.to_json())))
        .collect();
    let mean_size = payloads.iter().map(|p| p.2.len()).sum::<usize>() / n.max(1);
    println!("  mean event size on the wire: {mean_size} bytes");

    // Where a raw document's time goes before tantivy sees it.
    let started = Instant::now();
    let fields = EventIndex::in_ram().unwrap().fields;
    for (_, _, payload) in &payloads {
        std::hint::black_box(document(&fields, payload));
    }
    let building = payloads.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for (_, _, payload) in &payloads {
        std::hint::black_box(Envelope::from_json(payload).unwrap());
    }
    let decoding = payloads.len() as f64 / started.elapsed().as_secs_f64();
    println!("  one thread decodes {decoding:.0} events/s, decodes and builds documents of {building:.0} events/s");

    println!("\n## ingest ({rounds} rounds)");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut raws, mut pipelines, mut ratios, mut peaks) = (vec![], vec![], vec![], vec![]);
    let (mut raw_cpus, mut pipeline_cpus) = (vec![], vec![]);
    let mut last = None;
    for round in 1..=rounds {
        let raw_dir = tempfile::tempdir().unwrap();
        let (raw, raw_cpu) = raw_tantivy(&payloads, raw_dir.path());
        drop(raw_dir);
        let dir = tempfile::tempdir().unwrap();
        let (pipeline, pipeline_cpu, peak_mb, index) =
            runtime.block_on(through_the_bus(&payloads, dir.path()));
        println!(
            "  round {round}: raw tantivy {raw:>7.0} events/s, bus -> indexer -> committed index {pipeline:>7.0} events/s, ratio {:.2}",
            pipeline / raw
        );
        if let (Some(raw_cpu), Some(pipeline_cpu)) = (raw_cpu, pipeline_cpu) {
            println!(
                "           CPU per event: raw {raw_cpu:.1} µs, pipeline {pipeline_cpu:.1} µs"
            );
            raw_cpus.push(raw_cpu);
            pipeline_cpus.push(pipeline_cpu);
        }
        raws.push(raw);
        pipelines.push(pipeline);
        ratios.push(pipeline / raw);
        peaks.extend(peak_mb);
        last = Some((dir, index));
    }
    drop(payloads);
    let (dir, index) = last.expect("at least one round");
    println!(
        "  median raw tantivy (decode, build, add, 1 commit): {:>9.0} events/s",
        percentile(&raws, 0.5)
    );
    println!(
        "  median bus -> indexer -> committed index:          {:>9.0} events/s",
        percentile(&pipelines, 0.5)
    );
    println!(
        "  median ratio: {:.2} of raw tantivy (target >= 0.8); target >= 100,000 events/s",
        percentile(&ratios, 0.5)
    );
    if !raw_cpus.is_empty() {
        // The rates swing with the machine's load; the CPU an event costs swings much less.
        println!(
            "  median CPU per event: raw {:.1} µs, pipeline {:.1} µs (100,000 events/s on {} cores needs at most {:.0} µs)",
            percentile(&raw_cpus, 0.5),
            percentile(&pipeline_cpus, 0.5),
            cores(),
            cores() as f64 * 10.0
        );
    }

    let size = dir_size(&dir.path().join("index"));
    println!("\n## size and memory");
    println!(
        "  index on disk: {:.1} MB = {:.1} MB per million events",
        size as f64 / 1e6,
        size as f64 / 1e6 / (n as f64 / 1e6)
    );
    if peaks.is_empty() {
        println!("  indexer peak memory: not measurable here (needs /proc/self/clear_refs)");
    } else {
        println!(
            "  indexer peak memory (RSS high-water mark above the start, bus included), largest of the rounds: {:.0} MB",
            peaks.iter().copied().fold(0.0, f64::max)
        );
    }

    if searches == 0 {
        return;
    }
    for size in sizes {
        if size == n {
            search_section(&index, size, searches, with_sqlite);
            aggregate_section(&index, size, searches);
        } else {
            let other = tempfile::tempdir().unwrap();
            let built = build_index(size, other.path());
            let bytes = dir_size(&other.path().join("index"));
            println!(
                "\n(index of {size} events built in {:.1} s: {:.1} MB = {:.1} MB per million events)",
                built.1,
                bytes as f64 / 1e6,
                bytes as f64 / 1e6 / (size as f64 / 1e6)
            );
            search_section(&built.0, size, searches, with_sqlite);
            aggregate_section(&built.0, size, searches);
        }
    }
}

/// An index of the first `n` events, written as the indexer writes (upserts, its merge policy,
/// a commit every `commit_docs`), merges finished: the shape a search meets after ingest.
fn build_index(n: usize, dir: &Path) -> (EventIndex, f64) {
    let config = config(dir);
    let index = EventIndex::open(&dir.join("index")).unwrap();
    let mut sink = index.writer(config.indexer.writer_memory_mb).unwrap();
    let started = Instant::now();
    for envelope in events(n) {
        sink.upsert(&envelope, None).unwrap();
        if sink.uncommitted() >= config.indexer.commit_docs {
            sink.commit("embedded").unwrap();
        }
    }
    sink.commit("embedded").unwrap();
    sink.finish().unwrap();
    index.reader.reload().unwrap();
    (index, started.elapsed().as_secs_f64())
}

/// Search latency of the mix over `index` (of `n` events), beside SQLite FTS5 on the same
/// events (unless `with_sqlite` is false: loading ten million events into SQLite takes a
/// quarter of an hour here, so reruns of tantivy alone may skip it).
fn search_section(index: &EventIndex, n: usize, searches: usize, with_sqlite: bool) {
    let sqlite_dir = tempfile::tempdir().unwrap();
    let sqlite = with_sqlite.then(|| sqlite_load(index, sqlite_dir.path(), n));
    // A search runs a thread per segment: how evenly they split the work over the cores.
    let mut sizes: Vec<u32> = index
        .reader
        .searcher()
        .segment_readers()
        .iter()
        .map(|s| s.max_doc())
        .collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    println!(
        "\n(segments searched: {}, documents each: {sizes:?})",
        sizes.len()
    );
    println!("\n## search latency over {n} events ({searches} runs of each query; hits are the 50 newest, each with its event)");
    println!(
        "  {:<44} {:>9} {:>9} {:>11} {:>11} {:>8}",
        "query", "p50 ms", "p99 ms", "fts5 p50", "fts5 p99", "ratio"
    );
    let mut all_tantivy = Vec::new();
    let mut all_sqlite = Vec::new();
    for query in mix() {
        let (t_total, t) = time(searches, || tantivy_query(index, &query));
        let (tp50, tp99) = (percentile(&t, 0.5), percentile(&t, 0.99));
        let name = format!("{} ({} hits)", query.name, t_total);
        all_tantivy.extend(t);
        let Some(sqlite) = &sqlite else {
            println!(
                "  {name:<44} {tp50:>9.2} {tp99:>9.2} {:>11} {:>11} {:>8}",
                "-", "-", "-"
            );
            continue;
        };
        let (s_total, s) = time(searches, || sqlite_query(sqlite, &query));
        assert_eq!(
            t_total, s_total,
            "{}: both engines count the same hits",
            query.name
        );
        let (sp50, sp99) = (percentile(&s, 0.5), percentile(&s, 0.99));
        println!(
            "  {name:<44} {tp50:>9.2} {tp99:>9.2} {sp50:>11.2} {sp99:>11.2} {:>7.1}x",
            sp99 / tp99
        );
        all_sqlite.extend(s);
    }
    let tp99 = percentile(&all_tantivy, 0.99);
    let mut summary = format!(
        "  whole mix over {n}: tantivy p50 {:.2} ms, p99 {tp99:.2} ms",
        percentile(&all_tantivy, 0.5)
    );
    if !all_sqlite.is_empty() {
        let sp99 = percentile(&all_sqlite, 0.99);
        summary += &format!(
            "; sqlite fts5 p50 {:.2} ms, p99 {sp99:.2} ms; fts5 p99 / tantivy p99 = {:.1}x",
            percentile(&all_sqlite, 0.5),
            sp99 / tp99
        );
    }
    println!("{summary} (target p99 < 50 ms at 10M)");
}

/// An event's document as the indexer builds it: the payload decoded, and stored as it came.
fn document(fields: &Fields, payload: &[u8]) -> tantivy::TantivyDocument {
    let json = std::str::from_utf8(payload).unwrap();
    fields.document_with_json(&Envelope::from_json(payload).unwrap(), json)
}

/// The baseline: the same documents straight into tantivy, no bus, one commit.
fn raw_tantivy(payloads: &[(Topic, String, Bytes)], dir: &Path) -> (f64, Option<f64>) {
    let index = EventIndex::open(dir).unwrap();
    let mut writer: tantivy::IndexWriter = index
        .index
        .writer(config(dir).indexer.writer_memory_mb * 1_000_000)
        .unwrap();
    let started = Instant::now();
    let cpu = cpu_seconds();
    for (_, _, payload) in payloads {
        writer
            .add_document(document(&index.fields, payload))
            .unwrap();
    }
    writer.commit().unwrap();
    let rate = payloads.len() as f64 / started.elapsed().as_secs_f64();
    let cpu = cpu_per_event(cpu, payloads.len());
    writer.wait_merging_threads().unwrap();
    (rate, cpu)
}

/// CPU time (user and system, all threads) this process has used, in seconds (Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which may hold spaces): utime and stime are the
    // 12th and 13th, in clock ticks of 1/100 s on Linux.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Microseconds of CPU per event since `since` (from [`cpu_seconds`]).
fn cpu_per_event(since: Option<f64>, events: usize) -> Option<f64> {
    Some((cpu_seconds()? - since?) * 1e6 / events.max(1) as f64)
}

/// Events published on the embedded bus while the indexer (default settings) consumes them;
/// timed until the last one is committed and searchable.
async fn through_the_bus(
    payloads: &[(Topic, String, Bytes)],
    dir: &Path,
) -> (f64, Option<f64>, Option<f64>, EventIndex) {
    let config = Arc::new(config(dir));
    let bus: SharedBus = Arc::new(EmbeddedBus::new(&config.bus));
    let baseline = reset_peak_rss();
    let indexer = Indexer::new(config, bus.clone()).await.unwrap();
    let index = indexer.index().clone();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(indexer.run(shutdown.clone()));
    let started = Instant::now();
    let cpu = cpu_seconds();
    let messages = payloads.to_vec();
    let producer = tokio::spawn({
        let bus = bus.clone();
        async move {
            for chunk in messages.chunks(4096) {
                for (topic, key, payload) in chunk {
                    bus.publish(*topic, key, payload.clone()).await.unwrap();
                }
            }
        }
    });
    let n = payloads.len() as u64;
    while index.len() < n {
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let cpu = cpu_per_event(cpu, payloads.len());
    let segments = index.reader.searcher().segment_readers().len();
    println!("           segments when the last event became searchable: {segments}");
    producer.await.unwrap();
    shutdown.cancel();
    running.await.unwrap().unwrap();
    let peak = baseline.and_then(|base| Some((peak_rss_kb()? as f64 - base as f64) / 1024.0));
    (rate, cpu, peak, index)
}

struct BenchQuery {
    name: &'static str,
    q: &'static str,
    sql: &'static str,
    /// A 6-hour window with histogram and facets, or all time without.
    windowed: bool,
}

fn mix() -> Vec<BenchQuery> {
    vec![
        BenchQuery {
            name: "term region:Dakar",
            q: "region:Dakar",
            sql: "region = 'Dakar'",
            windowed: false,
        },
        BenchQuery {
            name: "phrase \"fetch failed\"",
            q: "\"fetch failed\"",
            sql: "rowid IN (SELECT rowid FROM fts WHERE fts MATCH '\"fetch failed\"')",
            windowed: false,
        },
        BenchQuery {
            name: "range temperature_c:[35 TO *]",
            q: "temperature_c:[35 TO *]",
            sql: "temperature_c >= 35",
            windowed: false,
        },
        BenchQuery {
            name: "level:warn, 6h, histogram + facets",
            q: "level:warn",
            sql: "level = 'warn'",
            windowed: true,
        },
    ]
}

fn window(query: &BenchQuery) -> (DateTime<Utc>, DateTime<Utc>) {
    if query.windowed {
        let from = start() + Duration::days(SPAN_DAYS / 2);
        (from, from + Duration::hours(6))
    } else {
        (
            start() - Duration::days(1),
            start() + Duration::days(SPAN_DAYS + 1),
        )
    }
}

fn tantivy_query(index: &EventIndex, query: &BenchQuery) -> usize {
    let (from, to) = window(query);
    let request = SearchRequest {
        q: query.q.into(),
        from,
        to,
        limit: 50,
        offset: 0,
        sort: Sort::Newest,
        aggregate: query.windowed,
    };
    let results = index.search(&request).unwrap();
    assert!(results.hits.len() <= 50);
    results.total
}

fn sqlite_load(index: &EventIndex, dir: &Path, n: usize) -> Connection {
    let db = Connection::open(dir.join("events.db")).unwrap();
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE events (id TEXT PRIMARY KEY, ts INTEGER NOT NULL, kind TEXT, region TEXT, level TEXT,
                              service TEXT, temperature_c REAL, event TEXT NOT NULL);
         CREATE VIRTUAL TABLE fts USING fts5(message);",
    )
    .unwrap();
    let started = Instant::now();
    let everything = SearchRequest {
        q: "*".into(),
        from: start() - Duration::days(1),
        to: start() + Duration::days(SPAN_DAYS + 1),
        limit: 1,
        offset: 0,
        sort: Sort::Oldest,
        aggregate: false,
    };
    assert_eq!(index.search(&everything).unwrap().total, n);
    // The same events, regenerated (the generator is deterministic).
    let tx = db.unchecked_transaction().unwrap();
    {
        let mut insert = tx.prepare("INSERT INTO events (id, ts, kind, region, level, service, temperature_c, event) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)").unwrap();
        let mut fts = tx
            .prepare("INSERT INTO fts (rowid, message) VALUES (?1, ?2)")
            .unwrap();
        for envelope in events(n) {
            let d = describe(&envelope.event);
            let temperature = match &envelope.event {
                Event::Observation(o) => Some(o.temperature_c),
                _ => None,
            };
            insert
                .execute(params![
                    envelope.id,
                    envelope.event.timestamp().timestamp_micros(),
                    d.kind,
                    d.region,
                    d.level,
                    d.service,
                    temperature,
                    String::from_utf8(envelope.to_json()).unwrap()
                ])
                .unwrap();
            fts.execute(params![tx.last_insert_rowid(), d.message])
                .unwrap();
        }
    }
    tx.execute_batch("CREATE INDEX by_ts ON events (ts); CREATE INDEX by_region ON events (region, ts); CREATE INDEX by_level ON events (level, ts); CREATE INDEX by_temperature ON events (temperature_c);").unwrap();
    tx.commit().unwrap();
    println!(
        "\n(sqlite loaded with the same events in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    db
}

/// The SQLite answer of the same search: total, 50 newest with their events, and (windowed)
/// the histogram and the four facets.
fn sqlite_query(db: &Connection, query: &BenchQuery) -> usize {
    let (from, to) = window(query);
    let (from_us, to_us) = (from.timestamp_micros(), to.timestamp_micros());
    let filter = format!("({}) AND ts BETWEEN {from_us} AND {to_us}", query.sql);
    let total: i64 = db
        .query_row(
            &format!("SELECT count(*) FROM events WHERE {filter}"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut hits = db
        .prepare_cached(&format!(
            "SELECT id, event FROM events WHERE {filter} ORDER BY ts DESC LIMIT 50"
        ))
        .unwrap();
    let rows: Vec<(String, String)> = hits
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (_, event) in &rows {
        let _: serde_json::Value = serde_json::from_str(event).unwrap();
    }
    if query.windowed {
        let width_us = bucket_width_ms((to - from).num_milliseconds()) * 1000;
        let mut histogram = db.prepare_cached(&format!("SELECT (ts - {from_us}) / {width_us}, count(*) FROM events WHERE {filter} GROUP BY 1")).unwrap();
        let buckets: Vec<(i64, i64)> = histogram
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(!buckets.is_empty());
        for facet in ["kind", "region", "level", "service"] {
            let mut top = db.prepare_cached(&format!("SELECT {facet}, count(*) AS n FROM events WHERE {filter} GROUP BY 1 ORDER BY n DESC LIMIT 20")).unwrap();
            let _: Vec<(Option<String>, i64)> = top
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
        }
    }
    total as usize
}

/// Runs `f` `runs` times (after one warm-up): its last answer and each latency in ms.
fn time(runs: usize, mut f: impl FnMut() -> usize) -> (usize, Vec<f64>) {
    let answer = f();
    let latencies = (0..runs)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(f());
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    (answer, latencies)
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Resets the kernel's RSS high-water mark (Linux); returns the RSS now, in KB.
fn reset_peak_rss() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    proc_status_kb("VmRSS:")
}

fn peak_rss_kb() -> Option<u64> {
    proc_status_kb("VmHWM:")
}

fn proc_status_kb(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Aggregation latency (p50/p99) over `index` (of `n` events) beside the same search without
/// aggregation (the total and 50 hits), and with the search page's histogram and facets; then
/// how fast an export reads every observation out.
fn aggregate_section(index: &EventIndex, n: usize, searches: usize) {
    use windsock_indexer::aggregate::{AggregateRequest, Metric};
    use windsock_indexer::export::ExportFormat;
    let (from, to) = (
        start() - Duration::days(1),
        start() + Duration::days(SPAN_DAYS + 1),
    );
    let width = bucket_width_ms((to - from).num_milliseconds());
    let q = "kind:observation";
    let search = |aggregate: bool| {
        let request = SearchRequest {
            q: q.into(),
            from,
            to,
            limit: 50,
            offset: 0,
            sort: Sort::Newest,
            aggregate,
        };
        move || index.search(&request).unwrap().total
    };
    let aggregate = |metric: &str, by: Option<usize>| {
        let request = AggregateRequest {
            q: q.into(),
            from,
            to,
            interval_ms: width,
            metric: Metric::parse(metric, index).unwrap(),
            by: by.map(|size| ("region".to_string(), size)),
        };
        move || {
            let results = index.aggregate(&request).unwrap();
            std::hint::black_box(results.series.len());
            results.total as usize
        }
    };
    println!(
        "\n## aggregations over {n} events ({searches} runs each; `{q}` over the whole span, {} buckets)",
        (to - from).num_milliseconds() / width + 1
    );
    println!(
        "  {:<66} {:>9} {:>9} {:>8}",
        "request", "p50 ms", "p99 ms", "x search"
    );
    let (_, base) = time(searches, search(false));
    let base_p50 = percentile(&base, 0.5);
    type Run<'a> = Box<dyn FnMut() -> usize + 'a>;
    let runs: Vec<(&str, Run)> = vec![
        (
            "search: total + 50 newest hits (no aggregation)",
            Box::new(search(false)),
        ),
        (
            "search: + histogram and facets (the search page)",
            Box::new(search(true)),
        ),
        ("aggregate count", Box::new(aggregate("count", None))),
        (
            "aggregate avg(temperature_c)",
            Box::new(aggregate("avg(temperature_c)", None)),
        ),
        (
            "aggregate p95(temperature_c)",
            Box::new(aggregate("p95(temperature_c)", None)),
        ),
        (
            "aggregate avg(temperature_c) by=region (all 14)",
            Box::new(aggregate("avg(temperature_c)", Some(100))),
        ),
        (
            "aggregate avg(temperature_c) by=region size=3 + other",
            Box::new(aggregate("avg(temperature_c)", Some(3))),
        ),
    ];
    for (name, mut run) in runs {
        let (hits, latencies) = time(searches, &mut run);
        let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
        println!(
            "  {:<66} {p50:>9.2} {p99:>9.2} {:>7.1}x",
            format!("{name} ({hits} hits)"),
            p50 / base_p50
        );
    }

    // An export of every observation (NDJSON), bytes counted and dropped.
    let started = Instant::now();
    let export = index
        .export(q, from, to, ExportFormat::Ndjson, u64::MAX)
        .unwrap();
    let total = export.total;
    let mut bytes = 0usize;
    export
        .write(|chunk| {
            bytes += chunk.len();
            true
        })
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "  export of {total} observations as NDJSON: {seconds:.1} s, {:.0} events/s, {:.0} MB",
        total as f64 / seconds,
        bytes as f64 / 1e6
    );
}
