//! Pure rules of StormCom: typed ids, money, catalog validation, permissions and the
//! Shopify CSV reader. Nothing here does IO, so every rule is testable in isolation.

pub mod api_token;
pub mod audit;
pub mod catalog;
pub mod checkout;
pub mod id;
pub mod money;
pub mod payment;
pub mod permission;
pub mod plan;
pub mod redact;
pub mod sealed;
pub mod secret;
pub mod shopify;
pub mod throttle;
pub mod totp;
pub mod validation;

pub use id::*;
pub use money::{Currency, MoneyError, parse_amount};
pub use permission::{Permission, PermissionSet, Role};
pub use plan::{Plan, PlanLimits, PlanTable, Quota};
pub use validation::{FieldError, ValidationErrors};
