//! Plan quotas on both backends: twenty concurrent creates against a quota of three
//! leave exactly three (stores, products, API tokens); the refusal is problem+json
//! `quota_exceeded`; the import refuses products beyond the quota row by row; a better
//! plan lifts the cap.

#![expect(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

pub mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::{Harness, PASSWORD};
use serde_json::json;
use stormcom_app::{AppConfig, AppError};
use stormcom_domain::{Plan, PlanTable, Quota};
use stormcom_http::HttpConfig;
use stormcom_store::Db;

stormcom_testkit::backend_tests!(
    concurrent_product_creates_stop_exactly_at_the_quota,
    concurrent_token_creates_stop_exactly_at_the_quota,
    concurrent_store_creates_stop_exactly_at_the_quota,
    the_import_refuses_products_beyond_the_quota_row_by_row,
);

const CONCURRENT: usize = 20;

fn with_free_plan(db: Db, spec: &str) -> Arc<Harness> {
    let mut plans = PlanTable::default();
    plans.override_plan(Plan::Free, spec).unwrap();
    let app = AppConfig {
        plans,
        ..AppConfig::default()
    };
    let http = HttpConfig {
        storefront_cache_ttl: std::time::Duration::ZERO,
        ..HttpConfig::default()
    };
    Arc::new(Harness::with_configs(db, app, &http))
}

/// Runs `CONCURRENT` copies of `call(i)` at once; returns their statuses.
async fn at_once<F, Fut>(call: F) -> Vec<StatusCode>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = common::Resp> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CONCURRENT {
        let fut = call(i);
        tasks.spawn(async move {
            let r = fut.await;
            if r.status != StatusCode::CREATED {
                r.assert_problem(StatusCode::FORBIDDEN, "quota_exceeded");
            }
            r.status
        });
    }
    tasks.join_all().await
}

fn created(statuses: &[StatusCode]) -> usize {
    statuses.iter().filter(|s| **s == StatusCode::CREATED).count()
}

async fn concurrent_product_creates_stop_exactly_at_the_quota(db: Db) {
    let h = with_free_plan(db, "products=3");
    let owner = h.owner("shop").await;
    let path = format!("/v1/stores/{}/products", owner.store_id);
    let statuses = at_once(|i| {
        let (h, path, token) = (h.clone(), path.clone(), owner.token.clone());
        async move {
            h.post(&path, &token, json!({"handle": format!("p{i}"), "title": "P"}))
                .await
        }
    })
    .await;
    assert_eq!(created(&statuses), 3, "{statuses:?}");
    let listed = h.get(&format!("{path}?limit=100"), &owner.token).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 3);

    let refused = h
        .post(&path, &owner.token, json!({"handle": "late", "title": "P"}))
        .await;
    refused.assert_problem(StatusCode::FORBIDDEN, "quota_exceeded");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("free plan allows at most 3 products per store"),
        "{}",
        refused.text
    );

    // A better plan lifts the cap.
    let store = h.app.store_by_handle("shop").await.unwrap();
    let (org, _) = h.app.org_of_store(store.id).await.unwrap();
    h.app.set_org_plan(org, Plan::Pro).await.unwrap();
    let after = h
        .post(&path, &owner.token, json!({"handle": "late", "title": "P"}))
        .await;
    assert_eq!(after.status, StatusCode::CREATED, "{}", after.text);
}

async fn concurrent_token_creates_stop_exactly_at_the_quota(db: Db) {
    let h = with_free_plan(db, "tokens=3");
    let owner = h.owner("shop").await;
    let path = format!("/v1/stores/{}/api-tokens", owner.store_id);
    let statuses = at_once(|i| {
        let (h, path, token) = (h.clone(), path.clone(), owner.token.clone());
        async move {
            h.post(
                &path,
                &token,
                json!({"name": format!("t{i}"), "scopes": ["catalog:read"]}),
            )
            .await
        }
    })
    .await;
    assert_eq!(created(&statuses), 3, "{statuses:?}");
    let listed = h.get(&path, &owner.token).await;
    let tokens = listed.body["data"].as_array().unwrap();
    assert_eq!(tokens.len(), 3);

    // The quota counts live tokens: revoking one makes room for one.
    let id = tokens[0]["id"].as_str().unwrap();
    let revoked = h
        .call(
            axum::http::Method::DELETE,
            &format!("{path}/{id}"),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
    let again = h
        .post(
            &path,
            &owner.token,
            json!({"name": "again", "scopes": ["catalog:read"]}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    h.post(&path, &owner.token, json!({"name": "over", "scopes": ["catalog:read"]}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "quota_exceeded");
}

async fn concurrent_store_creates_stop_exactly_at_the_quota(db: Db) {
    let h = with_free_plan(db, "stores=3");
    let email = "owner@chain.example";
    h.app.create_user(email, PASSWORD).await.unwrap();
    // No organization yet: the first creates race to make it, too.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CONCURRENT {
        let h = h.clone();
        tasks.spawn(async move {
            h.app
                .create_store(&format!("Shop {i}"), &format!("shop-{i}"), "USD", email)
                .await
        });
    }
    let mut made = 0;
    for result in tasks.join_all().await {
        match result {
            Ok(_) => made += 1,
            Err(AppError::QuotaExceeded { quota, plan, limit }) => {
                assert_eq!((quota, plan, limit), (Quota::Stores, Plan::Free, 3));
            }
            Err(other) => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!(made, 3);
    let login = h.login(email, PASSWORD).await;
    let stores = h.get("/v1/stores", login.body["token"].as_str().unwrap()).await;
    let stores = stores.body["data"].as_array().unwrap();
    assert_eq!(stores.len(), 3, "one organization, three stores");
    let ids: Vec<_> = stores
        .iter()
        .map(|s| s["id"].as_str().unwrap().parse().unwrap())
        .collect();
    let orgs: std::collections::BTreeSet<String> = {
        let mut orgs = std::collections::BTreeSet::new();
        for id in ids {
            orgs.insert(h.app.org_of_store(id).await.unwrap().0.to_string());
        }
        orgs
    };
    assert_eq!(orgs.len(), 1, "concurrent first stores share one organization");
}

async fn the_import_refuses_products_beyond_the_quota_row_by_row(db: Db) {
    let h = with_free_plan(db, "products=5");
    let owner = h.owner("shop").await;
    let csv = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/shopify/apparel.csv"
    ))
    .unwrap();
    let path = format!("/v1/stores/{}/imports/shopify", owner.store_id);
    let first = h.post_csv(&path, &owner.token, &csv).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.body["products_created"], 5, "{}", first.text);
    assert_eq!(first.body["products_rejected"], 15, "{}", first.text);
    let reasons: Vec<&str> = first.body["rows_rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 15);
    assert!(
        reasons
            .iter()
            .all(|r| r.contains("free plan allows at most 5 products per store")),
        "{reasons:?}"
    );
    // Re-importing still updates what exists and refuses the rest.
    let again = h.post_csv(&path, &owner.token, &csv).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["products_created"], 0, "{}", again.text);
    assert_eq!(again.body["products_unchanged"], 5, "{}", again.text);
    assert_eq!(again.body["products_rejected"], 15, "{}", again.text);
}
