//! The FAPI 2.0 Security Profile switch (`profile: "fapi2"`): registration rules, and a
//! client held to PAR, PKCE S256, private_key_jwt with the issuer as the only audience,
//! DPoP, ES256/PS256 and 60-second codes, each breach answered with its exact error.

use portcullis::clients::{self, NewClient, Profile, RedirectUri};
use portcullis::crypto;
use portcullis::keys::Alg;
use portcullis::storage::dispatch;
use serde_json::{json, Value};

use crate::dpop::DpopKey;
use crate::helpers::{jwt_claims, param, query_of, spawn_app, TestApp, REDIRECT_URI};
use crate::private_key_jwt::{claims, ClientKey, ASSERTION_TYPE};

const EMAIL: &str = "ana@example.com";

fn fapi_client(keys: &[&ClientKey]) -> NewClient {
    let mut new = NewClient::new("Bank app");
    new.redirect_uris = vec![RedirectUri::parse(REDIRECT_URI).unwrap()];
    new.jwks = Some(ClientKey::jwks(keys));
    new.profile = Some(Profile::Fapi2);
    new.signing_alg = Profile::default_signing_alg(new.profile);
    new
}

async fn refusal(app: &TestApp, new: NewClient) -> String {
    match clients::create_client(app.state.clients(), &app.tenant, new).await {
        Err(clients::ClientError::Invalid(why)) => why,
        other => panic!("{:?}", other.map(|(c, _)| c.id)),
    }
}

#[tokio::test]
async fn a_fapi2_registration_needs_keys_and_fapi_algorithms_and_turns_on_par_and_dpop() {
    let app = spawn_app().await;
    let key = ClientKey::es256("k1");
    let mut secret = fapi_client(&[&key]);
    secret.jwks = None;
    assert_eq!(
        refusal(&app, secret).await,
        "profile fapi2 needs private_key_jwt: register jwks or jwks_uri (mTLS is not offered)"
    );
    let mut rs = fapi_client(&[&key]);
    rs.signing_alg = Alg::Rs256;
    assert_eq!(
        refusal(&app, rs).await,
        "profile fapi2 needs signing_alg ES256 or PS256"
    );
    let mut ed = fapi_client(&[&key]);
    ed.auth_signing_alg = Some("EdDSA".into());
    assert_eq!(
        refusal(&app, ed).await,
        "profile fapi2 needs token_endpoint_auth_signing_alg ES256 or PS256"
    );
    // Through the admin API: PAR and DPoP come with the profile; ID tokens default to PS256.
    let admin = app.api_key(Some(&app.tenant), &["clients:create"]).await;
    let r = app
        .http
        .post(app.url("/api/v1/admin/clients"))
        .header("x-api-key", admin)
        .json(&json!({
            "name": "Bank app",
            "redirect_uris": [REDIRECT_URI],
            "jwks": ClientKey::jwks(&[&key]),
            "profile": "fapi2",
        }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    let c = &body["data"];
    assert_eq!(c["profile"], "fapi2");
    assert_eq!(c["signing_alg"], "PS256");
    assert_eq!(c["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(c["require_pushed_authorization_requests"], true);
    assert_eq!(c["dpop_bound_access_tokens"], true);
}

/// POST to `path` with a client assertion and, optionally, a DPoP proof.
async fn post(
    app: &TestApp,
    path: &str,
    assertion: &str,
    form: &[(&str, &str)],
    proof: Option<String>,
) -> (u16, Value) {
    let mut f: Vec<(&str, &str)> = form.to_vec();
    f.push(("client_assertion_type", ASSERTION_TYPE));
    f.push(("client_assertion", assertion));
    let mut req = app.http.post(app.url(path)).form(&f);
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn assert_error(got: &(u16, Value), status: u16, error: &str, why: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"], error, "{}", got.1);
    assert_eq!(got.1["error_description"], why, "{}", got.1);
}

#[tokio::test]
async fn a_fapi2_client_is_held_to_the_profile_at_every_step() {
    let app = spawn_app().await;
    app.create_user(EMAIL).await;
    let key = ClientKey::es256("k1");
    let rsa = ClientKey::rs256("k2");
    let (client, _) =
        clients::create_client(app.state.clients(), &app.tenant, fapi_client(&[&key, &rsa]))
            .await
            .unwrap();
    let id = client.id.as_str();
    let issuer = app.issuer();
    let verifier = crypto::random_token(32);
    let challenge = crypto::b64url(&crypto::sha256(verifier.as_bytes()));
    let request = [
        ("response_type", "code"),
        ("client_id", id),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid profile"),
        ("state", "s1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    // PAR is required: a direct request is refused at the redirect URI.
    let direct = format!(
        "{}?{}",
        app.url("/authorize"),
        serde_urlencoded::to_string(request).unwrap()
    );
    let r = app.new_browser().get(&direct).send().await.unwrap();
    let q = query_of(r.headers()["location"].to_str().unwrap());
    assert_eq!(param(&q, "error").as_deref(), Some("invalid_request"));
    assert_eq!(
        param(&q, "error_description").as_deref(),
        Some("authorization requests of this client must be pushed first (PAR, RFC 9126)")
    );
    // Only the issuer, as one string, is an accepted audience.
    let aud_why = "client_assertion aud must be the issuer, as a single string (FAPI 2.0)";
    assert_error(
        &post(
            &app,
            "/par",
            &key.assertion(id, &app.url("/par")),
            &request,
            None,
        )
        .await,
        401,
        "invalid_client",
        aud_why,
    );
    let mut listed = claims(id, &issuer);
    listed["aud"] = json!([issuer]);
    assert_error(
        &post(&app, "/par", &key.sign(listed), &request, None).await,
        401,
        "invalid_client",
        aud_why,
    );
    assert_error(
        &post(&app, "/par", &rsa.assertion(id, &issuer), &request, None).await,
        401,
        "invalid_client",
        "client_assertion alg must be ES256 or PS256 (FAPI 2.0)",
    );
    // PKCE with S256 stays required.
    let plain: Vec<(&str, &str)> = request
        .iter()
        .copied()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .collect();
    assert_error(
        &post(&app, "/par", &key.assertion(id, &issuer), &plain, None).await,
        400,
        "invalid_request",
        "PKCE is required: send code_challenge with code_challenge_method=S256",
    );
    let dpop = DpopKey::new();
    let pushed = post(
        &app,
        "/par",
        &key.assertion(id, &issuer),
        &request,
        Some(dpop.proof("POST", &app.url("/par"))),
    )
    .await;
    assert_eq!(pushed.0, 201, "{}", pushed.1);
    let url = format!(
        "{}?{}",
        app.url("/authorize"),
        serde_urlencoded::to_string([
            ("client_id", id),
            ("request_uri", pushed.1["request_uri"].as_str().unwrap()),
        ])
        .unwrap()
    );
    let q = app
        .authorize_through_forms(&app.new_browser(), &url, EMAIL)
        .await;
    assert_eq!(param(&q, "iss"), Some(issuer.clone()));
    let code = param(&q, "code").unwrap();
    let (created, expires): (i64, i64) = dispatch!(&app.state.pool, p => sqlx::query_as(
        "SELECT created_at, expires_at FROM authorization_codes WHERE client_id = $1",
    )
    .bind(id)
    .fetch_one(p)
    .await)
    .unwrap();
    assert_eq!(expires - created, 60, "FAPI 2.0 codes live 60 s at most");
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier.as_str()),
    ];
    let token = app.url("/token");
    assert_error(
        &post(&app, "/token", &key.assertion(id, &issuer), &exchange, None).await,
        400,
        "invalid_dpop_proof",
        "this client must send a DPoP proof (dpop_bound_access_tokens, FAPI 2.0)",
    );
    assert_error(
        &post(
            &app,
            "/token",
            &key.assertion(id, &issuer),
            &exchange,
            Some(DpopKey::eddsa().proof("POST", &token)),
        )
        .await,
        400,
        "invalid_dpop_proof",
        "the DPoP proof's alg must be ES256 or PS256 (FAPI 2.0)",
    );
    let got = post(
        &app,
        "/token",
        &key.assertion(id, &issuer),
        &exchange,
        Some(dpop.proof("POST", &token)),
    )
    .await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_eq!(got.1["token_type"], "DPoP");
    assert_eq!(
        jwt_claims(got.1["access_token"].as_str().unwrap())["cnf"]["jkt"],
        dpop.jkt()
    );
    let header: Value = serde_json::from_slice(
        &crypto::b64url_decode(
            got.1["id_token"]
                .as_str()
                .unwrap()
                .split('.')
                .next()
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "PS256");
    // Refresh tokens still rotate.
    let rt = got.1["refresh_token"].as_str().unwrap();
    let again = post(
        &app,
        "/token",
        &key.assertion(id, &issuer),
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        Some(dpop.proof("POST", &token)),
    )
    .await;
    assert_eq!(again.0, 200, "{}", again.1);
    assert_ne!(again.1["refresh_token"], got.1["refresh_token"]);
}
