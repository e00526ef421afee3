//! Shopify CSV import. The file is parsed first (nothing is written if the file as a
//! whole is unreadable); then products are written in batches of one transaction each,
//! every product inside its own savepoint. The unit of atomicity is the product: a
//! product is imported with all its variants and images, or not at all, and a refused
//! product never disturbs the others. Re-importing a file updates products (matched by
//! handle), variants (matched by option values) and images (matched by URL); it never
//! duplicates them, and sets on-hand stock to the file's quantity through the ledger.

use std::collections::HashMap;

use stormcom_domain::shopify::{self, ImportProduct, RowRejection};
use stormcom_domain::{Permission, Plan, Quota, ValidationErrors};
use stormcom_store::catalog::{self, ProductFields, Upsert, VariantFields};
use stormcom_store::inventory::{self, AdjustOutcome, MovementKind};
use stormcom_store::{Constraint, StoreError, Tx, audit, plans};

use crate::catalog::{validate_product, validate_variant};
use crate::{App, AppError, Result, StoreContext};

/// Products written per transaction: large enough to amortise commits, small enough
/// that a long import does not hold the SQLite write lock for long.
const BATCH: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
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
    pub rows_rejected: Vec<RowRejection>,
}

/// Reports progress: (products done, products in the file).
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// Why one product could not be written.
struct ProductRefused(RowRejection);

/// The store's product quota as seen inside one batch transaction (which holds the
/// quota lock): new products beyond it are refused row by row.
struct ProductRoom {
    plan: Plan,
    limit: u64,
    used: u64,
}

impl App {
    pub async fn import_shopify(
        &self,
        ctx: &StoreContext,
        file: Vec<u8>,
        progress: Progress<'_>,
    ) -> Result<ImportSummary> {
        ctx.require(Permission::CatalogWrite)?;
        ctx.require(Permission::InventoryWrite)?;
        let currency = ctx.currency();
        let plan = tokio::task::spawn_blocking(move || shopify::parse(&file, currency)).await??;

        let mut summary = ImportSummary {
            products_rejected: plan.products_rejected as u64,
            rows_rejected: plan.rejected,
            ..ImportSummary::default()
        };
        let total = plan.products.len() as u64;
        let actor = ctx.principal().to_string();
        let mut done = 0;
        progress(0, total);
        for batch in plan.products.chunks(BATCH) {
            let mut tx = self.db().begin().await?;
            let plan = plans::lock_store_plan(&mut tx, ctx.scope()).await?;
            let mut room = ProductRoom {
                plan,
                limit: self.plans().get(plan).max_products_per_store,
                used: plans::count_products(&mut tx, ctx.scope()).await?,
            };
            for product in batch {
                tx.savepoint().await?;
                let mut counts = ImportSummary::default();
                match write_product(&mut tx, ctx, product, &actor, &mut counts, &room).await {
                    Ok(()) => {
                        tx.release_savepoint().await?;
                        room.used += counts.products_created;
                        add_counts(&mut summary, &counts);
                    }
                    Err(Ok(ProductRefused(rejection))) => {
                        tx.rollback_to_savepoint().await?;
                        summary.products_rejected += 1;
                        summary.rows_rejected.push(rejection);
                    }
                    Err(Err(e)) => return Err(e),
                }
            }
            tx.commit().await?;
            done += batch.len() as u64;
            progress(done, total);
        }
        summary.rows_rejected.sort_by_key(|r| r.line);
        Ok(summary)
    }
}

fn add_counts(total: &mut ImportSummary, c: &ImportSummary) {
    total.products_created += c.products_created;
    total.products_updated += c.products_updated;
    total.products_unchanged += c.products_unchanged;
    total.variants_created += c.variants_created;
    total.variants_updated += c.variants_updated;
    total.variants_unchanged += c.variants_unchanged;
    total.images_created += c.images_created;
    total.images_updated += c.images_updated;
    total.images_unchanged += c.images_unchanged;
}

/// `Err(Ok(_))`: this product is refused, the import goes on. `Err(Err(_))`: the
/// import stops (database unavailable or similar).
async fn write_product(
    tx: &mut Tx,
    ctx: &StoreContext,
    p: &ImportProduct,
    actor: &str,
    counts: &mut ImportSummary,
    room: &ProductRoom,
) -> Result<(), Result<ProductRefused, AppError>> {
    let refuse = |line: u64, reason: String| {
        Err(Ok(ProductRefused(RowRejection {
            line,
            handle: Some(p.handle.clone()),
            reason,
        })))
    };
    let fields = ProductFields {
        handle: p.handle.clone(),
        title: p.title.clone(),
        description_html: p.description_html.clone(),
        vendor: p.vendor.clone(),
        product_type: p.product_type.clone(),
        tags: p.tags.clone(),
        option_names: p.option_names.clone(),
        status: p.status,
        published: p.published,
    };
    let mut errors = ValidationErrors::default();
    validate_product(&fields, &mut errors);
    if let Some(e) = errors.0.first() {
        return refuse(p.line, format!("{} {}", e.field, e.message));
    }
    let scope = ctx.scope();
    let existing = catalog::find_product_by_handle(tx, scope, &p.handle)
        .await
        .map_err(fatal)?;
    let product_id = match existing {
        Some(existing) if existing.fields == fields => {
            counts.products_unchanged += 1;
            existing.id
        }
        Some(existing) => {
            catalog::update_product(tx, scope, existing.id, &fields)
                .await
                .map_err(fatal)?;
            counts.products_updated += 1;
            existing.id
        }
        None if room.used >= room.limit => {
            metrics::counter!("stormcom_quota_rejections_total", "quota" => Quota::ProductsPerStore.as_str())
                .increment(1);
            let full = AppError::QuotaExceeded {
                quota: Quota::ProductsPerStore,
                plan: room.plan,
                limit: room.limit,
            };
            return refuse(p.line, full.to_string());
        }
        None => {
            counts.products_created += 1;
            catalog::insert_product(tx, scope, &fields).await.map_err(fatal)?.id
        }
    };

    let mut stock_moves = 0u64;
    let current: HashMap<[String; 3], _> = catalog::list_variants(tx, scope, product_id)
        .await
        .map_err(fatal)?
        .into_iter()
        .map(|v| (v.fields.options.clone(), v))
        .collect();
    for v in &p.variants {
        let fields = VariantFields {
            sku: v.sku.clone(),
            options: v.options.clone(),
            price: v.price,
            compare_at_price: v.compare_at_price,
            grams: v.grams,
            inventory_policy: v.inventory_policy,
        };
        let mut errors = ValidationErrors::default();
        validate_variant("", &fields, &mut errors);
        if let Some(e) = errors.0.first() {
            return refuse(v.line, format!("{} {}", e.field, e.message));
        }
        let written = match current.get(&v.options) {
            Some(existing) if existing.fields == fields => {
                counts.variants_unchanged += 1;
                Ok(Some(existing.id))
            }
            Some(existing) => {
                counts.variants_updated += 1;
                catalog::update_variant(tx, scope, product_id, existing.id, &fields)
                    .await
                    .map(|u| u.map(|u| u.id))
            }
            None => {
                counts.variants_created += 1;
                catalog::insert_variant(tx, scope, product_id, &fields)
                    .await
                    .map(|v| Some(v.id))
            }
        };
        let variant_id = match written {
            Ok(Some(id)) => id,
            Ok(None) => {
                return Err(Err(AppError::Internal("variant vanished during import".into())));
            }
            Err(StoreError::Conflict(Constraint::VariantSku)) => {
                return refuse(
                    v.line,
                    format!("SKU '{}' is used by another product", v.sku.as_deref().unwrap_or("")),
                );
            }
            Err(e) => return Err(Err(e.into())),
        };
        let level = inventory::level(tx, scope, variant_id)
            .await
            .map_err(fatal)?
            .map_or(0, |l| l.on_hand);
        let delta = v.inventory_quantity - level;
        if delta != 0 {
            let kind = if current.contains_key(&v.options) {
                MovementKind::Import
            } else {
                MovementKind::Initial
            };
            match inventory::adjust(tx, scope, variant_id, delta, kind, "shopify import", actor)
                .await
                .map_err(fatal)?
            {
                AdjustOutcome::Applied { .. } => stock_moves += 1,
                AdjustOutcome::Refused { level } => {
                    return refuse(
                        v.line,
                        format!(
                            "inventory quantity {} is below the {} units reserved",
                            v.inventory_quantity, level.reserved
                        ),
                    );
                }
                AdjustOutcome::NotFound => {
                    return Err(Err(AppError::Internal("inventory level missing".into())));
                }
            }
        }
    }
    for image in &p.images {
        let outcome = catalog::upsert_image(tx, scope, product_id, &image.src, image.position, &image.alt_text)
            .await
            .map_err(fatal)?;
        match outcome {
            Upsert::Created => counts.images_created += 1,
            Upsert::Updated => counts.images_updated += 1,
            Upsert::Unchanged => counts.images_unchanged += 1,
        }
    }
    // One entry per product written, inside the product's savepoint: a refused product
    // leaves neither rows nor an audit entry behind.
    let changed = counts.products_created
        + counts.products_updated
        + counts.variants_created
        + counts.variants_updated
        + counts.images_created
        + counts.images_updated
        + stock_moves;
    if changed > 0 {
        let summary = [
            ("handle", p.handle.clone()),
            ("created", counts.products_created.to_string()),
            (
                "variants_written",
                (counts.variants_created + counts.variants_updated).to_string(),
            ),
            (
                "images_written",
                (counts.images_created + counts.images_updated).to_string(),
            ),
            ("stock_moves", stock_moves.to_string()),
        ];
        audit::append(tx, ctx.scope(), ctx.audit("import.product", product_id, &summary))
            .await
            .map_err(fatal)?;
    }
    Ok(())
}

fn fatal(e: StoreError) -> Result<ProductRefused, AppError> {
    Err(e.into())
}
