//! Federation: a tenant's upstream identity providers ("SSO connections") — Google and any
//! OpenID Connect provider ([`oidc`]), SAML 2.0 identity providers ([`saml`]) — and what
//! happens when one vouches for a user: the identity is linked by (connection, subject),
//! provisioned just in time, or linked to an existing account by a verified e-mail address
//! when the connection allows it.
//!
//! A sign-in through a connection is a *flow*: started by the sign-in page (with a pending
//! authorization request) or by `GET /api/v1/auth/sso/login` (without one), stored in the
//! database under the digest of its `state`/`RelayState` value so that any instance can
//! finish it, and consumed once.

pub mod oidc;
pub mod saml;
pub mod slo;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::accounts::{self, AccountError, Email, NewUser, User};
use crate::crypto;
use crate::provider::Provider;
use crate::rbac;
use crate::state::AppState;
use crate::storage::{self, federation::ConnectionRow, federation::FlowRow};
use crate::tenants::Tenant;

/// Google's issuer, the default of `"provider":"google"` connections.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
/// How long an upstream sign-in may take.
const FLOW_TTL: i64 = 600;
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
    fn from_row(r: ConnectionRow) -> Option<Self> {
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

/// An outbound call's failure in words (for administrators; no secret in it).
pub(super) fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        e.to_string()
    }
}

/// Upstream URLs are https, except loopback addresses (local IdPs and tests).
pub fn check_upstream_url(field: &str, raw: &str) -> Result<url::Url, FederationError> {
    let u = url::Url::parse(raw).map_err(|_| invalid(format!("{field} is not a URL")))?;
    let loopback = match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match u.scheme() {
        "https" if u.host().is_some() => Ok(u),
        "http" if loopback => Ok(u),
        _ => Err(invalid(format!(
            "{field} must be an https URL (http only for loopback addresses)"
        ))),
    }
}

fn normalise_domains(domains: &[String]) -> Result<Vec<String>, FederationError> {
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

/// Creates a connection after checking it end to end: an OIDC upstream's discovery
/// document is fetched, a SAML IdP's metadata fetched (or read) and validated, so a
/// connection that cannot work is refused rather than stored.
pub async fn configure(
    state: &AppState,
    tenant: &Tenant,
    req: ConfigureRequest,
) -> Result<Connection, FederationError> {
    let google = match req.provider.as_deref() {
        None => false,
        Some("google") => true,
        Some(other) => return Err(invalid(format!("unknown provider {other:?}"))),
    };
    let protocol = match (req.protocol.as_deref(), google) {
        (Some("oidc"), _) | (None, true) => Protocol::Oidc,
        (Some("saml2"), false) => Protocol::Saml2,
        (Some("saml2"), true) => return Err(invalid("provider google uses protocol oidc")),
        (Some(other), _) => {
            return Err(invalid(format!(
                "protocol must be saml2 or oidc, not {other:?}"
            )))
        }
        (None, false) => return Err(invalid("protocol is required (saml2 or oidc)")),
    };
    let domains = normalise_domains(&req.domains)?;
    let existing = list(state, tenant).await?;
    for d in &domains {
        if existing.iter().any(|c| c.domains.contains(d)) {
            return Err(invalid(format!(
                "domain {d} already belongs to another connection"
            )));
        }
    }
    if google && existing.iter().any(Connection::is_google) {
        return Err(invalid("this tenant already has a Google connection"));
    }
    let name = req
        .name
        .clone()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| if google { "Google" } else { "Single sign-on" }.to_string());
    if name.len() > 100 {
        return Err(invalid("name is longer than 100 characters"));
    }
    let mut config = ConnectionConfig {
        allow_idp_initiated: req.allow_idp_initiated,
        sign_authn_requests: req.sign_authn_requests.unwrap_or(true),
        want_assertions_signed: req.want_assertions_signed.unwrap_or(true),
        link_by_email: req.link_by_email,
        apply_mfa_policy: req.apply_mfa_policy,
        ..ConnectionConfig::default()
    };
    let id = uuid::Uuid::new_v4().to_string();
    let now = storage::now();
    let mut secret = None;
    let mut metadata_xml = None;
    match protocol {
        Protocol::Oidc => {
            if req.metadata_url.is_some() || req.metadata_xml.is_some() {
                return Err(invalid("metadata_url and metadata_xml are for saml2"));
            }
            let issuer = match (req.issuer.as_deref(), req.discovery_url.as_deref()) {
                (Some(i), _) => i.trim_end_matches('/').to_string(),
                (None, Some(d)) => d
                    .strip_suffix("/.well-known/openid-configuration")
                    .ok_or_else(|| {
                        invalid("discovery_url must end with /.well-known/openid-configuration")
                    })?
                    .to_string(),
                (None, None) if google => GOOGLE_ISSUER.to_string(),
                (None, None) => return Err(invalid("issuer (or discovery_url) is required")),
            };
            check_upstream_url("issuer", &issuer)?;
            let client_id = req
                .client_id
                .clone()
                .filter(|c| !c.is_empty() && c.len() <= 512)
                .ok_or_else(|| invalid("client_id is required"))?;
            let client_secret = req
                .client_secret
                .clone()
                .filter(|c| !c.is_empty() && c.len() <= 1024)
                .ok_or_else(|| invalid("client_secret is required"))?;
            config.issuer = Some(issuer);
            config.client_id = Some(client_id);
            config.scopes = req.scopes.clone().unwrap_or_default();
            for s in &config.scopes {
                if s.is_empty() || !s.chars().all(|c| c.is_ascii_graphic() && c != '"') {
                    return Err(invalid(format!("scope {s:?} is not a valid scope")));
                }
            }
            if config.allow_idp_initiated
                || req.idp_entity_id.is_some()
                || req.sign_authn_requests.is_some()
                || req.want_assertions_signed.is_some()
                || req.name_id_format.is_some()
            {
                return Err(invalid(
                    "allow_idp_initiated, idp_entity_id, sign_authn_requests, want_assertions_signed and name_id_format are for saml2",
                ));
            }
            // The upstream must answer discovery now, or the connection could never work.
            oidc::discover(state, &config)
                .await
                .map_err(|e| invalid(format!("upstream discovery failed: {e}")))?;
            secret = Some(
                state
                    .master_key
                    .seal(client_secret.as_bytes(), id.as_bytes())
                    .map_err(|e| FederationError::Unexpected(e.into()))?,
            );
        }
        Protocol::Saml2 => {
            if req.issuer.is_some() || req.client_id.is_some() || req.client_secret.is_some() {
                return Err(invalid("issuer, client_id and client_secret are for oidc"));
            }
            let xml = match (req.metadata_url.as_deref(), req.metadata_xml) {
                (Some(u), None) => {
                    check_upstream_url("metadata_url", u)?;
                    config.metadata_url = Some(u.to_string());
                    saml::fetch_metadata(state, u).await?
                }
                (None, Some(x)) => x,
                _ => return Err(invalid("give exactly one of metadata_url and metadata_xml")),
            };
            let idp = saml::IdpMetadata::parse(&xml, req.idp_entity_id.as_deref())?;
            config.idp_entity_id = Some(idp.entity_id.clone());
            if idp.want_signed_requests && !config.sign_authn_requests {
                return Err(invalid(
                    "the identity provider wants signed AuthnRequests (WantAuthnRequestsSigned): sign_authn_requests cannot be false",
                ));
            }
            if let Some(f) = req.name_id_format.as_deref() {
                if !saml::NAME_ID_CHOICES.contains(&f) {
                    return Err(invalid(format!(
                        "name_id_format must be one of {}",
                        saml::NAME_ID_CHOICES.join(", ")
                    )));
                }
                if !idp.name_id_formats.is_empty() && !idp.name_id_formats.iter().any(|g| g == f) {
                    return Err(invalid(format!(
                        "the identity provider does not offer the NameID format {f}"
                    )));
                }
                config.name_id_format = Some(f.to_string());
            }
            if existing.iter().any(|c| {
                c.protocol == Protocol::Saml2 && c.config.idp_entity_id == config.idp_entity_id
            }) {
                return Err(invalid(
                    "a connection to this identity provider (entity id) already exists",
                ));
            }
            metadata_xml = Some(xml);
        }
    }
    let row = ConnectionRow {
        id,
        tenant_id: tenant.id.clone(),
        name,
        protocol: protocol.as_str().into(),
        provider: google.then(|| "google".to_string()),
        config: serde_json::to_string(&config).map_err(anyhow::Error::from)?,
        client_secret: secret,
        metadata_fetched_at: metadata_xml.as_ref().map(|_| now),
        metadata_xml,
        domains: serde_json::to_string(&domains).map_err(anyhow::Error::from)?,
        attribute_mapping: serde_json::to_string(&req.attribute_mapping)
            .map_err(anyhow::Error::from)?,
        enabled: true,
        created_at: now,
        updated_at: now,
    };
    storage::federation::insert_connection(&state.pool, &row).await?;
    Connection::from_row(row).ok_or_else(|| FederationError::Unexpected(anyhow::anyhow!("bad row")))
}

pub async fn list(state: &AppState, tenant: &Tenant) -> Result<Vec<Connection>, sqlx::Error> {
    Ok(
        storage::federation::list_connections(&state.pool, &tenant.id)
            .await?
            .into_iter()
            .filter_map(Connection::from_row)
            .collect(),
    )
}

pub async fn find(
    state: &AppState,
    tenant: &Tenant,
    id: &str,
) -> Result<Option<Connection>, sqlx::Error> {
    if id.len() > 64 {
        return Ok(None);
    }
    Ok(
        storage::federation::find_connection(&state.pool, &tenant.id, id)
            .await?
            .and_then(Connection::from_row),
    )
}

pub async fn delete(state: &AppState, tenant: &Tenant, id: &str) -> Result<bool, sqlx::Error> {
    storage::federation::delete_connection(&state.pool, &tenant.id, id).await
}

/// Which connection a sign-in by `email` goes to (home-realm discovery by domain).
pub fn by_email_domain<'a>(connections: &'a [Connection], email: &str) -> Option<&'a Connection> {
    let domain = email.trim().rsplit_once('@')?.1.to_ascii_lowercase();
    connections
        .iter()
        .find(|c| c.enabled && c.domains.contains(&domain))
}

/// The upstream client secret of an OIDC connection.
fn client_secret(state: &AppState, conn: &Connection) -> Result<String, FederationError> {
    let sealed = conn
        .sealed_secret
        .as_deref()
        .ok_or_else(|| invalid("the connection has no client secret"))?;
    let plain = state
        .master_key
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

/// Checks that a connection is usable now: the upstream's documents, certificates and
/// endpoints. A SAML connection with a metadata URL stores the metadata it fetched when
/// it is valid.
pub async fn test(state: &AppState, conn: &Connection) -> Result<TestReport, FederationError> {
    let checks = match conn.protocol {
        Protocol::Oidc => oidc::test(state, conn).await,
        Protocol::Saml2 => saml::test(state, conn).await?,
    };
    Ok(TestReport {
        ok: checks.iter().all(|c| c.ok),
        checks,
    })
}

/// Re-fetches the metadata of SAML connections older than `max_age` seconds (a background
/// job). A document that fails validation is logged and the previous one kept.
pub async fn refresh_metadata(state: &AppState, max_age: i64) -> Result<usize, sqlx::Error> {
    let now = storage::now();
    let mut refreshed = 0;
    for row in storage::federation::list_stale_metadata(&state.pool, now - max_age).await? {
        let Some(conn) = Connection::from_row(row) else {
            continue;
        };
        let Some(url) = conn.config.metadata_url.clone() else {
            continue;
        };
        match saml::fetch_metadata(state, &url).await.and_then(|xml| {
            saml::IdpMetadata::parse(&xml, conn.config.idp_entity_id.as_deref())?;
            Ok(xml)
        }) {
            Ok(xml) => {
                storage::federation::update_metadata(&state.pool, &conn.id, &xml, now).await?;
                refreshed += 1;
            }
            Err(e) => {
                tracing::warn!(connection = %conn.id, error = %e, "SAML metadata refresh failed; keeping the previous document")
            }
        }
    }
    Ok(refreshed)
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
    pub saml_session: Option<slo::SamlSession>,
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

/// The local user for an upstream identity: the linked one; else, by e-mail, an existing
/// account (only when the connection links by e-mail and the address is vouched for) or a
/// new one. Mapped roles are granted on every sign-in.
pub async fn resolve_user(
    state: &AppState,
    tenant: &Tenant,
    conn: &Connection,
    id: &UpstreamIdentity,
) -> Result<User, FederationError> {
    let now = storage::now();
    let linked = storage::federation::find_identity(&state.pool, &conn.id, &id.subject).await?;
    let user = match linked {
        Some(user_id) => accounts::find_user(state, tenant, &user_id)
            .await
            .map_err(account_error)?
            .ok_or_else(|| {
                FederationError::failed("user_missing", "This account no longer exists.")
            })?,
        None => {
            let raw = id.email.as_deref().ok_or_else(|| {
                FederationError::failed(
                    "no_email",
                    "The identity provider did not give an e-mail address.",
                )
            })?;
            let email = Email::parse(raw).map_err(|_| {
                FederationError::failed(
                    "bad_email",
                    "The identity provider gave an invalid e-mail address.",
                )
            })?;
            let existing =
                storage::users::find_user_by_email(&state.pool, &tenant.id, &email.key()).await?;
            match existing {
                Some(row) if conn.config.link_by_email && id.email_verified => User::from(row),
                Some(row) => {
                    return Err(FederationError::LinkRequired(Box::new(PendingLink {
                        tenant_id: tenant.id.clone(),
                        connection_id: conn.id.clone(),
                        connection_name: conn.name.clone(),
                        subject: id.subject.clone(),
                        user_id: row.id,
                        email: row.email,
                        expires_at: now + LINK_TTL,
                    })))
                }
                None => {
                    let new = NewUser {
                        email,
                        password: None,
                        profile: id.profile(),
                        email_verified: id.email_verified,
                        roles: Vec::new(),
                        attributes: serde_json::Map::new(),
                    };
                    match accounts::create_user(state, tenant, new).await {
                        Ok(u) => u,
                        Err(AccountError::AlreadyExists) => return Err(account_exists()),
                        Err(e) => return Err(account_error(e)),
                    }
                }
            }
        }
    };
    if user.disabled {
        return Err(FederationError::failed(
            "user_disabled",
            "This account is disabled.",
        ));
    }
    storage::federation::link_identity(
        &state.pool,
        &tenant.id,
        &conn.id,
        &id.subject,
        &user.id,
        now,
    )
    .await?;
    grant_mapped_roles(state, tenant, conn, &user, &id.groups).await?;
    Ok(user)
}

/// How long a person has to sign in with the existing method to link a new one.
const LINK_TTL: i64 = 600;

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
    pub fn seal(&self, state: &AppState, tenant: &Tenant) -> Result<String, FederationError> {
        let json = serde_json::to_vec(self).map_err(anyhow::Error::from)?;
        let sealed = state
            .master_key
            .seal(&json, &link_aad(tenant))
            .map_err(|e| FederationError::Unexpected(e.into()))?;
        Ok(crypto::b64url(&sealed))
    }

    /// A sealed value of this tenant, unexpired; `None` for anything else.
    pub fn open(state: &AppState, tenant: &Tenant, value: &str) -> Option<Self> {
        if value.len() > 4096 {
            return None;
        }
        let sealed = crypto::b64url_decode(value)?;
        let json = state.master_key.open(&sealed, &link_aad(tenant)).ok()?;
        let link: Self = serde_json::from_slice(&json).ok()?;
        (link.tenant_id == tenant.id && link.expires_at > storage::now()).then_some(link)
    }
}

/// Links the pending identity to `user` — who has just signed in with a method the account
/// already had. False (nothing linked) when `user` is not the account the identity
/// matched, or the identity now belongs to someone else.
pub async fn finish_link(
    state: &AppState,
    tenant: &Tenant,
    link: &PendingLink,
    user: &User,
) -> Result<bool, FederationError> {
    if link.user_id != user.id || link.tenant_id != tenant.id {
        return Ok(false);
    }
    link_to_user(state, tenant, &link.connection_id, &link.subject, user).await
}

/// Links (connection, subject) to `user` unless it is linked to another user.
async fn link_to_user(
    state: &AppState,
    tenant: &Tenant,
    connection_id: &str,
    subject: &str,
    user: &User,
) -> Result<bool, FederationError> {
    match storage::federation::find_identity(&state.pool, connection_id, subject).await? {
        Some(other) if other != user.id => Ok(false),
        _ => {
            storage::federation::link_identity(
                &state.pool,
                &tenant.id,
                connection_id,
                subject,
                &user.id,
                storage::now(),
            )
            .await?;
            Ok(true)
        }
    }
}

/// A linked sign-in method, for the account page.
pub use storage::federation::LinkedIdentityRow as LinkedMethod;

pub async fn linked_methods(
    state: &AppState,
    tenant: &Tenant,
    user_id: &str,
) -> Result<Vec<LinkedMethod>, sqlx::Error> {
    storage::federation::list_user_identities(&state.pool, &tenant.id, user_id).await
}

/// Unlinks a connection from the user, unless it is the account's last way to sign in
/// (no password and no other linked method).
pub async fn unlink(
    state: &AppState,
    tenant: &Tenant,
    user: &User,
    connection_id: &str,
) -> Result<(), FederationError> {
    let methods = linked_methods(state, tenant, &user.id).await?;
    if !methods.iter().any(|m| m.connection_id == connection_id) {
        return Err(FederationError::NotFound);
    }
    let has_password = storage::users::find_user(&state.pool, &tenant.id, &user.id)
        .await?
        .is_some_and(|r| r.password_hash.is_some());
    if !has_password && methods.len() <= 1 {
        return Err(FederationError::failed(
            "last_sign_in_method",
            "This is the only way to sign in to this account: set a password or link another method first.",
        ));
    }
    storage::federation::delete_user_identities(&state.pool, &tenant.id, &user.id, connection_id)
        .await?;
    Ok(())
}

/// Finishes a flow the account page started to link `conn` to the signed-in user.
pub async fn link_from_account(
    state: &AppState,
    tenant: &Tenant,
    conn: &Connection,
    id: &UpstreamIdentity,
    user: &User,
) -> Result<(), FederationError> {
    if link_to_user(state, tenant, &conn.id, &id.subject, user).await? {
        Ok(())
    } else {
        Err(FederationError::failed(
            "linked_elsewhere",
            "This sign-in method is already linked to another account.",
        ))
    }
}

/// An unlinked upstream identity whose address belongs to an account it may not take over.
fn account_exists() -> FederationError {
    FederationError::failed(
        "account_exists",
        "An account with this e-mail address already exists. Sign in with your password.",
    )
}

fn account_error(e: AccountError) -> FederationError {
    FederationError::Unexpected(anyhow::anyhow!(e.to_string()))
}

/// Grants the roles the connection's mapping derives from the upstream groups.
async fn grant_mapped_roles(
    state: &AppState,
    tenant: &Tenant,
    conn: &Connection,
    user: &User,
    groups: &[String],
) -> Result<(), FederationError> {
    for g in groups {
        let name = if conn.mapping.role_values.is_empty() {
            g.as_str()
        } else {
            match conn.mapping.role_values.get(g) {
                Some(n) => n.as_str(),
                None => continue,
            }
        };
        let role = rbac::find_role(state, tenant, name)
            .await
            .map_err(|e| FederationError::Unexpected(e.into()))?;
        if let Some(role) = role {
            rbac::assign_role(state, tenant, &user.id, &role)
                .await
                .map_err(|e| FederationError::Unexpected(anyhow::anyhow!(e.to_string())))?;
        }
    }
    Ok(())
}

/// A flow being started: the value that goes upstream (`state` or `RelayState`) and the
/// row that remembers it.
struct NewFlow {
    handle: String,
    row: FlowRow,
}

/// Starts a sign-in at `conn`: records the flow and returns the upstream URL to send the
/// browser to. An OIDC flow is bound to the browser (`browser`, the value of the cookie
/// the caller sets); a SAML flow cannot be — the IdP's POST to the ACS is cross-site and
/// carries no SameSite=Lax cookie — and is bound through RelayState and InResponseTo.
pub async fn start(
    state: &AppState,
    p: &Provider,
    conn: &Connection,
    request_id: Option<&str>,
    browser: &str,
    link_user: Option<&str>,
) -> Result<url::Url, FederationError> {
    if !conn.enabled {
        return Err(FederationError::NotFound);
    }
    let (flow, location) = match conn.protocol {
        Protocol::Oidc => {
            let mut flow = NewFlow::new(&p.tenant, conn, request_id, Some(browser));
            let (url, sealed) = oidc::authorization_url(state, p, conn, &flow).await?;
            flow.row.secrets = Some(sealed);
            (flow, url)
        }
        Protocol::Saml2 => {
            let mut flow = NewFlow::new(&p.tenant, conn, request_id, None);
            let (url, id) = saml::authn_request(state, p, conn, &flow.handle).await?;
            flow.row.saml_request_id = Some(id);
            (flow, url)
        }
    };
    let mut flow = flow;
    flow.row.link_user_id = link_user.map(str::to_string);
    storage::federation::insert_flow(&state.pool, &flow.row).await?;
    Ok(location)
}

/// What the sign-in page offers: "Continue with Google", "Single sign-on".
pub struct SignInOptions {
    pub google: bool,
    pub sso: bool,
}

/// The sign-in page's buttons, from one small query (no metadata documents).
pub async fn sign_in_options(
    state: &AppState,
    tenant: &Tenant,
) -> Result<SignInOptions, sqlx::Error> {
    let rows = storage::federation::list_sign_in_options(&state.pool, &tenant.id).await?;
    Ok(SignInOptions {
        google: rows
            .iter()
            .any(|(provider, _)| provider.as_deref() == Some("google")),
        sso: rows.iter().any(|(provider, domains)| {
            provider.as_deref() != Some("google")
                && !serde_json::from_str::<Vec<String>>(domains)
                    .unwrap_or_default()
                    .is_empty()
        }),
    })
}

impl NewFlow {
    fn new(
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
    state: &AppState,
    tenant: &Tenant,
    handle: &str,
) -> Result<Option<FlowRow>, sqlx::Error> {
    if handle.is_empty() || handle.len() > 128 {
        return Ok(None);
    }
    storage::federation::find_flow(
        &state.pool,
        &tenant.id,
        &crypto::token_digest(handle),
        storage::now(),
    )
    .await
}

/// Consumes a flow once; false when another request consumed it first.
pub async fn consume_flow(state: &AppState, flow: &FlowRow) -> Result<bool, sqlx::Error> {
    storage::federation::consume_flow(&state.pool, &flow.id_hash, storage::now()).await
}
