//! The server's use of `countersign_decide`: a proposed change between two commits of a
//! configured repository decided by the same pipeline as `countersign evaluate`, and
//! recorded in the same audit format, so `countersign bundle verify` re-derives a server
//! decision exactly like a CLI one.
//!
//! What the server adds is kept here: its own proposal id as the record's subject, and
//! the fields its approval rules read (eligible approvers, shortfall, validation plan) as
//! annotations of the `decided` event, which re-derivation ignores. With the server's log
//! key, an automated decision carries the signed verification summary `evaluate --record`
//! issues (docs/server.md). Evidence envelopes the server accepted are weighed like
//! `evaluate --evidence` files ([`decide_with_evidence`]); the suites a proposal waits for
//! are the planned ones a runner trusted at the base may attest (`required_suites`, recorded
//! with `missing_suites` as annotations). The governed state of a base is loaded once and
//! cached in the server's [`Pipeline`]: the record is the same as without it.
//!
//! Errors are [`DecideError`]s, whose kind says whether the proposer's input or the server
//! is at fault; `ApiError`'s `From` answers each accordingly.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use countersign_audit::Signer;
use countersign_decide::DecideError;
use countersign_decide::cache::GovernedCache;
use countersign_decide::evaluate::{self, Evaluation, Proposer};
use countersign_decide::evidence::EvidenceInput;
use countersign_decide::protected;
use countersign_decide::record::{self, Record};
use countersign_decide::report::EvidenceReport;
use countersign_evidence::SuiteStatus;
use countersign_policy::{Principal, Tier};
use countersign_repo::{CONFIG_FILE, CommitId, Config, Repo};
use serde_json::{Map, Value, json};

/// What the decisions of one server share: the governed states and catalog directories of
/// recent bases, and the cores decisions run on. [`crate::AppState`] owns one; two servers
/// in one process (tests) share nothing.
#[derive(Debug)]
pub struct Pipeline {
    /// The governed states of recent bases. Keyed by repository and base commit id
    /// (immutable objects), so never stale. Most proposals are against a few bases (the tips
    /// of protected branches), so a few dozen entries hold them.
    governed: GovernedCache,
    /// Commit authors' principals by base (see `change`).
    directories: crate::change::Directories,
    /// The names of each repository's protected branches, by the tips of its root branches
    /// (`main`, `master`), which are all the names depend on: read from a config at those
    /// tips, immutable objects, so an entry is never stale; a moved root is a new key.
    protected: std::sync::Mutex<ProtectedNames>,
    /// Decisions computed at once, at most: one per core. They are CPU work (git, Cedar);
    /// more threads than cores only slice the CPU finer, and starve the threads that hold
    /// the log's write order (the database connection, the committing task) of the CPU they
    /// need to hand their turn on, which is what every other writer waits for.
    deciding: Arc<tokio::sync::Semaphore>,
    /// Each repository's share of those cores: all but one when the server has several
    /// repositories, so one (a hostile or merely huge one) can never hold every core while
    /// another's proposals wait; all of them when it has one, which has nobody to wait.
    shares: std::sync::Mutex<std::collections::HashMap<PathBuf, Arc<tokio::sync::Semaphore>>>,
    share: usize,
    /// How long a request waits for its decision work before it is answered `503`; the
    /// work goes on (its result fills the caches, so asking again is fast).
    budget: Duration,
}

/// Protected branch names by repository and root tips (see `Pipeline::protected`).
type ProtectedNames =
    std::collections::HashMap<(PathBuf, Vec<(&'static str, CommitId)>), BTreeSet<String>>;

/// How many (repository, root tips) entries the protected names cache keeps before it
/// starts again: a root moves with each merge, so old keys stop being asked.
const PROTECTED_NAMES_KEPT: usize = 256;

/// How long a request waits for its decision by default.
pub const DECISION_BUDGET: Duration = Duration::from_secs(60);

impl Default for Pipeline {
    /// One decision per core of this machine.
    fn default() -> Pipeline {
        Pipeline::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }
}

impl Pipeline {
    /// At most `concurrency` decisions at once (at least one).
    pub fn new(concurrency: usize) -> Pipeline {
        let concurrency = concurrency.max(1);
        Pipeline {
            governed: GovernedCache::new(64),
            directories: crate::change::Directories::default(),
            protected: std::sync::Mutex::default(),
            deciding: Arc::new(tokio::sync::Semaphore::new(concurrency)),
            shares: std::sync::Mutex::default(),
            share: if concurrency > 1 { concurrency - 1 } else { 1 },
            budget: DECISION_BUDGET,
        }
    }

    /// The same, for a server of `repositories` repositories: with one, it may use every
    /// core; with several, each gets all but one (see `share`).
    pub fn for_repositories(mut self, repositories: usize) -> Pipeline {
        let concurrency = self.deciding.available_permits();
        self.share = if repositories > 1 && concurrency > 1 {
            concurrency - 1
        } else {
            concurrency
        };
        self
    }

    /// The same, answering `503` to a request whose decision takes longer than `budget`.
    pub fn with_budget(mut self, budget: Duration) -> Pipeline {
        self.budget = budget;
        self
    }

    /// The semaphore of `repo`'s share of the cores.
    fn share_of(&self, repo: &Path) -> Arc<tokio::sync::Semaphore> {
        let mut shares = self.shares.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            shares
                .entry(repo.to_owned())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.share))),
        )
    }

    /// [`Pipeline::blocking`] for work on the repository at `repo`: it waits for a core
    /// within that repository's share first, so a repository whose decisions are slow
    /// delays its own proposals, not the others'. The request waits at most the budget, then
    /// is answered `503` while the work finishes; a request dropped before its work started
    /// (a client gone) never starts it.
    pub async fn blocking_for<T: Send + 'static>(
        &self,
        repo: &Path,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, crate::error::ApiError> {
        let share = self.share_of(repo);
        let work = async {
            // Never closed, so acquiring cannot fail; without a permit the work still runs.
            let share = share.acquire_owned().await.ok();
            let core = Arc::clone(&self.deciding).acquire_owned().await.ok();
            tokio::task::spawn_blocking(move || {
                let _permits = (share, core);
                f()
            })
            .await
            .map_err(|e| crate::error::ApiError::Internal(format!("pipeline task: {e}")))
        };
        match tokio::time::timeout(self.budget, work).await {
            Ok(result) => result,
            Err(_) => Err(crate::error::ApiError::Unavailable(format!(
                "the decision took longer than {} s; it goes on, and the same request asked again \
                 later is answered from what it computed",
                self.budget.as_secs()
            ))),
        }
    }

    /// Whether the catalog at `base` of the repository at `path` gives `principal` the profile
    /// email `email` (see [`crate::change::Directories::declares`]). Blocking (git).
    pub fn declares(
        &self,
        path: &Path,
        base: &str,
        email: &str,
        principal: &Principal,
    ) -> Result<bool, DecideError> {
        self.directories.declares(path, base, email, principal)
    }

    /// Refuses a base outside the history of the repository's protected branches
    /// ([`countersign_decide::protected::check_base`]); `Ok` names the branch holding it.
    /// Blocking (git).
    pub fn check_base(&self, path: &Path, base: &str) -> Result<String, DecideError> {
        let repo = Repo::open_shared(path)?;
        let base = CommitId::from_hex(base)?;
        let branches = self.protected(path, &repo)?;
        protected::check_base_in(&repo, &branches, &base)
    }

    /// The protected branches of the repository at `path` (opened as `repo`), each with its
    /// tip as it is now; their names are cached by the tips of the root branches. Blocking
    /// (git).
    pub fn protected(&self, path: &Path, repo: &Repo) -> Result<protected::Protected, DecideError> {
        let roots = protected::root_tips(repo)?;
        let key = (path.to_owned(), roots.clone());
        let cached = self
            .protected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        let names = match cached {
            Some(names) => names,
            None => {
                // Read outside the lock: a slow config read blocks no other repository.
                let names = protected::names_at(repo, &roots)?;
                let mut cache = self
                    .protected
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if cache.len() >= PROTECTED_NAMES_KEPT {
                    cache.clear();
                }
                cache.insert(key, names.clone());
                names
            }
        };
        // The tips of the named branches are read again each time: any of them may move.
        protected::resolve(repo, names)
    }

    /// The governed state (config, graph, policy) of `commit` of the repository at `path`,
    /// from the cache decisions use. Blocking (git, and parsing on a miss).
    pub fn governed(
        &self,
        path: &Path,
        repo: &Repo,
        commit: &CommitId,
    ) -> Result<Arc<countersign_decide::cache::Loaded>, DecideError> {
        evaluate::governed_at(repo, path, commit, Some(&self.governed))
    }

    /// Whether moving protected branch `branch` of the repository at `path` from `old`
    /// (`None`: created) to `new` (`None`: deleted) is authorized by one of `candidates`
    /// ([`countersign_decide::protected::check_update`]). Blocking (git).
    pub fn check_update(
        &self,
        path: &Path,
        branch: &str,
        old: Option<&str>,
        new: Option<&str>,
        candidates: &[protected::Candidate],
    ) -> Result<protected::UpdateCheck, DecideError> {
        let repo = Repo::open_shared(path)?;
        let old = old.map(CommitId::from_hex).transpose()?;
        let new = new.map(CommitId::from_hex).transpose()?;
        protected::check_update(&repo, branch, old.as_ref(), new.as_ref(), candidates)
    }

    /// Runs blocking decision work `f` off the async workers, at most one per core at a
    /// time. A task that panicked is an internal error.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, crate::error::ApiError> {
        // The semaphore is never closed, so acquiring cannot fail; without a permit the work
        // still runs. The permit goes with the work, so a caller that gives up (a client
        // gone) does not free a core that is still busy.
        let permit = Arc::clone(&self.deciding).acquire_owned().await.ok();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        .map_err(|e| crate::error::ApiError::Internal(format!("pipeline task: {e}")))
    }

    /// Decides the change `base..head` of the repository at `path` proposed by `author`.
    /// Blocking (git and Cedar): run it off the async workers ([`Pipeline::blocking`]).
    pub fn decide(
        &self,
        path: &Path,
        base: &str,
        head: &str,
        author: &Principal,
        dispatched_by: Option<&str>,
    ) -> Result<Outcome, DecideError> {
        self.decide_with_evidence(path, base, head, author, dispatched_by, &[])
    }

    /// [`Pipeline::decide`], weighing evidence `envelopes` (name, bytes) as `evaluate
    /// --evidence` weighs files; the outcome's [`Outcome::evidence`] says which were accepted
    /// and which refused. With none, no evidence is considered.
    pub fn decide_with_evidence(
        &self,
        path: &Path,
        base: &str,
        head: &str,
        author: &Principal,
        dispatched_by: Option<&str>,
        envelopes: &[(String, Vec<u8>)],
    ) -> Result<Outcome, DecideError> {
        let proposer = Proposer {
            author: author.to_string(),
            declared_tier: None,
            dispatched_by: dispatched_by.map(str::to_owned),
        };
        let envelopes: Vec<EvidenceInput> = envelopes
            .iter()
            .map(|(name, bytes)| (name.clone(), Ok(bytes.clone())))
            .collect();
        let evaluation = evaluate::evaluate_cached_with_evidence(
            path,
            base,
            head,
            &proposer,
            &envelopes,
            &self.governed,
        )?;
        let (required_suites, missing_suites, fleet) = required_and_missing(&evaluation)?;
        let (Some(base), Some(head)) = (
            evaluation.report.change.base.clone(),
            evaluation.report.change.head.clone(),
        ) else {
            return Err(DecideError::internal(
                "the evaluation names no base and head commits",
            ));
        };
        let change = crate::change::ChangeFacts::read(&self.directories, path, &base, &head)?;
        Ok(Outcome {
            change,
            base,
            head,
            tier: evaluation.decision.tier,
            required_suites,
            missing_suites,
            fleet,
            evaluation,
            dispatched_by: proposer.dispatched_by.clone(),
            proposer,
            fix_suites: Vec::new(),
        })
    }
}

impl Pipeline {
    /// The whole evaluation of the change `base..head` by `author` with the accepted
    /// `envelopes`, as [`Pipeline::decide_with_evidence`] decides it (without reading the
    /// change's authorship): its report and decision, which say why each tier was taken or
    /// ruled out. Blocking, like a decision.
    pub fn explain(
        &self,
        path: &Path,
        base: &str,
        head: &str,
        author: &Principal,
        dispatched_by: Option<&str>,
        envelopes: &[(String, Vec<u8>)],
    ) -> Result<Evaluation, DecideError> {
        let proposer = Proposer {
            author: author.to_string(),
            declared_tier: None,
            dispatched_by: dispatched_by.map(str::to_owned),
        };
        let envelopes: Vec<EvidenceInput> = envelopes
            .iter()
            .map(|(name, bytes)| (name.clone(), Ok(bytes.clone())))
            .collect();
        evaluate::evaluate_cached_with_evidence(
            path,
            base,
            head,
            &proposer,
            &envelopes,
            &self.governed,
        )
    }

    /// What would lower the tier of the change `base..head` by `author`, weighing the
    /// accepted `envelopes` as [`Pipeline::decide_with_evidence`] does: the search of
    /// `countersign evaluate --what-if` under `budget`. Blocking, like a decision.
    #[allow(clippy::too_many_arguments)] // a decision's inputs, as `decide_with_evidence` takes them, and the budget
    pub fn what_if(
        &self,
        path: &Path,
        base: &str,
        head: &str,
        author: &Principal,
        dispatched_by: Option<&str>,
        envelopes: &[(String, Vec<u8>)],
        budget: &countersign_decide::what_if::Budget,
    ) -> Result<countersign_decide::report::WhatIfReport, DecideError> {
        let proposer = Proposer {
            author: author.to_string(),
            declared_tier: None,
            dispatched_by: dispatched_by.map(str::to_owned),
        };
        let envelopes: Vec<EvidenceInput> = envelopes
            .iter()
            .map(|(name, bytes)| (name.clone(), Ok(bytes.clone())))
            .collect();
        let evaluation = evaluate::what_if_cached(
            path,
            base,
            head,
            &proposer,
            &envelopes,
            &self.governed,
            budget,
        )?;
        evaluation
            .report
            .what_if
            .ok_or_else(|| DecideError::internal("the evaluation ran no what-if search"))
    }
}

/// A decided change, before it is recorded under a proposal id.
pub struct Outcome {
    pub base: String,
    pub head: String,
    pub tier: Tier,
    /// Planned suites some runner the base trusts may attest: what the proposal waits for.
    pub required_suites: Vec<String>,
    /// Required suites no accepted head evidence covers yet (passed or failed).
    pub missing_suites: Vec<String>,
    /// What the fleet can run of the plan (the base's `[suites]`).
    pub fleet: Fleet,
    evaluation: Evaluation,
    proposer: Proposer,
    /// The change's authors and diff identity (the proposal lifecycle's rules).
    pub change: crate::change::ChangeFacts,
    /// The human who dispatched the proposing agent, recorded with the decision.
    pub dispatched_by: Option<String>,
    /// Suites required because the change fixes findings they reproduced
    /// ([`Outcome::require_suites`]).
    pub fix_suites: Vec<String>,
}

/// What the fleet can run of a plan, from the base's `countersign.toml`.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    /// Planned suites with a `[suites]` entry, whether or not a runner may attest them.
    /// `None` when the base defines no suite at all (then nothing is runnable, and the
    /// record carries no annotation, as before suites existed).
    pub runnable: Option<Vec<String>>,
    /// The work items to queue for the head: one per required suite with a `[suites]` entry
    /// and environment.
    pub work: Vec<WorkSpec>,
}

/// One work item a plan asks of the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkSpec {
    pub suite: String,
    pub environment: String,
    /// The base's `[repository] name`, which the run's evidence must carry.
    pub repository: String,
    /// The suite's definition at the base, as the runner receives it (`runs::Definition`).
    pub definition: Value,
    /// The `[[runners]]` at the base that may attest the suite: they may lease it.
    pub runners: Vec<String>,
    /// The `[[capsules.signers]]` at the base that delegate the suite in this environment
    /// (public keys, hex): a runner proving a capsule one of them signed, covering the suite
    /// and environment, may lease it too (`runs::lease`).
    pub capsule_signers: Vec<String>,
    /// For a suite the head self-validates, the second item: the base's suite files
    /// restored over the head, attested with the base as its suite source. `None` for the
    /// suite as the head defines it.
    pub base_version: Option<countersign_store::BaseVersion>,
}

/// The planned suites a runner trusted at the base may attest, and those of them no accepted
/// head evidence covers. A planned suite no trusted runner may attest is not waited for: no
/// evidence of it can ever be accepted (it still counts against coverage once evidence is
/// weighed, so the policy sees it). Also what of the plan the fleet can run: a required
/// suite with a `[suites]` entry, in each of its environments. A planned suite without one
/// stays planned (evidence attested by hand counts) but is never queued.
fn required_and_missing(
    evaluation: &Evaluation,
) -> Result<(Vec<String>, Vec<String>, Fleet), DecideError> {
    let config = match evaluation.inputs.get(CONFIG_FILE) {
        Some(Some(bytes)) => {
            let text = std::str::from_utf8(bytes).map_err(|e| DecideError::Invalid {
                message: format!("{CONFIG_FILE} is not valid UTF-8"),
                source: Some(Box::new(e)),
            })?;
            Config::parse(text)?
        }
        _ => Config::default(),
    };
    // A suite a capsule signer may delegate is attestable too: the base trusts its capsules'
    // runners for it, so a proposal waits for that evidence as for a runner's.
    let attestable: BTreeSet<&str> = config
        .runners
        .iter()
        .flat_map(|r| r.suites.iter().map(String::as_str))
        .chain(
            config
                .capsule_signers
                .iter()
                .flat_map(|s| s.suites.iter().map(String::as_str)),
        )
        .collect();
    let covered: BTreeSet<&str> = evaluation
        .report
        .evidence
        .iter()
        .flat_map(|e| &e.suites)
        // A suite that ran is covered (a failed one is judged, not awaited); one whose
        // test-results executed nothing is still awaited.
        .filter(|s| {
            s.status == SuiteStatus::Passed.as_str() || s.status == SuiteStatus::Failed.as_str()
        })
        .map(|s| s.suite.as_str())
        .collect();
    let required: Vec<String> = evaluation
        .report
        .validation_plan
        .suites
        .iter()
        .map(|s| s.suite.clone())
        .filter(|s| attestable.contains(s.as_str()))
        .collect();
    let missing = required
        .iter()
        .filter(|s| !covered.contains(s.as_str()))
        .cloned()
        .collect();
    let fleet = fleet(&config, evaluation, &required);
    Ok((required, missing, fleet))
}

fn fleet(config: &Config, evaluation: &Evaluation, required: &[String]) -> Fleet {
    if config.suites.is_empty() {
        return Fleet::default();
    }
    let runnable: Vec<String> = evaluation
        .report
        .validation_plan
        .suites
        .iter()
        .filter(|s| config.suites.contains_key(&s.suite))
        .map(|s| s.suite.clone())
        .collect();
    let mut work = Vec::new();
    // Runners exist only with a repository name (config validation), so without one there
    // is nothing any runner could lease.
    if let Some(repository) = &config.repository.name {
        for suite in required {
            let Some(definition) = config.suites.get(suite) else {
                continue;
            };
            let runners: Vec<String> = config
                .runners
                .iter()
                .filter(|r| r.suites.contains(suite))
                .map(|r| r.name.clone())
                .collect();
            // A suite whose defining files the head edits runs twice: as the head has it,
            // and as the base had it against the head's code (what `base_suite_passed`
            // needs before a self-validated suite may earn automation).
            let base_version = evaluation
                .report
                .validation_plan
                .suites
                .iter()
                .find(|s| &s.suite == suite && !s.self_validated_by.is_empty())
                .zip(evaluation.report.change.base.as_ref())
                .map(|(planned, base)| countersign_store::BaseVersion {
                    source: base.clone(),
                    files: planned.self_validated_by.clone(),
                });
            for environment in &definition.environments {
                for base_version in std::iter::once(None).chain(base_version.clone().map(Some)) {
                    work.push(WorkSpec {
                        suite: suite.clone(),
                        environment: environment.clone(),
                        repository: repository.clone(),
                        definition: definition_json(definition),
                        runners: runners.clone(),
                        capsule_signers: capsule_signers(config, suite, environment),
                        base_version,
                    });
                }
            }
        }
    }
    Fleet {
        runnable: Some(runnable),
        work,
    }
}

/// The work items of `suites` at a protected branch's tip whose config is `config`: one per
/// suite with a `[suites]` entry that some runner there may attest, in `environment` or else
/// each of the suite's environments. Nothing without a `[repository] name` (no runner could
/// vouch for the commit). The branch's own tip is protected history: its config plays the
/// part a base plays for a proposal.
pub fn branch_work(config: &Config, suites: &[String], environment: Option<&str>) -> Vec<WorkSpec> {
    let Some(repository) = &config.repository.name else {
        return Vec::new();
    };
    let mut work = Vec::new();
    for suite in suites {
        let Some(definition) = config.suites.get(suite) else {
            continue;
        };
        let runners: Vec<String> = config
            .runners
            .iter()
            .filter(|r| r.suites.contains(suite))
            .map(|r| r.name.clone())
            .collect();
        let environments: Vec<&str> = match environment {
            Some(env) => vec![env],
            None => definition.environments.iter().map(String::as_str).collect(),
        };
        for environment in environments {
            work.push(WorkSpec {
                suite: suite.clone(),
                environment: environment.to_owned(),
                repository: repository.clone(),
                definition: definition_json(definition),
                runners: runners.clone(),
                capsule_signers: capsule_signers(config, suite, environment),
                base_version: None,
            });
        }
    }
    work
}

/// The public keys of the `[[capsules.signers]]` of `config` that delegate `suite` in
/// `environment`: whose capsules may lease its work item.
fn capsule_signers(config: &Config, suite: &str, environment: &str) -> Vec<String> {
    config
        .capsule_signers
        .iter()
        .filter(|s| s.suites.contains(suite) && s.environments.contains(environment))
        .map(|s| s.public_key.clone())
        .collect()
}

impl WorkSpec {
    /// Whether anyone could lease it: a `[[runners]]` entry, or a capsule of a signer that
    /// delegates it.
    pub fn leasable(&self) -> bool {
        !self.runners.is_empty() || !self.capsule_signers.is_empty()
    }
}

/// One `[schedules.NAME]` in force: read at the tip of the protected branch it names.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub schedule: countersign_repo::ScheduleConfig,
    /// The branch's tip now: what a due time queues.
    pub tip: String,
    /// What a due time queues at the tip.
    pub work: Vec<WorkSpec>,
}

impl Pipeline {
    /// The schedules in force in the repository at `path`: each protected branch's own tip's
    /// `[schedules]` that name that branch (a schedule naming another branch is that
    /// branch's to declare). A branch whose config does not load is skipped with a warning:
    /// nothing is scheduled from rules that cannot be read. Blocking (git).
    pub fn schedules(&self, path: &Path) -> Result<Vec<Scheduled>, DecideError> {
        let repo = Repo::open_shared(path)?;
        let protected = protected::protected_branches(&repo)?;
        let mut out = Vec::new();
        for branch in &protected.branches {
            let Some(tip) = &branch.tip else { continue };
            let config = repo
                .commit_tree(tip)
                .map_err(DecideError::from)
                .and_then(|tree| countersign_decide::governed::read_config(&tree));
            let config = match config {
                Ok(config) => config,
                Err(error) => {
                    tracing::warn!(branch = %branch.name, %tip, error = %error.chain(), "schedules of this branch not read");
                    continue;
                }
            };
            for schedule in config.schedules.values() {
                if schedule.branch != branch.name {
                    continue;
                }
                out.push(Scheduled {
                    work: branch_work(&config, &schedule.suites, schedule.environment.as_deref()),
                    schedule: schedule.clone(),
                    tip: tip.as_str().to_owned(),
                });
            }
        }
        Ok(out)
    }
}

impl Pipeline {
    /// Where and what a merged fix's reproducing `suites` run: the first protected branch
    /// (by name) whose history holds `commit`, and the work items of `suites` at `commit`
    /// (now protected history: its config defines the suites and who may run them). `None`
    /// when no protected branch holds the commit (yet), or the repository does not have it
    /// (yet: a forge's merge announced before the push that lands it). Blocking (git).
    pub fn post_merge(
        &self,
        path: &Path,
        commit: &str,
        suites: &[String],
    ) -> Result<Option<(String, Vec<WorkSpec>)>, DecideError> {
        let repo = Repo::open_shared(path)?;
        let id = CommitId::from_hex(commit)?;
        if repo.commit_info(&id).is_err() {
            return Ok(None);
        }
        let protected = protected::protected_branches(&repo)?;
        let Some(branch) = protected.holding(&repo, &id)? else {
            return Ok(None);
        };
        let config = countersign_decide::governed::read_config(&repo.commit_tree(&id)?)?;
        Ok(Some((
            branch.to_owned(),
            branch_work(&config, suites, None),
        )))
    }
}

/// A suite's definition as runners receive it in a lease.
fn definition_json(suite: &countersign_repo::SuiteConfig) -> Value {
    json!({
        "command": suite.command,
        "workdir": suite.workdir,
        "timeout_seconds": suite.timeout.as_secs(),
        "reports": {
            "junit": suite.reports.junit,
            "sarif": suite.reports.sarif,
            "vex": suite.reports.vex,
        },
    })
}

impl Outcome {
    /// Requires `suites` of this change besides its plan: the suites that reproduced the
    /// findings it says it fixes (`fixes`). Each one a runner trusted at the base may attest
    /// becomes required (the proposal waits for its evidence, like a planned one), missing
    /// while no accepted head evidence covers it, and queued for the fleet when the base
    /// defines it. The decision itself is the pipeline's, untouched: only what the proposal
    /// waits for grows. Recorded as the `fix_suites` annotation.
    pub fn require_suites(&mut self, suites: &[String]) -> Result<(), DecideError> {
        if suites.is_empty() {
            return Ok(());
        }
        let config = match self.evaluation.inputs.get(CONFIG_FILE) {
            Some(Some(bytes)) => Config::parse(&String::from_utf8_lossy(bytes))?,
            _ => Config::default(),
        };
        let covered: BTreeSet<&str> = self
            .evaluation
            .report
            .evidence
            .iter()
            .flat_map(|e| &e.suites)
            .filter(|s| {
                s.status == SuiteStatus::Passed.as_str() || s.status == SuiteStatus::Failed.as_str()
            })
            .map(|s| s.suite.as_str())
            .collect();
        for suite in suites {
            self.fix_suites.push(suite.clone());
            // As for a planned suite (`required_and_missing`): a capsule signer's delegation
            // makes it attestable too.
            let attestable = config.runners.iter().any(|r| r.suites.contains(suite))
                || config
                    .capsule_signers
                    .iter()
                    .any(|s| s.suites.contains(suite));
            if !attestable || self.required_suites.contains(suite) {
                continue;
            }
            self.required_suites.push(suite.clone());
            if !covered.contains(suite.as_str()) {
                self.missing_suites.push(suite.clone());
            }
            self.fleet
                .work
                .extend(branch_work(&config, std::slice::from_ref(suite), None));
            if let Some(runnable) = &mut self.fleet.runnable
                && config.suites.contains_key(suite)
                && !runnable.contains(suite)
            {
                runnable.push(suite.clone());
            }
        }
        Ok(())
    }

    /// The `authorship` annotation: each person the commits name and how far it is
    /// believed, who pushed the commits, and the approver pool the lifecycle will count
    /// from (the same `countersign_lifecycle::pool` the view shows), with its explanation.
    /// Read from the annotations just built, so it describes exactly what is recorded.
    fn authorship(&self, annotations: &Map<String, Value>) -> Result<Value, DecideError> {
        let strings = |name: &str| -> Vec<String> {
            annotations
                .get(name)
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let requirements = annotations
            .get("requirements")
            .cloned()
            .map(serde_json::from_value::<Vec<countersign_lifecycle::Requirement>>)
            .transpose()
            .map_err(|e| DecideError::internal(format!("the recorded requirements: {e}")))?
            .unwrap_or_default();
        let decision = &self.evaluation.decision;
        let record = countersign_lifecycle::DecidedRecord {
            tier: decision.tier,
            automated: decision.tier.is_automated(),
            approvals_required: decision.approvals.required,
            requirements,
            eligible_approvers: strings("eligible_approvers"),
            validation_plan: strings("validation_plan"),
            required_suites: self.required_suites.clone(),
            missing_suites: self.missing_suites.clone(),
            policy_version: decision.policy_version.clone(),
        };
        // The dispatcher of an agent counts as an author (agent provenance): out of the pool.
        let authors =
            countersign_lifecycle::authors(&self.change.authors, self.dispatched_by.as_deref());
        let pool = countersign_lifecycle::pool(&record, &self.proposer.author, &authors);
        let pushed_by = self.proposer.author.as_str();
        let commits: Vec<Value> = self
            .change
            .commit_objects
            .iter()
            .map(|(id, bytes)| json!({ "commit": id, "object": countersign_audit::bundle::digest(bytes) }))
            .collect();
        Ok(json!({
            "authors": self.change.authorship,
            "commits": commits,
            "pushed_by": pushed_by,
            "approvers": {
                "eligible": pool.eligible,
                "eligible_count": pool.count(),
                "excluded_as_authors": pool.excluded,
                "meetable": pool.meetable(),
                "unmet": pool.unmet.iter().map(|(subject, more)| json!({ "subject": subject, "lacks": more })).collect::<Vec<_>>(),
            },
            "explanation": countersign_decide::authorship::explain(&self.change.authorship, &pool, pushed_by),
        }))
    }

    /// The evidence weighed, when any was given: each envelope accepted (and bound to the
    /// head or the base) or refused with its reason, and the suites' status.
    pub fn evidence(&self) -> Option<&EvidenceReport> {
        self.evaluation.report.evidence.as_ref()
    }

    /// The audit record of this decision as proposal `subject`, and the `decided` event's
    /// data (what the server stores as the decision record). With the server's `log_key`, an
    /// automated decision carries its signed verification summary, exactly as `evaluate
    /// --record` records it. The record and the summary name the repository by the base's
    /// `[repository] name`; without one, by `configured`, the name the server's operator
    /// gave it (`serve --repo NAME=PATH`): never a local path.
    pub fn record(
        &self,
        subject: &str,
        configured: &str,
        now: &str,
        log_key: Option<&Signer>,
    ) -> Result<(Record, Value), DecideError> {
        let repository =
            record::repository_name(&self.evaluation)?.unwrap_or_else(|| configured.to_owned());
        let repository = repository.as_str();
        let decision = &self.evaluation.decision;
        let mut annotations = Map::new();
        // Each part of the change its own owners must approve (countersign-lifecycle's tally
        // counts an approval towards a requirement only from its own eligible people).
        let (eligible, requirements) = countersign_decide::authorship::recorded_approvers(decision);
        annotations.insert("eligible_approvers".to_owned(), json!(eligible));
        annotations.insert("requirements".to_owned(), json!(requirements));
        annotations.insert("shortfall".to_owned(), json!(decision.approvals.shortfall));
        annotations.insert("commit_authors".to_owned(), json!(self.change.authors));
        annotations.insert("authorship".to_owned(), self.authorship(&annotations)?);
        annotations.insert(
            "validation_plan".to_owned(),
            json!(
                self.evaluation
                    .report
                    .validation_plan
                    .suites
                    .iter()
                    .map(|s| s.suite.clone())
                    .collect::<Vec<_>>()
            ),
        );
        annotations.insert("required_suites".to_owned(), json!(self.required_suites));
        if !self.fix_suites.is_empty() {
            // The suites that reproduced the findings this change fixes: required even
            // where the plan would not reach them.
            annotations.insert("fix_suites".to_owned(), json!(self.fix_suites));
            let mut plan: Vec<String> = self
                .evaluation
                .report
                .validation_plan
                .suites
                .iter()
                .map(|s| s.suite.clone())
                .collect();
            for suite in &self.fix_suites {
                if !plan.contains(suite) {
                    plan.push(suite.clone());
                }
            }
            annotations.insert("validation_plan".to_owned(), json!(plan));
        }
        annotations.insert("missing_suites".to_owned(), json!(self.missing_suites));
        // Only when the base defines suites, so records of repositories without a fleet are
        // what they were.
        if let Some(runnable) = &self.fleet.runnable {
            annotations.insert("runnable_suites".to_owned(), json!(runnable));
        }
        // Who webhook notifications concern (`webhooks`): the owners of the touched nodes
        // (groups and users, as entity refs) and the touched nodes themselves.
        let impact = &self.evaluation.report.impact;
        annotations.insert("owners".to_owned(), json!(impact.owners));
        annotations.insert(
            "touched".to_owned(),
            json!(impact.touched.iter().map(|t| &t.node).collect::<Vec<_>>()),
        );
        let mut record = record::record_as(
            subject.to_owned(),
            &self.evaluation,
            &self.proposer,
            repository,
            now,
            log_key,
            annotations,
        )?;
        // The commits' raw objects, named by `authorship.commits`: a bundle checks their
        // signatures again against the catalog among the recorded inputs.
        record.blobs.extend(
            self.change
                .commit_objects
                .iter()
                .map(|(_, bytes)| countersign_audit::bundle::Blob::new(bytes.clone())),
        );
        let decided = record
            .events
            .iter()
            .find(|e| e.kind == countersign_audit::EventKind::Decided)
            .map(|e| e.data.clone())
            .ok_or_else(|| DecideError::internal("the record has no `decided` event"))?;
        Ok((record, decided))
    }
}
