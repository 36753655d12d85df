//! From a configured repository and two commits to a decision: the diff from git objects,
//! the governed state read from the base, impact, plan and tier.
//!
//! FIXME(dedupe): this repeats the core of the binary's `evaluate.rs` and `governed.rs`
//! (about 60 lines) because the server must not depend on the binary; both should move into
//! one shared library crate. Evidence is not weighed here yet.

use std::path::Path;

use countersign_graph::{FileSource, GraphSettings, RecordingSource};
use countersign_policy::{DecisionInput, OwnerGroup, PolicyPack, Principal, Tier};
use countersign_repo::{CONFIG_FILE, Config, Repo};
use serde_json::{Value, json};

/// What the server keeps of a decision.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub base: String,
    pub head: String,
    pub tier: Tier,
    pub automated: bool,
    /// The decision record stored with the proposal and logged in the `decided` event.
    pub record: Value,
    /// The `proposed` event's data.
    pub proposed: Value,
}

/// Why no decision could be made: a bad revision, an empty diff, a broken governed state.
/// All are the proposer's input, so they are answered as 422.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PipelineError(String);

fn fail(context: &str) -> impl Fn(&dyn std::fmt::Display) -> PipelineError + '_ {
    move |e| PipelineError(format!("{context}: {e}"))
}

/// Decides the change `base..head` of the repository at `path` proposed by `author`. Blocking
/// (git and Cedar): run it off the async workers.
pub fn decide(
    repository: &str,
    path: &Path,
    base: &str,
    head: &str,
    author: &Principal,
) -> Result<Outcome, PipelineError> {
    let git = Repo::open(path).map_err(|e| fail("opening the repository")(&e))?;
    let base_id = git.resolve(base).map_err(|e| fail("base")(&e))?;
    let head_id = git.resolve(head).map_err(|e| fail("head")(&e))?;
    let changes = git.diff(&base_id, &head_id).map_err(|e| fail("diff")(&e))?;
    let tree = git
        .commit_tree(&base_id)
        .map_err(|e| fail("base tree")(&e))?;
    let source = RecordingSource::new(&tree);
    let context = "the governed state at the base";
    let config = read_config(&source).map_err(|e| fail(context)(&e))?;
    let build = countersign_graph::build(&source, &graph_settings(&config))
        .map_err(|e| fail(context)(&e))?;
    let pack = policy_pack(&source, &config.policy.dir)?;
    let graph = &build.graph;

    // A human name matching the configured agent patterns is the bot account it is.
    let author = match author {
        Principal::Human(name) if config.agents.is_agent(name) => Principal::Agent(name.clone()),
        other => other.clone(),
    };
    let paths = countersign_repo::changed_paths(&changes);
    let impact = countersign_graph::impact(graph, &paths);
    let plan = countersign_evidence::plan(
        &impact,
        |entity| {
            graph
                .find(entity)
                .and_then(|id| graph.node(id))
                .map(|node| node.suites.clone())
                .unwrap_or_default()
        },
        config.plan.depth,
    );
    let mut input = DecisionInput::new(&impact, author.clone());
    input.never_automate = config.never_automate.surfaces.clone();
    input.approver_pool = impact
        .owners
        .iter()
        .map(|owner| OwnerGroup {
            owner: owner.clone(),
            members: graph
                .members(owner)
                .into_iter()
                .filter_map(|id| graph.node(id))
                .map(|node| node.entity.clone())
                .filter(|user| !config.agents.is_agent(&user.name))
                .collect(),
        })
        .collect();
    let decision = countersign_policy::decide(&pack, &input);
    let tier = decision.tier;
    let automated = matches!(tier, Tier::AutoMerge | Tier::NotifyAndProceed);
    let eligible: Vec<String> = decision
        .approvals
        .eligible
        .iter()
        .map(|user| format!("human:{}", user.name))
        .collect();
    let reasons: Vec<Value> = decision
        .reasons
        .iter()
        .map(|r| json!({ "tier": r.tier.map(Tier::as_str), "message": r.message }))
        .collect();
    let suites: Vec<String> = plan.suites.iter().map(|s| s.suite.clone()).collect();
    let record = json!({
        "tier": tier.as_str(),
        "automated": automated,
        "approvals_required": decision.approvals.required,
        "eligible_approvers": eligible,
        "shortfall": decision.approvals.shortfall,
        "reasons": reasons,
        "validation_plan": suites,
        "graph_version": graph.version().to_string(),
        "policy_version": decision.policy_version,
    });
    let proposed = json!({
        "repository": repository,
        "base": base_id.as_str(),
        "head": head_id.as_str(),
        "author": author.to_string(),
        "changes": paths,
    });
    Ok(Outcome {
        base: base_id.as_str().to_owned(),
        head: head_id.as_str().to_owned(),
        tier,
        automated,
        record,
        proposed,
    })
}

fn read_config(source: &dyn FileSource) -> Result<Config, PipelineError> {
    match source
        .read(CONFIG_FILE)
        .map_err(|e| fail(CONFIG_FILE)(&e))?
    {
        None => Ok(Config::default()),
        Some(bytes) => {
            let text = String::from_utf8(bytes).map_err(|e| fail(CONFIG_FILE)(&e))?;
            Config::parse(&text).map_err(|e| fail(CONFIG_FILE)(&e))
        }
    }
}

fn policy_pack(source: &dyn FileSource, dir: &str) -> Result<PolicyPack, PipelineError> {
    let dir = dir.trim_end_matches('/');
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let mut files = Vec::new();
    for path in source.paths() {
        if !(path.starts_with(&prefix) && path.ends_with(".cedar")) {
            continue;
        }
        if let Some(bytes) = source.read(path).map_err(|e| fail(path)(&e))? {
            let text = String::from_utf8(bytes).map_err(|e| fail(path)(&e))?;
            files.push((path.clone(), text));
        }
    }
    if files.is_empty() {
        Ok(PolicyPack::default_pack())
    } else {
        PolicyPack::from_files(files).map_err(|e| fail("policy")(&e))
    }
}

fn graph_settings(config: &Config) -> GraphSettings {
    let mut governance_globs = config.governance.paths.clone();
    governance_globs.push(format!("{}/**", config.policy.dir.trim_end_matches('/')));
    GraphSettings {
        catalog_globs: config.graph.catalog.clone(),
        codeowners: config.graph.codeowners.clone(),
        governance_globs,
        never_automate: config
            .never_automate
            .paths
            .iter()
            .map(|(surface, globs)| (*surface, globs.clone()))
            .collect(),
        ..GraphSettings::default()
    }
}
