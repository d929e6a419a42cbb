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
use crate::store::OutboxMessage;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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
    /// Who acknowledged this occurrence (`null`: nobody). No reminders are sent while it is
    /// acknowledged; a new occurrence (the alert firing again) starts unacknowledged.
    #[serde(default)]
    pub acknowledged_by: Option<String>,
    /// When it was acknowledged (`null`: it is not).
    #[serde(default)]
    pub acknowledged_at: Option<DateTime<Utc>>,
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

/// The version of [`RegionState`] this build writes; it reads this one and older.
pub const REGION_STATE_VERSION: u32 = 1;

/// Everything the alerter knows about one region: what moves with it from one instance to
/// another (a Kafka partition changing hands: the changelog holds the latest per region).
/// Region-less state (`pipeline_down`, the pipeline's own health alerts) is region `""`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionState {
    /// [`REGION_STATE_VERSION`] when written.
    pub version: u32,
    pub region: String,
    /// Each rule's memory of the region, by rule name (rules with none are absent): late
    /// data's last arrival, threshold's and deviation's latest reading and streak, the
    /// outlier rule's recent readings and judgement.
    #[serde(default)]
    pub memory: BTreeMap<String, serde_json::Value>,
    /// The latest occurrence of each of the region's alerts, open or resolved, with whether
    /// its firing was announced (so its resolution is, once).
    #[serde(default)]
    pub alerts: Vec<Alert>,
    /// Its Slack messages decided and not delivered yet, oldest first.
    #[serde(default)]
    pub outbox: Vec<OutboxMessage>,
}

impl RegionState {
    /// An empty state of `region`: what [`Engine::restore_region`] makes of a region nothing
    /// is known of.
    pub fn empty(region: &str) -> Self {
        Self {
            version: REGION_STATE_VERSION,
            region: region.to_string(),
            memory: BTreeMap::new(),
            alerts: Vec::new(),
            outbox: Vec::new(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a state written by this version or an older one; a newer one is refused (its
    /// fields could mean what this build does not know).
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let state: RegionState = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if state.version > REGION_STATE_VERSION {
            return Err(format!(
                "region state version {} is newer than this alerter's ({REGION_STATE_VERSION})",
                state.version
            ));
        }
        Ok(state)
    }
}

/// The key of an alert's region: its region, `""` for none.
pub fn region_key(region: Option<&str>) -> &str {
    region.unwrap_or("")
}

/// One rule's memory of one region, to write (`body: None`: to delete).
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryEntry {
    pub rule: String,
    pub region: String,
    pub body: Option<String>,
}

/// A (rule, region) entry: the rule's index and the region (`""`: none).
type Key = (usize, String);

/// The lifecycle over the rules, evaluated incrementally: an input marks the (rule, region)
/// entries it concerns, an evaluation judges those, the regions the rules' timers say are
/// due (late-data deadlines, a closed outlier round) and the open alerts (whose hold,
/// pending time, reminders and silences run on the clock); nothing walks every region
/// (except once after start-up).
pub struct Engine {
    rules: Vec<Box<dyn Rule>>,
    lifecycle: Lifecycle,
    /// The latest occurrence per fingerprint.
    alerts: BTreeMap<String, Alert>,
    /// Fingerprints of the alerts held, by region key.
    by_region: HashMap<String, BTreeSet<String>>,
    /// Fingerprints of the open (pending, firing) alerts.
    open: BTreeSet<String>,
    silences: BTreeMap<String, Silence>,
    /// The latest finding per fingerprint, and the fingerprints each entry found.
    findings: HashMap<String, Finding>,
    by_key: HashMap<Key, Vec<String>>,
    /// Entries to judge at the next evaluation.
    dirty: HashSet<Key>,
    /// Entries whose memory changed since the last [`Engine::take_memory`].
    memory_dirty: HashSet<Key>,
    /// Entries with a row in the store: a rule forgetting one is a delete, and one it never
    /// knew (a forecast-deviation region without a forecast) costs no write.
    stored: HashSet<Key>,
    /// Regions whose state changed since the last [`Engine::changed_regions`].
    changed: BTreeSet<String>,
    /// Every entry is judged at the next evaluation (after start-up).
    full: bool,
    /// The regions this instance judges (`""`: the region-less state), when it shares the
    /// regions with other instances (Kafka partitions, see `ownership.rs`); all when `None`.
    owner: Option<Owner>,
}

/// Whether this instance owns a region (see [`Engine::set_owner`]).
pub type Owner = Box<dyn Fn(&str) -> bool + Send + Sync>;

impl Engine {
    pub fn new(rules: Vec<Box<dyn Rule>>, lifecycle: Lifecycle) -> Self {
        Self {
            rules,
            lifecycle,
            alerts: BTreeMap::new(),
            by_region: HashMap::new(),
            open: BTreeSet::new(),
            silences: BTreeMap::new(),
            findings: HashMap::new(),
            by_key: HashMap::new(),
            dirty: HashSet::new(),
            memory_dirty: HashSet::new(),
            stored: HashSet::new(),
            changed: BTreeSet::new(),
            full: true,
            owner: None,
        }
    }

    /// Judges only the regions `owner` says are this instance's (all when `None`): the others
    /// are neither judged nor moved along their lifecycle, so nothing is decided or sent for
    /// them here. Every owned region is judged at the next evaluation.
    pub fn set_owner(&mut self, owner: Option<Owner>) {
        self.owner = owner;
        self.full = true;
    }

    fn owns(&self, region: &str) -> bool {
        self.owner.as_ref().is_none_or(|owns| owns(region))
    }

    /// Puts back what was persisted before a restart: open alerts, silences, each rule's
    /// memory per (rule name, region), and the rules' memory in the older format (one
    /// document per rule), which is read and then written again per region.
    pub fn restore(
        &mut self,
        alerts: Vec<Alert>,
        silences: Vec<Silence>,
        memory: BTreeMap<(String, String), serde_json::Value>,
        legacy: BTreeMap<String, serde_json::Value>,
    ) {
        for alert in alerts {
            self.put(alert);
        }
        self.silences = silences.into_iter().map(|s| (s.id.clone(), s)).collect();
        for (i, rule) in self.rules.iter_mut().enumerate() {
            if let Some(snapshot) = legacy.get(rule.name()) {
                rule.restore(snapshot.clone());
                tracing::info!(
                    rule = rule.name(),
                    "rule memory in the old format (one document) read; written per region"
                );
                for region in rule.regions() {
                    self.memory_dirty.insert((i, region));
                }
            }
        }
        for ((name, region), value) in memory {
            if let Some(i) = self.rules.iter().position(|r| r.name() == name) {
                self.rules[i].restore_region(&region, Some(value));
                self.stored.insert((i, region));
            }
        }
        self.full = true;
    }

    fn mark(&mut self, key: Key) {
        self.changed.insert(key.1.clone());
        self.memory_dirty.insert(key.clone());
        self.dirty.insert(key);
    }

    pub fn observe(&mut self, now: DateTime<Utc>, observation: &Observation) {
        for i in 0..self.rules.len() {
            self.rules[i].observe(now, observation);
            if self.rules[i].regional() {
                self.mark((i, observation.region.clone()));
            }
        }
    }

    pub fn forecast(&mut self, forecast: &Forecast) {
        for i in 0..self.rules.len() {
            self.rules[i].forecast(forecast);
            if self.rules[i].regional() {
                self.mark((i, forecast.region.clone()));
            }
        }
    }

    pub fn log(&mut self, now: DateTime<Utc>, log: &LogEvent) {
        for i in 0..self.rules.len() {
            // Most logs concern no rule: only a remembered one costs a memory write.
            if self.rules[i].log(now, log) && !self.rules[i].regional() {
                self.mark((i, String::new()));
            }
        }
    }

    /// The memory entries that changed since the last call, to write with the decisions.
    pub fn take_memory(&mut self) -> Vec<MemoryEntry> {
        let dirty = std::mem::take(&mut self.memory_dirty);
        let mut entries = Vec::with_capacity(dirty.len());
        for key in dirty {
            let rule = &self.rules[key.0];
            let body = rule.region_memory_text(&key.1);
            if body.is_some() {
                if !self.stored.contains(&key) {
                    self.stored.insert(key.clone());
                }
            } else if !self.stored.remove(&key) {
                continue;
            }
            entries.push(MemoryEntry {
                rule: rule.name().to_string(),
                region: key.1,
                body,
            });
        }
        entries
    }

    /// When an evaluation is next due without any input (the earliest late-data deadline,
    /// an outlier round closing).
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.rules.iter().filter_map(|r| r.next_due()).min()
    }

    /// Adds `rule`, or replaces the rule of its name, at run time (rules created through the
    /// API). A replaced rule starts afresh: its memory is forgotten (the stored rows are
    /// deleted with the next [`Engine::take_memory`]); its open alerts carry on when the new
    /// rule finds them again, else they clear (after `min_hold`, announced if their firing
    /// was). The other rules keep their memory and alerts.
    pub fn set_rule(&mut self, rule: Box<dyn Rule>) {
        match self.rules.iter().position(|r| r.name() == rule.name()) {
            Some(i) => {
                self.forget_findings_of(i);
                self.rules[i] = rule;
                // The old rule's stored memory: deleted, as the new rule has none of it.
                let stored: Vec<Key> = self.stored.iter().filter(|k| k.0 == i).cloned().collect();
                self.memory_dirty.extend(stored);
                self.dirty.retain(|k| k.0 != i);
            }
            None => self.rules.push(rule),
        }
        self.full = true;
    }

    /// Removes the rule `name` at run time; whether there was one. Its open alerts are no
    /// longer spoken of by any rule: they clear like any other (resolved after `min_hold`, the
    /// resolution announced if and only if the firing was), so every page gets its closure.
    /// Its stored memory is the caller's to delete (`Store::delete_api_rule`).
    pub fn remove_rule(&mut self, name: &str) -> bool {
        let Some(removed) = self.rules.iter().position(|r| r.name() == name) else {
            return false;
        };
        self.forget_findings_of(removed);
        self.rules.remove(removed);
        // Entries are keyed by the rule's index: those after it move down by one.
        let shift = |keys: HashSet<Key>| -> HashSet<Key> {
            keys.into_iter()
                .filter(|k| k.0 != removed)
                .map(|(i, region)| (if i > removed { i - 1 } else { i }, region))
                .collect()
        };
        self.dirty = shift(std::mem::take(&mut self.dirty));
        self.memory_dirty = shift(std::mem::take(&mut self.memory_dirty));
        self.stored = shift(std::mem::take(&mut self.stored));
        self.by_key = std::mem::take(&mut self.by_key)
            .into_iter()
            .filter(|(k, _)| k.0 != removed)
            .map(|((i, region), fps)| ((if i > removed { i - 1 } else { i }, region), fps))
            .collect();
        self.full = true;
        true
    }

    /// Forgets the latest findings of rule `i` (its open alerts then clear unless it finds
    /// them again).
    fn forget_findings_of(&mut self, i: usize) {
        let keys: Vec<Key> = self.by_key.keys().filter(|k| k.0 == i).cloned().collect();
        for key in keys {
            for fp in self.by_key.remove(&key).unwrap_or_default() {
                self.findings.remove(&fp);
            }
        }
    }

    pub fn rules(&self) -> impl Iterator<Item = &dyn Rule> {
        self.rules.iter().map(|r| r.as_ref())
    }

    /// The latest findings: rule by rule, region by region.
    pub fn findings(&self) -> Vec<Finding> {
        let mut keys: Vec<&Key> = self.by_key.keys().collect();
        keys.sort_unstable();
        keys.into_iter()
            .flat_map(|key| &self.by_key[key])
            .filter_map(|fp| self.findings.get(fp).cloned())
            .collect()
    }

    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    /// The alerts pending or firing.
    pub fn open_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.open.iter().filter_map(|fp| self.alerts.get(fp))
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

    /// Holds `alert` as its fingerprint's latest occurrence.
    fn put(&mut self, alert: Alert) -> Option<Alert> {
        let fp = alert.fingerprint.clone();
        if alert.state == AlertState::Resolved {
            self.open.remove(&fp);
        } else {
            self.open.insert(fp.clone());
        }
        self.by_region
            .entry(region_key(alert.region.as_deref()).to_string())
            .or_default()
            .insert(fp.clone());
        self.alerts.insert(fp, alert)
    }

    /// Evaluates what changed since the last evaluation at `now` and moves alerts along
    /// their lifecycle.
    pub fn evaluate(&mut self, now: DateTime<Utc>) -> Vec<Change> {
        let mut keys: BTreeSet<Key> = self.dirty.drain().collect();
        if std::mem::take(&mut self.full) {
            for (i, rule) in self.rules.iter().enumerate() {
                keys.extend(rule.regions().into_iter().map(|region| (i, region)));
            }
        }
        for i in 0..self.rules.len() {
            for region in self.rules[i].due(now) {
                self.memory_dirty.insert((i, region.clone()));
                keys.insert((i, region));
            }
        }
        let mut changes = Vec::new();
        let mut stepped = HashSet::new();
        let mut out = Vec::new();
        for key in keys {
            if !self.owns(&key.1) {
                continue;
            }
            out.clear();
            self.rules[key.0].evaluate_region(now, &key.1, &mut out);
            let before = self.by_key.remove(&key).unwrap_or_default();
            let mut found = Vec::with_capacity(out.len());
            for finding in out.drain(..) {
                // The same alert as last time (the usual case) keeps its fingerprint: no hash.
                let same = |fp: &&String| {
                    self.findings.get(*fp).is_some_and(|f| {
                        f.rule == finding.rule
                            && f.region == finding.region
                            && f.subject == finding.subject
                    })
                };
                let fp = match before.iter().find(same) {
                    Some(fp) => fp.clone(),
                    None => fingerprint_of(
                        &finding.rule,
                        finding.region.as_deref(),
                        finding.subject.as_deref(),
                    ),
                };
                if let Some(change) = self.step(fp.clone(), &finding, now) {
                    changes.push(change);
                }
                self.findings.insert(fp.clone(), finding);
                stepped.insert(fp.clone());
                found.push(fp);
            }
            for fp in before {
                if !found.contains(&fp) {
                    self.findings.remove(&fp);
                }
            }
            if !found.is_empty() {
                self.by_key.insert(key, found);
            }
        }
        // The open alerts not judged above: their condition stands, but the clock moves
        // (the hold, `for`, reminders, silences); one no rule speaks of any more (its rule
        // was removed) has cleared.
        let mut open: Vec<(&str, Option<&str>, Option<&str>, &str)> = self
            .open
            .iter()
            .filter(|fp| !stepped.contains(*fp))
            .filter_map(|fp| self.alerts.get(fp))
            // Another instance's alerts are not moved along here (nor resolved for lack of
            // a finding): their owner does that.
            .filter(|a| self.owns(region_key(a.region.as_deref())))
            .map(|a| {
                (
                    a.rule.as_str(),
                    a.region.as_deref(),
                    a.subject.as_deref(),
                    a.fingerprint.as_str(),
                )
            })
            .collect();
        // In the order the rules list them (so messages decided together go out in it).
        open.sort_unstable();
        let open: Vec<String> = open.into_iter().map(|(.., fp)| fp.to_string()).collect();
        for fp in open {
            let finding = match self.findings.get(&fp) {
                Some(finding) => finding.clone(),
                None => {
                    let alert = &self.alerts[&fp];
                    Finding {
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
                    }
                }
            };
            if let Some(change) = self.step(fp, &finding, now) {
                changes.push(change);
            }
        }
        changes
    }

    /// What the engine knows of `region` (`""`: the region-less state). The outbox part is
    /// the store's (see `Store::region_outbox`): empty here.
    pub fn region_state(&self, region: &str) -> RegionState {
        let mut state = RegionState::empty(region);
        for rule in &self.rules {
            if let Some(memory) = rule.region_memory(region) {
                state.memory.insert(rule.name().to_string(), memory);
            }
        }
        if let Some(fps) = self.by_region.get(region) {
            state.alerts = fps
                .iter()
                .filter_map(|fp| self.alerts.get(fp))
                .cloned()
                .collect();
        }
        state
    }

    /// Regions whose state changed since the last call (new memory, an alert's change): what
    /// to write to a changelog once the decisions are committed.
    pub fn changed_regions(&mut self) -> Vec<String> {
        std::mem::take(&mut self.changed).into_iter().collect()
    }

    /// Replaces what is known of `state.region` with `state` (its outbox is the store's):
    /// the region's entries are judged at the next evaluation and their memory written with
    /// the next commit. A firing alert keeps firing; its resolution is announced when the
    /// region's data says so.
    pub fn restore_region(&mut self, state: &RegionState) {
        let region = state.region.as_str();
        self.drop_region(region);
        for i in 0..self.rules.len() {
            let memory = state.memory.get(self.rules[i].name()).cloned();
            self.rules[i].restore_region(region, memory);
            self.memory_dirty.insert((i, region.to_string()));
            self.dirty.insert((i, region.to_string()));
        }
        for alert in &state.alerts {
            if region_key(alert.region.as_deref()) == region {
                self.put(alert.clone());
            }
        }
    }

    /// Drops everything known of `region`, resolving and announcing nothing: another instance
    /// owns it now.
    pub fn forget_region(&mut self, region: &str) {
        self.drop_region(region);
        for i in 0..self.rules.len() {
            self.rules[i].restore_region(region, None);
            let key = (i, region.to_string());
            self.dirty.remove(&key);
            self.memory_dirty.remove(&key);
            // The store drops its rows (`Store::forget_region`).
            self.stored.remove(&key);
        }
        self.changed.remove(region);
    }

    /// Forgets the alerts and findings of `region`.
    fn drop_region(&mut self, region: &str) {
        for fp in self.by_region.remove(region).unwrap_or_default() {
            self.alerts.remove(&fp);
            self.open.remove(&fp);
        }
        for i in 0..self.rules.len() {
            for fp in self
                .by_key
                .remove(&(i, region.to_string()))
                .unwrap_or_default()
            {
                self.findings.remove(&fp);
            }
        }
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
                    acknowledged_by: None,
                    acknowledged_at: None,
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
        let previous = self.put(alert.clone());
        let material =
            previous.is_none_or(|p| p.material() != alert.material() || p.id != alert.id);
        let event = event.take().map(|_| alert.event(now));
        if event.is_none() && notice.is_none() && !material {
            return None;
        }
        self.changed
            .insert(region_key(alert.region.as_deref()).to_string());
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
        // Someone is on it: no reminders while acknowledged.
        let reminder_due = alert.acknowledged_by.is_none()
            && alert.last_notified_at.is_some_and(|last| {
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

    /// The occurrence `id`, if it is the one the engine holds for its fingerprint (the
    /// acknowledgement API records who is on it there).
    pub fn alert_mut(&mut self, id: &str) -> Option<&mut Alert> {
        let alert = self.alerts.values_mut().find(|a| a.id == id)?;
        // Its region's state is about to change (what a changelog must carry).
        self.changed
            .insert(region_key(alert.region.as_deref()).to_string());
        Some(alert)
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

    /// What was announced, by rule.
    fn announced(changes: &[Change]) -> Vec<(NoticeKind, String)> {
        changes
            .iter()
            .filter_map(|c| Some((c.notice?, c.alert.rule.clone())))
            .collect()
    }

    #[test]
    fn a_removed_rule_resolves_its_alerts_and_the_rules_after_it_keep_theirs() {
        let warm = RuleConfig::Threshold {
            name: "warm".into(),
            severity: Severity::Warning,
            metric: "temperature_c".into(),
            region: None,
            above: Some(30.0),
            below: None,
            pending_for: Duration::ZERO,
            hysteresis: 1.0,
        };
        let mut e = engine(vec![warm, hot(0)], &[], 30, 0);
        reading(&mut e, t0(), "Dakar", 42.0);
        let mut fired = announced(&e.evaluate(t0()));
        fired.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(
            fired,
            [
                (NoticeKind::Firing, "hot".to_string()),
                (NoticeKind::Firing, "warm".to_string())
            ]
        );
        e.take_memory();
        assert!(e.remove_rule("warm"));
        assert!(!e.remove_rule("warm"), "gone");
        assert_eq!(e.rules().map(|r| r.name()).collect::<Vec<_>>(), ["hot"]);
        // `hot` moved to index 0: its memory and alert are still its own.
        assert!(announced(&e.evaluate(t0() + S(10))).is_empty());
        reading(&mut e, t0() + S(20), "Dakar", 20.0);
        let memory: Vec<String> = e.take_memory().into_iter().map(|m| m.rule).collect();
        assert_eq!(memory, ["hot"]);
        // `warm` clear since its removal (t0 + 10 s): resolved after the 30 s hold, once;
        // `hot` clear since t0 + 20 s: 10 s later.
        assert!(announced(&e.evaluate(t0() + S(20))).is_empty());
        assert_eq!(
            announced(&e.evaluate(t0() + S(40))),
            [(NoticeKind::Resolved, "warm".to_string())]
        );
        assert_eq!(
            announced(&e.evaluate(t0() + S(50))),
            [(NoticeKind::Resolved, "hot".to_string())]
        );
        assert!(announced(&e.evaluate(t0() + S(60))).is_empty());
        assert!(e.open_alerts().next().is_none());
    }

    #[test]
    fn a_replaced_rule_starts_afresh_and_its_alert_carries_on_if_found_again() {
        let mut e = engine(vec![hot(0)], &[], 30, 0);
        reading(&mut e, t0(), "Dakar", 42.0);
        assert_eq!(announced(&e.evaluate(t0())).len(), 1);
        let context = RuleContext {
            regions: vec![],
            collection_interval: Duration::from_secs(10),
            since: t0(),
        };
        let lower = RuleConfig::Threshold {
            name: "hot".into(),
            severity: Severity::Critical,
            metric: "temperature_c".into(),
            region: None,
            above: Some(35.0),
            below: None,
            pending_for: Duration::ZERO,
            hysteresis: 1.0,
        };
        e.set_rule(rules::build(&[lower], &context).remove(0));
        assert_eq!(e.rules().count(), 1, "replaced, not added");
        // The new rule has no reading yet; one above its limit finds the same alert again.
        reading(&mut e, t0() + S(5), "Dakar", 38.0);
        assert!(
            announced(&e.evaluate(t0() + S(5))).is_empty(),
            "still the one alert"
        );
        assert_eq!(e.open_alerts().count(), 1);
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
        let memory: BTreeMap<(String, String), serde_json::Value> = e
            .take_memory()
            .into_iter()
            .map(|m| {
                (
                    (m.rule, m.region),
                    serde_json::from_str(&m.body.unwrap()).unwrap(),
                )
            })
            .collect();
        assert_eq!(memory.len(), 1, "one entry: (hot, Dakar)");
        let alerts: Vec<Alert> = e.alerts().cloned().collect();
        let mut again = engine(vec![hot(0)], &[], 60, 0);
        again.restore(alerts, vec![], memory, BTreeMap::new());
        // Already announced: no second firing notice after the restart.
        assert!(notices(&again.evaluate(t0() + S(1))).is_empty());
        reading(&mut again, t0() + S(2), "Dakar", 20.0);
        again.evaluate(t0() + S(2));
        assert_eq!(
            notices(&again.evaluate(t0() + S(62))),
            [(NoticeKind::Resolved, Some("Dakar".into()))]
        );
    }

    #[test]
    fn memory_in_the_old_format_is_read_and_written_per_region() {
        let mut e = engine(vec![hot(0)], &[], 60, 0);
        let legacy = serde_json::json!({
            "Dakar": {"value": 42.0, "observed_at": "2026-11-25T12:00:00Z"},
            "Thiès": {"value": 20.0, "observed_at": "2026-11-25T12:00:00Z"}
        });
        e.restore(
            vec![],
            vec![],
            BTreeMap::new(),
            BTreeMap::from([("hot".to_string(), legacy)]),
        );
        let c = e.evaluate(t0());
        assert_eq!(notices(&c), [(NoticeKind::Firing, Some("Dakar".into()))]);
        let mut regions: Vec<String> = e.take_memory().into_iter().map(|m| m.region).collect();
        regions.sort();
        assert_eq!(regions, ["Dakar", "Thiès"]);
    }

    #[test]
    fn an_observation_touches_only_its_region_and_changes_are_tracked_by_region() {
        let mut e = engine(vec![hot(0)], &[], 0, 0);
        for region in ["A", "B", "C"] {
            reading(&mut e, t0(), region, 20.0);
        }
        e.evaluate(t0());
        e.take_memory();
        e.changed_regions();
        reading(&mut e, t0() + S(10), "B", 41.0);
        let memory: Vec<(String, String)> = e
            .take_memory()
            .into_iter()
            .map(|m| (m.rule, m.region))
            .collect();
        assert_eq!(memory, [("hot".to_string(), "B".to_string())]);
        let c = e.evaluate(t0() + S(10));
        assert_eq!(notices(&c), [(NoticeKind::Firing, Some("B".into()))]);
        assert_eq!(e.changed_regions(), ["B"]);
        assert!(e.changed_regions().is_empty(), "taken");
    }

    /// Two instances: the region's state moves from one to the other (as through a
    /// changelog); the alert keeps firing there, unannounced again, and resolves with one
    /// notice when the region reports normal values.
    #[test]
    fn a_region_moved_to_another_engine_keeps_firing_and_resolves_once() {
        let mut first = engine(vec![hot(0)], &["Dakar"], 0, 0);
        reading(&mut first, t0(), "Dakar", 42.0);
        reading(&mut first, t0(), "Thiès", 25.0);
        let c = first.evaluate(t0());
        assert_eq!(notices(&c), [(NoticeKind::Firing, Some("Dakar".into()))]);
        let state = first.region_state("Dakar");
        assert_eq!(state.alerts.len(), 1);
        assert!(state.memory.contains_key("hot"));
        // Through the changelog's bytes.
        let state = RegionState::from_json(&state.to_json()).unwrap();

        let mut second = engine(vec![hot(0)], &["Dakar"], 0, 0);
        second.evaluate(t0());
        second.restore_region(&state);
        assert!(
            notices(&second.evaluate(t0() + S(5))).is_empty(),
            "already announced by the first instance"
        );
        assert_eq!(
            second.open_alerts().map(|a| a.state).collect::<Vec<_>>(),
            [AlertState::Firing]
        );
        reading(&mut second, t0() + S(10), "Dakar", 20.0);
        let mut all = notices(&second.evaluate(t0() + S(10)));
        all.extend(notices(&second.evaluate(t0() + S(20))));
        assert_eq!(all, [(NoticeKind::Resolved, Some("Dakar".into()))]);

        // The first instance forgets it: nothing resolved, nothing announced there.
        first.forget_region("Dakar");
        assert!(first.alerts().all(|a| a.region.as_deref() != Some("Dakar")));
        assert!(notices(&first.evaluate(t0() + S(30))).is_empty());
        assert!(first.region_state("Dakar").memory.is_empty());
    }

    #[test]
    fn a_newer_region_state_is_refused() {
        let mut state = RegionState::empty("Dakar");
        state.version = REGION_STATE_VERSION + 1;
        assert!(RegionState::from_json(&state.to_json())
            .unwrap_err()
            .contains("newer"));
    }
}
