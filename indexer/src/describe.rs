//! What the index and the search results say about an event besides the event itself: its
//! facets (kind, region, level, service, source) and a one-line message a person can read.

use windsock_core::event::{AlertState, Event, Level};

/// The facet values and the readable message of one event.
#[derive(Clone, Debug, PartialEq)]
pub struct Description {
    pub kind: &'static str,
    pub region: Option<String>,
    /// A log level for every kind, so one `level:error` finds failed logs, critical alerts and
    /// dead letters alike: logs keep theirs; firing alerts map their severity (critical ->
    /// error, warning -> warn); dead letters are errors; everything else is info.
    pub level: &'static str,
    /// The service that produced the event.
    pub service: String,
    /// Where it came from within that service: the weather source of an observation, the
    /// model of a forecast, the tracing target of a log, the rule of an alert, the topic of a
    /// dead letter.
    pub source: String,
    pub message: String,
}

pub fn describe(event: &Event) -> Description {
    let region = event.region().map(str::to_string);
    match event {
        Event::Observation(o) => Description {
            kind: event.kind(),
            region,
            level: Level::Info.as_str(),
            service: "collector".into(),
            source: o.source.clone(),
            message: observation_message(o),
        },
        Event::Log(l) => Description {
            kind: event.kind(),
            region,
            level: l.level.as_str(),
            service: l.service.clone(),
            source: l.target.clone().unwrap_or_default(),
            message: l.message.clone(),
        },
        Event::Forecast(f) => {
            let (low, high) = f
                .points
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                    (lo.min(p.temperature_c), hi.max(p.temperature_c))
                });
            let span = if f.points.is_empty() {
                "no points".to_string()
            } else {
                format!("{} points, {low:.1} to {high:.1} °C", f.points.len())
            };
            Description {
                kind: event.kind(),
                region,
                level: Level::Info.as_str(),
                service: "forecaster".into(),
                source: f.model.clone(),
                message: format!("{} forecast by {}: {span}", f.region, f.model),
            }
        }
        Event::Alert(a) => Description {
            kind: event.kind(),
            region,
            level: match (a.state, a.severity.as_str()) {
                (AlertState::Resolved, _) => Level::Info.as_str(),
                (_, "critical") => Level::Error.as_str(),
                (_, "warning") => Level::Warn.as_str(),
                _ => Level::Info.as_str(),
            },
            service: "alerter".into(),
            source: a.rule.clone(),
            message: format!(
                "{} {} {}: {}",
                a.state.as_str(),
                a.severity,
                a.rule,
                a.message
            ),
        },
        Event::DeadLetter(d) => Description {
            kind: event.kind(),
            region,
            level: Level::Error.as_str(),
            service: d.group.clone(),
            source: d.topic.clone(),
            message: format!(
                "dead letter from {} (partition {}, offset {}): {}",
                d.topic, d.partition, d.offset, d.reason
            ),
        },
    }
}

/// "Dakar 27.5 °C, clear sky, humidity 60%, wind 3.1 m/s".
fn observation_message(o: &windsock_core::event::Observation) -> String {
    // Written into one string: built for every observation indexed.
    let mut message = String::with_capacity(64);
    message.push_str(&o.region);
    message.push(' ');
    push_fixed(&mut message, o.temperature_c, 1);
    message.push_str(" °C");
    if let Some(sky) = o.description.as_ref().or(o.condition.as_ref()) {
        message.push_str(", ");
        message.extend(sky.chars().flat_map(char::to_lowercase));
    }
    if let Some(h) = o.humidity_pct {
        message.push_str(", humidity ");
        push_fixed(&mut message, h, 0);
        message.push('%');
    }
    if let Some(w) = o.wind_speed_ms {
        message.push_str(", wind ");
        push_fixed(&mut message, w, 1);
        message.push_str(" m/s");
    }
    message
}

/// Writes `value` exactly as `format!("{:.1$}", value, decimals)` does, for 0 or 1 decimals.
///
/// Formatting a float to a precision costs about a thousand instructions (an exact decimal
/// expansion), three times an observation. Most readings are already a number of that many
/// decimals (sources report tenths): such a value is the double nearest to `n / 10`, and
/// the precision formatting prints `n / 10` for it, which integers write for a fraction of
/// the cost. Any other value goes the general way.
fn push_fixed(out: &mut String, value: f64, decimals: u32) {
    use std::fmt::Write;
    let scale = if decimals == 0 { 1.0 } else { 10.0 };
    let scaled = (value * scale).round();
    if decimals <= 1 && scaled.abs() < 1e15 && scaled / scale == value {
        let n = (scaled as i64).unsigned_abs();
        if value.is_sign_negative() {
            out.push('-');
        }
        if decimals == 0 {
            let _ = write!(out, "{n}");
        } else {
            let _ = write!(out, "{}.{}", n / 10, n % 10);
        }
    } else {
        let _ = write!(out, "{value:.0$}", decimals as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use windsock_core::event::{AlertEvent, DeadLetter, Observation};

    #[test]
    fn an_observation_reads_like_a_weather_report() {
        let o = Observation {
            region: "Dakar".into(),
            temperature_c: 27.46,
            description: Some("Clear sky".into()),
            humidity_pct: Some(60.0),
            source: "simulated".into(),
            ..Default::default()
        };
        let d = describe(&Event::Observation(o));
        assert_eq!(d.message, "Dakar 27.5 °C, clear sky, humidity 60%");
        assert_eq!(
            (d.kind, d.level, d.service.as_str()),
            ("observation", "info", "collector")
        );
        assert_eq!(d.source, "simulated");
    }

    #[test]
    fn readings_are_written_as_the_precision_formatting_writes_them() {
        let mut values: Vec<f64> = (-2000..2000).map(|n| n as f64 / 10.0).collect();
        values.extend((-300..300).map(|n| n as f64 / 100.0 + 0.005));
        values.extend([
            -0.0,
            0.0,
            0.05,
            -0.05,
            0.25,
            27.45,
            1e14 + 0.1,
            1e15,
            1e20,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ]);
        for value in values {
            for decimals in [0, 1] {
                let mut written = String::new();
                push_fixed(&mut written, value, decimals);
                assert_eq!(
                    written,
                    format!("{value:.0$}", decimals as usize),
                    "{value:?} to {decimals} decimals"
                );
            }
        }
    }

    #[test]
    fn alert_severity_and_dead_letters_map_to_levels() {
        let alert = AlertEvent {
            fingerprint: "f".into(),
            rule: "heat".into(),
            region: Some("Matam".into()),
            state: AlertState::Firing,
            severity: "critical".into(),
            at: Utc::now(),
            started_at: Utc::now(),
            value: Some(44.0),
            expected: Some("> 40".into()),
            message: "44 °C".into(),
        };
        let d = describe(&Event::Alert(alert.clone()));
        assert_eq!(d.level, "error");
        assert_eq!(d.message, "firing critical heat: 44 °C");
        let resolved = AlertEvent {
            state: AlertState::Resolved,
            ..alert
        };
        assert_eq!(describe(&Event::Alert(resolved)).level, "info");
        let letter = DeadLetter {
            at: Utc::now(),
            topic: "observations".into(),
            partition: 2,
            offset: 7,
            key: None,
            reason: "not a windsock event".into(),
            payload: "{".into(),
            group: "windsock-indexer".into(),
        };
        let d = describe(&Event::DeadLetter(letter));
        assert_eq!(d.level, "error");
        assert!(d.message.contains("partition 2, offset 7"), "{}", d.message);
    }
}
