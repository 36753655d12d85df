//! The audit commands: `log keygen|checkpoint|verify|consistency|monitor`, `bundle
//! export|verify`, and recording a decision (`evaluate --record`).
//!
//! Wiring only: the log math, notes and bundle checks live in countersign-audit, storage and
//! bundle assembly in countersign-store, the events of a decision in `record`.
//! Re-derivation is `countersign_decide::bundle::rederive`, over the same pipeline that
//! made the decision.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use countersign_audit::bundle::verify_bundle;
use countersign_audit::{Checkpoint, SignedCheckpoint, Signer, Verifier};
use countersign_store::Store;

use countersign_decide::bundle;
use countersign_decide::evaluate::{Evaluation, Proposer};
use countersign_decide::record;

/// Where `countersign serve` keeps its log by default, relative to the directory it runs in
/// (the demo's too).
pub const SERVER_DATABASE: &str = ".countersign/state/server.db";

/// Adds `.countersign/state/` (the local log, its database, keys) to the repository's
/// `.gitignore` unless a line already names it: state is never a rule file and must not be
/// committed. Returns whether it wrote.
pub fn ignore_state(repo: &Path) -> Result<bool> {
    const LINE: &str = ".countersign/state/";
    let path = repo.join(".gitignore");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let present = text.lines().any(|line| {
        let line = line.trim().trim_start_matches('/');
        line == LINE || line == ".countersign/state"
    });
    if present {
        return Ok(false);
    }
    let mut updated = text;
    if !updated.is_empty() && !updated.ends_with('\n') {
        updated.push('\n');
    }
    updated.push_str("# countersign's local state (log, database, keys): never committed\n");
    updated.push_str(LINE);
    updated.push('\n');
    std::fs::write(&path, updated).with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

/// The local state database: `<repo>/.countersign/state/countersign.db`, unless given.
pub fn database_url(repo: &Path, explicit: Option<&str>) -> String {
    match explicit {
        Some(url) => url.to_string(),
        None => format!(
            "sqlite://{}?mode=rwc",
            repo.join(".countersign/state/countersign.db").display()
        ),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn connect(rt: &tokio::runtime::Runtime, url: &str) -> Result<Store> {
    rt.block_on(Store::connect(url))
        .with_context(|| format!("opening the audit log at {url}"))
}

/// The current time as RFC 3339 (UTC, seconds).
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Reads a log signing key (`PRIVATE+KEY+...`).
pub fn read_signer(path: &Path) -> Result<Signer> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the log key {}", path.display()))?;
    Signer::parse(text.trim()).with_context(|| format!("{}: not a log signing key", path.display()))
}

/// Reads a log verifier key, or derives it from a signing key file.
pub fn read_verifier(path: &Path) -> Result<Verifier> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the log key {}", path.display()))?;
    let text = text.trim();
    if text.starts_with("PRIVATE+KEY+") {
        return Ok(Signer::parse(text)
            .with_context(|| format!("{}: not a log signing key", path.display()))?
            .verifier());
    }
    Verifier::parse(text).with_context(|| format!("{}: not a log verifier key", path.display()))
}

/// Appends the decision's events and blobs in one transaction; returns the proposal id
/// and the log index of each event.
pub fn record_decision(
    evaluation: &Evaluation,
    proposer: &Proposer,
    url: &str,
    log_key: &Path,
) -> Result<(String, Vec<u64>)> {
    let signer = read_signer(log_key)?;
    let record = record::record(evaluation, proposer, &now(), &signer)?;
    let rt = runtime()?;
    let store = connect(&rt, url)?;
    rt.block_on(async {
        let mut tx = store.begin().await?;
        for blob in &record.blobs {
            tx.put_hashed_blob(blob).await?;
        }
        let mut indexes = Vec::new();
        for event in &record.events {
            indexes.push(tx.append_event(event).await?);
        }
        tx.commit().await?;
        store.close().await;
        Ok::<_, countersign_store::Error>(indexes)
    })
    .map(|indexes| (record.subject, indexes))
    .context("recording the decision")
}

/// `log keygen`: a new signing key for a log named `origin`.
pub fn keygen(origin: &str, out: &Path) -> Result<ExitCode> {
    let signer = generate_key(origin, out)?;
    println!(
        "wrote {} (secret) and {}",
        out.display(),
        out.with_extension("pub").display()
    );
    println!("verifier key: {}", signer.verifier());
    Ok(ExitCode::SUCCESS)
}

/// Writes a new signing key for a log named `origin` to `out` (created 0600, never
/// overwritten) and its verifier key beside it as `.pub`; returns the key. What `log keygen`
/// and `serve` (its default key) write.
pub fn generate_key(origin: &str, out: &Path) -> Result<Signer> {
    if out.exists() {
        bail!("{} exists; refusing to overwrite a key", out.display());
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow!("no randomness from the OS: {e}"))?;
    let signer = Signer::from_seed(origin, seed)
        .with_context(|| format!("{origin:?} is not a valid log name"))?;
    write_private(out, &format!("{}\n", signer.to_private_key_string()))?;
    let public = out.with_extension("pub");
    std::fs::write(&public, format!("{}\n", signer.verifier()))
        .with_context(|| format!("writing {}", public.display()))?;
    Ok(signer)
}

/// Creates `path` readable by its owner only, failing if it exists.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// `log checkpoint`: signs the current tree head and stores it.
pub fn checkpoint(url: &str, key: &Path) -> Result<ExitCode> {
    let signer = read_signer(key)?;
    let rt = runtime()?;
    let store = connect(&rt, url)?;
    // A log a server started is signed with the key it recorded, whoever signs (a server
    // records it; a local log of `evaluate --record` has none recorded).
    let given = signer.verifier().to_string();
    if let Some(recorded) = rt.block_on(store.log_key())?
        && recorded != given
    {
        bail!(
            "this log is signed with the key {recorded}, not {given} (--key {}): sign its \
             checkpoints with the key the server recorded",
            key.display()
        );
    }
    let stored = rt.block_on(store.sign_checkpoint(&signer))?;
    print!("{}", stored.signed_note);
    Ok(ExitCode::SUCCESS)
}

/// `log verify`: recomputes the tree from storage against the latest signed checkpoint.
/// `log verify`. `repo` is the directory whose local log this is, when no database was
/// named: an empty local log there is most likely a mistaken target (the server's log is
/// another file), which is said plainly rather than as a missing checkpoint.
pub fn verify(url: &str, repo: Option<&Path>, log_key: &Path) -> Result<ExitCode> {
    let verifier = read_verifier(log_key)?;
    let rt = runtime()?;
    let store = connect(&rt, url)?;
    if rt.block_on(store.log_size())? == 0 {
        eprintln!("log verification FAILED: the log at {url} is empty: there is nothing to verify");
        if let Some(repo) = repo {
            let server = repo.join(SERVER_DATABASE);
            if server.exists() {
                let server = std::fs::canonicalize(&server).unwrap_or(server);
                eprintln!(
                    "this directory's local log (what `evaluate --record` writes) is empty; the \
                     server's log is {}:\n  countersign log verify --database sqlite://{} \
                     --log-key {}",
                    server.display(),
                    server.display(),
                    server.with_file_name("server-log.pub").display()
                );
            }
        }
        return Ok(ExitCode::from(1));
    }
    match rt.block_on(countersign_store::verify(&store, &[verifier])) {
        Ok(verified) => {
            println!(
                "log verified: {} entries match the signed checkpoint{}",
                verified.size,
                match verified.beyond_checkpoint {
                    0 => String::new(),
                    n => format!(" ({n} newer entries are not yet checkpointed)"),
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("log verification FAILED: {error}");
            Ok(ExitCode::from(1))
        }
    }
}

fn open_checkpoint(path: &Path, verifier: &Verifier) -> Result<Checkpoint> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
    Ok(
        SignedCheckpoint::open(&bytes, std::slice::from_ref(verifier))
            .with_context(|| format!("{}: checkpoint refused", path.display()))?
            .checkpoint,
    )
}

/// `log consistency OLD NEW`: proves from storage that NEW extends OLD.
pub fn consistency(url: &str, log_key: &Path, old: &Path, new: &Path) -> Result<ExitCode> {
    let verifier = read_verifier(log_key)?;
    let old = open_checkpoint(old, &verifier)?;
    let new = open_checkpoint(new, &verifier)?;
    let rt = runtime()?;
    let store = connect(&rt, url)?;
    match check_extends(&rt, &store, &old, &new) {
        Ok(()) => {
            println!(
                "consistent: the tree of size {} extends the tree of size {}",
                new.size(),
                old.size()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("INCONSISTENT: {error:#}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Checks that `new` is an append-only extension of `old`: no rollback, no fork.
fn check_extends(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    old: &Checkpoint,
    new: &Checkpoint,
) -> Result<()> {
    Ok(rt.block_on(countersign_store::check_extends(store, old, new))?)
}

/// `log monitor`: compares the log's latest checkpoint with the last one seen (kept in
/// `state`), alarms on a rollback or fork, and remembers the new one.
pub fn monitor(url: &str, log_key: &Path, state: &Path) -> Result<ExitCode> {
    let verifier = read_verifier(log_key)?;
    let rt = runtime()?;
    let store = connect(&rt, url)?;
    let latest = rt.block_on(store.latest_checkpoint())?.ok_or_else(|| {
        anyhow!("the log has no checkpoint yet: run `countersign log checkpoint`")
    })?;
    let new = SignedCheckpoint::open(
        latest.signed_note.as_bytes(),
        std::slice::from_ref(&verifier),
    )
    .context("the log's latest checkpoint is refused")?
    .checkpoint;
    if state.exists() {
        let old = open_checkpoint(state, &verifier)?;
        if let Err(error) = check_extends(&rt, &store, &old, &new) {
            eprintln!("ALARM: {error:#}");
            eprintln!("the last checkpoint seen is kept in {}", state.display());
            return Ok(ExitCode::from(1));
        }
        println!("ok: {} -> {} entries, consistent", old.size(), new.size());
    } else {
        println!("first checkpoint seen: {} entries", new.size());
    }
    std::fs::write(state, &latest.signed_note)
        .with_context(|| format!("writing {}", state.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// `bundle export ID`: the proposal's entries with inclusion proofs under a checkpoint
/// covering them, and every blob they refer to (countersign-store assembles it, as for the
/// server's `GET /v1/proposals/{id}/bundle`).
pub fn export(
    url: &str,
    id: &str,
    out: Option<&PathBuf>,
    log_key: Option<&Path>,
) -> Result<ExitCode> {
    let signer = log_key.map(read_signer).transpose()?;
    let rt = runtime()?;
    let store = connect(&rt, url)?;
    let bundle = match rt.block_on(store.export_bundle(id, signer.as_ref())) {
        Ok(bundle) => bundle,
        Err(countersign_store::Error::NoCheckpoint { index }) => bail!(
            "no signed checkpoint covers entry {index} yet: run `countersign log checkpoint` or pass --log-key"
        ),
        Err(error) => return Err(error).context("exporting the bundle"),
    };
    let json = bundle.to_json();
    match out {
        Some(path) => {
            std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
            println!(
                "wrote {} ({} entries)",
                path.display(),
                bundle.entries.len()
            );
        }
        None => println!("{}", String::from_utf8_lossy(&json)),
    }
    Ok(ExitCode::SUCCESS)
}

/// `bundle verify FILE`: signatures, proofs and checkpoint, then the decision re-derived
/// from the bundle alone and compared with the recorded one.
pub fn verify_file(file: &Path, log_key: &Path) -> Result<ExitCode> {
    let verifier = read_verifier(log_key)?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    if countersign_audit::bundle::format_of(&bytes).as_deref()
        == Some(countersign_audit::FINDING_BUNDLE_FORMAT)
    {
        return verify_finding_file(file, &bytes, &verifier);
    }
    let bundle = match verify_bundle(&bytes, std::slice::from_ref(&verifier)) {
        Ok(bundle) => bundle,
        Err(error) => {
            eprintln!("{}: REFUSED: {error}", file.display());
            return Ok(ExitCode::from(1));
        }
    };
    println!(
        "{}: {} entries included in the signed checkpoint of size {}, one unbroken chain from the proposal's first entry",
        file.display(),
        bundle.events.len(),
        bundle.checkpoint.size()
    );
    let outcome = match bundle::outcome(&bundle) {
        Ok(outcome) => outcome,
        Err(error) => {
            eprintln!("{}: REFUSED: {error:#}", file.display());
            return Ok(ExitCode::from(1));
        }
    };
    let by = match &outcome.authorized {
        Some(bundle::Authorization::People {
            approvers,
            required,
        }) => format!(
            "; authorized by {} ({} of {required} required)",
            approvers.join(", "),
            approvers.len()
        ),
        Some(bundle::Authorization::Automated { tier }) => {
            format!("; authorized automatically ({tier} tier)")
        }
        None => "; not authorized".to_owned(),
    };
    println!(
        "proposal {}: head {}, {} as of log index {}{by}",
        outcome.proposal, outcome.head, outcome.state, outcome.as_of
    );
    match bundle::rederive(&bundle, &verifier) {
        Ok(differences) if differences.is_empty() => {
            println!("re-derived: same tier, reasons and versions as recorded");
            Ok(ExitCode::SUCCESS)
        }
        Ok(differences) => {
            for d in differences {
                eprintln!("DIFFERENCE: {d}");
            }
            Ok(ExitCode::from(1))
        }
        Err(error) => {
            eprintln!("{}: REFUSED: {error:#}", file.display());
            Ok(ExitCode::from(1))
        }
    }
}

/// `bundle verify` of a finding's bundle: the whole loop checked offline.
fn verify_finding_file(
    file: &Path,
    bytes: &[u8],
    verifier: &countersign_audit::Verifier,
) -> Result<ExitCode> {
    let outcome = match bundle::verify_finding(bytes, verifier) {
        Ok(outcome) => outcome,
        Err(error) => {
            eprintln!("{}: REFUSED: {error:#}", file.display());
            return Ok(ExitCode::from(1));
        }
    };
    println!(
        "finding {}: {} as of log index {}, {} failing observation(s) each backed by its signed envelope{}",
        outcome.finding,
        outcome.state,
        outcome.as_of,
        outcome.observations,
        outcome
            .verified_by
            .as_deref()
            .map(|p| format!("; verified after fix {p} merged"))
            .unwrap_or_default()
    );
    let mut differ = false;
    for (fix, differences) in &outcome.fixes {
        println!(
            "fix {}: head {}, {} as of log index {}; {}",
            fix.proposal,
            fix.head,
            fix.state,
            fix.as_of,
            if differences.is_empty() {
                "re-derived: same tier, reasons and versions as recorded".to_owned()
            } else {
                format!("{} difference(s)", differences.len())
            }
        );
        for d in differences {
            eprintln!("DIFFERENCE ({}): {d}", fix.proposal);
            differ = true;
        }
    }
    Ok(if differ {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
