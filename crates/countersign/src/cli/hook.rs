//! The arguments of `countersign hook pre-receive` and `post-receive`. What they do is
//! `crate::hook`'s.

use clap::{Args, Subcommand};

use super::client::ServerArgs;

#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// git pre-receive hook: refuse moves of protected refs that the server has not
    /// authorized (an authorized proposal whose head is the new tip and whose base is the old
    /// tip, or an ancestor of it when the move fast-forwards; never a deletion). Reads
    /// `<old> <new> <ref>` lines on stdin; the token comes from COUNTERSIGN_TOKEN (any role
    /// may read authorizations).
    PreReceive(PreReceiveArgs),
    /// git post-receive hook: record as merged the proposal whose authorized head now tips a
    /// protected ref. Never fails the push (it has landed); problems are reported on stderr.
    /// The token (COUNTERSIGN_TOKEN) needs the admin role.
    PostReceive(PreReceiveArgs),
}

#[derive(Debug, Args)]
pub struct PreReceiveArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The repository's name on the server.
    #[arg(long, value_name = "NAME")]
    pub repo: String,
    /// A protected ref or glob (`refs/heads/release/*`). Repeatable; default:
    /// refs/heads/main and refs/heads/master. The repository's protected branches (main,
    /// master and `[repository] protected` at their tips) are protected in any case.
    #[arg(long = "protect", value_name = "REF")]
    pub protect: Vec<String>,
}
