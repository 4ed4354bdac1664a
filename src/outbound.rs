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
