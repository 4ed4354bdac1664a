//! SAML 2.0 service provider (samael with xmlsec): the tenant's SP metadata and keys (one
//! for signing, one for encryption), IdP metadata validation (single documents and
//! federation aggregates, selected by entity id), AuthnRequests over HTTP-Redirect signed
//! per SAML Bindings §3.4.4.1 whenever the SP metadata says `AuthnRequestsSigned="true"`,
//! and Responses over HTTP-POST verified against every signing certificate the IdP
//! publishes (so it can roll its certificate), with Destination, Recipient, Audience,
//! validity window, InResponseTo and assertion-id replay checked.
//!
//! What the SP metadata declares is what the SP does: `AuthnRequestsSigned` and
//! `WantAssertionsSigned` follow the connection's switches (both on by default), and an
//! EncryptedAssertion (XML Encryption 1.1: RSA-OAEP key transport, AES-CBC or AES-GCM) is
//! decrypted with the key whose certificate the metadata publishes for encryption.
//!
//! Before samael sees a response, a structural pre-check refuses what no legitimate IdP
//! sends and what signature-wrapping attacks need: a DOCTYPE, more than one assertion, no
//! signature at all.

use std::str::FromStr;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509NameBuilder, X509};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use samael::crypto::{CertificateDer, Crypto, CryptoProvider, ReduceMode};
use samael::metadata::{EntitiesDescriptor, EntityDescriptor, HTTP_REDIRECT_BINDING};
use samael::schema::{Assertion, NameIdPolicy};
use samael::service_provider::{Error as SpError, ServiceProvider};

use super::connections::{
    check_upstream_url, invalid, transport_error, Check, Connection, Deps, FederationError,
    UpstreamIdentity,
};
use crate::crypto;
use crate::provider::Provider;
pub use crate::storage::federation::SpKeyUse;
use crate::storage::{self, federation::SpKeyRow, Pool};
use crate::tenants::Tenant;

const SAML_ASSERTION_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:assertion";
const SAML_PROTOCOL_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:protocol";
const DSIG_NS: &[u8] = b"http://www.w3.org/2000/09/xmldsig#";
const XENC_NS: &[u8] = b"http://www.w3.org/2001/04/xmlenc#";
const XENC11_NS: &[u8] = b"http://www.w3.org/2009/xmlenc11#";
pub const NAME_ID_EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
pub const NAME_ID_PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
pub const NAME_ID_UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";
pub const NAME_ID_TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
/// The NameID formats this SP asks for, best first: a persistent pseudonym (stable and
/// never reassigned), then the e-mail address. A transient NameID changes on every sign-in
/// and cannot link an account; the unspecified format leaves the choice to the IdP.
pub const NAME_ID_FORMATS: [&str; 2] = [NAME_ID_PERSISTENT, NAME_ID_EMAIL];
/// Formats a connection may be pinned to.
pub const NAME_ID_CHOICES: [&str; 4] = [
    NAME_ID_PERSISTENT,
    NAME_ID_EMAIL,
    NAME_ID_UNSPECIFIED,
    NAME_ID_TRANSIENT,
];
/// XML signature algorithms accepted from IdPs (no SHA-1).
const ALLOWED_SIGNATURES: [samael::crypto::AllowedSignatureAlgorithm; 6] = [
    samael::crypto::AllowedSignatureAlgorithm::RsaSha256,
    samael::crypto::AllowedSignatureAlgorithm::RsaSha384,
    samael::crypto::AllowedSignatureAlgorithm::RsaSha512,
    samael::crypto::AllowedSignatureAlgorithm::EcdsaSha256,
    samael::crypto::AllowedSignatureAlgorithm::EcdsaSha384,
    samael::crypto::AllowedSignatureAlgorithm::EcdsaSha512,
];
/// Clock skew tolerated on NotBefore / NotOnOrAfter.
const CLOCK_SKEW_SECS: i64 = 60;
/// Largest SAMLResponse accepted (base64).
pub const MAX_RESPONSE: usize = 512 * 1024;
/// Deeper nesting, or more namespace declarations in scope at once, than any IdP sends:
/// the pre-check refuses them. quick-xml resolves every element name against the
/// declarations in scope, so a document that declares one on each of thousands of nested
/// levels costs quadratic time (found while fuzzing, fuzz/: quick-xml alone took 0.3 s to
/// read 384 KiB of it, what the ACS accepts).
const MAX_DEPTH: usize = 64;
const MAX_NAMESPACES_IN_SCOPE: usize = 64;

/// xmlsec leaves OpenSSL's per-thread error queue filled after a signature that does not
/// verify with one of several certificates; a later TLS handshake on the same thread (the
/// database connection) would read those errors as its own. Drains the queue.
fn clear_openssl_errors() {
    let _ = openssl::error::ErrorStack::get();
}

/// A validated IdP metadata document (the one IdP it describes, or the one chosen by
/// entity id from a federation aggregate).
pub struct IdpMetadata {
    pub entity_id: String,
    pub descriptor: EntityDescriptor,
    pub sso_url: String,
    pub want_signed_requests: bool,
    /// NameID formats the IdP says it supports (may be empty).
    pub name_id_formats: Vec<String>,
    pub certificates: Vec<X509>,
    /// The IdP's HTTP-Redirect SingleLogoutService, if it publishes one.
    pub slo: Option<samael::metadata::Endpoint>,
}

impl IdpMetadata {
    /// Parses and checks a metadata document: an EntityDescriptor with an IdP role, or an
    /// EntitiesDescriptor (aggregate) holding the IdP `entity_id` names (or exactly one
    /// IdP when `entity_id` is `None`); an HTTP-Redirect single sign-on endpoint and at
    /// least one signing certificate.
    pub fn parse(xml: &str, entity_id: Option<&str>) -> Result<Self, FederationError> {
        if xml.len() > super::connections::MAX_DOCUMENT {
            return Err(invalid("metadata is larger than 1 MiB"));
        }
        if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
            return Err(invalid("metadata must not contain a DOCTYPE"));
        }
        let not_metadata = |e: &dyn std::fmt::Display| {
            invalid(format!("metadata is not a SAML EntityDescriptor: {e}"))
        };
        let descriptors: Vec<EntityDescriptor> = if root_is(xml, b"EntitiesDescriptor") {
            let all = EntitiesDescriptor::from_str(xml).map_err(|e| not_metadata(&e))?;
            let root = samael::metadata::EntityDescriptorType::EntitiesDescriptor(all);
            root.iter().cloned().collect()
        } else {
            vec![EntityDescriptor::from_str(xml).map_err(|e| not_metadata(&e))?]
        };
        let idps: Vec<EntityDescriptor> = descriptors
            .into_iter()
            .filter(|d| {
                d.idp_sso_descriptors
                    .as_ref()
                    .is_some_and(|v| !v.is_empty())
            })
            .collect();
        let descriptor = match entity_id {
            Some(want) => idps
                .into_iter()
                .find(|d| d.entity_id.as_deref() == Some(want))
                .ok_or_else(|| {
                    invalid(format!(
                        "metadata has no identity provider with entity id {want:?}"
                    ))
                })?,
            None => {
                let n = idps.len();
                let mut idps = idps.into_iter();
                match (idps.next(), n) {
                    (None, _) => return Err(invalid("metadata has no IDPSSODescriptor")),
                    (Some(one), 1) => one,
                    (Some(_), n) => {
                        return Err(invalid(format!(
                            "metadata describes {n} identity providers: give idp_entity_id to choose one"
                        )))
                    }
                }
            }
        };
        let entity_id = descriptor
            .entity_id
            .clone()
            .filter(|e| !e.is_empty())
            .ok_or_else(|| invalid("metadata has no entityID"))?;
        let idps = descriptor
            .idp_sso_descriptors
            .as_deref()
            .unwrap_or_default();
        let sso_url = idps
            .iter()
            .flat_map(|d| d.single_sign_on_services.iter())
            .find(|e| e.binding == HTTP_REDIRECT_BINDING)
            .map(|e| e.location.clone())
            .ok_or_else(|| invalid("metadata has no HTTP-Redirect SingleSignOnService"))?;
        check_upstream_url("SingleSignOnService", &sso_url)?;
        let slo = idps
            .iter()
            .flat_map(|d| d.single_logout_services.iter())
            .find(|e| e.binding == HTTP_REDIRECT_BINDING)
            .cloned();
        if let Some(e) = &slo {
            check_upstream_url("SingleLogoutService", &e.location)?;
            if let Some(r) = &e.response_location {
                check_upstream_url("SingleLogoutService ResponseLocation", r)?;
            }
        }
        let want_signed_requests = idps
            .iter()
            .any(|d| d.want_authn_requests_signed == Some(true));
        let mut name_id_formats: Vec<String> = Vec::new();
        for f in idps.iter().flat_map(|d| d.name_id_formats.iter()) {
            let f = f.trim().to_string();
            if !f.is_empty() && !name_id_formats.contains(&f) {
                name_id_formats.push(f);
            }
        }
        let sp = ServiceProvider {
            idp_metadata: descriptor.clone(),
            ..ServiceProvider::default()
        };
        let ders = sp.idp_signing_certs();
        clear_openssl_errors();
        let ders = ders
            .map_err(|e| invalid(format!("metadata certificate is not valid: {e}")))?
            .unwrap_or_default();
        let mut certificates = Vec::new();
        for der in &ders {
            let cert = X509::from_der(der.der_data())
                .map_err(|_| invalid("metadata contains a certificate that does not parse"))?;
            certificates.push(cert);
        }
        if certificates.is_empty() {
            return Err(invalid(
                "metadata has no signing certificate: responses could not be verified",
            ));
        }
        Ok(Self {
            entity_id,
            descriptor,
            sso_url,
            want_signed_requests,
            name_id_formats,
            certificates,
            slo,
        })
    }

    /// The NameID format an AuthnRequest asks for: the connection's choice, else the best
    /// of ours the IdP lists; `None` (the IdP's default) when it lists none of them.
    pub fn negotiate_name_id(&self, pinned: Option<&str>) -> Option<String> {
        if let Some(p) = pinned {
            return Some(p.to_string());
        }
        NAME_ID_FORMATS
            .iter()
            .find(|f| self.name_id_formats.iter().any(|g| g == *f))
            .map(|f| f.to_string())
    }

    fn certificate_ders(&self) -> Vec<CertificateDer> {
        self.certificates
            .iter()
            .filter_map(|c| c.to_der().ok())
            .map(CertificateDer::from)
            .collect()
    }
}

/// Whether the document's root element has this local name.
fn root_is(xml: &str, local: &[u8]) -> bool {
    let mut reader = NsReader::from_str(xml);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => return e.local_name().as_ref() == local,
            Ok(Event::Eof) | Err(_) => return false,
            Ok(_) => continue,
        }
    }
}

/// Fetches an IdP metadata document (timeout and size limit of every outbound call).
pub async fn fetch_metadata(d: Deps<'_>, url: &str) -> Result<String, FederationError> {
    check_upstream_url("metadata_url", url)?;
    let http = d.outbound.client().map_err(FederationError::Unexpected)?;
    let mut resp = http.get(url).send().await.map_err(|e| {
        invalid(format!(
            "metadata_url could not be fetched: {}",
            transport_error(&e)
        ))
    })?;
    if !resp.status().is_success() {
        return Err(invalid(format!(
            "metadata_url answered HTTP {}",
            resp.status().as_u16()
        )));
    }
    let body = super::oidc::read_bounded(&mut resp)
        .await
        .map_err(|e| invalid(format!("metadata_url: {e}")))?;
    String::from_utf8(body).map_err(|_| invalid("metadata is not UTF-8 text"))
}

/// One of the tenant's SP key pairs, created on first use (every instance then reads the
/// same).
pub async fn sp_key(
    d: Deps<'_>,
    tenant: &Tenant,
    issuer: &str,
    purpose: SpKeyUse,
) -> Result<(PKey<Private>, X509), FederationError> {
    if let Some(row) = storage::federation::find_sp_key(d.pool, purpose, &tenant.id).await? {
        return open_sp_key(d, &row);
    }
    let issuer = issuer.to_string();
    let (key_der, cert_pem) = tokio::task::spawn_blocking(move || generate_sp_key(&issuer))
        .await
        .map_err(|e| FederationError::Unexpected(e.into()))?
        .map_err(|e| FederationError::Unexpected(e.into()))?;
    let row = SpKeyRow {
        tenant_id: tenant.id.clone(),
        private_key: d
            .master_key
            .seal(&key_der, tenant.id.as_bytes())
            .map_err(|e| FederationError::Unexpected(e.into()))?,
        certificate: cert_pem,
        created_at: storage::now(),
    };
    storage::federation::insert_sp_key(d.pool, purpose, &row).await?;
    let row = storage::federation::find_sp_key(d.pool, purpose, &tenant.id)
        .await?
        .ok_or_else(|| FederationError::Unexpected(anyhow::anyhow!("SP key vanished")))?;
    open_sp_key(d, &row)
}

fn open_sp_key(d: Deps<'_>, row: &SpKeyRow) -> Result<(PKey<Private>, X509), FederationError> {
    let der = d
        .master_key
        .open(&row.private_key, row.tenant_id.as_bytes())
        .map_err(|e| FederationError::Unexpected(e.into()))?;
    let key =
        PKey::private_key_from_der(&der).map_err(|e| FederationError::Unexpected(e.into()))?;
    let cert = X509::from_pem(row.certificate.as_bytes())
        .map_err(|e| FederationError::Unexpected(e.into()))?;
    Ok((key, cert))
}

/// RSA-2048 key and a self-signed certificate (10 years) naming the tenant's issuer.
fn generate_sp_key(issuer: &str) -> Result<(Vec<u8>, String), openssl::error::ErrorStack> {
    let rsa = Rsa::generate(2048)?;
    let key = PKey::from_rsa(rsa)?;
    let mut name = X509NameBuilder::new()?;
    let cn: String = issuer.chars().take(64).collect();
    name.append_entry_by_text("CN", &cn)?;
    let name = name.build();
    let mut builder = X509::builder()?;
    builder.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(&key)?;
    builder.set_not_before(&*Asn1Time::days_from_now(0)?)?;
    builder.set_not_after(&*Asn1Time::days_from_now(3650)?)?;
    builder.sign(&key, MessageDigest::sha256())?;
    let cert = builder.build();
    Ok((
        key.private_key_to_der()?,
        String::from_utf8_lossy(&cert.to_pem()?).into_owned(),
    ))
}

pub fn sp_entity_id(p: &Provider) -> String {
    p.endpoint("/saml/metadata")
}

pub fn acs_url(p: &Provider) -> String {
    p.endpoint("/saml/acs")
}

/// `{issuer}/saml/slo`: where IdPs send LogoutRequests and LogoutResponses.
pub fn slo_url(p: &Provider) -> String {
    p.endpoint("/saml/slo")
}

fn service_provider(
    p: &Provider,
    key: Option<PKey<Private>>,
    cert: Option<&X509>,
    idp: EntityDescriptor,
    allow_idp_initiated: bool,
) -> Result<ServiceProvider, FederationError> {
    let certificate = match cert {
        Some(c) => Some(CertificateDer::from(
            c.to_der()
                .map_err(|e| FederationError::Unexpected(e.into()))?,
        )),
        None => None,
    };
    Ok(ServiceProvider {
        entity_id: Some(sp_entity_id(p)),
        key,
        certificate,
        metadata_url: Some(sp_entity_id(p)),
        acs_url: Some(acs_url(p)),
        slo_url: None,
        idp_metadata: idp,
        authn_name_id_format: None,
        allow_idp_initiated,
        max_issue_delay: chrono::Duration::seconds(180),
        max_clock_skew: chrono::Duration::seconds(CLOCK_SKEW_SECS),
        allowed_signature_algorithms: Some(ALLOWED_SIGNATURES.to_vec()),
        ..ServiceProvider::default()
    })
}

/// `{issuer}/saml/metadata`: entity id, ACS (HTTP-POST), the signing and the encryption
/// certificates, NameID formats, and what the SP requires. With a connection, the document
/// that connection's IdP should load: its own switches (unsigned requests, unsigned
/// assertions accepted) and NameID format; without, the tenant's defaults (both signed).
pub async fn sp_metadata(
    d: Deps<'_>,
    p: &Provider,
    conn: Option<&Connection>,
) -> Result<String, FederationError> {
    let (_, signing) = sp_key(d, &p.tenant, &p.issuer, SpKeyUse::Signing).await?;
    let (_, encryption) = sp_key(d, &p.tenant, &p.issuer, SpKeyUse::Encryption).await?;
    let b64 = |c: &X509| -> Result<String, FederationError> {
        Ok(crypto::b64(
            &c.to_der()
                .map_err(|e| FederationError::Unexpected(e.into()))?,
        ))
    };
    let (signing, encryption) = (b64(&signing)?, b64(&encryption)?);
    let requests_signed = conn.is_none_or(|c| c.config.sign_authn_requests);
    let assertions_signed = conn.is_none_or(|c| c.config.want_assertions_signed);
    let formats: Vec<&str> = match conn.and_then(|c| c.config.name_id_format.as_deref()) {
        Some(f) => vec![f],
        None => NAME_ID_FORMATS.to_vec(),
    };
    let formats: String = formats
        .iter()
        .map(|f| format!("    <md:NameIDFormat>{}</md:NameIDFormat>\n", xml_escape(f)))
        .collect();
    // samael's metadata builder knows no encryption methods, so the document is assembled
    // from its parts (schema order: keys, SingleLogoutService, NameIDFormat, ACS).
    let entity = xml_escape(&sp_entity_id(p));
    let acs = xml_escape(&acs_url(p));
    let slo = xml_escape(&slo_url(p));
    Ok(format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}">
  <md:SPSSODescriptor AuthnRequestsSigned="{requests_signed}" WantAssertionsSigned="{assertions_signed}" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{signing}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>
    <md:KeyDescriptor use="encryption">
      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{encryption}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
      <md:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"/>
      <md:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes128-gcm"/>
      <md:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes256-cbc"/>
      <md:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
      <md:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#rsa-oaep"/>
      <md:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/>
    </md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{slo}"/>
{formats}    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#
    ))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The IdP metadata of a SAML connection, validated.
pub fn connection_metadata(conn: &Connection) -> Result<IdpMetadata, FederationError> {
    let xml = conn.metadata_xml.as_deref().ok_or_else(|| {
        FederationError::failed(
            "no_metadata",
            "Single sign-on is not available: the identity provider's metadata is missing.",
        )
    })?;
    IdpMetadata::parse(xml, conn.config.idp_entity_id.as_deref())
        .map_err(|e| FederationError::failed("bad_metadata", format!("{e}")))
}

/// The HTTP-Redirect URL of a new AuthnRequest and its ID (for InResponseTo).
pub async fn authn_request(
    d: Deps<'_>,
    p: &Provider,
    conn: &Connection,
    relay_state: &str,
) -> Result<(url::Url, String), FederationError> {
    let idp = connection_metadata(conn)?;
    let (key, cert) = sp_key(d, &p.tenant, &p.issuer, SpKeyUse::Signing).await?;
    let sp = service_provider(p, None, Some(&cert), idp.descriptor.clone(), false)?;
    let mut request = sp
        .make_authentication_request(&idp.sso_url)
        .map_err(|e| FederationError::Unexpected(anyhow::anyhow!(e.to_string())))?;
    // A 128-bit id (samael's default has 32 random bits); NCName, so it starts with a letter.
    request.id = format!("pc{}", crypto::hex(&crypto::random_bytes(16)));
    request.name_id_policy = Some(NameIdPolicy {
        format: idp.negotiate_name_id(conn.config.name_id_format.as_deref()),
        allow_create: Some(true),
        ..NameIdPolicy::default()
    });
    let id = request.id.clone();
    let xml = samael::traits::ToXml::to_string(&request)
        .map_err(|e| FederationError::Unexpected(anyhow::anyhow!(e.to_string())))?;
    // Signed (Bindings §3.4.4.1: SigAlg and Signature over the encoded query) exactly when
    // the metadata given to this IdP says AuthnRequestsSigned="true".
    let url = super::redirect::redirect_url(
        &idp.sso_url,
        super::redirect::Carrier::Request,
        &xml,
        Some(relay_state),
        conn.config.sign_authn_requests.then_some(&key),
    )?;
    Ok((url, id))
}

/// What the structural pre-check learnt about a response (or a decrypted assertion).
#[derive(Debug, Default)]
pub struct Shape {
    pub issuer: Option<String>,
    pub in_response_to: Option<String>,
    assertions: usize,
    signatures: usize,
    /// The assertion's ID and the Reference URI of the signature that is its direct child.
    assertion_id: Option<String>,
    assertion_signature_ref: Option<String>,
    /// The root's ID and the Reference URI of the signature that is its direct child.
    root_id: Option<String>,
    root_signature_ref: Option<String>,
    encrypted: Option<Encrypted>,
}

/// An EncryptedAssertion: where it is in the document and what decrypting it needs.
#[derive(Debug, Default)]
struct Encrypted {
    start: usize,
    end: usize,
    data_method: String,
    data_cipher: String,
    key_method: String,
    key_digest: Option<String>,
    key_mgf: Option<String>,
    key_cipher: String,
    /// The namespace declarations in scope at the EncryptedAssertion (`""` the default
    /// namespace): the plaintext is XML in that context (XML Encryption §4.5) and may use
    /// prefixes it does not declare itself.
    context_ns: Vec<(String, String)>,
}

impl Shape {
    pub fn is_encrypted(&self) -> bool {
        self.encrypted.is_some()
    }

    /// The assertion carries a signature whose reference is the assertion itself (the
    /// signature's validity is xmlsec's to check).
    fn assertion_signed(&self) -> bool {
        references(&self.assertion_id, &self.assertion_signature_ref)
    }

    /// The root (the Response) carries a signature whose reference is the root itself — not
    /// a signature lifted from elsewhere that covers some other element.
    fn root_signed(&self) -> bool {
        references(&self.root_id, &self.root_signature_ref)
    }
}

fn references(id: &Option<String>, reference: &Option<String>) -> bool {
    match (id, reference) {
        (Some(id), Some(r)) => r.strip_prefix('#') == Some(id.as_str()),
        _ => false,
    }
}

fn malformed() -> FederationError {
    FederationError::failed(
        "malformed",
        "The identity provider's response is not valid SAML.",
    )
}

/// Reads the response's structure without trusting it.
pub fn shape(xml: &str) -> Result<Shape, FederationError> {
    scan(xml, SAML_PROTOCOL_NS, b"Response")
}

/// Where a text node's content goes.
#[derive(Clone, Copy, PartialEq)]
enum TextOf {
    Nothing,
    Issuer,
    DataCipher,
    KeyCipher,
}

/// One pass over a document whose root must be `root_ns:root_local`: counts assertions and
/// signatures, finds the issuer, InResponseTo, the assertion's own signature, and the
/// parts of an EncryptedAssertion.
fn scan(xml: &str, root_ns: &[u8], root_local: &[u8]) -> Result<Shape, FederationError> {
    let mut reader = NsReader::from_str(xml);
    let mut shape = Shape::default();
    let mut stack: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut seen_root = false;
    let mut text_of = TextOf::Nothing;
    let mut enc: Option<Encrypted> = None;
    let mut in_encrypted = false;
    // The namespace declarations of each open element (parallel to `stack`).
    let mut declared: Vec<Vec<(String, String)>> = Vec::new();
    loop {
        let before = usize::try_from(reader.buffer_position()).map_err(|_| malformed())?;
        let (ns, event) = reader.read_resolved_event().map_err(|_| malformed())?;
        let ns: Vec<u8> = match ns {
            ResolveResult::Bound(n) => n.as_ref().to_vec(),
            _ => Vec::new(),
        };
        match event {
            Event::DocType(_) => {
                return Err(FederationError::failed(
                    "malformed",
                    "The response contains a DOCTYPE.",
                ))
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let opens = matches!(event, Event::Start(_));
                let local = e.local_name().as_ref().to_vec();
                let depth = stack.len();
                let attr = |name: &[u8]| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == name)
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                };
                let own_ns: Vec<(String, String)> = e
                    .attributes()
                    .flatten()
                    .filter_map(|a| {
                        let key = a.key.as_ref();
                        let prefix = if key == b"xmlns" {
                            String::new()
                        } else {
                            String::from_utf8_lossy(key.strip_prefix(b"xmlns:")?).into_owned()
                        };
                        Some((prefix, String::from_utf8_lossy(&a.value).into_owned()))
                    })
                    .collect();
                if depth >= MAX_DEPTH
                    || declared.iter().map(Vec::len).sum::<usize>() + own_ns.len()
                        > MAX_NAMESPACES_IN_SCOPE
                {
                    return Err(malformed());
                }
                let parent = |n: usize| stack.len().checked_sub(n).and_then(|i| stack.get(i));
                let is = |x: Option<&(Vec<u8>, Vec<u8>)>, ns: &[u8], l: &[u8]| {
                    x.is_some_and(|(a, b)| a == ns && b == l)
                };
                if depth == 0 {
                    if seen_root || ns != root_ns || local != root_local {
                        return Err(malformed());
                    }
                    seen_root = true;
                    shape.in_response_to = attr(b"InResponseTo");
                    shape.root_id = attr(b"ID");
                }
                let assertion_here = ns == SAML_ASSERTION_NS && local == b"Assertion";
                if ns == SAML_ASSERTION_NS && (assertion_here || local == b"EncryptedAssertion") {
                    shape.assertions += 1;
                    if assertion_here && shape.assertion_id.is_none() {
                        shape.assertion_id = attr(b"ID");
                    }
                    if !assertion_here && opens && enc.is_none() {
                        in_encrypted = true;
                        let mut context_ns: Vec<(String, String)> = Vec::new();
                        for (prefix, uri) in declared.iter().flatten().chain(&own_ns) {
                            context_ns.retain(|(p, _)| p != prefix);
                            context_ns.push((prefix.clone(), uri.clone()));
                        }
                        enc = Some(Encrypted {
                            start: before,
                            context_ns,
                            ..Encrypted::default()
                        });
                    }
                }
                if ns == DSIG_NS && local == b"Signature" {
                    shape.signatures += 1;
                }
                if ns == DSIG_NS
                    && local == b"Reference"
                    && stack.len() == 3
                    && is(parent(1), DSIG_NS, b"SignedInfo")
                    && is(parent(2), DSIG_NS, b"Signature")
                    && shape.root_signature_ref.is_none()
                {
                    shape.root_signature_ref = attr(b"URI");
                }
                if ns == DSIG_NS
                    && local == b"Reference"
                    && is(parent(1), DSIG_NS, b"SignedInfo")
                    && is(parent(2), DSIG_NS, b"Signature")
                    && is(parent(3), SAML_ASSERTION_NS, b"Assertion")
                    && shape.assertion_signature_ref.is_none()
                {
                    shape.assertion_signature_ref = attr(b"URI");
                }
                if let (true, Some(enc)) = (in_encrypted, enc.as_mut()) {
                    let under_key = is(parent(1), XENC_NS, b"EncryptedKey");
                    let under_data = is(parent(1), XENC_NS, b"EncryptedData");
                    if ns == XENC_NS && local == b"EncryptionMethod" {
                        let alg = attr(b"Algorithm").unwrap_or_default();
                        if under_data && enc.data_method.is_empty() {
                            enc.data_method = alg;
                        } else if under_key && enc.key_method.is_empty() {
                            enc.key_method = alg;
                        }
                    }
                    let in_key_method = is(parent(1), XENC_NS, b"EncryptionMethod")
                        && is(parent(2), XENC_NS, b"EncryptedKey");
                    if in_key_method && ns == DSIG_NS && local == b"DigestMethod" {
                        enc.key_digest = attr(b"Algorithm");
                    }
                    if in_key_method && ns == XENC11_NS && local == b"MGF" {
                        enc.key_mgf = attr(b"Algorithm");
                    }
                    if ns == XENC_NS
                        && local == b"CipherValue"
                        && is(parent(1), XENC_NS, b"CipherData")
                    {
                        if is(parent(2), XENC_NS, b"EncryptedData") && enc.data_cipher.is_empty() {
                            text_of = TextOf::DataCipher;
                        } else if is(parent(2), XENC_NS, b"EncryptedKey")
                            && enc.key_cipher.is_empty()
                        {
                            text_of = TextOf::KeyCipher;
                        }
                    }
                }
                if opens && depth == 1 && ns == SAML_ASSERTION_NS && local == b"Issuer" {
                    text_of = TextOf::Issuer;
                }
                if opens {
                    stack.push((ns, local));
                    declared.push(own_ns);
                } else {
                    text_of = TextOf::Nothing;
                }
            }
            Event::Text(t) if text_of != TextOf::Nothing => {
                let text = t.decode().map_err(|_| malformed())?;
                match (text_of, enc.as_mut()) {
                    (TextOf::Issuer, _) => shape.issuer = Some(text.trim().to_string()),
                    (TextOf::DataCipher, Some(e)) => e.data_cipher.push_str(&text),
                    (TextOf::KeyCipher, Some(e)) => e.key_cipher.push_str(&text),
                    _ => {}
                }
            }
            Event::End(_) => {
                let closed = stack.pop();
                declared.pop();
                text_of = TextOf::Nothing;
                if in_encrypted
                    && closed
                        .is_some_and(|(n, l)| n == SAML_ASSERTION_NS && l == b"EncryptedAssertion")
                {
                    in_encrypted = false;
                    if let Some(e) = enc.as_mut() {
                        e.end =
                            usize::try_from(reader.buffer_position()).map_err(|_| malformed())?;
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() || !seen_root {
        return Err(malformed());
    }
    shape.encrypted = enc;
    Ok(shape)
}

/// A verified assertion: who it names, and until when its id must be remembered.
pub struct Verified {
    pub identity: UpstreamIdentity,
    pub assertion_id: String,
    pub remember_until: i64,
}

/// Verifies every XML signature in `xml` against the IdP's certificates (xmlsec, allowed
/// algorithms only) and returns the document reduced to what they cover.
fn verify_signatures(idp: &IdpMetadata, xml: &str) -> Result<String, FederationError> {
    let reduced = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        &idp.certificate_ders(),
        ReduceMode::default(),
        Some(&ALLOWED_SIGNATURES),
    );
    clear_openssl_errors();
    reduced.map_err(|_| {
        FederationError::failed(
            "signature_invalid",
            "The response's signature does not verify against the identity provider's certificates.",
        )
    })
}

/// Verifies a Response (already decoded from base64) for this connection. `request_id`
/// is the outstanding AuthnRequest it must answer; `None` accepts an unsolicited response
/// (the caller checked that the connection allows IdP-initiated sign-in). An encrypted
/// assertion needs the SP's encryption key (`decryption_key`).
pub fn verify_response(
    p: &Provider,
    conn: &Connection,
    xml: &str,
    shape: &Shape,
    request_id: Option<&str>,
    decryption_key: Option<&PKey<Private>>,
) -> Result<Verified, FederationError> {
    match shape.assertions {
        0 => {
            return Err(FederationError::failed(
                "no_assertion",
                "The response carries no assertion.",
            ))
        }
        1 => {}
        _ => {
            return Err(FederationError::failed(
                "multiple_assertions",
                "The response carries several assertions (a signature-wrapping attempt?).",
            ))
        }
    }
    let idp = connection_metadata(conn)?;
    if shape.issuer.as_deref().is_some_and(|i| i != idp.entity_id) {
        return Err(FederationError::failed(
            "issuer_mismatch",
            "The response comes from another identity provider.",
        ));
    }
    if request_id.is_none() && shape.in_response_to.is_some() {
        return Err(FederationError::failed(
            "in_response_to_mismatch",
            "The response answers a sign-in that is not pending here.",
        ));
    }
    let unsigned = || FederationError::failed("unsigned", "The response is not signed.");
    let assertion_unsigned = || {
        FederationError::failed(
            "assertion_unsigned",
            "The assertion is not signed, and this connection requires signed assertions.",
        )
    };
    let ids: Option<Vec<&str>> = request_id.map(|r| vec![r]);
    let parsed = match &shape.encrypted {
        None => {
            if shape.signatures == 0 {
                return Err(unsigned());
            }
            if conn.config.want_assertions_signed && !shape.assertion_signed() {
                return Err(assertion_unsigned());
            }
            let sp = service_provider(p, None, None, idp.descriptor.clone(), request_id.is_none())?;
            let parsed = sp.parse_xml_response(xml, ids.as_deref());
            clear_openssl_errors();
            (parsed, xml.to_string())
        }
        Some(enc) => {
            // The Response's own signature covers the encrypted form; the assertion's, if
            // any, is inside and is checked once decrypted. One of them must be there, and
            // the assertion's when the connection wants signed assertions.
            if shape.signatures > 0 {
                verify_signatures(&idp, xml)?;
            }
            let key = decryption_key.ok_or_else(|| {
                FederationError::Unexpected(anyhow::anyhow!("no SP encryption key"))
            })?;
            let assertion_xml = in_context(&decrypt(enc, key)?, &enc.context_ns)?;
            let inner = scan(&assertion_xml, SAML_ASSERTION_NS, b"Assertion")?;
            if inner.assertions != 1 || inner.encrypted.is_some() {
                return Err(FederationError::failed(
                    "multiple_assertions",
                    "The response carries several assertions (a signature-wrapping attempt?).",
                ));
            }
            if inner.signatures > 0 {
                verify_signatures(&idp, &assertion_xml)?;
            }
            if !shape.root_signed() && !inner.assertion_signed() {
                return Err(unsigned());
            }
            if conn.config.want_assertions_signed && !inner.assertion_signed() {
                return Err(assertion_unsigned());
            }
            let (Some(head), Some(tail)) = (xml.get(..enc.start), xml.get(enc.end..)) else {
                return Err(malformed());
            };
            let plaintext = format!("{head}{assertion_xml}{tail}");
            // Every signature is verified above: samael checks the rest (destination,
            // status, InResponseTo, audience, recipient, validity) on the plaintext.
            let mut descriptor = idp.descriptor.clone();
            for d in descriptor.idp_sso_descriptors.iter_mut().flatten() {
                d.key_descriptors.clear();
            }
            let sp = service_provider(p, None, None, descriptor, request_id.is_none())?;
            let parsed = sp.parse_xml_response(&plaintext, ids.as_deref());
            clear_openssl_errors();
            (parsed, plaintext)
        }
    };
    let (parsed, verified_xml) = parsed;
    let assertion = parsed.map_err(|e| {
        let (reason, message) = reason(&e);
        tracing::info!(connection = %conn.id, reason, error = %e, "SAML response rejected");
        FederationError::failed(reason, message)
    })?;
    let remember_until = assertion
        .conditions
        .as_ref()
        .and_then(|c| c.not_on_or_after)
        .map(|t| t.timestamp())
        .unwrap_or_else(|| storage::now() + 3600)
        + CLOCK_SKEW_SECS;
    let mut identity = identity(conn, &idp.entity_id, &assertion)?;
    identity.saml_session = saml_session(conn, &assertion, &verified_xml);
    Ok(Verified {
        identity,
        assertion_id: assertion.id.clone(),
        remember_until,
    })
}

/// The decrypted assertion with the namespace declarations of its context that its root
/// does not make itself, so that it parses (and is checked) on its own. Bindings do not
/// change, and canonicalisation renders a declaration the same whether it is inherited or
/// written, so signatures verify as before (xmlsec1, and hence pysaml2, encrypts a node
/// without the declarations it inherits).
fn in_context(plaintext: &str, context: &[(String, String)]) -> Result<String, FederationError> {
    let mut reader = NsReader::from_str(plaintext);
    let (root_at, name_len, own): (usize, usize, Vec<Vec<u8>>) = loop {
        let at = usize::try_from(reader.buffer_position()).map_err(|_| malformed())?;
        match reader.read_event().map_err(|_| malformed())? {
            Event::Start(e) | Event::Empty(e) => {
                let own = e
                    .attributes()
                    .flatten()
                    .filter(|a| a.key.as_ref() == b"xmlns" || a.key.as_ref().starts_with(b"xmlns:"))
                    .map(|a| a.key.as_ref().to_vec())
                    .collect();
                break (at, e.name().as_ref().len(), own);
            }
            Event::Eof => return Err(malformed()),
            _ => {}
        }
    };
    let mut extra = String::new();
    for (prefix, uri) in context {
        let attr = if prefix.is_empty() {
            "xmlns".to_string()
        } else {
            format!("xmlns:{prefix}")
        };
        if !own.iter().any(|o| o == attr.as_bytes()) {
            extra.push_str(&format!(" {attr}=\"{}\"", xml_escape(uri)));
        }
    }
    // After `<` and the root's name.
    let split = root_at + 1 + name_len;
    match (plaintext.get(..split), plaintext.get(split..)) {
        (Some(head), Some(tail)) if plaintext.as_bytes().get(root_at) == Some(&b'<') => {
            Ok(format!("{head}{extra}{tail}"))
        }
        _ => Err(malformed()),
    }
}

/// XML Encryption of the assertion (XML Enc 1.1 §5.4, §5.5, §5.2): the content key by
/// RSA-OAEP (SHA-1 or SHA-2 digests and MGF1), the assertion by AES-CBC (XML Enc padding)
/// or AES-GCM. RSA PKCS#1 v1.5 key transport is refused (Bleichenbacher). Every failure
/// reads the same, so the answers are no decryption oracle.
fn decrypt(enc: &Encrypted, key: &PKey<Private>) -> Result<String, FederationError> {
    use openssl::encrypt::Decrypter;
    use openssl::rsa::Padding;
    use openssl::symm::{Cipher, Crypter, Mode};
    let failed = || {
        FederationError::failed(
            "decryption_failed",
            "The encrypted assertion could not be decrypted with this service provider's key.",
        )
    };
    let b64 = |s: &str| {
        let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        crypto::b64_decode(&compact)
    };
    let digest = |uri: Option<&str>| match uri {
        None | Some("http://www.w3.org/2000/09/xmldsig#sha1") => Some(MessageDigest::sha1()),
        Some("http://www.w3.org/2001/04/xmlenc#sha256") => Some(MessageDigest::sha256()),
        Some("http://www.w3.org/2001/04/xmldsig-more#sha384") => Some(MessageDigest::sha384()),
        Some("http://www.w3.org/2001/04/xmlenc#sha512") => Some(MessageDigest::sha512()),
        _ => None,
    };
    let mgf = |uri: Option<&str>| match uri {
        None | Some("http://www.w3.org/2009/xmlenc11#mgf1sha1") => Some(MessageDigest::sha1()),
        Some("http://www.w3.org/2009/xmlenc11#mgf1sha256") => Some(MessageDigest::sha256()),
        Some("http://www.w3.org/2009/xmlenc11#mgf1sha384") => Some(MessageDigest::sha384()),
        Some("http://www.w3.org/2009/xmlenc11#mgf1sha512") => Some(MessageDigest::sha512()),
        _ => None,
    };
    let (oaep_md, mgf_md) =
        match enc.key_method.as_str() {
            // §5.5.1: rsa-oaep-mgf1p always uses MGF1 with SHA-1.
            "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p" => (
                digest(enc.key_digest.as_deref()),
                Some(MessageDigest::sha1()),
            ),
            "http://www.w3.org/2009/xmlenc11#rsa-oaep" => (
                digest(enc.key_digest.as_deref()),
                mgf(enc.key_mgf.as_deref()),
            ),
            _ => return Err(FederationError::failed(
                "decryption_unsupported",
                "The assertion's key is encrypted with an algorithm this service provider refuses.",
            )),
        };
    let (Some(oaep_md), Some(mgf_md)) = (oaep_md, mgf_md) else {
        return Err(failed());
    };
    let wrapped = b64(&enc.key_cipher).ok_or_else(failed)?;
    let content_key = (|| -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let mut d = Decrypter::new(key)?;
        d.set_rsa_padding(Padding::PKCS1_OAEP)?;
        d.set_rsa_oaep_md(oaep_md)?;
        d.set_rsa_mgf1_md(mgf_md)?;
        let mut out = vec![0u8; d.decrypt_len(&wrapped)?];
        let n = d.decrypt(&wrapped, &mut out)?;
        out.truncate(n);
        Ok(out)
    })();
    clear_openssl_errors();
    let content_key = content_key.map_err(|_| failed())?;
    let (cipher, gcm) = match enc.data_method.as_str() {
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => (Cipher::aes_128_cbc(), false),
        "http://www.w3.org/2001/04/xmlenc#aes192-cbc" => (Cipher::aes_192_cbc(), false),
        "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => (Cipher::aes_256_cbc(), false),
        "http://www.w3.org/2009/xmlenc11#aes128-gcm" => (Cipher::aes_128_gcm(), true),
        "http://www.w3.org/2009/xmlenc11#aes192-gcm" => (Cipher::aes_192_gcm(), true),
        "http://www.w3.org/2009/xmlenc11#aes256-gcm" => (Cipher::aes_256_gcm(), true),
        _ => {
            return Err(FederationError::failed(
                "decryption_unsupported",
                "The assertion is encrypted with an algorithm this service provider refuses.",
            ))
        }
    };
    if content_key.len() != cipher.key_len() {
        return Err(failed());
    }
    let data = b64(&enc.data_cipher).ok_or_else(failed)?;
    let (iv_len, tag_len) = if gcm { (12, 16) } else { (16, 0) };
    if data.len() < iv_len + tag_len + 1 {
        return Err(failed());
    }
    let (iv, rest) = data.split_at(iv_len);
    let (body, tag) = rest.split_at(rest.len() - tag_len);
    let plain = (|| -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let mut c = Crypter::new(cipher, Mode::Decrypt, &content_key, Some(iv))?;
        c.pad(false);
        if gcm {
            c.set_tag(tag)?;
        }
        let mut out = vec![0u8; body.len() + cipher.block_size()];
        let mut n = c.update(body, &mut out)?;
        n += c.finalize(&mut out[n..])?;
        out.truncate(n);
        Ok(out)
    })();
    clear_openssl_errors();
    let mut plain = plain.map_err(|_| failed())?;
    if !gcm {
        // XML Enc §5.2.1 padding: the last octet says how many octets to drop (1..=16).
        let pad = usize::from(*plain.last().ok_or_else(failed)?);
        if pad == 0 || pad > 16 || pad > plain.len() {
            return Err(failed());
        }
        plain.truncate(plain.len() - pad);
    }
    let text = String::from_utf8(plain).map_err(|_| failed())?;
    // The assertion element alone: no XML declaration, nothing around it.
    let text = text.trim();
    let text = match text.strip_prefix("<?xml") {
        Some(rest) => rest
            .split_once("?>")
            .map(|(_, a)| a.trim())
            .ok_or_else(failed)?,
        None => text,
    };
    if text.contains("<!DOCTYPE") || text.contains("<!ENTITY") {
        return Err(malformed());
    }
    Ok(text.to_string())
}

fn reason(e: &SpError) -> (&'static str, &'static str) {
    match e {
        SpError::FailedToValidateSignature => (
            "signature_invalid",
            "The response's signature does not verify against the identity provider's certificates.",
        ),
        SpError::DestinationValidationError { .. } => (
            "destination_mismatch",
            "The response was addressed to another destination.",
        ),
        SpError::AssertionRecipientMismatch { .. } => (
            "recipient_mismatch",
            "The assertion was addressed to another recipient.",
        ),
        SpError::AssertionConditionAudienceRestrictionFailed { .. } => (
            "audience_mismatch",
            "The assertion is meant for another service provider.",
        ),
        SpError::AssertionExpired { .. }
        | SpError::AssertionConditionExpired { .. }
        | SpError::AssertionSubjectConfirmationExpired { .. }
        | SpError::ResponseExpired { .. } => ("expired", "The assertion has expired."),
        SpError::AssertionConditionExpiredBefore { .. }
        | SpError::AssertionSubjectConfirmationExpiredBefore { .. } => {
            ("not_yet_valid", "The assertion is not valid yet.")
        }
        SpError::AssertionInResponseToInvalid { .. } | SpError::ResponseInResponseToInvalid { .. } => (
            "in_response_to_mismatch",
            "The response does not answer this sign-in.",
        ),
        SpError::AssertionIssuerMismatch { .. } | SpError::ResponseIssuerMismatch { .. } => (
            "issuer_mismatch",
            "The response comes from another identity provider.",
        ),
        SpError::ResponseBadStatusCode { .. } => (
            "idp_error",
            "The identity provider did not sign you in.",
        ),
        _ => (
            "malformed",
            "The identity provider's response is not valid SAML.",
        ),
    }
}

fn identity(
    conn: &Connection,
    idp_entity_id: &str,
    a: &Assertion,
) -> Result<UpstreamIdentity, FederationError> {
    let name_id = a
        .subject
        .as_ref()
        .and_then(|s| s.name_id.as_ref())
        .filter(|n| !n.value.trim().is_empty())
        .ok_or_else(|| FederationError::failed("no_subject", "The assertion names no subject."))?;
    let attributes: Vec<&samael::attribute::Attribute> = a
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|s| s.attributes.iter())
        .collect();
    let values = |names: &[&str]| -> Vec<String> {
        for want in names {
            for attr in &attributes {
                if attr.name.as_deref() == Some(want) || attr.friendly_name.as_deref() == Some(want)
                {
                    return attr
                        .values
                        .iter()
                        .filter_map(|v| v.value.as_ref().map(|s| s.trim().to_string()))
                        .filter(|s| !s.is_empty())
                        .collect();
                }
            }
        }
        Vec::new()
    };
    let first = |names: &[&str]| values(names).into_iter().next();
    let email = match conn.mapping.email.as_deref() {
        Some(attr) => values(&[attr]).into_iter().next(),
        None => values(&[
            "email",
            "mail",
            "emailAddress",
            "urn:oid:0.9.2342.19200300.100.1.3",
        ])
        .into_iter()
        .next()
        .or_else(|| {
            (name_id.format.as_deref() == Some(NAME_ID_EMAIL))
                .then(|| name_id.value.trim().to_string())
        }),
    };
    let name = match conn.mapping.name.as_deref() {
        Some(attr) => values(&[attr]).into_iter().next(),
        None => values(&[
            "displayName",
            "name",
            "cn",
            "urn:oid:2.16.840.1.113730.3.1.241",
        ])
        .into_iter()
        .next(),
    };
    let groups = conn
        .mapping
        .roles
        .as_deref()
        .map(|attr| values(&[attr]))
        .unwrap_or_default();
    // An enterprise IdP vouches for addresses in the domains the tenant gave it.
    let email_verified = email.as_deref().is_some_and(|e| {
        e.rsplit_once('@')
            .is_some_and(|(_, d)| conn.domains.iter().any(|x| x.eq_ignore_ascii_case(d)))
    });
    Ok(UpstreamIdentity {
        issuer: idp_entity_id.to_string(),
        subject: name_id.value.trim().to_string(),
        email,
        email_verified,
        profile: crate::accounts::Profile {
            name,
            given_name: first(&["givenName", "given_name", "urn:oid:2.5.4.42"]),
            family_name: first(&["sn", "surname", "family_name", "urn:oid:2.5.4.4"]),
            preferred_username: first(&[
                "uid",
                "preferred_username",
                "urn:oid:0.9.2342.19200300.100.1.1",
            ]),
            picture: None,
            locale: first(&[
                "preferredLanguage",
                "locale",
                "urn:oid:2.16.840.1.113730.3.1.39",
            ]),
            zoneinfo: None,
        },
        groups,
        amr: Vec::new(),
        saml_session: None,
    })
}

/// The upstream session of a verified assertion, for Single Logout: its NameID as given
/// (with the qualifiers samael does not keep, read from the same verified document) and
/// the SessionIndex of its AuthnStatement.
fn saml_session(
    conn: &Connection,
    a: &Assertion,
    verified_xml: &str,
) -> Option<super::connections::SamlSession> {
    let name_id = a.subject.as_ref()?.name_id.as_ref()?;
    let parts = subject_name_id(verified_xml).filter(|n| n.value == name_id.value.trim());
    Some(super::connections::SamlSession {
        connection_id: conn.id.clone(),
        name_id: name_id.value.trim().to_string(),
        format: name_id.format.clone(),
        name_qualifier: parts.as_ref().and_then(|n| n.name_qualifier.clone()),
        sp_name_qualifier: parts.as_ref().and_then(|n| n.sp_name_qualifier.clone()),
        session_index: a
            .authn_statements
            .iter()
            .flatten()
            .find_map(|s| s.session_index.clone()),
    })
}

/// "Test connection" for a SAML IdP: metadata (fetched anew when it comes from a URL, and
/// stored when valid), certificates and their validity, the SSO endpoint's reachability.
pub async fn test(d: Deps<'_>, conn: &Connection) -> Result<Vec<Check>, FederationError> {
    let mut checks = Vec::new();
    let xml = match conn.config.metadata_url.as_deref() {
        Some(url) => match fetch_metadata(d, url).await {
            Ok(x) => {
                checks.push(Check {
                    name: "metadata_fetch",
                    ok: true,
                    detail: format!("{} bytes from {url}", x.len()),
                });
                Some(x)
            }
            Err(e) => {
                checks.push(Check {
                    name: "metadata_fetch",
                    ok: false,
                    detail: e.to_string(),
                });
                conn.metadata_xml.clone()
            }
        },
        None => conn.metadata_xml.clone(),
    };
    let Some(xml) = xml else {
        checks.push(Check {
            name: "metadata",
            ok: false,
            detail: "no metadata".into(),
        });
        return Ok(checks);
    };
    let idp = match IdpMetadata::parse(&xml, conn.config.idp_entity_id.as_deref()) {
        Ok(m) => m,
        Err(e) => {
            checks.push(Check {
                name: "metadata",
                ok: false,
                detail: e.to_string(),
            });
            return Ok(checks);
        }
    };
    checks.push(Check {
        name: "metadata",
        ok: true,
        detail: format!("entity id {}", idp.entity_id),
    });
    if conn.config.metadata_url.is_some() && conn.metadata_xml.as_deref() != Some(xml.as_str()) {
        storage::federation::update_metadata(d.pool, &conn.id, &xml, storage::now()).await?;
    }
    let now = Asn1Time::days_from_now(0).map_err(|e| FederationError::Unexpected(e.into()))?;
    let valid = idp
        .certificates
        .iter()
        .filter(|c| c.not_after() >= now && c.not_before() <= now)
        .count();
    checks.push(Check {
        name: "certificates",
        ok: valid > 0,
        detail: format!(
            "{} signing certificates, {valid} currently valid",
            idp.certificates.len()
        ),
    });
    let http = d.outbound.client().map_err(FederationError::Unexpected)?;
    let reachable = http.get(&idp.sso_url).send().await;
    checks.push(Check {
        name: "sso_endpoint",
        ok: reachable.is_ok(),
        detail: match reachable {
            Ok(r) => format!("{} answered HTTP {}", idp.sso_url, r.status().as_u16()),
            Err(e) => format!("{}: {}", idp.sso_url, transport_error(&e)),
        },
    });
    Ok(checks)
}

/// Remembers an accepted assertion id; false when it was accepted before (a replay).
pub async fn remember_assertion(
    pool: &Pool,
    conn: &Connection,
    verified: &Verified,
) -> Result<bool, sqlx::Error> {
    storage::federation::remember_assertion(
        pool,
        &conn.id,
        &verified.assertion_id,
        verified.remember_until,
    )
    .await
}

/// The enabled SAML connection of this tenant whose IdP has `entity_id`.
pub fn by_entity_id<'a>(connections: &'a [Connection], entity_id: &str) -> Option<&'a Connection> {
    connections.iter().find(|c| {
        c.enabled
            && c.protocol == super::connections::Protocol::Saml2
            && c.config.idp_entity_id.as_deref() == Some(entity_id)
    })
}

/// The five entities XML predefines (and character references); anything else is refused.
pub(super) fn predefined_entity(name: &[u8]) -> Option<char> {
    match name {
        b"amp" => Some('&'),
        b"lt" => Some('<'),
        b"gt" => Some('>'),
        b"quot" => Some('"'),
        b"apos" => Some('\''),
        [b'#', b'x', hex @ ..] => u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16)
            .ok()
            .and_then(char::from_u32),
        [b'#', dec @ ..] => std::str::from_utf8(dec)
            .ok()?
            .parse()
            .ok()
            .and_then(char::from_u32),
        _ => None,
    }
}

/// The NameID of the (single, verified) assertion's Subject in `xml`, with the qualifiers
/// samael does not keep.
pub fn subject_name_id(xml: &str) -> Option<NameIdParts> {
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut found: Option<NameIdParts> = None;
    loop {
        let (ns, event) = reader.read_resolved_event().ok()?;
        let in_ns = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == SAML_ASSERTION_NS);
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let opens = matches!(event, Event::Start(_));
                let local = if in_ns {
                    e.local_name().as_ref().to_vec()
                } else {
                    Vec::new()
                };
                // Only the Subject of the one Assertion (Response > Assertion > Subject):
                // nothing else in the document can lend the session its qualifiers.
                if found.is_none()
                    && local == b"NameID"
                    && stack.len() == 3
                    && stack[1] == b"Assertion"
                    && stack[2] == b"Subject"
                {
                    let attr = |name: &[u8]| {
                        e.attributes()
                            .flatten()
                            .find(|a| a.key.as_ref() == name)
                            .and_then(|a| {
                                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                    .ok()
                                    .map(|v| v.into_owned())
                            })
                    };
                    let parts = NameIdParts {
                        value: String::new(),
                        format: attr(b"Format"),
                        name_qualifier: attr(b"NameQualifier"),
                        sp_name_qualifier: attr(b"SPNameQualifier"),
                    };
                    if !opens {
                        return Some(parts);
                    }
                    found = Some(parts);
                }
                if opens {
                    stack.push(local);
                }
            }
            Event::Text(t) => {
                if let Some(f) = found.as_mut() {
                    f.value.push_str(&t.decode().ok()?);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(f) = found.as_mut() {
                    f.value.push(predefined_entity(&r)?);
                }
            }
            Event::End(_) => {
                if let Some(mut f) = found {
                    f.value = f.value.trim().to_string();
                    return Some(f);
                }
                stack.pop();
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// A NameID as the IdP gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameIdParts {
    pub value: String,
    pub format: Option<String>,
    pub name_qualifier: Option<String>,
    pub sp_name_qualifier: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use openssl::encrypt::Encrypter;
    use openssl::rsa::Padding;
    use openssl::symm::{encrypt, encrypt_aead, Cipher};

    fn metadata_with_formats(formats: &[&str]) -> IdpMetadata {
        IdpMetadata {
            entity_id: "https://idp.example".into(),
            descriptor: EntityDescriptor::default(),
            sso_url: "https://idp.example/sso".into(),
            want_signed_requests: false,
            name_id_formats: formats.iter().map(|f| f.to_string()).collect(),
            certificates: Vec::new(),
            slo: None,
        }
    }

    #[test]
    fn a_decrypted_assertion_gets_the_namespaces_of_its_context() {
        let context = vec![
            (
                "ns1".to_string(),
                "urn:oasis:names:tc:SAML:2.0:assertion".to_string(),
            ),
            (
                "ns2".to_string(),
                "http://www.w3.org/2000/09/xmldsig#".to_string(),
            ),
            ("".to_string(), "urn:default".to_string()),
        ];
        let bare = r#"<ns1:Assertion xmlns:ns2="urn:own" ID="a"><ns1:Issuer>i</ns1:Issuer></ns1:Assertion>"#;
        let fixed = in_context(bare, &context).unwrap();
        assert_eq!(
            fixed,
            r#"<ns1:Assertion xmlns:ns1="urn:oasis:names:tc:SAML:2.0:assertion" xmlns="urn:default" xmlns:ns2="urn:own" ID="a"><ns1:Issuer>i</ns1:Issuer></ns1:Assertion>"#
        );
        let shape = scan(&fixed, SAML_ASSERTION_NS, b"Assertion").unwrap();
        assert_eq!(shape.assertions, 1);
        assert!(in_context("no xml", &context).is_err());
    }

    #[test]
    fn the_name_id_format_is_the_best_one_both_sides_support() {
        let both = metadata_with_formats(&[NAME_ID_EMAIL, NAME_ID_PERSISTENT]);
        assert_eq!(
            both.negotiate_name_id(None).as_deref(),
            Some(NAME_ID_PERSISTENT)
        );
        let email = metadata_with_formats(&[NAME_ID_TRANSIENT, NAME_ID_EMAIL]);
        assert_eq!(
            email.negotiate_name_id(None).as_deref(),
            Some(NAME_ID_EMAIL)
        );
        // Nothing we want on offer: no format, the IdP decides.
        let transient = metadata_with_formats(&[NAME_ID_TRANSIENT]);
        assert_eq!(transient.negotiate_name_id(None), None);
        assert_eq!(metadata_with_formats(&[]).negotiate_name_id(None), None);
        // A connection's pinned choice wins.
        assert_eq!(
            both.negotiate_name_id(Some(NAME_ID_EMAIL)).as_deref(),
            Some(NAME_ID_EMAIL)
        );
    }

    const ASSERTION: &str = r##"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>https://idp.example</saml:Issuer></saml:Assertion>"##;

    fn key() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
    }

    fn wrap(key: &PKey<Private>, content_key: &[u8], md: MessageDigest) -> String {
        let mut e = Encrypter::new(key).unwrap();
        e.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
        e.set_rsa_oaep_md(md).unwrap();
        e.set_rsa_mgf1_md(MessageDigest::sha1()).unwrap();
        let mut out = vec![0; e.encrypt_len(content_key).unwrap()];
        let n = e.encrypt(content_key, &mut out).unwrap();
        out.truncate(n);
        crypto::b64(&out)
    }

    /// An EncryptedAssertion as enterprise IdPs send it, inside a Response.
    fn encrypted_response(key: &PKey<Private>, gcm: bool) -> String {
        let content_key = crypto::random_bytes(if gcm { 32 } else { 16 });
        let (method, cipher) = if gcm {
            let iv = crypto::random_bytes(12);
            let mut tag = [0u8; 16];
            let mut body = encrypt_aead(
                Cipher::aes_256_gcm(),
                &content_key,
                Some(&iv),
                &[],
                ASSERTION.as_bytes(),
                &mut tag,
            )
            .unwrap();
            body.extend_from_slice(&tag);
            let mut all = iv;
            all.extend(body);
            ("http://www.w3.org/2009/xmlenc11#aes256-gcm", all)
        } else {
            let iv = crypto::random_bytes(16);
            let body = encrypt(
                Cipher::aes_128_cbc(),
                &content_key,
                Some(&iv),
                ASSERTION.as_bytes(),
            )
            .unwrap();
            let mut all = iv;
            all.extend(body);
            ("http://www.w3.org/2001/04/xmlenc#aes128-cbc", all)
        };
        format!(
            r##"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" InResponseTo="pc1"><saml:Issuer>https://idp.example</saml:Issuer><saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Type="http://www.w3.org/2001/04/xmlenc#Element"><xenc:EncryptionMethod Algorithm="{method}"/><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#rsa-oaep"><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/></xenc:EncryptionMethod><xenc:CipherData><xenc:CipherValue>{wrapped}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>
{data}
</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></saml:EncryptedAssertion></samlp:Response>"##,
            wrapped = wrap(key, &content_key, MessageDigest::sha256()),
            data = crypto::b64(&cipher),
        )
    }

    #[test]
    fn an_encrypted_assertion_is_found_and_decrypted_with_gcm_and_cbc() {
        let key = key();
        for gcm in [true, false] {
            let xml = encrypted_response(&key, gcm);
            let shape = shape(&xml).unwrap();
            assert_eq!(shape.assertions, 1);
            assert_eq!(shape.in_response_to.as_deref(), Some("pc1"));
            assert_eq!(shape.issuer.as_deref(), Some("https://idp.example"));
            let enc = shape.encrypted.as_ref().unwrap();
            assert!(xml[enc.start..enc.end].starts_with("<saml:EncryptedAssertion>"));
            assert!(xml[enc.start..enc.end].ends_with("</saml:EncryptedAssertion>"));
            assert_eq!(decrypt(enc, &key).unwrap(), ASSERTION);
        }
    }

    #[test]
    fn a_wrong_key_or_tampered_ciphertext_fails_the_same_way_without_panicking() {
        let key = key();
        let xml = encrypted_response(&key, false);
        let shape = shape(&xml).unwrap();
        let enc = shape.encrypted.as_ref().unwrap();
        let reason = |r: Result<String, FederationError>| match r {
            Err(FederationError::Failed { reason, .. }) => reason,
            other => panic!("{:?}", other.map(|_| ())),
        };
        assert_eq!(reason(decrypt(enc, &self::key())), "decryption_failed");
        for data in ["", "AAAA", "!!!", &crypto::b64(&[0u8; 16])] {
            let bad = Encrypted {
                data_cipher: data.into(),
                data_method: enc.data_method.clone(),
                key_method: enc.key_method.clone(),
                key_digest: enc.key_digest.clone(),
                key_mgf: None,
                key_cipher: enc.key_cipher.clone(),
                start: 0,
                end: 0,
                context_ns: Vec::new(),
            };
            assert_eq!(reason(decrypt(&bad, &key)), "decryption_failed");
        }
        let v15 = Encrypted {
            key_method: "http://www.w3.org/2001/04/xmlenc#rsa-1_5".into(),
            ..Encrypted::default()
        };
        assert_eq!(reason(decrypt(&v15, &key)), "decryption_unsupported");
    }

    #[test]
    fn only_a_signature_referencing_the_assertion_counts_as_the_assertion_s_own() {
        let signed = |uri: &str| {
            format!(
                r##"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="_r"><saml:Assertion ID="_a"><saml:Issuer>x</saml:Issuer><ds:Signature><ds:SignedInfo><ds:Reference URI="{uri}"/></ds:SignedInfo></ds:Signature></saml:Assertion></samlp:Response>"##
            )
        };
        assert!(shape(&signed("#_a")).unwrap().assertion_signed());
        assert!(!shape(&signed("#_r")).unwrap().assertion_signed());
        assert!(!shape(&signed("#_a")).unwrap().root_signed());
        let root = r##"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="_r"><ds:Signature><ds:SignedInfo><ds:Reference URI="#_r"/></ds:SignedInfo></ds:Signature></samlp:Response>"##;
        assert!(shape(root).unwrap().root_signed());
        let lifted = root.replace("URI=\"#_r\"", "URI=\"#_other\"");
        assert!(!shape(&lifted).unwrap().root_signed());
        assert!(!shape(&signed("")).unwrap().assertion_signed());
        assert!(shape(&signed("#_a")).unwrap().encrypted.is_none());
    }

    #[test]
    fn nesting_or_namespaces_beyond_what_any_idp_sends_are_refused() {
        let nested = |levels: usize, decls: &str| {
            format!(
                r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r">{}{}</samlp:Response>"#,
                format!("<e{decls}>").repeat(levels),
                "</e>".repeat(levels)
            )
        };
        let malformed = |xml: &str| {
            matches!(
                shape(xml),
                Err(FederationError::Failed {
                    reason: "malformed",
                    ..
                })
            )
        };
        assert!(shape(&nested(MAX_DEPTH - 1, "")).is_ok());
        assert!(malformed(&nested(MAX_DEPTH, "")));
        // The input found while fuzzing (quadratic time before the limit): a declaration on
        // every one of thousands of nested levels.
        assert!(malformed(&nested(20_000, " xmlns:p='x'")));
        // Shallow, but more declarations in scope than any IdP makes (the root has one).
        let decls = |n: usize| -> String { (0..n).map(|i| format!(" xmlns:p{i}='x'")).collect() };
        assert!(shape(&nested(1, &decls(MAX_NAMESPACES_IN_SCOPE - 1))).is_ok());
        assert!(malformed(&nested(1, &decls(MAX_NAMESPACES_IN_SCOPE))));
    }

    #[test]
    fn the_subject_name_id_keeps_its_qualifiers() {
        let xml = r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"><saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"><saml:Issuer>i</saml:Issuer><saml:Subject><saml:NameID SPNameQualifier="https://sp" NameQualifier="https://idp" Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">_abc</saml:NameID></saml:Subject></saml:Assertion></samlp:Response>"#;
        let n = subject_name_id(xml).unwrap();
        assert_eq!(n.value, "_abc");
        assert_eq!(n.name_qualifier.as_deref(), Some("https://idp"));
        assert_eq!(n.sp_name_qualifier.as_deref(), Some("https://sp"));
        assert!(subject_name_id("<x/>").is_none());
        // Attribute values are unescaped; a Subject outside the Assertion lends nothing.
        let escaped = xml.replace("https://idp", "https://idp?a=1&amp;b=2");
        assert_eq!(
            subject_name_id(&escaped).unwrap().name_qualifier.as_deref(),
            Some("https://idp?a=1&b=2")
        );
        let planted = xml.replace(
            "<saml:Assertion",
            r#"<samlp:Extensions><saml:Subject xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"><saml:NameID NameQualifier="evil">_abc</saml:NameID></saml:Subject></samlp:Extensions><saml:Assertion"#,
        );
        assert_eq!(
            subject_name_id(&planted).unwrap().name_qualifier.as_deref(),
            Some("https://idp")
        );
    }
}
