//! Catalog use cases: products with their variants and images.

use stormcom_domain::catalog::{self as rules, InventoryPolicy, MAX_SHORT_TEXT_LEN, MAX_TEXT_LEN, ProductStatus};
use stormcom_domain::{Permission, ProductId, ValidationErrors, VariantId};
use stormcom_store::catalog::{self, Image, Product, ProductFields, Variant, VariantFields, Visibility};
use stormcom_store::inventory::{self, AdjustOutcome, MovementKind};
use stormcom_store::{Handle, StoreScope, Tx, audit};

use crate::{App, AppError, Result, StoreContext};

pub const MAX_PAGE_SIZE: u32 = 100;
pub const DEFAULT_PAGE_SIZE: u32 = 20;

/// A product as the API shows it.
#[derive(Debug, Clone)]
pub struct ProductView {
    pub product: Product,
    pub variants: Vec<Variant>,
    pub images: Vec<Image>,
}

/// One page of a list; `next` is the cursor for the following page.
#[derive(Debug, Clone)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    pub next: Option<C>,
}

#[derive(Debug, Clone, Default)]
pub struct NewProduct {
    pub handle: String,
    pub title: String,
    pub description_html: String,
    pub vendor: String,
    pub product_type: String,
    pub tags: Vec<String>,
    pub option_names: [String; 3],
    pub status: ProductStatus,
    pub published: bool,
    pub variants: Vec<NewVariant>,
}

#[derive(Debug, Clone, Default)]
pub struct ProductPatch {
    pub handle: Option<String>,
    pub title: Option<String>,
    pub description_html: Option<String>,
    pub vendor: Option<String>,
    pub product_type: Option<String>,
    pub tags: Option<Vec<String>>,
    pub option_names: Option<[String; 3]>,
    pub status: Option<ProductStatus>,
    pub published: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct NewVariant {
    pub sku: Option<String>,
    pub options: [String; 3],
    pub price: i64,
    pub compare_at_price: Option<i64>,
    pub grams: i64,
    pub inventory_policy: InventoryPolicy,
    /// Initial on-hand quantity, recorded in the ledger.
    pub inventory_quantity: i64,
}

/// `Some(None)` clears a nullable field; `None` leaves it.
#[derive(Debug, Clone, Default)]
pub struct VariantPatch {
    pub sku: Option<Option<String>>,
    pub options: Option<[String; 3]>,
    pub price: Option<i64>,
    pub compare_at_price: Option<Option<i64>>,
    pub grams: Option<i64>,
    pub inventory_policy: Option<InventoryPolicy>,
}

pub(crate) fn validate_product(f: &ProductFields, errors: &mut ValidationErrors) {
    rules::check_handle(errors, "handle", &f.handle);
    rules::check_title(errors, "title", &f.title);
    rules::check_text(errors, "description_html", &f.description_html, MAX_TEXT_LEN);
    rules::check_text(errors, "vendor", &f.vendor, MAX_SHORT_TEXT_LEN);
    rules::check_text(errors, "product_type", &f.product_type, MAX_SHORT_TEXT_LEN);
    rules::check_tags(errors, "tags", &f.tags);
    for (i, name) in f.option_names.iter().enumerate() {
        rules::check_text(errors, &format!("option_names[{i}]"), name, MAX_SHORT_TEXT_LEN);
    }
}

pub(crate) fn validate_variant(prefix: &str, f: &VariantFields, errors: &mut ValidationErrors) {
    if let Some(sku) = &f.sku
        && (sku.trim().is_empty() || sku.len() > MAX_SHORT_TEXT_LEN)
    {
        errors.add(format!("{prefix}sku"), "invalid_sku", "must be 1 to 255 bytes, or null");
    }
    for (i, value) in f.options.iter().enumerate() {
        rules::check_text(errors, &format!("{prefix}options[{i}]"), value, MAX_SHORT_TEXT_LEN);
    }
    rules::check_amount(errors, &format!("{prefix}price"), f.price);
    if let Some(compare_at) = f.compare_at_price {
        rules::check_amount(errors, &format!("{prefix}compare_at_price"), compare_at);
    }
    rules::check_quantity(errors, &format!("{prefix}grams"), f.grams);
}

pub(crate) fn page_size(limit: Option<u32>) -> Result<u32> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        Some(_) => Err(AppError::invalid(
            "limit",
            "invalid_limit",
            format!("must be 1 to {MAX_PAGE_SIZE}"),
        )),
    }
}

/// Cuts a list fetched with `limit + 1` rows down to a page, with the cursor of its last
/// item when more rows follow.
pub(crate) fn into_page<T, C>(mut items: Vec<T>, limit: u32, cursor: impl Fn(&T) -> C) -> Page<T, C> {
    let limit = limit as usize;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor)
    } else {
        None
    };
    Page { items, next }
}

/// Loads a page of products with their variants and images in three queries.
pub(crate) async fn load_page(
    h: &mut impl Handle,
    scope: &StoreScope,
    visibility: Visibility,
    after: Option<ProductId>,
    limit: Option<u32>,
) -> Result<Page<ProductView, ProductId>> {
    let limit = page_size(limit)?;
    let products = catalog::list_products(h, scope, visibility, after, limit + 1).await?;
    let Page { items: products, next } = into_page(products, limit, |p| p.id);
    let (Some(first), Some(last)) = (products.first().map(|p| p.id), products.last().map(|p| p.id)) else {
        return Ok(Page {
            items: Vec::new(),
            next,
        });
    };
    let mut variants = catalog::list_variants_of_range(h, scope, first, last)
        .await?
        .into_iter()
        .peekable();
    let mut images = catalog::list_images_of_range(h, scope, first, last)
        .await?
        .into_iter()
        .peekable();
    // Both lists are sorted by product id, like the page: one merge pass.
    let items = products
        .into_iter()
        .map(|product| {
            let mut view = ProductView {
                variants: Vec::new(),
                images: Vec::new(),
                product,
            };
            let id = view.product.id;
            while variants.peek().is_some_and(|v| v.product_id < id) {
                variants.next();
            }
            while let Some(v) = variants.next_if(|v| v.product_id == id) {
                view.variants.push(v);
            }
            while images.peek().is_some_and(|i| i.product_id < id) {
                images.next();
            }
            while let Some(i) = images.next_if(|i| i.product_id == id) {
                view.images.push(i);
            }
            view
        })
        .collect();
    Ok(Page { items, next })
}

pub(crate) async fn load_view(h: &mut impl Handle, scope: &StoreScope, product: Product) -> Result<ProductView> {
    let variants = catalog::list_variants(h, scope, product.id).await?;
    let images = catalog::list_images_of_range(h, scope, product.id, product.id).await?;
    Ok(ProductView {
        product,
        variants,
        images,
    })
}

/// Creates a variant and records its initial stock in the ledger.
async fn insert_variant_with_stock(
    tx: &mut Tx,
    ctx: &StoreContext,
    product: ProductId,
    new: &NewVariant,
) -> Result<Variant> {
    let mut variant = catalog::insert_variant(tx, ctx.scope(), product, &variant_fields(new)).await?;
    if new.inventory_quantity > 0 {
        let actor = ctx.principal().to_string();
        let outcome = inventory::adjust(
            tx,
            ctx.scope(),
            variant.id,
            new.inventory_quantity,
            MovementKind::Initial,
            "initial stock",
            &actor,
        )
        .await?;
        if let AdjustOutcome::Applied { level, .. } = outcome {
            variant.on_hand = level.on_hand;
        }
    }
    Ok(variant)
}

fn variant_fields(new: &NewVariant) -> VariantFields {
    VariantFields {
        sku: new.sku.clone(),
        options: new.options.clone(),
        price: new.price,
        compare_at_price: new.compare_at_price,
        grams: new.grams,
        inventory_policy: new.inventory_policy,
    }
}

fn validate_new_variant(prefix: &str, new: &NewVariant, errors: &mut ValidationErrors) {
    validate_variant(prefix, &variant_fields(new), errors);
    rules::check_quantity(errors, &format!("{prefix}inventory_quantity"), new.inventory_quantity);
}

impl App {
    pub async fn list_products(
        &self,
        ctx: &StoreContext,
        after: Option<ProductId>,
        limit: Option<u32>,
    ) -> Result<Page<ProductView, ProductId>> {
        ctx.require(Permission::CatalogRead)?;
        let mut reader = self.db().reader().await?;
        load_page(&mut reader, ctx.scope(), Visibility::All, after, limit).await
    }

    pub async fn get_product(&self, ctx: &StoreContext, id: ProductId) -> Result<ProductView> {
        ctx.require(Permission::CatalogRead)?;
        let mut reader = self.db().reader().await?;
        let product = catalog::find_product(&mut reader, ctx.scope(), id)
            .await?
            .ok_or(AppError::NotFound)?;
        load_view(&mut reader, ctx.scope(), product).await
    }

    pub async fn create_product(&self, ctx: &StoreContext, new: NewProduct) -> Result<ProductView> {
        ctx.require(Permission::CatalogWrite)?;
        let fields = ProductFields {
            handle: new.handle,
            title: new.title.trim().to_owned(),
            description_html: new.description_html,
            vendor: new.vendor,
            product_type: new.product_type,
            tags: new.tags,
            option_names: new.option_names,
            status: new.status,
            published: new.published,
        };
        let mut errors = ValidationErrors::default();
        validate_product(&fields, &mut errors);
        if new.variants.len() > 100 {
            errors.add("variants", "too_many", "at most 100 variants per product");
        }
        for (i, variant) in new.variants.iter().enumerate() {
            validate_new_variant(&format!("variants[{i}]."), variant, &mut errors);
        }
        errors.finish()?;
        if ctx.require(Permission::InventoryWrite).is_err() && new.variants.iter().any(|v| v.inventory_quantity != 0) {
            return Err(AppError::Forbidden(Permission::InventoryWrite));
        }
        let mut tx = self.db().begin().await?;
        let plan = stormcom_store::plans::lock_store_plan(&mut tx, ctx.scope()).await?;
        let products = stormcom_store::plans::count_products(&mut tx, ctx.scope()).await?;
        self.check_quota(plan, stormcom_domain::Quota::ProductsPerStore, products)?;
        let product = catalog::insert_product(&mut tx, ctx.scope(), &fields).await?;
        let mut variants = Vec::with_capacity(new.variants.len());
        for variant in &new.variants {
            variants.push(insert_variant_with_stock(&mut tx, ctx, product.id, variant).await?);
        }
        audit::append(
            &mut tx,
            ctx.scope(),
            ctx.audit(
                "product.created",
                product.id,
                &[
                    ("handle", product.fields.handle.clone()),
                    ("variants", variants.len().to_string()),
                ],
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(ProductView {
            product,
            variants,
            images: Vec::new(),
        })
    }

    pub async fn update_product(&self, ctx: &StoreContext, id: ProductId, patch: ProductPatch) -> Result<ProductView> {
        ctx.require(Permission::CatalogWrite)?;
        let mut tx = self.db().begin().await?;
        let current = catalog::find_product(&mut tx, ctx.scope(), id)
            .await?
            .ok_or(AppError::NotFound)?;
        let mut f = current.fields;
        f.handle = patch.handle.unwrap_or(f.handle);
        f.title = patch.title.map_or(f.title, |t| t.trim().to_owned());
        f.description_html = patch.description_html.unwrap_or(f.description_html);
        f.vendor = patch.vendor.unwrap_or(f.vendor);
        f.product_type = patch.product_type.unwrap_or(f.product_type);
        f.tags = patch.tags.unwrap_or(f.tags);
        f.option_names = patch.option_names.unwrap_or(f.option_names);
        f.status = patch.status.unwrap_or(f.status);
        f.published = patch.published.unwrap_or(f.published);
        let mut errors = ValidationErrors::default();
        validate_product(&f, &mut errors);
        errors.finish()?;
        let product = catalog::update_product(&mut tx, ctx.scope(), id, &f)
            .await?
            .ok_or(AppError::NotFound)?;
        let view = load_view(&mut tx, ctx.scope(), product).await?;
        audit::append(
            &mut tx,
            ctx.scope(),
            ctx.audit("product.updated", id, &[("handle", view.product.fields.handle.clone())]),
        )
        .await?;
        tx.commit().await?;
        Ok(view)
    }

    pub async fn delete_product(&self, ctx: &StoreContext, id: ProductId) -> Result<()> {
        ctx.require(Permission::CatalogWrite)?;
        let mut tx = self.db().begin().await?;
        if !catalog::delete_product(&mut tx, ctx.scope(), id).await? {
            return Err(AppError::NotFound);
        }
        audit::append(&mut tx, ctx.scope(), ctx.audit("product.deleted", id, &[])).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_variants(&self, ctx: &StoreContext, product: ProductId) -> Result<Vec<Variant>> {
        ctx.require(Permission::CatalogRead)?;
        let mut reader = self.db().reader().await?;
        catalog::find_product(&mut reader, ctx.scope(), product)
            .await?
            .ok_or(AppError::NotFound)?;
        Ok(catalog::list_variants(&mut reader, ctx.scope(), product).await?)
    }

    pub async fn get_variant(&self, ctx: &StoreContext, product: ProductId, id: VariantId) -> Result<Variant> {
        ctx.require(Permission::CatalogRead)?;
        let mut reader = self.db().reader().await?;
        catalog::find_variant(&mut reader, ctx.scope(), product, id)
            .await?
            .ok_or(AppError::NotFound)
    }

    pub async fn create_variant(&self, ctx: &StoreContext, product: ProductId, new: NewVariant) -> Result<Variant> {
        ctx.require(Permission::CatalogWrite)?;
        let mut errors = ValidationErrors::default();
        validate_new_variant("", &new, &mut errors);
        errors.finish()?;
        if new.inventory_quantity != 0 {
            ctx.require(Permission::InventoryWrite)?;
        }
        let mut tx = self.db().begin().await?;
        catalog::find_product(&mut tx, ctx.scope(), product)
            .await?
            .ok_or(AppError::NotFound)?;
        let variant = insert_variant_with_stock(&mut tx, ctx, product, &new).await?;
        audit::append(
            &mut tx,
            ctx.scope(),
            ctx.audit(
                "variant.created",
                variant.id,
                &[
                    ("product", product.to_string()),
                    ("on_hand", variant.on_hand.to_string()),
                ],
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(variant)
    }

    pub async fn update_variant(
        &self,
        ctx: &StoreContext,
        product: ProductId,
        id: VariantId,
        patch: VariantPatch,
    ) -> Result<Variant> {
        ctx.require(Permission::CatalogWrite)?;
        let mut tx = self.db().begin().await?;
        let current = catalog::find_variant(&mut tx, ctx.scope(), product, id)
            .await?
            .ok_or(AppError::NotFound)?;
        let mut f = current.fields;
        f.sku = patch.sku.unwrap_or(f.sku);
        f.options = patch.options.unwrap_or(f.options);
        f.price = patch.price.unwrap_or(f.price);
        f.compare_at_price = patch.compare_at_price.unwrap_or(f.compare_at_price);
        f.grams = patch.grams.unwrap_or(f.grams);
        f.inventory_policy = patch.inventory_policy.unwrap_or(f.inventory_policy);
        let mut errors = ValidationErrors::default();
        validate_variant("", &f, &mut errors);
        errors.finish()?;
        let variant = catalog::update_variant(&mut tx, ctx.scope(), product, id, &f)
            .await?
            .ok_or(AppError::NotFound)?;
        audit::append(
            &mut tx,
            ctx.scope(),
            ctx.audit(
                "variant.updated",
                id,
                &[
                    ("product", product.to_string()),
                    ("price", variant.fields.price.to_string()),
                ],
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(variant)
    }

    pub async fn delete_variant(&self, ctx: &StoreContext, product: ProductId, id: VariantId) -> Result<()> {
        ctx.require(Permission::CatalogWrite)?;
        let mut tx = self.db().begin().await?;
        if !catalog::delete_variant(&mut tx, ctx.scope(), product, id).await? {
            return Err(AppError::NotFound);
        }
        audit::append(
            &mut tx,
            ctx.scope(),
            ctx.audit("variant.deleted", id, &[("product", product.to_string())]),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
