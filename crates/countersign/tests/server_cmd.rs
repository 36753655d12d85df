//! `countersign token create` and `countersign serve` as the real binary: what they refuse
//! and the databases they open.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::*;

/// A token that would be expired when made is refused, with nothing written.
#[test]
fn token_create_refuses_an_expiry_that_is_not_in_the_future() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/cs.db?mode=rwc", dir.path().display());
    for expires in ["0s", "0", "500ms"] {
        let output = countersign(&[
            "token",
            "create",
            "--principal",
            "human:alice",
            "--role",
            "approver",
            "--expires",
            expires,
            "--database",
            &database,
        ]);
        assert!(!output.status.success(), "--expires {expires} was accepted");
        assert!(
            stderr(&output).contains("at least one second"),
            "{}",
            stderr(&output)
        );
        assert!(stdout(&output).is_empty(), "{}", stdout(&output));
    }
    // A negative duration does not parse at all.
    let output = countersign(&[
        "token",
        "create",
        "--principal",
        "human:alice",
        "--role",
        "approver",
        "--expires",
        "-1h",
        "--database",
        &database,
    ]);
    assert!(!output.status.success());
    let token = ok(countersign(&[
        "token",
        "create",
        "--principal",
        "human:alice",
        "--role",
        "approver",
        "--expires",
        "1s",
        "--database",
        &database,
    ]));
    assert!(token.starts_with("cst_"), "{token}");
}

/// `sqlite:///path/cs.db` (no `?mode=rwc`) creates the database and its directory, like the
/// default URL does, for `token create` and for `serve`.
#[test]
fn a_sqlite_url_without_a_mode_creates_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/new/cs.db");
    let database = format!("sqlite://{}", path.display());
    let created = countersign(&[
        "token",
        "create",
        "--principal",
        "human:alice",
        "--role",
        "approver",
        "--database",
        &database,
    ]);
    // The expiry is a time a person reads (RFC 3339), not Unix seconds.
    let said = stderr(&created);
    let expires = said
        .split("expires at ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        humantime::parse_rfc3339(expires).is_ok(),
        "not RFC 3339: {expires:?} in {said}"
    );
    let token = ok(created);
    assert!(token.starts_with("cst_"), "{token}");
    assert!(path.exists());

    let served = dir.path().join("served/cs.db");
    let mut server = serve(dir.path(), &format!("sqlite://{}", served.display()));
    assert!(served.exists());
    server.kill().unwrap();
    server.wait().unwrap();
}

/// Starts `countersign serve` on a free port of 127.0.0.1 in `dir` and waits until it
/// listens (it prints its address on stderr).
fn serve(dir: &std::path::Path, database: &str) -> std::process::Child {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        .current_dir(dir)
        .env_remove("COUNTERSIGN_DATABASE")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("countersign serving on ") {
            return child;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("serve did not start: {seen}");
}
