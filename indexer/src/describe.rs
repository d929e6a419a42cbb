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
    use std::fmt::Write;
    // Written into one string: built for every observation indexed.
    let mut message = String::with_capacity(64);
    let _ = write!(message, "{} {:.1} °C", o.region, o.temperature_c);
    if let Some(sky) = o.description.as_ref().or(o.condition.as_ref()) {
        message.push_str(", ");
        message.extend(sky.chars().flat_map(char::to_lowercase));
    }
    if let Some(h) = o.humidity_pct {
        let _ = write!(message, ", humidity {h:.0}%");
    }
    if let Some(w) = o.wind_speed_ms {
        let _ = write!(message, ", wind {w:.1} m/s");
    }
    message
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
