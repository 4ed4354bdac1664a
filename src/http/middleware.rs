//! Middleware: request id (echoed as `X-Request-Id`, the `correlation_id` of errors and
//! audit events), security headers on every response, `Cache-Control: no-store` unless a
//! handler chose otherwise, and one access-log line per request (path only, never query
//! strings, which can carry codes).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};

use crate::error::REQUEST_ID;
use crate::http::extractors::RequestId;
use crate::state::AppState;

/// The Content-Security-Policy of every page: no inline script or style.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; base-uri 'none'; frame-ancestors 'none'";

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
    let https = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.config.is_https());
    let method = req.method().clone();
    let path = req.path().to_string();
    let mut res = REQUEST_ID.scope(id.clone(), next.call(req)).await?;
    let status = res.status().as_u16();
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
