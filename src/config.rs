//! The one typed configuration: defaults, then `portcullis.toml`, then `PORTCULLIS_*`
//! environment variables, then command-line flags. Validated once at start-up with a
//! one-line, actionable message. Secrets are `secrecy` types that print redacted.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::crypto::{self, MasterKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Argon2id cost parameters (SPEC: m = 64 MiB, t = 3, p = 4 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 4,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address the HTTP server binds to.
    pub bind: String,
    /// Externally visible base URL; issuers are `{public_url}/t/{slug}`.
    pub public_url: String,
    pub database_url: String,
    /// Maximum connections in the database pool.
    pub database_max_connections: u32,
    /// 32 bytes, base64. Seals signing keys and other secrets at rest.
    #[serde(serialize_with = "serialize_redacted")]
    pub master_key: Option<SecretString>,
    pub env: Environment,
    /// Tenant whose routes are also served at the root.
    pub default_tenant: Option<String>,
    /// Default lifetimes in seconds; tenants and clients may override the token ones.
    pub access_token_ttl: i64,
    pub id_token_ttl: i64,
    pub refresh_token_ttl: i64,
    pub authorization_code_ttl: i64,
    pub session_ttl: i64,
    /// How long a pending authorization request (sign-in, consent) stays valid.
    pub authorization_request_ttl: i64,
    pub argon2: Argon2Params,
    /// How stale an instance's view of tenant configuration and keys may be, in seconds.
    pub cache_ttl_secs: u64,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Timeout for every outbound HTTP call (back-channel logout, upstream IdPs).
    pub outbound_timeout_secs: u64,
    /// SMTP server for outgoing mail (`smtp://user:pass@host:587`, `smtps://…`); without it
    /// mail goes to the local outbox table.
    #[serde(serialize_with = "serialize_redacted")]
    pub smtp_url: Option<SecretString>,
    /// Sender of outgoing mail.
    pub smtp_from: String,
    pub log_format: LogFormat,
    pub log_level: String,
    /// Number of HTTP worker threads (0 = one per core).
    pub workers: usize,
    /// Rate limiting, lockouts and bans of client addresses.
    pub rate_limit: RateLimitConfig,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names the client: a list,
    /// or one comma-separated string (handy in an environment variable).
    #[serde(deserialize_with = "list_or_csv")]
    pub trusted_proxies: Vec<String>,
    /// Redis (`redis://host:6379/0`): shared rate-limit counters for several instances.
    #[serde(serialize_with = "serialize_redacted")]
    pub redis_url: Option<SecretString>,
    /// Prefix of every Redis key, so several deployments can share one Redis.
    pub redis_prefix: String,
    /// When set, `GET /metrics` needs `Authorization: Bearer <metrics_token>`.
    #[serde(serialize_with = "serialize_redacted")]
    pub metrics_token: Option<SecretString>,
    /// How often expired codes, tokens, sessions and keys are purged (once across instances).
    pub purge_interval_secs: u64,
    /// How long expired or ended codes, requests, tokens, sessions and federation flows are
    /// kept before the purge deletes them (a replayed code is still recognised meanwhile).
    pub expired_retention_secs: u64,
    /// Age in days after which audit events are deleted by the purge (0 = kept forever).
    pub audit_retention_days: u64,
    /// Age at which a tenant's active signing keys are rotated by the scheduler (0 = never).
    pub key_rotation_secs: u64,
    /// How often the scheduler looks for keys due for rotation (once across instances).
    pub key_rotation_check_secs: u64,
}

/// Endpoint groups, each with its own window (SPEC: 20 per 60 s on credential endpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// Endpoints that check a password, a one-time code or a secret, or mint tokens.
    Credentials,
    /// The rest of the JSON API, the OAuth endpoints and the pages.
    Api,
    /// Discovery, JWKS, metadata, static files, CORS preflights.
    Public,
}

impl Group {
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Credentials => "credentials",
            Group::Api => "api",
            Group::Public => "public",
        }
    }
}

/// Upper bound for a per-client or per-tenant access token lifetime, in seconds (signing
/// keys stay published at least this long after they retire).
pub const MAX_ACCESS_TOKEN_TTL: i64 = 86_400;

/// An IP address or CIDR range (`10.0.0.0/8`, `::1`).
pub fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

/// A sliding window: at most `limit` requests per `window_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub limit: u64,
    pub window_secs: u64,
}

/// SPEC "Protection": 20 requests per 60 s per client address on credential endpoints; 10
/// rejections lock the address out for 15 minutes; repeated lockouts ban it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Endpoints that check a password, a code or a secret, or mint tokens.
    pub credentials: Window,
    /// The rest of the JSON API, the OAuth endpoints and the pages.
    pub api: Window,
    /// Discovery, JWKS, metadata, static files and CORS preflights.
    pub public: Window,
    /// Rejections (429s) within `violation_window_secs` that lock the address out.
    pub lockout_violations: u64,
    pub violation_window_secs: u64,
    pub lockout_secs: u64,
    /// Lockouts within `ban_window_secs` after which the address is banned (persisted).
    pub ban_after_lockouts: u64,
    pub ban_window_secs: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            credentials: Window {
                limit: 20,
                window_secs: 60,
            },
            api: Window {
                limit: 600,
                window_secs: 60,
            },
            public: Window {
                limit: 6000,
                window_secs: 60,
            },
            lockout_violations: 10,
            violation_window_secs: 900,
            lockout_secs: 900,
            ban_after_lockouts: 3,
            ban_window_secs: 86_400,
        }
    }
}

fn serialize_redacted<S: serde::Serializer>(
    v: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_some("[redacted]"),
        None => s.serialize_none(),
    }
}

fn list_or_csv<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCsv {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match ListOrCsv::deserialize(d)? {
        ListOrCsv::List(l) => l,
        ListOrCsv::Csv(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            database_url: "sqlite://portcullis.db".into(),
            database_max_connections: 16,
            master_key: None,
            env: Environment::Development,
            default_tenant: None,
            access_token_ttl: 3600,
            id_token_ttl: 3600,
            refresh_token_ttl: 30 * 24 * 3600,
            authorization_code_ttl: 60,
            session_ttl: 12 * 3600,
            authorization_request_ttl: 30 * 60,
            argon2: Argon2Params::default(),
            cache_ttl_secs: 2,
            max_body_bytes: 64 * 1024,
            outbound_timeout_secs: 5,
            smtp_url: None,
            smtp_from: "Portcullis <no-reply@localhost>".into(),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            workers: 0,
            rate_limit: RateLimitConfig::default(),
            trusted_proxies: Vec::new(),
            redis_url: None,
            redis_prefix: "portcullis:".into(),
            metrics_token: None,
            purge_interval_secs: 600,
            expired_retention_secs: 3600,
            audit_retention_days: 90,
            key_rotation_secs: 90 * 86_400,
            key_rotation_check_secs: 3600,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// Values given on the command line; they win over file and environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_path: Option<PathBuf>,
    pub database_url: Option<String>,
    pub production: bool,
}

impl Config {
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match &overrides.config_path {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError(format!(
                        "config file {} does not exist",
                        path.display()
                    )));
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("portcullis.toml")),
        }
        figment = figment.merge(Env::prefixed("PORTCULLIS_").split("__"));
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError(e.to_string().replace('\n', " ")))?;
        if let Some(url) = &overrides.database_url {
            config.database_url = url.clone();
        }
        if overrides.production {
            config.env = Environment::Production;
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&mut self) -> Result<(), ConfigError> {
        let url = url::Url::parse(&self.public_url).map_err(|e| {
            ConfigError(format!(
                "public_url {:?} is not a URL ({e}); set PORTCULLIS_PUBLIC_URL",
                self.public_url
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
            return Err(ConfigError(
                "public_url must be an http(s) URL without query".into(),
            ));
        }
        self.public_url = self.public_url.trim_end_matches('/').to_string();
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError(
                "database_url must start with sqlite:, postgres:// or postgresql://".into(),
            ));
        }
        if let Some(key) = &self.master_key {
            parse_master_key(key.expose_secret())?;
        } else if self.env == Environment::Production {
            return Err(ConfigError(
                "PORTCULLIS_MASTER_KEY is required in production (32 random bytes, base64: `openssl rand -base64 32`)".into(),
            ));
        }
        for (name, v) in [
            ("access_token_ttl", self.access_token_ttl),
            ("id_token_ttl", self.id_token_ttl),
            ("refresh_token_ttl", self.refresh_token_ttl),
            ("authorization_code_ttl", self.authorization_code_ttl),
            ("session_ttl", self.session_ttl),
            ("authorization_request_ttl", self.authorization_request_ttl),
        ] {
            if v <= 0 {
                return Err(ConfigError(format!(
                    "{name} must be a positive number of seconds"
                )));
            }
        }
        if self.argon2.memory_kib < 8 * self.argon2.parallelism
            || self.argon2.iterations == 0
            || self.argon2.parallelism == 0
        {
            return Err(ConfigError(
                "argon2 parameters are out of range (memory_kib >= 8 * parallelism, iterations >= 1)".into(),
            ));
        }
        let rl = &self.rate_limit;
        for (name, w) in [
            ("credentials", rl.credentials),
            ("api", rl.api),
            ("public", rl.public),
        ] {
            if w.limit == 0 || w.window_secs == 0 || w.window_secs > 86_400 {
                return Err(ConfigError(format!(
                    "rate_limit.{name}: limit must be at least 1 and window_secs 1-86400"
                )));
            }
        }
        if rl.lockout_violations == 0
            || rl.violation_window_secs == 0
            || rl.lockout_secs == 0
            || rl.ban_window_secs == 0
        {
            return Err(ConfigError(
                "rate_limit.lockout_violations, violation_window_secs, lockout_secs and ban_window_secs must be positive".into(),
            ));
        }
        for p in &self.trusted_proxies {
            parse_net(p).ok_or_else(|| {
                ConfigError(format!(
                    "trusted_proxies: {p:?} is not an IP address or CIDR range"
                ))
            })?;
        }
        if let Some(url) = &self.redis_url {
            let u = url.expose_secret();
            if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                return Err(ConfigError(
                    "redis_url must start with redis:// or rediss://".into(),
                ));
            }
        }
        if self.purge_interval_secs == 0 || self.key_rotation_check_secs == 0 {
            return Err(ConfigError(
                "purge_interval_secs and key_rotation_check_secs must be positive".into(),
            ));
        }
        Ok(())
    }

    pub fn is_production(&self) -> bool {
        self.env == Environment::Production
    }

    pub fn is_https(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// The master key: the configured one, or in development one generated once into a
    /// 0600 file beside the SQLite database (or in the working directory).
    pub fn resolve_master_key(&self) -> Result<MasterKey, ConfigError> {
        if let Some(key) = &self.master_key {
            return parse_master_key(key.expose_secret());
        }
        let path = self.dev_master_key_path();
        if let Ok(existing) = std::fs::read_to_string(&path) {
            return parse_master_key(&existing)
                .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)));
        }
        let key = MasterKey::generate();
        write_private_file(&path, key.to_base64().as_bytes()).map_err(|e| {
            ConfigError(format!(
                "cannot write the development master key to {}: {e}",
                path.display()
            ))
        })?;
        tracing::warn!(
            path = %path.display(),
            "no PORTCULLIS_MASTER_KEY given: generated a development master key; set PORTCULLIS_MASTER_KEY in production"
        );
        Ok(key)
    }

    fn dev_master_key_path(&self) -> PathBuf {
        let file = "portcullis.master.key";
        if let Some(path) = self.sqlite_path() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                return dir.join(file);
            }
        }
        PathBuf::from(file)
    }

    /// The file behind a `sqlite:` URL, if any.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self.database_url.strip_prefix("sqlite:")?;
        let rest = rest.trim_start_matches("//");
        let path = rest.split('?').next().unwrap_or(rest);
        if path.is_empty() || path == ":memory:" {
            return None;
        }
        Some(PathBuf::from(path))
    }
}

fn parse_master_key(b64: &str) -> Result<MasterKey, ConfigError> {
    crypto::b64_decode(b64)
        .and_then(|bytes| MasterKey::from_bytes(&bytes))
        .ok_or_else(|| {
            ConfigError(
                "master key must be 32 bytes, base64-encoded (`openssl rand -base64 32`)".into(),
            )
        })
}

fn write_private_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_without_a_master_key_is_refused() {
        let mut c = Config {
            env: Environment::Production,
            ..Config::default()
        };
        let err = c.validate().unwrap_err();
        assert!(err.0.contains("PORTCULLIS_MASTER_KEY"));
    }

    #[test]
    fn a_master_key_of_the_wrong_length_is_refused() {
        let mut c = Config {
            master_key: Some(SecretString::from("c2hvcnQ=")),
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn public_url_loses_its_trailing_slash() {
        let mut c = Config {
            public_url: "https://id.example.com/".into(),
            ..Config::default()
        };
        c.validate().unwrap();
        assert_eq!(c.public_url, "https://id.example.com");
    }

    #[test]
    fn trusted_proxies_are_a_list_or_a_comma_separated_string_and_are_validated() {
        let parse = |v: serde_json::Value| {
            let mut c: Config =
                serde_json::from_value(serde_json::json!({ "trusted_proxies": v })).unwrap();
            c.validate().map(|_| c.trusted_proxies).map_err(|e| e.0)
        };
        assert_eq!(
            parse(serde_json::json!("10.0.0.0/8, 127.0.0.1")).unwrap(),
            vec!["10.0.0.0/8", "127.0.0.1"]
        );
        assert_eq!(parse(serde_json::json!(["::1"])).unwrap(), vec!["::1"]);
        assert!(parse(serde_json::json!("proxy.internal"))
            .unwrap_err()
            .contains("trusted_proxies"));
    }

    #[test]
    fn sqlite_path_is_read_from_the_url() {
        let c = Config {
            database_url: "sqlite:///tmp/x/p.db?mode=rwc".into(),
            ..Config::default()
        };
        assert_eq!(c.sqlite_path(), Some(PathBuf::from("/tmp/x/p.db")));
    }
}
