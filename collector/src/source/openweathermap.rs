//! OpenWeatherMap: One Call 3.0 (`/data/3.0/onecall`, `/onecall/timemachine` for the past),
//! falling back to Current Weather 2.5 (`/data/2.5/weather`) for keys without a One Call
//! subscription, which OpenWeatherMap answers with 401.

use super::http::{ApiError, Http};
use super::{blank, FetchError, Source};
use crate::schedule::Tick;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::sync::atomic::{AtomicBool, Ordering};
use windsock_core::clock::SharedClock;
use windsock_core::config::Region;
use windsock_core::event::Observation;
use windsock_core::secret::{redact_url, Secret};

pub const NAME: &str = "openweathermap";

pub struct OpenWeatherMap {
    http: Http,
    base: String,
    key: Secret,
    clock: SharedClock,
    /// Set once One Call answered 401: later rounds go straight to Current Weather 2.5.
    one_call_refused: AtomicBool,
}

impl OpenWeatherMap {
    pub(crate) fn new(http: Http, base: String, key: Secret, clock: SharedClock) -> Self {
        Self {
            http,
            base,
            key,
            clock,
            one_call_refused: AtomicBool::new(false),
        }
    }

    /// Whether this key turned out to have no One Call subscription.
    pub fn uses_fallback(&self) -> bool {
        self.one_call_refused.load(Ordering::Relaxed)
    }

    fn url(&self, path: &str, region: &Region, extra: &[(&str, String)]) -> url::Url {
        let mut params = vec![
            ("lat", region.lat.to_string()),
            ("lon", region.lon.to_string()),
        ];
        params.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
        params.push(("appid", self.key.expose().to_string()));
        params.push(("units", "metric".to_string()));
        url::Url::parse_with_params(&format!("{}{path}", self.base), &params)
            .expect("the base URL was validated when the source was built")
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: url::Url) -> Result<T, FetchError> {
        tracing::trace!(url = %redact_url(url.as_str()), "GET");
        self.http
            .get_json(&url, owm_error)
            .await
            .map_err(|err| self.scrub(err))
    }

    /// Belt and braces: an API that echoes the key back in a message does not get it logged.
    fn scrub(&self, err: FetchError) -> FetchError {
        let key = self.key.expose();
        let clean = |m: String| {
            if key.is_empty() {
                m
            } else {
                m.replace(key, "[redacted]")
            }
        };
        match err {
            FetchError::Api { status, message } => FetchError::Api {
                status,
                message: clean(message),
            },
            FetchError::RateLimited {
                retry_after,
                message,
            } => FetchError::RateLimited {
                retry_after,
                message: clean(message),
            },
            FetchError::Malformed(m) => FetchError::Malformed(clean(m)),
            FetchError::Request(m) => FetchError::Request(clean(m)),
            other => other,
        }
    }

    async fn one_call(&self, region: &Region) -> Result<Observation, FetchError> {
        let url = self.url(
            "/data/3.0/onecall",
            region,
            &[("exclude", "minutely,hourly,daily,alerts".into())],
        );
        let body: OneCall = self.get(url).await?;
        Ok(body.current.into_observation(region, self.clock.now()))
    }

    async fn current_weather(&self, region: &Region) -> Result<Observation, FetchError> {
        let body: CurrentWeather = self.get(self.url("/data/2.5/weather", region, &[])).await?;
        Ok(body.into_observation(region, self.clock.now()))
    }

    async fn time_machine(
        &self,
        region: &Region,
        at: DateTime<Utc>,
    ) -> Result<Vec<Observation>, FetchError> {
        let url = self.url(
            "/data/3.0/onecall/timemachine",
            region,
            &[("dt", at.timestamp().to_string())],
        );
        let body: TimeMachine = self.get(url).await?;
        let fetched_at = self.clock.now();
        Ok(body
            .data
            .into_iter()
            .map(|p| p.into_observation(region, fetched_at))
            .collect())
    }

    fn refused(&self, err: &FetchError) -> bool {
        matches!(err, FetchError::Api { status: 401, .. })
    }
}

#[async_trait]
impl Source for OpenWeatherMap {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn current(&self, region: &Region, _tick: Tick) -> Result<Vec<Observation>, FetchError> {
        if !self.uses_fallback() {
            match self.one_call(region).await {
                Err(err) if self.refused(&err) => {
                    tracing::warn!(
                        error = %err,
                        "One Call 3.0 refused this API key (no One Call subscription): using Current Weather 2.5 from now on"
                    );
                    self.one_call_refused.store(true, Ordering::Relaxed);
                }
                other => return other.map(|o| vec![o]),
            }
        }
        self.current_weather(region).await.map(|o| vec![o])
    }

    fn past_batch(&self) -> Option<usize> {
        Some(1)
    }

    async fn past(&self, region: &Region, ticks: &[Tick]) -> Result<Vec<Observation>, FetchError> {
        let no_history = || {
            FetchError::Unsupported(
                "this OpenWeatherMap key has no One Call 3.0 subscription, which history (timemachine) needs".into(),
            )
        };
        if self.uses_fallback() {
            return Err(no_history());
        }
        let mut observations = Vec::new();
        for tick in ticks {
            match self.time_machine(region, tick.at).await {
                Err(err) if self.refused(&err) => {
                    self.one_call_refused.store(true, Ordering::Relaxed);
                    return Err(no_history());
                }
                result => observations.extend(result?),
            }
        }
        Ok(observations)
    }
}

/// `{"cod": 401, "message": "..."}`; `cod` is a number or a string (`"404"`).
pub(crate) fn owm_error(body: &[u8]) -> Option<ApiError> {
    #[derive(Deserialize)]
    struct Body {
        cod: Cod,
        #[serde(default)]
        message: String,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Cod {
        Number(u16),
        Text(String),
    }
    let body: Body = serde_json::from_slice(body).ok()?;
    let status = match body.cod {
        Cod::Number(n) => Some(n),
        Cod::Text(s) => s.trim().parse().ok(),
    };
    Some(ApiError {
        status,
        message: if body.message.is_empty() {
            format!("cod {}", status.map(|s| s.to_string()).unwrap_or_default())
        } else {
            body.message
        },
    })
}

#[derive(Deserialize)]
struct OneCall {
    current: OneCallPoint,
}

#[derive(Deserialize)]
struct TimeMachine {
    data: Vec<OneCallPoint>,
}

/// One point of One Call (`current`, or an item of timemachine's `data`), metric units.
#[derive(Deserialize)]
struct OneCallPoint {
    dt: i64,
    temp: f64,
    feels_like: Option<f64>,
    pressure: Option<f64>,
    humidity: Option<f64>,
    dew_point: Option<f64>,
    uvi: Option<f64>,
    clouds: Option<f64>,
    visibility: Option<f64>,
    wind_speed: Option<f64>,
    wind_deg: Option<f64>,
    wind_gust: Option<f64>,
    #[serde(default)]
    weather: Vec<Condition>,
}

#[derive(Deserialize)]
struct Condition {
    main: String,
    description: String,
}

impl OneCallPoint {
    fn into_observation(self, region: &Region, fetched_at: DateTime<Utc>) -> Observation {
        let condition = self.weather.into_iter().next();
        Observation {
            temperature_c: self.temp,
            feels_like_c: self.feels_like,
            humidity_pct: self.humidity,
            pressure_hpa: self.pressure,
            dew_point_c: self.dew_point,
            wind_speed_ms: self.wind_speed,
            wind_deg: self.wind_deg,
            wind_gust_ms: self.wind_gust,
            clouds_pct: self.clouds,
            visibility_m: self.visibility,
            uvi: self.uvi,
            condition: condition.as_ref().map(|c| c.main.clone()),
            description: condition.map(|c| c.description),
            ..blank(region, NAME, from_unix(self.dt, fetched_at), fetched_at)
        }
    }
}

/// Current Weather 2.5 (`/data/2.5/weather`), metric units.
#[derive(Deserialize)]
struct CurrentWeather {
    dt: i64,
    main: Main,
    visibility: Option<f64>,
    wind: Option<Wind>,
    clouds: Option<Clouds>,
    #[serde(default)]
    weather: Vec<Condition>,
}

#[derive(Deserialize)]
struct Main {
    temp: f64,
    feels_like: Option<f64>,
    pressure: Option<f64>,
    humidity: Option<f64>,
}

#[derive(Deserialize)]
struct Wind {
    speed: Option<f64>,
    deg: Option<f64>,
    gust: Option<f64>,
}

#[derive(Deserialize)]
struct Clouds {
    all: Option<f64>,
}

impl CurrentWeather {
    fn into_observation(self, region: &Region, fetched_at: DateTime<Utc>) -> Observation {
        let condition = self.weather.into_iter().next();
        let wind = self.wind.unwrap_or(Wind {
            speed: None,
            deg: None,
            gust: None,
        });
        Observation {
            temperature_c: self.main.temp,
            feels_like_c: self.main.feels_like,
            humidity_pct: self.main.humidity,
            pressure_hpa: self.main.pressure,
            wind_speed_ms: wind.speed,
            wind_deg: wind.deg,
            wind_gust_ms: wind.gust,
            clouds_pct: self.clouds.and_then(|c| c.all),
            visibility_m: self.visibility,
            condition: condition.as_ref().map(|c| c.main.clone()),
            description: condition.map(|c| c.description),
            ..blank(region, NAME, from_unix(self.dt, fetched_at), fetched_at)
        }
    }
}

fn from_unix(seconds: i64, fallback: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_with_numeric_and_string_cod() {
        let err = owm_error(br#"{"cod":401, "message": "Invalid API key. Please see https://openweathermap.org/faq#error401 for more info."}"#).unwrap();
        assert_eq!(err.status, Some(401));
        assert!(err.message.starts_with("Invalid API key"));
        let err = owm_error(br#"{"cod":"404","message":"city not found"}"#).unwrap();
        assert_eq!(err.status, Some(404));
        assert_eq!(err.message, "city not found");
        assert!(owm_error(b"<html>bad gateway</html>").is_none());
    }
}
