//! Writes that share a round trip: several leaves appended by one `Tx::append`, a decided
//! proposal's entries, decision and proposal by one `Tx::append_decided` (and, with the
//! transaction's commit, by `Store::commit_decided`), and blobs not sent again once a committed
//! transaction stored them. Each must leave exactly what the one-by-one writes leave, and a
//! failure must leave nothing behind. Also: SQLite's write-ahead log stays short, checkpointed
//! by the batches rather than by the commits.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::{Db, event, signer};
use countersign_store::{Decision, Error, Leaf, Proposal, verify};
use serde_json::json;

fn proposal(id: &str, decision: &str) -> Proposal {
    Proposal {
        id: id.to_owned(),
        repo: "shop".to_owned(),
        base: "a".repeat(40),
        head: "b".repeat(40),
        title: "a change".to_owned(),
        description: String::new(),
        author: "agent:fixbot".to_owned(),
        state: "awaiting_approval".parse().unwrap(),
        tier: "single_approver".parse().unwrap(),
        decision: decision.to_owned(),
        created_at: "2026-01-02T03:04:05Z".to_owned(),
        authors: vec!["human:alice".to_owned()],
        diff_digest: "d".repeat(64),
        superseded_by: None,
        closed_reason: None,
        dispatched_by: None,
    }
}

fn decision(id: &str, subject: &str) -> Decision {
    Decision {
        id: id.to_owned(),
        subject: subject.to_owned(),
        tier: "single_approver".parse().unwrap(),
        record: json!({ "tier": "single_approver", "reasons": ["r"] }),
        // Set by `append_decided`.
        log_index: u64::MAX,
    }
}

async fn append_in_chunks_is_append_one_by_one(one: &Db, chunked: &Db) {
    let (a, b) = (one.store().await, chunked.store().await);
    let total = 41u64;
    for n in 0..total {
        let mut tx = a.begin().await.unwrap();
        assert_eq!(tx.append_event(&event(n)).await.unwrap(), n);
        tx.commit().await.unwrap();
    }
    // Chunks of 1, 2, 3, 4, 5, 1, 2, …: every position of a chunk meets every tree shape.
    let mut n = 0u64;
    let mut size = 1u64;
    while n < total {
        let chunk: Vec<Leaf> = (n..(n + size).min(total))
            .map(|i| Leaf::new(&event(i)).unwrap())
            .collect();
        let mut tx = b.begin().await.unwrap();
        let indexes = tx.append(&chunk).await.unwrap();
        assert_eq!(indexes, (n..n + chunk.len() as u64).collect::<Vec<_>>());
        tx.commit().await.unwrap();
        n += chunk.len() as u64;
        size = size % 5 + 1;
    }
    assert_eq!(b.log_size().await.unwrap(), total);
    for size in [1, 2, 7, 8, 9, 32, total] {
        assert_eq!(
            a.tree_hash(size).await.unwrap(),
            b.tree_hash(size).await.unwrap(),
            "tree hash at size {size}"
        );
    }
    assert_eq!(
        a.entries(0..total).await.unwrap(),
        b.entries(0..total).await.unwrap()
    );
    b.sign_checkpoint(&signer()).await.unwrap();
    verify(&b, &[signer().verifier()]).await.unwrap();
    a.close().await;
    b.close().await;
}

async fn append_decided_writes_all_or_nothing(db: &Db) {
    let store = db.store().await;
    let mut tx = store.begin().await.unwrap();
    tx.append_event(&event(0)).await.unwrap();
    tx.commit().await.unwrap();

    let leaves: Vec<Leaf> = (1..=3).map(|n| Leaf::new(&event(n)).unwrap()).collect();
    let mut tx = store.begin().await.unwrap();
    let mut d = decision("p-1@b", "p-1");
    let indexes = tx
        .append_decided(&leaves, 1, &mut d, &proposal("p-1", "p-1@b"))
        .await
        .unwrap();
    assert_eq!(indexes, vec![1, 2, 3]);
    assert_eq!(d.log_index, 2, "the decision points at leaves[1]");
    tx.commit().await.unwrap();
    assert_eq!(store.decision("p-1@b").await.unwrap(), Some(d.clone()));
    assert_eq!(
        store.proposal("p-1").await.unwrap(),
        Some(proposal("p-1", "p-1@b"))
    );
    assert_eq!(store.log_size().await.unwrap(), 4);

    // A proposal id that exists: refused, and nothing of it is left, the log included.
    let mut tx = store.begin().await.unwrap();
    let mut again = decision("p-1@c", "p-1");
    let more: Vec<Leaf> = (4..=5).map(|n| Leaf::new(&event(n)).unwrap()).collect();
    let refused = tx
        .append_decided(&more, 0, &mut again, &proposal("p-1", "p-1@c"))
        .await;
    assert!(
        matches!(refused, Err(Error::Duplicate { .. })),
        "{refused:?}"
    );
    tx.rollback().await.unwrap();
    assert_eq!(store.decision("p-1@c").await.unwrap(), None);
    assert_eq!(store.log_size().await.unwrap(), 4);

    // An index past the leaves: refused before anything is written.
    let mut tx = store.begin().await.unwrap();
    let mut none = decision("p-2@b", "p-2");
    let refused = tx
        .append_decided(&more, 2, &mut none, &proposal("p-2", "p-2@b"))
        .await;
    assert!(refused.is_err());
    // The same transaction goes on: the failed call left no entry behind.
    assert_eq!(tx.append(&more).await.unwrap(), vec![4, 5]);
    tx.commit().await.unwrap();
    assert_eq!(store.log_size().await.unwrap(), 6);
    store.sign_checkpoint(&signer()).await.unwrap();
    verify(&store, &[signer().verifier()]).await.unwrap();

    // Listing: newest first by default; oldest first reads from the other end (the
    // console's next actions show what waited longest even past the limit).
    for id in ["p-3", "p-4"] {
        let mut tx = store.begin().await.unwrap();
        let leaf = [Leaf::new(&event(10)).unwrap()];
        tx.append_decided(
            &leaf,
            0,
            &mut decision(&format!("{id}@b"), id),
            &proposal(id, &format!("{id}@b")),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let ids = |list: Vec<Proposal>| list.into_iter().map(|p| p.id).collect::<Vec<_>>();
    let listed = |oldest_first| countersign_store::ProposalFilter {
        limit: 2,
        oldest_first,
        ..Default::default()
    };
    assert_eq!(
        ids(store.proposals(&listed(false)).await.unwrap()),
        ["p-4", "p-3"]
    );
    assert_eq!(
        ids(store.proposals(&listed(true)).await.unwrap()),
        ["p-1", "p-3"]
    );
    store.close().await;
}

/// `future`, dropped unfinished once it was polled `polls` times.
async fn give_up_after<F: std::future::Future>(polls: usize, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut left = polls;
    std::future::poll_fn(|cx| {
        if left == 0 {
            return std::task::Poll::Ready(None);
        }
        left -= 1;
        future.as_mut().poll(cx).map(Some)
    })
    .await
}

/// Many proposals opened at once by `commit_decided` (so batches of many members form), some
/// with an id taken already (refused), some abandoned by their caller mid-way (a client
/// gone): every proposal is there with its three entries and its decision, or nothing of it
/// is; the log is exactly the entries of the proposals that are there, and it verifies.
async fn commit_decided_in_concurrent_batches(db: &Db) {
    use std::sync::Arc;
    let store = Arc::new(db.store().await);
    let writers = 96u64;
    let mut tasks = Vec::new();
    for n in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Every eighth writer reuses the id of the writer before it: one of the two
            // is refused, whichever comes second.
            let id = if n % 8 == 7 { n - 1 } else { n };
            let leaves: Vec<Leaf> = (0..3)
                .map(|k| Leaf::new(&event(1000 * n + k)).unwrap())
                .collect();
            let write = store.commit_decided(
                Vec::new(),
                leaves,
                1,
                decision(&format!("p-{n}@b"), &format!("p-{id}")),
                proposal(&format!("p-{id}"), &format!("p-{n}@b")),
            );
            // Some callers give up (a client gone), each after a different number of
            // polls: before they began, while waiting for their batch, with their write
            // sent but not answered, while their batch commits.
            if n % 3 == 1 {
                give_up_after(n as usize % 9, write).await
            } else {
                Some(write.await)
            }
        }));
    }
    let mut answered = std::collections::BTreeMap::new();
    let mut refused = 0;
    for (n, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Some(Ok(indexes)) => {
                answered.insert(n as u64, indexes);
            }
            Some(Err(Error::Duplicate { .. })) => refused += 1,
            Some(Err(e)) => panic!("writer {n}: {e}"),
            None => {}
        }
    }
    assert!(answered.len() > writers as usize / 3, "{answered:?}");
    assert!(refused >= 1, "a reused id is refused");
    // The abandoned ones may or may not be there: each is whole or absent.
    let mut present = 0u64;
    for n in 0..writers {
        let Some(d) = store.decision(&format!("p-{n}@b")).await.unwrap() else {
            assert!(!answered.contains_key(&n), "writer {n} answered but absent");
            continue;
        };
        present += 1;
        let id = if n % 8 == 7 { n - 1 } else { n };
        let stored = store.proposal(&format!("p-{id}")).await.unwrap().unwrap();
        assert_eq!(stored.decision, format!("p-{n}@b"));
        // The decision points at the middle one of its three consecutive entries.
        let entries = store
            .entries(d.log_index - 1..d.log_index + 2)
            .await
            .unwrap();
        for (k, entry) in entries.iter().enumerate() {
            assert_eq!(
                entry.event().unwrap(),
                event(1000 * n + k as u64),
                "writer {n}"
            );
        }
        if let Some(indexes) = answered.get(&n) {
            assert_eq!(
                indexes,
                &vec![d.log_index - 1, d.log_index, d.log_index + 1]
            );
        }
    }
    assert_eq!(store.log_size().await.unwrap(), 3 * present);
    store.sign_checkpoint(&signer()).await.unwrap();
    verify(&store, &[signer().verifier()]).await.unwrap();
    store.close().await;
}

/// A decided proposal whose write fails for a reason other than a taken proposal id (here a
/// taken decision id, which no caller makes) while an earlier transaction waits for their
/// shared batch to commit. On SQLite the write has a savepoint; on PostgreSQL it would have
/// none, except that an earlier member could not write again, so it takes one: either way
/// only it is refused, the earlier transaction commits, nothing of the refused write is
/// stored, and the log verifies.
async fn a_failed_write_never_fails_its_batch_mates(db: &Db, postgres: bool) {
    let store = db.store().await;
    let leaves = |n: u64| -> Vec<Leaf> { vec![Leaf::new(&event(n)).unwrap()] };
    store
        .commit_decided(
            Vec::new(),
            leaves(0),
            0,
            decision("d-taken", "p-0"),
            proposal("p-0", "d-taken"),
        )
        .await
        .unwrap();
    // The earlier transaction holds the batch while the failing write queues behind it.
    let mut earlier = store.begin().await.unwrap();
    earlier.append_event(&event(1)).await.unwrap();
    let failing = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .commit_decided(
                    Vec::new(),
                    leaves(2),
                    0,
                    decision("d-taken", "p-2"),
                    proposal("p-2", "d-taken"),
                )
                .await
        }
    });
    // Until it waits for the batch (it cannot finish before `earlier` does).
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!failing.is_finished());
    earlier.commit().await.unwrap();
    let failed = failing.await.unwrap();
    if postgres {
        assert!(
            matches!(failed, Err(Error::Database { .. })),
            "a taken decision id aborts the statement: {failed:?}"
        );
    } else {
        assert!(matches!(failed, Err(Error::Duplicate { .. })), "{failed:?}");
    }
    assert_eq!(store.proposal("p-2").await.unwrap(), None);
    assert_eq!(store.log_size().await.unwrap(), 2);
    // The store goes on: the next proposal is opened after what was kept.
    let indexes = store
        .commit_decided(
            Vec::new(),
            leaves(3),
            0,
            decision("d-3", "p-3"),
            proposal("p-3", "d-3"),
        )
        .await
        .unwrap();
    assert_eq!(indexes, vec![2]);
    store.sign_checkpoint(&signer()).await.unwrap();
    verify(&store, &[signer().verifier()]).await.unwrap();
    store.close().await;
}

/// Valid proposals opened at once beside writes that fail in the database (a taken decision
/// id) and plain transactions: whatever batches form, every valid proposal and every plain
/// transaction is written, each failing write is refused alone, and the log verifies. (On
/// PostgreSQL a failed statement aborts its whole transaction: the batch-mates of a failing
/// write used to be rolled back with it and answered an error.)
async fn failing_writes_never_cost_others_theirs(db: &Db) {
    use std::sync::Arc;
    let store = Arc::new(db.store().await);
    store
        .commit_decided(
            Vec::new(),
            vec![Leaf::new(&event(0)).unwrap()],
            0,
            decision("d-taken", "p-taken"),
            proposal("p-taken", "d-taken"),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for n in 1..=60u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            if n % 10 == 5 {
                // A plain transaction (an approval, a head move): it has a savepoint.
                let mut tx = store.begin().await?;
                tx.append_event(&event(1000 * n)).await?;
                return tx.commit().await.map(|()| vec![]);
            }
            let d = if n % 4 == 0 {
                "d-taken".to_owned()
            } else {
                format!("d-{n}")
            };
            let leaves: Vec<Leaf> = (0..3)
                .map(|k| Leaf::new(&event(1000 * n + k)).unwrap())
                .collect();
            store
                .commit_decided(
                    Vec::new(),
                    leaves,
                    1,
                    decision(&d, &format!("p-{n}")),
                    proposal(&format!("p-{n}"), &d),
                )
                .await
        }));
    }
    let mut written = 1;
    for (n, task) in (1u64..).zip(tasks) {
        let result = task.await.unwrap();
        if n % 4 == 0 && n % 10 != 5 {
            assert!(
                result.is_err(),
                "writer {n} reused a decision id: {result:?}"
            );
            assert_eq!(store.proposal(&format!("p-{n}")).await.unwrap(), None);
        } else {
            let indexes = result.unwrap_or_else(|e| panic!("writer {n}: {e}"));
            written += if n % 10 == 5 { 1 } else { 3 };
            if n % 10 != 5 {
                let d = store.decision(&format!("d-{n}")).await.unwrap().unwrap();
                assert_eq!(indexes[1], d.log_index, "writer {n}");
            }
        }
    }
    assert_eq!(store.log_size().await.unwrap(), written);
    store.sign_checkpoint(&signer()).await.unwrap();
    verify(&store, &[signer().verifier()]).await.unwrap();
    store.close().await;
}

async fn a_blob_of_a_rolled_back_transaction_is_stored_again(db: &Db) {
    let store = db.store().await;
    let content = b"catalog-info.yaml contents".to_vec();
    let mut tx = store.begin().await.unwrap();
    let digest = tx.put_blob(&content).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(store.blob(&digest).await.unwrap(), None);

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.put_blob(&content).await.unwrap(), digest);
    tx.commit().await.unwrap();
    assert_eq!(store.blob(&digest).await.unwrap(), Some(content.clone()));
    // Known now: a later transaction names it without storing it, and it is still there.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.put_blob(&content).await.unwrap(), digest);
    tx.commit().await.unwrap();
    assert_eq!(store.blob(&digest).await.unwrap(), Some(content));
    store.close().await;
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn append_in_chunks_is_append_one_by_one() {
        let (one, chunked) = (super::Db::sqlite().await, super::Db::sqlite().await);
        super::append_in_chunks_is_append_one_by_one(&one, &chunked).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn append_decided_writes_all_or_nothing() {
        let db = super::Db::sqlite().await;
        super::append_decided_writes_all_or_nothing(&db).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blob_of_a_rolled_back_transaction_is_stored_again() {
        let db = super::Db::sqlite().await;
        super::a_blob_of_a_rolled_back_transaction_is_stored_again(&db).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commit_decided_in_concurrent_batches() {
        let db = super::Db::sqlite().await;
        super::commit_decided_in_concurrent_batches(&db).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_never_fails_its_batch_mates() {
        let db = super::Db::sqlite().await;
        super::a_failed_write_never_fails_its_batch_mates(&db, false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_writes_never_cost_others_theirs() {
        let db = super::Db::sqlite().await;
        super::failing_writes_never_cost_others_theirs(&db).await;
    }

    /// The connections never checkpoint (`wal_autocheckpoint=0`); the batches do, every
    /// so many members. Without that the WAL of 600 commits of ~6 pages each would be
    /// about 15 MB; with it, it restarts from its beginning after each checkpoint.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_write_ahead_log_stays_short() {
        let db = super::Db::sqlite().await;
        let store = db.store().await;
        for n in 0..600 {
            let mut tx = store.begin().await.unwrap();
            tx.append_event(&super::event(n)).await.unwrap();
            tx.commit().await.unwrap();
        }
        let wal = db.sqlite_path().unwrap().with_extension("db-wal");
        let size = std::fs::metadata(&wal).unwrap().len();
        assert!(size < 6 << 20, "{} is {size} bytes", wal.display());
        assert_eq!(store.log_size().await.unwrap(), 600);
        store.close().await;
    }

    /// Large blobs (evidence envelopes) count too: 24 transactions of a 1 MiB blob each are
    /// far fewer members than the mark, and would leave a WAL of 24 MiB without it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_blobs_are_checkpointed_too() {
        let db = super::Db::sqlite().await;
        let store = db.store().await;
        for n in 0..24u8 {
            let mut tx = store.begin().await.unwrap();
            tx.put_blob(&vec![n; 1 << 20]).await.unwrap();
            tx.commit().await.unwrap();
        }
        let wal = db.sqlite_path().unwrap().with_extension("db-wal");
        let size = std::fs::metadata(&wal).unwrap().len();
        assert!(size < 10 << 20, "{} is {size} bytes", wal.display());
        store.close().await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn append_in_chunks_is_append_one_by_one() {
        let (Some(one), Some(chunked)) = (super::Db::postgres().await, super::Db::postgres().await)
        else {
            return;
        };
        super::append_in_chunks_is_append_one_by_one(&one, &chunked).await;
        one.cleanup().await;
        chunked.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn append_decided_writes_all_or_nothing() {
        let Some(db) = super::Db::postgres().await else {
            return;
        };
        super::append_decided_writes_all_or_nothing(&db).await;
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blob_of_a_rolled_back_transaction_is_stored_again() {
        let Some(db) = super::Db::postgres().await else {
            return;
        };
        super::a_blob_of_a_rolled_back_transaction_is_stored_again(&db).await;
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commit_decided_in_concurrent_batches() {
        let Some(db) = super::Db::postgres().await else {
            return;
        };
        super::commit_decided_in_concurrent_batches(&db).await;
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_never_fails_its_batch_mates() {
        let Some(db) = super::Db::postgres().await else {
            return;
        };
        super::a_failed_write_never_fails_its_batch_mates(&db, true).await;
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_writes_never_cost_others_theirs() {
        let Some(db) = super::Db::postgres().await else {
            return;
        };
        super::failing_writes_never_cost_others_theirs(&db).await;
        db.cleanup().await;
    }
}
