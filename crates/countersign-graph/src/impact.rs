//! Impact of a change: the nodes its paths touch and its blast radius (transitive
//! dependents through dependsOn and provided/consumed APIs).
//!
//! Impact only reports facts; what they mean for approval is countersign-policy's business.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::graph::SystemGraph;
use crate::model::{Criticality, EntityRef, Kind, NodeId, Surface};

/// A node whose files the change edits.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TouchedNode {
    pub entity: EntityRef,
    pub criticality: Criticality,
    /// The changed paths that map to this node.
    pub paths: Vec<String>,
    /// Who owns what the change edits here: the node's owner and the CODEOWNERS owners of
    /// its changed paths, sorted. The people who answer for this node's part of a change.
    pub owners: Vec<EntityRef>,
    /// The node's surfaces and those of never-automate globs matching its changed paths.
    pub surfaces: BTreeSet<Surface>,
}

/// A node reached through the dependency edges, not touched directly.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReachedNode {
    pub entity: EntityRef,
    pub criticality: Criticality,
    /// Hops from the nearest touched node (1 = a direct dependent).
    pub distance: u32,
    /// The node before this one on a shortest chain from a touched node (that touched node
    /// itself when `distance` is 1): one edge of the walk's predecessor tree. Whole chains
    /// would make an impact quadratic in a long dependency chain; [`Impact::chains`]
    /// renders them, bounded, when they are shown.
    pub previous: EntityRef,
}

/// A node that uses a touched node only in its own tests and tooling (a workspace
/// dev-dependency). Its suites are planned; it is not in the blast radius, so its
/// criticality and surfaces do not reach the decision.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct DevDependent {
    pub entity: EntityRef,
    /// The touched node it dev-depends on (the first, in entity order, when several).
    pub of: EntityRef,
}

/// A shortest chain from a touched node to a reached one, bounded for display: `head`
/// starts at the touched node, `tail` ends at the reached node, and the `omitted` nodes
/// between them are left out. When `omitted` is 0, `head` is the whole chain and `tail`
/// is empty.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Chain {
    pub head: Vec<EntityRef>,
    pub omitted: u32,
    pub tail: Vec<EntityRef>,
}

impl Chain {
    /// The nodes shown, touched node first (the gap, if any, is after `head`).
    pub fn shown(&self) -> impl Iterator<Item = &EntityRef> {
        self.head.iter().chain(&self.tail)
    }
}

/// How many nodes of a chain are shown at most ([`Impact::chains`]): half from the touched
/// end, half from the reached end. Real chains are a handful of nodes; a longer one is a
/// generated or hostile catalog, whose output must stay linear in its size.
pub const CHAIN_SHOWN: usize = 8;

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
    /// Nodes that dev-depend on a touched node and are neither touched nor reached, sorted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dev_dependents: Vec<DevDependent>,
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
    /// The CODEOWNERS owners of the governance paths, sorted.
    pub governance_owners: Vec<EntityRef>,
    /// The CODEOWNERS owners of the unmapped paths, sorted.
    pub unmapped_owners: Vec<EntityRef>,
}

/// Marks a node the walk has not reached (and the parent of a touched node).
const UNSEEN: u32 = u32::MAX;

/// Where a change lands: maps `changed_paths` onto `graph` and walks the dependents.
///
/// Blast radius is a breadth-first walk of [`SystemGraph::dependents`] from every touched
/// node at once (so `distance` is to the nearest touched node and `previous` is on a
/// shortest chain). Time and memory are linear in the nodes and edges reached. Surfaces touched are those of touched nodes, plus `governance` for governance
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
    let mut governance_owners: BTreeSet<EntityRef> = BTreeSet::new();
    let mut unmapped_owners: BTreeSet<EntityRef> = BTreeSet::new();
    // CODEOWNERS owners by changed path, read once: touched nodes need them again below.
    let mut owners_by_path: HashMap<&str, Vec<EntityRef>> = HashMap::new();
    for path in &paths {
        let nodes = graph.map_path(path);
        let path_owners = graph.owners_of_path(path);
        owners_by_path.insert(path.as_str(), path_owners.clone());
        // Governance files belong to the governance surface even when no entity claims
        // them, so they are not "unmapped": what they affect is known, and it is everything.
        if nodes.is_empty() && !graph.is_governance(path) {
            out.unmapped.push(path.clone());
            unmapped_owners.extend(path_owners.iter().cloned());
        }
        for id in nodes {
            touched.entry(id).or_default().push(path.clone());
        }
        if graph.is_governance(path) {
            out.governance_paths.push(path.clone());
            out.surfaces_touched.insert(Surface::Governance);
            governance_owners.extend(path_owners.iter().cloned());
        }
        out.surfaces_touched
            .extend(graph.never_automate_surfaces(path));
        owners.extend(path_owners);
    }
    out.governance_owners = governance_owners.into_iter().collect();
    out.unmapped_owners = unmapped_owners.into_iter().collect();

    // Breadth-first from all touched nodes; `parent` is the predecessor tree.
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
        let mut node_owners: BTreeSet<EntityRef> = n.owner.iter().cloned().collect();
        let mut node_surfaces: BTreeSet<Surface> = n.surfaces.iter().copied().collect();
        for path in node_paths {
            node_owners.extend(
                owners_by_path
                    .get(path.as_str())
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
            node_surfaces.extend(graph.never_automate_surfaces(path));
        }
        out.touched.push(TouchedNode {
            entity: n.entity.clone(),
            criticality: n.criticality,
            paths: node_paths.clone(),
            owners: node_owners.into_iter().collect(),
            surfaces: node_surfaces,
        });
    }
    // The walk met nodes in distance order; within a distance, sort by id, which is entity
    // order (ids are assigned in sorted entity order), so no entity is compared.
    for level in reached.chunk_by_mut(|a, b| distance[a.0 as usize] == distance[b.0 as usize]) {
        level.sort_unstable();
    }
    for &id in &reached {
        let Some(n) = graph.node(id) else { continue };
        let Some(previous) = graph.node(NodeId(parent[id.0 as usize])) else {
            continue;
        };
        out.blast_radius.push(ReachedNode {
            entity: n.entity.clone(),
            criticality: n.criticality,
            distance: distance[id.0 as usize],
            previous: previous.entity.clone(),
        });
    }
    for &id in touched.keys() {
        let Some(of) = graph.node(id) else { continue };
        for &dev in graph.dev_dependents(id) {
            if distance[dev.0 as usize] != UNSEEN {
                continue;
            }
            // Marked so a node dev-depending on two touched nodes is listed once.
            distance[dev.0 as usize] = UNSEEN - 1;
            if let Some(n) = graph.node(dev) {
                out.dev_dependents.push(DevDependent {
                    entity: n.entity.clone(),
                    of: of.entity.clone(),
                });
            }
        }
    }
    out.dev_dependents.sort();
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
    out.touched.sort_by(|a, b| a.entity.cmp(&b.entity));
    out.data_stores_touched.sort();
    out.critical_reached = critical.into_iter().collect();
    out.revenue_path_reached = revenue.into_iter().collect();
    out.owners = owners.into_iter().collect();
    out.changed_paths = paths;
    out
}

impl Impact {
    /// The shortest chain to each node of [`Impact::blast_radius`], in the same order, each
    /// bounded to `max_shown` nodes (at least 4: two from each end).
    ///
    /// Follows the predecessor tree (`previous`) once for all nodes, parents before
    /// children, so the whole rendering is O(reached × `max_shown`) however long the
    /// chains are. A node whose `previous` names neither a touched nor a reached node
    /// (only possible in a hand-built `Impact`) gets a chain of itself after that name.
    pub fn chains(&self, max_shown: usize) -> Vec<Chain> {
        let max_shown = max_shown.max(4);
        let head_len = max_shown / 2;
        let tail_len = max_shown - head_len;
        let n = self.blast_radius.len();
        let index: HashMap<&EntityRef, usize> = self
            .blast_radius
            .iter()
            .enumerate()
            .map(|(i, r)| (&r.entity, i))
            .collect();
        // parent[i]: the reached node before i, or None when i hangs off a touched node.
        let parent: Vec<Option<usize>> = self
            .blast_radius
            .iter()
            .map(|r| index.get(&r.previous).copied())
            .collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut queue: VecDeque<usize> = VecDeque::new();
        for (i, p) in parent.iter().enumerate() {
            match p {
                Some(p) => children[*p].push(i),
                None => queue.push_back(i),
            }
        }
        // Per node, in tree order: its chain's length in nodes (touched node included) and
        // its ancestor at the end of the head (the chain's node number `head_len`, the node
        // itself when its chain is no longer).
        let mut length = vec![0usize; n];
        let mut anchor = vec![usize::MAX; n];
        while let Some(i) = queue.pop_front() {
            length[i] = parent[i].map_or(2, |p| length[p] + 1);
            anchor[i] = match parent[i] {
                Some(p) if length[i] > head_len => anchor[p],
                _ => i,
            };
            queue.extend(children[i].iter().copied());
        }
        // Up to `count` nodes ending at `from`, walking `previous`, touched node included
        // when reached; returned in chain order.
        let walk = |from: usize, count: usize| -> Vec<EntityRef> {
            let mut out = Vec::with_capacity(count);
            let mut cur = Some(from);
            while out.len() < count {
                let Some(i) = cur else { break };
                out.push(self.blast_radius[i].entity.clone());
                cur = parent[i];
                if cur.is_none() && out.len() < count {
                    out.push(self.blast_radius[i].previous.clone());
                }
            }
            out.reverse();
            out
        };
        (0..n)
            .map(|i| {
                let len = length[i];
                if len == 0 {
                    // Not reachable from a touched node through `previous`: a cycle or a
                    // dangling name in a hand-built impact.
                    let r = &self.blast_radius[i];
                    return Chain {
                        head: vec![r.previous.clone(), r.entity.clone()],
                        ..Chain::default()
                    };
                }
                if len <= max_shown {
                    return Chain {
                        head: walk(i, len),
                        ..Chain::default()
                    };
                }
                Chain {
                    head: walk(anchor[i], head_len),
                    omitted: u32::try_from(len - max_shown).unwrap_or(u32::MAX),
                    tail: walk(i, tail_len),
                }
            })
            .collect()
    }
}
