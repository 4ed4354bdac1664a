//! Signing keys: generation (RS256, PS256, ES256, EdDSA via josekit), sealing private keys with
//! the master key, rotation, and compact JWS signing and verification with a tenant's
//! loaded key set. Rotation publishes the next key before it signs and keeps retired keys
//! published until every token they signed has expired.

use std::collections::HashMap;
use std::sync::Mutex;

use josekit::jwk::alg::ed::EdCurve;
use josekit::jwk::Jwk;
use josekit::jws::{EdDSA, JwsSigner, JwsVerifier, ES256, PS256, RS256};
use openssl::ecdsa::EcdsaSig;
use openssl::error::ErrorStack;
use openssl::md::Md;
use openssl::pkey::{PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::sign::RsaPssSaltlen;
use serde_json::{Map, Value};

use crate::config::Config;
use crate::crypto::{self, MasterKey};
use crate::storage::{self, keys::SigningKeyRow, Pool};
use crate::tenants::{Tenant, TenantError};

/// The JWS algorithms Portcullis signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    Rs256,
    /// RSASSA-PSS with SHA-256 (RFC 7518 §3.5), one of the two FAPI 2.0 algorithms.
    Ps256,
    Es256,
    EdDsa,
}

impl Alg {
    pub const ALL: [Alg; 4] = [Alg::Rs256, Alg::Ps256, Alg::Es256, Alg::EdDsa];

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Ps256 => "PS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(Alg::Rs256),
            "PS256" => Some(Alg::Ps256),
            "ES256" => Some(Alg::Es256),
            "EdDSA" => Some(Alg::EdDsa),
            _ => None,
        }
    }

    /// Digest for `at_hash`/`c_hash` (OpenID Connect Core §3.1.3.6): the hash of the JWS
    /// algorithm; SHA-512 for EdDSA over Ed25519, as the OpenID Foundation's errata and
    /// certified relying parties expect.
    pub fn left_half_hash(self, value: &str) -> String {
        let digest: Vec<u8> = match self {
            Alg::Rs256 | Alg::Ps256 | Alg::Es256 => crypto::sha256(value.as_bytes()).to_vec(),
            Alg::EdDsa => {
                openssl::hash::hash(openssl::hash::MessageDigest::sha512(), value.as_bytes())
                    .map(|d| d.to_vec())
                    .unwrap_or_default()
            }
        };
        crypto::b64url(&digest[..digest.len() / 2])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key material is unusable: {0}")]
    Material(String),
    #[error(transparent)]
    Seal(#[from] crypto::CryptoError),
}

impl From<josekit::JoseError> for KeyError {
    fn from(e: josekit::JoseError) -> Self {
        KeyError::Material(e.to_string())
    }
}

/// Generates a key pair: the PEM private key and the public JWK (with `kid`, `use`, `alg`).
fn generate(alg: Alg, kid: &str) -> Result<(Vec<u8>, Jwk), KeyError> {
    let (pem, mut jwk) = match alg {
        // PS256 signs with a plain RSA key (kty RSA, PSS padding chosen when signing).
        Alg::Rs256 | Alg::Ps256 => {
            let kp = RS256.generate_key_pair(2048)?;
            (kp.to_pem_private_key(), kp.to_jwk_public_key())
        }
        Alg::Es256 => {
            let kp = ES256.generate_key_pair()?;
            (kp.to_pem_private_key(), kp.to_jwk_public_key())
        }
        Alg::EdDsa => {
            let kp = EdDSA.generate_key_pair(EdCurve::Ed25519)?;
            (kp.to_pem_private_key(), kp.to_jwk_public_key())
        }
    };
    jwk.set_key_id(kid);
    jwk.set_key_use("sig");
    jwk.set_algorithm(alg.as_str());
    Ok((pem, jwk))
}

/// Generates a key and seals it into a row (CPU-heavy: call off the executor).
fn new_key_row(
    master: &MasterKey,
    tenant_id: &str,
    alg: Alg,
    state: &str,
    now: i64,
) -> Result<SigningKeyRow, KeyError> {
    let kid = crypto::random_token(12);
    let (pem, jwk) = generate(alg, &kid)?;
    let sealed = master.seal(&pem, kid.as_bytes())?;
    Ok(SigningKeyRow {
        kid,
        tenant_id: tenant_id.to_string(),
        alg: alg.as_str().to_string(),
        state: state.to_string(),
        private_key: sealed,
        public_jwk: jwk.to_string(),
        created_at: now,
        activated_at: (state == "active").then_some(now),
        retired_at: None,
        expires_at: None,
    })
}

async fn generate_rows(
    master: &MasterKey,
    tenant_id: &str,
    specs: Vec<(Alg, &'static str)>,
) -> Result<Vec<SigningKeyRow>, TenantError> {
    let master = master.clone();
    let tenant_id = tenant_id.to_string();
    let now = storage::now();
    tokio::task::spawn_blocking(move || {
        specs
            .into_iter()
            .map(|(alg, st)| new_key_row(&master, &tenant_id, alg, st, now))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| TenantError::Unexpected(e.into()))?
    .map_err(|e| TenantError::Unexpected(e.into()))
}

/// A new tenant's keys: for each algorithm an active key and the next one.
pub async fn provision_initial_keys(
    pool: &Pool,
    master: &MasterKey,
    tenant: &Tenant,
) -> Result<(), TenantError> {
    provision_missing_keys(pool, master, &tenant.id, &[]).await?;
    Ok(())
}

/// Keys for the algorithms that have no active key among a tenant's published `rows` (a
/// new tenant, or an algorithm added after the tenant was created, as PS256 was): an
/// active key and the next one for each. Whether any were added.
pub async fn provision_missing_keys(
    pool: &Pool,
    master: &MasterKey,
    tenant_id: &str,
    rows: &[SigningKeyRow],
) -> Result<bool, TenantError> {
    let specs: Vec<(Alg, &'static str)> = Alg::ALL
        .iter()
        .filter(|a| {
            !rows
                .iter()
                .any(|r| r.alg == a.as_str() && r.state == "active")
        })
        .flat_map(|a| [(*a, "active"), (*a, "next")])
        .collect();
    if specs.is_empty() {
        return Ok(false);
    }
    let rows = generate_rows(master, tenant_id, specs).await?;
    storage::keys::rotate_signing_keys(pool, tenant_id, &[], 0, &rows, storage::now()).await?;
    Ok(true)
}

/// A published signing key as the console lists it (no key material).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    /// next, active or retired
    pub state: String,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    /// When the scheduled rotation replaces it (active keys).
    pub rotates_at: Option<i64>,
}

/// The tenant's published keys, with when the scheduled rotation (every
/// `rotation_secs`) retires each active one.
pub async fn list_keys(
    pool: &Pool,
    tenant: &Tenant,
    rotation_secs: u64,
) -> Result<Vec<KeyInfo>, sqlx::Error> {
    let rows = storage::keys::list_published_keys(pool, &tenant.id, storage::now()).await?;
    let period = i64::try_from(rotation_secs).unwrap_or(i64::MAX);
    Ok(rows
        .into_iter()
        .map(|r| KeyInfo {
            rotates_at: (r.state == "active").then(|| {
                r.activated_at
                    .unwrap_or(r.created_at)
                    .saturating_add(period)
            }),
            kid: r.kid,
            alg: r.alg,
            state: r.state,
            created_at: r.created_at,
            activated_at: r.activated_at,
        })
        .collect())
}

/// One rotation step for every algorithm: next → active, active → retired (published until
/// the tokens it signed have expired), and a fresh next key.
pub async fn rotate_keys(
    pool: &Pool,
    master: &MasterKey,
    config: &Config,
    tenant: &Tenant,
) -> Result<Vec<String>, TenantError> {
    let specs = Alg::ALL.iter().map(|a| (*a, "next")).collect();
    let rows = generate_rows(master, &tenant.id, specs).await?;
    let now = storage::now();
    let longest_token = [
        config.access_token_ttl,
        config.id_token_ttl,
        tenant.settings.access_token_ttl.unwrap_or(0),
        crate::config::MAX_ACCESS_TOKEN_TTL,
    ]
    .into_iter()
    .max()
    .unwrap_or(86_400);
    // Retired keys stay published for the longest token lifetime plus clock skew.
    let retire_until = now + longest_token + 600;
    let promote: Vec<String> = Alg::ALL.iter().map(|a| a.as_str().to_string()).collect();
    storage::keys::rotate_signing_keys(pool, &tenant.id, &promote, retire_until, &rows, now)
        .await?;
    Ok(rows.into_iter().map(|r| r.kid).collect())
}

struct ActiveKey {
    kid: String,
    signer: Signer,
}

enum Signer {
    Pooled(PooledSigner),
    Jose(Box<dyn JwsSigner>),
}

impl Signer {
    fn sign(&self, input: &[u8]) -> Option<Vec<u8>> {
        match self {
            Signer::Pooled(p) => p.sign(input).ok(),
            Signer::Jose(j) => j.sign(input).ok(),
        }
    }
}

/// At most this many idle signing contexts per key (about one per concurrent signer).
const SIGNING_CONTEXTS: usize = 16;

/// RS256 and ES256 signing over OpenSSL contexts set up once and reused (`EVP_PKEY_sign` of
/// the SHA-256 digest, as `openssl speed` measures it). josekit's signers call
/// `EVP_DigestSignInit` for every token, which in OpenSSL 3 builds a fresh context and
/// fetches the algorithms each time: a measurable share of an RS256 token.
struct PooledSigner {
    alg: Alg,
    key: PKey<Private>,
    idle: Mutex<Vec<PkeyCtx<Private>>>,
}

impl PooledSigner {
    fn from_pem(alg: Alg, pem: &[u8]) -> Result<Self, KeyError> {
        let signer = Self {
            alg,
            key: PKey::private_key_from_pem(pem).map_err(|e| KeyError::Material(e.to_string()))?,
            idle: Mutex::new(Vec::new()),
        };
        // A key that cannot sign fails here, at load, rather than on the first token.
        let ctx = signer
            .context()
            .map_err(|e| KeyError::Material(e.to_string()))?;
        signer.put_back(ctx);
        Ok(signer)
    }

    fn context(&self) -> Result<PkeyCtx<Private>, ErrorStack> {
        if let Some(ctx) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(ctx);
        }
        let mut ctx = PkeyCtx::new(&self.key)?;
        ctx.sign_init()?;
        match self.alg {
            Alg::Rs256 => ctx.set_rsa_padding(Padding::PKCS1)?,
            // RFC 7518 §3.5: MGF1 with SHA-256 (OpenSSL's default: the signature digest) and
            // a salt as long as the digest.
            Alg::Ps256 => ctx.set_rsa_padding(Padding::PKCS1_PSS)?,
            Alg::Es256 | Alg::EdDsa => {}
        }
        ctx.set_signature_md(Md::sha256())?;
        if self.alg == Alg::Ps256 {
            ctx.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
        }
        Ok(ctx)
    }

    fn put_back(&self, ctx: PkeyCtx<Private>) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < SIGNING_CONTEXTS {
                idle.push(ctx);
            }
        }
    }

    /// The JWS signature of `input`: PKCS#1 v1.5 for RS256, PSS for PS256, `R || S` (RFC 7518
    /// §3.4) for ES256.
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, ErrorStack> {
        let digest = openssl::sha::sha256(input);
        let mut ctx = self.context()?;
        let mut sig = Vec::with_capacity(256);
        ctx.sign_to_vec(&digest, &mut sig)?;
        self.put_back(ctx);
        if self.alg == Alg::Es256 {
            let der = EcdsaSig::from_der(&sig)?;
            let mut raw = der.r().to_vec_padded(32)?;
            raw.extend_from_slice(&der.s().to_vec_padded(32)?);
            return Ok(raw);
        }
        Ok(sig)
    }
}

/// A tenant's keys as loaded into memory: the signers of active keys, verifiers of every
/// published key, and the JWKS document.
pub struct KeySet {
    active: HashMap<Alg, ActiveKey>,
    verifiers: HashMap<String, (Alg, Box<dyn JwsVerifier>)>,
    pub jwks: Vec<u8>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("kids", &self.verifiers.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
    /// A `crit` header (RFC 7515 §4.1.11): this verifier implements no extension, so a
    /// token that requires one is refused.
    #[error("critical header extensions are not supported")]
    CriticalExtension,
    #[error("no active key for the algorithm")]
    NoSigningKey,
}

impl KeySet {
    /// Opens the published keys of a tenant (rows from [`storage::keys::list_published_keys`]).
    pub fn load(master: &MasterKey, rows: &[SigningKeyRow]) -> Result<Self, KeyError> {
        let mut active = HashMap::new();
        let mut verifiers = HashMap::new();
        let mut keys = Vec::new();
        for row in rows {
            let Some(alg) = Alg::parse(&row.alg) else {
                continue;
            };
            let jwk = Jwk::from_bytes(row.public_jwk.as_bytes())?;
            let verifier: Box<dyn JwsVerifier> = match alg {
                Alg::Rs256 => Box::new(RS256.verifier_from_jwk(&jwk)?),
                Alg::Ps256 => Box::new(PS256.verifier_from_jwk(&jwk)?),
                Alg::Es256 => Box::new(ES256.verifier_from_jwk(&jwk)?),
                Alg::EdDsa => Box::new(EdDSA.verifier_from_jwk(&jwk)?),
            };
            verifiers.insert(row.kid.clone(), (alg, verifier));
            if row.state == "active" {
                let pem = master.open(&row.private_key, row.kid.as_bytes())?;
                let signer = match alg {
                    Alg::Rs256 | Alg::Ps256 | Alg::Es256 => {
                        Signer::Pooled(PooledSigner::from_pem(alg, &pem)?)
                    }
                    Alg::EdDsa => Signer::Jose(Box::new(EdDSA.signer_from_pem(&pem)?)),
                };
                active.insert(
                    alg,
                    ActiveKey {
                        kid: row.kid.clone(),
                        signer,
                    },
                );
            }
            let map: &Map<String, Value> = jwk.as_ref();
            keys.push(Value::Object(map.clone()));
        }
        let jwks = serde_json::to_vec(&serde_json::json!({ "keys": keys }))
            .map_err(|e| KeyError::Material(e.to_string()))?;
        Ok(Self {
            active,
            verifiers,
            jwks,
        })
    }

    /// Signs `claims` as a compact JWS with the active key of `alg`.
    pub fn sign(&self, alg: Alg, typ: &str, claims: &Value) -> Result<String, JwtError> {
        let key = self.active.get(&alg).ok_or(JwtError::NoSigningKey)?;
        let header = serde_json::json!({ "alg": alg.as_str(), "typ": typ, "kid": key.kid });
        let mut out = crypto::b64url(header.to_string().as_bytes());
        out.push('.');
        out.push_str(&crypto::b64url(claims.to_string().as_bytes()));
        let sig = key
            .signer
            .sign(out.as_bytes())
            .ok_or(JwtError::NoSigningKey)?;
        out.push('.');
        out.push_str(&crypto::b64url(&sig));
        Ok(out)
    }

    /// Verifies a compact JWS signed by one of the published keys and returns its header
    /// `typ` and claims. Checks nothing about the claims.
    pub fn verify(&self, token: &str) -> Result<(Option<String>, Map<String, Value>), JwtError> {
        let jws = CompactJws::parse(token)?;
        let kid = jws.kid().ok_or(JwtError::UnknownKey)?;
        let alg = jws.alg().ok_or(JwtError::Malformed)?;
        let (key_alg, verifier) = self.verifiers.get(kid).ok_or(JwtError::UnknownKey)?;
        if key_alg.as_str() != alg {
            return Err(JwtError::BadSignature);
        }
        jws.verify_with(verifier.as_ref())?;
        let typ = jws.typ().map(str::to_string);
        Ok((typ, jws.claims))
    }

    pub fn has_active(&self, alg: Alg) -> bool {
        self.active.contains_key(&alg)
    }
}

/// A compact JWS (RFC 7515 §7.1) split into its parts, header and claims decoded; its
/// signature is checked by [`CompactJws::verify_with`]. A `crit` header is refused: no
/// verifier here implements an extension.
#[derive(Debug)]
pub struct CompactJws<'a> {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    signing_input: &'a [u8],
    signature: Vec<u8>,
}

impl<'a> CompactJws<'a> {
    pub fn parse(token: &'a str) -> Result<Self, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let object = |part: &str| -> Result<Map<String, Value>, JwtError> {
            crypto::b64url_decode(part)
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or(JwtError::Malformed)
        };
        let header = object(h)?;
        if header.contains_key("crit") {
            return Err(JwtError::CriticalExtension);
        }
        let claims = object(p)?;
        let signature = crypto::b64url_decode(s).ok_or(JwtError::Malformed)?;
        Ok(Self {
            header,
            claims,
            signing_input: &token.as_bytes()[..h.len() + 1 + p.len()],
            signature,
        })
    }

    fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    pub fn alg(&self) -> Option<&str> {
        self.header_str("alg")
    }

    pub fn kid(&self) -> Option<&str> {
        self.header_str("kid")
    }

    pub fn typ(&self) -> Option<&str> {
        self.header_str("typ")
    }

    pub fn verify_with(&self, verifier: &dyn JwsVerifier) -> Result<(), JwtError> {
        verifier
            .verify(self.signing_input, &self.signature)
            .map_err(|_| JwtError::BadSignature)
    }
}

/// JWK members that only private or symmetric keys have (RFC 7518 §6.2.2, §6.3.2, §6.4.1;
/// RFC 8037 §2): a key someone else sends or registers must have none of them.
pub const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The asymmetric JWS algorithms Portcullis accepts from others (client assertions, DPoP
/// proofs): never `none` and never a MAC.
pub const FOREIGN_ALGS: [&str; 4] = ["ES256", "PS256", "RS256", "EdDSA"];

/// The verifier of a public JWK someone else registered or sent, for JWS algorithm `alg`:
/// `None` when the algorithm is not one of [`FOREIGN_ALGS`], the key does not fit it (josekit
/// checks `kty`, `crv`, a present `alg` and `use`), it holds private parts, or an RSA key is
/// shorter than 2048 bits.
pub fn foreign_verifier(alg: &str, jwk: &Jwk) -> Option<Box<dyn JwsVerifier>> {
    if PRIVATE_JWK_MEMBERS
        .iter()
        .any(|k| jwk.parameter(k).is_some())
    {
        return None;
    }
    if jwk.key_type() == "RSA" {
        let n = jwk.parameter("n").and_then(Value::as_str)?;
        let bytes = crypto::b64url_decode(n)?;
        let bits = bytes.len() * 8 - bytes.iter().take_while(|b| **b == 0).count() * 8;
        if bits < 2048 {
            return None;
        }
    }
    let verifier: Box<dyn JwsVerifier> = match alg {
        "RS256" => Box::new(RS256.verifier_from_jwk(jwk).ok()?),
        "PS256" => Box::new(PS256.verifier_from_jwk(jwk).ok()?),
        "ES256" => Box::new(ES256.verifier_from_jwk(jwk).ok()?),
        "EdDSA" => Box::new(EdDSA.verifier_from_jwk(jwk).ok()?),
        _ => return None,
    };
    Some(verifier)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyset() -> KeySet {
        let master = MasterKey::generate();
        let rows: Vec<_> = Alg::ALL
            .iter()
            .flat_map(|a| {
                let master = master.clone();
                ["active", "next"]
                    .into_iter()
                    .map(move |st| new_key_row(&master, "t1", *a, st, 1).unwrap())
            })
            .collect();
        KeySet::load(&master, &rows).unwrap()
    }

    #[test]
    fn tokens_signed_with_each_algorithm_verify() {
        let ks = keyset();
        // Several rounds: the pooled signers reuse their OpenSSL contexts from the second on.
        for round in 0..3 {
            for alg in Alg::ALL {
                let jwt = ks
                    .sign(
                        alg,
                        "JWT",
                        &serde_json::json!({"sub": "u1", "round": round}),
                    )
                    .unwrap();
                let (typ, claims) = ks.verify(&jwt).unwrap();
                assert_eq!(typ.as_deref(), Some("JWT"));
                assert_eq!(claims["sub"], "u1");
                assert_eq!(claims["round"], round);
            }
        }
    }

    #[test]
    fn a_tampered_payload_fails_verification() {
        let ks = keyset();
        let jwt = ks
            .sign(Alg::Es256, "JWT", &serde_json::json!({"sub": "u1"}))
            .unwrap();
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let forged = crypto::b64url(br#"{"sub":"admin"}"#);
        parts[1] = &forged;
        assert_eq!(
            ks.verify(&parts.join(".")).unwrap_err(),
            JwtError::BadSignature
        );
    }

    #[test]
    fn jwks_publishes_next_and_active_keys_with_kid_use_and_alg() {
        let ks = keyset();
        let doc: Value = serde_json::from_slice(&ks.jwks).unwrap();
        let keys = doc["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2 * Alg::ALL.len());
        for k in keys {
            assert!(k["kid"].is_string());
            assert_eq!(k["use"], "sig");
            assert!(k["alg"].is_string());
            assert!(k.get("d").is_none(), "no private parts");
        }
    }
}
