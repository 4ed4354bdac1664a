//! The console's audit log: filters (event, actor, dates), pages newest first by cursor, and
//! the same selection as CSV ([`audit::csv_lines`]) — read through [`audit::query`], as the
//! admin API's `GET /admin/audit` reads it.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::Value;

use super::visit::{console_session, Console, Shell};
use crate::audit;
use crate::authorization::Params;
use crate::error::PageError;
use crate::http::extractors::{query_params, TenantProvider};
use crate::http::pages::common::locale;
use crate::state::AppState;
use crate::storage;
use crate::storage::audit::AuditFilter;

const PAGE_SIZE: i64 = 50;
/// The most events one CSV export holds (newest first); narrow the filters for older ones.
pub const CSV_MAX_EVENTS: usize = 10_000;

pub struct EventRow {
    pub when: String,
    pub event: String,
    pub actor: String,
    pub client: String,
    pub ip: String,
    pub details: String,
}

#[derive(Template)]
#[template(path = "pages/console/audit.html")]
struct AuditPage<'a> {
    c: Shell<'a>,
    action: String,
    event: String,
    actor: String,
    from: String,
    to: String,
    events: Vec<EventRow>,
    next: Option<String>,
    csv: String,
    error: Option<&'static str>,
}

/// Unix seconds of the start of a `YYYY-MM-DD` day (UTC).
fn day_start(s: &str) -> Option<i64> {
    let mut parts = s.splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    let month = time::Month::try_from(month).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp())
}

/// The filters of the query string; None when a date is not a date.
fn filter(q: &Params) -> Option<AuditFilter> {
    let text = |k: &str| {
        q.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let from = match q.get("from") {
        Some(d) => Some(day_start(d)?),
        None => None,
    };
    let to = match q.get("to") {
        Some(d) => Some(day_start(d)? + 86_399),
        None => None,
    };
    let before = q.get("cursor").and_then(owned_cursor);
    Some(AuditFilter {
        event: text("event"),
        actor: text("actor"),
        from,
        to,
        before,
    })
}

fn owned_cursor(c: &str) -> Option<(i64, String)> {
    storage::parse_cursor(c).map(|(t, id)| (t, id.to_string()))
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The query string of the filters (without the cursor).
fn filter_query(q: &Params) -> url::form_urlencoded::Serializer<'static, String> {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for k in ["event", "actor", "from", "to"] {
        if let Some(v) = q.get(k) {
            out.append_pair(k, v);
        }
    }
    out
}

async fn page(c: &Console<'_>, q: &Params) -> Result<HttpResponse, PageError> {
    let field = |k: &str| q.get(k).unwrap_or("").to_string();
    let (status, events, next, error) = match filter(q) {
        Some(f) => {
            let (events, next) = audit::query(&c.state.audit, &c.p.tenant, &f, PAGE_SIZE).await?;
            (StatusCode::OK, events, next, None)
        }
        None => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Vec::new(),
            None,
            Some(c.texts().bad_date),
        ),
    };
    let next = next.map(|cursor| {
        let mut query = filter_query(q);
        query.append_pair("cursor", &cursor);
        format!("{}?{}", c.url("/audit"), query.finish())
    });
    let csv = {
        let query = filter_query(q).finish();
        if query.is_empty() {
            c.url("/audit.csv")
        } else {
            format!("{}?{query}", c.url("/audit.csv"))
        }
    };
    c.page(
        status,
        AuditPage {
            c: c.shell("/audit"),
            action: c.url("/audit"),
            event: field("event"),
            actor: field("actor"),
            from: field("from"),
            to: field("to"),
            events: events
                .iter()
                .map(|e| EventRow {
                    when: text(&e["created_at"]),
                    event: text(&e["event"]),
                    actor: text(&e["actor"]),
                    client: text(&e["client_id"]),
                    ip: text(&e["ip"]),
                    details: match &e["details"] {
                        Value::Object(m) if m.is_empty() => String::new(),
                        Value::Null => String::new(),
                        d => d.to_string(),
                    },
                })
                .collect(),
            next,
            csv,
            error,
        },
    )
}

/// `GET {issuer}/admin/audit?event=&actor=&from=&to=&cursor=` (audit:read)
pub async fn audit_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("audit:read")?;
    page(&c, &query_params(&req)).await
}

/// `GET {issuer}/admin/audit.csv?event=&actor=&from=&to=` (audit:read) — the selected
/// events, newest first, at most [`CSV_MAX_EVENTS`].
pub async fn audit_csv_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("audit:read")?;
    let q = query_params(&req);
    let Some(mut f) = filter(&q) else {
        return Err(PageError::bad_request(c.loc, c.texts().bad_date));
    };
    f.before = None;
    let mut out = audit::CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    let mut written = 0;
    while written < CSV_MAX_EVENTS {
        let want = (CSV_MAX_EVENTS - written).min(500) as i64;
        let (events, next) = audit::query(&state.audit, &p.tenant, &f, want).await?;
        audit::csv_lines(&events, &mut out);
        written += events.len();
        match next.as_deref().and_then(owned_cursor) {
            Some(cursor) => f.before = Some(cursor),
            None => break,
        }
    }
    c.audit("audit.exported", ("events", &written.to_string()));
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"audit-{}.csv\"", p.tenant.slug),
        ))
        .body(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_read_as_utc_midnight_and_anything_else_is_refused() {
        assert_eq!(day_start("1970-01-02"), Some(86_400));
        assert_eq!(day_start("2026-12-07"), Some(1_796_601_600));
        for bad in ["2026-13-01", "2026-02-30", "07/12/2026", "2026-12", ""] {
            assert_eq!(day_start(bad), None, "{bad}");
        }
    }
}
