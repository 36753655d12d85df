//! C2SP transparency-log checkpoints (<https://c2sp.org/tlog-checkpoint>): the tree head
//! text (origin, size, root hash, extension lines), strictly parsed and formatted, and the
//! checkpoint signed as a note.
//!
//! This module does not decide *when* to checkpoint or keep the latest one: callers do.

use std::fmt;

use crate::merkle::Hash;
use crate::note::{self, Note, NoteError, Signer, Verifier};

/// Why a checkpoint is refused. `line` is 1-based within the checkpoint text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint line {line} ({field}): {reason}")]
    Malformed {
        line: usize,
        field: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The note verified, but not with a key named after the log: some other key signed it.
    #[error(
        "checkpoint for origin {origin:?} is signed by {signers:?}, none named after the origin"
    )]
    OriginMismatch {
        origin: String,
        signers: Vec<String>,
    },
}

fn malformed(line: usize, field: &'static str, reason: impl Into<String>) -> CheckpointError {
    CheckpointError::Malformed {
        line,
        field,
        reason: reason.into(),
    }
}

/// A log's tree head: who (origin), how many leaves, which root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root: Hash,
    extensions: Vec<String>,
}

/// A line must be non-empty and free of control characters (newline included).
fn check_line(text: &str, line: usize, field: &'static str) -> Result<(), CheckpointError> {
    if text.is_empty() {
        return Err(malformed(line, field, "is empty"));
    }
    if let Some(c) = text
        .chars()
        .find(|c| c.is_ascii_control() && *c != '\u{7f}')
    {
        return Err(malformed(
            line,
            field,
            format!("contains control character U+{:04X}", u32::from(c)),
        ));
    }
    Ok(())
}

impl Checkpoint {
    /// A checkpoint without extension lines. The origin must be a non-empty single line.
    pub fn new(origin: &str, size: u64, root: Hash) -> Result<Checkpoint, CheckpointError> {
        check_line(origin, 1, "origin")?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions: Vec::new(),
        })
    }

    /// Adds an extension line (non-empty, single line). The spec discourages them; they are
    /// supported so that foreign checkpoints round-trip.
    pub fn with_extension(mut self, line: &str) -> Result<Checkpoint, CheckpointError> {
        check_line(line, 4 + self.extensions.len(), "extension")?;
        self.extensions.push(line.to_owned());
        Ok(self)
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn root(&self) -> &Hash {
        &self.root
    }

    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// Parses a checkpoint body strictly: every line ends in a newline, the size is decimal
    /// without leading zeros, the root is padded base64 of exactly 32 bytes, and no line is
    /// empty.
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let Some(body) = text.strip_suffix('\n') else {
            return Err(malformed(
                text.split('\n').count(),
                "text",
                "does not end with a newline",
            ));
        };
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.len() < 3 {
            return Err(malformed(
                lines.len() + 1,
                "text",
                "a checkpoint has at least 3 lines (origin, size, root)",
            ));
        }
        let origin = lines[0];
        check_line(origin, 1, "origin")?;
        let size = parse_size(lines[1])?;
        let root = Hash::from_base64(lines[2])
            .filter(|h| h.to_base64() == lines[2])
            .ok_or_else(|| {
                malformed(
                    3,
                    "root hash",
                    format!("{:?} is not the base64 of 32 bytes", lines[2]),
                )
            })?;
        let mut checkpoint = Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions: Vec::new(),
        };
        for extension in &lines[3..] {
            checkpoint = checkpoint.with_extension(extension)?;
        }
        Ok(checkpoint)
    }
}

fn parse_size(text: &str) -> Result<u64, CheckpointError> {
    let ok = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !ok {
        return Err(malformed(
            2,
            "tree size",
            format!("{text:?} is not a decimal number without leading zeros"),
        ));
    }
    text.parse()
        .map_err(|e| malformed(2, "tree size", format!("{text:?}: {e}")))
}

/// The checkpoint text, every line ending in a newline: what gets signed.
impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.origin)?;
        writeln!(f, "{}", self.size)?;
        writeln!(f, "{}", self.root.to_base64())?;
        for extension in &self.extensions {
            writeln!(f, "{extension}")?;
        }
        Ok(())
    }
}

/// A checkpoint whose note carries a verified signature by a key named after its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub note: Note,
}

impl SignedCheckpoint {
    /// Signs the checkpoint; the result is the note text to publish. The signer's name should
    /// be the origin (C2SP tlog-checkpoint); [`SignedCheckpoint::open`] requires it.
    pub fn sign(checkpoint: &Checkpoint, signer: &Signer) -> Result<String, CheckpointError> {
        Ok(note::sign(&checkpoint.to_string(), &[signer])?)
    }

    /// Opens a signed checkpoint: the note must verify against `verifiers`, one verified
    /// signature must come from a key named after the origin, and the body must parse.
    pub fn open(
        message: &[u8],
        verifiers: &[Verifier],
    ) -> Result<SignedCheckpoint, CheckpointError> {
        let note = note::open(message, verifiers)?;
        let checkpoint = Checkpoint::parse(&note.text)?;
        if !note.verified.iter().any(|s| s.name == checkpoint.origin) {
            let signers = note
                .verified
                .iter()
                .map(|s| format!("{}+{:08x}", s.name, s.key_id))
                .collect();
            return Err(CheckpointError::OriginMismatch {
                origin: checkpoint.origin,
                signers,
            });
        }
        Ok(SignedCheckpoint { checkpoint, note })
    }
}
