//! Black-box tests of how the rules are read: a rule file an agent adds is an edit of the
//! rules, files that run at build time are a surface, and a dead glob is an error. The real
//! binary against repositories written with `RepoWriter`.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::*;

use std::path::Path;

use countersign_repo::{CommitId, RepoWriter};
use serde_json::Value;

/// A team of two, a low docs site and a critical payments service whose code is under
/// `services/payments/src/` (its descriptor sits in `services/payments/`).
const CATALOG: &str = r#"apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: payments-team
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
  memberOf: [payments-team]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: bob
spec:
  memberOf: [payments-team]
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
  owner: payments-team
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: web
  annotations:
    countersign.dev/criticality: low
    countersign.dev/paths: /web/**
spec:
  type: website
  owner: payments-team
"#;

const PAYMENTS: &str = r#"apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: payments
  annotations:
    countersign.dev/criticality: low
    countersign.dev/paths: src/**
spec:
  type: service
  owner: payments-team
"#;

/// mallory, declared by the agent as a member of the payments team.
const MALLORY: &str = r#"apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: mallory
spec:
  memberOf: [payments-team]
"#;

fn repo(dir: &Path, extra: &[(&str, &str)]) -> RepoWriter {
    let mut writer = RepoWriter::init(dir).unwrap();
    let mut files: Vec<(&str, Option<&str>)> = vec![
        ("catalog-info.yaml", Some(CATALOG)),
        ("services/payments/catalog-info.yaml", Some(PAYMENTS)),
        ("services/payments/src/lib.rs", Some("pub fn charge() {}\n")),
        ("docs/index.md", Some("# Docs\n")),
        ("web/index.html", Some("<html></html>\n")),
        ("CODEOWNERS", Some("* @acme/payments-team\n")),
    ];
    files.extend(extra.iter().map(|(p, c)| (*p, Some(*c))));
    writer.commit(files, "base", ALICE, TIME).unwrap();
    writer
}

fn evaluate(dir: &Path, base: &CommitId, head: &CommitId, author: &str) -> Value {
    json(&countersign(&[
        "evaluate",
        "--repo",
        dir.to_str().unwrap(),
        "--base",
        base.as_str(),
        "--head",
        head.as_str(),
        "--author",
        author,
        "--format",
        "json",
    ]))
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

/// Adds `files` on top of the base as one commit and judges it for an agent.
fn agent_adds(files: &[(&str, &str)]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = repo(dir.path(), &[]);
    let base = writer.head().unwrap();
    let head = writer
        .commit(
            files.iter().map(|(p, c)| (*p, Some(*c))),
            "add",
            ALICE,
            TIME + 1,
        )
        .unwrap();
    evaluate(dir.path(), &base, &head, "agent:fixbot")
}

#[test]
fn an_agent_adding_a_catalog_user_needs_change_control() {
    let report = agent_adds(&[("tools/x/catalog-info.yaml", MALLORY)]);
    assert_eq!(report["tier"], "change_control", "{report:#}");
    assert_eq!(
        strings(&report["impact"]["governance_paths"]),
        ["tools/x/catalog-info.yaml"]
    );
    assert!(strings(&report["impact"]["surfaces_touched"]).contains(&"governance"));
}

#[test]
fn an_agent_adding_a_codeowners_file_github_reads_first_needs_change_control() {
    let report = agent_adds(&[(".github/CODEOWNERS", "* @mallory\n")]);
    assert_eq!(report["tier"], "change_control", "{report:#}");
    assert_eq!(
        strings(&report["impact"]["governance_paths"]),
        [".github/CODEOWNERS"]
    );
    // docs/CODEOWNERS is read only when neither of the others exists: still a rule file.
    let report = agent_adds(&[("docs/CODEOWNERS", "* @mallory\n")]);
    assert_eq!(report["tier"], "change_control", "{report:#}");
}

#[test]
fn an_agent_adding_the_target_of_a_location_needs_change_control() {
    let location = "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: people\nspec:\n  targets: [./people/*.yaml]\n";
    let dir = tempfile::tempdir().unwrap();
    let mut writer = repo(dir.path(), &[("catalog/locations.yaml", location)]);
    // The Location is not itself a catalog file unless the globs say so: point at it.
    writer
        .commit(
            [
                ("catalog-info.yaml", Some(format!("{CATALOG}---\napiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: more\nspec:\n  target: ./catalog/locations.yaml\n").as_str())),
            ],
            "locate",
            ALICE,
            TIME + 1,
        )
        .unwrap();
    let base = writer.head().unwrap();
    let head = writer
        .commit(
            [("catalog/people/mallory.yaml", Some(MALLORY))],
            "add",
            ALICE,
            TIME + 2,
        )
        .unwrap();
    let report = evaluate(dir.path(), &base, &head, "agent:fixbot");
    assert_eq!(report["tier"], "change_control", "{report:#}");
    assert_eq!(
        strings(&report["impact"]["governance_paths"]),
        ["catalog/people/mallory.yaml"]
    );
}

/// Edits `files` on top of the base as one commit and judges it for `author`.
fn change_by(author: &str, files: &[(&str, &str)]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = repo(
        dir.path(),
        &[("services/payments/build.rs", "fn main() {}\n")],
    );
    let base = writer.head().unwrap();
    let head = writer
        .commit(
            files.iter().map(|(p, c)| (*p, Some(*c))),
            "edit",
            ALICE,
            TIME + 1,
        )
        .unwrap();
    evaluate(dir.path(), &base, &head, author)
}

#[test]
fn an_agent_editing_a_build_script_outside_the_component_paths_is_not_automated() {
    let report = change_by(
        "agent:fixbot",
        &[("services/payments/build.rs", "fn main() { evil() }\n")],
    );
    assert_eq!(report["automated"], false, "{report:#}");
    assert_eq!(report["tier"], "single_approver", "{report:#}");
    // Outside the component's `paths`, inside its descriptor's directory: still payments'.
    assert_eq!(
        report["impact"]["touched"][0]["node"],
        "component:default/payments"
    );
    assert!(strings(&report["impact"]["unmapped"]).is_empty());
    assert!(strings(&report["impact"]["surfaces_touched"]).contains(&"build"));
    let raised: Vec<&str> = report["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(raised.contains(&"agent-edits-build"), "{raised:?}");
    // A person's build-script change is reviewed like other code: the pack decides (the
    // default pack notifies the owners of a change touching any surface).
    let report = change_by(
        "human:alice",
        &[("services/payments/build.rs", "fn main() { evil() }\n")],
    );
    assert_eq!(report["tier"], "notify_and_proceed", "{report:#}");
}

#[test]
fn files_that_run_at_build_time_are_the_build_surface_for_an_agent() {
    for path in [
        ".cargo/config.toml",
        "rust-toolchain.toml",
        ".npmrc",
        "web/.yarnrc.yml",
        "tools/setup.py",
        "tests/conftest.py",
        "Makefile",
        "mk/rules.mk",
        "web/Dockerfile",
    ] {
        let report = change_by("agent:fixbot", &[(path, "x\n")]);
        assert_eq!(report["automated"], false, "{path}: {report:#}");
        assert!(
            strings(&report["impact"]["surfaces_touched"]).contains(&"build"),
            "{path}: {report:#}"
        );
    }
    // A dependency bump in package.json is not a build file.
    let report = change_by("agent:fixbot", &[("web/package.json", "{}\n")]);
    assert!(!strings(&report["impact"]["surfaces_touched"]).contains(&"build"));
}

#[test]
fn an_agent_changing_an_unmapped_file_needs_one_of_its_codeowners() {
    let report = change_by("agent:fixbot", &[("scratch/notes.txt", "hi\n")]);
    assert_eq!(
        strings(&report["impact"]["unmapped"]),
        ["scratch/notes.txt"]
    );
    assert_eq!(report["tier"], "single_approver", "{report:#}");
    let requirements = report["approvers"]["requirements"].as_array().unwrap();
    assert_eq!(requirements.len(), 1, "{requirements:?}");
    assert_eq!(requirements[0]["subject"], "unmapped files");
    assert_eq!(
        strings(&requirements[0]["owners"]),
        ["group:default/payments-team"]
    );
    // A person's unmapped file still only never auto-merges.
    let report = change_by("human:alice", &[("scratch/notes.txt", "hi\n")]);
    assert_eq!(report["tier"], "notify_and_proceed", "{report:#}");
}

/// A central catalog in `catalog/` that writes a glob meant from the root.
const CENTRAL: &str = r#"apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: billing
  annotations:
    countersign.dev/criticality: critical
    countersign.dev/paths: services/billing/**
spec:
  type: service
  owner: payments-team
"#;

#[test]
fn a_glob_that_matches_no_file_fails_graph_check_and_is_listed_by_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = repo(
        dir.path(),
        &[
            ("catalog/system.yaml", CENTRAL),
            (
                "countersign.toml",
                "[graph]\ncatalog = [\"**/catalog-info.yaml\", \"catalog/*.yaml\"]\n",
            ),
            ("services/billing/src/lib.rs", "pub fn bill() {}\n"),
        ],
    );
    let base = writer.head().unwrap();
    let check = countersign(&[
        "graph",
        "check",
        "--repo",
        dir.path().to_str().unwrap(),
        "--rev",
        base.as_str(),
    ]);
    assert!(!check.status.success(), "{}", stdout(&check));
    let text = format!("{}{}", stdout(&check), stderr(&check));
    for expected in [
        "catalog/system.yaml:1",
        "component:default/billing",
        "`catalog/services/billing/**`",
        "did you mean /services/billing/**?",
    ] {
        assert!(text.contains(expected), "{expected} not in {text}");
    }
    let head = writer
        .commit(
            [(
                "services/billing/src/lib.rs",
                Some("pub fn bill() { twice() }\n"),
            )],
            "edit",
            ALICE,
            TIME + 1,
        )
        .unwrap();
    let output = countersign(&[
        "evaluate",
        "--repo",
        dir.path().to_str().unwrap(),
        "--base",
        base.as_str(),
        "--head",
        head.as_str(),
        "--author",
        "agent:fixbot",
        "--format",
        "json",
    ]);
    assert!(
        stderr(&output).contains("warning: catalog/system.yaml:1: component:default/billing"),
        "{}",
        stderr(&output)
    );
    let report = json(&output);
    assert_eq!(
        report["dead_globs"],
        serde_json::json!([{
            "entity": "component:default/billing",
            "file": "catalog/system.yaml",
            "line": 1,
            "glob": "catalog/services/billing/**",
            "did_you_mean": "/services/billing/**",
        }])
    );
    // The billing code is unmapped, so an agent's change to it needs one of its owners.
    assert_eq!(report["tier"], "single_approver", "{report:#}");
}

#[test]
fn a_dependency_bump_is_code_but_says_which_edges_it_adds() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = repo(
        dir.path(),
        &[
            (
                "Cargo.toml",
                "[workspace]\nmembers = [\"libs/a\", \"libs/b\"]\n",
            ),
            ("libs/a/Cargo.toml", "[package]\nname = \"a\"\n"),
            ("libs/b/Cargo.toml", "[package]\nname = \"b\"\n"),
        ],
    );
    let base = writer.head().unwrap();
    let head = writer
        .commit(
            [(
                "libs/a/Cargo.toml",
                Some("[package]\nname = \"a\"\n[dependencies]\nb = { path = \"../b\" }\n"),
            )],
            "bump",
            ALICE,
            TIME + 1,
        )
        .unwrap();
    let report = evaluate(dir.path(), &base, &head, "agent:fixbot");
    assert!(strings(&report["impact"]["governance_paths"]).is_empty());
    assert_ne!(report["tier"], "change_control", "{report:#}");
    assert_eq!(
        report["graph_change"]["edges_added"],
        serde_json::json!(["component:default/a depends-on component:default/b"])
    );
}
