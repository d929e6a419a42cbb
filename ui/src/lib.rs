//! windsock's web UI: a search page in the spirit of Kibana Discover, region pages with
//! observed and forecast temperatures, alerts and silences, and service health.
//!
//! Every asset (hand-written HTML, CSS and JavaScript modules) is embedded in the binary
//! ([`assets`]), so the UI works offline. In `windsock up` every API lives in the same
//! process and the UI only serves pages; in `windsock ui` it also reverse-proxies the APIs
//! to the services' configured URLs ([`proxy`]), so the browser talks to one origin.

pub mod assets;
mod health;
pub mod prometheus;
pub mod proxy;
mod routes;

use std::sync::Arc;
use windsock_core::config::Config;
use windsock_core::{CancellationToken, SharedBus};

/// The OpenAPI description of the UI's own routes (`/_ui/health`), for the merged document.
/// The pages and assets are not an API and are not in it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::openapi()
}

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("could not build the HTTP client for the API proxy: {0}")]
    Client(#[source] reqwest::Error),
}

/// The web UI service.
pub struct Ui {
    state: routes::AppState,
}

impl Ui {
    /// Prepares the pages and, where services have URLs configured, the API proxy.
    /// The bus is not used: every page reads the services' HTTP APIs.
    pub async fn new(config: Arc<Config>, _bus: SharedBus) -> Result<Self, UiError> {
        Self::from_config(&config)
    }

    /// As [`Ui::new`], without a bus (the UI does not consume one).
    pub fn from_config(config: &Config) -> Result<Self, UiError> {
        let upstreams = proxy::Upstreams::from_config(config).map_err(UiError::Client)?;
        Ok(Self {
            state: routes::AppState::new(config, upstreams),
        })
    }

    /// `/`, the pages, `/assets/*`, `/_ui/health`, and a fallback that serves the page for
    /// any other path outside the APIs (or proxies the APIs when URLs are configured).
    /// Merge it last: it owns the fallback.
    pub fn routes(&self) -> axum::Router {
        routes::router(self.state.clone())
    }

    /// The UI has no background work: it waits for shutdown. (It borrows nothing, so the
    /// supervisor can run it again from the same instance, whose routes are mounted.)
    pub fn run(
        &self,
        shutdown: CancellationToken,
    ) -> impl std::future::Future<Output = Result<(), UiError>> + Send + 'static {
        async move {
            shutdown.cancelled().await;
            Ok(())
        }
    }
}
