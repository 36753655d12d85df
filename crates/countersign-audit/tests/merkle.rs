//! Merkle math against the transparency-dev RFC 6962 vectors, and proof invariants as
//! properties.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use countersign_audit::merkle::{
    ConsistencyProof, Hash, InclusionProof, MemoryStore, VerifyError, empty_root, leaf_hash,
    node_hash, prove_consistency, prove_inclusion, root_from_leaf_hashes, stored_hash_count,
    stored_hash_index, tree_hash,
};
use proptest::prelude::*;
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/rfc6962-transparency-dev.json")).unwrap()
}

fn hex_bytes(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn hash(value: &Value) -> Hash {
    Hash::from_hex(value.as_str().unwrap()).unwrap()
}

fn hashes(value: &Value) -> Vec<Hash> {
    value.as_array().unwrap().iter().map(hash).collect()
}

fn store_of(leaves: &[Vec<u8>]) -> MemoryStore {
    let mut store = MemoryStore::new();
    for leaf in leaves {
        store.append(leaf).unwrap();
    }
    store
}

fn vector_leaves() -> Vec<Vec<u8>> {
    vectors()["leaves_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| hex_bytes(v.as_str().unwrap()))
        .collect()
}

#[test]
fn node_hashes_match_reference() {
    let v = vectors();
    let store = store_of(&vector_leaves());
    for (level, row) in v["node_hashes_by_level"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        for (n, expected) in row.as_array().unwrap().iter().enumerate() {
            let index = stored_hash_index(level as u32, n as u64);
            assert_eq!(
                store.stored()[index as usize],
                hash(expected),
                "level {level} node {n}"
            );
        }
    }
    assert_eq!(store.stored().len() as u64, stored_hash_count(8));
}

#[test]
fn roots_match_reference_for_every_size() {
    let v = vectors();
    let leaves = vector_leaves();
    let store = store_of(&leaves);
    let leaf_hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
    for (size, expected) in v["roots_by_size"].as_array().unwrap().iter().enumerate() {
        let expected = hash(expected);
        assert_eq!(
            tree_hash(size as u64, &store).unwrap(),
            expected,
            "size {size}"
        );
        assert_eq!(
            root_from_leaf_hashes(&leaf_hashes[..size]),
            expected,
            "size {size}"
        );
    }
    assert_eq!(empty_root(), hash(&v["roots_by_size"][0]));
}

#[test]
fn inclusion_proofs_match_reference() {
    let v = vectors();
    let leaves = vector_leaves();
    let store = store_of(&leaves);
    let roots = hashes(&v["roots_by_size"]);
    for case in v["inclusion_proofs"].as_array().unwrap() {
        let index = case["leaf_index"].as_u64().unwrap();
        let size = case["tree_size"].as_u64().unwrap();
        let expected = InclusionProof {
            leaf_index: index,
            tree_size: size,
            path: hashes(&case["path"]),
        };
        let proof = prove_inclusion(index, size, &store).unwrap();
        assert_eq!(proof, expected, "inclusion {index} in {size}");
        let leaf = leaf_hash(&leaves[index as usize]);
        expected.verify(&leaf, size, &roots[size as usize]).unwrap();
    }
}

#[test]
fn consistency_proofs_match_reference() {
    let v = vectors();
    let store = store_of(&vector_leaves());
    let roots = hashes(&v["roots_by_size"]);
    for case in v["consistency_proofs"].as_array().unwrap() {
        let old = case["old_size"].as_u64().unwrap();
        let new = case["new_size"].as_u64().unwrap();
        let expected = ConsistencyProof {
            old_size: old,
            new_size: new,
            path: hashes(&case["path"]),
        };
        assert_eq!(
            prove_consistency(old, new, &store).unwrap(),
            expected,
            "consistency {old} -> {new}"
        );
        expected
            .verify(old, &roots[old as usize], new, &roots[new as usize])
            .unwrap();
    }
}

/// The corruptions transparency-dev's verify_test.go probes, each of which must fail.
#[test]
fn corrupted_reference_inclusion_proofs_fail() {
    let v = vectors();
    let leaves = vector_leaves();
    let roots = hashes(&v["roots_by_size"]);
    let some =
        Hash::from_hex("abacaba000000000000000000000000000000000000000000060061e00123456").unwrap();
    for case in v["inclusion_proofs"].as_array().unwrap() {
        let index = case["leaf_index"].as_u64().unwrap();
        let size = case["tree_size"].as_u64().unwrap();
        let path = hashes(&case["path"]);
        let root = roots[size as usize];
        let leaf = leaf_hash(&leaves[index as usize]);
        let proof = |index: u64, size: u64, path: Vec<Hash>| InclusionProof {
            leaf_index: index,
            tree_size: size,
            path,
        };
        let mut probes = vec![
            (
                proof(index.wrapping_sub(1), size, path.clone()),
                leaf,
                size,
                root,
            ),
            (proof(index + 1, size, path.clone()), leaf, size, root),
            (proof(index ^ 2, size, path.clone()), leaf, size, root),
            (proof(index, size * 2, path.clone()), leaf, size * 2, root),
            (proof(index, size / 2, path.clone()), leaf, size / 2, root),
            (
                proof(index, size, path.clone()),
                leaf_hash(b"WrongLeaf"),
                size,
                root,
            ),
            (proof(index, size, path.clone()), leaf, size, empty_root()),
            (proof(index, size, path.clone()), leaf, size, some),
            (
                proof(index, size, [path.clone(), vec![root]].concat()),
                leaf,
                size,
                root,
            ),
            (
                proof(index, size, [vec![root], path.clone()].concat()),
                leaf,
                size,
                root,
            ),
        ];
        for i in 0..path.len() {
            let mut wrong = path.clone();
            wrong[i].0[0] ^= 8;
            probes.push((proof(index, size, wrong), leaf, size, root));
        }
        if !path.is_empty() {
            probes.push((
                proof(index, size, path[..path.len() - 1].to_vec()),
                leaf,
                size,
                root,
            ));
        }
        for (i, (p, leaf, size, root)) in probes.iter().enumerate() {
            assert!(
                p.verify(leaf, *size, root).is_err(),
                "probe {i} of inclusion {index} in {size} verified"
            );
        }
    }
}

#[test]
fn precise_errors() {
    let store = store_of(&(0..10u8).map(|i| vec![i]).collect::<Vec<_>>());
    let root7 = tree_hash(7, &store).unwrap();
    let root10 = tree_hash(10, &store).unwrap();
    let proof = prove_inclusion(3, 7, &store).unwrap();
    let leaf = leaf_hash(&[3]);
    // A proof for another tree size than the tree head's.
    assert_eq!(
        proof.verify(&leaf, 10, &root10),
        Err(VerifyError::TreeSizeMismatch { proof: 7, tree: 10 })
    );
    // A proof relabelled with the head's size no longer has the right shape.
    let relabelled = InclusionProof {
        tree_size: 10,
        ..proof.clone()
    };
    assert_eq!(
        relabelled.verify(&leaf, 10, &root10),
        Err(VerifyError::WrongLength {
            got: 3,
            expected: 4
        })
    );
    // Another leaf.
    let other = leaf_hash(&[4]);
    assert!(matches!(
        proof.verify(&other, 7, &root7),
        Err(VerifyError::RootMismatch { .. })
    ));
    assert_eq!(
        prove_inclusion(7, 7, &store).unwrap_err().to_string(),
        "leaf index 7 is outside a tree of size 7"
    );
    assert_eq!(
        prove_consistency(8, 7, &store).unwrap_err().to_string(),
        "old tree size 8 is larger than new tree size 7"
    );
    // Asking the store for a tree it does not hold is a store error, not a panic.
    assert!(tree_hash(11, &store).is_err());

    let consistency = prove_consistency(7, 10, &store).unwrap();
    assert_eq!(
        consistency.verify(6, &root7, 10, &root10),
        Err(VerifyError::OldSizeMismatch { proof: 7, tree: 6 })
    );
    let forked = node_hash(&root7, &root7);
    assert!(matches!(
        consistency.verify(7, &forked, 10, &root10),
        Err(VerifyError::OldRootMismatch { .. })
    ));
    assert!(matches!(
        consistency.verify(7, &root7, 10, &forked),
        Err(VerifyError::RootMismatch { .. })
    ));
    // Rollback: equal sizes, different roots.
    let same = prove_consistency(10, 10, &store).unwrap();
    assert!(same.verify(10, &root10, 10, &root10).is_ok());
    assert!(same.verify(10, &root7, 10, &root10).is_err());
}

/// A store and the leaf data behind it, for sizes up to `max`.
fn tree(size: u64) -> (MemoryStore, Vec<Hash>) {
    let mut store = MemoryStore::new();
    let mut leaves = Vec::new();
    for i in 0..size {
        let data = i.to_be_bytes();
        leaves.push(leaf_hash(&data));
        store.append(&data).unwrap();
    }
    (store, leaves)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn inclusion_proofs_verify_and_any_flip_fails(size in 1u64..300, index_seed: u64, byte in 0usize..32, bit in 0u8..8) {
        let (store, leaves) = tree(size);
        let index = index_seed % size;
        let root = tree_hash(size, &store).unwrap();
        prop_assert_eq!(root, root_from_leaf_hashes(&leaves));
        let proof = prove_inclusion(index, size, &store).unwrap();
        prop_assert!(proof.verify(&leaves[index as usize], size, &root).is_ok());
        for i in 0..proof.path.len() {
            let mut bad = proof.clone();
            bad.path[i].0[byte] ^= 1 << bit;
            prop_assert!(bad.verify(&leaves[index as usize], size, &root).is_err());
        }
        let mut bad_root = root;
        bad_root.0[byte] ^= 1 << bit;
        prop_assert!(proof.verify(&leaves[index as usize], size, &bad_root).is_err());
        let mut bad_leaf = leaves[index as usize];
        bad_leaf.0[byte] ^= 1 << bit;
        prop_assert!(proof.verify(&bad_leaf, size, &root).is_err());
    }

    #[test]
    fn consistency_proofs_verify_and_any_flip_fails(new in 1u64..300, old_seed: u64, byte in 0usize..32, bit in 0u8..8) {
        let (store, _) = tree(new);
        let old = old_seed % (new + 1);
        let (old_root, new_root) = (tree_hash(old, &store).unwrap(), tree_hash(new, &store).unwrap());
        let proof = prove_consistency(old, new, &store).unwrap();
        prop_assert!(proof.verify(old, &old_root, new, &new_root).is_ok());
        for i in 0..proof.path.len() {
            let mut bad = proof.clone();
            bad.path[i].0[byte] ^= 1 << bit;
            prop_assert!(bad.verify(old, &old_root, new, &new_root).is_err());
        }
        if old > 0 {
            let mut bad_old = old_root;
            bad_old.0[byte] ^= 1 << bit;
            prop_assert!(proof.verify(old, &bad_old, new, &new_root).is_err());
        }
        // Every tree extends the empty one, whatever its root: only non-empty old trees bind.
        if old > 0 {
            let mut bad_new = new_root;
            bad_new.0[byte] ^= 1 << bit;
            prop_assert!(proof.verify(old, &old_root, new, &bad_new).is_err());
        }
    }

    #[test]
    fn proofs_read_logarithmically_many_hashes(size in 1u64..2000, index_seed: u64) {
        let (store, _) = tree(size);
        let index = index_seed % size;
        let counting = Counting { inner: &store, reads: std::cell::Cell::new(0) };
        prove_inclusion(index, size, &counting).unwrap();
        let log = 64 - size.leading_zeros() as usize;
        prop_assert!(counting.reads.get() <= 2 * log + 1, "{} reads for size {}", counting.reads.get(), size);
        counting.reads.set(0);
        prove_consistency(index, size, &counting).unwrap();
        prop_assert!(counting.reads.get() <= 2 * log + 1, "{} reads for size {}", counting.reads.get(), size);
    }
}

struct Counting<'a> {
    inner: &'a MemoryStore,
    reads: std::cell::Cell<usize>,
}

impl countersign_audit::TreeStore for Counting<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, countersign_audit::StoreError> {
        self.reads.set(self.reads.get() + indexes.len());
        self.inner.read_hashes(indexes)
    }
}
