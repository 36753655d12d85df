//! The proposal lifecycle on the real server: head moves (re-derivation, lapsing verdicts,
//! trivial rebases carrying them), commit authors and committers as authors, rejection and
//! its way out, closing and superseding. Every scenario on SQLite and PostgreSQL, against a
//! repository of this file whose catalog gives each person a profile email.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{CATALOG, Db, NOW, Server, start_with};
use countersign_audit::{Event, EventKind};
use countersign_repo::{CommitId, RepoWriter};
use reqwest::{Method as M, StatusCode};
use serde_json::{Value, json};

const FIXBOT: &str = "Fixbot <fixbot@bots.example.com>";
const BOB: &str = "Bob <bob@example.com>";
const CI: &str = "CI <ci@bots.example.com>";
const PAYMENTS: &str = "payments/src/lib.rs";

/// The shared catalog with a profile email for each person.
fn catalog() -> String {
    let mut catalog = CATALOG.to_owned();
    for name in ["alice", "bob", "carol"] {
        let plain = format!("  name: {name}\nspec:\n");
        assert!(catalog.contains(&plain));
        catalog = catalog.replace(
            &plain,
            &format!("{plain}  profile:\n    email: {name}@example.com\n"),
        );
    }
    catalog
}

/// The governed repository: a base, and topic branches written by each test.
struct Lab {
    _dir: tempfile::TempDir,
    writer: RepoWriter,
    base: CommitId,
    time: i64,
}

impl Lab {
    fn new() -> Lab {
        Lab::with_catalog(&catalog())
    }

    fn with_catalog(catalog: &str) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = RepoWriter::init(dir.path()).unwrap();
        writer
            .commit(
                [
                    ("catalog-info.yaml", Some(catalog)),
                    ("docs/index.md", Some("# Docs\n")),
                    (PAYMENTS, Some("pub fn charge() {}\n")),
                    ("shop/index.html", Some("<html></html>\n")),
                ],
                "base",
                common::ALICE,
                NOW as i64,
            )
            .unwrap();
        let base = writer.head().unwrap();
        Lab {
            _dir: dir,
            writer,
            base,
            time: NOW as i64,
        }
    }

    /// A commit on `branch` from the base changing `path` to `content`, by `author` and
    /// committed by `committer`. Each call gets a new time, so the same change twice makes
    /// two commits with different ids and the same diff.
    fn change(&mut self, path: &str, content: &str, author: &str, committer: &str) -> String {
        self.time += 1;
        let branch = format!("refs/heads/topic-{}", self.time);
        self.writer
            .commit_on_as(
                &branch,
                &self.base,
                [(path, Some(content))],
                &format!("change {}", self.time),
                author,
                committer,
                self.time,
            )
            .unwrap()
            .as_str()
            .to_owned()
    }
}

/// An SSH key made by the real `ssh-keygen`: its private key file and public key line.
fn ssh_key(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, String) {
    let path = dir.join(name);
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_owned())
}

/// The fingerprint `ssh-keygen -l` prints for a public key file.
fn ssh_fingerprint(private: &std::path::Path) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(private.with_extension("pub"))
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

/// How [`git_commit`] signs.
enum Sign<'a> {
    /// With the SSH key in this private key file.
    Ssh(&'a std::path::Path),
    /// With the real `gpg`, the key of this fingerprint in this GNUPGHOME.
    Gpg(&'a Gpg, &'a str),
}

/// `git commit-tree -S` by the real `git`: a commit of `tree` on `parent` by `author`,
/// committed by `committer` (`Name <email>`), signed as `sign` says (or unsigned).
fn git_commit(
    lab: &Lab,
    tree_of: &str,
    author: &str,
    committer: &str,
    sign: Option<Sign<'_>>,
) -> String {
    let split = |who: &str| {
        let (name, email) = who.split_once(" <").unwrap();
        (name.to_owned(), email.trim_end_matches('>').to_owned())
    };
    let ((an, ae), (cn, ce)) = (split(author), split(committer));
    let home = tempfile::tempdir().unwrap();
    let mut git = std::process::Command::new("git");
    git.current_dir(lab.writer.dir())
        .env("HOME", home.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", an)
        .env("GIT_AUTHOR_EMAIL", ae)
        .env("GIT_AUTHOR_DATE", "2026-01-05T10:00:00Z")
        .env("GIT_COMMITTER_NAME", cn)
        .env("GIT_COMMITTER_EMAIL", ce)
        .env("GIT_COMMITTER_DATE", "2026-01-05T10:00:00Z");
    match &sign {
        Some(Sign::Ssh(key)) => {
            git.args(["-c", "gpg.format=ssh", "-c"])
                .arg(format!("user.signingkey={}", key.display()));
        }
        Some(Sign::Gpg(gpg, fingerprint)) => {
            git.env("GNUPGHOME", gpg.home.path())
                .args(["-c", "gpg.format=openpgp", "-c", "gpg.program=gpg", "-c"])
                .arg(format!("user.signingkey={fingerprint}"));
        }
        None => {}
    }
    git.args([
        "commit-tree",
        &format!("{tree_of}^{{tree}}"),
        "-p",
        lab.base.as_str(),
        "-m",
        "signed",
    ]);
    if sign.is_some() {
        git.arg("-S");
    }
    let out = git.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The real `gpg` with a GNUPGHOME of its own, keys made without a passphrase; its agent is
/// stopped when dropped.
struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    fn new() -> Gpg {
        let home = tempfile::tempdir().unwrap();
        Gpg { home }
    }

    fn gpg(&self) -> std::process::Command {
        let mut gpg = std::process::Command::new("gpg");
        gpg.env("GNUPGHOME", self.home.path()).args([
            "--batch",
            "--quiet",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]);
        gpg
    }

    /// A new key `algorithm` (`ed25519`, `rsa2048`) for `uid` that signs: its fingerprint
    /// and its ASCII-armored public key.
    fn key(&self, uid: &str, algorithm: &str) -> (String, String) {
        let out = self
            .gpg()
            .args(["--quick-gen-key", uid, algorithm, "sign", "never"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed = self
            .gpg()
            .args(["--with-colons", "--list-keys", uid])
            .output()
            .unwrap();
        let fingerprint = String::from_utf8(listed.stdout)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_owned())
            .unwrap();
        let public = self
            .gpg()
            .args(["--armor", "--export", &fingerprint])
            .output()
            .unwrap();
        (fingerprint, String::from_utf8(public.stdout).unwrap())
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = std::process::Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "all"])
            .status();
    }
}

/// `commit` with its message changed and nothing else, written with `git hash-object`: its
/// signature (if any) no longer matches what it signs.
fn alter(lab: &Lab, commit: &str) -> String {
    let git = |args: &[&str], input: Option<&[u8]>| {
        let mut child = std::process::Command::new("git")
            .current_dir(lab.writer.dir())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = input {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let object = String::from_utf8(git(&["cat-file", "commit", commit], None)).unwrap();
    assert!(object.ends_with("\nsigned\n"), "{object}");
    let altered = object.replace("\nsigned\n", "\nsigned, then altered\n");
    let id = git(
        &["hash-object", "-t", "commit", "-w", "--stdin"],
        Some(altered.as_bytes()),
    );
    String::from_utf8(id).unwrap().trim().to_owned()
}

/// The `red flag:` line of `proposal`'s explanation about `who`.
fn red_flag(proposal: &Value, who: &str) -> String {
    proposal["authorship_explanation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .find(|l| l.starts_with(&format!("red flag: {who}")))
        .unwrap_or_else(|| panic!("{proposal}"))
        .to_owned()
}

async fn start(db: &Db, lab: &Lab) -> Server {
    let path = lab.writer.dir().to_owned();
    start_with(db, move |mut state| {
        state.repos = Arc::new(BTreeMap::from([("shop".to_owned(), path)]));
        state
    })
    .await
}

async fn propose(server: &Server, lab: &Lab, token: &str, head: &str) -> Value {
    let body =
        json!({ "repo": "shop", "base": lab.base.as_str(), "head": head, "title": "change" });
    let (status, proposal) = server
        .send(M::POST, "/v1/proposals", Some(token), Some(body))
        .await;
    assert_eq!(status, 201, "{proposal}");
    proposal
}

async fn move_head(server: &Server, token: &str, id: &str, head: &str) -> (StatusCode, Value) {
    server
        .send(
            M::POST,
            &format!("/v1/proposals/{id}/head"),
            Some(token),
            Some(json!({ "head": head })),
        )
        .await
}

async fn show(server: &Server, id: &str) -> Value {
    let (status, proposal) = server
        .send(
            M::GET,
            &format!("/v1/proposals/{id}"),
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{proposal}");
    proposal
}

async fn events(server: &Server, id: &str) -> Vec<Event> {
    server
        .store
        .entries_about(id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event().unwrap())
        .collect()
}

/// Whether a protected branch may be created at `commit` (old tip all zeros): an authorized
/// proposal has it as its head, with a base in main's history.
async fn authorized(server: &Server, commit: &str) -> bool {
    let zero = "0".repeat(40);
    let path = format!("/v1/authorizations?repo=shop&old={zero}&commit={commit}");
    let (_, answer) = server.send(M::GET, &path, Some("auditor"), None).await;
    answer["authorized"].as_bool().unwrap()
}

/// (approver, head, lapsed, carried_from) of each verdict, as the view lists them.
fn verdicts(proposal: &Value) -> Vec<(String, String, bool, Option<String>)> {
    proposal["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["approver"].as_str().unwrap().to_owned(),
                a["head"].as_str().unwrap().to_owned(),
                a["lapsed"].as_bool().unwrap(),
                a["carried_from"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// A head move re-derives the decision (here from a payments change needing two people to
/// a shop change the policy automates, and back), lapses the verdicts on the old head (kept
/// and shown as lapsed), makes approvals of the old head stale (409) and its authorization
/// void.
async fn head_move_rederives_and_lapses(db: &Db) {
    let mut lab = Lab::new();
    let payments = lab.change(PAYMENTS, "pub fn charge() { /* v2 */ }\n", FIXBOT, FIXBOT);
    let shop = lab.change("shop/index.html", "<html>v2</html>\n", FIXBOT, FIXBOT);
    let server = start(db, &lab).await;
    let proposal = propose(&server, &lab, "fixbot", &payments).await;
    let id = proposal["id"].as_str().unwrap();
    assert_eq!(proposal["tier"], "change_control", "{proposal}");
    let (_, approved) = server.verdict("alice", id, &payments, "approve").await;
    assert_eq!(approved["approvals_counted"], 1, "{approved}");

    let (status, moved) = move_head(&server, "fixbot", id, &shop).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(
        (
            moved["head"].as_str(),
            moved["tier"].as_str(),
            moved["state"].as_str(),
            moved["approvals_counted"].as_u64(),
        ),
        (
            Some(shop.as_str()),
            Some("notify_and_proceed"),
            Some("authorized"),
            Some(0)
        ),
        "{moved}"
    );
    assert_eq!(
        verdicts(&moved),
        [("human:alice".to_owned(), payments.clone(), true, None)]
    );
    assert_eq!(moved["decision"]["tier"], "notify_and_proceed");
    assert_eq!(show(&server, id).await["head"], shop.as_str());
    assert!(authorized(&server, &shop).await);
    // The old head is no longer the proposal's: verdicts on it are stale.
    assert_eq!(server.verdict("bob", id, &payments, "approve").await.0, 409);

    // Back to the payments head: judged afresh. Alice's verdict on it stays lapsed and no
    // longer holds her slot; the shop head is no longer authorized.
    let (status, back) = move_head(&server, "fixbot", id, &payments).await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(
        (
            back["state"].as_str(),
            back["tier"].as_str(),
            back["approvals_counted"].as_u64()
        ),
        (Some("awaiting_approval"), Some("change_control"), Some(0)),
        "{back}"
    );
    assert!(!authorized(&server, &shop).await);
    let (status, after) = server.verdict("alice", id, &payments, "approve").await;
    assert_eq!(
        (status, after["approvals_counted"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    assert_eq!(after["approvals"].as_array().unwrap().len(), 2, "{after}");

    let log = events(&server, id).await;
    let moved_event = log.iter().find(|e| e.kind == EventKind::HeadMoved).unwrap();
    assert_eq!(moved_event.actor, "agent:fixbot");
    assert_eq!(moved_event.data["from"], payments.as_str());
    assert_eq!(moved_event.data["to"], shop.as_str());
    assert_eq!(moved_event.data["trivial_rebase"], false);
    assert_eq!(moved_event.data["lapsed"][0]["approver"], "human:alice");
    // The re-derived decision is logged after the move, so a bundle re-derives the new head.
    let kinds: Vec<EventKind> = log.iter().map(|e| e.kind).collect();
    let at = kinds
        .iter()
        .position(|k| *k == EventKind::HeadMoved)
        .unwrap();
    assert_eq!(
        &kinds[at + 1..at + 4],
        [
            EventKind::Proposed,
            EventKind::Decided,
            EventKind::Authorized
        ]
    );
    let decided = log
        .iter()
        .rev()
        .find(|e| e.kind == EventKind::Decided)
        .unwrap();
    assert_eq!(decided.data["tier"], "change_control");
    server.stop().await;
}

/// The same diff under a new commit id carries the verdicts over (and the move says so in
/// the log); a head with a different diff lapses them.
async fn trivial_rebase_carries_verdicts(db: &Db) {
    let mut lab = Lab::new();
    let fix = "pub fn charge() { /* fixed */ }\n";
    let first = lab.change(PAYMENTS, fix, FIXBOT, FIXBOT);
    let rebased = lab.change(PAYMENTS, fix, FIXBOT, FIXBOT);
    let different = lab.change(
        PAYMENTS,
        "pub fn charge() { /* other */ }\n",
        FIXBOT,
        FIXBOT,
    );
    assert_ne!(first, rebased);
    let server = start(db, &lab).await;
    let proposal = propose(&server, &lab, "fixbot", &first).await;
    let id = proposal["id"].as_str().unwrap();
    assert_eq!(server.verdict("alice", id, &first, "approve").await.0, 200);

    let (status, moved) = move_head(&server, "fixbot", id, &rebased).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(
        (moved["state"].as_str(), moved["approvals_counted"].as_u64()),
        (Some("awaiting_approval"), Some(1)),
        "{moved}"
    );
    assert_eq!(
        verdicts(&moved),
        [
            ("human:alice".to_owned(), first.clone(), true, None),
            (
                "human:alice".to_owned(),
                rebased.clone(),
                false,
                Some(first.clone())
            ),
        ]
    );
    // Alice again on the rebased head counts once; bob's approval completes the count.
    let (_, again) = server.verdict("alice", id, &rebased, "approve").await;
    assert_eq!(again["approvals_counted"], 1);
    let log = events(&server, id).await;
    let moved_event = log.iter().find(|e| e.kind == EventKind::HeadMoved).unwrap();
    assert_eq!(moved_event.data["trivial_rebase"], true);
    assert_eq!(
        moved_event.data["carried_over"][0]["approver"],
        "human:alice"
    );
    assert_eq!(
        moved_event.data["diff_digest"]["from"],
        moved_event.data["diff_digest"]["to"]
    );

    let (status, moved) = move_head(&server, "fixbot", id, &different).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["approvals_counted"], 0, "{moved}");
    assert!(verdicts(&moved).iter().all(|(_, _, lapsed, _)| *lapsed));
    assert_eq!(
        server.verdict("alice", id, &different, "approve").await.0,
        200
    );
    let (_, done) = server.verdict("bob", id, &different, "approve").await;
    assert_eq!(done["state"], "authorized", "{done}");
    assert!(authorized(&server, &different).await);
    server.stop().await;
}

/// A rejection blocks the head; a trivial rebase keeps it rejected (the same diff), a new
/// diff unblocks it.
async fn rejection_then_new_head_unblocks(db: &Db) {
    let mut lab = Lab::new();
    let first = lab.change(PAYMENTS, "pub fn charge() { 1 }\n", FIXBOT, FIXBOT);
    let rebased = lab.change(PAYMENTS, "pub fn charge() { 1 }\n", FIXBOT, FIXBOT);
    let fixed = lab.change(PAYMENTS, "pub fn charge() { 2 }\n", FIXBOT, FIXBOT);
    let server = start(db, &lab).await;
    let proposal = propose(&server, &lab, "fixbot", &first).await;
    let id = proposal["id"].as_str().unwrap();
    let (_, rejected) = server.verdict("bob", id, &first, "reject").await;
    assert_eq!(rejected["state"], "rejected", "{rejected}");
    assert_eq!(server.verdict("carol", id, &first, "approve").await.0, 409);

    let (status, moved) = move_head(&server, "fixbot", id, &rebased).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["state"], "rejected", "{moved}");
    assert_eq!(
        server.verdict("carol", id, &rebased, "approve").await.0,
        409
    );

    let (status, moved) = move_head(&server, "fixbot", id, &fixed).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["state"], "awaiting_approval", "{moved}");
    assert_eq!(server.verdict("carol", id, &fixed, "approve").await.0, 200);
    let (status, done) = server.verdict("bob", id, &fixed, "approve").await;
    assert_eq!(
        (status, done["state"].as_str()),
        (StatusCode::OK, Some("authorized"))
    );
    server.stop().await;
}

/// Everyone who authored or committed a commit of the change is an author: bob wrote the
/// commit, a CI account committed it, fixbot proposed it. Bob cannot approve; the CI
/// account, unknown to the catalog, is kept by email.
async fn commit_authors_cannot_approve(db: &Db) {
    let mut lab = Lab::new();
    let head = lab.change(PAYMENTS, "pub fn charge() { /* bob */ }\n", BOB, CI);
    let server = start(db, &lab).await;
    let proposal = propose(&server, &lab, "fixbot", &head).await;
    let id = proposal["id"].as_str().unwrap();
    assert_eq!(
        proposal["authors"],
        json!(["email:ci@bots.example.com", "human:bob"]),
        "{proposal}"
    );
    assert!(
        proposal["eligible_approvers"]
            .as_array()
            .unwrap()
            .contains(&json!("human:bob"))
    );
    let (status, problem) = server.verdict("bob", id, &head, "approve").await;
    assert_eq!(status, 403, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("human:bob authored or committed a commit"),
        "{detail}"
    );
    assert_eq!(server.verdict("bob", id, &head, "reject").await.0, 403);
    // Others may.
    assert_eq!(server.verdict("alice", id, &head, "approve").await.0, 200);
    // The decision records who the authors were.
    let decided = events(&server, id)
        .await
        .into_iter()
        .find(|e| e.kind == EventKind::Decided)
        .unwrap();
    assert_eq!(decided.data["commit_authors"], proposal["authors"]);
    server.stop().await;
}

/// Issue 23 point 1, the attack: bob rejects the payments change; the proposer rebases it
/// (the same diff) under a commit naming bob as its author, to lapse his rejection and
/// disqualify him. His rejection stands, and the decision shows the authorship as a claim
/// (which commit, pushed by whom), names bob as an approver the claim took out, and shows
/// the pool left. Then a change whose commit names two of the three owners: change control
/// cannot be met, the decision says it is because of unverified claims, and the one owner
/// left approving does not authorize it.
async fn claimed_authorship_is_shown_and_never_lapses_a_rejection(db: &Db) {
    let mut lab = Lab::new();
    let fix = "pub fn charge() { /* claimed */ }\n";
    let first = lab.change(PAYMENTS, fix, FIXBOT, FIXBOT);
    let naming_bob = lab.change(PAYMENTS, fix, BOB, FIXBOT);
    let naming_two = lab.change(
        PAYMENTS,
        "pub fn charge() { /* two */ }\n",
        BOB,
        "Carol <carol@example.com>",
    );
    let server = start(db, &lab).await;
    let proposal = propose(&server, &lab, "fixbot", &first).await;
    let id = proposal["id"].as_str().unwrap();
    assert_eq!(proposal["approver_pool"]["eligible_count"], 3, "{proposal}");
    // The proposer's own commit: a claimed author the catalog does not know, excluding
    // nobody.
    assert_eq!(
        proposal["authorship_explanation"],
        json!([format!(
            "email:fixbot@bots.example.com: authorship claimed, not verified: named by commit {} (author and committer) without their signature, pushed by agent:fixbot",
            &first[..12]
        )]),
        "{proposal}"
    );
    let (_, rejected) = server.verdict("bob", id, &first, "reject").await;
    assert_eq!(rejected["state"], "rejected", "{rejected}");

    let (status, moved) = move_head(&server, "fixbot", id, &naming_bob).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["state"], "rejected", "{moved}");
    assert_eq!(moved["rejected_by"], json!(["human:bob"]), "{moved}");
    let bob = moved["authorship"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["principal"] == "human:bob")
        .unwrap_or_else(|| panic!("{moved}"));
    assert_eq!(
        bob,
        &json!({
            "principal": "human:bob",
            "status": "claimed",
            "commits": [{ "commit": naming_bob, "as": ["author"], "status": "claimed" }],
        })
    );
    assert_eq!(
        moved["approver_pool"],
        json!({
            "eligible": ["human:alice", "human:carol"],
            "eligible_count": 2,
            "excluded_as_authors": ["human:bob"],
            "meetable": true,
        })
    );
    let explanation: Vec<&str> = moved["authorship_explanation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let short = &naming_bob[..12];
    assert!(
        explanation.contains(&format!(
            "human:bob: authorship claimed, not verified: named by commit {short} (author) without their signature, pushed by agent:fixbot"
        ).as_str()),
        "{explanation:#?}"
    );
    assert!(
        explanation.iter().any(|l| l.starts_with(
            "human:bob is an eligible approver of this change but may not approve it"
        )),
        "{explanation:#?}"
    );
    // The decision as recorded in the log says the same.
    let decided = events(&server, id)
        .await
        .into_iter()
        .rev()
        .find(|e| e.kind == EventKind::Decided)
        .unwrap();
    assert_eq!(decided.data["authorship"]["authors"], moved["authorship"]);
    assert_eq!(decided.data["authorship"]["pushed_by"], "agent:fixbot");
    // Nobody else's approval lifts bob's rejection, and bob, now named, cannot approve.
    assert_eq!(
        server.verdict("alice", id, &naming_bob, "approve").await.0,
        409
    );
    assert_eq!(
        server.verdict("carol", id, &naming_bob, "approve").await.0,
        409
    );
    assert_eq!(
        server.verdict("bob", id, &naming_bob, "approve").await.0,
        403
    );
    assert!(!authorized(&server, &naming_bob).await);

    // Two of the three owners named: change control needs two, one is left.
    let other = propose(&server, &lab, "fixbot", &naming_two).await;
    let other_id = other["id"].as_str().unwrap();
    assert_eq!(
        (
            other["approver_pool"]["eligible_count"].as_u64(),
            other["approver_pool"]["meetable"].as_bool(),
            &other["approver_pool"]["excluded_as_authors"],
        ),
        (Some(1), Some(false), &json!(["human:bob", "human:carol"])),
        "{other}"
    );
    let last = other["authorship_explanation"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap();
    assert!(
        last.starts_with("cannot be authorized: too few eligible approvers are left")
            && last
                .contains("because of unverified authorship claims naming human:bob, human:carol"),
        "{last}"
    );
    let (status, approved) = server
        .verdict("alice", other_id, &naming_two, "approve")
        .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["state"], "awaiting_approval", "{approved}");
    assert!(!authorized(&server, &naming_two).await);
    server.stop().await;
}

/// Commits signed by the real `git` with SSH keys from the real `ssh-keygen`, against a
/// catalog where alice lists her key: signed by alice's key, alice is a *verified* author;
/// the same commit signed by mallory's key (on nobody's User) leaves her authorship only
/// *claimed*; alice's signed commit with its message altered (the signature no longer
/// matches) makes it *invalid*, a red flag; a commit naming bob as author that alice committed and signed
/// verifies alice and leaves bob *claimed*. Every author, whatever the status, still cannot
/// approve.
async fn signed_commits_verify_authorship(db: &Db) {
    let keys = tempfile::tempdir().unwrap();
    let (alice_key, alice_public) = ssh_key(keys.path(), "alice");
    let (mallory_key, _) = ssh_key(keys.path(), "mallory");
    let plain = "  name: alice\nspec:\n";
    let catalog = catalog().replace(
        plain,
        &format!(
            "  name: alice\n  annotations:\n    countersign.dev/ssh-signing-keys: |\n      # her laptop\n      {alice_public}\nspec:\n"
        ),
    );
    assert!(catalog.contains(&alice_public));
    let mut lab = Lab::with_catalog(&catalog);
    let change = lab.change(
        PAYMENTS,
        "pub fn charge() { /* signed */ }\n",
        FIXBOT,
        FIXBOT,
    );
    let alice = common::ALICE;
    let by_alice = git_commit(&lab, &change, alice, alice, Some(Sign::Ssh(&alice_key)));
    let by_mallory = git_commit(&lab, &change, alice, alice, Some(Sign::Ssh(&mallory_key)));
    let bob_by_alice = git_commit(&lab, &change, BOB, alice, Some(Sign::Ssh(&alice_key)));
    let fingerprint = ssh_fingerprint(&alice_key);
    let path = lab.writer.dir().to_owned();
    let server = start_with(db, move |mut state| {
        state.repos = Arc::new(BTreeMap::from([("shop".to_owned(), path)]));
        state.with_log_signer(common::log_signer())
    })
    .await;
    let author = |proposal: &Value, who: &str| {
        proposal["authorship"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["principal"] == who)
            .cloned()
            .unwrap_or_else(|| panic!("{who} in {proposal}"))
    };
    let explained = |proposal: &Value, line: &str| {
        proposal["authorship_explanation"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap() == line)
    };

    let verified = propose(&server, &lab, "fixbot", &by_alice).await;
    assert_eq!(
        author(&verified, "human:alice"),
        json!({
            "principal": "human:alice",
            "status": "verified",
            "commits": [{
                "commit": by_alice,
                "as": ["author", "committer"],
                "status": "verified",
                "detail": format!("signed with {fingerprint}"),
            }],
        }),
        "{verified}"
    );
    assert!(
        explained(
            &verified,
            &format!(
                "human:alice: authorship verified: commit {} (author and committer), signed with {fingerprint}",
                &by_alice[..12]
            )
        ),
        "{verified}"
    );
    assert!(
        explained(
            &verified,
            "human:alice is an eligible approver of this change but may not approve it: they authored it (verified)"
        ),
        "{verified}"
    );
    let id = verified["id"].as_str().unwrap();
    assert_eq!(
        server.verdict("alice", id, &by_alice, "approve").await.0,
        403
    );

    let forged = propose(&server, &lab, "fixbot", &by_mallory).await;
    let alice_forged = author(&forged, "human:alice");
    assert_eq!(
        (
            &alice_forged["status"],
            &alice_forged["commits"][0]["detail"]
        ),
        (
            &json!("claimed"),
            &json!(format!(
                "an SSH signature by key {}, which no person the commit names lists",
                ssh_fingerprint(&mallory_key)
            ))
        ),
        "{forged}"
    );
    let id = forged["id"].as_str().unwrap();
    assert_eq!(
        server.verdict("alice", id, &by_mallory, "approve").await.0,
        403
    );

    let altered = alter(&lab, &by_alice);
    let tampered = propose(&server, &lab, "fixbot", &altered).await;
    assert_eq!(
        author(&tampered, "human:alice")["status"],
        "invalid",
        "{tampered}"
    );
    let red_flag = red_flag(&tampered, "human:alice");
    assert!(
        red_flag.contains(&format!(
            "the SSH signature by key {fingerprint} does not verify over the commit"
        )),
        "{red_flag}"
    );

    let mixed = propose(&server, &lab, "fixbot", &bob_by_alice).await;
    assert_eq!(
        author(&mixed, "human:alice")["status"],
        "verified",
        "{mixed}"
    );
    let bob = author(&mixed, "human:bob");
    assert_eq!(
        (&bob["status"], &bob["commits"][0]["detail"]),
        (
            &json!("claimed"),
            &json!("signed by human:alice, not by them")
        ),
        "{mixed}"
    );
    let id = mixed["id"].as_str().unwrap();
    assert_eq!(
        server.verdict("bob", id, &bob_by_alice, "approve").await.0,
        403
    );

    // Offline: each bundle carries the commit objects, and re-deriving it checks their
    // signatures again against the catalog it recorded, to the same statuses.
    let verifier = common::log_signer().verifier();
    for proposal in [&verified, &forged, &tampered, &mixed] {
        let id = proposal["id"].as_str().unwrap();
        let bytes = server
            .client
            .get(format!("{}/v1/proposals/{id}/bundle", server.base))
            .bearer_auth(&server.tokens["auditor"])
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let bundle =
            countersign_audit::bundle::verify_bundle(&bytes, std::slice::from_ref(&verifier))
                .unwrap();
        let differences = countersign_decide::bundle::rederive(&bundle, &verifier).unwrap();
        assert!(differences.is_empty(), "{id}: {differences:?}");
    }
    server.stop().await;
}

/// Commits signed by the real `git` running the real `gpg`, with keys made in a GNUPGHOME of
/// the test's own, against a catalog where alice lists her ed25519 key, bob his RSA key
/// and carol hers: each signing their own commit is a *verified* author; alice's commit
/// signed with carol's key (listed, but on another User) or with mallory's (on nobody's)
/// leaves her *claimed*; her signed commit altered is *invalid*, a red flag. Offline, each
/// bundle re-derives the same statuses.
async fn openpgp_signed_commits_verify_authorship(db: &Db) {
    let gpg = Gpg::new();
    let (alice_key, alice_public) = gpg.key("Alice <alice@example.com>", "ed25519");
    let (bob_key, bob_public) = gpg.key("Bob <bob@example.com>", "rsa2048");
    let (carol_key, carol_public) = gpg.key("Carol <carol@example.com>", "ed25519");
    let (mallory_key, _) = gpg.key("Mallory <mallory@example.com>", "ed25519");
    let mut catalog = catalog();
    for (name, public) in [
        ("alice", &alice_public),
        ("bob", &bob_public),
        ("carol", &carol_public),
    ] {
        let plain = format!("  name: {name}\nspec:\n");
        let armored: String = public.lines().map(|l| format!("      {l}\n")).collect();
        catalog = catalog.replace(
            &plain,
            &format!(
                "  name: {name}\n  annotations:\n    countersign.dev/openpgp-signing-keys: |\n{armored}spec:\n"
            ),
        );
        assert!(catalog.contains(&armored));
    }
    let mut lab = Lab::with_catalog(&catalog);
    let change = lab.change(
        PAYMENTS,
        "pub fn charge() { /* signed */ }\n",
        FIXBOT,
        FIXBOT,
    );
    let (alice, carol) = (common::ALICE, "Carol <carol@example.com>");
    let sign = |key| Some(Sign::Gpg(&gpg, key));
    let by_alice = git_commit(&lab, &change, alice, alice, sign(&alice_key));
    let by_bob = git_commit(&lab, &change, BOB, BOB, sign(&bob_key));
    let by_carol = git_commit(&lab, &change, carol, carol, sign(&carol_key));
    let alice_by_carol_key = git_commit(&lab, &change, alice, alice, sign(&carol_key));
    let alice_by_mallory = git_commit(&lab, &change, alice, alice, sign(&mallory_key));
    let altered = alter(&lab, &by_alice);
    let path = lab.writer.dir().to_owned();
    let server = start_with(db, move |mut state| {
        state.repos = Arc::new(BTreeMap::from([("shop".to_owned(), path)]));
        state.with_log_signer(common::log_signer())
    })
    .await;
    let author = |proposal: &Value, who: &str| {
        proposal["authorship"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["principal"] == who)
            .cloned()
            .unwrap_or_else(|| panic!("{who} in {proposal}"))
    };
    let status = |proposal: &Value, who: &str| {
        let author = author(proposal, who);
        (
            author["status"].as_str().unwrap().to_owned(),
            author["commits"][0]["detail"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };

    let mut proposals = Vec::new();
    for (head, who, key) in [
        (&by_alice, "human:alice", &alice_key),
        (&by_bob, "human:bob", &bob_key),
        (&by_carol, "human:carol", &carol_key),
    ] {
        let proposal = propose(&server, &lab, "fixbot", head).await;
        assert_eq!(
            status(&proposal, who),
            (
                "verified".to_owned(),
                format!("signed with OpenPGP key {key}")
            ),
            "{proposal}"
        );
        proposals.push(proposal);
    }
    let verified_alice = &proposals[0];
    assert!(
        verified_alice["authorship_explanation"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap()
                == format!(
                    "human:alice: authorship verified: commit {} (author and committer), signed with OpenPGP key {alice_key}",
                    &by_alice[..12]
                )),
        "{verified_alice}"
    );

    for (head, key) in [
        (&alice_by_carol_key, &carol_key),
        (&alice_by_mallory, &mallory_key),
    ] {
        let proposal = propose(&server, &lab, "fixbot", head).await;
        assert_eq!(
            status(&proposal, "human:alice"),
            (
                "claimed".to_owned(),
                format!(
                    "an OpenPGP signature by key {key}, which no person the commit names lists"
                )
            ),
            "{proposal}"
        );
        let id = proposal["id"].as_str().unwrap();
        assert_eq!(server.verdict("alice", id, head, "approve").await.0, 403);
        proposals.push(proposal);
    }

    let tampered = propose(&server, &lab, "fixbot", &altered).await;
    assert_eq!(status(&tampered, "human:alice").0, "invalid", "{tampered}");
    let red_flag = red_flag(&tampered, "human:alice");
    assert!(
        red_flag.contains(&format!(
            "the OpenPGP signature by key {alice_key} does not verify over the commit (altered)"
        )),
        "{red_flag}"
    );
    proposals.push(tampered);

    // Offline: each bundle re-derives the statuses from its commit objects and catalog.
    let verifier = common::log_signer().verifier();
    for proposal in &proposals {
        let id = proposal["id"].as_str().unwrap();
        let bytes = server
            .client
            .get(format!("{}/v1/proposals/{id}/bundle", server.base))
            .bearer_auth(&server.tokens["auditor"])
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let bundle =
            countersign_audit::bundle::verify_bundle(&bytes, std::slice::from_ref(&verifier))
                .unwrap();
        let differences = countersign_decide::bundle::rederive(&bundle, &verifier).unwrap();
        assert!(differences.is_empty(), "{id}: {differences:?}");
        countersign_decide::bundle::outcome(&bundle).unwrap();
    }
    server.stop().await;
}

/// A signing key that does not parse refuses every proposal against the catalog, naming
/// the catalog file, the annotation's line and the annotation, as `graph check` does.
async fn a_malformed_signing_key_is_named_where_it_is(db: &Db) {
    let plain = "  name: alice\nspec:\n";
    let catalog = catalog().replace(
        plain,
        "  name: alice\n  annotations:\n    countersign.dev/openpgp-signing-keys: |\n      -----BEGIN PGP PUBLIC KEY BLOCK-----\n\n      mDMEnot-a-key\n      -----END PGP PUBLIC KEY BLOCK-----\nspec:\n",
    );
    let line = catalog
        .lines()
        .position(|l| l.contains("countersign.dev/openpgp-signing-keys"))
        .unwrap()
        + 1;
    let mut lab = Lab::with_catalog(&catalog);
    let change = lab.change("docs/index.md", "# Docs, again\n", FIXBOT, FIXBOT);
    let server = start(db, &lab).await;
    let body =
        json!({ "repo": "shop", "base": lab.base.as_str(), "head": change, "title": "docs" });
    let (status, problem) = server
        .send(M::POST, "/v1/proposals", Some("fixbot"), Some(body))
        .await;
    assert_eq!(status, 422, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!(
            "catalog-info.yaml:{line}: catalog User human:alice: `countersign.dev/openpgp-signing-keys`: block 1 is not an OpenPGP public key"
        )),
        "{detail}"
    );
    server.stop().await;
}

/// Closing is for the author or an admin, is final, and may name a successor.
async fn close_and_supersede(db: &Db) {
    let mut lab = Lab::new();
    let one = lab.change("shop/index.html", "<html>1</html>\n", FIXBOT, FIXBOT);
    let two = lab.change("shop/index.html", "<html>2</html>\n", FIXBOT, FIXBOT);
    let server = start(db, &lab).await;
    let first = propose(&server, &lab, "fixbot", &one).await;
    let second = propose(&server, &lab, "alice-proposer", &two).await;
    let (a, b) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );
    let close = |token: &'static str, id: &str, body: Option<Value>| {
        let path = format!("/v1/proposals/{id}/close");
        let server = &server;
        async move { server.send(M::POST, &path, Some(token), body).await }
    };
    // An approver token, and a proposer who is not the author, may not close it.
    assert_eq!(close("carol", a, None).await.0, 403);
    let (status, problem) = close("alice-proposer", a, None).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(close("fixbot", "p-none", None).await.0, 404);
    assert_eq!(
        close("fixbot", a, Some(json!({ "superseded_by": "p-none" })))
            .await
            .0,
        422
    );
    assert_eq!(
        close("fixbot", a, Some(json!({ "superseded_by": a })))
            .await
            .0,
        422
    );
    assert_eq!(close("fixbot", a, Some(json!({ "why": "x" }))).await.0, 422);

    let (status, closed) = close(
        "fixbot",
        a,
        Some(json!({ "reason": "replaced", "superseded_by": b })),
    )
    .await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(
        (
            closed["state"].as_str(),
            closed["superseded_by"].as_str(),
            closed["closed_reason"].as_str()
        ),
        (Some("superseded"), Some(b), Some("replaced"))
    );
    // Final: no second close, no head move, no verdict.
    assert_eq!(close("fixbot", a, None).await.0, 409);
    assert_eq!(move_head(&server, "fixbot", a, &two).await.0, 409);
    assert_eq!(server.verdict("carol", a, &one, "approve").await.0, 409);
    let closed_event = events(&server, a)
        .await
        .into_iter()
        .find(|e| e.kind == EventKind::Closed)
        .unwrap();
    assert_eq!(
        (
            closed_event.actor.as_str(),
            &closed_event.data["superseded_by"]
        ),
        ("agent:fixbot", &json!(b))
    );

    // An admin may close anyone's proposal; an empty body closes without a reason.
    let (status, closed) = close("admin", b, None).await;
    assert_eq!(
        (status, closed["state"].as_str()),
        (StatusCode::OK, Some("closed"))
    );
    assert!(closed.get("closed_reason").is_none(), "{closed}");
    server.stop().await;
}

/// Who may move a head, replays with an Idempotency-Key, a move to the current head is a
/// no-op, and a bad revision is a 422.
async fn idempotent_head_move(db: &Db) {
    let mut lab = Lab::new();
    let one = lab.change("shop/index.html", "<html>1</html>\n", FIXBOT, FIXBOT);
    let two = lab.change("shop/index.html", "<html>2</html>\n", FIXBOT, FIXBOT);
    let three = lab.change("shop/index.html", "<html>3</html>\n", FIXBOT, FIXBOT);
    let server = start(db, &lab).await;
    let proposal = propose(&server, &lab, "fixbot", &one).await;
    let id = proposal["id"].as_str().unwrap();
    assert_eq!(move_head(&server, "alice-proposer", id, &two).await.0, 403);
    assert_eq!(move_head(&server, "carol", id, &two).await.0, 403);
    assert_eq!(move_head(&server, "fixbot", "p-none", &two).await.0, 404);
    assert_eq!(
        move_head(&server, "fixbot", id, "no-such-revision").await.0,
        422
    );
    assert_eq!(
        server
            .send(
                M::POST,
                &format!("/v1/proposals/{id}/head"),
                Some("fixbot"),
                Some(json!({}))
            )
            .await
            .0,
        422
    );

    let send = |head: String| {
        server
            .client
            .post(format!("{}/v1/proposals/{id}/head", server.base))
            .bearer_auth(&server.tokens["fixbot"])
            .header("Idempotency-Key", "move-1")
            .json(&json!({ "head": head }))
            .send()
    };
    let first = send(two.clone()).await.unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let size = server.store.log_size().await.unwrap();
    // The same key with the same request replays the first answer: nothing moves again.
    let again = send(two.clone()).await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    // The same key naming another head is another request: refused, not answered with the
    // first response (which would say the head moved to `three`).
    let other = send(three.clone()).await.unwrap();
    assert_eq!(other.status(), 422);
    let problem: Value = other.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("another request"),
        "{problem}"
    );
    assert_eq!(server.store.log_size().await.unwrap(), size);
    assert_eq!(show(&server, id).await["head"], two.as_str());
    // Moving to the current head changes and logs nothing.
    let (status, same) = move_head(&server, "fixbot", id, &two).await;
    assert_eq!(
        (status, same["head"].as_str()),
        (StatusCode::OK, Some(two.as_str()))
    );
    assert_eq!(server.store.log_size().await.unwrap(), size);
    // An admin may move anyone's head; the decision stays the author's.
    let (status, moved) = move_head(&server, "admin", id, &three).await;
    assert_eq!(
        (status, moved["head"].as_str()),
        (StatusCode::OK, Some(three.as_str()))
    );
    let log = events(&server, id).await;
    let last_move = log
        .iter()
        .rev()
        .find(|e| e.kind == EventKind::HeadMoved)
        .unwrap();
    assert_eq!(last_move.actor, "human:root");
    let proposed = log
        .iter()
        .rev()
        .find(|e| e.kind == EventKind::Proposed)
        .unwrap();
    assert_eq!(proposed.data["author"], "agent:fixbot");
    server.stop().await;
}

/// Only an admin marks a proposal merged, only its authorized head, and merged is final.
async fn merged_is_final(db: &Db) {
    let mut lab = Lab::new();
    let shop = lab.change("shop/index.html", "<html>m</html>\n", FIXBOT, FIXBOT);
    let payments = lab.change(PAYMENTS, "pub fn charge() { m }\n", FIXBOT, FIXBOT);
    let server = start(db, &lab).await;
    let merge = |token: &'static str, id: String, commit: &str| {
        let body = json!({ "commit": commit });
        let server = &server;
        async move {
            let path = format!("/v1/proposals/{id}/merged");
            server.send(M::POST, &path, Some(token), Some(body)).await
        }
    };
    let waiting = propose(&server, &lab, "fixbot", &payments).await;
    let waiting = waiting["id"].as_str().unwrap().to_owned();
    assert_eq!(merge("admin", waiting, &payments).await.0, 409);
    let proposal = propose(&server, &lab, "fixbot", &shop).await;
    assert_eq!(proposal["state"], "authorized", "{proposal}");
    let id = proposal["id"].as_str().unwrap().to_owned();
    assert_eq!(merge("fixbot", id.clone(), &shop).await.0, 403);
    assert_eq!(merge("admin", id.clone(), &payments).await.0, 409);
    let (status, merged) = merge("admin", id.clone(), &shop).await;
    assert_eq!(
        (status, merged["state"].as_str()),
        (StatusCode::OK, Some("merged"))
    );
    assert_eq!(merge("admin", id.clone(), &shop).await.0, 409);
    // A merged head stays authorized for enforcement: the same commit pushed to another
    // protected branch (created: old tip all zeros) is not a new change.
    let path = format!(
        "/v1/authorizations?repo=shop&old={}&commit={shop}",
        "0".repeat(40)
    );
    let (status, answer) = server.send(M::GET, &path, Some("fixbot"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&answer["authorized"], answer["proposal"].as_str()),
        (&json!(true), Some(id.as_str())),
        "{answer}"
    );
    assert_eq!(move_head(&server, "fixbot", &id, &payments).await.0, 409);
    let path = format!("/v1/proposals/{id}/close");
    assert_eq!(
        server.send(M::POST, &path, Some("fixbot"), None).await.0,
        409
    );
    let log = events(&server, &id).await;
    let event = log.iter().find(|e| e.kind == EventKind::Merged).unwrap();
    assert_eq!(
        (event.actor.as_str(), &event.data["commit"]),
        ("human:root", &json!(shop))
    );
    server.stop().await;
}

/// Supersession never goes in a circle: once A is superseded by B, B cannot be superseded
/// by A, nor by anything A leads to (A→B→C, then C by A).
async fn supersession_never_goes_in_a_circle(db: &Db) {
    let mut lab = Lab::new();
    let heads: Vec<String> = (0..3)
        .map(|n| {
            lab.change(
                "shop/index.html",
                &format!("<html>{n}</html>\n"),
                FIXBOT,
                FIXBOT,
            )
        })
        .collect();
    let server = start(db, &lab).await;
    let mut ids = Vec::new();
    for head in &heads {
        ids.push(
            propose(&server, &lab, "fixbot", head).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let supersede = |id: &str, by: &str| {
        let (path, body) = (
            format!("/v1/proposals/{id}/close"),
            json!({ "superseded_by": by }),
        );
        let server = &server;
        async move {
            server
                .send(M::POST, &path, Some("fixbot"), Some(body))
                .await
        }
    };
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
    assert_eq!(supersede(a, b).await.0, 200);
    let (status, problem) = supersede(b, a).await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("circle"),
        "{problem}"
    );
    assert!(show(&server, b).await.get("superseded_by").is_none());
    assert_eq!(supersede(b, c).await.0, 200);
    assert_eq!(supersede(c, a).await.0, 422);
    // Not a circle: C may still be closed, or superseded by a new proposal.
    let (status, closed) = server
        .send(
            M::POST,
            &format!("/v1/proposals/{c}/close"),
            Some("fixbot"),
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), closed["state"].as_str()),
        (200, Some("closed"))
    );
    server.stop().await;
}

/// A person's later verdict on the same head supersedes their earlier one (both logged), a
/// rejection needs a comment and is never dropped, blocks everyone else's approval until its
/// giver withdraws it, and revokes an authorization that has not merged.
async fn changed_verdicts_supersede_and_rejections_stand(db: &Db) {
    let mut lab = Lab::new();
    let head = lab.change(PAYMENTS, "pub fn charge() { 3 }\n", FIXBOT, FIXBOT);
    let server = start(db, &lab).await;
    let proposal = propose(&server, &lab, "fixbot", &head).await;
    let id = proposal["id"].as_str().unwrap();
    assert_eq!(proposal["approvals_required"], 2, "{proposal}");

    assert_eq!(server.verdict("alice", id, &head, "approve").await.0, 200);
    // Approve, then reject, the same head: before, 200 and nothing recorded, and a second
    // approval then authorized the change.
    let (status, rejected) = server.verdict("alice", id, &head, "reject").await;
    assert_eq!(
        (status, rejected["state"].as_str()),
        (StatusCode::OK, Some("rejected")),
        "{rejected}"
    );
    assert_eq!(rejected["approvals_counted"], 0, "{rejected}");
    assert_eq!(
        rejected["rejected_by"],
        json!(["human:alice"]),
        "{rejected}"
    );
    let kinds: Vec<EventKind> = events(&server, id).await.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds[kinds.len() - 2..],
        [EventKind::Approved, EventKind::Rejected],
        "both verdicts are in the log"
    );
    let last = events(&server, id).await.pop().unwrap();
    assert_eq!(
        last.data["supersedes"]["verdict"], "approve",
        "{:?}",
        last.data
    );
    let (status, problem) = server.verdict("bob", id, &head, "approve").await;
    assert_eq!(status, 409, "{problem}");
    assert!(!authorized(&server, &head).await);

    // A rejection without a reason is refused, as the CLI refuses it.
    let (status, problem) = server
        .send(
            M::POST,
            &format!("/v1/proposals/{id}/approvals"),
            Some("carol"),
            Some(json!({ "head": head, "verdict": "reject" })),
        )
        .await;
    assert_eq!(status, 422, "{problem}");

    // Only alice lifts her rejection; then two distinct people authorize.
    let (_, withdrawn) = server.verdict("alice", id, &head, "approve").await;
    assert_eq!(
        (
            withdrawn["state"].as_str(),
            withdrawn["approvals_counted"].as_u64()
        ),
        (Some("awaiting_approval"), Some(1)),
        "{withdrawn}"
    );
    let (_, done) = server.verdict("bob", id, &head, "approve").await;
    assert_eq!(done["state"], "authorized", "{done}");
    assert!(authorized(&server, &head).await);
    // The shown count is the decided count: repeated approvals by one person count once.
    assert_eq!(server.verdict("bob", id, &head, "approve").await.0, 200);
    assert_eq!(show(&server, id).await["approvals_counted"], 2);

    // A rejection before the merge revokes the authorization.
    let (_, revoked) = server.verdict("carol", id, &head, "reject").await;
    assert_eq!(revoked["state"], "rejected", "{revoked}");
    assert!(!authorized(&server, &head).await);
    server.stop().await;
}

/// An Idempotency-Key answers only the request it was first sent with: another route or
/// another body with the same key is a 422 and changes nothing.
async fn idempotency_keys_are_bound_to_their_request(db: &Db) {
    let mut lab = Lab::new();
    let one = lab.change("docs/index.md", "# One\n", FIXBOT, FIXBOT);
    let two = lab.change("docs/index.md", "# Two\n", FIXBOT, FIXBOT);
    let server = start(db, &lab).await;
    let create = |title: &str| {
        server
            .client
            .post(format!("{}/v1/proposals", server.base))
            .bearer_auth(&server.tokens["fixbot"])
            .header("Idempotency-Key", "k-1")
            .json(
                &json!({ "repo": "shop", "base": lab.base.as_str(), "head": one, "title": title }),
            )
            .send()
    };
    let first = create("docs").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let id = first["id"].as_str().unwrap();
    let replayed = create("docs").await.unwrap();
    assert_eq!(replayed.status(), 201);
    assert_eq!(replayed.json::<Value>().await.unwrap(), first);
    assert_eq!(create("another title").await.unwrap().status(), 422);
    let size = server.store.log_size().await.unwrap();
    // The creation's key on the head route: before, A's 201 came back and nothing moved.
    let moved = server
        .client
        .post(format!("{}/v1/proposals/{id}/head", server.base))
        .bearer_auth(&server.tokens["fixbot"])
        .header("Idempotency-Key", "k-1")
        .json(&json!({ "head": two }))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 422);
    assert_eq!(server.store.log_size().await.unwrap(), size);
    assert_eq!(show(&server, id).await["head"], one.as_str());
    server.stop().await;
}

on_both_backends!(
    changed_verdicts_supersede_and_rejections_stand,
    idempotency_keys_are_bound_to_their_request,
    merged_is_final,
    head_move_rederives_and_lapses,
    trivial_rebase_carries_verdicts,
    rejection_then_new_head_unblocks,
    commit_authors_cannot_approve,
    claimed_authorship_is_shown_and_never_lapses_a_rejection,
    signed_commits_verify_authorship,
    openpgp_signed_commits_verify_authorship,
    a_malformed_signing_key_is_named_where_it_is,
    close_and_supersede,
    idempotent_head_move,
    supersession_never_goes_in_a_circle,
);
