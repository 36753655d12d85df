//! The governed state of one snapshot: its config, system graph and policy pack.
//!
//! Whoever judges a change loads this from the *base* snapshot, never from the head, so a
//! change cannot rewrite the rules that judge it. This module only wires the crates
//! together; it parses nothing itself.

use crate::error::{Classify, Result, bail};
use countersign_graph::{BuildOutput, FileSource, GraphSettings, SystemGraph};
use countersign_policy::{OwnerGroup, PolicyPack};
use countersign_repo::{CONFIG_FILE, Config};

/// Config, graph and policy read from one snapshot.
pub struct GovernedState {
    pub config: Config,
    pub build: BuildOutput,
    pub pack: PolicyPack,
    /// The catalog's `countersign.dev/paths` globs that match no file of the snapshot,
    /// found once per load (a scan of the tracked files), reported with every decision.
    pub dead_globs: Vec<countersign_graph::check::DeadGlob>,
}

impl GovernedState {
    pub fn graph(&self) -> &SystemGraph {
        &self.build.graph
    }
}

/// Reads `countersign.toml` (or the defaults), builds the graph and loads the policy pack.
pub fn load(source: &dyn FileSource) -> Result<GovernedState> {
    let config = read_config(source)?;
    let build = countersign_graph::build(source, &graph_settings(&config))?;
    let policy_files = read_policy_files(source, &config.policy.dir, config.limits.file_bytes)?;
    let pack = if policy_files.is_empty() {
        PolicyPack::default_pack()
    } else {
        PolicyPack::from_files(policy_files)?
    };
    let dead_globs = countersign_graph::check::dead_globs(&build.graph, &build.tracked);
    Ok(GovernedState {
        config,
        build,
        pack,
        dead_globs,
    })
}

/// What `graph check` reports of the snapshot `source` whose governed state is `state`: the
/// graph's own findings (`countersign_graph::check`) and the catalog Users' signing keys that
/// do not parse, which the graph crate leaves to this one (it knows no key format). An
/// error either way: a key that does not parse makes every decision against the catalog
/// refuse it.
pub fn check(
    source: &dyn FileSource,
    state: &GovernedState,
) -> Result<countersign_graph::check::CheckReport> {
    let mut report = countersign_graph::check::check(&state.build);
    report
        .diagnostics
        .extend(crate::people::key_diagnostics(source, "the snapshot")?);
    report.diagnostics.sort();
    report.diagnostics.dedup();
    Ok(report)
}

/// Reads `countersign.toml`, bounded by the default `file_bytes` (the file cannot raise
/// its own limit).
pub fn read_config(source: &dyn FileSource) -> Result<Config> {
    match source.read(CONFIG_FILE, countersign_graph::Limits::default().file_bytes)? {
        None => Ok(Config::default()),
        Some(bytes) => {
            let text =
                String::from_utf8(bytes).invalid(|| format!("{CONFIG_FILE} is not valid UTF-8"))?;
            Ok(Config::parse(&text)?)
        }
    }
}

/// The `.cedar` files under the policy directory, sorted by path, each at most `max_bytes`.
pub fn read_policy_files(
    source: &dyn FileSource,
    dir: &str,
    max_bytes: u64,
) -> Result<Vec<(String, String)>> {
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
        let Some(bytes) = source.read(path, max_bytes)? else {
            continue;
        };
        match String::from_utf8(bytes) {
            Ok(text) => files.push((path.clone(), text)),
            Err(_) => bail!("{path}: policy file is not valid UTF-8"),
        }
    }
    Ok(files)
}

pub fn graph_settings(config: &Config) -> GraphSettings {
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
        limits: config.limits,
        ..GraphSettings::default()
    }
}

/// Fail closed on whatever reader comes next: a changed path that loading the governed
/// state read (or looked for and missed), other than a workspace manifest (code, not a
/// rule), is a governance path even when no graph rule names it.
pub fn mark_read_rules<'a>(
    impact: &mut countersign_graph::Impact,
    graph: &SystemGraph,
    reads: impl IntoIterator<Item = &'a String>,
) {
    let reads: std::collections::BTreeSet<&str> = reads
        .into_iter()
        .map(String::as_str)
        .filter(|p| !countersign_graph::workspace::is_manifest(p))
        .collect();
    let mut owners: std::collections::BTreeSet<countersign_graph::EntityRef> =
        impact.governance_owners.iter().cloned().collect();
    for path in &impact.changed_paths {
        if reads.contains(path.as_str()) && !impact.governance_paths.contains(path) {
            impact.governance_paths.push(path.clone());
            impact.unmapped.retain(|p| p != path);
            owners.extend(graph.owners_of_path(path));
        }
    }
    if !impact.governance_paths.is_empty() {
        impact.governance_paths.sort();
        impact
            .surfaces_touched
            .insert(countersign_graph::Surface::Governance);
        impact
            .surfaces_reached
            .insert(countersign_graph::Surface::Governance);
        impact.governance_owners = owners.into_iter().collect();
    }
}

/// The owners of the touched nodes with their human members, for the approval requirement.
///
/// A catalog User whose name matches the configured agent patterns is a bot account and is
/// never offered as an approver.
pub fn approver_pool(
    graph: &SystemGraph,
    config: &Config,
    impact: &countersign_graph::Impact,
) -> Vec<OwnerGroup> {
    impact
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
        .collect()
}
