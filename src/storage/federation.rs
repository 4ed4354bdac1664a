//! SSO connections, federated identities, upstream flows in flight, SAML replay cache and
//! the tenant's SAML service-provider key.

use super::{dispatch, DbResult, Pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConnectionRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub protocol: String,
    pub provider: Option<String>,
    pub config: String,
    pub client_secret: Option<Vec<u8>>,
    pub metadata_xml: Option<String>,
    pub metadata_fetched_at: Option<i64>,
    pub domains: String,
    pub attribute_mapping: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

pub async fn insert_connection(pool: &Pool, c: &ConnectionRow) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO sso_connections (id, tenant_id, name, protocol, provider, config, client_secret, metadata_xml, metadata_fetched_at, domains, attribute_mapping, enabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&c.id).bind(&c.tenant_id).bind(&c.name).bind(&c.protocol).bind(&c.provider).bind(&c.config)
    .bind(&c.client_secret).bind(&c.metadata_xml).bind(c.metadata_fetched_at).bind(&c.domains)
    .bind(&c.attribute_mapping).bind(c.enabled).bind(c.created_at).bind(c.updated_at)
    .execute(p)
    .await
    .map(|_| ()))
}

pub async fn list_connections(pool: &Pool, tenant_id: &str) -> DbResult<Vec<ConnectionRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, ConnectionRow>(
        "SELECT * FROM sso_connections WHERE tenant_id = $1 ORDER BY created_at, id",
    )
    .bind(tenant_id)
    .fetch_all(p)
    .await)
}

/// `(provider, domains)` of the tenant's enabled connections.
pub async fn list_sign_in_options(
    pool: &Pool,
    tenant_id: &str,
) -> DbResult<Vec<(Option<String>, String)>> {
    dispatch!(pool, p => sqlx::query_as::<_, (Option<String>, String)>(
        "SELECT provider, domains FROM sso_connections WHERE tenant_id = $1 AND enabled = TRUE",
    )
    .bind(tenant_id)
    .fetch_all(p)
    .await)
}

pub async fn find_connection(
    pool: &Pool,
    tenant_id: &str,
    id: &str,
) -> DbResult<Option<ConnectionRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, ConnectionRow>(
        "SELECT * FROM sso_connections WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(p)
    .await)
}

pub async fn delete_connection(pool: &Pool, tenant_id: &str, id: &str) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query("DELETE FROM sso_connections WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected() > 0))
}

/// Turns a connection on or off; false when the tenant has no such connection.
pub async fn set_connection_enabled(
    pool: &Pool,
    tenant_id: &str,
    id: &str,
    enabled: bool,
    now: i64,
) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query(
        "UPDATE sso_connections SET enabled = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(enabled)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected() > 0))
}

/// Stores a freshly fetched IdP metadata document.
pub async fn update_metadata(pool: &Pool, id: &str, xml: &str, now: i64) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "UPDATE sso_connections SET metadata_xml = $2, metadata_fetched_at = $3, updated_at = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(xml)
    .bind(now)
    .execute(p)
    .await
    .map(|_| ()))
}

/// Enabled SAML connections whose metadata was fetched before `before`.
pub async fn list_stale_metadata(pool: &Pool, before: i64) -> DbResult<Vec<ConnectionRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, ConnectionRow>(
        "SELECT * FROM sso_connections WHERE protocol = 'saml2' AND enabled = TRUE AND (metadata_fetched_at IS NULL OR metadata_fetched_at < $1)",
    )
    .bind(before)
    .fetch_all(p)
    .await)
}

pub async fn find_identity(
    pool: &Pool,
    connection_id: &str,
    subject: &str,
) -> DbResult<Option<String>> {
    dispatch!(pool, p => sqlx::query_scalar::<_, String>(
        "SELECT user_id FROM federated_identities WHERE connection_id = $1 AND subject = $2",
    )
    .bind(connection_id)
    .bind(subject)
    .fetch_optional(p)
    .await)
}

pub async fn link_identity(
    pool: &Pool,
    tenant_id: &str,
    connection_id: &str,
    subject: &str,
    user_id: &str,
    now: i64,
) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO federated_identities (tenant_id, connection_id, subject, user_id, created_at, last_login_at) VALUES ($1, $2, $3, $4, $5, $5) \
         ON CONFLICT (connection_id, subject) DO UPDATE SET last_login_at = excluded.last_login_at",
    )
    .bind(tenant_id)
    .bind(connection_id)
    .bind(subject)
    .bind(user_id)
    .bind(now)
    .execute(p)
    .await
    .map(|_| ()))
}

/// A sign-in method linked to a user: the connection and when it was linked and used.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LinkedIdentityRow {
    pub connection_id: String,
    pub name: String,
    pub protocol: String,
    pub provider: Option<String>,
    pub created_at: i64,
    pub last_login_at: i64,
}

pub async fn list_user_identities(
    pool: &Pool,
    tenant_id: &str,
    user_id: &str,
) -> DbResult<Vec<LinkedIdentityRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, LinkedIdentityRow>(
        "SELECT i.connection_id, c.name, c.protocol, c.provider, MIN(i.created_at) AS created_at, MAX(i.last_login_at) AS last_login_at \
         FROM federated_identities i JOIN sso_connections c ON c.id = i.connection_id \
         WHERE i.tenant_id = $1 AND i.user_id = $2 \
         GROUP BY i.connection_id, c.name, c.protocol, c.provider ORDER BY MIN(i.created_at)",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_all(p)
    .await)
}

/// Unlinks every identity of `connection_id` from the user; the number removed.
pub async fn delete_user_identities(
    pool: &Pool,
    tenant_id: &str,
    user_id: &str,
    connection_id: &str,
) -> DbResult<u64> {
    dispatch!(pool, p => sqlx::query(
        "DELETE FROM federated_identities WHERE tenant_id = $1 AND user_id = $2 AND connection_id = $3",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(connection_id)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FlowRow {
    pub id_hash: String,
    pub tenant_id: String,
    pub connection_id: String,
    pub request_id: Option<String>,
    pub browser_hash: Option<String>,
    pub secrets: Option<Vec<u8>>,
    pub saml_request_id: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
    /// Set when the account page started the flow to link a method to this user.
    pub link_user_id: Option<String>,
    /// Set when the flow is a sign-out round trip (SAML Single Logout): where the browser
    /// goes once the IdP answers (`""`: the signed-out page).
    pub logout_return: Option<String>,
}

pub async fn insert_flow(pool: &Pool, f: &FlowRow) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO federation_flows (id_hash, tenant_id, connection_id, request_id, browser_hash, secrets, saml_request_id, created_at, expires_at, consumed_at, link_user_id, logout_return) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11)",
    )
    .bind(&f.id_hash).bind(&f.tenant_id).bind(&f.connection_id).bind(&f.request_id).bind(&f.browser_hash)
    .bind(&f.secrets).bind(&f.saml_request_id).bind(f.created_at).bind(f.expires_at).bind(&f.link_user_id).bind(&f.logout_return)
    .execute(p)
    .await
    .map(|_| ()))
}

pub async fn find_flow(
    pool: &Pool,
    tenant_id: &str,
    id_hash: &str,
    now: i64,
) -> DbResult<Option<FlowRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, FlowRow>(
        "SELECT * FROM federation_flows WHERE tenant_id = $1 AND id_hash = $2 AND expires_at > $3",
    )
    .bind(tenant_id)
    .bind(id_hash)
    .bind(now)
    .fetch_optional(p)
    .await)
}

/// Marks a flow used; false when it already was (a replayed callback).
pub async fn consume_flow(pool: &Pool, id_hash: &str, now: i64) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query(
        "UPDATE federation_flows SET consumed_at = $2 WHERE id_hash = $1 AND consumed_at IS NULL",
    )
    .bind(id_hash)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected() > 0))
}

/// Records an accepted assertion id; false when it was seen before (a replay).
pub async fn remember_assertion(
    pool: &Pool,
    connection_id: &str,
    assertion_id: &str,
    expires_at: i64,
) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO saml_assertions_seen (connection_id, assertion_id, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(connection_id)
    .bind(assertion_id)
    .bind(expires_at)
    .execute(p)
    .await
    .map(|r| r.rows_affected() > 0))
}

/// Drops flows and remembered assertions past their lifetime.
pub async fn purge_expired(pool: &Pool, now: i64) -> DbResult<u64> {
    dispatch!(pool, p => {
        let a = sqlx::query("DELETE FROM federation_flows WHERE expires_at <= $1")
            .bind(now)
            .execute(p)
            .await?
            .rows_affected();
        let b = sqlx::query("DELETE FROM saml_assertions_seen WHERE expires_at <= $1")
            .bind(now)
            .execute(p)
            .await?
            .rows_affected();
        Ok(a + b)
    })
}

/// The upstream SAML session a browser session came from (Single Logout).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SamlSessionRow {
    pub sid: String,
    pub tenant_id: String,
    pub connection_id: String,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub name_qualifier: Option<String>,
    pub sp_name_qualifier: Option<String>,
    pub session_index: Option<String>,
    pub created_at: i64,
}

/// Records (or replaces: the latest SAML sign-in of a session wins) a session's upstream.
pub async fn upsert_saml_session(pool: &Pool, r: &SamlSessionRow) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO saml_sessions (sid, tenant_id, connection_id, name_id, name_id_format, name_qualifier, sp_name_qualifier, session_index, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (sid) DO UPDATE SET connection_id = excluded.connection_id, name_id = excluded.name_id, \
         name_id_format = excluded.name_id_format, name_qualifier = excluded.name_qualifier, \
         sp_name_qualifier = excluded.sp_name_qualifier, session_index = excluded.session_index, created_at = excluded.created_at",
    )
    .bind(&r.sid).bind(&r.tenant_id).bind(&r.connection_id).bind(&r.name_id).bind(&r.name_id_format)
    .bind(&r.name_qualifier).bind(&r.sp_name_qualifier).bind(&r.session_index).bind(r.created_at)
    .execute(p)
    .await
    .map(|_| ()))
}

/// Removes and returns the upstream SAML session of `sid` (SP-initiated logout sends at
/// most one LogoutRequest for it).
pub async fn take_saml_session(
    pool: &Pool,
    tenant_id: &str,
    sid: &str,
) -> DbResult<Option<SamlSessionRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, SamlSessionRow>(
        "DELETE FROM saml_sessions WHERE tenant_id = $1 AND sid = $2 RETURNING *",
    )
    .bind(tenant_id)
    .bind(sid)
    .fetch_optional(p)
    .await)
}

/// The sessions that came from this connection's subject `name_id`.
pub async fn list_saml_sessions_of_subject(
    pool: &Pool,
    tenant_id: &str,
    connection_id: &str,
    name_id: &str,
) -> DbResult<Vec<SamlSessionRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, SamlSessionRow>(
        "SELECT * FROM saml_sessions WHERE tenant_id = $1 AND connection_id = $2 AND name_id = $3",
    )
    .bind(tenant_id)
    .bind(connection_id)
    .bind(name_id)
    .fetch_all(p)
    .await)
}

/// Forgets the upstream SAML session of `sid`.
pub async fn delete_saml_session(pool: &Pool, tenant_id: &str, sid: &str) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query("DELETE FROM saml_sessions WHERE tenant_id = $1 AND sid = $2")
        .bind(tenant_id)
        .bind(sid)
        .execute(p)
        .await
        .map(|_| ()))
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SpKeyRow {
    pub tenant_id: String,
    pub private_key: Vec<u8>,
    pub certificate: String,
    pub created_at: i64,
}

/// What an SP key pair is for: signing (AuthnRequests, LogoutRequests/Responses) or
/// decrypting the assertions IdPs encrypt to it. Separate keys, one table each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpKeyUse {
    Signing,
    Encryption,
}

impl SpKeyUse {
    fn table(self) -> &'static str {
        match self {
            SpKeyUse::Signing => "saml_sp_keys",
            SpKeyUse::Encryption => "saml_sp_encryption_keys",
        }
    }
}

/// Stores the tenant's SP key unless one exists (another instance may have won the race).
pub async fn insert_sp_key(pool: &Pool, purpose: SpKeyUse, k: &SpKeyRow) -> DbResult<()> {
    let sql = format!(
        "INSERT INTO {} (tenant_id, private_key, certificate, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO NOTHING",
        purpose.table()
    );
    dispatch!(pool, p => sqlx::query(&sql)
    .bind(&k.tenant_id)
    .bind(&k.private_key)
    .bind(&k.certificate)
    .bind(k.created_at)
    .execute(p)
    .await
    .map(|_| ()))
}

pub async fn find_sp_key(
    pool: &Pool,
    purpose: SpKeyUse,
    tenant_id: &str,
) -> DbResult<Option<SpKeyRow>> {
    let sql = format!("SELECT * FROM {} WHERE tenant_id = $1", purpose.table());
    dispatch!(pool, p => sqlx::query_as::<_, SpKeyRow>(&sql)
        .bind(tenant_id)
        .fetch_optional(p)
        .await)
}
