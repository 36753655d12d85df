//! A commit's signature checked against the signing keys the catalog Users it names list:
//! what [`crate::authorship`] needs to call an author verified. Pure: the signature, the
//! signed bytes and the keys in, a [`Signed`] out; no `git`, `ssh-keygen` or `gpg` process,
//! no keyring, no clock (a key listed on the User is trusted for as long as it is listed:
//! the catalog at the base is the one source, as for everything else about people).
//!
//! SSH signatures (`git -c gpg.format=ssh commit -S`) are sshsig with namespace `git`,
//! verified with the `ssh-key` crate. Other formats (OpenPGP, X.509) are not verified here:
//! such a commit is `claimed`, with the reason said.

use ssh_key::{HashAlg, PublicKey, SshSig};

use crate::authorship::Signed;

/// The namespace git signs commits in (`git verify-commit` checks the same).
const GIT_NAMESPACE: &str = "git";

/// The signing keys of one person, parsed from their catalog User.
#[derive(Debug, Clone, Default)]
pub struct SigningKeys {
    pub ssh: Vec<PublicKey>,
}

impl SigningKeys {
    /// Parses `countersign.dev/ssh-signing-keys` lines (OpenSSH public keys, one a line,
    /// `#` comments and blank lines ignored). A line that is not a key is an error naming
    /// it: a mistyped key must not read as "no key".
    pub fn parse(lines: &[String]) -> Result<SigningKeys, String> {
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
        Ok(SigningKeys { ssh })
    }

    pub fn is_empty(&self) -> bool {
        self.ssh.is_empty()
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

/// What `signature` over `signed` proves about the people a commit names (`named`: each
/// principal with their keys). `None` for an unsigned commit is the caller's
/// [`Signed::Unsigned`].
pub fn check(signature: &[u8], signed: &[u8], named: &[(&str, &SigningKeys)]) -> Signed {
    let text = String::from_utf8_lossy(signature);
    let text = text.trim_start();
    if text.starts_with("-----BEGIN SSH SIGNATURE-----") {
        return check_ssh(signature, signed, named);
    }
    let format = if text.starts_with("-----BEGIN PGP SIGNATURE-----") {
        "an OpenPGP signature"
    } else if text.starts_with("-----BEGIN SIGNED MESSAGE-----") {
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
    if named.iter().all(|(_, keys)| keys.ssh.is_empty()) {
        return Signed::Unverifiable {
            why: format!(
                "an SSH signature by key {signer}; nobody the commit names lists SSH signing keys"
            ),
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
    let listed = named
        .iter()
        .any(|(_, keys)| keys.ssh.iter().any(|k| fingerprint(k) == signer));
    Signed::Invalid {
        why: if listed {
            format!(
                "the SSH signature by key {signer} does not verify over the commit (altered, or not namespace `git`)"
            )
        } else {
            format!("an SSH signature by key {signer}, which no person the commit names lists")
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICQBxawOWjGo67Rcz81wd86Fn2xPDnSo+aydnq1DYZ4G alice";

    #[test]
    fn keys_parse_and_a_mistyped_key_is_an_error() {
        let keys = SigningKeys::parse(&[KEY.to_owned(), "# old laptop".to_owned()]).unwrap();
        assert_eq!(keys.ssh.len(), 1);
        let error = SigningKeys::parse(&["ssh-ed25519 AAAAnot-base64".to_owned()]).unwrap_err();
        assert!(error.contains("is not an OpenSSH public key"), "{error}");
    }

    #[test]
    fn other_formats_are_claimed_and_a_garbled_ssh_signature_is_invalid() {
        let keys = SigningKeys::parse(&[KEY.to_owned()]).unwrap();
        let named = [("human:alice", &keys)];
        let pgp = b"-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n";
        assert!(matches!(
            check(pgp, b"tree 0", &named),
            Signed::Unverifiable { why } if why.contains("OpenPGP")
        ));
        let garbled = b"-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n";
        assert!(matches!(
            check(garbled, b"tree 0", &named),
            Signed::Invalid { why } if why.contains("malformed")
        ));
    }
}
