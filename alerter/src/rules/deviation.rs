//! forecast_deviation: the temperature falls outside the latest forecast's prediction
//! interval for `consecutive` observations in a row.
//!
//! It fires after N readings outside and clears only once a reading is back inside, so a
//! single stray reading neither fires nor resolves anything.
//!
//! Only fresh readings fire (observed within [`ThresholdRule::freshness`] of now, two
//! collection intervals): after a start the alerter reads back hours of history, and a
//! deviation that is long over must not page anyone. An old run of readings outside keeps a
//! firing alert firing but fires nothing new; one back inside still clears.

use super::{Finding, Rule, RuleContext, ThresholdRule, Verdict};
use crate::wording;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use windsock_core::config::{RuleConfig, Severity};
use windsock_core::event::{Forecast, Observation};

pub struct ForecastDeviationRule {
    name: String,
    severity: Severity,
    region: Option<String>,
    consecutive: u32,
    level: Option<f64>,
    /// How old a reading may be and still fire.
    fresh_within: chrono::Duration,
    memory: Memory,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Memory {
    forecasts: BTreeMap<String, Forecast>,
    checks: BTreeMap<String, Check>,
}

/// What the rule knows of one region (its entry of the alerter's per-region state).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct RegionMemory {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    forecast: Option<Forecast>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    check: Option<Check>,
}

/// The latest comparison of a region's reading with its forecast.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Check {
    observed_at: DateTime<Utc>,
    value: f64,
    lower: f64,
    upper: f64,
    /// Readings outside the interval in a row, up to this one.
    outside_in_a_row: u32,
}

impl ForecastDeviationRule {
    pub fn new(config: &RuleConfig, context: &RuleContext) -> Self {
        let RuleConfig::ForecastDeviation {
            name,
            severity,
            region,
            consecutive,
            level,
        } = config
        else {
            unreachable!("built from a forecast_deviation config")
        };
        Self {
            name: name.clone(),
            severity: *severity,
            region: region.clone(),
            consecutive: *consecutive,
            level: *level,
            fresh_within: ThresholdRule::freshness(context.collection_interval),
            memory: Memory::default(),
        }
    }

    /// The forecast's interval at `at` (from the nearest point within half a step), widened
    /// or narrowed to the rule's level.
    fn interval(&self, forecast: &Forecast, at: DateTime<Utc>) -> Option<(f64, f64)> {
        let points = &forecast.points;
        let step = points
            .windows(2)
            .map(|w| (w[1].timestamp - w[0].timestamp).abs())
            .min()
            .unwrap_or(chrono::Duration::hours(1));
        let nearest = points.iter().min_by_key(|p| (p.timestamp - at).abs())?;
        if (nearest.timestamp - at).abs() > step / 2 {
            return None;
        }
        let scale = match self.level {
            Some(level)
                if (level - forecast.level).abs() > 1e-9
                    && forecast.level > 0.0
                    && forecast.level < 1.0 =>
            {
                z_score(level) / z_score(forecast.level)
            }
            _ => 1.0,
        };
        let mid = nearest.temperature_c;
        Some((
            mid - (mid - nearest.lower) * scale,
            mid + (nearest.upper - mid) * scale,
        ))
    }
}

/// The two-sided normal quantile of a confidence level: 1.96 for 0.95.
/// (Abramowitz & Stegun 26.2.23, good to 4.5e-4, plenty to rescale an interval.)
pub fn z_score(level: f64) -> f64 {
    let tail = ((1.0 - level) / 2.0).clamp(1e-12, 0.5);
    let t = (-2.0 * tail.ln()).sqrt();
    t - (2.515517 + 0.802853 * t + 0.010328 * t * t)
        / (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t)
}

impl Rule for ForecastDeviationRule {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "forecast_deviation"
    }

    fn forecast(&mut self, forecast: &Forecast) {
        if self.region.as_ref().is_some_and(|r| *r != forecast.region) {
            return;
        }
        let newer = self
            .memory
            .forecasts
            .get(&forecast.region)
            .is_none_or(|f| f.generated_at <= forecast.generated_at);
        if newer {
            self.memory
                .forecasts
                .insert(forecast.region.clone(), forecast.clone());
        }
    }

    fn observe(&mut self, _now: DateTime<Utc>, observation: &Observation) {
        let region = &observation.region;
        let Some(forecast) = self.memory.forecasts.get(region) else {
            return;
        };
        let Some((lower, upper)) = self.interval(forecast, observation.observed_at) else {
            return;
        };
        let previous = self.memory.checks.get(region);
        if previous.is_some_and(|p| p.observed_at >= observation.observed_at) {
            return; // a duplicate or an older reading: already counted
        }
        let value = observation.temperature_c;
        let outside = value < lower || value > upper;
        let outside_in_a_row = if outside {
            previous.map_or(0, |p| p.outside_in_a_row) + 1
        } else {
            0
        };
        self.memory.checks.insert(
            region.clone(),
            Check {
                observed_at: observation.observed_at,
                value,
                lower,
                upper,
                outside_in_a_row,
            },
        );
    }

    fn evaluate(&self, now: DateTime<Utc>, out: &mut Vec<Finding>) {
        for region in self.memory.checks.keys() {
            self.evaluate_region(now, region, out);
        }
    }

    fn regional(&self) -> bool {
        true
    }

    fn regions(&self) -> Vec<String> {
        let mut regions: Vec<String> = self.memory.forecasts.keys().cloned().collect();
        regions.extend(self.memory.checks.keys().cloned());
        regions.sort();
        regions.dedup();
        regions
    }

    fn region_memory(&self, region: &str) -> Option<serde_json::Value> {
        let memory = RegionMemory {
            forecast: self.memory.forecasts.get(region).cloned(),
            check: self.memory.checks.get(region).cloned(),
        };
        if memory.forecast.is_none() && memory.check.is_none() {
            return None;
        }
        serde_json::to_value(memory).ok()
    }

    fn restore_region(&mut self, region: &str, memory: Option<serde_json::Value>) {
        let memory: RegionMemory = memory
            .and_then(|m| serde_json::from_value(m).ok())
            .unwrap_or_default();
        match memory.forecast {
            Some(forecast) => self.memory.forecasts.insert(region.to_string(), forecast),
            None => self.memory.forecasts.remove(region),
        };
        match memory.check {
            Some(check) => self.memory.checks.insert(region.to_string(), check),
            None => self.memory.checks.remove(region),
        };
    }

    fn evaluate_region(&self, now: DateTime<Utc>, region: &str, out: &mut Vec<Finding>) {
        let Some(check) = self.memory.checks.get(region) else {
            return;
        };
        let age = now - check.observed_at;
        let fresh = age <= self.fresh_within;
        let verdict = if check.outside_in_a_row >= self.consecutive && fresh {
            Verdict::Active
        } else if check.outside_in_a_row == 0 {
            Verdict::Clear
        } else {
            // Not yet enough in a row, or an old run (history fires nothing).
            Verdict::Band
        };
        let band = wording::range(check.lower, check.upper, "°C");
        let value = wording::with_unit(check.value, "°C");
        let run = wording::count(u64::from(check.outside_in_a_row), "observation");
        let summary = if check.outside_in_a_row == 0 {
            format!("Temperature in {region} is {value}, back inside the forecast band {band}")
        } else if !fresh {
            format!(
                "Temperature in {region} was {value} {} ago, outside the forecast band {band} \
                 ({run} in a row; too old to fire an alert)",
                wording::since(age)
            )
        } else if verdict == Verdict::Active {
            format!(
                "Temperature in {region} is {value}: {run} in a row outside the forecast band {band}"
            )
        } else {
            format!(
                "Temperature in {region} is {value}, outside the forecast band {band} \
                 ({run} in a row; it fires at {})",
                self.consecutive
            )
        };
        out.push(Finding {
            rule: self.name.clone(),
            region: Some(region.to_string()),
            subject: None,
            severity: self.severity,
            verdict,
            value: Some(check.value),
            expected: Some(band),
            summary,
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
    use windsock_core::event::ForecastPoint;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap()
    }

    fn rule(level: Option<f64>) -> ForecastDeviationRule {
        let mut rule = ForecastDeviationRule::new(
            &RuleConfig::ForecastDeviation {
                name: "dev".into(),
                severity: Severity::Warning,
                region: None,
                consecutive: 3,
                level,
            },
            &RuleContext {
                regions: vec!["Dakar".into()],
                collection_interval: Duration::from_secs(600),
                since: t0(),
            },
        );
        rule.forecast(&Forecast {
            region: "Dakar".into(),
            model: "mstl_ets".into(),
            generated_at: t0(),
            level: 0.95,
            points: (0..24)
                .map(|h| ForecastPoint {
                    timestamp: t0() + chrono::Duration::hours(h),
                    temperature_c: 25.0,
                    lower: 23.0,
                    upper: 27.0,
                })
                .collect(),
            backtest_mae: Default::default(),
        });
        rule
    }

    fn feed(rule: &mut ForecastDeviationRule, values: &[f64]) -> Vec<Verdict> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                rule.observe(
                    t0(),
                    &Observation {
                        region: "Dakar".into(),
                        observed_at: t0() + chrono::Duration::minutes(10 * i as i64 + 1),
                        temperature_c: *v,
                        ..Default::default()
                    },
                );
                let mut out = Vec::new();
                rule.evaluate(t0(), &mut out);
                out[0].verdict
            })
            .collect()
    }

    #[test]
    fn fires_after_n_outside_in_a_row_and_clears_when_back_inside() {
        use Verdict::*;
        let mut r = rule(None);
        assert_eq!(
            feed(&mut r, &[26.0, 29.0, 30.0, 25.0, 29.0, 29.5, 21.0, 25.0]),
            [Clear, Band, Band, Clear, Band, Band, Active, Clear]
        );
    }

    /// Readings every 10 minutes from t0, each judged at `now`: (verdict, summary).
    fn judged(values: &[f64], now: DateTime<Utc>) -> Vec<(Verdict, String)> {
        let mut r = rule(None);
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                r.observe(
                    now,
                    &Observation {
                        region: "Dakar".into(),
                        observed_at: t0() + chrono::Duration::minutes(10 * i as i64),
                        temperature_c: *v,
                        ..Default::default()
                    },
                );
                let mut out = Vec::new();
                r.evaluate(now, &mut out);
                let f = out.remove(0);
                (f.verdict, f.summary)
            })
            .collect()
    }

    #[test]
    fn an_old_run_outside_the_band_fires_nothing() {
        let late = t0() + chrono::Duration::hours(6);
        let verdicts: Vec<Verdict> = judged(&[30.0; 6], late).into_iter().map(|v| v.0).collect();
        assert_eq!(verdicts, [Verdict::Band; 6], "history never fires");
        let (_, summary) = judged(&[30.0; 6], late).pop().unwrap();
        assert_eq!(
            summary,
            "Temperature in Dakar was 30 °C 5 h 10 min ago, outside the forecast band 23–27 °C \
             (6 observations in a row; too old to fire an alert)"
        );
        // The same run, read as it happens, fires at the third.
        let live = t0() + chrono::Duration::minutes(20);
        assert_eq!(judged(&[30.0; 3], live)[2].0, Verdict::Active);
    }

    #[test]
    fn summaries_count_observations_and_never_say_zero_times() {
        let now = t0() + chrono::Duration::minutes(20);
        let said: Vec<String> = judged(&[30.0, 30.0, 30.0, 25.0], now)
            .into_iter()
            .map(|v| v.1)
            .collect();
        assert_eq!(
            said,
            [
                "Temperature in Dakar is 30 °C, outside the forecast band 23–27 °C (1 observation in a row; it fires at 3)",
                "Temperature in Dakar is 30 °C, outside the forecast band 23–27 °C (2 observations in a row; it fires at 3)",
                "Temperature in Dakar is 30 °C: 3 observations in a row outside the forecast band 23–27 °C",
                "Temperature in Dakar is 25 °C, back inside the forecast band 23–27 °C",
            ]
        );
        assert!(said
            .iter()
            .all(|s| !s.contains("time(s)") && !s.contains(" 0 ")));
    }

    #[test]
    fn a_wider_level_widens_the_interval() {
        assert!((z_score(0.95) - 1.96).abs() < 0.01);
        assert!((z_score(0.99) - 2.576).abs() < 0.01);
        let mut r = rule(Some(0.99));
        // 27.5 is outside the 95% interval but inside the 99% one (25 + 2 * 2.576/1.96 = 27.63).
        assert_eq!(feed(&mut r, &[27.5, 27.5, 27.5]), [Verdict::Clear; 3]);
        let mut r = rule(None);
        assert_eq!(feed(&mut r, &[27.5, 27.5, 27.5])[2], Verdict::Active);
    }

    #[test]
    fn no_forecast_for_that_time_means_no_verdict() {
        let mut r = rule(None);
        r.observe(
            t0(),
            &Observation {
                region: "Dakar".into(),
                observed_at: t0() + chrono::Duration::days(3),
                temperature_c: 90.0,
                ..Default::default()
            },
        );
        let mut out = Vec::new();
        r.evaluate(t0(), &mut out);
        assert!(out.is_empty());
    }
}
