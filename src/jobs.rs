//! Background jobs of a running instance. Per instance: back-channel logout deliveries
//! (each claimed atomically, so instances share the work), API key usage flushes, the ban
//! list refresh, the in-process limiter sweep and the release of idle password-hashing
//! arenas. Once across instances — the instance that claims the due run in `job_runs` does
//! it: purging expired codes, requests, sessions, tokens, keys and bans, and audit rows
//! older than `audit_retention_days`; rotating signing keys older than `key_rotation_secs`;
//! refreshing SAML IdP metadata.

use std::collections::HashMap;
use std::time::Duration;

use crate::audit::{self, AuditEvent, Context};
use crate::sessions;
use crate::state::AppState;
use crate::storage;

const TICK: Duration = Duration::from_secs(2);

pub fn spawn(state: AppState) {
    tokio::spawn(async move {
        // The first run waits one tick: start-up (and the first /ready) does not share the
        // core with a purge; `open_state` has already loaded the ban list.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
        let mut n: u64 = 0;
        let mut schedule = Schedule::default();
        loop {
            tick.tick().await;
            sessions::deliver_due(&state.pool, &state.outbound).await;
            if n.is_multiple_of(5) {
                crate::api_keys::flush_usage(state.api_keys()).await;
            }
            if n.is_multiple_of(2) {
                if let Err(e) = state.protection.refresh_bans(&state.pool).await {
                    tracing::warn!(error = %e, "ban list refresh failed");
                }
            }
            if n.is_multiple_of(30) {
                state.protection.sweep();
                state
                    .hasher
                    .release_idle(crate::accounts::PasswordHasher::IDLE_RELEASE);
            }
            let c = &state.config;
            if schedule.due(&state, "purge", c.purge_interval_secs).await {
                purge(&state).await;
            }
            if c.key_rotation_secs > 0
                && schedule
                    .due(&state, "key_rotation", c.key_rotation_check_secs)
                    .await
            {
                rotate_due_keys(&state).await;
            }
            if schedule.due(&state, "saml_metadata", 3600).await {
                if let Err(e) = crate::federation::refresh_metadata(state.federation(), 3600).await
                {
                    tracing::warn!(error = %e, "SAML metadata refresh failed");
                }
            }
            n += 1;
        }
    });
}

/// When each once-across-instances job is next due, as this instance last learned it, so
/// the database is asked only when a run may be due.
#[derive(Default)]
struct Schedule {
    next: HashMap<&'static str, i64>,
}

impl Schedule {
    /// Whether this instance should run `job` now: it is due and this instance won the claim.
    async fn due(&mut self, state: &AppState, job: &'static str, period_secs: u64) -> bool {
        let now = storage::now();
        if self.next.get(job).is_some_and(|t| *t > now) {
            return false;
        }
        let next = now + period_secs as i64;
        match storage::jobs::claim_job(&state.pool, job, &state.instance_id, now, next).await {
            Ok(true) => {
                self.next.insert(job, next);
                true
            }
            Ok(false) => {
                // Another instance ran it; look again when it is next due.
                match storage::jobs::job_next_run(&state.pool, job).await {
                    Ok(Some(t)) => {
                        self.next.insert(job, t);
                    }
                    Ok(None) | Err(_) => {
                        self.next.insert(job, now + TICK.as_secs() as i64);
                    }
                }
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, job, "cannot claim a background job");
                false
            }
        }
    }
}

/// Deletes what expired (or ended) more than `expired_retention_secs` ago, and audit events
/// older than `audit_retention_days`.
pub async fn purge(state: &AppState) {
    let now = storage::now();
    let c = &state.config;
    let expired = now - c.expired_retention_secs as i64;
    let results = [
        (
            "authorization state",
            storage::authorization::delete_expired_authorization_state(&state.pool, expired).await,
        ),
        (
            "sessions",
            storage::sessions::delete_expired_sessions(&state.pool, expired).await,
        ),
        // A used JWT identifier is only needed while the JWT itself would be accepted.
        (
            "used JWT identifiers",
            storage::replay::delete_expired_jtis(&state.pool, now).await,
        ),
        (
            "tokens",
            storage::tokens::delete_expired_tokens(&state.pool, expired).await,
        ),
        (
            "passkey ceremonies",
            storage::passkeys::delete_expired_ceremonies(&state.pool, now).await,
        ),
        (
            "keys",
            storage::keys::delete_expired_keys(&state.pool, now).await,
        ),
        (
            "federation flows",
            storage::federation::purge_expired(&state.pool, expired).await,
        ),
        (
            "platform console sessions",
            storage::platform::delete_expired_sessions(&state.pool, now).await,
        ),
        (
            "bans",
            storage::bans::delete_expired_bans(&state.pool, now).await,
        ),
        (
            "audit events",
            match c.audit_retention_days {
                0 => Ok(0),
                days => {
                    storage::audit::delete_audit_events_before(
                        &state.pool,
                        now - days as i64 * 86_400,
                    )
                    .await
                }
            },
        ),
    ];
    for (what, r) in results {
        match r {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, what, "purged"),
            Err(e) => tracing::warn!(error = %e, what, "purge job failed"),
        }
    }
}

/// Rotates the keys of every tenant whose active keys are older than `key_rotation_secs`
/// (the next key, already published, starts signing; SPEC "Keys").
async fn rotate_due_keys(state: &AppState) {
    let cutoff = storage::now() - state.config.key_rotation_secs as i64;
    let due =
        match storage::keys::list_tenants_with_keys_activated_before(&state.pool, cutoff).await {
            Ok(ids) if ids.is_empty() => return,
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "key rotation check failed");
                return;
            }
        };
    let tenants = match crate::tenants::list_tenants(&state.pool).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "key rotation check failed");
            return;
        }
    };
    for tenant in tenants.iter().filter(|t| due.contains(&t.id)) {
        match state.rotate_keys(tenant).await {
            Ok(kids) => {
                audit::record(
                    &state.audit,
                    AuditEvent::new("keys.rotated", Some(tenant))
                        .actor(Some("scheduler"))
                        .detail("next_kids", kids.join(" ")),
                    &Context::default(),
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, tenant = %tenant.slug, "scheduled key rotation failed")
            }
        }
    }
}
