//! `countersign serve` and `countersign token create|list|revoke`: argument types and the wiring that
//! hands a listener, a store and the configured repositories to countersign-server.
//!
//! The server itself (routes, auth, approvals) is countersign-server's; only this module
//! reads the OS randomness for token secrets (and, through `audit`, for the server's
//! default log key), reads the log key file and installs the Ctrl-C handler.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use countersign_audit::Signer;
use countersign_policy::Principal;
use countersign_server::{AppState, Clock, Role};
use countersign_store::Store;

use crate::audit;
use crate::cli::serve::{ServeArgs, TokenCommand};

/// The server's log signing key when `--log-key` is not given: beside the default database,
/// created (0600, with its `.pub`) on first start.
const DEFAULT_LOG_KEY: &str = ".countersign/state/server-log.key";

/// The origin (log name) of a key `serve` creates itself. A log published to others should
/// have a key made with `countersign log keygen --origin <your log's name>`.
const DEFAULT_LOG_ORIGIN: &str = "countersign/server";

/// The OIDC settings of `serve`, checked before anything starts.
fn oidc_config(args: &ServeArgs) -> Result<Option<countersign_server::OidcConfig>> {
    let (Some(issuer), Some(audience)) = (&args.oidc_issuer, &args.oidc_audience) else {
        return Ok(None);
    };
    let jwks: countersign_server::JwksSource = match &args.oidc_jwks {
        Some(jwks) => jwks.parse().map_err(|e| anyhow!("--oidc-jwks: {e}"))?,
        None => countersign_server::JwksSource::Discover,
    };
    let mut config = countersign_server::OidcConfig::new(issuer, audience, jwks);
    config.role = args
        .oidc_role
        .parse()
        .map_err(|e| anyhow!("--oidc-role: {e}"))?;
    config.require_email_verified = !args.oidc_allow_unverified_email;
    if let Some(name) = &args.oidc_identity_repo {
        if !args.repos.iter().any(|(repo, _)| repo == name) {
            bail!("--oidc-identity-repo {name:?}: not one of the --repo names");
        }
        config.identity_repo = Some(name.clone());
    }
    Ok(Some(config))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn serve(args: ServeArgs) -> Result<ExitCode> {
    let oidc = oidc_config(&args)?;
    if !(0.0..=1.0).contains(&args.console_human_share_warning) {
        bail!("--console-human-share-warning: a share between 0 and 1");
    }
    if let Some(url) = &args.public_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        bail!("--public-url {url:?}: an http:// or https:// URL");
    }
    let console = countersign_server::console::ConsoleConfig {
        public_url: args.public_url.clone(),
        session_ttl: args.console_session_ttl,
        oidc_client_id: args.oidc_client_id.clone(),
        oidc_client_secret: args.oidc_client_secret.clone(),
        human_share_warning: args.console_human_share_warning,
    };
    let mut repos = BTreeMap::new();
    for (name, path) in args.repos {
        if !path.exists() {
            bail!("--repo {name}={}: no such directory", path.display());
        }
        if repos.insert(name.clone(), path).is_some() {
            bail!("--repo {name} is given twice");
        }
    }
    let webhooks = args
        .webhooks
        .as_deref()
        .map(countersign_server::WebhookConfig::load)
        .transpose()
        .context("--webhooks")?;
    let github = args
        .github
        .as_deref()
        .map(|path| {
            countersign_server::GithubConfig::load(path, args.github_webhook_secret_file.as_deref())
        })
        .transpose()
        .context("--github")?;
    let signer = log_signer(args.log_key.as_deref())?;
    let budget = humantime::parse_duration(&args.decision_budget)
        .with_context(|| format!("--decision-budget {:?}", args.decision_budget))?;
    if budget.is_zero() {
        bail!("--decision-budget: a decision needs some time; give at least 1s");
    }
    let lease = humantime::parse_duration(&args.lease)
        .with_context(|| format!("--lease {:?}", args.lease))?;
    if lease < std::time::Duration::from_secs(1) {
        bail!("--lease: a runner needs time to heartbeat; give at least 1s");
    }
    let tick = humantime::parse_duration(&args.schedule_tick)
        .with_context(|| format!("--schedule-tick {:?}", args.schedule_tick))?;
    let tick = (!tick.is_zero()).then_some(tick);
    if tick.is_some_and(|t| t < std::time::Duration::from_secs(1)) {
        bail!("--schedule-tick: at least 1s (or 0s: this server fires no schedule)");
    }
    runtime()?.block_on(async {
        let store = Store::connect(&args.database)
            .await
            .with_context(|| format!("opening {}", args.database))?;
        countersign_server::claim_log_key(&store, &signer).await?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let mut state = AppState::new(store.clone(), repos, Clock::system())
            .with_log_signer(signer)
            .with_console(console);
        state = state
            .with_decisions(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
                budget,
            )
            .with_lease(lease)
            .with_schedule_tick(tick);
        if let Some(webhooks) = webhooks {
            eprintln!(
                "webhooks: {}",
                webhooks
                    .targets
                    .iter()
                    .map(|t| format!("{} ({})", t.name, t.url.origin().ascii_serialization()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            state = state.with_webhooks(webhooks);
        }
        if let Some(github) = github {
            eprintln!(
                "github: following {} ({})",
                github
                    .repositories
                    .iter()
                    .map(|r| format!("{} as {}", r.github, r.repo))
                    .collect::<Vec<_>>()
                    .join(", "),
                match &github.auth {
                    Some(countersign_server::integrations::github::GithubAuth::App { .. }) => {
                        "reporting as a GitHub App"
                    }
                    Some(countersign_server::integrations::github::GithubAuth::Token(_)) => {
                        "reporting with a token"
                    }
                    None => "no [app] or [token]: nothing is reported",
                }
            );
            state = state.with_github(github).context("--github")?;
        }
        if let Some(config) = oidc {
            let (issuer, jwks) = (config.issuer.clone(), config.jwks.clone());
            state = state.with_oidc(config);
            if let Some(oidc) = &state.oidc {
                match (oidc.load_keys().await, &jwks) {
                    (Ok(n), _) => eprintln!("oidc: ID tokens from {issuer}, {n} keys from {jwks}"),
                    // The issuer may be down for a moment: API tokens still work, and the
                    // keys are fetched again at the first ID token.
                    (
                        Err(why),
                        countersign_server::JwksSource::Url(_)
                        | countersign_server::JwksSource::Discover,
                    ) => {
                        eprintln!("warning: oidc: {why}; retrying at the first ID token");
                    }
                    (Err(why), countersign_server::JwksSource::File(_)) => {
                        bail!("--oidc-jwks: {why}")
                    }
                }
            }
        }
        let shutdown = async {
            // If the handler cannot be installed the server runs until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        // The last line at start-up, once everything is set: tests and scripts read stderr up
        // to it and may stop reading there (a line written after it could meet a closed pipe).
        let address = listener.local_addr()?;
        eprintln!(
            "console: http://{address}/ (sign in with a token, or SSO when --oidc-issuer is set)"
        );
        eprintln!("countersign serving on http://{address}");
        countersign_server::run(listener, state, shutdown).await?;
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// The key given with `--log-key`, or the default one, created if it does not exist yet.
/// Prints which key is used and its verifier key, what auditors need to check checkpoints,
/// bundles and authorization statements.
fn log_signer(explicit: Option<&Path>) -> Result<Signer> {
    let (path, signer) = match explicit {
        Some(path) => (path.to_owned(), audit::read_signer(path)?),
        None => {
            let path = PathBuf::from(DEFAULT_LOG_KEY);
            let signer = if path.exists() {
                audit::read_signer(&path)?
            } else {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                let signer = audit::generate_key(DEFAULT_LOG_ORIGIN, &path)?;
                eprintln!(
                    "created the log key {} (secret, 0600) and {}",
                    path.display(),
                    path.with_extension("pub").display()
                );
                signer
            };
            (path, signer)
        }
    };
    eprintln!(
        "log key {}; verifier key: {}",
        path.display(),
        signer.verifier()
    );
    Ok(signer)
}

pub fn token(command: TokenCommand) -> Result<ExitCode> {
    match command {
        TokenCommand::Create {
            principal,
            role,
            expires,
            on_behalf_of,
            database,
        } => token_create(
            &principal,
            &role,
            &expires,
            on_behalf_of.as_deref(),
            &database,
        ),
        TokenCommand::List { database } => token_list(&database),
        TokenCommand::Revoke {
            id,
            actor,
            database,
        } => token_revoke(&id, &actor, &database),
    }
}

/// Unix seconds as RFC 3339, or the number when it is out of range.
fn rfc3339(unix_seconds: i64) -> String {
    u64::try_from(unix_seconds)
        .ok()
        .map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s))
        .map_or_else(
            || unix_seconds.to_string(),
            |t| humantime::format_rfc3339_seconds(t).to_string(),
        )
}

fn token_list(database: &str) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let store = Store::connect(database)
            .await
            .with_context(|| format!("opening {database}"))?;
        let tokens = store.tokens().await?;
        store.close().await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        for token in tokens {
            let status = if token.revoked {
                "revoked"
            } else if token.expires_at <= now {
                "expired"
            } else {
                "active"
            };
            println!(
                "{}\t{}\t{}\t{}\t{status}",
                token.id,
                token.principal,
                token.role,
                rfc3339(token.expires_at)
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn token_revoke(id: &str, actor: &str, database: &str) -> Result<ExitCode> {
    let actor: Principal = actor.parse().context("--actor")?;
    let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    runtime()?.block_on(async {
        let store = Store::connect(database)
            .await
            .with_context(|| format!("opening {database}"))?;
        let revoked = countersign_server::revoke_token(&store, id, &actor.to_string(), &at).await;
        store.close().await;
        match revoked? {
            Some(token) => {
                eprintln!(
                    "token {} for {} ({}) is revoked",
                    token.id, token.principal, token.role
                );
                Ok(ExitCode::SUCCESS)
            }
            None => bail!("no token {id} in {database} (see `countersign token list`)"),
        }
    })
}

fn token_create(
    principal: &str,
    role: &str,
    expires: &str,
    on_behalf_of: Option<&str>,
    database: &str,
) -> Result<ExitCode> {
    let principal: Principal = principal.parse().context("--principal")?;
    let on_behalf_of: Option<Principal> = on_behalf_of
        .map(str::parse)
        .transpose()
        .context("--on-behalf-of")?;
    let role: Role = role.parse().map_err(|e| anyhow!("--role: {e}"))?;
    let ttl =
        humantime::parse_duration(expires).with_context(|| format!("--expires {expires:?}"))?;
    // Expiry is kept in whole seconds: anything shorter than one would be expired when made.
    if ttl.as_secs() == 0 {
        bail!("--expires {expires:?}: a token must be valid for at least one second");
    }
    let expires_at = std::time::SystemTime::now()
        .checked_add(ttl)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(|| anyhow!("--expires {expires:?} is too far in the future"))?;
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| anyhow!("reading randomness from the OS: {e}"))?;
    runtime()?.block_on(async {
        let store = Store::connect(database)
            .await
            .with_context(|| format!("opening {database}"))?;
        let created = match &on_behalf_of {
            None => countersign_server::create_token(&store, &principal, role, expires_at, secret)
                .await
                .map_err(anyhow::Error::from),
            Some(dispatcher) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                countersign_server::create_dispatched_token(
                    &store, &principal, role, expires_at, secret, dispatcher, now,
                )
                .await
                .map_err(|e| anyhow::Error::new(e).context("--on-behalf-of"))
            }
        };
        store.close().await;
        let (text, token) = created?;
        let expires = rfc3339(token.expires_at);
        let dispatched = token
            .on_behalf_of
            .as_ref()
            .map(|d| format!(" on behalf of {d}"))
            .unwrap_or_default();
        eprintln!(
            "token {} for {}{dispatched} ({}), expires at {expires}; shown once:",
            token.id, token.principal, token.role
        );
        println!("{text}");
        Ok(ExitCode::SUCCESS)
    })
}
