//! `stormcom bench …`: programs that measure and print figures. They assert nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use sha2::{Digest, Sha256};
use stormcom_app::catalog::{NewProduct, NewVariant};
use stormcom_app::pii::Contact;
use stormcom_app::{App, AppConfig, StoreContext};
use stormcom_domain::audit::{Hash, StoredEntry, canonical_bytes, chain_hash};
use stormcom_domain::{StoreId, VariantId};
use stormcom_store::audit::NewEntry;
use stormcom_store::{Db, PoolConfig, StoreScope};
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Print a generated Shopify CSV catalog (for load tests).
    Catalog {
        #[arg(long, default_value_t = 1000)]
        products: usize,
        /// On-hand units of every variant.
        #[arg(long)]
        stock: Option<usize>,
    },
    /// Time the Shopify import of a generated catalog on each backend (fresh database
    /// each), then the re-import of the same file (the update path).
    Import {
        #[arg(long, default_value_t = 10_000)]
        products: usize,
        #[arg(long, value_enum, default_value = "all")]
        backend: BenchBackend,
        /// PostgreSQL server to use (a scratch schema is created and dropped).
        #[arg(long, env = "STORMCOM_TEST_POSTGRES_URL", hide_env_values = true)]
        postgres_url: Option<String>,
    },
    /// Time audit-log appends (one store's chain, then many stores' chains), chain
    /// verification, and raw SHA-256 over the same canonical bytes, on each backend
    /// (fresh database each).
    Audit {
        /// Appends per scenario (one store; many stores).
        #[arg(long, default_value_t = 20_000)]
        entries: usize,
        /// Concurrent tasks appending, each append in its own transaction.
        #[arg(long, default_value_t = 8)]
        tasks: usize,
        /// Stores whose chains the second scenario spreads the appends over (round-robin).
        #[arg(long, default_value_t = 100)]
        stores: usize,
        #[arg(long, value_enum, default_value = "all")]
        backend: BenchBackend,
        /// PostgreSQL server to use (a scratch schema is created and dropped).
        #[arg(long, env = "STORMCOM_TEST_POSTGRES_URL", hide_env_values = true)]
        postgres_url: Option<String>,
    },
    /// Time concurrent guest checkouts (create cart, add a line, set the contact, check
    /// out: the storefront's four use-case calls) on one hot SKU and spread over many
    /// SKUs, against the commit rate of a bare single-row conditional UPDATE from as many
    /// tasks, on each backend (fresh database each).
    Checkout {
        /// Concurrent buyers (tokio tasks), each running checkouts back to back; also the
        /// number of tasks running the bare UPDATEs.
        #[arg(long, default_value_t = 32)]
        buyers: usize,
        /// Seconds each scenario runs (flows started before the end are finished).
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// SKUs the spread scenario chooses among, uniformly (products of 10 variants).
        #[arg(long, default_value_t = 1_000)]
        variants: usize,
        /// On-hand stock of every variant.
        #[arg(long, default_value_t = 1_000_000)]
        stock: i64,
        #[arg(long, value_enum, default_value = "all")]
        backend: BenchBackend,
        /// PostgreSQL server to use (a scratch schema is created and dropped).
        #[arg(long, env = "STORMCOM_TEST_POSTGRES_URL", hide_env_values = true)]
        postgres_url: Option<String>,
    },
    /// Time one rate-limit decision: in this process's memory (governor, one thread and
    /// all cores) and through Redis (one EVALSHA round trip: sequential, then concurrent).
    Limiter {
        /// In-memory decisions per scenario.
        #[arg(long, default_value_t = 2_000_000)]
        decisions: usize,
        /// Redis decisions per scenario.
        #[arg(long, default_value_t = 20_000)]
        redis_decisions: usize,
        /// Distinct callers the decisions are spread over (round-robin).
        #[arg(long, default_value_t = 10_000)]
        keys: usize,
        /// Concurrent tasks in the concurrent Redis scenario.
        #[arg(long, default_value_t = 32)]
        tasks: usize,
        /// Redis to measure (a fresh key prefix; keys expire by themselves). Default:
        /// STORMCOM_REDIS_URL, else STORMCOM_TEST_REDIS_URL; skipped without either.
        #[arg(long, env = "STORMCOM_REDIS_URL", hide_env_values = true)]
        redis_url: Option<String>,
    },
    /// Requests/s of `GET /healthz` through the full middleware stack (request id,
    /// access log as JSON through the redacting writer, metrics, CORS check, panic
    /// guard, timeout, security headers, route access check) against the same answer from
    /// a bare router, both on the same server loop, loaded by `wrk` from a second
    /// process, alternating. Then the redacting writer's cost per log line.
    HttpStack {
        /// Seconds of each wrk run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// wrk connections.
        #[arg(long, default_value_t = 64)]
        connections: u32,
        /// wrk threads.
        #[arg(long, default_value_t = 2)]
        threads: u32,
        /// Runs of each (alternating full, bare, full, bare…).
        #[arg(long, default_value_t = 2)]
        rounds: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchBackend {
    All,
    Sqlite,
    Postgres,
}

/// A Shopify classic export of `products` products: every third has three sizes, the
/// rest one variant; each has an image.
pub fn generate_catalog(products: usize) -> String {
    generate_catalog_with_stock(products, None)
}

/// The same catalog with every variant holding `stock` units (when given).
pub fn generate_catalog_with_stock(products: usize, stock: Option<usize>) -> String {
    let mut csv = String::from(
        "Handle,Title,Body (HTML),Vendor,Type,Tags,Published,Option1 Name,Option1 Value,Variant SKU,Variant Grams,\
         Variant Inventory Qty,Variant Inventory Policy,Variant Price,Variant Compare At Price,Image Src,Image Position,Status\n",
    );
    for i in 0..products {
        let handle = format!("bench-product-{i}");
        let image = format!("https://cdn.example.test/{handle}.jpg");
        if i % 3 == 0 {
            for (n, size) in ["Small", "Medium", "Large"].iter().enumerate() {
                let title = if n == 0 {
                    format!("Bench product {i}")
                } else {
                    String::new()
                };
                let img = if n == 0 { image.as_str() } else { "" };
                let _ = writeln!(
                    csv,
                    "{handle},{title},\"<p>Item {i}, size {size}</p>\",Bench,Shirts,\"bench, shirts\",true,Size,{size},SKU-{i}-{n},200,{q},deny,{p}.99,,{img},1,active",
                    q = stock.unwrap_or((i + n) % 50),
                    p = 10 + i % 90
                );
            }
        } else {
            let _ = writeln!(
                csv,
                "{handle},Bench product {i},<p>Item {i}</p>,Bench,Mugs,bench,true,Title,Default Title,SKU-{i},300,{q},deny,{p}.50,{c}.00,{image},1,active",
                q = stock.unwrap_or(i % 40),
                p = 5 + i % 60,
                c = 70 + i % 10
            );
        }
    }
    csv
}

pub async fn run(bench: Bench) -> anyhow::Result<()> {
    match bench {
        Bench::Catalog { products, stock } => {
            print!("{}", generate_catalog_with_stock(products, stock));
            Ok(())
        }
        Bench::Import {
            products,
            backend,
            postgres_url,
        } => {
            let csv = generate_catalog(products);
            println!("generated catalog: {products} products, {} bytes", csv.len());
            if backend != BenchBackend::Postgres {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                let db = Db::connect(&url, &PoolConfig::default()).await?;
                import_twice("sqlite", db, &csv).await?;
            }
            if backend != BenchBackend::Sqlite {
                match postgres_url {
                    Some(url) => {
                        let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
                        let db = Db::connect_postgres_schema(&url, &schema, &PoolConfig::default()).await?;
                        let result = import_twice("postgres", db, &csv).await;
                        Db::drop_postgres_schema(&url, &schema).await?;
                        result?;
                    }
                    None => println!("postgres: skipped (set STORMCOM_TEST_POSTGRES_URL or --postgres-url)"),
                }
            }
            Ok(())
        }
        Bench::Audit {
            entries,
            tasks,
            stores,
            backend,
            postgres_url,
        } => {
            let params = AuditParams {
                entries: entries.max(1),
                tasks: tasks.max(1),
                stores: stores.max(1),
            };
            println!(
                "audit bench: {} appends per scenario, {} tasks, 1 store then {} stores; one transaction per append",
                params.entries, params.tasks, params.stores
            );
            if backend != BenchBackend::Postgres {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                let db = Db::connect(&url, &PoolConfig::default()).await?;
                audit_bench("sqlite", db, params).await?;
            }
            if backend != BenchBackend::Sqlite {
                match postgres_url {
                    Some(url) => {
                        let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
                        let db = Db::connect_postgres_schema(&url, &schema, &PoolConfig::default()).await?;
                        let result = audit_bench("postgres", db, params).await;
                        Db::drop_postgres_schema(&url, &schema).await?;
                        result?;
                    }
                    None => println!("postgres: skipped (set STORMCOM_TEST_POSTGRES_URL or --postgres-url)"),
                }
            }
            Ok(())
        }
        Bench::Limiter {
            decisions,
            redis_decisions,
            keys,
            tasks,
            redis_url,
        } => {
            let redis_url = redis_url.or_else(|| std::env::var("STORMCOM_TEST_REDIS_URL").ok());
            limiter_bench(
                decisions.max(1),
                redis_decisions.max(1),
                keys.max(1),
                tasks.max(1),
                redis_url,
            )
            .await
        }
        Bench::Checkout {
            buyers,
            seconds,
            variants,
            stock,
            backend,
            postgres_url,
        } => {
            let params = CheckoutParams {
                buyers: buyers.max(1),
                duration: Duration::try_from_secs_f64(seconds.max(0.1)).context("--seconds")?,
                variants: variants.max(1),
                stock: stock.max(1),
            };
            println!(
                "checkout bench: {} buyers, {:.1} s per scenario, hot SKU then {} SKUs, {} on hand each; \
                 pool of {} connections (PostgreSQL) / 1 writer + readers (SQLite)",
                params.buyers,
                params.duration.as_secs_f64(),
                params.variants,
                params.stock,
                PoolConfig::default().max_connections
            );
            if backend != BenchBackend::Postgres {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                let db = Db::connect(&url, &PoolConfig::default()).await?;
                checkout_bench("sqlite", db, params).await?;
            }
            if backend != BenchBackend::Sqlite {
                match postgres_url {
                    Some(url) => {
                        let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
                        let db = Db::connect_postgres_schema(&url, &schema, &PoolConfig::default()).await?;
                        let result = checkout_bench("postgres", db, params).await;
                        Db::drop_postgres_schema(&url, &schema).await?;
                        result?;
                    }
                    None => println!("postgres: skipped (set STORMCOM_TEST_POSTGRES_URL or --postgres-url)"),
                }
            }
            println!("peak RSS (VmHWM): {}", peak_rss());
            Ok(())
        }
        Bench::HttpStack {
            seconds,
            connections,
            threads,
            rounds,
        } => http_stack_bench(seconds.max(1), connections.max(1), threads.max(1), rounds.max(1)).await,
    }
}

/// Serves `router` on loopback with the production server loop; returns its base URL.
async fn serve_loopback(router: axum::Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(stormcom_http::server::serve(
        listener,
        router,
        stormcom_http::server::Limits::default(),
        std::future::pending(),
    ));
    Ok(base)
}

/// Requests/s and mean latency reported by one wrk run.
fn wrk(url: &str, seconds: u64, connections: u32, threads: u32) -> anyhow::Result<(f64, String)> {
    let output = std::process::Command::new("wrk")
        .args([
            format!("-t{threads}"),
            format!("-c{connections}"),
            format!("-d{seconds}s"),
            url.to_owned(),
        ])
        .output()
        .context("cannot run wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("unexpected wrk output: {text}"))?;
    let latency = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Latency"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("?")
        .to_owned();
    Ok((rate, latency))
}

async fn http_stack_bench(seconds: u64, connections: u32, threads: u32, rounds: u32) -> anyhow::Result<()> {
    // What `serve` pays per request: JSON access lines through the redacting writer
    // (into a sink here) and the Prometheus recorder.
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(stormcom_http::logging::Redacting(std::io::sink))
        .finish();
    tracing::subscriber::set_global_default(subscriber).context("logging already set up")?;
    let metrics = stormcom_http::metrics::install().context("metrics recorder")?;

    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let db = Db::connect(&url, &PoolConfig::default()).await?;
    db.migrate().await?;
    let keys = stormcom_app::Keys::generate().map_err(|e| anyhow::anyhow!(e))?;
    let app = App::new(db.clone(), AppConfig::default(), keys);
    let full = serve_loopback(stormcom_http::build(app, &stormcom_http::HttpConfig::default()).router).await?;
    let bare = serve_loopback(axum::Router::new().route(
        "/healthz",
        axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
    ))
    .await?;
    println!(
        "http-stack bench: GET /healthz, wrk -t{threads} -c{connections} -d{seconds}s from a second process, \
         {rounds} round(s) each, alternating"
    );
    let mut totals = [0.0f64; 2];
    for round in 1..=rounds {
        for (i, (name, base)) in [("full stack", &full), ("bare router", &bare)].into_iter().enumerate() {
            let (rate, latency) = tokio::task::spawn_blocking({
                let url = format!("{base}/healthz");
                move || wrk(&url, seconds, connections, threads)
            })
            .await??;
            totals[i] += rate;
            println!("round {round} {name:12}: {rate:>9.0} requests/s, mean latency {latency}");
        }
    }
    let (full_rate, bare_rate) = (totals[0] / f64::from(rounds), totals[1] / f64::from(rounds));
    println!(
        "mean: full stack {full_rate:.0} requests/s, bare {bare_rate:.0} requests/s; \
         the stack costs {:.1} us per request ({:.0}% of the bare rate kept)",
        (1.0 / full_rate - 1.0 / bare_rate) * 1e6,
        100.0 * full_rate / bare_rate
    );
    let counted: f64 = stormcom_http::metrics::render(&metrics)
        .lines()
        .filter(|l| l.starts_with("stormcom_http_requests_total{class=\"system\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    println!("requests counted on /metrics (full stack only): {counted:.0}");

    // The redacting writer on typical lines: a clean access line, and one with an email
    // and a bearer token in it.
    let clean = r#"{"timestamp":"2026-12-03T19:49:39.060937Z","level":"INFO","message":"request","request_id":"01a23d749073731a9dc9cc8194ad494f","method":"GET","route":"/v1/stores/{store_id}/products","class":"admin_read","store_id":"str_01a23d749073731a9dc9cc8194ad494f","status":200,"latency_us":1069,"target":"stormcom_http"}"#;
    let dirty = r#"{"timestamp":"2026-12-03T19:49:39.060937Z","level":"WARN","message":"upstream said no to ann@example.com with Bearer scs_0123456789abcdef0123","target":"stormcom_app"}"#;
    for (name, line) in [("clean access line", clean), ("line with email+token", dirty)] {
        let lines = 200_000;
        let started = Instant::now();
        for _ in 0..lines {
            black_box(stormcom_http::logging::redact(black_box(line)));
        }
        let per_line = started.elapsed().as_secs_f64() / f64::from(lines) * 1e9;
        println!("redact(), {name:22} ({} bytes): {per_line:.0} ns per line", line.len());
    }
    db.close().await;
    Ok(())
}

async fn import_twice(backend: &str, db: Db, csv: &str) -> anyhow::Result<()> {
    db.migrate().await?;
    let keys = stormcom_app::Keys::generate().map_err(|e| anyhow::anyhow!(e))?;
    let app = App::new(db.clone(), unlimited(), keys);
    app.create_user("bench@example.test", "bench-password")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = app
        .create_store("Bench", "bench", "USD", "bench@example.test")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ctx = StoreContext::operator(store.scope(), "USD".parse().map_err(|_| anyhow::anyhow!("currency"))?);
    for pass in ["first import", "re-import"] {
        let started = Instant::now();
        let summary = app
            .import_shopify(&ctx, csv.as_bytes().to_vec(), &|_, _| {})
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("import failed")?;
        let seconds = started.elapsed().as_secs_f64();
        let products = summary.products_created + summary.products_updated + summary.products_unchanged;
        println!(
            "{backend:8} {pass:12}: {products} products, {} variants in {seconds:.2} s = {:.0} products/s ({} rejected)",
            summary.variants_created + summary.variants_updated + summary.variants_unchanged,
            products as f64 / seconds,
            summary.products_rejected
        );
    }
    db.close().await;
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct AuditParams {
    entries: usize,
    tasks: usize,
    stores: usize,
}

/// How long each hashing loop runs (whole passes over the entries, at least one).
const HASH_LOOP_TIME: Duration = Duration::from_secs(1);
/// Entries read per query when reading a chain back (as `verify_chain` does).
const READ_BATCH: u32 = 2_000;

async fn audit_bench(backend: &str, db: Db, params: AuditParams) -> anyhow::Result<()> {
    db.migrate().await?;
    let keys = stormcom_app::Keys::generate().map_err(|e| anyhow::anyhow!(e))?;
    let app = App::new(db.clone(), unlimited(), keys);
    let owner = "bench@example.test";
    let user = app
        .create_user(owner, "bench-password")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let actor = user.to_string();
    let create_store = async |name: String, handle: String| {
        app.create_store(&name, &handle, "USD", owner)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    };

    // 1. One store: every append contends for the same chain head.
    let one = create_store("Bench one".into(), "bench-one".into()).await?;
    let one_scope = one.scope();
    let one_chain = one.id.as_uuid();
    let seconds = append_many(&db, std::slice::from_ref(&one_scope), &actor, params).await?;
    print_rate(backend, "append, 1 store", params.entries, "entries", seconds);

    // 2. The same number of appends spread round-robin over many stores' chains.
    let mut scopes = Vec::with_capacity(params.stores);
    for i in 0..params.stores {
        scopes.push(create_store(format!("Bench {i}"), format!("bench-{i}")).await?.scope());
    }
    let seconds = append_many(&db, &scopes, &actor, params).await?;
    print_rate(
        backend,
        &format!("append, {} stores", params.stores),
        params.entries,
        "entries",
        seconds,
    );

    // 3. Verification of the one-store chain (its `store.created` entry included).
    let started = Instant::now();
    let report = app
        .verify_chain(one_chain, None, &|_, _| {})
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let verify_seconds = started.elapsed().as_secs_f64();
    let verified = usize::try_from(report.entries_verified)?;
    let verify_rate = verified as f64 / verify_seconds;
    print_rate(backend, "verify, 1 store", verified, "entries", verify_seconds);
    if let Some(failure) = &report.failure {
        println!("{backend:8} {:24}: NOT INTACT: {failure}", "verify, 1 store");
    }

    // Reading the chain back alone (the database share of verification).
    let started = Instant::now();
    let stored = read_chain(&db, one_chain).await?;
    print_rate(
        backend,
        "read back, 1 store",
        stored.len(),
        "entries",
        started.elapsed().as_secs_f64(),
    );

    // 4. Hashing the same entries without the database.
    let inputs = stored
        .iter()
        .map(|e| {
            let prev: Hash = e
                .prev_hash
                .as_slice()
                .try_into()
                .map_err(|_| anyhow::anyhow!("seq {}: prev_hash is not 32 bytes", e.record.seq))?;
            Ok((prev, canonical_bytes(&e.record)))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bytes_per_pass: usize = inputs.iter().map(|(prev, bytes)| prev.len() + bytes.len()).sum();

    let (hashes, seconds) = hash_loop(inputs.len(), || {
        for (prev, bytes) in &inputs {
            let mut hasher = Sha256::new();
            hasher.update(black_box(prev));
            hasher.update(black_box(bytes.as_slice()));
            black_box(hasher.finalize());
        }
    });
    let raw_rate = hashes as f64 / seconds;
    print_hash_rate(backend, "sha256 raw", hashes, seconds, bytes_per_pass, inputs.len());

    let (hashes, seconds) = hash_loop(stored.len(), || {
        for ((prev, _), entry) in inputs.iter().zip(&stored) {
            black_box(chain_hash(black_box(prev), black_box(&entry.record)));
        }
    });
    let chain_hash_rate = hashes as f64 / seconds;
    print_hash_rate(
        backend,
        "chain_hash (enc+sha)",
        hashes,
        seconds,
        bytes_per_pass,
        inputs.len(),
    );

    for (what, rate) in [
        ("ratio verify/sha256 raw", raw_rate),
        ("ratio verify/chain_hash", chain_hash_rate),
    ] {
        println!(
            "{backend:8} {what:24}: {:8.4}         ({verify_rate:.0} entries/s / {rate:.0} hashes/s)",
            verify_rate / rate
        );
    }
    db.close().await;
    Ok(())
}

/// `params.entries` appends over `params.tasks` tasks; append `i` goes to
/// `scopes[i % scopes.len()]`, each in its own transaction. Returns the seconds taken.
async fn append_many(db: &Db, scopes: &[StoreScope], actor: &str, params: AuditParams) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut handles = Vec::with_capacity(params.tasks);
    for task in 0..params.tasks {
        let db = db.clone();
        let scopes = scopes.to_vec();
        let actor = actor.to_owned();
        let AuditParams { entries, tasks, .. } = params;
        handles.push(tokio::spawn(async move {
            for i in (task..entries).step_by(tasks) {
                let scope = &scopes[i % scopes.len()];
                let mut tx = db.begin().await?;
                stormcom_store::audit::append(&mut tx, scope, sample_entry(&actor, i)).await?;
                tx.commit().await?;
            }
            anyhow::Ok(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// A typical catalog change: a product edited by a user, with a small summary.
fn sample_entry(actor: &str, i: usize) -> NewEntry {
    NewEntry {
        actor: actor.to_owned(),
        actor_ip: Some(format!("203.0.113.{}", i % 250 + 1)),
        action: "product.updated".to_owned(),
        target: Uuid::now_v7().to_string(),
        summary: BTreeMap::from([
            ("handle".to_owned(), format!("bench-product-{i}")),
            ("fields".to_owned(), "price,inventory".to_owned()),
            ("variants".to_owned(), (i % 3 + 1).to_string()),
        ]),
    }
}

async fn read_chain(db: &Db, chain: Uuid) -> anyhow::Result<Vec<StoredEntry>> {
    let mut reader = db.reader().await?;
    let mut all = Vec::new();
    loop {
        let after = all.last().map_or(0, |e: &StoredEntry| e.record.seq);
        let batch = stormcom_store::audit::entries(&mut reader, chain, after, READ_BATCH).await?;
        if batch.is_empty() {
            return Ok(all);
        }
        all.extend(batch);
    }
}

/// Runs `pass` (which hashes `per_pass` inputs) until [`HASH_LOOP_TIME`] has elapsed;
/// returns (hashes, seconds).
fn hash_loop(per_pass: usize, mut pass: impl FnMut()) -> (usize, f64) {
    let started = Instant::now();
    let mut passes = 0;
    while passes == 0 || started.elapsed() < HASH_LOOP_TIME {
        pass();
        passes += 1;
    }
    (passes * per_pass, started.elapsed().as_secs_f64())
}

fn print_rate(backend: &str, what: &str, count: usize, unit: &str, seconds: f64) {
    println!(
        "{backend:8} {what:24}: {count:8} {unit} in {seconds:6.2} s = {:9.0} {unit}/s",
        count as f64 / seconds
    );
}

fn print_hash_rate(backend: &str, what: &str, hashes: usize, seconds: f64, bytes_per_pass: usize, per_pass: usize) {
    let bytes = bytes_per_pass as f64 * hashes as f64 / per_pass.max(1) as f64;
    println!(
        "{backend:8} {what:24}: {hashes:8} hashes  in {seconds:6.2} s = {:9.0} hashes/s, {:7.1} MB/s ({:.0} B/hash)",
        hashes as f64 / seconds,
        bytes / seconds / 1e6,
        bytes_per_pass as f64 / per_pass.max(1) as f64
    );
}

#[derive(Debug, Clone, Copy)]
struct CheckoutParams {
    buyers: usize,
    duration: Duration,
    variants: usize,
    stock: i64,
}

/// Decisions on the storefront-read class (default rates), callers round-robin.
async fn limiter_bench(
    decisions: usize,
    redis_decisions: usize,
    keys: usize,
    tasks: usize,
    redis_url: Option<String>,
) -> anyhow::Result<()> {
    use stormcom_domain::{Plan, PlanTable};
    use stormcom_http::ratelimit::{LimitKey, RateLimitConfig, RateLimiter};
    use stormcom_http::routes::RouteClass;

    let class = RouteClass::StorefrontRead;
    let config = RateLimitConfig::default();
    let plans = PlanTable::default();
    let callers: std::sync::Arc<[LimitKey]> = (0..keys)
        .map(|i| {
            LimitKey::Ip(std::net::IpAddr::from(
                (u32::try_from(i).unwrap_or(0) + 0x0A00_0000).to_be_bytes(),
            ))
        })
        .collect();
    println!("limiter bench: class {}, {keys} callers round-robin", class.as_str());

    let memory = RateLimiter::in_memory(&config, &plans);
    let started = Instant::now();
    let mut allowed = 0usize;
    for i in 0..decisions {
        let decision = memory.check_in_memory(class, Plan::Free, &callers[i % keys]);
        allowed += usize::from(black_box(decision).is_some_and(|d| d.allowed));
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "memory, 1 thread:   {decisions} decisions in {elapsed:.3} s = {:.0} ns/decision ({:.2} M/s; {allowed} allowed)",
        elapsed * 1e9 / decisions as f64,
        decisions as f64 / elapsed / 1e6
    );
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let memory = RateLimiter::in_memory(&config, &plans);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (memory, callers) = (&memory, &callers);
            scope.spawn(move || {
                for i in (t..decisions).step_by(threads) {
                    black_box(memory.check_in_memory(class, Plan::Free, &callers[i % keys]));
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "memory, {threads} threads:  {decisions} decisions in {elapsed:.3} s = {:.2} M decisions/s",
        decisions as f64 / elapsed / 1e6
    );

    let Some(url) = redis_url else {
        println!("redis: skipped (set STORMCOM_REDIS_URL or --redis-url)");
        return Ok(());
    };
    let prefix = format!("stormcom:bench:{}", Uuid::now_v7().simple());
    let redis = RateLimiter::with_redis(&config, &plans, &url, &prefix)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let started = Instant::now();
    for i in 0..redis_decisions {
        black_box(redis.check(class, Plan::Free, &callers[i % keys]).await);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "redis, sequential:  {redis_decisions} decisions in {elapsed:.3} s = {:.1} us/decision (one round trip each)",
        elapsed * 1e6 / redis_decisions as f64
    );
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let (redis, callers) = (redis.clone(), callers.clone());
        running.spawn(async move {
            for i in (t..redis_decisions).step_by(tasks) {
                black_box(redis.check(class, Plan::Free, &callers[i % keys]).await);
            }
        });
    }
    while let Some(done) = running.join_next().await {
        done?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "redis, {tasks} tasks:    {redis_decisions} decisions in {elapsed:.3} s = {:.0} decisions/s (one multiplexed connection)",
        redis_decisions as f64 / elapsed
    );
    Ok(())
}

/// Benchmarks generate more data than any plan allows.
fn unlimited() -> AppConfig {
    AppConfig {
        plans: stormcom_domain::PlanTable::unlimited(),
        ..AppConfig::default()
    }
}

/// Variants per product when a scenario needs many SKUs.
const VARIANTS_PER_PRODUCT: usize = 10;

async fn checkout_bench(backend: &str, db: Db, params: CheckoutParams) -> anyhow::Result<()> {
    db.migrate().await?;
    let keys = stormcom_app::Keys::generate().map_err(|e| anyhow::anyhow!(e))?;
    let app = App::new(db.clone(), unlimited(), keys);
    let owner = "bench@example.test";
    app.create_user(owner, "bench-password")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = app
        .create_store("Bench", "bench", "USD", owner)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ctx = StoreContext::operator(store.scope(), "USD".parse().map_err(|_| anyhow::anyhow!("currency"))?);

    // The catalog: separate SKUs for the checkouts and for the bare UPDATEs, so each
    // scenario starts from untouched rows and its reserved units can be counted after.
    let started = Instant::now();
    let checkout_hot = create_skus(&app, &ctx, "checkout-hot", 1, params.stock).await?;
    let checkout_spread = create_skus(&app, &ctx, "checkout-spread", params.variants, params.stock).await?;
    let update_hot = create_skus(&app, &ctx, "update-hot", 1, params.stock).await?;
    let update_spread = create_skus(&app, &ctx, "update-spread", params.variants, params.stock).await?;
    let skus = checkout_hot.len() + checkout_spread.len() + update_hot.len() + update_spread.len();
    println!(
        "{backend:8} {:24}: {skus} variants created in {:.2} s",
        "setup",
        started.elapsed().as_secs_f64()
    );

    // The machine's limit first (it also opens the pool's connections).
    let update_hot_run = bare_updates(&db, store.id, &update_hot, params).await?;
    update_hot_run.print(backend, "UPDATE, hot row", "commits");
    update_hot_run.print_latency(backend, "UPDATE + commit");
    let update_spread_run = bare_updates(&db, store.id, &update_spread, params).await?;
    update_spread_run.print(backend, &format!("UPDATE, {} rows", update_spread.len()), "commits");
    update_spread_run.print_latency(backend, "UPDATE + commit");

    let hot = checkouts(&app, &store.handle, &checkout_hot, params).await?;
    hot.print(backend, "checkout, hot SKU");
    let spread = checkouts(&app, &store.handle, &checkout_spread, params).await?;
    spread.print(backend, &format!("checkout, {} SKUs", checkout_spread.len()));

    for (what, orders, updates) in [
        ("ratio hot", &hot, &update_hot_run),
        ("ratio spread", &spread, &update_spread_run),
    ] {
        let (order_rate, commit_rate) = (orders.flows.rate(), updates.rate());
        println!(
            "{backend:8} {what:24}: {:8.4}  ({order_rate:.0} orders/s / {commit_rate:.0} UPDATE commits/s)",
            order_rate / commit_rate
        );
    }

    // Every successful checkout and every UPDATE reserved exactly one unit.
    let mut mismatches = Vec::new();
    for (what, variants, expected) in [
        ("checkout hot", &checkout_hot, hot.flows.count),
        ("checkout spread", &checkout_spread, spread.flows.count),
        ("UPDATE hot", &update_hot, update_hot_run.count),
        ("UPDATE spread", &update_spread, update_spread_run.count),
    ] {
        let mut reserved = 0;
        for &variant in variants {
            reserved += app
                .inventory_level(&ctx, variant)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .reserved;
        }
        if usize::try_from(reserved)? != expected {
            mismatches.push(format!("{what}: {reserved} reserved for {expected}"));
        }
    }
    if mismatches.is_empty() {
        println!("{backend:8} {:24}: reserved units match orders and commits", "check");
    } else {
        println!("{backend:8} {:24}: MISMATCH: {}", "check", mismatches.join("; "));
    }
    db.close().await;
    Ok(())
}

/// `count` published, active variants with `stock` on hand: one single-variant product
/// when `count` is 1, else products of [`VARIANTS_PER_PRODUCT`] sizes.
async fn create_skus(
    app: &App,
    ctx: &StoreContext,
    prefix: &str,
    count: usize,
    stock: i64,
) -> anyhow::Result<Vec<VariantId>> {
    let mut ids = Vec::with_capacity(count);
    let mut product = 0;
    while ids.len() < count {
        let size = VARIANTS_PER_PRODUCT.min(count - ids.len());
        let (option_name, values): (&str, Vec<String>) = if count == 1 {
            ("Title", vec!["Default Title".to_owned()])
        } else {
            ("Size", (0..size).map(|n| format!("Size {n}")).collect())
        };
        let variants = values
            .into_iter()
            .enumerate()
            .map(|(n, value)| NewVariant {
                sku: Some(format!("{prefix}-{product}-{n}")),
                options: [value, String::new(), String::new()],
                price: 1_000 + i64::try_from(n).unwrap_or(0) * 100,
                inventory_quantity: stock,
                ..NewVariant::default()
            })
            .collect();
        let view = app
            .create_product(
                ctx,
                NewProduct {
                    handle: format!("{prefix}-{product}"),
                    title: format!("Bench {prefix} {product}"),
                    option_names: [option_name.to_owned(), String::new(), String::new()],
                    published: true,
                    variants,
                    ..NewProduct::default()
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        ids.extend(view.variants.iter().map(|v| v.id));
        product += 1;
    }
    Ok(ids)
}

/// Operations done in a scenario with their latencies, and how long it took.
struct Timings {
    count: usize,
    seconds: f64,
    latencies: Vec<Duration>,
}

impl Timings {
    fn new(mut latencies: Vec<Duration>, seconds: f64) -> Self {
        latencies.sort_unstable();
        Self {
            count: latencies.len(),
            seconds,
            latencies,
        }
    }

    fn rate(&self) -> f64 {
        self.count as f64 / self.seconds
    }

    /// Nearest-rank percentile (`p` in 0..=1).
    fn percentile(&self, p: f64) -> Duration {
        let n = self.latencies.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = (p * n as f64).ceil();
        // A rank is at most `n`: the float-to-int cast saturates and cannot wrap.
        let rank = if rank >= 1.0 { rank as usize } else { 1 };
        self.latencies[rank.min(n) - 1]
    }

    fn print(&self, backend: &str, what: &str, unit: &str) {
        println!(
            "{backend:8} {what:24}: {:8} {unit:7} in {:6.2} s = {:9.0} {unit}/s",
            self.count,
            self.seconds,
            self.rate()
        );
    }

    fn print_latency(&self, backend: &str, what: &str) {
        println!(
            "{backend:8} {what:>24}: p50 {:8.2} ms, p99 {:8.2} ms",
            self.percentile(0.50).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3
        );
    }
}

/// `params.buyers` tasks running `UPDATE … reserved = reserved + 1` on a variant of
/// `variants` (drawn uniformly), each statement in its own transaction, for
/// `params.duration`.
async fn bare_updates(
    db: &Db,
    store: StoreId,
    variants: &[VariantId],
    params: CheckoutParams,
) -> anyhow::Result<Timings> {
    // `execute_admin` is the store's public route for literal SQL: BEGIN, the statement,
    // COMMIT. The literals are built once, outside the timed loop.
    let literal = |id: Uuid| match db.backend_name() {
        "sqlite" => format!("x'{}'", id.simple()),
        _ => format!("'{id}'::uuid"),
    };
    let store = literal(store.as_uuid());
    let statements: std::sync::Arc<[String]> = variants
        .iter()
        .map(|v| {
            format!(
                "UPDATE inventory_levels SET reserved = reserved + 1 WHERE store_id = {store} \
                 AND variant_id = {} AND on_hand - reserved >= 1",
                literal(v.as_uuid())
            )
        })
        .collect();
    let started = Instant::now();
    let deadline = started + params.duration;
    let mut handles = Vec::with_capacity(params.buyers);
    for task in 0..params.buyers {
        let db = db.clone();
        let statements = statements.clone();
        handles.push(tokio::spawn(async move {
            let mut rng = Rng::new(task);
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sql = &statements[rng.below(statements.len())];
                let began = Instant::now();
                db.execute_admin(sql).await?;
                latencies.push(began.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for handle in handles {
        latencies.extend(handle.await??);
    }
    Ok(Timings::new(latencies, started.elapsed().as_secs_f64()))
}

/// The outcome of a checkout scenario: whole flows, the checkout calls alone, failures.
struct CheckoutRun {
    flows: Timings,
    checkout_calls: Timings,
    failures: usize,
    first_failure: Option<String>,
}

impl CheckoutRun {
    fn print(&self, backend: &str, what: &str) {
        self.flows.print(backend, what, "orders");
        self.flows.print_latency(backend, "4-call flow");
        self.checkout_calls.print_latency(backend, "checkout call");
        if self.failures > 0 {
            println!(
                "{backend:8} {:>24}: {} flows FAILED, first: {}",
                "failed",
                self.failures,
                self.first_failure.as_deref().unwrap_or("?")
            );
        }
    }
}

/// `params.buyers` tasks running guest checkouts of one unit of a variant of `variants`
/// (drawn uniformly) back to back, each with a new email, for `params.duration`.
async fn checkouts(
    app: &App,
    store: &str,
    variants: &[VariantId],
    params: CheckoutParams,
) -> anyhow::Result<CheckoutRun> {
    let variants: std::sync::Arc<[VariantId]> = variants.into();
    let started = Instant::now();
    let deadline = started + params.duration;
    let mut handles = Vec::with_capacity(params.buyers);
    for buyer in 0..params.buyers {
        let app = app.clone();
        let store = store.to_owned();
        let variants = variants.clone();
        handles.push(tokio::spawn(async move {
            let mut rng = Rng::new(buyer);
            let (mut flows, mut calls, mut failures, mut first_failure) = (Vec::new(), Vec::new(), 0, None);
            let mut n = 0;
            while Instant::now() < deadline {
                let variant = variants[rng.below(variants.len())];
                let email = format!("buyer-{buyer}-{n}@example.test");
                n += 1;
                let began = Instant::now();
                match guest_checkout(&app, &store, variant, email).await {
                    Ok(call) => {
                        flows.push(began.elapsed());
                        calls.push(call);
                    }
                    Err(e) => {
                        failures += 1;
                        first_failure.get_or_insert(e);
                    }
                }
            }
            (flows, calls, failures, first_failure)
        }));
    }
    let (mut flows, mut calls, mut failures, mut first_failure) = (Vec::new(), Vec::new(), 0, None);
    for handle in handles {
        let (f, c, n, first) = handle.await?;
        flows.extend(f);
        calls.extend(c);
        failures += n;
        first_failure = first_failure.or(first);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(CheckoutRun {
        flows: Timings::new(flows, seconds),
        checkout_calls: Timings::new(calls, seconds),
        failures,
        first_failure,
    })
}

/// One guest checkout as the storefront makes it: four use-case calls, like the HTTP
/// handlers. Returns how long the checkout call itself took.
async fn guest_checkout(app: &App, store: &str, variant: VariantId, email: String) -> Result<Duration, String> {
    fn fail(step: &'static str) -> impl Fn(stormcom_app::AppError) -> String {
        move |e| format!("{step}: {e}")
    }
    let cart = app.create_cart(store).await.map_err(fail("create cart"))?;
    let id = cart.view.id;
    app.add_cart_line(store, id, &cart.secret, variant, 1)
        .await
        .map_err(fail("add line"))?;
    let contact = Contact {
        email,
        name: None,
        address: None,
    };
    app.set_cart_contact(store, id, &cart.secret, contact)
        .await
        .map_err(fail("set contact"))?;
    let began = Instant::now();
    app.checkout(store, id, &cart.secret).await.map_err(fail("checkout"))?;
    Ok(began.elapsed())
}

/// SplitMix64: a cheap, seeded, per-task choice of SKU (no shared state, no crate).
struct Rng(u64);

impl Rng {
    fn new(seed: usize) -> Self {
        Self((seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D)
    }

    /// Uniform enough in `0..n` (n > 0; the modulo bias is below 1e-15 for these sizes).
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % n.max(1) as u64) as usize
    }
}

/// The process's peak resident set size, from `/proc/self/status` (Linux).
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kib: f64 = line
                .trim_start_matches("VmHWM:")
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(format!("{:.1} MiB", kib / 1024.0))
        })
        .unwrap_or_else(|| "unavailable (no /proc/self/status)".to_owned())
}
