//! The documented limits on governed state: how large a repository's rule files, catalog
//! and globs may be before countersign refuses them.
//!
//! Every limit has a name (the key under `[limits]` in `countersign.toml`, see
//! docs/config.md) and every refusal names the limit and the file, so a legitimate
//! repository that outgrows a default knows what to raise. The defaults are far above real
//! catalogs and far below what exhausts a server. This module only holds the values;
//! `countersign-repo` reads them from `countersign.toml`, and each check sits where its
//! input is parsed.

/// Limits on what a graph build reads and keeps. Each field's doc names its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `file_bytes`: bytes of any one rule file (a catalog file, CODEOWNERS, a policy file,
    /// a workspace manifest). `countersign.toml` itself is always read with the default.
    pub file_bytes: u64,
    /// `catalog_bytes`: bytes of all catalog files read, Location targets included.
    pub catalog_bytes: u64,
    /// `entities`: catalog entities (documents), across all files.
    pub entities: usize,
    /// `yaml_depth`: nesting of YAML collections in one document.
    pub yaml_depth: usize,
    /// `yaml_alias_bytes`: bytes that YAML aliases (`*name`) copy, per file: each alias
    /// counts the size of the node it repeats (scalar bytes, and one per collection).
    pub yaml_alias_bytes: u64,
    /// `globs_per_entity`: globs in one entity's `countersign.dev/paths`.
    pub globs_per_entity: usize,
    /// `globs`: pattern globs in all entities' `countersign.dev/paths`: those compiled into
    /// one pattern set (a literal path or `<dir>/**` is an index lookup and does not count).
    /// Issue 24 measured 1.6 GB for 100,000 of them.
    pub globs: usize,
    /// `glob_bytes`: bytes of one glob of `countersign.dev/paths`.
    pub glob_bytes: usize,
    /// `runners`: `[[runners]]` entries in `countersign.toml`.
    pub runners: usize,
}

/// The most a YAML document may nest even when configured higher: values are built and
/// dropped by recursion elsewhere (serde), so depth must stay within a thread's stack.
pub const MAX_YAML_DEPTH: usize = 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            file_bytes: 4 * 1024 * 1024,
            catalog_bytes: 64 * 1024 * 1024,
            entities: 200_000,
            yaml_depth: 64,
            yaml_alias_bytes: 1024 * 1024,
            globs_per_entity: 1_000,
            globs: 10_000,
            glob_bytes: 1024,
            runners: 1_000,
        }
    }
}

/// The hint every limit error ends with.
pub const RAISE_HINT: &str =
    "raise it under [limits] in countersign.toml if the input is legitimate";
