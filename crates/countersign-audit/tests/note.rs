//! Signed notes against Go's sumdb/note vectors, and checkpoints signed as notes.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use countersign_audit::checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint};
use countersign_audit::merkle::Hash;
use countersign_audit::note::{self, KeyError, NoteError, Signer, Verifier};
use serde_json::Value;

fn go() -> Value {
    serde_json::from_str(include_str!("vectors/go-sumdb-note.json")).unwrap()
}

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap().to_owned()
}

#[test]
fn go_keys_parse_and_round_trip() {
    let v = go();
    let signer = Signer::parse(&s(&v, "signer_key")).unwrap();
    assert_eq!(signer.name(), "PeterNeumann");
    assert_eq!(signer.key_id(), 0xc74f20a3);
    assert_eq!(signer.to_private_key_string(), s(&v, "signer_key"));
    assert_eq!(signer.verifier().to_string(), s(&v, "verifier_key"));
    let verifier = Verifier::parse(&s(&v, "verifier_key")).unwrap();
    assert_eq!(verifier, signer.verifier());
    assert_eq!(format!("{signer:?}"), "Signer(PeterNeumann+c74f20a3)");
}

#[test]
fn go_sign_output_is_byte_identical() {
    let v = go();
    let signer = Signer::parse(&s(&v, "signer_key")).unwrap();
    assert_eq!(
        note::sign(&s(&v, "text"), &[&signer]).unwrap(),
        s(&v, "signed")
    );
}

#[test]
fn go_open_cases() {
    let v = go();
    let peter = Verifier::parse(&s(&v, "verifier_key")).unwrap();
    let enoch = Verifier::parse(&s(&v, "other_verifier_key")).unwrap();
    let text = s(&v, "text");
    let (peter_sig, enoch_sig) = (s(&v, "peter_sig_line"), s(&v, "enoch_sig_line"));
    let both = format!("{text}\n{peter_sig}{enoch_sig}");

    // One trusted, one not: the other is kept unverified.
    let note = note::open(both.as_bytes(), std::slice::from_ref(&peter)).unwrap();
    assert_eq!(note.text, text);
    assert_eq!(note.verified.len(), 1);
    assert_eq!(note.unverified.len(), 1);
    assert_eq!(note.unverified[0].key_id, 0xaf0cfe78);

    // Both trusted.
    let note = note::open(both.as_bytes(), &[peter.clone(), enoch.clone()]).unwrap();
    assert_eq!(note.verified.len(), 2);

    // None trusted.
    assert_eq!(
        note::open(both.as_bytes(), &[]),
        Err(NoteError::UnknownKey {
            signers: vec!["PeterNeumann+c74f20a3".into(), "EnochRoot+af0cfe78".into()]
        })
    );

    // Duplicate trusted verifiers.
    assert_eq!(
        note::open(
            format!("{text}\n{enoch_sig}").as_bytes(),
            &[enoch.clone(), peter.clone(), enoch.clone()]
        ),
        Err(NoteError::AmbiguousKey {
            name: "EnochRoot".into(),
            key_id: 0xaf0cfe78
        })
    );

    // Too many signatures.
    let many = format!("{text}\n{}", peter_sig.repeat(101));
    assert!(matches!(
        note::open(many.as_bytes(), std::slice::from_ref(&peter)),
        Err(NoteError::Malformed { .. })
    ));

    // A corrupted signature by a trusted key.
    let bad = format!("{text}\n{}ABCD{}", &peter_sig[..60], &peter_sig[60..]);
    assert_eq!(
        note::open(bad.as_bytes(), std::slice::from_ref(&peter)),
        Err(NoteError::InvalidSignature {
            name: "PeterNeumann".into(),
            key_id: 0xc74f20a3
        })
    );

    // Malformed messages, as in Go's TestOpen.
    let bad_messages = [
        text.clone(),
        format!("{text}\n"),
        format!("{text}\n{}", &peter_sig[..peter_sig.len() - 1]),
        format!("\u{1}{text}\n{peter_sig}"),
        format!(
            "{text}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
        ),
        format!("{text}\n{peter_sig}Unexpected line.\n"),
    ];
    for message in bad_messages {
        let result = note::open(message.as_bytes(), std::slice::from_ref(&peter));
        assert!(
            matches!(result, Err(NoteError::Malformed { .. })),
            "{message:?} gave {result:?}"
        );
    }
    let mut invalid_utf8 = vec![0xff];
    invalid_utf8.extend_from_slice(format!("{text}\n{peter_sig}").as_bytes());
    assert!(matches!(
        note::open(&invalid_utf8, std::slice::from_ref(&peter)),
        Err(NoteError::Malformed { line: 1, .. })
    ));

    // Same id, another name: an unknown key, not a match.
    let renamed = format!(
        "{text}\n{}",
        peter_sig.replace("PeterNeumann", "CarmenSandiego")
    );
    assert!(matches!(
        note::open(renamed.as_bytes(), std::slice::from_ref(&peter)),
        Err(NoteError::UnknownKey { .. })
    ));
}

#[test]
fn bad_keys_are_refused_precisely() {
    let v = go();
    let bad: Vec<String> = v["bad_verifier_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert!(matches!(
        Verifier::parse(&bad[0]),
        Err(KeyError::Malformed {
            field: "public key",
            ..
        })
    ));
    assert_eq!(
        Verifier::parse(&bad[1]),
        Err(KeyError::UnknownAlgorithm { algorithm: 0x65 })
    );

    let good = s(&v, "verifier_key");
    assert_eq!(
        Verifier::parse(&good.replace("c74f20a3", "c74f20a4")),
        Err(KeyError::KeyIdMismatch {
            stated: 0xc74f20a4,
            computed: 0xc74f20a3
        })
    );
    // Every truncation and every single-byte change is refused, as in Go's tests.
    let bytes = good.as_bytes();
    for i in 0..=bytes.len() {
        for j in i + 1..=bytes.len() {
            if (i, j) != (0, bytes.len())
                && let Ok(text) = std::str::from_utf8(&bytes[i..j])
            {
                assert!(Verifier::parse(text).is_err(), "{text}");
            }
        }
    }
    let signer_key = s(&v, "signer_key");
    for i in 0..signer_key.len() {
        let mut changed = signer_key.clone().into_bytes();
        changed[i] += 1;
        let changed = String::from_utf8(changed).unwrap();
        assert!(Signer::parse(&changed).is_err(), "{changed}");
    }
    assert_eq!(
        Signer::from_seed("a b", [7; 32]).unwrap_err(),
        KeyError::InvalidName { name: "a b".into() }
    );
}

#[test]
fn seed_round_trip_and_tampering() {
    let signer = Signer::from_seed("log.example/countersign", [42; 32]).unwrap();
    let verifier = Verifier::parse(&signer.verifier().to_string()).unwrap();
    assert_eq!(
        Signer::parse(&signer.to_private_key_string())
            .unwrap()
            .verifier(),
        verifier
    );
    let signed = note::sign("hello\n\nworld\n", &[&signer]).unwrap();
    let note = note::open(signed.as_bytes(), std::slice::from_ref(&verifier)).unwrap();
    assert_eq!(note.text, "hello\n\nworld\n");
    let altered = signed.replacen("world", "World", 1);
    assert!(matches!(
        note::open(altered.as_bytes(), &[verifier]),
        Err(NoteError::InvalidSignature { .. })
    ));
    assert!(matches!(
        note::sign("no newline", &[&signer]),
        Err(NoteError::Malformed { .. })
    ));
}

fn root() -> Hash {
    Hash::from_base64("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=").unwrap()
}

#[test]
fn checkpoint_parse_and_format() {
    let text =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    let checkpoint = Checkpoint::parse(text).unwrap();
    assert_eq!(checkpoint.origin(), "example.com/behind-the-sofa");
    assert_eq!(checkpoint.size(), 20852163);
    assert_eq!(*checkpoint.root(), root());
    assert_eq!(checkpoint.to_string(), text);
    let with_ext = format!("{text}ext one\n");
    assert_eq!(Checkpoint::parse(&with_ext).unwrap().to_string(), with_ext);
}

#[test]
fn checkpoint_parse_is_strict() {
    let r = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
    let cases: &[(&str, usize, &str)] = &[
        ("o\n1\nROOT", 3, "text"),
        ("o\n1\n", 3, "text"),
        ("\n1\nROOT\n", 1, "origin"),
        ("o\n01\nROOT\n", 2, "tree size"),
        ("o\n-1\nROOT\n", 2, "tree size"),
        ("o\n+1\nROOT\n", 2, "tree size"),
        ("o\n18446744073709551616\nROOT\n", 2, "tree size"),
        (
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",
            3,
            "root hash",
        ),
        (
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=x\n",
            3,
            "root hash",
        ),
        ("o\n1\nAAAA\n", 3, "root hash"),
        ("o\n1\nROOT\n\n", 4, "extension"),
        ("o\n1\nROOT\next\n\n", 5, "extension"),
        ("o\r\n1\nROOT\n", 1, "origin"),
    ];
    for (text, line, field) in cases {
        let text = text.replace("ROOT", r);
        match Checkpoint::parse(&text) {
            Err(CheckpointError::Malformed {
                line: l, field: f, ..
            }) => {
                assert_eq!((l, f), (*line, *field), "{text:?}");
            }
            other => panic!("{text:?} gave {other:?}"),
        }
    }
    assert_eq!(
        Checkpoint::parse(&format!("o\n0\n{r}\n")).unwrap().size(),
        0
    );
}

#[test]
fn signed_checkpoint_round_trip_and_forgery() {
    let signer = Signer::from_seed("log.example/countersign", [1; 32]).unwrap();
    let verifier = signer.verifier();
    let checkpoint = Checkpoint::new("log.example/countersign", 5, root()).unwrap();
    let signed = SignedCheckpoint::sign(&checkpoint, &signer).unwrap();
    let opened =
        SignedCheckpoint::open(signed.as_bytes(), std::slice::from_ref(&verifier)).unwrap();
    assert_eq!(opened.checkpoint, checkpoint);

    // Forged: the body changed under the signature.
    let forged = signed.replacen("\n5\n", "\n6\n", 1);
    assert_eq!(
        SignedCheckpoint::open(forged.as_bytes(), std::slice::from_ref(&verifier)),
        Err(CheckpointError::Note(NoteError::InvalidSignature {
            name: verifier.name().into(),
            key_id: verifier.key_id()
        }))
    );
    // Forged: signed by another key with the log's name.
    let impostor = Signer::from_seed("log.example/countersign", [2; 32]).unwrap();
    let forged = SignedCheckpoint::sign(&checkpoint, &impostor).unwrap();
    assert!(matches!(
        SignedCheckpoint::open(forged.as_bytes(), std::slice::from_ref(&verifier)),
        Err(CheckpointError::Note(NoteError::UnknownKey { .. }))
    ));
    // Signed by a trusted key that is not the log's.
    let witness = Signer::from_seed("witness.example", [3; 32]).unwrap();
    let by_witness = SignedCheckpoint::sign(&checkpoint, &witness).unwrap();
    assert_eq!(
        SignedCheckpoint::open(by_witness.as_bytes(), &[witness.verifier()]),
        Err(CheckpointError::OriginMismatch {
            origin: "log.example/countersign".into(),
            signers: vec![format!("witness.example+{:08x}", witness.key_id())],
        })
    );
}
