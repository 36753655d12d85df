//! Black-box tests of the audit plane: recording decisions, checkpoints, bundles exported
//! and verified offline (re-deriving the decision), tampering, and monitoring.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::*;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

fn refused(output: Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The demo repository plus a log key, in one temporary directory.
struct Fixture {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    key: PathBuf,
    public: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("shop");
        ok(countersign(&[
            "demo",
            "--dir",
            s(&repo),
            "--format",
            "json",
            "--no-serve",
        ]));
        let key = dir.path().join("log.key");
        ok(countersign(&[
            "log",
            "keygen",
            "--origin",
            "countersign.test/shop",
            "--out",
            s(&key),
        ]));
        let public = dir.path().join("log.pub");
        Fixture {
            _dir: dir,
            repo,
            key,
            public,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self._dir.path().join(name)
    }

    /// Records the decision of demo change `id`; returns the proposal id.
    fn record(&self, id: &str, author: &str) -> String {
        let head = format!("demo/{id}");
        let out = countersign(&[
            "evaluate",
            "--repo",
            s(&self.repo),
            "--base",
            "main",
            "--head",
            &head,
            "--author",
            author,
            "--format",
            "json",
            "--record",
            "--log-key",
            s(&self.key),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        ok(out);
        stderr
            .split_whitespace()
            .find(|w| w.starts_with("p-"))
            .expect("the proposal id is printed")
            .to_string()
    }

    fn checkpoint(&self, file: &str) -> PathBuf {
        let note = ok(countersign(&[
            "log",
            "checkpoint",
            "--repo",
            s(&self.repo),
            "--key",
            s(&self.key),
        ]));
        let path = self.path(file);
        std::fs::write(&path, note).unwrap();
        path
    }

    fn export(&self, proposal: &str) -> PathBuf {
        let out = self.path(&format!("{proposal}.bundle.json"));
        ok(countersign(&[
            "bundle",
            "export",
            "--repo",
            s(&self.repo),
            proposal,
            "--out",
            s(&out),
        ]));
        out
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn edit_bundle(path: &Path, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut bundle: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut bundle);
    let out = path.with_extension("edited.json");
    std::fs::write(&out, serde_json::to_vec(&bundle).unwrap()).unwrap();
    out
}

#[test]
fn a_recorded_decision_exports_to_a_bundle_that_re_derives_offline() {
    let f = Fixture::new();
    let automated = f.record("docs-typo", "agent:docsbot");
    let human = f.record("payments-retry", "agent:fixbot");
    f.checkpoint("cp.txt");
    ok(countersign(&[
        "log",
        "verify",
        "--repo",
        s(&f.repo),
        "--log-key",
        s(&f.public),
    ]));

    // An automated decision records strictly more than a human one: the facts, and an
    // authorization statement (SLSA VSA) signed with the log key.
    let auto_bundle = f.export(&automated);
    let human_bundle = f.export(&human);
    let kinds = |path: &Path| -> Vec<String> {
        let b: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        b["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let event: Value = serde_json::from_str(e["leaf"].as_str().unwrap()).unwrap();
                event["kind"].as_str().unwrap().to_string()
            })
            .collect()
    };
    assert_eq!(kinds(&auto_bundle), ["proposed", "decided", "authorized"]);
    assert_eq!(kinds(&human_bundle), ["proposed", "decided"]);

    for bundle in [&auto_bundle, &human_bundle] {
        let out = ok(countersign(&[
            "bundle",
            "verify",
            s(bundle),
            "--log-key",
            s(&f.public),
        ]));
        assert!(
            out.contains("re-derived: same tier, reasons and versions"),
            "{out}"
        );
    }
}

#[test]
fn tampered_bundles_are_refused_with_the_reason() {
    let f = Fixture::new();
    let proposal = f.record("docs-typo", "agent:docsbot");
    f.checkpoint("cp.txt");
    let bundle = f.export(&proposal);
    let verify = |path: &Path| {
        refused(countersign(&[
            "bundle",
            "verify",
            s(path),
            "--log-key",
            s(&f.public),
        ]))
    };

    // A policy (or any input) edited after the fact: its blob no longer matches its digest.
    let swapped = edit_bundle(&bundle, |b| {
        let blobs = b["blobs"].as_object_mut().unwrap();
        let first = blobs.keys().next().unwrap().clone();
        blobs.insert(first, Value::from("cGVybWl0IGV2ZXJ5dGhpbmc="));
    });
    assert!(verify(&swapped).contains("altered or swapped"));

    // A recorded decision rewritten: the leaf is no longer the one the checkpoint includes.
    let rewritten = edit_bundle(&bundle, |b| {
        let leaf = b["entries"][1]["leaf"]
            .as_str()
            .unwrap()
            .replace("auto_merge", "change_control");
        b["entries"][1]["leaf"] = Value::from(leaf);
    });
    assert!(verify(&rewritten).contains("is not included in the checkpoint"));

    // A proof for another tree size.
    let short = edit_bundle(&bundle, |b| {
        b["entries"][0]["proof"].as_array_mut().unwrap().pop();
    });
    assert!(verify(&short).contains("not included in the checkpoint of size"));

    // A checkpoint signed by someone else.
    let other_key = f.path("other.key");
    ok(countersign(&[
        "log",
        "keygen",
        "--origin",
        "countersign.test/shop",
        "--out",
        s(&other_key),
    ]));
    let forged = refused(countersign(&[
        "bundle",
        "verify",
        s(&bundle),
        "--log-key",
        s(&f.path("other.pub")),
    ]));
    assert!(forged.contains("checkpoint"), "{forged}");

    // A truncated file.
    let bytes = std::fs::read(&bundle).unwrap();
    let truncated = f.path("truncated.json");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert!(verify(&truncated).contains("truncated"));
}

#[test]
fn consistency_and_monitoring_catch_rollbacks_and_forks() {
    let f = Fixture::new();
    f.record("docs-typo", "agent:docsbot");
    let old = f.checkpoint("old.txt");
    f.record("payments-retry", "agent:fixbot");
    let new = f.checkpoint("new.txt");
    let repo = s(&f.repo);
    let out = ok(countersign(&[
        "log",
        "consistency",
        "--repo",
        repo,
        "--log-key",
        s(&f.public),
        s(&old),
        s(&new),
    ]));
    assert!(out.contains("consistent"), "{out}");
    // Swapped, NEW is older than OLD: a rollback.
    let rollback = refused(countersign(&[
        "log",
        "consistency",
        "--repo",
        repo,
        "--log-key",
        s(&f.public),
        s(&new),
        s(&old),
    ]));
    assert!(rollback.contains("rollback"), "{rollback}");

    let state = f.path("monitor.txt");
    let monitor = || {
        countersign(&[
            "log",
            "monitor",
            "--repo",
            repo,
            "--log-key",
            s(&f.public),
            "--state",
            s(&state),
        ])
    };
    assert!(ok(monitor()).contains("first checkpoint seen: 5 entries"));
    f.record("ci-rust-cache", "agent:ci-tuner");
    f.checkpoint("newer.txt");
    assert!(ok(monitor()).contains("5 -> 7 entries, consistent"));

    // Another log under the same key, with the same events in another order: same size,
    // different tree. Showing the monitor that log's checkpoint is a fork.
    let other_db = format!("sqlite://{}?mode=rwc", s(&f.path("other.db")));
    for (id, author) in [
        ("payments-retry", "agent:fixbot"),
        ("docs-typo", "agent:docsbot"),
        ("ci-rust-cache", "agent:ci-tuner"),
    ] {
        let head = format!("demo/{id}");
        ok(countersign(&[
            "evaluate",
            "--repo",
            repo,
            "--base",
            "main",
            "--head",
            &head,
            "--author",
            author,
            "--record",
            "--log-key",
            s(&f.key),
            "--database",
            &other_db,
        ]));
    }
    let other_note = ok(countersign(&[
        "log",
        "checkpoint",
        "--database",
        &other_db,
        "--key",
        s(&f.key),
    ]));
    let forked_state = f.path("forked.txt");
    std::fs::write(&forked_state, other_note).unwrap();
    let fork = refused(countersign(&[
        "log",
        "monitor",
        "--repo",
        repo,
        "--log-key",
        s(&f.public),
        "--state",
        s(&forked_state),
    ]));
    assert!(
        fork.contains("ALARM: fork: two different trees of size 7"),
        "{fork}"
    );

    // A state file whose checkpoint was edited no longer verifies: refused outright.
    let edited = f.path("edited.txt");
    let note = std::fs::read_to_string(f.path("newer.txt"))
        .unwrap()
        .replacen("\n7\n", "\n9\n", 1);
    std::fs::write(&edited, note).unwrap();
    let out = countersign(&[
        "log",
        "monitor",
        "--repo",
        repo,
        "--log-key",
        s(&f.public),
        "--state",
        s(&edited),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// A recorded decision, and the signed authorization statement of an automated one, name the
/// repository as its base's `[repository] name` says, never the local directory; a base
/// that declares no name cannot be recorded.
#[test]
fn records_name_the_repository_not_a_directory() {
    let f = Fixture::new();
    let automated = f.record("docs-typo", "agent:docsbot");
    f.checkpoint("cp.txt");
    let bundle: Value =
        serde_json::from_slice(&std::fs::read(f.export(&automated)).unwrap()).unwrap();
    let events: Vec<Value> = bundle["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["leaf"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(events[0]["data"]["repository"], "github.com/acme/shop");
    let digest = events[2]["data"]["verification_summary"].as_str().unwrap();
    let envelope: Value =
        serde_json::from_slice(&base64_decode(bundle["blobs"][digest].as_str().unwrap())).unwrap();
    let statement: Value =
        serde_json::from_slice(&base64_decode(envelope["payload"].as_str().unwrap())).unwrap();
    assert_eq!(statement["subject"][0]["name"], "github.com/acme/shop");
    let uri = statement["predicate"]["resourceUri"].as_str().unwrap();
    assert!(uri.starts_with("git+github.com/acme/shop@"), "{uri}");

    // Without a name, recording is refused: a directory identifies nothing elsewhere.
    let dir = tempfile::tempdir().unwrap();
    let mut w = countersign_repo::RepoWriter::init(dir.path()).unwrap();
    w.commit([("README.md", Some("# x\n"))], "base", ALICE, TIME)
        .unwrap();
    w.commit([("README.md", Some("# y\n"))], "change", ALICE, TIME + 1)
        .unwrap();
    let output = countersign(&[
        "evaluate",
        "--repo",
        s(dir.path()),
        "--base",
        "HEAD~1",
        "--head",
        "HEAD",
        "--author",
        "agent:fixbot",
        "--record",
        "--log-key",
        s(&f.key),
    ]);
    assert!(!output.status.success());
    let refusal = stderr(&output);
    assert!(refusal.contains("[repository] name"), "{refusal}");
}

/// Standard base64, as bundles and DSSE envelopes carry bytes.
fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// The bundle at `path` as the log's operator could rewrite it: each event (by position)
/// edited by `edit`, then put in a new log at its own index (the other entries filler),
/// checkpointed and signed with the test server's log key. Every proof and signature of the
/// result verifies: only re-deriving what its events say can refuse it.
fn resign(path: &Path, edit: impl Fn(usize, &mut Value)) -> PathBuf {
    use countersign_audit::{
        Bundle, Checkpoint, Event, MemoryStore, SignedCheckpoint, Signer, leaf_bytes,
        prove_inclusion, tree_hash,
    };
    let bundle: Bundle = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let signer = Signer::from_seed("countersign.test/server", [9; 32]).unwrap();
    let leaves: Vec<(u64, Vec<u8>)> = bundle
        .entries
        .iter()
        .enumerate()
        .map(|(position, entry)| {
            let mut event: Value = serde_json::from_str(&entry.leaf).unwrap();
            edit(position, &mut event);
            let event: Event = serde_json::from_value(event).unwrap();
            (entry.index, leaf_bytes(&event).unwrap())
        })
        .collect();
    let size = leaves.last().unwrap().0 + 1;
    let mut store = MemoryStore::new();
    for index in 0..size {
        match leaves.iter().find(|(i, _)| *i == index) {
            Some((_, leaf)) => store.append(leaf).unwrap(),
            None => store.append(format!("filler {index}").as_bytes()).unwrap(),
        };
    }
    let root = tree_hash(size, &store).unwrap();
    let checkpoint = Checkpoint::new(signer.name(), size, root).unwrap();
    let note = SignedCheckpoint::sign(&checkpoint, &signer).unwrap();
    let entries = leaves
        .into_iter()
        .map(|(index, leaf)| {
            let proof = prove_inclusion(index, size, &store).unwrap();
            (index, leaf, proof.path)
        })
        .collect();
    let blobs = bundle.blobs.values().map(|b| base64_decode(b));
    let forged = Bundle::new(bundle.subject.clone(), note, entries, blobs).unwrap();
    let out = path.with_extension("resigned.json");
    std::fs::write(&out, forged.to_json()).unwrap();
    out
}

/// `payments` is high criticality: one of its owners, alice or bob, must approve. No runner
/// is trusted, so nothing waits for evidence.
const PEOPLE_CATALOG: &str = r#"apiVersion: backstage.io/v1alpha1
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
  name: payments
  annotations:
    countersign.dev/criticality: high
    countersign.dev/paths: /payments/**
spec:
  type: service
  lifecycle: production
  owner: team-shop
"#;

/// The kinds of a bundle's entries, in order.
fn kinds_of(bundle: &Value) -> Vec<String> {
    bundle["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let event: Value = serde_json::from_str(e["leaf"].as_str().unwrap()).unwrap();
            event["kind"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Keeps the entries at `positions` (in order) of the bundle.
fn keep(bundle: &mut Value, positions: &[usize]) {
    let entries = bundle["entries"].as_array().unwrap().clone();
    bundle["entries"] = Value::from(
        positions
            .iter()
            .map(|&i| entries[i].clone())
            .collect::<Vec<_>>(),
    );
}

/// Entries removed from a server's bundle, or entries of two heads mixed, never verify as a
/// complete record: every entry names the previous entry about its proposal, and the
/// authorization is re-derived from the bundle's own verdicts with the server's tally.
#[test]
fn bundles_with_entries_left_out_or_mixed_are_refused() {
    use countersign_repo::RepoWriter;
    use countersign_server::Role;

    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let mut writer = RepoWriter::init(&repo).unwrap();
    let base = writer
        .commit(
            [
                ("countersign.toml", Some("[repository]\nname = \"shop\"\n")),
                ("catalog-info.yaml", Some(PEOPLE_CATALOG)),
                ("payments/capture.rs", Some("pub fn capture() {}\n")),
            ],
            "base",
            "fixbot <fixbot@agents.example.com>",
            TIME,
        )
        .unwrap();
    for (branch, body, at) in [
        ("refs/heads/payments", "retry();", TIME + 60),
        ("refs/heads/payments-v2", "retry_once();", TIME + 120),
    ] {
        writer
            .commit_on(
                branch,
                &base,
                [(
                    "payments/capture.rs",
                    Some(format!("pub fn capture() {{ {body} }}\n").as_str()),
                )],
                "payments: retry",
                "fixbot <fixbot@agents.example.com>",
                at,
            )
            .unwrap();
    }
    let server = TestServer::start(&[("shop", &repo)]);
    let fixbot = server.token("agent:fixbot", Role::Proposer);
    let alice = server.token("human:alice", Role::Approver);
    let run = |token: &str, args: &[&str]| client(&server.url, Some(token), args);

    // Proposed at one head, moved to another, rejected by alice, then approved by her (her
    // approval supersedes her rejection): authorized.
    let proposal = json(&run(
        &fixbot,
        &[
            "propose", "--repo", "shop", "--base", "main", "--head", "payments", "--title",
            "retry", "--format", "json",
        ],
    ));
    let id = proposal["id"].as_str().unwrap().to_owned();
    let first_head = proposal["head"].as_str().unwrap().to_owned();
    let moved = json(&run(
        &fixbot,
        &["update", &id, "--head", "payments-v2", "--format", "json"],
    ));
    let head = moved["head"].as_str().unwrap().to_owned();
    assert_ne!(head, first_head);
    ok(run(
        &alice,
        &[
            "reject",
            &id,
            "--head",
            &head,
            "--comment",
            "retry is not idempotent",
        ],
    ));
    let approved = json(&run(
        &alice,
        &["approve", &id, "--head", &head, "--format", "json"],
    ));
    assert_eq!(approved["state"], "authorized", "{approved}");
    let full = dir.path().join("full.bundle.json");
    ok(run(&fixbot, &["bundle", "fetch", &id, "--out", s(&full)]));
    let key = server.verifier_key.clone();
    let verify = |path: &Path| countersign(&["bundle", "verify", s(path), "--log-key", s(&key)]);

    let bundle: Value = serde_json::from_slice(&std::fs::read(&full).unwrap()).unwrap();
    let kinds = kinds_of(&bundle);
    assert_eq!(
        kinds,
        [
            "proposed",
            "decided",
            "head_moved",
            "proposed",
            "decided",
            "rejected",
            "approved",
            "authorized"
        ],
        "{kinds:?}"
    );
    let out = ok(verify(&full));
    assert!(
        out.contains(&format!(
            "proposal {id}: head {head}, authorized as of log index"
        )),
        "{out}"
    );
    assert!(
        out.contains("authorized by human:alice (1 of 1 required)"),
        "{out}"
    );
    let position = |kind: &str| kinds.iter().position(|k| k == kind).unwrap();
    // A head move records the change at the new head (`proposed`) and its decision.
    let (decided_first, decided_second) = (1, 4);
    let (rejected, approved_at, authorized) = (
        position("rejected"),
        position("approved"),
        position("authorized"),
    );

    // The rejection cut out.
    let cut = edit_bundle(&full, |b| {
        b["entries"].as_array_mut().unwrap().remove(rejected);
    });
    let why = refused(verify(&cut));
    assert!(why.contains("the bundle is incomplete"), "{why}");
    assert!(why.contains("was left out"), "{why}");

    // Truncated right before the authorization: the approvals authorize the head, yet the
    // `authorized` event the server writes with them is missing.
    let truncated = edit_bundle(&full, |b| {
        b["entries"].as_array_mut().unwrap().truncate(authorized);
    });
    let why = refused(verify(&truncated));
    assert!(why.contains("cut short"), "{why}");
    // Truncated before the approval: an earlier state, shown as such, never "authorized".
    let earlier = edit_bundle(&full, |b| {
        b["entries"].as_array_mut().unwrap().truncate(approved_at);
    });
    let out = ok(verify(&earlier));
    assert!(
        out.contains(&format!("head {head}, rejected as of log index")),
        "{out}"
    );
    assert!(out.contains("; not authorized"), "{out}");

    // Only the decision and the authorization: no approval at all.
    let bare = edit_bundle(&full, |b| keep(b, &[0, decided_second, authorized]));
    let why = refused(verify(&bare));
    assert!(why.contains("the bundle is incomplete"), "{why}");

    // The decision of the first head with the authorization of the second.
    let mixed = edit_bundle(&full, |b| keep(b, &[0, decided_first, authorized]));
    let why = refused(verify(&mixed));
    assert!(why.contains("the bundle is incomplete"), "{why}");

    // Rewritten and signed again with the log key, as only the log's operator could: the
    // proofs hold, so what verification refuses is the events themselves. Unchanged, it
    // verifies (the rewriting is sound); with a decision's `commit_authors` disagreeing with
    // what its recorded commit objects name, or a head move's, it is refused: the authors
    // an approval is counted against are re-derived, never taken from the record.
    let resigned = resign(&full, |_, _| {});
    ok(verify(&resigned));
    let unnamed = resign(&full, |position, event| {
        if position == decided_second {
            event["data"]["commit_authors"] = serde_json::json!([]);
        }
    });
    let why = refused(verify(&unnamed));
    assert!(
        why.contains(
            "records commit authors [], but its commit objects name [email:fixbot@agents.example.com]"
        ),
        "{why}"
    );
    let moved_at = position("head_moved");
    let renamed = resign(&full, |position, event| {
        if position == moved_at {
            event["data"]["commit_authors"] = serde_json::json!(["human:bob"]);
        }
    });
    let why = refused(verify(&renamed));
    assert!(
        why.contains("the head move at log index")
            && why.contains("records commit authors [human:bob], but the commit objects of"),
        "{why}"
    );

    // The same bundles with the chain taken out of every event (as a log written before it
    // would be): refused as unprovable, never passed as complete.
    let unchained = edit_bundle(&full, |b| {
        for entry in b["entries"].as_array_mut().unwrap() {
            let mut event: Value = serde_json::from_str(entry["leaf"].as_str().unwrap()).unwrap();
            event.as_object_mut().unwrap().remove("prev");
            entry["leaf"] = Value::from(serde_json::to_string(&event).unwrap());
        }
    });
    let why = refused(verify(&unchained));
    assert!(
        why.contains("not included in the checkpoint") || why.contains("cannot show"),
        "{why}"
    );
}
