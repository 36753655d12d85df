//! [`transition`]: what one event does to a proposal. The handlers load the proposal, call
//! it, and persist the [`Transition`] (log events, rows, notifications) in one transaction;
//! a [`Refusal`] is the client's answer, with nothing written.

use countersign_policy::Principal;

use crate::record::DecidedRecord;
use crate::state::{ProposalState, Verdict};
use crate::tally::{Approval, Ineligible, Tally, eligibility, same_principal, tally};

/// A proposal as the lifecycle sees it: its state, current head and decision, and every
/// verdict ever given on it (standing or not).
#[derive(Debug, Clone, Copy)]
pub struct Proposal<'a> {
    pub state: ProposalState,
    pub head: &'a str,
    /// Who opened it (`agent:fixbot`).
    pub proposer: &'a str,
    /// Everyone who authored or committed a commit of `base..head`.
    pub authors: &'a [String],
    /// The digest of the diff's content: equal digests mean the same change.
    pub diff_digest: &'a str,
    /// The decision of the current head.
    pub record: &'a DecidedRecord,
    pub verdicts: &'a [Approval],
}

/// Something that happens to a proposal.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A person approves or rejects `head`.
    Verdict {
        by: &'a Principal,
        head: &'a str,
        verdict: Verdict,
        comment: &'a str,
    },
    /// The standing verdict of `approver` on `head` ends without a new one: withdrawn where
    /// it was given (a GitHub review dismissed). The proposal settles again without it.
    Withdrawn { approver: &'a str, head: &'a str },
    /// Evidence was accepted for the current head and the decision re-derived with it.
    Redecided { record: &'a DecidedRecord },
    /// The head moved to `head`, decided anew as `record`.
    HeadMoved {
        head: &'a str,
        record: &'a DecidedRecord,
        authors: &'a [String],
        diff_digest: &'a str,
    },
    /// Closed by its author or an admin, or superseded by another proposal.
    Closed { superseded: bool },
    /// `commit` reached a protected branch.
    Merged { commit: &'a str },
}

/// What to do with a verdict event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerdictChange {
    /// Nothing to record.
    None,
    /// Record the verdict. `supersedes` is the same person's standing verdict on this head
    /// that the new one ends (kept, marked, never deleted). Identified by proposal, head and
    /// approver, not by log index: verdicts carried by one head move share its index.
    Record { supersedes: Option<Approval> },
    /// End `withdrawn` (kept, marked lapsed by the withdrawal's log entry, never deleted);
    /// nothing new is recorded in its place.
    Withdraw { withdrawn: Approval },
}

/// What an event does: the state after it, what to record, the tally that settled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub next: ProposalState,
    /// Nothing is recorded at all (the same verdict again, a move to the same head): the
    /// caller answers with the proposal as it is.
    pub unchanged: bool,
    pub verdict: VerdictChange,
    /// For a head move: the standing verdicts that stand on the new head too (a trivial
    /// rebase), as they were given, and those that lapse.
    pub carried: Vec<Approval>,
    pub lapsed: Vec<Approval>,
    /// For a head move: the new head's diff is the old one's (the same change).
    pub trivial_rebase: bool,
    /// The event completes an authorization by people: record it (`authorized`).
    pub authorized_by_people: bool,
    /// The tally after the event, under the decision that now applies.
    pub tally: Tally,
}

/// Why an event cannot happen. Nothing is recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0} is not a human: only humans approve or reject")]
    NotHuman(String),
    #[error("the author of a proposal cannot approve or reject it")]
    Proposer,
    #[error(
        "{0} authored or committed a commit of this change: the authors of a change cannot approve or reject it"
    )]
    CommitAuthor(String),
    #[error("{0} is not an eligible approver of this change (owners of the affected nodes)")]
    NotEligible(String),
    #[error("head {given} is not the proposal's current head {current}")]
    StaleHead { given: String, current: String },
    #[error("a rejection needs a comment saying why")]
    RejectionWithoutComment,
    #[error("the proposal is {0}: {1}")]
    WrongState(ProposalState, &'static str),
    #[error("commit {given} is not the proposal's authorized head {head}")]
    NotTheAuthorizedHead { given: String, head: String },
}

/// How a refusal is answered: who is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The caller may not do this (403).
    Forbidden,
    /// The proposal is not in a state for it, or moved on (409).
    Conflict,
    /// The request itself is incomplete (422).
    Invalid,
}

impl Refusal {
    pub fn kind(&self) -> RefusalKind {
        match self {
            Refusal::NotHuman(_)
            | Refusal::Proposer
            | Refusal::CommitAuthor(_)
            | Refusal::NotEligible(_) => RefusalKind::Forbidden,
            Refusal::StaleHead { .. }
            | Refusal::WrongState(..)
            | Refusal::NotTheAuthorizedHead { .. } => RefusalKind::Conflict,
            Refusal::RejectionWithoutComment => RefusalKind::Invalid,
        }
    }
}

/// The state a decision and the standing verdicts settle: rejected while a rejection stands;
/// awaiting evidence while a required suite has none, whatever the tier (an automated tier is
/// not authorized on missing evidence, and people are not asked before the evidence they
/// would weigh is in); then authorized for an automated tier or once enough eligible people
/// approved; else awaiting approval.
pub fn settle(record: &DecidedRecord, tally: &Tally) -> ProposalState {
    if tally.rejected() {
        ProposalState::Rejected
    } else if !record.missing_suites.is_empty() {
        ProposalState::AwaitingEvidence
    } else if record.automated || tally.satisfied() {
        ProposalState::Authorized
    } else {
        ProposalState::AwaitingApproval
    }
}

/// The state a fresh decision leads to before anyone gave a verdict: a new proposal's.
pub fn opened(record: &DecidedRecord) -> ProposalState {
    settle(record, &tally(record, "", "", &[], &[]))
}

/// What `event` does to `proposal`.
pub fn transition(proposal: &Proposal<'_>, event: Event<'_>) -> Result<Transition, Refusal> {
    if proposal.state.is_final() {
        return Err(Refusal::WrongState(
            proposal.state,
            "it is final: nothing changes it any more",
        ));
    }
    match event {
        Event::Verdict {
            by,
            head,
            verdict,
            comment,
        } => on_verdict(proposal, by, head, verdict, comment),
        Event::Withdrawn { approver, head } => on_withdrawn(proposal, approver, head),
        Event::Redecided { record } => on_redecided(proposal, record),
        Event::HeadMoved {
            head,
            record,
            authors,
            diff_digest,
        } => Ok(on_head_moved(proposal, head, record, authors, diff_digest)),
        Event::Closed { superseded } => Ok(Transition {
            next: if superseded {
                ProposalState::Superseded
            } else {
                ProposalState::Closed
            },
            ..unchanged_from(proposal)
        }
        .recorded()),
        Event::Merged { commit } => {
            if proposal.state != ProposalState::Authorized {
                return Err(Refusal::WrongState(
                    proposal.state,
                    "only an authorized proposal can be merged",
                ));
            }
            if !commit.eq_ignore_ascii_case(proposal.head) {
                return Err(Refusal::NotTheAuthorizedHead {
                    given: commit.to_owned(),
                    head: proposal.head.to_owned(),
                });
            }
            Ok(Transition {
                next: ProposalState::Merged,
                ..unchanged_from(proposal)
            }
            .recorded())
        }
    }
}

/// The proposal as it is: nothing recorded, the state kept.
fn unchanged_from(proposal: &Proposal<'_>) -> Transition {
    Transition {
        next: proposal.state,
        unchanged: true,
        verdict: VerdictChange::None,
        carried: Vec::new(),
        lapsed: Vec::new(),
        trivial_rebase: false,
        authorized_by_people: false,
        tally: tally(
            proposal.record,
            proposal.head,
            proposal.proposer,
            proposal.authors,
            proposal.verdicts,
        ),
    }
}

impl Transition {
    fn recorded(self) -> Transition {
        Transition {
            unchanged: false,
            ..self
        }
    }
}

fn on_verdict(
    proposal: &Proposal<'_>,
    by: &Principal,
    head: &str,
    verdict: Verdict,
    comment: &str,
) -> Result<Transition, Refusal> {
    let who = by.to_string();
    eligibility(by, proposal.proposer, proposal.authors, proposal.record).map_err(|reason| {
        match reason {
            Ineligible::NotHuman => Refusal::NotHuman(who.clone()),
            Ineligible::Proposer => Refusal::Proposer,
            Ineligible::CommitAuthor => Refusal::CommitAuthor(who.clone()),
            Ineligible::NotEligible => Refusal::NotEligible(who.clone()),
        }
    })?;
    if head != proposal.head {
        return Err(Refusal::StaleHead {
            given: head.to_owned(),
            current: proposal.head.to_owned(),
        });
    }
    if verdict == Verdict::Reject && comment.trim().is_empty() {
        return Err(Refusal::RejectionWithoutComment);
    }
    let standing = proposal
        .verdicts
        .iter()
        .find(|v| v.stands_on(proposal.head) && same_principal(&v.approver, &who));
    if let Some(standing) = standing
        && standing.verdict == verdict
    {
        // The same person, the same verdict, the same head: counted once, nothing new,
        // whatever the state became since (a retry after the authorization it completed).
        return Ok(unchanged_from(proposal));
    }
    // A rejection may come at any time before the proposal is final, an authorization
    // included (it is revoked until a new head). An approval only once the evidence is in,
    // and while a rejection stands only from the person who gave it (withdrawing it):
    // anyone else is told the head is blocked rather than have an approval recorded that
    // cannot count.
    let withdraws = standing.is_some_and(|v| v.verdict == Verdict::Reject);
    let refusal = match (verdict, proposal.state) {
        (Verdict::Reject, ProposalState::Open) => Some("it has not been decided yet"),
        (Verdict::Reject, _) => None,
        (Verdict::Approve, ProposalState::AwaitingApproval) => None,
        (Verdict::Approve, ProposalState::Rejected) if withdraws => None,
        (Verdict::Approve, ProposalState::Rejected) => {
            Some("a rejection stands on this head until its giver withdraws it or the diff changes")
        }
        (Verdict::Approve, _) => Some("approvals are taken once it awaits approval"),
    };
    if let Some(why) = refusal {
        return Err(Refusal::WrongState(proposal.state, why));
    }
    let supersedes = standing.cloned();
    // The verdicts after this one is recorded: the same person's earlier one ended.
    let mut after: Vec<Approval> = proposal
        .verdicts
        .iter()
        .filter(|v| !(v.stands_on(proposal.head) && same_principal(&v.approver, &who)))
        .cloned()
        .collect();
    after.push(Approval {
        proposal: String::new(),
        head: proposal.head.to_owned(),
        approver: who,
        verdict,
        comment: comment.to_owned(),
        log_index: u64::MAX,
        lapsed_by: None,
        carried_from: None,
    });
    let tally = tally(
        proposal.record,
        proposal.head,
        proposal.proposer,
        proposal.authors,
        &after,
    );
    let next = settle(proposal.record, &tally);
    Ok(Transition {
        next,
        unchanged: false,
        verdict: VerdictChange::Record { supersedes },
        carried: Vec::new(),
        lapsed: Vec::new(),
        trivial_rebase: false,
        authorized_by_people: next == ProposalState::Authorized
            && proposal.state != ProposalState::Authorized
            && !proposal.record.automated,
        tally,
    })
}

/// A withdrawal ends the person's standing verdict on the current head, whatever it was
/// (an approval no longer counts; a rejection no longer blocks), and the proposal settles
/// again under the same decision: an authorization by people that needed it falls back to
/// awaiting approval. Withdrawing what does not stand (never given, already superseded or
/// lapsed) changes nothing. A final proposal is not reopened: a merge is not undone.
fn on_withdrawn(
    proposal: &Proposal<'_>,
    approver: &str,
    head: &str,
) -> Result<Transition, Refusal> {
    if head != proposal.head {
        return Err(Refusal::StaleHead {
            given: head.to_owned(),
            current: proposal.head.to_owned(),
        });
    }
    let Some(withdrawn) = proposal
        .verdicts
        .iter()
        .find(|v| v.stands_on(proposal.head) && same_principal(&v.approver, approver))
        .cloned()
    else {
        return Ok(unchanged_from(proposal));
    };
    let after: Vec<Approval> = proposal
        .verdicts
        .iter()
        .filter(|v| !(v.stands_on(proposal.head) && same_principal(&v.approver, approver)))
        .cloned()
        .collect();
    let tally = tally(
        proposal.record,
        proposal.head,
        proposal.proposer,
        proposal.authors,
        &after,
    );
    let next = settle(proposal.record, &tally);
    Ok(Transition {
        next,
        unchanged: false,
        verdict: VerdictChange::Withdraw { withdrawn },
        carried: Vec::new(),
        lapsed: Vec::new(),
        trivial_rebase: false,
        // Withdrawing a rejection can complete an authorization by the approvals left.
        authorized_by_people: next == ProposalState::Authorized
            && proposal.state != ProposalState::Authorized
            && !proposal.record.automated,
        tally,
    })
}

fn on_redecided(proposal: &Proposal<'_>, record: &DecidedRecord) -> Result<Transition, Refusal> {
    if !proposal.state.takes_evidence() {
        return Err(Refusal::WrongState(
            proposal.state,
            "evidence no longer changes its decision",
        ));
    }
    let tally = tally(
        record,
        proposal.head,
        proposal.proposer,
        proposal.authors,
        proposal.verdicts,
    );
    let next = settle(record, &tally);
    Ok(Transition {
        next,
        unchanged: false,
        verdict: VerdictChange::None,
        carried: Vec::new(),
        lapsed: Vec::new(),
        trivial_rebase: false,
        // An automated decision records its own (system) authorization; people's is
        // recorded when the evidence completes it, not again while it stands.
        authorized_by_people: next == ProposalState::Authorized
            && proposal.state != ProposalState::Authorized
            && !record.automated,
        tally,
    })
}

fn on_head_moved(
    proposal: &Proposal<'_>,
    head: &str,
    record: &DecidedRecord,
    authors: &[String],
    diff_digest: &str,
) -> Transition {
    if head == proposal.head {
        return unchanged_from(proposal);
    }
    let trivial = !proposal.diff_digest.is_empty() && proposal.diff_digest == diff_digest;
    // A trivial rebase (the same diff) carries every standing verdict: the same change stays
    // approved, and stays rejected whoever the new commits name as authors (an approval by
    // someone the new commits name does not count: the tally excludes authors). Anything
    // else is another change: every verdict lapses.
    let (carried, lapsed): (Vec<Approval>, Vec<Approval>) = proposal
        .verdicts
        .iter()
        .filter(|v| v.lapsed_by.is_none())
        .cloned()
        .partition(|_| trivial);
    let on_new_head: Vec<Approval> = carried
        .iter()
        .map(|v| Approval {
            head: head.to_owned(),
            carried_from: Some(v.head.clone()),
            ..v.clone()
        })
        .collect();
    let tally = tally(record, head, proposal.proposer, authors, &on_new_head);
    let next = settle(record, &tally);
    Transition {
        next,
        unchanged: false,
        verdict: VerdictChange::None,
        carried,
        lapsed,
        trivial_rebase: trivial,
        authorized_by_people: next == ProposalState::Authorized && !record.automated,
        tally,
    }
}
