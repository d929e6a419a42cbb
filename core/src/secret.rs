//! Secrets (API keys, the Slack webhook URL, API tokens) and URL redaction.
//!
//! A [`Secret`] prints as `[redacted]` in every `Debug` and `Display`, so it cannot reach a
//! log line or an error message by accident; the value is read only through [`Secret::expose`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call this only where it leaves for its destination.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// Query parameters whose values are secrets wherever they appear in a URL.
const SECRET_PARAMS: &[&str] = &["appid", "apikey", "api_key", "key", "token", "access_token"];

/// A URL safe to log: secret query values become `[redacted]`, and for URLs that are secrets
/// in their path (such as a Slack webhook) only the scheme and host remain.
pub fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return "[unparseable url]".to_string();
    };
    if url
        .host_str()
        .is_some_and(|h| h.ends_with("hooks.slack.com"))
    {
        return format!(
            "{}://{}/[redacted]",
            url.scheme(),
            url.host_str().unwrap_or("")
        );
    }
    let _ = url.set_password(None).map(|_| ());
    if !url.username().is_empty() {
        let _ = url.set_username("[redacted]");
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let secret = SECRET_PARAMS.iter().any(|p| k.eq_ignore_ascii_case(p));
            let value = if secret {
                "[redacted]".to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), value)
        })
        .collect();
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // Keep the brackets readable: `appid=[redacted]` rather than `appid=%5Bredacted%5D`.
    url.to_string().replace("%5Bredacted%5D", "[redacted]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn urls_lose_their_keys() {
        let u = redact_url(
            "https://api.openweathermap.org/data/3.0/onecall?lat=1&lon=2&appid=abc123&units=metric",
        );
        assert!(!u.contains("abc123"), "{u}");
        assert!(u.contains("appid=[redacted]") && u.contains("lat=1"), "{u}");
        let slack = redact_url("https://hooks.slack.com/services/T000/B000/XXXX");
        assert_eq!(slack, "https://hooks.slack.com/[redacted]");
        assert_eq!(redact_url("not a url"), "[unparseable url]");
    }
}
