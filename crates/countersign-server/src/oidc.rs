//! OIDC for people: an ID token verified against the configured issuer's JWKS, and the
//! person it names mapped to a catalog User.
//!
//! The keys come from a file or a URL and are cached; a token signed by a key id the cache
//! does not know triggers one reload, at most once per [`OidcConfig::min_refresh_interval`],
//! so a flood of made-up key ids cannot turn the server into a JWKS fetcher. The algorithm of a
//! token is the one its key allows (RS256, ES256 or EdDSA), never the one its header asks
//! for: `none`, HS* and keys embedded in the token (`jwk`, `jku`) are never used. Expiry is
//! checked against the server's [`Clock`], with a small leeway.
//!
//! The person is the catalog User whose `spec.profile.email` is the token's (verified)
//! `email`. Where people are declared is one decision of the operator: the identity
//! repository (`OidcConfig::identity_repo`), read at its default branch, or else every
//! configured repository at its default branch. A conflict between sources is refused and
//! logged, never resolved by first match: an email naming two Users, or a User name that
//! another source gives another email (a second repository, or an unprotected branch of one,
//! declaring `kind: User, name: dave` with mallory's email must not make mallory dave). The
//! issuer and subject of the token travel with the principal ([`Person`]) so verdicts record
//! them. This module does not decide what a person may do: that is the configured role and
//! the handlers' rules (eligibility still comes from ownership in the graph).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::{Duration, Instant};

use countersign_policy::Principal;
use countersign_repo::Repo;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::auth::Role;
use crate::error::ApiError;
use countersign_decide::people::{CatalogUser, catalog_users};

/// The largest JWKS document read; real ones are a few kilobytes.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Where the issuer's public keys are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS document on disk, re-read on an unknown key id (key rotation by replacing it).
    File(PathBuf),
    /// An `https://` URL (or `http://` on a loopback address, for tests and sidecars).
    Url(String),
    /// OpenID Connect Discovery: `jwks_uri` from the issuer's
    /// `/.well-known/openid-configuration`, whose `issuer` must be exactly the configured one.
    /// Looked up again at every key reload, so an issuer moving its keys is followed.
    Discover,
}

impl FromStr for JwksSource {
    type Err = String;

    /// `https://…` and loopback `http://…` are URLs; anything else is a file path. A plain
    /// `http://` URL elsewhere is refused: whoever sits on that path could hand the server
    /// their own keys.
    fn from_str(text: &str) -> Result<JwksSource, String> {
        if text.starts_with("https://") {
            return reqwest::Url::parse(text)
                .map(|_| JwksSource::Url(text.to_owned()))
                .map_err(|e| format!("{text:?} is not a URL: {e}"));
        }
        if text.starts_with("http://") {
            let url =
                reqwest::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
            if !safe_jwks_url(&url) {
                return Err(format!(
                    "{text:?}: a JWKS is fetched over https (plain http only from a loopback address)"
                ));
            }
            return Ok(JwksSource::Url(text.to_owned()));
        }
        if text.is_empty() {
            return Err("the JWKS source is empty: give a file path or an https:// URL".into());
        }
        Ok(JwksSource::File(PathBuf::from(text)))
    }
}

/// Whether keys may be read from `url`: https, or plain http to a loopback address only.
fn safe_jwks_url(url: &reqwest::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => {
            let host = url.host_str().unwrap_or_default();
            host == "localhost"
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

impl fmt::Display for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksSource::File(path) => write!(f, "{}", path.display()),
            JwksSource::Url(url) => f.write_str(url),
            JwksSource::Discover => f.write_str("the issuer's discovery document"),
        }
    }
}

/// How people are authenticated: the issuer, the audience the tokens must name, and where
/// the issuer's keys are. Fields after `jwks` have defaults ([`OidcConfig::new`]).
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The `iss` every token must carry, exactly.
    pub issuer: String,
    /// A value the token's `aud` must contain (the client id registered with the issuer).
    pub audience: String,
    pub jwks: JwksSource,
    /// The role of every person signed in this way. Default approver: eligibility to approve
    /// a given change still comes from ownership in the graph.
    pub role: Role,
    /// Whether `email_verified: true` is required (default). Only turn it off for an issuer
    /// that only ever asserts addresses it owns.
    pub require_email_verified: bool,
    /// Clock skew tolerated on `exp` and `nbf`. Default 60 s.
    pub leeway: Duration,
    /// The least time between two reloads caused by an unknown key id. Default 60 s.
    pub min_refresh_interval: Duration,
    /// Keys older than this are reloaded on the next token, so a key the issuer withdrew
    /// stops verifying. Default 1 h.
    pub max_key_age: Duration,
    /// The configured repository whose catalog alone declares people. `None`: every
    /// configured repository's, which must then agree.
    pub identity_repo: Option<String>,
}

impl OidcConfig {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, jwks: JwksSource) -> Self {
        OidcConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks,
            role: Role::Approver,
            require_email_verified: true,
            leeway: Duration::from_secs(60),
            min_refresh_interval: Duration::from_secs(60),
            max_key_age: Duration::from_secs(3600),
            identity_repo: None,
        }
    }
}

/// A person signed in with an ID token: the catalog User it maps to, and who vouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub principal: Principal,
    /// The token's `iss`.
    pub issuer: String,
    /// The token's `sub`: the issuer's stable id of the person.
    pub subject: String,
    /// The token's verified email, lower-cased.
    pub email: String,
}

/// One usable key of the issuer: its id and the only algorithm it verifies.
struct IssuerKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

#[derive(Default)]
struct KeyCache {
    keys: Vec<Arc<IssuerKey>>,
    loaded_at: Option<Instant>,
    attempted_at: Option<Instant>,
}

/// The catalog Users of one commit, by lower-cased profile email and by lower-cased name.
#[derive(Default)]
struct Directory {
    users: HashMap<String, Vec<CatalogUser>>,
    by_name: HashMap<String, Vec<CatalogUser>>,
}

/// The verifier and the email directory, shared by all requests.
pub struct Oidc {
    config: OidcConfig,
    /// The client for a JWKS URL, or why none could be built (no usable TLS roots on this
    /// machine): the error is reported at each fetch instead of stopping the server.
    http: Result<reqwest::Client, String>,
    keys: Mutex<KeyCache>,
    /// Per repository name: the commit its directory was read at.
    directories: SyncMutex<HashMap<String, (String, Arc<Directory>)>>,
}

impl fmt::Debug for Oidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.config.issuer)
            .field("audience", &self.config.audience)
            .field("jwks", &self.config.jwks)
            .finish_non_exhaustive()
    }
}

/// The claims of an ID token this module reads; `iss` and `aud` are checked by the decoder.
#[derive(Deserialize)]
struct IdClaims {
    /// Seconds; some issuers write fractions. Required: the decoder refuses a token
    /// without it before this is read.
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    nbf: Option<f64>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<Flag>,
    #[serde(default)]
    sub: Option<String>,
}

/// `email_verified` as issuers write it: a boolean, or (some) the string "true".
#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

impl Flag {
    fn is_true(&self) -> bool {
        match self {
            Flag::Bool(b) => *b,
            Flag::Text(t) => t.eq_ignore_ascii_case("true"),
        }
    }
}

fn unauthorized(why: impl Into<String>) -> ApiError {
    ApiError::Unauthorized(why.into())
}

impl Oidc {
    pub fn new(config: OidcConfig) -> Oidc {
        // A redirect may not leave https (or loopback): the keys decide who is who.
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= 5 {
                attempt.error("more than 5 redirects")
            } else if safe_jwks_url(attempt.url()) {
                attempt.follow()
            } else {
                attempt.error("a redirect off https")
            }
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(redirects)
            .build()
            .map_err(|e| format!("no HTTP client for the JWKS URL: {e}"));
        Oidc {
            config,
            http,
            keys: Mutex::new(KeyCache::default()),
            directories: SyncMutex::new(HashMap::new()),
        }
    }

    /// Whether people are declared by one identity repository rather than by each
    /// repository for its own proposals.
    pub fn has_identity_repo(&self) -> bool {
        self.config.identity_repo.is_some()
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Loads the issuer's keys now, so a misconfiguration shows at start; returns how many
    /// usable keys there are.
    pub async fn load_keys(&self) -> Result<usize, String> {
        let keys = self.fetch().await?;
        let n = keys.len();
        let mut cache = self.keys.lock().await;
        let now = Instant::now();
        *cache = KeyCache {
            keys,
            loaded_at: Some(now),
            attempted_at: Some(now),
        };
        Ok(n)
    }

    /// Verifies `token` at `now` (Unix seconds) and maps it to the person it names:
    /// 401 for a token that does not verify, 403 for a verified one that names nobody the
    /// catalog knows as a person.
    pub async fn authenticate(
        &self,
        token: &str,
        now: i64,
        repos: &BTreeMap<String, PathBuf>,
    ) -> Result<Person, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            unauthorized(format!(
                "the ID token's header does not parse (alg must be RS256, ES256 or EdDSA): {e}"
            ))
        })?;
        let key = self.key_for(header.kid.as_deref()).await?;
        if header.alg != key.alg {
            return Err(unauthorized(format!(
                "the ID token says alg {:?} but its key {} verifies only {:?}",
                header.alg,
                key.kid.as_deref().unwrap_or("(no kid)"),
                key.alg
            )));
        }
        let mut validation = Validation::new(key.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        // Time is checked below against the server's clock, not the decoder's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let claims = jsonwebtoken::decode::<IdClaims>(token, &key.key, &validation)
            .map_err(|e| self.refusal(&e))?
            .claims;
        self.check_time(&claims, now)?;

        let email = claims
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .ok_or_else(|| {
                ApiError::Forbidden(
                    "the ID token has no email claim: ask the issuer for the `email` scope".into(),
                )
            })?;
        if self.config.require_email_verified
            && !claims.email_verified.as_ref().is_some_and(Flag::is_true)
        {
            return Err(ApiError::Forbidden(format!(
                "the issuer has not verified the email {email} (email_verified is not true)"
            )));
        }
        let subject = claims
            .sub
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| unauthorized("the ID token has no sub claim"))?
            .to_owned();
        let principal = self.person(email, repos).await?;
        Ok(Person {
            principal,
            issuer: self.config.issuer.clone(),
            subject,
            email: email.to_ascii_lowercase(),
        })
    }

    fn refusal(&self, error: &jsonwebtoken::errors::Error) -> ApiError {
        unauthorized(match error.kind() {
            ErrorKind::InvalidSignature => "the ID token's signature does not verify".to_owned(),
            ErrorKind::InvalidIssuer => format!("the ID token's iss is not {}", self.config.issuer),
            ErrorKind::InvalidAudience => {
                format!("the ID token's aud does not name {}", self.config.audience)
            }
            ErrorKind::MissingRequiredClaim(claim) => format!("the ID token has no {claim} claim"),
            ErrorKind::InvalidAlgorithm => "the ID token's alg is not its key's".to_owned(),
            other => format!("the ID token does not decode: {other:?}"),
        })
    }

    fn check_time(&self, claims: &IdClaims, now: i64) -> Result<(), ApiError> {
        let leeway = i64::try_from(self.config.leeway.as_secs()).unwrap_or(i64::MAX);
        // Whole seconds: a fraction of a second is within any leeway.
        let exp = claims
            .exp
            .ok_or_else(|| unauthorized("the ID token has no exp claim"))?;
        #[allow(clippy::cast_possible_truncation)]
        let exp = exp.floor() as i64;
        if now >= exp.saturating_add(leeway) {
            return Err(unauthorized(format!(
                "the ID token has expired (exp {exp})"
            )));
        }
        if let Some(nbf) = claims.nbf {
            #[allow(clippy::cast_possible_truncation)]
            let nbf = nbf.ceil() as i64;
            if now.saturating_add(leeway) < nbf {
                return Err(unauthorized(format!(
                    "the ID token is not valid yet (nbf {nbf})"
                )));
            }
        }
        Ok(())
    }

    /// The key a token names, reloading the set when it is stale or the key id is unknown
    /// (rate limited).
    async fn key_for(&self, kid: Option<&str>) -> Result<Arc<IssuerKey>, ApiError> {
        let mut cache = self.keys.lock().await;
        let stale = cache
            .loaded_at
            .is_none_or(|t| t.elapsed() >= self.config.max_key_age);
        let known = find(&cache.keys, kid).is_ok();
        let may_reload = cache
            .attempted_at
            .is_none_or(|t| t.elapsed() >= self.config.min_refresh_interval);
        if (stale || !known) && may_reload {
            cache.attempted_at = Some(Instant::now());
            match self.fetch().await {
                Ok(keys) => {
                    cache.keys = keys;
                    cache.loaded_at = cache.attempted_at;
                }
                // Keep the keys we had: an issuer hiccup must not lock everyone out.
                Err(why) => tracing::warn!(jwks = %self.config.jwks, %why, "JWKS reload failed"),
            }
        }
        if cache.loaded_at.is_none() {
            return Err(ApiError::Unavailable(format!(
                "the issuer's keys ({}) could not be loaded; try again later",
                self.config.jwks
            )));
        }
        find(&cache.keys, kid).map_err(unauthorized)
    }

    async fn fetch(&self) -> Result<Vec<Arc<IssuerKey>>, String> {
        let bytes = match &self.config.jwks {
            JwksSource::File(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || std::fs::read(&path))
                    .await
                    .map_err(|e| format!("reading the JWKS file: {e}"))?
                    .map_err(|e| format!("reading {}: {e}", self.config.jwks))?
            }
            JwksSource::Url(url) => self.download(url).await?,
            JwksSource::Discover => {
                let url = self.discover().await?;
                self.download(&url).await?
            }
        };
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "{}: larger than {MAX_JWKS_BYTES} bytes",
                self.config.jwks
            ));
        }
        parse_jwks(&bytes).map_err(|e| format!("{}: {e}", self.config.jwks))
    }

    /// The `jwks_uri` of the issuer's OpenID Connect Discovery document (OpenID Connect
    /// Discovery 1.0 §4): fetched from `{issuer}/.well-known/openid-configuration` under the
    /// same transport rules as a JWKS URL, refused unless its `issuer` is exactly ours.
    async fn discover(&self) -> Result<String, String> {
        let issuer = &self.config.issuer;
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let parsed =
            reqwest::Url::parse(&url).map_err(|e| format!("the issuer {issuer:?}: {e}"))?;
        if !safe_jwks_url(&parsed) {
            return Err(format!(
                "{url}: discovery is fetched over https (plain http only from a loopback address)"
            ));
        }
        #[derive(serde::Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let document: Discovery = serde_json::from_slice(&self.download(&url).await?)
            .map_err(|e| format!("{url}: not a discovery document: {e}"))?;
        if document.issuer != *issuer {
            return Err(format!(
                "{url}: names the issuer {:?}, not {issuer:?}",
                document.issuer
            ));
        }
        let jwks = reqwest::Url::parse(&document.jwks_uri)
            .map_err(|e| format!("{url}: jwks_uri {:?}: {e}", document.jwks_uri))?;
        if !safe_jwks_url(&jwks) {
            return Err(format!(
                "{url}: jwks_uri {:?} is not https (plain http only to a loopback address)",
                document.jwks_uri
            ));
        }
        Ok(document.jwks_uri)
    }

    async fn download(&self, url: &str) -> Result<Vec<u8>, String> {
        let http = self.http.as_ref().map_err(String::clone)?;
        let mut response = http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("fetching {url}: {e}"))?;
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading {url}: {e}"))?
        {
            if bytes.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("{url}: larger than {MAX_JWKS_BYTES} bytes"));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// The catalog User with this profile email, in the identity repository's catalog (or,
    /// without one, every configured repository's, which must agree).
    async fn person(
        &self,
        email: &str,
        repos: &BTreeMap<String, PathBuf>,
    ) -> Result<Principal, ApiError> {
        let sources: Vec<(&String, &PathBuf)> = match &self.config.identity_repo {
            Some(name) => vec![repos.get_key_value(name).ok_or_else(|| {
                ApiError::Internal(format!(
                    "the identity repository {name:?} is not a configured repository"
                ))
            })?],
            None => repos.iter().collect(),
        };
        let email = email.to_ascii_lowercase();
        let mut directories = Vec::with_capacity(sources.len());
        for (name, path) in &sources {
            directories.push((*name, self.directory(name, path).await?));
        }
        let mut found: BTreeMap<String, CatalogUser> = BTreeMap::new();
        for (_, directory) in &directories {
            for user in directory.users.get(&email).into_iter().flatten() {
                found.insert(user.name.to_lowercase(), user.clone());
            }
        }
        let mut users = found.into_values();
        let user = match (users.next(), users.next()) {
            (Some(user), None) => user,
            (None, _) => {
                return Err(ApiError::Forbidden(format!(
                    "{email} is not the profile email of any catalog User (repositories: {})",
                    sources
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            (Some(a), Some(b)) => {
                let names: Vec<String> = [a, b].into_iter().chain(users).map(|u| u.name).collect();
                tracing::warn!(%email, users = ?names, "identity conflict: one email, several catalog Users");
                return Err(ApiError::Forbidden(format!(
                    "{email} is the profile email of several catalog Users ({}): it must name \
                     one person",
                    names.join(", ")
                )));
            }
        };
        // The same name must mean the same person everywhere it is declared.
        for (repo, directory) in &directories {
            for other in directory
                .by_name
                .get(&user.name.to_lowercase())
                .into_iter()
                .flatten()
            {
                if other.email != email {
                    tracing::warn!(
                        %email, user = %user.name, %repo, other = %other.email,
                        "identity conflict: a catalog User name with two emails"
                    );
                    return Err(ApiError::Forbidden(format!(
                        "identity conflict: catalog User {} has the profile email {} in \
                         repository {repo}, not {email}; sign-in is refused until the \
                         catalogs agree (or one identity repository is configured)",
                        user.name, other.email
                    )));
                }
            }
        }
        if user.agent {
            return Err(ApiError::Forbidden(format!(
                "catalog User {} matches the agent patterns of countersign.toml: a bot account \
                 does not sign in as a person",
                user.name
            )));
        }
        Ok(Principal::Human(user.name))
    }

    /// The directory of a repository at its current HEAD, read once per commit.
    async fn directory(&self, name: &str, path: &Path) -> Result<Arc<Directory>, ApiError> {
        let cached = self
            .directories
            .lock()
            .ok()
            .and_then(|d| d.get(name).cloned());
        let path = path.to_owned();
        let repo_name = name.to_owned();
        let (commit, directory) = tokio::task::spawn_blocking(move || {
            read_directory(&path, cached.as_ref().map(|(c, d)| (c.as_str(), d.clone())))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("catalog task: {e}")))?
        .map_err(|e| ApiError::Internal(format!("reading the catalog of {repo_name}: {e}")))?;
        if let Ok(mut directories) = self.directories.lock() {
            directories.insert(name.to_owned(), (commit, directory.clone()));
        }
        Ok(directory)
    }
}

fn find(keys: &[Arc<IssuerKey>], kid: Option<&str>) -> Result<Arc<IssuerKey>, String> {
    match kid {
        Some(kid) => keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .cloned()
            .ok_or_else(|| format!("the issuer has no key {kid:?}")),
        None => match keys {
            [only] => Ok(only.clone()),
            _ => Err(format!(
                "the ID token names no key (kid) and the issuer has {} keys",
                keys.len()
            )),
        },
    }
}

/// The usable signing keys of a JWKS document. A key that cannot be used (an encryption
/// key, a symmetric one, an algorithm outside RS256/ES256/EdDSA) is skipped with a warning,
/// so one odd key does not lock everyone out; a document with none is an error.
fn parse_jwks(bytes: &[u8]) -> Result<Vec<Arc<IssuerKey>>, String> {
    #[derive(Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for value in document.keys {
        let kid = value.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
        let key = serde_json::from_value::<Jwk>(value)
            .map_err(|e| e.to_string())
            .and_then(|jwk| issuer_key(&jwk));
        match key {
            Ok(key) => keys.push(Arc::new(key)),
            Err(why) => {
                tracing::warn!(kid = kid.as_deref().unwrap_or(""), %why, "JWKS key skipped")
            }
        }
    }
    if keys.is_empty() {
        return Err("no usable signing key (RS256, ES256 or EdDSA)".into());
    }
    Ok(keys)
}

fn issuer_key(jwk: &Jwk) -> Result<IssuerKey, String> {
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Err("an encryption key (use: enc)".into());
    }
    let declared = jwk.common.key_algorithm;
    let alg = match &jwk.algorithm {
        AlgorithmParameters::OctetKey(_) => {
            return Err("a symmetric key: HS* tokens are never accepted".into());
        }
        AlgorithmParameters::RSA(params) => {
            // 2048 bits is the least RFC 7518 allows for RS256; base64url has 6 bits a char.
            if params.n.trim_end_matches('=').len() * 6 < 2048 {
                return Err("an RSA key under 2048 bits".into());
            }
            match declared {
                None | Some(KeyAlgorithm::RS256) => Algorithm::RS256,
                Some(other) => return Err(format!("alg {other:?} is not allowed (RS256)")),
            }
        }
        AlgorithmParameters::EllipticCurve(params) => match (&params.curve, declared) {
            (EllipticCurve::P256, None | Some(KeyAlgorithm::ES256)) => Algorithm::ES256,
            (curve, alg) => {
                return Err(format!(
                    "curve {curve:?} with alg {alg:?} is not allowed (P-256 with ES256)"
                ));
            }
        },
        AlgorithmParameters::OctetKeyPair(params) => match (&params.curve, declared) {
            (EllipticCurve::Ed25519, None | Some(KeyAlgorithm::EdDSA)) => Algorithm::EdDSA,
            (curve, alg) => {
                return Err(format!(
                    "curve {curve:?} with alg {alg:?} is not allowed (Ed25519 with EdDSA)"
                ));
            }
        },
        _ => return Err("an unsupported key type".into()),
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key: {e}"))?;
    Ok(IssuerKey {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}

/// Reads the catalog Users of the repository at `path`'s HEAD, unless `cached` is already
/// that commit's. Blocking (git).
fn read_directory(
    path: &Path,
    cached: Option<(&str, Arc<Directory>)>,
) -> Result<(String, Arc<Directory>), String> {
    let repo = Repo::open(path).map_err(|e| e.to_string())?;
    let head = repo.resolve("HEAD").map_err(|e| e.to_string())?;
    if let Some((commit, directory)) = cached
        && commit == head.as_str()
    {
        return Ok((commit.to_owned(), directory));
    }
    let mut directory = Directory::default();
    for user in catalog_users(&repo, &head).map_err(|e| e.chain())? {
        directory
            .users
            .entry(user.email.clone())
            .or_default()
            .push(user);
    }
    Ok((head.as_str().to_owned(), Arc::new(directory)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// RFC 8037's example Ed25519 public key.
    const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn ed25519(kid: &str) -> serde_json::Value {
        serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": X, "kid": kid })
    }

    #[test]
    fn only_signing_keys_of_the_allowed_algorithms_are_kept() {
        let document = serde_json::json!({ "keys": [
            ed25519("ok"),
            { "kty": "oct", "k": "c2VjcmV0", "kid": "hmac" },
            { "kty": "OKP", "crv": "Ed25519", "x": X, "kid": "enc", "use": "enc" },
            { "kty": "OKP", "crv": "Ed25519", "x": X, "kid": "wrong-alg", "alg": "HS256" },
            { "kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "small-rsa" },
            { "kty": "EC", "crv": "P-384", "x": X, "y": X, "kid": "p384" },
            { "kty": "XYZ", "kid": "unknown" },
        ]});
        let keys = parse_jwks(document.to_string().as_bytes()).unwrap();
        let kept: Vec<_> = keys
            .iter()
            .map(|k| (k.kid.clone().unwrap(), k.alg))
            .collect();
        assert_eq!(kept, [("ok".to_owned(), Algorithm::EdDSA)]);

        let only_hmac = serde_json::json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0" }] });
        let error = parse_jwks(only_hmac.to_string().as_bytes()).err().unwrap();
        assert!(error.contains("no usable signing key"), "{error}");
        assert!(
            parse_jwks(b"{}")
                .err()
                .unwrap()
                .contains("not a JWKS document")
        );
    }

    #[test]
    fn a_jwks_url_is_https_or_loopback() {
        let parse = |s: &str| s.parse::<JwksSource>();
        assert_eq!(
            parse("https://id.example.com/jwks"),
            Ok(JwksSource::Url("https://id.example.com/jwks".into()))
        );
        assert!(parse("http://127.0.0.1:8080/jwks").is_ok());
        assert!(parse("http://[::1]:8080/jwks").is_ok());
        assert!(parse("http://localhost/jwks").is_ok());
        let refused = parse("http://id.example.com/jwks").unwrap_err();
        assert!(refused.contains("https"), "{refused}");
        assert_eq!(
            parse("/etc/countersign/jwks.json"),
            Ok(JwksSource::File("/etc/countersign/jwks.json".into()))
        );
        assert!(parse("").is_err());
    }

    #[tokio::test]
    async fn unknown_key_ids_reload_at_most_once_per_interval() {
        let fetches = Arc::new(AtomicUsize::new(0));
        let counter = fetches.clone();
        let body = serde_json::json!({ "keys": [ed25519("k1")] }).to_string();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                async move { body }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let oidc = Oidc::new(OidcConfig::new("i", "a", url.parse().unwrap()));
        assert_eq!(
            oidc.key_for(Some("k1")).await.unwrap().alg,
            Algorithm::EdDSA
        );
        for kid in ["made-up-1", "made-up-2", "made-up-3"] {
            let error = oidc.key_for(Some(kid)).await.err().unwrap();
            assert!(error.to_string().contains(kid), "{error}");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // A token without kid uses the only key.
        assert!(oidc.key_for(None).await.is_ok());
    }

    #[tokio::test]
    async fn keys_are_found_by_discovery_from_the_exact_issuer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let jwks = serde_json::json!({ "keys": [ed25519("k1")] }).to_string();
        let (good, bad) = (
            serde_json::json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/keys") })
                .to_string(),
            serde_json::json!({ "issuer": "https://evil.example", "jwks_uri": format!("{issuer}/keys") })
                .to_string(),
        );
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move { good }),
            )
            .route(
                "/other/.well-known/openid-configuration",
                axum::routing::get(move || async move { bad }),
            )
            .route("/keys", axum::routing::get(move || async move { jwks }));
        tokio::spawn(async move { axum::serve(listener, app).await });

        let oidc = Oidc::new(OidcConfig::new(
            format!("{issuer}/"),
            "a",
            JwksSource::Discover,
        ));
        // The configured issuer must be the document's exactly: a trailing slash differs.
        let error = oidc.load_keys().await.unwrap_err();
        assert!(error.contains("names the issuer"), "{error}");
        let oidc = Oidc::new(OidcConfig::new(&issuer, "a", JwksSource::Discover));
        assert_eq!(oidc.load_keys().await.unwrap(), 1);
        assert_eq!(
            oidc.key_for(Some("k1")).await.unwrap().alg,
            Algorithm::EdDSA
        );
        let other = format!("{issuer}/other");
        let oidc = Oidc::new(OidcConfig::new(&other, "a", JwksSource::Discover));
        let error = oidc.load_keys().await.unwrap_err();
        assert!(
            error.contains("names the issuer \"https://evil.example\""),
            "{error}"
        );
        let remote = Oidc::new(OidcConfig::new(
            "http://id.example.com",
            "a",
            JwksSource::Discover,
        ));
        let error = remote.load_keys().await.unwrap_err();
        assert!(error.contains("over https"), "{error}");
    }

    #[tokio::test]
    async fn keys_that_cannot_load_are_a_503() {
        let missing = JwksSource::File("/nonexistent/countersign-jwks.json".into());
        let oidc = Oidc::new(OidcConfig::new("i", "a", missing));
        let error = oidc.key_for(Some("k1")).await.err().unwrap();
        assert!(matches!(error, ApiError::Unavailable(_)), "{error:?}");
        assert!(
            oidc.load_keys()
                .await
                .unwrap_err()
                .contains("countersign-jwks.json")
        );
    }
}
