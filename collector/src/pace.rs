//! The pace of requests for the past (the backfill on start and the catch-up of missed
//! instants): at most `collector.backfill_rate` a second, none while a live round is under
//! way (live rounds go first), and none until a 429's `Retry-After` has passed.
//!
//! Live rounds are not limited: they are the load the source is there for, and holding one
//! back would make every region late, which is what the backfill must never cause.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The longest a 429 without `Retry-After` pauses the backfill.
const PAUSE_WITHOUT_RETRY_AFTER: Duration = Duration::from_secs(1);

pub(crate) struct BackfillPace {
    /// `None`: no limit (a source that makes no request, unless configured).
    limiter: Option<DefaultDirectRateLimiter>,
    rate: Option<f64>,
    live_rounds: AtomicUsize,
    live_rounds_ended: Notify,
    paused_until: Mutex<Option<Instant>>,
}

impl BackfillPace {
    /// `rate` requests a second, evenly spaced (no burst: a quota per minute is met by
    /// any minute of the backfill, not only on average).
    pub(crate) fn new(rate: Option<f64>) -> Self {
        let limiter = rate
            .filter(|r| r.is_finite() && *r > 0.0)
            .and_then(|r| Quota::with_period(Duration::from_secs_f64(1.0 / r)))
            .map(RateLimiter::direct);
        Self {
            rate: limiter.as_ref().and(rate),
            limiter,
            live_rounds: AtomicUsize::new(0),
            live_rounds_ended: Notify::new(),
            paused_until: Mutex::new(None),
        }
    }

    /// The limit in force, requests a second.
    pub(crate) fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// Marks a live round as under way until the guard drops: requests for the past wait.
    pub(crate) fn live_round(&self) -> LiveRound<'_> {
        self.live_rounds.fetch_add(1, Ordering::SeqCst);
        LiveRound(self)
    }

    /// Waits until a request for the past may go: no live round under way, no 429 pause,
    /// and a slot of the rate.
    pub(crate) async fn ready(&self) {
        loop {
            self.no_live_round().await;
            let paused = *self.paused_until.lock();
            if let Some(until) = paused.filter(|until| *until > Instant::now()) {
                tokio::time::sleep_until(until).await;
                continue;
            }
            if let Some(limiter) = &self.limiter {
                limiter.until_ready().await;
            }
            // A live round that began while this waited for its slot goes first; the slot
            // is spent, which only makes the backfill slower, never the source busier.
            if self.live_rounds.load(Ordering::SeqCst) == 0 {
                return;
            }
        }
    }

    async fn no_live_round(&self) {
        loop {
            let ended = self.live_rounds_ended.notified();
            tokio::pin!(ended);
            // Registered before the check, so an end between the check and the wait wakes it.
            ended.as_mut().enable();
            if self.live_rounds.load(Ordering::SeqCst) == 0 {
                return;
            }
            ended.await;
        }
    }

    /// The source answered 429: no request for the past until `retry_after` (or a second
    /// when it did not say) has passed.
    pub(crate) fn slow_down(&self, retry_after: Option<Duration>) {
        let until = Instant::now() + retry_after.unwrap_or(PAUSE_WITHOUT_RETRY_AFTER);
        let mut paused = self.paused_until.lock();
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }
}

pub(crate) struct LiveRound<'a>(&'a BackfillPace);

impl Drop for LiveRound<'_> {
    fn drop(&mut self) {
        if self.0.live_rounds.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.live_rounds_ended.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn requests_wait_for_the_live_round_and_the_429_pause() {
        let pace = Arc::new(BackfillPace::new(None));
        let live = pace.live_round();
        let waiting = tokio::spawn({
            let pace = pace.clone();
            async move { pace.ready().await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished(), "a live round is under way");
        drop(live);
        waiting.await.unwrap();

        pace.slow_down(Some(Duration::from_secs(30)));
        let started = Instant::now();
        pace.ready().await;
        assert_eq!(started.elapsed().as_secs(), 30);
    }

    #[test]
    fn no_rate_is_no_limit_and_a_rate_is_kept() {
        assert_eq!(BackfillPace::new(None).rate(), None);
        assert_eq!(BackfillPace::new(Some(0.0)).rate(), None);
        assert_eq!(BackfillPace::new(Some(2.5)).rate(), Some(2.5));
    }
}
