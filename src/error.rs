//! Maps domain outcomes to responses, exhaustively (no `_ =>`): RFC 6749 §5.2 errors for
//! OAuth endpoints, RFC 6750 §3 challenges for bearer-protected ones, and HTML error pages
//! for browsers. A 500 carries only the correlation id; its cause is logged once, here.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use serde_json::json;

use crate::accounts::AccountError;
use crate::authorization::AuthorizeError;
use crate::clients::ClientError;
use crate::federation::FederationError;
use crate::http::pages::error::{ErrorPage, Frame};
use crate::i18n::Locale;
use crate::tenants::TenantError;
use crate::tokens::{BearerError, TokenError};

tokio::task_local! {
    /// The id of the request being served (set by the request-id middleware).
    pub static REQUEST_ID: String;
}

/// The current request's correlation id, or a fresh one outside a request.
pub fn correlation_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| uuid::Uuid::new_v4().to_string())
}

fn log_unexpected(e: &dyn std::fmt::Display) -> String {
    let id = correlation_id();
    tracing::error!(correlation_id = %id, error = %e, "unexpected error");
    id
}

/// An RFC 6749 §5.2 error response.
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// A server nonce for the client's next DPoP proof (`DPoP-Nonce`, RFC 9449 §8).
    pub dpop_nonce: Option<String>,
}

impl OAuthError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            dpop_nonce: None,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub fn invalid_client() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        )
    }

    pub fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error",
        )
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.description)
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({ "error": self.error, "error_description": self.description });
        let mut resp = HttpResponse::build(self.status);
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            body["correlation_id"] = json!(correlation_id());
        }
        if self.error == "invalid_client" {
            // RFC 6749 §5.2: 401 with a challenge matching the scheme the client used.
            resp.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"portcullis\""));
        }
        if let Some(nonce) = &self.dpop_nonce {
            resp.insert_header((DPOP_NONCE, nonce.as_str()));
        }
        resp.insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(body)
    }
}

impl From<TokenError> for OAuthError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::InvalidRequest(d) => OAuthError::invalid_request(d),
            TokenError::InvalidClient => OAuthError::invalid_client(),
            TokenError::InvalidGrant(d) => {
                OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
            }
            TokenError::RefreshReused => OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "refresh token was already used; its token family has been revoked",
            ),
            TokenError::UnauthorizedClient(d) => {
                OAuthError::new(StatusCode::BAD_REQUEST, "unauthorized_client", d)
            }
            TokenError::UnsupportedGrantType => OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code, refresh_token or client_credentials",
            ),
            TokenError::InvalidScope(d) => {
                OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", d)
            }
            TokenError::InvalidDpopProof(d) => {
                OAuthError::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", d)
            }
            TokenError::UseDpopNonce(nonce) => OAuthError {
                dpop_nonce: Some(nonce),
                ..OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "use_dpop_nonce",
                    "a fresh DPoP nonce is required: retry with the one in the DPoP-Nonce header",
                )
            },
            TokenError::Unexpected(e) => {
                log_unexpected(&e);
                OAuthError::server_error()
            }
        }
    }
}

impl From<ClientError> for OAuthError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Invalid(d) => OAuthError::invalid_request(d),
            ClientError::InvalidClient => OAuthError::invalid_client(),
            ClientError::BadAssertion(why) => {
                OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", why)
            }
            ClientError::Unexpected(e) => {
                log_unexpected(&e);
                OAuthError::server_error()
            }
        }
    }
}

impl From<sqlx::Error> for OAuthError {
    fn from(e: sqlx::Error) -> Self {
        log_unexpected(&e);
        OAuthError::server_error()
    }
}

impl From<anyhow::Error> for OAuthError {
    fn from(e: anyhow::Error) -> Self {
        log_unexpected(&e);
        OAuthError::server_error()
    }
}

/// The response header carrying a DPoP server nonce (RFC 9449 §8.1).
pub const DPOP_NONCE: &str = "DPoP-Nonce";

/// The JWS algorithms a DPoP proof may use, as the `algs` of a DPoP challenge (RFC 9449 §7.1).
fn dpop_algs() -> String {
    crate::keys::FOREIGN_ALGS.join(" ")
}

/// An RFC 6750 §3.1 bearer token error.
#[derive(Debug)]
pub struct BearerChallenge {
    pub status: StatusCode,
    pub error: Option<&'static str>,
    pub description: String,
    /// Whether the challenge is for the DPoP scheme (RFC 9449 §7.1) rather than Bearer.
    pub dpop: bool,
    pub dpop_nonce: Option<String>,
}

impl BearerChallenge {
    pub fn missing() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: None,
            description: "an access token is required".into(),
            dpop: false,
            dpop_nonce: None,
        }
    }

    pub fn insufficient_scope(d: &str) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            error: Some("insufficient_scope"),
            description: d.into(),
            dpop: false,
            dpop_nonce: None,
        }
    }

    pub fn invalid_request(d: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: Some("invalid_request"),
            description: d.into(),
            dpop: false,
            dpop_nonce: None,
        }
    }
}

impl From<BearerError> for BearerChallenge {
    fn from(e: BearerError) -> Self {
        let (status, error, dpop) = match &e {
            BearerError::Invalid
            | BearerError::Expired
            | BearerError::NotYetValid
            | BearerError::Revoked
            | BearerError::NotKeyBound => (StatusCode::UNAUTHORIZED, "invalid_token", false),
            BearerError::KeyBound => (StatusCode::UNAUTHORIZED, "invalid_token", true),
            BearerError::InvalidDpopProof(_) => {
                (StatusCode::UNAUTHORIZED, "invalid_dpop_proof", true)
            }
            BearerError::UseDpopNonce(_) => (StatusCode::UNAUTHORIZED, "use_dpop_nonce", true),
            BearerError::Unexpected => (StatusCode::INTERNAL_SERVER_ERROR, "server_error", false),
        };
        Self {
            status,
            error: Some(error),
            description: e.to_string(),
            dpop,
            dpop_nonce: match e {
                BearerError::UseDpopNonce(n) => Some(n),
                _ => None,
            },
        }
    }
}

impl std::fmt::Display for BearerChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl ResponseError for BearerChallenge {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let scheme = if self.dpop {
            format!("DPoP algs=\"{}\"", dpop_algs())
        } else {
            "Bearer realm=\"portcullis\"".to_string()
        };
        let challenge = match self.error {
            Some(e) => format!(
                "{scheme}, error=\"{e}\", error_description=\"{}\"",
                self.description.replace('"', "'")
            ),
            None => scheme,
        };
        let mut body = json!({ "error": self.error.unwrap_or("invalid_request"), "error_description": self.description });
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            body["correlation_id"] = json!(correlation_id());
        }
        let mut resp = HttpResponse::build(self.status);
        resp.insert_header((header::WWW_AUTHENTICATE, challenge));
        if self.error.is_none() {
            // RFC 9449 §7.1: without a token, both schemes are offered.
            resp.append_header((
                header::WWW_AUTHENTICATE,
                format!("DPoP algs=\"{}\"", dpop_algs()),
            ));
        }
        if let Some(nonce) = &self.dpop_nonce {
            resp.insert_header((DPOP_NONCE, nonce.as_str()));
        }
        resp.insert_header((header::CACHE_CONTROL, "no-store"))
            .json(body)
    }
}

/// An error shown to a person in the browser.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
    pub locale: Locale,
    /// A way on from the page: (href, label).
    pub link: Option<(String, &'static str)>,
}

impl PageError {
    pub fn new(status: StatusCode, locale: Locale, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            locale,
            link: None,
        }
    }

    /// The same error with a link onwards (what to do about it).
    pub fn with_link(self, href: String, label: &'static str) -> Self {
        Self {
            link: Some((href, label)),
            ..self
        }
    }

    /// The same error, shown in `locale` (domain errors convert to English pages).
    pub fn in_locale(self, locale: Locale) -> Self {
        Self { locale, ..self }
    }

    pub fn bad_request(locale: Locale, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, locale, message)
    }

    pub fn unexpected(locale: Locale, e: &dyn std::fmt::Display) -> Self {
        log_unexpected(e);
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            locale,
            "The server could not complete the request.",
        )
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let id = correlation_id();
        let page = ErrorPage {
            f: Frame {
                lang: self.locale.tag(),
                t: self.locale.texts(),
                tenant_name: "Portcullis",
                logo_url: None,
                branding_css: None,
            },
            message: &self.message,
            link: self.link.as_ref().map(|(h, l)| (h.as_str(), *l)),
            correlation_id: &id,
        };
        match page.render() {
            Ok(html) => HttpResponse::build(self.status)
                .content_type("text/html; charset=utf-8")
                .body(html),
            Err(_) => HttpResponse::build(self.status).body(self.message.clone()),
        }
    }
}

impl From<AuthorizeError> for PageError {
    fn from(e: AuthorizeError) -> Self {
        match e {
            AuthorizeError::Page(m) => PageError::bad_request(Locale::En, m),
            AuthorizeError::Redirect(r) => PageError::bad_request(Locale::En, r.description),
            AuthorizeError::Unexpected(e) => PageError::unexpected(Locale::En, &e),
        }
    }
}

impl From<crate::passkeys::PasskeyError> for PageError {
    fn from(e: crate::passkeys::PasskeyError) -> Self {
        use crate::passkeys::PasskeyError;
        match e {
            PasskeyError::Invalid(m) => PageError::bad_request(Locale::En, m),
            PasskeyError::Unavailable => PageError::bad_request(Locale::En, e.to_string()),
            PasskeyError::NotVerified | PasskeyError::Cloned => {
                PageError::new(StatusCode::UNAUTHORIZED, Locale::En, e.to_string())
            }
            PasskeyError::Unexpected(e) => PageError::unexpected(Locale::En, &e),
        }
    }
}

impl From<AccountError> for PageError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Validation(m) => PageError::bad_request(Locale::En, m),
            AccountError::WeakPassword(_)
            | AccountError::PasswordReused
            | AccountError::InvalidToken => PageError::bad_request(Locale::En, e.to_string()),
            AccountError::InvalidCredentials => {
                PageError::new(StatusCode::UNAUTHORIZED, Locale::En, e.to_string())
            }
            AccountError::AccountLocked { .. } => {
                PageError::new(StatusCode::LOCKED, Locale::En, e.to_string())
            }
            AccountError::AlreadyExists => {
                PageError::new(StatusCode::CONFLICT, Locale::En, e.to_string())
            }
            AccountError::NotFound => {
                PageError::new(StatusCode::NOT_FOUND, Locale::En, e.to_string())
            }
            AccountError::Unexpected(e) => PageError::unexpected(Locale::En, &e),
        }
    }
}

impl From<FederationError> for PageError {
    fn from(e: FederationError) -> Self {
        match e {
            FederationError::Invalid(m) => {
                PageError::new(StatusCode::UNPROCESSABLE_ENTITY, Locale::En, m)
            }
            FederationError::Failed { message, .. } => {
                PageError::new(StatusCode::UNPROCESSABLE_ENTITY, Locale::En, message)
            }
            FederationError::NotFound => {
                PageError::new(StatusCode::NOT_FOUND, Locale::En, e.to_string())
            }
            FederationError::LinkRequired(_) => {
                PageError::new(StatusCode::CONFLICT, Locale::En, e.to_string())
            }
            FederationError::Unexpected(e) => PageError::unexpected(Locale::En, &e),
        }
    }
}

impl From<TenantError> for PageError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::InvalidSlug => {
                PageError::new(StatusCode::UNPROCESSABLE_ENTITY, Locale::En, e.to_string())
            }
            TenantError::InvalidSettings(m) => {
                PageError::new(StatusCode::UNPROCESSABLE_ENTITY, Locale::En, m)
            }
            TenantError::AlreadyExists => {
                PageError::new(StatusCode::CONFLICT, Locale::En, e.to_string())
            }
            TenantError::NotFound => {
                PageError::new(StatusCode::NOT_FOUND, Locale::En, e.to_string())
            }
            TenantError::Unexpected(e) => PageError::unexpected(Locale::En, &e),
        }
    }
}

impl From<sqlx::Error> for PageError {
    fn from(e: sqlx::Error) -> Self {
        PageError::unexpected(Locale::En, &e)
    }
}

impl From<anyhow::Error> for PageError {
    fn from(e: anyhow::Error) -> Self {
        PageError::unexpected(Locale::En, &e)
    }
}

/// A JSON 404 for unknown paths and tenants.
pub fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({
        "error": { "code": "NOT_FOUND", "message": "not found", "correlation_id": correlation_id() }
    }))
}

/// An error of the first-party JSON API: `{"error":{"code","message","correlation_id",…}}`
/// with the codes and statuses SPEC fixes.
#[derive(Debug)]
pub enum ApiError {
    InvalidCredentials,
    TokenExpired,
    TokenRevoked,
    RefreshTokenReuse,
    /// No usable credentials on a protected endpoint.
    Unauthorized(String),
    InsufficientPermissions {
        required: Vec<String>,
        held: Vec<String>,
    },
    MfaRequired {
        challenge_id: String,
    },
    MfaInvalidCode,
    AccountLocked {
        retry_after: i64,
    },
    ValidationFailed(String),
    /// VALIDATION_FAILED naming each password rule that is not met (`details`).
    InvalidPassword(Vec<String>),
    NotFound,
    Conflict(String),
    /// Over the rate limit, or the address is locked out (seed 003's body).
    RateLimited {
        retry_after: u64,
        limit: u64,
        window: u64,
    },
    /// The client's address is banned.
    IpBanned,
    /// A DPoP proof that fails (`invalid_dpop_proof`) or lacks a server nonce
    /// (`use_dpop_nonce`, with the nonce to use): RFC 9449 §7.1, §9.
    Dpop {
        status: StatusCode,
        error: &'static str,
        message: String,
        nonce: Option<String>,
    },
    Internal,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "INVALID_CREDENTIALS",
                "Invalid username or password".into(),
            ),
            ApiError::TokenExpired => (
                StatusCode::UNAUTHORIZED,
                "TOKEN_EXPIRED",
                "The access token has expired".into(),
            ),
            ApiError::TokenRevoked => (
                StatusCode::UNAUTHORIZED,
                "TOKEN_REVOKED",
                "The token has been revoked".into(),
            ),
            ApiError::RefreshTokenReuse => (
                StatusCode::UNAUTHORIZED,
                "REFRESH_TOKEN_REUSE",
                "The refresh token was already used; all sessions of its family have been revoked"
                    .into(),
            ),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED", m.clone()),
            ApiError::Dpop {
                status,
                error,
                message,
                ..
            } => (
                *status,
                if *error == "use_dpop_nonce" {
                    "USE_DPOP_NONCE"
                } else {
                    "INVALID_DPOP_PROOF"
                },
                message.clone(),
            ),
            ApiError::InsufficientPermissions { required, .. } => (
                StatusCode::FORBIDDEN,
                "INSUFFICIENT_PERMISSIONS",
                format!("Missing required permission: {}", required.join(", ")),
            ),
            ApiError::MfaRequired { .. } => (
                StatusCode::FORBIDDEN,
                "MFA_REQUIRED",
                "This operation requires MFA verification".into(),
            ),
            ApiError::MfaInvalidCode => (
                StatusCode::UNAUTHORIZED,
                "MFA_INVALID_CODE",
                "The MFA code is incorrect".into(),
            ),
            ApiError::AccountLocked { .. } => (
                StatusCode::LOCKED,
                "ACCOUNT_LOCKED",
                "The account is locked after too many failed sign-ins".into(),
            ),
            ApiError::ValidationFailed(m) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_FAILED",
                m.clone(),
            ),
            ApiError::InvalidPassword(rules) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_FAILED",
                format!("password needs {}", rules.join(", ")),
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND", "Not found".into()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "CONFLICT", m.clone()),
            ApiError::RateLimited { retry_after, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                format!("Rate limit exceeded. Try again in {retry_after} seconds."),
            ),
            ApiError::IpBanned => (
                StatusCode::FORBIDDEN,
                "IP_BANNED",
                "Requests from this address are blocked".into(),
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "Internal error".into(),
            ),
        }
    }

    pub fn unexpected(e: &dyn std::fmt::Display) -> Self {
        log_unexpected(e);
        ApiError::Internal
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (_, code, message) = self.parts();
        write!(f, "{code}: {message}")
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code, message) = self.parts();
        let mut error =
            json!({ "code": code, "message": message, "correlation_id": correlation_id() });
        let mut resp = HttpResponse::build(status);
        match self {
            ApiError::InsufficientPermissions { required, held } => {
                error["required_permissions"] = json!(required);
                error["held_permissions"] = json!(held);
            }
            ApiError::MfaRequired { challenge_id } => {
                error["mfa_challenge_id"] = json!(challenge_id);
            }
            ApiError::InvalidPassword(rules) => {
                error["details"] = json!(rules
                    .iter()
                    .map(|r| json!({"field": "password", "rule": r}))
                    .collect::<Vec<_>>());
            }
            ApiError::AccountLocked { retry_after } => {
                error["retry_after"] = json!(retry_after);
                resp.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            ApiError::RateLimited {
                retry_after,
                limit,
                window,
            } => {
                error["retry_after"] = json!(retry_after);
                error["limit"] = json!(limit);
                error["window"] = json!(window);
                resp.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            ApiError::Unauthorized(_) | ApiError::TokenExpired | ApiError::TokenRevoked => {
                resp.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"portcullis\""));
            }
            ApiError::Dpop {
                status,
                error: code,
                message,
                nonce,
            } => {
                if *status == StatusCode::UNAUTHORIZED {
                    resp.insert_header((
                        header::WWW_AUTHENTICATE,
                        format!(
                            "DPoP algs=\"{}\", error=\"{code}\", error_description=\"{}\"",
                            dpop_algs(),
                            message.replace('"', "'")
                        ),
                    ));
                }
                if let Some(n) = nonce {
                    resp.insert_header((DPOP_NONCE, n.as_str()));
                }
            }
            ApiError::InvalidCredentials
            | ApiError::MfaInvalidCode
            | ApiError::RefreshTokenReuse
            | ApiError::ValidationFailed(_)
            | ApiError::NotFound
            | ApiError::Conflict(_)
            | ApiError::IpBanned
            | ApiError::Internal => {}
        }
        resp.insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({ "error": error }))
    }
}

impl From<BearerError> for ApiError {
    fn from(e: BearerError) -> Self {
        match e {
            BearerError::Invalid => {
                ApiError::Unauthorized("Missing or invalid authentication token".into())
            }
            BearerError::Expired => ApiError::TokenExpired,
            BearerError::NotYetValid => ApiError::Unauthorized(e.to_string()),
            BearerError::Revoked => ApiError::TokenRevoked,
            BearerError::KeyBound | BearerError::NotKeyBound => {
                ApiError::Unauthorized(e.to_string())
            }
            BearerError::InvalidDpopProof(why) => ApiError::Dpop {
                status: StatusCode::UNAUTHORIZED,
                error: "invalid_dpop_proof",
                message: why.into(),
                nonce: None,
            },
            BearerError::UseDpopNonce(n) => ApiError::Dpop {
                status: StatusCode::UNAUTHORIZED,
                error: "use_dpop_nonce",
                message:
                    "a fresh DPoP nonce is required: retry with the one in the DPoP-Nonce header"
                        .into(),
                nonce: Some(n),
            },
            BearerError::Unexpected => ApiError::Internal,
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Validation(m) => ApiError::ValidationFailed(m),
            AccountError::WeakPassword(rules) => ApiError::InvalidPassword(rules),
            AccountError::PasswordReused | AccountError::InvalidToken => {
                ApiError::ValidationFailed(e.to_string())
            }
            AccountError::InvalidCredentials => ApiError::InvalidCredentials,
            AccountError::AccountLocked { until } => ApiError::AccountLocked {
                retry_after: (until - crate::storage::now()).max(1),
            },
            AccountError::AlreadyExists => ApiError::Conflict(e.to_string()),
            AccountError::NotFound => ApiError::NotFound,
            AccountError::Unexpected(e) => ApiError::unexpected(&e),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::RefreshReused => ApiError::RefreshTokenReuse,
            TokenError::InvalidGrant(_) => {
                ApiError::Unauthorized("The refresh token is invalid, expired or revoked".into())
            }
            TokenError::InvalidRequest(m)
            | TokenError::InvalidScope(m)
            | TokenError::UnauthorizedClient(m) => ApiError::ValidationFailed(m),
            TokenError::InvalidClient => {
                ApiError::Unauthorized("client authentication failed".into())
            }
            TokenError::UnsupportedGrantType => {
                ApiError::ValidationFailed("unsupported grant".into())
            }
            TokenError::InvalidDpopProof(m) => ApiError::Dpop {
                status: StatusCode::BAD_REQUEST,
                error: "invalid_dpop_proof",
                message: m,
                nonce: None,
            },
            TokenError::UseDpopNonce(n) => ApiError::Dpop {
                status: StatusCode::BAD_REQUEST,
                error: "use_dpop_nonce",
                message:
                    "a fresh DPoP nonce is required: retry with the one in the DPoP-Nonce header"
                        .into(),
                nonce: Some(n),
            },
            TokenError::Unexpected(e) => ApiError::unexpected(&e),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::unexpected(&e)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::unexpected(&e)
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Invalid(m) => ApiError::ValidationFailed(m),
            ClientError::InvalidClient | ClientError::BadAssertion(_) => {
                ApiError::Unauthorized(e.to_string())
            }
            ClientError::Unexpected(e) => ApiError::unexpected(&e),
        }
    }
}

impl From<TenantError> for ApiError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::InvalidSlug => ApiError::ValidationFailed(e.to_string()),
            TenantError::InvalidSettings(m) => ApiError::ValidationFailed(m),
            TenantError::AlreadyExists => ApiError::Conflict(e.to_string()),
            TenantError::NotFound => ApiError::NotFound,
            TenantError::Unexpected(e) => ApiError::unexpected(&e),
        }
    }
}

impl From<crate::api_keys::ApiKeyError> for ApiError {
    fn from(e: crate::api_keys::ApiKeyError) -> Self {
        use crate::api_keys::ApiKeyError;
        match e {
            ApiKeyError::Invalid(m) => ApiError::ValidationFailed(m),
            ApiKeyError::NotFound => ApiError::NotFound,
            ApiKeyError::Unexpected(e) => ApiError::unexpected(&e),
        }
    }
}

impl From<crate::rbac::RbacError> for ApiError {
    fn from(e: crate::rbac::RbacError) -> Self {
        use crate::rbac::RbacError;
        match e {
            RbacError::Invalid(m) => ApiError::ValidationFailed(m),
            RbacError::AlreadyExists => {
                ApiError::Conflict("a role with this name already exists".into())
            }
            RbacError::NotFound(what) => {
                ApiError::ValidationFailed(format!("{what} does not exist"))
            }
            RbacError::NotHeld { required, held } => {
                ApiError::InsufficientPermissions { required, held }
            }
            RbacError::Unexpected(e) => ApiError::unexpected(&e),
        }
    }
}

impl From<crate::mfa::MfaError> for ApiError {
    fn from(e: crate::mfa::MfaError) -> Self {
        use crate::mfa::MfaError;
        match e {
            MfaError::InvalidCode | MfaError::InvalidChallenge => ApiError::MfaInvalidCode,
            MfaError::Locked { until } => ApiError::AccountLocked {
                retry_after: (until - crate::storage::now()).max(1),
            },
            MfaError::NotEnrolled => {
                ApiError::ValidationFailed("MFA is not enrolled: call /mfa/setup first".into())
            }
            MfaError::AlreadyEnabled => ApiError::Conflict(e.to_string()),
            MfaError::Unexpected(e) => ApiError::unexpected(&e),
        }
    }
}

impl From<crate::federation::FederationError> for ApiError {
    fn from(e: crate::federation::FederationError) -> Self {
        use crate::federation::FederationError;
        match e {
            FederationError::Invalid(m) => ApiError::ValidationFailed(m),
            FederationError::NotFound => ApiError::NotFound,
            FederationError::Failed { message, .. } => ApiError::ValidationFailed(message),
            FederationError::LinkRequired(_) => ApiError::ValidationFailed(
                "an account with this e-mail address already exists".into(),
            ),
            FederationError::Unexpected(e) => ApiError::unexpected(&e),
        }
    }
}

impl From<crate::first_party::LoginError> for ApiError {
    fn from(e: crate::first_party::LoginError) -> Self {
        use crate::first_party::LoginError;
        match e {
            LoginError::Account(a) => a.into(),
            LoginError::Token(t) => t.into(),
            LoginError::MfaRequired(challenge_id) => ApiError::MfaRequired { challenge_id },
            LoginError::Mfa(m) => m.into(),
            LoginError::Passkey(p) => p.into(),
        }
    }
}

impl From<crate::passkeys::PasskeyError> for ApiError {
    fn from(e: crate::passkeys::PasskeyError) -> Self {
        use crate::passkeys::PasskeyError;
        match e {
            PasskeyError::Invalid(m) => ApiError::ValidationFailed(m.into()),
            PasskeyError::Unavailable => ApiError::ValidationFailed(e.to_string()),
            // Which check failed is not told: no account or credential enumeration.
            PasskeyError::NotVerified | PasskeyError::Cloned => ApiError::InvalidCredentials,
            PasskeyError::Unexpected(e) => ApiError::unexpected(&e),
        }
    }
}

/// The answer to a request the protection layer refuses, in the form its endpoint speaks:
/// the JSON API's envelope (seed 003: `RATE_LIMITED` with `retry_after`, `limit`, `window`),
/// RFC 6749-style JSON for OAuth endpoints, or an HTML page. Rate-limit headers are added by
/// the middleware.
pub fn refusal_response(
    flavour: crate::protection::Flavour,
    verdict: &crate::protection::Verdict,
    locale: Locale,
) -> HttpResponse {
    use crate::protection::{Flavour, Verdict};
    let limited = match verdict {
        Verdict::Limited(q) | Verdict::Locked(q) => Some(q),
        Verdict::Banned | Verdict::Allowed(_) => None,
    };
    match flavour {
        Flavour::Api => match limited {
            Some(q) => ApiError::RateLimited {
                retry_after: q.retry_after,
                limit: q.limit,
                window: q.window_secs,
            },
            None => ApiError::IpBanned,
        }
        .error_response(),
        Flavour::OAuth => {
            let (status, body) = match limited {
                Some(q) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({
                        "error": "rate_limited",
                        "error_description": format!("Rate limit exceeded. Try again in {} seconds.", q.retry_after),
                        "retry_after": q.retry_after,
                        "limit": q.limit,
                        "window": q.window_secs,
                    }),
                ),
                None => (
                    StatusCode::FORBIDDEN,
                    json!({
                        "error": "access_denied",
                        "error_description": "requests from this address are blocked",
                    }),
                ),
            };
            let mut resp = HttpResponse::build(status);
            if let Some(q) = limited {
                resp.insert_header((header::RETRY_AFTER, q.retry_after.to_string()));
            }
            resp.insert_header((header::CACHE_CONTROL, "no-store"))
                .json(body)
        }
        Flavour::Page => {
            let t = locale.texts();
            let mut page = match limited {
                Some(q) => PageError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    locale,
                    format!("{} {} {}", t.rate_limited, q.retry_after, t.seconds),
                ),
                None => PageError::new(StatusCode::FORBIDDEN, locale, t.address_banned),
            }
            .error_response();
            if let Some(q) = limited {
                if let Ok(v) = header::HeaderValue::from_str(&q.retry_after.to_string()) {
                    page.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            page
        }
    }
}
