//! What one rate-limiter hit asks and what the store answers: the types both stores (the
//! in-process [`super::memory`] and [`super::redis_store`]) share, and their clock.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{RateLimitConfig, Window};

/// What a store reports for one hit (the same in-process and in Redis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// Counted: the previous and current windows' counts after the hit, at `now_ms`.
    Allowed { prev: u64, cur: u64, now_ms: u64 },
    /// Over the limit; not counted. `lockout` is the address's number of lockouts in the ban
    /// window when this rejection locked it out.
    Rejected {
        prev: u64,
        cur: u64,
        now_ms: u64,
        lockout: Option<u64>,
    },
    /// Locked out for `remaining_ms` more.
    Locked { remaining_ms: u64 },
}

/// The parameters of one hit.
#[derive(Debug, Clone)]
pub struct HitSpec<'a> {
    /// The window counter (tenant, endpoint, address).
    pub key: &'a str,
    /// The address (lockout and violation counters).
    pub addr: &'a str,
    pub window: Window,
    pub policy: &'a RateLimitConfig,
    /// Whether rejections count towards the address's lockout and ban: not under a tenant
    /// window stricter than the server's, so one tenant cannot ban addresses for all.
    pub counts_towards_lockout: bool,
}

/// Milliseconds since the Unix epoch (the in-process store's clock; Redis uses its own).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
