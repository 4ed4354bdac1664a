//! The in-process store of the rate limiter: the same arithmetic as the Redis script
//! ([`super::redis_store`]), behind one mutex. Bounded: stale entries are swept by the
//! background jobs, and the map is swept at once when it grows past its cap.

use super::hit::{now_ms, Hit, HitSpec};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy)]
struct Counter {
    window_ms: u64,
    index: u64,
    cur: u64,
    prev: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Address {
    locked_until_ms: u64,
    violations: u64,
    violations_until_ms: u64,
    lockouts: u64,
    lockouts_until_ms: u64,
}

#[derive(Default)]
struct Inner {
    windows: HashMap<String, Counter>,
    addresses: HashMap<String, Address>,
    next_forced_sweep_ms: u64,
}

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

/// Entries kept before a sweep is forced (an attack from many addresses).
const MAX_ENTRIES: usize = 200_000;

impl MemoryStore {
    pub fn hit(&self, spec: &HitSpec<'_>) -> Hit {
        self.hit_at(spec, now_ms())
    }

    fn hit_at(&self, spec: &HitSpec<'_>, now: u64) -> Hit {
        let Ok(mut inner) = self.inner.lock() else {
            // A panicked holder poisoned the lock: admit rather than fail every request.
            return Hit::Allowed {
                prev: 0,
                cur: 0,
                now_ms: now,
            };
        };
        if inner.windows.len() + inner.addresses.len() > MAX_ENTRIES
            && now >= inner.next_forced_sweep_ms
        {
            // At most once a second; if fresh entries alone exceed the cap (an attack from
            // many addresses), the window counters are dropped rather than growing without
            // bound (lockouts are kept).
            inner.next_forced_sweep_ms = now + 1000;
            sweep(&mut inner, now);
            if inner.windows.len() + inner.addresses.len() > MAX_ENTRIES {
                inner.windows.clear();
            }
        }
        let policy = spec.policy;
        if let Some(a) = inner.addresses.get(spec.addr) {
            if a.locked_until_ms > now {
                return Hit::Locked {
                    remaining_ms: a.locked_until_ms - now,
                };
            }
        }
        let w = spec.window.window_secs.max(1) * 1000;
        let index = now / w;
        // Look up before inserting: the key is allocated only for a new counter.
        if !inner.windows.contains_key(spec.key) {
            inner.windows.insert(
                spec.key.to_string(),
                Counter {
                    window_ms: w,
                    index,
                    cur: 0,
                    prev: 0,
                },
            );
        }
        let Some(c) = inner.windows.get_mut(spec.key) else {
            return Hit::Allowed {
                prev: 0,
                cur: 0,
                now_ms: now,
            };
        };
        if c.index + 1 == index {
            c.prev = c.cur;
            c.cur = 0;
        } else if c.index != index || c.window_ms != w {
            c.prev = 0;
            c.cur = 0;
        }
        c.index = index;
        c.window_ms = w;
        let f = (now - index * w) as f64 / w as f64;
        let estimate = c.prev as f64 * (1.0 - f) + c.cur as f64;
        if estimate + 1.0 <= spec.window.limit as f64 {
            c.cur += 1;
            return Hit::Allowed {
                prev: c.prev,
                cur: c.cur,
                now_ms: now,
            };
        }
        let (prev, cur) = (c.prev, c.cur);
        if !spec.counts_towards_lockout {
            return Hit::Rejected {
                prev,
                cur,
                now_ms: now,
                lockout: None,
            };
        }
        let a = inner.addresses.entry(spec.addr.to_string()).or_default();
        if a.violations_until_ms <= now {
            a.violations = 0;
            a.violations_until_ms = now + policy.violation_window_secs * 1000;
        }
        a.violations += 1;
        let mut lockout = None;
        if a.violations >= policy.lockout_violations {
            a.violations = 0;
            a.violations_until_ms = 0;
            a.locked_until_ms = now + policy.lockout_secs * 1000;
            if a.lockouts_until_ms <= now {
                a.lockouts = 0;
                a.lockouts_until_ms = now + policy.ban_window_secs * 1000;
            }
            a.lockouts += 1;
            lockout = Some(a.lockouts);
        }
        Hit::Rejected {
            prev,
            cur,
            now_ms: now,
            lockout,
        }
    }

    pub fn sweep(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            sweep(&mut inner, now_ms());
        }
    }

    pub fn clear(&self, addr: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.addresses.remove(addr);
        }
    }
}

fn sweep(inner: &mut Inner, now: u64) {
    inner
        .windows
        .retain(|_, c| (c.index + 2) * c.window_ms > now);
    inner.addresses.retain(|_, a| {
        a.locked_until_ms > now || a.violations_until_ms > now || a.lockouts_until_ms > now
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RateLimitConfig, Window};

    fn spec<'a>(policy: &'a RateLimitConfig, key: &'a str) -> HitSpec<'a> {
        HitSpec {
            key,
            addr: "192.0.2.1",
            window: Window {
                limit: 3,
                window_secs: 60,
            },
            policy,
            counts_towards_lockout: true,
        }
    }

    #[test]
    fn requests_over_the_limit_are_rejected_and_not_counted() {
        let policy = RateLimitConfig::default();
        let store = MemoryStore::default();
        let s = spec(&policy, "k");
        for i in 1..=3 {
            assert!(matches!(store.hit_at(&s, 1_000), Hit::Allowed { cur, .. } if cur == i));
        }
        assert!(matches!(
            store.hit_at(&s, 2_000),
            Hit::Rejected {
                cur: 3,
                lockout: None,
                ..
            }
        ));
        // Two windows later nothing is left.
        assert!(matches!(
            store.hit_at(&s, 121_000),
            Hit::Allowed {
                prev: 0,
                cur: 1,
                ..
            }
        ));
    }

    #[test]
    fn repeated_rejections_lock_the_address_out_and_count_lockouts() {
        let policy = RateLimitConfig {
            lockout_violations: 2,
            lockout_secs: 10,
            ..RateLimitConfig::default()
        };
        let store = MemoryStore::default();
        let s = spec(&policy, "k");
        for _ in 0..3 {
            store.hit_at(&s, 1_000);
        }
        assert!(matches!(
            store.hit_at(&s, 1_000),
            Hit::Rejected { lockout: None, .. }
        ));
        assert!(matches!(
            store.hit_at(&s, 1_000),
            Hit::Rejected {
                lockout: Some(1),
                ..
            }
        ));
        // Locked for every endpoint of the address, not just this counter.
        let other = spec(&policy, "other");
        assert_eq!(
            store.hit_at(&other, 2_000),
            Hit::Locked {
                remaining_ms: 9_000
            }
        );
        assert!(matches!(store.hit_at(&other, 11_000), Hit::Allowed { .. }));
    }
}
