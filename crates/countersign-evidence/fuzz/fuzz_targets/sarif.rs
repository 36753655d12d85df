//! The streaming SARIF reader on arbitrary bytes.
#![no_main]

use countersign_evidence::report::sarif;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sarif::read("fuzz.sarif", data, |_| {});
});
