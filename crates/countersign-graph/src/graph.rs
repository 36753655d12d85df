//! The system graph: nodes with stable ids, typed edges, compact adjacency, the
//! path → node map, CODEOWNERS, the governance and never-automate globs, and the version.
//!
//! [`build`] is the only constructor; it reads through a [`FileSource`] and never fails on a
//! mere finding (those become [`Diagnostic`]s). Node ids are assigned in sorted entity order,
//! so the same inputs give the same ids, edges and version whatever order files and
//! documents come in.
//!
//! # Which node owns a path
//! A path belongs to the node(s) whose `paths` globs match it, **the most specific glob
//! winning**: the glob with the longest literal prefix (the characters before its first
//! wildcard) wins; on a tie, the one with more literal characters overall. Nodes whose
//! winning globs tie exactly all own the path (`graph check` reports it). A glob with no
//! wildcard names a file or a directory, and so also owns everything below it. So
//! `services/pay/src/**` beats `services/pay/**`, which beats `**`.
//!
//! The map is an index, not a scan: globs of the form `<literal dir>/**` or `<literal>`
//! (nearly all of them: the default of a Component is its directory) go into a hash map
//! looked up once per ancestor directory of the path; the rest compile into one `GlobSet`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use globset::{GlobSet, GlobSetBuilder};
use sha2::{Digest, Sha256};

use crate::backstage::{self, Descriptor, RelationKind};
use crate::codeowners::{Codeowners, Owner};
use crate::diagnostic::{Diagnostic, DiagnosticCode, Severity};
use crate::error::GraphError;
use crate::model::{EntityRef, Kind, Node, NodeId, SourceLocation, Surface};
use crate::repo_path;
use crate::settings::{ALWAYS_GOVERNANCE, BUILD_FILES, CODEOWNERS_LOCATIONS, GraphSettings};
use crate::source::FileSource;
use crate::workspace;

/// The type of an edge, from the declaring side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeKind {
    /// `from` depends on `to` (`dependsOn`, or `dependencyOf` read backwards).
    DependsOn,
    /// `from` uses `to` only in its own tests and tooling (a workspace dev-dependency): a
    /// change to `to` plans `from`'s suites, but `from` is not in the blast radius, carries
    /// no criticality or surface into the decision, and makes no dependency cycle.
    DevDependsOn,
    /// Component `from` provides API `to`.
    ProvidesApi,
    /// Component `from` consumes API `to`.
    ConsumesApi,
    /// `from` is part of system/domain `to`.
    PartOf,
    SubcomponentOf,
    /// `from` is owned by group/user `to`.
    OwnedBy,
    /// User `from` is a member of group `to` (`memberOf` or the group's `members`).
    MemberOf,
    /// Group `from` is a child of group `to` (`parent` or the parent's `children`).
    ChildOf,
}

/// A resolved, typed edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Edge {
    pub from: NodeId,
    pub kind: EdgeKind,
    pub to: NodeId,
}

/// A relation whose target is not in the graph; kept for `check` and the version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DanglingEdge {
    pub from: NodeId,
    pub kind: EdgeKind,
    pub to: EntityRef,
}

/// Compressed sparse rows: the neighbours of node `i` are `targets[offsets[i]..offsets[i+1]]`.
/// Two `u32`s per edge plus one per node, which is what keeps 100k nodes × 10 edges small.
#[derive(Debug, Clone, Default)]
struct Csr {
    offsets: Vec<u32>,
    targets: Vec<NodeId>,
}

impl Csr {
    fn new(n: usize, mut pairs: Vec<(NodeId, NodeId)>) -> Csr {
        pairs.sort_unstable();
        pairs.dedup();
        let mut offsets = vec![0u32; n + 1];
        for (from, _) in &pairs {
            offsets[from.0 as usize + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        Csr {
            offsets,
            targets: pairs.into_iter().map(|(_, to)| to).collect(),
        }
    }

    fn get(&self, id: NodeId) -> &[NodeId] {
        let i = id.0 as usize;
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.targets[a as usize..b as usize],
            _ => &[],
        }
    }
}

/// One glob of a node's `paths`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PathRule {
    pub glob: String,
    pub node: NodeId,
}

/// The path → node index described in the module doc.
#[derive(Debug, Clone, Default)]
struct PathMap {
    rules: Vec<PathRule>,
    /// Per rule: (literal prefix length, literal characters); larger is more specific.
    specificity: Vec<(u32, u32)>,
    /// Literal directory (or file) → rules owning it and everything below.
    by_dir: HashMap<Box<str>, Vec<u32>>,
    set: GlobSet,
    set_rules: Vec<u32>,
}

impl PathMap {
    fn new(rules: Vec<PathRule>) -> PathMap {
        let mut by_dir: HashMap<Box<str>, Vec<u32>> = HashMap::new();
        let mut builder = GlobSetBuilder::new();
        let mut set_rules = Vec::new();
        let mut specificity = Vec::with_capacity(rules.len());
        for (i, rule) in rules.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let g = rule.glob.as_str();
            match repo_path::literal_dir(g) {
                Some(dir) => {
                    let len =
                        u32::try_from(dir.len() + usize::from(!dir.is_empty())).unwrap_or(u32::MAX);
                    specificity.push((len, len));
                    by_dir.entry(dir.into()).or_default().push(i);
                }
                None => {
                    let prefix =
                        u32::try_from(repo_path::literal_prefix(g).len()).unwrap_or(u32::MAX);
                    let literal =
                        u32::try_from(g.chars().filter(|c| !"*?[]{}\\".contains(*c)).count())
                            .unwrap_or(u32::MAX);
                    specificity.push((prefix, literal));
                    // Globs were validated when the descriptor was parsed.
                    if let Ok(glob) = repo_path::glob(g) {
                        builder.add(glob);
                        set_rules.push(i);
                    }
                }
            }
        }
        let set = builder.build().unwrap_or_else(|_| GlobSet::empty());
        PathMap {
            rules,
            specificity,
            by_dir,
            set,
            set_rules,
        }
    }

    /// Every rule whose glob matches `path`, most specific or not.
    fn matching(&self, path: &str) -> Vec<u32> {
        let mut rules: Vec<u32> = Vec::new();
        let mut dir = path;
        loop {
            if let Some(found) = self.by_dir.get(dir) {
                rules.extend(found);
            }
            if dir.is_empty() {
                break;
            }
            dir = repo_path::dir_of(dir);
        }
        rules.extend(
            self.set
                .matches(path)
                .into_iter()
                .map(|g| self.set_rules[g]),
        );
        rules
    }

    fn map(&self, path: &str) -> Vec<NodeId> {
        let mut candidates: Vec<u32> = Vec::new();
        let mut dir = path;
        loop {
            if let Some(rules) = self.by_dir.get(dir) {
                candidates.extend(rules);
            }
            if dir.is_empty() {
                break;
            }
            dir = repo_path::dir_of(dir);
        }
        candidates.extend(
            self.set
                .matches(path)
                .into_iter()
                .map(|g| self.set_rules[g]),
        );
        let Some(best) = candidates
            .iter()
            .map(|&r| self.specificity[r as usize])
            .max()
        else {
            return Vec::new();
        };
        let mut nodes: Vec<NodeId> = candidates
            .into_iter()
            .filter(|&r| self.specificity[r as usize] == best)
            .map(|r| self.rules[r as usize].node)
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }
}

/// The system graph of one repository snapshot.
#[derive(Debug, Clone)]
pub struct SystemGraph {
    nodes: Vec<Node>,
    index: HashMap<EntityRef, NodeId>,
    edges: Vec<Edge>,
    dangling: Vec<DanglingEdge>,
    /// `x → y`: y is a dependent of x (reverse dependsOn, API consumers, provided APIs).
    dependents: Csr,
    dependencies: Csr,
    /// `x → y`: y dev-depends on x (tests or tooling only).
    dev_dependents: Csr,
    /// Group → direct user members, group → child groups.
    group_members: HashMap<NodeId, Vec<NodeId>>,
    group_children: HashMap<NodeId, Vec<NodeId>>,
    path_map: PathMap,
    /// Directory → the Component(s) an unmapped file below it belongs to: the directory of
    /// a descriptor declaring one Component, or of a workspace package.
    fallback: BTreeMap<String, Vec<NodeId>>,
    codeowners: Option<Codeowners>,
    /// Per CODEOWNERS rule, its owners as entity refs (unknown emails left out).
    codeowner_refs: Vec<Vec<EntityRef>>,
    /// Catalog files read and the CODEOWNERS file in effect (hashed into the version).
    governance_files: BTreeSet<String>,
    /// Files the snapshot would read were they there: literal Location targets, every
    /// CODEOWNERS location GitHub consults and the configured one. Not hashed: they are
    /// a function of the config and the catalog files, which are.
    would_read: BTreeSet<String>,
    /// `ALWAYS_GOVERNANCE`, the configured governance globs and the catalog globs.
    governance_globs: GlobSet,
    /// Location targets that are globs.
    target_globs: GlobSet,
    never_automate: GlobSet,
    never_automate_surface: Vec<Surface>,
    version: String,
}

/// A graph and the findings made while building it.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    pub graph: SystemGraph,
    pub diagnostics: Vec<Diagnostic>,
    /// Every tracked file of the snapshot, for coverage.
    pub tracked: Vec<String>,
}

fn glob_set(field: &'static str, globs: &[String]) -> Result<GlobSet, GraphError> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob = repo_path::glob(g).map_err(|e| GraphError::SettingsGlob {
            field,
            glob: g.clone(),
            message: e.kind().to_string(),
        })?;
        b.add(glob);
    }
    b.build().map_err(|e| GraphError::SettingsGlob {
        field,
        glob: String::new(),
        message: e.to_string(),
    })
}

/// Builds the graph of one snapshot.
pub fn build(source: &dyn FileSource, settings: &GraphSettings) -> Result<BuildOutput, GraphError> {
    let ns = settings.default_namespace.as_str();
    let catalog_globs = glob_set("catalog_globs", &settings.catalog_globs)?;
    let mut never_globs = Vec::new();
    let mut never_automate_surface = Vec::new();
    for (surface, globs) in &settings.never_automate {
        never_globs.extend(globs.iter().cloned());
        never_automate_surface.extend(globs.iter().map(|_| *surface));
    }
    // The built-in build surface: files that run at build time, whatever the config says.
    never_globs.extend(BUILD_FILES.iter().map(|g| g.to_string()));
    never_automate_surface.extend(BUILD_FILES.iter().map(|_| Surface::Build));
    let never_automate = glob_set("never_automate", &never_globs)?;

    let catalog = backstage::read_catalog(source, &catalog_globs, ns, &settings.limits)?;
    // Governance is every file the governed state reads *or would read*: a file that does
    // not exist yet but would be read once added (a new `catalog-info.yaml`, a
    // `.github/CODEOWNERS` in front of the root one, the target of a Location) changes the
    // rules as much as an edit does. So the catalog globs themselves, every CODEOWNERS
    // location GitHub consults and every Location target are governance, present or not.
    let mut governance: Vec<String> = ALWAYS_GOVERNANCE.iter().map(|s| s.to_string()).collect();
    governance.extend(settings.governance_globs.iter().cloned());
    governance.extend(settings.catalog_globs.iter().cloned());
    let governance_globs = glob_set("governance_globs", &governance)?;
    let mut governance_globs_builder = GlobSetBuilder::new();
    for pattern in &catalog.target_patterns {
        if repo_path::has_glob_meta(pattern) {
            // Validated when the target was resolved; an invalid one was reported and
            // names no file.
            if let Ok(glob) = repo_path::glob(pattern) {
                governance_globs_builder.add(glob);
            }
        }
    }
    let target_globs = governance_globs_builder
        .build()
        .unwrap_or_else(|_| GlobSet::empty());
    let mut diagnostics = catalog.diagnostics;
    let mut descriptors = catalog.descriptors;
    let (packages, ws_diagnostics) = workspace::discover(source, &settings.limits)?;
    diagnostics.extend(ws_diagnostics);

    // Duplicates: keep the first by (file, line), which does not depend on input order.
    descriptors.sort_by(|a, b| (&a.entity, &a.source).cmp(&(&b.entity, &b.source)));
    let mut kept: Vec<Descriptor> = Vec::with_capacity(descriptors.len());
    for d in descriptors {
        match kept.last() {
            Some(prev) if prev.entity == d.entity => diagnostics.push(Diagnostic::new(
                Severity::Error,
                DiagnosticCode::DuplicateEntity,
                format!(
                    "{} is declared again (first at {}); this one is ignored",
                    d.entity, prev.source
                ),
                Some(d.source.clone()),
            )),
            _ => kept.push(d),
        }
    }
    let mut descriptors = kept;
    // Where an unmapped file falls back to (see `SystemGraph::map_path`): the directory of
    // a descriptor file declaring exactly one Component (a file declaring several, a
    // central catalog, names no single owner of its directory) ...
    let mut components_in: BTreeMap<&str, Vec<&EntityRef>> = BTreeMap::new();
    for d in descriptors
        .iter()
        .filter(|d| d.entity.kind == Kind::Component)
    {
        components_in
            .entry(&d.source.file)
            .or_default()
            .push(&d.entity);
    }
    let mut fallback_refs: Vec<(String, EntityRef)> = components_in
        .into_iter()
        .filter_map(|(file, entities)| match entities.as_slice() {
            [one] => Some((repo_path::dir_of(file).to_owned(), (*one).clone())),
            _ => None,
        })
        .collect();
    merge_workspace(&mut descriptors, &packages, ns);
    // ... and the directory of each workspace package, for the Component it became.
    for p in &packages {
        let name = workspace::entity_name(&p.name);
        let dir_glob = if p.dir.is_empty() {
            "**".to_string()
        } else {
            format!("{}/**", p.dir)
        };
        if let Some(d) = descriptors.iter().find(|d| {
            d.entity.kind == Kind::Component
                && (d.entity.name == name || d.paths.iter().any(|g| *g == dir_glob || *g == p.dir))
        }) {
            fallback_refs.push((p.dir.clone(), d.entity.clone()));
        }
    }
    descriptors.sort_by(|a, b| a.entity.cmp(&b.entity));

    let index: HashMap<EntityRef, NodeId> = descriptors
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (
                d.entity.clone(),
                NodeId(u32::try_from(i).unwrap_or(u32::MAX)),
            )
        })
        .collect();
    let mut edges = Vec::new();
    let mut dangling = Vec::new();
    let mut member_of: BTreeMap<NodeId, BTreeSet<EntityRef>> = BTreeMap::new();
    for (i, d) in descriptors.iter().enumerate() {
        let id = NodeId(u32::try_from(i).unwrap_or(u32::MAX));
        let mut link = |kind: EdgeKind, target: &EntityRef, field: &str, reverse: bool| match index
            .get(target)
        {
            Some(&to) => {
                let (from, to) = if reverse { (to, id) } else { (id, to) };
                edges.push(Edge { from, kind, to });
            }
            None => {
                let code = match kind {
                    EdgeKind::DependsOn
                    | EdgeKind::DevDependsOn
                    | EdgeKind::ProvidesApi
                    | EdgeKind::ConsumesApi => DiagnosticCode::DanglingDependency,
                    _ => DiagnosticCode::UnknownRef,
                };
                diagnostics.push(Diagnostic::new(
                    Severity::Warning,
                    code,
                    format!(
                        "{}: {field} `{target}` names no entity of the catalog",
                        d.entity
                    ),
                    Some(d.source.clone()),
                ));
                dangling.push(DanglingEdge {
                    from: id,
                    kind,
                    to: target.clone(),
                });
            }
        };
        if let Some(owner) = &d.owner {
            link(EdgeKind::OwnedBy, owner, "spec.owner", false);
        }
        if let Some(system) = &d.system {
            let field = if d.entity.kind == Kind::System {
                "spec.domain"
            } else {
                "spec.system"
            };
            link(EdgeKind::PartOf, system, field, false);
        }
        for r in &d.relations {
            let field = format!("spec.{}", r.field);
            let (kind, reverse) = match r.kind {
                RelationKind::DependsOn => (EdgeKind::DependsOn, false),
                RelationKind::DependencyOf => (EdgeKind::DependsOn, true),
                RelationKind::ProvidesApi => (EdgeKind::ProvidesApi, false),
                RelationKind::ConsumesApi => (EdgeKind::ConsumesApi, false),
                RelationKind::SubcomponentOf => (EdgeKind::SubcomponentOf, false),
                RelationKind::MemberOf => (EdgeKind::MemberOf, false),
                RelationKind::HasMember => (EdgeKind::MemberOf, true),
                RelationKind::ChildOf => (EdgeKind::ChildOf, false),
                RelationKind::ParentOf => (EdgeKind::ChildOf, true),
                RelationKind::DevDependsOn => (EdgeKind::DevDependsOn, false),
            };
            link(kind, &r.target, &field, reverse);
            match r.kind {
                RelationKind::MemberOf => {
                    member_of.entry(id).or_default().insert(r.target.clone());
                }
                RelationKind::HasMember => {
                    if let Some(&user) = index.get(&r.target) {
                        member_of.entry(user).or_default().insert(d.entity.clone());
                    }
                }
                _ => {}
            }
        }
    }
    edges.sort_unstable();
    edges.dedup();
    dangling.sort();
    dangling.dedup();

    let n = descriptors.len();
    let mut dependent_pairs = Vec::new();
    let mut dev_dependent_pairs = Vec::new();
    let mut group_members: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    let mut group_children: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for e in &edges {
        match e.kind {
            EdgeKind::DependsOn | EdgeKind::ConsumesApi => dependent_pairs.push((e.to, e.from)),
            EdgeKind::ProvidesApi => dependent_pairs.push((e.from, e.to)),
            EdgeKind::DevDependsOn => dev_dependent_pairs.push((e.to, e.from)),
            EdgeKind::MemberOf => group_members.entry(e.to).or_default().push(e.from),
            EdgeKind::ChildOf => group_children.entry(e.to).or_default().push(e.from),
            _ => {}
        }
    }
    let dependencies = Csr::new(n, dependent_pairs.iter().map(|&(a, b)| (b, a)).collect());
    let dependents = Csr::new(n, dependent_pairs);
    let dev_dependents = Csr::new(n, dev_dependent_pairs);

    let emails: HashMap<String, EntityRef> = descriptors
        .iter()
        .filter_map(|d| Some((d.email.as_ref()?.to_ascii_lowercase(), d.entity.clone())))
        .collect();

    let mut rules = Vec::new();
    let nodes: Vec<Node> = descriptors
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let id = NodeId(u32::try_from(i).unwrap_or(u32::MAX));
            rules.extend(d.paths.iter().map(|g| PathRule {
                glob: g.clone(),
                node: id,
            }));
            Node {
                id,
                member_of: member_of
                    .remove(&id)
                    .map(|s| s.into_iter().collect())
                    .unwrap_or_default(),
                entity: d.entity,
                title: d.title,
                spec_type: d.spec_type,
                owner: d.owner,
                system: d.system,
                criticality: d.criticality,
                surfaces: d.surfaces,
                paths: d.paths,
                suites: d.suites,
                revenue_path: d.revenue_path,
                exposure: d.exposure,
                data_classes: d.data_classes,
                source: d.source,
            }
        })
        .collect();
    rules.sort();
    let path_map = PathMap::new(rules);
    let mut fallback: BTreeMap<String, Vec<NodeId>> = BTreeMap::new();
    for (dir, entity) in fallback_refs {
        if let Some(&id) = index.get(&entity) {
            let ids = fallback.entry(dir).or_default();
            ids.push(id);
            ids.sort_unstable();
            ids.dedup();
        }
    }

    // CODEOWNERS: the configured file, or GitHub's lookup order.
    let codeowners_file = match &settings.codeowners {
        Some(file) => {
            if source.paths().binary_search(file).is_err() {
                diagnostics.push(Diagnostic::new(
                    Severity::Warning,
                    DiagnosticCode::MissingCodeowners,
                    format!("the configured CODEOWNERS file `{file}` does not exist"),
                    None,
                ));
            }
            Some(file.clone())
        }
        None => CODEOWNERS_LOCATIONS
            .iter()
            .find(|p| {
                source
                    .paths()
                    .binary_search_by(|x| x.as_str().cmp(p))
                    .is_ok()
            })
            .map(|p| p.to_string()),
    };
    let mut codeowners = None;
    let mut codeowner_refs = Vec::new();
    let mut governance_files: BTreeSet<String> = catalog.files.into_iter().collect();
    let mut would_read: BTreeSet<String> = catalog
        .target_patterns
        .iter()
        .filter(|p| !repo_path::has_glob_meta(p))
        .cloned()
        .collect();
    would_read.extend(CODEOWNERS_LOCATIONS.iter().map(|p| p.to_string()));
    would_read.extend(settings.codeowners.iter().cloned());
    if let Some(file) = codeowners_file {
        if let Some(bytes) = source.read(&file, settings.limits.file_bytes)? {
            let text =
                String::from_utf8(bytes).map_err(|_| GraphError::NotUtf8 { file: file.clone() })?;
            let (co, co_diagnostics) = Codeowners::parse(&file, &text);
            diagnostics.extend(co_diagnostics);
            let mut reported = BTreeSet::new();
            for rule in &co.rules {
                let mut refs = Vec::new();
                for owner in &rule.owners {
                    let resolved = match owner {
                        Owner::Team { slug, .. } => Some(EntityRef::new(Kind::Group, ns, slug)),
                        Owner::User(login) => Some(EntityRef::new(Kind::User, ns, login)),
                        Owner::Email(email) => emails.get(&email.to_ascii_lowercase()).cloned(),
                    };
                    let known = resolved.as_ref().is_some_and(|r| index.contains_key(r));
                    if !known && reported.insert(owner.clone()) {
                        diagnostics.push(Diagnostic::new(
                            Severity::Warning,
                            DiagnosticCode::UnknownOwner,
                            match &resolved {
                                Some(r) => format!("CODEOWNERS owner `{owner}` has no catalog entity `{r}`; kept as is"),
                                None => format!("CODEOWNERS owner `{owner}` matches no catalog user's profile email"),
                            },
                            Some(SourceLocation { file: file.clone(), line: rule.line }),
                        ));
                    }
                    refs.extend(resolved);
                }
                codeowner_refs.push(refs);
            }
            codeowners = Some(co);
        }
        governance_files.insert(file);
    }

    let mut graph = SystemGraph {
        nodes,
        index,
        edges,
        dangling,
        dependents,
        dependencies,
        dev_dependents,
        group_members,
        group_children,
        path_map,
        fallback,
        codeowners,
        codeowner_refs,
        governance_files,
        would_read,
        governance_globs,
        target_globs,
        never_automate,
        never_automate_surface,
        version: String::new(),
    };
    graph.version = graph.compute_version();
    diagnostics.sort();
    diagnostics.dedup();
    Ok(BuildOutput {
        graph,
        diagnostics,
        tracked: source.paths().to_vec(),
    })
}

/// Turns workspace packages into library Components, or merges them into the catalog
/// Component that already claims their name or directory.
fn merge_workspace(
    descriptors: &mut Vec<Descriptor>,
    packages: &[workspace::WorkspacePackage],
    ns: &str,
) {
    let mut package_entity: BTreeMap<&str, EntityRef> = BTreeMap::new();
    for p in packages {
        let name = workspace::entity_name(&p.name);
        let dir_glob = if p.dir.is_empty() {
            "**".to_string()
        } else {
            format!("{}/**", p.dir)
        };
        let claimer = descriptors.iter().position(|d| {
            d.entity.kind == Kind::Component
                && (d.entity.name == name || d.paths.iter().any(|g| *g == dir_glob || *g == p.dir))
        });
        let entity = match claimer {
            Some(i) => descriptors[i].entity.clone(),
            None => {
                let entity = EntityRef::new(Kind::Component, ns, &name);
                descriptors.push(Descriptor {
                    entity: entity.clone(),
                    title: Some(p.name.clone()),
                    spec_type: Some("library".into()),
                    owner: None,
                    system: None,
                    criticality: Default::default(),
                    surfaces: BTreeSet::new(),
                    paths: vec![dir_glob],
                    suites: Vec::new(),
                    revenue_path: false,
                    exposure: Default::default(),
                    data_classes: BTreeSet::new(),
                    relations: Vec::new(),
                    email: None,
                    ssh_signing_keys: Vec::new(),
                    openpgp_signing_keys: None,
                    github_login: None,
                    targets: Vec::new(),
                    source: p.manifest.clone(),
                });
                entity
            }
        };
        package_entity.insert(p.name.as_str(), entity);
    }
    for p in packages {
        let Some(from) = package_entity.get(p.name.as_str()) else {
            continue;
        };
        let targets: Vec<(RelationKind, EntityRef)> = [
            (RelationKind::DependsOn, &p.deps),
            (RelationKind::DevDependsOn, &p.dev_deps),
        ]
        .into_iter()
        .flat_map(|(kind, names)| {
            names
                .iter()
                .filter_map(|d| Some((kind, package_entity.get(d.as_str())?.clone())))
                .collect::<Vec<_>>()
        })
        .collect();
        if let Some(d) = descriptors.iter_mut().find(|d| d.entity == *from) {
            for (kind, target) in targets {
                // A runtime edge the catalog or the manifest declares makes a dev edge moot.
                let exists = d.relations.iter().any(|r| {
                    r.target == target && (r.kind == kind || r.kind == RelationKind::DependsOn)
                });
                if !exists && target != *from {
                    d.relations.push(backstage::Relation {
                        kind,
                        target,
                        field: if kind == RelationKind::DependsOn {
                            "dependsOn"
                        } else {
                            "devDependsOn"
                        },
                    });
                }
            }
        }
    }
}

impl SystemGraph {
    /// Every node, in id order (which is sorted entity order).
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id.0 as usize)
    }

    pub fn find(&self, entity: &EntityRef) -> Option<NodeId> {
        self.index.get(entity).copied()
    }

    /// Every resolved edge, sorted.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// Relations whose target is not in the catalog.
    pub fn dangling(&self) -> &[DanglingEdge] {
        &self.dangling
    }

    /// Nodes that a change to `id` can break: components depending on it, consumers of
    /// it (an API), and the APIs it provides. Sorted.
    pub fn dependents(&self, id: NodeId) -> &[NodeId] {
        self.dependents.get(id)
    }

    /// The nodes that use `id` only in their tests and tooling (workspace dev-dependencies).
    /// Sorted. Not dependents: see [`EdgeKind::DevDependsOn`].
    pub fn dev_dependents(&self, id: NodeId) -> &[NodeId] {
        self.dev_dependents.get(id)
    }

    /// The inverse of [`SystemGraph::dependents`]. Sorted.
    pub fn dependencies(&self, id: NodeId) -> &[NodeId] {
        self.dependencies.get(id)
    }

    /// The users of a group, including those of its child groups, transitively. Sorted.
    pub fn members(&self, group: &EntityRef) -> Vec<NodeId> {
        let Some(start) = self.find(group) else {
            return Vec::new();
        };
        let mut seen = BTreeSet::from([start]);
        let mut queue = VecDeque::from([start]);
        let mut users = BTreeSet::new();
        while let Some(g) = queue.pop_front() {
            users.extend(self.group_members.get(&g).into_iter().flatten().copied());
            for &child in self.group_children.get(&g).into_iter().flatten() {
                if seen.insert(child) {
                    queue.push_back(child);
                }
            }
        }
        users.into_iter().collect()
    }

    /// The owners CODEOWNERS gives `path` (last matching line), as Group/User refs.
    /// Owners that are unknown teams or users are kept; unknown emails are not.
    pub fn owners_of_path(&self, path: &str) -> Vec<EntityRef> {
        let Some(co) = &self.codeowners else {
            return Vec::new();
        };
        co.rule_index_for(path)
            .and_then(|i| self.codeowner_refs.get(i))
            .cloned()
            .unwrap_or_default()
    }

    /// The parsed CODEOWNERS, if the repository has one.
    pub fn codeowners(&self) -> Option<&Codeowners> {
        self.codeowners.as_ref()
    }

    /// The node(s) a path belongs to, by the most-specific-glob rule of the module doc.
    ///
    /// A path no glob claims falls back to the Component whose descriptor (declaring only
    /// that Component) or workspace package sits in its nearest directory: a
    /// `services/payments/build.rs` outside the payments component's explicit `paths` is
    /// still payments' file. Unmapped files fail closed: they belong to someone when the
    /// layout says who.
    pub fn map_path(&self, path: &str) -> Vec<NodeId> {
        let nodes = self.path_map.map(path);
        if !nodes.is_empty() {
            return nodes;
        }
        let mut dir = repo_path::dir_of(path);
        loop {
            if let Some(ids) = self.fallback.get(dir) {
                return ids.clone();
            }
            if dir.is_empty() {
                return Vec::new();
            }
            dir = repo_path::dir_of(dir);
        }
    }

    /// Every path rule (a node's glob), sorted.
    pub fn path_rules(&self) -> &[PathRule] {
        &self.path_map.rules
    }

    /// The path rules that match none of `paths`, in [`SystemGraph::path_rules`] order:
    /// dead globs. One pass over the paths, each looked up as [`SystemGraph::map_path`]
    /// does, so a large repository costs what mapping it costs.
    pub fn dead_rules<S: AsRef<str>>(&self, paths: &[S]) -> Vec<&PathRule> {
        let mut live = vec![false; self.path_map.rules.len()];
        for path in paths {
            for rule in self.path_map.matching(path.as_ref()) {
                if let Some(slot) = live.get_mut(rule as usize) {
                    *slot = true;
                }
            }
        }
        self.path_map
            .rules
            .iter()
            .zip(live)
            .filter(|(_, live)| !live)
            .map(|(rule, _)| rule)
            .collect()
    }

    /// Whether a path is countersign's own governance, at this snapshot or once the path is
    /// added: a catalog file that was read, a path the catalog globs match, a Location
    /// target, any CODEOWNERS location GitHub consults (and the configured one),
    /// `countersign.toml`, `.countersign/**`, or a configured glob.
    ///
    /// Computed from the base only, and still the set of the head too: the head's set can
    /// differ from the base's only through a file the base's set already holds (the
    /// config, a catalog file, a Location target), so a change that does not touch the
    /// base's set loads the same rules at its head.
    pub fn is_governance(&self, path: &str) -> bool {
        self.governance_files.contains(path)
            || self.would_read.contains(path)
            || self.governance_globs.is_match(path)
            || self.target_globs.is_match(path)
    }

    /// The surfaces whose globs match `path`: the configured never-automate globs and the
    /// built-in build files ([`Surface::Build`]).
    pub fn never_automate_surfaces(&self, path: &str) -> BTreeSet<Surface> {
        self.never_automate
            .matches(path)
            .into_iter()
            .filter_map(|i| self.never_automate_surface.get(i).copied())
            .collect()
    }

    /// Hex sha256 of the canonical form: equal for the same inputs in any order.
    pub fn version(&self) -> String {
        self.version.clone()
    }

    /// Hashes the canonical form, one JSON line at a time: every node (in id order, which
    /// is sorted ref order, without source positions), every edge and dangling relation
    /// (ids sort like refs, so id order is ref order), every path rule (sorted), the
    /// CODEOWNERS rules (file order, which is meaningful there) and the governance files.
    /// Streamed, because materialising the canonical form of a 100k-node graph with a
    /// million edges as one JSON value would cost hundreds of megabytes.
    fn compute_version(&self) -> String {
        let mut hasher = HashWriter(Sha256::new());
        let r = |id: NodeId| &self.nodes[id.0 as usize].entity;
        let mut line = |v: &dyn erased::Ser| {
            // Writing into a hasher cannot fail.
            let _ = v.write_to(&mut hasher);
            hasher.0.update(b"\n");
        };
        line(&"nodes");
        for n in &self.nodes {
            line(&crate::model::node_json(n, false));
        }
        line(&"edges");
        for e in &self.edges {
            line(&(r(e.from), e.kind, r(e.to)));
        }
        line(&"dangling");
        for d in &self.dangling {
            line(&(r(d.from), d.kind, &d.to));
        }
        line(&"path_rules");
        for p in &self.path_map.rules {
            line(&(&p.glob, r(p.node)));
        }
        line(&"codeowners");
        for rule in self.codeowners.iter().flat_map(|co| &co.rules) {
            line(&(
                &rule.pattern,
                rule.owners
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            ));
        }
        line(&"governance_files");
        line(&self.governance_files);
        line(&"fallback");
        for (dir, ids) in &self.fallback {
            line(&(dir, ids.iter().map(|&id| r(id)).collect::<Vec<_>>()));
        }
        hex::encode(hasher.0.finalize())
    }
}

/// A `Serialize` usable as `&dyn`, so one closure can hash lines of different types.
mod erased {
    pub trait Ser {
        fn write_to(&self, w: &mut super::HashWriter) -> serde_json::Result<()>;
    }
    impl<T: serde::Serialize> Ser for T {
        fn write_to(&self, w: &mut super::HashWriter) -> serde_json::Result<()> {
            serde_json::to_writer(w, self)
        }
    }
}

/// Lets `serde_json` write straight into a hash.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
