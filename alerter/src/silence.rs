//! Silences: "do not notify about these alerts for a while", matched on rule and region.
//! A silenced alert is still tracked and shown; only its Slack messages are held back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Silence {
    pub id: String,
    /// Matches alerts of this rule (any rule when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Matches alerts of this region (any region when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub author: String,
    pub comment: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SilenceStatus {
    Pending,
    Active,
    Expired,
}

impl Silence {
    pub fn status(&self, now: DateTime<Utc>) -> SilenceStatus {
        if now < self.starts_at {
            SilenceStatus::Pending
        } else if now < self.ends_at {
            SilenceStatus::Active
        } else {
            SilenceStatus::Expired
        }
    }

    pub fn matches(&self, rule: &str, region: Option<&str>) -> bool {
        self.rule.as_deref().is_none_or(|r| r == rule)
            && self.region.as_deref().is_none_or(|r| Some(r) == region)
    }

    /// Whether it holds back notifications about (rule, region) at `now`.
    pub fn silences(&self, now: DateTime<Utc>, rule: &str, region: Option<&str>) -> bool {
        self.status(now) == SilenceStatus::Active && self.matches(rule, region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn matchers_and_time_window() {
        let t = |m| Utc.with_ymd_and_hms(2026, 1, 1, 0, m, 0).unwrap();
        let silence = Silence {
            id: "s".into(),
            rule: Some("late_data".into()),
            region: None,
            starts_at: t(10),
            ends_at: t(20),
            author: "awa".into(),
            comment: "maintenance".into(),
            created_at: t(0),
        };
        assert!(silence.silences(t(15), "late_data", Some("Dakar")));
        assert!(!silence.silences(t(15), "extreme_heat", Some("Dakar")));
        assert!(!silence.silences(t(5), "late_data", Some("Dakar")));
        assert!(!silence.silences(t(20), "late_data", Some("Dakar")));
        assert_eq!(silence.status(t(25)), SilenceStatus::Expired);
        let regional = Silence {
            rule: None,
            region: Some("Dakar".into()),
            ..silence
        };
        assert!(regional.silences(t(15), "x", Some("Dakar")));
        assert!(!regional.silences(t(15), "x", None));
    }
}
