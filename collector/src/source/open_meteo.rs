//! Open-Meteo's forecast API (no key): `current=` for now, `past_days` with `hourly=` for the
//! past. Errors are `{"error": true, "reason": "..."}` with HTTP 400.

use super::http::{ApiError, Http};
use super::{blank, FetchError, Source};
use crate::schedule::Tick;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use windsock_core::clock::SharedClock;
use windsock_core::config::Region;
use windsock_core::event::Observation;
use windsock_core::secret::redact_url;

pub const NAME: &str = "open-meteo";

/// The variables asked for, in `current=` and in `hourly=`.
const VARIABLES: &str = "temperature_2m,relative_humidity_2m,apparent_temperature,pressure_msl,wind_speed_10m,wind_direction_10m,wind_gusts_10m,cloud_cover,weather_code";

/// Open-Meteo serves at most this many past days.
const MAX_PAST_DAYS: i64 = 92;

pub struct OpenMeteo {
    http: Http,
    base: String,
    clock: SharedClock,
}

impl OpenMeteo {
    pub(crate) fn new(http: Http, base: String, clock: SharedClock) -> Self {
        Self { http, base, clock }
    }

    fn url(&self, region: &Region, extra: &[(&str, String)]) -> url::Url {
        let mut params = vec![
            ("latitude", region.lat.to_string()),
            ("longitude", region.lon.to_string()),
        ];
        params.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
        params.push(("wind_speed_unit", "ms".into()));
        url::Url::parse_with_params(&format!("{}/v1/forecast", self.base), &params)
            .expect("the base URL was validated when the source was built")
    }

    async fn get(&self, url: url::Url) -> Result<Forecast, FetchError> {
        tracing::trace!(url = %redact_url(url.as_str()), "GET");
        self.http.get_json(&url, open_meteo_error).await
    }
}

#[async_trait]
impl Source for OpenMeteo {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn current(&self, region: &Region, _tick: Tick) -> Result<Vec<Observation>, FetchError> {
        let body = self
            .get(self.url(region, &[("current", VARIABLES.into())]))
            .await?;
        let offset = body.utc_offset_seconds;
        let current = body
            .current
            .ok_or_else(|| FetchError::Malformed("no `current` block in the response".into()))?;
        let observed_at = parse_time(&current.time, offset)?;
        let values = Values {
            temperature: current.temperature_2m,
            humidity: current.relative_humidity_2m,
            apparent: current.apparent_temperature,
            pressure: current.pressure_msl,
            wind_speed: current.wind_speed_10m,
            wind_direction: current.wind_direction_10m,
            wind_gusts: current.wind_gusts_10m,
            cloud_cover: current.cloud_cover,
            weather_code: current.weather_code,
        };
        let observation = values
            .into_observation(region, observed_at, self.clock.now())
            .ok_or_else(|| {
                FetchError::Malformed(format!("no temperature_2m at {}", current.time))
            })?;
        Ok(vec![observation])
    }

    fn past_batch(&self) -> Option<usize> {
        // One request per region covers the whole look-back.
        Some(usize::MAX)
    }

    async fn past(&self, region: &Region, ticks: &[Tick]) -> Result<Vec<Observation>, FetchError> {
        let (Some(first), Some(last)) = (ticks.first(), ticks.last()) else {
            return Ok(Vec::new());
        };
        let now = self.clock.now();
        let days = ((now - first.previous).num_hours() / 24 + 1).clamp(1, MAX_PAST_DAYS);
        let url = self.url(
            region,
            &[
                ("hourly", VARIABLES.into()),
                ("past_days", days.to_string()),
                ("forecast_days", "1".into()),
            ],
        );
        let body = self.get(url).await?;
        let offset = body.utc_offset_seconds;
        let hourly = body
            .hourly
            .ok_or_else(|| FetchError::Malformed("no `hourly` block in the response".into()))?;
        let mut observations = Vec::new();
        for (i, time) in hourly.time.iter().enumerate() {
            let at = parse_time(time, offset)?;
            // Hours inside the look-back only: the rest is older, or forecast.
            if at <= first.previous || at > last.at {
                continue;
            }
            let value = |column: &[Option<f64>]| column.get(i).copied().flatten();
            let values = Values {
                temperature: value(&hourly.temperature_2m),
                humidity: value(&hourly.relative_humidity_2m),
                apparent: value(&hourly.apparent_temperature),
                pressure: value(&hourly.pressure_msl),
                wind_speed: value(&hourly.wind_speed_10m),
                wind_direction: value(&hourly.wind_direction_10m),
                wind_gusts: value(&hourly.wind_gusts_10m),
                cloud_cover: value(&hourly.cloud_cover),
                weather_code: value(&hourly.weather_code),
            };
            observations.extend(values.into_observation(region, at, now));
        }
        Ok(observations)
    }
}

/// `{"error": true, "reason": "..."}`.
pub(crate) fn open_meteo_error(body: &[u8]) -> Option<ApiError> {
    #[derive(Deserialize)]
    struct Body {
        error: bool,
        #[serde(default)]
        reason: String,
    }
    let body: Body = serde_json::from_slice(body).ok()?;
    body.error.then_some(ApiError {
        status: None,
        message: body.reason,
    })
}

#[derive(Deserialize)]
struct Forecast {
    #[serde(default)]
    utc_offset_seconds: i64,
    current: Option<Current>,
    hourly: Option<Hourly>,
}

#[derive(Deserialize)]
struct Current {
    time: String,
    temperature_2m: Option<f64>,
    relative_humidity_2m: Option<f64>,
    apparent_temperature: Option<f64>,
    pressure_msl: Option<f64>,
    wind_speed_10m: Option<f64>,
    wind_direction_10m: Option<f64>,
    wind_gusts_10m: Option<f64>,
    cloud_cover: Option<f64>,
    weather_code: Option<f64>,
}

/// Columns, one value per hour; Open-Meteo writes `null` where it has no value.
#[derive(Deserialize)]
struct Hourly {
    time: Vec<String>,
    #[serde(default)]
    temperature_2m: Vec<Option<f64>>,
    #[serde(default)]
    relative_humidity_2m: Vec<Option<f64>>,
    #[serde(default)]
    apparent_temperature: Vec<Option<f64>>,
    #[serde(default)]
    pressure_msl: Vec<Option<f64>>,
    #[serde(default)]
    wind_speed_10m: Vec<Option<f64>>,
    #[serde(default)]
    wind_direction_10m: Vec<Option<f64>>,
    #[serde(default)]
    wind_gusts_10m: Vec<Option<f64>>,
    #[serde(default)]
    cloud_cover: Vec<Option<f64>>,
    #[serde(default)]
    weather_code: Vec<Option<f64>>,
}

/// One instant's values, from `current` or one hour of `hourly`.
struct Values {
    temperature: Option<f64>,
    humidity: Option<f64>,
    apparent: Option<f64>,
    pressure: Option<f64>,
    wind_speed: Option<f64>,
    wind_direction: Option<f64>,
    wind_gusts: Option<f64>,
    cloud_cover: Option<f64>,
    weather_code: Option<f64>,
}

impl Values {
    /// The observation, or `None` without a temperature.
    fn into_observation(
        self,
        region: &Region,
        observed_at: DateTime<Utc>,
        fetched_at: DateTime<Utc>,
    ) -> Option<Observation> {
        let weather = self.weather_code.and_then(|c| wmo_weather(c as u16));
        Some(Observation {
            temperature_c: self.temperature?,
            feels_like_c: self.apparent,
            humidity_pct: self.humidity,
            pressure_hpa: self.pressure,
            dew_point_c: None,
            wind_speed_ms: self.wind_speed,
            wind_deg: self.wind_direction,
            wind_gust_ms: self.wind_gusts,
            clouds_pct: self.cloud_cover,
            condition: weather.map(|(c, _)| c.to_string()),
            description: weather.map(|(_, d)| d.to_string()),
            ..blank(region, NAME, observed_at, fetched_at)
        })
    }
}

/// Open-Meteo's times are local to `utc_offset_seconds` (0 unless a timezone is asked for),
/// as `2024-05-21T12:15`, without seconds or zone.
fn parse_time(text: &str, utc_offset_seconds: i64) -> Result<DateTime<Utc>, FetchError> {
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| {
            FetchError::Malformed(format!(
                "`{text}` is not a time (expected 2024-05-21T12:15)"
            ))
        })?;
    Ok(naive.and_utc() - chrono::Duration::seconds(utc_offset_seconds))
}

/// A WMO weather interpretation code (as Open-Meteo documents them) as a condition in
/// OpenWeatherMap's vocabulary, so conditions from either source compare, and a description.
pub fn wmo_weather(code: u16) -> Option<(&'static str, &'static str)> {
    Some(match code {
        0 => ("Clear", "clear sky"),
        1 => ("Clear", "mainly clear"),
        2 => ("Clouds", "partly cloudy"),
        3 => ("Clouds", "overcast"),
        45 => ("Fog", "fog"),
        48 => ("Fog", "depositing rime fog"),
        51 => ("Drizzle", "light drizzle"),
        53 => ("Drizzle", "moderate drizzle"),
        55 => ("Drizzle", "dense drizzle"),
        56 => ("Drizzle", "light freezing drizzle"),
        57 => ("Drizzle", "dense freezing drizzle"),
        61 => ("Rain", "slight rain"),
        63 => ("Rain", "moderate rain"),
        65 => ("Rain", "heavy rain"),
        66 => ("Rain", "light freezing rain"),
        67 => ("Rain", "heavy freezing rain"),
        71 => ("Snow", "slight snow fall"),
        73 => ("Snow", "moderate snow fall"),
        75 => ("Snow", "heavy snow fall"),
        77 => ("Snow", "snow grains"),
        80 => ("Rain", "slight rain showers"),
        81 => ("Rain", "moderate rain showers"),
        82 => ("Rain", "violent rain showers"),
        85 => ("Snow", "slight snow showers"),
        86 => ("Snow", "heavy snow showers"),
        95 => ("Thunderstorm", "thunderstorm"),
        96 => ("Thunderstorm", "thunderstorm with slight hail"),
        99 => ("Thunderstorm", "thunderstorm with heavy hail"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_are_local_to_the_offset() {
        let t = parse_time("2024-05-21T12:15", 0).unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2024, 5, 21, 12, 15, 0).unwrap());
        let t = parse_time("2024-05-21T12:15", 3600).unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2024, 5, 21, 11, 15, 0).unwrap());
        assert!(matches!(
            parse_time("yesterday", 0),
            Err(FetchError::Malformed(_))
        ));
    }

    #[test]
    fn weather_codes_map_to_conditions() {
        assert_eq!(wmo_weather(0), Some(("Clear", "clear sky")));
        assert_eq!(wmo_weather(63).map(|w| w.0), Some("Rain"));
        assert_eq!(wmo_weather(95).map(|w| w.0), Some("Thunderstorm"));
        assert_eq!(wmo_weather(42), None);
    }

    #[test]
    fn error_bodies_give_their_reason() {
        let err = open_meteo_error(
            r#"{"error":true,"reason":"Latitude must be in range of -90 to 90°. Given: 91.0."}"#
                .as_bytes(),
        )
        .unwrap();
        assert!(err.message.starts_with("Latitude must be"));
        assert!(open_meteo_error(br#"{"latitude": 14.7}"#).is_none());
    }
}
