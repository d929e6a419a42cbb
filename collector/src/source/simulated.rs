//! Simulated weather: deterministic per (seed, region, instant), realistic for Senegal, with
//! faults injected from config. It needs no network, so the pipeline (and the alerting demo)
//! works offline, and it serves any past instant, so backfill works.
//!
//! The model, in words: a seasonal mean that is hotter and swings more inland and to the
//! north (hot season in May inland, warmest in the autumn on the coast), a diurnal cycle on
//! local solar time (from the longitude) that is wider inland and damped in the rainy season
//! (July to October), and smooth noise at 6-hour and 1-hour scales, so consecutive readings
//! are correlated the way real ones are. Humidity, dew point, wind, clouds and UV follow.

use super::{blank, FetchError, Source};
use crate::schedule::Tick;
use async_trait::async_trait;
use chrono::{DateTime, Datelike, Timelike, Utc};
use std::f64::consts::PI;
use windsock_core::clock::SharedClock;
use windsock_core::config::{FaultConfig, Region, SimulatedConfig};
use windsock_core::event::Observation;

pub const NAME: &str = "simulated";

pub struct Simulated {
    seed: u64,
    faults: Vec<FaultConfig>,
    clock: SharedClock,
    /// Fault windows are relative to this instant.
    started: DateTime<Utc>,
}

impl Simulated {
    pub fn new(config: SimulatedConfig, clock: SharedClock, started: DateTime<Utc>) -> Self {
        Self {
            seed: config.seed,
            faults: config.faults,
            clock,
            started,
        }
    }

    /// What `region` reports at `at`, faults applied: `None` while it is silent.
    pub fn observe(&self, region: &Region, at: DateTime<Utc>) -> Option<Observation> {
        let mut observation = weather(self.seed, region, at, self.clock.now());
        for fault in &self.faults {
            match fault {
                FaultConfig::Silent {
                    region: name,
                    after,
                    duration,
                } => {
                    if *name == region.name && self.within(at, *after, *duration) {
                        return None;
                    }
                }
                FaultConfig::OutOfRange {
                    region: name,
                    temperature_c,
                    after,
                    duration,
                } => {
                    if *name == region.name && self.within(at, *after, *duration) {
                        observation.temperature_c = *temperature_c;
                    }
                }
            }
        }
        Some(observation)
    }

    fn within(
        &self,
        at: DateTime<Utc>,
        after: std::time::Duration,
        duration: std::time::Duration,
    ) -> bool {
        let (Ok(after), Ok(duration)) = (
            chrono::Duration::from_std(after),
            chrono::Duration::from_std(duration),
        ) else {
            return false;
        };
        let from = self.started + after;
        at >= from && at < from + duration
    }
}

#[async_trait]
impl Source for Simulated {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn current(&self, region: &Region, tick: Tick) -> Result<Vec<Observation>, FetchError> {
        Ok(self.observe(region, tick.at).into_iter().collect())
    }

    fn past_batch(&self) -> Option<usize> {
        Some(usize::MAX)
    }

    async fn past(&self, region: &Region, ticks: &[Tick]) -> Result<Vec<Observation>, FetchError> {
        Ok(ticks
            .iter()
            .filter_map(|t| self.observe(region, t.at))
            .collect())
    }
}

/// The weather at `region` at `at`, before faults. A pure function of its inputs (bar
/// `fetched_at`), so the same instant always gives the same observation.
pub fn weather(
    seed: u64,
    region: &Region,
    at: DateTime<Utc>,
    fetched_at: DateTime<Utc>,
) -> Observation {
    let noise = Noise::new(seed, &region.name);
    let hours = at.timestamp() as f64 / 3600.0;
    let utc_hour = at.hour() as f64 + at.minute() as f64 / 60.0 + at.second() as f64 / 3600.0;
    let solar_hour = (utc_hour + region.lon / 15.0).rem_euclid(24.0);
    let day = at.ordinal0() as f64 + utc_hour / 24.0;

    // 0 on the Atlantic coast (Dakar), 1 in the far east (Kédougou).
    let inland = ((region.lon + 17.4) / 5.0).clamp(0.0, 1.0);
    // 0 in Casamance, 1 on the Senegal river.
    let north = ((region.lat - 12.3) / 4.0).clamp(0.0, 1.0);
    let rainy = (-((day - 235.0) / 40.0).powi(2)).exp() * (1.0 - 0.4 * north);

    let hottest_day = 270.0 - 140.0 * inland;
    let seasonal = (2.0 + inland + 3.0 * inland * north) * cycle(day - hottest_day, 365.0);
    let diurnal_amplitude = (3.0 + 6.0 * inland) * (1.0 - 0.4 * rainy);
    let diurnal = cycle(solar_hour - 15.0, 24.0);
    let temperature = 25.0 + 4.0 * inland + seasonal + diurnal_amplitude * diurnal
        // Rain cools the interior; the coast stays warm and humid.
        - 2.0 * rainy * inland
        + 1.5 * noise.smooth(0, hours / 6.0)
        + 0.4 * noise.smooth(1, hours);
    let temperature = temperature.clamp(14.0, 47.0);

    let humidity = (75.0 - 40.0 * inland + 25.0 * rainy - 15.0 * diurnal
        + 5.0 * noise.smooth(2, hours / 4.0))
    .clamp(8.0, 100.0);
    let pressure = 1011.0 + 2.5 * cycle(day - 15.0, 365.0) - 1.5 * inland
        + 1.2 * cycle(solar_hour - 10.0, 12.0)
        + noise.smooth(3, hours / 12.0);

    let afternoon = (PI * (solar_hour - 9.0) / 12.0).sin().max(0.0);
    let wind_speed =
        (2.5 + 2.5 * (1.0 - inland) + afternoon + 1.5 * noise.smooth(4, hours / 6.0)).max(0.3);
    let gust = wind_speed * 1.4 + (1.5 * noise.smooth(5, hours)).abs();
    // Trade winds and harmattan from the north-east in the dry season (north-west on the
    // coast), the monsoon from the south-west in the rainy season.
    let dry_direction = 345.0 + 60.0 * inland;
    let direction =
        if rainy > 0.5 { 225.0 } else { dry_direction } + 40.0 * noise.smooth(6, hours / 6.0);

    let clouds = (10.0 + 70.0 * rainy + 25.0 * noise.smooth(7, hours / 3.0)).clamp(0.0, 100.0);
    let dust = (1.0 - rainy) * inland * noise.smooth(8, hours / 12.0).max(0.0);
    let visibility = (10_000.0 - 8_000.0 * dust).round();
    let sun = (PI * (solar_hour - 6.0) / 12.0).sin().max(0.0);
    let uvi = 11.5 * sun.powf(1.5) * (1.0 - 0.6 * clouds / 100.0);
    let shower = rainy > 0.5 && noise.smooth(9, hours / 2.0) > 0.3;
    let (condition, description) = if shower {
        (
            "Rain",
            if clouds > 80.0 {
                "moderate rain"
            } else {
                "light rain"
            },
        )
    } else if visibility < 5_000.0 {
        ("Haze", "haze")
    } else if clouds < 20.0 {
        ("Clear", "clear sky")
    } else if clouds < 60.0 {
        ("Clouds", "scattered clouds")
    } else {
        ("Clouds", "overcast clouds")
    };

    Observation {
        temperature_c: round1(temperature),
        feels_like_c: Some(round1(apparent_temperature(
            temperature,
            humidity,
            wind_speed,
        ))),
        humidity_pct: Some(humidity.round()),
        pressure_hpa: Some(round1(pressure)),
        dew_point_c: Some(round1(dew_point(temperature, humidity))),
        wind_speed_ms: Some(round1(wind_speed)),
        wind_deg: Some(direction.rem_euclid(360.0).round()),
        wind_gust_ms: Some(round1(gust)),
        clouds_pct: Some(clouds.round()),
        visibility_m: Some(visibility),
        uvi: Some(round1(uvi)),
        condition: Some(condition.into()),
        description: Some(description.into()),
        ..blank(region, NAME, at, fetched_at)
    }
}

/// A cosine of period `period`, 1 at 0.
fn cycle(x: f64, period: f64) -> f64 {
    (2.0 * PI * x / period).cos()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Magnus formula (Alduchov and Eskridge constants).
fn dew_point(temperature: f64, humidity: f64) -> f64 {
    let gamma = (humidity / 100.0).ln() + 17.62 * temperature / (243.12 + temperature);
    243.12 * gamma / (17.62 - gamma)
}

/// Steadman's apparent temperature (the Australian Bureau of Meteorology's form).
fn apparent_temperature(temperature: f64, humidity: f64, wind_speed: f64) -> f64 {
    let vapour_pressure =
        humidity / 100.0 * 6.105 * (17.27 * temperature / (237.7 + temperature)).exp();
    temperature + 0.33 * vapour_pressure - 0.70 * wind_speed - 4.0
}

/// Smooth deterministic noise in [-1, 1]: values hashed at integer points, eased between.
struct Noise {
    key: u64,
}

impl Noise {
    fn new(seed: u64, region: &str) -> Self {
        // FNV-1a: stable across builds, unlike std's hasher.
        let mut hash: u64 = 0xcbf29ce484222325;
        for byte in region.as_bytes() {
            hash ^= *byte as u64;
            hash = hash.wrapping_mul(0x100000001b3);
        }
        Self {
            key: splitmix(seed ^ hash),
        }
    }

    fn lattice(&self, channel: u64, i: i64) -> f64 {
        let h = splitmix(
            self.key
                ^ splitmix(channel.wrapping_add(1))
                ^ (i as u64).wrapping_mul(0x9e3779b97f4a7c15),
        );
        (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    fn smooth(&self, channel: u64, x: f64) -> f64 {
        let i = x.floor();
        let f = x - i;
        let eased = f * f * (3.0 - 2.0 * f);
        let (a, b) = (
            self.lattice(channel, i as i64),
            self.lattice(channel, i as i64 + 1),
        );
        a + (b - a) * eased
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use windsock_core::config::senegal_regions;

    fn region(name: &str) -> Region {
        senegal_regions()
            .into_iter()
            .find(|r| r.name == name)
            .unwrap()
    }

    fn at(month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, month, day, hour, minute, 0)
            .unwrap()
    }

    #[test]
    fn noise_is_smooth_and_bounded() {
        let noise = Noise::new(42, "Dakar");
        let mut previous = noise.smooth(0, 0.0);
        for step in 1..2000 {
            let value = noise.smooth(0, step as f64 * 0.01);
            assert!((-1.0..=1.0).contains(&value));
            assert!((value - previous).abs() < 0.05, "jump at step {step}");
            previous = value;
        }
    }

    #[test]
    fn every_region_stays_in_senegals_range_all_year() {
        for region in senegal_regions() {
            let mut t = at(1, 1, 0, 0);
            while t < at(12, 31, 0, 0) {
                let o = weather(7, &region, t, t);
                assert!(
                    (14.0..=47.0).contains(&o.temperature_c),
                    "{} {t}: {}",
                    region.name,
                    o.temperature_c
                );
                let p = o.pressure_hpa.unwrap();
                assert!(
                    (1000.0..=1020.0).contains(&p),
                    "{} {t}: pressure {p}",
                    region.name
                );
                let h = o.humidity_pct.unwrap();
                assert!((8.0..=100.0).contains(&h));
                assert!(o.dew_point_c.unwrap() <= o.temperature_c + 0.1);
                t += chrono::Duration::hours(5);
            }
        }
    }

    #[test]
    fn inland_is_hotter_and_swings_more_than_the_coast() {
        let day_mean = |name: &str| {
            let r = region(name);
            (0..24)
                .map(|h| weather(1, &r, at(5, 10, h, 0), at(5, 10, h, 0)).temperature_c)
                .sum::<f64>()
                / 24.0
        };
        assert!(day_mean("Matam") > day_mean("Dakar") + 3.0);
    }
}
