//! Audit log of security events (sign-in success and failure, token issue, refresh reuse,
//! revocation, key rotation, configuration changes). Events carry tenant, actor, IP, user
//! agent and correlation id — never a secret. Written off the request path.

use serde_json::{Map, Value};

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;

use crate::storage::{self, audit::AuditRow, Pool};
use crate::tenants::Tenant;

/// Who and where a request came from; built by the transport layer.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub correlation_id: Option<String>,
}

impl Context {
    /// For actions taken from the command line.
    pub fn cli() -> Self {
        Self {
            ip: None,
            user_agent: Some("portcullis-cli".into()),
            correlation_id: Some(uuid::Uuid::new_v4().to_string()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditEvent {
    event: &'static str,
    tenant_id: Option<String>,
    actor: Option<String>,
    client_id: Option<String>,
    details: Map<String, Value>,
}

impl AuditEvent {
    pub fn new(event: &'static str, tenant: Option<&Tenant>) -> Self {
        Self {
            event,
            tenant_id: tenant.map(|t| t.id.clone()),
            actor: None,
            client_id: None,
            details: Map::new(),
        }
    }

    pub fn actor(mut self, actor: Option<&str>) -> Self {
        self.actor = actor.map(str::to_string);
        self
    }

    pub fn client(mut self, client_id: &str) -> Self {
        self.client_id = Some(client_id.to_string());
        self
    }

    /// A non-secret detail (identifiers, reasons, counts).
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }
}

impl AuditEvent {
    fn into_row(self, ctx: &Context) -> AuditRow {
        AuditRow {
            // Time-ordered (UUID v7): new rows land at the end of the primary-key index
            // instead of on random pages, which keeps the writer cheap at high event rates.
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: self.tenant_id,
            event: self.event.to_string(),
            actor: self.actor,
            client_id: self.client_id,
            ip: ctx.ip.clone(),
            user_agent: ctx.user_agent.clone(),
            correlation_id: ctx.correlation_id.clone(),
            details: Value::Object(self.details).to_string(),
            created_at: storage::now(),
        }
    }
}

enum Message {
    Event(Box<AuditRow>),
    Flush(oneshot::Sender<()>),
}

/// The queue in front of the audit table: events are written by one background task in
/// batches (one transaction per batch), so recording costs a request no database write.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Message>,
    /// For the direct write when the queue is full.
    pool: Pool,
    metrics: Arc<Metrics>,
}

const QUEUE: usize = 16_384;
const BATCH: usize = 1024;
/// How long the writer waits after the first event of a batch.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// How often a batch is tried before it is given up (and logged), with doubling pauses
/// from [`RETRY_PAUSE`]: about 1.5 s in all.
const ATTEMPTS: u32 = 5;
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Writes one batch, retrying a failed attempt on another connection: a connection can die
/// under the writer (a database restart, or at shutdown one opened on a request worker's
/// runtime that is stopping), and a batch is idempotent (ids are unique), so a retry after
/// a commit whose answer was lost writes nothing twice.
async fn write_batch(pool: &Pool, batch: &[AuditRow]) {
    let mut pause = RETRY_PAUSE;
    for attempt in 1..=ATTEMPTS {
        match storage::audit::insert_audit_events(pool, batch).await {
            Ok(()) => return,
            Err(e) if attempt == ATTEMPTS => {
                tracing::error!(error = %e, count = batch.len(), attempts = ATTEMPTS, "cannot write audit events");
            }
            Err(e) => {
                tracing::warn!(error = %e, count = batch.len(), attempt, "audit write failed; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
}

impl AuditSink {
    /// Starts the writer task (needs a Tokio runtime).
    pub fn start(pool: Pool, metrics: Arc<Metrics>) -> Self {
        let writer = pool.clone();
        let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
        tokio::spawn(async move {
            let mut batch: Vec<AuditRow> = Vec::with_capacity(BATCH);
            let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
            while let Some(first) = rx.recv().await {
                if matches!(first, Message::Event(_)) {
                    // Let a batch gather: under load one transaction carries hundreds of
                    // events instead of one wake-up and one commit each.
                    tokio::time::sleep(GATHER).await;
                }
                let mut next = Some(first);
                while let Some(msg) = next.take() {
                    match msg {
                        Message::Event(row) => batch.push(*row),
                        Message::Flush(done) => waiters.push(done),
                    }
                    if batch.len() < BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                if !batch.is_empty() {
                    write_batch(&writer, &batch).await;
                    batch.clear();
                }
                for done in waiters.drain(..) {
                    let _ = done.send(());
                }
            }
        });
        Self { tx, pool, metrics }
    }

    /// Waits until every event recorded before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

fn count(sink: &AuditSink, event: &AuditEvent) {
    sink.metrics.audit_event(
        event.event,
        event.details.get("grant_type").and_then(Value::as_str),
    );
}

fn log(row: &AuditRow) {
    tracing::info!(
        event = %row.event,
        tenant_id = row.tenant_id.as_deref().unwrap_or("-"),
        actor = row.actor.as_deref().unwrap_or("-"),
        client_id = row.client_id.as_deref().unwrap_or("-"),
        correlation_id = row.correlation_id.as_deref().unwrap_or("-"),
        "audit"
    );
}

/// Records an event without delaying the caller. When the queue is full the event is
/// written directly instead (back-pressure, never loss).
pub fn record(sink: &AuditSink, event: AuditEvent, ctx: &Context) {
    count(sink, &event);
    let row = event.into_row(ctx);
    log(&row);
    if let Err(
        mpsc::error::TrySendError::Full(Message::Event(row))
        | mpsc::error::TrySendError::Closed(Message::Event(row)),
    ) = sink.tx.try_send(Message::Event(Box::new(row)))
    {
        let pool = sink.pool.clone();
        tokio::spawn(async move {
            if let Err(e) =
                storage::audit::insert_audit_events(&pool, std::slice::from_ref(&*row)).await
            {
                tracing::error!(error = %e, event = %row.event, "cannot write audit event");
            }
        });
    }
}

/// Records an event and waits for the write (for the CLI, which exits right after).
pub async fn record_now(sink: &AuditSink, event: AuditEvent, ctx: &Context) {
    count(sink, &event);
    let row = event.into_row(ctx);
    log(&row);
    if let Err(e) =
        storage::audit::insert_audit_events(&sink.pool, std::slice::from_ref(&row)).await
    {
        tracing::error!(error = %e, event = %row.event, "cannot write audit event");
    }
}

/// One page of a tenant's audit events, newest first, with the cursor of the next page.
pub async fn query(
    sink: &AuditSink,
    tenant: &Tenant,
    filter: &storage::audit::AuditFilter,
    limit: i64,
) -> Result<(Vec<Value>, Option<String>), sqlx::Error> {
    // Events still queued on this instance are written first, so a query sees them.
    sink.flush().await;
    let rows = storage::audit::list_audit_events(&sink.pool, &tenant.id, filter, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let page: Vec<&AuditRow> = rows.iter().take(limit as usize).collect();
    let next = if more {
        page.last()
            .map(|r| storage::format_cursor(r.created_at, &r.id))
    } else {
        None
    };
    let events = page
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id,
                "event": r.event,
                "actor": r.actor,
                "client_id": r.client_id,
                "ip": r.ip,
                "user_agent": r.user_agent,
                "correlation_id": r.correlation_id,
                "details": serde_json::from_str::<Value>(&r.details).unwrap_or(Value::Null),
                "created_at": storage::format_instant(r.created_at),
            })
        })
        .collect();
    Ok((events, next))
}

/// The columns of an audit export, in order.
pub const CSV_COLUMNS: [&str; 8] = [
    "created_at",
    "event",
    "actor",
    "client_id",
    "ip",
    "user_agent",
    "correlation_id",
    "details",
];

/// Events as [`query`] returns them, as CSV lines (RFC 4180: CRLF, fields with a comma,
/// quote or line break quoted, quotes doubled). A field that a spreadsheet would read as a
/// formula (starting with `=`, `+`, `-`, `@`, tab or CR) is prefixed with `'`, so an exported
/// user agent or e-mail address cannot run in the reader's spreadsheet.
pub fn csv_lines(events: &[Value], out: &mut String) {
    for e in events {
        let fields = CSV_COLUMNS.map(|c| match &e[c] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&csv_field(f));
        }
        out.push_str("\r\n");
    }
}

fn csv_field(f: &str) -> String {
    let f = if f.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{f}")
    } else {
        f.to_string()
    };
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f
    }
}

/// Counts of `event` in each of the last `hours` hours, oldest first (the console's chart).
pub async fn hourly_counts(
    sink: &AuditSink,
    tenant: &Tenant,
    event: &str,
    hours: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    // Events still queued on this instance are counted too (the sign-in that just opened
    // the console is one of them).
    sink.flush().await;
    let this_hour = storage::now() / 3600;
    let first = this_hour - hours + 1;
    let rows =
        storage::audit::count_tenant_events_by_hour(&sink.pool, &tenant.id, event, first * 3600)
            .await?;
    let mut out = vec![0; usize::try_from(hours).unwrap_or(0)];
    for (hour, n) in rows {
        if let Some(slot) = usize::try_from(hour - first)
            .ok()
            .and_then(|i| out.get_mut(i))
        {
            *slot = n;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_quote_what_needs_it_and_defuse_formulas() {
        let events = vec![serde_json::json!({
            "created_at": "2026-12-07T10:00:00Z",
            "event": "signin.failure",
            "actor": null,
            "client_id": "c1",
            "ip": "=cmd|' /C calc'!A0",
            "user_agent": "Mozilla \"X\", 5.0",
            "correlation_id": "abc",
            "details": {"email": "a@b.c"},
        })];
        let mut out = String::new();
        csv_lines(&events, &mut out);
        assert_eq!(
            out,
            "2026-12-07T10:00:00Z,signin.failure,,c1,'=cmd|' /C calc'!A0,\"Mozilla \"\"X\"\", 5.0\",abc,\"{\"\"email\"\":\"\"a@b.c\"\"}\"\r\n"
        );
    }
}
