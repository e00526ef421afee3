//! StormCom use cases. Each mutation is one transaction: authorize, change, record.
//! The HTTP layer and the CLI call these and nothing below them, so the rules (and the
//! authorization checks) live in one place.

mod access;
mod auth;
pub mod catalog;
mod error;
pub mod import;
pub mod inventory;
pub mod storefront;
mod stores;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use stormcom_store::Db;
use stormcom_store::tenancy::Store;

pub use access::{Principal, StoreContext};
pub use auth::IssuedSession;
pub use error::AppError;
pub use stormcom_domain as domain;
pub use stormcom_store as store;

pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Absolute lifetime of a login session.
    pub session_ttl: Duration,
    /// A session unused this long is dead.
    pub session_idle_timeout: Duration,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(12 * 3600),
            session_idle_timeout: Duration::from_secs(3600),
        }
    }
}

/// The application: shared by every request; cheap to clone.
#[derive(Clone, Debug)]
pub struct App {
    db: Db,
    config: AppConfig,
    stores_by_handle: Arc<RwLock<HashMap<String, Store>>>,
}

impl App {
    #[must_use]
    pub fn new(db: Db, config: AppConfig) -> Self {
        Self {
            db,
            config,
            stores_by_handle: Arc::default(),
        }
    }

    #[must_use]
    pub const fn db(&self) -> &Db {
        &self.db
    }
}
