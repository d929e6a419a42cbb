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
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;
use windsock_core::config::{RuleConfig, Severity};
use windsock_core::event::Observation;

/// The rule name of the whole-pipeline alert.
pub const PIPELINE_DOWN: &str = "pipeline_down";

/// Deadlines are judged `late_after` and one millisecond past the last arrival (late means
/// silent for more than `late_after`).
const TICK: chrono::Duration = chrono::Duration::milliseconds(1);

pub struct LateDataRule {
    name: String,
    severity: Severity,
    late_after: chrono::Duration,
    /// Half the collection interval: how far apart one round's arrivals may be.
    round_skew: chrono::Duration,
    pipeline_down: bool,
    /// The configured regions, in their order.
    regions: Vec<String>,
    configured: HashSet<String>,
    /// Configured regions this instance watches: all of them, less those forgotten
    /// ([`Rule::restore_region`] with `None`: another instance owns them), until restored
    /// or observed again.
    watched: HashSet<String>,
    /// When this process started watching (not persisted, unlike `since`).
    started: DateTime<Utc>,
    /// When watching started, persisted (region `""`): the baseline of a region that never
    /// reported.
    since: DateTime<Utc>,
    /// When something last arrived from each region (arrival, not observation, time: a
    /// replayed observation is old but still proves the pipeline works; a backfilled one
    /// is not an arrival).
    last_seen: HashMap<String, DateTime<Utc>>,
    /// The latest arrival of any region.
    newest: Option<DateTime<Utc>>,
    /// Each watched region's next deadline (its last arrival + `late_after`): the timer.
    deadlines: BTreeSet<(DateTime<Utc>, String)>,
    deadline_of: HashMap<String, DateTime<Utc>>,
    /// Watched regions past their deadline (until they report).
    overdue: BTreeSet<String>,
    /// Overdue regions not yet late on their own: they are once another region reports
    /// `round_skew` after them (keyed by that instant).
    awaiting_others: BTreeSet<(DateTime<Utc>, String)>,
    /// What the last [`Rule::due`] saw: pipeline down, warming up, the newest arrival.
    seen: (bool, bool, Option<DateTime<Utc>>),
}

/// The rule's memory of one region (`""`: `since`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct RegionMemory {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_seen: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<DateTime<Utc>>,
}

/// The memory as one document (before per-region state), still read to migrate it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Memory {
    since: Option<DateTime<Utc>>,
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
        let mut rule = Self {
            name: name.clone(),
            severity: *severity,
            late_after: to_chrono(late_after),
            round_skew: to_chrono(context.collection_interval / 2),
            pipeline_down: *pipeline_down,
            regions: context.regions.clone(),
            configured: context.regions.iter().cloned().collect(),
            watched: HashSet::new(),
            started: context.since,
            since: context.since,
            last_seen: HashMap::new(),
            newest: None,
            deadlines: BTreeSet::new(),
            deadline_of: HashMap::new(),
            overdue: BTreeSet::new(),
            awaiting_others: BTreeSet::new(),
            seen: (false, false, None),
        };
        for region in context.regions.clone() {
            rule.watch(&region);
        }
        rule
    }

    pub fn late_after(&self) -> Duration {
        self.late_after.to_std().unwrap_or_default()
    }

    fn last_of(&self, region: &str) -> DateTime<Utc> {
        self.last_seen.get(region).copied().unwrap_or(self.since)
    }

    fn newest(&self) -> DateTime<Utc> {
        self.newest.unwrap_or(self.since).max(self.since)
    }

    fn is_pipeline_down(&self, now: DateTime<Utc>) -> bool {
        self.pipeline_down && now - self.newest() > self.late_after
    }

    fn warming_up(&self, now: DateTime<Utc>) -> bool {
        now - self.started <= self.late_after
    }

    /// Watches `region` (if configured) from its last arrival: sets its deadline.
    fn watch(&mut self, region: &str) {
        if !self.configured.contains(region) {
            return;
        }
        self.unwatch(region);
        self.watched.insert(region.to_string());
        let deadline = self.last_of(region) + self.late_after + TICK;
        self.deadlines.insert((deadline, region.to_string()));
        self.deadline_of.insert(region.to_string(), deadline);
    }

    /// Drops `region`'s timers.
    fn unwatch(&mut self, region: &str) {
        self.watched.remove(region);
        if let Some(deadline) = self.deadline_of.remove(region) {
            self.deadlines.remove(&(deadline, region.to_string()));
        }
        if self.overdue.remove(region) {
            let key = self.last_of(region) + self.round_skew;
            self.awaiting_others.remove(&(key, region.to_string()));
        }
    }

    fn arrived(&mut self, region: &str, at: DateTime<Utc>) {
        let seen = self.last_seen.entry(region.to_string()).or_insert(at);
        *seen = (*seen).max(at);
        self.newest = Some(self.newest.map_or(at, |n| n.max(at)));
    }

    /// The collector's interval: what people expect between two reports.
    fn interval(&self) -> Duration {
        (self.round_skew * 2).to_std().unwrap_or_default()
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
            // Whole seconds: people read `178 s`, not `178.874`.
            value: Some(silent_for.num_seconds() as f64),
            expected: Some(crate::wording::reports_every(
                self.interval(),
                self.late_after.to_std().unwrap_or_default(),
            )),
            summary,
            pending_for: Duration::ZERO,
            inhibitor: None,
        }
    }
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// `2 min 30 s`, for messages.
pub(crate) fn human(d: chrono::Duration) -> String {
    crate::wording::since(d)
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
        if observation.backfill {
            // Fetched for the past: it says nothing of whether the region reports now.
            return;
        }
        // The deadline moves (an observation of a region means this instance owns it).
        let configured = self.configured.contains(&observation.region);
        if configured {
            self.unwatch(&observation.region);
        }
        self.arrived(&observation.region, now);
        if configured {
            self.watch(&observation.region);
        }
    }

    fn regional(&self) -> bool {
        true
    }

    fn regions(&self) -> Vec<String> {
        let mut regions = vec![String::new()];
        regions.extend(
            self.regions
                .iter()
                .filter(|r| self.watched.contains(*r))
                .cloned(),
        );
        regions
    }

    fn due(&mut self, now: DateTime<Utc>) -> Vec<String> {
        // The pipeline's finding is one: it is judged at every evaluation.
        let mut due = vec![String::new()];
        while let Some((deadline, region)) = self.deadlines.first().cloned() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            self.deadline_of.remove(&region);
            let key = self.last_of(&region) + self.round_skew;
            self.overdue.insert(region.clone());
            self.awaiting_others.insert((key, region.clone()));
            due.push(region);
        }
        let newest = self.newest();
        while let Some((key, region)) = self.awaiting_others.first().cloned() {
            if key >= newest {
                break;
            }
            self.awaiting_others.pop_first();
            due.push(region);
        }
        // The pipeline going down or back up, or the warm-up ending, changes every overdue
        // region's verdict (rare: at most a few times an outage).
        let seen = (
            self.is_pipeline_down(now),
            self.warming_up(now),
            self.newest,
        );
        if (seen.0, seen.1) != (self.seen.0, self.seen.1) {
            due.extend(self.overdue.iter().cloned());
        }
        self.seen = seen;
        due.sort_unstable();
        due.dedup();
        due
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        let mut next = self.deadlines.first().map(|(d, _)| *d);
        let mut consider = |at: DateTime<Utc>| next = Some(next.map_or(at, |n| n.min(at)));
        if self.pipeline_down && !self.seen.0 {
            consider(self.newest() + self.late_after + TICK);
        }
        if self.seen.1 {
            consider(self.started + self.late_after + TICK);
        }
        next
    }

    fn region_memory(&self, region: &str) -> Option<serde_json::Value> {
        let memory = if region.is_empty() {
            RegionMemory {
                since: Some(self.since),
                last_seen: None,
            }
        } else {
            RegionMemory {
                last_seen: Some(*self.last_seen.get(region)?),
                since: None,
            }
        };
        serde_json::to_value(memory).ok()
    }

    fn restore_region(&mut self, region: &str, memory: Option<serde_json::Value>) {
        let memory: Option<RegionMemory> = memory.and_then(|m| serde_json::from_value(m).ok());
        if region.is_empty() {
            if let Some(since) = memory.and_then(|m| m.since) {
                self.since = since;
                // Every region that never reported is judged from that baseline.
                let unseen: Vec<String> = self
                    .watched
                    .iter()
                    .filter(|r| !self.last_seen.contains_key(*r))
                    .cloned()
                    .collect();
                for region in unseen {
                    self.watch(&region);
                }
            }
            return;
        }
        match memory {
            Some(memory) => {
                self.unwatch(region);
                self.last_seen.remove(region);
                if let Some(at) = memory.last_seen {
                    self.arrived(region, at);
                }
                self.watch(region);
            }
            None => {
                self.unwatch(region);
                self.last_seen.remove(region);
                // Nothing known of it (it never reported, or was forgotten: another instance
                // owns it, and the engine's owner filter keeps it from being judged here): a
                // configured region is still expected, from the baseline on.
                self.watch(region);
            }
        }
    }

    fn evaluate_region(&self, now: DateTime<Utc>, region: &str, out: &mut Vec<Finding>) {
        let newest = self.newest();
        let pipeline_down = self.is_pipeline_down(now);
        // Within `late_after` of a restart nothing new fires (Band keeps what fires firing).
        let active = if self.warming_up(now) {
            Verdict::Band
        } else {
            Verdict::Active
        };
        if region.is_empty() {
            if self.pipeline_down {
                let pipeline_silent = now - newest;
                let (verdict, summary) = if pipeline_down {
                    (
                        active,
                        format!(
                            "No region has reported for {} (expected every {}): the pipeline is down",
                            human(pipeline_silent),
                            crate::wording::duration(self.interval())
                        ),
                    )
                } else {
                    (Verdict::Clear, "Regions are reporting".to_string())
                };
                out.push(self.finding(PIPELINE_DOWN, None, verdict, pipeline_silent, summary));
            }
            return;
        }
        if !self.watched.contains(region) {
            return;
        }
        let last = self.last_of(region);
        let silent_for = now - last;
        let others_report = newest - last > self.round_skew;
        let late = silent_for > self.late_after && (others_report || pipeline_down);
        let mut finding = if late {
            self.finding(
                &self.name,
                Some(region),
                active,
                silent_for,
                format!(
                    "{region} has been silent for {}, expected every {}",
                    human(silent_for),
                    crate::wording::duration(self.interval())
                ),
            )
        } else {
            self.finding(
                &self.name,
                Some(region),
                Verdict::Clear,
                silent_for,
                format!(
                    "{region} is reporting (last report {} ago)",
                    human(silent_for)
                ),
            )
        };
        if self.pipeline_down {
            finding.inhibitor = Some(PIPELINE_DOWN.to_string());
        }
        out.push(finding);
    }

    fn evaluate(&self, now: DateTime<Utc>, out: &mut Vec<Finding>) {
        for region in self.regions() {
            self.evaluate_region(now, &region, out);
        }
    }

    fn snapshot(&self) -> serde_json::Value {
        let memory = Memory {
            since: Some(self.since),
            last_seen: self
                .last_seen
                .iter()
                .map(|(r, t)| (r.clone(), *t))
                .collect(),
        };
        serde_json::to_value(&memory).unwrap_or_default()
    }

    fn restore(&mut self, snapshot: serde_json::Value) {
        let Ok(memory) = serde_json::from_value::<Memory>(snapshot) else {
            return;
        };
        if let Some(since) = memory.since {
            let since = serde_json::to_value(RegionMemory {
                since: Some(since),
                last_seen: None,
            });
            self.restore_region("", since.ok());
        }
        for (region, at) in memory.last_seen {
            let memory = serde_json::to_value(RegionMemory {
                last_seen: Some(at),
                since: None,
            });
            self.restore_region(&region, memory.ok());
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
    fn a_backfilled_observation_is_not_an_arrival() {
        let (mut rule, t0) = rule(&["A", "B"]);
        let s = chrono::Duration::seconds;
        observe(&mut rule, t0, "A");
        observe(&mut rule, t0, "B");
        // B's backfill keeps coming; only A reports live.
        for round in 1..=3 {
            observe(&mut rule, t0 + s(10 * round), "A");
            let backfilled = Observation {
                region: "B".into(),
                observed_at: t0 - chrono::Duration::hours(round),
                backfill: true,
                ..Default::default()
            };
            rule.observe(t0 + s(10 * round), &backfilled);
        }
        let v = verdicts(&rule, t0 + s(26));
        assert_eq!(v[2], (Some("B".into()), Verdict::Active), "{v:?}");
        assert_eq!(
            rule.region_memory("B"),
            Some(serde_json::json!({"last_seen": t0})),
            "its last arrival is the live one"
        );
    }

    /// The timer: an evaluation is told only the regions whose deadline passed (and `""`,
    /// the pipeline), not every region.
    #[test]
    fn only_regions_past_their_deadline_are_due() {
        let names: Vec<String> = (0..1000).map(|i| format!("R{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (mut rule, t0) = rule(&refs);
        let s = chrono::Duration::seconds;
        for name in &refs {
            observe(&mut rule, t0, name);
        }
        assert_eq!(rule.due(t0 + s(1)), [""]);
        // R7 stops; everyone else reports every 10 s.
        for round in 1..=2 {
            for name in refs.iter().filter(|n| **n != "R7") {
                observe(&mut rule, t0 + s(10 * round), name);
            }
            let due = rule.due(t0 + s(10 * round));
            assert!(
                due.len() <= 1,
                "round {round}: {:?}",
                &due[..due.len().min(5)]
            );
        }
        assert!(rule.next_due().unwrap() <= t0 + s(26));
        let due = rule.due(t0 + s(26));
        assert_eq!(due, ["", "R7"]);
        let mut out = Vec::new();
        rule.evaluate_region(t0 + s(26), "R7", &mut out);
        assert_eq!(out[0].verdict, Verdict::Active);
        assert!(rule.due(t0 + s(27)).len() <= 1, "R7 is due once");
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
