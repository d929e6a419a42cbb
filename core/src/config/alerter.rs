use super::Problems;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Duration;

/// `[alerter]`: when alerts fire, how they avoid noise, and where they are sent.
///
/// Rules are a list of `[[alerter.rules]]` tables, each with a `kind`; a file that names any
/// rule replaces the default list as a whole.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlerterConfig {
    /// How often rules are evaluated (observations also trigger an evaluation at once).
    #[serde(with = "humantime_serde")]
    pub evaluation_interval: Duration,
    /// A firing alert resolves only once its condition has been clear this long, so a
    /// flapping value gives one firing and one resolved message, not one per round.
    #[serde(with = "humantime_serde")]
    pub min_hold: Duration,
    /// How often a still-firing alert is sent again as a reminder (0s: never).
    #[serde(with = "humantime_serde")]
    pub repeat_interval: Duration,
    /// How long alert history (state changes, deliveries) is kept.
    #[serde(with = "humantime_serde")]
    pub history_retention: Duration,
    pub rules: Vec<RuleConfig>,
    pub slack: SlackConfig,
    /// Where other services reach the alert API in distributed mode.
    pub url: Option<String>,
}

impl Default for AlerterConfig {
    fn default() -> Self {
        Self {
            evaluation_interval: Duration::from_secs(1),
            min_hold: Duration::from_secs(60),
            repeat_interval: Duration::from_secs(4 * 3600),
            history_retention: Duration::from_secs(35 * 24 * 3600),
            rules: default_rules(),
            slack: SlackConfig::default(),
            url: None,
        }
    }
}

/// The rules `windsock up` runs with when the configuration names none.
pub fn default_rules() -> Vec<RuleConfig> {
    vec![
        RuleConfig::LateData {
            name: "late_data".into(),
            severity: Severity::Warning,
            late_after: None,
            grace: Duration::from_secs(30),
            pipeline_down: true,
        },
        RuleConfig::Threshold {
            name: "extreme_heat".into(),
            severity: Severity::Critical,
            metric: "temperature_c".into(),
            region: None,
            above: Some(45.0),
            below: None,
            pending_for: Duration::from_secs(600),
            hysteresis: 1.0,
        },
        RuleConfig::Threshold {
            name: "strong_wind".into(),
            severity: Severity::Warning,
            metric: "wind_speed_ms".into(),
            region: None,
            above: Some(17.0),
            below: None,
            pending_for: Duration::from_secs(300),
            hysteresis: 2.0,
        },
        RuleConfig::ForecastDeviation {
            name: "forecast_deviation".into(),
            severity: Severity::Warning,
            region: None,
            consecutive: 3,
            level: None,
        },
        RuleConfig::Outlier {
            name: "regional_outlier".into(),
            severity: Severity::Warning,
            metric: "temperature_c".into(),
            scope: OutlierScope::Regions,
            method: OutlierMethod::Mad,
            sensitivity: 0.5,
            min_history: 5,
            window: 48,
            consecutive: 2,
            min_deviation: 5.0,
        },
        RuleConfig::PipelineHealth {
            name: "pipeline_health".into(),
            severity: Severity::Critical,
            startup_window: default_startup_window(),
        },
    ]
}

/// The alert names a `pipeline_health` rule raises (one alert per failing service each).
pub const HEALTH_CONDITIONS: [&str; 2] = ["service_failing", "disk_full"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

fn warning() -> Severity {
    Severity::Warning
}

fn critical() -> Severity {
    Severity::Critical
}

/// Who an outlier is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutlierScope {
    /// The other regions' readings of the same round.
    Regions,
    /// The region's own recent readings.
    History,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutlierMethod {
    /// Median absolute deviation (augurs `MADDetector`).
    Mad,
    /// Density clustering (augurs `DbscanDetector`).
    Dbscan,
}

/// One `[[alerter.rules]]` entry. Names are unique: an alert is one (rule, region).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleConfig {
    /// A region sent nothing for `late_after`; with `pipeline_down`, a separate alert when no
    /// region at all reports, which holds back the per-region ones.
    LateData {
        name: String,
        #[serde(default = "warning")]
        severity: Severity,
        /// Default: twice the collector's interval plus `grace`.
        #[serde(default, with = "humantime_serde")]
        late_after: Option<Duration>,
        #[serde(default = "default_grace", with = "humantime_serde")]
        grace: Duration,
        #[serde(default = "yes")]
        pipeline_down: bool,
    },
    /// A metric (an `Observation` field such as `temperature_c`) above or below a value.
    Threshold {
        name: String,
        #[serde(default = "warning")]
        severity: Severity,
        metric: String,
        /// Only this region (default: every region).
        #[serde(default)]
        region: Option<String>,
        #[serde(default)]
        above: Option<f64>,
        #[serde(default)]
        below: Option<f64>,
        /// How long the condition must hold before the alert fires (pending until then).
        #[serde(rename = "for", default, with = "humantime_serde")]
        pending_for: Duration,
        /// How far back past the threshold the value must go before the alert can resolve.
        #[serde(default)]
        hysteresis: f64,
    },
    /// The temperature falls outside the latest forecast's prediction interval
    /// `consecutive` times in a row.
    ForecastDeviation {
        name: String,
        #[serde(default = "warning")]
        severity: Severity,
        #[serde(default)]
        region: Option<String>,
        #[serde(default = "default_consecutive")]
        consecutive: u32,
        /// The interval's level (such as 0.99); default: the forecast's own level. Another
        /// level widens or narrows the forecast's interval assuming normal errors.
        #[serde(default)]
        level: Option<f64>,
    },
    /// A region's reading is an outlier among the regions of its round, or against its own
    /// recent history, `consecutive` times in a row.
    Outlier {
        name: String,
        #[serde(default = "warning")]
        severity: Severity,
        #[serde(default = "default_metric")]
        metric: String,
        scope: OutlierScope,
        #[serde(default = "default_method")]
        method: OutlierMethod,
        /// In (0, 1): higher flags more.
        #[serde(default = "default_sensitivity")]
        sensitivity: f64,
        /// Rounds (scope `regions`) or readings (scope `history`) needed before it can fire.
        #[serde(default = "default_min_history")]
        min_history: usize,
        /// Readings of history kept per region (scope `history`).
        #[serde(default = "default_window")]
        window: usize,
        #[serde(default = "default_outlier_consecutive")]
        consecutive: u32,
        /// The least distance from the group's median (in the metric's unit) that counts:
        /// regions close together make tiny, natural differences look statistically odd.
        #[serde(default = "default_min_deviation")]
        min_deviation: f64,
    },
    /// The pipeline alerts about itself: a log event with `fields.condition`
    /// (`service_failing` or `disk_full`) and `fields.state = "failing"` fires an alert named
    /// after the condition, one per `fields.service`, at once; `state = "ok"` resolves it.
    PipelineHealth {
        name: String,
        #[serde(default = "critical")]
        severity: Severity,
        /// A report logged more than this before the alerter started is history (read
        /// again after a restart): it can resolve an alert, never fire one.
        #[serde(default = "default_startup_window", with = "humantime_serde")]
        startup_window: Duration,
    },
    /// The count of events matching a search (the language of `/api/search`, see the
    /// `windsock-query` crate) over the last `window`, above or below a number; with
    /// `group_by`, one alert per value of that field (`region`, `service`, ...).
    Query {
        name: String,
        #[serde(default = "warning")]
        severity: Severity,
        query: String,
        #[serde(default = "default_query_window", with = "humantime_serde")]
        window: Duration,
        /// Fires when more than this many events matched within the window.
        #[serde(default)]
        above: Option<u64>,
        /// Fires when fewer than this many events matched within the window.
        #[serde(default)]
        below: Option<u64>,
        /// One alert per value of this field (`region`, `service`, `level`, `source`,
        /// `kind` or `fields.<attribute>`).
        #[serde(default)]
        group_by: Option<String>,
        #[serde(rename = "for", default, with = "humantime_serde")]
        pending_for: Duration,
    },
}

fn default_query_window() -> Duration {
    Duration::from_secs(60)
}

/// The longest window a query rule may count over (its memory is a count per second).
pub const MAX_QUERY_WINDOW: Duration = Duration::from_secs(24 * 3600);

fn default_startup_window() -> Duration {
    Duration::from_secs(60)
}

fn default_grace() -> Duration {
    Duration::from_secs(30)
}
fn yes() -> bool {
    true
}
fn default_consecutive() -> u32 {
    3
}
fn default_outlier_consecutive() -> u32 {
    1
}
fn default_metric() -> String {
    "temperature_c".into()
}
fn default_method() -> OutlierMethod {
    OutlierMethod::Mad
}
fn default_sensitivity() -> f64 {
    0.5
}
fn default_min_history() -> usize {
    5
}
fn default_min_deviation() -> f64 {
    5.0
}
fn default_window() -> usize {
    48
}

impl RuleConfig {
    pub fn name(&self) -> &str {
        match self {
            RuleConfig::LateData { name, .. }
            | RuleConfig::Threshold { name, .. }
            | RuleConfig::ForecastDeviation { name, .. }
            | RuleConfig::Outlier { name, .. }
            | RuleConfig::PipelineHealth { name, .. }
            | RuleConfig::Query { name, .. } => name,
        }
    }

    pub fn severity(&self) -> Severity {
        match self {
            RuleConfig::LateData { severity, .. }
            | RuleConfig::Threshold { severity, .. }
            | RuleConfig::ForecastDeviation { severity, .. }
            | RuleConfig::Outlier { severity, .. }
            | RuleConfig::PipelineHealth { severity, .. }
            | RuleConfig::Query { severity, .. } => *severity,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            RuleConfig::LateData { .. } => "late_data",
            RuleConfig::Threshold { .. } => "threshold",
            RuleConfig::ForecastDeviation { .. } => "forecast_deviation",
            RuleConfig::Outlier { .. } => "outlier",
            RuleConfig::PipelineHealth { .. } => "pipeline_health",
            RuleConfig::Query { .. } => "query",
        }
    }

    /// The problems of this rule on its own, as `config check` finds them under `key` (a rule
    /// given through the API is checked by the same code; uniqueness across rules is the
    /// caller's). A name of a built-in alert is refused here too.
    pub fn check(&self, key: &str) -> Vec<super::ConfigProblem> {
        let mut problems = Problems::default();
        self.validate(key, &mut problems);
        if HEALTH_CONDITIONS.contains(&self.name()) || self.name() == "pipeline_down" {
            problems.push(
                format!("{key}.name"),
                format!(
                    "`{}` is the name of a built-in alert (pipeline_down, {})",
                    self.name(),
                    HEALTH_CONDITIONS.join(", ")
                ),
            );
        }
        problems.0
    }

    fn validate(&self, key: &str, problems: &mut Problems) {
        let at = |field: &str| format!("{key}.{field}");
        if self.name().trim().is_empty() {
            problems.push(at("name"), "must not be empty");
        }
        match self {
            RuleConfig::LateData { late_after, .. } => {
                if late_after.is_some_and(|d| d.is_zero()) {
                    problems.push(at("late_after"), "must be more than 0s");
                }
            }
            RuleConfig::Threshold {
                metric,
                above,
                below,
                hysteresis,
                ..
            } => {
                check_metric(metric, &at("metric"), problems);
                if above.is_none() && below.is_none() {
                    problems.push(key, "a threshold rule needs `above` or `below` (or both)");
                }
                if let (Some(a), Some(b)) = (above, below) {
                    if b >= a {
                        problems.push(at("below"), format!("{b} must be less than `above` ({a})"));
                    }
                }
                if !hysteresis.is_finite() || *hysteresis < 0.0 {
                    problems.push(at("hysteresis"), "must be 0 or more");
                }
            }
            RuleConfig::ForecastDeviation {
                consecutive, level, ..
            } => {
                if *consecutive == 0 {
                    problems.push(at("consecutive"), "must be at least 1");
                }
                if level.is_some_and(|l| !(l > 0.0 && l < 1.0)) {
                    problems.push(at("level"), "must be between 0 and 1 (such as 0.95)");
                }
            }
            RuleConfig::Outlier {
                metric,
                sensitivity,
                min_history,
                window,
                consecutive,
                scope,
                min_deviation,
                ..
            } => {
                check_metric(metric, &at("metric"), problems);
                if !min_deviation.is_finite() || *min_deviation < 0.0 {
                    problems.push(at("min_deviation"), "must be 0 or more");
                }
                if !(*sensitivity > 0.0 && *sensitivity < 1.0) {
                    problems.push(at("sensitivity"), "must be between 0 and 1 (exclusive)");
                }
                if *consecutive == 0 {
                    problems.push(at("consecutive"), "must be at least 1");
                }
                if *scope == OutlierScope::History && *min_history < 3 {
                    problems.push(at("min_history"), "must be at least 3 readings");
                }
                if *scope == OutlierScope::History && window < min_history {
                    problems.push(
                        at("window"),
                        format!("must be at least `min_history` ({min_history})"),
                    );
                }
            }
            RuleConfig::PipelineHealth { .. } => {}
            RuleConfig::Query {
                name,
                query,
                window,
                above,
                below,
                group_by,
                ..
            } => {
                if let Err(error) = windsock_query::parse(query) {
                    problems.push(
                        at("query"),
                        format!(
                            "rule `{name}`: {} (at byte {} of the query)",
                            error.message, error.position
                        ),
                    );
                }
                if window.as_secs() < 1 || *window > MAX_QUERY_WINDOW {
                    problems.push(at("window"), "must be from 1s to 24h");
                }
                if above.is_none() && below.is_none() {
                    problems.push(key, "a query rule needs `above` or `below` (or both)");
                }
                if let (Some(a), Some(b)) = (above, below) {
                    if b > a {
                        problems.push(
                            at("below"),
                            format!("{b} must not be more than `above` ({a})"),
                        );
                    }
                }
                if let Some(field) = group_by {
                    if !is_group_field(field) {
                        problems.push(
                            at("group_by"),
                            format!(
                                "`{field}` cannot group alerts: one of region, service, level, \
                                 source, kind or fields.<attribute>"
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// Whether a query rule may group its counts by `field`.
pub fn is_group_field(field: &str) -> bool {
    matches!(field, "region" | "service" | "level" | "source" | "kind")
        || field.strip_prefix("fields.").is_some_and(|p| !p.is_empty())
}

fn check_metric(metric: &str, key: &str, problems: &mut Problems) {
    const METRICS: &[&str] = crate::event::Observation::METRICS;
    if !METRICS.contains(&metric) {
        problems.push(
            key,
            format!("`{metric}` is not a metric (one of {})", METRICS.join(", ")),
        );
    }
}

impl AlerterConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        if self.evaluation_interval.is_zero() {
            problems.push("alerter.evaluation_interval", "must be more than 0s");
        }
        if self.history_retention < Duration::from_secs(30 * 24 * 3600) {
            problems.push("alerter.history_retention", "must be at least 30 days");
        }
        let mut names = HashSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let key = format!("alerter.rules[{i}]");
            if !names.insert(rule.name()) {
                problems.push(
                    format!("{key}.name"),
                    format!("`{}` is used by another rule", rule.name()),
                );
            }
            rule.validate(&key, problems);
        }
        if self
            .rules
            .iter()
            .filter(|r| matches!(r, RuleConfig::LateData { .. }))
            .count()
            > 1
        {
            problems.push("alerter.rules", "at most one late_data rule");
        }
        if self
            .rules
            .iter()
            .filter(|r| matches!(r, RuleConfig::PipelineHealth { .. }))
            .count()
            > 1
        {
            problems.push("alerter.rules", "at most one pipeline_health rule");
        }
        // Alerts of these names come from built-in conditions: a rule of the same name would
        // share their silences and history.
        for (i, rule) in self.rules.iter().enumerate() {
            let reserved =
                HEALTH_CONDITIONS.contains(&rule.name()) || rule.name() == "pipeline_down";
            if reserved {
                problems.push(
                    format!("alerter.rules[{i}].name"),
                    format!(
                        "`{}` is the name of a built-in alert (pipeline_down, {})",
                        rule.name(),
                        HEALTH_CONDITIONS.join(", ")
                    ),
                );
            }
        }
        self.slack.validate(problems);
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlackConfig {
    /// Set it with `WINDSOCK_SLACK_WEBHOOK_URL`; never logged. Unset: alerts are kept and
    /// shown, not sent.
    pub webhook_url: Option<Secret>,
    /// The least time between two messages (Slack allows about one per second per webhook).
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// Per-request timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// First wait after a 5xx or a timeout; doubles (with jitter) up to `backoff_max`.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// A message still failing with retryable errors this long after it was decided is
    /// given up on (counted and shown as failed).
    #[serde(with = "humantime_serde")]
    pub give_up_after: Duration,
}

impl Default for SlackConfig {
    fn default() -> Self {
        Self {
            webhook_url: None,
            min_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl SlackConfig {
    fn validate(&self, problems: &mut Problems) {
        if let Some(url) = self.webhook_url.as_ref().filter(|u| !u.is_empty()) {
            // Never echo the value, nor any part of it but a well-known scheme: it is a secret.
            match url::Url::parse(url.expose()) {
                Err(_) => problems.push(
                    "alerter.slack.webhook_url",
                    "is not a URL (value not shown: it is a secret)",
                ),
                Ok(parsed) => {
                    if let Some(scheme) = unsafe_webhook_scheme(&parsed) {
                        problems.push(
                            "alerter.slack.webhook_url",
                            format!(
                                "must be an https URL (or http to a loopback address for \
                                 testing); got {scheme}"
                            ),
                        );
                    }
                }
            }
        }
        if self.timeout.is_zero() {
            problems.push("alerter.slack.timeout", "must be more than 0s");
        }
        if self.backoff_initial.is_zero() {
            problems.push("alerter.slack.backoff_initial", "must be more than 0s");
        }
        if self.backoff_max < self.backoff_initial {
            problems.push(
                "alerter.slack.backoff_max",
                "must be at least `backoff_initial`",
            );
        }
    }
}

/// Why a webhook URL may not be used, in words that reveal nothing of the URL; `None` when
/// it is `https`, or `http` to a loopback host (a local test server).
fn unsafe_webhook_scheme(url: &url::Url) -> Option<String> {
    let loopback = match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => None,
        "http" if loopback => None,
        "http" => Some("an `http` URL to a host that is not loopback".into()),
        // Anything before the `:` of a string that parses is a "scheme": name only the
        // well-known ones, an unknown one may be part of the secret itself.
        scheme @ ("ftp" | "ftps" | "sftp" | "file" | "ws" | "wss" | "mailto" | "data"
        | "javascript" | "ssh" | "gopher" | "telnet" | "ldap") => Some(format!("a `{scheme}` URL")),
        _ => Some("a URL of another scheme".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(toml: &str) -> Result<Config, crate::config::ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("windsock.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load_with_env(Some(&path), Vec::new())
    }

    #[test]
    fn defaults_validate_and_include_every_kind() {
        let config = Config::default();
        assert!(config.validate().is_empty(), "{:?}", config.validate());
        let kinds: HashSet<_> = config.alerter.rules.iter().map(|r| r.kind()).collect();
        assert_eq!(kinds.len(), 5);
    }

    #[test]
    fn rules_parse_from_toml() {
        let config = load(
            r#"
            [alerter]
            min_hold = "2m"
            [[alerter.rules]]
            kind = "threshold"
            name = "hot"
            metric = "temperature_c"
            region = "Dakar"
            above = 40
            for = "5m"
            [[alerter.rules]]
            kind = "outlier"
            name = "odd"
            scope = "history"
            method = "dbscan"
            "#,
        )
        .unwrap();
        assert_eq!(config.alerter.rules.len(), 2);
        assert_eq!(config.alerter.min_hold, Duration::from_secs(120));
        match &config.alerter.rules[0] {
            RuleConfig::Threshold {
                pending_for,
                region,
                ..
            } => {
                assert_eq!(*pending_for, Duration::from_secs(300));
                assert_eq!(region.as_deref(), Some("Dakar"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_dotted_key() {
        let err = load(
            r#"
            [[alerter.rules]]
            kind = "threshold"
            name = "x"
            metric = "temprature"
            [[alerter.rules]]
            kind = "forecast_deviation"
            name = "x"
            consecutive = 0
            level = 2.0
            "#,
        )
        .unwrap_err();
        let keys: Vec<_> = err.problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "alerter.rules[0].metric",
            "alerter.rules[0]",
            "alerter.rules[1].name",
            "alerter.rules[1].consecutive",
            "alerter.rules[1].level",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
    }

    #[test]
    fn a_query_rule_parses_and_a_malformed_query_names_the_rule() {
        let config = load(
            r#"
            [[alerter.rules]]
            kind = "query"
            name = "source_failing"
            query = "service:collector AND fields.status:failed"
            window = "1m"
            above = 3
            group_by = "region"
            "#,
        )
        .unwrap();
        match &config.alerter.rules[0] {
            RuleConfig::Query {
                window,
                above,
                group_by,
                ..
            } => {
                assert_eq!(*window, Duration::from_secs(60));
                assert_eq!(*above, Some(3));
                assert_eq!(group_by.as_deref(), Some("region"));
            }
            other => panic!("{other:?}"),
        }
        let err = load(
            r#"
            [[alerter.rules]]
            kind = "query"
            name = "broken"
            query = "service:collector AND (fields.status:failed"
            above = 3
            [[alerter.rules]]
            kind = "query"
            name = "neither"
            query = "regoin:Dakar"
            window = "2d"
            group_by = "message"
            "#,
        )
        .unwrap_err();
        let problem = |key: &str| {
            err.problems
                .iter()
                .find(|p| p.key == key)
                .unwrap_or_else(|| panic!("{key} missing from {:?}", err.problems))
                .message
                .clone()
        };
        assert!(problem("alerter.rules[0].query").contains("rule `broken`"));
        assert!(problem("alerter.rules[0].query").contains("syntax"));
        assert!(problem("alerter.rules[1].query").contains("unknown field `regoin`"));
        problem("alerter.rules[1].window");
        problem("alerter.rules[1].group_by");
        problem("alerter.rules[1]");
    }

    /// The query crate keeps its own copy of the metrics (it cannot depend on core).
    #[test]
    fn the_query_language_knows_every_metric() {
        assert_eq!(windsock_query::METRICS, crate::event::Observation::METRICS);
    }

    #[test]
    fn a_bad_webhook_url_is_reported_without_its_value() {
        let config = Config::load_with_env(
            None,
            vec![(
                "WINDSOCK_SLACK_WEBHOOK_URL".to_string(),
                "not-a-url-s3cr3t".to_string(),
            )],
        );
        let err = config.unwrap_err().to_string();
        assert!(err.contains("alerter.slack.webhook_url"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn webhook_urls_must_be_https_or_http_to_loopback_and_are_never_echoed() {
        let check = |url: &str| {
            Config::load_with_env(
                None,
                vec![("WINDSOCK_SLACK_WEBHOOK_URL".to_string(), url.to_string())],
            )
            .err()
            .map(|e| e.to_string())
        };
        for ok in [
            "https://hooks.slack.com/services/T0/B0/s3cr3t",
            "http://127.0.0.1:9999/services/s3cr3t",
            "http://127.8.0.1/s3cr3t",
            "http://[::1]:8080/s3cr3t",
            "http://localhost:8080/s3cr3t",
        ] {
            assert_eq!(check(ok), None, "{ok}");
        }
        for (bad, said) in [
            ("ftp://hooks.slack.com/services/s3cr3t", "got a `ftp` URL"),
            (
                "http://hooks.slack.com/services/s3cr3t",
                "got an `http` URL to a host that is not loopback",
            ),
            ("http://10.0.0.1/s3cr3t", "not loopback"),
            ("http://localhost.evil.example/s3cr3t", "not loopback"),
            ("s3cr3t:abc", "a URL of another scheme"),
        ] {
            let err = check(bad).unwrap_or_else(|| panic!("{bad} was accepted"));
            assert!(err.contains("alerter.slack.webhook_url"), "{err}");
            assert!(err.contains("must be an https URL"), "{err}");
            assert!(err.contains(said), "{err}");
            assert!(!err.contains("s3cr3t"), "{err}");
            assert!(!err.contains("slack.com"), "{err}");
        }
    }

    #[test]
    fn pipeline_health_parses_and_its_alert_names_are_reserved() {
        let config = load(
            r#"
            [[alerter.rules]]
            kind = "pipeline_health"
            name = "self"
            startup_window = "5m"
            "#,
        )
        .unwrap();
        match &config.alerter.rules[0] {
            RuleConfig::PipelineHealth {
                severity,
                startup_window,
                ..
            } => {
                assert_eq!(*severity, Severity::Critical);
                assert_eq!(*startup_window, Duration::from_secs(300));
            }
            other => panic!("{other:?}"),
        }
        let err = load(
            r#"
            [[alerter.rules]]
            kind = "pipeline_health"
            name = "a"
            [[alerter.rules]]
            kind = "pipeline_health"
            name = "disk_full"
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("at most one pipeline_health rule"), "{err}");
        assert!(err.contains("alerter.rules[1].name"), "{err}");
    }
}
