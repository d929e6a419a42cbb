//! `/_ui/health`: the services' counters in one JSON document for the health page.
//!
//! In `windsock up` every service counts into this process's registry; in `windsock ui`
//! each configured service's `/metrics` is read as well. Samples are summed per service,
//! and a service that cannot be read is listed as such instead of failing the page.

use crate::prometheus::{self, Sample};
use crate::proxy::Upstreams;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa::ToSchema;
use windsock_core::secret::redact_url;

/// How long one service's `/metrics` may take before it is reported unavailable.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

/// One service's counters (`windsock_*_total{service=...}`), summed over their labels.
#[derive(Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct ServiceCounters {
    /// Events received (`windsock_received_total`).
    pub received: f64,
    /// Events sent on (`windsock_sent_total`).
    pub sent: f64,
    /// Errors (`windsock_errors_total`), all kinds.
    pub errors: f64,
    /// Events dropped (`windsock_dropped_total`), all reasons.
    pub dropped: f64,
    /// The largest lag any of the service's consumers reported; null when it consumes nothing.
    pub bus_lag: Option<f64>,
    /// Errors by their `kind` label.
    pub errors_by_kind: BTreeMap<String, f64>,
    /// Drops by their `reason` label.
    pub dropped_by_reason: BTreeMap<String, f64>,
}

/// Where counters were read from, and whether that worked.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub struct Scrape {
    /// `this process`, or the service scraped (`indexer`, `alerter`, ...).
    pub source: String,
    /// The `/metrics` URL read, credentials redacted; null for this process.
    pub url: Option<String>,
    pub ok: bool,
    /// Why it could not be read; null when it was.
    pub error: Option<String>,
}

/// The answer of `/_ui/health`.
#[derive(Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct HealthReport {
    /// Counters by service name.
    pub services: BTreeMap<String, ServiceCounters>,
    /// Every source of the counters, this process first.
    pub scrapes: Vec<Scrape>,
}

impl HealthReport {
    /// Adds windsock's counters among `samples`.
    pub fn add(&mut self, samples: &[Sample]) {
        for sample in samples {
            let Some(service) = sample.label("service") else {
                continue;
            };
            let entry = || ServiceCounters::default();
            match sample.name.as_str() {
                "windsock_received_total" => {
                    self.services
                        .entry(service.into())
                        .or_insert_with(entry)
                        .received += sample.value
                }
                "windsock_sent_total" => {
                    self.services
                        .entry(service.into())
                        .or_insert_with(entry)
                        .sent += sample.value
                }
                "windsock_errors_total" => {
                    let counters = self.services.entry(service.into()).or_insert_with(entry);
                    counters.errors += sample.value;
                    let kind = sample.label("kind").unwrap_or("other").to_string();
                    *counters.errors_by_kind.entry(kind).or_default() += sample.value;
                }
                "windsock_dropped_total" => {
                    let counters = self.services.entry(service.into()).or_insert_with(entry);
                    counters.dropped += sample.value;
                    let reason = sample.label("reason").unwrap_or("other").to_string();
                    *counters.dropped_by_reason.entry(reason).or_default() += sample.value;
                }
                "windsock_bus_lag" => {
                    let counters = self.services.entry(service.into()).or_insert_with(entry);
                    counters.bus_lag = Some(
                        counters
                            .bus_lag
                            .map_or(sample.value, |lag| lag.max(sample.value)),
                    );
                }
                _ => {}
            }
        }
    }
}

/// This process's counters plus those of every service with a configured URL.
pub async fn report(upstreams: &Upstreams) -> HealthReport {
    let mut report = HealthReport::default();
    report.add(&prometheus::parse(
        &windsock_core::telemetry::prometheus().render(),
    ));
    report.scrapes.push(Scrape {
        source: "this process".into(),
        url: None,
        ok: true,
        error: None,
    });
    // Every replica of a service is read (each its own scrape), so a replica that is down
    // shows as such while the others answer for it.
    let scrapes = upstreams.every_url().map(|(service, base)| async move {
        let url = format!("{base}/metrics");
        let answer = upstreams
            .client()
            .get(&url)
            .timeout(SCRAPE_TIMEOUT)
            .send()
            .await;
        let text = match answer.and_then(|a| a.error_for_status()) {
            Ok(answer) => answer.text().await,
            Err(err) => Err(err),
        };
        (
            service,
            redact_url(&url),
            text.map_err(|err| err.without_url().to_string()),
        )
    });
    for (service, url, text) in futures::future::join_all(scrapes).await {
        let (ok, error) = match text {
            Ok(text) => {
                report.add(&prometheus::parse(&text));
                (true, None)
            }
            Err(err) => (false, Some(err)),
        };
        report.scrapes.push(Scrape {
            source: service.name().into(),
            url: Some(url),
            ok,
            error,
        });
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_per_service_with_their_breakdowns() {
        let text = "windsock_received_total{service=\"indexer\"} 10\n\
                    windsock_sent_total{service=\"indexer\"} 9\n\
                    windsock_errors_total{service=\"collector\",kind=\"fetch\"} 2\n\
                    windsock_errors_total{service=\"collector\",kind=\"http_429\"} 1\n\
                    windsock_dropped_total{service=\"indexer\",reason=\"decode\"} 1\n\
                    windsock_bus_lag{service=\"indexer\"} 4\n\
                    windsock_bus_lag{service=\"indexer\"} 7\n\
                    unrelated_total{service=\"indexer\"} 99\n";
        let mut report = HealthReport::default();
        report.add(&prometheus::parse(text));
        report.add(&prometheus::parse(
            "windsock_received_total{service=\"indexer\"} 5\n",
        ));
        let indexer = &report.services["indexer"];
        assert_eq!(indexer.received, 15.0);
        assert_eq!(indexer.sent, 9.0);
        assert_eq!(indexer.dropped, 1.0);
        assert_eq!(indexer.bus_lag, Some(7.0), "the worst consumer's lag");
        let collector = &report.services["collector"];
        assert_eq!(collector.errors, 3.0);
        assert_eq!(collector.errors_by_kind["http_429"], 1.0);
        assert_eq!(collector.bus_lag, None);
    }
}
