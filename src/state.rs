//! The one application state, built once at start-up and passed to handlers as
//! `web::Data<AppState>` (never a global). Cheap to clone.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::accounts::PasswordHasher;
use crate::api_keys::UsageCounter;
use crate::audit::AuditSink;
use crate::clients::ClientCache;
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::metrics::Metrics;
use crate::protection::Protection;
use crate::provider::ProviderCache;
use crate::storage::Pool;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: Pool,
    pub master_key: MasterKey,
    pub hasher: PasswordHasher,
    pub providers: Arc<ProviderCache>,
    /// Outbound HTTP (back-channel logout, upstream IdPs), with a timeout on every call;
    /// built on first use (loading the system's CA certificates costs start-up time and
    /// memory an instance may never need).
    http: Arc<OnceLock<Result<reqwest::Client, String>>>,
    /// Key for CSRF tokens and other server-side MACs, derived from the master key.
    pub mac_key: Arc<Vec<u8>>,
    pub audit: AuditSink,
    /// SMTP transport when `smtp_url` is configured.
    pub smtp: Option<Arc<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>>>,
    /// Key for API key digests, derived from the master key.
    pub api_key_mac: Arc<Vec<u8>>,
    pub api_key_usage: Arc<UsageCounter>,
    pub clients: Arc<ClientCache>,
    /// Upstream OIDC discovery documents (and JWKS), reused for a few minutes.
    pub federation: Arc<crate::federation::oidc::DiscoveryCache>,
    /// Rate limits, lockouts and bans (in-process, or shared through Redis).
    pub protection: Arc<Protection>,
    pub metrics: Arc<Metrics>,
    /// Browser origins the tenants' clients allow (CORS), reused for `cache_ttl_secs`.
    pub origins: Arc<crate::clients::OriginCache>,
    /// This instance's name in the job schedule.
    pub instance_id: Arc<str>,
}

impl AppState {
    /// The outbound HTTP client (timeouts from `outbound_timeout_secs`, no redirects).
    pub fn http(&self) -> anyhow::Result<&reqwest::Client> {
        let timeout = Duration::from_secs(self.config.outbound_timeout_secs);
        self.http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .timeout(timeout)
                    .connect_timeout(timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| anyhow::anyhow!("cannot build the outbound HTTP client: {e}"))
    }

    /// Builds the state; starts the audit writer, so it must run inside a Tokio runtime.
    pub fn new(
        config: Config,
        pool: Pool,
        master_key: MasterKey,
        protection: Protection,
    ) -> anyhow::Result<Self> {
        let mac_key = Arc::new(master_key.derive("portcullis mac v1"));
        let ttl = Duration::from_secs(config.cache_ttl_secs);
        Ok(Self {
            audit: AuditSink::start(pool.clone()),
            smtp: crate::mail::transport(&config)?.map(Arc::new),
            api_key_mac: Arc::new(master_key.derive("portcullis api keys v1")),
            api_key_usage: Arc::new(UsageCounter::default()),
            clients: Arc::new(ClientCache::new(ttl)),
            federation: Arc::default(),
            protection: Arc::new(protection),
            metrics: Arc::default(),
            origins: Arc::new(crate::clients::OriginCache::new(ttl)),
            instance_id: Arc::from(uuid::Uuid::new_v4().to_string()),
            hasher: PasswordHasher::new(config.argon2),
            providers: Arc::new(ProviderCache::new(Duration::from_secs(
                config.cache_ttl_secs,
            ))),
            config: Arc::new(config),
            pool,
            master_key,
            http: Arc::default(),
            mac_key,
        })
    }
}
