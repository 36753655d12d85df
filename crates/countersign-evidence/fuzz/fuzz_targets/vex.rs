//! The VEX reader (OpenVEX and CycloneDX) and the product check on arbitrary bytes.
#![no_main]

use countersign_evidence::report::vex;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = vex::parse("fuzz.json", data) {
        let _ = doc.check_products("fuzz.json", |p| p.starts_with("pkg:"));
    }
});
