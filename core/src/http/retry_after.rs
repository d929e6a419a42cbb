//! `Retry-After` (RFC 9110 §10.2.3), read one way by every client windsock has (the
//! collector's weather APIs, the alerter's Slack webhook).

use chrono::{DateTime, NaiveDateTime, Utc};
use std::time::{Duration, SystemTime};

/// The longest wait [`retry_after`] returns: a server asking for more is taken as asking for
/// this. Callers cap it lower for their own purpose (give up, or wait less).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The wait a `Retry-After` value asks for, at `now`: delay-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, and the two obsolete forms RFC 9110 says to accept). A
/// date in the past is no wait; a wait over [`MAX_RETRY_AFTER`] is that maximum; anything
/// else (negative, fractional, garbage, not UTF-8) is `None`.
///
/// Pass the wall clock as `now` (`SystemTime::now()`): the server's date is a wall-clock time
/// and the wait is slept in real time.
pub fn retry_after(value: impl AsRef<[u8]>, now: SystemTime) -> Option<Duration> {
    let value = std::str::from_utf8(value.as_ref()).ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: too many of them for a u64 is still a (very long) number of seconds.
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    let at = http_date(value)?;
    let now: DateTime<Utc> = now.into();
    let wait = (at - now).to_std().unwrap_or(Duration::ZERO);
    Some(wait.min(MAX_RETRY_AFTER))
}

/// An HTTP-date: IMF-fixdate, or the obsolete RFC 850 and asctime forms.
fn http_date(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc2822(value) {
        return Some(at.with_timezone(&Utc));
    }
    // `Sunday, 06-Nov-94 08:49:37 GMT` (two-digit years: chrono's %y reads 70-99 as 19xx).
    // `Sun Nov  6 08:49:37 1994` (asctime).
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
        .map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_784_000_000)
    }

    fn imf(at: SystemTime) -> String {
        DateTime::<Utc>::from(at)
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string()
    }

    #[test]
    fn seconds() {
        assert_eq!(retry_after("7", now()), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(" 0 ", now()), Some(Duration::ZERO));
        assert_eq!(
            retry_after("99999999999999999999999999", now()),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(retry_after("90000", now()), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn http_dates_in_every_form() {
        let later = now() + Duration::from_secs(30);
        assert_eq!(
            retry_after(imf(later), now()),
            Some(Duration::from_secs(30))
        );
        let earlier = now() - Duration::from_secs(30);
        assert_eq!(retry_after(imf(earlier), now()), Some(Duration::ZERO));
        let then = DateTime::parse_from_rfc3339("1994-11-06T08:49:37Z")
            .unwrap()
            .with_timezone(&Utc);
        let before = SystemTime::from(then) - Duration::from_secs(10);
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                retry_after(form, before),
                Some(Duration::from_secs(10)),
                "{form}"
            );
        }
        assert_eq!(
            retry_after(imf(now() + Duration::from_secs(10 * 86400)), now()),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn garbage_is_none() {
        for value in [
            "",
            "soon",
            "-5",
            "1.5",
            "0x10",
            "Sun, 99 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(retry_after(value, now()), None, "{value}");
        }
        assert_eq!(retry_after([0xff, 0xfe], now()), None);
        let header = axum::http::HeaderValue::from_static("12");
        assert_eq!(retry_after(&header, now()), Some(Duration::from_secs(12)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_value_is_bounded_and_never_panics(value in "\\PC{0,40}", offset in any::<u32>()) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(offset.into());
            if let Some(wait) = retry_after(&value, now) {
                prop_assert!(wait <= MAX_RETRY_AFTER);
            }
        }
    }
}
