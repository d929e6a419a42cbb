use super::Problems;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// The title shown in the browser tab and the header.
    pub title: String,
    /// Where `windsock ui` reaches the collector's API (`/api/collector/*`) in distributed
    /// mode. The other services' URLs are `indexer.url`, `forecaster.url` and `alerter.url`.
    /// Unset in `windsock up`, where every API is served by the same process.
    pub collector_url: Option<String>,
    /// How long a proxied API request may take before the UI answers 504.
    #[serde(with = "humantime_serde")]
    pub proxy_timeout: Duration,
    /// How often the search page refreshes in live mode.
    #[serde(with = "humantime_serde")]
    pub live_interval: Duration,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            title: "windsock".into(),
            collector_url: None,
            proxy_timeout: Duration::from_secs(30),
            live_interval: Duration::from_secs(5),
        }
    }
}

impl UiConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        if self.title.trim().is_empty() {
            problems.push("ui.title", "must not be empty");
        }
        if let Some(url) = &self.collector_url {
            match url::Url::parse(url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                _ => problems.push(
                    "ui.collector_url",
                    format!("`{}` is not an http(s) URL", crate::secret::redact_url(url)),
                ),
            }
        }
        if self.proxy_timeout.is_zero() {
            problems.push("ui.proxy_timeout", "must be more than 0s");
        }
        if self.live_interval < Duration::from_secs(1) {
            problems.push("ui.live_interval", "must be at least 1s");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_reported_with_their_key() {
        let mut problems = Problems::default();
        UiConfig::default().validate(&mut problems);
        assert!(problems.0.is_empty(), "{:?}", problems.0);

        let config = UiConfig {
            title: " ".into(),
            collector_url: Some("ftp://x".into()),
            proxy_timeout: Duration::ZERO,
            live_interval: Duration::from_millis(10),
        };
        let mut problems = Problems::default();
        config.validate(&mut problems);
        let keys: Vec<&str> = problems.0.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "ui.title",
                "ui.collector_url",
                "ui.proxy_timeout",
                "ui.live_interval"
            ]
        );
    }
}
