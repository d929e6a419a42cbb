use super::Problems;
use serde::{Deserialize, Serialize};

/// A place whose weather is watched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub name: String,
    pub lat: f64,
    pub lon: f64,
}

impl Region {
    pub fn new(name: &str, lat: f64, lon: f64) -> Self {
        Self {
            name: name.into(),
            lat,
            lon,
        }
    }
}

/// The 14 regions of Senegal, at their capitals: the set the system this replaces watched
/// (it polled 13; Sédhiou, created in 2008, completes the set).
pub fn senegal_regions() -> Vec<Region> {
    [
        ("Dakar", 14.6928, -17.4467),
        ("Diourbel", 14.6550, -16.2314),
        ("Fatick", 14.3390, -16.4111),
        ("Kaffrine", 14.1059, -15.5508),
        ("Kaolack", 14.1520, -16.0726),
        ("Kédougou", 12.5605, -12.1747),
        ("Kolda", 12.8939, -14.9413),
        ("Louga", 15.6144, -16.2286),
        ("Matam", 15.6559, -13.2554),
        ("Saint-Louis", 16.0179, -16.4896),
        ("Sédhiou", 12.7081, -15.5569),
        ("Tambacounda", 13.7707, -13.6673),
        ("Thiès", 14.7910, -16.9359),
        ("Ziguinchor", 12.5681, -16.2719),
    ]
    .into_iter()
    .map(|(name, lat, lon)| Region::new(name, lat, lon))
    .collect()
}

pub(super) fn validate_regions(regions: &[Region], problems: &mut Problems) {
    let mut seen = std::collections::HashSet::new();
    for (i, region) in regions.iter().enumerate() {
        let key = |field: &str| format!("regions[{i}].{field}");
        if region.name.trim().is_empty() {
            problems.push(key("name"), "must not be empty");
        } else if !seen.insert(region.name.as_str()) {
            problems.push(
                key("name"),
                format!("`{}` is configured twice", region.name),
            );
        }
        if !(-90.0..=90.0).contains(&region.lat) {
            problems.push(
                key("lat"),
                format!("{} is not a latitude (-90 to 90)", region.lat),
            );
        }
        if !(-180.0..=180.0).contains(&region.lon) {
            problems.push(
                key("lon"),
                format!("{} is not a longitude (-180 to 180)", region.lon),
            );
        }
    }
}
