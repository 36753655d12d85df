//! Two server instances sharing one database, requests spread over both: concurrent
//! approvals never double-count (by the same human or by two for `change_control`), and
//! concurrent proposals never fork the log, which verifies and extends its earlier
//! checkpoints afterwards. PostgreSQL is the replica deployment; SQLite (two pools on one
//! file) must hold the same guarantees.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Db, NOW, Server, start};
use countersign_audit::Signer;
use countersign_server::{AppState, Clock};
use countersign_store::Store;
use serde_json::{Value, json};

/// A second `run` on its own listener and its own pool, over the same database and
/// repository as `server`.
struct Replica {
    base: String,
    store: Store,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn replica(server: &Server, db: &Db) -> Replica {
    let store = Store::connect(db.url()).await.unwrap();
    let repos = BTreeMap::from([("shop".to_owned(), server.repo.path.clone())]);
    let state = AppState::new(store.clone(), repos, Clock::fixed(NOW));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(countersign_server::run(listener, state, async move {
        let _ = stopped.await;
    }));
    Replica {
        base,
        store,
        stop,
        task,
    }
}

impl Replica {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
        self.store.close().await;
    }
}

/// POSTs `body` to `path` on `base` as `token`, in a task so requests run concurrently.
fn post(
    server: &Server,
    base: &str,
    token: &str,
    path: &str,
    body: Value,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let request = server
        .client
        .post(format!("{base}{path}"))
        .bearer_auth(&server.tokens[token])
        .json(&body);
    tokio::spawn(async move {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    })
}

async fn approvals_across_replicas_never_double_count(db: &Db) {
    let server = start(db).await;
    let other = replica(&server, db).await;
    let bases = [server.base.clone(), other.base.clone()];
    let head = server.repo.payments.clone();

    // change_control: alice and bob, each eight times, alternating between the servers.
    let (status, proposal) = server.propose("fixbot", &head).await;
    assert_eq!(
        (status.as_u16(), proposal["tier"].as_str()),
        (201, Some("change_control")),
        "{proposal}"
    );
    let id = proposal["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/proposals/{id}/approvals");
    let verdict = json!({ "head": head, "verdict": "approve" });
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let who = if i % 2 == 0 { "alice" } else { "bob" };
            post(&server, &bases[(i / 2) % 2], who, &path, verdict.clone())
        })
        .collect();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let approvals = server.store.approvals(&id).await.unwrap();
    let approvers: BTreeSet<_> = approvals.iter().map(|a| a.approver.as_str()).collect();
    assert_eq!(
        (approvals.len(), approvers),
        (2, BTreeSet::from(["human:alice", "human:bob"]))
    );
    for base in &bases {
        let shown: Value = server
            .client
            .get(format!("{base}/v1/proposals/{id}"))
            .bearer_auth(&server.tokens["auditor"])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (shown["state"].as_str(), shown["approvals_counted"].as_u64()),
            (Some("authorized"), Some(2)),
            "{shown}"
        );
    }
    // proposed, decided, two approved, one authorized: no repeat was logged.
    let kinds: Vec<String> = server
        .store
        .entries_about(&id)
        .await
        .unwrap()
        .iter()
        .map(|e| format!("{:?}", e.event().unwrap().kind))
        .collect();
    assert_eq!(
        kinds,
        ["Proposed", "Decided", "Approved", "Approved", "Authorized"]
    );

    // One human sixteen times over both servers counts once and authorizes nothing.
    let (_, proposal) = server.propose("fixbot", &head).await;
    let id = proposal["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/proposals/{id}/approvals");
    let tasks: Vec<_> = (0..16)
        .map(|i| post(&server, &bases[i % 2], "carol", &path, verdict.clone()))
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().0, 200);
    }
    assert_eq!(server.store.approvals(&id).await.unwrap().len(), 1);
    let (_, shown) = server
        .send(
            reqwest::Method::GET,
            &format!("/v1/proposals/{id}"),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(
        (shown["state"].as_str(), shown["approvals_counted"].as_u64()),
        (Some("awaiting_approval"), Some(1)),
        "{shown}"
    );
    other.stop().await;
    server.stop().await;
}

/// Log entries a created proposal appended: proposed, decided, and authorized when automated.
fn entries_of(proposal: &Value) -> u64 {
    if proposal["state"] == "authorized" {
        3
    } else {
        2
    }
}

async fn concurrent_proposals_across_replicas_never_fork_the_log(db: &Db) {
    let server = start(db).await;
    let other = replica(&server, db).await;
    let bases = [server.base.clone(), other.base.clone()];
    let signer = Signer::from_seed("countersign.test/replicas", [9; 32]).unwrap();
    let heads = [
        server.repo.docs.clone(),
        server.repo.payments.clone(),
        server.repo.shop.clone(),
    ];
    let mut expected = 0;
    let mut ids = BTreeSet::new();
    let mut checkpoints = Vec::new();
    for round in 0..2 {
        let tasks: Vec<_> = (0..24)
            .map(|i| {
                let body = json!({
                    "repo": "shop", "base": server.repo.base, "head": heads[i % 3],
                    "title": format!("round {round} change {i}"),
                });
                post(&server, &bases[i % 2], "fixbot", "/v1/proposals", body)
            })
            .collect();
        for task in tasks {
            let (status, proposal) = task.await.unwrap();
            assert_eq!(status, 201, "{proposal}");
            expected += entries_of(&proposal);
            assert!(ids.insert(proposal["id"].as_str().unwrap().to_owned()));
        }
        // Both pools see one log of exactly the appended size.
        assert_eq!(server.store.log_size().await.unwrap(), expected);
        assert_eq!(other.store.log_size().await.unwrap(), expected);
        let checkpoint = other.store.sign_checkpoint(&signer).await.unwrap();
        assert_eq!(checkpoint.size, expected);
        checkpoints.push(checkpoint.size);
    }
    // Every entry is in place and the later checkpoint extends the earlier one.
    let verified = countersign_store::verify(&server.store, &[signer.verifier()])
        .await
        .unwrap();
    assert_eq!((verified.size, verified.beyond_checkpoint), (expected, 0));
    let (old, new) = (checkpoints[0], checkpoints[1]);
    let proof = server.store.consistency_proof(old, new).await.unwrap();
    proof
        .verify(
            old,
            &server.store.tree_hash(old).await.unwrap(),
            new,
            &other.store.tree_hash(new).await.unwrap(),
        )
        .unwrap();
    // Each proposal's entries name it, as many as its state says.
    for id in &ids {
        let entries = server.store.entries_about(id).await.unwrap();
        assert!(
            (2..=3).contains(&entries.len()),
            "{id}: {} entries",
            entries.len()
        );
    }
    other.stop().await;
    server.stop().await;
}

on_both_backends!(
    approvals_across_replicas_never_double_count,
    concurrent_proposals_across_replicas_never_fork_the_log,
);
