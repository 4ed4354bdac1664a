//! Connections and flows: the types every federation protocol module shares (a tenant's
//! upstream providers, the identity one vouches for, the errors) and their lookups, below
//! [`super::oidc`], [`super::saml`] and [`super::slo`], which never import each other's
//! callers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::core::CoreProviderMetadata;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::accounts::{self, PasswordHasher};
use crate::crypto::{self, MasterKey};
use crate::outbound::Outbound;
use crate::storage::{self, federation::ConnectionRow, federation::FlowRow, Pool};
use crate::tenants::Tenant;

/// What federation uses: the database, the master key (client secrets, flow secrets,
/// SP keys), the outbound client with the upstream discovery cache, and the password
/// hasher of just-in-time provisioned accounts.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub pool: &'a Pool,
    pub master_key: &'a MasterKey,
    pub outbound: &'a std::sync::Arc<Outbound>,
    pub discovery: &'a DiscoveryCache,
    pub hasher: &'a PasswordHasher,
}

/// Google's issuer, the default of `"provider":"google"` connections.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
/// How long an upstream sign-in may take.
pub(super) const FLOW_TTL: i64 = 600;
/// Largest upstream document (discovery, JWKS, SAML metadata) read.
pub const MAX_DOCUMENT: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// A configuration that cannot be used (answered VALIDATION_FAILED).
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    /// An upstream sign-in that failed; `reason` is a short machine-readable code (logged
    /// and audited), the message is for the user.
    #[error("{message}")]
    Failed {
        reason: &'static str,
        message: String,
    },
    /// The upstream identity's address belongs to an existing account that it may not
    /// take over by itself: the person signs in with the existing method, then the
    /// identity is linked (see [`PendingLink`]).
    #[error("an account with this e-mail address already exists")]
    LinkRequired(Box<PendingLink>),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl FederationError {
    pub fn failed(reason: &'static str, message: impl Into<String>) -> Self {
        Self::Failed {
            reason,
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for FederationError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unexpected(e.into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Oidc,
    Saml2,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Oidc => "oidc",
            Protocol::Saml2 => "saml2",
        }
    }
}

/// Protocol settings of a connection (stored as JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionConfig {
    /// OIDC: the upstream issuer (its discovery document is `{issuer}/.well-known/openid-configuration`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// OIDC: scopes asked upstream (default openid email profile).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// SAML: where the IdP metadata is fetched (and periodically refreshed) from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    /// SAML: the IdP's entity id (from its metadata).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idp_entity_id: Option<String>,
    /// SAML: accept unsolicited (IdP-initiated) responses.
    pub allow_idp_initiated: bool,
    /// SAML: sign AuthnRequests (the metadata given to this IdP says
    /// `AuthnRequestsSigned` accordingly). On unless the tenant turns it off.
    #[serde(default = "yes")]
    pub sign_authn_requests: bool,
    /// SAML: require the assertion itself to be signed, not only the Response
    /// (`WantAssertionsSigned`). On unless the tenant turns it off.
    #[serde(default = "yes")]
    pub want_assertions_signed: bool,
    /// SAML: the NameID format asked for; negotiated from the IdP metadata when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_id_format: Option<String>,
    /// Link an upstream identity to an existing account with the same e-mail address when
    /// the upstream vouches for the address (OIDC `email_verified`; for SAML, an address in
    /// one of the connection's domains).
    pub link_by_email: bool,
    /// Ask enrolled users for the tenant's second factor after the upstream sign-in.
    pub apply_mfa_policy: bool,
}

fn yes() -> bool {
    true
}

impl ConnectionConfig {
    /// OIDC: the scopes asked upstream (`openid email profile` unless configured).
    pub fn effective_scopes(&self) -> Vec<String> {
        if self.scopes.is_empty() {
            ["openid", "email", "profile"].map(String::from).to_vec()
        } else {
            self.scopes.clone()
        }
    }
}

/// The audit event of turning a connection on or off.
pub fn switch_event(enabled: bool) -> &'static str {
    if enabled {
        "sso.enabled"
    } else {
        "sso.disabled"
    }
}

/// Which upstream attributes (SAML attribute names, OIDC claim names) give the e-mail,
/// display name and groups; groups map to Portcullis roles through `role_values`, or by
/// name when a role of that name exists.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct AttributeMapping {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(alias = "role", skip_serializing_if = "Option::is_none")]
    pub roles: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub role_values: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Connection {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub protocol: Protocol,
    pub provider: Option<String>,
    pub config: ConnectionConfig,
    pub has_secret: bool,
    sealed_secret: Option<Vec<u8>>,
    pub metadata_xml: Option<String>,
    pub metadata_fetched_at: Option<i64>,
    pub domains: Vec<String>,
    pub mapping: AttributeMapping,
    pub enabled: bool,
    pub created_at: i64,
}

impl Connection {
    pub fn from_row(r: ConnectionRow) -> Option<Self> {
        let protocol = match r.protocol.as_str() {
            "oidc" => Protocol::Oidc,
            "saml2" => Protocol::Saml2,
            _ => return None,
        };
        Some(Self {
            protocol,
            config: serde_json::from_str(&r.config).unwrap_or_default(),
            has_secret: r.client_secret.is_some(),
            sealed_secret: r.client_secret,
            domains: serde_json::from_str(&r.domains).unwrap_or_default(),
            mapping: serde_json::from_str(&r.attribute_mapping).unwrap_or_default(),
            id: r.id,
            tenant_id: r.tenant_id,
            name: r.name,
            provider: r.provider,
            metadata_xml: r.metadata_xml,
            metadata_fetched_at: r.metadata_fetched_at,
            enabled: r.enabled,
            created_at: r.created_at,
        })
    }

    pub fn is_google(&self) -> bool {
        self.provider.as_deref() == Some("google")
    }

    /// The administrator's view (never the client secret).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "protocol": self.protocol.as_str(),
            "provider": self.provider,
            "issuer": self.config.issuer,
            "client_id": self.config.client_id,
            "client_secret_set": self.has_secret,
            "metadata_url": self.config.metadata_url,
            "idp_entity_id": self.config.idp_entity_id,
            "metadata_fetched_at": self.metadata_fetched_at,
            "domains": self.domains,
            "attribute_mapping": self.mapping,
            "allow_idp_initiated": self.config.allow_idp_initiated,
            "sign_authn_requests": self.config.sign_authn_requests,
            "want_assertions_signed": self.config.want_assertions_signed,
            "name_id_format": self.config.name_id_format,
            "link_by_email": self.config.link_by_email,
            "apply_mfa_policy": self.config.apply_mfa_policy,
            "enabled": self.enabled,
            "created_at": self.created_at,
        })
    }
}

/// `POST /auth/sso/configure` and `POST /admin/sso` (SPEC "Federation").
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigureRequest {
    /// `saml2` or `oidc`.
    pub protocol: Option<String>,
    /// `google` for "Continue with Google" (an OIDC connection with Google's issuer).
    pub provider: Option<String>,
    pub name: Option<String>,
    pub metadata_url: Option<String>,
    pub metadata_xml: Option<String>,
    pub issuer: Option<String>,
    /// Alternative to `issuer`: the upstream discovery document's URL.
    pub discovery_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub domains: Vec<String>,
    pub attribute_mapping: AttributeMapping,
    pub allow_idp_initiated: bool,
    /// SAML: the IdP to use when the metadata is an aggregate of several (federation
    /// metadata); optional for a document describing one IdP.
    pub idp_entity_id: Option<String>,
    /// SAML: sign AuthnRequests (default true). Turn off only for an IdP that cannot
    /// take signed requests; the SP metadata of the connection then says
    /// `AuthnRequestsSigned="false"`.
    pub sign_authn_requests: Option<bool>,
    /// SAML: require signed assertions, not only a signed Response (default true).
    pub want_assertions_signed: Option<bool>,
    /// SAML: the NameID format to ask for (negotiated from the IdP metadata when absent).
    pub name_id_format: Option<String>,
    pub link_by_email: bool,
    pub apply_mfa_policy: bool,
}

pub(super) fn invalid(m: impl Into<String>) -> FederationError {
    FederationError::Invalid(m.into())
}

pub(super) use crate::outbound::transport_error;

/// Upstream URLs are https, except loopback addresses (local IdPs and tests).
pub fn check_upstream_url(field: &str, raw: &str) -> Result<url::Url, FederationError> {
    url::Url::parse(raw).map_err(|_| invalid(format!("{field} is not a URL")))?;
    crate::outbound::https_or_loopback(raw).ok_or_else(|| {
        invalid(format!(
            "{field} must be an https URL (http only for loopback addresses)"
        ))
    })
}

pub(super) fn normalise_domains(domains: &[String]) -> Result<Vec<String>, FederationError> {
    let mut out: Vec<String> = Vec::new();
    for d in domains {
        let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
        let ok = !d.is_empty()
            && d.len() <= 253
            && d.contains('.')
            && !d.starts_with('.')
            && !d.ends_with('.')
            && d.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if !ok {
            return Err(invalid(format!("domain {d:?} is not a domain name")));
        }
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

pub async fn list(pool: &Pool, tenant: &Tenant) -> Result<Vec<Connection>, sqlx::Error> {
    Ok(storage::federation::list_connections(pool, &tenant.id)
        .await?
        .into_iter()
        .filter_map(Connection::from_row)
        .collect())
}

pub async fn find(
    pool: &Pool,
    tenant: &Tenant,
    id: &str,
) -> Result<Option<Connection>, sqlx::Error> {
    if id.len() > 64 {
        return Ok(None);
    }
    Ok(storage::federation::find_connection(pool, &tenant.id, id)
        .await?
        .and_then(Connection::from_row))
}

pub async fn delete(pool: &Pool, tenant: &Tenant, id: &str) -> Result<bool, sqlx::Error> {
    storage::federation::delete_connection(pool, &tenant.id, id).await
}

/// Turns a connection on or off (a disabled one offers no sign-in, no home-realm
/// discovery and accepts no IdP-initiated response); the connection after the change, or
/// None when the tenant has no such connection.
pub async fn set_enabled(
    pool: &Pool,
    tenant: &Tenant,
    id: &str,
    enabled: bool,
) -> Result<Option<Connection>, sqlx::Error> {
    let Some(conn) = find(pool, tenant, id).await? else {
        return Ok(None);
    };
    storage::federation::set_connection_enabled(pool, &tenant.id, id, enabled, storage::now())
        .await?;
    Ok(Some(Connection { enabled, ..conn }))
}

/// Which connection a sign-in by `email` goes to (home-realm discovery by domain).
pub fn by_email_domain<'a>(connections: &'a [Connection], email: &str) -> Option<&'a Connection> {
    let domain = email.trim().rsplit_once('@')?.1.to_ascii_lowercase();
    connections
        .iter()
        .find(|c| c.enabled && c.domains.contains(&domain))
}

/// The upstream client secret of an OIDC connection.
pub(super) fn client_secret(
    master_key: &MasterKey,
    conn: &Connection,
) -> Result<String, FederationError> {
    let sealed = conn
        .sealed_secret
        .as_deref()
        .ok_or_else(|| invalid("the connection has no client secret"))?;
    let plain = master_key
        .open(sealed, conn.id.as_bytes())
        .map_err(|e| FederationError::Unexpected(e.into()))?;
    String::from_utf8(plain).map_err(|e| FederationError::Unexpected(e.into()))
}

/// What "test connection" found, step by step.
#[derive(Debug, Serialize)]
pub struct TestReport {
    pub ok: bool,
    pub checks: Vec<Check>,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// The upstream SAML session a Portcullis session came from: the NameID exactly as the
/// IdP gave it (a LogoutRequest must repeat it) and the SessionIndex of its AuthnStatement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlSession {
    pub connection_id: String,
    pub name_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_qualifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_name_qualifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_index: Option<String>,
}

impl SamlSession {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(s: &str) -> Option<Self> {
        serde_json::from_str(s).ok()
    }
}

/// An identity an upstream provider vouched for.
#[derive(Debug, Clone, Default)]
pub struct UpstreamIdentity {
    /// Upstream issuer (OIDC `iss`, SAML IdP entity id), for the audit log.
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    /// The profile claims the upstream gave (as it gave them: see [`Self::profile`]).
    pub profile: accounts::Profile,
    pub groups: Vec<String>,
    /// Authentication methods the upstream reported, besides `fed`.
    pub amr: Vec<String>,
    /// The upstream SAML session (for Single Logout); `None` for OIDC.
    pub saml_session: Option<SamlSession>,
}

impl UpstreamIdentity {
    /// The profile claims of a user provisioned from this identity; a value that does not
    /// fit its claim (an http picture, an odd locale) is left out rather than refused.
    pub fn profile(&self) -> accounts::Profile {
        self.profile.clone().lenient()
    }

    /// `amr` of the Portcullis session: `fed` and what the upstream reported.
    pub fn session_amr(&self) -> Vec<String> {
        let mut amr = vec!["fed".to_string()];
        for a in &self.amr {
            if !amr.contains(a) && a.len() <= 32 {
                amr.push(a.clone());
            }
        }
        amr
    }
}

/// A flow being started: the value that goes upstream (`state` or `RelayState`) and the
/// row that remembers it.
pub(super) struct NewFlow {
    pub(super) handle: String,
    pub(super) row: FlowRow,
}

impl NewFlow {
    pub(super) fn new(
        tenant: &Tenant,
        conn: &Connection,
        request_id: Option<&str>,
        browser: Option<&str>,
    ) -> Self {
        let handle = crypto::random_token(24);
        let now = storage::now();
        let row = FlowRow {
            id_hash: crypto::token_digest(&handle),
            tenant_id: tenant.id.clone(),
            connection_id: conn.id.clone(),
            request_id: request_id.map(str::to_string),
            browser_hash: browser.map(crypto::token_digest),
            secrets: None,
            saml_request_id: None,
            created_at: now,
            expires_at: now + FLOW_TTL,
            consumed_at: None,
            link_user_id: None,
            logout_return: None,
        };
        Self { handle, row }
    }
}

/// The flow a `state`/`RelayState` value names, unexpired (consumed or not: a second use
/// is answered as a replay).
pub async fn find_flow(
    pool: &Pool,
    tenant: &Tenant,
    handle: &str,
) -> Result<Option<FlowRow>, sqlx::Error> {
    if handle.is_empty() || handle.len() > 128 {
        return Ok(None);
    }
    storage::federation::find_flow(
        pool,
        &tenant.id,
        &crypto::token_digest(handle),
        storage::now(),
    )
    .await
}

/// Consumes a flow once; false when another request consumed it first.
pub async fn consume_flow(pool: &Pool, flow: &FlowRow) -> Result<bool, sqlx::Error> {
    storage::federation::consume_flow(pool, &flow.id_hash, storage::now()).await
}

/// How long a person has to sign in with the existing method to link a new one.
pub(super) const LINK_TTL: i64 = 600;

/// An upstream identity waiting to be linked to the account `user_id` once its owner has
/// signed in with a method the account already has. Carried by the browser, sealed with
/// the master key (so any instance can finish it and nobody can forge or alter it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLink {
    pub tenant_id: String,
    pub connection_id: String,
    pub connection_name: String,
    pub subject: String,
    pub user_id: String,
    pub email: String,
    pub expires_at: i64,
}

fn link_aad(tenant: &Tenant) -> Vec<u8> {
    format!("pending-link:{}", tenant.id).into_bytes()
}

impl PendingLink {
    /// The sealed, URL-safe value the browser keeps.
    pub fn seal(&self, master_key: &MasterKey, tenant: &Tenant) -> Result<String, FederationError> {
        let json = serde_json::to_vec(self).map_err(anyhow::Error::from)?;
        let sealed = master_key
            .seal(&json, &link_aad(tenant))
            .map_err(|e| FederationError::Unexpected(e.into()))?;
        Ok(crypto::b64url(&sealed))
    }

    /// A sealed value of this tenant, unexpired; `None` for anything else.
    pub fn open(master_key: &MasterKey, tenant: &Tenant, value: &str) -> Option<Self> {
        if value.len() > 4096 {
            return None;
        }
        let sealed = crypto::b64url_decode(value)?;
        let json = master_key.open(&sealed, &link_aad(tenant)).ok()?;
        let link: Self = serde_json::from_slice(&json).ok()?;
        (link.tenant_id == tenant.id && link.expires_at > storage::now()).then_some(link)
    }
}

/// How long a fetched discovery document (and its JWKS) is reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(600);

/// Discovery documents by issuer, reused for [`DISCOVERY_TTL`].
#[derive(Default)]
pub struct DiscoveryCache(Mutex<HashMap<String, (Instant, CoreProviderMetadata)>>);

impl DiscoveryCache {
    pub(super) fn get(&self, issuer: &str) -> Option<CoreProviderMetadata> {
        let map = self.0.lock().ok()?;
        map.get(issuer)
            .filter(|(at, _)| at.elapsed() < DISCOVERY_TTL)
            .map(|(_, m)| m.clone())
    }

    pub(super) fn put(&self, issuer: &str, meta: CoreProviderMetadata) {
        if let Ok(mut map) = self.0.lock() {
            map.retain(|_, (at, _)| at.elapsed() < DISCOVERY_TTL);
            map.insert(issuer.to_string(), (Instant::now(), meta));
        }
    }
}
