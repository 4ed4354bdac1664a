//! What `GET {issuer}/saml/slo` does with its raw query string before it needs the
//! database: the HTTP-Redirect binding's decoding (`redirect::decode_redirect`: parameters,
//! URL and base64 decoding, bounded DEFLATE) and then `slo::parse_logout`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::federation::{redirect, slo};

fuzz_target!(|data: &[u8]| {
    let query = String::from_utf8_lossy(data);
    if let Ok(received) = redirect::decode_redirect(&query) {
        let _ = slo::parse_logout(&received.xml);
    }
});
