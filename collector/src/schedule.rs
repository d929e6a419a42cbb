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
        self.due_between(from, to, limit).ticks
    }

    /// As [`Schedule::ticks_between`], with the instants left out by `limit` counted.
    fn due_between(&self, from: DateTime<Utc>, to: DateTime<Utc>, limit: usize) -> Due {
        let to = to.trunc_subsecs(0);
        // Not croner's `iter_before`: it steps back a second past each instant and then
        // searches exclusively, so it skips every other instant of a per-second schedule.
        let newest = self.cron.find_previous_occurrence(&to, true).ok();
        let mut instants = std::iter::successors(newest, |at| {
            self.cron.find_previous_occurrence(at, false).ok()
        })
        .take_while(|at| *at > from);
        let mut ticks: Vec<Tick> = instants
            .by_ref()
            .take(limit)
            .filter_map(|at| self.tick_of(at))
            .collect();
        ticks.reverse();
        // Counted rather than collected: a per-second schedule after a week suspended is
        // 604,800 instants, and only how many matters.
        let (older, oldest) = instants
            .take(MAX_COUNTED as usize)
            .fold((0, None), |(n, _), at| (n + 1, Some(at)));
        Due {
            oldest: oldest.or(ticks.first().map(|t| t.at)),
            ticks,
            older,
        }
    }
}

/// Past this, due instants beyond the limit asked for are not counted one by one: the count
/// is a lower bound.
pub const MAX_COUNTED: u64 = 1_000_000;

/// The scheduled instants due at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// The newest due ticks, oldest first, at most the limit asked for.
    pub ticks: Vec<Tick>,
    /// Due instants older than `ticks` left out by the limit (at most [`MAX_COUNTED`]).
    pub older: u64,
    /// The oldest due instant, counted ones included.
    pub oldest: Option<DateTime<Utc>>,
}

impl Due {
    /// Every due instant, counted ones included.
    pub fn total(&self) -> u64 {
        self.ticks.len() as u64 + self.older
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

    /// The ticks due by `now` not handed out yet: at most the newest `limit`, the older ones
    /// counted (they are handed out as a count only, never again).
    pub fn due(&mut self, now: DateTime<Utc>, limit: usize) -> Due {
        let due = match self.last {
            Some(last) => self.schedule.due_between(last, now, limit),
            None => {
                let ticks: Vec<Tick> = self.schedule.tick_at(now).into_iter().collect();
                Due {
                    oldest: ticks.first().map(|t| t.at),
                    ticks,
                    older: 0,
                }
            }
        };
        if let Some(newest) = due.ticks.last() {
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
        assert!(cursor.due(at(12, 0, 9), 10).ticks.is_empty());
        let first = cursor.due(at(12, 0, 10) + ms(200), 10);
        assert_eq!(
            first.ticks.iter().map(|t| t.at).collect::<Vec<_>>(),
            vec![at(12, 0, 10)]
        );
        assert!(
            cursor.due(at(12, 0, 10) + ms(700), 10).ticks.is_empty(),
            "a second firing for one instant"
        );
        let late = cursor.due(at(12, 0, 41), 10);
        assert_eq!(
            late.ticks.iter().map(|t| t.at).collect::<Vec<_>>(),
            vec![at(12, 0, 20), at(12, 0, 30), at(12, 0, 40)],
            "a late firing catches up"
        );
        assert_eq!((late.older, late.oldest), (0, Some(at(12, 0, 20))));
    }

    #[test]
    fn a_per_second_schedule_lists_every_second() {
        let schedule = Schedule::parse("* * * * * *").unwrap();
        let ticks = schedule.ticks_between(at(12, 0, 0), at(12, 0, 6), 100);
        assert_eq!(
            ticks.iter().map(|t| t.at).collect::<Vec<_>>(),
            (1..=6).map(|s| at(12, 0, s)).collect::<Vec<_>>()
        );
        assert!(ticks
            .iter()
            .all(|t| t.at - t.previous == chrono::Duration::seconds(1)));
    }

    #[test]
    fn instants_beyond_the_limit_are_counted_and_not_handed_out_again() {
        let schedule = Schedule::parse("* * * * * *").unwrap();
        let mut cursor = TickCursor::after(schedule, at(12, 0, 0));
        // Suspended for a day: 86,400 instants due, the newest 3 handed out.
        let due = cursor.due(at(12, 0, 0) + chrono::Duration::days(1), 3);
        assert_eq!(due.ticks.len(), 3);
        assert_eq!(due.ticks[2].at, at(12, 0, 0) + chrono::Duration::days(1));
        assert_eq!(due.older, 86_400 - 3);
        assert_eq!(due.total(), 86_400);
        assert_eq!(due.oldest, Some(at(12, 0, 1)));
        let next = cursor.due(at(12, 0, 1) + chrono::Duration::days(1), 3);
        assert_eq!(next.total(), 1, "{next:?}");
    }

    #[test]
    fn a_cron_without_seconds_is_refused_with_its_key() {
        let err = Schedule::parse("*/5 * * * *").unwrap_err().to_string();
        assert!(err.starts_with("collector.schedule"), "{err}");
    }
}
