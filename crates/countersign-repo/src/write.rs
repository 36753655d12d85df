//! Building git repositories from code, for tests and `countersign demo`.
//!
//! [`RepoWriter`] creates commits on `main` with explicit authors and times, so the repositories
//! it makes are byte-for-byte reproducible. It is not a general git client: no merge commits
//! (a branch only moves by a commit on it or a fast-forward), no checkout of arbitrary states
//! beyond [`RepoWriter::write_worktree`].

use std::path::{Path, PathBuf};

use gix::bstr::{BString, ByteSlice};
use gix::objs::tree::EntryKind;

use crate::git::{CommitId, RepoError, git_error};

/// The branch every commit goes to.
pub const MAIN_BRANCH: &str = "refs/heads/main";

/// What a commit does to one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    File(Vec<u8>),
    Executable(Vec<u8>),
    /// A symbolic link to the given target.
    Symlink(String),
    /// Delete the path (no error when it does not exist).
    Absent,
}

/// Writes commits into a non-bare repository.
pub struct RepoWriter {
    repo: gix::Repository,
    dir: PathBuf,
    /// The commit whose files `write_worktree` last wrote, so the next call removes what is gone.
    written: Option<CommitId>,
}

impl std::fmt::Debug for RepoWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoWriter")
            .field("dir", &self.dir)
            .finish()
    }
}

impl RepoWriter {
    /// Creates a new repository in `dir` (created if missing) with `HEAD` on `main`, whatever
    /// the user's `init.defaultBranch` says.
    pub fn init(dir: impl AsRef<Path>) -> Result<RepoWriter, RepoError> {
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir).map_err(|source| RepoError::Io {
            path: dir.clone(),
            source,
        })?;
        let repo = gix::init(&dir)
            .map_err(|e| git_error(format!("creating a repository in {}", dir.display()), &e))?;
        let on_main = repo
            .head_name()
            .map_err(|e| git_error("reading HEAD", &e))?
            .is_some_and(|name| name.as_bstr() == MAIN_BRANCH);
        if !on_main {
            use gix::refs::Target;
            use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit};
            let edit = RefEdit {
                change: Change::Update {
                    log: LogChange::default(),
                    expected: PreviousValue::Any,
                    new: Target::Symbolic(MAIN_BRANCH.try_into().map_err(|e| RepoError::Git {
                        context: "naming the main branch".to_owned(),
                        message: format!("{e}"),
                    })?),
                },
                name: "HEAD".try_into().map_err(|e| RepoError::Git {
                    context: "naming HEAD".to_owned(),
                    message: format!("{e}"),
                })?,
                deref: false,
            };
            repo.edit_reference(edit)
                .map_err(|e| git_error("pointing HEAD at main", &e))?;
        }
        Ok(RepoWriter {
            repo,
            dir,
            written: None,
        })
    }

    /// Opens a repository this type wrote, whose working directory shows `main`'s tip (as
    /// [`RepoWriter::write_worktree`] left it): the next `write_worktree` removes what `main`
    /// had and the new commit lacks.
    pub fn open(dir: impl AsRef<Path>) -> Result<RepoWriter, RepoError> {
        let dir = dir.as_ref().to_owned();
        let repo = gix::open(&dir)
            .map_err(|e| git_error(format!("opening the repository in {}", dir.display()), &e))?;
        let mut writer = RepoWriter {
            repo,
            dir,
            written: None,
        };
        writer.written = writer.tip(MAIN_BRANCH)?.map(CommitId::from_object_id);
        Ok(writer)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Moves `branch` (a full ref name) forward to `to`, as `git merge --ff-only` does: `to`
    /// must descend from the branch's tip, and the tip must not move meanwhile.
    pub fn fast_forward(&mut self, branch: &str, to: &CommitId) -> Result<(), RepoError> {
        use gix::refs::transaction::PreviousValue;
        let tip = self.tip(branch)?.ok_or_else(|| RepoError::Git {
            context: format!("fast-forwarding {branch}"),
            message: "no such branch".to_owned(),
        })?;
        let target = to.object_id()?;
        let descends = tip == target
            || self
                .repo
                .merge_base(tip, target)
                .is_ok_and(|base| base.is_some_and(|base| base.detach() == tip));
        if !descends {
            return Err(RepoError::Git {
                context: format!("fast-forwarding {branch} to {to}"),
                message: format!("{to} does not descend from the tip {tip}"),
            });
        }
        self.repo
            .reference(
                branch,
                target,
                PreviousValue::MustExistAndMatch(tip.into()),
                format!("fast-forward to {to}"),
            )
            .map_err(|e| git_error(format!("fast-forwarding {branch} to {to}"), &e))?;
        Ok(())
    }

    /// Commits file changes on top of `main`: `Some(bytes)` writes a regular file, `None`
    /// deletes. `author` is `Name <email>` and is also the committer; `time` is seconds since
    /// the Unix epoch, UTC.
    pub fn commit<P, B>(
        &mut self,
        files: impl IntoIterator<Item = (P, Option<B>)>,
        message: &str,
        author: &str,
        time: i64,
    ) -> Result<CommitId, RepoError>
    where
        P: AsRef<[u8]>,
        B: Into<Vec<u8>>,
    {
        let entries = files_to_entries(files);
        self.commit_entries(entries, message, author, time)
    }

    /// Like [`RepoWriter::commit`] with full control of each entry (modes, symlinks) and
    /// paths given as bytes, so tests can write non-UTF-8 names.
    pub fn commit_entries<P: AsRef<[u8]>>(
        &mut self,
        entries: impl IntoIterator<Item = (P, Content)>,
        message: &str,
        author: &str,
        time: i64,
    ) -> Result<CommitId, RepoError> {
        let parent = self.tip(MAIN_BRANCH)?;
        self.commit_to(MAIN_BRANCH, parent, entries, message, author, time)
    }

    /// Commits file changes on top of `parent` and points `branch` (a full ref name such as
    /// `refs/heads/topic`) at the result, leaving `main` alone: how tests and the demo
    /// propose several independent changes against one base.
    pub fn commit_on<P, B>(
        &mut self,
        branch: &str,
        parent: &CommitId,
        files: impl IntoIterator<Item = (P, Option<B>)>,
        message: &str,
        author: &str,
        time: i64,
    ) -> Result<CommitId, RepoError>
    where
        P: AsRef<[u8]>,
        B: Into<Vec<u8>>,
    {
        self.commit_on_as(branch, parent, files, message, author, author, time)
    }

    /// [`RepoWriter::commit_on`] with a committer other than the author, as when a service
    /// account rebases or applies someone else's commit.
    #[allow(clippy::too_many_arguments)] // Each is one field of the commit; a struct would only rename them.
    pub fn commit_on_as<P, B>(
        &mut self,
        branch: &str,
        parent: &CommitId,
        files: impl IntoIterator<Item = (P, Option<B>)>,
        message: &str,
        author: &str,
        committer: &str,
        time: i64,
    ) -> Result<CommitId, RepoError>
    where
        P: AsRef<[u8]>,
        B: Into<Vec<u8>>,
    {
        let entries = files_to_entries(files);
        let parent = Some(parent.object_id()?);
        self.commit_by(branch, parent, entries, message, author, committer, time)
    }

    /// The commit `main` points at.
    pub fn head(&self) -> Result<CommitId, RepoError> {
        match self.tip(MAIN_BRANCH)? {
            Some(id) => Ok(CommitId::from_object_id(id)),
            None => Err(RepoError::EmptyRepository {
                path: self.dir.clone(),
                rev: MAIN_BRANCH.to_owned(),
            }),
        }
    }

    fn tip(&self, reference: &str) -> Result<Option<gix::ObjectId>, RepoError> {
        self.repo
            .try_find_reference(reference)
            .map_err(|e| git_error(format!("reading {reference}"), &e))?
            .map(|mut found| found.peel_to_id().map(|id| id.detach()))
            .transpose()
            .map_err(|e| git_error(format!("reading {reference}"), &e))
    }

    fn commit_to<P: AsRef<[u8]>>(
        &mut self,
        branch: &str,
        parent: Option<gix::ObjectId>,
        entries: impl IntoIterator<Item = (P, Content)>,
        message: &str,
        author: &str,
        time: i64,
    ) -> Result<CommitId, RepoError> {
        self.commit_by(branch, parent, entries, message, author, author, time)
    }

    #[allow(clippy::too_many_arguments)] // As `commit_on_as`.
    fn commit_by<P: AsRef<[u8]>>(
        &mut self,
        branch: &str,
        parent: Option<gix::ObjectId>,
        entries: impl IntoIterator<Item = (P, Content)>,
        message: &str,
        author: &str,
        committer: &str,
        time: i64,
    ) -> Result<CommitId, RepoError> {
        let signature_of = |who: &str| -> Result<gix::actor::Signature, RepoError> {
            let (name, email) = parse_signature(who)?;
            Ok(gix::actor::Signature {
                name: name.into(),
                email: email.into(),
                time: gix::date::Time {
                    seconds: time,
                    offset: 0,
                },
            })
        };
        let author = signature_of(author)?;
        let committer = signature_of(committer)?;
        let base_tree = match parent {
            Some(parent) => self
                .repo
                .find_commit(parent)
                .and_then(|commit| commit.tree_id().map(|id| id.detach()))
                .map_err(|e| git_error(format!("reading commit {parent}"), &e))?,
            None => gix::ObjectId::empty_tree(self.repo.object_hash()),
        };
        let mut editor = self
            .repo
            .edit_tree(base_tree)
            .map_err(|e| git_error("editing the tree", &e))?;
        for (path, content) in entries {
            let path = BString::from(path.as_ref());
            let context = || format!("writing {:?}", path.to_str_lossy());
            let (kind, bytes) = match content {
                Content::File(bytes) => (EntryKind::Blob, bytes),
                Content::Executable(bytes) => (EntryKind::BlobExecutable, bytes),
                Content::Symlink(target) => (EntryKind::Link, target.into_bytes()),
                Content::Absent => {
                    editor.remove(&path).map_err(|e| git_error(context(), &e))?;
                    continue;
                }
            };
            let blob = self
                .repo
                .write_blob(bytes)
                .map_err(|e| git_error(context(), &e))?;
            editor
                .upsert(&path, kind, blob.detach())
                .map_err(|e| git_error(context(), &e))?;
        }
        let tree = editor
            .write()
            .map_err(|e| git_error("writing the tree", &e))?
            .detach();
        let (mut author_time, mut committer_time) = (
            gix::date::parse::TimeBuf::default(),
            gix::date::parse::TimeBuf::default(),
        );
        let id = self
            .repo
            .commit_as(
                committer.to_ref(&mut committer_time),
                author.to_ref(&mut author_time),
                branch,
                message,
                tree,
                parent,
            )
            .map_err(|e| git_error(format!("committing {message:?}"), &e))?;
        Ok(CommitId::from_object_id(id.detach()))
    }

    /// Makes the working directory and the index match `commit`, so people can look at the
    /// repository with ordinary tools. Files the previously written commit had and this one
    /// lacks are removed; nothing else in the directory is touched.
    pub fn write_worktree(&mut self, commit: &CommitId) -> Result<(), RepoError> {
        let new_files = self.files_of(commit)?;
        if let Some(previous) = self.written.clone() {
            for (path, _, _) in self.files_of(&previous)? {
                if !new_files.iter().any(|(p, _, _)| *p == path) {
                    let full = self.dir.join(&path);
                    match std::fs::remove_file(&full) {
                        Ok(()) => self.remove_empty_parents(&full),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(source) => return Err(RepoError::Io { path: full, source }),
                    }
                }
            }
        }
        for (path, kind, id) in &new_files {
            let full = self.dir.join(path);
            let io = |source| RepoError::Io {
                path: full.clone(),
                source,
            };
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            let data = self
                .repo
                .find_object(*id)
                .map_err(|e| git_error(format!("reading blob {id}"), &e))?
                .detach()
                .data;
            if std::fs::symlink_metadata(&full).is_ok() {
                std::fs::remove_file(&full).map_err(io)?;
            }
            write_file(&full, *kind, &data).map_err(io)?;
        }
        let oid = commit.object_id()?;
        let tree_id = self
            .repo
            .find_commit(oid)
            .and_then(|c| c.tree_id().map(|id| id.detach()))
            .map_err(|e| git_error(format!("reading commit {commit}"), &e))?;
        let mut index = self
            .repo
            .index_from_tree(&tree_id)
            .map_err(|e| git_error("building the index", &e))?;
        index
            .write(gix::index::write::Options::default())
            .map_err(|e| RepoError::Git {
                context: "writing the index".to_owned(),
                message: e.to_string(),
            })?;
        self.written = Some(commit.clone());
        Ok(())
    }

    fn files_of(
        &self,
        commit: &CommitId,
    ) -> Result<Vec<(PathBuf, EntryKind, gix::ObjectId)>, RepoError> {
        let oid = commit.object_id()?;
        let files = self
            .repo
            .find_commit(oid)
            .and_then(|c| c.tree())
            .and_then(|tree| tree.traverse().breadthfirst.files())
            .map_err(|e| git_error(format!("walking the tree of {commit}"), &e))?;
        let mut out = Vec::with_capacity(files.len());
        for file in files.into_iter().filter(|f| f.mode.is_blob_or_symlink()) {
            let path = gix::path::from_bstr(file.filepath.as_bstr())
                .map_err(|_| RepoError::NonUtf8Path {
                    path: file.filepath.to_str_lossy().into_owned(),
                    context: format!("commit {}", commit.short()),
                })?
                .into_owned();
            out.push((path, file.mode.kind(), file.oid));
        }
        Ok(out)
    }

    fn remove_empty_parents(&self, file: &Path) {
        let mut dir = file.parent();
        while let Some(current) = dir {
            // `remove_dir` only removes empty directories; stopping at the first failure
            // keeps every directory that still holds something.
            if current == self.dir || std::fs::remove_dir(current).is_err() {
                break;
            }
            dir = current.parent();
        }
    }
}

/// `Some(bytes)` is a regular file, `None` a deletion.
fn files_to_entries<P, B: Into<Vec<u8>>>(
    files: impl IntoIterator<Item = (P, Option<B>)>,
) -> impl Iterator<Item = (P, Content)> {
    files.into_iter().map(|(path, bytes)| {
        let content = match bytes {
            Some(bytes) => Content::File(bytes.into()),
            None => Content::Absent,
        };
        (path, content)
    })
}

fn write_file(path: &Path, kind: EntryKind, data: &[u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::PermissionsExt;
        if kind == EntryKind::Link {
            let target = std::ffi::OsStr::from_bytes(data);
            return std::os::unix::fs::symlink(target, path);
        }
        std::fs::write(path, data)?;
        let mode = if kind == EntryKind::BlobExecutable {
            0o755
        } else {
            0o644
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        // Without symlink or mode support, the link's target text and the content are what
        // a person can inspect.
        let _ = kind;
        std::fs::write(path, data)
    }
}

/// Splits `Name <email>`.
fn parse_signature(text: &str) -> Result<(String, String), RepoError> {
    let invalid = || RepoError::InvalidSignature {
        signature: text.to_owned(),
    };
    let (name, rest) = text.rsplit_once('<').ok_or_else(invalid)?;
    let email = rest.strip_suffix('>').ok_or_else(invalid)?;
    let name = name.trim();
    if name.is_empty() || email.is_empty() || email.contains(['<', '>']) {
        return Err(invalid());
    }
    Ok((name.to_owned(), email.to_owned()))
}
