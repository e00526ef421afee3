//! `stormcom bench …`: programs that measure and print figures. They assert nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use sha2::{Digest, Sha256};
use stormcom_app::{App, AppConfig, StoreContext};
use stormcom_domain::audit::{Hash, StoredEntry, canonical_bytes, chain_hash};
use stormcom_store::audit::NewEntry;
use stormcom_store::{Db, PoolConfig, StoreScope};
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum Bench {
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
                    q = (i + n) % 50,
                    p = 10 + i % 90
                );
            }
        } else {
            let _ = writeln!(
                csv,
                "{handle},Bench product {i},<p>Item {i}</p>,Bench,Mugs,bench,true,Title,Default Title,SKU-{i},300,{q},deny,{p}.50,{c}.00,{image},1,active",
                q = i % 40,
                p = 5 + i % 60,
                c = 70 + i % 10
            );
        }
    }
    csv
}

pub async fn run(bench: Bench) -> anyhow::Result<()> {
    match bench {
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
    }
}

async fn import_twice(backend: &str, db: Db, csv: &str) -> anyhow::Result<()> {
    db.migrate().await?;
    let keys = stormcom_app::Keys::generate().map_err(|e| anyhow::anyhow!(e))?;
    let app = App::new(db.clone(), AppConfig::default(), keys);
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
    let app = App::new(db.clone(), AppConfig::default(), keys);
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
