use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn rotation_signs_with_the_key_published_before_and_keeps_old_tokens_valid() {
    let app = spawn_app().await;
    let c = app
        .create_client(ClientOptions {
            grants: vec![portcullis::clients::GrantType::ClientCredentials],
            scopes: Some(vec!["api"]),
            ..ClientOptions::default()
        })
        .await;
    let jwks_before: Value = app.get(&app.url("/jwks")).await.json().await.unwrap();
    let kids_before: Vec<String> = jwks_before["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    let old: Value = app
        .token(&c, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let old_at = old["access_token"].as_str().unwrap().to_string();
    let kid_of = |jwt: &str| -> String {
        let h: Value = serde_json::from_slice(
            &portcullis::crypto::b64url_decode(jwt.split('.').next().unwrap()).unwrap(),
        )
        .unwrap();
        h["kid"].as_str().unwrap().to_string()
    };
    // Rotate as the CLI (or another instance) would: this instance is not told.
    portcullis::keys::rotate_keys(
        &app.state.pool,
        &app.state.master_key,
        &app.state.config,
        &app.tenant,
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let new_at = loop {
        let body: Value = app
            .token(&c, &[("grant_type", "client_credentials")])
            .await
            .json()
            .await
            .unwrap();
        let at = body["access_token"].as_str().unwrap().to_string();
        if kid_of(&at) != kid_of(&old_at) {
            break at;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rotation was not picked up within seconds"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert!(
        kids_before.contains(&kid_of(&new_at)),
        "the new signing key was published before it signed"
    );
    assert_eq!(
        app.introspect(&c, &old_at).await["active"],
        true,
        "tokens of the retired key stay valid"
    );
    assert_eq!(app.introspect(&c, &new_at).await["active"], true);
}

#[tokio::test]
async fn a_tenant_created_before_an_algorithm_existed_gets_its_keys_on_first_load() {
    let app = spawn_app().await;
    // A tenant from before PS256: its keys of that algorithm never existed.
    portcullis::storage::dispatch!(&app.state.pool, p => sqlx::query(
        "DELETE FROM signing_keys WHERE tenant_id = $1 AND alg = 'PS256'",
    )
    .bind(&app.tenant.id)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    app.state.providers.invalidate("acme");
    let c = app
        .create_client(ClientOptions {
            grants: vec![portcullis::clients::GrantType::ClientCredentials],
            scopes: Some(vec!["api"]),
            alg: portcullis::keys::Alg::Ps256,
            ..ClientOptions::default()
        })
        .await;
    let r = app.token(&c, &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let at = body["access_token"].as_str().unwrap();
    let header: Value = serde_json::from_slice(
        &portcullis::crypto::b64url_decode(at.split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "PS256");
    let jwks: Value = app.get(&app.url("/jwks")).await.json().await.unwrap();
    let ps256: Vec<&Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "PS256")
        .collect();
    assert_eq!(ps256.len(), 2, "an active key and the next one");
    assert!(ps256.iter().any(|k| k["kid"] == header["kid"]));
    assert_eq!(ps256[0]["kty"], "RSA");
}
