//! An independent relying party, panva's openid-client 6 (tests/peers/fapi/client.mjs),
//! against the real server: dynamic registration with a public key, private_key_jwt at the
//! token, introspection and revocation endpoints, PAR + PKCE and the code exchange with
//! openid-client's own checks of the response and the ID token, and DPoP with server nonces
//! on every token request and at userinfo.

use std::process::Command;

use serde_json::Value;

use crate::helpers::{run_peer, spawn_app, PASSWORD, REDIRECT_URI};

#[tokio::test]
async fn openid_client_registers_with_a_key_pushes_its_request_and_signs_in() {
    let app = spawn_app().await;
    let user = app.create_user("ana@example.com").await;
    let mut settings = app.tenant.settings.clone();
    settings.registration_enabled = true;
    settings.dpop_nonce_required = true;
    portcullis::tenants::update_settings(&app.state.pool, &app.tenant, &settings)
        .await
        .unwrap();
    app.state.providers.invalidate("acme");
    let issuer = app.issuer();
    let mut cmd = Command::new("node");
    cmd.arg("tests/peers/fapi/client.mjs")
        .env("ISSUER", issuer)
        .env("REDIRECT_URI", REDIRECT_URI)
        .env("EMAIL", "ana@example.com")
        .env("PASSWORD", PASSWORD);
    let result: Value = run_peer(cmd, "`bash .ci/dev deps` installs the FAPI peer").await;
    assert_eq!(result["sub"], user.as_str());
    assert_eq!(result["email"], "ana@example.com");
    assert_eq!(result["cc_token_type"], "dpop");
    assert_eq!(result["code_token_type"], "dpop");
    assert_eq!(result["refreshed_token_type"], "dpop");
    let at = crate::helpers::jwt_claims(result["access_token"].as_str().unwrap());
    assert!(at["cnf"]["jkt"].is_string(), "{at}");
    assert_eq!(result["active"], true);
    assert_eq!(result["active_after_revocation"], false);
    // The client it registered authenticates by key only.
    let id = result["client_id"].as_str().unwrap();
    let client = portcullis::clients::find_client(app.state.clients(), &app.tenant, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        client.auth_method,
        portcullis::clients::AuthMethod::PrivateKeyJwt
    );
    assert!(
        client.dpop_bound,
        "registered with dpop_bound_access_tokens"
    );
}
