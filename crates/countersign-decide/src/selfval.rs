//! Self-validated suites: planned suites whose own defining files the change edits.
//!
//! Signed evidence is bound to the head commit, and the head commit also holds the tests
//! that produced it: a change that deletes or weakens a failing test gets an honest "all
//! passed". A planned suite whose defining files (test sources, fixtures, its command's
//! script) the change adds, edits, deletes or renames is *self-validated*: its evidence
//! still says what ran, but never earns an automated tier unless the base's version of the
//! suite also passed against the head (docs/policy.md, "Self-validated suites").
//!
//! A suite's defining files are, in order of precedence:
//! - the globs of its `[suites.NAME] paths` when it lists any (they replace the defaults);
//! - otherwise the test files, by the usual conventions of each ecosystem
//!   ([`is_test_file`]), among the changed files of the nodes that name the suite;
//! - and always, any file its `command` names (`./scripts/test.sh`), relative to its
//!   `workdir`.
//!
//! Rust's `#[cfg(test)]` modules live inside the code they test and cannot be told apart by
//! path: a crate's `src/` changes are ordinary changes, and a test module edited there is
//! judged as code (its suite still runs; only files under `tests/` and `benches/` make the
//! suite self-validated). A pure function of the changed paths and the base's rules, so a
//! replay derives the same set.

use std::collections::{BTreeMap, BTreeSet};

use countersign_evidence::ValidationPlan;
use countersign_graph::Impact;
use countersign_graph::repo_path::{glob, join};
use countersign_repo::Config;

/// The planned suites the change self-validates, each with the changed files that define
/// it, sorted.
pub fn self_validated(
    plan: &ValidationPlan,
    impact: &Impact,
    config: &Config,
    suites_of: impl Fn(&countersign_graph::EntityRef) -> Vec<String>,
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for planned in &plan.suites {
        let name = &planned.suite;
        let defined = config.suites.get(name);
        let explicit = defined.map(|s| s.paths.as_slice()).unwrap_or_default();
        let mut files = BTreeSet::new();
        if explicit.is_empty() {
            // The conventional test files of the nodes that name this suite.
            for touched in &impact.touched {
                if suites_of(&touched.entity).iter().any(|s| s == name) {
                    files.extend(touched.paths.iter().filter(|p| is_test_file(p)).cloned());
                }
            }
        } else {
            // Config globs were validated when the config was read; one that still fails to
            // compile here matches every changed file (the strict direction).
            let set = explicit
                .iter()
                .map(|g| glob(g))
                .try_fold(globset::GlobSetBuilder::new(), |mut b, g| {
                    g.map(|g| {
                        b.add(g);
                        b
                    })
                })
                .and_then(|b| b.build());
            files.extend(
                impact
                    .changed_paths
                    .iter()
                    .filter(|p| set.as_ref().map_or(true, |set| set.is_match(p.as_str())))
                    .cloned(),
            );
        }
        if let Some(suite) = defined {
            let named: BTreeSet<String> = suite
                .command
                .iter()
                .filter_map(|arg| command_file(&suite.workdir, arg))
                .collect();
            files.extend(
                impact
                    .changed_paths
                    .iter()
                    .filter(|p| named.contains(p.as_str()))
                    .cloned(),
            );
        }
        if !files.is_empty() {
            out.entry(name.clone()).or_default().extend(files);
        }
    }
    out.into_iter()
        .map(|(suite, files)| (suite, files.into_iter().collect()))
        .collect()
}

/// The repository path a command argument names when it is a relative file path
/// (`./run-tests.sh`, `scripts/test.sh`): an argument with a `/` that is not an option, a
/// URL or an absolute path. Shell snippets (`sh -c "..."`) are not parsed: list such a
/// suite's files in `paths`.
fn command_file(workdir: &str, arg: &str) -> Option<String> {
    if arg.starts_with('-')
        || arg.starts_with('/')
        || !arg.contains('/')
        || arg.contains("://")
        || arg.contains(char::is_whitespace)
    {
        return None;
    }
    // Through `join` from the root, so `.` and `..` in the workdir resolve too.
    join("", &format!("{workdir}/{arg}")).filter(|p| !p.is_empty() && !p.ends_with('/'))
}

/// Directories whose files are tests, fixtures or benchmarks in the common ecosystems
/// (Cargo's `tests/` and `benches/`, Python's `tests/`, Jest's `__tests__/`, snapshot and
/// fixture directories).
const TEST_DIRS: &[&str] = &[
    "tests",
    "test",
    "__tests__",
    "__mocks__",
    "__snapshots__",
    "spec",
    "benches",
    "testdata",
    "fixtures",
];

/// Files that configure a test runner: editing one can skip or weaken every test.
const TEST_CONFIG_FILES: &[&str] = &[
    "conftest.py",
    "pytest.ini",
    "tox.ini",
    "noxfile.py",
    ".mocharc.js",
    ".mocharc.json",
    ".mocharc.yml",
    ".nycrc",
    "karma.conf.js",
    "setupTests.js",
    "setupTests.ts",
    "nextest.toml",
];

/// Whether `path` is a test file by the conventions of Cargo, npm, Go and Python:
/// - a directory named in [`TEST_DIRS`] anywhere on the path;
/// - Go `*_test.go`; Python `test_*.py`, `*_test.py`; JavaScript/TypeScript `*.test.*`,
///   `*.spec.*`; Ruby `*_spec.rb`;
/// - a test runner's configuration (`conftest.py`, `jest.config.*`, `vitest.config.*`, ...).
pub fn is_test_file(path: &str) -> bool {
    let mut parts = path.split('/').collect::<Vec<_>>();
    let Some(name) = parts.pop() else {
        return false;
    };
    if parts.iter().any(|dir| TEST_DIRS.contains(dir)) {
        return true;
    }
    if TEST_CONFIG_FILES.contains(&name)
        || name.starts_with("jest.config.")
        || name.starts_with("vitest.config.")
        || name.starts_with("playwright.config.")
        || name.starts_with("cypress.config.")
    {
        return true;
    }
    if name.ends_with("_test.go") || name.ends_with("_spec.rb") {
        return true;
    }
    if let Some(stem) = name.strip_suffix(".py") {
        return stem.starts_with("test_") || stem.ends_with("_test");
    }
    // `a.test.ts`, `a.spec.jsx`: a `.test` or `.spec` part before the extension.
    let pieces: Vec<&str> = name.split('.').collect();
    pieces.len() >= 3
        && pieces[1..pieces.len() - 1]
            .iter()
            .any(|p| *p == "test" || *p == "spec")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_files_by_convention() {
        for yes in [
            "crates/pay/tests/refund.rs",
            "crates/pay/benches/b.rs",
            "services/cart/__tests__/cart.js",
            "services/cart/src/cart.test.ts",
            "web/app.spec.jsx",
            "pkg/ledger/ledger_test.go",
            "py/tests/helpers.py",
            "py/pkg/test_refund.py",
            "py/pkg/refund_test.py",
            "py/conftest.py",
            "web/jest.config.js",
            "web/vitest.config.ts",
            "spec/models/user_spec.rb",
            "svc/testdata/golden.json",
        ] {
            assert!(is_test_file(yes), "{yes}");
        }
        for no in [
            "crates/pay/src/lib.rs",
            "crates/pay/src/testing.rs",
            "services/cart/src/cart.ts",
            "pkg/ledger/ledger.go",
            "py/pkg/refund.py",
            "py/pkg/contest.py",
            "docs/test.md",
            "latest/x.rs",
            "test.py.bak",
        ] {
            assert!(!is_test_file(no), "{no}");
        }
    }

    #[test]
    fn command_files() {
        assert_eq!(
            command_file("services/pay", "./scripts/test.sh").as_deref(),
            Some("services/pay/scripts/test.sh")
        );
        assert_eq!(
            command_file(".", "ci/run-tests").as_deref(),
            Some("ci/run-tests")
        );
        for not in [
            "cargo",
            "-p",
            "/usr/bin/env",
            "https://x/y",
            "a b/c",
            "../../x/y",
        ] {
            assert_eq!(command_file("svc", not), None, "{not}");
        }
    }
}
