//! The files a graph is built from, behind a trait so the core never touches a disk.
//!
//! `countersign-repo` implements [`FileSource`] for a git commit and for a working tree;
//! tests use [`MemorySource`].

use std::collections::BTreeMap;

/// Read access to one snapshot of a repository (a commit or a working tree).
pub trait FileSource {
    /// Every tracked file of the snapshot, repository-relative, `/`-separated, sorted.
    fn paths(&self) -> &[String];
    /// The bytes of one file, `None` when the snapshot has no such file.
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, SourceError>;
}

/// A snapshot that could not be read (corrupt object, I/O failure).
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {message}")]
pub struct SourceError {
    pub path: String,
    pub message: String,
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
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, SourceError> {
        Ok(self.files.get(path).cloned())
    }
}
