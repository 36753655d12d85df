//! One scenario per case: a proposal, an event, and what the lifecycle answers, as a snapshot.
#![allow(clippy::unwrap_used, clippy::panic)]

use countersign_lifecycle::{
    Approval, DecidedRecord, Event, Proposal, ProposalState, Requirement, Verdict, VerdictChange,
    transition,
};
use countersign_policy::{Principal, Tier};
use insta::assert_snapshot;

fn record(tier: Tier) -> DecidedRecord {
    DecidedRecord {
        tier,
        automated: tier.is_automated(),
        approvals_required: tier.required_approvals(),
        requirements: if tier.is_automated() {
            vec![]
        } else {
            vec![Requirement {
                subject: "component:default/payments".into(),
                reasons: vec!["surface payments".into()],
                eligible: vec!["human:dave".into(), "human:erin".into(), "agent:bot".into()],
                min: 1,
            }]
        },
        eligible_approvers: vec!["human:dave".into(), "human:erin".into(), "agent:bot".into()],
        validation_plan: vec![],
        required_suites: vec![],
        missing_suites: vec![],
        policy_version: "v".into(),
    }
}

fn verdict(who: &str, head: &str, verdict: Verdict, index: u64) -> Approval {
    Approval {
        proposal: "p".into(),
        head: head.into(),
        approver: who.into(),
        verdict,
        comment: "c".into(),
        log_index: index,
        lapsed_by: None,
        carried_from: None,
    }
}

/// `verdicts` already given on head `h1` of a proposal in `state` at `tier`; then `event`.
fn check(state: ProposalState, tier: Tier, verdicts: &[Approval], event: Event<'_>) -> String {
    let record = record(tier);
    let authors = vec!["human:carol".to_owned()];
    let proposal = Proposal {
        state,
        head: "h1",
        proposer: "agent:fixbot",
        authors: &authors,
        diff_digest: "d1",
        record: &record,
        verdicts,
    };
    match transition(&proposal, event) {
        Err(refusal) => format!("refused ({:?}): {refusal}", refusal.kind()),
        Ok(t) => {
            let verdict = match &t.verdict {
                VerdictChange::None => "none".to_owned(),
                VerdictChange::Record { supersedes: None } => "record".to_owned(),
                VerdictChange::Record {
                    supersedes: Some(old),
                } => {
                    format!("record, superseding {}'s {}", old.approver, old.verdict)
                }
                VerdictChange::Withdraw { withdrawn } => {
                    format!("withdraw {}'s {}", withdrawn.approver, withdrawn.verdict)
                }
            };
            format!(
                "{} -> {}{}; verdict: {verdict}; counted {}/{} {:?}; rejecters {:?}{}",
                state,
                t.next,
                if t.unchanged { " (unchanged)" } else { "" },
                t.tally.counted(),
                t.tally.required,
                t.tally.approvers,
                t.tally.rejecters,
                if t.authorized_by_people {
                    "; authorized by people"
                } else {
                    ""
                },
            )
        }
    }
}

fn by(who: &str) -> Principal {
    who.parse().unwrap()
}

#[test]
fn verdicts() {
    use ProposalState::*;
    use Tier::*;
    use Verdict::*;
    let dave = by("human:dave");
    let erin = by("human:erin");
    let (upper_dave, bot, carol, mallory) = (
        by("human:Dave"),
        by("agent:bot"),
        by("human:carol"),
        by("human:mallory"),
    );
    let on = |who, verdict, comment| Event::Verdict {
        by: who,
        head: "h1",
        verdict,
        comment,
    };

    assert_snapshot!(check(AwaitingApproval, SingleApprover, &[], on(&dave, Approve, "")), @r#"awaiting_approval -> authorized; verdict: record; counted 1/1 ["human:dave"]; rejecters []; authorized by people"#);
    assert_snapshot!(check(AwaitingApproval, ChangeControl, &[], on(&dave, Approve, "")), @r#"awaiting_approval -> awaiting_approval; verdict: record; counted 1/2 ["human:dave"]; rejecters []"#);
    // The same person twice counts once and records nothing.
    let dave_approved = [verdict("human:dave", "h1", Approve, 5)];
    assert_snapshot!(check(AwaitingApproval, ChangeControl, &dave_approved, on(&upper_dave, Approve, "")), @r#"awaiting_approval -> awaiting_approval (unchanged); verdict: none; counted 1/2 ["human:dave"]; rejecters []"#);
    assert_snapshot!(check(AwaitingApproval, ChangeControl, &dave_approved, on(&erin, Approve, "")), @r#"awaiting_approval -> authorized; verdict: record; counted 2/2 ["human:dave", "human:erin"]; rejecters []; authorized by people"#);
    // Approve, then reject: the rejection supersedes the approval, never dropped.
    assert_snapshot!(check(AwaitingApproval, ChangeControl, &dave_approved, on(&dave, Reject, "on second thought")), @r#"awaiting_approval -> rejected; verdict: record, superseding human:dave's approve; counted 0/2 []; rejecters ["human:dave"]"#);
    // Reject, then approve by the rejecter: the rejection is withdrawn.
    let dave_rejected = [verdict("human:dave", "h1", Reject, 5)];
    assert_snapshot!(check(Rejected, SingleApprover, &dave_rejected, on(&dave, Approve, "")), @r#"rejected -> authorized; verdict: record, superseding human:dave's reject; counted 1/1 ["human:dave"]; rejecters []; authorized by people"#);
    // Someone else's approval does not lift it.
    assert_snapshot!(check(Rejected, SingleApprover, &dave_rejected, on(&erin, Approve, "")), @r#"refused (Conflict): the proposal is rejected: a rejection stands on this head until its giver withdraws it or the diff changes"#);
    // A rejection revokes an authorization that has not merged.
    assert_snapshot!(check(Authorized, SingleApprover, &[verdict("human:erin", "h1", Approve, 5)], on(&dave, Reject, "no")), @r#"authorized -> rejected; verdict: record; counted 1/1 ["human:erin"]; rejecters ["human:dave"]"#);
    assert_snapshot!(check(AwaitingApproval, SingleApprover, &[], on(&dave, Reject, "  ")), @r#"refused (Invalid): a rejection needs a comment saying why"#);
    assert_snapshot!(check(AwaitingApproval, SingleApprover, &[], Event::Verdict { by: &dave, head: "h0", verdict: Approve, comment: "" }), @r#"refused (Conflict): head h0 is not the proposal's current head h1"#);
    assert_snapshot!(check(AwaitingEvidence, SingleApprover, &[], on(&dave, Approve, "")), @r#"refused (Conflict): the proposal is awaiting_evidence: approvals are taken once it awaits approval"#);
    assert_snapshot!(check(AwaitingApproval, SingleApprover, &[], on(&bot, Approve, "")), @r#"refused (Forbidden): agent:bot is not a human: only humans approve or reject"#);
    assert_snapshot!(check(AwaitingApproval, SingleApprover, &[], on(&carol, Approve, "")), @r#"refused (Forbidden): human:carol authored or committed a commit of this change: the authors of a change cannot approve or reject it"#);
    assert_snapshot!(check(AwaitingApproval, SingleApprover, &[], on(&mallory, Approve, "")), @r#"refused (Forbidden): human:mallory is not an eligible approver of this change (owners of the affected nodes)"#);
    assert_snapshot!(check(Merged, SingleApprover, &[], on(&dave, Reject, "late")), @r#"refused (Conflict): the proposal is merged: it is final: nothing changes it any more"#);
}

#[test]
fn head_moves_and_endings() {
    use ProposalState::*;
    use Tier::*;
    use Verdict::*;
    let standing = [
        verdict("human:dave", "h1", Approve, 5),
        verdict("human:erin", "h1", Reject, 6),
    ];
    let cc = record(ChangeControl);
    let authors = vec!["human:dave".to_owned()];
    // The same diff: both verdicts carried; dave, now named as a commit author, does not
    // count, and erin's rejection stands whatever the new commits say.
    assert_snapshot!(check(Rejected, ChangeControl, &standing, Event::HeadMoved { head: "h2", record: &cc, authors: &authors, diff_digest: "d1" }), @r#"rejected -> rejected; verdict: none; counted 0/2 []; rejecters ["human:erin"]"#);
    // Another diff: everything lapses.
    assert_snapshot!(check(Rejected, ChangeControl, &standing, Event::HeadMoved { head: "h2", record: &cc, authors: &authors, diff_digest: "d2" }), @r#"rejected -> awaiting_approval; verdict: none; counted 0/2 []; rejecters []"#);
    assert_snapshot!(check(Rejected, ChangeControl, &standing, Event::HeadMoved { head: "h1", record: &cc, authors: &authors, diff_digest: "d2" }), @r#"rejected -> rejected (unchanged); verdict: none; counted 1/2 ["human:dave"]; rejecters ["human:erin"]"#);
    assert_snapshot!(check(Authorized, AutoMerge, &[], Event::Merged { commit: "H1" }), @r#"authorized -> merged; verdict: none; counted 0/0 []; rejecters []"#);
    assert_snapshot!(check(AwaitingApproval, SingleApprover, &[], Event::Merged { commit: "h1" }), @r#"refused (Conflict): the proposal is awaiting_approval: only an authorized proposal can be merged"#);
    assert_snapshot!(check(Authorized, AutoMerge, &[], Event::Merged { commit: "h0" }), @r#"refused (Conflict): commit h0 is not the proposal's authorized head h1"#);
    assert_snapshot!(check(AwaitingApproval, SingleApprover, &[], Event::Closed { superseded: true }), @r#"awaiting_approval -> superseded; verdict: none; counted 0/1 []; rejecters []"#);
    assert_snapshot!(check(Closed, SingleApprover, &[], Event::Closed { superseded: false }), @r#"refused (Conflict): the proposal is closed: it is final: nothing changes it any more"#);
    let evidence_in = record(SingleApprover);
    assert_snapshot!(check(AwaitingEvidence, SingleApprover, &[], Event::Redecided { record: &evidence_in }), @r#"awaiting_evidence -> awaiting_approval; verdict: none; counted 0/1 []; rejecters []"#);
    // Evidence after the authorization and before the merge is weighed: a decision that now
    // needs an approval nobody gave lapses the authorization (issue 22 point 3).
    assert_snapshot!(check(Authorized, SingleApprover, &[], Event::Redecided { record: &evidence_in }), @r#"authorized -> awaiting_approval; verdict: none; counted 0/1 []; rejecters []"#);
    assert_snapshot!(check(Merged, SingleApprover, &[], Event::Redecided { record: &evidence_in }), @r#"refused (Conflict): the proposal is merged: it is final: nothing changes it any more"#);
}

/// A verdict withdrawn where it was given (a GitHub review dismissed): the approval no
/// longer counts and an authorization by people that needed it falls back to awaiting
/// approval; a withdrawn rejection no longer blocks; nothing standing, nothing changes; a
/// merged proposal is not undone.
#[test]
fn withdrawals() {
    use ProposalState::*;
    use Tier::*;
    use Verdict::*;
    let withdraw = |approver| Event::Withdrawn {
        approver,
        head: "h1",
    };
    let dave_approved = [verdict("human:dave", "h1", Approve, 5)];
    assert_snapshot!(check(Authorized, SingleApprover, &dave_approved, withdraw("human:Dave")), @r#"authorized -> awaiting_approval; verdict: withdraw human:dave's approve; counted 0/1 []; rejecters []"#);
    let both = [
        verdict("human:dave", "h1", Approve, 5),
        verdict("human:erin", "h1", Approve, 6),
    ];
    assert_snapshot!(check(Authorized, SingleApprover, &both, withdraw("human:dave")), @r#"authorized -> authorized; verdict: withdraw human:dave's approve; counted 1/1 ["human:erin"]; rejecters []"#);
    assert_snapshot!(check(Authorized, ChangeControl, &both, withdraw("human:erin")), @r#"authorized -> awaiting_approval; verdict: withdraw human:erin's approve; counted 1/2 ["human:dave"]; rejecters []"#);
    // An automated tier never needed the approval.
    assert_snapshot!(check(Authorized, AutoMerge, &dave_approved, withdraw("human:dave")), @r#"authorized -> authorized; verdict: withdraw human:dave's approve; counted 0/0 []; rejecters []"#);
    // A withdrawn rejection lets the approvals standing authorize.
    let rejected = [
        verdict("human:dave", "h1", Reject, 5),
        verdict("human:erin", "h1", Approve, 6),
    ];
    assert_snapshot!(check(Rejected, SingleApprover, &rejected, withdraw("human:dave")), @r#"rejected -> authorized; verdict: withdraw human:dave's reject; counted 1/1 ["human:erin"]; rejecters []; authorized by people"#);
    // Nothing standing: a superseded or lapsed verdict, or none at all.
    let lapsed = [Approval {
        lapsed_by: Some(9),
        ..verdict("human:dave", "h1", Approve, 5)
    }];
    assert_snapshot!(check(AwaitingApproval, SingleApprover, &lapsed, withdraw("human:dave")), @r#"awaiting_approval -> awaiting_approval (unchanged); verdict: none; counted 0/1 []; rejecters []"#);
    assert_snapshot!(check(AwaitingApproval, SingleApprover, &[], withdraw("human:erin")), @r#"awaiting_approval -> awaiting_approval (unchanged); verdict: none; counted 0/1 []; rejecters []"#);
    assert_snapshot!(check(Authorized, SingleApprover, &dave_approved, Event::Withdrawn { approver: "human:dave", head: "h0" }), @r#"refused (Conflict): head h0 is not the proposal's current head h1"#);
    assert_snapshot!(check(Merged, SingleApprover, &dave_approved, withdraw("human:dave")), @r#"refused (Conflict): the proposal is merged: it is final: nothing changes it any more"#);
}

/// Who is left to approve once the commits' authors are taken out: a named approver is
/// excluded (never silently: `excluded` says who), and a requirement or a tier the people
/// left cannot meet is listed, so the decision can say it cannot be authorized.
#[test]
fn approver_pool() {
    use Tier::*;
    let check = |tier: Tier, authors: &[&str]| {
        let authors: Vec<String> = authors.iter().map(|a| (*a).to_owned()).collect();
        let pool = countersign_lifecycle::pool(&record(tier), "agent:fixbot", &authors);
        format!(
            "eligible {:?} ({}); excluded {:?}; unmet {:?}; meetable {}",
            pool.eligible,
            pool.count(),
            pool.excluded,
            pool.unmet,
            pool.meetable()
        )
    };
    assert_snapshot!(check(ChangeControl, &[]), @r#"eligible ["human:dave", "human:erin"] (2); excluded []; unmet []; meetable true"#);
    // An author who is not an approver changes nothing; the agent never counted.
    assert_snapshot!(check(ChangeControl, &["human:carol", "email:x@y"]), @r#"eligible ["human:dave", "human:erin"] (2); excluded []; unmet []; meetable true"#);
    // Erin named as an author: one person left, change control needs two.
    assert_snapshot!(check(ChangeControl, &["human:Erin"]), @r#"eligible ["human:dave"] (1); excluded ["human:erin"]; unmet [("the tier", 1)]; meetable false"#);
    assert_snapshot!(check(SingleApprover, &["human:erin"]), @r#"eligible ["human:dave"] (1); excluded ["human:erin"]; unmet []; meetable true"#);
    // Both named: the payments requirement has nobody left either.
    assert_snapshot!(check(SingleApprover, &["human:erin", "human:dave"]), @r#"eligible [] (0); excluded ["human:dave", "human:erin"]; unmet [("component:default/payments", 1), ("the tier", 1)]; meetable false"#);
    assert_snapshot!(check(AutoMerge, &["human:erin"]), @r#"eligible ["human:dave"] (1); excluded ["human:erin"]; unmet []; meetable true"#);
}
