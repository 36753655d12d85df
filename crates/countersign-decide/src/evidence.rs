//! Evidence files against a governed state: the trusted runners of `[[runners]]`, and each
//! envelope verified as head or base evidence (or refused, with its reason).
//!
//! The checks themselves are `countersign_evidence::verify`; this module reads files and
//! configuration, and decides which commit an envelope is weighed against. It does not
//! compute coverage or reachability (`countersign_evidence::assess` does).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Classify, DecideError, Result, bail};
use countersign_evidence::statement::TestResultOutcome;
use countersign_evidence::verify::DEFAULT_MAX_ENVELOPE_BYTES;
use countersign_evidence::{
    AcceptedEvidence, CapsuleSigner, Expected, Predicate, PublicKey, Refusal, Trust, TrustedRunner,
};
use countersign_graph::SystemGraph;
use countersign_repo::Config;

/// The runners of `[[runners]]` as verification wants them.
pub fn trusted_runners(config: &Config) -> Result<Vec<TrustedRunner>> {
    config
        .runners
        .iter()
        .map(|r| {
            Ok(TrustedRunner {
                name: r.name.clone(),
                key: PublicKey::from_hex(&r.public_key).invalid(|| {
                    format!(
                        "{}: runner `{}`: public_key",
                        countersign_repo::CONFIG_FILE,
                        r.name
                    )
                })?,
                suites: r.suites.clone(),
                vex: r.vex,
            })
        })
        .collect()
}

/// The signers of `[[capsules.signers]]` as verification wants them.
pub fn capsule_signers(config: &Config) -> Result<Vec<CapsuleSigner>> {
    config
        .capsule_signers
        .iter()
        .map(|s| {
            Ok(CapsuleSigner {
                name: s.name.clone(),
                key: PublicKey::from_hex(&s.public_key).invalid(|| {
                    format!(
                        "{}: capsule signer `{}`: public_key",
                        countersign_repo::CONFIG_FILE,
                        s.name
                    )
                })?,
                suites: s.suites.clone(),
                environments: s.environments.clone(),
            })
        })
        .collect()
}

/// The `[repository] name` evidence must carry; an error when it is unset, because then no
/// evidence can be about this repository.
pub fn repository_name<'c>(config: &'c Config, whose: &str) -> Result<&'c str> {
    match &config.repository.name {
        Some(name) => Ok(name),
        None => bail!(
            "{} at {whose} has no `[repository] name`: evidence must name the repository it is about (see docs/config.md)",
            countersign_repo::CONFIG_FILE
        ),
    }
}

/// Which commit accepted evidence is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Head,
    Base,
}

impl Binding {
    pub fn as_str(self) -> &'static str {
        match self {
            Binding::Head => "head",
            Binding::Base => "base",
        }
    }
}

pub struct AcceptedFile {
    pub file: String,
    pub binding: Binding,
    pub evidence: AcceptedEvidence,
    /// The envelope as given: recorded with the decision so it can be re-derived.
    pub envelope: Vec<u8>,
}

/// One evidence file as read: its name and bytes, or the refusal reading it met (a file too
/// large is refused before it is read whole).
pub type EvidenceInput = (String, std::result::Result<Vec<u8>, Refusal>);

/// Reads evidence files for [`verify_for_change`].
pub fn read_all(paths: &[PathBuf]) -> Result<Vec<EvidenceInput>> {
    paths
        .iter()
        .map(|path| Ok((path.display().to_string(), read_envelope(path)?)))
        .collect()
}

pub struct RefusedFile {
    pub file: String,
    /// `Refusal::reason()`; `unknown_product` for VEX about something the graph lacks;
    /// `vex_not_authorized` for a `not_affected` beyond what its signer may clear.
    pub reason: String,
    pub message: String,
}

/// Every evidence file of an evaluation, accepted or refused, in the order given.
#[derive(Default)]
pub struct VerifiedFiles {
    pub accepted: Vec<AcceptedFile>,
    pub refused: Vec<RefusedFile>,
}

impl VerifiedFiles {
    pub fn bound_to(&self, binding: Binding) -> Vec<AcceptedEvidence> {
        self.accepted
            .iter()
            .filter(|a| a.binding == binding)
            .map(|a| a.evidence.clone())
            .collect()
    }
}

/// Reads an envelope, refusing it as too large before reading it whole.
pub fn read_envelope(path: &Path) -> Result<std::result::Result<Vec<u8>, Refusal>> {
    let io = |source| DecideError::ReadEvidence {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size > DEFAULT_MAX_ENVELOPE_BYTES {
        return Ok(Err(Refusal::TooLarge {
            limit: DEFAULT_MAX_ENVELOPE_BYTES,
            size,
        }));
    }
    let mut bytes = Vec::with_capacity(size);
    // `take` bounds the read even if the file grows after the size check.
    file.take(DEFAULT_MAX_ENVELOPE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    Ok(Ok(bytes))
}

/// Verifies evidence for the change `base..head`: envelopes about the head are head
/// evidence, about the base base evidence; any other envelope is refused with the reason
/// it fails as head evidence. Head VEX naming a product neither the graph nor a head scan
/// knows is refused (`unknown_product`); VEX saying `not_affected` about a node its signer's
/// suite does not exercise, from a runner that is not a VEX authority, is refused
/// (`vex_not_authorized`), head or base.
pub fn verify_for_change(
    files: &[EvidenceInput],
    config: &Config,
    graph: &SystemGraph,
    head: &str,
    base: &str,
) -> Result<VerifiedFiles> {
    let runners = trusted_runners(config)?;
    let signers = capsule_signers(config)?;
    let trust = Trust {
        runners: &runners,
        capsule_signers: &signers,
    };
    let repository = repository_name(config, "the base")?;
    let expect = |commit| Expected {
        repository,
        commit,
        max_bytes: DEFAULT_MAX_ENVELOPE_BYTES,
    };
    let mut out = VerifiedFiles::default();
    // All readable envelopes against the head at once: one Ed25519 batch equation when they
    // all hold, with results identical to verifying each alone.
    let readable: Vec<&[u8]> = files
        .iter()
        .filter_map(|(_, read)| read.as_ref().ok().map(Vec::as_slice))
        .collect();
    let mut as_head =
        countersign_evidence::verify_many_trusting(&readable, &trust, &expect(head)).into_iter();
    for (file, read) in files {
        let file = file.clone();
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(refusal) => {
                out.refused.push(refused(file, refusal));
                continue;
            }
        };
        let Some(head_verdict) = as_head.next() else {
            // verify_many answers once per envelope given, in order.
            return Err(DecideError::internal(format!(
                "{file}: no verification result"
            )));
        };
        let verdict = match head_verdict {
            Ok(evidence) => Ok((Binding::Head, evidence)),
            Err(Refusal::OtherCommit { .. }) if !base.eq_ignore_ascii_case(head) => {
                match countersign_evidence::verify_trusting(bytes, &trust, &expect(base)) {
                    Ok(evidence) => Ok((Binding::Base, evidence)),
                    // About neither commit: say so as a head refusal, which names the
                    // commit the envelope is about and the head it should have been.
                    Err(Refusal::OtherCommit { found, .. }) => Err(Refusal::OtherCommit {
                        expected: head.to_owned(),
                        found,
                    }),
                    Err(other) => Err(other),
                }
            }
            Err(refusal) => Err(refusal),
        };
        match verdict {
            Ok((binding, evidence)) => out.accepted.push(AcceptedFile {
                file,
                binding,
                evidence,
                envelope: bytes.clone(),
            }),
            Err(refusal) => out.refused.push(refused(file, &refusal)),
        }
    }

    let head_evidence = out.bound_to(Binding::Head);
    let mut kept = Vec::with_capacity(out.accepted.len());
    for accepted in std::mem::take(&mut out.accepted) {
        if let (Binding::Head, Predicate::OpenVex(doc)) =
            (accepted.binding, &accepted.evidence.predicate)
            && let Err(error) = countersign_evidence::assess::check_vex_products(
                &accepted.file,
                doc,
                graph,
                &head_evidence,
            )
        {
            out.refused.push(RefusedFile {
                file: accepted.file,
                reason: "unknown_product".to_owned(),
                message: error.to_string(),
            });
            continue;
        }
        if let Predicate::OpenVex(doc) = &accepted.evidence.predicate
            && let Err(message) =
                countersign_evidence::assess::check_vex_authority(&accepted.evidence, doc, graph)
        {
            out.refused.push(RefusedFile {
                file: accepted.file,
                reason: "vex_not_authorized".to_owned(),
                message,
            });
            continue;
        }
        kept.push(accepted);
    }
    out.accepted = kept;
    Ok(out)
}

fn refused(file: String, refusal: &Refusal) -> RefusedFile {
    RefusedFile {
        file,
        reason: refusal.reason().to_owned(),
        message: refusal.to_string(),
    }
}

/// One line about what an accepted predicate says.
pub fn summary(predicate: &Predicate) -> String {
    match predicate {
        Predicate::TestResult(r) => format!(
            "test-result {}: {} passed, {} warned, {} failed",
            match r.result {
                TestResultOutcome::Passed => "PASSED",
                TestResultOutcome::Warned => "WARNED",
                TestResultOutcome::Failed => "FAILED",
            },
            r.passed_tests.len(),
            r.warned_tests.len(),
            r.failed_tests.len()
        ),
        Predicate::Vulns(v) => format!(
            "vulns from {}: {} finding(s)",
            v.scanner.uri,
            v.scanner.result.len()
        ),
        Predicate::OpenVex(doc) => format!("OpenVEX: {} statement(s)", doc.statements.len()),
    }
}
