//! Renderings of a graph for people and tools: JSON, Graphviz DOT, Mermaid.
//!
//! # JSON shape (`to_json`), stable
//! ```json
//! { "version": "<sha256 hex>",
//!   "nodes": [ { "ref": "component:default/payments-api", "kind": "component",
//!                "namespace": "default", "name": "payments-api", "title": null,
//!                "type": "service", "owner": "group:default/payments", "system": null,
//!                "criticality": "high", "surfaces": ["payments"], "paths": ["services/pay/**"],
//!                "suites": [], "revenue_path": true, "exposure": "internet",
//!                "data_classes": [], "member_of": [],
//!                "source": { "file": "services/pay/catalog-info.yaml", "line": 1 } } ],
//!   "edges": [ { "from": "component:default/a", "kind": "depends-on", "to": "resource:default/db" } ],
//!   "dangling": [ { "from": "...", "kind": "depends-on", "to": "component:default/missing" } ] }
//! ```
//! Nodes come sorted by ref, edges sorted by (from id, kind, to id). Only reads the graph.

use serde_json::{Value, json};

use crate::graph::SystemGraph;
use crate::model::Node;

/// One node as JSON; `with_source` false leaves out the position (for the version,
/// which must not change when a document moves within its file).
pub fn node_json(n: &Node, with_source: bool) -> Value {
    let mut paths = n.paths.clone();
    if !with_source {
        paths.sort();
    }
    let mut v = json!({
        "ref": n.entity,
        "kind": n.entity.kind,
        "namespace": n.entity.namespace,
        "name": n.entity.name,
        "title": n.title,
        "type": n.spec_type,
        "owner": n.owner,
        "system": n.system,
        "criticality": n.criticality,
        "surfaces": n.surfaces,
        "paths": paths,
        "suites": n.suites,
        "revenue_path": n.revenue_path,
        "exposure": n.exposure,
        "data_classes": n.data_classes,
        "member_of": n.member_of,
    });
    if with_source && let Some(obj) = v.as_object_mut() {
        obj.insert("source".into(), json!(n.source));
    }
    v
}

/// The whole graph as JSON, in the shape documented above.
pub fn to_json(graph: &SystemGraph) -> Value {
    let r = |id: crate::NodeId| {
        graph
            .node(id)
            .map(|n| n.entity.to_string())
            .unwrap_or_default()
    };
    json!({
        "version": graph.version(),
        "nodes": graph.nodes().iter().map(|n| node_json(n, true)).collect::<Vec<_>>(),
        "edges": graph.edges().iter().map(|e| json!({"from": r(e.from), "kind": e.kind, "to": r(e.to)})).collect::<Vec<_>>(),
        "dangling": graph.dangling().iter().map(|d| json!({"from": r(d.from), "kind": d.kind, "to": d.to})).collect::<Vec<_>>(),
    })
}

fn edge_label(kind: crate::graph::EdgeKind) -> &'static str {
    use crate::graph::EdgeKind::*;
    match kind {
        DependsOn => "dependsOn",
        ProvidesApi => "providesApi",
        ConsumesApi => "consumesApi",
        PartOf => "partOf",
        SubcomponentOf => "subcomponentOf",
        OwnedBy => "ownedBy",
        MemberOf => "memberOf",
        ChildOf => "childOf",
    }
}

/// Graphviz DOT: one node per entity (labelled with its ref), one edge per relation.
pub fn to_dot(graph: &SystemGraph) -> String {
    let mut out = String::from("digraph system {\n  rankdir=LR;\n");
    for n in graph.nodes() {
        let shape = match n.entity.kind {
            crate::Kind::Api => "ellipse",
            crate::Kind::Resource => "cylinder",
            crate::Kind::Group | crate::Kind::User => "house",
            _ => "box",
        };
        out.push_str(&format!(
            "  n{} [label=\"{}\", shape={shape}];\n",
            n.id.0, n.entity
        ));
    }
    for e in graph.edges() {
        out.push_str(&format!(
            "  n{} -> n{} [label=\"{}\"];\n",
            e.from.0,
            e.to.0,
            edge_label(e.kind)
        ));
    }
    out.push_str("}\n");
    out
}

/// A Mermaid flowchart of the same graph.
pub fn to_mermaid(graph: &SystemGraph) -> String {
    let mut out = String::from("flowchart LR\n");
    for n in graph.nodes() {
        out.push_str(&format!("  n{}[\"{}\"]\n", n.id.0, n.entity));
    }
    for e in graph.edges() {
        out.push_str(&format!(
            "  n{} -->|{}| n{}\n",
            e.from.0,
            edge_label(e.kind),
            e.to.0
        ));
    }
    out
}
