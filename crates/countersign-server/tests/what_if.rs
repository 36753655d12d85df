//! `GET /v1/proposals/{id}/what-if`: the what-if search of a proposal's current head, read
//! like the proposal (any valid token but a runner's; none is 401), and its promise kept: the
//! suggested split, proposed on its own, takes the tier the search named. And
//! `GET /v1/proposals/{id}/explanation`, the reasons of the current head's decision.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::{Db, start};
use reqwest::Method;
use reqwest::StatusCode;

async fn what_if_of_a_mixed_change(db: &Db) {
    let server = start(db).await;
    // base..shop: the docs typo, the payments fix and the shop page, by an agent.
    let (status, proposal) = server.propose("fixbot", &server.repo.shop).await;
    assert_eq!(status, StatusCode::CREATED, "{proposal}");
    assert_eq!(proposal["tier"], "change_control", "{proposal}");
    let id = proposal["id"].as_str().unwrap();
    let path = format!("/v1/proposals/{id}/what-if");

    let (status, view) = server.send(Method::GET, &path, Some("auditor"), None).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["proposal"], id);
    assert_eq!(view["head"], server.repo.shop);
    let what_if = &view["what_if"];
    assert_eq!(what_if["tier"], "change_control", "{what_if:#}");
    assert!(what_if["search"].get("cut").is_none(), "{what_if:#}");
    // The most restrictive target below change_control: single_approver.
    let single = what_if["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tier"] == "single_approver")
        .unwrap();
    assert_eq!(single["removals"]["outcome"], "found", "{what_if:#}");
    let suggestion = &single["removals"]["suggestions"][0];
    assert_eq!(
        suggestion["without"],
        serde_json::json!(["payments/src/lib.rs"]),
        "{what_if:#}"
    );
    assert_eq!(suggestion["minimal"], true);

    // Every role reads it but a runner; no token is 401; an unknown proposal is 404.
    let (status, _) = server.send(Method::GET, &path, Some("fixbot"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.send(Method::GET, &path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .send(
            Method::GET,
            "/v1/proposals/p-none/what-if",
            Some("bob"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

/// `GET /v1/proposals/{id}/explanation`: the decision of the current head with every reason
/// (each ruled-out tier with its policy id and the facts it read), read like the proposal.
async fn explanation_of_a_proposal(db: &Db) {
    let server = start(db).await;
    let (status, proposal) = server.propose("fixbot", &server.repo.payments).await;
    assert_eq!(status, StatusCode::CREATED, "{proposal}");
    let id = proposal["id"].as_str().unwrap();
    let path = format!("/v1/proposals/{id}/explanation");
    let (status, view) = server.send(Method::GET, &path, Some("fixbot"), None).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["proposal"], id);
    assert_eq!(view["head"], server.repo.payments);
    assert_eq!(view["tier"], proposal["tier"]);
    let explanation = &view["explanation"];
    assert_eq!(explanation["tier"], proposal["tier"]);
    assert_eq!(
        explanation["policy_version"],
        proposal["decision"]["policy_version"]
    );
    // A payments change is change_control: each more automated tier is ruled out by a
    // policy (or an invariant) that names the facts it read.
    let reasons = explanation["reasons"].as_array().unwrap();
    for tier in ["auto_merge", "notify_and_proceed", "single_approver"] {
        let ruled_out: Vec<&serde_json::Value> =
            reasons.iter().filter(|r| r["tier"] == tier).collect();
        assert!(!ruled_out.is_empty(), "{tier}: {explanation:#}");
        assert!(
            ruled_out
                .iter()
                .any(|r| r["effect"] != "permit" && r["id"].is_string()),
            "{tier}: {ruled_out:#?}"
        );
    }
    assert!(
        reasons
            .iter()
            .any(|r| r["facts"].as_object().is_some_and(|f| !f.is_empty())),
        "{explanation:#}"
    );
    let text = view["text"].as_str().unwrap();
    assert!(text.starts_with("tier: change_control"), "{text}");

    let (status, _) = server.send(Method::GET, &path, Some("auditor"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.send(Method::GET, &path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .send(
            Method::GET,
            "/v1/proposals/p-none/explanation",
            Some("bob"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

on_both_backends!(what_if_of_a_mixed_change, explanation_of_a_proposal);
