//! Tokens: the grants of the token endpoint (RFC 6749 §4.1.3, §4.4, §6), JWT access tokens
//! (RFC 9068), ID tokens (OpenID Connect Core §2), opaque rotating refresh tokens with
//! reuse detection (RFC 9700 §4.14.2), revocation (RFC 7009), introspection (RFC 7662),
//! bearer token validation (RFC 6750) and sender-constrained tokens (DPoP, RFC 9449).

use serde_json::{json, Map, Value};

use crate::accounts::{self, User};
use crate::audit::{self, AuditEvent, AuditSink, Context};
use crate::clients::{AuthMethod, Client, GrantType};
use crate::config::Config;
use crate::crypto;
use crate::dpop::{self, DpopError};
use crate::keys::JwtError;
use crate::provider::Provider;
use crate::rbac;
use crate::sessions;
use crate::storage::{self, tokens::RefreshTokenRow, Pool};

/// Errors of the token endpoint, one per RFC 6749 §5.2 error code.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("client authentication failed")]
    InvalidClient,
    #[error("{0}")]
    InvalidGrant(String),
    /// A rotated refresh token was presented again; its family is now revoked.
    #[error("refresh token was already used; its token family has been revoked")]
    RefreshReused,
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("unsupported grant_type")]
    UnsupportedGrantType,
    #[error("{0}")]
    InvalidScope(String),
    /// `invalid_dpop_proof` (RFC 9449 §5).
    #[error("{0}")]
    InvalidDpopProof(String),
    /// `use_dpop_nonce` (RFC 9449 §8): retry with this nonce.
    #[error("a DPoP nonce is required")]
    UseDpopNonce(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for TokenError {
    fn from(e: sqlx::Error) -> Self {
        TokenError::Unexpected(e.into())
    }
}

impl From<JwtError> for TokenError {
    fn from(e: JwtError) -> Self {
        TokenError::Unexpected(e.into())
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub scope: String,
}

/// Splits and checks a `scope` parameter (RFC 6749 §3.3).
pub fn parse_scope(s: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for token in s.split(' ').filter(|t| !t.is_empty()) {
        let ok = token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !ok || token.len() > 200 {
            return Err("scope contains invalid characters".into());
        }
        if !out.iter().any(|t| t == token) {
            out.push(token.to_string());
        }
    }
    if out.len() > 50 {
        return Err("too many scopes".into());
    }
    Ok(out)
}

/// What tokens are being issued for: a user's authentication, or the client itself.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    pub user: Option<User>,
    pub scope: Vec<String>,
    pub sid: Option<String>,
    pub auth_time: Option<i64>,
    pub amr: Vec<String>,
    pub acr: String,
    pub nonce: Option<String>,
    /// The OpenID Connect `claims` request parameter (Core §5.5), if any.
    pub claims: Option<Value>,
    /// Thumbprint of the DPoP key the tokens are bound to (RFC 9449 §6), if the request
    /// proved possession of one.
    pub dpop_jkt: Option<String>,
}

/// What issuing, refreshing and revoking tokens use: the database, the lifetimes of the
/// configuration and the audit sink.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub pool: &'a Pool,
    pub config: &'a Config,
    pub audit: &'a AuditSink,
    /// Key of the DPoP server nonces' MACs.
    pub mac_key: &'a [u8],
}

impl<'a> Deps<'a> {
    fn dpop(self) -> dpop::Deps<'a> {
        dpop::Deps {
            pool: self.pool,
            mac_key: self.mac_key,
        }
    }
}

/// The token types of RFC 9449 §5 / RFC 6750: `DPoP` for a key-bound token.
fn token_type(dpop_jkt: Option<&str>) -> &'static str {
    if dpop_jkt.is_some() {
        "DPoP"
    } else {
        "Bearer"
    }
}

/// The DPoP nonce to announce in `DPoP-Nonce` when the tenant requires nonces.
pub fn dpop_nonce(d: Deps<'_>, provider: &Provider) -> Option<String> {
    provider
        .tenant
        .settings
        .dpop_nonce_required
        .then(|| dpop::nonce(d.mac_key, &provider.tenant.id, storage::now()))
}

fn dpop_error(d: Deps<'_>, provider: &Provider, e: DpopError) -> TokenError {
    match e {
        DpopError::InvalidProof(why) => TokenError::InvalidDpopProof(why.into()),
        DpopError::UseNonce => {
            TokenError::UseDpopNonce(dpop::nonce(d.mac_key, &provider.tenant.id, storage::now()))
        }
        DpopError::Unexpected => TokenError::Unexpected(anyhow::anyhow!("DPoP replay cache")),
    }
}

/// The key a token request proved possession of (RFC 9449 §5): the thumbprint of the
/// `DPoP` proof's key for a `POST` to `uri`, or none without a proof — which a client
/// registered with `dpop_bound_access_tokens` may not do.
pub async fn proof_of_possession(
    d: Deps<'_>,
    provider: &Provider,
    client: &Client,
    proof: Option<&str>,
    uri: &str,
) -> Result<Option<String>, TokenError> {
    let Some(proof) = proof else {
        if client.requires_dpop() {
            return Err(TokenError::InvalidDpopProof(
                "this client must send a DPoP proof (dpop_bound_access_tokens, FAPI 2.0)".into(),
            ));
        }
        return Ok(None);
    };
    let presented = dpop::Presented {
        proof,
        method: "POST",
        uri,
        access_token: None,
    };
    let tenant = &provider.tenant;
    let checked = dpop::verify_proof(
        d.dpop(),
        &tenant.id,
        tenant.settings.dpop_nonce_required,
        presented,
    )
    .await
    .map_err(|e| dpop_error(d, provider, e))?;
    if client
        .profile_algs()
        .is_some_and(|algs| !algs.contains(&checked.alg.as_str()))
    {
        return Err(TokenError::InvalidDpopProof(
            "the DPoP proof's alg must be ES256 or PS256 (FAPI 2.0)".into(),
        ));
    }
    Ok(Some(checked.jkt))
}

/// Lifetime of access tokens for this client: client, then tenant, then server default.
pub fn access_token_ttl(d: Deps<'_>, provider: &Provider, client: &Client) -> i64 {
    client
        .access_token_ttl
        .or(provider.tenant.settings.access_token_ttl)
        .unwrap_or(d.config.access_token_ttl)
}

/// The scope that releases a standard claim (Core §5.4).
pub fn scope_of_claim(claim: &str) -> Option<&'static str> {
    match claim {
        "name" | "given_name" | "family_name" | "preferred_username" | "picture" | "locale"
        | "zoneinfo" | "updated_at" => Some("profile"),
        "email" | "email_verified" => Some("email"),
        _ => None,
    }
}

/// Standard claims a user has for the granted scopes (Core §5.4) plus individually
/// requested ones (Core §5.5) from the `claims` parameter section `section`.
pub fn user_claims(
    user: &User,
    scope: &[String],
    claims_req: Option<&Value>,
    section: &str,
) -> Map<String, Value> {
    let has = |s: &str| scope.iter().any(|x| x == s);
    let requested = |c: &str| {
        claims_req
            .and_then(|r| r.get(section))
            .and_then(Value::as_object)
            .is_some_and(|m| m.contains_key(c))
    };
    let mut m = Map::new();
    let mut put = |name: &str, value: Option<Value>, by_scope: bool| {
        if let Some(v) = value {
            if by_scope || requested(name) {
                m.insert(name.to_string(), v);
            }
        }
    };
    let profile = has("profile");
    let u = &user.profile;
    for (name, value) in [
        ("name", &u.name),
        ("given_name", &u.given_name),
        ("family_name", &u.family_name),
        ("preferred_username", &u.preferred_username),
        ("picture", &u.picture),
        ("locale", &u.locale),
        ("zoneinfo", &u.zoneinfo),
    ] {
        put(name, value.clone().map(Value::from), profile);
    }
    put("updated_at", Some(Value::from(user.updated_at)), profile);
    let email = has("email");
    put("email", Some(Value::from(user.email.clone())), email);
    put(
        "email_verified",
        Some(Value::from(user.email_verified)),
        email,
    );
    m
}

/// A refresh token being rotated: on its first use it is marked used in the same transaction
/// that stores its successor, so of concurrent presentations exactly one gets tokens; within
/// the reuse interval it is only locked, so a revocation of the family cannot miss the
/// successor.
struct Rotation {
    parent: String,
    first_use: bool,
}

struct Issued {
    response: TokenResponse,
}

/// Where new tokens come from: the refresh family they continue, the code they were
/// redeemed from, and a pre-chosen access token id (recorded on the code before issuing).
#[derive(Default)]
struct Lineage {
    family: Option<String>,
    code_hash: Option<String>,
    jti: Option<String>,
    /// Scope of the new refresh token when it differs from the access token's: a refresh
    /// that narrows the access token keeps the refresh token's original scope (RFC 6749 §6).
    refresh_scope: Option<Vec<String>>,
    /// The refresh token this issue rotates.
    rotates: Option<Rotation>,
    /// For the audit log and metrics.
    grant_type: &'static str,
}

/// Issues an access token, an ID token when `openid` was granted to a user, and a refresh
/// token when the client may refresh (continuing `family` when rotating).
async fn issue(
    d: Deps<'_>,
    provider: &Provider,
    client: &Client,
    grant: &Grant,
    lineage: Lineage,
    ctx: &Context,
) -> Result<Issued, TokenError> {
    let now = storage::now();
    let ttl = access_token_ttl(d, provider, client);
    let jti = lineage.jti.unwrap_or_else(|| crypto::random_token(16));
    let tenant = &provider.tenant;
    let scope = grant.scope.join(" ");
    let aud = tenant
        .settings
        .access_token_audience
        .clone()
        .unwrap_or_else(|| client.id.clone());
    let mut at = Map::new();
    at.insert("iss".into(), json!(provider.issuer));
    at.insert(
        "sub".into(),
        json!(grant.user.as_ref().map_or(&client.id, |u| &u.id)),
    );
    at.insert("aud".into(), json!(aud));
    at.insert("exp".into(), json!(now + ttl));
    at.insert("iat".into(), json!(now));
    at.insert("nbf".into(), json!(now));
    at.insert("jti".into(), json!(jti));
    at.insert("client_id".into(), json!(client.id));
    at.insert("scope".into(), json!(scope));
    at.insert("tenant_id".into(), json!(tenant.id));
    let access = match &grant.user {
        Some(u) => rbac::effective_access(d.pool, tenant, &u.id, &client.id).await?,
        None => rbac::Access::default(),
    };
    at.insert("roles".into(), json!(access.roles));
    at.insert("permissions".into(), json!(access.permissions));
    if let Some(t) = grant.auth_time {
        at.insert("auth_time".into(), json!(t));
    }
    if grant.user.is_some() {
        at.insert("acr".into(), json!(grant.acr));
        at.insert("amr".into(), json!(grant.amr));
        if sessions::acr_satisfies(&grant.acr, "2") {
            at.insert("mfa_verified".into(), json!(true));
        }
    }
    if let Some(sid) = &grant.sid {
        at.insert("sid".into(), json!(sid));
    }
    if let Some(jkt) = &grant.dpop_jkt {
        at.insert("cnf".into(), json!({ "jkt": jkt }));
    }
    // Claims the relying party asked for at userinfo (Core §5.5) travel with the token.
    if let Some(names) = grant
        .claims
        .as_ref()
        .and_then(|c| c.get("userinfo"))
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
    {
        at.insert("userinfo_claims".into(), json!(names));
    }
    for (name, value) in &tenant.settings.custom_claims {
        let resolved = match value.as_str().and_then(|s| s.strip_prefix("user.")) {
            Some(attr) => grant
                .user
                .as_ref()
                .and_then(|u| u.attributes.get(attr).cloned()),
            None => Some(value.clone()),
        };
        if let Some(v) = resolved {
            at.entry(name.clone()).or_insert(v);
        }
    }
    let access_token = provider
        .keys
        .sign(client.signing_alg, "at+jwt", &Value::Object(at))?;

    let id_token = match &grant.user {
        Some(user) if grant.scope.iter().any(|s| s == "openid") => {
            // Core §5.4: with an access token issued (always, here), the scopes' claims are
            // UserInfo's; the ID token carries only what the `claims` parameter asks of it.
            let mut id = user_claims(user, &[], grant.claims.as_ref(), "id_token");
            id.insert("iss".into(), json!(provider.issuer));
            id.insert("sub".into(), json!(user.id));
            id.insert("aud".into(), json!(client.id));
            id.insert("azp".into(), json!(client.id));
            id.insert("exp".into(), json!(now + d.config.id_token_ttl));
            id.insert("iat".into(), json!(now));
            if let Some(t) = grant.auth_time {
                id.insert("auth_time".into(), json!(t));
            }
            if let Some(n) = &grant.nonce {
                id.insert("nonce".into(), json!(n));
            }
            id.insert("acr".into(), json!(grant.acr));
            id.insert("amr".into(), json!(grant.amr));
            id.insert(
                "at_hash".into(),
                json!(client.signing_alg.left_half_hash(&access_token)),
            );
            if let Some(sid) = &grant.sid {
                id.insert("sid".into(), json!(sid));
            }
            Some(
                provider
                    .keys
                    .sign(client.signing_alg, "JWT", &Value::Object(id))?,
            )
        }
        _ => None,
    };

    let refresh_token = if grant.user.is_some() && client.allows_grant(GrantType::RefreshToken) {
        let token = format!("rt_{}", crypto::random_token(32));
        let row = RefreshTokenRow {
            token_hash: crypto::token_digest(&token),
            family_id: lineage.family.unwrap_or_else(|| crypto::random_token(16)),
            tenant_id: tenant.id.clone(),
            client_id: client.id.clone(),
            user_id: grant.user.as_ref().map(|u| u.id.clone()),
            sid: grant.sid.clone(),
            scope: storage::json_list(lineage.refresh_scope.as_ref().unwrap_or(&grant.scope)),
            claims: grant.claims.as_ref().map(Value::to_string),
            auth_time: grant.auth_time,
            amr: storage::json_list(&grant.amr),
            acr: grant.acr.clone(),
            code_hash: lineage.code_hash,
            access_token_jti: Some(jti.clone()),
            access_token_exp: Some(now + ttl),
            created_at: now,
            expires_at: now + d.config.refresh_token_ttl,
            used_at: None,
            revoked_at: None,
            // RFC 9449 §5: a client without credentials proves itself with the key instead.
            dpop_jkt: grant
                .dpop_jkt
                .clone()
                .filter(|_| client.auth_method == AuthMethod::None),
        };
        match &lineage.rotates {
            Some(r) => {
                if !storage::tokens::rotate_refresh_token(d.pool, &r.parent, &row, now, r.first_use)
                    .await?
                {
                    return Err(TokenError::RefreshReused);
                }
            }
            None => storage::tokens::insert_refresh_token(d.pool, &row).await?,
        }
        Some(token)
    } else {
        None
    };

    audit::record(
        d.audit,
        AuditEvent::new("token.issued", Some(tenant))
            .actor(grant.user.as_ref().map(|u| u.id.as_str()))
            .client(&client.id)
            .detail("jti", jti.as_str())
            .detail("scope", scope.as_str())
            .detail("grant_type", lineage.grant_type),
        ctx,
    );
    Ok(Issued {
        response: TokenResponse {
            access_token,
            token_type: token_type(grant.dpop_jkt.as_deref()),
            expires_in: ttl,
            refresh_token,
            id_token,
            scope,
        },
    })
}

/// Issues tokens for a first-party sign-in (the JSON API), without a code.
pub async fn issue_for_user(
    d: Deps<'_>,
    provider: &Provider,
    client: &Client,
    grant: &Grant,
    ctx: &Context,
) -> Result<TokenResponse, TokenError> {
    let lineage = Lineage {
        grant_type: "password",
        ..Lineage::default()
    };
    Ok(issue(d, provider, client, grant, lineage, ctx)
        .await?
        .response)
}

/// RFC 7636 §4.1: 43-128 characters of the unreserved set.
fn is_code_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// The parameters of an authorization_code token request (RFC 6749 §4.1.3, RFC 7636 §4.5).
#[derive(Debug, Clone, Copy)]
pub struct CodeRedemption<'a> {
    pub code: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
}

/// authorization_code grant (RFC 6749 §4.1.3, RFC 7636 §4.6). A code is redeemed once:
/// a second redemption fails and revokes every token the first one issued (§4.1.2). A code
/// bound to a DPoP key (`dpop_jkt`, RFC 9449 §10) is redeemed only with a proof by that key.
pub async fn exchange_code(
    d: Deps<'_>,
    provider: &Provider,
    client: &Client,
    request: CodeRedemption<'_>,
    dpop_jkt: Option<&str>,
    ctx: &Context,
) -> Result<TokenResponse, TokenError> {
    let CodeRedemption {
        code,
        redirect_uri,
        code_verifier,
    } = request;
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(TokenError::UnauthorizedClient(
            "client may not use authorization_code".into(),
        ));
    }
    if let Some(v) = code_verifier {
        if !is_code_verifier(v) {
            return Err(TokenError::InvalidRequest(
                "code_verifier must be 43-128 unreserved characters".into(),
            ));
        }
    }
    let tenant = &provider.tenant;
    let code_hash = crypto::token_digest(code);
    let now = storage::now();
    let jti = crypto::random_token(16);
    let ttl = access_token_ttl(d, provider, client);
    // RFC 7636 §4.6: S256(verifier) must equal the challenge. The comparison happens in the
    // UPDATE so that a failed attempt does not burn the code; what is compared are digests
    // the attacker cannot steer, so equality in SQL leaks nothing useful.
    let challenge = code_verifier.map(|v| crypto::b64url(&crypto::sha256(v.as_bytes())));
    let redemption = storage::authorization::Redemption {
        tenant_id: &tenant.id,
        client_id: &client.id,
        code_hash: &code_hash,
        redirect_uri,
        challenge: challenge.as_deref(),
        dpop_jkt,
        access_token_jti: &jti,
        access_token_exp: now + ttl,
    };
    let Some(row) = storage::authorization::redeem_code(d.pool, &redemption, now).await? else {
        let attempt = Attempt {
            code_hash: &code_hash,
            redirect_uri,
            challenge: challenge.as_deref(),
            dpop_jkt,
        };
        return Err(explain_failed_redemption(d, provider, client, attempt, now, ctx).await);
    };
    if !sessions::is_live(d.pool, tenant, &row.sid).await? {
        return Err(TokenError::InvalidGrant(
            "the sign-in session of this code has ended".into(),
        ));
    }
    let user = accounts::find_user(d.pool, tenant, &row.user_id)
        .await
        .map_err(|e| TokenError::Unexpected(e.into()))?
        .filter(|u| !u.disabled)
        .ok_or_else(|| TokenError::InvalidGrant("the user no longer exists".into()))?;
    let grant = Grant {
        user: Some(user),
        scope: storage::parse_list(&row.scope),
        sid: Some(row.sid.clone()),
        auth_time: Some(row.auth_time),
        amr: storage::parse_list(&row.amr),
        acr: row.acr.clone(),
        nonce: row.nonce.clone(),
        claims: row
            .claims
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok()),
        dpop_jkt: dpop_jkt.map(str::to_string),
    };
    // The access token carries the jti recorded on the code, so a replay can revoke it.
    let issued = issue(
        d,
        provider,
        client,
        &grant,
        Lineage {
            code_hash: Some(code_hash.clone()),
            jti: Some(jti.clone()),
            grant_type: "authorization_code",
            ..Lineage::default()
        },
        ctx,
    )
    .await?;
    // A replay racing this redemption revokes the access token first and then the refresh
    // families of the code (revoke_code_grant); a family created after it looked is caught
    // here. Each side's statement comes after its own commit, so one sees the other.
    if issued.response.refresh_token.is_some()
        && storage::tokens::is_access_token_revoked(d.pool, &tenant.id, &jti).await?
    {
        revoke_families_of_code(d, &tenant.id, &code_hash).await?;
        return Err(TokenError::InvalidGrant(
            "authorization code is invalid, expired or already used".into(),
        ));
    }
    sessions::add_client(d.pool, &row.sid, &client.id).await?;
    Ok(issued.response)
}

async fn revoke_families_of_code(
    d: Deps<'_>,
    tenant_id: &str,
    code_hash: &str,
) -> Result<(), TokenError> {
    let now = storage::now();
    for family in storage::tokens::list_families_of_code(d.pool, tenant_id, code_hash).await? {
        storage::tokens::revoke_refresh_family(d.pool, tenant_id, &family, now).await?;
    }
    Ok(())
}

/// What a failed redemption presented.
struct Attempt<'a> {
    code_hash: &'a str,
    redirect_uri: Option<&'a str>,
    challenge: Option<&'a str>,
    dpop_jkt: Option<&'a str>,
}

/// Why a code could not be redeemed (the code is left as it was, unless this is a replay).
async fn explain_failed_redemption(
    d: Deps<'_>,
    provider: &Provider,
    client: &Client,
    attempt: Attempt<'_>,
    now: i64,
    ctx: &Context,
) -> TokenError {
    let Attempt {
        code_hash,
        redirect_uri,
        challenge,
        dpop_jkt,
    } = attempt;
    let invalid = || {
        TokenError::InvalidGrant("authorization code is invalid, expired or already used".into())
    };
    let old = match storage::authorization::find_code(d.pool, &provider.tenant.id, code_hash).await
    {
        Ok(Some(old)) if old.client_id == client.id => old,
        Ok(_) => return invalid(),
        Err(e) => return e.into(),
    };
    if old.redeemed_at.is_some() {
        return match revoke_code_grant(d, provider, &old, ctx).await {
            Ok(()) => invalid(),
            Err(e) => e,
        };
    }
    if old.expires_at <= now {
        return invalid();
    }
    // RFC 6749 §4.1.3: redirect_uri must be identical to the one of the request.
    if redirect_uri != Some(old.redirect_uri.as_str()) {
        return TokenError::InvalidGrant(
            "redirect_uri does not match the authorization request".into(),
        );
    }
    // RFC 9449 §10: a code bound to a key needs a proof by that key.
    if old.dpop_jkt.is_some() && old.dpop_jkt.as_deref() != dpop_jkt {
        return TokenError::InvalidGrant(
            "the authorization code is bound to a DPoP key (dpop_jkt): send a DPoP proof signed with it".into(),
        );
    }
    match (&old.code_challenge, challenge) {
        (Some(_), None) => TokenError::InvalidGrant("code_verifier is required".into()),
        // RFC 9700 §2.1.1: a verifier without a challenge is a downgrade attempt.
        (None, Some(_)) => {
            TokenError::InvalidGrant("code_verifier given but no code_challenge was sent".into())
        }
        _ => TokenError::InvalidGrant("PKCE verification failed".into()),
    }
}

/// A replayed code: revoke the access token and the refresh token families it issued.
async fn revoke_code_grant(
    d: Deps<'_>,
    provider: &Provider,
    code: &storage::authorization::CodeRow,
    ctx: &Context,
) -> Result<(), TokenError> {
    // The access token first: a redemption still issuing checks it after creating its
    // refresh family (exchange_code), so a family this misses is revoked there.
    if let (Some(jti), Some(exp)) = (&code.access_token_jti, code.access_token_exp) {
        storage::tokens::insert_revoked_access_token(d.pool, &provider.tenant.id, jti, exp).await?;
    }
    revoke_families_of_code(d, &provider.tenant.id, &code.code_hash).await?;
    audit::record(
        d.audit,
        AuditEvent::new("token.code_reuse", Some(&provider.tenant))
            .actor(Some(&code.user_id))
            .client(&code.client_id),
        ctx,
    );
    Ok(())
}

/// refresh_token grant (RFC 6749 §6) with rotation: the presented token is used up and a
/// new one of the same family is issued. A used token presented again revokes the whole
/// family (RFC 9700 §4.14.2) — unless it comes within the tenant's reuse interval, which
/// lets several tabs that refresh at once each get tokens.
pub async fn refresh(
    d: Deps<'_>,
    provider: &Provider,
    client: &Client,
    refresh_token: &str,
    scope: Option<&str>,
    dpop_jkt: Option<&str>,
    ctx: &Context,
) -> Result<TokenResponse, TokenError> {
    if !client.allows_grant(GrantType::RefreshToken) {
        return Err(TokenError::UnauthorizedClient(
            "client may not use refresh_token".into(),
        ));
    }
    let tenant = &provider.tenant;
    let hash = crypto::token_digest(refresh_token);
    let now = storage::now();
    let invalid =
        || TokenError::InvalidGrant("refresh token is invalid, expired or revoked".into());
    let Some(row) = storage::tokens::find_refresh_token(d.pool, &tenant.id, &hash).await? else {
        return Err(invalid());
    };
    if row.client_id != client.id || row.revoked_at.is_some() || row.expires_at <= now {
        return Err(invalid());
    }
    // RFC 9449 §5: a public client's refresh token is used only with its key. Checked before
    // reuse detection: a stolen token without the key can neither refresh nor revoke.
    if row.dpop_jkt.is_some() && row.dpop_jkt.as_deref() != dpop_jkt {
        return Err(TokenError::InvalidGrant(
            "the refresh token is bound to a DPoP key: send a DPoP proof signed with it".into(),
        ));
    }
    // A used token presented again is theft (RFC 9700 §4.14.2), unless the tenant allows a
    // short reuse interval (several tabs refreshing at once): then it is not rotated again.
    let interval = tenant.settings.refresh_token_reuse_interval;
    let within_interval =
        |used: Option<i64>| used.is_some_and(|u| interval > 0 && now - u <= interval);
    let first_use = match row.used_at {
        None => true,
        used if within_interval(used) => false,
        Some(_) => return Err(refresh_reused(d, tenant, client, &row, ctx).await),
    };
    let granted = storage::parse_list(&row.scope);
    // Without offline_access a refresh token lives only as long as its browser session.
    if let Some(sid) = &row.sid {
        if !granted.iter().any(|s| s == "offline_access")
            && !sessions::is_live(d.pool, tenant, sid).await?
        {
            storage::tokens::revoke_refresh_family(d.pool, &tenant.id, &row.family_id, now).await?;
            return Err(TokenError::InvalidGrant(
                "the sign-in session of this refresh token has ended".into(),
            ));
        }
    }
    let scope = match scope {
        Some(s) => {
            let wanted = parse_scope(s).map_err(TokenError::InvalidScope)?;
            if let Some(extra) = wanted.iter().find(|w| !granted.contains(*w)) {
                return Err(TokenError::InvalidScope(format!(
                    "scope {extra:?} was not granted to this refresh token"
                )));
            }
            wanted
        }
        None => granted.clone(),
    };
    let user = match &row.user_id {
        Some(id) => accounts::find_user(d.pool, tenant, id)
            .await
            .map_err(|e| TokenError::Unexpected(e.into()))?
            .filter(|u| !u.disabled),
        None => None,
    };
    let Some(user) = user else {
        storage::tokens::revoke_refresh_family(d.pool, &tenant.id, &row.family_id, now).await?;
        return Err(TokenError::InvalidGrant("the user no longer exists".into()));
    };
    let grant = Grant {
        user: Some(user),
        scope,
        sid: row.sid.clone(),
        auth_time: row.auth_time,
        amr: storage::parse_list(&row.amr),
        acr: row.acr.clone(),
        nonce: None,
        claims: row
            .claims
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok()),
        dpop_jkt: dpop_jkt.map(str::to_string),
    };
    let lineage = |first_use: bool| Lineage {
        family: Some(row.family_id.clone()),
        code_hash: row.code_hash.clone(),
        jti: None,
        refresh_scope: Some(granted.clone()),
        rotates: Some(Rotation {
            parent: hash.clone(),
            first_use,
        }),
        grant_type: "refresh_token",
    };
    match issue(d, provider, client, &grant, lineage(first_use), ctx).await {
        Ok(issued) => Ok(issued.response),
        // Another request rotated this token first. Within the reuse interval this is a
        // concurrent tab and gets tokens too; otherwise this presentation is the reuse.
        Err(TokenError::RefreshReused) if first_use => {
            let again = storage::tokens::find_refresh_token(d.pool, &tenant.id, &hash).await?;
            if again
                .as_ref()
                .is_some_and(|r| r.revoked_at.is_none() && within_interval(r.used_at))
            {
                match issue(d, provider, client, &grant, lineage(false), ctx).await {
                    Ok(issued) => Ok(issued.response),
                    Err(TokenError::RefreshReused) => {
                        Err(refresh_reused(d, tenant, client, &row, ctx).await)
                    }
                    Err(e) => Err(e),
                }
            } else {
                Err(refresh_reused(d, tenant, client, &row, ctx).await)
            }
        }
        Err(TokenError::RefreshReused) => Err(refresh_reused(d, tenant, client, &row, ctx).await),
        Err(e) => Err(e),
    }
}

/// A refresh token was presented after its rotation: its whole family is revoked.
async fn refresh_reused(
    d: Deps<'_>,
    tenant: &crate::tenants::Tenant,
    client: &Client,
    row: &RefreshTokenRow,
    ctx: &Context,
) -> TokenError {
    if let Err(e) =
        storage::tokens::revoke_refresh_family(d.pool, &tenant.id, &row.family_id, storage::now())
            .await
    {
        return e.into();
    }
    audit::record(
        d.audit,
        AuditEvent::new("token.refresh_reuse", Some(tenant))
            .actor(row.user_id.as_deref())
            .client(&client.id)
            .detail("family", row.family_id.as_str()),
        ctx,
    );
    TokenError::RefreshReused
}

/// client_credentials grant (RFC 6749 §4.4): confidential clients only, no refresh token.
pub async fn client_credentials(
    d: Deps<'_>,
    provider: &Provider,
    client: &Client,
    scope: Option<&str>,
    dpop_jkt: Option<&str>,
    ctx: &Context,
) -> Result<TokenResponse, TokenError> {
    if !client.confidential || !client.allows_grant(GrantType::ClientCredentials) {
        return Err(TokenError::UnauthorizedClient(
            "client may not use client_credentials".into(),
        ));
    }
    let scope = match scope {
        Some(s) => {
            let wanted = parse_scope(s).map_err(TokenError::InvalidScope)?;
            if let Some(bad) = wanted
                .iter()
                .find(|w| !client.allows_scope(w) || *w == "openid" || *w == "offline_access")
            {
                return Err(TokenError::InvalidScope(format!(
                    "scope {bad:?} is not allowed for this client"
                )));
            }
            wanted
        }
        None => client
            .scopes
            .iter()
            .filter(|s| !crate::provider::SCOPES_SUPPORTED.contains(&s.as_str()))
            .cloned()
            .collect(),
    };
    let grant = Grant {
        scope,
        dpop_jkt: dpop_jkt.map(str::to_string),
        ..Grant::default()
    };
    let lineage = Lineage {
        grant_type: "client_credentials",
        ..Lineage::default()
    };
    Ok(issue(d, provider, client, &grant, lineage, ctx)
        .await?
        .response)
}

/// A validated access token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub claims: Map<String, Value>,
    pub sub: String,
    pub client_id: String,
    pub scope: Vec<String>,
    pub jti: String,
    pub exp: i64,
}

impl AccessToken {
    /// Whether `aud` names `id` (a string or an array, RFC 7519 §4.1.3).
    pub fn has_audience(&self, id: &str) -> bool {
        audience_includes(&self.claims, id)
    }

    /// Thumbprint of the DPoP key the token is bound to (`cnf.jkt`, RFC 9449 §6.1).
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.claims.get("cnf")?.get("jkt")?.as_str()
    }
}

/// How an access token reached a protected resource: `Authorization: Bearer` (RFC 6750
/// §2.1, or the form body), or `Authorization: DPoP` with the request's `DPoP` proof
/// (RFC 9449 §7.1).
#[derive(Debug, Clone, Copy)]
pub enum Presentation<'a> {
    Bearer(&'a str),
    Dpop {
        token: &'a str,
        proof: Option<&'a str>,
        method: &'a str,
        uri: &'a str,
    },
}

/// Validates a presented access token ([`validate_access_token`]) and how it came: a
/// DPoP-bound token only with the DPoP scheme and a proof by its key over this request and
/// this token (`ath`), a bearer token only as a bearer token (RFC 9449 §7).
pub async fn validate_presented(
    d: Deps<'_>,
    provider: &Provider,
    presented: Presentation<'_>,
) -> Result<AccessToken, BearerError> {
    match presented {
        Presentation::Bearer(token) => {
            let at = validate_access_token(d, provider, token).await?;
            if at.dpop_jkt().is_some() {
                return Err(BearerError::KeyBound);
            }
            Ok(at)
        }
        Presentation::Dpop {
            token,
            proof,
            method,
            uri,
        } => {
            let at = validate_access_token(d, provider, token).await?;
            let Some(bound) = at.dpop_jkt() else {
                return Err(BearerError::NotKeyBound);
            };
            let proof = proof.ok_or(BearerError::InvalidDpopProof(
                "a DPoP proof is required with a DPoP-bound access token",
            ))?;
            let tenant = &provider.tenant;
            let presented = dpop::Presented {
                proof,
                method,
                uri,
                access_token: Some(token),
            };
            let checked = dpop::verify_proof(
                d.dpop(),
                &tenant.id,
                tenant.settings.dpop_nonce_required,
                presented,
            )
            .await
            .map_err(|e| match e {
                DpopError::InvalidProof(why) => BearerError::InvalidDpopProof(why),
                DpopError::UseNonce => {
                    BearerError::UseDpopNonce(dpop::nonce(d.mac_key, &tenant.id, storage::now()))
                }
                DpopError::Unexpected => BearerError::Unexpected,
            })?;
            if checked.jkt != bound {
                return Err(BearerError::InvalidDpopProof(
                    "the DPoP proof is not signed by the key the access token is bound to",
                ));
            }
            Ok(at)
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BearerError {
    #[error("the access token is malformed or its signature is invalid")]
    Invalid,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token has been revoked")]
    Revoked,
    /// RFC 9449 §7.2: a DPoP-bound token sent as a bearer token.
    #[error("the access token is bound to a DPoP key: send it with the DPoP scheme and a proof")]
    KeyBound,
    #[error("the access token is not DPoP-bound: send it with the Bearer scheme")]
    NotKeyBound,
    /// `invalid_dpop_proof` (RFC 9449 §7.1).
    #[error("{0}")]
    InvalidDpopProof(&'static str),
    /// `use_dpop_nonce` (RFC 9449 §9): retry with this nonce.
    #[error("a fresh DPoP nonce is required: retry with the one in the DPoP-Nonce header")]
    UseDpopNonce(String),
    #[error("internal error")]
    Unexpected,
}

/// How far in the future an access token's `nbf` may be (clocks of instances differ).
const NBF_SKEW_SECS: i64 = 60;

/// Validates an access token of this tenant: signature by one of its published keys, `typ`
/// `at+jwt`, issuer, expiry and `nbf`, and the revocation list (RFC 9068 §4).
pub async fn validate_access_token(
    d: Deps<'_>,
    provider: &Provider,
    token: &str,
) -> Result<AccessToken, BearerError> {
    if token.len() > 8192 {
        return Err(BearerError::Invalid);
    }
    let (typ, claims) = provider
        .keys
        .verify(token)
        .map_err(|_| BearerError::Invalid)?;
    if typ.as_deref() != Some("at+jwt")
        || claims.get("iss").and_then(Value::as_str) != Some(&provider.issuer)
    {
        return Err(BearerError::Invalid);
    }
    let get = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(sub), Some(client_id), Some(jti), Some(exp)) = (
        get("sub"),
        get("client_id"),
        get("jti"),
        claims.get("exp").and_then(Value::as_i64),
    ) else {
        return Err(BearerError::Invalid);
    };
    let now = storage::now();
    if exp <= now {
        return Err(BearerError::Expired);
    }
    // RFC 7519 §4.1.5, with the clock skew tolerated between instances.
    if claims
        .get("nbf")
        .is_some_and(|nbf| nbf.as_i64().is_none_or(|nbf| nbf > now + NBF_SKEW_SECS))
    {
        return Err(BearerError::NotYetValid);
    }
    if storage::tokens::is_access_token_revoked(d.pool, &provider.tenant.id, &jti)
        .await
        .map_err(|_| BearerError::Unexpected)?
    {
        return Err(BearerError::Revoked);
    }
    let scope = get("scope")
        .map(|s| s.split(' ').map(str::to_string).collect())
        .unwrap_or_default();
    Ok(AccessToken {
        claims,
        sub,
        client_id,
        scope,
        jti,
        exp,
    })
}

/// RFC 7009 §2.1: revokes an access or refresh token issued to `client`. Unknown tokens,
/// and tokens of other clients, are answered the same way (success) and change nothing.
pub async fn revoke(
    d: Deps<'_>,
    provider: &Provider,
    client: &Client,
    token: &str,
    ctx: &Context,
) -> Result<(), TokenError> {
    let tenant = &provider.tenant;
    let now = storage::now();
    if token.starts_with("rt_") {
        let hash = crypto::token_digest(token);
        if let Some(row) = storage::tokens::find_refresh_token(d.pool, &tenant.id, &hash).await? {
            if row.client_id == client.id {
                storage::tokens::revoke_refresh_family(d.pool, &tenant.id, &row.family_id, now)
                    .await?;
                audit::record(
                    d.audit,
                    AuditEvent::new("token.revoked", Some(tenant))
                        .client(&client.id)
                        .detail("type", "refresh_token"),
                    ctx,
                );
            }
        }
        return Ok(());
    }
    if let Ok((Some(typ), claims)) = provider.keys.verify(token) {
        let jti = claims.get("jti").and_then(Value::as_str);
        let exp = claims.get("exp").and_then(Value::as_i64);
        let owner = claims.get("client_id").and_then(Value::as_str);
        if let (true, Some(jti), Some(exp), Some(owner)) = (typ == "at+jwt", jti, exp, owner) {
            if owner == client.id && exp > now {
                storage::tokens::insert_revoked_access_token(d.pool, &tenant.id, jti, exp).await?;
                audit::record(
                    d.audit,
                    AuditEvent::new("token.revoked", Some(tenant))
                        .client(&client.id)
                        .detail("type", "access_token"),
                    ctx,
                );
            }
        }
    }
    Ok(())
}

/// Revokes a token (access or refresh) that belongs to `user_id`, whichever client it was
/// issued to (first-party API: a user revoking their own token). Others are left alone.
pub async fn revoke_for_user(
    d: Deps<'_>,
    provider: &Provider,
    user_id: &str,
    token: &str,
    ctx: &Context,
) -> Result<(), TokenError> {
    let tenant = &provider.tenant;
    let now = storage::now();
    if token.starts_with("rt_") {
        let hash = crypto::token_digest(token);
        if let Some(row) = storage::tokens::find_refresh_token(d.pool, &tenant.id, &hash).await? {
            if row.user_id.as_deref() == Some(user_id) {
                storage::tokens::revoke_refresh_family(d.pool, &tenant.id, &row.family_id, now)
                    .await?;
                audit::record(
                    d.audit,
                    AuditEvent::new("token.revoked", Some(tenant))
                        .actor(Some(user_id))
                        .detail("type", "refresh_token"),
                    ctx,
                );
            }
        }
        return Ok(());
    }
    if let Ok((Some(typ), claims)) = provider.keys.verify(token) {
        let get = |k: &str| claims.get(k).and_then(Value::as_str);
        if let (true, Some(jti), Some(sub), Some(exp)) = (
            typ == "at+jwt",
            get("jti"),
            get("sub"),
            claims.get("exp").and_then(Value::as_i64),
        ) {
            if sub == user_id && exp > now {
                storage::tokens::insert_revoked_access_token(d.pool, &tenant.id, jti, exp).await?;
                audit::record(
                    d.audit,
                    AuditEvent::new("token.revoked", Some(tenant))
                        .actor(Some(user_id))
                        .detail("type", "access_token"),
                    ctx,
                );
            }
        }
    }
    Ok(())
}

fn audience_includes(claims: &Map<String, Value>, id: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => a == id,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(id)),
        _ => false,
    }
}

/// RFC 7662 §2.2: the state of a token of this tenant; anything not live is `active:false`.
pub async fn introspect(
    d: Deps<'_>,
    provider: &Provider,
    caller: &Client,
    token: &str,
) -> Result<Value, TokenError> {
    let inactive = json!({ "active": false });
    let now = storage::now();
    if token.starts_with("rt_") {
        let hash = crypto::token_digest(token);
        let Some(row) =
            storage::tokens::find_refresh_token(d.pool, &provider.tenant.id, &hash).await?
        else {
            return Ok(inactive);
        };
        // RFC 7662 §4: only the client the token was issued to learns about it.
        if row.client_id != caller.id
            || row.used_at.is_some()
            || row.revoked_at.is_some()
            || row.expires_at <= now
        {
            return Ok(inactive);
        }
        return Ok(json!({
            "active": true,
            "token_type": "refresh_token",
            "scope": storage::parse_list(&row.scope).join(" "),
            "client_id": row.client_id,
            "sub": row.user_id,
            "iss": provider.issuer,
            "exp": row.expires_at,
            "iat": row.created_at,
            "tenant_id": provider.tenant.id,
        }));
    }
    match validate_access_token(d, provider, token).await {
        // RFC 7662 §4: the token's own client, or a resource server named in its audience.
        Ok(at) if at.client_id != caller.id && !audience_includes(&at.claims, &caller.id) => {
            Ok(inactive)
        }
        Ok(at) => {
            let kind = token_type(at.dpop_jkt());
            let mut out = at.claims;
            out.insert("active".into(), json!(true));
            out.insert("token_type".into(), json!(kind));
            Ok(Value::Object(out))
        }
        Err(BearerError::Unexpected) => Err(TokenError::Unexpected(anyhow::anyhow!(
            "revocation lookup failed"
        ))),
        Err(_) => Ok(inactive),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_split_on_spaces_and_deduplicated() {
        assert_eq!(
            parse_scope("openid  email openid").unwrap(),
            vec!["openid", "email"]
        );
    }

    #[test]
    fn scopes_with_quotes_or_backslashes_are_refused() {
        assert!(parse_scope("openid \"x\"").is_err());
        assert!(parse_scope("a\\b").is_err());
    }

    #[test]
    fn code_verifiers_must_have_43_to_128_unreserved_characters() {
        assert!(is_code_verifier(&"a".repeat(43)));
        assert!(!is_code_verifier(&"a".repeat(42)));
        assert!(!is_code_verifier(&"a".repeat(129)));
        assert!(!is_code_verifier(&format!("{}+", "a".repeat(43))));
    }
}
