//! The store against both backends: every scenario runs on a SQLite file and on a fresh
//! PostgreSQL schema (skipped when the server is unreachable, unless CI=true).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::{Db, event, signer};
use countersign_audit::merkle::MemoryStore;
use countersign_audit::{LogError, SignedCheckpoint, leaf_bytes, leaf_hash};
use countersign_store::{
    Approval, Decision, Error, Idempotent, Proposal, Store, Token, VerifyError, verify,
};

async fn append(store: &Store, range: std::ops::Range<u64>) {
    let mut tx = store.begin().await.unwrap();
    for n in range {
        assert_eq!(tx.append_event(&event(n)).await.unwrap(), n);
    }
    tx.commit().await.unwrap();
}

/// Proofs and tree heads from the database agree with the in-memory reference and verify.
async fn proofs(db: &Db) {
    let store = db.store().await;
    let mut reference = MemoryStore::new();
    // Mixed: some single-event transactions, some batches.
    for n in 0..5 {
        append(&store, n..n + 1).await;
    }
    append(&store, 5..37).await;
    for n in 0..37 {
        reference.append(&leaf_bytes(&event(n)).unwrap()).unwrap();
    }
    assert_eq!(store.log_size().await.unwrap(), 37);
    for size in 0..=37u64 {
        let root = store.tree_hash(size).await.unwrap();
        let expected = countersign_audit::tree_hash(size, &reference).unwrap();
        assert_eq!(root, expected, "size {size}");
        for index in (0..size).step_by(5) {
            let proof = store.inclusion_proof(index, size).await.unwrap();
            let leaf = store.entry(index).await.unwrap();
            proof.verify(&leaf_hash(&leaf.leaf), size, &root).unwrap();
        }
        for old in (0..=size).step_by(3) {
            let proof = store.consistency_proof(old, size).await.unwrap();
            let old_root = store.tree_hash(old).await.unwrap();
            proof.verify(old, &old_root, size, &root).unwrap();
        }
    }
    let entries = store.entries(10..13).await.unwrap();
    assert_eq!(
        entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        [10, 11, 12]
    );
    assert_eq!(entries[1].event().unwrap(), event(11));
    assert!(matches!(
        store.entry(37).await,
        Err(Error::BeyondLog {
            requested: 37,
            size: 37,
            ..
        })
    ));
    // Sizes past the log are refused, also when every hash the proof itself needs exists
    // (entry 37 is not in the log, but its audit path in a tree of 38 is).
    for (index, size) in [(3, 38), (37, 38)] {
        assert!(matches!(
            store.inclusion_proof(index, size).await,
            Err(Error::BeyondLog {
                requested: 38,
                size: 37,
                ..
            })
        ));
    }
    assert!(matches!(
        store.consistency_proof(10, 38).await,
        Err(Error::BeyondLog { .. })
    ));
    assert!(matches!(
        store.tree_hash(38).await,
        Err(Error::BeyondLog { .. })
    ));
    // The events view exposes the leaves' fields.
    assert_eq!(
        db.text("SELECT subject FROM events WHERE idx = 11").await,
        "proposal-11"
    );
    store.close().await;
}

async fn checkpoints(db: &Db) {
    let store = db.store().await;
    assert_eq!(store.latest_checkpoint().await.unwrap(), None);
    assert!(matches!(
        verify(&store, &[signer().verifier()]).await,
        Err(VerifyError::NoCheckpoint)
    ));
    append(&store, 0..10).await;
    let first = store.sign_checkpoint(&signer()).await.unwrap();
    append(&store, 10..12).await;
    let stored = store.sign_checkpoint(&signer()).await.unwrap();
    assert_eq!(stored.size, 12);
    let latest = store.latest_checkpoint().await.unwrap().unwrap();
    assert_eq!(latest, stored);
    let opened =
        SignedCheckpoint::open(latest.signed_note.as_bytes(), &[signer().verifier()]).unwrap();
    assert_eq!(
        *opened.checkpoint.root(),
        store.tree_hash(12).await.unwrap()
    );
    // Idempotent for the same note; a note for another tree is refused.
    store.put_checkpoint(&first.signed_note, 10).await.unwrap();
    let wrong = store
        .put_checkpoint(&first.signed_note, 12)
        .await
        .unwrap_err();
    assert!(
        matches!(wrong, Error::CheckpointMismatch { size: 12, .. }),
        "{wrong}"
    );
    let other = countersign_audit::Checkpoint::new(
        "countersign.test/log",
        10,
        store.tree_hash(9).await.unwrap(),
    )
    .unwrap();
    let forged = SignedCheckpoint::sign(&other, &signer()).unwrap();
    let wrong = store.put_checkpoint(&forged, 10).await.unwrap_err();
    assert!(
        wrong.to_string().contains("is not the log's root"),
        "{wrong}"
    );

    let verified = verify(&store, &[signer().verifier()]).await.unwrap();
    assert_eq!((verified.size, verified.beyond_checkpoint), (12, 0));
    append(&store, 12..15).await;
    let verified = verify(&store, &[signer().verifier()]).await.unwrap();
    assert_eq!((verified.size, verified.beyond_checkpoint), (12, 3));
    // Another key does not open the checkpoint.
    let stranger = countersign_audit::Signer::from_seed("countersign.test/log", [8; 32]).unwrap();
    assert!(matches!(
        verify(&store, &[stranger.verifier()]).await,
        Err(VerifyError::Checkpoint { size: 12, .. })
    ));
    store.close().await;
}

async fn decisions_commit_with_their_entry(db: &Db) {
    let store = db.store().await;
    let mut tx = store.begin().await.unwrap();
    let index = tx.append_event(&event(0)).await.unwrap();
    let decision = Decision {
        id: "dec-1".into(),
        subject: "proposal-0".into(),
        tier: "single_approver".parse().unwrap(),
        record: serde_json::json!({"reasons": ["touches payments"], "n": 1.5}),
        log_index: index,
    };
    tx.put_decision(&decision).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.decision("dec-1").await.unwrap(),
        Some(decision.clone())
    );
    assert_eq!(store.decision("nope").await.unwrap(), None);

    // Rolled back: neither the entry nor the decision exists, and the index is reused.
    let mut tx = store.begin().await.unwrap();
    let index = tx.append_event(&event(1)).await.unwrap();
    tx.put_decision(&Decision {
        id: "dec-2".into(),
        log_index: index,
        ..decision.clone()
    })
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    // Dropped without commit: rolled back too.
    {
        let mut tx = store.begin().await.unwrap();
        tx.append_event(&event(1)).await.unwrap();
    }
    assert_eq!(store.log_size().await.unwrap(), 1);
    assert!(store.entry(1).await.is_err());
    assert_eq!(store.decision("dec-2").await.unwrap(), None);
    append(&store, 1..2).await;

    // No decision without its entry; no duplicate id.
    let mut tx = store.begin().await.unwrap();
    let orphan = tx
        .put_decision(&Decision {
            id: "dec-3".into(),
            log_index: 99,
            ..decision.clone()
        })
        .await
        .unwrap_err();
    assert!(matches!(orphan, Error::Database { .. }), "{orphan}");
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    let duplicate = tx.put_decision(&decision).await.unwrap_err();
    assert!(
        matches!(
            duplicate,
            Error::Duplicate {
                table: "decisions",
                ..
            }
        ),
        "{duplicate}"
    );
    drop(tx);

    // The append-only triggers refuse honest mistakes.
    let refused = db.refused("DELETE FROM log_leaves WHERE idx = 1").await;
    assert!(refused.contains("append-only"), "{refused}");
    store.close().await;
}

/// Appends 10 entries, checkpoints them, tampers, and expects `verify` to say `expected`.
async fn tampered(db: &Db, sqlite: &str, postgres: &str) -> VerifyError {
    let store = db.store().await;
    append(&store, 0..10).await;
    store.sign_checkpoint(&signer()).await.unwrap();
    verify(&store, &[signer().verifier()]).await.unwrap();
    db.tamper(sqlite, postgres).await;
    let error = verify(&store, &[signer().verifier()]).await.unwrap_err();
    store.close().await;
    error
}

async fn tamper_edit(db: &Db) {
    let error = tampered(
        db,
        "UPDATE log_leaves SET leaf = CAST(replace(CAST(leaf AS TEXT), 'proposal-5', 'proposal-X') AS BLOB) WHERE idx = 5",
        "UPDATE log_leaves SET leaf = convert_to(replace(convert_from(leaf, 'UTF8'), 'proposal-5', 'proposal-X'), 'UTF8') WHERE idx = 5",
    )
    .await;
    assert!(
        matches!(error, VerifyError::Log(LogError::Altered { index: 5 })),
        "{error}"
    );
}

async fn tamper_delete(db: &Db) {
    let sql = "DELETE FROM log_leaves WHERE idx = 4";
    let error = tampered(db, sql, sql).await;
    assert!(
        matches!(error, VerifyError::MissingEntry { index: 4, size: 10 }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "log entry 4 is missing: no log_leaves row has idx 4 (the checkpoint covers 10 entries)"
    );
}

async fn tamper_delete_last(db: &Db) {
    let sql = "DELETE FROM log_leaves WHERE idx = 9";
    let error = tampered(db, sql, sql).await;
    assert!(
        matches!(error, VerifyError::Log(LogError::Missing { index: 9, .. })),
        "{error}"
    );
}

async fn tamper_reorder(db: &Db) {
    let sql = "UPDATE log_leaves SET idx = 1000 WHERE idx = 3;
               UPDATE log_leaves SET idx = 3 WHERE idx = 7;
               UPDATE log_leaves SET idx = 7 WHERE idx = 1000;";
    let error = tampered(db, sql, sql).await;
    assert!(
        matches!(error, VerifyError::Log(LogError::Altered { index: 3 })),
        "{error}"
    );
}

/// A stored hash zeroed in `log_hashes`: the leaves still verify, but every proof read
/// through it would be wrong, so verification recomputes the stored hashes and names it.
async fn tamper_stored_hash(db: &Db) {
    // The hash of the subtree of entries 4 and 5, completed by entry 5.
    let index = countersign_audit::merkle::stored_hash_index(1, 2);
    let error = tampered(
        db,
        &format!("UPDATE log_hashes SET hash = zeroblob(32) WHERE idx = {index}"),
        &format!(
            "UPDATE log_hashes SET hash = decode(repeat('00', 32), 'hex') WHERE idx = {index}"
        ),
    )
    .await;
    assert!(
        matches!(error, VerifyError::StoredHash { index: i, entry: 5, leaves: 2 } if i == index),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .starts_with(&format!("stored hash {index} ")),
        "{error}"
    );
}

/// A stored hash deleted from `log_hashes` is named missing.
async fn tamper_stored_hash_missing(db: &Db) {
    let index = countersign_audit::merkle::stored_hash_index(0, 7);
    let sql = format!("DELETE FROM log_hashes WHERE idx = {index}");
    let error = tampered(db, &sql, &sql).await;
    assert!(
        matches!(error, VerifyError::MissingStoredHash { index: i, entry: 7 } if i == index),
        "{error}"
    );
}

/// Two stores (two pools, as two processes would have) append concurrently from several
/// tasks each: every event lands exactly once, indexes are dense, and the log verifies.
async fn concurrent_appenders(db: &Db) {
    let (a, b) = (db.store().await, db.store().await);
    let mut tasks = Vec::new();
    for (s, store) in [a.clone(), b.clone()].into_iter().enumerate() {
        for t in 0..4u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut indexes = Vec::new();
                for i in 0..50u64 {
                    let n = (s as u64) * 1000 + t * 100 + i;
                    let mut tx = store.begin().await.unwrap();
                    indexes.push(tx.append_event(&event(n)).await.unwrap());
                    tx.commit().await.unwrap();
                }
                indexes
            }));
        }
    }
    let mut indexes = HashSet::new();
    for task in tasks {
        for index in task.await.unwrap() {
            assert!(indexes.insert(index), "index {index} handed out twice");
        }
    }
    assert_eq!(indexes.len(), 400);
    assert_eq!(a.log_size().await.unwrap(), 400);
    assert_eq!(b.log_size().await.unwrap(), 400);
    let leaves: HashSet<Vec<u8>> = a
        .entries(0..400)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.leaf)
        .collect();
    assert_eq!(leaves.len(), 400);
    b.sign_checkpoint(&signer()).await.unwrap();
    let verified = verify(&a, &[signer().verifier()]).await.unwrap();
    assert_eq!(verified.size, 400);
    a.close().await;
    b.close().await;
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::Db::sqlite().await;
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::Db::postgres().await else { return };
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

/// Blobs are content-addressed and deduplicated; entries are found by subject, and a
/// rolled-back transaction leaves neither.
async fn blobs_and_subjects(db: &Db) {
    let store = db.store().await;
    append(&store, 0..3).await;
    let mut tx = store.begin().await.unwrap();
    let digest = tx.put_blob(b"policy text").await.unwrap();
    assert_eq!(tx.put_blob(b"policy text").await.unwrap(), digest);
    // A blob hashed where it was made is filed under the same address, not hashed again.
    let hashed = countersign_audit::bundle::Blob::new(b"policy text".to_vec());
    assert_eq!(tx.put_hashed_blob(&hashed).await.unwrap(), digest);
    let catalog = countersign_audit::bundle::Blob::new(b"kind: Component".to_vec());
    let catalog_digest = tx.put_hashed_blob(&catalog).await.unwrap();
    assert_eq!(
        catalog_digest,
        countersign_audit::bundle::digest(b"kind: Component")
    );
    tx.append_event(&event(1)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.blob(&digest).await.unwrap().unwrap(), b"policy text");
    assert_eq!(
        store.blob(&catalog_digest).await.unwrap().unwrap(),
        b"kind: Component"
    );
    let about: Vec<u64> = store
        .entries_about("proposal-1")
        .await
        .unwrap()
        .iter()
        .map(|e| e.index)
        .collect();
    assert_eq!(about, [1, 3]);

    let mut tx = store.begin().await.unwrap();
    let lost = tx.put_blob(b"never committed").await.unwrap();
    tx.append_event(&event(9)).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(store.blob(&lost).await.unwrap(), None);
    assert!(store.entries_about("proposal-9").await.unwrap().is_empty());
}

/// With the mirror on, proofs and tree heads are the same as read from the database, also
/// after another handle (another process) appended, after a rolled-back append, and past the
/// log's end they are still refused.
async fn mirrored_proofs(db: &Db) {
    let (mirrored, other) = (db.store().await, db.store().await);
    append(&mirrored, 0..10).await;
    // 2n - popcount(n) stored hashes for n leaves.
    assert_eq!(mirrored.mirror_stored_hashes().await.unwrap(), 2 * 10 - 2);
    let mut reference = MemoryStore::new();
    let check = async |size: u64, reference: &mut MemoryStore| {
        while reference.size() < size {
            let n = reference.size();
            reference.append(&leaf_bytes(&event(n)).unwrap()).unwrap();
        }
        let root = countersign_audit::tree_hash(size, &*reference).unwrap();
        assert_eq!(mirrored.tree_hash(size).await.unwrap(), root, "size {size}");
        for index in 0..size {
            let proof = mirrored.inclusion_proof(index, size).await.unwrap();
            assert_eq!(proof, other.inclusion_proof(index, size).await.unwrap());
            let leaf = leaf_bytes(&event(index)).unwrap();
            proof.verify(&leaf_hash(&leaf), size, &root).unwrap();
        }
        for old in 0..=size {
            let proof = mirrored.consistency_proof(old, size).await.unwrap();
            assert_eq!(proof, other.consistency_proof(old, size).await.unwrap());
        }
    };
    check(10, &mut reference).await;
    // Appended through this handle: handed to the mirror at commit.
    append(&mirrored, 10..13).await;
    check(13, &mut reference).await;
    // A rolled-back transaction hands nothing over; the index is reused by the next append.
    let mut tx = mirrored.begin().await.unwrap();
    tx.append_event(&event(999)).await.unwrap();
    tx.rollback().await.unwrap();
    // Appended through another handle: the mirror catches up on the first miss.
    append(&other, 13..40).await;
    check(40, &mut reference).await;
    assert!(matches!(
        mirrored.inclusion_proof(3, 41).await,
        Err(Error::BeyondLog {
            requested: 41,
            size: 40,
            ..
        })
    ));
    assert!(matches!(
        mirrored.tree_hash(41).await,
        Err(Error::BeyondLog { .. })
    ));
    mirrored.close().await;
    other.close().await;
}

on_both_backends!(
    blobs_and_subjects,
    mirrored_proofs,
    proofs,
    checkpoints,
    decisions_commit_with_their_entry,
    tamper_edit,
    tamper_delete,
    tamper_delete_last,
    tamper_reorder,
    tamper_stored_hash,
    tamper_stored_hash_missing,
    concurrent_appenders,
    server_state,
);

#[tokio::test]
async fn bad_urls_are_refused() {
    let error = Store::connect("mysql://localhost/x").await.unwrap_err();
    assert!(matches!(error, Error::Url { .. }), "{error}");
}

/// Verification also runs on a single-threaded runtime (the locating reads go through the
/// runtime handle from a blocking thread).
#[tokio::test]
async fn verify_on_current_thread_runtime() {
    let db = Db::sqlite().await;
    tamper_edit(&db).await;
}

/// Tokens by hashed secret, proposals with their decision, one verdict per approver and head
/// (the UNIQUE constraint), idempotent responses; a rolled-back transaction leaves nothing.
async fn server_state(db: &Db) {
    let store = db.store().await;
    let token = Token {
        id: "tok-1".into(),
        principal: "agent:fixbot".into(),
        role: "proposer".into(),
        expires_at: 1_900_000_000,
        revoked: false,
        // The dispatcher is stored and read back with the token.
        on_behalf_of: Some("human:alice".into()),
    };
    let hash = "a".repeat(64);
    store.put_token(&token, &hash).await.unwrap();
    assert_eq!(
        store.token_by_secret(&hash).await.unwrap(),
        Some(token.clone())
    );
    assert_eq!(store.token_by_secret(&"b".repeat(64)).await.unwrap(), None);
    assert!(matches!(
        store.put_token(&token, &"c".repeat(64)).await,
        Err(Error::Duplicate {
            table: "tokens",
            ..
        })
    ));
    let bad_role = Token {
        id: "tok-2".into(),
        role: "root".into(),
        ..token.clone()
    };
    assert!(store.put_token(&bad_role, &"d".repeat(64)).await.is_err());
    assert!(store.revoke_token("tok-1").await.unwrap());
    assert!(!store.revoke_token("nope").await.unwrap());
    assert!(store.token_by_secret(&hash).await.unwrap().unwrap().revoked);

    let proposal = Proposal {
        id: "proposal-1".into(),
        repo: "shop".into(),
        base: "b".repeat(40),
        head: "c".repeat(40),
        title: "Fix".into(),
        description: String::new(),
        author: "agent:fixbot".into(),
        state: "awaiting_approval".parse().unwrap(),
        tier: "single_approver".parse().unwrap(),
        decision: "d-1".into(),
        created_at: "2026-01-02T03:04:05Z".into(),
        authors: vec!["human:bob".into(), "email:ci@example.com".into()],
        diff_digest: "e".repeat(64),
        superseded_by: None,
        closed_reason: None,
        dispatched_by: None,
    };
    let mut tx = store.begin().await.unwrap();
    let index = tx.append_event(&event(1)).await.unwrap();
    let decision = Decision {
        id: "d-1".into(),
        subject: "proposal-1".into(),
        tier: "single_approver".parse().unwrap(),
        record: serde_json::json!({}),
        log_index: index,
    };
    tx.put_decision(&decision).await.unwrap();
    tx.put_proposal(&proposal).await.unwrap();
    let response = Idempotent {
        status: 201,
        response: "{}".into(),
        scope: "POST /v1/proposals sha256:0".into(),
    };
    assert!(
        tx.put_idempotent("key-1", "agent:fixbot", &response)
            .await
            .unwrap()
    );
    assert!(
        !tx.put_idempotent("key-1", "agent:fixbot", &response)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(
        store.proposal("proposal-1").await.unwrap(),
        Some(proposal.clone())
    );
    assert_eq!(
        store
            .proposals_at("shop", &proposal.head, "", 10)
            .await
            .unwrap(),
        std::slice::from_ref(&proposal)
    );
    assert_eq!(
        store.idempotent("key-1", "agent:fixbot").await.unwrap(),
        Some(response)
    );
    assert_eq!(store.idempotent("key-1", "human:bob").await.unwrap(), None);

    let approval = Approval {
        proposal: "proposal-1".into(),
        head: proposal.head.clone(),
        approver: "human:bob".into(),
        verdict: "approve".parse().unwrap(),
        comment: "ok".into(),
        log_index: index,
        lapsed_by: None,
        carried_from: None,
    };
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.lock_proposal("proposal-1").await.unwrap(),
        Some(proposal.clone())
    );
    assert!(tx.put_approval(&approval).await.unwrap());
    assert!(
        !tx.put_approval(&Approval {
            verdict: "reject".parse().unwrap(),
            ..approval.clone()
        })
        .await
        .unwrap()
    );
    tx.set_proposal_state("proposal-1", "authorized".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        tx.approvals("proposal-1").await.unwrap(),
        std::slice::from_ref(&approval)
    );
    tx.commit().await.unwrap();
    assert_eq!(
        store.approvals("proposal-1").await.unwrap(),
        std::slice::from_ref(&approval)
    );
    assert_eq!(
        store.proposal("proposal-1").await.unwrap().unwrap().state,
        "authorized".parse().unwrap()
    );

    let mut tx = store.begin().await.unwrap();
    tx.set_proposal_state("proposal-1", "closed".parse().unwrap())
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        store.proposal("proposal-1").await.unwrap().unwrap().state,
        "authorized".parse().unwrap()
    );

    // The same person changes their verdict: the earlier one is superseded (kept, marked),
    // and a second standing verdict of theirs on the head is possible again.
    let mut tx = store.begin().await.unwrap();
    let by = tx.append_event(&event(2)).await.unwrap();
    assert_eq!(
        tx.supersede_approval("proposal-1", &proposal.head, "HUMAN:Bob", by)
            .await
            .unwrap(),
        1
    );
    let rejection = Approval {
        verdict: "reject".parse().unwrap(),
        log_index: by,
        ..approval.clone()
    };
    assert!(tx.put_approval(&rejection).await.unwrap());
    tx.commit().await.unwrap();
    let verdicts = store.approvals("proposal-1").await.unwrap();
    assert_eq!(verdicts.len(), 2);
    assert_eq!(verdicts[0].lapsed_by, Some(by));
    assert_eq!(verdicts[1], rejection);

    // A value the lifecycle does not know is a corrupt row, never a default (verdicts have
    // a CHECK constraint in the schema as well).
    for (sql, column, value) in [
        (
            "UPDATE proposals SET state = 'Authorised'",
            "column state",
            "Authorised",
        ),
        (
            "UPDATE proposals SET state = 'authorized', tier = 'yolo'",
            "column tier",
            "yolo",
        ),
    ] {
        db.tamper(sql, sql).await;
        let error = store.proposal("proposal-1").await.unwrap_err().to_string();
        assert!(error.contains(column) && error.contains(value), "{error}");
    }
    store.ping().await.unwrap();
    store.close().await;
}
