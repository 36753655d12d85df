//! `countersign serve` and `countersign token create`: argument types and the wiring that
//! hands a listener, a store and the configured repositories to countersign-server.
//!
//! The server itself (routes, auth, approvals) is countersign-server's; only this module
//! reads the OS randomness for token secrets and installs the Ctrl-C handler.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use countersign_policy::Principal;
use countersign_server::{AppState, Clock, Role};
use countersign_store::Store;

/// The default database of `serve` and `token`: a SQLite file in the current directory's
/// state directory, no setup needed.
const DEFAULT_DATABASE: &str = "sqlite://.countersign/state/server.db?mode=rwc";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub listen: String,
    /// `sqlite://PATH?mode=rwc` or `postgres://...`; migrations are applied at start.
    #[arg(long, value_name = "URL", env = "COUNTERSIGN_DATABASE", default_value = DEFAULT_DATABASE)]
    pub database: String,
    /// A repository the server reads, `NAME=PATH` (a clone or a bare repository). Repeatable.
    #[arg(long = "repo", value_name = "NAME=PATH", value_parser = parse_repo)]
    pub repos: Vec<(String, PathBuf)>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token; prints it once (only its hash is stored).
    Create {
        /// Who the token acts as: `human:alice`, `agent:fixbot`, `runner:ci`.
        #[arg(long)]
        principal: String,
        /// proposer, runner, approver, auditor or admin.
        #[arg(long)]
        role: String,
        /// How long the token is valid, e.g. `30d`, `12h`.
        #[arg(long, default_value = "30d")]
        expires: String,
        #[arg(long, value_name = "URL", env = "COUNTERSIGN_DATABASE", default_value = DEFAULT_DATABASE)]
        database: String,
    },
}

fn parse_repo(arg: &str) -> Result<(String, PathBuf), String> {
    match arg.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_owned(), PathBuf::from(path)))
        }
        _ => Err(format!("{arg:?} is not NAME=PATH")),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn serve(args: ServeArgs) -> Result<ExitCode> {
    let mut repos = BTreeMap::new();
    for (name, path) in args.repos {
        if !path.exists() {
            bail!("--repo {name}={}: no such directory", path.display());
        }
        if repos.insert(name.clone(), path).is_some() {
            bail!("--repo {name} is given twice");
        }
    }
    runtime()?.block_on(async {
        let store = Store::connect(&args.database)
            .await
            .with_context(|| format!("opening {}", args.database))?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        eprintln!("countersign serving on http://{}", listener.local_addr()?);
        let state = AppState::new(store.clone(), repos, Clock::system());
        let shutdown = async {
            // If the handler cannot be installed the server runs until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        countersign_server::run(listener, state, shutdown).await?;
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

pub fn token(command: TokenCommand) -> Result<ExitCode> {
    let TokenCommand::Create {
        principal,
        role,
        expires,
        database,
    } = command;
    let principal: Principal = principal.parse().context("--principal")?;
    let role: Role = role.parse().map_err(|e| anyhow!("--role: {e}"))?;
    let ttl =
        humantime::parse_duration(&expires).with_context(|| format!("--expires {expires:?}"))?;
    let expires_at = std::time::SystemTime::now()
        .checked_add(ttl)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(|| anyhow!("--expires {expires:?} is too far in the future"))?;
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| anyhow!("reading randomness from the OS: {e}"))?;
    runtime()?.block_on(async {
        let store = Store::connect(&database)
            .await
            .with_context(|| format!("opening {database}"))?;
        let (text, token) =
            countersign_server::create_token(&store, &principal, role, expires_at, secret).await?;
        store.close().await;
        eprintln!(
            "token {} for {} ({}), expires at {} (Unix seconds); shown once:",
            token.id, token.principal, token.role, token.expires_at
        );
        println!("{text}");
        Ok(ExitCode::SUCCESS)
    })
}
