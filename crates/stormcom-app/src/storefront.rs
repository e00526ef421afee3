//! The public storefront: published, active products of a store found by handle.

use stormcom_domain::{Currency, ProductId};
use stormcom_store::catalog::{self, Visibility};
use stormcom_store::tenancy;

use crate::catalog::{Page, ProductView, load_page, load_view};
use crate::{App, AppError, Result};

impl App {
    pub async fn storefront_products(
        &self,
        store_handle: &str,
        after: Option<ProductId>,
        limit: Option<u32>,
    ) -> Result<(Currency, Page<ProductView, ProductId>)> {
        let mut reader = self.db().reader().await?;
        let store = tenancy::find_store_by_handle(&mut reader, store_handle)
            .await?
            .ok_or(AppError::NotFound)?;
        let page = load_page(&mut reader, &store.scope(), Visibility::Storefront, after, limit).await?;
        Ok((currency_of(&store.currency)?, page))
    }

    pub async fn storefront_product(
        &self,
        store_handle: &str,
        product_handle: &str,
    ) -> Result<(Currency, ProductView)> {
        let mut reader = self.db().reader().await?;
        let store = tenancy::find_store_by_handle(&mut reader, store_handle)
            .await?
            .ok_or(AppError::NotFound)?;
        let product = catalog::find_product_by_handle(&mut reader, &store.scope(), product_handle)
            .await?
            .filter(|p| p.fields.published && p.fields.status == stormcom_domain::catalog::ProductStatus::Active)
            .ok_or(AppError::NotFound)?;
        let view = load_view(&mut reader, &store.scope(), product).await?;
        Ok((currency_of(&store.currency)?, view))
    }
}

fn currency_of(code: &str) -> Result<Currency> {
    code.parse()
        .map_err(|_| AppError::Internal(format!("store currency '{code}' is not ISO 4217")))
}
