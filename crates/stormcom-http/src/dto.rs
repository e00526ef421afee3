//! Request and response bodies. Requests refuse unknown fields; responses show money as
//! integer minor units beside the ISO 4217 currency, and times as RFC 3339 UTC.

use serde::{Deserialize, Deserializer, Serialize};
use stormcom_app::catalog::{NewProduct, NewVariant, ProductPatch, ProductView, VariantPatch};
use stormcom_app::import::ImportSummary;
use stormcom_app::store::catalog::{Image, Variant};
use stormcom_app::store::inventory::{Level, Movement};
use stormcom_domain::catalog::{InventoryPolicy, ProductStatus};
use stormcom_domain::redact::{Pii, Secret};
use stormcom_domain::{Currency, ValidationErrors, VariantId};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::problem::{ApiError, ApiResult};

/// Distinguishes a field set to `null` (`Some(None)`) from a missing one (`None`).
fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn to_array(field: &str, values: Vec<String>) -> ApiResult<[String; 3]> {
    if values.len() > 3 {
        return Err(stormcom_app::AppError::Validation(ValidationErrors::single(
            field,
            "too_many",
            "at most 3 options",
        ))
        .into());
    }
    let mut array: [String; 3] = Default::default();
    for (slot, value) in array.iter_mut().zip(values) {
        *slot = value;
    }
    Ok(array)
}

fn from_array(values: &[String; 3]) -> Vec<String> {
    let used = values.iter().rposition(|v| !v.is_empty()).map_or(0, |i| i + 1);
    values[..used].to_vec()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(value_type = String)]
    pub email: Pii<String>,
    #[schema(value_type = String)]
    pub password: Secret<String>,
    /// The current TOTP code, when the account has TOTP enabled.
    #[schema(value_type = Option<String>)]
    pub totp_code: Option<Secret<String>>,
    /// A single-use recovery code instead of the TOTP code.
    #[schema(value_type = Option<String>)]
    pub recovery_code: Option<Secret<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Shown once; send it as `Authorization: Bearer <token>`.
    pub token: String,
    pub token_type: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[schema(value_type = String)]
    pub user_id: stormcom_domain::UserId,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreDto {
    #[schema(value_type = String)]
    pub id: stormcom_domain::StoreId,
    pub name: String,
    pub handle: String,
    pub currency: String,
    /// Built-in roles the caller holds in this store.
    pub roles: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreList {
    pub data: Vec<StoreDto>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// 1 to 100, default 20.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub after: Option<String>,
}

impl PageQuery {
    /// The cursor as an id; a cursor that is not one of ours is a client error.
    pub fn cursor<T: std::str::FromStr>(&self) -> ApiResult<Option<T>> {
        self.after
            .as_deref()
            .map(|a| {
                a.parse().map_err(|_| {
                    ApiError::bad_request("invalid_cursor", "'after' is not a cursor returned by this list")
                })
            })
            .transpose()
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProductRequest {
    pub handle: String,
    pub title: String,
    #[serde(default)]
    pub description_html: String,
    #[serde(default)]
    pub vendor: String,
    #[serde(default)]
    pub product_type: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Up to three option names, e.g. `["Size", "Color"]`.
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default)]
    #[schema(value_type = String, example = "active")]
    pub status: ProductStatus,
    #[serde(default)]
    pub published: bool,
    #[serde(default)]
    pub variants: Vec<CreateVariantRequest>,
}

impl CreateProductRequest {
    pub fn into_new(self) -> ApiResult<NewProduct> {
        Ok(NewProduct {
            handle: self.handle,
            title: self.title,
            description_html: self.description_html,
            vendor: self.vendor,
            product_type: self.product_type,
            tags: self.tags,
            option_names: to_array("options", self.options)?,
            status: self.status,
            published: self.published,
            variants: self
                .variants
                .into_iter()
                .map(CreateVariantRequest::into_new)
                .collect::<ApiResult<_>>()?,
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProductRequest {
    pub handle: Option<String>,
    pub title: Option<String>,
    pub description_html: Option<String>,
    pub vendor: Option<String>,
    pub product_type: Option<String>,
    pub tags: Option<Vec<String>>,
    pub options: Option<Vec<String>>,
    #[schema(value_type = Option<String>)]
    pub status: Option<ProductStatus>,
    pub published: Option<bool>,
}

impl UpdateProductRequest {
    pub fn into_patch(self) -> ApiResult<ProductPatch> {
        Ok(ProductPatch {
            handle: self.handle,
            title: self.title,
            description_html: self.description_html,
            vendor: self.vendor,
            product_type: self.product_type,
            tags: self.tags,
            option_names: self.options.map(|o| to_array("options", o)).transpose()?,
            status: self.status,
            published: self.published,
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVariantRequest {
    pub sku: Option<String>,
    /// Values for the product's options, in order, e.g. `["Small"]`.
    #[serde(default)]
    pub options: Vec<String>,
    /// Minor units of the store currency (4299 is 42.99 USD).
    pub price: i64,
    pub compare_at_price: Option<i64>,
    #[serde(default)]
    pub grams: i64,
    #[serde(default)]
    #[schema(value_type = String, example = "deny")]
    pub inventory_policy: InventoryPolicy,
    /// Initial on-hand stock (needs `inventory:write`).
    #[serde(default)]
    pub inventory_quantity: i64,
}

impl CreateVariantRequest {
    pub fn into_new(self) -> ApiResult<NewVariant> {
        Ok(NewVariant {
            sku: self.sku,
            options: to_array("options", self.options)?,
            price: self.price,
            compare_at_price: self.compare_at_price,
            grams: self.grams,
            inventory_policy: self.inventory_policy,
            inventory_quantity: self.inventory_quantity,
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateVariantRequest {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub sku: Option<Option<String>>,
    pub options: Option<Vec<String>>,
    pub price: Option<i64>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub compare_at_price: Option<Option<i64>>,
    pub grams: Option<i64>,
    #[schema(value_type = Option<String>)]
    pub inventory_policy: Option<InventoryPolicy>,
}

impl UpdateVariantRequest {
    pub fn into_patch(self) -> ApiResult<VariantPatch> {
        Ok(VariantPatch {
            sku: self.sku,
            options: self.options.map(|o| to_array("options", o)).transpose()?,
            price: self.price,
            compare_at_price: self.compare_at_price,
            grams: self.grams,
            inventory_policy: self.inventory_policy,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InventoryDto {
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VariantDto {
    #[schema(value_type = String)]
    pub id: VariantId,
    #[schema(value_type = String)]
    pub product_id: stormcom_domain::ProductId,
    /// The option values joined with " / ", e.g. "Small".
    pub title: String,
    pub sku: Option<String>,
    pub options: Vec<String>,
    pub price: i64,
    pub compare_at_price: Option<i64>,
    #[schema(value_type = String)]
    pub currency: Currency,
    pub grams: i64,
    #[schema(value_type = String)]
    pub inventory_policy: InventoryPolicy,
    pub inventory: InventoryDto,
    pub position: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

fn variant_title(options: &[String; 3]) -> String {
    from_array(options).join(" / ")
}

impl VariantDto {
    pub fn new(v: Variant, currency: Currency) -> Self {
        Self {
            id: v.id,
            product_id: v.product_id,
            title: variant_title(&v.fields.options),
            options: from_array(&v.fields.options),
            sku: v.fields.sku,
            price: v.fields.price,
            compare_at_price: v.fields.compare_at_price,
            currency,
            grams: v.fields.grams,
            inventory_policy: v.fields.inventory_policy,
            inventory: InventoryDto {
                on_hand: v.on_hand,
                reserved: v.reserved,
                available: v.on_hand - v.reserved,
            },
            position: v.position,
            created_at: v.created_at,
            updated_at: v.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImageDto {
    #[schema(value_type = String)]
    pub id: stormcom_domain::ImageId,
    pub src: String,
    pub position: i64,
    pub alt_text: String,
}

impl From<Image> for ImageDto {
    fn from(i: Image) -> Self {
        Self {
            id: i.id,
            src: i.src,
            position: i.position,
            alt_text: i.alt_text,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductDto {
    #[schema(value_type = String)]
    pub id: stormcom_domain::ProductId,
    pub handle: String,
    pub title: String,
    pub description_html: String,
    pub vendor: String,
    pub product_type: String,
    pub tags: Vec<String>,
    pub options: Vec<String>,
    #[schema(value_type = String)]
    pub status: ProductStatus,
    pub published: bool,
    pub variants: Vec<VariantDto>,
    pub images: Vec<ImageDto>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl ProductDto {
    pub fn new(view: ProductView, currency: Currency) -> Self {
        let p = view.product;
        Self {
            id: p.id,
            options: from_array(&p.fields.option_names),
            handle: p.fields.handle,
            title: p.fields.title,
            description_html: p.fields.description_html,
            vendor: p.fields.vendor,
            product_type: p.fields.product_type,
            tags: p.fields.tags,
            status: p.fields.status,
            published: p.fields.published,
            variants: view
                .variants
                .into_iter()
                .map(|v| VariantDto::new(v, currency))
                .collect(),
            images: view.images.into_iter().map(ImageDto::from).collect(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductPage {
    pub data: Vec<ProductDto>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VariantList {
    pub data: Vec<VariantDto>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    /// Units to add (negative to remove).
    pub delta: i64,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InventoryLevelDto {
    #[schema(value_type = String)]
    pub variant_id: VariantId,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The ledger entry that made this change (adjustments only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub movement_id: Option<stormcom_domain::MovementId>,
}

impl InventoryLevelDto {
    pub fn new(variant_id: VariantId, level: Level, movement_id: Option<stormcom_domain::MovementId>) -> Self {
        Self {
            variant_id,
            on_hand: level.on_hand,
            reserved: level.reserved,
            available: level.available(),
            updated_at: level.updated_at,
            movement_id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MovementDto {
    #[schema(value_type = String)]
    pub id: stormcom_domain::MovementId,
    pub kind: String,
    pub delta: i64,
    pub on_hand_after: i64,
    pub reason: String,
    /// The user id (or `operator`) that made the change.
    pub actor: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<Movement> for MovementDto {
    fn from(m: Movement) -> Self {
        Self {
            id: m.id,
            kind: m.kind,
            delta: m.delta,
            on_hand_after: m.on_hand_after,
            reason: m.reason,
            actor: m.actor,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MovementPage {
    pub data: Vec<MovementDto>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedRow {
    pub line: u64,
    pub handle: Option<String>,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportSummaryDto {
    pub products_created: u64,
    pub products_updated: u64,
    pub products_unchanged: u64,
    pub variants_created: u64,
    pub variants_updated: u64,
    pub variants_unchanged: u64,
    pub images_created: u64,
    pub images_updated: u64,
    pub images_unchanged: u64,
    pub products_rejected: u64,
    pub rows_rejected: Vec<RejectedRow>,
}

impl From<ImportSummary> for ImportSummaryDto {
    fn from(s: ImportSummary) -> Self {
        Self {
            products_created: s.products_created,
            products_updated: s.products_updated,
            products_unchanged: s.products_unchanged,
            variants_created: s.variants_created,
            variants_updated: s.variants_updated,
            variants_unchanged: s.variants_unchanged,
            images_created: s.images_created,
            images_updated: s.images_updated,
            images_unchanged: s.images_unchanged,
            products_rejected: s.products_rejected,
            rows_rejected: s
                .rows_rejected
                .into_iter()
                .map(|r| RejectedRow {
                    line: r.line,
                    handle: r.handle,
                    reason: r.reason,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StorefrontVariant {
    #[schema(value_type = String)]
    pub id: VariantId,
    pub title: String,
    pub options: Vec<String>,
    pub sku: Option<String>,
    pub price: i64,
    pub compare_at_price: Option<i64>,
    #[schema(value_type = String)]
    pub currency: Currency,
    pub available_for_sale: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StorefrontImage {
    pub src: String,
    pub position: i64,
    pub alt_text: String,
}

/// What shoppers see: no stock counts, no drafts, no internal timestamps.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorefrontProduct {
    #[schema(value_type = String)]
    pub id: stormcom_domain::ProductId,
    pub handle: String,
    pub title: String,
    pub description_html: String,
    pub vendor: String,
    pub product_type: String,
    pub tags: Vec<String>,
    pub options: Vec<String>,
    pub variants: Vec<StorefrontVariant>,
    pub images: Vec<StorefrontImage>,
}

impl StorefrontProduct {
    pub fn new(view: ProductView, currency: Currency) -> Self {
        let p = view.product;
        Self {
            id: p.id,
            options: from_array(&p.fields.option_names),
            handle: p.fields.handle,
            title: p.fields.title,
            description_html: p.fields.description_html,
            vendor: p.fields.vendor,
            product_type: p.fields.product_type,
            tags: p.fields.tags,
            variants: view
                .variants
                .into_iter()
                .map(|v| StorefrontVariant {
                    available_for_sale: v.available_for_sale(),
                    id: v.id,
                    title: variant_title(&v.fields.options),
                    options: from_array(&v.fields.options),
                    sku: v.fields.sku,
                    price: v.fields.price,
                    compare_at_price: v.fields.compare_at_price,
                    currency,
                })
                .collect(),
            images: view
                .images
                .into_iter()
                .map(|i| StorefrontImage {
                    src: i.src,
                    position: i.position,
                    alt_text: i.alt_text,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StorefrontProductPage {
    pub data: Vec<StorefrontProduct>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepUpRequest {
    pub code: Option<String>,
    pub recovery_code: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepUpResponse {
    /// Critical actions are allowed until this time.
    #[serde(with = "time::serde::rfc3339")]
    pub valid_until: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrollment {
    /// Base32 secret, for typing into an authenticator app. Shown once.
    pub secret: String,
    pub otpauth_uri: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirmRequest {
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten single-use codes. Shown once; only their hashes are kept.
    pub recovery_codes: Vec<String>,
}

fn parse_permissions(field: &str, names: &[String]) -> ApiResult<stormcom_domain::PermissionSet> {
    let mut errors = ValidationErrors::default();
    let mut set = Vec::new();
    for name in names {
        match name.parse::<stormcom_domain::Permission>() {
            Ok(p) => set.push(p),
            Err(()) => errors.add(
                field,
                "unknown_permission",
                format!("'{}' is not a permission", name.chars().take(64).collect::<String>()),
            ),
        }
    }
    errors
        .finish()
        .map_err(|e| ApiError::from(stormcom_app::AppError::Validation(e)))?;
    Ok(set.into_iter().collect())
}

fn permission_names(set: stormcom_domain::PermissionSet) -> Vec<String> {
    set.iter().map(|p| p.as_str().to_owned()).collect()
}

/// Exactly one of `role`, `role_id`, `permission`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGrantRequest {
    #[schema(value_type = String)]
    pub user_email: Pii<String>,
    /// A built-in role: owner, admin, staff or viewer.
    pub role: Option<String>,
    /// A custom role of this store.
    pub role_id: Option<String>,
    /// A single permission, e.g. `catalog:write`.
    pub permission: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl CreateGrantRequest {
    pub fn into_new(self) -> ApiResult<stormcom_app::grants::NewGrant> {
        use stormcom_app::grants::Requested;
        let invalid = |m: &str| {
            ApiError::from(stormcom_app::AppError::Validation(ValidationErrors::single(
                "role",
                "invalid_subject",
                m,
            )))
        };
        let subject = match (self.role, self.role_id, self.permission) {
            (Some(role), None, None) => Requested::Role(
                role.parse()
                    .map_err(|()| invalid("role must be owner, admin, staff or viewer"))?,
            ),
            (None, Some(id), None) => {
                Requested::CustomRole(id.parse().map_err(|_| invalid("role_id is not a role id"))?)
            }
            (None, None, Some(p)) => Requested::Permission(
                p.parse()
                    .map_err(|()| invalid("permission is not a known permission"))?,
            ),
            _ => return Err(invalid("give exactly one of role, role_id, permission")),
        };
        Ok(stormcom_app::grants::NewGrant {
            user_email: self.user_email.into_inner(),
            subject,
            expires_at: self.expires_at,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GrantDto {
    #[schema(value_type = String)]
    pub id: stormcom_domain::GrantId,
    #[schema(value_type = String)]
    pub user_id: stormcom_domain::UserId,
    pub role: Option<String>,
    pub role_id: Option<String>,
    pub permission: Option<String>,
    /// Everything this grant gives.
    pub permissions: Vec<String>,
    #[schema(value_type = String)]
    pub granted_by: stormcom_domain::UserId,
    #[serde(with = "time::serde::rfc3339")]
    pub granted_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl From<stormcom_app::store::access::Grant> for GrantDto {
    fn from(g: stormcom_app::store::access::Grant) -> Self {
        use stormcom_app::store::access::GrantSubject;
        let (role, role_id, permission) = match &g.subject {
            GrantSubject::Role(r) => (Some(r.as_str().to_owned()), None, None),
            GrantSubject::CustomRole { id, .. } => (None, Some(id.to_string()), None),
            GrantSubject::Permission(p) => (None, None, Some(p.as_str().to_owned())),
        };
        Self {
            permissions: permission_names(g.subject.permissions()),
            id: g.id,
            user_id: g.user_id,
            role,
            role_id,
            permission,
            granted_by: g.granted_by,
            granted_at: g.granted_at,
            expires_at: g.expires_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GrantList {
    pub data: Vec<GrantDto>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleRequest {
    pub name: String,
    pub permissions: Vec<String>,
}

impl CreateRoleRequest {
    pub fn permissions(&self) -> ApiResult<stormcom_domain::PermissionSet> {
        parse_permissions("permissions", &self.permissions)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleDto {
    #[schema(value_type = String)]
    pub id: stormcom_domain::RoleId,
    pub name: String,
    pub permissions: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<stormcom_app::store::access::CustomRole> for RoleDto {
    fn from(r: stormcom_app::store::access::CustomRole) -> Self {
        Self {
            id: r.id,
            name: r.name,
            permissions: permission_names(r.permissions),
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    pub data: Vec<RoleDto>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl CreateTokenRequest {
    pub fn scopes(&self) -> ApiResult<stormcom_domain::PermissionSet> {
        parse_permissions("scopes", &self.scopes)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenDto {
    #[schema(value_type = String)]
    pub id: stormcom_domain::TokenId,
    pub name: String,
    pub scopes: Vec<String>,
    #[schema(value_type = String)]
    pub created_by: stormcom_domain::UserId,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// Only in the answer that creates the token; never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl TokenDto {
    pub fn new(t: stormcom_app::store::access::ApiToken, secret: Option<String>) -> Self {
        Self {
            id: t.id,
            name: t.name,
            scopes: permission_names(t.scopes),
            created_by: t.created_by,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            token: secret,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub data: Vec<TokenDto>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryDto {
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub actor_ip: Option<String>,
    pub action: String,
    pub target: String,
    pub summary: std::collections::BTreeMap<String, String>,
    /// SHA-256 link to the previous entry and this entry's hash, hex.
    pub prev_hash: String,
    pub hash: String,
}

impl From<stormcom_domain::audit::StoredEntry> for AuditEntryDto {
    fn from(e: stormcom_domain::audit::StoredEntry) -> Self {
        Self {
            seq: e.record.seq,
            at: e.record.at,
            actor: e.record.actor,
            actor_ip: e.record.actor_ip,
            action: e.record.action,
            target: e.record.target,
            summary: e.record.summary,
            prev_hash: hex_string(&e.prev_hash),
            hash: hex_string(&e.hash),
        }
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub data: Vec<AuditEntryDto>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditVerification {
    pub ok: bool,
    pub entries_verified: u64,
    pub checkpoints_checked: usize,
    /// The first bad entry, when not ok.
    pub first_bad_seq: Option<i64>,
    pub reason: Option<String>,
}

impl From<stormcom_app::audit::Verification> for AuditVerification {
    fn from(v: stormcom_app::audit::Verification) -> Self {
        Self {
            ok: v.failure.is_none(),
            entries_verified: v.entries_verified,
            checkpoints_checked: v.checkpoints_checked,
            first_bad_seq: v.failure.as_ref().map(|f| f.seq),
            reason: v.failure.map(|f| f.reason.to_string()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CartLineDto {
    #[schema(value_type = String)]
    pub id: stormcom_domain::CartLineId,
    #[schema(value_type = String)]
    pub variant_id: VariantId,
    pub title: String,
    pub unit_price: i64,
    pub quantity: i64,
    pub line_total: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CartDto {
    #[schema(value_type = String)]
    pub id: stormcom_domain::CartId,
    /// Only in the answer that creates the cart: send it as `X-Cart-Secret` on every call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[schema(value_type = String)]
    pub currency: Currency,
    pub lines: Vec<CartLineDto>,
    pub subtotal: i64,
    pub discount_code: Option<String>,
    pub discount_total: i64,
    pub total: i64,
    pub has_contact: bool,
}

impl CartDto {
    pub fn new(v: stormcom_app::checkout::CartView, secret: Option<String>) -> Self {
        Self {
            id: v.id,
            secret,
            currency: v.currency,
            lines: v
                .lines
                .into_iter()
                .map(|l| CartLineDto {
                    id: l.id,
                    variant_id: l.variant_id,
                    title: l.title,
                    unit_price: l.unit_price,
                    quantity: l.quantity,
                    line_total: l.line_total,
                })
                .collect(),
            subtotal: v.subtotal,
            discount_code: v.discount_code,
            discount_total: v.discount_total,
            total: v.total,
            has_contact: v.has_contact,
        }
    }
}

/// Prices are never accepted from clients: a line names a variant and a quantity only.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddLineRequest {
    #[schema(value_type = String)]
    pub variant_id: VariantId,
    pub quantity: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLineRequest {
    pub quantity: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressDto {
    pub line1: String,
    #[serde(default)]
    pub line2: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactRequest {
    #[schema(value_type = String)]
    pub email: Pii<String>,
    #[schema(value_type = Option<String>)]
    pub name: Option<Pii<String>>,
    #[schema(value_type = Option<AddressDto>)]
    pub shipping_address: Option<Pii<AddressDto>>,
}

impl ContactRequest {
    pub fn into_contact(self) -> stormcom_app::pii::Contact {
        stormcom_app::pii::Contact {
            email: self.email.into_inner(),
            name: self.name.map(Pii::into_inner),
            address: self
                .shipping_address
                .map(Pii::into_inner)
                .map(|a| stormcom_app::pii::Address {
                    line1: a.line1,
                    line2: a.line2,
                    city: a.city,
                    postal_code: a.postal_code,
                    country: a.country,
                }),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscountCodeRequest {
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderLineDto {
    #[schema(value_type = String)]
    pub variant_id: VariantId,
    #[schema(value_type = String)]
    pub product_id: stormcom_domain::ProductId,
    pub title: String,
    pub sku: Option<String>,
    pub unit_price: i64,
    pub quantity: i64,
    pub line_total: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerDto {
    pub email: String,
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub shipping_address: Option<stormcom_app::pii::Address>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderDto {
    #[schema(value_type = String)]
    pub id: stormcom_domain::OrderId,
    pub number: i64,
    pub status: String,
    pub currency: String,
    pub subtotal: i64,
    pub discount_total: i64,
    pub total: i64,
    #[schema(value_type = Option<String>)]
    pub discount_id: Option<stormcom_domain::DiscountId>,
    /// Stock is held until then; unpaid orders expire after it.
    #[serde(with = "time::serde::rfc3339")]
    pub reserved_until: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<OrderLineDto>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerDto>,
    /// Why staff must look at this order (a payment that did not match it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flagged_reason: Option<String>,
    /// Detail view only: `unpaid`, `pending`, `paid`, `partially_refunded`, `refunded`,
    /// `failed` or `flagged`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub financial_status: Option<&'static str>,
    /// Detail view only: the gateway payment, once one was started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentDto>,
}

impl OrderDto {
    pub fn new(o: stormcom_app::store::commerce::Order) -> Self {
        Self {
            id: o.id,
            number: o.number,
            status: o.status.as_str().to_owned(),
            currency: o.currency,
            subtotal: o.subtotal,
            discount_total: o.discount_total,
            total: o.total,
            discount_id: o.discount_id,
            reserved_until: o.reserved_until,
            created_at: o.created_at,
            lines: None,
            customer: None,
            flagged_reason: o.flagged_reason,
            financial_status: None,
            payment: None,
        }
    }

    pub fn detailed(v: stormcom_app::orders::OrderView) -> Self {
        let financial_status = v.financial_status();
        let mut dto = Self::new(v.order);
        dto.financial_status = Some(financial_status);
        dto.payment = v.payment.map(PaymentDto::new);
        dto.lines = Some(
            v.lines
                .into_iter()
                .map(|l| OrderLineDto {
                    line_total: l.unit_price * l.quantity,
                    variant_id: l.variant_id,
                    product_id: l.product_id,
                    title: l.title,
                    sku: l.sku,
                    unit_price: l.unit_price,
                    quantity: l.quantity,
                })
                .collect(),
        );
        dto.customer = v.customer.map(|c| CustomerDto {
            email: c.email,
            name: c.name,
            shipping_address: c.address,
        });
        dto
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    pub data: Vec<OrderDto>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscountRequest {
    pub code: String,
    /// `percent` (value 1–100) or `fixed` (value in minor units).
    #[schema(value_type = String)]
    pub kind: stormcom_domain::checkout::DiscountKind,
    pub value: i64,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub starts_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ends_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub min_subtotal: i64,
    pub usage_limit: Option<i64>,
    pub per_customer_limit: Option<i64>,
    /// Redemptions per minute above which the code freezes itself and raises an alert.
    pub velocity_per_minute: Option<i64>,
    #[serde(default = "default_true")]
    pub active: bool,
}

fn default_true() -> bool {
    true
}

impl DiscountRequest {
    pub fn into_input(self) -> stormcom_app::orders::DiscountInput {
        stormcom_app::orders::DiscountInput {
            code: self.code,
            kind: self.kind,
            value: self.value,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            min_subtotal: self.min_subtotal,
            usage_limit: self.usage_limit,
            per_customer_limit: self.per_customer_limit,
            velocity_per_minute: self.velocity_per_minute,
            active: self.active,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiscountDto {
    #[schema(value_type = String)]
    pub id: stormcom_domain::DiscountId,
    pub code: String,
    pub kind: String,
    pub value: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub starts_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ends_at: Option<OffsetDateTime>,
    pub min_subtotal: i64,
    pub usage_limit: Option<i64>,
    pub per_customer_limit: Option<i64>,
    pub velocity_per_minute: Option<i64>,
    pub times_used: i64,
    /// active, disabled or frozen.
    pub status: String,
}

impl From<stormcom_app::store::commerce::Discount> for DiscountDto {
    fn from(d: stormcom_app::store::commerce::Discount) -> Self {
        Self {
            id: d.id,
            kind: d.fields.kind.as_str().to_owned(),
            code: d.fields.code,
            value: d.fields.value,
            starts_at: d.fields.starts_at,
            ends_at: d.fields.ends_at,
            min_subtotal: d.fields.min_subtotal,
            usage_limit: d.fields.usage_limit,
            per_customer_limit: d.fields.per_customer_limit,
            velocity_per_minute: d.fields.velocity_per_minute,
            times_used: d.times_used,
            status: d.fields.status,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiscountList {
    pub data: Vec<DiscountDto>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertDto {
    #[schema(value_type = String)]
    pub id: stormcom_domain::AlertId,
    pub kind: String,
    pub subject: String,
    pub detail: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    pub data: Vec<AlertDto>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveDriftRequest {
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DriftDto {
    pub variant_id: String,
    pub on_hand: i64,
    pub ledger_on_hand: i64,
    pub reserved: i64,
    pub live_reserved: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReconcileReportDto {
    pub variants_checked: usize,
    pub newly_flagged: usize,
    pub drifted: Vec<DriftDto>,
}

impl From<stormcom_app::orders::ReconcileReport> for ReconcileReportDto {
    fn from(r: stormcom_app::orders::ReconcileReport) -> Self {
        Self {
            variants_checked: r.variants_checked,
            newly_flagged: r.newly_flagged,
            drifted: r
                .drifted
                .into_iter()
                .map(|d| DriftDto {
                    variant_id: VariantId::from_uuid(d.variant_id).to_string(),
                    on_hand: d.on_hand,
                    ledger_on_hand: d.ledger_on_hand,
                    reserved: d.reserved,
                    live_reserved: d.live_reserved,
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------- payments

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderRequest {
    /// The endpoint's signing secret (`whsec_…`). Required for `stripe`; the `test`
    /// provider makes one up when it is left out. Never returned.
    #[schema(value_type = Option<String>)]
    pub webhook_secret: Option<Secret<String>>,
    /// Default true.
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderDto {
    pub provider: String,
    pub enabled: bool,
    /// The secret is stored sealed and never shown again.
    pub webhook_secret_set: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl ProviderDto {
    pub fn new(p: stormcom_app::payments::ProviderView) -> Self {
        Self {
            provider: p.provider.as_str().to_owned(),
            enabled: p.enabled,
            webhook_secret_set: true,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderList {
    pub data: Vec<ProviderDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartPaymentRequest {
    /// `test` or `stripe`.
    pub provider: String,
    /// For `stripe`: the PaymentIntent id your checkout created.
    pub provider_ref: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundDto {
    #[schema(value_type = String)]
    pub id: stormcom_domain::RefundId,
    #[schema(value_type = String)]
    pub order_id: stormcom_domain::OrderId,
    pub amount: i64,
    pub reason: String,
    /// `pending` until the gateway confirms, then `succeeded` or `failed`.
    pub status: String,
    /// `api` or `gateway` (made at the gateway directly).
    pub source: String,
    pub provider_ref: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl RefundDto {
    pub fn new(r: stormcom_app::store::payments::Refund) -> Self {
        Self {
            id: r.id,
            order_id: r.order_id,
            amount: r.amount,
            reason: r.reason,
            status: r.status,
            source: r.source,
            provider_ref: r.provider_ref,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundList {
    pub data: Vec<RefundDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentDto {
    #[schema(value_type = String)]
    pub id: stormcom_domain::PaymentId,
    #[schema(value_type = String)]
    pub order_id: stormcom_domain::OrderId,
    pub provider: String,
    /// The gateway's reference (PaymentIntent id).
    pub provider_ref: String,
    /// `pending`, `captured`, `failed` or `flagged`.
    pub status: String,
    pub amount: i64,
    pub currency: String,
    pub captured_amount: i64,
    pub refunded_amount: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refunds: Option<Vec<RefundDto>>,
}

impl PaymentDto {
    pub fn new(p: stormcom_app::store::payments::Payment) -> Self {
        Self {
            id: p.id,
            order_id: p.order_id,
            provider: p.provider,
            provider_ref: p.provider_ref,
            status: p.status,
            amount: p.amount,
            currency: p.currency,
            captured_amount: p.captured_amount,
            refunded_amount: p.refunded_amount,
            refunds: None,
        }
    }

    pub fn with_refunds(v: stormcom_app::payments::PaymentView) -> Self {
        let mut dto = Self::new(v.payment);
        dto.refunds = Some(v.refunds.into_iter().map(RefundDto::new).collect());
        dto
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// Minor units, at most what is left of the capture.
    pub amount: i64,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackAck {
    pub received: bool,
    pub event_id: String,
    /// The event was processed before; nothing was done.
    pub duplicate: bool,
    /// What the event did (`captured`, `payment_failed`, `refund_confirmed`, `ignored_…`, `flagged_…`).
    pub outcome: String,
}
