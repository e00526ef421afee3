//! Who is calling, and what they may do in a store. Every store route goes through
//! [`App::authorize`]; this is where grants and custom roles will plug in.

use std::fmt;

use stormcom_domain::{Currency, Permission, PermissionSet, SessionId, StoreId, UserId};
use stormcom_store::{StoreScope, tenancy};

use crate::{App, AppError, Result};

/// An authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    User {
        user_id: UserId,
        session_id: SessionId,
    },
    /// The operator, through the `stormcom` command line on the server itself.
    Operator,
}

impl fmt::Display for Principal {
    /// The actor recorded in ledgers: an id, never an email.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User { user_id, .. } => write!(f, "{user_id}"),
            Self::Operator => f.write_str("operator"),
        }
    }
}

/// An authorized caller inside one store. Use cases take it instead of a bare scope,
/// and re-check the permission they need with [`StoreContext::require`].
#[derive(Debug, Clone, Copy)]
pub struct StoreContext {
    scope: StoreScope,
    currency: Currency,
    principal: Principal,
    permissions: PermissionSet,
}

impl StoreContext {
    #[must_use]
    pub const fn scope(&self) -> &StoreScope {
        &self.scope
    }

    #[must_use]
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    #[must_use]
    pub const fn principal(&self) -> Principal {
        self.principal
    }

    #[must_use]
    pub fn store_id(&self) -> StoreId {
        self.scope.store_id()
    }

    pub fn require(&self, permission: Permission) -> Result<()> {
        if self.permissions.contains(permission) {
            Ok(())
        } else {
            Err(AppError::Forbidden(permission))
        }
    }

    /// The operator acting on a store they loaded by handle (CLI).
    #[must_use]
    pub fn operator(scope: StoreScope, currency: Currency) -> Self {
        Self {
            scope,
            currency,
            principal: Principal::Operator,
            permissions: PermissionSet::all(),
        }
    }
}

impl App {
    /// The one authorization decision for store routes. A store the caller is not a
    /// member of answers `NotFound`, exactly like a store that does not exist, so ids
    /// of other tenants cannot even be probed.
    pub async fn authorize(
        &self,
        principal: Principal,
        store: StoreId,
        permission: Permission,
    ) -> Result<StoreContext> {
        let user = match principal {
            Principal::User { user_id, .. } => user_id,
            Principal::Operator => return Err(AppError::NotFound),
        };
        let mut reader = self.db().reader().await?;
        let membership = tenancy::membership(&mut reader, user, store)
            .await?
            .ok_or(AppError::NotFound)?;
        let context = StoreContext {
            scope: membership.scope,
            currency: membership.currency,
            principal,
            permissions: membership.role.permissions(),
        };
        context.require(permission)?;
        Ok(context)
    }
}
