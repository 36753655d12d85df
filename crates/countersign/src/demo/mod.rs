//! `countersign demo`: materializes the embedded Acme Shop system as a git repository,
//! proposes each demo change on its own branch and decides it through the same path as
//! `countersign evaluate --base main --head demo/<id>`; `live` then replays the same changes
//! through a running server, and `fleet` closes the loop on it (runners, a scheduled
//! regression, a finding, the fix, verified).
//!
//! The data lives in `scenario`; this module only writes commits and collects decisions.

pub mod fleet;
pub mod live;
pub mod scenario;

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use countersign_policy::{Decision, ReasonEffect, ReasonSource, Tier};
use countersign_repo::{CommitId, RepoWriter};
use serde_json::json;

use countersign_decide::evaluate::{self, ChangeSource, Evaluation, Proposer};
use scenario::{BASE, CHANGES, DemoChange, Edit};

/// The base commit's author: the platform team set the repository up.
const BASE_AUTHOR: &str = "Acme Platform <platform@acme.example>";
/// 2026-01-05T09:00:00Z; fixed so the demo repository's commit ids are reproducible.
const BASE_TIME: i64 = 1_767_603_600;

/// One decided demo change.
pub struct DecidedChange {
    pub change: &'static DemoChange,
    pub head: CommitId,
    pub evaluation: Evaluation,
}

/// The materialized repository and every decision.
pub struct DemoOutcome {
    pub dir: PathBuf,
    pub base: CommitId,
    pub decided: Vec<DecidedChange>,
}

/// Writes the demo repository into `dir` (or a new kept temporary directory) and decides
/// every change.
pub fn run(dir: Option<&Path>) -> Result<DemoOutcome> {
    let dir = match dir {
        Some(dir) => {
            if dir.exists() && dir.read_dir()?.next().is_some() {
                bail!(
                    "{} is not empty; give --dir a new or empty directory",
                    dir.display()
                );
            }
            dir.to_path_buf()
        }
        None => tempfile::Builder::new()
            .prefix("countersign-demo-")
            .tempdir()
            .context("creating a temporary directory for the demo repository")?
            .keep(),
    };
    let (base, heads) = materialize(&dir)?;
    let mut decided = Vec::with_capacity(CHANGES.len());
    for (change, head) in CHANGES.iter().zip(heads) {
        let proposer = Proposer {
            author: change.author.to_string(),
            declared_tier: change.declared_tier.map(str::to_string),
            dispatched_by: None,
        };
        let source = ChangeSource::Commits {
            base: base.as_str().to_string(),
            head: head.as_str().to_string(),
        };
        let evaluation = evaluate::evaluate(&dir, source, &proposer)
            .with_context(|| format!("deciding demo change {}", change.id))?;
        decided.push(DecidedChange {
            change,
            head,
            evaluation,
        });
    }
    Ok(DemoOutcome { dir, base, decided })
}

/// Commits the base on `main` and each change on `demo/<id>` on top of it.
fn materialize(dir: &Path) -> Result<(CommitId, Vec<CommitId>)> {
    let mut writer = RepoWriter::init(dir)?;
    let files = BASE.iter().map(|f| (f.path, Some(f.contents)));
    let base = writer.commit(files, "Acme Shop monorepo", BASE_AUTHOR, BASE_TIME)?;
    let mut heads = Vec::with_capacity(CHANGES.len());
    for (index, change) in CHANGES.iter().enumerate() {
        let mut entries: Vec<(&str, Option<&str>)> = Vec::new();
        for edit in change.edits {
            match *edit {
                Edit::Write { path, contents } => entries.push((path, Some(contents))),
                Edit::Delete { path } => entries.push((path, None)),
                Edit::Rename { from, to } => {
                    let contents = BASE
                        .iter()
                        .find(|f| f.path == from)
                        .with_context(|| format!("demo change {}: no base file {from}", change.id))?
                        .contents;
                    entries.push((from, None));
                    entries.push((to, Some(contents)));
                }
            }
        }
        let author = commit_author(change.author);
        let time = BASE_TIME + 3_600 * (index as i64 + 1);
        let branch = format!("refs/heads/demo/{}", change.id);
        heads.push(writer.commit_on(&branch, &base, entries, change.title, &author, time)?);
    }
    writer.write_worktree(&base)?;
    Ok((base, heads))
}

/// `agent:fixbot` → `fixbot <fixbot@agents.acme.example>`, `human:alice` → `alice <alice@acme.example>`.
fn commit_author(principal: &str) -> String {
    match principal.split_once(':') {
        Some(("agent", name)) => format!("{name} <{name}@agents.acme.example>"),
        Some((_, name)) => format!("{name} <{name}@acme.example>"),
        None => format!("{principal} <{principal}@acme.example>"),
    }
}

/// The one reason that best explains the chosen tier: an invariant that raised it, else
/// what ruled out the next less restrictive tier, else the permit of the tier itself.
pub fn headline(decision: &Decision) -> String {
    let raised = decision
        .reasons
        .iter()
        .find(|r| r.effect == ReasonEffect::Raise);
    let below = less_restrictive(decision.tier);
    let ruled_out = below.and_then(|below| {
        decision.reasons.iter().find(|r| {
            r.tier == Some(below)
                && (r.effect == ReasonEffect::Forbid || r.source == ReasonSource::DefaultDeny)
        })
    });
    let permit = decision
        .reasons
        .iter()
        .find(|r| r.tier == Some(decision.tier) && r.effect == ReasonEffect::Permit);
    raised
        .or(ruled_out)
        .or(permit)
        .map(|r| r.message.clone())
        .unwrap_or_default()
}

fn less_restrictive(tier: Tier) -> Option<Tier> {
    match tier {
        Tier::AutoMerge => None,
        Tier::NotifyAndProceed => Some(Tier::AutoMerge),
        Tier::SingleApprover => Some(Tier::NotifyAndProceed),
        Tier::ChangeControl => Some(Tier::SingleApprover),
    }
}

impl DemoOutcome {
    /// The decisions as a table, for people.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "countersign demo: Acme Shop, {} changes proposed on {}\n",
            self.decided.len(),
            self.dir.display()
        );
        let _ = writeln!(
            out,
            "{:<3} {:<46} {:<18} {:>5} {:>7} {:>7}  {:<18} why",
            "#", "change", "author", "files", "touched", "reached", "tier"
        );
        for (index, d) in self.decided.iter().enumerate() {
            let impact = &d.evaluation.impact;
            let _ = writeln!(
                out,
                "{:<3} {:<46} {:<18} {:>5} {:>7} {:>7}  {:<18} {}",
                index + 1,
                clip(d.change.title, 46),
                clip(d.change.author, 18),
                impact.changed_paths.len(),
                impact.touched.len(),
                impact.blast_radius.len(),
                d.evaluation.decision.tier.as_str(),
                headline(&d.evaluation.decision),
            );
        }
        let automated = self
            .decided
            .iter()
            .filter(|d| d.evaluation.decision.tier.is_automated())
            .count();
        let _ = writeln!(
            out,
            "\n{automated} of {} changes take an automated route; the rest wait for named humans.",
            self.decided.len()
        );
        if let Some(first) = self
            .decided
            .iter()
            .find(|d| !d.evaluation.decision.tier.is_automated())
        {
            let _ = writeln!(
                out,
                "Explain one:  countersign evaluate --repo {} --base main --head demo/{} --author {}",
                self.dir.display(),
                first.change.id,
                first.change.author
            );
        }
        out
    }

    pub fn json(&self) -> serde_json::Value {
        json!({
            "repository": self.dir.display().to_string(),
            "base": self.base.as_str(),
            "changes": self.decided.iter().map(|d| json!({
                "id": d.change.id,
                "title": d.change.title,
                "branch": format!("demo/{}", d.change.id),
                "head": d.head.as_str(),
                // What PRODUCT.md's tier table leads a reader to expect; never an input.
                "expected_tier": d.change.expect,
                "decision": &d.evaluation.report,
            })).collect::<Vec<_>>(),
        })
    }
}

fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let kept: String = text.chars().take(width - 1).collect();
        format!("{kept}…")
    }
}
