//! The structural pre-check of a SAML Response (`saml::shape`, run on every POST to the
//! ACS before any signature is checked), on arbitrary text, and the NameID reader
//! (`saml::subject_name_id`) on what the pre-check lets through (in the ACS it reads only
//! documents that passed it and then verified).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::federation::saml;

fuzz_target!(|data: &[u8]| {
    let xml = String::from_utf8_lossy(data);
    if let Ok(shape) = saml::shape(&xml) {
        let _ = shape.is_encrypted();
        let _ = saml::subject_name_id(&xml);
    }
});
