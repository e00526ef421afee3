//! Subscription plans: what an organization may hold (stores, products per store, API
//! tokens per store) and how fast it may call the admin API (a multiplier on the
//! per-class request rates). Built-in defaults, each field overridable by a compact
//! `key=value` list (`stores=5,products=20000,tokens=20,rate=4`).

use std::fmt;
use std::str::FromStr;

/// The plan an organization is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum Plan {
    #[default]
    Free,
    Pro,
    Enterprise,
}

impl Plan {
    pub const ALL: [Self; 3] = [Self::Free, Self::Pro, Self::Enterprise];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Pro => "pro",
            Self::Enterprise => "enterprise",
        }
    }

    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Plan {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|p| p.as_str() == s).ok_or(())
    }
}

/// A countable thing a plan caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    Stores,
    ProductsPerStore,
    ApiTokensPerStore,
}

impl Quota {
    /// The metric label and problem wording.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Stores => "stores",
            Self::ProductsPerStore => "products_per_store",
            Self::ApiTokensPerStore => "api_tokens_per_store",
        }
    }

    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Stores => "stores per organization",
            Self::ProductsPerStore => "products per store",
            Self::ApiTokensPerStore => "live API tokens per store",
        }
    }
}

/// What one plan allows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanLimits {
    pub max_stores: u64,
    pub max_products_per_store: u64,
    /// Live (not revoked, not expired) tokens.
    pub max_api_tokens: u64,
    /// Multiplies every per-class request rate and burst for this plan's stores.
    pub rate_multiplier: f64,
}

impl PlanLimits {
    #[must_use]
    pub const fn max(&self, quota: Quota) -> u64 {
        match quota {
            Quota::Stores => self.max_stores,
            Quota::ProductsPerStore => self.max_products_per_store,
            Quota::ApiTokensPerStore => self.max_api_tokens,
        }
    }

    /// Applies `stores=…,products=…,tokens=…,rate=…` (any subset) on top of `self`.
    pub fn with_overrides(mut self, spec: &str) -> Result<Self, String> {
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not key=value"))?;
            let count = || {
                value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| format!("{key}: '{value}' is not a whole number"))
            };
            match key.trim() {
                "stores" => self.max_stores = count()?,
                "products" => self.max_products_per_store = count()?,
                "tokens" => self.max_api_tokens = count()?,
                "rate" => {
                    self.rate_multiplier = value
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|m| m.is_finite() && *m > 0.0 && *m <= 10_000.0)
                        .ok_or_else(|| format!("rate: '{value}' is not a multiplier in (0, 10000]"))?;
                }
                other => {
                    return Err(format!(
                        "unknown plan setting '{other}' (stores, products, tokens, rate)"
                    ));
                }
            }
        }
        Ok(self)
    }
}

/// The limits of every plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanTable([PlanLimits; 3]);

impl Default for PlanTable {
    fn default() -> Self {
        Self([
            PlanLimits {
                max_stores: 3,
                max_products_per_store: 1_000,
                max_api_tokens: 10,
                rate_multiplier: 1.0,
            },
            PlanLimits {
                max_stores: 20,
                max_products_per_store: 50_000,
                max_api_tokens: 50,
                rate_multiplier: 5.0,
            },
            PlanLimits {
                max_stores: 1_000,
                max_products_per_store: 1_000_000,
                max_api_tokens: 500,
                rate_multiplier: 20.0,
            },
        ])
    }
}

impl PlanTable {
    /// No quota at all (benchmarks and tools that generate large data sets).
    #[must_use]
    pub fn unlimited() -> Self {
        let all = PlanLimits {
            max_stores: u64::MAX,
            max_products_per_store: u64::MAX,
            max_api_tokens: u64::MAX,
            rate_multiplier: 1.0,
        };
        Self([all; 3])
    }

    #[must_use]
    pub const fn get(&self, plan: Plan) -> &PlanLimits {
        &self.0[plan.index()]
    }

    pub fn set(&mut self, plan: Plan, limits: PlanLimits) {
        self.0[plan.index()] = limits;
    }

    /// Overrides one plan's settings from a `key=value` list.
    pub fn override_plan(&mut self, plan: Plan, spec: &str) -> Result<(), String> {
        let limits = self
            .get(plan)
            .with_overrides(spec)
            .map_err(|e| format!("plan {plan}: {e}"))?;
        self.set(plan, limits);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parse_by_name_only() {
        assert_eq!("pro".parse(), Ok(Plan::Pro));
        assert_eq!("Pro".parse::<Plan>(), Err(()));
        assert_eq!("gold".parse::<Plan>(), Err(()));
    }

    #[test]
    fn overrides_change_only_the_named_settings() {
        let mut table = PlanTable::default();
        let before = *table.get(Plan::Pro);
        table
            .override_plan(Plan::Pro, "stores=7, rate=2.5")
            .unwrap_or_else(|e| panic!("{e}"));
        let after = table.get(Plan::Pro);
        assert_eq!(after.max_stores, 7);
        assert!((after.rate_multiplier - 2.5).abs() < f64::EPSILON);
        assert_eq!(after.max_products_per_store, before.max_products_per_store);
        assert_eq!(table.get(Plan::Free), PlanTable::default().get(Plan::Free));
    }

    #[test]
    fn bad_overrides_name_the_setting() {
        let mut table = PlanTable::default();
        for (spec, needle) in [
            ("stores=-1", "stores"),
            ("rate=0", "rate"),
            ("colour=red", "colour"),
            ("stores", "key=value"),
        ] {
            let error = table.override_plan(Plan::Free, spec).err().unwrap_or_default();
            assert!(error.contains(needle), "{spec}: {error}");
        }
        assert_eq!(table, PlanTable::default(), "a refused override changes nothing");
    }
}
