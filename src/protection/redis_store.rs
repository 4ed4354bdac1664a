//! The Redis store of the rate limiter, shared by every instance: one Lua script per request
//! does the lockout check, the sliding-window count and the violation/lockout bookkeeping
//! atomically, on Redis's clock. Keys carry `redis_prefix`. Calls time out quickly; the
//! caller falls back to the in-process store when Redis fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use secrecy::{ExposeSecret, SecretString};

use super::hit::{now_ms, Hit, HitSpec};

/// KEYS: window hash, lock, violations, lockouts. ARGV: window ms, limit, violations that
/// lock, violation window ms, lockout ms, lockout-count window ms, whether rejections count
/// towards the lockout ("1"/"0"). Returns
/// `{kind, prev, cur, now_ms, extra}`: kind 0 admitted, 1 rejected, 2 locked (extra = ms
/// left), 3 rejected and now locked (extra = lockouts in the window).
const HIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local locked = redis.call('PTTL', KEYS[2])
if locked > 0 then return {2, 0, 0, now, locked} end
local w = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local idx = math.floor(now / w)
local v = redis.call('HMGET', KEYS[1], 'i', 'c', 'p', 'w')
local i = tonumber(v[1])
local cur = tonumber(v[2]) or 0
local prev = tonumber(v[3]) or 0
if i == nil or tonumber(v[4]) ~= w then
  cur = 0; prev = 0
elseif i == idx - 1 then
  prev = cur; cur = 0
elseif i ~= idx then
  cur = 0; prev = 0
end
local f = (now - idx * w) / w
local est = prev * (1 - f) + cur
local kind = 1
if est + 1 <= limit then
  cur = cur + 1
  kind = 0
end
redis.call('HSET', KEYS[1], 'i', idx, 'c', cur, 'p', prev, 'w', w)
redis.call('PEXPIRE', KEYS[1], 2 * w)
if kind == 0 or ARGV[7] == '0' then return {kind, prev, cur, now, 0} end
local n = redis.call('INCR', KEYS[3])
if n == 1 then redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[4])) end
if n >= tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[3])
  redis.call('SET', KEYS[2], '1', 'PX', tonumber(ARGV[5]))
  local o = redis.call('INCR', KEYS[4])
  if o == 1 then redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[6])) end
  return {3, prev, cur, now, o}
end
return {1, prev, cur, now, 0}
";

pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    script: Script,
    /// After a failure Redis is not asked again until then (ms since the epoch), so an
    /// outage costs neither a timeout per request nor a log line per request.
    retry_at_ms: AtomicU64,
}

/// How long Redis is skipped after a failure.
const BACKOFF_MS: u64 = 1000;

impl RedisStore {
    pub async fn connect(url: &SecretString, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url.expose_secret())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(2);
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| {
            redis::RedisError::from((redis::ErrorKind::Io, "timed out connecting to Redis"))
        })??;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
            script: Script::new(HIT),
            retry_at_ms: AtomicU64::new(0),
        })
    }

    pub fn available(&self) -> bool {
        now_ms() >= self.retry_at_ms.load(Ordering::Relaxed)
    }

    pub fn failed(&self) {
        self.retry_at_ms
            .store(now_ms() + BACKOFF_MS, Ordering::Relaxed);
    }

    fn addr_keys(&self, addr: &str) -> [String; 3] {
        [
            format!("{}lock:{addr}", self.prefix),
            format!("{}viol:{addr}", self.prefix),
            format!("{}lockouts:{addr}", self.prefix),
        ]
    }

    pub async fn hit(&self, spec: &HitSpec<'_>) -> Result<Hit, redis::RedisError> {
        let p = spec.policy;
        let [lock, viol, lockouts] = self.addr_keys(spec.addr);
        let mut conn = self.conn.clone();
        let (kind, prev, cur, now_ms, extra): (u8, u64, u64, u64, u64) = self
            .script
            .key(format!("{}rl:{}", self.prefix, spec.key))
            .key(lock)
            .key(viol)
            .key(lockouts)
            .arg(spec.window.window_secs.max(1) * 1000)
            .arg(spec.window.limit)
            .arg(p.lockout_violations)
            .arg(p.violation_window_secs * 1000)
            .arg(p.lockout_secs * 1000)
            .arg(p.ban_window_secs.max(1) * 1000)
            .arg(if spec.counts_towards_lockout {
                "1"
            } else {
                "0"
            })
            .invoke_async(&mut conn)
            .await?;
        Ok(match kind {
            0 => Hit::Allowed { prev, cur, now_ms },
            2 => Hit::Locked {
                remaining_ms: extra,
            },
            3 => Hit::Rejected {
                prev,
                cur,
                now_ms,
                lockout: Some(extra),
            },
            _ => Hit::Rejected {
                prev,
                cur,
                now_ms,
                lockout: None,
            },
        })
    }

    /// Forgets an address's lockout, violations and lockout count.
    pub async fn clear(&self, addr: &str) -> Result<(), redis::RedisError> {
        let mut conn = self.conn.clone();
        let keys = self.addr_keys(addr);
        redis::cmd("DEL")
            .arg(&keys[..])
            .query_async::<()>(&mut conn)
            .await
    }
}
