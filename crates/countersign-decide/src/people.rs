//! The people of a commit: the catalog Users that have a profile email, read with the
//! commit's own `countersign.toml` (catalog globs, agent patterns), and the principals a
//! change's commit authors and committers are, mapped through them.
//!
//! The mapping is strict: no guessing from names or email local parts, so an identity the
//! catalog does not know stays `email:<addr>`, and an email several Users share makes each
//! of them an author. The one reading of "who is this email" for commit authors (server and
//! `evaluate`) and for people signing in (the server's OIDC).

use std::collections::{BTreeMap, BTreeSet};

use countersign_graph::Kind;
use countersign_policy::Principal;
use countersign_repo::{CommitId, Repo};

use crate::DecideError;

/// Principals (`human:<user>`, `agent:<user>`) by lower-cased profile email.
pub type Directory = BTreeMap<String, Vec<String>>;

/// A catalog User that has a profile email, as the catalog at one commit names it.
#[derive(Debug, Clone)]
pub struct CatalogUser {
    pub name: String,
    /// `spec.profile.email`, trimmed and lower-cased.
    pub email: String,
    /// The name matches the repository's agent patterns: a bot account, not a person.
    pub agent: bool,
}

/// How a catalog User is written as a principal, `human:NAME`: the one form the CLI's
/// reports, the server's records and its API use for people who may approve.
pub fn principal_of(user: &countersign_graph::EntityRef) -> String {
    Principal::of_user(user).to_string()
}

/// The catalog Users with a profile email at `commit`, read with the commit's own
/// `countersign.toml` (catalog globs, agent patterns). The one reading of "who is this email"
/// for both commit authors (here) and people signing in (`oidc`). Blocking (git).
pub fn catalog_users(repo: &Repo, commit: &CommitId) -> Result<Vec<CatalogUser>, DecideError> {
    let within = |what: &str, source: DecideError| DecideError::Context {
        context: format!("{what} at {commit}"),
        source: Box::new(source),
    };
    let tree = repo.commit_tree(commit)?;
    let config =
        crate::governed::read_config(&tree).map_err(|e| within("reading the config", e))?;
    let settings = crate::governed::graph_settings(&config);
    let mut globs = globset::GlobSetBuilder::new();
    for glob in &settings.catalog_globs {
        globs.add(
            countersign_graph::repo_path::glob(glob).map_err(|e| DecideError::Invalid {
                message: format!("catalog glob {glob:?}"),
                source: Some(Box::new(e)),
            })?,
        );
    }
    let globs = globs.build().map_err(|e| DecideError::Invalid {
        message: "catalog globs".to_owned(),
        source: Some(Box::new(e)),
    })?;
    let catalog = countersign_graph::backstage::read_catalog(
        &tree,
        &globs,
        &settings.default_namespace,
        &settings.limits,
    )
    .map_err(|e| within("reading the catalog", e.into()))?;
    Ok(catalog
        .descriptors
        .into_iter()
        .filter_map(|descriptor| {
            let (Kind::User, Some(email)) = (&descriptor.entity.kind, &descriptor.email) else {
                return None;
            };
            Some(CatalogUser {
                agent: config.agents.is_agent(&descriptor.entity.name),
                email: email.trim().to_ascii_lowercase(),
                name: descriptor.entity.name,
            })
        })
        .collect())
}

/// The catalog Users of `base` by profile email.
pub fn directory(repo: &Repo, base: &CommitId) -> Result<Directory, DecideError> {
    let mut directory = Directory::new();
    for user in catalog_users(repo, base).map_err(|source| DecideError::Context {
        context: "the base".to_owned(),
        source: Box::new(source),
    })? {
        let principal = if user.agent {
            Principal::Agent(user.name)
        } else {
            Principal::Human(user.name)
        };
        directory
            .entry(user.email)
            .or_default()
            .push(principal.to_string());
    }
    Ok(directory)
}

/// The principals of the commit `emails` (authors and committers, trimmed and lower-cased)
/// as `directory` names them: sorted, unique, `email:<addr>` for an email no User has.
pub fn authors(directory: &Directory, emails: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut authors = BTreeSet::new();
    for email in emails {
        match directory.get(&email) {
            // An email several Users share makes each of them an author: strict.
            Some(users) => authors.extend(users.iter().cloned()),
            None => {
                authors.insert(format!("email:{email}"));
            }
        }
    }
    authors.into_iter().collect()
}

/// The emails of everyone who authored or committed a commit in `base..head`, trimmed and
/// lower-cased.
pub fn commit_emails(
    repo: &Repo,
    base: &CommitId,
    head: &CommitId,
) -> Result<BTreeSet<String>, DecideError> {
    let mut emails = BTreeSet::new();
    for commit in repo.commits_between(base, head)? {
        for person in [commit.author, commit.committer] {
            emails.insert(person.email.trim().to_ascii_lowercase());
        }
    }
    Ok(emails)
}

/// The commits of `base..head` as authorship reads them: who each names and what its
/// signature proves. Blocking (git).
pub fn commit_facts(
    repo: &Repo,
    base: &CommitId,
    head: &CommitId,
) -> Result<Vec<crate::authorship::CommitFacts>, DecideError> {
    Ok(repo
        .commits_between(base, head)?
        .into_iter()
        .map(|commit| crate::authorship::CommitFacts {
            id: commit.id.as_str().to_owned(),
            author_email: commit.author.email.trim().to_ascii_lowercase(),
            committer_email: commit.committer.email.trim().to_ascii_lowercase(),
            signed: crate::authorship::Signed::Unsigned,
        })
        .collect())
}
