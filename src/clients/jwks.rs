//! The public keys a client registers for `private_key_jwt` (RFC 7523, OpenID Connect Core
//! §9): an inline `jwks` document, parsed when the registration is read, or a `jwks_uri`,
//! fetched with the outbound client (timeouts, no redirects, bounded size) and cached. A key
//! id the cached set lacks triggers one refetch (the client rotated its keys), at most every
//! [`REFETCH_AFTER`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use josekit::jwk::Jwk;
use serde_json::Value;

use crate::keys::{foreign_verifier, FOREIGN_ALGS, PRIVATE_JWK_MEMBERS};
use crate::outbound::{self, Outbound};

/// At most this many keys in a client's set, and this many bytes in a fetched document.
pub const MAX_KEYS: usize = 20;
const MAX_DOCUMENT: usize = 64 * 1024;
/// How long a fetched set is used without asking again.
const FRESH: Duration = Duration::from_secs(300);
/// The least time between two fetches of one `jwks_uri`.
const REFETCH_AFTER: Duration = Duration::from_secs(10);
const CACHE_MAX: usize = 10_000;

/// A parsed JWK Set.
pub type KeyList = Arc<Vec<Jwk>>;

/// Parses a JWK Set document (RFC 7517 §5): `{"keys": [...]}` of public keys.
pub fn parse_jwks(doc: &Value) -> Result<Vec<Jwk>, String> {
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("jwks must be a JWK Set: {\"keys\": [...]}")?;
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(format!("jwks must hold 1-{MAX_KEYS} keys"));
    }
    keys.iter()
        .map(|k| {
            let map = k.as_object().ok_or("every JWK must be a JSON object")?;
            if PRIVATE_JWK_MEMBERS.iter().any(|p| map.contains_key(*p)) {
                return Err("jwks must hold public keys only".to_string());
            }
            Jwk::from_map(map.clone()).map_err(|e| format!("invalid JWK: {e}"))
        })
        .collect()
}

/// Whether a key set holds at least one key an assertion can be verified with (a signing
/// key of a supported algorithm; RSA of at least 2048 bits).
pub fn has_usable_key(keys: &[Jwk]) -> bool {
    keys.iter().any(|k| {
        FOREIGN_ALGS
            .iter()
            .any(|alg| foreign_verifier(alg, k).is_some())
    })
}

/// A key list as a JWK Set document.
pub fn to_json(keys: &[Jwk]) -> Value {
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| Value::Object(k.as_ref().clone()))
        .collect();
    serde_json::json!({ "keys": keys })
}

/// Fetched key sets by URI.
pub struct JwksCache {
    entries: RwLock<HashMap<String, Fetched>>,
}

struct Fetched {
    keys: KeyList,
    at: Instant,
}

impl Default for JwksCache {
    fn default() -> Self {
        Self::new()
    }
}

impl JwksCache {
    pub fn new() -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
        }
    }

    fn get(&self, uri: &str) -> Option<(KeyList, Duration)> {
        let entries = self.entries.read().ok()?;
        entries.get(uri).map(|f| (f.keys.clone(), f.at.elapsed()))
    }

    fn put(&self, uri: &str, keys: KeyList) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= CACHE_MAX {
                entries.clear();
            }
            entries.insert(
                uri.to_string(),
                Fetched {
                    keys,
                    at: Instant::now(),
                },
            );
        }
    }
}

/// The keys published at `uri`, from the cache while fresh; fetched again when stale, or
/// when `kid` is named and not in the cached set (no more often than every 10 s).
pub async fn keys_at(
    cache: &JwksCache,
    outbound: &Outbound,
    uri: &str,
    kid: Option<&str>,
) -> Result<KeyList, &'static str> {
    if let Some((keys, age)) = cache.get(uri) {
        let has_kid = kid.is_none_or(|k| keys.iter().any(|j| j.key_id() == Some(k)));
        if age < FRESH && (has_kid || age < REFETCH_AFTER) {
            return Ok(keys);
        }
    }
    match fetch(outbound, uri).await {
        Ok(keys) => {
            let keys = Arc::new(keys);
            cache.put(uri, keys.clone());
            Ok(keys)
        }
        Err(why) => {
            // Remembered as an empty set, so a failing URI is asked again only after
            // REFETCH_AFTER, not once per request.
            cache.put(uri, Arc::new(Vec::new()));
            tracing::warn!(jwks_uri = uri, error = %why, "cannot fetch a client's JWKS");
            Err("the client's jwks_uri could not be fetched")
        }
    }
}

async fn fetch(outbound: &Outbound, uri: &str) -> Result<Vec<Jwk>, String> {
    let url = outbound::https_or_loopback(uri).ok_or("not an https URL")?;
    let http = outbound.client().map_err(|e| e.to_string())?;
    let mut response = http
        .get(url)
        .header(
            reqwest::header::ACCEPT,
            "application/jwk-set+json, application/json",
        )
        .send()
        .await
        .map_err(|e| outbound::transport_error(&e))?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let body = outbound::read_bounded(&mut response, MAX_DOCUMENT).await?;
    let doc: Value = serde_json::from_slice(&body).map_err(|_| "not JSON".to_string())?;
    parse_jwks(&doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwk_set_of_public_keys_parses() {
        let doc = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]});
        let keys = parse_jwks(&doc).unwrap();
        assert_eq!(keys[0].key_id(), Some("k1"));
    }

    #[test]
    fn private_or_symmetric_keys_and_empty_sets_are_refused() {
        for doc in [
            serde_json::json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
            serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "c"}]}),
            serde_json::json!({"keys": []}),
            serde_json::json!([{"kty": "EC"}]),
        ] {
            assert!(parse_jwks(&doc).is_err(), "{doc}");
        }
    }
}
