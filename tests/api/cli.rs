use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::helpers::database_url;

struct Cli {
    url: String,
    key: String,
}

impl Cli {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(args)
            .args(["--database-url", &self.url])
            .env("PORTCULLIS_MASTER_KEY", &self.key)
            .env("PORTCULLIS_LOG_LEVEL", "warn")
            .env("PORTCULLIS_ARGON2__MEMORY_KIB", "1024")
            .env("PORTCULLIS_ARGON2__ITERATIONS", "1")
            .env("PORTCULLIS_ARGON2__PARALLELISM", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    fn json(&self, args: &[&str], stdin: Option<&str>) -> Value {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("one JSON object: {}", String::from_utf8_lossy(&out.stdout)))
    }
}

#[tokio::test]
async fn the_cli_manages_tenants_clients_users_roles_and_keys_with_json_output_and_exit_codes() {
    let (url, _dir) = database_url().await;
    let cli = Cli {
        url,
        key: portcullis::crypto::MasterKey::generate().to_base64(),
    };
    assert_eq!(cli.json(&["migrate", "--json"], None)["migrated"], true);
    let t = cli.json(
        &["tenant", "create", "acme", "--name", "Acme Corp", "--json"],
        None,
    );
    assert_eq!(t["slug"], "acme");
    assert_eq!(t["issuer"], "http://127.0.0.1:8080/t/acme");

    let dup = cli.run(&["tenant", "create", "acme"], None);
    assert_eq!(dup.status.code(), Some(1));
    let err = String::from_utf8_lossy(&dup.stderr);
    assert_eq!(err.trim(), "error: tenant already exists");
    assert_eq!(err.trim().lines().count(), 1);
    assert_eq!(
        cli.run(&["tenant", "create", "Bad Slug"], None)
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        cli.run(&["tenant", "create", "x1", "--no-such-flag"], None)
            .status
            .code(),
        Some(2)
    );

    let c = cli.json(
        &[
            "client",
            "create",
            "--tenant",
            "acme",
            "--name",
            "Web",
            "--redirect-uri",
            "https://app.example.com/cb",
            "--post-logout-redirect-uri",
            "https://app.example.com/bye",
            "--json",
        ],
        None,
    );
    assert!(c["client_id"].is_string());
    assert!(c["client_secret"].as_str().unwrap().starts_with("cs_"));
    let public = cli.json(
        &[
            "client",
            "create",
            "--tenant",
            "acme",
            "--name",
            "SPA",
            "--redirect-uri",
            "https://spa.example.com/cb",
            "--public",
            "--json",
        ],
        None,
    );
    assert!(public.get("client_secret").is_none());
    let bad = cli.run(
        &[
            "client",
            "create",
            "--tenant",
            "acme",
            "--name",
            "X",
            "--redirect-uri",
            "https://a/cb#frag",
        ],
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
    let plain_bcl = cli.run(
        &[
            "client",
            "create",
            "--tenant",
            "acme",
            "--name",
            "X",
            "--redirect-uri",
            "https://a.example/cb",
            "--backchannel-logout-uri",
            "http://internal.example/bcl",
        ],
        None,
    );
    assert_eq!(plain_bcl.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&plain_bcl.stderr).contains("https"));

    let role = cli.json(
        &[
            "role",
            "create",
            "--tenant",
            "acme",
            "--name",
            "viewer",
            "--permission",
            "reports:read",
            "--json",
        ],
        None,
    );
    assert_eq!(role["name"], "viewer");
    let u = cli.json(
        &[
            "user",
            "create",
            "--tenant",
            "acme",
            "--email",
            "ana@acme.test",
            "--password-stdin",
            "--role",
            "viewer",
            "--json",
        ],
        Some("Correct-Horse-42\n"),
    );
    assert_eq!(u["email"], "ana@acme.test");
    let weak = cli.run(
        &[
            "user",
            "create",
            "--tenant",
            "acme",
            "--email",
            "bob@acme.test",
            "--password",
            "short",
        ],
        None,
    );
    assert_eq!(weak.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 12 characters"));

    // A platform administrator (the console at /admin), the password from stdin only.
    let admin = cli.json(
        &[
            "admin",
            "create",
            "--email",
            "Root@Platform.test",
            "--password-stdin",
            "--json",
        ],
        Some("Platform-Horse-42\n"),
    );
    assert_eq!(admin["email"], "root@platform.test");
    assert!(admin["id"].as_str().is_some_and(|id| id.len() == 36));
    let again = cli.run(
        &[
            "admin",
            "create",
            "--email",
            "root@platform.test",
            "--password-stdin",
        ],
        Some("Platform-Horse-42\n"),
    );
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr).trim(),
        "error: a user with this e-mail already exists"
    );
    let weak = cli.run(
        &[
            "admin",
            "create",
            "--email",
            "x@platform.test",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert_eq!(weak.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 12 characters"));
    assert_eq!(
        cli.run(&["admin", "create", "--email", "y@platform.test"], None)
            .status
            .code(),
        Some(2),
        "the password is never an argument: --password-stdin is required"
    );
    let list = cli.json(&["admin", "list", "--json"], None);
    assert_eq!(list["admins"].as_array().unwrap().len(), 1);
    assert_eq!(list["admins"][0]["email"], "root@platform.test");
    assert_eq!(list["admins"][0]["last_sign_in_at"], Value::Null);
    let changed = cli.json(
        &[
            "admin",
            "password",
            "--email",
            "root@platform.test",
            "--password-stdin",
            "--json",
        ],
        Some("Another-Horse-43\n"),
    );
    assert_eq!(changed["sessions_ended"], true);
    let removed = cli.json(
        &["admin", "remove", "--email", "root@platform.test", "--json"],
        None,
    );
    assert_eq!(removed["removed"], "root@platform.test");
    let again = cli.run(&["admin", "remove", "--email", "root@platform.test"], None);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr).trim(),
        "error: user not found"
    );
    assert!(cli.json(&["admin", "list", "--json"], None)["admins"]
        .as_array()
        .unwrap()
        .is_empty());

    let key = cli.json(
        &[
            "apikey",
            "create",
            "--tenant",
            "acme",
            "--name",
            "svc",
            "--scope",
            "users:read",
            "--expires-in-days",
            "30",
            "--json",
        ],
        None,
    );
    assert!(key["key"]
        .as_str()
        .unwrap()
        .starts_with(key["prefix"].as_str().unwrap()));
    assert_eq!(key["scopes"], serde_json::json!(["users:read"]));
    assert!(key["expires_at"].as_str().unwrap().ends_with('Z'));
    let platform = cli.json(
        &[
            "apikey",
            "create",
            "--platform",
            "--name",
            "ops",
            "--scope",
            "tenants:create",
            "--json",
        ],
        None,
    );
    assert!(platform["id"].is_string());
    let bad = cli.run(
        &[
            "apikey",
            "create",
            "--tenant",
            "acme",
            "--name",
            "x",
            "--scope",
            "tenants:create",
        ],
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        cli.run(&["apikey", "create", "--name", "x", "--scope", "a:b"], None)
            .status
            .code(),
        Some(2)
    );
    let k = cli.json(&["keys", "rotate", "--tenant", "acme", "--json"], None);
    assert_eq!(
        k["next_kids"].as_array().unwrap().len(),
        portcullis::keys::Alg::ALL.len()
    );
    assert_eq!(
        cli.run(&["keys", "rotate", "--tenant", "nope"], None)
            .status
            .code(),
        Some(1)
    );
}

#[tokio::test]
async fn the_cli_lists_adds_and_removes_bans() {
    let (url, _dir) = database_url().await;
    let cli = Cli {
        url,
        key: portcullis::crypto::MasterKey::generate().to_base64(),
    };
    cli.json(&["migrate", "--json"], None);
    let ban = cli.json(
        &["ban", "add", "2001:db8::7", "--reason", "scanner", "--json"],
        None,
    );
    assert_eq!(ban["ip"], "2001:db8::/64");
    assert_eq!(ban["reason"], "scanner");
    assert_eq!(ban["created_by"], "cli");
    assert_eq!(ban["expires_at"], Value::Null);
    let list = cli.json(&["ban", "list", "--json"], None);
    assert_eq!(list["bans"][0]["ip"], "2001:db8::/64");
    let removed = cli.json(&["ban", "remove", "2001:db8::7", "--json"], None);
    assert_eq!(removed["removed"], "2001:db8::7");
    assert_eq!(
        cli.json(&["ban", "list", "--json"], None)["bans"],
        serde_json::json!([])
    );
    let out = cli.run(&["ban", "remove", "2001:db8::7"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: no such ban"
    );
    let out = cli.run(&["ban", "add", "not-an-ip"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be an IP address or a CIDR range"));
    assert_eq!(cli.run(&["ban", "add"], None).status.code(), Some(2));
}
