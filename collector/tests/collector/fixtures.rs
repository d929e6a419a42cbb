//! Response bodies in the APIs' real, documented shapes (every field they send, not only
//! the ones windsock reads), parametrised by the request's coordinates.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{json, Value};

/// One Call 3.0 `GET /data/3.0/onecall?...&units=metric&exclude=minutely,hourly,daily,alerts`.
pub fn one_call(lat: f64, lon: f64, dt: i64) -> Value {
    json!({
        "lat": lat,
        "lon": lon,
        "timezone": "Africa/Dakar",
        "timezone_offset": 0,
        "current": {
            "dt": dt,
            "sunrise": dt - 20_000,
            "sunset": dt + 20_000,
            "temp": 29.46,
            "feels_like": 31.2,
            "pressure": 1011,
            "humidity": 58,
            "dew_point": 20.31,
            "uvi": 7.42,
            "clouds": 20,
            "visibility": 10000,
            "wind_speed": 5.66,
            "wind_deg": 340,
            "wind_gust": 7.2,
            "weather": [
                {"id": 801, "main": "Clouds", "description": "few clouds", "icon": "02d"}
            ]
        }
    })
}

/// One Call 3.0 `GET /data/3.0/onecall/timemachine?...&dt=...&units=metric`.
pub fn time_machine(lat: f64, lon: f64, dt: i64) -> Value {
    json!({
        "lat": lat,
        "lon": lon,
        "timezone": "Africa/Dakar",
        "timezone_offset": 0,
        "data": [{
            "dt": dt,
            "sunrise": dt - 20_000,
            "sunset": dt + 20_000,
            "temp": 26.1,
            "feels_like": 26.1,
            "pressure": 1012,
            "humidity": 66,
            "dew_point": 19.2,
            "uvi": 0.0,
            "clouds": 0,
            "visibility": 10000,
            "wind_speed": 4.1,
            "wind_deg": 350,
            "weather": [{"id": 800, "main": "Clear", "description": "clear sky", "icon": "01n"}]
        }]
    })
}

/// Current Weather 2.5 `GET /data/2.5/weather?...&units=metric`.
pub fn current_weather(lat: f64, lon: f64, dt: i64) -> Value {
    json!({
        "coord": {"lon": lon, "lat": lat},
        "weather": [{"id": 500, "main": "Rain", "description": "light rain", "icon": "10d"}],
        "base": "stations",
        "main": {
            "temp": 27.8,
            "feels_like": 30.4,
            "temp_min": 27.8,
            "temp_max": 27.8,
            "pressure": 1010,
            "humidity": 74,
            "sea_level": 1010,
            "grnd_level": 1007
        },
        "visibility": 9000,
        "wind": {"speed": 3.6, "deg": 220, "gust": 5.1},
        "rain": {"1h": 0.42},
        "clouds": {"all": 75},
        "dt": dt,
        "sys": {"type": 1, "id": 2428, "country": "SN", "sunrise": dt - 20_000, "sunset": dt + 20_000},
        "timezone": 0,
        "id": 2253354,
        "name": "Dakar",
        "cod": 200
    })
}

pub fn owm_error(cod: Value, message: &str) -> Value {
    json!({"cod": cod, "message": message})
}

pub const ONE_CALL_NOT_SUBSCRIBED: &str = "Please note that using One Call 3.0 requires a separate subscription to the One Call by Call plan. Learn more here https://openweathermap.org/price. If you have a valid subscription to the One Call by Call plan, but still receive this error, then please see https://openweathermap.org/faq#error401 for more info.";
pub const INVALID_KEY: &str =
    "Invalid API key. Please see https://openweathermap.org/faq#error401 for more info.";

fn current_units() -> Value {
    json!({
        "time": "iso8601",
        "interval": "seconds",
        "temperature_2m": "°C",
        "relative_humidity_2m": "%",
        "apparent_temperature": "°C",
        "pressure_msl": "hPa",
        "wind_speed_10m": "m/s",
        "wind_direction_10m": "°",
        "wind_gusts_10m": "m/s",
        "cloud_cover": "%",
        "weather_code": "wmo code"
    })
}

/// Open-Meteo `GET /v1/forecast?...&current=...&wind_speed_unit=ms`, observed at `time`.
pub fn open_meteo_current(lat: f64, lon: f64, time: &str) -> Value {
    json!({
        "latitude": lat,
        "longitude": lon,
        "generationtime_ms": 0.0641345977783203,
        "utc_offset_seconds": 0,
        "timezone": "GMT",
        "timezone_abbreviation": "GMT",
        "elevation": 22.0,
        "current_units": current_units(),
        "current": {
            "time": time,
            "interval": 900,
            "temperature_2m": 31.4,
            "relative_humidity_2m": 41,
            "apparent_temperature": 32.9,
            "pressure_msl": 1009.8,
            "wind_speed_10m": 4.3,
            "wind_direction_10m": 315,
            "wind_gusts_10m": 8.9,
            "cloud_cover": 12,
            "weather_code": 61
        }
    })
}

/// Open-Meteo `GET /v1/forecast?...&hourly=...&past_days=N&forecast_days=1`: hours from
/// midnight `past_days` ago to the end of today (UTC), temperature `20 + hour index / 10`,
/// with a `null` temperature at the hour `null_at`, as Open-Meteo writes missing values.
pub fn open_meteo_hourly(
    lat: f64,
    lon: f64,
    now: DateTime<Utc>,
    past_days: i64,
    null_at: Option<DateTime<Utc>>,
) -> Value {
    let start = now.duration_trunc(Duration::days(1)).unwrap() - Duration::days(past_days);
    let hours: Vec<DateTime<Utc>> = (0..(past_days + 1) * 24)
        .map(|h| start + Duration::hours(h))
        .collect();
    let column = |f: &dyn Fn(usize) -> Value| -> Vec<Value> { (0..hours.len()).map(f).collect() };
    let temperature = column(&|i| {
        if Some(hours[i]) == null_at {
            Value::Null
        } else {
            json!(20.0 + i as f64 / 10.0)
        }
    });
    let mut units = current_units();
    units.as_object_mut().unwrap().remove("interval");
    json!({
        "latitude": lat,
        "longitude": lon,
        "generationtime_ms": 0.11,
        "utc_offset_seconds": 0,
        "timezone": "GMT",
        "timezone_abbreviation": "GMT",
        "elevation": 22.0,
        "hourly_units": units,
        "hourly": {
            "time": hours.iter().map(|h| h.format("%Y-%m-%dT%H:%M").to_string()).collect::<Vec<_>>(),
            "temperature_2m": temperature,
            "relative_humidity_2m": column(&|_| json!(55)),
            "apparent_temperature": column(&|_| json!(27.5)),
            "pressure_msl": column(&|_| json!(1011.2)),
            "wind_speed_10m": column(&|_| json!(3.1)),
            "wind_direction_10m": column(&|_| json!(10)),
            "wind_gusts_10m": column(&|_| json!(6.0)),
            "cloud_cover": column(&|_| json!(0)),
            "weather_code": column(&|_| json!(0)),
        }
    })
}

pub fn open_meteo_error(reason: &str) -> Value {
    json!({"error": true, "reason": reason})
}
