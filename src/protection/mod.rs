//! Protection of the endpoints against abuse: rate limiting per client address (a sliding
//! window per endpoint group), a lockout of addresses that keep hitting the limit, persisted
//! bans of repeat offenders, and the client address behind trusted proxies. It also owns the
//! classification of request paths into endpoint groups that the HTTP layer applies it with.
//! It never imports actix-web and keeps no state a second instance would need: with
//! `redis_url` the counters live in Redis, and bans live in the database.
//!
//! The algorithm is the sliding-window counter: the count of the current fixed window plus
//! the previous window's count weighted by the part of it the sliding window still covers.
//! It costs O(1) memory per key and the same arithmetic runs in-process ([`memory`]) and in
//! Redis ([`redis_store`], one Lua script per request, so every instance shares one count).
//! No crate offers one algorithm over both stores, hence this module.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::RwLock;

use ipnet::IpNet;
use serde::Serialize;

use crate::audit::{self, AuditEvent, AuditSink, Context};
use crate::config::{RateLimitConfig, Window};
use crate::storage::{self, Pool};

pub mod hit;
pub mod memory;
pub mod redis_store;

pub use hit::{Hit, HitSpec};

pub use crate::config::Group;

/// How an endpoint answers errors: the JSON API's envelope, RFC 6749 JSON, or an HTML page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Api,
    OAuth,
    Page,
}

/// What the protection layer knows of a request from its method and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The tenant of `/t/{slug}/…`; `None` at the root (where the default tenant may apply).
    pub tenant: Option<String>,
    pub group: Group,
    /// The counter's name: the endpoint itself for credential endpoints, else the group.
    pub endpoint: &'static str,
    pub flavour: Flavour,
    /// Whether CORS applies (token, userinfo, revocation, introspection, JSON API).
    pub cors: bool,
}

/// Credential endpoints (POST), each counted on its own.
const CREDENTIAL_ENDPOINTS: [&str; 32] = [
    "/token",
    "/par",
    "/revoke",
    "/account/backup-codes",
    "/api/v1/auth/revoke",
    "/api/v1/mfa/backup-codes",
    "/login",
    "/mfa",
    "/mfa/enroll",
    "/reset-password",
    "/account/password",
    "/account/mfa",
    "/account/mfa/disable",
    "/register",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/mfa/verify",
    "/api/v1/auth/passkey/options",
    "/api/v1/auth/passkey/verify",
    "/login/passkey/options",
    "/mfa/passkey/options",
    "/mfa/enroll/passkey/options",
    "/account/passkeys",
    "/api/v1/auth/register",
    "/api/v1/auth/verify-email",
    "/api/v1/auth/reset-password",
    "/api/v1/auth/change-password",
    "/api/v1/apikeys/verify",
    "/api/v1/mfa/verify",
    "/api/v1/mfa/enable",
    "/api/v1/mfa/disable",
    "/admin/login",
];

const PUBLIC_ENDPOINTS: [&str; 5] = [
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
    "/jwks",
    "/saml/metadata",
    "/branding.css",
];

const CORS_ENDPOINTS: [&str; 5] = ["/token", "/par", "/userinfo", "/revoke", "/introspect"];

const OAUTH_ENDPOINTS: [&str; 6] = [
    "/token",
    "/par",
    "/introspect",
    "/revoke",
    "/userinfo",
    "/jwks",
];

/// Classifies a request; `None` for the infrastructure endpoints that are never limited
/// (`/health`, `/ready`, `/metrics`).
pub fn classify(method: &str, path: &str) -> Option<Route> {
    let (tenant, rest) = match path.strip_prefix("/t/") {
        Some(after) => match after.find('/') {
            Some(i) => (Some(&after[..i]), &after[i..]),
            None => (Some(after), "/"),
        },
        None => (None, path),
    };
    if tenant.is_none() && matches!(rest, "/health" | "/ready" | "/metrics") {
        return None;
    }
    let cors = CORS_ENDPOINTS.contains(&rest) || rest.starts_with("/api/v1/");
    let flavour = if rest.starts_with("/api/") || (tenant.is_none() && rest == "/openapi.json") {
        Flavour::Api
    } else if OAUTH_ENDPOINTS.contains(&rest)
        || rest.starts_with("/register")
        || rest.starts_with("/.well-known/")
    {
        Flavour::OAuth
    } else {
        Flavour::Page
    };
    let (group, endpoint) = if method == "OPTIONS" {
        (Group::Public, "preflight")
    } else if method == "POST" {
        match CREDENTIAL_ENDPOINTS.iter().find(|e| **e == rest) {
            Some(e) => (Group::Credentials, *e),
            None => (Group::Api, "api"),
        }
    } else if PUBLIC_ENDPOINTS.contains(&rest)
        || rest.starts_with("/.well-known/")
        || (tenant.is_none() && (rest == "/openapi.json" || rest.starts_with("/static/")))
    {
        (Group::Public, "public")
    } else {
        (Group::Api, "api")
    };
    Some(Route {
        tenant: tenant.map(str::to_string),
        group,
        endpoint,
        flavour,
        cors,
    })
}

pub use crate::config::parse_net;

/// The client's address: the socket peer, unless the peer is a trusted proxy, in which case
/// `X-Forwarded-For` is read from the right, skipping trusted proxies, and the first
/// untrusted hop is the client. A malformed entry stops the walk at the last trusted hop,
/// so a client cannot choose its own address by prepending values.
pub fn client_addr(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer.map(canonical)?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let Some(xff) = forwarded_for else {
        return Some(peer);
    };
    let mut last = peer;
    for hop in xff.rsplit(',') {
        let Some(ip) = parse_hop(hop) else {
            return Some(last);
        };
        if !is_trusted(&ip) {
            return Some(ip);
        }
        last = ip;
    }
    Some(last)
}

fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    // `[v6]:port` or `v4:port`
    let host = match hop.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.0,
        None => hop.rsplit_once(':')?.0,
    };
    host.parse::<IpAddr>().ok().map(canonical)
}

/// IPv4-mapped IPv6 addresses are IPv4 addresses.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The unit that is counted, locked and banned: an IPv4 address, or the /64 network of an
/// IPv6 address (one host usually owns a whole /64).
pub fn addr_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let net = ipnet::Ipv6Net::new(v6, 64)
                .map(|n| n.trunc())
                .unwrap_or_else(|_| ipnet::Ipv6Net::from(v6));
            net.to_string()
        }
    }
}

/// What the limiter said about one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    pub limit: u64,
    pub remaining: u64,
    pub window_secs: u64,
    /// Unix time at which the count allows a request again (rejections) or at which the
    /// current window ends (admissions).
    pub reset_at: u64,
    /// Seconds to wait before retrying (only meaningful on rejections, at least 1).
    pub retry_after: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Allowed(Quota),
    Limited(Quota),
    /// The address is locked out after repeated rejections (`retry_after` is the rest of
    /// the lockout).
    Locked(Quota),
    /// The address is banned ([`Protection::is_banned`]).
    Banned,
}

/// The sliding-window estimate and what follows from it, from the two windows' counts.
pub fn quota(window: Window, prev: u64, cur: u64, now_ms: u64, admitted: bool) -> Quota {
    let w_ms = window.window_secs.max(1) * 1000;
    let limit = window.limit as f64;
    let start = now_ms / w_ms * w_ms;
    let end = start + w_ms;
    let f = (now_ms - start) as f64 / w_ms as f64;
    let (prev_f, cur_f) = (prev as f64, cur as f64);
    let estimate = prev_f * (1.0 - f) + cur_f;
    let remaining = (limit - estimate).floor().max(0.0) as u64;
    let need = limit - 1.0;
    let wait_ms = if estimate <= need {
        0.0
    } else {
        // Within this window only the previous window's share decays.
        let within = (cur_f <= need && prev > 0)
            .then(|| w_ms as f64 * (1.0 - f - (need - cur_f) / prev_f))
            .filter(|t| now_ms as f64 + t < end as f64);
        within.unwrap_or_else(|| {
            let next = if cur_f > need {
                w_ms as f64 * (1.0 - need / cur_f)
            } else {
                0.0
            };
            (end - now_ms) as f64 + next
        })
    };
    let wait_ms = wait_ms.max(0.0).ceil() as u64;
    let retry_after = wait_ms.div_ceil(1000).max(1);
    let reset_at = if admitted {
        end.div_ceil(1000)
    } else {
        (now_ms + wait_ms).div_ceil(1000)
    };
    Quota {
        limit: window.limit,
        remaining,
        window_secs: window.window_secs,
        reset_at,
        retry_after,
    }
}

fn locked_quota(window: Window, secs: u64) -> Quota {
    let retry_after = secs.max(1);
    Quota {
        limit: window.limit,
        remaining: 0,
        window_secs: window.window_secs,
        reset_at: storage::now().max(0) as u64 + retry_after,
        retry_after,
    }
}

/// Where the counters live.
pub enum Store {
    Memory(memory::MemoryStore),
    Redis(redis_store::RedisStore),
}

/// Banned addresses and ranges as this instance last read them from the database.
#[derive(Default)]
struct BanList {
    exact: HashMap<String, Option<i64>>,
    nets: Vec<(IpNet, Option<i64>)>,
}

impl BanList {
    fn contains(&self, ip: IpAddr, key: &str, now: i64) -> bool {
        let live = |exp: &Option<i64>| exp.is_none_or(|e| e > now);
        self.exact.get(key).is_some_and(live)
            || self
                .nets
                .iter()
                .any(|(n, exp)| n.contains(&ip) && live(exp))
    }
}

pub struct Protection {
    pub policy: RateLimitConfig,
    trusted: Vec<IpNet>,
    store: Store,
    /// Used when Redis fails, so limits still hold per instance.
    fallback: memory::MemoryStore,
    bans: RwLock<BanList>,
}

#[derive(Debug, thiserror::Error)]
pub enum BanError {
    #[error("{0}")]
    Invalid(String),
    #[error("no such ban")]
    NotFound,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for BanError {
    fn from(e: sqlx::Error) -> Self {
        BanError::Unexpected(e.into())
    }
}

/// A ban as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Ban {
    pub ip: String,
    pub reason: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub created_by: String,
}

impl From<storage::bans::BanRow> for Ban {
    fn from(r: storage::bans::BanRow) -> Self {
        Self {
            ip: r.ip,
            reason: r.reason,
            created_at: r.created_at,
            expires_at: r.expires_at,
            created_by: r.created_by,
        }
    }
}

impl Protection {
    /// Builds the limiter: in-process, or in Redis when `redis_url` is set (connecting now,
    /// so a wrong URL fails the start with a clear message).
    pub async fn new(config: &crate::config::Config) -> anyhow::Result<Self> {
        let trusted = config
            .trusted_proxies
            .iter()
            .filter_map(|p| parse_net(p))
            .collect();
        let store = match &config.redis_url {
            Some(url) => Store::Redis(
                redis_store::RedisStore::connect(url, &config.redis_prefix)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot connect to Redis (redis_url): {e}"))?,
            ),
            None => Store::Memory(memory::MemoryStore::default()),
        };
        Ok(Self {
            policy: config.rate_limit.clone(),
            trusted,
            store,
            fallback: memory::MemoryStore::default(),
            bans: RwLock::default(),
        })
    }

    pub fn backend(&self) -> &'static str {
        match self.store {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }

    pub fn client_addr(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        client_addr(peer, forwarded_for, &self.trusted)
    }

    /// The window of `group`: the tenant's override, else the server's.
    pub fn window(&self, group: Group, overrides: &BTreeMap<Group, Window>) -> Window {
        overrides.get(&group).copied().unwrap_or(match group {
            Group::Credentials => self.policy.credentials,
            Group::Api => self.policy.api,
            Group::Public => self.policy.public,
        })
    }

    /// Whether `ip` is one of the trusted proxies (counted never: a proxy that forwards no
    /// usable client address must not get everyone behind it locked out).
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// Whether `ip` is banned. Checked before anything else of a request (and also when rate
    /// limiting is off); [`Protection::check`] only counts.
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        let addr = addr_key(ip);
        self.bans
            .read()
            .is_ok_and(|b| b.contains(ip, &addr, storage::now()))
    }

    /// Counts one request of `ip` at `route` (tenant `tenant_key`, window `window`); bans are
    /// [`Protection::is_banned`]'s.
    pub async fn check(
        &self,
        pool: &Pool,
        audit: &AuditSink,
        route: &Route,
        tenant_key: &str,
        ip: IpAddr,
        window: Window,
    ) -> Verdict {
        let addr = addr_key(ip);
        let key = format!("{tenant_key}:{}:{addr}", route.endpoint);
        let server = self.window(route.group, &BTreeMap::new());
        let spec = HitSpec {
            key: &key,
            addr: &addr,
            window,
            policy: &self.policy,
            // limit/window >= the server's limit/window, compared without division.
            counts_towards_lockout: u128::from(window.limit) * u128::from(server.window_secs)
                >= u128::from(server.limit) * u128::from(window.window_secs),
        };
        let hit = match &self.store {
            Store::Memory(m) => m.hit(&spec),
            Store::Redis(r) if r.available() => match r.hit(&spec).await {
                Ok(hit) => hit,
                Err(e) => {
                    r.failed();
                    tracing::warn!(error = %e, "Redis rate limiter unavailable; counting in-process for a second");
                    self.fallback.hit(&spec)
                }
            },
            Store::Redis(_) => self.fallback.hit(&spec),
        };
        match hit {
            Hit::Allowed { prev, cur, now_ms } => {
                Verdict::Allowed(quota(window, prev, cur, now_ms, true))
            }
            Hit::Rejected {
                prev,
                cur,
                now_ms,
                lockout,
            } => {
                let q = quota(window, prev, cur, now_ms, false);
                match lockout {
                    None => Verdict::Limited(q),
                    Some(count) => {
                        self.locked_out(pool, audit, ip, &addr, count).await;
                        Verdict::Locked(locked_quota(window, self.policy.lockout_secs))
                    }
                }
            }
            Hit::Locked { remaining_ms } => {
                Verdict::Locked(locked_quota(window, remaining_ms.div_ceil(1000)))
            }
        }
    }

    /// An address was just locked out: audit it, and ban it once it has been locked out
    /// `ban_after_lockouts` times within the ban window.
    async fn locked_out(
        &self,
        pool: &Pool,
        sink: &AuditSink,
        ip: IpAddr,
        addr: &str,
        lockouts: u64,
    ) {
        let ctx = Context {
            ip: Some(ip.to_string()),
            ..Context::default()
        };
        audit::record(
            sink,
            AuditEvent::new("ip.locked", None)
                .detail("ip", addr)
                .detail("lockouts", lockouts)
                .detail("duration_secs", self.policy.lockout_secs),
            &ctx,
        );
        if self.policy.ban_after_lockouts > 0 && lockouts >= self.policy.ban_after_lockouts {
            let reason = format!("{lockouts} rate-limit lockouts");
            match self
                .insert_ban(pool, addr, &reason, None, "rate-limiter")
                .await
            {
                Ok(_) => audit::record(
                    sink,
                    AuditEvent::new("ip.banned", None)
                        .actor(Some("rate-limiter"))
                        .detail("ip", addr)
                        .detail("reason", reason),
                    &ctx,
                ),
                Err(e) => tracing::error!(error = %e, "cannot persist a ban"),
            }
        }
    }

    async fn insert_ban(
        &self,
        pool: &Pool,
        ip: &str,
        reason: &str,
        expires_at: Option<i64>,
        created_by: &str,
    ) -> Result<Ban, BanError> {
        let row = storage::bans::BanRow {
            ip: ip.to_string(),
            reason: reason.chars().take(500).collect(),
            created_at: storage::now(),
            expires_at,
            created_by: created_by.to_string(),
        };
        storage::bans::upsert_ban(pool, &row).await?;
        self.refresh_bans(pool).await?;
        Ok(Ban::from(row))
    }

    /// Reloads the ban list (every few seconds, so bans made elsewhere apply here too).
    pub async fn refresh_bans(&self, pool: &Pool) -> Result<(), sqlx::Error> {
        let rows = storage::bans::list_live_bans(pool, storage::now()).await?;
        let mut list = BanList::default();
        for r in rows {
            // Addresses and IPv6 /64s are looked up by their key; other ranges by containment.
            match r.ip.parse::<IpNet>() {
                Ok(IpNet::V6(net)) if net.prefix_len() == 64 => {
                    list.exact.insert(r.ip, r.expires_at);
                }
                Ok(net) => list.nets.push((net, r.expires_at)),
                Err(_) => {
                    list.exact.insert(r.ip, r.expires_at);
                }
            }
        }
        if let Ok(mut b) = self.bans.write() {
            *b = list;
        }
        Ok(())
    }

    /// Drops expired in-process counters.
    pub fn sweep(&self) {
        if let Store::Memory(m) = &self.store {
            m.sweep();
        }
        self.fallback.sweep();
    }

    /// Forgets the lockout and violations of an address (when an operator lifts a ban).
    async fn clear(&self, addr: &str) {
        if let Store::Redis(r) = &self.store {
            if let Err(e) = r.clear(addr).await {
                tracing::warn!(error = %e, "cannot clear Redis lockout state");
            }
        }
        if let Store::Memory(m) = &self.store {
            m.clear(addr);
        }
        self.fallback.clear(addr);
    }
}

/// The normalised form of a ban target given by an operator: an address (IPv6 as its /64)
/// or a CIDR range.
pub fn parse_ban_target(s: &str) -> Result<String, BanError> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(addr_key(ip));
    }
    match s.parse::<IpNet>() {
        Ok(net) => Ok(net.trunc().to_string()),
        Err(_) => Err(BanError::Invalid(format!(
            "ip {s:?} must be an IP address or a CIDR range"
        ))),
    }
}

/// An operator's ban, as asked for.
pub struct BanRequest<'a> {
    /// An address or a CIDR range.
    pub target: &'a str,
    pub reason: Option<&'a str>,
    /// For how long; `None` bans for good.
    pub expires_in_secs: Option<i64>,
}

/// Longest temporary ban: ten years.
const MAX_BAN_SECS: i64 = 10 * 365 * 86_400;

pub async fn list_bans(pool: &Pool) -> Result<Vec<Ban>, BanError> {
    Ok(storage::bans::list_live_bans(pool, storage::now())
        .await?
        .into_iter()
        .map(Ban::from)
        .collect())
}

impl Protection {
    /// Bans an address or range (an operator's decision), until `expires_in_secs` or for good.
    pub async fn ban(
        &self,
        pool: &Pool,
        sink: &AuditSink,
        request: BanRequest<'_>,
        actor: &str,
        ctx: &Context,
    ) -> Result<Ban, BanError> {
        let BanRequest {
            target,
            reason,
            expires_in_secs,
        } = request;
        let ip = parse_ban_target(target)?;
        if expires_in_secs.is_some_and(|s| !(1..=MAX_BAN_SECS).contains(&s)) {
            return Err(BanError::Invalid(format!(
                "expires_in_secs must be 1-{MAX_BAN_SECS} seconds (omit it for a permanent ban)"
            )));
        }
        let expires_at = expires_in_secs.map(|s| storage::now() + s);
        let reason = reason.unwrap_or("banned by an operator");
        let ban = self
            .insert_ban(pool, &ip, reason, expires_at, actor)
            .await?;
        audit::record(
            sink,
            AuditEvent::new("ip.banned", None)
                .actor(Some(actor))
                .detail("ip", ip.as_str())
                .detail("reason", reason),
            ctx,
        );
        Ok(ban)
    }

    /// Lifts a ban and the address's lockout.
    pub async fn unban(
        &self,
        pool: &Pool,
        sink: &AuditSink,
        target: &str,
        actor: &str,
        ctx: &Context,
    ) -> Result<(), BanError> {
        let ip = parse_ban_target(target)?;
        if !storage::bans::delete_ban(pool, &ip).await? {
            return Err(BanError::NotFound);
        }
        self.clear(&ip).await;
        self.refresh_bans(pool).await?;
        audit::record(
            sink,
            AuditEvent::new("ip.unbanned", None)
                .actor(Some(actor))
                .detail("ip", ip.as_str()),
            ctx,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(limit: u64, window_secs: u64) -> Window {
        Window { limit, window_secs }
    }

    #[test]
    fn credential_endpoints_are_counted_each_on_its_own() {
        let r = classify("POST", "/t/acme/token").unwrap();
        assert_eq!(r.tenant.as_deref(), Some("acme"));
        assert_eq!((r.group, r.endpoint), (Group::Credentials, "/token"));
        assert_eq!(r.flavour, Flavour::OAuth);
        assert!(r.cors);
        let r = classify("POST", "/api/v1/auth/login").unwrap();
        assert_eq!(r.tenant, None);
        assert_eq!(
            (r.group, r.endpoint),
            (Group::Credentials, "/api/v1/auth/login")
        );
        assert_eq!(r.flavour, Flavour::Api);
        let r = classify("POST", "/t/acme/login").unwrap();
        assert_eq!(
            (r.group, r.flavour, r.cors),
            (Group::Credentials, Flavour::Page, false)
        );
    }

    #[test]
    fn reads_of_credential_paths_and_other_endpoints_share_their_group_counter() {
        let r = classify("GET", "/t/acme/login").unwrap();
        assert_eq!((r.group, r.endpoint), (Group::Api, "api"));
        let r = classify("GET", "/t/acme/api/v1/admin/users").unwrap();
        assert_eq!((r.group, r.endpoint, r.cors), (Group::Api, "api", true));
        let r = classify("GET", "/t/acme/.well-known/openid-configuration").unwrap();
        assert_eq!(
            (r.group, r.flavour, r.cors),
            (Group::Public, Flavour::OAuth, false)
        );
        let r = classify("OPTIONS", "/t/acme/token").unwrap();
        assert_eq!((r.group, r.endpoint), (Group::Public, "preflight"));
        assert_eq!(
            classify("GET", "/static/app.css").unwrap().group,
            Group::Public
        );
    }

    #[test]
    fn health_ready_and_metrics_are_never_limited() {
        assert_eq!(classify("GET", "/health"), None);
        assert_eq!(classify("GET", "/ready"), None);
        assert_eq!(classify("GET", "/metrics"), None);
        assert!(classify("GET", "/t/health/health").is_some());
    }

    #[test]
    fn forwarded_for_is_honoured_only_from_trusted_proxies() {
        let trusted = vec![parse_net("10.0.0.0/8").unwrap()];
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        let outsider: IpAddr = "198.51.100.9".parse().unwrap();
        let xff = Some("203.0.113.5, 10.9.9.9");
        assert_eq!(
            client_addr(Some(peer), xff, &trusted),
            Some("203.0.113.5".parse().unwrap())
        );
        assert_eq!(client_addr(Some(outsider), xff, &trusted), Some(outsider));
        assert_eq!(client_addr(Some(peer), xff, &[]), Some(peer));
        // A client-supplied left-most value does not win over the real client.
        assert_eq!(
            client_addr(Some(peer), Some("1.1.1.1, 203.0.113.5"), &trusted),
            Some("203.0.113.5".parse().unwrap())
        );
        assert_eq!(
            client_addr(Some(peer), Some("garbage"), &trusted),
            Some(peer)
        );
        assert_eq!(
            client_addr(Some(peer), Some("[2001:db8::1]:443"), &trusted),
            Some("2001:db8::1".parse().unwrap())
        );
    }

    #[test]
    fn ipv6_addresses_are_counted_per_64_network_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            addr_key("2001:db8:1:2:aaaa::1".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        assert_eq!(addr_key("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1");
    }

    #[test]
    fn the_first_window_admits_exactly_the_limit() {
        let q = quota(w(20, 60), 0, 20, 1_000, true);
        assert_eq!(q.remaining, 0);
        assert_eq!(q.reset_at, 60);
        // The 21st is rejected and may retry when the window has passed.
        let q = quota(w(20, 60), 0, 20, 1_000, false);
        // At 60 s the 20 weigh fully; 3 s later 19 of them do.
        assert_eq!(q.retry_after, 59 + 3);
    }

    #[test]
    fn the_previous_window_decays_as_the_window_slides() {
        // 20 in the previous window, none yet in this one, 30 s in: estimate 10.
        let q = quota(w(20, 60), 20, 0, 90_000, true);
        assert_eq!(q.remaining, 10);
        // 20 previous + 10 current at 30 s: estimate 20, full; one more fits at 33 s.
        let q = quota(w(20, 60), 20, 10, 90_000, false);
        assert_eq!(q.remaining, 0);
        assert_eq!(q.retry_after, 3);
    }

    #[test]
    fn ban_targets_are_normalised() {
        assert_eq!(parse_ban_target(" 203.0.113.7 ").unwrap(), "203.0.113.7");
        assert_eq!(parse_ban_target("10.1.2.3/8").unwrap(), "10.0.0.0/8");
        assert_eq!(parse_ban_target("2001:db8::5").unwrap(), "2001:db8::/64");
        assert!(parse_ban_target("example.com").is_err());
    }
}
