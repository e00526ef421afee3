use stormcom_domain::shopify::FileError;
use stormcom_domain::{Permission, Plan, Quota, ValidationErrors};
use stormcom_store::{Constraint, StoreError};

/// Everything a use case can refuse, each with a stable code for the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Missing, or belonging to another store: the two are indistinguishable by design.
    #[error("not found")]
    NotFound,
    #[error("validation failed")]
    Validation(ValidationErrors),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("not enough stock: {available} available")]
    InsufficientStock { available: i64 },
    #[error("authentication required")]
    Unauthenticated,
    /// Wrong password and unknown email alike.
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("missing permission {0}")]
    Forbidden(Permission),
    /// Refused by an access rule other than a missing permission (own grants, owner-only…).
    #[error("{0}")]
    Refused(&'static str),
    /// The action is critical and the session has not proved a second factor recently.
    #[error("a recent second-factor step-up is required")]
    StepUpRequired,
    /// The account has TOTP enabled and the login carried no code.
    #[error("a second factor is required")]
    MfaRequired,
    #[error("the second-factor code is wrong or was already used")]
    InvalidMfaCode,
    #[error("the import file cannot be read: {0}")]
    ImportFile(#[from] FileError),
    /// A request the server will not act on, with a stable code (HTTP 400).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Well-formed but refused on its merits (HTTP 422).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// Too many failed attempts of this account or from this address: not evaluated.
    /// The same for every email, known or not.
    #[error("too many failed attempts; retry in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u32 },
    /// The organization's plan does not allow one more of something.
    #[error("the {plan} plan allows at most {limit} {}", quota.describe())]
    QuotaExceeded { quota: Quota, plan: Plan, limit: u64 },
    /// Busy database or similar; worth a retry.
    #[error("temporarily unavailable")]
    Unavailable,
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub(crate) fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self::Validation(ValidationErrors::single(field, code, message))
    }
}

impl From<ValidationErrors> for AppError {
    fn from(errors: ValidationErrors) -> Self {
        Self::Validation(errors)
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        let conflict = |code, message: &str| Self::Conflict {
            code,
            message: message.to_owned(),
        };
        match error {
            StoreError::Conflict(Constraint::ProductHandle) => {
                conflict("handle_taken", "another product of this store has this handle")
            }
            StoreError::Conflict(Constraint::StoreHandle) => conflict("handle_taken", "another store has this handle"),
            StoreError::Conflict(Constraint::VariantSku) => {
                conflict("sku_taken", "another variant of this store has this SKU")
            }
            StoreError::Conflict(Constraint::VariantOptions) => conflict(
                "variant_exists",
                "this product already has a variant with these option values",
            ),
            StoreError::Conflict(Constraint::UserEmail) => conflict("email_taken", "a user with this email exists"),
            StoreError::Conflict(Constraint::ImageSrc) => {
                conflict("image_exists", "the product already has this image")
            }
            StoreError::Check(Constraint::InventoryOnHandNonNegative | Constraint::InventoryReservedWithinOnHand) => {
                Self::InsufficientStock { available: 0 }
            }
            e if e.is_transient() => Self::Unavailable,
            e => Self::Internal(e.to_string()),
        }
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::Internal(error.to_string())
    }
}
