//! The main flows of the API as transcripts: each request and its answer, in order, as one
//! snapshot per flow, on SQLite and PostgreSQL alike (the same snapshot for both). Commit ids,
//! proposal ids and digests are replaced by stable names in order of appearance, so a
//! snapshot changes only when what the server says changes.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use common::{Db, Server, start};
use reqwest::Method;
use serde_json::{Value, json};

/// A conversation with the server, written down as it goes.
struct Transcript<'a> {
    server: &'a Server,
    text: String,
    names: BTreeMap<String, String>,
}

impl<'a> Transcript<'a> {
    fn new(server: &'a Server) -> Self {
        Transcript {
            server,
            text: String::new(),
            names: BTreeMap::new(),
        }
    }

    async fn send(&mut self, method: Method, path: &str, as_: &str, body: Option<Value>) -> Value {
        let shown_path = self.redact(path);
        let _ = writeln!(self.text, "> {method} {shown_path} as {as_}");
        if let Some(body) = &body {
            let body = self.redact(&body.to_string());
            let _ = writeln!(self.text, "> {body}");
        }
        let (status, answer) = self.server.send(method, path, Some(as_), body).await;
        let shown = self.redact(&serde_json::to_string_pretty(&summary(&answer)).unwrap());
        let _ = writeln!(self.text, "< {}\n{shown}\n", status.as_u16());
        answer
    }

    /// Names 40-hex commit ids, 64-hex digests and proposal ids in order of appearance.
    fn redact(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let start = i;
            if text[i..].starts_with("p-") {
                let run = text[i + 2..]
                    .bytes()
                    .take_while(u8::is_ascii_hexdigit)
                    .count();
                if run >= 16 {
                    out.push_str(&self.name("proposal", &text[i..i + 2 + run]));
                    i += 2 + run;
                    continue;
                }
            }
            let run = text[i..].bytes().take_while(u8::is_ascii_hexdigit).count();
            let boundary = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
            if boundary && (run == 40 || run == 64) {
                let kind = if run == 40 { "commit" } else { "digest" };
                out.push_str(&self.name(kind, &text[i..i + run]));
                i += run;
                continue;
            }
            let step = text[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&text[i..i + step]);
            i += step;
        }
        out
    }

    fn name(&mut self, kind: &str, value: &str) -> String {
        let n = self
            .names
            .values()
            .filter(|v| v.starts_with(&format!("<{kind}-")))
            .count();
        self.names
            .entry(value.to_owned())
            .or_insert_with(|| format!("<{kind}-{}>", n + 1))
            .clone()
    }
}

/// What a person reads in an answer: a proposal without its decision record (snapshotted
/// elsewhere) and its creation time; a problem as it is.
fn summary(answer: &Value) -> Value {
    let mut answer = answer.clone();
    if let Some(object) = answer.as_object_mut()
        && object.contains_key("approvals_required")
    {
        object.remove("decision");
        object.remove("created_at");
    }
    answer
}

/// A payments change by an agent: two owners needed; the author's token refused, an agent's
/// approval refused, one approval, a change of mind (approve then reject) recorded, the
/// rejection withdrawn, the second approval authorizing, and the authorization asked for.
async fn approval_flow(db: &Db) {
    let server = start(db).await;
    let mut t = Transcript::new(&server);
    let head = server.repo.payments.clone();
    let proposal = t
        .send(
            Method::POST,
            "/v1/proposals",
            "fixbot",
            Some(json!({ "repo": "shop", "base": server.repo.base, "head": head, "title": "payments: retry" })),
        )
        .await;
    let id = proposal["id"].as_str().unwrap().to_owned();
    let approvals = format!("/v1/proposals/{id}/approvals");
    let approve = json!({ "head": head, "verdict": "approve" });
    let reject =
        json!({ "head": head, "verdict": "reject", "comment": "the retry is not idempotent" });
    t.send(
        Method::POST,
        &approvals,
        "agent-approver",
        Some(approve.clone()),
    )
    .await;
    t.send(Method::POST, &approvals, "alice", Some(approve.clone()))
        .await;
    t.send(Method::POST, &approvals, "alice", Some(reject.clone()))
        .await;
    t.send(Method::POST, &approvals, "bob", Some(approve.clone()))
        .await;
    t.send(Method::POST, &approvals, "alice", Some(approve.clone()))
        .await;
    t.send(Method::POST, &approvals, "bob", Some(approve)).await;
    t.send(
        Method::GET,
        &format!(
            "/v1/authorizations?repo=shop&ref=refs/heads/main&old={}&commit={head}",
            server.repo.base
        ),
        "auditor",
        None,
    )
    .await;
    insta::assert_snapshot!("approval_flow", t.text);
    server.stop().await;
}

/// A docs change the policy automates: authorized at once; moving its head to a payments
/// change re-derives it, waiting for people again; closing it is final.
async fn head_move_and_close_flow(db: &Db) {
    let server = start(db).await;
    let mut t = Transcript::new(&server);
    let proposal = t
        .send(
            Method::POST,
            "/v1/proposals",
            "fixbot",
            Some(json!({ "repo": "shop", "base": server.repo.base, "head": server.repo.docs, "title": "docs: typo" })),
        )
        .await;
    let id = proposal["id"].as_str().unwrap().to_owned();
    t.send(
        Method::POST,
        &format!("/v1/proposals/{id}/head"),
        "fixbot",
        Some(json!({ "head": server.repo.payments })),
    )
    .await;
    t.send(
        Method::POST,
        &format!("/v1/proposals/{id}/close"),
        "fixbot",
        Some(json!({ "reason": "split in two" })),
    )
    .await;
    t.send(
        Method::POST,
        &format!("/v1/proposals/{id}/head"),
        "fixbot",
        Some(json!({ "head": server.repo.docs })),
    )
    .await;
    insta::assert_snapshot!("head_move_and_close_flow", t.text);
    server.stop().await;
}

on_both_backends!(approval_flow, head_move_and_close_flow);
