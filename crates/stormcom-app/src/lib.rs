//! StormCom use cases. Each mutation is one transaction: authorize, change, record.
//! The HTTP layer and the CLI call these and nothing below them, so the rules (and the
//! authorization checks) live in one place.

mod access;
pub mod audit;
mod auth;
pub mod authguard;
pub mod catalog;
pub mod checkout;
mod error;
pub mod grants;
pub mod idempotency;
pub mod import;
pub mod inventory;
mod keys;
pub mod mfa;
pub mod orders;
pub mod payments;
pub mod pii;
pub mod plans;
pub mod storefront;
mod stores;
pub mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use stormcom_store::Db;
use stormcom_store::tenancy::Store;

pub use access::{AccessDecision, Principal, StoreContext};
pub use auth::{IssuedSession, LoginRequest};
pub use authguard::{Clock, FailureKind};
pub use error::AppError;
pub use keys::Keys;
pub use stormcom_domain as domain;
pub use stormcom_store as store;

pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Absolute lifetime of a login session.
    pub session_ttl: Duration,
    /// A session unused this long is dead.
    pub session_idle_timeout: Duration,
    /// How recent a second-factor proof must be for critical grants and tokens.
    pub step_up_window: Duration,
    /// How long checkout holds stock for an unpaid order.
    pub reservation_ttl: Duration,
    /// How old (and how far in the future) a gateway callback's signature may be.
    pub callback_window: stormcom_domain::payment::SignatureWindow,
    /// How long processed gateway event ids are kept (never less than 30 days).
    pub processed_event_retention: Duration,
    /// How long an Idempotency-Key and its answer are kept.
    pub idempotency_ttl: Duration,
    /// Brute-force defence: free attempts, growing delays, lockout, spike rule.
    pub auth_throttle: stormcom_domain::throttle::ThrottlePolicy,
    /// What each plan allows (quotas, rate multiplier).
    pub plans: stormcom_domain::PlanTable,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(12 * 3600),
            session_idle_timeout: Duration::from_secs(3600),
            step_up_window: Duration::from_secs(300),
            reservation_ttl: Duration::from_secs(15 * 60),
            callback_window: stormcom_domain::payment::SignatureWindow::default(),
            processed_event_retention: payments::MIN_EVENT_RETENTION,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            auth_throttle: stormcom_domain::throttle::ThrottlePolicy::default(),
            plans: stormcom_domain::PlanTable::default(),
        }
    }
}

/// The application: shared by every request. Cloning it (axum does, per request) is
/// one reference-count increment: the configuration, keys and caches live once behind it.
#[derive(Clone, Debug)]
pub struct App(Arc<AppInner>);

#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct AppInner {
    db: Db,
    config: AppConfig,
    keys: Keys,
    stores_by_handle: Arc<RwLock<HashMap<String, Store>>>,
    clock: authguard::Clock,
    token_hints: authguard::TokenHints,
}

impl std::ops::Deref for App {
    type Target = AppInner;

    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    #[must_use]
    pub fn new(db: Db, config: AppConfig, keys: Keys) -> Self {
        Self(Arc::new(AppInner {
            db,
            token_hints: authguard::token_hints(&config.auth_throttle.token_ip),
            config,
            keys,
            stores_by_handle: Arc::default(),
            clock: authguard::Clock::system(),
        }))
    }

    #[must_use]
    pub fn db(&self) -> &Db {
        &self.db
    }
}

pub(crate) fn currency_of(code: &str) -> Result<stormcom_domain::Currency> {
    code.parse()
        .map_err(|_| AppError::Internal(format!("store currency '{code}' is not ISO 4217")))
}

/// Counts a monitoring alert once its transaction has committed
/// (`stormcom_alerts_raised_total{kind}` on /metrics).
pub(crate) fn alert_raised(kind: &'static str) {
    metrics::counter!("stormcom_alerts_raised_total", "kind" => kind).increment(1);
}
