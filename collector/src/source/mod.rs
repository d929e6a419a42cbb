//! Where weather comes from: one module per source behind the [`Source`] trait.

mod http;
pub mod open_meteo;
pub mod openweathermap;
pub mod replay;
pub mod simulated;

use crate::schedule::Tick;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use windsock_core::clock::SharedClock;
use windsock_core::config::{Config, Region, SourceKind};
use windsock_core::event::Observation;

pub use http::parse_retry_after;

/// A source of observations.
#[async_trait]
pub trait Source: Send + Sync + 'static {
    /// The name observations carry in `source`.
    fn name(&self) -> &'static str;

    /// What `region` reports for the scheduled `tick`. Empty when it reports nothing.
    async fn current(&self, region: &Region, tick: Tick) -> Result<Vec<Observation>, FetchError>;

    /// How many scheduled instants one [`Source::past`] call covers, or `None` when the
    /// source cannot serve the past (then there is no backfill).
    fn past_batch(&self) -> Option<usize> {
        None
    }

    /// What `region` reported at past `ticks` (as many as [`Source::past_batch`] allows).
    async fn past(&self, region: &Region, ticks: &[Tick]) -> Result<Vec<Observation>, FetchError> {
        let _ = (region, ticks);
        Err(FetchError::Unsupported(format!(
            "the {} source cannot serve the past",
            self.name()
        )))
    }
}

pub type SharedSource = Arc<dyn Source>;

/// Seconds each fetch attempt took, by source (retries are attempts of their own).
pub const FETCH_DURATION: &str = "windsock_fetch_duration_seconds";

/// `source` with every attempt of `current` and `past` timed into [`FETCH_DURATION`]: here
/// rather than in each source so no source (nor one a test brings) goes unmeasured.
pub fn timed(source: SharedSource) -> SharedSource {
    // Listed at zero from the start, so the dashboard has the series before the first fetch.
    let _ = metrics::histogram!(FETCH_DURATION, "source" => source.name());
    Arc::new(Timed(source))
}

struct Timed(SharedSource);

impl Timed {
    fn record(&self, since: std::time::Instant) {
        metrics::histogram!(FETCH_DURATION, "source" => self.0.name())
            .record(since.elapsed().as_secs_f64());
    }
}

#[async_trait]
impl Source for Timed {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    async fn current(&self, region: &Region, tick: Tick) -> Result<Vec<Observation>, FetchError> {
        let since = std::time::Instant::now();
        let fetched = self.0.current(region, tick).await;
        self.record(since);
        fetched
    }

    fn past_batch(&self) -> Option<usize> {
        self.0.past_batch()
    }

    async fn past(&self, region: &Region, ticks: &[Tick]) -> Result<Vec<Observation>, FetchError> {
        let since = std::time::Instant::now();
        let fetched = self.0.past(region, ticks).await;
        self.record(since);
        fetched
    }
}

/// Why a fetch failed. Messages never hold a URL with a key or the key itself.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FetchError {
    #[error("timed out after {}", humanize(.0))]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Request(String),
    #[error("HTTP {status}: {message}")]
    Api { status: u16, message: String },
    #[error("HTTP 429 rate limited{}: {message}", .retry_after.map(|d| format!(" (retry after {})", humanize(&d))).unwrap_or_default())]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("{0}")]
    Unsupported(String),
}

impl FetchError {
    /// Whether trying again may help: timeouts, connection failures, 5xx and 429.
    pub fn retryable(&self) -> bool {
        match self {
            FetchError::Timeout(_) | FetchError::Request(_) | FetchError::RateLimited { .. } => {
                true
            }
            FetchError::Api { status, .. } => *status >= 500,
            FetchError::Malformed(_) | FetchError::Unsupported(_) => false,
        }
    }

    /// The HTTP status the API answered with, if it answered.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            FetchError::Api { status, .. } => Some(*status),
            FetchError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// A short kind for the error counter.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Timeout(_) => "timeout",
            FetchError::Request(_) => "request",
            FetchError::Api { status, .. } if *status >= 500 => "http_5xx",
            FetchError::Api { .. } => "http_4xx",
            FetchError::RateLimited { .. } => "http_429",
            FetchError::Malformed(_) => "malformed",
            FetchError::Unsupported(_) => "unsupported",
        }
    }
}

fn humanize(d: &Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("collector.openweathermap.api_key: the openweathermap source needs an API key: set OPENWEATHERMAP_API_KEY")]
    MissingApiKey,
    #[error("{key}: `{value}` is not a URL")]
    BadUrl { key: &'static str, value: String },
    #[error("collector.replay.path: {0}")]
    Replay(#[from] replay::ReplayError),
    #[error("http client: {0}")]
    Client(String),
}

/// Builds the configured source. `started` anchors what is relative to the collector's
/// start (fault windows, a replay without an anchor).
pub fn build(
    config: &Config,
    clock: SharedClock,
    started: DateTime<Utc>,
) -> Result<SharedSource, SourceError> {
    let collector = &config.collector;
    Ok(match collector.source {
        SourceKind::Simulated => Arc::new(simulated::Simulated::new(
            collector.simulated.clone(),
            clock,
            started,
        )),
        SourceKind::Replay => Arc::new(replay::Replay::open(
            &collector.replay,
            &config.regions,
            clock,
            started,
        )?),
        SourceKind::Openweathermap => {
            let key = collector
                .openweathermap
                .api_key
                .clone()
                .filter(|k| !k.is_empty())
                .ok_or(SourceError::MissingApiKey)?;
            let http = http::Http::new(collector.timeout)?;
            let base = base_url(
                "collector.openweathermap.base_url",
                &collector.openweathermap.base_url,
            )?;
            Arc::new(openweathermap::OpenWeatherMap::new(http, base, key, clock))
        }
        SourceKind::OpenMeteo => {
            let http = http::Http::new(collector.timeout)?;
            let base = base_url(
                "collector.open_meteo.base_url",
                &collector.open_meteo.base_url,
            )?;
            Arc::new(open_meteo::OpenMeteo::new(http, base, clock))
        }
    })
}

fn base_url(key: &'static str, value: &str) -> Result<String, SourceError> {
    url::Url::parse(value).map_err(|_| SourceError::BadUrl {
        key,
        value: value.to_string(),
    })?;
    Ok(value.trim_end_matches('/').to_string())
}

/// An observation of `region` with the region's identity filled in and every metric unset.
pub(crate) fn blank(
    region: &Region,
    source: &str,
    observed_at: DateTime<Utc>,
    fetched_at: DateTime<Utc>,
) -> Observation {
    Observation {
        region: region.name.clone(),
        lat: region.lat,
        lon: region.lon,
        observed_at,
        fetched_at,
        source: source.to_string(),
        ..Default::default()
    }
}
