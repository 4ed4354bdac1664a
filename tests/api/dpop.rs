//! DPoP (RFC 9449): proofs at the token endpoint, sender-constrained access tokens
//! (`cnf.jkt`, token type `DPoP`) at `/userinfo` and the first-party API, refresh tokens of
//! public clients bound to the key, codes bound by `dpop_jkt` or a proof sent to PAR, and
//! server nonces. Each refusal is asserted with its exact error.

use josekit::jwk::alg::ed::EdCurve;
use josekit::jwk::Jwk;
use josekit::jws::{EdDSA, JwsHeader, JwsSigner, ES256};
use josekit::jwt::{self, JwtPayload};
use portcullis::clients::GrantType;
use portcullis::crypto;
use serde_json::{json, Value};

use crate::helpers::{
    jwt_claims, param, query_of, spawn_app, ClientOptions, TestApp, TestClient, PASSWORD,
    REDIRECT_URI,
};

const EMAIL: &str = "ana@example.com";

/// A client's DPoP key pair.
pub struct DpopKey {
    signer: Box<dyn JwsSigner>,
    public: Jwk,
}

/// What a proof says, with the defaults of a good proof for `POST {url}`.
struct Claims<'a> {
    htm: &'a str,
    url: String,
    iat: i64,
    jti: String,
    ath: Option<String>,
    nonce: Option<String>,
    typ: &'a str,
}

impl DpopKey {
    /// An ES256 key.
    pub fn new() -> Self {
        let kp = ES256.generate_key_pair().unwrap();
        Self {
            signer: Box::new(ES256.signer_from_jwk(&kp.to_jwk_private_key()).unwrap()),
            public: kp.to_jwk_public_key(),
        }
    }

    pub fn eddsa() -> Self {
        let kp = EdDSA.generate_key_pair(EdCurve::Ed25519).unwrap();
        Self {
            signer: Box::new(EdDSA.signer_from_jwk(&kp.to_jwk_private_key()).unwrap()),
            public: kp.to_jwk_public_key(),
        }
    }

    pub fn jkt(&self) -> String {
        portcullis::dpop::thumbprint(self.public.as_ref()).unwrap()
    }

    fn claims<'a>(&self, htm: &'a str, url: &str) -> Claims<'a> {
        Claims {
            htm,
            url: url.to_string(),
            iat: portcullis::storage::now(),
            jti: uuid::Uuid::new_v4().to_string(),
            ath: None,
            nonce: None,
            typ: "dpop+jwt",
        }
    }

    fn sign(&self, c: Claims<'_>) -> String {
        let mut h = JwsHeader::new();
        h.set_token_type(c.typ);
        h.set_claim("jwk", Some(Value::Object(self.public.as_ref().clone())))
            .unwrap();
        let mut body = json!({"jti": c.jti, "htm": c.htm, "htu": c.url, "iat": c.iat});
        if let Some(ath) = c.ath {
            body["ath"] = json!(ath);
        }
        if let Some(n) = c.nonce {
            body["nonce"] = json!(n);
        }
        let p = JwtPayload::from_map(body.as_object().unwrap().clone()).unwrap();
        jwt::encode_with_signer(&p, &h, self.signer.as_ref()).unwrap()
    }

    /// A good proof for `htm url`.
    pub fn proof(&self, htm: &str, url: &str) -> String {
        self.sign(self.claims(htm, url))
    }

    /// A good proof for `htm url` carrying the hash of `token`.
    fn proof_for(&self, htm: &str, url: &str, token: &str) -> String {
        let mut c = self.claims(htm, url);
        c.ath = Some(crypto::b64url(&crypto::sha256(token.as_bytes())));
        self.sign(c)
    }
}

/// POST /token with client_secret_basic (or client_id for public clients) and a proof.
async fn token(
    app: &TestApp,
    client: &TestClient,
    form: &[(&str, &str)],
    proofs: &[&str],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut f: Vec<(&str, &str)> = form.to_vec();
    let mut req = app.http.post(app.url("/token"));
    match &client.secret {
        Some(secret) => req = req.basic_auth(&client.id, Some(secret)),
        None => f.push(("client_id", &client.id)),
    }
    for p in proofs {
        req = req.header("DPoP", *p);
    }
    let r = req.form(&f).send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap())
}

async fn cc_client(app: &TestApp) -> TestClient {
    app.create_client(ClientOptions {
        grants: vec![GrantType::ClientCredentials],
        scopes: Some(vec!["reports:read"]),
        ..ClientOptions::default()
    })
    .await
}

const CC: [(&str, &str); 1] = [("grant_type", "client_credentials")];

fn assert_oauth_error(got: &(u16, reqwest::header::HeaderMap, Value), error: &str, why: &str) {
    assert_eq!(got.0, 400, "{}", got.2);
    assert_eq!(got.2["error"], error, "{}", got.2);
    assert_eq!(got.2["error_description"], why, "{}", got.2);
}

#[tokio::test]
async fn a_proof_at_the_token_endpoint_binds_the_access_token_to_its_key() {
    let app = spawn_app().await;
    let client = cc_client(&app).await;
    let key = DpopKey::new();
    let got = token(
        &app,
        &client,
        &CC,
        &[&key.proof("POST", &app.url("/token"))],
    )
    .await;
    assert_eq!(got.0, 200, "{}", got.2);
    assert_eq!(got.2["token_type"], "DPoP");
    let at = got.2["access_token"].as_str().unwrap();
    assert_eq!(jwt_claims(at)["cnf"], json!({ "jkt": key.jkt() }));
    let info = app.introspect(&client, at).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["token_type"], "DPoP");
    assert_eq!(info["cnf"]["jkt"], key.jkt());
    // Without a proof the same client gets a bearer token, without cnf.
    let plain = token(&app, &client, &CC, &[]).await;
    assert_eq!(plain.2["token_type"], "Bearer");
    assert!(jwt_claims(plain.2["access_token"].as_str().unwrap())
        .get("cnf")
        .is_none());
    let doc: Value = app
        .get(&app.url("/.well-known/openid-configuration"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["dpop_signing_alg_values_supported"],
        json!(["ES256", "PS256", "RS256", "EdDSA"])
    );
}

#[tokio::test]
async fn each_bad_proof_at_the_token_endpoint_is_refused_with_its_reason() {
    let app = spawn_app().await;
    let client = cc_client(&app).await;
    let key = DpopKey::new();
    let url = app.url("/token");
    let refuse = |why: &'static str| {
        move |got: (u16, reqwest::header::HeaderMap, Value)| {
            assert_oauth_error(&got, "invalid_dpop_proof", why)
        }
    };
    refuse("the DPoP proof's htm is not this request's method")(
        token(&app, &client, &CC, &[&key.proof("GET", &url)]).await,
    );
    refuse("the DPoP proof's htu is not this request's URI")(
        token(&app, &client, &CC, &[&key.proof("POST", &app.url("/par"))]).await,
    );
    let mut stale = key.claims("POST", &url);
    stale.iat -= 3600;
    refuse("the DPoP proof's iat is too far from now")(
        token(&app, &client, &CC, &[&key.sign(stale)]).await,
    );
    let mut typ = key.claims("POST", &url);
    typ.typ = "JWT";
    refuse("the DPoP proof's typ must be dpop+jwt")(
        token(&app, &client, &CC, &[&key.sign(typ)]).await,
    );
    refuse("the DPoP proof is not a JWS")(token(&app, &client, &CC, &["not-a-jwt"]).await);
    let one = key.proof("POST", &url);
    let two = key.proof("POST", &url);
    refuse("send one DPoP header, not several (RFC 9449 §4.3)")(
        token(&app, &client, &CC, &[&one, &two]).await,
    );
    // A proof is used once, here or on any instance sharing the database.
    assert_eq!(token(&app, &client, &CC, &[&one]).await.0, 200);
    refuse("the DPoP proof's jti was already used")(token(&app, &client, &CC, &[&one]).await);
}

#[tokio::test]
async fn a_client_registered_dpop_bound_must_send_a_proof() {
    let app = spawn_app().await;
    let mut new = portcullis::clients::NewClient::new("Bound");
    new.grant_types = vec![GrantType::ClientCredentials];
    new.scopes = vec!["reports:read".into()];
    new.dpop_bound = true;
    let (c, secret) =
        portcullis::clients::create_client(app.state.clients(), &app.tenant, new.clone())
            .await
            .unwrap();
    let client = TestClient {
        id: c.id.clone(),
        secret,
    };
    assert_oauth_error(
        &token(&app, &client, &CC, &[]).await,
        "invalid_dpop_proof",
        "this client must send a DPoP proof (dpop_bound_access_tokens, FAPI 2.0)",
    );
    let key = DpopKey::new();
    let got = token(
        &app,
        &client,
        &CC,
        &[&key.proof("POST", &app.url("/token"))],
    )
    .await;
    assert_eq!(got.2["token_type"], "DPoP");
    // The admin API shows the flag.
    let admin = app.api_key(Some(&app.tenant), &["clients:read"]).await;
    let shown: Value = app
        .http
        .get(app.url(&format!("/api/v1/admin/clients/{}", c.id)))
        .header("x-api-key", admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["data"]["dpop_bound_access_tokens"], true, "{shown}");
}

/// A public client's code flow whose token request carries a proof by `key`.
async fn bound_tokens(app: &TestApp, client: &TestClient, key: &DpopKey) -> Value {
    let browser = app.new_browser();
    let (code, verifier) = app.code_for(&browser, client, EMAIL, &[]).await;
    let got = token(
        app,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ],
        &[&key.proof("POST", &app.url("/token"))],
    )
    .await;
    assert_eq!(got.0, 200, "{}", got.2);
    assert_eq!(got.2["token_type"], "DPoP");
    got.2
}

async fn public_client(app: &TestApp) -> TestClient {
    app.create_client(ClientOptions {
        public: true,
        skip_consent: true,
        ..ClientOptions::default()
    })
    .await
}

async fn userinfo(app: &TestApp, authorization: &str, proof: Option<&str>) -> (u16, String, Value) {
    let mut req = app
        .http
        .get(app.url("/userinfo"))
        .header("authorization", authorization);
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, challenge, r.json().await.unwrap())
}

#[tokio::test]
async fn userinfo_takes_a_bound_token_only_with_the_dpop_scheme_and_a_proof_by_its_key() {
    let app = spawn_app().await;
    app.create_user(EMAIL).await;
    let client = public_client(&app).await;
    let key = DpopKey::new();
    let tokens = bound_tokens(&app, &client, &key).await;
    let at = tokens["access_token"].as_str().unwrap();
    let url = app.url("/userinfo");
    let dpop = format!("DPoP {at}");
    let (status, _, body) = userinfo(&app, &dpop, Some(&key.proof_for("GET", &url, at))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["sub"].is_string());

    let expect = |got: (u16, String, Value), error: &str, why: &str| {
        assert_eq!(got.0, 401, "{}", got.2);
        assert_eq!(got.2["error"], error);
        assert_eq!(got.2["error_description"], why);
        assert!(
            got.1.starts_with("DPoP algs=\"ES256 PS256 RS256 EdDSA\"")
                && got.1.contains(&format!("error=\"{error}\"")),
            "{}",
            got.1
        );
    };
    // RFC 9449 §7.2: a bound token is not a bearer token.
    expect(
        userinfo(&app, &format!("Bearer {at}"), None).await,
        "invalid_token",
        "the access token is bound to a DPoP key: send it with the DPoP scheme and a proof",
    );
    expect(
        userinfo(&app, &dpop, None).await,
        "invalid_dpop_proof",
        "a DPoP proof is required with a DPoP-bound access token",
    );
    expect(
        userinfo(&app, &dpop, Some(&key.proof("GET", &url))).await,
        "invalid_dpop_proof",
        "the DPoP proof's ath is not the access token's hash",
    );
    expect(
        userinfo(
            &app,
            &dpop,
            Some(&DpopKey::new().proof_for("GET", &url, at)),
        )
        .await,
        "invalid_dpop_proof",
        "the DPoP proof is not signed by the key the access token is bound to",
    );
    expect(
        userinfo(&app, &dpop, Some(&key.proof_for("POST", &url, at))).await,
        "invalid_dpop_proof",
        "the DPoP proof's htm is not this request's method",
    );
    // A bearer token presented with the DPoP scheme is refused too.
    let other = app.create_client(ClientOptions::default()).await;
    let bearer = app.tokens_for(&other, EMAIL).await;
    let bt = bearer["access_token"].as_str().unwrap();
    let got = userinfo(
        &app,
        &format!("DPoP {bt}"),
        Some(&key.proof_for("GET", &url, bt)),
    )
    .await;
    assert_eq!(got.0, 401);
    assert_eq!(
        got.2["error_description"],
        "the access token is not DPoP-bound: send it with the Bearer scheme"
    );
    // Without any token, both schemes are offered.
    let r = app.http.get(&url).send().await.unwrap();
    let offered: Vec<_> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        offered,
        vec![
            "Bearer realm=\"portcullis\"".to_string(),
            "DPoP algs=\"ES256 PS256 RS256 EdDSA\"".to_string()
        ]
    );
}

#[tokio::test]
async fn a_public_clients_refresh_token_is_used_only_with_its_key() {
    let app = spawn_app().await;
    app.create_user(EMAIL).await;
    let client = public_client(&app).await;
    let key = DpopKey::new();
    let tokens = bound_tokens(&app, &client, &key).await;
    let rt = tokens["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt)];
    let why = "the refresh token is bound to a DPoP key: send a DPoP proof signed with it";
    assert_oauth_error(
        &token(&app, &client, &form, &[]).await,
        "invalid_grant",
        why,
    );
    let thief = DpopKey::new();
    assert_oauth_error(
        &token(
            &app,
            &client,
            &form,
            &[&thief.proof("POST", &app.url("/token"))],
        )
        .await,
        "invalid_grant",
        why,
    );
    // Neither attempt used the token up or revoked its family.
    let got = token(
        &app,
        &client,
        &form,
        &[&key.proof("POST", &app.url("/token"))],
    )
    .await;
    assert_eq!(got.0, 200, "{}", got.2);
    assert_eq!(got.2["token_type"], "DPoP");
    assert_eq!(
        jwt_claims(got.2["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.jkt()
    );
}

#[tokio::test]
async fn a_code_bound_by_dpop_jkt_is_redeemed_only_with_that_key() {
    let app = spawn_app().await;
    app.create_user(EMAIL).await;
    let client = public_client(&app).await;
    let key = DpopKey::new();
    let jkt = key.jkt();
    let browser = app.new_browser();
    let (code, verifier) = app
        .code_for(&browser, &client, EMAIL, &[("dpop_jkt", &jkt)])
        .await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier.as_str()),
    ];
    let why = "the authorization code is bound to a DPoP key (dpop_jkt): send a DPoP proof signed with it";
    assert_oauth_error(
        &token(&app, &client, &form, &[]).await,
        "invalid_grant",
        why,
    );
    assert_oauth_error(
        &token(
            &app,
            &client,
            &form,
            &[&DpopKey::new().proof("POST", &app.url("/token"))],
        )
        .await,
        "invalid_grant",
        why,
    );
    // The failed attempts left the code usable.
    let got = token(
        &app,
        &client,
        &form,
        &[&key.proof("POST", &app.url("/token"))],
    )
    .await;
    assert_eq!(got.0, 200, "{}", got.2);
    assert_eq!(got.2["token_type"], "DPoP");
    // A malformed dpop_jkt is refused at the authorization endpoint.
    let url = format!(
        "{}?{}",
        app.url("/authorize"),
        serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "openid"),
            ("code_challenge", &crypto::b64url(&crypto::sha256(b"x"))),
            ("code_challenge_method", "S256"),
            ("dpop_jkt", "short"),
        ])
        .unwrap()
    );
    let r = app.new_browser().get(&url).send().await.unwrap();
    let q = query_of(r.headers()["location"].to_str().unwrap());
    assert_eq!(param(&q, "error").as_deref(), Some("invalid_request"));
    assert_eq!(
        param(&q, "error_description").as_deref(),
        Some("dpop_jkt must be the base64url SHA-256 thumbprint of a key (RFC 7638)")
    );
}

#[tokio::test]
async fn a_proof_sent_to_par_binds_the_code_and_must_match_dpop_jkt() {
    let app = spawn_app().await;
    app.create_user(EMAIL).await;
    let client = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    let key = DpopKey::new();
    let verifier = crypto::random_token(32);
    let challenge = crypto::b64url(&crypto::sha256(verifier.as_bytes()));
    let params = [
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let push = |form: Vec<(&'static str, String)>, proof: String| {
        let app = &app;
        let client = &client;
        async move {
            let r = app
                .http
                .post(app.url("/par"))
                .basic_auth(&client.id, client.secret.as_deref())
                .header("DPoP", proof)
                .form(&form)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let owned = |extra: &[(&'static str, String)]| {
        let mut f: Vec<(&'static str, String)> =
            params.iter().map(|(k, v)| (*k, v.to_string())).collect();
        f.extend_from_slice(extra);
        f
    };
    let (status, body) = push(
        owned(&[("dpop_jkt", DpopKey::new().jkt())]),
        key.proof("POST", &app.url("/par")),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_dpop_proof");
    assert_eq!(
        body["error_description"],
        "dpop_jkt is not the thumbprint of the DPoP proof's key"
    );
    let (status, body) = push(owned(&[]), key.proof("POST", &app.url("/par"))).await;
    assert_eq!(status, 201, "{body}");
    let url = format!(
        "{}?{}",
        app.url("/authorize"),
        serde_urlencoded::to_string([
            ("client_id", client.id.as_str()),
            ("request_uri", body["request_uri"].as_str().unwrap()),
        ])
        .unwrap()
    );
    let q = app
        .authorize_through_forms(&app.new_browser(), &url, EMAIL)
        .await;
    let code = param(&q, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier.as_str()),
    ];
    assert_oauth_error(
        &token(&app, &client, &form, &[]).await,
        "invalid_grant",
        "the authorization code is bound to a DPoP key (dpop_jkt): send a DPoP proof signed with it",
    );
    let got = token(
        &app,
        &client,
        &form,
        &[&key.proof("POST", &app.url("/token"))],
    )
    .await;
    assert_eq!(got.0, 200, "{}", got.2);
    assert_eq!(got.2["token_type"], "DPoP");
}

#[tokio::test]
async fn a_tenant_can_require_server_nonces() {
    let app = spawn_app().await;
    app.create_user(EMAIL).await;
    let mut settings = app.tenant.settings.clone();
    settings.dpop_nonce_required = true;
    portcullis::tenants::update_settings(&app.state.pool, &app.tenant, &settings)
        .await
        .unwrap();
    app.state.providers.invalidate("acme");
    let client = cc_client(&app).await;
    let key = DpopKey::new();
    let url = app.url("/token");
    let got = token(&app, &client, &CC, &[&key.proof("POST", &url)]).await;
    assert_oauth_error(
        &got,
        "use_dpop_nonce",
        "a fresh DPoP nonce is required: retry with the one in the DPoP-Nonce header",
    );
    let nonce = got.1["dpop-nonce"].to_str().unwrap().to_string();
    let mut wrong = key.claims("POST", &url);
    wrong.nonce = Some("0.forged".into());
    assert_eq!(
        token(&app, &client, &CC, &[&key.sign(wrong)]).await.2["error"],
        "use_dpop_nonce"
    );
    let mut c = key.claims("POST", &url);
    c.nonce = Some(nonce.clone());
    let got = token(&app, &client, &CC, &[&key.sign(c)]).await;
    assert_eq!(got.0, 200, "{}", got.2);
    assert_eq!(got.2["token_type"], "DPoP");
    assert!(
        got.1.contains_key("dpop-nonce"),
        "the next nonce is announced"
    );

    // At a protected resource: 401 with the challenge and the nonce.
    let public = public_client(&app).await;
    let browser = app.new_browser();
    let (code, verifier) = app.code_for(&browser, &public, EMAIL, &[]).await;
    let mut c = key.claims("POST", &url);
    c.nonce = Some(nonce.clone());
    let tokens = token(
        &app,
        &public,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ],
        &[&key.sign(c)],
    )
    .await;
    assert_eq!(tokens.0, 200, "{}", tokens.2);
    let at = tokens.2["access_token"].as_str().unwrap();
    let ui = app.url("/userinfo");
    let r = app
        .http
        .get(&ui)
        .header("authorization", format!("DPoP {at}"))
        .header("DPoP", key.proof_for("GET", &ui, at))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"use_dpop_nonce\""));
    let fresh = r.headers()["dpop-nonce"].to_str().unwrap().to_string();
    let mut c = key.claims("GET", &ui);
    c.ath = Some(crypto::b64url(&crypto::sha256(at.as_bytes())));
    c.nonce = Some(fresh);
    let r = app
        .http
        .get(&ui)
        .header("authorization", format!("DPoP {at}"))
        .header("DPoP", key.sign(c))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_first_party_api_binds_its_tokens_and_checks_proofs() {
    let app = spawn_app().await;
    app.create_user(EMAIL).await;
    let key = DpopKey::new();
    let login = app.url("/api/v1/auth/login");
    let r = app
        .http
        .post(&login)
        .header("DPoP", key.proof("POST", &login))
        .json(&json!({"email": EMAIL, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["token_type"], "DPoP");
    let at = body["data"]["access_token"].as_str().unwrap().to_string();
    let rt = body["data"]["refresh_token"].as_str().unwrap().to_string();
    let me = app.url("/api/v1/auth/me");
    let r = app
        .http
        .get(&me)
        .header("authorization", format!("DPoP {at}"))
        .header("DPoP", key.proof_for("GET", &me, &at))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app.http.get(&me).bearer_auth(&at).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    assert_eq!(
        body["error"]["message"],
        "the access token is bound to a DPoP key: send it with the DPoP scheme and a proof"
    );
    let r = app
        .http
        .get(&me)
        .header("authorization", format!("DPoP {at}"))
        .header("DPoP", DpopKey::new().proof_for("GET", &me, &at))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("DPoP "));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INVALID_DPOP_PROOF");
    assert_eq!(
        body["error"]["message"],
        "the DPoP proof is not signed by the key the access token is bound to"
    );
    // The refresh token is bound too (the first-party client has no credentials).
    let refresh = app.url("/api/v1/auth/refresh");
    let r = app
        .http
        .post(&refresh)
        .json(&json!({ "refresh_token": rt }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    let r = app
        .http
        .post(&refresh)
        .header("DPoP", key.proof("POST", &refresh))
        .json(&json!({ "refresh_token": rt }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["token_type"], "DPoP");
}
