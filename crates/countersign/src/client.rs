//! The command-line client of `countersign serve`: `propose`, `status`, `approve`, `reject`,
//! `update` (a new head), `close`, `evidence push` and `bundle fetch`, and the [`Api`]
//! connection the pre-receive hook, the runner, the demo and `mcp` share.
//!
//! The server is named by `--server URL` (or `COUNTERSIGN_SERVER`); the token only ever comes
//! from the environment (`COUNTERSIGN_TOKEN`), never from a flag, so it stays out of shell
//! history and process listings. A problem+json answer is printed as `error: <title>:
//! <detail>` and exits 1; a problem with the command line itself (no token, an unreadable
//! file, a malformed URL) exits 2 like every other usage error of the binary.
//!
//! This module decides nothing and keeps no state: what the server answers is printed, as
//! text for people or verbatim (pretty-printed) with `--format json`.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::cli::OutputFormat;
use crate::cli::client::{
    BundleFetchArgs, ClientArgs, ClientCommand, CloseArgs, DEFAULT_SERVER, EvidencePushArgs,
    ProposeArgs, UpdateArgs,
};

/// The environment variable holding the API token.
pub const TOKEN_ENV: &str = "COUNTERSIGN_TOKEN";

/// How long to wait for a TCP connection; a server that does not answer by then is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take; a proposal's decision reads git and runs the policy.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a request did not get the answer it asked for.
#[derive(Debug)]
pub enum Failure {
    /// The server refused with an RFC 9457 problem document.
    Problem {
        status: StatusCode,
        title: String,
        detail: String,
    },
    /// No answer: connection refused, DNS, timeout, TLS.
    Unreachable { server: String, cause: String },
    /// An answer that is not what the API promises (a proxy's error page, a missing route).
    Unexpected { title: String, detail: String },
}

impl Failure {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Failure::Problem { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Problem { title, detail, .. } | Failure::Unexpected { title, detail } => {
                write!(f, "{title}: {detail}")
            }
            Failure::Unreachable { server, cause } => {
                write!(f, "server unreachable: no answer from {server}: {cause}")
            }
        }
    }
}

/// An RFC 9457 problem document, as far as the client reads it.
#[derive(Debug, Deserialize)]
struct ProblemBody {
    #[serde(default)]
    title: String,
    #[serde(default)]
    detail: String,
}

/// A connection to one server with one token.
#[derive(Debug, Clone)]
pub struct Api {
    base: Url,
    token: String,
    http: reqwest::Client,
}

impl Api {
    /// `server` is the base URL (`http://host:port`, optionally with a path prefix).
    pub fn new(server: &str, token: &str) -> Result<Api> {
        let mut base = Url::parse(server)
            .with_context(|| format!("--server {server:?} is not a URL like {DEFAULT_SERVER}"))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            bail!("--server {server:?}: expected an http:// or https:// URL with a host");
        }
        if base.query().is_some() || base.fragment().is_some() {
            bail!("--server {server:?}: a base URL has no query or fragment");
        }
        // Joined paths append to a base path only when it ends in a slash.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let token = token.trim();
        if token.is_empty() {
            bail!("{TOKEN_ENV} is empty");
        }
        if token.chars().any(|c| c.is_control() || c == ' ') {
            bail!("{TOKEN_ENV} holds whitespace or control characters; it is not a token");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("countersign/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Api {
            base,
            token: token.to_owned(),
            http,
        })
    }

    /// A connection with the token from `COUNTERSIGN_TOKEN`.
    pub fn from_env(server: &str) -> Result<Api> {
        let token = token_from_env()?;
        Api::new(server, &token)
    }

    /// The lower-case hex SHA-256 of the token (what the server keys it by): what a capsule
    /// runner's lease proof signs, binding its capsule to this token.
    pub fn token_sha256(&self) -> String {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(self.token.as_bytes()))
    }

    /// The base URL, as printed to people.
    pub fn server(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The URL of `segments` under the base, each segment percent-encoded: an id can never
    /// climb out of its path.
    fn url(&self, segments: &[&str]) -> Result<Url, Failure> {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| Failure::Unexpected {
                title: "bad server URL".to_owned(),
                detail: format!("{} cannot be a base URL", self.base),
            })?;
            path.pop_if_empty();
            for segment in segments {
                path.push(segment);
            }
        }
        Ok(url)
    }

    async fn request(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        idempotency_key: Option<&str>,
    ) -> Result<Vec<u8>, Failure> {
        let what = format!("{method} {}", url.path());
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let problem = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/problem+json"));
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.unreachable(&e))?
            .to_vec();
        if status.is_success() {
            return Ok(bytes);
        }
        let reason = status.canonical_reason().unwrap_or("error").to_owned();
        if problem && let Ok(body) = serde_json::from_slice::<ProblemBody>(&bytes) {
            return Err(Failure::Problem {
                status,
                title: if body.title.is_empty() {
                    reason
                } else {
                    body.title
                },
                detail: body.detail,
            });
        }
        // Not the server's problem+json: a route this server does not have (an older
        // server), or something in between (a proxy). Say what answered, briefly.
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        let detail = if text.is_empty() {
            format!(
                "{what} answered HTTP {} without a problem document",
                status.as_u16()
            )
        } else {
            let clipped: String = text.chars().take(200).collect();
            format!("{what} answered HTTP {}: {clipped}", status.as_u16())
        };
        Err(Failure::Unexpected {
            title: reason,
            detail,
        })
    }

    fn unreachable(&self, error: &reqwest::Error) -> Failure {
        // reqwest's own message repeats the URL; its sources say what actually failed.
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            let text = cause.to_string();
            // hyper's wrapper ("client error (Connect)") only says which layer failed.
            let wrapper = text.starts_with("client error (");
            if !wrapper && !causes.iter().any(|c: &String| c.contains(&text)) {
                causes.push(text);
            }
            source = cause.source();
        }
        let cause = if error.is_timeout() {
            "timed out".to_owned()
        } else if causes.is_empty() {
            error.to_string()
        } else {
            causes.join(": ")
        };
        Failure::Unreachable {
            server: self.server().to_owned(),
            cause,
        }
    }

    async fn json(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, Failure> {
        let url = self.url(segments)?;
        let body = body.map(|b| b.to_string().into_bytes());
        let bytes = self.request(method, url, body, idempotency_key).await?;
        parse_json(&bytes)
    }

    /// `POST /v1/proposals`.
    // One argument per field of the request body, as the API names them.
    #[allow(clippy::too_many_arguments)]
    pub async fn propose(
        &self,
        repo: &str,
        base: &str,
        head: &str,
        title: &str,
        description: &str,
        fixes: &[String],
        idempotency_key: Option<&str>,
    ) -> Result<Value, Failure> {
        let mut body = json!({
            "repo": repo, "base": base, "head": head, "title": title, "description": description,
        });
        if !fixes.is_empty() {
            body["fixes"] = json!(fixes);
        }
        self.json(
            Method::POST,
            &["v1", "proposals"],
            Some(&body),
            idempotency_key,
        )
        .await
    }

    /// `GET /v1/proposals/{id}`.
    pub async fn proposal(&self, id: &str) -> Result<Value, Failure> {
        self.json(Method::GET, &["v1", "proposals", id], None, None)
            .await
    }

    /// `POST /v1/proposals/{id}/approvals` with `verdict` `approve` or `reject`.
    pub async fn verdict(
        &self,
        id: &str,
        head: &str,
        verdict: &str,
        comment: &str,
    ) -> Result<Value, Failure> {
        let body = json!({ "head": head, "verdict": verdict, "comment": comment });
        self.json(
            Method::POST,
            &["v1", "proposals", id, "approvals"],
            Some(&body),
            None,
        )
        .await
    }

    /// `POST /v1/proposals/{id}/head`.
    pub async fn move_head(
        &self,
        id: &str,
        head: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Value, Failure> {
        let body = json!({ "head": head });
        self.json(
            Method::POST,
            &["v1", "proposals", id, "head"],
            Some(&body),
            idempotency_key,
        )
        .await
    }

    /// `POST /v1/proposals/{id}/close`.
    pub async fn close(
        &self,
        id: &str,
        reason: Option<&str>,
        superseded_by: Option<&str>,
    ) -> Result<Value, Failure> {
        let mut body = serde_json::Map::new();
        if let Some(reason) = reason {
            body.insert("reason".to_owned(), json!(reason));
        }
        if let Some(other) = superseded_by {
            body.insert("superseded_by".to_owned(), json!(other));
        }
        self.json(
            Method::POST,
            &["v1", "proposals", id, "close"],
            Some(&Value::Object(body)),
            None,
        )
        .await
    }

    /// `POST /v1/proposals/{id}/merged {commit}`: the authorized head reached a protected
    /// branch (admin).
    pub async fn mark_merged(&self, id: &str, commit: &str) -> Result<Value, Failure> {
        self.json(
            Method::POST,
            &["v1", "proposals", id, "merged"],
            Some(&json!({ "commit": commit })),
            None,
        )
        .await
    }

    /// `POST` of a JSON `body` to the route of `segments` (the runner's work routes).
    pub async fn post(&self, segments: &[&str], body: &Value) -> Result<Value, Failure> {
        self.json(Method::POST, segments, Some(body), None).await
    }

    /// `GET` of the JSON at the route of `segments`, with `query` pairs.
    pub async fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Value, Failure> {
        let mut url = self.url(segments)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let bytes = self.request(Method::GET, url, None, None).await?;
        parse_json(&bytes)
    }

    /// `POST /v1/runs/{id}/evidence` with one envelope, byte for byte: a branch run's.
    pub async fn push_run_evidence(&self, run: &str, envelope: Vec<u8>) -> Result<Value, Failure> {
        let url = self.url(&["v1", "runs", run, "evidence"])?;
        let bytes = self
            .request(Method::POST, url, Some(envelope), None)
            .await?;
        parse_json(&bytes)
    }

    /// `POST /v1/proposals/{id}/evidence` with one envelope, byte for byte.
    pub async fn push_evidence(&self, id: &str, envelope: Vec<u8>) -> Result<Value, Failure> {
        let url = self.url(&["v1", "proposals", id, "evidence"])?;
        let bytes = self
            .request(Method::POST, url, Some(envelope), None)
            .await?;
        parse_json(&bytes)
    }

    /// `GET /v1/proposals/{id}/bundle`: the bundle file, checked to be JSON.
    pub async fn bundle(&self, id: &str) -> Result<Vec<u8>, Failure> {
        let url = self.url(&["v1", "proposals", id, "bundle"])?;
        let bytes = self.request(Method::GET, url, None, None).await?;
        parse_json(&bytes)?;
        Ok(bytes)
    }

    /// `GET /v1/findings/{id}/bundle`: the finding's bundle file, checked to be JSON.
    pub async fn finding_bundle(&self, id: &str) -> Result<Vec<u8>, Failure> {
        let url = self.url(&["v1", "findings", id, "bundle"])?;
        let bytes = self.request(Method::GET, url, None, None).await?;
        parse_json(&bytes)?;
        Ok(bytes)
    }

    /// `GET /v1/authorizations?repo=&ref=&old=&commit=`: may `reference` move from `old`
    /// to `commit` (all zeros for no commit)?
    pub async fn authorization(
        &self,
        repo: &str,
        reference: &str,
        old: &str,
        commit: &str,
    ) -> Result<Authorization, Failure> {
        let mut url = self.url(&["v1", "authorizations"])?;
        url.query_pairs_mut()
            .append_pair("repo", repo)
            .append_pair("ref", reference)
            .append_pair("old", old)
            .append_pair("commit", commit);
        let bytes = self.request(Method::GET, url, None, None).await?;
        serde_json::from_slice(&bytes).map_err(|e| Failure::Unexpected {
            title: "unexpected answer".to_owned(),
            detail: format!("GET /v1/authorizations: {e}"),
        })
    }
}

/// The answer of `GET /v1/authorizations`.
#[derive(Debug, Deserialize)]
pub struct Authorization {
    pub authorized: bool,
    #[serde(default)]
    pub proposal: Option<String>,
    #[serde(default)]
    pub reasons: Vec<String>,
}

fn parse_json(bytes: &[u8]) -> Result<Value, Failure> {
    serde_json::from_slice(bytes).map_err(|e| Failure::Unexpected {
        title: "unexpected answer".to_owned(),
        detail: format!("the server's answer is not JSON: {e}"),
    })
}

/// The token from `COUNTERSIGN_TOKEN`; its absence is a usage error.
pub fn token_from_env() -> Result<String> {
    match std::env::var(TOKEN_ENV) {
        Ok(token) if !token.trim().is_empty() => Ok(token),
        Ok(_) => bail!("{TOKEN_ENV} is empty; set it to an API token (`countersign token create`)"),
        Err(std::env::VarError::NotPresent) => {
            bail!("{TOKEN_ENV} is not set; set it to an API token (`countersign token create`)")
        }
        Err(std::env::VarError::NotUnicode(_)) => bail!("{TOKEN_ENV} is not valid UTF-8"),
    }
}

/// A current-thread runtime: one command, one request at a time.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Prints `error: <title>: <detail>` and gives exit code 1.
fn fail(failure: &Failure) -> ExitCode {
    eprintln!("error: {failure}");
    ExitCode::from(1)
}

/// `propose`, `status`, `approve`, `reject`, `update`, `close`.
pub fn run(command: ClientCommand) -> Result<ExitCode> {
    let (client, call): (&ClientArgs, Call) = match &command {
        ClientCommand::Propose(args) => (&args.client, Call::Propose(args)),
        ClientCommand::Status(args) => (&args.client, Call::Status(&args.id)),
        ClientCommand::Approve(args) => (
            &args.client,
            Call::Verdict {
                id: &args.id,
                head: &args.head,
                verdict: "approve",
                comment: &args.comment,
            },
        ),
        ClientCommand::Update(args) => (&args.client, Call::Update(args)),
        ClientCommand::Close(args) => (&args.client, Call::Close(args)),
        ClientCommand::Reject(args) => {
            if args.comment.trim().is_empty() {
                bail!("--comment must say why the head is rejected");
            }
            (
                &args.client,
                Call::Verdict {
                    id: &args.id,
                    head: &args.head,
                    verdict: "reject",
                    comment: &args.comment,
                },
            )
        }
    };
    if let Call::Verdict { head, .. } = &call
        && !head_is_well_formed(head)
    {
        bail!(
            "--head {head:?}: give the commit you reviewed as its full id or at least \
             {SHORTEST_HEAD} hex digits of it"
        );
    }
    let api = Api::from_env(&client.server.server)?;
    let answer = runtime()?.block_on(async {
        match call {
            Call::Propose(args) => {
                api.propose(
                    &args.repo,
                    &args.base,
                    &args.head,
                    &args.title,
                    &args.description,
                    &args.fixes,
                    args.idempotency_key.as_deref(),
                )
                .await
            }
            Call::Status(id) => api.proposal(id).await,
            Call::Update(args) => {
                api.move_head(&args.id, &args.head, args.idempotency_key.as_deref())
                    .await
            }
            Call::Close(args) => {
                api.close(
                    &args.id,
                    args.reason.as_deref(),
                    args.superseded_by.as_deref(),
                )
                .await
            }
            Call::Verdict {
                id,
                head,
                verdict,
                comment,
            } => {
                let head = full_head(&api, id, head).await?;
                api.verdict(id, &head, verdict, comment).await
            }
        }
    });
    let proposal = match answer {
        Ok(proposal) => proposal,
        Err(failure) => return Ok(fail(&failure)),
    };
    match client.format {
        OutputFormat::Json => print_json(&proposal)?,
        OutputFormat::Text => match render_proposal(&proposal) {
            Ok(text) => print!("{text}"),
            Err(failure) => return Ok(fail(&failure)),
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// The shortest head prefix a verdict accepts, as `status` prints heads.
const SHORTEST_HEAD: usize = 12;

/// Whether `head` names the commit a verdict is for: a full id, or at least
/// [`SHORTEST_HEAD`] hex digits of one.
fn head_is_well_formed(head: &str) -> bool {
    (SHORTEST_HEAD..=64).contains(&head.len()) && head.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The full head id a verdict binds to: `head` itself when it is a full id, or the
/// proposal's current head when `head` is a prefix of it. The verdict is then sent with the
/// full id, so a head that moved in between is still refused (409) by the server.
async fn full_head(api: &Api, id: &str, head: &str) -> Result<String, Failure> {
    let head = head.to_ascii_lowercase();
    if head.len() == 40 || head.len() == 64 {
        return Ok(head);
    }
    let proposal = api.proposal(id).await?;
    let current = proposal["head"].as_str().unwrap_or_default();
    if current.starts_with(&head) {
        Ok(current.to_owned())
    } else {
        Err(Failure::Problem {
            status: StatusCode::CONFLICT,
            title: "Conflict".into(),
            detail: format!(
                "proposal {id} is at head {current}, which does not start with {head}: review \
                 the current head"
            ),
        })
    }
}

enum Call<'a> {
    Propose(&'a ProposeArgs),
    Status(&'a str),
    Update(&'a UpdateArgs),
    Close(&'a CloseArgs),
    Verdict {
        id: &'a str,
        head: &'a str,
        verdict: &'static str,
        comment: &'a str,
    },
}

/// `evidence push`: one request per envelope, one ACCEPTED or REFUSED line each; exits 1 if
/// the server refused any. Any other failure (a token, a missing proposal) stops at once.
/// The files `evidence push` sends: each file given, and each directory's `*.json` files in
/// name order.
fn envelope_files(given: &[std::path::PathBuf]) -> Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for path in given {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let mut found = Vec::new();
        for entry in
            std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?
        {
            let entry = entry.with_context(|| format!("reading {}", path.display()))?;
            let file = entry.path();
            if file.is_file() && file.extension().is_some_and(|e| e == "json") {
                found.push(file);
            }
        }
        if found.is_empty() {
            anyhow::bail!("{} holds no *.json envelope", path.display());
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

pub fn push_evidence(args: &EvidencePushArgs) -> Result<ExitCode> {
    let paths = envelope_files(&args.envelopes)?;
    let mut envelopes = Vec::with_capacity(paths.len());
    for path in &paths {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        // Catch a wrong file here, before it costs a request and a refusal in the log.
        serde_json::from_slice::<Value>(&bytes).with_context(|| {
            format!(
                "{} is not JSON; expected a DSSE envelope from `countersign attest`",
                path.display()
            )
        })?;
        envelopes.push((path, bytes));
    }
    let api = Api::from_env(&args.client.server.server)?;
    let rt = runtime()?;
    let mut refused_any = false;
    let mut results = Vec::new();
    let mut last = None;
    for (path, bytes) in envelopes {
        match rt.block_on(api.push_evidence(&args.id, bytes)) {
            Ok(answer) => {
                if args.client.format == OutputFormat::Text {
                    let digest = answer["digest"].as_str().unwrap_or("");
                    println!("ACCEPTED {}: {digest}", path.display());
                }
                if answer.get("proposal").is_some_and(Value::is_object) {
                    last = Some(answer["proposal"].clone());
                }
                results.push(json!({ "file": path.display().to_string(), "accepted": true, "answer": answer }));
            }
            Err(Failure::Problem {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                title,
                detail,
            }) => {
                refused_any = true;
                if args.client.format == OutputFormat::Text {
                    println!("REFUSED  {}: {detail}", path.display());
                }
                results.push(json!({
                    "file": path.display().to_string(), "accepted": false,
                    "problem": { "title": title, "detail": detail },
                }));
            }
            Err(failure) => return Ok(fail(&failure)),
        }
    }
    match args.client.format {
        OutputFormat::Json => print_json(&json!({ "results": results, "proposal": last }))?,
        OutputFormat::Text => {
            if let Some(proposal) = &last {
                match render_proposal(proposal) {
                    Ok(text) => print!("{text}"),
                    Err(failure) => return Ok(fail(&failure)),
                }
            }
        }
    }
    Ok(if refused_any {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `bundle fetch`: the proposal's bundle, as `bundle verify` reads it.
pub fn fetch_bundle(args: &BundleFetchArgs) -> Result<ExitCode> {
    let api = Api::from_env(&args.server.server)?;
    let bytes = match runtime()?.block_on(api.bundle(&args.id)) {
        Ok(bytes) => bytes,
        Err(failure) => return Ok(fail(&failure)),
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote the bundle of proposal {} to {} ({} bytes); check it offline with \
                 `countersign bundle verify {} --log-key KEY`",
                args.id,
                path.display(),
                bytes.len(),
                path.display()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            if !bytes.ends_with(b"\n") {
                writeln!(out)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_json(value: &Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// What the text output reads of a proposal; the rest is shown by `--format json`. Fields a
/// newer server adds are ignored, fields an older one lacks default.
#[derive(Debug, Deserialize)]
struct ProposalText {
    id: String,
    #[serde(default)]
    repo: String,
    #[serde(default)]
    base: String,
    #[serde(default)]
    head: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    author: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    tier: String,
    #[serde(default)]
    approvals_required: u64,
    #[serde(default)]
    approvals_counted: u64,
    #[serde(default)]
    eligible_approvers: Vec<String>,
    #[serde(default)]
    approvals: Vec<VerdictText>,
    #[serde(default)]
    decision: Value,
    #[serde(default)]
    authors: Vec<String>,
    #[serde(default)]
    authorship: Vec<AuthorText>,
    #[serde(default)]
    authorship_explanation: Vec<String>,
    #[serde(default)]
    approver_pool: Option<PoolText>,
    #[serde(default)]
    superseded_by: Option<String>,
    #[serde(default)]
    closed_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AuthorText {
    principal: String,
    status: String,
}

#[derive(Debug, Deserialize)]
struct PoolText {
    eligible_count: u64,
    #[serde(default)]
    excluded_as_authors: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct VerdictText {
    approver: String,
    head: String,
    verdict: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    lapsed: bool,
    #[serde(default)]
    carried_from: Option<String>,
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// A proposal for people: what it is, where it stands, and who may move it.
pub fn render_proposal(value: &Value) -> Result<String, Failure> {
    let p: ProposalText =
        serde_json::from_value(value.clone()).map_err(|e| Failure::Unexpected {
            title: "unexpected answer".to_owned(),
            detail: format!("the server's answer is not a proposal: {e}"),
        })?;
    let mut out = String::new();
    let _ = writeln!(out, "proposal {}: {} ({} tier)", p.id, p.state, p.tier);
    let _ = writeln!(out, "  title      {}", p.title);
    let _ = writeln!(
        out,
        "  change     {} {}..{}",
        p.repo,
        short(&p.base),
        short(&p.head)
    );
    let _ = writeln!(out, "  author     {}", p.author);
    // Commit authors and committers other than the proposer: they may not approve either.
    let others: Vec<&str> = p
        .authors
        .iter()
        .map(String::as_str)
        .filter(|a| !a.eq_ignore_ascii_case(&p.author))
        .collect();
    if !others.is_empty() {
        let _ = writeln!(out, "  commits by {}", others.join(", "));
    }
    if let Some(other) = &p.superseded_by {
        let _ = writeln!(out, "  superseded by {other}");
    }
    if let Some(reason) = &p.closed_reason {
        let _ = writeln!(out, "  closed     {reason}");
    }
    if p.approvals_required > 0 {
        let _ = writeln!(
            out,
            "  approvals  {} of {} on head {}",
            p.approvals_counted,
            p.approvals_required,
            short(&p.head)
        );
        let eligible = if p.eligible_approvers.is_empty() {
            "nobody (no owner of the affected nodes is a known person)".to_owned()
        } else {
            p.eligible_approvers.join(", ")
        };
        let _ = writeln!(out, "  eligible   {eligible}");
    }
    // Approvers a commit names as its author: shown with how far that is believed, so a
    // claim never shrinks the pool silently.
    if let Some(pool) = p
        .approver_pool
        .as_ref()
        .filter(|pool| !pool.excluded_as_authors.is_empty())
    {
        let status = |who: &str| {
            p.authorship
                .iter()
                .find(|a| a.principal.eq_ignore_ascii_case(who))
                .map_or("claimed", |a| a.status.as_str())
        };
        let excluded: Vec<String> = pool
            .excluded_as_authors
            .iter()
            .map(|who| format!("{who} (authorship {})", status(who)))
            .collect();
        let _ = writeln!(
            out,
            "  excluded   {} as commit authors; {} eligible left",
            excluded.join(", "),
            pool.eligible_count
        );
    }
    for line in p
        .authorship_explanation
        .iter()
        .filter(|l| l.starts_with("cannot be authorized") || l.starts_with("red flag"))
    {
        let _ = writeln!(out, "  authorship {line}");
    }
    let plan: Vec<&str> = p.decision["validation_plan"]
        .as_array()
        .map(|suites| suites.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !plan.is_empty() {
        let _ = writeln!(out, "  plan       {}", plan.join(", "));
    }
    for v in &p.approvals {
        let comment = if v.comment.is_empty() {
            String::new()
        } else {
            format!(": {}", v.comment)
        };
        let note = match (&v.carried_from, v.lapsed) {
            (_, true) => " (lapsed: the head moved)".to_owned(),
            (Some(from), false) => format!(" (carried over from {})", short(from)),
            (None, false) => String::new(),
        };
        let _ = writeln!(
            out,
            "  {:<10} {} on {}{note}{comment}",
            v.verdict,
            v.approver,
            short(&v.head)
        );
    }
    Ok(out)
}

/// `findings list` and `findings show`.
pub fn findings(command: crate::cli::client::FindingsCommand) -> Result<ExitCode> {
    use crate::cli::client::FindingsCommand;
    let (client, answer) = match &command {
        FindingsCommand::List(args) => {
            let api = Api::from_env(&args.client.server.server)?;
            let limit = args.limit.to_string();
            let mut query = vec![("limit", limit.as_str())];
            if let Some(state) = &args.state {
                query.push(("state", state));
            }
            if let Some(suite) = &args.suite {
                query.push(("suite", suite));
            }
            (
                &args.client,
                runtime()?.block_on(api.get(&["v1", "findings"], &query)),
            )
        }
        FindingsCommand::Show(args) => {
            let api = Api::from_env(&args.client.server.server)?;
            (
                &args.client,
                runtime()?.block_on(api.get(&["v1", "findings", &args.id], &[])),
            )
        }
    };
    let value = match answer {
        Ok(value) => value,
        Err(failure) => return Ok(fail(&failure)),
    };
    if client.format == OutputFormat::Json {
        print_json(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    match command {
        FindingsCommand::List(_) => {
            let findings = value["findings"].as_array().cloned().unwrap_or_default();
            if findings.is_empty() {
                println!("no findings");
            }
            for f in &findings {
                println!(
                    "{:<8} {:<9} {:<8} {:<12} {} {} on {} (last seen {})",
                    text(&f["id"]),
                    text(&f["state"]),
                    text(&f["severity"]),
                    text(&f["kind"]),
                    text(&f["suite"]),
                    text(&f["test"]),
                    text(&f["component"]),
                    text(&f["last_seen"]).chars().take(12).collect::<String>(),
                );
            }
        }
        FindingsCommand::Show(_) => {
            let f = &value;
            println!(
                "{} {} ({} {})",
                text(&f["id"]),
                text(&f["state"]),
                text(&f["severity"]),
                text(&f["kind"])
            );
            println!("  suite:      {}", text(&f["suite"]));
            println!("  test:       {}", text(&f["test"]));
            println!("  component:  {}", text(&f["component"]));
            let owners: Vec<String> = f["owners"]
                .as_array()
                .map(|o| o.iter().map(text).collect())
                .unwrap_or_default();
            println!(
                "  owners:     {}",
                if owners.is_empty() {
                    "-".to_owned()
                } else {
                    owners.join(", ")
                }
            );
            println!("  branch:     {}", text(&f["branch"]));
            println!("  first seen: {}", text(&f["first_seen"]));
            println!(
                "  last seen:  {} ({} observations)",
                text(&f["last_seen"]),
                f["observations"]
            );
            println!("  message:    {}", text(&f["evidence"]["message"]));
            println!("  reproduce:  {}", text(&f["evidence"]["command"]));
            println!(
                "  evidence:   sha256:{} (run {})",
                text(&f["evidence"]["envelope"]),
                text(&f["evidence"]["run"])
            );
            let fixes: Vec<String> = f["fixes"]
                .as_array()
                .map(|o| o.iter().map(text).collect())
                .unwrap_or_default();
            println!(
                "  fixes:      {}",
                if fixes.is_empty() {
                    "-".to_owned()
                } else {
                    fixes.join(", ")
                }
            );
            if !f["verification"].is_null() {
                let v = &f["verification"];
                println!(
                    "  verified:   {} by {} at {} ({})",
                    if v["passed"] == true {
                        "held"
                    } else {
                        "did not hold"
                    },
                    text(&v["proposal"]),
                    text(&v["commit"]),
                    text(&v["reason"]),
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
