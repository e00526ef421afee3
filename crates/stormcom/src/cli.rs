//! Command-line interface. Every command honours the same data-dir and database
//! settings, so operator commands work against a running server's database.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use stormcom_app::import::ImportSummary;
use stormcom_app::{App, AppConfig, AppError, StoreContext};
use stormcom_http::HttpConfig;
use stormcom_store::{Db, PoolConfig};

#[derive(Debug, Parser)]
#[command(name = "stormcom", version, about = "Multi-tenant commerce backend")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Directory for the embedded database and generated keys.
    #[arg(long, env = "STORMCOM_DATA_DIR", default_value = "./stormcom-data", global = true)]
    pub data_dir: PathBuf,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB. Default: SQLite in the data dir.
    #[arg(long, env = "STORMCOM_DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Log output format.
    #[arg(long, env = "STORMCOM_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (migrates the database first).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "STORMCOM_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Database connections (PostgreSQL) or readers (SQLite).
        #[arg(long, env = "STORMCOM_DB_POOL_SIZE", default_value_t = 16)]
        db_pool_size: u32,
        /// How long public storefront answers may be served from memory (0 disables).
        #[arg(long, env = "STORMCOM_STOREFRONT_CACHE_MS", default_value_t = 1000)]
        storefront_cache_ms: u64,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Operator commands.
    #[command(subcommand)]
    Admin(Admin),
    /// Import data into a store.
    #[command(subcommand)]
    Import(Import),
    /// Measure performance; prints figures, asserts nothing.
    #[command(subcommand)]
    Bench(crate::bench::Bench),
}

#[derive(Debug, Subcommand)]
pub enum Admin {
    /// Create a platform user; the password is read from stdin (or --password-file).
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Create a store owned by an existing user (creates their organization if needed).
    CreateStore {
        #[arg(long)]
        name: String,
        #[arg(long)]
        handle: String,
        #[arg(long, default_value = "USD")]
        currency: String,
        /// Email of the owner.
        #[arg(long)]
        owner: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum Import {
    /// Import a Shopify product CSV export (classic or 2025 headers).
    Shopify {
        /// Handle of the store to import into.
        #[arg(long)]
        store: String,
        file: PathBuf,
    },
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STORMCOM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
        LogFormat::Text => builder.compact().init(),
    }
}

/// The database URL in force: explicit, or SQLite inside the data dir.
pub fn database_url(global: &Global) -> anyhow::Result<String> {
    if let Some(url) = &global.database_url {
        return Ok(url.clone());
    }
    std::fs::create_dir_all(&global.data_dir)
        .with_context(|| format!("cannot create data dir {}", global.data_dir.display()))?;
    let dir = global.data_dir.canonicalize().context("cannot resolve data dir")?;
    Ok(format!("sqlite://{}", dir.join("stormcom.db").display()))
}

async fn open(global: &Global, pool: &PoolConfig) -> anyhow::Result<Db> {
    let url = database_url(global)?;
    let db = Db::connect(&url, pool).await.context("cannot open the database")?;
    db.migrate().await.context("cannot migrate the database")?;
    Ok(db)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let global = &cli.global;
    match cli.command {
        Command::Serve {
            listen,
            db_pool_size,
            storefront_cache_ms,
        } => {
            init_logging(global.log_format);
            let http = HttpConfig {
                storefront_cache_ttl: Duration::from_millis(storefront_cache_ms),
                ..HttpConfig::default()
            };
            serve(global, listen, db_pool_size, &http).await
        }
        Command::Migrate => {
            let db = open(global, &PoolConfig::default()).await?;
            println!("migrated ({})", db.backend_name());
            Ok(())
        }
        Command::Admin(admin) => {
            let app = App::new(open(global, &PoolConfig::default()).await?, AppConfig::default());
            run_admin(&app, admin).await
        }
        Command::Import(Import::Shopify { store, file }) => {
            let app = App::new(open(global, &PoolConfig::default()).await?, AppConfig::default());
            import_file(&app, &store, &file).await
        }
        Command::Bench(bench) => crate::bench::run(bench).await,
    }
}

async fn serve(global: &Global, listen: SocketAddr, pool_size: u32, http: &HttpConfig) -> anyhow::Result<()> {
    let db = open(
        global,
        &PoolConfig {
            max_connections: pool_size,
            ..PoolConfig::default()
        },
    )
    .await?;
    let backend = db.backend_name();
    let app = App::new(db.clone(), AppConfig::default());
    let api = stormcom_http::build(app, http);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr().unwrap_or(listen);
    tracing::info!(%address, backend, "stormcom listening on http://{address}");
    axum::serve(listener, api.router)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server failed")?;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

fn read_password(file: Option<&Path>) -> anyhow::Result<String> {
    let raw = match file {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
        None if std::io::stdin().is_terminal() => {
            let first = rpassword::prompt_password("Password: ")?;
            let second = rpassword::prompt_password("Repeat password: ")?;
            if first != second {
                bail!("the passwords do not match");
            }
            first
        }
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from stdin")?;
            line
        }
    };
    Ok(raw.trim_end_matches(['\r', '\n']).to_owned())
}

fn describe(error: AppError) -> anyhow::Error {
    match error {
        AppError::Validation(errors) => {
            let lines: Vec<String> = errors.0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
            anyhow::anyhow!("invalid input: {}", lines.join("; "))
        }
        other => anyhow::anyhow!("{other}"),
    }
}

async fn run_admin(app: &App, admin: Admin) -> anyhow::Result<()> {
    match admin {
        Admin::CreateUser { email, password_file } => {
            let password = read_password(password_file.as_deref())?;
            let id = app.create_user(&email, &password).await.map_err(describe)?;
            println!("{id}");
        }
        Admin::CreateStore {
            name,
            handle,
            currency,
            owner,
        } => {
            let store = app
                .create_store(&name, &handle, &currency, &owner)
                .await
                .map_err(describe)?;
            println!("{}", store.id);
        }
    }
    Ok(())
}

async fn import_file(app: &App, store_handle: &str, file: &Path) -> anyhow::Result<()> {
    let bytes = tokio::fs::read(file)
        .await
        .with_context(|| format!("cannot read {}", file.display()))?;
    let store = app
        .store_by_handle(store_handle)
        .await
        .map_err(|_| anyhow::anyhow!("no store has the handle '{store_handle}'"))?;
    let currency = store
        .currency
        .parse()
        .map_err(|_| anyhow::anyhow!("store currency is not ISO 4217"))?;
    let ctx = StoreContext::operator(store.scope(), currency);
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} importing [{bar:40}] {pos}/{len} products ({per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let summary = app.import_shopify(&ctx, bytes, &progress).await.map_err(describe)?;
    bar.finish_and_clear();
    print_summary(&summary);
    Ok(())
}

pub fn print_summary(s: &ImportSummary) {
    println!(
        "products: {} created, {} updated, {} unchanged, {} rejected",
        s.products_created, s.products_updated, s.products_unchanged, s.products_rejected
    );
    println!(
        "variants: {} created, {} updated, {} unchanged",
        s.variants_created, s.variants_updated, s.variants_unchanged
    );
    println!(
        "images:   {} created, {} updated, {} unchanged",
        s.images_created, s.images_updated, s.images_unchanged
    );
    if s.rows_rejected.is_empty() {
        println!("rows rejected: none");
    } else {
        println!("rows rejected: {}", s.rows_rejected.len());
        for row in &s.rows_rejected {
            println!(
                "  line {}{}: {}",
                row.line,
                row.handle.as_deref().map(|h| format!(" ({h})")).unwrap_or_default(),
                row.reason
            );
        }
    }
}
