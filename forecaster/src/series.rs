//! Regular series from irregular observations, with an honest gap policy.
//!
//! Observations are grouped into steps (hours, for the bus history) and averaged. A run of
//! at most [`MAX_FILLED_GAP`] missing steps is filled by linear interpolation between its
//! neighbours: short outages are common and the models need a regular grid. A longer gap
//! cuts the series: only the part after the last long gap is kept, because bridging a day
//! of missing weather with a straight line would teach the model a day that never happened.

use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeMap;

/// The longest run of missing steps that is filled; longer runs cut the series.
pub const MAX_FILLED_GAP: i64 = 3;

/// Seconds in one step of the bus history.
pub const HOUR: i64 = 3600;

/// Values at consecutive steps: `values[i]` is at step `start + i`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegularSeries {
    pub start: i64,
    pub values: Vec<f64>,
    /// How many steps were filled by interpolation.
    pub filled: usize,
}

impl RegularSeries {
    /// The step after the last value: where a forecast starts.
    pub fn end(&self) -> i64 {
        self.start + self.values.len() as i64
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value at a step, if the series covers it.
    pub fn at(&self, step: i64) -> Option<f64> {
        let i = step.checked_sub(self.start)?;
        usize::try_from(i)
            .ok()
            .and_then(|i| self.values.get(i).copied())
    }

    /// The same series, ending before step `end` (a view of what was known then).
    pub fn until(&self, end: i64) -> RegularSeries {
        let keep = (end - self.start).clamp(0, self.values.len() as i64) as usize;
        RegularSeries {
            start: self.start,
            values: self.values[..keep].to_vec(),
            filled: self.filled,
        }
    }
}

/// Averages values per step and applies the gap policy. `points` may come in any order.
pub fn regularize(points: impl IntoIterator<Item = (i64, f64)>) -> RegularSeries {
    let mut steps: BTreeMap<i64, (f64, u32)> = BTreeMap::new();
    for (step, value) in points {
        let slot = steps.entry(step).or_default();
        slot.0 += value;
        slot.1 += 1;
    }
    let mut series = RegularSeries::default();
    let mut previous: Option<(i64, f64)> = None;
    for (step, (sum, count)) in steps {
        let value = sum / count as f64;
        match previous {
            Some((last, last_value)) if step - last - 1 <= MAX_FILLED_GAP => {
                let gap = step - last;
                for k in 1..gap {
                    let t = k as f64 / gap as f64;
                    series.values.push(last_value + (value - last_value) * t);
                    series.filled += 1;
                }
            }
            _ => {
                series = RegularSeries {
                    start: step,
                    values: Vec::new(),
                    filled: 0,
                };
            }
        }
        series.values.push(value);
        previous = Some((step, value));
    }
    series
}

/// The hour an instant falls in, as hours since the Unix epoch.
pub fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(HOUR)
}

/// The start of an hour given as hours since the Unix epoch.
pub fn hour_start(hour: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(hour * HOUR, 0)
        .single()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_averaged_and_short_gaps_interpolated() {
        let series = regularize([(10, 1.0), (10, 3.0), (11, 4.0), (14, 7.0)]);
        assert_eq!(series.start, 10);
        assert_eq!(series.values, vec![2.0, 4.0, 5.0, 6.0, 7.0]);
        assert_eq!(series.filled, 2);
        assert_eq!(series.end(), 15);
        assert_eq!(series.at(12), Some(5.0));
        assert_eq!(series.at(9), None);
    }

    #[test]
    fn a_long_gap_cuts_the_series() {
        let series = regularize([(0, 1.0), (1, 2.0), (6, 3.0), (7, 4.0)]);
        assert_eq!(
            series.start, 6,
            "4 missing steps is over the limit of {MAX_FILLED_GAP}"
        );
        assert_eq!(series.values, vec![3.0, 4.0]);
        assert_eq!(series.filled, 0);
    }

    #[test]
    fn until_is_what_was_known_then() {
        let series = regularize((0..10).map(|i| (i + 100, i as f64)));
        assert_eq!(series.until(103).values, vec![0.0, 1.0, 2.0]);
        assert!(series.until(50).is_empty());
        assert_eq!(series.until(500).len(), 10);
    }

    #[test]
    fn hours_round_down_including_before_1970() {
        let at = Utc.with_ymd_and_hms(2024, 5, 1, 10, 59, 59).unwrap();
        assert_eq!(
            hour_start(hour_of(at)),
            Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
        );
        let before = Utc.with_ymd_and_hms(1969, 12, 31, 23, 30, 0).unwrap();
        assert_eq!(hour_of(before), -1);
    }
}
