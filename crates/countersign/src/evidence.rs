//! `countersign evidence verify`: one ACCEPTED or REFUSED line per evidence file.
//!
//! The checks are `countersign_decide::evidence` and `countersign_evidence::verify`; this
//! module only reads arguments and prints.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use countersign_decide::evidence::{
    capsule_signers, read_envelope, repository_name, summary, trusted_runners,
};
use countersign_decide::governed;
use countersign_evidence::verify::DEFAULT_MAX_ENVELOPE_BYTES;
use countersign_evidence::{Expected, Trust};
use countersign_repo::{Repo, WorkTree};

use crate::cli::RepoArgs;

/// `countersign evidence verify`: one ACCEPTED or REFUSED line per file.
pub fn verify_cmd(repo: &RepoArgs, commit: &str, files: &[PathBuf]) -> Result<ExitCode> {
    let git = Repo::open(&repo.repo)?;
    let commit_id = git.resolve(commit)?;
    let (config, whose) = match &repo.rev {
        Some(rev) => {
            let id = git.resolve(rev)?;
            (governed::read_config(&git.commit_tree(&id)?)?, rev.clone())
        }
        None => (
            governed::read_config(&WorkTree::open(&repo.repo)?)?,
            "the working tree".to_owned(),
        ),
    };
    let runners = trusted_runners(&config)?;
    let signers = capsule_signers(&config)?;
    let trust = Trust {
        runners: &runners,
        capsule_signers: &signers,
    };
    let now = jiff::Timestamp::now();
    let repository = repository_name(&config, &whose)?;
    let expected = Expected {
        repository,
        commit: commit_id.as_str(),
        max_bytes: DEFAULT_MAX_ENVELOPE_BYTES,
    };
    let mut refused_any = false;
    for path in files {
        let verdict = match read_envelope(path)? {
            // A capsule must also be in force now (the server checks when it receives).
            Ok(bytes) => {
                countersign_evidence::verify_trusting(&bytes, &trust, &expected).and_then(|e| {
                    if let Some(capsule) = countersign_evidence::capsule::carried(&bytes)? {
                        capsule.check_valid_at(now)?;
                    }
                    Ok(e)
                })
            }
            Err(refusal) => Err(refusal),
        };
        match verdict {
            Ok(e) => println!(
                "ACCEPTED {}: runner {} (key {}), suite {}, {}",
                path.display(),
                e.runner,
                e.key_id.get(..16).unwrap_or(&e.key_id),
                e.suite,
                summary(&e.predicate)
            ),
            Err(refusal) => {
                refused_any = true;
                println!(
                    "REFUSED  {}: {}: {refusal}",
                    path.display(),
                    refusal.reason()
                );
            }
        }
    }
    Ok(if refused_any {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
