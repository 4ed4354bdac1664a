//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OpenID Connect Core §9):
//! a JWT the client signs with a key it registered, naming itself as `iss` and `sub`, this
//! server as `aud`, with a short `exp` and a `jti` used once across every instance.

use serde_json::{Map, Value};

use super::jwks::{self, JwksCache, KeyList};
use crate::keys::{foreign_verifier, CompactJws, FOREIGN_ALGS};
use crate::outbound::Outbound;
use crate::storage::{self, Pool};

/// `client_assertion_type` of a JWT assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The furthest `exp` may lie ahead: an assertion lives at most five minutes.
pub const MAX_LIFETIME: i64 = 300;
/// Tolerated clock difference between the client and this server.
pub const LEEWAY: i64 = 30;
const MAX_JTI: usize = 256;

/// Why an assertion does not authenticate its client.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    /// A failed check, in words for the client (`invalid_client`).
    #[error("{0}")]
    Bad(&'static str),
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

fn bad(why: &'static str) -> AssertionError {
    AssertionError::Bad(why)
}

/// What an assertion is checked against: the client's registration.
pub struct Registration<'a> {
    pub client_id: &'a str,
    pub keys: Option<&'a KeyList>,
    pub jwks_uri: Option<&'a str>,
    /// The one algorithm its assertions may use, when registered.
    pub signing_alg: Option<&'a str>,
    /// The algorithms its security profile allows, if it restricts them.
    pub profile_algs: Option<&'a [&'a str]>,
    /// Only the issuer, as a single string, is an accepted `aud` (FAPI 2.0 §5.3.2.1).
    pub issuer_audience_only: bool,
}

/// Where keys of a `jwks_uri` come from.
pub struct KeySource<'a> {
    pub cache: &'a JwksCache,
    pub outbound: &'a Outbound,
}

/// The client an assertion says it comes from (`sub`), read before anything is verified,
/// to find its registration and keys.
pub fn claimed_client(assertion: &str) -> Option<String> {
    let jws = CompactJws::parse(assertion).ok()?;
    jws.claims
        .get("sub")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Verifies `assertion` as `client`'s authentication at an endpoint whose accepted
/// audiences are `audiences` (the issuer first, then the token endpoint and the endpoint
/// called). A `fapi2` client's assertion must be ES256 or PS256 and name only the issuer,
/// as a single string (FAPI 2.0 §5.3.2.1, against audience injection).
pub async fn verify(
    pool: &Pool,
    source: KeySource<'_>,
    tenant_id: &str,
    client: Registration<'_>,
    assertion: &str,
    audiences: &[&str],
) -> Result<(), AssertionError> {
    let jws = CompactJws::parse(assertion).map_err(|_| bad("client_assertion is not a JWS"))?;
    let alg = jws.alg().unwrap_or_default();
    if !FOREIGN_ALGS.contains(&alg) {
        return Err(bad("client_assertion alg is not supported"));
    }
    if client.profile_algs.is_some_and(|algs| !algs.contains(&alg)) {
        return Err(bad(
            "client_assertion alg must be ES256 or PS256 (FAPI 2.0)",
        ));
    }
    if client
        .signing_alg
        .is_some_and(|registered| registered != alg)
    {
        return Err(bad(
            "client_assertion alg is not the client's token_endpoint_auth_signing_alg",
        ));
    }
    // The claims are checked before any key is fetched, so an assertion that could never
    // pass costs no outbound request; the jti is recorded only once the signature holds.
    if client.issuer_audience_only
        && jws.claims.get("aud").and_then(Value::as_str) != audiences.first().copied()
    {
        return Err(bad(
            "client_assertion aud must be the issuer, as a single string (FAPI 2.0)",
        ));
    }
    let (jti, exp) = check_claims(&jws.claims, client.client_id, audiences, storage::now())?;
    let keys = match (client.keys, client.jwks_uri) {
        (Some(keys), _) => keys.clone(),
        (None, Some(uri)) => jwks::keys_at(source.cache, source.outbound, uri, jws.kid())
            .await
            .map_err(bad)?,
        (None, None) => return Err(bad("the client has no registered keys")),
    };
    let verified = keys
        .iter()
        .filter(|k| jws.kid().is_none_or(|kid| k.key_id() == Some(kid)))
        .filter_map(|k| foreign_verifier(alg, k))
        .any(|v| jws.verify_with(v.as_ref()).is_ok());
    if !verified {
        return Err(bad(
            "client_assertion signature does not verify with the client's keys",
        ));
    }
    let fresh = storage::replay::remember_jti(
        pool,
        tenant_id,
        &format!("client_assertion:{}", client.client_id),
        jti,
        exp.saturating_add(LEEWAY),
    )
    .await?;
    if !fresh {
        return Err(bad("client_assertion jti was already used"));
    }
    Ok(())
}

/// The claims of a verified assertion: `iss` = `sub` = client id, an accepted `aud`, `exp`
/// in the next five minutes, `nbf`/`iat` not in the future, a `jti`. Returns `jti`, `exp`.
fn check_claims<'c>(
    claims: &'c Map<String, Value>,
    client_id: &str,
    audiences: &[&str],
    now: i64,
) -> Result<(&'c str, i64), AssertionError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(client_id) || text("sub") != Some(client_id) {
        return Err(bad("client_assertion iss and sub must be the client_id"));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => audiences.contains(&a.as_str()),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| audiences.contains(&a)),
        _ => false,
    };
    if !aud_ok {
        return Err(bad(
            "client_assertion aud must be the issuer or the endpoint URL",
        ));
    }
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    let exp = number("exp").ok_or(bad("client_assertion has no exp"))?;
    if exp.saturating_add(LEEWAY) <= now {
        return Err(bad("client_assertion has expired"));
    }
    if exp.saturating_sub(now) > MAX_LIFETIME + LEEWAY {
        return Err(bad("client_assertion exp is more than 5 minutes away"));
    }
    for name in ["nbf", "iat"] {
        match claims.get(name) {
            None => {}
            Some(v) => match v.as_i64() {
                Some(t) if t.saturating_sub(LEEWAY) <= now => {}
                _ => return Err(bad("client_assertion nbf or iat is in the future")),
            },
        }
    }
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI)
        .ok_or(bad("client_assertion needs a jti"))?;
    Ok((jti, exp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const AUD: [&str; 2] = ["https://id.example/t/a", "https://id.example/t/a/token"];

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn good(now: i64) -> Value {
        json!({"iss": "c1", "sub": "c1", "aud": AUD[0], "exp": now + 60, "iat": now, "jti": "j1"})
    }

    fn error_of(v: Value, now: i64) -> &'static str {
        match check_claims(&claims(v), "c1", &AUD, now) {
            Err(AssertionError::Bad(why)) => why,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_well_formed_assertion_passes_with_either_audience() {
        let now = 1_000_000;
        assert_eq!(
            check_claims(&claims(good(now)), "c1", &AUD, now).unwrap(),
            ("j1", now + 60)
        );
        let mut v = good(now);
        v["aud"] = json!(["other", AUD[1]]);
        assert!(check_claims(&claims(v), "c1", &AUD, now).is_ok());
    }

    #[test]
    fn each_claim_is_checked() {
        let now = 1_000_000;
        let with = |k: &str, val: Value| {
            let mut v = good(now);
            v[k] = val;
            v
        };
        let without = |k: &str| {
            let mut v = good(now);
            v.as_object_mut().unwrap().remove(k);
            v
        };
        assert_eq!(
            error_of(with("sub", json!("c2")), now),
            "client_assertion iss and sub must be the client_id"
        );
        assert_eq!(
            error_of(with("aud", json!("https://elsewhere")), now),
            "client_assertion aud must be the issuer or the endpoint URL"
        );
        assert_eq!(error_of(without("exp"), now), "client_assertion has no exp");
        assert_eq!(
            error_of(with("exp", json!(now - LEEWAY)), now),
            "client_assertion has expired"
        );
        assert_eq!(
            error_of(with("exp", json!(now + 3600)), now),
            "client_assertion exp is more than 5 minutes away"
        );
        assert_eq!(
            error_of(with("iat", json!(now + 120)), now),
            "client_assertion nbf or iat is in the future"
        );
        assert_eq!(
            error_of(without("jti"), now),
            "client_assertion needs a jti"
        );
    }
}
