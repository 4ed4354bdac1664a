//! The static assets pages link: the tenant's branding stylesheet and the files under
//! `static/`, embedded in the binary (the CSP allows no inline style or script).

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::http::extractors::TenantProvider;

/// `GET {issuer}/branding.css` — the tenant's accent colour (kept out of the pages so the
/// CSP needs no inline style).
pub async fn branding_css(TenantProvider(p): TenantProvider) -> HttpResponse {
    let accent = p
        .tenant
        .settings
        .branding
        .accent_color
        .as_deref()
        .filter(|c| {
            c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit())
        })
        .unwrap_or("#2b59c3");
    HttpResponse::Ok()
        .content_type("text/css")
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .body(format!(":root {{ --accent: {accent}; }}\n"))
}

/// `GET /static/{file}` — the stylesheet and the form-post script, embedded in the binary.
pub async fn static_file(path: web::Path<String>) -> HttpResponse {
    let (body, ctype): (&'static str, &str) = match path.as_str() {
        "style.css" => (include_str!("../../../static/style.css"), "text/css"),
        "form_post.js" => (
            include_str!("../../../static/form_post.js"),
            "text/javascript",
        ),
        "passkey.js" => (
            include_str!("../../../static/passkey.js"),
            "text/javascript",
        ),
        _ => return crate::error::not_found(),
    };
    HttpResponse::Ok()
        .content_type(ctype)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}
