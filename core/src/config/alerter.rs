use super::Problems;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlerterConfig {
    /// How often rules are evaluated.
    #[serde(with = "humantime_serde")]
    pub evaluation_interval: Duration,
    pub slack: SlackConfig,
    /// Where other services reach the alert API in distributed mode.
    pub url: Option<String>,
}

impl Default for AlerterConfig {
    fn default() -> Self {
        Self {
            evaluation_interval: Duration::from_secs(1),
            slack: SlackConfig::default(),
            url: None,
        }
    }
}

impl AlerterConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        if self.evaluation_interval.is_zero() {
            problems.push("alerter.evaluation_interval", "must be more than 0s");
        }
        if let Some(url) = &self.slack.webhook_url {
            if url::Url::parse(url.expose()).is_err() {
                // Never echo the value: it is a secret.
                problems.push("alerter.slack.webhook_url", "is not a URL (value not shown: it is a secret)");
            }
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlackConfig {
    /// Set it with `WINDSOCK_SLACK_WEBHOOK_URL`; never logged. Unset: alerts are kept and
    /// shown, not sent.
    pub webhook_url: Option<Secret>,
}
