//! Least privilege: roles, grants, scoped API tokens, TOTP and step-up, through the API,
//! on both backends. Every refusal here is a 403 (or 404 across stores) and is audited.

#![expect(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

pub mod common;

use axum::http::{Method, StatusCode};
use common::{Harness, Owner, totp_code};
use serde_json::{Value, json};
use stormcom_domain::{Permission, Role};
use stormcom_http::routes::Access;
use stormcom_store::Db;

stormcom_testkit::backend_tests!(
    grants_give_access_and_revocation_bites_on_the_next_request,
    escalation_attempts_are_refused_and_audited,
    api_tokens_are_scoped_store_bound_and_revocable,
    totp_login_and_step_up_accept_each_code_once,
    every_builtin_role_against_every_route,
);

async fn grant(h: &Harness, owner: &Owner, token: &str, body: Value) -> common::Resp {
    h.post(&format!("/v1/stores/{}/grants", owner.store_id), token, body)
        .await
}

async fn grants_give_access_and_revocation_bites_on_the_next_request(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    let staff = h.user("staff@shop.example").await;
    let products = format!("/v1/stores/{}/products", owner.store_id);
    h.get(&products, &staff.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    let granted = grant(
        &h,
        &owner,
        &owner.token,
        json!({"user_email": staff.email, "role": "staff"}),
    )
    .await;
    assert_eq!(granted.status, StatusCode::CREATED, "{}", granted.text);
    assert!(granted.body["id"].as_str().unwrap().starts_with("grt_"));
    assert!(
        granted.body["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("catalog:write"))
    );
    assert_eq!(h.get(&products, &staff.token).await.status, StatusCode::OK);
    let stores = h.get("/v1/stores", &staff.token).await;
    assert_eq!(stores.body["data"][0]["roles"], json!(["staff"]));
    h.get(&format!("/v1/stores/{}/grants", owner.store_id), &staff.token)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");

    let grant_id = granted.body["id"].as_str().unwrap();
    let revoked = h
        .call(
            Method::DELETE,
            &format!("/v1/stores/{}/grants/{grant_id}", owner.store_id),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
    h.get(&products, &staff.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    // A single permission, expiring: gone once expired, without anyone revoking it.
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::milliseconds(3000))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let expiring = grant(
        &h,
        &owner,
        &owner.token,
        json!({"user_email": staff.email, "permission": "catalog:read", "expires_at": soon}),
    )
    .await;
    assert_eq!(expiring.status, StatusCode::CREATED, "{}", expiring.text);
    assert_eq!(h.get(&products, &staff.token).await.status, StatusCode::OK);
    h.post(&products, &staff.token, json!({"handle": "x", "title": "X"}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    h.get(&products, &staff.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    let actions = h.audit_actions(&owner).await;
    for action in ["store.created", "grant.created", "grant.revoked", "access.denied"] {
        assert!(actions.iter().any(|a| a == action), "{action} missing from {actions:?}");
    }
}

async fn escalation_attempts_are_refused_and_audited(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    h.enable_totp(&owner.token).await; // confirming counts as a step-up
    let admin = h.user("admin@shop.example").await;
    let staff = h.user("staff@shop.example").await;
    let lead = h.user("lead@shop.example").await;
    for (user, role) in [(&admin, "admin"), (&staff, "staff")] {
        let r = grant(
            &h,
            &owner,
            &owner.token,
            json!({"user_email": user.email, "role": role}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let denied_before = h
        .audit_actions(&owner)
        .await
        .iter()
        .filter(|a| *a == "access.denied")
        .count();

    // Grant yourself admin, without the permission to grant.
    grant(
        &h,
        &owner,
        &staff.token,
        json!({"user_email": staff.email, "role": "admin"}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    // Change your own grant, with the permission to grant.
    grant(
        &h,
        &owner,
        &admin.token,
        json!({"user_email": admin.email, "role": "owner"}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    // Only an owner makes owners.
    grant(
        &h,
        &owner,
        &admin.token,
        json!({"user_email": staff.email, "role": "owner"}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    // An admin-level grant without a fresh second factor.
    grant(
        &h,
        &owner,
        &admin.token,
        json!({"user_email": staff.email, "role": "admin"}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "step_up_required");
    // Grant a permission you do not hold.
    let role = h
        .post(
            &format!("/v1/stores/{}/roles", owner.store_id),
            &owner.token,
            json!({"name": "catalog-lead", "permissions": ["catalog:read", "catalog:write", "access:read", "access:grant"]}),
        )
        .await;
    assert_eq!(role.status, StatusCode::CREATED, "{}", role.text);
    let role_id = role.body["id"].as_str().unwrap();
    let r = grant(
        &h,
        &owner,
        &owner.token,
        json!({"user_email": lead.email, "role_id": role_id}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    grant(
        &h,
        &owner,
        &lead.token,
        json!({"user_email": staff.email, "permission": "orders:refund"}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    h.post(
        &format!("/v1/stores/{}/roles", owner.store_id),
        &lead.token,
        json!({"name": "refunder", "permissions": ["orders:refund"]}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    // A token with a scope you lack.
    let r = grant(
        &h,
        &owner,
        &owner.token,
        json!({"user_email": lead.email, "permission": "tokens:write"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let tokens = format!("/v1/stores/{}/api-tokens", owner.store_id);
    h.post(
        &tokens,
        &lead.token,
        json!({"name": "sneaky", "scopes": ["orders:refund"]}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let fine = h
        .post(
            &tokens,
            &lead.token,
            json!({"name": "reader", "scopes": ["catalog:read"]}),
        )
        .await;
    assert_eq!(fine.status, StatusCode::CREATED, "{}", fine.text);
    // Revoke your own grant.
    let list = h
        .get(&format!("/v1/stores/{}/grants", owner.store_id), &admin.token)
        .await;
    let admin_user = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["role"] == "admin")
        .unwrap();
    let own = admin_user["id"].as_str().unwrap();
    h.call(
        Method::DELETE,
        &format!("/v1/stores/{}/grants/{own}", owner.store_id),
        Some(&admin.token),
        None,
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");

    let denied_after = h
        .audit_actions(&owner)
        .await
        .iter()
        .filter(|a| *a == "access.denied")
        .count();
    assert!(
        denied_after - denied_before >= 8,
        "every refusal is audited ({denied_before} → {denied_after})"
    );
    let verify = h
        .get(&format!("/v1/stores/{}/audit/verify", owner.store_id), &owner.token)
        .await;
    assert_eq!(verify.body["ok"], true, "{}", verify.text);
}

async fn api_tokens_are_scoped_store_bound_and_revocable(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    let other = h.owner("other").await;
    let tokens = format!("/v1/stores/{}/api-tokens", owner.store_id);
    let created = h
        .post(
            &tokens,
            &owner.token,
            json!({"name": "catalog sync", "scopes": ["catalog:read"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let secret = created.body["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sc_") && secret.len() == 107, "{secret}");
    let listed = h.get(&tokens, &owner.token).await;
    assert!(!listed.text.contains(&secret[3..]), "the secret is never shown again");
    assert_eq!(listed.body["data"][0]["name"], "catalog sync");

    let products = format!("/v1/stores/{}/products", owner.store_id);
    assert_eq!(h.get(&products, &secret).await.status, StatusCode::OK);
    h.post(&products, &secret, json!({"handle": "x", "title": "X"}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    h.get(&format!("/v1/stores/{}/products", other.store_id), &secret)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let stores = h.get("/v1/stores", &secret).await;
    assert_eq!(stores.body["data"].as_array().unwrap().len(), 1);
    let used = h.get(&tokens, &owner.token).await;
    assert!(used.body["data"][0]["last_used_at"].is_string());
    // A tampered token fails its checksum: 401, like an unknown one.
    let mut tampered = secret.clone();
    tampered.replace_range(50..51, if &secret[50..51] == "a" { "b" } else { "a" });
    h.get(&products, &tampered)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");

    let id = created.body["id"].as_str().unwrap();
    let revoked = h
        .call(Method::DELETE, &format!("{tokens}/{id}"), Some(&owner.token), None)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    h.get(&products, &secret)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");

    // An expired token is dead too.
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::milliseconds(3000))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let short = h
        .post(
            &tokens,
            &owner.token,
            json!({"name": "short", "scopes": ["catalog:read"], "expires_at": soon}),
        )
        .await;
    let short = short.body["token"].as_str().unwrap().to_owned();
    assert_eq!(h.get(&products, &short).await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    h.get(&products, &short)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    // Admin-level scopes need a step-up; unknown scopes are a validation error.
    h.post(
        &tokens,
        &owner.token,
        json!({"name": "admin", "scopes": ["access:grant"]}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "step_up_required");
    h.post(
        &tokens,
        &owner.token,
        json!({"name": "bad", "scopes": ["catalog:everything"]}),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let actions = h.audit_actions(&owner).await;
    assert!(actions.iter().any(|a| a == "token.created") && actions.iter().any(|a| a == "token.revoked"));
}

async fn totp_login_and_step_up_accept_each_code_once(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    let (secret, recovery) = h.enable_totp(&owner.token).await;
    assert_eq!(recovery.len(), 10);
    h.call(Method::POST, "/v1/me/mfa/totp", Some(&owner.token), None)
        .await
        .assert_problem(StatusCode::CONFLICT, "mfa_already_enabled");

    let login = |body: Value| async { h.call(Method::POST, "/v1/auth/login", None, Some(body)).await };
    login(json!({"email": owner.email, "password": common::PASSWORD}))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "mfa_required");
    login(json!({"email": owner.email, "password": common::PASSWORD, "totp_code": "000000"}))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_mfa_code");
    // The confirmation used this step; the next one is accepted once, then never again.
    let code = totp_code(&secret, 1);
    let ok = login(json!({"email": owner.email, "password": common::PASSWORD, "totp_code": code})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    login(json!({"email": owner.email, "password": common::PASSWORD, "totp_code": code}))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_mfa_code");
    let token = ok.body["token"].as_str().unwrap().to_owned();
    h.post("/v1/auth/step-up", &token, json!({"code": code}))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_mfa_code");

    // Recovery codes: single use, typed with or without dashes.
    let rc = recovery[0].replace('-', "").to_uppercase();
    let stepped = h.post("/v1/auth/step-up", &token, json!({"recovery_code": rc})).await;
    assert_eq!(stepped.status, StatusCode::OK, "{}", stepped.text);
    assert!(stepped.body["valid_until"].is_string());
    h.post("/v1/auth/step-up", &token, json!({"recovery_code": recovery[0]}))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_mfa_code");
    let ok = login(json!({"email": owner.email, "password": common::PASSWORD, "recovery_code": recovery[1]})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);

    // Failures reach the platform chain.
    let mut reader = h.app.db().reader().await.unwrap();
    let platform = stormcom_store::audit::entries(&mut reader, uuid_nil(), 0, 1000)
        .await
        .unwrap();
    let actions: Vec<&str> = platform.iter().map(|e| e.record.action.as_str()).collect();
    for action in [
        "mfa.enabled",
        "login.failed",
        "mfa.step_up",
        "mfa.step_up_failed",
        "session.created",
    ] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
    assert!(
        !platform
            .iter()
            .any(|e| format!("{:?}", e.record).contains(&owner.email)),
        "no emails in the audit log"
    );
}

fn uuid_nil() -> uuid::Uuid {
    stormcom_app::App::platform_chain()
}

async fn every_builtin_role_against_every_route(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    h.enable_totp(&owner.token).await;
    let victim = h.user("victim@shop.example").await;
    let mut tokens = vec![(Role::Owner, owner.token.clone())];
    for role in [Role::Admin, Role::Staff, Role::Viewer] {
        let user = h.user(&format!("{}@shop.example", role.as_str())).await;
        let r = grant(
            &h,
            &owner,
            &owner.token,
            json!({"user_email": user.email, "role": role.as_str()}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        tokens.push((role, user.token));
    }
    let provider = h
        .call(
            Method::PUT,
            &format!("/v1/stores/{}/payment-providers/test", owner.store_id),
            Some(&owner.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(provider.status, StatusCode::OK, "{}", provider.text);
    let mut checked = 0;
    for route in h.routes.iter() {
        let Access::Store(permission) = route.access else {
            continue;
        };
        for (role, token) in &tokens {
            // Fresh objects per call, so earlier deletions do not turn into 404s.
            let (product, variant) = h.product_with_stock(&owner, &format!("tee-{checked}"), 100).await;
            let order = h.buy("shop", &variant, 1, "shopper@example.com", None).await;
            assert_eq!(order.status, StatusCode::CREATED, "{}", order.text);
            let payment = h
                .post(
                    &format!(
                        "/v1/stores/{}/orders/{}/payments",
                        owner.store_id,
                        order.body["id"].as_str().unwrap()
                    ),
                    &owner.token,
                    json!({"provider": "test"}),
                )
                .await;
            assert_eq!(payment.status, StatusCode::CREATED, "{}", payment.text);
            let discount = h
                .post(
                    &format!("/v1/stores/{}/discounts", owner.store_id),
                    &owner.token,
                    json!({"code": format!("CODE{checked}"), "kind": "percent", "value": 10}),
                )
                .await;
            assert_eq!(discount.status, StatusCode::CREATED, "{}", discount.text);
            let victim_grant = grant(
                &h,
                &owner,
                &owner.token,
                json!({"user_email": victim.email, "role": "viewer"}),
            )
            .await;
            let token_id = h
                .post(
                    &format!("/v1/stores/{}/api-tokens", owner.store_id),
                    &owner.token,
                    json!({"name": "t", "scopes": ["catalog:read"]}),
                )
                .await
                .body["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let path = route
                .path
                .replace("{store_id}", &owner.store_id)
                .replace("{product_id}", &product)
                .replace("{variant_id}", &variant)
                .replace("{grant_id}", victim_grant.body["id"].as_str().unwrap())
                .replace("{token_id}", &token_id)
                .replace("{order_id}", order.body["id"].as_str().unwrap())
                .replace("{discount_id}", discount.body["id"].as_str().unwrap())
                .replace("{provider}", "test");
            let body = match (route.method.as_str(), route.path.rsplit('/').next().unwrap()) {
                ("POST", "products") => Some(json!({"handle": format!("m-{checked}"), "title": "M"})),
                ("POST", "variants") => Some(json!({"options": [format!("V{checked}")], "price": 1})),
                ("POST", "adjustments") => Some(json!({"delta": 1, "reason": "matrix"})),
                ("POST", "grants") => Some(json!({"user_email": victim.email, "permission": "catalog:read"})),
                ("POST", "roles") => Some(json!({"name": format!("r{checked}"), "permissions": ["catalog:read"]})),
                ("POST", "api-tokens") => Some(json!({"name": "m", "scopes": ["catalog:read"]})),
                ("POST", "discounts") => Some(json!({"code": format!("NEW{checked}"), "kind": "fixed", "value": 100})),
                ("PUT", "{discount_id}") => {
                    Some(json!({"code": format!("CODE{checked}"), "kind": "fixed", "value": 100}))
                }
                ("POST", "resolve-drift") => Some(json!({"reason": "counted"})),
                ("POST", "payments") => Some(json!({"provider": "test"})),
                ("POST", "refunds") => Some(json!({"amount": 1, "reason": "matrix"})),
                ("PUT", "{provider}") => Some(json!({})),
                ("PATCH", _) if route.path.contains("/variants/") => Some(json!({"price": 2})),
                ("PATCH", _) => Some(json!({"title": "Matrix"})),
                _ => None,
            };
            let response = if route.path.ends_with("/imports/shopify") {
                h.post_csv(&path, token, b"Handle,Title,Variant Price\nmatrix,Matrix,1\n")
                    .await
            } else {
                h.call(route.method.clone(), &path, Some(token), body).await
            };
            let allowed = role.permissions().contains(permission)
                && (permission != Permission::CatalogWrite
                    || !route.path.ends_with("/imports/shopify")
                    || role.permissions().contains(Permission::InventoryWrite));
            if allowed {
                // Allowed: the request reaches the use case, whose own rules may still
                // answer 409 (say, fulfilling an unpaid order) but never 401/403/404.
                let reached = response.status.is_success() || response.status == StatusCode::CONFLICT;
                assert!(reached, "{role:?} {} {}: {}", route.method, route.path, response.text);
            } else {
                response.assert_problem(StatusCode::FORBIDDEN, "forbidden");
            }
            checked += 1;
        }
    }
    let store_routes = h.routes.iter().filter(|r| matches!(r.access, Access::Store(_))).count();
    assert!(store_routes >= 20);
    assert_eq!(checked, 4 * store_routes, "every built-in role met every store route");
}
