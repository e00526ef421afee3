//! Organizations, stores and store membership: the tenant boundary.

use sqlx::FromRow;
use stormcom_domain::{OrgId, StoreId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Handle, Result, Tx, dispatch, now};

/// Proof that the holder may touch one store's rows. Repository functions for tenant
/// data take it first and put its id in every `WHERE`. It is minted only here: from a
/// membership row ([`membership`]) or from the store row itself for trusted operator
/// paths (CLI, storefront by handle, background jobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreScope {
    store_id: StoreId,
}

impl StoreScope {
    #[must_use]
    pub const fn store_id(&self) -> StoreId {
        self.store_id
    }

    pub(crate) fn uuid(&self) -> Uuid {
        self.store_id.as_uuid()
    }

    /// Minted only inside this crate, after a membership or token check.
    pub(crate) const fn new(store_id: StoreId) -> Self {
        Self { store_id }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    pub id: StoreId,
    pub org_id: OrgId,
    pub name: String,
    pub handle: String,
    pub currency: String,
    pub created_at: OffsetDateTime,
}

impl Store {
    #[must_use]
    pub const fn scope(&self) -> StoreScope {
        StoreScope { store_id: self.id }
    }
}

#[derive(FromRow)]
struct StoreRow {
    id: Uuid,
    org_id: Uuid,
    name: String,
    handle: String,
    currency: String,
    created_at: OffsetDateTime,
}

impl From<StoreRow> for Store {
    fn from(r: StoreRow) -> Self {
        Self {
            id: StoreId::from_uuid(r.id),
            org_id: OrgId::from_uuid(r.org_id),
            name: r.name,
            handle: r.handle,
            currency: r.currency,
            created_at: r.created_at,
        }
    }
}

pub async fn create_organization(tx: &mut Tx, name: &str, owner: UserId) -> Result<OrgId> {
    let id = OrgId::generate();
    dispatch!(tx, c => sqlx::query(
        "INSERT INTO organizations (id, name, owner_user_id, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id.as_uuid())
    .bind(name)
    .bind(owner.as_uuid())
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(id)
}

/// The oldest organization the user owns, if any.
pub async fn find_org_owned_by(h: &mut impl Handle, owner: UserId) -> Result<Option<OrgId>> {
    let id: Option<Uuid> = dispatch!(h, c => sqlx::query_scalar(
        "SELECT id FROM organizations WHERE owner_user_id = $1 ORDER BY id LIMIT 1",
    )
    .bind(owner.as_uuid())
    .fetch_optional(&mut *c)
    .await?);
    Ok(id.map(OrgId::from_uuid))
}

pub async fn create_store(tx: &mut Tx, org: OrgId, name: &str, handle: &str, currency: &str) -> Result<Store> {
    let store = Store {
        id: StoreId::generate(),
        org_id: org,
        name: name.to_owned(),
        handle: handle.to_owned(),
        currency: currency.to_owned(),
        created_at: now(),
    };
    dispatch!(tx, c => {
        sqlx::query(
            "INSERT INTO stores (id, org_id, name, handle, currency, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(store.id.as_uuid())
        .bind(org.as_uuid())
        .bind(&store.name)
        .bind(&store.handle)
        .bind(&store.currency)
        .bind(store.created_at)
        .execute(&mut *c)
        .await?;
        // The store's audit chain starts with the store.
        sqlx::query("INSERT INTO audit_heads (chain_id, seq, hash) VALUES ($1, 0, $2)")
            .bind(store.id.as_uuid())
            .bind(&stormcom_domain::audit::GENESIS[..])
            .execute(&mut *c)
            .await?
            .rows_affected()
    });
    Ok(store)
}

pub async fn find_store_by_handle(h: &mut impl Handle, handle: &str) -> Result<Option<Store>> {
    let row: Option<StoreRow> = dispatch!(h, c => sqlx::query_as(
        "SELECT s.id, s.org_id, s.name, s.handle, s.currency, s.created_at FROM stores s WHERE s.handle = $1",
    )
    .bind(handle)
    .fetch_optional(&mut *c)
    .await?);
    Ok(row.map(Store::from))
}

/// A store by id (platform superusers and background jobs).
pub async fn find_store_by_id(h: &mut impl Handle, id: StoreId) -> Result<Option<Store>> {
    let row: Option<StoreRow> = dispatch!(h, c => sqlx::query_as(
        "SELECT s.id, s.org_id, s.name, s.handle, s.currency, s.created_at FROM stores s WHERE s.id = $1",
    )
    .bind(id.as_uuid())
    .fetch_optional(&mut *c)
    .await?);
    Ok(row.map(Store::from))
}
