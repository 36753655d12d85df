//! [`ChangeFacts`]: what the proposal lifecycle reads from a change besides its decision:
//! everyone who authored or committed one of its commits, and the identity of its diff.
//!
//! Authors are mapped to principals through the *base*'s catalog (a User's
//! `spec.profile.email`), strictly: no guessing from names or email local parts, so an
//! identity the catalog does not know stays `email:<addr>`. The diff's identity is its
//! content (paths, modes and blob ids of both sides), never commit ids, so a rebase that
//! changes nothing reads as the same diff. This module decides nothing about approvals.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use countersign_decide::DecideError;
use countersign_decide::authorship::Author;
use countersign_decide::people::{self, People};
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
    /// The same people with the commits that name them and how far their authorship is
    /// believed (`verified`, `claimed`, `invalid`).
    pub authorship: Vec<Author>,
    /// The raw objects of the commits of `base..head` (id, bytes): recorded with the
    /// decision, so a bundle checks their signatures again.
    pub commit_objects: Vec<(String, Vec<u8>)>,
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
        let catalog = directories.get(path, &repo, &base)?;
        let read = people::change_authors(&repo, &catalog, &base, &head)?;
        Ok(ChangeFacts {
            authors: read.principals(),
            authorship: read.authorship,
            commit_objects: read.commit_objects,
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

/// The catalog Users of recent bases by profile email, by repository path and base commit
/// id (an immutable object, so never stale). Owned by the server's `Pipeline`.
#[derive(Default)]
pub struct Directories(Mutex<HashMap<(PathBuf, String), Arc<People>>>);

impl std::fmt::Debug for Directories {
    /// How many bases are held; not the Users and emails themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.0.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("Directories").field("held", &held).finish()
    }
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
            .directory
            .get(&email.trim().to_ascii_lowercase())
            .is_some_and(|users| users.iter().any(|u| u.eq_ignore_ascii_case(&wanted))))
    }

    /// The catalog Users of `base` by profile email, and their signing keys, cached.
    fn get(&self, path: &Path, repo: &Repo, base: &CommitId) -> Result<Arc<People>, DecideError> {
        let key = (path.to_owned(), base.as_str().to_owned());
        if let Some(found) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(Arc::clone(found));
        }
        let directory = Arc::new(people::people(repo, base)?);
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
