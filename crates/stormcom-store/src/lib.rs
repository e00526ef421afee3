//! StormCom persistence. One `Db` over two backends (embedded SQLite, PostgreSQL), with
//! the same schema versions in `migrations/sqlite` and `migrations/postgres`.
//!
//! Every tenant repository function takes a [`StoreScope`] first: the store id is a
//! parameter that cannot be forgotten, and a scope can only be obtained by proving
//! membership (or, for trusted operator paths, by loading the store itself).
//!
//! Queries are written once with `$N` placeholders; [`dispatch!`] expands each body for
//! both connection types, so every query is type-checked against both drivers.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Transaction};

pub mod access;
pub mod audit;
pub mod catalog;
pub mod commerce;
mod error;
pub mod identity;
pub mod inventory;
pub mod payments;
pub mod plans;
pub mod tenancy;
pub mod throttle;

pub use error::{Constraint, StoreError};
pub use tenancy::StoreScope;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Expands `$body` once per backend with `$c` bound to `&mut SqliteConnection` or
/// `&mut PgConnection`.
macro_rules! dispatch {
    ($handle:expr, $c:ident => $body:expr) => {
        match $crate::Handle::conn($handle) {
            $crate::Conn::Sqlite($c) => $body,
            $crate::Conn::Postgres($c) => $body,
        }
    };
}
pub(crate) use dispatch;

/// Appends one row to the inventory movement ledger on connection `$c` (inside a
/// [`dispatch!`] body). Evaluates to the rows affected.
macro_rules! insert_movement {
    ($c:ident, $scope:expr, $id:expr, $variant:expr, $kind:expr, $delta:expr, $on_hand_after:expr, $reason:expr, $actor:expr, $at:expr) => {
        sqlx::query(
            "INSERT INTO inventory_movements (store_id, id, variant_id, kind, delta, on_hand_after, reason, actor, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind($scope.uuid())
        .bind($id.as_uuid())
        .bind($variant.as_uuid())
        .bind($kind)
        .bind($delta)
        .bind($on_hand_after)
        .bind($reason)
        .bind($actor)
        .bind($at)
        .execute(&mut *$c)
        .await?
        .rows_affected()
    };
}
pub(crate) use insert_movement;

/// Schema migrations, embedded in the binary. Versions and names are identical on both
/// backends; a test checks the folders agree with these lists.
macro_rules! migrations {
    ($dir:literal: $($stem:literal),* $(,)?) => {
        &[$(($stem, include_str!(concat!("../../../migrations/", $dir, "/", $stem, ".sql")))),*]
    };
}

/// (file stem `NNNN_name`, SQL)
type MigrationList = &'static [(&'static str, &'static str)];
const SQLITE_MIGRATIONS: MigrationList = migrations!("sqlite": "0001_foundation", "0002_access_audit", "0003_checkout", "0004_payments", "0005_plans", "0006_auth_throttle");
const POSTGRES_MIGRATIONS: MigrationList = migrations!("postgres": "0001_foundation", "0002_access_audit", "0003_checkout", "0004_payments", "0005_plans", "0006_auth_throttle");

#[doc(hidden)]
pub fn embedded_migrations() -> [(&'static str, Vec<&'static str>); 2] {
    let stems = |list: MigrationList| list.iter().map(|(stem, _)| *stem).collect();
    [
        ("sqlite", stems(SQLITE_MIGRATIONS)),
        ("postgres", stems(POSTGRES_MIGRATIONS)),
    ]
}

fn migrator(list: MigrationList) -> Migrator {
    Migrator::with_migrations(
        list.iter()
            .map(|(stem, sql)| {
                let (version, name) = stem.split_once('_').unwrap_or((stem, ""));
                let version = version.parse().unwrap_or(0);
                let sql = sqlx::AssertSqlSafe(*sql).into_sql_str();
                Migration::new(version, name.into(), MigrationType::Simple, sql, false)
            })
            .collect(),
    )
}

use sqlx::SqlSafeStr as _;

/// Tuning knobs for the connection pools.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// PostgreSQL pool size; SQLite readers.
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// A database handle; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db(Backend);

#[derive(Clone, Debug)]
enum Backend {
    /// SQLite allows one writer at a time. Writes go through a one-connection pool, so
    /// they queue fairly in-process instead of spinning on SQLITE_BUSY; reads use WAL
    /// snapshots on their own pool. Other processes (the CLI) meet `busy_timeout`.
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
    },
    Postgres(PgPool),
}

impl Db {
    /// Opens `sqlite:…` or `postgres(ql)://…`; any other scheme is refused.
    pub async fn connect(url: &str, config: &PoolConfig) -> Result<Self> {
        let scheme = url.split_once(':').map_or("", |(s, _)| s);
        match scheme {
            "sqlite" => {
                let options = SqliteConnectOptions::from_str(url)?;
                let target = options.get_filename().display().to_string();
                Self::open_sqlite(options, config)
                    .await
                    .map_err(|e| StoreError::connect(target, e))
            }
            "postgres" | "postgresql" => {
                let options = PgConnectOptions::from_str(url)?;
                // Host, port and database only: never the password.
                let target = format!(
                    "{}:{}/{}",
                    options.get_host(),
                    options.get_port(),
                    options.get_database().unwrap_or_default()
                );
                Self::open_postgres(options, config)
                    .await
                    .map_err(|e| StoreError::connect(target, e))
            }
            _ => Err(StoreError::UnsupportedUrl {
                scheme: scheme.to_owned(),
            }),
        }
    }

    pub async fn open_sqlite(options: SqliteConnectOptions, config: &PoolConfig) -> Result<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(15))
            .pragma("temp_store", "memory");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(config.acquire_timeout.max(Duration::from_secs(30)))
            .connect_with(options.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(config.max_connections.clamp(1, 8))
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self(Backend::Sqlite { read, write }))
    }

    pub async fn open_postgres(options: PgConnectOptions, config: &PoolConfig) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self(Backend::Postgres(pool)))
    }

    /// Opens PostgreSQL inside a schema of its own (created here), so a test or a
    /// benchmark gets an empty database without creating one. Schema names are made by
    /// the caller from a fresh UUID, never from input.
    pub async fn connect_postgres_schema(url: &str, schema: &str, config: &PoolConfig) -> Result<Self> {
        let admin = Self::connect(
            url,
            &PoolConfig {
                max_connections: 1,
                ..PoolConfig::default()
            },
        )
        .await?;
        admin
            .execute_admin(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await?;
        admin.close().await;
        let options = PgConnectOptions::from_str(url)?.options([("search_path", schema)]);
        Self::open_postgres(options, config).await
    }

    pub async fn drop_postgres_schema(url: &str, schema: &str) -> Result<()> {
        let admin = Self::connect(
            url,
            &PoolConfig {
                max_connections: 1,
                ..PoolConfig::default()
            },
        )
        .await?;
        let result = admin
            .execute_admin(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await;
        admin.close().await;
        result
    }

    #[must_use]
    pub fn backend_name(&self) -> &'static str {
        match &self.0 {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Applies pending migrations; safe to run concurrently (PostgreSQL takes an advisory
    /// lock, SQLite serialises on the write lock).
    pub async fn migrate(&self) -> Result<()> {
        match &self.0 {
            Backend::Sqlite { write, .. } => migrator(SQLITE_MIGRATIONS).run(write).await?,
            Backend::Postgres(pool) => migrator(POSTGRES_MIGRATIONS).run(pool).await?,
        }
        Ok(())
    }

    /// Starts a write transaction. On SQLite it is `BEGIN IMMEDIATE`: the write lock is
    /// taken up front, so two transactions can never deadlock upgrading read locks.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match &self.0 {
            Backend::Sqlite { write, .. } => Tx::Sqlite(write.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// A pooled connection for reads outside a transaction.
    pub async fn reader(&self) -> Result<Reader> {
        Ok(match &self.0 {
            Backend::Sqlite { read, .. } => Reader::Sqlite(read.acquire().await?),
            Backend::Postgres(pool) => Reader::Postgres(pool.acquire().await?),
        })
    }

    pub async fn ping(&self) -> Result<()> {
        let mut reader = self.reader().await?;
        dispatch!(&mut reader, c => sqlx::query("SELECT 1").execute(&mut *c).await.map(drop)?);
        Ok(())
    }

    /// Runs one administrative statement built at run time (schema setup in tests and
    /// tools). Never pass request data here.
    #[doc(hidden)]
    pub async fn execute_admin(&self, sql: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        dispatch!(&mut tx, c => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut *c).await?.rows_affected());
        tx.commit().await
    }

    pub async fn close(&self) {
        match &self.0 {
            Backend::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

/// A connection borrowed from a [`Tx`] or a [`Reader`].
pub enum Conn<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
}

/// Anything repository functions can run on.
pub trait Handle: Send {
    fn conn(&mut self) -> Conn<'_>;
}

pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        match self {
            Self::Sqlite(tx) => tx.commit().await?,
            Self::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Marks a point to roll back to without losing the rest of the transaction
    /// (the importer makes each product atomic this way inside a larger batch).
    pub async fn savepoint(&mut self) -> Result<()> {
        dispatch!(self, c => sqlx::query("SAVEPOINT stormcom_sp").execute(&mut *c).await.map(drop)?);
        Ok(())
    }

    pub async fn release_savepoint(&mut self) -> Result<()> {
        dispatch!(self, c => sqlx::query("RELEASE SAVEPOINT stormcom_sp").execute(&mut *c).await.map(drop)?);
        Ok(())
    }

    pub async fn rollback_to_savepoint(&mut self) -> Result<()> {
        dispatch!(self, c => {
            sqlx::query("ROLLBACK TO SAVEPOINT stormcom_sp").execute(&mut *c).await?;
            sqlx::query("RELEASE SAVEPOINT stormcom_sp").execute(&mut *c).await.map(drop)?
        });
        Ok(())
    }
}

impl Handle for Tx {
    fn conn(&mut self) -> Conn<'_> {
        match self {
            Self::Sqlite(tx) => Conn::Sqlite(tx),
            Self::Postgres(tx) => Conn::Postgres(tx),
        }
    }
}

pub enum Reader {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Handle for Reader {
    fn conn(&mut self) -> Conn<'_> {
        match self {
            Self::Sqlite(c) => Conn::Sqlite(c),
            Self::Postgres(c) => Conn::Postgres(c),
        }
    }
}

pub(crate) fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn both_backends_embed_every_migration_with_the_same_versions_and_names() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
        let mut per_backend = Vec::new();
        for (backend, embedded) in super::embedded_migrations() {
            let on_disk: BTreeSet<String> = std::fs::read_dir(format!("{root}/{backend}"))
                .unwrap_or_else(|e| panic!("{backend}: {e}"))
                .map(|entry| {
                    entry
                        .unwrap_or_else(|e| panic!("{e}"))
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            let embedded: BTreeSet<String> = embedded.iter().map(|stem| format!("{stem}.sql")).collect();
            assert_eq!(
                on_disk, embedded,
                "{backend}: every migration file is embedded, nothing else"
            );
            per_backend.push(embedded);
        }
        assert_eq!(
            per_backend[0], per_backend[1],
            "sqlite and postgres migrations must match"
        );
    }
}
