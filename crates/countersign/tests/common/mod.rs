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
    // A database named by the environment running the tests must never be written to.
    command.args(args).env_remove("COUNTERSIGN_DATABASE");
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
    let mut child = command(args)
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
