//! `/v1/repos`, `/v1/repos/{repo}/graph` and `/v1/repos/{repo}/policy`: the rules in force
//! are read at the tip of a protected branch and never from a branch a proposer can push to,
//! read like a proposal (a runner token is 403, none 401), an unknown repository is 404.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::{ALICE, CATALOG, Db, NOW, start_with};
use countersign_repo::RepoWriter;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A repository whose own policy pack and `[repository] protected = ["release"]` are
/// committed on main; `release` lowers payments to high, and `agent/evil` (not protected)
/// lowers it to low.
struct Rules {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    main: String,
    release: String,
}

fn rules_repo() -> Rules {
    let dir = tempfile::tempdir().unwrap();
    let mut w = RepoWriter::init(dir.path()).unwrap();
    let mut files: Vec<(String, Option<String>)> = vec![
        ("catalog-info.yaml".into(), Some(CATALOG.into())),
        (
            "countersign.toml".into(),
            Some("[repository]\nname = \"github.com/acme/rules\"\nprotected = [\"release\"]\n\n[policy]\ndir = \"policy\"\n".into()),
        ),
    ];
    for (name, text) in countersign_policy::default_files() {
        files.push((format!("policy/{name}"), Some(text.to_owned())));
    }
    w.commit(files, "rules", ALICE, NOW as i64).unwrap();
    let main = w.head().unwrap();
    let release = w
        .commit_on(
            "refs/heads/release",
            &main,
            [(
                "catalog-info.yaml",
                Some(CATALOG.replace("criticality: critical", "criticality: high")),
            )],
            "release",
            ALICE,
            NOW as i64 + 1,
        )
        .unwrap();
    w.commit_on(
        "refs/heads/agent/evil",
        &main,
        [(
            "catalog-info.yaml",
            Some(CATALOG.replace("criticality: critical", "criticality: low")),
        )],
        "lower the bar",
        ALICE,
        NOW as i64 + 2,
    )
    .unwrap();
    Rules {
        path: dir.path().to_owned(),
        _dir: dir,
        main: main.as_str().to_owned(),
        release: release.as_str().to_owned(),
    }
}

fn node<'a>(graph: &'a Value, reference: &str) -> &'a Value {
    graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["ref"] == reference)
        .unwrap_or_else(|| panic!("no node {reference} in {graph:#}"))
}

async fn rules_come_from_protected_branches(db: &Db) {
    let rules = rules_repo();
    let path = rules.path.clone();
    let server = start_with(db, move |mut state| {
        let mut repos = (*state.repos).clone();
        repos.insert("rules".to_owned(), path);
        state.repos = std::sync::Arc::new(repos);
        state
    })
    .await;

    let (status, list) = server
        .send(Method::GET, "/v1/repos", Some("fixbot"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        list,
        json!({ "repos": [{ "name": "rules" }, { "name": "shop" }] })
    );

    // Default: main's tip, whatever other branches say.
    let (status, view) = server
        .send(Method::GET, "/v1/repos/rules/graph", Some("fixbot"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["repo"], "rules");
    assert_eq!(view["branch"], "main");
    assert_eq!(view["commit"], rules.main);
    let payments = node(&view["graph"], "component:default/payments");
    assert_eq!(payments["criticality"], "critical", "{payments}");
    assert_eq!(payments["surfaces"], json!(["payments"]));
    assert_eq!(payments["owner"], "group:default/team-shop");

    // Another protected branch, named.
    let (status, view) = server
        .send(
            Method::GET,
            "/v1/repos/rules/graph?branch=release",
            Some("auditor"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["branch"], "release");
    assert_eq!(view["commit"], rules.release);
    assert_eq!(
        node(&view["graph"], "component:default/payments")["criticality"],
        "high"
    );

    // A branch anyone can push to is never read.
    for branch in ["agent/evil", "nope"] {
        let (status, problem) = server
            .send(
                Method::GET,
                &format!("/v1/repos/rules/graph?branch={branch}"),
                Some("fixbot"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("is not a protected branch") && detail.contains("main, release"),
            "{detail}"
        );
    }

    // The pack committed on main, its version the one decisions record.
    let (status, policy) = server
        .send(Method::GET, "/v1/repos/rules/policy", Some("fixbot"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    assert_eq!(policy["branch"], "main");
    assert_eq!(policy["dir"], "policy");
    assert_eq!(policy["default_pack"], false);
    let paths: Vec<&str> = policy["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(paths.iter().all(|p| p.starts_with("policy/")), "{paths:?}");
    assert_eq!(paths.len(), countersign_policy::default_files().len());
    assert!(!policy["policies"].as_array().unwrap().is_empty());
    assert!(
        policy["schema"]
            .as_str()
            .unwrap()
            .contains("namespace Countersign")
    );

    // A repository without a policy directory runs the embedded pack; its version is the
    // one its decisions record.
    let (status, proposal) = server.propose("fixbot", &server.repo.docs).await;
    assert_eq!(status, StatusCode::CREATED, "{proposal}");
    let (status, policy) = server
        .send(Method::GET, "/v1/repos/shop/policy", Some("alice"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    assert_eq!(policy["default_pack"], true);
    assert_eq!(policy["version"], proposal["decision"]["policy_version"]);
    let (_, graph) = server
        .send(Method::GET, "/v1/repos/shop/graph", Some("alice"), None)
        .await;
    assert_eq!(
        graph["graph"]["version"],
        proposal["decision"]["graph_version"]
    );

    // Read like a proposal: no token 401, a runner 403; an unknown repository 404.
    let (status, _) = server
        .send(Method::GET, "/v1/repos/rules/graph", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, problem) = server
        .send(Method::GET, "/v1/repos/nope/policy", Some("fixbot"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    server.stop().await;
}

on_both_backends!(rules_come_from_protected_branches);
