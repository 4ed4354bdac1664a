//! The ACS path after base64: `saml::shape`, then `saml::verify_response` (samael, xmlsec
//! and libxml2 for signatures and the schema, the decryption of an EncryptedAssertion, the
//! validity checks) for a fixed SAML connection, built once: the IdP's metadata publishes
//! `keys/idp-signing.crt`, the SP decrypts with `keys/sp-encryption.key` (throwaway keys:
//! the seeds in `corpus/saml_response` are signed and encrypted with them by
//! `make_seeds.sh`, so mutations start past the signature and the decryption). Nothing
//! may panic, hang or grow without bound; failing verification is the expected outcome.
//!
//! `PORTCULLIS_FUZZ_DEBUG=1` prints each input's outcome to stderr (to check the seeds).
#![no_main]

use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use openssl::pkey::{PKey, Private};
use portcullis::crypto::MasterKey;
use portcullis::federation::connections::Connection;
use portcullis::federation::saml;
use portcullis::keys::KeySet;
use portcullis::provider::Provider;
use portcullis::storage::federation::ConnectionRow;
use portcullis::tenants::{Tenant, TenantSettings};

/// Must match make_seeds.sh.
const IDP_ENTITY_ID: &str = "https://idp.fuzz.example/metadata";
const SP_ISSUER: &str = "https://sp.fuzz.example/t/fuzz";
/// The AuthnRequest a solicited response answers (its InResponseTo).
const REQUEST_ID: &str = "pc1";

struct Fixture {
    provider: Provider,
    /// The connection's defaults (signed assertions required), and one that accepts an
    /// assertion covered only by the Response's signature.
    strict: Connection,
    lenient: Connection,
    decryption_key: PKey<Private>,
    debug: bool,
}

fn connection(id: &str, want_assertions_signed: bool) -> Connection {
    let cert: String = include_str!("../keys/idp-signing.crt")
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let metadata = format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{IDP_ENTITY_ID}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAuthnRequestsSigned="true">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.fuzz.example/slo"/>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.fuzz.example/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#
    );
    let config = format!(
        r#"{{"idp_entity_id":"{IDP_ENTITY_ID}","allow_idp_initiated":true,"want_assertions_signed":{want_assertions_signed}}}"#
    );
    let conn = Connection::from_row(ConnectionRow {
        id: id.into(),
        tenant_id: "t_fuzz".into(),
        name: "Fuzz IdP".into(),
        protocol: "saml2".into(),
        provider: None,
        config,
        client_secret: None,
        metadata_xml: Some(metadata),
        metadata_fetched_at: None,
        domains: r#"["fuzz.example"]"#.into(),
        attribute_mapping: "{}".into(),
        enabled: true,
        created_at: 0,
        updated_at: 0,
    })
    .expect("a saml2 connection row");
    // A fixture whose metadata did not parse would only ever test that error.
    saml::connection_metadata(&conn).expect("the fuzz IdP metadata is valid");
    conn
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture {
        provider: Provider {
            tenant: Tenant {
                id: "t_fuzz".into(),
                slug: "fuzz".into(),
                name: "Fuzz".into(),
                settings: TenantSettings::default(),
                version: 0,
            },
            issuer: SP_ISSUER.into(),
            keys: KeySet::load(&MasterKey::generate(), &[]).expect("an empty key set"),
            discovery: Vec::new(),
            loaded_at: Instant::now(),
        },
        strict: connection("c_strict", true),
        lenient: connection("c_lenient", false),
        decryption_key: PKey::private_key_from_pem(include_bytes!("../keys/sp-encryption.key"))
            .expect("keys/sp-encryption.key"),
        debug: std::env::var_os("PORTCULLIS_FUZZ_DEBUG").is_some(),
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    // The ACS refuses what is not UTF-8 before any parsing.
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    let shape = match saml::shape(xml) {
        Ok(s) => s,
        Err(e) => {
            if f.debug {
                eprintln!("shape: {e:?}");
            }
            return;
        }
    };
    // As the ACS does: a response that names a request answers our pending one (the
    // mutated InResponseTo then fails samael's check); one that names none is unsolicited.
    let request_id = shape.in_response_to.as_ref().map(|_| REQUEST_ID);
    // Both connection settings, chosen by the input (deterministically).
    let conn = if data.len() % 2 == 0 {
        &f.strict
    } else {
        &f.lenient
    };
    let key = shape.is_encrypted().then_some(&f.decryption_key);
    let outcome = saml::verify_response(&f.provider, conn, xml, &shape, request_id, key);
    if f.debug {
        match outcome {
            Ok(v) => eprintln!("{}: verified {:?}", conn.id, v.identity.subject),
            Err(e) => eprintln!("{}: {e:?}", conn.id),
        }
    }
});
