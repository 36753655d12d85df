//! `capsule build` and `capsule verify`, and the capsule a runner signs under (`attest
//! --capsule`, `runner serve --capsule`): loaded and checked once at start-up, then carried in
//! every statement the runner signs.
//!
//! The capsule's format and its verification are `countersign_evidence::capsule`; this
//! module reads files, the clock and the running binary.

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use countersign_evidence::capsule::{self, Capsule, CapsuleSigner};
use countersign_evidence::{PublicKey, SigningKey, Statement};
use sha2::{Digest, Sha256};

use crate::cli::CapsuleBuildArgs;

/// A public key file: the `.pub` JSON `runner keygen` writes (securesystemslib's
/// `keyval.public`), or the 64 hex digits alone.
pub(crate) fn read_public_key(path: &Path) -> Result<PublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the public key {}", path.display()))?;
    let hex = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(json) => json["keyval"]["public"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("{}: no keyval.public", path.display()))?,
        Err(_) => text.trim().to_owned(),
    };
    PublicKey::from_hex(&hex).with_context(|| format!("{}", path.display()))
}

/// Lower-case hex SHA-256 of a file, read in chunks.
fn file_sha256(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The SHA-256 of the running countersign binary.
pub(crate) fn own_binary_sha256() -> Result<String> {
    let exe = std::env::current_exe().context("finding the running binary")?;
    file_sha256(&exe)
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// A capsule's lifetime: `90d` (whole days), or what suite timeouts take (`12h`, `30m`).
fn lifetime(text: &str) -> Option<std::time::Duration> {
    match text.strip_suffix('d') {
        Some(days)
            if !days.is_empty() && days.len() <= 5 && days.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(std::time::Duration::from_secs(
                days.parse::<u64>().ok()? * 86_400,
            ))
        }
        _ => countersign_repo::config::parse_duration(text),
    }
    .filter(|d| !d.is_zero())
}

/// `countersign capsule build`.
pub fn build(args: &CapsuleBuildArgs) -> Result<ExitCode> {
    let signing_key = crate::attest::read_key(&args.signing_key)?;
    let runner_key = read_public_key(&args.runner_key)?;
    if runner_key == *signing_key.public_key() {
        bail!(
            "--runner-key is the signing key's own public key: a capsule delegates to another key; the signing key stays off the edge"
        );
    }
    let Some(lifetime) = lifetime(&args.expires) else {
        bail!(
            "--expires {:?}: a duration such as `90d`, `12h` or `30m`",
            args.expires
        );
    };
    let binary = match &args.binary {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("finding the running binary")?,
    };
    let binary_sha256 = file_sha256(&binary)?;
    let suites: BTreeSet<String> = args.suites.iter().map(|s| s.trim().to_owned()).collect();
    let issued = now();
    let span = jiff::SignedDuration::try_from(lifetime)
        .ok()
        .and_then(|d| issued.checked_add(d).ok());
    let Some(expires) = span else {
        bail!("--expires {:?}: too far in the future", args.expires);
    };
    let envelope = capsule::build(
        &signing_key,
        &runner_key,
        &binary_sha256,
        &suites,
        &args.environment,
        issued,
        expires,
    )
    .context("building the capsule")?;
    let bytes = envelope.to_json();
    match &args.out {
        Some(path) => {
            std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&bytes)?;
            writeln!(stdout)?;
        }
    }
    eprintln!(
        "signed capsule sha256:{} with key {}: runner key {}, suites {}, environment {}, binary sha256:{}, expires {}",
        capsule::sha256_hex(&bytes),
        signing_key.public_key().key_id(),
        runner_key.key_id(),
        suites.iter().cloned().collect::<Vec<_>>().join(","),
        args.environment,
        binary_sha256,
        expires
    );
    Ok(ExitCode::SUCCESS)
}

/// `countersign capsule verify`.
pub fn verify(file: &Path, trusted_key: Option<&Path>) -> Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let (capsule, signed) = match trusted_key {
        Some(path) => {
            let signers = [CapsuleSigner {
                name: "trusted".to_owned(),
                key: read_public_key(path)?,
                suites: BTreeSet::new(),
                environments: BTreeSet::new(),
            }];
            match Capsule::open(&bytes, &signers) {
                Ok((capsule, _)) => (capsule, "verified"),
                Err(refusal) => {
                    println!(
                        "REFUSED {}: {}: {refusal}",
                        file.display(),
                        refusal.reason()
                    );
                    return Ok(ExitCode::from(1));
                }
            }
        }
        None => (
            Capsule::read(&bytes).map_err(|r| anyhow::anyhow!("{}: {r}", file.display()))?,
            "NOT CHECKED (give --trusted-key)",
        ),
    };
    let in_force = match capsule.check_valid_at(now()) {
        Ok(()) => "in force".to_owned(),
        Err(refusal) => refusal.to_string(),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "capsule:     sha256:{}", capsule.digest)?;
    writeln!(
        out,
        "signature:   {signed} (key {})",
        capsule.key_ids.join(", ")
    )?;
    writeln!(
        out,
        "runner key:  {} (key id {})",
        capsule.runner_key.to_hex(),
        capsule.runner_key.key_id()
    )?;
    writeln!(out, "binary:      sha256:{}", capsule.binary_sha256)?;
    writeln!(
        out,
        "suites:      {}",
        capsule
            .suites
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(out, "environment: {}", capsule.environment)?;
    writeln!(out, "issued:      {}", capsule.issued_at)?;
    writeln!(out, "expires:     {} ({in_force})", capsule.expires_at)?;
    Ok(ExitCode::SUCCESS)
}

/// The capsule a runner signs under, checked at start-up.
#[derive(Debug, Clone)]
pub(crate) struct Armed {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub capsule: Capsule,
}

impl Armed {
    /// Loads the capsule at `path` for a runner holding `key`: refused unless `key` is the
    /// capsule's runner key, the capsule is in force now, and the running binary is the one
    /// it names. The signature is the server's to judge (against the base's signers), but a
    /// capsule that is not even well formed is refused here.
    pub fn load(path: &Path, key: &SigningKey) -> Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading the capsule {}", path.display()))?;
        let capsule =
            Capsule::read(&bytes).map_err(|r| anyhow::anyhow!("{}: {r}", path.display()))?;
        if capsule.runner_key != *key.public_key() {
            bail!(
                "{}: the capsule is for runner key {}, this runner's key is {}: refusing to start",
                path.display(),
                capsule.runner_key.key_id(),
                key.public_key().key_id()
            );
        }
        capsule
            .check_valid_at(now())
            .map_err(|r| anyhow::anyhow!("{}: {r}: refusing to start", path.display()))?;
        let own = own_binary_sha256()?;
        if !own.eq_ignore_ascii_case(&capsule.binary_sha256) {
            bail!(
                "{}: the capsule is for the countersign binary sha256:{}, this one is sha256:{}: refusing to start",
                path.display(),
                capsule.binary_sha256,
                own
            );
        }
        Ok(Self {
            path: path.to_owned(),
            bytes,
            capsule,
        })
    }

    /// Whether `suite` in `environment` is within the capsule.
    pub fn allows(&self, suite: &str, environment: &str) -> Result<()> {
        if !self.capsule.suites.contains(suite) {
            bail!(
                "suite {suite:?} is not in the capsule {} (suites {})",
                self.path.display(),
                self.capsule
                    .suites
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if environment != self.capsule.environment {
            bail!(
                "environment {environment:?} is not the capsule's {:?}",
                self.capsule.environment
            );
        }
        Ok(())
    }

    /// The `capsule` of a lease request: the capsule's bytes and `key`'s proof binding it to
    /// the token whose SHA-256 is `token_sha256`.
    pub fn lease(&self, key: &SigningKey, token_sha256: &str) -> serde_json::Value {
        let (envelope, proof) = capsule::lease_fields(&self.bytes, key, token_sha256);
        serde_json::json!({ "envelope": envelope, "proof": proof })
    }

    /// Marks `statement` as signed under this capsule in `environment`.
    pub fn annotate(&self, statement: &mut Statement, environment: &str) {
        capsule::annotate(statement, &self.bytes, environment);
    }
}
