//! `countersign mcp`: a Model Context Protocol server over stdio for AI agents, a client of
//! `countersign serve` that holds the agent's own token (`COUNTERSIGN_TOKEN`).
//!
//! Tools: `propose`, `status`, `explain`, `what_if`, `plan`, `push_evidence`,
//! `findings_list`, `finding_show` and `wait_for_decision` (bounded). Resources: the system
//! graph and the policy pack of each repository, read by the server at the tip of a
//! protected branch (`countersign://repos/{repo}/graph`, `countersign://repos/{repo}/policy`).
//!
//! Deliberately absent: any tool that approves or rejects. The server refuses an agent's
//! verdict whatever its token says, and this module does not even offer the call. Every
//! request goes through [`Api`], the same client as the CLI's commands, so the server's
//! checks (roles, the base's rules, signatures on evidence) are the only authority: this
//! module decides nothing, keeps no state and reads nothing but what a tool names (an
//! envelope file).
//!
//! Errors: a server refusal (problem+json) or an unreachable server is a tool result with
//! `isError` carrying the status and the server's `detail`; arguments that break the tools'
//! JSON schema (a missing field, an unknown one, a wrong type) are tool errors too, as the
//! protocol asks, so the agent can correct itself. Stdout is the protocol: logs go to stderr.

use std::io::Read as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, Implementation, ListResourceTemplatesResult,
    ListResourcesResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ResourceTemplate, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{
    ErrorData, RoleServer, ServerHandler, ServiceExt as _, tool, tool_handler, tool_router,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::cli::client::McpArgs;
use crate::client::{Api, Failure, render_proposal, runtime};

/// The environment variable of an optional second token, of role `runner`, that
/// `push_evidence` relays signed evidence with: the server takes evidence from runner tokens
/// only, never from a proposer's (docs/agents.md, "Evidence").
pub const EVIDENCE_TOKEN_ENV: &str = "COUNTERSIGN_EVIDENCE_TOKEN";

/// The longest `wait_for_decision` may wait, and how long it waits when not told.
const WAIT_MAX_SECONDS: u32 = 300;
const WAIT_DEFAULT_SECONDS: u32 = 60;
/// How often `wait_for_decision` asks the server again.
const POLL: Duration = Duration::from_secs(2);
/// The server's limit on one evidence envelope (`EVIDENCE_BODY_LIMIT`): a larger file is
/// refused here, before it is read whole or sent.
const ENVELOPE_LIMIT: u64 = countersign_server::EVIDENCE_BODY_LIMIT as u64;

/// What the agent host is told about this server when it connects.
const INSTRUCTIONS: &str = "countersign governs changes: agents propose, humans authorize. \
Propose a change (`propose`) and the server derives its approval tier from the protected \
base's system graph and policy: auto_merge, notify_and_proceed, single_approver or \
change_control. A tier you state is ignored. `explain` says why the tier was taken and what \
ruled out each more automated one; `what_if` says which files to leave out or which planned \
suites' passing evidence would lower it, so you can split a change and let the safe part \
flow. `plan` lists the suites whose signed evidence the decision waits for; `push_evidence` \
relays an envelope a trusted runner signed. `wait_for_decision` polls until the proposal \
leaves its waiting state (bounded). You cannot approve: only people can, and never the \
author. Resources: the graph (components, owners, criticality, surfaces) and the policy \
pack in force on each repository's protected branch.";

pub fn run(args: &McpArgs) -> Result<ExitCode> {
    let server = &args.server.server;
    // Both tokens are checked before anything is served: a host that starts this server
    // without one sees the reason on stderr and the exit code, not a broken session.
    let api = Api::from_env(server)?;
    let (evidence, relay) = match std::env::var(EVIDENCE_TOKEN_ENV) {
        Ok(token) => (
            Api::new(server, &token)
                .with_context(|| format!("{EVIDENCE_TOKEN_ENV} is not a usable token"))?,
            true,
        ),
        Err(std::env::VarError::NotPresent) => (api.clone(), false),
        Err(std::env::VarError::NotUnicode(_)) => {
            anyhow::bail!("{EVIDENCE_TOKEN_ENV} is not valid UTF-8")
        }
    };
    let countersign = Countersign {
        api,
        evidence,
        relay,
        tool_router: Countersign::tool_router(),
    };
    tracing::info!(server = %countersign.api.server(), "countersign mcp serving on stdio");
    runtime()?.block_on(async move {
        let service = countersign
            .serve(rmcp::transport::stdio())
            .await
            .context("starting the MCP session on stdio")?;
        service.waiting().await.context("serving the MCP session")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The MCP server: the agent's connection to the countersign server, and the tools.
#[derive(Clone)]
pub struct Countersign {
    api: Api,
    /// The connection `push_evidence` uses: the evidence token's, else the agent's own.
    evidence: Api,
    /// Whether an evidence token was given (for the hint when the server refuses).
    relay: bool,
    tool_router: ToolRouter<Countersign>,
}

/// Why a tool gave no answer. Each becomes a tool result with `isError`, which the agent
/// reads; none is a protocol error.
#[derive(Debug)]
enum ToolError {
    /// The arguments break a rule of the tool's schema that serde cannot state (one of two
    /// fields, a range, an id's shape).
    Input(String),
    /// The server refused (its problem detail), could not be reached, or answered what the
    /// API does not promise.
    Server(Failure),
    /// A file the tool was pointed at could not be used.
    File(String),
}

impl From<Failure> for ToolError {
    fn from(failure: Failure) -> ToolError {
        ToolError::Server(failure)
    }
}

impl ToolError {
    fn result(self) -> CallToolResult {
        let (text, value) = match self {
            ToolError::Input(detail) => (
                format!("invalid arguments: {detail}"),
                json!({ "error": "invalid_arguments", "detail": detail }),
            ),
            ToolError::File(detail) => (
                format!("unusable file: {detail}"),
                json!({ "error": "file", "detail": detail }),
            ),
            ToolError::Server(Failure::Problem {
                status,
                title,
                detail,
            }) => (
                format!(
                    "the countersign server refused (HTTP {} {title}): {detail}",
                    status.as_u16()
                ),
                json!({
                    "error": "refused", "status": status.as_u16(), "title": title,
                    "detail": detail,
                }),
            ),
            ToolError::Server(failure @ Failure::Unreachable { .. }) => (
                format!("{failure}"),
                json!({ "error": "unreachable", "detail": failure.to_string() }),
            ),
            ToolError::Server(Failure::Unexpected { title, detail }) => (
                format!("unexpected answer from the countersign server: {title}: {detail}"),
                json!({ "error": "unexpected", "title": title, "detail": detail }),
            ),
        };
        let mut result = CallToolResult::structured_error(value);
        result.content.insert(0, ContentBlock::text(text));
        result
    }
}

impl IntoCallToolResult for ToolError {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        Ok(self.result().into())
    }
}

type Answer = Result<CallToolResult, ToolError>;

/// A tool's answer: a line or more for the agent to read, then the server's JSON, which is
/// also the structured content.
fn answer(text: impl Into<String>, value: Value) -> Answer {
    let mut result = CallToolResult::structured(value);
    result.content.insert(0, ContentBlock::text(text.into()));
    Ok(result)
}

/// A proposal as the CLI's `status` prints it, and the JSON.
fn proposal_answer(value: Value) -> Answer {
    let text = render_proposal(&value).unwrap_or_else(|failure| failure.to_string());
    answer(text, value)
}

/// An id the tool sends to the server: not empty, one line, of a sane length. It is
/// percent-encoded as one path segment by [`Api`], so it can never name another route.
fn id<'a>(field: &str, value: &'a str) -> Result<&'a str, ToolError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ToolError::Input(format!("{field}: must not be empty")));
    }
    if value.len() > 200 || value.chars().any(char::is_control) {
        return Err(ToolError::Input(format!(
            "{field}: {value:?} is not an id (one line, at most 200 characters)"
        )));
    }
    Ok(value)
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeInput {
    /// The repository's name on the server (as the resource list names it), e.g. `shop`.
    pub repository: String,
    /// The base revision, usually the protected branch the change goes to (`main`). It must
    /// be in a protected branch's history: the rules that judge the change are read there.
    pub base: String,
    /// The head commit of the change (a full commit id). Give `head` or `branch`, not both.
    #[serde(default)]
    pub head: Option<String>,
    /// The branch holding the change; its tip is the head. Give `head` or `branch`, not
    /// both.
    #[serde(default)]
    pub branch: Option<String>,
    /// What the change does, in one line.
    pub title: String,
    /// Why, and anything a reviewer needs.
    #[serde(default)]
    pub description: Option<String>,
    /// The ids of findings (`F-12`) this change fixes: the suites that reproduced them
    /// must then pass on the head.
    #[serde(default)]
    pub fixes: Vec<String>,
    /// Makes a retry safe: the same key with the same request replays the first answer
    /// instead of opening a second proposal.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalInput {
    /// The proposal id `propose` answered (`p-…`).
    pub proposal: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PushEvidenceInput {
    /// The proposal id (`p-…`).
    pub proposal: String,
    /// A DSSE envelope file as `countersign attest` writes it, on this machine. Give `path`
    /// or `envelope`, not both.
    #[serde(default)]
    pub path: Option<String>,
    /// The DSSE envelope itself: the JSON object `countersign attest` writes
    /// (`payloadType`, `payload`, `signatures`). Give `path` or `envelope`, not both.
    #[serde(default)]
    pub envelope: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingsInput {
    /// Only findings in this state: `open`, `verified` or `reopened`.
    #[serde(default)]
    pub state: Option<String>,
    /// Only findings of this validation suite.
    #[serde(default)]
    pub suite: Option<String>,
    /// Only findings of this repository (its name on the server).
    #[serde(default)]
    pub repository: Option<String>,
    /// At most this many, newest first (the server's default is 100).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
    /// Only findings older than this one: the previous page's `next_before`.
    #[serde(default)]
    pub before: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingInput {
    /// The finding id, `F-<number>`.
    pub finding: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitInput {
    /// The proposal id (`p-…`).
    pub proposal: String,
    /// How long to wait at most, in seconds (default 60).
    #[serde(default)]
    #[schemars(range(min = 1, max = 300))]
    pub timeout_seconds: Option<u32>,
}

/// The states a proposal waits in for someone else: evidence from runners, verdicts from
/// people.
fn waiting(state: &str) -> bool {
    matches!(state, "awaiting_evidence" | "awaiting_approval")
}

#[tool_router]
impl Countersign {
    /// Open a proposal: the server computes the diff between `base` and the head, derives
    /// the approval tier from the base's graph and policy, and logs both. Answers the
    /// proposal with its id, state and tier.
    #[tool(annotations(
        title = "Propose a change",
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = false
    ))]
    async fn propose(&self, Parameters(input): Parameters<ProposeInput>) -> Answer {
        let head = match (input.head, input.branch) {
            (Some(head), None) => head,
            // A branch, never a tag or another kind of revision of the same name.
            (None, Some(branch)) if branch.starts_with("refs/heads/") => branch,
            (None, Some(branch)) => format!("refs/heads/{branch}"),
            _ => {
                return Err(ToolError::Input(
                    "give exactly one of `head` (a commit) and `branch` (a branch name)".into(),
                ));
            }
        };
        let proposal = self
            .api
            .propose(
                &input.repository,
                &input.base,
                &head,
                &input.title,
                input.description.as_deref().unwrap_or_default(),
                &input.fixes,
                input.idempotency_key.as_deref(),
            )
            .await?;
        proposal_answer(proposal)
    }

    /// A proposal as it stands: state, tier, approvals counted and required, who may
    /// approve, the validation plan, every verdict.
    #[tool(annotations(title = "Proposal status", read_only_hint = true))]
    async fn status(&self, Parameters(input): Parameters<ProposalInput>) -> Answer {
        let proposal = self.api.proposal(id("proposal", &input.proposal)?).await?;
        proposal_answer(proposal)
    }

    /// Why the proposal's head takes its tier: for the chosen tier the policies that
    /// permit it; for each more automated tier the policies (by id) or invariants that ruled
    /// it out, each with the facts it read; who must approve and why; the blast radius.
    #[tool(annotations(title = "Explain the tier", read_only_hint = true))]
    async fn explain(&self, Parameters(input): Parameters<ProposalInput>) -> Answer {
        let proposal = id("proposal", &input.proposal)?;
        let view = self
            .api
            .get(&["v1", "proposals", proposal, "explanation"], &[])
            .await?;
        let text = view["text"].as_str().unwrap_or_default().to_owned();
        answer(text, explanation(&view))
    }

    /// What would lower the proposal's tier: per more automated tier, the fewest changed
    /// files to leave out (propose them separately) and the fewest planned suites whose
    /// passing evidence would reach it, each re-decided by the server.
    #[tool(annotations(title = "What would lower the tier", read_only_hint = true))]
    async fn what_if(&self, Parameters(input): Parameters<ProposalInput>) -> Answer {
        let proposal = id("proposal", &input.proposal)?;
        let view = self
            .api
            .get(&["v1", "proposals", proposal, "what-if"], &[])
            .await?;
        answer(what_if_text(&view), view)
    }

    /// The validation plan of the proposal's head: each planned suite `satisfied` (signed
    /// evidence accepted), `missing` (the decision waits for it) or `unattestable` (no
    /// trusted runner may sign it), with the envelopes accepted.
    #[tool(annotations(title = "Validation plan", read_only_hint = true))]
    async fn plan(&self, Parameters(input): Parameters<ProposalInput>) -> Answer {
        let proposal = id("proposal", &input.proposal)?;
        let view = self
            .api
            .get(&["v1", "proposals", proposal, "plan"], &[])
            .await?;
        let list = |key: &str| {
            view[key]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                .unwrap_or_default()
                .join(", ")
        };
        let text = format!(
            "proposal {proposal} ({}): satisfied [{}], missing [{}], unattestable [{}]",
            view["state"].as_str().unwrap_or("?"),
            list("satisfied"),
            list("missing"),
            list("unattestable"),
        );
        answer(text, view)
    }

    /// Submit one DSSE envelope of signed evidence (as `countersign attest` writes it) for
    /// the proposal's current head: by file path on this machine, or the envelope's JSON.
    /// The server accepts it only if a runner the base trusts signed it about this head (or
    /// its base); it then re-derives the decision. Relayed with the evidence token when one
    /// is configured (the server takes evidence from runner tokens only).
    #[tool(annotations(
        title = "Push signed evidence",
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = true
    ))]
    async fn push_evidence(&self, Parameters(input): Parameters<PushEvidenceInput>) -> Answer {
        let proposal = id("proposal", &input.proposal)?;
        let bytes = match (input.path, input.envelope) {
            (Some(path), None) => read_envelope(&path)?,
            (None, Some(envelope)) => serde_json::to_vec(&envelope)
                .map_err(|e| ToolError::Input(format!("envelope: {e}")))?,
            _ => {
                return Err(ToolError::Input(
                    "give exactly one of `path` (an envelope file) and `envelope` (its JSON)"
                        .into(),
                ));
            }
        };
        match self.evidence.push_evidence(proposal, bytes).await {
            Ok(accepted) => {
                let text = format!(
                    "ACCEPTED {} for suite {} (signed by {}); proposal {} is now {} ({} tier)",
                    accepted["digest"].as_str().unwrap_or("?"),
                    accepted["suite"].as_str().unwrap_or("?"),
                    accepted["runner"].as_str().unwrap_or("?"),
                    proposal,
                    accepted["proposal"]["state"].as_str().unwrap_or("?"),
                    accepted["proposal"]["tier"].as_str().unwrap_or("?"),
                );
                answer(text, accepted)
            }
            Err(Failure::Problem {
                status,
                title,
                mut detail,
            }) if status == reqwest::StatusCode::FORBIDDEN && !self.relay => {
                detail.push_str(&format!(
                    " (the server takes evidence from runner tokens only: to relay evidence \
                     signed by a trusted runner, start `countersign mcp` with \
                     {EVIDENCE_TOKEN_ENV} set to a runner token; see docs/agents.md)"
                ));
                Err(ToolError::Server(Failure::Problem {
                    status,
                    title,
                    detail,
                }))
            }
            // The evidence token itself was refused: say which token and what it must be.
            Err(Failure::Problem {
                status,
                title,
                mut detail,
            }) if self.relay
                && matches!(
                    status,
                    reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN
                ) =>
            {
                detail.push_str(&format!(
                    " (the token in {EVIDENCE_TOKEN_ENV} was refused: it must be a live,                      unrevoked token of role runner, e.g. `countersign token create --principal                      agent:NAME --role runner`; see docs/agents.md)"
                ));
                Err(ToolError::Server(Failure::Problem {
                    status,
                    title,
                    detail,
                }))
            }
            Err(failure) => Err(failure.into()),
        }
    }

    /// Findings: failures that runners' signed evidence showed on protected branches, with
    /// their component, severity and owners, newest first.
    #[tool(annotations(title = "List findings", read_only_hint = true))]
    async fn findings_list(&self, Parameters(input): Parameters<FindingsInput>) -> Answer {
        if input.limit.is_some_and(|l| !(1..=1000).contains(&l)) {
            return Err(ToolError::Input("limit: must be between 1 and 1000".into()));
        }
        let limit = input.limit.map(|l| l.to_string());
        let mut query: Vec<(&str, &str)> = Vec::new();
        for (key, value) in [
            ("state", input.state.as_deref()),
            ("suite", input.suite.as_deref()),
            ("repo", input.repository.as_deref()),
            ("limit", limit.as_deref()),
            ("before", input.before.as_deref()),
        ] {
            if let Some(value) = value {
                query.push((key, value));
            }
        }
        let view = self.api.get(&["v1", "findings"], &query).await?;
        let findings = view["findings"].as_array().cloned().unwrap_or_default();
        let mut text = format!("{} finding(s)", findings.len());
        for f in &findings {
            let s = |key: &str| f[key].as_str().unwrap_or("-").to_owned();
            text.push_str(&format!(
                "\n{} {} {} {} {}/{} on {}",
                s("id"),
                s("state"),
                s("severity"),
                s("kind"),
                s("suite"),
                s("test"),
                s("component")
            ));
        }
        answer(text, view)
    }

    /// One finding with its failing evidence, including the command that reproduces it,
    /// the commits it was first and last seen at, its owners and the proposals fixing it.
    #[tool(annotations(title = "Show a finding", read_only_hint = true))]
    async fn finding_show(&self, Parameters(input): Parameters<FindingInput>) -> Answer {
        let finding = id("finding", &input.finding)?;
        let view = self.api.get(&["v1", "findings", finding], &[]).await?;
        let text = format!(
            "{} {} ({} {}) on {}; reproduce with: {}",
            view["id"].as_str().unwrap_or(finding),
            view["state"].as_str().unwrap_or("?"),
            view["severity"].as_str().unwrap_or("?"),
            view["kind"].as_str().unwrap_or("?"),
            view["component"].as_str().unwrap_or("?"),
            view["evidence"]["command"]
                .as_str()
                .unwrap_or("(no command recorded)"),
        );
        answer(text, view)
    }

    /// Wait until the proposal stops waiting (for evidence or approvals) or its state
    /// changes, at most `timeout_seconds` (default 60, at most 300); answers the proposal
    /// and whether it settled or the wait timed out. Only polls the server: it never makes
    /// anything happen.
    #[tool(annotations(title = "Wait for the decision", read_only_hint = true))]
    async fn wait_for_decision(
        &self,
        Parameters(input): Parameters<WaitInput>,
        context: RequestContext<RoleServer>,
    ) -> Answer {
        let proposal = id("proposal", &input.proposal)?;
        let seconds = input.timeout_seconds.unwrap_or(WAIT_DEFAULT_SECONDS);
        if !(1..=WAIT_MAX_SECONDS).contains(&seconds) {
            return Err(ToolError::Input(format!(
                "timeout_seconds: must be between 1 and {WAIT_MAX_SECONDS}"
            )));
        }
        let started = Instant::now();
        let deadline = started + Duration::from_secs(u64::from(seconds));
        let first = self.api.proposal(proposal).await?;
        let from = first["state"].as_str().unwrap_or_default().to_owned();
        let mut current = first;
        let settled = loop {
            let state = current["state"].as_str().unwrap_or_default();
            if !waiting(state) || state != from {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            tokio::select! {
                () = tokio::time::sleep(POLL.min(deadline - now)) => {}
                () = context.ct.cancelled() => {
                    return Err(ToolError::Input("the wait was cancelled".into()));
                }
            }
            current = self.api.proposal(proposal).await?;
        };
        let state = current["state"].as_str().unwrap_or("?").to_owned();
        let waited = started.elapsed().as_secs();
        let mut text = if settled {
            format!("proposal {proposal} is {state} (was {from}; waited {waited} s)\n")
        } else {
            format!("proposal {proposal} is still {state} after {waited} s: wait again, or act\n")
        };
        text.push_str(&render_proposal(&current).unwrap_or_default());
        let value = json!({
            "settled": settled, "timed_out": !settled, "from": from,
            "waited_seconds": waited, "proposal": current,
        });
        answer(text, value)
    }
}

/// Reads an envelope file: at most the server's limit, and JSON, so a wrong file costs
/// neither a request nor a refusal in the log. The error never quotes the file.
fn read_envelope(path: &str) -> Result<Vec<u8>, ToolError> {
    let file = std::fs::File::open(path)
        .map_err(|e| ToolError::File(format!("{path}: cannot open: {e}")))?;
    let mut bytes = Vec::new();
    file.take(ENVELOPE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ToolError::File(format!("{path}: cannot read: {e}")))?;
    if bytes.len() as u64 > ENVELOPE_LIMIT {
        return Err(ToolError::File(format!(
            "{path}: over the server's limit of {ENVELOPE_LIMIT} bytes for one envelope"
        )));
    }
    if !serde_json::from_slice::<Value>(&bytes).is_ok_and(|v| v.is_object()) {
        return Err(ToolError::File(format!(
            "{path}: not a JSON object; expected a DSSE envelope from `countersign attest`"
        )));
    }
    Ok(bytes)
}

/// The tiers, most automated first (`countersign_policy::Tier::ALL`).
fn tiers() -> impl Iterator<Item = &'static str> {
    countersign_policy::Tier::ALL
        .into_iter()
        .map(|t| t.as_str())
}

/// The explanation, grouped as people read it: the chosen tier and its permits, each more
/// automated tier with what ruled it out, the invariants, the notes; then who approves, the
/// impact and the plan as the server gave them.
fn explanation(view: &Value) -> Value {
    let report = &view["explanation"];
    let tier = report["tier"].as_str().unwrap_or_default();
    let reasons: Vec<&Value> = report["reasons"]
        .as_array()
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    let of = |tier: &str, invariant: bool| -> Vec<Value> {
        reasons
            .iter()
            .filter(|r| r["tier"] == tier && (r["source"] == "invariant") == invariant)
            .map(|r| (*r).clone())
            .collect()
    };
    let ruled_out: Vec<Value> = tiers()
        .take_while(|t| *t != tier)
        .map(|t| {
            let permitted = reasons
                .iter()
                .any(|r| r["tier"] == t && r["effect"] == "permit" && r["source"] == "policy");
            json!({
                "tier": t,
                "verdict": if permitted {
                    "permitted by policy, ruled out by an invariant"
                } else {
                    "ruled out"
                },
                "reasons": of(t, false),
            })
        })
        .collect();
    json!({
        "proposal": view["proposal"],
        "head": view["head"],
        "tier": tier,
        "chosen": { "tier": tier, "reasons": of(tier, false) },
        "ruled_out": ruled_out,
        "invariants": reasons
            .iter()
            .filter(|r| r["source"] == "invariant")
            .cloned()
            .collect::<Vec<_>>(),
        "notes": reasons
            .iter()
            .filter(|r| r["tier"].is_null())
            .cloned()
            .collect::<Vec<_>>(),
        "approvers": report["approvers"],
        "impact": report["impact"],
        "validation_plan": report["validation_plan"],
        "evidence": report["evidence"],
        "graph_version": report["graph_version"],
        "policy_version": report["policy_version"],
        "facts": report["facts"],
    })
}

/// The what-if answer in a few lines: per more automated tier, what to leave out and what
/// evidence would reach it.
fn what_if_text(view: &Value) -> String {
    let what_if = &view["what_if"];
    let mut text = format!(
        "proposal {} is {}",
        view["proposal"].as_str().unwrap_or("?"),
        what_if["tier"].as_str().unwrap_or("?")
    );
    let names = |v: &Value| {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
            .unwrap_or_default()
            .join(", ")
    };
    for target in what_if["targets"].as_array().into_iter().flatten() {
        let tier = target["tier"].as_str().unwrap_or("?");
        for (key, what) in [("removals", "without"), ("evidence", "passing_suites")] {
            let found = &target[key];
            let outcome = found["outcome"].as_str().unwrap_or("?");
            match found["suggestions"].as_array().and_then(|s| s.first()) {
                Some(first) => text.push_str(&format!(
                    "\n{tier}: {} [{}] ({outcome})",
                    if what == "without" {
                        "leave out"
                    } else {
                        "passing evidence of"
                    },
                    names(&first[what])
                )),
                None => text.push_str(&format!("\n{tier}: by {key}: {outcome}")),
            }
        }
    }
    if let Some(cut) = what_if["search"]["cut"].as_str() {
        text.push_str(&format!("\n(the search stopped early: {cut})"));
    }
    text
}

/// A resource URI: `countersign://repos/{repo}/graph` or `/policy`, with an optional
/// `?branch=` naming another protected branch.
struct RulesUri {
    repo: String,
    what: &'static str,
    branch: Option<String>,
}

fn parse_uri(uri: &str) -> Option<RulesUri> {
    let url = reqwest::Url::parse(uri).ok()?;
    if url.scheme() != "countersign" || url.host_str() != Some("repos") {
        return None;
    }
    let mut segments = url.path_segments()?;
    let repo = segments.next()?;
    let what = match segments.next()? {
        "graph" => "graph",
        "policy" => "policy",
        _ => return None,
    };
    if segments.next().is_some() || repo.is_empty() {
        return None;
    }
    let mut branch = None;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "branch" if branch.is_none() => branch = Some(value.into_owned()),
            _ => return None,
        }
    }
    // Percent-decoded, so the name the server knows (the request encodes it again).
    let repo = percent_decode(repo)?;
    Some(RulesUri { repo, what, branch })
}

/// `%XX` escapes of a URI path segment, decoded; `None` when they do not make UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A resource read the server refused, as a protocol error (resources have no tool
/// results): not found for a 404, invalid parameters for another refusal of the request
/// (a branch that is not protected), internal for the server's or the network's failure.
fn server_error(failure: &Failure) -> ErrorData {
    match failure {
        Failure::Problem { status, detail, .. } if *status == reqwest::StatusCode::NOT_FOUND => {
            ErrorData::resource_not_found(detail.clone(), None)
        }
        Failure::Problem {
            status,
            title,
            detail,
        } => {
            let message = format!(
                "the countersign server refused (HTTP {} {title}): {detail}",
                status.as_u16()
            );
            let data = Some(json!({ "status": status.as_u16(), "title": title, "detail": detail }));
            if status.is_client_error() {
                ErrorData::invalid_params(message, data)
            } else {
                ErrorData::internal_error(message, data)
            }
        }
        other => ErrorData::internal_error(other.to_string(), None),
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Countersign {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(
            Implementation::new("countersign", env!("CARGO_PKG_VERSION")).with_title("countersign"),
        )
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let view = self
            .api
            .get(&["v1", "repos"], &[])
            .await
            .map_err(|f| server_error(&f))?;
        let mut resources = Vec::new();
        for name in view["repos"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str())
        {
            let mut base = reqwest::Url::parse("countersign://repos/")
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
            base.path_segments_mut()
                .map_err(|()| ErrorData::internal_error("countersign:// URL", None))?
                .pop_if_empty()
                .push(name);
            resources.push(
                Resource::new(format!("{base}/graph"), format!("{name} graph"))
                    .with_title(format!("System graph of {name}"))
                    .with_description(
                        "The components, APIs and resources of the repository with their \
                         owners, criticality, sensitive surfaces, paths and suites, as the \
                         protected branch defines them: what a change is judged against.",
                    )
                    .with_mime_type("application/json"),
            );
            resources.push(
                Resource::new(format!("{base}/policy"), format!("{name} policy"))
                    .with_title(format!("Policy pack of {name}"))
                    .with_description(
                        "The Cedar policies in force on the protected branch, their ids and \
                         the schema of the facts they read. Invariants no policy can lift \
                         apply after them (an agent never approves; never-automate surfaces \
                         never take an automated tier).",
                    )
                    .with_mime_type("application/json"),
            );
        }
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new("countersign://repos/{repo}/graph{?branch}", "graph")
                .with_title("System graph of a repository")
                .with_description(
                    "The graph at the tip of a protected branch (default main, else master).",
                )
                .with_mime_type("application/json"),
            ResourceTemplate::new("countersign://repos/{repo}/policy{?branch}", "policy")
                .with_title("Policy pack of a repository")
                .with_description(
                    "The policy pack at the tip of a protected branch (default main, else \
                     master).",
                )
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri;
        let parsed = parse_uri(&uri).ok_or_else(|| {
            ErrorData::resource_not_found(
                format!(
                    "{uri:?} is not a countersign resource: countersign://repos/REPO/graph or \
                     countersign://repos/REPO/policy, optionally with ?branch=NAME"
                ),
                None,
            )
        })?;
        let mut query = Vec::new();
        if let Some(branch) = &parsed.branch {
            query.push(("branch", branch.as_str()));
        }
        let view = self
            .api
            .get(&["v1", "repos", &parsed.repo, parsed.what], &query)
            .await
            .map_err(|f| server_error(&f))?;
        let text = serde_json::to_string_pretty(&view)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, uri).with_mime_type("application/json"),
        ])
        .into())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn resource_uris() {
        let check =
            |uri: &str| parse_uri(uri).map(|u| format!("{} {} {:?}", u.repo, u.what, u.branch));
        assert_eq!(
            check("countersign://repos/shop/graph").as_deref(),
            Some("shop graph None")
        );
        assert_eq!(
            check("countersign://repos/shop/policy?branch=release").as_deref(),
            Some("shop policy Some(\"release\")")
        );
        assert_eq!(
            check("countersign://repos/a%20b/graph").as_deref(),
            Some("a b graph None")
        );
        for bad in [
            "countersign://repos/shop",
            "countersign://repos//graph",
            "countersign://repos/shop/graph/x",
            "countersign://repos/shop/secrets",
            "countersign://other/shop/graph",
            "file:///etc/passwd",
            "countersign://repos/shop/graph?branch=a&branch=b",
            "countersign://repos/shop/graph?head=x",
            "countersign://repos/%ff/graph",
            "countersign://repos/%f/graph",
            "not a uri",
        ] {
            assert_eq!(check(bad), None, "{bad}");
        }
    }

    #[test]
    fn no_tool_approves() {
        let names: Vec<String> = Countersign::tool_router()
            .list_all()
            .into_iter()
            .map(|t| t.name.into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "explain",
                "finding_show",
                "findings_list",
                "plan",
                "propose",
                "push_evidence",
                "status",
                "wait_for_decision",
                "what_if",
            ]
        );
    }

    #[test]
    fn schemas_refuse_unknown_fields_and_name_required_ones() {
        for tool in Countersign::tool_router().list_all() {
            let schema = Value::Object((*tool.input_schema).clone());
            assert_eq!(
                schema["additionalProperties"], false,
                "{}: {schema:#}",
                tool.name
            );
        }
        let propose = Countersign::tool_router().get("propose").cloned().unwrap();
        let schema = Value::Object((*propose.input_schema).clone());
        assert_eq!(
            schema["required"],
            json!(["repository", "base", "title"]),
            "{schema:#}"
        );
    }
}
