//! Works through the outbox, oldest message first, one at a time per webhook.
//!
//! - about one message a second (`min_interval`), as Slack allows per webhook;
//! - 429: wait `Retry-After`, then the same message again;
//! - 5xx, 408, timeouts, refused connections: jittered exponential backoff, the same message
//!   again (later ones wait behind it, so a channel reads in order);
//! - other 4xx (400 `invalid_payload`, 403, 404 `no_service`/`channel_not_found`, 410):
//!   permanent, marked failed and counted, never retried;
//! - retryable failures for longer than `give_up_after`: marked expired.
//!
//! While the store cannot write (a full disk), messages come from its memory as well, and
//! about once a second the worker asks it to write what waits there.
//!
//! The webhook URL is a secret: errors are described by status and Slack's one-word body, and
//! reqwest errors lose their URL before they are turned into text.

use crate::store::{Delivery, DeliveryStatus, Store};
use rand::Rng;
use reqwest::header::RETRY_AFTER;
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use windsock_core::clock::SharedClock;
use windsock_core::config::SlackConfig;
use windsock_core::secret::Secret;
use windsock_core::telemetry::Counters;

/// How often what the store holds in memory is written again while it cannot write.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The longest `Retry-After` obeyed as given.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// What one POST came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Try the same message again after `after` (Retry-After) or after a backoff.
    Retry {
        after: Option<Duration>,
        error: String,
    },
    Permanent(String),
}

/// Classifies Slack's answer to a webhook POST.
pub fn classify(status: StatusCode, retry_after: Option<&str>, body: &str) -> Outcome {
    let body: String = body.trim().chars().take(200).collect();
    let error = format!(
        "HTTP {}: {}",
        status.as_u16(),
        if body.is_empty() { "(no body)" } else { &body }
    );
    if status.is_success() {
        Outcome::Delivered
    } else if status == StatusCode::TOO_MANY_REQUESTS {
        let after = retry_after
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER))
            .unwrap_or(Duration::from_secs(1));
        Outcome::Retry {
            after: Some(after),
            error,
        }
    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        Outcome::Retry { after: None, error }
    } else {
        Outcome::Permanent(error)
    }
}

pub struct Deliverer {
    pub store: Arc<Store>,
    pub webhook: Secret,
    pub config: SlackConfig,
    pub clock: SharedClock,
    pub wake: Arc<Notify>,
    pub counters: Counters,
}

impl Deliverer {
    pub async fn run(self, shutdown: CancellationToken) {
        let client = match reqwest::Client::builder()
            .timeout(self.config.timeout)
            .build()
        {
            Ok(client) => client,
            Err(err) => {
                tracing::error!(error = %err.without_url(), "cannot build the Slack HTTP client; deliveries stop");
                return;
            }
        };
        let mut last_post: Option<Instant> = None;
        let mut backoff = self.config.backoff_initial;
        let mut last_flush: Option<Instant> = None;
        while !shutdown.is_cancelled() {
            if !self.store.is_durable() && last_flush.is_none_or(|t| t.elapsed() >= FLUSH_EVERY) {
                last_flush = Some(Instant::now());
                // A failure is logged by the store, once an episode.
                let _ = self.store.flush();
            }
            let wake = self.wake.notified();
            let next = match self.store.next_pending() {
                Ok(next) => next,
                Err(err) => {
                    tracing::error!(error = %err, "reading the outbox failed");
                    self.counters.error("store");
                    None
                }
            };
            let Some(message) = next else {
                tokio::select! {
                    _ = wake => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            };
            let age = self.clock.now() - message.created_at;
            if age.to_std().unwrap_or_default() > self.config.give_up_after {
                tracing::warn!(alert = %message.alert_id, notice = %message.notice, "gave up on a Slack message after retrying too long");
                self.finish(
                    &message,
                    DeliveryStatus::Expired,
                    Some("gave up: retryable failures for longer than give_up_after"),
                );
                self.counters.dropped(1, "slack_expired");
                continue;
            }
            if let Some(last) = last_post {
                tokio::select! {
                    _ = tokio::time::sleep_until(last + self.config.min_interval) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
            last_post = Some(Instant::now());
            let outcome = self.post(&client, &message).await;
            match outcome {
                Outcome::Delivered => {
                    self.finish(&message, DeliveryStatus::Delivered, None);
                    self.counters.sent(1);
                    backoff = self.config.backoff_initial;
                }
                Outcome::Permanent(error) => {
                    tracing::warn!(alert = %message.alert_id, notice = %message.notice, %error, "Slack refused a message for good");
                    self.finish(&message, DeliveryStatus::Failed, Some(&error));
                    self.counters.error("slack_permanent");
                    self.counters.dropped(1, "slack_permanent");
                }
                Outcome::Retry { after, error } => {
                    let wait = after.unwrap_or_else(|| jittered(backoff));
                    if after.is_none() {
                        backoff = (backoff * 2).min(self.config.backoff_max);
                    }
                    tracing::warn!(alert = %message.alert_id, %error, wait_ms = wait.as_millis() as u64, "Slack delivery will be retried");
                    self.counters.error(if after.is_some() {
                        "slack_429"
                    } else {
                        "slack_retry"
                    });
                    if let Err(err) =
                        self.store
                            .record_attempt(message.seq, &error, self.clock.now())
                    {
                        tracing::error!(error = %err, "recording a delivery attempt failed");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
        }
    }

    async fn post(&self, client: &reqwest::Client, message: &Delivery) -> Outcome {
        let sent = client
            .post(self.webhook.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(message.payload.clone())
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = response.text().await.unwrap_or_default();
                classify(status, retry_after.as_deref(), &body)
            }
            Err(err) => {
                let kind = if err.is_timeout() {
                    "timeout"
                } else if err.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                // Without the URL: it is the secret.
                Outcome::Retry {
                    after: None,
                    error: format!("{kind}: {}", err.without_url()),
                }
            }
        }
    }

    fn finish(&self, message: &Delivery, status: DeliveryStatus, error: Option<&str>) {
        if let Err(err) = self
            .store
            .finish(message.seq, status, error, self.clock.now())
        {
            tracing::error!(error = %err, "recording a delivery outcome failed");
        }
    }
}

/// Between half and all of `backoff`, so many alerters do not retry in step.
fn jittered(backoff: Duration) -> Duration {
    let ms = backoff.as_millis().max(2) as u64;
    Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_answers_are_classified() {
        assert_eq!(classify(StatusCode::OK, None, "ok"), Outcome::Delivered);
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, Some("30"), ""),
            Outcome::Retry {
                after: Some(Duration::from_secs(30)),
                error: "HTTP 429: (no body)".into()
            }
        );
        assert!(matches!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, None, "x"),
            Outcome::Retry { after: None, .. }
        ));
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, None, ""),
            Outcome::Retry { after: None, .. }
        ));
        for (status, body) in [
            (400, "invalid_payload"),
            (403, "action_prohibited"),
            (404, "no_service"),
            (404, "channel_not_found"),
            (410, "channel_is_archived"),
        ] {
            let outcome = classify(StatusCode::from_u16(status).unwrap(), None, body);
            assert_eq!(
                outcome,
                Outcome::Permanent(format!("HTTP {status}: {body}"))
            );
        }
    }

    #[test]
    fn jitter_stays_within_the_backoff() {
        for _ in 0..100 {
            let d = jittered(Duration::from_millis(100));
            assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(100));
        }
    }
}
