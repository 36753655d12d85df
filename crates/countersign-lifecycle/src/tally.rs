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

/// Everyone kept from giving a verdict besides the proposer: each principal the change's
/// commits name as author or committer (`commit_authors`), and the person who dispatched
/// the proposing agent (`dispatched_by`, agent provenance): they set the agent to work, so
/// the change is theirs too. The one list the server's proposals, `countersign evaluate`
/// and a bundle's replay pass as `authors` to [`eligibility`], [`tally`] and [`pool`].
/// In the order given, the dispatcher last, each once.
pub fn authors(commit_authors: &[String], dispatched_by: Option<&str>) -> Vec<String> {
    let mut all: Vec<String> = Vec::with_capacity(commit_authors.len() + 1);
    for author in commit_authors
        .iter()
        .map(String::as_str)
        .chain(dispatched_by)
    {
        if !all.iter().any(|a| a == author) {
            all.push(author.to_owned());
        }
    }
    all
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

/// Who is left to approve a proposal once its proposer and authors are taken out: the
/// decision's eligible approvers split into those who may still give a verdict and those
/// excluded as authors, and the parts of the change the people left cannot satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Eligible approvers of the decision who may give a verdict, as recorded, sorted.
    pub eligible: Vec<String>,
    /// Eligible approvers of the decision who may not, because a commit of the change names
    /// them as author or committer, sorted.
    pub excluded: Vec<String>,
    /// What the people left cannot satisfy: a requirement's subject and how many people it
    /// lacks, and `the tier` when fewer distinct people remain than it needs.
    pub unmet: Vec<(String, u32)>,
}

impl Pool {
    /// Enough people remain for every requirement and for the tier's count.
    pub fn meetable(&self) -> bool {
        self.unmet.is_empty()
    }

    /// How many people may still approve.
    pub fn count(&self) -> u32 {
        u32::try_from(self.eligible.len()).unwrap_or(u32::MAX)
    }
}

/// The approver pool of a proposal by `proposer` whose commits name `authors`, under
/// `record`: the same [`eligibility`] the tally counts by, applied to everyone the decision
/// named, so what it shows is what can happen.
pub fn pool(record: &DecidedRecord, proposer: &str, authors: &[String]) -> Pool {
    let mut eligible = BTreeSet::new();
    let mut excluded = BTreeSet::new();
    let may = |person: &str| {
        person
            .parse::<Principal>()
            .map_err(|_| Ineligible::NotHuman)
            .and_then(|who| eligibility(&who, proposer, authors, record))
    };
    for person in &record.eligible_approvers {
        match may(person) {
            Ok(()) => {
                eligible.insert(person.clone());
            }
            Err(Ineligible::CommitAuthor) => {
                excluded.insert(person.clone());
            }
            Err(_) => {}
        }
    }
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let mut unmet: Vec<(String, u32)> = record
        .requirements
        .iter()
        .filter_map(|r| {
            let left = count(r.eligible.iter().filter(|p| may(p).is_ok()).count());
            (left < r.min).then(|| (r.subject.clone(), r.min - left))
        })
        .collect();
    let left = count(eligible.len());
    if left < record.approvals_required {
        unmet.push(("the tier".to_owned(), record.approvals_required - left));
    }
    Pool {
        eligible: eligible.into_iter().collect(),
        excluded: excluded.into_iter().collect(),
        unmet,
    }
}
