//! Granting and revoking access inside a store. The rules: nobody grants what they do
//! not hold; nobody changes their own grants; only an owner grants `owner`; granting
//! anything that includes `access:grant`, or an admin-level role, needs a recent
//! second-factor step-up. Revocation takes effect on the next request, because every
//! request re-reads live grants. Every refusal is audited.

use stormcom_domain::{GrantId, Permission, PermissionSet, Role, RoleId, UserId, ValidationErrors};
use stormcom_store::access::{self, CustomRole, Grant, GrantSubject};
use stormcom_store::{audit, identity};
use time::OffsetDateTime;

use crate::auth::normalize_email;
use crate::{App, AppError, Principal, Result, StoreContext};

/// What a grant request asks for.
#[derive(Debug, Clone)]
pub enum Requested {
    Role(Role),
    CustomRole(RoleId),
    Permission(Permission),
}

#[derive(Debug, Clone)]
pub struct NewGrant {
    pub user_email: String,
    pub subject: Requested,
    pub expires_at: Option<OffsetDateTime>,
}

/// Critical: hands out the power to hand out power, or an admin-level role.
fn is_critical(subject: &GrantSubject) -> bool {
    matches!(subject, GrantSubject::Role(Role::Owner | Role::Admin))
        || subject.permissions().contains(Permission::AccessGrant)
}

impl App {
    pub async fn list_grants(&self, ctx: &StoreContext) -> Result<Vec<Grant>> {
        ctx.require(Permission::AccessRead)?;
        let mut reader = self.db().reader().await?;
        Ok(access::live_grants(&mut reader, ctx.scope(), None, OffsetDateTime::now_utc()).await?)
    }

    /// Checks that the caller may hand out (or take away) `subject` to `target`.
    async fn check_delegation(&self, ctx: &StoreContext, target: UserId, subject: &GrantSubject) -> Result<UserId> {
        ctx.require(Permission::AccessGrant)?;
        let refuse = |reason: &'static str| async move {
            self.record_denial(ctx, "access:grant", reason).await;
            Err(AppError::Refused(reason))
        };
        let Principal::User { user_id: caller, .. } = ctx.principal() else {
            return refuse("access is granted by signed-in users, not API tokens").await;
        };
        if caller == target {
            return refuse("nobody changes their own grants").await;
        }
        if !subject.permissions().is_subset_of(ctx.permissions()) {
            return refuse("nobody grants what they do not hold").await;
        }
        if subject == &GrantSubject::Role(Role::Owner) && !ctx.is_owner() {
            return refuse("only an owner grants the owner role").await;
        }
        if is_critical(subject) && !self.recently_stepped_up(ctx.principal()) {
            self.record_denial(ctx, "access:grant", "step-up required").await;
            return Err(AppError::StepUpRequired);
        }
        Ok(caller)
    }

    pub async fn create_grant(&self, ctx: &StoreContext, request: NewGrant) -> Result<Grant> {
        ctx.require(Permission::AccessGrant)?;
        let email = normalize_email(&request.user_email)?;
        if request.expires_at.is_some_and(|at| at <= OffsetDateTime::now_utc()) {
            return Err(AppError::invalid("expires_at", "in_the_past", "must be in the future"));
        }
        let mut reader = self.db().reader().await?;
        let target = identity::find_user_by_email(&mut reader, &email)
            .await?
            .ok_or_else(|| AppError::invalid("user_email", "unknown_user", "no user has this email"))?;
        let subject = match request.subject {
            Requested::Role(role) => GrantSubject::Role(role),
            Requested::Permission(p) => GrantSubject::Permission(p),
            Requested::CustomRole(id) => {
                let role = access::find_role(&mut reader, ctx.scope(), id)
                    .await?
                    .ok_or_else(|| AppError::invalid("role_id", "unknown_role", "no such role in this store"))?;
                GrantSubject::CustomRole {
                    id: role.id,
                    name: role.name,
                    permissions: role.permissions,
                }
            }
        };
        drop(reader);
        let caller = self.check_delegation(ctx, target.id, &subject).await?;
        let mut tx = self.db().begin().await?;
        let grant = access::create_grant(&mut tx, ctx.scope(), target.id, &subject, caller, request.expires_at).await?;
        let summary = [
            ("user", target.id.to_string()),
            ("grants", subject.permissions().to_list()),
        ];
        audit::append(&mut tx, ctx.scope(), ctx.audit("grant.created", grant.id, &summary)).await?;
        tx.commit().await?;
        Ok(grant)
    }

    pub async fn revoke_grant(&self, ctx: &StoreContext, id: GrantId) -> Result<()> {
        ctx.require(Permission::AccessGrant)?;
        let grant = {
            let mut reader = self.db().reader().await?;
            access::find_grant(&mut reader, ctx.scope(), id)
                .await?
                .ok_or(AppError::NotFound)?
        };
        let caller = self.check_delegation(ctx, grant.user_id, &grant.subject).await?;
        let mut tx = self.db().begin().await?;
        if !access::revoke_grant(&mut tx, ctx.scope(), id, caller).await? {
            return Err(AppError::NotFound);
        }
        let summary = [("user", grant.user_id.to_string())];
        audit::append(&mut tx, ctx.scope(), ctx.audit("grant.revoked", id, &summary)).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_roles(&self, ctx: &StoreContext) -> Result<Vec<CustomRole>> {
        ctx.require(Permission::AccessRead)?;
        let mut reader = self.db().reader().await?;
        Ok(access::list_roles(&mut reader, ctx.scope()).await?)
    }

    /// A named permission set; the caller must hold every permission in it.
    pub async fn create_role(&self, ctx: &StoreContext, name: &str, permissions: PermissionSet) -> Result<CustomRole> {
        ctx.require(Permission::AccessGrant)?;
        let name = name.trim();
        let mut errors = ValidationErrors::default();
        if name.is_empty() || name.len() > 64 || Role::ALL.iter().any(|r| r.as_str() == name) {
            errors.add("name", "invalid_name", "1 to 64 bytes, not the name of a built-in role");
        }
        if permissions.is_empty() {
            errors.add("permissions", "empty", "a role needs at least one permission");
        }
        errors.finish()?;
        let Principal::User { user_id, .. } = ctx.principal() else {
            return Err(AppError::Refused("roles are created by signed-in users"));
        };
        if !permissions.is_subset_of(ctx.permissions()) {
            self.record_denial(ctx, "access:grant", "role holds permissions the caller lacks")
                .await;
            return Err(AppError::Refused("nobody grants what they do not hold"));
        }
        let mut tx = self.db().begin().await?;
        let role = access::create_role(&mut tx, ctx.scope(), name, permissions, user_id).await?;
        let summary = [("name", role.name.clone()), ("permissions", permissions.to_list())];
        audit::append(&mut tx, ctx.scope(), ctx.audit("role.created", role.id, &summary)).await?;
        tx.commit().await?;
        Ok(role)
    }
}
