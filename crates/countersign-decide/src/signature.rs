//! A commit's signature checked against the signing keys the catalog Users it names list:
//! what [`crate::authorship`] needs to call an author verified. Pure: the signature, the
//! signed bytes and the keys in, a [`Signed`] out; no `git`, `ssh-keygen` or `gpg` process,
//! no keyring, no clock (a key listed on the User is trusted for as long as it is listed:
//! the catalog at the base is the one source, as for everything else about people).
//!
//! SSH signatures (`git -c gpg.format=ssh commit -S`) are sshsig with namespace `git`,
//! verified with the `ssh-key` crate. OpenPGP signatures (`git commit -S` with gpg) are
//! detached signatures over the commit object without its `gpgsig` header, verified with
//! rPGP (`pgp`) as gpg would: the key that made it (the primary key or a subkey) must be
//! bound to the certificate the User lists and allowed to sign, not revoked, and not expired
//! *at the signature's creation time*, the one time the signed bytes give. X.509 signatures
//! are not verified here: such a commit is `claimed`, with the reason said.
//!
//! What each outcome means, for both formats: a signature that verifies with a key of a
//! person the commit names is theirs ([`Signed::By`]); one that verifies with no key of
//! theirs, or with a key of theirs that may not sign at that time, is `claimed`
//! ([`Signed::Unverifiable`], the reason said); one made with a key of theirs that does not
//! verify over the commit, or that is not a signature at all, is [`Signed::Invalid`], a red
//! flag.

use std::io::Cursor;

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Signature, SignatureType, SubpacketData};
use pgp::types::{Fingerprint, KeyDetails, KeyId, Tag, Timestamp};
use ssh_key::{HashAlg, PublicKey, SshSig};

use crate::authorship::Signed;

/// The namespace git signs commits in (`git verify-commit` checks the same).
const GIT_NAMESPACE: &str = "git";

/// The catalog annotation listing a User's OpenSSH signing keys.
pub const SSH_ANNOTATION: &str = "countersign.dev/ssh-signing-keys";
/// The catalog annotation listing a User's OpenPGP certificates (ASCII-armored).
pub const OPENPGP_ANNOTATION: &str = "countersign.dev/openpgp-signing-keys";

/// The signing keys of one person, parsed from their catalog User.
#[derive(Debug, Clone, Default)]
pub struct SigningKeys {
    pub ssh: Vec<PublicKey>,
    pub openpgp: Vec<SignedPublicKey>,
}

impl SigningKeys {
    /// Parses `countersign.dev/ssh-signing-keys` lines (OpenSSH public keys, one a line,
    /// `#` comments and blank lines ignored). A line that is not a key is an error naming
    /// it: a mistyped key must not read as "no key".
    pub fn parse_ssh(lines: &[String]) -> Result<Vec<PublicKey>, String> {
        let mut ssh = Vec::new();
        for line in lines {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = PublicKey::from_openssh(line)
                .map_err(|e| format!("`{}` is not an OpenSSH public key: {e}", clip(line)))?;
            ssh.push(key);
        }
        Ok(ssh)
    }

    /// Parses `countersign.dev/openpgp-signing-keys`: one or more ASCII-armored public key
    /// blocks (`gpg --armor --export`), each holding one or more certificates. Anything
    /// else (text outside a block, a private key, a block that does not parse, a
    /// certificate whose primary key has no valid self-signature, so could never vouch for
    /// anything) is an error naming the block: a garbled key must not read as "no key".
    pub fn parse_openpgp(text: &str) -> Result<Vec<SignedPublicKey>, String> {
        const BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
        const END: &str = "-----END PGP PUBLIC KEY BLOCK-----";
        let mut certs = Vec::new();
        let mut rest = text;
        let mut block = 0;
        loop {
            let Some(start) = rest.find("-----BEGIN ") else {
                if let Some(stray) = rest.lines().map(str::trim).find(|l| !l.is_empty()) {
                    return Err(format!(
                        "`{}` is outside an armored public key block",
                        clip(stray)
                    ));
                }
                break;
            };
            if let Some(stray) = rest[..start].lines().map(str::trim).find(|l| !l.is_empty()) {
                return Err(format!(
                    "`{}` is outside an armored public key block",
                    clip(stray)
                ));
            }
            block += 1;
            let from = &rest[start..];
            if !from.starts_with(BEGIN) {
                let header = from.lines().next().unwrap_or_default();
                return Err(if header.contains("PRIVATE KEY") {
                    format!(
                        "block {block} is a private key (`{}`): list only public keys, and treat this one as leaked",
                        clip(header)
                    )
                } else {
                    format!("block {block} is `{}`, not `{BEGIN}`", clip(header))
                });
            }
            let Some(end) = from.find(END) else {
                return Err(format!("block {block} has no `{END}` line"));
            };
            let armored = &from[..end + END.len()];
            rest = &from[end + END.len()..];
            let (parsed, _) = SignedPublicKey::from_armor_many(Cursor::new(armored.as_bytes()))
                .map_err(|e| format!("block {block} is not an OpenPGP public key: {e}"))?;
            let mut found = 0;
            for cert in parsed {
                let cert =
                    cert.map_err(|e| format!("block {block} is not an OpenPGP public key: {e}"))?;
                if latest_self_signature(&cert, None).is_none() {
                    return Err(format!(
                        "block {block}: key {} has no valid self-signature",
                        openpgp_fingerprint(&cert.primary_key)
                    ));
                }
                certs.push(cert);
                found += 1;
            }
            if found == 0 {
                return Err(format!("block {block} holds no public key"));
            }
        }
        Ok(certs)
    }

    pub fn is_empty(&self) -> bool {
        self.ssh.is_empty() && self.openpgp.is_empty()
    }
}

fn clip(line: &str) -> String {
    let mut end = line.len().min(40);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    if end < line.len() {
        format!("{}…", &line[..end])
    } else {
        line.to_owned()
    }
}

/// The fingerprint a key is named by in the record: `SHA256:<base64>`, as `ssh-keygen -l`
/// prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// An OpenPGP key's fingerprint as `gpg --fingerprint` prints it, without spaces.
pub fn openpgp_fingerprint(key: &impl KeyDetails) -> String {
    hex::encode_upper(key.fingerprint().as_bytes())
}

/// What `signature` over `signed` proves about the people a commit names (`named`: each
/// principal with their keys). `None` for an unsigned commit is the caller's
/// [`Signed::Unsigned`].
pub fn check(signature: &[u8], signed: &[u8], named: &[(&str, &SigningKeys)]) -> Signed {
    let text = String::from_utf8_lossy(signature);
    let text = text.trim_start();
    if text.starts_with("-----BEGIN SSH SIGNATURE-----") {
        return check_ssh(signature, signed, named);
    }
    if text.starts_with("-----BEGIN PGP SIGNATURE-----") {
        return check_openpgp(signature, signed, named);
    }
    let format = if text.starts_with("-----BEGIN SIGNED MESSAGE-----") {
        "an X.509 signature"
    } else {
        "a signature of an unknown format"
    };
    Signed::Unverifiable {
        why: format!("{format}, which countersign does not verify"),
    }
}

fn check_ssh(signature: &[u8], signed: &[u8], named: &[(&str, &SigningKeys)]) -> Signed {
    let sig = match SshSig::from_pem(signature) {
        Ok(sig) => sig,
        Err(e) => {
            return Signed::Invalid {
                why: format!("a malformed SSH signature: {e}"),
            };
        }
    };
    let signer = sig.public_key().fingerprint(HashAlg::Sha256).to_string();
    // The signature names its key: does it verify with that key at all? One that does not
    // is altered or garbage whoever's key it is.
    let genuine = PublicKey::from(sig.public_key().clone())
        .verify(GIT_NAMESPACE, signed, &sig)
        .is_ok();
    if named.iter().all(|(_, keys)| keys.ssh.is_empty()) {
        return if genuine {
            Signed::Unverifiable {
                why: format!(
                    "an SSH signature by key {signer}; nobody the commit names lists SSH signing keys"
                ),
            }
        } else {
            Signed::Invalid {
                why: format!(
                    "the SSH signature by key {signer} does not verify over the commit (altered, or not namespace `git`)"
                ),
            }
        };
    }
    for (principal, keys) in named {
        for key in &keys.ssh {
            // `verify` checks the signature's key is this key, the namespace, and the
            // signature over the hash of the signed bytes.
            if key.verify(GIT_NAMESPACE, signed, &sig).is_ok() {
                return Signed::By {
                    principal: (*principal).to_owned(),
                    key: fingerprint(key),
                };
            }
        }
    }
    if genuine {
        Signed::Unverifiable {
            why: format!(
                "an SSH signature by key {signer}, which no person the commit names lists"
            ),
        }
    } else {
        Signed::Invalid {
            why: format!(
                "the SSH signature by key {signer} does not verify over the commit (altered, or not namespace `git`)"
            ),
        }
    }
}

/// A key of a certificate that may have made a signature: the primary key or a subkey.
enum Component<'a> {
    Primary,
    Subkey(&'a pgp::composed::SignedPublicSubKey),
}

fn check_openpgp(signature: &[u8], signed: &[u8], named: &[(&str, &SigningKeys)]) -> Signed {
    let sig = match parse_signature(signature) {
        Ok(sig) => sig,
        Err(why) => {
            return Signed::Invalid {
                why: format!("a malformed OpenPGP signature: {why}"),
            };
        }
    };
    let signer = issuer(&sig);
    if !matches!(sig.typ(), Some(SignatureType::Binary | SignatureType::Text)) {
        return Signed::Invalid {
            why: format!(
                "the OpenPGP signature by {signer} is not a signature of data (type {:?})",
                sig.typ()
            ),
        };
    }
    if named.iter().all(|(_, keys)| keys.openpgp.is_empty()) {
        return Signed::Unverifiable {
            why: format!(
                "an OpenPGP signature by {signer}; nobody the commit names lists OpenPGP signing keys"
            ),
        };
    }
    // Why a key of a person named that made the signature is not accepted (the first).
    let mut refused: Option<String> = None;
    // Whether the signature names a key some person named lists.
    let mut listed = false;
    for (principal, keys) in named {
        for cert in &keys.openpgp {
            let subkeys = cert.public_subkeys.iter().map(Component::Subkey);
            for component in std::iter::once(Component::Primary).chain(subkeys) {
                let (fingerprint, id) = match &component {
                    Component::Primary => (
                        cert.primary_key.fingerprint(),
                        cert.primary_key.legacy_key_id(),
                    ),
                    Component::Subkey(sub) => (sub.key.fingerprint(), sub.key.legacy_key_id()),
                };
                if !names(&sig, &fingerprint, &id) {
                    continue;
                }
                // A signature naming no issuer matches every key: only one naming this key
                // says it is this key's, so only then is a mismatch an altered commit.
                listed |= !(sig.issuer_fingerprint().is_empty() && sig.issuer_key_id().is_empty());
                let verified = match &component {
                    Component::Primary => sig.verify(&cert.primary_key, signed),
                    Component::Subkey(sub) => sig.verify(&sub.key, signed),
                };
                if verified.is_err() {
                    continue;
                }
                let key = match &component {
                    Component::Primary => {
                        format!("OpenPGP key {}", openpgp_fingerprint(&cert.primary_key))
                    }
                    Component::Subkey(sub) => format!(
                        "OpenPGP key {} (subkey {})",
                        openpgp_fingerprint(&cert.primary_key),
                        openpgp_fingerprint(&sub.key)
                    ),
                };
                match may_sign(cert, &component, &sig) {
                    Ok(()) => {
                        return Signed::By {
                            principal: (*principal).to_owned(),
                            key,
                        };
                    }
                    Err(why) => {
                        refused.get_or_insert_with(|| {
                            format!("made with {key} of {principal}, {why}")
                        });
                    }
                }
            }
        }
    }
    if let Some(why) = refused {
        return Signed::Unverifiable {
            why: format!("an OpenPGP signature {why}"),
        };
    }
    if listed {
        Signed::Invalid {
            why: format!(
                "the OpenPGP signature by {signer} does not verify over the commit (altered)"
            ),
        }
    } else {
        Signed::Unverifiable {
            why: format!(
                "an OpenPGP signature by {signer}, which no person the commit names lists"
            ),
        }
    }
}

/// Whether `sig` names the key of `fingerprint` and `id` as its issuer; one naming no
/// issuer at all may be anyone's, and only the cryptography tells.
fn names(sig: &Signature, fingerprint: &Fingerprint, id: &KeyId) -> bool {
    let (fingerprints, ids) = (sig.issuer_fingerprint(), sig.issuer_key_id());
    if fingerprints.is_empty() && ids.is_empty() {
        return true;
    }
    fingerprints.contains(&fingerprint) || ids.contains(&id)
}

/// The issuer a signature names, for messages: its fingerprint, else its key id.
fn issuer(sig: &Signature) -> String {
    if let Some(fingerprint) = sig.issuer_fingerprint().first() {
        return format!("key {}", hex::encode_upper(fingerprint.as_bytes()));
    }
    if let Some(id) = sig.issuer_key_id().first() {
        return format!("key id {}", hex::encode_upper(id.as_ref()));
    }
    "a key it does not name".to_owned()
}

/// The one signature of a `gpgsig` header. More than one packet is refused: git signs with
/// one key, and a second signature could only be there to be looked at instead.
fn parse_signature(armored: &[u8]) -> Result<Signature, String> {
    let (signatures, _) =
        DetachedSignature::from_armor_many(Cursor::new(armored)).map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    for signature in signatures {
        found.push(signature.map_err(|e| e.to_string())?.signature);
    }
    match <[Signature; 1]>::try_from(found) {
        Ok([one]) => Ok(one),
        Err(found) => Err(format!("{} signatures where git makes one", found.len())),
    }
}

fn date(at: Timestamp) -> String {
    humantime::format_rfc3339_seconds(at.into()).to_string()
}

/// Whether the key `component` of `cert`, which made `sig`, was allowed to make it when it
/// did (`sig`'s creation time): bound to the certificate by a valid self-signature made
/// before, flagged for signing, with a valid back-signature if a subkey; neither it nor the
/// primary key revoked (at any time: a revocation may be the owner saying the key leaked)
/// or expired then. `Err` says why not.
fn may_sign(
    cert: &SignedPublicKey,
    component: &Component<'_>,
    sig: &Signature,
) -> Result<(), String> {
    let Some(at) = sig.created() else {
        return Err("but the signature has no creation time".to_owned());
    };
    if let Some(hash) = sig.hash_alg()
        && matches!(
            hash,
            HashAlgorithm::None
                | HashAlgorithm::Md5
                | HashAlgorithm::Sha1
                | HashAlgorithm::Ripemd160
        )
    {
        return Err(format!(
            "but the signature hashes with {hash}, which is too weak to accept"
        ));
    }
    let primary = &cert.primary_key;
    let revoked =
        cert.details.revocation_signatures.iter().any(|r| {
            r.typ() == Some(SignatureType::KeyRevocation) && r.verify_key(primary).is_ok()
        });
    if revoked {
        return Err("but the key is revoked".to_owned());
    }
    if primary.created_at() > at {
        return Err(format!(
            "but the signature ({}) is older than the key ({})",
            date(at),
            date(primary.created_at())
        ));
    }
    let Some(self_signature) = latest_self_signature(cert, Some(at)) else {
        return Err(format!(
            "but no self-signature of the key was made before the signature ({})",
            date(at)
        ));
    };
    expired(primary.created_at(), self_signature, at, "the key")?;
    match component {
        Component::Primary => {
            if has_key_flags(self_signature) && !self_signature.key_flags().sign() {
                return Err("but the key is not flagged for signing".to_owned());
            }
            Ok(())
        }
        Component::Subkey(sub) => {
            let key = &sub.key;
            let revoked = sub.signatures.iter().any(|r| {
                r.typ() == Some(SignatureType::SubkeyRevocation)
                    && r.verify_subkey_binding(primary, key).is_ok()
            });
            if revoked {
                return Err("but the subkey is revoked".to_owned());
            }
            if key.created_at() > at {
                return Err(format!(
                    "but the signature ({}) is older than the subkey ({})",
                    date(at),
                    date(key.created_at())
                ));
            }
            let binding = sub
                .signatures
                .iter()
                .filter(|b| {
                    b.typ() == Some(SignatureType::SubkeyBinding)
                        && b.created().is_some_and(|c| c <= at)
                        && b.verify_subkey_binding(primary, key).is_ok()
                })
                .max_by_key(|b| b.created());
            let Some(binding) = binding else {
                return Err(format!(
                    "but no binding of the subkey to the key was made before the signature ({})",
                    date(at)
                ));
            };
            if !binding.key_flags().sign() {
                return Err("but the subkey is not flagged for signing".to_owned());
            }
            // Without the subkey's own signature over the primary key, anyone could bind a
            // stranger's signing subkey to their certificate and claim its signatures.
            let backsig = binding
                .embedded_signature()
                .is_some_and(|back| back.verify_primary_key_binding(key, primary).is_ok());
            if !backsig {
                return Err("but the subkey's binding has no valid back-signature".to_owned());
            }
            expired(key.created_at(), binding, at, "the subkey")
        }
    }
}

/// `Err` when `signature` (a self-signature or binding) gives the key created at `created`
/// an expiration at or before `at`.
fn expired(
    created: Timestamp,
    signature: &Signature,
    at: Timestamp,
    what: &str,
) -> Result<(), String> {
    let Some(lifetime) = signature.key_expiration_time() else {
        return Ok(());
    };
    let lifetime = std::time::Duration::from(lifetime).as_secs();
    if lifetime == 0 {
        return Ok(());
    }
    let until = u64::from(created.as_secs()) + lifetime;
    if u64::from(at.as_secs()) >= until {
        let until = Timestamp::from_secs(u32::try_from(until).unwrap_or(u32::MAX));
        return Err(format!(
            "but {what} expired on {} and the signature was made on {}",
            date(until),
            date(at)
        ));
    }
    Ok(())
}

fn has_key_flags(signature: &Signature) -> bool {
    signature.config().is_some_and(|c| {
        c.hashed_subpackets()
            .any(|p| matches!(p.data, SubpacketData::KeyFlags(_)))
    })
}

/// The newest valid self-signature of the primary key of `cert` (a direct-key signature or
/// a certification of one of its User IDs by the key itself) made at or before `at` (any
/// time when `None`): the one whose key flags and expiration hold then.
fn latest_self_signature(cert: &SignedPublicKey, at: Option<Timestamp>) -> Option<&Signature> {
    let primary = &cert.primary_key;
    let before = |s: &&Signature| match (s.created(), at) {
        (Some(created), Some(at)) => created <= at,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let direct = cert
        .details
        .direct_signatures
        .iter()
        .filter(before)
        .filter(|s| s.typ() == Some(SignatureType::Key) && s.verify_key(primary).is_ok());
    let certifications = cert.details.users.iter().flat_map(|user| {
        user.signatures.iter().filter(before).filter(|s| {
            matches!(
                s.typ(),
                Some(
                    SignatureType::CertGeneric
                        | SignatureType::CertPersona
                        | SignatureType::CertCasual
                        | SignatureType::CertPositive
                )
            ) && s
                .verify_certification(primary, Tag::UserId, &user.id)
                .is_ok()
        })
    });
    direct.chain(certifications).max_by_key(|s| s.created())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICQBxawOWjGo67Rcz81wd86Fn2xPDnSo+aydnq1DYZ4G alice";

    fn ssh(lines: &[&str]) -> SigningKeys {
        let lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        SigningKeys {
            ssh: SigningKeys::parse_ssh(&lines).unwrap(),
            openpgp: Vec::new(),
        }
    }

    #[test]
    fn keys_parse_and_a_mistyped_key_is_an_error() {
        let keys = ssh(&[KEY, "# old laptop"]);
        assert_eq!(keys.ssh.len(), 1);
        let error = SigningKeys::parse_ssh(&["ssh-ed25519 AAAAnot-base64".to_owned()]).unwrap_err();
        assert!(error.contains("is not an OpenSSH public key"), "{error}");
    }

    #[test]
    fn other_formats_are_claimed_and_a_garbled_signature_is_invalid() {
        let keys = ssh(&[KEY]);
        let named = [("human:alice", &keys)];
        let x509 = b"-----BEGIN SIGNED MESSAGE-----\n\nabc\n-----END SIGNED MESSAGE-----\n";
        assert!(matches!(
            check(x509, b"tree 0", &named),
            Signed::Unverifiable { why } if why.contains("X.509")
        ));
        let garbled = b"-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n";
        assert!(matches!(
            check(garbled, b"tree 0", &named),
            Signed::Invalid { why } if why.contains("malformed")
        ));
        let pgp = b"-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n";
        assert!(matches!(
            check(pgp, b"tree 0", &named),
            Signed::Invalid { why } if why.contains("malformed OpenPGP")
        ));
    }

    /// A fixture of `tests/vectors/openpgp` (made by its `make.sh` with gpg and git).
    fn vector(name: &str) -> &'static str {
        match name {
            "alice.asc" => include_str!("../tests/vectors/openpgp/alice.asc"),
            "rob.asc" => include_str!("../tests/vectors/openpgp/rob.asc"),
            "mallory.asc" => include_str!("../tests/vectors/openpgp/mallory.asc"),
            "erin.asc" => include_str!("../tests/vectors/openpgp/erin.asc"),
            "ruth.asc" => include_str!("../tests/vectors/openpgp/ruth.asc"),
            "alice.commit" => include_str!("../tests/vectors/openpgp/alice.commit"),
            "rob.commit" => include_str!("../tests/vectors/openpgp/rob.commit"),
            "mallory.commit" => include_str!("../tests/vectors/openpgp/mallory.commit"),
            "erin.commit" => include_str!("../tests/vectors/openpgp/erin.commit"),
            "ruth.commit" => include_str!("../tests/vectors/openpgp/ruth.commit"),
            "altered.commit" => include_str!("../tests/vectors/openpgp/altered.commit"),
            "commits" => include_str!("../tests/vectors/openpgp/commits"),
            "fingerprints" => include_str!("../tests/vectors/openpgp/fingerprints"),
            other => panic!("no vector {other}"),
        }
    }

    /// The fingerprint `make.sh` wrote for `who` (alice's signing subkey for `alice-sub`).
    fn fingerprint_of(who: &str) -> String {
        let line = vector("fingerprints")
            .lines()
            .find(|l| l.starts_with(&format!("{}:", who.trim_end_matches("-sub"))))
            .unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        if who.ends_with("-sub") {
            words[4].trim_end_matches(')').to_owned()
        } else {
            words[1].to_owned()
        }
    }

    /// People a commit names, each with the fixture keys their User lists.
    type Named<'a> = &'a [(&'a str, &'a [&'a str])];

    /// Checks the signature of fixture commit `commit` against `named` (principal, the
    /// armored keys their User lists) and renders the outcome as one line.
    fn check_commit(commit: &str, named: &[(&str, &[&str])]) -> String {
        let id = vector("commits")
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{commit} ")))
            .unwrap();
        let object = countersign_repo::read_commit_object(
            &countersign_repo::CommitId::from_hex(id).unwrap(),
            vector(&format!("{commit}.commit")).as_bytes(),
        )
        .unwrap();
        let signature = object.signature.unwrap();
        let keys: Vec<(&str, SigningKeys)> = named
            .iter()
            .map(|(principal, files)| {
                let text: String = files.iter().map(|f| vector(&format!("{f}.asc"))).collect();
                let openpgp = SigningKeys::parse_openpgp(&text).unwrap();
                (
                    *principal,
                    SigningKeys {
                        ssh: Vec::new(),
                        openpgp,
                    },
                )
            })
            .collect();
        let named: Vec<(&str, &SigningKeys)> = keys.iter().map(|(p, k)| (*p, k)).collect();
        match check(&signature.signature, &signature.signed, &named) {
            Signed::By { principal, key } => format!("by {principal} with {key}"),
            Signed::Unverifiable { why } => format!("claimed: {why}"),
            Signed::Invalid { why } => format!("invalid: {why}"),
            Signed::Unsigned => "unsigned".to_owned(),
        }
    }

    #[test]
    fn openpgp_signatures_made_by_gpg() {
        let (alice, sub, rob, mallory, erin) = (
            fingerprint_of("alice"),
            fingerprint_of("alice-sub"),
            fingerprint_of("rob"),
            fingerprint_of("mallory"),
            fingerprint_of("erin"),
        );
        let cases: &[(&str, Named, String)] = &[
            // Signed by alice's signing subkey: hers.
            (
                "alice",
                &[("human:alice", &["alice"])],
                format!("by human:alice with OpenPGP key {alice} (subkey {sub})"),
            ),
            // Two keys on her User, hers second.
            (
                "alice",
                &[("human:alice", &["rob", "alice"])],
                format!("by human:alice with OpenPGP key {alice} (subkey {sub})"),
            ),
            // An RSA primary key that signs itself.
            (
                "rob",
                &[("human:rob", &["rob"])],
                format!("by human:rob with OpenPGP key {rob}"),
            ),
            // A key on her User, the signature by another: only claimed.
            (
                "mallory",
                &[("human:alice", &["alice"])],
                format!(
                    "claimed: an OpenPGP signature by key {mallory}, which no person the commit names lists"
                ),
            ),
            (
                "alice",
                &[("human:alice", &["rob"])],
                format!(
                    "claimed: an OpenPGP signature by key {sub}, which no person the commit names lists"
                ),
            ),
            // Nobody named lists an OpenPGP key.
            (
                "alice",
                &[("human:alice", &[])],
                format!(
                    "claimed: an OpenPGP signature by key {sub}; nobody the commit names lists OpenPGP signing keys"
                ),
            ),
            // Her signature over other bytes: a red flag.
            (
                "altered",
                &[("human:alice", &["alice"])],
                format!(
                    "invalid: the OpenPGP signature by key {sub} does not verify over the commit (altered)"
                ),
            ),
        ];
        for (commit, named, expect) in cases {
            assert_eq!(&check_commit(commit, named), expect, "{commit} {named:?}");
        }
        // Signed in June by a key that expired on 2 January (gpg's faked clock runs on, so the
        // seconds vary).
        let expired = check_commit("erin", &[("human:erin", &["erin"])]);
        assert!(
            expired.starts_with(&format!(
                "claimed: an OpenPGP signature made with OpenPGP key {erin} of human:erin, but the key expired on 2025-01-02T01:00:"
            )) && expired.contains("and the signature was made on 2025-06-01T10:00:"),
            "{expired}"
        );
        // Revoked: never verified, whenever the revocation was made.
        let revoked = check_commit("ruth", &[("human:ruth", &["ruth"])]);
        assert!(
            revoked.starts_with("claimed: ") && revoked.ends_with("but the key is revoked"),
            "{revoked}"
        );
    }

    #[test]
    fn openpgp_keys_parse_and_a_garbled_key_is_an_error() {
        let two = format!("{}\n{}", vector("alice.asc"), vector("rob.asc"));
        assert_eq!(SigningKeys::parse_openpgp(&two).unwrap().len(), 2);
        let error = |text: &str| SigningKeys::parse_openpgp(text).unwrap_err();
        let alice = vector("alice.asc");
        let truncated = &alice[..alice.len() / 2];
        assert!(
            error(truncated).contains("block 1 has no `-----END PGP PUBLIC KEY BLOCK-----` line"),
            "{}",
            error(truncated)
        );
        let garbled = alice.replacen("m", "n", 3);
        assert!(error(&garbled).contains("block 1"), "{}", error(&garbled));
        let stray = format!("{alice}\nmy laptop key\n");
        assert_eq!(
            error(&stray),
            "`my laptop key` is outside an armored public key block"
        );
        let private =
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nabc\n-----END PGP PRIVATE KEY BLOCK-----\n";
        assert!(
            error(private).contains("is a private key"),
            "{}",
            error(private)
        );
        assert!(error("ssh-ed25519 AAAA").contains("outside an armored public key block"));
    }
}
