//! Load driver used by `benches/bench.sh`.
//!
//! ```text
//! bench-flow flow   --issuer URL --client-id ID --client-secret S --redirect-uri URI
//!                   --email E --password P [--concurrency 8] [--duration 10] [--scope openid]
//! bench-flow probe  --url URL [--rate 100] [--duration 10]
//! bench-flow argon2 [--m 65536] [--t 3] [--p 4] [--threads 1] [--duration 5]
//! bench-flow pop-key --out KEY.pem [--kid k1]
//! bench-flow pop    --url TOKEN_URL --client-id ID (--client-secret S | --key KEY.pem [--kid k1])
//!                   [--dpop 1] [--concurrency 32] [--duration 10] [--warmup 1]
//! ```
//!
//! `flow`: closed loop of complete authorization-code + PKCE (S256) flows with a password
//! sign-in through the provider's real HTML forms: GET authorization endpoint (from the
//! issuer's discovery document) → sign-in page → POST e-mail + password → 302/303 chain →
//! `redirect_uri?code=…` → POST token endpoint (client_secret_basic, code_verifier). Each
//! virtual user keeps its HTTP connections but starts every flow with an empty cookie jar, so
//! every flow signs in with the password. Redirects are followed by hand. Output: one JSON
//! object (completed flows/s, p50/p99 of the complete flow, errors).
//!
//! `probe`: open-loop GET at a fixed rate (latency measured from the scheduled send time, so
//! a stalled server is not hidden by coordinated omission). Output: one JSON object.
//!
//! `pop-key`: writes a new P-256 private key (PEM) and prints its public JWK Set, for a
//! client registered with `--jwks`.
//!
//! `pop`: closed loop of `client_credentials` token requests at `--concurrency`, each signed
//! fresh as a real client would: with `--key`, a `private_key_jwt` assertion (ES256, a new
//! `jti`, `aud` the issuer) instead of the secret; with `--dpop 1`, also a DPoP proof (ES256,
//! a new `jti`) of a key generated at start. The signing happens in the driver, on its CPUs.
//! Output: one JSON object (requests/s, p50/p99, errors; the token type seen).
//!
//! `argon2`: Argon2id hashes/s with `argon2-rust` and one reused hasher per thread (as
//! Portcullis), `--threads` threads for `--duration` seconds. Output: one JSON object.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use regex::Regex;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderValue, LOCATION};
use reqwest::{redirect, Client, StatusCode, Url};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

type AnyResult<T> = Result<T, String>;

fn die(msg: &str) -> ! {
    eprintln!("bench-flow: {msg}");
    std::process::exit(2);
}

struct Args(HashMap<String, String>);

impl Args {
    fn parse(rest: &[String]) -> Args {
        let mut m = HashMap::new();
        let mut it = rest.iter();
        while let Some(k) = it.next() {
            let Some(key) = k.strip_prefix("--") else {
                die(&format!("unexpected argument {k}"));
            };
            let Some(v) = it.next() else {
                die(&format!("--{key} needs a value"));
            };
            m.insert(key.to_string(), v.clone());
        }
        Args(m)
    }
    fn req(&self, k: &str) -> String {
        self.0
            .get(k)
            .cloned()
            .unwrap_or_else(|| die(&format!("--{k} is required")))
    }
    fn get(&self, k: &str, default: &str) -> String {
        self.0.get(k).cloned().unwrap_or_else(|| default.to_string())
    }
    fn num<T: std::str::FromStr>(&self, k: &str, default: &str) -> T {
        self.get(k, default)
            .parse()
            .unwrap_or_else(|_| die(&format!("--{k} must be a number")))
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first() else {
        die("usage: bench-flow flow|probe|argon2 [--key value ...]");
    };
    let args = Args::parse(&argv[1..]);
    let out = match cmd.as_str() {
        "argon2" => argon2_ceiling(&args),
        "pop-key" => pop_key(&args),
        "flow" | "probe" | "pop" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| die(&format!("tokio: {e}")));
            match cmd.as_str() {
                "flow" => rt.block_on(flow_main(&args)),
                "pop" => rt.block_on(pop_main(&args)),
                _ => rt.block_on(probe_main(&args)),
            }
        }
        other => die(&format!("unknown subcommand {other}")),
    };
    println!("{out}");
}

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

fn percentile_ms(sorted_us: &[u64], p: f64) -> Value {
    if sorted_us.is_empty() {
        return Value::Null;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted_us.len()) - 1;
    json!((sorted_us[idx] as f64 / 1000.0 * 100.0).round() / 100.0)
}

// ---------------------------------------------------------------------------
// Argon2id ceiling
// ---------------------------------------------------------------------------

fn argon2_ceiling(args: &Args) -> Value {
    use argon2_rust::{params::Memory, Algorithm, Argon2, Params, Version};
    let m: u32 = args.num("m", "65536");
    let t: u32 = args.num("t", "3");
    let p: u32 = args.num("p", "4");
    let threads: usize = args.num("threads", "1");
    let secs: f64 = args.num("duration", "5");
    let params = Params::builder()
        .memory(Memory::kib(u64::from(m)))
        .passes(t)
        .lanes(p)
        .build()
        .unwrap_or_else(|e| die(&format!("argon2: {e}")));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..threads.max(1))
        .map(|_| {
            std::thread::spawn(move || {
                // One reused hasher per thread, as the server keeps one per permit.
                let mut a2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hasher();
                let mut out = [0u8; 32];
                let mut salt = [0u8; 16];
                let mut n = 0u64;
                let mut last = Instant::now();
                while Instant::now() < deadline {
                    let _ = getrandom::getrandom(&mut salt);
                    if a2
                        .hash_into(b"correct horse battery staple", &salt, &mut out)
                        .is_err()
                    {
                        die("argon2 hash failed");
                    }
                    n += 1;
                    last = Instant::now();
                }
                (n, last)
            })
        })
        .collect();
    let mut total = 0u64;
    let mut end = start;
    for h in handles {
        let (n, last) = h.join().unwrap_or((0, start));
        total += n;
        end = end.max(last);
    }
    let elapsed = end.duration_since(start).as_secs_f64().max(1e-9);
    json!({
        "m_kib": m, "t": t, "p": p, "threads": threads,
        "hashes": total, "seconds": (elapsed * 1000.0).round() / 1000.0,
        "hashes_per_s": (total as f64 / elapsed * 100.0).round() / 100.0,
    })
}

// ---------------------------------------------------------------------------
// Fixed-rate probe
// ---------------------------------------------------------------------------

async fn probe_main(args: &Args) -> Value {
    let url = args.req("url");
    let rate: f64 = args.num("rate", "100");
    let secs: f64 = args.num("duration", "10");
    let client = Client::builder()
        .redirect(redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|e| die(&format!("http client: {e}")));
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let start = tokio::time::Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut handles = Vec::new();
    let mut k = 0u32;
    loop {
        let at = start + interval * k;
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at).await;
        let client = client.clone();
        let url = url.clone();
        handles.push(tokio::spawn(async move {
            let ok = match client.get(&url).send().await {
                Ok(r) => {
                    let good = r.status().is_success();
                    r.bytes().await.is_ok() && good
                }
                Err(_) => false,
            };
            (ok, at.elapsed().as_micros() as u64)
        }));
        k += 1;
    }
    let mut lat = Vec::new();
    let mut errors = 0u64;
    for h in handles {
        match h.await {
            Ok((true, us)) => lat.push(us),
            _ => errors += 1,
        }
    }
    lat.sort_unstable();
    json!({
        "url": url, "rate": rate, "requests": lat.len() as u64 + errors, "errors": errors,
        "p50_ms": percentile_ms(&lat, 50.0), "p99_ms": percentile_ms(&lat, 99.0),
        "max_ms": percentile_ms(&lat, 100.0),
    })
}

// ---------------------------------------------------------------------------
// Authorization-code + PKCE flow
// ---------------------------------------------------------------------------

/// A cookie jar that can be emptied between flows while the client keeps its connections.
struct ResettableJar(RwLock<Arc<Jar>>);

impl ResettableJar {
    fn reset(&self) {
        if let Ok(mut j) = self.0.write() {
            *j = Arc::new(Jar::default());
        }
    }
    fn jar(&self) -> Arc<Jar> {
        match self.0.read() {
            Ok(j) => j.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl CookieStore for ResettableJar {
    fn set_cookies(&self, headers: &mut dyn Iterator<Item = &HeaderValue>, url: &Url) {
        self.jar().set_cookies(headers, url)
    }
    fn cookies(&self, url: &Url) -> Option<HeaderValue> {
        self.jar().cookies(url)
    }
}

struct FlowConfig {
    authorize: Url,
    token: String,
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    email: String,
    password: String,
    scope: String,
    form_re: Regex,
    action_re: Regex,
    input_re: Regex,
    attr_re: Regex,
}

fn random_b64(n: usize) -> String {
    let mut b = vec![0u8; n];
    let _ = getrandom::getrandom(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&#x3d;", "=")
        .replace("&#x3D;", "=")
        .replace("&#61;", "=")
        .replace("&#x2b;", "+")
        .replace("&#43;", "+")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

struct Form {
    action: String,
    hidden: Vec<(String, String)>,
    has_password: bool,
    submit: Option<(String, String)>,
}

/// The form with a password field (else the last form) of a page.
fn parse_form(cfg: &FlowConfig, html: &str) -> Option<Form> {
    let forms: Vec<&str> = cfg.form_re.find_iter(html).map(|m| m.as_str()).collect();
    let form = forms
        .iter()
        .find(|f| f.contains("type=\"password\""))
        .or(forms.last())?;
    let action = unescape(&cfg.action_re.captures(form)?[1]);
    let mut hidden = Vec::new();
    let mut submit = None;
    for tag in cfg.input_re.find_iter(form) {
        let attrs: HashMap<String, String> = cfg
            .attr_re
            .captures_iter(tag.as_str())
            .map(|c| (c[1].to_ascii_lowercase(), unescape(&c[2])))
            .collect();
        let ty = attrs.get("type").map(String::as_str).unwrap_or("");
        if let Some(name) = attrs.get("name") {
            let value = attrs.get("value").cloned().unwrap_or_default();
            if ty == "hidden" {
                hidden.push((name.clone(), value));
            } else if ty == "submit" && submit.is_none() && !value.is_empty() {
                submit = Some((name.clone(), value));
            }
        }
    }
    Some(Form {
        action,
        hidden,
        has_password: form.contains("type=\"password\""),
        submit,
    })
}

fn location(resp: &reqwest::Response, base: &Url) -> AnyResult<Url> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("{} without Location at {base}", resp.status()))?;
    base.join(loc).map_err(|e| format!("bad Location {loc}: {e}"))
}

fn code_from(cfg: &FlowConfig, url: &Url, state: &str) -> Option<AnyResult<String>> {
    if !url.as_str().starts_with(&cfg.redirect_uri) {
        return None;
    }
    let q: HashMap<_, _> = url.query_pairs().into_owned().collect();
    Some(match (q.get("code"), q.get("state")) {
        (Some(c), Some(s)) if s == state => Ok(c.clone()),
        (Some(_), _) => Err("state mismatch".into()),
        _ => Err(format!(
            "redirect without code: {}",
            q.get("error").map(String::as_str).unwrap_or("?")
        )),
    })
}

async fn one_flow(cfg: &FlowConfig, client: &Client) -> AnyResult<()> {
    let verifier = random_b64(32);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = random_b64(12);
    let nonce = random_b64(12);
    let mut url = cfg.authorize.clone();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &cfg.client_id)
        .append_pair("redirect_uri", &cfg.redirect_uri)
        .append_pair("scope", &cfg.scope)
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let mut code = None;
    let mut signed_in = false;
    for _ in 0..12 {
        let resp = client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status();
        let next = if status.is_redirection() {
            location(&resp, &url)?
        } else if status == StatusCode::OK {
            let html = resp.text().await.map_err(|e| format!("body: {e}"))?;
            let form = parse_form(cfg, &html).ok_or_else(|| format!("no form at {url}"))?;
            let mut fields = form.hidden.clone();
            if form.has_password {
                if signed_in {
                    return Err("sign-in form shown again (wrong password?)".into());
                }
                signed_in = true;
                fields.push(("email".into(), cfg.email.clone()));
                fields.push(("password".into(), cfg.password.clone()));
                fields.push(
                    form.submit
                        .clone()
                        .unwrap_or_else(|| ("action".into(), "sign_in".into())),
                );
            } else if html.contains("value=\"allow\"") {
                fields.push(("decision".into(), "allow".into()));
            } else {
                return Err(format!("unexpected page at {url}"));
            }
            let action = url
                .join(&form.action)
                .map_err(|e| format!("bad form action {}: {e}", form.action))?;
            let resp = client
                .post(action.clone())
                .form(&fields)
                .send()
                .await
                .map_err(|e| format!("POST {action}: {e}"))?;
            if !resp.status().is_redirection() {
                let st = resp.status();
                let body = resp.text().await.unwrap_or_default();
                return Err(format!(
                    "form POST {action} answered {st}: {}",
                    body.chars().take(200).collect::<String>()
                ));
            }
            location(&resp, &action)?
        } else {
            let body = resp.text().await.unwrap_or_default();
            return Err(format!(
                "GET {url} answered {status}: {}",
                body.chars().take(200).collect::<String>()
            ));
        };
        if let Some(c) = code_from(cfg, &next, &state) {
            code = Some(c?);
            break;
        }
        url = next;
    }
    let code = code.ok_or("too many steps before the redirect URI")?;
    if !signed_in {
        return Err("reached the redirect URI without a password sign-in".into());
    }
    let resp = client
        .post(&cfg.token)
        .basic_auth(&cfg.client_id, Some(&cfg.client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", cfg.redirect_uri.as_str()),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .map_err(|e| format!("POST token: {e}"))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| format!("token body: {e}"))?;
    if status != StatusCode::OK || !body.contains("\"access_token\"") || !body.contains("\"id_token\"") {
        return Err(format!(
            "token answered {status}: {}",
            body.chars().take(200).collect::<String>()
        ));
    }
    Ok(())
}

async fn flow_main(args: &Args) -> Value {
    let issuer = args.req("issuer");
    let concurrency: usize = args.num("concurrency", "8");
    let secs: f64 = args.num("duration", "10");
    let warmup: usize = args.num("warmup", "1");
    let discovery_client = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|e| die(&format!("http client: {e}")));
    let disc_url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let disc: Value = match discovery_client.get(&disc_url).send().await {
        Ok(r) => serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null),
        Err(e) => die(&format!("GET {disc_url}: {e}")),
    };
    let endpoint = |k: &str| {
        disc.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| die(&format!("no {k} in {disc_url}")))
    };
    let re = |s: &str| Regex::new(s).unwrap_or_else(|e| die(&format!("regex: {e}")));
    let cfg = Arc::new(FlowConfig {
        authorize: Url::parse(&endpoint("authorization_endpoint"))
            .unwrap_or_else(|e| die(&format!("authorization_endpoint: {e}"))),
        token: endpoint("token_endpoint"),
        client_id: args.req("client-id"),
        client_secret: args.req("client-secret"),
        redirect_uri: args.req("redirect-uri"),
        email: args.req("email"),
        password: args.req("password"),
        scope: args.get("scope", "openid"),
        form_re: re(r"(?is)<form\b.*?</form>"),
        action_re: re(r#"(?is)<form\b[^>]*\baction="([^"]*)""#),
        input_re: re(r"(?is)<(?:input|button)\b[^>]*>"),
        attr_re: re(r#"(?is)\b([a-z-]+)="([^"]*)""#),
    });

    let make_client = || {
        let jar = Arc::new(ResettableJar(RwLock::new(Arc::new(Jar::default()))));
        let client = Client::builder()
            .redirect(redirect::Policy::none())
            .cookie_provider(jar.clone())
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build()
            .unwrap_or_else(|e| die(&format!("http client: {e}")));
        (jar, client)
    };

    // Warm-up (sequential, not measured): also checks that one flow works at all.
    let mut warm_errors = Vec::new();
    {
        let (jar, client) = make_client();
        for _ in 0..warmup {
            jar.reset();
            if let Err(e) = one_flow(&cfg, &client).await {
                warm_errors.push(e);
            }
        }
    }

    let start = tokio::time::Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let cfg = cfg.clone();
        let (jar, client) = make_client();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut first_error: Option<String> = None;
            let mut aborted = 0u64;
            while tokio::time::Instant::now() < deadline {
                jar.reset();
                let t = Instant::now();
                match tokio::time::timeout_at(deadline, one_flow(&cfg, &client)).await {
                    Ok(Ok(())) => lat.push(t.elapsed().as_micros() as u64),
                    Ok(Err(e)) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                    Err(_) => aborted += 1,
                }
            }
            (lat, errors, first_error, aborted)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0u64;
    let mut aborted = 0u64;
    let mut first_error = warm_errors.first().cloned();
    for t in tasks {
        if let Ok((l, e, fe, a)) = t.await {
            lat.extend(l);
            errors += e;
            aborted += a;
            if first_error.is_none() {
                first_error = fe;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    json!({
        "issuer": issuer, "concurrency": concurrency, "seconds": (elapsed * 1000.0).round() / 1000.0,
        "flows": lat.len(), "flows_per_s": ((lat.len() as f64 / elapsed) * 100.0).round() / 100.0,
        "p50_ms": percentile_ms(&lat, 50.0), "p99_ms": percentile_ms(&lat, 99.0),
        "errors": errors, "warmup_errors": warm_errors.len(), "aborted_at_deadline": aborted,
        "first_error": first_error,
    })
}

// ---------------------------------------------------------------------------
// Proof-of-possession client_credentials: private_key_jwt and DPoP
// ---------------------------------------------------------------------------

use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::Private;

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The public JWK of a P-256 key.
fn public_jwk(key: &EcKey<Private>) -> Value {
    let mut ctx = BigNumContext::new().unwrap_or_else(|e| die(&format!("openssl: {e}")));
    let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
    key.public_key()
        .affine_coordinates(key.group(), &mut x, &mut y, &mut ctx)
        .unwrap_or_else(|e| die(&format!("openssl: {e}")));
    let pad = |n: &BigNum| b64(&n.to_vec_padded(32).unwrap_or_default());
    json!({"kty": "EC", "crv": "P-256", "x": pad(&x), "y": pad(&y)})
}

fn new_p256() -> EcKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)
        .unwrap_or_else(|e| die(&format!("openssl: {e}")));
    EcKey::generate(&group).unwrap_or_else(|e| die(&format!("openssl: {e}")))
}

/// A compact ES256 JWS of `claims` with `header`.
fn es256(key: &EcKey<Private>, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let digest = Sha256::digest(input.as_bytes());
    let sig = EcdsaSig::sign(&digest, key).unwrap_or_else(|e| die(&format!("sign: {e}")));
    let mut raw = sig.r().to_vec_padded(32).unwrap_or_default();
    raw.extend_from_slice(&sig.s().to_vec_padded(32).unwrap_or_default());
    format!("{input}.{}", b64(&raw))
}

fn pop_key(args: &Args) -> Value {
    let out = args.req("out");
    let kid = args.get("kid", "k1");
    let key = new_p256();
    let pem = key
        .private_key_to_pem()
        .unwrap_or_else(|e| die(&format!("openssl: {e}")));
    std::fs::write(&out, pem).unwrap_or_else(|e| die(&format!("write {out}: {e}")));
    let mut jwk = public_jwk(&key);
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!("ES256");
    jwk["use"] = json!("sig");
    json!({ "keys": [jwk] })
}

struct PopConfig {
    url: String,
    issuer: String,
    client_id: String,
    secret: Option<String>,
    key: Option<EcKey<Private>>,
    kid: String,
    dpop: Option<(EcKey<Private>, Value)>,
}

/// One token request, signed afresh: Ok(token_type) or the reason it failed.
async fn pop_request(client: &Client, cfg: &PopConfig) -> AnyResult<String> {
    let mut form: Vec<(&str, String)> = vec![("grant_type", "client_credentials".into())];
    let now = now_secs();
    if let Some(key) = &cfg.key {
        let claims = json!({"iss": cfg.client_id, "sub": cfg.client_id, "aud": cfg.issuer,
            "iat": now, "exp": now + 60, "jti": random_b64(16)});
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": cfg.kid});
        form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
        form.push(("client_assertion", es256(key, &header, &claims)));
    }
    let mut req = client.post(&cfg.url);
    if let Some(secret) = &cfg.secret {
        req = req.basic_auth(&cfg.client_id, Some(secret));
    }
    if let Some((key, jwk)) = &cfg.dpop {
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        let claims = json!({"jti": random_b64(16), "htm": "POST", "htu": cfg.url, "iat": now});
        req = req.header("DPoP", es256(key, &header, &claims));
    }
    let resp = req.form(&form).send().await.map_err(|e| format!("POST token: {e}"))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| format!("token body: {e}"))?;
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    match (status, parsed["token_type"].as_str()) {
        (StatusCode::OK, Some(t)) => Ok(t.to_string()),
        _ => Err(format!("token answered {status}: {}", body.chars().take(200).collect::<String>())),
    }
}

async fn pop_main(args: &Args) -> Value {
    let url = args.req("url");
    let concurrency: usize = args.num("concurrency", "32");
    let secs: f64 = args.num("duration", "10");
    let warmup: f64 = args.num("warmup", "1");
    let key = args.0.get("key").map(|path| {
        let pem = std::fs::read(path).unwrap_or_else(|e| die(&format!("read {path}: {e}")));
        EcKey::private_key_from_pem(&pem).unwrap_or_else(|e| die(&format!("{path}: {e}")))
    });
    let secret = args.0.get("client-secret").cloned();
    if key.is_none() && secret.is_none() {
        die("pop needs --client-secret or --key");
    }
    let dpop = (args.get("dpop", "0") == "1").then(|| {
        let k = new_p256();
        let jwk = public_jwk(&k);
        (k, jwk)
    });
    let cfg = Arc::new(PopConfig {
        issuer: url.strip_suffix("/token").unwrap_or(&url).to_string(),
        url: url.clone(),
        client_id: args.req("client-id"),
        secret,
        key,
        kid: args.get("kid", "k1"),
        dpop,
    });
    let client = Client::builder()
        .redirect(redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap_or_else(|e| die(&format!("http client: {e}")));
    let run = |seconds: f64| {
        let handles: Vec<_> = (0..concurrency)
            .map(|_| {
                let client = client.clone();
                let cfg = cfg.clone();
                tokio::spawn(async move {
                    let end = Instant::now() + Duration::from_secs_f64(seconds);
                    let (mut lat, mut errors, mut first_error, mut kind) =
                        (Vec::new(), 0u64, None::<String>, None::<String>);
                    while Instant::now() < end {
                        let t = Instant::now();
                        match pop_request(&client, &cfg).await {
                            Ok(t_type) => {
                                lat.push(t.elapsed().as_micros() as u64);
                                kind.get_or_insert(t_type);
                            }
                            Err(e) => {
                                errors += 1;
                                first_error.get_or_insert(e);
                            }
                        }
                    }
                    (lat, errors, first_error, kind)
                })
            })
            .collect();
        handles
    };
    if warmup > 0.0 {
        for h in run(warmup) {
            let _ = h.await;
        }
    }
    let start = Instant::now();
    let mut lat = Vec::new();
    let (mut errors, mut first_error, mut kind) = (0u64, None, None);
    for h in run(secs) {
        if let Ok((l, e, f, k)) = h.await {
            lat.extend(l);
            errors += e;
            if first_error.is_none() {
                first_error = f;
            }
            if kind.is_none() {
                kind = k;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    json!({
        "requests_per_s": lat.len() as f64 / elapsed.max(1e-9), "requests": lat.len(),
        "errors": errors, "first_error": first_error, "token_type": kind,
        "p50_ms": percentile_ms(&lat, 50.0), "p99_ms": percentile_ms(&lat, 99.0),
    })
}
