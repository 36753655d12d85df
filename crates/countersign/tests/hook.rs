//! `countersign hook pre-receive` in a real bare repository: a `hooks/pre-receive` script
//! execs the built binary, the server runs in-process on 127.0.0.1:0 (SQLite) reading that
//! same bare repository, and every push is a real `git push` from a clone. An authorized new
//! tip of main passes; an unauthorized one, an unproposed one and a deletion are refused with
//! the reason; unprotected branches pass; a server that does not answer refuses (fail closed).
//! A `hooks/post-receive` script records the landed proposals as merged.
//!
//! A protected ref moves only as far as a proposal judged: the hidden-base attack (a base the
//! proposer chose), a force-push that drops commits or rolls main back, a merge commit, an
//! older base of main, a new protected branch named by `[repository] protected`.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use countersign_repo::RepoWriter;
use countersign_server::Role;

/// `docs` is automated; `payments` (high criticality) waits for one of alice and bob.
const CATALOG: &str = r#"apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-shop
spec:
  type: team
  children: []
  members: [alice, bob]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: alice
spec:
  memberOf: [team-shop]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: bob
spec:
  memberOf: [team-shop]
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: docs
  annotations:
    countersign.dev/criticality: low
    countersign.dev/paths: /docs/**
spec:
  type: documentation
  lifecycle: production
  owner: team-shop
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: payments
  annotations:
    countersign.dev/criticality: high
    countersign.dev/paths: /payments/**
spec:
  type: service
  lifecycle: production
  owner: team-shop
"#;

/// `git` with no user or system configuration, a fixed identity and fixed dates.
fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "fixbot")
        .env("GIT_AUTHOR_EMAIL", "fixbot@agents.example.com")
        .env("GIT_COMMITTER_NAME", "fixbot")
        .env("GIT_COMMITTER_EMAIL", "fixbot@agents.example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-05T10:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-05T10:00:00Z")
        .env_remove("COUNTERSIGN_TOKEN")
        .env_remove("COUNTERSIGN_SERVER")
        .output()
        .expect("git runs")
}

fn git_ok(dir: &Path, args: &[&str]) -> String {
    let out = git(dir, args);
    assert!(
        out.status.success(),
        "git {args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out).trim().to_owned()
}

struct Remote {
    _dir: tempfile::TempDir,
    origin: PathBuf,
    clone: PathBuf,
    server: TestServer,
    /// A proposer token (agent:fixbot).
    fixbot: String,
}

impl Remote {
    /// Commits `contents` to `path` in the clone on the current branch; returns the commit id.
    fn commit(&self, path: &str, contents: &str, message: &str) -> String {
        let file = self.clone.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, contents).unwrap();
        git_ok(&self.clone, &["add", path]);
        git_ok(&self.clone, &["commit", "-q", "-m", message]);
        git_ok(&self.clone, &["rev-parse", "HEAD"])
    }

    fn push(&self, refspec: &str) -> Output {
        git(&self.clone, &["push", "origin", refspec])
    }

    fn origin_main(&self) -> String {
        git_ok(&self.origin, &["rev-parse", "refs/heads/main"])
    }

    /// Opens a proposal for `branch` against main as fixbot; returns the proposal JSON.
    fn propose(&self, branch: &str) -> serde_json::Value {
        json(&self.propose_from("main", branch))
    }

    /// Proposes `base..head` as fixbot.
    fn propose_from(&self, base: &str, head: &str) -> Output {
        client(
            &self.server.url,
            Some(&self.fixbot),
            &[
                "propose", "--repo", "shop", "--base", base, "--head", head, "--title", head,
                "--format", "json",
            ],
        )
    }
}

/// A bare `origin.git` seeded with the governed base on main, its pre-receive hook calling
/// the binary, the server reading it as `shop`, and a clone to push from.
fn remote() -> Remote {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed");
    let mut writer = RepoWriter::init(&seed).unwrap();
    writer
        .commit(
            [
                (
                    "countersign.toml",
                    Some("[repository]\nname = \"shop\"\nprotected = [\"main\", \"release\"]\n"),
                ),
                ("catalog-info.yaml", Some(CATALOG)),
                ("docs/index.md", Some("# Shop\n")),
                ("payments/capture.rs", Some("pub fn capture() {}\n")),
            ],
            "base",
            ALICE,
            TIME,
        )
        .unwrap();
    let origin = dir.path().join("origin.git");
    git_ok(
        dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            seed.to_str().unwrap(),
            origin.to_str().unwrap(),
        ],
    );
    let server = TestServer::start(&[("shop", &origin)]);
    let hook_token = server.token("system:pre-receive", Role::Auditor);
    // The token is the hook's secret: in the script (0700), never on a command line.
    let script = format!(
        "#!/bin/sh\nCOUNTERSIGN_TOKEN='{hook_token}' exec '{}' hook pre-receive --server '{}' --repo shop\n",
        env!("CARGO_BIN_EXE_countersign"),
        server.url,
    );
    // After the push, the proposal whose head landed is recorded as merged (an admin token).
    let merge_token = server.token("system:post-receive", Role::Admin);
    let post = format!(
        "#!/bin/sh\nCOUNTERSIGN_TOKEN='{merge_token}' exec '{}' hook post-receive --server '{}' --repo shop\n",
        env!("CARGO_BIN_EXE_countersign"),
        server.url,
    );
    for (name, script) in [("pre-receive", script), ("post-receive", post)] {
        let hook = origin.join("hooks").join(name);
        std::fs::write(&hook, script).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
    }
    let clone = dir.path().join("clone");
    git_ok(
        dir.path(),
        &[
            "clone",
            "-q",
            origin.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let fixbot = server.token("agent:fixbot", Role::Proposer);
    Remote {
        _dir: dir,
        origin,
        clone,
        server,
        fixbot,
    }
}

#[test]
fn pushes_to_main_pass_only_when_the_new_tip_is_authorized() {
    let mut r = remote();
    let base = r.origin_main();

    // An unprotected branch passes without any proposal.
    git_ok(&r.clone, &["checkout", "-q", "-b", "docs"]);
    let docs = r.commit("docs/index.md", "# The shop\n", "docs: title");
    let out = r.push("docs");
    assert!(out.status.success(), "{}", stderr(&out));

    // Not proposed yet: main refuses it, naming the ref, the commit and why.
    let out = r.push("docs:main");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "countersign: refusing refs/heads/main: commit {docs} is not authorized"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("- no proposal has {docs} as its head")),
        "{err}"
    );
    assert_eq!(r.origin_main(), base);

    // An automated decision authorizes it: the same push now passes.
    let proposal = r.propose("docs");
    assert_eq!(proposal["state"], "authorized");
    let out = r.push("docs:main");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "countersign: refs/heads/main -> {docs} authorized by proposal {}",
            proposal["id"].as_str().unwrap()
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(r.origin_main(), docs);
    // The post-receive hook recorded it merged; a merged head stays authorized, so the same
    // commit may go to another protected branch.
    let docs_id = proposal["id"].as_str().unwrap();
    assert!(
        stderr(&out).contains(&format!(
            "countersign: refs/heads/main -> {docs}: proposal {docs_id} recorded as merged"
        )),
        "{}",
        stderr(&out)
    );
    let status = json(&client(
        &r.server.url,
        Some(&r.fixbot),
        &["status", docs_id, "--format", "json"],
    ));
    assert_eq!(status["state"], "merged");
    let out = r.push("docs:master");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("proposal {docs_id} already merged")),
        "{}",
        stderr(&out)
    );

    // A change that waits for a person is refused until one approves it.
    git_ok(&r.clone, &["checkout", "-q", "-b", "payments"]);
    let payments = r.commit(
        "payments/capture.rs",
        "pub fn capture() { retry(); }\n",
        "payments: retry",
    );
    assert!(r.push("payments").status.success());
    let proposal = r.propose("payments");
    let id = proposal["id"].as_str().unwrap();
    assert_eq!(proposal["state"], "awaiting_approval");
    let out = r.push("payments:main");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "countersign: refusing refs/heads/main: commit {payments} is not authorized"
        )) && err.contains(&format!(
            "- proposal {id} (single_approver tier) is awaiting_approval"
        )),
        "{err}"
    );
    assert_eq!(r.origin_main(), docs);

    let alice = r.server.token("human:alice", Role::Approver);
    ok(client(
        &r.server.url,
        Some(&alice),
        &["approve", id, "--head", &payments],
    ));
    let out = r.push("payments:main");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(r.origin_main(), payments);
    let status = json(&client(
        &r.server.url,
        Some(&r.fixbot),
        &["status", id, "--format", "json"],
    ));
    assert_eq!(status["state"], "merged");

    // Deleting a protected branch is refused, whatever is authorized.
    let out = r.push(":main");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "countersign: refusing refs/heads/main: refs/heads/main is protected by countersign and cannot be deleted"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(r.origin_main(), payments);

    // Fail closed: with the server gone, main is refused and other branches still pass.
    r.server.stop();
    git_ok(&r.clone, &["checkout", "-q", "-b", "late"]);
    let late = r.commit("docs/late.md", "late\n", "docs: late");
    let out = r.push("late:main");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "countersign: refusing refs/heads/main: cannot check commit {late}: server unreachable"
        )),
        "{err}"
    );
    assert_eq!(r.origin_main(), payments);
    let out = r.push("late");
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn the_hook_refuses_when_it_cannot_ask() {
    // Straight on stdin, as git would feed it, in an empty bare repository: no token in the
    // environment.
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("empty.git");
    git_ok(
        dir.path(),
        &["init", "-q", "--bare", bare.to_str().unwrap()],
    );
    let git_dir = Some(bare.as_path());
    let new = "1".repeat(40);
    let old = "0".repeat(40);
    let input = format!("{old} {new} refs/heads/main\n{old} {new} refs/heads/topic\n");
    let out = countersign_stdin_in(
        &[
            "hook",
            "pre-receive",
            "--server",
            "http://127.0.0.1:1",
            "--repo",
            "shop",
        ],
        input.as_bytes(),
        git_dir,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "countersign: refusing refs/heads/main: cannot ask the countersign server whether {new} is authorized: COUNTERSIGN_TOKEN is not set"
        )),
        "{err}"
    );
    assert!(!err.contains("refs/heads/topic"), "{err}");

    // Only unprotected refs (no main exists, so only --protect counts): nothing to ask, the
    // push passes.
    let out = countersign_stdin_in(
        &[
            "hook",
            "pre-receive",
            "--repo",
            "shop",
            "--protect",
            "refs/heads/release/*",
        ],
        format!("{old} {new} refs/heads/main\n").as_bytes(),
        git_dir,
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // Not knowing which branches are protected refuses everything.
    let out = countersign_stdin_in(
        &["hook", "pre-receive", "--repo", "shop"],
        format!("{old} {new} refs/heads/topic\n").as_bytes(),
        Some(&dir.path().join("missing.git")),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read which branches are protected"),
        "{}",
        stderr(&out)
    );

    // Input that is not githooks(5) refuses everything.
    let out = countersign_stdin(
        &["hook", "pre-receive", "--repo", "shop"],
        b"main is the best branch\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("malformed pre-receive input"),
        "{}",
        stderr(&out)
    );
}

/// Refused, with git's and the hook's output, and main left where it was.
fn refused(r: &Remote, refspec: &str, main: &str) -> String {
    let out = r.push(refspec);
    let err = stderr(&out);
    assert!(!out.status.success(), "{refspec} passed: {err}");
    assert_eq!(r.origin_main(), main, "{err}");
    err
}

fn passes(r: &Remote, refspec: &str) -> String {
    let out = r.push(refspec);
    let err = stderr(&out);
    assert!(out.status.success(), "{refspec} refused: {err}");
    err
}

/// issue 14.1: an agent proposes its docs edit against its own unreviewed payments commit as
/// the base. The server refuses that base (not in main's history), and main does not move
/// to the head: before, the decision was auto_merge and the hook let main move, though
/// `main..head` changes payments.
#[test]
fn a_hidden_base_is_refused_at_both_ends() {
    let r = remote();
    let main = r.origin_main();
    git_ok(&r.clone, &["checkout", "-q", "-b", "payments-retry"]);
    let hidden = r.commit(
        "payments/capture.rs",
        "pub fn capture() { retry(); }\n",
        "payments: retry",
    );
    passes(&r, "payments-retry");
    git_ok(&r.clone, &["checkout", "-q", "-b", "innocent"]);
    let innocent = r.commit("docs/index.md", "# The shop\n", "docs: title");
    passes(&r, "innocent");

    let out = r.propose_from("payments-retry", "innocent");
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "base {hidden} is not in the history of a protected branch (main, release)"
        )),
        "{err}"
    );
    let err = refused(&r, "innocent:main", &main);
    assert!(
        err.contains(&format!(
            "refusing refs/heads/main: commit {innocent} is not authorized (moving from {main})"
        )) && err.contains(&format!("- no proposal has {innocent} as its head")),
        "{err}"
    );

    // Against main, the payments commit is part of the change: a person must approve it.
    let honest = r.propose("innocent");
    assert_eq!(honest["state"], "awaiting_approval", "{honest}");
    refused(&r, "innocent:main", &main);
}

/// issue 14.1 and 22.4: a protected ref moves forward from what was judged. A base older
/// than main's tip passes (the diff judged was larger); a force-push back to an older
/// authorized commit, or to a sibling that drops main's commits, is refused unless a
/// proposal judged that very move (base = main's tip); deleting main is refused.
#[test]
fn a_protected_ref_moves_only_forward_from_what_was_judged() {
    let r = remote();
    let m0 = r.origin_main();
    git_ok(&r.clone, &["checkout", "-q", "-b", "d1"]);
    let d1 = r.commit("docs/a.md", "a\n", "docs: a");
    passes(&r, "d1");
    assert_eq!(r.propose("d1")["state"], "authorized");
    passes(&r, "d1:main");
    assert_eq!(r.origin_main(), d1);

    // Judged against m0, an older commit of main: m0..d2 holds main..d2.
    git_ok(&r.clone, &["checkout", "-q", "-b", "d2"]);
    let d2 = r.commit("docs/b.md", "b\n", "docs: b");
    passes(&r, "d2");
    let older = json(&r.propose_from(&m0, "d2"));
    assert_eq!(older["state"], "authorized", "{older}");
    let err = passes(&r, "d2:main");
    assert!(
        err.contains(&format!(
            "refs/heads/main -> {d2} authorized by proposal {}",
            older["id"].as_str().unwrap()
        )),
        "{err}"
    );
    assert_eq!(r.origin_main(), d2);

    // Back to d1, itself authorized (and merged): not a fast-forward, so refused.
    let err = refused(&r, "+d1:main", &d2);
    assert!(
        err.contains(&format!(
            "but {d1} does not fast-forward refs/heads/main from {d2}"
        )),
        "{err}"
    );

    // A sibling authorized against m0 would drop d1 and d2: refused the same way.
    git_ok(&r.clone, &["checkout", "-q", "-b", "sibling", &m0]);
    r.commit("docs/c.md", "c\n", "docs: c");
    passes(&r, "sibling");
    assert_eq!(json(&r.propose_from(&m0, "sibling"))["state"], "authorized");
    let err = refused(&r, "+sibling:main", &d2);
    assert!(
        err.contains("does not fast-forward refs/heads/main"),
        "{err}"
    );

    // Judged as its own change (d2..d1, the rollback's diff), the rollback passes.
    let rollback = json(&r.propose_from(&d2, "d1"));
    assert_eq!(rollback["state"], "authorized", "{rollback}");
    let err = passes(&r, "+d1:main");
    assert!(
        err.contains(&format!(
            "authorized by proposal {}",
            rollback["id"].as_str().unwrap()
        )),
        "{err}"
    );
    assert_eq!(r.origin_main(), d1);

    let err = refused(&r, ":main", &d1);
    assert!(
        err.contains("refs/heads/main is protected by countersign and cannot be deleted"),
        "{err}"
    );
}

/// A merge commit passes as the head of a proposal against main's tip; a protected branch
/// that does not exist yet (`release`, named by `[repository] protected` at main's tip) is
/// created only at an authorized head; an unprotected branch is created freely.
#[test]
fn merges_and_new_protected_branches() {
    let r = remote();
    let m0 = r.origin_main();
    git_ok(&r.clone, &["checkout", "-q", "-b", "feature"]);
    r.commit("docs/feature.md", "feature\n", "docs: feature");
    passes(&r, "feature");
    git_ok(&r.clone, &["checkout", "-q", "-b", "d1", &m0]);
    let d1 = r.commit("docs/a.md", "a\n", "docs: a");
    passes(&r, "d1");
    assert_eq!(r.propose("d1")["state"], "authorized");
    passes(&r, "d1:main");

    git_ok(&r.clone, &["checkout", "-q", "-b", "merge", &d1]);
    git_ok(
        &r.clone,
        &["merge", "-q", "--no-ff", "feature", "-m", "merge feature"],
    );
    let merge = git_ok(&r.clone, &["rev-parse", "HEAD"]);
    passes(&r, "merge");
    refused(&r, "merge:main", &d1);
    assert_eq!(r.propose("merge")["state"], "authorized");
    passes(&r, "merge:main");
    assert_eq!(r.origin_main(), merge);

    git_ok(&r.clone, &["checkout", "-q", "-b", "rel"]);
    let rel = r.commit("docs/release.md", "1.0\n", "docs: release notes");
    passes(&r, "rel");
    let err = refused(&r, "rel:release", &merge);
    assert!(
        err.contains(&format!(
            "refusing refs/heads/release: commit {rel} is not authorized"
        )),
        "{err}"
    );
    assert_eq!(r.propose("rel")["state"], "authorized");
    passes(&r, "rel:release");
    assert_eq!(git_ok(&r.origin, &["rev-parse", "refs/heads/release"]), rel);
    passes(&r, "rel:scratch");
}
