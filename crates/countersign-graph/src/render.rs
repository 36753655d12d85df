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
//! Nodes come sorted by ref, edges sorted by (from id, kind, to id). Only reads the graph;
//! the graph never reads this module (a node's JSON, which the version hashes, is `model`'s).

use serde_json::{Value, json};

use crate::graph::SystemGraph;
/// One node's JSON, the form the graph's version hashes too, so it lives with `Node`.
pub use crate::model::node_json;

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
        DevDependsOn => "devDependsOn",
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
