//! The role matrix: every endpoint called with a token of every role (proposer, runner,
//! approver, auditor, admin) for every kind of principal (agent, human, runner), checked
//! against the rules of docs/server.md written out once here in [`admitted`]. An admitted
//! call reaches the handler's own checks (here: a proposal that does not exist, so 404, or
//! a body that names no repository, so 422); a refused one is a 403. Bad tokens are 401
//! everywhere.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::{Db, NOW, Server, start};
use countersign_policy::Principal;
use countersign_server::{Role, create_token};
use reqwest::Method;
use serde_json::{Value, json};

const ROLES: [Role; 5] = [
    Role::Proposer,
    Role::Runner,
    Role::Approver,
    Role::Auditor,
    Role::Admin,
];
const KINDS: [&str; 3] = ["agent", "human", "runner"];

/// One endpoint, called on a proposal that does not exist.
struct Endpoint {
    method: Method,
    path: &'static str,
    body: Option<Value>,
}

fn endpoints() -> Vec<Endpoint> {
    let e =
        |method: Method, path: &'static str, body: Option<Value>| Endpoint { method, path, body };
    let commit = "0".repeat(40);
    vec![
        e(
            Method::POST,
            "/v1/proposals",
            Some(json!({ "repo": "nope", "base": "a", "head": "b", "title": "t" })),
        ),
        e(Method::GET, "/v1/proposals/p-none", None),
        e(Method::GET, "/v1/proposals/p-none/what-if", None),
        e(Method::GET, "/v1/proposals/p-none/explanation", None),
        e(
            Method::POST,
            "/v1/proposals/p-none/approvals",
            Some(json!({ "head": commit, "verdict": "approve", "comment": "" })),
        ),
        e(
            Method::POST,
            "/v1/proposals/p-none/head",
            Some(json!({ "head": commit })),
        ),
        e(Method::POST, "/v1/proposals/p-none/close", Some(json!({}))),
        e(
            Method::POST,
            "/v1/proposals/p-none/merged",
            Some(json!({ "commit": commit })),
        ),
        e(
            Method::POST,
            "/v1/proposals/p-none/evidence",
            Some(
                json!({ "payloadType": "application/vnd.in-toto+json", "payload": "", "signatures": [] }),
            ),
        ),
        e(Method::GET, "/v1/proposals/p-none/plan", None),
        e(Method::GET, "/v1/proposals/p-none/bundle", None),
        e(
            Method::GET,
            "/v1/authorizations?repo=shop&commit=0000000000000000000000000000000000000000",
            None,
        ),
        e(Method::GET, "/v1/log/checkpoint", None),
        e(Method::GET, "/v1/log/key", None),
        e(Method::GET, "/v1/log/entries?start=0&end=1", None),
        e(Method::GET, "/v1/log/proofs/inclusion?index=0&size=1", None),
        e(Method::GET, "/v1/log/proofs/consistency?old=1&new=1", None),
        e(Method::GET, "/v1/webhooks/deliveries", None),
        e(
            Method::POST,
            "/v1/webhooks/redeliver",
            Some(json!({ "target": "nope" })),
        ),
        e(Method::GET, "/v1/tokens", None),
        e(Method::DELETE, "/v1/tokens/t-none", None),
        e(Method::GET, "/v1/repos", None),
        e(Method::GET, "/v1/repos/repo-none/graph", None),
        e(Method::GET, "/v1/repos/repo-none/policy", None),
        e(Method::GET, "/v1/runs", None),
        e(Method::GET, "/v1/runs/r-none", None),
        e(
            Method::POST,
            "/v1/runs/r-none/evidence",
            Some(
                json!({ "payloadType": "application/vnd.in-toto+json", "payload": "", "signatures": [] }),
            ),
        ),
        e(Method::GET, "/v1/schedules", None),
        e(Method::GET, "/v1/findings", None),
        e(Method::GET, "/v1/findings/F-none", None),
        e(Method::GET, "/v1/findings/F-none/bundle", None),
        e(
            Method::POST,
            "/v1/work/lease",
            Some(json!({ "repository": "github.com/acme/none", "environments": ["default"] })),
        ),
        e(
            Method::POST,
            "/v1/work/r-none/heartbeat",
            Some(json!({ "attempt": 1 })),
        ),
        e(
            Method::POST,
            "/v1/work/r-none/finish",
            Some(json!({ "attempt": 1, "outcome": "passed" })),
        ),
        e(
            Method::POST,
            "/v1/work/r-none/return",
            Some(json!({ "attempt": 1 })),
        ),
    ]
}

/// The rules of docs/server.md ("Authentication and roles"): may a token of `role` for a
/// principal of `kind` call this endpoint at all?
fn admitted(endpoint: &Endpoint, role: Role, kind: &str) -> bool {
    let route = endpoint.path.split('?').next().unwrap();
    let is = |method: Method, suffix: &str| endpoint.method == method && route.ends_with(suffix);
    let runner = role == Role::Runner || kind == "runner";
    let one_of = |roles: &[Role]| role == Role::Admin || roles.contains(&role);
    if route.starts_with("/v1/runs/") && is(Method::POST, "/evidence") {
        // A branch run's evidence: only the runner holding it, so a runner token of a
        // runner principal (an admin neither, as for the work routes).
        return role == Role::Runner && kind == "runner";
    }
    if is(Method::POST, "/evidence") {
        return one_of(&[Role::Runner]);
    }
    if is(Method::GET, "/plan") {
        return true;
    }
    if route.starts_with("/v1/work/") {
        // Leasing and running work: a runner token of a runner principal, nobody else (an
        // admin neither: a lease is a promise to run and sign that only a runner keeps).
        return role == Role::Runner && kind == "runner";
    }
    // A runner token submits evidence and reads plans, nothing else.
    if runner {
        return false;
    }
    if is(Method::POST, "/approvals") {
        // Only people approve, whatever the role: an admin agent is refused too.
        return one_of(&[Role::Approver]) && kind == "human";
    }
    if is(Method::POST, "/v1/proposals") || is(Method::POST, "/head") || is(Method::POST, "/close")
    {
        return one_of(&[Role::Proposer]);
    }
    if is(Method::POST, "/merged") {
        // What a post-receive hook reports: the server's operator, not a proposer.
        return role == Role::Admin;
    }
    if is(Method::POST, "/v1/webhooks/redeliver") {
        // Operating the delivery worker: the server's operator.
        return role == Role::Admin;
    }
    if route.starts_with("/v1/tokens") {
        // Managing API tokens: the server's operator only.
        return role == Role::Admin;
    }
    if route == "/v1/webhooks/deliveries" {
        return one_of(&[Role::Auditor]);
    }
    // Everything else reads; an auditor reads everything.
    assert_eq!(endpoint.method, Method::GET, "{route}: no rule");
    true
}

async fn call(server: &Server, endpoint: &Endpoint, token: Option<&str>) -> (u16, String) {
    let mut request = server.client.request(
        endpoint.method.clone(),
        format!("{}{}", server.base, endpoint.path),
    );
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = &endpoint.body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let problem = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap() == "application/problem+json");
    let text = response.text().await.unwrap();
    if status >= 400 {
        assert!(
            problem,
            "{} {}: {status} is not problem+json: {text}",
            endpoint.method, endpoint.path
        );
    }
    let detail = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned))
        .unwrap_or(text);
    (status, detail)
}

async fn token(server: &Server, principal: &str, role: Role, expires_at: i64, n: u8) -> String {
    let principal: Principal = principal.parse().unwrap();
    let mut secret = [0x3C; 32];
    secret[0] = n;
    create_token(&server.store, &principal, role, expires_at, secret)
        .await
        .unwrap()
        .0
}

/// Every bearer-authenticated endpoint of the OpenAPI document is in the matrix: a new one
/// fails here until its rule is written down in [`admitted`]; one without bearer
/// authentication fails here until it is named.
#[test]
fn the_matrix_covers_every_endpoint() {
    let openapi = serde_json::to_value(countersign_server::openapi()).unwrap();
    let mut documented: Vec<String> = Vec::new();
    let mut unauthenticated: Vec<String> = Vec::new();
    for (path, item) in openapi["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let name = format!("{} {path}", method.to_uppercase());
            if operation["security"]
                .as_array()
                .is_none_or(|s| s.is_empty())
            {
                unauthenticated.push(name);
            } else {
                documented.push(name);
            }
        }
    }
    // No bearer token, no role: GitHub authenticates its deliveries with the webhook
    // secret's signature (tests/github.rs holds that route to it).
    assert_eq!(unauthenticated, ["POST /v1/integrations/github/webhook"]);
    let mut tested: Vec<String> = endpoints()
        .iter()
        .map(|e| {
            let path = e
                .path
                .split('?')
                .next()
                .unwrap()
                .replace("p-none", "{id}")
                .replace("t-none", "{id}")
                .replace("r-none", "{id}")
                .replace("F-none", "{id}")
                .replace("repo-none", "{repo}");
            format!("{} {path}", e.method)
        })
        .collect();
    documented.sort();
    tested.sort();
    assert_eq!(tested, documented);
}

async fn role_matrix(db: &Db) {
    let server = start(db).await;
    let expires = NOW as i64 + 3600;
    let mut n = 0u8;
    let mut failures = Vec::new();
    let mut checked = 0;
    for role in ROLES {
        for kind in KINDS {
            n += 1;
            let token = token(&server, &format!("{kind}:matrix"), role, expires, n).await;
            for endpoint in &endpoints() {
                let (status, detail) = call(&server, endpoint, Some(&token)).await;
                let admit = admitted(endpoint, role, kind);
                let ok = if admit {
                    status != 401 && status != 403
                } else {
                    status == 403
                };
                checked += 1;
                if !ok {
                    failures.push(format!(
                        "{kind} {role}: {} {} answered {status} ({detail}), expected {}",
                        endpoint.method,
                        endpoint.path,
                        if admit { "admission" } else { "403" }
                    ));
                }
            }
        }
    }
    assert_eq!(checked, ROLES.len() * KINDS.len() * endpoints().len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    server.stop().await;
}

/// 401 on every endpoint, before any role or body is looked at.
async fn bad_tokens_are_401_everywhere(db: &Db) {
    let server = start(db).await;
    let expired = token(&server, "human:bob", Role::Admin, NOW as i64, 200).await;
    let revoked = token(&server, "human:bob", Role::Admin, NOW as i64 + 3600, 201).await;
    let revoked_id = {
        let hash = countersign_server::token_hash(&revoked);
        server
            .store
            .token_by_secret(&hash)
            .await
            .unwrap()
            .unwrap()
            .id
    };
    assert!(server.store.revoke_token(&revoked_id).await.unwrap());
    let cases = [
        (None, "missing Authorization"),
        (Some(expired.as_str()), "the token has expired"),
        (Some(revoked.as_str()), "the token is revoked"),
        (Some("cst_0123"), "unknown token"),
        (
            Some("eyJhbGciOiJub25lIn0.e30."),
            "no OIDC issuer is configured",
        ),
    ];
    for endpoint in &endpoints() {
        for (token, why) in &cases {
            let (status, detail) = call(&server, endpoint, *token).await;
            assert_eq!(
                status, 401,
                "{} {}: {detail}",
                endpoint.method, endpoint.path
            );
            assert!(detail.contains(why), "{detail:?} does not say {why:?}");
        }
    }
    // Another scheme than Bearer.
    let response = server
        .client
        .get(format!("{}/v1/proposals/p-none", server.base))
        .basic_auth("bob", Some("secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    server.stop().await;
}

/// On a real change with bob as an eligible owner: an admin agent and an admin runner are
/// still refused, the same admin role on bob approves.
async fn only_people_approve_whatever_the_role(db: &Db) {
    let server = start(db).await;
    let head = server.repo.shop.clone();
    let (status, proposal) = server.propose("fixbot", &head).await;
    assert_eq!(status, 201, "{proposal}");
    let id = proposal["id"].as_str().unwrap();
    let path = format!("/v1/proposals/{id}/approvals");
    let approve = Endpoint {
        method: Method::POST,
        path: Box::leak(path.into_boxed_str()),
        body: Some(json!({ "head": head, "verdict": "approve", "comment": "" })),
    };
    let expires = NOW as i64 + 3600;
    for (i, principal) in ["agent:fixbot", "agent:bob", "runner:bob", "system:bob"]
        .into_iter()
        .enumerate()
    {
        let token = token(&server, principal, Role::Admin, expires, 100 + i as u8).await;
        let (status, detail) = call(&server, &approve, Some(&token)).await;
        assert_eq!(status, 403, "{principal}: {detail}");
    }
    let bob = token(&server, "human:bob", Role::Admin, expires, 110).await;
    let (status, detail) = call(&server, &approve, Some(&bob)).await;
    assert_eq!(status, 200, "{detail}");
    let (_, shown) = server
        .send(
            Method::GET,
            &format!("/v1/proposals/{id}"),
            Some("auditor"),
            None,
        )
        .await;
    let approvers: Vec<&str> = shown["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["approver"].as_str().unwrap())
        .collect();
    assert_eq!(approvers, ["human:bob"], "{shown}");
    server.stop().await;
}

/// Refusals name the role as people say it: "an approver token", "an admin token".
async fn refusals_name_the_role_in_english(db: &Db) {
    let server = start(db).await;
    let body = json!({ "repo": "shop", "base": "a", "head": "b", "title": "t" });
    let (status, problem) = server
        .send(Method::POST, "/v1/proposals", Some("alice"), Some(body))
        .await;
    assert_eq!(
        (status.as_u16(), problem["detail"].as_str().unwrap()),
        (403, "an approver token may not open proposals")
    );
    let runner = token(&server, "runner:ci", Role::Runner, NOW as i64 + 3600, 99).await;
    let response = server
        .client
        .get(format!("{}/v1/proposals/p-1", server.base))
        .bearer_auth(&runner)
        .send()
        .await
        .unwrap();
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("runner:ci with a runner token may only"),
        "{problem}"
    );
    server.stop().await;
}

on_both_backends!(
    refusals_name_the_role_in_english,
    role_matrix,
    bad_tokens_are_401_everywhere,
    only_people_approve_whatever_the_role,
);
