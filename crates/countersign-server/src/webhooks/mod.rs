//! Webhook notifications: what is announced when a proposal changes state, to which
//! receiving targets, and how it is delivered.
//!
//! A notification is queued in the store's outbox by [`notify`], inside the transaction that
//! changes the proposal's state and appends its audit event, together with a `notified`
//! event naming the targets: it exists exactly when the change committed. The worker that
//! [`crate::run`] spawns delivers it at least once, signed; receivers deduplicate on the
//! notification `id`. There is no ordering guarantee between notifications; `log_index`
//! orders them.
//!
//! One module per concern, each depending only on those before it:
//! - `config`: [`WebhookConfig`], [`Target`], [`DeliverySettings`], [`NotificationKind`] and
//!   the `--webhooks` file;
//! - `audience`: who is told of what, and queuing it ([`notify`], [`announces`]);
//! - `worker`: the delivery loop, signing ([`signature`]), retries, pruning;
//! - `routes`: the delivery log and redelivery over HTTP.
//!
//! Not here: per-target rate limits.

mod audience;
mod config;
mod routes;
mod worker;

pub(crate) use audience::{announces, notify};
pub(crate) use config::DeliveryFile;
pub use config::{DeliverySettings, NotificationKind, Target, WebhookConfig, WebhookConfigError};
pub use routes::router;
pub use worker::signature;
pub(crate) use worker::{WorkerNames, spawn, transport_error};
