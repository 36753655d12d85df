//! Whole-log verification from storage: stream every leaf in index order into
//! [`countersign_audit::verify_log`] and check the result against the latest signed
//! checkpoint, naming the first altered or missing entry.
//!
//! Leaves are read in batches of a few thousand by an async task and handed over a bounded
//! channel to the synchronous verifier on a blocking thread, so memory stays at a few batches
//! plus the verifier's 32 bytes per leaf hash. When the root differs, the verifier walks the
//! stored hashes down to the culprit with `O(log n)` single reads; those reads go back to the
//! database from the blocking thread through the runtime handle.
//!
//! The store also sees what the tree cannot: a row deleted from `log_leaves` leaves a gap in
//! the `idx` column, which is reported as that entry missing rather than as the first shifted
//! entry being altered. And once the leaves verify, every stored hash (`log_hashes`, what
//! proofs, tree heads and bundles are computed from) is recomputed from them and compared: a
//! stored hash that was altered would pass the leaves' check while every proof served
//! through it is wrong; it is named by index.
//!
//! This module trusts nothing in the database except as the checkpoint vouches for it, and
//! holds no keys: the caller passes the verifiers of the log's key.

use countersign_audit::merkle::{
    Hash, StoreError, TreeStore, leaf_hash, stored_hash_index, stored_hashes,
};
use countersign_audit::{CheckpointError, LogError, SignedCheckpoint, VerifiedLog, Verifier};

use crate::backend::Hashes;
use crate::error::Error;
use crate::store::{LEAF_BATCH, Store};

/// How the stored log fails verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("no checkpoint is stored: sign one first (nothing to verify against)")]
    NoCheckpoint,
    /// The latest stored checkpoint does not open with the given keys.
    #[error("checkpoint at size {size} does not verify: {source}")]
    Checkpoint {
        size: u64,
        #[source]
        source: CheckpointError,
    },
    /// The checkpoints row's `size` disagrees with the size inside its signed note.
    #[error("checkpoints row for size {row} holds a signed checkpoint for size {signed}")]
    CheckpointRow { row: u64, signed: u64 },
    /// No row holds entry `index`, which the checkpoint covers.
    #[error(
        "log entry {index} is missing: no log_leaves row has idx {index} (the checkpoint covers {size} entries)"
    )]
    MissingEntry { index: u64, size: u64 },
    /// The entries differ from what the checkpoint committed to.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A `log_hashes` row differs from the hash recomputed from the leaves.
    #[error(
        "stored hash {index} (the subtree of {leaves} entries ending at entry {entry}) differs from the hash of those entries: every proof read through it is wrong"
    )]
    StoredHash { index: u64, entry: u64, leaves: u64 },
    /// No `log_hashes` row holds a hash the log's entries make.
    #[error("stored hash {index} (of entry {entry}) is missing from the log_hashes table")]
    MissingStoredHash { index: u64, entry: u64 },
    #[error(transparent)]
    Store(#[from] Error),
    /// The verifier thread panicked or was cancelled.
    #[error("verifier task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Verifies the whole stored log against its latest checkpoint, which must be signed by one
/// of `verifiers` under the log's origin.
pub async fn verify(store: &Store, verifiers: &[Verifier]) -> Result<VerifiedLog, VerifyError> {
    let stored = store
        .latest_checkpoint()
        .await?
        .ok_or(VerifyError::NoCheckpoint)?;
    let signed =
        SignedCheckpoint::open(stored.signed_note.as_bytes(), verifiers).map_err(|source| {
            VerifyError::Checkpoint {
                size: stored.size,
                source,
            }
        })?;
    let checkpoint = signed.checkpoint;
    if checkpoint.size() != stored.size {
        return Err(VerifyError::CheckpointRow {
            row: stored.size,
            signed: checkpoint.size(),
        });
    }

    // Two batches in flight: the reader stays one batch ahead of the hashing.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<Vec<u8>>>(2);
    let handle = tokio::runtime::Handle::current();
    let locate_store = BlockingHashes {
        store: store.clone(),
        handle,
    };
    let verifier_checkpoint = checkpoint.clone();
    let verifier = tokio::task::spawn_blocking(move || {
        let leaves = std::iter::from_fn(move || receiver.blocking_recv()).flatten();
        countersign_audit::verify_log(leaves, &verifier_checkpoint, &locate_store)
    });
    let (streamed, verified) = tokio::join!(stream_leaves(store, sender), verifier);
    // A read failure ends the stream early; report it rather than the "missing" entries.
    let first_gap = streamed?;
    let verified = verified?;

    let size = checkpoint.size();
    match (verified, first_gap.filter(|gap| *gap < size)) {
        (Ok(log), None) => {
            verify_stored_hashes(store, log.size + log.beyond_checkpoint).await?;
            Ok(log)
        }
        // An entry altered before the gap is the first difference.
        (Err(LogError::Altered { index }), Some(gap)) if index < gap => {
            Err(LogError::Altered { index }.into())
        }
        (_, Some(gap)) => Err(VerifyError::MissingEntry { index: gap, size }),
        (Err(error), None) => Err(error.into()),
    }
}

/// Recomputes the stored hashes of the first `size` entries from their leaves, in index
/// order a batch at a time, and compares each with its `log_hashes` row. Memory: the right
/// edge of the tree (the `O(log n)` hashes the next leaf completes subtrees with) and a batch.
async fn verify_stored_hashes(store: &Store, size: u64) -> Result<(), VerifyError> {
    // The right edge: the roots of the perfect subtrees the entries so far make, which is
    // everything a later leaf's stored hashes are computed from.
    let mut edge = Hashes::default();
    let mut next = 0u64;
    while next < size {
        let batch = {
            let mut pooled = store.pooled().await?;
            pooled.conn().leaves(next, size, LEAF_BATCH).await?
        };
        let Some(last) = batch.last() else {
            // The leaves verified to this size a moment ago: a concurrent truncation.
            return Err(VerifyError::MissingEntry { index: next, size });
        };
        let end = last.index + 1;
        // (stored hash index, hash, entry that completed it, level)
        let mut computed = Vec::new();
        for entry in &batch {
            let hashes = stored_hashes(entry.index, leaf_hash(&entry.leaf), &edge)
                .map_err(|e| VerifyError::Store(Error::Prove(e)))?;
            let first = stored_hash_index(0, entry.index);
            for (level, (index, hash)) in (0u32..).zip((first..).zip(hashes)) {
                edge.0.insert(index, hash);
                computed.push((index, hash, entry.index, level));
            }
            let peaks = peaks(entry.index + 1);
            edge.0.retain(|index, _| peaks.contains(index));
        }
        let Some(&(first, ..)) = computed.first() else {
            break;
        };
        let stored = {
            let mut pooled = store.pooled().await?;
            pooled
                .conn()
                .hashes_from(first, computed.len() as u64)
                .await?
        };
        for (position, (index, hash, entry, level)) in computed.into_iter().enumerate() {
            match stored.get(position) {
                Some(row) if *row == hash => {}
                Some(_) => {
                    return Err(VerifyError::StoredHash {
                        index,
                        entry,
                        leaves: 1u64 << level,
                    });
                }
                None => return Err(VerifyError::MissingStoredHash { index, entry }),
            }
        }
        next = end;
    }
    Ok(())
}

/// The stored hash indexes of the roots of the perfect subtrees a log of `size` entries is
/// made of: one per bit set in `size`, at that bit's level.
fn peaks(size: u64) -> Vec<u64> {
    (0..u64::BITS)
        .filter(|level| (size >> level) & 1 == 1)
        .map(|level| stored_hash_index(level, (size >> level) - 1))
        .collect()
}

/// Past every index the database can hold.
const END: u64 = i64::MAX as u64;

/// Sends all leaves in index order, in batches; returns the first index with no row.
async fn stream_leaves(
    store: &Store,
    sender: tokio::sync::mpsc::Sender<Vec<Vec<u8>>>,
) -> Result<Option<u64>, Error> {
    let mut first_gap = None;
    let mut expected = 0u64;
    let mut next = 0u64;
    loop {
        let batch = {
            let mut pooled = store.pooled().await?;
            pooled.conn().leaves(next, END, LEAF_BATCH).await?
        };
        let Some(last) = batch.last() else {
            return Ok(first_gap);
        };
        next = last.index + 1;
        let mut leaves = Vec::with_capacity(batch.len());
        for entry in batch {
            if entry.index != expected && first_gap.is_none() {
                first_gap = Some(expected);
            }
            expected += 1;
            leaves.push(entry.leaf);
        }
        if sender.send(leaves).await.is_err() {
            // The verifier is gone (it panicked); its join error is reported.
            return Ok(first_gap);
        }
    }
}

/// The stored hashes, read synchronously from the verifier's blocking thread.
struct BlockingHashes {
    store: Store,
    handle: tokio::runtime::Handle,
}

impl TreeStore for BlockingHashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        let hashes = self
            .handle
            .block_on(async {
                let mut pooled = self.store.pooled().await?;
                pooled.conn().hashes(indexes).await
            })
            .map_err(StoreError::new)?;
        hashes.read_hashes(indexes)
    }
}

/// How a later checkpoint fails to extend an earlier one of the same log.
#[derive(Debug, thiserror::Error)]
pub enum ExtendError {
    #[error("rollback: the log went from {old} entries back to {new}")]
    Rollback { old: u64, new: u64 },
    #[error("fork: two different trees of size {size} (roots {old_root} and {new_root})")]
    Diverged {
        size: u64,
        old_root: String,
        new_root: String,
    },
    #[error("fork: the tree of size {new} does not extend the one of size {old}: {reason}")]
    Fork { old: u64, new: u64, reason: String },
    #[error("reading a consistency proof: {0}")]
    Store(#[from] Error),
}

/// Whether checkpoint `new` extends checkpoint `old` (both already opened with the log's
/// key): no smaller, the same root at the same size, else a consistency proof between them
/// from the stored hashes that verifies against both roots. What `countersign log monitor`
/// checks between the checkpoint it saw last and the latest.
pub async fn check_extends(
    store: &Store,
    old: &countersign_audit::Checkpoint,
    new: &countersign_audit::Checkpoint,
) -> Result<(), ExtendError> {
    if new.size() < old.size() {
        return Err(ExtendError::Rollback {
            old: old.size(),
            new: new.size(),
        });
    }
    if new.size() == old.size() {
        if new.root() != old.root() {
            return Err(ExtendError::Diverged {
                size: old.size(),
                old_root: old.root().to_string(),
                new_root: new.root().to_string(),
            });
        }
        return Ok(());
    }
    let proof = store.consistency_proof(old.size(), new.size()).await?;
    proof
        .verify(old.size(), old.root(), new.size(), new.root())
        .map_err(|e| ExtendError::Fork {
            old: old.size(),
            new: new.size(),
            reason: e.to_string(),
        })
}
