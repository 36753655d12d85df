//! Command-line arguments, parsed and validated before anything runs.
//!
//! This module only describes the interface; `main` resolves it into work. It reads no
//! other module of the binary: every command's module reads its arguments from here (the
//! server's client, hooks and `serve` from the submodules of the same names).

pub mod client;
pub mod hook;
pub mod serve;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Agents propose. Humans authorize. Every decision is evidence.
#[derive(Debug, Parser)]
#[command(name = "countersign", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Derive the approval tier of a change, with its impact, plan and explanation.
    Evaluate(EvaluateArgs),
    /// Inspect the system graph of a repository.
    #[command(subcommand)]
    Graph(GraphCommand),
    /// The Cedar policy pack: check it against the schema, print the schema, prove it never
    /// automates what must never be automated (`verify`), or compare two packs (`diff`).
    /// `verify` and `diff` need the cvc5 SMT solver on PATH (Debian: `apt-get install cvc5`).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Write a commented starter countersign.toml and the default policy pack.
    Init(InitArgs),
    /// Materialize the built-in demo system as a git repository, decide its changes, replay
    /// them through a server on SQLite (proposals and approvals over the API) and serve it.
    Demo(DemoArgs),
    /// Print the JSON schema of `evaluate --format json`.
    Schema,
    /// Runner identities: the ed25519 keys runners sign evidence with.
    #[command(subcommand)]
    Runner(RunnerCommand),
    /// Sign evidence about a commit: a DSSE envelope holding an in-toto statement built from
    /// test or scan reports, or from running a command.
    Attest(AttestArgs),
    /// Check signed evidence against the trusted runners and a commit, or push it to a
    /// proposal on the server.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// Edge capsules: an organization's signed delegation of evidence to one runner key, for
    /// some suites in one environment, until an expiry. See docs/fleet.md, "Edge capsules".
    #[command(subcommand)]
    Capsule(CapsuleCommand),
    /// The append-only audit log: keys, signed checkpoints, verification, monitoring.
    #[command(subcommand)]
    Log(LogCommand),
    /// Self-contained audit bundles: export one for a proposal (or fetch it from the server),
    /// verify one offline.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Run the countersign server: proposals, approvals and authorizations over HTTP.
    Serve(serve::ServeArgs),
    /// API tokens of the server.
    #[command(subcommand)]
    Token(serve::TokenCommand),
    /// Decide each first-parent commit of real history against its parent's graph and
    /// policy (or a candidate policy): tier shares, approvals per team and week, calibration.
    Replay(ReplayArgs),
    #[command(flatten)]
    Client(client::ClientCommand),
    /// Findings: failed tests and reachable vulnerabilities seen on protected branches by
    /// the fleet's scheduled and post-merge runs, and whether their fixes held.
    #[command(subcommand)]
    Findings(client::FindingsCommand),
    /// Serve the Model Context Protocol over stdio for an AI agent: tools to propose, explain
    /// a tier, ask what would lower it, read the plan, push signed evidence and wait for the
    /// decision, against the server with the agent's token from COUNTERSIGN_TOKEN. There is
    /// no tool that approves. See docs/agents.md.
    Mcp(client::McpArgs),
    /// Git hooks that enforce the server's authorizations.
    #[command(subcommand)]
    Hook(hook::HookCommand),
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The repository whose history is replayed.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Replay the last N first-parent commits of HEAD.
    #[arg(
        long,
        value_name = "N",
        conflicts_with = "since",
        required_unless_present = "since"
    )]
    pub last: Option<usize>,
    /// Replay the first-parent commits of HEAD after REV.
    #[arg(long, value_name = "REV")]
    pub since: Option<String>,
    /// A candidate policy directory, decided for every commit instead of the commit's own.
    #[arg(long, value_name = "DIR")]
    pub policy: Option<PathBuf>,
    /// The largest share (percent) of changes the human tiers may take before the report
    /// flags a bottleneck (default: `[replay] human_share_max` of countersign.toml, else 30).
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub human_share_max: Option<u8>,
    /// Also decide each commit as if the fleet had supplied this evidence, and contrast the
    /// two tier distributions. `full`: passing trusted evidence for every planned suite (no
    /// failure, regression or vulnerability; self-validated suites stay unconfirmed, as only
    /// a base-version run confirms them).
    #[arg(long, value_enum, value_name = "WHAT")]
    pub assume_evidence: Option<AssumeEvidence>,
    #[arg(long, value_enum, default_value_t = ReplayFormat::Text)]
    pub format: ReplayFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum AssumeEvidence {
    Full,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReplayFormat {
    Text,
    Json,
    Csv,
}

/// Where the audit log lives.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// The repository whose local state holds the log (`.countersign/state/countersign.db`).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// The log's database instead: `sqlite://PATH?mode=rwc` or `postgres://...`.
    #[arg(long, value_name = "URL", env = "COUNTERSIGN_DATABASE")]
    pub database: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Write a new log signing key (C2SP signed-note format, 0600) and its verifier key (.pub).
    Keygen {
        /// The log's origin line, e.g. `countersign.acme.example/shop`.
        #[arg(long)]
        origin: String,
        /// Where to write the secret key; the verifier key goes beside it as `.pub`.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign the current tree head as a C2SP tlog-checkpoint, store it and print it.
    Checkpoint {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The log signing key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Recompute the tree from storage and check it against the latest signed checkpoint,
    /// naming the first altered or missing entry.
    Verify {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The log's verifier key (or its signing key).
        #[arg(long, value_name = "FILE")]
        log_key: PathBuf,
    },
    /// Prove from storage that checkpoint NEW extends checkpoint OLD.
    Consistency {
        #[command(flatten)]
        db: DatabaseArgs,
        #[arg(long, value_name = "FILE")]
        log_key: PathBuf,
        /// A signed checkpoint file seen earlier.
        old: PathBuf,
        /// A later signed checkpoint file.
        new: PathBuf,
    },
    /// Compare the latest checkpoint with the last one seen; alarm (exit 1) on a rollback or fork.
    Monitor {
        #[command(flatten)]
        db: DatabaseArgs,
        #[arg(long, value_name = "FILE")]
        log_key: PathBuf,
        /// Where the last checkpoint seen is kept between runs.
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Write the bundle of a proposal: its events with inclusion proofs, a signed checkpoint,
    /// and every input needed to re-derive its decision.
    Export {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The proposal id `evaluate --record` printed.
        id: String,
        /// Output file (default: stdout).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Sign a fresh checkpoint with this key when none covers the proposal yet.
        #[arg(long, value_name = "FILE")]
        log_key: Option<PathBuf>,
    },
    /// Verify a bundle offline and re-derive its decision from it alone.
    Verify {
        file: PathBuf,
        /// The log's verifier key.
        #[arg(long, value_name = "FILE")]
        log_key: PathBuf,
    },
    /// Download the bundle of a proposal from the server (`--server`, COUNTERSIGN_TOKEN).
    Fetch(client::BundleFetchArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

/// Where the governed state (config, graph, CODEOWNERS, policy) is read from.
#[derive(Debug, Args)]
pub struct RepoArgs {
    /// The governed repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Read the governed state from this commit instead of the working tree.
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The governed repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// The base commit. The graph, CODEOWNERS and policy are read from here, never from the head.
    #[arg(long, value_name = "REV", requires = "head", conflicts_with = "files")]
    pub base: Option<String>,
    /// The head commit; the change is the diff base..head, computed from git objects.
    #[arg(long, value_name = "REV", requires = "base")]
    pub head: Option<String>,
    /// Read changed paths from a file, one per line (`-` for stdin). The governed state is
    /// read from the working tree, or from `--rev`.
    #[arg(long, value_name = "FILE", required_unless_present = "base")]
    pub files: Option<String>,
    /// With `--files`: read the governed state from this commit.
    #[arg(long, value_name = "REV", requires = "files")]
    pub rev: Option<String>,
    /// Who proposes the change: `human:NAME`, `agent:NAME`, `runner:NAME` or `system:NAME`.
    /// Required with `--files`. With `--base/--head` it defaults to the authors and committers
    /// of the commits in base..head, mapped to catalog Users of the base by profile email
    /// (bot accounts through `[agents] patterns`): an agent among them is the proposer; an
    /// email no User has is refused rather than guessed.
    #[arg(long, required_unless_present = "base")]
    pub author: Option<String>,
    /// A tier the author claims. It is recorded in the output and ignored.
    #[arg(long, value_name = "TIER")]
    pub declared_tier: Option<String>,
    /// The human who dispatched the proposing agent (`human:NAME`), as a server knows it
    /// from the agent's token (`token create --on-behalf-of`): the `dispatched_by` fact.
    #[arg(long, value_name = "PRINCIPAL")]
    pub dispatched_by: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Signed evidence (DSSE envelopes) to weigh. Only with `--base/--head`: trusted runners
    /// come from the base; envelopes for the head are head evidence, for the base base
    /// evidence, anything else is refused and listed with its reason.
    #[arg(long, value_name = "FILE", num_args = 1.., requires = "base")]
    pub evidence: Vec<PathBuf>,
    /// Also search what would lower the tier: the fewest changed files to leave out, or the
    /// planned suites whose passing evidence would route the change to a more automated
    /// tier, each re-decided (see docs/evaluate.md).
    #[arg(long)]
    pub what_if: bool,
    /// With `--what-if`: the most re-decisions the search may make.
    #[arg(long, value_name = "N", default_value_t = 256, requires = "what_if")]
    pub what_if_budget: u32,
    /// Append the decision to the audit log, with every input needed to re-derive it.
    #[arg(long, requires = "base", requires = "log_key")]
    pub record: bool,
    /// The log signing key (`countersign log keygen`), for `--record`.
    #[arg(long, value_name = "FILE")]
    pub log_key: Option<PathBuf>,
    /// The log's database for `--record` (default: the repository's local state).
    #[arg(long, value_name = "URL", env = "COUNTERSIGN_DATABASE")]
    pub database: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RunnerCommand {
    /// Write a new ed25519 key pair NAME.key (0600) and NAME.pub; print the key id and the
    /// countersign.toml snippet that trusts it.
    Keygen {
        /// The runner's name, as countersign.toml will list it.
        #[arg(long)]
        name: String,
        /// Directory to write the key files into.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
    },
    /// Serve the fleet: lease work from the server, run each suite's command (from the base's
    /// `[suites]`) in a scratch checkout, sign its reports and push the evidence. The token
    /// (a runner token) comes from COUNTERSIGN_TOKEN. Outbound connections only; SIGTERM
    /// gives the leases in hand back and exits 0. See docs/fleet.md.
    Serve(Box<RunnerServeArgs>),
}

#[derive(Debug, Args)]
pub struct RunnerServeArgs {
    /// The countersign server.
    #[arg(
        long,
        value_name = "URL",
        env = "COUNTERSIGN_SERVER",
        required_unless_present = "offline"
    )]
    pub server: Option<String>,
    /// The runner's private key (PKCS#8 PEM, as `runner keygen` writes it).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The repository this runner attests for (the `[repository] name` its evidence names).
    #[arg(long, value_name = "NAME", env = "COUNTERSIGN_REPOSITORY")]
    pub repository: String,
    /// Where commits are fetched from: a git URL or a path.
    #[arg(long, value_name = "URL")]
    pub repo: String,
    /// The runner's own bare clone, created on first use and fetched as needed.
    #[arg(long, value_name = "DIR", default_value = ".countersign-runner/clone")]
    pub clone: PathBuf,
    /// The environments this runner serves (repeatable; default `default`).
    #[arg(long, value_name = "NAME")]
    pub env: Vec<String>,
    /// Work items run at once (1 to 16).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub concurrency: usize,
    /// How long to wait before asking again when there is no work (`5s`, `1m`).
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub poll: String,
    /// Sign under this edge capsule (`capsule build`): the runner refuses to start unless
    /// `--key` is the capsule's runner key, the capsule is in force and this binary is the
    /// one it names; it runs only the capsule's suites in its environment, and every
    /// envelope carries the capsule.
    #[arg(long, value_name = "FILE")]
    pub capsule: Option<PathBuf>,
    /// No server: run the work items of `--plan` and write the signed envelopes to `--out`,
    /// for `countersign evidence push` to import later (docs/fleet.md, "Offline enclaves").
    #[arg(long, requires_all = ["plan", "out"], conflicts_with = "server")]
    pub offline: bool,
    /// With `--offline`: the plan file (`countersign-plan/v1`).
    #[arg(long, value_name = "FILE", requires = "offline")]
    pub plan: Option<PathBuf>,
    /// With `--offline`: where the envelopes are written.
    #[arg(long, value_name = "DIR", requires = "offline")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AttestArgs {
    /// The git repository the commit is read from.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// The repository this runner vouches for, as the statement's subject names it (e.g.
    /// `github.com/acme/shop`). The runner's own setting, never the commit's: a commit whose
    /// countersign.toml names another repository is refused.
    #[arg(long, value_name = "NAME", env = "COUNTERSIGN_REPOSITORY")]
    pub repository: String,
    /// The runner's private key (PKCS#8 PEM, as `runner keygen` writes it).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The commit the evidence is about; resolved to its full id.
    #[arg(long, value_name = "REV")]
    pub commit: String,
    /// The validation suite this is evidence for.
    #[arg(long, value_name = "NAME")]
    pub suite: String,
    /// JUnit XML reports (paths or globs), merged into one test-result predicate. With
    /// `--run`, read after the command finishes.
    #[arg(long, value_name = "FILE")]
    pub junit: Vec<String>,
    /// SARIF 2.1.0 logs of a security analyzer, as one vulns v0.2 predicate.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["junit", "run"])]
    pub sarif: Vec<PathBuf>,
    /// OpenVEX or CycloneDX VEX documents, as one OpenVEX predicate.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["junit", "sarif", "run"])]
    pub vex: Vec<PathBuf>,
    /// Write the envelope here instead of to stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Run the command given after `--`, and attest its exit status, duration and the JUnit
    /// it leaves. Exits 1 after signing when the command failed.
    #[arg(long, requires = "command")]
    pub run: bool,
    /// The tests that ran are the suite files of REV (usually the proposal's base), checked
    /// out over `--commit`'s code: the *base version* of the suite, which confirms a
    /// self-validated suite (docs/policy.md). Recorded in the test-result's configuration
    /// as `countersign.dev/suite-source`. JUnit or `--run` only.
    #[arg(long, value_name = "REV", conflicts_with_all = ["sarif", "vex"])]
    pub suite_source: Option<String>,
    /// Sign under this edge capsule (`capsule build`): refused unless `--key` is the
    /// capsule's runner key, the capsule is in force and this binary is the one it names;
    /// the statement then carries the capsule and `--env`.
    #[arg(long, value_name = "FILE", requires = "env")]
    pub capsule: Option<PathBuf>,
    /// The environment the suite ran in: the capsule's (with `--capsule` only).
    #[arg(long, value_name = "NAME", requires = "capsule")]
    pub env: Option<String>,
    /// The command for `--run`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum CapsuleCommand {
    /// Sign a capsule manifest: an in-toto statement in a DSSE envelope binding the runner's
    /// public key, the countersign binary's SHA-256, the suites, the environment and the
    /// expiry.
    Build(CapsuleBuildArgs),
    /// Print what a capsule binds; with `--trusted-key`, check its signature first (exit 1
    /// when it does not verify).
    Verify {
        /// The capsule file.
        file: PathBuf,
        /// The signer's public key (`.pub` as `runner keygen` writes it, or 64 hex digits).
        #[arg(long, value_name = "FILE")]
        trusted_key: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct CapsuleBuildArgs {
    /// The organization's signing key (PKCS#8 PEM, as `runner keygen` writes it); its public
    /// half goes in the base's `[[capsules.signers]]`.
    #[arg(long, value_name = "FILE")]
    pub signing_key: PathBuf,
    /// The edge runner's public key (`.pub` as `runner keygen` writes it, or 64 hex digits).
    #[arg(long, value_name = "FILE")]
    pub runner_key: PathBuf,
    /// The suites the runner may attest (comma-separated or repeated).
    #[arg(long, value_name = "SUITE", value_delimiter = ',', required = true)]
    pub suites: Vec<String>,
    /// The one environment the runner's evidence is for.
    #[arg(long, value_name = "NAME")]
    pub environment: String,
    /// How long from now the capsule is in force (`90d`, `12h`).
    #[arg(long, value_name = "DURATION")]
    pub expires: String,
    /// The countersign binary the runner will run (default: this one).
    #[arg(long, value_name = "FILE")]
    pub binary: Option<PathBuf>,
    /// Write the capsule here instead of to stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Verify envelopes: ACCEPTED or REFUSED (with the reason) per file; exits 1 if any is
    /// refused. Trusted runners come from the working tree's countersign.toml, or `--rev`'s.
    Verify {
        #[command(flatten)]
        repo: RepoArgs,
        /// The commit the evidence must be about.
        #[arg(long, value_name = "REV")]
        commit: String,
        /// DSSE envelopes (`.dsse.json`, as `attest` writes them) to verify.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Submit envelopes to a proposal on the server (`--server`, COUNTERSIGN_TOKEN of a
    /// runner): ACCEPTED or REFUSED (with the server's reasons) per file; exits 1 if any is
    /// refused.
    Push(client::EvidencePushArgs),
}

#[derive(Debug, Subcommand)]
pub enum GraphCommand {
    /// Report unknown refs, dangling dependencies, cycles, duplicates, double claims and coverage.
    Check {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Print the graph.
    Show {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long, value_enum, default_value_t = GraphFormat::Json)]
        format: GraphFormat,
    },
    /// Show the nodes and blast radius that changing these paths reaches.
    Impact {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Repository-relative paths.
        #[arg(required = true)]
        paths: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum GraphFormat {
    Json,
    Dot,
    Mermaid,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Parse and validate every policy of the pack against the schema.
    Check {
        #[command(flatten)]
        repo: RepoArgs,
        /// A policy directory to check instead of the repository's configured one.
        #[arg(long, value_name = "DIR")]
        policy: Option<PathBuf>,
    },
    /// Print the Cedar schema policies are validated against.
    Schema,
    /// Prove with the cvc5 SMT solver that the pack never automates what must never be
    /// automated (and the team's own properties); exit 1 with a counterexample if not.
    Verify {
        #[command(flatten)]
        repo: RepoArgs,
        /// A policy directory to verify instead of the repository's configured one.
        #[arg(long, value_name = "DIR")]
        policy: Option<PathBuf>,
        /// A Cedar file of further properties the pack must imply (docs/policy.md).
        #[arg(long, value_name = "FILE")]
        properties: Option<PathBuf>,
    },
    /// Decide with the cvc5 SMT solver whether two policy directories route every change the
    /// same way; exit 1 with a change per tier they route differently if not.
    Diff {
        /// The old policy directory.
        old: PathBuf,
        /// The new policy directory.
        new: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The repository to initialize.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
    /// Add an optional module to the policy pack (repeatable). `earned-automation`: a
    /// change that edits a high-criticality node proceeds with notification when trusted
    /// evidence covers its full validation plan with no failure and no regression
    /// (docs/policy.md).
    #[arg(
        long = "with",
        value_name = "MODULE",
        value_parser = |name: &str| name.parse::<countersign_policy::PackModule>()
    )]
    pub with: Vec<countersign_policy::PackModule>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the demo repository (default: a fresh temporary directory that is kept).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Where the demo server listens (default: 127.0.0.1:7878, the client's default, or a
    /// free port if it is taken or with --no-serve).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Replay the demo through the server, print, and exit instead of serving (tests, CI).
    #[arg(long)]
    pub no_serve: bool,
}
