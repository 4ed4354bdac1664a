//! Request extractors: the tenant's provider, the audit context, bounded form bodies with
//! duplicate detection, and client credentials (RFC 6749 §2.3.1).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::audit::Context;
use crate::authorization::Params;
use crate::clients::{self, ClientCredentials};
use crate::crypto;
use crate::error::{self, ApiError, OAuthError};
use crate::provider::Provider;
use crate::state::AppState;

/// The tenant addressed by the request (`/t/{tenant}/…`, or the default tenant at the root).
pub struct TenantProvider(pub Arc<Provider>);

#[derive(Debug)]
pub struct TenantNotFound;

impl std::fmt::Display for TenantNotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tenant not found")
    }
}

impl ResponseError for TenantNotFound {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::NOT_FOUND
    }

    fn error_response(&self) -> HttpResponse {
        error::not_found()
    }
}

impl FromRequest for TenantProvider {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let slug = req
            .match_info()
            .get("tenant")
            .map(str::to_string)
            .or_else(|| state.as_ref().and_then(|s| s.config.default_tenant.clone()));
        // The protection middleware usually resolved it already.
        let resolved = req
            .extensions()
            .get::<ResolvedTenant>()
            .filter(|r| Some(&r.slug) == slug.as_ref())
            .map(|r| r.provider.clone());
        Box::pin(async move {
            if let Some(found) = resolved {
                return found
                    .map(TenantProvider)
                    .ok_or_else(|| TenantNotFound.into());
            }
            let (Some(state), Some(slug)) = (state, slug) else {
                return Err(TenantNotFound.into());
            };
            match state.providers.get(&state.pool, &slug).await {
                Ok(Some(p)) => Ok(TenantProvider(p)),
                Ok(None) => Err(TenantNotFound.into()),
                Err(e) => Err(OAuthError::from(e).into()),
            }
        })
    }
}

/// The request id assigned by the middleware.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The client's address as the protection middleware determined it (behind trusted
/// proxies, from `X-Forwarded-For`).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

/// The tenant the protection middleware resolved for `slug` (`None`: no such tenant).
#[derive(Clone, Debug)]
pub struct ResolvedTenant {
    pub slug: String,
    pub provider: Option<Arc<Provider>>,
}

/// The allowed origins of the client a handler identified, for the CORS decision.
#[derive(Clone, Debug)]
pub struct CorsClient(pub Vec<String>);

/// Records the client a request came from, when it is a cross-origin request.
pub fn mark_cors_client(req: &HttpRequest, client: &crate::clients::Client) {
    if req.headers().contains_key(header::ORIGIN) {
        req.extensions_mut()
            .insert(CorsClient(client.allowed_origins.clone()));
    }
}

/// Who is calling, for the audit log.
pub fn audit_context(req: &HttpRequest) -> Context {
    Context {
        ip: client_ip(req),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(300).collect()),
        correlation_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
    }
}

/// The client's address: from the protection middleware (which honours X-Forwarded-For
/// only from configured trusted proxies), else the socket peer.
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    match req.extensions().get::<ClientAddr>() {
        Some(ClientAddr(addr)) => addr.map(|a| a.to_string()),
        None => req.peer_addr().map(|a| a.ip().to_string()),
    }
}

/// Why a form body was not read.
enum FormProblem {
    ContentType,
    Unreadable,
    TooLarge(usize),
}

impl FormProblem {
    fn status(&self) -> actix_web::http::StatusCode {
        match self {
            FormProblem::TooLarge(_) => actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            _ => actix_web::http::StatusCode::BAD_REQUEST,
        }
    }

    fn message(&self) -> String {
        match self {
            FormProblem::ContentType => "the body must be application/x-www-form-urlencoded".into(),
            FormProblem::Unreadable => "the body could not be read".into(),
            FormProblem::TooLarge(limit) => format!("the body exceeds {limit} bytes"),
        }
    }
}

/// Reads an `application/x-www-form-urlencoded` body, bounded by `max_body_bytes`, and
/// parses it with duplicate detection.
fn read_form(
    req: &HttpRequest,
    payload: &mut Payload,
) -> impl Future<Output = Result<Params, FormProblem>> {
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map_or(64 * 1024, |s| s.config.max_body_bytes);
    let content_type_ok = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    let mut payload = payload.take();
    async move {
        if !content_type_ok {
            return Err(FormProblem::ContentType);
        }
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| FormProblem::Unreadable)?;
            if body.len() + chunk.len() > limit {
                return Err(FormProblem::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Params::parse(&body))
    }
}

/// A form-encoded body (`application/x-www-form-urlencoded`), bounded by `max_body_bytes`,
/// parsed with duplicate detection. Wrong content type or size is an `invalid_request`
/// (413 when too large), in the JSON of RFC 6749 §5.2: for the endpoints clients call.
pub struct FormParams(pub Params);

impl FromRequest for FormParams {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let form = read_form(req, payload);
        Box::pin(async move {
            form.await.map(FormParams).map_err(|problem| {
                OAuthError::new(problem.status(), "invalid_request", problem.message()).into()
            })
        })
    }
}

/// The form a browser posts to a page, read as [`FormParams`] is; a refusal is an error
/// page in the person's language, since a person, not a client, sees it.
pub struct PageForm(pub Params);

/// The parameters of a browser endpoint that takes both GET and POST (the authorization
/// endpoint, OIDC Core §3.1.2.1; RP-initiated logout, §2): the query string of a GET, the
/// form body of a POST.
pub struct PageParams(pub Params);

fn page_refusal(req: &HttpRequest, problem: FormProblem) -> actix_web::Error {
    let accept = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let locale = crate::i18n::negotiate(None, accept);
    let message = match problem {
        FormProblem::TooLarge(_) => locale.texts().form_too_large,
        FormProblem::ContentType | FormProblem::Unreadable => locale.texts().form_not_form,
    };
    error::PageError::new(problem.status(), locale, message).into()
}

impl FromRequest for PageForm {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let form = read_form(req, payload);
        let req = req.clone();
        Box::pin(async move {
            form.await
                .map(PageForm)
                .map_err(|problem| page_refusal(&req, problem))
        })
    }
}

impl FromRequest for PageParams {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if req.method() != actix_web::http::Method::POST {
            let params = query_params(req);
            return Box::pin(async move { Ok(PageParams(params)) });
        }
        let form = PageForm::from_request(req, payload);
        Box::pin(async move { form.await.map(|PageForm(p)| PageParams(p)) })
    }
}

/// Query-string parameters with duplicate detection.
pub fn query_params(req: &HttpRequest) -> Params {
    Params::parse(req.query_string().as_bytes())
}

/// Client credentials from the Authorization header (Basic, with the form-urlencoded id
/// and secret of RFC 6749 §2.3.1) or from the body. Using two methods at once is an
/// `invalid_request` (§2.3).
pub fn client_credentials(
    req: &HttpRequest,
    params: &Params,
) -> Result<ClientCredentials, OAuthError> {
    let body_secret = params.get("client_secret");
    let body_id = params.get("client_id");
    let assertion = params.get("client_assertion");
    let assertion_type = params.get("client_assertion_type");
    if assertion.is_some() || assertion_type.is_some() {
        if body_secret.is_some() || req.headers().contains_key(header::AUTHORIZATION) {
            return Err(OAuthError::invalid_request(
                "use only one client authentication method",
            ));
        }
        if assertion_type != Some(clients::assertion::ASSERTION_TYPE) {
            return Err(OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ));
        }
        let assertion =
            assertion.ok_or_else(|| OAuthError::invalid_request("client_assertion is required"))?;
        let id = clients::assertion::claimed_client(assertion).ok_or_else(|| {
            OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client_assertion is not a JWS naming its client in sub",
            )
        })?;
        if body_id.is_some_and(|b| b != id) {
            return Err(OAuthError::invalid_request(
                "client_id does not match the client assertion",
            ));
        }
        return Ok(ClientCredentials::Assertion {
            id,
            assertion: assertion.to_string(),
        });
    }
    if let Some(auth) = req.headers().get(header::AUTHORIZATION) {
        let value = auth.to_str().map_err(|_| OAuthError::invalid_client())?;
        let Some(encoded) = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
        else {
            return Err(OAuthError::invalid_client());
        };
        if body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use only one client authentication method",
            ));
        }
        let decoded = crypto::b64_decode(encoded)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(OAuthError::invalid_client)?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(OAuthError::invalid_client)?;
        let decode = |s: &str| -> Result<String, OAuthError> {
            let plus_as_space = s.replace('+', " ");
            percent_decode(&plus_as_space).ok_or_else(OAuthError::invalid_client)
        };
        let (id, secret) = (decode(id)?, decode(secret)?);
        if body_id.is_some_and(|b| b != id) {
            return Err(OAuthError::invalid_request(
                "client_id does not match the credentials",
            ));
        }
        return Ok(ClientCredentials::Basic { id, secret });
    }
    match (body_id, body_secret) {
        (Some(id), Some(secret)) => Ok(ClientCredentials::Post {
            id: id.to_string(),
            secret: secret.to_string(),
        }),
        (Some(id), None) => Ok(ClientCredentials::None { id: id.to_string() }),
        (None, _) => Err(OAuthError::invalid_client()),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The credentials of an `Authorization: {scheme} …` header, for one scheme.
fn authorization(req: &HttpRequest, wanted: &str) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case(wanted)
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// A bearer token from `Authorization: Bearer …` (RFC 6750 §2.1).
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    authorization(req, "bearer")
}

/// The request's `DPoP` proof (RFC 9449 §4.1): none, or exactly one header.
pub fn dpop_proof(req: &HttpRequest) -> Result<Option<String>, &'static str> {
    let mut values = req.headers().get_all("dpop");
    let first = values.next();
    if values.next().is_some() {
        return Err("send one DPoP header, not several (RFC 9449 §4.3)");
    }
    first
        .map(|v| {
            v.to_str()
                .map(|s| s.trim().to_string())
                .map_err(|_| "the DPoP proof is not a JWS")
        })
        .transpose()
}

/// The URI a DPoP proof's `htu` must name: this server's public URL and the path called.
pub fn request_url(req: &HttpRequest, public_url: &str) -> String {
    format!("{public_url}{}", req.path())
}

/// An access token as a request presents it in its Authorization header: bearer, or
/// DPoP with the request's proof (RFC 9449 §7.1).
#[derive(Debug, Clone)]
pub enum PresentedToken {
    Bearer(String),
    Dpop {
        token: String,
        proof: Option<String>,
        method: String,
        uri: String,
    },
}

impl PresentedToken {
    /// The token of the Authorization header, and with the DPoP scheme the proof and what
    /// it must match; `Err` for several DPoP headers.
    pub fn from_request(req: &HttpRequest, public_url: &str) -> Result<Option<Self>, &'static str> {
        if let Some(token) = bearer_token(req) {
            return Ok(Some(PresentedToken::Bearer(token)));
        }
        let Some(token) = authorization(req, "dpop") else {
            return Ok(None);
        };
        Ok(Some(PresentedToken::Dpop {
            token,
            proof: dpop_proof(req)?,
            method: req.method().as_str().to_string(),
            uri: request_url(req, public_url),
        }))
    }

    pub fn token(&self) -> &str {
        match self {
            PresentedToken::Bearer(t) | PresentedToken::Dpop { token: t, .. } => t,
        }
    }

    pub fn presentation(&self) -> crate::tokens::Presentation<'_> {
        match self {
            PresentedToken::Bearer(t) => crate::tokens::Presentation::Bearer(t),
            PresentedToken::Dpop {
                token,
                proof,
                method,
                uri,
            } => crate::tokens::Presentation::Dpop {
                token,
                proof: proof.as_deref(),
                method,
                uri,
            },
        }
    }
}

/// A JSON body of type `T`, bounded by `max_body_bytes`; anything unparsable is a
/// `VALIDATION_FAILED` that names the problem. A body must say it is JSON
/// (`application/json` or a `+json` type): a `text/plain` or form body is refused before
/// anything reads it, so a client bug never looks like a wrong password, and a cross-site
/// "simple" request (no CORS preflight) cannot carry a JSON command.
pub struct Json<T>(pub T);

/// A JSON body of client metadata (RFC 7591 §3.2.1), read as [`Json`] is; what is not
/// acceptable metadata is `400 invalid_client_metadata` (§3.2.2) naming the problem.
pub struct MetadataJson<T>(pub T);

/// `Some(problem)` when a non-empty body is not declared as JSON.
fn json_content_type_problem(req: &HttpRequest) -> Option<String> {
    let Some(raw) = req.headers().get(header::CONTENT_TYPE) else {
        return Some("the request has a body but no Content-Type: send application/json".into());
    };
    let mime = raw
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = mime == "application/json"
        || mime
            .strip_prefix("application/")
            .is_some_and(|s| s.ends_with("+json"));
    (!json).then(|| {
        let shown: String = mime.chars().take(64).collect();
        format!("Content-Type must be application/json, not {shown:?}")
    })
}

/// Reads and decodes a JSON body (an empty one is `{}`); `Err` names the problem.
fn read_json<T: DeserializeOwned + 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
) -> impl Future<Output = Result<T, String>> {
    let bytes = web::Bytes::from_request(req, payload);
    let content_type_problem = json_content_type_problem(req);
    async move {
        let body = bytes
            .await
            .map_err(|_| "the request body is too large or unreadable".to_string())?;
        if let (false, Some(problem)) = (body.is_empty(), content_type_problem) {
            return Err(problem);
        }
        serde_json::from_slice::<T>(if body.is_empty() { b"{}" } else { &body })
            .map_err(|e| format!("invalid JSON body: {e}"))
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_json(req, payload);
        Box::pin(async move {
            body.await
                .map(Json)
                .map_err(|problem| ApiError::ValidationFailed(problem).into())
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for MetadataJson<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_json(req, payload);
        Box::pin(async move {
            body.await.map(MetadataJson).map_err(|problem| {
                OAuthError::new(
                    actix_web::http::StatusCode::BAD_REQUEST,
                    "invalid_client_metadata",
                    problem,
                )
                .into()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_reserved_characters() {
        assert_eq!(percent_decode("a%3Ab%25c").as_deref(), Some("a:b%c"));
        assert_eq!(percent_decode("bad%zz"), None);
    }
}
