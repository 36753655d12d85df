//! `/v1/repos`: the repositories the server governs and the rules in force on their protected
//! branches, the system graph and the policy pack, so an agent (`countersign mcp`) or a
//! person can see what will judge a change before making it.
//!
//! The rules are read at the tip of a protected branch (`main`, else `master`, or another
//! protected branch named by `?branch=`), through the same cache of governed states that
//! decisions use: never from a proposal's head or any branch a proposer can push to, so what
//! is shown is what judges a change based there.
//!
//! Read-only, read like a proposal (any token but a runner's). Nothing here decides or
//! writes.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use countersign_decide::cache::Loaded;
use countersign_decide::protected::ROOT_BRANCHES;
use countersign_repo::Repo;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(graph))
        .routes(routes!(policy))
}

/// One repository the server governs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RepoEntry {
    /// The name proposals use (`serve --repo NAME=PATH`).
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReposView {
    /// By name.
    pub repos: Vec<RepoEntry>,
}

/// The repositories this server governs, by the names proposals use.
#[utoipa::path(
    get, path = "/v1/repos",
    responses((status = 200, body = ReposView), (status = 401, body = Problem)),
    security(("bearer" = []))
)]
async fn list(State(state): State<AppState>, _caller: Caller) -> Json<ReposView> {
    Json(ReposView {
        repos: state
            .repos
            .keys()
            .map(|name| RepoEntry { name: name.clone() })
            .collect(),
    })
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RulesQuery {
    /// A protected branch of the repository (default: `main`, else `master`).
    pub branch: Option<String>,
}

/// The system graph in force on a protected branch.
#[derive(Debug, Serialize, ToSchema)]
pub struct GraphView {
    pub repo: String,
    /// The protected branch read.
    pub branch: String,
    /// Its tip: the commit whose catalog, CODEOWNERS and config built the graph.
    pub commit: String,
    /// As `countersign graph show --format json` prints it: `version` (the decisions'
    /// `graph_version`), `nodes` (each with `ref`, `kind`, `owner`, `criticality`,
    /// `surfaces`, `paths`, `suites`, `revenue_path`, `exposure`, `data_classes`),
    /// `edges` and `dangling`.
    #[schema(value_type = Object)]
    pub graph: Value,
}

/// One file of a policy pack.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyFile {
    pub path: String,
    /// The Cedar text.
    pub text: String,
}

/// The policy pack in force on a protected branch.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    pub repo: String,
    /// The protected branch read.
    pub branch: String,
    /// Its tip: the commit whose policy directory this is.
    pub commit: String,
    /// sha256 of the pack: the decisions' `policy_version`.
    pub version: String,
    /// `[policy] dir` of the branch's countersign.toml.
    pub dir: String,
    /// True when that directory holds no `.cedar` file, so the embedded default pack is in
    /// force.
    pub default_pack: bool,
    /// The `@id`s of the pack's policies, sorted.
    pub policies: Vec<String>,
    /// The pack's files, sorted by path.
    pub files: Vec<PolicyFile>,
    /// The Cedar schema the policies are checked against: the facts a policy can read.
    /// The invariants no policy lifts (docs/policy.md, "Invariants") apply after the pack.
    pub schema: String,
}

/// The system graph in force on a protected branch: components, APIs, resources and their
/// owners, criticality, surfaces and paths, read at the branch's tip.
#[utoipa::path(
    get, path = "/v1/repos/{repo}/graph",
    params(("repo" = String, Path, description = "Repository name"), RulesQuery),
    responses(
        (status = 200, body = GraphView), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn graph(
    State(state): State<AppState>,
    _caller: Caller,
    Path(repo): Path<String>,
    query: Result<Query<RulesQuery>, QueryRejection>,
) -> Result<Json<GraphView>, ApiError> {
    let rules = rules(&state, &repo, query).await?;
    Ok(Json(GraphView {
        graph: countersign_graph::render::to_json(rules.loaded.state.graph()),
        repo,
        branch: rules.branch,
        commit: rules.commit,
    }))
}

/// The policy pack in force on a protected branch, read at the branch's tip, with the
/// schema of the facts its policies read.
#[utoipa::path(
    get, path = "/v1/repos/{repo}/policy",
    params(("repo" = String, Path, description = "Repository name"), RulesQuery),
    responses(
        (status = 200, body = PolicyView), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
async fn policy(
    State(state): State<AppState>,
    _caller: Caller,
    Path(repo): Path<String>,
    query: Result<Query<RulesQuery>, QueryRejection>,
) -> Result<Json<PolicyView>, ApiError> {
    let rules = rules(&state, &repo, query).await?;
    let governed = &rules.loaded.state;
    let pack = &governed.pack;
    // The load read every `.cedar` file of the directory; none read means the default.
    let default_pack = !rules
        .loaded
        .reads
        .iter()
        .any(|(path, bytes)| path.ends_with(".cedar") && bytes.is_some());
    Ok(Json(PolicyView {
        repo,
        branch: rules.branch,
        commit: rules.commit,
        version: pack.version().to_owned(),
        dir: governed.config.policy.dir.clone(),
        default_pack,
        policies: pack.policy_ids().map(str::to_owned).collect(),
        files: pack
            .files()
            .iter()
            .map(|(path, text)| PolicyFile {
                path: path.clone(),
                text: text.clone(),
            })
            .collect(),
        schema: countersign_policy::schema_text().to_owned(),
    }))
}

/// The governed state at the tip of a protected branch.
struct Rules {
    branch: String,
    commit: String,
    loaded: Arc<Loaded>,
}

async fn rules(
    state: &AppState,
    repo: &str,
    query: Result<Query<RulesQuery>, QueryRejection>,
) -> Result<Rules, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let path: PathBuf = state
        .repos
        .get(repo)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no repository {repo:?} on this server")))?;
    let pipeline = Arc::clone(&state.pipeline);
    let name = repo.to_owned();
    state
        .pipeline
        .blocking_for(&path.clone(), move || -> Result<Rules, ApiError> {
            let git = Repo::open_shared(&path).map_err(countersign_decide::DecideError::from)?;
            let protected = pipeline.protected(&path, &git)?;
            let chosen = match query.branch.as_deref() {
                Some(branch) => protected
                    .branches
                    .iter()
                    .find(|b| b.name == branch)
                    .ok_or_else(|| {
                        ApiError::Invalid(format!(
                            "branch: {branch:?} is not a protected branch of {name} \
                             (protected: {})",
                            protected.names()
                        ))
                    })?,
                // The root branches in their order: what is protected before any config.
                None => ROOT_BRANCHES
                    .iter()
                    .find_map(|root| {
                        protected
                            .branches
                            .iter()
                            .find(|b| b.name == *root && b.tip.is_some())
                    })
                    .ok_or_else(|| {
                        ApiError::Conflict(format!(
                            "{name} has no main or master branch: name a protected branch \
                             with ?branch="
                        ))
                    })?,
            };
            let tip = chosen.tip.clone().ok_or_else(|| {
                ApiError::Conflict(format!(
                    "protected branch {} of {name} does not exist yet",
                    chosen.name
                ))
            })?;
            let loaded = pipeline.governed(&path, &git, &tip)?;
            Ok(Rules {
                branch: chosen.name.clone(),
                commit: tip.as_str().to_owned(),
                loaded,
            })
        })
        .await?
}
