//! The public storefront: published, active products of a store found by handle.

use stormcom_domain::{Currency, ProductId};
use stormcom_store::catalog::{self, Visibility};

use stormcom_domain::catalog::ProductStatus;

use crate::catalog::{Page, ProductView, load_page};
use crate::{App, AppError, Result, currency_of};

impl App {
    pub async fn storefront_products(
        &self,
        store_handle: &str,
        after: Option<ProductId>,
        limit: Option<u32>,
    ) -> Result<(Currency, Page<ProductView, ProductId>)> {
        let store = self.store_by_handle(store_handle).await?;
        let mut reader = self.db().reader().await?;
        let page = load_page(&mut reader, &store.scope(), Visibility::Storefront, after, limit).await?;
        Ok((currency_of(&store.currency)?, page))
    }

    pub async fn storefront_product(
        &self,
        store_handle: &str,
        product_handle: &str,
    ) -> Result<(Currency, ProductView)> {
        let store = self.store_by_handle(store_handle).await?;
        let scope = store.scope();
        let mut reader = self.db().reader().await?;
        let (product, variants) = catalog::find_product_with_variants_by_handle(&mut reader, &scope, product_handle)
            .await?
            .filter(|(p, _)| p.fields.published && p.fields.status == ProductStatus::Active)
            .ok_or(AppError::NotFound)?;
        let images = catalog::list_images_of_range(&mut reader, &scope, product.id, product.id).await?;
        Ok((
            currency_of(&store.currency)?,
            ProductView {
                product,
                variants,
                images,
            },
        ))
    }
}
