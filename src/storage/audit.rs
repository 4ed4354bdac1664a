//! Audit events table (append-only).

use super::{dispatch, DbResult, Pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: String,
    pub tenant_id: Option<String>,
    pub event: String,
    pub actor: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub correlation_id: Option<String>,
    pub details: String,
    pub created_at: i64,
}

/// Appends events in one transaction.
pub async fn insert_audit_events(pool: &Pool, events: &[AuditRow]) -> DbResult<()> {
    dispatch!(pool, p => {
        let mut tx = p.begin().await?;
        for e in events {
            sqlx::query(
                "INSERT INTO audit_events (id, tenant_id, event, actor, client_id, ip, user_agent, correlation_id, details, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&e.id).bind(&e.tenant_id).bind(&e.event).bind(&e.actor).bind(&e.client_id)
            .bind(&e.ip).bind(&e.user_agent).bind(&e.correlation_id).bind(&e.details).bind(e.created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    })
}

/// Filters of an audit query; every field is optional.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub event: Option<String>,
    pub actor: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Cursor: only events strictly older than `(created_at, id)`.
    pub before: Option<(i64, String)>,
}

/// A tenant's events, newest first, one page at a time.
pub async fn list_audit_events(
    pool: &Pool,
    tenant_id: &str,
    f: &AuditFilter,
    limit: i64,
) -> DbResult<Vec<AuditRow>> {
    let (bt, bid) = f.before.clone().unwrap_or((i64::MAX, String::new()));
    dispatch!(pool, p => sqlx::query_as::<_, AuditRow>(
        "SELECT * FROM audit_events WHERE tenant_id = $1 \
         AND ($2 IS NULL OR event = $2) AND ($3 IS NULL OR actor = $3) \
         AND created_at >= $4 AND created_at <= $5 \
         AND (created_at < $6 OR (created_at = $6 AND ($7 = '' OR id < $7))) \
         ORDER BY created_at DESC, id DESC LIMIT $8",
    )
    .bind(tenant_id)
    .bind(&f.event)
    .bind(&f.actor)
    .bind(f.from.unwrap_or(0))
    .bind(f.to.unwrap_or(i64::MAX))
    .bind(bt)
    .bind(&bid)
    .bind(limit)
    .fetch_all(p)
    .await)
}

/// How many events named `event` the log holds (all tenants, and events of no tenant).
pub async fn count_events(pool: &Pool, event: &str) -> DbResult<i64> {
    dispatch!(pool, p => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_events WHERE event = $1")
        .bind(event)
        .fetch_one(p)
        .await)
}
