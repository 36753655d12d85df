//! Runner-side commands: `runner keygen` (a key pair and the countersign.toml snippet that
//! trusts it) and `attest` (a signed in-toto statement about one commit, built from reports
//! or from running a command).
//!
//! This is the only place countersign makes randomness (a key seed from the OS); it and
//! `runner serve` (`runner`, which reuses the statement building here) are the only ones
//! that run a process. Statements are built and signed by countersign-evidence; verifying them is
//! `evidence`'s job.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use countersign_evidence::report::junit::{self, Outcome, TestCase};
use countersign_evidence::report::{sarif, vex};
use countersign_evidence::statement::{
    OPENVEX_V020, ResourceDescriptor, TEST_RESULT_V01, TestResult, TestResultOutcome, VULNS_V02,
    Vulns,
};
use countersign_evidence::verify::DEFAULT_MAX_ENVELOPE_BYTES;
use countersign_evidence::{SigningKey, Statement};
use countersign_repo::Repo;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::cli::AttestArgs;
use countersign_decide::{evidence, governed};

/// `runner keygen`: NAME.key (PKCS#8 PEM, 0600) and NAME.pub (securesystemslib key JSON).
pub fn keygen(name: &str, out: &Path) -> Result<ExitCode> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid || name.starts_with('.') {
        bail!(
            "--name {name:?}: a runner name is letters, digits, `-`, `_` and `.`, not starting with `.`"
        );
    }
    let key_path = out.join(format!("{name}.key"));
    let pub_path = out.join(format!("{name}.pub"));
    let existing: Vec<String> = [&key_path, &pub_path]
        .into_iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        bail!(
            "refusing to overwrite {}: a runner key is an identity, move the old one away first",
            existing.join(", ")
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow!("reading randomness from the OS: {e}"))?;
    let key = SigningKey::from_seed(&seed);
    let public = key.public_key();
    write_new(&key_path, key.to_pkcs8_pem().as_bytes(), 0o600)?;
    let public_json = serde_json::json!({
        "keytype": "ed25519",
        "scheme": "ed25519",
        "keyval": {"public": public.to_hex()},
    });
    write_new(
        &pub_path,
        format!("{}\n", serde_json::to_string_pretty(&public_json)?).as_bytes(),
        0o644,
    )?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "wrote {} (private key, mode 0600) and {}",
        key_path.display(),
        pub_path.display()
    )?;
    writeln!(stdout, "runner:     {name}")?;
    writeln!(stdout, "public key: {}", public.to_hex())?;
    writeln!(stdout, "key id:     {}", public.key_id())?;
    writeln!(
        stdout,
        "\nTo trust this runner, add to countersign.toml on the base branch (with the suites it may attest):\n"
    )?;
    writeln!(stdout, "{}", runner_snippet(name, &public.to_hex()))?;
    Ok(ExitCode::SUCCESS)
}

fn runner_snippet(name: &str, public_hex: &str) -> String {
    format!(
        "[repository]  # once per repository: the name its evidence carries\nname = \"github.com/OWNER/REPO\"\n\n[[runners]]\nname = \"{name}\"\npublic_key = \"{public_hex}\"\nsuites = [\"unit\"]  # the suites this runner may attest"
    )
}

/// Creates `path`, never replacing an existing file; `mode` applies on Unix.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub(crate) fn read_key(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the runner key {}", path.display()))?;
    SigningKey::from_pkcs8_pem(&text).with_context(|| format!("{}", path.display()))
}

/// What `attest` (and `runner serve`) signs, and whether a command it ran failed.
pub(crate) struct Attestation {
    pub predicate_type: &'static str,
    pub predicate: Value,
    pub summary: String,
    pub command_failed: bool,
}

/// Records in a test result that the tests that ran were the suite files of commit
/// `source` checked out over the attested commit (`--suite-source`, and a runner's
/// base-version run): the `countersign.dev/suite-source` resource of its `configuration`.
pub(crate) fn name_suite_source(attestation: &mut Attestation, source: &str) -> Result<()> {
    let Some(configuration) = attestation
        .predicate
        .get_mut("configuration")
        .and_then(Value::as_array_mut)
    else {
        bail!("--suite-source applies to test results (--junit or --run) only");
    };
    configuration.push(serde_json::to_value(ResourceDescriptor {
        name: Some(countersign_evidence::statement::SUITE_SOURCE.to_owned()),
        digest: [("gitCommit".to_owned(), source.to_owned())].into(),
        ..ResourceDescriptor::default()
    })?);
    attestation.summary = format!("{} (the suite files of {source})", attestation.summary);
    Ok(())
}

/// `countersign attest`.
pub fn attest(args: AttestArgs) -> Result<ExitCode> {
    if !args.run && !args.command.is_empty() {
        bail!("a command after `--` is only run with --run");
    }
    if args.suite.trim().is_empty() {
        bail!("--suite must name a suite");
    }
    let git = Repo::open(&args.repo)?;
    let commit = git.resolve(&args.commit)?;
    let config = governed::read_config(&git.commit_tree(&commit)?)
        .with_context(|| format!("reading the configuration at {}", args.commit))?;
    let repository = subject_repository(&args.repository, &config, &args.commit)?;
    let key = read_key(&args.key)?;
    // Checked before anything runs: a runner outside its capsule signs nothing.
    let capsule = match &args.capsule {
        Some(path) => {
            let armed = crate::capsule::Armed::load(path, &key)?;
            let environment = args.env.as_deref().unwrap_or_default();
            armed.allows(&args.suite, environment)?;
            Some((armed, environment.to_owned()))
        }
        None => None,
    };

    let mut attestation = if args.run {
        run_command(&args.command, &args.junit)?
    } else if !args.sarif.is_empty() {
        from_sarif(&args.sarif)?
    } else if !args.vex.is_empty() {
        from_vex(&args.vex)?
    } else if !args.junit.is_empty() {
        from_junit(&args.junit)?
    } else {
        bail!("nothing to attest: give --junit, --sarif or --vex reports, or --run -- CMD");
    };
    if let Some(rev) = &args.suite_source {
        let source = git
            .resolve(rev)
            .with_context(|| format!("--suite-source {rev}"))?;
        name_suite_source(&mut attestation, source.as_str())?;
    }

    let mut statement = Statement::for_commit(
        &repository,
        commit.as_str(),
        &args.suite,
        attestation.predicate_type,
        attestation.predicate,
    );
    if let Some((armed, environment)) = &capsule {
        armed.annotate(&mut statement, environment);
    }
    let envelope = countersign_evidence::attest(&statement, &key).to_json();
    // Refused here rather than by every verifier later; nothing is written.
    if envelope.len() > DEFAULT_MAX_ENVELOPE_BYTES {
        bail!(too_large(&format!(
            "the envelope is {} bytes",
            envelope.len()
        )));
    }
    match &args.out {
        Some(path) => std::fs::write(path, &envelope)
            .with_context(|| format!("writing {}", path.display()))?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&envelope)?;
            writeln!(stdout)?;
        }
    }
    eprintln!(
        "signed {} for suite {} of {repository} at {} with key {}: {}",
        attestation.predicate_type,
        args.suite,
        commit.as_str(),
        key.public_key().key_id(),
        attestation.summary
    );
    Ok(if attestation.command_failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The repository the statement is about: the one the runner was told (`--repository`),
/// checked against the commit's `[repository] name`. The name comes from the runner, never
/// from the commit alone, so a commit cannot make a runner vouch for another repository;
/// a commit that names no repository or another one is refused.
pub(crate) fn subject_repository(
    runner: &str,
    config: &countersign_repo::Config,
    rev: &str,
) -> Result<String> {
    let runner = runner.trim();
    if runner.is_empty() {
        bail!("--repository must name the repository this runner attests for");
    }
    let configured = evidence::repository_name(config, rev)?;
    if configured != runner {
        bail!(
            "--repository {runner:?}, but {} at {rev} names repository {configured:?}: \
             refusing to vouch for a repository this runner was not set up for",
            countersign_repo::CONFIG_FILE
        );
    }
    Ok(runner.to_owned())
}

/// Why an envelope is refused at attest time, with what to do about it.
fn too_large(what: &str) -> String {
    format!(
        "{what}, over the {DEFAULT_MAX_ENVELOPE_BYTES} bytes verifiers accept \
         (countersign_evidence::verify::DEFAULT_MAX_ENVELOPE_BYTES); nothing was written. \
         Split the reports by suite: attest each suite's reports in its own envelope \
         (one `countersign attest --suite NAME` per suite)"
    )
}

/// A configuration entry naming a report file by path and sha256.
fn file_descriptor(path: &Path, sha256: String) -> ResourceDescriptor {
    ResourceDescriptor {
        name: Some(path.display().to_string()),
        digest: BTreeMap::from([("sha256".to_owned(), sha256)]),
        ..ResourceDescriptor::default()
    }
}

/// Passes a file's bytes through while hashing them, so a report is read once, streamed,
/// and still named by its digest.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Streams the report at `path` through `read` (which sees a `BufRead`), feeding every byte
/// of the file to `hasher`; returns what `read` returned and the hasher.
fn stream_report<T>(
    path: &Path,
    what: &str,
    hasher: Sha256,
    read: impl FnOnce(&mut dyn BufRead) -> Result<T>,
) -> Result<(T, Sha256)> {
    let file =
        std::fs::File::open(path).with_context(|| format!("reading {what} {}", path.display()))?;
    let mut reader = BufReader::new(Hashing {
        inner: file,
        hasher,
    });
    let value = read(&mut reader)?;
    // A reader may stop before the end (after the root element); the digest is the file's.
    std::io::copy(&mut reader, &mut std::io::sink())
        .with_context(|| format!("reading {what} {}", path.display()))?;
    Ok((value, reader.into_inner().hasher))
}

/// Bytes a test id adds to the envelope: quoted and separated in the JSON predicate, then
/// base64 in the envelope (4/3), rounded up.
fn envelope_bytes_of(id: &str) -> usize {
    (id.len() + 3) * 4 / 3 + 1
}

/// Reads JUnit reports into test cases and configuration entries, streaming each report and
/// stopping as soon as the test ids alone would make an envelope verifiers refuse, so a
/// 10-million-case report costs neither the memory nor the time of a 200 MB envelope.
///
/// Reports are named by their path below `root` (the checkout a runner ran in; empty for
/// `attest`, whose paths are the user's own).
pub(crate) fn read_junit(
    files: &[PathBuf],
    root: &Path,
) -> Result<(Vec<TestCase>, Vec<ResourceDescriptor>)> {
    let mut cases = Vec::new();
    let mut configuration = Vec::new();
    let mut estimate = 0usize;
    for path in files {
        let shown = path.strip_prefix(root).unwrap_or(path);
        let name = shown.display().to_string();
        let (_, digest) = stream_report(path, "JUnit", Sha256::new(), |reader| {
            let mut over = false;
            junit::read(&name, reader, |case| {
                if over || case.outcome == Outcome::Skipped {
                    return;
                }
                estimate += envelope_bytes_of(&case.id);
                if estimate > DEFAULT_MAX_ENVELOPE_BYTES {
                    over = true;
                } else {
                    cases.push(case);
                }
            })?;
            if over {
                bail!(too_large(&format!(
                    "the test ids of {name} and the reports before it alone make an envelope \
                     of more than {DEFAULT_MAX_ENVELOPE_BYTES} bytes"
                )));
            }
            Ok(())
        })?;
        configuration.push(file_descriptor(shown, hex::encode(digest.finalize())));
    }
    Ok((cases, configuration))
}

fn from_junit(patterns: &[String]) -> Result<Attestation> {
    let mut files = Vec::new();
    for pattern in patterns {
        let found = expand(pattern)?;
        if found.is_empty() {
            bail!("--junit {pattern}: no such file");
        }
        files.extend(found);
    }
    let (cases, configuration) = read_junit(&files, Path::new(""))?;
    let result = TestResult::from_cases(&cases, configuration);
    if result.passed_tests.is_empty()
        && result.warned_tests.is_empty()
        && result.failed_tests.is_empty()
    {
        eprintln!(
            "warning: the reports hold no test that ran (no test cases, or only skipped ones): \
             verifiers weigh this as `no_tests`, which does not satisfy the plan"
        );
    }
    Ok(test_result_attestation(result, false))
}

fn test_result_attestation(result: TestResult, command_failed: bool) -> Attestation {
    let summary = format!(
        "{} ({} passed, {} warned, {} failed)",
        match result.result {
            TestResultOutcome::Passed => "PASSED",
            TestResultOutcome::Warned => "WARNED",
            TestResultOutcome::Failed => "FAILED",
        },
        result.passed_tests.len(),
        result.warned_tests.len(),
        result.failed_tests.len()
    );
    Attestation {
        predicate_type: TEST_RESULT_V01,
        // A struct of strings and lists always converts.
        predicate: serde_json::to_value(&result).unwrap_or(Value::Null),
        summary,
        command_failed,
    }
}

/// `--run`: runs `argv`, then reads the JUnit it left. The command's outcome is a test of
/// its own, `command: ARGV`, passed on exit status 0 and failed otherwise, so a crash that
/// leaves no JUnit still fails the suite and a base/head pair shows it as a regression. Exit
/// status, signal and duration are recorded in a `command` configuration entry.
fn run_command(argv: &[String], junit_patterns: &[String]) -> Result<Attestation> {
    let Some((program, rest)) = argv.split_first() else {
        bail!("--run needs a command after `--`");
    };
    let started = Instant::now();
    // The command's stdout goes to our stderr: stdout may be carrying the envelope.
    let status = Command::new(program)
        .args(rest)
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .with_context(|| format!("running {program}"))?;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);

    let mut files = Vec::new();
    for pattern in junit_patterns {
        let found = expand(pattern)?;
        if found.is_empty() {
            eprintln!("warning: --junit {pattern}: the command left no such file");
        }
        files.extend(found);
    }
    let (cases, junit_configuration) = read_junit(&files, Path::new(""))?;
    #[cfg(unix)]
    let signal = {
        use std::os::unix::process::ExitStatusExt as _;
        status.signal()
    };
    #[cfg(not(unix))]
    let signal = None;
    Ok(command_attestation(
        argv,
        CommandExit {
            success: status.success(),
            code: status.code(),
            signal,
            duration_ms,
        },
        cases,
        junit_configuration,
    ))
}

/// How a command ended, as its test-result records it.
pub(crate) struct CommandExit {
    pub success: bool,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: u64,
}

/// The test-result of a command that ran: its JUnit cases, and the command itself as a test
/// of its own, `command: ARGV`, passed on exit status 0 and failed otherwise, so a crash
/// that leaves no JUnit still fails the suite and a base/head pair shows it as a regression.
/// Exit status, signal and duration are recorded in a `command` configuration entry.
pub(crate) fn command_attestation(
    argv: &[String],
    exit: CommandExit,
    cases: Vec<TestCase>,
    junit_configuration: Vec<ResourceDescriptor>,
) -> Attestation {
    let mut annotations = BTreeMap::from([
        (
            "countersign.dev/argv".to_owned(),
            Value::from(argv.to_vec()),
        ),
        (
            "countersign.dev/exit-code".to_owned(),
            exit.code.map_or(Value::Null, Value::from),
        ),
        (
            "countersign.dev/duration-ms".to_owned(),
            Value::from(exit.duration_ms),
        ),
    ]);
    if let Some(signal) = exit.signal {
        annotations.insert("countersign.dev/signal".to_owned(), Value::from(signal));
    }
    let mut configuration = vec![ResourceDescriptor {
        name: Some("command".to_owned()),
        annotations,
        ..ResourceDescriptor::default()
    }];
    configuration.extend(junit_configuration);

    let mut result = TestResult::from_cases(&cases, configuration);
    let command_test = format!("command: {}", argv.join(" "));
    let failed = !exit.success;
    if failed {
        result.failed_tests.push(command_test);
        result.result = TestResultOutcome::Failed;
    } else {
        result.passed_tests.push(command_test);
    }
    let mut attestation = test_result_attestation(result, failed);
    attestation.summary = format!(
        "{} in {} ms, {}",
        match exit.code {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_owned(),
        },
        exit.duration_ms,
        attestation.summary
    );
    attestation
}

pub(crate) fn from_sarif(files: &[PathBuf]) -> Result<Attestation> {
    let mut merged = sarif::SarifReport::default();
    for path in files {
        let name = path.display().to_string();
        let (report, _) = stream_report(path, "SARIF", Sha256::new(), |reader| {
            Ok(sarif::parse(&name, reader)?)
        })?;
        // Results name their run by index: shift them past the runs of earlier files.
        let offset = merged.summary.runs.len();
        merged.summary.runs.extend(report.summary.runs);
        merged
            .results
            .extend(report.results.into_iter().map(|mut r| {
                r.run += offset;
                r
            }));
    }
    let vulns = Vulns::from_sarif(&merged);
    let summary = format!(
        "{} finding(s) at level error or warning from {}",
        vulns.scanner.result.len(),
        vulns.scanner.uri
    );
    Ok(Attestation {
        predicate_type: VULNS_V02,
        predicate: serde_json::to_value(&vulns).unwrap_or(Value::Null),
        summary,
        command_failed: false,
    })
}

pub(crate) fn from_vex(files: &[PathBuf]) -> Result<Attestation> {
    let mut inputs = Sha256::new();
    let mut statements: Vec<Value> = Vec::new();
    let timestamp = rfc3339(SystemTime::now());
    for path in files {
        let name = path.display().to_string();
        // The id is the digest of the inputs' bytes, concatenated.
        let (doc, hashed) =
            stream_report(path, "VEX", inputs, |reader| Ok(vex::parse(&name, reader)?))?;
        inputs = hashed;
        if let Value::Array(list) = doc.to_openvex("", "", "")["statements"].take() {
            statements.extend(list);
        }
    }
    let id = format!("urn:countersign:vex:{}", hex::encode(inputs.finalize()));
    let summary = format!("{} VEX statement(s)", statements.len());
    let predicate = serde_json::json!({
        "@context": OPENVEX_V020,
        "@id": id,
        "author": "countersign",
        "timestamp": timestamp,
        "version": 1,
        "statements": statements,
    });
    Ok(Attestation {
        predicate_type: OPENVEX_V020,
        predicate,
        summary,
        command_failed: false,
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` in UTC (OpenVEX needs a timestamp; nothing else here reads the clock).
fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A report path, or the files a glob matches (sorted). Globs are expanded by walking from
/// their literal leading directories, so `target/nextest/*/junit.xml` reads only `target/`.
fn expand(pattern: &str) -> Result<Vec<PathBuf>> {
    if !pattern.contains(['*', '?', '[', '{']) {
        let path = PathBuf::from(pattern);
        return Ok(if path.is_file() {
            vec![path]
        } else {
            Vec::new()
        });
    }
    let matcher = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .with_context(|| format!("--junit {pattern}"))?
        .compile_matcher();
    let mut root = PathBuf::new();
    for part in pattern.split('/') {
        if part.contains(['*', '?', '[', '{']) {
            break;
        }
        root.push(if part.is_empty() { "/" } else { part });
    }
    let mut found = Vec::new();
    let start = if root.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        root
    };
    walk(&start, &matcher, 0, &mut found)?;
    found.sort();
    found.dedup();
    Ok(found)
}

fn walk(
    dir: &Path,
    matcher: &globset::GlobMatcher,
    depth: u32,
    found: &mut Vec<PathBuf>,
) -> Result<()> {
    const MAX_DEPTH: u32 = 32;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let kind = entry.file_type()?;
        let path = entry.path();
        // `./x` as the walk produces it must match the pattern `x`.
        let relative = path.strip_prefix(".").unwrap_or(&path).to_path_buf();
        if kind.is_dir() {
            if entry.file_name() != ".git" && depth < MAX_DEPTH {
                walk(&path, matcher, depth + 1, found)?;
            }
        } else if kind.is_file() && matcher.is_match(&relative) {
            found.push(relative);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_snippet_is_valid_configuration() {
        let key = SigningKey::from_seed(&[7; 32]);
        let snippet = runner_snippet("ci", &key.public_key().to_hex());
        let config = countersign_repo::Config::parse(&snippet).unwrap();
        assert_eq!(config.runners[0].public_key, key.public_key().to_hex());
    }

    #[test]
    fn rfc3339_is_utc_civil_time() {
        let at = |secs| rfc3339(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(1_767_603_600), "2026-01-05T09:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
    }
}
