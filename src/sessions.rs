//! Browser sessions (single sign-on across a tenant's clients) and their end: RP-Initiated
//! Logout and OpenID Connect Back-Channel Logout 1.0. The session cookie holds a random
//! value; only its digest is stored. Logout tokens are queued in the database and
//! delivered in the background with a timeout and retries, never blocking the sign-out.

use std::sync::Arc;

use serde_json::json;

use crate::accounts::User;
use crate::clients::Client;
use crate::crypto;
use crate::outbound::Outbound;
use crate::provider::Provider;
use crate::storage::{self, sessions::SessionRow, tokens::DeliveryRow, Pool};
use crate::tenants::Tenant;

#[derive(Debug, Clone)]
pub struct Session {
    pub sid: String,
    pub tenant_id: String,
    pub user_id: String,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: String,
    pub expires_at: i64,
}

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Self {
        Self {
            amr: storage::parse_list(&r.amr),
            sid: r.sid,
            tenant_id: r.tenant_id,
            user_id: r.user_id,
            auth_time: r.auth_time,
            acr: r.acr,
            expires_at: r.expires_at,
        }
    }
}

/// The `acr` of an authentication made of the methods `amr` (RFC 8176 values).
pub fn acr_for(amr: &[&str]) -> &'static str {
    if amr.iter().any(|m| matches!(*m, "hwk" | "swk")) && amr.contains(&"user") {
        "phr"
    } else if amr.contains(&"otp") {
        "2"
    } else {
        "1"
    }
}

/// Whether an authentication of class `held` is at least as strong as `wanted`.
pub fn acr_satisfies(held: &str, wanted: &str) -> bool {
    let rank = |a: &str| crate::provider::ACR_VALUES.iter().position(|v| *v == a);
    matches!((rank(held), rank(wanted)), (Some(h), Some(w)) if h >= w)
}

/// The session cookie's name for a tenant: one cookie per tenant, so sessions of two
/// tenants never meet.
pub fn cookie_name(tenant_slug: &str) -> String {
    format!("portcullis_session_{tenant_slug}")
}

pub struct Started {
    /// The cookie value (secret; stored only as its digest).
    pub cookie: String,
    pub session: Session,
}

pub async fn start_session(
    pool: &Pool,
    session_ttl: i64,
    tenant: &Tenant,
    user: &User,
    amr: &[&str],
    acr: &str,
    ctx: &crate::audit::Context,
) -> Result<Started, sqlx::Error> {
    let cookie = crypto::random_token(32);
    let now = storage::now();
    let row = SessionRow {
        id_hash: crypto::token_digest(&cookie),
        sid: crypto::random_token(16),
        tenant_id: tenant.id.clone(),
        user_id: user.id.clone(),
        auth_time: now,
        amr: storage::json_list(&amr.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        acr: acr.to_string(),
        ip: ctx.ip.clone(),
        user_agent: ctx
            .user_agent
            .as_ref()
            .map(|u| u.chars().take(300).collect()),
        created_at: now,
        expires_at: now + session_ttl,
        ended_at: None,
    };
    storage::sessions::insert_session(pool, &row).await?;
    Ok(Started {
        cookie,
        session: Session::from(row),
    })
}

/// A new authentication of the user of a live session (prompt=login, max_age): the cookie
/// value is replaced and auth_time updated, but the session — and the relying parties'
/// view of it (`sid`) — continues.
pub async fn reauthenticate(
    pool: &Pool,
    session_ttl: i64,
    tenant: &Tenant,
    session: &Session,
    amr: &[&str],
    acr: &str,
) -> Result<Option<Started>, sqlx::Error> {
    let cookie = crypto::random_token(32);
    let now = storage::now();
    let amr_list: Vec<String> = amr.iter().map(|s| s.to_string()).collect();
    let expires_at = now + session_ttl;
    let updated = storage::sessions::update_session_authentication(
        pool,
        &tenant.id,
        &session.sid,
        &crypto::token_digest(&cookie),
        now,
        &storage::json_list(&amr_list),
        acr,
        expires_at,
    )
    .await?;
    Ok(updated.then(|| Started {
        cookie,
        session: Session {
            auth_time: now,
            amr: amr_list,
            acr: acr.to_string(),
            expires_at,
            ..session.clone()
        },
    }))
}

/// The live session a cookie value stands for, if any.
pub async fn find_session(
    pool: &Pool,
    tenant: &Tenant,
    cookie: &str,
) -> Result<Option<Session>, sqlx::Error> {
    if cookie.is_empty() || cookie.len() > 100 {
        return Ok(None);
    }
    let digest = crypto::token_digest(cookie);
    Ok(
        storage::sessions::find_live_session(pool, &tenant.id, &digest, storage::now())
            .await?
            .map(Session::from),
    )
}

/// Whether the session `sid` of this tenant is still live.
pub async fn is_live(pool: &Pool, tenant: &Tenant, sid: &str) -> Result<bool, sqlx::Error> {
    Ok(
        storage::sessions::find_live_session_by_sid(pool, &tenant.id, sid, storage::now())
            .await?
            .is_some(),
    )
}

/// Records that a client received tokens in this session (for back-channel logout).
pub async fn add_client(pool: &Pool, sid: &str, client_id: &str) -> Result<(), sqlx::Error> {
    storage::sessions::insert_session_client(pool, sid, client_id).await
}

/// Ends a session and queues a logout token for every client of that session that
/// registered a `backchannel_logout_uri`. Delivery happens in the background.
pub async fn end_session(
    pool: &Pool,
    outbound: &Arc<Outbound>,
    provider: &Provider,
    session: &Session,
) -> Result<(), anyhow::Error> {
    let now = storage::now();
    if !storage::sessions::end_session(pool, &provider.tenant.id, &session.sid, now).await? {
        return Ok(());
    }
    // Refresh tokens granted without offline_access live no longer than the sign-in session
    // (OpenID Connect Core §11, Back-Channel Logout §2.7).
    storage::tokens::revoke_session_refresh_tokens(pool, &provider.tenant.id, &session.sid, now)
        .await?;
    let client_ids = storage::sessions::list_session_clients(pool, &session.sid).await?;
    let clients: Vec<Client> =
        storage::clients::list_clients_by_ids(pool, &provider.tenant.id, &client_ids)
            .await?
            .into_iter()
            .map(Client::from)
            .collect();
    let mut queued = Vec::new();
    for client in clients {
        let Some(uri) = client.backchannel_logout_uri.clone() else {
            continue;
        };
        let token = logout_token(provider, &client, session, now)?;
        let row = DeliveryRow {
            id: uuid::Uuid::new_v4().to_string(),
            tenant_id: provider.tenant.id.clone(),
            client_id: client.id.clone(),
            uri,
            logout_token: token,
            attempts: 0,
            next_attempt_at: now,
            delivered_at: None,
            last_error: None,
            created_at: now,
        };
        storage::tokens::insert_delivery(pool, &row).await?;
        queued.push(row.id);
    }
    if !queued.is_empty() {
        let (pool, outbound) = (pool.clone(), outbound.clone());
        tokio::spawn(async move {
            for id in queued {
                deliver(&pool, &outbound, &id).await;
            }
        });
    }
    Ok(())
}

/// A session as the account page lists it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub sid: String,
    pub created_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// How many browser sessions of the tenant are live now.
pub async fn count_live(pool: &Pool, tenant: &Tenant) -> Result<i64, sqlx::Error> {
    storage::sessions::count_live_sessions(pool, &tenant.id, storage::now()).await
}

pub async fn list_user_sessions(
    pool: &Pool,
    tenant: &Tenant,
    user_id: &str,
) -> Result<Vec<SessionInfo>, sqlx::Error> {
    Ok(
        storage::sessions::list_user_sessions(pool, &tenant.id, user_id, storage::now())
            .await?
            .into_iter()
            .map(|r| SessionInfo {
                sid: r.sid,
                created_at: r.created_at,
                ip: r.ip,
                user_agent: r.user_agent,
            })
            .collect(),
    )
}

/// Ends one of the user's sessions (with back-channel logout).
pub async fn end_user_session(
    pool: &Pool,
    outbound: &Arc<Outbound>,
    provider: &Provider,
    user_id: &str,
    sid: &str,
) -> Result<bool, anyhow::Error> {
    let Some(row) =
        storage::sessions::find_live_session_by_sid(pool, &provider.tenant.id, sid, storage::now())
            .await?
    else {
        return Ok(false);
    };
    if row.user_id != user_id {
        return Ok(false);
    }
    end_session(pool, outbound, provider, &Session::from(row)).await?;
    Ok(true)
}

/// Signs the user out everywhere: every session ends (with back-channel logout) and every
/// refresh token is revoked, offline ones included.
pub async fn end_all_user_sessions(
    pool: &Pool,
    outbound: &Arc<Outbound>,
    provider: &Provider,
    user_id: &str,
) -> Result<(), anyhow::Error> {
    for s in list_user_sessions(pool, &provider.tenant, user_id).await? {
        end_user_session(pool, outbound, provider, user_id, &s.sid).await?;
    }
    storage::tokens::revoke_user_refresh_tokens(pool, &provider.tenant.id, user_id, storage::now())
        .await?;
    Ok(())
}

/// Back-Channel Logout 1.0 §2.4: a signed JWT with `typ` `logout+jwt`, `sid`, `sub` and
/// the back-channel logout event, and no `nonce`.
fn logout_token(
    provider: &Provider,
    client: &Client,
    session: &Session,
    now: i64,
) -> Result<String, anyhow::Error> {
    let claims = json!({
        "iss": provider.issuer,
        "aud": client.id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_TTL,
        "jti": crypto::random_token(16),
        "sub": session.user_id,
        "sid": session.sid,
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    Ok(provider
        .keys
        .sign(client.signing_alg, "logout+jwt", &claims)?)
}

pub const MAX_DELIVERY_ATTEMPTS: i64 = 6;
/// Longer than the whole retry schedule (5 + 10 + 20 + 40 + 80 s), so the last attempt
/// still carries a valid token.
const LOGOUT_TOKEN_TTL: i64 = 300;
const DELIVERY_LEASE: i64 = 60;

/// One attempt at a queued delivery (skipped if another instance holds it).
pub async fn deliver(pool: &Pool, outbound: &Arc<Outbound>, id: &str) {
    let now = storage::now();
    match storage::tokens::claim_delivery(pool, id, now, DELIVERY_LEASE).await {
        Ok(Some(row)) => attempt(pool, outbound, row).await,
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "back-channel logout: cannot claim delivery"),
    }
}

/// Retries deliveries that are due; run periodically by the background jobs.
pub async fn deliver_due(pool: &Pool, outbound: &Arc<Outbound>) {
    loop {
        let now = storage::now();
        match storage::tokens::claim_due_delivery(pool, now, DELIVERY_LEASE, MAX_DELIVERY_ATTEMPTS)
            .await
        {
            Ok(Some(row)) => attempt(pool, outbound, row).await,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "back-channel logout: cannot claim deliveries");
                return;
            }
        }
    }
}

async fn attempt(pool: &Pool, outbound: &Arc<Outbound>, row: DeliveryRow) {
    let body = format!(
        "logout_token={}",
        url::form_urlencoded::byte_serialize(row.logout_token.as_bytes()).collect::<String>()
    );
    let result = match outbound.client() {
        Ok(http) => Ok(http
            .post(&row.uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await),
        Err(e) => Err(e),
    };
    let now = storage::now();
    let outcome = match result {
        Ok(Ok(resp)) if resp.status().is_success() => Ok(()),
        Ok(Ok(resp)) => Err(format!("HTTP {}", resp.status().as_u16())),
        Ok(Err(e)) if e.is_timeout() => Err("timeout".to_string()),
        Ok(Err(_)) => Err("connection failed".to_string()),
        Err(e) => Err(e.to_string()),
    };
    let saved = match &outcome {
        Ok(()) => storage::tokens::mark_delivery(pool, &row.id, Some(now), now, None).await,
        Err(err) => {
            // Exponential back-off: 5 s, 10 s, 20 s, … (attempts counts this one).
            let delay = 5i64 << (row.attempts - 1).clamp(0, 10);
            tracing::info!(client_id = %row.client_id, attempt = row.attempts, error = %err, "back-channel logout delivery failed");
            storage::tokens::mark_delivery(pool, &row.id, None, now + delay, Some(err)).await
        }
    };
    if let Err(e) = saved {
        tracing::warn!(error = %e, "back-channel logout: cannot record the attempt");
    }
}
