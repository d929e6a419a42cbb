//! What `/healthz` answers: the state of every supervised service of this process.
//!
//! The supervisor ([`crate::supervisor`]) writes a service's state as it runs, fails and is
//! restarted; `/healthz` reads it. One failing service makes the process *degraded*: a 503,
//! which load balancers and orchestrators understand, with the failing service and its error
//! in the body, while the process keeps serving everything else.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use utoipa::ToSchema;

/// Where a service stands.
// Named for the document, where a bare `State` could be any service's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = ServiceState)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Running, and has been running fine since its last failure (if any).
    Ok,
    /// Its last run failed; it waits out the backoff before it is restarted.
    Failing,
    /// Running again after a failure, not yet for long enough to be called healthy.
    Restarting,
}

/// One service's entry in `/healthz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ServiceHealth {
    pub state: State,
    /// The last failure (its error chain, secrets redacted); kept while it is restarting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Restarts since the process started.
    pub restarts: u64,
    /// Since when it has been in this state.
    pub since: DateTime<Utc>,
    /// When it is restarted next (only while failing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<DateTime<Utc>>,
}

/// The process as a whole: `ok` when every service is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = HealthStatus)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// At least one service is failing or restarting (the answer is then a 503).
    Degraded,
}

/// What `/healthz` answers, with 200 when `status` is `ok` and 503 when it is `degraded`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProcessHealth {
    pub status: Status,
    /// Every supervised service of this process, by name.
    pub services: BTreeMap<String, ServiceHealth>,
}

/// The health of a process's services. Clones share one registry.
#[derive(Clone, Debug, Default)]
pub struct Health {
    services: Arc<RwLock<BTreeMap<String, ServiceHealth>>>,
}

impl Health {
    /// Records `service`'s state, replacing what was there.
    pub fn set(&self, service: &str, health: ServiceHealth) {
        self.services.write().insert(service.to_string(), health);
    }

    pub fn get(&self, service: &str) -> Option<ServiceHealth> {
        self.services.read().get(service).cloned()
    }

    /// Every service, by name.
    pub fn services(&self) -> BTreeMap<String, ServiceHealth> {
        self.services.read().clone()
    }

    /// True when every service is ok (or none is registered).
    pub fn is_ok(&self) -> bool {
        self.services.read().values().all(|s| s.state == State::Ok)
    }

    /// The `/healthz` answer, and 200 or 503.
    pub fn summary(&self) -> (StatusCode, ProcessHealth) {
        let services = self.services();
        let ok = services.values().all(|s| s.state == State::Ok);
        let (status, code) = if ok {
            (Status::Ok, StatusCode::OK)
        } else {
            (Status::Degraded, StatusCode::SERVICE_UNAVAILABLE)
        };
        (code, ProcessHealth { status, services })
    }

    /// [`Self::summary`] as JSON: `{"status": "ok" | "degraded", "services": {...}}`.
    pub fn report(&self) -> (StatusCode, serde_json::Value) {
        let (code, report) = self.summary();
        let body = serde_json::to_value(report).unwrap_or_default();
        (code, body)
    }

    /// The `/healthz` response.
    pub fn response(&self) -> Response {
        let (status, body) = self.summary();
        (status, Json(body)).into_response()
    }
}

static GLOBAL: OnceLock<Health> = OnceLock::new();

/// The process's registry, the one `/healthz` answers from.
pub fn global() -> &'static Health {
    GLOBAL.get_or_init(Health::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(state: State) -> ServiceHealth {
        ServiceHealth {
            state,
            error: (state != State::Ok).then(|| "index: disk full".to_string()),
            restarts: 3,
            since: Utc::now(),
            next_attempt: None,
        }
    }

    #[test]
    fn all_ok_is_200_and_one_failing_service_is_a_503_that_names_it() {
        let health = Health::default();
        let (status, body) = health.report();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["services"], serde_json::json!({}));

        health.set("alerter", entry(State::Ok));
        health.set("indexer", entry(State::Ok));
        assert_eq!(health.report().0, StatusCode::OK);

        health.set("indexer", entry(State::Failing));
        let (status, body) = health.report();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "degraded");
        assert_eq!(body["services"]["indexer"]["state"], "failing");
        assert_eq!(body["services"]["indexer"]["error"], "index: disk full");
        assert_eq!(body["services"]["indexer"]["restarts"], 3);
        assert_eq!(body["services"]["alerter"]["state"], "ok");
        assert!(body["services"]["alerter"].get("error").is_none());

        health.set("indexer", entry(State::Restarting));
        assert_eq!(health.report().0, StatusCode::SERVICE_UNAVAILABLE);
        health.set("indexer", entry(State::Ok));
        assert!(health.is_ok());
    }
}
