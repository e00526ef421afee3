//! Who is calling, and what they may do in a store. Every store route goes through
//! [`App::authorize`]: the one place where grants, custom roles, API token scopes and
//! platform superusers turn into a permission set.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use stormcom_domain::{Currency, Permission, PermissionSet, Plan, SessionId, StoreId, TokenId, UserId};
use stormcom_store::audit::NewEntry;
use stormcom_store::{StoreScope, access, audit, plans, tenancy};
use time::OffsetDateTime;

use crate::{App, AppError, Result};

/// An authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    User {
        user_id: UserId,
        session_id: SessionId,
        /// When this session last proved a second factor.
        stepped_up_at: Option<OffsetDateTime>,
        is_superuser: bool,
    },
    /// A store-bound API token: its scopes, capped by what its creator still holds.
    ApiToken {
        token_id: TokenId,
        store_id: StoreId,
        scopes: PermissionSet,
        created_by: UserId,
    },
    /// The operator, through the `stormcom` command line on the server itself.
    Operator,
}

impl Principal {
    /// The user behind the call (a token acts for its creator).
    #[must_use]
    pub const fn user_id(&self) -> Option<UserId> {
        match self {
            Self::User { user_id, .. } => Some(*user_id),
            Self::ApiToken { created_by, .. } => Some(*created_by),
            Self::Operator => None,
        }
    }
}

impl fmt::Display for Principal {
    /// The actor recorded in ledgers and the audit log: an id, never an email.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User { user_id, .. } => write!(f, "{user_id}"),
            Self::ApiToken { token_id, .. } => write!(f, "{token_id}"),
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
    owner: bool,
    ip: Option<IpAddr>,
    /// The plan of the store's organization when authorized: picks the rate limits.
    /// Quota checks re-read it under a lock instead.
    plan: Plan,
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
    pub const fn permissions(&self) -> PermissionSet {
        self.permissions
    }

    /// Holds the built-in `owner` role (or is the operator / a superuser).
    #[must_use]
    pub const fn is_owner(&self) -> bool {
        self.owner
    }

    #[must_use]
    pub const fn plan(&self) -> Plan {
        self.plan
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
            owner: true,
            ip: None,
            plan: Plan::default(),
        }
    }

    /// An audit entry for an action of this caller in this store.
    #[must_use]
    pub fn audit(&self, action: &str, target: impl fmt::Display, summary: &[(&str, String)]) -> NewEntry {
        entry(self.principal.to_string(), self.ip, action, target, summary)
    }
}

/// Builds an audit entry. Summaries carry ids and counts, never secrets or clear PII.
pub(crate) fn entry(
    actor: String,
    ip: Option<IpAddr>,
    action: &str,
    target: impl fmt::Display,
    summary: &[(&str, String)],
) -> NewEntry {
    NewEntry {
        actor,
        actor_ip: ip.map(|ip| ip.to_string()),
        action: action.to_owned(),
        target: target.to_string(),
        summary: summary
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// What [`App::authorize`] decided about a member of the store.
#[derive(Debug, Clone, Copy)]
pub enum AccessDecision {
    Granted(StoreContext),
    /// A member without the permission: their context, so the refusal can be audited
    /// ([`App::refuse`]) once the request is known to be served (not rate-limited).
    MissingPermission(StoreContext),
}

impl App {
    /// The one authorization decision for store routes. A store the caller has no live
    /// grant in answers `NotFound`, exactly like a store that does not exist, so ids of
    /// other tenants cannot even be probed; a member lacking the permission is told
    /// apart, to be refused with `Forbidden` and audited.
    pub async fn authorize(
        &self,
        principal: Principal,
        store: StoreId,
        permission: Permission,
        ip: Option<IpAddr>,
    ) -> Result<AccessDecision> {
        let now = OffsetDateTime::now_utc();
        let mut reader = self.db().reader().await?;
        let (scope, currency, permissions, owner, plan) = match principal {
            Principal::User {
                user_id, is_superuser, ..
            } => match access::membership(&mut reader, user_id, store, now).await? {
                Some(m) => {
                    let owner = m.roles.contains(&stormcom_domain::Role::Owner);
                    (m.scope, m.currency, m.permissions, owner, m.plan)
                }
                None if is_superuser => {
                    let store = tenancy::find_store_by_id(&mut reader, store)
                        .await?
                        .ok_or(AppError::NotFound)?;
                    let plan = plans::plan_of_store(&mut reader, store.id).await?.unwrap_or_default();
                    (
                        store.scope(),
                        crate::currency_of(&store.currency)?,
                        PermissionSet::all(),
                        true,
                        plan,
                    )
                }
                None => return Err(AppError::NotFound),
            },
            Principal::ApiToken {
                store_id,
                scopes,
                created_by,
                ..
            } => {
                if store_id != store {
                    return Err(AppError::NotFound);
                }
                // A token never outlives or outranks its creator's own access.
                let m = access::membership(&mut reader, created_by, store, now)
                    .await?
                    .ok_or(AppError::NotFound)?;
                (m.scope, m.currency, scopes.intersection(m.permissions), false, m.plan)
            }
            Principal::Operator => return Err(AppError::NotFound),
        };
        drop(reader);
        let context = StoreContext {
            scope,
            currency,
            principal,
            permissions,
            owner,
            ip,
            plan,
        };
        Ok(if context.require(permission).is_ok() {
            AccessDecision::Granted(context)
        } else {
            AccessDecision::MissingPermission(context)
        })
    }

    /// Audits the refusal of a member who lacks `permission` and returns its error.
    pub async fn refuse(&self, context: &StoreContext, permission: Permission) -> AppError {
        self.record_denial(context, permission.as_str(), "missing permission")
            .await;
        AppError::Forbidden(permission)
    }

    /// Audits a refused action in its own transaction (the action itself changed nothing).
    pub(crate) async fn record_denial(&self, ctx: &StoreContext, wanted: &str, reason: &str) {
        let entry = ctx.audit("access.denied", wanted, &[("reason", reason.to_owned())]);
        let result = async {
            let mut tx = self.db().begin().await?;
            audit::append(&mut tx, ctx.scope(), entry).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "could not audit a refused action");
        }
    }
}
