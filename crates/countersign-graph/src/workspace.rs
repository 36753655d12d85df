//! Cargo and npm/pnpm workspaces: each member package, its directory, and its
//! dependencies on other members.
//!
//! Reads only the manifests (`Cargo.toml`, `package.json`, `pnpm-workspace.yaml`); it does
//! not resolve registries or lockfiles. Turning packages into graph nodes (and merging them
//! with catalog entities) is [`crate::graph`]'s job.

use std::collections::{BTreeMap, BTreeSet};

use globset::GlobSetBuilder;

use crate::diagnostic::{Diagnostic, DiagnosticCode, Severity};
use crate::error::{GraphError, line_col};
use crate::limits::Limits;
use crate::model::SourceLocation;
use crate::repo_path;
use crate::source::FileSource;

/// Which package manager declared a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ecosystem {
    Cargo,
    Npm,
}

/// One workspace member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspacePackage {
    pub ecosystem: Ecosystem,
    /// The package name as the manifest spells it (`@acme/ui`, `countersign-graph`).
    pub name: String,
    /// Repository-relative directory (`""` for the root).
    pub dir: String,
    /// Names of the other members this one depends on at run or build time (Cargo
    /// `dependencies` and `build-dependencies`; npm `dependencies`, `peerDependencies`,
    /// `optionalDependencies`), sorted.
    pub deps: BTreeSet<String>,
    /// Names of the members it depends on only for its own tests and tooling (Cargo
    /// `dev-dependencies`, npm `devDependencies`), sorted; never also in `deps`.
    pub dev_deps: BTreeSet<String>,
    pub manifest: SourceLocation,
}

/// The file names of the manifests this module reads.
pub const MANIFESTS: [&str; 3] = ["Cargo.toml", "package.json", "pnpm-workspace.yaml"];

/// Whether `path` is a workspace manifest: code that declares dependencies, not a rule.
/// Its edges enter the graph, but a change to it is an ordinary change, not governance.
pub fn is_manifest(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    MANIFESTS.contains(&name)
}

/// Every member of the repository's Cargo and npm/pnpm workspaces.
///
/// A manifest field of the wrong type, or a path dependency that leaves the repository, is
/// an error diagnostic naming the file and field (Cargo and npm would refuse the manifest;
/// skipping it silently would drop edges and shrink blast radii).
pub fn discover(
    source: &dyn FileSource,
    limits: &Limits,
) -> Result<(Vec<WorkspacePackage>, Vec<Diagnostic>), GraphError> {
    let mut diagnostics = Vec::new();
    let mut packages = cargo(source, limits, &mut diagnostics)?;
    packages.extend(npm(source, limits, &mut diagnostics)?);
    Ok((packages, diagnostics))
}

/// An error diagnostic about a manifest (line 1: TOML and JSON values keep no position).
fn manifest_error(file: &str, message: String) -> Diagnostic {
    Diagnostic::new(
        Severity::Error,
        DiagnosticCode::Workspace,
        message,
        Some(SourceLocation {
            file: file.to_string(),
            line: 1,
        }),
    )
}

fn read_text(
    source: &dyn FileSource,
    file: &str,
    limits: &Limits,
) -> Result<Option<String>, GraphError> {
    match source.read(file, limits.file_bytes)? {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| GraphError::NotUtf8 { file: file.into() }),
    }
}

fn parse_toml(file: &str, text: &str) -> Result<toml::Table, GraphError> {
    text.parse::<toml::Table>().map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        GraphError::Toml {
            file: file.into(),
            line,
            column,
            message: e.message().to_string(),
        }
    })
}

fn parse_json(file: &str, text: &str) -> Result<serde_json::Value, GraphError> {
    serde_json::from_str(text).map_err(|e| GraphError::Json {
        file: file.into(),
        line: u32::try_from(e.line()).unwrap_or(u32::MAX),
        column: u32::try_from(e.column()).unwrap_or(u32::MAX),
        message: e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_string(),
    })
}

/// Directories that hold a file named `manifest`, skipping vendored `node_modules`.
fn manifest_dirs<'a>(
    source: &'a dyn FileSource,
    manifest: &'a str,
) -> impl Iterator<Item = &'a str> {
    source.paths().iter().filter_map(move |p| {
        let dir = if p == manifest {
            ""
        } else {
            p.strip_suffix(manifest)?.strip_suffix('/')?
        };
        (!dir.split('/').any(|s| s == "node_modules")).then_some(dir)
    })
}

/// Directories among `candidates` matched by `includes` and not by `excludes`.
fn members<'a>(
    candidates: impl Iterator<Item = &'a str>,
    includes: &[String],
    excludes: &[String],
    file: &str,
    field: &str,
) -> Result<Vec<String>, GraphError> {
    let build = |globs: &[String]| {
        let mut b = GlobSetBuilder::new();
        for g in globs {
            let g = g.trim_start_matches("./").trim_end_matches('/');
            b.add(repo_path::glob(g).map_err(|e| GraphError::Field {
                file: file.into(),
                line: 1,
                field: field.into(),
                message: format!("invalid glob `{g}`: {}", e.kind()),
            })?);
        }
        b.build().map_err(|e| GraphError::Field {
            file: file.into(),
            line: 1,
            field: field.into(),
            message: e.to_string(),
        })
    };
    let inc = build(includes)?;
    let exc = build(excludes)?;
    Ok(candidates
        .filter(|d| inc.is_match(d) && !exc.is_match(d))
        .map(str::to_string)
        .collect())
}

/// An array of strings; anything else is reported and read as empty.
fn string_list(
    v: Option<&toml::Value>,
    file: &str,
    field: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<String> {
    let Some(v) = v else { return Vec::new() };
    match v.as_array() {
        Some(a) if a.iter().all(toml::Value::is_str) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => {
            diagnostics.push(manifest_error(
                file,
                format!("`{field}` must be an array of strings; ignored"),
            ));
            Vec::new()
        }
    }
}

/// A table field, `None` when absent; another type is reported and read as absent.
fn table<'a>(
    parent: &'a toml::Table,
    key: &str,
    file: &str,
    field: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<&'a toml::Table> {
    let v = parent.get(key)?;
    if v.as_table().is_none() {
        diagnostics.push(manifest_error(
            file,
            format!("`{field}` must be a table; ignored"),
        ));
    }
    v.as_table()
}

/// A path dependency resolved against its manifest's directory; one that is absolute or
/// climbs above the root leaves the repository and is reported, never followed.
fn dependency_path(
    dir: &str,
    path: &str,
    file: &str,
    field: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<String> {
    let joined = if path.starts_with('/') || path.contains('\\') || path.contains(':') {
        None
    } else {
        repo_path::join(dir, path)
    };
    if joined.is_none() {
        diagnostics.push(manifest_error(
            file,
            format!(
                "`{field}` path `{path}` leaves the repository; countersign maps only the \
                 repository's own packages"
            ),
        ));
    }
    joined
}

fn cargo(
    source: &dyn FileSource,
    limits: &Limits,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<Vec<WorkspacePackage>, GraphError> {
    let root_file = "Cargo.toml";
    let Some(text) = read_text(source, root_file, limits)? else {
        return Ok(Vec::new());
    };
    let root = parse_toml(root_file, &text)?;
    let Some(ws) = table(&root, "workspace", root_file, "workspace", diagnostics) else {
        return Ok(Vec::new());
    };
    let includes = string_list(
        ws.get("members"),
        root_file,
        "workspace.members",
        diagnostics,
    );
    let excludes = string_list(
        ws.get("exclude"),
        root_file,
        "workspace.exclude",
        diagnostics,
    );
    let mut dirs = members(
        manifest_dirs(source, "Cargo.toml"),
        &includes,
        &excludes,
        root_file,
        "workspace.members",
    )?;
    if root.contains_key("package") && !dirs.iter().any(String::is_empty) {
        dirs.push(String::new());
    }
    // `workspace = true` dependencies inherit their path from [workspace.dependencies].
    let mut inherited: BTreeMap<String, String> = BTreeMap::new();
    if let Some(t) = table(
        ws,
        "dependencies",
        root_file,
        "workspace.dependencies",
        diagnostics,
    ) {
        for (k, v) in t {
            let field = format!("workspace.dependencies.{k}");
            if let Some(path) = dependency_spec_path(v, root_file, &field, diagnostics)
                && let Some(p) = dependency_path("", path, root_file, &field, diagnostics)
            {
                inherited.insert(k.clone(), p);
            }
        }
    }

    let mut raw = Vec::new();
    for dir in dirs {
        let file = if dir.is_empty() {
            root_file.to_string()
        } else {
            format!("{dir}/Cargo.toml")
        };
        let Some(text) = read_text(source, &file, limits)? else {
            continue;
        };
        let manifest = parse_toml(&file, &text)?;
        let name_value = manifest.get("package").and_then(|p| p.get("name"));
        if name_value.is_some_and(|n| !n.is_str()) {
            diagnostics.push(manifest_error(
                &file,
                "`package.name` must be a string; the member is skipped".into(),
            ));
            continue;
        }
        let Some(name) = name_value.and_then(toml::Value::as_str) else {
            diagnostics.push(Diagnostic::new(
                Severity::Warning,
                DiagnosticCode::Workspace,
                format!("workspace member `{file}` has no [package] name; skipped"),
                Some(SourceLocation {
                    file: file.clone(),
                    line: 1,
                }),
            ));
            continue;
        };
        let mut dep_dirs = BTreeSet::new();
        for kind in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let dev = kind == "dev-dependencies";
            let Some(deps) = table(&manifest, kind, &file, kind, diagnostics) else {
                continue;
            };
            for (key, spec) in deps {
                let field = format!("{kind}.{key}");
                let path = match dependency_spec_path(spec, &file, &field, diagnostics) {
                    Some(p) => dependency_path(&dir, p, &file, &field, diagnostics),
                    None => match spec.get("workspace") {
                        Some(toml::Value::Boolean(true)) => inherited.get(key).cloned(),
                        Some(toml::Value::Boolean(false)) | None => None,
                        Some(_) => {
                            diagnostics.push(manifest_error(
                                &file,
                                format!("`{field}.workspace` must be a boolean; ignored"),
                            ));
                            None
                        }
                    },
                };
                dep_dirs.extend(path.map(|p| (p.trim_end_matches('/').to_string(), dev)));
            }
        }
        raw.push((name.to_string(), dir, dep_dirs, file));
    }
    let by_dir: BTreeMap<&str, &str> = raw
        .iter()
        .map(|(n, d, _, _)| (d.as_str(), n.as_str()))
        .collect();
    let mut out = Vec::new();
    for (name, dir, dep_dirs, file) in &raw {
        let mut deps = BTreeSet::new();
        let mut dev_deps = BTreeSet::new();
        for (d, dev) in dep_dirs {
            match by_dir.get(d.as_str()) {
                Some(n) if *dev => {
                    dev_deps.insert((*n).to_string());
                }
                Some(n) => {
                    deps.insert((*n).to_string());
                }
                None => diagnostics.push(Diagnostic::new(
                    Severity::Warning,
                    DiagnosticCode::Workspace,
                    format!(
                        "`{name}` has a path dependency on `{d}`, which is not a workspace member"
                    ),
                    Some(SourceLocation {
                        file: file.clone(),
                        line: 1,
                    }),
                )),
            }
        }
        let dev_deps = dev_deps.difference(&deps).cloned().collect();
        out.push(WorkspacePackage {
            ecosystem: Ecosystem::Cargo,
            name: name.clone(),
            dir: dir.clone(),
            deps,
            dev_deps,
            manifest: SourceLocation {
                file: file.clone(),
                line: 1,
            },
        });
    }
    Ok(out)
}

/// The `path` of a dependency spec: a version string has none; a table may have one, which
/// must be a string; any other spec is reported.
fn dependency_spec_path<'a>(
    spec: &'a toml::Value,
    file: &str,
    field: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<&'a str> {
    match spec {
        toml::Value::String(_) => None,
        toml::Value::Table(t) => match t.get("path") {
            None => None,
            Some(toml::Value::String(p)) => Some(p),
            Some(_) => {
                diagnostics.push(manifest_error(
                    file,
                    format!("`{field}.path` must be a string; ignored"),
                ));
                None
            }
        },
        _ => {
            diagnostics.push(manifest_error(
                file,
                format!("`{field}` must be a version string or a table; ignored"),
            ));
            None
        }
    }
}

fn npm(
    source: &dyn FileSource,
    limits: &Limits,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<Vec<WorkspacePackage>, GraphError> {
    let mut globs: Vec<String> = Vec::new();
    let mut declared_in = "package.json";
    if let Some(text) = read_text(source, "package.json", limits)? {
        let root = parse_json("package.json", &text)?;
        let ws = root.get("workspaces");
        let list = ws.and_then(|w| w.as_array().or_else(|| w.get("packages")?.as_array()));
        globs.extend(
            list.into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string)),
        );
    }
    if let Some(text) = read_text(source, "pnpm-workspace.yaml", limits)? {
        declared_in = "pnpm-workspace.yaml";
        let docs = crate::yaml::documents(declared_in, &text, limits)?;
        if let Some(list) = docs
            .first()
            .and_then(|d| d.value.get("packages"))
            .and_then(|p| p.as_array())
        {
            globs.extend(list.iter().filter_map(|v| v.as_str().map(str::to_string)));
        }
    }
    if globs.is_empty() {
        return Ok(Vec::new());
    }
    let (excludes, includes): (Vec<String>, Vec<String>) =
        globs.into_iter().partition(|g| g.starts_with('!'));
    let excludes: Vec<String> = excludes.iter().map(|g| g[1..].to_string()).collect();
    let dirs = members(
        manifest_dirs(source, "package.json"),
        &includes,
        &excludes,
        declared_in,
        "packages",
    )?;

    let mut raw = Vec::new();
    for dir in dirs {
        let file = if dir.is_empty() {
            "package.json".to_string()
        } else {
            format!("{dir}/package.json")
        };
        let Some(text) = read_text(source, &file, limits)? else {
            continue;
        };
        let manifest = parse_json(&file, &text)?;
        let Some(name) = manifest.get("name").and_then(|n| n.as_str()) else {
            diagnostics.push(Diagnostic::new(
                Severity::Warning,
                DiagnosticCode::Workspace,
                format!("workspace member `{file}` has no name; skipped"),
                Some(SourceLocation {
                    file: file.clone(),
                    line: 1,
                }),
            ));
            continue;
        };
        // (name, `workspace:` protocol, a devDependency)
        let mut deps: Vec<(String, bool, bool)> = Vec::new();
        for table in [
            "dependencies",
            "devDependencies",
            "peerDependencies",
            "optionalDependencies",
        ] {
            let field = manifest.get(table);
            if field.is_some_and(|t| !t.is_object()) {
                diagnostics.push(manifest_error(
                    &file,
                    format!("`{table}` must be an object; ignored"),
                ));
            }
            if let Some(map) = field.and_then(|t| t.as_object()) {
                for (dep, spec) in map {
                    let workspace_protocol =
                        spec.as_str().is_some_and(|s| s.starts_with("workspace:"));
                    deps.push((dep.clone(), workspace_protocol, table == "devDependencies"));
                }
            }
        }
        raw.push((name.to_string(), dir, deps, file));
    }
    let names: BTreeSet<&str> = raw.iter().map(|(n, ..)| n.as_str()).collect();
    let mut out = Vec::new();
    for (name, dir, deps, file) in &raw {
        let mut resolved = BTreeSet::new();
        let mut dev_resolved = BTreeSet::new();
        for (dep, workspace_protocol, dev) in deps {
            if names.contains(dep.as_str()) {
                if *dev {
                    dev_resolved.insert(dep.clone());
                } else {
                    resolved.insert(dep.clone());
                }
            } else if *workspace_protocol {
                diagnostics.push(Diagnostic::new(
                    Severity::Warning,
                    DiagnosticCode::Workspace,
                    format!("`{name}` depends on `{dep}` with `workspace:`, but no workspace package has that name"),
                    Some(SourceLocation { file: file.clone(), line: 1 }),
                ));
            }
        }
        let dev_deps = dev_resolved.difference(&resolved).cloned().collect();
        out.push(WorkspacePackage {
            ecosystem: Ecosystem::Npm,
            name: name.clone(),
            dir: dir.clone(),
            deps: resolved,
            dev_deps,
            manifest: SourceLocation {
                file: file.clone(),
                line: 1,
            },
        });
    }
    Ok(out)
}

/// A Backstage-valid entity name for a package name: `@acme/ui-kit` → `acme-ui-kit`.
pub fn entity_name(package: &str) -> String {
    let mut out = String::new();
    for c in package.trim_start_matches('@').chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if matches!(c, '-' | '_' | '.') && !out.is_empty() && !out.ends_with(['-', '_', '.'])
        {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with(['-', '_', '.']) {
            out.push('-');
        }
    }
    out.truncate(63);
    while out.ends_with(['-', '_', '.']) {
        out.pop();
    }
    if out.is_empty() {
        "package".to_string()
    } else {
        out
    }
}
