//! Slack: Block Kit messages and their delivery through the outbox.

mod delivery;
pub mod message;

pub use delivery::{classify, Deliverer, Outcome, DELIVERY_SECONDS};
