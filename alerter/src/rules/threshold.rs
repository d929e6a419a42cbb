//! threshold: a metric above or below a value, per region (or one region).
//!
//! It fires past the threshold and clears only `hysteresis` back inside it, so a value
//! hovering at the threshold does not flap.

use super::{show, Finding, Rule, Verdict};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use windsock_core::config::{RuleConfig, Severity};
use windsock_core::event::Observation;

pub struct ThresholdRule {
    name: String,
    severity: Severity,
    metric: String,
    region: Option<String>,
    above: Option<f64>,
    below: Option<f64>,
    pending_for: Duration,
    hysteresis: f64,
    /// The latest value per region.
    latest: BTreeMap<String, Latest>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Latest {
    value: f64,
    observed_at: DateTime<Utc>,
}

impl ThresholdRule {
    pub fn new(config: &RuleConfig) -> Self {
        let RuleConfig::Threshold {
            name,
            severity,
            metric,
            region,
            above,
            below,
            pending_for,
            hysteresis,
        } = config
        else {
            unreachable!("built from a threshold config")
        };
        Self {
            name: name.clone(),
            severity: *severity,
            metric: metric.clone(),
            region: region.clone(),
            above: *above,
            below: *below,
            pending_for: *pending_for,
            hysteresis: *hysteresis,
            latest: BTreeMap::new(),
        }
    }

    /// Where `value` stands against the threshold.
    pub fn verdict(&self, value: f64) -> Verdict {
        let too_high = self.above.is_some_and(|a| value > a);
        let too_low = self.below.is_some_and(|b| value < b);
        if too_high || too_low {
            return Verdict::Active;
        }
        let back_from_above = self.above.is_none_or(|a| value <= a - self.hysteresis);
        let back_from_below = self.below.is_none_or(|b| value >= b + self.hysteresis);
        if back_from_above && back_from_below {
            Verdict::Clear
        } else {
            Verdict::Band
        }
    }

    fn expected(&self) -> String {
        match (self.above, self.below) {
            (Some(a), Some(b)) => format!("[{}, {}]", show(b), show(a)),
            (Some(a), None) => format!("<= {}", show(a)),
            (None, Some(b)) => format!(">= {}", show(b)),
            (None, None) => String::new(),
        }
    }
}

impl Rule for ThresholdRule {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "threshold"
    }

    fn observe(&mut self, _now: DateTime<Utc>, observation: &Observation) {
        if self
            .region
            .as_ref()
            .is_some_and(|r| *r != observation.region)
        {
            return;
        }
        let Some(value) = observation.metric(&self.metric).filter(|v| v.is_finite()) else {
            return;
        };
        let latest = Latest {
            value,
            observed_at: observation.observed_at,
        };
        match self.latest.get(&observation.region) {
            // Out-of-order arrivals (a backfill) must not overwrite a newer reading.
            Some(current) if current.observed_at > latest.observed_at => {}
            _ => {
                self.latest.insert(observation.region.clone(), latest);
            }
        }
    }

    fn evaluate(&self, now: DateTime<Utc>, out: &mut Vec<Finding>) {
        for region in self.latest.keys() {
            self.evaluate_region(now, region, out);
        }
    }

    fn regional(&self) -> bool {
        true
    }

    fn regions(&self) -> Vec<String> {
        self.latest.keys().cloned().collect()
    }

    fn region_memory(&self, region: &str) -> Option<serde_json::Value> {
        serde_json::to_value(self.latest.get(region)?).ok()
    }

    fn restore_region(&mut self, region: &str, memory: Option<serde_json::Value>) {
        match memory.and_then(|m| serde_json::from_value(m).ok()) {
            Some(latest) => self.latest.insert(region.to_string(), latest),
            None => self.latest.remove(region),
        };
    }

    fn evaluate_region(&self, _now: DateTime<Utc>, region: &str, out: &mut Vec<Finding>) {
        let Some(latest) = self.latest.get(region) else {
            return;
        };
        let verdict = self.verdict(latest.value);
        let direction = if self.above.is_some_and(|a| latest.value > a) {
            "above"
        } else if self.below.is_some_and(|b| latest.value < b) {
            "below"
        } else {
            "within"
        };
        out.push(Finding {
            rule: self.name.clone(),
            region: Some(region.to_string()),
            subject: None,
            severity: self.severity,
            verdict,
            value: Some(latest.value),
            expected: Some(self.expected()),
            summary: format!(
                "{} in {region} is {} ({direction} the limit {})",
                self.metric,
                show(latest.value),
                self.expected()
            ),
            pending_for: self.pending_for,
            inhibitor: None,
        });
    }

    fn snapshot(&self) -> serde_json::Value {
        serde_json::to_value(&self.latest).unwrap_or_default()
    }

    fn restore(&mut self, snapshot: serde_json::Value) {
        if let Ok(latest) = serde_json::from_value(snapshot) {
            self.latest = latest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(above: Option<f64>, below: Option<f64>, hysteresis: f64) -> ThresholdRule {
        ThresholdRule::new(&RuleConfig::Threshold {
            name: "t".into(),
            severity: Severity::Warning,
            metric: "temperature_c".into(),
            region: Some("Dakar".into()),
            above,
            below,
            pending_for: Duration::ZERO,
            hysteresis,
        })
    }

    #[test]
    fn above_with_hysteresis() {
        let r = rule(Some(40.0), None, 2.0);
        assert_eq!(r.verdict(40.5), Verdict::Active);
        assert_eq!(r.verdict(40.0), Verdict::Band);
        assert_eq!(r.verdict(38.5), Verdict::Band);
        assert_eq!(r.verdict(38.0), Verdict::Clear);
    }

    #[test]
    fn below_and_both() {
        let r = rule(Some(40.0), Some(10.0), 1.0);
        assert_eq!(r.verdict(9.0), Verdict::Active);
        assert_eq!(r.verdict(10.5), Verdict::Band);
        assert_eq!(r.verdict(25.0), Verdict::Clear);
        assert_eq!(r.expected(), "[10, 40]");
    }

    #[test]
    fn only_its_region_and_the_newest_reading_count() {
        let mut r = rule(Some(40.0), None, 0.0);
        let at = |h| chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 1, h, 0, 0).unwrap();
        let obs = |region: &str, t: f64, h| Observation {
            region: region.into(),
            temperature_c: t,
            observed_at: at(h),
            ..Default::default()
        };
        r.observe(at(0), &obs("Thiès", 50.0, 1));
        r.observe(at(0), &obs("Dakar", 45.0, 2));
        r.observe(at(0), &obs("Dakar", 20.0, 1));
        let mut out = Vec::new();
        r.evaluate(at(3), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].value, Some(45.0));
        assert_eq!(out[0].verdict, Verdict::Active);
    }
}
