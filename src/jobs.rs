//! Background jobs of a running instance: purge expired codes, requests, sessions, tokens
//! and keys, and retry back-channel logout deliveries; refresh SAML IdP metadata hourly. Every job is safe to run on several
//! instances at once (deletes of expired rows; deliveries are claimed atomically).

use std::time::Duration;

use crate::sessions;
use crate::state::AppState;
use crate::storage;

pub fn spawn(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            sessions::deliver_due(&state).await;
            if n % 5 == 0 {
                crate::api_keys::flush_usage(&state).await;
            }
            if n % 300 == 0 {
                purge(&state).await;
            }
            if n % 1800 == 900 {
                if let Err(e) = crate::federation::refresh_metadata(&state, 3600).await {
                    tracing::warn!(error = %e, "SAML metadata refresh failed");
                }
            }
            n += 1;
        }
    });
}

async fn purge(state: &AppState) {
    let now = storage::now();
    let results = [
        storage::authorization::delete_expired_authorization_state(&state.pool, now, 3600).await,
        storage::sessions::delete_expired_sessions(&state.pool, now).await,
        storage::tokens::delete_expired_tokens(&state.pool, now).await,
        storage::keys::delete_expired_keys(&state.pool, now).await,
        storage::federation::purge_expired(&state.pool, now).await,
    ];
    for r in results {
        if let Err(e) = r {
            tracing::warn!(error = %e, "purge job failed");
        }
    }
}
