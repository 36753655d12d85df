//! Rendering a decision as text for people: the tier, why each less restrictive tier was
//! ruled out, what allowed the chosen one, and who must approve.
//!
//! Text only; the JSON form is the binary's declared wire format.

use std::fmt::Write as _;

use serde_json::Value;

use crate::decide::{Decision, Reason, ReasonEffect, ReasonSource};
use crate::tier::Tier;

/// A readable multi-line explanation of a decision.
pub fn explain_text(decision: &Decision) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "tier: {}", decision.tier);
    let _ = writeln!(out, "author: {}", decision.author);

    for tier in Tier::ALL.into_iter().filter(|t| *t <= decision.tier) {
        let permitted = decision.reasons.iter().any(|r| {
            r.tier == Some(tier)
                && r.effect == ReasonEffect::Permit
                && matches!(r.source, ReasonSource::Policy { .. })
        });
        let verdict = if tier == decision.tier {
            "chosen"
        } else if permitted {
            "permitted by policy, ruled out by an invariant below"
        } else {
            "ruled out"
        };
        let _ = writeln!(out, "{tier}: {verdict}");
        for reason in decision.reasons.iter().filter(|r| r.tier == Some(tier)) {
            if !matches!(reason.source, ReasonSource::Invariant { .. }) {
                line(&mut out, reason);
            }
        }
    }
    let raised: Vec<&Reason> = decision
        .reasons
        .iter()
        .filter(|r| matches!(r.source, ReasonSource::Invariant { .. }))
        .collect();
    if !raised.is_empty() {
        let _ = writeln!(out, "invariants (no policy can lift these):");
        for reason in raised {
            line(&mut out, reason);
        }
    }
    for reason in decision.reasons.iter().filter(|r| r.tier.is_none()) {
        let _ = writeln!(out, "note: {}", reason.message);
    }

    let approvals = &decision.approvals;
    let _ = write!(out, "approvals: {} human(s) required", approvals.required);
    if approvals.required > 0 {
        let _ = write!(out, "; eligible: {}", humans(&approvals.eligible));
        if approvals.shortfall > 0 {
            let _ = write!(
                out,
                "; SHORTFALL: {} more eligible human(s) needed",
                approvals.shortfall
            );
        }
    }
    let _ = writeln!(out);
    for r in &approvals.requirements {
        let _ = writeln!(
            out,
            "  requires {} of {} ({}): {}",
            r.min,
            r.subject,
            r.reasons.join(", "),
            if r.eligible.is_empty() {
                "NOBODY is eligible".to_owned()
            } else {
                humans(&r.eligible)
            }
        );
    }
    if !approvals.notify.is_empty() {
        let _ = writeln!(out, "notify: {}", refs(&approvals.notify));
    }
    if let Some(declared) = &decision.declared_tier {
        let _ = writeln!(
            out,
            "declared tier: {:?} ({})",
            declared.value, declared.ignored
        );
    }
    let _ = writeln!(out, "policy version: {}", decision.policy_version);
    out
}

fn line(out: &mut String, reason: &Reason) {
    let source = match &reason.source {
        ReasonSource::Policy { id } => id.clone(),
        ReasonSource::Invariant { name } => format!("invariant {name}"),
        ReasonSource::Floor => "floor".to_owned(),
        ReasonSource::DefaultDeny => "no permit".to_owned(),
        ReasonSource::Evidence => "evidence".to_owned(),
    };
    let _ = write!(
        out,
        "  {} [{}] {}",
        reason.effect.as_str(),
        source,
        reason.message
    );
    if !reason.facts.is_empty() {
        let facts: Vec<String> = reason
            .facts
            .iter()
            .map(|(name, value)| format!("{name}={}", fact(value)))
            .collect();
        let _ = write!(out, " ({})", facts.join(", "));
    }
    let _ = writeln!(out);
}

fn fact(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(fact).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

/// People who may approve, as principals (`human:judy`).
fn humans(users: &[countersign_graph::EntityRef]) -> String {
    if users.is_empty() {
        return "none".to_owned();
    }
    users
        .iter()
        .map(|u| crate::Principal::of_user(u).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn refs(refs: &[countersign_graph::EntityRef]) -> String {
    if refs.is_empty() {
        return "none".to_owned();
    }
    refs.iter().map(entity_ref).collect::<Vec<_>>().join(", ")
}

/// `kind:namespace/name`, the form Backstage writes.
pub(crate) fn entity_ref(r: &countersign_graph::EntityRef) -> String {
    format!("{}:{}/{}", kind_name(r.kind), r.namespace, r.name)
}

fn kind_name(kind: countersign_graph::Kind) -> &'static str {
    use countersign_graph::Kind;
    match kind {
        Kind::Component => "component",
        Kind::Api => "api",
        Kind::Resource => "resource",
        Kind::System => "system",
        Kind::Domain => "domain",
        Kind::Group => "group",
        Kind::User => "user",
        Kind::Location => "location",
    }
}
