//! From a change to a recorded decision: the governed state of a snapshot, the evaluation
//! pipeline (and its offline re-derivation), the `evaluate` JSON wire format and schema,
//! evidence files verified for a change, and the audit record a decision produces.
//!
//! Shared by the binary (`countersign evaluate`, `bundle verify`, `replay`) and the server
//! (proposals), so a decision made either way is recorded and re-derived the same way. It
//! reads git and files through `countersign-repo`, but prints nothing and parses no
//! arguments: rendering and command-line wiring stay in the binary. The decisions
//! themselves are made by `countersign-policy`; the graph and plan by their crates.

pub mod authorship;
pub mod bundle;
pub mod cache;
mod error;
pub mod evaluate;
pub mod evidence;
pub mod governed;
pub mod people;
pub mod policy_change;
pub mod protected;
pub mod record;
pub mod report;
pub mod selfval;
pub mod signature;
pub mod what_if;

pub use error::{DecideError, ErrorKind, Result};
