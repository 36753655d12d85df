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
use countersign_evidence::statement::TestResult;
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
struct Runner {
    api: Api,
    key: countersign_evidence::SigningKey,
    repository: String,
    origin: String,
    clone: PathBuf,
    environments: Vec<String>,
    poll: Duration,
    /// Fetches and worktree changes of the one clone, one at a time.
    git: Mutex<()>,
}

/// `runner serve`.
pub fn serve(args: RunnerServeArgs) -> Result<ExitCode> {
    if args.concurrency == 0 || args.concurrency > 16 {
        bail!("--concurrency {}: from 1 to 16", args.concurrency);
    }
    let repository = args.repository.trim().to_owned();
    if repository.is_empty() {
        bail!("--repository must name the repository this runner attests for");
    }
    let poll = countersign_repo::config::parse_duration(&args.poll)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| anyhow!("--poll {:?}: a duration such as 5s or 1m", args.poll))?;
    let environments = if args.env.is_empty() {
        vec![countersign_repo::DEFAULT_ENVIRONMENT.to_owned()]
    } else {
        args.env.clone()
    };
    let key = attest::read_key(&args.key)?;
    let api = Api::from_env(&args.server)?;
    prepare_clone(&args.clone)?;
    let runner = Arc::new(Runner {
        api,
        key,
        repository,
        origin: args.repo.clone(),
        clone: args.clone.clone(),
        environments,
        poll,
        git: Mutex::new(()),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let mut workers = Vec::new();
        for n in 0..args.concurrency {
            let runner = Arc::clone(&runner);
            let stopping = stopping.clone();
            workers.push(tokio::spawn(async move { work(runner, n, stopping).await }));
        }
        eprintln!(
            "runner: serving {} in {} for {} ({} worker(s))",
            runner.repository,
            runner.environments.join(", "),
            runner.api.server(),
            args.concurrency
        );
        shutdown_signal().await;
        eprintln!("runner: stopping: no more leases, giving back the work in hand");
        let _ = stop.send(true);
        for worker in workers {
            let _ = worker.await;
        }
    });
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// One worker: lease an item, run it, finish it; poll when there is none.
async fn work(runner: Arc<Runner>, n: usize, mut stopping: tokio::sync::watch::Receiver<bool>) {
    loop {
        if *stopping.borrow() {
            return;
        }
        let leased = runner
            .api
            .post(
                &["v1", "work", "lease"],
                &json!({ "repository": runner.repository, "environments": runner.environments, "max": 1 }),
            )
            .await;
        let items: Vec<WorkItem> =
            match leased.map(|v| serde_json::from_value::<Vec<WorkItem>>(v["items"].clone())) {
                Ok(Ok(items)) => items,
                Ok(Err(e)) => {
                    eprintln!(
                        "runner[{n}]: the server's lease answer is not a list of work items: {e}"
                    );
                    Vec::new()
                }
                Err(e) => {
                    eprintln!("runner[{n}]: leasing: {e}");
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
        "runner[{n}]: run {} (attempt {}): suite {} at {}{version}",
        item.id, item.attempt, item.suite, item.commit
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
        tokio::task::spawn_blocking(move || execute(&runner, &item, &stop)).await
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
            eprintln!("runner[{n}]: run {}: no longer ours, dropped", item.id);
        }
        Executed::Stopped(_) => {
            let back = runner
                .api
                .post(&["v1", "work", &item.id, "return"], &attempt)
                .await;
            match back {
                Ok(_) => eprintln!("runner[{n}]: run {}: given back", item.id),
                Err(e) => eprintln!("runner[{n}]: run {}: giving it back: {e}", item.id),
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
                            eprintln!("runner[{n}]: run {}: evidence: {e}", item.id);
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
                Ok(_) => eprintln!("runner[{n}]: run {}: {outcome} ({note})", item.id),
                Err(e) => eprintln!("runner[{n}]: run {}: finishing: {e}", item.id),
            }
        }
    }
}

/// Checks the commit out and runs the suite. Blocking.
fn execute(runner: &Runner, item: &WorkItem, stop: &AtomicU8) -> Executed {
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
fn checkout(runner: &Runner, commit: &str, worktree: &Path) -> Result<()> {
    if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{commit:?} is not a commit id");
    }
    let _one_at_a_time = runner.git.lock().unwrap_or_else(|e| e.into_inner());
    fetch_if_missing(runner, commit)?;
    let mut add = git(&runner.clone);
    add.args(["worktree", "add", "--detach", "--quiet"])
        .arg(worktree)
        .arg(commit);
    run_git(add, &format!("checking out {commit}"))
}

/// Fetches `commit` into the clone when it lacks it: the branches first, then the commit
/// itself when no branch holds it. The caller holds the clone's lock.
fn fetch_if_missing(runner: &Runner, commit: &str) -> Result<()> {
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
    runner: &Runner,
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
        fetch_if_missing(runner, source)?;
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

fn remove_worktree(runner: &Runner, worktree: &Path) {
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
fn run_suite(
    runner: &Runner,
    item: &WorkItem,
    worktree: &Path,
    stop: &AtomicU8,
) -> Result<Executed> {
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
    let counts = serde_json::from_value::<TestResult>(test_result.predicate.clone())
        .ok()
        .map(|r| json!({ "passed": r.passed_tests.len() + r.warned_tests.len(), "failed": r.failed_tests.len(), "skipped": 0 }));
    let failed = test_result.command_failed
        || counts
            .as_ref()
            .is_some_and(|c| c["failed"].as_u64().unwrap_or(0) > 0);
    // A base-version run says one thing only: whether the base's tests pass against the
    // head's code. Its test result names the base as the suite source; what else its
    // reports hold is not the head's to claim.
    if let Some(source) = &item.suite_source {
        attest::name_suite_source(&mut test_result, source)?;
    }
    let note = test_result.summary.clone();
    let mut attestations = vec![test_result];
    if item.suite_source.is_none() {
        let sarif = reports(worktree, &definition.reports.sarif, "SARIF")?;
        if !sarif.is_empty() {
            attestations.push(attest::from_sarif(&sarif)?);
        }
        let vex = reports(worktree, &definition.reports.vex, "VEX")?;
        if !vex.is_empty() {
            attestations.push(attest::from_vex(&vex)?);
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
        tests: counts,
        duration_ms,
        envelopes,
        note,
    })
}

fn sign(
    runner: &Runner,
    repository: &str,
    item: &WorkItem,
    commit: &str,
    attestation: Attestation,
) -> Result<Vec<u8>> {
    let statement = Statement::for_commit(
        repository,
        commit,
        &item.suite,
        attestation.predicate_type,
        attestation.predicate,
    );
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
