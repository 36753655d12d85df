//! The countersign binary: parses arguments, wires the library crates, prints results.
//!
//! Nothing here decides anything; see ARCHITECTURE.md for where each concept lives.

mod assurance;
mod attest;
mod audit;
mod capsule;
mod cli;
mod client;
mod commands;
mod demo;
mod evidence;
mod hook;
mod mcp;
mod render;
mod replay;
mod runner;
mod server_cmd;

use std::process::ExitCode;

use clap::Parser;

/// Decisions allocate many small, short-lived objects on every thread of the server; mimalloc
/// serves them with far less CPU than the system allocator (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COUNTERSIGN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal: `serve` and `mcp` logs usually land in a
        // file of the host that started them.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = cli::Cli::parse();
    match commands::run(cli.command) {
        Ok(status) => status,
        // A reader that stopped reading (`countersign graph show | head`) is not an error of
        // the input: stop quietly, as other Unix tools do.
        Err(error) if closed_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            if let Some(hint) = commands::hint(&error) {
                eprintln!("hint: {hint}");
            }
            // Every failure that reaches here is about the input: a revision, a file, a
            // policy, an argument. Exit 2 keeps it apart from "checked and found problems" (1).
            ExitCode::from(2)
        }
    }
}

/// Whether `error` is, anywhere in its chain, a write to a closed pipe.
fn closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| {
                cause
                    .downcast_ref::<serde_json::Error>()
                    .and_then(serde_json::Error::io_error_kind)
            })
            == Some(std::io::ErrorKind::BrokenPipe)
    })
}
