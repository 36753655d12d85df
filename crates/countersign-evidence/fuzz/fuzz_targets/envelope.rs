//! Envelope parse and verify: any bytes give acceptance or a refusal, never a panic.
#![no_main]

use std::collections::BTreeSet;

use countersign_evidence::dsse::SigningKey;
use countersign_evidence::{Expected, TrustedRunner, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let runners = [TrustedRunner {
        name: "fuzz".to_owned(),
        key: SigningKey::from_seed(&[1; 32]).public_key().clone(),
        suites: BTreeSet::from(["unit".to_owned()]),
        vex: false,
    }];
    let expected = Expected {
        repository: "github.com/acme/shop",
        commit: "d20ace7968ba43c0219f62d71334c1095bab1602",
        max_bytes: 1 << 20,
    };
    let _ = verify(data, &runners, &expected);
});
