//! The arguments of the server's command-line client: `propose`, `status`, `approve`,
//! `reject`, `update`, `close`, `evidence push` and `bundle fetch`, and of `mcp`, the
//! server's client for AI agents. What they do is `crate::client`'s and `crate::mcp`'s.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::OutputFormat;

/// Where the server listens unless `--server` or `COUNTERSIGN_SERVER` says otherwise: the
/// default `--listen` of `countersign serve` and of `countersign demo`.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7878";
/// Which server to talk to.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The countersign server's base URL. The token is read from COUNTERSIGN_TOKEN.
    #[arg(long, value_name = "URL", env = "COUNTERSIGN_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
}

/// The server and how to print its answer.
#[derive(Debug, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ProposeArgs {
    /// The repository's name on the server (as `serve --repo NAME=PATH` configured it).
    #[arg(long, value_name = "NAME")]
    pub repo: String,
    /// The base revision; the server reads the rules from it.
    #[arg(long, value_name = "REV")]
    pub base: String,
    /// The head revision; the server computes the diff from git objects.
    #[arg(long, value_name = "REV")]
    pub head: String,
    #[arg(long)]
    pub title: String,
    #[arg(long, default_value = "")]
    pub description: String,
    /// Makes a retry safe: the same key from the same principal replays the first answer.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Findings this change fixes (`F-12`; repeat or separate with commas): the suites that
    /// reproduced them are planned for it, and merged it verifies them.
    #[arg(long, value_name = "FINDING", value_delimiter = ',')]
    pub fixes: Vec<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The proposal id.
    pub id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The proposal id.
    pub id: String,
    /// The head commit you reviewed: its full id, or at least 12 hex digits of it (as
    /// `status` prints it); the verdict binds to the full id. Refused (409) if the
    /// proposal has moved on since.
    #[arg(long, value_name = "SHA")]
    pub head: String,
    #[arg(long, default_value = "")]
    pub comment: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct RejectArgs {
    /// The proposal id.
    pub id: String,
    /// The head commit you reviewed: its full id, or at least 12 hex digits of it (as
    /// `status` prints it); the verdict binds to the full id. Refused (409) if the
    /// proposal has moved on since.
    #[arg(long, value_name = "SHA")]
    pub head: String,
    /// Why: a rejection blocks the proposal until a new head, so it must say what to fix.
    #[arg(long)]
    pub comment: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The proposal id.
    pub id: String,
    /// The new head revision; everything is re-derived, and earlier verdicts and evidence
    /// lapse unless the diff against the base is unchanged (a trivial rebase).
    #[arg(long, value_name = "REV")]
    pub head: String,
    /// Makes a retry safe: the same key from the same principal replays the first answer.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct CloseArgs {
    /// The proposal id.
    pub id: String,
    /// Why, recorded in the log.
    #[arg(long)]
    pub reason: Option<String>,
    /// The proposal that replaces this one: the state becomes `superseded`.
    #[arg(long, value_name = "ID")]
    pub superseded_by: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct EvidencePushArgs {
    /// The proposal id.
    pub id: String,
    /// DSSE envelopes as `countersign attest` writes them, one request each, sent
    /// unchanged; a directory stands for its `*.json` files in name order (what `runner serve
    /// --offline --out DIR` wrote).
    #[arg(required = true, value_name = "ENVELOPE|DIR")]
    pub envelopes: Vec<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct BundleFetchArgs {
    /// The proposal id.
    pub id: String,
    /// Output file (default: stdout).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct FindingsListArgs {
    /// Only findings in this state: `open`, `verified` or `reopened`.
    #[arg(long)]
    pub state: Option<String>,
    /// Only findings of this suite.
    #[arg(long)]
    pub suite: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct FindingShowArgs {
    /// The finding id (`F-12`).
    pub id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `countersign findings`: what failed on protected branches.
#[derive(Debug, Subcommand)]
pub enum FindingsCommand {
    /// List findings, newest first.
    List(FindingsListArgs),
    /// Show one finding: its failing evidence, the command that reproduces it, its fixes.
    Show(FindingShowArgs),
}

/// `countersign mcp`: the Model Context Protocol server an agent host starts.
#[derive(Debug, Args)]
pub struct McpArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

/// The client subcommands that live at the top level of the binary.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Open a proposal on the server: it computes the diff, decides the tier and logs both.
    Propose(ProposeArgs),
    /// Show a proposal: its state, tier, approvals and who may still approve.
    Status(StatusArgs),
    /// Approve the proposal's head (humans with an approver token only).
    Approve(ApproveArgs),
    /// Reject the proposal's head; it stays blocked until a new head.
    Reject(RejectArgs),
    /// Move a proposal to a new head (its author or an admin).
    Update(UpdateArgs),
    /// Close a proposal without merging it (its author or an admin).
    Close(CloseArgs),
}
