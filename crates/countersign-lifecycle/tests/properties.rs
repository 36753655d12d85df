//! The lifecycle's invariants as properties over generated histories, with no database: a
//! small in-memory model persists each [`Transition`] the way the server's handlers do, and
//! every step is checked against the rules no policy can lift.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;

use countersign_lifecycle::{
    Approval, DecidedRecord, Event, Proposal, ProposalState, Refusal, Requirement, Transition,
    Verdict, VerdictChange, tally, transition,
};
use countersign_policy::{Principal, Tier};
use proptest::prelude::*;

/// The people of the generated world: eligible owners, an owner who authored a commit, people
/// who own nothing, the proposer and agents.
const PEOPLE: [&str; 8] = [
    "human:dave",
    "human:erin",
    "human:frank",
    "human:grace",   // a commit author
    "human:mallory", // not an owner
    "human:alice",   // the proposer
    "agent:fixbot",  // an agent registered as an owner
    "runner:ci",
];
const ELIGIBLE: [&str; 4] = ["human:dave", "human:erin", "human:frank", "human:grace"];
const PAYMENTS_OWNERS: [&str; 3] = ["human:dave", "human:erin", "agent:fixbot"];
const DOCS_OWNERS: [&str; 2] = ["human:frank", "human:grace"];
const PROPOSER: &str = "human:alice";

fn record(tier: Tier, missing: bool) -> DecidedRecord {
    DecidedRecord {
        tier,
        automated: tier.is_automated(),
        approvals_required: tier.required_approvals(),
        // Two parts, each with its own owners: payments (dave, erin, and a bot registered
        // as an owner) and docs (frank, grace).
        requirements: if tier.is_automated() {
            vec![]
        } else {
            vec![
                Requirement {
                    subject: "payments".into(),
                    reasons: vec![],
                    eligible: PAYMENTS_OWNERS.iter().map(|s| (*s).to_owned()).collect(),
                    min: 1,
                },
                Requirement {
                    subject: "docs".into(),
                    reasons: vec![],
                    eligible: DOCS_OWNERS.iter().map(|s| (*s).to_owned()).collect(),
                    min: 1,
                },
            ]
        },
        // The catalog may list anyone as an owner, agents and authors included: the tally
        // must not trust the list for the invariants.
        eligible_approvers: ELIGIBLE
            .iter()
            .chain(["agent:fixbot"].iter())
            .map(|s| (*s).to_owned())
            .collect(),
        validation_plan: vec!["unit".to_owned()],
        required_suites: vec!["unit".to_owned()],
        missing_suites: if missing {
            vec!["unit".to_owned()]
        } else {
            vec![]
        },
        policy_version: "v".to_owned(),
    }
}

#[derive(Debug, Clone)]
enum Step {
    Verdict {
        who: usize,
        approve: bool,
        stale: bool,
    },
    Redecide {
        tier: Tier,
        missing: bool,
    },
    Move {
        same_diff: bool,
        grace_authors: bool,
        tier: Tier,
    },
}

fn tier() -> impl Strategy<Value = Tier> {
    prop::sample::select(Tier::ALL.to_vec())
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..PEOPLE.len(), any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(|(who, approve, stale)| Step::Verdict { who, approve, stale }),
        1 => (tier(), any::<bool>()).prop_map(|(tier, missing)| Step::Redecide { tier, missing }),
        1 => (any::<bool>(), any::<bool>(), tier())
            .prop_map(|(same_diff, grace_authors, tier)| Step::Move { same_diff, grace_authors, tier }),
    ]
}

/// The proposal as the store would hold it.
struct Model {
    state: ProposalState,
    head: String,
    heads: u32,
    authors: Vec<String>,
    digest: String,
    digests: u32,
    record: DecidedRecord,
    verdicts: Vec<Approval>,
    next_index: u64,
    /// Every authorization recorded, with the approvers that counted for it.
    authorizations: Vec<(String, Vec<String>, DecidedRecord)>,
}

impl Model {
    fn new(tier: Tier, missing: bool) -> Model {
        let record = record(tier, missing);
        let verdicts = Vec::new();
        let t = tally(&record, "h0", PROPOSER, &[], &verdicts);
        Model {
            state: countersign_lifecycle::settle(&record, &t),
            head: "h0".into(),
            heads: 0,
            authors: vec!["human:grace".into()],
            digest: "d0".into(),
            digests: 0,
            record,
            verdicts,
            next_index: 1,
            authorizations: Vec::new(),
        }
    }

    fn view(&self) -> Proposal<'_> {
        Proposal {
            state: self.state,
            head: &self.head,
            proposer: PROPOSER,
            authors: &self.authors,
            diff_digest: &self.digest,
            record: &self.record,
            verdicts: &self.verdicts,
        }
    }

    fn index(&mut self) -> u64 {
        self.next_index += 1;
        self.next_index
    }

    /// Persist as the handlers do.
    fn apply(&mut self, step: &Step) -> Result<Transition, Refusal> {
        match step.clone() {
            Step::Verdict {
                who,
                approve,
                stale,
            } => {
                let by: Principal = PEOPLE[who].parse().unwrap();
                let verdict = if approve {
                    Verdict::Approve
                } else {
                    Verdict::Reject
                };
                let head = if stale {
                    "old".to_owned()
                } else {
                    self.head.clone()
                };
                let t = transition(
                    &self.view(),
                    Event::Verdict {
                        by: &by,
                        head: &head,
                        verdict,
                        comment: "because",
                    },
                )?;
                if let VerdictChange::Record { supersedes } = &t.verdict {
                    let index = self.index();
                    if let Some(old) = supersedes {
                        for v in &mut self.verdicts {
                            if v.stands_on(&old.head)
                                && v.approver.eq_ignore_ascii_case(&old.approver)
                            {
                                v.lapsed_by = Some(index);
                            }
                        }
                    }
                    self.verdicts.push(Approval {
                        proposal: "p".into(),
                        head: self.head.clone(),
                        approver: by.to_string(),
                        verdict,
                        comment: "because".into(),
                        log_index: index,
                        lapsed_by: None,
                        carried_from: None,
                    });
                }
                self.finish(&t);
                Ok(t)
            }
            Step::Redecide { tier, missing } => {
                let record = record(tier, missing);
                let t = transition(&self.view(), Event::Redecided { record: &record })?;
                self.record = record;
                self.finish(&t);
                Ok(t)
            }
            Step::Move {
                same_diff,
                grace_authors,
                tier,
            } => {
                self.heads += 1;
                let head = format!("h{}", self.heads);
                let digest = if same_diff {
                    self.digest.clone()
                } else {
                    self.digests += 1;
                    format!("d{}", self.digests)
                };
                let authors: Vec<String> = if grace_authors {
                    vec!["human:grace".into()]
                } else {
                    vec!["human:erin".into()]
                };
                let record = record(tier, false);
                let t = transition(
                    &self.view(),
                    Event::HeadMoved {
                        head: &head,
                        record: &record,
                        authors: &authors,
                        diff_digest: &digest,
                    },
                )?;
                let index = self.index();
                for v in &mut self.verdicts {
                    if v.lapsed_by.is_none() {
                        v.lapsed_by = Some(index);
                    }
                }
                for v in &t.carried {
                    self.verdicts.push(Approval {
                        head: head.clone(),
                        log_index: index,
                        lapsed_by: None,
                        carried_from: Some(v.head.clone()),
                        ..v.clone()
                    });
                }
                self.head = head;
                self.digest = digest;
                self.authors = authors;
                self.record = record;
                self.finish(&t);
                Ok(t)
            }
        }
    }

    fn finish(&mut self, t: &Transition) {
        if t.next == ProposalState::Authorized && self.state != ProposalState::Authorized {
            self.authorizations.push((
                self.head.clone(),
                t.tally.approvers.clone(),
                self.record.clone(),
            ));
        }
        self.state = t.next;
    }
}

fn start() -> impl Strategy<Value = (Tier, bool)> {
    (tier(), any::<bool>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Every authorization by people was reached with enough distinct eligible humans who
    /// stood on that very head: never the proposer, a commit author, an agent or a runner.
    #[test]
    fn authorizations_need_distinct_eligible_humans_who_are_not_authors(
        (tier, missing) in start(),
        steps in prop::collection::vec(step(), 0..40),
    ) {
        let mut model = Model::new(tier, missing);
        for step in &steps {
            let _ = model.apply(step);
            // The tally shown equals the tally decided: recomputing it from the persisted
            // rows gives what the transition settled.
            let shown = tally(&model.record, &model.head, PROPOSER, &model.authors, &model.verdicts);
            let settled = countersign_lifecycle::settle(&model.record, &shown);
            prop_assert_eq!(settled, model.state, "{:?}", step);
        }
        for (head, approvers, record) in &model.authorizations {
            if record.automated {
                continue;
            }
            let distinct: BTreeSet<&String> = approvers.iter().collect();
            prop_assert!(distinct.len() as u32 >= record.approvals_required, "{head}: {approvers:?}");
            prop_assert!(record.approvals_required >= 1);
            for a in approvers {
                prop_assert!(a.starts_with("human:"), "{a}");
                prop_assert!(a != PROPOSER, "{a}");
                prop_assert!(a != "human:mallory", "{a}");
            }
            // Each part was approved by its own people: approvals by the docs owners never
            // authorize the payments part, and the other way round.
            for owners in [&PAYMENTS_OWNERS[..], &DOCS_OWNERS[..]] {
                prop_assert!(
                    approvers.iter().any(|a| owners.contains(&a.as_str()) && a.starts_with("human:")),
                    "{approvers:?} leave {owners:?} unapproved"
                );
            }
        }
    }

    /// While a rejection stands on the head nothing is authorized, and only the rejecter's
    /// own later verdict or another change (a non-trivial head move) lifts it.
    #[test]
    fn a_rejection_blocks_until_a_new_change(
        (tier, missing) in start(),
        steps in prop::collection::vec(step(), 0..40),
    ) {
        let mut model = Model::new(tier, missing);
        for step in &steps {
            let before: BTreeSet<String> = model.verdicts.iter()
                .filter(|v| v.stands_on(&model.head) && v.verdict == Verdict::Reject)
                .map(|v| v.approver.clone())
                .collect();
            let digest_before = model.digest.clone();
            let result = model.apply(step);
            let after: BTreeSet<String> = model.verdicts.iter()
                .filter(|v| v.stands_on(&model.head) && v.verdict == Verdict::Reject)
                .map(|v| v.approver.clone())
                .collect();
            if !after.is_empty() {
                prop_assert_eq!(model.state, ProposalState::Rejected);
            }
            let lifted: Vec<&String> = before.difference(&after).collect();
            if !lifted.is_empty() && result.is_ok() {
                match step {
                    Step::Verdict { who, approve: true, .. } => {
                        let rejecter = PEOPLE[*who].to_owned();
                        prop_assert_eq!(lifted, vec![&rejecter]);
                    }
                    Step::Move { .. } => prop_assert_ne!(&model.digest, &digest_before),
                    other => prop_assert!(false, "{other:?} lifted {lifted:?}"),
                }
            }
        }
    }

    /// A head move to another diff keeps no verdict; one to the same diff keeps them all.
    /// A lapsed verdict never counts again.
    #[test]
    fn head_moves_carry_verdicts_only_for_the_same_diff(
        (tier, missing) in start(),
        steps in prop::collection::vec(step(), 0..40),
    ) {
        let mut model = Model::new(tier, missing);
        for step in &steps {
            let standing = model.verdicts.iter().filter(|v| v.lapsed_by.is_none()).count();
            let digest_before = model.digest.clone();
            if let Ok(t) = model.apply(step) && let Step::Move { .. } = step {
                if model.digest == digest_before {
                    prop_assert_eq!(t.carried.len(), standing);
                    prop_assert!(t.lapsed.is_empty());
                } else {
                    prop_assert!(t.carried.is_empty());
                    prop_assert_eq!(t.lapsed.len(), standing);
                }
            }
            let lapsed: Vec<&Approval> = model.verdicts.iter().filter(|v| v.lapsed_by.is_some()).collect();
            let t = tally(&model.record, &model.head, PROPOSER, &model.authors, &model.verdicts);
            for v in lapsed {
                let counted_elsewhere = model.verdicts.iter().any(|w| {
                    w.lapsed_by.is_none() && w.approver.eq_ignore_ascii_case(&v.approver) && w.verdict == v.verdict
                });
                if !counted_elsewhere {
                    let counted = match v.verdict {
                        Verdict::Approve => &t.approvers,
                        Verdict::Reject => &t.rejecters,
                    };
                    prop_assert!(!counted.contains(&v.approver.to_lowercase()), "{v:?}");
                }
            }
        }
    }
}
