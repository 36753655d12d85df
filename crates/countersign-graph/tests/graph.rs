//! Black-box tests of the graph: a small hand-written repository, bad inputs with their
//! exact errors, workspaces, and the version's order-independence.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use countersign_graph::check::check;
use countersign_graph::render;
use countersign_graph::{EntityRef, GraphSettings, Kind, MemorySource, Surface, build, impact};
use proptest::prelude::*;

const TEAMS: &str = "\
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: platform
spec:
  type: team
  children: [payments]
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: payments
spec:
  type: team
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: alice
spec:
  profile:
    email: Alice@example.com
  memberOf: [payments]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: bob
spec:
  memberOf: [platform]
";

const ROOT: &str = "\
apiVersion: backstage.io/v1alpha1
kind: Location
metadata:
  name: root
spec:
  targets:
    - ./catalog/teams.yaml
    - https://example.com/catalog-info.yaml
    - ../outside.yaml
";

const PAYMENTS: &str = "\
# The payments service and what it owns.
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: payments-service
  annotations:
    countersign.dev/criticality: critical
    countersign.dev/surfaces: payments, regulated-data
    countersign.dev/revenue-path: \"true\"
    countersign.dev/suites: payments-unit, payments-e2e
spec:
  type: service
  owner: payments
  system: commerce
  providesApis: [payments-api]
  dependsOn: [resource:payments-db, component:money]
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: payments-api
spec:
  type: openapi
  owner: payments
---
apiVersion: backstage.io/v1alpha1
kind: Resource
metadata:
  name: payments-db
  annotations:
    countersign.dev/paths: /db/migrations/
    countersign.dev/data-classes: pci
spec:
  type: database
  owner: payments
";

const CHECKOUT: &str = "\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: checkout
  annotations:
    countersign.dev/exposure: internet
    countersign.dev/criticality: high
spec:
  type: website
  owner: platform
  consumesApis: [payments-api]
  dependsOn: [component:ghost-service]
";

const WEB: &str = "\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: web
  annotations:
    countersign.dev/paths: src/**, /shared/web-assets/
spec:
  type: website
  owner: user:bob
  dependsOn: [component:checkout]
";

const CODEOWNERS: &str = "\
* @acme/platform
/services/payments/ @acme/payments alice@example.com
/docs/ @ghost nobody@example.com
!secret.txt @acme/payments
";

fn demo_files() -> Vec<(&'static str, String)> {
    vec![
        ("catalog-info.yaml", ROOT.into()),
        ("catalog/teams.yaml", TEAMS.into()),
        ("services/payments/catalog-info.yaml", PAYMENTS.into()),
        ("services/payments/src/lib.rs", "".into()),
        ("services/checkout/catalog-info.yaml", CHECKOUT.into()),
        ("services/checkout/app.ts", "".into()),
        ("services/web/catalog-info.yaml", WEB.into()),
        ("services/web/src/index.ts", "".into()),
        ("shared/web-assets/logo.svg", "".into()),
        ("db/migrations/001_init.sql", "".into()),
        (".github/CODEOWNERS", CODEOWNERS.into()),
        (".github/workflows/ci.yml", "".into()),
        ("countersign.toml", "".into()),
        ("README.md", "".into()),
        ("Cargo.toml", "[workspace]\nmembers = [\"libs/*\"]\n".into()),
        (
            "libs/money/Cargo.toml",
            "[package]\nname = \"money\"\n".into(),
        ),
        ("libs/money/src/lib.rs", "".into()),
        (
            "libs/ledger/Cargo.toml",
            "[package]\nname = \"ledger\"\n[dependencies]\nmoney = { path = \"../money\" }\n"
                .into(),
        ),
    ]
}

fn settings() -> GraphSettings {
    GraphSettings {
        never_automate: vec![
            (Surface::Irreversible, vec!["**/migrations/**".into()]),
            (Surface::CiCd, vec![".github/workflows/**".into()]),
        ],
        ..GraphSettings::default()
    }
}

fn demo() -> countersign_graph::BuildOutput {
    build(&MemorySource::new(demo_files()), &settings()).unwrap()
}

fn r(kind: Kind, name: &str) -> EntityRef {
    EntityRef::new(kind, "default", name)
}

#[test]
fn demo_graph_shape_and_diagnostics() {
    let out = demo();
    let g = &out.graph;
    let names: Vec<String> = g.nodes().iter().map(|n| n.entity.to_string()).collect();
    insta::assert_json_snapshot!("demo_nodes", names);
    let diagnostics: Vec<String> = out.diagnostics.iter().map(ToString::to_string).collect();
    insta::assert_json_snapshot!("demo_build_diagnostics", diagnostics);

    // Group membership is transitive through child groups.
    let members: Vec<String> = g
        .members(&r(Kind::Group, "platform"))
        .into_iter()
        .map(|id| g.node(id).unwrap().entity.name.clone())
        .collect();
    assert_eq!(members, ["alice", "bob"]);
    // Path mapping: most specific glob wins.
    let map = |p: &str| -> Vec<String> {
        g.map_path(p)
            .into_iter()
            .map(|id| g.node(id).unwrap().entity.name.clone())
            .collect()
    };
    assert_eq!(map("services/payments/src/lib.rs"), ["payments-service"]);
    assert_eq!(map("db/migrations/001_init.sql"), ["payments-db"]);
    assert_eq!(map("shared/web-assets/logo.svg"), ["web"]);
    // No glob claims the descriptor itself; it falls back to the one Component it declares.
    assert_eq!(map("services/web/catalog-info.yaml"), ["web"]);
    assert_eq!(map("libs/ledger/Cargo.toml"), ["ledger"]);
    assert_eq!(map("README.md"), Vec::<String>::new());
    // CODEOWNERS: email owners resolve through profile emails.
    let owners: Vec<String> = g
        .owners_of_path("services/payments/x")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(owners, ["group:default/payments", "user:default/alice"]);
    // The workspace dependency is an edge; `money` merged with nothing (no catalog claim).
    let ledger = g.find(&r(Kind::Component, "ledger")).unwrap();
    let money = g.find(&r(Kind::Component, "money")).unwrap();
    assert_eq!(g.dependencies(ledger), [money]);
}

#[test]
fn impact_on_demo_catalog() {
    let out = demo();
    let changed = [
        "services/payments/src/lib.rs",
        "db/migrations/001_init.sql",
        "README.md",
        ".github/CODEOWNERS",
        ".github/workflows/ci.yml",
        "README.md",
    ];
    insta::assert_json_snapshot!("impact_payments_change", impact(&out.graph, &changed));
    let lib = impact(&out.graph, &["libs/money/src/lib.rs"]);
    insta::assert_json_snapshot!("impact_money_change", lib);
}

#[test]
fn check_report_on_demo() {
    let report = check(&demo());
    let lines: Vec<String> = report.diagnostics.iter().map(ToString::to_string).collect();
    insta::assert_json_snapshot!("demo_check", (lines, &report.coverage));
}

#[test]
fn renderings() {
    let out = demo();
    insta::assert_snapshot!("demo_mermaid", render::to_mermaid(&out.graph));
    let json = render::to_json(&out.graph);
    assert_eq!(json["version"], out.graph.version());
    assert!(render::to_dot(&out.graph).starts_with("digraph system {"));
}

#[test]
fn cycles_are_warnings_with_the_cycle() {
    let doc = |name: &str, dep: &str| {
        format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  dependsOn: [component:{dep}]\n"
        )
    };
    let src = MemorySource::new([
        ("a/catalog-info.yaml", doc("a", "b")),
        ("b/catalog-info.yaml", doc("b", "c")),
        ("c/catalog-info.yaml", doc("c", "a")),
    ]);
    let report = check(&build(&src, &GraphSettings::default()).unwrap());
    let lines: Vec<String> = report.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "a/catalog-info.yaml:1: warning: dependency cycle: component:default/a → component:default/b → component:default/c → component:default/a"
        ]
    );
}

/// Each bad input and its exact error.
#[test]
fn bad_inputs() {
    let component = |extra: &str| {
        format!("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: x\n{extra}")
    };
    let cases: Vec<(String, &str)> = vec![
        (
            "# header\n---\napiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: ok\n---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: [unclosed\n".into(),
            "svc/catalog-info.yaml:11:9: malformed YAML: unclosed bracket '['",
        ),
        (
            "apiVersion: backstage.io/v1alpha1\nkind: Template\nmetadata:\n  name: t\n".into(),
            "svc/catalog-info.yaml:2: unknown kind `Template` (expected one of Component, API, Resource, System, Domain, Group, User, Location)",
        ),
        (
            "apiVersion: v1\nkind: Component\nmetadata:\n  name: t\n".into(),
            "svc/catalog-info.yaml:1: unsupported apiVersion `v1` (expected backstage.io/v1alpha1 or backstage.io/v1beta1)",
        ),
        (
            component("  annotations:\n    countersign.dev/criticality: extreme\n"),
            "svc/catalog-info.yaml:6: annotation `countersign.dev/criticality`: unknown criticality `extreme` (expected one of: low, moderate, high, critical)",
        ),
        (
            component("  annotations:\n    countersign.dev/surfaces: auth, payment\n"),
            "svc/catalog-info.yaml:6: annotation `countersign.dev/surfaces`: unknown surface `payment` (expected one of: auth, authz, payments, regulated-data, irreversible, ci-cd, governance, build)",
        ),
        (
            component("  annotations:\n    countersign.dev/revenue-path: yes\n"),
            "svc/catalog-info.yaml:6: annotation `countersign.dev/revenue-path`: `yes` is not `true` or `false`",
        ),
        (
            component("  annotations:\n    countersign.dev/paths: ../../etc/**\n"),
            "svc/catalog-info.yaml:6: annotation `countersign.dev/paths`: `../../etc/**` leaves the repository",
        ),
        (
            component("  annotations:\n    countersign.dev/criticalty: high\n"),
            "svc/catalog-info.yaml:6: annotation `countersign.dev/criticalty`: unknown countersign annotation",
        ),
        (
            component("spec:\n  dependsOn: [orders-db]\n"),
            "svc/catalog-info.yaml:6: field `spec.dependsOn`: entity reference `orders-db` did not specify a kind (e.g. starting with `component:`), and has no default",
        ),
        (
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: bad name\n".into(),
            "svc/catalog-info.yaml:4: field `metadata.name`: `bad name` is not a valid name (letters, digits and inner `-`, `_`, `.`, at most 63 characters)",
        ),
        (
            "apiVersion: backstage.io/v1alpha1\nkind: Component\n".into(),
            "svc/catalog-info.yaml:1: field `metadata`: is required",
        ),
        (
            // The key's own line, in the second document of a file.
            format!(
                "{}---\n{}",
                component("spec:\n  owner: group:team\n"),
                component("  annotations:\n    countersign.dev/criticality: high\n    countersign.dev/exposure: everywhere\n")
            ),
            "svc/catalog-info.yaml:14: annotation `countersign.dev/exposure`: unknown exposure `everywhere` (expected one of: internet, internal)",
        ),
        (
            component("spec:\n  type: service\n  owner: group:team\n  system: bad name\n"),
            "svc/catalog-info.yaml:8: field `spec.system`: entity reference `bad name` has an invalid name `bad name` (letters, digits and inner `-`, `_`, `.`, at most 63 characters)",
        ),
        (
            component("spec:\n  owner: a\n  type: service\n  owner: b\n"),
            "svc/catalog-info.yaml:8: field `owner`: duplicate key in one mapping",
        ),
    ];
    for (text, expect) in cases {
        let src = MemorySource::new([("svc/catalog-info.yaml", text.clone())]);
        let err = build(&src, &GraphSettings::default()).expect_err(&text);
        assert_eq!(err.to_string(), expect, "for input:\n{text}");
    }
}

#[test]
fn npm_and_pnpm_workspaces() {
    let src = MemorySource::new([
        (
            "package.json",
            r#"{"name": "root", "workspaces": ["packages/*", "!packages/skip"]}"#,
        ),
        (
            "packages/ui/package.json",
            r#"{"name": "@acme/ui", "dependencies": {"@acme/tokens": "workspace:*", "react": "^18"}}"#,
        ),
        (
            "packages/tokens/package.json",
            r#"{"name": "@acme/tokens", "devDependencies": {"@acme/missing": "workspace:^"}}"#,
        ),
        ("packages/skip/package.json", r#"{"name": "skip"}"#),
        (
            "packages/ui/node_modules/x/package.json",
            r#"{"name": "x"}"#,
        ),
    ]);
    let out = build(&src, &GraphSettings::default()).unwrap();
    let g = &out.graph;
    let names: Vec<String> = g
        .nodes()
        .iter()
        .map(|n| format!("{} {:?} {:?}", n.entity, n.spec_type, n.paths))
        .collect();
    assert_eq!(
        names,
        [
            "component:default/acme-tokens Some(\"library\") [\"packages/tokens/**\"]",
            "component:default/acme-ui Some(\"library\") [\"packages/ui/**\"]",
        ]
    );
    assert_eq!(g.edges().len(), 1);
    let diagnostics: Vec<String> = out.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        diagnostics,
        [
            "packages/tokens/package.json:1: warning: `@acme/tokens` depends on `@acme/missing` with `workspace:`, but no workspace package has that name"
        ]
    );

    let pnpm = MemorySource::new([
        ("pnpm-workspace.yaml", "packages:\n  - 'apps/**'\n"),
        (
            "apps/web/package.json",
            r#"{"name": "web", "dependencies": {"api": "1.0.0"}}"#,
        ),
        (
            "apps/web/catalog-info.yaml",
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: storefront\nspec:\n  type: website\n",
        ),
        ("apps/api/package.json", r#"{"name": "api"}"#),
    ]);
    let g = build(&pnpm, &GraphSettings::default()).unwrap().graph;
    // The catalog Component owning apps/web absorbs the `web` package and its edge.
    let names: Vec<String> = g.nodes().iter().map(|n| n.entity.to_string()).collect();
    assert_eq!(
        names,
        ["component:default/api", "component:default/storefront"]
    );
    let storefront = g
        .find(&EntityRef::new(Kind::Component, "default", "storefront"))
        .unwrap();
    assert_eq!(g.dependencies(storefront).len(), 1);
}

/// A dev-dependency plans the dependent's tests but is not a runtime edge: no blast
/// radius, no criticality carried, no cycle (Cargo's usual `core` ⇄ `testkit` pair).
#[test]
fn dev_dependencies_are_their_own_edge_kind() {
    let catalog = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: core\n  annotations:\n    countersign.dev/criticality: critical\n    countersign.dev/surfaces: payments\nspec:\n  type: library\n";
    let src = MemorySource::new([
        (
            "Cargo.toml",
            "[workspace]\nmembers = [\"core\", \"testkit\", \"app\"]\n".to_string(),
        ),
        (
            "core/Cargo.toml",
            "[package]\nname = \"core\"\n[dev-dependencies]\ntestkit = { path = \"../testkit\" }\n".into(),
        ),
        ("core/catalog-info.yaml", catalog.into()),
        (
            "testkit/Cargo.toml",
            "[package]\nname = \"testkit\"\n[dependencies]\ncore = { path = \"../core\" }\n".into(),
        ),
        (
            "app/Cargo.toml",
            "[package]\nname = \"app\"\n[dependencies]\ncore = { path = \"../core\" }\n[dev-dependencies]\ncore = { path = \"../core\" }\ntestkit = { path = \"../testkit\" }\n".into(),
        ),
    ]);
    let out = build(&src, &GraphSettings::default()).unwrap();
    let g = &out.graph;
    let edges: Vec<String> = g
        .edges()
        .iter()
        .map(|e| {
            let name = |id| g.node(id).unwrap().entity.name.clone();
            format!("{} {:?} {}", name(e.from), e.kind, name(e.to))
        })
        .collect();
    // app's runtime edge to core makes its dev edge to core moot.
    assert_eq!(
        edges,
        [
            "app DependsOn core",
            "app DevDependsOn testkit",
            "core DevDependsOn testkit",
            "testkit DependsOn core",
        ]
    );
    let report = check(&out);
    assert!(
        report
            .diagnostics
            .iter()
            .all(|d| !d.to_string().contains("cycle")),
        "{:?}",
        report.diagnostics
    );

    let change = impact(g, &["testkit/src/lib.rs"]);
    assert!(change.blast_radius.is_empty(), "{:?}", change.blast_radius);
    assert_eq!(
        change.max_criticality_reached,
        Some(countersign_graph::Criticality::Low)
    );
    assert!(change.surfaces_reached.is_empty());
    let dev: Vec<String> = change
        .dev_dependents
        .iter()
        .map(|d| format!("{} of {}", d.entity.name, d.of.name))
        .collect();
    assert_eq!(dev, ["app of testkit", "core of testkit"]);

    // A change to core still reaches its runtime dependents, and lists no dev dependent
    // that is already in the blast radius.
    let change = impact(g, &["core/src/lib.rs"]);
    let radius: Vec<&str> = change
        .blast_radius
        .iter()
        .map(|r| r.entity.name.as_str())
        .collect();
    assert_eq!(radius, ["app", "testkit"]);
    assert!(change.dev_dependents.is_empty());
}

#[test]
fn malformed_manifests_name_file_line_column() {
    let src = MemorySource::new([("Cargo.toml", "[workspace\nmembers = []\n")]);
    let err = build(&src, &GraphSettings::default())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("Cargo.toml:1:"), "{err}");
    let src = MemorySource::new([("package.json", "{\"workspaces\": [\n  \"a\",\n}\n")]);
    let err = build(&src, &GraphSettings::default())
        .unwrap_err()
        .to_string();
    assert_eq!(err, "package.json:3:1: malformed JSON: expected value");
}

#[test]
fn synthetic_catalog_builds() {
    let src = countersign_graph::synthetic::catalog(1_000, 10, 3);
    let out = build(&src, &GraphSettings::default()).unwrap();
    assert_eq!(out.graph.nodes().len(), 1_000 + 21);
    assert!(
        out.diagnostics.is_empty(),
        "{:?}",
        &out.diagnostics[..3.min(out.diagnostics.len())]
    );
    let i = impact(&out.graph, &["services/c150/src/main.rs"]);
    assert_eq!(i.touched.len(), 1);
    let chains = i.chains(usize::MAX);
    assert!(
        i.blast_radius
            .iter()
            .zip(&chains)
            .all(|(r, c)| c.omitted == 0 && c.head.len() == r.distance as usize + 1)
    );
}

/// A 100k-node dependency chain and cycle: the walk is linear, and each rendered chain is
/// bounded, its two ends right and the gap counted.
#[test]
fn long_chains_stay_linear_and_bounded() {
    for cycle in [false, true] {
        let n = 100_000;
        let src = countersign_graph::synthetic::chain(n, cycle);
        let out = build(&src, &GraphSettings::default()).unwrap();
        let i = impact(&out.graph, &["services/c0/main.rs"]);
        assert_eq!(i.blast_radius.len(), n - 1, "cycle: {cycle}");
        let last = i.blast_radius.last().unwrap();
        assert_eq!(last.distance as usize, n - 1);
        let chains = i.chains(countersign_graph::impact::CHAIN_SHOWN);
        let c = chains.last().unwrap();
        let names: Vec<&str> = c.shown().map(|e| e.name.as_str()).collect();
        assert_eq!(names.len(), countersign_graph::impact::CHAIN_SHOWN);
        assert_eq!(&names[..2], ["c0", "c1"]);
        assert_eq!(names.last(), Some(&last.entity.name.as_str()));
        assert_eq!(
            c.omitted as usize,
            n - countersign_graph::impact::CHAIN_SHOWN
        );
        // Short chains are whole.
        assert_eq!(chains[0].omitted, 0);
        assert_eq!(chains[0].head.len(), 2);
    }
}

/// Splits the demo's multi-document files, shuffles documents and the Location's
/// targets, and checks the version does not move.
fn shuffled(order: &[usize]) -> MemorySource {
    let mut files = demo_files();
    for (_, text) in files.iter_mut() {
        if !text.contains("\n---\n") {
            continue;
        }
        let mut docs: Vec<&str> = text.split("\n---\n").collect();
        let n = docs.len();
        for (i, &k) in order.iter().enumerate() {
            docs.swap(i % n, k % n);
        }
        *text = docs.join("\n---\n") + "\n";
    }
    let k = order.first().copied().unwrap_or(0) % files.len();
    files.rotate_left(k);
    MemorySource::new(files)
}

proptest! {
    #[test]
    fn version_is_order_independent(order in proptest::collection::vec(0usize..16, 1..8)) {
        let base = demo().graph.version();
        let g = build(&shuffled(&order), &settings()).unwrap().graph;
        prop_assert_eq!(g.version(), base);
    }
}

#[test]
fn version_changes_with_content() {
    let a = demo().graph.version();
    let mut files = demo_files();
    files.push((
        "services/web/catalog-info.yaml",
        WEB.replace("website", "service"),
    ));
    let b = build(&MemorySource::new(files), &settings())
        .unwrap()
        .graph
        .version();
    assert_ne!(a, b);
    assert_eq!(a.len(), 64);
}
