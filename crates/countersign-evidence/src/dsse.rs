//! DSSE v1 envelopes: the pre-authentication encoding, the JSON envelope, ed25519 signing and
//! signature verification, and the key id rule for runner keys.
//!
//! This module knows nothing of what the payload means (that is `statement`), of which
//! runners are trusted or for what (that is `verify`), and it never reads a key from disk:
//! keys arrive as bytes.
//!
//! Key id rule: the key id of an ed25519 runner key is the lowercase hex SHA-256 of the
//! canonical JSON `{"keytype":"ed25519","keyval":{"public":"<hex of the 32 raw bytes>"},"scheme":"ed25519"}`.
//! This is securesystemslib's `compute_default_keyid` for an `SSlibKey` made from an ed25519
//! public key, so key ids agree with the Python reference implementation and in-toto.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signer as _, SigningKey as DalekSigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The payload type of an in-toto Statement inside a DSSE envelope.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Envelopes with more signatures than this are malformed: each signature costs a verification
/// per candidate key, so an unbounded list would let an envelope buy unbounded CPU.
pub const MAX_SIGNATURES: usize = 16;

/// Why an envelope could not be parsed or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsseError {
    #[error("malformed envelope: {what}")]
    Malformed { what: String },
    #[error("no signature is by a known key (key ids: {})", keyids.join(", "))]
    UnknownKey { keyids: Vec<String> },
    #[error("signature by key {keyid} does not verify")]
    BadSignature { keyid: String },
}

/// Why bytes are not an ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ed25519 {which} key: {what}")]
pub struct KeyError {
    pub which: &'static str,
    pub what: String,
}

/// `PAE(type, body)` of DSSE v1: `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths
/// in ASCII decimal bytes. This is the exact byte string that gets signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let type_len = payload_type.len().to_string();
    let body_len = payload.len().to_string();
    let mut out = Vec::with_capacity(
        7 + type_len.len() + 1 + payload_type.len() + 1 + body_len.len() + 1 + payload.len(),
    );
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(type_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Decodes base64 as the DSSE reference implementations accept it: standard or URL-safe
/// alphabet, padded or not (go-securesystemslib tries all four; the Python one the two padded).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD]
        .into_iter()
        .find_map(|engine| engine.decode(text).ok())
}

/// An ed25519 public key of a runner, with its key id computed once.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    key_id: String,
}

impl PublicKey {
    /// From the 32 raw bytes of the key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let raw: [u8; 32] = bytes.try_into().map_err(|_| KeyError {
            which: "public",
            what: format!("expected 32 bytes, got {}", bytes.len()),
        })?;
        let key = VerifyingKey::from_bytes(&raw).map_err(|e| KeyError {
            which: "public",
            what: e.to_string(),
        })?;
        Ok(Self::from_verifying(key))
    }

    /// From the 64 hex digits securesystemslib writes in `keyval.public`.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = hex::decode(text.trim()).map_err(|_| KeyError {
            which: "public",
            what: "not hex".to_owned(),
        })?;
        Self::from_bytes(&bytes)
    }

    fn from_verifying(key: VerifyingKey) -> Self {
        let key_id = key_id_of(key.as_bytes());
        Self { key, key_id }
    }

    /// The key id (see the module doc for the rule).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// Lowercase hex of the raw key, as securesystemslib stores it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.key.as_bytes())
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        // Strict verification rejects non-canonical and small-order encodings that honest
        // signers (dalek, pyca/cryptography) never produce.
        self.key.verify_strict(message, &signature).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id)
    }
}

/// The key id of a raw ed25519 public key (see the module doc for the rule).
pub fn key_id_of(public: &[u8; 32]) -> String {
    let canonical = format!(
        r#"{{"keytype":"ed25519","keyval":{{"public":"{}"}},"scheme":"ed25519"}}"#,
        hex::encode(public)
    );
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// An ed25519 signing key of a runner. The seed comes from the caller: this crate makes no
/// randomness.
pub struct SigningKey {
    key: DalekSigningKey,
    public: PublicKey,
}

impl SigningKey {
    /// From the 32-byte seed (the "private key" of RFC 8032).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = DalekSigningKey::from_bytes(seed);
        let public = PublicKey::from_verifying(key.verifying_key());
        Self { key, public }
    }

    /// From seed bytes of any provenance; refuses anything but 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let seed: [u8; 32] = bytes.try_into().map_err(|_| KeyError {
            which: "private",
            what: format!("expected a 32-byte seed, got {} bytes", bytes.len()),
        })?;
        Ok(Self::from_seed(&seed))
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The 32-byte seed, for the binary to write to a 0600 key file.
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The key as an unencrypted PKCS#8 v1 PEM (`-----BEGIN PRIVATE KEY-----`, RFC 8410),
    /// the form OpenSSL and pyca/cryptography (so securesystemslib's `CryptoSigner`) read.
    pub fn to_pkcs8_pem(&self) -> String {
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&self.key.to_bytes());
        let body = STANDARD.encode(der);
        format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
    }

    /// Reads what [`SigningKey::to_pkcs8_pem`] writes (any PKCS#8 v1 ed25519 PEM without a
    /// public key attribute, e.g. `openssl genpkey -algorithm ed25519`).
    pub fn from_pkcs8_pem(text: &str) -> Result<Self, KeyError> {
        let error = |what: &str| KeyError {
            which: "private",
            what: what.to_owned(),
        };
        let body = text
            .trim()
            .strip_prefix("-----BEGIN PRIVATE KEY-----")
            .and_then(|rest| rest.trim_end().strip_suffix("-----END PRIVATE KEY-----"))
            .ok_or_else(|| error("not a PEM `PRIVATE KEY` block"))?;
        let body: String = body.split_whitespace().collect();
        let der = STANDARD
            .decode(body)
            .map_err(|_| error("the PEM body is not base64"))?;
        let seed = der
            .strip_prefix(&PKCS8_ED25519_PREFIX[..])
            .filter(|seed| seed.len() == 32)
            .ok_or_else(|| error("not an unencrypted PKCS#8 v1 ed25519 key"))?;
        Self::from_bytes(seed)
    }
}

/// DER of a PKCS#8 v1 `PrivateKeyInfo` for ed25519 (OID 1.3.101.112) up to the 32-byte
/// seed: SEQUENCE { INTEGER 0, SEQUENCE { OID }, OCTET STRING { OCTET STRING (32) } }.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.public.key_id)
    }
}

/// One signature of an envelope. `keyid` is a hint, unauthenticated; empty when unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub keyid: String,
    pub sig: Vec<u8>,
}

/// A parsed DSSE envelope whose signatures have not been checked. Nothing in it is to be
/// believed until [`Envelope::verify`] turns it into a [`VerifiedEnvelope`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub payload_type: String,
    pub payload: Vec<u8>,
    pub signatures: Vec<Signature>,
}

/// An envelope whose signatures verified under the caller's keys. Only [`Envelope::verify`]
/// and [`Envelope::verify_batch`] make one, so holding one proves the check happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEnvelope {
    payload_type: String,
    payload: Vec<u8>,
    /// Every key that signed, in signature order, each once; never empty.
    key_ids: Vec<String>,
}

impl VerifiedEnvelope {
    pub fn payload_type(&self) -> &str {
        &self.payload_type
    }
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
    /// The key id of the first key whose signature verified.
    pub fn key_id(&self) -> &str {
        self.key_ids.first().map_or("", String::as_str)
    }
    /// The key ids of every key whose signature verified, each once.
    pub fn key_ids(&self) -> &[String] {
        &self.key_ids
    }
}

#[derive(Deserialize)]
struct WireEnvelope<'a> {
    #[serde(borrow)]
    payload: std::borrow::Cow<'a, str>,
    #[serde(rename = "payloadType", borrow)]
    payload_type: std::borrow::Cow<'a, str>,
    signatures: Vec<WireSignature<'a>>,
}

#[derive(Deserialize)]
struct WireSignature<'a> {
    // DSSE: an unset keyid is the same as an empty one.
    #[serde(default, borrow)]
    keyid: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    sig: std::borrow::Cow<'a, str>,
}

#[derive(Serialize)]
struct WireEnvelopeOut<'a> {
    payload: String,
    #[serde(rename = "payloadType")]
    payload_type: &'a str,
    signatures: Vec<WireSignatureOut<'a>>,
}

#[derive(Serialize)]
struct WireSignatureOut<'a> {
    keyid: &'a str,
    sig: String,
}

impl Envelope {
    /// Parses the JSON envelope. Unknown fields are ignored, as DSSE requires.
    pub fn parse(bytes: &[u8]) -> Result<Self, DsseError> {
        let wire: WireEnvelope<'_> =
            serde_json::from_slice(bytes).map_err(|e| DsseError::Malformed {
                what: format!("envelope JSON: {e}"),
            })?;
        if wire.signatures.len() > MAX_SIGNATURES {
            return Err(DsseError::Malformed {
                what: format!(
                    "{} signatures, at most {MAX_SIGNATURES} are accepted",
                    wire.signatures.len()
                ),
            });
        }
        let payload = decode_base64(&wire.payload).ok_or_else(|| DsseError::Malformed {
            what: "payload is not base64".to_owned(),
        })?;
        let signatures = wire
            .signatures
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let sig = decode_base64(&s.sig).ok_or_else(|| DsseError::Malformed {
                    what: format!("signatures[{i}].sig is not base64"),
                })?;
                Ok(Signature {
                    keyid: s.keyid.map(|k| k.into_owned()).unwrap_or_default(),
                    sig,
                })
            })
            .collect::<Result<Vec<_>, DsseError>>()?;
        Ok(Self {
            payload_type: wire.payload_type.into_owned(),
            payload,
            signatures,
        })
    }

    /// Signs `payload` as `payload_type` with one key.
    pub fn sign(payload_type: &str, payload: Vec<u8>, key: &SigningKey) -> Self {
        let signature = key.key.sign(&pae(payload_type, &payload));
        Self {
            payload_type: payload_type.to_owned(),
            payload,
            signatures: vec![Signature {
                keyid: key.public.key_id.clone(),
                sig: signature.to_bytes().to_vec(),
            }],
        }
    }

    /// The JSON envelope, standard padded base64 (what securesystemslib writes).
    pub fn to_json(&self) -> Vec<u8> {
        let wire = WireEnvelopeOut {
            payload: STANDARD.encode(&self.payload),
            payload_type: &self.payload_type,
            signatures: self
                .signatures
                .iter()
                .map(|s| WireSignatureOut {
                    keyid: &s.keyid,
                    sig: STANDARD.encode(&s.sig),
                })
                .collect(),
        };
        // Serializing a struct of strings into memory cannot fail.
        serde_json::to_vec_pretty(&wire).unwrap_or_default()
    }

    /// Verifies many envelopes with one Ed25519 batch equation: every signature of every
    /// envelope, each of which must name a trusted key. `Some` with every envelope verified
    /// and its signers (as [`Envelope::verify`] returns them) when the whole batch holds;
    /// `None` when a signature names no trusted key (an empty or foreign key id), a
    /// signature has a small-order `R`, or the batch equation fails, and then the caller
    /// verifies one by one (with [`Envelope::verify`]) to learn which and why.
    ///
    /// Batch verification is about twice as fast per signature from a few dozen envelopes
    /// up. It accepts what strict single verification accepts, except a valid signature
    /// whose `R` was altered by a torsion component (a malleated copy of an authentic
    /// signature over the same bytes); small-order `R`s are refused here as they are by
    /// [`Envelope::verify`], and trusted keys are never small-order.
    pub fn verify_batch<K>(
        envelopes: Vec<Envelope>,
        keys: &[K],
        public_key: impl Fn(&K) -> &PublicKey,
    ) -> Option<Vec<(VerifiedEnvelope, Vec<&K>)>> {
        let mut messages = Vec::with_capacity(envelopes.len());
        let mut signatures = Vec::with_capacity(envelopes.len());
        let mut verifying = Vec::with_capacity(envelopes.len());
        // Per envelope: its signers, as indexes into `keys`, each once.
        let mut chosen: Vec<Vec<usize>> = Vec::with_capacity(envelopes.len());
        for envelope in &envelopes {
            if envelope.signatures.is_empty() {
                return None;
            }
            let mut signers = Vec::new();
            // Every signature must name a trusted key: one with an empty or foreign key id
            // may verify under any key, which only the one-by-one path finds out.
            for s in &envelope.signatures {
                let index = keys
                    .iter()
                    .position(|k| !s.keyid.is_empty() && public_key(k).key_id == s.keyid)?;
                let key = &keys[index];
                let signature = ed25519_dalek::Signature::from_slice(&s.sig).ok()?;
                if public_key(key).key.is_weak() || small_order_r(&signature) {
                    return None;
                }
                messages.push(pae(&envelope.payload_type, &envelope.payload));
                signatures.push(signature);
                verifying.push(public_key(key).key);
                if !signers.contains(&index) {
                    signers.push(index);
                }
            }
            chosen.push(signers);
        }
        let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        ed25519_dalek::verify_batch(&messages, &signatures, &verifying).ok()?;
        Some(
            envelopes
                .into_iter()
                .zip(chosen)
                .map(|(envelope, signers)| {
                    let signers: Vec<&K> = signers.into_iter().map(|i| &keys[i]).collect();
                    (
                        VerifiedEnvelope {
                            payload_type: envelope.payload_type,
                            payload: envelope.payload,
                            key_ids: signers
                                .iter()
                                .map(|k| public_key(k).key_id.clone())
                                .collect(),
                        },
                        signers,
                    )
                })
                .collect(),
        )
    }

    /// Verifies the envelope against `keys` and returns every key that signed it (each
    /// once, in signature order) beside the verified envelope.
    ///
    /// A signature whose key id names one of the keys is checked against that key only. A
    /// signature with an empty or foreign key id is tried against every key, because the key
    /// id is an unauthenticated hint and other producers may compute it differently; one
    /// that verifies under none is someone else's and ignored. Refusal is `BadSignature`
    /// when any signature named one of our keys and did not verify (an envelope that claims
    /// a trusted signer it does not have is not weighed, whatever else it carries), and
    /// `UnknownKey` when no signature verified under any of them.
    ///
    /// Every signer is returned, not the first, so the caller can hold each of them to its
    /// rules: which signature comes first must never change the verdict.
    pub fn verify<K>(
        self,
        keys: &[K],
        public_key: impl Fn(&K) -> &PublicKey,
    ) -> Result<(VerifiedEnvelope, Vec<&K>), DsseError> {
        if self.signatures.is_empty() {
            return Err(DsseError::Malformed {
                what: "no signatures".to_owned(),
            });
        }
        let message = pae(&self.payload_type, &self.payload);
        let mut bad_named = None;
        let mut signers: Vec<usize> = Vec::new();
        for signature in &self.signatures {
            let named = keys.iter().position(|k| {
                !signature.keyid.is_empty() && public_key(k).key_id == signature.keyid
            });
            let found = match named {
                Some(i) => {
                    if public_key(&keys[i]).verifies(&message, &signature.sig) {
                        Some(i)
                    } else {
                        bad_named.get_or_insert_with(|| signature.keyid.clone());
                        None
                    }
                }
                None => keys
                    .iter()
                    .position(|k| public_key(k).verifies(&message, &signature.sig)),
            };
            if let Some(i) = found
                && !signers.contains(&i)
            {
                signers.push(i);
            }
        }
        if let Some(keyid) = bad_named {
            return Err(DsseError::BadSignature { keyid });
        }
        if signers.is_empty() {
            return Err(DsseError::UnknownKey {
                keyids: self.signatures.into_iter().map(|s| s.keyid).collect(),
            });
        }
        let signers: Vec<&K> = signers.into_iter().map(|i| &keys[i]).collect();
        Ok((
            VerifiedEnvelope {
                payload_type: self.payload_type,
                payload: self.payload,
                key_ids: signers
                    .iter()
                    .map(|k| public_key(k).key_id.clone())
                    .collect(),
            },
            signers,
        ))
    }
}

/// Whether a signature's `R` is the canonical encoding of one of the eight small-order
/// points, which `verify_strict` refuses and the batch equation would not notice. Compared
/// as bytes (as libsodium does) rather than by decompressing `R`, which would cost a field
/// exponentiation per signature on top of the batch's own decompression.
fn small_order_r(signature: &ed25519_dalek::Signature) -> bool {
    static SMALL_ORDER: std::sync::LazyLock<Vec<[u8; 32]>> = std::sync::LazyLock::new(|| {
        curve25519_dalek::constants::EIGHT_TORSION
            .iter()
            .map(|point| point.compress().to_bytes())
            .collect()
    });
    SMALL_ORDER.contains(signature.r_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_seed(&[n; 32])
    }

    #[test]
    fn pae_matches_the_spec_test_vector() {
        // protocol.md: PAE("http://example.com/HelloWorld", "hello world").
        let got = pae("http://example.com/HelloWorld", b"hello world");
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn round_trip_sign_serialize_parse_verify() {
        let k = key(7);
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}".to_vec(), &k);
        let parsed = Envelope::parse(&env.to_json()).unwrap();
        assert_eq!(parsed, env);
        let keys = [k.public_key().clone()];
        let (verified, _) = parsed.verify(&keys, |k| k).unwrap();
        assert_eq!(verified.payload(), b"{\"a\":1}");
        assert_eq!(verified.key_id(), k.public_key().key_id());
    }

    #[test]
    fn base64_variants_are_all_accepted() {
        // 0xfb 0xff encodes to "+/8=" in the standard alphabet and "-_8=" URL-safe.
        for text in ["+/8=", "+/8", "-_8=", "-_8"] {
            assert_eq!(decode_base64(text), Some(vec![0xfb, 0xff]), "{text}");
        }
        assert_eq!(decode_base64("*"), None);
    }

    #[test]
    fn signature_over_other_bytes_is_bad() {
        let k = key(1);
        let mut env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"one".to_vec(), &k);
        env.payload = b"two".to_vec();
        let keys = [k.public_key().clone()];
        assert_eq!(
            env.verify(&keys, |k| k).unwrap_err(),
            DsseError::BadSignature {
                keyid: k.public_key().key_id().to_owned()
            }
        );
    }

    #[test]
    fn payload_type_is_signed_too() {
        let k = key(1);
        let mut env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"one".to_vec(), &k);
        env.payload_type = "text/plain".to_owned();
        let keys = [k.public_key().clone()];
        assert!(matches!(
            env.verify(&keys, |k| k),
            Err(DsseError::BadSignature { .. })
        ));
    }

    #[test]
    fn unknown_key_and_foreign_key_id() {
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"x".to_vec(), &key(1));
        let keys = [key(2).public_key().clone()];
        assert!(matches!(
            env.clone().verify(&keys, |k| k),
            Err(DsseError::UnknownKey { .. })
        ));
        // A foreign key id still verifies under the right key: the id is only a hint.
        let mut relabeled = env;
        relabeled.signatures[0].keyid = "something-else".to_owned();
        let keys = [key(1).public_key().clone()];
        assert!(relabeled.verify(&keys, |k| k).is_ok());
    }

    #[test]
    fn malformed_envelopes() {
        for (input, what) in [
            (
                &b"{\"payload\":\"eA==\",\"payloadType\":\"t\",\"signa"[..],
                "envelope JSON",
            ),
            (
                b"{\"payload\":\"%%\",\"payloadType\":\"t\",\"signatures\":[]}",
                "payload is not base64",
            ),
            (
                b"{\"payload\":\"eA==\",\"payloadType\":\"t\",\"signatures\":[{\"sig\":\"!\"}]}",
                "signatures[0].sig",
            ),
        ] {
            let err = Envelope::parse(input).unwrap_err();
            assert!(err.to_string().contains(what), "{err}");
        }
        let no_sigs =
            Envelope::parse(b"{\"payload\":\"eA==\",\"payloadType\":\"t\",\"signatures\":[]}")
                .unwrap();
        let keys = [key(1).public_key().clone()];
        assert!(matches!(
            no_sigs.verify(&keys, |k| k),
            Err(DsseError::Malformed { .. })
        ));
    }

    #[test]
    fn key_id_is_securesystemslib_default_keyid() {
        // RFC 8032 test 1 public key; the expected id was computed with securesystemslib 1.6
        // (`SSlibKey.from_crypto(...).keyid`), see tests/interop.
        let public =
            PublicKey::from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                .unwrap();
        assert_eq!(public.key_id(), EXPECTED_RFC8032_KEYID);
        assert_eq!(
            public.to_hex(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }

    const EXPECTED_RFC8032_KEYID: &str =
        "74c181c7ad8a0855d4b55e44d2ba87aabdddb196832571f15f92fece332e4916";

    #[test]
    fn pkcs8_pem_round_trips_and_matches_openssl() {
        // RFC 8410 section 10.3's example private key (as `openssl genpkey` writes it).
        let openssl = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let k = SigningKey::from_pkcs8_pem(openssl).unwrap();
        assert_eq!(
            hex::encode(k.seed()),
            "d4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755842"
        );
        assert_eq!(k.to_pkcs8_pem(), openssl);
        let again = SigningKey::from_pkcs8_pem(&key(9).to_pkcs8_pem()).unwrap();
        assert_eq!(again.seed(), key(9).seed());
        assert!(SigningKey::from_pkcs8_pem("nope").is_err());
        assert!(
            SigningKey::from_pkcs8_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
            )
            .is_err()
        );
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(PublicKey::from_bytes(&[0; 31]).is_err());
        assert!(PublicKey::from_hex("zz").is_err());
        assert!(SigningKey::from_bytes(&[0; 33]).is_err());
    }
}
