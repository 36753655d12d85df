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
    /// Names of the other members this one depends on (any dependency table), sorted.
    pub deps: BTreeSet<String>,
    pub manifest: SourceLocation,
}

/// Every member of the repository's Cargo and npm/pnpm workspaces.
pub fn discover(
    source: &dyn FileSource,
) -> Result<(Vec<WorkspacePackage>, Vec<Diagnostic>), GraphError> {
    let mut diagnostics = Vec::new();
    let mut packages = cargo(source, &mut diagnostics)?;
    packages.extend(npm(source, &mut diagnostics)?);
    Ok((packages, diagnostics))
}

fn read_text(source: &dyn FileSource, file: &str) -> Result<Option<String>, GraphError> {
    match source.read(file)? {
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

fn string_list(v: Option<&toml::Value>) -> Vec<String> {
    v.and_then(toml::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn cargo(
    source: &dyn FileSource,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<Vec<WorkspacePackage>, GraphError> {
    let root_file = "Cargo.toml";
    let Some(text) = read_text(source, root_file)? else {
        return Ok(Vec::new());
    };
    let root = parse_toml(root_file, &text)?;
    let Some(ws) = root.get("workspace").and_then(toml::Value::as_table) else {
        return Ok(Vec::new());
    };
    let mut dirs = members(
        manifest_dirs(source, "Cargo.toml"),
        &string_list(ws.get("members")),
        &string_list(ws.get("exclude")),
        root_file,
        "workspace.members",
    )?;
    if root.contains_key("package") && !dirs.iter().any(String::is_empty) {
        dirs.push(String::new());
    }
    // `workspace = true` dependencies inherit their path from [workspace.dependencies].
    let inherited: BTreeMap<String, String> = ws
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .map(|t| {
            t.iter()
                .filter_map(|(k, v)| {
                    Some((k.clone(), repo_path::join("", v.get("path")?.as_str()?)?))
                })
                .collect()
        })
        .unwrap_or_default();

    let mut raw = Vec::new();
    for dir in dirs {
        let file = if dir.is_empty() {
            root_file.to_string()
        } else {
            format!("{dir}/Cargo.toml")
        };
        let Some(text) = read_text(source, &file)? else {
            continue;
        };
        let manifest = parse_toml(&file, &text)?;
        let Some(name) = manifest
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(toml::Value::as_str)
        else {
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
        for table in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let Some(deps) = manifest.get(table).and_then(toml::Value::as_table) else {
                continue;
            };
            for (key, spec) in deps {
                let path = match spec.get("path").and_then(toml::Value::as_str) {
                    Some(p) => repo_path::join(&dir, p),
                    None if spec.get("workspace").and_then(toml::Value::as_bool) == Some(true) => {
                        inherited.get(key).cloned()
                    }
                    None => None,
                };
                dep_dirs.extend(path.map(|p| p.trim_end_matches('/').to_string()));
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
        for d in dep_dirs {
            match by_dir.get(d.as_str()) {
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
        out.push(WorkspacePackage {
            ecosystem: Ecosystem::Cargo,
            name: name.clone(),
            dir: dir.clone(),
            deps,
            manifest: SourceLocation {
                file: file.clone(),
                line: 1,
            },
        });
    }
    Ok(out)
}

fn npm(
    source: &dyn FileSource,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<Vec<WorkspacePackage>, GraphError> {
    let mut globs: Vec<String> = Vec::new();
    let mut declared_in = "package.json";
    if let Some(text) = read_text(source, "package.json")? {
        let root = parse_json("package.json", &text)?;
        let ws = root.get("workspaces");
        let list = ws.and_then(|w| w.as_array().or_else(|| w.get("packages")?.as_array()));
        globs.extend(
            list.into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string)),
        );
    }
    if let Some(text) = read_text(source, "pnpm-workspace.yaml")? {
        declared_in = "pnpm-workspace.yaml";
        let doc: serde_norway::Value = serde_norway::from_str(&text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| {
                (
                    u32::try_from(l.line()).unwrap_or(1),
                    u32::try_from(l.column()).unwrap_or(1),
                )
            });
            GraphError::Yaml {
                file: "pnpm-workspace.yaml".into(),
                line,
                column,
                message: e.to_string(),
            }
        })?;
        if let Some(list) = doc.get("packages").and_then(|p| p.as_sequence()) {
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
        let Some(text) = read_text(source, &file)? else {
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
        let mut deps: Vec<(String, bool)> = Vec::new();
        for table in [
            "dependencies",
            "devDependencies",
            "peerDependencies",
            "optionalDependencies",
        ] {
            if let Some(map) = manifest.get(table).and_then(|t| t.as_object()) {
                for (dep, spec) in map {
                    let workspace_protocol =
                        spec.as_str().is_some_and(|s| s.starts_with("workspace:"));
                    deps.push((dep.clone(), workspace_protocol));
                }
            }
        }
        raw.push((name.to_string(), dir, deps, file));
    }
    let names: BTreeSet<&str> = raw.iter().map(|(n, ..)| n.as_str()).collect();
    let mut out = Vec::new();
    for (name, dir, deps, file) in &raw {
        let mut resolved = BTreeSet::new();
        for (dep, workspace_protocol) in deps {
            if names.contains(dep.as_str()) {
                resolved.insert(dep.clone());
            } else if *workspace_protocol {
                diagnostics.push(Diagnostic::new(
                    Severity::Warning,
                    DiagnosticCode::Workspace,
                    format!("`{name}` depends on `{dep}` with `workspace:`, but no workspace package has that name"),
                    Some(SourceLocation { file: file.clone(), line: 1 }),
                ));
            }
        }
        out.push(WorkspacePackage {
            ecosystem: Ecosystem::Npm,
            name: name.clone(),
            dir: dir.clone(),
            deps: resolved,
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
