//! Middleware. `request_context` (outermost): request id (echoed as `X-Request-Id`, the
//! `correlation_id` of errors and audit events, and a field of every log line of the
//! request), security headers on every response, `Cache-Control: no-store` unless a handler
//! chose otherwise, request metrics, and one access-log line per request (path only, never
//! query strings, which can carry codes). `protect`: the client address, rate limits,
//! lockouts and bans (with `X-RateLimit-*` headers), and CORS for the endpoints browsers
//! call cross-origin.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};
use tracing::Instrument;

use crate::error::REQUEST_ID;
use crate::http::extractors::{ClientAddr, CorsClient, RequestId, ResolvedTenant};
use crate::protection::{self, Quota, Route, Verdict};
use crate::provider::Provider;
use crate::state::AppState;

/// The Content-Security-Policy of every page: no inline script or style.
pub const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' https: data:; base-uri 'none'; frame-ancestors 'none'";

fn valid_request_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_request_id(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let https = state.as_ref().is_some_and(|s| s.config.is_https());
    let method = req.method().clone();
    let path = req.path().to_string();
    let span = tracing::info_span!("request", request_id = %id);
    let in_flight = state.as_ref().map(|s| s.metrics.request_started());
    let mut res = REQUEST_ID
        .scope(id.clone(), next.call(req))
        .instrument(span.clone())
        .await?;
    drop(in_flight);
    let status = res.status().as_u16();
    if let Some(state) = &state {
        let route = res.request().match_pattern();
        state.metrics.observe_request(
            route.as_deref().unwrap_or("unmatched"),
            method.as_str(),
            status,
            started.elapsed().as_secs_f64(),
        );
    }
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert(HeaderName::from_static("x-request-id"), v);
    }
    let set_default = |h: &mut header::HeaderMap, name: HeaderName, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set_default(h, header::CONTENT_SECURITY_POLICY, CSP);
    set_default(h, header::X_FRAME_OPTIONS, "DENY");
    set_default(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set_default(h, header::REFERRER_POLICY, "no-referrer");
    set_default(h, header::CACHE_CONTROL, "no-store");
    if https {
        set_default(
            h,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    let _entered = span.enter();
    tracing::info!(
        request_id = %id,
        method = %method,
        path = %path,
        status,
        latency_us = started.elapsed().as_micros() as u64,
        "request"
    );
    Ok(res)
}

/// Headers a browser may send cross-origin, and response headers it may read.
const CORS_ALLOW_HEADERS: &str = "Authorization, Content-Type, DPoP, X-Api-Key, X-Request-Id";
const CORS_ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
const CORS_EXPOSE_HEADERS: &str =
    "X-Request-Id, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After, WWW-Authenticate, DPoP-Nonce";

pub async fn protect(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    // Every X-Forwarded-For line, in order (a proxy may add its own line after the
    // client's), read as bytes: a non-ASCII value must not hide the hops after it.
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join(",");
    let addr = state.protection.client_addr(
        req.peer_addr().map(|a| a.ip()),
        Some(forwarded.as_str()).filter(|f| !f.is_empty()),
    );
    req.extensions_mut().insert(ClientAddr(addr));
    // The path actix routes on (percent-encoding decoded), so `/t/acme/%74oken` is `/token`.
    let path = req.match_info().as_str().to_string();
    let Some(route) = protection::classify(req.method().as_str(), &path) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    // Bans apply before anything else is looked up, and even with rate limiting off.
    if addr.is_some_and(|ip| state.protection.is_banned(ip)) {
        state.metrics.rate_limited(route.group.as_str(), "banned");
        let resp = crate::error::refusal_response(route.flavour, &Verdict::Banned, locale_of(&req));
        return Ok(req.into_response(resp).map_into_right_body());
    }
    let provider = resolve_tenant(&state, &req, &route).await;
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    let verdict = match (state.protection.policy.enabled, addr) {
        (true, Some(ip)) if !state.protection.is_trusted(ip) => {
            let overrides = provider.as_ref().map(|p| &p.tenant.settings.rate_limits);
            let window = state
                .protection
                .window(route.group, overrides.unwrap_or(&Default::default()));
            let tenant_key = provider.as_ref().map_or("-", |p| p.tenant.id.as_str());
            Some(
                state
                    .protection
                    .check(&state.pool, &state.audit, &route, tenant_key, ip, window)
                    .await,
            )
        }
        _ => None,
    };
    let quota = match verdict {
        None => None,
        Some(Verdict::Allowed(q)) => Some(q),
        Some(refused) => {
            let reason = match refused {
                Verdict::Limited(_) => "limited",
                Verdict::Locked(_) => "locked",
                Verdict::Banned | Verdict::Allowed(_) => "banned",
            };
            state.metrics.rate_limited(route.group.as_str(), reason);
            let mut resp = crate::error::refusal_response(route.flavour, &refused, locale_of(&req));
            if let Verdict::Limited(q) | Verdict::Locked(q) = refused {
                rate_headers(resp.headers_mut(), &q);
            }
            let allowed = cors_allowed(&state, &route, &provider, origin.as_deref(), None).await;
            cors_headers(resp.headers_mut(), origin.as_deref(), allowed, false);
            return Ok(req.into_response(resp).map_into_right_body());
        }
    };

    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if route.cors && preflight {
        let allowed = cors_allowed(&state, &route, &provider, origin.as_deref(), None).await;
        let mut resp = HttpResponse::NoContent().finish();
        cors_headers(resp.headers_mut(), origin.as_deref(), allowed, true);
        if let Some(q) = &quota {
            rate_headers(resp.headers_mut(), q);
        }
        return Ok(req.into_response(resp).map_into_right_body());
    }

    let mut res = next.call(req).await?;
    if let Some(q) = &quota {
        rate_headers(res.headers_mut(), q);
    }
    if route.cors && origin.is_some() {
        let client = res.request().extensions().get::<CorsClient>().cloned();
        let allowed = cors_allowed(&state, &route, &provider, origin.as_deref(), client).await;
        cors_headers(res.headers_mut(), origin.as_deref(), allowed, false);
    }
    Ok(res.map_into_left_body())
}

fn locale_of(req: &ServiceRequest) -> crate::i18n::Locale {
    crate::i18n::negotiate(
        None,
        req.headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

/// The tenant a request addresses, resolved once here and reused by the `TenantProvider`
/// extractor.
async fn resolve_tenant(
    state: &AppState,
    req: &ServiceRequest,
    route: &Route,
) -> Option<Arc<Provider>> {
    let slug = route
        .tenant
        .clone()
        .or_else(|| state.config.default_tenant.clone())?;
    let found = match state.providers.get(&state.pool, &slug).await {
        Ok(p) => p,
        // The handler's own lookup reports the failure.
        Err(_) => return None,
    };
    req.extensions_mut().insert(ResolvedTenant {
        slug,
        provider: found.clone(),
    });
    found
}

/// Whether `origin` may read the response: the client the handler identified allows it, or
/// (before a client is known, and for the JSON API) some client of the tenant does.
async fn cors_allowed(
    state: &AppState,
    route: &Route,
    provider: &Option<Arc<Provider>>,
    origin: Option<&str>,
    client: Option<CorsClient>,
) -> bool {
    let (true, Some(origin), Some(p)) = (route.cors, origin, provider) else {
        return false;
    };
    match client {
        Some(CorsClient(origins)) => origins.iter().any(|o| o == origin),
        None => crate::clients::tenant_allows_origin(state.clients(), &p.tenant, origin)
            .await
            .unwrap_or(false),
    }
}

fn cors_headers(h: &mut HeaderMap, origin: Option<&str>, allowed: bool, preflight: bool) {
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = origin.filter(|_| allowed) else {
        return;
    };
    let Ok(value) = HeaderValue::from_str(origin) else {
        return;
    };
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    if preflight {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(CORS_ALLOW_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(CORS_ALLOW_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
    } else {
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(CORS_EXPOSE_HEADERS),
        );
    }
}

fn rate_headers(h: &mut HeaderMap, q: &Quota) {
    for (name, value) in [
        ("x-ratelimit-limit", q.limit),
        ("x-ratelimit-remaining", q.remaining),
        ("x-ratelimit-reset", q.reset_at),
    ] {
        h.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}
