//! Agent provenance: an agent's token bound to the person who dispatches the agent
//! (`token create --on-behalf-of`). That person is an author of every proposal the agent
//! opens with it (their approval is refused, another eligible person's counts), through head
//! moves, and the decision records them beside the agent. Nothing in a request can claim a
//! dispatcher, and a binding naming an agent, an unknown person or a non-agent token is
//! refused at creation.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::{Db, NOW, log_signer, start_with};
use countersign_audit::bundle::verify_bundle;
use countersign_policy::Principal;
use countersign_server::{DispatchError, Role, create_dispatched_token};
use reqwest::{Method, StatusCode};
use serde_json::json;

fn p(text: &str) -> Principal {
    text.parse().unwrap()
}

async fn the_dispatcher_is_an_author(db: &Db) {
    let mut server = start_with(db, |state| state.with_log_signer(log_signer())).await;
    let expires = NOW as i64 + 3600;
    let (text, token) = create_dispatched_token(
        &server.store,
        &p("agent:fixbot"),
        Role::Proposer,
        expires,
        [0xD1; 32],
        &p("human:carol"),
        NOW as i64,
    )
    .await
    .unwrap();
    assert_eq!(token.on_behalf_of.as_deref(), Some("human:carol"));
    server.tokens.insert("fixbot-for-carol", text);

    // The payments fix needs change control; its commits are alice's.
    let head = server.repo.payments.clone();
    let (status, proposal) = server.propose("fixbot-for-carol", &head).await;
    assert_eq!(status, StatusCode::CREATED, "{proposal}");
    assert_eq!(proposal["author"], "agent:fixbot");
    let authors: Vec<&str> = proposal["authors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(authors.contains(&"human:carol"), "{proposal:#}");
    let id = proposal["id"].as_str().unwrap().to_owned();
    // The decided event names both principals.
    assert_eq!(
        proposal["decision"]["dispatched_by"], "human:carol",
        "{proposal:#}"
    );

    // The dispatcher is a decision input (the `dispatched_by` fact): the bundle records it
    // and re-derives the decision with it.
    let response = server
        .client
        .get(format!("{}/v1/proposals/{id}/bundle", server.base))
        .bearer_auth(&server.tokens["auditor"])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let verifier = log_signer().verifier();
    let bundle = verify_bundle(
        &response.bytes().await.unwrap(),
        std::slice::from_ref(&verifier),
    )
    .unwrap();
    let differences = countersign_decide::bundle::rederive(&bundle, &verifier).unwrap();
    assert!(differences.is_empty(), "{differences:?}");

    // carol sent the agent: her approval is refused; bob's counts.
    let (status, refused) = server.verdict("carol", &id, &head, "approve").await;
    assert!(status.is_client_error(), "{status} {refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("human:carol"),
        "{refused}"
    );
    let (status, view) = server.verdict("bob", &id, &head, "approve").await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["approvals_counted"], 1, "{view:#}");

    // The same agent's undispatched token claims a dispatcher: in the body it is refused,
    // in a header it is ignored.
    let body = json!({
        "repo": "shop", "base": server.repo.base, "head": server.repo.shop,
        "title": "t", "dispatched_by": "human:dave"
    });
    let (status, _) = server
        .send(Method::POST, "/v1/proposals", Some("fixbot"), Some(body))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let response = server
        .client
        .post(format!("{}/v1/proposals", server.base))
        .bearer_auth(&server.tokens["fixbot"])
        .header("X-Countersign-Dispatched-By", "human:bob")
        .header("X-Countersign-On-Behalf-Of", "human:bob")
        .json(&json!({
            "repo": "shop", "base": server.repo.base, "head": server.repo.shop, "title": "t"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let undispatched: serde_json::Value = response.json().await.unwrap();
    assert!(
        !undispatched["authors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "human:bob"),
        "{undispatched:#}"
    );

    // Refused at creation: a person who is an agent, someone nobody knows, a human's token.
    let refuse = |principal: &'static str, dispatcher: &'static str| {
        let store = server.store.clone();
        async move {
            create_dispatched_token(
                &store,
                &p(principal),
                Role::Proposer,
                expires,
                [0xD2; 32],
                &p(dispatcher),
                NOW as i64,
            )
            .await
            .unwrap_err()
        }
    };
    let error = refuse("agent:fixbot", "agent:other").await;
    assert!(matches!(error, DispatchError::NotAHuman(_)), "{error}");
    assert_eq!(
        error.to_string(),
        "the dispatcher must be a person (human:NAME): agent:other is not"
    );
    let error = refuse("agent:fixbot", "human:zed").await;
    assert!(matches!(error, DispatchError::Unknown(_)), "{error}");
    let error = refuse("human:bob", "human:alice").await;
    assert!(matches!(error, DispatchError::NotAnAgent(_)), "{error}");
    server.stop().await;
}

on_both_backends!(the_dispatcher_is_an_author);
