//! Prometheus metrics of an instance (`GET /metrics`, OpenMetrics text): HTTP requests by
//! route and status with a latency histogram, sign-ins, tokens issued, rate-limit
//! rejections and audit events. Security counters are fed from the audit log's events, so
//! every place that records an event is counted without a second call. Never imports
//! actix-web; label values are bounded (route patterns, not paths).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrantLabels {
    grant_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    group: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: String,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms … ~4 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    signins: Family<ResultLabels, Counter>,
    tokens: Family<GrantLabels, Counter>,
    rejections: Family<RejectionLabels, Counter>,
    events: Family<EventLabels, Counter>,
    resident: Gauge<i64, AtomicI64Shim>,
    in_flight: Gauge,
}

/// `Gauge` needs an atomic of its value type; `i64` uses `AtomicI64`.
type AtomicI64Shim = std::sync::atomic::AtomicI64;

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "portcullis_http_requests",
            "HTTP requests by route pattern, method and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "portcullis_http_request_duration_seconds",
            "HTTP request latency by route pattern",
            latency.clone(),
        );
        let signins = Family::<ResultLabels, Counter>::default();
        registry.register(
            "portcullis_signins",
            "Sign-ins by result (success, failure, locked; federated ones included)",
            signins.clone(),
        );
        let tokens = Family::<GrantLabels, Counter>::default();
        registry.register(
            "portcullis_tokens_issued",
            "Access tokens issued by grant type",
            tokens.clone(),
        );
        let rejections = Family::<RejectionLabels, Counter>::default();
        registry.register(
            "portcullis_rate_limit_rejections",
            "Requests refused by the rate limiter, by endpoint group and reason (limited, locked, banned)",
            rejections.clone(),
        );
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "portcullis_audit_events",
            "Security events written to the audit log",
            events.clone(),
        );
        let resident = Gauge::<i64, AtomicI64Shim>::default();
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the process",
            resident.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "portcullis_http_requests_in_flight",
            "HTTP requests being served",
            in_flight.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            signins,
            tokens,
            rejections,
            events,
            resident,
            in_flight,
        }
    }
}

/// Marks a request in flight until dropped.
pub struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    pub fn request_started(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                // A fixed set: arbitrary extension methods must not create series.
                method: match method {
                    "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
                    _ => "other",
                }
                .to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(seconds);
    }

    pub fn rate_limited(&self, group: &'static str, reason: &'static str) {
        self.rejections
            .get_or_create(&RejectionLabels { group, reason })
            .inc();
    }

    /// Counts an audit event, and the sign-in or token counter it stands for.
    pub fn audit_event(&self, event: &str, grant_type: Option<&str>) {
        self.events
            .get_or_create(&EventLabels {
                event: event.to_string(),
            })
            .inc();
        let signin = match event {
            "signin.success" => Some("success"),
            "signin.failure" | "federation.failure" => Some("failure"),
            "signin.locked" => Some("locked"),
            _ => None,
        };
        if let Some(result) = signin {
            self.signins.get_or_create(&ResultLabels { result }).inc();
        }
        if event == "token.issued" {
            self.tokens
                .get_or_create(&GrantLabels {
                    grant_type: grant_type.unwrap_or("unknown").to_string(),
                })
                .inc();
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        if let Some(bytes) = resident_bytes() {
            self.resident.set(bytes);
        }
        let mut out = String::with_capacity(16 * 1024);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Resident set size from `/proc/self/statm` (Linux; 4 KiB pages).
fn resident_bytes() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
