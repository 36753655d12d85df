//! The system graph: what exists, who owns it, how it depends on what, and which files
//! belong to it.
//!
//! This crate reads no files itself: importers take bytes from a [`FileSource`].
//! It does not decide anything either; [`Impact`] is facts, and countersign-policy judges them.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::panic))]

pub mod backstage;
pub mod check;
pub mod codeowners;
pub mod diagnostic;
pub mod entity_ref;
pub mod error;
pub mod graph;
pub mod impact;
pub mod limits;
pub mod model;
pub mod render;
pub mod repo_path;
pub mod settings;
pub mod source;
pub mod synthetic;
pub mod workspace;
pub mod yaml;

pub use diagnostic::{Diagnostic, DiagnosticCode, Severity};
pub use error::GraphError;
pub use graph::{BuildOutput, Edge, EdgeKind, SystemGraph, build};
pub use impact::impact;
pub use impact::{Chain, DevDependent, Impact, ReachedNode, TouchedNode};
pub use limits::Limits;
pub use model::{
    Criticality, EntityRef, Exposure, Kind, Node, NodeId, SourceLocation, Surface, UnknownKeyword,
};
pub use settings::GraphSettings;
pub use source::{FileSource, MemorySource, RecordingSource, SourceError};
