//! The rules: each turns what it has seen (observations, forecasts, the time) into a
//! [`Finding`] per region it watches. Rules know nothing of alerts; the lifecycle in
//! [`crate::engine`] turns findings into pending, firing and resolved alerts.

mod deviation;
mod late_data;
mod outlier;
mod pipeline_health;
pub mod query;
mod threshold;

pub use deviation::ForecastDeviationRule;
pub use late_data::{LateDataRule, PIPELINE_DOWN};
pub use outlier::{is_outlier, OutlierRule};
pub use pipeline_health::PipelineHealthRule;
pub use query::QueryRule;
pub use threshold::ThresholdRule;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use windsock_core::config::{RuleConfig, Severity};
use windsock_core::event::{Forecast, LogEvent, Observation};

/// What a rule says about one (rule, region) right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The condition holds: the alert may fire.
    Active,
    /// Between firing and clearing (hysteresis): a firing alert stays, nothing new fires.
    Band,
    /// The condition is clear: a firing alert may resolve.
    Clear,
}

/// One rule's judgement of one region (or of the whole pipeline when `region` is `None`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finding {
    pub rule: String,
    pub region: Option<String>,
    /// What else the alert is about, when (rule, region) is not enough to tell its alerts
    /// apart: the failing service of a `pipeline_health` alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub severity: Severity,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The threshold or expected range, in words: `> 45`, `[21.3, 27.9]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// One sentence for people.
    pub summary: String,
    /// How long the condition must hold before firing.
    #[serde(skip)]
    pub pending_for: Duration,
    /// The rule whose whole-pipeline alert (region `None`), while open, makes this one
    /// redundant: it is then tracked but not announced.
    #[serde(skip)]
    pub inhibitor: Option<String>,
}

/// What every rule does. Rules are fed in arrival order and keep only what they need.
///
/// A rule's state is kept region by region (the pseudo-region `""` holds what belongs to no
/// region): an input touches the entries of its region only, and an evaluation looks at the
/// regions that changed ([`Rule::evaluate_region`]), never at every region. The defaults suit
/// a rule with no regional state (`pipeline_health`): all it knows is region `""`, learnt
/// from logs, and its whole memory is that region's.
pub trait Rule: Send + Sync {
    fn name(&self) -> &str;
    fn kind(&self) -> &'static str;
    fn observe(&mut self, _now: DateTime<Utc>, _observation: &Observation) {}
    fn forecast(&mut self, _forecast: &Forecast) {}
    /// A log event of the pipeline; true when the rule remembered something of it.
    fn log(&mut self, _now: DateTime<Utc>, _log: &LogEvent) -> bool {
        false
    }
    /// The names its alerts carry (what silences match), when not only its own.
    fn alert_names(&self) -> Vec<&str> {
        vec![self.name()]
    }
    /// The rule's findings at `now`, every region's (the API's view, tests).
    fn evaluate(&self, now: DateTime<Utc>, out: &mut Vec<Finding>);
    /// What the rule remembers, as one document (the format before per-region state; still
    /// read to migrate it).
    fn snapshot(&self) -> serde_json::Value;
    fn restore(&mut self, snapshot: serde_json::Value);

    /// Whether its state is kept per region: an observation or a forecast then concerns the
    /// entry of its region (else the rule learns from logs only, under region `""`).
    fn regional(&self) -> bool {
        false
    }
    /// Every region it has state or findings for (`""` included when it has any).
    fn regions(&self) -> Vec<String> {
        vec![String::new()]
    }
    /// The findings of one region at `now` (O(1) in the number of regions).
    fn evaluate_region(&self, now: DateTime<Utc>, region: &str, out: &mut Vec<Finding>) {
        if region.is_empty() {
            self.evaluate(now, out)
        }
    }
    /// Regions whose findings changed without an input of their own since the last call:
    /// late-data deadlines that passed, an outlier round that closed. Their memory may
    /// have changed too.
    fn due(&mut self, _now: DateTime<Utc>) -> Vec<String> {
        Vec::new()
    }
    /// When [`Rule::due`] will next have something to say (the earliest deadline).
    fn next_due(&self) -> Option<DateTime<Utc>> {
        None
    }
    /// What it remembers of one region, `None` when nothing.
    fn region_memory(&self, region: &str) -> Option<serde_json::Value> {
        region.is_empty().then(|| self.snapshot())
    }
    /// [`Rule::region_memory`] as JSON text, what the store writes (rules override it to
    /// skip the intermediate `Value`: it is written for each observation).
    fn region_memory_text(&self, region: &str) -> Option<String> {
        self.region_memory(region).map(|m| m.to_string())
    }
    /// Replaces what it knows of one region (`None`: forgets it).
    fn restore_region(&mut self, region: &str, memory: Option<serde_json::Value>) {
        if let (true, Some(memory)) = (region.is_empty(), memory) {
            self.restore(memory)
        }
    }
}

/// What rules need to know beyond their own configuration.
#[derive(Clone, Debug)]
pub struct RuleContext {
    /// The regions expected to report.
    pub regions: Vec<String>,
    /// The collector's interval between rounds.
    pub collection_interval: Duration,
    /// When watching started (the baseline for a region that never reported).
    pub since: DateTime<Utc>,
}

/// Builds the rules of a configuration.
pub fn build(configs: &[RuleConfig], context: &RuleContext) -> Vec<Box<dyn Rule>> {
    configs
        .iter()
        .map(|config| -> Box<dyn Rule> {
            match config {
                RuleConfig::LateData { .. } => Box::new(LateDataRule::new(config, context)),
                RuleConfig::Threshold { .. } => Box::new(ThresholdRule::new(config, context)),
                RuleConfig::ForecastDeviation { .. } => {
                    Box::new(ForecastDeviationRule::new(config, context))
                }
                RuleConfig::Outlier { .. } => Box::new(OutlierRule::new(config, context)),
                RuleConfig::PipelineHealth { .. } => {
                    Box::new(PipelineHealthRule::new(config, context))
                }
                RuleConfig::Query { .. } => Box::new(QueryRule::new(config, context)),
            }
        })
        .collect()
}

/// A number as people read it in a message: at most two decimals, no trailing zeros.
pub fn show(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}
