//! Times as people type them in a search box: RFC 3339 (`2026-11-25T12:00:00Z`) or relative to
//! now as Kibana writes them (`now`, `now-15m`, `now-24h`, `now-7d`, `now+1h`).

use chrono::{DateTime, Duration, Utc};

/// Why a time did not parse, in words that say what would.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a time: {reason}")]
pub struct TimeError {
    pub value: String,
    pub reason: String,
}

pub const EXPECTED: &str =
    "RFC 3339 (2026-11-25T12:00:00Z) or now, now-15m, now-24h, now-7d (units s, m, h, d, w)";

pub fn parse_time(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, TimeError> {
    let err = |reason: String| TimeError {
        value: value.to_string(),
        reason,
    };
    let text = value.trim();
    let Some(offset) = text.strip_prefix("now") else {
        return DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| err(format!("{e}; expected {EXPECTED}")));
    };
    if offset.is_empty() {
        return Ok(now);
    }
    // Not `split_at(1)`: the byte after `now` may be inside a character (`nowé`).
    let (sign, amount) = if let Some(rest) = offset.strip_prefix('-') {
        (-1, rest)
    } else if let Some(rest) = offset.strip_prefix('+') {
        (1, rest)
    } else {
        return Err(err(format!(
            "after `now` comes + or -; expected {EXPECTED}"
        )));
    };
    let digits = amount.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &amount[digits.len()..];
    let n: i64 = digits.parse().map_err(|_| {
        err(format!(
            "`{digits}` is not a whole number; expected {EXPECTED}"
        ))
    })?;
    let span = match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        "w" => Duration::try_weeks(n),
        "" => return Err(err(format!("`{amount}` has no unit; expected {EXPECTED}"))),
        other => return Err(err(format!("unknown unit `{other}`; expected {EXPECTED}"))),
    }
    .ok_or_else(|| err("too far away".into()))?;
    now.checked_add_signed(span * sign)
        .ok_or_else(|| err("too far away".into()))
}

/// What an `interval` may be, in the words of its 400.
pub const INTERVAL_EXPECTED: &str =
    "auto, or a whole number and a unit: 1m, 5m, 1h, 1d (units s, m, h, d, w)";

/// A histogram interval: `auto` (None: the indexer chooses) or a whole number of `s`, `m`,
/// `h`, `d` or `w`, at least one second.
pub fn parse_interval(value: &str) -> Result<Option<Duration>, TimeError> {
    let err = |reason: String| TimeError {
        value: value.to_string(),
        reason,
    };
    let text = value.trim();
    if text == "auto" {
        return Ok(None);
    }
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..];
    let n: i64 = digits.parse().map_err(|_| {
        err(format!(
            "`{digits}` is not a whole number; expected {INTERVAL_EXPECTED}"
        ))
    })?;
    if n < 1 {
        return Err(err(format!(
            "an interval is at least 1s; expected {INTERVAL_EXPECTED}"
        )));
    }
    let span = match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        "w" => Duration::try_weeks(n),
        "" => {
            return Err(err(format!(
                "`{text}` has no unit; expected {INTERVAL_EXPECTED}"
            )))
        }
        other => {
            return Err(err(format!(
                "unknown unit `{other}`; expected {INTERVAL_EXPECTED}"
            )))
        }
    };
    span.map(Some).ok_or_else(|| err("too long".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    #[test]
    fn relative_times_count_back_from_the_given_now() {
        assert_eq!(parse_time("now", now()).unwrap(), now());
        assert_eq!(
            parse_time("now-15m", now()).unwrap(),
            now() - Duration::minutes(15)
        );
        assert_eq!(
            parse_time("now-24h", now()).unwrap(),
            now() - Duration::hours(24)
        );
        assert_eq!(
            parse_time("now-7d", now()).unwrap(),
            now() - Duration::days(7)
        );
        assert_eq!(
            parse_time("now-2w", now()).unwrap(),
            now() - Duration::weeks(2)
        );
        assert_eq!(
            parse_time("now+30s", now()).unwrap(),
            now() + Duration::seconds(30)
        );
    }

    #[test]
    fn absolute_times_are_rfc3339_in_any_offset() {
        assert_eq!(parse_time("2026-11-25T12:00:00Z", now()).unwrap(), now());
        assert_eq!(
            parse_time("2026-11-25T13:00:00+01:00", now()).unwrap(),
            now()
        );
    }

    #[test]
    fn each_malformed_time_says_what_is_wrong() {
        let reason = |v: &str| parse_time(v, now()).unwrap_err().reason;
        assert!(
            reason("yesterday").contains("expected RFC 3339"),
            "{}",
            reason("yesterday")
        );
        assert!(reason("now*2h").contains("+ or -"));
        assert!(reason("now-15").contains("no unit"));
        assert!(reason("now-15y").contains("unknown unit `y`"));
        assert!(reason("now-xh").contains("not a whole number"));
        assert!(reason("now-99999999999999d").contains("too far"));
        assert!(reason("2026-13-01T00:00:00Z").contains("expected RFC 3339"));
        // Once a panic: the byte after `now` fell inside a character.
        assert!(reason("nowé").contains("+ or -"));
        assert!(reason("now-5é").contains("not a whole number"));
    }

    #[test]
    fn intervals_are_auto_or_a_whole_number_of_a_unit() {
        assert_eq!(parse_interval("auto").unwrap(), None);
        assert_eq!(parse_interval("1m").unwrap(), Some(Duration::minutes(1)));
        assert_eq!(parse_interval("1h").unwrap(), Some(Duration::hours(1)));
        assert_eq!(parse_interval("1d").unwrap(), Some(Duration::days(1)));
        assert_eq!(parse_interval("30s").unwrap(), Some(Duration::seconds(30)));
        let reason = |v: &str| parse_interval(v).unwrap_err().reason;
        assert!(reason("0m").contains("at least 1s"));
        assert!(reason("-1m").contains("at least 1s"));
        assert!(reason("1y").contains("unknown unit `y`"));
        assert!(reason("15").contains("no unit"));
        assert!(reason("é").contains("not a whole number"));
        assert!(reason("99999999999999999w").contains("too long"));
    }
}
