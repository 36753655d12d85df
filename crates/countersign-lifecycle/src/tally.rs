//! Who may give a verdict ([`eligibility`]) and what the verdicts given add up to
//! ([`tally`]): the one count of approvals, shown by the API and used by every transition.
//!
//! The invariants no policy can lift are here: only humans give verdicts, never an author
//! (the proposer or anyone who authored or committed a commit of the change), only an
//! eligible approver of the decision, only for the head it names, and a person counts once.

use std::collections::BTreeSet;

use countersign_policy::Principal;

use crate::record::DecidedRecord;
use crate::state::Verdict;

/// One verdict by one person on one head of a proposal, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub proposal: String,
    pub head: String,
    /// The principal who gave it (`human:dave`).
    pub approver: String,
    pub verdict: Verdict,
    pub comment: String,
    /// The log entry recording the verdict (for a carried-over verdict, the head move).
    pub log_index: u64,
    /// The log entry that ended this verdict (a head move, or the same person's later
    /// verdict on the same head); `None` while it stands.
    pub lapsed_by: Option<u64>,
    /// The head this verdict was first given on, when a trivial rebase carried it over.
    pub carried_from: Option<String>,
}

impl Approval {
    /// Whether the verdict stands for `head`: given on it (or carried to it) and not ended.
    pub fn stands_on(&self, head: &str) -> bool {
        self.lapsed_by.is_none() && self.head == head
    }
}

/// Principals are compared as the API receives them: case-insensitively (`human:Dave` is
/// `human:dave`), as catalog refs are.
pub fn same_principal(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Why a principal may not give a verdict on a proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ineligible {
    /// Only humans approve or reject, whatever the policy or the catalog says.
    NotHuman,
    /// The proposer.
    Proposer,
    /// An author or committer of a commit of the change.
    CommitAuthor,
    /// Not among the decision's eligible approvers.
    NotEligible,
}

/// Whether `who` may give a verdict on a proposal by `proposer` whose commits were authored
/// or committed by `authors`, under `record`.
pub fn eligibility(
    who: &Principal,
    proposer: &str,
    authors: &[String],
    record: &DecidedRecord,
) -> Result<(), Ineligible> {
    let id = who.to_string();
    if !who.is_human() {
        return Err(Ineligible::NotHuman);
    }
    if same_principal(&id, proposer) {
        return Err(Ineligible::Proposer);
    }
    if authors.iter().any(|a| same_principal(a, &id)) {
        return Err(Ineligible::CommitAuthor);
    }
    if !record
        .eligible_approvers
        .iter()
        .any(|e| same_principal(e, &id))
    {
        return Err(Ineligible::NotEligible);
    }
    Ok(())
}

/// What the standing verdicts on a head add up to under a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Distinct humans who must approve.
    pub required: u32,
    /// Distinct eligible humans whose approval of the head stands, lower-cased, sorted.
    pub approvers: Vec<String>,
    /// Distinct people whose rejection of the head stands, lower-cased, sorted. A rejection
    /// counts whoever gave it (it was eligible when given): blocking is the strict side.
    pub rejecters: Vec<String>,
    /// The requirements not met yet by their own eligible people's approvals: subject and how
    /// many more approvals of its people it needs. A person counts towards every requirement
    /// they are eligible for, and once towards `required`.
    pub open: Vec<(String, u32)>,
}

impl Tally {
    /// How many approvals count.
    pub fn counted(&self) -> u32 {
        u32::try_from(self.approvers.len()).unwrap_or(u32::MAX)
    }

    /// A rejection stands: nothing authorizes the head.
    pub fn rejected(&self) -> bool {
        !self.rejecters.is_empty()
    }

    /// Enough distinct eligible humans approved, every requirement is met by its own people,
    /// and no rejection stands.
    pub fn satisfied(&self) -> bool {
        !self.rejected() && self.counted() >= self.required && self.open.is_empty()
    }
}

/// The one approval count. A verdict counts only if it stands on `head`; an approval only if
/// its giver is eligible now ([`eligibility`] under `record`, with today's `authors`), each
/// person once.
pub fn tally(
    record: &DecidedRecord,
    head: &str,
    proposer: &str,
    authors: &[String],
    verdicts: &[Approval],
) -> Tally {
    let mut approvers = BTreeSet::new();
    let mut rejecters = BTreeSet::new();
    for verdict in verdicts.iter().filter(|v| v.stands_on(head)) {
        match verdict.verdict {
            Verdict::Reject => {
                rejecters.insert(verdict.approver.to_lowercase());
            }
            Verdict::Approve => {
                let counts = verdict
                    .approver
                    .parse::<Principal>()
                    .is_ok_and(|who| eligibility(&who, proposer, authors, record).is_ok());
                if counts {
                    approvers.insert(verdict.approver.to_lowercase());
                }
            }
        }
    }
    let open = record
        .requirements
        .iter()
        .filter_map(|r| {
            let met = r
                .eligible
                .iter()
                .filter(|e| approvers.contains(&e.to_lowercase()))
                .count();
            let met = u32::try_from(met).unwrap_or(u32::MAX);
            (met < r.min).then(|| (r.subject.clone(), r.min - met))
        })
        .collect();
    Tally {
        required: record.approvals_required,
        approvers: approvers.into_iter().collect(),
        rejecters: rejecters.into_iter().collect(),
        open,
    }
}
