//! The console's tenant-wide pages: signing keys (list, rotate after a confirmation) and the
//! audit log (filters, cursor pages, CSV export), with their permission boundaries.

use regex::Regex;

use crate::console::{admin_console, get, password_sign_in, post, submit};
use crate::federation::{admin_token, audit_events};
use crate::helpers::{spawn_app, TestApp};

async fn console_with_permissions(
    app: &TestApp,
    email: &str,
    permissions: &[&str],
) -> reqwest::Client {
    let mut s = app.tenant.settings.clone();
    s.console_requires_mfa = false;
    portcullis::tenants::update_settings(&app.state.pool, &app.tenant, &s)
        .await
        .unwrap();
    app.state.providers.invalidate("acme");
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
    app.create_user_with_roles(email, &[&role]).await;
    let browser = app.new_browser();
    password_sign_in(app, &browser, email).await;
    browser
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
