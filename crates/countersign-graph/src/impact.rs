//! Impact of a change: the nodes its paths touch and its blast radius (transitive
//! dependents through dependsOn and provided/consumed APIs).
//!
//! Impact only reports facts; what they mean for approval is countersign-policy's business.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::graph::SystemGraph;
use crate::model::{Criticality, EntityRef, Kind, NodeId, Surface};

/// A node whose files the change edits.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TouchedNode {
    pub entity: EntityRef,
    pub criticality: Criticality,
    /// The changed paths that map to this node.
    pub paths: Vec<String>,
}

/// A node reached through the dependency edges, not touched directly.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReachedNode {
    pub entity: EntityRef,
    pub criticality: Criticality,
    /// Hops from the nearest touched node (1 = a direct dependent).
    pub distance: u32,
    /// The chain from a touched node to this one, touched node first.
    pub via: Vec<EntityRef>,
}

/// Everything the decision needs to know about where a change lands.
/// Serializes with refs as strings (`component:default/payments-api`) and enums in
/// kebab-case; field names as below.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Impact {
    /// The changed paths, sorted and de-duplicated.
    pub changed_paths: Vec<String>,
    pub touched: Vec<TouchedNode>,
    /// Transitive dependents of the touched nodes, excluding the touched nodes.
    pub blast_radius: Vec<ReachedNode>,
    /// Highest criticality among touched nodes (`None` when nothing maps).
    pub max_criticality_touched: Option<Criticality>,
    /// Highest criticality among touched and reached nodes.
    pub max_criticality_reached: Option<Criticality>,
    /// Critical nodes touched or reached.
    pub critical_reached: Vec<EntityRef>,
    /// Revenue-path nodes touched or reached.
    pub revenue_path_reached: Vec<EntityRef>,
    pub surfaces_touched: BTreeSet<Surface>,
    /// Surfaces of touched and reached nodes.
    pub surfaces_reached: BTreeSet<Surface>,
    /// Resources (databases, queues, buckets) touched.
    pub data_stores_touched: Vec<EntityRef>,
    /// Owning groups/users of the touched nodes.
    pub owners: Vec<EntityRef>,
    /// Changed paths that map to no node.
    pub unmapped: Vec<String>,
    /// Changed paths that are countersign's own governance files (config, policy,
    /// catalog, CODEOWNERS, configured governance globs).
    pub governance_paths: Vec<String>,
}

/// Marks a node the walk has not reached (and the parent of a touched node).
const UNSEEN: u32 = u32::MAX;

/// Where a change lands: maps `changed_paths` onto `graph` and walks the dependents.
///
/// Blast radius is a breadth-first walk of [`SystemGraph::dependents`] from every touched
/// node at once (so `distance` is to the nearest touched node and `via` is a shortest
/// chain). Surfaces touched are those of touched nodes, plus `governance` for governance
/// paths, plus any never-automate glob's surface. Owners are the owners of touched nodes
/// and the CODEOWNERS owners of the changed paths.
pub fn impact<S: AsRef<str>>(graph: &SystemGraph, changed_paths: &[S]) -> Impact {
    let mut paths: Vec<String> = changed_paths
        .iter()
        .map(|p| p.as_ref().to_string())
        .collect();
    paths.sort();
    paths.dedup();

    let mut touched: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
    let mut out = Impact::default();
    let mut owners: BTreeSet<EntityRef> = BTreeSet::new();
    for path in &paths {
        let nodes = graph.map_path(path);
        // Governance files belong to the governance surface even when no entity claims
        // them, so they are not "unmapped": what they affect is known, and it is everything.
        if nodes.is_empty() && !graph.is_governance(path) {
            out.unmapped.push(path.clone());
        }
        for id in nodes {
            touched.entry(id).or_default().push(path.clone());
        }
        if graph.is_governance(path) {
            out.governance_paths.push(path.clone());
            out.surfaces_touched.insert(Surface::Governance);
        }
        out.surfaces_touched
            .extend(graph.never_automate_surfaces(path));
        owners.extend(graph.owners_of_path(path));
    }

    // Breadth-first from all touched nodes; `parent` rebuilds each shortest `via` chain.
    // Dense arrays indexed by node id: a blast radius can be thousands of nodes and this
    // is the hot path of every decision, so no hashing per visit.
    let n = graph.nodes().len();
    let mut parent: Vec<u32> = vec![UNSEEN; n];
    let mut distance: Vec<u32> = vec![UNSEEN; n];
    for &id in touched.keys() {
        distance[id.0 as usize] = 0;
    }
    let mut queue: VecDeque<NodeId> = touched.keys().copied().collect();
    let mut reached: Vec<NodeId> = Vec::new();
    while let Some(id) = queue.pop_front() {
        let d = distance[id.0 as usize];
        for &next in graph.dependents(id) {
            let slot = &mut distance[next.0 as usize];
            if *slot == UNSEEN {
                *slot = d + 1;
                parent[next.0 as usize] = id.0;
                reached.push(next);
                queue.push_back(next);
            }
        }
    }

    let mut critical = BTreeSet::new();
    let mut revenue = BTreeSet::new();
    for (&id, node_paths) in &touched {
        let Some(n) = graph.node(id) else { continue };
        out.surfaces_touched.extend(n.surfaces.iter().copied());
        out.max_criticality_touched = out.max_criticality_touched.max(Some(n.criticality));
        if n.entity.kind == Kind::Resource {
            out.data_stores_touched.push(n.entity.clone());
        }
        owners.extend(n.owner.clone());
        out.touched.push(TouchedNode {
            entity: n.entity.clone(),
            criticality: n.criticality,
            paths: node_paths.clone(),
        });
    }
    for &id in &reached {
        let Some(n) = graph.node(id) else { continue };
        let d = distance[id.0 as usize];
        let mut via = Vec::with_capacity(d as usize + 1);
        let mut cur = id.0;
        while cur != UNSEEN {
            if let Some(c) = graph.node(NodeId(cur)) {
                via.push(c.entity.clone());
            }
            cur = parent[cur as usize];
        }
        via.reverse();
        out.blast_radius.push(ReachedNode {
            entity: n.entity.clone(),
            criticality: n.criticality,
            distance: d,
            via,
        });
    }
    out.surfaces_reached = out.surfaces_touched.clone();
    for id in touched.keys().chain(reached.iter()) {
        let Some(n) = graph.node(*id) else { continue };
        out.max_criticality_reached = out.max_criticality_reached.max(Some(n.criticality));
        out.surfaces_reached.extend(n.surfaces.iter().copied());
        if n.criticality == Criticality::Critical {
            critical.insert(n.entity.clone());
        }
        if n.revenue_path {
            revenue.insert(n.entity.clone());
        }
    }
    out.blast_radius
        .sort_by(|a, b| (a.distance, &a.entity).cmp(&(b.distance, &b.entity)));
    out.touched.sort_by(|a, b| a.entity.cmp(&b.entity));
    out.data_stores_touched.sort();
    out.critical_reached = critical.into_iter().collect();
    out.revenue_path_reached = revenue.into_iter().collect();
    out.owners = owners.into_iter().collect();
    out.changed_paths = paths;
    out
}
