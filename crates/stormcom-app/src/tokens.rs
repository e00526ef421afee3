//! Store-bound API tokens. The secret is shown once and only its SHA-256 is stored;
//! scopes must be a subset of the creator's permissions (and stay capped by them, see
//! `App::authorize`); a token with admin-level scopes needs a recent step-up.

use stormcom_domain::api_token::ApiTokenSecret;
use stormcom_domain::{Permission, PermissionSet, Quota, TokenId, ValidationErrors};
use stormcom_store::access::{self, ApiToken};
use stormcom_store::{audit, plans};
use time::OffsetDateTime;

use crate::{App, AppError, Principal, Result, StoreContext};

#[derive(Debug)]
pub struct IssuedToken {
    pub token: ApiToken,
    pub secret: ApiTokenSecret,
}

impl App {
    pub async fn create_api_token(
        &self,
        ctx: &StoreContext,
        name: &str,
        scopes: PermissionSet,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<IssuedToken> {
        ctx.require(Permission::TokensWrite)?;
        let name = name.trim();
        let mut errors = ValidationErrors::default();
        if name.is_empty() || name.len() > 100 {
            errors.add("name", "invalid_name", "must be 1 to 100 bytes");
        }
        if scopes.is_empty() {
            errors.add("scopes", "empty", "a token needs at least one scope");
        }
        if expires_at.is_some_and(|at| at <= OffsetDateTime::now_utc()) {
            errors.add("expires_at", "in_the_past", "must be in the future");
        }
        errors.finish()?;
        let Principal::User { user_id, .. } = ctx.principal() else {
            self.record_denial(ctx, "tokens:write", "tokens cannot mint tokens")
                .await;
            return Err(AppError::Refused("API tokens are created by signed-in users"));
        };
        if !scopes.is_subset_of(ctx.permissions()) {
            self.record_denial(ctx, "tokens:write", "scope beyond the creator's permissions")
                .await;
            return Err(AppError::Refused(
                "a token's scopes must be a subset of your permissions",
            ));
        }
        let admin_level = scopes.contains(Permission::AccessGrant) || scopes.contains(Permission::TokensWrite);
        if admin_level && !self.recently_stepped_up(ctx.principal()) {
            self.record_denial(ctx, "tokens:write", "step-up required").await;
            return Err(AppError::StepUpRequired);
        }
        let secret =
            ApiTokenSecret::generate(ctx.store_id().as_uuid()).map_err(|e| AppError::Internal(e.to_string()))?;
        let mut tx = self.db().begin().await?;
        let plan = plans::lock_store_plan(&mut tx, ctx.scope()).await?;
        let live = plans::count_live_tokens(&mut tx, ctx.scope(), OffsetDateTime::now_utc()).await?;
        self.check_quota(plan, Quota::ApiTokensPerStore, live)?;
        let token = access::create_token(
            &mut tx,
            ctx.scope(),
            name,
            &secret.digest(),
            scopes,
            user_id,
            expires_at,
        )
        .await?;
        let summary = [("name", token.name.clone()), ("scopes", scopes.to_list())];
        audit::append(&mut tx, ctx.scope(), ctx.audit("token.created", token.id, &summary)).await?;
        tx.commit().await?;
        Ok(IssuedToken { token, secret })
    }

    pub async fn list_api_tokens(&self, ctx: &StoreContext) -> Result<Vec<ApiToken>> {
        ctx.require(Permission::TokensWrite)?;
        let mut reader = self.db().reader().await?;
        Ok(access::list_tokens(&mut reader, ctx.scope()).await?)
    }

    pub async fn revoke_api_token(&self, ctx: &StoreContext, id: TokenId) -> Result<()> {
        ctx.require(Permission::TokensWrite)?;
        let mut tx = self.db().begin().await?;
        if !access::revoke_token(&mut tx, ctx.scope(), id).await? {
            return Err(AppError::NotFound);
        }
        audit::append(&mut tx, ctx.scope(), ctx.audit("token.revoked", id, &[])).await?;
        tx.commit().await?;
        Ok(())
    }
}
