//! The API reverse proxy of `windsock ui`: each API path belongs to one service, and when
//! that service has a URL configured the request is forwarded there unchanged (method,
//! path, query, body, and the few headers the APIs read), so the browser talks to one
//! origin. In `windsock up` no URL is set and nothing is proxied.
//!
//! The indexer may have several replicas (`indexer.url` lists them), each with every event
//! in its own index: a request goes to the first that is not skipped, and one that fails
//! (no connection, a timeout, a 5xx) is skipped for a backoff that grows while it keeps
//! failing, then tried again. Each move to the next replica is counted in
//! `windsock_proxy_failovers_total{service}`.
//!
//! `/api/export` (hundreds of MB at most) is streamed through as the indexer sends it rather
//! than read into memory first; its time is bounded per read, not as a whole.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use windsock_core::config::Config;
use windsock_core::http::error_response;
use windsock_core::secret::redact_url;
use windsock_core::telemetry;

const FORWARDED_REQUEST_HEADERS: &[HeaderName] = &[
    header::ACCEPT,
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::IF_NONE_MATCH,
];

static FORWARDED_RESPONSE_HEADERS: [HeaderName; 8] = [
    header::CONTENT_TYPE,
    header::CACHE_CONTROL,
    header::ETAG,
    header::RETRY_AFTER,
    header::WWW_AUTHENTICATE,
    // The export's: the file name to save it under, and how many events matched and
    // whether it was cut.
    header::CONTENT_DISPOSITION,
    HeaderName::from_static("x-windsock-export-total"),
    HeaderName::from_static("x-windsock-export-truncated"),
];

/// The paths whose answer is streamed through rather than read whole: the export, whose size
/// is bounded by `indexer.max_export_events`, not by what fits in memory here.
const STREAMED_PREFIXES: &[&str] = &["/api/export"];

fn is_streamed(path: &str) -> bool {
    STREAMED_PREFIXES.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// A service whose API the UI reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Indexer,
    Forecaster,
    Alerter,
    Collector,
}

impl Service {
    pub const ALL: [Service; 4] = [
        Service::Indexer,
        Service::Forecaster,
        Service::Alerter,
        Service::Collector,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Indexer => "indexer",
            Service::Forecaster => "forecaster",
            Service::Alerter => "alerter",
            Service::Collector => "collector",
        }
    }

    /// The configuration key that sets this service's URL, for error messages.
    pub fn url_key(self) -> &'static str {
        match self {
            Service::Indexer => "indexer.url",
            Service::Forecaster => "forecaster.url",
            Service::Alerter => "alerter.url",
            Service::Collector => "ui.collector_url",
        }
    }
}

/// The service that serves `path`, by the route prefixes each service owns.
pub fn service_for(path: &str) -> Option<Service> {
    const PREFIXES: &[(&str, Service)] = &[
        ("/api/search", Service::Indexer),
        ("/api/events", Service::Indexer),
        ("/api/regions", Service::Indexer),
        ("/api/aggregate", Service::Indexer),
        ("/api/daily", Service::Indexer),
        ("/api/export", Service::Indexer),
        ("/api/saved-searches", Service::Indexer),
        ("/api/forecast", Service::Forecaster),
        ("/predict", Service::Forecaster),
        ("/api/alerts", Service::Alerter),
        ("/api/silences", Service::Alerter),
        ("/api/rules", Service::Alerter),
        ("/api/deliveries", Service::Alerter),
        ("/api/collector", Service::Collector),
    ];
    PREFIXES.iter().find_map(|(prefix, service)| {
        let rest = path.strip_prefix(prefix)?;
        (rest.is_empty() || rest.starts_with('/')).then_some(*service)
    })
}

/// How long a replica that failed is first skipped; each failure in a row doubles it (with
/// jitter), up to [`REPLICA_SKIP_MAX`]. A success starts it over.
pub const REPLICA_SKIP_MIN: Duration = Duration::from_secs(1);
pub const REPLICA_SKIP_MAX: Duration = Duration::from_secs(30);
/// The longest wait for a connection to one replica: a replica whose host is gone (no
/// refusal, just silence) must not take the whole `ui.proxy_timeout` from the next one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// One URL of a service, with what its recent failures say.
struct Replica {
    url: String,
    state: Mutex<ReplicaState>,
}

#[derive(Default)]
struct ReplicaState {
    /// Until when requests go to the other replicas first.
    skip_until: Option<Instant>,
    /// The skip periods of the failures in a row so far (none since the last success).
    backoff: Option<ExponentialBackoff>,
}

impl Replica {
    fn skipped_until(&self, now: Instant) -> Option<Instant> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.skip_until.filter(|until| *until > now)
    }

    fn succeeded(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state = ReplicaState::default();
    }

    /// Skips this replica for the next period of its backoff.
    fn failed(&self, skip: &ExponentialBuilder) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let backoff = state.backoff.get_or_insert_with(|| skip.build());
        let period = backoff.next().unwrap_or(REPLICA_SKIP_MAX);
        state.skip_until = Some(Instant::now() + period);
    }
}

/// Why one replica did not give the answer.
enum Failure {
    /// No answer: no connection, a timeout, a broken body.
    Unreachable(reqwest::Error),
    /// No answer's head within the time left (a streamed request, whose client has no
    /// overall timeout).
    TimedOut,
    /// A 5xx answer, kept: when no replica does better, it is the answer.
    ServerError(Response),
}

/// The services' base URLs (where configured; the indexer's may list replicas) and one HTTP
/// client for all of them.
pub struct Upstreams {
    client: reqwest::Client,
    /// The client of the streamed paths: no overall timeout (an export may take longer than
    /// `ui.proxy_timeout` to flow through), but each read waits at most that long.
    streaming_client: reqwest::Client,
    services: Vec<(Service, Vec<Replica>)>,
    /// The largest request body forwarded: the services' own limit (`http.max_body_bytes`),
    /// so a body the service would refuse is refused here without being sent.
    max_body_bytes: usize,
    /// How long one request may take over every replica tried (`ui.proxy_timeout`).
    timeout: Duration,
    /// How long a failed replica is skipped.
    skip: ExponentialBuilder,
}

impl Upstreams {
    pub fn from_config(config: &Config) -> Result<Self, reqwest::Error> {
        let one = |url: &Option<String>| url.iter().cloned().collect::<Vec<_>>();
        let configured = [
            (Service::Indexer, config.indexer.url.clone()),
            (Service::Forecaster, one(&config.forecaster.url)),
            (Service::Alerter, one(&config.alerter.url)),
            (Service::Collector, one(&config.ui.collector_url)),
        ];
        let services: Vec<(Service, Vec<Replica>)> = configured
            .into_iter()
            .map(|(service, urls)| {
                let replicas = urls
                    .iter()
                    .map(|url| url.trim().trim_end_matches('/'))
                    .filter(|url| !url.is_empty())
                    .map(|url| Replica {
                        url: url.to_string(),
                        state: Mutex::default(),
                    })
                    .collect::<Vec<_>>();
                (service, replicas)
            })
            .filter(|(_, replicas)| !replicas.is_empty())
            .collect();
        for (service, _) in &services {
            // Listed at zero, so rate() sees every proxied service before its first failover.
            telemetry::proxy_failovers(service.name()).increment(0);
        }
        let client = reqwest::Client::builder()
            .timeout(config.ui.proxy_timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(config.ui.proxy_timeout))
            // A redirect is the API's answer to the browser, not something to chase here.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let streaming_client = reqwest::Client::builder()
            .read_timeout(config.ui.proxy_timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(config.ui.proxy_timeout))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            client,
            streaming_client,
            services,
            max_body_bytes: config.http.max_body_bytes,
            timeout: config.ui.proxy_timeout,
            skip: ExponentialBuilder::default()
                .with_min_delay(REPLICA_SKIP_MIN)
                .with_max_delay(REPLICA_SKIP_MAX)
                .with_factor(2.0)
                .with_jitter()
                .without_max_times(),
        })
    }

    /// How long a replica that failed is skipped: from `min`, doubling with each failure in
    /// a row, up to `max` (default 1 s to 30 s; tests scale it down).
    pub fn replica_skip(mut self, min: Duration, max: Duration) -> Self {
        self.skip = self.skip.with_min_delay(min).with_max_delay(max);
        self
    }

    fn replicas(&self, service: Service) -> &[Replica] {
        self.services
            .iter()
            .find(|(s, _)| *s == service)
            .map_or(&[], |(_, replicas)| replicas.as_slice())
    }

    /// The first URL of `service`, when it has one.
    pub fn url(&self, service: Service) -> Option<&str> {
        self.replicas(service).first().map(|r| r.url.as_str())
    }

    /// The services with a URL, each once, with its first URL.
    pub fn configured(&self) -> impl Iterator<Item = (Service, &str)> {
        self.services
            .iter()
            .filter_map(|(s, replicas)| Some((*s, replicas.first()?.url.as_str())))
    }

    /// Every URL of every service (each replica of the indexer), in the configured order.
    pub fn every_url(&self) -> impl Iterator<Item = (Service, &str)> {
        self.services
            .iter()
            .flat_map(|(s, replicas)| replicas.iter().map(move |r| (*s, r.url.as_str())))
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The replicas of `service` in the order to try them: those not skipped, as configured,
    /// then the skipped ones, the one whose skip ends first first (when every replica failed
    /// lately, trying one is better than answering 502 without trying).
    fn order(&self, service: Service) -> Vec<&Replica> {
        let now = Instant::now();
        let mut ready = Vec::new();
        let mut skipped = Vec::new();
        for replica in self.replicas(service) {
            match replica.skipped_until(now) {
                None => ready.push(replica),
                Some(until) => skipped.push((until, replica)),
            }
        }
        skipped.sort_by_key(|(until, _)| *until);
        ready.extend(skipped.into_iter().map(|(_, replica)| replica));
        ready
    }

    /// Forwards `request` to `service`. When the service has several replicas, one that
    /// does not answer (no connection, a timeout) or answers 5xx is skipped for a while and
    /// the next one is asked; a 4xx is the answer. A write (POST, PUT, DELETE) goes to the
    /// next replica only when it was not sent (no connection). An unreachable or
    /// slow service is a 502 or 504 with a JSON body naming it, never a broken page.
    pub async fn forward(&self, service: Service, request: Request) -> Response {
        let replicas = self.order(service);
        if replicas.is_empty() {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the {} API is not available here", service.name()),
                Some(serde_json::json!({
                    "service": service.name(),
                    "hint": format!("set {} to the {} service's URL", service.url_key(), service.name()),
                })),
            );
        }
        let (parts, body) = request.into_parts();
        let body = match axum::body::to_bytes(body, self.max_body_bytes).await {
            Ok(body) => body,
            Err(_) => {
                return error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the request body is over the limit of {} bytes",
                        self.max_body_bytes
                    ),
                    Some(serde_json::json!({ "limit_bytes": self.max_body_bytes })),
                )
            }
        };
        let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let streamed = is_streamed(parts.uri.path());
        let deadline = Instant::now() + self.timeout;
        // The last 5xx answer (the service's own words, given when no replica does better)
        // and the last replica that did not answer.
        let mut last_answer = None;
        let mut last_unreachable = None;
        for (attempt, replica) in replicas.iter().enumerate() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            if attempt > 0 {
                telemetry::proxy_failovers(service.name()).increment(1);
            }
            let url = format!("{}{path_and_query}", replica.url);
            let mut upstream = if streamed {
                self.streaming_client.request(parts.method.clone(), url)
            } else {
                self.client
                    .request(parts.method.clone(), url)
                    .timeout(remaining)
            };
            for name in FORWARDED_REQUEST_HEADERS {
                if let Some(value) = parts.headers.get(name) {
                    upstream = upstream.header(name, value);
                }
            }
            if !body.is_empty() {
                upstream = upstream.body(body.clone());
            }
            let failure = match self.send(upstream, streamed, remaining).await {
                Ok(answer) => {
                    replica.succeeded();
                    return answer;
                }
                Err(failure) => failure,
            };
            replica.failed(&self.skip);
            let (sent, reason) = match &failure {
                // A request with no connection was never sent; a timeout may have been.
                Failure::Unreachable(err) => (!err.is_connect(), reason(err)),
                Failure::ServerError(answer) => (true, answer.status().to_string()),
                Failure::TimedOut => (true, "timed out".to_string()),
            };
            tracing::warn!(
                service = service.name(),
                url = %redact_url(&replica.url),
                %reason,
                replicas = replicas.len(),
                "API proxy: a replica failed"
            );
            match failure {
                Failure::ServerError(answer) => last_answer = Some(answer),
                Failure::Unreachable(err) => last_unreachable = Some((*replica, err)),
                // Answered below as a 504 when no other replica does better.
                Failure::TimedOut => {}
            }
            // Only a read is asked again: a write (POST, PUT, DELETE) the replica received may
            // have been done there, and the next one would do it a second time (or answer
            // for a saved search it never had).
            if sent && !parts.method.is_safe() {
                break;
            }
        }
        match (last_answer, last_unreachable) {
            (Some(answer), _) => answer,
            (None, Some((replica, err))) => unavailable(service, &replica.url, replicas.len(), err),
            (None, None) => error_response(
                StatusCode::GATEWAY_TIMEOUT,
                format!("the {} is unavailable", service.name()),
                Some(serde_json::json!({ "service": service.name(), "reason": "timed out" })),
            ),
        }
    }

    /// Sends one attempt; a 5xx or a broken body is a failure. A streamed answer that is not
    /// a 5xx is given as it arrives: a failure in its body then cuts the connection to the
    /// browser (it cannot move to another replica once begun).
    async fn send(
        &self,
        upstream: reqwest::RequestBuilder,
        streamed: bool,
        remaining: Duration,
    ) -> Result<Response, Failure> {
        let answer = if streamed {
            tokio::time::timeout(remaining, upstream.send())
                .await
                .map_err(|_| Failure::TimedOut)?
        } else {
            upstream.send().await
        }
        .map_err(Failure::Unreachable)?;
        let status = answer.status();
        let mut headers = axum::http::HeaderMap::new();
        for name in &FORWARDED_RESPONSE_HEADERS {
            if let Some(value) = answer.headers().get(name) {
                headers.insert(name, value.clone());
            }
        }
        if streamed && !status.is_server_error() {
            let chunks = futures::stream::try_unfold(answer, |mut answer| async move {
                Ok::<_, reqwest::Error>(answer.chunk().await?.map(|chunk| (chunk, answer)))
            });
            return Ok((status, headers, Body::from_stream(chunks)).into_response());
        }
        let bytes = if streamed {
            // A 5xx's body is a short error, read whole within the time left.
            tokio::time::timeout(remaining, answer.bytes())
                .await
                .map_err(|_| Failure::TimedOut)?
        } else {
            answer.bytes().await
        }
        .map_err(Failure::Unreachable)?;
        let response = (status, headers, Body::from(bytes)).into_response();
        if status.is_server_error() {
            Err(Failure::ServerError(response))
        } else {
            Ok(response)
        }
    }
}

/// What went wrong, with its causes (`error sending request` alone does not say that the
/// connection was refused), and without the URL (a service URL may carry credentials).
fn reason(err: &reqwest::Error) -> String {
    let mut reason = err.to_string();
    if let Some(url) = err.url() {
        reason = reason.replace(&format!(" for url ({url})"), "");
    }
    let mut cause = std::error::Error::source(err);
    while let Some(error) = cause {
        let text = error.to_string();
        if !reason.ends_with(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        cause = error.source();
    }
    reason
}

fn unavailable(service: Service, base: &str, tried: usize, err: reqwest::Error) -> Response {
    let status = if err.is_timeout() {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    // The URL is shown redacted and the error without its URL: a service URL may carry
    // credentials.
    let reason = reason(&err);
    error_response(
        status,
        format!("the {} is unavailable", service.name()),
        Some(serde_json::json!({
            "service": service.name(),
            "url": redact_url(base),
            "reason": reason,
            "replicas_tried": tried,
        })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_api_path_belongs_to_its_service() {
        assert_eq!(service_for("/api/search"), Some(Service::Indexer));
        assert_eq!(
            service_for("/api/events/abc/context"),
            Some(Service::Indexer)
        );
        assert_eq!(service_for("/api/regions"), Some(Service::Indexer));
        for path in [
            "/api/aggregate",
            "/api/daily",
            "/api/export",
            "/api/saved-searches",
            "/api/saved-searches/7",
        ] {
            assert_eq!(service_for(path), Some(Service::Indexer), "{path}");
        }
        assert!(is_streamed("/api/export"));
        assert!(!is_streamed("/api/exports"));
        assert!(!is_streamed("/api/search"));
        assert_eq!(
            service_for("/api/forecast/Dakar"),
            Some(Service::Forecaster)
        );
        assert_eq!(service_for("/predict"), Some(Service::Forecaster));
        assert_eq!(service_for("/predict/"), Some(Service::Forecaster));
        assert_eq!(
            service_for("/api/openapi.json"),
            None,
            "the document is the process's own (every service's parts merged), not one service's"
        );
        assert_eq!(service_for("/api/alerts/x/history"), Some(Service::Alerter));
        assert_eq!(service_for("/api/silences/1"), Some(Service::Alerter));
        assert_eq!(service_for("/api/deliveries"), Some(Service::Alerter));
        assert_eq!(
            service_for("/api/collector/status"),
            Some(Service::Collector)
        );
        assert_eq!(
            service_for("/api/searchable"),
            None,
            "a prefix must end at a segment"
        );
        assert_eq!(service_for("/regions/Dakar"), None, "pages are not APIs");
        assert_eq!(service_for("/api/unknown"), None);
    }

    #[tokio::test]
    async fn a_body_over_the_configured_limit_is_refused_without_being_sent() {
        let mut config = Config::default();
        // Nothing listens there: the body must be refused before any connection is tried.
        config.indexer.url = vec!["http://127.0.0.1:9".into()];
        config.http.max_body_bytes = 1024;
        let upstreams = Upstreams::from_config(&config).unwrap();
        let request = Request::post("/api/search")
            .body(Body::from(vec![b'x'; 1025]))
            .unwrap();
        let response = upstreams.forward(Service::Indexer, request).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["detail"]["limit_bytes"], 1024);
    }
}
