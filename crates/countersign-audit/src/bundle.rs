//! Audit bundles: one self-contained file holding a proposal's log entries with their
//! inclusion proofs, a signed checkpoint, and the content-addressed blobs (graph inputs,
//! policy files, evidence envelopes) its events refer to.
//!
//! This module checks everything that can be checked without knowing what a decision is:
//! the checkpoint's signature, each entry's inclusion under it, each event's canonical form
//! and subject, each blob's digest, and completeness: every event names the log index of the
//! previous entry about the same subject (`prev`, `null` for the first), so the entries of a
//! bundle must form one unbroken chain from the subject's first entry. An entry removed from
//! the middle or the start breaks it; a bundle of events written before the chain existed
//! cannot be shown complete and is refused. Re-deriving the decision from the verified events
//! and blobs is the caller's job (it needs the graph and policy crates), and it runs only on
//! the [`VerifiedBundle`] this module returns.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint};
use crate::event::{Event, EventError};
use crate::merkle::{Hash, InclusionProof, VerifyError, leaf_hash};
use crate::note::Verifier;

/// The `format` of every bundle; bumped on any incompatible change.
pub const BUNDLE_FORMAT: &str = "https://countersign.dev/bundle/v1";

/// The file format of a bundle (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Always [`BUNDLE_FORMAT`].
    pub format: String,
    /// The proposal every entry is about.
    pub subject: String,
    /// The signed checkpoint (a C2SP signed note) every proof leads to.
    pub checkpoint: String,
    /// The proposal's log entries, in log order.
    pub entries: Vec<BundleEntry>,
    /// Content the events refer to, by lower-case hex SHA-256, base64-encoded.
    pub blobs: BTreeMap<String, String>,
}

/// One log entry with its proof of inclusion under the bundle's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleEntry {
    pub index: u64,
    /// The leaf: the event's canonical JSON (RFC 8785), as text.
    pub leaf: String,
    /// Sibling hashes from the leaf up, base64.
    pub proof: Vec<String>,
}

/// A bundle whose signature, proofs and digests all checked out.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    pub subject: String,
    pub checkpoint: Checkpoint,
    /// Each verified entry's index and event, in bundle order.
    pub events: Vec<(u64, Event)>,
    /// Blob contents by hex SHA-256, each matching its digest.
    pub blobs: BTreeMap<String, Vec<u8>>,
}

/// Why a bundle was refused. Each names the part at fault.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("not a bundle: {0}")]
    Malformed(String),
    #[error("unsupported bundle format {found:?} (expected {BUNDLE_FORMAT})")]
    Format { found: String },
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("entry {position} (log index {index}): {reason}")]
    Entry {
        position: usize,
        index: u64,
        reason: String,
    },
    #[error(
        "entry {position} (log index {index}) is not included in the checkpoint of size {size}: {source}"
    )]
    NotIncluded {
        position: usize,
        index: u64,
        size: u64,
        source: VerifyError,
    },
    #[error("blob {digest}: {reason}")]
    Blob { digest: String, reason: String },
    #[error("the bundle holds no log entry")]
    Empty,
    /// Entries about the subject are missing, or the bundle cannot show that none is.
    #[error("the bundle is incomplete: {0}")]
    Incomplete(String),
}

/// Lower-case hex SHA-256: how blobs are addressed.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Bytes with their [`digest`], hashed once where they are made: a record names its blobs
/// by digest and the store files them by it, and hashing the base's catalog twice per
/// decision was the largest single cost of one under callgrind (docs/benchmarks.md). Only
/// [`Blob::new`] makes one, so the digest is always the bytes'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    digest: String,
    bytes: Vec<u8>,
}

impl Blob {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self {
            digest: digest(&bytes),
            bytes,
        }
    }

    /// Its lower-case hex SHA-256.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The digests of the blobs `event` refers to, which a bundle must carry: the governed files
/// a decision read (`inputs`, an object of path → digest or `null`), the accepted evidence
/// envelopes (`evidence`, a list), the signed authorization statement
/// (`verification_summary`), as countersign-decide records them, and the envelope of an
/// `evidence_accepted` event (`envelope`; a refused envelope is not stored, its event only
/// names its digest), and a finding event's envelope and the config it was verified against
/// (`evidence`/`verification` → `envelope`, `config`). Other fields never name blobs.
pub fn referenced_blobs(event: &Event) -> Vec<String> {
    use serde_json::Value;
    let mut digests = Vec::new();
    if event.kind == crate::event::EventKind::EvidenceAccepted
        && let Some(d) = event.data.get("envelope").and_then(Value::as_str)
    {
        digests.push(d.to_owned());
    }
    if let Some(inputs) = event.data.get("inputs").and_then(Value::as_object) {
        digests.extend(inputs.values().filter_map(Value::as_str).map(str::to_owned));
    }
    if let Some(d) = event
        .data
        .get("verification_summary")
        .and_then(Value::as_str)
    {
        digests.push(d.to_owned());
    }
    if let Some(evidence) = event.data.get("evidence").and_then(Value::as_array) {
        digests.extend(evidence.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    // The failing evidence of a finding's observation, and the evidence a fix was verified
    // (or the finding reopened) by, each with the `countersign.toml` of the run's commit it
    // was verified against.
    if matches!(
        event.kind,
        crate::event::EventKind::FindingOpened
            | crate::event::EventKind::FindingObserved
            | crate::event::EventKind::FindingVerified
            | crate::event::EventKind::FindingReopened
    ) {
        for part in ["evidence", "verification"] {
            for field in ["envelope", "config"] {
                if let Some(d) = event
                    .data
                    .get(part)
                    .and_then(|p| p.get(field))
                    .and_then(Value::as_str)
                {
                    digests.push(d.to_owned());
                }
            }
        }
    }
    // The raw commit objects a decision's authorship was read from.
    if let Some(commits) = event
        .data
        .get("authorship")
        .and_then(|a| a.get("commits"))
        .and_then(Value::as_array)
    {
        digests.extend(
            commits
                .iter()
                .filter_map(|c| c.get("object").and_then(Value::as_str))
                .map(str::to_owned),
        );
    }
    digests
}

/// The `format` of a finding's bundle.
pub const FINDING_BUNDLE_FORMAT: &str = "https://countersign.dev/finding-bundle/v1";

/// The whole loop of one finding, as one file: the finding's own bundle (its entries,
/// opened to verified or reopened, with the failing and verifying envelopes as blobs) and
/// the bundle of each proposal linked to it as a fix (its decision, evidence and
/// approvals). Each part is a [`Bundle`] verified on its own; how they fit together is the
/// caller's to check (countersign-decide's `bundle::verify_finding`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingBundle {
    /// Always [`FINDING_BUNDLE_FORMAT`].
    pub format: String,
    /// The finding's id (`F-…`): the subject of `finding`.
    pub id: String,
    pub finding: Bundle,
    /// The bundles of the proposals linked to it, by the order they were linked.
    pub fixes: Vec<Bundle>,
}

impl FindingBundle {
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, numbers and maps of strings: serializing cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses a finding bundle's JSON (unverified: verify each part with [`verify_bundle`]).
    pub fn parse(bytes: &[u8]) -> Result<FindingBundle, BundleError> {
        let bundle: FindingBundle =
            serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed(e.to_string()))?;
        if bundle.format != FINDING_BUNDLE_FORMAT {
            return Err(BundleError::Format {
                found: bundle.format,
            });
        }
        Ok(bundle)
    }
}

/// The `format` field of a bundle file, whichever kind it is.
pub fn format_of(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Format {
        format: String,
    }
    serde_json::from_slice::<Format>(bytes)
        .ok()
        .map(|f| f.format)
}

impl Bundle {
    /// Encodes `blobs` (raw contents) and assembles a bundle. Proofs are given as hashes.
    pub fn new(
        subject: String,
        checkpoint: String,
        entries: Vec<(u64, Vec<u8>, Vec<Hash>)>,
        blobs: impl IntoIterator<Item = Vec<u8>>,
    ) -> Result<Bundle, BundleError> {
        let entries = entries
            .into_iter()
            .enumerate()
            .map(|(position, (index, leaf, proof))| {
                let leaf = String::from_utf8(leaf).map_err(|_| BundleError::Entry {
                    position,
                    index,
                    reason: "the leaf is not UTF-8 JSON".into(),
                })?;
                Ok(BundleEntry {
                    index,
                    leaf,
                    proof: proof.iter().map(Hash::to_base64).collect(),
                })
            })
            .collect::<Result<Vec<_>, BundleError>>()?;
        Ok(Bundle {
            format: BUNDLE_FORMAT.to_string(),
            subject,
            checkpoint,
            entries,
            blobs: blobs
                .into_iter()
                .map(|b| (digest(&b), STANDARD.encode(&b)))
                .collect(),
        })
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A bundle is strings, numbers and maps of strings: serializing cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// Parses and verifies a bundle against the trusted log keys.
pub fn verify_bundle(bytes: &[u8], verifiers: &[Verifier]) -> Result<VerifiedBundle, BundleError> {
    let bundle: Bundle = serde_json::from_slice(bytes).map_err(|e| {
        BundleError::Malformed(if e.is_eof() {
            format!(
                "the file is truncated (line {}, column {})",
                e.line(),
                e.column()
            )
        } else {
            e.to_string()
        })
    })?;
    if bundle.format != BUNDLE_FORMAT {
        return Err(BundleError::Format {
            found: bundle.format,
        });
    }
    let signed = SignedCheckpoint::open(bundle.checkpoint.as_bytes(), verifiers)?;
    let checkpoint = signed.checkpoint;
    if bundle.entries.is_empty() {
        return Err(BundleError::Empty);
    }
    let mut events = Vec::with_capacity(bundle.entries.len());
    for (position, entry) in bundle.entries.iter().enumerate() {
        let fail = |reason: String| BundleError::Entry {
            position,
            index: entry.index,
            reason,
        };
        let path = entry
            .proof
            .iter()
            .map(|h| {
                Hash::from_base64(h)
                    .ok_or_else(|| fail(format!("proof hash {h:?} is not a base64 SHA-256")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let proof = InclusionProof {
            leaf_index: entry.index,
            tree_size: checkpoint.size(),
            path,
        };
        proof
            .verify(
                &leaf_hash(entry.leaf.as_bytes()),
                checkpoint.size(),
                checkpoint.root(),
            )
            .map_err(|source| BundleError::NotIncluded {
                position,
                index: entry.index,
                size: checkpoint.size(),
                source,
            })?;
        let event = Event::from_leaf(entry.leaf.as_bytes())
            .map_err(|e: EventError| fail(format!("event: {e}")))?;
        if event.subject != bundle.subject {
            return Err(fail(format!(
                "the event is about {:?}, not the bundle's subject {:?}",
                event.subject, bundle.subject
            )));
        }
        events.push((entry.index, event));
    }
    check_chain(&bundle.subject, &events)?;
    let mut blobs = BTreeMap::new();
    for (expected, encoded) in &bundle.blobs {
        let bytes = STANDARD.decode(encoded).map_err(|e| BundleError::Blob {
            digest: expected.clone(),
            reason: format!("not base64: {e}"),
        })?;
        let found = digest(&bytes);
        if &found != expected {
            return Err(BundleError::Blob {
                digest: expected.clone(),
                reason: format!("its content hashes to {found}: it was altered or swapped"),
            });
        }
        blobs.insert(found, bytes);
    }
    Ok(VerifiedBundle {
        subject: bundle.subject,
        checkpoint,
        events,
        blobs,
    })
}

/// The entries form one chain: the first is the subject's first entry in the log, and each
/// next one names the one before it in the bundle as its previous entry about the subject.
fn check_chain(subject: &str, events: &[(u64, Event)]) -> Result<(), BundleError> {
    let mut previous: Option<u64> = None;
    for (position, (index, event)) in events.iter().enumerate() {
        let Some(link) = event.prev else {
            return Err(BundleError::Incomplete(format!(
                "entry {position} (log index {index}) was written before log entries named \
                 their predecessor (no `prev`), so the bundle cannot show that no entry about \
                 {subject} was left out; check it against the log itself (`log verify`)"
            )));
        };
        match (previous, link) {
            (None, None) => {}
            (None, Some(before)) => {
                return Err(BundleError::Incomplete(format!(
                    "it starts at log index {index}, but entry {before} about {subject} comes \
                     before it: the earlier entries were left out"
                )));
            }
            (Some(previous), link) if link == Some(previous) => {}
            (Some(previous), Some(before)) => {
                return Err(BundleError::Incomplete(format!(
                    "log index {index} follows entry {before} about {subject}, but the \
                     bundle's entry before it is {previous}: entry {before} (and any before it \
                     back to {previous}) was left out"
                )));
            }
            (Some(previous), None) => {
                return Err(BundleError::Incomplete(format!(
                    "log index {index} says it is the first entry about {subject}, but the \
                     bundle has entry {previous} before it: entries of another log were mixed in"
                )));
            }
        }
        previous = Some(*index);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, leaf_bytes};
    use crate::merkle::{MemoryStore, prove_inclusion};
    use crate::note::Signer;

    struct Fixture {
        bundle: Bundle,
        verifier: Verifier,
    }

    fn event(subject: &str, kind: EventKind, data: serde_json::Value) -> Vec<u8> {
        let e = Event::new(kind, "2026-11-27T10:00:00Z", subject, "human:alice", data).unwrap();
        leaf_bytes(&e).unwrap()
    }

    /// `leaf` linked to the entry at `prev`, as the store links an entry when it appends it.
    fn chained(leaf: Vec<u8>, prev: u64) -> Vec<u8> {
        let mut e = Event::from_leaf(&leaf).unwrap();
        e.prev = Some(Some(prev));
        leaf_bytes(&e).unwrap()
    }

    /// A log of five events, two about `p-1`, checkpointed at size 5.
    fn fixture() -> Fixture {
        let signer = Signer::from_seed("log.example/test", [7; 32]).unwrap();
        let mut store = MemoryStore::new();
        let leaves = [
            event("p-0", EventKind::Proposed, serde_json::json!({})),
            event("p-1", EventKind::Proposed, serde_json::json!({})),
            event("p-0", EventKind::Decided, serde_json::json!({})),
            chained(
                event(
                    "p-1",
                    EventKind::Decided,
                    serde_json::json!({"blob": digest(b"policy text")}),
                ),
                1,
            ),
            event("p-2", EventKind::Proposed, serde_json::json!({})),
        ];
        for leaf in &leaves {
            store.append(leaf).unwrap();
        }
        let size = store.size();
        let root = crate::merkle::tree_hash(size, &store).unwrap();
        let checkpoint = Checkpoint::new("log.example/test", size, root).unwrap();
        let note = SignedCheckpoint::sign(&checkpoint, &signer).unwrap();
        let entries = [1u64, 3]
            .iter()
            .map(|&i| {
                let proof = prove_inclusion(i, size, &store).unwrap();
                (i, leaves[i as usize].clone(), proof.path)
            })
            .collect();
        let bundle = Bundle::new("p-1".into(), note, entries, [b"policy text".to_vec()]).unwrap();
        Fixture {
            bundle,
            verifier: signer.verifier(),
        }
    }

    fn check(bundle: &Bundle, verifier: &Verifier) -> Result<VerifiedBundle, BundleError> {
        verify_bundle(&bundle.to_json(), std::slice::from_ref(verifier))
    }

    #[test]
    fn the_blobs_an_event_refers_to() {
        let refs = |kind, data| {
            let e = Event::new(
                kind,
                "2026-11-27T10:00:00Z",
                "p-1",
                "system:countersign",
                data,
            )
            .unwrap();
            referenced_blobs(&e)
        };
        assert_eq!(
            refs(
                EventKind::Decided,
                serde_json::json!({"inputs": {"a": "d1", "gone": null}, "evidence": ["d2"], "tier": "auto_merge"})
            ),
            ["d1", "d2"]
        );
        assert_eq!(
            refs(
                EventKind::Authorized,
                serde_json::json!({"commit": "c", "verification_summary": "d3"})
            ),
            ["d3"]
        );
        assert_eq!(
            refs(
                EventKind::EvidenceAccepted,
                serde_json::json!({"envelope": "d4"})
            ),
            ["d4"]
        );
        // A finding's failing envelope and the config of the commit it was verified against.
        assert_eq!(
            refs(
                EventKind::FindingOpened,
                serde_json::json!({"evidence": {"envelope": "d6", "config": "d7", "commit": "c"}})
            ),
            ["d6", "d7"]
        );
        assert_eq!(
            refs(
                EventKind::FindingVerified,
                serde_json::json!({"verification": {"envelope": "d8", "config": "d9"}})
            ),
            ["d8", "d9"]
        );
        // Only the digest of a refused envelope is logged; nothing to carry.
        assert!(
            refs(
                EventKind::EvidenceRefused,
                serde_json::json!({"envelope": "d5"})
            )
            .is_empty()
        );
    }

    #[test]
    fn a_complete_bundle_verifies() {
        let f = fixture();
        let verified = check(&f.bundle, &f.verifier).unwrap();
        assert_eq!(verified.events.len(), 2);
        assert_eq!(verified.checkpoint.size(), 5);
        assert_eq!(verified.blobs[&digest(b"policy text")], b"policy text");
    }

    #[test]
    fn a_swapped_blob_is_refused() {
        let mut f = fixture();
        let key = digest(b"policy text");
        f.bundle
            .blobs
            .insert(key, STANDARD.encode(b"permit everything"));
        let err = check(&f.bundle, &f.verifier).unwrap_err().to_string();
        assert!(err.contains("altered or swapped"), "{err}");
    }

    #[test]
    fn an_edited_event_is_not_included() {
        let mut f = fixture();
        f.bundle.entries[1].leaf = f.bundle.entries[1].leaf.replace("Decided", "decided ");
        f.bundle.entries[1].leaf = f.bundle.entries[1]
            .leaf
            .replace("human:alice", "human:mallory");
        let err = check(&f.bundle, &f.verifier).unwrap_err().to_string();
        assert!(err.contains("is not included"), "{err}");
    }

    #[test]
    fn a_forged_checkpoint_signature_is_refused() {
        let f = fixture();
        let other = Signer::from_seed("log.example/test", [9; 32]).unwrap();
        let err = check(&f.bundle, &other.verifier()).unwrap_err().to_string();
        assert!(err.starts_with("checkpoint:"), "{err}");
    }

    #[test]
    fn a_proof_for_another_tree_size_is_refused() {
        let mut f = fixture();
        f.bundle.entries[0].proof.pop();
        let err = check(&f.bundle, &f.verifier).unwrap_err().to_string();
        assert!(
            err.contains("not included in the checkpoint of size 5"),
            "{err}"
        );
    }

    #[test]
    fn a_truncated_file_is_refused() {
        let f = fixture();
        let bytes = f.bundle.to_json();
        let err = verify_bundle(&bytes[..bytes.len() / 2], &[f.verifier])
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn an_entry_about_another_proposal_is_refused() {
        let mut f = fixture();
        f.bundle.subject = "p-0".into();
        let err = check(&f.bundle, &f.verifier).unwrap_err().to_string();
        assert!(err.contains("not the bundle's subject"), "{err}");
    }

    #[test]
    fn a_bundle_with_an_entry_left_out_is_refused() {
        let mut f = fixture();
        f.bundle.entries.remove(0);
        let err = check(&f.bundle, &f.verifier).unwrap_err().to_string();
        assert!(
            err.contains("incomplete") && err.contains("earlier entries were left out"),
            "{err}"
        );
    }

    #[test]
    fn a_bundle_of_unchained_events_is_refused() {
        let signer = Signer::from_seed("log.example/test", [7; 32]).unwrap();
        let mut store = MemoryStore::new();
        let mut e = Event::new(
            EventKind::Proposed,
            "2026-11-27T10:00:00Z",
            "p-9",
            "human:alice",
            serde_json::json!({}),
        )
        .unwrap();
        e.prev = None;
        let leaf = leaf_bytes(&e).unwrap();
        assert!(!String::from_utf8_lossy(&leaf).contains("prev"));
        store.append(&leaf).unwrap();
        let root = crate::merkle::tree_hash(1, &store).unwrap();
        let checkpoint = Checkpoint::new("log.example/test", 1, root).unwrap();
        let note = SignedCheckpoint::sign(&checkpoint, &signer).unwrap();
        let bundle = Bundle::new(
            "p-9".into(),
            note,
            vec![(0, leaf, vec![])],
            Vec::<Vec<u8>>::new(),
        )
        .unwrap();
        let err = check(&bundle, &signer.verifier()).unwrap_err().to_string();
        assert!(err.contains("cannot show that no entry"), "{err}");
    }
}
