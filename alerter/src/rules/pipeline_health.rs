//! pipeline_health: the pipeline alerting about itself.
//!
//! Services report their own health as log events (see `windsock_core::event::health`):
//! `fields.condition` (`service_failing`, `disk_full`), `fields.state` (`failing`, `ok`),
//! `fields.service` and `fields.error`. A `failing` report fires an alert named after the
//! condition, one per service (the service is the alert's subject), at once; the `ok` that
//! follows resolves it through the usual lifecycle (`min_hold` included, so a service caught
//! in a restart loop pages once).
//!
//! The logs topic is read from the group's last commit, so after a restart the alerter reads
//! reports that predate it. Those are history: they may resolve an alert (an `ok`) or keep a
//! restored one firing, but never fire a new one. A `failing` whose `ok` sits further on in
//! the backlog (possibly in a later batch) must not page, and a failure that is still going
//! on is reported again by the service that keeps failing.

use super::{Finding, Rule, RuleContext, Verdict};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use windsock_core::config::{RuleConfig, Severity, HEALTH_CONDITIONS};
use windsock_core::event::LogEvent;

/// Services tracked per condition: the names come from the bus, so they are bounded.
const MAX_SERVICES: usize = 64;
/// The longest service name and error text kept (characters).
const MAX_SERVICE_CHARS: usize = 100;
const MAX_ERROR_CHARS: usize = 1000;

pub struct PipelineHealthRule {
    name: String,
    severity: Severity,
    /// Reports logged before this are history (never fire).
    history_before: DateTime<Utc>,
    memory: Memory,
}

/// The latest report per condition, per service.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Memory {
    reports: BTreeMap<String, BTreeMap<String, Report>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Report {
    failing: bool,
    /// The error of the latest `failing` report (kept after `ok`, for the resolved message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// When the service logged it.
    at: DateTime<Utc>,
}

impl PipelineHealthRule {
    pub fn new(config: &RuleConfig, context: &RuleContext) -> Self {
        let RuleConfig::PipelineHealth {
            name,
            severity,
            startup_window,
        } = config
        else {
            unreachable!("built from a pipeline_health config")
        };
        let window = chrono::Duration::from_std(*startup_window).unwrap_or(chrono::Duration::MAX);
        Self {
            name: name.clone(),
            severity: *severity,
            history_before: context
                .since
                .checked_sub_signed(window)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            memory: Memory::default(),
        }
    }

    fn summary(condition: &str, service: &str, report: &Report, verdict: Verdict) -> String {
        let error = report.error.as_deref().unwrap_or("no error given");
        match (condition, verdict) {
            ("disk_full", Verdict::Active) => {
                format!("{service} cannot write: the disk is full ({error})")
            }
            (_, Verdict::Active) => format!("{service} is failing: {error}"),
            (_, Verdict::Band) => format!(
                "{service} reported {condition} before the alerter started ({error}); \
                 waiting for a new report"
            ),
            (_, Verdict::Clear) => match &report.error {
                Some(error) => format!("{service} is back to normal (last error: {error})"),
                None => format!("{service} is back to normal"),
            },
        }
    }
}

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

impl Rule for PipelineHealthRule {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "pipeline_health"
    }

    fn alert_names(&self) -> Vec<&str> {
        HEALTH_CONDITIONS.to_vec()
    }

    fn log(&mut self, _now: DateTime<Utc>, log: &LogEvent) -> bool {
        let Some(health) = log.health() else {
            return false;
        };
        let Some(condition) = HEALTH_CONDITIONS.iter().find(|c| **c == health.condition) else {
            return false;
        };
        let service = cut(health.service.trim(), MAX_SERVICE_CHARS);
        if service.is_empty() {
            return false;
        }
        let services = self
            .memory
            .reports
            .entry(condition.to_string())
            .or_default();
        let previous = services.get(&service);
        // Out of order (another partition, a backfill): a newer report stands.
        if previous.is_some_and(|p| p.at > log.timestamp) {
            return false;
        }
        let error = match health.error {
            Some(error) if health.failing => Some(cut(&error, MAX_ERROR_CHARS)),
            _ => previous.and_then(|p| p.error.clone()),
        };
        if previous.is_none() && services.len() >= MAX_SERVICES {
            // Make room by forgetting the longest-healthy service; with every one failing,
            // the newcomer is dropped rather than growing without bound.
            let oldest_ok = services
                .iter()
                .filter(|(_, r)| !r.failing)
                .min_by_key(|(_, r)| r.at)
                .map(|(s, _)| s.clone());
            match oldest_ok {
                Some(gone) => {
                    services.remove(&gone);
                }
                None => {
                    tracing::warn!(
                        condition,
                        limit = MAX_SERVICES,
                        "too many services report a health condition; ignoring a new one"
                    );
                    return false;
                }
            }
        }
        services.insert(
            service,
            Report {
                failing: health.failing,
                error,
                at: log.timestamp,
            },
        );
        true
    }

    fn evaluate(&self, _now: DateTime<Utc>, out: &mut Vec<Finding>) {
        for (condition, services) in &self.memory.reports {
            for (service, report) in services {
                let verdict = if !report.failing {
                    Verdict::Clear
                } else if report.at < self.history_before {
                    Verdict::Band
                } else {
                    Verdict::Active
                };
                out.push(Finding {
                    rule: condition.clone(),
                    region: None,
                    subject: Some(service.clone()),
                    severity: self.severity,
                    verdict,
                    value: None,
                    expected: None,
                    summary: Self::summary(condition, service, report, verdict),
                    pending_for: Duration::ZERO,
                    inhibitor: None,
                });
            }
        }
    }

    fn snapshot(&self) -> serde_json::Value {
        serde_json::to_value(&self.memory).unwrap_or_default()
    }

    fn restore(&mut self, snapshot: serde_json::Value) {
        if let Ok(memory) = serde_json::from_value(snapshot) {
            self.memory = memory;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use windsock_core::event::health;

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    fn rule() -> PipelineHealthRule {
        let config = RuleConfig::PipelineHealth {
            name: "pipeline_health".into(),
            severity: Severity::Critical,
            startup_window: Duration::from_secs(60),
        };
        let context = RuleContext {
            regions: vec![],
            collection_interval: Duration::from_secs(10),
            since: start(),
        };
        PipelineHealthRule::new(&config, &context)
    }

    fn report(service: &str, condition: &str, failing: bool, at: DateTime<Utc>) -> LogEvent {
        LogEvent::health_condition(
            service,
            condition,
            failing,
            failing.then(|| format!("{service} broke")),
            "health".into(),
            at,
        )
    }

    fn verdicts(rule: &PipelineHealthRule) -> Vec<(String, String, Verdict)> {
        let mut out = Vec::new();
        rule.evaluate(start(), &mut out);
        out.into_iter()
            .map(|f| (f.rule, f.subject.unwrap(), f.verdict))
            .collect()
    }

    #[test]
    fn one_finding_per_condition_and_service_latest_report_wins() {
        let mut r = rule();
        let s = chrono::Duration::seconds;
        assert!(r.log(
            start(),
            &report("indexer", health::DISK_FULL, true, start())
        ));
        assert!(r.log(
            start(),
            &report("collector", health::SERVICE_FAILING, true, start())
        ));
        assert!(r.log(
            start(),
            &report("indexer", health::SERVICE_FAILING, true, start())
        ));
        // An older report arriving late does not undo a newer one.
        assert!(!r.log(
            start(),
            &report("indexer", health::DISK_FULL, false, start() - s(5))
        ));
        assert!(r.log(
            start(),
            &report("collector", health::SERVICE_FAILING, false, start() + s(1))
        ));
        assert_eq!(
            verdicts(&r),
            [
                ("disk_full".into(), "indexer".into(), Verdict::Active),
                ("service_failing".into(), "collector".into(), Verdict::Clear),
                ("service_failing".into(), "indexer".into(), Verdict::Active),
            ]
        );
        let mut out = Vec::new();
        r.evaluate(start(), &mut out);
        assert!(
            out[0].summary.contains("indexer broke"),
            "{}",
            out[0].summary
        );
        assert!(out[1]
            .summary
            .contains("back to normal (last error: collector broke)"));
    }

    #[test]
    fn reports_from_before_the_start_never_fire_but_resolve() {
        let mut r = rule();
        let old = start() - chrono::Duration::minutes(10);
        r.log(start(), &report("indexer", health::DISK_FULL, true, old));
        r.log(
            start(),
            &report(
                "indexer",
                health::SERVICE_FAILING,
                true,
                start() - chrono::Duration::seconds(30),
            ),
        );
        assert_eq!(
            verdicts(&r),
            [
                ("disk_full".into(), "indexer".into(), Verdict::Band),
                ("service_failing".into(), "indexer".into(), Verdict::Active),
            ]
        );
    }

    #[test]
    fn other_logs_and_unknown_conditions_are_ignored_and_services_are_bounded() {
        let mut r = rule();
        let mut plain = report("indexer", health::DISK_FULL, true, start());
        plain.fields.remove("condition");
        assert!(!r.log(start(), &plain));
        assert!(!r.log(start(), &report("indexer", "cpu_on_fire", true, start())));
        assert!(!r.log(start(), &report("  ", health::DISK_FULL, true, start())));
        for i in 0..MAX_SERVICES + 10 {
            r.log(
                start(),
                &report(&format!("s{i}"), health::DISK_FULL, true, start()),
            );
        }
        assert_eq!(verdicts(&r).len(), MAX_SERVICES);
        let long = "x".repeat(10_000);
        r.log(
            start(),
            &report(&long, health::SERVICE_FAILING, true, start()),
        );
        let mut out = Vec::new();
        r.evaluate(start(), &mut out);
        let longest = out.iter().map(|f| f.summary.chars().count()).max().unwrap();
        assert!(
            longest < MAX_SERVICE_CHARS * 2 + MAX_ERROR_CHARS,
            "{longest}"
        );
    }

    #[test]
    fn memory_survives_a_restart() {
        let mut r = rule();
        r.log(
            start(),
            &report("indexer", health::DISK_FULL, true, start()),
        );
        let mut again = rule();
        again.restore(r.snapshot());
        assert_eq!(verdicts(&again), verdicts(&r));
    }
}
