//! Hostile tokens: one corpus of forged, mangled and misdirected JWTs presented where
//! Portcullis accepts its own tokens — `/userinfo`, `/introspect`, the first-party API and
//! `id_token_hint` (at `/authorize` and `/logout`) — each refused with its exact error. The
//! forgeries that need a valid signature are signed with the tenant's real private key (opened
//! from the database with the master key), so each row tests the one check it names.

use josekit::jws::{JwsSigner, RS256};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use portcullis::crypto;
use portcullis::tenants::Tenant;
use serde_json::{json, Value};

use crate::helpers::*;

/// Sends a request whose head or body is too large over a raw connection, reading the answer
/// while the rest is still being written: the server answers as soon as it has read enough
/// to refuse and then closes, so a client that reads only after writing everything (reqwest)
/// sees the reset instead of the answer. Returns the status and the body.
async fn refused_while_sending(app: &TestApp, head: String, body: String) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = app.address.trim_start_matches("http://").to_string();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let sending = std::thread::spawn(move || {
            // A write after the server closed fails: that is the point.
            let _ = writer.write_all(head.as_bytes());
            let _ = writer.write_all(body.as_bytes());
        });
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if rest.len() >= length {
                    break;
                }
            }
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
        let _ = sending.join();
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no answer: {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    })
    .await
    .unwrap()
}

/// The tenant's active RS256 key: its kid, signer and public key (PEM).
struct TenantKey {
    kid: String,
    signer: Box<dyn JwsSigner>,
    public_pem: Vec<u8>,
}

async fn tenant_key(app: &TestApp, tenant: &Tenant) -> TenantKey {
    let rows = portcullis::storage::keys::list_published_keys(
        &app.state.pool,
        &tenant.id,
        portcullis::storage::now(),
    )
    .await
    .unwrap();
    let row = rows
        .iter()
        .find(|r| r.alg == "RS256" && r.state == "active")
        .unwrap();
    let pem = app
        .state
        .master_key
        .open(&row.private_key, row.kid.as_bytes())
        .unwrap();
    let public_pem = PKey::private_key_from_pem(&pem)
        .unwrap()
        .public_key_to_pem()
        .unwrap();
    TenantKey {
        kid: row.kid.clone(),
        signer: Box::new(RS256.signer_from_pem(&pem).unwrap()),
        public_pem,
    }
}

fn b64(v: &Value) -> String {
    crypto::b64url(v.to_string().as_bytes())
}

/// A compact JWS of `header` and `claims` signed by `key`.
fn signed(key: &TenantKey, header: Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(&header), b64(claims));
    let sig = key.signer.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", crypto::b64url(&sig))
}

fn header(key: &TenantKey, typ: &str) -> Value {
    json!({"alg": "RS256", "typ": typ, "kid": key.kid})
}

fn with(claims: &Value, changes: Value) -> Value {
    let mut c = claims.clone();
    for (k, v) in changes.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// What a row must be refused as.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Refusal {
    /// Signature, structure, key, type or issuer: "malformed or its signature is invalid".
    Invalid,
    Expired,
    NotYetValid,
    /// Validly signed for someone else (first-party API, id_token_hint).
    Audience,
}

/// The corpus, built from a genuine token's claims (`typ` is that token's type). `other`
/// is another tenant's key; `stranger` a key of no tenant.
fn corpus(
    key: &TenantKey,
    other: &TenantKey,
    stranger: &TenantKey,
    claims: &Value,
    typ: &str,
) -> Vec<(&'static str, String, Refusal)> {
    let now = portcullis::storage::now();
    let genuine = signed(key, header(key, typ), claims);
    let input = format!("{}.{}", b64(&header(key, typ)), b64(claims));
    let hs_header = json!({"alg": "HS256", "typ": typ, "kid": key.kid});
    let hs_input = format!("{}.{}", b64(&hs_header), b64(claims));
    let hmac = {
        let k = PKey::hmac(&key.public_pem).unwrap();
        let mut s = Signer::new(MessageDigest::sha256(), &k).unwrap();
        s.update(hs_input.as_bytes()).unwrap();
        s.sign_to_vec().unwrap()
    };
    let wrong_typ = if typ == "at+jwt" { "JWT" } else { "at+jwt" };
    let jwe_header = json!({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": key.kid, "typ": typ});
    let mut crit = header(key, typ);
    crit["crit"] = json!(["exp"]);
    vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": typ, "kid": key.kid})),
                b64(claims)
            ),
            Refusal::Invalid,
        ),
        (
            "alg none without kid",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": typ})),
                b64(claims)
            ),
            Refusal::Invalid,
        ),
        (
            "HS256 keyed with the RSA public key",
            format!("{hs_input}.{}", crypto::b64url(&hmac)),
            Refusal::Invalid,
        ),
        (
            "unknown kid",
            signed(stranger, header(stranger, typ), claims),
            Refusal::Invalid,
        ),
        (
            "another tenant's key",
            signed(other, header(other, typ), claims),
            Refusal::Invalid,
        ),
        (
            "the kid of this tenant, signed by another key",
            {
                let sig = other.signer.sign(input.as_bytes()).unwrap();
                format!("{input}.{}", crypto::b64url(&sig))
            },
            Refusal::Invalid,
        ),
        (
            "tampered claims",
            {
                let mut parts: Vec<&str> = genuine.split('.').collect();
                let forged = b64(&with(claims, json!({"sub": "someone-else"})));
                parts[1] = &forged;
                parts.join(".")
            },
            Refusal::Invalid,
        ),
        (
            "expired",
            signed(
                key,
                header(key, typ),
                &with(
                    claims,
                    json!({"exp": now - 10, "iat": now - 3700, "nbf": now - 3700}),
                ),
            ),
            Refusal::Expired,
        ),
        (
            "nbf in the future",
            signed(
                key,
                header(key, typ),
                &with(claims, json!({"nbf": now + 3600, "exp": now + 7200})),
            ),
            Refusal::NotYetValid,
        ),
        (
            "wrong typ",
            signed(key, header(key, wrong_typ), claims),
            Refusal::Invalid,
        ),
        (
            "no typ",
            signed(key, json!({"alg": "RS256", "kid": key.kid}), claims),
            Refusal::Invalid,
        ),
        (
            "another issuer",
            signed(
                key,
                header(key, typ),
                &with(claims, json!({"iss": "https://evil.example"})),
            ),
            Refusal::Invalid,
        ),
        (
            "wrong aud",
            signed(
                key,
                header(key, typ),
                &with(claims, json!({"aud": "https://api.evil.example"})),
            ),
            Refusal::Audience,
        ),
        (
            "truncated",
            genuine[..genuine.len() - 12].to_string(),
            Refusal::Invalid,
        ),
        ("signature removed", format!("{input}."), Refusal::Invalid),
        (
            "JWE where a JWS is expected",
            format!(
                "{}.{}.{}.{}.{}",
                b64(&jwe_header),
                crypto::b64url(&[7u8; 256]),
                crypto::b64url(&[1u8; 12]),
                crypto::b64url(&[2u8; 64]),
                crypto::b64url(&[3u8; 16])
            ),
            Refusal::Invalid,
        ),
        ("crit header", signed(key, crit, claims), Refusal::Invalid),
        ("not base64", "!!!.@@@.###".to_string(), Refusal::Invalid),
        ("empty parts", "..".to_string(), Refusal::Invalid),
    ]
}

const INVALID: &str = "the access token is malformed or its signature is invalid";

fn bearer_description(r: Refusal) -> &'static str {
    match r {
        Refusal::Invalid => INVALID,
        Refusal::Expired => "the access token has expired",
        Refusal::NotYetValid => "the access token is not valid yet",
        // The UserInfo endpoint serves every access token of this issuer, whatever client
        // or audience it was issued for (OpenID Connect Core §5.3).
        Refusal::Audience => unreachable!(),
    }
}

#[tokio::test]
async fn forged_and_misdirected_tokens_are_refused_with_their_exact_error_everywhere() {
    let app = spawn_app().await;
    let other_tenant = app.create_tenant("other-tenant").await;
    let stranger_tenant = app.create_tenant("stranger").await;
    let key = tenant_key(&app, &app.tenant).await;
    let other = tenant_key(&app, &other_tenant).await;
    let mut stranger = tenant_key(&app, &stranger_tenant).await;
    // A key no tenant publishes: the stranger tenant's signer under a made-up kid.
    stranger.kid = "kid-nobody-publishes".into();
    let client = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..Default::default()
        })
        .await;
    let email = "hostile@example.com";
    app.create_user(email).await;
    let tokens = app.tokens_for(&client, email).await;
    let access_token = tokens["access_token"].as_str().unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let first_party = app.login(email).await;
    // The genuine tokens work where the forgeries are tried.
    assert_eq!(
        app.userinfo(access_token).await["sub"],
        jwt_claims(access_token)["sub"]
    );
    assert_eq!(app.introspect(&client, access_token).await["active"], true);
    let me = app
        .http
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(&first_party)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    let mut checked = 0;
    // /userinfo (RFC 6750 §3.1) and /introspect (RFC 7662 §2.2), from a relying party's token.
    for (name, token, refusal) in
        corpus(&key, &other, &stranger, &jwt_claims(access_token), "at+jwt")
    {
        let r = app
            .http
            .get(app.url("/userinfo"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if refusal == Refusal::Audience {
            assert_eq!(r.status(), 200, "{name}: userinfo serves every audience");
        } else {
            assert_eq!(r.status(), 401, "{name}");
            let challenge = r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_string();
            assert_eq!(
                challenge,
                format!(
                    "Bearer realm=\"portcullis\", error=\"invalid_token\", error_description=\"{}\"",
                    bearer_description(refusal)
                ),
                "{name}"
            );
        }
        if refusal != Refusal::Audience {
            assert_eq!(
                app.introspect(&client, &token).await,
                json!({"active": false}),
                "{name}"
            );
        }
        checked += 1;
    }

    // The first-party API, from a first-party token.
    for (name, token, refusal) in
        corpus(&key, &other, &stranger, &jwt_claims(&first_party), "at+jwt")
    {
        let r = app
            .http
            .get(app.url("/api/v1/auth/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{name}");
        let body: Value = r.json().await.unwrap();
        let (code, message) = match refusal {
            Refusal::Invalid => ("UNAUTHORIZED", "Missing or invalid authentication token"),
            Refusal::Expired => ("TOKEN_EXPIRED", "The access token has expired"),
            Refusal::NotYetValid => ("UNAUTHORIZED", "the access token is not valid yet"),
            Refusal::Audience => (
                "UNAUTHORIZED",
                "this token was not issued for the Portcullis API",
            ),
        };
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        assert_eq!(body["error"]["message"], message, "{name}: {body}");
        checked += 1;
    }

    // id_token_hint, from a genuine ID token: at /authorize an error redirect (Core
    // §3.1.2.6), at /logout an error page that redirects nowhere. Expiry does not matter
    // for a hint (Core §3.1.2.1), so the expired and not-yet-valid rows are accepted.
    for (name, token, refusal) in corpus(&key, &other, &stranger, &jwt_claims(id_token), "JWT") {
        let accepted = matches!(refusal, Refusal::Expired | Refusal::NotYetValid);
        let q = serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "openid"),
            ("state", "s"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
            ("prompt", "none"),
            ("id_token_hint", token.as_str()),
        ])
        .unwrap();
        let r = app
            .new_browser()
            .get(format!("{}?{q}", app.url("/authorize")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{name}");
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let q = query_of(&location);
        if accepted {
            // A hint for a user without a session here: login_required, not a bad hint.
            assert_eq!(
                param(&q, "error").as_deref(),
                Some("login_required"),
                "{name}"
            );
        } else {
            assert_eq!(
                param(&q, "error").as_deref(),
                Some("invalid_request"),
                "{name}"
            );
            assert_eq!(
                param(&q, "error_description").as_deref(),
                Some("id_token_hint is not a valid ID token of this issuer"),
                "{name}"
            );
        }
        let r = app
            .new_browser()
            .get(format!(
                "{}?{}",
                app.url("/logout"),
                serde_urlencoded::to_string([("id_token_hint", token.as_str())]).unwrap()
            ))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let page = r.text().await.unwrap();
        if accepted {
            assert_eq!(status, 200, "{name}");
        } else {
            assert_eq!(status, 400, "{name}");
            // A validly signed hint names its client by `aud`: one this tenant does not know
            // is refused as such.
            let expected = if refusal == Refusal::Audience {
                "The application (client_id) is not known."
            } else {
                "The id_token_hint is not a valid ID token of this issuer."
            };
            assert!(page.contains(expected), "{name}: {page}");
        }
        checked += 1;
    }
    assert_eq!(checked, 3 * 19);

    // Oversized: a 1 MiB token. In a header it is refused before any handler (431); in a
    // form body it exceeds the body limit (413 with the RFC 6749 error shape).
    let huge = format!(
        "{}.{}.{}",
        b64(&header(&key, "at+jwt")),
        "A".repeat(1 << 20),
        "B"
    );
    let (status, _) = refused_while_sending(
        &app,
        format!("GET /t/acme/userinfo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {huge}\r\n\r\n"),
        String::new(),
    )
    .await;
    assert_eq!(status, 431);
    let form = format!("token={huge}");
    let basic =
        crypto::b64(format!("{}:{}", client.id, client.secret.as_deref().unwrap()).as_bytes());
    let (status, body) = refused_while_sending(
        &app,
        format!(
            "POST /t/acme/introspect HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            form.len()
        ),
        form,
    )
    .await;
    assert_eq!(status, 413);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "invalid_request");
    // Just under the header limit, an oversized token is still only an invalid token.
    let big = format!(
        "{}.{}.{}",
        b64(&header(&key, "at+jwt")),
        "A".repeat(12_000),
        "B"
    );
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains(INVALID));
}
