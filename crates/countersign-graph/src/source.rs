//! The files a graph is built from, behind a trait so the core never touches a disk.
//!
//! `countersign-repo` implements [`FileSource`] for a git commit and for a working tree;
//! tests use [`MemorySource`].

use std::collections::BTreeMap;

/// Read access to one snapshot of a repository (a commit or a working tree).
///
/// Everything read through a source is a rule file (config, catalog, CODEOWNERS, policy,
/// workspace manifest): the rules a change is judged by. So a read is bounded, and a
/// symbolic link is refused rather than followed or read as its target's name: a rule
/// must be the file it appears to be, inside the repository.
pub trait FileSource {
    /// Every tracked file of the snapshot, repository-relative, `/`-separated, sorted.
    fn paths(&self) -> &[String];
    /// The bytes of one regular file, `None` when the snapshot has no such file.
    /// [`SourceError::TooLarge`] past `max_bytes` (nothing larger is held in memory),
    /// [`SourceError::Symlink`] when the path is a symbolic link.
    fn read(&self, path: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, SourceError>;
}

/// A file of a snapshot that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A corrupt object, an I/O failure, something that is not a file.
    #[error("cannot read {path}: {message}")]
    Unreadable { path: String, message: String },
    /// A symbolic link where a rule file was expected; `target` is the link as git stores it.
    #[error("{path} is a symlink (to `{target}`); rule files must be regular files")]
    Symlink { path: String, target: String },
    #[error(
        "{path}: larger than {max} bytes, the limit `file_bytes` ({})",
        crate::limits::RAISE_HINT
    )]
    TooLarge { path: String, max: u64 },
}

impl SourceError {
    /// Whether the repository's content is at fault (a symlinked rule file, a file over its
    /// limit: the proposer fixes those), rather than reading it (the machine's).
    pub fn is_input(&self) -> bool {
        match self {
            SourceError::Unreadable { .. } => false,
            SourceError::Symlink { .. } | SourceError::TooLarge { .. } => true,
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &str {
        match self {
            SourceError::Unreadable { path, .. }
            | SourceError::Symlink { path, .. }
            | SourceError::TooLarge { path, .. } => path,
        }
    }
}

/// An in-memory snapshot, for tests, benchmarks and the embedded demo.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    files: BTreeMap<String, Vec<u8>>,
    paths: Vec<String>,
}

impl MemorySource {
    pub fn new<P: Into<String>, B: Into<Vec<u8>>>(files: impl IntoIterator<Item = (P, B)>) -> Self {
        let files: BTreeMap<String, Vec<u8>> = files
            .into_iter()
            .map(|(p, b)| (p.into(), b.into()))
            .collect();
        let paths = files.keys().cloned().collect();
        MemorySource { files, paths }
    }
}

impl FileSource for MemorySource {
    fn paths(&self) -> &[String] {
        &self.paths
    }
    fn read(&self, path: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, SourceError> {
        match self.files.get(path) {
            Some(bytes) if bytes.len() as u64 > max_bytes => Err(SourceError::TooLarge {
                path: path.to_string(),
                max: max_bytes,
            }),
            bytes => Ok(bytes.cloned()),
        }
    }
}

/// Wraps a snapshot and remembers every file read through it, so a decision can record
/// exactly the inputs it was derived from and be re-derived from them alone.
pub struct RecordingSource<'a> {
    inner: &'a dyn FileSource,
    /// Every path read, with its bytes or `None` when the snapshot lacked it.
    read: std::cell::RefCell<BTreeMap<String, Option<Vec<u8>>>>,
}

impl<'a> RecordingSource<'a> {
    pub fn new(inner: &'a dyn FileSource) -> Self {
        RecordingSource {
            inner,
            read: std::cell::RefCell::new(BTreeMap::new()),
        }
    }

    /// The files read so far (absent ones as `None`), by path.
    pub fn into_reads(self) -> BTreeMap<String, Option<Vec<u8>>> {
        self.read.into_inner()
    }
}

impl FileSource for RecordingSource<'_> {
    fn paths(&self) -> &[String] {
        self.inner.paths()
    }
    fn read(&self, path: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, SourceError> {
        let bytes = self.inner.read(path, max_bytes)?;
        self.read
            .borrow_mut()
            .insert(path.to_string(), bytes.clone());
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_keeps_every_read_including_misses() {
        let inner = MemorySource::new([("a.yaml", "x"), ("b.yaml", "y")]);
        let recording = RecordingSource::new(&inner);
        assert_eq!(recording.read("a.yaml", 10).unwrap(), Some(b"x".to_vec()));
        assert_eq!(recording.read("missing", 10).unwrap(), None);
        assert!(matches!(
            recording.read("b.yaml", 0),
            Err(SourceError::TooLarge { max: 0, .. })
        ));
        assert_eq!(recording.paths().len(), 2);
        let reads = recording.into_reads();
        assert_eq!(reads.len(), 2);
        assert_eq!(reads["missing"], None);
    }
}
