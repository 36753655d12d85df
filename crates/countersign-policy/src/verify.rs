//! Policy assurance with an SMT solver: prove that a pack can never permit what must never
//! be permitted, and decide whether two packs route every change the same way.
//!
//! This module owns the properties countersign proves of every pack (the built-in ones,
//! embedded from `src/properties.cedar`), the format of a team's own properties file, the
//! facts domain the proofs range over, and the plain-words rendering of counterexamples.
//! It compiles Cedar to SMT-LIB with `cedar-policy-symcc` and asks cvc5.
//!
//! It is the one place in this crate that starts a process: the solver named by the
//! caller's [`SolverConfig`] (finding it, from `CVC5` or `PATH`, is the caller's business).
//! Every solver call has a deadline, so a stuck solver is an error, never a hang. The Rust
//! invariants of `invariant` are not modelled here: they hold at run time whatever a pack
//! says, and can only make a decision stricter than what is proved here.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use std::collections::{HashMap, HashSet};

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Policy, PolicyId, PolicySet, Request, RestrictedExpression, Schema,
};
use cedar_policy_symcc::solver::LocalSolver;
use cedar_policy_symcc::{CedarSymCompiler, CompiledPolicySet, Env};
use serde_json::Value;

use crate::check::{PolicyDiagnostic, PolicyEffect, Severity, load};
use crate::pack::PolicyPack;
use crate::tier::Tier;

/// The built-in properties, proved of every pack. Same format as a team's properties file.
const BUILTIN_PROPERTIES: &str = include_str!("properties.cedar");
const BUILTIN_FILE: &str = "(built-in properties)";

/// The oldest cvc5 the proofs were checked with. symcc's README asks for 1.3.1; Debian
/// bookworm ships 1.0.3, which reads symcc's SMT-LIB fine (the verify tests run on it).
pub const MIN_CVC5: (u32, u32, u32) = (1, 0, 3);

/// The facts countersign can actually produce, as a Cedar condition. Proofs and diffs range
/// over requests satisfying it, so a counterexample is a change that could really happen
/// (no negative counts, coverage within 0..=100, touched surfaces among the reached ones,
/// the author's kind matching `author_kind`, evidence counts 0 when none was considered).
/// It over-approximates what `facts::derive` yields, so a proof over it covers every
/// real decision.
const DOMAIN: &str = r#"@id("countersign-facts-domain")
@reason("Requests countersign cannot produce are out of scope.")
forbid (principal, action, resource)
unless {
  context.coverage_percent >= 0 && context.coverage_percent <= 100 &&
  context.max_criticality_touched >= 0 &&
  context.max_criticality_touched <= context.max_criticality_reached &&
  context.max_criticality_reached <= 4 &&
  (context.max_criticality_reached == 4) == (context.critical_reached > 0) &&
  context.critical_reached >= 0 && context.revenue_path_reached >= 0 &&
  context.data_stores_touched >= 0 && context.unmapped_files >= 0 &&
  context.touched_nodes >= 0 && context.reached_nodes >= 0 &&
  context.planned_suites >= 0 && context.failed_suites >= 0 &&
  context.regressions >= 0 && context.reachable_vulnerabilities >= 0 &&
  ["human", "agent", "runner", "system"].contains(context.author_kind) &&
  principal.kind == context.author_kind &&
  ["auth", "authz", "payments", "regulated-data", "irreversible", "ci-cd", "governance",
   "build"]
    .containsAll(context.surfaces_reached) &&
  context.surfaces_reached.containsAll(context.surfaces_touched) &&
  context.surfaces_touched.containsAll(context.never_automate_touched) &&
  context.surfaces_reached.containsAll(context.never_automate_reached) &&
  context.never_automate_reached.containsAll(context.never_automate_touched) &&
  context.governance_touched == context.surfaces_touched.contains("governance") &&
  (context.evidence_considered || context.base_suite_passed.isEmpty()) &&
  (context.evidence_considered ||
    (context.coverage_percent == 0 && context.planned_suites == 0 &&
     context.failed_suites == 0 && context.regressions == 0 &&
     context.reachable_vulnerabilities == 0))
};"#;

/// Where the solver is and how long one query may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SolverConfig {
    /// The cvc5 executable (a path, or a bare name looked up in `PATH` by the OS).
    pub path: PathBuf,
    /// Deadline of one solver query (and of `cvc5 --version`).
    pub timeout: Duration,
}

impl SolverConfig {
    /// `cvc5` from `CVC5` when given (the caller reads the variable), else `cvc5` on `PATH`,
    /// with a 30 s deadline per query.
    pub fn new(cvc5_var: Option<PathBuf>) -> SolverConfig {
        SolverConfig {
            path: cvc5_var
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| PathBuf::from("cvc5")),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Verification could not run (a failed property is not an error: see [`Outcome`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "the cvc5 solver was not found at {path}: {message} (install it, e.g. `apt-get install cvc5`, or set CVC5 to its path)"
    )]
    SolverMissing { path: String, message: String },
    #[error(
        "the solver at {path} is not a usable cvc5: `--version` printed {found:?}; countersign needs cvc5 {}.{}.{} or newer",
        MIN_CVC5.0, MIN_CVC5.1, MIN_CVC5.2
    )]
    SolverVersion { path: String, found: String },
    #[error("the solver at {path} did not answer within {seconds} s while {what}")]
    SolverTimeout {
        path: String,
        seconds: u64,
        what: String,
    },
    #[error("the solver failed while {what}: {message}")]
    Solver { what: String, message: String },
    #[error("cannot compile {what} for the solver: {message}")]
    Compile { what: String, message: String },
    #[error("invalid properties ({} error(s)): {}", .diagnostics.len(), first(.diagnostics))]
    Properties { diagnostics: Vec<PolicyDiagnostic> },
}

fn first(diagnostics: &[PolicyDiagnostic]) -> String {
    diagnostics
        .first()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// Where a property comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertySource {
    Builtin,
    Team,
}

/// One property: a Cedar policy the pack must imply.
///
/// A `forbid` property says "the pack never permits what this forbids" (checked as: the
/// pack implies `{ permit(principal, action, resource); <forbid> }`). A `permit` property
/// says "for the tiers in its scope, the pack permits only what this permits" (checked as:
/// the pack implies `{ <permit> }` on those tiers).
#[derive(Debug, Clone)]
pub struct Property {
    pub id: String,
    pub reason: String,
    pub source: PropertySource,
    /// Where it is written, `file:line:col`.
    pub location: String,
    /// The tiers it speaks about.
    pub tiers: Vec<Tier>,
    set: PolicySet,
}

/// The built-in properties: never-automate surfaces, unmapped files, reachable
/// vulnerabilities, missing coverage, an agent's build files and unmapped files,
/// self-validated suites, and what evidence-earned automation of a high-criticality
/// change needs (full coverage, no failure or regression, no never-automate surface, data
/// store or critical reach).
pub fn builtin_properties() -> Vec<Property> {
    // The embedded text is checked by this module's tests; an error here would be a
    // build defect, reported as no property rather than a panic.
    properties_from(BUILTIN_FILE, BUILTIN_PROPERTIES, PropertySource::Builtin).unwrap_or_default()
}

/// The built-in properties' text, for documentation.
pub fn builtin_properties_text() -> &'static str {
    BUILTIN_PROPERTIES
}

/// Parse a team's properties file (`file` names it in diagnostics). Every policy needs
/// `@id` and `@reason` and must validate against the schema.
pub fn parse_properties(file: &str, text: &str) -> Result<Vec<Property>, VerifyError> {
    properties_from(file, text, PropertySource::Team)
}

fn properties_from(
    file: &str,
    text: &str,
    source: PropertySource,
) -> Result<Vec<Property>, VerifyError> {
    let schema = schema()?;
    let (loaded, diagnostics) = load(&[(file.to_owned(), text.to_owned())], &schema);
    let errors: Vec<PolicyDiagnostic> = diagnostics
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    if !errors.is_empty() {
        return Err(VerifyError::Properties {
            diagnostics: errors,
        });
    }
    let mut properties = Vec::new();
    for (id, info) in &loaded.policies {
        let compile = |message: String| VerifyError::Compile {
            what: format!("property {id}"),
            message,
        };
        let policy = loaded
            .set
            .policy(&PolicyId::new(id))
            .ok_or_else(|| compile("the parsed policy is missing".to_owned()))?;
        let mut set = PolicySet::new();
        if info.effect == PolicyEffect::Forbid {
            let allow_all = Policy::parse(
                Some(PolicyId::new("property-allows-the-rest")),
                "permit (principal, action, resource);",
            )
            .map_err(|e| compile(e.to_string()))?;
            set.add(allow_all).map_err(|e| compile(e.to_string()))?;
        }
        set.add(policy.clone())
            .map_err(|e| compile(e.to_string()))?;
        properties.push(Property {
            id: id.clone(),
            reason: info.reason.clone(),
            source,
            location: format!("{}:{}:{}", info.file, info.line, info.column),
            tiers: info.tiers.clone(),
            set,
        });
    }
    // Source order reads best.
    properties.sort_by_key(|p| {
        let mut parts = p.location.rsplitn(3, ':');
        let column: u32 = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        let line: u32 = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        (line, column)
    });
    Ok(properties)
}

/// A concrete change, synthesized by the solver.
#[derive(Debug, Clone, PartialEq)]
pub struct Counterexample {
    /// The author as a principal (`agent:x`).
    pub author: String,
    /// The request context: every fact.
    pub facts: BTreeMap<String, Value>,
}

impl Counterexample {
    /// The change in plain words: surfaces, criticality, coverage, author kind.
    pub fn describe(&self) -> String {
        describe(&self.author, &self.facts)
    }
}

/// What the solver found about one property.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Proved for every request environment (every tier it speaks about).
    Holds,
    /// The pack permits `tier` for this change, which the property rules out.
    Fails {
        tier: Tier,
        counterexample: Counterexample,
    },
}

/// One property's result.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyResult {
    pub id: String,
    pub reason: String,
    pub source: PropertySource,
    pub location: String,
    pub outcome: Outcome,
}

/// The result of verifying a pack.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    /// `cvc5 --version`'s version, e.g. `1.0.3`.
    pub solver_version: String,
    pub pack_version: String,
    pub results: Vec<PropertyResult>,
    /// Wall time of the whole verification, solver start included.
    pub elapsed: Duration,
}

impl Verification {
    pub fn holds(&self) -> bool {
        self.results.iter().all(|r| r.outcome == Outcome::Holds)
    }
}

/// How two packs differ on one tier.
#[derive(Debug, Clone, PartialEq)]
pub struct TierDifference {
    pub tier: Tier,
    /// Whether the old pack permits the tier for the counterexample (the new one does not,
    /// or the other way round).
    pub old_permits: bool,
    pub new_permits: bool,
    pub counterexample: Counterexample,
}

/// Whether two packs are equivalent, and where not, one change per tier they route
/// differently.
#[derive(Debug, Clone, PartialEq)]
pub struct PackDiff {
    pub solver_version: String,
    pub differences: Vec<TierDifference>,
    pub elapsed: Duration,
}

impl PackDiff {
    pub fn equivalent(&self) -> bool {
        self.differences.is_empty()
    }
}

/// `cvc5 --version`, checked: a missing binary, a non-cvc5 program, a version older than
/// [`MIN_CVC5`] or a program that does not answer within the deadline are errors.
pub fn solver_version(solver: &SolverConfig) -> Result<String, VerifyError> {
    let path = solver.path.display().to_string();
    let mut child = Command::new(&solver.path)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| VerifyError::SolverMissing {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < solver.timeout => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                // Best effort: the process is abandoned either way.
                let _ = child.kill();
                let _ = child.wait();
                return Err(VerifyError::SolverTimeout {
                    path,
                    seconds: solver.timeout.as_secs(),
                    what: "printing its version".to_owned(),
                });
            }
            Err(e) => {
                return Err(VerifyError::Solver {
                    what: "printing its version".to_owned(),
                    message: e.to_string(),
                });
            }
        }
    }
    let mut output = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        // `--version` prints a few lines; the pipe is closed once the process exited.
        let _ = stdout.read_to_string(&mut output);
    }
    let first_line = output.lines().next().unwrap_or("").trim().to_owned();
    let version = first_line
        .strip_prefix("This is cvc5 version ")
        .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
        .ok_or_else(|| VerifyError::SolverVersion {
            path: path.clone(),
            found: first_line.clone(),
        })?;
    let numbers: Vec<u32> = version
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    let triple = (
        numbers.first().copied().unwrap_or(0),
        numbers.get(1).copied().unwrap_or(0),
        numbers.get(2).copied().unwrap_or(0),
    );
    if triple < MIN_CVC5 {
        return Err(VerifyError::SolverVersion {
            path,
            found: first_line,
        });
    }
    Ok(version)
}

/// Prove the built-in properties and `extra` ones of `pack`.
pub fn verify(
    pack: &PolicyPack,
    extra: &[Property],
    solver: &SolverConfig,
) -> Result<Verification, VerifyError> {
    let started = Instant::now();
    let solver_version = solver_version(solver)?;
    let mut properties = builtin_properties();
    properties.extend(extra.iter().cloned());
    let bounded = bounded(&pack.set)?;
    let results = run_async(solver, |mut session| async move {
        let schema = schema()?;
        let mut results = Vec::new();
        for property in &properties {
            let mut outcome = Outcome::Holds;
            for env in schema.request_envs() {
                let Some(tier) = tier_of(&env) else { continue };
                if !property.tiers.contains(&tier) {
                    continue;
                }
                let what = format!("proving {} for {tier}", property.id);
                let pack_c = compile(&bounded, &env, &schema, "the pack")?;
                let prop_c = compile(&property.set, &env, &schema, &property.id)?;
                let found = Session::within(
                    &session.path,
                    session.timeout,
                    &what,
                    session
                        .compiler
                        .check_implies_with_counterexample_opt(&pack_c, &prop_c),
                )
                .await?;
                if let Some(env) = found {
                    let authorizer = Authorizer::new();
                    let still_fails = |request: &Request, entities: &Entities| {
                        allows(&authorizer, request, &bounded, entities)
                            && !allows(&authorizer, request, &property.set, entities)
                    };
                    outcome = Outcome::Fails {
                        tier,
                        counterexample: shrink(counterexample(&env), &env, still_fails),
                    };
                    break;
                }
            }
            results.push(PropertyResult {
                id: property.id.clone(),
                reason: property.reason.clone(),
                source: property.source,
                location: property.location.clone(),
                outcome,
            });
        }
        Ok(results)
    })?;
    Ok(Verification {
        solver_version,
        pack_version: pack.version().to_owned(),
        results,
        elapsed: started.elapsed(),
    })
}

/// Decide whether `old` and `new` permit the same tiers for every change countersign can
/// produce; for each tier where they do not, one such change.
pub fn diff(
    old: &PolicyPack,
    new: &PolicyPack,
    solver: &SolverConfig,
) -> Result<PackDiff, VerifyError> {
    let started = Instant::now();
    let solver_version = solver_version(solver)?;
    let old_set = bounded(&old.set)?;
    let new_set = bounded(&new.set)?;
    let differences = run_async(solver, |mut session| async move {
        let schema = schema()?;
        let mut differences = Vec::new();
        for env in schema.request_envs() {
            let Some(tier) = tier_of(&env) else { continue };
            let what = format!("comparing the packs on {tier}");
            let old_c = compile(&old_set, &env, &schema, "the old pack")?;
            let new_c = compile(&new_set, &env, &schema, "the new pack")?;
            let found = Session::within(
                &session.path,
                session.timeout,
                &what,
                session
                    .compiler
                    .check_equivalent_with_counterexample_opt(&old_c, &new_c),
            )
            .await?;
            if let Some(env) = found {
                let authorizer = Authorizer::new();
                let still_differs = |request: &Request, entities: &Entities| {
                    allows(&authorizer, request, &old_set, entities)
                        != allows(&authorizer, request, &new_set, entities)
                };
                let counterexample = shrink(counterexample(&env), &env, still_differs);
                let (old_permits, new_permits) = match rebuild(&counterexample, &env) {
                    Some((request, entities)) => (
                        allows(&authorizer, &request, &old_set, &entities),
                        allows(&authorizer, &request, &new_set, &entities),
                    ),
                    None => (
                        allows(&authorizer, &env.request, &old_set, &env.entities),
                        allows(&authorizer, &env.request, &new_set, &env.entities),
                    ),
                };
                differences.push(TierDifference {
                    tier,
                    old_permits,
                    new_permits,
                    counterexample,
                });
            }
        }
        Ok(differences)
    })?;
    Ok(PackDiff {
        solver_version,
        differences,
        elapsed: started.elapsed(),
    })
}

fn schema() -> Result<Schema, VerifyError> {
    crate::schema::schema().map_err(|message| VerifyError::Compile {
        what: "the schema".to_owned(),
        message,
    })
}

/// The pack restricted to the facts domain.
fn bounded(set: &PolicySet) -> Result<PolicySet, VerifyError> {
    let compile = |message: String| VerifyError::Compile {
        what: "the facts domain".to_owned(),
        message,
    };
    let mut bounded = set.clone();
    let domain = Policy::parse(Some(PolicyId::new("countersign-facts-domain")), DOMAIN)
        .map_err(|e| compile(e.to_string()))?;
    bounded.add(domain).map_err(|e| compile(e.to_string()))?;
    Ok(bounded)
}

fn tier_of(env: &cedar_policy::RequestEnv) -> Option<Tier> {
    Tier::from_str(env.action().id().unescaped()).ok()
}

fn compile(
    set: &PolicySet,
    env: &cedar_policy::RequestEnv,
    schema: &Schema,
    what: &str,
) -> Result<CompiledPolicySet, VerifyError> {
    CompiledPolicySet::compile(set, env, schema).map_err(|e| VerifyError::Compile {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

type Compiler = CedarSymCompiler<LocalSolver>;

/// One solver process and the deadline of its queries.
struct Session {
    compiler: Compiler,
    path: String,
    timeout: Duration,
}

impl Session {
    /// Await one solver query with the session's deadline.
    async fn within<T>(
        path: &str,
        timeout: Duration,
        what: &str,
        query: impl std::future::Future<Output = Result<T, cedar_policy_symcc::err::Error>>,
    ) -> Result<T, VerifyError> {
        match tokio::time::timeout(timeout, query).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(VerifyError::Solver {
                what: what.to_owned(),
                message: error.to_string(),
            }),
            Err(_) => Err(VerifyError::SolverTimeout {
                path: path.to_owned(),
                seconds: timeout.as_secs(),
                what: what.to_owned(),
            }),
        }
    }
}

/// Start the solver and run `work` on a current-thread runtime of its own, on a scoped
/// thread so that callers inside another runtime are not affected.
fn run_async<T, F, Fut>(solver: &SolverConfig, work: F) -> Result<T, VerifyError>
where
    T: Send,
    F: FnOnce(Session) -> Fut + Send,
    Fut: std::future::Future<Output = Result<T, VerifyError>>,
{
    let path = solver.path.clone();
    let timeout = solver.timeout;
    std::thread::scope(|scope| {
        let handle = scope.spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .enable_io()
                .build()
                .map_err(|e| VerifyError::Solver {
                    what: "starting the solver runtime".to_owned(),
                    message: e.to_string(),
                })?;
            runtime.block_on(async move {
                let session = start(&path, timeout)?;
                work(session).await
            })
        });
        handle.join().unwrap_or_else(|_| {
            Err(VerifyError::Solver {
                what: "verifying".to_owned(),
                message: "the verification thread panicked".to_owned(),
            })
        })
    })
}

fn start(path: &Path, timeout: Duration) -> Result<Session, VerifyError> {
    let shown = path.display().to_string();
    let millis = timeout.as_millis().to_string();
    let mut command = tokio::process::Command::new(path);
    command
        .args(["--lang", "smt"])
        // cvc5's own per-query limit, below ours, so it answers `unknown` rather than
        // being killed when it can.
        .arg(format!("--tlimit-per={millis}"))
        .kill_on_drop(true);
    let local =
        LocalSolver::from_command(&mut command).map_err(|e| VerifyError::SolverMissing {
            path: shown.clone(),
            message: e.to_string(),
        })?;
    let compiler = CedarSymCompiler::new(local).map_err(|e| VerifyError::Solver {
        what: "starting the solver".to_owned(),
        message: e.to_string(),
    })?;
    Ok(Session {
        compiler,
        path: shown,
        timeout,
    })
}

fn counterexample(env: &Env) -> Counterexample {
    let author = env
        .request
        .principal()
        .map(|uid| uid.id().unescaped().to_owned())
        .unwrap_or_default();
    let facts = env
        .request
        .context()
        .and_then(|c| c.to_json_value().ok())
        .and_then(|v| match v {
            Value::Object(map) => Some(map.into_iter().collect()),
            _ => None,
        })
        .unwrap_or_default();
    Counterexample { author, facts }
}

fn allows(
    authorizer: &Authorizer,
    request: &Request,
    set: &PolicySet,
    entities: &Entities,
) -> bool {
    authorizer.is_authorized(request, set, entities).decision() == CedarDecision::Allow
}

/// The request and entities of a counterexample's facts, for the action of `env`. The
/// author is `<author_kind>:example` with that kind. `None` if the facts do not form a
/// request (they always do for facts the solver produced).
fn rebuild(example: &Counterexample, env: &Env) -> Option<(Request, Entities)> {
    let author_type = EntityTypeName::from_str("Countersign::Author").ok()?;
    let principal = EntityUid::from_type_name_and_id(author_type, EntityId::new(&example.author));
    let kind = example.facts.get("author_kind")?.as_str()?.to_owned();
    let author = Entity::new(
        principal.clone(),
        HashMap::from([("kind".to_owned(), RestrictedExpression::new_string(kind))]),
        HashSet::new(),
    )
    .ok()?;
    let resource = env.request.resource()?.clone();
    let change = Entity::new_no_attrs(resource.clone(), HashSet::new());
    let entities = Entities::from_entities([author, change], None).ok()?;
    let context = Context::from_pairs(
        example
            .facts
            .iter()
            .map(|(name, value)| Some((name.clone(), expression(value)?)))
            .collect::<Option<Vec<_>>>()?,
    )
    .ok()?;
    let request = Request::new(
        principal,
        env.request.action()?.clone(),
        resource,
        context,
        None,
    )
    .ok()?;
    Some((request, entities))
}

fn expression(value: &Value) -> Option<RestrictedExpression> {
    Some(match value {
        Value::Bool(b) => RestrictedExpression::new_bool(*b),
        Value::String(s) => RestrictedExpression::new_string(s.clone()),
        Value::Number(n) => RestrictedExpression::new_long(n.as_i64()?),
        Value::Array(items) => {
            RestrictedExpression::new_set(items.iter().map(expression).collect::<Option<Vec<_>>>()?)
        }
        _ => return None,
    })
}

/// Make a counterexample readable: the solver picks any model, often with huge counts and
/// every surface. Greedily lower each fact (counts to 0 or 1, fewer surfaces, no evidence,
/// a human author) while the example still shows the finding, checked by evaluating Cedar
/// on the concrete request. The result is still a real counterexample, only smaller.
fn shrink(
    mut example: Counterexample,
    env: &Env,
    keeps: impl Fn(&Request, &Entities) -> bool,
) -> Counterexample {
    let kind = example
        .facts
        .get("author_kind")
        .and_then(Value::as_str)
        .unwrap_or("human")
        .to_owned();
    example.author = format!("{kind}:example");
    let holds = |candidate: &Counterexample| {
        rebuild(candidate, env).is_some_and(|(request, entities)| keeps(&request, &entities))
    };
    if !holds(&example) {
        return example;
    }
    let try_set = |example: &mut Counterexample, changes: &[(&str, Value)]| -> bool {
        let mut candidate = example.clone();
        for (name, value) in changes {
            candidate.facts.insert((*name).to_owned(), value.clone());
        }
        if let Some(Value::String(kind)) = candidate.facts.get("author_kind") {
            candidate.author = format!("{kind}:example");
        }
        let ok = candidate != *example && holds(&candidate);
        if ok {
            *example = candidate;
        }
        ok
    };
    // A few passes reach a fixpoint: each change only removes something.
    for _ in 0..4 {
        let mut changed = false;
        changed |= try_set(&mut example, &[("author_kind", Value::from("human"))]);
        changed |= try_set(
            &mut example,
            &[
                ("evidence_considered", Value::Bool(false)),
                ("coverage_percent", Value::from(0)),
                ("planned_suites", Value::from(0)),
                ("failed_suites", Value::from(0)),
                ("regressions", Value::from(0)),
                ("reachable_vulnerabilities", Value::from(0)),
            ],
        );
        for name in [
            "critical_reached",
            "revenue_path_reached",
            "data_stores_touched",
            "unmapped_files",
            "reached_nodes",
            "touched_nodes",
            "planned_suites",
            "failed_suites",
            "regressions",
            "reachable_vulnerabilities",
        ] {
            let current = example.facts.get(name).and_then(Value::as_i64).unwrap_or(0);
            for small in [0, 1].into_iter().filter(|small| *small < current) {
                if try_set(&mut example, &[(name, Value::from(small))]) {
                    changed = true;
                    break;
                }
            }
        }
        for level in 0..=4 {
            if try_set(
                &mut example,
                &[("max_criticality_touched", Value::from(level))],
            ) {
                changed = true;
                break;
            }
        }
        for level in 0..=4 {
            if try_set(
                &mut example,
                &[("max_criticality_reached", Value::from(level))],
            ) {
                changed = true;
                break;
            }
        }
        if example.facts.get("evidence_considered") == Some(&Value::Bool(true)) {
            for percent in [100, 0] {
                if try_set(&mut example, &[("coverage_percent", Value::from(percent))]) {
                    changed = true;
                    break;
                }
            }
        }
        // Drop surfaces one at a time, from every set that holds them, keeping the sets
        // consistent (touched within reached, never-automate within both).
        let surfaces: Vec<String> = example
            .facts
            .get("surfaces_reached")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        for surface in surfaces {
            let facts = example.facts.clone();
            let without = |name: &str| -> Value {
                Value::Array(
                    facts
                        .get(name)
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter(|v| v.as_str() != Some(surface.as_str()))
                                .cloned()
                                .collect()
                        })
                        .unwrap_or_default(),
                )
            };
            let mut changes = vec![
                ("surfaces_touched", without("surfaces_touched")),
                ("surfaces_reached", without("surfaces_reached")),
                ("never_automate_touched", without("never_automate_touched")),
                ("never_automate_reached", without("never_automate_reached")),
            ];
            if surface == "governance" {
                changes.push(("governance_touched", Value::Bool(false)));
            }
            // Or keep it reached but not touched.
            let untouched = [
                ("surfaces_touched", without("surfaces_touched")),
                ("never_automate_touched", without("never_automate_touched")),
                ("governance_touched", Value::Bool(false)),
            ];
            if try_set(&mut example, &changes) {
                changed = true;
            } else {
                let keep = if surface == "governance" { 3 } else { 2 };
                changed |= try_set(&mut example, &untouched[..keep]);
            }
        }
        if !changed {
            break;
        }
    }
    example
}

/// Criticality level in words.
fn criticality(level: i64) -> &'static str {
    match level {
        i64::MIN..=0 => "none",
        1 => "low",
        2 => "moderate",
        3 => "high",
        _ => "critical",
    }
}

fn describe(author: &str, facts: &BTreeMap<String, Value>) -> String {
    let long = |name: &str| facts.get(name).and_then(Value::as_i64).unwrap_or(0);
    let flag = |name: &str| facts.get(name).and_then(Value::as_bool).unwrap_or(false);
    let set = |name: &str| -> String {
        let items: Vec<&str> = facts
            .get(name)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    let kind = facts
        .get("author_kind")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let shown_author = if author.is_empty() {
        String::new()
    } else {
        format!(" ({author})")
    };
    let evidence = if flag("evidence_considered") {
        format!(
            "evidence considered: coverage {}% of {} planned suite(s), {} failed, {} regression(s), {} reachable vulnerabilit{}",
            long("coverage_percent"),
            long("planned_suites"),
            long("failed_suites"),
            long("regressions"),
            long("reachable_vulnerabilities"),
            if long("reachable_vulnerabilities") == 1 {
                "y"
            } else {
                "ies"
            },
        )
    } else {
        "no evidence considered".to_owned()
    };
    format!(
        "a change by a {kind} author{shown_author}; surfaces touched: {} (never-automate: {}); surfaces reached: {} (never-automate: {}); criticality touched {} ({}), reached {} ({}); {} node(s) touched, {} more reached; {} critical and {} revenue-path node(s) reached; {} data store(s) touched; {} unmapped file(s); governance files {}; {evidence}; self-validated suites: {} (base version passed: {}); dispatched by: {}",
        set("surfaces_touched"),
        set("never_automate_touched"),
        set("surfaces_reached"),
        set("never_automate_reached"),
        criticality(long("max_criticality_touched")),
        long("max_criticality_touched"),
        criticality(long("max_criticality_reached")),
        long("max_criticality_reached"),
        long("touched_nodes"),
        long("reached_nodes"),
        long("critical_reached"),
        long("revenue_path_reached"),
        long("data_stores_touched"),
        long("unmapped_files"),
        if flag("governance_touched") {
            "edited"
        } else {
            "not edited"
        },
        set("self_validated_suites"),
        set("base_suite_passed"),
        set("dispatched_by"),
    )
}

impl fmt::Display for PropertySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PropertySource::Builtin => "built-in",
            PropertySource::Team => "team",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_properties_parse() {
        let properties =
            properties_from(BUILTIN_FILE, BUILTIN_PROPERTIES, PropertySource::Builtin).unwrap();
        let ids: Vec<&str> = properties.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "never-automate-touched-never-automated",
                "unmapped-files-never-auto-merge",
                "reachable-vulnerability-never-automated",
                "missing-coverage-never-auto-merge",
                "agent-build-never-automated",
                "agent-unmapped-never-automated",
                "self-validated-suite-never-automated",
                "earned-automation-needs-full-coverage",
                "earned-automation-needs-no-failure-or-regression",
                "earned-automation-never-on-never-automate-surfaces",
                "earned-automation-never-on-data-stores-or-critical-reach",
            ]
        );
    }

    #[test]
    fn the_domain_parses_and_validates() {
        let pack = PolicyPack::default_pack();
        let set = bounded(&pack.set).unwrap();
        let schema = schema().unwrap();
        let result = cedar_policy::Validator::new(schema)
            .validate(&set, cedar_policy::ValidationMode::Strict);
        assert!(result.validation_passed(), "{result:?}");
    }

    #[test]
    fn a_missing_solver_is_a_clear_error() {
        let config = SolverConfig::new(Some(PathBuf::from("/nonexistent/cvc5")));
        let error = solver_version(&config).unwrap_err();
        assert!(
            matches!(error, VerifyError::SolverMissing { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("/nonexistent/cvc5"));
    }

    #[test]
    fn a_program_that_is_not_cvc5_is_refused() {
        let config = SolverConfig::new(Some(PathBuf::from("true")));
        let error = solver_version(&config).unwrap_err();
        assert!(
            matches!(error, VerifyError::SolverVersion { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_solver_that_never_answers_times_out() {
        use std::os::unix::fs::PermissionsExt;
        let script = std::env::temp_dir().join(format!("hanging-cvc5-{}", std::process::id()));
        std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut config = SolverConfig::new(Some(script.clone()));
        config.timeout = Duration::from_millis(300);
        let started = Instant::now();
        let error = solver_version(&config).unwrap_err();
        let _ = std::fs::remove_file(&script);
        assert!(
            matches!(error, VerifyError::SolverTimeout { .. }),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
