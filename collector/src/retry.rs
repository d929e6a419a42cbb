//! Retries with jittered exponential backoff (backon); HTTP 429 waits its `Retry-After`.

use crate::source::FetchError;
use backon::{ExponentialBuilder, Retryable};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use windsock_core::config::CollectorConfig;

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    retries: u32,
    min_delay: Duration,
    max_delay: Duration,
    max_retry_after: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &CollectorConfig) -> Self {
        Self {
            retries: config.retries,
            min_delay: config.retry_min_delay,
            max_delay: config.retry_max_delay.max(config.retry_min_delay),
            max_retry_after: config.max_retry_after,
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are spent; returns
    /// the result and how many attempts were made.
    pub async fn run<T, F, Fut>(&self, mut attempt: F) -> (Result<T, FetchError>, u32)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, FetchError>>,
    {
        let attempts = AtomicU32::new(0);
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.retries as usize);
        let result = (|| {
            attempts.fetch_add(1, Ordering::Relaxed);
            attempt()
        })
        .retry(backoff)
        .when(FetchError::retryable)
        .adjust(|err, backoff| self.delay(err, backoff))
        .notify(|err, wait| tracing::debug!(error = %err, wait_ms = wait.as_millis() as u64, "retrying"))
        .await;
        (result, attempts.into_inner())
    }

    /// The wait before the next attempt: the backoff's, or the server's `Retry-After` on a
    /// 429. A `Retry-After` beyond `max_retry_after` gives up for this round instead.
    fn delay(&self, err: &FetchError, backoff: Option<Duration>) -> Option<Duration> {
        let backoff = backoff?;
        match err {
            FetchError::RateLimited {
                retry_after: Some(wait),
                ..
            } => (*wait <= self.max_retry_after).then_some(*wait),
            _ => Some(backoff),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(retries: u32) -> RetryPolicy {
        RetryPolicy {
            retries,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            max_retry_after: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn retryable_errors_are_retried_until_spent() {
        let (result, attempts) = policy(2)
            .run(|| async {
                Err::<(), _>(FetchError::Api {
                    status: 503,
                    message: "busy".into(),
                })
            })
            .await;
        assert!(result.is_err());
        assert_eq!(attempts, 3);
    }

    #[tokio::test]
    async fn client_errors_are_not_retried() {
        let (_, attempts) = policy(3)
            .run(|| async {
                Err::<(), _>(FetchError::Api {
                    status: 400,
                    message: "bad".into(),
                })
            })
            .await;
        assert_eq!(attempts, 1);
    }

    #[test]
    fn retry_after_replaces_the_backoff_up_to_the_cap() {
        let p = policy(3);
        let limited = |secs| FetchError::RateLimited {
            retry_after: Some(Duration::from_secs(secs)),
            message: String::new(),
        };
        let backoff = Some(Duration::from_millis(2));
        assert_eq!(p.delay(&limited(5), backoff), Some(Duration::from_secs(5)));
        assert_eq!(
            p.delay(&limited(3600), backoff),
            None,
            "too long a wait gives up this round"
        );
        assert_eq!(p.delay(&limited(5), None), None, "retries spent");
    }
}
