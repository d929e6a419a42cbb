//! outlier: a region's reading stands out among the regions of its round, or against its own
//! recent history, by augurs' MAD or DBSCAN detectors.
//!
//! Each reading is given to the detector as its own one-sample series, so the same code
//! judges "one region among fourteen" and "the latest reading among the last 48".

use super::{Finding, Rule, RuleContext, Verdict};
use augurs::outlier::{DbscanDetector, MADDetector, OutlierDetector, OutlierOutput};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use windsock_core::config::{OutlierMethod, OutlierScope, RuleConfig, Severity};
use windsock_core::event::Observation;

/// The fewest readings a detector is given: fewer says nothing about what is normal.
const MIN_GROUP: usize = 3;

pub struct OutlierRule {
    name: String,
    severity: Severity,
    metric: String,
    scope: OutlierScope,
    method: OutlierMethod,
    sensitivity: f64,
    min_history: usize,
    window: usize,
    consecutive: u32,
    min_deviation: f64,
    /// How far apart one round's readings may be fetched.
    round_skew: chrono::Duration,
    memory: Memory,
    /// Regions with a reading not yet judged among the others (scope `regions`), and when
    /// the first of them arrived: the round is judged once, when every known region has
    /// reported or `round_skew` after that first arrival, not at each reading. Not
    /// persisted: after a restart the next round is judged.
    round: BTreeSet<String>,
    round_opened: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Memory {
    regions: BTreeMap<String, RegionMemory>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct RegionMemory {
    /// Readings seen (the warm-up before the rule may fire).
    seen: usize,
    latest: Option<Reading>,
    /// Recent readings before `latest` (scope `history`).
    history: VecDeque<f64>,
    judged: Option<Judgement>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Reading {
    observed_at: DateTime<Utc>,
    fetched_at: DateTime<Utc>,
    value: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Judgement {
    observed_at: DateTime<Utc>,
    value: f64,
    band: Option<(f64, f64)>,
    /// Outliers in a row before this reading.
    before: u32,
    outlier: bool,
}

impl Judgement {
    fn in_a_row(&self) -> u32 {
        if self.outlier {
            self.before + 1
        } else {
            0
        }
    }
}

/// Per value, whether it is an outlier; and the normal band when the detector gives one.
pub type Detection = (Vec<bool>, Option<(f64, f64)>);

/// Which of `values` are outliers among them, and the normal band when the detector gives one.
pub fn is_outlier(
    values: &[f64],
    method: OutlierMethod,
    sensitivity: f64,
) -> Result<Detection, augurs::outlier::Error> {
    let series: Vec<[f64; 1]> = values.iter().map(|v| [*v]).collect();
    let rows: Vec<&[f64]> = series.iter().map(|s| s.as_slice()).collect();
    let output: OutlierOutput = match method {
        OutlierMethod::Mad => {
            let detector = MADDetector::with_sensitivity(sensitivity)?;
            detector.detect(&detector.preprocess(&rows)?)?
        }
        OutlierMethod::Dbscan => {
            let detector = DbscanDetector::with_sensitivity(sensitivity)?;
            detector.detect(&detector.preprocess(&rows)?)?
        }
    };
    let flags = (0..values.len()).map(|i| output.is_outlier(i)).collect();
    let band = output
        .cluster_band
        .as_ref()
        .and_then(|b| Some((*b.min.first()?, *b.max.first()?)))
        .filter(|(lo, hi)| lo.is_finite() && hi.is_finite());
    Ok((flags, band))
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

impl OutlierRule {
    pub fn new(config: &RuleConfig, context: &RuleContext) -> Self {
        let RuleConfig::Outlier {
            name,
            severity,
            metric,
            scope,
            method,
            sensitivity,
            min_history,
            window,
            consecutive,
            min_deviation,
        } = config
        else {
            unreachable!("built from an outlier config")
        };
        Self {
            name: name.clone(),
            severity: *severity,
            metric: metric.clone(),
            scope: *scope,
            method: *method,
            sensitivity: *sensitivity,
            min_history: *min_history,
            window: *window,
            consecutive: *consecutive,
            min_deviation: *min_deviation,
            round_skew: chrono::Duration::from_std(context.collection_interval / 2)
                .unwrap_or(chrono::Duration::seconds(5)),
            memory: Memory::default(),
            round: BTreeSet::new(),
            round_opened: None,
        }
    }

    /// The detector's verdicts, keeping only values at least `min_deviation` from the median.
    /// A detector that cannot judge (all readings equal: no spread) finds no outlier.
    fn detect(&self, values: &[f64]) -> Detection {
        let Ok((flags, band)) = is_outlier(values, self.method, self.sensitivity) else {
            return (vec![false; values.len()], None);
        };
        let median = median(values);
        let flags = flags
            .into_iter()
            .zip(values)
            .map(|(flag, v)| flag && (v - median).abs() >= self.min_deviation)
            .collect();
        (flags, band)
    }

    fn judge(&mut self, region: &str, outlier: bool, band: Option<(f64, f64)>) {
        let memory = self
            .memory
            .regions
            .get_mut(region)
            .expect("judged regions are known");
        let Some(latest) = &memory.latest else { return };
        let before = match &memory.judged {
            // The same reading judged again with more of its round: keep its count.
            Some(j) if j.observed_at == latest.observed_at => j.before,
            Some(j) => j.in_a_row(),
            None => 0,
        };
        memory.judged = Some(Judgement {
            observed_at: latest.observed_at,
            value: latest.value,
            band,
            before,
            outlier,
        });
    }

    /// Judges the readings of the round against each other; returns the regions judged.
    fn judge_round(&mut self) -> Vec<String> {
        self.round_opened = None;
        let round = std::mem::take(&mut self.round);
        let readings: Vec<(String, DateTime<Utc>, f64)> = round
            .into_iter()
            .filter_map(|region| {
                let latest = self.memory.regions.get(&region)?.latest.as_ref()?;
                Some((region.clone(), latest.fetched_at, latest.value))
            })
            .collect();
        // A round's readings are fetched within `round_skew` of its latest.
        let Some(last) = readings.iter().map(|(_, at, _)| *at).max() else {
            return Vec::new();
        };
        let round: Vec<(String, f64)> = readings
            .into_iter()
            .filter(|(_, at, _)| last - *at <= self.round_skew)
            .map(|(region, _, value)| (region, value))
            .collect();
        if round.len() < MIN_GROUP {
            return Vec::new();
        }
        let values: Vec<f64> = round.iter().map(|(_, v)| *v).collect();
        let (flags, band) = self.detect(&values);
        for ((region, _), outlier) in round.iter().zip(flags) {
            let warm = self.memory.regions[region].seen >= self.min_history;
            self.judge(region, outlier && warm, band);
        }
        round.into_iter().map(|(region, _)| region).collect()
    }

    fn judge_history(&mut self, region: &str) {
        let memory = &self.memory.regions[region];
        let Some(latest) = &memory.latest else { return };
        if memory.history.len() < self.min_history.max(MIN_GROUP) {
            return;
        }
        let mut values: Vec<f64> = memory.history.iter().copied().collect();
        values.push(latest.value);
        let (flags, band) = self.detect(&values);
        let outlier = flags.last().copied().unwrap_or(false);
        self.judge(region, outlier, band);
    }
}

impl Rule for OutlierRule {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "outlier"
    }

    fn observe(&mut self, now: DateTime<Utc>, observation: &Observation) {
        let Some(value) = observation.metric(&self.metric).filter(|v| v.is_finite()) else {
            return;
        };
        let window = self.window;
        let memory = self
            .memory
            .regions
            .entry(observation.region.clone())
            .or_default();
        if memory
            .latest
            .as_ref()
            .is_some_and(|l| l.observed_at >= observation.observed_at)
        {
            return; // a duplicate or an older reading
        }
        if let Some(previous) = memory.latest.take() {
            memory.history.push_back(previous.value);
            while memory.history.len() > window {
                memory.history.pop_front();
            }
        }
        memory.seen += 1;
        memory.latest = Some(Reading {
            observed_at: observation.observed_at,
            fetched_at: observation.fetched_at,
            value,
        });
        match self.scope {
            OutlierScope::Regions => {
                self.round_opened.get_or_insert(now);
                self.round.insert(observation.region.clone());
            }
            OutlierScope::History => self.judge_history(&observation.region),
        }
    }

    fn regional(&self) -> bool {
        true
    }

    fn regions(&self) -> Vec<String> {
        self.memory.regions.keys().cloned().collect()
    }

    fn due(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let Some(opened) = self.round_opened else {
            return Vec::new();
        };
        let complete = self.round.len() >= self.memory.regions.len();
        if complete || now - opened >= self.round_skew {
            self.judge_round()
        } else {
            Vec::new()
        }
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.round_opened.map(|opened| opened + self.round_skew)
    }

    fn region_memory(&self, region: &str) -> Option<serde_json::Value> {
        serde_json::to_value(self.memory.regions.get(region)?).ok()
    }

    fn region_memory_text(&self, region: &str) -> Option<String> {
        serde_json::to_string(self.memory.regions.get(region)?).ok()
    }

    fn restore_region(&mut self, region: &str, memory: Option<serde_json::Value>) {
        match memory.and_then(|m| serde_json::from_value(m).ok()) {
            Some(memory) => self.memory.regions.insert(region.to_string(), memory),
            None => {
                self.round.remove(region);
                self.memory.regions.remove(region)
            }
        };
    }

    fn evaluate(&self, now: DateTime<Utc>, out: &mut Vec<Finding>) {
        for region in self.memory.regions.keys() {
            self.evaluate_region(now, region, out);
        }
    }

    fn evaluate_region(&self, now: DateTime<Utc>, region: &str, out: &mut Vec<Finding>) {
        let Some(memory) = self.memory.regions.get(region) else {
            return;
        };
        let Some(judged) = &memory.judged else {
            return;
        };
        let in_a_row = judged.in_a_row();
        // As for thresholds: history read back at a start keeps what fires firing, fires
        // nothing new.
        let interval = (self.round_skew * 2).to_std().unwrap_or_default();
        let fresh = now - judged.observed_at <= super::ThresholdRule::freshness(interval);
        let verdict = if in_a_row >= self.consecutive && fresh {
            Verdict::Active
        } else if in_a_row == 0 {
            Verdict::Clear
        } else {
            Verdict::Band
        };
        let against = match self.scope {
            OutlierScope::Regions => "the other regions this round",
            OutlierScope::History => "its own recent readings",
        };
        let unit = crate::wording::unit_of(&self.metric);
        let expected = judged
            .band
            .map(|(lo, hi)| crate::wording::range(lo, hi, unit));
        let name = crate::wording::metric_name(&self.metric);
        let value = crate::wording::with_unit(judged.value, unit);
        out.push(Finding {
            rule: self.name.clone(),
            region: Some(region.to_string()),
            subject: None,
            severity: self.severity,
            verdict,
            value: Some(judged.value),
            expected,
            summary: if judged.outlier {
                format!("The {name} in {region} is {value}, an outlier against {against}")
            } else {
                format!("The {name} in {region} is {value}, in line with {against}")
            },
            pending_for: Duration::ZERO,
            inhibitor: None,
        });
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

    fn rule(scope: OutlierScope, method: OutlierMethod, min_history: usize) -> OutlierRule {
        let context = RuleContext {
            regions: vec![],
            collection_interval: Duration::from_secs(600),
            since: Utc::now(),
        };
        OutlierRule::new(
            &RuleConfig::Outlier {
                name: "odd".into(),
                severity: Severity::Warning,
                metric: "temperature_c".into(),
                scope,
                method,
                sensitivity: 0.5,
                min_history,
                window: 48,
                consecutive: 1,
                min_deviation: 3.0,
            },
            &context,
        )
    }

    fn round(rule: &mut OutlierRule, n: i64, values: &[(&str, f64)]) -> BTreeMap<String, Verdict> {
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap()
            + chrono::Duration::minutes(10 * n);
        for (i, (region, value)) in values.iter().enumerate() {
            rule.observe(
                at,
                &Observation {
                    region: region.to_string(),
                    observed_at: at,
                    fetched_at: at + chrono::Duration::milliseconds(50 * i as i64),
                    temperature_c: *value,
                    ..Default::default()
                },
            );
        }
        rule.due(at);
        let mut out = Vec::new();
        rule.evaluate(at, &mut out);
        out.into_iter()
            .map(|f| (f.region.unwrap(), f.verdict))
            .collect()
    }

    const NAMES: [&str; 8] = ["A", "B", "C", "D", "E", "F", "G", "H"];

    fn regions(odd: f64) -> Vec<(&'static str, f64)> {
        let normal = [27.1, 26.4, 28.0, 27.5, 26.9, 27.8, 26.2];
        NAMES[..7]
            .iter()
            .zip(normal)
            .map(|(n, v)| (*n, v))
            .chain([("H", odd)])
            .collect()
    }

    #[test]
    fn one_region_far_from_the_others_is_an_outlier_with_mad_and_dbscan() {
        for method in [OutlierMethod::Mad, OutlierMethod::Dbscan] {
            let mut r = rule(OutlierScope::Regions, method, 1);
            let verdicts = round(&mut r, 0, &regions(41.0));
            assert_eq!(verdicts["H"], Verdict::Active, "{method:?}: {verdicts:?}");
            assert!(
                NAMES[..7].iter().all(|n| verdicts[*n] == Verdict::Clear),
                "{method:?}: {verdicts:?}"
            );
            let verdicts = round(&mut r, 1, &regions(27.3));
            assert_eq!(verdicts["H"], Verdict::Clear, "{method:?}");
        }
    }

    #[test]
    fn small_natural_differences_are_not_outliers() {
        let mut r = rule(OutlierScope::Regions, OutlierMethod::Mad, 1);
        // 29.5 is statistically odd against a tight group, but only 2.3 from the median.
        let verdicts = round(&mut r, 0, &regions(29.5));
        assert!(
            verdicts.values().all(|v| *v == Verdict::Clear),
            "{verdicts:?}"
        );
    }

    #[test]
    fn no_outlier_before_the_minimum_history() {
        let mut r = rule(OutlierScope::Regions, OutlierMethod::Mad, 3);
        assert_eq!(round(&mut r, 0, &regions(41.0))["H"], Verdict::Clear);
        assert_eq!(round(&mut r, 1, &regions(41.0))["H"], Verdict::Clear);
        assert_eq!(round(&mut r, 2, &regions(41.0))["H"], Verdict::Active);
    }

    #[test]
    fn a_jump_against_its_own_history() {
        let mut r = rule(OutlierScope::History, OutlierMethod::Mad, 6);
        let series = [25.0, 25.4, 24.8, 25.9, 26.3, 25.1, 24.6, 25.7];
        for (n, v) in series.iter().enumerate() {
            let verdict = round(&mut r, n as i64, &[("A", *v)]).get("A").copied();
            // No verdict at all until the minimum history is there.
            assert_eq!(verdict, (n >= 6).then_some(Verdict::Clear), "reading {n}");
        }
        assert_eq!(round(&mut r, 20, &[("A", 39.0)])["A"], Verdict::Active);
        assert_eq!(round(&mut r, 21, &[("A", 25.2)])["A"], Verdict::Clear);
    }
}
