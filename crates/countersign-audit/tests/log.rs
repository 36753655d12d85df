//! Whole-log verification: edits, deletions, reorderings and truncations are each named.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use countersign_audit::checkpoint::Checkpoint;
use countersign_audit::log::{LogError, VerifiedLog, verify_log};
use countersign_audit::merkle::{MemoryStore, leaf_hash, stored_hash_index, tree_hash};

fn entries(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{{\"entry\":{i}}}").into_bytes())
        .collect()
}

fn log(n: usize) -> (Vec<Vec<u8>>, MemoryStore, Checkpoint) {
    let entries = entries(n);
    let mut store = MemoryStore::new();
    for entry in &entries {
        store.append(entry).unwrap();
    }
    let checkpoint = Checkpoint::new(
        "log.example",
        n as u64,
        tree_hash(n as u64, &store).unwrap(),
    )
    .unwrap();
    (entries, store, checkpoint)
}

/// The outcome as a short string, so cases read as a table.
fn check(entries: &[Vec<u8>], checkpoint: &Checkpoint, store: &MemoryStore) -> String {
    match verify_log(entries, checkpoint, store) {
        Ok(VerifiedLog {
            size,
            beyond_checkpoint,
        }) => format!("ok {size} +{beyond_checkpoint}"),
        Err(LogError::Altered { index }) => format!("altered {index}"),
        Err(LogError::Missing { index, .. }) => format!("missing {index}"),
        Err(LogError::AlteredRange { start, end }) => format!("altered {start}..{end}"),
        Err(LogError::RootMismatch { .. }) => "root mismatch".into(),
        Err(e) => format!("error {e}"),
    }
}

#[test]
fn intact_logs_verify() {
    for n in [0, 1, 2, 3, 7, 8, 100] {
        let (entries, store, checkpoint) = log(n);
        assert_eq!(check(&entries, &checkpoint, &store), format!("ok {n} +0"));
    }
    // Entries appended after the checkpoint are reported, not checked.
    let (mut entries, store, checkpoint) = log(10);
    entries.push(b"later".to_vec());
    assert_eq!(check(&entries, &checkpoint, &store), "ok 10 +1");
}

#[test]
fn tampering_is_located() {
    let (entries, store, checkpoint) = log(100);
    type Tamper = Box<dyn Fn(&mut Vec<Vec<u8>>)>;
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "edit",
            Box::new(|e| e[37] = b"{\"entry\":\"forged\"}".to_vec()),
            "altered 37",
        ),
        ("edit first", Box::new(|e| e[0].push(b' ')), "altered 0"),
        ("edit last", Box::new(|e| e[99].clear()), "altered 99"),
        ("delete", Box::new(|e| drop(e.remove(64))), "altered 64"),
        ("delete last", Box::new(|e| drop(e.pop())), "missing 99"),
        ("truncate", Box::new(|e| e.truncate(50)), "missing 50"),
        ("swap", Box::new(|e| e.swap(10, 90)), "altered 10"),
        (
            "insert",
            Box::new(|e| e.insert(5, b"{}".to_vec())),
            "altered 5",
        ),
        (
            "two edits",
            Box::new(|e| {
                e[80].push(b'!');
                e[20].push(b'!');
            }),
            "altered 20",
        ),
    ];
    for (name, tamper, expected) in cases {
        let mut tampered = entries.clone();
        tamper(&mut tampered);
        assert_eq!(check(&tampered, &checkpoint, &store), expected, "{name}");
    }
}

#[test]
fn rewritten_hashes_are_not_trusted() {
    let (mut entries, mut store, checkpoint) = log(16);
    entries[3] = b"forged".to_vec();
    // The forger also rewrote the leaf hash: the map below that subtree no longer adds up.
    let index = stored_hash_index(0, 3) as usize;
    store.stored_mut()[index] = leaf_hash(b"forged");
    assert_eq!(check(&entries, &checkpoint, &store), "altered 2..4");

    // Rewrote every stored hash consistently: the stored head no longer matches the checkpoint.
    let mut rebuilt = MemoryStore::new();
    for entry in &entries {
        rebuilt.append(entry).unwrap();
    }
    assert_eq!(check(&entries, &checkpoint, &rebuilt), "root mismatch");
}
