//! threshold: a metric above or below a value, per region (or one region).
//!
//! It fires past the threshold and clears only `hysteresis` back inside it, so a value
//! hovering at the threshold does not flap.
//!
//! Only a fresh reading fires: one observed within [`ThresholdRule::freshness`] of now. The
//! alerter reads the bus from its last commit (or the retention window on a fresh data dir),
//! so after a start it reads hours of history, and a breach that is long over must not page
//! anyone. An old reading past a limit keeps a firing alert firing (it is not evidence of
//! recovery) but fires nothing new; one back inside still clears.

use super::{Finding, Rule, RuleContext, Verdict};
use crate::wording;
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
    /// How old a reading may be and still fire.
    fresh_within: chrono::Duration,
    /// The latest value per region.
    latest: BTreeMap<String, Latest>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Latest {
    value: f64,
    observed_at: DateTime<Utc>,
}

impl ThresholdRule {
    pub fn new(config: &RuleConfig, context: &RuleContext) -> Self {
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
            fresh_within: Self::freshness(context.collection_interval),
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

    /// How old a reading may be and still fire (forecast deviations use it too): two
    /// collection intervals, and at least a minute for the bus's and the source's delays.
    pub fn freshness(collection_interval: Duration) -> chrono::Duration {
        chrono::Duration::from_std(collection_interval * 2)
            .unwrap_or(chrono::Duration::MAX)
            .max(chrono::Duration::minutes(1))
    }

    /// What the rule expects, with the metric's unit: `≤ 45 °C`, `10–40 °C`.
    fn expected(&self) -> String {
        wording::limits(self.above, self.below, wording::unit_of(&self.metric))
    }

    /// One sentence on where `value` stands.
    fn summary(
        &self,
        region: &str,
        value: f64,
        verdict: Verdict,
        age: Option<chrono::Duration>,
    ) -> String {
        let unit = wording::unit_of(&self.metric);
        let mut name = wording::metric_name(&self.metric).to_string();
        if let Some(first) = name.get(0..1) {
            name = first.to_uppercase() + &name[1..];
        }
        let shown = wording::with_unit(value, unit);
        let limit = |v: f64| wording::with_unit(v, unit);
        let position = if let Some(a) = self.above.filter(|a| value > *a) {
            format!("above the limit of {}", limit(a))
        } else if let Some(b) = self.below.filter(|b| value < *b) {
            format!("below the limit of {}", limit(b))
        } else if verdict == Verdict::Band {
            // Back inside, not yet past the hysteresis.
            match (self.above, self.below) {
                (Some(a), _) if value > a - self.hysteresis => format!(
                    "back under the limit of {} but not yet down to {}, where it clears",
                    limit(a),
                    limit(a - self.hysteresis)
                ),
                (_, Some(b)) => format!(
                    "back over the limit of {} but not yet up to {}, where it clears",
                    limit(b),
                    limit(b + self.hysteresis)
                ),
                _ => format!("within {}", self.expected()),
            }
        } else {
            match (self.above, self.below) {
                (Some(a), None) => format!("under the limit of {}", limit(a)),
                (None, Some(b)) => format!("over the limit of {}", limit(b)),
                _ => format!("within {}", self.expected()),
            }
        };
        match age {
            Some(age) => format!(
                "{name} in {region} was {shown} {} ago, {position} (too old a reading to fire an alert)",
                wording::since(age)
            ),
            None => format!("{name} in {region} is {shown}, {position}"),
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

    fn evaluate_region(&self, now: DateTime<Utc>, region: &str, out: &mut Vec<Finding>) {
        let Some(latest) = self.latest.get(region) else {
            return;
        };
        let mut verdict = self.verdict(latest.value);
        let age = now - latest.observed_at;
        // History (read back at a start, backfilled) keeps what fires firing, fires nothing.
        let stale = verdict == Verdict::Active && age > self.fresh_within;
        if stale {
            verdict = Verdict::Band;
        }
        out.push(Finding {
            rule: self.name.clone(),
            region: Some(region.to_string()),
            subject: None,
            severity: self.severity,
            verdict,
            value: Some(latest.value),
            expected: Some(self.expected()),
            summary: self.summary(region, latest.value, verdict, stale.then_some(age)),
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
        ThresholdRule::new(
            &RuleConfig::Threshold {
                name: "t".into(),
                severity: Severity::Warning,
                metric: "temperature_c".into(),
                region: Some("Dakar".into()),
                above,
                below,
                pending_for: Duration::ZERO,
                hysteresis,
            },
            &context(),
        )
    }

    fn context() -> RuleContext {
        RuleContext {
            regions: vec!["Dakar".into()],
            collection_interval: Duration::from_secs(600),
            since: Utc::now(),
        }
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
        assert_eq!(r.expected(), "10–40 °C");
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
        r.evaluate(at(2), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].value, Some(45.0));
        assert_eq!(out[0].verdict, Verdict::Active);
    }

    fn judged(r: &ThresholdRule, value: f64, age_minutes: i64) -> Finding {
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 1, 12, 0, 0).unwrap();
        let mut r = ThresholdRule {
            latest: BTreeMap::new(),
            ..ThresholdRule::new(
                &RuleConfig::Threshold {
                    name: r.name.clone(),
                    severity: r.severity,
                    metric: r.metric.clone(),
                    region: None,
                    above: r.above,
                    below: r.below,
                    pending_for: r.pending_for,
                    hysteresis: r.hysteresis,
                },
                &context(),
            )
        };
        r.observe(
            now,
            &Observation {
                region: "Matam".into(),
                temperature_c: value,
                observed_at: now - chrono::Duration::minutes(age_minutes),
                ..Default::default()
            },
        );
        let mut out = Vec::new();
        r.evaluate(now, &mut out);
        out.remove(0)
    }

    #[test]
    fn only_a_fresh_reading_fires_and_an_old_one_keeps_what_fires() {
        // Two intervals of 10 min: 20 min.
        let r = rule(Some(45.0), None, 1.0);
        assert_eq!(judged(&r, 61.0, 19).verdict, Verdict::Active);
        let old = judged(&r, 61.0, 180);
        assert_eq!(old.verdict, Verdict::Band, "history fires nothing");
        assert_eq!(
            old.summary,
            "Temperature in Matam was 61 °C 3 h ago, above the limit of 45 °C (too old a reading to fire an alert)"
        );
        assert_eq!(
            judged(&r, 30.0, 180).verdict,
            Verdict::Clear,
            "an old recovery clears"
        );
        assert_eq!(
            ThresholdRule::freshness(Duration::from_secs(10)),
            chrono::Duration::minutes(1)
        );
    }

    #[test]
    fn summaries_read_with_units_and_match_the_verdict() {
        let r = rule(Some(45.0), None, 1.0);
        let hot = judged(&r, 61.0, 0);
        assert_eq!(
            hot.summary,
            "Temperature in Matam is 61 °C, above the limit of 45 °C"
        );
        assert_eq!(hot.expected.as_deref(), Some("≤ 45 °C"));
        assert_eq!(
            judged(&r, 44.5, 0).summary,
            "Temperature in Matam is 44.5 °C, back under the limit of 45 °C but not yet down to 44 °C, where it clears"
        );
        assert_eq!(
            judged(&r, 30.0, 0).summary,
            "Temperature in Matam is 30 °C, under the limit of 45 °C"
        );
        let cold = rule(None, Some(10.0), 2.0);
        assert_eq!(
            judged(&cold, 9.0, 0).summary,
            "Temperature in Matam is 9 °C, below the limit of 10 °C"
        );
        assert_eq!(
            judged(&cold, 11.0, 0).summary,
            "Temperature in Matam is 11 °C, back over the limit of 10 °C but not yet up to 12 °C, where it clears"
        );
        for f in [hot, judged(&cold, 11.0, 0)] {
            assert!(!f.summary.contains("null") && !f.summary.contains("temperature_c"));
        }
    }
}
