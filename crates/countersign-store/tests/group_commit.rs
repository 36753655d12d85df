//! Group commit: concurrent transactions share database commits, yet each one is kept or
//! undone on its own. Writers that commit, roll back, fail on a statement, are dropped
//! mid-way or are cancelled mid-commit run in the same batches; exactly the committed ones end up in the log, which
//! verifies, and the store stays usable afterwards.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Db, event, signer};
use countersign_store::{Decision, Error, verify};
use serde_json::json;

fn decision(id: &str, log_index: u64) -> Decision {
    Decision {
        id: id.to_owned(),
        subject: "p-1".to_owned(),
        tier: "auto_merge".parse().unwrap(),
        record: json!({}),
        log_index,
    }
}

async fn each_member_is_kept_or_undone_alone(db: &Db) {
    let store = db.store().await;
    let mut tx = store.begin().await.unwrap();
    let first = tx.append_event(&event(10_000)).await.unwrap();
    tx.put_decision(&decision("d-taken", first)).await.unwrap();
    tx.commit().await.unwrap();

    let tasks: Vec<_> = (0..64u64)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                let index = tx.append_event(&event(n)).await.unwrap();
                match n % 5 {
                    0 => {
                        tx.put_decision(&decision(&format!("d-{n}"), index))
                            .await
                            .unwrap();
                        tx.commit().await.unwrap();
                        Some(n)
                    }
                    1 => {
                        tx.rollback().await.unwrap();
                        None
                    }
                    2 => {
                        // A failing statement (on PostgreSQL it aborts the transaction
                        // unless undone to the member's savepoint), then dropped.
                        let error = tx.put_decision(&decision("d-taken", index)).await;
                        assert!(matches!(error, Err(Error::Duplicate { .. })), "{error:?}");
                        None
                    }
                    3 => {
                        drop(tx);
                        None
                    }
                    _ => {
                        // The caller gives up mid-commit (a client gone): the work is
                        // committed with its batch all the same, never half-released.
                        tx.put_decision(&decision(&format!("d-{n}"), index))
                            .await
                            .unwrap();
                        let _ = tokio::time::timeout(Duration::ZERO, tx.commit()).await;
                        Some(n)
                    }
                }
            })
        })
        .collect();
    let mut kept = BTreeSet::new();
    for task in tasks {
        if let Some(n) = task.await.unwrap() {
            kept.insert(n);
        }
    }
    assert_eq!(kept.len(), 25);
    // Still usable at once: the dropped members released the batch.
    let mut tx = tokio::time::timeout(Duration::from_secs(10), store.begin())
        .await
        .expect("a new transaction starts after dropped ones")
        .unwrap();
    let last = tx.append_event(&event(20_000)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(last, 26, "exactly the committed entries precede it");

    let logged: BTreeSet<u64> = store
        .entries(1..26)
        .await
        .unwrap()
        .iter()
        .map(|e| {
            let event = e.event().unwrap();
            (0..64).find(|n| common::event(*n) == event).unwrap()
        })
        .collect();
    assert_eq!(logged, kept);
    for n in &kept {
        let stored = store.decision(&format!("d-{n}")).await.unwrap().unwrap();
        assert_eq!(
            store
                .entry(stored.log_index)
                .await
                .unwrap()
                .event()
                .unwrap(),
            event(*n)
        );
    }
    store.sign_checkpoint(&signer()).await.unwrap();
    assert_eq!(
        verify(&store, &[signer().verifier()]).await.unwrap().size,
        27
    );
    store.close().await;
}

/// A later member of a batch sees what an earlier one wrote before it is committed, and
/// other connections do not: so what a transaction depends on is read through it
/// (`Tx::decision`), and nobody is answered before the batch is durable.
async fn a_batch_sees_its_own_writes_first(db: &Db) {
    let store = db.store().await;
    let mut first = store.begin().await.unwrap();
    let index = first.append_event(&event(1)).await.unwrap();
    first.put_decision(&decision("d-new", index)).await.unwrap();
    // The second transaction waits to join the batch `first` holds.
    let second = tokio::spawn({
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            let through_tx = tx.decision("d-new").await.unwrap();
            let through_store = store.decision("d-new").await.unwrap();
            tx.commit().await.unwrap();
            (through_tx, through_store)
        }
    });
    // Give it time to queue: with someone waiting, `first`'s commit leaves the batch open.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let committed = tokio::spawn(first.commit());
    let (through_tx, through_store) = second.await.unwrap();
    committed.await.unwrap().unwrap();
    assert_eq!(through_tx.map(|d| d.log_index), Some(index));
    assert!(
        through_store.is_none(),
        "another connection saw an uncommitted batch"
    );
    // Both answered only after the batch committed: now everyone sees it.
    assert!(store.decision("d-new").await.unwrap().is_some());
    store.close().await;
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_member_is_kept_or_undone_alone() {
        let db = super::Db::sqlite().await;
        super::each_member_is_kept_or_undone_alone(&db).await;
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_sees_its_own_writes_first() {
        let db = super::Db::sqlite().await;
        super::a_batch_sees_its_own_writes_first(&db).await;
        db.cleanup().await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_member_is_kept_or_undone_alone() {
        let Some(db) = super::Db::postgres().await else {
            return;
        };
        super::each_member_is_kept_or_undone_alone(&db).await;
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_sees_its_own_writes_first() {
        let Some(db) = super::Db::postgres().await else {
            return;
        };
        super::a_batch_sees_its_own_writes_first(&db).await;
        db.cleanup().await;
    }
}
