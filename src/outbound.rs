//! Outbound HTTP (back-channel logout, upstream identity providers, metadata): one client
//! with a timeout on every call and no redirects, built on first use (loading the system's
//! CA certificates costs start-up time and memory an instance may never need).

use std::sync::OnceLock;
use std::time::Duration;

pub struct Outbound {
    timeout: Duration,
    client: OnceLock<Result<reqwest::Client, String>>,
}

impl Outbound {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            client: OnceLock::new(),
        }
    }

    /// The client (timeouts from `outbound_timeout_secs`, no redirects).
    pub fn client(&self) -> anyhow::Result<&reqwest::Client> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .timeout(self.timeout)
                    .connect_timeout(self.timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| anyhow::anyhow!("cannot build the outbound HTTP client: {e}"))
    }
}

/// An outbound call's failure in words (for administrators; no secret in it).
pub fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        e.to_string()
    }
}

/// Reads a response body of at most `max` bytes.
pub async fn read_bounded(response: &mut reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("response larger than {max} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e))? {
        if body.len() + chunk.len() > max {
            return Err(format!("response larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether a URL names a loopback address (`127.0.0.0/8`, `::1`, `localhost`).
pub fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// A URL Portcullis may call: https, or plain http to a loopback address (local
/// development and tests), so no registration aims server-side requests elsewhere in clear.
pub fn https_or_loopback(raw: &str) -> Option<url::Url> {
    let u = url::Url::parse(raw).ok()?;
    match u.scheme() {
        "https" if u.host().is_some() => Some(u),
        "http" if is_loopback(&u) => Some(u),
        _ => None,
    }
}
