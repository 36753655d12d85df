//! Command-line arguments, parsed and validated before anything runs.
//!
//! This module only describes the interface; `main` resolves it into work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Agents propose. Humans authorize. Every decision is evidence.
#[derive(Debug, Parser)]
#[command(name = "countersign", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Derive the approval tier of a change, with its impact, plan and explanation.
    Evaluate(EvaluateArgs),
    /// Inspect the system graph of a repository.
    #[command(subcommand)]
    Graph(GraphCommand),
    /// Validate policies against the schema.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Write a commented starter countersign.toml and the default policy pack.
    Init(InitArgs),
    /// Materialize the built-in demo system as a git repository and decide its changes.
    Demo(DemoArgs),
    /// Print the JSON schema of `evaluate --format json`.
    Schema,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

/// Where the governed state (config, graph, CODEOWNERS, policy) is read from.
#[derive(Debug, Args)]
pub struct RepoArgs {
    /// The governed repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Read the governed state from this commit instead of the working tree.
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The governed repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// The base commit. The graph, CODEOWNERS and policy are read from here, never from the head.
    #[arg(long, value_name = "REV", requires = "head", conflicts_with = "files")]
    pub base: Option<String>,
    /// The head commit; the change is the diff base..head, computed from git objects.
    #[arg(long, value_name = "REV", requires = "base")]
    pub head: Option<String>,
    /// Read changed paths from a file, one per line (`-` for stdin). The governed state is
    /// read from the working tree, or from `--rev`.
    #[arg(long, value_name = "FILE", required_unless_present = "base")]
    pub files: Option<String>,
    /// With `--files`: read the governed state from this commit.
    #[arg(long, value_name = "REV", requires = "files")]
    pub rev: Option<String>,
    /// Who proposes the change: `human:NAME`, `agent:NAME`, `runner:NAME` or `system:NAME`.
    #[arg(long, default_value = "human:unknown")]
    pub author: String,
    /// A tier the author claims. It is recorded in the output and ignored.
    #[arg(long, value_name = "TIER")]
    pub declared_tier: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum GraphCommand {
    /// Report unknown refs, dangling dependencies, cycles, duplicates, double claims and coverage.
    Check {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Print the graph.
    Show {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long, value_enum, default_value_t = GraphFormat::Json)]
        format: GraphFormat,
    },
    /// Show the nodes and blast radius that changing these paths reaches.
    Impact {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Repository-relative paths.
        #[arg(required = true)]
        paths: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum GraphFormat {
    Json,
    Dot,
    Mermaid,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Parse and validate every policy of the pack against the schema.
    Check {
        #[command(flatten)]
        repo: RepoArgs,
        /// A policy directory to check instead of the repository's configured one.
        #[arg(long, value_name = "DIR")]
        policy: Option<PathBuf>,
    },
    /// Print the Cedar schema policies are validated against.
    Schema,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The repository to initialize.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the demo repository (default: a fresh temporary directory that is kept).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}
