//! Tenants: the isolation boundary. Owns slugs, per-tenant settings and the tenant rows
//! (a new tenant's keys and roles come with it through `provisioning`). Must not know about
//! HTTP; protocol documents derived from a tenant live in `provider`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::storage::{self, tenants::TenantRow, Pool};

/// `[a-z0-9-]{2,63}`, not starting or ending with a hyphen.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantSlug(String);

impl TenantSlug {
    pub fn parse(s: &str) -> Result<Self, TenantError> {
        let ok = (2..=63).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(TenantError::InvalidSlug)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Tenant-wide settings, stored as JSON; every field has a default so older rows and
/// partial updates stay readable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TenantSettings {
    /// Overrides the server's default access token lifetime.
    pub access_token_ttl: Option<i64>,
    /// Seconds during which an already-rotated refresh token may be presented again
    /// (concurrent refreshes from several tabs) without counting as reuse.
    pub refresh_token_reuse_interval: i64,
    /// `aud` of access tokens; the client id when unset.
    pub access_token_audience: Option<String>,
    /// Tenant attributes (for example `ispb`) copied into access tokens as custom claims.
    pub custom_claims: BTreeMap<String, serde_json::Value>,
    pub branding: Branding,
    /// Dynamic client registration (RFC 7591) enabled for this tenant.
    pub registration_enabled: bool,
    /// Brute-force protection of sign-ins.
    pub lockout: LockoutPolicy,
    pub password_policy: PasswordPolicy,
    /// Second factor at browser sign-in: off, optional (asked when enrolled) or required
    /// (enrolment before continuing).
    pub mfa_policy: MfaPolicy,
    /// Anyone may create an account with `POST /auth/register`.
    pub self_registration: bool,
    /// Permissions whose use needs a recent second factor from users enrolled in MFA (the
    /// first-party API answers MFA_REQUIRED otherwise). Default: role assignment and
    /// configuration changes.
    pub mfa_step_up_permissions: Vec<String>,
    /// Registration needs an initial access token: an API key of the tenant holding
    /// `clients:create`.
    pub registration_token_required: bool,
    /// Rate-limit windows of this tenant's endpoint groups (`credentials`, `api`, `public`),
    /// overriding the server's.
    pub rate_limits: std::collections::BTreeMap<crate::config::Group, crate::config::Window>,
    /// Every client must push its authorization requests (PAR, RFC 9126 §5).
    pub require_pushed_authorization_requests: bool,
    /// DPoP proofs must carry a server nonce (RFC 9449 §8, §9): a proof without a fresh one
    /// is answered `use_dpop_nonce` with the nonce to use in `DPoP-Nonce`.
    pub dpop_nonce_required: bool,
    /// The admin console (`{issuer}/admin`) needs a session with a second factor (acr 2 or
    /// better); on by default.
    pub console_requires_mfa: bool,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            access_token_ttl: None,
            refresh_token_reuse_interval: 0,
            access_token_audience: None,
            custom_claims: BTreeMap::new(),
            branding: Branding::default(),
            registration_enabled: false,
            lockout: LockoutPolicy::default(),
            password_policy: PasswordPolicy::default(),
            mfa_policy: MfaPolicy::Optional,
            self_registration: false,
            mfa_step_up_permissions: ["users:roles:assign", "settings:update", "keys:rotate"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            registration_token_required: false,
            rate_limits: std::collections::BTreeMap::new(),
            require_pushed_authorization_requests: false,
            dpop_nonce_required: false,
            console_requires_mfa: true,
        }
    }
}

impl TenantSettings {
    /// These settings after a JSON merge patch (RFC 7386: members replace, `null` removes,
    /// objects merge), checked by [`TenantSettings::check`]. The admin API's `PATCH
    /// /admin/settings` and the console's settings form both change settings this way.
    pub fn patched(&self, patch: &serde_json::Value) -> Result<Self, TenantError> {
        let mut current =
            serde_json::to_value(self).map_err(|e| TenantError::Unexpected(e.into()))?;
        merge(&mut current, patch);
        let settings: TenantSettings = serde_json::from_value(current)
            .map_err(|e| TenantError::InvalidSettings(format!("invalid settings: {e}")))?;
        settings.check()?;
        Ok(settings)
    }

    /// The rules settings must keep.
    pub fn check(&self) -> Result<(), TenantError> {
        let invalid = |m: String| Err(TenantError::InvalidSettings(m));
        if !(0..=300).contains(&self.refresh_token_reuse_interval) {
            return invalid("refresh_token_reuse_interval must be 0-300 seconds".into());
        }
        if self
            .access_token_ttl
            .is_some_and(|t| !(60..=crate::config::MAX_ACCESS_TOKEN_TTL).contains(&t))
        {
            return invalid(format!(
                "access_token_ttl must be 60-{} seconds",
                crate::config::MAX_ACCESS_TOKEN_TTL
            ));
        }
        if let Some((group, _)) = self
            .rate_limits
            .iter()
            .find(|(_, w)| w.limit == 0 || !(1..=86_400).contains(&w.window_secs))
        {
            return invalid(format!(
                "rate_limits.{}: limit must be at least 1 and window_secs 1-86400",
                group.as_str()
            ));
        }
        let b = &self.branding;
        if b.display_name
            .as_ref()
            .is_some_and(|n| n.chars().count() > 100)
        {
            return invalid("branding.display_name must be at most 100 characters".into());
        }
        if b.accent_color.as_deref().is_some_and(|c| !is_hex_colour(c)) {
            return invalid("branding.accent_color must be a colour written #rrggbb".into());
        }
        if b.logo_url.as_deref().is_some_and(|u| {
            u.len() > 2000
                || url::Url::parse(u).map_or(true, |u| u.scheme() != "https" || u.host().is_none())
        }) {
            return invalid("branding.logo_url must be an https URL".into());
        }
        let p = &self.password_policy;
        if !(8..=128).contains(&p.min_length) {
            return invalid("password_policy.min_length must be 8-128".into());
        }
        if !(0..=24).contains(&p.history) {
            return invalid("password_policy.history must be 0-24".into());
        }
        let l = &self.lockout;
        if !(1..=100).contains(&l.threshold)
            || !(1..=86_400).contains(&l.window_secs)
            || !(1..=7 * 86_400).contains(&l.duration_secs)
        {
            return invalid(
                "lockout: threshold must be 1-100, window_secs 1-86400 and duration_secs 1-604800"
                    .into(),
            );
        }
        Ok(())
    }
}

/// `#rrggbb`.
pub fn is_hex_colour(c: &str) -> bool {
    c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// A tenant's password policy (SPEC default: 12 characters with upper, lower, digit and
/// symbol; none of the last 5 passwords).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub require_upper: bool,
    pub require_lower: bool,
    pub require_digit: bool,
    pub require_symbol: bool,
    /// How many previous passwords (the current one included) may not be reused.
    pub history: i64,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 12,
            require_upper: true,
            require_lower: true,
            require_digit: true,
            require_symbol: true,
            history: 5,
        }
    }
}

/// Ordered from weakest to strictest, so the stricter of two policies is their `max`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Default)]
#[serde(rename_all = "lowercase")]
pub enum MfaPolicy {
    Off,
    #[default]
    Optional,
    Required,
}

impl MfaPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(MfaPolicy::Off),
            "optional" => Some(MfaPolicy::Optional),
            "required" => Some(MfaPolicy::Required),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MfaPolicy::Off => "off",
            MfaPolicy::Optional => "optional",
            MfaPolicy::Required => "required",
        }
    }
}

/// SPEC: 5 failed sign-ins within 15 minutes lock the account for 15 minutes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LockoutPolicy {
    pub threshold: i64,
    pub window_secs: i64,
    pub duration_secs: i64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            window_secs: 900,
            duration_secs: 900,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct Branding {
    pub display_name: Option<String>,
    pub logo_url: Option<String>,
    /// `#rrggbb`
    pub accent_color: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub settings: TenantSettings,
    pub version: i64,
}

impl From<TenantRow> for Tenant {
    fn from(row: TenantRow) -> Self {
        Self {
            settings: serde_json::from_str(&row.settings).unwrap_or_default(),
            id: row.id,
            slug: row.slug,
            name: row.name,
            version: row.updated_at,
        }
    }
}

impl Tenant {
    pub fn display_name(&self) -> &str {
        self.settings
            .branding
            .display_name
            .as_deref()
            .unwrap_or(&self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("tenant slug must be 2-63 characters of a-z, 0-9 and '-'")]
    InvalidSlug,
    /// Settings that break a rule, in words.
    #[error("{0}")]
    InvalidSettings(String),
    #[error("tenant already exists")]
    AlreadyExists,
    #[error("tenant not found")]
    NotFound,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for TenantError {
    fn from(e: sqlx::Error) -> Self {
        TenantError::Unexpected(e.into())
    }
}

/// Stores a new tenant with default settings; [`crate::provisioning::create_tenant`] adds
/// what a tenant needs to work (signing keys, the built-in roles).
pub async fn insert_tenant(
    pool: &Pool,
    slug: &TenantSlug,
    name: Option<&str>,
) -> Result<Tenant, TenantError> {
    if storage::tenants::find_tenant_by_slug(pool, slug.as_str())
        .await?
        .is_some()
    {
        return Err(TenantError::AlreadyExists);
    }
    let now = storage::now();
    let row = TenantRow {
        id: uuid::Uuid::new_v4().to_string(),
        slug: slug.as_str().to_string(),
        name: name.unwrap_or(slug.as_str()).to_string(),
        settings: serde_json::to_string(&TenantSettings::default())
            .map_err(|e| TenantError::Unexpected(e.into()))?,
        created_at: now,
        updated_at: now,
    };
    if let Err(e) = storage::tenants::insert_tenant(pool, &row).await {
        return Err(if storage::is_unique_violation(&e) {
            TenantError::AlreadyExists
        } else {
            e.into()
        });
    }
    Ok(Tenant::from(row))
}

pub async fn find_tenant(pool: &Pool, slug: &str) -> Result<Tenant, TenantError> {
    storage::tenants::find_tenant_by_slug(pool, slug)
        .await?
        .map(Tenant::from)
        .ok_or(TenantError::NotFound)
}

pub async fn update_settings(
    pool: &Pool,
    tenant: &Tenant,
    settings: &TenantSettings,
) -> Result<(), TenantError> {
    let json = serde_json::to_string(settings).map_err(|e| TenantError::Unexpected(e.into()))?;
    storage::tenants::update_tenant_settings(pool, &tenant.id, &json, storage::now()).await?;
    Ok(())
}

pub async fn list_tenants(pool: &Pool) -> Result<Vec<Tenant>, TenantError> {
    Ok(storage::tenants::list_tenants(pool)
        .await?
        .into_iter()
        .map(Tenant::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_of_lowercase_letters_digits_and_hyphens_are_accepted() {
        assert!(TenantSlug::parse("acme-01").is_ok());
        assert!(TenantSlug::parse("ab").is_ok());
    }

    #[test]
    fn slugs_with_other_characters_or_lengths_are_refused() {
        for bad in [
            "a",
            "Acme",
            "acme_co",
            "-acme",
            "acme-",
            "a/b",
            &"a".repeat(64),
            "",
        ] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_missing_fields_take_defaults() {
        let s: TenantSettings = serde_json::from_str(r#"{"registration_enabled":true}"#).unwrap();
        assert!(s.registration_enabled);
        assert_eq!(s.refresh_token_reuse_interval, 0);
    }
}
