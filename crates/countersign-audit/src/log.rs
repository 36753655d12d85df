//! Whole-log verification: recompute the tree from the entries and check it against a
//! checkpoint; when they disagree, name the first altered or missing entry.
//!
//! Strategy. The root is recomputed from the entries alone (`O(n)`, nothing trusted). If it
//! differs, the stored hashes are used as a map, but only as far as the checkpoint vouches
//! for them: the stored tree head must equal the checkpoint root, and a stored child pair is
//! trusted only if it hashes to its already-trusted parent. Walking down from the root into
//! the leftmost trusted subtree whose recomputed hash differs ends at the first entry that
//! differs from what the checkpoint committed to (`O(n)` more hashing, `O(log n)` reads).
//! A deleted entry shows as the first shifted one (or as missing at the end), a reordering
//! as the first moved one. If the stored hashes were rewritten too, nothing can be located
//! and the mismatch itself is reported.
//!
//! This module reads nothing itself: the caller streams entries and passes the store.

use crate::checkpoint::Checkpoint;
use crate::merkle::{self, Hash, ProveError, TreeStore, leaf_hash, node_hash, stored_hash_index};

/// A log that matches its checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedLog {
    /// Entries covered by the checkpoint, all verified.
    pub size: u64,
    /// Entries after the checkpoint's size: present, not covered, not checked.
    pub beyond_checkpoint: u64,
}

/// How the log differs from the checkpoint, as precisely as can be said.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Entry `index` (from 0) is not the entry the checkpoint committed to: edited, or
    /// another entry is in its place (deletion or reordering before it).
    #[error("log entry {index} was altered: it is not the entry the checkpoint committed to")]
    Altered { index: u64 },
    /// The log ends before entry `index`, which the checkpoint covers.
    #[error(
        "log entry {index} is missing: the log has {entries} entries, the checkpoint covers {size}"
    )]
    Missing { index: u64, entries: u64, size: u64 },
    /// Entries in `[start, end)` differ, but the stored hashes below that subtree are
    /// inconsistent too, so the entry cannot be pinned down further.
    #[error("log entries {start}..{end} were altered (stored hashes below are inconsistent)")]
    AlteredRange { start: u64, end: u64 },
    /// The recomputed root differs and the stored hashes do not match the checkpoint either,
    /// so there is no trusted map to locate the change with.
    #[error(
        "log root {computed} over {entries} entries does not match checkpoint root {expected} at size {size}, and the stored hashes do not match it either"
    )]
    RootMismatch {
        computed: Hash,
        expected: Hash,
        entries: u64,
        size: u64,
    },
    #[error(transparent)]
    Prove(#[from] ProveError),
}

/// Verifies the log's entries (leaf data, in order) against `checkpoint`, using `store`'s
/// hashes only to locate a difference. See the module docs for the strategy.
pub fn verify_log<I, B>(
    entries: I,
    checkpoint: &Checkpoint,
    store: &impl TreeStore,
) -> Result<VerifiedLog, LogError>
where
    I: IntoIterator<Item = B>,
    B: AsRef<[u8]>,
{
    let size = checkpoint.size();
    let mut leaves = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 24));
    let mut beyond_checkpoint = 0u64;
    for entry in entries {
        if (leaves.len() as u64) < size {
            leaves.push(leaf_hash(entry.as_ref()));
        } else {
            beyond_checkpoint += 1;
        }
    }
    let entries = leaves.len() as u64;
    let computed = merkle::root_from_leaf_hashes(&leaves);
    if entries == size && computed == *checkpoint.root() {
        return Ok(VerifiedLog {
            size,
            beyond_checkpoint,
        });
    }

    // Locate. The stored tree head must be the checkpoint's for the map to be trusted.
    if size == 0 || merkle::tree_hash(size, store).ok().as_ref() != Some(checkpoint.root()) {
        if entries < size {
            return Err(LogError::Missing {
                index: entries,
                entries,
                size,
            });
        }
        return Err(LogError::RootMismatch {
            computed,
            expected: *checkpoint.root(),
            entries,
            size,
        });
    }
    Err(locate(&leaves, size, store)
        .unwrap_or_else(Some)
        .unwrap_or(LogError::RootMismatch {
            computed,
            expected: *checkpoint.root(),
            entries,
            size,
        }))
}

/// The recomputed hash of complete subtree `(level, n)`, or `None` if entries are missing
/// from it.
fn recomputed(leaves: &[Hash], level: u32, n: u64) -> Option<Hash> {
    let start = usize::try_from(n << level).ok()?;
    let end = start.checked_add(1 << level)?;
    Some(merkle::root_from_leaf_hashes(leaves.get(start..end)?))
}

fn read_one(store: &impl TreeStore, level: u32, n: u64) -> Result<Hash, LogError> {
    let index = stored_hash_index(level, n);
    let hashes = store.read_hashes(&[index]).map_err(ProveError::from)?;
    hashes
        .first()
        .copied()
        .ok_or(LogError::Prove(ProveError::ShortRead { asked: 1, got: 0 }))
}

fn found(index: u64, entries: u64, size: u64) -> LogError {
    if index >= entries {
        LogError::Missing {
            index,
            entries,
            size,
        }
    } else {
        LogError::Altered { index }
    }
}

/// Walks from the root's complete subtrees down to the first differing leaf. The caller
/// has checked that the stored tree head equals the checkpoint root, which makes the stored
/// hashes of the root's complete subtrees trusted.
///
/// `Ok(None)` means every subtree matched, which cannot happen when the roots differ.
fn locate(
    leaves: &[Hash],
    size: u64,
    store: &impl TreeStore,
) -> Result<Option<LogError>, LogError> {
    let mut lo = 0u64;
    while lo < size {
        let level = 63 - (size - lo).leading_zeros();
        let n = lo >> level;
        let stored = read_one(store, level, n)?;
        if recomputed(leaves, level, n) != Some(stored) {
            return descend(leaves, size, store, level, n, stored).map(Some);
        }
        lo += 1 << level;
    }
    Ok(None)
}

fn descend(
    leaves: &[Hash],
    size: u64,
    store: &impl TreeStore,
    level: u32,
    n: u64,
    trusted: Hash,
) -> Result<LogError, LogError> {
    let entries = leaves.len() as u64;
    let (mut level, mut n, mut trusted) = (level, n, trusted);
    while level > 0 {
        let (left, right) = (
            read_one(store, level - 1, 2 * n)?,
            read_one(store, level - 1, 2 * n + 1)?,
        );
        if node_hash(&left, &right) != trusted {
            return Ok(LogError::AlteredRange {
                start: n << level,
                end: (n + 1) << level,
            });
        }
        level -= 1;
        if recomputed(leaves, level, 2 * n) != Some(left) {
            n *= 2;
            trusted = left;
        } else {
            n = 2 * n + 1;
            trusted = right;
        }
    }
    Ok(found(n, entries, size))
}
