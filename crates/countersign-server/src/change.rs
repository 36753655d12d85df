//! [`ChangeFacts`]: what the proposal lifecycle reads from a change besides its decision:
//! everyone who authored or committed one of its commits, and the identity of its diff.
//!
//! Authors are mapped to principals through the *base*'s catalog (a User's
//! `spec.profile.email`), strictly: no guessing from names or email local parts, so an
//! identity the catalog does not know stays `email:<addr>`. The diff's identity is its
//! content (paths, modes and blob ids of both sides), never commit ids, so a rebase that
//! changes nothing reads as the same diff. This module decides nothing about approvals.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use countersign_decide::DecideError;
use countersign_graph::Kind;
use countersign_policy::Principal;
use countersign_repo::{CommitId, ContentChange, Repo, Side};
use sha2::{Digest, Sha256};

/// See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeFacts {
    /// Everyone who authored or committed a commit in `base..head`: `human:<user>` (or
    /// `agent:<user>` for a bot account) for a catalog User of the base whose profile email
    /// is the commit's, `email:<addr>` when no User has it. Sorted, unique.
    pub authors: Vec<String>,
    /// Lower-case hex SHA-256 of [`Repo::diff_content`]: equal digests, same diff.
    pub diff_digest: String,
}

impl ChangeFacts {
    /// Reads the commits and the diff content of `base..head` (full commit ids) in the
    /// repository at `path`, mapping authors through `directories`. Blocking (git). An
    /// unreadable catalog at the base is the input's fault, a git failure the server's.
    pub fn read(
        directories: &Directories,
        path: &Path,
        base: &str,
        head: &str,
    ) -> Result<ChangeFacts, DecideError> {
        let repo = Repo::open_shared(path)?;
        let (base, head) = (CommitId::from_hex(base)?, CommitId::from_hex(head)?);
        let mut emails = BTreeSet::new();
        for commit in repo.commits_between(&base, &head)? {
            for person in [commit.author, commit.committer] {
                emails.insert(person.email.trim().to_ascii_lowercase());
            }
        }
        let directory = directories.get(path, &repo, &base)?;
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
        Ok(ChangeFacts {
            authors: authors.into_iter().collect(),
            diff_digest: diff_digest(&repo.diff_content(&base, &head)?),
        })
    }
}

/// The digest of a diff's content: one line per changed file, its path then both sides.
fn diff_digest(changes: &[ContentChange]) -> String {
    let side = |s: &Option<Side>| {
        s.as_ref()
            .map_or_else(|| "-".to_owned(), |s| format!("{} {}", s.mode, s.id))
    };
    let mut hasher = Sha256::new();
    for change in changes {
        // NUL cannot occur in a git path, so the fields cannot run into each other.
        hasher.update(format!(
            "{}\0{}\0{}\n",
            change.path,
            side(&change.old),
            side(&change.new)
        ));
    }
    hex::encode(hasher.finalize())
}

/// Principals by lower-cased profile email.
type Directory = BTreeMap<String, Vec<String>>;

/// The catalog Users of recent bases by profile email, by repository path and base commit
/// id (an immutable object, so never stale). Owned by the server's `Pipeline`.
#[derive(Default)]
pub struct Directories(Mutex<HashMap<(PathBuf, String), Arc<Directory>>>);

impl std::fmt::Debug for Directories {
    /// How many bases are held; not the Users and emails themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.0.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("Directories").field("held", &held).finish()
    }
}

/// A catalog User that has a profile email, as the catalog at one commit names it.
#[derive(Debug, Clone)]
pub(crate) struct CatalogUser {
    pub name: String,
    /// `spec.profile.email`, trimmed and lower-cased.
    pub email: String,
    /// The name matches the repository's agent patterns: a bot account, not a person.
    pub agent: bool,
}

/// The catalog Users with a profile email at `commit`, read with the commit's own
/// `countersign.toml` (catalog globs, agent patterns). The one reading of "who is this email"
/// for both commit authors (here) and people signing in (`oidc`). Blocking (git).
pub(crate) fn catalog_users(
    repo: &Repo,
    commit: &CommitId,
) -> Result<Vec<CatalogUser>, DecideError> {
    let within = |what: &str, source: DecideError| DecideError::Context {
        context: format!("{what} at {commit}"),
        source: Box::new(source),
    };
    let tree = repo.commit_tree(commit)?;
    let config = countersign_decide::governed::read_config(&tree)
        .map_err(|e| within("reading the config", e))?;
    let settings = countersign_decide::governed::graph_settings(&config);
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

impl Directories {
    /// Whether the catalog of `base` (a full commit id) in the repository at `path` gives
    /// `principal` the profile email `email`: how a person signed in by email is held to the
    /// repository's own people. Blocking (git).
    pub fn declares(
        &self,
        path: &Path,
        base: &str,
        email: &str,
        principal: &Principal,
    ) -> Result<bool, DecideError> {
        let repo = Repo::open_shared(path)?;
        let base = CommitId::from_hex(base)?;
        let directory = self.get(path, &repo, &base)?;
        let wanted = principal.to_string();
        Ok(directory
            .get(&email.trim().to_ascii_lowercase())
            .is_some_and(|users| users.iter().any(|u| u.eq_ignore_ascii_case(&wanted))))
    }

    /// The catalog Users of `base` by profile email, cached.
    fn get(
        &self,
        path: &Path,
        repo: &Repo,
        base: &CommitId,
    ) -> Result<Arc<Directory>, DecideError> {
        let key = (path.to_owned(), base.as_str().to_owned());
        if let Some(found) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(Arc::clone(found));
        }
        let directory = Arc::new(read_directory(repo, base)?);
        let mut cache = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Bases are few (the tips of protected branches); forget them all rather than track
        // age.
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&directory));
        Ok(directory)
    }
}

/// The catalog Users of `base` by profile email.
fn read_directory(repo: &Repo, base: &CommitId) -> Result<Directory, DecideError> {
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
