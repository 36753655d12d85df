//! Bad input and failing dependencies: whatever goes wrong, the answer is RFC 9457
//! problem+json with the right status, whether a handler, an extractor, the router or the
//! body limit refused it.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::{Db, start, start_with};
use reqwest::Method as M;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Status, content type and body of a raw request.
async fn raw(request: reqwest::RequestBuilder) -> (u16, String, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, content_type, body)
}

fn assert_problem(status: u16, content_type: &str, body: &Value, slug: &str) {
    assert_eq!(content_type, "application/problem+json", "{status}: {body}");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(
        body["type"],
        format!("https://countersign.dev/problems/{slug}"),
        "{body}"
    );
    assert!(!body["detail"].as_str().unwrap().is_empty(), "{body}");
}

async fn readyz_answers_503_without_a_database(db: &Db) {
    let server = start(db).await;
    let url = format!("{}/readyz", server.base);
    let (status, _, body) = raw(server.client.get(&url)).await;
    assert_eq!((status, body), (200, Value::String("ready\n".into())));
    server.store.close().await;
    let (status, content_type, body) = raw(server.client.get(&url)).await;
    assert_eq!(status, 503, "{body}");
    assert_problem(status, &content_type, &body, "unavailable");
    // Liveness is not readiness: the process still runs.
    let (status, _, _) = raw(server.client.get(format!("{}/healthz", server.base))).await;
    assert_eq!(status, 200);
    server.stop().await;
}

async fn bodies_over_the_limit_are_413(db: &Db) {
    let server = start(db).await;
    let big = json!({ "repo": "shop", "base": "a", "head": "b", "title": "x".repeat(70 * 1024) });
    let post = || {
        server
            .client
            .post(format!("{}/v1/proposals", server.base))
            .json(&big)
    };
    // With a Content-Length.
    let (status, content_type, body) = raw(post().bearer_auth(&server.tokens["fixbot"])).await;
    assert_eq!(status, 413, "{body}");
    assert_problem(status, &content_type, &body, "too-large");
    assert!(
        body["detail"].as_str().unwrap().contains("size limit"),
        "{body}"
    );
    // The token is checked before the body is read: a stranger learns nothing else.
    assert_eq!(raw(post()).await.0, 401);

    // Chunked, with no length announced: cut off while the handler reads it.
    let address = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let payload = big.to_string();
    let mut request = format!(
        "POST /v1/proposals HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        server.tokens["fixbot"]
    )
    .into_bytes();
    for chunk in payload.as_bytes().chunks(8192) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before reading everything: a failed write is fine.
    let _ = stream.write_all(&request).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{response}"
    );
    server.stop().await;
}

async fn malformed_bodies_are_422(db: &Db) {
    let server = start(db).await;
    let post = |body: &'static str, content_type: Option<&'static str>| {
        let mut request = server
            .client
            .post(format!("{}/v1/proposals", server.base))
            .bearer_auth(&server.tokens["fixbot"])
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        raw(request)
    };
    for (body, content_type, what) in [
        ("{\"repo\": ", Some("application/json"), "not JSON"),
        ("{\"repo\": 1}", Some("application/json"), "the wrong shape"),
        (
            "{\"repo\": \"shop\", \"base\": \"a\", \"head\": \"b\", \"title\": \"t\", \"x\": 1}",
            Some("application/json"),
            "an unknown field",
        ),
        ("{}", None, "no content type"),
        ("{}", Some("text/plain"), "another content type"),
    ] {
        let (status, content_type, problem) = post(body, content_type).await;
        assert_eq!(status, 422, "{what}: {problem}");
        assert_problem(status, &content_type, &problem, "invalid-request");
    }
    server.stop().await;
}

async fn unknown_routes_and_methods(db: &Db) {
    let server = start(db).await;
    let s = &server;
    // Server::send asserts problem+json on every failure.
    let (status, problem) = s.send(M::GET, "/v1/nowhere", Some("fixbot"), None).await;
    assert_eq!(status, 404);
    assert_eq!(problem["detail"], "no route GET /v1/nowhere", "{problem}");
    assert_eq!(s.send(M::GET, "/nowhere", None, None).await.0, 404);

    let response = s
        .client
        .delete(format!("{}/v1/proposals", s.base))
        .bearer_auth(&s.tokens["fixbot"])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let (status, problem) = s
        .send(M::DELETE, "/v1/proposals", Some("fixbot"), None)
        .await;
    assert_eq!(status, 405);
    assert_eq!(
        problem["type"],
        "https://countersign.dev/problems/method-not-allowed"
    );
    assert_eq!(s.send(M::PUT, "/healthz", None, None).await.0, 405);

    // A path parameter that is not UTF-8: the extractor's refusal, as problem+json.
    let (status, _) = s
        .send(M::GET, "/v1/proposals/%FF", Some("fixbot"), None)
        .await;
    assert_eq!(status, 400);
    server.stop().await;
}

/// A decision the server cannot make is the server's fault, and says nothing of it: a
/// configured repository gone from disk, or a directory that is no git repository, is a
/// bare 500 with no path of the server in it. A revision the repository lacks is the
/// proposer's: 422, naming the revision, and still no path.
async fn decision_failures_say_whose_fault_without_server_paths(db: &Db) {
    let vanished = common::repo();
    let not_git = tempfile::tempdir().unwrap();
    let (vanished_path, not_git_path) = (vanished.path.clone(), not_git.path().to_owned());
    let server = start_with(db, move |mut state| {
        let mut repos = (*state.repos).clone();
        repos.insert("vanished".to_owned(), vanished_path);
        repos.insert("not-git".to_owned(), not_git_path);
        state.repos = std::sync::Arc::new(repos);
        state
    })
    .await;
    let paths = [
        server.repo.path.display().to_string(),
        vanished.path.display().to_string(),
        not_git.path().display().to_string(),
        std::env::temp_dir().display().to_string(),
    ];
    let no_path = |body: &Value| {
        let text = body.to_string();
        for path in &paths {
            assert!(!text.contains(path.as_str()), "{path} in {body}");
        }
    };
    let propose = |repo: &str, base: &str| {
        let head = server.repo.docs.clone();
        json!({ "repo": repo, "base": base, "head": head, "title": "change" })
    };
    let url = format!("{}/v1/proposals", server.base);
    let post = |body: Value| {
        server
            .client
            .post(&url)
            .bearer_auth(&server.tokens["fixbot"])
            .json(&body)
    };

    let (status, content_type, body) = raw(post(propose("shop", "no-such-branch"))).await;
    assert_eq!(status, 422, "{body}");
    assert_problem(status, &content_type, &body, "invalid-request");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("revision `no-such-branch` does not exist"),
        "{body}"
    );
    no_path(&body);

    std::fs::remove_dir_all(&vanished.path).unwrap();
    let base = server.repo.base.clone();
    for repo in ["vanished", "not-git"] {
        let (status, content_type, body) = raw(post(propose(repo, &base))).await;
        assert_eq!(status, 500, "{repo}: {body}");
        assert_problem(status, &content_type, &body, "internal");
        assert_eq!(
            body["detail"], "the server could not complete the request; the cause is in its log",
            "{repo}"
        );
        no_path(&body);
    }
    // Nothing was recorded for them.
    assert_eq!(server.store.log_size().await.unwrap(), 0);
    server.stop().await;
}

on_both_backends!(
    decision_failures_say_whose_fault_without_server_paths,
    readyz_answers_503_without_a_database,
    bodies_over_the_limit_are_413,
    malformed_bodies_are_422,
    unknown_routes_and_methods,
);
