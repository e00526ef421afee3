//! Organizations, stores and store membership: the tenant boundary.

use sqlx::FromRow;
use stormcom_domain::{Currency, OrgId, Role, StoreId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Handle, Result, StoreError, Tx, dispatch, now};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub scope: StoreScope,
    pub role: Role,
    /// The store's currency, needed by nearly every response that shows money.
    pub currency: Currency,
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

fn parse_currency(text: &str) -> Result<Currency> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown currency '{text}'")))
}

fn parse_role(text: &str) -> Result<Role> {
    text.parse()
        .map_err(|()| StoreError::Corrupt(format!("unknown role '{text}'")))
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
    dispatch!(tx, c => sqlx::query(
        "INSERT INTO stores (id, org_id, name, handle, currency, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(store.id.as_uuid())
    .bind(org.as_uuid())
    .bind(&store.name)
    .bind(&store.handle)
    .bind(&store.currency)
    .bind(store.created_at)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(store)
}

pub async fn add_member(tx: &mut Tx, scope: &StoreScope, user: UserId, role: Role) -> Result<()> {
    dispatch!(tx, c => sqlx::query(
        "INSERT INTO store_members (store_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(scope.uuid())
    .bind(user.as_uuid())
    .bind(role.as_str())
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(())
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

/// The user's membership in a store, or `None` when they are not a member (or the store
/// does not exist: the caller cannot tell the two apart, by design).
pub async fn membership(h: &mut impl Handle, user: UserId, store: StoreId) -> Result<Option<Membership>> {
    let row: Option<(String, String)> = dispatch!(h, c => sqlx::query_as(
        "SELECT m.role, s.currency FROM store_members m JOIN stores s ON s.id = m.store_id \
         WHERE m.store_id = $1 AND m.user_id = $2",
    )
    .bind(store.as_uuid())
    .bind(user.as_uuid())
    .fetch_optional(&mut *c)
    .await?);
    row.map(|(role, currency)| {
        Ok(Membership {
            scope: StoreScope { store_id: store },
            role: parse_role(&role)?,
            currency: parse_currency(&currency)?,
        })
    })
    .transpose()
}

#[derive(FromRow)]
struct MemberStoreRow {
    #[sqlx(flatten)]
    store: StoreRow,
    role: String,
}

/// Every store the user is a member of, oldest first.
pub async fn stores_of_user(h: &mut impl Handle, user: UserId) -> Result<Vec<(Store, Role)>> {
    let rows: Vec<MemberStoreRow> = dispatch!(h, c => sqlx::query_as(
        "SELECT s.id, s.org_id, s.name, s.handle, s.currency, s.created_at, m.role \
         FROM store_members m JOIN stores s ON s.id = m.store_id \
         WHERE m.user_id = $1 ORDER BY s.id",
    )
    .bind(user.as_uuid())
    .fetch_all(&mut *c)
    .await?);
    rows.into_iter()
        .map(|r| Ok((Store::from(r.store), parse_role(&r.role)?)))
        .collect()
}
