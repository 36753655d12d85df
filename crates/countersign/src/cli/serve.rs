//! The arguments of `countersign serve` and `countersign token`. What they do is
//! `crate::server_cmd`'s.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// The default database of `serve` and `token`: a SQLite file in the current directory's
/// state directory, no setup needed.
const DEFAULT_DATABASE: &str = "sqlite://.countersign/state/server.db?mode=rwc";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub listen: String,
    /// `sqlite://PATH` (created if missing) or `postgres://...`; migrations are applied at
    /// start.
    #[arg(long, value_name = "URL", env = "COUNTERSIGN_DATABASE", default_value = DEFAULT_DATABASE)]
    pub database: String,
    /// A repository the server reads, `NAME=PATH` (a clone or a bare repository). Repeatable.
    #[arg(long = "repo", value_name = "NAME=PATH", value_parser = parse_repo)]
    pub repos: Vec<(String, PathBuf)>,
    /// The log signing key (as `countersign log keygen` writes it): signs checkpoints and
    /// authorization statements. Default: .countersign/state/server-log.key, created on
    /// first start.
    #[arg(long, value_name = "FILE", env = "COUNTERSIGN_LOG_KEY")]
    pub log_key: Option<PathBuf>,
    /// Webhook targets and delivery settings, a TOML file (docs/server.md, "Notifications").
    /// Secrets come from the files or environment variables it names, never from arguments.
    #[arg(long, value_name = "FILE", env = "COUNTERSIGN_WEBHOOKS")]
    pub webhooks: Option<PathBuf>,
    /// The GitHub integration, a TOML file (docs/github.md): the repositories followed, the
    /// webhook secret, the App or token the server reports with. Enables
    /// `POST /v1/integrations/github/webhook`.
    #[arg(long, value_name = "FILE", env = "COUNTERSIGN_GITHUB")]
    pub github: Option<PathBuf>,
    /// A file holding the GitHub webhook's secret, instead of the `--github` file naming one.
    #[arg(
        long,
        value_name = "FILE",
        env = "COUNTERSIGN_GITHUB_WEBHOOK_SECRET_FILE",
        requires = "github"
    )]
    pub github_webhook_secret_file: Option<PathBuf>,
    /// How long a request waits for its decision (diff, governed state, Cedar) before it is
    /// answered 503; the work goes on and fills the caches, so the same request asked again
    /// is fast. Each repository's decisions run on all cores but one, so a slow repository
    /// delays only its own proposals.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub decision_budget: String,
    /// How long a runner's lease on a work item lasts without a heartbeat; once it has
    /// expired, another runner may take the item (docs/fleet.md). At least 1s.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub lease: String,
    /// How often this server looks for due `[schedules]` (docs/fleet.md, "Schedules"); `0s`
    /// never (another replica does: each due time is queued once whichever ticks).
    #[arg(long, value_name = "DURATION", default_value = "15s")]
    pub schedule_tick: String,
    /// Accept people's OIDC ID tokens from this issuer (the exact `iss`), besides API tokens.
    #[arg(
        long,
        value_name = "URL",
        env = "COUNTERSIGN_OIDC_ISSUER",
        requires = "oidc_audience"
    )]
    pub oidc_issuer: Option<String>,
    /// The audience ID tokens must name: the client id registered with the issuer.
    #[arg(
        long,
        value_name = "AUD",
        env = "COUNTERSIGN_OIDC_AUDIENCE",
        requires = "oidc_issuer"
    )]
    pub oidc_audience: Option<String>,
    /// The issuer's keys: a JWKS file, or its https:// URL (fetched, cached, reloaded on an
    /// unknown key id at most once a minute). Without it, the `jwks_uri` of the issuer's
    /// OpenID Connect discovery document (`/.well-known/openid-configuration`).
    #[arg(
        long,
        value_name = "FILE_OR_URL",
        env = "COUNTERSIGN_OIDC_JWKS",
        requires = "oidc_issuer"
    )]
    pub oidc_jwks: Option<String>,
    /// The role of people signed in with an ID token. Approving still needs ownership.
    #[arg(
        long,
        value_name = "ROLE",
        default_value = "approver",
        requires = "oidc_issuer"
    )]
    pub oidc_role: String,
    /// Accept ID tokens whose email the issuer did not mark verified (only for an issuer
    /// that asserts nothing but its own addresses).
    #[arg(long, requires = "oidc_issuer")]
    pub oidc_allow_unverified_email: bool,
    /// The configured repository (a `--repo` NAME) whose catalog alone declares people for
    /// sign-in. Without it every configured repository's catalog is read, and a person they
    /// disagree about (one email for two Users, one User name with two emails) is refused.
    #[arg(long, value_name = "NAME", requires = "oidc_issuer")]
    pub oidc_identity_repo: Option<String>,
    /// The console's OIDC client id (authorization code with PKCE; default: the
    /// --oidc-audience, so the ID tokens it receives are the API's).
    #[arg(
        long,
        value_name = "ID",
        env = "COUNTERSIGN_OIDC_CLIENT_ID",
        requires = "oidc_issuer"
    )]
    pub oidc_client_id: Option<String>,
    /// The console's OIDC client secret, for an issuer that registered it as a confidential
    /// client (sent with HTTP Basic to the token endpoint).
    #[arg(
        long,
        value_name = "SECRET",
        env = "COUNTERSIGN_OIDC_CLIENT_SECRET",
        requires = "oidc_issuer",
        hide_env_values = true
    )]
    pub oidc_client_secret: Option<String>,
    /// The URL people reach this server at (e.g. https://countersign.example.com): https
    /// makes the console's session cookie Secure, and it is the base of the OIDC redirect
    /// URI (PUBLIC_URL/signin/oidc/callback). Without it the redirect URI is built from the
    /// request's Host header.
    #[arg(long, value_name = "URL", env = "COUNTERSIGN_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// How long a console session lasts from sign-in.
    #[arg(long, value_name = "DURATION", default_value = "12h", value_parser = humantime::parse_duration)]
    pub console_session_ttl: std::time::Duration,
    /// Admins see a calibration warning on the console's home when more than this share
    /// (0-1) of recent proposals needed people.
    #[arg(long, value_name = "SHARE", default_value_t = 0.5)]
    pub console_human_share_warning: f64,
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
        /// How long the token is valid from now, e.g. `30d`, `12h`; at least `1s`.
        #[arg(long, default_value = "30d")]
        expires: String,
        /// For an agent's token: the person who dispatches the agent (`human:alice`, who
        /// must hold an active token in this database). They count as an author of every
        /// proposal the agent makes with it, so they cannot approve those.
        #[arg(long, value_name = "PRINCIPAL")]
        on_behalf_of: Option<String>,
        #[arg(long, value_name = "URL", env = "COUNTERSIGN_DATABASE", default_value = DEFAULT_DATABASE)]
        database: String,
    },
    /// List API tokens: id, principal, role, expiry, revoked. Never their secrets (only
    /// hashes are stored).
    List {
        #[arg(long, value_name = "URL", env = "COUNTERSIGN_DATABASE", default_value = DEFAULT_DATABASE)]
        database: String,
    },
    /// Revoke an API token by id (`t-…`, as `token create` and `token list` show it):
    /// refused by every server on the database from the next request, logged as a
    /// `token_revoked` audit event.
    Revoke {
        /// The token's id.
        id: String,
        /// Who revokes, recorded as the event's actor.
        #[arg(long, default_value = "system:cli")]
        actor: String,
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
