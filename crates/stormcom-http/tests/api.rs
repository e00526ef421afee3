//! The Admin and storefront API, end to end through the router, on both backends.

#![expect(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

pub mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Harness, Owner, PASSWORD};
use serde_json::{Value, json};
use stormcom_http::routes::Access;
use stormcom_store::Db;

stormcom_testkit::backend_tests!(
    login_logout_and_bearer_tokens,
    every_route_declares_access_and_refuses_anonymous_callers,
    another_stores_paths_and_ids_answer_404_and_change_nothing,
    catalog_round_trip,
    bad_input_is_refused_with_problem_json_and_changes_nothing,
    concurrent_adjustments_never_overdraw,
    storefront_shows_only_published_products_without_internal_fields,
    stores_list_shows_only_the_callers_stores,
    storefront_answers_are_cached_briefly_and_only_when_found,
);

async fn login_logout_and_bearer_tokens(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;

    let wrong_password = h.login(&owner.email, "not the password").await;
    let unknown_email = h.login("nobody@nowhere.example", PASSWORD).await;
    wrong_password.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    unknown_email.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(
        wrong_password.body["detail"], unknown_email.body["detail"],
        "same answer for both"
    );
    // Email matching ignores case and surrounding blanks.
    let relaxed = h.login(&format!("  {}  ", owner.email.to_uppercase()), PASSWORD).await;
    assert_eq!(relaxed.status, StatusCode::OK);
    assert_eq!(relaxed.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
    let token = relaxed.body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("scs_") && token.len() == 68, "{token}");

    let anonymous = h.call(Method::GET, "/v1/stores", None, None).await;
    anonymous.assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(anonymous.headers.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
    let garbage = h.get("/v1/stores", "scs_not-a-real-token").await;
    garbage.assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(h.get("/v1/stores", &token).await.status, StatusCode::OK);

    let logout = h.call(Method::POST, "/v1/auth/logout", Some(&token), None).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    h.get("/v1/stores", &token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    // The other session of the same user is untouched.
    assert_eq!(h.get("/v1/stores", &owner.token).await.status, StatusCode::OK);
}

/// Substitutes syntactically valid ids for every path parameter.
fn concrete_path(template: &str, store_id: &str, product_id: &str, variant_id: &str, store_handle: &str) -> String {
    template
        .replace("{store_id}", store_id)
        .replace("{product_id}", product_id)
        .replace("{variant_id}", variant_id)
        .replace("{store_handle}", store_handle)
        .replace("{handle}", "some-handle")
}

async fn every_route_declares_access_and_refuses_anonymous_callers(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    let (product, variant) = h.product_with_stock(&owner, "tee", 3).await;
    assert!(h.routes.len() >= 20, "the table holds the whole API");

    let openapi = h.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(openapi.status, StatusCode::OK);
    let mut seen = std::collections::HashSet::new();
    for route in &h.routes {
        assert!(
            seen.insert((route.method.clone(), route.path)),
            "duplicate route {} {}",
            route.method,
            route.path
        );
        let documented = &openapi.body["paths"][route.path][route.method.as_str().to_lowercase()];
        assert!(
            documented.is_object(),
            "{} {} is missing from the OpenAPI document",
            route.method,
            route.path
        );
        if route.access == Access::Public {
            continue;
        }
        // Deny by default: without credentials, every non-public route answers 401,
        // before any body is looked at.
        let path = concrete_path(route.path, &owner.store_id, &product, &variant, "shop");
        let response = h.call(route.method.clone(), &path, None, Some(json!({}))).await;
        response.assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
        assert!(
            documented["security"].is_array(),
            "{} documents its bearer requirement",
            route.path
        );
    }
    // Nothing changed.
    let level = h
        .get(
            &format!("/v1/stores/{}/inventory/{variant}", owner.store_id),
            &owner.token,
        )
        .await;
    assert_eq!(level.body["on_hand"], 3);
}

/// A valid body for each mutating route, so a 404 is about the ids, not the payload.
fn sample_request(method: &Method, path: &str) -> Option<Value> {
    match (method.as_str(), path.rsplit('/').next().unwrap_or("")) {
        ("POST", "products") => Some(json!({"handle": "intruder", "title": "Intruder"})),
        ("POST", "variants") => Some(json!({"options": ["XL"], "price": 1})),
        ("POST", "adjustments") => Some(json!({"delta": -1, "reason": "theft"})),
        ("POST", "grants") => Some(json!({"user_email": "owner@store-a.example", "role": "viewer"})),
        ("POST" | "PUT", "discounts" | "{discount_id}") => {
            Some(json!({"code": "STOLEN", "kind": "percent", "value": 99}))
        }
        ("POST", "resolve-drift") => Some(json!({"reason": "cover-up"})),
        ("POST", "roles") => Some(json!({"name": "intruders", "permissions": ["catalog:read"]})),
        ("POST", "api-tokens") => Some(json!({"name": "intruder", "scopes": ["catalog:read"]})),
        ("PATCH", _) => Some(json!({"price": 1}))
            .filter(|_| path.contains("/variants/"))
            .or(Some(json!({"title": "Owned"}))),
        _ => None,
    }
}

async fn another_stores_paths_and_ids_answer_404_and_change_nothing(db: Db) {
    let h = Harness::new(db);
    let a = h.owner("store-a").await;
    let b = h.owner("store-b").await;
    let (a_product, a_variant) = h.product_with_stock(&a, "a-tee", 5).await;
    let (b_product, b_variant) = h.product_with_stock(&b, "b-tee", 5).await;
    let b_grants = h.get(&format!("/v1/stores/{}/grants", b.store_id), &b.token).await;
    let b_grant = b_grants.body["data"][0]["id"].as_str().unwrap().to_owned();
    let b_token = h
        .post(
            &format!("/v1/stores/{}/api-tokens", b.store_id),
            &b.token,
            json!({"name": "b", "scopes": ["catalog:read"]}),
        )
        .await;
    let b_token = b_token.body["id"].as_str().unwrap().to_owned();
    let b_order = h.buy("store-b", &b_variant, 1, "shopper@b.example", None).await;
    let b_order = b_order.body["id"].as_str().unwrap().to_owned();
    let b_discount = h
        .post(
            &format!("/v1/stores/{}/discounts", b.store_id),
            &b.token,
            json!({"code": "BONLY", "kind": "percent", "value": 5}),
        )
        .await;
    let b_discount = b_discount.body["id"].as_str().unwrap().to_owned();
    let before = h.snapshot(&b).await;

    let mut checked = 0;
    for route in h.routes.iter().filter(|r| matches!(r.access, Access::Store(_))) {
        // 1. B's store in the path (with B's ids). 2. A's own store path with B's ids.
        for (store, product, variant) in [
            (&b.store_id, &b_product, &b_variant),
            (&a.store_id, &b_product, &b_variant),
        ] {
            let names_an_object = ["{product_id}", "{variant_id}", "{grant_id}", "{token_id}"]
                .iter()
                .any(|p| route.path.contains(p));
            if store == &a.store_id && !names_an_object {
                continue; // A's own collection routes are legitimately A's.
            }
            let path = concrete_path(route.path, store, product, variant, "")
                .replace("{grant_id}", &b_grant)
                .replace("{token_id}", &b_token)
                .replace("{order_id}", &b_order)
                .replace("{discount_id}", &b_discount);
            let response = if route.path.ends_with("/imports/shopify") {
                h.post_csv(&path, &a.token, b"Handle,Title,Variant Price\nb-tee,Hijacked,1\n")
                    .await
            } else {
                h.call(
                    route.method.clone(),
                    &path,
                    Some(&a.token),
                    sample_request(&route.method, route.path),
                )
                .await
            };
            response.assert_problem(StatusCode::NOT_FOUND, "not_found");
            checked += 1;
        }
    }
    assert!(checked >= 20, "checked {checked} route/id combinations");
    assert_eq!(h.snapshot(&b).await, before, "store B is unchanged");
    // A 404 for another tenant's store is identical to a 404 for a store that does not exist.
    let missing = h
        .get(
            &format!("/v1/stores/{}/products", "str_0000000000007000800000000000abcd"),
            &a.token,
        )
        .await;
    let foreign = h.get(&format!("/v1/stores/{}/products", b.store_id), &a.token).await;
    assert_eq!(
        (missing.status, &missing.body["detail"]),
        (foreign.status, &foreign.body["detail"])
    );
    // A's own objects are still reachable, so the 404s above were about ownership.
    let own = h
        .get(
            &format!("/v1/stores/{}/products/{a_product}/variants/{a_variant}", a.store_id),
            &a.token,
        )
        .await;
    assert_eq!(own.status, StatusCode::OK);
}

async fn catalog_round_trip(db: Db) {
    let h = Harness::new(db);
    let o = h.owner("shop").await;
    let base = format!("/v1/stores/{}", o.store_id);
    let created = h
        .post(
            &format!("{base}/products"),
            &o.token,
            json!({
                "handle": "linen-shirt", "title": "Linen Shirt", "vendor": "Acme", "tags": ["summer", "linen"],
                "options": ["Size", "Color"], "published": true,
                "variants": [
                    {"options": ["S", "White"], "price": 4299, "compare_at_price": 5000, "sku": "LS-S-W", "inventory_quantity": 4},
                    {"options": ["M", "White"], "price": 4299, "inventory_policy": "continue"}
                ]
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let product = created.body["id"].as_str().unwrap().to_owned();
    assert!(product.starts_with("prod_"));
    assert_eq!(created.body["variants"][0]["title"], "S / White");
    assert_eq!(created.body["variants"][0]["currency"], "USD");
    assert_eq!(
        created.body["variants"][0]["inventory"],
        json!({"on_hand": 4, "reserved": 0, "available": 4})
    );

    let patched = h
        .call(
            Method::PATCH,
            &format!("{base}/products/{product}"),
            Some(&o.token),
            Some(json!({"title": "Linen Shirt II", "status": "draft"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["title"], "Linen Shirt II");
    assert_eq!(patched.body["vendor"], "Acme", "fields not in the patch are kept");
    assert_eq!(patched.body["status"], "draft");

    let added = h
        .post(
            &format!("{base}/products/{product}/variants"),
            &o.token,
            json!({"options": ["L", "White"], "price": 4599}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let variant = added.body["id"].as_str().unwrap().to_owned();
    assert_eq!(added.body["position"], 3);
    let cleared = h
        .call(
            Method::PATCH,
            &format!("{base}/products/{product}/variants/{variant}"),
            Some(&o.token),
            Some(json!({"sku": "LS-L-W", "compare_at_price": null, "price": 4499})),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text);
    assert_eq!(
        (cleared.body["sku"].as_str(), cleared.body["price"].as_i64()),
        (Some("LS-L-W"), Some(4499))
    );
    let list = h.get(&format!("{base}/products/{product}/variants"), &o.token).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 3);

    // Pagination: stable order, a cursor per page, null at the end.
    for handle in ["p-2", "p-3"] {
        h.product_with_stock(&o, handle, 0).await;
    }
    let first = h.get(&format!("{base}/products?limit=2"), &o.token).await;
    assert_eq!(first.body["data"].as_array().unwrap().len(), 2);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = h
        .get(&format!("{base}/products?limit=2&after={cursor}"), &o.token)
        .await;
    assert_eq!(second.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(second.body["data"][0]["handle"], "p-3");
    assert!(second.body["next_cursor"].is_null());

    let deleted = h
        .call(
            Method::DELETE,
            &format!("{base}/products/{product}/variants/{variant}"),
            Some(&o.token),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let deleted = h
        .call(
            Method::DELETE,
            &format!("{base}/products/{product}"),
            Some(&o.token),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    h.get(&format!("{base}/products/{product}"), &o.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    h.call(
        Method::DELETE,
        &format!("{base}/products/{product}"),
        Some(&o.token),
        None,
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

async fn bad_input_is_refused_with_problem_json_and_changes_nothing(db: Db) {
    let h = Harness::new(db);
    let o = h.owner("shop").await;
    let (product, variant) = h.product_with_stock(&o, "tee", 2).await;
    let base = format!("/v1/stores/{}", o.store_id);
    let products = format!("{base}/products");
    let before = h.snapshot(&o).await;
    let raw = |method: Method, path: &str, content_type: &str, body: Vec<u8>| {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", o.token))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    };

    h.send(raw(
        Method::POST,
        &products,
        "application/json",
        b"{\"handle\": \"x\",".to_vec(),
    ))
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "malformed_json");
    // A valid object followed by anything but whitespace is not JSON either.
    h.send(raw(
        Method::POST,
        &products,
        "application/json",
        b"{\"handle\": \"trailing\", \"title\": \"T\"}garbage".to_vec(),
    ))
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "malformed_json");
    h.send(raw(Method::POST, &products, "text/plain", b"{}".to_vec()))
        .await
        .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let smuggled = h
        .post(
            &products,
            &o.token,
            json!({"handle": "x", "title": "X", "store_id": "str_0000000000007000800000000000abcd"}),
        )
        .await;
    smuggled.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "unknown_field");
    assert_eq!(smuggled.body["detail"], "unknown field 'store_id'");
    let nested = h
        .post(
            &products,
            &o.token,
            json!({"handle": "x", "title": "X", "variants": [{"price": 1, "bar": 2}]}),
        )
        .await;
    assert_eq!(nested.body["detail"], "unknown field 'variants[0].bar'");
    let canary = "canary-4111111111111111@example.com";
    let wrong_type = h
        .post(
            &products,
            &o.token,
            json!({"handle": "x", "title": "X", "vendor": 42, "tags": canary}),
        )
        .await;
    wrong_type.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert!(!wrong_type.text.contains(canary), "errors never echo submitted values");
    h.post(&products, &o.token, json!({"title": "No handle"}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "missing_field");
    let negative = h
        .post(&products, &o.token, json!({"handle": "neg", "title": "Neg", "variants": [{"price": -100}, {"price": 1, "options": ["B"], "inventory_quantity": -1}]}))
        .await;
    negative.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields: Vec<&str> = negative.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["variants[0].price", "variants[1].inventory_quantity"]);
    h.post(&products, &o.token, json!({"handle": "Bad Handle", "title": "X"}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    h.post(
        &products,
        &o.token,
        json!({"handle": "x", "title": "X", "variants": [{"price": 12.99}]}),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    h.post(&products, &o.token, json!({"handle": "tee", "title": "Again"}))
        .await
        .assert_problem(StatusCode::CONFLICT, "handle_taken");
    // A product whose second variant fails leaves no first variant behind.
    h.post(&products, &o.token, json!({"handle": "dup", "title": "Dup", "variants": [{"price": 1, "options": ["A"]}, {"price": 1, "options": ["A"]}]}))
        .await
        .assert_problem(StatusCode::CONFLICT, "variant_exists");
    let huge = vec![b' '; 300 * 1024];
    h.send(raw(Method::POST, &products, "application/json", huge))
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    for query in ["limit=0", "limit=101"] {
        h.get(&format!("{products}?{query}"), &o.token)
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    h.get(&format!("{products}?after=bogus"), &o.token)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_cursor");
    let typo = h.get(&format!("{products}?limt=5"), &o.token).await;
    typo.assert_problem(StatusCode::BAD_REQUEST, "invalid_query");
    assert_eq!(typo.body["detail"], "unknown query parameter 'limt'");
    h.get(&format!("{products}?limit=abc"), &o.token)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_query");
    h.get(&format!("{products}/prod_nothex"), &o.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    h.get(&format!("{products}/{variant}"), &o.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    h.get("/v1/stores/not-an-id/products", &o.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    let adjust = format!("{base}/inventory/{variant}/adjustments");
    h.post(&adjust, &o.token, json!({"delta": -3, "reason": "count"}))
        .await
        .assert_problem(StatusCode::CONFLICT, "insufficient_stock");
    h.post(&adjust, &o.token, json!({"delta": 0, "reason": "count"}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    h.post(&adjust, &o.token, json!({"delta": 1, "reason": " "}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    h.post(&adjust, &o.token, json!({"delta": "1", "reason": "x"}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    h.call(
        Method::PATCH,
        &format!("{products}/{product}"),
        Some(&o.token),
        Some(json!({"id": "prod_x"})),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "unknown_field");
    h.call(
        Method::PATCH,
        &format!("{products}/{product}/variants/{variant}"),
        Some(&o.token),
        Some(json!({"price": -1})),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    h.call(Method::GET, "/v1/no-such-thing", None, None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    h.call(Method::PUT, &products, Some(&o.token), None)
        .await
        .assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");

    assert_eq!(h.snapshot(&o).await, before, "no refused request changed anything");
    // And the server still serves.
    assert_eq!(h.call(Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
}

async fn concurrent_adjustments_never_overdraw(db: Db) {
    let h = Harness::new(db);
    let o = h.owner("shop").await;
    let (_, variant) = h.product_with_stock(&o, "hot", 10).await;
    let path = format!("/v1/stores/{}/inventory/{variant}/adjustments", o.store_id);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let router = h.router.clone();
        let request = Request::post(&path)
            .header(header::AUTHORIZATION, format!("Bearer {}", o.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(format!("{{\"delta\": -1, \"reason\": \"sale {i}\"}}")))
            .unwrap();
        tasks.spawn(async move { tower::ServiceExt::oneshot(router, request).await.unwrap().status() });
    }
    let statuses = tasks.join_all().await;
    let succeeded = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
    assert_eq!((succeeded, refused), (10, 40), "{statuses:?}");

    let level = h
        .get(&format!("/v1/stores/{}/inventory/{variant}", o.store_id), &o.token)
        .await;
    assert_eq!(
        (level.body["on_hand"].as_i64(), level.body["available"].as_i64()),
        (Some(0), Some(0))
    );
    let ledger = h
        .get(
            &format!("/v1/stores/{}/inventory/{variant}/movements?limit=100", o.store_id),
            &o.token,
        )
        .await;
    let movements = ledger.body["data"].as_array().unwrap();
    assert_eq!(movements.len(), 11, "the initial stock and ten sales");
    assert_eq!(
        movements.iter().map(|m| m["delta"].as_i64().unwrap()).sum::<i64>(),
        0,
        "the ledger sums to the balance"
    );
    assert_eq!(movements.last().unwrap()["on_hand_after"], 0);
}

async fn storefront_shows_only_published_products_without_internal_fields(db: Db) {
    let h = Harness::new(db);
    let o = h.owner("shop").await;
    let other = h.owner("other").await;
    h.product_with_stock(&o, "visible", 1).await;
    h.product_with_stock(&other, "elsewhere", 1).await;
    let base = format!("/v1/stores/{}/products", o.store_id);
    for (handle, extra) in [
        ("unpublished", json!({"published": false})),
        ("draft", json!({"published": true, "status": "draft"})),
    ] {
        let mut body = json!({"handle": handle, "title": handle});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        assert_eq!(h.post(&base, &o.token, body).await.status, StatusCode::CREATED);
    }
    let list = h.call(Method::GET, "/v1/storefront/shop/products", None, None).await;
    assert_eq!(list.status, StatusCode::OK);
    let handles: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["handle"].as_str().unwrap())
        .collect();
    assert_eq!(handles, vec!["visible"]);
    let product = h
        .call(Method::GET, "/v1/storefront/shop/products/visible", None, None)
        .await;
    assert_eq!(product.status, StatusCode::OK);
    let variant = &product.body["variants"][0];
    assert_eq!(
        (variant["price"].as_i64(), variant["available_for_sale"].as_bool()),
        (Some(4299), Some(true))
    );
    for internal in ["status", "published", "created_at", "updated_at"] {
        assert!(product.body.get(internal).is_none(), "storefront leaks {internal}");
    }
    for internal in ["inventory", "inventory_policy", "position", "product_id"] {
        assert!(variant.get(internal).is_none(), "storefront leaks {internal}");
    }
    for path in [
        "/v1/storefront/shop/products/draft",
        "/v1/storefront/shop/products/unpublished",
        "/v1/storefront/shop/products/elsewhere",
        "/v1/storefront/nope/products",
    ] {
        h.call(Method::GET, path, None, None)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
}

async fn stores_list_shows_only_the_callers_stores(db: Db) {
    let h = Harness::new(db);
    let a: Owner = h.owner("alpha").await;
    h.owner("beta").await;
    let second = h
        .app
        .create_store("Alpha Outlet", "alpha-outlet", "EUR", &a.email)
        .await
        .unwrap();
    let list = h.get("/v1/stores", &a.token).await;
    let handles: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["handle"].as_str().unwrap())
        .collect();
    assert_eq!(handles, vec!["alpha", "alpha-outlet"]);
    assert_eq!(list.body["data"][1]["id"], second.id.to_string());
    assert_eq!(list.body["data"][1]["roles"], json!(["owner"]));
}

async fn storefront_answers_are_cached_briefly_and_only_when_found(db: Db) {
    // Long enough that the three calls below fit in it even on a loaded CI machine.
    let ttl = std::time::Duration::from_millis(3000);
    let h = Harness::with_config(
        db,
        &stormcom_http::HttpConfig {
            storefront_cache_ttl: ttl,
            ..Default::default()
        },
    );
    let o = h.owner("shop").await;
    let path = "/v1/storefront/shop/products/tee";
    h.call(Method::GET, path, None, None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let (product, _) = h.product_with_stock(&o, "tee", 1).await;
    let first = h.call(Method::GET, path, None, None).await;
    assert_eq!(first.status, StatusCode::OK, "a 404 is never cached");
    assert_eq!(first.headers.get(header::CACHE_CONTROL).unwrap(), "public, max-age=3");
    let rename = json!({"title": "Renamed"});
    let patched = h
        .call(
            Method::PATCH,
            &format!("/v1/stores/{}/products/{product}", o.store_id),
            Some(&o.token),
            Some(rename),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    let cached = h.call(Method::GET, path, None, None).await;
    assert_eq!(
        cached.body["title"], "Product tee",
        "served from the cache within the TTL"
    );
    assert!(cached.headers.get("x-request-id").is_some());
    tokio::time::sleep(ttl + std::time::Duration::from_millis(200)).await;
    let fresh = h.call(Method::GET, path, None, None).await;
    assert_eq!(fresh.body["title"], "Renamed", "and fresh after it");
    // The admin API is never cached.
    let admin = h
        .get(&format!("/v1/stores/{}/products/{product}", o.store_id), &o.token)
        .await;
    assert_eq!(admin.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
}
