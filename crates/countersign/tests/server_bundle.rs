//! A decision made by the server exports to a bundle that `countersign bundle verify`
//! re-derives, like one recorded by `countersign evaluate --record`: both record through
//! countersign-decide. The server runs in-process on 127.0.0.1:0 over the demo repository's
//! local log; everything else is the real binary.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::*;

use std::collections::BTreeMap;
use std::path::Path;

use countersign_policy::Principal;
use countersign_server::{AppState, Clock, Role, create_token};
use countersign_store::Store;
use serde_json::{Value, json};

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_decision_exports_to_a_bundle_that_re_derives_offline() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("shop");
    ok(countersign(&[
        "demo",
        "--dir",
        s(&repo),
        "--format",
        "json",
        "--no-serve",
    ]));
    let key = dir.path().join("log.key");
    ok(countersign(&[
        "log",
        "keygen",
        "--origin",
        "countersign.test/shop",
        "--out",
        s(&key),
    ]));
    let public = dir.path().join("log.pub");

    // The repository's local log, the one `bundle export --repo` reads.
    let state = repo.join(".countersign/state");
    std::fs::create_dir_all(&state).unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        state.join("countersign.db").display()
    );
    let store = Store::connect(&url).await.unwrap();
    let now = 1_767_603_600;
    let principal: Principal = "agent:docsbot".parse().unwrap();
    let (token, _) = create_token(&store, &principal, Role::Proposer, now + 3600, [7; 32])
        .await
        .unwrap();
    let repos = BTreeMap::from([("shop".to_owned(), repo.clone())]);
    let signer =
        countersign_audit::Signer::parse(std::fs::read_to_string(&key).unwrap().trim()).unwrap();
    let app = AppState::new(store.clone(), repos, Clock::fixed(now as u64)).with_log_signer(signer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(countersign_server::run(listener, app, async move {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for head in ["demo/docs-typo", "demo/payments-retry"] {
        let response = client
            .post(format!("{base}/v1/proposals"))
            .bearer_auth(&token)
            .json(&json!({ "repo": "shop", "base": "main", "head": head, "title": head }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let proposal: Value = response.json().await.unwrap();
        ids.push(proposal["id"].as_str().unwrap().to_owned());
    }
    // The same bundles over HTTP, as `GET /v1/proposals/{id}/bundle` serves them.
    for id in &ids {
        let response = client
            .get(format!("{base}/v1/proposals/{id}/bundle"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let bytes = response.bytes().await.unwrap();
        std::fs::write(dir.path().join(format!("{id}.server.bundle.json")), bytes).unwrap();
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    store.close().await;

    for id in &ids {
        let bundle = dir.path().join(format!("{id}.bundle.json"));
        ok(countersign(&[
            "bundle",
            "export",
            "--repo",
            s(&repo),
            id,
            "--out",
            s(&bundle),
            "--log-key",
            s(&key),
        ]));
        let served = dir.path().join(format!("{id}.server.bundle.json"));
        for file in [&bundle, &served] {
            let out = ok(countersign(&[
                "bundle",
                "verify",
                s(file),
                "--log-key",
                s(&public),
            ]));
            assert!(
                out.contains("re-derived: same tier, reasons and versions"),
                "{id}: {out}"
            );
        }
    }
}
