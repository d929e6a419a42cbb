//! The alert lifecycle as a pure state machine: fed observations, forecasts and the time, it
//! says which alerts changed state and which notifications are due. No tasks, no I/O: the
//! runtime persists what it returns before anything leaves the process.
//!
//! One alert per (rule, region) fingerprint (plus its subject, such as the failing service of
//! a `pipeline_health` alert, when it has one):
//! - a condition that becomes active opens an alert, `pending` while the rule's `for` runs,
//!   then `firing`;
//! - a firing alert resolves only once its condition has been clear for `min_hold` (the
//!   rules add hysteresis: a value between firing and clearing keeps it firing);
//! - a firing alert is announced once, reminded every `repeat_interval`, and its resolution
//!   is announced if and only if its firing was: every page gets its closure;
//! - silenced or inhibited alerts are tracked but not announced until that ends.

use crate::rules::{Finding, Rule, Verdict};
use crate::silence::Silence;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use windsock_core::config::Severity;
use windsock_core::event::{stable_id, AlertEvent, AlertState, Forecast, LogEvent, Observation};

#[derive(Clone, Copy, Debug)]
pub struct Lifecycle {
    pub min_hold: Duration,
    /// Zero: no reminders.
    pub repeat_interval: Duration,
}

/// One occurrence of an alert: from its condition becoming active to its resolution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    /// This occurrence (a fingerprint fires many times over the months).
    pub id: String,
    pub fingerprint: String,
    pub rule: String,
    pub region: Option<String>,
    /// What the alert is about besides its region (see [`Finding::subject`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub severity: Severity,
    pub state: AlertState,
    pub started_at: DateTime<Utc>,
    pub fired_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub value: Option<f64>,
    pub expected: Option<String>,
    pub summary: String,
    /// Since when the condition has been clear, while firing.
    pub clear_since: Option<DateTime<Utc>>,
    pub silenced_by: Option<String>,
    pub inhibited_by: Option<String>,
    /// Whether its firing was announced (then its resolution will be).
    pub notified_firing: bool,
    pub last_notified_at: Option<DateTime<Utc>>,
}

impl Alert {
    pub fn event(&self, at: DateTime<Utc>) -> AlertEvent {
        AlertEvent {
            fingerprint: self.fingerprint.clone(),
            rule: self.rule.clone(),
            region: self.region.clone(),
            state: self.state,
            severity: self.severity.as_str().to_string(),
            at,
            started_at: self.started_at,
            value: self.value,
            expected: self.expected.clone(),
            message: self.summary.clone(),
        }
    }

    /// The fields whose change must be persisted (values alone are refreshed by the rules).
    #[allow(clippy::type_complexity)]
    fn material(
        &self,
    ) -> (
        AlertState,
        Option<DateTime<Utc>>,
        Option<String>,
        Option<String>,
        bool,
        Option<DateTime<Utc>>,
    ) {
        (
            self.state,
            self.clear_since,
            self.silenced_by.clone(),
            self.inhibited_by.clone(),
            self.notified_firing,
            self.last_notified_at,
        )
    }
}

/// The identity of an alert: its rule and region.
pub fn fingerprint(rule: &str, region: Option<&str>) -> String {
    stable_id(&["fingerprint", rule, region.unwrap_or("")])
}

/// The identity of an alert that may have a subject; without one, the same as
/// [`fingerprint`] (so alerts stored before subjects existed keep their identity).
pub fn fingerprint_of(rule: &str, region: Option<&str>, subject: Option<&str>) -> String {
    match subject {
        None => fingerprint(rule, region),
        Some(subject) => stable_id(&["fingerprint", rule, region.unwrap_or(""), subject]),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKind {
    Firing,
    Resolved,
    /// Still firing after `repeat_interval`.
    Reminder,
}

impl NoticeKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            NoticeKind::Firing => "firing",
            NoticeKind::Resolved => "resolved",
            NoticeKind::Reminder => "reminder",
        }
    }
}

/// What one evaluation changed about one alert.
#[derive(Clone, Debug)]
pub struct Change {
    /// The alert as it is after the change.
    pub alert: Alert,
    /// Set when the state changed: published and kept in the history.
    pub event: Option<AlertEvent>,
    /// Set when a Slack message is due.
    pub notice: Option<NoticeKind>,
}

pub struct Engine {
    rules: Vec<Box<dyn Rule>>,
    lifecycle: Lifecycle,
    /// The latest occurrence per fingerprint.
    alerts: BTreeMap<String, Alert>,
    silences: BTreeMap<String, Silence>,
    findings: Vec<Finding>,
    /// Rule memory changed since the last [`Engine::take_memory`].
    memory_dirty: bool,
}

impl Engine {
    pub fn new(rules: Vec<Box<dyn Rule>>, lifecycle: Lifecycle) -> Self {
        Self {
            rules,
            lifecycle,
            alerts: BTreeMap::new(),
            silences: BTreeMap::new(),
            findings: Vec::new(),
            memory_dirty: false,
        }
    }

    /// Puts back what was persisted before a restart.
    pub fn restore(
        &mut self,
        alerts: Vec<Alert>,
        silences: Vec<Silence>,
        memory: BTreeMap<String, serde_json::Value>,
    ) {
        self.alerts = alerts
            .into_iter()
            .map(|a| (a.fingerprint.clone(), a))
            .collect();
        self.silences = silences.into_iter().map(|s| (s.id.clone(), s)).collect();
        for rule in &mut self.rules {
            if let Some(snapshot) = memory.get(rule.name()) {
                rule.restore(snapshot.clone());
            }
        }
    }

    pub fn observe(&mut self, now: DateTime<Utc>, observation: &Observation) {
        for rule in &mut self.rules {
            rule.observe(now, observation);
        }
        self.memory_dirty = true;
    }

    pub fn forecast(&mut self, forecast: &Forecast) {
        for rule in &mut self.rules {
            rule.forecast(forecast);
        }
        self.memory_dirty = true;
    }

    pub fn log(&mut self, now: DateTime<Utc>, log: &LogEvent) {
        for rule in &mut self.rules {
            // Most logs concern no rule: only a remembered one costs a memory write.
            self.memory_dirty |= rule.log(now, log);
        }
    }

    /// Every rule's memory, if it changed since the last call.
    pub fn take_memory(&mut self) -> Option<BTreeMap<String, serde_json::Value>> {
        if !std::mem::take(&mut self.memory_dirty) {
            return None;
        }
        Some(
            self.rules
                .iter()
                .map(|r| (r.name().to_string(), r.snapshot()))
                .collect(),
        )
    }

    pub fn rules(&self) -> impl Iterator<Item = &dyn Rule> {
        self.rules.iter().map(|r| r.as_ref())
    }

    /// The findings of the latest evaluation.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    pub fn silences(&self) -> impl Iterator<Item = &Silence> {
        self.silences.values()
    }

    pub fn add_silence(&mut self, silence: Silence) {
        self.silences.insert(silence.id.clone(), silence);
    }

    /// Ends a silence now; `None` if there is no such silence.
    pub fn expire_silence(&mut self, id: &str, now: DateTime<Utc>) -> Option<Silence> {
        let silence = self.silences.get_mut(id)?;
        if silence.ends_at > now {
            silence.ends_at = now.max(silence.starts_at);
        }
        Some(silence.clone())
    }

    /// Evaluates every rule at `now` and moves alerts along their lifecycle.
    pub fn evaluate(&mut self, now: DateTime<Utc>) -> Vec<Change> {
        let mut findings = Vec::new();
        for rule in &self.rules {
            rule.evaluate(now, &mut findings);
        }
        let mut changes = Vec::new();
        let mut judged = HashSet::new();
        for finding in &findings {
            let fp = fingerprint_of(
                &finding.rule,
                finding.region.as_deref(),
                finding.subject.as_deref(),
            );
            judged.insert(fp.clone());
            if let Some(change) = self.step(fp, finding, now) {
                changes.push(change);
            }
        }
        // An open alert no rule speaks of any more (its rule was removed) has cleared.
        let orphans: Vec<Alert> = self
            .alerts
            .values()
            .filter(|a| a.state != AlertState::Resolved && !judged.contains(&a.fingerprint))
            .cloned()
            .collect();
        for alert in orphans {
            let finding = Finding {
                rule: alert.rule.clone(),
                region: alert.region.clone(),
                subject: alert.subject.clone(),
                severity: alert.severity,
                verdict: Verdict::Clear,
                value: alert.value,
                expected: alert.expected.clone(),
                summary: format!("{} is no longer evaluated", alert.rule),
                pending_for: Duration::ZERO,
                inhibitor: None,
            };
            if let Some(change) = self.step(alert.fingerprint.clone(), &finding, now) {
                changes.push(change);
            }
        }
        self.findings = findings;
        changes
    }

    fn step(&mut self, fp: String, finding: &Finding, now: DateTime<Utc>) -> Option<Change> {
        let silenced_by = self
            .silences
            .values()
            .find(|s| s.silences(now, &finding.rule, finding.region.as_deref()))
            .map(|s| s.id.clone());
        let open = self
            .alerts
            .get(&fp)
            .filter(|a| a.state != AlertState::Resolved)
            .cloned();
        let (mut alert, mut event, mut notice) = match open {
            None if finding.verdict == Verdict::Active => {
                let state = if finding.pending_for.is_zero() {
                    AlertState::Firing
                } else {
                    AlertState::Pending
                };
                let alert = Alert {
                    id: stable_id(&[
                        "alert",
                        &fp,
                        &now.timestamp_nanos_opt().unwrap_or_default().to_string(),
                    ]),
                    fingerprint: fp.clone(),
                    rule: finding.rule.clone(),
                    region: finding.region.clone(),
                    subject: finding.subject.clone(),
                    severity: finding.severity,
                    state,
                    started_at: now,
                    fired_at: (state == AlertState::Firing).then_some(now),
                    resolved_at: None,
                    value: finding.value,
                    expected: finding.expected.clone(),
                    summary: finding.summary.clone(),
                    clear_since: None,
                    silenced_by: None,
                    inhibited_by: None,
                    notified_firing: false,
                    last_notified_at: None,
                };
                (alert, Some(state), None)
            }
            None => return None,
            Some(mut alert) => {
                let before = alert.state;
                alert.value = finding.value;
                alert.expected = finding.expected.clone();
                alert.summary = finding.summary.clone();
                let mut notice = None;
                match (alert.state, finding.verdict) {
                    (AlertState::Pending, Verdict::Active) => {
                        if to_std(now - alert.started_at) >= finding.pending_for {
                            alert.state = AlertState::Firing;
                            alert.fired_at = Some(now);
                        }
                    }
                    (AlertState::Pending, _) => {
                        alert.state = AlertState::Resolved;
                        alert.resolved_at = Some(now);
                        alert.summary = format!("Cleared before firing: {}", finding.summary);
                    }
                    (AlertState::Firing, Verdict::Active | Verdict::Band) => {
                        alert.clear_since = None
                    }
                    (AlertState::Firing, Verdict::Clear) => {
                        let clear_since = *alert.clear_since.get_or_insert(now);
                        if to_std(now - clear_since) >= self.lifecycle.min_hold {
                            alert.state = AlertState::Resolved;
                            alert.resolved_at = Some(now);
                            alert.clear_since = None;
                            if alert.notified_firing {
                                notice = Some(NoticeKind::Resolved);
                                alert.last_notified_at = Some(now);
                            }
                        }
                    }
                    (AlertState::Resolved, _) => unreachable!("only open alerts are stepped"),
                }
                let changed = (alert.state != before).then_some(alert.state);
                (alert, changed, notice)
            }
        };
        alert.silenced_by = silenced_by;
        // Inhibited while the inhibiting alert is open (not merely while its condition holds:
        // the regions recover in the same moments as the pipeline, and must stay quiet).
        alert.inhibited_by = finding.inhibitor.clone().filter(|rule| {
            self.alerts
                .get(&fingerprint(rule, None))
                .is_some_and(|a| a.state != AlertState::Resolved)
        });
        if alert.state == AlertState::Firing {
            notice = notice.or(self.announce(&mut alert, now));
        }
        let previous = self.alerts.insert(fp, alert.clone());
        let material =
            previous.is_none_or(|p| p.material() != alert.material() || p.id != alert.id);
        let event = event.take().map(|_| alert.event(now));
        if event.is_none() && notice.is_none() && !material {
            return None;
        }
        Some(Change {
            alert,
            event,
            notice: notice.take(),
        })
    }

    /// The Slack message a firing alert calls for now, if any: its first announcement once
    /// nothing holds it back, or a reminder every `repeat_interval`.
    fn announce(&self, alert: &mut Alert, now: DateTime<Utc>) -> Option<NoticeKind> {
        // An alert whose condition already cleared is not announced late: it would page
        // about something over.
        let held_back = alert.silenced_by.is_some()
            || alert.inhibited_by.is_some()
            || alert.clear_since.is_some();
        if held_back {
            return None;
        }
        let reminder_due = alert.last_notified_at.is_some_and(|last| {
            !self.lifecycle.repeat_interval.is_zero()
                && to_std(now - last) >= self.lifecycle.repeat_interval
        });
        let notice = if !alert.notified_firing {
            alert.notified_firing = true;
            NoticeKind::Firing
        } else if reminder_due {
            NoticeKind::Reminder
        } else {
            return None;
        };
        alert.last_notified_at = Some(now);
        Some(notice)
    }

    /// Forgets silences that ended before `before`; returns their ids.
    pub fn forget_silences(&mut self, before: DateTime<Utc>) -> Vec<String> {
        let old: Vec<String> = self
            .silences
            .values()
            .filter(|s| s.ends_at < before)
            .map(|s| s.id.clone())
            .collect();
        for id in &old {
            self.silences.remove(id);
        }
        old
    }
}

fn to_std(d: chrono::Duration) -> Duration {
    d.to_std().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{self, RuleContext};
    use chrono::TimeZone;
    use windsock_core::config::RuleConfig;

    const S: fn(i64) -> chrono::Duration = chrono::Duration::seconds;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    fn engine(configs: Vec<RuleConfig>, regions: &[&str], min_hold: u64, repeat: u64) -> Engine {
        let context = RuleContext {
            regions: regions.iter().map(|s| s.to_string()).collect(),
            collection_interval: Duration::from_secs(10),
            since: t0(),
        };
        Engine::new(
            rules::build(&configs, &context),
            Lifecycle {
                min_hold: Duration::from_secs(min_hold),
                repeat_interval: Duration::from_secs(repeat),
            },
        )
    }

    fn hot(pending_for: u64) -> RuleConfig {
        RuleConfig::Threshold {
            name: "hot".into(),
            severity: Severity::Critical,
            metric: "temperature_c".into(),
            region: None,
            above: Some(40.0),
            below: None,
            pending_for: Duration::from_secs(pending_for),
            hysteresis: 1.0,
        }
    }

    fn reading(engine: &mut Engine, at: DateTime<Utc>, region: &str, t: f64) {
        engine.observe(
            at,
            &Observation {
                region: region.into(),
                observed_at: at,
                fetched_at: at,
                temperature_c: t,
                ..Default::default()
            },
        );
    }

    fn notices(changes: &[Change]) -> Vec<(NoticeKind, Option<String>)> {
        changes
            .iter()
            .filter_map(|c| Some((c.notice?, c.alert.region.clone())))
            .collect()
    }

    #[test]
    fn pending_for_then_firing_then_resolved_after_the_hold() {
        let mut e = engine(vec![hot(60)], &[], 30, 0);
        reading(&mut e, t0(), "Dakar", 42.0);
        let c = e.evaluate(t0());
        assert_eq!(c[0].event.as_ref().unwrap().state, AlertState::Pending);
        assert!(c[0].notice.is_none());
        assert!(e.evaluate(t0() + S(59)).iter().all(|c| c.event.is_none()));
        let c = e.evaluate(t0() + S(60));
        assert_eq!(c[0].event.as_ref().unwrap().state, AlertState::Firing);
        assert_eq!(notices(&c), [(NoticeKind::Firing, Some("Dakar".into()))]);
        reading(&mut e, t0() + S(70), "Dakar", 30.0);
        assert!(notices(&e.evaluate(t0() + S(70))).is_empty());
        assert!(notices(&e.evaluate(t0() + S(99))).is_empty(), "held");
        let c = e.evaluate(t0() + S(100));
        assert_eq!(notices(&c), [(NoticeKind::Resolved, Some("Dakar".into()))]);
        assert_eq!(c[0].event.as_ref().unwrap().state, AlertState::Resolved);
    }

    #[test]
    fn a_pending_alert_that_clears_never_notifies() {
        let mut e = engine(vec![hot(60)], &[], 30, 0);
        reading(&mut e, t0(), "Dakar", 42.0);
        e.evaluate(t0());
        reading(&mut e, t0() + S(10), "Dakar", 20.0);
        let c = e.evaluate(t0() + S(10));
        assert_eq!(c[0].event.as_ref().unwrap().state, AlertState::Resolved);
        assert!(notices(&c).is_empty());
    }

    #[test]
    fn a_flapping_value_pages_once_and_resolves_once() {
        let mut e = engine(vec![hot(0)], &[], 60, 0);
        let mut all = Vec::new();
        for i in 0..30 {
            let t = if i % 2 == 0 { 41.0 } else { 35.0 };
            reading(&mut e, t0() + S(10 * i), "Dakar", t);
            all.extend(notices(&e.evaluate(t0() + S(10 * i))));
        }
        assert_eq!(all, [(NoticeKind::Firing, Some("Dakar".into()))]);
        for i in 30..40 {
            reading(&mut e, t0() + S(10 * i), "Dakar", 35.0);
            all.extend(notices(&e.evaluate(t0() + S(10 * i))));
        }
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].0, NoticeKind::Resolved);
    }

    #[test]
    fn reminders_while_firing() {
        let mut e = engine(vec![hot(0)], &[], 0, 100);
        reading(&mut e, t0(), "Dakar", 42.0);
        let mut kinds = Vec::new();
        for i in 0..=25 {
            kinds.extend(
                notices(&e.evaluate(t0() + S(10 * i)))
                    .into_iter()
                    .map(|n| n.0),
            );
        }
        assert_eq!(
            kinds,
            [
                NoticeKind::Firing,
                NoticeKind::Reminder,
                NoticeKind::Reminder
            ]
        );
    }

    #[test]
    fn silences_hold_back_the_firing_notice_until_they_expire() {
        let mut e = engine(vec![hot(0)], &[], 0, 0);
        e.add_silence(Silence {
            id: "s1".into(),
            rule: Some("hot".into()),
            region: None,
            starts_at: t0(),
            ends_at: t0() + S(60),
            author: "awa".into(),
            comment: "sensor swap".into(),
            created_at: t0(),
        });
        reading(&mut e, t0(), "Dakar", 42.0);
        let c = e.evaluate(t0());
        assert_eq!(c[0].alert.state, AlertState::Firing);
        assert_eq!(c[0].alert.silenced_by.as_deref(), Some("s1"));
        assert!(notices(&c).is_empty());
        assert!(notices(&e.evaluate(t0() + S(30))).is_empty());
        assert_eq!(
            notices(&e.evaluate(t0() + S(60))),
            [(NoticeKind::Firing, Some("Dakar".into()))]
        );
    }

    #[test]
    fn an_alert_resolved_while_silenced_sends_nothing() {
        let mut e = engine(vec![hot(0)], &[], 0, 0);
        e.add_silence(Silence {
            id: "s1".into(),
            rule: None,
            region: Some("Dakar".into()),
            starts_at: t0(),
            ends_at: t0() + S(600),
            author: "awa".into(),
            comment: "".into(),
            created_at: t0(),
        });
        reading(&mut e, t0(), "Dakar", 42.0);
        e.evaluate(t0());
        reading(&mut e, t0() + S(10), "Dakar", 20.0);
        let c = e.evaluate(t0() + S(10));
        assert_eq!(c[0].alert.state, AlertState::Resolved);
        assert!(notices(&c).is_empty());
    }

    #[test]
    fn pipeline_down_is_one_message_and_its_regions_stay_quiet() {
        let regions = ["A", "B", "C"];
        let late = RuleConfig::LateData {
            name: "late_data".into(),
            severity: Severity::Warning,
            late_after: Some(Duration::from_secs(30)),
            grace: Duration::ZERO,
            pipeline_down: true,
        };
        let mut e = engine(vec![late], &regions, 0, 0);
        for r in regions {
            reading(&mut e, t0(), r, 25.0);
        }
        let mut all = Vec::new();
        for i in 0..10 {
            all.extend(notices(&e.evaluate(t0() + S(5 * i))));
        }
        assert_eq!(all, [(NoticeKind::Firing, None)]);
        let firing = e.alerts().filter(|a| a.state == AlertState::Firing).count();
        assert_eq!(
            firing, 4,
            "the regions are tracked as firing, just not announced"
        );
        for r in regions {
            reading(&mut e, t0() + S(50), r, 25.0);
        }
        assert_eq!(
            notices(&e.evaluate(t0() + S(50))),
            [(NoticeKind::Resolved, None)]
        );
        assert!(e.alerts().all(|a| a.state == AlertState::Resolved));
    }

    #[test]
    fn state_survives_a_restore() {
        let mut e = engine(vec![hot(0)], &[], 60, 0);
        reading(&mut e, t0(), "Dakar", 42.0);
        e.evaluate(t0());
        let memory = e.take_memory().unwrap();
        let alerts: Vec<Alert> = e.alerts().cloned().collect();
        let mut again = engine(vec![hot(0)], &[], 60, 0);
        again.restore(alerts, vec![], memory);
        // Already announced: no second firing notice after the restart.
        assert!(notices(&again.evaluate(t0() + S(1))).is_empty());
        reading(&mut again, t0() + S(2), "Dakar", 20.0);
        again.evaluate(t0() + S(2));
        assert_eq!(
            notices(&again.evaluate(t0() + S(62))),
            [(NoticeKind::Resolved, Some("Dakar".into()))]
        );
    }
}
