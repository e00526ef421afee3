//! Permissions are strings in the API and an enum in code. For now a store has one role,
//! `owner`, holding every store permission; grants and custom roles plug in here later.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    StoreRead,
    CatalogRead,
    CatalogWrite,
    InventoryRead,
    InventoryWrite,
    OrdersRead,
    OrdersWrite,
    OrdersRefund,
    DiscountsWrite,
    PaymentsManage,
    AccessRead,
    AccessGrant,
    TokensWrite,
    AuditRead,
}

impl Permission {
    pub const ALL: [Self; 14] = [
        Self::StoreRead,
        Self::CatalogRead,
        Self::CatalogWrite,
        Self::InventoryRead,
        Self::InventoryWrite,
        Self::OrdersRead,
        Self::OrdersWrite,
        Self::OrdersRefund,
        Self::DiscountsWrite,
        Self::PaymentsManage,
        Self::AccessRead,
        Self::AccessGrant,
        Self::TokensWrite,
        Self::AuditRead,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::StoreRead => "store:read",
            Self::CatalogRead => "catalog:read",
            Self::CatalogWrite => "catalog:write",
            Self::InventoryRead => "inventory:read",
            Self::InventoryWrite => "inventory:write",
            Self::OrdersRead => "orders:read",
            Self::OrdersWrite => "orders:write",
            Self::OrdersRefund => "orders:refund",
            Self::DiscountsWrite => "discounts:write",
            Self::PaymentsManage => "payments:manage",
            Self::AccessRead => "access:read",
            Self::AccessGrant => "access:grant",
            Self::TokensWrite => "tokens:write",
            Self::AuditRead => "audit:read",
        }
    }

    const fn bit(self) -> u32 {
        1 << self as u32
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|p| p.as_str() == s).ok_or(())
    }
}

/// A set of store permissions; a bit set because it is checked on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PermissionSet(u32);

impl PermissionSet {
    #[must_use]
    pub fn all() -> Self {
        Permission::ALL.into_iter().collect()
    }

    #[must_use]
    pub const fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |p| self.contains(*p))
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |bits, p| bits | p.bit()))
    }
}

/// The built-in roles every store has. Custom roles (named permission sets) are rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, and the only role that may grant `owner`.
    Owner,
    /// Everything in the store, including access and tokens.
    Admin,
    /// Day-to-day work on catalog, stock and orders.
    Staff,
    /// Read-only.
    Viewer,
}

impl Role {
    pub const ALL: [Self; 4] = [Self::Owner, Self::Admin, Self::Staff, Self::Viewer];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Staff => "staff",
            Self::Viewer => "viewer",
        }
    }

    #[must_use]
    pub fn permissions(self) -> PermissionSet {
        use Permission as P;
        match self {
            Self::Owner | Self::Admin => PermissionSet::all(),
            Self::Staff => [
                P::StoreRead,
                P::CatalogRead,
                P::CatalogWrite,
                P::InventoryRead,
                P::InventoryWrite,
                P::OrdersRead,
                P::OrdersWrite,
            ]
            .into_iter()
            .collect(),
            Self::Viewer => [P::StoreRead, P::CatalogRead, P::InventoryRead, P::OrdersRead]
                .into_iter()
                .collect(),
        }
    }
}

impl FromStr for Role {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or(())
    }
}

impl PermissionSet {
    /// Parses a comma-separated list as stored; unknown names are an error.
    pub fn parse_list(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<Permission>().map_err(|()| p.to_owned()))
            .collect()
    }

    #[must_use]
    pub fn to_list(self) -> String {
        self.iter().map(Permission::as_str).collect::<Vec<_>>().join(",")
    }

    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    #[must_use]
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    #[must_use]
    pub const fn is_subset_of(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_strings_round_trip() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse(), Ok(p));
        }
    }

    #[test]
    fn roles_nest_and_lists_round_trip() {
        assert!(Role::Viewer.permissions().is_subset_of(Role::Staff.permissions()));
        assert!(Role::Staff.permissions().is_subset_of(Role::Admin.permissions()));
        assert!(!Role::Staff.permissions().contains(Permission::AccessGrant));
        let staff = Role::Staff.permissions();
        assert_eq!(PermissionSet::parse_list(&staff.to_list()), Ok(staff));
        assert_eq!(PermissionSet::parse_list("catalog:read, nope"), Err("nope".to_owned()));
    }

    #[test]
    fn owner_holds_every_store_permission() {
        assert_eq!(Role::Owner.permissions().iter().count(), Permission::ALL.len());
        let only_read: PermissionSet = [Permission::CatalogRead].into_iter().collect();
        assert!(only_read.contains(Permission::CatalogRead));
        assert!(!only_read.contains(Permission::CatalogWrite));
    }
}
