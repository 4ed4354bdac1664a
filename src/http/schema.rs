//! The shapes the OpenAPI document names that no handler type describes: the tenant path
//! parameter, the `{"data": …}` and `{"error": …}` envelopes, token bodies and the RFC 6749
//! error. Handlers cite them in their `#[utoipa::path]` annotations.

use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

/// The tenant of a route under `/t/{tenant}` (the default tenant is also served at the root).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// Tenant slug.
    pub tenant: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenData {
    /// JWT access token (RFC 9068).
    pub token: String,
    /// The same access token, under the OAuth name.
    pub access_token: String,
    /// Opaque refresh token; rotated on every use.
    pub refresh_token: String,
    pub expires_in: i64,
    #[schema(example = "Bearer")]
    pub token_type: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenEnvelope {
    pub data: TokenData,
}

/// `{"data": …}`
#[derive(Serialize, ToSchema)]
pub struct DataEnvelope {
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// A list: `{"data": […]}`
#[derive(Serialize, ToSchema)]
pub struct ListEnvelope {
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<serde_json::Value>,
}

/// A list of names: `{"data": ["…"]}`
#[derive(Serialize, ToSchema)]
pub struct NamesEnvelope {
    pub data: Vec<String>,
}

/// A page: `{"data": […], "next_cursor": …}`
#[derive(Serialize, ToSchema)]
pub struct PageEnvelope {
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<serde_json::Value>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// INVALID_CREDENTIALS, TOKEN_EXPIRED, TOKEN_REVOKED, REFRESH_TOKEN_REUSE, UNAUTHORIZED,
    /// INSUFFICIENT_PERMISSIONS, MFA_REQUIRED, MFA_INVALID_CODE, ACCOUNT_LOCKED,
    /// VALIDATION_FAILED, NOT_FOUND, CONFLICT, RATE_LIMITED (with retry_after, limit,
    /// window), IP_BANNED, INTERNAL_ERROR
    pub code: String,
    pub message: String,
    pub correlation_id: String,
    /// With INSUFFICIENT_PERMISSIONS.
    pub required_permissions: Option<Vec<String>>,
    /// With INSUFFICIENT_PERMISSIONS.
    pub held_permissions: Option<Vec<String>>,
    /// Seconds, with ACCOUNT_LOCKED and RATE_LIMITED.
    pub retry_after: Option<i64>,
    /// Requests allowed per window, with RATE_LIMITED.
    pub limit: Option<i64>,
    /// The window in seconds, with RATE_LIMITED.
    pub window: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// RFC 6749 §5.2 / RFC 7591 §3.2.2 error.
#[derive(Serialize, ToSchema)]
pub struct OAuthErrorBody {
    pub error: String,
    pub error_description: String,
}
