//! Checkout rules: discount arithmetic, code normalisation, order states. Amounts are
//! integer minor units; percentages round down (in the merchant's favour, never below 0).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Most units of one variant in one cart line.
pub const MAX_LINE_QUANTITY: i64 = 1000;
/// Most lines in one cart.
pub const MAX_CART_LINES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscountKind {
    /// `value` percent off the subtotal (1–100).
    Percent,
    /// `value` minor units off the subtotal, at most the subtotal.
    Fixed,
}

impl DiscountKind {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Percent => "percent",
            Self::Fixed => "fixed",
        }
    }
}

impl FromStr for DiscountKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "percent" => Ok(Self::Percent),
            "fixed" => Ok(Self::Fixed),
            _ => Err(()),
        }
    }
}

/// The discount on `subtotal`: never negative, never more than the subtotal.
#[must_use]
pub fn discount_amount(kind: DiscountKind, value: i64, subtotal: i64) -> i64 {
    let subtotal = subtotal.max(0);
    let off = match kind {
        DiscountKind::Percent => {
            i64::try_from(i128::from(subtotal) * i128::from(value.clamp(0, 100)) / 100).unwrap_or(subtotal)
        }
        DiscountKind::Fixed => value.max(0),
    };
    off.min(subtotal)
}

/// The case-insensitive key of a discount code; `None` when the code is not acceptable
/// (1–64 characters of letters, digits, `-` and `_`).
#[must_use]
pub fn code_key(code: &str) -> Option<String> {
    let code = code.trim();
    let valid = (1..=64).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then(|| code.to_ascii_lowercase())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    Fulfilled,
    Cancelled,
    Expired,
}

impl OrderStatus {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::Paid => "paid",
            Self::Fulfilled => "fulfilled",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    /// The legal moves of the order state machine.
    #[must_use]
    pub const fn can_become(self, next: Self) -> bool {
        matches!(
            (self, next),
            (Self::PendingPayment, Self::Paid | Self::Cancelled | Self::Expired) | (Self::Paid, Self::Fulfilled)
        )
    }
}

impl FromStr for OrderStatus {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::PendingPayment,
            Self::Paid,
            Self::Fulfilled,
            Self::Cancelled,
            Self::Expired,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or(())
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discounts_stay_within_the_subtotal_and_round_down() {
        assert_eq!(discount_amount(DiscountKind::Percent, 10, 4299), 429);
        assert_eq!(discount_amount(DiscountKind::Percent, 100, 4299), 4299);
        assert_eq!(discount_amount(DiscountKind::Fixed, 500, 4299), 500);
        assert_eq!(discount_amount(DiscountKind::Fixed, 5000, 4299), 4299);
        assert_eq!(discount_amount(DiscountKind::Percent, 33, 1), 0);
        assert_eq!(discount_amount(DiscountKind::Percent, 50, i64::MAX), i64::MAX / 2);
    }

    #[test]
    fn codes_are_case_insensitive_and_plain() {
        assert_eq!(code_key(" Summer-10 ").as_deref(), Some("summer-10"));
        assert_eq!(code_key(""), None);
        assert_eq!(code_key("sp ace"), None);
        assert_eq!(code_key("ünï"), None);
    }

    #[test]
    fn the_order_state_machine_refuses_impossible_moves() {
        use OrderStatus::*;
        assert!(PendingPayment.can_become(Paid));
        assert!(Paid.can_become(Fulfilled));
        assert!(!Paid.can_become(PendingPayment));
        assert!(!Cancelled.can_become(Paid));
        assert!(!Expired.can_become(Paid));
        assert!(!Fulfilled.can_become(Cancelled));
        assert_eq!("paid".parse(), Ok(Paid));
    }
}
