//! The collector's interval between rounds, read from its cron schedule, so `late_after`
//! follows the collector without being configured twice.

use chrono::Utc;
use croner::Cron;
use std::time::Duration;

/// Used when the schedule cannot be read.
pub const FALLBACK_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// The longest gap between the schedule's next few runs (an irregular schedule's lateness is
/// judged by its longest gap); `None` if the schedule does not parse.
pub fn collection_interval(schedule: &str) -> Option<Duration> {
    let cron: Cron = schedule.parse().ok()?;
    let runs: Vec<_> = cron.iter_after(Utc::now()).take(12).collect();
    runs.windows(2)
        .filter_map(|w| (w[1] - w[0]).to_std().ok())
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_of_the_collectors_default_schedules() {
        assert_eq!(
            collection_interval("*/10 * * * * *"),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            collection_interval("0 */15 * * * *"),
            Some(Duration::from_secs(900))
        );
        assert_eq!(collection_interval("not a cron"), None);
    }
}
