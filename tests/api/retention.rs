//! The purge job's retention: expired or ended rows are kept `expired_retention_secs`, audit
//! events `audit_retention_days`, then deleted — on both databases.

use portcullis::storage::{self, audit::AuditRow, dispatch};

use crate::helpers::{spawn_app_with, ClientOptions, TestApp};

async fn count(app: &TestApp, sql: &str, bind: &str) -> i64 {
    dispatch!(&app.state.pool, p => sqlx::query_scalar(sql).bind(bind).fetch_one(p).await.unwrap())
}

async fn exec(app: &TestApp, sql: &str, at: i64, user: &str) {
    dispatch!(&app.state.pool, p => {
        sqlx::query(sql).bind(at).bind(user).execute(p).await.unwrap();
    });
}

fn audit_row(tenant: Option<&str>, created_at: i64) -> AuditRow {
    AuditRow {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.map(str::to_string),
        event: "retention.probe".into(),
        actor: None,
        client_id: None,
        ip: None,
        user_agent: None,
        correlation_id: None,
        details: "{}".into(),
        created_at,
    }
}

#[tokio::test]
async fn the_purge_keeps_rows_for_their_retention_then_deletes_them() {
    let app = spawn_app_with(|c| {
        c.expired_retention_secs = 3600;
        c.audit_retention_days = 30;
    })
    .await;
    let client = app.create_client(ClientOptions::default()).await;
    // Two users with a real session, a redeemed code and a refresh token each.
    let old = app.create_user("old@example.com").await;
    let recent = app.create_user("recent@example.com").await;
    for email in ["old@example.com", "recent@example.com"] {
        assert!(app.tokens_for(&client, email).await["refresh_token"].is_string());
    }
    let now = storage::now();
    // `old`'s rows expired (or ended) two hours ago, `recent`'s ten minutes ago.
    for (user, at) in [(&old, now - 7200), (&recent, now - 600)] {
        exec(
            &app,
            "UPDATE refresh_tokens SET expires_at = $1 WHERE user_id = $2",
            at,
            user,
        )
        .await;
        exec(
            &app,
            "UPDATE authorization_codes SET expires_at = $1 WHERE user_id = $2",
            at,
            user,
        )
        .await;
        exec(
            &app,
            "UPDATE browser_sessions SET ended_at = $1 WHERE user_id = $2",
            at,
            user,
        )
        .await;
    }
    let tenant = app.tenant.id.as_str();
    let day = 86_400;
    storage::audit::insert_audit_events(
        &app.state.pool,
        &[
            audit_row(Some(tenant), now - 31 * day),
            audit_row(None, now - 31 * day),
            audit_row(Some("a-deleted-tenant"), now - 400 * day),
            audit_row(Some(tenant), now - 29 * day),
            audit_row(None, now - 29 * day),
        ],
    )
    .await
    .unwrap();

    app.state.audit.flush().await;
    portcullis::jobs::purge(&app.state).await;

    for (table, user, left) in [
        ("refresh_tokens", &old, 0),
        ("refresh_tokens", &recent, 1),
        ("authorization_codes", &old, 0),
        ("authorization_codes", &recent, 1),
        ("browser_sessions", &old, 0),
        ("browser_sessions", &recent, 1),
    ] {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE user_id = $1");
        assert_eq!(count(&app, &sql, user).await, left, "{table} of {user}");
    }
    let probes = "SELECT COUNT(*) FROM audit_events WHERE event = $1";
    assert_eq!(count(&app, probes, "retention.probe").await, 2);
    let kept = "SELECT COUNT(*) FROM audit_events WHERE event = $1 AND created_at < $2";
    let older: i64 = dispatch!(&app.state.pool, p => sqlx::query_scalar(kept)
        .bind("retention.probe").bind(now - 30 * day).fetch_one(p).await.unwrap());
    assert_eq!(older, 0);
    // Recent events (the sign-ins above) are untouched.
    assert!(count(&app, probes, "signin.success").await >= 2);
}

#[tokio::test]
async fn an_audit_retention_of_zero_keeps_events_forever() {
    let app = spawn_app_with(|c| c.audit_retention_days = 0).await;
    let ancient = storage::now() - 3650 * 86_400;
    storage::audit::insert_audit_events(&app.state.pool, &[audit_row(None, ancient)])
        .await
        .unwrap();
    portcullis::jobs::purge(&app.state).await;
    let probes = "SELECT COUNT(*) FROM audit_events WHERE event = $1";
    assert_eq!(count(&app, probes, "retention.probe").await, 1);
}
