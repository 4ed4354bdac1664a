use portcullis::clients::GrantType;
use portcullis::keys::Alg;
use serde_json::Value;

use crate::helpers::*;

fn service_client() -> ClientOptions {
    ClientOptions {
        grants: vec![GrantType::ClientCredentials],
        scopes: Some(vec!["api", "reports"]),
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn client_credentials_issues_an_rfc9068_access_token_for_each_algorithm() {
    let app = spawn_app().await;
    for alg in Alg::ALL {
        let c = app
            .create_client(ClientOptions {
                alg,
                ..service_client()
            })
            .await;
        let r = app
            .token(
                &c,
                &[("grant_type", "client_credentials"), ("scope", "api")],
            )
            .await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert!(body.get("refresh_token").is_none());
        let at = body["access_token"].as_str().unwrap();
        let header: Value = serde_json::from_slice(
            &portcullis::crypto::b64url_decode(at.split('.').next().unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], alg.as_str());
        let claims = jwt_claims(at);
        assert_eq!(claims["sub"], c.id);
        assert_eq!(claims["scope"], "api");
        let intro = app.introspect(&c, at).await;
        assert_eq!(intro["active"], true);
        assert_eq!(intro["client_id"], c.id);
    }
}

#[tokio::test]
async fn client_secret_post_is_accepted_and_a_wrong_secret_is_invalid_client_with_a_challenge() {
    let app = spawn_app().await;
    let c = app.create_client(service_client()).await;
    let secret = c.secret.clone().unwrap();
    let r = app
        .post_form(
            &app.url("/token"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &c.id),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let wrong = TestClient {
        id: c.id.clone(),
        secret: Some("cs_wrong".into()),
    };
    let r = app
        .token(&wrong, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
}

/// A token request form, the expected status and the expected error code.
type Case = (Vec<(&'static str, &'static str)>, u16, &'static str);

#[tokio::test]
async fn token_endpoint_errors_follow_rfc6749() {
    let app = spawn_app().await;
    let c = app.create_client(service_client()).await;
    let cases: Vec<Case> = vec![
        (
            vec![
                ("grant_type", "password"),
                ("username", "a"),
                ("password", "b"),
            ],
            400,
            "unsupported_grant_type",
        ),
        (vec![("scope", "api")], 400, "invalid_request"),
        (
            vec![("grant_type", "client_credentials"), ("scope", "admin")],
            400,
            "invalid_scope",
        ),
        (
            vec![("grant_type", "authorization_code"), ("code", "nope")],
            400,
            "unauthorized_client",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
            400,
            "invalid_request",
        ),
    ];
    for (form, status, error) in cases {
        let r = app.token(&c, &form).await;
        assert_eq!(r.status(), status, "{form:?}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], error, "{form:?}");
    }
}

#[tokio::test]
async fn wrong_content_types_and_oversized_bodies_are_refused_without_a_500() {
    let app = spawn_app().await;
    let c = app.create_client(service_client()).await;
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth(&c.id, c.secret.as_deref())
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let big = "a".repeat(200 * 1024);
    let r = app
        .token(&c, &[("grant_type", "client_credentials"), ("pad", &big)])
        .await;
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn revocation_then_introspection_reports_inactive() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app.create_client(ClientOptions::default()).await;
    let tokens = app.tokens_for(&c, "ana@example.com").await;
    let at = tokens["access_token"].as_str().unwrap();
    let rt = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(app.introspect(&c, at).await["active"], true);
    assert_eq!(app.introspect(&c, rt).await["active"], true);
    let r = app
        .http
        .post(app.url("/revoke"))
        .basic_auth(&c.id, c.secret.as_deref())
        .form(&[("token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.introspect(&c, at).await,
        serde_json::json!({"active": false})
    );
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    let r = app
        .http
        .post(app.url("/revoke"))
        .basic_auth(&c.id, c.secret.as_deref())
        .form(&[("token", rt), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.introspect(&c, rt).await["active"], false);
    let r = app
        .token(
            &c,
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // Unknown tokens: revocation still answers 200 (RFC 7009 §2.2).
    let r = app
        .http
        .post(app.url("/revoke"))
        .basic_auth(&c.id, c.secret.as_deref())
        .form(&[("token", "garbage")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn tokens_of_another_tenant_fail_like_garbage() {
    let app = spawn_app().await;
    let other = app.create_tenant("globex").await;
    app.create_user_in(&other, "bob@globex.com").await;
    let foreign = app.create_client_in(&other, service_client()).await;
    let foreign_tokens: Value = {
        let r = app
            .http
            .post(format!("{}/t/globex/token", app.address))
            .basic_auth(&foreign.id, foreign.secret.as_deref())
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    };
    let at = foreign_tokens["access_token"].as_str().unwrap();
    let local = app.create_client(service_client()).await;
    assert_eq!(
        app.introspect(&local, at).await,
        serde_json::json!({"active": false})
    );
    assert_eq!(
        app.introspect(&local, "garbage").await,
        serde_json::json!({"active": false})
    );
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The foreign client cannot authenticate here.
    let r = app
        .token(&foreign, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
}

#[tokio::test]
async fn userinfo_requires_a_bearer_token_with_the_openid_scope() {
    let app = spawn_app().await;
    let r = app.get(&app.url("/userinfo")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"portcullis\""
    );
    let c = app.create_client(service_client()).await;
    let body: Value = app
        .token(&c, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let r = app
        .http
        .post(app.url("/userinfo"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
}

#[tokio::test]
async fn public_clients_cannot_introspect() {
    let app = spawn_app().await;
    let c = app
        .create_client(ClientOptions {
            public: true,
            ..ClientOptions::default()
        })
        .await;
    let r = app
        .post_form(
            &app.url("/introspect"),
            &[("token", "x"), ("client_id", &c.id)],
        )
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
}
