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
use countersign_repo::{CommitId, Repo, read_commit_object};

use crate::DecideError;
use crate::authorship::{CommitFacts, Signed};
use crate::signature::SigningKeys;

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
    /// `countersign.dev/ssh-signing-keys`, as written.
    pub ssh_signing_keys: Vec<String>,
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
    catalog_users_in(&repo.commit_tree(commit)?, &commit.to_string())
}

/// [`catalog_users`] of the files of `tree` (a commit's tree, or a decision's recorded
/// inputs), named `at` in errors.
pub fn catalog_users_in(
    tree: &dyn countersign_graph::FileSource,
    at: &str,
) -> Result<Vec<CatalogUser>, DecideError> {
    let (agents, descriptors) = user_descriptors(tree, at)?;
    Ok(descriptors
        .into_iter()
        .filter_map(|descriptor| {
            let email = descriptor.email?;
            Some(CatalogUser {
                agent: agents.is_agent(&descriptor.entity.name),
                ssh_signing_keys: descriptor.ssh_signing_keys,
                email: email.trim().to_ascii_lowercase(),
                name: descriptor.entity.name,
            })
        })
        .collect())
}

/// A catalog User with a GitHub account (`github.com/user-login`), as one commit's catalog
/// names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubUser {
    pub name: String,
    /// The login, lower-cased (GitHub logins are case-insensitive).
    pub login: String,
    /// The name matches the repository's agent patterns: a bot account, not a person.
    pub agent: bool,
}

/// The catalog Users with a `github.com/user-login` at `commit`, read with the commit's own
/// `countersign.toml` (catalog globs, agent patterns): who a GitHub account is, for the
/// server's GitHub integration. Blocking (git).
pub fn github_users(repo: &Repo, commit: &CommitId) -> Result<Vec<GithubUser>, DecideError> {
    let (agents, descriptors) = user_descriptors(&repo.commit_tree(commit)?, commit.as_str())?;
    Ok(descriptors
        .into_iter()
        .filter_map(|descriptor| {
            let login = descriptor.github_login?;
            Some(GithubUser {
                agent: agents.is_agent(&descriptor.entity.name),
                login: login.to_ascii_lowercase(),
                name: descriptor.entity.name,
            })
        })
        .collect())
}

/// The catalog's User descriptors in `tree`, with the agent patterns of its config.
fn user_descriptors(
    tree: &dyn countersign_graph::FileSource,
    at: &str,
) -> Result<
    (
        countersign_repo::AgentsConfig,
        Vec<countersign_graph::backstage::Descriptor>,
    ),
    DecideError,
> {
    let within = |what: &str, source: DecideError| DecideError::Context {
        context: format!("{what} at {at}"),
        source: Box::new(source),
    };
    let config = crate::governed::read_config(tree).map_err(|e| within("reading the config", e))?;
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
        tree,
        &globs,
        &settings.default_namespace,
        &settings.limits,
    )
    .map_err(|e| within("reading the catalog", e.into()))?;
    let users = catalog
        .descriptors
        .into_iter()
        .filter(|descriptor| descriptor.entity.kind == Kind::User)
        .collect();
    Ok((config.agents, users))
}

/// The catalog Users of `base` by profile email.
pub fn directory(repo: &Repo, base: &CommitId) -> Result<Directory, DecideError> {
    Ok(people(repo, base)?.directory)
}

/// Signing keys by principal (lower-cased), for the Users that list any.
pub type Keys = BTreeMap<String, SigningKeys>;

/// The people of a base: who each profile email is, and the keys each signs with.
#[derive(Debug, Default)]
pub struct People {
    pub directory: Directory,
    pub keys: Keys,
}

/// The catalog Users of `base`: by profile email, and their signing keys. A key that does
/// not parse is the catalog's error, naming the User.
pub fn people(repo: &Repo, base: &CommitId) -> Result<People, DecideError> {
    people_of(
        catalog_users(repo, base).map_err(|source| DecideError::Context {
            context: "the base".to_owned(),
            source: Box::new(source),
        })?,
    )
}

/// The people of catalog Users read elsewhere (a decision's recorded inputs).
pub fn people_of(users: Vec<CatalogUser>) -> Result<People, DecideError> {
    let mut people = People::default();
    for user in users {
        let principal = if user.agent {
            Principal::Agent(user.name)
        } else {
            Principal::Human(user.name)
        }
        .to_string();
        if !user.ssh_signing_keys.is_empty() {
            let keys = SigningKeys::parse(&user.ssh_signing_keys).map_err(|e| {
                DecideError::invalid(format!(
                    "catalog User {principal} at the base: `countersign.dev/ssh-signing-keys`: {e}"
                ))
            })?;
            people.keys.insert(principal.to_lowercase(), keys);
        }
        people
            .directory
            .entry(user.email)
            .or_default()
            .push(principal);
    }
    Ok(people)
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

/// The raw objects of the commits of `base..head` (id, bytes), in walk order: what
/// [`commit_facts`] reads and what a decision records. Blocking (git).
pub fn commit_objects(
    repo: &Repo,
    base: &CommitId,
    head: &CommitId,
) -> Result<Vec<(String, Vec<u8>)>, DecideError> {
    let mut objects = Vec::new();
    for commit in repo.commits_between(base, head)? {
        objects.push((
            commit.id.as_str().to_owned(),
            repo.commit_object(&commit.id)?,
        ));
    }
    Ok(objects)
}

/// Commits as authorship reads them, from their raw `objects` (id, bytes; each checked to
/// hash to its id): who each names, and what its signature proves against the signing keys
/// of the people it names. Pure: the same answer live and when a bundle is re-derived.
pub fn commit_facts(
    objects: &[(String, Vec<u8>)],
    people: &People,
) -> Result<Vec<CommitFacts>, DecideError> {
    let none = SigningKeys::default();
    let mut facts = Vec::new();
    for (id, bytes) in objects {
        let object = read_commit_object(&CommitId::from_hex(id)?, bytes)?;
        let signed = match &object.signature {
            None => Signed::Unsigned,
            Some(signature) => {
                let named: BTreeSet<&String> = [&object.author_email, &object.committer_email]
                    .into_iter()
                    .filter_map(|email| people.directory.get(email))
                    .flatten()
                    .collect();
                let named: Vec<(&str, &SigningKeys)> = named
                    .into_iter()
                    .map(|p| {
                        (
                            p.as_str(),
                            people.keys.get(&p.to_lowercase()).unwrap_or(&none),
                        )
                    })
                    .collect();
                crate::signature::check(&signature.signature, &signature.signed, &named)
            }
        };
        facts.push(CommitFacts {
            id: id.clone(),
            author_email: object.author_email,
            committer_email: object.committer_email,
            signed,
        });
    }
    Ok(facts)
}
