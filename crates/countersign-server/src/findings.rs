//! Findings: what the fleet's runs on protected branches found failing, and the closed loop
//! around them. `POST /v1/runs/{id}/evidence` (the runner holding a branch run pushes its
//! signed envelopes), `GET /v1/findings`, `GET /v1/findings/{id}`.
//!
//! A branch run (scheduled, or after a merge) has no proposal to weigh its evidence, so its
//! envelopes come here: verified with the same code as a proposal's (countersign-decide's
//! `verify_for_change`) against the `[[runners]]` and `[repository] name` of the run's own
//! commit (a protected branch's tip: protected history, as a base is), bound to exactly that
//! commit, and of the run's suite. From an accepted envelope the server derives:
//!
//! * each failed test case of a test-result, and each reachable vulnerability of a scan
//!   (reachability as `assess` computes it from the commit's graph), as an observation: it
//!   opens a finding (`finding_opened`) or counts on the live one of the same identity
//!   (kind, suite, test or vulnerability id, component; `finding_observed`);
//! * for a post-merge run (cause `merge:p-…`), the verdict on each live finding that
//!   proposal fixes, of the run's suite and the envelope's kind: the reproducing test passed
//!   (or the vulnerability is no longer reported) → `finding_verified`; it failed or did not
//!   run → `finding_reopened`, and its owners are notified (`finding_reopened` webhooks).
//!
//! Failures of a proposal's own pre-merge runs never come here: they are that proposal's
//! evidence and block it (`evidence`). All of it is written in one transaction with the
//! envelope's blob and its `evidence_accepted` event (subject: the run). A refused envelope
//! is logged as a proposal's is (`evidence_refused` about the run, with the reasons; once
//! per envelope, at most `MAX_REFUSED_PER_HEAD` per run) and answered 422.

use std::collections::BTreeSet;
use std::path::Path as FsPath;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use countersign_audit::EventKind;
use countersign_decide::DecideError;
use countersign_evidence::Predicate;
use countersign_evidence::assess::{AssessInput, assess};
use countersign_lifecycle::{FindingKind, FindingState, Severity};
use countersign_policy::Principal;
use countersign_repo::{CommitId, Repo};
use countersign_store::{Finding, FindingFilter, Observation, Observed, Run, RunFor, RunState, Tx};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, Problem};
use crate::evidence::EVIDENCE_BODY_LIMIT;
use crate::proposals::persist::event;

/// The component a finding is placed on when its graph places it nowhere.
pub const UNMAPPED: &str = "unmapped";

/// The most findings one page lists.
const MAX_PAGE: u32 = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit))
        .layer(DefaultBodyLimit::max(EVIDENCE_BODY_LIMIT))
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(bundle))
}

// ---- From an envelope to failures (blocking: git, graph) ----

/// One failure an accepted envelope reports.
#[derive(Debug, Clone)]
struct Failure {
    kind: FindingKind,
    /// Test id or vulnerability id.
    test: String,
    component: String,
    criticality: Option<Severity>,
    owners: Vec<String>,
    message: String,
}

/// What an accepted envelope of a branch run says.
struct Derived {
    /// The `countersign.toml` of the run's commit, as read: the runner keys and capsule
    /// signers the envelope was verified against, stored with the finding's events so the
    /// finding's bundle verifies the envelope again offline.
    config: Vec<u8>,
    runner: String,
    key_id: String,
    suite: String,
    predicate_type: String,
    summary: String,
    kind: Option<FindingKind>,
    failures: Vec<Failure>,
    /// Test ids that passed (flaky ones included: they passed on a retry).
    passed: BTreeSet<String>,
    /// Every vulnerability id the scan reports, reachable or not: what settles a fix.
    reported: BTreeSet<String>,
}

enum Weighed {
    Accepted(Box<Derived>),
    Refused(Vec<(String, String)>),
}

fn criticality(node: &countersign_graph::Node) -> Option<Severity> {
    node.criticality.as_str().parse().ok()
}

/// The component a failed test of `suite` belongs to: the most critical node that names the
/// suite (then by name), with its owner; `None` when no node names it.
fn suite_component(
    graph: &countersign_graph::SystemGraph,
    suite: &str,
) -> Option<(String, Option<Severity>, Vec<String>)> {
    graph
        .nodes()
        .iter()
        .filter(|n| n.suites.iter().any(|s| s == suite))
        .max_by(|a, b| {
            (criticality(a), std::cmp::Reverse(b.entity.to_string()))
                .cmp(&(criticality(b), std::cmp::Reverse(a.entity.to_string())))
        })
        .map(|n| {
            (
                n.entity.to_string(),
                criticality(n),
                n.owner.iter().map(ToString::to_string).collect(),
            )
        })
}

/// Verifies `envelope` for run `run` against the governed state of the run's commit and
/// derives what it reports. `vex` are the VEX envelopes accepted for the same run before
/// it: a scan's reachable vulnerability they say does not affect its component opens no
/// finding, as it blocks no proposal when a proposal's head evidence says so. Blocking.
fn derive(
    path: &FsPath,
    run: &Run,
    digest: &str,
    envelope: &[u8],
    vex: &[countersign_decide::evidence::EvidenceInput],
) -> Result<Weighed, DecideError> {
    let repo = Repo::open_shared(path)?;
    let commit = CommitId::from_hex(&run.commit)?;
    let tree = repo.commit_tree(&commit)?;
    let state = countersign_decide::governed::load(&tree)?;
    // The same bytes the state's config was parsed from (a commit is immutable).
    let config = countersign_graph::FileSource::read(
        &tree,
        countersign_repo::CONFIG_FILE,
        countersign_graph::Limits::default().file_bytes,
    )?
    .unwrap_or_default();
    let graph = state.graph();
    let name = format!("sha256:{digest}");
    let files = vec![(name, Ok(envelope.to_vec()))];
    let verified = countersign_decide::evidence::verify_for_change(
        &files,
        &state.config,
        graph,
        commit.as_str(),
        commit.as_str(),
    )?;
    if !verified.refused.is_empty() {
        return Ok(Weighed::Refused(
            verified
                .refused
                .iter()
                .map(|r| (r.reason.clone(), r.message.clone()))
                .collect(),
        ));
    }
    let Some(accepted) = verified.accepted.into_iter().next() else {
        return Err(DecideError::internal(
            "an envelope neither accepted nor refused",
        ));
    };
    let evidence = accepted.evidence;
    if evidence.suite != run.suite {
        return Ok(Weighed::Refused(vec![(
            "other_suite".to_owned(),
            format!(
                "the envelope attests suite {:?}; run {} is of suite {:?}",
                evidence.suite, run.id, run.suite
            ),
        )]));
    }
    let command = reproduce(run);
    let mut derived = Derived {
        config,
        runner: evidence.runner.clone(),
        key_id: evidence.key_id.clone(),
        suite: evidence.suite.clone(),
        predicate_type: evidence.predicate.predicate_type().to_owned(),
        summary: countersign_decide::evidence::summary(&evidence.predicate),
        kind: None,
        failures: Vec::new(),
        passed: BTreeSet::new(),
        reported: BTreeSet::new(),
    };
    match &evidence.predicate {
        Predicate::TestResult(result) => {
            derived.kind = Some(FindingKind::TestFailure);
            let (component, crit, owners) = suite_component(graph, &run.suite)
                .unwrap_or_else(|| (UNMAPPED.to_owned(), None, Vec::new()));
            derived.passed = result
                .passed_tests
                .iter()
                .chain(&result.warned_tests)
                .cloned()
                .collect();
            for test in &result.failed_tests {
                // What the report said, when the runner carried it (the tested code's own
                // words: quoted, never interpreted).
                let said = result
                    .failure_messages
                    .get(test)
                    .map(|m| format!(": {m:?}"))
                    .unwrap_or_default();
                derived.failures.push(Failure {
                    kind: FindingKind::TestFailure,
                    test: test.clone(),
                    component: component.clone(),
                    criticality: crit,
                    owners: owners.clone(),
                    message: format!(
                        "test {test} failed in suite {} at {} ({}){said}; reproduce with: {command}",
                        run.suite, run.commit, derived.summary
                    ),
                });
            }
        }
        Predicate::Vulns(scan) => {
            derived.kind = Some(FindingKind::Vulnerability);
            let plan = countersign_evidence::ValidationPlan::default();
            let reachable = |head: &[countersign_evidence::AcceptedEvidence]| {
                assess(&AssessInput {
                    graph,
                    plan: &plan,
                    head,
                    base: &[],
                    base_commit: None,
                })
                .vulnerabilities
                .into_iter()
                .filter(|v| v.reachability.is_reachable())
                .collect::<Vec<_>>()
            };
            // What settles a fix is the scan alone: a fix is verified only once the scan no
            // longer reports the vulnerability at all, never because it reads as unreachable
            // or by a statement that it does not matter. That is what the finding's bundle
            // can show offline (the scan, without the graph that judged reachability), and
            // `bundle verify` checks the same.
            derived
                .reported
                .extend(scan.scanner.result.iter().map(|r| r.id.clone()));
            // What opens findings is the scan weighed with the run's VEX, as a proposal's
            // head evidence is weighed together (re-verified: same commit, same config).
            let mut head = vec![evidence.clone()];
            if !vex.is_empty() {
                let verified = countersign_decide::evidence::verify_for_change(
                    vex,
                    &state.config,
                    graph,
                    commit.as_str(),
                    commit.as_str(),
                )?;
                head.extend(
                    verified
                        .accepted
                        .into_iter()
                        .map(|a| a.evidence)
                        .filter(|e| matches!(e.predicate, Predicate::OpenVex(_))),
                );
            }
            for v in reachable(&head) {
                let node = v
                    .node
                    .as_ref()
                    .and_then(|e| graph.find(e))
                    .and_then(|id| graph.node(id));
                let component = v
                    .node
                    .as_ref()
                    .map_or_else(|| UNMAPPED.to_owned(), ToString::to_string);
                derived.failures.push(Failure {
                    kind: FindingKind::Vulnerability,
                    test: v.id.clone(),
                    criticality: node.and_then(criticality),
                    owners: node
                        .map(|n| n.owner.iter().map(ToString::to_string).collect())
                        .unwrap_or_default(),
                    message: format!(
                        "{} ({}) is {} in {component}{} at {}; reproduce with: {command}",
                        v.id,
                        v.severity.as_deref().unwrap_or("no severity given"),
                        v.reachability.as_str(),
                        v.location
                            .as_deref()
                            .map(|l| format!(" at {l}"))
                            .unwrap_or_default(),
                        run.commit
                    ),
                    component,
                });
            }
        }
        // VEX only ever keeps a scan of the same run from opening findings (a scan pushed
        // after it); alone it reports none.
        Predicate::OpenVex(_) => {}
    }
    Ok(Weighed::Accepted(Box::new(derived)))
}

/// The command that reproduces a run's failures: its suite's command at its commit.
fn reproduce(run: &Run) -> String {
    let definition: Value = serde_json::from_str(&run.definition).unwrap_or(Value::Null);
    let argv: Vec<String> = definition["command"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(shell_word))
                .collect()
        })
        .unwrap_or_default();
    let workdir = definition["workdir"].as_str().unwrap_or(".");
    format!(
        "git checkout {} && cd {} && {}",
        run.commit,
        shell_word(workdir),
        argv.join(" ")
    )
}

/// A word as a POSIX shell reads it back: quoted unless it is plainly safe.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

// ---- POST /v1/runs/{id}/evidence ----

/// What happened to one finding.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FindingChange {
    pub finding: String,
    /// `opened`, `observed`, `verified` or `reopened`.
    pub change: String,
}

/// An envelope accepted for a branch run.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunEvidenceAccepted {
    pub accepted: bool,
    pub digest: String,
    pub run: String,
    pub runner: String,
    pub suite: String,
    pub predicate_type: String,
    /// False when this envelope was accepted for this run already: nothing new recorded.
    pub recorded: bool,
    /// What it did to findings.
    pub findings: Vec<FindingChange>,
}

/// Submit one signed evidence envelope for a branch run (scheduled, or after a merge) this
/// runner holds. Failed tests and reachable vulnerabilities open or count on findings; a
/// post-merge run settles the findings its proposal fixes.
#[utoipa::path(
    post, path = "/v1/runs/{id}/evidence",
    params(("id" = String, Path, description = "Run id")),
    request_body(content = String, content_type = "application/json", description = "One DSSE envelope, at most 1 MiB"),
    responses(
        (status = 201, body = RunEvidenceAccepted),
        (status = 200, body = RunEvidenceAccepted, description = "Accepted for this run already"),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "A proposal's run, or not held by this runner"),
        (status = 413, body = Problem),
        (status = 422, body = Problem, description = "Refused (logged): the detail lists each reason"),
        (status = 429, body = Problem, description = "The run has the most envelopes one run may push, or MAX_REFUSED_PER_HEAD refusals logged")
    ),
    security(("bearer" = []))
)]
async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Runner], "submit evidence")?;
    if !matches!(caller.principal, Principal::Runner(_)) || caller.role != Role::Runner {
        return Err(ApiError::Forbidden(format!(
            "{} is not a runner with a runner token: only the runner holding a run pushes its evidence",
            caller.principal
        )));
    }
    let envelope = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!(
                "the evidence envelope is over the limit of {EVIDENCE_BODY_LIMIT} bytes"
            ))
        } else {
            ApiError::Invalid(rejection.body_text())
        }
    })?;
    if envelope.is_empty() {
        return Err(ApiError::Invalid(
            "the body is empty: send one DSSE envelope as `countersign attest` writes it".into(),
        ));
    }
    let actor = caller.principal.to_string();
    let run = state
        .store
        .run(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no run {id}")))?;
    let branch = match &run.target {
        RunFor::Proposal(p) => {
            return Err(ApiError::Conflict(format!(
                "run {id} validates proposal {p}: push its evidence to /v1/proposals/{p}/evidence"
            )));
        }
        RunFor::Branch(b) => b.clone(),
    };
    let digest = countersign_audit::bundle::digest(&envelope);
    if let Some(again) = already(&state, &run, &digest).await? {
        return Ok((StatusCode::OK, Json(again)).into_response());
    }
    held(&run, &actor)?;
    let path = state.repos.get(&run.repo).cloned().ok_or_else(|| {
        ApiError::Conflict(format!(
            "repository {:?} of this run is no longer configured on this server",
            run.repo
        ))
    })?;
    let vex = run_vex(&state, &run).await?;
    let weighed = {
        let (run, digest, bytes) = (run.clone(), digest.clone(), envelope.to_vec());
        state
            .pipeline
            .blocking_for(&path.clone(), move || {
                derive(&path, &run, &digest, &bytes, &vex)
            })
            .await?
    };
    let weighed = match weighed {
        Ok(Weighed::Accepted(_))
            if let Some(lapsed) = crate::evidence::capsule_lapsed(&state, &envelope) =>
        {
            Ok(Weighed::Refused(vec![lapsed]))
        }
        other => other,
    };
    let reasons = match weighed {
        Ok(Weighed::Accepted(derived)) => Ok(derived),
        Ok(Weighed::Refused(reasons)) => Err(reasons),
        // The run's commit is protected history the server read before; what is new is the
        // envelope, so an input error here is its verification's, as for a proposal.
        Err(e) if e.is_input() => Err(vec![("unverifiable".to_owned(), e.chain())]),
        Err(e) => return Err(e.into()),
    };
    let derived = match reasons {
        Ok(derived) => derived,
        Err(reasons) => {
            // Logged like a proposal's refusal (`evidence_refused`, about the run).
            let pushed = crate::evidence::Pushed::Run {
                run: &run,
                branch: &branch,
            };
            let size = envelope.len();
            return crate::evidence::refuse(&state, pushed, &actor, &digest, size, reasons).await;
        }
    };
    let now = state.clock.rfc3339();
    let now_ms = crate::runs::millis(state.clock.now());
    let mut tx = state.store.begin().await?;
    // Checked again under the transaction: the lease may have moved meanwhile.
    let current = tx
        .run(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no run {id}")))?;
    held(&current, &actor)?;
    tx.put_blob(&envelope).await?;
    let config = tx.put_blob(&derived.config).await?;
    tx.append_event(&event(
        EventKind::EvidenceAccepted,
        &now,
        &id,
        &actor,
        json!({
            "envelope": digest,
            "run": id,
            "branch": branch,
            "commit": run.commit,
            "runner": derived.runner,
            "key_id": derived.key_id,
            "suite": derived.suite,
            "predicate_type": derived.predicate_type,
            "summary": derived.summary,
        }),
    )?)
    .await?;
    let mut changes = Vec::new();
    if let Some(proposal) = run.cause.as_deref().and_then(|c| c.strip_prefix("merge:")) {
        settle(
            &state,
            &mut tx,
            &run,
            proposal,
            &derived,
            (&digest, &config),
            &now,
            now_ms,
            &mut changes,
        )
        .await?;
    }
    for failure in &derived.failures {
        let evidence = json!({
            "run": id,
            "commit": run.commit,
            "branch": branch,
            "cause": run.cause,
            "envelope": digest,
            "config": config,
            "runner": derived.runner,
            "test": failure.test,
            "message": failure.message,
            "command": reproduce(&run),
        });
        let seen = Observation {
            repo: run.repo.clone(),
            repository: run.repository.clone(),
            kind: failure.kind,
            suite: run.suite.clone(),
            test: failure.test.clone(),
            component: failure.component.clone(),
            severity: countersign_lifecycle::severity(failure.criticality, failure.kind),
            branch: branch.clone(),
            commit: run.commit.clone(),
            evidence: evidence.clone(),
            owners: failure.owners.clone(),
            now_ms,
        };
        let (kind, finding, change) = match tx.observe_finding(&seen).await? {
            Observed::Opened(f) => (EventKind::FindingOpened, f, "opened"),
            Observed::Again(f) => (EventKind::FindingObserved, f, "observed"),
        };
        tx.append_event(&event(
            kind,
            &now,
            &finding.id,
            countersign_decide::record::SYSTEM_ACTOR,
            json!({
                "kind": finding.kind.as_str(),
                "suite": finding.suite,
                "test": finding.test,
                "component": finding.component,
                "severity": finding.severity.as_str(),
                "owners": finding.owners,
                "repository": finding.repository,
                "observations": finding.observations,
                "evidence": evidence,
            }),
        )?)
        .await?;
        changes.push(FindingChange {
            finding: finding.id,
            change: change.to_owned(),
        });
    }
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(RunEvidenceAccepted {
            accepted: true,
            digest,
            run: id,
            runner: derived.runner,
            suite: derived.suite,
            predicate_type: derived.predicate_type,
            recorded: true,
            findings: changes,
        }),
    )
        .into_response())
}

/// The VEX envelopes accepted for `run` so far, named by digest as verification names files.
async fn run_vex(
    state: &AppState,
    run: &Run,
) -> Result<Vec<countersign_decide::evidence::EvidenceInput>, ApiError> {
    let mut vex = Vec::new();
    for entry in state.store.entries_about(&run.id).await? {
        let e = entry
            .event()
            .map_err(|e| ApiError::Internal(format!("log entry {}: {e}", entry.index)))?;
        if e.kind != EventKind::EvidenceAccepted
            || e.data["predicate_type"] != countersign_evidence::statement::OPENVEX_V020
        {
            continue;
        }
        let digest = e.data["envelope"].as_str().unwrap_or_default();
        let bytes = state.store.blob(digest).await?.ok_or_else(|| {
            ApiError::Internal(format!(
                "run {}: accepted envelope {digest} has no blob",
                run.id
            ))
        })?;
        vex.push((format!("sha256:{digest}"), Ok(bytes)));
    }
    Ok(vex)
}

/// Refuses a caller that does not hold `run`'s current lease.
fn held(run: &Run, actor: &str) -> Result<(), ApiError> {
    if run.state != RunState::Running || run.runner.as_deref() != Some(actor) {
        return Err(ApiError::Conflict(format!(
            "run {} is not running under a lease of {actor}: only the runner holding a run pushes its evidence",
            run.id
        )));
    }
    Ok(())
}

/// The answer to an envelope accepted for `run` already, if it was; `429` when the run has
/// [`crate::runs::MAX_ENVELOPES`] envelopes accepted already (one per report kind, with room):
/// a runner key, or whoever stole it, must not grow the log and the findings without bound.
async fn already(
    state: &AppState,
    run: &Run,
    digest: &str,
) -> Result<Option<RunEvidenceAccepted>, ApiError> {
    let mut accepted = 0;
    for entry in state.store.entries_about(&run.id).await? {
        let e = entry
            .event()
            .map_err(|e| ApiError::Internal(format!("log entry {}: {e}", entry.index)))?;
        if e.kind == EventKind::EvidenceAccepted {
            accepted += 1;
        }
        if e.kind == EventKind::EvidenceAccepted && e.data["envelope"] == digest {
            let text = |k: &str| e.data[k].as_str().unwrap_or_default().to_owned();
            return Ok(Some(RunEvidenceAccepted {
                accepted: true,
                digest: digest.to_owned(),
                run: run.id.clone(),
                runner: text("runner"),
                suite: text("suite"),
                predicate_type: text("predicate_type"),
                recorded: false,
                findings: Vec::new(),
            }));
        }
    }
    if accepted >= crate::runs::MAX_ENVELOPES {
        return Err(ApiError::TooMany(format!(
            "run {} has {accepted} envelopes accepted already, the most one run may push",
            run.id
        )));
    }
    Ok(None)
}

/// Settles the live findings `proposal` fixes that this post-merge run's envelope speaks
/// to (its suite, its kind): verified when the reproducing test passed (or the
/// vulnerability is no longer reported reachable), reopened otherwise, with the owners
/// notified.
#[allow(clippy::too_many_arguments)]
async fn settle(
    state: &AppState,
    tx: &mut Tx,
    run: &Run,
    proposal: &str,
    derived: &Derived,
    (digest, config): (&str, &str),
    now: &str,
    now_ms: i64,
    changes: &mut Vec<FindingChange>,
) -> Result<(), ApiError> {
    let Some(kind) = derived.kind else {
        return Ok(());
    };
    for finding in tx.fixed_by(proposal).await? {
        if finding.suite != run.suite || finding.kind != kind || finding.repo != run.repo {
            continue;
        }
        let (passed, why) = match kind {
            FindingKind::TestFailure if derived.passed.contains(&finding.test) => {
                (true, "the reproducing test passed")
            }
            FindingKind::TestFailure if derived.failures.iter().any(|f| f.test == finding.test) => {
                (false, "the reproducing test failed")
            }
            // Fail closed: a fix that removed or renamed the test proves nothing.
            FindingKind::TestFailure => (false, "the reproducing test did not run"),
            FindingKind::Vulnerability if derived.reported.contains(&finding.test) => {
                (false, "the vulnerability is still reported")
            }
            FindingKind::Vulnerability => (true, "the vulnerability is no longer reported"),
        };
        let Some(next) = finding.state.after_fix(passed) else {
            continue;
        };
        let verification = json!({
            "proposal": proposal,
            "run": run.id,
            "commit": run.commit,
            "envelope": digest,
            "config": config,
            "runner": derived.runner,
            "passed": passed,
            "reason": why,
            "summary": derived.summary,
        });
        tx.settle_finding(&finding.id, next, &verification, now_ms)
            .await?;
        let kind = if next == FindingState::Verified {
            EventKind::FindingVerified
        } else {
            EventKind::FindingReopened
        };
        tx.append_event(&event(
            kind,
            now,
            &finding.id,
            countersign_decide::record::SYSTEM_ACTOR,
            json!({ "state": next.as_str(), "verification": verification }),
        )?)
        .await?;
        if next == FindingState::Reopened {
            let settled = Finding {
                state: next,
                verification: Some(verification.clone()),
                ..finding.clone()
            };
            crate::webhooks::notify_finding(
                state,
                tx,
                &finding.id,
                &finding.owners,
                serde_json::to_value(FindingView::from(&settled))
                    .map_err(|e| ApiError::Internal(e.to_string()))?,
            )
            .await?;
        }
        changes.push(FindingChange {
            finding: finding.id.clone(),
            change: next.as_str().to_owned(),
        });
    }
    Ok(())
}

// ---- Reading findings ----

/// A finding.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FindingView {
    /// `F-<number>`.
    pub id: String,
    pub repo: String,
    pub repository: String,
    /// `test_failure` or `vulnerability`.
    pub kind: String,
    pub suite: String,
    /// The failed test's id, or the vulnerability's id.
    pub test: String,
    /// The component (entity ref) it is on, or `unmapped`.
    pub component: String,
    /// From the component's criticality and the kind (docs/fleet.md, "Severity").
    pub severity: String,
    /// `open`, `verified` or `reopened`.
    pub state: String,
    pub branch: String,
    /// The first and last commits it was seen failing at.
    pub first_seen: String,
    pub last_seen: String,
    pub observations: u64,
    /// The latest failing evidence: run, envelope digest, test, message and the command that
    /// reproduces it.
    #[schema(value_type = Object)]
    pub evidence: Value,
    pub owners: Vec<String>,
    /// The latest fix's post-merge verdict, once there is one.
    #[schema(value_type = Option<Object>)]
    pub verification: Option<Value>,
    /// Proposals that say they fix it.
    pub fixes: Vec<String>,
    pub opened_at: String,
    pub updated_at: String,
}

impl From<&Finding> for FindingView {
    fn from(f: &Finding) -> FindingView {
        FindingView {
            id: f.id.clone(),
            repo: f.repo.clone(),
            repository: f.repository.clone(),
            kind: f.kind.as_str().to_owned(),
            suite: f.suite.clone(),
            test: f.test.clone(),
            component: f.component.clone(),
            severity: f.severity.as_str().to_owned(),
            state: f.state.as_str().to_owned(),
            branch: f.branch.clone(),
            first_seen: f.first_seen.clone(),
            last_seen: f.last_seen.clone(),
            observations: f.observations,
            evidence: f.evidence.clone(),
            owners: f.owners.clone(),
            verification: f.verification.clone(),
            fixes: f.fixes.clone(),
            opened_at: crate::runs::rfc3339_ms(f.opened_at_ms),
            updated_at: crate::runs::rfc3339_ms(f.updated_at_ms),
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FindingsQuery {
    /// `open`, `verified` or `reopened`.
    pub state: Option<String>,
    pub suite: Option<String>,
    /// The server's name of a repository.
    pub repo: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only findings older than this one (the previous page's `next_before`).
    pub before: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FindingsView {
    pub findings: Vec<FindingView>,
    /// Pass as `before` for the next, older page; absent on the last page.
    pub next_before: Option<String>,
}

/// The number of a finding id `F-<n>`.
pub(crate) fn number(id: &str) -> Option<u64> {
    id.strip_prefix("F-")?
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
}

/// Findings, newest first (every role but runner).
#[utoipa::path(
    get, path = "/v1/findings", params(FindingsQuery),
    responses(
        (status = 200, body = FindingsView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<FindingsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<FindingsView>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::Invalid(format!(
            "limit: {limit} is not between 1 and {MAX_PAGE}"
        )));
    }
    let finding_state = query
        .state
        .as_deref()
        .map(str::parse::<FindingState>)
        .transpose()
        .map_err(|e| ApiError::Invalid(format!("state: {e}")))?;
    let before = query
        .before
        .as_deref()
        .map(|b| {
            number(b).ok_or_else(|| {
                ApiError::Invalid(format!("before: {b:?} is not a finding id (F-<number>)"))
            })
        })
        .transpose()?;
    let findings = state
        .store
        .findings(&FindingFilter {
            state: finding_state,
            suite: query.suite,
            repo: query.repo,
            before,
            limit,
        })
        .await?;
    let next_before = (findings.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| findings.last().map(|f| f.id.clone()))
        .flatten();
    Ok(Json(FindingsView {
        findings: findings.iter().map(FindingView::from).collect(),
        next_before,
    }))
}

/// One finding.
#[utoipa::path(
    get, path = "/v1/findings/{id}",
    params(("id" = String, Path, description = "Finding id, F-<number>")),
    responses((status = 200, body = FindingView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<FindingView>, ApiError> {
    let finding = state
        .store
        .finding(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no finding {id}")))?;
    Ok(Json(FindingView::from(&finding)))
}

// ---- Fixes (proposals that say they fix findings) ----

/// The most findings one proposal may say it fixes.
pub const MAX_FIXES: usize = 64;

/// The findings `fixes` names, each live and of repository `repo`, or a 422 naming the first
/// that is not (unknown, verified already, malformed or of another repository).
pub(crate) async fn to_fix(
    state: &AppState,
    repo: &str,
    fixes: &[String],
) -> Result<Vec<Finding>, ApiError> {
    if fixes.len() > MAX_FIXES {
        return Err(ApiError::Invalid(format!(
            "fixes: at most {MAX_FIXES} findings"
        )));
    }
    let mut out: Vec<Finding> = Vec::with_capacity(fixes.len());
    for id in fixes {
        if number(id).is_none() {
            return Err(ApiError::Invalid(format!(
                "fixes: {id:?} is not a finding id (F-<number>)"
            )));
        }
        let finding = state
            .store
            .finding(id)
            .await?
            .ok_or_else(|| ApiError::Invalid(format!("fixes: there is no finding {id}")))?;
        if !finding.state.is_live() {
            return Err(ApiError::Invalid(format!(
                "fixes: finding {id} is {} already: nothing left to fix",
                finding.state
            )));
        }
        if finding.repo != repo {
            return Err(ApiError::Invalid(format!(
                "fixes: finding {id} is about repository {}, not {repo}",
                finding.repo
            )));
        }
        if !out.iter().any(|f| f.id == finding.id) {
            out.push(finding);
        }
    }
    Ok(out)
}

/// The suites that reproduced `findings`, once each, in order.
pub(crate) fn suites_of(findings: &[Finding]) -> Vec<String> {
    let mut suites: Vec<String> = Vec::new();
    for finding in findings {
        if !suites.contains(&finding.suite) {
            suites.push(finding.suite.clone());
        }
    }
    suites
}

/// The suites that reproduced the findings `proposal` fixes (what its decisions require
/// besides the plan, every time they are re-derived).
pub(crate) async fn fix_suites(state: &AppState, proposal: &str) -> Result<Vec<String>, ApiError> {
    Ok(suites_of(&state.store.fixed_by(proposal).await?))
}

/// Links `proposal` (at `head`) to each of `findings` as a fix, with a `finding_linked`
/// event about each, in `tx`.
pub(crate) async fn link(
    tx: &mut Tx,
    findings: &[Finding],
    proposal: &str,
    head: &str,
    actor: &str,
    now: &str,
) -> Result<(), ApiError> {
    for finding in findings {
        if tx.link_fix(&finding.id, proposal).await? {
            tx.append_event(&event(
                EventKind::FindingLinked,
                now,
                &finding.id,
                actor,
                json!({ "proposal": proposal, "head": head, "suite": finding.suite, "test": finding.test }),
            )?)
            .await?;
        }
    }
    Ok(())
}

// ---- Verifying a merged fix ----

/// How the fixes of a merged proposal get verified, planned before the transaction that
/// records the merge (git work).
pub(crate) enum Verification {
    /// It fixes no live finding: nothing to verify.
    Nothing,
    /// Its merged commit is on no protected branch of the server's repository yet: noted,
    /// for the push that lands it.
    Waiting { commit: String },
    /// The reproducing suites' work on `branch` at `commit`.
    Ready {
        commit: String,
        branch: String,
        work: Vec<crate::pipeline::WorkSpec>,
    },
}

/// Plans the verification of merged `proposal`'s fixes at `commit`, the commit that landed
/// it (the merged route's head, a forge's merge commit): the reproducing suites of the live
/// findings it fixes, run on the protected branch that holds `commit`, as defined there.
pub(crate) async fn plan_verification(
    state: &AppState,
    proposal: &countersign_store::Proposal,
    commit: &str,
) -> Result<Verification, ApiError> {
    let fixed: Vec<Finding> = state
        .store
        .fixed_by(&proposal.id)
        .await?
        .into_iter()
        .filter(|f| f.state.is_live())
        .collect();
    if fixed.is_empty() {
        return Ok(Verification::Nothing);
    }
    let path = state.repos.get(&proposal.repo).cloned().ok_or_else(|| {
        ApiError::Conflict(format!(
            "repository {:?} is no longer configured on this server",
            proposal.repo
        ))
    })?;
    let suites = suites_of(&fixed);
    let (pipeline, at) = (std::sync::Arc::clone(&state.pipeline), commit.to_owned());
    let planned = state
        .pipeline
        .blocking_for(&path.clone(), move || {
            pipeline.post_merge(&path, &at, &suites)
        })
        .await??;
    Ok(match planned {
        Some((branch, work)) => Verification::Ready {
            commit: commit.to_owned(),
            branch,
            work,
        },
        None => Verification::Waiting {
            commit: commit.to_owned(),
        },
    })
}

/// Queues, in `tx` (the transaction that records the merge, or the push that landed it),
/// the runs `planned` for merged `proposal` (cause `merge:<id>`), unless they were queued
/// before: every announcement of one merge (the merged route, a forge's merged pull request,
/// the push, each redelivered, in any order) queues them once between them. A plan that
/// waits is noted for the push that lands its commit. Returns how many runs it queued.
pub(crate) async fn queue_verification(
    state: &AppState,
    tx: &mut Tx,
    proposal: &countersign_store::Proposal,
    planned: &Verification,
) -> Result<usize, ApiError> {
    match planned {
        Verification::Nothing => Ok(0),
        Verification::Waiting { commit } => {
            tx.await_verification(&proposal.id, &proposal.repo, commit)
                .await?;
            Ok(0)
        }
        Verification::Ready {
            commit,
            branch,
            work,
        } => {
            tx.await_verification(&proposal.id, &proposal.repo, commit)
                .await?;
            let now = crate::runs::millis(state.clock.now());
            if !tx.take_verification(&proposal.id, now).await? {
                return Ok(0);
            }
            let runs = crate::runs::queued_for_branch(
                state,
                &proposal.repo,
                branch,
                commit,
                work,
                &format!("merge:{}", proposal.id),
            );
            tx.enqueue_runs(&runs).await?;
            Ok(runs.len())
        }
    }
}

/// Whether a linked finding's reproducing test passes at a proposal's head, from the head's
/// accepted evidence of its suite: `passes`, `fails`, `not_run` (evidence of the suite that
/// does not name the test) or `awaiting` (none yet).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FixStatus {
    pub finding: String,
    pub suite: String,
    pub test: String,
    pub kind: String,
    pub status: String,
    /// The envelope that says so.
    pub envelope: Option<String>,
}

/// [`FixStatus`] of each finding `proposal` fixes, from `evidence` (its head's accepted
/// envelopes, row and bytes).
pub(crate) async fn fix_statuses(
    state: &AppState,
    proposal: &str,
    evidence: &[(countersign_store::AcceptedEvidence, Vec<u8>)],
) -> Result<Vec<FixStatus>, ApiError> {
    let mut out = Vec::new();
    for finding in state.store.fixed_by(proposal).await? {
        let mut status = ("awaiting", None);
        for (row, bytes) in evidence
            .iter()
            .filter(|(row, _)| row.suite == finding.suite && row.binding == "head")
        {
            let Some(predicate) = predicate_of(bytes) else {
                continue;
            };
            let verdict = match (&predicate, finding.kind) {
                (Predicate::TestResult(r), FindingKind::TestFailure) => {
                    if r.failed_tests.contains(&finding.test) {
                        "fails"
                    } else if r.passed_tests.contains(&finding.test)
                        || r.warned_tests.contains(&finding.test)
                    {
                        "passes"
                    } else {
                        "not_run"
                    }
                }
                (Predicate::Vulns(v), FindingKind::Vulnerability) => {
                    if v.scanner.result.iter().any(|r| r.id == finding.test) {
                        "fails"
                    } else {
                        "passes"
                    }
                }
                _ => continue,
            };
            // A failure anywhere outweighs a pass elsewhere.
            if status.0 != "fails" {
                status = (verdict, Some(row.digest.clone()));
            }
        }
        out.push(FixStatus {
            finding: finding.id.clone(),
            suite: finding.suite.clone(),
            test: finding.test.clone(),
            kind: finding.kind.as_str().to_owned(),
            status: status.0.to_owned(),
            envelope: status.1,
        });
    }
    Ok(out)
}

/// The predicate of an envelope the server accepted already (so verified then).
fn predicate_of(envelope: &[u8]) -> Option<Predicate> {
    let envelope = countersign_evidence::dsse::Envelope::parse(envelope).ok()?;
    let statement: Value = serde_json::from_slice(&envelope.payload).ok()?;
    let predicate_type = statement["predicateType"].as_str()?.to_owned();
    Predicate::parse(&predicate_type, statement["predicate"].clone()).ok()
}

/// The finding's bundle (format `https://countersign.dev/finding-bundle/v1`): the whole
/// loop in one file, which `countersign bundle verify FILE --log-key KEY` checks offline.
#[utoipa::path(
    get, path = "/v1/findings/{id}/bundle",
    params(("id" = String, Path, description = "Finding id, F-<number>")),
    responses(
        (status = 200, content_type = "application/json", body = Object, description = "The finding's entries with proofs and envelopes, and each linked proposal's bundle"),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn bundle(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let finding = state
        .store
        .finding(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no finding {id}")))?;
    let export = |subject: String| {
        let state = state.clone();
        async move {
            match state
                .store
                .export_bundle(&subject, state.log_signer.as_deref())
                .await
            {
                Ok(bundle) => Ok(bundle),
                Err(countersign_store::Error::NoCheckpoint { index }) => {
                    Err(ApiError::Unavailable(format!(
                        "no signed checkpoint covers entry {index} of {subject} and the server has no log key to sign one"
                    )))
                }
                Err(error) => Err(ApiError::from(error)),
            }
        }
    };
    // The linked proposals first, the finding last: a checkpoint signed for a later part
    // covers the earlier ones too, and each part names the checkpoint it was proved under.
    let mut fixes = Vec::with_capacity(finding.fixes.len());
    for proposal in &finding.fixes {
        fixes.push(export(proposal.clone()).await?);
    }
    let own = export(finding.id.clone()).await?;
    let bundle = countersign_audit::FindingBundle {
        format: countersign_audit::FINDING_BUNDLE_FORMAT.to_owned(),
        id: finding.id,
        finding: own,
        fixes,
    };
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bundle.to_json(),
    )
        .into_response())
}
