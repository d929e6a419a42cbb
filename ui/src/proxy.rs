//! The API reverse proxy of `windsock ui`: each API path belongs to one service, and when
//! that service has a URL configured the request is forwarded there unchanged (method,
//! path, query, body, and the few headers the APIs read), so the browser talks to one
//! origin. In `windsock up` no URL is set and nothing is proxied.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use windsock_core::config::Config;
use windsock_core::http::error_response;
use windsock_core::secret::redact_url;

const FORWARDED_REQUEST_HEADERS: &[HeaderName] = &[
    header::ACCEPT,
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::IF_NONE_MATCH,
];

const FORWARDED_RESPONSE_HEADERS: &[HeaderName] = &[
    header::CONTENT_TYPE,
    header::CACHE_CONTROL,
    header::ETAG,
    header::RETRY_AFTER,
    header::WWW_AUTHENTICATE,
];

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

/// The services' base URLs (where configured) and one HTTP client for all of them.
pub struct Upstreams {
    client: reqwest::Client,
    urls: Vec<(Service, String)>,
    /// The largest request body forwarded: the services' own limit (`http.max_body_bytes`),
    /// so a body the service would refuse is refused here without being sent.
    max_body_bytes: usize,
}

impl Upstreams {
    pub fn from_config(config: &Config) -> Result<Self, reqwest::Error> {
        let configured = [
            (Service::Indexer, &config.indexer.url),
            (Service::Forecaster, &config.forecaster.url),
            (Service::Alerter, &config.alerter.url),
            (Service::Collector, &config.ui.collector_url),
        ];
        let urls = configured
            .into_iter()
            .filter_map(|(service, url)| {
                let url = url.as_deref()?.trim().trim_end_matches('/');
                (!url.is_empty()).then(|| (service, url.to_string()))
            })
            .collect();
        let client = reqwest::Client::builder()
            .timeout(config.ui.proxy_timeout)
            // A redirect is the API's answer to the browser, not something to chase here.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            client,
            urls,
            max_body_bytes: config.http.max_body_bytes,
        })
    }

    pub fn url(&self, service: Service) -> Option<&str> {
        self.urls
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, url)| url.as_str())
    }

    /// The services with a URL, and their URLs.
    pub fn configured(&self) -> impl Iterator<Item = (Service, &str)> {
        self.urls.iter().map(|(s, url)| (*s, url.as_str()))
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Forwards `request` to `service`; an unreachable or slow service is a 502 or 504 with
    /// a JSON body naming it, never a broken page.
    pub async fn forward(&self, service: Service, request: Request) -> Response {
        let Some(base) = self.url(service) else {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the {} API is not available here", service.name()),
                Some(serde_json::json!({
                    "service": service.name(),
                    "hint": format!("set {} to the {} service's URL", service.url_key(), service.name()),
                })),
            );
        };
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
        let mut upstream = self
            .client
            .request(parts.method, format!("{base}{path_and_query}"));
        for name in FORWARDED_REQUEST_HEADERS {
            if let Some(value) = parts.headers.get(name) {
                upstream = upstream.header(name, value);
            }
        }
        if !body.is_empty() {
            upstream = upstream.body(body);
        }
        let answer = match upstream.send().await {
            Ok(answer) => answer,
            Err(err) => return unavailable(service, base, err),
        };
        let status = answer.status();
        let mut headers = axum::http::HeaderMap::new();
        for name in FORWARDED_RESPONSE_HEADERS {
            if let Some(value) = answer.headers().get(name) {
                headers.insert(name, value.clone());
            }
        }
        match answer.bytes().await {
            Ok(bytes) => (status, headers, Body::from(bytes)).into_response(),
            Err(err) => unavailable(service, base, err),
        }
    }
}

fn unavailable(service: Service, base: &str, err: reqwest::Error) -> Response {
    let status = if err.is_timeout() {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    // The URL is shown redacted and the error without its URL: a service URL may carry
    // credentials.
    let reason = err.without_url().to_string();
    tracing::warn!(service = service.name(), url = %redact_url(base), %reason, "API proxy failed");
    error_response(
        status,
        format!("the {} is unavailable", service.name()),
        Some(
            serde_json::json!({ "service": service.name(), "url": redact_url(base), "reason": reason }),
        ),
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
        config.indexer.url = Some("http://127.0.0.1:9".into());
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
