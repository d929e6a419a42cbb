//! query: the count of log events matching a search (the language of `/api/search`, evaluated
//! in memory by `windsock-query`) over a sliding window, above and/or below a number,
//! optionally one alert per value of a field (`group_by`).
//!
//! The alerter sees the logs on the bus, so a query rule never asks the indexer. Counts are
//! kept per group as a count per second of event time, within the window of the alerter's
//! clock: an event older than the window when it arrives (a replay after a restart, a
//! backlog) is not counted, so history never pages. `below` is judged only once the rule has
//! watched a whole window (else every start would page "nothing matched").
//!
//! Bounds: at most [`MAX_GROUPS`] groups (further values are counted under [`OTHER`], said
//! once in the log), at most a window's seconds of buckets per group.

use super::{Finding, Rule, RuleContext, Verdict};
use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::OnceLock;
use std::time::Duration;
use windsock_core::config::{RuleConfig, Severity};
use windsock_core::event::LogEvent;
use windsock_query::{Document, LogRecord, Matcher};

/// Groups counted apart; values beyond are counted together under [`OTHER`].
pub const MAX_GROUPS: usize = 1000;
/// The group of the values beyond [`MAX_GROUPS`].
pub const OTHER: &str = "other";
/// The group of events without the `group_by` field.
const NONE: &str = "(none)";
/// The longest group value kept (characters).
const MAX_GROUP_CHARS: usize = 100;

pub struct QueryRule {
    name: String,
    severity: Severity,
    query: String,
    matcher: Matcher,
    window_secs: i64,
    above: Option<u64>,
    below: Option<u64>,
    group_by: Option<String>,
    pending_for: Duration,
    /// `below` is judged from here on (a whole window after the start).
    below_from: DateTime<Utc>,
    /// Whether `below` has been judged since `below_from` (the deadline was due once).
    below_started: bool,
    memory: Memory,
    said_other: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Memory {
    /// Per group: (second of event time, events that matched in it), oldest first.
    groups: BTreeMap<String, VecDeque<(i64, u32)>>,
}

type Searches = HashMap<String, (String, Option<String>)>;

/// (query, group_by) of every query rule built, by rule name: what the Slack message's
/// search link shows (an alert carries its rule's name, not its search). One alerter per
/// process has one rule of a name; two alerters in one process (tests) with rules of the same
/// name and different queries would share the last one's link.
fn searches() -> &'static RwLock<Searches> {
    static SEARCHES: OnceLock<RwLock<Searches>> = OnceLock::new();
    SEARCHES.get_or_init(Default::default)
}

/// The search that an alert of the query rule `rule` counted, narrowed to its group (`region`
/// or `subject`); `None` when `rule` is no query rule.
pub fn search_of(rule: &str, region: Option<&str>, subject: Option<&str>) -> Option<String> {
    let searches = searches().read();
    let (query, group_by) = searches.get(rule)?;
    let quoted = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    let group = match (group_by.as_deref(), region, subject) {
        (Some("region"), Some(region), _) => Some(("region", region)),
        (Some(field), _, Some(value)) if value != OTHER && value != NONE => Some((field, value)),
        _ => None,
    };
    let query = if query.trim().is_empty() {
        "*".to_string()
    } else {
        query.clone()
    };
    Some(match group {
        Some((field, value)) => format!("({query}) AND {field}:\"{}\"", quoted(value)),
        None => query,
    })
}

impl QueryRule {
    pub fn new(config: &RuleConfig, context: &RuleContext) -> Self {
        let RuleConfig::Query {
            name,
            severity,
            query,
            window,
            above,
            below,
            group_by,
            pending_for,
        } = config
        else {
            unreachable!("built from a query config")
        };
        // The configuration was validated (`config check` refuses a query that does not
        // parse): a query that still fails matches nothing rather than stopping the alerter.
        let matcher = windsock_query::parse(query).unwrap_or_else(|error| {
            tracing::error!(rule = %name, %error, "query rule: the query does not parse");
            windsock_query::parse("kind:__nothing__").expect("a valid query")
        });
        let window_secs = window.as_secs().max(1) as i64;
        searches()
            .write()
            .insert(name.clone(), (query.clone(), group_by.clone()));
        Self {
            name: name.clone(),
            severity: *severity,
            query: query.clone(),
            matcher,
            window_secs,
            above: *above,
            below: *below,
            group_by: group_by.clone(),
            pending_for: *pending_for,
            below_from: context.since + chrono::Duration::seconds(window_secs),
            below_started: false,
            memory: Memory::default(),
            said_other: false,
        }
    }

    /// The group of `log`: the value of the `group_by` field, `""` without `group_by`.
    fn group_of(&self, log: &LogEvent) -> String {
        let Some(field) = &self.group_by else {
            return String::new();
        };
        let value = match field.as_str() {
            "region" => log.region.clone(),
            "service" => Some(log.service.clone()),
            "level" => Some(log.level.as_str().to_string()),
            "source" => log.target.clone(),
            "kind" => Some("log".into()),
            other => other.strip_prefix("fields.").and_then(|path| {
                let mut parts = path.split('.');
                let first = log.fields.get(parts.next()?)?;
                let value = parts.try_fold(first, |v, key| v.get(key))?;
                match value {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Null => None,
                    other => Some(other.to_string()),
                }
            }),
        };
        match value {
            Some(v) if !v.is_empty() => v.chars().take(MAX_GROUP_CHARS).collect(),
            _ => NONE.to_string(),
        }
    }

    /// The first second still in the window ending at `now`.
    fn window_start(&self, now: DateTime<Utc>) -> i64 {
        now.timestamp() - self.window_secs + 1
    }

    fn count(&self, buckets: &VecDeque<(i64, u32)>, now: DateTime<Utc>) -> u64 {
        let start = self.window_start(now);
        let end = now.timestamp();
        buckets
            .iter()
            .filter(|(second, _)| *second >= start && *second <= end)
            .map(|(_, n)| u64::from(*n))
            .sum()
    }

    fn expected(&self) -> String {
        match (self.above, self.below) {
            (Some(a), Some(b)) => format!("{b} to {a} events"),
            (Some(a), None) => format!("at most {a} events"),
            (None, Some(b)) => format!("at least {b} events"),
            (None, None) => String::new(),
        }
    }

    fn finding(&self, group: &str, count: u64, now: DateTime<Utc>) -> Finding {
        let too_many = self.above.is_some_and(|a| count > a);
        let too_few = self.below.is_some_and(|b| count < b) && now >= self.below_from;
        let verdict = if too_many || too_few {
            Verdict::Active
        } else {
            Verdict::Clear
        };
        let window = humantime::format_duration(Duration::from_secs(self.window_secs as u64));
        let events = if count == 1 { "event" } else { "events" };
        let mut summary = format!(
            "{count} {events} matched `{}` in the last {window}",
            self.query
        );
        if let (Some(field), false) = (&self.group_by, group.is_empty()) {
            summary.push_str(&format!(" ({field} {group})"));
        }
        match (too_many, too_few) {
            (true, _) => summary.push_str(&format!(", more than {}", self.above.unwrap_or(0))),
            (_, true) => summary.push_str(&format!(", fewer than {}", self.below.unwrap_or(0))),
            _ => {}
        }
        let (region, subject) = match self.group_by.as_deref() {
            None => (None, None),
            Some("region") => (Some(group.to_string()), None),
            Some(_) => (None, Some(group.to_string())),
        };
        Finding {
            rule: self.name.clone(),
            region,
            subject,
            severity: self.severity,
            verdict,
            value: Some(count as f64),
            expected: Some(self.expected()),
            summary,
            pending_for: self.pending_for,
            inhibitor: None,
        }
    }

    /// Drops the buckets that left the window ending at `now`; true when any did.
    fn prune(&mut self, now: DateTime<Utc>) -> bool {
        let start = self.window_start(now);
        let mut pruned = false;
        for buckets in self.memory.groups.values_mut() {
            while buckets.front().is_some_and(|(second, _)| *second < start) {
                buckets.pop_front();
                pruned = true;
            }
        }
        pruned
    }
}

impl Rule for QueryRule {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "query"
    }

    fn log(&mut self, now: DateTime<Utc>, log: &LogEvent) -> bool {
        let second = log.timestamp.timestamp();
        // Before the window (history read again, a backlog): it can never count.
        if second < self.window_start(now) {
            return false;
        }
        let document = Document::log(&LogRecord {
            timestamp: log.timestamp,
            service: &log.service,
            level: log.level.as_str(),
            message: &log.message,
            region: log.region.as_deref(),
            target: log.target.as_deref(),
            fields: &log.fields,
        });
        if !self.matcher.matches(&document) {
            return false;
        }
        let mut group = self.group_of(log);
        if !self.memory.groups.contains_key(&group) && self.memory.groups.len() >= MAX_GROUPS {
            // Make room from a group with nothing left in its window, else count it as other.
            self.prune(now);
            let empty = self
                .memory
                .groups
                .iter()
                .find(|(g, b)| b.is_empty() && g.as_str() != OTHER)
                .map(|(g, _)| g.clone());
            match empty {
                Some(empty) => {
                    self.memory.groups.remove(&empty);
                }
                None => {
                    if !self.said_other {
                        self.said_other = true;
                        tracing::warn!(
                            rule = %self.name,
                            limit = MAX_GROUPS,
                            "query rule: too many groups; counting further values as \"other\""
                        );
                    }
                    group = OTHER.to_string();
                }
            }
        }
        let cap = self.window_secs as usize + 60;
        let buckets = self.memory.groups.entry(group).or_default();
        // Events arrive roughly in order: the bucket is the last one, or near the end.
        match buckets.iter().rposition(|(s, _)| *s <= second) {
            Some(i) if buckets[i].0 == second => buckets[i].1 = buckets[i].1.saturating_add(1),
            Some(i) => buckets.insert(i + 1, (second, 1)),
            None => buckets.push_front((second, 1)),
        }
        // Far-future seconds (a wrong clock) must not grow it without bound.
        while buckets.len() > cap {
            buckets.pop_front();
        }
        true
    }

    fn evaluate(&self, now: DateTime<Utc>, out: &mut Vec<Finding>) {
        if self.group_by.is_none() {
            let count = self
                .memory
                .groups
                .get("")
                .map(|b| self.count(b, now))
                .unwrap_or(0);
            out.push(self.finding("", count, now));
            return;
        }
        for (group, buckets) in &self.memory.groups {
            out.push(self.finding(group, self.count(buckets, now), now));
        }
    }

    fn due(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let below_starts = self.below.is_some() && !self.below_started && now >= self.below_from;
        self.below_started |= below_starts;
        if self.prune(now) || below_starts {
            vec![String::new()]
        } else {
            Vec::new()
        }
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        let oldest = self
            .memory
            .groups
            .values()
            .filter_map(|b| b.front().map(|(second, _)| *second))
            .min()
            .and_then(|second| DateTime::from_timestamp(second + self.window_secs, 0));
        // Once only: a deadline left in the past would be due at every evaluation.
        let below = (self.below.is_some() && !self.below_started).then_some(self.below_from);
        oldest.into_iter().chain(below).min()
    }

    fn snapshot(&self) -> serde_json::Value {
        serde_json::to_value(&self.memory).unwrap_or_default()
    }

    fn restore(&mut self, snapshot: serde_json::Value) {
        if let Ok(memory) = serde_json::from_value::<Memory>(snapshot) {
            self.memory = memory;
            self.memory.groups.retain(|_, b| !b.is_empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use windsock_core::event::Level;

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    fn rule(group_by: Option<&str>, below: Option<u64>) -> QueryRule {
        rule_named("source_failing", group_by, below)
    }

    fn rule_named(name: &str, group_by: Option<&str>, below: Option<u64>) -> QueryRule {
        let config: RuleConfig = serde_json::from_value(serde_json::json!({
            "kind": "query",
            "name": name,
            "query": "service:collector AND fields.status:failed",
            "window": "1m",
            "above": 2,
            "below": below,
            "group_by": group_by,
        }))
        .unwrap();
        QueryRule::new(
            &config,
            &RuleContext {
                regions: vec![],
                collection_interval: Duration::from_secs(60),
                since: start(),
            },
        )
    }

    fn failed(at: DateTime<Utc>, region: &str, status: &str) -> LogEvent {
        LogEvent {
            timestamp: at,
            service: "collector".into(),
            level: Level::Warn,
            message: "fetch failed".into(),
            region: Some(region.into()),
            target: None,
            fields: serde_json::json!({"status": status})
                .as_object()
                .unwrap()
                .clone(),
        }
    }

    fn verdicts(rule: &QueryRule, now: DateTime<Utc>) -> Vec<(Option<String>, Verdict, f64)> {
        let mut out = Vec::new();
        rule.evaluate(now, &mut out);
        out.into_iter()
            .map(|f| (f.region, f.verdict, f.value.unwrap()))
            .collect()
    }

    #[test]
    fn counts_within_the_window_fire_above_and_clear_as_they_leave_it() {
        let mut rule = rule(None, None);
        let t = start() + chrono::Duration::seconds(5);
        for i in 0..3 {
            let at = t + chrono::Duration::seconds(i);
            assert!(rule.log(at, &failed(at, "Dakar", "failed")));
        }
        assert!(!rule.log(t, &failed(t, "Dakar", "ok")));
        let now = t + chrono::Duration::seconds(2);
        assert_eq!(verdicts(&rule, now), vec![(None, Verdict::Active, 3.0)]);
        // The first event leaves the window 60 s after its second.
        let later = t + chrono::Duration::seconds(60);
        assert_eq!(rule.next_due(), Some(later));
        assert_eq!(rule.due(later), vec![String::new()]);
        assert_eq!(verdicts(&rule, later), vec![(None, Verdict::Clear, 2.0)]);
    }

    #[test]
    fn history_older_than_the_window_is_not_counted() {
        let mut rule = rule(None, None);
        let old = start() - chrono::Duration::minutes(5);
        for _ in 0..10 {
            assert!(!rule.log(start(), &failed(old, "Dakar", "failed")));
        }
        assert_eq!(verdicts(&rule, start()), vec![(None, Verdict::Clear, 0.0)]);
    }

    #[test]
    fn one_alert_per_group_and_groups_beyond_the_bound_are_other() {
        let mut rule = rule(Some("region"), None);
        let t = start();
        for region in ["Dakar", "Dakar", "Dakar", "Thiès"] {
            rule.log(t, &failed(t, region, "failed"));
        }
        assert_eq!(
            verdicts(&rule, t),
            vec![
                (Some("Dakar".into()), Verdict::Active, 3.0),
                (Some("Thiès".into()), Verdict::Clear, 1.0)
            ]
        );
        for i in 0..MAX_GROUPS + 5 {
            rule.log(t, &failed(t, &format!("r{i}"), "failed"));
        }
        assert_eq!(rule.memory.groups.len(), MAX_GROUPS + 1);
        assert_eq!(
            rule.memory.groups[OTHER].iter().map(|b| b.1).sum::<u32>(),
            7
        );
    }

    #[test]
    fn below_waits_for_a_whole_window_and_is_due_once_then() {
        let mut rule = rule(None, Some(1));
        assert_eq!(verdicts(&rule, start()), vec![(None, Verdict::Clear, 0.0)]);
        let later = start() + chrono::Duration::seconds(60);
        assert_eq!(rule.next_due(), Some(later));
        assert!(rule.due(start()).is_empty());
        // Evaluations need not fall on the deadline's second.
        let after = later + chrono::Duration::milliseconds(2500);
        assert_eq!(rule.due(after), vec![String::new()]);
        assert_eq!(verdicts(&rule, after), vec![(None, Verdict::Active, 0.0)]);
        assert_eq!(rule.next_due(), None);
        assert!(rule.due(after + chrono::Duration::seconds(1)).is_empty());
    }

    #[test]
    fn the_search_link_is_the_rule_s_query_narrowed_to_the_group() {
        let _rule = rule_named("linked", Some("region"), None);
        assert_eq!(
            search_of("linked", Some("Dakar"), None).as_deref(),
            Some("(service:collector AND fields.status:failed) AND region:\"Dakar\"")
        );
        assert_eq!(search_of("no_such_rule", None, None), None);
    }
}
