//! The governed git repository, read through gix: revisions, snapshots at a commit, diffs
//! between commits, commit metadata and first-parent history.
//!
//! Everything is computed from git objects by countersign itself; nothing shells out to
//! `git`, so a machine with only the Rust toolchain can evaluate changes, and the diff is
//! not shaped by a user's git configuration. This module does not interpret paths (mapping
//! them to nodes is countersign-graph's work) and does not write (see `write`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use countersign_graph::{FileSource, SourceError};
use gix::bstr::{BStr, ByteSlice};
use gix::object::tree::diff::ChangeDetached;

/// A commit's full hexadecimal object id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitId(String);

impl CommitId {
    /// Accepts a full hexadecimal object id (40 digits for SHA-1), case-insensitively.
    pub fn from_hex(hex: &str) -> Result<CommitId, RepoError> {
        let id =
            gix::ObjectId::from_hex(hex.as_bytes()).map_err(|e| RepoError::InvalidCommitId {
                id: hex.to_owned(),
                message: e.to_string(),
            })?;
        Ok(CommitId::from_object_id(id))
    }

    /// The full lower-case hexadecimal id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first seven digits, for people.
    pub fn short(&self) -> &str {
        self.0.get(..7).unwrap_or(&self.0)
    }

    pub(crate) fn from_object_id(id: gix::ObjectId) -> CommitId {
        CommitId(id.to_string())
    }

    pub(crate) fn object_id(&self) -> Result<gix::ObjectId, RepoError> {
        gix::ObjectId::from_hex(self.0.as_bytes()).map_err(|e| RepoError::InvalidCommitId {
            id: self.0.clone(),
            message: e.to_string(),
        })
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why the repository could not answer.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{}: not a git repository: {message}", path.display())]
    NotARepository { path: PathBuf, message: String },
    #[error("{}: the repository has no commits yet, so revision `{rev}` names nothing", path.display())]
    EmptyRepository { path: PathBuf, rev: String },
    #[error("revision `{rev}` does not exist: {message}")]
    RevNotFound { rev: String, message: String },
    #[error("revision `{rev}` names a {kind}, not a commit")]
    NotACommit { rev: String, kind: String },
    /// The clone lacks the history a revision needs; the fix is fetching more of it (the
    /// binary says how), never a different input.
    #[error("revision `{rev}` needs history this shallow clone does not have ({detail})")]
    ShallowHistory { rev: String, detail: String },
    #[error("`{id}` is not a commit id: {message}")]
    InvalidCommitId { id: String, message: String },
    /// A path whose bytes are not UTF-8, shown lossily (invalid bytes as U+FFFD).
    #[error("path {path:?} in {context} is not valid UTF-8; countersign maps paths as UTF-8 text")]
    NonUtf8Path { path: String, context: String },
    #[error("empty diff: no file differs between {base} and {head}, there is nothing to decide")]
    EmptyDiff { base: CommitId, head: CommitId },
    #[error("invalid signature `{signature}`: expected `Name <email>`")]
    InvalidSignature { signature: String },
    #[error("{context}: {message}")]
    Git { context: String, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RepoError {
    /// Whether the input is at fault (a revision that names nothing or no commit, a change
    /// with no diff, a path or signature countersign cannot take) rather than the repository
    /// on this machine (missing, empty, shallow, unreadable or corrupt). Callers that answer
    /// someone else's request (the server) tell that someone only about input errors; the
    /// rest is the operator's, and their messages name paths on this machine.
    pub fn is_input(&self) -> bool {
        match self {
            RepoError::RevNotFound { .. }
            | RepoError::NotACommit { .. }
            | RepoError::InvalidCommitId { .. }
            | RepoError::NonUtf8Path { .. }
            | RepoError::EmptyDiff { .. }
            | RepoError::InvalidSignature { .. } => true,
            // An empty repository names the configured path; the requester cannot fill it.
            RepoError::NotARepository { .. }
            | RepoError::EmptyRepository { .. }
            | RepoError::ShallowHistory { .. }
            | RepoError::Git { .. }
            | RepoError::Io { .. } => false,
        }
    }
}

/// Renders a gix error with its causes: the top frame alone is often just "could not find".
pub(crate) fn git_error(context: impl Into<String>, error: &gix::Error) -> RepoError {
    RepoError::Git {
        context: context.into(),
        message: format!("{error:#}").replace('\n', "; "),
    }
}

/// Decoded objects a repository handle keeps (per thread, see [`Repo::open_shared`]).
const OBJECT_CACHE_BYTES: usize = 4 * 1024 * 1024;

/// An opened git repository.
pub struct Repo {
    /// Shared (not cloned) by [`Repo::open_shared`]: a clone of a gix handle starts with
    /// empty object caches.
    inner: Rc<gix::Repository>,
    /// The blob resource cache of tree diffs (rename detection), made once: making one reads
    /// the global and the repository's attribute files. Shared like `inner`.
    diff_cache: Rc<RefCell<Option<gix::diff::blob::Platform>>>,
    path: PathBuf,
}

impl fmt::Debug for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repo").field("path", &self.path).finish()
    }
}

/// How a path changed between two commits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    Added,
    /// Content or mode (executable bit, file ↔ symlink) changed.
    Modified,
    Deleted,
    /// Moved from `from`, possibly with edits (50% similarity, git's default).
    Renamed {
        from: String,
    },
}

/// One changed file. Copies are not detected: a copy is reported as `Added`, which yields
/// the same changed paths since a copy's source does not change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangedPath {
    pub path: String,
    pub kind: ChangeKind,
}

/// Every path a diff touches, sorted and unique. A rename counts both its source and its
/// destination, so moving a file out of a sensitive directory still touches that directory.
pub fn changed_paths(changes: &[ChangedPath]) -> Vec<String> {
    let mut paths: Vec<String> = Vec::with_capacity(changes.len());
    for change in changes {
        if let ChangeKind::Renamed { from } = &change.kind {
            paths.push(from.clone());
        }
        paths.push(change.path.clone());
    }
    paths.sort();
    paths.dedup();
    paths
}

/// One side of a changed file in [`Repo::diff_content`]: its mode (git's octal) and object id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Side {
    pub mode: String,
    pub id: String,
}

/// A changed file with the exact content of both sides: what makes two diffs the same diff
/// whatever the commits around them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentChange {
    pub path: String,
    /// `None` when the file is added.
    pub old: Option<Side>,
    /// `None` when the file is deleted.
    pub new: Option<Side>,
}

/// Who made a commit, and when (seconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub email: String,
    pub time: i64,
}

/// The metadata of a commit that decisions and audit records need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub id: CommitId,
    pub author: Person,
    pub committer: Person,
    /// The first paragraph of the message, folded onto one line.
    pub summary: String,
    pub parents: Vec<CommitId>,
}

/// A commit's signature and the bytes it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSignature {
    /// The `gpgsig` header's value, continuation lines joined (an armored PGP, SSH or X.509
    /// signature).
    pub signature: Vec<u8>,
    /// The commit object without the `gpgsig` header: what was signed.
    pub signed: Vec<u8>,
}

/// A commit object as [`read_commit_object`] reads it: who it names and its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitObject {
    /// Trimmed and lower-cased.
    pub author_email: String,
    pub committer_email: String,
    /// `None` for an unsigned commit. Nothing is verified here: that is the caller's,
    /// against keys it trusts.
    pub signature: Option<CommitSignature>,
}

/// Reads the raw commit object `bytes` of commit `id`, after checking the bytes hash to
/// `id` (so recorded bytes cannot stand in for another commit). Pure: no repository.
pub fn read_commit_object(id: &CommitId, bytes: &[u8]) -> Result<CommitObject, RepoError> {
    let oid = id.object_id()?;
    let bad = |message: String| RepoError::Git {
        context: format!("reading commit object {id}"),
        message,
    };
    let computed = gix::objs::compute_hash(oid.kind(), gix::objs::Kind::Commit, bytes)
        .map_err(|e| bad(e.to_string()))?;
    if computed != oid {
        return Err(bad(format!(
            "the bytes hash to {computed}, not to the commit id"
        )));
    }
    let commit =
        gix::objs::CommitRef::from_bytes(bytes, oid.kind()).map_err(|e| bad(e.to_string()))?;
    let author = commit.author().map_err(|e| bad(e.to_string()))?;
    let committer = commit.committer().map_err(|e| bad(e.to_string()))?;
    let author_email = author.email.to_str_lossy().trim().to_ascii_lowercase();
    let committer_email = committer.email.to_str_lossy().trim().to_ascii_lowercase();
    let signature = gix::objs::CommitRefIter::signature(bytes, oid.kind())
        .map_err(|e| bad(e.to_string()))?
        .map(|(signature, signed)| CommitSignature {
            signature: signature.to_vec(),
            signed: signed.to_bstring().to_vec(),
        });
    Ok(CommitObject {
        author_email,
        committer_email,
        signature,
    })
}

impl Repo {
    /// Opens the repository containing `path` (a work tree, a directory inside one, or a
    /// git dir).
    pub fn open(path: impl AsRef<Path>) -> Result<Repo, RepoError> {
        let path = path.as_ref();
        if !path.is_dir() {
            return Err(RepoError::NotARepository {
                path: path.to_owned(),
                message: "no such directory".to_owned(),
            });
        }
        let mut inner = gix::discover(path).map_err(|e| RepoError::NotARepository {
            path: path.to_owned(),
            message: format!("{e}"),
        })?;
        // Decoded objects, most recently used first: a decision reads the base's commit and
        // trees several times (diff, governed files, authors, diff identity), and a server
        // decides many changes against the same few bases.
        inner.object_cache_size_if_unset(OBJECT_CACHE_BYTES);
        Ok(Repo {
            inner: Rc::new(inner),
            diff_cache: Rc::default(),
            path: path.to_owned(),
        })
    }

    /// [`Repo::open`], reusing what this thread opened at `path` before: gix opens a
    /// repository by discovering it and reading its configuration, which costs more than
    /// a diff. Per thread because gix's handles are single-threaded (`Rc`) in this build;
    /// a server's blocking pool reuses its threads, so each opens a repository once.
    /// Sharing is safe for repositories others push to: references are read from disk on
    /// every lookup and the object database picks up new packs and objects when one is
    /// missing; only a change of the repository's configuration needs a restart.
    pub fn open_shared(path: impl AsRef<Path>) -> Result<Repo, RepoError> {
        thread_local! {
            static OPENED: RefCell<HashMap<PathBuf, Repo>> = RefCell::default();
        }
        let path = path.as_ref();
        if let Some(opened) = OPENED.with_borrow(|opened| opened.get(path).map(Repo::share)) {
            return Ok(opened);
        }
        let opened = Repo::open(path)?;
        OPENED.with_borrow_mut(|known| known.insert(path.to_owned(), opened.share()));
        Ok(opened)
    }

    /// Another handle on the same gix repository and caches (same thread).
    fn share(&self) -> Repo {
        Repo {
            inner: self.inner.clone(),
            diff_cache: self.diff_cache.clone(),
            path: self.path.clone(),
        }
    }

    /// The work tree root, `None` for a bare repository.
    pub fn work_dir(&self) -> Option<&Path> {
        self.inner.workdir()
    }

    /// Whether the repository is a shallow clone.
    pub fn is_shallow(&self) -> bool {
        // An unreadable shallow-file location only matters for error wording; treat it as not shallow.
        self.inner.is_shallow().unwrap_or(false)
    }

    /// Resolves a revision (`HEAD~2`, a branch, a tag, a full or short id) to a commit.
    pub fn resolve(&self, rev: &str) -> Result<CommitId, RepoError> {
        if rev.trim().is_empty() {
            return Err(RepoError::RevNotFound {
                rev: rev.to_owned(),
                message: "the revision is empty".to_owned(),
            });
        }
        // A full object id, as the server's callers send: looked up directly, as git does
        // (a full id wins over a ref of the same name), without rev-parse's prefix search
        // through every pack index. Anything else, or an id that is absent, takes the
        // general path and its error messages.
        if rev.len() == self.inner.object_hash().len_in_hex()
            && let Ok(id) = gix::ObjectId::from_hex(rev.as_bytes())
            && self.inner.has_object(id)
        {
            return self.peel_to_commit(rev, id);
        }
        if !self.has_commits()? {
            return Err(RepoError::EmptyRepository {
                path: self.path.clone(),
                rev: rev.to_owned(),
            });
        }
        match self.inner.rev_parse_single(rev) {
            Ok(id) => self.peel_to_commit(rev, id.detach()),
            Err(e) => Err(self.unresolvable(rev, format!("{e}"))),
        }
    }

    /// A revision that rev-parse rejected. In a shallow clone, a revision whose starting
    /// point resolves but whose ancestry walk fails (`HEAD~5` past the boundary), or an id
    /// that is not present, most likely lies beyond the fetched history.
    fn unresolvable(&self, rev: &str, gix_message: String) -> RepoError {
        let start = rev.find(['~', '^', '@', ':']).map_or(rev, |at| &rev[..at]);
        let navigates = start.len() < rev.len() && self.inner.rev_parse_single(start).is_ok();
        let looks_like_id = rev.len() >= 4 && rev.chars().all(|c| c.is_ascii_hexdigit());
        if self.is_shallow() && (navigates || looks_like_id) {
            return RepoError::ShallowHistory {
                rev: rev.to_owned(),
                detail: gix_message,
            };
        }
        // gix's own wording ("couldn't parse revision") reads like a syntax error for a
        // simple typo, so the common cases get plain words.
        let message = if navigates {
            format!("`{start}` exists but `{rev}` goes beyond its history ({gix_message})")
        } else if looks_like_id {
            format!("no commit id starts with `{rev}`")
        } else if start == rev {
            format!("no branch, tag or commit is named `{rev}`")
        } else {
            gix_message
        };
        RepoError::RevNotFound {
            rev: rev.to_owned(),
            message,
        }
    }

    fn has_commits(&self) -> Result<bool, RepoError> {
        let head = self
            .inner
            .head()
            .map_err(|e| git_error("reading HEAD", &e))?;
        if !head.is_unborn() {
            return Ok(true);
        }
        // HEAD may point at an unborn branch while other branches exist (an orphan checkout).
        let references = self
            .inner
            .references()
            .map_err(|e| git_error("listing references", &e))?;
        let mut all = references
            .all()
            .map_err(|e| git_error("listing references", &e))?;
        Ok(all.next().is_some())
    }

    fn peel_to_commit(&self, rev: &str, id: gix::ObjectId) -> Result<CommitId, RepoError> {
        let object = match self.inner.try_find_object(id) {
            Ok(Some(object)) => object,
            Ok(None) => return Err(self.missing_commit(rev, id)),
            Err(e) => return Err(git_error(format!("reading object {id} for `{rev}`"), &e)),
        };
        let kind = object.kind;
        match object.peel_to_commit() {
            Ok(commit) => Ok(CommitId::from_object_id(commit.id)),
            Err(_) if kind != gix::objs::Kind::Tag => Err(RepoError::NotACommit {
                rev: rev.to_owned(),
                kind: kind.to_string(),
            }),
            Err(e) => Err(self.unresolvable(rev, format!("{e}"))),
        }
    }

    fn missing_commit(&self, rev: &str, id: gix::ObjectId) -> RepoError {
        let detail = format!("commit {id} is not in the object database");
        if self.is_shallow() {
            RepoError::ShallowHistory {
                rev: rev.to_owned(),
                detail,
            }
        } else {
            RepoError::RevNotFound {
                rev: rev.to_owned(),
                message: detail,
            }
        }
    }

    fn find_commit(&self, id: &CommitId) -> Result<gix::Commit<'_>, RepoError> {
        let oid = id.object_id()?;
        match self.inner.try_find_object(oid) {
            Ok(Some(object)) if object.kind == gix::objs::Kind::Commit => Ok(object.into_commit()),
            Ok(Some(object)) => Err(RepoError::NotACommit {
                rev: id.to_string(),
                kind: object.kind.to_string(),
            }),
            Ok(None) => Err(self.missing_commit(id.as_str(), oid)),
            Err(e) => Err(git_error(format!("reading commit {id}"), &e)),
        }
    }

    fn tree_of(&self, id: &CommitId) -> Result<gix::Tree<'_>, RepoError> {
        self.find_commit(id)?
            .tree()
            .map_err(|e| git_error(format!("reading the tree of commit {id}"), &e))
    }

    /// gix's `diff_tree_to_tree` without the index: that builds the blob cache (used to
    /// compare contents for rename detection) with `.gitattributes` taken from the index,
    /// and a bare repository has none, so gix rebuilds one from the whole HEAD tree, object
    /// by object, on every call: most of the cost of a server decision. Here no
    /// `.gitattributes` apply (a diff of two commits should not depend on what the clone's
    /// HEAD or index holds anyway); both sides are blobs from the object database, already
    /// in git's form, so only rename similarity of files with diff attributes could differ.
    fn tree_changes(
        &self,
        old: &gix::Tree<'_>,
        new: &gix::Tree<'_>,
        options: gix::diff::Options,
    ) -> Result<Vec<ChangeDetached>, gix::Error> {
        use gix::error::ResultExt as _;
        let repo = &self.inner;
        let mut cached = self.diff_cache.borrow_mut();
        let cache = match cached.as_mut() {
            Some(cache) => cache,
            None => {
                let no_index = gix::index::State::new(repo.object_hash());
                let attributes = repo
                    .attributes_only(
                        &no_index,
                        gix::worktree::stack::state::attributes::Source::IdMapping,
                    )?
                    .detach();
                cached.insert(gix::diff::resource_cache(
                    repo,
                    gix::diff::blob::pipeline::Mode::ToGit,
                    attributes,
                    gix::diff::blob::pipeline::WorktreeRoots::default(),
                )?)
            }
        };
        let mut out = Vec::new();
        let diffed = gix::diff::tree_with_rewrites(
            gix::objs::TreeRefIter::from_bytes(&old.data, old.id.kind()),
            gix::objs::TreeRefIter::from_bytes(&new.data, new.id.kind()),
            &mut *cache,
            &mut Default::default(),
            &repo.objects,
            |change| {
                out.push(change.into_owned());
                Ok(std::ops::ControlFlow::Continue(()))
            },
            options.into(),
        )
        .or_error();
        // The blobs read to detect renames are not needed again.
        cache.clear_resource_cache();
        diffed?;
        Ok(out)
    }

    /// The snapshot of every file at `commit`.
    pub fn commit_tree(&self, commit: &CommitId) -> Result<CommitTree, RepoError> {
        let tree = self.tree_of(commit)?;
        let files = tree
            .traverse()
            .breadthfirst
            .files()
            .map_err(|e| git_error(format!("walking the tree of commit {commit}"), &e))?;
        let mut entries: Vec<(String, gix::ObjectId, bool)> = Vec::with_capacity(files.len());
        let mut non_utf8_paths = Vec::new();
        for file in files {
            // Submodules (commit entries) have no content in this repository; trees are walked.
            if !file.mode.is_blob_or_symlink() {
                continue;
            }
            match file.filepath.to_str() {
                Ok(path) => entries.push((path.to_owned(), file.oid, file.mode.is_link())),
                Err(_) => non_utf8_paths.push(file.filepath.to_str_lossy().into_owned()),
            }
        }
        // Git orders tree entries with directories sorting as if suffixed by `/`; the
        // FileSource contract is plain byte order.
        entries.sort();
        non_utf8_paths.sort();
        let paths = entries.iter().map(|(p, _, _)| p.clone()).collect();
        Ok(CommitTree {
            repo: self.inner.clone(),
            commit: commit.clone(),
            paths,
            entries,
            non_utf8_paths,
        })
    }

    /// The files that differ between two commits, sorted by path, with renames detected
    /// (50% similarity, as git does by default). Directories are not reported, only the
    /// files inside them. Mode-only changes are `Modified`.
    ///
    /// A non-UTF-8 path is an error here (not a skip as in [`CommitTree`]): a change must
    /// never be judged on fewer paths than it touches. No differing file is [`RepoError::EmptyDiff`].
    pub fn diff(&self, base: &CommitId, head: &CommitId) -> Result<Vec<ChangedPath>, RepoError> {
        let old = self.tree_of(base)?;
        let new = self.tree_of(head)?;
        // Explicit options: the result must not depend on the user's `diff.renames` setting.
        let options =
            gix::diff::Options::default().with_rewrites(Some(gix::diff::Rewrites::default()));
        let changes = self
            .tree_changes(&old, &new, options)
            .map_err(|e| git_error(format!("diffing {base}..{head}"), &e))?;
        let context = || format!("the diff {}..{}", base.short(), head.short());
        let utf8 = |location: &BStr| -> Result<String, RepoError> {
            location
                .to_str()
                .map(str::to_owned)
                .map_err(|_| RepoError::NonUtf8Path {
                    path: location.to_str_lossy().into_owned(),
                    context: context(),
                })
        };
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            let (path, kind) = match change {
                ChangeDetached::Addition { entry_mode, .. }
                | ChangeDetached::Deletion { entry_mode, .. }
                    if entry_mode.is_tree() =>
                {
                    continue;
                }
                ChangeDetached::Addition { location, .. } => {
                    (utf8(location.as_ref())?, ChangeKind::Added)
                }
                ChangeDetached::Deletion { location, .. } => {
                    (utf8(location.as_ref())?, ChangeKind::Deleted)
                }
                ChangeDetached::Modification {
                    previous_entry_mode,
                    entry_mode,
                    ..
                } if previous_entry_mode.is_tree() && entry_mode.is_tree() => {
                    continue;
                }
                ChangeDetached::Modification { location, .. } => {
                    (utf8(location.as_ref())?, ChangeKind::Modified)
                }
                ChangeDetached::Rewrite { entry_mode, .. } if entry_mode.is_tree() => continue,
                ChangeDetached::Rewrite {
                    location,
                    copy: true,
                    ..
                } => (utf8(location.as_ref())?, ChangeKind::Added),
                ChangeDetached::Rewrite {
                    source_location,
                    location,
                    ..
                } => (
                    utf8(location.as_ref())?,
                    ChangeKind::Renamed {
                        from: utf8(source_location.as_ref())?,
                    },
                ),
            };
            out.push(ChangedPath { path, kind });
        }
        if out.is_empty() {
            return Err(RepoError::EmptyDiff {
                base: base.clone(),
                head: head.clone(),
            });
        }
        out.sort();
        Ok(out)
    }

    /// The content of the diff `base..head`: every file (not directory) whose mode or blob
    /// differs, with both sides, sorted by path. No rename detection: a rename is a deletion
    /// and an addition, so the result depends only on the two trees. Equal results mean the
    /// two heads change the base identically (a trivial rebase), whatever their commit ids,
    /// messages or committers. Non-UTF-8 paths are kept lossily: they still differ.
    pub fn diff_content(
        &self,
        base: &CommitId,
        head: &CommitId,
    ) -> Result<Vec<ContentChange>, RepoError> {
        let old = self.tree_of(base)?;
        let new = self.tree_of(head)?;
        let changes = self
            .tree_changes(&old, &new, gix::diff::Options::default())
            .map_err(|e| git_error(format!("diffing {base}..{head}"), &e))?;
        let side = |mode: gix::objs::tree::EntryMode, id: gix::ObjectId| {
            (!mode.is_tree()).then(|| Side {
                mode: mode.kind().as_octal_str().to_str_lossy().into_owned(),
                id: id.to_string(),
            })
        };
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            let (location, old, new) = match change {
                ChangeDetached::Addition {
                    location,
                    entry_mode,
                    id,
                    ..
                } => (location, None, side(entry_mode, id)),
                ChangeDetached::Deletion {
                    location,
                    entry_mode,
                    id,
                    ..
                } => (location, side(entry_mode, id), None),
                ChangeDetached::Modification {
                    location,
                    previous_entry_mode,
                    previous_id,
                    entry_mode,
                    id,
                } => (
                    location,
                    side(previous_entry_mode, previous_id),
                    side(entry_mode, id),
                ),
                // Not produced without rewrite tracking; kept as both sides for completeness.
                ChangeDetached::Rewrite {
                    location,
                    source_entry_mode,
                    source_id,
                    entry_mode,
                    id,
                    ..
                } => (
                    location,
                    side(source_entry_mode, source_id),
                    side(entry_mode, id),
                ),
            };
            if old.is_none() && new.is_none() {
                continue;
            }
            out.push(ContentChange {
                path: location.to_str_lossy().into_owned(),
                old,
                new,
            });
        }
        out.sort();
        Ok(out)
    }

    /// Every commit reachable from `head` and not from `base` (git's `base..head`), in the
    /// order the walk meets them, with author and committer: everyone whose hands were on
    /// the change.
    pub fn commits_between(
        &self,
        base: &CommitId,
        head: &CommitId,
    ) -> Result<Vec<CommitInfo>, RepoError> {
        let walk = self
            .inner
            .rev_walk([head.object_id()?])
            .with_hidden([base.object_id()?])
            // Every commit of the change is decoded anyway (`commit_info`), so a
            // commit-graph file would save nothing, and looking for one costs more file
            // opens and stats per walk than the walk of a typical change.
            .use_commit_graph(false)
            .all()
            .map_err(|e| git_error(format!("walking {base}..{head}"), &e))?;
        let mut commits = Vec::new();
        for info in walk {
            let info = info.map_err(|e| git_error(format!("walking {base}..{head}"), &e))?;
            commits.push(self.commit_info(&CommitId::from_object_id(info.id))?);
        }
        Ok(commits)
    }

    /// The raw bytes of commit `id`, as `git cat-file commit` prints them: what
    /// [`read_commit_object`] reads, and what a decision records so a commit's signature can
    /// be checked again offline.
    pub fn commit_object(&self, id: &CommitId) -> Result<Vec<u8>, RepoError> {
        Ok(self.find_commit(id)?.data.clone())
    }

    /// Every local branch (`refs/heads/<name>`) by its short name, with the commit it
    /// points at, sorted by name. A branch whose name is not UTF-8 or whose tip is not a
    /// commit is an error: a caller deciding what is protected must not skip one silently.
    pub fn branches(&self) -> Result<Vec<(String, CommitId)>, RepoError> {
        let references = self
            .inner
            .references()
            .map_err(|e| git_error("listing branches", &e))?;
        let iter = references
            .local_branches()
            .map_err(|e| git_error("listing branches", &e))?;
        let mut branches = Vec::new();
        for reference in iter {
            let mut reference = reference.map_err(|e| git_error("listing branches", &e))?;
            let name = reference
                .name()
                .shorten()
                .to_str()
                .map_err(|_| RepoError::NonUtf8Path {
                    path: reference.name().as_bstr().to_str_lossy().into_owned(),
                    context: "the repository's branch names".to_owned(),
                })?;
            let name = name.to_owned();
            let id = reference
                .peel_to_id()
                .map_err(|e| git_error(format!("reading branch {name}"), &e))?
                .detach();
            let tip = self.peel_to_commit(&name, id)?;
            branches.push((name, tip));
        }
        branches.sort();
        Ok(branches)
    }

    /// The commit branch `name` (`refs/heads/<name>`) points at, `None` when there is no
    /// such branch.
    pub fn branch_tip(&self, name: &str) -> Result<Option<CommitId>, RepoError> {
        // One lookup of `refs/heads/NAME` (loose, then packed), never a listing of every
        // branch: a server asks this on every proposal of repositories with many branches.
        let full = format!("refs/heads/{name}");
        let Some(mut reference) = self
            .inner
            .try_find_reference(full.as_str())
            .map_err(|e| git_error(format!("reading branch {name}"), &e))?
        else {
            return Ok(None);
        };
        let id = reference
            .peel_to_id()
            .map_err(|e| git_error(format!("reading branch {name}"), &e))?
            .detach();
        self.peel_to_commit(name, id).map(Some)
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors (git's `merge-base
    /// --is-ancestor`), by gix's merge-base: `ancestor` is its own best merge base with any
    /// commit it is an ancestor of. Both must be commits of this repository.
    pub fn is_ancestor(
        &self,
        ancestor: &CommitId,
        descendant: &CommitId,
    ) -> Result<bool, RepoError> {
        // Both looked up first, so a missing commit is named rather than walked past.
        self.find_commit(ancestor)?;
        self.find_commit(descendant)?;
        if ancestor == descendant {
            return Ok(true);
        }
        let one = ancestor.object_id()?;
        let base = self
            .inner
            .merge_base(one, descendant.object_id()?)
            .map_err(|e| {
                git_error(
                    format!("finding the merge base of {ancestor} and {descendant}"),
                    &e,
                )
            })?;
        Ok(base.is_some_and(|base| base.detach() == one))
    }

    /// The best common ancestor of `one` and `two` (git's `merge-base`), `None` when their
    /// histories never meet. Both must be commits of this repository. What a pull request's
    /// diff is taken from: GitHub shows `merge-base(base, head)..head`.
    pub fn merge_base(
        &self,
        one: &CommitId,
        two: &CommitId,
    ) -> Result<Option<CommitId>, RepoError> {
        self.find_commit(one)?;
        self.find_commit(two)?;
        if one == two {
            return Ok(Some(one.clone()));
        }
        let base = self
            .inner
            .merge_base(one.object_id()?, two.object_id()?)
            .map_err(|e| git_error(format!("finding the merge base of {one} and {two}"), &e))?;
        Ok(base.map(|id| CommitId::from_object_id(id.detach())))
    }

    /// Author, committer, summary and parents of a commit.
    pub fn commit_info(&self, id: &CommitId) -> Result<CommitInfo, RepoError> {
        let commit = self.find_commit(id)?;
        let context = || format!("decoding commit {id}");
        let person = |sig: gix::actor::SignatureRef<'_>| {
            let sig = sig.trim();
            Person {
                name: sig.name.to_str_lossy().into_owned(),
                email: sig.email.to_str_lossy().into_owned(),
                time: sig.seconds(),
            }
        };
        let author = person(commit.author().map_err(|e| git_error(context(), &e))?);
        let committer = person(commit.committer().map_err(|e| git_error(context(), &e))?);
        let summary = commit
            .message()
            .map_err(|e| git_error(context(), &e))?
            .summary()
            .to_str_lossy()
            .into_owned();
        let parents = commit
            .parent_ids()
            .map(|p| CommitId::from_object_id(p.detach()))
            .collect();
        Ok(CommitInfo {
            id: id.clone(),
            author,
            committer,
            summary,
            parents,
        })
    }

    /// Up to `n` commits following first parents from `rev`, newest first, `rev` itself
    /// included. Stops early at a root commit. Reaching the boundary of a shallow clone
    /// before `n` commits is [`RepoError::ShallowHistory`], because a silently shorter
    /// history would replay fewer decisions than asked.
    pub fn first_parent_history(&self, rev: &str, n: usize) -> Result<Vec<CommitId>, RepoError> {
        let mut history = Vec::with_capacity(n.min(1024));
        if n == 0 {
            return Ok(history);
        }
        let shallow_boundary: Vec<gix::ObjectId> = self
            .inner
            .shallow_commits()
            .ok()
            .flatten()
            .map(|commits| commits.iter().copied().collect())
            .unwrap_or_default();
        let mut current = self.resolve(rev)?;
        loop {
            let commit = self.find_commit(&current)?;
            let parent = commit.parent_ids().next().map(|p| p.detach());
            let oid = commit.id;
            history.push(current);
            if history.len() == n {
                break;
            }
            let Some(parent) = parent else { break };
            if shallow_boundary.contains(&oid) {
                return Err(RepoError::ShallowHistory {
                    rev: rev.to_owned(),
                    detail: format!(
                        "history ends at the shallow boundary {oid} after {} commits",
                        history.len()
                    ),
                });
            }
            current = CommitId::from_object_id(parent);
        }
        Ok(history)
    }
}

/// Every file of one commit, read lazily from the object database.
///
/// Paths that are not UTF-8 are skipped and listed in [`CommitTree::non_utf8_paths`] for the
/// caller to report: one odd legacy file name must not make a repository's governed state
/// unreadable, and the diff (which does error on them) guarantees a change touching such a
/// path is never judged without it. Submodule entries are not files and are not listed;
/// symbolic links are listed, and reading one is [`SourceError::Symlink`] with its target
/// path (what git stores), never what it points to.
pub struct CommitTree {
    repo: Rc<gix::Repository>,
    commit: CommitId,
    paths: Vec<String>,
    /// Path, blob id, and whether the entry is a symbolic link; sorted by path.
    entries: Vec<(String, gix::ObjectId, bool)>,
    non_utf8_paths: Vec<String>,
}

impl fmt::Debug for CommitTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommitTree")
            .field("commit", &self.commit)
            .field("files", &self.paths.len())
            .field("non_utf8_paths", &self.non_utf8_paths)
            .finish()
    }
}

impl CommitTree {
    pub fn commit(&self) -> &CommitId {
        &self.commit
    }

    /// Paths skipped because they are not UTF-8, shown lossily, sorted.
    pub fn non_utf8_paths(&self) -> &[String] {
        &self.non_utf8_paths
    }
}

impl FileSource for CommitTree {
    fn paths(&self) -> &[String] {
        &self.paths
    }

    fn read(&self, path: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, SourceError> {
        let Ok(index) = self
            .entries
            .binary_search_by(|(p, _, _)| p.as_str().cmp(path))
        else {
            return Ok(None);
        };
        let (_, id, symlink) = self.entries[index];
        let unreadable = |e: &dyn std::fmt::Display| SourceError::Unreadable {
            path: path.to_owned(),
            message: format!("blob {id} of commit {}: {e:#}", self.commit.short()),
        };
        // The header gives the size without inflating the blob: a huge one is refused
        // before it is in memory.
        let header = self.repo.find_header(id).map_err(|e| unreadable(&e))?;
        if symlink {
            // A link's blob is its target path, short by nature; bound it all the same.
            let target = if header.size() <= 4096 {
                let object = self.repo.find_object(id).map_err(|e| unreadable(&e))?;
                object.data.to_str_lossy().into_owned()
            } else {
                "(a target path longer than 4096 bytes)".to_owned()
            };
            return Err(SourceError::Symlink {
                path: path.to_owned(),
                target,
            });
        }
        if header.size() > max_bytes {
            return Err(SourceError::TooLarge {
                path: path.to_owned(),
                max: max_bytes,
            });
        }
        let object = self.repo.find_object(id).map_err(|e| unreadable(&e))?;
        Ok(Some(object.detach().data))
    }
}

/// Directories never listed when a work tree is not a git repository: version control
/// metadata and build outputs that no descriptor lives in.
const SKIPPED_DIRS: [&str; 3] = [".git", "target", "node_modules"];

/// The files of a directory on disk, read lazily.
///
/// When `root` is a git work tree root (it has a `.git`), the files are what `git status`
/// shows: the index's tracked files and the untracked files that no ignore rule
/// (`.gitignore`, `.git/info/exclude`, `core.excludesFile`) excludes, so a policy or catalog
/// file just written and not yet added is the one checked; [`WorkTree::untracked_read`] says
/// which untracked files a read used. Otherwise every regular file and symbolic link below `root` is listed, skipping `.git`,
/// `target` and `node_modules`. Non-UTF-8 paths are skipped and reported as for
/// [`CommitTree`].
///
/// Reads never leave `root`: only listed paths can be read, each is opened one component
/// at a time without following symbolic links (a linked directory or file is refused, not
/// followed), only a regular file is read, and never more than the caller's limit. A
/// symbolic link, tracked as one or found on disk, reads as [`SourceError::Symlink`] with
/// its target path, as git stores it.
#[derive(Debug)]
pub struct WorkTree {
    root: PathBuf,
    paths: Vec<String>,
    /// Paths the index records as symbolic links (on disk they may be plain files holding
    /// the target, as git writes them where links are not supported).
    symlinks: std::collections::HashSet<String>,
    non_utf8_paths: Vec<String>,
    /// Listed paths that are not in the index (sorted), and those of them read so far.
    untracked: Vec<String>,
    untracked_read: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl WorkTree {
    pub fn open(root: impl AsRef<Path>) -> Result<WorkTree, RepoError> {
        let root = root.as_ref().to_owned();
        if !root.is_dir() {
            return Err(RepoError::Io {
                path: root,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
            });
        }
        let mut paths = Vec::new();
        let mut symlinks = std::collections::HashSet::new();
        let mut non_utf8_paths = Vec::new();
        let mut untracked = Vec::new();
        if root.join(".git").exists() {
            let repo = gix::open(&root).map_err(|e| RepoError::NotARepository {
                path: root.clone(),
                message: format!("{e}"),
            })?;
            let index = repo
                .index_or_empty()
                .map_err(|e| git_error("reading the index", &e))?;
            for entry in index.entries() {
                let mode = entry.mode;
                if mode.contains(gix::index::entry::Mode::COMMIT)
                    || mode == gix::index::entry::Mode::DIR
                {
                    continue;
                }
                let path = entry.path(&index);
                match path.to_str() {
                    Ok(path) => {
                        if mode == gix::index::entry::Mode::SYMLINK {
                            symlinks.insert(path.to_owned());
                        }
                        paths.push(path.to_owned());
                    }
                    Err(_) => non_utf8_paths.push(path.to_str_lossy().into_owned()),
                }
            }
            paths.sort();
            // Conflicted files appear once per stage in the index.
            paths.dedup();
            untracked = untracked_files(&repo, &index, &root, &paths, &mut non_utf8_paths)?;
            paths.extend(untracked.iter().cloned());
        } else {
            walk(&root, "", &mut paths, &mut non_utf8_paths)?;
        }
        paths.sort();
        paths.dedup();
        non_utf8_paths.sort();
        non_utf8_paths.dedup();
        Ok(WorkTree {
            root,
            paths,
            symlinks,
            non_utf8_paths,
            untracked,
            untracked_read: std::sync::Mutex::default(),
        })
    }

    /// The listed files that are not in the index (untracked, not ignored), sorted.
    pub fn untracked(&self) -> &[String] {
        &self.untracked
    }

    /// The untracked (not ignored) files that reads so far used, sorted: what a command
    /// checked that a commit would not hold yet.
    pub fn untracked_read(&self) -> Vec<String> {
        self.untracked_read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Paths skipped because they are not UTF-8, shown lossily, sorted.
    pub fn non_utf8_paths(&self) -> &[String] {
        &self.non_utf8_paths
    }
}

/// The files on disk below `root` that are not in the index (`tracked`, sorted) and that
/// no ignore rule excludes, as `git status --untracked-files=all` lists them: a file in an
/// ignored directory is ignored. `.git`, `target` and `node_modules` are never walked.
fn untracked_files(
    repo: &gix::Repository,
    index: &gix::index::State,
    root: &Path,
    tracked: &[String],
    non_utf8: &mut Vec<String>,
) -> Result<Vec<String>, RepoError> {
    let mut on_disk = Vec::new();
    walk(root, "", &mut on_disk, non_utf8)?;
    let mut excludes = repo
        .excludes(
            index,
            None,
            gix::worktree::stack::state::ignore::Source::WorktreeThenIdMappingIfNotSkipped,
        )
        .map_err(|e| git_error("reading the ignore rules", &e))?;
    let mut excluded_dirs: std::collections::HashMap<String, bool> =
        std::collections::HashMap::new();
    let mut untracked = Vec::new();
    'files: for path in on_disk {
        if tracked.binary_search(&path).is_ok() {
            continue;
        }
        // A directory that is ignored hides everything below it.
        let mut end = 0;
        while let Some(slash) = path[end..].find('/') {
            end += slash;
            let dir = &path[..end];
            let ignored = match excluded_dirs.get(dir) {
                Some(ignored) => *ignored,
                None => {
                    let ignored = excludes
                        .at_entry(dir, Some(gix::index::entry::Mode::DIR))
                        .map_err(|e| git_error("matching the ignore rules", &e))?
                        .is_excluded();
                    excluded_dirs.insert(dir.to_owned(), ignored);
                    ignored
                }
            };
            if ignored {
                continue 'files;
            }
            end += 1;
        }
        let ignored = excludes
            .at_entry(path.as_str(), Some(gix::index::entry::Mode::FILE))
            .map_err(|e| git_error("matching the ignore rules", &e))?
            .is_excluded();
        if !ignored {
            untracked.push(path);
        }
    }
    untracked.sort();
    Ok(untracked)
}

fn walk(
    dir: &Path,
    prefix: &str,
    paths: &mut Vec<String>,
    non_utf8: &mut Vec<String>,
) -> Result<(), RepoError> {
    let io = |source| RepoError::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            non_utf8.push(format!("{prefix}{}", name.to_string_lossy()));
            continue;
        };
        let relative = format!("{prefix}{name}");
        // `file_type` does not follow symlinks, so a linked directory cannot loop the walk.
        // Links are listed as git would track them, whatever they point to; devices and
        // pipes are not files git tracks.
        let file_type = entry.file_type().map_err(io)?;
        if file_type.is_dir() {
            if !SKIPPED_DIRS.contains(&name) {
                walk(&entry.path(), &format!("{relative}/"), paths, non_utf8)?;
            }
        } else if file_type.is_file() || file_type.is_symlink() {
            paths.push(relative);
        }
    }
    Ok(())
}

impl FileSource for WorkTree {
    fn paths(&self) -> &[String] {
        &self.paths
    }

    fn read(&self, path: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, SourceError> {
        if self
            .paths
            .binary_search_by(|p| p.as_str().cmp(path))
            .is_err()
        {
            return Ok(None);
        }
        let tracked_link = self.symlinks.contains(path);
        let read = match beneath::read(&self.root, path, max_bytes, tracked_link)? {
            // Tracked in the index but deleted on disk: the snapshot has no such file.
            beneath::Read::Missing => return Ok(None),
            beneath::Read::File(bytes) => bytes,
        };
        if self
            .untracked
            .binary_search_by(|p| p.as_str().cmp(path))
            .is_ok()
        {
            self.untracked_read
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(path.to_owned());
        }
        Ok(Some(read))
    }
}

/// Reading a file below a root without ever leaving it (see [`WorkTree`]).
mod beneath {
    use std::io::Read as _;
    use std::path::Path;

    use countersign_graph::SourceError;
    use gix::bstr::ByteSlice;

    pub(super) enum Read {
        File(Vec<u8>),
        Missing,
    }

    fn unreadable(path: &str, message: impl std::fmt::Display) -> SourceError {
        SourceError::Unreadable {
            path: path.to_owned(),
            message: message.to_string(),
        }
    }

    /// A file's bytes, read through `file` (already opened without following links):
    /// regular files only, at most `max_bytes`.
    fn bounded(path: &str, file: std::fs::File, max_bytes: u64) -> Result<Vec<u8>, SourceError> {
        let meta = file.metadata().map_err(|e| unreadable(path, e))?;
        if !meta.is_file() {
            return Err(unreadable(
                path,
                "not a regular file; rule files must be regular files",
            ));
        }
        if meta.len() > max_bytes {
            return Err(SourceError::TooLarge {
                path: path.to_owned(),
                max: max_bytes,
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        // The file may grow between the stat and the read; `take` keeps the bound.
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| unreadable(path, e))?;
        if bytes.len() as u64 > max_bytes {
            return Err(SourceError::TooLarge {
                path: path.to_owned(),
                max: max_bytes,
            });
        }
        Ok(bytes)
    }

    fn symlink(path: &str, target: &[u8]) -> SourceError {
        SourceError::Symlink {
            path: path.to_owned(),
            target: target.to_str_lossy().into_owned(),
        }
    }

    /// Opens `rel` below `root` one component at a time with `O_NOFOLLOW`, so no link, in
    /// the file's name or in a directory above it, is followed; race-free, since each step
    /// opens relative to the directory the previous one opened.
    #[cfg(unix)]
    pub(super) fn read(
        root: &Path,
        rel: &str,
        max_bytes: u64,
        tracked_link: bool,
    ) -> Result<Read, SourceError> {
        use rustix::fs::{Mode, OFlags};
        use rustix::io::Errno;

        let open_dir = |dir: &rustix::fd::OwnedFd, name: &str| {
            rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        let mut dir = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| unreadable(rel, e))?;
        let mut parts = rel.split('/').peekable();
        let mut walked = String::new();
        while let Some(part) = parts.next() {
            if part.is_empty() || part == "." || part == ".." {
                return Err(unreadable(rel, "not a repository-relative path"));
            }
            if !walked.is_empty() {
                walked.push('/');
            }
            walked.push_str(part);
            if parts.peek().is_some() {
                dir = match open_dir(&dir, part) {
                    Ok(next) => next,
                    Err(Errno::NOENT) => return Ok(Read::Missing),
                    // ELOOP (a link, refused by O_NOFOLLOW) or ENOTDIR (a link or a file
                    // where a directory should be).
                    Err(Errno::LOOP | Errno::NOTDIR) => {
                        let target = rustix::fs::readlinkat(&dir, part, Vec::new())
                            .map(|t| t.into_bytes())
                            .unwrap_or_default();
                        return Err(unreadable(
                            rel,
                            format!(
                                "directory `{walked}` is a symlink (to `{}`) or not a directory; \
                                 countersign never follows links",
                                target.to_str_lossy()
                            ),
                        ));
                    }
                    Err(e) => return Err(unreadable(rel, e)),
                };
                continue;
            }
            // The file itself. NONBLOCK: opening a FIFO must not wait for a writer (it is
            // refused as not a regular file right after).
            let opened = rustix::fs::openat(
                &dir,
                part,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
                Mode::empty(),
            );
            return match opened {
                Err(Errno::NOENT) => Ok(Read::Missing),
                Err(Errno::LOOP) => {
                    let target = rustix::fs::readlinkat(&dir, part, Vec::new())
                        .map_err(|e| unreadable(rel, e))?;
                    Err(symlink(rel, target.as_bytes()))
                }
                Err(e) => Err(unreadable(rel, e)),
                Ok(fd) => {
                    let file = std::fs::File::from(fd);
                    if tracked_link {
                        // Git wrote the link as a plain file holding its target (links
                        // unsupported here); it is still a link.
                        let target = bounded(rel, file, 4096).unwrap_or_default();
                        return Err(symlink(rel, &target));
                    }
                    bounded(rel, file, max_bytes).map(Read::File)
                }
            };
        }
        Err(unreadable(rel, "empty path"))
    }

    /// Without `openat`: every component checked with `symlink_metadata` before the open.
    /// Weaker than the Unix path (a link swapped in between the check and the open is
    /// followed), which is why countersign's supported platforms are Unix.
    #[cfg(not(unix))]
    pub(super) fn read(
        root: &Path,
        rel: &str,
        max_bytes: u64,
        tracked_link: bool,
    ) -> Result<Read, SourceError> {
        let mut at = root.to_path_buf();
        for part in rel.split('/') {
            if part.is_empty() || part == "." || part == ".." {
                return Err(unreadable(rel, "not a repository-relative path"));
            }
            at.push(part);
            match std::fs::symlink_metadata(&at) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::Missing),
                Err(e) => return Err(unreadable(rel, e)),
                Ok(m) if m.file_type().is_symlink() => {
                    let target = std::fs::read_link(&at).unwrap_or_default();
                    return Err(symlink(rel, target.to_string_lossy().as_bytes()));
                }
                Ok(_) => {}
            }
        }
        let file = std::fs::File::open(&at).map_err(|e| unreadable(rel, e))?;
        if tracked_link {
            let target = bounded(rel, file, 4096).unwrap_or_default();
            return Err(symlink(rel, &target));
        }
        bounded(rel, file, max_bytes).map(Read::File)
    }
}
