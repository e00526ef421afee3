use std::fmt;

/// The named constraints the application reacts to. Each is declared with this name in
/// both migration trees; SQLite reports unique violations by column list instead of
/// name, so [`Constraint::from_sqlite_message`] maps those back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constraint {
    UserEmail,
    StoreHandle,
    ProductHandle,
    VariantOptions,
    VariantSku,
    ImageSrc,
    InventoryOnHandNonNegative,
    InventoryReservedWithinOnHand,
    RoleName,
}

const NAMES: &[(Constraint, &str, &str)] = &[
    (Constraint::UserEmail, "users_email_key", "users.email"),
    (Constraint::StoreHandle, "stores_handle_key", "stores.handle"),
    (
        Constraint::ProductHandle,
        "products_handle_key",
        "products.store_id, products.handle",
    ),
    (
        Constraint::VariantOptions,
        "variants_options_key",
        "variants.store_id, variants.product_id, variants.option1, variants.option2, variants.option3",
    ),
    (
        Constraint::VariantSku,
        "variants_sku_key",
        "variants.store_id, variants.sku",
    ),
    (
        Constraint::ImageSrc,
        "product_images_src_key",
        "product_images.store_id, product_images.product_id, product_images.src",
    ),
    (
        Constraint::InventoryOnHandNonNegative,
        "inventory_on_hand_nonnegative",
        "",
    ),
    (
        Constraint::InventoryReservedWithinOnHand,
        "inventory_reserved_within_on_hand",
        "",
    ),
];

impl Constraint {
    #[must_use]
    pub fn name(self) -> &'static str {
        NAMES.iter().find(|(c, ..)| *c == self).map_or("", |(_, name, _)| name)
    }

    fn from_name(name: &str) -> Option<Self> {
        NAMES.iter().find(|(_, n, _)| *n == name).map(|(c, ..)| *c)
    }

    /// "UNIQUE constraint failed: products.store_id, products.handle" or
    /// "CHECK constraint failed: inventory_on_hand_nonnegative".
    fn from_sqlite_message(message: &str) -> Option<Self> {
        let detail = message.split_once(" constraint failed: ")?.1.trim();
        Self::from_name(detail).or_else(|| NAMES.iter().find(|(.., cols)| *cols == detail).map(|(c, ..)| *c))
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint {0} violated")]
    Conflict(Constraint),
    #[error("check constraint {0} violated")]
    Check(Constraint),
    #[error("unsupported database URL scheme '{scheme}': use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl { scheme: String },
    #[error("cannot open the database at {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("stored value cannot be read: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub(crate) fn connect(target: String, error: Self) -> Self {
        let reason = match error {
            Self::Database(sqlx::Error::PoolTimedOut) => {
                "no connection could be made in time (is the server running?)".to_owned()
            }
            Self::Database(sqlx::Error::Io(e)) => e.to_string(),
            Self::Database(sqlx::Error::Database(e)) => e.message().to_owned(),
            other => other.to_string(),
        };
        Self::Connect { target, reason }
    }

    /// True for errors worth one more try: serialization failures and deadlocks
    /// (PostgreSQL) or a lock held past the busy timeout (SQLite).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("40001" | "40P01" | "5" | "6" | "517"))
            }
            Self::Database(sqlx::Error::PoolTimedOut) => true,
            _ => false,
        }
    }
}

/// The single place where driver errors become domain-meaningful errors.
impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error {
            let constraint = db
                .constraint()
                .and_then(Constraint::from_name)
                .or_else(|| Constraint::from_sqlite_message(db.message()));
            if let Some(constraint) = constraint {
                match db.kind() {
                    sqlx::error::ErrorKind::UniqueViolation => return Self::Conflict(constraint),
                    sqlx::error::ErrorKind::CheckViolation => return Self::Check(constraint),
                    _ => {}
                }
            }
        }
        Self::Database(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_messages_map_to_the_named_constraints() {
        assert_eq!(
            Constraint::from_sqlite_message("UNIQUE constraint failed: products.store_id, products.handle"),
            Some(Constraint::ProductHandle)
        );
        assert_eq!(
            Constraint::from_sqlite_message("CHECK constraint failed: inventory_on_hand_nonnegative"),
            Some(Constraint::InventoryOnHandNonNegative)
        );
        assert_eq!(Constraint::from_sqlite_message("UNIQUE constraint failed: x.y"), None);
    }
}
