//! Audit over HTTP: the log's checkpoints, key, entries and proofs, proposal bundles, and the
//! signed verification summaries of authorizations, checked the way an auditor who does not
//! trust the server would: with countersign-audit's verifiers and countersign-decide's
//! re-derivation, against the key alone.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::{Db, Server, log_signer, start, start_with};
use countersign_audit::bundle::verify_bundle;
use countersign_audit::{Checkpoint, EventKind, Hash, SignedCheckpoint, Verifier, leaf_hash};
use countersign_audit::{ConsistencyProof, InclusionProof};
use countersign_decide::record::VSA_PREDICATE;
use reqwest::Method as M;
use reqwest::StatusCode;
use serde_json::Value;

async fn signing_server(db: &Db) -> Server {
    start_with(db, |state| state.with_log_signer(log_signer())).await
}

/// A GET answered 200 with a text body, and that body.
async fn get_text(server: &Server, path: &str, token: &str) -> (StatusCode, String, String) {
    let response = server
        .client
        .get(format!("{}{path}", server.base))
        .bearer_auth(&server.tokens[token])
        .send()
        .await
        .unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

async fn checkpoint(server: &Server, verifier: &Verifier) -> (Checkpoint, String) {
    let (status, kind, note) = get_text(server, "/v1/log/checkpoint", "auditor").await;
    assert_eq!(status, 200, "{note}");
    assert!(kind.starts_with("text/plain"), "{kind}");
    let opened = SignedCheckpoint::open(note.as_bytes(), std::slice::from_ref(verifier))
        .unwrap_or_else(|e| panic!("the checkpoint does not verify: {e}\n{note}"));
    (opened.checkpoint, note)
}

fn hashes(proof: &Value) -> Vec<Hash> {
    proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect()
}

async fn verified_key(server: &Server) -> Verifier {
    let (status, kind, text) = get_text(server, "/v1/log/key", "auditor").await;
    assert_eq!(status, 200, "{text}");
    assert!(kind.starts_with("text/plain"), "{kind}");
    let verifier = Verifier::parse(text.trim()).unwrap();
    assert_eq!(verifier, log_signer().verifier());
    verifier
}

/// The event of `kind` about proposal `id`, and its log index.
async fn event_of(
    server: &Server,
    id: &str,
    kind: EventKind,
) -> Option<(u64, countersign_audit::Event)> {
    server
        .store
        .entries_about(id)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.index, e.event().unwrap()))
        .find(|(_, e)| e.kind == kind)
}

/// The authorization statement named by the `authorized` event of `id`: signed by the log
/// key, about `head`, an SLSA VSA at `level`.
async fn assert_signed_summary(server: &Server, id: &str, head: &str, level: &str) {
    let (_, authorized) = event_of(server, id, EventKind::Authorized)
        .await
        .expect("an authorized event");
    assert_eq!(authorized.data["commit"], head);
    let digest = authorized.data["verification_summary"]
        .as_str()
        .unwrap_or_else(|| panic!("no verification_summary in {}", authorized.data));
    let envelope = server.store.blob(digest).await.unwrap().unwrap();
    let statement =
        countersign_decide::bundle::check_summary(&envelope, &log_signer().verifier(), head)
            .unwrap();
    assert_eq!(statement["predicateType"], VSA_PREDICATE);
    assert_eq!(statement["subject"][0]["name"], "shop");
    assert_eq!(statement["predicate"]["verificationResult"], "PASSED");
    assert_eq!(statement["predicate"]["verifiedLevels"][0], level);
    // Another key does not verify it: the signature is the log key's.
    let other = countersign_audit::Signer::from_seed("countersign.test/server", [1; 32]).unwrap();
    assert!(countersign_decide::bundle::check_summary(&envelope, &other.verifier(), head).is_err());
}

async fn checkpoints_and_proofs(db: &Db) {
    let server = signing_server(db).await;
    let verifier = verified_key(&server).await;
    let (status, docs) = server.propose("fixbot", &server.repo.docs).await;
    assert_eq!(status, 201, "{docs}");
    let (status, payments) = server.propose("fixbot", &server.repo.payments).await;
    assert_eq!(status, 201, "{payments}");
    let id = payments["id"].as_str().unwrap();

    let (first, note) = checkpoint(&server, &verifier).await;
    assert_eq!(first.size(), server.store.log_size().await.unwrap());
    assert_eq!(first.origin(), "countersign.test/server");
    // No growth, no new checkpoint: the same note, stored once.
    assert_eq!(checkpoint(&server, &verifier).await.1, note);
    let stored = server.store.latest_checkpoint().await.unwrap().unwrap();
    assert_eq!((stored.size, stored.signed_note), (first.size(), note));

    // Each event of the proposal: its leaf as the entries page serves it, included under
    // the checkpoint's root.
    let (status, page) = server
        .send(
            M::GET,
            &format!("/v1/log/entries?start=0&end={}", first.size()),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["size"], first.size());
    let entries = server.store.entries_about(id).await.unwrap();
    assert_eq!(entries.len(), 2, "proposed and decided");
    for entry in &entries {
        let served = &page["entries"][usize::try_from(entry.index).unwrap()];
        assert_eq!(served["index"], entry.index);
        assert_eq!(served["leaf"].as_str().unwrap().as_bytes(), entry.leaf);
        let (status, proof) = server
            .send(
                M::GET,
                &format!(
                    "/v1/log/proofs/inclusion?index={}&size={}",
                    entry.index,
                    first.size()
                ),
                Some("auditor"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{proof}");
        let proof = InclusionProof {
            leaf_index: entry.index,
            tree_size: first.size(),
            path: hashes(&proof),
        };
        proof
            .verify(&leaf_hash(&entry.leaf), first.size(), first.root())
            .unwrap();
        // And not for another leaf.
        assert!(
            proof
                .verify(&leaf_hash(b"{}"), first.size(), first.root())
                .is_err()
        );
    }

    // The log grows (two approvals authorize); the new checkpoint extends the first.
    for approver in ["bob", "carol"] {
        let (status, body) = server
            .verdict(approver, id, &server.repo.payments, "approve")
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (second, _) = checkpoint(&server, &verifier).await;
    assert!(
        second.size() > first.size(),
        "approvals and authorization are logged"
    );
    let (status, proof) = server
        .send(
            M::GET,
            &format!(
                "/v1/log/proofs/consistency?old={}&new={}",
                first.size(),
                second.size()
            ),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{proof}");
    let proof = ConsistencyProof {
        old_size: first.size(),
        new_size: second.size(),
        path: hashes(&proof),
    };
    proof
        .verify(first.size(), first.root(), second.size(), second.root())
        .unwrap();
    assert!(
        proof
            .verify(first.size(), second.root(), second.size(), second.root())
            .is_err(),
        "a proof that verifies against any old root proves nothing"
    );
    server.stop().await;
}

async fn bad_ranges(db: &Db) {
    let server = signing_server(db).await;
    let (status, body) = server.propose("fixbot", &server.repo.docs).await;
    assert_eq!(status, 201, "{body}");
    let size = server.store.log_size().await.unwrap();
    for (path, needle) in [
        (
            format!("/v1/log/proofs/inclusion?index={size}&size={size}"),
            "is not in a tree of size",
        ),
        (
            format!("/v1/log/proofs/inclusion?index=0&size={}", size + 1),
            "is beyond the log",
        ),
        (
            "/v1/log/proofs/inclusion?index=0&size=0".to_owned(),
            "is not in a tree of size 0",
        ),
        ("/v1/log/proofs/inclusion?index=0".to_owned(), "size"),
        (
            "/v1/log/proofs/inclusion?index=-1&size=1".to_owned(),
            "index",
        ),
        (
            "/v1/log/proofs/consistency?old=2&new=1".to_owned(),
            "is larger than new",
        ),
        (
            format!("/v1/log/proofs/consistency?old=1&new={}", size + 1),
            "is beyond the log",
        ),
        ("/v1/log/proofs/consistency?old=x&new=1".to_owned(), "old"),
        (
            format!("/v1/log/entries?start={}", size + 1),
            "is beyond the log",
        ),
        ("/v1/log/entries?start=1&end=0".to_owned(), "before start"),
        (
            "/v1/log/entries?start=0&end=1001".to_owned(),
            "at most 1000",
        ),
    ] {
        let (status, problem) = server.send(M::GET, &path, Some("auditor"), None).await;
        assert_eq!(status, 422, "{path}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{path}: {detail}");
    }
    // The edges that are valid: an empty consistency proof, a clamped page.
    let (status, proof) = server
        .send(
            M::GET,
            &format!("/v1/log/proofs/consistency?old={size}&new={size}"),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{proof}");
    assert_eq!(proof["proof"], serde_json::json!([]));
    let (status, page) = server
        .send(
            M::GET,
            "/v1/log/entries?start=1&end=1000",
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        (page["start"].as_u64(), page["end"].as_u64()),
        (Some(1), Some(size))
    );
    assert_eq!(page["entries"].as_array().unwrap().len() as u64, size - 1);
    // No token, no log.
    assert_eq!(
        server.send(M::GET, "/v1/log/entries", None, None).await.0,
        401
    );
    assert_eq!(
        server
            .send(M::GET, "/v1/log/checkpoint", None, None)
            .await
            .0,
        401
    );
    server.stop().await;
}

async fn bundles_verify_offline(db: &Db) {
    let server = signing_server(db).await;
    let verifier = log_signer().verifier();
    // An automated decision, and one authorized by approvals.
    let (status, docs) = server.propose("fixbot", &server.repo.docs).await;
    assert_eq!(status, 201, "{docs}");
    assert_eq!(docs["state"], "authorized", "{docs}");
    let (status, payments) = server.propose("fixbot", &server.repo.payments).await;
    assert_eq!(status, 201, "{payments}");
    let payments_id = payments["id"].as_str().unwrap();
    let (status, _) = server
        .verdict("bob", payments_id, &server.repo.payments, "approve")
        .await;
    assert_eq!(status, 200);
    assert!(
        event_of(&server, payments_id, EventKind::Authorized)
            .await
            .is_none(),
        "change_control needs a second human"
    );
    let (status, body) = server
        .verdict("carol", payments_id, &server.repo.payments, "approve")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "authorized", "{body}");

    assert_signed_summary(
        &server,
        docs["id"].as_str().unwrap(),
        &server.repo.docs,
        "COUNTERSIGN_AUTO_MERGE",
    )
    .await;
    assert_signed_summary(
        &server,
        payments_id,
        &server.repo.payments,
        "COUNTERSIGN_CHANGE_CONTROL",
    )
    .await;

    for proposal in [&docs, &payments] {
        let id = proposal["id"].as_str().unwrap();
        let events = server.store.entries_about(id).await.unwrap().len();
        let response = server
            .client
            .get(format!("{}/v1/proposals/{id}/bundle", server.base))
            .bearer_auth(&server.tokens["auditor"])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let bytes = response.bytes().await.unwrap();
        let bundle = verify_bundle(&bytes, std::slice::from_ref(&verifier)).unwrap();
        assert_eq!(bundle.subject, id);
        assert_eq!(bundle.events.len(), events, "{id}");
        let differences = countersign_decide::bundle::rederive(&bundle, &verifier).unwrap();
        assert!(differences.is_empty(), "{id}: {differences:?}");
        // The one implementation the CLI's `bundle export` uses, byte for byte.
        let exported = server.store.export_bundle(id, None).await.unwrap();
        assert_eq!(exported.to_json(), bytes.to_vec());
        // A bundle under another key's checkpoint is refused.
        let other = countersign_audit::Signer::from_seed("countersign.test/server", [1; 32])
            .unwrap()
            .verifier();
        assert!(verify_bundle(&bytes, &[other]).is_err());
    }
    let (status, problem) = server
        .send(M::GET, "/v1/proposals/p-0000/bundle", Some("auditor"), None)
        .await;
    assert_eq!(status, 404, "{problem}");
    server.stop().await;
}

/// A proposal authorized at one head, then moved to another: its bundle holds both
/// authorizations' history, and each statement is checked against the commit its event
/// authorized, not the current head.
async fn an_earlier_authorization_verifies_after_a_head_move(db: &Db) {
    let server = signing_server(db).await;
    let verifier = log_signer().verifier();
    let (status, proposal) = server.propose("fixbot", &server.repo.docs).await;
    assert_eq!(status, 201, "{proposal}");
    assert_eq!(proposal["state"], "authorized", "{proposal}");
    let id = proposal["id"].as_str().unwrap();
    let (status, moved) = server
        .send(
            M::POST,
            &format!("/v1/proposals/{id}/head"),
            Some("fixbot"),
            Some(serde_json::json!({ "head": server.repo.payments })),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["head"], server.repo.payments.as_str(), "{moved}");
    assert_eq!(moved["state"], "awaiting_approval", "{moved}");
    let (status, bundle) = server
        .send(
            M::GET,
            &format!("/v1/proposals/{id}/bundle"),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{bundle}");
    let bundle = verify_bundle(
        &serde_json::to_vec(&bundle).unwrap(),
        std::slice::from_ref(&verifier),
    )
    .unwrap();
    let differences = countersign_decide::bundle::rederive(&bundle, &verifier).unwrap();
    assert!(differences.is_empty(), "{differences:?}");
    server.stop().await;
}

async fn without_a_log_key(db: &Db) {
    let server = start(db).await;
    let (status, docs) = server.propose("fixbot", &server.repo.docs).await;
    assert_eq!(status, 201, "{docs}");
    let id = docs["id"].as_str().unwrap();
    for path in [
        "/v1/log/checkpoint".to_owned(),
        "/v1/log/key".to_owned(),
        format!("/v1/proposals/{id}/bundle"),
    ] {
        let (status, problem) = server.send(M::GET, &path, Some("auditor"), None).await;
        assert_eq!(status, 503, "{path}: {problem}");
    }
    // Recorded, without a statement: nobody could sign one.
    let (_, authorized) = event_of(&server, id, EventKind::Authorized).await.unwrap();
    assert!(authorized.data.get("verification_summary").is_none());
    // What needs no key still answers.
    let (status, page) = server
        .send(M::GET, "/v1/log/entries", Some("auditor"), None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["entries"].as_array().unwrap().len() as u64,
        server.store.log_size().await.unwrap()
    );
    server.stop().await;
}

async fn documented(db: &Db) {
    let server = signing_server(db).await;
    let (status, openapi) = server.send(M::GET, "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    for path in [
        "/v1/log/checkpoint",
        "/v1/log/key",
        "/v1/log/entries",
        "/v1/log/proofs/inclusion",
        "/v1/log/proofs/consistency",
        "/v1/proposals/{id}/bundle",
    ] {
        assert!(
            openapi["paths"][path]["get"].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    server.stop().await;
}

on_both_backends!(
    checkpoints_and_proofs,
    bad_ranges,
    bundles_verify_offline,
    an_earlier_authorization_verifies_after_a_head_move,
    without_a_log_key,
    documented,
);
