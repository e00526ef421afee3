//! Typed, prefixed identifiers (`prod_…`, `var_…`). The prefix tells a reader (and a
//! support engineer reading a log) what kind of object an id names, and the type
//! system stops a product id from being passed where a variant id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {expected} id")]
pub struct IdParseError {
    pub expected: &'static str,
}

macro_rules! prefixed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new, time-ordered (UUIDv7) id: pages sorted by id follow creation order.
            #[must_use]
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// Rebuilds an id read from storage.
            #[must_use]
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            #[must_use]
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, self.0.simple())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = IdParseError { expected: $prefix };
                let rest = s
                    .strip_prefix($prefix)
                    .and_then(|r| r.strip_prefix('_'))
                    .ok_or(err.clone())?;
                // Only the canonical 32-hex-digit form: one spelling per id.
                if rest.len() != 32 || !rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(err);
                }
                Uuid::try_parse(rest).map(Self).map_err(|_| err)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// An organization: the billing owner of one or more stores.
    OrgId, "org"
);
prefixed_id!(
    /// A store: the tenant boundary.
    StoreId, "str"
);
prefixed_id!(
    /// A platform user (merchant staff).
    UserId, "usr"
);
prefixed_id!(
    /// A login session.
    SessionId, "ses"
);
prefixed_id!(
    /// A catalog product.
    ProductId, "prod"
);
prefixed_id!(
    /// A purchasable variant of a product.
    VariantId, "var"
);
prefixed_id!(
    /// A product image.
    ImageId, "img"
);
prefixed_id!(
    /// One entry of the inventory movement ledger.
    MovementId, "mov"
);

prefixed_id!(
    /// A grant of a role or permission to a user in a store.
    GrantId, "grt"
);
prefixed_id!(
    /// A custom role of a store.
    RoleId, "rol"
);
prefixed_id!(
    /// A store-bound API token (the id, never the secret).
    TokenId, "tok"
);

prefixed_id!(
    /// A shopper's cart.
    CartId, "cart"
);
prefixed_id!(
    /// A line of a cart.
    CartLineId, "line"
);
prefixed_id!(
    /// An order.
    OrderId, "ord"
);
prefixed_id!(
    /// A customer of one store.
    CustomerId, "cus"
);
prefixed_id!(
    /// A discount code.
    DiscountId, "disc"
);
prefixed_id!(
    /// An alert raised by a monitoring rule.
    AlertId, "alrt"
);
prefixed_id!(
    /// A payment of an order through a provider.
    PaymentId, "pay"
);
prefixed_id!(
    /// A refund of (part of) a captured payment.
    RefundId, "rfd"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_prefixed_form() {
        let id = ProductId::generate();
        let text = id.to_string();
        assert!(text.starts_with("prod_"));
        assert_eq!(text.parse::<ProductId>(), Ok(id));
    }

    #[test]
    fn an_id_of_another_kind_or_spelling_is_refused() {
        let id = ProductId::generate().to_string();
        assert!(id.parse::<VariantId>().is_err());
        assert!(id.to_uppercase().parse::<ProductId>().is_err());
        assert!("prod_".parse::<ProductId>().is_err());
        assert!("prod_123".parse::<ProductId>().is_err());
        let hyphenated = format!("prod_{}", ProductId::generate().as_uuid().hyphenated());
        assert!(hyphenated.parse::<ProductId>().is_err());
    }
}
