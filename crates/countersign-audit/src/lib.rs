//! Tamper-evident audit core: the Merkle log math (RFC 6962 / RFC 9162), C2SP signed notes and
//! checkpoints, canonical audit events (RFC 8785) and whole-log verification.
//!
//! Pure: no file, network, clock or randomness. Callers pass times, key seeds and a
//! [`TreeStore`] for stored hashes; persistence lives in countersign-store and the commands
//! in the binary. The bundle format and its offline checks are here; assembling one from
//! storage is countersign-store's, re-deriving its decision countersign-decide's.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::panic))]

pub mod bundle;
pub mod canonical;
pub mod checkpoint;
pub mod event;
pub mod log;
pub mod merkle;
pub mod note;

pub use bundle::{
    Bundle, BundleEntry, BundleError, FINDING_BUNDLE_FORMAT, FindingBundle, VerifiedBundle,
    verify_bundle,
};
pub use canonical::{CanonicalError, canonicalize};
pub use checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint};
pub use event::{Event, EventError, EventKind, leaf_bytes};
pub use log::{LogError, VerifiedLog, verify_log};
pub use merkle::{
    ConsistencyProof, Hash, InclusionProof, MemoryStore, ProveError, StoreError, TreeStore,
    VerifyError, leaf_hash, prove_consistency, prove_inclusion, tree_hash,
};
pub use note::{KeyError, Note, NoteError, Signer, Verifier};
