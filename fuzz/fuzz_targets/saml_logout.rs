//! The LogoutRequest / LogoutResponse parser of the SLO endpoint (`slo::parse_logout`), on
//! arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::federation::slo;

fuzz_target!(|data: &[u8]| {
    let xml = String::from_utf8_lossy(data);
    let _ = slo::parse_logout(&xml);
});
