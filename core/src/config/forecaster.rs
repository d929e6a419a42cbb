use super::Problems;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForecasterConfig {
    /// When to refit every region (cron with seconds).
    pub schedule: String,
    /// Hours of history each model is fitted on.
    pub history_hours: usize,
    /// Hours ahead each published forecast covers.
    pub horizon_hours: usize,
    /// The largest horizon the API accepts.
    pub max_horizon: usize,
    /// The prediction interval level of published forecasts.
    pub level: f64,
    /// Days of the models' own past forecasts that calibrate intervals and pick the model.
    pub calibration_days: usize,
    /// Regions refitted at once (each refit takes one core).
    pub refit_workers: usize,
    /// Where other services reach the forecast API in distributed mode.
    pub url: Option<String>,
}

impl Default for ForecasterConfig {
    fn default() -> Self {
        Self {
            schedule: "0 0 * * * *".into(),
            history_hours: 28 * 24,
            horizon_hours: 24,
            max_horizon: 168,
            level: 0.95,
            calibration_days: 7,
            refit_workers: 2,
            url: None,
        }
    }
}

impl ForecasterConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        if !(0.0..1.0).contains(&self.level) || self.level <= 0.0 {
            problems.push("forecaster.level", "must be between 0 and 1, such as 0.95");
        }
        if self.horizon_hours == 0 || self.horizon_hours > self.max_horizon {
            problems.push(
                "forecaster.horizon_hours",
                format!("must be 1 to max_horizon ({})", self.max_horizon),
            );
        }
        if self.history_hours < 48 {
            problems.push(
                "forecaster.history_hours",
                "needs at least 48 hours to see a daily season",
            );
        }
        if self.calibration_days == 0 || self.calibration_days > 60 {
            problems.push("forecaster.calibration_days", "must be 1 to 60");
        }
        if self.refit_workers == 0 {
            problems.push("forecaster.refit_workers", "must be at least 1");
        }
        // The full grammar is checked when the scheduler takes the job; this catches the usual
        // slip (a 5-field crontab line or a stray word) with the key named.
        let fields = self.schedule.split_whitespace().count();
        if !(6..=7).contains(&fields) {
            problems.push(
                "forecaster.schedule",
                format!(
                    "`{}` has {fields} fields; expected cron with seconds, such as `0 0 * * * *`",
                    self.schedule
                ),
            );
        }
    }
}
