//! The GitHub integration's configuration: the webhook secret, the repositories followed
//! (GitHub's `owner/name` → a configured repository, and where their commits are fetched
//! from), how the server authenticates to GitHub's API (a GitHub App's key, or a token),
//! what it reports ([`Report`]) and the `--github` TOML file all of it is read from.
//!
//! Everything is checked when it is built, as for webhooks: secrets of at least 128 bits
//! come from a file or the environment, never inline; an App key is parsed and must be RSA of
//! 2048 bits or more; the API URL is https (or a loopback host). Nothing here sends anything.

use std::fmt;
use std::path::{Path, PathBuf};

use jsonwebtoken::EncodingKey;
use serde::Deserialize;

use crate::webhooks::{DeliveryFile, DeliverySettings, WebhookConfigError};

/// The shortest webhook secret accepted: 128 bits, as for outbound webhooks.
pub const MIN_SECRET_BYTES: usize = 16;

/// github.com's REST API.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// A secret (the webhook's, or a token). Never printed.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn text(&self) -> &str {
        // Built from a `String` (trimmed file or variable), so always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// How the server authenticates to GitHub's REST API (and to git over https).
#[derive(Clone)]
pub enum GithubAuth {
    /// As a GitHub App: an RS256 JWT signed with the App's private key (`iss` = `id`) buys
    /// an installation token per installation, cached until shortly before it expires.
    App {
        /// The App's id (or its client id): the JWT's `iss`.
        id: String,
        key: EncodingKey,
        /// The installation to use whatever a delivery names; without it, each delivery's
        /// `installation.id`.
        installation: Option<u64>,
    },
    /// A token (a fine-grained personal access token, or an installation token managed
    /// elsewhere), sent as `Authorization: Bearer`.
    Token(Secret),
}

impl fmt::Debug for GithubAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GithubAuth::App {
                id, installation, ..
            } => f
                .debug_struct("App")
                .field("id", id)
                .field("installation", installation)
                .finish_non_exhaustive(),
            GithubAuth::Token(_) => f.write_str("Token(..)"),
        }
    }
}

/// What the server reports on each followed head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// A check run named `countersign` (Checks API; a GitHub App's installation token only).
    CheckRun,
    /// A commit status with context `countersign` (any token with `statuses: write`).
    Status,
}

/// One GitHub repository the server follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubRepository {
    /// `owner/name` as GitHub writes `repository.full_name` (compared case-insensitively).
    pub github: String,
    /// The configured repository (`serve --repo NAME=PATH`) it is.
    pub repo: String,
    /// Where pull request heads and protected branches are fetched from into the server's
    /// repository (`https://github.com/acme/shop.git`, or a path). Without it the server
    /// expects the commits to be there already (a mirror kept by other means).
    pub fetch_url: Option<String>,
}

/// The GitHub integration; see [`crate::AppState::with_github`] and docs/github.md.
#[derive(Debug, Clone)]
pub struct GithubConfig {
    /// The REST API's root: `https://api.github.com`, or `https://HOST/api/v3` for GitHub
    /// Enterprise Server.
    pub api_url: reqwest::Url,
    /// The server's public URL: reports link to `<public_url>/proposals/{id}`.
    pub public_url: Option<reqwest::Url>,
    pub(crate) webhook_secret: Secret,
    /// Without authentication nothing is reported and fetches go unauthenticated.
    pub auth: Option<GithubAuth>,
    pub report: Report,
    pub repositories: Vec<GithubRepository>,
    /// How reports are sent and retried.
    pub delivery: DeliverySettings,
}

/// Why a GitHub configuration was refused. `at` names the file and field.
#[derive(Debug, thiserror::Error)]
pub enum GithubConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: {reason}")]
    Invalid { at: String, reason: String },
}

fn invalid(at: impl Into<String>, reason: impl Into<String>) -> GithubConfigError {
    GithubConfigError::Invalid {
        at: at.into(),
        reason: reason.into(),
    }
}

impl From<WebhookConfigError> for GithubConfigError {
    fn from(error: WebhookConfigError) -> Self {
        match error {
            WebhookConfigError::Read { path, source } => GithubConfigError::Read { path, source },
            WebhookConfigError::Invalid { at, reason } => GithubConfigError::Invalid { at, reason },
        }
    }
}

/// `countersign serve --github FILE`: see docs/github.md.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    api_url: Option<String>,
    public_url: Option<String>,
    webhook_secret_file: Option<PathBuf>,
    webhook_secret_env: Option<String>,
    /// Refused with a precise reason: a secret belongs in a file or the environment.
    webhook_secret: Option<toml::Value>,
    report: Option<Report>,
    app: Option<AppFile>,
    token: Option<TokenFile>,
    #[serde(default, rename = "repository")]
    repositories: Vec<RepositoryFile>,
    #[serde(default)]
    delivery: DeliveryFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppFile {
    /// A number (the App id) or a string (the App id or client id).
    id: toml::Value,
    private_key_file: PathBuf,
    installation_id: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    token_file: Option<PathBuf>,
    token_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepositoryFile {
    github: String,
    repo: String,
    fetch_url: Option<String>,
}

/// A secret from a file (trimmed) or an environment variable, exactly one of the two.
fn secret(
    at: &str,
    file: Option<&Path>,
    var: Option<&str>,
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    names: (&str, &str),
) -> Result<Option<Secret>, GithubConfigError> {
    let text = match (file, var) {
        (None, None) => return Ok(None),
        (Some(file), None) => {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                invalid(
                    format!("{at}{}", names.0),
                    format!("{}: {e}", path.display()),
                )
            })?;
            text.trim().to_owned()
        }
        (None, Some(var)) => env(var).map(|v| v.trim().to_owned()).ok_or_else(|| {
            invalid(
                format!("{at}{}", names.1),
                format!("the environment variable {var} is not set"),
            )
        })?,
        (Some(_), Some(_)) => {
            return Err(invalid(
                at.trim_end_matches(", ").trim_end_matches(": "),
                format!("give one of {} and {}, not both", names.0, names.1),
            ));
        }
    };
    if text.is_empty() {
        return Err(invalid(format!("{at}{}", names.0), "the secret is empty"));
    }
    Ok(Some(Secret(text.into_bytes())))
}

/// Reads a GitHub App's private key (PEM, PKCS#1 as GitHub issues it, or PKCS#8): RSA of at
/// least 2048 bits, checked by signing once, so a bad key stops `serve` instead of the
/// first report.
pub(crate) fn app_key(pem: &str) -> Result<EncodingKey, String> {
    use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs8_pem(pem))
        .map_err(|e| format!("not an RSA private key in PEM (PKCS#1 or PKCS#8): {e}"))?;
    if key.size() * 8 < 2048 {
        return Err(format!(
            "an RSA key of {} bits; GitHub Apps use 2048 bits or more",
            key.size() * 8
        ));
    }
    let der = key
        .to_pkcs1_der()
        .map_err(|e| format!("re-encoding the key: {e}"))?;
    let encoding = EncodingKey::from_rsa_der(der.as_bytes());
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &serde_json::json!({ "iss": "check" }),
        &encoding,
    )
    .map_err(|e| format!("the key does not sign: {e}"))?;
    Ok(encoding)
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An http(s) URL; plain http only to a loopback host (a token would cross the network in
/// clear otherwise). No credentials in it.
fn url(at: &str, text: &str) -> Result<reqwest::Url, GithubConfigError> {
    let parsed = reqwest::Url::parse(text)
        .map_err(|e| invalid(at, format!("{text:?} is not a URL: {e}")))?;
    match parsed.scheme() {
        "https" => {}
        "http" if is_loopback(&parsed) => {}
        other => {
            return Err(invalid(
                at,
                format!("scheme {other:?}: expected https (plain http only to a loopback host)"),
            ));
        }
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(at, "credentials in the URL: use [app] or [token]"));
    }
    Ok(parsed)
}

/// `owner/name`: what `repository.full_name` holds.
fn full_name(at: &str, text: &str) -> Result<String, GithubConfigError> {
    let ok = text.split_once('/').is_some_and(|(owner, name)| {
        let part = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        part(owner) && part(name)
    });
    if !ok {
        return Err(invalid(
            at,
            format!("{text:?} is not a GitHub repository's owner/name"),
        ));
    }
    Ok(text.to_owned())
}

impl GithubConfig {
    /// A configuration for `repositories`, verifying deliveries with `webhook_secret`, with
    /// github.com's API, no authentication (nothing reported), check runs and the default
    /// delivery settings; the `with_*` methods change the rest.
    pub fn new(
        webhook_secret: impl Into<Vec<u8>>,
        repositories: Vec<GithubRepository>,
    ) -> Result<GithubConfig, GithubConfigError> {
        let webhook_secret: Vec<u8> = webhook_secret.into();
        if webhook_secret.len() < MIN_SECRET_BYTES {
            return Err(invalid(
                "webhook secret",
                format!(
                    "{} bytes; at least {MIN_SECRET_BYTES} are needed (e.g. `openssl rand -hex 32`)",
                    webhook_secret.len()
                ),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for repository in &repositories {
            full_name("repository, github", &repository.github)?;
            if !seen.insert(repository.github.to_ascii_lowercase()) {
                return Err(invalid(
                    format!("repository {:?}", repository.github),
                    "listed twice",
                ));
            }
        }
        Ok(GithubConfig {
            api_url: url("api_url", DEFAULT_API_URL)?,
            public_url: None,
            webhook_secret: Secret(webhook_secret),
            auth: None,
            report: Report::CheckRun,
            repositories,
            delivery: DeliverySettings::default(),
        })
    }

    /// Calls GitHub's REST API at `api_url` (https, or http to a loopback host).
    pub fn with_api_url(mut self, api_url: &str) -> Result<GithubConfig, GithubConfigError> {
        self.api_url = url("api_url", api_url)?;
        Ok(self)
    }

    /// Reports link to `<public_url>/proposals/{id}`.
    pub fn with_public_url(mut self, public_url: &str) -> Result<GithubConfig, GithubConfigError> {
        self.public_url = Some(url("public_url", public_url)?);
        Ok(self)
    }

    /// Authenticates as the GitHub App `id` with its private key `pem`.
    pub fn with_app(
        mut self,
        id: &str,
        pem: &str,
        installation: Option<u64>,
    ) -> Result<GithubConfig, GithubConfigError> {
        let key = app_key(pem).map_err(|e| invalid("app, private_key_file", e))?;
        if id.trim().is_empty() {
            return Err(invalid("app, id", "empty"));
        }
        self.auth = Some(GithubAuth::App {
            id: id.trim().to_owned(),
            key,
            installation,
        });
        Ok(self)
    }

    /// Authenticates with `token`.
    pub fn with_token(mut self, token: &str) -> Result<GithubConfig, GithubConfigError> {
        if token.trim().is_empty() {
            return Err(invalid("token", "empty"));
        }
        self.auth = Some(GithubAuth::Token(Secret(token.trim().as_bytes().to_vec())));
        Ok(self)
    }

    pub fn with_report(mut self, report: Report) -> GithubConfig {
        self.report = report;
        self
    }

    pub fn with_delivery(
        mut self,
        delivery: DeliverySettings,
    ) -> Result<GithubConfig, GithubConfigError> {
        delivery.check()?;
        self.delivery = delivery;
        Ok(self)
    }

    /// Verifies deliveries with `secret` instead (`serve --github-webhook-secret-file`).
    pub fn with_webhook_secret(
        mut self,
        secret: impl Into<Vec<u8>>,
    ) -> Result<GithubConfig, GithubConfigError> {
        let secret: Vec<u8> = secret.into();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(invalid(
                "webhook secret",
                format!(
                    "{} bytes; at least {MIN_SECRET_BYTES} are needed",
                    secret.len()
                ),
            ));
        }
        self.webhook_secret = Secret(secret);
        Ok(self)
    }

    /// The followed repository GitHub names `full_name`, if any.
    pub fn repository(&self, full_name: &str) -> Option<&GithubRepository> {
        self.repositories
            .iter()
            .find(|r| r.github.eq_ignore_ascii_case(full_name))
    }

    /// Reads the TOML file at `path`; secrets and the App key come from files (relative to
    /// the file's directory) or the environment. `webhook_secret_file`, when given (the
    /// `--github-webhook-secret-file` flag), is the webhook secret, and the file then names
    /// none.
    pub fn load(
        path: &Path,
        webhook_secret_file: Option<&Path>,
    ) -> Result<GithubConfig, GithubConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| GithubConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let secret = webhook_secret_file
            .map(|file| {
                std::fs::read_to_string(file)
                    .map(|t| t.trim().to_owned())
                    .map_err(|source| GithubConfigError::Read {
                        path: file.to_owned(),
                        source,
                    })
            })
            .transpose()?;
        GithubConfig::parse(&text, &path.display().to_string(), dir, secret, &|name| {
            std::env::var(name).ok()
        })
    }

    /// [`GithubConfig::load`] of `text`, named `origin` in errors, with `env` for
    /// environment variables.
    pub fn parse(
        text: &str,
        origin: &str,
        dir: &Path,
        webhook_secret: Option<String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<GithubConfig, GithubConfigError> {
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| invalid(origin, e.to_string().trim_end()))?;
        let at = |what: &str| format!("{origin}: {what}");
        if file.webhook_secret.is_some() {
            return Err(invalid(
                at("webhook_secret"),
                "secrets are not written in the configuration: use webhook_secret_file (a \
                 file holding the secret) or webhook_secret_env (an environment variable's name)",
            ));
        }
        let from_file = secret(
            &format!("{origin}: "),
            file.webhook_secret_file.as_deref(),
            file.webhook_secret_env.as_deref(),
            dir,
            env,
            ("webhook_secret_file", "webhook_secret_env"),
        )?;
        let webhook_secret = match (webhook_secret, from_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    at("webhook_secret_file"),
                    "the webhook secret is given by --github-webhook-secret-file too: give it once",
                ));
            }
            (Some(flag), None) => Secret(flag.into_bytes()),
            (None, Some(secret)) => secret,
            (None, None) => {
                return Err(invalid(
                    origin,
                    "no webhook secret: without one no delivery can be verified (set \
                     webhook_secret_file or webhook_secret_env, or --github-webhook-secret-file)",
                ));
            }
        };
        if file.repositories.is_empty() {
            return Err(invalid(
                origin,
                "no [[repository]]: name at least one GitHub repository and the --repo it is",
            ));
        }
        let mut repositories = Vec::with_capacity(file.repositories.len());
        for (i, r) in file.repositories.into_iter().enumerate() {
            let here = format!("{origin}: repository {}", i + 1);
            full_name(&format!("{here}, github"), &r.github)?;
            if r.repo.is_empty() {
                return Err(invalid(format!("{here}, repo"), "empty"));
            }
            if let Some(fetch) = &r.fetch_url
                && (fetch.is_empty() || fetch.starts_with('-'))
            {
                return Err(invalid(
                    format!("{here}, fetch_url"),
                    "a git URL or path, not empty and not starting with `-`",
                ));
            }
            repositories.push(GithubRepository {
                github: r.github,
                repo: r.repo,
                fetch_url: r.fetch_url,
            });
        }
        let mut config =
            GithubConfig::new(webhook_secret.0, repositories).map_err(|e| relocate(e, origin))?;
        if let Some(api) = &file.api_url {
            config = config.with_api_url(api).map_err(|e| relocate(e, origin))?;
        }
        if let Some(public) = &file.public_url {
            config = config
                .with_public_url(public)
                .map_err(|e| relocate(e, origin))?;
        }
        match (file.app, file.token) {
            (Some(_), Some(_)) => {
                return Err(invalid(origin, "give [app] or [token], not both"));
            }
            (Some(app), None) => {
                let id = match &app.id {
                    toml::Value::Integer(n) if *n > 0 => n.to_string(),
                    toml::Value::String(s) if !s.trim().is_empty() => s.trim().to_owned(),
                    _ => {
                        return Err(invalid(
                            at("app, id"),
                            "the App's id (a number) or client id (a string)",
                        ));
                    }
                };
                let path = dir.join(&app.private_key_file);
                let pem = std::fs::read_to_string(&path).map_err(|e| {
                    invalid(
                        at("app, private_key_file"),
                        format!("{}: {e}", path.display()),
                    )
                })?;
                config = config
                    .with_app(&id, &pem, app.installation_id)
                    .map_err(|e| relocate(e, origin))?;
            }
            (None, Some(token)) => {
                let token = secret(
                    &format!("{origin}: token, "),
                    token.token_file.as_deref(),
                    token.token_env.as_deref(),
                    dir,
                    env,
                    ("token_file", "token_env"),
                )?
                .ok_or_else(|| invalid(at("token"), "give token_file or token_env"))?;
                config = config
                    .with_token(token.text())
                    .map_err(|e| relocate(e, origin))?;
            }
            (None, None) => {}
        }
        config.report = match (file.report, &config.auth) {
            (Some(report), _) => report,
            // A token may not create check runs (only an App's installation token may):
            // commit statuses are what it can report.
            (None, Some(GithubAuth::Token(_))) => Report::Status,
            (None, _) => Report::CheckRun,
        };
        config.delivery = file.delivery.settings(origin)?;
        Ok(config)
    }
}

/// Prefixes an error's location with the file it came from.
fn relocate(error: GithubConfigError, origin: &str) -> GithubConfigError {
    match error {
        GithubConfigError::Invalid { at, reason } if !at.starts_with(origin) => {
            invalid(format!("{origin}: {at}"), reason)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(text: &str) -> Result<GithubConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hook.secret"), "0123456789abcdef0123\n").unwrap();
        GithubConfig::parse(text, "github.toml", dir.path(), None, &|name| {
            (name == "HOOK").then(|| "from-the-environment-0123".to_owned())
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_minimal_file_reads() {
        let config = parse(
            r#"webhook_secret_file = "hook.secret"
               [[repository]]
               github = "Acme/Shop"
               repo = "shop""#,
        )
        .unwrap();
        assert_eq!(config.webhook_secret.bytes(), b"0123456789abcdef0123");
        assert_eq!(config.api_url.as_str(), "https://api.github.com/");
        assert_eq!(config.report, Report::CheckRun);
        assert!(config.auth.is_none());
        assert_eq!(config.repository("acme/shop").unwrap().repo, "shop");
        assert!(config.repository("acme/other").is_none());
    }

    #[test]
    fn refusals_name_the_field() {
        let repo = "[[repository]]\ngithub = \"acme/shop\"\nrepo = \"shop\"\n";
        for (text, expect) in [
            (repo.to_owned(), "github.toml: no webhook secret"),
            (
                format!("webhook_secret = \"inline-secret-0123456\"\n{repo}"),
                "github.toml: webhook_secret: secrets are not written in the configuration",
            ),
            (
                format!("webhook_secret_env = \"NOPE\"\n{repo}"),
                "github.toml: webhook_secret_env: the environment variable NOPE is not set",
            ),
            (
                format!("webhook_secret_env = \"HOOK\"\nwebhook_secret_file = \"hook.secret\"\n{repo}"),
                "github.toml: give one of webhook_secret_file and webhook_secret_env",
            ),
            (
                "webhook_secret_env = \"HOOK\"\n".to_owned(),
                "github.toml: no [[repository]]",
            ),
            (
                "webhook_secret_env = \"HOOK\"\n[[repository]]\ngithub = \"shop\"\nrepo = \"shop\"\n"
                    .to_owned(),
                "github.toml: repository 1, github: \"shop\" is not a GitHub repository's owner/name",
            ),
            (
                format!("webhook_secret_env = \"HOOK\"\napi_url = \"http://github.example\"\n{repo}"),
                "github.toml: api_url: scheme \"http\": expected https",
            ),
            (
                format!("webhook_secret_env = \"HOOK\"\n[token]\n{repo}"),
                "github.toml: token: give token_file or token_env",
            ),
            (
                format!(
                    "webhook_secret_env = \"HOOK\"\n[app]\nid = 1\nprivate_key_file = \"hook.secret\"\n{repo}"
                ),
                "github.toml: app, private_key_file: not an RSA private key in PEM",
            ),
            (
                format!("webhook_secret_env = \"HOOK\"\nsurprise = 1\n{repo}"),
                "unknown field `surprise`",
            ),
        ] {
            let error = parse(&text).map(|_| ()).unwrap_err();
            assert!(error.contains(expect), "{error:?} does not say {expect:?}");
        }
    }

    #[test]
    fn a_token_reports_commit_statuses_unless_told() {
        let repo = "[[repository]]\ngithub = \"acme/shop\"\nrepo = \"shop\"\n";
        let config = parse(&format!(
            "webhook_secret_env = \"HOOK\"\n[token]\ntoken_env = \"HOOK\"\n{repo}"
        ))
        .unwrap();
        assert_eq!(config.report, Report::Status);
        let config = parse(&format!(
            "webhook_secret_env = \"HOOK\"\nreport = \"check_run\"\n[token]\ntoken_env = \"HOOK\"\n{repo}"
        ))
        .unwrap();
        assert_eq!(config.report, Report::CheckRun);
    }
}
