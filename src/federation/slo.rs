//! SAML 2.0 Single Logout over the HTTP-Redirect binding (SAML Profiles §4.4, Bindings
//! §3.4), tied to Portcullis sessions, in both directions:
//!
//! - **SP-initiated**: signing out here (`/logout`) ends the local session first, then sends
//!   the browser to the IdP with a signed LogoutRequest naming the NameID and SessionIndex
//!   the IdP gave at sign-in; the IdP's signed LogoutResponse comes back to
//!   `{issuer}/saml/slo` and the browser continues where `/logout` would have sent it.
//! - **IdP-initiated**: a signed LogoutRequest at `{issuer}/saml/slo` ends every session that
//!   came from that NameID (and SessionIndex, when given) of that IdP, with back-channel
//!   logout to the relying parties, and is answered by a signed LogoutResponse.
//!
//! Messages travel over [`super::redirect`]; Profiles §4.4.4 requires logout messages over
//! that binding to be signed: unsigned ones are refused.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::connections::{self, Connection, Deps, FederationError, Protocol, SamlSession};
use super::redirect::{decode_redirect, malformed, redirect_url, Carrier, Received};
use super::saml::{self, predefined_entity, slo_url, SpKeyUse};
use crate::crypto;
use crate::provider::Provider;
use crate::sessions::{self, Session};
use crate::storage::{self, federation::SamlSessionRow, Pool};

const SAML_ASSERTION_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:assertion";
const SAML_PROTOCOL_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:protocol";
pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
/// How long a LogoutRequest we send is valid, and the skew tolerated on theirs.
const MESSAGE_TTL: i64 = 300;
const CLOCK_SKEW_SECS: i64 = 60;

/// Remembers that session `sid` came from this SAML sign-in.
pub async fn record_session(
    pool: &Pool,
    tenant_id: &str,
    sid: &str,
    s: &SamlSession,
) -> Result<(), sqlx::Error> {
    storage::federation::upsert_saml_session(
        pool,
        &SamlSessionRow {
            sid: sid.to_string(),
            tenant_id: tenant_id.to_string(),
            connection_id: s.connection_id.clone(),
            name_id: s.name_id.clone(),
            name_id_format: s.format.clone(),
            name_qualifier: s.name_qualifier.clone(),
            sp_name_qualifier: s.sp_name_qualifier.clone(),
            session_index: s.session_index.clone(),
            created_at: storage::now(),
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------
// LogoutRequest and LogoutResponse
// ---------------------------------------------------------------------------------------

/// The parts of a LogoutRequest or LogoutResponse this SP uses.
#[derive(Debug, Default)]
pub struct LogoutMessage {
    pub is_request: bool,
    pub id: String,
    pub issue_instant: Option<i64>,
    pub destination: Option<String>,
    pub issuer: Option<String>,
    /// LogoutRequest.
    pub not_on_or_after: Option<i64>,
    pub name_id: Option<String>,
    /// The NameID's `Format`, `NameQualifier` and `SPNameQualifier` attributes.
    pub name_id_format: Option<String>,
    pub name_qualifier: Option<String>,
    pub sp_name_qualifier: Option<String>,
    pub session_indexes: Vec<String>,
    /// LogoutResponse.
    pub in_response_to: Option<String>,
    pub status: Option<String>,
}

fn timestamp(v: &str) -> Result<i64, FederationError> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp())
        .map_err(|_| malformed())
}

/// Parses a LogoutRequest or LogoutResponse (no DOCTYPE, SAML 2.0, an ID). Strict about
/// structure: one Issuer and one NameID at most, no elements inside them, StatusCode only
/// in Status. An encrypted NameID is refused (this SP publishes no key for it).
pub fn parse_logout(xml: &str) -> Result<LogoutMessage, FederationError> {
    let mut reader = NsReader::from_str(xml);
    let mut m = LogoutMessage::default();
    let mut depth = 0usize;
    // The element whose text is being read: 1 Issuer, 2 NameID, 3 SessionIndex.
    let mut text_of = 0u8;
    let mut text = String::new();
    let mut root_seen = false;
    let mut in_status = false;
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(|_| malformed())?;
        let ns = match ns {
            ResolveResult::Bound(n) => Some(n.as_ref().to_vec()),
            _ => None,
        };
        let (e, empty) = match event {
            Event::DocType(_) => return Err(malformed()),
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::Text(t) => {
                if text_of != 0 {
                    text.push_str(&t.decode().map_err(|_| malformed())?);
                }
                continue;
            }
            Event::CData(t) => {
                if text_of != 0 {
                    text.push_str(std::str::from_utf8(&t).map_err(|_| malformed())?);
                }
                continue;
            }
            Event::GeneralRef(r) => {
                if text_of != 0 {
                    text.push(predefined_entity(&r).ok_or_else(malformed)?);
                }
                continue;
            }
            Event::End(_) => {
                let value = text.trim().to_string();
                match std::mem::take(&mut text_of) {
                    1 => m.issuer = Some(value),
                    2 => m.name_id = Some(value),
                    3 => m.session_indexes.push(value),
                    _ => {}
                }
                if depth == 2 {
                    in_status = false;
                }
                text.clear();
                depth = depth.saturating_sub(1);
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        if text_of != 0 {
            // Issuer, NameID and SessionIndex hold text only.
            return Err(malformed());
        }
        depth += 1;
        let local = e.local_name().as_ref().to_vec();
        let attr = |name: &[u8]| -> Option<String> {
            e.attributes()
                .flatten()
                .find(|a| a.key.as_ref() == name)
                .and_then(|a| {
                    a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .ok()
                        .map(|v| v.into_owned())
                })
        };
        let protocol = ns.as_deref() == Some(SAML_PROTOCOL_NS);
        let assertion = ns.as_deref() == Some(SAML_ASSERTION_NS);
        if depth == 1 {
            if root_seen || !protocol {
                return Err(malformed());
            }
            root_seen = true;
            m.is_request = match local.as_slice() {
                b"LogoutRequest" => true,
                b"LogoutResponse" => false,
                _ => return Err(malformed()),
            };
            if attr(b"Version").as_deref() != Some("2.0") {
                return Err(malformed());
            }
            m.id = attr(b"ID")
                .filter(|i| !i.is_empty())
                .ok_or_else(malformed)?;
            m.issue_instant = attr(b"IssueInstant")
                .as_deref()
                .map(timestamp)
                .transpose()?;
            m.destination = attr(b"Destination");
            m.not_on_or_after = attr(b"NotOnOrAfter")
                .as_deref()
                .map(timestamp)
                .transpose()?;
            m.in_response_to = attr(b"InResponseTo");
        } else if depth == 2 && assertion && local == b"Issuer" {
            if m.issuer.is_some() {
                return Err(malformed());
            }
            m.issuer = Some(String::new());
            text_of = 1;
        } else if depth == 2 && assertion && local == b"NameID" {
            if m.name_id.is_some() {
                return Err(malformed());
            }
            m.name_id = Some(String::new());
            m.name_id_format = attr(b"Format");
            m.name_qualifier = attr(b"NameQualifier");
            m.sp_name_qualifier = attr(b"SPNameQualifier");
            text_of = 2;
        } else if depth == 2 && assertion && local == b"EncryptedID" {
            return Err(FederationError::failed(
                "encrypted_name_id",
                "The sign-out request names the user by an encrypted NameID, which is not supported.",
            ));
        } else if depth == 2 && protocol && local == b"SessionIndex" {
            text_of = 3;
        } else if depth == 2 && protocol && local == b"Status" {
            in_status = !empty;
        } else if protocol && local == b"StatusCode" {
            // The top-level StatusCode of the Status; a nested one refines it.
            if !in_status {
                return Err(malformed());
            }
            if depth == 3 {
                if m.status.is_some() {
                    return Err(malformed());
                }
                m.status = attr(b"Value");
            }
        }
        text.clear();
        if empty {
            // No End event follows an empty element.
            text_of = 0;
            depth -= 1;
        }
    }
    if !root_seen {
        return Err(malformed());
    }
    Ok(m)
}

// ---------------------------------------------------------------------------------------
// Messages this SP sends
// ---------------------------------------------------------------------------------------

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn instant(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn new_id() -> String {
    format!("pc{}", crypto::hex(&crypto::random_bytes(16)))
}

/// A LogoutRequest (Core §3.7.1) for the upstream session `s`.
fn logout_request_xml(
    id: &str,
    issuer: &str,
    destination: &str,
    s: &SamlSessionRow,
    now: i64,
) -> String {
    let mut name_id_attrs = String::new();
    for (name, value) in [
        ("Format", &s.name_id_format),
        ("NameQualifier", &s.name_qualifier),
        ("SPNameQualifier", &s.sp_name_qualifier),
    ] {
        if let Some(v) = value {
            name_id_attrs.push_str(&format!(" {name}=\"{}\"", xml_escape(v)));
        }
    }
    let session_index = s
        .session_index
        .as_deref()
        .map(|i| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", xml_escape(i)))
        .unwrap_or_default();
    format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{now}" NotOnOrAfter="{until}" Destination="{dest}"><saml:Issuer>{issuer}</saml:Issuer><saml:NameID{name_id_attrs}>{name_id}</saml:NameID>{session_index}</samlp:LogoutRequest>"#,
        id = id,
        now = instant(now),
        until = instant(now + MESSAGE_TTL),
        dest = xml_escape(destination),
        issuer = xml_escape(issuer),
        name_id = xml_escape(&s.name_id),
    )
}

/// A LogoutResponse (Core §3.7.2) to the request `in_response_to`.
fn logout_response_xml(
    issuer: &str,
    destination: &str,
    in_response_to: &str,
    status: &str,
    now: i64,
) -> String {
    format!(
        r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{now}" Destination="{dest}" InResponseTo="{irt}"><saml:Issuer>{issuer}</saml:Issuer><samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status></samlp:LogoutResponse>"#,
        id = new_id(),
        now = instant(now),
        dest = xml_escape(destination),
        irt = xml_escape(in_response_to),
        issuer = xml_escape(issuer),
        status = xml_escape(status),
    )
}

// ---------------------------------------------------------------------------------------
// The two directions
// ---------------------------------------------------------------------------------------

/// SP-initiated Single Logout, after the local session `sid` ended: the URL that asks the
/// IdP it came from to end its session too, with `return_to` (`None`: the signed-out page)
/// remembered for when the IdP answers. `None` when the session came from no SAML sign-in,
/// or its connection is gone or disabled, or the IdP publishes no HTTP-Redirect
/// SingleLogoutService.
pub async fn begin(
    d: Deps<'_>,
    p: &Provider,
    sid: &str,
    return_to: Option<&str>,
) -> Result<Option<url::Url>, FederationError> {
    let Some(row) = storage::federation::take_saml_session(d.pool, &p.tenant.id, sid).await? else {
        return Ok(None);
    };
    let Some(conn) = connections::find(d.pool, &p.tenant, &row.connection_id).await? else {
        return Ok(None);
    };
    if !conn.enabled || conn.protocol != Protocol::Saml2 {
        return Ok(None);
    }
    let Ok(idp) = saml::connection_metadata(&conn) else {
        return Ok(None);
    };
    let Some(endpoint) = idp.slo else {
        return Ok(None);
    };
    let (key, _) = saml::sp_key(d, &p.tenant, &p.issuer, SpKeyUse::Signing).await?;
    let id = new_id();
    let xml = logout_request_xml(
        &id,
        &saml::sp_entity_id(p),
        &endpoint.location,
        &row,
        storage::now(),
    );
    let mut flow = connections::NewFlow::new(&p.tenant, &conn, None, None);
    flow.row.saml_request_id = Some(id);
    flow.row.logout_return = Some(return_to.unwrap_or_default().to_string());
    let url = redirect_url(
        &endpoint.location,
        Carrier::Request,
        &xml,
        Some(&flow.handle),
        Some(&key),
    )?;
    storage::federation::insert_flow(d.pool, &flow.row).await?;
    Ok(Some(url))
}

/// What a message at `{issuer}/saml/slo` came to.
pub enum Outcome {
    /// An IdP's LogoutRequest was honoured: these users' sessions ended; the browser goes
    /// back to the IdP with the signed LogoutResponse.
    LoggedOut {
        connection_id: String,
        user_ids: Vec<String>,
        respond: url::Url,
    },
    /// The IdP answered our LogoutRequest: the browser continues to `return_to` (`None`:
    /// the signed-out page). `partial` when the IdP reported anything but Success.
    Returned {
        connection_id: String,
        return_to: Option<String>,
        status: String,
    },
}

/// Handles a GET to `{issuer}/saml/slo` (its raw query string).
pub async fn receive(
    d: Deps<'_>,
    p: &Provider,
    raw_query: &str,
) -> Result<Outcome, FederationError> {
    let received = decode_redirect(raw_query)?;
    let message = parse_logout(&received.xml)?;
    match (received.carrier, message.is_request) {
        (Carrier::Request, true) => logout_request(d, p, &received, &message).await,
        (Carrier::Response, false) => logout_response(d, p, &received, &message).await,
        _ => Err(malformed()),
    }
}

/// The checks every logout message passes: signed by the IdP, Destination this endpoint,
/// issued recently (and, for a request, not past its NotOnOrAfter).
fn check(
    p: &Provider,
    idp: &saml::IdpMetadata,
    received: &Received,
    message: &LogoutMessage,
) -> Result<(), FederationError> {
    if message.issuer.as_deref() != Some(idp.entity_id.as_str()) {
        return Err(FederationError::failed(
            "issuer_mismatch",
            "The sign-out message comes from another identity provider.",
        ));
    }
    received.verify(&idp.certificates)?;
    if message.destination.as_deref() != Some(slo_url(p).as_str()) {
        return Err(FederationError::failed(
            "destination_mismatch",
            "The sign-out message is addressed to another endpoint.",
        ));
    }
    let now = storage::now();
    let stale = || FederationError::failed("expired", "The sign-out message has expired.");
    match message.issue_instant {
        Some(t) if t <= now + CLOCK_SKEW_SECS && t >= now - MESSAGE_TTL - CLOCK_SKEW_SECS => {}
        _ => return Err(stale()),
    }
    if message
        .not_on_or_after
        .is_some_and(|t| t + CLOCK_SKEW_SECS <= now)
    {
        return Err(stale());
    }
    Ok(())
}

async fn logout_request(
    d: Deps<'_>,
    p: &Provider,
    received: &Received,
    message: &LogoutMessage,
) -> Result<Outcome, FederationError> {
    let connections = connections::list(d.pool, &p.tenant).await?;
    let conn: &Connection = message
        .issuer
        .as_deref()
        .and_then(|i| saml::by_entity_id(&connections, i))
        .ok_or_else(|| {
            FederationError::failed(
                "unknown_idp",
                "The sign-out request comes from an identity provider this tenant does not use.",
            )
        })?;
    let idp = saml::connection_metadata(conn)?;
    check(p, &idp, received, message)?;
    let Some(endpoint) = idp.slo.clone() else {
        return Err(FederationError::failed(
            "no_slo_endpoint",
            "The identity provider publishes no HTTP-Redirect SingleLogoutService to answer.",
        ));
    };
    let name_id = message
        .name_id
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(malformed)?;
    // A request is honoured once (a replayed one would be answered again, harmlessly,
    // but it is not a message the IdP sent now).
    // Remembered for as long as `check` would accept it: until its NotOnOrAfter, and at
    // least as long as its IssueInstant stays within the accepted age.
    let by_issue =
        message.issue_instant.unwrap_or(storage::now()) + MESSAGE_TTL + 2 * CLOCK_SKEW_SECS;
    let remember_until = message
        .not_on_or_after
        .map_or(by_issue, |t| by_issue.max(t + CLOCK_SKEW_SECS));
    if !storage::federation::remember_assertion(
        d.pool,
        &conn.id,
        &format!("logout:{}", message.id),
        remember_until,
    )
    .await?
    {
        return Err(FederationError::failed(
            "replayed",
            "This sign-out request was already received.",
        ));
    }
    let rows =
        storage::federation::list_saml_sessions_of_subject(d.pool, &p.tenant.id, &conn.id, name_id)
            .await?;
    let sp_entity_id = saml::sp_entity_id(p);
    let mut user_ids = Vec::new();
    for row in rows {
        if !same_principal(&row, message, &idp.entity_id, &sp_entity_id) {
            continue;
        }
        if !message.session_indexes.is_empty()
            && !row
                .session_index
                .as_ref()
                .is_some_and(|i| message.session_indexes.contains(i))
        {
            continue;
        }
        storage::federation::delete_saml_session(d.pool, &p.tenant.id, &row.sid).await?;
        let live = storage::sessions::find_live_session_by_sid(
            d.pool,
            &p.tenant.id,
            &row.sid,
            storage::now(),
        )
        .await?;
        if let Some(live) = live {
            let session = Session::from(live);
            sessions::end_session(d.pool, d.outbound, p, &session)
                .await
                .map_err(FederationError::Unexpected)?;
            if !user_ids.contains(&session.user_id) {
                user_ids.push(session.user_id);
            }
        }
    }
    let (key, _) = saml::sp_key(d, &p.tenant, &p.issuer, SpKeyUse::Signing).await?;
    let destination = endpoint.response_location.unwrap_or(endpoint.location);
    let xml = logout_response_xml(
        &saml::sp_entity_id(p),
        &destination,
        &message.id,
        STATUS_SUCCESS,
        storage::now(),
    );
    let respond = redirect_url(
        &destination,
        Carrier::Response,
        &xml,
        received.relay_state.as_deref(),
        Some(&key),
    )?;
    Ok(Outcome::LoggedOut {
        connection_id: conn.id.clone(),
        user_ids,
        respond,
    })
}

/// Whether the LogoutRequest's NameID names the principal of a recorded SAML session
/// (SAML Core §3.7.1, §2.2.2): the same value, format and qualifiers, where an absent
/// NameQualifier means the IdP and an absent SPNameQualifier means this SP.
fn same_principal(
    row: &SamlSessionRow,
    message: &LogoutMessage,
    idp_entity_id: &str,
    sp_entity_id: &str,
) -> bool {
    const UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";
    let format = |f: &Option<String>| f.clone().unwrap_or_else(|| UNSPECIFIED.to_string());
    let or = |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.to_string());
    message.name_id.as_deref() == Some(row.name_id.as_str())
        && format(&message.name_id_format) == format(&row.name_id_format)
        && or(&message.name_qualifier, idp_entity_id) == or(&row.name_qualifier, idp_entity_id)
        && or(&message.sp_name_qualifier, sp_entity_id) == or(&row.sp_name_qualifier, sp_entity_id)
}

async fn logout_response(
    d: Deps<'_>,
    p: &Provider,
    received: &Received,
    message: &LogoutMessage,
) -> Result<Outcome, FederationError> {
    let unknown = || {
        FederationError::failed(
            "unknown_logout",
            "This sign-out response answers no sign-out started here, or it was already used.",
        )
    };
    let handle = received.relay_state.as_deref().ok_or_else(unknown)?;
    let flow = connections::find_flow(d.pool, &p.tenant, handle)
        .await?
        .filter(|f| f.logout_return.is_some())
        .ok_or_else(unknown)?;
    let conn = connections::find(d.pool, &p.tenant, &flow.connection_id)
        .await?
        .ok_or_else(unknown)?;
    let idp = saml::connection_metadata(&conn)?;
    check(p, &idp, received, message)?;
    if message.in_response_to.is_none() || message.in_response_to != flow.saml_request_id {
        return Err(FederationError::failed(
            "in_response_to_mismatch",
            "The sign-out response does not answer the request sent.",
        ));
    }
    if !connections::consume_flow(d.pool, &flow).await? {
        return Err(unknown());
    }
    Ok(Outcome::Returned {
        connection_id: conn.id.clone(),
        return_to: flow.logout_return.filter(|r| !r.is_empty()),
        status: message.status.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const REQUEST: &str = r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" Version="2.0" IssueInstant="2026-12-05T10:00:00Z" Destination="https://sp.example/t/saml/slo"><saml:Issuer>https://idp.example</saml:Issuer><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">a&amp;b@example.com</saml:NameID><samlp:SessionIndex>s1</samlp:SessionIndex><samlp:SessionIndex>s2</samlp:SessionIndex></samlp:LogoutRequest>"#;

    #[test]
    fn logout_messages_parse_to_what_the_sp_checks() {
        let m = parse_logout(REQUEST).unwrap();
        assert!(m.is_request);
        assert_eq!(m.id, "_r1");
        assert_eq!(m.issuer.as_deref(), Some("https://idp.example"));
        assert_eq!(m.name_id.as_deref(), Some("a&b@example.com"));
        assert_eq!(m.session_indexes, ["s1", "s2"]);
        assert_eq!(
            m.destination.as_deref(),
            Some("https://sp.example/t/saml/slo")
        );
        let response =
            logout_response_xml("https://sp", "https://idp/slo", "_r1", STATUS_SUCCESS, 0);
        let r = parse_logout(&response).unwrap();
        assert!(!r.is_request);
        assert_eq!(r.in_response_to.as_deref(), Some("_r1"));
        assert_eq!(r.status.as_deref(), Some(STATUS_SUCCESS));
        for bad in [
            format!("<!DOCTYPE x [<!ENTITY e 'x'>]>{REQUEST}"),
            REQUEST.replace("Version=\"2.0\"", "Version=\"1.1\""),
            REQUEST.replace(" ID=\"_r1\"", ""),
            REQUEST.replace("samlp:LogoutRequest", "samlp:AuthnRequest"),
            REQUEST.replace("a&amp;b", "a&custom;b"),
            "<x/>".to_string(),
            // One Issuer and one NameID, text only.
            REQUEST.replace(
                "<saml:Issuer>https://idp.example</saml:Issuer>",
                "<saml:Issuer>https://idp.example</saml:Issuer><saml:Issuer>https://other</saml:Issuer>",
            ),
            REQUEST.replace(
                "<samlp:SessionIndex>s1",
                "<saml:NameID>x@example.com</saml:NameID><samlp:SessionIndex>s1",
            ),
            REQUEST.replace("https://idp.example</saml:Issuer>", "https://idp.example<saml:Issuer>x</saml:Issuer></saml:Issuer>"),
            REQUEST.replace("a&amp;b@example.com</saml:NameID>", "<b>a</b>@example.com</saml:NameID>"),
        ] {
            assert!(parse_logout(&bad).is_err(), "{bad}");
        }
        assert_eq!(
            m.name_id_format.as_deref(),
            Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
        );
        // A StatusCode counts only inside Status.
        let stray = response.replace(
            "<samlp:Status>",
            &format!("<samlp:Extensions><samlp:StatusCode Value=\"{STATUS_SUCCESS}\"/></samlp:Extensions><samlp:Status>"),
        );
        assert_ne!(stray, response);
        assert!(parse_logout(&stray).is_err());
        let encrypted = REQUEST.replace(
            r#"<saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">a&amp;b@example.com</saml:NameID>"#,
            "<saml:EncryptedID/>",
        );
        assert!(matches!(
            parse_logout(&encrypted),
            Err(FederationError::Failed {
                reason: "encrypted_name_id",
                ..
            })
        ));
    }

    #[test]
    fn a_logout_request_names_the_principal_with_its_format_and_qualifiers() {
        let row = SamlSessionRow {
            sid: "sid".into(),
            tenant_id: "t".into(),
            connection_id: "c".into(),
            name_id: "_abc".into(),
            name_id_format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into()),
            name_qualifier: None,
            sp_name_qualifier: Some("https://sp".into()),
            session_index: None,
            created_at: 0,
        };
        let message = |format: Option<&str>, nq: Option<&str>, spnq: Option<&str>| LogoutMessage {
            name_id: Some("_abc".into()),
            name_id_format: format.map(str::to_string),
            name_qualifier: nq.map(str::to_string),
            sp_name_qualifier: spnq.map(str::to_string),
            ..LogoutMessage::default()
        };
        let persistent = Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent");
        let same = |m: &LogoutMessage| same_principal(&row, m, "https://idp", "https://sp");
        // Absent qualifiers default to the IdP and to this SP.
        assert!(same(&message(persistent, None, None)));
        assert!(same(&message(
            persistent,
            Some("https://idp"),
            Some("https://sp")
        )));
        assert!(!same(&message(None, None, None)));
        assert!(!same(&message(
            Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"),
            None,
            None
        )));
        assert!(!same(&message(persistent, Some("https://other-idp"), None)));
        assert!(!same(&message(persistent, None, Some("https://other-sp"))));
        let other = LogoutMessage {
            name_id: Some("_xyz".into()),
            ..message(persistent, None, None)
        };
        assert!(!same(&other));
    }
}
