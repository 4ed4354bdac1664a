//! The per-tenant OpenID Provider as an instance serves it: tenant, issuer, loaded keys,
//! and the pre-serialised discovery and JWKS documents. Cached per instance and
//! re-validated against the tenant's version in the database every `cache_ttl_secs`, so
//! that a change made by the CLI or another instance is served within seconds.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::crypto::MasterKey;
use crate::keys::{Alg, KeySet, FOREIGN_ALGS};
use crate::storage::{self, Pool};
use crate::tenants::{Tenant, TenantSlug};

pub struct Provider {
    pub tenant: Tenant,
    pub issuer: String,
    pub keys: KeySet,
    pub discovery: Vec<u8>,
    pub loaded_at: Instant,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.issuer)
            .finish()
    }
}

impl Provider {
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }
}

/// Authentication context classes (OpenID Connect Core §2 `acr`), weakest first: `1` a
/// password or an upstream sign-in, `2` with a second factor, `phr` phishing-resistant (a
/// passkey with user verification; OpenID EAP ACR Values 1.0 §2).
pub const ACR_VALUES: [&str; 3] = ["1", "2", "phr"];

/// Scopes the provider understands.
pub const SCOPES_SUPPORTED: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// Claims the provider can return.
pub const CLAIMS_SUPPORTED: [&str; 22] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "at_hash",
    "sid",
    "azp",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "picture",
    "locale",
    "zoneinfo",
    "updated_at",
    "email",
    "email_verified",
];

pub fn issuer_for(public_url: &str, slug: &str) -> String {
    format!("{public_url}/t/{slug}")
}

/// OpenID Connect Discovery 1.0 §3 (and RFC 8414): every value listed is one we honour.
pub fn discovery_document(issuer: &str, tenant: &Tenant) -> serde_json::Value {
    let e = |p: &str| format!("{issuer}{p}");
    let algs: Vec<&str> = Alg::ALL.iter().map(|a| a.as_str()).collect();
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": e("/authorize"),
        "token_endpoint": e("/token"),
        "userinfo_endpoint": e("/userinfo"),
        "jwks_uri": e("/jwks"),
        "revocation_endpoint": e("/revoke"),
        "introspection_endpoint": e("/introspect"),
        "end_session_endpoint": e("/logout"),
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "userinfo_signing_alg_values_supported": ["none"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": FOREIGN_ALGS,
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": FOREIGN_ALGS,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": FOREIGN_ALGS,
        "pushed_authorization_request_endpoint": e("/par"),
        "require_pushed_authorization_requests": tenant.settings.require_pushed_authorization_requests,
        "dpop_signing_alg_values_supported": FOREIGN_ALGS,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": CLAIMS_SUPPORTED,
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "require_request_uri_registration": false,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "acr_values_supported": ACR_VALUES,
        "ui_locales_supported": crate::i18n::SUPPORTED,
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": false,
        "access_token_signing_alg_values_supported": algs,
    });
    if tenant.settings.registration_enabled {
        doc["registration_endpoint"] = json!(e("/register"));
    }
    doc
}

/// Retired keys leave the JWKS when they expire, which changes no tenant version; a full
/// reload every few minutes keeps the published set exact.
const FULL_RELOAD: Duration = Duration::from_secs(300);

struct Entry {
    provider: Arc<Provider>,
    checked_at: Instant,
}

pub struct ProviderCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, Entry>>,
    /// Opens the tenants' private signing keys.
    master_key: MasterKey,
    /// `public_url`, the base of every issuer.
    public_url: String,
}

impl ProviderCache {
    pub fn new(ttl: Duration, master_key: MasterKey, public_url: &str) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
            master_key,
            public_url: public_url.to_string(),
        }
    }

    fn cached(&self, slug: &str) -> Option<(Arc<Provider>, bool)> {
        let entries = self.entries.read().ok()?;
        let e = entries.get(slug)?;
        Some((e.provider.clone(), e.checked_at.elapsed() < self.ttl))
    }

    fn store(&self, slug: &str, provider: Arc<Provider>) {
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(
                slug.to_string(),
                Entry {
                    provider,
                    checked_at: Instant::now(),
                },
            );
        }
    }

    /// Drops an instance's view of a tenant (after this instance changed it).
    pub fn invalidate(&self, slug: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(slug);
        }
    }

    /// The provider of tenant `slug`, or `None` when no such tenant exists.
    pub async fn get(&self, pool: &Pool, slug: &str) -> anyhow::Result<Option<Arc<Provider>>> {
        if TenantSlug::parse(slug).is_err() {
            return Ok(None);
        }
        let stale = match self.cached(slug) {
            Some((p, true)) => return Ok(Some(p)),
            Some((p, false)) => Some(p),
            None => None,
        };
        if let Some(old) = stale {
            // One cheap query tells whether anything changed since the last load.
            match storage::tenants::find_tenant_version(pool, slug).await? {
                None => {
                    self.invalidate(slug);
                    return Ok(None);
                }
                Some(v) if v == old.tenant.version && old.loaded_at.elapsed() < FULL_RELOAD => {
                    self.store(slug, old.clone());
                    return Ok(Some(old));
                }
                Some(_) => {}
            }
        }
        let Some(row) = storage::tenants::find_tenant_by_slug(pool, slug).await? else {
            return Ok(None);
        };
        let tenant = Tenant::from(row);
        let mut rows = storage::keys::list_published_keys(pool, &tenant.id, storage::now()).await?;
        if crate::keys::provision_missing_keys(pool, &self.master_key, &tenant.id, &rows).await? {
            rows = storage::keys::list_published_keys(pool, &tenant.id, storage::now()).await?;
        }
        let master = self.master_key.clone();
        let keys = tokio::task::spawn_blocking(move || KeySet::load(&master, &rows)).await??;
        let issuer = issuer_for(&self.public_url, &tenant.slug);
        let discovery = serde_json::to_vec(&discovery_document(&issuer, &tenant))?;
        let provider = Arc::new(Provider {
            tenant,
            issuer,
            keys,
            discovery,
            loaded_at: Instant::now(),
        });
        self.store(slug, provider.clone());
        Ok(Some(provider))
    }
}
