//! The validation plan: which suites a change must pass, and why each is in the plan.
//!
//! A suite enters the plan because a node it exercises is touched by the change, is a
//! dependent of a touched node no further away than the configured depth, or dev-depends
//! on a touched node (its tests use it). The plan never
//! shrinks because a suite is slow or flaky: that is a policy question, not a planning one.

use std::collections::{BTreeMap, HashMap};

use countersign_graph::impact::{CHAIN_SHOWN, Chain};
use countersign_graph::{EntityRef, Impact, Kind};

/// Why a suite is in the plan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PlanReason {
    /// The suite exercises a node whose files the change edits.
    Touched { node: EntityRef },
    /// The suite exercises a dependent of a touched node, `distance` dependents away (API
    /// nodes on the way are not counted), reached through `via` (touched node first,
    /// bounded as [`Impact::chains`] bounds it).
    Dependent {
        node: EntityRef,
        distance: u32,
        via: Chain,
    },
    /// The suite exercises a node whose tests or tooling use the touched node `of` (a
    /// workspace dev-dependency): planned whatever the depth, since those tests are the
    /// nearest check of `of`'s behaviour.
    DevDependent { node: EntityRef, of: EntityRef },
}

/// One suite of the plan with every reason it was planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSuite {
    pub suite: String,
    pub reasons: Vec<PlanReason>,
}

/// The suites a change must pass, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationPlan {
    /// How far through dependents the plan reaches (1 = direct dependents).
    pub depth: u32,
    pub suites: Vec<PlannedSuite>,
    /// Touched nodes that no suite exercises: the plan cannot cover them.
    pub uncovered: Vec<EntityRef>,
}

/// Plans validation for `impact`. `suites_of` gives the suites that exercise a node (from
/// its `countersign.dev/suites` annotation); `depth` bounds how far dependents are planned.
pub fn plan(
    impact: &Impact,
    suites_of: impl Fn(&EntityRef) -> Vec<String>,
    depth: u32,
) -> ValidationPlan {
    let mut by_suite: BTreeMap<String, Vec<PlanReason>> = BTreeMap::new();
    let mut uncovered = Vec::new();
    for touched in &impact.touched {
        let suites = suites_of(&touched.entity);
        if suites.is_empty() {
            uncovered.push(touched.entity.clone());
        }
        for suite in suites {
            by_suite
                .entry(suite)
                .or_default()
                .push(PlanReason::Touched {
                    node: touched.entity.clone(),
                });
        }
    }
    // Hops follow the predecessor tree: a node's `previous` is nearer a touched node, so in
    // distance order it is counted first (a touched `previous` counts 0).
    let mut order: Vec<usize> = (0..impact.blast_radius.len()).collect();
    order.sort_by_key(|&i| impact.blast_radius[i].distance);
    let mut hops_to: HashMap<&EntityRef, u32> = HashMap::with_capacity(order.len());
    let mut chains: Option<Vec<Chain>> = None;
    for i in order {
        let reached = &impact.blast_radius[i];
        let hops = hops_to
            .get(&reached.previous)
            .copied()
            .unwrap_or(0)
            .saturating_add(dependent_hop(&reached.entity));
        hops_to.insert(&reached.entity, hops);
        if hops > depth {
            continue;
        }
        for suite in suites_of(&reached.entity) {
            let chains = chains.get_or_insert_with(|| impact.chains(CHAIN_SHOWN));
            by_suite
                .entry(suite)
                .or_default()
                .push(PlanReason::Dependent {
                    node: reached.entity.clone(),
                    distance: hops,
                    via: chains[i].clone(),
                });
        }
    }
    for dev in &impact.dev_dependents {
        for suite in suites_of(&dev.entity) {
            by_suite
                .entry(suite)
                .or_default()
                .push(PlanReason::DevDependent {
                    node: dev.entity.clone(),
                    of: dev.of.clone(),
                });
        }
    }
    let suites = by_suite
        .into_iter()
        .map(|(suite, mut reasons)| {
            reasons.sort();
            reasons.dedup();
            PlannedSuite { suite, reasons }
        })
        .collect();
    uncovered.sort();
    uncovered.dedup();
    ValidationPlan {
        depth,
        suites,
        uncovered,
    }
}

/// Hops from the touched node counted in dependents, not in graph edges: an API is the
/// conduit between its provider and its consumers, so passing through one costs nothing.
/// Otherwise depth 1 would plan the contract suite of the API but never its consumers.
fn dependent_hop(node: &EntityRef) -> u32 {
    u32::from(node.kind != Kind::Api)
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_graph::{Criticality, ReachedNode, TouchedNode};

    fn component(name: &str) -> EntityRef {
        EntityRef {
            kind: Kind::Component,
            namespace: "default".into(),
            name: name.into(),
        }
    }

    fn reached(name: &str, distance: u32, previous: &str) -> ReachedNode {
        ReachedNode {
            entity: component(name),
            criticality: Criticality::Low,
            distance,
            previous: component(previous),
        }
    }

    fn suites(node: &EntityRef) -> Vec<String> {
        match node.name.as_str() {
            "lib" => vec!["lib-unit".into()],
            "api" => vec!["api-contract".into(), "e2e".into()],
            "web" => vec!["e2e".into()],
            _ => vec![],
        }
    }

    fn impact() -> Impact {
        Impact {
            touched: vec![
                TouchedNode {
                    entity: component("lib"),
                    criticality: Criticality::Low,
                    paths: vec!["lib/a.rs".into()],
                    owners: Vec::new(),
                    surfaces: Default::default(),
                },
                TouchedNode {
                    entity: component("tool"),
                    criticality: Criticality::Low,
                    paths: vec!["tool/x".into()],
                    owners: Vec::new(),
                    surfaces: Default::default(),
                },
            ],
            blast_radius: vec![reached("api", 1, "lib"), reached("web", 2, "api")],
            ..Impact::default()
        }
    }

    fn names(plan: &ValidationPlan) -> Vec<&str> {
        plan.suites.iter().map(|s| s.suite.as_str()).collect()
    }

    #[test]
    fn depth_bounds_the_dependents_planned() {
        assert_eq!(names(&plan(&impact(), suites, 0)), ["lib-unit"]);
        assert_eq!(
            names(&plan(&impact(), suites, 1)),
            ["api-contract", "e2e", "lib-unit"]
        );
        let deep = plan(&impact(), suites, 2);
        let e2e = deep.suites.iter().find(|s| s.suite == "e2e").unwrap();
        assert_eq!(e2e.reasons.len(), 2, "planned for api and for web: {e2e:?}");
    }

    #[test]
    fn touched_nodes_without_suites_are_reported() {
        assert_eq!(plan(&impact(), suites, 1).uncovered, [component("tool")]);
    }

    #[test]
    fn an_api_between_provider_and_consumer_costs_no_depth() {
        let api = EntityRef {
            kind: Kind::Api,
            namespace: "default".into(),
            name: "api".into(),
        };
        let impact = Impact {
            touched: vec![TouchedNode {
                entity: component("lib"),
                criticality: Criticality::Low,
                paths: vec!["lib/a.rs".into()],
                owners: Vec::new(),
                surfaces: Default::default(),
            }],
            // The API itself has no suite here, so only its consumer is planned.
            blast_radius: vec![ReachedNode {
                entity: component("web"),
                criticality: Criticality::Low,
                distance: 2,
                previous: api,
            }],
            ..Impact::default()
        };
        let plan = plan(&impact, suites, 1);
        assert_eq!(names(&plan), ["e2e", "lib-unit"]);
        assert!(matches!(
            plan.suites[0].reasons[0],
            PlanReason::Dependent { distance: 1, .. }
        ));
    }

    #[test]
    fn a_dev_dependent_is_planned_whatever_the_depth() {
        let impact = Impact {
            dev_dependents: vec![countersign_graph::DevDependent {
                entity: component("web"),
                of: component("lib"),
            }],
            ..impact()
        };
        let plan = plan(&impact, suites, 0);
        assert_eq!(names(&plan), ["e2e", "lib-unit"]);
        assert_eq!(
            plan.suites[0].reasons,
            [PlanReason::DevDependent {
                node: component("web"),
                of: component("lib"),
            }]
        );
    }
}
