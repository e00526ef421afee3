//! Repository behaviour, written once and run on SQLite and PostgreSQL.

#![expect(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

use stormcom_domain::catalog::{InventoryPolicy, ProductStatus};
use stormcom_domain::{ProductId, Role};
use stormcom_store::catalog::{self, ProductFields, VariantFields, Visibility};
use stormcom_store::inventory::{self, AdjustOutcome, MovementKind};
use stormcom_store::{Constraint, Db, StoreError, StoreScope, access, identity, tenancy};

stormcom_testkit::backend_tests!(
    named_constraints_map_to_domain_errors,
    another_scope_sees_nothing,
    the_movement_ledger_is_append_only,
    adjustments_never_overdraw,
    pages_follow_creation_order,
);

async fn store(db: &Db, handle: &str) -> StoreScope {
    let mut tx = db.begin().await.unwrap();
    let user = identity::create_user(&mut tx, &format!("{handle}@example.test"), "hash")
        .await
        .unwrap();
    let org = tenancy::create_organization(&mut tx, handle, user).await.unwrap();
    let store = tenancy::create_store(&mut tx, org, handle, handle, "USD")
        .await
        .unwrap();
    access::create_grant(
        &mut tx,
        &store.scope(),
        user,
        &access::GrantSubject::Role(Role::Owner),
        user,
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    store.scope()
}

fn product(handle: &str) -> ProductFields {
    ProductFields {
        handle: handle.into(),
        title: handle.into(),
        description_html: String::new(),
        vendor: String::new(),
        product_type: String::new(),
        tags: vec!["a".into()],
        option_names: ["Size".into(), String::new(), String::new()],
        status: ProductStatus::Active,
        published: true,
    }
}

fn variant(size: &str, sku: Option<&str>) -> VariantFields {
    VariantFields {
        sku: sku.map(Into::into),
        options: [size.into(), String::new(), String::new()],
        price: 4299,
        compare_at_price: None,
        grams: 0,
        inventory_policy: InventoryPolicy::Deny,
    }
}

async fn named_constraints_map_to_domain_errors(db: Db) {
    let scope = store(&db, "shop").await;
    let mut tx = db.begin().await.unwrap();
    let p = catalog::insert_product(&mut tx, &scope, &product("tee")).await.unwrap();
    catalog::insert_variant(&mut tx, &scope, p.id, &variant("S", Some("SKU-1")))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = db.begin().await.unwrap();
    let err = catalog::insert_product(&mut tx, &scope, &product("tee"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(Constraint::ProductHandle)),
        "{err:?}"
    );
    drop(tx);

    let mut tx = db.begin().await.unwrap();
    let err = catalog::insert_variant(&mut tx, &scope, p.id, &variant("M", Some("SKU-1")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Constraint::VariantSku)), "{err:?}");
    drop(tx);

    let mut tx = db.begin().await.unwrap();
    let err = catalog::insert_variant(&mut tx, &scope, p.id, &variant("S", None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(Constraint::VariantOptions)),
        "{err:?}"
    );
    drop(tx);

    let mut tx = db.begin().await.unwrap();
    let user = identity::create_user(&mut tx, "shop@example.test", "x")
        .await
        .unwrap_err();
    assert!(matches!(user, StoreError::Conflict(Constraint::UserEmail)), "{user:?}");
}

async fn another_scope_sees_nothing(db: Db) {
    let a = store(&db, "a").await;
    let b = store(&db, "b").await;
    let mut tx = db.begin().await.unwrap();
    let p = catalog::insert_product(&mut tx, &a, &product("tee")).await.unwrap();
    let v = catalog::insert_variant(&mut tx, &a, p.id, &variant("S", None))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut r = db.reader().await.unwrap();
    assert!(catalog::find_product(&mut r, &b, p.id).await.unwrap().is_none());
    assert!(
        catalog::find_product_by_handle(&mut r, &b, "tee")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        catalog::list_products(&mut r, &b, Visibility::All, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(catalog::find_variant(&mut r, &b, p.id, v.id).await.unwrap().is_none());
    assert!(inventory::level(&mut r, &b, v.id).await.unwrap().is_none());
    drop(r);

    let mut tx = db.begin().await.unwrap();
    assert!(!catalog::delete_product(&mut tx, &b, p.id).await.unwrap());
    assert!(
        catalog::update_product(&mut tx, &b, p.id, &product("stolen"))
            .await
            .unwrap()
            .is_none()
    );
    let outcome = inventory::adjust(&mut tx, &b, v.id, 5, MovementKind::Adjustment, "x", "t")
        .await
        .unwrap();
    assert_eq!(outcome, AdjustOutcome::NotFound);
    // Same handle in another store is fine: handles are unique per store.
    catalog::insert_product(&mut tx, &b, &product("tee")).await.unwrap();
    tx.commit().await.unwrap();

    let mut r = db.reader().await.unwrap();
    let still = catalog::find_product(&mut r, &a, p.id).await.unwrap().unwrap();
    assert_eq!(still.fields.handle, "tee");
}

async fn the_movement_ledger_is_append_only(db: Db) {
    let scope = store(&db, "shop").await;
    let mut tx = db.begin().await.unwrap();
    let p = catalog::insert_product(&mut tx, &scope, &product("tee")).await.unwrap();
    let v = catalog::insert_variant(&mut tx, &scope, p.id, &variant("S", None))
        .await
        .unwrap();
    inventory::adjust(&mut tx, &scope, v.id, 3, MovementKind::Adjustment, "count", "t")
        .await
        .unwrap();
    tx.commit().await.unwrap();

    for sql in [
        "UPDATE inventory_movements SET delta = 100",
        "DELETE FROM inventory_movements",
    ] {
        let err = db.execute_admin(sql).await.unwrap_err();
        assert!(err.to_string().contains("append_only"), "{sql}: {err}");
    }
    // Deleting the product keeps its history.
    let mut tx = db.begin().await.unwrap();
    assert!(catalog::delete_product(&mut tx, &scope, p.id).await.unwrap());
    tx.commit().await.unwrap();
    let mut r = db.reader().await.unwrap();
    assert_eq!(inventory::ledger_on_hand(&mut r, &scope, v.id).await.unwrap(), 3);
}

async fn adjustments_never_overdraw(db: Db) {
    let scope = store(&db, "shop").await;
    let mut tx = db.begin().await.unwrap();
    let p = catalog::insert_product(&mut tx, &scope, &product("tee")).await.unwrap();
    let v = catalog::insert_variant(&mut tx, &scope, p.id, &variant("S", None))
        .await
        .unwrap();
    inventory::adjust(&mut tx, &scope, v.id, 2, MovementKind::Adjustment, "in", "t")
        .await
        .unwrap();
    let refused = inventory::adjust(&mut tx, &scope, v.id, -3, MovementKind::Adjustment, "out", "t")
        .await
        .unwrap();
    assert!(matches!(refused, AdjustOutcome::Refused { level } if level.on_hand == 2));
    tx.commit().await.unwrap();

    // The CHECK constraint holds even against a statement that skips the guard.
    let sql =
        "UPDATE inventory_levels SET on_hand = -1 WHERE variant_id IN (SELECT id FROM variants WHERE sku IS NULL)"
            .to_string();
    let err = db.execute_admin(&sql).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Check(Constraint::InventoryOnHandNonNegative)),
        "{err:?}"
    );
}

async fn pages_follow_creation_order(db: Db) {
    let scope = store(&db, "shop").await;
    let mut tx = db.begin().await.unwrap();
    let mut ids: Vec<ProductId> = Vec::new();
    for i in 0..7 {
        let mut fields = product(&format!("p{i}"));
        fields.published = i % 2 == 0;
        ids.push(catalog::insert_product(&mut tx, &scope, &fields).await.unwrap().id);
    }
    tx.commit().await.unwrap();
    let mut r = db.reader().await.unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = catalog::list_products(&mut r, &scope, Visibility::All, after, 3)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        seen.extend(page.iter().map(|p| p.id));
    }
    assert_eq!(seen, ids);
    let public = catalog::list_products(&mut r, &scope, Visibility::Storefront, None, 100)
        .await
        .unwrap();
    assert_eq!(public.len(), 4);
}
