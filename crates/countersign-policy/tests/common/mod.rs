//! Hand-made impacts for the decision tests: a tiny builder that computes the aggregate
//! fields the way the graph's impact does.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, dead_code)]

use std::collections::BTreeSet;

use countersign_graph::{Criticality, EntityRef, Impact, Kind, ReachedNode, Surface, TouchedNode};

pub fn entity(kind: Kind, name: &str) -> EntityRef {
    EntityRef {
        kind,
        namespace: "default".to_owned(),
        name: name.to_owned(),
    }
}

pub fn user(name: &str) -> EntityRef {
    entity(Kind::User, name)
}

pub fn group(name: &str) -> EntityRef {
    entity(Kind::Group, name)
}

/// A node of a hand-made impact.
#[derive(Debug, Clone)]
pub struct N {
    pub entity: EntityRef,
    pub criticality: Criticality,
    pub surfaces: BTreeSet<Surface>,
    pub revenue: bool,
    pub owner: Option<EntityRef>,
}

impl N {
    pub fn new(name: &str, criticality: Criticality) -> N {
        N {
            entity: entity(Kind::Component, name),
            criticality,
            surfaces: BTreeSet::new(),
            revenue: false,
            owner: None,
        }
    }
    pub fn owner(mut self, group_name: &str) -> N {
        self.owner = Some(group(group_name));
        self
    }
    pub fn surface(mut self, surface: Surface) -> N {
        self.surfaces.insert(surface);
        self
    }
    pub fn revenue(mut self) -> N {
        self.revenue = true;
        self
    }
    pub fn data_store(mut self) -> N {
        self.entity.kind = Kind::Resource;
        self
    }
}

/// A change: touched nodes, reached nodes, unmapped and governance paths.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub touched: Vec<N>,
    pub reached: Vec<N>,
    pub unmapped: Vec<String>,
    pub governance: Vec<String>,
}

impl Change {
    pub fn touch(nodes: impl IntoIterator<Item = N>) -> Change {
        Change {
            touched: nodes.into_iter().collect(),
            ..Change::default()
        }
    }
    pub fn reach(mut self, nodes: impl IntoIterator<Item = N>) -> Change {
        self.reached.extend(nodes);
        self
    }
    pub fn unmapped<'a>(mut self, paths: impl IntoIterator<Item = &'a str>) -> Change {
        self.unmapped.extend(paths.into_iter().map(str::to_owned));
        self
    }
    pub fn governance<'a>(mut self, paths: impl IntoIterator<Item = &'a str>) -> Change {
        self.governance.extend(paths.into_iter().map(str::to_owned));
        self
    }

    pub fn impact(&self) -> Impact {
        let all = || self.touched.iter().chain(self.reached.iter());
        let mut changed_paths: Vec<String> = self
            .touched
            .iter()
            .map(|n| format!("{}/README.md", n.entity.name))
            .chain(self.unmapped.iter().cloned())
            .chain(self.governance.iter().cloned())
            .collect();
        changed_paths.sort();
        changed_paths.dedup();
        let mut owners: Vec<EntityRef> = self
            .touched
            .iter()
            .filter_map(|n| n.owner.clone())
            .collect();
        owners.sort();
        owners.dedup();
        Impact {
            changed_paths,
            touched: self
                .touched
                .iter()
                .map(|n| TouchedNode {
                    entity: n.entity.clone(),
                    criticality: n.criticality,
                    paths: vec![format!("{}/README.md", n.entity.name)],
                    owners: n.owner.iter().cloned().collect(),
                    surfaces: n.surfaces.clone(),
                })
                .collect(),
            blast_radius: self
                .reached
                .iter()
                .map(|n| ReachedNode {
                    entity: n.entity.clone(),
                    criticality: n.criticality,
                    distance: 1,
                    previous: self
                        .touched
                        .first()
                        .map(|t| t.entity.clone())
                        .unwrap_or_else(|| n.entity.clone()),
                })
                .collect(),
            dev_dependents: Vec::new(),
            max_criticality_touched: self.touched.iter().map(|n| n.criticality).max(),
            max_criticality_reached: all().map(|n| n.criticality).max(),
            critical_reached: all()
                .filter(|n| n.criticality == Criticality::Critical)
                .map(|n| n.entity.clone())
                .collect(),
            revenue_path_reached: all()
                .filter(|n| n.revenue)
                .map(|n| n.entity.clone())
                .collect(),
            surfaces_touched: self
                .touched
                .iter()
                .flat_map(|n| n.surfaces.iter().copied())
                .collect(),
            surfaces_reached: all().flat_map(|n| n.surfaces.iter().copied()).collect(),
            data_stores_touched: self
                .touched
                .iter()
                .filter(|n| n.entity.kind == Kind::Resource)
                .map(|n| n.entity.clone())
                .collect(),
            owners,
            unmapped: self.unmapped.clone(),
            governance_paths: self.governance.clone(),
            // The test world's CODEOWNERS gives the rules and unclaimed files to platform.
            governance_owners: if self.governance.is_empty() {
                Vec::new()
            } else {
                vec![group("platform")]
            },
            unmapped_owners: if self.unmapped.is_empty() {
                Vec::new()
            } else {
                vec![group("platform")]
            },
        }
    }
}
