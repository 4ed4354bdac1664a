//! The static assets pages link: the tenant's branding stylesheet and the files under
//! `static/`, embedded in the binary (the CSP allows no inline style or script).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::http::extractors::TenantProvider;

/// `GET {issuer}/branding.css` — the tenant's accent colour (kept out of the pages so the
/// CSP needs no inline style). With `?preview=%23rrggbb`, also that colour for the console's
/// preview of the sign-in page (`.brand-preview`), before it is saved.
pub async fn branding_css(TenantProvider(p): TenantProvider, req: HttpRequest) -> HttpResponse {
    let accent = p
        .tenant
        .settings
        .branding
        .accent_color
        .as_deref()
        .filter(|c| crate::tenants::is_hex_colour(c))
        .unwrap_or("#2b59c3");
    let query = crate::http::extractors::query_params(&req);
    let preview = query
        .get("preview")
        .filter(|c| crate::tenants::is_hex_colour(c))
        .map(str::to_string);
    HttpResponse::Ok()
        .content_type("text/css")
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .body(match preview {
            Some(c) => {
                format!(":root {{ --accent: {accent}; }}\n.brand-preview {{ --accent: {c}; }}\n")
            }
            None => format!(":root {{ --accent: {accent}; }}\n"),
        })
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
        "console.js" => (
            include_str!("../../../static/console.js"),
            "text/javascript",
        ),
        _ => return crate::error::not_found(),
    };
    HttpResponse::Ok()
        .content_type(ctype)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}
