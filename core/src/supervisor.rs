//! Runs a service's loop under supervision, so one failing service never stops the others.
//!
//! A run that fails (returns an error, returns on its own before shutdown, or panics) is
//! logged at ERROR with its error chain, counted in `windsock_service_restarts_total`,
//! reported in [`Health`] (so `/healthz` says *degraded*), published as a `service_failing`
//! health condition on the logs topic (the alerter turns it into an alert), and restarted
//! after an exponential backoff. Once the service has run fine for [`Policy::healthy_after`],
//! the backoff starts over from its first delay and the condition is published as `ok`.

use crate::bus::{publish_event, SharedBus};
use crate::event::{health as condition, Event, LogEvent};
use crate::health::{Health, ServiceHealth, State};
use crate::secret::Secret;
use backon::{BackoffBuilder, ExponentialBuilder};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long publishing a health condition may take: the bus may be what is failing.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// When a failed service is restarted, and when it is called healthy again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// The delay before the first restart; each further failure doubles it (with jitter).
    pub first_delay: Duration,
    /// The longest delay between restarts.
    pub max_delay: Duration,
    /// How long a restarted service must run without failing to be healthy again (and
    /// the backoff to start over).
    pub healthy_after: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            healthy_after: Duration::from_secs(30),
        }
    }
}

impl Policy {
    fn backoff(&self) -> impl Iterator<Item = Duration> {
        // Jitter spreads the restarts of services that failed on one cause (a broker outage)
        // so they do not all hit it again at the same instant.
        ExponentialBuilder::default()
            .with_min_delay(self.first_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

/// How a supervised service ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// It stopped when asked, after a run that did not fail.
    Stopped,
    /// Shutdown found it failing, or its last run failed while stopping: the error.
    Failed(String),
}

/// Supervises services. Clones share the health registry, bus and secrets.
#[derive(Clone)]
pub struct Supervisor {
    health: Health,
    bus: Option<SharedBus>,
    policy: Policy,
    secrets: Arc<Vec<Secret>>,
}

impl Supervisor {
    /// Reports into `health`; publishes health conditions on `bus` when there is one.
    pub fn new(health: Health, bus: Option<SharedBus>, policy: Policy) -> Self {
        Self {
            health,
            bus,
            policy,
            secrets: Arc::new(Vec::new()),
        }
    }

    /// Values replaced by `[redacted]` wherever an error's text is logged, published or
    /// shown: a service's error could quote a URL or a header with a secret in it.
    pub fn redacting(mut self, secrets: impl IntoIterator<Item = Secret>) -> Self {
        self.secrets = Arc::new(secrets.into_iter().filter(|s| !s.is_empty()).collect());
        self
    }

    /// Registers `service` (healthy, no restarts) and its restart counter at zero, so a
    /// `rate()` over it has a series before the first failure; its event counters too.
    pub fn register(&self, service: &'static str) {
        metrics::counter!("windsock_service_restarts_total", "service" => service).absolute(0);
        crate::telemetry::Counters::new(service).register();
        self.health.set(
            service,
            ServiceHealth {
                state: State::Ok,
                error: None,
                restarts: 0,
                since: chrono::Utc::now(),
                next_attempt: None,
            },
        );
    }

    /// Runs `run` (one run of the service, until the token it is given is cancelled) until
    /// `stop`, restarting it whenever it fails.
    pub async fn supervise<F, Fut>(
        self,
        service: &'static str,
        mut run: F,
        stop: CancellationToken,
    ) -> Ended
    where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.register(service);
        let restarts_total =
            metrics::counter!("windsock_service_restarts_total", "service" => service);
        let mut backoff = self.policy.backoff();
        let mut restarts = 0u64;
        // The last failure, until the service has run fine for `healthy_after` since.
        let mut failure: Option<String> = None;
        loop {
            // Its own task, so a panic ends this run only, not the supervisor.
            let mut task = tokio::spawn(run(stop.clone()));
            let healthy = tokio::time::sleep(self.policy.healthy_after);
            tokio::pin!(healthy);
            let mut proven = false;
            let outcome = loop {
                tokio::select! {
                    outcome = &mut task => break outcome,
                    _ = &mut healthy, if !proven => {
                        proven = true;
                        backoff = self.policy.backoff();
                        if failure.take().is_some() {
                            self.recovered(service, restarts);
                        } else if restarts == 0 {
                            // Once per process: a service_failing alert still open from
                            // before a restart of the whole process is resolved by it.
                            self.publish(running_fine(service));
                        }
                    }
                }
            };
            let error = match outcome {
                Ok(Ok(())) if stop.is_cancelled() => return Ended::Stopped,
                Ok(Ok(())) => "it stopped on its own".to_string(),
                Ok(Err(err)) => format!("{err:#}"),
                Err(err) if err.is_panic() => format!("panicked: {}", panic_text(err.into_panic())),
                Err(err) => format!("its task was cancelled: {err}"),
            };
            let error = self.redact(&error);
            if stop.is_cancelled() {
                tracing::error!(service, %error, "service failed while stopping");
                self.set(service, State::Failing, Some(&error), restarts, None);
                return Ended::Failed(error);
            }
            let delay = backoff.next().unwrap_or(self.policy.max_delay);
            let next_attempt = chrono::Utc::now()
                + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
            tracing::error!(
                service,
                %error,
                restart_in = %seconds(delay),
                restarts,
                "service failed; restarting it after a backoff (the other services keep running)"
            );
            self.set(
                service,
                State::Failing,
                Some(&error),
                restarts,
                Some(next_attempt),
            );
            self.publish(LogEvent::health_condition(
                service,
                condition::SERVICE_FAILING,
                true,
                Some(error.clone()),
                format!(
                    "service {service} failed: {error}; restarting in {}",
                    seconds(delay)
                ),
                chrono::Utc::now(),
            ));
            failure = Some(error.clone());
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.cancelled() => return Ended::Failed(error),
            }
            restarts += 1;
            restarts_total.increment(1);
            self.set(service, State::Restarting, Some(&error), restarts, None);
            tracing::info!(service, restarts, "restarting service");
        }
    }

    fn recovered(&self, service: &'static str, restarts: u64) {
        tracing::info!(
            service,
            restarts,
            "service has run fine since its last restart: healthy again"
        );
        self.set(service, State::Ok, None, restarts, None);
        self.publish(running_fine(service));
    }

    fn set(
        &self,
        service: &str,
        state: State,
        error: Option<&str>,
        restarts: u64,
        next_attempt: Option<chrono::DateTime<chrono::Utc>>,
    ) {
        self.health.set(
            service,
            ServiceHealth {
                state,
                error: error.map(str::to_string),
                restarts,
                since: chrono::Utc::now(),
                next_attempt,
            },
        );
    }

    /// Publishes a health condition without holding up the restart: the bus may be down.
    fn publish(&self, mut event: LogEvent) {
        let Some(bus) = self.bus.clone() else {
            return;
        };
        // The supervisor reports it (the failing service is in `fields.service`).
        event.service = "windsock".to_string();
        tokio::spawn(async move {
            let published = tokio::time::timeout(
                PUBLISH_TIMEOUT,
                publish_event(bus.as_ref(), Event::Log(event)),
            )
            .await;
            match published {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    tracing::warn!(error = %err.chain(), "could not publish a health condition")
                }
                Err(_) => tracing::warn!(
                    "could not publish a health condition within {PUBLISH_TIMEOUT:?}"
                ),
            }
        });
    }

    fn redact(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_string(), |text, secret| {
            text.replace(secret.expose(), "[redacted]")
        })
    }
}

/// What a panic said, when it said it with a string.
/// The `ok` report of `service_failing` for `service`.
fn running_fine(service: &str) -> LogEvent {
    LogEvent::health_condition(
        service,
        condition::SERVICE_FAILING,
        false,
        None,
        format!("service {service} is running fine"),
        chrono::Utc::now(),
    )
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// `4.2 s`: jittered delays have odd nanoseconds nobody needs to read.
fn seconds(delay: Duration) -> String {
    format!("{:.1} s", delay.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{EmbeddedBus, EventSubscription, Topic};
    use crate::config::BusConfig;
    use crate::event::HealthCondition;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Quick enough for a test; the order of events, not their timing, is what is asserted.
    const QUICK: Policy = Policy {
        first_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        healthy_after: Duration::from_millis(300),
    };

    /// A hang guard, not a performance bound.
    const PATIENCE: Duration = Duration::from_secs(10);

    fn embedded() -> SharedBus {
        Arc::new(EmbeddedBus::new(&BusConfig::default()))
    }

    async fn next_condition(logs: &mut EventSubscription) -> HealthCondition {
        loop {
            let (_, envelope) = tokio::time::timeout(PATIENCE, logs.next())
                .await
                .expect("a health condition in time")
                .unwrap()
                .expect("the bus is open");
            if let Event::Log(log) = envelope.event {
                if let Some(condition) = log.health() {
                    assert_eq!(log.service, "windsock", "the supervisor reports it");
                    return condition;
                }
            }
        }
    }

    async fn wait_for(health: &Health, service: &str, what: impl Fn(&ServiceHealth) -> bool) {
        tokio::time::timeout(PATIENCE, async {
            while !health.get(service).is_some_and(|h| what(&h)) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{service}: {:?}", health.get(service)));
    }

    #[tokio::test]
    async fn a_failing_service_is_restarted_reported_and_healthy_again_after_a_while() {
        crate::telemetry::prometheus();
        let bus = embedded();
        let mut logs = EventSubscription::new(bus.clone(), &[Topic::Logs], "test")
            .await
            .unwrap();
        let health = Health::default();
        let supervisor = Supervisor::new(health.clone(), Some(bus.clone()), QUICK)
            .redacting([Secret::new("hunter2")]);
        let attempts = Arc::new(AtomicU32::new(0));
        let stop = CancellationToken::new();
        let run = {
            let attempts = attempts.clone();
            move |stop: CancellationToken| {
                let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    if attempt <= 2 {
                        anyhow::bail!("writing segment: disk full (token hunter2)");
                    }
                    stop.cancelled().await;
                    Ok(())
                }
            }
        };
        let supervised = tokio::spawn(supervisor.supervise("test-restarted", run, stop.clone()));

        for _ in 0..2 {
            let failing = next_condition(&mut logs).await;
            assert_eq!(failing.condition, "service_failing");
            assert_eq!(failing.service, "test-restarted");
            assert!(failing.failing);
            let error = failing.error.unwrap();
            assert!(error.contains("disk full"), "{error}");
            assert!(!error.contains("hunter2"), "a secret in {error}");
        }
        let recovered = next_condition(&mut logs).await;
        assert_eq!(recovered.service, "test-restarted");
        assert!(!recovered.failing, "{recovered:?}");
        assert_eq!(recovered.error, None);

        let now = health.get("test-restarted").unwrap();
        assert_eq!(now.state, State::Ok);
        assert_eq!(now.restarts, 2);
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        let metrics = crate::telemetry::prometheus().render();
        assert!(
            metrics.contains("windsock_service_restarts_total{service=\"test-restarted\"} 2"),
            "{metrics}"
        );

        stop.cancel();
        assert_eq!(supervised.await.unwrap(), Ended::Stopped);
    }

    #[tokio::test]
    async fn a_service_running_fine_from_the_start_reports_ok_once() {
        // An open service_failing alert from before a restart of the whole process must
        // be resolved by the new process, which has seen no failure of its own.
        let bus = embedded();
        let mut logs = EventSubscription::new(bus.clone(), &[Topic::Logs], "test")
            .await
            .unwrap();
        let supervisor = Supervisor::new(Health::default(), Some(bus.clone()), QUICK);
        let stop = CancellationToken::new();
        let run = |stop: CancellationToken| async move {
            stop.cancelled().await;
            Ok(())
        };
        let supervised = tokio::spawn(supervisor.supervise("test-fine", run, stop.clone()));
        let ok = next_condition(&mut logs).await;
        assert_eq!(ok.condition, "service_failing");
        assert_eq!(ok.service, "test-fine");
        assert!(!ok.failing, "{ok:?}");
        stop.cancel();
        assert_eq!(supervised.await.unwrap(), Ended::Stopped);
    }

    #[tokio::test]
    async fn health_says_failing_with_the_error_then_restarting_until_proven() {
        let health = Health::default();
        let policy = Policy {
            first_delay: Duration::from_millis(200),
            ..QUICK
        };
        let supervisor = Supervisor::new(health.clone(), None, policy);
        let attempts = Arc::new(AtomicU32::new(0));
        let stop = CancellationToken::new();
        let run = {
            let attempts = attempts.clone();
            move |stop: CancellationToken| {
                let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    if attempt == 1 {
                        anyhow::bail!("index: no space left on device");
                    }
                    stop.cancelled().await;
                    Ok(())
                }
            }
        };
        let supervised = tokio::spawn(supervisor.supervise("test-states", run, stop.clone()));
        wait_for(&health, "test-states", |h| h.state == State::Failing).await;
        let failing = health.get("test-states").unwrap();
        assert_eq!(
            failing.error.as_deref(),
            Some("index: no space left on device")
        );
        assert_eq!(failing.restarts, 0);
        assert!(failing.next_attempt.is_some());
        assert_eq!(
            health.report().0,
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        );

        wait_for(&health, "test-states", |h| h.state != State::Failing).await;
        let restarting = health.get("test-states").unwrap();
        assert_eq!(restarting.state, State::Restarting, "{restarting:?}");
        assert_eq!(restarting.restarts, 1);
        wait_for(&health, "test-states", |h| h.state == State::Ok).await;
        assert!(health.is_ok());
        stop.cancel();
        assert_eq!(supervised.await.unwrap(), Ended::Stopped);
    }

    #[tokio::test]
    async fn a_panic_restarts_that_service_only_and_the_others_keep_running() {
        let health = Health::default();
        let supervisor = Supervisor::new(health.clone(), None, QUICK);
        let stop = CancellationToken::new();
        let panicking_runs = Arc::new(AtomicU32::new(0));
        let steady_runs = Arc::new(AtomicU32::new(0));
        let panicking = {
            let runs = panicking_runs.clone();
            move |stop: CancellationToken| {
                let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    if run == 1 {
                        panic!("boom");
                    }
                    stop.cancelled().await;
                    Ok(())
                }
            }
        };
        let steady = {
            let runs = steady_runs.clone();
            move |stop: CancellationToken| {
                runs.fetch_add(1, Ordering::SeqCst);
                async move {
                    stop.cancelled().await;
                    Ok(())
                }
            }
        };
        let a = tokio::spawn(supervisor.clone().supervise(
            "test-panicking",
            panicking,
            stop.clone(),
        ));
        let b = tokio::spawn(supervisor.supervise("test-steady", steady, stop.clone()));
        wait_for(&health, "test-panicking", |h| h.restarts == 1).await;
        assert!(health
            .get("test-panicking")
            .unwrap()
            .error
            .unwrap()
            .contains("panicked: boom"));
        assert_eq!(steady_runs.load(Ordering::SeqCst), 1);
        assert_eq!(health.get("test-steady").unwrap().state, State::Ok);
        stop.cancel();
        assert_eq!(a.await.unwrap(), Ended::Stopped);
        assert_eq!(b.await.unwrap(), Ended::Stopped);
    }

    #[tokio::test]
    async fn a_run_that_returns_before_stop_is_a_failure_and_stop_while_failing_ends_failed() {
        let health = Health::default();
        let policy = Policy {
            first_delay: Duration::from_secs(3600),
            ..QUICK
        };
        let supervisor = Supervisor::new(health.clone(), None, policy);
        let stop = CancellationToken::new();
        let run = |_stop: CancellationToken| async { Ok(()) };
        let supervised = tokio::spawn(supervisor.supervise("test-returns", run, stop.clone()));
        wait_for(&health, "test-returns", |h| h.state == State::Failing).await;
        // Stopping does not wait out the hour of backoff, and says it was failing.
        stop.cancel();
        let ended = supervised.await.unwrap();
        assert_eq!(ended, Ended::Failed("it stopped on its own".into()));
    }

    #[tokio::test]
    async fn a_run_failing_while_it_stops_is_not_restarted() {
        let health = Health::default();
        let supervisor = Supervisor::new(health.clone(), None, QUICK);
        let stop = CancellationToken::new();
        let runs = Arc::new(AtomicU32::new(0));
        let run = {
            let runs = runs.clone();
            move |stop: CancellationToken| {
                runs.fetch_add(1, Ordering::SeqCst);
                async move {
                    stop.cancelled().await;
                    anyhow::bail!("commit not confirmed")
                }
            }
        };
        let supervised = tokio::spawn(supervisor.supervise("test-stopping", run, stop.clone()));
        wait_for(&health, "test-stopping", |h| h.state == State::Ok).await;
        stop.cancel();
        assert_eq!(
            supervised.await.unwrap(),
            Ended::Failed("commit not confirmed".into())
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
