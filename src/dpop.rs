//! DPoP (RFC 9449): proofs of possession of a key, sent by a client in the `DPoP` header.
//! A proof is a JWT of type `dpop+jwt`, signed with the key whose public half is in its
//! header, naming the HTTP method and URI of the request, issued just now, with a `jti` used
//! once, and (with an access token) the token's hash. Tokens bound to the key carry its
//! RFC 7638 thumbprint as `cnf.jkt`.
//!
//! A tenant may require server nonces (§8, §9): they are not stored anywhere but derived
//! from the period they belong to and a MAC under a key every instance shares, so any
//! instance accepts the nonce another one issued.

use serde_json::{Map, Value};

use crate::crypto;
use crate::keys::{foreign_verifier, CompactJws, FOREIGN_ALGS};
use crate::storage::{self, Pool};

/// The `typ` of a DPoP proof (RFC 9449 §4.2).
pub const PROOF_TYPE: &str = "dpop+jwt";
/// How far a proof's `iat` may lie from this server's clock, either way (RFC 9449 §11.1
/// leaves the window to the server).
pub const IAT_WINDOW: i64 = 60;
const MAX_PROOF: usize = 8192;
const MAX_JTI: usize = 256;

/// Why a proof is refused: `invalid_dpop_proof` (RFC 9449 §7.1) with these words.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DpopError {
    #[error("{0}")]
    InvalidProof(&'static str),
    /// `use_dpop_nonce` (RFC 9449 §8.1, §9.1): the proof lacks a fresh server nonce.
    #[error("a fresh DPoP nonce is required: retry with the one in the DPoP-Nonce header")]
    UseNonce,
    #[error("internal error")]
    Unexpected,
}

/// How long a server nonce is handed out; it is accepted in its period and the next one.
pub const NONCE_PERIOD: i64 = 300;

/// What checking proofs uses: the database (the `jti` replay cache) and the key of the
/// server nonces' MACs.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub pool: &'a Pool,
    pub mac_key: &'a [u8],
}

fn nonce_for(mac_key: &[u8], tenant_id: &str, period: i64) -> String {
    let mac = crypto::hmac_sha256(
        mac_key,
        format!("dpop nonce\0{tenant_id}\0{period}").as_bytes(),
    );
    format!("{period:x}.{}", crypto::b64url(&mac[..18]))
}

/// The server nonce to hand out now for `tenant_id` (`DPoP-Nonce`, RFC 9449 §8).
pub fn nonce(mac_key: &[u8], tenant_id: &str, now: i64) -> String {
    nonce_for(mac_key, tenant_id, now.div_euclid(NONCE_PERIOD))
}

/// Whether `given` is a nonce of this period or the previous one, for this tenant.
fn nonce_is_fresh(mac_key: &[u8], tenant_id: &str, given: &str, now: i64) -> bool {
    let Some(period) = given
        .split_once('.')
        .and_then(|(p, _)| i64::from_str_radix(p, 16).ok())
    else {
        return false;
    };
    let current = now.div_euclid(NONCE_PERIOD);
    (period == current || period == current - 1)
        && crypto::constant_time_eq(
            given.as_bytes(),
            nonce_for(mac_key, tenant_id, period).as_bytes(),
        )
}

fn bad(why: &'static str) -> DpopError {
    DpopError::InvalidProof(why)
}

/// A proof that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 thumbprint of the proof's key.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    /// The JWS algorithm it is signed with.
    pub alg: String,
    /// The server nonce the proof carries, if any.
    pub nonce: Option<String>,
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of a public JWK: the hash of its required
/// members in lexicographic order, as compact JSON. `None` for other key types.
pub fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let members: &[&str] = match jwk.get("kty").and_then(Value::as_str)? {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = String::from("{");
    for (i, m) in members.iter().enumerate() {
        let v = jwk.get(*m).and_then(Value::as_str)?;
        if i > 0 {
            canonical.push(',');
        }
        canonical.push_str(&serde_json::to_string(m).ok()?);
        canonical.push(':');
        canonical.push_str(&serde_json::to_string(v).ok()?);
    }
    canonical.push('}');
    Some(crypto::b64url(&crypto::sha256(canonical.as_bytes())))
}

/// The URI a proof's `htu` names, without query and fragment (RFC 9449 §4.3 check 9).
fn without_query(uri: &str) -> Option<url::Url> {
    let mut u = url::Url::parse(uri).ok()?;
    u.set_query(None);
    u.set_fragment(None);
    Some(u)
}

/// Checks a proof's form, signature and claims for a request with `method` to `uri` (and,
/// when an access token is presented with it, that token's hash in `ath`) at time `now`.
/// Does not record the `jti`: [`verify_proof`] does.
pub fn check_proof(
    proof: &str,
    method: &str,
    uri: &str,
    access_token: Option<&str>,
    now: i64,
) -> Result<Proof, DpopError> {
    if proof.len() > MAX_PROOF {
        return Err(bad("the DPoP proof is too long"));
    }
    let jws = CompactJws::parse(proof).map_err(|_| bad("the DPoP proof is not a JWS"))?;
    if jws.typ() != Some(PROOF_TYPE) {
        return Err(bad("the DPoP proof's typ must be dpop+jwt"));
    }
    let alg = jws.alg().unwrap_or_default();
    if !FOREIGN_ALGS.contains(&alg) {
        return Err(bad("the DPoP proof's alg is not supported"));
    }
    let jwk_map = jws
        .header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(bad("the DPoP proof has no jwk header"))?;
    let jwk = josekit::jwk::Jwk::from_map(jwk_map.clone())
        .map_err(|_| bad("the DPoP proof's jwk is not a public key for its alg"))?;
    let verifier = foreign_verifier(alg, &jwk)
        .ok_or(bad("the DPoP proof's jwk is not a public key for its alg"))?;
    jws.verify_with(verifier.as_ref())
        .map_err(|_| bad("the DPoP proof's signature does not verify"))?;
    let jkt =
        thumbprint(jwk_map).ok_or(bad("the DPoP proof's jwk is not a public key for its alg"))?;
    let claims = &jws.claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI)
        .ok_or(bad("the DPoP proof needs a jti"))?;
    if text("htm") != Some(method) {
        return Err(bad("the DPoP proof's htm is not this request's method"));
    }
    match (text("htu").and_then(without_query), without_query(uri)) {
        (Some(a), Some(b)) if a == b => {}
        _ => return Err(bad("the DPoP proof's htu is not this request's URI")),
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or(bad("the DPoP proof has no iat"))?;
    if iat.saturating_sub(now).abs() > IAT_WINDOW {
        return Err(bad("the DPoP proof's iat is too far from now"));
    }
    if let Some(token) = access_token {
        let expected = crypto::b64url(&crypto::sha256(token.as_bytes()));
        if text("ath") != Some(expected.as_str()) {
            return Err(bad("the DPoP proof's ath is not the access token's hash"));
        }
    }
    Ok(Proof {
        jkt,
        jti: jti.to_string(),
        iat,
        alg: alg.to_string(),
        nonce: text("nonce").map(str::to_string),
    })
}

/// A request's proof and what it must match.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    pub proof: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    /// The access token sent with the proof (at a protected resource).
    pub access_token: Option<&'a str>,
}

/// [`check_proof`]; then, when `require_nonce`, that the proof carries a fresh server nonce;
/// then records the `jti` for the key until the proof could no longer be accepted: a
/// second use anywhere is refused.
pub async fn verify_proof(
    d: Deps<'_>,
    tenant_id: &str,
    require_nonce: bool,
    p: Presented<'_>,
) -> Result<Proof, DpopError> {
    let now = storage::now();
    let checked = check_proof(p.proof, p.method, p.uri, p.access_token, now)?;
    if require_nonce
        && !checked
            .nonce
            .as_deref()
            .is_some_and(|n| nonce_is_fresh(d.mac_key, tenant_id, n, now))
    {
        return Err(DpopError::UseNonce);
    }
    let fresh = storage::replay::remember_jti(
        d.pool,
        tenant_id,
        &format!("dpop:{}", checked.jkt),
        &checked.jti,
        checked.iat.saturating_add(IAT_WINDOW),
    )
    .await
    .map_err(|_| DpopError::Unexpected)?;
    if !fresh {
        return Err(bad("the DPoP proof's jti was already used"));
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jws::{JwsHeader, ES256};
    use josekit::jwt::{self, JwtPayload};
    use serde_json::json;

    const URI: &str = "https://id.example/t/a/token";

    struct Key {
        signer: josekit::jws::alg::ecdsa::EcdsaJwsSigner,
        public: Map<String, Value>,
    }

    fn key() -> Key {
        let kp = ES256.generate_key_pair().unwrap();
        Key {
            signer: ES256.signer_from_jwk(&kp.to_jwk_private_key()).unwrap(),
            public: kp.to_jwk_public_key().as_ref().clone(),
        }
    }

    fn proof(k: &Key, typ: &str, claims: Value) -> String {
        let mut h = JwsHeader::new();
        h.set_token_type(typ);
        h.set_claim("jwk", Some(Value::Object(k.public.clone())))
            .unwrap();
        let p = JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();
        jwt::encode_with_signer(&p, &h, &k.signer).unwrap()
    }

    fn claims(now: i64) -> Value {
        json!({"jti": "p1", "htm": "POST", "htu": URI, "iat": now})
    }

    #[test]
    fn rfc7638_thumbprint_of_its_example_key() {
        // RFC 7638 §3.1.
        let jwk = json!({"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        assert_eq!(
            thumbprint(jwk.as_object().unwrap()).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn a_good_proof_passes_and_names_its_key() {
        let k = key();
        let now = 1_000_000;
        let p = check_proof(&proof(&k, PROOF_TYPE, claims(now)), "POST", URI, None, now).unwrap();
        assert_eq!(p.jkt, thumbprint(&k.public).unwrap());
        assert_eq!((p.jti.as_str(), p.iat), ("p1", now));
        assert_eq!(p.nonce, None);
        // The query of the request URI does not count.
        let q = format!("{URI}?x=1");
        assert!(check_proof(&proof(&k, PROOF_TYPE, claims(now)), "POST", &q, None, now).is_ok());
    }

    #[test]
    fn nonces_hold_for_their_period_and_the_next_for_their_tenant_only() {
        let key = b"k".repeat(32);
        let now = 10 * NONCE_PERIOD + 7;
        let n = nonce(&key, "t1", now);
        assert!(nonce_is_fresh(&key, "t1", &n, now));
        assert!(nonce_is_fresh(&key, "t1", &n, now + NONCE_PERIOD));
        assert!(!nonce_is_fresh(&key, "t1", &n, now + 2 * NONCE_PERIOD));
        assert!(!nonce_is_fresh(&key, "t2", &n, now));
        assert!(!nonce_is_fresh(&b"j".repeat(32), "t1", &n, now));
        assert!(!nonce_is_fresh(&key, "t1", "a.b", now));
        assert!(!nonce_is_fresh(&key, "t1", "", now));
    }

    #[test]
    fn each_defect_is_refused_with_its_reason() {
        let k = key();
        let now = 1_000_000;
        let with = |name: &str, v: Value| {
            let mut c = claims(now);
            c[name] = v;
            c
        };
        let reason = |p: String, token: Option<&str>| match check_proof(&p, "POST", URI, token, now)
        {
            Err(DpopError::InvalidProof(why)) => why,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(proof(&k, "JWT", claims(now)), None),
            "the DPoP proof's typ must be dpop+jwt"
        );
        assert_eq!(
            reason(proof(&k, PROOF_TYPE, with("htm", json!("GET"))), None),
            "the DPoP proof's htm is not this request's method"
        );
        assert_eq!(
            reason(
                proof(
                    &k,
                    PROOF_TYPE,
                    with("htu", json!("https://id.example/t/b/token"))
                ),
                None
            ),
            "the DPoP proof's htu is not this request's URI"
        );
        assert_eq!(
            reason(proof(&k, PROOF_TYPE, with("iat", json!(now - 3600))), None),
            "the DPoP proof's iat is too far from now"
        );
        assert_eq!(
            reason(proof(&k, PROOF_TYPE, with("jti", json!(""))), None),
            "the DPoP proof needs a jti"
        );
        assert_eq!(
            reason(proof(&k, PROOF_TYPE, claims(now)), Some("at")),
            "the DPoP proof's ath is not the access token's hash"
        );
        let ath = crypto::b64url(&crypto::sha256(b"at"));
        assert!(check_proof(
            &proof(&k, PROOF_TYPE, with("ath", json!(ath))),
            "POST",
            URI,
            Some("at"),
            now
        )
        .is_ok());
        // Signed by another key than the one in the header.
        let other = key();
        let mut forged = proof(&other, PROOF_TYPE, claims(now));
        let header = crypto::b64url(
            json!({"typ": PROOF_TYPE, "alg": "ES256", "jwk": k.public})
                .to_string()
                .as_bytes(),
        );
        forged = format!("{header}.{}", forged.split_once('.').unwrap().1);
        assert_eq!(
            reason(forged, None),
            "the DPoP proof's signature does not verify"
        );
    }
}
