//! Who may do what in a store: grants (of a built-in role, a custom role or a single
//! permission), custom roles, and store-bound API tokens.

use sqlx::FromRow;
use stormcom_domain::{Currency, GrantId, Permission, PermissionSet, Plan, Role, RoleId, StoreId, TokenId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::tenancy::Store;
use crate::{Handle, Result, StoreError, StoreScope, Tx, dispatch, now};

/// What a grant gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantSubject {
    Role(Role),
    CustomRole {
        id: RoleId,
        name: String,
        permissions: PermissionSet,
    },
    Permission(Permission),
}

impl GrantSubject {
    #[must_use]
    pub fn permissions(&self) -> PermissionSet {
        match self {
            Self::Role(role) => role.permissions(),
            Self::CustomRole { permissions, .. } => *permissions,
            Self::Permission(p) => [*p].into_iter().collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: GrantId,
    pub user_id: UserId,
    pub subject: GrantSubject,
    pub granted_by: UserId,
    pub granted_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
}

/// A user's live standing in one store.
#[derive(Debug, Clone)]
pub struct Membership {
    pub scope: StoreScope,
    /// The store's currency, needed by nearly every response that shows money.
    pub currency: Currency,
    pub permissions: PermissionSet,
    pub roles: Vec<Role>,
    /// The plan of the organization owning the store.
    pub plan: Plan,
}

#[derive(FromRow)]
struct GrantRow {
    id: Uuid,
    user_id: Uuid,
    builtin_role: Option<String>,
    role_id: Option<Uuid>,
    role_name: Option<String>,
    role_permissions: Option<String>,
    permission: Option<String>,
    granted_by: Uuid,
    granted_at: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
    /// The store's currency, read along so authorization costs one query.
    store_currency: String,
    /// The plan of the organization owning the store (for rate limits), likewise.
    org_plan: String,
}

impl TryFrom<GrantRow> for Grant {
    type Error = StoreError;

    fn try_from(r: GrantRow) -> Result<Self> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("grant {}: {what}", r.id));
        let id = GrantId::from_uuid(r.id);
        let subject = match (&r.builtin_role, r.role_id, &r.permission) {
            (Some(role), None, None) => GrantSubject::Role(role.parse().map_err(|()| corrupt("unknown role"))?),
            (None, Some(role_id), None) => GrantSubject::CustomRole {
                id: RoleId::from_uuid(role_id),
                name: r.role_name.clone().unwrap_or_default(),
                permissions: PermissionSet::parse_list(r.role_permissions.as_deref().unwrap_or(""))
                    .map_err(|p| corrupt(&format!("unknown permission {p}")))?,
            },
            (None, None, Some(p)) => GrantSubject::Permission(p.parse().map_err(|()| corrupt("unknown permission"))?),
            _ => return Err(corrupt("not exactly one subject")),
        };
        Ok(Self {
            id,
            user_id: UserId::from_uuid(r.user_id),
            subject,
            granted_by: UserId::from_uuid(r.granted_by),
            granted_at: r.granted_at,
            expires_at: r.expires_at,
        })
    }
}

macro_rules! grant_select {
    () => {
        "SELECT g.id, g.user_id, g.builtin_role, g.role_id, r.name AS role_name, r.permissions AS role_permissions, \
         g.permission, g.granted_by, g.granted_at, g.expires_at, s.currency AS store_currency, \
         o.plan AS org_plan \
         FROM grants g JOIN stores s ON s.id = g.store_id JOIN organizations o ON o.id = s.org_id \
         LEFT JOIN roles r ON r.store_id = g.store_id AND r.id = g.role_id "
    };
}

/// Live grants: not revoked, not expired at `at`.
pub async fn live_grants(
    h: &mut impl Handle,
    scope: &StoreScope,
    user: Option<UserId>,
    at: OffsetDateTime,
) -> Result<Vec<Grant>> {
    live_grant_rows(h, scope, user, at)
        .await?
        .into_iter()
        .map(Grant::try_from)
        .collect()
}

async fn live_grant_rows(
    h: &mut impl Handle,
    scope: &StoreScope,
    user: Option<UserId>,
    at: OffsetDateTime,
) -> Result<Vec<GrantRow>> {
    let rows: Vec<GrantRow> = dispatch!(h, c => sqlx::query_as(concat!(
        grant_select!(),
        "WHERE g.store_id = $1 AND ($2 OR g.user_id = $3) AND g.revoked_at IS NULL \
         AND (g.expires_at IS NULL OR g.expires_at > $4) ORDER BY g.id"
    ))
    .bind(scope.uuid())
    .bind(user.is_none())
    .bind(user.map_or(Uuid::nil(), |u| u.as_uuid()))
    .bind(at)
    .fetch_all(&mut *c)
    .await?);
    Ok(rows)
}

pub async fn find_grant(h: &mut impl Handle, scope: &StoreScope, id: GrantId) -> Result<Option<Grant>> {
    let row: Option<GrantRow> = dispatch!(h, c => sqlx::query_as(concat!(
        grant_select!(), "WHERE g.store_id = $1 AND g.id = $2 AND g.revoked_at IS NULL"
    ))
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .fetch_optional(&mut *c)
    .await?);
    row.map(Grant::try_from).transpose()
}

/// The user's live standing in a store, or `None` when they hold no live grant there
/// (or the store does not exist: the caller cannot tell the two apart, by design).
pub async fn membership(
    h: &mut impl Handle,
    user: UserId,
    store: StoreId,
    at: OffsetDateTime,
) -> Result<Option<Membership>> {
    let scope = StoreScope::new(store);
    let rows = live_grant_rows(h, &scope, Some(user), at).await?;
    let Some((currency, plan)) = rows.first().map(|r| (r.store_currency.clone(), r.org_plan.clone())) else {
        return Ok(None);
    };
    let plan = plan
        .parse()
        .map_err(|()| StoreError::Corrupt(format!("plan '{plan}'")))?;
    let grants = rows.into_iter().map(Grant::try_from).collect::<Result<Vec<_>>>()?;
    let currency = currency
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("currency '{currency}'")))?;
    let permissions = grants
        .iter()
        .fold(PermissionSet::default(), |set, g| set.union(g.subject.permissions()));
    let mut roles: Vec<Role> = grants
        .iter()
        .filter_map(|g| {
            if let GrantSubject::Role(r) = g.subject {
                Some(r)
            } else {
                None
            }
        })
        .collect();
    roles.sort();
    roles.dedup();
    Ok(Some(Membership {
        scope,
        currency,
        permissions,
        roles,
        plan,
    }))
}

pub async fn create_grant(
    tx: &mut Tx,
    scope: &StoreScope,
    user: UserId,
    subject: &GrantSubject,
    granted_by: UserId,
    expires_at: Option<OffsetDateTime>,
) -> Result<Grant> {
    let id = GrantId::generate();
    let granted_at = now();
    let (builtin, role_id, permission) = match subject {
        GrantSubject::Role(r) => (Some(r.as_str()), None, None),
        GrantSubject::CustomRole { id, .. } => (None, Some(id.as_uuid()), None),
        GrantSubject::Permission(p) => (None, None, Some(p.as_str())),
    };
    dispatch!(tx, c => sqlx::query(
        "INSERT INTO grants (store_id, id, user_id, builtin_role, role_id, permission, granted_by, granted_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .bind(user.as_uuid())
    .bind(builtin)
    .bind(role_id)
    .bind(permission)
    .bind(granted_by.as_uuid())
    .bind(granted_at)
    .bind(expires_at)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(Grant {
        id,
        user_id: user,
        subject: subject.clone(),
        granted_by,
        granted_at,
        expires_at,
    })
}

/// Revokes a live grant; `false` when there was none with this id in the store.
pub async fn revoke_grant(tx: &mut Tx, scope: &StoreScope, id: GrantId, by: UserId) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query(
        "UPDATE grants SET revoked_at = $3, revoked_by = $4 WHERE store_id = $1 AND id = $2 AND revoked_at IS NULL",
    )
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .bind(now())
    .bind(by.as_uuid())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

/// Every store where the user holds a live grant, oldest first, with their built-in roles.
pub async fn stores_of_user(h: &mut impl Handle, user: UserId, at: OffsetDateTime) -> Result<Vec<(Store, Vec<Role>)>> {
    #[derive(FromRow)]
    struct Row {
        id: Uuid,
        org_id: Uuid,
        name: String,
        handle: String,
        currency: String,
        created_at: OffsetDateTime,
        builtin_role: Option<String>,
    }
    let rows: Vec<Row> = dispatch!(h, c => sqlx::query_as(
        "SELECT s.id, s.org_id, s.name, s.handle, s.currency, s.created_at, g.builtin_role \
         FROM grants g JOIN stores s ON s.id = g.store_id \
         WHERE g.user_id = $1 AND g.revoked_at IS NULL AND (g.expires_at IS NULL OR g.expires_at > $2) \
         ORDER BY s.id, g.builtin_role",
    )
    .bind(user.as_uuid())
    .bind(at)
    .fetch_all(&mut *c)
    .await?);
    let mut stores: Vec<(Store, Vec<Role>)> = Vec::new();
    for row in rows {
        let role = row.builtin_role.as_deref().and_then(|r| r.parse::<Role>().ok());
        if stores.last().is_none_or(|(s, _)| s.id.as_uuid() != row.id) {
            let store = Store {
                id: StoreId::from_uuid(row.id),
                org_id: stormcom_domain::OrgId::from_uuid(row.org_id),
                name: row.name,
                handle: row.handle,
                currency: row.currency,
                created_at: row.created_at,
            };
            stores.push((store, Vec::new()));
        }
        if let (Some(role), Some((_, roles))) = (role, stores.last_mut())
            && !roles.contains(&role)
        {
            roles.push(role);
        }
    }
    Ok(stores)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomRole {
    pub id: RoleId,
    pub name: String,
    pub permissions: PermissionSet,
    pub created_by: UserId,
    pub created_at: OffsetDateTime,
}

#[derive(FromRow)]
struct RoleRow {
    id: Uuid,
    name: String,
    permissions: String,
    created_by: Uuid,
    created_at: OffsetDateTime,
}

impl TryFrom<RoleRow> for CustomRole {
    type Error = StoreError;

    fn try_from(r: RoleRow) -> Result<Self> {
        Ok(Self {
            permissions: PermissionSet::parse_list(&r.permissions)
                .map_err(|p| StoreError::Corrupt(format!("role {}: unknown permission {p}", r.id)))?,
            id: RoleId::from_uuid(r.id),
            name: r.name,
            created_by: UserId::from_uuid(r.created_by),
            created_at: r.created_at,
        })
    }
}

pub async fn create_role(
    tx: &mut Tx,
    scope: &StoreScope,
    name: &str,
    permissions: PermissionSet,
    by: UserId,
) -> Result<CustomRole> {
    let role = CustomRole {
        id: RoleId::generate(),
        name: name.to_owned(),
        permissions,
        created_by: by,
        created_at: now(),
    };
    dispatch!(tx, c => sqlx::query(
        "INSERT INTO roles (store_id, id, name, permissions, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(scope.uuid())
    .bind(role.id.as_uuid())
    .bind(&role.name)
    .bind(permissions.to_list())
    .bind(by.as_uuid())
    .bind(role.created_at)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(role)
}

pub async fn list_roles(h: &mut impl Handle, scope: &StoreScope) -> Result<Vec<CustomRole>> {
    let rows: Vec<RoleRow> = dispatch!(h, c => sqlx::query_as(
        "SELECT id, name, permissions, created_by, created_at FROM roles WHERE store_id = $1 ORDER BY id",
    )
    .bind(scope.uuid())
    .fetch_all(&mut *c)
    .await?);
    rows.into_iter().map(CustomRole::try_from).collect()
}

pub async fn find_role(h: &mut impl Handle, scope: &StoreScope, id: RoleId) -> Result<Option<CustomRole>> {
    let row: Option<RoleRow> = dispatch!(h, c => sqlx::query_as(
        "SELECT id, name, permissions, created_by, created_at FROM roles WHERE store_id = $1 AND id = $2",
    )
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .fetch_optional(&mut *c)
    .await?);
    row.map(CustomRole::try_from).transpose()
}

/// A store-bound API token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: TokenId,
    pub name: String,
    pub scopes: PermissionSet,
    pub created_by: UserId,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

#[derive(FromRow)]
struct TokenRow {
    id: Uuid,
    name: String,
    scopes: String,
    created_by: Uuid,
    created_at: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
    last_used_at: Option<OffsetDateTime>,
}

impl TryFrom<TokenRow> for ApiToken {
    type Error = StoreError;

    fn try_from(r: TokenRow) -> Result<Self> {
        Ok(Self {
            scopes: PermissionSet::parse_list(&r.scopes)
                .map_err(|p| StoreError::Corrupt(format!("token {}: unknown scope {p}", r.id)))?,
            id: TokenId::from_uuid(r.id),
            name: r.name,
            created_by: UserId::from_uuid(r.created_by),
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
        })
    }
}

pub async fn create_token(
    tx: &mut Tx,
    scope: &StoreScope,
    name: &str,
    digest: &[u8],
    scopes: PermissionSet,
    by: UserId,
    expires_at: Option<OffsetDateTime>,
) -> Result<ApiToken> {
    let token = ApiToken {
        id: TokenId::generate(),
        name: name.to_owned(),
        scopes,
        created_by: by,
        created_at: now(),
        expires_at,
        last_used_at: None,
    };
    dispatch!(tx, c => sqlx::query(
        "INSERT INTO api_tokens (store_id, id, name, token_hash, scopes, created_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(scope.uuid())
    .bind(token.id.as_uuid())
    .bind(name)
    .bind(digest)
    .bind(scopes.to_list())
    .bind(by.as_uuid())
    .bind(token.created_at)
    .bind(expires_at)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(token)
}

/// A live token of `store` with this digest, with the scope it grants.
pub async fn find_live_token(
    h: &mut impl Handle,
    store: StoreId,
    digest: &[u8],
    at: OffsetDateTime,
) -> Result<Option<(StoreScope, ApiToken)>> {
    let row: Option<TokenRow> = dispatch!(h, c => sqlx::query_as(
        "SELECT id, name, scopes, created_by, created_at, expires_at, last_used_at FROM api_tokens \
         WHERE store_id = $1 AND token_hash = $2 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3)",
    )
    .bind(store.as_uuid())
    .bind(digest)
    .bind(at)
    .fetch_optional(&mut *c)
    .await?);
    row.map(|r| Ok((StoreScope::new(store), ApiToken::try_from(r)?)))
        .transpose()
}

pub async fn touch_token(tx: &mut Tx, scope: &StoreScope, id: TokenId, at: OffsetDateTime) -> Result<()> {
    dispatch!(tx, c => sqlx::query("UPDATE api_tokens SET last_used_at = $3 WHERE store_id = $1 AND id = $2")
        .bind(scope.uuid())
        .bind(id.as_uuid())
        .bind(at)
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(())
}

pub async fn list_tokens(h: &mut impl Handle, scope: &StoreScope) -> Result<Vec<ApiToken>> {
    let rows: Vec<TokenRow> = dispatch!(h, c => sqlx::query_as(
        "SELECT id, name, scopes, created_by, created_at, expires_at, last_used_at FROM api_tokens \
         WHERE store_id = $1 AND revoked_at IS NULL ORDER BY id",
    )
    .bind(scope.uuid())
    .fetch_all(&mut *c)
    .await?);
    rows.into_iter().map(ApiToken::try_from).collect()
}

pub async fn revoke_token(tx: &mut Tx, scope: &StoreScope, id: TokenId) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query(
        "UPDATE api_tokens SET revoked_at = $3 WHERE store_id = $1 AND id = $2 AND revoked_at IS NULL",
    )
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(n > 0)
}
