use openidconnect::core::CoreProviderMetadata;
use openidconnect::IssuerUrl;
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn discovery_is_accepted_by_an_independent_relying_party_library() {
    let app = spawn_app().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(app.issuer()).unwrap(), &http)
        .await
        .expect("discovery and JWKS parse");
    assert_eq!(meta.issuer().as_str(), app.issuer());
    assert_eq!(
        meta.jwks().keys().len(),
        8,
        "active and next key for RS256, PS256, ES256, EdDSA"
    );
}

#[tokio::test]
async fn discovery_lists_what_the_provider_supports_honestly() {
    let app = spawn_app().await;
    let r = app.get(&app.url("/.well-known/openid-configuration")).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age"));
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["issuer"], app.issuer());
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    assert_eq!(d["end_session_endpoint"], app.url("/logout"));
    assert!(
        d.get("registration_endpoint").is_none(),
        "registration is off by default"
    );
    for alg in ["RS256", "ES256", "EdDSA"] {
        assert!(d["id_token_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&Value::from(alg)));
    }
}

#[tokio::test]
async fn jwks_publishes_public_keys_with_kid_use_and_alg_and_rotation_adds_the_next_key() {
    let app = spawn_app().await;
    let jwks: Value = app.get(&app.url("/jwks")).await.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(
        keys.len(),
        8,
        "active and next key for RS256, PS256, ES256, EdDSA"
    );
    for k in keys {
        assert!(k["kid"].is_string() && k["use"] == "sig" && k["alg"].is_string());
        assert!(k.get("d").is_none());
    }
    let before: Vec<Value> = keys.iter().map(|k| k["kid"].clone()).collect();
    portcullis::keys::rotate_keys(
        &app.state.pool,
        &app.state.master_key,
        &app.state.config,
        &app.tenant,
    )
    .await
    .unwrap();
    app.state.providers.invalidate("acme");
    let jwks: Value = app.get(&app.url("/jwks")).await.json().await.unwrap();
    let after: Vec<Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(
        after.len(),
        12,
        "retired keys stay published until their tokens expire"
    );
    assert!(before.iter().all(|k| after.contains(k)));
}
