//! Policy assurance in the binary: `policy verify`, `policy diff`, and the text of the
//! section of an evaluation that shows approvers what a proposal editing the policy would
//! change.
//!
//! The proofs themselves are `countersign_policy::verify` and `diff`, and the section is
//! computed by `countersign_decide::policy_change`; this module reads policy directories and
//! properties files, and renders results. It decides nothing.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use countersign_decide::governed;
use countersign_decide::policy_change::{INVARIANTS_NOTE, PolicyChangeReport, solver};
use countersign_policy::{Outcome, PackDiff, PolicyPack, Verification, parse_properties};
use countersign_repo::WorkTree;

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
    let files = governed::read_policy_files(&source, &config.policy.dir, config.limits.file_bytes)?;
    crate::commands::note_untracked(&source.untracked_read());
    if files.is_empty() {
        return Ok((
            PolicyPack::default_pack(),
            "the embedded default pack".to_owned(),
        ));
    }
    Ok((PolicyPack::from_files(files)?, config.policy.dir.clone()))
}

fn pack_from_dir(dir: &Path) -> Result<PolicyPack> {
    let files = governed::read_policy_files(
        &WorkTree::open(dir)?,
        "",
        countersign_graph::Limits::default().file_bytes,
    )?;
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
