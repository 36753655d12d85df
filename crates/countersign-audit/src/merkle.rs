//! RFC 6962 / RFC 9162 Merkle tree math: leaf and node hashing, tree heads, and inclusion and
//! consistency proofs, both produced (from a [`TreeStore`]) and verified.
//!
//! Storage follows the design of Go's `golang.org/x/mod/sumdb/tlog`: every hash of a
//! *complete* subtree is stored once, at a dense linear position given by
//! [`stored_hash_index`] (Crosby and Wallach, "Efficient Data Structures for Tamper-Evident
//! Logging", §3.3). Appending leaf `n` stores `1 + trailing_ones(n)` hashes (under two on
//! average) and reads at most `log₂ n` earlier ones; a tree head or any proof needs
//! `O(log n)` stored hashes, fetched in a single [`TreeStore::read_hashes`] call.
//!
//! This module does not persist anything. [`MemoryStore`] is the in-memory implementation for
//! tests and benchmarks. The asynchronous database store (countersign-store) asks
//! [`inclusion_indexes`] and friends which hashes an operation needs, fetches them in one query
//! and runs the operation over a map holding just those.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

/// The largest tree this module handles. Stored-hash indexes are about twice the leaf count,
/// so this bound keeps every index computation inside `u64` without overflow.
pub const MAX_TREE_SIZE: u64 = 1 << 62;

/// A SHA-256 hash: of a leaf, of an interior node, or of a whole tree (its root).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// Parses the standard (padded) base64 form used in checkpoints.
    pub fn from_base64(text: &str) -> Option<Hash> {
        let bytes = BASE64.decode(text).ok()?;
        Some(Hash(bytes.try_into().ok()?))
    }

    /// The standard (padded) base64 form used in checkpoints.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// Lower-case hexadecimal, the form RFC test vectors use.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hexadecimal digits.
    pub fn from_hex(text: &str) -> Option<Hash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Hash(out))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

/// The leaf hash of RFC 6962 §2.1: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(data);
    Hash(hasher.finalize().into())
}

/// The interior node hash of RFC 6962 §2.1: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // One contiguous buffer: a single `update` is measurably faster than three for 65 bytes.
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(&left.0);
    buf[33..].copy_from_slice(&right.0);
    Hash(Sha256::digest(buf).into())
}

/// The root of the empty tree: `SHA-256("")` (RFC 6962 §2.1).
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// The Merkle Tree Hash of RFC 6962 §2.1 over leaf hashes already computed, for any count.
///
/// `O(n)` time and `O(log n)` extra memory: leaves are folded left to right into the stack
/// of complete subtrees (a "compact range"), which is then folded right to left.
pub fn root_from_leaf_hashes(leaves: &[Hash]) -> Hash {
    let mut stack = CompactRange::default();
    for leaf in leaves {
        stack.push(*leaf);
    }
    stack.root()
}

/// The complete subtrees of a growing tree, largest (leftmost) first: enough to compute the
/// root of every prefix while reading each leaf once.
#[derive(Default)]
pub(crate) struct CompactRange {
    size: u64,
    hashes: Vec<Hash>,
}

impl CompactRange {
    pub(crate) fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        // Each trailing one bit of the old size is a complete subtree the new leaf closes.
        for _ in 0..self.size.trailing_ones() {
            if let Some(left) = self.hashes.pop() {
                hash = node_hash(&left, &hash);
            }
        }
        self.hashes.push(hash);
        self.size += 1;
    }

    pub(crate) fn root(&self) -> Hash {
        let mut iter = self.hashes.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |right, left| node_hash(left, &right))
    }
}

/// Where the hash of the complete subtree `(level, n)` is stored: level 0 holds leaf hashes,
/// level `l` the hash over leaves `[n·2ˡ, (n+1)·2ˡ)`.
///
/// The order is the one in which [`stored_hashes`] produces them while appending, so a store
/// can be a plain append-only array. Hash `(level, n)` is written right after `(level-1,
/// 2n+1)`; leaf `m` sits at `m + m/2 + m/4 + …`, which is `2m - popcount(m)`.
pub fn stored_hash_index(level: u32, n: u64) -> u64 {
    // The last leaf under (level, n), whose append completes this subtree.
    let last_leaf = ((n + 1) << level) - 1;
    2 * last_leaf - u64::from(last_leaf.count_ones()) + u64::from(level)
}

/// How many stored hashes a tree of `size` leaves has.
pub fn stored_hash_count(size: u64) -> u64 {
    if size == 0 {
        return 0;
    }
    let last = size - 1;
    stored_hash_index(0, last) + 1 + u64::from(last.trailing_ones())
}

/// Why a store could not deliver hashes. Implementations wrap their own error.
#[derive(Debug, thiserror::Error)]
#[error("tree store: {0}")]
pub struct StoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl StoreError {
    /// Wraps a store implementation's error.
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
        StoreError(error.into())
    }
}

/// Read access to stored complete-subtree hashes, addressed by [`stored_hash_index`].
pub trait TreeStore {
    /// Returns the hashes at `indexes`, in the same order. The indexes are sorted ascending
    /// when they come from this module, so a store can read them in one range scan.
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError>;
}

/// Why a tree head or proof could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizeOrder { old: u64, new: u64 },
    #[error("tree size {size} exceeds the supported maximum {MAX_TREE_SIZE}")]
    TooLarge { size: u64 },
    #[error("tree store returned {got} hashes for {asked} indexes")]
    ShortRead { asked: usize, got: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a proof does not verify. Each variant names the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("proof is for tree size {proof}, but the tree head has size {tree}")]
    TreeSizeMismatch { proof: u64, tree: u64 },
    #[error("proof is for old tree size {proof}, but the old tree head has size {tree}")]
    OldSizeMismatch { proof: u64, tree: u64 },
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizeOrder { old: u64, new: u64 },
    #[error("proof has {got} hashes, a proof for these sizes has {expected}")]
    WrongLength { got: usize, expected: usize },
    #[error("proof leads to root {computed}, the tree head says {expected}")]
    RootMismatch { computed: Hash, expected: Hash },
    #[error("proof leads to old root {computed}, the old tree head says {expected}")]
    OldRootMismatch { computed: Hash, expected: Hash },
}

/// A proof that a leaf is in a tree of a given size (RFC 9162 §2.1.3, the "audit path").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// Index of the proven leaf, from 0.
    pub leaf_index: u64,
    /// Size of the tree the proof was made for.
    pub tree_size: u64,
    /// Sibling hashes from the leaf up to the root.
    pub path: Vec<Hash>,
}

/// A proof that a tree of `old_size` leaves is a prefix of one of `new_size` (RFC 9162 §2.1.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub new_size: u64,
    pub path: Vec<Hash>,
}

/// Largest power of two strictly smaller than `n` (`n >= 2`): the RFC 6962 split point.
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The leaf range `[lo, hi)` of a (possibly incomplete) subtree the proof needs the hash of.
type Range = (u64, u64);

/// The complete subtrees `(level, n)` whose hashes fold into the hash of `range`, largest
/// first. `lo` is always aligned for the ranges that MTH recursion produces.
fn decompose((mut lo, hi): Range, out: &mut Vec<u64>) {
    while lo < hi {
        // Largest power of two not above the remaining width.
        let level = 63 - (hi - lo).leading_zeros();
        out.push(stored_hash_index(level, lo >> level));
        lo += 1 << level;
    }
}

fn decomposed_len((mut lo, hi): Range) -> usize {
    let mut count = 0;
    while lo < hi {
        lo += 1 << (63 - (hi - lo).leading_zeros());
        count += 1;
    }
    count
}

/// The stored-hash indexes of every range's complete subtrees, in the order
/// [`range_hashes`] reads them.
fn ranges_indexes(ranges: &[Range]) -> Vec<u64> {
    let mut indexes = Vec::with_capacity(ranges.len() * 2);
    for range in ranges {
        decompose(*range, &mut indexes);
    }
    indexes
}

/// Reads every range's complete subtrees in one call and folds each into its hash.
fn range_hashes(ranges: &[Range], store: &impl TreeStore) -> Result<Vec<Hash>, ProveError> {
    let indexes = ranges_indexes(ranges);
    let hashes = store.read_hashes(&indexes)?;
    if hashes.len() != indexes.len() {
        return Err(ProveError::ShortRead {
            asked: indexes.len(),
            got: hashes.len(),
        });
    }
    let mut rest = hashes.as_slice();
    let mut out = Vec::with_capacity(ranges.len());
    for range in ranges {
        let (parts, tail) = rest.split_at(decomposed_len(*range));
        rest = tail;
        // Complete subtrees are listed largest first; the tree hash folds them from the right.
        let mut iter = parts.iter().rev();
        let hash = match iter.next() {
            Some(last) => iter.fold(*last, |right, left| node_hash(left, &right)),
            None => empty_root(),
        };
        out.push(hash);
    }
    Ok(out)
}

fn check_size(size: u64) -> Result<(), ProveError> {
    if size > MAX_TREE_SIZE {
        return Err(ProveError::TooLarge { size });
    }
    Ok(())
}

/// The root hash of the first `size` leaves, from at most `1 + log₂ size` stored hashes.
pub fn tree_hash(size: u64, store: &impl TreeStore) -> Result<Hash, ProveError> {
    check_size(size)?;
    if size == 0 {
        return Ok(empty_root());
    }
    Ok(range_hashes(&[(0, size)], store)?[0])
}

/// The hashes to store when appending leaf number `index` (from 0) with hash `leaf`: the leaf
/// hash itself, then one hash per subtree the leaf completes, in [`stored_hash_index`] order
/// starting at `stored_hash_index(0, index)`. Reads at most `log₂ index` earlier hashes.
pub fn stored_hashes(
    index: u64,
    leaf: Hash,
    store: &impl TreeStore,
) -> Result<Vec<Hash>, ProveError> {
    check_size(index.saturating_add(1))?;
    let indexes = stored_hashes_indexes(index);
    let siblings = store.read_hashes(&indexes)?;
    if siblings.len() != indexes.len() {
        return Err(ProveError::ShortRead {
            asked: indexes.len(),
            got: siblings.len(),
        });
    }
    let mut out = Vec::with_capacity(indexes.len() + 1);
    let mut hash = leaf;
    out.push(hash);
    for sibling in siblings.iter().rev() {
        hash = node_hash(sibling, &hash);
        out.push(hash);
    }
    Ok(out)
}

// What each operation reads, without reading it. An asynchronous or remote store fetches
// these indexes in one query, then runs the operation over an in-memory `TreeStore` holding
// just them: the operations stay synchronous and pure, and every one costs a single round trip.
// Each function returns exactly the indexes its operation passes to `read_hashes`, and nothing
// when the operation would refuse its arguments before reading.

/// The stored hashes [`stored_hashes`] reads to append leaf `index`: the left siblings of the
/// subtrees it completes, ascending. At most `log₂ index`.
pub fn stored_hashes_indexes(index: u64) -> Vec<u64> {
    if index >= MAX_TREE_SIZE {
        return Vec::new();
    }
    // From the largest (highest level) sibling down, i.e. ascending index order.
    (0..index.trailing_ones())
        .rev()
        .map(|level| stored_hash_index(level, (index >> level) - 1))
        .collect()
}

/// The stored hashes [`tree_hash`] reads for the tree of `size` leaves.
pub fn tree_hash_indexes(size: u64) -> Vec<u64> {
    if size == 0 || size > MAX_TREE_SIZE {
        return Vec::new();
    }
    ranges_indexes(&[(0, size)])
}

/// The stored hashes [`prove_inclusion`] reads for leaf `index` in the tree of `size` leaves.
pub fn inclusion_indexes(index: u64, size: u64) -> Vec<u64> {
    if index >= size || size > MAX_TREE_SIZE {
        return Vec::new();
    }
    ranges_indexes(&inclusion_ranges(index, size))
}

/// The stored hashes [`prove_consistency`] reads between trees of `old` and `new` leaves.
pub fn consistency_indexes(old: u64, new: u64) -> Vec<u64> {
    if old == 0 || old >= new || new > MAX_TREE_SIZE {
        return Vec::new();
    }
    ranges_indexes(&consistency_ranges(old, new))
}

/// The ranges whose hashes form the audit path of `index` in a tree of `size`, leaf first
/// (RFC 6962 §2.1.1, PATH).
fn inclusion_ranges(index: u64, size: u64) -> Vec<Range> {
    let (mut lo, mut hi) = (0, size);
    let mut ranges = Vec::new();
    while hi - lo > 1 {
        let k = split(hi - lo);
        if index < lo + k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
        }
    }
    ranges.reverse();
    ranges
}

/// The ranges whose hashes form the consistency proof from `old` to `new`, deepest first
/// (RFC 6962 §2.1.2, SUBPROOF). `0 < old < new`.
fn consistency_ranges(old: u64, new: u64) -> Vec<Range> {
    let (mut lo, mut hi) = (0, new);
    // Whether the current subtree is still the leftmost, whose old hash the verifier knows.
    let mut leftmost = true;
    let mut ranges = Vec::new();
    while old != hi {
        let k = split(hi - lo);
        if old <= lo + k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
            leftmost = false;
        }
    }
    if !leftmost {
        ranges.push((lo, hi));
    }
    ranges.reverse();
    ranges
}

/// Proves leaf `index` is in the tree of the first `size` leaves. `O(log size)` stored-hash
/// reads, in one call.
pub fn prove_inclusion(
    index: u64,
    size: u64,
    store: &impl TreeStore,
) -> Result<InclusionProof, ProveError> {
    check_size(size)?;
    if index >= size {
        return Err(ProveError::IndexOutOfRange { index, size });
    }
    let path = range_hashes(&inclusion_ranges(index, size), store)?;
    Ok(InclusionProof {
        leaf_index: index,
        tree_size: size,
        path,
    })
}

/// Proves the tree of `old` leaves is a prefix of the tree of `new` leaves. `O(log new)`
/// stored-hash reads, in one call. Empty when `old` is 0 or equal to `new`.
pub fn prove_consistency(
    old: u64,
    new: u64,
    store: &impl TreeStore,
) -> Result<ConsistencyProof, ProveError> {
    check_size(new)?;
    if old > new {
        return Err(ProveError::SizeOrder { old, new });
    }
    let path = if old == 0 || old == new {
        Vec::new()
    } else {
        range_hashes(&consistency_ranges(old, new), store)?
    };
    Ok(ConsistencyProof {
        old_size: old,
        new_size: new,
        path,
    })
}

impl InclusionProof {
    /// Checks that the leaf with hash `leaf` is at `self.leaf_index` in the tree whose head is
    /// (`tree_size`, `root`), by the algorithm of RFC 9162 §2.1.3.2.
    pub fn verify(&self, leaf: &Hash, tree_size: u64, root: &Hash) -> Result<(), VerifyError> {
        if self.tree_size != tree_size {
            return Err(VerifyError::TreeSizeMismatch {
                proof: self.tree_size,
                tree: tree_size,
            });
        }
        let computed = self.root(leaf)?;
        if computed != *root {
            return Err(VerifyError::RootMismatch {
                computed,
                expected: *root,
            });
        }
        Ok(())
    }

    /// The root this proof implies for `leaf` (RFC 9162 §2.1.3.2 steps 1–5 without the final
    /// comparison).
    pub fn root(&self, leaf: &Hash) -> Result<Hash, VerifyError> {
        let (index, size) = (self.leaf_index, self.tree_size);
        if index >= size {
            return Err(VerifyError::IndexOutOfRange { index, size });
        }
        // The length is a function of index and size; checking it up front gives a precise
        // error instead of a root mismatch and rejects padded proofs.
        let expected = inclusion_ranges(index, size).len();
        if self.path.len() != expected {
            return Err(VerifyError::WrongLength {
                got: self.path.len(),
                expected,
            });
        }
        let (mut fnode, mut snode) = (index, size - 1);
        let mut hash = *leaf;
        for p in &self.path {
            if fnode & 1 == 1 || fnode == snode {
                hash = node_hash(p, &hash);
                if fnode & 1 == 0 {
                    while fnode & 1 == 0 && fnode != 0 {
                        fnode >>= 1;
                        snode >>= 1;
                    }
                }
            } else {
                hash = node_hash(&hash, p);
            }
            fnode >>= 1;
            snode >>= 1;
        }
        // With the length checked above, `snode` is 0 here; keep the RFC's check anyway.
        if snode != 0 {
            return Err(VerifyError::WrongLength {
                got: self.path.len(),
                expected,
            });
        }
        Ok(hash)
    }
}

impl ConsistencyProof {
    /// Checks that the tree head (`old_size`, `old_root`) is a prefix of (`new_size`,
    /// `new_root`), by the algorithm of RFC 9162 §2.1.4.2.
    pub fn verify(
        &self,
        old_size: u64,
        old_root: &Hash,
        new_size: u64,
        new_root: &Hash,
    ) -> Result<(), VerifyError> {
        if self.old_size != old_size {
            return Err(VerifyError::OldSizeMismatch {
                proof: self.old_size,
                tree: old_size,
            });
        }
        if self.new_size != new_size {
            return Err(VerifyError::TreeSizeMismatch {
                proof: self.new_size,
                tree: new_size,
            });
        }
        if old_size > new_size {
            return Err(VerifyError::SizeOrder {
                old: old_size,
                new: new_size,
            });
        }
        let expected = if old_size == 0 || old_size == new_size {
            0
        } else {
            consistency_ranges(old_size, new_size).len()
        };
        if self.path.len() != expected {
            return Err(VerifyError::WrongLength {
                got: self.path.len(),
                expected,
            });
        }
        if old_size == 0 {
            // Every tree extends the empty tree.
            return Ok(());
        }
        if old_size == new_size {
            if old_root != new_root {
                return Err(VerifyError::RootMismatch {
                    computed: *old_root,
                    expected: *new_root,
                });
            }
            return Ok(());
        }

        // RFC 9162 §2.1.4.2. Step 2: when the old tree is a complete subtree, its root is the
        // implicit first element of the path.
        let mut path: Vec<Hash> = Vec::with_capacity(self.path.len() + 1);
        if old_size.is_power_of_two() {
            path.push(*old_root);
        }
        path.extend_from_slice(&self.path);
        let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
        while fnode & 1 == 1 {
            fnode >>= 1;
            snode >>= 1;
        }
        let (mut fr, mut sr) = (path[0], path[0]);
        for c in &path[1..] {
            if snode == 0 {
                return Err(VerifyError::WrongLength {
                    got: self.path.len(),
                    expected,
                });
            }
            if fnode & 1 == 1 || fnode == snode {
                fr = node_hash(c, &fr);
                sr = node_hash(c, &sr);
                if fnode & 1 == 0 {
                    while fnode & 1 == 0 && fnode != 0 {
                        fnode >>= 1;
                        snode >>= 1;
                    }
                }
            } else {
                sr = node_hash(&sr, c);
            }
            fnode >>= 1;
            snode >>= 1;
        }
        if snode != 0 {
            return Err(VerifyError::WrongLength {
                got: self.path.len(),
                expected,
            });
        }
        if fr != *old_root {
            return Err(VerifyError::OldRootMismatch {
                computed: fr,
                expected: *old_root,
            });
        }
        if sr != *new_root {
            return Err(VerifyError::RootMismatch {
                computed: sr,
                expected: *new_root,
            });
        }
        Ok(())
    }
}

/// An in-memory [`TreeStore`] that also appends: the reference for tests and benchmarks, and
/// the shape a persistent store follows (an append-only array of hashes plus a leaf count).
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    size: u64,
    hashes: Vec<Hash>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf by its data; returns its index.
    pub fn append(&mut self, data: &[u8]) -> Result<u64, ProveError> {
        self.append_leaf_hash(leaf_hash(data))
    }

    /// Appends a leaf by its hash; returns its index.
    pub fn append_leaf_hash(&mut self, leaf: Hash) -> Result<u64, ProveError> {
        let index = self.size;
        let new = stored_hashes(index, leaf, self)?;
        self.hashes.extend(new);
        self.size += 1;
        Ok(index)
    }

    /// All stored hashes, in [`stored_hash_index`] order: what a persistent store would keep.
    pub fn stored(&self) -> &[Hash] {
        &self.hashes
    }

    /// Mutable access to the stored hashes, so tests can tamper with them.
    pub fn stored_mut(&mut self) -> &mut [Hash] {
        &mut self.hashes
    }
}

#[derive(Debug, thiserror::Error)]
#[error("stored hash {index} does not exist (the store holds {len})")]
struct MissingHash {
    index: u64,
    len: usize,
}

impl TreeStore for MemoryStore {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        indexes
            .iter()
            .map(|&index| {
                usize::try_from(index)
                    .ok()
                    .and_then(|i| self.hashes.get(i).copied())
                    .ok_or_else(|| {
                        StoreError::new(MissingHash {
                            index,
                            len: self.hashes.len(),
                        })
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_hash_index_matches_append_order() {
        // Replay the append order and check every produced hash lands where the index says.
        let mut expected = Vec::new();
        for n in 0u64..64 {
            expected.push(stored_hash_index(0, n));
            for level in 1..=n.trailing_ones() {
                expected.push(stored_hash_index(level, n >> level));
            }
        }
        let dense: Vec<u64> = (0..expected.len() as u64).collect();
        assert_eq!(expected, dense);
        let mut count = 0;
        for size in 0u64..64 {
            assert_eq!(stored_hash_count(size), count);
            count += 1 + u64::from(size.trailing_ones());
        }
    }

    /// A store that records what it was asked for.
    struct Recording<'a> {
        inner: &'a MemoryStore,
        asked: std::cell::RefCell<Vec<u64>>,
    }

    impl TreeStore for Recording<'_> {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
            self.asked.borrow_mut().extend_from_slice(indexes);
            self.inner.read_hashes(indexes)
        }
    }

    #[test]
    fn index_functions_name_exactly_what_operations_read() {
        let mut store = MemoryStore::new();
        for size in 0u64..70 {
            let rec = Recording {
                inner: &store,
                asked: Default::default(),
            };
            let check = |expected: Vec<u64>, what: &str| {
                assert_eq!(*rec.asked.borrow(), expected, "{what} at size {size}");
                rec.asked.borrow_mut().clear();
            };
            tree_hash(size, &rec).unwrap();
            check(tree_hash_indexes(size), "tree_hash");
            for index in 0..size {
                prove_inclusion(index, size, &rec).unwrap();
                check(inclusion_indexes(index, size), "inclusion");
            }
            for old in 0..=size {
                prove_consistency(old, size, &rec).unwrap();
                check(consistency_indexes(old, size), "consistency");
            }
            stored_hashes(size, leaf_hash(&size.to_be_bytes()), &rec).unwrap();
            check(stored_hashes_indexes(size), "stored_hashes");
            store.append(&size.to_be_bytes()).unwrap();
        }
        // Refused arguments read nothing.
        assert!(inclusion_indexes(5, 5).is_empty());
        assert!(consistency_indexes(6, 5).is_empty());
        assert!(tree_hash_indexes(MAX_TREE_SIZE + 1).is_empty());
        assert!(stored_hashes_indexes(MAX_TREE_SIZE).is_empty());
    }

    #[test]
    fn split_is_largest_power_below() {
        assert_eq!(split(2), 1);
        assert_eq!(split(3), 2);
        assert_eq!(split(4), 2);
        assert_eq!(split(5), 4);
        assert_eq!(split(1 << 40), 1 << 39);
    }
}
