//! `countersign hook pre-receive`: the git hook that refuses pushes of unauthorized commits to
//! protected branches, asking the server's `GET /v1/authorizations`; and `hook post-receive`,
//! which records the proposal whose head landed on a protected branch as merged.
//!
//! It reads `<old> <new> <ref>` lines from stdin as githooks(5) describes. A ref is protected
//! when `--protect` names it (default: main and master) or it is a protected branch of the
//! repository the hook runs in (`countersign_decide::protected`: `[repository] protected`
//! read from the tips of main and master, before the push moves them). An update of an
//! unprotected ref passes untouched; the deletion of a protected ref is refused; an update of
//! one passes only when the server says the move from its old tip to its new one is
//! authorized (an authorized proposal whose head is the new tip and whose base is the old
//! tip, or an ancestor of it when the move fast-forwards). Anything that keeps the hook from
//! getting that answer (no token, an unreachable server, an error, a repository whose
//! protected branches cannot be read) refuses: the hook fails closed. Every refusal names the
//! ref, the commit and why, on stderr, which git relays to the pusher. The hook decides
//! nothing itself beyond which refs to ask about.

use std::io::Read as _;
use std::process::ExitCode;

use anyhow::{Context, Result};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::cli::hook::PreReceiveArgs;
use crate::client::{Api, Failure, TOKEN_ENV, runtime};

/// The refs protected when no `--protect` is given.
pub const DEFAULT_PROTECTED: &[&str] = &["refs/heads/main", "refs/heads/master"];

/// One line of the hook's input.
#[derive(Debug, PartialEq, Eq)]
struct Update<'a> {
    /// The old tip; all zeros for a creation.
    old: &'a str,
    /// The new tip; all zeros for a deletion.
    new: &'a str,
    name: &'a str,
}

fn is_object_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The all-zero id git uses for "no object": a created ref's old side, a deleted ref's new.
fn is_zero(id: &str) -> bool {
    id.bytes().all(|b| b == b'0')
}

/// Parses githooks(5) input: `<old-value> SP <new-value> SP <ref-name> LF` per ref.
fn parse(input: &str) -> Result<Vec<Update<'_>>, String> {
    let mut updates = Vec::new();
    for (number, line) in input.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let mut fields = line.splitn(3, ' ');
        let (Some(old), Some(new), Some(name)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!(
                "line {}: expected `<old> <new> <ref>`, got {line:?}",
                number + 1
            ));
        };
        if !is_object_id(old) || !is_object_id(new) || name.is_empty() {
            return Err(format!(
                "line {}: expected `<old> <new> <ref>` with hex object ids, got {line:?}",
                number + 1
            ));
        }
        updates.push(Update { old, new, name });
    }
    Ok(updates)
}

fn protected_set(patterns: &[String]) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    let defaults: Vec<String> = DEFAULT_PROTECTED.iter().map(|r| (*r).to_owned()).collect();
    let patterns = if patterns.is_empty() {
        &defaults
    } else {
        patterns
    };
    for pattern in patterns {
        // `*` stays within one path component, as in git's own refspecs.
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .with_context(|| format!("--protect {pattern:?} is not a valid ref pattern"))?;
        builder.add(glob);
    }
    builder.build().context("compiling --protect patterns")
}

/// The protected branches of the repository the hook runs in (`GIT_DIR`, else the current
/// directory), as full ref names. Read before the push moves anything, so from the tips the
/// push is judged against.
fn repository_protected() -> Result<std::collections::BTreeSet<String>, String> {
    let dir = std::env::var_os("GIT_DIR").unwrap_or_else(|| ".".into());
    let repo = countersign_repo::Repo::open(&dir).map_err(|e| e.to_string())?;
    let protected =
        countersign_decide::protected::protected_branches(&repo).map_err(|e| e.chain())?;
    Ok(protected
        .branches
        .into_iter()
        .map(|b| format!("refs/heads/{}", b.name))
        .collect())
}

/// `countersign hook pre-receive`.
pub fn pre_receive(args: &PreReceiveArgs) -> Result<ExitCode> {
    let protected = protected_set(&args.protect)?;
    let mut input = String::new();
    if let Err(error) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("countersign: refusing the push: cannot read the hook's input: {error}");
        return Ok(ExitCode::from(1));
    }
    let updates = match parse(&input) {
        Ok(updates) => updates,
        Err(why) => {
            eprintln!("countersign: refusing the push: malformed pre-receive input: {why}");
            return Ok(ExitCode::from(1));
        }
    };
    let branches = match repository_protected() {
        Ok(branches) => branches,
        Err(why) => {
            eprintln!(
                "countersign: refusing the push: cannot read which branches are protected: {why}"
            );
            return Ok(ExitCode::from(1));
        }
    };
    let guarded: Vec<&Update<'_>> = updates
        .iter()
        .filter(|u| protected.is_match(u.name) || branches.contains(u.name))
        .collect();
    if guarded.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    // Only now is the server needed: a push to unprotected refs works without it.
    let api = std::env::var(TOKEN_ENV)
        .map_err(|_| format!("{TOKEN_ENV} is not set in the hook's environment"))
        .and_then(|token| Api::new(&args.server.server, &token).map_err(|e| format!("{e:#}")));
    let rt = runtime()?;
    let mut refused = 0usize;
    for update in guarded {
        let verdict = if is_zero(update.new) {
            Err(format!(
                "{} is protected by countersign and cannot be deleted",
                update.name
            ))
        } else {
            match &api {
                Err(why) => Err(format!(
                    "cannot ask the countersign server whether {} is authorized: {why}",
                    update.new
                )),
                Ok(api) => check(&rt, api, &args.repo, update),
            }
        };
        match verdict {
            Ok(note) => eprintln!("countersign: {note}"),
            Err(why) => {
                refused += 1;
                eprintln!("countersign: refusing {}: {why}", update.name);
            }
        }
    }
    if refused > 0 {
        eprintln!(
            "countersign: push refused ({refused} protected ref{} not authorized); open a \
             proposal for the commit (`countersign propose`) and push once it is authorized",
            if refused == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `countersign hook post-receive`: for each protected ref that now points at a commit, marks
/// the proposal that authorized it merged. The push already happened, so this only reports:
/// exit 0 whatever the server says (git ignores a post-receive hook's status anyway).
pub fn post_receive(args: &PreReceiveArgs) -> Result<ExitCode> {
    let protected = protected_set(&args.protect)?;
    let mut input = String::new();
    if let Err(error) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("countersign: cannot read the hook's input: {error}");
        return Ok(ExitCode::SUCCESS);
    }
    let updates = match parse(&input) {
        Ok(updates) => updates,
        Err(why) => {
            eprintln!("countersign: malformed post-receive input: {why}");
            return Ok(ExitCode::SUCCESS);
        }
    };
    // After the push: the tips are the new ones, which only name what to report on.
    let branches = repository_protected().unwrap_or_default();
    let landed: Vec<&Update<'_>> = updates
        .iter()
        .filter(|u| (protected.is_match(u.name) || branches.contains(u.name)) && !is_zero(u.new))
        .collect();
    if landed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let api = match std::env::var(TOKEN_ENV) {
        Ok(token) => match Api::new(&args.server.server, &token) {
            Ok(api) => api,
            Err(error) => {
                eprintln!("countersign: {error:#}: nothing recorded");
                return Ok(ExitCode::SUCCESS);
            }
        },
        Err(_) => {
            eprintln!(
                "countersign: {TOKEN_ENV} is not set in the hook's environment: nothing recorded"
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    let rt = runtime()?;
    for update in landed {
        let note = rt.block_on(async {
            let answer = api
                .authorization(&args.repo, update.name, update.old, update.new)
                .await?;
            let Some(id) = answer.proposal.filter(|_| answer.authorized) else {
                return Ok(format!(
                    "{} -> {}: no authorizing proposal, nothing recorded",
                    update.name, update.new
                ));
            };
            let proposal = api.proposal(&id).await?;
            if proposal["state"] == "merged" {
                return Ok(format!(
                    "{} -> {}: proposal {id} already merged",
                    update.name, update.new
                ));
            }
            api.mark_merged(&id, update.new).await?;
            Ok::<_, Failure>(format!(
                "{} -> {}: proposal {id} recorded as merged",
                update.name, update.new
            ))
        });
        match note {
            Ok(note) => eprintln!("countersign: {note}"),
            Err(failure) => eprintln!(
                "countersign: {} -> {}: not recorded as merged: {failure}",
                update.name, update.new
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks the server about one update's new tip: `Ok` with a note when authorized, `Err` with
/// the refusal otherwise.
fn check(
    rt: &tokio::runtime::Runtime,
    api: &Api,
    repo: &str,
    update: &Update<'_>,
) -> Result<String, String> {
    let answer = rt.block_on(api.authorization(repo, update.name, update.old, update.new));
    match answer {
        Ok(answer) if answer.authorized => Ok(format!(
            "{} -> {} authorized by proposal {}",
            update.name,
            update.new,
            answer.proposal.as_deref().unwrap_or("(unnamed)")
        )),
        Ok(answer) => {
            let mut why = if is_zero(update.old) {
                format!("commit {} is not authorized", update.new)
            } else {
                format!(
                    "commit {} is not authorized (moving from {})",
                    update.new, update.old
                )
            };
            for reason in &answer.reasons {
                why.push_str("\n  - ");
                why.push_str(reason);
            }
            Err(why)
        }
        Err(failure @ Failure::Unreachable { .. }) => Err(format!(
            "cannot check commit {}: {failure}; pushes to protected refs are refused until the \
             server answers",
            update.new
        )),
        Err(failure) => Err(format!(
            "cannot check commit {}: the server answered {failure}",
            update.new
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const Z: &str = "0000000000000000000000000000000000000000";

    #[test]
    fn parses_githooks_lines_and_refuses_anything_else() {
        let input = format!("{Z} {A} refs/heads/main\n{A} {Z} refs/tags/v1\n");
        assert_eq!(
            parse(&input).unwrap(),
            vec![
                Update {
                    old: Z,
                    new: A,
                    name: "refs/heads/main"
                },
                Update {
                    old: A,
                    new: Z,
                    name: "refs/tags/v1"
                },
            ]
        );
        assert!(parse(&format!("{A} refs/heads/main\n")).is_err());
        assert!(parse(&format!("{A} xyz refs/heads/main\n")).is_err());
        assert!(parse(&format!("{A} {A} \n")).is_err());
        assert!(is_zero(Z) && !is_zero(A));
    }

    #[test]
    fn protects_main_and_master_by_default_and_globs_stay_in_one_component() {
        let defaults = protected_set(&[]).unwrap();
        assert!(defaults.is_match("refs/heads/main"));
        assert!(defaults.is_match("refs/heads/master"));
        assert!(!defaults.is_match("refs/heads/main2"));
        assert!(!defaults.is_match("refs/heads/feature"));
        let release = protected_set(&["refs/heads/release/*".to_owned()]).unwrap();
        assert!(release.is_match("refs/heads/release/1.0"));
        assert!(!release.is_match("refs/heads/release/1.0/hotfix"));
        assert!(!release.is_match("refs/heads/main"));
    }
}
