//! The authorization endpoint's logic (RFC 6749 §4.1, OpenID Connect Core §3.1.2): request
//! validation, the decision between sign-in, consent and issuing a code, remembered
//! consent, and authorization codes. A bad `client_id` or `redirect_uri` is never
//! redirected to (RFC 6749 §4.1.2.1): the caller shows it on an error page.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clients::{self, Client, GrantType};
use crate::config::Config;
use crate::crypto;
use crate::provider::Provider;
use crate::sessions::Session;
use crate::storage::{self, authorization::AuthorizationRequestRow, authorization::CodeRow, Pool};
use crate::tokens::parse_scope;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    FormPost,
}

/// A validated authorization request, stored while the user signs in and consents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Vec<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// `sub` of a valid `id_token_hint`.
    pub hint_sub: Option<String>,
    pub ui_locales: Option<String>,
    pub acr_values: Option<String>,
    pub claims: Option<Value>,
    /// A sign-in for one of Portcullis's own pages (account, console): no code is issued,
    /// the browser goes back to the page (`redirect_uri`).
    #[serde(default)]
    pub account_page: bool,
    /// Thumbprint of the DPoP key the code is to be bound to (RFC 9449 §10): the
    /// `dpop_jkt` parameter, or the key of the proof sent to PAR.
    #[serde(default)]
    pub dpop_jkt: Option<String>,
    /// A shorter code lifetime than the server's, in seconds (FAPI 2.0 clients: 60).
    #[serde(default)]
    pub code_ttl: Option<i64>,
}

impl AuthorizationRequest {
    pub fn has_prompt(&self, p: &str) -> bool {
        self.prompt.iter().any(|x| x == p)
    }

    /// Whether `acr_values` asks for this level.
    pub fn wants_acr(&self, level: &str) -> bool {
        self.acr_values
            .as_deref()
            .is_some_and(|v| v.split(' ').any(|x| x == level))
    }

    /// What the user consents to: the requested scopes, plus the scopes that cover claims
    /// asked for one by one with the `claims` parameter (Core §5.5), so that no claim is
    /// released without consent.
    pub fn consent_scopes(&self) -> Vec<String> {
        let mut out = self.scope.clone();
        let requested = ["id_token", "userinfo"].into_iter().flat_map(|section| {
            self.claims
                .as_ref()
                .and_then(|c| c.get(section))
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        });
        for claim in requested {
            if let Some(scope) = crate::tokens::scope_of_claim(&claim) {
                if !out.iter().any(|s| s == scope) {
                    out.push(scope.to_string());
                }
            }
        }
        out
    }

    /// Whether the live session may be reused by choice ("Continue as"): only when picking
    /// the account is the sole reason for the sign-in page — no prompt=login, no max_age,
    /// and no id_token_hint naming someone else (Core §3.1.2.1).
    pub fn allows_continue_as(&self, session: &Session) -> bool {
        self.has_prompt("select_account")
            && !self.has_prompt("login")
            && self.max_age.is_none()
            && self
                .hint_sub
                .as_ref()
                .is_none_or(|sub| sub == &session.user_id)
    }
}

/// Where an error response goes once the redirect URI is trusted.
#[derive(Debug, Clone)]
pub struct ErrorRedirect {
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub state: Option<String>,
    pub error: &'static str,
    pub description: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// Shown to the user; never redirected (unknown client, bad redirect URI).
    #[error("{0}")]
    Page(String),
    /// Sent back to the client's redirect URI.
    #[error("{}", .0.error)]
    Redirect(ErrorRedirect),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AuthorizeError {
    fn from(e: sqlx::Error) -> Self {
        AuthorizeError::Unexpected(e.into())
    }
}

/// Raw request parameters, with the names that appeared more than once.
#[derive(Debug, Default)]
pub struct Params {
    pub values: HashMap<String, String>,
    pub repeated: Vec<String>,
}

impl Params {
    pub fn parse(raw: &[u8]) -> Self {
        let mut p = Params::default();
        for (k, v) in url::form_urlencoded::parse(raw) {
            if p.values.contains_key(k.as_ref()) {
                p.repeated.push(k.to_string());
            } else {
                p.values.insert(k.to_string(), v.to_string());
            }
        }
        p
    }

    /// A parameter's value; empty values count as absent (RFC 6749 §3.1).
    pub fn get(&self, k: &str) -> Option<&str> {
        self.values
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

const MAX_PARAM: usize = 2048;

/// What the authorization endpoint's functions use: the database, the lifetimes of the
/// configuration and the clients (through their cache).
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub pool: &'a Pool,
    pub config: &'a Config,
    pub clients: clients::Deps<'a>,
}

/// Validates an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, Core §3.1.2.1).
pub async fn validate(
    d: Deps<'_>,
    provider: &Provider,
    params: &Params,
) -> Result<(Client, AuthorizationRequest), AuthorizeError> {
    // RFC 6749 §3.1: parameters must not appear more than once. Until the client and its
    // redirect URI are known to be genuine, errors are shown, never redirected.
    for trust_critical in ["client_id", "redirect_uri", "request_uri"] {
        if params.repeated.iter().any(|r| r == trust_critical) {
            return Err(AuthorizeError::Page(format!(
                "The {trust_critical} parameter was given more than once."
            )));
        }
    }
    let client_id = params
        .get("client_id")
        .ok_or_else(|| AuthorizeError::Page("The request has no client_id.".into()))?;
    let client = clients::find_client(d.clients, &provider.tenant, client_id)
        .await
        .map_err(|e| AuthorizeError::Unexpected(e.into()))?
        .ok_or_else(|| AuthorizeError::Page("The application (client_id) is not known.".into()))?;
    // A PAR reference; any other request_uri (a request object by reference) is refused
    // below with request_uri_not_supported.
    if let Some(uri) = params
        .get("request_uri")
        .filter(|u| u.starts_with(REQUEST_URI_PREFIX))
    {
        let request = take_pushed(d, provider, &client, uri).await?;
        return Ok((client, request));
    }
    let redirect_uri = registered_redirect_uri(&client, params)?;
    let request = validate_params(provider, &client, redirect_uri, params, false)?;
    Ok((client, request))
}

fn registered_redirect_uri<'p>(
    client: &Client,
    params: &'p Params,
) -> Result<&'p str, AuthorizeError> {
    let redirect_uri = params
        .get("redirect_uri")
        .ok_or_else(|| AuthorizeError::Page("The request has no redirect_uri.".into()))?;
    if !client.has_redirect_uri(redirect_uri) {
        return Err(AuthorizeError::Page(
            "The redirect_uri is not registered for this application.".into(),
        ));
    }
    Ok(redirect_uri)
}

/// Prefix of the `request_uri` values PAR hands out (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// Lifetime of a pushed request (RFC 9126 §2.2 suggests a short one).
pub const PUSHED_REQUEST_TTL: i64 = 60;

/// Validates and stores a pushed authorization request (RFC 9126 §2.1) of the
/// authenticated `client`: the same checks as at the authorization endpoint, errors
/// answered to the client instead of shown or redirected. Returns the `request_uri` and
/// its lifetime in seconds.
pub async fn push_request(
    d: Deps<'_>,
    provider: &Provider,
    client: &Client,
    params: &Params,
    proof_jkt: Option<&str>,
) -> Result<(String, i64), AuthorizeError> {
    // RFC 9126 §2.1: client_id is required here as at the authorization endpoint (the
    // credentials extractor has already refused one naming another client).
    if params.get("client_id").is_none() {
        return Err(AuthorizeError::Page("client_id is required".into()));
    }
    if params.get("request_uri").is_some() {
        return Err(AuthorizeError::Page(
            "request_uri cannot be pushed (RFC 9126 §2.1)".into(),
        ));
    }
    let redirect_uri = registered_redirect_uri(client, params)?;
    let mut request = validate_params(provider, client, redirect_uri, params, true)?;
    // RFC 9449 §10.1: a DPoP proof sent to PAR binds the code to its key; with dpop_jkt
    // too, both must name the same key.
    if let Some(jkt) = proof_jkt {
        if request.dpop_jkt.as_deref().is_some_and(|j| j != jkt) {
            return Err(AuthorizeError::Redirect(ErrorRedirect {
                redirect_uri: request.redirect_uri,
                response_mode: request.response_mode,
                state: request.state,
                error: "invalid_dpop_proof",
                description: "dpop_jkt is not the thumbprint of the DPoP proof's key".into(),
            }));
        }
        request.dpop_jkt = Some(jkt.to_string());
    }
    let id = crypto::random_token(32);
    let json = serde_json::to_string(&request).map_err(|e| AuthorizeError::Unexpected(e.into()))?;
    storage::authorization::insert_pushed_request(
        d.pool,
        &crypto::token_digest(&id),
        &provider.tenant.id,
        &client.id,
        &json,
        storage::now() + PUSHED_REQUEST_TTL,
    )
    .await?;
    Ok((format!("{REQUEST_URI_PREFIX}{id}"), PUSHED_REQUEST_TTL))
}

/// The pushed request a `request_uri` names, taken out of storage (single use, RFC 9126
/// §4); only the client that pushed it may use it, within its lifetime.
async fn take_pushed(
    d: Deps<'_>,
    provider: &Provider,
    client: &Client,
    uri: &str,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let invalid = || {
        AuthorizeError::Page(
            "invalid_request_uri: the request_uri is unknown, expired, already used or was pushed by another client.".into(),
        )
    };
    let id = uri.strip_prefix(REQUEST_URI_PREFIX).ok_or_else(invalid)?;
    let json = storage::authorization::take_pushed_request(
        d.pool,
        &crypto::token_digest(id),
        &provider.tenant.id,
        &client.id,
        storage::now(),
    )
    .await?
    .ok_or_else(invalid)?;
    serde_json::from_str(&json).map_err(|e| AuthorizeError::Unexpected(e.into()))
}

/// The checks of an authorization request once its client and redirect URI are trusted;
/// errors go back to the redirect URI. `pushed`: it arrived through PAR.
fn validate_params(
    provider: &Provider,
    client: &Client,
    redirect_uri: &str,
    params: &Params,
    pushed: bool,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let state_param = params.get("state").map(str::to_string);
    let response_mode = match params.get("response_mode") {
        None | Some("query") => Ok(ResponseMode::Query),
        Some("form_post") => Ok(ResponseMode::FormPost),
        Some(_) => Err("response_mode must be query or form_post"),
    };
    let fail = |error: &'static str, description: &str, mode: ResponseMode| {
        AuthorizeError::Redirect(ErrorRedirect {
            redirect_uri: redirect_uri.to_string(),
            response_mode: mode,
            state: state_param.clone(),
            error,
            description: description.to_string(),
        })
    };
    let response_mode =
        response_mode.map_err(|d| fail("invalid_request", d, ResponseMode::Query))?;
    let fail = |error: &'static str, description: &str| fail(error, description, response_mode);
    if let Some(r) = params.repeated.first() {
        return Err(fail(
            "invalid_request",
            &format!("parameter {r} was given more than once"),
        ));
    }
    // Client authentication (at PAR) is bounded by the body limit, not this one: an
    // assertion may carry a certificate chain.
    if let Some((k, _)) = params.values.iter().find(|(k, v)| {
        v.len() > MAX_PARAM && !matches!(k.as_str(), "client_assertion" | "client_secret")
    }) {
        return Err(fail(
            "invalid_request",
            &format!("parameter {k} is too long"),
        ));
    }
    if params.get("request").is_some() {
        return Err(fail(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    if params.get("request_uri").is_some() {
        return Err(fail(
            "request_uri_not_supported",
            "request_uri is supported only as a pushed authorization request's reference",
        ));
    }
    if !pushed
        && (client.requires_par()
            || provider
                .tenant
                .settings
                .require_pushed_authorization_requests)
    {
        return Err(fail(
            "invalid_request",
            "authorization requests of this client must be pushed first (PAR, RFC 9126)",
        ));
    }
    match params.get("response_type") {
        None => return Err(fail("invalid_request", "response_type is required")),
        Some("code") => {}
        Some(_) => {
            return Err(fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            ))
        }
    }
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(fail(
            "unauthorized_client",
            "this client may not use the authorization code flow",
        ));
    }
    let scope =
        parse_scope(params.get("scope").unwrap_or("")).map_err(|d| fail("invalid_scope", &d))?;
    if scope.is_empty() {
        return Err(fail("invalid_scope", "scope is required"));
    }
    if let Some(bad) = scope.iter().find(|s| !client.allows_scope(s)) {
        return Err(fail(
            "invalid_scope",
            &format!("scope {bad} is not allowed for this client"),
        ));
    }
    let code_challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (Some(c), Some("S256")) => {
            if c.len() != 43 || crypto::b64url_decode(c).is_none() {
                return Err(fail(
                    "invalid_request",
                    "code_challenge must be a base64url SHA-256 digest",
                ));
            }
            Some(c.to_string())
        }
        // RFC 7636 §4.3: an absent method means `plain`, which we refuse (RFC 9700 §2.1.1).
        (Some(_), _) => {
            return Err(fail(
                "invalid_request",
                "code_challenge_method must be S256 (plain is not supported)",
            ))
        }
        (None, Some(_)) => {
            return Err(fail(
                "invalid_request",
                "code_challenge_method without code_challenge",
            ))
        }
        (None, None) => None,
    };
    if code_challenge.is_none() && client.require_pkce {
        return Err(fail(
            "invalid_request",
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        ));
    }
    let prompt: Vec<String> = params
        .get("prompt")
        .map(|p| {
            p.split(' ')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if let Some(bad) = prompt
        .iter()
        .find(|p| !matches!(p.as_str(), "none" | "login" | "consent" | "select_account"))
    {
        return Err(fail(
            "invalid_request",
            &format!("prompt value {bad} is not supported"),
        ));
    }
    if prompt.iter().any(|p| p == "none") && prompt.len() > 1 {
        return Err(fail(
            "invalid_request",
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age =
        match params.get("max_age") {
            Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                fail("invalid_request", "max_age must be a non-negative integer")
            })?),
            None => None,
        };
    let hint_sub = match params.get("id_token_hint") {
        Some(hint) => Some(
            id_token_hint_subject(provider, hint, &client.id).ok_or_else(|| {
                fail(
                    "invalid_request",
                    "id_token_hint is not a valid ID token of this issuer",
                )
            })?,
        ),
        None => None,
    };
    // RFC 9449 §10: the base64url SHA-256 thumbprint of the key the code will be bound to.
    let dpop_jkt = match params.get("dpop_jkt") {
        Some(j) if j.len() == 43 && crypto::b64url_decode(j).is_some_and(|b| b.len() == 32) => {
            Some(j.to_string())
        }
        Some(_) => {
            return Err(fail(
                "invalid_request",
                "dpop_jkt must be the base64url SHA-256 thumbprint of a key (RFC 7638)",
            ))
        }
        None => None,
    };
    let claims = match params.get("claims") {
        Some(c) => Some(
            serde_json::from_str::<Value>(c)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| fail("invalid_request", "claims must be a JSON object"))?,
        ),
        None => None,
    };
    let request = AuthorizationRequest {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.to_string(),
        response_mode,
        scope,
        state: state_param.clone(),
        nonce: params.get("nonce").map(str::to_string),
        code_challenge,
        prompt,
        max_age,
        login_hint: params.get("login_hint").map(str::to_string),
        hint_sub,
        ui_locales: params.get("ui_locales").map(str::to_string),
        acr_values: params.get("acr_values").map(str::to_string),
        claims,
        account_page: false,
        dpop_jkt,
        code_ttl: client.profile.map(|_| crate::clients::FAPI2_CODE_TTL),
    };
    Ok(request)
}

/// The subject of an ID token we issued to this client; expiry does not matter for a hint
/// (Core §3.1.2.1).
pub fn id_token_hint_subject(provider: &Provider, token: &str, client_id: &str) -> Option<String> {
    let (typ, claims) = provider.keys.verify(token).ok()?;
    // Only an ID token: not an access token (at+jwt) nor a logout token (logout+jwt).
    if typ.as_deref() != Some("JWT") || claims.contains_key("events") {
        return None;
    }
    if claims.get("iss").and_then(Value::as_str) != Some(provider.issuer.as_str()) {
        return None;
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == client_id,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(client_id)),
        _ => false,
    };
    if !aud_ok || claims.contains_key("client_id") {
        // An access token (which carries client_id) is not an ID token.
        return None;
    }
    claims
        .get("sub")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// What the browser must do next.
#[derive(Debug)]
pub enum Next {
    SignIn,
    /// The user is signed in but must give the second factor (step-up).
    SecondFactor,
    Consent,
    Issue,
    Fail(ErrorRedirect),
}

fn error_for(req: &AuthorizationRequest, error: &'static str, description: &str) -> ErrorRedirect {
    ErrorRedirect {
        redirect_uri: req.redirect_uri.clone(),
        response_mode: req.response_mode,
        state: req.state.clone(),
        error,
        description: description.to_string(),
    }
}

/// Decides the next step. `fresh` is true when the user authenticated for this very
/// request (so prompt=login and max_age are already satisfied).
pub async fn decide(
    d: Deps<'_>,
    provider: &Provider,
    client: &Client,
    req: &AuthorizationRequest,
    session: Option<&Session>,
    fresh: bool,
) -> Result<Next, AuthorizeError> {
    let now = storage::now();
    let needs_login = match session {
        None => true,
        Some(_) if fresh => false,
        Some(s) => {
            req.has_prompt("login")
                || req.has_prompt("select_account")
                || req.max_age.is_some_and(|m| now - s.auth_time > m)
                || req.hint_sub.as_ref().is_some_and(|sub| sub != &s.user_id)
        }
    };
    if needs_login {
        if req.has_prompt("none") {
            return Ok(Next::Fail(error_for(
                req,
                "login_required",
                "the user is not signed in",
            )));
        }
        return Ok(Next::SignIn);
    }
    let Some(session) = session else {
        return Ok(Next::SignIn);
    };
    // Step-up (Core §3.1.2.1 acr_values): "2" asks for a second factor. A user with one
    // (TOTP or a passkey) whose session has only the password gives it now; for a user without MFA the
    // request is voluntary and the ID token's acr tells the client what happened. A scope
    // the client declared privileged always needs it (enrolling first if need be).
    let privileged = client.is_privileged_request(&req.scope);
    let step_up = !crate::sessions::acr_satisfies(&session.acr, "2")
        && (privileged
            || req.wants_acr("2")
                && crate::mfa::second_factors(
                    d.pool,
                    &provider.tenant,
                    &session.user_id,
                    crate::passkeys::available(&provider.issuer),
                )
                .await
                .map_err(|e| AuthorizeError::Unexpected(e.into()))?
                .any());
    if step_up {
        if req.has_prompt("none") {
            return Ok(Next::Fail(error_for(
                req,
                "interaction_required",
                "a second factor is required",
            )));
        }
        return Ok(Next::SecondFactor);
    }
    if req.has_prompt("consent")
        || !client.skip_consent
            && !has_consent(d, provider, client, &session.user_id, &req.consent_scopes()).await?
    {
        if req.has_prompt("none") {
            return Ok(Next::Fail(error_for(
                req,
                "consent_required",
                "the user has not consented",
            )));
        }
        return Ok(Next::Consent);
    }
    Ok(Next::Issue)
}

async fn has_consent(
    d: Deps<'_>,
    provider: &Provider,
    client: &Client,
    user_id: &str,
    scope: &[String],
) -> Result<bool, sqlx::Error> {
    let granted =
        storage::authorization::find_consent(d.pool, &provider.tenant.id, user_id, &client.id)
            .await?;
    let granted = granted.map(|g| storage::parse_list(&g)).unwrap_or_default();
    Ok(scope.iter().all(|s| granted.contains(s)))
}

/// Remembers consent to `scope` (adding to what was granted before).
pub async fn grant_consent(
    d: Deps<'_>,
    provider: &Provider,
    client: &Client,
    user_id: &str,
    scope: &[String],
) -> Result<(), sqlx::Error> {
    let old =
        storage::authorization::find_consent(d.pool, &provider.tenant.id, user_id, &client.id)
            .await?;
    let mut all = old.map(|g| storage::parse_list(&g)).unwrap_or_default();
    for s in scope {
        if !all.contains(s) {
            all.push(s.clone());
        }
    }
    storage::authorization::upsert_consent(
        d.pool,
        &provider.tenant.id,
        user_id,
        &client.id,
        &storage::json_list(&all),
        storage::now(),
    )
    .await
}

/// Stores a request while the user signs in or consents; returns its id.
pub async fn save_request(
    d: Deps<'_>,
    provider: &Provider,
    req: &AuthorizationRequest,
    sid: Option<&str>,
) -> Result<String, AuthorizeError> {
    let now = storage::now();
    let row = AuthorizationRequestRow {
        id: crypto::random_token(24),
        tenant_id: provider.tenant.id.clone(),
        client_id: req.client_id.clone(),
        params: serde_json::to_string(req).map_err(|e| AuthorizeError::Unexpected(e.into()))?,
        sid: sid.map(str::to_string),
        created_at: now,
        expires_at: now + d.config.authorization_request_ttl,
        mfa_user_id: None,
        first_factor: None,
        upstream_session: None,
    };
    storage::authorization::insert_authorization_request(d.pool, &row).await?;
    Ok(row.id)
}

/// A stored request with its client, and the session id that authenticated for it.
#[derive(Clone)]
pub struct Pending {
    pub id: String,
    pub client: Client,
    pub request: AuthorizationRequest,
    pub authenticated_sid: Option<String>,
    /// The user who gave the right password and still owes the second factor.
    pub mfa_user_id: Option<String>,
    /// How that user proved their identity before the second factor (`pwd` when unset).
    pub first_factor: Option<String>,
    /// The upstream SAML session of a federated first factor (opaque JSON of
    /// `federation::slo::SamlSession`), recorded with the Portcullis session.
    pub upstream_session: Option<String>,
}

pub async fn load_request(
    d: Deps<'_>,
    provider: &Provider,
    id: &str,
) -> Result<Option<Pending>, AuthorizeError> {
    if id.is_empty() || id.len() > 64 {
        return Ok(None);
    }
    let Some(row) = storage::authorization::find_authorization_request(
        d.pool,
        &provider.tenant.id,
        id,
        storage::now(),
    )
    .await?
    else {
        return Ok(None);
    };
    let Ok(request) = serde_json::from_str::<AuthorizationRequest>(&row.params) else {
        return Ok(None);
    };
    let Some(client) = clients::find_client(d.clients, &provider.tenant, &row.client_id)
        .await
        .map_err(|e| AuthorizeError::Unexpected(e.into()))?
    else {
        return Ok(None);
    };
    Ok(Some(Pending {
        id: row.id,
        client,
        request,
        authenticated_sid: row.sid,
        mfa_user_id: row.mfa_user_id,
        first_factor: row.first_factor,
        upstream_session: row.upstream_session,
    }))
}

/// Records (or clears) the user who must still give the second factor for this request.
pub async fn set_mfa_user(
    d: Deps<'_>,
    provider: &Provider,
    id: &str,
    user_id: Option<&str>,
) -> Result<(), sqlx::Error> {
    storage::authorization::set_mfa_user(d.pool, &provider.tenant.id, id, user_id, None, None).await
}

/// Records a user who signed in upstream (`fed`) and still owes the second factor, with
/// the upstream session to remember once the Portcullis session starts.
pub async fn set_federated_mfa_user(
    d: Deps<'_>,
    provider: &Provider,
    id: &str,
    user_id: &str,
    upstream_session: Option<&str>,
) -> Result<(), sqlx::Error> {
    storage::authorization::set_mfa_user(
        d.pool,
        &provider.tenant.id,
        id,
        Some(user_id),
        Some("fed"),
        upstream_session,
    )
    .await
}

pub async fn mark_authenticated(
    d: Deps<'_>,
    provider: &Provider,
    id: &str,
    sid: &str,
) -> Result<(), sqlx::Error> {
    storage::authorization::bind_authorization_request(d.pool, &provider.tenant.id, id, sid).await
}

pub async fn finish_request(
    d: Deps<'_>,
    provider: &Provider,
    id: &str,
) -> Result<bool, sqlx::Error> {
    storage::authorization::delete_authorization_request(d.pool, &provider.tenant.id, id).await
}

/// The parameters of a successful authorization response (RFC 6749 §4.1.2, RFC 9207).
pub struct CodeResponse {
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub params: Vec<(&'static str, String)>,
}

/// Issues a single-use authorization code bound to client, redirect URI, PKCE challenge,
/// nonce and session.
pub async fn issue_code(
    d: Deps<'_>,
    provider: &Provider,
    req: &AuthorizationRequest,
    session: &Session,
) -> Result<CodeResponse, AuthorizeError> {
    let code = crypto::random_token(32);
    let now = storage::now();
    let row = CodeRow {
        code_hash: crypto::token_digest(&code),
        tenant_id: provider.tenant.id.clone(),
        client_id: req.client_id.clone(),
        user_id: session.user_id.clone(),
        sid: session.sid.clone(),
        redirect_uri: req.redirect_uri.clone(),
        scope: storage::json_list(&req.scope),
        nonce: req.nonce.clone(),
        code_challenge: req.code_challenge.clone(),
        dpop_jkt: req.dpop_jkt.clone(),
        claims: req.claims.as_ref().map(Value::to_string),
        auth_time: session.auth_time,
        amr: storage::json_list(&session.amr),
        acr: session.acr.clone(),
        created_at: now,
        expires_at: now
            + req.code_ttl.map_or(d.config.authorization_code_ttl, |t| {
                t.min(d.config.authorization_code_ttl)
            }),
        redeemed_at: None,
        access_token_jti: None,
        access_token_exp: None,
    };
    storage::authorization::insert_code(d.pool, &row).await?;
    let mut params = vec![("code", code)];
    if let Some(s) = &req.state {
        params.push(("state", s.clone()));
    }
    params.push(("iss", provider.issuer.clone()));
    Ok(CodeResponse {
        redirect_uri: req.redirect_uri.clone(),
        response_mode: req.response_mode,
        params,
    })
}

/// The parameters of an error response, including `iss` (RFC 9207 §2).
pub fn error_response(provider: &Provider, e: &ErrorRedirect) -> CodeResponse {
    let mut params = vec![
        ("error", e.error.to_string()),
        ("error_description", e.description.clone()),
    ];
    if let Some(s) = &e.state {
        params.push(("state", s.clone()));
    }
    params.push(("iss", provider.issuer.clone()));
    CodeResponse {
        redirect_uri: e.redirect_uri.clone(),
        response_mode: e.response_mode,
        params,
    }
}

/// `redirect_uri` with the response parameters appended to its query.
pub fn redirect_location(resp: &CodeResponse) -> String {
    match url::Url::parse(&resp.redirect_uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in &resp.params {
                    q.append_pair(k, v);
                }
            }
            url.to_string()
        }
        Err(_) => resp.redirect_uri.clone(),
    }
}

/// A pending sign-in for the account page (tenant's first-party client, no code issued).
pub async fn account_sign_in(
    d: Deps<'_>,
    provider: &Provider,
    ui_locales: Option<&str>,
) -> Result<String, AuthorizeError> {
    own_page_sign_in(d, provider, "/account", None, None, ui_locales).await
}

/// A pending sign-in for one of Portcullis's own pages under the issuer (`path`: the
/// account page, the admin console), which the browser returns to; `acr` asks for a
/// second factor the way `acr_values` does (a step-up of a password-only session).
pub async fn own_page_sign_in(
    d: Deps<'_>,
    provider: &Provider,
    path: &str,
    acr: Option<&str>,
    max_age: Option<i64>,
    ui_locales: Option<&str>,
) -> Result<String, AuthorizeError> {
    let client = clients::first_party_client(d.clients, &provider.tenant)
        .await
        .map_err(|e| AuthorizeError::Unexpected(anyhow::anyhow!(e.to_string())))?;
    let req = AuthorizationRequest {
        client_id: client.id,
        redirect_uri: provider.endpoint(path),
        response_mode: ResponseMode::Query,
        scope: vec!["openid".into()],
        state: None,
        nonce: None,
        code_challenge: None,
        prompt: vec![],
        max_age,
        login_hint: None,
        hint_sub: None,
        ui_locales: ui_locales.map(str::to_string),
        acr_values: acr.map(str::to_string),
        claims: None,
        account_page: true,
        dpop_jkt: None,
        code_ttl: None,
    };
    save_request(d, provider, &req, None).await
}
