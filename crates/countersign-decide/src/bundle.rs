//! Re-deriving the decision of a verified bundle: the second half of `countersign bundle
//! verify`, after countersign-audit checked the checkpoint, proofs and blob digests.
//!
//! The recorded inputs (governed files, changed paths, proposer, evidence envelopes) go
//! through [`evaluate::rederive`], the pipeline that made the decision; every difference in
//! tier, reasons or graph/policy version from the `decided` event is listed. Each
//! authorization statement recorded must be signed by the log key and be about the commit
//! its `authorized` event names. Shared by the binary and the server's tests, so a bundle from
//! either is judged by one implementation.
//!
//! [`outcome`] re-derives what the events say happened (the head, the final state, who
//! authorized it) with countersign-lifecycle's tally, the count the server authorizes by, and
//! refuses an authorization the bundle's own verdicts do not support.

use std::collections::BTreeMap;

use countersign_audit::{Event, EventKind, VerifiedBundle, Verifier};
use countersign_evidence::dsse::{Envelope, PublicKey};
use countersign_lifecycle::{
    Approval, DecidedRecord, ProposalState, Verdict, same_principal, settle, tally,
};
use countersign_repo::{ChangeKind, ChangedPath};
use serde_json::Value;

use crate::error::{Classify, DecideError, Result, bail};
use crate::evaluate::{self, Proposer};
use crate::record;
use crate::{authorship, people};

fn last_event(bundle: &VerifiedBundle, kind: EventKind) -> Option<&Event> {
    bundle
        .events
        .iter()
        .rev()
        .map(|(_, e)| e)
        .find(|e| e.kind == kind)
}

fn field<'a>(event: &'a Event, name: &str) -> Result<&'a Value> {
    event
        .data
        .get(name)
        .ok_or_else(|| DecideError::invalid(format!("the {:?} event has no {name:?}", event.kind)))
}

/// Re-derives the decision recorded in `bundle` and lists every difference from the record
/// (empty: same tier, reasons and versions). `Err` when the bundle lacks what re-derivation
/// needs, or an authorization statement is not signed by `verifier`'s key or is about
/// another commit than its event authorized.
pub fn rederive(bundle: &VerifiedBundle, verifier: &Verifier) -> Result<Vec<String>> {
    let proposed = last_event(bundle, EventKind::Proposed)
        .ok_or_else(|| DecideError::invalid("the bundle has no `proposed` event"))?;
    let decided = last_event(bundle, EventKind::Decided)
        .ok_or_else(|| DecideError::invalid("the bundle has no `decided` event"))?;
    let blob = |d: &str| -> Result<Vec<u8>> {
        bundle
            .blobs
            .get(d)
            .cloned()
            .ok_or_else(|| DecideError::invalid(format!("blob {d} is missing from the bundle")))
    };
    let mut inputs = BTreeMap::new();
    let recorded_inputs = field(decided, "inputs")?
        .as_object()
        .ok_or_else(|| DecideError::invalid("`inputs` is not an object"))?;
    for (path, d) in recorded_inputs {
        let content = match d.as_str() {
            Some(d) => Some(blob(d)?),
            None => None,
        };
        inputs.insert(path.clone(), content);
    }
    let changes = field(proposed, "changes")?
        .as_array()
        .ok_or_else(|| DecideError::invalid("`changes` is not a list"))?
        .iter()
        .map(|c| {
            let path = c["path"].as_str().unwrap_or_default().to_string();
            let kind = match (c["status"].as_str(), c["from"].as_str()) {
                (Some("added"), _) => ChangeKind::Added,
                (Some("deleted"), _) => ChangeKind::Deleted,
                (Some("renamed"), Some(from)) => ChangeKind::Renamed {
                    from: from.to_string(),
                },
                _ => ChangeKind::Modified,
            };
            ChangedPath { path, kind }
        })
        .collect();
    let proposer = Proposer {
        author: field(proposed, "author")?
            .as_str()
            .unwrap_or_default()
            .to_string(),
        declared_tier: proposed.data["declared_tier"].as_str().map(str::to_string),
        // Recorded with the decision (agent provenance): policies may read it, so the
        // re-derivation decides with it too.
        dispatched_by: match decided.data.get("dispatched_by") {
            None => None,
            Some(Value::String(d)) => Some(d.clone()),
            Some(other) => {
                return Err(DecideError::invalid(format!(
                    "`dispatched_by` is not a principal: {other}"
                )));
            }
        },
    };
    let base = proposed.data["base"].as_str().map(str::to_string);
    let head = proposed.data["head"].as_str().map(str::to_string);
    let envelopes = match decided.data.get("evidence").and_then(Value::as_array) {
        Some(digests) => digests
            .iter()
            .map(|d| blob(d.as_str().unwrap_or_default()))
            .collect::<Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let mut differences = rederive_authorship(decided, &blob)?;
    let again = evaluate::rederive(inputs, changes, &proposer, base, head.clone(), envelopes)?;
    let report = &again.report;
    let recorded_tier = decided.data["tier"].clone();
    let derived_tier =
        serde_json::to_value(report.tier).internal(|| "encoding the re-derived tier".into())?;
    if recorded_tier != derived_tier {
        differences.push(format!(
            "tier: recorded {recorded_tier}, re-derived {derived_tier}"
        ));
    }
    for (name, derived) in [
        ("graph_version", &report.graph_version),
        ("policy_version", &report.policy_version),
    ] {
        if decided.data[name].as_str() != Some(derived.as_str()) {
            differences.push(format!(
                "{name}: recorded {}, re-derived {derived}",
                decided.data[name]
            ));
        }
    }
    let derived_reasons = record::recorded_reasons(report);
    let recorded_reasons = decided.data["reasons"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for r in &recorded_reasons {
        if !derived_reasons.contains(r) {
            differences.push(format!("reason recorded but not re-derived: {r}"));
        }
    }
    for r in &derived_reasons {
        if !recorded_reasons.contains(r) {
            differences.push(format!("reason re-derived but not recorded: {r}"));
        }
    }
    // Each authorization's statement must be the log key's and about the commit that
    // event authorized (after a head move, an earlier authorization is about an earlier
    // head). One without a statement (recorded without a log key) has nothing to check
    // beyond its inclusion in the log.
    for (_, authorized) in bundle
        .events
        .iter()
        .filter(|(_, e)| e.kind == EventKind::Authorized)
    {
        let Some(summary) = authorized.data.get("verification_summary") else {
            continue;
        };
        let d = summary
            .as_str()
            .ok_or_else(|| DecideError::invalid("`verification_summary` is not a digest"))?;
        let commit = authorized.data["commit"]
            .as_str()
            .or(head.as_deref())
            .unwrap_or_default();
        check_summary(&blob(d)?, verifier, commit)?;
    }
    Ok(differences)
}

/// The recorded `authorship` re-derived offline: the recorded commit objects (each must hash
/// to its commit id) read again, their signatures checked against the signing keys of the
/// catalog among the recorded inputs (the base's, as the decision read it), and the authors
/// compared with the record. Lists each difference; `Err` when a commit object is missing.
fn rederive_authorship(
    decided: &Event,
    blob: &dyn Fn(&str) -> Result<Vec<u8>>,
) -> Result<Vec<String>> {
    let Some(derived) = derive_authors(decided, blob)? else {
        return Ok(Vec::new());
    };
    let recorded_authors: Vec<authorship::Author> = serde_json::from_value(
        decided.data["authorship"]
            .get("authors")
            .cloned()
            .unwrap_or(Value::Null),
    )
    .invalid(|| "the decision's `authorship.authors`".into())?;
    let mut differences = Vec::new();
    if derived != recorded_authors {
        let show = |authors: &[authorship::Author]| {
            authors
                .iter()
                .map(|a| format!("{} {}", a.principal, a.status.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        differences.push(format!(
            "authorship: recorded [{}], re-derived [{}]",
            show(&recorded_authors),
            show(&derived)
        ));
    }
    Ok(differences)
}

/// The authors of the decision `decided` re-derived from what it recorded: its commit
/// objects (`authorship.commits`, each hashed to its id) read with the catalog among its
/// inputs, signatures checked again. `None` when it recorded no authorship (a record of
/// `evaluate --record`).
fn derive_authors(
    decided: &Event,
    blob: &dyn Fn(&str) -> Result<Vec<u8>>,
) -> Result<Option<Vec<authorship::Author>>> {
    let Some(recorded) = decided.data.get("authorship") else {
        return Ok(None);
    };
    let commits = recorded
        .get("commits")
        .and_then(Value::as_array)
        .ok_or_else(|| DecideError::invalid("the decision's `authorship` lists no `commits`"))?;
    let mut objects = Vec::with_capacity(commits.len());
    for commit in commits {
        let (Some(id), Some(object)) = (
            commit.get("commit").and_then(Value::as_str),
            commit.get("object").and_then(Value::as_str),
        ) else {
            bail!("an `authorship.commits` entry is not {{commit, object}}");
        };
        objects.push((id.to_owned(), blob(object)?));
    }
    let mut present: Vec<(String, Vec<u8>)> = Vec::new();
    for (path, d) in field(decided, "inputs")?
        .as_object()
        .ok_or_else(|| DecideError::invalid("`inputs` is not an object"))?
    {
        if let Some(d) = d.as_str() {
            present.push((path.clone(), blob(d)?));
        }
    }
    let source = countersign_graph::MemorySource::new(present);
    let people = people::people_in(&source, "the recorded inputs")?;
    let facts = people::commit_facts(&objects, &people)?;
    Ok(Some(authorship::authorship(&people.directory, &facts)))
}

/// The commit authors of the decision at log index `index` (lower-cased, sorted) as its
/// recorded commit objects say, never as the list it records: a record whose
/// `commit_authors` left out someone the commits name would otherwise count their approval.
/// `Err` when the recorded list disagrees with the commit objects, or lists authors without
/// the objects to check them.
fn decided_authors(bundle: &VerifiedBundle, index: u64, decided: &Event) -> Result<Vec<String>> {
    let blob = |d: &str| -> Result<Vec<u8>> {
        bundle
            .blobs
            .get(d)
            .cloned()
            .ok_or_else(|| DecideError::invalid(format!("blob {d} is missing from the bundle")))
    };
    let recorded = sorted(strings(decided.data.get("commit_authors")));
    let authors = match derive_authors(decided, &blob)? {
        Some(derived) => {
            let derived = sorted(authorship::principals(&derived));
            if derived != recorded {
                bail!(
                    "the decision at log index {index} records commit authors [{}], but its commit objects name [{}]",
                    recorded.join(", "),
                    derived.join(", ")
                );
            }
            derived
        }
        None if recorded.is_empty() => Vec::new(),
        None => bail!(
            "the decision at log index {index} records commit authors without the commit objects they come from, so they cannot be re-derived"
        ),
    };
    Ok(authors)
}

/// `list` lower-cased, sorted and unique: principals compare case-insensitively.
fn sorted(list: Vec<String>) -> Vec<String> {
    let set: std::collections::BTreeSet<String> =
        list.into_iter().map(|p| p.to_lowercase()).collect();
    set.into_iter().collect()
}

/// Checks an authorization statement: a DSSE envelope signed by the log key (`verifier`)
/// whose in-toto statement is about `commit`. Returns the statement.
pub fn check_summary(envelope: &[u8], verifier: &Verifier, commit: &str) -> Result<Value> {
    let envelope = Envelope::parse(envelope)
        .invalid(|| "the verification summary is not a DSSE envelope".into())?;
    let key = PublicKey::from_bytes(&verifier.public_key())
        .invalid(|| "the log key is not an Ed25519 key".into())?;
    let (verified, _) = envelope
        .verify(std::slice::from_ref(&key), |k| k)
        .invalid(|| "the verification summary is not signed by the log key".into())?;
    let statement: Value = serde_json::from_slice(verified.payload())
        .invalid(|| "the verification summary's statement is not JSON".into())?;
    if statement["subject"][0]["digest"]["gitCommit"].as_str() != Some(commit) {
        bail!("the verification summary is about another commit than the one authorized");
    }
    Ok(statement)
}

/// How the bundle's last authorization of its head was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// The decision's tier is automated: the system authorized it.
    Automated { tier: String },
    /// Enough eligible people approved the head, as re-counted from the bundle's verdicts.
    People {
        /// Distinct approvers whose approval counts, lower-cased, sorted.
        approvers: Vec<String>,
        required: u32,
    },
}

/// What a bundle shows happened to its proposal, re-derived from its events alone with the
/// lifecycle's own tally: the proposal, its head, the state the events settle and who
/// authorized the head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub proposal: String,
    pub head: String,
    /// `authorized`, `merged`, `closed`, `rejected`, `awaiting_approval`, ...
    pub state: String,
    /// The log index of the bundle's last entry: the state is the state as of it.
    pub as_of: u64,
    /// Who authorized the head; `None` when nothing did.
    pub authorized: Option<Authorization>,
}

fn text<'a>(event: &'a Event, name: &str) -> Result<&'a str> {
    field(event, name)?.as_str().ok_or_else(|| {
        DecideError::invalid(format!(
            "the {:?} event's {name:?} is not a string",
            event.kind
        ))
    })
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Re-derives the outcome of `bundle` (already checked complete by `verify_bundle`): walks
/// its events in log order as the server's handlers made them, and refuses an authorization
/// the bundle does not support: one for another commit than the head then decided, or by
/// people whose standing approvals on that head (counted by `countersign_lifecycle::tally`,
/// the server's one count) do not meet the decision's requirements or face a standing
/// rejection. Approvals that would authorize the head with no `authorized` event after them
/// mean the bundle was cut short: refused too.
pub fn outcome(bundle: &VerifiedBundle) -> Result<Outcome> {
    let mut head: Option<String> = None;
    let mut proposer = String::new();
    // The head the latest `decided` event was made for, and its data.
    let mut decided: Option<(String, &Value)> = None;
    let mut authors: Vec<String> = Vec::new();
    // The commit authors a head move recorded, until the decision of its new head checks
    // them: (log index, new head, authors).
    let mut moved_authors: Option<(u64, String, Vec<String>)> = None;
    let mut verdicts: Vec<Approval> = Vec::new();
    let mut authorized: Option<Authorization> = None;
    let mut closed: Option<String> = None;
    let mut as_of = 0;
    for (index, event) in &bundle.events {
        as_of = *index;
        let current = || {
            head.clone().ok_or_else(|| {
                DecideError::invalid(format!(
                    "the {:?} event at log index {index} comes before the proposal's `proposed` event",
                    event.kind
                ))
            })
        };
        match event.kind {
            EventKind::Proposed => {
                head = Some(text(event, "head")?.to_owned());
                proposer = text(event, "author")?.to_owned();
            }
            EventKind::Decided => {
                let commit_authors = decided_authors(bundle, *index, event)?;
                let head = current()?;
                // The head move before this decision named the new head's commit authors:
                // they must be the ones its commit objects name too.
                if let Some((moved_at, to, claimed)) = moved_authors.take()
                    && to == head
                    && sorted(claimed.clone()) != commit_authors
                {
                    bail!(
                        "the head move at log index {moved_at} records commit authors [{}], but the commit objects of {to} name [{}]",
                        sorted(claimed).join(", "),
                        commit_authors.join(", ")
                    );
                }
                // The dispatcher of the proposing agent is an author too, as on the server.
                authors = countersign_lifecycle::authors(
                    &commit_authors,
                    event.data.get("dispatched_by").and_then(Value::as_str),
                );
                decided = Some((head, &event.data));
            }
            EventKind::HeadMoved => {
                let (from, to) = (text(event, "from")?, text(event, "to")?);
                if current()? != from {
                    bail!(
                        "the head move at log index {index} is from {from}, but the proposal's head was {}",
                        current()?
                    );
                }
                let carried: Vec<(String, String)> = field(event, "carried_over")?
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .map(|v| {
                                (
                                    v["approver"].as_str().unwrap_or_default().to_lowercase(),
                                    v["verdict"].as_str().unwrap_or_default().to_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mut moved = Vec::new();
                for verdict in verdicts.iter_mut().filter(|v| v.stands_on(from)) {
                    verdict.lapsed_by = Some(*index);
                    let key = (
                        verdict.approver.to_lowercase(),
                        verdict.verdict.as_str().to_owned(),
                    );
                    if carried.contains(&key) {
                        moved.push(Approval {
                            head: to.to_owned(),
                            log_index: *index,
                            lapsed_by: None,
                            carried_from: Some(from.to_owned()),
                            ..verdict.clone()
                        });
                    }
                }
                verdicts.extend(moved);
                // Checked against the commit objects of the decision that follows it; no
                // tally runs between the two (the server writes them in one transaction).
                moved_authors = event
                    .data
                    .get("commit_authors")
                    .map(|list| (*index, to.to_owned(), strings(Some(list))));
                head = Some(to.to_owned());
                authorized = None;
            }
            EventKind::Approved | EventKind::Rejected => {
                let on = text(event, "head")?;
                if current()? != on {
                    bail!(
                        "the verdict at log index {index} is on {on}, but the proposal's head was {}",
                        current()?
                    );
                }
                for earlier in verdicts
                    .iter_mut()
                    .filter(|v| v.stands_on(on) && same_principal(&v.approver, &event.actor))
                {
                    earlier.lapsed_by = Some(*index);
                }
                verdicts.push(Approval {
                    proposal: bundle.subject.clone(),
                    head: on.to_owned(),
                    approver: event.actor.clone(),
                    verdict: if event.kind == EventKind::Approved {
                        Verdict::Approve
                    } else {
                        Verdict::Reject
                    },
                    comment: String::new(),
                    log_index: *index,
                    lapsed_by: None,
                    carried_from: None,
                });
            }
            EventKind::VerdictWithdrawn => {
                let on = text(event, "head")?;
                if current()? != on {
                    bail!(
                        "the withdrawal at log index {index} is on {on}, but the proposal's head was {}",
                        current()?
                    );
                }
                let approver = text(event, "approver")?;
                for standing in verdicts
                    .iter_mut()
                    .filter(|v| v.stands_on(on) && same_principal(&v.approver, approver))
                {
                    standing.lapsed_by = Some(*index);
                }
                // An authorization by people stands only while the approvals left meet it.
                if let (Some(Authorization::People { .. }), Some((decided_head, record))) =
                    (&authorized, &decided)
                    && decided_head == on
                {
                    let typed = DecidedRecord::from_json(record).invalid(|| {
                        format!("the decision behind the withdrawal at log index {index}")
                    })?;
                    let counted = tally(&typed, on, &proposer, &authors, &verdicts);
                    authorized =
                        (settle(&typed, &counted) == ProposalState::Authorized).then(|| {
                            Authorization::People {
                                approvers: counted.approvers.clone(),
                                required: counted.required,
                            }
                        });
                }
            }
            EventKind::Authorized => {
                let commit = text(event, "commit")?;
                let head = current()?;
                if commit != head {
                    bail!(
                        "the authorization at log index {index} is for {commit}, but the proposal's head was {head}"
                    );
                }
                let Some((decided_head, record)) = &decided else {
                    bail!("the authorization at log index {index} has no decision before it");
                };
                if decided_head != commit {
                    bail!(
                        "the authorization at log index {index} is for {commit}, but the last decision before it was made for {decided_head}"
                    );
                }
                let tier = record["tier"].as_str().unwrap_or_default().to_owned();
                if record["automated"].as_bool() == Some(true) {
                    if !strings(record.get("missing_suites")).is_empty() {
                        bail!(
                            "the automated authorization at log index {index} was given while required evidence was missing"
                        );
                    }
                    authorized = Some(Authorization::Automated { tier });
                    continue;
                }
                let typed = DecidedRecord::from_json(record).invalid(|| {
                    format!("the decision behind the authorization at log index {index}")
                })?;
                let counted = tally(&typed, commit, &proposer, &authors, &verdicts);
                if settle(&typed, &counted) != ProposalState::Authorized {
                    let mut why = format!(
                        "{} of {} required approvals stand on {commit}",
                        counted.counted(),
                        counted.required
                    );
                    if counted.rejected() {
                        why.push_str(&format!(", rejected by {}", counted.rejecters.join(", ")));
                    }
                    for (subject, more) in &counted.open {
                        why.push_str(&format!(", {subject} needs {more} more"));
                    }
                    if !typed.missing_suites.is_empty() {
                        why.push_str(&format!(
                            ", evidence missing for {}",
                            typed.missing_suites.join(", ")
                        ));
                    }
                    bail!(
                        "the authorization at log index {index} is not supported by the bundle: {why}"
                    );
                }
                authorized = Some(Authorization::People {
                    approvers: counted.approvers,
                    required: counted.required,
                });
            }
            EventKind::Merged => closed = Some("merged".to_owned()),
            EventKind::Closed => {
                closed = Some(event.data["state"].as_str().unwrap_or("closed").to_owned());
            }
            _ => {}
        }
    }
    let head = head.ok_or_else(|| DecideError::invalid("the bundle has no `proposed` event"))?;
    let state = if let Some(closed) = closed {
        closed
    } else if authorized.is_some() {
        ProposalState::Authorized.as_str().to_owned()
    } else {
        match &decided {
            Some((decided_head, record)) if *decided_head == head => {
                match DecidedRecord::from_json(record) {
                    Ok(typed) => {
                        let counted = tally(&typed, &head, &proposer, &authors, &verdicts);
                        let state = settle(&typed, &counted);
                        if state == ProposalState::Authorized {
                            bail!(
                                "the bundle was cut short: its decision and verdicts authorize {head}, but it holds no `authorized` event after log index {as_of}"
                            );
                        }
                        state.as_str().to_owned()
                    }
                    // A record of `evaluate --record` for people: nobody can approve it here.
                    Err(_) => ProposalState::AwaitingApproval.as_str().to_owned(),
                }
            }
            _ => "undecided".to_owned(),
        }
    };
    Ok(Outcome {
        proposal: bundle.subject.clone(),
        head,
        state,
        as_of,
        authorized,
    })
}

/// What a finding's bundle shows, re-checked from it alone.
#[derive(Debug, Clone)]
pub struct FindingOutcome {
    pub finding: String,
    /// `open`, `reopened` or `verified`, as the finding's events settle it.
    pub state: String,
    /// Failing observations (the opening one included), each backed by its envelope.
    pub observations: usize,
    /// Each linked proposal's outcome and the differences its re-derivation found.
    pub fixes: Vec<(Outcome, Vec<String>)>,
    /// The merged proposal whose post-merge run verified the finding, if it is verified.
    pub verified_by: Option<String>,
    /// The log index of the finding's last entry.
    pub as_of: u64,
}

/// The statement of an envelope the bundle carries: its commit, predicate type and
/// predicate.
fn statement_of(bundle: &VerifiedBundle, digest: &str) -> Result<(String, String, Value)> {
    let bytes = bundle.blobs.get(digest).ok_or_else(|| {
        DecideError::invalid(format!("envelope {digest} is missing from the bundle"))
    })?;
    let envelope = Envelope::parse(bytes)
        .map_err(|e| DecideError::invalid(format!("envelope {digest}: {e}")))?;
    let statement: Value = serde_json::from_slice(&envelope.payload).map_err(|e| {
        DecideError::invalid(format!("envelope {digest}: the statement is not JSON: {e}"))
    })?;
    let commit = statement["subject"][0]["digest"]["gitCommit"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let predicate_type = statement["predicateType"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((commit, predicate_type, statement["predicate"].clone()))
}

/// Whether `predicate` (of `predicate_type`) reports `test` (a test id, or a vulnerability
/// id) failing (`Some(false)`), passing (`Some(true)`) or not at all (`None`).
fn reports(predicate_type: &str, predicate: &Value, test: &str) -> Option<bool> {
    let names = |key: &str| {
        predicate[key]
            .as_array()
            .is_some_and(|l| l.iter().any(|t| t.as_str() == Some(test)))
    };
    if predicate_type == countersign_evidence::statement::TEST_RESULT_V01 {
        if names("failedTests") {
            return Some(false);
        }
        if names("passedTests") || names("warnedTests") {
            return Some(true);
        }
        return None;
    }
    if predicate_type == countersign_evidence::statement::VULNS_V02 {
        let reported = predicate["scanner"]["result"]
            .as_array()
            .is_some_and(|l| l.iter().any(|r| r["id"].as_str() == Some(test)));
        return Some(!reported);
    }
    None
}

/// Verifies again, offline, the envelope an event of a finding names in `part` (its
/// `evidence` or `verification`): against the runner keys and capsule signers of the
/// `countersign.toml` recorded beside it (`config`, the file at the run's commit the server
/// verified it against), bound to the repository that config names and to the commit
/// `part` names, of the finding's `suite`, signed by the runner `part` names. Fail closed:
/// an envelope or config missing from the bundle, an event that records no config, a key
/// the config does not trust, an altered payload, all refuse the bundle, naming the
/// envelope.
fn reverify(bundle: &VerifiedBundle, part: &Value, suite: &str) -> Result<()> {
    let digest = part["envelope"].as_str().unwrap_or_default();
    let refuse = |why: String| DecideError::invalid(format!("envelope {digest}: {why}"));
    let envelope = bundle
        .blobs
        .get(digest)
        .ok_or_else(|| refuse("missing from the bundle".into()))?;
    let Some(config_digest) = part["config"].as_str() else {
        return Err(refuse(
            "the event records no `config` (the countersign.toml its runner keys were read              from), so the envelope cannot be verified again offline"
                .into(),
        ));
    };
    let config = bundle.blobs.get(config_digest).ok_or_else(|| {
        refuse(format!(
            "the config {config_digest} it was verified against is missing from the bundle"
        ))
    })?;
    let config = std::str::from_utf8(config)
        .map_err(|e| refuse(format!("the config {config_digest} is not UTF-8: {e}")))
        .and_then(|text| {
            countersign_repo::Config::parse(text)
                .map_err(|e| refuse(format!("the config {config_digest}: {e}")))
        })?;
    let commit = part["commit"].as_str().unwrap_or_default();
    let runners = crate::evidence::trusted_runners(&config)
        .map_err(|e| refuse(format!("the config {config_digest}: {}", e.chain())))?;
    let signers = crate::evidence::capsule_signers(&config)
        .map_err(|e| refuse(format!("the config {config_digest}: {}", e.chain())))?;
    let repository = crate::evidence::repository_name(&config, "the run's commit")
        .map_err(|e| refuse(format!("the config {config_digest}: {}", e.chain())))?;
    let trust = countersign_evidence::Trust {
        runners: &runners,
        capsule_signers: &signers,
    };
    let expected = countersign_evidence::Expected {
        repository,
        commit,
        max_bytes: countersign_evidence::verify::DEFAULT_MAX_ENVELOPE_BYTES,
    };
    let accepted = countersign_evidence::verify_trusting(envelope, &trust, &expected)
        .map_err(|refusal| {
            refuse(format!(
                "does not verify against the runner keys and capsule signers of the                  countersign.toml of {commit} ({config_digest}): {}: {refusal}",
                refusal.reason()
            ))
        })?;
    if accepted.suite != suite {
        return Err(refuse(format!(
            "it attests suite {:?}, the finding is of suite {suite:?}",
            accepted.suite
        )));
    }
    if let Some(runner) = part["runner"].as_str()
        && runner != accepted.runner
    {
        return Err(refuse(format!(
            "it is signed by runner {:?}, the event says {runner:?}",
            accepted.runner
        )));
    }
    Ok(())
}

/// Verifies a finding's bundle (`countersign bundle verify` on a file of
/// [`countersign_audit::FINDING_BUNDLE_FORMAT`]): every part's signature, proofs and chain;
/// the finding's events replayed (opened, observed, linked, verified or reopened, in an
/// order the lifecycle allows); each failing observation and the verification backed by its
/// envelope in the bundle, about the stated commit and saying what the event says of the
/// test; every linked proposal's bundle present, its outcome replayed and its decision
/// re-derived; and the verifying proposal merged at the commit its post-merge run tested.
///
/// Every envelope an event names is verified again ([`reverify`]) against the runner keys
/// and capsule signers of the `countersign.toml` at the run's commit, which the event
/// records. Not re-checked: that the recorded config is the file at that commit (the bundle
/// holds no git objects; the log's signature vouches for what the server read), and a
/// capsule's validity window (judged by the server's clock on receipt).
pub fn verify_finding(bytes: &[u8], verifier: &Verifier) -> Result<FindingOutcome> {
    use countersign_lifecycle::FindingState;
    let parsed = countersign_audit::FindingBundle::parse(bytes)
        .map_err(|e| DecideError::invalid(e.to_string()))?;
    let verify = |part: &countersign_audit::Bundle, what: &str| {
        countersign_audit::verify_bundle(&part.to_json(), std::slice::from_ref(verifier))
            .map_err(|e| DecideError::invalid(format!("{what}: {e}")))
    };
    let finding = verify(&parsed.finding, "the finding's bundle")?;
    if finding.subject != parsed.id {
        bail!(
            "the finding's bundle is about {}, not {}",
            finding.subject,
            parsed.id
        );
    }
    let mut state: Option<FindingState> = None;
    let mut observations = 0;
    let mut linked: Vec<String> = Vec::new();
    let mut verified_by = None;
    let mut verifications: Vec<(String, String)> = Vec::new();
    let mut test = String::new();
    // The finding's suite, as its observations name it.
    let mut suite = String::new();
    let mut as_of = 0;
    for (index, event) in &finding.events {
        as_of = *index;
        let at = |what: String| DecideError::invalid(format!("log index {index}: {what}"));
        match event.kind {
            EventKind::FindingOpened | EventKind::FindingObserved => {
                match (event.kind, state) {
                    (EventKind::FindingOpened, None) => {
                        test = text(event, "test")?.to_owned();
                        state = Some(FindingState::Open);
                    }
                    (EventKind::FindingObserved, Some(s)) if s.is_live() => {}
                    _ => {
                        return Err(at(format!(
                            "{:?} where the finding is {state:?}",
                            event.kind
                        )));
                    }
                }
                let evidence = &event.data["evidence"];
                let digest = evidence["envelope"].as_str().unwrap_or_default();
                reverify(&finding, evidence, text(event, "suite")?)
                    .map_err(|e| at(e.to_string()))?;
                suite = text(event, "suite")?.to_owned();
                let (commit, predicate_type, predicate) = statement_of(&finding, digest)?;
                if Some(commit.as_str()) != evidence["commit"].as_str() {
                    return Err(at(format!(
                        "the failing envelope is about commit {commit}, the event says {}",
                        evidence["commit"]
                    )));
                }
                if reports(&predicate_type, &predicate, &test) != Some(false) {
                    return Err(at(format!(
                        "the failing envelope does not report {test} failing"
                    )));
                }
                observations += 1;
            }
            EventKind::FindingLinked => {
                let proposal = text(event, "proposal")?.to_owned();
                if !state.is_some_and(FindingState::is_live) {
                    return Err(at(format!("a fix linked where the finding is {state:?}")));
                }
                linked.push(proposal);
            }
            EventKind::FindingVerified | EventKind::FindingReopened => {
                let verification = &event.data["verification"];
                let proposal = verification["proposal"].as_str().unwrap_or_default();
                if !linked.iter().any(|p| p == proposal) {
                    return Err(at(format!(
                        "settled by proposal {proposal:?}, which the finding's events never linked"
                    )));
                }
                let passed = event.kind == EventKind::FindingVerified;
                let next = state
                    .and_then(|s| s.after_fix(passed))
                    .ok_or_else(|| at(format!("settled where the finding is {state:?}")))?;
                let digest = verification["envelope"].as_str().unwrap_or_default();
                reverify(&finding, verification, &suite).map_err(|e| at(e.to_string()))?;
                let (commit, predicate_type, predicate) = statement_of(&finding, digest)?;
                if Some(commit.as_str()) != verification["commit"].as_str() {
                    return Err(at(format!(
                        "the verifying envelope is about commit {commit}, the event says {}",
                        verification["commit"]
                    )));
                }
                let says = reports(&predicate_type, &predicate, &test);
                // Verified only on a pass; reopened on a failure or a test that did not run.
                let consistent = if passed {
                    says == Some(true)
                } else {
                    says != Some(true)
                };
                if !consistent {
                    return Err(at(format!(
                        "the verifying envelope reports {test} {}, but the event says {}",
                        match says {
                            Some(true) => "passing",
                            Some(false) => "failing",
                            None => "not at all",
                        },
                        if passed { "verified" } else { "reopened" }
                    )));
                }
                verifications.push((proposal.to_owned(), commit));
                verified_by = passed.then(|| proposal.to_owned());
                state = Some(next);
            }
            EventKind::Notified => {}
            other => return Err(at(format!("{other:?} is not an event of a finding"))),
        }
    }
    let Some(state) = state else {
        bail!("the finding's bundle has no `finding_opened` event");
    };
    let mut fixes = Vec::new();
    for part in &parsed.fixes {
        let bundle = verify(part, &format!("the bundle of fix {}", part.subject))?;
        if !linked.contains(&bundle.subject) {
            bail!(
                "the bundle holds proposal {}, which the finding's events never linked",
                bundle.subject
            );
        }
        let outcome = outcome(&bundle)?;
        let differences = rederive(&bundle, verifier)?;
        fixes.push((outcome, differences));
    }
    for proposal in &linked {
        if !fixes.iter().any(|(o, _)| &o.proposal == proposal) {
            bail!("the bundle lacks the bundle of fix {proposal}, which the finding's events link");
        }
    }
    for (proposal, commit) in &verifications {
        let Some((fix, _)) = fixes.iter().find(|(o, _)| &o.proposal == proposal) else {
            bail!("the bundle lacks the bundle of fix {proposal}");
        };
        if fix.state != "merged" || &fix.head != commit {
            bail!(
                "fix {proposal} settled the finding at commit {commit}, but its bundle shows it {} with head {}",
                fix.state,
                fix.head
            );
        }
    }
    Ok(FindingOutcome {
        finding: parsed.id,
        state: state.as_str().to_owned(),
        observations,
        fixes,
        verified_by,
        as_of,
    })
}
