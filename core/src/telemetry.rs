//! windsock's own observability: console logs, log records published as `LogEvent`s, and
//! per-service counters in the shape Vector's component spec uses (received, sent, errors,
//! dropped), exported as Prometheus text at `/metrics`.

use crate::bus::{publish_event, SharedBus};
use crate::config::LogConfig;
use crate::event::{Event, Level, LogEvent};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::{Map, Value};
use std::sync::OnceLock;
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

/// The counters every service keeps, labelled with its name.
#[derive(Clone, Copy, Debug)]
pub struct Counters {
    pub service: &'static str,
}

impl Counters {
    pub const fn new(service: &'static str) -> Self {
        Self { service }
    }

    /// Events taken in (fetched, consumed, received over HTTP).
    pub fn received(&self, n: u64) {
        metrics::counter!("windsock_received_total", "service" => self.service).increment(n);
    }

    /// Events sent on (published, indexed, delivered).
    pub fn sent(&self, n: u64) {
        metrics::counter!("windsock_sent_total", "service" => self.service).increment(n);
    }

    /// Failures, by a short kind such as `fetch`, `decode`, `http_429`.
    pub fn error(&self, kind: &'static str) {
        metrics::counter!("windsock_errors_total", "service" => self.service, "kind" => kind)
            .increment(1);
    }

    /// Events given up on, with the reason.
    pub fn dropped(&self, n: u64, reason: &'static str) {
        metrics::counter!("windsock_dropped_total", "service" => self.service, "reason" => reason)
            .increment(n);
    }

    pub fn gauge(&self, name: &'static str, value: f64) {
        metrics::gauge!(name, "service" => self.service).set(value);
    }
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's metrics recorder (installed on first use; one per process).
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // A test binary may have installed one already; then ours just renders nothing new.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
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
                metrics::counter!("windsock_dropped_total", "service" => "windsock", "reason" => "log_publish").increment(1);
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
            metrics::counter!("windsock_dropped_total", "service" => "windsock", "reason" => "log_publish").increment(unpublished);
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
            metrics::counter!("windsock_dropped_total", "service" => "windsock", "reason" => "log_queue_full").increment(1);
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
