//! `private_key_jwt` client authentication (RFC 7523, OpenID Connect Core §9) at the token,
//! introspection and revocation endpoints, for clients that registered an inline `jwks` or
//! a `jwks_uri`: each check of the assertion refused with its exact error.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use josekit::jwk::Jwk;
use josekit::jws::{JwsHeader, JwsSigner, ES256, PS256, RS256};
use josekit::jwt::{self, JwtPayload};
use portcullis::clients::{self, GrantType, NewClient, RedirectUri};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, TestClient, REDIRECT_URI};

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client key pair: the signer and the public JWK (with `kid`).
pub struct ClientKey {
    pub kid: String,
    signer: Box<dyn JwsSigner>,
    pub public: Jwk,
}

impl ClientKey {
    pub fn es256(kid: &str) -> Self {
        let kp = ES256.generate_key_pair().unwrap();
        let mut public = kp.to_jwk_public_key();
        public.set_key_id(kid);
        Self {
            kid: kid.into(),
            signer: Box::new(ES256.signer_from_jwk(&kp.to_jwk_private_key()).unwrap()),
            public,
        }
    }

    pub fn rs256(kid: &str) -> Self {
        let kp = RS256.generate_key_pair(2048).unwrap();
        let mut public = kp.to_jwk_public_key();
        public.set_key_id(kid);
        Self {
            kid: kid.into(),
            signer: Box::new(RS256.signer_from_jwk(&kp.to_jwk_private_key()).unwrap()),
            public,
        }
    }

    pub fn ps256(kid: &str) -> Self {
        let kp = PS256.generate_key_pair(2048).unwrap();
        let mut public = kp.to_jwk_public_key();
        public.set_key_id(kid);
        Self {
            kid: kid.into(),
            signer: Box::new(PS256.signer_from_jwk(&kp.to_jwk_private_key()).unwrap()),
            public,
        }
    }

    pub fn jwks(keys: &[&ClientKey]) -> Value {
        let keys: Vec<Value> = keys
            .iter()
            .map(|k| Value::Object(k.public.as_ref().clone()))
            .collect();
        json!({ "keys": keys })
    }

    /// Signs `claims` with this key (header `kid` and `alg`).
    pub fn sign(&self, claims: Value) -> String {
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        header.set_key_id(&self.kid);
        let payload = JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();
        jwt::encode_with_signer(&payload, &header, self.signer.as_ref()).unwrap()
    }

    /// A valid assertion of `client_id` for audience `aud`.
    pub fn assertion(&self, client_id: &str, aud: &str) -> String {
        self.sign(claims(client_id, aud))
    }
}

pub fn claims(client_id: &str, aud: &str) -> Value {
    let now = portcullis::storage::now();
    json!({
        "iss": client_id, "sub": client_id, "aud": aud,
        "iat": now, "exp": now + 60, "jti": uuid::Uuid::new_v4().to_string(),
    })
}

/// A confidential client_credentials client authenticating with `private_key_jwt`.
pub async fn key_client(app: &TestApp, jwks: Option<Value>, jwks_uri: Option<String>) -> String {
    let mut new = NewClient::new("Key client");
    new.grant_types = vec![GrantType::ClientCredentials];
    new.scopes = vec!["reports:read".into()];
    new.jwks = jwks;
    new.jwks_uri = jwks_uri;
    let (client, secret) = clients::create_client(app.state.clients(), &app.tenant, new)
        .await
        .unwrap();
    assert!(secret.is_none(), "a key client gets no secret");
    client.id
}

/// An authorization-code client authenticating with `key`, optionally required to use PAR.
pub async fn key_client_for_code(app: &TestApp, key: &ClientKey, require_par: bool) -> String {
    let mut new = NewClient::new("Key web app");
    new.redirect_uris = vec![RedirectUri::parse(REDIRECT_URI).unwrap()];
    new.jwks = Some(ClientKey::jwks(&[key]));
    new.require_par = require_par;
    let (client, _) = clients::create_client(app.state.clients(), &app.tenant, new)
        .await
        .unwrap();
    client.id
}

async fn post(app: &TestApp, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = app
        .http
        .post(app.url(path))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub async fn token_with(app: &TestApp, assertion: &str) -> (u16, Value) {
    post(
        app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
    )
    .await
}

fn assert_invalid_client(got: (u16, Value), description: &str) {
    assert_eq!(got.0, 401, "{}", got.1);
    assert_eq!(got.1["error"], "invalid_client");
    assert_eq!(got.1["error_description"], description);
}

/// A tiny HTTP server answering every request with the current JWK Set; counts requests.
struct JwksServer {
    url: String,
    body: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    fn start(jwks: &Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let body = Arc::new(Mutex::new(jwks.to_string()));
        let hits = Arc::new(AtomicUsize::new(0));
        let (b, h) = (body.clone(), hits.clone());
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                h.fetch_add(1, Ordering::SeqCst);
                let body = b.lock().unwrap().clone();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    body.len(),
                    body
                );
            }
        });
        Self { url, body, hits }
    }
}

#[tokio::test]
async fn an_assertion_signed_with_the_registered_key_authenticates_once() {
    let app = spawn_app().await;
    let key = ClientKey::es256("k1");
    let id = key_client(&app, Some(ClientKey::jwks(&[&key])), None).await;
    let assertion = key.assertion(&id, &app.issuer());
    let (status, body) = token_with(&app, &assertion).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let claims = crate::helpers::jwt_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["client_id"], id.as_str());
    // The token endpoint's URL is an accepted audience too.
    let (status, _) = token_with(&app, &key.assertion(&id, &app.url("/token"))).await;
    assert_eq!(status, 200);
    // The same assertion a second time is a replay.
    assert_invalid_client(
        token_with(&app, &assertion).await,
        "client_assertion jti was already used",
    );
}

#[tokio::test]
async fn each_defect_of_an_assertion_is_refused_with_its_error() {
    let app = spawn_app().await;
    let key = ClientKey::es256("k1");
    let stranger = ClientKey::es256("k1");
    let id = key_client(&app, Some(ClientKey::jwks(&[&key])), None).await;
    let iss = app.issuer();
    let with = |k: &str, v: Value| {
        let mut c = claims(&id, &iss);
        c[k] = v;
        c
    };
    let now = portcullis::storage::now();
    let cases = [
        (
            stranger.assertion(&id, &iss),
            "client_assertion signature does not verify with the client's keys",
        ),
        (
            key.sign(with("aud", json!("https://elsewhere.example"))),
            "client_assertion aud must be the issuer or the endpoint URL",
        ),
        (
            key.sign(with("exp", json!(now - 120))),
            "client_assertion has expired",
        ),
        (
            key.sign(with("exp", json!(now + 3600))),
            "client_assertion exp is more than 5 minutes away",
        ),
        (
            key.sign(with("iss", json!("someone-else"))),
            "client_assertion iss and sub must be the client_id",
        ),
        (
            key.sign(with("jti", json!(""))),
            "client_assertion needs a jti",
        ),
    ];
    for (assertion, description) in cases {
        assert_invalid_client(token_with(&app, &assertion).await, description);
    }
    // An unsigned ("none") assertion.
    let claims_b64 = portcullis::crypto::b64url(claims(&id, &iss).to_string().as_bytes());
    let unsigned = format!("eyJhbGciOiJub25lIn0.{claims_b64}.");
    assert_invalid_client(
        token_with(&app, &unsigned).await,
        "client_assertion alg is not supported",
    );
    // Garbage, and an assertion naming no client.
    assert_invalid_client(
        token_with(&app, "not-a-jwt").await,
        "client_assertion is not a JWS naming its client in sub",
    );
    // A wrong assertion type, and two methods at once.
    let good = key.assertion(&id, &iss);
    let (status, body) = post(
        &app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:example:saml"),
            ("client_assertion", &good),
        ],
    )
    .await;
    assert_invalid_client(
        (status, body),
        "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    );
    let (status, body) = post(
        &app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &good),
            ("client_secret", "x"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // client_id in the body must name the assertion's client.
    let (status, body) = post(
        &app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "another"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &good),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error_description"],
        "client_id does not match the client assertion"
    );
    // A forgery reusing the good assertion's jti (signed by another key) is refused and
    // does not burn that jti: the good assertion still works.
    let good_claims = crate::helpers::jwt_claims(&good);
    assert_invalid_client(
        token_with(&app, &stranger.sign(good_claims)).await,
        "client_assertion signature does not verify with the client's keys",
    );
    assert_eq!(token_with(&app, &good).await.0, 200);
}

#[tokio::test]
async fn methods_do_not_cross_between_secret_and_key_clients() {
    let app = spawn_app().await;
    let key = ClientKey::es256("k1");
    let key_id = key_client(&app, Some(ClientKey::jwks(&[&key])), None).await;
    let secret_client = app
        .create_client(crate::helpers::ClientOptions {
            grants: vec![GrantType::ClientCredentials],
            ..Default::default()
        })
        .await;
    // A secret client presenting an assertion (signed by any key) is refused.
    let forged = key.assertion(&secret_client.id, &app.issuer());
    assert_invalid_client(
        token_with(&app, &forged).await,
        "client authentication failed",
    );
    // A key client cannot fall back to client_id only, or a made-up secret.
    let as_public = TestClient {
        id: key_id.clone(),
        secret: None,
    };
    let r = app
        .token(&as_public, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.status(), 401);
    let with_secret = TestClient {
        id: key_id,
        secret: Some("guess".into()),
    };
    let r = app
        .token(&with_secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn a_jwks_uri_is_fetched_cached_and_refetched_for_a_new_kid() {
    let app = spawn_app().await;
    let k1 = ClientKey::ps256("rsa-1");
    let server = JwksServer::start(&ClientKey::jwks(&[&k1]));
    let id = key_client(&app, None, Some(server.url.clone())).await;
    for _ in 0..3 {
        let (status, body) = token_with(&app, &k1.assertion(&id, &app.issuer())).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 1, "the set is cached");
    // The client rotates to a new key: an unknown kid triggers one refetch (once the
    // cached set is 10 s old; a fresher set is trusted, so this first try fails).
    let k2 = ClientKey::es256("ec-2");
    *server.body.lock().unwrap() = ClientKey::jwks(&[&k1, &k2]).to_string();
    assert_invalid_client(
        token_with(&app, &k2.assertion(&id, &app.issuer())).await,
        "client_assertion signature does not verify with the client's keys",
    );
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let (status, body) = token_with(&app, &k2.assertion(&id, &app.issuer())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn introspection_and_revocation_accept_assertions_for_their_own_url() {
    let app = spawn_app().await;
    let key = ClientKey::es256("k1");
    let id = key_client(&app, Some(ClientKey::jwks(&[&key])), None).await;
    let (_, body) = token_with(&app, &key.assertion(&id, &app.issuer())).await;
    let token = body["access_token"].as_str().unwrap().to_string();
    let (status, body) = post(
        &app,
        "/introspect",
        &[
            ("token", &token),
            ("client_assertion_type", ASSERTION_TYPE),
            (
                "client_assertion",
                &key.assertion(&id, &app.url("/introspect")),
            ),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], true);
    let r = app
        .http
        .post(app.url("/revoke"))
        .form(&[
            ("token", token.as_str()),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &key.assertion(&id, &app.url("/revoke"))),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // An assertion for the revocation endpoint is not accepted at introspection.
    let (status, body) = post(
        &app,
        "/introspect",
        &[
            ("token", &token),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &key.assertion(&id, &app.url("/revoke"))),
        ],
    )
    .await;
    assert_invalid_client(
        (status, body),
        "client_assertion aud must be the issuer or the endpoint URL",
    );
}

#[tokio::test]
async fn registrations_with_keys_get_no_secret_and_are_validated() {
    let app = spawn_app().await;
    let key = ClientKey::es256("k1");
    let admin = app.api_key(Some(&app.tenant), &["*"]).await;
    let create = |body: Value| {
        app.http
            .post(app.url("/api/v1/admin/clients"))
            .header("x-api-key", &admin)
            .json(&body)
            .send()
    };
    let r = create(
        json!({"name": "Bank", "grant_types": ["client_credentials"],
        "jwks": ClientKey::jwks(&[&key]), "token_endpoint_auth_signing_alg": "ES256"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert!(body["data"].get("client_secret").is_none(), "{body}");
    assert_eq!(
        body["data"]["token_endpoint_auth_method"],
        "private_key_jwt"
    );
    let id = body["data"]["client_id"].as_str().unwrap().to_string();
    assert_eq!(
        token_with(&app, &key.assertion(&id, &app.issuer())).await.0,
        200
    );
    for (bad, message) in [
        (
            json!({"name": "B", "grant_types": ["client_credentials"],
                "jwks": ClientKey::jwks(&[&key]), "jwks_uri": "https://keys.example/jwks"}),
            "register jwks or jwks_uri, not both (RFC 7591 §2)",
        ),
        (
            json!({"name": "B", "grant_types": ["client_credentials"],
                "jwks_uri": "http://keys.example/jwks"}),
            "jwks_uri must be an https URL (http only for loopback) without fragment",
        ),
        (
            json!({"name": "B", "grant_types": ["client_credentials"],
                "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
            "jwks must hold public keys only",
        ),
        (
            json!({"name": "B", "grant_types": ["client_credentials"],
                "jwks": ClientKey::jwks(&[&key]), "token_endpoint_auth_signing_alg": "HS256"}),
            "token_endpoint_auth_signing_alg must be one of ES256, PS256, RS256, EdDSA",
        ),
    ] {
        let r = create(bad).await.unwrap();
        assert_eq!(r.status(), 422);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["message"], message);
    }
    // The registered algorithm is enforced: a PS256 assertion for an ES256-only client.
    let rsa = ClientKey::ps256("k1");
    let r = create(
        json!({"name": "Bank 2", "grant_types": ["client_credentials"],
        "jwks": ClientKey::jwks(&[&key, &rsa]), "token_endpoint_auth_signing_alg": "ES256"}),
    )
    .await
    .unwrap();
    let body: Value = r.json().await.unwrap();
    let id2 = body["data"]["client_id"].as_str().unwrap().to_string();
    assert_invalid_client(
        token_with(&app, &rsa.assertion(&id2, &app.issuer())).await,
        "client_assertion alg is not the client's token_endpoint_auth_signing_alg",
    );
}

#[tokio::test]
async fn discovery_advertises_private_key_jwt_and_its_algorithms() {
    let app = spawn_app().await;
    let doc: Value = app
        .get(&app.url("/.well-known/openid-configuration"))
        .await
        .json()
        .await
        .unwrap();
    let algs = json!(["ES256", "PS256", "RS256", "EdDSA"]);
    for endpoint in ["token", "revocation", "introspection"] {
        let methods = doc[format!("{endpoint}_endpoint_auth_methods_supported")]
            .as_array()
            .unwrap();
        assert!(methods.contains(&json!("private_key_jwt")), "{endpoint}");
        assert_eq!(
            doc[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")],
            algs
        );
    }
}
