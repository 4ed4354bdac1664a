//! The console's single sign-on pages against real upstreams (the pysaml2 IdP and the
//! Node.js oidc-provider of tests/peers): the SAML and OIDC forms, "Test connection",
//! enable/disable (and the admin API's same switch), the SP metadata download, deletion
//! after a confirmation, and the permission boundaries of `sso:read` / `sso:configure`.

use serde_json::Value;

use crate::console::{admin_console, console_with_role, get, location, post, submit};
use crate::federation::{
    admin_token, audit_events, oidc_peer, saml_peer, saml_round_trip, UPSTREAM_CLIENT,
    UPSTREAM_SECRET,
};
use crate::helpers::{spawn_app, TestApp};

async fn connections(app: &TestApp) -> Vec<portcullis::federation::Connection> {
    portcullis::federation::list(&app.state.pool, &app.tenant)
        .await
        .unwrap()
}

async fn role(app: &TestApp, name: &str, permissions: &[&str]) {
    portcullis::rbac::create_role(
        &app.state.pool,
        &app.tenant,
        portcullis::rbac::NewRole {
            name: name.into(),
            description: String::new(),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            inherits: vec![],
            client_id: None,
        },
    )
    .await
    .unwrap();
}

/// The console's audit entries of `event`, with their `connection` detail.
async fn console_audits(app: &TestApp, token: &str, event: &str) -> Vec<String> {
    audit_events(app, token, event)
        .await
        .into_iter()
        .filter(|e| e["details"]["source"] == "console")
        .map(|e| e["details"]["connection"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn saml_and_oidc_connections_are_created_tested_switched_and_deleted_in_the_console() {
    let app = spawn_app().await;
    let idp = saml_peer();
    let upstream = oidc_peer(&app);
    let browser = admin_console(&app).await;
    let token = admin_token(&app).await;

    let list = get(&browser, &app.url("/admin/sso")).await;
    assert_eq!(list.status(), 200);
    let html = list.text().await.unwrap();
    assert!(html.contains("No single sign-on connection yet."), "{html}");
    for kind in ["google", "oidc", "saml2"] {
        assert!(
            html.contains(&format!("/admin/sso/new?type={kind}")),
            "{html}"
        );
    }
    assert!(html.contains(r#"aria-current="page">Single sign-on</a>"#));
    assert_eq!(
        get(&browser, &app.url("/admin/sso/new?type=ldap"))
            .await
            .status(),
        404
    );

    // SAML: metadata that cannot be used is refused with the domain's reason, nothing stored.
    let saml_form = app.url("/admin/sso/new?type=saml2");
    let html = get(&browser, &saml_form).await.text().await.unwrap();
    for label in [
        "Metadata URL",
        "Metadata XML (instead of a URL)",
        "Sign AuthnRequests",
        "Require signed assertions",
        "Accept IdP-initiated sign-in",
        "NameID format",
    ] {
        assert!(
            html.contains(&format!(">{label}</label>")),
            "{label}: {html}"
        );
    }
    let r = submit(
        &browser,
        &saml_form,
        &[("name", "Broken"), ("metadata_xml", "<nope/>")],
    )
    .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"<p class="error" role="alert">"#), "{html}");
    assert!(
        html.contains(r#"value="Broken""#),
        "the form keeps what was typed"
    );
    let r = submit(
        &browser,
        &saml_form,
        &[
            ("name", "Both"),
            ("metadata_url", &format!("{}/metadata", idp.base)),
            ("metadata_xml", "<x/>"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("give exactly one of metadata_url and metadata_xml"));
    assert!(connections(&app).await.is_empty());

    // SAML from the IdP's metadata URL.
    let r = submit(
        &browser,
        &saml_form,
        &[
            ("name", "Acme IdP"),
            ("metadata_url", &format!("{}/metadata", idp.base)),
            ("domains", "example.com"),
            ("attr_email", "email"),
            ("attr_name", "displayName"),
            ("attr_roles", "groups"),
            ("sign_authn_requests", "on"),
            // want_assertions_signed unchecked
            ("allow_idp_initiated", "on"),
            ("link_by_email", "on"),
            ("apply_mfa_policy", "on"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    let page = location(&app, &r);
    let saml = connections(&app).await.pop().unwrap();
    assert_eq!(page, app.url(&format!("/admin/sso/{}?created=1", saml.id)));
    assert_eq!(saml.name, "Acme IdP");
    assert_eq!(saml.domains, ["example.com"]);
    assert_eq!(saml.mapping.email.as_deref(), Some("email"));
    assert_eq!(saml.mapping.name.as_deref(), Some("displayName"));
    assert_eq!(saml.mapping.roles.as_deref(), Some("groups"));
    assert!(saml.config.sign_authn_requests);
    assert!(
        !saml.config.want_assertions_signed,
        "an unchecked box is false"
    );
    assert!(saml.config.allow_idp_initiated);
    assert!(saml.config.link_by_email && saml.config.apply_mfa_policy);
    assert_eq!(
        saml.config.idp_entity_id.as_deref(),
        Some(format!("{}/metadata", idp.base).as_str())
    );
    let html = get(&browser, &page).await.text().await.unwrap();
    assert!(html.contains("Connection created and checked."), "{html}");
    assert!(html.contains("<td>SAML 2.0</td>"));
    assert!(html.contains(&format!("{}/metadata</td>", idp.base)));
    // The SP metadata of this connection, and its download.
    let doc = app.url(&format!("/saml/metadata?connection={}", saml.id));
    assert!(html.contains(&format!(r#"<a href="{doc}">"#)), "{html}");
    let download = format!("{doc}&download=1");
    assert!(html.contains(&download.replace('&', "&#38;")), "{html}");
    let r = get(&browser, &download).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-disposition"],
        r#"attachment; filename="sp-metadata.xml""#
    );
    assert_eq!(r.headers()["content-type"], "application/samlmetadata+xml");
    assert!(r
        .text()
        .await
        .unwrap()
        .contains(&format!("entityID=\"{}\"", app.url("/saml/metadata"))));

    // "Test connection" shows each check.
    let r = post(
        &browser,
        &page,
        &app.url(&format!("/admin/sso/{}/test", saml.id)),
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Every check passed."), "{html}");
    let passed = html.matches("<td>passed</td>").count();
    assert!(passed >= 2, "each check is a row: {html}");

    // Disable (after a confirmation): no sign-in through it, not even one already started;
    // home-realm discovery finds nothing. Then enable again.
    let started = crate::federation::sso_login_redirect(&app).await;
    let here = app.url(&format!("/admin/sso/{}", saml.id));
    let r = get(&browser, &format!("{here}/disable")).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Disable this connection?"));
    let r = submit(&browser, &format!("{here}/disable"), &[]).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Connection disabled"), "{html}");
    assert!(html.contains(">Enable</button>"));
    assert!(!connections(&app).await[0].enabled);
    let (r, _) = saml_round_trip(&app, &started, "alice@example.com", "ok").await;
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Single sign-on through this identity provider is turned off."));
    let r = app
        .new_browser()
        .get(app.url("/api/v1/auth/sso/login?domain=example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "NOT_FOUND");
    let r = post(&browser, &here, &format!("{here}/enable"), &[]).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Connection enabled."));
    let r = app
        .new_browser()
        .get(app.url("/api/v1/auth/sso/login?domain=example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(location(&app, &r).starts_with(&format!("{}/sso?SAMLRequest=", idp.base)));

    // OIDC against oidc-provider: the redirect URI to register is shown, the test passes.
    let oidc_form = app.url("/admin/sso/new?type=oidc");
    let r = submit(
        &browser,
        &oidc_form,
        &[
            ("name", "Acme OIDC"),
            ("issuer", &upstream.base),
            ("client_id", UPSTREAM_CLIENT),
            ("client_secret", UPSTREAM_SECRET),
            ("scopes", "openid email"),
            ("domains", "oidc.example"),
            ("attr_email", "email"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let oidc = connections(&app)
        .await
        .into_iter()
        .find(|c| c.name == "Acme OIDC")
        .unwrap();
    assert!(oidc.has_secret);
    assert_eq!(oidc.config.issuer.as_deref(), Some(upstream.base.as_str()));
    assert_eq!(oidc.config.client_id.as_deref(), Some(UPSTREAM_CLIENT));
    assert_eq!(oidc.config.scopes, ["openid", "email"]);
    assert_eq!(oidc.mapping.email.as_deref(), Some("email"));
    assert!(!oidc.config.link_by_email && !oidc.config.apply_mfa_policy);
    let page = app.url(&format!("/admin/sso/{}", oidc.id));
    let html = get(&browser, &page).await.text().await.unwrap();
    assert!(html.contains("<td>OpenID Connect</td>"));
    assert!(html.contains(&format!(
        "<code>{}</code>",
        app.url("/federation/oidc/callback")
    )));
    assert!(!html.contains(UPSTREAM_SECRET), "the secret is never shown");
    let r = post(&browser, &page, &format!("{page}/test"), &[]).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Every check passed."));

    // Google needs Google's discovery document, which this machine cannot reach: refused
    // with the reason, the form keeps the client id but never echoes the secret.
    let r = submit(
        &browser,
        &app.url("/admin/sso/new?type=google"),
        &[
            ("name", "Google"),
            ("client_id", "g-client"),
            ("client_secret", "g-secret-value"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("upstream discovery failed"), "{html}");
    assert!(html.contains(r#"value="g-client""#));
    assert!(!html.contains("g-secret-value"));
    assert_eq!(connections(&app).await.len(), 2);

    // Deletion asks first.
    let r = get(&browser, &format!("{page}/delete")).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Delete this connection?"), "{html}");
    let r = submit(&browser, &format!("{page}/delete"), &[]).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Connection deleted."), "{html}");
    assert!(!html.contains("Acme OIDC"));
    assert_eq!(connections(&app).await.len(), 1);
    assert_eq!(get(&browser, &page).await.status(), 404);

    // Every change is audited as the console's.
    assert_eq!(
        console_audits(&app, &token, "sso.configured").await.len(),
        2
    );
    assert_eq!(
        console_audits(&app, &token, "sso.disabled").await,
        [saml.id.as_str()]
    );
    assert_eq!(
        console_audits(&app, &token, "sso.enabled").await,
        [saml.id.as_str()]
    );
    assert_eq!(
        console_audits(&app, &token, "sso.deleted").await,
        [oidc.id.as_str()]
    );
}

#[tokio::test]
async fn sso_read_sees_and_tests_connections_but_changes_nothing() {
    let app = spawn_app().await;
    let idp = saml_peer();
    let token = admin_token(&app).await;
    let r = crate::federation::configure(
        &app,
        &token,
        serde_json::json!({"protocol": "saml2", "name": "Acme IdP",
                           "metadata_url": format!("{}/metadata", idp.base)}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let id = connections(&app).await[0].id.clone();
    role(&app, "sso-viewer", &["sso:read"]).await;
    role(&app, "clients-reader", &["clients:read"]).await;
    let viewer = console_with_role(&app, "viewer@acme.test", "sso-viewer").await;

    let html = get(&viewer, &app.url("/admin/sso"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Acme IdP"));
    assert!(!html.contains("/admin/sso/new"), "no way to add: {html}");
    let page = app.url(&format!("/admin/sso/{id}"));
    let html = get(&viewer, &page).await.text().await.unwrap();
    assert!(html.contains(">Test connection</button>"));
    assert!(!html.contains(">Disable</button>"), "{html}");
    assert!(!html.contains("/delete\""));
    let r = post(&viewer, &page, &format!("{page}/test"), &[]).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Every check passed."));
    assert_eq!(
        get(&viewer, &app.url("/admin/sso/new?type=saml2"))
            .await
            .status(),
        403
    );
    for action in ["disable", "enable", "delete"] {
        let r = post(&viewer, &page, &format!("{page}/{action}"), &[]).await;
        assert_eq!(r.status(), 403, "{action}");
    }
    for confirm in ["disable", "delete"] {
        let r = get(&viewer, &format!("{page}/{confirm}")).await;
        assert_eq!(r.status(), 403, "{confirm} asks only who may do it");
    }
    let r = post(
        &viewer,
        &page,
        &app.url("/admin/sso?type=saml2"),
        &[("metadata_url", &format!("{}/metadata", idp.base))],
    )
    .await;
    assert_eq!(r.status(), 403);
    let conns = connections(&app).await;
    assert_eq!(conns.len(), 1);
    assert!(conns[0].enabled);

    // Without sso:read the section is neither shown nor open.
    let reader = console_with_role(&app, "reader@acme.test", "clients-reader").await;
    let dash = get(&reader, &app.url("/admin")).await;
    let html = dash.text().await.unwrap();
    assert!(!html.contains("/admin/sso\""), "{html}");
    assert_eq!(get(&reader, &app.url("/admin/sso")).await.status(), 403);
    // A forged form without the console's CSRF token changes nothing.
    let r = viewer
        .post(format!("{page}/test"))
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn the_admin_api_enables_and_disables_connections() {
    let app = spawn_app().await;
    let idp = saml_peer();
    let token = admin_token(&app).await;
    let r = crate::federation::configure(
        &app,
        &token,
        serde_json::json!({"protocol": "saml2", "metadata_url": format!("{}/metadata", idp.base),
                           "domains": ["example.com"]}),
    )
    .await;
    let id = r.json::<Value>().await.unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let call = |path: String, token: String| {
        let app = &app;
        async move {
            app.http
                .post(app.url(&path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let r = call(format!("/api/v1/admin/sso/{id}/disable"), token.clone()).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["enabled"], false);
    assert_eq!(body["data"]["id"], id.as_str());
    let r = app
        .new_browser()
        .get(app.url("/api/v1/auth/sso/login?domain=example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = call(format!("/api/v1/admin/sso/{id}/enable"), token.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["data"]["enabled"], true);
    let r = call("/api/v1/admin/sso/nope/disable".into(), token.clone()).await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "NOT_FOUND"
    );
    // A token without sso:configure.
    role(&app, "sso-viewer", &["sso:read"]).await;
    app.create_user_with_roles("plain@acme.test", &["sso-viewer"])
        .await;
    let plain = app.login("plain@acme.test").await;
    let r = call(format!("/api/v1/admin/sso/{id}/disable"), plain).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "INSUFFICIENT_PERMISSIONS"
    );
    assert!(connections(&app).await[0].enabled);
    let events = audit_events(&app, &token, "sso.disabled").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["details"]["connection"], id.as_str());
    assert_eq!(audit_events(&app, &token, "sso.enabled").await.len(), 1);
}
