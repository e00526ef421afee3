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
    AccessRead,
    AccessGrant,
    TokensWrite,
    AuditRead,
}

impl Permission {
    pub const ALL: [Self; 13] = [
        Self::StoreRead,
        Self::CatalogRead,
        Self::CatalogWrite,
        Self::InventoryRead,
        Self::InventoryWrite,
        Self::OrdersRead,
        Self::OrdersWrite,
        Self::OrdersRefund,
        Self::DiscountsWrite,
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

/// A member's role in a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
}

impl Role {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
        }
    }

    #[must_use]
    pub fn permissions(self) -> PermissionSet {
        match self {
            Self::Owner => PermissionSet::all(),
        }
    }
}

impl FromStr for Role {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Self::Owner),
            _ => Err(()),
        }
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
    fn owner_holds_every_store_permission() {
        assert_eq!(Role::Owner.permissions().iter().count(), Permission::ALL.len());
        let only_read: PermissionSet = [Permission::CatalogRead].into_iter().collect();
        assert!(only_read.contains(Permission::CatalogRead));
        assert!(!only_read.contains(Permission::CatalogWrite));
    }
}
