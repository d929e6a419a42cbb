//! What windsock's services share: the events on the bus, the bus itself, configuration,
//! telemetry and the HTTP basics. Depends on none of the services.

pub mod bus;
pub mod clock;
pub mod config;
pub mod event;
pub mod health;
pub mod http;
pub mod secret;
pub mod supervisor;
pub mod telemetry;

pub use bus::{Bus, SharedBus, Topic};
pub use config::Config;
pub use event::{Envelope, Event};
pub use secret::Secret;
pub use tokio_util::sync::CancellationToken;
