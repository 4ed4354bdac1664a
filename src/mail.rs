//! Outgoing mail: through SMTP (lettre) when `smtp_url` is configured, with the outbound
//! timeout; otherwise into the local outbox table (documented in README), so development
//! and tests can read it. A message that SMTP refuses is kept in the outbox too.

use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::Config;
use crate::storage::{self, users::OutboxRow, Pool};
use crate::tenants::Tenant;

/// Where mail goes: the SMTP transport built from `smtp_url` (if configured) and the sender.
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: String,
}

impl Mailer {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let transport = match &config.smtp_url {
            None => None,
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|e| anyhow::anyhow!("smtp_url: {e}"))?
                    .timeout(Some(std::time::Duration::from_secs(
                        config.outbound_timeout_secs,
                    )))
                    .build(),
            ),
        };
        Ok(Self {
            transport,
            from: config.smtp_from.clone(),
        })
    }
}

async fn smtp(mailer: &Mailer, to: &str, subject: &str, body: &str) -> anyhow::Result<bool> {
    let Some(transport) = mailer.transport.as_ref() else {
        return Ok(false);
    };
    let message = Message::builder()
        .from(mailer.from.parse()?)
        .to(to.parse()?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body.to_string())?;
    transport.send(message).await?;
    Ok(true)
}

pub async fn send(
    pool: &Pool,
    mailer: &Mailer,
    tenant: &Tenant,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<(), sqlx::Error> {
    match smtp(mailer, to, subject, body).await {
        Ok(true) => {
            tracing::info!(tenant = %tenant.slug, subject, "mail sent");
            return Ok(());
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(tenant = %tenant.slug, subject, error = %e, "SMTP delivery failed; the mail is kept in the outbox")
        }
    }
    let row = OutboxRow {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.id.clone(),
        recipient: to.to_string(),
        subject: subject.to_string(),
        body: body.to_string(),
        created_at: storage::now(),
    };
    storage::users::insert_outbox(pool, &row).await?;
    tracing::info!(tenant = %tenant.slug, subject, "mail queued in the outbox");
    Ok(())
}
