//! The policy-change section of an evaluation: what a proposal editing the policy directory
//! would put in force (head pack version, proofs, diff against the base's pack).
//!
//! Display only: the decision is always made with the base's policy. The proofs are
//! `countersign_policy::verify` and `diff`; this module finds the solver and wires them.

use std::path::PathBuf;

use crate::error::Result;
use countersign_policy::{Outcome, PolicyPack, SolverConfig};
use countersign_repo::{CommitId, Repo};
use schemars::JsonSchema;
use serde::Serialize;

use crate::governed;

/// What the Rust invariants add to any proof: printed with every verification.
pub const INVARIANTS_NOTE: &str = "the Rust invariants also hold at run time (never-automate surface, agent edits governance, agent edits build files, agent's unmapped files need an owner, unmapped files never auto-merge): no pack can lift them";

/// The solver from `CVC5`, else `cvc5` on `PATH`.
pub fn solver() -> SolverConfig {
    SolverConfig::new(std::env::var_os("CVC5").map(PathBuf::from))
}

/// What a proposal that edits the policy directory would put in force, for approvers.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
pub struct PolicyChangeReport {
    /// sha256 of the head's policy pack (shown only: the decision used the base's).
    pub new_policy_version: Option<String>,
    /// `verified`, `failed`, `unavailable` (no usable solver, or the new pack does not
    /// load), with `message` saying why.
    pub status: String,
    pub message: Option<String>,
    /// One line per property: `PROVED id` or `FAILED id: counterexample`.
    pub properties: Vec<String>,
    /// Whether the new pack is equivalent to the base's; `None` when not decided.
    pub equivalent: Option<bool>,
    /// Per tier the two packs route differently: a change where they differ.
    pub differences: Vec<String>,
}

/// The section for a change touching the policy directory, or `None` when it does not.
/// Never fails the evaluation: a missing solver or a broken new pack is reported in it.
pub fn policy_change(
    git: &Repo,
    head: &CommitId,
    base_pack: &PolicyPack,
    policy_dir: &str,
    changed: &[String],
) -> Option<PolicyChangeReport> {
    let dir = policy_dir.trim_end_matches('/');
    if !changed.iter().any(|p| p.starts_with(&format!("{dir}/"))) {
        return None;
    }
    let unavailable = |message: String| PolicyChangeReport {
        new_policy_version: None,
        status: "unavailable".to_owned(),
        message: Some(message),
        properties: Vec::new(),
        equivalent: None,
        differences: Vec::new(),
    };
    let new_pack = match head_pack(git, head, dir) {
        Ok(pack) => pack,
        Err(error) => {
            return Some(unavailable(format!(
                "the new policy does not load: {}",
                error.chain()
            )));
        }
    };
    let solver = solver();
    let verification = match countersign_policy::verify(&new_pack, &[], &solver) {
        Ok(v) => v,
        Err(error) => {
            let mut report = unavailable(format!("the new policy could not be verified: {error}"));
            report.new_policy_version = Some(new_pack.version().to_owned());
            return Some(report);
        }
    };
    let properties = verification
        .results
        .iter()
        .map(|r| match &r.outcome {
            Outcome::Holds => format!("PROVED {}", r.id),
            Outcome::Fails {
                tier,
                counterexample,
            } => format!(
                "FAILED {}: permits {tier} for {}",
                r.id,
                counterexample.describe()
            ),
        })
        .collect();
    let (equivalent, differences, message) =
        match countersign_policy::diff(base_pack, &new_pack, &solver) {
            Ok(diff) => (
                Some(diff.equivalent()),
                diff.differences
                    .iter()
                    .map(|d| {
                        format!(
                            "{}: old {}, new {}, for {}",
                            d.tier,
                            if d.old_permits { "permits" } else { "forbids" },
                            if d.new_permits { "permits" } else { "forbids" },
                            d.counterexample.describe()
                        )
                    })
                    .collect(),
                Some(INVARIANTS_NOTE.to_owned()),
            ),
            Err(error) => (
                None,
                Vec::new(),
                Some(format!("the diff could not be decided: {error}")),
            ),
        };
    Some(PolicyChangeReport {
        new_policy_version: Some(new_pack.version().to_owned()),
        status: if verification.holds() {
            "verified".to_owned()
        } else {
            "failed".to_owned()
        },
        message,
        properties,
        equivalent,
        differences,
    })
}

fn head_pack(git: &Repo, head: &CommitId, dir: &str) -> Result<PolicyPack> {
    let tree = git.commit_tree(head)?;
    let files =
        governed::read_policy_files(&tree, dir, countersign_graph::Limits::default().file_bytes)?;
    if files.is_empty() {
        return Ok(PolicyPack::default_pack());
    }
    Ok(PolicyPack::from_files(files)?)
}
