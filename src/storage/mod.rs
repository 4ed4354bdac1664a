//! Storage: the only place SQL lives. One file per table group, `verb_noun` functions,
//! no business rules. Each query is written once, in the dialect SQLite and PostgreSQL
//! share (`$n` placeholders, `ON CONFLICT`, `RETURNING`, Unix-second integers, TEXT ids),
//! and type-checked once per backend by the [`dispatch!`] macro over native pools.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub mod api_keys;
pub mod audit;
pub mod authorization;
pub mod bans;
pub mod clients;
pub mod federation;
pub mod jobs;
pub mod keys;
pub mod lockout;
pub mod mfa;
pub mod passkeys;
pub mod platform;
pub mod replay;
pub mod roles;
pub mod sessions;
pub mod settings;
pub mod tenants;
pub mod tokens;
pub mod users;

/// A database pool of one of the two supported backends.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same body against whichever native pool is in use. Inside the body `$p` is a
/// `&SqlitePool` or a `&PgPool`, so the query is compiled (and type-checked) for both.
#[macro_export]
macro_rules! dispatch {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::storage::Pool::Sqlite($p) => $body,
            $crate::storage::Pool::Postgres($p) => $body,
        }
    };
}
pub use dispatch;

pub type DbResult<T> = Result<T, sqlx::Error>;

impl Pool {
    /// Connects to `url` (`sqlite:` or `postgres://`). SQLite files are created on first
    /// use and run in WAL mode with foreign keys on, a busy timeout and a bounded WAL file.
    pub async fn connect(url: &str, max_connections: u32) -> DbResult<Self> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                // After a checkpoint the WAL is cut back to 64 MiB instead of keeping the
                // size of its busiest moment on disk.
                .pragma("journal_size_limit", "67108864");
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Ok(Pool::Sqlite(pool))
        } else {
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            Ok(Pool::Postgres(pool))
        }
    }

    /// Applies the migrations of this backend (`migrations/sqlite` or `migrations/postgres`).
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Pool::Sqlite(p) => sqlx::migrate!("migrations/sqlite").run(p).await,
            Pool::Postgres(p) => sqlx::migrate!("migrations/postgres").run(p).await,
        }
    }

    /// A trivial round-trip, for `/ready`.
    pub async fn ping(&self) -> DbResult<()> {
        dispatch!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        dispatch!(self, p => p.close().await)
    }
}

/// Whether an error is a unique-constraint violation (a duplicate slug, e-mail, name).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Seconds since the Unix epoch.
/// An instant of the database (Unix seconds) as RFC 3339, as the API and pages show it.
pub fn format_instant(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The cursor of a page ordered by `(created_at, id)`: the last row's, written `created.id`.
pub fn format_cursor(created_at: i64, id: &str) -> String {
    format!("{created_at}.{id}")
}

/// The `(created_at, id)` of a [`format_cursor`] cursor; None when it is not one.
pub fn parse_cursor(cursor: &str) -> Option<(i64, &str)> {
    let (t, id) = cursor.split_once('.')?;
    Some((t.parse().ok()?, id))
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// JSON text of a list, for the TEXT list columns.
pub fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// The list stored by [`json_list`]; a malformed value reads as empty.
pub fn parse_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}
