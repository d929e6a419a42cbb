//! Test harness: a fake Slack incoming webhook (a real HTTP server on 127.0.0.1 speaking
//! Slack's answers) and an alerter wired to an embedded bus on a manual clock.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use windsock_alerter::Alerter;
use windsock_core::bus::{publish_event, EmbeddedBus};
use windsock_core::clock::ManualClock;
use windsock_core::config::{BusConfig, Region, RuleConfig, Severity};
use windsock_core::event::{Event, Observation};
use windsock_core::{Config, Secret, SharedBus};

/// The secret part of the fake webhook's URL: it must never show up anywhere.
pub const WEBHOOK_SECRET: &str = "T0001/B0002/xoxSECRETxox9f8e7d";

/// How the fake Slack answers a POST.
#[derive(Clone, Debug)]
pub enum Answer {
    Ok,
    TooMany {
        retry_after: u64,
    },
    /// 429 with `Retry-After` as an HTTP-date this far ahead of the wall clock (whole
    /// seconds, as HTTP-dates are: the wait is between `ahead - 1s` and `ahead`).
    TooManyUntil {
        ahead: Duration,
    },
    ServerError,
    InvalidPayload,
    NoService,
    ChannelNotFound,
    Gone,
    /// Never answers (the client times out).
    Hang,
}

#[derive(Default)]
struct SlackState {
    /// Answers to give, in order; `Ok` once they run out (or `default` if set).
    script: VecDeque<Answer>,
    default: Option<Answer>,
    /// Payloads answered 200 `ok`, in order.
    delivered: Vec<Value>,
    /// Every POST received, whatever the answer.
    posts: usize,
    /// When each POST arrived.
    arrivals: Vec<std::time::Instant>,
}

#[derive(Clone)]
pub struct FakeSlack {
    state: Arc<Mutex<SlackState>>,
    pub url: String,
    shutdown: CancellationToken,
}

impl FakeSlack {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(SlackState::default()));
        let app = Router::new()
            .route("/services/{*path}", post(webhook))
            .with_state(state.clone());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .unwrap();
        });
        Self {
            state,
            url: format!("http://{addr}/services/{WEBHOOK_SECRET}"),
            shutdown,
        }
    }

    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.lock().script.extend(answers);
    }

    /// The answer once the script is used up (default `Ok`).
    pub fn set_default(&self, answer: Option<Answer>) {
        self.state.lock().default = answer;
    }

    pub fn delivered(&self) -> Vec<Value> {
        self.state.lock().delivered.clone()
    }

    pub fn arrivals(&self) -> Vec<std::time::Instant> {
        self.state.lock().arrivals.clone()
    }

    pub fn posts(&self) -> usize {
        self.state.lock().posts
    }

    /// The header text of each delivered message.
    pub fn headers(&self) -> Vec<String> {
        self.delivered()
            .iter()
            .map(|p| {
                p["blocks"][0]["text"]["text"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        if Arc::strong_count(&self.state) <= 2 {
            self.shutdown.cancel();
        }
    }
}

async fn webhook(State(state): State<Arc<Mutex<SlackState>>>, body: Bytes) -> Response {
    let answer = {
        let mut s = state.lock();
        s.posts += 1;
        s.arrivals.push(std::time::Instant::now());
        s.script
            .pop_front()
            .or_else(|| s.default.clone())
            .unwrap_or(Answer::Ok)
    };
    match answer {
        Answer::Ok => {
            let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
                return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
            };
            if payload.get("text").is_none() && payload.get("blocks").is_none() {
                return (StatusCode::BAD_REQUEST, "no_text").into_response();
            }
            state.lock().delivered.push(payload);
            (StatusCode::OK, "ok").into_response()
        }
        Answer::TooMany { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", retry_after.to_string())],
            "rate_limited",
        )
            .into_response(),
        Answer::TooManyUntil { ahead } => {
            let at: DateTime<Utc> = (std::time::SystemTime::now() + ahead).into();
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(
                    "retry-after",
                    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
                )],
                "rate_limited",
            )
                .into_response()
        }
        Answer::ServerError => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal_error").into_response()
        }
        Answer::InvalidPayload => (StatusCode::BAD_REQUEST, "invalid_payload").into_response(),
        Answer::NoService => (StatusCode::NOT_FOUND, "no_service").into_response(),
        Answer::ChannelNotFound => (StatusCode::NOT_FOUND, "channel_not_found").into_response(),
        Answer::Gone => (StatusCode::GONE, "channel_is_archived").into_response(),
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            (StatusCode::OK, "ok").into_response()
        }
    }
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

pub fn regions(names: &[&str]) -> Vec<Region> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| Region::new(n, 14.0 + i as f64 * 0.1, -16.0))
        .collect()
}

pub fn hot_rule(pending_for: Duration, hysteresis: f64) -> RuleConfig {
    RuleConfig::Threshold {
        name: "hot".into(),
        severity: Severity::Critical,
        metric: "temperature_c".into(),
        region: None,
        above: Some(40.0),
        below: None,
        pending_for,
        hysteresis,
    }
}

pub fn late_rule(late_after: Duration) -> RuleConfig {
    RuleConfig::LateData {
        name: "late_data".into(),
        severity: Severity::Warning,
        late_after: Some(late_after),
        grace: Duration::ZERO,
        pipeline_down: true,
    }
}

/// A configuration for tests: fast delivery settings, the given rules and regions.
pub fn config(
    data_dir: &std::path::Path,
    webhook: Option<&str>,
    rules: Vec<RuleConfig>,
    regions: Vec<Region>,
) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        regions,
        ..Config::default()
    };
    config.http.public_url = Some("http://windsock.test:8080".into());
    config.alerter.rules = rules;
    config.alerter.evaluation_interval = Duration::from_millis(10);
    config.alerter.min_hold = Duration::from_secs(60);
    config.alerter.repeat_interval = Duration::ZERO;
    config.alerter.slack.webhook_url = webhook.map(Secret::new);
    config.alerter.slack.min_interval = Duration::from_millis(5);
    config.alerter.slack.timeout = Duration::from_millis(300);
    config.alerter.slack.backoff_initial = Duration::from_millis(10);
    config.alerter.slack.backoff_max = Duration::from_millis(40);
    config
}

/// A running alerter on an embedded bus and a manual clock, its API served on a local port.
pub struct Harness {
    pub bus: SharedBus,
    pub clock: ManualClock,
    pub api: String,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), windsock_alerter::AlerterError>>,
    pub probe: windsock_alerter::Probe,
    pub http: reqwest::Client,
    /// The alert store (tests make it refuse writes, as a full disk would).
    pub store: Arc<windsock_alerter::store::Store>,
}

impl Harness {
    pub async fn start(config: Config, clock: ManualClock) -> Self {
        let bus: SharedBus = Arc::new(EmbeddedBus::new(&BusConfig::default()));
        Self::start_on(config, clock, bus).await
    }

    pub async fn start_on(config: Config, clock: ManualClock, bus: SharedBus) -> Self {
        let alerter = Alerter::with_clock(Arc::new(config), bus.clone(), Arc::new(clock.clone()))
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let routes = alerter.routes();
        let serve_stop = shutdown.clone();
        tokio::spawn(
            async move { windsock_core::http::serve_on(listener, routes, serve_stop).await },
        );
        let probe = alerter.probe();
        let store = alerter.store();
        let task = tokio::spawn(alerter.run(shutdown.clone()));
        Self {
            bus,
            clock,
            api,
            shutdown,
            task,
            probe,
            http: reqwest::Client::new(),
            store,
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }

    /// Publishes an observation of `region` at the current manual time.
    pub async fn observe(&self, region: &str, temperature_c: f64) {
        let now = windsock_core::clock::Clock::now(&self.clock);
        let observation = Observation {
            region: region.into(),
            observed_at: now,
            fetched_at: now,
            source: "simulated".into(),
            temperature_c,
            ..Default::default()
        };
        publish_event(self.bus.as_ref(), Event::Observation(observation))
            .await
            .unwrap();
    }

    /// Moves the clock and waits for an evaluation that saw the new time (and everything
    /// published before it).
    pub async fn advance(&self, by: Duration) {
        self.clock.advance(chrono::Duration::from_std(by).unwrap());
        self.probe.clone().settled().await;
    }

    /// `method path` on the alerter's API, with the bearer `token` and the JSON `body` if
    /// given: the status and the JSON answer (null when there is none).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.api));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.api))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }
}

/// Polls `check` until it holds (real time, at most `within`).
pub async fn eventually<F: FnMut() -> bool>(within: Duration, what: &str, mut check: F) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
