//! `countersign demo`'s closed loop, after the replay: two runners serve the demo server,
//! `stable` (the protected branch production deploys, branched from `main`) takes a
//! regression and the fleet's configuration, the nightly schedule fires and
//! its failing run opens a finding, an agent proposes a fix linked to it, eligible people
//! approve it, it is merged, and the post-merge run verifies the fix held.
//!
//! Everything is the product's own path: the runners are `runner serve`'s code
//! ([`crate::runner::run`]) in this process, leasing over HTTP, checking commits out of
//! their own clones with git, running the suites' shell scripts and pushing signed evidence;
//! the schedule fires through the server's own tick ([`countersign_server::tick_schedules`],
//! the function `serve`'s ticker calls), not through a route; the fix is proposed, approved
//! and recorded merged through [`crate::client::Api`], and the finding's bundle is checked
//! with `bundle verify`'s code. Each wait is bounded and says what it waited for.
//!
//! The data (the commits, the fleet's configuration) lives in `scenario::fleet`; printing is
//! the caller's ([`ClosedLoop::text`], [`ClosedLoop::json`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use countersign_decide::evaluate::{self, ChangeSource, Proposer};
use countersign_repo::{CommitId, RepoWriter};
use countersign_server::{AppState, Role};
use serde_json::{Value, json};
use tokio::runtime::Runtime;

use super::live::{ADMIN, AUDITOR, REPOSITORY, Tokens, api_error, approve};
use super::scenario::fleet::{
    BRANCH, FIX, FIX_BRANCH, FLEET_AUTHOR, FLEET_CONFIG, FLEET_TITLE, Landed, REGRESSION, RUNNERS,
    SCHEDULE, SUITE, TEST,
};
use super::scenario::{BASE, Edit};
use crate::client::Api;
use crate::runner::{Runner, RunnerSettings};

/// The `[repository] name` of the demo's `countersign.toml`: what the runners attest for.
const REPOSITORY_NAME: &str = "github.com/acme/shop";
/// How long the demo waits for one step of the loop (runs to finish, a finding to change
/// state) before it gives up, naming what it waited for: generous for a debug build on a busy
/// machine; a release build takes well under a second per step.
const WAIT: Duration = Duration::from_secs(120);
/// How often the demo's runners ask for work when there was none, and the demo looks.
const POLL: Duration = Duration::from_millis(200);
/// The time of the commits of the loop: a day after the demo's base.
const LOOP_TIME: i64 = super::BASE_TIME + 86_400;

/// The demo's runners, serving in this process until [`Fleet::stop`].
pub struct Fleet {
    stop: tokio::sync::watch::Sender<bool>,
    serving: Vec<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    /// Stops leasing, stops the suites running and gives their leases back.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for serving in self.serving {
            let _ = serving.await;
        }
    }
}

/// A commit of the loop.
pub struct Commit {
    pub title: &'static str,
    pub author: &'static str,
    pub id: CommitId,
}

/// What the loop did, as the server recorded it.
pub struct ClosedLoop {
    /// The runners' principals, with the suite each may attest.
    pub runners: Vec<(String, &'static str)>,
    /// What landed on [`BRANCH`] before the schedule fired: the regression, then the fleet.
    pub landed: Vec<Commit>,
    /// The schedule's view once it fired.
    pub schedule: Value,
    /// Its runs, finished.
    pub scheduled_runs: Vec<Value>,
    /// The finding as the failing run opened it.
    pub opened: Value,
    /// The fix's proposal as opened, and its tier's headline reason.
    pub fix_opened: Value,
    pub fix_why: String,
    /// Its runs, finished, and its plan after them.
    pub fix_runs: Vec<Value>,
    pub fix_plan: Value,
    /// The server's refusal of the agent's approval of its own fix.
    pub agent_refused: Option<String>,
    /// The fix once authorized.
    pub fix: Value,
    /// The fix once recorded merged.
    pub merged: Value,
    /// The post-merge runs, finished.
    pub verifying_runs: Vec<Value>,
    /// The finding once verified.
    pub finding: Value,
    /// Where the finding's bundle was written, and what its offline check found.
    pub bundle: PathBuf,
    pub bundle_as_of: u64,
    pub bundle_observations: usize,
}

/// What the loop needs from the replay.
pub struct Setting<'a> {
    pub url: &'a str,
    pub state: &'a AppState,
    pub dir: &'a Path,
    pub verifier_key: &'a Path,
}

/// Runs the loop; returns it with the runners still serving (the caller stops them).
pub(super) fn close(
    runtime: &Runtime,
    setting: &Setting<'_>,
    tokens: &mut Tokens,
) -> Result<(ClosedLoop, Fleet)> {
    require_tools()?;
    let mut keys = Vec::new();
    for (name, _) in RUNNERS {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| anyhow!("reading randomness from the OS: {e}"))?;
        keys.push((name, seed));
    }
    let fleet = start_runners(runtime, setting, tokens, &keys)?;
    match run(runtime, setting, tokens, &keys) {
        Ok(closed) => Ok((closed, fleet)),
        Err(error) => {
            runtime.block_on(fleet.stop());
            Err(error)
        }
    }
}

/// Starts one runner per [`RUNNERS`] entry, each with its own token, key and clone.
fn start_runners(
    runtime: &Runtime,
    setting: &Setting<'_>,
    tokens: &mut Tokens,
    keys: &[(&'static str, [u8; 32])],
) -> Result<Fleet> {
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut fleet = Fleet {
        stop,
        serving: Vec::new(),
    };
    let clones = setting.dir.join(".countersign/state/runners");
    for (name, seed) in keys {
        let started = runtime
            .block_on(tokens.get(&format!("runner:{name}"), Role::Runner))
            .and_then(|token| {
                Runner::new(RunnerSettings {
                    api: Api::new(setting.url, &token)?,
                    key: countersign_evidence::SigningKey::from_seed(seed),
                    repository: REPOSITORY_NAME.to_owned(),
                    origin: setting.dir.display().to_string(),
                    clone: clones.join(name),
                    environments: Vec::new(),
                    poll: POLL,
                    label: format!("runner {name}"),
                    capsule: None,
                })
            })
            .with_context(|| format!("starting demo runner {name}"));
        match started {
            Ok(runner) => {
                fleet
                    .serving
                    .push(runtime.spawn(crate::runner::run(runner, 1, stopping.clone())))
            }
            // The ones started already stop with it.
            Err(error) => {
                runtime.block_on(fleet.stop());
                return Err(error);
            }
        }
    }
    Ok(fleet)
}

fn run(
    runtime: &Runtime,
    setting: &Setting<'_>,
    tokens: &mut Tokens,
    keys: &[(&'static str, [u8; 32])],
) -> Result<ClosedLoop> {
    let reader = Api::new(
        setting.url,
        &runtime.block_on(tokens.get(AUDITOR, Role::Auditor))?,
    )?;
    let mut writer = RepoWriter::open(setting.dir)?;

    let branch = format!("refs/heads/{BRANCH}");

    // `stable` starts at main's tip with the regression, while nothing runs the test; then
    // the fleet is turned on. The schedule is in force from that second commit on, whose
    // tree holds the regression. `main`, and the `demo/<id>` changes against it, stay as
    // they were.
    let main = writer.head()?;
    let regression = commit_on(&mut writer, &branch, &main, &REGRESSION, LOOP_TIME)?;
    let config = fleet_config(keys)?;
    let tip = writer.commit_on(
        &branch,
        &regression,
        vec![("countersign.toml", Some(config.as_str()))],
        FLEET_TITLE,
        &super::commit_author(FLEET_AUTHOR),
        LOOP_TIME + 600,
    )?;
    let landed = vec![
        Commit {
            title: REGRESSION.title,
            author: REGRESSION.author,
            id: regression,
        },
        Commit {
            title: FLEET_TITLE,
            author: FLEET_AUTHOR,
            id: tip.clone(),
        },
    ];

    // The schedule fires as `serve`'s ticker fires it: the latest due time of a schedule seen
    // for the first time is queued at once, exactly once (whichever tick comes first).
    runtime
        .block_on(countersign_server::tick_schedules(setting.state))
        .map_err(|e| anyhow!("firing the demo's schedules: {e}"))?;
    let schedule = runtime.block_on(fired_schedule(&reader, tip.as_str()))?;
    let cause = format!("schedule:{SCHEDULE}");
    let scheduled_runs = runtime.block_on(finished_runs(
        &reader,
        &[("branch", BRANCH)],
        |r| r["cause"] == cause.as_str(),
        &format!("the runs of schedule {SCHEDULE}"),
    ))?;
    expect_outcomes(
        &scheduled_runs,
        |suite| {
            if suite == SUITE { "failed" } else { "passed" }
        },
        "the nightly run at the regression",
    )?;
    let opened = runtime.block_on(opened_finding(&reader))?;
    let finding_id = text(&opened["id"]).to_owned();

    // An agent proposes the fix on a branch off stable's tip, linked to the finding.
    let fix_head = writer.commit_on(
        &format!("refs/heads/{FIX_BRANCH}"),
        &tip,
        entries(FIX.edits)?,
        FIX.title,
        &super::commit_author(FIX.author),
        LOOP_TIME + 3_600,
    )?;
    let local = evaluate::evaluate(
        setting.dir,
        ChangeSource::Commits {
            base: tip.as_str().to_owned(),
            head: fix_head.as_str().to_owned(),
        },
        &Proposer {
            author: FIX.author.to_owned(),
            declared_tier: None,
            dispatched_by: None,
        },
    )
    .context("deciding the demo's fix locally")?;
    let proposer = Api::new(
        setting.url,
        &runtime.block_on(tokens.get(FIX.author, Role::Proposer))?,
    )?;
    let fix_opened = runtime
        .block_on(proposer.propose(
            REPOSITORY,
            BRANCH,
            FIX_BRANCH,
            FIX.title,
            &format!("Fixes {finding_id}: a hard decline is never retried."),
            std::slice::from_ref(&finding_id),
            Some("demo-fix-hard-declines"),
        ))
        .map_err(|f| api_error(FIX_BRANCH, "proposing the fix", &f))?;
    let local_tier = local.decision.tier.as_str();
    if fix_opened["tier"] != local_tier {
        bail!(
            "the demo's fix: the server decided {} but the local pipeline {local_tier}",
            fix_opened["tier"]
        );
    }
    let fix_id = text(&fix_opened["id"]).to_owned();
    let fix_runs = runtime.block_on(finished_runs(
        &reader,
        &[("proposal", &fix_id)],
        |_| true,
        &format!("the runs of the fix {fix_id}"),
    ))?;
    expect_outcomes(&fix_runs, |_| "passed", "the fix's runs")?;
    let evidenced = runtime.block_on(settled(&reader, &fix_id, |p| {
        p["state"] != "awaiting_evidence"
    }))?;
    let fix_plan = runtime
        .block_on(reader.get(&["v1", "proposals", &fix_id, "plan"], &[]))
        .map_err(|f| api_error(FIX_BRANCH, "reading the fix's plan", &f))?;
    // The agent that wrote the fix tries to approve it with an approver token of its own:
    // the server refuses (an agent never approves), and the story shows its answer.
    let agent_refused = if evidenced["state"] == "awaiting_approval" {
        let agent = Api::new(
            setting.url,
            &runtime.block_on(tokens.unlisted(FIX.author, Role::Approver))?,
        )?;
        match runtime.block_on(agent.verdict(
            &fix_id,
            text(&evidenced["head"]),
            "approve",
            "the agent approving its own fix",
        )) {
            Err(refused) if refused.status() == Some(reqwest::StatusCode::FORBIDDEN) => {
                Some(refused.to_string())
            }
            Err(other) => return Err(api_error(FIX_BRANCH, "the agent's own approval", &other)),
            Ok(_) => bail!(
                "the demo's fix {fix_id}: the server took {}'s approval of its own fix",
                FIX.author
            ),
        }
    } else {
        None
    };
    let fix = if evidenced["state"] == "awaiting_approval" {
        runtime.block_on(approve(
            setting.url,
            &evidenced,
            FIX_BRANCH,
            FIX.author,
            tokens,
        ))?
    } else {
        evidenced
    };
    if fix["state"] != "authorized" {
        bail!(
            "the demo's fix {fix_id} is {} after its runs and approvals, not authorized",
            fix["state"]
        );
    }

    // The merge: stable moves to the authorized head, and the server is told (the
    // post-receive hook's call), which queues the reproducing suite on stable at that commit.
    writer.fast_forward(&branch, &fix_head)?;
    let admin = Api::new(
        setting.url,
        &runtime.block_on(tokens.get(ADMIN, Role::Admin))?,
    )?;
    let merged = runtime
        .block_on(admin.mark_merged(&fix_id, fix_head.as_str()))
        .map_err(|f| api_error(FIX_BRANCH, "recording the merge", &f))?;
    let cause = format!("merge:{fix_id}");
    let verifying_runs = runtime.block_on(finished_runs(
        &reader,
        &[("branch", BRANCH)],
        |r| r["cause"] == cause.as_str(),
        &format!("the post-merge runs of {fix_id}"),
    ))?;
    expect_outcomes(&verifying_runs, |_| "passed", "the post-merge run")?;
    let finding = runtime.block_on(finding_in_state(&reader, &finding_id, "verified"))?;

    // The whole loop in one file, checked offline as `bundle verify` checks it.
    let bytes = runtime
        .block_on(reader.finding_bundle(&finding_id))
        .map_err(|f| anyhow!("fetching the bundle of {finding_id}: {f}"))?;
    let bundle = setting.dir.join(format!("{finding_id}.bundle.json"));
    std::fs::write(&bundle, &bytes).with_context(|| format!("writing {}", bundle.display()))?;
    let verifier = crate::audit::read_verifier(setting.verifier_key)?;
    let checked = countersign_decide::bundle::verify_finding(&bytes, &verifier)
        .with_context(|| format!("verifying {} offline", bundle.display()))?;
    if checked.state != "verified" {
        bail!(
            "{}: the bundle shows {finding_id} {}, not verified",
            bundle.display(),
            checked.state
        );
    }

    Ok(ClosedLoop {
        runners: RUNNERS
            .iter()
            .map(|(name, suite)| (format!("runner:{name}"), *suite))
            .collect(),
        landed,
        schedule,
        scheduled_runs,
        opened,
        fix_opened,
        fix_why: super::headline(&local.decision),
        fix_runs,
        fix_plan,
        agent_refused,
        fix,
        merged,
        verifying_runs,
        finding,
        bundle,
        bundle_as_of: checked.as_of,
        bundle_observations: checked.observations,
    })
}

/// The runners check commits out with `git` and the suites are `sh` scripts: say so at once
/// rather than after a run errored.
fn require_tools() -> Result<()> {
    for (tool, why) in [
        (
            "git",
            "the demo's runners fetch and check out commits with it",
        ),
        ("sh", "the demo's suites are POSIX shell scripts"),
    ] {
        let found = std::process::Command::new(tool)
            .args(if tool == "git" {
                &["--version"][..]
            } else {
                &["-c", "exit 0"][..]
            })
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            bail!("`countersign demo` needs `{tool}` on PATH: {why}");
        }
    }
    Ok(())
}

/// Each run ended as `expected(suite)` says, or the story cannot go on: an error naming the
/// run (the runners' lines on stderr say more).
fn expect_outcomes(
    runs: &[Value],
    expected: impl Fn(&str) -> &'static str,
    what: &str,
) -> Result<()> {
    for run in runs {
        let want = expected(text(&run["suite"]));
        if run["outcome"] != want {
            bail!(
                "{what}: run {} of {} on {} ended {}, not {want} (the runners' lines on stderr say why)",
                text(&run["id"]),
                text(&run["suite"]),
                text(&run["runner"]),
                text(&run["outcome"]),
            );
        }
    }
    Ok(())
}

/// The base's `countersign.toml` with the fleet appended, each runner's key in place.
fn fleet_config(keys: &[(&'static str, [u8; 32])]) -> Result<String> {
    let base = BASE
        .iter()
        .find(|f| f.path == "countersign.toml")
        .context("the demo's base has no countersign.toml")?
        .contents;
    let mut fleet = FLEET_CONFIG.to_owned();
    for (name, seed) in keys {
        let key = countersign_evidence::SigningKey::from_seed(seed);
        fleet = fleet.replace(&format!("{{{name}}}"), &key.public_key().to_hex());
    }
    if fleet.contains("public_key = \"{") {
        bail!("the demo's fleet configuration names a runner the demo has no key for");
    }
    Ok(format!("{base}{fleet}"))
}

fn entries(edits: &[Edit]) -> Result<Vec<(&str, Option<&str>)>> {
    edits
        .iter()
        .map(|edit| match *edit {
            Edit::Write { path, contents } => Ok((path, Some(contents))),
            Edit::Delete { path } => Ok((path, None)),
            Edit::Rename { from, .. } => bail!("the loop's commits rename nothing ({from})"),
        })
        .collect()
}

/// Commits `landed` on `branch` (a full ref name) on top of `parent`.
fn commit_on(
    writer: &mut RepoWriter,
    branch: &str,
    parent: &CommitId,
    landed: &Landed,
    time: i64,
) -> Result<CommitId> {
    Ok(writer.commit_on(
        branch,
        parent,
        entries(landed.edits)?,
        landed.title,
        &super::commit_author(landed.author),
        time,
    )?)
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

/// Polls `look` until it gives a value, or fails after [`WAIT`] naming `what`.
async fn until<F, Fut>(what: &str, mut look: F) -> Result<Value>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<Value>>>,
{
    let started = Instant::now();
    loop {
        if let Some(found) = look().await? {
            return Ok(found);
        }
        if started.elapsed() >= WAIT {
            bail!(
                "gave up after {}s waiting for {what} (the runners' lines on stderr say what they did)",
                WAIT.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The schedule once it fired at `tip`.
async fn fired_schedule(reader: &Api, tip: &str) -> Result<Value> {
    until(&format!("schedule {SCHEDULE} to fire at {tip}"), || async {
        let view = reader
            .get(&["v1", "schedules"], &[])
            .await
            .map_err(|f| anyhow!("reading the schedules: {f}"))?;
        Ok(view["schedules"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == SCHEDULE && s["last_fired"]["commit"] == tip)
            .cloned())
    })
    .await
}

/// The runs `query` lists that `keep` keeps, once there are some and all are finished.
async fn finished_runs(
    reader: &Api,
    query: &[(&str, &str)],
    keep: impl Fn(&Value) -> bool,
    what: &str,
) -> Result<Vec<Value>> {
    let runs = until(what, || async {
        let view = reader
            .get(&["v1", "runs"], query)
            .await
            .map_err(|f| anyhow!("reading the runs: {f}"))?;
        let mut runs: Vec<Value> = view["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| keep(r))
            .cloned()
            .collect();
        if runs.is_empty() || runs.iter().any(|r| r["state"] != "finished") {
            return Ok(None);
        }
        // Oldest first, as they were queued; ties by suite, so the story reads the same.
        runs.sort_by(|a, b| {
            (text(&a["queued_at"]), text(&a["suite"]))
                .cmp(&(text(&b["queued_at"]), text(&b["suite"])))
        });
        Ok(Some(Value::Array(runs)))
    })
    .await?;
    Ok(runs.as_array().cloned().unwrap_or_default())
}

/// The open finding of the regression's test.
async fn opened_finding(reader: &Api) -> Result<Value> {
    until(&format!("a finding of {TEST}"), || async {
        let view = reader
            .get(&["v1", "findings"], &[("suite", SUITE)])
            .await
            .map_err(|f| anyhow!("reading the findings: {f}"))?;
        Ok(view["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["test"] == TEST && f["state"] == "open")
            .cloned())
    })
    .await
}

/// The proposal once `done` says so.
async fn settled(reader: &Api, id: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
    until(
        &format!("proposal {id} to weigh its runs' evidence"),
        || async {
            let proposal = reader
                .proposal(id)
                .await
                .map_err(|f| anyhow!("reading proposal {id}: {f}"))?;
            Ok(done(&proposal).then_some(proposal))
        },
    )
    .await
}

async fn finding_in_state(reader: &Api, id: &str, state: &str) -> Result<Value> {
    until(&format!("finding {id} to be {state}"), || async {
        let finding = reader
            .get(&["v1", "findings", id], &[])
            .await
            .map_err(|f| anyhow!("reading finding {id}: {f}"))?;
        if finding["state"] == "reopened" && state != "reopened" {
            bail!("finding {id} was reopened: the post-merge run did not show the fix held");
        }
        Ok((finding["state"] == state).then_some(finding))
    })
    .await
}

fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

fn run_line(run: &Value) -> String {
    let tests = &run["tests"];
    let counts = if tests.is_object() {
        format!(
            "{} passed, {} failed",
            tests["passed"].as_u64().unwrap_or(0),
            tests["failed"].as_u64().unwrap_or(0)
        )
    } else {
        "no test counts".to_owned()
    };
    format!(
        "run {} {} {} on {} at {} ({counts}, {} ms)",
        text(&run["id"]),
        text(&run["suite"]),
        text(&run["outcome"]),
        text(&run["runner"]),
        short(text(&run["commit"])),
        run["duration_ms"].as_u64().unwrap_or(0),
    )
}

/// The people whose approval of the current head counts.
fn approvers(proposal: &Value) -> Vec<&str> {
    proposal["approvals"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["verdict"] == "approve" && a["lapsed"] != true)
        .filter_map(|a| a["approver"].as_str())
        .collect()
}

impl ClosedLoop {
    /// The loop as a story, one step a line or two, for people.
    pub fn text(&self, dir: &Path, verifier_key: &Path) -> String {
        let mut out = String::new();
        let finding = text(&self.finding["id"]);
        let fix = text(&self.fix["id"]);
        let _ = writeln!(
            out,
            "\nThe closed loop, on the same server: runners, a scheduled regression, a finding, \
             the fix, verified.\n"
        );
        let runners: Vec<String> = self
            .runners
            .iter()
            .map(|(principal, suite)| format!("{principal} ({suite})"))
            .collect();
        let _ = writeln!(
            out,
            "runners    {} serve {REPOSITORY}: they lease work over HTTP, run each suite in a \
             checkout of their own clone, and sign what it reports",
            runners.join(" and ")
        );
        if let [regression, fleet] = &self.landed[..] {
            let _ = writeln!(
                out,
                "{BRANCH:<10} {} {:?} ({}) landed while nothing ran its test",
                short(regression.id.as_str()),
                regression.title,
                regression.author
            );
            let _ = writeln!(
                out,
                "           {} {:?} ({}) turned the fleet on",
                short(fleet.id.as_str()),
                fleet.title,
                fleet.author
            );
        }
        let schedule = &self.schedule;
        let _ = writeln!(
            out,
            "schedule   {} ({} {}) fired for its due time {} at {BRANCH} {}: {} runs queued; next due {}",
            text(&schedule["name"]),
            text(&schedule["cron"]),
            text(&schedule["timezone"]),
            text(&schedule["last_fired"]["due_at"]),
            short(text(&schedule["last_fired"]["commit"])),
            schedule["last_fired"]["runs"],
            text(&schedule["next_due_at"]),
        );
        for run in &self.scheduled_runs {
            let _ = writeln!(out, "           {}", run_line(run));
        }
        let opened = &self.opened;
        let _ = writeln!(
            out,
            "finding    {} opened: {} {} {} in {} on {} (owners: {})",
            text(&opened["id"]),
            text(&opened["severity"]),
            text(&opened["kind"]),
            text(&opened["test"]),
            text(&opened["suite"]),
            text(&opened["component"]),
            opened["owners"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        );
        let _ = writeln!(
            out,
            "           evidence: run {}, envelope {}; reproduce: {}",
            text(&opened["evidence"]["run"]),
            text(&opened["evidence"]["envelope"]),
            text(&opened["evidence"]["command"])
        );
        let opened_fix = &self.fix_opened;
        let _ = writeln!(
            out,
            "fix        {fix} {:?} by {} on {FIX_BRANCH}, fixes {}",
            text(&opened_fix["title"]),
            text(&opened_fix["author"]),
            text(&opened["id"]),
        );
        let _ = writeln!(
            out,
            "           tier {} ({} approvals): {}",
            text(&opened_fix["tier"]),
            opened_fix["approvals_required"],
            self.fix_why
        );
        for run in &self.fix_runs {
            let _ = writeln!(out, "           {}", run_line(run));
        }
        for status in self.fix_plan["fixes"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "           {}'s reproducing test {} at the head",
                text(&status["finding"]),
                text(&status["status"])
            );
        }
        if let Some(refused) = &self.agent_refused {
            let _ = writeln!(
                out,
                "approvals  {}'s own approval refused: {refused}",
                text(&self.fix["author"]),
            );
        }
        let _ = writeln!(
            out,
            "{}{} ({} of {} required, distinct people, none an author)",
            if self.agent_refused.is_some() {
                "           "
            } else {
                "approvals  "
            },
            approvers(&self.fix).join(", "),
            self.fix["approvals_counted"],
            self.fix["approvals_required"],
        );
        let _ = writeln!(
            out,
            "merged     {BRANCH} fast-forwarded to {}; {ADMIN} recorded {fix} {}, which queued {} on {BRANCH}",
            short(text(&self.merged["head"])),
            text(&self.merged["state"]),
            text(&self.finding["suite"]),
        );
        for run in &self.verifying_runs {
            let _ = writeln!(out, "           {}", run_line(run));
        }
        let _ = writeln!(
            out,
            "verified   {finding} {} by the post-merge run at {} (after {} observation(s), fixed by {})",
            text(&self.finding["state"]),
            short(text(&self.finding["verification"]["commit"])),
            self.bundle_observations,
            self.finding["fixes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        );
        let _ = writeln!(
            out,
            "bundle     {}: checked offline, {finding} verified as of log index {}",
            self.bundle
                .strip_prefix(dir)
                .unwrap_or(&self.bundle)
                .display(),
            self.bundle_as_of
        );
        let _ = writeln!(
            out,
            "           countersign bundle verify {} --log-key {}",
            self.bundle.display(),
            verifier_key.display()
        );
        let _ = writeln!(
            out,
            "           countersign findings show {finding}   # with a token below, against the server"
        );
        out
    }

    pub fn json(&self) -> Value {
        json!({
            "runners": self.runners.iter().map(|(principal, suite)| json!({
                "principal": principal, "suites": [suite],
            })).collect::<Vec<_>>(),
            "landed": self.landed.iter().map(|c| json!({
                "title": c.title, "author": c.author, "commit": c.id.as_str(),
            })).collect::<Vec<_>>(),
            "schedule": self.schedule,
            "scheduled_runs": self.scheduled_runs,
            "finding_opened": self.opened,
            "fix": {
                "opened": self.fix_opened,
                "why": self.fix_why,
                "runs": self.fix_runs,
                "plan": self.fix_plan,
                "authorized": self.fix,
                "approved_by": approvers(&self.fix),
                "agent_approval_refused": self.agent_refused,
                "merged": self.merged,
            },
            "verifying_runs": self.verifying_runs,
            "finding": self.finding,
            "bundle": {
                "path": self.bundle.display().to_string(),
                "state": "verified",
                "as_of": self.bundle_as_of,
                "observations": self.bundle_observations,
            },
        })
    }
}
