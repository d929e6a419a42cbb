//! windsock's alerter: rules over observations and forecasts, an alert lifecycle people can
//! trust (pending, firing, resolved; hold and hysteresis; reminders; silences; inhibition),
//! durable state, and Slack delivery through an outbox that neither loses nor duplicates.
//!
//! - [`rules`]: late_data, threshold, forecast_deviation, outlier → findings;
//! - [`engine`]: the lifecycle as a pure state machine (findings + time → changes);
//! - [`store`]: SQLite state in `<data_dir>/alerter/`;
//! - [`slack`]: Block Kit messages and the delivery worker;
//! - [`api`]: `/api/alerts`, `/api/silences`, `/api/rules`, `/api/deliveries`;
//! - [`service`]: [`Alerter`], wiring it all to the bus.

pub mod acknowledge;
pub mod api;
pub mod engine;
mod ownership;
pub mod rule_store;
pub mod rules;
pub mod schedule;
mod service;
pub mod silence;
pub mod slack;
pub mod store;
pub mod wording;

pub use service::{Alerter, AlerterError, Probe};

/// The OpenAPI document of the alerter's routes, from the handlers' own descriptions (the
/// routes [`Alerter::routes`] serves are built from the same ones).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::openapi()
}
