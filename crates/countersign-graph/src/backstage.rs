//! The Backstage catalog importer: multi-document `catalog-info.yaml` files into
//! [`Descriptor`]s, following `Location` entities inside the repository.
//!
//! It parses and validates one descriptor at a time and resolves references
//! syntactically (Backstage's defaulting rules). It does not check that references point
//! at existing entities, nor build edges: that is [`crate::graph`]'s job.
//!
//! # countersign annotations
//! All under `metadata.annotations`, all optional:
//!
//! | annotation | value |
//! |---|---|
//! | `countersign.dev/criticality` | `low` \| `moderate` \| `high` \| `critical` (default `low`) |
//! | `countersign.dev/surfaces` | comma-separated: `auth, authz, payments, regulated-data, irreversible, ci-cd, governance, build` |
//! | `countersign.dev/paths` | globs of the files the entity owns, separated by commas or newlines (a comma inside `{…}` belongs to the glob) |
//! | `countersign.dev/suites` | comma-separated validation suite names |
//! | `countersign.dev/revenue-path` | `true` \| `false` (default `false`) |
//! | `countersign.dev/exposure` | `internet` \| `internal` (default `internal`) |
//! | `countersign.dev/data-classes` | comma-separated data classes (`pii`, `pci`, ...) |
//! | `countersign.dev/ssh-signing-keys` | a User's OpenSSH public keys, one a line (commit signatures) |
//! | `countersign.dev/openpgp-signing-keys` | a User's ASCII-armored OpenPGP public keys (commit signatures) |
//!
//! Of Backstage's own annotations one is read: `github.com/user-login` on a User, the
//! person's GitHub account (the GitHub integration maps reviews and pull request authors
//! through it).
//!
//! **Paths are relative to the descriptor's directory** unless they start with `/`, which
//! means the repository root: a descriptor travels with its code, so `src/**` in
//! `services/pay/catalog-info.yaml` is `services/pay/src/**`. A trailing `/` means the
//! whole directory (`migrations/` = `migrations/**`). Paths may not climb above the root.
//!
//! **A Component with no `countersign.dev/paths` owns the directory of its descriptor**
//! (`<dir>/**`), which is what makes a monorepo whose services each carry a
//! `catalog-info.yaml` map with no annotation at all. Other kinds own no files unless
//! annotated.
//!
//! Any other `countersign.dev/` annotation is an error: a typo there would silently
//! weaken governance.

use std::collections::{BTreeSet, HashSet, VecDeque};

use serde_json::Value;

use crate::diagnostic::{Diagnostic, DiagnosticCode, Severity};
use crate::entity_ref::{self, RefContext};
use crate::error::GraphError;
use crate::limits::Limits;
use crate::model::{Criticality, EntityRef, Exposure, Kind, SourceLocation, Surface};
use crate::repo_path;
use crate::source::FileSource;
use crate::yaml;

/// The annotation prefix countersign owns.
pub const ANNOTATION_PREFIX: &str = "countersign.dev/";

/// Backstage's annotation naming a User's GitHub account, read for the GitHub integration.
pub const GITHUB_LOGIN_ANNOTATION: &str = "github.com/user-login";

/// A relation a descriptor declares towards another entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RelationKind {
    /// `spec.dependsOn`.
    DependsOn,
    /// `spec.dependencyOf`: the target depends on this entity.
    DependencyOf,
    ProvidesApi,
    ConsumesApi,
    /// `spec.subcomponentOf`.
    SubcomponentOf,
    /// User `spec.memberOf`.
    MemberOf,
    /// Group `spec.members`: the target is a member of this group.
    HasMember,
    /// Group `spec.parent`.
    ChildOf,
    /// Group `spec.children`: the target is a child of this group.
    ParentOf,
    /// A workspace package's test- or tooling-only dependency (Cargo `dev-dependencies`,
    /// npm `devDependencies`); no catalog field declares one.
    DevDependsOn,
}

/// One relation of a descriptor, with the field it came from for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub kind: RelationKind,
    pub target: EntityRef,
    pub field: &'static str,
}

/// One parsed and validated catalog entity, its references resolved syntactically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub entity: EntityRef,
    pub title: Option<String>,
    pub spec_type: Option<String>,
    /// `spec.owner` (default kind Group).
    pub owner: Option<EntityRef>,
    /// `spec.system` for Component/API/Resource, `spec.domain` for System.
    pub system: Option<EntityRef>,
    pub criticality: Criticality,
    pub surfaces: BTreeSet<Surface>,
    /// Repository-relative globs, after the defaulting described in the module doc.
    pub paths: Vec<String>,
    pub suites: Vec<String>,
    pub revenue_path: bool,
    pub exposure: Exposure,
    pub data_classes: BTreeSet<String>,
    pub relations: Vec<Relation>,
    /// User `spec.profile.email`, for CODEOWNERS email owners.
    pub email: Option<String>,
    /// User `countersign.dev/ssh-signing-keys`: OpenSSH public key lines, as written (not
    /// parsed here: key formats and commit signatures are countersign-decide's, which
    /// reports a key that does not parse at [`annotation_line`]).
    pub ssh_signing_keys: Vec<String>,
    /// User `countersign.dev/openpgp-signing-keys`: ASCII-armored OpenPGP public keys, as
    /// written (not parsed here either).
    pub openpgp_signing_keys: Option<String>,
    /// User `github.com/user-login` (Backstage's own annotation, which its GitHub org
    /// importer writes): the GitHub account of the person, as written. Whose reviews on
    /// GitHub are this User's is the server's GitHub integration's to decide.
    pub github_login: Option<String>,
    /// Location `spec.target` and `spec.targets`, as written.
    pub targets: Vec<String>,
    pub source: SourceLocation,
}

/// What reading the whole catalog produced.
#[derive(Debug, Default)]
pub struct Catalog {
    pub descriptors: Vec<Descriptor>,
    /// Every descriptor file read, sorted: they are the governance surface.
    pub files: Vec<String>,
    /// Every Location target inside the repository as resolved (a path or a glob),
    /// whether or not it names a file today, sorted: adding a file there changes the
    /// catalog, so these are governance too.
    pub target_patterns: Vec<String>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads every file matching `globs`, then every file their Locations point to, once each,
/// within `limits` (bytes per file and in total, entities, globs).
pub fn read_catalog(
    source: &dyn FileSource,
    globs: &globset::GlobSet,
    default_namespace: &str,
    limits: &Limits,
) -> Result<Catalog, GraphError> {
    let mut catalog = Catalog::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<String> = source
        .paths()
        .iter()
        .filter(|p| globs.is_match(p.as_str()))
        .cloned()
        .collect();
    seen.extend(queue.iter().cloned());
    let mut total_bytes: u64 = 0;
    let mut total_globs: usize = 0;
    while let Some(file) = queue.pop_front() {
        let Some(bytes) = source.read(&file, limits.file_bytes)? else {
            continue;
        };
        total_bytes = total_bytes.saturating_add(bytes.len() as u64);
        if total_bytes > limits.catalog_bytes {
            return Err(GraphError::Limit {
                file,
                line: 1,
                what: format!(
                    "the catalog files read so far total more than {} bytes",
                    limits.catalog_bytes
                ),
                limit: "catalog_bytes",
                max: limits.catalog_bytes,
            });
        }
        let text = catalog_text(&file, bytes)?;
        let descriptors = parse_file_within(&file, &text, default_namespace, limits)?;
        if catalog.descriptors.len() + descriptors.len() > limits.entities {
            return Err(GraphError::Limit {
                line: descriptors.last().map_or(1, |d| d.source.line),
                file,
                what: format!("the catalog has more than {} entities", limits.entities),
                limit: "entities",
                max: limits.entities as u64,
            });
        }
        for d in &descriptors {
            // Only pattern globs cost matching memory; a literal path or `dir/**` is a
            // lookup in an index.
            total_globs += d
                .paths
                .iter()
                .filter(|g| repo_path::literal_dir(g).is_none())
                .count();
            if total_globs > limits.globs {
                return Err(GraphError::Limit {
                    file: d.source.file.clone(),
                    line: d.source.line,
                    what: format!(
                        "the catalog's `countersign.dev/paths` hold more than {} pattern globs",
                        limits.globs
                    ),
                    limit: "globs",
                    max: limits.globs as u64,
                });
            }
            for target in &d.targets {
                let resolved = resolve_target(source, &file, d, target, &mut catalog.diagnostics);
                catalog.target_patterns.extend(resolved.pattern);
                for next in resolved.files {
                    // The seen set makes Location cycles (a → b → a) terminate.
                    if seen.insert(next.clone()) {
                        queue.push_back(next);
                    }
                }
            }
        }
        catalog.descriptors.extend(descriptors);
        catalog.files.push(file);
    }
    catalog.files.sort();
    catalog.target_patterns.sort();
    catalog.target_patterns.dedup();
    Ok(catalog)
}

/// A catalog file's bytes as text. A UTF-8 byte order mark is allowed (YAML allows one);
/// UTF-16 and other encodings are named, not reported as mere invalid UTF-8.
fn catalog_text(file: &str, bytes: Vec<u8>) -> Result<String, GraphError> {
    let encoding = match bytes.as_slice() {
        [0xFF, 0xFE, ..] | [0xFE, 0xFF, ..] => Some("UTF-16"),
        _ => None,
    };
    String::from_utf8(bytes).map_err(|_| match encoding {
        Some(encoding) => GraphError::Encoding {
            file: file.to_string(),
            encoding,
        },
        None => GraphError::NotUtf8 {
            file: file.to_string(),
        },
    })
}

/// What a Location target resolves to: the pattern inside the repository (when it is
/// one) and the files it names today.
#[derive(Default)]
struct ResolvedTarget {
    pattern: Option<String>,
    files: Vec<String>,
}

/// The repository files a Location target names; URLs, absolute paths and paths
/// outside the repository are reported, never fetched.
fn resolve_target(
    source: &dyn FileSource,
    file: &str,
    d: &Descriptor,
    target: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> ResolvedTarget {
    let mut report = |why: &str| {
        diagnostics.push(Diagnostic::new(
            Severity::Warning,
            DiagnosticCode::LocationTarget,
            format!("{}: target `{target}` {why}", d.entity),
            Some(d.source.clone()),
        ));
    };
    if target.contains("://") {
        report("is a URL; countersign reads only the repository and does not fetch it");
        return ResolvedTarget::default();
    }
    if target.starts_with('/') {
        report("is an absolute path outside the repository; not read");
        return ResolvedTarget::default();
    }
    let Some(joined) = repo_path::join(repo_path::dir_of(file), target) else {
        report("leaves the repository; not read");
        return ResolvedTarget::default();
    };
    if repo_path::has_glob_meta(&joined) {
        let Ok(glob) = repo_path::glob(&joined) else {
            report("is not a valid glob");
            return ResolvedTarget::default();
        };
        let pattern = Some(joined.clone());
        let matcher = glob.compile_matcher();
        let found: Vec<String> = source
            .paths()
            .iter()
            .filter(|p| matcher.is_match(p.as_str()))
            .cloned()
            .collect();
        if found.is_empty() {
            report("matches no file");
        }
        ResolvedTarget {
            pattern,
            files: found,
        }
    } else if source.paths().binary_search(&joined).is_ok() {
        ResolvedTarget {
            pattern: Some(joined.clone()),
            files: vec![joined],
        }
    } else {
        report(&format!("names `{joined}`, which does not exist"));
        ResolvedTarget {
            pattern: Some(joined),
            files: Vec::new(),
        }
    }
}

/// Parses one multi-document descriptor file, within the default [`Limits`].
pub fn parse_file(
    file: &str,
    text: &str,
    default_namespace: &str,
) -> Result<Vec<Descriptor>, GraphError> {
    parse_file_within(file, text, default_namespace, &Limits::default())
}

/// Parses one multi-document descriptor file within `limits` (YAML depth and aliases,
/// globs per entity and their length).
pub fn parse_file_within(
    file: &str,
    text: &str,
    default_namespace: &str,
    limits: &Limits,
) -> Result<Vec<Descriptor>, GraphError> {
    let mut out = Vec::new();
    for doc in yaml::documents(file, text, limits)? {
        let at = SourceLocation {
            file: file.to_string(),
            line: doc.line,
        };
        out.push(descriptor(&doc.value, at, text, default_namespace, limits)?);
    }
    Ok(out)
}

/// The line of annotation `annotation` (its full name, `countersign.dev/...`) in the
/// document of `text` whose root node starts on `document_line`, or that line when it is not
/// found: for reporting an error about an annotation's value found after parsing (a signing
/// key that does not parse). Parses `text` again, so only when reporting.
pub fn annotation_line(text: &str, document_line: u32, annotation: &str) -> u32 {
    yaml::key_line(
        text,
        document_line,
        &["metadata", "annotations", annotation],
    )
    .unwrap_or(document_line)
}

/// Field access with errors that name the file, line and field.
struct Doc<'a> {
    at: &'a SourceLocation,
    /// The whole file, to find a field's line when (and only when) reporting an error.
    text: &'a str,
}

impl Doc<'_> {
    /// The line of the key at `path` (`metadata.name` split at its dots), or of the deepest
    /// key of it present, or the document's first line.
    fn line(&self, path: &[&str]) -> u32 {
        yaml::key_line(self.text, self.at.line, path).unwrap_or(self.at.line)
    }

    fn field_line(&self, field: &str) -> u32 {
        self.line(&field.split('.').collect::<Vec<_>>())
    }

    fn annotation_line(&self, annotation: &str) -> u32 {
        self.line(&["metadata", "annotations", annotation])
    }

    fn field_error(&self, field: &str, message: impl Into<String>) -> GraphError {
        GraphError::Field {
            file: self.at.file.clone(),
            line: self.field_line(field),
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn annotation_error(&self, annotation: &str, message: impl Into<String>) -> GraphError {
        GraphError::Annotation {
            file: self.at.file.clone(),
            line: self.annotation_line(annotation),
            annotation: annotation.to_string(),
            message: message.into(),
        }
    }

    /// A scalar as a string; numbers and booleans are accepted as their text.
    fn string(&self, value: Option<&Value>, field: &str) -> Result<Option<String>, GraphError> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(v) => scalar(v)
                .map(Some)
                .ok_or_else(|| self.field_error(field, "must be a string")),
        }
    }

    /// A string or a list of strings.
    fn strings(&self, value: Option<&Value>, field: &str) -> Result<Vec<String>, GraphError> {
        match value {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    scalar(v).ok_or_else(|| self.field_error(field, "must be a list of strings"))
                })
                .collect(),
            Some(v) => scalar(v)
                .map(|s| vec![s])
                .ok_or_else(|| self.field_error(field, "must be a string or a list of strings")),
        }
    }

    fn reference(
        &self,
        text: &str,
        field: &str,
        ctx: RefContext<'_>,
    ) -> Result<EntityRef, GraphError> {
        entity_ref::parse(text, ctx).map_err(|source| GraphError::EntityRef {
            file: self.at.file.clone(),
            line: self.field_line(field),
            field: field.to_string(),
            source,
        })
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn descriptor(
    value: &Value,
    at: SourceLocation,
    text: &str,
    default_namespace: &str,
    limits: &Limits,
) -> Result<Descriptor, GraphError> {
    let doc = Doc { at: &at, text };
    if !value.is_object() {
        return Err(doc.field_error("(document)", "a descriptor must be a mapping"));
    }
    let api_version = doc
        .string(value.get("apiVersion"), "apiVersion")?
        .unwrap_or_default();
    if !matches!(
        api_version.as_str(),
        "backstage.io/v1alpha1" | "backstage.io/v1beta1"
    ) {
        return Err(GraphError::ApiVersion {
            file: at.file.clone(),
            line: doc.field_line("apiVersion"),
            api_version,
        });
    }
    let kind_text = doc
        .string(value.get("kind"), "kind")?
        .ok_or_else(|| doc.field_error("kind", "is required"))?;
    let kind: Kind = kind_text.parse().map_err(|_| GraphError::UnknownKind {
        file: at.file.clone(),
        line: doc.field_line("kind"),
        kind: kind_text.clone(),
    })?;
    let metadata = value
        .get("metadata")
        .ok_or_else(|| doc.field_error("metadata", "is required"))?;
    let name = doc
        .string(metadata.get("name"), "metadata.name")?
        .ok_or_else(|| doc.field_error("metadata.name", "is required"))?;
    let namespace = doc.string(metadata.get("namespace"), "metadata.namespace")?;
    let namespace = namespace.as_deref().unwrap_or(default_namespace);
    for (field, part) in [
        ("metadata.name", name.as_str()),
        ("metadata.namespace", namespace),
    ] {
        if !entity_ref::valid_part(part) {
            return Err(doc.field_error(
                field,
                format!("`{part}` is not a valid name (letters, digits and inner `-`, `_`, `.`, at most 63 characters)"),
            ));
        }
    }
    let entity = EntityRef::new(kind, namespace, &name);
    let ns = entity.namespace.clone();
    let ctx = |default_kind| RefContext {
        default_kind,
        default_namespace: &ns,
    };
    let empty = Value::Null;
    let spec = value.get("spec").unwrap_or(&empty);

    let mut d = Descriptor {
        title: doc.string(metadata.get("title"), "metadata.title")?,
        spec_type: doc.string(spec.get("type"), "spec.type")?,
        owner: None,
        system: None,
        criticality: Criticality::default(),
        surfaces: BTreeSet::new(),
        paths: Vec::new(),
        suites: Vec::new(),
        revenue_path: false,
        exposure: Exposure::default(),
        data_classes: BTreeSet::new(),
        relations: Vec::new(),
        email: None,
        ssh_signing_keys: Vec::new(),
        openpgp_signing_keys: None,
        github_login: None,
        targets: Vec::new(),
        source: at.clone(),
        entity,
    };

    if let Some(owner) = doc.string(spec.get("owner"), "spec.owner")? {
        d.owner = Some(doc.reference(&owner, "spec.owner", ctx(Some(Kind::Group)))?);
    }
    let (system_field, system_kind) = if kind == Kind::System {
        ("spec.domain", Kind::Domain)
    } else {
        ("spec.system", Kind::System)
    };
    if let Some(system) = doc.string(spec.get(&system_field[5..]), system_field)? {
        d.system = Some(doc.reference(&system, system_field, ctx(Some(system_kind)))?);
    }

    // (field, relation, default kind), per Backstage's BuiltinKindsEntityProcessor.
    let relation_fields: &[(&'static str, RelationKind, Option<Kind>)] = match kind {
        Kind::Component => &[
            ("dependsOn", RelationKind::DependsOn, None),
            ("dependencyOf", RelationKind::DependencyOf, None),
            ("providesApis", RelationKind::ProvidesApi, Some(Kind::Api)),
            ("consumesApis", RelationKind::ConsumesApi, Some(Kind::Api)),
            (
                "subcomponentOf",
                RelationKind::SubcomponentOf,
                Some(Kind::Component),
            ),
        ],
        Kind::Resource => &[
            ("dependsOn", RelationKind::DependsOn, None),
            ("dependencyOf", RelationKind::DependencyOf, None),
        ],
        Kind::User => &[("memberOf", RelationKind::MemberOf, Some(Kind::Group))],
        Kind::Group => &[
            ("parent", RelationKind::ChildOf, Some(Kind::Group)),
            ("children", RelationKind::ParentOf, Some(Kind::Group)),
            ("members", RelationKind::HasMember, Some(Kind::User)),
        ],
        _ => &[],
    };
    for &(field, relation, default_kind) in relation_fields {
        let path = format!("spec.{field}");
        for target in doc.strings(spec.get(field), &path)? {
            let target = doc.reference(&target, &path, ctx(default_kind))?;
            d.relations.push(Relation {
                kind: relation,
                target,
                field,
            });
        }
    }

    match kind {
        Kind::User => {
            let email = spec.get("profile").and_then(|p| p.get("email"));
            d.email = doc.string(email, "spec.profile.email")?;
        }
        Kind::Location => {
            d.targets = doc.strings(spec.get("target"), "spec.target")?;
            d.targets
                .extend(doc.strings(spec.get("targets"), "spec.targets")?);
        }
        _ => {}
    }

    let mut paths_declared = false;
    if let Some(annotations) = metadata.get("annotations") {
        let Value::Object(map) = annotations else {
            return Err(doc.field_error("metadata.annotations", "must be a mapping"));
        };
        for (key, value) in map {
            if key == GITHUB_LOGIN_ANNOTATION && kind == Kind::User {
                // Not countersign's annotation, so not refused when odd: a login that is no
                // GitHub login only never matches anyone (the person never counts).
                d.github_login = scalar(value)
                    .map(|login| login.trim().to_owned())
                    .filter(|login| !login.is_empty());
                continue;
            }
            let Some(short) = key.strip_prefix(ANNOTATION_PREFIX) else {
                continue;
            };
            let value =
                scalar(value).ok_or_else(|| doc.annotation_error(key, "must be a string"))?;
            apply_annotation(&doc, &mut d, key, short, &value, limits)?;
            paths_declared |= short == "paths";
        }
    }
    if !paths_declared && kind == Kind::Component {
        let dir = repo_path::dir_of(&at.file);
        d.paths.push(if dir.is_empty() {
            "**".to_string()
        } else {
            format!("{dir}/**")
        });
    }
    Ok(d)
}

/// The globs of `countersign.dev/paths`: separated by commas or newlines, except a comma
/// inside `{…}`, which is the glob's own alternation (`src/{a,b}/**`).
fn glob_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            '\n' => {
                out.push(&value[start..i]);
                start = i + 1;
                depth = 0;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn list<'a>(value: &'a str, separators: &'a [char]) -> impl Iterator<Item = &'a str> {
    value
        .split(separators)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn apply_annotation(
    doc: &Doc<'_>,
    d: &mut Descriptor,
    key: &str,
    short: &str,
    value: &str,
    limits: &Limits,
) -> Result<(), GraphError> {
    match short {
        "criticality" => {
            d.criticality = value
                .parse()
                .map_err(|e| doc.annotation_error(key, format!("{e}")))?
        }
        "surfaces" => {
            for item in list(value, &[',']) {
                d.surfaces.insert(
                    item.parse()
                        .map_err(|e| doc.annotation_error(key, format!("{e}")))?,
                );
            }
        }
        "exposure" => {
            d.exposure = value
                .parse()
                .map_err(|e| doc.annotation_error(key, format!("{e}")))?
        }
        "revenue-path" => {
            d.revenue_path = match value.trim() {
                "true" => true,
                "false" => false,
                other => {
                    return Err(
                        doc.annotation_error(key, format!("`{other}` is not `true` or `false`"))
                    );
                }
            }
        }
        "suites" => d.suites = list(value, &[',']).map(str::to_string).collect(),
        "data-classes" => d.data_classes = list(value, &[',']).map(str::to_string).collect(),
        "paths" => {
            let dir = repo_path::dir_of(&d.source.file);
            let items = glob_list(value);
            if items.len() > limits.globs_per_entity {
                return Err(GraphError::Limit {
                    file: d.source.file.clone(),
                    line: doc.annotation_line(key),
                    what: format!(
                        "annotation `{key}` of {} lists {} globs",
                        d.entity,
                        items.len()
                    ),
                    limit: "globs_per_entity",
                    max: limits.globs_per_entity as u64,
                });
            }
            for item in items {
                if item.len() > limits.glob_bytes {
                    return Err(GraphError::Limit {
                        file: d.source.file.clone(),
                        line: doc.annotation_line(key),
                        what: format!(
                            "annotation `{key}` of {} has a glob of {} bytes",
                            d.entity,
                            item.len()
                        ),
                        limit: "glob_bytes",
                        max: limits.glob_bytes as u64,
                    });
                }
                let joined = match item.strip_prefix('/') {
                    Some(rooted) => repo_path::join("", rooted),
                    None => repo_path::join(dir, item),
                }
                .ok_or_else(|| {
                    doc.annotation_error(key, format!("`{item}` leaves the repository"))
                })?;
                let glob = match joined.strip_suffix('/') {
                    Some(dir) => format!("{dir}/**"),
                    None if joined.is_empty() => "**".to_string(),
                    None => joined,
                };
                repo_path::glob(&glob).map_err(|e| {
                    doc.annotation_error(key, format!("`{item}` is not a valid glob: {}", e.kind()))
                })?;
                d.paths.push(glob);
            }
        }
        "ssh-signing-keys" => {
            if d.entity.kind != Kind::User {
                return Err(doc.annotation_error(key, "only a User lists signing keys"));
            }
            d.ssh_signing_keys = value
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect();
        }
        "openpgp-signing-keys" => {
            if d.entity.kind != Kind::User {
                return Err(doc.annotation_error(key, "only a User lists signing keys"));
            }
            d.openpgp_signing_keys = Some(value.to_owned()).filter(|v| !v.trim().is_empty());
        }
        _ => return Err(doc.annotation_error(key, "unknown countersign annotation")),
    }
    Ok(())
}
