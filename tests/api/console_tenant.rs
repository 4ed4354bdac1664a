//! The console's tenant-wide pages: signing keys (list, rotate after a confirmation) and the
//! audit log (filters, cursor pages, CSV export), with their permission boundaries.

use regex::Regex;

use crate::console::{admin_console, console_with_role, get, post, submit};
use crate::federation::{admin_token, audit_events};
use crate::helpers::{spawn_app, TestApp};

async fn console_with_permissions(
    app: &TestApp,
    email: &str,
    permissions: &[&str],
) -> reqwest::Client {
    let role = email.split('@').next().unwrap().to_string();
    portcullis::rbac::create_role(
        &app.state.pool,
        &app.tenant,
        portcullis::rbac::NewRole {
            name: role.clone(),
            description: String::new(),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            inherits: vec![],
            client_id: None,
        },
    )
    .await
    .unwrap();
    console_with_role(app, email, &role).await
}

async fn active_kids(app: &TestApp) -> Vec<String> {
    portcullis::keys::list_keys(&app.state.pool, &app.tenant, 86_400)
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.state == "active")
        .map(|k| k.kid)
        .collect()
}

#[tokio::test]
async fn signing_keys_are_listed_and_rotated_after_a_confirmation() {
    let app = spawn_app().await;
    let browser = admin_console(&app).await;
    let html = get(&browser, &app.url("/admin/keys"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("<td>ES256</td><td>active</td>"), "{html}");
    assert!(html.contains("<td>ES256</td><td>next</td>"));
    assert!(html.contains(">Rotate keys now</a>"));
    let before = active_kids(&app).await;
    let confirm = get(&browser, &app.url("/admin/keys/rotate"))
        .await
        .text()
        .await
        .unwrap();
    assert!(confirm.contains("Rotate every signing key now?"));
    let r = submit(&browser, &app.url("/admin/keys/rotate"), &[]).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Keys rotated."));
    assert!(html.contains("<td>RS256</td><td>retired</td>"), "{html}");
    let after = active_kids(&app).await;
    assert_eq!(after.len(), before.len());
    assert!(
        after.iter().all(|k| !before.contains(k)),
        "every algorithm moved on"
    );
    // The published JWKS has the new active keys at once.
    let jwks: serde_json::Value = app
        .http
        .get(app.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(after.iter().all(|k| published.contains(&k.as_str())));
    let token = admin_token(&app).await;
    let events = audit_events(&app, &token, "keys.rotated").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["details"]["source"], "console");

    // keys:read without keys:rotate: the list, no rotation (users:create gives this visitor
    // a console form, hence a CSRF token, to forge the rotation with).
    let browser =
        console_with_permissions(&app, "keyreader@acme.test", &["keys:read", "users:create"]).await;
    let html = get(&browser, &app.url("/admin/keys"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("<td>ES256</td><td>active</td>") && !html.contains("Rotate keys now"));
    assert_eq!(
        get(&browser, &app.url("/admin/keys/rotate")).await.status(),
        403
    );
    let r = post(
        &browser,
        &app.url("/admin/users/new"),
        &app.url("/admin/keys/rotate"),
        &[],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        active_kids(&app).await,
        after,
        "a refused rotation changes nothing"
    );
    assert_eq!(get(&browser, &app.url("/admin/audit")).await.status(), 403);
}

#[tokio::test]
async fn the_audit_log_filters_pages_and_exports_csv() {
    let app = spawn_app().await;
    let browser = admin_console(&app).await;
    for i in 0..60 {
        portcullis::audit::record(
            &app.state.audit,
            portcullis::audit::AuditEvent::new("demo.event", Some(&app.tenant))
                .actor(Some(if i % 2 == 0 { "even" } else { "odd" }))
                .detail("n", i),
            &portcullis::audit::Context {
                ip: Some("=HYPERLINK(\"http://evil\")".into()),
                user_agent: Some("demo, \"agent\"".into()),
                correlation_id: None,
            },
        );
    }
    app.state.audit.flush().await;

    // The first page: 50 of the 60, newest first, and the next page.
    let html = get(&browser, &app.url("/admin/audit?event=demo.event"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        html.matches("<td><code>demo.event</code></td>").count(),
        50,
        "{html}"
    );
    assert!(
        html.contains(r#"<code>{&#34;n&#34;:59}</code>"#),
        "newest first: {html}"
    );
    let next = Regex::new(r#"<a href="([^"]+)" rel="next">Next page</a>"#)
        .unwrap()
        .captures(&html)
        .expect("a next page")[1]
        .replace("&#38;", "&");
    let html = get(&browser, &next).await.text().await.unwrap();
    assert_eq!(html.matches("<td><code>demo.event</code></td>").count(), 10);
    assert!(html.contains(r#"<code>{&#34;n&#34;:0}</code>"#));
    // By actor, and by dates: today holds them, tomorrow does not.
    let html = get(
        &browser,
        &app.url("/admin/audit?event=demo.event&actor=odd"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(html.matches("<td><code>demo.event</code></td>").count(), 30);
    let today = portcullis::storage::format_instant(portcullis::storage::now())[..10].to_string();
    let tomorrow =
        portcullis::storage::format_instant(portcullis::storage::now() + 86_400)[..10].to_string();
    let html = get(
        &browser,
        &app.url(&format!(
            "/admin/audit?event=demo.event&actor=odd&from={today}&to={today}"
        )),
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(html.matches("<td><code>demo.event</code></td>").count(), 30);
    let html = get(
        &browser,
        &app.url(&format!("/admin/audit?event=demo.event&from={tomorrow}")),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(html.contains("No events."));
    let r = get(&browser, &app.url("/admin/audit?from=07%2F12%2F2026")).await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Dates are written YYYY-MM-DD."));

    // CSV of the same selection: every event, quoted where needed, formulas defused.
    let r = get(&browser, &app.url("/admin/audit.csv?event=demo.event")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"audit-acme.csv\""
    );
    assert_eq!(r.headers()["cache-control"], "no-store");
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "created_at,event,actor,client_id,ip,user_agent,correlation_id,details"
    );
    assert_eq!(lines.len(), 61);
    assert!(
        lines[1].contains(r#",demo.event,odd,,"'=HYPERLINK(""http://evil"")","demo, ""agent""","#),
        "{}",
        lines[1]
    );
    assert!(lines[1].ends_with(r#","{""n"":59}""#), "{}", lines[1]);
    let token = admin_token(&app).await;
    let events = audit_events(&app, &token, "audit.exported").await;
    assert_eq!(events[0]["details"]["events"], "60");
    assert_eq!(events[0]["details"]["source"], "console");
}

/// The key shown once on a secret page.
fn shown_key(html: &str) -> String {
    Regex::new(r#"id="secret" type="text" readonly value="(ak_[^"]+)""#)
        .unwrap()
        .captures(html)
        .unwrap_or_else(|| panic!("a key: {html}"))[1]
        .to_string()
}

async fn users_status(app: &TestApp, key: &str) -> u16 {
    app.http
        .get(app.url("/api/v1/admin/users"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn api_keys_are_created_shown_once_rotated_and_revoked_in_the_console() {
    let app = spawn_app().await;
    let browser = admin_console(&app).await;
    let page = app.url("/admin/api-keys");
    assert!(get(&browser, &page)
        .await
        .text()
        .await
        .unwrap()
        .contains("No API keys."));
    // A lifetime out of range is refused on the form, which keeps what was typed.
    let r = post(
        &browser,
        &page,
        &page,
        &[
            ("name", "CI"),
            ("scopes", "users:read"),
            ("expires_in_days", "0"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("expires_in_days must be 1-365"), "{html}");
    assert!(html.contains(r#"value="users:read""#));
    let r = post(
        &browser,
        &page,
        &page,
        &[
            ("name", "CI"),
            ("scopes", "users:read"),
            ("expires_in_days", "30"),
        ],
    )
    .await;
    assert_eq!(r.status(), 201);
    let html = r.text().await.unwrap();
    assert!(html.contains("Copy the API key now: it is shown only this once."));
    let first = shown_key(&html);
    assert_eq!(users_status(&app, &first).await, 200);
    let list = get(&browser, &page).await.text().await.unwrap();
    assert!(
        list.contains(&format!("<code>{}</code>", &first[..11])),
        "{list}"
    );
    assert!(!list.contains(&first), "the list never shows the key");
    assert!(list.contains("<td>Active</td>"));

    // Rotate with a grace period: both work for now.
    let id = portcullis::api_keys::list(app.state.api_keys(), Some(&app.tenant))
        .await
        .unwrap()[0]
        .id
        .clone();
    let rotate = app.url(&format!("/admin/api-keys/{id}/rotate"));
    assert!(get(&browser, &rotate)
        .await
        .text()
        .await
        .unwrap()
        .contains("Rotate this key?"));
    let r = submit(&browser, &rotate, &[("grace_period_hours", "1")]).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Key rotated."));
    let second = shown_key(&html);
    assert_ne!(first, second);
    assert_eq!(users_status(&app, &second).await, 200);
    assert_eq!(users_status(&app, &first).await, 200, "the grace period");
    let r = submit(&browser, &rotate, &[("grace_period_hours", "9999")]).await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("grace period must be 0-30 days"));

    // Revoke after the confirmation page: both stop working.
    let revoke = app.url(&format!("/admin/api-keys/{id}/revoke"));
    assert!(get(&browser, &revoke)
        .await
        .text()
        .await
        .unwrap()
        .contains("Revoke this key? It stops working at once."));
    let r = submit(&browser, &revoke, &[]).await;
    let html = r.text().await.unwrap();
    assert!(html.contains("Key revoked.") && html.contains("<td>Revoked</td>"));
    assert_eq!(users_status(&app, &second).await, 401);
    assert_eq!(users_status(&app, &first).await, 401);

    let token = admin_token(&app).await;
    for event in ["apikey.created", "apikey.rotated", "apikey.revoked"] {
        let events = audit_events(&app, &token, event).await;
        assert_eq!(events.len(), 1, "{event}");
        assert_eq!(events[0]["details"]["source"], "console");
    }

    // A key holds only permissions its creator holds.
    let browser = console_with_permissions(
        &app,
        "keymaker@acme.test",
        &["apikeys:read", "apikeys:create", "users:read"],
    )
    .await;
    let r = post(
        &browser,
        &page,
        &page,
        &[("name", "wide"), ("scopes", "users:read *")],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Your roles do not allow this. (*)"));
    let html = get(&browser, &page).await.text().await.unwrap();
    assert!(!html.contains(">Revoke</a>"), "apikeys:revoke is not held");
    assert_eq!(get(&browser, &revoke).await.status(), 403);
}

/// Every field of the settings form with the default settings' values, then `changes`.
fn settings_form(changes: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = [
        ("display_name", ""),
        ("logo_url", ""),
        ("accent_color", ""),
        ("min_length", "12"),
        ("require_upper", "on"),
        ("require_lower", "on"),
        ("require_digit", "on"),
        ("require_symbol", "on"),
        ("history", "5"),
        ("mfa_policy", "optional"),
        ("console_requires_mfa", "on"),
        ("access_token_ttl", ""),
        ("refresh_token_reuse_interval", "0"),
        ("lockout_threshold", "5"),
        ("lockout_window_secs", "900"),
        ("lockout_duration_secs", "900"),
        ("intent", "save"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in changes {
        fields.retain(|(name, _)| name != k);
        if !v.is_empty() {
            fields.push((k.to_string(), v.to_string()));
        }
    }
    fields
}

async fn post_settings(
    app: &TestApp,
    browser: &reqwest::Client,
    changes: &[(&str, &str)],
) -> reqwest::Response {
    let page = app.url("/admin/settings");
    let fields = settings_form(changes);
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    post(browser, &page, &page, &refs).await
}

async fn stored_settings(app: &TestApp) -> portcullis::tenants::TenantSettings {
    portcullis::tenants::find_tenant(&app.state.pool, "acme")
        .await
        .unwrap()
        .settings
}

#[tokio::test]
async fn settings_are_previewed_checked_and_saved_in_the_console() {
    let app = spawn_app().await;
    let browser = admin_console(&app).await;
    let html = get(&browser, &app.url("/admin/settings"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html
        .contains(r#"<figcaption id="preview-caption">Preview of the sign-in page</figcaption>"#));
    assert!(html.contains(r#"<script src="/static/console.js" defer></script>"#));
    let before = stored_settings(&app).await;

    // "Preview" draws the typed branding without saving it.
    let r = post_settings(
        &app,
        &browser,
        &[
            ("display_name", "Acme Bank"),
            ("accent_color", "#aa0000"),
            ("intent", "preview"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Preview only: nothing was saved."));
    assert!(
        html.contains(r#"data-preview-name>Acme Bank</p>"#),
        "{html}"
    );
    let css_link = app.url("/branding.css?preview=%23aa0000");
    assert!(
        html.contains(&format!(r#"<link rel="stylesheet" href="{css_link}">"#)),
        "{html}"
    );
    assert_eq!(stored_settings(&app).await, before);
    let css = app
        .http
        .get(&css_link)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        css.contains(".brand-preview { --accent: #aa0000; }"),
        "{css}"
    );
    let css = app
        .http
        .get(app.url("/branding.css?preview=red;}body{display:none"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !css.contains("brand-preview"),
        "only a #rrggbb colour is written: {css}"
    );

    // Refusals name the field and change nothing.
    for (changes, message) in [
        (
            vec![("accent_color", "red")],
            "branding.accent_color must be a colour written #rrggbb",
        ),
        (
            vec![("logo_url", "http://logo.test/a.png")],
            "branding.logo_url must be an https URL",
        ),
        (
            vec![("min_length", "twelve")],
            "password_policy.min_length must be a whole number",
        ),
        (
            vec![("min_length", "4")],
            "password_policy.min_length must be 8-128",
        ),
        (
            vec![("access_token_ttl", "5")],
            "access_token_ttl must be 60-86400 seconds",
        ),
        (
            vec![
                ("rate_credentials_limit", "0"),
                ("rate_credentials_window", "60"),
            ],
            "rate_limits.credentials: limit must be at least 1 and window_secs 1-86400",
        ),
    ] {
        let r = post_settings(&app, &browser, &changes).await;
        assert_eq!(r.status(), 422, "{message}");
        let html = r.text().await.unwrap();
        assert!(html.contains(message), "{message}: {html}");
    }
    assert_eq!(stored_settings(&app).await, before);

    // Saved: the sign-in page and the admin API see it.
    let r = post_settings(
        &app,
        &browser,
        &[
            ("display_name", "Acme Bank"),
            ("accent_color", "#aa0000"),
            ("min_length", "14"),
            ("mfa_policy", "required"),
            ("rate_credentials_limit", "10"),
            ("rate_credentials_window", "60"),
            ("self_registration", "on"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Saved."));
    let s = stored_settings(&app).await;
    assert_eq!(s.branding.display_name.as_deref(), Some("Acme Bank"));
    assert_eq!(s.password_policy.min_length, 14);
    assert_eq!(s.mfa_policy, portcullis::tenants::MfaPolicy::Required);
    assert!(s.self_registration && s.console_requires_mfa);
    assert_eq!(
        s.rate_limits[&portcullis::config::Group::Credentials].limit,
        10
    );
    let css = app
        .http
        .get(app.url("/branding.css"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(css.contains("--accent: #aa0000"), "{css}");
    let token = admin_token(&app).await;
    let events = audit_events(&app, &token, "settings.updated").await;
    assert_eq!(events[0]["details"]["source"], "console");
    // The admin API keeps the same rules.
    let r = app
        .http
        .patch(app.url("/api/v1/admin/settings"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"branding": {"accent_color": "blue"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "VALIDATION_FAILED");
    assert_eq!(
        body["error"]["message"],
        "branding.accent_color must be a colour written #rrggbb"
    );

    // settings:read alone: read-only, and a forged save is refused.
    let browser = console_with_permissions(
        &app,
        "settingsreader@acme.test",
        &["settings:read", "users:create"],
    )
    .await;
    let html = get(&browser, &app.url("/admin/settings"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"<fieldset class="stack" disabled>"#));
    let fields = settings_form(&[]);
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = post(
        &browser,
        &app.url("/admin/users/new"),
        &app.url("/admin/settings"),
        &refs,
    )
    .await;
    assert_eq!(r.status(), 403);
}
