//! `stormcom bench …`: programs that measure and print figures. They assert nothing.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use stormcom_app::{App, AppConfig, StoreContext};
use stormcom_store::{Db, PoolConfig};

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
