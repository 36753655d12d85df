//! Protected branches: which branches they are, whether a proposal's base comes from their
//! history, and whether a proposal authorizes moving one from `old` to `new`. One rule for
//! the server (proposals, `/v1/authorizations`), the pre-receive hook and `evaluate --base`.
//!
//! The list is `[repository] protected` read from the tips of the *root* branches, `main`
//! and `master` (those that exist), which are always protected: the branches trusted before
//! any config is read. It is never read from a proposal's base, which the proposer chose.
//! Every fact that cannot be read (a branch, a config, a commit) is an error: the caller
//! refuses.

use std::collections::BTreeSet;

use countersign_repo::{CommitId, Repo};

use crate::error::{Context as _, Result, bail};
use crate::governed::read_config;

/// The branches protected whatever a config says, and from whose tips the config is read.
pub const ROOT_BRANCHES: &[&str] = &["main", "master"];

/// One protected branch and its tip, `None` when the config names a branch that does not
/// exist (yet): creating it is guarded, but no base comes from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedBranch {
    pub name: String,
    pub tip: Option<CommitId>,
}

/// The protected branches of a repository, by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Protected {
    pub branches: Vec<ProtectedBranch>,
}

impl Protected {
    /// Whether the branch with this short name (`main`) is protected.
    pub fn contains(&self, name: &str) -> bool {
        self.branches.iter().any(|b| b.name == name)
    }

    /// The names, comma-separated, for messages.
    pub fn names(&self) -> String {
        if self.branches.is_empty() {
            return "none: no main or master branch exists".to_owned();
        }
        let names: Vec<&str> = self.branches.iter().map(|b| b.name.as_str()).collect();
        names.join(", ")
    }

    /// The first protected branch (in name order) whose history holds `commit` (its tip or
    /// an ancestor of it), or `None`.
    pub fn holding(&self, repo: &Repo, commit: &CommitId) -> Result<Option<&str>> {
        for branch in &self.branches {
            let Some(tip) = &branch.tip else { continue };
            let held = repo.is_ancestor(commit, tip).with_context(|| {
                format!(
                    "checking whether {commit} is in the history of {}",
                    branch.name
                )
            })?;
            if held {
                return Ok(Some(&branch.name));
            }
        }
        Ok(None)
    }
}

/// Reads the protected branches: the root branches that exist, plus `[repository] protected`
/// of the config at each root's tip. An unreadable branch list or config is an error.
pub fn protected_branches(repo: &Repo) -> Result<Protected> {
    let roots = root_tips(repo)?;
    let names = names_at(repo, &roots)?;
    resolve(repo, names)
}

/// The root branches that exist, with their tips, in [`ROOT_BRANCHES`] order: what the
/// list of protected names depends on (a cache of [`names_at`] is keyed by it).
pub fn root_tips(repo: &Repo) -> Result<Vec<(&'static str, CommitId)>> {
    let mut roots = Vec::with_capacity(ROOT_BRANCHES.len());
    for root in ROOT_BRANCHES {
        // Each branch looked up by name: a repository may hold thousands of branches, and
        // this runs for every proposal.
        if let Some(tip) = repo
            .branch_tip(root)
            .with_context(|| format!("reading the tip of branch {root}"))?
        {
            roots.push((*root, tip));
        }
    }
    Ok(roots)
}

/// The names of the protected branches given the roots' tips: the roots, and the
/// `[repository] protected` of the config at each root's tip.
pub fn names_at(repo: &Repo, roots: &[(&'static str, CommitId)]) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for (root, tip) in roots {
        names.insert((*root).to_owned());
        let tree = repo
            .commit_tree(tip)
            .with_context(|| format!("reading the tip of {root} ({tip})"))?;
        let config = read_config(&tree).with_context(|| {
            format!(
                "reading [repository] protected from countersign.toml at the tip of {root} ({tip})"
            )
        })?;
        names.extend(config.repository.protected.unwrap_or_default());
    }
    Ok(names)
}

/// The protected branches named `names`, each with its tip as the repository has it now.
pub fn resolve(repo: &Repo, names: BTreeSet<String>) -> Result<Protected> {
    Ok(Protected {
        branches: names
            .into_iter()
            .map(|name| {
                let tip = repo
                    .branch_tip(&name)
                    .with_context(|| format!("reading the tip of branch {name}"))?;
                Ok(ProtectedBranch { name, tip })
            })
            .collect::<Result<_>>()?,
    })
}

/// A proposal's base must be in the history of a protected branch (its tip or an ancestor):
/// otherwise the base, and the rules read from it, would be the proposer's choice, and
/// `main..head` could hold commits nobody judged. `Ok` names the branch; the error says why.
pub fn check_base(repo: &Repo, base: &CommitId) -> Result<String> {
    check_base_in(repo, &protected_branches(repo)?, base)
}

/// [`check_base`] against protected branches already read (a server caches their names per
/// tip of the roots; see [`names_at`]).
pub fn check_base_in(repo: &Repo, protected: &Protected, base: &CommitId) -> Result<String> {
    match protected.holding(repo, base)? {
        Some(branch) => Ok(branch.to_owned()),
        None => bail!(
            "base {base} is not in the history of a protected branch ({}): a change is judged \
             against a commit that is already protected, never one the proposer chose; \
             take the base from a protected branch, e.g. its tip",
            protected.names()
        ),
    }
}

/// A proposal that may authorize an update: authorized or merged, with its base and head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub base: String,
    pub head: String,
}

/// Whether an update of a protected branch is authorized, and by which proposal, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateCheck {
    /// The authorizing proposal, `None` when refused.
    pub proposal: Option<String>,
    /// One line per candidate (or why there is none), in the order given.
    pub reasons: Vec<String>,
}

/// Is moving a protected branch from `old` to `new` authorized by one of `candidates`
/// (authorized or merged proposals whose head is `new`)?
///
/// - `new` is `None` (a deletion): refused, always.
/// - `old` is `None` (the branch is created): a candidate whose base is in the history of a
///   protected branch that exists now.
/// - otherwise a candidate whose base is exactly `old` (the diff `old..new` was judged as
///   its own change: how a rollback or a force-push is judged), or whose base is an
///   ancestor of `old` when `old` is an ancestor of `new` (a fast-forward: every commit of
///   `old..new` is in the judged `base..new`).
///
/// A candidate that cannot be checked (its base is not in the repository) does not
/// authorize; `old` or `new` missing from the repository is an error.
pub fn check_update(
    repo: &Repo,
    branch: &str,
    old: Option<&CommitId>,
    new: Option<&CommitId>,
    candidates: &[Candidate],
) -> Result<UpdateCheck> {
    let refuse = |reason: String| UpdateCheck {
        proposal: None,
        reasons: vec![reason],
    };
    let Some(new) = new else {
        return Ok(refuse(format!(
            "{branch} is protected by countersign and cannot be deleted"
        )));
    };
    let mut reasons = Vec::new();
    if candidates.is_empty() {
        reasons.push(format!("no authorized proposal has {new} as its head"));
    }
    // What a candidate is held to: for an update, `old` and whether `new` fast-forwards it;
    // for a creation, the protected branches as they are now.
    enum Move<'a> {
        Update {
            old: &'a CommitId,
            fast_forward: bool,
        },
        Create(Protected),
    }
    let mode = match old {
        Some(old) => Move::Update {
            old,
            fast_forward: repo.is_ancestor(old, new).with_context(|| {
                format!("checking whether {new} fast-forwards {branch} from {old}")
            })?,
        },
        None => Move::Create(protected_branches(repo)?),
    };
    for candidate in candidates.iter().filter(|c| c.head == new.as_str()) {
        let id = &candidate.id;
        let base = match CommitId::from_hex(&candidate.base) {
            Ok(base) => base,
            Err(error) => {
                reasons.push(format!("proposal {id}: its base cannot be read: {error}"));
                continue;
            }
        };
        let verdict = match &mode {
            Move::Update { old, .. } if base == **old => Ok(Ok(format!(
                "proposal {id} judged {old}..{new} as its own change"
            ))),
            Move::Update { old, fast_forward } => repo
                .is_ancestor(&base, old)
                .map_err(Into::into)
                .map(|in_history| {
                    if !in_history {
                        Err(format!(
                            "proposal {id} judged {base}..{new}, but its base {base} is not in \
                             the history of {branch} at {old}: the commits between them were \
                             not judged"
                        ))
                    } else if !fast_forward {
                        Err(format!(
                            "proposal {id} judged {base}..{new}, but {new} does not \
                             fast-forward {branch} from {old} (the push drops or rewrites \
                             commits); only a proposal with base {old} judges that move"
                        ))
                    } else {
                        Ok(format!("proposal {id} judged {base}..{new}"))
                    }
                }),
            Move::Create(protected) => protected.holding(repo, &base).map(|held| match held {
                Some(holder) => Ok(format!(
                    "proposal {id} judged {base}..{new}, {base} being in the history of {holder}"
                )),
                None => Err(format!(
                    "proposal {id} judged {base}..{new}, but its base is not in the history of \
                     a protected branch ({}), so it cannot create {branch}",
                    protected.names()
                )),
            }),
        };
        match verdict {
            Ok(Ok(note)) => {
                return Ok(UpdateCheck {
                    proposal: Some(id.clone()),
                    reasons: vec![note],
                });
            }
            Ok(Err(reason)) => reasons.push(reason),
            Err(error) => {
                let error: crate::DecideError = error;
                reasons.push(format!(
                    "proposal {id}: cannot check its base: {}",
                    error.chain()
                ));
            }
        }
    }
    Ok(UpdateCheck {
        proposal: None,
        reasons,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use countersign_repo::RepoWriter;

    const ALICE: &str = "Alice <alice@example.com>";

    fn config(protected: &str) -> String {
        format!("[repository]\nprotected = {protected}\n")
    }

    /// main (listing release), release off it, and evil, whose own config lists itself.
    fn repo() -> (tempfile::TempDir, RepoWriter, [CommitId; 3]) {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RepoWriter::init(dir.path()).unwrap();
        let main = w
            .commit(
                [("countersign.toml", Some(config(r#"["main", "release"]"#)))],
                "base",
                ALICE,
                1_700_000_000,
            )
            .unwrap();
        let release = w
            .commit_on(
                "refs/heads/release",
                &main,
                [("notes.md", Some("1.0\n".to_owned()))],
                "release",
                ALICE,
                1_700_000_001,
            )
            .unwrap();
        let evil = w
            .commit_on(
                "refs/heads/evil",
                &main,
                [("countersign.toml", Some(config(r#"["main", "evil"]"#)))],
                "evil",
                ALICE,
                1_700_000_002,
            )
            .unwrap();
        (dir, w, [main, release, evil])
    }

    #[test]
    fn the_list_is_read_from_main_never_from_another_branch() {
        let (dir, _w, [main, release, evil]) = repo();
        let repo = Repo::open(dir.path()).unwrap();
        let protected = protected_branches(&repo).unwrap();
        assert_eq!(protected.names(), "main, release");
        assert!(!protected.contains("evil"));
        assert_eq!(check_base(&repo, &main).unwrap(), "main");
        assert_eq!(check_base(&repo, &release).unwrap(), "release");
        let refused = check_base(&repo, &evil).unwrap_err();
        assert!(refused.is_input());
        assert!(
            refused.chain().contains(&format!(
                "base {evil} is not in the history of a protected branch (main, release)"
            )),
            "{}",
            refused.chain()
        );
    }

    #[test]
    fn a_move_needs_a_judged_base_a_fast_forward_or_its_own_judgement() {
        let (dir, _w, [main, release, evil]) = repo();
        let repo = Repo::open(dir.path()).unwrap();
        let candidate = |id: &str, base: &CommitId, head: &CommitId| Candidate {
            id: id.to_owned(),
            base: base.to_string(),
            head: head.to_string(),
        };
        let check = |old: Option<&CommitId>, new: Option<&CommitId>, candidates: &[Candidate]| {
            check_update(&repo, "refs/heads/main", old, new, candidates)
                .unwrap()
                .proposal
        };
        let forward = [candidate("p1", &main, &release)];
        assert_eq!(
            check(Some(&main), Some(&release), &forward).as_deref(),
            Some("p1")
        );
        // evil does not descend from release: not a fast-forward, and p1's base is not evil.
        let sideways = [candidate("p2", &main, &evil)];
        assert_eq!(check(Some(&release), Some(&evil), &sideways), None);
        let judged = [
            candidate("p2", &main, &evil),
            candidate("p3", &release, &evil),
        ];
        assert_eq!(
            check(Some(&release), Some(&evil), &judged).as_deref(),
            Some("p3")
        );
        // Deletion, whatever is authorized.
        assert_eq!(check(Some(&main), None, &forward), None);
        // Creation: the base must be protected history.
        assert_eq!(check(None, Some(&release), &forward).as_deref(), Some("p1"));
        let from_evil = [candidate("p4", &evil, &release)];
        assert_eq!(check(None, Some(&release), &from_evil), None);
        // A base that is not in the repository authorizes nothing, and says why.
        let absent = CommitId::from_hex(&"1".repeat(40)).unwrap();
        let ghost = [candidate("p5", &absent, &release)];
        let answer = check_update(
            &repo,
            "refs/heads/main",
            Some(&main),
            Some(&release),
            &ghost,
        )
        .unwrap();
        assert_eq!(answer.proposal, None);
        assert!(
            answer.reasons[0].contains("cannot check its base"),
            "{answer:?}"
        );
    }

    #[test]
    fn an_unreadable_config_at_main_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RepoWriter::init(dir.path()).unwrap();
        let main = w
            .commit(
                [(
                    "countersign.toml",
                    Some("[repository]\nprotected = [\"refs/heads/x\"]\n"),
                )],
                "base",
                ALICE,
                1_700_000_000,
            )
            .unwrap();
        let repo = Repo::open(dir.path()).unwrap();
        let error = check_base(&repo, &main).unwrap_err();
        assert!(
            error.chain().contains("is not a branch name"),
            "{}",
            error.chain()
        );
    }
}
