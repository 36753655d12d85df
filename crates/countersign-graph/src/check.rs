//! `graph check`: the findings of a build plus whole-graph ones — dependency cycles,
//! paths claimed by two nodes, and mapping coverage of the tracked files.
//!
//! It reports; it never fails and never changes the graph.

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, DiagnosticCode, Severity};
use crate::graph::{BuildOutput, SystemGraph};
use crate::model::{EntityRef, NodeId, SourceLocation};
use crate::repo_path;

/// Share of tracked files that map to at least one node.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Coverage {
    pub tracked: usize,
    pub mapped: usize,
    /// `mapped / tracked`, 1.0 for an empty repository.
    pub ratio: f64,
    pub unmapped: Vec<String>,
}

/// A `countersign.dev/paths` glob that matches no tracked file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadGlob {
    pub entity: EntityRef,
    /// The glob as resolved against the descriptor's directory, repository-relative.
    pub glob: String,
    /// The entity's descriptor (file and the line of its document).
    pub location: SourceLocation,
    /// The root-anchored pattern (`/services/payments/**`) when the glob, read from the
    /// repository root rather than the descriptor's directory, matches files.
    pub did_you_mean: Option<String>,
}

impl DeadGlob {
    /// One line: `file:line: entity: ... matches no tracked file; did you mean ...?`
    pub fn message(&self) -> String {
        let hint = self
            .did_you_mean
            .as_ref()
            .map(|p| format!("; did you mean {p}?"))
            .unwrap_or_default();
        format!(
            "{}: `countersign.dev/paths` glob resolves to `{}`, which matches no tracked file{hint}",
            self.entity, self.glob
        )
    }
}

/// The `countersign.dev/paths` globs of `graph` that match none of `tracked`, with a hint
/// when the glob was probably meant from the repository root: a central
/// `catalog/system.yaml` writing `services/payments/**` means `catalog/services/payments/**`.
pub fn dead_globs(graph: &SystemGraph, tracked: &[String]) -> Vec<DeadGlob> {
    graph
        .dead_rules(tracked)
        .into_iter()
        .filter_map(|rule| {
            let node = graph.node(rule.node)?;
            let dir = repo_path::dir_of(&node.source.file);
            let did_you_mean = rule
                .glob
                .strip_prefix(dir)
                .and_then(|rest| rest.strip_prefix('/'))
                .filter(|_| !dir.is_empty())
                .filter(|rooted| matches_any(rooted, tracked))
                .map(|rooted| format!("/{rooted}"));
            Some(DeadGlob {
                entity: node.entity.clone(),
                glob: rule.glob.clone(),
                location: node.source.clone(),
                did_you_mean,
            })
        })
        .collect()
}

/// Whether `glob` (a path rule: a literal file or directory, or a pattern) matches a path.
fn matches_any(glob: &str, paths: &[String]) -> bool {
    if let Some(dir) = repo_path::literal_dir(glob) {
        return paths.iter().any(|p| {
            p == dir || dir.is_empty() || p.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
        });
    }
    let Ok(glob) = repo_path::glob(glob) else {
        return false;
    };
    let matcher = glob.compile_matcher();
    paths.iter().any(|p| matcher.is_match(p))
}

/// Everything `graph check` reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CheckReport {
    /// Sorted by severity, then code, then location.
    pub diagnostics: Vec<Diagnostic>,
    pub coverage: Coverage,
}

/// Checks a built graph.
pub fn check(output: &BuildOutput) -> CheckReport {
    let graph = &output.graph;
    let mut diagnostics = output.diagnostics.clone();
    diagnostics.extend(cycles(graph));

    let mut mapped = 0;
    let mut unmapped = Vec::new();
    let mut claimed_twice: BTreeMap<Vec<NodeId>, (usize, &str)> = BTreeMap::new();
    for path in &output.tracked {
        let nodes = graph.map_path(path);
        match nodes.len() {
            // Governance files map to the governance surface, see `impact`.
            0 if graph.is_governance(path) => mapped += 1,
            0 => unmapped.push(path.clone()),
            1 => mapped += 1,
            _ => {
                mapped += 1;
                let slot = claimed_twice.entry(nodes).or_insert((0, path.as_str()));
                slot.0 += 1;
            }
        }
    }
    for (nodes, (count, example)) in claimed_twice {
        let names: Vec<String> = nodes
            .iter()
            .filter_map(|&id| graph.node(id))
            .map(|n| n.entity.to_string())
            .collect();
        diagnostics.push(Diagnostic::new(
            Severity::Warning,
            DiagnosticCode::PathClaimedTwice,
            format!(
                "{count} file(s), e.g. `{example}`, are claimed equally by {}",
                names.join(" and ")
            ),
            nodes
                .first()
                .and_then(|&id| graph.node(id))
                .map(|n| n.source.clone()),
        ));
    }
    for dead in dead_globs(graph, &output.tracked) {
        diagnostics.push(Diagnostic::new(
            Severity::Error,
            DiagnosticCode::DeadGlob,
            dead.message(),
            Some(dead.location.clone()),
        ));
    }
    if !unmapped.is_empty() {
        diagnostics.push(Diagnostic::new(
            Severity::Info,
            DiagnosticCode::Unmapped,
            format!("{} tracked file(s) map to no node", unmapped.len()),
            None,
        ));
    }
    diagnostics.sort();
    diagnostics.dedup();
    let tracked = output.tracked.len();
    #[allow(clippy::cast_precision_loss)] // File counts are far below 2^52.
    let ratio = if tracked == 0 {
        1.0
    } else {
        mapped as f64 / tracked as f64
    };
    CheckReport {
        diagnostics,
        coverage: Coverage {
            tracked,
            mapped,
            ratio,
            unmapped,
        },
    }
}

/// One warning per strongly connected component of the dependency graph that has a
/// cycle, showing one concrete cycle through its smallest node.
fn cycles(graph: &SystemGraph) -> Vec<Diagnostic> {
    let n = graph.nodes().len();
    // Iterative Tarjan, so a 100k-node chain cannot overflow the stack.
    let mut index = vec![u32::MAX; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<NodeId> = Vec::new();
    let mut next = 0u32;
    let mut out = Vec::new();
    for root in 0..n {
        if index[root] != u32::MAX {
            continue;
        }
        let mut call: Vec<(NodeId, usize)> =
            vec![(NodeId(u32::try_from(root).unwrap_or(u32::MAX)), 0)];
        while let Some(&mut (v, ref mut child)) = call.last_mut() {
            let vi = v.0 as usize;
            if *child == 0 && index[vi] == u32::MAX {
                index[vi] = next;
                low[vi] = next;
                next += 1;
                stack.push(v);
                on_stack[vi] = true;
            }
            let deps = graph.dependencies(v);
            if let Some(&w) = deps.get(*child) {
                *child += 1;
                let wi = w.0 as usize;
                if index[wi] == u32::MAX {
                    call.push((w, 0));
                } else if on_stack[wi] {
                    low[vi] = low[vi].min(index[wi]);
                }
                continue;
            }
            call.pop();
            if let Some(&(parent, _)) = call.last() {
                let pi = parent.0 as usize;
                low[pi] = low[pi].min(low[vi]);
            }
            if low[vi] == index[vi] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w.0 as usize] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                let self_loop = graph.dependencies(v).contains(&v);
                if component.len() > 1 || self_loop {
                    out.push(cycle_diagnostic(graph, component));
                }
            }
        }
    }
    out
}

/// Finds a shortest cycle from the smallest member back to itself inside the component.
fn cycle_diagnostic(graph: &SystemGraph, mut component: Vec<NodeId>) -> Diagnostic {
    component.sort_unstable();
    let start = component[0];
    let mut parent: BTreeMap<NodeId, NodeId> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    let mut end = None;
    'bfs: while let Some(v) = queue.pop_front() {
        for &w in graph.dependencies(v) {
            if w == start {
                end = Some(v);
                break 'bfs;
            }
            if component.binary_search(&w).is_ok() && !parent.contains_key(&w) {
                parent.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    let mut chain = vec![start];
    let mut cur = end.unwrap_or(start);
    while cur != start {
        chain.push(cur);
        cur = parent.get(&cur).copied().unwrap_or(start);
    }
    chain[1..].reverse();
    chain.push(start);
    let names: Vec<String> = chain
        .iter()
        .filter_map(|&id| graph.node(id))
        .map(|n| n.entity.to_string())
        .collect();
    Diagnostic::new(
        Severity::Warning,
        DiagnosticCode::Cycle,
        format!("dependency cycle: {}", names.join(" → ")),
        graph.node(start).map(|n| n.source.clone()),
    )
}
