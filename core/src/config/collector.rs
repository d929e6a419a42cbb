use super::Problems;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// Deterministic, realistic weather with fault injection: works offline.
    Simulated,
    /// OpenWeatherMap One Call 3.0, falling back to Current Weather 2.5.
    Openweathermap,
    /// Open-Meteo's free forecast API (no key).
    OpenMeteo,
    /// Replays a CSV of real observations.
    Replay,
}

/// The highest `collector.backfill_rate`: beyond it, the limit would not limit anything.
pub const MAX_BACKFILL_RATE: f64 = 1_000_000.0;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    pub source: SourceKind,
    /// Cron with seconds (`sec min hour day month weekday`). Unset: every 10 seconds for
    /// the simulated and replay sources, every 15 minutes for the real APIs.
    pub schedule: Option<String>,
    /// Regions fetched at once within a round.
    pub concurrency: usize,
    /// Per-request timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Retries after the first attempt (jittered exponential backoff; 429 waits Retry-After).
    pub retries: u32,
    /// The first backoff delay; each retry doubles it (with jitter) up to `retry_max_delay`.
    #[serde(with = "humantime_serde")]
    pub retry_min_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max_delay: Duration,
    /// The longest HTTP 429 `Retry-After` waited within a round; a longer one gives the
    /// region up for this round (the next round tries again).
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
    /// On start, how far back to backfill missed intervals where the source serves the past;
    /// also how far back instants missed while running are caught up.
    #[serde(with = "humantime_serde")]
    pub backfill: Duration,
    /// Backfill requests per second to the source (the catch-up of missed instants too),
    /// evenly spaced; live rounds are not limited and go first. Unset: the source's default
    /// ([`CollectorConfig::backfill_rate`]): 1 for openweathermap, 5 for open-meteo, no
    /// limit for simulated and replay (they make no request).
    pub backfill_rate: Option<f64>,
    pub openweathermap: OpenWeatherMapConfig,
    pub open_meteo: OpenMeteoConfig,
    pub simulated: SimulatedConfig,
    pub replay: ReplayConfig,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            source: SourceKind::Simulated,
            schedule: None,
            concurrency: 8,
            timeout: Duration::from_secs(10),
            retries: 3,
            retry_min_delay: Duration::from_millis(500),
            retry_max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            backfill: Duration::from_secs(3600),
            backfill_rate: None,
            openweathermap: OpenWeatherMapConfig::default(),
            open_meteo: OpenMeteoConfig::default(),
            simulated: SimulatedConfig::default(),
            replay: ReplayConfig::default(),
        }
    }
}

impl CollectorConfig {
    /// The schedule in force: the configured one, or the source's default.
    pub fn schedule(&self) -> String {
        self.schedule.clone().unwrap_or_else(|| match self.source {
            SourceKind::Simulated | SourceKind::Replay => "*/10 * * * * *".into(),
            SourceKind::Openweathermap | SourceKind::OpenMeteo => "0 */15 * * * *".into(),
        })
    }

    /// The backfill's requests per second in force: the configured rate, or the source's
    /// default; `None` for no limit. OpenWeatherMap's free plans allow 60 calls a minute;
    /// Open-Meteo's free API 600 a minute (5,000 an hour): half of it leaves room for the
    /// live rounds and for other users of the same key or address.
    pub fn backfill_rate(&self) -> Option<f64> {
        self.backfill_rate.or(match self.source {
            SourceKind::Openweathermap => Some(1.0),
            SourceKind::OpenMeteo => Some(5.0),
            SourceKind::Simulated | SourceKind::Replay => None,
        })
    }

    pub(super) fn validate(&self, problems: &mut Problems) {
        let schedule = self.schedule();
        let fields = schedule.split_whitespace().count();
        if !(6..=7).contains(&fields) {
            problems.push(
                "collector.schedule",
                format!("`{schedule}` is not a cron with seconds (6 fields: sec min hour day month weekday)"),
            );
        }
        if self.concurrency == 0 {
            problems.push("collector.concurrency", "must be at least 1");
        }
        if let Some(rate) = self.backfill_rate {
            if !(rate.is_finite() && rate > 0.0 && rate <= MAX_BACKFILL_RATE) {
                problems.push(
                    "collector.backfill_rate",
                    format!("{rate} is not a rate: requests per second, more than 0 and at most {MAX_BACKFILL_RATE}"),
                );
            }
        }
        if self.timeout.is_zero() {
            problems.push("collector.timeout", "must be more than 0s");
        }
        if self.retry_min_delay > self.retry_max_delay {
            problems.push(
                "collector.retry_min_delay",
                "must not be more than collector.retry_max_delay",
            );
        }
        if self.source == SourceKind::Openweathermap
            && self
                .openweathermap
                .api_key
                .as_ref()
                .is_none_or(Secret::is_empty)
        {
            problems.push(
                "collector.openweathermap.api_key",
                "the openweathermap source needs an API key: set OPENWEATHERMAP_API_KEY",
            );
        }
        if self.source == SourceKind::Replay && self.replay.path.is_none() {
            problems.push(
                "collector.replay.path",
                "the replay source needs a CSV file",
            );
        }
        for (key, url) in [
            (
                "collector.openweathermap.base_url",
                &self.openweathermap.base_url,
            ),
            ("collector.open_meteo.base_url", &self.open_meteo.base_url),
        ] {
            if url::Url::parse(url).is_err() {
                problems.push(key, format!("`{url}` is not a URL"));
            }
        }
        if self.replay.speed <= 0.0 {
            problems.push("collector.replay.speed", "must be more than 0");
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenWeatherMapConfig {
    pub base_url: String,
    /// Set it with `OPENWEATHERMAP_API_KEY`; never logged.
    pub api_key: Option<Secret>,
}

impl Default for OpenWeatherMapConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openweathermap.org".into(),
            api_key: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenMeteoConfig {
    pub base_url: String,
}

impl Default for OpenMeteoConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.open-meteo.com".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatedConfig {
    /// Same seed, same weather.
    pub seed: u64,
    /// Faults to inject, for demos and tests of alerting.
    pub faults: Vec<FaultConfig>,
}

impl Default for SimulatedConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            faults: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultConfig {
    /// The region reports nothing from `after` (since start) for `duration`.
    Silent {
        region: String,
        #[serde(with = "humantime_serde")]
        after: Duration,
        #[serde(with = "humantime_serde")]
        duration: Duration,
    },
    /// The region reports `temperature_c` from `after` for `duration`.
    OutOfRange {
        region: String,
        temperature_c: f64,
        #[serde(with = "humantime_serde")]
        after: Duration,
        #[serde(with = "humantime_serde")]
        duration: Duration,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayConfig {
    /// A CSV with `timestamp,temperature_c` (RFC 3339 timestamps) and optional more columns.
    pub path: Option<std::path::PathBuf>,
    /// Recorded seconds replayed per wall-clock second.
    pub speed: f64,
    /// Which configured regions the recording is replayed onto.
    pub onto: ReplayOnto,
    /// The wall-clock instant the replay is at the recording's first row. Unset: when the
    /// collector starts. Set it to resume one replay across restarts (backfill fills the gap).
    pub anchor: Option<chrono::DateTime<chrono::Utc>>,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            path: None,
            speed: 1.0,
            onto: ReplayOnto::Each,
            anchor: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayOnto {
    /// Every configured region reports the recording.
    Each,
    /// Only the first configured region does.
    First,
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, SourceKind};

    fn load(vars: &[(&str, &str)]) -> Result<Config, String> {
        let env = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::load_with_env(None, env).map_err(|err| err.to_string())
    }

    #[test]
    fn the_backfill_rate_defaults_by_source_and_a_set_one_wins() {
        let mut collector = load(&[]).unwrap().collector;
        assert_eq!(
            collector.backfill_rate(),
            None,
            "simulated: no request to limit"
        );
        collector.source = SourceKind::Openweathermap;
        assert_eq!(collector.backfill_rate(), Some(1.0));
        collector.source = SourceKind::OpenMeteo;
        assert_eq!(collector.backfill_rate(), Some(5.0));
        let set = load(&[("WINDSOCK_COLLECTOR__BACKFILL_RATE", "10")]).unwrap();
        assert_eq!(set.collector.backfill_rate(), Some(10.0));
    }

    #[test]
    fn a_backfill_rate_that_is_not_a_rate_is_refused_by_its_key() {
        for bad in ["0", "-1", "inf", "1e9"] {
            let err = load(&[("WINDSOCK_COLLECTOR__BACKFILL_RATE", bad)]).unwrap_err();
            assert!(err.contains("collector.backfill_rate"), "{bad}: {err}");
        }
    }
}
