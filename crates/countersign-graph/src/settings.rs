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

/// Files known to execute during a build or a CI job: the built-in `build` surface, which
/// an agent's change never takes an automated route through. Globs, matched anywhere in
/// the repository. Documented in docs/catalog.md ("Files that run at build time").
///
/// - Cargo: `build.rs` runs on every build; `.cargo/config.toml` can set a `rustc-wrapper`,
///   a linker or `runner`; `rust-toolchain(.toml)` picks the compiler that runs.
/// - npm, yarn, pnpm: `.npmrc`, `.yarnrc(.yml)` (registries, scripts, `node-options`),
///   `.pnpmfile.cjs` (hooks run at install), `.yarn/plugins/**`.
/// - Python: `setup.py`, `pyproject.toml` (its `build-system` backend runs at install),
///   `conftest.py` (pytest imports it), `noxfile.py`, `tox.ini`.
/// - Make: `Makefile`, `makefile`, `GNUmakefile`, `*.mk`.
/// - Docker: `Dockerfile`, `Dockerfile.*`, `*.Dockerfile`.
/// - Go: `go generate` runs only when someone asks for it, and a `//go:generate` line can
///   sit in any `.go` file, so no Go file is on the list.
/// - Git hooks and environments: `.husky/**`, `.pre-commit-config.yaml`, `lefthook.yml`,
///   `.envrc`.
///
/// `package.json` is not on the list: it is a workspace manifest, and a dependency bump
/// is an ordinary change. Its `scripts` run at install, but telling a `scripts` edit from
/// a dependency bump needs both versions of the file, and a decision reads only paths
/// (so it can be re-derived from its record): documented as a known gap.
pub const BUILD_FILES: &[&str] = &[
    "**/build.rs",
    "**/.cargo/config.toml",
    "**/.cargo/config",
    "**/rust-toolchain",
    "**/rust-toolchain.toml",
    "**/.npmrc",
    "**/.yarnrc",
    "**/.yarnrc.yml",
    "**/.pnpmfile.cjs",
    "**/.yarn/plugins/**",
    "**/setup.py",
    "**/pyproject.toml",
    "**/conftest.py",
    "**/noxfile.py",
    "**/tox.ini",
    "**/Makefile",
    "**/makefile",
    "**/GNUmakefile",
    "**/*.mk",
    "**/Dockerfile",
    "**/Dockerfile.*",
    "**/*.Dockerfile",
    "**/.husky/**",
    "**/.pre-commit-config.yaml",
    "**/lefthook.yml",
    "**/.envrc",
];

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
