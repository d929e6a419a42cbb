//! How alerts read to people: values with their units, durations in words ("3 min", not
//! `178.874`), counts that agree with their noun, and each rule in one sentence. Used by the
//! rules' summaries, the Slack messages and the API alike, so they all say the same thing.

use crate::rules::show;
use std::time::Duration;
use windsock_core::config::RuleConfig;

/// How late data's `expected` begins ("a report every 10 s"): the Slack message reads the
/// alert's value as seconds of silence by it.
pub const EVERY: &str = "a report every ";

/// The unit of an observation metric, as shown after a value ("" when it has none).
pub fn unit_of(metric: &str) -> &'static str {
    match metric {
        "temperature_c" | "feels_like_c" | "dew_point_c" => "°C",
        "humidity_pct" | "clouds_pct" => "%",
        "pressure_hpa" => "hPa",
        "wind_speed_ms" | "wind_gust_ms" => "m/s",
        "wind_deg" => "°",
        "visibility_m" => "m",
        _ => "",
    }
}

/// A metric's name in words ("temperature", "wind speed"); an unknown one as given.
pub fn metric_name(metric: &str) -> &str {
    match metric {
        "temperature_c" => "temperature",
        "feels_like_c" => "feels-like temperature",
        "dew_point_c" => "dew point",
        "humidity_pct" => "humidity",
        "clouds_pct" => "cloud cover",
        "pressure_hpa" => "pressure",
        "wind_speed_ms" => "wind speed",
        "wind_gust_ms" => "wind gusts",
        "wind_deg" => "wind direction",
        "visibility_m" => "visibility",
        "uvi" => "UV index",
        other => other,
    }
}

/// A value with its unit: `61 °C`, `80%`, `270°`, `4.5` (no unit).
pub fn with_unit(value: f64, unit: &str) -> String {
    match unit {
        "" => show(value),
        "%" | "°" => format!("{}{unit}", show(value)),
        _ => format!("{} {unit}", show(value)),
    }
}

/// The unit a text of [`with_unit`] or [`range`] ends with, if it is one of ours.
pub fn unit_in(text: &str) -> &'static str {
    const UNITS: [&str; 6] = ["°C", "hPa", "m/s", "%", "°", "m"];
    let text = text.trim_end();
    UNITS
        .into_iter()
        .find(|unit| {
            text.strip_suffix(unit)
                .is_some_and(|rest| rest.ends_with(|c: char| c == ' ' || c.is_ascii_digit()))
        })
        .unwrap_or("")
}

/// A range with its unit: `24–31 °C`.
pub fn range(lower: f64, upper: f64, unit: &str) -> String {
    let text = format!("{}–{}", show(lower), show(upper));
    match unit {
        "" => text,
        "%" | "°" => format!("{text}{unit}"),
        _ => format!("{text} {unit}"),
    }
}

/// Reads back a [`range`]: `(lower, upper)`.
pub fn parse_range(text: &str) -> Option<(f64, f64)> {
    let unit = unit_in(text);
    let numbers = text.trim_end().strip_suffix(unit)?.trim_end();
    let (lower, upper) = numbers.split_once('–')?;
    Some((lower.trim().parse().ok()?, upper.trim().parse().ok()?))
}

/// A duration in words, to the precision people need: `40 s`, `3 min`, `2 h 5 min`,
/// `3 d 4 h` (below 10 min the seconds are kept: `2 min 30 s`).
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, mins, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let pair = |big: u64, big_unit: &str, small: u64, small_unit: &str| {
        if small == 0 {
            format!("{big} {big_unit}")
        } else {
            format!("{big} {big_unit} {small} {small_unit}")
        }
    };
    if secs < 60 {
        format!("{secs} s")
    } else if secs < 600 {
        pair(mins, "min", s, "s")
    } else if secs < 3600 {
        format!("{mins} min")
    } else if secs < 86_400 {
        pair(hours, "h", mins, "min")
    } else {
        pair(days, "d", hours, "h")
    }
}

/// As [`duration`], for chrono's signed durations (negative: `0 s`).
pub fn since(d: chrono::Duration) -> String {
    duration(d.to_std().unwrap_or_default())
}

/// `1 observation`, `3 observations`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// What a threshold rule expects of a value: `≤ 45 °C`, `≥ 10 °C`, `10–40 °C`.
pub fn limits(above: Option<f64>, below: Option<f64>, unit: &str) -> String {
    match (above, below) {
        (Some(a), Some(b)) => range(b, a, unit),
        (Some(a), None) => format!("≤ {}", with_unit(a, unit)),
        (None, Some(b)) => format!("≥ {}", with_unit(b, unit)),
        (None, None) => "any value".to_string(),
    }
}

/// What late data expects: `a report every 10 s (late after 50 s)`.
pub fn reports_every(interval: Duration, late_after: Duration) -> String {
    format!(
        "{EVERY}{} (late after {})",
        duration(interval),
        duration(late_after)
    )
}

/// A rule in one sentence, for the rules table (`interval`: the collector's).
pub fn describe(config: &RuleConfig, interval: Duration) -> String {
    let region_part = |region: &Option<String>| match region {
        Some(r) => format!(" in {r}"),
        None => String::new(),
    };
    match config {
        RuleConfig::LateData {
            late_after,
            grace,
            pipeline_down,
            ..
        } => {
            let late_after = late_after.unwrap_or(interval * 2 + *grace);
            let mut text = format!(
                "A region is late when it has sent nothing for {} (expected every {})",
                duration(late_after),
                duration(interval)
            );
            if *pipeline_down {
                text.push_str(
                    "; when no region reports, one pipeline_down alert fires instead of one per region",
                );
            }
            text
        }
        RuleConfig::Threshold {
            metric,
            region,
            above,
            below,
            pending_for,
            hysteresis,
            ..
        } => {
            let unit = unit_of(metric);
            let bound = match (above, below) {
                (Some(a), None) => format!("above {}", with_unit(*a, unit)),
                (None, Some(b)) => format!("below {}", with_unit(*b, unit)),
                _ => format!("outside {}", limits(*above, *below, unit)),
            };
            let mut text = format!(
                "Fires when {}{} is {bound}",
                metric_name(metric),
                region_part(region),
            );
            if !pending_for.is_zero() {
                text.push_str(&format!(" for {}", duration(*pending_for)));
            }
            if *hysteresis > 0.0 {
                text.push_str(&format!(
                    "; clears {} back inside",
                    with_unit(*hysteresis, unit)
                ));
            }
            text
        }
        RuleConfig::ForecastDeviation {
            region,
            consecutive,
            level,
            ..
        } => {
            let band = match level {
                Some(level) => format!("the forecast's {}% band", show(level * 100.0)),
                None => "the forecast band".to_string(),
            };
            format!(
                "Fires when the temperature{} is outside {band} for {} in a row",
                region_part(region),
                count(u64::from(*consecutive), "observation")
            )
        }
        RuleConfig::Outlier {
            metric,
            scope,
            consecutive,
            ..
        } => {
            let against = match scope {
                windsock_core::config::OutlierScope::Regions => {
                    "the other regions' in the same round"
                }
                windsock_core::config::OutlierScope::History => "its own recent readings",
            };
            let mut text = format!(
                "Fires when a region's {} stands out from {against}",
                metric_name(metric)
            );
            if *consecutive > 1 {
                text.push_str(&format!(
                    ", {} in a row",
                    count(u64::from(*consecutive), "reading")
                ));
            }
            text
        }
        RuleConfig::PipelineHealth { .. } => {
            "Fires when a windsock service reports it is failing or its disk is full".to_string()
        }
        RuleConfig::Query {
            query,
            window,
            above,
            below,
            group_by,
            pending_for,
            ..
        } => {
            let bound = match (above, below) {
                (Some(a), Some(b)) => format!("more than {a} or fewer than {b}"),
                (Some(a), None) => format!("more than {a}"),
                (None, Some(b)) => format!("fewer than {b}"),
                (None, None) => "any number of".to_string(),
            };
            let mut text = format!(
                "Fires when {bound} logs match `{query}` within {}",
                duration(*window)
            );
            if let Some(field) = group_by {
                text.push_str(&format!(", one alert per {field}"));
            }
            if !pending_for.is_zero() {
                text.push_str(&format!(", for {}", duration(*pending_for)));
            }
            text
        }
    }
}

/// The alert names that are no rule's own, in one sentence.
pub fn describe_name(name: &str) -> Option<&'static str> {
    match name {
        "pipeline_down" => {
            Some("No region has reported for the late-data delay: the pipeline is down")
        }
        "service_failing" => Some("A windsock service reports that it is failing"),
        "disk_full" => Some("A windsock service cannot write: its disk is full"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        let s = Duration::from_secs;
        assert_eq!(duration(s(0)), "0 s");
        assert_eq!(duration(s(10)), "10 s");
        assert_eq!(duration(s(178)), "2 min 58 s");
        assert_eq!(duration(s(180)), "3 min");
        assert_eq!(duration(s(50 * 60 + 10)), "50 min");
        assert_eq!(duration(s(2 * 3600 + 5 * 60)), "2 h 5 min");
        assert_eq!(duration(s(3 * 86_400 + 4 * 3600 + 9)), "3 d 4 h");
    }

    #[test]
    fn values_carry_their_units_and_ranges_read_back() {
        assert_eq!(with_unit(61.0, unit_of("temperature_c")), "61 °C");
        assert_eq!(with_unit(80.0, unit_of("humidity_pct")), "80%");
        assert_eq!(with_unit(4.25, unit_of("uvi")), "4.25");
        assert_eq!(limits(Some(45.0), None, "°C"), "≤ 45 °C");
        assert_eq!(limits(None, Some(-2.5), "°C"), "≥ -2.5 °C");
        assert_eq!(limits(Some(40.0), Some(10.0), "°C"), "10–40 °C");
        assert_eq!(unit_in("≤ 45 °C"), "°C");
        assert_eq!(unit_in("≥ 80%"), "%");
        assert_eq!(unit_in("a report every 10 s"), "");
        assert_eq!(parse_range("24.1–31 °C"), Some((24.1, 31.0)));
        assert_eq!(parse_range("-3.5–-1 °C"), Some((-3.5, -1.0)));
        assert_eq!(parse_range("≤ 45 °C"), None);
        assert_eq!(count(1, "observation"), "1 observation");
        assert_eq!(count(0, "observation"), "0 observations");
    }

    #[test]
    fn every_rule_is_described_without_null() {
        for config in windsock_core::config::AlerterConfig::default().rules {
            let text = describe(&config, Duration::from_secs(10));
            assert!(!text.contains("null") && !text.contains("None"), "{text}");
            assert!(text.len() > 20, "{text}");
        }
        let late = describe(
            &RuleConfig::LateData {
                name: "late_data".into(),
                severity: windsock_core::config::Severity::Warning,
                late_after: None,
                grace: Duration::from_secs(30),
                pipeline_down: true,
            },
            Duration::from_secs(10),
        );
        assert!(
            late.contains("nothing for 50 s (expected every 10 s)"),
            "{late}"
        );
    }
}
