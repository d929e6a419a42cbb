//! Works through the outbox, oldest message first, one at a time per webhook.
//!
//! - about one message a second (`min_interval`), as Slack allows per webhook;
//! - 429: wait `Retry-After` (seconds or an HTTP-date, at most 15 minutes; 1 s without one),
//!   then the same message again;
//! - 5xx, 408, timeouts, refused connections: jittered exponential backoff (backon, from
//!   `backoff_initial` doubling to `backoff_max`, plus up to as much again of jitter), the
//!   same message again (later ones wait behind it, so a channel reads in order);
//! - other 4xx (400 `invalid_payload`, 403, 404 `no_service`/`channel_not_found`, 410):
//!   permanent, marked failed and counted, never retried;
//! - retryable failures for longer than `give_up_after`: marked expired.
//!
//! While the store cannot write (a full disk), messages come from its memory as well, and
//! about once a second the worker asks it to write what waits there. Every store call runs
//! on the blocking pool ([`Store::blocking`]).
//!
//! Each POST's latency is observed in `windsock_slack_delivery_seconds{outcome}` (`delivered`,
//! `retry`, `failed`).
//!
//! The webhook URL is a secret: errors are described by status and Slack's one-word body, and
//! reqwest errors lose their URL before they are turned into text.

use crate::store::{Delivery, DeliveryStatus, Store, StoreError};
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use reqwest::header::RETRY_AFTER;
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
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

/// The wait on a 429 that says nothing readable about when to come back.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The latency of each POST to Slack, by what it came to.
pub const DELIVERY_SECONDS: &str = "windsock_slack_delivery_seconds";

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

impl Outcome {
    /// The `outcome` label of [`DELIVERY_SECONDS`].
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Permanent(_) => "failed",
        }
    }

    pub const LABELS: [&'static str; 3] = ["delivered", "retry", "failed"];
}

/// Classifies Slack's answer to a webhook POST; `retry_after` is its `Retry-After` read as a
/// wait (see [`windsock_core::http::retry_after`]).
pub fn classify(status: StatusCode, retry_after: Option<Duration>, body: &str) -> Outcome {
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
            .map(|wait| wait.min(MAX_RETRY_AFTER))
            .unwrap_or(DEFAULT_RETRY_AFTER);
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

/// The backoff between retries of one message, restarted for each message delivered or given
/// up on. Endless: `give_up_after` ends the retries, not a count. The jitter (up to the step
/// again) keeps many alerters from retrying in step.
fn backoff(config: &SlackConfig) -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(config.backoff_initial)
        .with_max_delay(config.backoff_max.max(config.backoff_initial))
        .without_max_times()
        .build()
}

impl Deliverer {
    fn backoff(&self) -> ExponentialBackoff {
        backoff(&self.config)
    }

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
        let mut backoff = self.backoff();
        let mut last_flush: Option<Instant> = None;
        while !shutdown.is_cancelled() {
            let flush = last_flush.is_none_or(|t| t.elapsed() >= FLUSH_EVERY);
            let wake = self.wake.notified();
            let next = self
                .store
                .blocking(move |store| {
                    if flush && !store.is_durable() {
                        // A failure is logged by the store, once an episode.
                        let _ = store.flush();
                    }
                    store.next_pending()
                })
                .await
                .and_then(|next| next);
            if flush {
                last_flush = Some(Instant::now());
            }
            let next = match next {
                Ok(next) => next,
                Err(StoreError::Cancelled) => break,
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
                )
                .await;
                self.counters.dropped(1, "slack_expired");
                backoff = self.backoff();
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
                    self.finish(&message, DeliveryStatus::Delivered, None).await;
                    self.counters.sent(1);
                    backoff = self.backoff();
                }
                Outcome::Permanent(error) => {
                    tracing::warn!(alert = %message.alert_id, notice = %message.notice, %error, "Slack refused a message for good");
                    self.finish(&message, DeliveryStatus::Failed, Some(&error))
                        .await;
                    self.counters.error("slack_permanent");
                    self.counters.dropped(1, "slack_permanent");
                    backoff = self.backoff();
                }
                Outcome::Retry { after, error } => {
                    // A Retry-After is the server's word and replaces the backoff's step
                    // (which then resumes where it was).
                    let wait =
                        after.unwrap_or_else(|| backoff.next().unwrap_or(self.config.backoff_max));
                    tracing::warn!(alert = %message.alert_id, %error, wait_ms = wait.as_millis() as u64, "Slack delivery will be retried");
                    self.counters.error(if after.is_some() {
                        "slack_429"
                    } else {
                        "slack_retry"
                    });
                    let (seq, now) = (message.seq, self.clock.now());
                    let recorded = self
                        .store
                        .blocking(move |store| store.record_attempt(seq, &error, now))
                        .await
                        .and_then(|recorded| recorded);
                    if let Err(err) = recorded {
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

    /// POSTs `message` and observes how long it took in [`DELIVERY_SECONDS`].
    async fn post(&self, client: &reqwest::Client, message: &Delivery) -> Outcome {
        let started = Instant::now();
        let outcome = self.send(client, message).await;
        metrics::histogram!(DELIVERY_SECONDS, "outcome" => outcome.label())
            .record(started.elapsed().as_secs_f64());
        outcome
    }

    async fn send(&self, client: &reqwest::Client, message: &Delivery) -> Outcome {
        let sent = client
            .post(self.webhook.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(message.payload.clone())
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status();
                // Against the wall clock, not the service's: the wait is slept in real time.
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| windsock_core::http::retry_after(v, SystemTime::now()));
                let body = response.text().await.unwrap_or_default();
                classify(status, retry_after, &body)
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

    async fn finish(&self, message: &Delivery, status: DeliveryStatus, error: Option<&str>) {
        let (seq, now, error) = (message.seq, self.clock.now(), error.map(str::to_string));
        let finished = self
            .store
            .blocking(move |store| store.finish(seq, status, error.as_deref(), now))
            .await
            .and_then(|finished| finished);
        if let Err(err) = finished {
            tracing::error!(error = %err, "recording a delivery outcome failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_answers_are_classified() {
        assert_eq!(classify(StatusCode::OK, None, "ok"), Outcome::Delivered);
        assert_eq!(
            classify(
                StatusCode::TOO_MANY_REQUESTS,
                Some(Duration::from_secs(30)),
                ""
            ),
            Outcome::Retry {
                after: Some(Duration::from_secs(30)),
                error: "HTTP 429: (no body)".into()
            }
        );
        // Without a readable Retry-After, a second; never more than 15 minutes.
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, None, ""),
            Outcome::Retry { after: Some(after), .. } if after == DEFAULT_RETRY_AFTER
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, Some(Duration::from_secs(86400)), ""),
            Outcome::Retry { after: Some(after), .. } if after == MAX_RETRY_AFTER
        ));
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
    fn the_backoff_doubles_with_jitter_up_to_its_maximum_and_never_ends() {
        let config = SlackConfig {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(800),
            ..SlackConfig::default()
        };
        let waits: Vec<Duration> = backoff(&config).take(50).collect();
        assert_eq!(waits.len(), 50);
        let ms = |d: &Duration| d.as_millis() as u64;
        for (i, wait) in waits.iter().enumerate() {
            let step = (100u64 << i.min(3)).min(800);
            assert!(
                (step..=2 * step).contains(&ms(wait)),
                "retry {i}: {wait:?}, step {step} ms"
            );
        }
    }

    #[test]
    fn outcomes_have_their_labels() {
        assert_eq!(Outcome::Delivered.label(), "delivered");
        assert_eq!(Outcome::Permanent(String::new()).label(), "failed");
        let retry = Outcome::Retry {
            after: None,
            error: String::new(),
        };
        assert_eq!(retry.label(), "retry");
        assert_eq!(Outcome::LABELS, ["delivered", "retry", "failed"]);
    }
}
