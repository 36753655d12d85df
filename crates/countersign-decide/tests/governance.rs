//! Adding, deleting or editing any file the governed state reads, or would read, touches
//! governance: a property over generated small repositories.
//!
//! Each case draws a base (a few slots, each absent or one of a few contents: config,
//! catalog files, Location targets, the three CODEOWNERS locations, policy files, workspace
//! manifests, code) and a head that changes some slots. Whenever the rules loaded from the
//! head differ from the base's (graph version, CODEOWNERS in effect, policy version,
//! config), or the head's rules do not load at all, the base must say the change touches
//! governance. Workspace manifests are code, not rules: they are taken from the base when
//! the head's rules are compared, and changing only them is an ordinary change.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::cell::RefCell;
use std::collections::HashMap;

use countersign_decide::governed;
use countersign_graph::{MemorySource, workspace};
use countersign_policy::{Facts, PolicyPack, Principal};
use proptest::prelude::*;

/// Every path a generated repository can hold, with the contents it can take.
fn slots() -> Vec<(&'static str, Vec<&'static str>)> {
    let component = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: a\n  annotations:\n    countersign.dev/paths: svc/a/src/**\nspec:\n  owner: group:team-a\n";
    let mallory = "apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: mallory\nspec:\n  memberOf: [team-a]\n";
    let team = "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team-a\nspec:\n  type: team\n  children: []\n";
    let location_literal = "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: more\nspec:\n  target: ./people/extra.yaml\n";
    let location_glob = "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: more\nspec:\n  targets: [./people/*.yaml]\n";
    let catalog = vec![component, mallory, team, location_literal, location_glob];
    let codeowners = vec!["* @team-a\n", "* @mallory\n", "/svc/ @team-a\n"];
    let policy = vec![
        "@id(\"p\")\npermit (principal, action == Countersign::Action::\"single_approver\", resource);\n",
        "@id(\"q\")\npermit (principal, action == Countersign::Action::\"auto_merge\", resource);\n",
    ];
    let cargo_root = vec![
        "[workspace]\nmembers = [\"svc/a\", \"svc/b\"]\n",
        "[workspace]\nmembers = [\"svc/a\"]\n",
    ];
    let cargo_a = vec![
        "[package]\nname = \"a\"\n",
        "[package]\nname = \"a\"\n[dependencies]\nb = { path = \"../b\" }\n",
    ];
    let cargo_b = vec!["[package]\nname = \"b\"\n"];
    let code = vec!["fn main() {}\n", "// edited\n"];
    vec![
        (
            "countersign.toml",
            vec![
                "",
                "[graph]\ncatalog = [\"catalog/**/*.yaml\", \"**/catalog-info.yaml\"]\n",
                "[graph]\ncodeowners = \"docs/CODEOWNERS\"\n",
                "[policy]\ndir = \"rules\"\n",
                "[governance]\npaths = [\"people/**\"]\n",
            ],
        ),
        ("catalog-info.yaml", catalog.clone()),
        ("svc/a/catalog-info.yaml", catalog.clone()),
        ("tools/x/catalog-info.yaml", catalog.clone()),
        ("catalog/system.yaml", catalog.clone()),
        ("people/extra.yaml", catalog.clone()),
        ("people/more.yaml", catalog),
        (".github/CODEOWNERS", codeowners.clone()),
        ("CODEOWNERS", codeowners.clone()),
        ("docs/CODEOWNERS", codeowners),
        (".countersign/policy/extra.cedar", policy.clone()),
        ("rules/extra.cedar", policy),
        ("Cargo.toml", cargo_root),
        ("svc/a/Cargo.toml", cargo_a),
        ("svc/b/Cargo.toml", cargo_b),
        ("svc/a/src/lib.rs", code.clone()),
        ("svc/a/build.rs", code.clone()),
        ("README.md", code),
    ]
}

/// One repository: per slot, absent or the index of its content.
type Repo = Vec<Option<usize>>;

fn repo_strategy() -> impl Strategy<Value = Repo> {
    let slots = slots();
    slots
        .into_iter()
        .map(|(_, contents)| {
            prop_oneof![
                2 => Just(None),
                1 => (0..contents.len()).prop_map(Some),
            ]
            .boxed()
        })
        .collect::<Vec<_>>()
}

/// A head drawn from a base: each slot kept (mostly), or redrawn.
fn change_strategy() -> impl Strategy<Value = (Repo, Repo)> {
    repo_strategy().prop_flat_map(|base| {
        let slots = slots();
        let head = base
            .iter()
            .zip(slots)
            .map(|(kept, (_, contents))| {
                let kept = *kept;
                prop_oneof![
                    4 => Just(kept),
                    1 => Just(None),
                    1 => (0..contents.len()).prop_map(Some),
                ]
                .boxed()
            })
            .collect::<Vec<_>>();
        (Just(base), head)
    })
}

fn source(repo: &Repo) -> MemorySource {
    let slots = slots();
    MemorySource::new(
        repo.iter()
            .zip(&slots)
            .filter_map(|(content, (path, contents))| Some((*path, contents[(*content)?]))),
    )
}

/// What a change to the rules would show: graph version, CODEOWNERS in effect, policy
/// version, config.
type Rules = (String, Option<String>, String, String);

/// The `.cedar` files of a snapshot's policy directory, by path.
type PolicyFiles = Vec<(String, String)>;

thread_local! {
    /// Policy versions by policy files: parsing Cedar dominates a case's time, and the
    /// generated repositories have only a handful of distinct policy directories.
    static PACKS: RefCell<HashMap<PolicyFiles, Option<String>>> =
        RefCell::new(HashMap::new());
}

/// The rules of one snapshot, by the steps of [`governed::load`] with the policy pack
/// memoized; `None` when they do not load.
fn load(source: &MemorySource) -> Option<(GovernedRules, Rules)> {
    let config = governed::read_config(source).ok()?;
    let build = countersign_graph::build(source, &governed::graph_settings(&config)).ok()?;
    let files =
        governed::read_policy_files(source, &config.policy.dir, config.limits.file_bytes).ok()?;
    let policy = PACKS.with(|packs| {
        packs
            .borrow_mut()
            .entry(files.clone())
            .or_insert_with(|| {
                let pack = if files.is_empty() {
                    Ok(PolicyPack::default_pack())
                } else {
                    PolicyPack::from_files(files)
                };
                pack.ok().map(|p| p.version().to_owned())
            })
            .clone()
    })?;
    let graph = &build.graph;
    let rules = (
        graph.version(),
        graph.codeowners().map(|co| format!("{co:?}")),
        policy,
        format!("{config:?}"),
    );
    Some((GovernedRules { config, build }, rules))
}

/// The parts of a governed state the impact needs.
struct GovernedRules {
    config: countersign_repo::Config,
    build: countersign_graph::BuildOutput,
}

proptest! {
    // 1,000 cases by default (`PROPTEST_CASES` overrides it); each loads two tiny states.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(1000)
    ))]

    #[test]
    fn a_change_that_alters_the_rules_touches_governance((base, head) in change_strategy()) {
        let Some((base_state, base_rules)) = load(&source(&base)) else {
            // Rules that do not load judge nothing; such a base is refused before any change.
            return Ok(());
        };
        let slots = slots();
        // Workspace manifests are code: compare the head's rules with the base's manifests.
        let rules_head: Repo = head
            .iter()
            .zip(&base)
            .zip(&slots)
            .map(|((h, b), (path, _))| if workspace::is_manifest(path) { *b } else { *h })
            .collect();
        let changed: Vec<&str> = slots
            .iter()
            .zip(base.iter().zip(&head))
            .filter(|(_, (b, h))| b != h)
            .map(|((path, _), _)| *path)
            .collect();
        prop_assume!(!changed.is_empty());
        let head_rules = load(&source(&rules_head)).map(|(_, rules)| rules);
        let graph = &base_state.build.graph;
        let impact = countersign_graph::impact(graph, &changed);
        let facts = Facts::derive(
            &impact,
            &Principal::Agent("bot".into()),
            &base_state.config.never_automate.surfaces,
            None,
            &Default::default(),
            None,
        );
        if head_rules.as_ref() != Some(&base_rules) {
            prop_assert!(
                facts.governance_touched,
                "the rules changed but governance is not touched: changed {changed:?}, governance paths {:?}",
                impact.governance_paths
            );
        }
        // A manifest is never governance by itself.
        for path in &impact.governance_paths {
            prop_assert!(!workspace::is_manifest(path), "{path} is a manifest");
        }
    }
}
