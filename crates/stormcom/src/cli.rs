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
use stormcom_domain::{Plan, PlanTable};
use stormcom_http::HttpConfig;
use stormcom_http::ratelimit::{RateLimitConfig, RateLimiter};
use stormcom_http::server::Limits;
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
    /// Log output format: JSON lines for collectors, or text for a terminal.
    #[arg(long, env = "STORMCOM_LOG_FORMAT", value_enum, default_value = "json", global = true)]
    pub log_format: LogFormat,
    /// Free plan overrides, e.g. `stores=3,products=1000,tokens=10,rate=1`.
    #[arg(long, env = "STORMCOM_PLAN_FREE", global = true)]
    pub plan_free: Option<String>,
    /// Pro plan overrides (same keys as --plan-free).
    #[arg(long, env = "STORMCOM_PLAN_PRO", global = true)]
    pub plan_pro: Option<String>,
    /// Enterprise plan overrides (same keys as --plan-free).
    #[arg(long, env = "STORMCOM_PLAN_ENTERPRISE", global = true)]
    pub plan_enterprise: Option<String>,
}

impl Global {
    /// The built-in plans with this run's overrides.
    pub fn plans(&self) -> anyhow::Result<PlanTable> {
        let mut plans = PlanTable::default();
        for (plan, spec) in [
            (Plan::Free, &self.plan_free),
            (Plan::Pro, &self.plan_pro),
            (Plan::Enterprise, &self.plan_enterprise),
        ] {
            if let Some(spec) = spec {
                plans.override_plan(plan, spec).map_err(|e| anyhow::anyhow!(e))?;
            }
        }
        Ok(plans)
    }
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
        /// Seconds between inventory reconciliation runs (0 disables); daily by default.
        #[arg(long, env = "STORMCOM_RECONCILE_SECS", default_value_t = 86_400)]
        reconcile_secs: u64,
        /// Seconds between signed audit checkpoints (0 disables).
        #[arg(long, env = "STORMCOM_AUDIT_CHECKPOINT_SECS", default_value_t = 600)]
        audit_checkpoint_secs: u64,
        /// How long public storefront answers may be served from memory (0 disables).
        #[arg(long, env = "STORMCOM_STOREFRONT_CACHE_MS", default_value_t = 1000)]
        storefront_cache_ms: u64,
        /// Oldest payment-callback signature accepted, in seconds (replay window).
        #[arg(long, env = "STORMCOM_CALLBACK_MAX_AGE_SECS", default_value_t = 300)]
        callback_max_age_secs: i64,
        /// Clock skew allowed for callback signatures from the future, in seconds.
        #[arg(long, env = "STORMCOM_CALLBACK_MAX_FUTURE_SECS", default_value_t = 30)]
        callback_max_future_secs: i64,
        #[command(flatten)]
        auth: AuthThrottleArgs,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        edge: Edge,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Operator commands.
    #[command(subcommand)]
    Admin(Admin),
    /// Import data into a store.
    #[command(subcommand)]
    Import(Import),
    /// Audit log: verify the hash chains, sign checkpoints.
    #[command(subcommand)]
    Audit(Audit),
    /// Inventory operations.
    #[command(subcommand)]
    Inventory(Inventory),
    /// Payment gateway tools (the built-in `test` provider).
    #[command(subcommand)]
    Payments(crate::payments_cli::Payments),
    /// Measure performance; prints figures, asserts nothing.
    #[command(subcommand)]
    Bench(crate::bench::Bench),
}

/// Rate limits and the client address (`serve`).
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Per-class overrides of the default rates: `auth=30/10,storefront_read=off`
    /// (requests per minute / burst, per user, token or address), or `off`.
    #[arg(long, env = "STORMCOM_RATE_LIMITS", default_value = "")]
    pub rate_limits: String,
    /// Share the limits among server processes through this Redis (`redis://host:6379`).
    #[arg(long, env = "STORMCOM_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of the limiter's Redis keys (processes sharing a budget use the same one).
    #[arg(long, env = "STORMCOM_REDIS_KEY_PREFIX", default_value = "stormcom:rl")]
    pub redis_key_prefix: String,
    /// Proxies whose X-Forwarded-For / Forwarded headers are believed (IPs or CIDRs).
    #[arg(long, env = "STORMCOM_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
}

/// Limits and exposure of the HTTP edge (`serve`).
#[derive(Debug, Args)]
pub struct Edge {
    /// Connections served at once; more are answered 503 and closed.
    #[arg(long, env = "STORMCOM_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Largest request head (request line and headers) in bytes; larger → 431. At least 8192.
    #[arg(long, env = "STORMCOM_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    max_header_bytes: usize,
    /// Most request headers; more → 431.
    #[arg(long, env = "STORMCOM_MAX_HEADERS", default_value_t = 64)]
    max_headers: usize,
    /// Seconds a client has to send a request head, and an idle keep-alive connection is
    /// kept. Behind a load balancer, make it longer than the balancer's idle timeout.
    #[arg(long, env = "STORMCOM_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    header_timeout_secs: u64,
    /// Seconds a request may take before it is answered 503.
    #[arg(long, env = "STORMCOM_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    request_timeout_secs: u64,
    /// Browser origins allowed to call the storefront API cross-origin, comma-separated
    /// (e.g. https://shop.example.com). Empty: none. Other routes never answer CORS.
    #[arg(long, env = "STORMCOM_CORS_ORIGINS", default_value = "")]
    cors_origins: String,
    /// Address of the Prometheus /metrics listener, or `off`.
    #[arg(long, env = "STORMCOM_METRICS_LISTEN", default_value = "127.0.0.1:9090")]
    metrics_listen: String,
}

#[derive(Debug, Subcommand)]
pub enum Inventory {
    /// Recompute on-hand and reserved from the ledger and live reservations; flag (and
    /// block fulfilment of) every variant that drifted. Exits non-zero when drift is found.
    Reconcile {
        /// Only this store (default: every store).
        #[arg(long)]
        store: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum Audit {
    /// Verify every link and hash (and signed checkpoints); exits non-zero on a break.
    Verify {
        /// Only this store's chain (default: the platform chain and every store's).
        #[arg(long)]
        store: Option<String>,
        /// Check against checkpoints exported earlier (JSON lines) instead of the database's.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
    },
    /// Sign the current head of every chain; optionally append all checkpoints to a file.
    Checkpoint {
        #[arg(long)]
        export: Option<PathBuf>,
    },
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
    /// Make a user a platform superuser (audited on the platform chain).
    GrantSuperuser {
        #[arg(long)]
        email: String,
    },
    /// Put an organization on a plan (free, pro, enterprise); audited on the platform chain.
    SetPlan {
        /// The organization's id (`org_…`).
        #[arg(long, required_unless_present = "store", conflicts_with = "store")]
        org: Option<String>,
        /// Or: the handle of one of its stores.
        #[arg(long)]
        store: Option<String>,
        #[arg(long)]
        plan: String,
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
    /// Lift the failed-login delay or lock of an account (audited).
    UnlockAccount {
        #[arg(long)]
        email: String,
    },
    /// List platform alerts (failed-login spikes), newest first, one JSON object a line.
    Alerts,
}

/// Brute-force defence knobs of `serve` (the rest keep their defaults; see `ThrottlePolicy`).
#[derive(Debug, clap::Args)]
pub struct AuthThrottleArgs {
    /// Consecutive failed logins of one account (or from one address) answered without delay.
    #[arg(long, env = "STORMCOM_AUTH_FREE_ATTEMPTS", default_value_t = 5)]
    auth_free_attempts: u32,
    /// Longest wait, in seconds, between attempts of a failing account (it doubles up to this).
    #[arg(long, env = "STORMCOM_AUTH_MAX_DELAY_SECS", default_value_t = 900)]
    auth_max_delay_secs: u64,
    /// Consecutive failures that lock an account (NIST SP 800-63B: at most 100).
    #[arg(long, env = "STORMCOM_AUTH_LOCKOUT_THRESHOLD", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100))]
    auth_lockout_threshold: u32,
    /// Length of the first lock in seconds; each further failure adds as much again.
    #[arg(long, env = "STORMCOM_AUTH_LOCKOUT_SECS", default_value_t = 3600)]
    auth_lockout_secs: u64,
    /// A 15-minute window with more than this many times the baseline of failures raises an alert.
    #[arg(long, env = "STORMCOM_AUTH_SPIKE_FACTOR", default_value_t = 5)]
    auth_spike_factor: u32,
}

impl AuthThrottleArgs {
    fn config(&self) -> AppConfig {
        let mut config = AppConfig::default();
        let policy = &mut config.auth_throttle;
        policy.account.free_attempts = self.auth_free_attempts;
        policy.ip.free_attempts = self.auth_free_attempts;
        policy.account.max_delay = Duration::from_secs(self.auth_max_delay_secs);
        if let Some(lock) = policy.account.lockout.as_mut() {
            lock.threshold = self.auth_lockout_threshold;
            lock.duration = Duration::from_secs(self.auth_lockout_secs);
        }
        policy.spike.factor = self.auth_spike_factor;
        config
    }
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

/// Logs to stderr through the last-resort redaction filter
/// ([`stormcom_http::logging::Redacting`]).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STORMCOM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(stormcom_http::logging::Redacting(std::io::stderr));
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
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
    let db = Db::connect(&url, pool).await?;
    db.migrate().await.context("cannot migrate the database")?;
    Ok(db)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let global = &cli.global;
    match cli.command {
        Command::Serve {
            listen,
            db_pool_size,
            reconcile_secs,
            audit_checkpoint_secs,
            storefront_cache_ms,
            callback_max_age_secs,
            callback_max_future_secs,
            auth,
            limits,
            edge,
        } => {
            init_logging(global.log_format);
            let plans = global.plans()?;
            let http = HttpConfig {
                storefront_cache_ttl: Duration::from_millis(storefront_cache_ms),
                trusted_proxies: limits
                    .trusted_proxies
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--trusted-proxies: {e}"))?,
                rate_limiter: Some(rate_limiter(&limits, &plans).await?),
                request_timeout: Duration::from_secs(edge.request_timeout_secs.max(1)),
                cors_origins: stormcom_http::parse_origins(&edge.cors_origins)
                    .map_err(|e| anyhow::anyhow!("STORMCOM_CORS_ORIGINS: {e}"))?,
                ..HttpConfig::default()
            };
            let limits = Limits {
                max_connections: edge.max_connections,
                max_header_bytes: edge.max_header_bytes,
                max_headers: edge.max_headers,
                header_read_timeout: Duration::from_secs(edge.header_timeout_secs.max(1)),
                ..Limits::default()
            };
            let metrics_listen = stormcom_http::metrics::parse_listen(&edge.metrics_listen)
                .map_err(|e| anyhow::anyhow!("STORMCOM_METRICS_LISTEN: {e}"))?;
            let pool = PoolConfig {
                max_connections: db_pool_size,
                ..PoolConfig::default()
            };
            let mut config = auth.config();
            config.callback_window = stormcom_domain::payment::SignatureWindow {
                max_age: callback_max_age_secs.max(0),
                max_future: callback_max_future_secs.max(0),
            };
            let app = app_with(global, &pool, config).await?;
            let jobs = Jobs {
                checkpoint_every: Duration::from_secs(audit_checkpoint_secs),
                reconcile_every: Duration::from_secs(reconcile_secs),
            };
            serve(app, listen, metrics_listen, &http, &limits, &jobs).await
        }
        Command::Migrate => {
            let db = open(global, &PoolConfig::default()).await?;
            println!("migrated ({})", db.backend_name());
            Ok(())
        }
        Command::Admin(admin) => run_admin(&app(global, &PoolConfig::default()).await?, admin).await,
        Command::Import(Import::Shopify { store, file }) => {
            import_file(&app(global, &PoolConfig::default()).await?, &store, &file).await
        }
        Command::Audit(audit) => run_audit(&app(global, &PoolConfig::default()).await?, audit).await,
        Command::Inventory(Inventory::Reconcile { store }) => {
            reconcile(&app(global, &PoolConfig::default()).await?, store.as_deref()).await
        }
        Command::Payments(payments) => {
            crate::payments_cli::run(&app(global, &PoolConfig::default()).await?, payments).await
        }
        Command::Bench(bench) => crate::bench::run(bench).await,
    }
}

/// The application over the configured database, with the keys from the data dir.
async fn app(global: &Global, pool: &PoolConfig) -> anyhow::Result<App> {
    app_with(global, pool, AppConfig::default()).await
}

async fn app_with(global: &Global, pool: &PoolConfig, mut config: AppConfig) -> anyhow::Result<App> {
    let keys = crate::keys::load_or_create(&global.data_dir)?;
    config.plans = global.plans()?;
    Ok(App::new(open(global, pool).await?, config, keys))
}

async fn rate_limiter(limits: &LimitArgs, plans: &PlanTable) -> anyhow::Result<RateLimiter> {
    let config: RateLimitConfig = limits
        .rate_limits
        .parse()
        .map_err(|e| anyhow::anyhow!("--rate-limits: {e}"))?;
    match &limits.redis_url {
        Some(url) => {
            let limiter = RateLimiter::with_redis(&config, plans, url, &limits.redis_key_prefix)
                .await
                .map_err(|e| anyhow::anyhow!("STORMCOM_REDIS_URL: {e}"))?;
            tracing::info!("rate limits shared through Redis");
            Ok(limiter)
        }
        None => Ok(RateLimiter::in_memory(&config, plans)),
    }
}

/// Background work inside `serve`.
struct Jobs {
    checkpoint_every: Duration,
    reconcile_every: Duration,
}

async fn serve(
    app: App,
    listen: SocketAddr,
    metrics_listen: Option<SocketAddr>,
    http: &HttpConfig,
    limits: &Limits,
    jobs: &Jobs,
) -> anyhow::Result<()> {
    // One signal stops both listeners.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    if let Some(address) = metrics_listen {
        let handle = stormcom_http::metrics::install().context("cannot install the metrics recorder")?;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} for metrics"))?;
        let address = listener.local_addr().unwrap_or(address);
        tracing::info!(%address, "metrics on http://{address}/metrics");
        tokio::spawn(stormcom_http::metrics::serve(listener, handle, until_stopped()));
    }
    let db = app.db().clone();
    let backend = db.backend_name();
    if !jobs.checkpoint_every.is_zero() {
        tokio::spawn(checkpoint_periodically(app.clone(), jobs.checkpoint_every));
    }
    if !jobs.reconcile_every.is_zero() {
        tokio::spawn(reconcile_periodically(app.clone(), jobs.reconcile_every));
    }
    tokio::spawn(expire_reservations(app.clone()));
    tokio::spawn(purge_periodically(app.clone()));
    let api = stormcom_http::build(app, http);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr().unwrap_or(listen);
    tracing::info!(%address, backend, "stormcom listening on http://{address}");
    stormcom_http::server::serve(listener, api.router, limits.clone(), until_stopped())
        .await
        .context("server failed")?;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Releases the stock of unpaid orders whose reservation ran out, every few seconds.
async fn expire_reservations(app: App) {
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match app.expire_overdue_orders().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(orders = n, "expired unpaid orders and released their stock"),
            Err(e) => tracing::error!(error = %e, "reservation sweeper failed"),
        }
    }
}

/// Hourly: forgets processed gateway events past their retention (30 days at least),
/// expired Idempotency-Keys, and brute-force counters their policy no longer remembers.
async fn purge_periodically(app: App) {
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match (
            app.purge_processed_events().await,
            app.purge_idempotency_keys().await,
            app.purge_auth_failures().await,
        ) {
            (Ok(events), Ok(keys), Ok((subjects, windows))) => {
                if events + keys + subjects + windows > 0 {
                    tracing::info!(events, keys, subjects, windows, "purged expired records");
                }
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => tracing::error!(error = %e, "purge job failed"),
        }
    }
}

async fn reconcile_periodically(app: App, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // not at start-up: the first run is one period in
    loop {
        ticker.tick().await;
        match app.reconcile_all().await {
            Ok(reports) => {
                let drifted: usize = reports.iter().map(|(_, r)| r.drifted.len()).sum();
                tracing::info!(stores = reports.len(), drifted, "inventory reconciliation done");
            }
            Err(e) => tracing::error!(error = %e, "inventory reconciliation failed"),
        }
    }
}

/// Signs audit chain heads on a timer, so a rewrite of the table is caught even if
/// nobody runs `stormcom audit checkpoint`.
async fn checkpoint_periodically(app: App, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match app.checkpoint_all().await {
            Ok(signed) if !signed.is_empty() => tracing::info!(chains = signed.len(), "audit checkpoints signed"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "audit checkpoint failed"),
        }
    }
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
    let password = raw.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!("no password given: type it at the prompt, pipe it on stdin, or use --password-file");
    }
    Ok(password.to_owned())
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
        Admin::GrantSuperuser { email } => {
            let changed = app.grant_superuser(&email).await.map_err(describe)?;
            println!("{}", if changed { "granted" } else { "already a superuser" });
        }
        Admin::SetPlan { org, store, plan } => {
            let plan: Plan = plan
                .parse()
                .map_err(|()| anyhow::anyhow!("unknown plan '{plan}' (free, pro, enterprise)"))?;
            let org = match (org, store) {
                (Some(org), _) => org.parse().map_err(|e| anyhow::anyhow!("--org: {e}"))?,
                (None, Some(handle)) => {
                    let store = app
                        .store_by_handle(&handle)
                        .await
                        .map_err(|_| anyhow::anyhow!("no store has the handle '{handle}'"))?;
                    app.org_of_store(store.id).await.map_err(describe)?.0
                }
                (None, None) => bail!("name the organization: --org ID or --store HANDLE"),
            };
            let previous = app.set_org_plan(org, plan).await.map_err(|e| match e {
                AppError::NotFound => anyhow::anyhow!("no organization {org}"),
                other => describe(other),
            })?;
            println!("{org}: {previous} -> {plan}");
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
        Admin::UnlockAccount { email } => {
            let changed = app.unlock_account(&email).await.map_err(describe)?;
            println!("{}", if changed { "unlocked" } else { "not throttled" });
        }
        Admin::Alerts => {
            let alerts = app.platform_alerts().await.map_err(describe)?;
            if alerts.is_empty() {
                // On stderr: stdout stays JSON lines only.
                eprintln!("no platform alerts");
            }
            for alert in alerts {
                let line = serde_json::json!({
                    "id": alert.id.to_string(),
                    "kind": alert.kind,
                    "subject": alert.subject,
                    "detail": alert.detail,
                    "created_at": alert.created_at.format(&time::format_description::well_known::Rfc3339)?,
                    "resolved_at": alert.resolved_at.map(|t| t.format(&time::format_description::well_known::Rfc3339)).transpose()?,
                });
                println!("{line}");
            }
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

async fn run_audit(app: &App, audit: Audit) -> anyhow::Result<()> {
    match audit {
        Audit::Checkpoint { export } => {
            let signed = app.checkpoint_all().await.map_err(describe)?;
            println!("signed {} checkpoint(s)", signed.len());
            if let Some(path) = export {
                let all = app.all_checkpoints().await.map_err(describe)?;
                let mut lines = String::new();
                for checkpoint in &all {
                    lines.push_str(&serde_json::to_string(checkpoint)?);
                    lines.push('\n');
                }
                std::fs::write(&path, lines).with_context(|| format!("cannot write {}", path.display()))?;
                println!("exported {} checkpoint(s) to {}", all.len(), path.display());
            }
            Ok(())
        }
        Audit::Verify { store, checkpoints } => {
            let external = match checkpoints {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                    let list: Vec<stormcom_domain::audit::Checkpoint> = text
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(serde_json::from_str)
                        .collect::<Result<_, _>>()
                        .with_context(|| format!("{} is not a checkpoint export", path.display()))?;
                    Some(list)
                }
                None => None,
            };
            let chains = match store {
                Some(handle) => {
                    let store = app
                        .store_by_handle(&handle)
                        .await
                        .map_err(|_| anyhow::anyhow!("no store has the handle '{handle}'"))?;
                    vec![(handle, store.id.as_uuid())]
                }
                None => app
                    .audit_chains()
                    .await
                    .map_err(describe)?
                    .into_iter()
                    .map(|c| {
                        (
                            if c.is_nil() {
                                "platform".to_owned()
                            } else {
                                format!("str_{}", c.simple())
                            },
                            c,
                        )
                    })
                    .collect(),
            };
            let mut failures = 0;
            let mut total = 0;
            for (name, chain) in chains {
                let bar = ProgressBar::new(0);
                bar.set_style(
                    ProgressStyle::with_template("{spinner} verifying {msg} [{bar:40}] {pos}/{len} entries")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                bar.set_message(name.clone());
                let progress = |done: u64, len: u64| {
                    bar.set_length(len);
                    bar.set_position(done);
                };
                let report = app
                    .verify_chain(chain, external.clone(), &progress)
                    .await
                    .map_err(describe)?;
                bar.finish_and_clear();
                total += report.entries_verified;
                match report.failure {
                    None => println!(
                        "{name}: ok, {} entries verified, {} checkpoints checked",
                        report.entries_verified, report.checkpoints_checked
                    ),
                    Some(failure) => {
                        failures += 1;
                        println!(
                            "{name}: BROKEN at seq {}: {} ({} entries verified before it)",
                            failure.seq, failure.reason, report.entries_verified
                        );
                    }
                }
            }
            if failures > 0 {
                bail!("{failures} chain(s) failed verification");
            }
            println!("all chains ok: {total} entries verified");
            Ok(())
        }
    }
}

async fn reconcile(app: &App, store: Option<&str>) -> anyhow::Result<()> {
    let reports = match store {
        Some(handle) => {
            let store = app
                .store_by_handle(handle)
                .await
                .map_err(|_| anyhow::anyhow!("no store has the handle '{handle}'"))?;
            vec![(
                store.scope(),
                app.reconcile_store(&store.scope(), "operator")
                    .await
                    .map_err(describe)?,
            )]
        }
        None => app.reconcile_all().await.map_err(describe)?,
    };
    let mut drifted = 0;
    for (scope, report) in &reports {
        println!(
            "{}: {} variants checked, {} drifted",
            scope.store_id(),
            report.variants_checked,
            report.drifted.len()
        );
        for d in &report.drifted {
            println!(
                "  var_{}: on_hand {} (ledger says {}), reserved {} (live reservations {})",
                d.variant_id.simple(),
                d.on_hand,
                d.ledger_on_hand,
                d.reserved,
                d.live_reserved
            );
        }
        drifted += report.drifted.len();
    }
    if drifted > 0 {
        bail!("{drifted} variant(s) drifted; their fulfilment is blocked until resolved");
    }
    println!("no drift");
    Ok(())
}
