//! One function per subcommand: resolve the arguments, call the libraries, print.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use countersign_repo::{Repo, RepoError, WorkTree};

use crate::cli::{
    BundleCommand, Command, DatabaseArgs, DemoArgs, EvaluateArgs, GraphCommand, GraphFormat,
    InitArgs, LogCommand, OutputFormat, PolicyCommand, RepoArgs,
};
use crate::{audit, demo, render};
use countersign_decide::DecideError;
use countersign_decide::evaluate::{self, ChangeSource, Proposer};
use countersign_decide::governed::{self, GovernedState};
use countersign_decide::report;

pub fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Log(command) => log_cmd(command),
        Command::Serve(args) => crate::server_cmd::serve(args),
        Command::Token(command) => crate::server_cmd::token(command),
        Command::Bundle(command) => bundle_cmd(command),
        Command::Replay(args) => replay_cmd(args),
        Command::Evaluate(args) => evaluate_cmd(args),
        Command::Graph(graph) => graph_cmd(graph),
        Command::Policy(policy) => policy_cmd(policy),
        Command::Init(args) => init(args),
        Command::Demo(args) => demo_cmd(args),
        Command::Schema => {
            println!("{}", report::json_schema());
            Ok(ExitCode::SUCCESS)
        }
        Command::Runner(crate::cli::RunnerCommand::Keygen { name, out }) => {
            crate::attest::keygen(&name, &out)
        }
        Command::Runner(crate::cli::RunnerCommand::Serve(args)) => crate::runner::serve(*args),
        Command::Attest(args) => crate::attest::attest(args),
        Command::Capsule(crate::cli::CapsuleCommand::Build(args)) => crate::capsule::build(&args),
        Command::Capsule(crate::cli::CapsuleCommand::Verify { file, trusted_key }) => {
            crate::capsule::verify(&file, trusted_key.as_deref())
        }
        Command::Evidence(crate::cli::EvidenceCommand::Verify {
            repo,
            commit,
            files,
        }) => crate::evidence::verify_cmd(&repo, &commit, &files),
        Command::Evidence(crate::cli::EvidenceCommand::Push(args)) => {
            crate::client::push_evidence(&args)
        }
        Command::Client(command) => crate::client::run(command),
        Command::Findings(command) => crate::client::findings(command),
        Command::Mcp(args) => crate::mcp::run(&args),
        Command::Hook(crate::cli::hook::HookCommand::PreReceive(args)) => {
            crate::hook::pre_receive(&args)
        }
        Command::Hook(crate::cli::hook::HookCommand::PostReceive(args)) => {
            crate::hook::post_receive(&args)
        }
    }
}

/// What to do about `error`, when the fix is a command rather than an input: the libraries
/// say what failed, and only the binary knows which commands its user can run.
pub fn hint(error: &anyhow::Error) -> Option<&'static str> {
    let shallow = error.chain().any(|cause| {
        let repo = cause
            .downcast_ref::<DecideError>()
            .and_then(DecideError::repo_error)
            .or_else(|| cause.downcast_ref::<RepoError>());
        matches!(repo, Some(RepoError::ShallowHistory { .. }))
    });
    shallow
        .then_some("fetch more history, e.g. `git fetch --deepen=100` or `git fetch --unshallow`")
}

fn evaluate_cmd(args: EvaluateArgs) -> Result<ExitCode> {
    let change = match (args.base, args.head, args.files) {
        (Some(base), Some(head), _) => ChangeSource::Commits { base, head },
        (_, _, Some(files)) => ChangeSource::Paths {
            paths: read_path_list(&files)?,
            rev: args.rev,
        },
        _ => bail!("give either --base REV --head REV or --files FILE"),
    };
    let author = match (args.author, &change) {
        (Some(author), _) => author,
        (None, ChangeSource::Commits { base, head }) => author_of_commits(&args.repo, base, head)?,
        (None, ChangeSource::Paths { .. }) => {
            bail!("--files needs --author: a list of paths has no commits to read authors from")
        }
    };
    let proposer = Proposer {
        author,
        declared_tier: args.declared_tier,
        dispatched_by: args.dispatched_by,
    };
    let what_if = args.what_if.then(|| countersign_decide::what_if::Budget {
        decisions: args.what_if_budget,
        // A person waits for this: two seconds at most, and the output says when it was cut.
        deadline: Some(std::time::Instant::now() + std::time::Duration::from_secs(2)),
        ..countersign_decide::what_if::Budget::default()
    });
    let evaluation = evaluate::evaluate_with_what_if(
        &args.repo,
        change,
        &proposer,
        &args.evidence,
        what_if.as_ref(),
    )
    .map_err(|error| match error {
        // The library names no flag; the author came from this one.
        DecideError::Author { .. } => anyhow::Error::new(error).context("--author"),
        other => other.into(),
    })?;
    note_untracked(&evaluation.untracked_read);
    if let Some(base) = &evaluation.report.change.base {
        warn_unprotected_base(&args.repo, base);
    }
    for dead in &evaluation.report.dead_globs {
        let hint = dead
            .did_you_mean
            .as_ref()
            .map(|p| format!("; did you mean {p}?"))
            .unwrap_or_default();
        eprintln!(
            "warning: {}:{}: {}: `countersign.dev/paths` glob resolves to `{}`, which matches no tracked file{hint} (`graph check` fails on it)",
            dead.file, dead.line, dead.entity, dead.glob
        );
    }
    match args.format {
        OutputFormat::Json => print_json(&evaluation.report)?,
        OutputFormat::Text => print_text(&render::evaluation(&evaluation))?,
    }
    if args.record {
        let key = args
            .log_key
            .as_deref()
            .context("--record needs --log-key FILE")?;
        if args.database.is_none() {
            // The default database lives in the repository: keep it out of commits.
            audit::ignore_state(&args.repo)?;
        }
        let url = audit::database_url(&args.repo, args.database.as_deref());
        let (id, indexes) = audit::record_decision(&evaluation, &proposer, &url, key)?;
        // On stderr, so `--format json` output stays one JSON document.
        eprintln!("recorded proposal {id} as log entries {indexes:?}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Warns on stderr when `base` is not in the history of a protected branch of the local
/// repository: the server refuses such a proposal (its base would be the proposer's choice),
/// so the decision printed is not one a proposal would get. A warning, not an error: a local
/// evaluation may well compare two arbitrary commits.
fn warn_unprotected_base(repo: &Path, base: &str) {
    let checked = Repo::open(repo).map_err(DecideError::from).and_then(|git| {
        let id = countersign_repo::CommitId::from_hex(base)?;
        countersign_decide::protected::check_base(&git, &id)
    });
    if let Err(error) = checked {
        eprintln!(
            "warning: {}; the server would refuse a proposal with this base",
            error.chain()
        );
    }
}

fn read_path_list(file: &str) -> Result<Vec<String>> {
    let mut bytes = Vec::new();
    if file == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading changed paths from stdin")?;
    } else {
        bytes =
            std::fs::read(file).with_context(|| format!("reading changed paths from {file}"))?;
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            let offset = error.utf8_error().valid_up_to();
            let line = error.as_bytes()[..offset]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            bail!(
                "{file}: line {line}: a changed path is not valid UTF-8; countersign only governs UTF-8 paths"
            );
        }
    };
    Ok(text.lines().map(str::to_string).collect())
}

/// Loads the governed state of the working tree or of `--rev`.
fn load_state(args: &RepoArgs) -> Result<GovernedState> {
    match &args.rev {
        Some(rev) => {
            let git = Repo::open(&args.repo)?;
            let id = git.resolve(rev)?;
            governed::load(&git.commit_tree(&id)?)
                .with_context(|| format!("reading the governed state at {rev}"))
        }
        None => {
            let source = WorkTree::open(&args.repo)?;
            let state = governed::load(&source).with_context(|| {
                format!("reading the governed state of {}", args.repo.display())
            })?;
            note_untracked(&source.untracked_read());
            Ok(state)
        }
    }
}

/// What `graph check` reports of the working tree or of `--rev`: [`governed::check`].
fn check_state(args: &RepoArgs) -> Result<countersign_graph::check::CheckReport> {
    match &args.rev {
        Some(rev) => {
            let git = Repo::open(&args.repo)?;
            let id = git.resolve(rev)?;
            let tree = git.commit_tree(&id)?;
            let state = governed::load(&tree)
                .with_context(|| format!("reading the governed state at {rev}"))?;
            governed::check(&tree, &state)
                .with_context(|| format!("checking the signing keys at {rev}"))
        }
        None => {
            let source = WorkTree::open(&args.repo)?;
            let state = governed::load(&source).with_context(|| {
                format!("reading the governed state of {}", args.repo.display())
            })?;
            let report = governed::check(&source, &state)
                .with_context(|| format!("checking the signing keys of {}", args.repo.display()))?;
            note_untracked(&source.untracked_read());
            Ok(report)
        }
    }
}

/// Says on stderr which untracked files of the working tree a command read: what it
/// checked is not in any commit yet (and a server judging a proposal will not see it).
pub(crate) fn note_untracked(files: &[String]) {
    if !files.is_empty() {
        eprintln!(
            "note: read {} untracked file(s) of the working tree (not committed yet): {}",
            files.len(),
            files.join(", ")
        );
    }
}

fn graph_cmd(command: GraphCommand) -> Result<ExitCode> {
    match command {
        GraphCommand::Check { repo, format } => {
            let report = check_state(&repo)?;
            match format {
                OutputFormat::Json => print_json(&render::check_json(&report))?,
                OutputFormat::Text => print_text(&render::check_text(&report))?,
            }
            let errors = report
                .diagnostics
                .iter()
                .any(|d| d.severity == countersign_graph::Severity::Error);
            Ok(if errors {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        GraphCommand::Show { repo, format } => {
            let state = load_state(&repo)?;
            let graph = state.graph();
            match format {
                GraphFormat::Json => print_json(&countersign_graph::render::to_json(graph))?,
                GraphFormat::Dot => print_text(&countersign_graph::render::to_dot(graph))?,
                GraphFormat::Mermaid => print_text(&countersign_graph::render::to_mermaid(graph))?,
            }
            Ok(ExitCode::SUCCESS)
        }
        GraphCommand::Impact {
            repo,
            format,
            paths,
        } => {
            let state = load_state(&repo)?;
            let impact = countersign_graph::impact(state.graph(), &paths);
            match format {
                OutputFormat::Json => print_json(&report::impact_report(&impact))?,
                OutputFormat::Text => print_text(&render::impact(&impact))?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn policy_cmd(command: PolicyCommand) -> Result<ExitCode> {
    match command {
        PolicyCommand::Verify {
            repo,
            policy,
            properties,
        } => crate::assurance::verify_cmd(&repo.repo, policy.as_deref(), properties.as_deref()),
        PolicyCommand::Diff { old, new } => crate::assurance::diff_cmd(&old, &new),
        PolicyCommand::Schema => {
            print_text(countersign_policy::schema_text())?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Check { repo, policy } => {
            let files = match policy {
                Some(dir) => read_policy_dir(&dir)?,
                None => {
                    let source = WorkTree::open(&repo.repo)?;
                    let config = governed::read_config(&source)?;
                    let files = governed::read_policy_files(
                        &source,
                        &config.policy.dir,
                        config.limits.file_bytes,
                    )?;
                    note_untracked(&source.untracked_read());
                    files
                }
            };
            let (files, what) = if files.is_empty() {
                let defaults = countersign_policy::default_files()
                    .into_iter()
                    .map(|(p, t)| (p.to_string(), t.to_string()))
                    .collect();
                (defaults, "the embedded default pack")
            } else {
                (files, "the policy directory")
            };
            let diagnostics = countersign_policy::check(&files);
            for d in &diagnostics {
                println!(
                    "{}:{}:{}: {}: {}",
                    d.file,
                    d.line,
                    d.column,
                    d.severity.as_str(),
                    d.message
                );
            }
            let errors = diagnostics
                .iter()
                .filter(|d| d.severity == countersign_policy::Severity::Error)
                .count();
            println!(
                "checked {} file(s) of {what}: {errors} error(s), {} warning(s)",
                files.len(),
                diagnostics.len() - errors
            );
            Ok(if errors > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// Reads every `.cedar` file under `dir` (recursively), paths relative to `dir`.
fn read_policy_dir(dir: &Path) -> Result<Vec<(String, String)>> {
    let files = governed::read_policy_files(
        &WorkTree::open(dir)?,
        "",
        countersign_graph::Limits::default().file_bytes,
    )?;
    if files.is_empty() {
        bail!(
            "{}: no .cedar files in this policy directory",
            dir.display()
        );
    }
    Ok(files)
}

fn init(args: InitArgs) -> Result<ExitCode> {
    let config_path = args.repo.join(countersign_repo::CONFIG_FILE);
    let policy_dir = args.repo.join(".countersign/policy");
    let mut written = Vec::new();
    let mut planned: Vec<(std::path::PathBuf, String)> =
        vec![(config_path, countersign_repo::STARTER_CONFIG.to_string())];
    for (name, text) in countersign_policy::default_files_with(&args.with) {
        let file_name = Path::new(name)
            .file_name()
            .context("a default policy file has no name")?;
        planned.push((policy_dir.join(file_name), text.to_string()));
    }
    if !args.force {
        let existing: Vec<String> = planned
            .iter()
            .filter(|(path, _)| path.exists())
            .map(|(path, _)| path.display().to_string())
            .collect();
        if !existing.is_empty() {
            bail!(
                "refusing to overwrite {}; pass --force to replace them",
                existing.join(", ")
            );
        }
    }
    std::fs::create_dir_all(&policy_dir)
        .with_context(|| format!("creating {}", policy_dir.display()))?;
    for (path, text) in planned {
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    let mut out = std::io::stdout().lock();
    for path in written {
        writeln!(out, "wrote {}", path.display())?;
    }
    if audit::ignore_state(&args.repo)? {
        writeln!(
            out,
            "added .countersign/state/ to {}",
            args.repo.join(".gitignore").display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn demo_cmd(args: DemoArgs) -> Result<ExitCode> {
    let outcome = demo::run(args.dir.as_deref())?;
    let serve = !args.no_serve;
    let live = demo::live::start(
        &outcome,
        &demo::live::LiveOptions {
            listen: args.listen.as_deref(),
            serve,
        },
    )?;
    match args.format {
        OutputFormat::Json => print_json(&live.json(outcome.json()))?,
        OutputFormat::Text => print_text(&format!("{}{}", outcome.table(), live.text()))?,
    }
    live.finish(serve)?;
    Ok(ExitCode::SUCCESS)
}

fn log_cmd(command: LogCommand) -> Result<ExitCode> {
    let url = |db: &DatabaseArgs| audit::database_url(&db.repo, db.database.as_deref());
    match command {
        LogCommand::Keygen { origin, out } => audit::keygen(&origin, &out),
        LogCommand::Checkpoint { db, key } => audit::checkpoint(&url(&db), &key),
        LogCommand::Verify { db, log_key } => audit::verify(
            &url(&db),
            db.database.is_none().then_some(db.repo.as_path()),
            &log_key,
        ),
        LogCommand::Consistency {
            db,
            log_key,
            old,
            new,
        } => audit::consistency(&url(&db), &log_key, &old, &new),
        LogCommand::Monitor { db, log_key, state } => audit::monitor(&url(&db), &log_key, &state),
    }
}

fn bundle_cmd(command: BundleCommand) -> Result<ExitCode> {
    match command {
        BundleCommand::Export {
            db,
            id,
            out,
            log_key,
        } => audit::export(
            &audit::database_url(&db.repo, db.database.as_deref()),
            &id,
            out.as_ref(),
            log_key.as_deref(),
        ),
        BundleCommand::Verify { file, log_key } => audit::verify_file(&file, &log_key),
        BundleCommand::Fetch(args) => crate::client::fetch_bundle(&args),
    }
}

/// The proposer of `base..head` when `--author` is not given: the principals of the
/// commits' authors and committers, as the base's catalog names them (the server's reading,
/// `countersign_decide::people`). An agent among them is the proposer (an agent's change
/// is judged as one); an email no catalog User has is refused, never guessed. Says on
/// stderr whom it took.
fn author_of_commits(repo: &Path, base: &str, head: &str) -> Result<String> {
    use countersign_decide::people;
    let git = Repo::open(repo)?;
    let (base_id, head_id) = (git.resolve(base)?, git.resolve(head)?);
    let emails = people::commit_emails(&git, &base_id, &head_id)?;
    let directory = people::directory(&git, &base_id)
        .with_context(|| format!("reading the catalog Users at base {base}"))?;
    let authors = people::authors(&directory, emails);
    let unknown: Vec<&str> = authors
        .iter()
        .filter_map(|a| a.strip_prefix("email:"))
        .collect();
    if !unknown.is_empty() {
        bail!(
            "--author not given, and commits in {base}..{head} are by {} whom no catalog User \
             of the base has as `spec.profile.email`: pass --author, or declare them",
            unknown.join(", ")
        );
    }
    let chosen = authors
        .iter()
        .find(|a| a.starts_with("agent:"))
        .or_else(|| authors.first())
        .cloned()
        .ok_or_else(|| anyhow!("no commits in {base}..{head} to read an author from"))?;
    eprintln!(
        "author: {chosen} (from the commits of {base}..{head}: {})",
        authors.join(", ")
    );
    Ok(chosen)
}

/// Writes `text` to stdout; a closed pipe is an error the caller returns (and `main` ends
/// quietly on), not a panic as `print!` would make it.
fn print_text(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn replay_cmd(args: crate::cli::ReplayArgs) -> Result<ExitCode> {
    use crate::replay::{self, Range, ReplayOptions};
    let range = match (args.last, args.since) {
        (Some(n), _) => Range::Last(n),
        (None, Some(rev)) => Range::Since(rev),
        (None, None) => bail!("give --last N or --since REV"),
    };
    let candidate = match &args.policy {
        Some(dir) => Some(
            countersign_policy::PolicyPack::from_files(read_policy_dir(dir)?)
                .with_context(|| format!("loading the candidate policy {}", dir.display()))?,
        ),
        None => None,
    };
    let options = ReplayOptions {
        repo: &args.repo,
        range,
        candidate,
        human_share_max: args.human_share_max,
        assume_full_evidence: args.assume_evidence == Some(crate::cli::AssumeEvidence::Full),
    };
    let mut progress = replay::Progress::new();
    let report = replay::replay(&options, &mut |done, total| progress.update(done, total))?;
    match args.format {
        crate::cli::ReplayFormat::Text => print_text(&replay::render_text(&report))?,
        crate::cli::ReplayFormat::Json => print_json(&report)?,
        crate::cli::ReplayFormat::Csv => print_text(&replay::render_csv(&report))?,
    }
    Ok(ExitCode::SUCCESS)
}
