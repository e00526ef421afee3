//! The promotion-velocity rule of the threat model (§5), on both backends.

#![expect(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

pub mod common;

use axum::http::{Method, StatusCode};
use common::Harness;
use serde_json::json;
use stormcom_store::Db;

stormcom_testkit::backend_tests!(a_code_redeemed_too_fast_freezes_itself_until_staff_unfreeze_it);

async fn a_code_redeemed_too_fast_freezes_itself_until_staff_unfreeze_it(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    let (_, variant) = h.product_with_stock(&owner, "tee", 100).await;
    let discounts = format!("/v1/stores/{}/discounts", owner.store_id);
    let created = h
        .post(
            &discounts,
            &owner.token,
            json!({"code": "Flash", "kind": "fixed", "value": 500, "velocity_per_minute": 3}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();

    for i in 0..3 {
        let order = h
            .buy("shop", &variant, 1, &format!("fast{i}@example.com"), Some("FLASH"))
            .await;
        assert_eq!(order.status, StatusCode::CREATED, "{}", order.text);
        assert_eq!(order.body["discount_total"], 500);
    }
    // The fourth within the minute trips the rule: refused, and the code freezes.
    h.buy("shop", &variant, 1, "fast3@example.com", Some("flash"))
        .await
        .assert_problem(StatusCode::CONFLICT, "discount_unavailable");
    let code = h.get(&format!("{discounts}/{id}"), &owner.token).await;
    assert_eq!(
        (code.body["status"].as_str(), code.body["times_used"].as_i64()),
        (Some("frozen"), Some(3))
    );
    let alerts = h
        .get(&format!("/v1/stores/{}/alerts", owner.store_id), &owner.token)
        .await;
    let alert = &alerts.body["data"][0];
    assert_eq!(
        (alert["kind"].as_str(), alert["subject"].as_str()),
        (Some("discount_velocity"), Some(id.as_str()))
    );
    assert!(alert["resolved_at"].is_null());
    assert!(h.audit_actions(&owner).await.iter().any(|a| a == "discount.frozen"));
    // While frozen, applying it to a cart is refused too; a normal order still goes through.
    let cart = h.cart("shop").await;
    h.cart_call(
        Method::POST,
        "shop",
        &cart,
        "/lines",
        Some(json!({"variant_id": variant, "quantity": 1})),
    )
    .await;
    h.cart_call(Method::PUT, "shop", &cart, "/discount", Some(json!({"code": "flash"})))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        h.buy("shop", &variant, 1, "plain@example.com", None).await.status,
        StatusCode::CREATED
    );

    let unfrozen = h
        .call(
            Method::POST,
            &format!("{discounts}/{id}/unfreeze"),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(unfrozen.body["status"], "active", "{}", unfrozen.text);
    let alerts = h
        .get(&format!("/v1/stores/{}/alerts", owner.store_id), &owner.token)
        .await;
    assert!(alerts.body["data"][0]["resolved_at"].is_string());
    h.call(
        Method::POST,
        &format!("{discounts}/{id}/unfreeze"),
        Some(&owner.token),
        None,
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "not_frozen");
    assert!(h.audit_actions(&owner).await.iter().any(|a| a == "discount.unfrozen"));
}
