//! What a graph build is told from outside: where the catalog and CODEOWNERS live, which
//! extra paths are governance, and which globs put a never-automate surface on a file.
//!
//! This module only holds values and their defaults; reading `countersign.toml` into a
//! [`GraphSettings`] is the binary's job.

use crate::limits::Limits;
use crate::model::Surface;

/// Inputs of [`crate::graph::build`] besides the files themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphSettings {
    /// Globs of the catalog descriptors to read, repository-relative.
    pub catalog_globs: Vec<String>,
    /// The CODEOWNERS file; `None` means GitHub's lookup order:
    /// `.github/CODEOWNERS`, `CODEOWNERS`, `docs/CODEOWNERS`, first found.
    pub codeowners: Option<String>,
    /// Extra globs that are the governance surface (besides the catalog files read,
    /// CODEOWNERS, `countersign.toml` and `.countersign/**`, which always are).
    pub governance_globs: Vec<String>,
    /// Globs that put a surface on every file they match, whatever node owns it.
    pub never_automate: Vec<(Surface, Vec<String>)>,
    /// Namespace of references that name none (Backstage's `default`).
    pub default_namespace: String,
    /// How much the build reads and keeps before it refuses the input.
    pub limits: Limits,
}

/// Where GitHub looks for CODEOWNERS, in its order.
pub const CODEOWNERS_LOCATIONS: [&str; 3] = [".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"];

/// Files that are always governance: countersign's own configuration and policies.
pub const ALWAYS_GOVERNANCE: [&str; 2] = ["countersign.toml", ".countersign/**"];

impl Default for GraphSettings {
    fn default() -> Self {
        GraphSettings {
            catalog_globs: vec!["**/catalog-info.yaml".into(), "**/catalog-info.yml".into()],
            codeowners: None,
            governance_globs: Vec::new(),
            never_automate: Vec::new(),
            default_namespace: "default".into(),
            limits: Limits::default(),
        }
    }
}
