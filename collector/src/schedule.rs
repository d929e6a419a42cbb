//! The collection schedule: a cron with seconds, parsed with the grammar tokio-cron-scheduler
//! uses, so the instants computed here are the instants the scheduler fires at.

use chrono::{DateTime, SubsecRound, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// One scheduled instant and the one before it: a source's observation for the tick covers
/// `(previous, at]` (the replay source emits the rows recorded in that span).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    pub at: DateTime<Utc>,
    pub previous: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
    pattern: String,
}

#[derive(Debug, thiserror::Error)]
#[error("collector.schedule: `{pattern}` is not a cron with seconds (sec min hour day month weekday): {reason}")]
pub struct ScheduleError {
    pattern: String,
    reason: String,
}

impl Schedule {
    pub fn parse(pattern: &str) -> Result<Self, ScheduleError> {
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(pattern)
            .map_err(|err| ScheduleError {
                pattern: pattern.to_string(),
                reason: err.to_string(),
            })?;
        Ok(Self {
            cron,
            pattern: pattern.to_string(),
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The tick a firing at `now` belongs to: the latest scheduled instant at or before it
    /// (the scheduler fires a little after the instant, never before).
    pub fn tick_at(&self, now: DateTime<Utc>) -> Option<Tick> {
        let at = self
            .cron
            .find_previous_occurrence(&now.trunc_subsecs(0), true)
            .ok()?;
        self.tick_of(at)
    }

    /// The tick of a scheduled instant.
    fn tick_of(&self, at: DateTime<Utc>) -> Option<Tick> {
        let previous = self.cron.find_previous_occurrence(&at, false).ok()?;
        Some(Tick { at, previous })
    }

    /// The first scheduled instant after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // croner keeps sub-seconds it is given: align first.
        self.cron
            .find_next_occurrence(&now.trunc_subsecs(0), false)
            .ok()
    }

    /// Every tick in `(from, to]`, oldest first, at most the newest `limit`.
    pub fn ticks_between(&self, from: DateTime<Utc>, to: DateTime<Utc>, limit: usize) -> Vec<Tick> {
        let to = to.trunc_subsecs(0);
        let mut ticks: Vec<Tick> = self
            .cron
            .iter_before(to + chrono::Duration::seconds(1))
            .take_while(|at| *at > from)
            .take(limit)
            .filter(|at| *at <= to)
            .filter_map(|at| self.tick_of(at))
            .collect();
        ticks.reverse();
        ticks
    }
}

/// Hands out every scheduled instant once, in order, however irregularly it is polled: a
/// scheduler firing late (or skipping a firing) catches up rather than leaving a gap, and
/// firing twice for one instant makes one tick.
pub struct TickCursor {
    schedule: Schedule,
    last: Option<DateTime<Utc>>,
}

impl TickCursor {
    /// A cursor whose first tick is the first instant after `now`.
    pub fn after(schedule: Schedule, now: DateTime<Utc>) -> Self {
        let last = schedule.tick_at(now).map(|t| t.at);
        Self { schedule, last }
    }

    /// The ticks due by `now` not handed out yet: at most the newest `limit`.
    pub fn due(&mut self, now: DateTime<Utc>, limit: usize) -> Vec<Tick> {
        let due = match self.last {
            Some(last) => self.schedule.ticks_between(last, now, limit),
            None => self.schedule.tick_at(now).into_iter().collect(),
        };
        if let Some(newest) = due.last() {
            self.last = Some(newest.at);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, m, s).unwrap()
    }

    #[test]
    fn firings_align_to_their_scheduled_instant() {
        let schedule = Schedule::parse("*/10 * * * * *").unwrap();
        let tick = schedule
            .tick_at(at(12, 0, 10) + chrono::Duration::milliseconds(340))
            .unwrap();
        assert_eq!(tick.at, at(12, 0, 10));
        assert_eq!(tick.previous, at(12, 0, 0));
        assert_eq!(schedule.next_after(at(12, 0, 10)), Some(at(12, 0, 20)));
    }

    #[test]
    fn ticks_between_lists_a_window_oldest_first() {
        let schedule = Schedule::parse("0 */15 * * * *").unwrap();
        let ticks = schedule.ticks_between(at(11, 0, 0), at(12, 5, 0), 100);
        let instants: Vec<_> = ticks.iter().map(|t| t.at).collect();
        assert_eq!(
            instants,
            vec![at(11, 15, 0), at(11, 30, 0), at(11, 45, 0), at(12, 0, 0)]
        );
        assert_eq!(ticks[0].previous, at(11, 0, 0));
        let ragged = schedule.ticks_between(
            at(11, 0, 0) + chrono::Duration::milliseconds(1),
            at(12, 0, 0) + chrono::Duration::milliseconds(999),
            100,
        );
        assert_eq!(
            ragged.iter().map(|t| t.at).collect::<Vec<_>>(),
            instants,
            "sub-seconds do not leak into ticks"
        );
        assert_eq!(
            schedule.next_after(at(12, 0, 0) + chrono::Duration::milliseconds(5)),
            Some(at(12, 15, 0))
        );
        let newest = schedule.ticks_between(at(11, 0, 0), at(12, 5, 0), 2);
        assert_eq!(
            newest.iter().map(|t| t.at).collect::<Vec<_>>(),
            vec![at(11, 45, 0), at(12, 0, 0)]
        );
    }

    #[test]
    fn the_cursor_hands_out_each_instant_once_and_catches_up() {
        let schedule = Schedule::parse("*/10 * * * * *").unwrap();
        let mut cursor = TickCursor::after(schedule, at(12, 0, 3));
        let ms = chrono::Duration::milliseconds;
        assert!(cursor.due(at(12, 0, 9), 10).is_empty());
        let first = cursor.due(at(12, 0, 10) + ms(200), 10);
        assert_eq!(
            first.iter().map(|t| t.at).collect::<Vec<_>>(),
            vec![at(12, 0, 10)]
        );
        assert!(
            cursor.due(at(12, 0, 10) + ms(700), 10).is_empty(),
            "a second firing for one instant"
        );
        let late = cursor.due(at(12, 0, 41), 10);
        assert_eq!(
            late.iter().map(|t| t.at).collect::<Vec<_>>(),
            vec![at(12, 0, 20), at(12, 0, 30), at(12, 0, 40)],
            "a late firing catches up"
        );
    }

    #[test]
    fn a_cron_without_seconds_is_refused_with_its_key() {
        let err = Schedule::parse("*/5 * * * *").unwrap_err().to_string();
        assert!(err.starts_with("collector.schedule"), "{err}");
    }
}
