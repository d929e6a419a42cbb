//! late_data: a region that stopped reporting, and the pipeline that stopped altogether.
//!
//! A region is late when nothing arrived from it for `late_after`. When nothing arrived from
//! any region for `late_after`, the pipeline is down: one `pipeline_down` alert fires and
//! inhibits the per-region ones, so an outage is one message, not fourteen.
//!
//! Regions of one round arrive a few moments apart; when the pipeline stops, the first of
//! them passes its deadline slightly before the last. A region therefore counts as late on
//! its own only when another region has reported since, at least half an interval later:
//! otherwise its silence is the pipeline's and `pipeline_down` is about to fire.
//!
//! After a restart, lateness is not judged anew for `late_after`: the alerter's own downtime
//! (and the backlog it has yet to read) is not the pipeline's. Alerts already firing stay
//! firing meanwhile; new ones wait.

use super::{Finding, Rule, RuleContext, Verdict};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use windsock_core::config::{RuleConfig, Severity};
use windsock_core::event::Observation;

/// The rule name of the whole-pipeline alert.
pub const PIPELINE_DOWN: &str = "pipeline_down";

pub struct LateDataRule {
    name: String,
    severity: Severity,
    late_after: chrono::Duration,
    /// Half the collection interval: how far apart one round's arrivals may be.
    round_skew: chrono::Duration,
    pipeline_down: bool,
    regions: Vec<String>,
    /// When this process started watching (not persisted, unlike `memory.since`).
    started: DateTime<Utc>,
    memory: Memory,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Memory {
    since: Option<DateTime<Utc>>,
    /// When something last arrived from each region (arrival, not observation, time: a
    /// replayed or backfilled observation is old but still proves the pipeline works).
    last_seen: BTreeMap<String, DateTime<Utc>>,
}

impl LateDataRule {
    pub fn new(config: &RuleConfig, context: &RuleContext) -> Self {
        let RuleConfig::LateData {
            name,
            severity,
            late_after,
            grace,
            pipeline_down,
        } = config
        else {
            unreachable!("built from a late_data config")
        };
        let late_after = late_after.unwrap_or(context.collection_interval * 2 + *grace);
        Self {
            name: name.clone(),
            severity: *severity,
            late_after: to_chrono(late_after),
            round_skew: to_chrono(context.collection_interval / 2),
            pipeline_down: *pipeline_down,
            regions: context.regions.clone(),
            started: context.since,
            memory: Memory {
                since: Some(context.since),
                last_seen: BTreeMap::new(),
            },
        }
    }

    pub fn late_after(&self) -> Duration {
        self.late_after.to_std().unwrap_or_default()
    }

    fn finding(
        &self,
        rule: &str,
        region: Option<&str>,
        verdict: Verdict,
        silent_for: chrono::Duration,
        summary: String,
    ) -> Finding {
        Finding {
            rule: rule.to_string(),
            region: region.map(str::to_string),
            subject: None,
            severity: if region.is_none() {
                Severity::Critical
            } else {
                self.severity
            },
            verdict,
            value: Some(silent_for.num_milliseconds() as f64 / 1000.0),
            expected: Some(format!("data within {}", human(self.late_after))),
            summary,
            pending_for: Duration::ZERO,
            inhibitor: None,
        }
    }
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// `2m 30s`, for messages.
pub(crate) fn human(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0) as u64;
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

impl Rule for LateDataRule {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "late_data"
    }

    fn alert_names(&self) -> Vec<&str> {
        if self.pipeline_down {
            vec![&self.name, PIPELINE_DOWN]
        } else {
            vec![&self.name]
        }
    }

    fn observe(&mut self, now: DateTime<Utc>, observation: &Observation) {
        let seen = self
            .memory
            .last_seen
            .entry(observation.region.clone())
            .or_insert(now);
        *seen = (*seen).max(now);
    }

    fn evaluate(&self, now: DateTime<Utc>, out: &mut Vec<Finding>) {
        let since = self.memory.since.unwrap_or(now);
        let last_of = |region: &str| self.memory.last_seen.get(region).copied().unwrap_or(since);
        let newest = self
            .memory
            .last_seen
            .values()
            .copied()
            .max()
            .unwrap_or(since)
            .max(since);
        let pipeline_silent = now - newest;
        let pipeline_down = self.pipeline_down && pipeline_silent > self.late_after;
        // Within `late_after` of a restart nothing new fires (Band keeps what fires firing).
        let warming_up = now - self.started <= self.late_after;
        let active = if warming_up {
            Verdict::Band
        } else {
            Verdict::Active
        };
        if self.pipeline_down {
            let (verdict, summary) = if pipeline_down {
                (
                    active,
                    format!(
                        "No region has reported for {}: the pipeline is down",
                        human(pipeline_silent)
                    ),
                )
            } else {
                (Verdict::Clear, "Regions are reporting".to_string())
            };
            out.push(self.finding(PIPELINE_DOWN, None, verdict, pipeline_silent, summary));
        }
        for region in &self.regions {
            let last = last_of(region);
            let silent_for = now - last;
            let others_report = newest - last > self.round_skew;
            let late = silent_for > self.late_after && (others_report || pipeline_down);
            let mut finding = if late {
                self.finding(
                    &self.name,
                    Some(region),
                    active,
                    silent_for,
                    format!("No observation from {region} for {}", human(silent_for)),
                )
            } else {
                self.finding(
                    &self.name,
                    Some(region),
                    Verdict::Clear,
                    silent_for,
                    format!("{region} is reporting"),
                )
            };
            if self.pipeline_down {
                finding.inhibitor = Some(PIPELINE_DOWN.to_string());
            }
            out.push(finding);
        }
    }

    fn snapshot(&self) -> serde_json::Value {
        serde_json::to_value(&self.memory).unwrap_or_default()
    }

    fn restore(&mut self, snapshot: serde_json::Value) {
        if let Ok(memory) = serde_json::from_value::<Memory>(snapshot) {
            self.memory = memory;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn rule(regions: &[&str]) -> (LateDataRule, DateTime<Utc>) {
        let since = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let context = RuleContext {
            regions: regions.iter().map(|s| s.to_string()).collect(),
            collection_interval: Duration::from_secs(10),
            since,
        };
        let config = RuleConfig::LateData {
            name: "late_data".into(),
            severity: Severity::Warning,
            late_after: None,
            grace: Duration::from_secs(5),
            pipeline_down: true,
        };
        (LateDataRule::new(&config, &context), since)
    }

    fn observe(rule: &mut LateDataRule, at: DateTime<Utc>, region: &str) {
        let observation = Observation {
            region: region.into(),
            ..Default::default()
        };
        rule.observe(at, &observation);
    }

    fn verdicts(rule: &LateDataRule, now: DateTime<Utc>) -> Vec<(Option<String>, Verdict)> {
        let mut out = Vec::new();
        rule.evaluate(now, &mut out);
        out.into_iter().map(|f| (f.region, f.verdict)).collect()
    }

    #[test]
    fn late_after_defaults_to_two_intervals_plus_grace() {
        let (rule, _) = rule(&["A"]);
        assert_eq!(rule.late_after(), Duration::from_secs(25));
    }

    #[test]
    fn one_silent_region_is_late_while_others_report() {
        let (mut rule, t0) = rule(&["A", "B"]);
        let s = chrono::Duration::seconds;
        observe(&mut rule, t0, "A");
        observe(&mut rule, t0, "B");
        for round in 1..=3 {
            observe(&mut rule, t0 + s(10 * round), "A");
        }
        // B last reported at t0: 25 s later it is late; A reports, so no pipeline alert.
        let v = verdicts(&rule, t0 + s(26));
        assert_eq!(v[0], (None, Verdict::Clear));
        assert_eq!(v[1], (Some("A".into()), Verdict::Clear));
        assert_eq!(v[2], (Some("B".into()), Verdict::Active));
        assert_eq!(
            verdicts(&rule, t0 + s(24))[2].1,
            Verdict::Clear,
            "not before the deadline"
        );
    }

    #[test]
    fn a_stopped_pipeline_is_one_alert_that_inhibits_the_regions() {
        let (mut rule, t0) = rule(&["A", "B"]);
        let ms = chrono::Duration::milliseconds;
        observe(&mut rule, t0, "A");
        observe(&mut rule, t0 + ms(300), "B");
        // A's deadline passed, B's not yet: A's silence is the pipeline's, not A's alone.
        let v = verdicts(&rule, t0 + ms(25_100));
        assert!(
            v.iter().all(|(_, verdict)| *verdict == Verdict::Clear),
            "{v:?}"
        );
        let v = verdicts(&rule, t0 + ms(25_400));
        assert_eq!(v[0], (None, Verdict::Active));
        assert!(v[1..]
            .iter()
            .all(|(_, verdict)| *verdict == Verdict::Active));
    }

    #[test]
    fn after_a_restart_nothing_new_fires_for_late_after() {
        let (mut before, t0) = rule(&["A", "B"]);
        observe(&mut before, t0, "A");
        observe(&mut before, t0, "B");
        // Restarted an hour later: the old memory says everyone is an hour late.
        let restart = t0 + chrono::Duration::hours(1);
        let context = RuleContext {
            regions: vec!["A".into(), "B".into()],
            collection_interval: Duration::from_secs(10),
            since: restart,
        };
        let mut after = LateDataRule::new(&before_config(), &context);
        after.restore(before.snapshot());
        let v = verdicts(&after, restart + chrono::Duration::seconds(5));
        assert!(
            v.iter().all(|(_, verdict)| *verdict == Verdict::Band),
            "{v:?}"
        );
        let v = verdicts(&after, restart + chrono::Duration::seconds(26));
        assert_eq!(
            v[0],
            (None, Verdict::Active),
            "after the warm-up the silence counts: the pipeline is down"
        );
    }

    fn before_config() -> RuleConfig {
        RuleConfig::LateData {
            name: "late_data".into(),
            severity: Severity::Warning,
            late_after: None,
            grace: Duration::from_secs(5),
            pipeline_down: true,
        }
    }

    #[test]
    fn memory_survives_a_snapshot() {
        let (mut rule, t0) = rule(&["A"]);
        observe(&mut rule, t0 + chrono::Duration::seconds(100), "A");
        let (mut again, _) = self::rule(&["A"]);
        again.restore(rule.snapshot());
        assert_eq!(
            verdicts(&again, t0 + chrono::Duration::seconds(110))[1].1,
            Verdict::Clear
        );
    }
}
