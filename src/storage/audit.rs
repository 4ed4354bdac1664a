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

/// Rows per INSERT statement (10 parameters each, well under both backends' limits).
const ROWS_PER_STATEMENT: usize = 256;

/// Appends events in one transaction, many rows per statement: the writer's cost per event
/// stays a few microseconds at thousands of events a second.
pub async fn insert_audit_events(pool: &Pool, events: &[AuditRow]) -> DbResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    dispatch!(pool, p => {
        let mut tx = p.begin().await?;
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO audit_events (id, tenant_id, event, actor, client_id, ip, user_agent, correlation_id, details, created_at) ",
            );
            q.push_values(chunk, |mut b, e| {
                b.push_bind(&e.id).push_bind(&e.tenant_id).push_bind(&e.event).push_bind(&e.actor)
                    .push_bind(&e.client_id).push_bind(&e.ip).push_bind(&e.user_agent)
                    .push_bind(&e.correlation_id).push_bind(&e.details).push_bind(e.created_at);
            });
            // A retried batch whose first commit landed after all inserts nothing twice.
            q.push(" ON CONFLICT (id) DO NOTHING");
            q.build().persistent(false).execute(&mut *tx).await?;
        }
        tx.commit().await
    })
}

/// Rows deleted per statement by [`delete_audit_events_before`]: each statement is a short
/// write transaction, so sign-ins writing their own events are never held up for long.
const DELETE_BATCH: i64 = 5_000;

/// Deletes the events older than `cutoff` (through the `created_at` index), in batches.
/// Returns the rows deleted.
pub async fn delete_audit_events_before(pool: &Pool, cutoff: i64) -> DbResult<u64> {
    let mut deleted = 0;
    loop {
        let n = dispatch!(pool, p => sqlx::query(
            "DELETE FROM audit_events WHERE id IN \
             (SELECT id FROM audit_events WHERE created_at < $1 LIMIT $2)",
        )
        .bind(cutoff).bind(DELETE_BATCH)
        .execute(p).await.map(|r| r.rows_affected()))?;
        deleted += n;
        if n < DELETE_BATCH as u64 {
            return Ok(deleted);
        }
    }
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

/// How many events named `event` a tenant logged per hour (Unix hour number) since `since`.
pub async fn count_tenant_events_by_hour(
    pool: &Pool,
    tenant_id: &str,
    event: &str,
    since: i64,
) -> DbResult<Vec<(i64, i64)>> {
    dispatch!(pool, p => sqlx::query_as::<_, (i64, i64)>(
        "SELECT created_at / 3600 AS hour, COUNT(*) FROM audit_events \
         WHERE tenant_id = $1 AND created_at >= $2 AND event = $3 GROUP BY created_at / 3600 ORDER BY hour",
    )
    .bind(tenant_id).bind(since).bind(event)
    .fetch_all(p)
    .await)
}
