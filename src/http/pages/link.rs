//! Linking a sign-in method: the page shown when a federated sign-in meets an existing
//! account, and the link made after the owner signs in with the account's own method.

use actix_web::HttpRequest;
use askama::Template;

use super::error::Frame;
use crate::accounts::{self};
use crate::audit::{self, AuditEvent};
use crate::error::PageError;
use crate::federation::{self};
use crate::http::extractors::audit_context;
use crate::i18n::Locale;
use crate::provider::Provider;
use crate::state::AppState;

/// "Link your sign-in method": a federated sign-in met an existing account.
#[derive(Template)]
#[template(path = "pages/link/link_account.html")]
pub struct LinkAccountPage<'a> {
    pub f: Frame<'a>,
    pub text: &'a str,
    pub action: &'a str,
}

/// The cookie carrying a [`federation::PendingLink`] while its owner signs in.
pub fn link_cookie_name(state: &AppState) -> &'static str {
    if state.config.is_https() {
        "__Host-portcullis_link"
    } else {
        "portcullis_link"
    }
}

/// After a sign-in with a method the account already had: links the identity waiting in
/// the browser (when it was matched to this very account) and audits it. `true` when a
/// link cookie was there (to be cleared, linked or not).
pub async fn finish_pending_link(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
    user: &accounts::User,
) -> Result<bool, PageError> {
    let Some(c) = req.cookie(link_cookie_name(state)) else {
        return Ok(false);
    };
    if let Some(link) = federation::PendingLink::open(&state.master_key, &p.tenant, c.value()) {
        let linked = federation::finish_link(state.federation(), &p.tenant, &link, user)
            .await
            .map_err(|e| PageError::unexpected(Locale::En, &anyhow::anyhow!(e.to_string())))?;
        if linked {
            audit::record(
                &state.audit,
                AuditEvent::new("federation.linked", Some(&p.tenant))
                    .actor(Some(&user.id))
                    .detail("connection", link.connection_id.clone())
                    .detail("channel", "sign_in"),
                &audit_context(req),
            );
        }
    }
    Ok(true)
}
