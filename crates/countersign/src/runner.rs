//! `runner serve`: a runner of the fleet. It leases work from the server, fetches the
//! commit into its own clone, checks it out into a scratch worktree, runs the suite's command
//! (from the base's `[suites]`, as the work item carries it) under its timeout in a process
//! group of its own, reads the reports, signs one envelope per report kind with `attest`'s
//! code, pushes the evidence through the ordinary evidence route and finishes the run.
//!
//! A base-version work item (a suite the head self-validates, docs/fleet.md) is run the
//! same way after the suite's files are restored from the base over the head's checkout;
//! its one envelope, the test result, names the base as its suite source.
//!
//! With `--capsule`, every lease presents the capsule and the runner key's proof that it is
//! this token's (`countersign_evidence::capsule::prove_lease`): the server leases it the
//! items the capsule covers, and every envelope it signs carries the capsule.
//!
//! Outbound connections only: the runner never listens. The token comes from
//! `COUNTERSIGN_TOKEN` and is removed from the suite command's environment. SIGTERM (or
//! Ctrl-C) stops leasing, stops the commands running, gives their leases back and exits 0.
//!
//! Not here: deciding anything. What counts is decided by the server from the signed
//! evidence; the outcome sent with `finish` is the run's record, never an input of a decision.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use countersign_evidence::Statement;
use countersign_evidence::verify::DEFAULT_MAX_ENVELOPE_BYTES;
use countersign_repo::Repo;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::attest::{self, Attestation, CommandExit};
use crate::cli::RunnerServeArgs;
use crate::client::Api;
use countersign_decide::governed;

/// Why a run's command must stop before it ends by itself.
const GO_ON: u8 = 0;
/// The server said the run is no longer ours (lease taken, run cancelled).
const LOST: u8 = 1;
/// The runner is shutting down: give the lease back.
const SHUTDOWN: u8 = 2;

/// A work item as leased (the parts the runner reads).
#[derive(Debug, Clone, Deserialize)]
struct WorkItem {
    id: String,
    attempt: u32,
    repository: String,
    suite: String,
    commit: String,
    #[serde(default = "default_environment")]
    environment: String,
    proposal: Option<String>,
    lease_seconds: u64,
    definition: Definition,
    /// A base-version run: the commit whose suite files run against `commit`.
    #[serde(default)]
    suite_source: Option<String>,
    /// The paths restored from `suite_source` (removed when it lacks them).
    #[serde(default)]
    suite_files: Vec<String>,
}

fn default_environment() -> String {
    countersign_repo::DEFAULT_ENVIRONMENT.to_owned()
}

#[derive(Debug, Clone, Deserialize)]
struct Definition {
    command: Vec<String>,
    workdir: String,
    timeout_seconds: u64,
    reports: Reports,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Reports {
    #[serde(default)]
    junit: Vec<String>,
    #[serde(default)]
    sarif: Vec<String>,
    #[serde(default)]
    vex: Vec<String>,
}

/// What executing an item gave.
enum Executed {
    /// The command ran (or could not): the outcome, counts and envelopes to push.
    Done {
        outcome: &'static str,
        tests: Option<Value>,
        duration_ms: u64,
        envelopes: Vec<Vec<u8>>,
        note: String,
    },
    /// Stopped before the end: `LOST` or `SHUTDOWN`.
    Stopped(u8),
}

/// The runner's fixed settings, shared by its workers.
pub struct Runner {
    api: Api,
    exec: Exec,
    environments: Vec<String>,
    poll: Duration,
    /// How its lines on stderr start: `runner` for `runner serve`, `runner NAME` when several
    /// share a terminal (the demo).
    label: String,
}

/// What executing an item needs, online or offline.
struct Exec {
    key: countersign_evidence::SigningKey,
    repository: String,
    origin: String,
    clone: PathBuf,
    /// The capsule every envelope is signed under, checked at start-up.
    capsule: Option<crate::capsule::Armed>,
    /// Fetches and worktree changes of the one clone, one at a time.
    git: Mutex<()>,
}

impl Exec {
    /// Checks the repository name and prepares the clone.
    fn new(
        key: countersign_evidence::SigningKey,
        repository: &str,
        origin: String,
        clone: PathBuf,
        capsule: Option<crate::capsule::Armed>,
    ) -> Result<Exec> {
        let repository = repository.trim().to_owned();
        if repository.is_empty() {
            bail!("--repository must name the repository this runner attests for");
        }
        prepare_clone(&clone)?;
        Ok(Exec {
            key,
            repository,
            origin,
            clone,
            capsule,
            git: Mutex::new(()),
        })
    }
}

/// What a runner is: who it asks for work, with which key it signs, for which repository,
/// where it fetches commits from and keeps its clone.
pub struct RunnerSettings {
    pub api: Api,
    pub key: countersign_evidence::SigningKey,
    /// The `[repository] name` it attests for.
    pub repository: String,
    /// Where it fetches commits from: a git URL or a path.
    pub origin: String,
    /// Its own bare clone, created on first use.
    pub clone: PathBuf,
    /// Empty for the default environment (the capsule's, with a capsule).
    pub environments: Vec<String>,
    /// How long it waits before asking again when there was no work.
    pub poll: Duration,
    pub label: String,
    /// The capsule it signs under, already checked against its key ([`crate::capsule::Armed`]).
    pub capsule: Option<crate::capsule::Armed>,
}

/// The environments a runner serves: those given, else its capsule's, else the default; a
/// capsule's runner serves its capsule's environment only.
fn environments(given: &[String], capsule: Option<&crate::capsule::Armed>) -> Result<Vec<String>> {
    let environments = match (capsule, given.is_empty()) {
        (Some(armed), true) => vec![armed.capsule.environment.clone()],
        (None, true) => vec![countersign_repo::DEFAULT_ENVIRONMENT.to_owned()],
        (_, false) => given.to_vec(),
    };
    if let Some(armed) = capsule
        && let Some(other) = environments
            .iter()
            .find(|e| **e != armed.capsule.environment)
    {
        bail!(
            "--env {other}: the capsule {} is for environment {:?} only",
            armed.path.display(),
            armed.capsule.environment
        );
    }
    Ok(environments)
}

impl Runner {
    /// Checks the settings and prepares the clone.
    pub fn new(settings: RunnerSettings) -> Result<Arc<Runner>> {
        if settings.poll.is_zero() {
            bail!("the poll interval must be more than zero");
        }
        let environments = environments(&settings.environments, settings.capsule.as_ref())?;
        let exec = Exec::new(
            settings.key,
            &settings.repository,
            settings.origin,
            settings.clone,
            settings.capsule,
        )?;
        Ok(Arc::new(Runner {
            api: settings.api,
            exec,
            environments,
            poll: settings.poll,
            label: settings.label,
        }))
    }
}

/// `runner serve`.
pub fn serve(args: RunnerServeArgs) -> Result<ExitCode> {
    if args.concurrency == 0 || args.concurrency > 16 {
        bail!("--concurrency {}: from 1 to 16", args.concurrency);
    }
    let poll = countersign_repo::config::parse_duration(&args.poll)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| anyhow!("--poll {:?}: a duration such as 5s or 1m", args.poll))?;
    let key = attest::read_key(&args.key)?;
    // Refused before anything is leased or run: wrong key, expired, another binary.
    let capsule = args
        .capsule
        .as_deref()
        .map(|path| crate::capsule::Armed::load(path, &key))
        .transpose()?;
    if args.offline {
        environments(&args.env, capsule.as_ref())?;
        let exec = Exec::new(
            key,
            &args.repository,
            args.repo.clone(),
            args.clone.clone(),
            capsule,
        )?;
        return offline(&exec, &args);
    }
    let Some(server) = &args.server else {
        bail!("--server (or COUNTERSIGN_SERVER) names the server; without one, use --offline");
    };
    let runner = Runner::new(RunnerSettings {
        api: Api::from_env(server)?,
        key,
        repository: args.repository.clone(),
        origin: args.repo.clone(),
        clone: args.clone.clone(),
        environments: args.env.clone(),
        poll,
        label: "runner".to_owned(),
        capsule,
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut shutdown = Shutdown::listen();
        let (stop, stopping) = tokio::sync::watch::channel(false);
        eprintln!(
            "runner: serving {} in {} for {} ({} worker(s))",
            runner.exec.repository,
            runner.environments.join(", "),
            runner.api.server(),
            args.concurrency
        );
        let serving = tokio::spawn(run(runner, args.concurrency, stopping));
        shutdown.requested().await;
        eprintln!("runner: stopping: no more leases, giving back the work in hand");
        let _ = stop.send(true);
        let _ = serving.await;
    });
    Ok(ExitCode::SUCCESS)
}

/// Serves with `concurrency` workers until `stopping` turns true; then the workers stop
/// leasing, stop the commands running and give their leases back, and this returns.
pub async fn run(
    runner: Arc<Runner>,
    concurrency: usize,
    stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut workers = Vec::new();
    for n in 0..concurrency {
        let runner = Arc::clone(&runner);
        let stopping = stopping.clone();
        workers.push(tokio::spawn(async move { work(runner, n, stopping).await }));
    }
    for worker in workers {
        let _ = worker.await;
    }
}

/// SIGTERM or Ctrl-C, listened for from [`Shutdown::listen`] on: one that arrives before
/// anyone awaits [`Shutdown::requested`] is kept, not fatal to the process.
pub(crate) struct Shutdown {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Shutdown {
    /// Installs the handlers; inside a runtime.
    pub(crate) fn listen() -> Shutdown {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Shutdown {
                term: signal(SignalKind::terminate()).ok(),
                interrupt: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Shutdown {}
    }

    /// Until one of the signals arrives (forever when no handler could be installed: then
    /// only killing stops the process).
    pub(crate) async fn requested(&mut self) {
        #[cfg(unix)]
        match (&mut self.term, &mut self.interrupt) {
            (Some(term), Some(interrupt)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            (Some(one), None) | (None, Some(one)) => {
                let _ = one.recv().await;
            }
            (None, None) => std::future::pending::<()>().await,
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// One worker: lease an item, run it, finish it; poll when there is none.
async fn work(runner: Arc<Runner>, n: usize, mut stopping: tokio::sync::watch::Receiver<bool>) {
    let mut ask = json!({ "repository": runner.exec.repository, "environments": runner.environments, "max": 1 });
    // A capsule runner presents its capsule on every lease, with its runner key's proof that
    // the capsule is this token's: the server leases it what the capsule covers.
    if let Some(armed) = &runner.exec.capsule {
        ask["capsule"] = armed.lease(&runner.exec.key, &runner.api.token_sha256());
    }
    loop {
        if *stopping.borrow() {
            return;
        }
        let leased = runner.api.post(&["v1", "work", "lease"], &ask).await;
        let items: Vec<WorkItem> =
            match leased.map(|v| serde_json::from_value::<Vec<WorkItem>>(v["items"].clone())) {
                Ok(Ok(items)) => items,
                Ok(Err(e)) => {
                    eprintln!(
                        "{}[{n}]: the server's lease answer is not a list of work items: {e}",
                        runner.label
                    );
                    Vec::new()
                }
                Err(e) => {
                    eprintln!("{}[{n}]: leasing: {e}", runner.label);
                    Vec::new()
                }
            };
        if items.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(runner.poll) => {}
                _ = stopping.changed() => {}
            }
            continue;
        }
        for item in items {
            handle(&runner, n, item, &mut stopping).await;
        }
    }
}

/// Runs one leased item with its heartbeats, then finishes or returns it.
async fn handle(
    runner: &Arc<Runner>,
    n: usize,
    item: WorkItem,
    stopping: &mut tokio::sync::watch::Receiver<bool>,
) {
    let version = match &item.suite_source {
        Some(source) => format!(" (the suite files of {source})"),
        None => String::new(),
    };
    eprintln!(
        "{}[{n}]: run {} (attempt {}): suite {} at {}{version}",
        runner.label, item.id, item.attempt, item.suite, item.commit
    );
    let stop = Arc::new(AtomicU8::new(GO_ON));
    let every = Duration::from_secs((item.lease_seconds / 3).max(1));
    let beat = {
        let (runner, stop, item) = (Arc::clone(runner), Arc::clone(&stop), item.clone());
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopping.changed() => {
                        let _ = stop.compare_exchange(GO_ON, SHUTDOWN, Ordering::SeqCst, Ordering::SeqCst);
                        return;
                    }
                }
                let answer = runner
                    .api
                    .post(
                        &["v1", "work", &item.id, "heartbeat"],
                        &json!({ "attempt": item.attempt }),
                    )
                    .await;
                if let Err(e) = answer
                    && matches!(
                        e.status(),
                        Some(StatusCode::CONFLICT | StatusCode::NOT_FOUND)
                    )
                {
                    eprintln!("runner: run {}: {e}", item.id);
                    let _ = stop.compare_exchange(GO_ON, LOST, Ordering::SeqCst, Ordering::SeqCst);
                    return;
                }
            }
        })
    };
    let executed = {
        let (runner, stop, item) = (Arc::clone(runner), Arc::clone(&stop), item.clone());
        tokio::task::spawn_blocking(move || execute(&runner.exec, &item, &stop)).await
    };
    beat.abort();
    let executed = executed.unwrap_or_else(|e| Executed::Done {
        outcome: "errored",
        tests: None,
        duration_ms: 0,
        envelopes: Vec::new(),
        note: format!("the run's task failed: {e}"),
    });
    let attempt = json!({ "attempt": item.attempt });
    match executed {
        Executed::Stopped(LOST) => {
            eprintln!(
                "{}[{n}]: run {}: no longer ours, dropped",
                runner.label, item.id
            );
        }
        Executed::Stopped(_) => {
            let back = runner
                .api
                .post(&["v1", "work", &item.id, "return"], &attempt)
                .await;
            match back {
                Ok(_) => eprintln!("{}[{n}]: run {}: given back", runner.label, item.id),
                Err(e) => eprintln!(
                    "{}[{n}]: run {}: giving it back: {e}",
                    runner.label, item.id
                ),
            }
        }
        Executed::Done {
            mut outcome,
            tests,
            duration_ms,
            envelopes,
            note,
        } => {
            let mut digests = Vec::new();
            {
                for envelope in envelopes {
                    // A proposal's head is weighed by its proposal; a branch's run (scheduled,
                    // or after a merge) by the run itself, which may open findings.
                    let pushed = match &item.proposal {
                        Some(proposal) => runner.api.push_evidence(proposal, envelope).await,
                        None => runner.api.push_run_evidence(&item.id, envelope).await,
                    };
                    match pushed {
                        Ok(accepted) => {
                            if let Some(digest) = accepted["digest"].as_str() {
                                digests.push(digest.to_owned());
                            }
                        }
                        Err(e) => {
                            eprintln!("{}[{n}]: run {}: evidence: {e}", runner.label, item.id);
                            outcome = "errored";
                        }
                    }
                }
            }
            let body = json!({
                "attempt": item.attempt,
                "outcome": outcome,
                "tests": tests,
                "duration_ms": duration_ms,
                "envelopes": digests,
            });
            match runner
                .api
                .post(&["v1", "work", &item.id, "finish"], &body)
                .await
            {
                Ok(_) => eprintln!("{}[{n}]: run {}: {outcome} ({note})", runner.label, item.id),
                Err(e) => eprintln!("{}[{n}]: run {}: finishing: {e}", runner.label, item.id),
            }
        }
    }
}

/// Checks the commit out and runs the suite. Blocking.
fn execute(runner: &Exec, item: &WorkItem, stop: &AtomicU8) -> Executed {
    let errored = |note: String| Executed::Done {
        outcome: "errored",
        tests: None,
        duration_ms: 0,
        envelopes: Vec::new(),
        note,
    };
    if item.repository != runner.repository {
        return errored(format!(
            "the item is about repository {:?}, this runner attests for {:?}",
            item.repository, runner.repository
        ));
    }
    // A capsule runner runs only what its capsule covers: anything else would be evidence
    // the server refuses, so it is not run at all.
    if let Some(armed) = &runner.capsule
        && let Err(e) = armed.allows(&item.suite, &item.environment)
    {
        return errored(format!("{e:#}"));
    }
    let scratch = match tempfile::Builder::new()
        .prefix("countersign-run-")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => return errored(format!("creating a scratch directory: {e}")),
    };
    let worktree = scratch.path().join("checkout");
    let checked_out =
        checkout(runner, &item.commit, &worktree).and_then(|()| match &item.suite_source {
            Some(source) => restore_suite_files(runner, source, &item.suite_files, &worktree),
            None => Ok(()),
        });
    let executed = match checked_out {
        Err(e) => errored(format!("{e:#}")),
        Ok(()) => match run_suite(runner, item, &worktree, stop) {
            Ok(executed) => executed,
            Err(e) => errored(format!("{e:#}")),
        },
    };
    remove_worktree(runner, &worktree);
    executed
}

fn git(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .stdin(Stdio::null())
        .env("GIT_TERMINAL_PROMPT", "0");
    command
}

fn run_git(mut command: Command, what: &str) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("{what}: running git"))?;
    if !output.status.success() {
        bail!(
            "{what}: git failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The runner's own bare clone, created empty on first use (commits are fetched as needed).
fn prepare_clone(clone: &Path) -> Result<()> {
    if clone.join("HEAD").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(clone).with_context(|| format!("creating {}", clone.display()))?;
    let mut init = git(clone);
    init.args(["init", "--bare", "--quiet"]);
    run_git(init, &format!("--clone {}", clone.display()))
}

fn has_commit(clone: &Path, commit: &str) -> bool {
    git(clone)
        .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Fetches `commit` into the clone when it lacks it (the branches first, then the commit
/// itself when no branch holds it), and checks it out, detached, at `worktree`.
fn checkout(runner: &Exec, commit: &str, worktree: &Path) -> Result<()> {
    if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{commit:?} is not a commit id");
    }
    let _one_at_a_time = runner.git.lock().unwrap_or_else(|e| e.into_inner());
    ensure_commit(runner, commit)?;
    let mut add = git(&runner.clone);
    add.args(["worktree", "add", "--detach", "--quiet"])
        .arg(worktree)
        .arg(commit);
    run_git(add, &format!("checking out {commit}"))
}

/// Fetches `commit` into the clone when it lacks it: the branches first, then the commit
/// itself when no branch holds it. The caller holds the clone's lock.
fn ensure_commit(runner: &Exec, commit: &str) -> Result<()> {
    if !has_commit(&runner.clone, commit) {
        let mut fetch = git(&runner.clone);
        fetch.args([
            "fetch",
            "--quiet",
            "--no-tags",
            "--",
            &runner.origin,
            "+refs/heads/*:refs/heads/*",
        ]);
        run_git(fetch, &format!("fetching {}", runner.origin))?;
    }
    if !has_commit(&runner.clone, commit) {
        let mut fetch = git(&runner.clone);
        fetch.args([
            "fetch",
            "--quiet",
            "--no-tags",
            "--",
            &runner.origin,
            commit,
        ]);
        run_git(fetch, &format!("fetching {commit} from {}", runner.origin))?;
    }
    Ok(())
}

/// Whether `path` is a plain repository-relative file path a work item may name: `/`-
/// separated normal components, none of them `.`, `..` or `.git` (any case), no NUL.
fn is_repo_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 4096
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.eq_ignore_ascii_case(".git"))
}

/// Puts the base's version of the suite into `worktree` (the head's checkout): each of
/// `files` the `source` commit has is checked out from it, each it lacks (the head added
/// it) is removed. Through git with literal pathspecs, so a crafted path neither globs nor
/// writes through a link the head planted. The worktree's index follows, so the tests see
/// an ordinary checkout.
fn restore_suite_files(
    runner: &Exec,
    source: &str,
    files: &[String],
    worktree: &Path,
) -> Result<()> {
    if source.len() != 40 || !source.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("the suite source {source:?} is not a commit id");
    }
    if files.is_empty() {
        bail!("a base-version run names no suite files to restore");
    }
    if let Some(bad) = files.iter().find(|f| !is_repo_path(f)) {
        bail!("the suite file {bad:?} is not a repository path");
    }
    {
        let _one_at_a_time = runner.git.lock().unwrap_or_else(|e| e.into_inner());
        ensure_commit(runner, source)?;
    }
    let repo = Repo::open(&runner.clone)?;
    let id = repo.resolve(source)?;
    let tree = repo.commit_tree(&id)?;
    let known = countersign_graph::FileSource::paths(&tree);
    let (restore, remove): (Vec<&String>, Vec<&String>) = files
        .iter()
        .partition(|f| known.binary_search_by(|p| p.as_str().cmp(f)).is_ok());
    let pathspecs = |paths: &[&String]| -> Vec<u8> {
        paths
            .iter()
            .flat_map(|p| p.bytes().chain(std::iter::once(0)))
            .collect()
    };
    if !remove.is_empty() {
        let mut rm = git(worktree);
        rm.env("GIT_LITERAL_PATHSPECS", "1").args([
            "rm",
            "-r",
            "-q",
            "-f",
            "--ignore-unmatch",
            "--pathspec-from-file=-",
            "--pathspec-file-nul",
        ]);
        run_git_with_input(
            rm,
            &pathspecs(&remove),
            "removing the suite files the base lacks",
        )?;
    }
    if !restore.is_empty() {
        let mut checkout = git(worktree);
        checkout.env("GIT_LITERAL_PATHSPECS", "1").args([
            "checkout",
            source,
            "--pathspec-from-file=-",
            "--pathspec-file-nul",
        ]);
        run_git_with_input(
            checkout,
            &pathspecs(&restore),
            &format!("restoring the suite files of {source}"),
        )?;
    }
    Ok(())
}

/// [`run_git`] with `input` on git's stdin.
fn run_git_with_input(mut command: Command, input: &[u8], what: &str) -> Result<()> {
    use std::io::Write as _;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("{what}: running git"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .with_context(|| format!("{what}: writing to git"))?;
    }
    let output = child
        .wait_with_output()
        .with_context(|| format!("{what}: running git"))?;
    if !output.status.success() {
        bail!(
            "{what}: git failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The format name of a plan file for `runner serve --offline`.
pub const PLAN_FORMAT: &str = "countersign-plan/v1";

/// A plan file: the work items the server would hand out, for a runner with no route to it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    plan: String,
    items: Vec<PlanItem>,
}

/// One work item of a plan file. The suite's definition is read from `base`'s
/// `[suites.NAME]` (as the server copies it from the base), never from `commit`'s.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanItem {
    suite: String,
    commit: String,
    base: String,
    repository: String,
    #[serde(default = "default_environment")]
    environment: String,
}

/// `runner serve --offline`: runs each item of the plan against the clone and writes each
/// signed envelope, byte for byte as it would have been pushed, into `--out`. Exits 1 when
/// an item could not be run (the others are still written).
fn offline(exec: &Exec, args: &RunnerServeArgs) -> Result<ExitCode> {
    let (Some(plan_path), Some(out)) = (&args.plan, &args.out) else {
        bail!("--offline needs --plan FILE and --out DIR");
    };
    let text = std::fs::read_to_string(plan_path)
        .with_context(|| format!("reading the plan {}", plan_path.display()))?;
    let plan: PlanFile = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{}:{}:{}: {e}", plan_path.display(), e.line(), e.column()))?;
    if plan.plan != PLAN_FORMAT {
        bail!(
            "{}: field plan: {:?} is not {PLAN_FORMAT}",
            plan_path.display(),
            plan.plan
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut failed_any = false;
    for (i, planned) in plan.items.into_iter().enumerate() {
        let item = match offline_item(exec, i, planned) {
            Ok(item) => item,
            Err(e) => {
                eprintln!("runner: {}: items[{i}]: {e:#}", plan_path.display());
                failed_any = true;
                continue;
            }
        };
        eprintln!(
            "runner: items[{i}]: suite {} at {} in {}",
            item.suite, item.commit, item.environment
        );
        match execute(exec, &item, &AtomicU8::new(GO_ON)) {
            Executed::Done {
                outcome,
                envelopes,
                note,
                ..
            } => {
                if envelopes.is_empty() {
                    failed_any = true;
                }
                for (k, envelope) in envelopes.iter().enumerate() {
                    let path = out.join(format!("{i:04}-{}-{k}.dsse.json", item.suite));
                    write_new(&path, envelope)?;
                    eprintln!(
                        "runner: items[{i}]: wrote {} (sha256:{})",
                        path.display(),
                        countersign_evidence::capsule::sha256_hex(envelope)
                    );
                }
                eprintln!("runner: items[{i}]: {outcome} ({note})");
            }
            Executed::Stopped(_) => failed_any = true,
        }
    }
    Ok(if failed_any {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A plan item as a work item, its definition read from its base.
fn offline_item(exec: &Exec, i: usize, planned: PlanItem) -> Result<WorkItem> {
    for (field, commit) in [("commit", &planned.commit), ("base", &planned.base)] {
        if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("field {field}: {commit:?} is not a full commit id");
        }
    }
    {
        let _one_at_a_time = exec.git.lock().unwrap_or_else(|e| e.into_inner());
        ensure_commit(exec, &planned.base)?;
    }
    let repo = Repo::open(&exec.clone)?;
    let base = repo.resolve(&planned.base)?;
    let config = governed::read_config(&repo.commit_tree(&base)?)
        .with_context(|| format!("reading the configuration at {}", planned.base))?;
    let Some(suite) = config.suites.get(&planned.suite) else {
        bail!(
            "field suite: the base {} defines no [suites.{}]",
            planned.base,
            planned.suite
        );
    };
    Ok(WorkItem {
        id: format!("offline-{i}"),
        attempt: 0,
        repository: planned.repository,
        suite: planned.suite,
        commit: planned.commit,
        environment: planned.environment,
        proposal: None,
        lease_seconds: 0,
        definition: Definition {
            command: suite.command.clone(),
            workdir: suite.workdir.clone(),
            timeout_seconds: suite.timeout.as_secs(),
            reports: Reports {
                junit: suite.reports.junit.clone(),
                sarif: suite.reports.sarif.clone(),
                vex: suite.reports.vex.clone(),
            },
        },
        // An offline plan runs the commit's own suite files; base versions are the server's
        // to plan (a plan item cannot ask for one yet).
        suite_source: None,
        suite_files: Vec::new(),
    })
}

/// Creates `path` with `bytes`, never replacing a file: evidence already written is kept.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

fn remove_worktree(runner: &Exec, worktree: &Path) {
    let _one_at_a_time = runner.git.lock().unwrap_or_else(|e| e.into_inner());
    let _ = git(&runner.clone)
        .args(["worktree", "remove", "--force"])
        .arg(worktree)
        .stderr(Stdio::null())
        .status();
    let _ = git(&runner.clone).args(["worktree", "prune"]).status();
}

/// A path of the checkout a report may be read from: inside it once links are resolved (a
/// crafted commit's `junit.xml` may be a link to the runner's key), or `None` when missing.
fn report_path(root: &Path, relative: &str) -> Result<Option<PathBuf>> {
    let path = root.join(relative);
    if !path.exists() {
        return Ok(None);
    }
    let real = path
        .canonicalize()
        .with_context(|| format!("resolving report {relative}"))?;
    let real_root = root.canonicalize().context("resolving the checkout")?;
    if !real.starts_with(&real_root) || !real.is_file() {
        bail!("report {relative} is not a file inside the checkout");
    }
    Ok(Some(path))
}

fn reports(root: &Path, list: &[String], kind: &str) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for relative in list {
        match report_path(root, relative)? {
            Some(path) => found.push(path),
            None => eprintln!("runner: warning: the command left no {kind} report {relative}"),
        }
    }
    Ok(found)
}

/// Runs the suite at `worktree` and signs what it produced.
fn run_suite(runner: &Exec, item: &WorkItem, worktree: &Path, stop: &AtomicU8) -> Result<Executed> {
    // The runner names the repository; a commit naming another is refused, as by `attest`.
    let repo = Repo::open(&runner.clone)?;
    let commit = repo.resolve(&item.commit)?;
    let config = governed::read_config(&repo.commit_tree(&commit)?)
        .with_context(|| format!("reading the configuration at {}", item.commit))?;
    let repository = attest::subject_repository(&runner.repository, &config, &item.commit)?;

    let definition = &item.definition;
    let Some((program, rest)) = definition.command.split_first() else {
        bail!("the suite's command is empty");
    };
    let workdir = worktree.join(&definition.workdir);
    let started = Instant::now();
    let mut command = Command::new(program);
    command
        .args(rest)
        .current_dir(&workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        // The change under test runs here: it gets no token of ours.
        .env_remove(crate::client::TOKEN_ENV);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        command.process_group(0);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("running {program} in {}", definition.workdir))?;
    let timeout = Duration::from_secs(definition.timeout_seconds.max(1));
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().context("waiting for the command")? {
            break (status, false);
        }
        let why = stop.load(Ordering::SeqCst);
        if why != GO_ON {
            kill_group(&mut child);
            return Ok(Executed::Stopped(why));
        }
        if started.elapsed() >= timeout {
            kill_group(&mut child);
            break (child.wait().context("waiting for the command")?, true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    #[cfg(unix)]
    let signal = {
        use std::os::unix::process::ExitStatusExt as _;
        status.signal()
    };
    #[cfg(not(unix))]
    let signal = None;

    let junit = reports(worktree, &definition.reports.junit, "JUnit")?;
    let (cases, configuration) = attest::read_junit(&junit, worktree)?;
    let counts = test_counts(&cases);
    let mut test_result = attest::command_attestation(
        &definition.command,
        CommandExit {
            success: status.success() && !timed_out,
            code: status.code(),
            signal,
            duration_ms,
        },
        cases,
        configuration,
    );
    let failed = test_result.command_failed || counts["failed"].as_u64().unwrap_or(0) > 0;
    // A base-version run says one thing only: whether the base's tests pass against the
    // head's code. Its test result names the base as the suite source; what else its
    // reports hold is not the head's to claim.
    if let Some(source) = &item.suite_source {
        attest::name_suite_source(&mut test_result, source)?;
    }
    let note = test_result.summary.clone();
    let mut attestations = vec![test_result];
    if item.suite_source.is_none() {
        // VEX before the scan: the server weighs a branch run's scan with the VEX of the
        // run it holds already (a VEX pushed after the scan cannot take back the findings
        // the scan opened). A proposal's evidence is weighed whole, in any order.
        let vex = reports(worktree, &definition.reports.vex, "VEX")?;
        if !vex.is_empty() {
            attestations.push(attest::from_vex(&vex)?);
        }
        let sarif = reports(worktree, &definition.reports.sarif, "SARIF")?;
        if !sarif.is_empty() {
            attestations.push(attest::from_sarif(&sarif)?);
        }
    }
    let envelopes = attestations
        .into_iter()
        .map(|a| sign(runner, &repository, item, commit.as_str(), a))
        .collect::<Result<Vec<_>>>()?;
    let outcome = if timed_out {
        "timed_out"
    } else if failed {
        "failed"
    } else {
        "passed"
    };
    Ok(Executed::Done {
        outcome,
        tests: Some(counts),
        duration_ms,
        envelopes,
        note,
    })
}

/// A run's test counts: its JUnit test cases, each once by outcome (a flaky test passed on a
/// retry). The command's exit is a test of the signed test-result (so a crash fails the
/// suite) but not a test case of the run: it is the run's outcome, not one more test.
fn test_counts(cases: &[countersign_evidence::report::junit::TestCase]) -> Value {
    use countersign_evidence::report::junit::Outcome;
    let (mut passed, mut failed, mut skipped) = (0u64, 0u64, 0u64);
    for case in cases {
        match case.outcome {
            Outcome::Passed | Outcome::Flaky => passed += 1,
            Outcome::Failed | Outcome::Errored => failed += 1,
            Outcome::Skipped => skipped += 1,
        }
    }
    json!({ "passed": passed, "failed": failed, "skipped": skipped })
}

fn sign(
    runner: &Exec,
    repository: &str,
    item: &WorkItem,
    commit: &str,
    attestation: Attestation,
) -> Result<Vec<u8>> {
    let mut statement = Statement::for_commit(
        repository,
        commit,
        &item.suite,
        attestation.predicate_type,
        attestation.predicate,
    );
    if let Some(armed) = &runner.capsule {
        armed.annotate(&mut statement, &item.environment);
    }
    let envelope = countersign_evidence::attest(&statement, &runner.key).to_json();
    if envelope.len() > DEFAULT_MAX_ENVELOPE_BYTES {
        bail!(
            "the {} envelope is {} bytes, over the {DEFAULT_MAX_ENVELOPE_BYTES} verifiers accept",
            attestation.predicate_type,
            envelope.len()
        );
    }
    Ok(envelope)
}

/// Kills the command's whole process group (what it started too), then reaps it.
fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        if let Some(pid) = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::is_repo_path;

    /// A work item's suite files are plain paths of the checkout: nothing that climbs out
    /// of it, reaches into git's own directory or is empty.
    #[test]
    fn suite_files_must_be_plain_repository_paths() {
        for good in ["lib/tests/limit.sh", "a", "tests/.hidden", "x/y z/[a].sh"] {
            assert!(is_repo_path(good), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../outside",
            "lib/../../outside",
            "lib/./x",
            "lib//x",
            "lib/",
            ".git/config",
            "sub/.GIT/hooks/pre-commit",
            "nul\0byte",
        ] {
            assert!(!is_repo_path(bad), "{bad:?}");
        }
    }
}
