//! The SAML HTTP-Redirect binding (Bindings §3.4) for every message this SP sends or
//! receives that way (AuthnRequests, LogoutRequests, LogoutResponses): DEFLATE, base64, and
//! the signature over `SAMLRequest|SAMLResponse=…[&RelayState=…]&SigAlg=…` exactly as the
//! parameters were encoded on the wire (§3.4.4.1).

use std::io::{Read, Write};

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::{Signer, Verifier};
use openssl::x509::X509;

use super::connections::FederationError;
use crate::crypto;

const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
/// Largest message accepted, as sent and once inflated (a DEFLATE bomb stops here).
pub(super) const MAX_MESSAGE: usize = 64 * 1024;

/// Which protocol message a redirect carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    Request,
    Response,
}

impl Carrier {
    fn param(self) -> &'static str {
        match self {
            Carrier::Request => "SAMLRequest",
            Carrier::Response => "SAMLResponse",
        }
    }
}

/// The URL that delivers `xml` to `destination` over HTTP-Redirect: DEFLATE, base64, and,
/// with a key, `SigAlg` (RSA-SHA256) and `Signature` over the encoded query.
pub fn redirect_url(
    destination: &str,
    carrier: Carrier,
    xml: &str,
    relay_state: Option<&str>,
    key: Option<&PKey<Private>>,
) -> Result<url::Url, FederationError> {
    let unexpected =
        |e: &dyn std::fmt::Display| FederationError::Unexpected(anyhow::anyhow!("{e}"));
    let mut deflated = Vec::new();
    {
        let mut enc =
            flate2::write::DeflateEncoder::new(&mut deflated, flate2::Compression::default());
        enc.write_all(xml.as_bytes()).map_err(|e| unexpected(&e))?;
        enc.finish().map_err(|e| unexpected(&e))?;
    }
    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let mut query = format!("{}={}", carrier.param(), enc(&crypto::b64(&deflated)));
    if let Some(r) = relay_state.filter(|r| !r.is_empty()) {
        query.push_str(&format!("&RelayState={}", enc(r)));
    }
    if let Some(key) = key {
        query.push_str(&format!("&SigAlg={}", enc(RSA_SHA256)));
        let mut signer = Signer::new(MessageDigest::sha256(), key).map_err(|e| unexpected(&e))?;
        signer
            .update(query.as_bytes())
            .map_err(|e| unexpected(&e))?;
        let signature = signer.sign_to_vec().map_err(|e| unexpected(&e))?;
        query.push_str(&format!("&Signature={}", enc(&crypto::b64(&signature))));
    }
    let mut url = url::Url::parse(destination).map_err(|e| unexpected(&e))?;
    // The IdP's endpoint may carry its own query; ours follows it unchanged (already
    // encoded: re-encoding would break the signature).
    let full = match url.query() {
        Some(q) if !q.is_empty() => format!("{q}&{query}"),
        _ => query,
    };
    url.set_query(Some(&full));
    Ok(url)
}

/// A message received over HTTP-Redirect, decoded but not yet trusted.
pub struct Received {
    pub carrier: Carrier,
    pub xml: String,
    pub relay_state: Option<String>,
    signature: Option<ReceivedSignature>,
}

struct ReceivedSignature {
    alg: String,
    value: Vec<u8>,
    /// The octets the sender signed, rebuilt from the parameters as they arrived.
    signed: String,
}

pub(super) fn malformed() -> FederationError {
    FederationError::failed("malformed", "The sign-out message is not valid SAML.")
}

/// Decodes the query of a GET to the SLO endpoint. Refuses repeated parameters, both or
/// neither of SAMLRequest and SAMLResponse, a Signature without SigAlg, and a message
/// that inflates beyond 64 KiB.
pub fn decode_redirect(raw_query: &str) -> Result<Received, FederationError> {
    if raw_query.len() > MAX_MESSAGE * 2 {
        return Err(malformed());
    }
    let mut fields: Vec<(&str, &str)> = Vec::new();
    for part in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        if fields.iter().any(|(seen, _)| *seen == k) {
            return Err(malformed());
        }
        fields.push((k, v));
    }
    let raw = |name: &str| fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let decode = |v: &str| -> String {
        url::form_urlencoded::parse(format!("v={v}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (carrier, message) = match (raw("SAMLRequest"), raw("SAMLResponse")) {
        (Some(m), None) => (Carrier::Request, m),
        (None, Some(m)) => (Carrier::Response, m),
        _ => return Err(malformed()),
    };
    let relay = raw("RelayState");
    let signature = match (raw("SigAlg"), raw("Signature")) {
        (Some(alg), Some(sig)) => {
            let mut signed = format!("{}={message}", carrier.param());
            if let Some(r) = relay {
                signed.push_str(&format!("&RelayState={r}"));
            }
            signed.push_str(&format!("&SigAlg={alg}"));
            let value = crypto::b64_decode(&decode(sig)).ok_or_else(malformed)?;
            Some(ReceivedSignature {
                alg: decode(alg),
                value,
                signed,
            })
        }
        (None, None) => None,
        _ => return Err(malformed()),
    };
    let compact: String = decode(message)
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let deflated = crypto::b64_decode(&compact).ok_or_else(malformed)?;
    let mut inflated = Vec::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice())
        .take(MAX_MESSAGE as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|_| malformed())?;
    if inflated.len() > MAX_MESSAGE {
        return Err(malformed());
    }
    let xml = String::from_utf8(inflated).map_err(|_| malformed())?;
    Ok(Received {
        carrier,
        xml,
        relay_state: relay.map(decode),
        signature,
    })
}

impl Received {
    /// Verifies the binding's signature against the IdP's signing certificates (any of
    /// them: the IdP may be rolling over). Only SHA-2 algorithms are accepted.
    pub(super) fn verify(&self, certificates: &[X509]) -> Result<(), FederationError> {
        let Some(sig) = &self.signature else {
            return Err(FederationError::failed(
                "unsigned",
                "The sign-out message is not signed.",
            ));
        };
        let digest = match sig.alg.as_str() {
            RSA_SHA256 | "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" => {
                MessageDigest::sha256()
            }
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
            | "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" => MessageDigest::sha384(),
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
            | "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512" => MessageDigest::sha512(),
            _ => {
                return Err(FederationError::failed(
                    "signature_algorithm",
                    "The sign-out message is signed with an algorithm that is not accepted.",
                ))
            }
        };
        let is_ecdsa = sig.alg.contains("#ecdsa-");
        let verified = certificates.iter().any(|cert| {
            let Ok(key) = cert.public_key() else {
                return false;
            };
            if is_ecdsa != key.ec_key().is_ok() {
                return false;
            }
            let candidates = if is_ecdsa {
                // XML Signature's ECDSA value is r‖s; some senders use DER. Both are tried.
                let mut c = vec![sig.value.clone()];
                if let Some(der) = raw_ecdsa_to_der(&sig.value) {
                    c.push(der);
                }
                c
            } else {
                vec![sig.value.clone()]
            };
            candidates.iter().any(|value| {
                Verifier::new(digest, &key)
                    .and_then(|mut v| {
                        v.update(sig.signed.as_bytes())?;
                        v.verify(value)
                    })
                    .unwrap_or(false)
            })
        });
        let _ = openssl::error::ErrorStack::get();
        if verified {
            Ok(())
        } else {
            Err(FederationError::failed(
                "signature_invalid",
                "The sign-out message's signature does not verify against the identity provider's certificates.",
            ))
        }
    }
}

fn raw_ecdsa_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let sig = openssl::ecdsa::EcdsaSig::from_private_components(
        openssl::bn::BigNum::from_slice(r).ok()?,
        openssl::bn::BigNum::from_slice(s).ok()?,
    )
    .ok()?;
    sig.to_der().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn key_and_cert() -> (PKey<Private>, X509) {
        let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "test").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        (key, b.build())
    }

    const REQUEST: &str = r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" Version="2.0" IssueInstant="2026-12-05T10:00:00Z" Destination="https://sp.example/t/saml/slo"><saml:Issuer>https://idp.example</saml:Issuer><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">a&amp;b@example.com</saml:NameID><samlp:SessionIndex>s1</samlp:SessionIndex><samlp:SessionIndex>s2</samlp:SessionIndex></samlp:LogoutRequest>"#;

    #[test]
    fn a_signed_redirect_round_trips_and_verifies_only_with_the_signers_certificate() {
        let (key, cert) = key_and_cert();
        let (_, other) = key_and_cert();
        let url = redirect_url(
            "https://idp.example/slo?x=1",
            Carrier::Request,
            REQUEST,
            Some("relay state/ü"),
            Some(&key),
        )
        .unwrap();
        let query = url.query().unwrap();
        assert!(query.starts_with("x=1&SAMLRequest="), "{query}");
        let received = decode_redirect(query.trim_start_matches("x=1&")).unwrap();
        assert_eq!(received.carrier, Carrier::Request);
        assert_eq!(received.xml, REQUEST);
        assert_eq!(received.relay_state.as_deref(), Some("relay state/ü"));
        received.verify(std::slice::from_ref(&cert)).unwrap();
        let err = received.verify(&[other]).unwrap_err();
        assert!(matches!(
            err,
            FederationError::Failed {
                reason: "signature_invalid",
                ..
            }
        ));
        // Any change to a signed parameter breaks the signature.
        let tampered = query
            .trim_start_matches("x=1&")
            .replace("RelayState=relay", "RelayState=relax");
        let err = decode_redirect(&tampered)
            .unwrap()
            .verify(&[cert])
            .unwrap_err();
        assert!(matches!(
            err,
            FederationError::Failed {
                reason: "signature_invalid",
                ..
            }
        ));
    }

    #[test]
    fn malformed_redirects_are_refused() {
        let (key, _) = key_and_cert();
        let url =
            redirect_url("https://i/s", Carrier::Response, REQUEST, None, Some(&key)).unwrap();
        let q = url.query().unwrap().to_string();
        for bad in [
            format!("{q}&SAMLResponse=x"),     // repeated
            "RelayState=x".to_string(),        // no message
            format!("SAMLRequest=x&{q}"),      // both kinds
            q.replace("&Signature=", "&Sig="), // SigAlg without Signature
            "SAMLRequest=%%%".to_string(),     // not base64
        ] {
            assert!(decode_redirect(&bad).is_err(), "{bad}");
        }
        // A DEFLATE bomb stops at 64 KiB.
        let huge = "<a>".to_string() + &" ".repeat(MAX_MESSAGE * 4) + "</a>";
        let url = redirect_url("https://i/s", Carrier::Request, &huge, None, None).unwrap();
        assert!(url.query().unwrap().len() < MAX_MESSAGE);
        assert!(decode_redirect(url.query().unwrap()).is_err());
        // Unsigned messages decode, but do not verify.
        let url = redirect_url("https://i/s", Carrier::Request, REQUEST, None, None).unwrap();
        let err = decode_redirect(url.query().unwrap())
            .unwrap()
            .verify(&[])
            .unwrap_err();
        assert!(matches!(
            err,
            FederationError::Failed {
                reason: "unsigned",
                ..
            }
        ));
    }
}
