//! The governed repository: its `countersign.toml`, its files at a commit or in a working
//! tree, and the diff between two commits, all read from git objects through gix.
//!
//! This crate is the I/O edge for repositories: it hands the pure core bytes (through
//! [`countersign_graph::FileSource`]) and values ([`ChangedPath`], [`CommitInfo`]). It does
//! not build the graph, match globs against paths or judge anything. It never runs the `git`
//! binary.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::panic))]

pub mod config;
pub mod git;
pub mod write;

pub use config::{
    AgentsConfig, ApprovalConfig, CODEOWNERS_LOCATIONS, CONFIG_FILE, CapsuleSignerConfig, Config,
    ConfigError, DEFAULT_ENVIRONMENT, GovernanceConfig, GraphConfig, NeverAutomateConfig,
    PlanConfig, PolicyConfig, ReplayConfig, RepositoryConfig, RunnerConfig, STARTER_CONFIG,
    ScheduleConfig, SuiteConfig, SuiteReports,
};
pub use git::{
    ChangeKind, ChangedPath, CommitId, CommitInfo, CommitObject, CommitSignature, CommitTree,
    ContentChange, Person, Repo, RepoError, Side, WorkTree, changed_paths, read_commit_object,
};
pub use write::{Content, MAIN_BRANCH, RepoWriter};
