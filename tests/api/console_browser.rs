//! The console in Debian's Chromium (playwright-core, tests/peers/spa/console.mjs): a tenant
//! administrator signs in with a second factor, creates a client, a role, a user and a SAML
//! connection (to the pysaml2 IdP) through the forms, tests the connection, and every console
//! page — and the platform console's — is checked by axe-core: no serious or critical
//! violation. Screenshots of each page land in `target/console-screenshots/`.

use std::process::Command;

use serde_json::Value;

use crate::console::ADMIN;
use crate::federation::saml_peer;
use crate::helpers::{run_peer, spawn_app, PASSWORD};
use crate::mfa::enroll;

/// Where the screenshots go (README, "Console").
const SCREENSHOTS: &str = "target/console-screenshots";

#[tokio::test]
async fn the_console_in_chromium_creates_through_its_forms_and_every_page_passes_axe() {
    let app = spawn_app().await;
    let idp = saml_peer();
    let user = app.create_user_with_roles(ADMIN, &["admin"]).await;
    let secret = enroll(&app, &user).await;
    let platform_password = "Platform-Horse-42";
    portcullis::platform_admins::create(
        &app.state.pool,
        &app.state.hasher,
        "root@platform.test",
        platform_password,
    )
    .await
    .unwrap();

    let mut cmd = Command::new("node");
    cmd.arg("tests/peers/spa/console.mjs")
        .env("ISSUER", app.url(""))
        .env("ROOT", &app.address)
        .env("EMAIL", ADMIN)
        .env("PASSWORD", PASSWORD)
        .env("TOTP_SECRET", &secret)
        .env("METADATA_URL", format!("{}/metadata", idp.base))
        .env("PLATFORM_EMAIL", "root@platform.test")
        .env("PLATFORM_PASSWORD", platform_password)
        .env(
            "SCREENSHOTS",
            format!("{}/{SCREENSHOTS}", env!("CARGO_MANIFEST_DIR")),
        );
    let result: Value = run_peer(
        cmd,
        "`bash .ci/dev deps` installs playwright-core, axe-core and chromium",
    )
    .await;

    // No serious or critical accessibility violation on any page.
    let mut blocking = Vec::new();
    for (page, found) in result["violations"].as_object().unwrap() {
        for v in found.as_array().unwrap() {
            if matches!(v["impact"].as_str(), Some("serious" | "critical")) {
                blocking.push(format!("{page}: {v}"));
            }
        }
    }
    assert!(blocking.is_empty(), "{blocking:#?}");
    // The rest (moderate, minor) is printed, to be seen and fixed.
    eprintln!("axe, not blocking: {}", result["violations"]);
    assert_eq!(result["errors"], serde_json::json!([]), "no script error");
    let pages: Vec<&str> = result["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in [
        "sign-in",
        "dashboard",
        "clients",
        "client-new",
        "client-secret",
        "client-edit",
        "roles",
        "role-new",
        "users",
        "user-new",
        "user",
        "api-keys",
        "sso",
        "sso-new-saml",
        "sso-new-oidc",
        "sso-new-google",
        "sso-connection",
        "sso-delete-confirm",
        "keys",
        "keys-rotate",
        "settings",
        "audit",
        "platform-sign-in",
        "platform-tenants",
        "platform-bans",
    ] {
        assert!(pages.contains(&name), "{name} checked: {pages:?}");
        let shot = format!("{}/{SCREENSHOTS}/{name}.png", env!("CARGO_MANIFEST_DIR"));
        assert!(
            std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000),
            "{shot}"
        );
    }

    // What the forms created is what the server holds.
    let created = &result["created"];
    let client = portcullis::clients::find_client(
        app.state.clients(),
        &app.tenant,
        created["client"].as_str().unwrap(),
    )
    .await
    .unwrap()
    .expect("the client");
    assert_eq!(client.name, "Browser app");
    assert_eq!(client.redirect_uris, ["https://app.example.com/callback"]);
    let roles = portcullis::rbac::list_roles(&app.state.pool, &app.tenant)
        .await
        .unwrap();
    let support = roles
        .iter()
        .find(|r| r.name == "support")
        .expect("the role");
    assert_eq!(support.permissions, r#"["users:read"]"#);
    let person = portcullis::storage::users::find_user_by_email(
        &app.state.pool,
        &app.tenant.id,
        "new.person@acme.test",
    )
    .await
    .unwrap();
    assert!(person.is_some(), "the user");
    let conns = portcullis::federation::list(&app.state.pool, &app.tenant)
        .await
        .unwrap();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].name, "Acme IdP");
    assert_eq!(conns[0].domains, ["example.com"]);
    assert_eq!(created["test_passed"], true, "{result}");
}
