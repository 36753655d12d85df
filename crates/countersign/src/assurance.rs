//! Policy assurance in the binary: `policy verify`, `policy diff`, and the section of an
//! evaluation that shows approvers what a proposal editing the policy would change.
//!
//! The proofs themselves are `countersign_policy::verify` and `diff`; this module finds the
//! solver (`CVC5`, else `PATH`), reads policy directories and properties files, and renders
//! results. It decides nothing: the section it adds to an evaluation is for display only,
//! the decision is always made with the base's policy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use countersign_policy::{
    Outcome, PackDiff, PolicyPack, SolverConfig, Verification, parse_properties,
};
use countersign_repo::{CommitId, Repo, WorkTree};
use schemars::JsonSchema;
use serde::Serialize;

use crate::governed;

/// What the Rust invariants add to any proof: printed with every verification.
const INVARIANTS_NOTE: &str = "the Rust invariants also hold at run time (never-automate surface, agent edits governance, unmapped files never auto-merge): no pack can lift them";

/// The solver from `CVC5`, else `cvc5` on `PATH`.
pub fn solver() -> SolverConfig {
    SolverConfig::new(std::env::var_os("CVC5").map(PathBuf::from))
}

/// `countersign policy verify`.
pub fn verify_cmd(
    repo: &Path,
    policy: Option<&Path>,
    properties: Option<&Path>,
) -> Result<ExitCode> {
    let (pack, what) = load_pack(repo, policy)?;
    let extra = match properties {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading the properties file {}", file.display()))?;
            parse_properties(&file.display().to_string(), &text)?
        }
        None => Vec::new(),
    };
    let verification = countersign_policy::verify(&pack, &extra, &solver())?;
    print!("{}", render_verification(&verification, &what));
    Ok(if verification.holds() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `countersign policy diff OLD NEW`.
pub fn diff_cmd(old: &Path, new: &Path) -> Result<ExitCode> {
    let old_pack = pack_from_dir(old)?;
    let new_pack = pack_from_dir(new)?;
    let result = countersign_policy::diff(&old_pack, &new_pack, &solver())?;
    print!(
        "{}",
        render_diff(
            &result,
            &old.display().to_string(),
            &new.display().to_string()
        )
    );
    Ok(if result.equivalent() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn load_pack(repo: &Path, policy: Option<&Path>) -> Result<(PolicyPack, String)> {
    if let Some(dir) = policy {
        return Ok((pack_from_dir(dir)?, dir.display().to_string()));
    }
    let source = WorkTree::open(repo)?;
    let config = governed::read_config(&source)?;
    let files = governed::read_policy_files(&source, &config.policy.dir)?;
    if files.is_empty() {
        return Ok((
            PolicyPack::default_pack(),
            "the embedded default pack".to_owned(),
        ));
    }
    Ok((PolicyPack::from_files(files)?, config.policy.dir.clone()))
}

fn pack_from_dir(dir: &Path) -> Result<PolicyPack> {
    let files = governed::read_policy_files(&WorkTree::open(dir)?, "")?;
    if files.is_empty() {
        anyhow::bail!(
            "{}: no .cedar files in this policy directory",
            dir.display()
        );
    }
    PolicyPack::from_files(files).with_context(|| format!("loading {}", dir.display()))
}

pub fn render_verification(verification: &Verification, what: &str) -> String {
    let mut out = format!(
        "verifying {what} (policy {})\n",
        short(&verification.pack_version)
    );
    for result in &verification.results {
        match &result.outcome {
            Outcome::Holds => {
                out.push_str(&format!(
                    "  PROVED  {} ({}): {}\n",
                    result.id, result.source, result.reason
                ));
            }
            Outcome::Fails {
                tier,
                counterexample,
            } => {
                out.push_str(&format!(
                    "  FAILED  {} ({}, {}): {}\n          the pack permits {tier} for {}\n",
                    result.id,
                    result.source,
                    result.location,
                    result.reason,
                    counterexample.describe()
                ));
            }
        }
    }
    let failed = verification
        .results
        .iter()
        .filter(|r| r.outcome != Outcome::Holds)
        .count();
    out.push_str(&format!(
        "{} propert{} proved, {failed} failed, for every request environment of the schema, in {:.2} s with cvc5 {}\n{INVARIANTS_NOTE}\n",
        verification.results.len() - failed,
        if verification.results.len() - failed == 1 { "y" } else { "ies" },
        verification.elapsed.as_secs_f64(),
        verification.solver_version,
    ));
    out
}

pub fn render_diff(diff: &PackDiff, old: &str, new: &str) -> String {
    let mut out = if diff.equivalent() {
        format!("{old} and {new} are equivalent: every change takes the same tiers\n")
    } else {
        format!("{old} and {new} route changes differently:\n")
    };
    for difference in &diff.differences {
        let side = |permits: bool| {
            if permits {
                "permits"
            } else {
                "does not permit"
            }
        };
        out.push_str(&format!(
            "  {}: the old pack {} it and the new pack {} it for {}\n",
            difference.tier,
            side(difference.old_permits),
            side(difference.new_permits),
            difference.counterexample.describe()
        ));
    }
    out.push_str(&format!(
        "decided in {:.2} s with cvc5 {}\n",
        diff.elapsed.as_secs_f64(),
        diff.solver_version
    ));
    out
}

fn short(version: &str) -> &str {
    version.get(..12).unwrap_or(version)
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
                "the new policy does not load: {error:#}"
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
    let files = governed::read_policy_files(&tree, dir)?;
    if files.is_empty() {
        return Ok(PolicyPack::default_pack());
    }
    Ok(PolicyPack::from_files(files)?)
}

/// The section in text, for `render`.
pub fn render_policy_change(report: &PolicyChangeReport) -> String {
    let mut out = String::from(
        "\nThis change edits the policy. What it would put in force (shown only; this decision used the base's policy):\n",
    );
    if let Some(version) = &report.new_policy_version {
        out.push_str(&format!("  new policy {}\n", short(version)));
    }
    out.push_str(&format!("  verification: {}\n", report.status));
    for line in &report.properties {
        out.push_str(&format!("    {line}\n"));
    }
    match report.equivalent {
        Some(true) => out.push_str("  equivalent to the base's policy\n"),
        Some(false) => {
            out.push_str("  routes changes differently from the base's policy:\n");
            for line in &report.differences {
                out.push_str(&format!("    {line}\n"));
            }
        }
        None => {}
    }
    if let Some(message) = &report.message {
        out.push_str(&format!("  {message}\n"));
    }
    out
}
