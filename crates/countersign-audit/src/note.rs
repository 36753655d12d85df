//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys: signer and verifier
//! key encodings, signing a text, and opening a signed note against trusted verifiers.
//!
//! Byte-compatible with Go's `golang.org/x/mod/sumdb/note` (tested against its vectors).
//! Keys come from 32-byte seeds the caller supplies: this module generates no randomness and
//! stores no key. Only signature type `0x01` (Ed25519) is supported; any other type in a
//! verifier key is refused, and signatures from keys the caller did not trust are ignored,
//! as the specification requires.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signature type byte of Ed25519 in key ids and key encodings.
const ALG_ED25519: u8 = 0x01;

/// The longest signature block accepted: Go's limit, well above the 16 the spec requires.
const MAX_SIGNATURES: usize = 100;

/// Signature lines start with an em dash and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a signer or verifier key string is refused. `field` names the `+`-separated part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("malformed key: {field} {reason}")]
    Malformed { field: &'static str, reason: String },
    #[error("invalid key name {name:?}: names are non-empty, without spaces or '+'")]
    InvalidName { name: String },
    #[error("unknown signature algorithm 0x{algorithm:02x} (only 0x01, Ed25519, is supported)")]
    UnknownAlgorithm { algorithm: u8 },
    #[error("key id {stated:08x} does not match the key, whose id is {computed:08x}")]
    KeyIdMismatch { stated: u32, computed: u32 },
}

/// Why a note cannot be signed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The bytes are not a signed note. `line` is 1-based over the whole message.
    #[error("malformed note at line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    /// Every signature is from a key the caller does not trust.
    #[error("note has no signature from a known key (signed by: {})", .signers.join(", "))]
    UnknownKey { signers: Vec<String> },
    /// A trusted key's signature does not verify: the note was altered or forged.
    #[error("invalid signature for key {name}+{key_id:08x}")]
    InvalidSignature { name: String, key_id: u32 },
    /// Two trusted verifiers share name and key id, so a signature cannot be attributed.
    #[error("ambiguous key {name}+{key_id:08x}: two verifiers have this name and id")]
    AmbiguousKey { name: String, key_id: u32 },
}

/// The key id of C2SP signed-note: `SHA-256(name || "\n" || 0x01 || pubkey)[:4]`, big-endian.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([ALG_ED25519]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Key names are non-empty and contain neither Unicode spaces nor `+`.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

fn malformed_key(field: &'static str, reason: impl Into<String>) -> KeyError {
    KeyError::Malformed {
        field,
        reason: reason.into(),
    }
}

fn parse_key_id(text: &str) -> Result<u32, KeyError> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed_key(
            "key id",
            format!("{text:?} is not 8 hexadecimal digits"),
        ));
    }
    u32::from_str_radix(text, 16).map_err(|e| malformed_key("key id", e.to_string()))
}

/// Decodes `base64(0x01 || 32 bytes)`, the shape of both key encodings.
fn parse_key_material(text: &str, field: &'static str) -> Result<[u8; 32], KeyError> {
    let bytes = BASE64
        .decode(text)
        .map_err(|e| malformed_key(field, e.to_string()))?;
    let Some((&algorithm, key)) = bytes.split_first() else {
        return Err(malformed_key(field, "is empty"));
    };
    if algorithm != ALG_ED25519 {
        return Err(KeyError::UnknownAlgorithm { algorithm });
    }
    key.try_into().map_err(|_| {
        malformed_key(
            field,
            format!("has {} key bytes, Ed25519 needs 32", key.len()),
        )
    })
}

fn encode_key_material(key: &[u8; 32]) -> String {
    let mut bytes = Vec::with_capacity(33);
    bytes.push(ALG_ED25519);
    bytes.extend_from_slice(key);
    BASE64.encode(bytes)
}

/// A key that signs notes under a name. Its `Debug` does not print the secret.
#[derive(Clone)]
pub struct Signer {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl Signer {
    /// A signer from a 32-byte Ed25519 seed (RFC 8032 private key). The caller generates and
    /// keeps the seed; this crate has no randomness.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Signer, KeyError> {
        if !is_valid_name(name) {
            return Err(KeyError::InvalidName {
                name: name.to_owned(),
            });
        }
        let key = SigningKey::from_bytes(&seed);
        let key_id = key_id(name, key.verifying_key().as_bytes());
        Ok(Signer {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`, checking the id
    /// against the public key derived from the seed.
    pub fn parse(encoded: &str) -> Result<Signer, KeyError> {
        let mut parts = encoded.splitn(5, '+');
        if parts.next() != Some("PRIVATE") || parts.next() != Some("KEY") {
            return Err(malformed_key("prefix", "is not PRIVATE+KEY+"));
        }
        let name = parts.next().unwrap_or_default();
        let id = parse_key_id(parts.next().unwrap_or_default())?;
        let seed = parse_key_material(parts.next().unwrap_or_default(), "seed")?;
        let signer = Signer::from_seed(name, seed)?;
        if signer.key_id != id {
            return Err(KeyError::KeyIdMismatch {
                stated: id,
                computed: signer.key_id,
            });
        }
        Ok(signer)
    }

    /// The secret encoding `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`.
    pub fn to_private_key_string(&self) -> String {
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_key_material(self.key.as_bytes())
        )
    }

    /// The 32-byte seed, so the same key can sign other formats for the log (the DSSE
    /// authorization statements countersign issues alongside its checkpoints).
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The public half, to hand to those who verify.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({}+{:08x})", self.name, self.key_id)
    }
}

/// A trusted public key under a name. `Display` gives `<name>+<hex key id>+<base64(0x01 ||
/// pubkey)>`, the form [`Verifier::parse`] reads.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl Verifier {
    /// The raw Ed25519 public key, to check other signatures made with the log key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Parses `<name>+<hex key id>+<base64(0x01 || pubkey)>`, checking the id.
    pub fn parse(encoded: &str) -> Result<Verifier, KeyError> {
        let mut parts = encoded.splitn(3, '+');
        let name = parts.next().unwrap_or_default();
        if !is_valid_name(name) {
            return Err(KeyError::InvalidName {
                name: name.to_owned(),
            });
        }
        let id = parse_key_id(parts.next().unwrap_or_default())?;
        let bytes = parse_key_material(parts.next().unwrap_or_default(), "public key")?;
        let computed = key_id(name, &bytes);
        if computed != id {
            return Err(KeyError::KeyIdMismatch {
                stated: id,
                computed,
            });
        }
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|e| malformed_key("public key", e.to_string()))?;
        Ok(Verifier {
            name: name.to_owned(),
            key_id: id,
            key,
        })
    }

    /// A verifier from a raw Ed25519 public key.
    pub fn from_public_key(name: &str, public_key: [u8; 32]) -> Result<Verifier, KeyError> {
        if !is_valid_name(name) {
            return Err(KeyError::InvalidName {
                name: name.to_owned(),
            });
        }
        let key = VerifyingKey::from_bytes(&public_key)
            .map_err(|e| malformed_key("public key", e.to_string()))?;
        Ok(Verifier {
            name: name.to_owned(),
            key_id: key_id(name, &public_key),
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    fn verify(&self, text: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        // Strict verification refuses small-order keys and non-canonical encodings, so a
        // note has exactly one valid signature per key and message.
        self.key.verify_strict(text, &signature).is_ok()
    }
}

impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_key_material(self.key.as_bytes())
        )
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier({self})")
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub name: String,
    pub key_id: u32,
    /// The signature bytes after the 4-byte key id.
    pub bytes: Vec<u8>,
}

impl Signature {
    /// The line as it appears in a note, without its newline.
    fn line(&self) -> String {
        let mut raw = self.key_id.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.bytes);
        format!("{SIG_PREFIX}{} {}", self.name, BASE64.encode(raw))
    }
}

/// An opened note: its text, the signatures that verified against trusted keys, and the ones
/// from keys the caller did not trust (kept, not checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub verified: Vec<Signature>,
    pub unverified: Vec<Signature>,
}

fn malformed(line: usize, reason: impl Into<String>) -> NoteError {
    NoteError::Malformed {
        line,
        reason: reason.into(),
    }
}

/// Checks the character rules shared by texts and whole notes: no ASCII control character
/// but newline. Returns the 1-based line of the first offence.
fn check_characters(text: &str) -> Result<(), NoteError> {
    for (i, line) in text.split('\n').enumerate() {
        if let Some(c) = line
            .chars()
            .find(|c| c.is_ascii_control() && *c != '\u{7f}')
        {
            return Err(malformed(
                i + 1,
                format!("control character U+{:04X}", u32::from(c)),
            ));
        }
    }
    Ok(())
}

/// Signs `text` (which must end in a newline) with each signer; returns the signed note.
pub fn sign(text: &str, signers: &[&Signer]) -> Result<String, NoteError> {
    if !text.ends_with('\n') {
        return Err(malformed(
            text.split('\n').count(),
            "note text does not end with a newline",
        ));
    }
    check_characters(text)?;
    let mut out = String::with_capacity(text.len() + 1 + 120 * signers.len());
    out.push_str(text);
    out.push('\n');
    for signer in signers {
        let signature = Signature {
            name: signer.name.clone(),
            key_id: signer.key_id,
            bytes: signer.key.sign(text.as_bytes()).to_bytes().to_vec(),
        };
        out.push_str(&signature.line());
        out.push('\n');
    }
    Ok(out)
}

/// Opens a signed note: parses it strictly and checks every signature from a trusted key.
///
/// Signatures from unknown keys are ignored (kept in [`Note::unverified`]); a trusted key's
/// bad signature fails the whole note; at least one trusted signature must verify.
pub fn open(message: &[u8], verifiers: &[Verifier]) -> Result<Note, NoteError> {
    let message = std::str::from_utf8(message).map_err(|e| {
        let line = 1 + message[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        malformed(line, "not valid UTF-8")
    })?;
    check_characters(message)?;
    // The text ends at the last blank line; it keeps its final newline.
    let Some(split) = message.rfind("\n\n") else {
        return Err(malformed(
            message.split('\n').count(),
            "no blank line before signatures",
        ));
    };
    let (text, block) = (&message[..=split], &message[split + 2..]);
    let first_sig_line = text.split('\n').count() + 1;
    if block.is_empty() {
        return Err(malformed(first_sig_line, "no signature lines"));
    }
    if !block.ends_with('\n') {
        return Err(malformed(
            first_sig_line + block.split('\n').count() - 1,
            "signature line does not end with a newline",
        ));
    }

    let mut note = Note {
        text: text.to_owned(),
        verified: Vec::new(),
        unverified: Vec::new(),
    };
    let lines: Vec<&str> = block[..block.len() - 1].split('\n').collect();
    if lines.len() > MAX_SIGNATURES {
        return Err(malformed(
            first_sig_line,
            format!("more than {MAX_SIGNATURES} signatures"),
        ));
    }
    for (offset, line) in lines.into_iter().enumerate() {
        let line_no = first_sig_line + offset;
        let signature = parse_signature_line(line).map_err(|reason| malformed(line_no, reason))?;
        let mut trusted = verifiers
            .iter()
            .filter(|v| v.name == signature.name && v.key_id == signature.key_id);
        let Some(verifier) = trusted.next() else {
            if !note.unverified.contains(&signature) {
                note.unverified.push(signature);
            }
            continue;
        };
        if trusted.next().is_some() {
            return Err(NoteError::AmbiguousKey {
                name: signature.name,
                key_id: signature.key_id,
            });
        }
        // A repeated signature by one key adds nothing; only the first is checked.
        if note
            .verified
            .iter()
            .any(|s| s.name == signature.name && s.key_id == signature.key_id)
        {
            continue;
        }
        if !verifier.verify(text.as_bytes(), &signature.bytes) {
            return Err(NoteError::InvalidSignature {
                name: signature.name,
                key_id: signature.key_id,
            });
        }
        note.verified.push(signature);
    }
    if note.verified.is_empty() {
        let signers = note
            .unverified
            .iter()
            .map(|s| format!("{}+{:08x}", s.name, s.key_id))
            .collect();
        return Err(NoteError::UnknownKey { signers });
    }
    Ok(note)
}

fn parse_signature_line(line: &str) -> Result<Signature, String> {
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or("signature line does not start with an em dash and a space")?;
    let (name, encoded) = rest
        .split_once(' ')
        .ok_or("signature line has no space between name and signature")?;
    if !is_valid_name(name) {
        return Err(format!("invalid key name {name:?}"));
    }
    let raw = BASE64
        .decode(encoded)
        .map_err(|e| format!("signature is not base64: {e}"))?;
    if raw.len() < 5 {
        return Err(format!(
            "signature has {} bytes, at least 5 are needed",
            raw.len()
        ));
    }
    let key_id = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
    Ok(Signature {
        name: name.to_owned(),
        key_id,
        bytes: raw[4..].to_vec(),
    })
}
