//! One conformance suite, two backends. Write a test once as `async fn name(db: Db)` and
//! list it in [`backend_tests!`]: it runs on SQLite (a temporary file) and on PostgreSQL
//! (a fresh schema in `STORMCOM_TEST_POSTGRES_URL`). Without that variable the PostgreSQL
//! half is skipped with a notice, except under `CI`, where it fails.

use stormcom_store::{Db, PoolConfig};

pub use tokio;

pub const POSTGRES_URL_VAR: &str = "STORMCOM_TEST_POSTGRES_URL";

/// A migrated, empty database that belongs to one test.
pub struct TestDb {
    pub db: Db,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[expect(dead_code, reason = "held so the directory lives as long as the test")] tempfile::TempDir),
    Postgres { url: String, schema: String },
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let db = Db::connect(&url, &PoolConfig::default())
            .await
            .unwrap_or_else(|e| panic!("sqlite: {e}"));
        db.migrate().await.unwrap_or_else(|e| panic!("migrate sqlite: {e}"));
        Self {
            db,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// `None` when PostgreSQL is not configured outside CI.
    pub async fn postgres() -> Option<Self> {
        let Some(url) = postgres_url() else {
            eprintln!("{POSTGRES_URL_VAR} is not set: skipping the PostgreSQL run of this test");
            return None;
        };
        let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
        let config = PoolConfig {
            max_connections: 20,
            ..PoolConfig::default()
        };
        let db = Db::connect_postgres_schema(&url, &schema, &config)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {POSTGRES_URL_VAR} is unreachable: {e}"));
        db.migrate().await.unwrap_or_else(|e| panic!("migrate postgres: {e}"));
        Some(Self {
            db,
            cleanup: Cleanup::Postgres { url, schema },
        })
    }

    /// Drops what the test created. Called only after the test passed, so a failing
    /// test leaves its schema behind for inspection.
    pub async fn finish(self) {
        self.db.close().await;
        if let Cleanup::Postgres { url, schema } = self.cleanup {
            let _ = Db::drop_postgres_schema(&url, &schema).await;
        }
    }
}

/// The PostgreSQL URL for tests; panics under CI when it is missing.
#[must_use]
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{POSTGRES_URL_VAR} must be set under CI: the PostgreSQL half of the suite may not be skipped")
        }
        _ => None,
    }
}

pub const REDIS_URL_VAR: &str = "STORMCOM_TEST_REDIS_URL";

/// The Redis URL for tests that need a real Redis; panics under CI when it is missing,
/// otherwise `None` after printing a skip notice.
#[must_use]
pub fn redis_url() -> Option<String> {
    match std::env::var(REDIS_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{REDIS_URL_VAR} must be set under CI: the Redis tests may not be skipped")
        }
        _ => {
            eprintln!("{REDIS_URL_VAR} is not set: skipping this Redis test");
            None
        }
    }
}

/// Runs each listed `async fn(Db)` on both backends, as `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[$crate::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let test_db = $crate::TestDb::sqlite().await;
                    super::$name(test_db.db.clone()).await;
                    test_db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[$crate::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(test_db) = $crate::TestDb::postgres().await else { return };
                    super::$name(test_db.db.clone()).await;
                    test_db.finish().await;
                }
            )*
        }
    };
}
