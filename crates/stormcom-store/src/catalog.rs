//! Products, variants and images of one store.

use sqlx::FromRow;
use stormcom_domain::catalog::{InventoryPolicy, ProductStatus};
use stormcom_domain::{ImageId, ProductId, VariantId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Handle, Result, StoreError, StoreScope, Tx, dispatch, now};

/// The writable fields of a product (create and full replace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductFields {
    pub handle: String,
    pub title: String,
    pub description_html: String,
    pub vendor: String,
    pub product_type: String,
    pub tags: Vec<String>,
    pub option_names: [String; 3],
    pub status: ProductStatus,
    pub published: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: ProductId,
    pub fields: ProductFields,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// The writable fields of a variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantFields {
    pub sku: Option<String>,
    pub options: [String; 3],
    pub price: i64,
    pub compare_at_price: Option<i64>,
    pub grams: i64,
    pub inventory_policy: InventoryPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub id: VariantId,
    pub product_id: ProductId,
    pub fields: VariantFields,
    pub position: i64,
    pub on_hand: i64,
    pub reserved: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Variant {
    /// Whether a shopper can buy one now.
    #[must_use]
    pub fn available_for_sale(&self) -> bool {
        self.fields.inventory_policy == InventoryPolicy::Continue || self.on_hand > self.reserved
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: ImageId,
    pub product_id: ProductId,
    pub src: String,
    pub position: i64,
    pub alt_text: String,
}

#[derive(FromRow)]
struct ProductRow {
    id: Uuid,
    handle: String,
    title: String,
    description_html: String,
    vendor: String,
    product_type: String,
    tags: String,
    option1_name: String,
    option2_name: String,
    option3_name: String,
    status: String,
    published: bool,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<ProductRow> for Product {
    type Error = StoreError;

    fn try_from(r: ProductRow) -> Result<Self> {
        let status = r
            .status
            .parse()
            .map_err(|()| StoreError::Corrupt(format!("product status '{}'", r.status)))?;
        Ok(Self {
            id: ProductId::from_uuid(r.id),
            fields: ProductFields {
                handle: r.handle,
                title: r.title,
                description_html: r.description_html,
                vendor: r.vendor,
                product_type: r.product_type,
                // Tags never contain commas (validated on the way in).
                tags: r.tags.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
                option_names: [r.option1_name, r.option2_name, r.option3_name],
                status,
                published: r.published,
            },
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

macro_rules! product_columns {
    () => {
        "id, handle, title, description_html, vendor, product_type, tags, option1_name, option2_name, \
         option3_name, status, published, created_at, updated_at"
    };
}

pub async fn insert_product(tx: &mut Tx, scope: &StoreScope, fields: &ProductFields) -> Result<Product> {
    let product = Product {
        id: ProductId::generate(),
        fields: fields.clone(),
        created_at: now(),
        updated_at: now(),
    };
    let f = fields;
    dispatch!(tx, c => sqlx::query(concat!(
        "INSERT INTO products (store_id, ", product_columns!(), ") \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    ))
    .bind(scope.uuid())
    .bind(product.id.as_uuid())
    .bind(&f.handle)
    .bind(&f.title)
    .bind(&f.description_html)
    .bind(&f.vendor)
    .bind(&f.product_type)
    .bind(f.tags.join(","))
    .bind(&f.option_names[0])
    .bind(&f.option_names[1])
    .bind(&f.option_names[2])
    .bind(f.status.as_str())
    .bind(f.published)
    .bind(product.created_at)
    .bind(product.updated_at)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(product)
}

/// Replaces every writable field; `None` when the product is not in this store.
pub async fn update_product(
    tx: &mut Tx,
    scope: &StoreScope,
    id: ProductId,
    fields: &ProductFields,
) -> Result<Option<Product>> {
    let f = fields;
    let row: Option<ProductRow> = dispatch!(tx, c => sqlx::query_as(concat!(
        "UPDATE products SET handle = $3, title = $4, description_html = $5, vendor = $6, product_type = $7, \
         tags = $8, option1_name = $9, option2_name = $10, option3_name = $11, status = $12, published = $13, \
         updated_at = $14 WHERE store_id = $1 AND id = $2 RETURNING ", product_columns!()
    ))
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .bind(&f.handle)
    .bind(&f.title)
    .bind(&f.description_html)
    .bind(&f.vendor)
    .bind(&f.product_type)
    .bind(f.tags.join(","))
    .bind(&f.option_names[0])
    .bind(&f.option_names[1])
    .bind(&f.option_names[2])
    .bind(f.status.as_str())
    .bind(f.published)
    .bind(now())
    .fetch_optional(&mut *c)
    .await?);
    row.map(Product::try_from).transpose()
}

/// Deletes a product with its variants, images and inventory levels (the movement
/// ledger keeps their history). `false` when the product is not in this store.
pub async fn delete_product(tx: &mut Tx, scope: &StoreScope, id: ProductId) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query("DELETE FROM products WHERE store_id = $1 AND id = $2")
        .bind(scope.uuid())
        .bind(id.as_uuid())
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(n > 0)
}

pub async fn find_product(h: &mut impl Handle, scope: &StoreScope, id: ProductId) -> Result<Option<Product>> {
    let row: Option<ProductRow> = dispatch!(h, c => sqlx::query_as(concat!(
        "SELECT ", product_columns!(), " FROM products WHERE store_id = $1 AND id = $2"
    ))
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .fetch_optional(&mut *c)
    .await?);
    row.map(Product::try_from).transpose()
}

pub async fn find_product_by_handle(h: &mut impl Handle, scope: &StoreScope, handle: &str) -> Result<Option<Product>> {
    let row: Option<ProductRow> = dispatch!(h, c => sqlx::query_as(concat!(
        "SELECT ", product_columns!(), " FROM products WHERE store_id = $1 AND handle = $2"
    ))
    .bind(scope.uuid())
    .bind(handle)
    .fetch_optional(&mut *c)
    .await?);
    row.map(Product::try_from).transpose()
}

/// A product and its variants in one round trip (the storefront's hot path).
pub async fn find_product_with_variants_by_handle(
    h: &mut impl Handle,
    scope: &StoreScope,
    handle: &str,
) -> Result<Option<(Product, Vec<Variant>)>> {
    let rows: Vec<ProductVariantRow> = dispatch!(h, c => sqlx::query_as(
        "SELECT p.id, p.handle, p.title, p.description_html, p.vendor, p.product_type, p.tags, p.option1_name, \
         p.option2_name, p.option3_name, p.status, p.published, p.created_at, p.updated_at, \
         v.id AS v_id, v.sku AS v_sku, v.option1 AS v_option1, v.option2 AS v_option2, v.option3 AS v_option3, \
         v.price AS v_price, v.compare_at_price AS v_compare_at_price, v.grams AS v_grams, \
         v.inventory_policy AS v_inventory_policy, v.position AS v_position, l.on_hand AS v_on_hand, \
         l.reserved AS v_reserved, v.created_at AS v_created_at, v.updated_at AS v_updated_at \
         FROM products p \
         LEFT JOIN variants v ON v.store_id = p.store_id AND v.product_id = p.id \
         LEFT JOIN inventory_levels l ON l.store_id = v.store_id AND l.variant_id = v.id \
         WHERE p.store_id = $1 AND p.handle = $2 ORDER BY v.position, v.id",
    )
    .bind(scope.uuid())
    .bind(handle)
    .fetch_all(&mut *c)
    .await?);
    let mut rows = rows.into_iter();
    let Some(first) = rows.next() else { return Ok(None) };
    let mut variants = Vec::new();
    let product_id = first.product.id;
    for variant in std::iter::once(first.variant).chain(rows.map(|r| r.variant)) {
        if let Some(row) = variant.into_row(product_id) {
            variants.push(Variant::try_from(row)?);
        }
    }
    Ok(Some((Product::try_from(first.product)?, variants)))
}

#[derive(FromRow)]
struct ProductVariantRow {
    #[sqlx(flatten)]
    product: ProductRow,
    #[sqlx(flatten)]
    variant: OptionalVariantRow,
}

/// The variant half of a LEFT JOIN: all columns null when the product has no variants.
#[derive(FromRow)]
struct OptionalVariantRow {
    v_id: Option<Uuid>,
    v_sku: Option<String>,
    v_option1: Option<String>,
    v_option2: Option<String>,
    v_option3: Option<String>,
    v_price: Option<i64>,
    v_compare_at_price: Option<i64>,
    v_grams: Option<i64>,
    v_inventory_policy: Option<String>,
    v_position: Option<i64>,
    v_on_hand: Option<i64>,
    v_reserved: Option<i64>,
    v_created_at: Option<OffsetDateTime>,
    v_updated_at: Option<OffsetDateTime>,
}

impl OptionalVariantRow {
    fn into_row(self, product_id: Uuid) -> Option<VariantRow> {
        Some(VariantRow {
            id: self.v_id?,
            product_id,
            sku: self.v_sku,
            option1: self.v_option1?,
            option2: self.v_option2?,
            option3: self.v_option3?,
            price: self.v_price?,
            compare_at_price: self.v_compare_at_price,
            grams: self.v_grams?,
            inventory_policy: self.v_inventory_policy?,
            position: self.v_position?,
            on_hand: self.v_on_hand,
            reserved: self.v_reserved,
            created_at: self.v_created_at?,
            updated_at: self.v_updated_at?,
        })
    }
}

/// Which products a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Everything (admin).
    All,
    /// Published and active only (storefront).
    Storefront,
}

/// One page of products in id (= creation) order, after `after` if given.
pub async fn list_products(
    h: &mut impl Handle,
    scope: &StoreScope,
    visibility: Visibility,
    after: Option<ProductId>,
    limit: u32,
) -> Result<Vec<Product>> {
    let after = after.map_or(Uuid::nil(), |id| id.as_uuid());
    let storefront_only = visibility == Visibility::Storefront;
    let rows: Vec<ProductRow> = dispatch!(h, c => sqlx::query_as(concat!(
        "SELECT ", product_columns!(), " FROM products WHERE store_id = $1 AND id > $2 \
         AND (NOT $3 OR (published AND status = 'active')) ORDER BY id LIMIT $4"
    ))
    .bind(scope.uuid())
    .bind(after)
    .bind(storefront_only)
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await?);
    rows.into_iter().map(Product::try_from).collect()
}

#[derive(FromRow)]
struct VariantRow {
    id: Uuid,
    product_id: Uuid,
    sku: Option<String>,
    option1: String,
    option2: String,
    option3: String,
    price: i64,
    compare_at_price: Option<i64>,
    grams: i64,
    inventory_policy: String,
    position: i64,
    on_hand: Option<i64>,
    reserved: Option<i64>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<VariantRow> for Variant {
    type Error = StoreError;

    fn try_from(r: VariantRow) -> Result<Self> {
        let inventory_policy = r
            .inventory_policy
            .parse()
            .map_err(|()| StoreError::Corrupt(format!("inventory policy '{}'", r.inventory_policy)))?;
        Ok(Self {
            id: VariantId::from_uuid(r.id),
            product_id: ProductId::from_uuid(r.product_id),
            fields: VariantFields {
                sku: r.sku,
                options: [r.option1, r.option2, r.option3],
                price: r.price,
                compare_at_price: r.compare_at_price,
                grams: r.grams,
                inventory_policy,
            },
            position: r.position,
            on_hand: r.on_hand.unwrap_or(0),
            reserved: r.reserved.unwrap_or(0),
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

macro_rules! variant_select {
    () => {
        "SELECT v.id, v.product_id, v.sku, v.option1, v.option2, v.option3, v.price, v.compare_at_price, v.grams, \
         v.inventory_policy, v.position, l.on_hand, l.reserved, v.created_at, v.updated_at \
         FROM variants v LEFT JOIN inventory_levels l ON l.store_id = v.store_id AND l.variant_id = v.id "
    };
}

/// Adds a variant at the end of the product's list, with an inventory level at zero.
pub async fn insert_variant(
    tx: &mut Tx,
    scope: &StoreScope,
    product: ProductId,
    fields: &VariantFields,
) -> Result<Variant> {
    let id = VariantId::generate();
    let at = now();
    let f = fields;
    let position: i64 = dispatch!(tx, c => {
        let position: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(position), 0) + 1 FROM variants WHERE store_id = $1 AND product_id = $2",
        )
        .bind(scope.uuid())
        .bind(product.as_uuid())
        .fetch_one(&mut *c)
        .await?;
        sqlx::query(
            "INSERT INTO variants (store_id, id, product_id, sku, option1, option2, option3, price, \
             compare_at_price, grams, inventory_policy, position, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
        )
        .bind(scope.uuid())
        .bind(id.as_uuid())
        .bind(product.as_uuid())
        .bind(f.sku.as_deref())
        .bind(&f.options[0])
        .bind(&f.options[1])
        .bind(&f.options[2])
        .bind(f.price)
        .bind(f.compare_at_price)
        .bind(f.grams)
        .bind(f.inventory_policy.as_str())
        .bind(position)
        .bind(at)
        .execute(&mut *c)
        .await?;
        sqlx::query(
            "INSERT INTO inventory_levels (store_id, variant_id, on_hand, reserved, updated_at) VALUES ($1, $2, 0, 0, $3)",
        )
        .bind(scope.uuid())
        .bind(id.as_uuid())
        .bind(at)
        .execute(&mut *c)
        .await?;
        position
    });
    Ok(Variant {
        id,
        product_id: product,
        fields: fields.clone(),
        position,
        on_hand: 0,
        reserved: 0,
        created_at: at,
        updated_at: at,
    })
}

/// Replaces a variant's writable fields; `None` when it is not this product's variant.
pub async fn update_variant(
    tx: &mut Tx,
    scope: &StoreScope,
    product: ProductId,
    id: VariantId,
    fields: &VariantFields,
) -> Result<Option<Variant>> {
    let f = fields;
    let updated = dispatch!(tx, c => sqlx::query(
        "UPDATE variants SET sku = $4, option1 = $5, option2 = $6, option3 = $7, price = $8, \
         compare_at_price = $9, grams = $10, inventory_policy = $11, updated_at = $12 \
         WHERE store_id = $1 AND product_id = $2 AND id = $3",
    )
    .bind(scope.uuid())
    .bind(product.as_uuid())
    .bind(id.as_uuid())
    .bind(f.sku.as_deref())
    .bind(&f.options[0])
    .bind(&f.options[1])
    .bind(&f.options[2])
    .bind(f.price)
    .bind(f.compare_at_price)
    .bind(f.grams)
    .bind(f.inventory_policy.as_str())
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    if updated == 0 {
        return Ok(None);
    }
    find_variant(tx, scope, product, id).await
}

pub async fn delete_variant(tx: &mut Tx, scope: &StoreScope, product: ProductId, id: VariantId) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query("DELETE FROM variants WHERE store_id = $1 AND product_id = $2 AND id = $3")
        .bind(scope.uuid())
        .bind(product.as_uuid())
        .bind(id.as_uuid())
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(n > 0)
}

pub async fn find_variant(
    h: &mut impl Handle,
    scope: &StoreScope,
    product: ProductId,
    id: VariantId,
) -> Result<Option<Variant>> {
    let row: Option<VariantRow> = dispatch!(h, c => sqlx::query_as(concat!(
        variant_select!(), "WHERE v.store_id = $1 AND v.product_id = $2 AND v.id = $3"
    ))
    .bind(scope.uuid())
    .bind(product.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(&mut *c)
    .await?);
    row.map(Variant::try_from).transpose()
}

pub async fn list_variants(h: &mut impl Handle, scope: &StoreScope, product: ProductId) -> Result<Vec<Variant>> {
    let rows: Vec<VariantRow> = dispatch!(h, c => sqlx::query_as(concat!(
        variant_select!(), "WHERE v.store_id = $1 AND v.product_id = $2 ORDER BY v.position, v.id"
    ))
    .bind(scope.uuid())
    .bind(product.as_uuid())
    .fetch_all(&mut *c)
    .await?);
    rows.into_iter().map(Variant::try_from).collect()
}

/// Variants of every product whose id lies in `first..=last`: one query for a whole
/// page of products (pages are contiguous id ranges).
pub async fn list_variants_of_range(
    h: &mut impl Handle,
    scope: &StoreScope,
    first: ProductId,
    last: ProductId,
) -> Result<Vec<Variant>> {
    let rows: Vec<VariantRow> = dispatch!(h, c => sqlx::query_as(concat!(
        variant_select!(),
        "WHERE v.store_id = $1 AND v.product_id >= $2 AND v.product_id <= $3 ORDER BY v.product_id, v.position, v.id"
    ))
    .bind(scope.uuid())
    .bind(first.as_uuid())
    .bind(last.as_uuid())
    .fetch_all(&mut *c)
    .await?);
    rows.into_iter().map(Variant::try_from).collect()
}

#[derive(FromRow)]
struct ImageRow {
    id: Uuid,
    product_id: Uuid,
    src: String,
    position: i64,
    alt_text: String,
}

impl From<ImageRow> for Image {
    fn from(r: ImageRow) -> Self {
        Self {
            id: ImageId::from_uuid(r.id),
            product_id: ProductId::from_uuid(r.product_id),
            src: r.src,
            position: r.position,
            alt_text: r.alt_text,
        }
    }
}

/// What [`upsert_image`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Created,
    Updated,
    Unchanged,
}

/// Adds an image, or updates position and alt text of the product's image with the same
/// source; leaves an identical one alone.
pub async fn upsert_image(
    tx: &mut Tx,
    scope: &StoreScope,
    product: ProductId,
    src: &str,
    position: i64,
    alt_text: &str,
) -> Result<Upsert> {
    let outcome = dispatch!(tx, c => {
        let existing: Option<(i64, String)> = sqlx::query_as(
            "SELECT position, alt_text FROM product_images WHERE store_id = $1 AND product_id = $2 AND src = $3",
        )
        .bind(scope.uuid())
        .bind(product.as_uuid())
        .bind(src)
        .fetch_optional(&mut *c)
        .await?;
        match existing {
            Some((p, a)) if p == position && a == alt_text => Upsert::Unchanged,
            Some(_) => {
                sqlx::query(
                    "UPDATE product_images SET position = $4, alt_text = $5 \
                     WHERE store_id = $1 AND product_id = $2 AND src = $3",
                )
                .bind(scope.uuid())
                .bind(product.as_uuid())
                .bind(src)
                .bind(position)
                .bind(alt_text)
                .execute(&mut *c)
                .await?;
                Upsert::Updated
            }
            None => {
                sqlx::query(
                    "INSERT INTO product_images (store_id, id, product_id, src, position, alt_text, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(scope.uuid())
                .bind(ImageId::generate().as_uuid())
                .bind(product.as_uuid())
                .bind(src)
                .bind(position)
                .bind(alt_text)
                .bind(now())
                .execute(&mut *c)
                .await?;
                Upsert::Created
            }
        }
    });
    Ok(outcome)
}

pub async fn list_images_of_range(
    h: &mut impl Handle,
    scope: &StoreScope,
    first: ProductId,
    last: ProductId,
) -> Result<Vec<Image>> {
    let rows: Vec<ImageRow> = dispatch!(h, c => sqlx::query_as(
        "SELECT id, product_id, src, position, alt_text FROM product_images \
         WHERE store_id = $1 AND product_id >= $2 AND product_id <= $3 ORDER BY product_id, position, id",
    )
    .bind(scope.uuid())
    .bind(first.as_uuid())
    .bind(last.as_uuid())
    .fetch_all(&mut *c)
    .await?);
    Ok(rows.into_iter().map(Image::from).collect())
}

/// A variant by id alone (the storefront cart knows no product id).
pub async fn find_variant_by_id(h: &mut impl Handle, scope: &StoreScope, id: VariantId) -> Result<Option<Variant>> {
    let row: Option<VariantRow> = dispatch!(h, c => sqlx::query_as(concat!(
        variant_select!(), "WHERE v.store_id = $1 AND v.id = $2"
    ))
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .fetch_optional(&mut *c)
    .await?);
    row.map(Variant::try_from).transpose()
}
