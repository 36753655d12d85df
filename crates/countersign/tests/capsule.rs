//! Edge capsules through the real binary: `capsule build` and `capsule verify`, a runner
//! refusing to start outside its capsule (wrong key, expired, another binary), and an
//! offline enclave: `runner serve --offline` runs a plan with no server anywhere, then
//! `evidence push DIR` imports the envelopes unchanged and the server counts them.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::*;

use std::path::{Path, PathBuf};

use countersign_repo::RepoWriter;
use countersign_server::Role;
use serde_json::{Value, json};

const REPOSITORY: &str = "github.com/acme/enclave";
const ENCLAVE: &str = "eu-enclave";

const CATALOG: &str = "apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-lab
spec:
  type: team
  children: []
  members: [alice]
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: lib
  annotations:
    countersign.dev/criticality: low
    countersign.dev/paths: /lib/**
    countersign.dev/suites: eu-int
spec:
  type: library
  lifecycle: production
  owner: team-lab
";

struct Keys {
    dir: PathBuf,
}

impl Keys {
    fn key(&self, name: &str) -> String {
        self.dir.join(format!("{name}.key")).display().to_string()
    }
    fn public(&self, name: &str) -> String {
        self.dir.join(format!("{name}.pub")).display().to_string()
    }
}

/// Keys `org` (the capsule signer), `edge` (the enclave's runner) and `other`.
fn keys(dir: &Path) -> (Keys, String) {
    let keys = dir.join("keys");
    let (_, org) = keygen("org", &keys);
    keygen("edge", &keys);
    keygen("other", &keys);
    (Keys { dir: keys }, org)
}

fn build(
    keys: &Keys,
    runner: &str,
    expires: &str,
    out: &Path,
    extra: &[&str],
) -> std::process::Output {
    let (signing, runner, out) = (
        keys.key("org"),
        keys.public(runner),
        out.display().to_string(),
    );
    let mut args = vec![
        "capsule",
        "build",
        "--signing-key",
        &signing,
        "--runner-key",
        &runner,
        "--suites",
        "eu-int,eu-e2e",
        "--environment",
        ENCLAVE,
        "--expires",
        expires,
        "--out",
        &out,
    ];
    args.extend_from_slice(extra);
    countersign(&args)
}

#[test]
fn capsule_build_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, _) = keys(dir.path());
    let capsule = dir.path().join("capsule.json");
    let built = build(&keys, "edge", "90d", &capsule, &[]);
    assert!(built.status.success(), "{}", stderr(&built));
    let text = ok(countersign(&[
        "capsule",
        "verify",
        capsule.to_str().unwrap(),
        "--trusted-key",
        &keys.public("org"),
    ]));
    assert!(text.contains("signature:   verified"), "{text}");
    assert!(text.contains("suites:      eu-e2e, eu-int"), "{text}");
    assert!(text.contains(&format!("environment: {ENCLAVE}")), "{text}");
    assert!(text.contains("(in force)"), "{text}");
    // The binary it binds is this one.
    let own = countersign_evidence::capsule::sha256_hex(
        &std::fs::read(env!("CARGO_BIN_EXE_countersign")).unwrap(),
    );
    assert!(
        text.contains(&format!("binary:      sha256:{own}")),
        "{text}"
    );
    // The envelope is an in-toto statement of the capsule predicate type.
    let envelope =
        countersign_evidence::Envelope::parse(&std::fs::read(&capsule).unwrap()).unwrap();
    let statement: Value = serde_json::from_slice(&envelope.payload).unwrap();
    assert_eq!(
        statement["predicateType"],
        "https://countersign.dev/capsule/v1"
    );
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");

    // Another key than the signer's: refused, exit 1.
    let other = countersign(&[
        "capsule",
        "verify",
        capsule.to_str().unwrap(),
        "--trusted-key",
        &keys.public("edge"),
    ]);
    assert_eq!(other.status.code(), Some(1), "{}", stdout(&other));
    assert!(
        stdout(&other).contains("capsule_untrusted_signer"),
        "{}",
        stdout(&other)
    );

    // Bad input: a clear error, never a panic.
    let bad = build(&keys, "edge", "soon", &dir.path().join("x.json"), &[]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("--expires \"soon\""),
        "{}",
        stderr(&bad)
    );
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"payload\": 1}").unwrap();
    let read = countersign(&["capsule", "verify", garbage.to_str().unwrap()]);
    assert!(!read.status.success());
    assert!(stderr(&read).contains("malformed"), "{}", stderr(&read));
}

/// The enclave repository: a base trusting `org` to delegate `eu-int` in `eu-enclave`, the
/// suite defined, and a change to `lib`.
struct Lab {
    repo: PathBuf,
    base: String,
    change: String,
}

fn lab(dir: &Path, org: &str) -> Lab {
    let repo = dir.join("repo");
    let junit = r#"<testsuite name="s"><testcase classname="eu" name="works"/></testsuite>"#;
    let config = format!(
        r#"[repository]
name = "{REPOSITORY}"

[[capsules.signers]]
name = "acme-org"
public_key = "{org}"
suites = ["eu-int"]
environments = ["{ENCLAVE}"]

[suites.eu-int]
command = ["sh", "scripts/eu.sh"]
reports = {{ junit = ["out/junit.xml"] }}
environments = ["{ENCLAVE}"]
"#
    );
    let mut w = RepoWriter::init(&repo).unwrap();
    w.commit(
        [
            ("countersign.toml", Some(config.as_str())),
            ("catalog-info.yaml", Some(CATALOG)),
            ("lib/src.rs", Some("pub fn add() {}\n")),
            ("out/.keep", Some("")),
            (
                "scripts/eu.sh",
                Some(format!("cat > out/junit.xml <<'EOF'\n{junit}\nEOF\n").as_str()),
            ),
        ],
        "base",
        ALICE,
        TIME,
    )
    .unwrap();
    let base = w.head().unwrap();
    let change = w
        .commit_on(
            "refs/heads/lib",
            &base,
            [("lib/src.rs", Some("pub fn add() { 1 }\n"))],
            "change",
            ALICE,
            TIME + 1,
        )
        .unwrap();
    Lab {
        repo,
        base: base.as_str().to_owned(),
        change: change.as_str().to_owned(),
    }
}

fn serve_offline(
    dir: &Path,
    keys: &Keys,
    key: &str,
    lab: &Lab,
    capsule: &Path,
    plan: &Path,
    out: &Path,
) -> std::process::Output {
    countersign(&[
        "runner",
        "serve",
        "--offline",
        "--key",
        &keys.key(key),
        "--capsule",
        capsule.to_str().unwrap(),
        "--repository",
        REPOSITORY,
        "--repo",
        lab.repo.to_str().unwrap(),
        "--clone",
        dir.join(format!("{key}-clone")).to_str().unwrap(),
        "--plan",
        plan.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn a_runner_refuses_to_start_outside_its_capsule() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, org) = keys(dir.path());
    let lab = lab(dir.path(), &org);
    let plan = dir.path().join("plan.json");
    std::fs::write(
        &plan,
        json!({ "plan": "countersign-plan/v1", "items": [] }).to_string(),
    )
    .unwrap();
    let out = dir.path().join("out");
    let capsule = dir.path().join("capsule.json");
    assert!(build(&keys, "edge", "90d", &capsule, &[]).status.success());

    // Another key than the capsule's runner key.
    let wrong = serve_offline(dir.path(), &keys, "other", &lab, &capsule, &plan, &out);
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("the capsule is for runner key"),
        "{}",
        stderr(&wrong)
    );

    // A capsule for another countersign binary.
    let elsewhere = dir.path().join("elsewhere.json");
    let fake = dir.path().join("fake-binary");
    std::fs::write(&fake, "not countersign").unwrap();
    assert!(
        build(
            &keys,
            "edge",
            "90d",
            &elsewhere,
            &["--binary", fake.to_str().unwrap()]
        )
        .status
        .success()
    );
    let other_binary = serve_offline(dir.path(), &keys, "edge", &lab, &elsewhere, &plan, &out);
    assert!(!other_binary.status.success());
    assert!(
        stderr(&other_binary).contains("the capsule is for the countersign binary"),
        "{}",
        stderr(&other_binary)
    );

    // Expired.
    let brief = dir.path().join("brief.json");
    assert!(build(&keys, "edge", "1s", &brief, &[]).status.success());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let expired = serve_offline(dir.path(), &keys, "edge", &lab, &brief, &plan, &out);
    assert!(!expired.status.success());
    assert!(stderr(&expired).contains("expired"), "{}", stderr(&expired));
    assert!(
        !out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(),
        "nothing written"
    );

    // attest --capsule refuses alike, before running anything.
    let attest = countersign(&[
        "attest",
        "--repo",
        lab.repo.to_str().unwrap(),
        "--repository",
        REPOSITORY,
        "--key",
        &keys.key("other"),
        "--commit",
        &lab.change,
        "--suite",
        "eu-int",
        "--capsule",
        capsule.to_str().unwrap(),
        "--env",
        ENCLAVE,
        "--run",
        "--",
        "true",
    ]);
    assert!(!attest.status.success());
    assert!(
        stderr(&attest).contains("the capsule is for runner key"),
        "{}",
        stderr(&attest)
    );
    // ... and a suite outside the capsule.
    let outside = countersign(&[
        "attest",
        "--repo",
        lab.repo.to_str().unwrap(),
        "--repository",
        REPOSITORY,
        "--key",
        &keys.key("edge"),
        "--commit",
        &lab.change,
        "--suite",
        "lib-unit",
        "--capsule",
        capsule.to_str().unwrap(),
        "--env",
        ENCLAVE,
        "--run",
        "--",
        "true",
    ]);
    assert!(!outside.status.success());
    assert!(
        stderr(&outside).contains("not in the capsule"),
        "{}",
        stderr(&outside)
    );
}

#[test]
fn offline_evidence_is_imported_unchanged_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, org) = keys(dir.path());
    let lab = lab(dir.path(), &org);
    let capsule = dir.path().join("capsule.json");
    assert!(build(&keys, "edge", "90d", &capsule, &[]).status.success());
    let plan = dir.path().join("plan.json");
    std::fs::write(
        &plan,
        json!({ "plan": "countersign-plan/v1", "items": [
            { "suite": "eu-int", "commit": lab.change, "base": lab.base,
              "repository": REPOSITORY, "environment": ENCLAVE },
        ]})
        .to_string(),
    )
    .unwrap();
    let out = dir.path().join("out");
    // No server exists yet: the enclave has no route to one.
    let ran = serve_offline(dir.path(), &keys, "edge", &lab, &capsule, &plan, &out);
    assert!(ran.status.success(), "{}", stderr(&ran));
    let mut written: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    written.sort();
    assert_eq!(written.len(), 1, "{written:?}");
    let bytes = std::fs::read(&written[0]).unwrap();
    let digest = countersign_evidence::capsule::sha256_hex(&bytes);
    // It verifies locally against the base, capsule and all.
    let verified = countersign(&[
        "evidence",
        "verify",
        "--repo",
        lab.repo.to_str().unwrap(),
        "--rev",
        &lab.base,
        "--commit",
        &lab.change,
        written[0].to_str().unwrap(),
    ]);
    assert!(verified.status.success(), "{}", stdout(&verified));
    assert!(
        stdout(&verified).contains("runner capsule:acme-org:"),
        "{}",
        stdout(&verified)
    );

    // Later, from outside the enclave: imported unchanged.
    let mut server = TestServer::start(&[("lab", lab.repo.as_path())]);
    let fixbot = server.token("agent:fixbot", Role::Proposer);
    let auditor = server.token("human:erin", Role::Auditor);
    let importer = server.token("runner:edge-import", Role::Runner);
    let proposed = client(
        &server.url,
        Some(&fixbot),
        &[
            "propose",
            "--repo",
            "lab",
            "--base",
            &lab.base,
            "--head",
            &lab.change,
            "--title",
            "change",
            "--format",
            "json",
        ],
    );
    let id = json(&proposed)["id"].as_str().unwrap().to_owned();
    let before = server.get(&format!("/v1/proposals/{id}/plan"), &auditor);
    assert_eq!(before["missing"], json!(["eu-int"]), "{before}");
    let pushed = client(
        &server.url,
        Some(&importer),
        &[
            "evidence",
            "push",
            &id,
            out.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    let answer = json(&pushed);
    assert_eq!(answer["results"][0]["accepted"], true, "{answer}");
    assert_eq!(
        answer["results"][0]["answer"]["digest"],
        digest.as_str(),
        "byte-identical"
    );
    let after = server.get(&format!("/v1/proposals/{id}/plan"), &auditor);
    assert_eq!(after["satisfied"], json!(["eu-int"]), "{after}");
    assert_eq!(after["suites"][0]["evidence"][0]["digest"], digest.as_str());
    // The same envelope again is the same answer, recorded once.
    let again = client(
        &server.url,
        Some(&importer),
        &[
            "evidence",
            "push",
            &id,
            written[0].to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(json(&again)["results"][0]["answer"]["recorded"], false);
    server.stop();
}

/// A `runner serve` child, SIGKILLed when dropped so a failing test leaves none behind.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve_online(
    dir: &Path,
    server: &TestServer,
    keys: &Keys,
    key: &str,
    token: &str,
    lab: &Lab,
    capsule: Option<&Path>,
) -> Serving {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"));
    command
        .args(["runner", "serve", "--server", &server.url, "--key"])
        .arg(keys.key(key))
        .args(["--repository", REPOSITORY, "--repo"])
        .arg(&lab.repo)
        .arg("--clone")
        .arg(dir.join(format!("{key}-online-clone")))
        .args(["--poll", "1s"]);
    match capsule {
        Some(capsule) => command.arg("--capsule").arg(capsule),
        None => command.args(["--env", ENCLAVE]),
    };
    let child = command
        .env("COUNTERSIGN_TOKEN", token)
        .env_remove("COUNTERSIGN_SERVER")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("the binary runs");
    Serving(child)
}

/// Online, end to end: a proposal whose only planned suite only a capsule may attest is
/// queued; a plain runner in the enclave's environment polling beside it is offered nothing;
/// `runner serve --capsule` leases it (presenting its capsule and the proof), runs it, pushes
/// the evidence and the plan is satisfied, the decision re-derived.
#[test]
fn an_online_capsule_runner_runs_what_only_its_capsule_covers() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, org) = keys(dir.path());
    let lab = lab(dir.path(), &org);
    let capsule = dir.path().join("capsule.json");
    assert!(build(&keys, "edge", "90d", &capsule, &[]).status.success());
    let mut server = TestServer::start(&[("lab", lab.repo.as_path())]);
    let fixbot = server.token("agent:fixbot", Role::Proposer);
    let auditor = server.token("human:erin", Role::Auditor);
    let edge = server.token("runner:edge", Role::Runner);
    let plain = server.token("runner:plain", Role::Runner);
    let proposed = client(
        &server.url,
        Some(&fixbot),
        &[
            "propose",
            "--repo",
            "lab",
            "--base",
            &lab.base,
            "--head",
            &lab.change,
            "--title",
            "change",
            "--format",
            "json",
        ],
    );
    let id = json(&proposed)["id"].as_str().unwrap().to_owned();
    let runs = server.get(&format!("/v1/runs?proposal={id}"), &auditor);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs:#}");
    assert_eq!(runs["runs"][0]["suite"], "eu-int");
    assert_eq!(runs["runs"][0]["environment"], ENCLAVE);

    // A runner without the capsule polls first, and keeps polling beside the edge.
    let _plain = serve_online(dir.path(), &server, &keys, "other", &plain, &lab, None);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let runs = server.get(&format!("/v1/runs?proposal={id}"), &auditor);
    assert_eq!(runs["runs"][0]["state"], "queued", "{runs:#}");
    let _edge = serve_online(
        dir.path(),
        &server,
        &keys,
        "edge",
        &edge,
        &lab,
        Some(&capsule),
    );
    let start = std::time::Instant::now();
    let run = loop {
        let runs = server.get(&format!("/v1/runs?proposal={id}"), &auditor);
        let run = runs["runs"][0].clone();
        if run["state"] == "finished" {
            break run;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(90),
            "never finished: {runs:#}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(run["outcome"], "passed", "{run:#}");
    assert_eq!(run["runner"], "runner:edge", "{run:#}");
    assert_eq!(run["attempt"], 1, "{run:#}");
    let plan = server.get(&format!("/v1/proposals/{id}/plan"), &auditor);
    assert_eq!(plan["satisfied"], json!(["eu-int"]), "{plan:#}");
    assert_eq!(plan["missing"], json!([]), "{plan:#}");
    assert_eq!(
        plan["suites"][0]["evidence"][0]["digest"], run["envelopes"][0],
        "{plan:#}"
    );
    let proposal = server.get(&format!("/v1/proposals/{id}"), &auditor);
    assert_ne!(proposal["state"], "awaiting_evidence", "{proposal:#}");
    server.stop();
}
