//! A real HTTP server on 127.0.0.1 that answers like OpenWeatherMap or Open-Meteo, as the
//! test scripts it, and records every request.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{Response, StatusCode, Uri};
use axum::Router;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub query: HashMap<String, String>,
    pub at: Instant,
    /// How many requests for the same path and coordinates came before this one.
    pub nth: usize,
}

impl Request {
    pub fn lat(&self) -> f64 {
        let lat = self.query.get("lat").or_else(|| self.query.get("latitude"));
        lat.and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
    }
    pub fn lon(&self) -> f64 {
        let lon = self
            .query
            .get("lon")
            .or_else(|| self.query.get("longitude"));
        lon.and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
    }
}

pub enum Reply {
    Json {
        status: u16,
        body: Value,
        retry_after: Option<String>,
    },
    Text {
        status: u16,
        body: String,
    },
    /// Answers 200 after this long (longer than the client's timeout).
    Hang(Duration),
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Reply::Json {
            status: 200,
            body,
            retry_after: None,
        }
    }
    pub fn status(status: u16, body: Value) -> Self {
        Reply::Json {
            status,
            body,
            retry_after: None,
        }
    }
}

type Responder = dyn Fn(&Request) -> Reply + Send + Sync;

struct FakeState {
    responder: Box<Responder>,
    requests: Mutex<Vec<Request>>,
}

pub struct FakeApi {
    pub base: String,
    state: Arc<FakeState>,
    stop: CancellationToken,
}

impl FakeApi {
    pub async fn start(responder: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let state = Arc::new(FakeState {
            responder: Box::new(responder),
            requests: Mutex::new(Vec::new()),
        });
        let router = Router::new().fallback(answer).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await
                .unwrap();
        });
        Self { base, state, stop }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn answer(
    State(state): State<Arc<FakeState>>,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Response<Body> {
    let request = {
        let mut requests = state.requests.lock();
        let path = uri.path().to_string();
        let same = |r: &Request| {
            r.path == path
                && r.query.get("lat").or(r.query.get("latitude"))
                    == query.get("lat").or(query.get("latitude"))
                && r.query.get("lon").or(r.query.get("longitude"))
                    == query.get("lon").or(query.get("longitude"))
        };
        let nth = requests.iter().filter(|r| same(r)).count();
        let request = Request {
            path,
            query,
            at: Instant::now(),
            nth,
        };
        requests.push(request.clone());
        request
    };
    match (state.responder)(&request) {
        Reply::Json {
            status,
            body,
            retry_after,
        } => {
            let mut response = Response::builder()
                .status(StatusCode::from_u16(status).unwrap())
                .header("content-type", "application/json; charset=utf-8");
            if let Some(value) = retry_after {
                response = response.header("retry-after", value);
            }
            response.body(Body::from(body.to_string())).unwrap()
        }
        Reply::Text { status, body } => Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .header("content-type", "application/json; charset=utf-8")
            .body(Body::from(body))
            .unwrap(),
        Reply::Hang(wait) => {
            tokio::time::sleep(wait).await;
            Response::builder()
                .status(200)
                .body(Body::from("{}"))
                .unwrap()
        }
    }
}
