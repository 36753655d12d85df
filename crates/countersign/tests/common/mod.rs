//! What every black-box test needs: run the real binary and read what it printed.
//!
//! Each test file is its own crate and uses a part of this, hence `dead_code`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// 2026-01-05T09:00:00Z, a Monday: commits in tests get fixed times.
pub const TIME: i64 = 1_767_603_600;
pub const ALICE: &str = "Alice <alice@example.com>";

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_countersign"));
    // A database or server named by the environment running the tests must never be
    // written to.
    command
        .args(args)
        .env_remove("COUNTERSIGN_DATABASE")
        .env_remove("COUNTERSIGN_SERVER")
        .env_remove("COUNTERSIGN_TOKEN")
        .env_remove("COUNTERSIGN_REPOSITORY");
    command
}

pub fn countersign(args: &[&str]) -> Output {
    command(args).output().expect("the binary runs")
}

pub fn countersign_env(args: &[&str], key: &str, value: &str) -> Output {
    command(args)
        .env(key, value)
        .output()
        .expect("the binary runs")
}

pub fn countersign_stdin(args: &[&str], stdin: &[u8]) -> Output {
    countersign_stdin_in(args, stdin, None)
}

/// [`countersign_stdin`] with `GIT_DIR` set to `git_dir`, as git runs a hook, when given.
pub fn countersign_stdin_in(
    args: &[&str],
    stdin: &[u8],
    git_dir: Option<&std::path::Path>,
) -> Output {
    let mut command = command(args);
    if let Some(dir) = git_dir {
        command.env("GIT_DIR", dir);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The JSON the command printed; it must have succeeded.
pub fn json(output: &Output) -> Value {
    assert!(output.status.success(), "failed: {}", stderr(output));
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

/// What the command printed on stdout; it must have succeeded.
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// A countersign server on 127.0.0.1:0 in this process, on its own runtime, so a test can
/// run the binary (and `git`) synchronously against it. SQLite in a temporary directory; the
/// log is signed with a fixed test key whose verifier key is written to `verifier_key`.
pub struct TestServer {
    pub url: String,
    pub verifier_key: std::path::PathBuf,
    pub store: countersign_store::Store,
    runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Serves the repositories `repos` (name, path) with the system clock.
    pub fn start(repos: &[(&str, &std::path::Path)]) -> TestServer {
        TestServer::start_with(repos, |state| state)
    }

    /// [`TestServer::start`] with the state changed before it serves (a short lease).
    pub fn start_with(
        repos: &[(&str, &std::path::Path)],
        configure: impl FnOnce(countersign_server::AppState) -> countersign_server::AppState,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("server.db").display()
        );
        let store = runtime
            .block_on(countersign_store::Store::connect(&url))
            .unwrap();
        let signer =
            countersign_audit::Signer::from_seed("countersign.test/server", [9; 32]).unwrap();
        let verifier_key = dir.path().join("log.pub");
        std::fs::write(&verifier_key, format!("{}\n", signer.verifier())).unwrap();
        let repos = repos
            .iter()
            .map(|(name, path)| ((*name).to_owned(), path.to_path_buf()))
            .collect();
        let state = countersign_server::AppState::new(
            store.clone(),
            repos,
            countersign_server::Clock::system(),
        )
        .with_log_signer(signer);
        let state = configure(state);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = runtime.spawn(countersign_server::run(listener, state, async move {
            let _ = stopped.await;
        }));
        TestServer {
            url,
            verifier_key,
            store,
            runtime,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// A fresh token for `principal` (`agent:fixbot`) with `role`, valid for an hour.
    pub fn token(&self, principal: &str, role: countersign_server::Role) -> String {
        static SECRET: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);
        let principal: countersign_policy::Principal = principal.parse().unwrap();
        let mut secret = [0u8; 32];
        // Unique within this process, and each server has its own database.
        secret[0] = SECRET.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let (text, _) = self
            .runtime
            .block_on(countersign_server::create_token(
                &self.store,
                &principal,
                role,
                now + 3600,
                secret,
            ))
            .unwrap();
        text
    }

    /// `GET path` with `token`: the JSON answer, whatever the status.
    pub fn get(&self, path: &str, token: &str) -> Value {
        let url = format!("{}{path}", self.url);
        self.runtime.block_on(async {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    }

    /// Stops the server and waits for the requests in flight.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            self.runtime.block_on(task).unwrap().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Runs the binary with `COUNTERSIGN_SERVER` and `COUNTERSIGN_TOKEN` set (the token only if
/// given), as a user of the client would.
pub fn client(server: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = command(args);
    command
        .env("COUNTERSIGN_SERVER", server)
        .env_remove("COUNTERSIGN_TOKEN");
    if let Some(token) = token {
        command.env("COUNTERSIGN_TOKEN", token);
    }
    command.output().expect("the binary runs")
}

/// `countersign runner keygen --name NAME --out DIR`: the private key's path and the public
/// key's hex, checked against the config snippet keygen prints.
pub fn keygen(name: &str, out: &std::path::Path) -> (std::path::PathBuf, String) {
    let output = countersign(&[
        "runner",
        "keygen",
        "--name",
        name,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let public = text
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        text.contains(&format!("public_key = \"{public}\"")),
        "{text}"
    );
    (out.join(format!("{name}.key")), public)
}

// One text with the server's tests (`countersign-server/tests/common/catalog.rs`).
#[path = "../../../countersign-server/tests/common/catalog.rs"]
pub mod catalog;
