//! The built-in demo relying party at `/demo`: it signs in through the real authorization
//! endpoint (code + PKCE, state, nonce), redeems the code at the real token endpoint over
//! HTTP, verifies the ID token and shows its claims and the userinfo answer.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde_json::Value;

use crate::crypto;
use crate::demo;
use crate::error::PageError;
use crate::http::extractors::query_params;
use crate::http::pages::error::Frame;
use crate::i18n::Locale;
use crate::provider::issuer_for;
use crate::state::AppState;

const COOKIE: &str = "portcullis_demo_rp";

#[derive(Template)]
#[template(path = "demo.html")]
struct DemoPage<'a> {
    f: Frame<'a>,
    issuer: String,
    claims: Option<String>,
    userinfo: Option<String>,
    logout_url: Option<String>,
    error: Option<String>,
}

fn render(page: DemoPage<'_>) -> Result<HttpResponse, PageError> {
    let body = page
        .render()
        .map_err(|e| PageError::unexpected(Locale::En, &e))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body))
}

fn frame() -> Frame<'static> {
    Frame {
        lang: "en",
        t: Locale::En.texts(),
        tenant_name: "Portcullis demo app",
        logo_url: None,
        branding_css: None,
    }
}

fn page(state: &AppState) -> DemoPage<'static> {
    DemoPage {
        f: frame(),
        issuer: issuer_for(&state.config.public_url, demo::TENANT),
        claims: None,
        userinfo: None,
        logout_url: None,
        error: None,
    }
}

/// `GET /demo`
pub async fn demo_page(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    render(page(&state))
}

/// `GET /demo/login` — starts a real authorization request.
pub async fn demo_login(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let client = demo::client(&state).await?.ok_or_else(|| {
        PageError::bad_request(
            Locale::En,
            "The demo is not set up: start with `portcullis serve --demo` on an empty database.",
        )
    })?;
    let (st, nonce, verifier) = (
        crypto::random_token(16),
        crypto::random_token(16),
        crypto::random_token(32),
    );
    let challenge = crypto::b64url(&crypto::sha256(verifier.as_bytes()));
    let base = &state.config.public_url;
    let mut url = url::Url::parse(&format!("{}/authorize", issuer_for(base, demo::TENANT)))
        .map_err(|e| PageError::unexpected(Locale::En, &e))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.client_id)
        .append_pair("redirect_uri", &format!("{base}/demo/callback"))
        .append_pair("scope", "openid profile email")
        .append_pair("state", &st)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let value = format!("{st}.{nonce}.{verifier}");
    let mac = crypto::b64url(&crypto::hmac_sha256(&state.mac_key, value.as_bytes()));
    let cookie = Cookie::build(COOKIE, format!("{value}.{mac}"))
        .path("/demo")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.is_https())
        .finish();
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, url.to_string()))
        .cookie(cookie)
        .finish())
}

/// `GET /demo/callback` — redeems the code like any relying party would.
pub async fn demo_callback(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let q = query_params(&req);
    let mut out = page(&state);
    if let Some(err) = q.get("error") {
        out.error = Some(format!(
            "{err}: {}",
            q.get("error_description").unwrap_or("")
        ));
        return render(out);
    }
    let bad = |m: &str| PageError::bad_request(Locale::En, m.to_string());
    let cookie = req
        .cookie(COOKIE)
        .ok_or_else(|| bad("The demo sign-in was not started here; open /demo and try again."))?;
    let parts: Vec<&str> = cookie.value().split('.').collect();
    let [st, nonce, verifier, mac] = parts[..] else {
        return Err(bad("The demo cookie is malformed."));
    };
    let expected = crypto::b64url(&crypto::hmac_sha256(
        &state.mac_key,
        format!("{st}.{nonce}.{verifier}").as_bytes(),
    ));
    if !crypto::constant_time_eq(expected.as_bytes(), mac.as_bytes()) || q.get("state") != Some(st)
    {
        return Err(bad(
            "The state does not match: this response was not for this browser.",
        ));
    }
    let client = demo::client(&state)
        .await?
        .ok_or_else(|| bad("The demo is not set up."))?;
    let issuer = issuer_for(&state.config.public_url, demo::TENANT);
    if q.get("iss") != Some(issuer.as_str()) {
        return Err(bad(
            "The iss parameter does not name the demo issuer (RFC 9207).",
        ));
    }
    let code = q
        .get("code")
        .ok_or_else(|| bad("The response has no code."))?;
    let redirect_uri = format!("{}/demo/callback", state.config.public_url);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", verifier),
    ];
    let body =
        serde_urlencoded::to_string(form).map_err(|e| PageError::unexpected(Locale::En, &e))?;
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = crypto::b64(
        format!("{}:{}", enc(&client.client_id), enc(&client.client_secret)).as_bytes(),
    );
    let resp = state
        .outbound
        .client()?
        .post(format!("{issuer}/token"))
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| PageError::unexpected(Locale::En, &e))?;
    let tokens: Value = serde_json::from_slice(
        &resp
            .bytes()
            .await
            .map_err(|e| PageError::unexpected(Locale::En, &e))?,
    )
    .map_err(|e| PageError::unexpected(Locale::En, &e))?;
    let (Some(id_token), Some(access_token)) =
        (tokens["id_token"].as_str(), tokens["access_token"].as_str())
    else {
        out.error = Some(format!("The token endpoint answered: {tokens}"));
        return render(out);
    };
    let provider = state
        .providers
        .get(&state.pool, demo::TENANT)
        .await?
        .ok_or_else(|| bad("The demo tenant is gone."))?;
    let (_, claims) = provider
        .keys
        .verify(id_token)
        .map_err(|_| bad("The ID token signature does not verify against the JWKS."))?;
    if claims.get("nonce").and_then(Value::as_str) != Some(nonce)
        || claims.get("aud").and_then(Value::as_str) != Some(client.client_id.as_str())
    {
        return Err(bad("The ID token's nonce or audience is wrong."));
    }
    let userinfo_bytes = state
        .outbound
        .client()?
        .get(format!("{issuer}/userinfo"))
        .header("authorization", format!("Bearer {access_token}"))
        .send()
        .await
        .map_err(|e| PageError::unexpected(Locale::En, &e))?
        .bytes()
        .await
        .map_err(|e| PageError::unexpected(Locale::En, &e))?;
    let userinfo: Value = serde_json::from_slice(&userinfo_bytes)
        .map_err(|e| PageError::unexpected(Locale::En, &e))?;
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    out.claims = Some(pretty(&Value::Object(claims)));
    out.userinfo = Some(pretty(&userinfo));
    let mut logout = url::Url::parse(&format!("{issuer}/logout"))
        .map_err(|e| PageError::unexpected(Locale::En, &e))?;
    logout
        .query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair(
            "post_logout_redirect_uri",
            &format!("{}/demo", state.config.public_url),
        );
    out.logout_url = Some(logout.to_string());
    let mut removal = Cookie::build(COOKIE, "").path("/demo").finish();
    removal.make_removal();
    let body = out
        .render()
        .map_err(|e| PageError::unexpected(Locale::En, &e))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .cookie(removal)
        .body(body))
}
