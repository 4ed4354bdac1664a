//! Mail through a real SMTP server (aiosmtpd from PyPI, installed by .ci/run).

use std::io::Read;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn with_smtp_configured_mail_goes_to_the_smtp_server() {
    let probe = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var("CI").is_err(),
            "aiosmtpd must be installed in CI (.ci/run does it)"
        );
        println!("SMTP test skipped: `python3 -m pip install aiosmtpd` to run it");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("python3")
        .args([
            "-u",
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "aiosmtpd did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let app = spawn_app_with(|c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{port}").into());
        c.smtp_from = "Acme <no-reply@acme.test>".into();
    })
    .await;
    app.create_user("ana@example.com").await;
    let r = app
        .http
        .post(app.url("/api/v1/auth/reset-password"))
        .json(&json!({"email": "ana@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let outbox =
        portcullis::storage::users::list_outbox(&app.state.pool, &app.tenant.id, "ana@example.com")
            .await
            .unwrap();
    assert!(
        outbox.is_empty(),
        "sent through SMTP, not kept in the outbox"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let _ = server.kill();
    let mut out = String::new();
    server
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = server.wait();
    assert!(out.contains("Subject: Reset your password"), "{out}");
    assert!(out.contains("To: ana@example.com"), "{out}");
    // The body is quoted-printable: the link is there, soft-wrapped.
    assert!(
        out.contains("Reset your password for Acme: ") && out.contains("/reset-password?"),
        "{out}"
    );
}
