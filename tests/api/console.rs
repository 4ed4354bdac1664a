//! The tenant's admin console (`{issuer}/admin`) through its forms, as a browser without
//! JavaScript uses it: the sign-in with a second factor it requires, the permission
//! boundaries of each page and form, and the clients pages (create with the secret shown
//! once, edit, rotate the secret, delete), whose changes the admin API and `/token` see.

use regex::Regex;
use serde_json::Value;

use crate::federation::{admin_token, audit_events};
use crate::helpers::{parse_form, spawn_app, TestApp, TestClient, PASSWORD};
use crate::mfa::{code_at, enroll};

pub const ADMIN: &str = "ops@acme.test";

/// The `Location` of a response, absolute.
pub fn location(app: &TestApp, r: &reqwest::Response) -> String {
    let l = r.headers()["location"].to_str().unwrap().to_string();
    if l.starts_with('/') {
        format!("{}{l}", app.address)
    } else {
        l
    }
}

pub async fn get(browser: &reqwest::Client, url: &str) -> reqwest::Response {
    browser.get(url).send().await.unwrap()
}

/// Opens the console and signs in with the password; the response to the sign-in form.
pub async fn password_sign_in(
    app: &TestApp,
    browser: &reqwest::Client,
    email: &str,
) -> reqwest::Response {
    let r = get(browser, &app.url("/admin")).await;
    assert_eq!(r.status(), 303, "the console sends a stranger to sign in");
    let login = location(app, &r);
    assert!(login.contains("/login?request="), "{login}");
    let form = parse_form(&get(browser, &login).await.text().await.unwrap());
    let mut fields = form.hidden.clone();
    fields.push(("email".into(), email.into()));
    fields.push(("password".into(), PASSWORD.into()));
    browser
        .post(&form.action)
        .form(&fields)
        .send()
        .await
        .unwrap()
}

/// Answers the second-factor page at `url` with the current TOTP code of `secret`.
async fn give_code(app: &TestApp, browser: &reqwest::Client, url: &str, secret: &str) -> String {
    give_code_at(app, browser, url, secret, 0).await
}

/// [`give_code`] with the code of `offset` seconds from now (a code is accepted once).
async fn give_code_at(
    app: &TestApp,
    browser: &reqwest::Client,
    url: &str,
    secret: &str,
    offset: i64,
) -> String {
    assert!(url.contains("/mfa?request="), "{url}");
    let form = parse_form(&get(browser, url).await.text().await.unwrap());
    let mut fields = form.hidden.clone();
    fields.push(("code".into(), code_at(secret, offset)));
    let r = browser
        .post(&form.action)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    location(app, &r)
}

/// A console session of a new administrator (role `admin`, TOTP enrolled).
pub async fn admin_console(app: &TestApp) -> reqwest::Client {
    let user = app.create_user_with_roles(ADMIN, &["admin"]).await;
    let secret = enroll(app, &user).await;
    let browser = app.new_browser();
    let r = password_sign_in(app, &browser, ADMIN).await;
    let back = give_code(app, &browser, &location(app, &r), &secret).await;
    assert_eq!(back, app.url("/admin"));
    browser
}

/// Posts a console form found on the page at `page_url` (its CSRF token), with `fields`.
pub async fn submit(
    browser: &reqwest::Client,
    page_url: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let form = parse_form(&get(browser, page_url).await.text().await.unwrap());
    let mut all = form.hidden.clone();
    all.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    browser.post(&form.action).form(&all).send().await.unwrap()
}

/// The CSRF token of the console page at `url` (every form of a page carries the same).
pub async fn csrf(browser: &reqwest::Client, url: &str) -> String {
    let html = get(browser, url).await.text().await.unwrap();
    Regex::new(r#"name="csrf_token" value="([^"]+)""#)
        .unwrap()
        .captures(&html)
        .unwrap_or_else(|| panic!("a console form at {url}: {html}"))[1]
        .to_string()
}

/// Posts `fields` to the console form at `action`, with the CSRF token of the page `from`.
pub async fn post(
    browser: &reqwest::Client,
    from: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let token = csrf(browser, from).await;
    let mut all = vec![("csrf_token".to_string(), token)];
    all.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    browser.post(action).form(&all).send().await.unwrap()
}

/// Turns the tenant's `console_requires_mfa` off.
pub async fn console_mfa_off(app: &TestApp) {
    let mut s = app.tenant.settings.clone();
    s.console_requires_mfa = false;
    portcullis::tenants::update_settings(&app.state.pool, &app.tenant, &s)
        .await
        .unwrap();
    app.state.providers.invalidate("acme");
}

/// A console session (no second factor asked: the tenant turns the requirement off) of a
/// new user holding `role`.
pub async fn console_with_role(app: &TestApp, email: &str, role: &str) -> reqwest::Client {
    console_mfa_off(app).await;
    app.create_user_with_roles(email, &[role]).await;
    let browser = app.new_browser();
    password_sign_in(app, &browser, email).await;
    browser
}

pub fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    html.split(start).nth(1).unwrap().split(end).next().unwrap()
}

#[tokio::test]
async fn the_console_signs_in_with_a_second_factor_and_shows_the_dashboard() {
    let app = spawn_app().await;
    let browser = admin_console(&app).await;
    let r = get(&browser, &app.url("/admin")).await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(html.contains("<h1>Dashboard</h1>"));
    assert!(html.contains(r#"aria-current="page">Dashboard</a>"#));
    assert!(html.contains(">Clients</a>"));
    assert!(
        html.contains(r#"<svg class="chart""#),
        "the chart is drawn on the server"
    );
    // The admin's own sign-in is in the chart, and their session among the active ones.
    assert!(
        html.contains("Sign-ins in the last 24 hours: 1 Successful, 0 Failed"),
        "{html}"
    );
    assert!(between(&html, "Active sessions</h2>", "</section>").contains(">1</p>"));
    assert!(
        html.contains("<td>RS256</td><td>active</td>"),
        "signing keys with their age"
    );
    // Brazilian Portuguese from Accept-Language.
    let pt = browser
        .get(app.url("/admin"))
        .header("accept-language", "pt-BR")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(pt.contains("<h1>Painel</h1>") && pt.contains(r#"<html lang="pt-BR">"#));
}

#[tokio::test]
async fn a_password_only_session_steps_up_and_an_admin_without_a_second_factor_is_told_how() {
    let app = spawn_app().await;
    crate::mfa::set_policy(&app, portcullis::tenants::MfaPolicy::Off).await;
    let user = app.create_user_with_roles(ADMIN, &["admin"]).await;
    let secret = enroll(&app, &user).await;
    let browser = app.new_browser();
    // With the tenant's MFA policy off, the password alone signs in…
    let r = password_sign_in(&app, &browser, ADMIN).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&app, &r), app.url("/admin"));
    // …but the console asks that session for the second factor first (acr 2).
    let r = get(&browser, &app.url("/admin")).await;
    assert_eq!(r.status(), 303);
    let step = location(&app, &r);
    assert!(step.contains("/continue?request="), "{step}");
    let r = get(&browser, &step).await;
    let back = give_code(&app, &browser, &location(&app, &r), &secret).await;
    assert_eq!(back, app.url("/admin"));
    assert_eq!(get(&browser, &back).await.status(), 200);

    // An administrator with no second factor at all is sent to set one up.
    app.create_user_with_roles("new-ops@acme.test", &["admin"])
        .await;
    let browser = app.new_browser();
    password_sign_in(&app, &browser, "new-ops@acme.test").await;
    let r = get(&browser, &app.url("/admin")).await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    assert!(html.contains("The admin console requires two-step verification."));
    assert!(html.contains(&format!(
        r#"<a href="{}">Go to your account</a>"#,
        app.url("/account")
    )));

    // A tenant may turn the requirement off.
    console_mfa_off(&app).await;
    assert_eq!(get(&browser, &app.url("/admin")).await.status(), 200);
}

#[tokio::test]
async fn the_console_is_closed_to_users_without_permissions_and_read_only_with_clients_read() {
    let app = spawn_app().await;
    console_mfa_off(&app).await;
    let client = app.create_client(Default::default()).await;
    // No role: no console.
    app.create_user("ana@example.com").await;
    let browser = app.new_browser();
    password_sign_in(&app, &browser, "ana@example.com").await;
    let r = get(&browser, &app.url("/admin")).await;
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Your account has no administrative permission in this organisation."));
    assert_eq!(
        get(&browser, &app.url("/admin/clients")).await.status(),
        403
    );

    // clients:read only: the list and the client, read-only; no keys on the dashboard.
    portcullis::rbac::create_role(
        &app.state.pool,
        &app.tenant,
        portcullis::rbac::NewRole {
            name: "auditor".into(),
            description: String::new(),
            permissions: vec!["clients:read".into()],
            inherits: vec![],
            client_id: None,
        },
    )
    .await
    .unwrap();
    app.create_user_with_roles("viewer@acme.test", &["auditor"])
        .await;
    let browser = app.new_browser();
    password_sign_in(&app, &browser, "viewer@acme.test").await;
    let dashboard = get(&browser, &app.url("/admin"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!dashboard.contains("Signing keys"), "keys:read is not held");
    let list = get(&browser, &app.url("/admin/clients"))
        .await
        .text()
        .await
        .unwrap();
    assert!(list.contains(&client.id));
    assert!(!list.contains("New client"));
    let page = get(&browser, &app.url(&format!("/admin/clients/{}", client.id)))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("You can view this but not change it."));
    assert!(page.contains(r#"<fieldset class="stack" disabled>"#));
    assert!(!page.contains("Rotate secret") && !page.contains(">Delete</a>"));
    for path in [
        "/admin/clients/new",
        &format!("/admin/clients/{}/delete", client.id),
    ] {
        let r = get(&browser, &app.url(path)).await;
        assert_eq!(r.status(), 403, "{path}");
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("Your roles do not allow this."));
    }
    // A forged save (with a valid CSRF token of this session) is refused and changes nothing.
    let r = submit(
        &browser,
        &app.url(&format!("/admin/clients/{}", client.id)),
        &[
            ("name", "Renamed"),
            ("redirect_uris", crate::helpers::REDIRECT_URI),
        ],
    )
    .await;
    assert_eq!(r.status(), 403);
    let token = admin_token(&app).await;
    let body: Value = app
        .http
        .get(app.url(&format!("/api/v1/admin/clients/{}", client.id)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["name"], "Test app");
}

#[tokio::test]
async fn clients_are_created_edited_rotated_and_deleted_through_the_console_forms() {
    let app = spawn_app().await;
    let browser = admin_console(&app).await;
    // Create: a confidential client_credentials client; its secret is shown once.
    let r = submit(
        &browser,
        &app.url("/admin/clients/new"),
        &[
            ("name", "Billing worker"),
            ("type", "confidential"),
            ("grant_client_credentials", "on"),
            ("scopes", "api"),
            ("access_token_ttl", "600"),
            ("signing_alg", "ES256"),
        ],
    )
    .await;
    assert_eq!(r.status(), 201);
    let html = r.text().await.unwrap();
    assert!(html.contains("Copy the client secret now: it is shown only this once."));
    let id = between(&html, "Client ID: <code>", "</code>").to_string();
    let secret = between(&html, r#"readonly value=""#, "\"").to_string();
    assert!(secret.starts_with("cs_"), "{secret}");
    let worker = TestClient {
        id: id.clone(),
        secret: Some(secret.clone()),
    };
    let r = app
        .token(
            &worker,
            &[("grant_type", "client_credentials"), ("scope", "api")],
        )
        .await;
    assert_eq!(r.status(), 200, "the new client works at /token");
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["expires_in"], 600);

    // The same rules as the admin API: a bad redirect URI is refused with its reason, and
    // the form keeps what was typed.
    let r = submit(
        &browser,
        &app.url("/admin/clients/new"),
        &[
            ("name", "Web app"),
            ("grant_authorization_code", "on"),
            ("redirect_uris", "not a url"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"<p class="error" role="alert">"#), "{html}");
    assert!(html.contains("not a url"));
    let r = submit(
        &browser,
        &app.url("/admin/clients/new"),
        &[
            ("name", "Nothing"),
            ("redirect_uris", "https://app.example/cb"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("at least one grant type is required"));

    // Edit: the name and the lifetime change; the admin API sees it.
    let page = app.url(&format!("/admin/clients/{id}"));
    let r = submit(
        &browser,
        &page,
        &[
            ("name", "Billing worker v2"),
            ("grant_client_credentials", "on"),
            ("scopes", "api"),
            ("access_token_ttl", "300"),
            ("signing_alg", "ES256"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Saved."));
    let token = admin_token(&app).await;
    let get_client = || async {
        app.http
            .get(app.url(&format!("/api/v1/admin/clients/{id}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
    };
    let body: Value = get_client().await.json().await.unwrap();
    assert_eq!(body["data"]["name"], "Billing worker v2");
    assert_eq!(body["data"]["access_token_ttl"], 300);

    // Rotate the secret: a confirmation first; the old secret stops working at once.
    let confirm = get(
        &browser,
        &app.url(&format!("/admin/clients/{id}/rotate-secret")),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(confirm.contains("Replace the client secret? The current one stops working at once."));
    let r = submit(
        &browser,
        &app.url(&format!("/admin/clients/{id}/rotate-secret")),
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let rotated = between(&html, r#"readonly value=""#, "\"").to_string();
    assert_ne!(rotated, secret);
    let r = app
        .token(&worker, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.status(), 401, "the old secret");
    let rotated_worker = TestClient {
        id: id.clone(),
        secret: Some(rotated),
    };
    let r = app
        .token(&rotated_worker, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.status(), 200, "the new secret");

    // Delete, after a confirmation.
    let r = submit(
        &browser,
        &app.url(&format!("/admin/clients/{id}/delete")),
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("The client was deleted."));
    assert_eq!(get_client().await.status(), 404);

    // Every change audited with the console as its source.
    for event in [
        "client.created",
        "client.updated",
        "client.secret_rotated",
        "client.deleted",
    ] {
        let events = audit_events(&app, &token, event).await;
        assert_eq!(events.len(), 1, "{event}: {events:?}");
        assert_eq!(
            events[0]["details"]["source"], "console",
            "{event}: {events:?}"
        );
        assert_eq!(events[0]["details"]["client_id"], id.as_str());
    }
    // A form without its CSRF token changes nothing.
    let r = browser
        .post(app.url("/admin/clients"))
        .form(&[("name", "Forged"), ("grant_client_credentials", "on")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn step_up_permissions_ask_the_console_for_a_fresh_second_factor_before_the_change() {
    let app = spawn_app().await;
    let mut s = app.tenant.settings.clone();
    s.console_requires_mfa = false;
    s.mfa_step_up_permissions = vec!["clients:delete".into()];
    portcullis::tenants::update_settings(&app.state.pool, &app.tenant, &s)
        .await
        .unwrap();
    app.state.providers.invalidate("acme");
    let user = app.create_user_with_roles(ADMIN, &["admin"]).await;
    let secret = enroll(&app, &user).await;
    let client = app.create_client(Default::default()).await;
    let browser = app.new_browser();
    let r = password_sign_in(&app, &browser, ADMIN).await;
    let back = give_code(&app, &browser, &location(&app, &r), &secret).await;
    assert_eq!(back, app.url("/admin"));
    // Within five minutes of the second factor, the change is made.
    let first = app.create_client(Default::default()).await;
    let confirm = app.url(&format!("/admin/clients/{}/delete", first.id));
    assert_eq!(submit(&browser, &confirm, &[]).await.status(), 200);
    assert!(!client_exists(&app, &first.id).await);
    // Ten minutes later (the session's sign-in moved back), it is not.
    portcullis::storage::dispatch!(&app.state.pool, p => {
        sqlx::query("UPDATE browser_sessions SET auth_time = auth_time - 600")
            .execute(p)
            .await
            .unwrap();
    });

    // The confirmation page shows; the change itself is refused until the factor is given.
    let confirm = app.url(&format!("/admin/clients/{}/delete", client.id));
    assert_eq!(get(&browser, &confirm).await.status(), 200);
    let r = submit(&browser, &confirm, &[]).await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("This change needs your second factor, given in the last five minutes."),
        "{html}"
    );
    let step_up = app.url("/admin/step-up");
    assert!(html.contains(&format!(r#"<a href="{step_up}">"#)), "{html}");
    assert!(client_exists(&app, &client.id).await);
    // Other changes are not behind the step-up.
    let rotate = app.url(&format!("/admin/clients/{}/rotate-secret", client.id));
    let r = submit(&browser, &rotate, &[]).await;
    assert_eq!(r.status(), 200, "clients:update is not listed");

    // The step-up is a new sign-in (max_age) with the second factor, back to the console.
    let r = get(&browser, &step_up).await;
    assert_eq!(r.status(), 303);
    let next = location(&app, &r);
    let r = get(&browser, &next).await;
    let login = if r.status() == 303 {
        location(&app, &r)
    } else {
        next
    };
    assert!(login.contains("/login?request="), "{login}");
    let form = parse_form(&get(&browser, &login).await.text().await.unwrap());
    let mut fields = form.hidden.clone();
    fields.push(("email".into(), ADMIN.into()));
    fields.push(("password".into(), PASSWORD.into()));
    let r = browser
        .post(&form.action)
        .form(&fields)
        .send()
        .await
        .unwrap();
    // The next time step's code: the first sign-in's code is used up.
    let back = give_code_at(&app, &browser, &location(&app, &r), &secret, 30).await;
    assert_eq!(back, app.url("/admin"));
    let r = submit(&browser, &confirm, &[]).await;
    assert_eq!(r.status(), 200);
    assert!(!client_exists(&app, &client.id).await);

    // Someone without a second factor has none to give: not asked (the admin API's rule).
    let other = app.create_client(Default::default()).await;
    app.create_user_with_roles("plain@acme.test", &["admin"])
        .await;
    let plain = app.new_browser();
    password_sign_in(&app, &plain, "plain@acme.test").await;
    let confirm = app.url(&format!("/admin/clients/{}/delete", other.id));
    assert_eq!(submit(&plain, &confirm, &[]).await.status(), 200);
    assert!(!client_exists(&app, &other.id).await);
}

async fn client_exists(app: &TestApp, id: &str) -> bool {
    portcullis::clients::find_client(app.state.clients(), &app.tenant, id)
        .await
        .unwrap()
        .is_some()
}
