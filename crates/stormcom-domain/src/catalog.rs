//! Catalog rules shared by the API and the importer, so both accept exactly the same data.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::money::MAX_AMOUNT;
use crate::validation::ValidationErrors;

pub const MAX_HANDLE_LEN: usize = 255;
pub const MAX_TITLE_LEN: usize = 255;
pub const MAX_TEXT_LEN: usize = 65_535;
pub const MAX_SHORT_TEXT_LEN: usize = 255;
pub const MAX_TAGS: usize = 250;
/// Largest on-hand quantity of one variant; keeps sums far from overflow.
pub const MAX_QUANTITY: i64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    #[default]
    Active,
    Draft,
    Archived,
}

impl ProductStatus {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Draft => "draft",
            Self::Archived => "archived",
        }
    }
}

impl FromStr for ProductStatus {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "active" => Ok(Self::Active),
            "draft" => Ok(Self::Draft),
            "archived" => Ok(Self::Archived),
            _ => Err(()),
        }
    }
}

impl fmt::Display for ProductStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens when a variant is out of stock: refuse the sale (`deny`, the default)
/// or accept a backorder (`continue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InventoryPolicy {
    #[default]
    Deny,
    Continue,
}

impl InventoryPolicy {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Continue => "continue",
        }
    }
}

impl FromStr for InventoryPolicy {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "deny" => Ok(Self::Deny),
            "continue" => Ok(Self::Continue),
            _ => Err(()),
        }
    }
}

/// A product handle: the URL-safe name unique within a store (`classic-varsity-top`).
pub fn check_handle(errors: &mut ValidationErrors, field: &str, handle: &str) {
    let valid_chars = handle
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if handle.is_empty() || handle.len() > MAX_HANDLE_LEN {
        errors.add(
            field,
            "invalid_handle",
            format!("must be 1 to {MAX_HANDLE_LEN} characters"),
        );
    } else if !valid_chars || handle.starts_with('-') || handle.ends_with('-') {
        errors.add(
            field,
            "invalid_handle",
            "may contain only lowercase letters, digits, '-' and '_', and may not start or end with '-'",
        );
    }
}

pub fn check_title(errors: &mut ValidationErrors, field: &str, title: &str) {
    if title.trim().is_empty() {
        errors.add(field, "required", "must not be blank");
    } else if title.chars().count() > MAX_TITLE_LEN {
        errors.add(field, "too_long", format!("must be at most {MAX_TITLE_LEN} characters"));
    }
}

pub fn check_text(errors: &mut ValidationErrors, field: &str, text: &str, max: usize) {
    if text.len() > max {
        errors.add(field, "too_long", format!("must be at most {max} bytes"));
    }
}

pub fn check_amount(errors: &mut ValidationErrors, field: &str, amount: i64) {
    if amount < 0 {
        errors.add(field, "negative", "must not be negative");
    } else if amount > MAX_AMOUNT {
        errors.add(field, "too_large", format!("must be at most {MAX_AMOUNT} minor units"));
    }
}

pub fn check_quantity(errors: &mut ValidationErrors, field: &str, quantity: i64) {
    if quantity < 0 {
        errors.add(field, "negative", "must not be negative");
    } else if quantity > MAX_QUANTITY {
        errors.add(field, "too_large", format!("must be at most {MAX_QUANTITY}"));
    }
}

pub fn check_tags(errors: &mut ValidationErrors, field: &str, tags: &[String]) {
    if tags.len() > MAX_TAGS {
        errors.add(field, "too_many", format!("at most {MAX_TAGS} tags"));
    }
    if tags
        .iter()
        .any(|t| t.trim().is_empty() || t.len() > MAX_SHORT_TEXT_LEN || t.contains(','))
    {
        errors.add(
            field,
            "invalid_tag",
            "tags must be non-blank, at most 255 bytes, without commas",
        );
    }
}

/// Splits Shopify's comma-separated tag list, trimming blanks and duplicates.
#[must_use]
pub fn split_tags(text: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for tag in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_owned());
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_url_safe() {
        for good in ["classic-varsity-top", "a", "pot_2"] {
            let mut e = ValidationErrors::default();
            check_handle(&mut e, "handle", good);
            assert!(e.0.is_empty(), "{good}");
        }
        for bad in ["", "Has Caps", "-lead", "trail-", "sp ace", "ünï", "a/b"] {
            let mut e = ValidationErrors::default();
            check_handle(&mut e, "handle", bad);
            assert_eq!(e.0.len(), 1, "{bad}");
        }
    }

    #[test]
    fn tags_split_like_shopify() {
        assert_eq!(split_tags(" Pot,  Plants ,Pot,,"), vec!["Pot", "Plants"]);
    }
}
