//! Wiring: the one application state, built once at start-up and passed to handlers as
//! `web::Data<AppState>` (never a global). Cheap to clone. Domain modules never see it:
//! the transport layer hands each domain function what it uses, through the small
//! per-domain `Deps` the methods below build.

use std::sync::Arc;
use std::time::Duration;

use crate::accounts::PasswordHasher;
use crate::api_keys::UsageCounter;
use crate::audit::AuditSink;
use crate::clients::{ClientCache, OriginCache};
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::federation::DiscoveryCache;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::outbound::Outbound;
use crate::protection::Protection;
use crate::provider::ProviderCache;
use crate::storage::Pool;
use crate::tenants::{Tenant, TenantError};
use crate::{
    accounts, api_keys, authorization, clients, federation, first_party, keys, mfa, passkeys,
    tokens,
};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: Pool,
    pub master_key: MasterKey,
    pub hasher: PasswordHasher,
    pub providers: Arc<ProviderCache>,
    /// Outbound HTTP (back-channel logout, upstream IdPs), with a timeout on every call.
    pub outbound: Arc<Outbound>,
    /// Key for CSRF tokens and other server-side MACs, derived from the master key.
    pub mac_key: Arc<Vec<u8>>,
    pub audit: AuditSink,
    pub mailer: Arc<Mailer>,
    /// Key for API key digests, derived from the master key.
    pub api_key_mac: Arc<Vec<u8>>,
    pub api_key_usage: Arc<UsageCounter>,
    pub client_cache: Arc<ClientCache>,
    /// Browser origins the tenants' clients allow (CORS), reused for `cache_ttl_secs`.
    pub origins: Arc<OriginCache>,
    /// Clients' key sets fetched from their `jwks_uri` (private_key_jwt).
    pub client_jwks: Arc<clients::jwks::JwksCache>,
    /// Upstream OIDC discovery documents (and JWKS), reused for a few minutes.
    pub discovery: Arc<DiscoveryCache>,
    /// Rate limits, lockouts and bans (in-process, or shared through Redis).
    pub protection: Arc<Protection>,
    pub metrics: Arc<Metrics>,
    /// This instance's name in the job schedule.
    pub instance_id: Arc<str>,
}

impl AppState {
    /// Builds the state; starts the audit writer, so it must run inside a Tokio runtime.
    pub fn new(
        config: Config,
        pool: Pool,
        master_key: MasterKey,
        protection: Protection,
    ) -> anyhow::Result<Self> {
        let ttl = Duration::from_secs(config.cache_ttl_secs);
        let metrics = Arc::new(Metrics::default());
        Ok(Self {
            audit: AuditSink::start(pool.clone(), metrics.clone()),
            metrics,
            mailer: Arc::new(Mailer::new(&config)?),
            api_key_mac: Arc::new(master_key.derive("portcullis api keys v1")),
            api_key_usage: Arc::new(UsageCounter::default()),
            client_cache: Arc::new(ClientCache::new(ttl)),
            origins: Arc::new(OriginCache::new(ttl)),
            client_jwks: Arc::default(),
            discovery: Arc::default(),
            protection: Arc::new(protection),
            instance_id: Arc::from(uuid::Uuid::new_v4().to_string()),
            hasher: PasswordHasher::new(config.argon2)?,
            providers: Arc::new(ProviderCache::new(
                ttl,
                master_key.clone(),
                &config.public_url,
            )),
            outbound: Arc::new(Outbound::new(Duration::from_secs(
                config.outbound_timeout_secs,
            ))),
            mac_key: Arc::new(master_key.derive("portcullis mac v1")),
            config: Arc::new(config),
            pool,
            master_key,
        })
    }

    pub fn accounts(&self) -> accounts::Deps<'_> {
        accounts::Deps {
            pool: &self.pool,
            hasher: &self.hasher,
            mailer: &self.mailer,
            public_url: &self.config.public_url,
        }
    }

    pub fn api_keys(&self) -> api_keys::Deps<'_> {
        api_keys::Deps {
            pool: &self.pool,
            mac: &self.api_key_mac,
            usage: &self.api_key_usage,
        }
    }

    pub fn clients(&self) -> clients::Deps<'_> {
        clients::Deps {
            pool: &self.pool,
            cache: &self.client_cache,
            origins: &self.origins,
            outbound: &self.outbound,
            jwks: &self.client_jwks,
        }
    }

    pub fn authorization(&self) -> authorization::Deps<'_> {
        authorization::Deps {
            pool: &self.pool,
            config: &self.config,
            clients: self.clients(),
        }
    }

    pub fn tokens(&self) -> tokens::Deps<'_> {
        tokens::Deps {
            pool: &self.pool,
            config: &self.config,
            audit: &self.audit,
            mac_key: &self.mac_key,
        }
    }

    pub fn passkeys(&self) -> passkeys::Deps<'_> {
        passkeys::Deps {
            pool: &self.pool,
            audit: &self.audit,
        }
    }

    /// The WebAuthn relying party for a tenant's pages (the public URL's host and origin).
    pub fn relying_party(
        &self,
        tenant: &crate::tenants::Tenant,
    ) -> Result<passkeys::RelyingParty, passkeys::PasskeyError> {
        passkeys::RelyingParty::new(&self.config.public_url, &tenant.name)
    }

    pub fn mfa(&self) -> mfa::Deps<'_> {
        mfa::Deps {
            pool: &self.pool,
            master_key: &self.master_key,
        }
    }

    pub fn first_party(&self) -> first_party::Deps<'_> {
        first_party::Deps {
            pool: &self.pool,
            config: &self.config,
            hasher: &self.hasher,
            master_key: &self.master_key,
            audit: &self.audit,
            clients: self.clients(),
            mac_key: &self.mac_key,
        }
    }

    pub fn federation(&self) -> federation::Deps<'_> {
        federation::Deps {
            pool: &self.pool,
            master_key: &self.master_key,
            outbound: &self.outbound,
            discovery: &self.discovery,
            hasher: &self.hasher,
        }
    }

    /// Rotates a tenant's signing keys ([`keys::rotate_keys`]) and drops this instance's
    /// cached provider of it, so discovery and JWKS serve the new keys at once; the ids of
    /// the keys that become next.
    pub async fn rotate_keys(&self, tenant: &Tenant) -> Result<Vec<String>, TenantError> {
        let kids = keys::rotate_keys(&self.pool, &self.master_key, &self.config, tenant).await?;
        self.providers.invalidate(&tenant.slug);
        Ok(kids)
    }
}
