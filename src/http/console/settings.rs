//! The console's settings: branding with a preview of the sign-in page (drawn on the server
//! by "Preview" without saving, and following the fields as they are typed when the
//! static `console.js` runs), password and MFA policy, lifetimes, lockout, rate limits and
//! the registration and protocol switches. The form becomes a JSON merge patch applied by
//! [`TenantSettings::patched`], as the admin API's `PATCH /admin/settings` applies its own.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::{json, Map, Value};

use super::visit::{console_form, console_session, Console, Shell};
use crate::authorization::Params;
use crate::config::Group;
use crate::error::PageError;
use crate::http::extractors::{PageForm, TenantProvider};
use crate::http::pages::common::locale;
use crate::state::AppState;
use crate::tenants::{self, TenantError, TenantSettings};

const GROUPS: [Group; 3] = [Group::Credentials, Group::Api, Group::Public];
const SWITCHES: [&str; 5] = [
    "self_registration",
    "registration_enabled",
    "registration_token_required",
    "require_pushed_authorization_requests",
    "dpop_nonce_required",
];

/// One rate-limit group's fields.
pub struct RateFields {
    pub group: &'static str,
    pub limit: String,
    pub window: String,
}

/// The form's fields as text, from settings or as typed.
pub struct Fields {
    pub display_name: String,
    pub logo_url: String,
    pub accent_color: String,
    pub min_length: String,
    pub require_upper: bool,
    pub require_lower: bool,
    pub require_digit: bool,
    pub require_symbol: bool,
    pub history: String,
    pub mfa_policy: String,
    pub console_requires_mfa: bool,
    pub access_token_ttl: String,
    pub reuse_interval: String,
    pub lockout_threshold: String,
    pub lockout_window: String,
    pub lockout_duration: String,
    pub rates: Vec<RateFields>,
    /// (field name, label, on)
    pub switches: Vec<(&'static str, &'static str, bool)>,
}

fn switch_label(ct: &crate::i18n::ConsoleTexts, name: &str) -> &'static str {
    match name {
        "self_registration" => ct.self_registration,
        "registration_enabled" => ct.registration_enabled,
        "registration_token_required" => ct.registration_token_required,
        "require_pushed_authorization_requests" => ct.require_par,
        _ => ct.dpop_nonce,
    }
}

fn switch_of(s: &TenantSettings, name: &str) -> bool {
    match name {
        "self_registration" => s.self_registration,
        "registration_enabled" => s.registration_enabled,
        "registration_token_required" => s.registration_token_required,
        "require_pushed_authorization_requests" => s.require_pushed_authorization_requests,
        _ => s.dpop_nonce_required,
    }
}

impl Fields {
    fn of(s: &TenantSettings, ct: &crate::i18n::ConsoleTexts) -> Self {
        let b = &s.branding;
        let p = &s.password_policy;
        Self {
            display_name: b.display_name.clone().unwrap_or_default(),
            logo_url: b.logo_url.clone().unwrap_or_default(),
            accent_color: b.accent_color.clone().unwrap_or_default(),
            min_length: p.min_length.to_string(),
            require_upper: p.require_upper,
            require_lower: p.require_lower,
            require_digit: p.require_digit,
            require_symbol: p.require_symbol,
            history: p.history.to_string(),
            mfa_policy: s.mfa_policy.as_str().to_string(),
            console_requires_mfa: s.console_requires_mfa,
            access_token_ttl: s
                .access_token_ttl
                .map(|t| t.to_string())
                .unwrap_or_default(),
            reuse_interval: s.refresh_token_reuse_interval.to_string(),
            lockout_threshold: s.lockout.threshold.to_string(),
            lockout_window: s.lockout.window_secs.to_string(),
            lockout_duration: s.lockout.duration_secs.to_string(),
            rates: GROUPS
                .iter()
                .map(|g| {
                    let w = s.rate_limits.get(g);
                    RateFields {
                        group: g.as_str(),
                        limit: w.map(|w| w.limit.to_string()).unwrap_or_default(),
                        window: w.map(|w| w.window_secs.to_string()).unwrap_or_default(),
                    }
                })
                .collect(),
            switches: SWITCHES
                .iter()
                .map(|n| (*n, switch_label(ct, n), switch_of(s, n)))
                .collect(),
        }
    }

    fn typed(form: &Params, ct: &crate::i18n::ConsoleTexts) -> Self {
        let text = |k: &str| form.get(k).unwrap_or("").trim().to_string();
        let on = |k: &str| form.get(k).is_some();
        Self {
            display_name: text("display_name"),
            logo_url: text("logo_url"),
            accent_color: text("accent_color"),
            min_length: text("min_length"),
            require_upper: on("require_upper"),
            require_lower: on("require_lower"),
            require_digit: on("require_digit"),
            require_symbol: on("require_symbol"),
            history: text("history"),
            mfa_policy: text("mfa_policy"),
            console_requires_mfa: on("console_requires_mfa"),
            access_token_ttl: text("access_token_ttl"),
            reuse_interval: text("refresh_token_reuse_interval"),
            lockout_threshold: text("lockout_threshold"),
            lockout_window: text("lockout_window_secs"),
            lockout_duration: text("lockout_duration_secs"),
            rates: GROUPS
                .iter()
                .map(|g| RateFields {
                    group: g.as_str(),
                    limit: text(&format!("rate_{}_limit", g.as_str())),
                    window: text(&format!("rate_{}_window", g.as_str())),
                })
                .collect(),
            switches: SWITCHES
                .iter()
                .map(|n| (*n, switch_label(ct, n), on(n)))
                .collect(),
        }
    }

    /// The merge patch these fields stand for; a number field that is not a number is
    /// named in the error.
    fn patch(&self, ct: &crate::i18n::ConsoleTexts) -> Result<Value, String> {
        let number = |name: &str, v: &str| -> Result<Value, String> {
            v.parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("{name} {}", ct.not_a_number))
        };
        let optional = |v: &str| -> Value {
            if v.is_empty() {
                Value::Null
            } else {
                Value::from(v)
            }
        };
        let mut rates = Map::new();
        for r in &self.rates {
            let value = if r.limit.is_empty() && r.window.is_empty() {
                Value::Null
            } else {
                json!({
                    "limit": number(&format!("rate_limits.{}.limit", r.group), &r.limit)?,
                    "window_secs": number(&format!("rate_limits.{}.window_secs", r.group), &r.window)?,
                })
            };
            rates.insert(r.group.to_string(), value);
        }
        let mut patch = json!({
            "branding": {
                "display_name": optional(&self.display_name),
                "logo_url": optional(&self.logo_url),
                "accent_color": optional(&self.accent_color),
            },
            "password_policy": {
                "min_length": number("password_policy.min_length", &self.min_length)?,
                "require_upper": self.require_upper,
                "require_lower": self.require_lower,
                "require_digit": self.require_digit,
                "require_symbol": self.require_symbol,
                "history": number("password_policy.history", &self.history)?,
            },
            "mfa_policy": self.mfa_policy,
            "console_requires_mfa": self.console_requires_mfa,
            "access_token_ttl": if self.access_token_ttl.is_empty() {
                Value::Null
            } else {
                number("access_token_ttl", &self.access_token_ttl)?
            },
            "refresh_token_reuse_interval": number("refresh_token_reuse_interval", &self.reuse_interval)?,
            "lockout": {
                "threshold": number("lockout.threshold", &self.lockout_threshold)?,
                "window_secs": number("lockout.window_secs", &self.lockout_window)?,
                "duration_secs": number("lockout.duration_secs", &self.lockout_duration)?,
            },
            "rate_limits": Value::Object(rates),
        });
        for (name, _, on) in &self.switches {
            patch[*name] = Value::Bool(*on);
        }
        Ok(patch)
    }
}

#[derive(Template)]
#[template(path = "pages/console/settings.html")]
struct SettingsPage<'a> {
    c: Shell<'a>,
    v: Fields,
    action: String,
    editable: bool,
    /// The preview's stylesheet (the typed colour), when there is one.
    preview_css: Option<String>,
    preview_name: String,
    preview_logo: Option<String>,
    default_name: String,
    notice: Option<&'static str>,
    error: Option<String>,
}

fn page(
    c: &Console<'_>,
    status: StatusCode,
    v: Fields,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Result<HttpResponse, PageError> {
    let preview_css = tenants::is_hex_colour(&v.accent_color).then(|| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("preview", &v.accent_color);
        format!("{}?{}", c.p.endpoint("/branding.css"), q.finish())
    });
    let default_name = c.p.tenant.name.clone();
    c.page(
        status,
        SettingsPage {
            c: c.shell("/settings"),
            action: c.url("/settings"),
            editable: c.can("settings:update"),
            preview_css,
            preview_name: if v.display_name.is_empty() {
                default_name.clone()
            } else {
                v.display_name.clone()
            },
            preview_logo: Some(v.logo_url.clone()).filter(|u| u.starts_with("https://")),
            default_name,
            v,
            notice,
            error,
        },
    )
}

/// `GET {issuer}/admin/settings` (settings:read)
pub async fn settings_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("settings:read")?;
    let v = Fields::of(&p.tenant.settings, c.texts());
    page(&c, StatusCode::OK, v, None, None)
}

/// `POST {issuer}/admin/settings` (settings:update) — `intent=preview` shows the result
/// without saving it; otherwise the settings are saved.
pub async fn settings_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("settings:read")?;
    c.require("settings:update")?;
    let ct = c.texts();
    let typed = Fields::typed(&form, ct);
    let patched = typed
        .patch(ct)
        .map_err(TenantError::InvalidSettings)
        .and_then(|patch| p.tenant.settings.patched(&patch).map(|s| (s, patch)));
    let (settings, patch) = match patched {
        Ok(x) => x,
        Err(TenantError::InvalidSettings(why)) => {
            return page(&c, StatusCode::UNPROCESSABLE_ENTITY, typed, None, Some(why))
        }
        Err(e) => return Err(PageError::unexpected(c.loc, &e)),
    };
    if form.get("intent") == Some("preview") {
        return page(&c, StatusCode::OK, typed, Some(ct.preview_only), None);
    }
    tenants::update_settings(&state.pool, &p.tenant, &settings)
        .await
        .map_err(|e| PageError::unexpected(c.loc, &e))?;
    state.providers.invalidate(&p.tenant.slug);
    let keys = patch
        .as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    c.audit("settings.updated", ("keys", &keys));
    page(
        &c,
        StatusCode::OK,
        Fields::of(&settings, ct),
        Some(ct.saved),
        None,
    )
}
