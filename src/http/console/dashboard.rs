//! The console's dashboard: sign-ins and failures over the last 24 hours (an SVG chart drawn
//! here, on the server), the live sessions, and the signing keys' age and next rotation.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::visit::{console_session, Shell};
use crate::audit;
use crate::error::PageError;
use crate::http::extractors::TenantProvider;
use crate::http::pages::common::locale;
use crate::keys::{self, KeyInfo};
use crate::sessions;
use crate::state::AppState;

const HOURS: i64 = 24;
const CHART_HEIGHT: i64 = 100;
const SLOT: i64 = 20;

/// One hour of the chart: two bars (successes, failures), heights in chart units.
pub struct Bar {
    pub x: i64,
    pub ok_y: i64,
    pub ok_h: i64,
    pub fail_x: i64,
    pub fail_y: i64,
    pub fail_h: i64,
    pub ok: i64,
    pub failed: i64,
}

/// The bars of `ok` and `failed` (one count per hour, oldest first), scaled to the
/// largest count.
fn bars(ok: &[i64], failed: &[i64]) -> Vec<Bar> {
    let max = ok.iter().chain(failed).copied().max().unwrap_or(0).max(1);
    let scale = |n: i64| n * CHART_HEIGHT / max;
    ok.iter()
        .zip(failed)
        .enumerate()
        .map(|(i, (&o, &f))| {
            let x = i64::try_from(i).unwrap_or(0) * SLOT + 2;
            Bar {
                x,
                ok_y: CHART_HEIGHT - scale(o),
                ok_h: scale(o),
                fail_x: x + 8,
                fail_y: CHART_HEIGHT - scale(f),
                fail_h: scale(f),
                ok: o,
                failed: f,
            }
        })
        .collect()
}

pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    pub state: String,
    pub age_days: i64,
    pub rotates_in_days: Option<i64>,
}

impl From<&KeyInfo> for KeyRow {
    fn from(k: &KeyInfo) -> Self {
        let now = crate::storage::now();
        Self {
            kid: k.kid.clone(),
            alg: k.alg.clone(),
            state: k.state.clone(),
            age_days: (now - k.activated_at.unwrap_or(k.created_at)) / 86_400,
            rotates_in_days: k.rotates_at.map(|t| ((t - now) / 86_400).max(0)),
        }
    }
}

#[derive(Template)]
#[template(path = "pages/console/dashboard.html")]
struct DashboardPage<'a> {
    c: Shell<'a>,
    bars: Vec<Bar>,
    width: i64,
    total_ok: i64,
    total_failed: i64,
    sessions: i64,
    /// None: the user may not read keys.
    keys: Option<Vec<KeyRow>>,
}

/// `GET {issuer}/admin` — the dashboard.
pub async fn dashboard_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let c = visit!(console_session(&state, &req, &p, loc));
    let ok = audit::hourly_counts(&state.audit, &p.tenant, "signin.success", HOURS).await?;
    let failed = audit::hourly_counts(&state.audit, &p.tenant, "signin.failure", HOURS).await?;
    let keys = if c.can("keys:read") {
        let list = keys::list_keys(&state.pool, &p.tenant, state.config.key_rotation_secs).await?;
        Some(list.iter().map(KeyRow::from).collect())
    } else {
        None
    };
    let page = DashboardPage {
        c: c.shell(""),
        bars: bars(&ok, &failed),
        width: HOURS * SLOT,
        total_ok: ok.iter().sum(),
        total_failed: failed.iter().sum(),
        sessions: sessions::count_live(&state.pool, &p.tenant).await?,
        keys,
    };
    c.page(StatusCode::OK, page)
}

/// `GET {issuer}/admin/step-up` — a fresh sign-in with the second factor, for changes the
/// tenant puts behind `mfa_step_up_permissions`.
pub async fn step_up_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let _ = visit!(console_session(&state, &req, &p, loc));
    super::visit::step_up_redirect(&state, &p, loc, Some(crate::mfa::MFA_FRESHNESS)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_busiest_hour_and_stand_on_the_baseline() {
        let b = bars(&[0, 5, 10], &[10, 0, 0]);
        assert_eq!(b.len(), 3);
        assert_eq!((b[2].ok_h, b[2].ok_y), (CHART_HEIGHT, 0));
        assert_eq!((b[1].ok_h, b[1].ok_y), (CHART_HEIGHT / 2, CHART_HEIGHT / 2));
        assert_eq!((b[0].ok_h, b[0].fail_h), (0, CHART_HEIGHT));
        assert!(bars(&[0; 24], &[0; 24]).iter().all(|b| b.ok_h == 0));
    }
}
