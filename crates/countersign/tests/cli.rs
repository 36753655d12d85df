//! Black-box tests: the real binary against repositories written with `RepoWriter`.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::*;

use std::path::Path;

use countersign_repo::RepoWriter;
use serde_json::Value;

/// A small governed system: a low docs site, a critical payments service that the web
/// shop depends on, and owners.
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
  type: website
  lifecycle: production
  owner: team-shop
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: payments
  annotations:
    countersign.dev/criticality: critical
    countersign.dev/surfaces: payments
    countersign.dev/paths: /payments/**
    countersign.dev/suites: payments-contract
spec:
  type: service
  lifecycle: production
  owner: team-shop
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: shop
  annotations:
    countersign.dev/criticality: moderate
    countersign.dev/paths: /shop/**
spec:
  type: website
  lifecycle: production
  owner: team-shop
  dependsOn: [component:payments]
"#;

fn governed_repo(dir: &Path) -> RepoWriter {
    governed_repo_with(dir, CATALOG)
}

/// [`governed_repo`] with another catalog.
fn governed_repo_with(dir: &Path, catalog: &str) -> RepoWriter {
    let mut writer = RepoWriter::init(dir).unwrap();
    writer
        .commit(
            [
                ("catalog-info.yaml", Some(catalog)),
                ("docs/index.md", Some("# Docs\n")),
                ("payments/src/lib.rs", Some("pub fn charge() {}\n")),
                ("shop/index.html", Some("<html></html>\n")),
            ],
            "base",
            ALICE,
            TIME,
        )
        .unwrap();
    writer
}

fn repo_arg(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

#[test]
fn a_docs_typo_auto_merges_and_a_payments_change_needs_change_control() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = governed_repo(dir.path());
    let base = writer.head().unwrap();
    let docs = writer
        .commit(
            [("docs/index.md", Some("# Documentation\n"))],
            "typo",
            ALICE,
            TIME + 1,
        )
        .unwrap();
    let report = json(&countersign(&[
        "evaluate",
        "--repo",
        repo_arg(dir.path()),
        "--base",
        base.as_str(),
        "--head",
        docs.as_str(),
        "--author",
        "agent:fixbot",
        "--format",
        "json",
    ]));
    assert_eq!(report["tier"], "auto_merge", "{report:#}");
    assert_eq!(report["automated"], true);

    let payments = writer
        .commit(
            [("payments/src/lib.rs", Some("pub fn charge() { todo() }\n"))],
            "pay",
            ALICE,
            TIME + 2,
        )
        .unwrap();
    let report = json(&countersign(&[
        "evaluate",
        "--repo",
        repo_arg(dir.path()),
        "--base",
        docs.as_str(),
        "--head",
        payments.as_str(),
        "--author",
        "human:alice",
        "--declared-tier",
        "auto_merge",
        "--format",
        "json",
    ]));
    assert_eq!(report["tier"], "change_control", "{report:#}");
    assert_eq!(report["approvers"]["required"], 2);
    // The author never approves their own change: only bob is eligible, one short of two.
    assert_eq!(
        report["approvers"]["eligible"],
        serde_json::json!(["human:bob"])
    );
    assert_eq!(report["approvers"]["shortfall"], 1);
    assert_eq!(report["declared_tier"]["value"], "auto_merge");
    assert_eq!(
        report["validation_plan"]["suites"][0]["suite"],
        "payments-contract"
    );
    let reached: Vec<&str> = report["impact"]["blast_radius"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["node"].as_str().unwrap())
        .collect();
    assert_eq!(reached, ["component:default/shop"]);
}

/// `git commit` in `dir` as `author`, committed by `committer` (`Name <email>`), with every
/// change in the work tree: real git, as a person's commits arrive.
fn git_commit(dir: &Path, author: &str, committer: &str, message: &str) -> String {
    let split = |who: &str| {
        let (name, email) = who.split_once(" <").unwrap();
        (name.to_owned(), email.trim_end_matches('>').to_owned())
    };
    let ((an, ae), (cn, ce)) = (split(author), split(committer));
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", &an)
            .env("GIT_AUTHOR_EMAIL", &ae)
            .env("GIT_COMMITTER_NAME", &cn)
            .env("GIT_COMMITTER_EMAIL", &ce)
            .env("GIT_AUTHOR_DATE", "2026-01-05T10:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-05T10:00:00Z")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    git(&["add", "-A"]);
    git(&["commit", "--no-gpg-sign", "-q", "-m", message]);
    git(&["rev-parse", "HEAD"])
}

/// The people of the shop with profile emails, so commit emails map to them.
fn shop_people_catalog() -> String {
    CATALOG
        .replace(
            "  members: [alice, bob]",
            "  members: [alice, bob, carol, dave]",
        )
        .replace(
            "  name: alice\nspec:\n",
            "  name: alice\nspec:\n  profile:\n    email: alice@example.com\n",
        )
        .replace(
            "  name: bob\nspec:\n",
            "  name: bob\nspec:\n  profile:\n    email: bob@example.com\n",
        )
        + "---\napiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: carol\nspec:\n  profile:\n    email: carol@example.com\n  memberOf: [team-shop]\n"
        + "---\napiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: dave\nspec:\n  profile:\n    email: dave@example.com\n  memberOf: [team-shop]\n"
}

fn approvers_of(dir: &Path, base: &str, head: &str, author: &[&str]) -> Value {
    let mut args = vec![
        "evaluate",
        "--repo",
        repo_arg(dir),
        "--base",
        base,
        "--head",
        head,
        "--format",
        "json",
    ];
    args.extend_from_slice(author);
    let report = json(&countersign(&args));
    assert_eq!(report["tier"], "change_control", "{report:#}");
    report["approvers"].clone()
}

/// Abuse: the proposer slips a commit by another owner (or one that owner committed) into
/// the range, or is an agent a person dispatched. `evaluate` must not list that person as
/// able to approve, exactly as the server's proposal would not count them: the same reading
/// of the commits, the same list of authors, the same pool.
#[test]
fn evaluate_never_lists_a_commit_author_or_the_dispatcher_as_eligible() {
    let dir = tempfile::tempdir().unwrap();
    let base = governed_repo_with(dir.path(), &shop_people_catalog())
        .head()
        .unwrap();
    let git_reset = std::process::Command::new("git")
        .arg("-C")
        .arg(dir.path())
        .args(["reset", "-q", "--hard"])
        .status()
        .unwrap();
    assert!(git_reset.success());
    let base = base.as_str().to_owned();
    // bob writes the payments change; alice adds a commit of her own on top and proposes.
    std::fs::write(
        dir.path().join("payments/src/lib.rs"),
        "pub fn charge() { bob() }\n",
    )
    .unwrap();
    git_commit(
        dir.path(),
        "Bob <bob@example.com>",
        "Bob <bob@example.com>",
        "bob's change",
    );
    std::fs::write(dir.path().join("docs/index.md"), "# Documentation\n").unwrap();
    let head = git_commit(dir.path(), ALICE, ALICE, "alice's docs");

    let approvers = approvers_of(dir.path(), &base, &head, &["--author", "human:alice"]);
    assert_eq!(approvers["required"], 2);
    // Neither the proposer nor bob: only carol and dave are left.
    assert_eq!(
        approvers["eligible"],
        serde_json::json!(["human:carol", "human:dave"]),
        "{approvers:#}"
    );
    assert_eq!(
        approvers["excluded_as_authors"],
        serde_json::json!(["human:bob"])
    );
    assert_eq!(
        approvers["authors"],
        serde_json::json!(["human:alice", "human:bob"])
    );
    for requirement in approvers["requirements"].as_array().unwrap() {
        let people = requirement["eligible"].as_array().unwrap();
        assert!(
            !people.contains(&Value::from("human:bob")),
            "{requirement:#}"
        );
    }
    let text = stdout(&countersign(&[
        "evaluate",
        "--repo",
        repo_arg(dir.path()),
        "--base",
        &base,
        "--head",
        &head,
        "--author",
        "human:alice",
    ]));
    assert!(
        text.contains("eligible: human:carol, human:dave\n")
            || text.contains("eligible: human:carol, human:dave;"),
        "{text}"
    );
    assert!(
        text.contains("not eligible, as authors of the change: human:bob"),
        "{text}"
    );

    // A committer is an author too: carol commits dave's work on top.
    std::fs::write(dir.path().join("shop/index.html"), "<html>dave</html>\n").unwrap();
    let head = git_commit(
        dir.path(),
        "Dave <dave@example.com>",
        "Carol <carol@example.com>",
        "dave's work, committed by carol",
    );
    let approvers = approvers_of(dir.path(), &base, &head, &["--author", "human:alice"]);
    assert_eq!(
        approvers["eligible"],
        serde_json::json!([]),
        "{approvers:#}"
    );
    assert_eq!(
        approvers["excluded_as_authors"],
        serde_json::json!(["human:bob", "human:carol", "human:dave"])
    );
    assert_eq!(approvers["shortfall"], 2, "{approvers:#}");

    // The person who dispatched an agent never approves what it proposes, even with no
    // commit of theirs in the range.
    let approvers = approvers_of(
        dir.path(),
        &base,
        &base_plus_one(dir.path(), &base),
        &["--author", "agent:fixbot", "--dispatched-by", "human:alice"],
    );
    assert!(
        !approvers["eligible"]
            .as_array()
            .unwrap()
            .contains(&Value::from("human:alice")),
        "{approvers:#}"
    );
    assert!(
        approvers["authors"]
            .as_array()
            .unwrap()
            .contains(&Value::from("human:alice")),
        "{approvers:#}"
    );
}

/// The first commit after `base` on the current branch: bob's payments change alone.
fn base_plus_one(dir: &Path, base: &str) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-list", "--reverse", &format!("{base}..HEAD")])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned()
}

/// Agent provenance reaches the policies: a pack may treat an agent nobody dispatched
/// differently (docs/policy.md's example), and only a person can be a dispatcher.
#[test]
fn the_dispatcher_is_a_fact_policies_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = governed_repo(dir.path());
    let rule = "@id(\"undispatched-agent-needs-a-person\")\n@reason(\"An agent's change that no person dispatched is approved by one.\")\nforbid (principal, action in [Countersign::Action::\"auto_merge\", Countersign::Action::\"notify_and_proceed\"], resource)\nwhen { principal.kind == \"agent\" && context.dispatched_by.isEmpty() };\n";
    let mut files: Vec<(String, Option<String>)> = countersign_policy::default_files()
        .into_iter()
        .map(|(name, text)| (format!(".countersign/policy/{name}"), Some(text.to_owned())))
        .collect();
    files.push((
        ".countersign/policy/provenance.cedar".to_owned(),
        Some(rule.to_owned()),
    ));
    let base = writer
        .commit(
            files.iter().map(|(p, t)| (p.as_str(), t.as_deref())),
            "policy",
            ALICE,
            TIME + 1,
        )
        .unwrap();
    let docs = writer
        .commit(
            [("docs/index.md", Some("# Documentation\n"))],
            "typo",
            ALICE,
            TIME + 2,
        )
        .unwrap();
    let evaluate = |extra: &[&str]| {
        let mut args = vec![
            "evaluate",
            "--repo",
            repo_arg(dir.path()),
            "--base",
            base.as_str(),
            "--head",
            docs.as_str(),
            "--author",
            "agent:fixbot",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        countersign(&args)
    };
    let alone = json(&evaluate(&[]));
    assert_eq!(alone["tier"], "single_approver", "{alone:#}");
    assert_eq!(alone["facts"]["dispatched_by"], serde_json::json!([]));
    assert!(
        alone["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "undispatched-agent-needs-a-person"),
        "{alone:#}"
    );
    let sent = json(&evaluate(&["--dispatched-by", "human:bob"]));
    assert_eq!(sent["tier"], "auto_merge", "{sent:#}");
    assert_eq!(
        sent["facts"]["dispatched_by"],
        serde_json::json!(["human:bob"])
    );
    // Only a person dispatches an agent.
    let refused = evaluate(&["--dispatched-by", "agent:other"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("the dispatcher agent:other is not a human"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn the_rules_are_read_from_the_base_commit_not_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = governed_repo(dir.path());
    let base = writer.head().unwrap();
    // The head removes the payments surface and criticality from the catalog, and edits
    // payments code in the same change.
    let softened = CATALOG.replace(
        "    countersign.dev/criticality: critical\n    countersign.dev/surfaces: payments\n",
        "    countersign.dev/criticality: low\n",
    );
    let head = writer
        .commit(
            [
                ("catalog-info.yaml", Some(softened.as_str())),
                ("payments/src/lib.rs", Some("pub fn charge() { free() }\n")),
            ],
            "soften",
            ALICE,
            TIME + 1,
        )
        .unwrap();
    let report = json(&countersign(&[
        "evaluate",
        "--repo",
        repo_arg(dir.path()),
        "--base",
        base.as_str(),
        "--head",
        head.as_str(),
        "--author",
        "agent:fixbot",
        "--format",
        "json",
    ]));
    assert_eq!(report["tier"], "change_control");
    let surfaces = report["impact"]["surfaces_touched"].as_array().unwrap();
    assert!(surfaces.contains(&Value::from("payments")), "{surfaces:?}");
    assert!(
        surfaces.contains(&Value::from("governance")),
        "{surfaces:?}"
    );
    let base_graph = json(&countersign(&[
        "graph",
        "show",
        "--repo",
        repo_arg(dir.path()),
        "--rev",
        base.as_str(),
    ]));
    let head_graph = json(&countersign(&[
        "graph",
        "show",
        "--repo",
        repo_arg(dir.path()),
        "--rev",
        head.as_str(),
    ]));
    assert_eq!(report["graph_version"], base_graph["version"]);
    assert_ne!(report["graph_version"], head_graph["version"]);
}

#[test]
fn paths_on_stdin_are_judged_by_the_working_tree() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = governed_repo(dir.path());
    let head = writer.head().unwrap();
    writer.write_worktree(&head).unwrap();
    let out = countersign_stdin(
        &[
            "evaluate",
            "--repo",
            repo_arg(dir.path()),
            "--files",
            "-",
            "--author",
            "human:visitor",
            "--format",
            "json",
        ],
        b"shop/index.html\nscripts/unknown.sh\n",
    );
    let report = json(&out);
    assert_eq!(
        report["impact"]["unmapped"],
        serde_json::json!(["scripts/unknown.sh"])
    );
    assert_ne!(report["tier"], "auto_merge");
}

/// Each bad input exits 2 with a message naming what is wrong and where.
#[test]
fn bad_input_is_refused_with_a_precise_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = governed_repo(dir.path());
    let base = writer.head().unwrap();
    let repo = repo_arg(dir.path());

    let missing = countersign(&[
        "evaluate",
        "--repo",
        repo,
        "--base",
        "no-such-branch",
        "--head",
        base.as_str(),
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("no-such-branch"),
        "{}",
        stderr(&missing)
    );

    let empty = countersign(&[
        "evaluate",
        "--repo",
        repo,
        "--base",
        base.as_str(),
        "--head",
        base.as_str(),
        "--author",
        "human:visitor",
    ]);
    assert_eq!(empty.status.code(), Some(2));
    assert!(stderr(&empty).contains("empty diff"), "{}", stderr(&empty));

    let non_utf8 = countersign_stdin(
        &[
            "evaluate",
            "--repo",
            repo,
            "--files",
            "-",
            "--author",
            "human:visitor",
        ],
        b"docs/ok.md\ndocs/\xff.md\n",
    );
    assert_eq!(non_utf8.status.code(), Some(2));
    assert!(
        stderr(&non_utf8).contains("line 2"),
        "{}",
        stderr(&non_utf8)
    );

    let outside = countersign_stdin(
        &[
            "evaluate",
            "--repo",
            repo,
            "--files",
            "-",
            "--author",
            "human:visitor",
        ],
        b"../etc/passwd\n",
    );
    assert_eq!(outside.status.code(), Some(2));

    let nothing = countersign_stdin(
        &[
            "evaluate",
            "--repo",
            repo,
            "--files",
            "-",
            "--author",
            "human:visitor",
        ],
        b"\n",
    );
    assert_eq!(nothing.status.code(), Some(2));
    assert!(
        stderr(&nothing).contains("empty diff"),
        "{}",
        stderr(&nothing)
    );

    let bad_author = countersign(&[
        "evaluate", "--repo", repo, "--base", "HEAD", "--head", "HEAD", "--author", "robot",
    ]);
    assert_eq!(bad_author.status.code(), Some(2));
    // With a change to decide, the author is read, and the binary names the flag to fix
    // (the library, shared with the server, names none).
    let typo = writer
        .commit([("docs/index.md", Some("typo\n"))], "typo", ALICE, TIME + 1)
        .unwrap();
    let bad_author = countersign(&[
        "evaluate",
        "--repo",
        repo,
        "--base",
        base.as_str(),
        "--head",
        typo.as_str(),
        "--author",
        "robot",
    ]);
    assert_eq!(bad_author.status.code(), Some(2));
    assert!(
        stderr(&bad_author).starts_with("error: --author: the author \"robot\" is not a principal"),
        "{}",
        stderr(&bad_author)
    );

    // Malformed YAML at the base: the error names the file and the line.
    let broken = writer
        .commit(
            [(
                "svc/catalog-info.yaml",
                Some("kind: Component\nmetadata: [unclosed\n"),
            )],
            "broken",
            ALICE,
            TIME + 1,
        )
        .unwrap();
    let head = writer
        .commit([("docs/index.md", Some("x\n"))], "docs", ALICE, TIME + 2)
        .unwrap();
    let yaml = countersign(&[
        "evaluate",
        "--repo",
        repo,
        "--base",
        broken.as_str(),
        "--head",
        head.as_str(),
    ]);
    assert_eq!(yaml.status.code(), Some(2));
    assert!(
        stderr(&yaml).contains("svc/catalog-info.yaml:"),
        "{}",
        stderr(&yaml)
    );

    // Invalid Cedar at the base: the error names file:line:col.
    let cedar = writer
        .commit(
            [
                ("svc/catalog-info.yaml", None),
                (".countersign/policy/main.cedar", Some("@id(\"x\")\n@reason(\"x\")\npermit(principal, action, resource) when { context.nope ==  };\n")),
            ],
            "bad policy",
            ALICE,
            TIME + 3,
        )
        .unwrap();
    let head = writer
        .commit([("docs/index.md", Some("y\n"))], "docs", ALICE, TIME + 4)
        .unwrap();
    let policy = countersign(&[
        "evaluate",
        "--repo",
        repo,
        "--base",
        cedar.as_str(),
        "--head",
        head.as_str(),
        "--author",
        "human:visitor",
    ]);
    assert_eq!(policy.status.code(), Some(2));
    assert!(
        stderr(&policy).contains(".countersign/policy/main.cedar:3:"),
        "{}",
        stderr(&policy)
    );

    let not_a_repo = tempfile::tempdir().unwrap();
    let out = countersign(&[
        "evaluate",
        "--repo",
        repo_arg(not_a_repo.path()),
        "--base",
        "HEAD~1",
        "--head",
        "HEAD",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_empty_repository_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    RepoWriter::init(dir.path()).unwrap();
    let out = countersign(&[
        "evaluate",
        "--repo",
        repo_arg(dir.path()),
        "--base",
        "HEAD~1",
        "--head",
        "HEAD",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).to_lowercase().contains("no commits")
            || stderr(&out).to_lowercase().contains("empty"),
        "{}",
        stderr(&out)
    );
}

/// A shallow clone lacking the base: the error says so, and the binary (not the library,
/// whose callers include the server) says which git command fetches the history.
#[test]
fn a_shallow_clone_gets_a_hint_to_fetch_more_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = governed_repo(dir.path());
    let tip = writer
        .commit([("docs/index.md", Some("tip\n"))], "tip", ALICE, TIME + 1)
        .unwrap();
    // What `git clone --depth 1` leaves: the tip's parents are not there to be walked.
    std::fs::write(dir.path().join(".git/shallow"), format!("{tip}\n")).unwrap();
    let out = countersign(&[
        "evaluate",
        "--repo",
        repo_arg(dir.path()),
        "--base",
        "HEAD~1",
        "--head",
        "HEAD",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(text.contains("shallow clone"), "{text}");
    assert!(
        text.contains("hint: fetch more history, e.g. `git fetch --deepen=100`"),
        "{text}"
    );
}

#[test]
fn init_writes_a_config_and_a_pack_that_check_clean_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_arg(dir.path());
    let out = countersign(&["init", "--repo", repo]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("countersign.toml").exists());
    let check = countersign(&["policy", "check", "--repo", repo]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("0 error(s)"));
    let again = countersign(&["init", "--repo", repo]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("--force"));
}

#[test]
fn policy_check_reports_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.cedar"),
        "@id(\"a\")\n@reason(\"r\")\npermit(principal, action, resource)\nwhen { context.no_such_fact > 1 };\n",
    )
    .unwrap();
    let out = countersign(&["policy", "check", "--policy", repo_arg(dir.path())]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bad.cedar:4:"), "{text}");
}

#[test]
fn the_json_schema_in_docs_is_the_one_generated_from_the_types() {
    let out = countersign(&["schema"]);
    assert!(out.status.success());
    let generated: Value = serde_json::from_slice(&out.stdout).unwrap();
    let documented: Value =
        serde_json::from_str(include_str!("../../../docs/evaluate.schema.json")).unwrap();
    assert_eq!(
        generated, documented,
        "run `countersign schema > docs/evaluate.schema.json`"
    );
}

#[test]
fn the_demo_decides_every_change_as_the_product_table_says() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("demo");
    let out = countersign(&[
        "demo",
        "--dir",
        target.to_str().unwrap(),
        "--format",
        "json",
        "--no-serve",
    ]);
    let demo = json(&out);
    let changes = demo["changes"].as_array().unwrap();
    assert!(changes.len() >= 12);
    let summary: Vec<Value> = changes
        .iter()
        .map(|c| {
            let d = &c["decision"];
            serde_json::json!({
                "id": c["id"],
                "author": d["author"],
                "tier": d["tier"],
                "touched": d["impact"]["touched_count"],
                "reached": d["impact"]["reached_count"],
                "surfaces": d["impact"]["surfaces_touched"],
                "approvers": d["approvers"]["required"],
                "why": d["reasons"].as_array().unwrap().iter()
                    .filter(|r| r["effect"] != "note")
                    .map(|r| format!("{} {} {}", r["effect"].as_str().unwrap(), r["tier"].as_str().unwrap_or("-"), r["id"].as_str().unwrap_or(r["source"].as_str().unwrap())))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    insta::assert_json_snapshot!("demo_decisions", summary);
    for change in changes {
        assert_eq!(
            change["decision"]["tier"], change["expected_tier"],
            "demo change {} is not decided as the product's tier table says",
            change["id"]
        );
        // Replayed through the server: the same tier, and every change authorized, by the
        // system or by as many eligible people (never the author) as the tier needs.
        let proposal = &change["proposal"];
        assert_eq!(
            proposal["tier"], change["expected_tier"],
            "{}",
            change["id"]
        );
        assert_eq!(proposal["state"], "authorized", "{}", change["id"]);
        let approvers: Vec<&str> = proposal["approved_by"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let needed = match change["expected_tier"].as_str().unwrap() {
            "auto_merge" | "notify_and_proceed" => 0,
            "single_approver" => 1,
            _ => 2,
        };
        assert_eq!(approvers.len(), needed, "{}: {approvers:?}", change["id"]);
        assert!(
            !approvers.contains(&change["decision"]["author"].as_str().unwrap()),
            "{}: {approvers:?}",
            change["id"]
        );
    }
    let server = &demo["server"];
    assert!(
        server["url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    let tokens = server["tokens"].as_array().unwrap();
    assert!(
        tokens
            .iter()
            .any(|t| t["principal"] == "agent:fixbot" && t["role"] == "proposer")
            && tokens
                .iter()
                .any(|t| t["principal"] == "system:auditor" && t["role"] == "auditor")
            && tokens
                .iter()
                .all(|t| t["token"].as_str().unwrap().starts_with("cst_")),
        "{tokens:?}"
    );
    // Something to explore: admin, runner and auditor tokens, and proposals left waiting,
    // each with an approver token for every eligible person.
    for (principal, role) in [
        ("system:admin", "admin"),
        ("runner:ci", "runner"),
        ("system:auditor", "auditor"),
    ] {
        assert!(
            tokens
                .iter()
                .any(|t| t["principal"] == principal && t["role"] == role),
            "{principal} {role}: {tokens:?}"
        );
    }
    let waiting = server["waiting"].as_array().unwrap();
    assert!(!waiting.is_empty(), "{server}");
    // The console, and a single-use sign-in link as an owner a waiting proposal waits for.
    let url = server["url"].as_str().unwrap();
    assert_eq!(server["console"]["url"], format!("{url}/"));
    assert!(
        server["console"]["signin_link"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{url}/signin/link?token=")),
        "{server}"
    );
    assert!(
        waiting[0]["eligible_approvers"]
            .as_array()
            .unwrap()
            .contains(&server["console"]["signin_as"]),
        "{server}"
    );
    for w in waiting {
        assert_eq!(w["state"], "awaiting_approval", "{w}");
        for person in w["eligible_approvers"].as_array().unwrap() {
            assert!(
                tokens
                    .iter()
                    .any(|t| t["principal"] == *person && t["role"] == "approver"),
                "{person}"
            );
        }
    }
    // The log it leaves verifies with the command it prints; in the directory, the local
    // log is empty and `log verify` says where the server's is.
    let key = target.join(".countersign/state/server-log.pub");
    let database = format!(
        "sqlite://{}",
        target.join(".countersign/state/server.db").display()
    );
    let verified = ok(countersign(&[
        "log",
        "verify",
        "--database",
        &database,
        "--log-key",
        key.to_str().unwrap(),
    ]));
    assert!(verified.starts_with("log verified: "), "{verified}");
    let local = countersign(&[
        "log",
        "verify",
        "--repo",
        target.to_str().unwrap(),
        "--log-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(local.status.code(), Some(1));
    let said = stderr(&local);
    assert!(
        said.contains("is empty") && said.contains(&format!("--database {database}")),
        "{said}"
    );
    the_loop_was_closed(&demo["loop"], &target);
    // The demo repository is real: graph check runs on it and every decision's graph
    // version is the one of its base.
    let check = countersign(&["graph", "check", "--repo", target.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

/// The demo's closed loop (issue 17 point 10), from its JSON: two runners leased work, the
/// nightly schedule's failing run opened a finding, an agent's fix linked to it was
/// authorized by two distinct humans (never the agent), merged, and the post-merge run
/// verified it; the finding's bundle verifies offline with the real binary.
fn the_loop_was_closed(closed: &Value, dir: &Path) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let runners: Vec<String> = closed["runners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| text(&r["principal"]))
        .collect();
    assert_eq!(runners, ["runner:ci-linux", "runner:ci-pci"], "{closed}");
    // The schedule fired at main's tip (the fleet's commit, whose tree holds the
    // regression): one run per suite, each leased by the runner its entry allows.
    let tip = text(&closed["landed"][1]["commit"]);
    assert_eq!(closed["schedule"]["last_fired"]["commit"], tip.as_str());
    let scheduled = closed["scheduled_runs"].as_array().unwrap();
    let outcome_of = |suite: &str| {
        let run = scheduled.iter().find(|r| r["suite"] == suite).unwrap();
        assert_eq!(run["cause"], "schedule:nightly", "{run}");
        assert_eq!(run["branch"], "stable", "{run}");
        assert_eq!(run["commit"], tip.as_str(), "{run}");
        (text(&run["runner"]), text(&run["outcome"]))
    };
    assert_eq!(
        outcome_of("checkout-unit"),
        ("runner:ci-linux".to_owned(), "passed".to_owned())
    );
    assert_eq!(
        outcome_of("payments-unit"),
        ("runner:ci-pci".to_owned(), "failed".to_owned())
    );
    let leased: std::collections::BTreeSet<String> = scheduled
        .iter()
        .chain(closed["fix"]["runs"].as_array().unwrap())
        .chain(closed["verifying_runs"].as_array().unwrap())
        .map(|r| text(&r["runner"]))
        .collect();
    assert_eq!(leased.len(), 2, "both runners leased work: {leased:?}");

    // The failing run opened the finding.
    let opened = &closed["finding_opened"];
    let id = text(&opened["id"]);
    assert!(id.starts_with("F-"), "{opened}");
    assert_eq!(opened["state"], "open");
    assert_eq!(opened["kind"], "test_failure");
    assert_eq!(opened["suite"], "payments-unit");
    assert_eq!(
        opened["test"],
        "payments.decline_codes::hard_decline_is_never_retried"
    );
    assert_eq!(opened["component"], "component:default/payments-service");
    assert_eq!(opened["severity"], "critical");
    assert_eq!(opened["first_seen"], tip.as_str());

    // The agent's fix links it, passes its reproducing test at the head, and is authorized
    // by as many distinct humans as its tier needs, none of them its author.
    let fix = &closed["fix"];
    let fix_id = text(&fix["opened"]["id"]);
    assert_eq!(fix["opened"]["author"], "agent:fixbot");
    assert_eq!(fix["opened"]["tier"], "change_control");
    assert!(
        text(&fix["why"]).contains("never-automate"),
        "{}",
        fix["why"]
    );
    assert!(
        fix["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["proposal"] == fix_id.as_str() && r["outcome"] == "passed"),
        "{}",
        fix["runs"]
    );
    let statuses = fix["plan"]["fixes"].as_array().unwrap();
    assert_eq!(statuses.len(), 1, "{}", fix["plan"]);
    assert_eq!(statuses[0]["finding"], id.as_str());
    assert_eq!(statuses[0]["status"], "passes");
    let authorized = &fix["authorized"];
    assert_eq!(authorized["state"], "authorized");
    let approvers: Vec<String> = fix["approved_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    let distinct: std::collections::BTreeSet<&String> = approvers.iter().collect();
    assert_eq!(approvers.len(), 2, "{approvers:?}");
    assert_eq!(distinct.len(), 2, "{approvers:?}");
    assert_eq!(authorized["approvals_required"], 2);
    assert!(
        approvers.iter().all(|a| a.starts_with("human:")),
        "{approvers:?}"
    );
    // The agent tried to approve its own fix, and the server refused.
    assert!(
        text(&fix["agent_approval_refused"]).starts_with("Forbidden: agent:fixbot is not a human"),
        "{}",
        fix["agent_approval_refused"]
    );

    // Merged at the authorized head; the post-merge run at that commit verified the finding.
    let head = text(&authorized["head"]);
    assert_eq!(fix["merged"]["state"], "merged");
    assert_eq!(fix["merged"]["head"], head.as_str());
    let verifying = closed["verifying_runs"].as_array().unwrap();
    assert_eq!(verifying.len(), 1, "{verifying:?}");
    assert_eq!(verifying[0]["cause"], format!("merge:{fix_id}"));
    assert_eq!(verifying[0]["commit"], head.as_str());
    assert_eq!(verifying[0]["suite"], "payments-unit");
    assert_eq!(verifying[0]["outcome"], "passed");
    let finding = &closed["finding"];
    assert_eq!(finding["id"], id.as_str());
    assert_eq!(finding["state"], "verified");
    assert_eq!(finding["verification"]["proposal"], fix_id.as_str());
    assert_eq!(finding["verification"]["commit"], head.as_str());
    assert_eq!(finding["fixes"], serde_json::json!([fix_id]));

    // The whole loop in one file, checked offline by the real binary.
    let bundle = dir.join(format!("{id}.bundle.json"));
    assert_eq!(closed["bundle"]["path"], bundle.to_str().unwrap());
    let key = dir.join(".countersign/state/server-log.pub");
    let checked = ok(countersign(&[
        "bundle",
        "verify",
        bundle.to_str().unwrap(),
        "--log-key",
        key.to_str().unwrap(),
    ]));
    assert!(
        checked.starts_with(&format!("finding {id}: verified as of log index ")),
        "{checked}"
    );
    assert!(
        checked.contains(&format!("verified after fix {fix_id} merged")),
        "{checked}"
    );
}

/// `countersign demo --no-serve` tells the loop as a story: each step a line or two with
/// its ids, which the snapshot shows with ids, commits, digests, times and paths redacted.
#[test]
fn the_demo_tells_the_closed_loop() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("demo");
    let out = ok(countersign(&[
        "demo",
        "--dir",
        target.to_str().unwrap(),
        "--no-serve",
    ]));
    let start = out.find("The closed loop").expect(&out);
    // The story ends where the console's sign-in lines (or the tokens) begin.
    let end = ["\n\nConsole:", "\nDemo tokens"]
        .iter()
        .filter_map(|marker| out[start..].find(marker))
        .min()
        .expect(&out)
        + start;
    let story = redact(&out[start..end], &target);
    insta::assert_snapshot!("demo_closed_loop", story);
}

/// The story with what changes from run to run replaced: `[DIR]` for the demo directory,
/// `[TIME]` for RFC 3339 times, `[HEX]` for ids, commits and digests, `[N] ms` for
/// durations and `log index [N]`.
fn redact(story: &str, dir: &Path) -> String {
    let story = story.replace(dir.to_str().unwrap(), "[DIR]");
    let mut out = String::new();
    let mut rest = story.as_str();
    while let Some(c) = rest.chars().next() {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.'))
            .collect();
        if word.is_empty() {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        rest = &rest[word.len()..];
        let is_time = word.len() >= 20
            && word.as_bytes()[4] == b'-'
            && word.contains('T')
            && word.ends_with('Z');
        if is_time {
            out.push_str("[TIME]");
            continue;
        }
        // Hex runs of 7 or more inside the word (run and proposal ids, commits, digests).
        let mut piece = String::new();
        for part in word.split_inclusive(['-', ':', '.']) {
            let (body, sep) = match part.char_indices().last() {
                Some((i, '-' | ':' | '.')) => (&part[..i], &part[i..]),
                _ => (part, ""),
            };
            let hex = body.len() >= 7
                && body.chars().all(|c| c.is_ascii_hexdigit())
                && body.chars().any(|c| c.is_ascii_digit());
            piece.push_str(if hex { "[HEX]" } else { body });
            piece.push_str(sep);
        }
        out.push_str(&piece);
    }
    out.lines()
        .map(|line| {
            let mut line = line.to_owned();
            // The number before " ms)": a duration.
            if let Some(at) = line.find(" ms)") {
                let digits = line[..at]
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                line.replace_range(at - digits..at, "[N]");
            }
            // The number after "log index ".
            if let Some(at) = line.find("log index ") {
                let from = at + "log index ".len();
                let digits = line[from..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                line.replace_range(from..from + digits, "[N]");
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `countersign graph show | head` ends quietly when the reader stops reading: exit 0 and
/// nothing on stderr, not "bad input" (issue 14 point 8).
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let writer = governed_repo(dir.path());
    let head = writer.head().unwrap();
    for format in ["json", "dot"] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
            .args(["graph", "show", "--repo", repo_arg(dir.path()), "--rev"])
            .arg(head.as_str())
            .args(["--format", format])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader is gone before anything was written.
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{format}: {}",
            stderr(&output)
        );
        assert_eq!(stderr(&output), "", "{format}");
    }
}

/// Without `--author`, `evaluate --base/--head` reads the authors and committers of the
/// commits through the base's catalog (an agent among them is the proposer), refuses an
/// email no User has, and `--files` needs `--author`: no silent `human:unknown` (issue 14
/// point 5).
#[test]
fn the_author_is_read_from_the_commits_never_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = CATALOG.replace(
        "  name: alice\nspec:\n",
        "  name: alice\nspec:\n  profile:\n    email: alice@example.com\n",
    ) + "---\napiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: fixbot\nspec:\n  profile:\n    email: fixbot@bots.example\n  memberOf: [team-shop]\n";
    let mut writer = RepoWriter::init(dir.path()).unwrap();
    writer
        .commit(
            [
                ("catalog-info.yaml", Some(catalog.as_str())),
                (
                    "countersign.toml",
                    Some("[agents]\npatterns = [\"*bot\"]\n"),
                ),
                ("shop/index.html", Some("<p>shop</p>\n")),
            ],
            "init",
            ALICE,
            TIME,
        )
        .unwrap();
    let base = writer.head().unwrap();
    let by_alice = writer
        .commit(
            [("shop/index.html", Some("<p>shop!</p>\n"))],
            "alice's edit",
            ALICE,
            TIME + 1,
        )
        .unwrap();
    let by_bot = writer
        .commit(
            [("shop/index.html", Some("<p>shop!!</p>\n"))],
            "the bot's edit",
            "Fixbot <fixbot@bots.example>",
            TIME + 2,
        )
        .unwrap();
    let by_stranger = writer
        .commit(
            [("shop/index.html", Some("<p>shop!!!</p>\n"))],
            "a stranger's edit",
            "Mallory <mallory@elsewhere.example>",
            TIME + 3,
        )
        .unwrap();
    let repo = repo_arg(dir.path());
    let evaluate = |head: &str| {
        countersign(&[
            "evaluate",
            "--repo",
            repo,
            "--base",
            base.as_str(),
            "--head",
            head,
            "--format",
            "json",
        ])
    };

    let alone = evaluate(by_alice.as_str());
    assert_eq!(json(&alone)["author"], "human:alice");
    assert!(
        stderr(&alone).contains("author: human:alice (from the commits"),
        "{}",
        stderr(&alone)
    );
    // The bot's commit on top: the agent is the proposer, whoever else wrote commits.
    let with_bot = json(&evaluate(by_bot.as_str()));
    assert_eq!(with_bot["author"], "agent:fixbot", "{with_bot:#}");
    // Someone the catalog does not know is refused, not guessed.
    let stranger = evaluate(by_stranger.as_str());
    assert_eq!(stranger.status.code(), Some(2));
    assert!(
        stderr(&stranger).contains("mallory@elsewhere.example")
            && stderr(&stranger).contains("--author"),
        "{}",
        stderr(&stranger)
    );
    // A list of paths has no commits: --author is required.
    let listed = countersign_stdin(
        &["evaluate", "--repo", repo, "--files", "-"],
        b"shop/index.html\n",
    );
    assert_eq!(listed.status.code(), Some(2));
    assert!(stderr(&listed).contains("--author"), "{}", stderr(&listed));
}

/// Working-tree mode reads what `git status` shows: tracked files and untracked ones no
/// ignore rule excludes (and says which untracked files it read); `init` keeps
/// `.countersign/state/` out of commits (issue 14 point 4).
#[test]
fn the_working_tree_is_what_is_on_disk_not_only_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = governed_repo(dir.path());
    let head = writer.head().unwrap();
    writer.write_worktree(&head).unwrap();
    let repo = repo_arg(dir.path());

    // `init` after the first commit: its config and pack are untracked, and checked.
    let init = countersign(&["init", "--repo", repo]);
    assert!(init.status.success(), "{}", stderr(&init));
    let ignore = std::fs::read_to_string(dir.path().join(".gitignore")).unwrap();
    assert_eq!(
        ignore
            .lines()
            .filter(|l| *l == ".countersign/state/")
            .count(),
        1,
        "{ignore}"
    );
    // The user edits a policy file they have not committed: the edit is what is checked.
    let policy_dir = dir.path().join(".countersign/policy");
    let edited = std::fs::read_dir(&policy_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "cedar"))
        .unwrap();
    std::fs::write(
        &edited,
        "@id(\"x\")\n@reason(\"r\")\npermit(principal, action, resource)\nwhen { context.no_such_fact > 1 };\n",
    )
    .unwrap();
    let check = countersign(&["policy", "check", "--repo", repo]);
    assert_eq!(check.status.code(), Some(1), "{}", stdout(&check));
    let name = edited.file_name().unwrap().to_str().unwrap();
    assert!(stdout(&check).contains(name), "{}", stdout(&check));
    assert!(
        stderr(&check).contains("untracked file(s)") && stderr(&check).contains(name),
        "{}",
        stderr(&check)
    );

    // An ignored directory's files are not part of the repository: a broken catalog file
    // there is not read, and `git status` would not show it either.
    std::fs::remove_file(&edited).unwrap();
    std::fs::create_dir_all(dir.path().join("build")).unwrap();
    std::fs::write(
        dir.path().join("build/catalog-info.yaml"),
        "kind: Component\nmetadata: [unclosed\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join(".gitignore"),
        ".countersign/state/\nbuild/\n",
    )
    .unwrap();
    let graph = countersign(&["graph", "check", "--repo", repo]);
    assert!(
        !stderr(&graph).contains("build/catalog-info.yaml")
            && !stdout(&graph).contains("build/catalog-info.yaml"),
        "{}{}",
        stdout(&graph),
        stderr(&graph)
    );
    // Not ignored, the same file is read (and its error named).
    std::fs::write(dir.path().join(".gitignore"), ".countersign/state/\n").unwrap();
    let graph = countersign(&["graph", "check", "--repo", repo]);
    assert_eq!(graph.status.code(), Some(2), "{}", stdout(&graph));
    assert!(
        stderr(&graph).contains("build/catalog-info.yaml"),
        "{}",
        stderr(&graph)
    );

    // `init --force` again does not add a second line.
    std::fs::remove_dir_all(dir.path().join("build")).unwrap();
    let again = countersign(&["init", "--repo", repo, "--force"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let ignore = std::fs::read_to_string(dir.path().join(".gitignore")).unwrap();
    assert_eq!(
        ignore
            .lines()
            .filter(|l| *l == ".countersign/state/")
            .count(),
        1,
        "{ignore}"
    );
}

/// issue 14.1: `evaluate --base` judges any base, but says on stderr when the base is not in
/// the history of a protected branch, since the server would refuse that proposal.
#[test]
fn a_base_outside_protected_history_gets_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = governed_repo(dir.path());
    let base = writer.head().unwrap();
    let hidden = writer
        .commit_on(
            "refs/heads/payments-retry",
            &base,
            [(
                "payments/src/lib.rs",
                Some("pub fn charge() { retry(); }\n"),
            )],
            "payments: retry",
            ALICE,
            TIME + 1,
        )
        .unwrap();
    let innocent = writer
        .commit_on(
            "refs/heads/innocent",
            &hidden,
            [("docs/index.md", Some("# Documentation\n"))],
            "docs",
            ALICE,
            TIME + 2,
        )
        .unwrap();
    let evaluate = |base: &str| {
        countersign(&[
            "evaluate",
            "--repo",
            repo_arg(dir.path()),
            "--base",
            base,
            "--head",
            innocent.as_str(),
            "--author",
            "agent:fixbot",
            "--format",
            "json",
        ])
    };
    let out = evaluate(hidden.as_str());
    assert_eq!(json(&out)["tier"], "auto_merge");
    assert!(
        stderr(&out).contains(&format!(
            "warning: base {hidden} is not in the history of a protected branch (main)"
        )) && stderr(&out).contains("the server would refuse a proposal with this base"),
        "{}",
        stderr(&out)
    );
    let out = evaluate(base.as_str());
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

/// Issue 14 point 6 through the binary: a change to a test helper plans the tests of the
/// critical crate that dev-depends on it, but is not judged as a change to that crate (no
/// payments surface, no change control); `graph check` shows the edge kind.
#[test]
fn a_dev_dependency_plans_the_tests_that_use_it_without_raising_the_tier() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = CATALOG.to_string()
        + "---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: testkit\n  annotations:\n    countersign.dev/criticality: low\n    countersign.dev/paths: /testkit/**\n    countersign.dev/suites: testkit-unit\nspec:\n  type: library\n  owner: team-shop\n";
    let mut writer = RepoWriter::init(dir.path()).unwrap();
    writer
        .commit(
            [
                ("catalog-info.yaml", Some(catalog.as_str())),
                (
                    "Cargo.toml",
                    Some("[workspace]\nmembers = [\"payments\", \"testkit\"]\n"),
                ),
                (
                    "payments/Cargo.toml",
                    Some(
                        "[package]\nname = \"payments\"\n[dev-dependencies]\ntestkit = { path = \"../testkit\" }\n",
                    ),
                ),
                ("payments/src/lib.rs", Some("pub fn charge() {}\n")),
                (
                    "testkit/Cargo.toml",
                    Some(
                        "[package]\nname = \"testkit\"\n[dependencies]\npayments = { path = \"../payments\" }\n",
                    ),
                ),
                ("testkit/src/lib.rs", Some("pub fn fake_card() {}\n")),
            ],
            "base",
            ALICE,
            TIME,
        )
        .unwrap();
    let base = writer.head().unwrap();
    let head = writer
        .commit(
            [(
                "testkit/src/lib.rs",
                Some("pub fn fake_card() -> u8 { 4 }\n"),
            )],
            "a better fake card",
            ALICE,
            TIME + 1,
        )
        .unwrap();
    let repo = repo_arg(dir.path());
    let report = json(&countersign(&[
        "evaluate",
        "--repo",
        repo,
        "--base",
        base.as_str(),
        "--head",
        head.as_str(),
        "--author",
        "human:alice",
        "--format",
        "json",
    ]));
    // A person's change to a low library: payments' criticality and surface stay out of it
    // (as a runtime dependent, payments would make this change control).
    assert_eq!(report["tier"], "auto_merge", "{report:#}");
    assert_eq!(report["impact"]["blast_radius"], serde_json::json!([]));
    assert_eq!(report["impact"]["surfaces_reached"], serde_json::json!([]));
    let suites: Vec<&str> = report["validation_plan"]["suites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["suite"].as_str().unwrap())
        .collect();
    assert_eq!(suites, ["payments-contract", "testkit-unit"], "{report:#}");
    let why = report["validation_plan"]["suites"][0]["why"].to_string();
    assert!(why.contains("dev-dependency"), "{why}");

    // The graph shows both kinds; testkit -> payments -dev-> testkit is no cycle.
    let graph = countersign(&[
        "graph", "show", "--repo", repo, "--rev", "HEAD", "--format", "json",
    ]);
    let edges = json(&graph)["edges"].to_string();
    assert!(
        edges.contains("dev-depends-on") && edges.contains("depends-on"),
        "{edges}"
    );
    let check = countersign(&["graph", "check", "--repo", repo, "--rev", "HEAD"]);
    // It ran (the catalog's docs and shop globs match no file here: dead globs).
    assert!(
        stdout(&check).contains("matches no tracked file"),
        "{}",
        stdout(&check)
    );
    assert!(
        !stdout(&check).contains("cycle"),
        "testkit -> payments -dev-> testkit is no cycle: {}",
        stdout(&check)
    );
}

/// Issue 14 point 7 through the binary: a catalog error names the line of the offending
/// key, in the second document of a file as in the first.
#[test]
fn a_catalog_error_names_the_line_of_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = CATALOG.replace(
        "    countersign.dev/surfaces: payments\n",
        "    countersign.dev/surfaces: payment\n",
    );
    let line = catalog
        .lines()
        .position(|l| l.contains("surfaces: payment"))
        .unwrap()
        + 1;
    let mut writer = RepoWriter::init(dir.path()).unwrap();
    writer
        .commit(
            [("catalog-info.yaml", Some(catalog.as_str()))],
            "base",
            ALICE,
            TIME,
        )
        .unwrap();
    let check = countersign(&[
        "graph",
        "check",
        "--repo",
        repo_arg(dir.path()),
        "--rev",
        "HEAD",
    ]);
    assert_eq!(check.status.code(), Some(2), "{}", stderr(&check));
    assert!(
        stderr(&check).contains(&format!(
            "catalog-info.yaml:{line}: annotation `countersign.dev/surfaces`: unknown surface `payment`"
        )),
        "{}",
        stderr(&check)
    );
}

/// Issue 23: a signing key that does not parse is a `graph check` error naming the catalog
/// file, the annotation's line and the annotation, for SSH and OpenPGP keys alike; good keys
/// are no finding.
#[test]
fn graph_check_names_a_signing_key_that_does_not_parse() {
    let good_openpgp = include_str!("../../countersign-decide/tests/vectors/openpgp/rob.asc");
    let indented =
        |text: &str| -> String { text.lines().map(|l| format!("      {l}\n")).collect() };
    let catalog = CATALOG
        .replace(
            "  name: alice\nspec:\n",
            &format!(
                "  name: alice\n  annotations:\n    countersign.dev/ssh-signing-keys: |\n      # laptop\n      ssh-ed25519 AAAAnot-base64 alice\n    countersign.dev/openpgp-signing-keys: |\n{}spec:\n",
                indented(good_openpgp)
            ),
        )
        .replace(
            "  name: bob\nspec:\n",
            "  name: bob\n  annotations:\n    countersign.dev/openpgp-signing-keys: |\n      -----BEGIN PGP PUBLIC KEY BLOCK-----\n\n      mDMEgarbled\n      -----END PGP PUBLIC KEY BLOCK-----\nspec:\n",
        );
    let line_of = |needle: &str| catalog.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let (ssh_line, bob_line) = (
        line_of("countersign.dev/ssh-signing-keys"),
        catalog
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains("countersign.dev/openpgp-signing-keys"))
            .nth(1)
            .unwrap()
            .0
            + 1,
    );
    let dir = tempfile::tempdir().unwrap();
    let mut writer = RepoWriter::init(dir.path()).unwrap();
    writer
        .commit(
            [
                ("catalog-info.yaml", Some(catalog.as_str())),
                ("docs/index.md", Some("# Docs\n")),
                ("payments/src/lib.rs", Some("pub fn charge() {}\n")),
                ("shop/index.html", Some("<html></html>\n")),
            ],
            "base",
            ALICE,
            TIME,
        )
        .unwrap();
    let repo = repo_arg(dir.path());
    {
        let check = countersign(&["graph", "check", "--repo", repo, "--rev", "HEAD"]);
        let out = stdout(&check);
        assert_eq!(check.status.code(), Some(1), "{out}{}", stderr(&check));
        assert!(
            out.contains(&format!(
                "catalog-info.yaml:{ssh_line}: error: User alice: `countersign.dev/ssh-signing-keys`: `ssh-ed25519 AAAAnot-base64 alice` is not an OpenSSH public key"
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "catalog-info.yaml:{bob_line}: error: User bob: `countersign.dev/openpgp-signing-keys`: block 1 is not an OpenPGP public key"
            )),
            "{out}"
        );
        // Alice's OpenPGP key is good: only her SSH annotation is reported.
        assert_eq!(out.matches("User alice").count(), 1, "{out}");
    }
}

/// `evaluate --what-if`: a docs fix riding with a payments change learns that without the
/// payments file it auto-merges, in JSON and in text, and the promise holds when the docs
/// fix is evaluated alone.
#[test]
fn what_if_names_the_file_to_split_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = governed_repo(dir.path());
    let base = writer.head().unwrap();
    let head = writer
        .commit(
            [
                ("docs/index.md", Some("# Documentation\n")),
                ("payments/src/lib.rs", Some("pub fn charge() { todo() }\n")),
            ],
            "both",
            ALICE,
            TIME + 1,
        )
        .unwrap();
    let args = |format: &'static str| {
        vec![
            "evaluate",
            "--repo",
            repo_arg(dir.path()),
            "--base",
            base.as_str(),
            "--head",
            head.as_str(),
            "--author",
            "agent:fixbot",
            "--what-if",
            "--format",
            format,
        ]
    };
    let report = json(&countersign(&args("json")));
    assert_eq!(report["tier"], "change_control", "{report:#}");
    let what_if = &report["what_if"];
    assert_eq!(what_if["targets"][0]["tier"], "auto_merge", "{what_if:#}");
    let removal = &what_if["targets"][0]["removals"];
    assert_eq!(removal["outcome"], "found");
    assert_eq!(
        removal["suggestions"][0]["without"],
        serde_json::json!(["payments/src/lib.rs"])
    );
    assert_eq!(removal["suggestions"][0]["tier"], "auto_merge");
    assert_eq!(removal["suggestions"][0]["minimal"], true);
    assert!(what_if["search"].get("cut").is_none(), "{what_if:#}");
    let text = String::from_utf8(countersign(&args("text")).stdout).unwrap();
    assert!(
        text.contains("without payments/src/lib.rs: auto_merge"),
        "{text}"
    );
    // Without --what-if the report has no such section.
    let plain = json(&countersign(&[
        "evaluate",
        "--repo",
        repo_arg(dir.path()),
        "--base",
        base.as_str(),
        "--head",
        head.as_str(),
        "--author",
        "agent:fixbot",
        "--format",
        "json",
    ]));
    assert!(plain.get("what_if").is_none());
}
