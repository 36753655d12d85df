//! CODEOWNERS checked against code it does not share: the pattern vectors of hmarr/codeowners
//! (the Go matcher GitHub-compatible tools use), GitHub's documented example file end to end,
//! and a differential property test against PyPI `codeowners` (a Python matcher) over
//! generated files and paths. Also the limits GitHub applies and the ones countersign adds.
//!
//! The differential test needs `python3` with `codeowners` (`pip install codeowners`, done by
//! `.ci/run`); without it the test prints why it skipped, except under `CI=true`, where a
//! missing interpreter is a failure.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use countersign_graph::codeowners::{
    Codeowners, MAX_FILE_BYTES, MAX_PATTERN_BYTES, MAX_WILDCARD_RULES,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn vector(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The owners of `path`, space-separated, or `-` when no line matches (as opposed to `""`,
/// a matching line without owners).
fn owners(co: &Codeowners, path: &str) -> String {
    match co.rule_for(path) {
        None => "-".to_string(),
        Some(rule) => rule
            .owners
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" "),
    }
}

#[derive(serde::Deserialize)]
struct PatternVector {
    name: String,
    pattern: String,
    paths: BTreeMap<String, bool>,
}

/// Every vector of hmarr/codeowners' `testdata/patterns.json`, one file per pattern set up as
/// issue 20 did: a default owner, then the pattern with another owner.
#[test]
fn hmarr_pattern_vectors() {
    let vectors: Vec<PatternVector> =
        serde_json::from_str(&vector("hmarr-codeowners-patterns.json")).unwrap();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for v in &vectors {
        let text = format!("* @acme/default\n{} @acme/hit\n", v.pattern);
        let (co, _) = Codeowners::parse("CODEOWNERS", &text);
        assert_eq!(
            co.rules.len(),
            2,
            "{}: pattern `{}` was not accepted",
            v.name,
            v.pattern
        );
        for (path, &expect) in &v.paths {
            checked += 1;
            let got = owners(&co, path) == "@acme/hit";
            if got != expect {
                wrong.push(format!(
                    "{}: `{}` on `{path}`: expected {expect}, got {got}",
                    v.name, v.pattern
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The whole vendored file ran, not a part of it.
    assert_eq!((vectors.len(), checked), (30, 153));
}

/// The text of GitHub's example up to and including the first line that is `last`, so each
/// documented claim is checked against the file as it stands at its example.
fn example_upto(last: &str) -> String {
    let text = vector("github-docs-example.CODEOWNERS");
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if line == last {
            return out;
        }
    }
    panic!("`{last}` is not a line of the example");
}

/// GitHub's documented example file ("About code owners"), as a whole and at each example.
#[test]
fn github_docs_example_end_to_end() {
    let text = vector("github-docs-example.CODEOWNERS");
    let (co, diagnostics) = Codeowners::parse("CODEOWNERS", &text);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    assert_eq!(co.rules.len(), 14);

    // The whole file: a later line overrides an earlier one for the paths both match.
    let whole: &[(&str, &str)] = &[
        ("README.md", "@global-owner1 @global-owner2"),
        ("src/app.js", "@js-owner"),
        ("cmd/main.go", "docs@example.com"),
        ("notes/todo.txt", "@octo-org/octocats"),
        // `**/logs` comes after `/build/logs/`.
        ("build/logs/a.log", "@octocat"),
        ("build/logs/deep/a.log", "@octocat"),
        ("scripts/logs/a.log", "@octocat"),
        ("deeply/nested/logs/a.log", "@octocat"),
        ("logs/a.log", "@octocat"),
        // `/docs/` comes after `docs/*`.
        ("docs/getting-started.md", "@doctocat"),
        ("docs/build-app/troubleshooting.md", "@doctocat"),
        // `docs/*` and `/docs/` are anchored at the root.
        ("x/docs/y.md", "@global-owner1 @global-owner2"),
        ("x/apps/y.rs", "@octocat"),
        ("scripts/deploy.sh", "@doctocat @octocat"),
        ("apps/web/index.ts", "@octocat"),
        ("apps/github.js", "@octocat"),
        // The last example gives apps/github its own owner.
        ("apps/github/index.ts", "@doctocat"),
        ("apps/github", "@doctocat"),
    ];
    for (path, expect) in whole {
        assert_eq!(owners(&co, path), *expect, "whole file, {path}");
    }

    // Each example as documented, on the file as it stands at that example.
    let at: &[(&str, &str, &str)] = &[
        (
            "*.js    @js-owner #This is an inline comment.",
            "web/app.js",
            "@js-owner",
        ),
        (
            "*.js    @js-owner #This is an inline comment.",
            "web/app.ts",
            "@global-owner1 @global-owner2",
        ),
        ("/build/logs/ @doctocat", "build/logs/a.log", "@doctocat"),
        (
            "/build/logs/ @doctocat",
            "build/logs/x/y/a.log",
            "@doctocat",
        ),
        (
            "/build/logs/ @doctocat",
            "x/build/logs/a.log",
            "@global-owner1 @global-owner2",
        ),
        (
            "docs/*  docs@example.com",
            "docs/getting-started.md",
            "docs@example.com",
        ),
        // Not further nested files.
        (
            "docs/*  docs@example.com",
            "docs/build-app/troubleshooting.md",
            "@global-owner1 @global-owner2",
        ),
        ("apps/ @octocat", "apps/a.rs", "@octocat"),
        ("apps/ @octocat", "deep/nested/apps/x/y.rs", "@octocat"),
        (
            "/docs/ @doctocat",
            "docs/build-app/troubleshooting.md",
            "@doctocat",
        ),
        (
            "/scripts/ @doctocat @octocat",
            "scripts/a/b.sh",
            "@doctocat @octocat",
        ),
        ("**/logs @octocat", "build/logs/a.log", "@octocat"),
        ("**/logs @octocat", "scripts/logs/a.log", "@octocat"),
        ("**/logs @octocat", "deeply/nested/logs/a.log", "@octocat"),
        // An owner-less line un-owns apps/github and everything below it.
        ("/apps/github", "apps/web/index.ts", "@octocat"),
        ("/apps/github", "apps/github/index.ts", ""),
        ("/apps/github", "apps/github/deep/x/y.ts", ""),
        ("/apps/github", "apps/github", ""),
        (
            "/apps/github @doctocat",
            "apps/github/index.ts",
            "@doctocat",
        ),
        ("/apps/github @doctocat", "apps/other/index.ts", "@octocat"),
    ];
    for (last, path, expect) in at {
        let (co, _) = Codeowners::parse("CODEOWNERS", &example_upto(last));
        assert_eq!(owners(&co, path), *expect, "up to `{last}`, {path}");
    }
}

/// The wildcard forms of issue 20: a wildcard that matches a directory owns what is inside.
#[test]
fn wildcard_matching_a_directory_owns_its_contents() {
    let cases: &[(&str, &str, bool)] = &[
        ("/services/pay*", "services/payments/src/ledger.rs", true),
        ("/services/pay*", "services/pay", true),
        ("/services/pay*", "services/other/pay.rs", false),
        ("services/pay*", "services/payments/src/ledger.rs", true),
        ("services/pay*", "x/services/payments/a.rs", false),
        ("pay*", "x/payments/src/ledger.rs", true),
        ("/pay*", "payments/src/ledger.rs", true),
        ("/pay*", "x/payments/src/ledger.rs", false),
        ("services/pa?ments", "services/payments/a/b.rs", true),
        ("p?y", "x/pay/a.rs", true),
        ("services/*/src", "services/payments/src/a/b.rs", true),
        ("services/*/src", "services/payments/test/a.rs", false),
        ("**/pay*", "a/b/payments/c.rs", true),
        (
            "services/**/led*",
            "services/payments/src/ledger/a.rs",
            true,
        ),
        // A lone `*` as the last segment does not reach below (GitHub's `docs/*`).
        ("services/*", "services/payments/a.rs", false),
        ("/*", "payments/a.rs", false),
        // A wildcard that matches a file name only still matches that file.
        ("*.rs", "a/b/c.rs", true),
        ("*.rs", "a/b/c.rs.txt", false),
    ];
    let mut wrong = Vec::new();
    for (pattern, path, expect) in cases {
        let (co, diagnostics) = Codeowners::parse("CODEOWNERS", &format!("{pattern} @a\n"));
        assert!(diagnostics.is_empty(), "{pattern}: {diagnostics:?}");
        if co.rule_for(path).is_some() != *expect {
            wrong.push(format!("`{pattern}` on `{path}`: expected {expect}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// GitHub ignores a CODEOWNERS file of 3 MB or more; so does countersign, and says so.
#[test]
fn a_file_of_three_megabytes_is_ignored() {
    let head = "* @acme/default\n";
    let pad = "# padding\n";
    let mut text = head.to_string();
    while text.len() + pad.len() < MAX_FILE_BYTES {
        text.push_str(pad);
    }
    // One byte under the limit: applied.
    text.push_str(&"#".repeat(MAX_FILE_BYTES - 1 - text.len()));
    assert_eq!(text.len(), MAX_FILE_BYTES - 1);
    let (co, diagnostics) = Codeowners::parse(".github/CODEOWNERS", &text);
    assert_eq!(owners(&co, "a.rs"), "@acme/default");
    assert!(diagnostics.is_empty(), "{diagnostics:?}");

    // At the limit: not applied, with a warning naming the file and the limit.
    text.push('#');
    let (co, diagnostics) = Codeowners::parse(".github/CODEOWNERS", &text);
    assert!(co.rules.is_empty());
    assert_eq!(owners(&co, "a.rs"), "-");
    let got: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "warning: CODEOWNERS file `.github/CODEOWNERS` is 3145728 bytes, at or over GitHub's limit of 3145728 bytes (3 MiB): GitHub does not load it, so none of its rules apply"
        ]
    );
}

/// A pattern longer than any path is refused with its file and line, before any glob is
/// built from it (a 50 MB pattern used to ask for 2 GiB).
#[test]
fn an_overlong_pattern_is_refused_with_its_line() {
    let long = "a".repeat(MAX_PATTERN_BYTES + 1);
    let text = format!(
        "* @acme/default\n{long} @acme/x\n/{} @acme/y\n",
        "b".repeat(MAX_PATTERN_BYTES - 1)
    );
    let (co, diagnostics) = Codeowners::parse("CODEOWNERS", &text);
    assert_eq!(co.rules.len(), 2, "the pattern at the limit is kept");
    assert_eq!(owners(&co, &long), "@acme/default");
    let got: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [format!(
            "CODEOWNERS:2: warning: CODEOWNERS pattern `{}…`: the pattern is 4097 bytes, over the limit of 4096 bytes; GitHub would not match it to any path countersign accepts, so the line is ignored",
            &long[..64]
        )]
    );

    // The longest pattern a file under GitHub's limit can hold (issue 24 found a 50 MB one
    // asking for 2 GiB; a file that size is ignored whole): refused, no glob built.
    let huge = format!("{} @acme/x\n", "a*".repeat((MAX_FILE_BYTES - 16) / 2));
    let (co, diagnostics) = Codeowners::parse("CODEOWNERS", &huge);
    assert!(co.rules.is_empty());
    let got: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("CODEOWNERS:1: warning: CODEOWNERS pattern `a*a*")
            && got[0].contains("over the limit of 4096 bytes"),
        "{}",
        got[0]
    );
}

/// `a\ b` is a pattern with a space, as GitHub accepts it.
#[test]
fn escaped_space_is_part_of_the_pattern() {
    let text = "* @acme/default\npath\\ with\\ spaces/ @acme/space\n/docs/a\\ b.md @acme/file\n";
    let (co, diagnostics) = Codeowners::parse("CODEOWNERS", text);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    assert_eq!(co.rules[1].pattern, "path\\ with\\ spaces/");
    assert_eq!(owners(&co, "path with spaces/a.md"), "@acme/space");
    assert_eq!(owners(&co, "x/path with spaces/y/a.md"), "@acme/space");
    assert_eq!(owners(&co, "path/a.md"), "@acme/default");
    assert_eq!(owners(&co, "docs/a b.md"), "@acme/file");
    assert_eq!(owners(&co, "docs/a"), "@acme/default");
}

/// Wildcard rules up to the limit all apply; one more and the file is not applied, with an
/// error naming the line, rather than applied in part. Rules globset answers by lookup
/// (directories, names, `*.ext`) do not count.
#[test]
fn wildcard_rules_are_bounded() {
    // `*` is a wildcard rule too: the first of the limit.
    let mut text = String::from("* @acme/default\n/apps/ @acme/apps\n*.md @acme/docs\n");
    for i in 0..MAX_WILDCARD_RULES - 1 {
        text.push_str(&format!("/s{i}/**/x*/*.rs @acme/t{i}\n"));
    }
    for i in 0..20_000 {
        text.push_str(&format!("/d{i}/ @acme/d{i}\nn{i} @acme/n{i}\n"));
    }
    let (co, diagnostics) = Codeowners::parse("CODEOWNERS", &text);
    assert!(diagnostics.is_empty(), "{:?}", diagnostics.first());
    assert_eq!(co.rules.len(), 3 + MAX_WILDCARD_RULES - 1 + 40_000);
    let last = MAX_WILDCARD_RULES - 2;
    for i in [0, 1, last / 2, last] {
        assert_eq!(
            owners(&co, &format!("s{i}/a/b/xy/lib.rs")),
            format!("@acme/t{i}")
        );
    }
    assert_eq!(owners(&co, "s0/a/b/xy/lib.ts"), "@acme/default");
    assert_eq!(owners(&co, "d19999/a/b.rs"), "@acme/d19999");
    assert_eq!(owners(&co, "x/n7/b.rs"), "@acme/n7");
    assert_eq!(owners(&co, "x/a.md"), "@acme/docs");

    text.push_str("/x*/y @acme/x\n");
    let (co, diagnostics) = Codeowners::parse("CODEOWNERS", &text);
    assert!(co.rules.is_empty());
    assert_eq!(owners(&co, "apps/a.rs"), "-");
    let got: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [format!(
            "CODEOWNERS:{}: error: CODEOWNERS file `CODEOWNERS` has more than 10000 wildcard rules (patterns with `*` or `?` other than `*.ext` or a leading `**/`), countersign's limit: it is not applied, so none of its rules apply, although GitHub would apply them",
            3 + MAX_WILDCARD_RULES - 1 + 40_000 + 1
        )]
    );
}

// ---------------------------------------------------------------------------------------
// Differential test against PyPI `codeowners`.

/// A long-lived `python3` answering one JSON request per line with the matching line of each
/// path (see `interop/codeowners_oracle.py`).
struct Oracle {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Oracle {
    fn start() -> Result<Oracle, String> {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/codeowners_oracle.py");
        let probe = Command::new("python3")
            .args(["-c", "import codeowners"])
            .output()
            .map_err(|e| format!("python3 not runnable: {e}"))?;
        if !probe.status.success() {
            return Err(format!(
                "python3 cannot import codeowners: {}",
                String::from_utf8_lossy(&probe.stderr).trim()
            ));
        }
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("python3 not runnable: {e}"))?;
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Ok(Oracle {
            child,
            stdin,
            stdout,
        })
    }

    /// For each path, the 1-based line that decides its owners, if any.
    fn lines(&mut self, text: &str, paths: &[String]) -> Vec<Option<u32>> {
        let request = serde_json::json!({ "codeowners": text, "paths": paths });
        writeln!(self.stdin, "{request}").unwrap();
        self.stdin.flush().unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("oracle said {answer:?}: {e}"))
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        // Closing stdin ends the script's loop; kill is the fallback if it is stuck.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Path and pattern segments share a small alphabet so that generated patterns often match.
const NAMES: &[&str] = &["a", "b", "ab", "ba", "foo", "a.b", "b.rs"];

fn path_segment() -> impl Strategy<Value = String> {
    proptest::sample::select(NAMES).prop_map(str::to_string)
}

fn path() -> impl Strategy<Value = String> {
    proptest::collection::vec(path_segment(), 1..5).prop_map(|s| s.join("/"))
}

/// One pattern segment: a name, a name with `*` or `?`, a lone `*`, or `**`.
fn pattern_segment() -> impl Strategy<Value = String> {
    let name = proptest::sample::select(NAMES).prop_map(str::to_string);
    prop_oneof![
        4 => name.clone(),
        1 => name.clone().prop_map(|n| format!("{n}*")),
        1 => name.clone().prop_map(|n| format!("*{n}")),
        1 => name.clone().prop_map(|n| format!("{}?", &n[..n.len() - 1])),
        1 => Just("*".to_string()),
        1 => Just("**".to_string()),
        1 => Just("*.rs".to_string()),
    ]
}

fn pattern() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        proptest::collection::vec(pattern_segment(), 1..4),
        any::<bool>(),
    )
        .prop_filter_map("a known divergence", |(lead, segments, trail)| {
            let mut p = String::new();
            if lead {
                p.push('/');
            }
            p.push_str(&segments.join("/"));
            if trail {
                p.push('/');
            }
            (!known_divergence(&p)).then_some(p)
        })
}

/// Patterns on which PyPI `codeowners` 0.9 is known to disagree with GitHub's documented
/// rules and with hmarr/codeowners' vectors; each is left out of the differential test
/// with its reason.
///
/// Not generated at all: `[ ]` (the Python matcher implements character classes, which
/// GitHub documents as not working), `!` and a leading `\#` (GitHub documents both as not
/// working; countersign skips such lines), `#` (comments), `***` and empty segments (skipped
/// and reported here), and spaces: the Python matcher replaces a space, in a path or an
/// escaped one in a pattern, with twenty `/` before matching, so `?` matches the `x` of
/// `x y` and `a\ b` becomes anchored at the root. Escaped spaces are covered by
/// `escaped_space_is_part_of_the_pattern` instead.
fn known_divergence(pattern: &str) -> bool {
    // `**/` at the end: the Python matcher asks for one more `/` after what `**` matched, so
    // `foo/**/` does not own `foo/bar`; hmarr/codeowners' vector "middle double-asterisk
    // wildcard with trailing slash" says it does.
    pattern.ends_with("**/")
}

#[test]
fn differential_against_pypi_codeowners() {
    let oracle = match Oracle::start() {
        Ok(o) => o,
        Err(why) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipped: {why} (pip install codeowners; .ci/run does)");
            return;
        }
        Err(why) => panic!("{why}; .ci/run installs it with pip"),
    };
    let oracle = RefCell::new(oracle);
    let case = (
        proptest::collection::vec(pattern(), 1..6),
        proptest::collection::vec(path(), 1..8),
    );
    let mut runner = TestRunner::new(Config {
        cases: 2_000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&case, |(patterns, paths)| {
            let text: String = patterns
                .iter()
                .enumerate()
                .map(|(i, p)| format!("{p} @o{i}\n"))
                .collect();
            let (co, diagnostics) = Codeowners::parse("CODEOWNERS", &text);
            prop_assert!(diagnostics.is_empty(), "{:?}", diagnostics);
            let expect = oracle.borrow_mut().lines(&text, &paths);
            for (path, expect) in paths.iter().zip(expect) {
                let got = co.rule_for(path).map(|r| r.line);
                prop_assert_eq!(got, expect, "CODEOWNERS:\n{}path {:?}", text, path);
            }
            Ok(())
        })
        .unwrap();
}
