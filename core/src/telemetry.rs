//! windsock's own observability: console logs, log records published as `LogEvent`s, and
//! per-service counters in the shape Vector's component spec uses (received, sent, errors,
//! dropped), exported as Prometheus text at `/metrics`.
//!
//! Every family is described (`# HELP`, `# TYPE`) where its crate registers it: core's here
//! in [`describe`], the services' in their own crates. Histograms get their buckets from the
//! one exporter set up in [`prometheus`], so each renders as a Prometheus histogram (a summary
//! cannot be aggregated across processes).

use crate::bus::{publish_event, SharedBus};
use crate::config::LogConfig;
use crate::event::{Event, Level, LogEvent};
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::{Map, Value};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Log records waiting for the bus; past this they are dropped (and counted), because
/// logging must never block a service.
const LOG_QUEUE: usize = 10_000;

/// Targets never republished: the bus's own records (publishing them would feed back on
/// itself when the bus logs) and librdkafka's.
const NOT_PUBLISHED: &[&str] = &[
    "windsock_core::bus",
    "windsock_core::telemetry",
    "rdkafka",
    "librdkafka",
];

pub const RECEIVED: &str = "windsock_received_total";
pub const SENT: &str = "windsock_sent_total";
pub const ERRORS: &str = "windsock_errors_total";
pub const DROPPED: &str = "windsock_dropped_total";
pub const BUS_LAG: &str = "windsock_bus_lag";

/// The error kinds and drop reasons each service is known to count, registered at zero with
/// the service so `rate()` and `increase()` have a series before the first failure. A kind
/// missing here still counts; its series appears at its first occurrence.
const KNOWN: &[(&str, &[&str], &[&str])] = &[
    (
        "collector",
        &[
            "timeout",
            "request",
            "http_4xx",
            "http_5xx",
            "http_429",
            "malformed",
            "unsupported",
            "publish",
        ],
        &["publish_failed", "log_publish_failed", "replay_bad_row"],
    ),
    ("indexer", &["bus", "index", "commit", "disk_full"], &[]),
    (
        "forecaster",
        &["consume", "persist", "ack", "commit", "refit", "publish"],
        &["refit_still_running", "non_finite_temperature"],
    ),
    (
        "alerter",
        &[
            "bus",
            "publish",
            "store",
            "slack_permanent",
            "slack_429",
            "slack_retry",
        ],
        &["slack_expired", "slack_permanent"],
    ),
    ("ui", &[], &[]),
];

/// The labels a counter without a known kind is registered with: the series exists for a
/// dashboard's `sum by (service)` before the first error, at zero, and never counts.
const NONE: &str = "none";

/// The counters every service keeps, labelled with its name.
#[derive(Clone, Copy, Debug)]
pub struct Counters {
    pub service: &'static str,
}

impl Counters {
    pub const fn new(service: &'static str) -> Self {
        Self { service }
    }

    /// Registers the service's counters at zero (received, sent, and errors and drops of
    /// every kind it is known to count), so a dashboard and `rate()` see the service before
    /// its first event or failure. The supervisor calls it for each service it runs.
    pub fn register(&self) {
        prometheus();
        metrics::counter!(RECEIVED, "service" => self.service).increment(0);
        metrics::counter!(SENT, "service" => self.service).increment(0);
        let (errors, drops) = KNOWN
            .iter()
            .find(|(service, _, _)| *service == self.service)
            .map(|(_, errors, drops)| (*errors, *drops))
            .unwrap_or_default();
        let or_none = |kinds: &'static [&'static str]| match kinds {
            [] => &[NONE][..],
            kinds => kinds,
        };
        for kind in or_none(errors) {
            metrics::counter!(ERRORS, "service" => self.service, "kind" => *kind).increment(0);
        }
        for reason in or_none(drops) {
            metrics::counter!(DROPPED, "service" => self.service, "reason" => *reason).increment(0);
        }
    }

    /// Events taken in (fetched, consumed, received over HTTP).
    pub fn received(&self, n: u64) {
        metrics::counter!(RECEIVED, "service" => self.service).increment(n);
    }

    /// Events sent on (published, indexed, delivered).
    pub fn sent(&self, n: u64) {
        metrics::counter!(SENT, "service" => self.service).increment(n);
    }

    /// Failures, by a short kind such as `fetch`, `decode`, `http_429`.
    pub fn error(&self, kind: &'static str) {
        metrics::counter!(ERRORS, "service" => self.service, "kind" => kind).increment(1);
    }

    /// Events given up on, with the reason.
    pub fn dropped(&self, n: u64, reason: &'static str) {
        metrics::counter!(DROPPED, "service" => self.service, "reason" => reason).increment(n);
    }

    pub fn gauge(&self, name: &'static str, value: f64) {
        metrics::gauge!(name, "service" => self.service).set(value);
    }
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Bucket bounds (seconds) by histogram. Each spans what the operation takes when well (the
/// low buckets) to its timeout or worst plausible case (the top ones), so p50 and p99 are
/// read within a bucket's width where it matters.
const BUCKETS: &[(&str, &[f64])] = &[
    // An HTTP round trip to a weather API, up to the collector's timeouts.
    (
        "windsock_fetch_duration_seconds",
        &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
    ),
    // A search: milliseconds on a small index, seconds on a large one with aggregations.
    (
        "windsock_search_duration_seconds",
        &[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ],
    ),
    // A tantivy commit: finishing the segments being indexed and an fsync.
    (
        "windsock_index_commit_duration_seconds",
        &[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ],
    ),
    // A POST to Slack's webhook, up to its timeout.
    (
        "windsock_slack_delivery_seconds",
        &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
    ),
    // Fitting one region's models: from baselines (milliseconds) to MSTL on weeks of history.
    (
        "windsock_forecast_fit_seconds",
        &[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ],
    ),
];

/// Any other histogram in seconds (a summary otherwise, which does not aggregate).
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How often recorded histogram samples are folded into their buckets when nothing scrapes
/// (a scrape folds them too): bounds what samples cost in memory.
const UPKEEP: Duration = Duration::from_secs(5);

/// The exporter: every histogram as a Prometheus histogram with the buckets above.
fn builder() -> PrometheusBuilder {
    let mut builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .expect("buckets are not empty");
    for (name, buckets) in BUCKETS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full((*name).into()), buckets)
            .expect("buckets are not empty");
    }
    builder
}

/// The process's metrics recorder (installed on first use; one per process), with core's
/// families described.
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        // A test binary may have installed one already; then ours just renders nothing new.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        let upkeep = handle.clone();
        // A thread, not a task: the recorder may be installed before (or without) a runtime.
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP);
                upkeep.run_upkeep();
            });
        handle
    })
}

/// Requests the UI's API proxy sent on to another replica of a service (see
/// [`proxy_failovers`]).
pub const PROXY_FAILOVERS: &str = "windsock_proxy_failovers_total";

/// The counter of failovers of the UI's proxy to `service` (its replicas being its URLs).
pub fn proxy_failovers(service: &str) -> metrics::Counter {
    prometheus();
    metrics::counter!(PROXY_FAILOVERS, "service" => service.to_string())
}

/// `# HELP` (and so `# TYPE`, with the unit where the name has one) of core's families.
/// Called with the recorder's installation; describing again is harmless.
pub fn describe() {
    metrics::describe_counter!(
        RECEIVED,
        Unit::Count,
        "Events a service took in: fetched (collector), consumed from the bus (indexer, \
         forecaster, alerter) or received over HTTP (/predict)."
    );
    metrics::describe_counter!(
        SENT,
        Unit::Count,
        "Events a service passed on: published (collector, forecaster, alerter) or made \
         durable in the index (indexer)."
    );
    metrics::describe_counter!(
        ERRORS,
        Unit::Count,
        "Failures of a service, by kind (timeout, http_5xx, publish, commit, disk_full...)."
    );
    metrics::describe_counter!(
        DROPPED,
        Unit::Count,
        "Events or log records a service gave up on, by reason."
    );
    metrics::describe_gauge!(
        BUS_LAG,
        Unit::Count,
        "Messages on the bus a consuming service has not read yet (after its last commit)."
    );
    metrics::describe_counter!(
        "windsock_service_restarts_total",
        Unit::Count,
        "Times the supervisor restarted a service after it failed or panicked."
    );
    metrics::describe_counter!(
        "windsock_http_errors_total",
        Unit::Count,
        "HTTP responses with a 4xx or 5xx status, by status."
    );
    metrics::describe_counter!(
        "windsock_http_panics_total",
        Unit::Count,
        "HTTP handlers that panicked (answered with a JSON 500)."
    );
    metrics::describe_counter!(
        PROXY_FAILOVERS,
        Unit::Count,
        "Requests `windsock ui` sent on to another replica of a service because one did not \
         answer or answered 5xx, by service."
    );
    metrics::describe_counter!(
        "windsock_dead_letters_total",
        Unit::Count,
        "Bus messages that were not windsock events, sent to the dead-letters topic, by \
         consumer group."
    );
}

/// The receiving end of published log records, handed to [`spawn_log_publisher`] once the
/// bus exists.
pub struct LogRecords(mpsc::Receiver<LogEvent>);

/// Installs console logging and the layer that turns records into `LogEvent`s.
/// Call once, at start-up, before the bus exists: records queue until it does.
pub fn init(config: &LogConfig) -> anyhow::Result<LogRecords> {
    let (tx, rx) = mpsc::channel(LOG_QUEUE);
    let console_filter = EnvFilter::builder().parse(&config.level)?;
    let publish_filter = EnvFilter::builder().parse(&config.publish_level)?;
    let console = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let console = if config.format == "json" {
        console.json().with_filter(console_filter).boxed()
    } else {
        console.with_filter(console_filter).boxed()
    };
    tracing_subscriber::registry()
        .with(console)
        .with(BusLayer { tx }.with_filter(publish_filter))
        .try_init()?;
    prometheus();
    Ok(LogRecords(rx))
}

/// Publishes queued log records on the logs topic until shutdown.
pub fn spawn_log_publisher(
    records: LogRecords,
    bus: SharedBus,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let LogRecords(mut rx) = records;
    for reason in ["log_publish", "log_queue_full"] {
        metrics::counter!(DROPPED, "service" => "windsock", "reason" => reason).increment(0);
    }
    tokio::spawn(async move {
        loop {
            let record = tokio::select! {
                record = rx.recv() => record,
                _ = shutdown.cancelled() => None,
            };
            let Some(record) = record else { break };
            if publish_event(bus.as_ref(), Event::Log(record))
                .await
                .is_err()
            {
                metrics::counter!(DROPPED, "service" => "windsock", "reason" => "log_publish")
                    .increment(1);
            }
        }
        // Flush what is queued so the last records before a clean shutdown are kept. Bounded
        // by the bus: past its shutdown deadline (`Bus::close_by`) a publish fails at once.
        let mut unpublished = 0u64;
        while let Ok(record) = rx.try_recv() {
            if publish_event(bus.as_ref(), Event::Log(record))
                .await
                .is_err()
            {
                unpublished += 1;
            }
        }
        if unpublished > 0 {
            metrics::counter!(DROPPED, "service" => "windsock", "reason" => "log_publish")
                .increment(unpublished);
            tracing::warn!(
                unpublished,
                "log records could not be published at shutdown (they are on the console)"
            );
        }
    })
}

/// The service a tracing target belongs to: `windsock_collector::round` is `collector`.
pub fn service_of(target: &str) -> &str {
    let krate = target.split("::").next().unwrap_or(target);
    match krate.strip_prefix("windsock_") {
        Some("core") | None => "windsock",
        Some(service) => service,
    }
}

struct BusLayer {
    tx: mpsc::Sender<LogEvent>,
}

impl<S: Subscriber> Layer<S> for BusLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let target = meta.target();
        if NOT_PUBLISHED.iter().any(|t| target.starts_with(t)) {
            return;
        }
        let mut visitor = FieldVisitor::default();
        event.record(&mut visitor);
        let record = LogEvent {
            timestamp: chrono::Utc::now(),
            service: service_of(target).to_string(),
            level: Level::from(meta.level()),
            message: visitor.message.unwrap_or_default(),
            region: visitor.region,
            target: Some(target.to_string()),
            fields: visitor.fields,
        };
        if self.tx.try_send(record).is_err() {
            metrics::counter!(DROPPED, "service" => "windsock", "reason" => "log_queue_full")
                .increment(1);
        }
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: Option<String>,
    region: Option<String>,
    fields: Map<String, Value>,
}

impl FieldVisitor {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => {
                self.message = Some(match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
            }
            "region" => {
                self.region = Some(match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
            }
            name => {
                self.fields.insert(name.to_string(), value);
            }
        }
    }
}

impl Visit for FieldVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_service_has_every_counter_at_zero_with_help_and_type() {
        Counters::new("indexer").register();
        Counters::new("ui").register();
        let text = prometheus().render();
        for family in [RECEIVED, SENT, ERRORS, DROPPED] {
            assert!(
                text.contains(&format!("# HELP {family} ")),
                "{family}:\n{text}"
            );
            assert!(
                text.contains(&format!("# TYPE {family} counter\n")),
                "{family}:\n{text}"
            );
        }
        for series in [
            r#"windsock_received_total{service="indexer"} 0"#,
            r#"windsock_sent_total{service="indexer"} 0"#,
            r#"windsock_errors_total{service="indexer",kind="commit"} 0"#,
            r#"windsock_errors_total{service="indexer",kind="disk_full"} 0"#,
            // A service with no known kind still has a series to rate() from.
            r#"windsock_errors_total{service="ui",kind="none"} 0"#,
            r#"windsock_dropped_total{service="ui",reason="none"} 0"#,
        ] {
            assert!(text.contains(series), "{series}:\n{text}");
        }
    }

    #[test]
    fn histograms_render_as_prometheus_histograms_with_their_buckets() {
        prometheus();
        metrics::histogram!("windsock_search_duration_seconds").record(0.003);
        // Not in the table: any histogram in seconds still gets buckets, not quantiles.
        metrics::histogram!("windsock_test_other_seconds").record(42.0);
        let text = prometheus().render();
        assert!(
            text.contains("# TYPE windsock_search_duration_seconds histogram\n"),
            "{text}"
        );
        assert!(
            text.contains(r#"windsock_search_duration_seconds_bucket{le="0.0025"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"windsock_search_duration_seconds_bucket{le="0.005"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"windsock_search_duration_seconds_bucket{le="+Inf"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"windsock_test_other_seconds_bucket{le="60"} 1"#),
            "{text}"
        );
        assert!(!text.contains("quantile="), "{text}");
    }

    #[test]
    fn services_are_named_after_their_crate() {
        assert_eq!(service_of("windsock_collector::round"), "collector");
        assert_eq!(service_of("windsock_core::bus"), "windsock");
        assert_eq!(service_of("hyper::proto"), "windsock");
    }

    #[tokio::test]
    async fn records_become_log_events_with_region_and_fields_but_bus_records_do_not() {
        let (tx, mut rx) = mpsc::channel(16);
        let subscriber = tracing_subscriber::registry().with(BusLayer { tx });
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "windsock_collector::round", region = "Dakar", status = 500u64, "fetch failed");
            tracing::warn!(target: "windsock_core::bus", "consumer lagging");
        });
        let record = rx.try_recv().unwrap();
        assert_eq!(record.service, "collector");
        assert_eq!(record.level, Level::Warn);
        assert_eq!(record.message, "fetch failed");
        assert_eq!(record.region.as_deref(), Some("Dakar"));
        assert_eq!(record.fields["status"], 500);
        assert!(
            rx.try_recv().is_err(),
            "the bus's own records are not republished"
        );
    }
}
