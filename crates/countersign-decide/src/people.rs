//! The people of a commit: the catalog Users that have a profile email, read with the
//! commit's own `countersign.toml` (catalog globs, agent patterns), the signing keys they
//! list (a key that does not parse is an error naming the catalog file, the annotation's
//! line and the annotation, for decisions and `graph check` alike), and the principals a
//! change's commit authors and committers are, mapped through them.
//!
//! The mapping is strict: no guessing from names or email local parts, so an identity the
//! catalog does not know stays `email:<addr>`, and an email several Users share makes each
//! of them an author. The one reading of "who is this email" for commit authors (server and
//! `evaluate`) and for people signing in (the server's OIDC).

use std::collections::{BTreeMap, BTreeSet};

use countersign_graph::{Diagnostic, DiagnosticCode, Kind, Severity};
use countersign_policy::Principal;
use countersign_repo::{CommitId, Repo, read_commit_object};

use crate::DecideError;
use crate::authorship::{CommitFacts, Signed};
use crate::signature::{self, SigningKeys};

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
    /// `countersign.dev/openpgp-signing-keys`, as written.
    pub openpgp_signing_keys: Option<String>,
    /// The User's descriptor (file and the line of its document): where a key error points.
    pub source: countersign_graph::SourceLocation,
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
    let (config, catalog) = read_catalog(tree, at)?;
    Ok(catalog
        .descriptors
        .into_iter()
        .filter_map(|descriptor| {
            let (Kind::User, Some(email)) = (&descriptor.entity.kind, &descriptor.email) else {
                return None;
            };
            Some(CatalogUser {
                agent: config.agents.is_agent(&descriptor.entity.name),
                ssh_signing_keys: descriptor.ssh_signing_keys,
                openpgp_signing_keys: descriptor.openpgp_signing_keys,
                email: email.trim().to_ascii_lowercase(),
                source: descriptor.source,
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
    let (config, catalog) = read_catalog(&repo.commit_tree(commit)?, commit.as_str())?;
    Ok(catalog
        .descriptors
        .into_iter()
        .filter(|descriptor| descriptor.entity.kind == Kind::User)
        .filter_map(|descriptor| {
            let login = descriptor.github_login?;
            Some(GithubUser {
                agent: config.agents.is_agent(&descriptor.entity.name),
                login: login.to_ascii_lowercase(),
                name: descriptor.entity.name,
            })
        })
        .collect())
}

/// The config and the catalog of `tree`, read as the graph reads them.
fn read_catalog(
    tree: &dyn countersign_graph::FileSource,
    at: &str,
) -> Result<
    (
        countersign_repo::Config,
        countersign_graph::backstage::Catalog,
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
    Ok((config, catalog))
}

/// The signing keys of the Users of `tree`'s catalog that do not parse, each as a `graph
/// check` error naming the catalog file, the annotation's line and the annotation: the
/// same words a decision refuses the catalog with ([`people_in`]). Users without a
/// profile email included: their keys are as wrong.
pub fn key_diagnostics(
    tree: &dyn countersign_graph::FileSource,
    at: &str,
) -> Result<Vec<Diagnostic>, DecideError> {
    let (_, catalog) = read_catalog(tree, at)?;
    let mut diagnostics = Vec::new();
    for descriptor in &catalog.descriptors {
        if descriptor.entity.kind != Kind::User {
            continue;
        }
        let principal = format!("User {}", descriptor.entity.name);
        let (ssh, openpgp) = (
            &descriptor.ssh_signing_keys,
            descriptor.openpgp_signing_keys.as_deref(),
        );
        if let Err(error) = parse_keys(tree, &principal, &descriptor.source, ssh, openpgp) {
            diagnostics.extend(error);
        }
    }
    Ok(diagnostics)
}

/// Both signing-key annotations of one User parsed; `Err` holds one diagnostic per
/// annotation that does not parse.
fn parse_keys(
    tree: &dyn countersign_graph::FileSource,
    who: &str,
    source: &countersign_graph::SourceLocation,
    ssh: &[String],
    openpgp: Option<&str>,
) -> Result<SigningKeys, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut keys = SigningKeys::default();
    let mut error = |annotation: &str, message: String| {
        // Only now, for the message, is the file read again to find the annotation's line.
        let line = tree
            .read(
                &source.file,
                countersign_graph::Limits::default().file_bytes,
            )
            .ok()
            .flatten()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map_or(source.line, |text| {
                countersign_graph::backstage::annotation_line(&text, source.line, annotation)
            });
        errors.push(Diagnostic::new(
            Severity::Error,
            DiagnosticCode::SigningKey,
            format!("{who}: `{annotation}`: {message}"),
            Some(countersign_graph::SourceLocation {
                file: source.file.clone(),
                line,
            }),
        ));
    };
    match SigningKeys::parse_ssh(ssh) {
        Ok(parsed) => keys.ssh = parsed,
        Err(message) => error(signature::SSH_ANNOTATION, message),
    }
    if let Some(text) = openpgp {
        match SigningKeys::parse_openpgp(text) {
            Ok(parsed) => keys.openpgp = parsed,
            Err(message) => error(signature::OPENPGP_ANNOTATION, message),
        }
    }
    if errors.is_empty() {
        Ok(keys)
    } else {
        Err(errors)
    }
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
/// not parse is the catalog's error, naming the file, line and annotation as `graph check`
/// does.
pub fn people(repo: &Repo, base: &CommitId) -> Result<People, DecideError> {
    people_in(&repo.commit_tree(base)?, &base.to_string()).map_err(|source| DecideError::Context {
        context: "the base".to_owned(),
        source: Box::new(source),
    })
}

/// [`people`] of the files of `tree` (a commit's tree, or a decision's recorded inputs),
/// named `at` in errors.
pub fn people_in(
    tree: &dyn countersign_graph::FileSource,
    at: &str,
) -> Result<People, DecideError> {
    let mut people = People::default();
    for user in catalog_users_in(tree, at)? {
        let principal = if user.agent {
            Principal::Agent(user.name)
        } else {
            Principal::Human(user.name)
        }
        .to_string();
        if !user.ssh_signing_keys.is_empty() || user.openpgp_signing_keys.is_some() {
            let keys = parse_keys(
                tree,
                &format!("catalog User {principal}"),
                &user.source,
                &user.ssh_signing_keys,
                user.openpgp_signing_keys.as_deref(),
            )
            .map_err(|errors| {
                DecideError::invalid(
                    errors
                        .iter()
                        .map(|e| match &e.location {
                            Some(at) => format!("{at}: {}", e.message),
                            None => e.message.clone(),
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                )
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

/// Who the commits of a change name, and the raw commits that say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeAuthors {
    /// Each person a commit of `base..head` names as author or committer, with the commits
    /// that name them and how far it is believed; sorted by principal.
    pub authorship: Vec<crate::authorship::Author>,
    /// The raw objects of those commits (id, bytes), in walk order: what a decision records
    /// so a bundle re-derives the same authors.
    pub commit_objects: Vec<(String, Vec<u8>)>,
}

impl ChangeAuthors {
    /// The principals the commits name (`human:<user>`, `agent:<user>`, `email:<addr>`):
    /// none of them may approve the change.
    pub fn principals(&self) -> Vec<String> {
        crate::authorship::principals(&self.authorship)
    }
}

/// The authors and committers of the commits of `base..head`, mapped through the base's
/// `people` and their signatures checked against its keys: the one reading of a change's
/// authors, for the server's proposals and `countersign evaluate` alike (a bundle re-derives
/// it from the recorded objects with [`commit_facts`]). Blocking (git).
pub fn change_authors(
    repo: &Repo,
    people: &People,
    base: &CommitId,
    head: &CommitId,
) -> Result<ChangeAuthors, DecideError> {
    let commit_objects = commit_objects(repo, base, head)?;
    let commits = commit_facts(&commit_objects, people)?;
    Ok(ChangeAuthors {
        authorship: crate::authorship::authorship(&people.directory, &commits),
        commit_objects,
    })
}
