//! Stores and their organizations.

use stormcom_domain::{Currency, Quota, Role, ValidationErrors, catalog};
use stormcom_store::access::{self, GrantSubject};
use stormcom_store::tenancy::{self, Store};
use stormcom_store::{audit, identity, plans};
use time::OffsetDateTime;

use crate::access::entry;
use crate::auth::normalize_email;
use crate::{App, AppError, Principal, Result};

impl App {
    /// Creates a store owned by `owner_email`, inside the organization that user owns
    /// (created on the fly if they have none). Operator command.
    pub async fn create_store(&self, name: &str, handle: &str, currency: &str, owner_email: &str) -> Result<Store> {
        let currency = currency.trim().to_ascii_uppercase();
        let currency = currency.as_str();
        let mut errors = ValidationErrors::default();
        catalog::check_title(&mut errors, "name", name);
        catalog::check_handle(&mut errors, "handle", handle);
        if currency.parse::<Currency>().is_err() {
            errors.add("currency", "invalid_currency", "must be an ISO 4217 code such as USD");
        }
        errors.finish()?;
        let email = normalize_email(owner_email)?;
        let mut tx = self.db().begin().await?;
        let owner = identity::find_user_by_email(&mut tx, &email)
            .await?
            .ok_or_else(|| AppError::invalid("owner", "unknown_user", "no user has this email"))?;
        plans::lock_org_owner(&mut tx, owner.id).await?;
        let org = match tenancy::find_org_owned_by(&mut tx, owner.id).await? {
            Some(org) => org,
            None => tenancy::create_organization(&mut tx, &format!("{name} (organization)"), owner.id).await?,
        };
        let plan = plans::lock_org_plan(&mut tx, org).await?;
        self.check_quota(plan, Quota::Stores, plans::count_stores(&mut tx, org).await?)?;
        let store = tenancy::create_store(&mut tx, org, name.trim(), handle, currency).await?;
        access::create_grant(
            &mut tx,
            &store.scope(),
            owner.id,
            &GrantSubject::Role(Role::Owner),
            owner.id,
            None,
        )
        .await?;
        let summary = [("handle", store.handle.clone()), ("owner", owner.id.to_string())];
        audit::append_platform(
            &mut tx,
            entry("operator".into(), None, "store.created", store.id, &summary),
        )
        .await?;
        audit::append(
            &mut tx,
            &store.scope(),
            entry("operator".into(), None, "store.created", store.id, &summary),
        )
        .await?;
        tx.commit().await?;
        Ok(store)
    }

    /// The stores the caller holds a live grant in, with their built-in roles. An API
    /// token sees only its own store.
    pub async fn list_stores(&self, principal: Principal) -> Result<Vec<(Store, Vec<Role>)>> {
        let Some(user_id) = principal.user_id() else {
            return Ok(Vec::new());
        };
        let mut reader = self.db().reader().await?;
        let mut stores = access::stores_of_user(&mut reader, user_id, OffsetDateTime::now_utc()).await?;
        if let Principal::ApiToken { store_id, .. } = principal {
            stores.retain(|(s, _)| s.id == store_id);
        }
        Ok(stores)
    }

    /// A store by handle, for operator commands and the public storefront. Served from
    /// memory after the first lookup: a store's id, handle and currency never change
    /// once created. Only stores that exist are remembered, so probing random handles
    /// cannot grow the cache.
    pub async fn store_by_handle(&self, handle: &str) -> Result<Store> {
        if let Some(store) = self
            .stores_by_handle
            .read()
            .ok()
            .and_then(|cache| cache.get(handle).cloned())
        {
            return Ok(store);
        }
        let mut reader = self.db().reader().await?;
        let store = tenancy::find_store_by_handle(&mut reader, handle)
            .await?
            .ok_or(AppError::NotFound)?;
        if let Ok(mut cache) = self.stores_by_handle.write() {
            cache.insert(store.handle.clone(), store.clone());
        }
        Ok(store)
    }
}
