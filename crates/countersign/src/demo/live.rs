//! `countersign demo` on the server: starts countersign-server on SQLite over the demo
//! repository, replays the demo's history through the HTTP API (each change proposed with its
//! author's token, each one that waits for people approved by eligible demo people with their
//! own tokens), and keeps serving so the CLI client and the hook can be pointed at it.
//!
//! The replay goes through [`crate::client::Api`], the client `countersign propose` and
//! `approve` use, so the demo exercises the real path. Every server decision is compared with
//! the local one `demo::run` made: a difference is an error, not a footnote. The server's
//! database and log key are `serve`'s defaults inside the demo repository
//! (`.countersign/state/server.db`, `.countersign/state/server-log.key`), so `countersign
//! serve --repo shop=.` run there later carries on with the same log; the repository's own
//! local log (`countersign.db`, what `evaluate --record` writes) is left alone. Printing is
//! the caller's.
//!
//! So that the demo can be explored, it also leaves a few proposals waiting for approval
//! (second proposals of changes that need people, approved by nobody yet), issues an admin,
//! a runner and an auditor token besides the proposers' and approvers', and signs a
//! checkpoint of the log it leaves, so `log verify` and bundles work at once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use countersign_policy::Principal;
use countersign_server::{AppState, Clock, Role, create_token};
use countersign_store::Store;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::DemoOutcome;
use crate::cli::client::DEFAULT_SERVER;
use crate::client::{Api, Failure};

/// The demo repository's name on the demo server.
pub const REPOSITORY: &str = "shop";
/// Where the demo serves when `--listen` is not given: where the CLI client looks by default.
const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// The log name of the demo server's key.
const LOG_ORIGIN: &str = "countersign.demo/acme-shop";
/// How long the demo tokens are valid.
const TOKEN_TTL_SECS: i64 = 7 * 24 * 3600;
/// The principal of the demo's read-only token (for `status`, the hook, bundles).
const AUDITOR: &str = "system:auditor";
/// The principal of the demo's admin token (closing, `merged`, redelivering webhooks).
const ADMIN: &str = "system:admin";
/// The principal of the demo's runner token (evidence, plans).
const RUNNER: &str = "runner:ci";
/// Proposals the demo leaves waiting for approval.
const WAITING: usize = 3;

/// Where and how the demo server runs.
pub struct LiveOptions<'a> {
    /// `--listen`; `None` picks 127.0.0.1:7878 when serving (a free port if that one is
    /// taken), any free port otherwise.
    pub listen: Option<&'a str>,
    /// Keep serving after the replay (until Ctrl-C).
    pub serve: bool,
}

/// A token the demo created; printed once.
pub struct IssuedToken {
    pub principal: String,
    pub role: Role,
    pub text: String,
}

/// One demo change as the server holds it after the replay.
pub struct Replayed {
    pub change_id: &'static str,
    /// The server's proposal view.
    pub proposal: Value,
}

impl Replayed {
    pub fn id(&self) -> &str {
        self.proposal["id"].as_str().unwrap_or("")
    }

    pub fn state(&self) -> &str {
        self.proposal["state"].as_str().unwrap_or("")
    }

    /// Who approved the current head.
    pub fn approvers(&self) -> Vec<&str> {
        self.proposal["approvals"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter(|a| a["verdict"] == "approve" && a["lapsed"] != true)
                    .filter_map(|a| a["approver"].as_str())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The demo server: running, replayed, ready to print.
pub struct LiveDemo {
    pub url: String,
    pub database: String,
    /// The directory the server's state is in (the demo repository).
    pub dir: PathBuf,
    pub verifier_key: PathBuf,
    pub tokens: Vec<IssuedToken>,
    pub replayed: Vec<Replayed>,
    /// Proposals left waiting for approval: (demo change, proposal view).
    pub waiting: Vec<Replayed>,
    /// The console's one-click sign-in: (the demo owner it signs in, the link's path).
    pub console_link: Option<(String, String)>,
    runtime: tokio::runtime::Runtime,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    store: Store,
}

/// Tokens by principal and role, created on first use.
struct Tokens {
    store: Store,
    expires_at: i64,
    issued: BTreeMap<(String, &'static str), IssuedToken>,
}

impl Tokens {
    async fn get(&mut self, principal: &str, role: Role) -> Result<String> {
        let key = (principal.to_owned(), role.as_str());
        if let Some(token) = self.issued.get(&key) {
            return Ok(token.text.clone());
        }
        let parsed: Principal = principal
            .parse()
            .map_err(|e| anyhow!("demo principal {principal:?}: {e}"))?;
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| anyhow!("reading randomness from the OS: {e}"))?;
        let (text, _) = create_token(&self.store, &parsed, role, self.expires_at, secret)
            .await
            .with_context(|| format!("creating a demo token for {principal}"))?;
        self.issued.insert(
            key,
            IssuedToken {
                principal: principal.to_owned(),
                role,
                text: text.clone(),
            },
        );
        Ok(text)
    }
}

/// Starts the server over `outcome`'s repository and replays every demo change through it.
pub fn start(outcome: &DemoOutcome, options: &LiveOptions<'_>) -> Result<LiveDemo> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let state_dir = outcome.dir.join(".countersign/state");
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let database = format!(
        "sqlite://{}?mode=rwc",
        state_dir.join("server.db").display()
    );
    let key_path = state_dir.join("server-log.key");
    let signer = if key_path.exists() {
        crate::audit::read_signer(&key_path)?
    } else {
        crate::audit::generate_key(LOG_ORIGIN, &key_path)?
    };
    let verifier_key = key_path.with_extension("pub");

    let (store, listener) = runtime.block_on(async {
        let store = Store::connect(&database)
            .await
            .with_context(|| format!("opening {database}"))?;
        let listener = bind(options).await?;
        anyhow::Ok((store, listener))
    })?;
    let url = format!("http://{}", listener.local_addr()?);
    let repos = BTreeMap::from([(REPOSITORY.to_owned(), outcome.dir.clone())]);
    let state = AppState::new(store.clone(), repos, Clock::system()).with_log_signer(signer);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = runtime.spawn(countersign_server::run(listener, state, async move {
        let _ = stopped.await;
    }));

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut tokens = Tokens {
        store: store.clone(),
        expires_at: now.saturating_add(TOKEN_TTL_SECS),
        issued: BTreeMap::new(),
    };
    let replayed = runtime.block_on(async {
        let replayed = replay(outcome, &url, &mut tokens).await?;
        let waiting = leave_waiting(outcome, &url, &mut tokens).await?;
        // A checkpoint of what the demo leaves: `log verify` and bundles work at once.
        store
            .sign_checkpoint(&crate::audit::read_signer(&key_path)?)
            .await
            .context("signing a checkpoint of the demo's log")?;
        let link = console_link(&store, &waiting, now).await?;
        anyhow::Ok((replayed, waiting, link))
    });
    let (replayed, waiting, console_link) = match replayed {
        Ok(replayed) => replayed,
        Err(error) => {
            let _ = stop.send(());
            let _ = runtime.block_on(server);
            runtime.block_on(store.close());
            return Err(error);
        }
    };
    Ok(LiveDemo {
        url,
        database,
        dir: outcome.dir.clone(),
        verifier_key,
        tokens: tokens.issued.into_values().collect(),
        replayed,
        waiting,
        console_link,
        runtime,
        stop,
        server,
        store,
    })
}

/// How long the console's one-click sign-in link of the demo is valid (it is single-use).
const CONSOLE_LINK_TTL_SECS: i64 = 3600;

/// A single-use sign-in link to the console for an owner the first waiting proposal waits
/// for, so the first page a new user sees has something to approve.
async fn console_link(
    store: &Store,
    waiting: &[Replayed],
    now: i64,
) -> Result<Option<(String, String)>> {
    let owner = waiting.iter().find_map(|w| {
        w.proposal["eligible_approvers"]
            .as_array()?
            .first()?
            .as_str()
            .map(str::to_owned)
    });
    let Some(owner) = owner else {
        return Ok(None);
    };
    let principal: Principal = owner
        .parse()
        .map_err(|e| anyhow!("demo owner {owner:?}: {e}"))?;
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| anyhow!("reading randomness from the OS: {e}"))?;
    let link = countersign_server::console::create_sign_in_link(
        store,
        &principal,
        Role::Approver,
        now.saturating_add(CONSOLE_LINK_TTL_SECS),
        secret,
    )
    .await
    .context("creating the console's sign-in link")?;
    Ok(Some((owner, link)))
}

/// `--listen`, or the client's default address, or any free port.
async fn bind(options: &LiveOptions<'_>) -> Result<TcpListener> {
    if let Some(address) = options.listen {
        return TcpListener::bind(address)
            .await
            .with_context(|| format!("listening on {address}"));
    }
    if options.serve {
        match TcpListener::bind(DEFAULT_LISTEN).await {
            Ok(listener) => return Ok(listener),
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
                eprintln!(
                    "{DEFAULT_LISTEN} is in use ({DEFAULT_SERVER} is the client's default); the \
                     demo serves on a free port instead: set COUNTERSIGN_SERVER to the URL it prints"
                );
            }
            Err(error) => {
                return Err(error).with_context(|| format!("listening on {DEFAULT_LISTEN}"));
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .await
        .context("listening on a free loopback port")
}

fn api_error(change: &str, what: &str, failure: &Failure) -> anyhow::Error {
    anyhow!("demo change {change}: {what}: {failure}")
}

/// Proposes every change with its author's token and gathers the approvals it waits for.
async fn replay(outcome: &DemoOutcome, url: &str, tokens: &mut Tokens) -> Result<Vec<Replayed>> {
    let mut replayed = Vec::with_capacity(outcome.decided.len());
    for decided in &outcome.decided {
        let change = decided.change;
        let api = Api::new(url, &tokens.get(change.author, Role::Proposer).await?)?;
        let mut proposal = api
            .propose(
                REPOSITORY,
                "main",
                &format!("demo/{}", change.id),
                change.title,
                "",
                &[],
                Some(&format!("demo-{}", change.id)),
            )
            .await
            .map_err(|f| api_error(change.id, "proposing", &f))?;
        let local = decided.evaluation.decision.tier.as_str();
        if proposal["tier"] != local {
            bail!(
                "demo change {}: the server decided {} but the local pipeline {local}",
                change.id,
                proposal["tier"]
            );
        }
        if proposal["state"] == "awaiting_approval" {
            proposal = approve(url, &proposal, change.id, change.author, tokens).await?;
        }
        replayed.push(Replayed {
            change_id: change.id,
            proposal,
        });
    }
    // For the people trying the demo: a read-only token (`status`, the hook, bundles), an
    // admin's and a runner's.
    tokens.get(AUDITOR, Role::Auditor).await?;
    tokens.get(ADMIN, Role::Admin).await?;
    tokens.get(RUNNER, Role::Runner).await?;
    Ok(replayed)
}

/// Proposes again, as their authors, the first [`WAITING`] changes that need people, and
/// leaves them waiting: what a person trying the demo can approve or reject with the
/// approver tokens printed (each eligible approver gets one).
async fn leave_waiting(
    outcome: &DemoOutcome,
    url: &str,
    tokens: &mut Tokens,
) -> Result<Vec<Replayed>> {
    let mut waiting = Vec::new();
    for decided in &outcome.decided {
        if waiting.len() == WAITING {
            break;
        }
        let change = decided.change;
        let api = Api::new(url, &tokens.get(change.author, Role::Proposer).await?)?;
        let proposal = api
            .propose(
                REPOSITORY,
                "main",
                &format!("demo/{}", change.id),
                &format!("{} (second look)", change.title),
                "Left waiting by the demo: approve or reject it.",
                &[],
                Some(&format!("demo-waiting-{}", change.id)),
            )
            .await
            .map_err(|f| api_error(change.id, "proposing again", &f))?;
        if proposal["state"] != "awaiting_approval" {
            continue;
        }
        for person in proposal["eligible_approvers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            tokens.get(person, Role::Approver).await?;
        }
        waiting.push(Replayed {
            change_id: change.id,
            proposal,
        });
    }
    Ok(waiting)
}

/// Approves the proposal's head with eligible demo people until it is authorized: each time
/// someone who can satisfy the first requirement still open (the part of the change whose
/// own owners have not approved yet), else the next eligible person, in the decision's order.
/// Someone the server refuses (say, as an author of a commit in the change) is skipped.
async fn approve(
    url: &str,
    proposal: &Value,
    change: &str,
    author: &str,
    tokens: &mut Tokens,
) -> Result<Value> {
    let id = proposal["id"].as_str().unwrap_or_default().to_owned();
    let head = proposal["head"].as_str().unwrap_or_default().to_owned();
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let eligible = strings(&proposal["eligible_approvers"]);
    let mut current = proposal.clone();
    let mut tried: Vec<String> = vec![author.to_lowercase()];
    let mut refusals = Vec::new();
    while current["state"] == "awaiting_approval" {
        let open: Vec<String> = current["open_requirements"]
            .as_array()
            .and_then(|list| list.first())
            .map(|first| strings(&first["eligible"]))
            .unwrap_or_default();
        let untried = |p: &&String| !tried.contains(&p.to_lowercase());
        let Some(person) = open
            .iter()
            .find(untried)
            .or_else(|| eligible.iter().find(untried))
            .cloned()
        else {
            break;
        };
        tried.push(person.to_lowercase());
        let api = Api::new(url, &tokens.get(&person, Role::Approver).await?)?;
        match api
            .verdict(&id, &head, "approve", "approved in the demo replay")
            .await
        {
            Ok(next) => current = next,
            Err(failure) if failure.status() == Some(reqwest::StatusCode::FORBIDDEN) => {
                refusals.push(format!("{person}: {failure}"));
            }
            Err(failure) => {
                return Err(api_error(
                    change,
                    &format!("approving as {person}"),
                    &failure,
                ));
            }
        }
    }
    if current["state"] == "awaiting_approval" {
        bail!(
            "demo change {change}: not enough eligible approvers for proposal {id} (eligible: {}; refused: {})",
            eligible.join(", "),
            refusals.join("; ")
        );
    }
    Ok(current)
}

impl LiveDemo {
    /// What the server holds after the replay, and how to use it, for people.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let authorized: Vec<&Replayed> = self
            .replayed
            .iter()
            .filter(|r| r.state() == "authorized")
            .collect();
        let automated = authorized
            .iter()
            .filter(|r| r.approvers().is_empty())
            .count();
        let approvals: usize = self.replayed.iter().map(|r| r.approvers().len()).sum();
        let _ = writeln!(
            out,
            "\nThe demo server replayed them through its API: {} proposals of repository \
             {REPOSITORY:?} on {},\n{} authorized: {automated} by the system, {} after \
             {approvals} approvals by eligible people.\n",
            self.replayed.len(),
            self.url,
            authorized.len(),
            authorized.len() - automated,
        );
        let _ = writeln!(
            out,
            "{:<3} {:<26} {:<20} {:<12} approved by",
            "#", "change", "proposal", "state"
        );
        for (index, r) in self.replayed.iter().enumerate() {
            let approvers = r.approvers();
            let by = if approvers.is_empty() {
                "-".to_owned()
            } else {
                approvers.join(", ")
            };
            let _ = writeln!(
                out,
                "{:<3} {:<26} {:<20} {:<12} {by}",
                index + 1,
                r.change_id,
                r.id(),
                r.state()
            );
        }
        let _ = writeln!(out, "\nConsole: {}/", self.url);
        if let Some((owner, link)) = &self.console_link {
            let _ = writeln!(
                out,
                "One-click sign-in as {owner} (single use, valid 1 hour): {}{link}",
                self.url
            );
        }
        let _ = writeln!(
            out,
            "\nDemo tokens (shown once, valid 7 days; the server keeps only their hashes):"
        );
        for token in &self.tokens {
            let _ = writeln!(
                out,
                "  {:<18} {:<9} {}",
                token.principal,
                token.role.as_str(),
                token.text
            );
        }
        let auditor = self
            .tokens
            .iter()
            .find(|t| t.principal == AUDITOR)
            .map_or("<a token above>", |t| t.text.as_str());
        if !self.waiting.is_empty() {
            let _ = writeln!(out, "\nWaiting for approval (approve or reject them):");
            for w in &self.waiting {
                let eligible: Vec<&str> = w.proposal["eligible_approvers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let _ = writeln!(
                    out,
                    "  {:<26} {:<26} {} ({} needed), eligible: {}",
                    w.id(),
                    w.change_id,
                    w.proposal["tier"].as_str().unwrap_or(""),
                    w.proposal["approvals_required"],
                    eligible.join(", ")
                );
            }
        }
        let _ = writeln!(out, "\nTry it:");
        let _ = writeln!(out, "  export COUNTERSIGN_SERVER={}", self.url);
        let _ = writeln!(out, "  export COUNTERSIGN_TOKEN={auditor}");
        if let Some(example) = self.replayed.iter().find(|r| !r.approvers().is_empty()) {
            let id = example.id();
            let _ = writeln!(out, "  countersign status {id}");
            let _ = writeln!(
                out,
                "  COUNTERSIGN_TOKEN=<agent:fixbot's proposer token> countersign propose --repo {REPOSITORY} \\\n      --base main --head demo/payments-retry --title 'payments: retry again'"
            );
            let _ = writeln!(out, "  countersign bundle fetch {id} -o {id}.bundle.json");
            let _ = writeln!(
                out,
                "  countersign bundle verify {id}.bundle.json --log-key {}",
                self.verifier_key.display()
            );
        }
        if let Some(w) = self.waiting.first() {
            let person = w.proposal["eligible_approvers"]
                .as_array()
                .and_then(|list| list.first())
                .and_then(Value::as_str)
                .unwrap_or("<an eligible approver>");
            let _ = writeln!(
                out,
                "  COUNTERSIGN_TOKEN=<{person}'s approver token> countersign approve {} --head {}",
                w.id(),
                w.proposal["head"].as_str().unwrap_or("SHA")
            );
        }
        let dir = self.dir.display();
        let _ = writeln!(
            out,
            "\nThe server's log: {} (signed with {}). In {dir}:",
            self.database,
            self.verifier_key.with_extension("key").display()
        );
        let _ = writeln!(
            out,
            "  countersign log verify --database sqlite://{dir}/.countersign/state/server.db \\\n      --log-key {}",
            self.verifier_key.display()
        );
        let _ = writeln!(
            out,
            "  countersign token create --principal human:dave --role approver   # the server's default database"
        );
        let _ = writeln!(
            out,
            "  countersign serve --repo {REPOSITORY}=.   # serves the same log again"
        );
        out
    }

    /// `outcome`'s JSON with the server's side: where it runs, the tokens, and each change's
    /// proposal.
    pub fn json(&self, mut outcome: Value) -> Value {
        if let Some(changes) = outcome["changes"].as_array_mut() {
            for (change, r) in changes.iter_mut().zip(&self.replayed) {
                change["proposal"] = json!({
                    "id": r.id(),
                    "tier": r.proposal["tier"],
                    "state": r.state(),
                    "approved_by": r.approvers(),
                });
            }
        }
        outcome["server"] = json!({
            "url": self.url,
            "repository": REPOSITORY,
            "waiting": self.waiting.iter().map(|w| json!({
                "change": w.change_id,
                "id": w.id(),
                "head": w.proposal["head"],
                "tier": w.proposal["tier"],
                "state": w.state(),
                "eligible_approvers": w.proposal["eligible_approvers"],
            })).collect::<Vec<_>>(),
            "console": {
                "url": format!("{}/", self.url),
                "signin_as": self.console_link.as_ref().map(|l| l.0.clone()),
                "signin_link": self.console_link.as_ref().map(|l| format!("{}{}", self.url, l.1)),
            },
            "database": self.database,
            "log_verifier_key": self.verifier_key.display().to_string(),
            "tokens": self.tokens.iter().map(|t| json!({
                "principal": t.principal, "role": t.role.as_str(), "token": t.text,
            })).collect::<Vec<_>>(),
        });
        outcome
    }

    /// Serves until Ctrl-C when `serve`, then stops gracefully.
    pub fn finish(self, serve: bool) -> Result<()> {
        let LiveDemo {
            url,
            runtime,
            stop,
            mut server,
            store,
            ..
        } = self;
        runtime.block_on(async move {
            if serve {
                eprintln!("countersign demo serving on {url}; Ctrl-C stops it");
                let ended = tokio::select! {
                    signal = tokio::signal::ctrl_c() => match signal {
                        Ok(()) => None,
                        // No handler: serve until killed.
                        Err(_) => Some((&mut server).await),
                    },
                    ended = &mut server => Some(ended),
                };
                if let Some(ended) = ended {
                    store.close().await;
                    ended
                        .map_err(|e| anyhow!("the demo server task failed: {e}"))?
                        .context("serving the demo")?;
                    bail!("the demo server stopped by itself");
                }
            }
            let _ = stop.send(());
            let served = server
                .await
                .map_err(|e| anyhow!("the demo server task failed: {e}"))?;
            store.close().await;
            served.context("serving the demo")
        })
    }
}
