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

pub mod connections;
pub mod oidc;
pub mod redirect;
pub mod saml;
pub mod slo;

pub use connections::*;

use crate::accounts::{self, AccountError, Email, NewUser, User};
use crate::provider::Provider;
use crate::rbac;
use crate::storage::{self, federation::ConnectionRow};
use crate::tenants::Tenant;

/// Creates a connection after checking it end to end: an OIDC upstream's discovery
/// document is fetched, a SAML IdP's metadata fetched (or read) and validated, so a
/// connection that cannot work is refused rather than stored.
pub async fn configure(
    d: Deps<'_>,
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
    let existing = list(d.pool, tenant).await?;
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
            oidc::discover(d, &config)
                .await
                .map_err(|e| invalid(format!("upstream discovery failed: {e}")))?;
            secret = Some(
                d.master_key
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
                    saml::fetch_metadata(d, u).await?
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
    storage::federation::insert_connection(d.pool, &row).await?;
    Connection::from_row(row).ok_or_else(|| FederationError::Unexpected(anyhow::anyhow!("bad row")))
}

/// Checks that a connection is usable now: the upstream's documents, certificates and
/// endpoints. A SAML connection with a metadata URL stores the metadata it fetched when
/// it is valid.
pub async fn test(d: Deps<'_>, conn: &Connection) -> Result<TestReport, FederationError> {
    let checks = match conn.protocol {
        Protocol::Oidc => oidc::test(d, conn).await,
        Protocol::Saml2 => saml::test(d, conn).await?,
    };
    Ok(TestReport {
        ok: checks.iter().all(|c| c.ok),
        checks,
    })
}

/// Re-fetches the metadata of SAML connections older than `max_age` seconds (a background
/// job). A document that fails validation is logged and the previous one kept.
pub async fn refresh_metadata(d: Deps<'_>, max_age: i64) -> Result<usize, sqlx::Error> {
    let now = storage::now();
    let mut refreshed = 0;
    for row in storage::federation::list_stale_metadata(d.pool, now - max_age).await? {
        let Some(conn) = Connection::from_row(row) else {
            continue;
        };
        let Some(url) = conn.config.metadata_url.clone() else {
            continue;
        };
        match saml::fetch_metadata(d, &url).await.and_then(|xml| {
            saml::IdpMetadata::parse(&xml, conn.config.idp_entity_id.as_deref())?;
            Ok(xml)
        }) {
            Ok(xml) => {
                storage::federation::update_metadata(d.pool, &conn.id, &xml, now).await?;
                refreshed += 1;
            }
            Err(e) => {
                tracing::warn!(connection = %conn.id, error = %e, "SAML metadata refresh failed; keeping the previous document")
            }
        }
    }
    Ok(refreshed)
}

/// The local user for an upstream identity: the linked one; else, by e-mail, an existing
/// account (only when the connection links by e-mail and the address is vouched for) or a
/// new one. Mapped roles are granted on every sign-in.
pub async fn resolve_user(
    d: Deps<'_>,
    tenant: &Tenant,
    conn: &Connection,
    id: &UpstreamIdentity,
) -> Result<User, FederationError> {
    let now = storage::now();
    let linked = storage::federation::find_identity(d.pool, &conn.id, &id.subject).await?;
    let user = match linked {
        Some(user_id) => accounts::find_user(d.pool, tenant, &user_id)
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
                storage::users::find_user_by_email(d.pool, &tenant.id, &email.key()).await?;
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
                    match accounts::create_user(d.pool, d.hasher, tenant, new).await {
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
    storage::federation::link_identity(d.pool, &tenant.id, &conn.id, &id.subject, &user.id, now)
        .await?;
    grant_mapped_roles(d, tenant, conn, &user, &id.groups).await?;
    Ok(user)
}

/// Links the pending identity to `user` — who has just signed in with a method the account
/// already had. False (nothing linked) when `user` is not the account the identity
/// matched, or the identity now belongs to someone else.
pub async fn finish_link(
    d: Deps<'_>,
    tenant: &Tenant,
    link: &PendingLink,
    user: &User,
) -> Result<bool, FederationError> {
    if link.user_id != user.id || link.tenant_id != tenant.id {
        return Ok(false);
    }
    link_to_user(d, tenant, &link.connection_id, &link.subject, user).await
}

/// Links (connection, subject) to `user` unless it is linked to another user.
async fn link_to_user(
    d: Deps<'_>,
    tenant: &Tenant,
    connection_id: &str,
    subject: &str,
    user: &User,
) -> Result<bool, FederationError> {
    match storage::federation::find_identity(d.pool, connection_id, subject).await? {
        Some(other) if other != user.id => Ok(false),
        _ => {
            storage::federation::link_identity(
                d.pool,
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
    d: Deps<'_>,
    tenant: &Tenant,
    user_id: &str,
) -> Result<Vec<LinkedMethod>, sqlx::Error> {
    storage::federation::list_user_identities(d.pool, &tenant.id, user_id).await
}

/// Unlinks a connection from the user, unless it is the account's last way to sign in
/// (no password and no other linked method).
pub async fn unlink(
    d: Deps<'_>,
    tenant: &Tenant,
    user: &User,
    connection_id: &str,
) -> Result<(), FederationError> {
    let methods = linked_methods(d, tenant, &user.id).await?;
    if !methods.iter().any(|m| m.connection_id == connection_id) {
        return Err(FederationError::NotFound);
    }
    let has_password = storage::users::find_user(d.pool, &tenant.id, &user.id)
        .await?
        .is_some_and(|r| r.password_hash.is_some());
    if !has_password && methods.len() <= 1 {
        return Err(FederationError::failed(
            "last_sign_in_method",
            "This is the only way to sign in to this account: set a password or link another method first.",
        ));
    }
    storage::federation::delete_user_identities(d.pool, &tenant.id, &user.id, connection_id)
        .await?;
    Ok(())
}

/// Finishes a flow the account page started to link `conn` to the signed-in user.
pub async fn link_from_account(
    d: Deps<'_>,
    tenant: &Tenant,
    conn: &Connection,
    id: &UpstreamIdentity,
    user: &User,
) -> Result<(), FederationError> {
    if link_to_user(d, tenant, &conn.id, &id.subject, user).await? {
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
    d: Deps<'_>,
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
        let role = rbac::find_role(d.pool, tenant, name)
            .await
            .map_err(|e| FederationError::Unexpected(e.into()))?;
        if let Some(role) = role {
            rbac::assign_role(d.pool, tenant, &user.id, &role)
                .await
                .map_err(|e| FederationError::Unexpected(anyhow::anyhow!(e.to_string())))?;
        }
    }
    Ok(())
}

/// Starts a sign-in at `conn`: records the flow and returns the upstream URL to send the
/// browser to. An OIDC flow is bound to the browser (`browser`, the value of the cookie
/// the caller sets); a SAML flow cannot be — the IdP's POST to the ACS is cross-site and
/// carries no SameSite=Lax cookie — and is bound through RelayState and InResponseTo.
pub async fn start(
    d: Deps<'_>,
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
            let (url, sealed) = oidc::authorization_url(d, p, conn, &flow).await?;
            flow.row.secrets = Some(sealed);
            (flow, url)
        }
        Protocol::Saml2 => {
            let mut flow = NewFlow::new(&p.tenant, conn, request_id, None);
            let (url, id) = saml::authn_request(d, p, conn, &flow.handle).await?;
            flow.row.saml_request_id = Some(id);
            (flow, url)
        }
    };
    let mut flow = flow;
    flow.row.link_user_id = link_user.map(str::to_string);
    storage::federation::insert_flow(d.pool, &flow.row).await?;
    Ok(location)
}

/// What the sign-in page offers: "Continue with Google", "Single sign-on".
pub struct SignInOptions {
    pub google: bool,
    pub sso: bool,
}

/// The sign-in page's buttons, from one small query (no metadata documents).
pub async fn sign_in_options(d: Deps<'_>, tenant: &Tenant) -> Result<SignInOptions, sqlx::Error> {
    let rows = storage::federation::list_sign_in_options(d.pool, &tenant.id).await?;
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
