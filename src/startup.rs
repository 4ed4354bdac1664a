//! Building and running the application. `Application::build` binds its own listener, so
//! tests can ask for port 0 and read the port back.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{middleware::from_fn, web, App, HttpServer};

use crate::config::Config;
use crate::error;
use crate::http;
use crate::jobs;
use crate::state::AppState;
use crate::storage::Pool;

pub struct Application {
    port: u16,
    server: Server,
    pub state: AppState,
}

/// Opens the database (migrating it) and resolves the master key.
pub async fn open_state(config: Config) -> anyhow::Result<AppState> {
    if let Some(slug) = &config.default_tenant {
        crate::tenants::TenantSlug::parse(slug)
            .map_err(|e| anyhow::anyhow!("default_tenant: {e}"))?;
    }
    let master_key = config.resolve_master_key()?;
    if let Some(path) = config.sqlite_path() {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
    }
    let pool = Pool::connect(&config.database_url, config.database_max_connections)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
    pool.migrate()
        .await
        .map_err(|e| anyhow::anyhow!("cannot migrate the database: {e}"))?;
    let protection = crate::protection::Protection::new(&config).await?;
    let state = AppState::new(config, pool, master_key, protection)?;
    state.protection.refresh_bans(&state.pool).await?;
    Ok(state)
}

impl Application {
    pub async fn build(config: Config, demo: bool) -> anyhow::Result<Self> {
        let state = open_state(config).await?;
        Self::with_state(state, demo)
    }

    pub fn with_state(state: AppState, demo: bool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&state.config.bind)
            .map_err(|e| anyhow::anyhow!("cannot bind {}: {e}", state.config.bind))?;
        Self::with_listener(state, listener, demo)
    }

    /// Serves on an already bound listener (tests bind port 0 first to learn the port).
    pub fn with_listener(
        state: AppState,
        listener: TcpListener,
        demo: bool,
    ) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        let data = web::Data::new(state.clone());
        let default_tenant = state.config.default_tenant.is_some();
        let max_body = state.config.max_body_bytes;
        let workers = match state.config.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .wrap(from_fn(http::middleware::protect))
                .wrap(from_fn(http::middleware::request_context))
                .configure(|cfg| http::routes(cfg, default_tenant, demo))
                .default_service(web::to(|| async { error::not_found() }))
        })
        .workers(workers)
        .shutdown_timeout(20)
        .listen(listener)?
        .run();
        jobs::spawn(state.clone());
        Ok(Self {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM, finishing in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
