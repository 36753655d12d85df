//! The audit commands: `log keygen|checkpoint|verify|consistency|monitor`, `bundle
//! export|verify`, and recording a decision (`evaluate --record`).
//!
//! Wiring only: the log math, notes and bundle checks live in countersign-audit, storage in
//! countersign-store, the events of a decision in `record`. Re-derivation reuses
//! `evaluate::rederive`, the same pipeline that made the decision.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use countersign_audit::bundle::{Bundle, VerifiedBundle, verify_bundle};
use countersign_audit::{Checkpoint, Event, EventKind, SignedCheckpoint, Signer, Verifier};
use countersign_evidence::dsse::{Envelope, PublicKey};
use countersign_repo::{ChangeKind, ChangedPath};
use countersign_store::Store;
use serde_json::Value;

use countersign_decide::evaluate::{self, Evaluation, Proposer};
use countersign_decide::record;

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
    repository: &str,
    url: &str,
    log_key: &Path,
) -> Result<(String, Vec<u64>)> {
    let signer = read_signer(log_key)?;
    let record = record::record(evaluation, proposer, repository, &now(), &signer)?;
    let rt = runtime()?;
    let store = connect(&rt, url)?;
    rt.block_on(async {
        let mut tx = store.begin().await?;
        for blob in &record.blobs {
            tx.put_blob(blob).await?;
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
    println!("wrote {} (secret) and {}", out.display(), public.display());
    println!("verifier key: {}", signer.verifier());
    Ok(ExitCode::SUCCESS)
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
    let stored = rt.block_on(store.sign_checkpoint(&signer))?;
    print!("{}", stored.signed_note);
    Ok(ExitCode::SUCCESS)
}

/// `log verify`: recomputes the tree from storage against the latest signed checkpoint.
pub fn verify(url: &str, log_key: &Path) -> Result<ExitCode> {
    let verifier = read_verifier(log_key)?;
    let rt = runtime()?;
    let store = connect(&rt, url)?;
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
    if new.size() < old.size() {
        bail!(
            "rollback: the log went from {} entries back to {}",
            old.size(),
            new.size()
        );
    }
    if new.size() == old.size() {
        if new.root() != old.root() {
            bail!(
                "fork: two different trees of size {} (roots {} and {})",
                old.size(),
                old.root(),
                new.root()
            );
        }
        return Ok(());
    }
    let proof = rt
        .block_on(store.consistency_proof(old.size(), new.size()))
        .context("reading a consistency proof")?;
    proof
        .verify(old.size(), old.root(), new.size(), new.root())
        .map_err(|e| {
            anyhow!(
                "fork: the tree of size {} does not extend the one of size {}: {e}",
                new.size(),
                old.size()
            )
        })
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

/// Digests of the blobs an event refers to.
fn referenced_blobs(event: &Event) -> Vec<String> {
    let mut digests = Vec::new();
    if let Some(inputs) = event.data.get("inputs").and_then(Value::as_object) {
        digests.extend(
            inputs
                .values()
                .filter_map(Value::as_str)
                .map(str::to_string),
        );
    }
    for field in ["verification_summary"] {
        if let Some(d) = event.data.get(field).and_then(Value::as_str) {
            digests.push(d.to_string());
        }
    }
    if let Some(evidence) = event.data.get("evidence").and_then(Value::as_array) {
        digests.extend(
            evidence
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string),
        );
    }
    digests
}

/// `bundle export ID`: the proposal's entries with inclusion proofs under a checkpoint
/// covering them, and every blob they refer to.
pub fn export(
    url: &str,
    id: &str,
    out: Option<&PathBuf>,
    log_key: Option<&Path>,
) -> Result<ExitCode> {
    let rt = runtime()?;
    let store = connect(&rt, url)?;
    let entries = rt.block_on(store.entries_about(id))?;
    let Some(last) = entries.last() else {
        bail!("no log entry is about proposal {id:?}");
    };
    let mut checkpoint = rt.block_on(store.latest_checkpoint())?;
    if checkpoint.as_ref().is_none_or(|c| c.size <= last.index) {
        let Some(key) = log_key else {
            bail!(
                "no signed checkpoint covers entry {} yet: run `countersign log checkpoint` or pass --log-key",
                last.index
            );
        };
        checkpoint = Some(rt.block_on(store.sign_checkpoint(&read_signer(key)?))?);
    }
    let checkpoint = checkpoint.ok_or_else(|| anyhow!("no checkpoint"))?;
    let mut parts = Vec::new();
    let mut blobs = BTreeMap::new();
    for entry in &entries {
        let event = entry.event().context("a stored event does not parse")?;
        for d in referenced_blobs(&event) {
            if let std::collections::btree_map::Entry::Vacant(slot) = blobs.entry(d) {
                let content = rt.block_on(store.blob(slot.key()))?.ok_or_else(|| {
                    anyhow!(
                        "blob {} referenced by entry {} is missing",
                        slot.key(),
                        entry.index
                    )
                })?;
                slot.insert(content);
            }
        }
        let proof = rt.block_on(store.inclusion_proof(entry.index, checkpoint.size))?;
        parts.push((entry.index, entry.leaf.clone(), proof.path));
    }
    let bundle = Bundle::new(
        id.to_string(),
        checkpoint.signed_note,
        parts,
        blobs.into_values(),
    )?;
    let json = bundle.to_json();
    match out {
        Some(path) => {
            std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {} ({} entries)", path.display(), entries.len());
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
    let bundle = match verify_bundle(&bytes, std::slice::from_ref(&verifier)) {
        Ok(bundle) => bundle,
        Err(error) => {
            eprintln!("{}: REFUSED: {error}", file.display());
            return Ok(ExitCode::from(1));
        }
    };
    println!(
        "{}: {} entries included in the signed checkpoint of size {}",
        file.display(),
        bundle.events.len(),
        bundle.checkpoint.size()
    );
    match rederive(&bundle, &verifier) {
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

fn last_event(bundle: &VerifiedBundle, kind: EventKind) -> Option<&Event> {
    bundle
        .events
        .iter()
        .rev()
        .map(|(_, e)| e)
        .find(|e| e.kind == kind)
}

fn field<'a>(event: &'a Event, name: &str) -> Result<&'a Value> {
    event
        .data
        .get(name)
        .ok_or_else(|| anyhow!("the {:?} event has no {name:?}", event.kind))
}

/// Re-derives the recorded decision and lists every difference from the record.
fn rederive(bundle: &VerifiedBundle, verifier: &Verifier) -> Result<Vec<String>> {
    let proposed = last_event(bundle, EventKind::Proposed)
        .ok_or_else(|| anyhow!("the bundle has no `proposed` event"))?;
    let decided = last_event(bundle, EventKind::Decided)
        .ok_or_else(|| anyhow!("the bundle has no `decided` event"))?;
    let blob = |d: &str| -> Result<Vec<u8>> {
        bundle
            .blobs
            .get(d)
            .cloned()
            .ok_or_else(|| anyhow!("blob {d} is missing from the bundle"))
    };
    let mut inputs = BTreeMap::new();
    let recorded_inputs = field(decided, "inputs")?
        .as_object()
        .ok_or_else(|| anyhow!("`inputs` is not an object"))?;
    for (path, d) in recorded_inputs {
        let content = match d.as_str() {
            Some(d) => Some(blob(d)?),
            None => None,
        };
        inputs.insert(path.clone(), content);
    }
    let changes = field(proposed, "changes")?
        .as_array()
        .ok_or_else(|| anyhow!("`changes` is not a list"))?
        .iter()
        .map(|c| {
            let path = c["path"].as_str().unwrap_or_default().to_string();
            let kind = match (c["status"].as_str(), c["from"].as_str()) {
                (Some("added"), _) => ChangeKind::Added,
                (Some("deleted"), _) => ChangeKind::Deleted,
                (Some("renamed"), Some(from)) => ChangeKind::Renamed {
                    from: from.to_string(),
                },
                _ => ChangeKind::Modified,
            };
            ChangedPath { path, kind }
        })
        .collect();
    let proposer = Proposer {
        author: field(proposed, "author")?
            .as_str()
            .unwrap_or_default()
            .to_string(),
        declared_tier: proposed.data["declared_tier"].as_str().map(str::to_string),
    };
    let base = proposed.data["base"].as_str().map(str::to_string);
    let head = proposed.data["head"].as_str().map(str::to_string);
    let envelopes = match decided.data.get("evidence").and_then(Value::as_array) {
        Some(digests) => digests
            .iter()
            .map(|d| blob(d.as_str().unwrap_or_default()))
            .collect::<Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let again = evaluate::rederive(inputs, changes, &proposer, base, head.clone(), envelopes)?;
    let report = &again.report;
    let mut differences = Vec::new();
    let recorded_tier = decided.data["tier"].clone();
    let derived_tier = serde_json::to_value(report.tier)?;
    if recorded_tier != derived_tier {
        differences.push(format!(
            "tier: recorded {recorded_tier}, re-derived {derived_tier}"
        ));
    }
    for (name, derived) in [
        ("graph_version", &report.graph_version),
        ("policy_version", &report.policy_version),
    ] {
        if decided.data[name].as_str() != Some(derived.as_str()) {
            differences.push(format!(
                "{name}: recorded {}, re-derived {derived}",
                decided.data[name]
            ));
        }
    }
    let derived_reasons = record::recorded_reasons(report);
    let recorded_reasons = decided.data["reasons"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for r in &recorded_reasons {
        if !derived_reasons.contains(r) {
            differences.push(format!("reason recorded but not re-derived: {r}"));
        }
    }
    for r in &derived_reasons {
        if !recorded_reasons.contains(r) {
            differences.push(format!("reason re-derived but not recorded: {r}"));
        }
    }
    // An authorization without a statement (a human approval on the server, or a server
    // with no log key) has nothing to check beyond its inclusion in the log.
    if let Some(summary) =
        last_event(bundle, EventKind::Authorized).and_then(|a| a.data.get("verification_summary"))
    {
        let d = summary
            .as_str()
            .ok_or_else(|| anyhow!("`verification_summary` is not a digest"))?;
        check_summary(&blob(d)?, verifier, head.as_deref().unwrap_or_default())?;
    }
    Ok(differences)
}

/// The authorization statement must be signed by the log key and be about the head.
fn check_summary(envelope: &[u8], verifier: &Verifier, head: &str) -> Result<()> {
    let envelope =
        Envelope::parse(envelope).context("the verification summary is not a DSSE envelope")?;
    let key = PublicKey::from_bytes(&verifier.public_key())
        .map_err(|e| anyhow!("the log key is not an Ed25519 key: {e}"))?;
    let (verified, _) = envelope
        .verify(std::slice::from_ref(&key), |k| k)
        .context("the verification summary is not signed by the log key")?;
    let statement: Value = serde_json::from_slice(verified.payload())?;
    if statement["subject"][0]["digest"]["gitCommit"].as_str() != Some(head) {
        bail!("the verification summary is about another commit than the proposal's head");
    }
    Ok(())
}
