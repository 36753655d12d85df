//! `check` over policy files: parse errors, schema errors and countersign's own rules,
//! each with file:line:col; and packs built from custom files.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use countersign_policy::{PolicyPack, check, default_files};

fn diagnostics(files: &[(&str, &str)]) -> String {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
        .collect();
    check(&files).iter().map(|d| format!("{d}\n")).collect()
}

#[test]
fn default_pack_is_clean() {
    let files: Vec<(&str, &str)> = default_files();
    assert_eq!(diagnostics(&files), "");
}

#[test]
fn parse_error_has_position() {
    let text = r#"@id("broken")
@reason("x")
permit (
  principal,
  action == Countersign::Action::"auto_merge",
  resource
)
when { context.unmapped_files > };
"#;
    insta::assert_snapshot!(diagnostics(&[("bad.cedar", text)]), @"bad.cedar:8:33: error: unexpected token `}`");
}

#[test]
fn schema_errors_have_positions() {
    let text = r#"@id("typo")
@reason("misspelt attribute")
forbid (principal, action, resource)
when { context.unmaped_files > 0 };

@id("wrong-type")
@reason("compares a string with a number")
forbid (principal, action, resource)
when {
  context.author_kind > 1
};

@id("unknown-action")
@reason("no such tier")
permit (principal, action == Countersign::Action::"yolo", resource);
"#;
    insta::assert_snapshot!(diagnostics(&[("types.cedar", text)]));
}

#[test]
fn annotations_are_required_and_ids_unique() {
    let a = r#"@id("same")
@reason("first")
permit (principal, action == Countersign::Action::"single_approver", resource);
"#;
    let b = r#"// comment line
@id("same")
@reason("second")
permit (principal, action == Countersign::Action::"single_approver", resource);

@reason("no id")
permit (principal, action == Countersign::Action::"single_approver", resource);

@id("no-reason")
permit (principal, action == Countersign::Action::"single_approver", resource);
"#;
    insta::assert_snapshot!(diagnostics(&[("a.cedar", a), ("b.cedar", b)]), @r#"
    b.cedar:2:1: error: duplicate policy id "same": first defined at a.cedar:1:1
    b.cedar:6:1: error: policy has no @id("...") annotation: every policy needs a unique id so decisions can name it
    b.cedar:9:1: error: policy has no @reason("...") annotation: every policy needs a plain-language reason for explanations
    "#);
}

#[test]
fn invalid_pack_is_refused_and_versions_ignore_order() {
    let err = PolicyPack::from_files(vec![(
        "bad.cedar".to_owned(),
        "permit (principal, action, resource) when {".to_owned(),
    )])
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid policy pack (1 error(s)): bad.cedar:1:"),
        "{err}"
    );

    let mut files: Vec<(String, String)> = default_files()
        .into_iter()
        .map(|(p, t)| (p.to_owned(), t.to_owned()))
        .collect();
    let forward = PolicyPack::from_files(files.clone()).unwrap();
    files.reverse();
    let backward = PolicyPack::from_files(files.clone()).unwrap();
    assert_eq!(forward.version(), backward.version());
    assert_eq!(forward.version(), PolicyPack::default_pack().version());
    assert_eq!(forward.version().len(), 64);
    files[0].1.push('\n');
    assert_ne!(
        PolicyPack::from_files(files).unwrap().version(),
        forward.version()
    );
}

/// The examples in docs/policy.md are valid policies.
#[test]
fn documented_examples_check_clean() {
    let doc = include_str!("../../../docs/policy.md");
    let examples: Vec<(String, String)> = doc
        .split("```cedar\n")
        .skip(1)
        .enumerate()
        .map(|(i, block)| {
            let text = block.split("```").next().unwrap();
            (format!("example{i}.cedar"), text.to_owned())
        })
        .collect();
    // Three policy examples and one properties file (`policy verify --properties`).
    assert_eq!(examples.len(), 4);
    let mut files: Vec<(String, String)> = default_files()
        .into_iter()
        .map(|(p, t)| (p.to_owned(), t.to_owned()))
        .collect();
    files.extend(examples);
    assert_eq!(check(&files), []);
}
