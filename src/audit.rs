//! Audit log of security events (sign-in success and failure, token issue, refresh reuse,
//! revocation, key rotation, configuration changes). Events carry tenant, actor, IP, user
//! agent and correlation id — never a secret. Written off the request path.

use serde_json::{Map, Value};

use crate::state::AppState;
use crate::storage::{self, audit::AuditRow};
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

/// Records an event without delaying the caller; a failure to write is logged.
pub fn record(state: &AppState, event: AuditEvent, ctx: &Context) {
    let row = AuditRow {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: event.tenant_id,
        event: event.event.to_string(),
        actor: event.actor,
        client_id: event.client_id,
        ip: ctx.ip.clone(),
        user_agent: ctx.user_agent.clone(),
        correlation_id: ctx.correlation_id.clone(),
        details: Value::Object(event.details).to_string(),
        created_at: storage::now(),
    };
    tracing::info!(
        event = %row.event,
        tenant_id = row.tenant_id.as_deref().unwrap_or("-"),
        actor = row.actor.as_deref().unwrap_or("-"),
        client_id = row.client_id.as_deref().unwrap_or("-"),
        correlation_id = row.correlation_id.as_deref().unwrap_or("-"),
        "audit"
    );
    let pool = state.pool.clone();
    tokio::spawn(async move {
        if let Err(e) = storage::audit::insert_audit_event(&pool, &row).await {
            tracing::error!(error = %e, event = %row.event, "cannot write audit event");
        }
    });
}

/// Records an event and waits for the write (for the CLI, which exits right after).
pub async fn record_now(state: &AppState, event: AuditEvent, ctx: &Context) {
    let id = uuid::Uuid::new_v4().to_string();
    let row = AuditRow {
        id,
        tenant_id: event.tenant_id,
        event: event.event.to_string(),
        actor: event.actor,
        client_id: event.client_id,
        ip: ctx.ip.clone(),
        user_agent: ctx.user_agent.clone(),
        correlation_id: ctx.correlation_id.clone(),
        details: Value::Object(event.details).to_string(),
        created_at: storage::now(),
    };
    if let Err(e) = storage::audit::insert_audit_event(&state.pool, &row).await {
        tracing::error!(error = %e, event = %row.event, "cannot write audit event");
    }
}
