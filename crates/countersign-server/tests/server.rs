//! The real server on 127.0.0.1:0 against a repository written with `RepoWriter`: every
//! scenario on SQLite, and on a fresh PostgreSQL schema when one is reachable (skipped with
//! the reason printed, except under CI=true where it must run).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{Db, start};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn health_and_documents(db: &Db) {
    let server = start(db).await;
    let get = |path: &'static str| server.client.get(format!("{}{path}", server.base)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let openapi: Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    assert!(
        openapi["openapi"].as_str().unwrap().starts_with("3.1"),
        "{openapi}"
    );
    for path in [
        "/v1/proposals",
        "/v1/proposals/{id}",
        "/v1/proposals/{id}/approvals",
        "/v1/authorizations",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert_eq!(
        openapi,
        serde_json::to_value(countersign_server::openapi()).unwrap()
    );
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(
            r#"countersign_http_requests_total{method="GET",route="/healthz",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("countersign_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    server.stop().await;
}

async fn refusals(db: &Db) {
    let server = start(db).await;
    let s = &server;
    use reqwest::Method as M;
    // 401: none, unknown, expired.
    assert_eq!(s.send(M::GET, "/v1/proposals/p-1", None, None).await.0, 401);
    let (status, problem) = s
        .send(M::GET, "/v1/proposals/p-1", Some("expired"), None)
        .await;
    assert_eq!(
        (status, problem["detail"].as_str().unwrap()),
        (StatusCode::UNAUTHORIZED, "the token has expired")
    );
    let unknown = s
        .client
        .get(format!("{}/v1/proposals/p-1", s.base))
        .bearer_auth("cst_00")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
    // 404, 403 (an auditor cannot propose), 422 (bad body, unknown repo, bad revision).
    assert_eq!(
        s.send(M::GET, "/v1/proposals/p-1", Some("auditor"), None)
            .await
            .0,
        404
    );
    assert_eq!(s.propose("auditor", &s.repo.docs).await.0, 403);
    assert_eq!(
        s.send(
            M::POST,
            "/v1/proposals",
            Some("fixbot"),
            Some(json!({ "repo": "shop" }))
        )
        .await
        .0,
        422
    );
    let body = json!({ "repo": "nope", "base": "HEAD", "head": "HEAD", "title": "t" });
    assert_eq!(
        s.send(M::POST, "/v1/proposals", Some("fixbot"), Some(body))
            .await
            .0,
        422
    );
    assert_eq!(s.propose("fixbot", "no-such-revision").await.0, 422);
    assert_eq!(
        s.send(
            M::GET,
            "/v1/authorizations?repo=shop",
            Some("auditor"),
            None
        )
        .await
        .0,
        422
    );
    server.stop().await;
}

async fn automated_change_is_authorized_at_once(db: &Db) {
    let server = start(db).await;
    let (status, proposal) = server.propose("fixbot", &server.repo.docs).await;
    assert_eq!(status, 201, "{proposal}");
    assert_eq!(proposal["state"], "authorized", "{proposal}");
    let (_, shown) = server
        .send(
            reqwest::Method::GET,
            &format!("/v1/proposals/{}", proposal["id"].as_str().unwrap()),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(shown["state"], "authorized");
    let path = format!(
        "/v1/authorizations?repo=shop&ref=refs/heads/main&old={}&commit={}",
        server.repo.base, server.repo.docs
    );
    let (_, auth) = server
        .send(reqwest::Method::GET, &path, Some("auditor"), None)
        .await;
    assert_eq!(auth["authorized"], true, "{auth}");
    let path = format!(
        "/v1/authorizations?repo=shop&old={}&commit={}",
        server.repo.base, server.repo.payments
    );
    let (_, auth) = server
        .send(reqwest::Method::GET, &path, Some("auditor"), None)
        .await;
    assert_eq!(auth["authorized"], false, "{auth}");
    // proposed, decided, authorized: one transaction.
    assert_eq!(server.store.log_size().await.unwrap(), 3);
    server.stop().await;
}

async fn idempotent_creation(db: &Db) {
    let server = start(db).await;
    let send = || {
        server
            .client
            .post(format!("{}/v1/proposals", server.base))
            .bearer_auth(&server.tokens["fixbot"])
            .header("Idempotency-Key", "k-1")
            .json(&json!({ "repo": "shop", "base": server.repo.base, "head": server.repo.docs, "title": "t" }))
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    assert_eq!(server.store.log_size().await.unwrap(), 3);
    server.stop().await;
}

async fn change_control_needs_two_distinct_humans(db: &Db) {
    let server = start(db).await;
    let head = server.repo.payments.clone();
    let (status, proposal) = server.propose("fixbot", &head).await;
    assert_eq!(status, 201, "{proposal}");
    assert_eq!(
        (proposal["tier"].as_str(), proposal["state"].as_str()),
        (Some("change_control"), Some("awaiting_approval")),
        "{proposal}"
    );
    let id = proposal["id"].as_str().unwrap();
    // An agent never approves, whatever its token's role; a stranger is not eligible.
    assert_eq!(
        server
            .verdict("agent-approver", id, &head, "approve")
            .await
            .0,
        403
    );
    assert_eq!(server.verdict("fixbot", id, &head, "approve").await.0, 403);
    assert_eq!(server.verdict("dave", id, &head, "approve").await.0, 403);
    assert_eq!(
        server
            .verdict("alice", id, &server.repo.base, "approve")
            .await
            .0,
        409
    );
    assert_eq!(
        server
            .send(
                reqwest::Method::POST,
                &format!("/v1/proposals/{id}/approvals"),
                Some("alice"),
                Some(json!({ "head": head, "verdict": "maybe" }))
            )
            .await
            .0,
        422
    );
    assert_eq!(
        server.verdict("alice", "p-none", &head, "approve").await.0,
        404
    );
    let (status, after) = server.verdict("alice", id, &head, "approve").await;
    assert_eq!(
        (
            status,
            after["state"].as_str(),
            after["approvals_counted"].as_u64()
        ),
        (StatusCode::OK, Some("awaiting_approval"), Some(1))
    );
    // Alice again counts once.
    let (_, after) = server.verdict("alice", id, &head, "approve").await;
    assert_eq!(after["approvals_counted"], 1);
    let (_, after) = server.verdict("bob", id, &head, "approve").await;
    assert_eq!(
        (after["state"].as_str(), after["approvals_counted"].as_u64()),
        (Some("authorized"), Some(2)),
        "{after}"
    );
    let path = format!(
        "/v1/authorizations?repo=shop&old={}&commit={head}",
        server.repo.base
    );
    assert_eq!(
        server
            .send(reqwest::Method::GET, &path, Some("auditor"), None)
            .await
            .1["authorized"],
        true
    );
    server.stop().await;
}

async fn author_cannot_approve_and_rejection_blocks(db: &Db) {
    let server = start(db).await;
    let head = server.repo.shop.clone();
    let (status, proposal) = server.propose("alice-proposer", &head).await;
    assert_eq!(status, 201, "{proposal}");
    assert_ne!(proposal["state"], "authorized", "{proposal}");
    let id = proposal["id"].as_str().unwrap();
    let (status, problem) = server.verdict("alice", id, &head, "approve").await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(
        server.verdict("bob", id, &head, "reject").await.1["state"],
        "rejected"
    );
    assert_eq!(server.verdict("carol", id, &head, "approve").await.0, 409);
    server.stop().await;
}

async fn concurrent_approvals_count_once(db: &Db) {
    let server = start(db).await;
    let head = server.repo.payments.clone();
    let (_, proposal) = server.propose("fixbot", &head).await;
    let id = proposal["id"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let request = server
            .client
            .post(format!("{}/v1/proposals/{id}/approvals", server.base))
            .bearer_auth(&server.tokens["alice"])
            .json(&json!({ "head": head, "verdict": "approve" }));
        tasks.push(tokio::spawn(request.send()));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().status(), 200);
    }
    let approvals = server.store.approvals(&id).await.unwrap();
    assert_eq!(approvals.len(), 1);
    let (_, shown) = server
        .send(
            reqwest::Method::GET,
            &format!("/v1/proposals/{id}"),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(
        (shown["approvals_counted"].as_u64(), shown["state"].as_str()),
        (Some(1), Some("awaiting_approval"))
    );
    // proposed, decided, one approved.
    assert_eq!(server.store.log_size().await.unwrap(), 3);
    server.stop().await;
}

/// A server decision is recorded in the CLI's format: its `inputs` blobs are in the store and
/// re-derive, with the same pipeline, to the recorded tier and versions.
async fn a_server_decision_re_derives_from_its_record(db: &Db) {
    let server = common::start_with(db, |state| state.with_log_signer(common::log_signer())).await;
    for head in [server.repo.docs.clone(), server.repo.payments.clone()] {
        let (status, proposal) = server.propose("fixbot", &head).await;
        assert_eq!(status, 201, "{proposal}");
        let id = proposal["id"].as_str().unwrap();
        let events: Vec<countersign_audit::Event> = server
            .store
            .entries_about(id)
            .await
            .unwrap()
            .iter()
            .map(|e| e.event().unwrap())
            .collect();
        let find = |kind: countersign_audit::EventKind| {
            events.iter().find(|e| e.kind == kind).unwrap().clone()
        };
        let proposed = find(countersign_audit::EventKind::Proposed);
        let decided = find(countersign_audit::EventKind::Decided);
        assert_eq!(proposal["decision"], decided.data);
        let mut inputs = BTreeMap::new();
        for (path, digest) in decided.data["inputs"].as_object().unwrap() {
            let content = match digest.as_str() {
                Some(d) => Some(server.store.blob(d).await.unwrap().unwrap()),
                None => None,
            };
            inputs.insert(path.clone(), content);
        }
        assert!(inputs.contains_key("catalog-info.yaml"), "{inputs:?}");
        let changes = proposed.data["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| countersign_repo::ChangedPath {
                path: c["path"].as_str().unwrap().to_owned(),
                kind: countersign_repo::ChangeKind::Modified,
            })
            .collect();
        let proposer = countersign_decide::evaluate::Proposer {
            author: proposed.data["author"].as_str().unwrap().to_owned(),
            declared_tier: None,
            dispatched_by: None,
        };
        let again = countersign_decide::evaluate::rederive(
            inputs,
            changes,
            &proposer,
            Some(server.repo.base.clone()),
            Some(head.clone()),
            Vec::new(),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(again.report.tier).unwrap(),
            decided.data["tier"]
        );
        assert_eq!(
            again.report.policy_version,
            decided.data["policy_version"].as_str().unwrap()
        );
        assert_eq!(
            again.report.graph_version,
            decided.data["graph_version"].as_str().unwrap()
        );
        if decided.data["automated"] == true {
            let authorized = find(countersign_audit::EventKind::Authorized);
            // Recorded as `evaluate --record` does: the signed verification summary about
            // the head, stored as a blob (docs/server.md).
            let digest = authorized.data["verification_summary"].as_str().unwrap();
            let envelope = server.store.blob(digest).await.unwrap().unwrap();
            countersign_decide::bundle::check_summary(
                &envelope,
                &common::log_signer().verifier(),
                &head,
            )
            .unwrap();
        }
    }
    server.stop().await;
}

/// `/v1/authorizations` lists its reasons a bounded page at a time, in id order, with
/// a cursor to the next page; the verdict covers every proposal, on any page.
async fn authorization_reasons_are_paginated(db: &Db) {
    let server = start(db).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (status, proposal) = server.propose("fixbot", &server.repo.payments).await;
        assert_eq!(status, 201, "{proposal}");
        ids.push(proposal["id"].as_str().unwrap().to_owned());
    }
    let commit = &server.repo.payments;
    let page = |query: String| {
        let server = &server;
        async move {
            server
                .send(
                    reqwest::Method::GET,
                    &format!(
                        "/v1/authorizations?repo=shop&old={}&commit={commit}{query}",
                        server.repo.base
                    ),
                    Some("auditor"),
                    None,
                )
                .await
        }
    };
    let mut listed = Vec::new();
    let mut after = String::new();
    loop {
        let (status, answer) = page(format!("&limit=2{after}")).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["authorized"], false);
        let reasons = answer["reasons"].as_array().unwrap();
        assert!(reasons.len() <= 2, "{answer}");
        listed.extend(
            reasons
                .iter()
                .map(|r| r.as_str().unwrap().split(' ').nth(1).unwrap().to_owned()),
        );
        match answer["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    // In id order, which follows the creation time (to the millisecond).
    ids.sort();
    assert_eq!(listed, ids);
    let (status, answer) = page(String::new()).await;
    assert_eq!(
        (status.as_u16(), answer["reasons"].as_array().unwrap().len()),
        (200, 5)
    );
    assert!(answer.get("next").is_none(), "{answer}");
    for limit in ["0", "101", "-1", "x"] {
        let (status, problem) = page(format!("&limit={limit}")).await;
        assert_eq!(status, 422, "limit={limit}: {problem}");
    }
    server.stop().await;
}

/// A base outside the history of every protected branch is refused with 422: otherwise the
/// proposer would choose the rules and hide commits (here `side`'s payments change) from
/// the diff judged. The move of a protected ref is held to its old tip: the same authorized
/// head is refused when the move would not fast-forward, and deleting is never authorized.
async fn a_base_outside_protected_history_is_refused(db: &Db) {
    let server = start(db).await;
    let body = serde_json::json!({
        "repo": "shop", "base": server.repo.side, "head": server.repo.docs, "title": "t"
    });
    let (status, problem) = server
        .send(
            reqwest::Method::POST,
            "/v1/proposals",
            Some("fixbot"),
            Some(body),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!(
            "base {} is not in the history of a protected branch (main)",
            server.repo.side
        )),
        "{problem}"
    );
    assert_eq!(server.store.log_size().await.unwrap(), 0);

    let (status, proposal) = server.propose("fixbot", &server.repo.docs).await;
    assert_eq!(
        (status.as_u16(), &proposal["state"]),
        (201, &serde_json::json!("authorized"))
    );
    let ask = |old: String, commit: String| {
        let server = &server;
        async move {
            let path = format!(
                "/v1/authorizations?repo=shop&ref=refs/heads/main&old={old}&commit={commit}"
            );
            server
                .send(reqwest::Method::GET, &path, Some("auditor"), None)
                .await
        }
    };
    let (status, answer) = ask(server.repo.base.clone(), server.repo.docs.clone()).await;
    assert_eq!(
        (status.as_u16(), &answer["authorized"]),
        (200, &serde_json::json!(true)),
        "{answer}"
    );
    // From `shop` (after docs) back to docs: no fast-forward, so not what was judged.
    let (_, answer) = ask(server.repo.shop.clone(), server.repo.docs.clone()).await;
    assert_eq!(answer["authorized"], false, "{answer}");
    assert!(
        answer["reasons"]
            .to_string()
            .contains("does not fast-forward refs/heads/main"),
        "{answer}"
    );
    // From `side`, which docs does not descend from: the commits between were not judged.
    let (_, answer) = ask(server.repo.side.clone(), server.repo.docs.clone()).await;
    assert_eq!(answer["authorized"], false, "{answer}");
    let zero = "0".repeat(40);
    let (_, answer) = ask(server.repo.docs.clone(), zero.clone()).await;
    assert_eq!(answer["authorized"], false, "{answer}");
    assert!(
        answer["reasons"].to_string().contains("cannot be deleted"),
        "{answer}"
    );
    // Created at docs: its base is in main's history.
    let (_, answer) = ask(zero, server.repo.docs.clone()).await;
    assert_eq!(answer["authorized"], true, "{answer}");
    for old in ["", "main", "abc"] {
        let (status, problem) = ask(old.to_owned(), server.repo.docs.clone()).await;
        assert_eq!(status, 422, "old={old}: {problem}");
    }
    server.stop().await;
}

/// What the document says of every operation, without running anything (the conformance
/// test in crates/countersign/tests/conformance.rs checks the server against it): errors are
/// problem+json, bearer operations list 401 and 403, operations with input list 422, query
/// parameters are in the query, and an optional body is not required.
#[test]
fn the_document_lists_what_every_operation_may_answer() {
    let openapi = serde_json::to_value(countersign_server::openapi()).unwrap();
    let mut problems = Vec::new();
    for (path, item) in openapi["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let name = format!("{} {path}", method.to_uppercase());
            let responses = operation["responses"].as_object().unwrap();
            for (status, response) in responses {
                let types: Vec<&String> = response["content"]
                    .as_object()
                    .map(|c| c.keys().collect())
                    .unwrap_or_default();
                if !status.starts_with('2') && types != ["application/problem+json"] {
                    problems.push(format!("{name} {status}: {types:?}"));
                }
            }
            // A page size the server bounds is bounded in the document too, so a client (or
            // schemathesis) knows `limit=0` is refused.
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["name"] == "limit"
                    && (parameter["schema"]["minimum"]
                        .as_u64()
                        .is_none_or(|m| m < 1)
                        || parameter["schema"]["maximum"].is_null())
                {
                    problems.push(format!("{name}: `limit` without minimum 1 and a maximum"));
                }
            }
            let mut expected = Vec::new();
            if operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
            {
                expected.extend(["401", "403"]);
            }
            if operation.get("parameters").is_some() || operation.get("requestBody").is_some() {
                expected.push("422");
            }
            for status in expected {
                if !responses.contains_key(status) {
                    problems.push(format!("{name}: no {status}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let parameters = &openapi["paths"]["/v1/authorizations"]["get"]["parameters"];
    for parameter in parameters.as_array().unwrap() {
        assert_eq!(parameter["in"], "query", "{parameter}");
    }
    let close = &openapi["paths"]["/v1/proposals/{id}/close"]["post"]["requestBody"];
    assert_ne!(close["required"], true, "{close}");
    let title = &openapi["components"]["schemas"]["NewProposal"]["properties"]["title"];
    assert_eq!(title["minLength"], 1, "{title}");
}

on_both_backends!(
    health_and_documents,
    refusals,
    automated_change_is_authorized_at_once,
    idempotent_creation,
    change_control_needs_two_distinct_humans,
    author_cannot_approve_and_rejection_blocks,
    concurrent_approvals_count_once,
    a_server_decision_re_derives_from_its_record,
    authorization_reasons_are_paginated,
    a_base_outside_protected_history_is_refused,
);
