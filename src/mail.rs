//! Outgoing mail. Without an SMTP server configured, messages go to the local outbox table
//! (documented in README), so development and tests can read them; nothing is lost.

use crate::state::AppState;
use crate::storage::{self, users::OutboxRow};
use crate::tenants::Tenant;

pub async fn send(
    state: &AppState,
    tenant: &Tenant,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<(), sqlx::Error> {
    let row = OutboxRow {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.id.clone(),
        recipient: to.to_string(),
        subject: subject.to_string(),
        body: body.to_string(),
        created_at: storage::now(),
    };
    storage::users::insert_outbox(&state.pool, &row).await?;
    tracing::info!(tenant = %tenant.slug, subject, "mail queued in the outbox");
    Ok(())
}
