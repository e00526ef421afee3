//! Request rate limits through the real router, on both backends: 429 problem+json with
//! `Retry-After` and the IETF RateLimit headers; budgets per principal, per client
//! address (forwarded headers only from trusted proxies), per class and per plan. Rates
//! are one request a minute so no budget refills while a test runs. Plus the shared
//! Redis backend (two limiters, one budget) when a Redis is configured.

#![expect(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

pub mod common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use common::{Harness, Owner, Resp};
use serde_json::json;
use stormcom_domain::{Plan, PlanTable};
use stormcom_http::HttpConfig;
use stormcom_http::ratelimit::{LimitKey, RateLimitConfig, RateLimiter};
use stormcom_http::routes::RouteClass;
use stormcom_store::Db;

stormcom_testkit::backend_tests!(
    over_the_limit_a_route_answers_429_with_retry_after_and_ratelimit_headers,
    principals_have_separate_budgets,
    public_routes_are_limited_per_client_address,
    forwarded_headers_count_only_from_a_trusted_proxy,
    route_classes_have_independent_budgets,
    invalid_tokens_spend_the_client_address_budget,
    a_pro_organization_gets_a_larger_budget,
    an_ipv6_client_gets_one_budget_for_its_whole_64,
    a_rate_limited_refusal_leaves_no_audit_entry,
);

fn limited(db: Db, rates: &str, trusted_proxies: &str) -> Harness {
    let config = HttpConfig {
        storefront_cache_ttl: std::time::Duration::ZERO,
        trusted_proxies: trusted_proxies.parse().unwrap(),
        rate_limiter: Some(RateLimiter::in_memory(
            &format!("off,{rates}").parse().unwrap(),
            &PlanTable::default(),
        )),
        ..HttpConfig::default()
    };
    Harness::with_config(db, &config)
}

/// A request as if it came over a connection from `peer`.
async fn from(h: &Harness, peer: &str, method: Method, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(Body::empty()).unwrap();
    let peer: SocketAddr = format!("{peer}:40000").parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    h.send(request).await
}

async fn products(h: &Harness, owner: &Owner) -> Resp {
    h.get(&format!("/v1/stores/{}/products", owner.store_id), &owner.token)
        .await
}

fn header<'a>(r: &'a Resp, name: &str) -> &'a str {
    r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

fn assert_limited(r: &Resp, class: &str) {
    r.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = header(r, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "one request a minute: {retry}");
    assert_eq!(header(r, "ratelimit"), format!("\"{class}\";r=0;t={retry}"));
    assert!(header(r, "ratelimit-policy").starts_with(&format!("\"{class}\";q=")));
}

async fn over_the_limit_a_route_answers_429_with_retry_after_and_ratelimit_headers(db: Db) {
    let h = limited(db, "admin_read=1/3,admin_write=1/2", "");
    let owner = h.owner("shop").await;
    for remaining in [2, 1, 0] {
        let ok = products(&h, &owner).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
        assert_eq!(header(&ok, "ratelimit-policy"), "\"admin_read\";q=3;w=180");
        assert!(
            header(&ok, "ratelimit").starts_with(&format!("\"admin_read\";r={remaining};t=")),
            "{:?}",
            ok.headers
        );
    }
    assert_limited(&products(&h, &owner).await, "admin_read");

    // A refused write changes nothing.
    let path = format!("/v1/stores/{}/products", owner.store_id);
    for handle in ["a", "b"] {
        let created = h
            .post(&path, &owner.token, json!({"handle": handle, "title": "T"}))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    }
    let refused = h.post(&path, &owner.token, json!({"handle": "c", "title": "T"})).await;
    assert_limited(&refused, "admin_write");
    let listed = h
        .app
        .list_products(&operator_ctx(&h, &owner).await, None, Some(100))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2, "the refused create wrote nothing");
}

async fn operator_ctx(h: &Harness, owner: &Owner) -> stormcom_app::StoreContext {
    let store = h.app.store_by_handle(&owner.store_handle).await.unwrap();
    stormcom_app::StoreContext::operator(store.scope(), "USD".parse().unwrap())
}

async fn principals_have_separate_budgets(db: Db) {
    let h = limited(db, "admin_read=1/2", "");
    let ann = h.owner("ann").await;
    let bob = h.owner("bob").await;
    for _ in 0..2 {
        assert_eq!(products(&h, &ann).await.status, StatusCode::OK);
    }
    assert_limited(&products(&h, &ann).await, "admin_read");
    assert_eq!(
        products(&h, &bob).await.status,
        StatusCode::OK,
        "bob has his own budget"
    );

    // An API token of Ann's store is a principal of its own.
    let token = h
        .post(
            &format!("/v1/stores/{}/api-tokens", ann.store_id),
            &ann.token,
            json!({"name": "feed", "scopes": ["catalog:read"]}),
        )
        .await;
    assert_eq!(token.status, StatusCode::CREATED, "{}", token.text);
    let feed = Owner {
        token: token.body["token"].as_str().unwrap().to_owned(),
        ..ann.clone()
    };
    assert_eq!(products(&h, &feed).await.status, StatusCode::OK);
    assert_limited(&products(&h, &ann).await, "admin_read");
}

async fn public_routes_are_limited_per_client_address(db: Db) {
    let h = limited(db, "storefront_read=1/2", "");
    let owner = h.owner("shop").await;
    let path = format!("/v1/storefront/{}/products", owner.store_handle);
    for _ in 0..2 {
        assert_eq!(
            from(&h, "203.0.113.1", Method::GET, &path, &[]).await.status,
            StatusCode::OK
        );
    }
    assert_limited(
        &from(&h, "203.0.113.1", Method::GET, &path, &[]).await,
        "storefront_read",
    );
    // An unknown store costs the same: probing is not free.
    assert_limited(
        &from(&h, "203.0.113.1", Method::GET, "/v1/storefront/nope/products", &[]).await,
        "storefront_read",
    );
    assert_eq!(
        from(&h, "203.0.113.2", Method::GET, &path, &[]).await.status,
        StatusCode::OK
    );
    // Health checks are never limited.
    for _ in 0..5 {
        assert_eq!(
            from(&h, "203.0.113.1", Method::GET, "/healthz", &[]).await.status,
            StatusCode::OK
        );
    }
}

async fn forwarded_headers_count_only_from_a_trusted_proxy(db: Db) {
    let h = limited(db, "storefront_read=1/1,admin_write=1/5", "10.0.0.0/8");
    let owner = h.owner("shop").await;
    let path = format!("/v1/storefront/{}/products", owner.store_handle);
    let via_proxy = |client: &'static str| [("x-forwarded-for", client)];

    // Through our proxy, each client address has its own budget…
    let first = from(&h, "10.0.0.5", Method::GET, &path, &via_proxy("198.51.100.1")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_limited(
        &from(&h, "10.0.0.6", Method::GET, &path, &via_proxy("198.51.100.1")).await,
        "storefront_read",
    );
    let other = from(&h, "10.0.0.5", Method::GET, &path, &via_proxy("198.51.100.2")).await;
    assert_eq!(other.status, StatusCode::OK);
    // …and a client cannot escape by prepending addresses of its own.
    assert_limited(
        &from(
            &h,
            "10.0.0.5",
            Method::GET,
            &path,
            &[("x-forwarded-for", "1.2.3.4, 198.51.100.2")],
        )
        .await,
        "storefront_read",
    );
    // A peer that is not our proxy is itself the client, whatever it forwards.
    let direct = from(&h, "203.0.113.9", Method::GET, &path, &via_proxy("198.51.100.3")).await;
    assert_eq!(direct.status, StatusCode::OK);
    assert_limited(
        &from(&h, "203.0.113.9", Method::GET, &path, &via_proxy("198.51.100.4")).await,
        "storefront_read",
    );

    // The audit trail records the same address the limiter used.
    let request = Request::post(format!("/v1/stores/{}/products", owner.store_id))
        .header(header::AUTHORIZATION, format!("Bearer {}", owner.token))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", "6.6.6.6, 198.51.100.7")
        .extension(ConnectInfo("10.0.0.5:40000".parse::<SocketAddr>().unwrap()))
        .body(Body::from(json!({"handle": "tee", "title": "Tee"}).to_string()))
        .unwrap();
    let created = h.send(request).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let audit = h
        .get(&format!("/v1/stores/{}/audit?limit=100", owner.store_id), &owner.token)
        .await;
    let entry = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "product.created")
        .unwrap();
    assert_eq!(entry["actor_ip"], "198.51.100.7");
}

async fn route_classes_have_independent_budgets(db: Db) {
    let h = limited(db, "storefront_read=1/1,checkout=1/1,auth=1/1", "");
    let owner = h.owner("shop").await;
    let ip = "203.0.113.20";
    let read = format!("/v1/storefront/{}/products", owner.store_handle);
    assert_eq!(from(&h, ip, Method::GET, &read, &[]).await.status, StatusCode::OK);
    assert_limited(&from(&h, ip, Method::GET, &read, &[]).await, "storefront_read");
    let carts = format!("/v1/storefront/{}/carts", owner.store_handle);
    assert_eq!(
        from(&h, ip, Method::POST, &carts, &[]).await.status,
        StatusCode::CREATED
    );
    assert_limited(&from(&h, ip, Method::POST, &carts, &[]).await, "checkout");
    let logout = from(&h, ip, Method::POST, "/v1/auth/logout", &[]).await;
    assert_ne!(logout.status, StatusCode::TOO_MANY_REQUESTS, "{}", logout.text);
    assert_limited(&from(&h, ip, Method::POST, "/v1/auth/logout", &[]).await, "auth");
}

async fn invalid_tokens_spend_the_client_address_budget(db: Db) {
    let h = limited(db, "admin_read=1/2", "");
    let owner = h.owner("shop").await;
    let path = format!("/v1/stores/{}/products", owner.store_id);
    let bogus = [("authorization", "Bearer not-a-real-token")];
    for _ in 0..2 {
        from(&h, "203.0.113.30", Method::GET, &path, &bogus)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    assert_limited(
        &from(&h, "203.0.113.30", Method::GET, &path, &bogus).await,
        "admin_read",
    );
    // The owner's own budget is untouched, even from that address.
    let real = format!("Bearer {}", owner.token);
    let ok = from(&h, "203.0.113.30", Method::GET, &path, &[("authorization", &real)]).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
}

async fn a_pro_organization_gets_a_larger_budget(db: Db) {
    let h = limited(db, "admin_read=1/2", "");
    let owner = h.owner("shop").await;
    for _ in 0..2 {
        assert_eq!(products(&h, &owner).await.status, StatusCode::OK);
    }
    assert_limited(&products(&h, &owner).await, "admin_read");
    let store = h.app.store_by_handle("shop").await.unwrap();
    let (org, plan) = h.app.org_of_store(store.id).await.unwrap();
    assert_eq!(plan, Plan::Free);
    assert_eq!(h.app.set_org_plan(org, Plan::Pro).await.unwrap(), Plan::Free);
    let pro_burst = (2.0 * PlanTable::default().get(Plan::Pro).rate_multiplier).ceil() as usize;
    for _ in 0..pro_burst {
        let ok = products(&h, &owner).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    }
    assert_limited(&products(&h, &owner).await, "admin_read");
    // The change of plan is on the platform audit chain.
    let report = h.app.verify_chain(uuid::Uuid::nil(), None, &|_, _| {}).await.unwrap();
    assert!(report.failure.is_none());
}

/// Two limiters (as in two server processes) over one Redis spend one budget.
#[tokio::test]
async fn two_limiters_sharing_redis_spend_one_budget() {
    let Some(url) = stormcom_testkit::redis_url() else {
        return;
    };
    let config: RateLimitConfig = "off,checkout=1/5".parse().unwrap();
    let prefix = format!("stormcom:test:{}", uuid::Uuid::now_v7().simple());
    let plans = PlanTable::default();
    let a = RateLimiter::with_redis(&config, &plans, &url, &prefix).await.unwrap();
    let b = RateLimiter::with_redis(&config, &plans, &url, &prefix).await.unwrap();
    let key = LimitKey::Ip("203.0.113.40".parse().unwrap());
    let mut allowed = 0;
    for i in 0..12 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        let decision = limiter.check(RouteClass::Checkout, Plan::Free, &key).await.unwrap();
        if decision.allowed {
            allowed += 1;
        } else {
            assert!((1..=60).contains(&decision.wait_secs()));
        }
    }
    assert_eq!(allowed, 5, "one budget of 5 across both limiters");
    let other = LimitKey::Ip("203.0.113.41".parse().unwrap());
    assert!(a.check(RouteClass::Checkout, Plan::Free, &other).await.unwrap().allowed);
}

/// When Redis goes away at run time the limiter neither blocks nor opens the gates: it
/// decides with this process's in-memory budget. (Redis is reached through a relay the
/// test can cut, so the real Redis stays up for the other tests.)
#[tokio::test]
async fn a_redis_outage_falls_back_to_in_memory_limits() {
    let Some(url) = stormcom_testkit::redis_url() else {
        return;
    };
    let target = url.trim_start_matches("redis://").split('/').next().unwrap().to_owned();
    let relay = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_url = format!("redis://{}", relay.local_addr().unwrap());
    let acceptor = tokio::spawn(async move {
        let mut inner = tokio::task::JoinSet::new();
        loop {
            let (mut client, _) = relay.accept().await.unwrap();
            let target = target.clone();
            inner.spawn(async move {
                let mut server = tokio::net::TcpStream::connect(target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });

    let config: RateLimitConfig = "off,checkout=1/3".parse().unwrap();
    let prefix = format!("stormcom:test:{}", uuid::Uuid::now_v7().simple());
    let limiter = RateLimiter::with_redis(&config, &PlanTable::default(), &relay_url, &prefix)
        .await
        .unwrap();
    let key = LimitKey::Ip("203.0.113.50".parse().unwrap());
    let check = || limiter.check(RouteClass::Checkout, Plan::Free, &key);
    for _ in 0..3 {
        assert!(check().await.unwrap().allowed);
    }
    assert!(!check().await.unwrap().allowed, "the shared budget is spent");

    // Cut Redis off (the acceptor owns every relayed connection).
    acceptor.abort();
    let _ = acceptor.await;
    let mut answers = Vec::new();
    for _ in 0..4 {
        let started = std::time::Instant::now();
        let decision = check().await.unwrap();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "a dead Redis must not stall requests"
        );
        answers.push(decision.allowed);
    }
    // This process's own budget of three, then refusals: limits still hold.
    assert_eq!(answers, [true, true, true, false]);
}

async fn an_ipv6_client_gets_one_budget_for_its_whole_64(db: Db) {
    let h = limited(db, "storefront_read=1/2", "");
    let owner = h.owner("shop").await;
    let path = format!("/v1/storefront/{}/products", owner.store_handle);
    for peer in ["[2001:db8:1:2::1]", "[2001:db8:1:2::2]"] {
        assert_eq!(from(&h, peer, Method::GET, &path, &[]).await.status, StatusCode::OK);
    }
    // Another address in the same /64 is the same client.
    assert_limited(
        &from(&h, "[2001:db8:1:2:ffff::9]", Method::GET, &path, &[]).await,
        "storefront_read",
    );
    assert_eq!(
        from(&h, "[2001:db8:1:3::1]", Method::GET, &path, &[]).await.status,
        StatusCode::OK,
        "the next /64 is someone else"
    );
}

/// A member lacking the permission is audited once per refusal, but a request the rate
/// limit refuses first leaves nothing behind: the limit also caps audit growth.
async fn a_rate_limited_refusal_leaves_no_audit_entry(db: Db) {
    let h = limited(db, "admin_write=1/2", "");
    let owner = h.owner("shop").await;
    let viewer = h.user("viewer@shop.example").await;
    let granted = h
        .post(
            &format!("/v1/stores/{}/grants", owner.store_id),
            &owner.token,
            json!({"user_email": viewer.email, "role": "viewer"}),
        )
        .await;
    assert_eq!(granted.status, StatusCode::CREATED, "{}", granted.text);
    let path = format!("/v1/stores/{}/products", owner.store_id);
    for _ in 0..2 {
        h.post(&path, &viewer.token, json!({"handle": "x", "title": "X"}))
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    for _ in 0..5 {
        assert_limited(
            &h.post(&path, &viewer.token, json!({"handle": "x", "title": "X"})).await,
            "admin_write",
        );
    }
    let denied = h
        .audit_actions(&owner)
        .await
        .iter()
        .filter(|a| *a == "access.denied")
        .count();
    assert_eq!(denied, 2, "only the refusals that got past the limit are audited");
}
