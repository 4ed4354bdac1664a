//! The platform console at the root `/admin`: its own sign-in (platform accounts, not tenant
//! users), tenants (list, create with keys and roles) and banned addresses (ban, lift), with
//! CSRF on every form and the session ended server-side on sign-out.

use portcullis::storage::audit::AuditFilter;

use crate::console::{admin_console, get, location};
use crate::helpers::{parse_form, spawn_app, TestApp};

const ROOT: &str = "root@platform.test";
const ROOT_PASSWORD: &str = "Platform-Horse-42";

fn root_url(app: &TestApp, path: &str) -> String {
    format!("{}{path}", app.address)
}

async fn platform_admin(app: &TestApp) -> String {
    portcullis::platform_admins::create(&app.state.pool, &app.state.hasher, ROOT, ROOT_PASSWORD)
        .await
        .unwrap()
        .id
}

/// Opens `/admin`, is sent to the platform sign-in, and posts `email` and `password`.
async fn sign_in(
    app: &TestApp,
    browser: &reqwest::Client,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let r = get(browser, &root_url(app, "/admin")).await;
    assert_eq!(r.status(), 303);
    let login = location(app, &r);
    assert_eq!(login, root_url(app, "/admin/login"));
    let html = get(browser, &login).await.text().await.unwrap();
    assert!(html.contains("Sign in to the platform console"), "{html}");
    let form = parse_form(&html);
    let mut fields = form.hidden.clone();
    fields.push(("email".into(), email.into()));
    fields.push(("password".into(), password.into()));
    browser
        .post(root_url(app, &form.action))
        .form(&fields)
        .send()
        .await
        .unwrap()
}

/// Posts `fields` to the form at `action` with the CSRF token of the page at `from`.
async fn post(
    browser: &reqwest::Client,
    app: &TestApp,
    from: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    crate::console::post(
        browser,
        &root_url(app, from),
        &root_url(app, action),
        fields,
    )
    .await
}

#[tokio::test]
async fn platform_administrators_sign_in_create_tenants_and_manage_bans() {
    let app = spawn_app().await;
    let admin_id = platform_admin(&app).await;

    // Wrong password, unknown address and a tenant's own administrator get the same answer.
    app.create_user_with_roles("tenant.ops@acme.test", &["admin"])
        .await;
    let mut refusals = Vec::new();
    let csrf = regex::Regex::new(r#"name="csrf_token" value="[^"]*""#).unwrap();
    for (email, password) in [
        (ROOT, "Wrong-Horse-4242"),
        ("nobody@platform.test", ROOT_PASSWORD),
        ("tenant.ops@acme.test", crate::helpers::PASSWORD),
    ] {
        let browser = app.new_browser();
        let r = sign_in(&app, &browser, email, password).await;
        assert_eq!(r.status(), 401, "{email}");
        let html = r.text().await.unwrap();
        assert!(html.contains("Invalid e-mail or password."), "{html}");
        refusals.push(csrf.replace(&html.replace(email, "EMAIL"), "").to_string());
        assert_eq!(
            get(&browser, &root_url(&app, "/admin")).await.status(),
            303,
            "no session"
        );
    }
    assert!(refusals.windows(2).all(|w| w[0] == w[1]), "{refusals:?}");
    // A tenant console session is not a platform session.
    let tenant_admin = admin_console(&app).await;
    assert_eq!(
        get(&tenant_admin, &root_url(&app, "/admin")).await.status(),
        303
    );

    let browser = app.new_browser();
    let r = sign_in(&app, &browser, ROOT, ROOT_PASSWORD).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&app, &r), root_url(&app, "/admin"));
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.starts_with("portcullis_platform="),
        "{set_cookie}"
    );
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("Path=/"));
    let html = get(&browser, &root_url(&app, "/admin"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("<code>acme</code>"), "{html}");
    assert!(
        html.contains(&format!(r#"href="{}/admin""#, app.url(""))),
        "{html}"
    );
    assert!(html.contains(ROOT));

    // New tenant: created with its keys and built-in roles; bad and taken slugs refused.
    let r = post(
        &browser,
        &app,
        "/admin",
        "/admin/tenants",
        &[("slug", "globex"), ("name", "Globex")],
    )
    .await;
    assert_eq!(r.status(), 201);
    let html = r.text().await.unwrap();
    assert!(html.contains("Tenant created"), "{html}");
    assert!(html.contains("<code>globex</code>"));
    let globex = portcullis::tenants::find_tenant(&app.state.pool, "globex")
        .await
        .unwrap();
    assert_eq!(globex.name, "Globex");
    let jwks: serde_json::Value = app
        .http
        .get(root_url(&app, "/t/globex/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!jwks["keys"].as_array().unwrap().is_empty());
    let r = post(
        &browser,
        &app,
        "/admin",
        "/admin/tenants",
        &[("slug", "globex")],
    )
    .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("tenant already exists"));
    let r = post(
        &browser,
        &app,
        "/admin",
        "/admin/tenants",
        &[("slug", "Bad Slug")],
    )
    .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("tenant slug must be 2-63 characters"),
        "{html}"
    );
    assert!(html.contains(r#"value="Bad Slug""#));
    // A form without this session's CSRF token changes nothing.
    let r = browser
        .post(root_url(&app, "/admin/tenants"))
        .form(&[("slug", "initech"), ("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(portcullis::tenants::find_tenant(&app.state.pool, "initech")
        .await
        .is_err());
    let audit = portcullis::audit::query(
        &app.state.audit,
        &globex,
        &AuditFilter {
            event: Some("tenant.created".into()),
            ..AuditFilter::default()
        },
        10,
    )
    .await
    .unwrap()
    .0;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["actor"], format!("platform:{admin_id}"));
    assert_eq!(audit[0]["details"]["source"], "console");

    // Bans: ban with a lifetime, refuse what is not an address, lift.
    let html = get(&browser, &root_url(&app, "/admin/bans"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("No banned address."), "{html}");
    let r = post(
        &browser,
        &app,
        "/admin/bans",
        "/admin/bans",
        &[
            ("ip", "203.0.113.7"),
            ("reason", "credential stuffing"),
            ("expires_in_hours", "2"),
        ],
    )
    .await;
    assert_eq!(r.status(), 201);
    let html = r.text().await.unwrap();
    assert!(html.contains("Address banned"), "{html}");
    assert!(html.contains("<code>203.0.113.7</code>"));
    assert!(html.contains(&format!("<td>platform:{admin_id}</td>")));
    let bans = portcullis::protection::list_bans(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].reason, "credential stuffing");
    let left = bans[0].expires_at.unwrap() - portcullis::storage::now();
    assert!((7000..=7200).contains(&left), "{left}");
    let r = post(
        &browser,
        &app,
        "/admin/bans",
        "/admin/bans",
        &[("ip", "not-an-address")],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains(r#"value="not-an-address""#));
    let r = post(
        &browser,
        &app,
        "/admin/bans",
        "/admin/bans/lift",
        &[("ip", "203.0.113.7")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Ban lifted"), "{html}");
    assert!(portcullis::protection::list_bans(&app.state.pool)
        .await
        .unwrap()
        .is_empty());
    let r = post(
        &browser,
        &app,
        "/admin/bans",
        "/admin/bans/lift",
        &[("ip", "203.0.113.7")],
    )
    .await;
    assert_eq!(r.status(), 404);

    // Sign-out asks first, ends the session on the server (a copied cookie is dead too).
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let r = get(&browser, &root_url(&app, "/admin/logout")).await;
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Sign out of the platform console?"));
    let r = post(&browser, &app, "/admin/logout", "/admin/logout", &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&app, &r), root_url(&app, "/admin/login"));
    assert_eq!(get(&browser, &root_url(&app, "/admin")).await.status(), 303);
    let copied = app
        .new_browser()
        .get(root_url(&app, "/admin"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(copied.status(), 303);
}

#[tokio::test]
async fn platform_sign_in_locks_an_address_after_five_failures_and_sessions_expire() {
    let app = spawn_app().await;
    platform_admin(&app).await;

    // Five wrong passwords lock the address, known or not, even for the right password.
    for (email, password) in [
        (ROOT, "Wrong-Horse-4242"),
        ("nobody@platform.test", ROOT_PASSWORD),
    ] {
        for attempt in 1..=5 {
            let r = sign_in(&app, &app.new_browser(), email, "Wrong-Horse-4242").await;
            assert_eq!(r.status(), if attempt < 5 { 401 } else { 423 }, "{email}");
        }
        let r = sign_in(&app, &app.new_browser(), email, password).await;
        assert_eq!(r.status(), 423, "{email}");
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("Too many failed sign-ins for this address: try again in 15 minutes."));
    }
    // The lock is the platform's own: a tenant user of the same address is not locked out.
    app.create_user(ROOT).await;
    assert!(!app.login(ROOT).await.is_empty());

    // A lock that has passed: the right password signs in, and the count starts again.
    portcullis::storage::dispatch!(&app.state.pool, p => {
        sqlx::query("UPDATE platform_login_failures SET locked_until = 1")
            .execute(p)
            .await
            .unwrap();
    });
    let browser = app.new_browser();
    let r = sign_in(&app, &browser, ROOT, ROOT_PASSWORD).await;
    assert_eq!(r.status(), 303);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    assert!(set_cookie.contains("Max-Age=28800"), "{set_cookie}");
    assert_eq!(get(&browser, &root_url(&app, "/admin")).await.status(), 200);
    // A new password (`portcullis admin password`) ends the sessions and takes the old one's place.
    portcullis::platform_admins::set_password(
        &app.state.pool,
        &app.state.hasher,
        ROOT,
        "Another-Horse-43",
    )
    .await
    .unwrap();
    assert_eq!(get(&browser, &root_url(&app, "/admin")).await.status(), 303);
    assert_eq!(
        sign_in(&app, &app.new_browser(), ROOT, ROOT_PASSWORD)
            .await
            .status(),
        401
    );
    let r = sign_in(&app, &browser, ROOT, "Another-Horse-43").await;
    assert_eq!(r.status(), 303);
    assert_eq!(get(&browser, &root_url(&app, "/admin")).await.status(), 200);
    // Eight hours later the session is over.
    portcullis::storage::dispatch!(&app.state.pool, p => {
        sqlx::query("UPDATE platform_sessions SET expires_at = $1")
            .bind(portcullis::storage::now())
            .execute(p)
            .await
            .unwrap();
    });
    let r = get(&browser, &root_url(&app, "/admin")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&app, &r), root_url(&app, "/admin/login"));
    // The sign-in form's CSRF token is bound to it: it opens no console form.
    let r = post(
        &browser,
        &app,
        "/admin/login",
        "/admin/tenants",
        &[("slug", "late")],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(portcullis::tenants::find_tenant(&app.state.pool, "late")
        .await
        .is_err());
}
