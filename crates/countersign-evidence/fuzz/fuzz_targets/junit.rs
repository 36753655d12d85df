//! The streaming JUnit reader on arbitrary bytes.
#![no_main]

use countersign_evidence::report::junit;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = junit::read("fuzz.xml", data, |_| {});
});
