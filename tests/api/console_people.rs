//! The console's users and roles pages through their forms (no JavaScript), with the
//! permission boundaries of each, and the role update/delete and user disable/enable/reset-mfa
//! endpoints the admin API gained with them (the console and the API call the same domain
//! functions, so each rule is asserted once through each door).

use regex::Regex;
use serde_json::{json, Value};

use crate::console::{
    admin_console, between, console_with_role, get, password_sign_in, post, submit,
};
use crate::federation::{admin_token, audit_events};
use crate::helpers::{spawn_app, TestApp};

async fn role_id(app: &TestApp, name: &str) -> String {
    portcullis::rbac::find_role(&app.state.pool, &app.tenant, name)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("role {name}"))
        .id
}

async fn new_role(app: &TestApp, name: &str, permissions: &[&str], inherits: &[&str]) {
    portcullis::rbac::create_role(
        &app.state.pool,
        &app.tenant,
        portcullis::rbac::NewRole {
            name: name.into(),
            description: String::new(),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            inherits: inherits.iter().map(|p| p.to_string()).collect(),
            client_id: None,
        },
    )
    .await
    .unwrap();
}

async fn user(app: &TestApp, id: &str) -> Option<portcullis::accounts::User> {
    portcullis::accounts::find_user(&app.state.pool, &app.tenant, id)
        .await
        .unwrap()
}

#[tokio::test]
async fn users_are_searched_paged_created_disabled_reset_given_roles_and_deleted_in_the_console() {
    let app = spawn_app().await;
    let browser = admin_console(&app).await;
    let ana = app.create_user("ana@example.com").await;
    for i in 0..25 {
        app.create_user(&format!("user{i:02}@example.com")).await;
    }

    // Search by a part of the e-mail address, case-insensitively.
    let html = get(&browser, &app.url("/admin/users?q=ANA%40"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("ana@example.com") && !html.contains("user01@example.com"));
    // 27 users: a page of 25 and a link to the next.
    let html = get(&browser, &app.url("/admin/users"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(html.matches("<tr><td><a href=").count(), 25);
    let next = Regex::new(r#"<a href="([^"]+)" rel="next">Next page</a>"#)
        .unwrap()
        .captures(&html)
        .expect("a next page")[1]
        .replace("&#38;", "&");
    let html = get(&browser, &next).await.text().await.unwrap();
    assert_eq!(html.matches("<tr><td><a href=").count(), 2, "{next}");
    assert!(!html.contains("rel=\"next\""));

    // Create: a bad address is refused on the form; a good one is created.
    let r = submit(
        &browser,
        &app.url("/admin/users/new"),
        &[("email", "not-an-address"), ("name", "Carla")],
    )
    .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"class="error" role="alert""#), "{html}");
    assert!(
        html.contains(r#"value="Carla""#),
        "the form keeps what was typed"
    );
    let r = submit(
        &browser,
        &app.url("/admin/users/new"),
        &[("email", "carla@example.com"), ("name", "Carla")],
    )
    .await;
    assert_eq!(r.status(), 201);
    assert!(r.text().await.unwrap().contains("User created."));

    // Ana signs in somewhere; disabling her (after a confirmation page) ends that session.
    let ana_browser = app.new_browser();
    password_sign_in(&app, &ana_browser, "ana@example.com").await;
    let page = app.url(&format!("/admin/users/{ana}"));
    let html = get(&browser, &page).await.text().await.unwrap();
    assert!(between(&html, "Sessions</h2>", "</section>").contains("<td>"));
    let confirm = get(&browser, &format!("{page}/disable"))
        .await
        .text()
        .await
        .unwrap();
    assert!(confirm.contains("Disable this user? They are signed out everywhere"));
    let r = submit(&browser, &format!("{page}/disable"), &[]).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("User disabled and signed out everywhere."));
    assert!(html.contains("<strong>Disabled</strong>"));
    assert!(user(&app, &ana).await.unwrap().disabled);
    assert!(
        portcullis::sessions::list_user_sessions(&app.state.pool, &app.tenant, &ana)
            .await
            .unwrap()
            .is_empty()
    );
    let r = post(&browser, &page, &format!("{page}/enable"), &[]).await;
    assert!(r.text().await.unwrap().contains("User enabled."));
    assert!(!user(&app, &ana).await.unwrap().disabled);

    // Reset her second factors: TOTP and backup codes go.
    crate::mfa::enroll(&app, &ana).await;
    assert!(get(&browser, &page)
        .await
        .text()
        .await
        .unwrap()
        .contains("Authenticator app: Yes"));
    let r = submit(&browser, &format!("{page}/reset-mfa"), &[]).await;
    assert!(r.text().await.unwrap().contains("Second factors removed."));
    assert!(
        !portcullis::mfa::second_factors(&app.state.pool, &app.tenant, &ana, true)
            .await
            .unwrap()
            .any()
    );

    // Profile names change; the other claims stay.
    let r = post(
        &browser,
        &page,
        &page,
        &[
            ("name", "Ana Lima"),
            ("given_name", "Ana"),
            ("family_name", "Lima"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        user(&app, &ana)
            .await
            .unwrap()
            .profile
            .family_name
            .as_deref(),
        Some("Lima")
    );

    // Roles: add, then take back.
    new_role(&app, "support", &["users:read"], &[]).await;
    let support = role_id(&app, "support").await;
    let r = post(
        &browser,
        &page,
        &format!("{page}/roles"),
        &[("role", &support)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Role added.") && html.contains("<span>support</span>"));
    let r = post(
        &browser,
        &page,
        &format!("{page}/roles/{support}/remove"),
        &[],
    )
    .await;
    assert!(r.text().await.unwrap().contains("Role removed."));
    assert!(
        portcullis::rbac::user_roles(&app.state.pool, &app.tenant, &ana)
            .await
            .unwrap()
            .is_empty()
    );

    // Delete, after a confirmation page.
    assert!(get(&browser, &format!("{page}/delete"))
        .await
        .text()
        .await
        .unwrap()
        .contains("Delete this user with their sessions, tokens and roles?"));
    let r = submit(&browser, &format!("{page}/delete"), &[]).await;
    assert!(r.text().await.unwrap().contains("User deleted."));
    assert!(user(&app, &ana).await.is_none());
    assert_eq!(get(&browser, &page).await.status(), 404);

    // Every write audited with the console as its source.
    let token = admin_token(&app).await;
    for event in [
        "user.created",
        "user.disabled",
        "user.enabled",
        "user.mfa_reset",
        "user.updated",
        "role.assigned",
        "role.unassigned",
        "user.deleted",
    ] {
        let events = audit_events(&app, &token, event).await;
        assert!(
            events.iter().any(|e| e["details"]["source"] == "console"),
            "{event}: {events:?}"
        );
    }
}

#[tokio::test]
async fn the_users_pages_hold_to_the_permissions_of_the_visitor() {
    let app = spawn_app().await;
    new_role(&app, "helpdesk", &["users:read", "users:roles:assign"], &[]).await;
    new_role(&app, "support", &["users:read"], &[]).await;
    let browser = console_with_role(&app, "help@acme.test", "helpdesk").await;
    let ana = app.create_user("ana@example.com").await;
    let page = app.url(&format!("/admin/users/{ana}"));

    // users:read: the page, read-only, with no action.
    let html = get(&browser, &page).await.text().await.unwrap();
    assert!(html.contains(r#"<fieldset class="stack" disabled>"#));
    assert!(!html.contains(">Disable</a>") && !html.contains(">Delete</a>"));
    assert!(!html.contains("New user"));
    for path in ["/disable", "/reset-mfa", "/delete"] {
        let r = get(&browser, &format!("{page}{path}")).await;
        assert_eq!(r.status(), 403, "{path}");
    }
    // A forged disable (valid CSRF token of this session) is refused and changes nothing.
    let r = post(&browser, &page, &format!("{page}/disable"), &[]).await;
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Your roles do not allow this."));
    assert!(!user(&app, &ana).await.unwrap().disabled);

    // users:roles:assign hands out only roles whose permissions the visitor holds.
    let support = role_id(&app, "support").await;
    let r = post(
        &browser,
        &page,
        &format!("{page}/roles"),
        &[("role", &support)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let admin = role_id(&app, "admin").await;
    let r = post(
        &browser,
        &page,
        &format!("{page}/roles"),
        &[("role", &admin)],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Your roles do not allow this. (*)"));
    let held = portcullis::rbac::user_roles(&app.state.pool, &app.tenant, &ana)
        .await
        .unwrap();
    assert_eq!(
        held.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["support"]
    );
    // Without roles:read, no roles pages.
    let browser = console_with_role(&app, "supp@acme.test", "support").await;
    assert_eq!(
        get(&browser, &app.url("/admin/roles")).await.status(),
        403,
        "roles:read is not held"
    );
}

#[tokio::test]
async fn roles_are_created_edited_imported_and_deleted_in_the_console() {
    let app = spawn_app().await;
    let browser = admin_console(&app).await;
    new_role(&app, "viewer", &["reports:read"], &[]).await;

    // Create with catalogue checkboxes, a permission of the tenant's own and an inherited role.
    let r = submit(
        &browser,
        &app.url("/admin/roles/new"),
        &[
            ("name", "billing"),
            ("description", "Billing desk"),
            ("perm.clients:read", "on"),
            ("other_permissions", "invoices:create\ninvoices:read"),
            ("inherit.viewer", "on"),
        ],
    )
    .await;
    assert_eq!(r.status(), 201);
    assert!(r.text().await.unwrap().contains("Role created."));
    let billing = portcullis::rbac::find_role(&app.state.pool, &app.tenant, "billing")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        portcullis::storage::parse_list(&billing.permissions),
        ["clients:read", "invoices:create", "invoices:read"]
    );
    assert_eq!(
        portcullis::storage::parse_list(&billing.inherits),
        ["viewer"]
    );
    // A malformed permission is refused on the form.
    let r = submit(
        &browser,
        &app.url("/admin/roles/new"),
        &[
            ("name", "broken"),
            ("other_permissions", "Not A Permission"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("must look like resource:action"));

    // Edit: the page shows what it holds; a circle of inheritance is refused.
    let page = app.url(&format!("/admin/roles/{}", billing.id));
    let html = get(&browser, &page).await.text().await.unwrap();
    assert!(
        html.contains(r#"name="perm.clients:read" value="on" checked"#),
        "{html}"
    );
    assert!(
        html.contains(r#"name="perm.invoices:create" value="on" checked"#),
        "the tenant's own permissions join the catalogue"
    );
    let viewer = role_id(&app, "viewer").await;
    let viewer_page = app.url(&format!("/admin/roles/{viewer}"));
    let r = submit(&browser, &viewer_page, &[("inherit.billing", "on")]).await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("role &#34;viewer&#34; would inherit itself"));
    let r = submit(
        &browser,
        &page,
        &[("description", "Billing"), ("perm.clients:read", "on")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let billing = portcullis::rbac::find_role(&app.state.pool, &app.tenant, "billing")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        portcullis::storage::parse_list(&billing.permissions),
        ["clients:read"]
    );
    assert!(portcullis::storage::parse_list(&billing.inherits).is_empty());

    // The built-in admin role is shown read-only, without a delete link.
    let admin_page = app.url(&format!("/admin/roles/{}", role_id(&app, "admin").await));
    let html = get(&browser, &admin_page).await.text().await.unwrap();
    assert!(html.contains("Built-in role: it holds every permission and cannot be changed."));
    assert!(html.contains(r#"<fieldset class="stack" disabled>"#) && !html.contains(">Delete</a>"));

    // A role another role inherits stays until that role changes.
    new_role(&app, "auditor", &[], &["viewer"]).await;
    let r = submit(&browser, &format!("{viewer_page}/delete"), &[]).await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("role &#34;auditor&#34; inherits it; change that role first"));
    // Delete after the confirmation page.
    let confirm = get(&browser, &format!("{page}/delete"))
        .await
        .text()
        .await
        .unwrap();
    assert!(confirm.contains("Delete this role? Users holding it lose its permissions at once."));
    let r = submit(&browser, &format!("{page}/delete"), &[]).await;
    assert!(r.text().await.unwrap().contains("Role deleted."));
    assert!(
        portcullis::rbac::find_role(&app.state.pool, &app.tenant, "billing")
            .await
            .unwrap()
            .is_none()
    );

    // Import a template: the roles it lacks are created, once.
    let roles = app.url("/admin/roles");
    let r = post(
        &browser,
        &roles,
        &app.url("/admin/roles/import"),
        &[("template", "analytics-platform")],
    )
    .await;
    assert!(r.text().await.unwrap().contains("Roles imported: analyst"));
    let r = post(
        &browser,
        &roles,
        &app.url("/admin/roles/import"),
        &[("template", "analytics-platform")],
    )
    .await;
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Every role of this template exists already."));

    let token = admin_token(&app).await;
    for event in [
        "role.created",
        "role.updated",
        "role.deleted",
        "role.template_imported",
    ] {
        let events = audit_events(&app, &token, event).await;
        assert!(
            events.iter().any(|e| e["details"]["source"] == "console"),
            "{event}: {events:?}"
        );
    }
}

#[tokio::test]
async fn roles_are_updated_and_deleted_and_users_disabled_and_reset_through_the_admin_api() {
    let app = &spawn_app().await;
    let token = admin_token(app).await;
    let http = &app.http;
    new_role(app, "viewer", &["reports:read"], &[]).await;
    let viewer = role_id(app, "viewer").await;
    let put = |id: String, body: Value| {
        let token = token.clone();
        async move {
            http.put(app.url(&format!("/api/v1/rbac/roles/{id}")))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = put(
        viewer.clone(),
        json!({"description": "Reads reports", "permissions": ["reports:read", "reports:export"]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["name"], "viewer");
    assert_eq!(
        body["data"]["permissions"],
        json!(["reports:read", "reports:export"])
    );
    // The admin role, an unknown role, a circle, an unknown inherited role.
    let admin = role_id(app, "admin").await;
    for (id, body, status, code, message) in [
        (
            admin.clone(),
            json!({"permissions": []}),
            422,
            "VALIDATION_FAILED",
            "the built-in admin role cannot be changed",
        ),
        ("nope".to_string(), json!({}), 404, "NOT_FOUND", ""),
        (
            viewer.clone(),
            json!({"inherits": ["viewer"]}),
            422,
            "VALIDATION_FAILED",
            "role \"viewer\" would inherit itself",
        ),
        (
            viewer.clone(),
            json!({"inherits": ["ghost"]}),
            422,
            "VALIDATION_FAILED",
            "inherited role \"ghost\" does not exist",
        ),
    ] {
        let r = put(id, body).await;
        assert_eq!(r.status(), status);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code);
        if !message.is_empty() {
            assert_eq!(body["error"]["message"], message);
        }
    }
    // Whoever changes a role must hold what it will carry: a key with roles:update only
    // cannot widen a role to `*`.
    let key = app.api_key(Some(&app.tenant), &["roles:update"]).await;
    let r = http
        .put(app.url(&format!("/api/v1/rbac/roles/{viewer}")))
        .header("x-api-key", &key)
        .json(&json!({"permissions": ["*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INSUFFICIENT_PERMISSIONS");

    // Delete: not while inherited, not the admin role; then gone with its assignments.
    new_role(app, "auditor", &[], &["viewer"]).await;
    let del = |id: String| {
        let token = token.clone();
        async move {
            http.delete(app.url(&format!("/api/v1/rbac/roles/{id}")))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
        }
    };
    let r = del(viewer.clone()).await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "role \"auditor\" inherits it; change that role first"
    );
    let r = del(admin).await;
    assert_eq!(r.status(), 422);
    let auditor = role_id(app, "auditor").await;
    let ana = app
        .create_user_with_roles("ana@example.com", &["auditor"])
        .await;
    assert_eq!(del(auditor).await.status(), 200);
    assert!(
        portcullis::rbac::user_roles(&app.state.pool, &app.tenant, &ana)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(del(viewer).await.status(), 200);

    // Unassign.
    new_role(app, "support", &["users:read"], &[]).await;
    let assign = |path: &'static str| {
        let token = token.clone();
        let ana = ana.clone();
        async move {
            http.post(app.url(path))
                .bearer_auth(&token)
                .json(&json!({"user_id": ana, "role": "support"}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assign("/api/v1/rbac/assign").await;
    let body = assign("/api/v1/rbac/unassign").await;
    assert_eq!(body["data"]["removed"], true);
    let body = assign("/api/v1/rbac/unassign").await;
    assert_eq!(body["data"]["removed"], false);

    // Disable signs the user out (their refresh token stops working); enable; reset MFA.
    let session: Value = http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "ana@example.com", "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let action = |what: &'static str| {
        let token = token.clone();
        let ana = ana.clone();
        async move {
            http.post(app.url(&format!("/api/v1/admin/users/{ana}/{what}")))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
        }
    };
    let r = action("disable").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["disabled"], true);
    let r = http
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": session["data"]["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "ana@example.com", "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a disabled user cannot sign in");
    let body: Value = action("enable").await.json().await.unwrap();
    assert_eq!(body["data"]["disabled"], false);
    crate::mfa::enroll(app, &ana).await;
    assert_eq!(action("reset-mfa").await.status(), 200);
    assert!(
        !portcullis::mfa::is_enabled(&app.state.pool, &app.tenant, &ana)
            .await
            .unwrap()
    );
    let r = http
        .post(app.url("/api/v1/admin/users/nobody/disable"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Search.
    let body: Value = http
        .get(app.url("/api/v1/admin/users?q=ANA@"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let emails: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["ana@example.com"]);
}
