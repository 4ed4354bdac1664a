//! SAML 2.0 service provider (samael with xmlsec): the tenant's SP metadata and key,
//! IdP metadata validation, AuthnRequests over HTTP-Redirect (signed when the IdP wants
//! it), and Responses over HTTP-POST verified against every signing certificate the IdP
//! publishes (so it can roll its certificate), with Destination, Recipient, Audience,
//! validity window, InResponseTo and assertion-id replay checked.
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
use samael::crypto::CertificateDer;
use samael::metadata::{EntityDescriptor, HTTP_REDIRECT_BINDING};
use samael::schema::Assertion;
use samael::service_provider::{Error as SpError, ServiceProvider};

use super::{
    check_upstream_url, invalid, transport_error, Check, Connection, FederationError,
    UpstreamIdentity,
};
use crate::crypto;
use crate::provider::Provider;
use crate::state::AppState;
use crate::storage::{self, federation::SpKeyRow};
use crate::tenants::Tenant;

const SAML_ASSERTION_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:assertion";
const SAML_PROTOCOL_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:protocol";
const DSIG_NS: &[u8] = b"http://www.w3.org/2000/09/xmldsig#";
const EMAIL_FORMAT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
/// Clock skew tolerated on NotBefore / NotOnOrAfter.
const CLOCK_SKEW_SECS: i64 = 60;
/// Largest SAMLResponse accepted (base64).
pub const MAX_RESPONSE: usize = 512 * 1024;

/// xmlsec leaves OpenSSL's per-thread error queue filled after a signature that does not
/// verify with one of several certificates; a later TLS handshake on the same thread (the
/// database connection) would read those errors as its own. Drains the queue.
fn clear_openssl_errors() {
    let _ = openssl::error::ErrorStack::get();
}

/// A validated IdP metadata document.
pub struct IdpMetadata {
    pub entity_id: String,
    pub descriptor: EntityDescriptor,
    pub sso_url: String,
    pub want_signed_requests: bool,
    pub certificates: Vec<X509>,
}

impl IdpMetadata {
    /// Parses and checks a metadata document: one EntityDescriptor with an IdP role, an
    /// HTTP-Redirect single sign-on endpoint and at least one signing certificate.
    pub fn parse(xml: &str) -> Result<Self, FederationError> {
        if xml.len() > super::MAX_DOCUMENT {
            return Err(invalid("metadata is larger than 1 MiB"));
        }
        if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
            return Err(invalid("metadata must not contain a DOCTYPE"));
        }
        let descriptor = EntityDescriptor::from_str(xml)
            .map_err(|e| invalid(format!("metadata is not a SAML EntityDescriptor: {e}")))?;
        let entity_id = descriptor
            .entity_id
            .clone()
            .filter(|e| !e.is_empty())
            .ok_or_else(|| invalid("metadata has no entityID"))?;
        let idps = descriptor
            .idp_sso_descriptors
            .as_ref()
            .filter(|d| !d.is_empty())
            .ok_or_else(|| invalid("metadata has no IDPSSODescriptor"))?;
        let sso_url = idps
            .iter()
            .flat_map(|d| d.single_sign_on_services.iter())
            .find(|e| e.binding == HTTP_REDIRECT_BINDING)
            .map(|e| e.location.clone())
            .ok_or_else(|| invalid("metadata has no HTTP-Redirect SingleSignOnService"))?;
        check_upstream_url("SingleSignOnService", &sso_url)?;
        let want_signed_requests = idps
            .iter()
            .any(|d| d.want_authn_requests_signed == Some(true));
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
            certificates,
        })
    }
}

/// Fetches an IdP metadata document (timeout and size limit of every outbound call).
pub async fn fetch_metadata(state: &AppState, url: &str) -> Result<String, FederationError> {
    check_upstream_url("metadata_url", url)?;
    let http = state.http().map_err(FederationError::Unexpected)?;
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

/// The tenant's SP key pair, created on first use (every instance then reads the same).
pub async fn sp_credentials(
    state: &AppState,
    tenant: &Tenant,
    issuer: &str,
) -> Result<(PKey<Private>, X509), FederationError> {
    if let Some(row) = storage::federation::find_sp_key(&state.pool, &tenant.id).await? {
        return open_sp_key(state, &row);
    }
    let issuer = issuer.to_string();
    let (key_der, cert_pem) = tokio::task::spawn_blocking(move || generate_sp_key(&issuer))
        .await
        .map_err(|e| FederationError::Unexpected(e.into()))?
        .map_err(|e| FederationError::Unexpected(e.into()))?;
    let row = SpKeyRow {
        tenant_id: tenant.id.clone(),
        private_key: state
            .master_key
            .seal(&key_der, tenant.id.as_bytes())
            .map_err(|e| FederationError::Unexpected(e.into()))?,
        certificate: cert_pem,
        created_at: storage::now(),
    };
    storage::federation::insert_sp_key(&state.pool, &row).await?;
    let row = storage::federation::find_sp_key(&state.pool, &tenant.id)
        .await?
        .ok_or_else(|| FederationError::Unexpected(anyhow::anyhow!("SP key vanished")))?;
    open_sp_key(state, &row)
}

fn open_sp_key(state: &AppState, row: &SpKeyRow) -> Result<(PKey<Private>, X509), FederationError> {
    let der = state
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
        allowed_signature_algorithms: Some(vec![
            samael::crypto::AllowedSignatureAlgorithm::RsaSha256,
            samael::crypto::AllowedSignatureAlgorithm::RsaSha384,
            samael::crypto::AllowedSignatureAlgorithm::RsaSha512,
            samael::crypto::AllowedSignatureAlgorithm::EcdsaSha256,
            samael::crypto::AllowedSignatureAlgorithm::EcdsaSha384,
            samael::crypto::AllowedSignatureAlgorithm::EcdsaSha512,
        ]),
        ..ServiceProvider::default()
    })
}

/// `{issuer}/saml/metadata`: entity id, ACS (HTTP-POST), signing certificate.
pub async fn sp_metadata(state: &AppState, p: &Provider) -> Result<String, FederationError> {
    let (_, cert) = sp_credentials(state, &p.tenant, &p.issuer).await?;
    let der = cert
        .to_der()
        .map_err(|e| FederationError::Unexpected(e.into()))?;
    // samael's metadata builder insists on a logout endpoint; this SP has none, so the
    // document is assembled from its parts.
    let b64 = crypto::b64(&der);
    let entity = xml_escape(&sp_entity_id(p));
    let acs = xml_escape(&acs_url(p));
    Ok(format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}">
  <md:SPSSODescriptor AuthnRequestsSigned="true" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}" index="0" isDefault="true"/>
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

fn idp_metadata(conn: &Connection) -> Result<IdpMetadata, FederationError> {
    let xml = conn.metadata_xml.as_deref().ok_or_else(|| {
        FederationError::failed(
            "no_metadata",
            "Single sign-on is not available: the identity provider's metadata is missing.",
        )
    })?;
    IdpMetadata::parse(xml).map_err(|e| FederationError::failed("bad_metadata", format!("{e}")))
}

/// The HTTP-Redirect URL of a new AuthnRequest and its ID (for InResponseTo).
pub async fn authn_request(
    state: &AppState,
    p: &Provider,
    conn: &Connection,
    relay_state: &str,
) -> Result<(url::Url, String), FederationError> {
    let idp = idp_metadata(conn)?;
    let (key, cert) = sp_credentials(state, &p.tenant, &p.issuer).await?;
    let sp = service_provider(p, None, Some(&cert), idp.descriptor.clone(), false)?;
    let mut request = sp
        .make_authentication_request(&idp.sso_url)
        .map_err(|e| FederationError::Unexpected(anyhow::anyhow!(e.to_string())))?;
    // A 128-bit id (samael's default has 32 random bits); NCName, so it starts with a letter.
    request.id = format!("pc{}", crypto::hex(&crypto::random_bytes(16)));
    let id = request.id.clone();
    let url = if idp.want_signed_requests {
        request.signed_redirect(relay_state, &key)
    } else {
        request.redirect(relay_state)
    };
    clear_openssl_errors();
    let url = url
        .map_err(|e| FederationError::Unexpected(anyhow::anyhow!(e.to_string())))?
        .ok_or_else(|| {
            FederationError::Unexpected(anyhow::anyhow!("AuthnRequest without destination"))
        })?;
    Ok((url, id))
}

/// What the structural pre-check learnt about a response.
#[derive(Debug, Default)]
pub struct Shape {
    pub issuer: Option<String>,
    pub in_response_to: Option<String>,
    assertions: usize,
    signatures: usize,
}

/// Reads the response's structure without trusting it.
pub fn shape(xml: &str) -> Result<Shape, FederationError> {
    let malformed = || {
        FederationError::failed(
            "malformed",
            "The identity provider's response is not valid SAML.",
        )
    };
    let mut reader = NsReader::from_str(xml);
    let mut shape = Shape::default();
    let mut depth = 0usize;
    let mut seen_root = false;
    let mut issuer_text = false;
    loop {
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
                let local = e.local_name();
                let local = local.as_ref();
                if depth == 0 {
                    if seen_root || ns != SAML_PROTOCOL_NS || local != b"Response" {
                        return Err(malformed());
                    }
                    seen_root = true;
                    for a in e.attributes().flatten() {
                        if a.key.as_ref() == b"InResponseTo" {
                            shape.in_response_to =
                                Some(String::from_utf8_lossy(&a.value).into_owned());
                        }
                    }
                }
                if ns == SAML_ASSERTION_NS
                    && (local == b"Assertion" || local == b"EncryptedAssertion")
                {
                    shape.assertions += 1;
                }
                if ns == DSIG_NS && local == b"Signature" {
                    shape.signatures += 1;
                }
                issuer_text = opens && depth == 1 && ns == SAML_ASSERTION_NS && local == b"Issuer";
                if opens {
                    depth += 1;
                }
            }
            Event::Text(t) if issuer_text => {
                shape.issuer = t.decode().ok().map(|v| v.trim().to_string());
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                issuer_text = false;
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if depth != 0 || !seen_root {
        return Err(malformed());
    }
    Ok(shape)
}

/// A verified assertion: who it names, and until when its id must be remembered.
pub struct Verified {
    pub identity: UpstreamIdentity,
    pub assertion_id: String,
    pub remember_until: i64,
}

/// Verifies a Response (already decoded from base64) for this connection. `request_id`
/// is the outstanding AuthnRequest it must answer; `None` accepts an unsolicited response
/// (the caller checked that the connection allows IdP-initiated sign-in).
pub fn verify_response(
    p: &Provider,
    conn: &Connection,
    xml: &str,
    shape: &Shape,
    request_id: Option<&str>,
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
    if shape.signatures == 0 {
        return Err(FederationError::failed(
            "unsigned",
            "The response is not signed.",
        ));
    }
    let idp = idp_metadata(conn)?;
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
    let sp = service_provider(p, None, None, idp.descriptor.clone(), request_id.is_none())?;
    let ids: Option<Vec<&str>> = request_id.map(|r| vec![r]);
    let parsed = sp.parse_xml_response(xml, ids.as_deref());
    clear_openssl_errors();
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
    Ok(Verified {
        identity: identity(conn, &idp.entity_id, &assertion)?,
        assertion_id: assertion.id.clone(),
        remember_until,
    })
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
            (name_id.format.as_deref() == Some(EMAIL_FORMAT))
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
        name,
        groups,
        amr: Vec::new(),
    })
}

/// "Test connection" for a SAML IdP: metadata (fetched anew when it comes from a URL, and
/// stored when valid), certificates and their validity, the SSO endpoint's reachability.
pub async fn test(state: &AppState, conn: &Connection) -> Result<Vec<Check>, FederationError> {
    let mut checks = Vec::new();
    let xml = match conn.config.metadata_url.as_deref() {
        Some(url) => match fetch_metadata(state, url).await {
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
    let idp = match IdpMetadata::parse(&xml) {
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
        storage::federation::update_metadata(&state.pool, &conn.id, &xml, storage::now()).await?;
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
    let http = state.http().map_err(FederationError::Unexpected)?;
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
    state: &AppState,
    conn: &Connection,
    verified: &Verified,
) -> Result<bool, sqlx::Error> {
    storage::federation::remember_assertion(
        &state.pool,
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
            && c.protocol == super::Protocol::Saml2
            && c.config.idp_entity_id.as_deref() == Some(entity_id)
    })
}
