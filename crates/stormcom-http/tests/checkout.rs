//! Checkout under contention, on both backends: the real server listens on an ephemeral
//! port of 127.0.0.1 and the races are real concurrent HTTP requests over TCP, released
//! together by a barrier. Setup and read-backs may go through the in-process router of
//! the same `App` (same database, same keys).

#![expect(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

pub mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{Harness, Owner, Resp};
use serde_json::{Value, json};
use stormcom_app::{App, AppConfig, Keys};
use stormcom_http::HttpConfig;
use stormcom_store::Db;
use stormcom_store::commerce;
use tokio::sync::Barrier;

stormcom_testkit::backend_tests!(
    hot_sku_never_oversells,
    lines_of_one_variant_are_summed,
    usage_limit_holds_under_contention,
    per_customer_limit_holds_under_contention,
    cancellations_racing_redemptions_never_lose_or_duplicate_a_use,
    expiry_racing_payment_is_one_or_the_other,
    reconciliation_blocks_only_the_drifted_sku,
    bad_checkout_input_changes_nothing,
    customer_pii_is_sealed_at_rest_and_shown_to_staff,
);

// ---------------------------------------------------------------- the server and its client

/// A cart id and its secret.
type Cart = (String, String);

/// The running server, reached over TCP by a real HTTP client. Cheap to clone.
#[derive(Clone)]
struct Server {
    base: String,
    http: reqwest::Client,
}

impl Server {
    /// Serves a second router over `app` on 127.0.0.1:0 for the rest of the test.
    async fn start(app: &App) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = HttpConfig {
            storefront_cache_ttl: Duration::ZERO,
            ..HttpConfig::default()
        };
        let router = stormcom_http::build(app.clone(), &config).router;
        tokio::spawn(axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).into_future());
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Self { base, http }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        cart_secret: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(secret) = cart_secret {
            request = request.header("x-cart-secret", secret);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        Resp {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// An Admin API call as the owner; `tail` follows `/v1/stores/{store_id}`.
    async fn admin(&self, method: Method, owner: &Owner, tail: &str, body: Option<Value>) -> Resp {
        let path = format!("/v1/stores/{}{tail}", owner.store_id);
        self.call(method, &path, Some(&owner.token), None, body).await
    }

    async fn new_cart(&self, store: &str) -> Cart {
        let created = self
            .call(Method::POST, &format!("/v1/storefront/{store}/carts"), None, None, None)
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        (
            created.body["id"].as_str().unwrap().to_owned(),
            created.body["secret"].as_str().unwrap().to_owned(),
        )
    }

    /// A storefront call on a cart, with its secret; `tail` follows the cart id.
    async fn on_cart(&self, method: Method, store: &str, cart: &Cart, tail: &str, body: Option<Value>) -> Resp {
        let path = format!("/v1/storefront/{store}/carts/{}{tail}", cart.0);
        self.call(method, &path, None, Some(&cart.1), body).await
    }

    /// A new cart holding these lines and the shopper's email, with the code applied.
    async fn ready_cart(&self, store: &str, lines: &[(&str, i64)], email: &str, code: Option<&str>) -> Cart {
        let cart = self.new_cart(store).await;
        for (variant, quantity) in lines {
            let body = json!({"variant_id": variant, "quantity": quantity});
            let added = self.on_cart(Method::POST, store, &cart, "/lines", Some(body)).await;
            assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
        }
        let contact = self
            .on_cart(Method::PUT, store, &cart, "/contact", Some(json!({"email": email})))
            .await;
        assert_eq!(contact.status, StatusCode::OK, "{}", contact.text);
        if let Some(code) = code {
            let applied = self
                .on_cart(Method::PUT, store, &cart, "/discount", Some(json!({"code": code})))
                .await;
            assert_eq!(applied.status, StatusCode::OK, "{}", applied.text);
        }
        cart
    }

    async fn checkout(&self, store: &str, cart: &Cart) -> Resp {
        self.on_cart(Method::POST, store, cart, "/checkout", None).await
    }
}

// ---------------------------------------------------------------- racing

type Job<T> = Pin<Box<dyn Future<Output = T> + Send>>;

fn job<T>(future: impl Future<Output = T> + Send + 'static) -> Job<T> {
    Box::pin(future)
}

/// Runs every job on a task of its own, all released at once by a barrier; the answers
/// come back in job order.
async fn all_at_once<T: Send + 'static>(jobs: Vec<Job<T>>) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(jobs.len()));
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                job.await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(handles.len());
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    answers
}

/// Carts of `quantity` units of one variant, one per email, prepared concurrently.
async fn ready_carts(
    server: &Server,
    store: &str,
    variant: &str,
    quantity: i64,
    emails: Vec<String>,
    code: Option<&str>,
) -> Vec<Cart> {
    let jobs = emails
        .into_iter()
        .map(|email| {
            let (server, store, variant) = (server.clone(), store.to_owned(), variant.to_owned());
            let code = code.map(str::to_owned);
            job(async move {
                server
                    .ready_cart(&store, &[(&variant, quantity)], &email, code.as_deref())
                    .await
            })
        })
        .collect();
    all_at_once(jobs).await
}

/// Checks out every cart at once.
async fn checkout_all(server: &Server, store: &str, carts: &[Cart]) -> Vec<Resp> {
    let jobs = carts
        .iter()
        .map(|cart| {
            let (server, store, cart) = (server.clone(), store.to_owned(), cart.clone());
            job(async move { server.checkout(&store, &cart).await })
        })
        .collect();
    all_at_once(jobs).await
}

/// The same owner action on every order at once; `action` is `mark-paid`, `cancel`…
async fn on_orders(server: &Server, owner: &Owner, ids: &[String], action: &str) -> Vec<Resp> {
    let jobs = ids
        .iter()
        .map(|id| {
            let (server, owner, tail) = (server.clone(), owner.clone(), format!("/orders/{id}/{action}"));
            job(async move { server.admin(Method::POST, &owner, &tail, None).await })
        })
        .collect();
    all_at_once(jobs).await
}

/// How many answers had each status (and problem code): `"201"`, `"409 insufficient_stock"`.
fn tally(answers: &[Resp]) -> BTreeMap<String, usize> {
    let mut tally = BTreeMap::new();
    for answer in answers {
        let key = match answer.body["code"].as_str() {
            Some(code) if !answer.status.is_success() => format!("{} {code}", answer.status.as_u16()),
            _ => answer.status.as_u16().to_string(),
        };
        *tally.entry(key).or_default() += 1;
    }
    tally
}

fn counts(expected: &[(&str, usize)]) -> BTreeMap<String, usize> {
    expected
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| ((*k).to_owned(), *n))
        .collect()
}

fn ids_of<'a>(answers: impl IntoIterator<Item = &'a Resp>) -> Vec<String> {
    answers
        .into_iter()
        .map(|a| a.body["id"].as_str().unwrap().to_owned())
        .collect()
}

fn emails(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}@example.com")).collect()
}

// ---------------------------------------------------------------- read-backs (in-process)

/// A harness whose `App` has this configuration.
fn harness_with(db: Db, config: AppConfig) -> Harness {
    let app = App::new(db, config, Keys::generate().unwrap());
    let api = stormcom_http::build(
        app.clone(),
        &HttpConfig {
            storefront_cache_ttl: Duration::ZERO,
            ..HttpConfig::default()
        },
    );
    Harness {
        router: api.router,
        routes: api.routes,
        app,
    }
}

/// (on_hand, reserved, available) of a variant.
async fn level(h: &Harness, owner: &Owner, variant: &str) -> (i64, i64, i64) {
    let found = h
        .get(
            &format!("/v1/stores/{}/inventory/{variant}", owner.store_id),
            &owner.token,
        )
        .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
    let field = |name: &str| found.body[name].as_i64().unwrap();
    (field("on_hand"), field("reserved"), field("available"))
}

/// The kinds of a variant's ledger entries, oldest first.
async fn movement_kinds(h: &Harness, owner: &Owner, variant: &str) -> Vec<String> {
    let path = format!("/v1/stores/{}/inventory/{variant}/movements?limit=100", owner.store_id);
    let page = h.get(&path, &owner.token).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.body["next_cursor"].is_null(), "one page holds the whole ledger");
    page.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn count(kinds: &[String], kind: &str) -> usize {
    kinds.iter().filter(|k| *k == kind).count()
}

/// Every order of the store.
async fn orders(h: &Harness, owner: &Owner) -> Vec<Value> {
    let page = h
        .get(&format!("/v1/stores/{}/orders?limit=100", owner.store_id), &owner.token)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.body["next_cursor"].is_null(), "one page holds every order");
    page.body["data"].as_array().unwrap().clone()
}

/// Order id → status.
async fn statuses(h: &Harness, owner: &Owner) -> BTreeMap<String, String> {
    orders(h, owner)
        .await
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap().to_owned(),
                o["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn create_discount(h: &Harness, owner: &Owner, body: Value) -> String {
    let created = h
        .post(&format!("/v1/stores/{}/discounts", owner.store_id), &owner.token, body)
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    created.body["id"].as_str().unwrap().to_owned()
}

async fn times_used(h: &Harness, owner: &Owner, discount: &str) -> i64 {
    let found = h
        .get(
            &format!("/v1/stores/{}/discounts/{discount}", owner.store_id),
            &owner.token,
        )
        .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
    found.body["times_used"].as_i64().unwrap()
}

/// Active redemption rows of a code, straight from the store layer.
async fn active_redemptions(h: &Harness, store_handle: &str, discount: &str) -> i64 {
    let scope = h.app.store_by_handle(store_handle).await.unwrap().scope();
    let mut reader = h.app.db().reader().await.unwrap();
    commerce::active_redemptions(&mut reader, &scope, discount.parse().unwrap())
        .await
        .unwrap()
}

async fn reconcile(h: &Harness, owner: &Owner) -> Value {
    let path = format!("/v1/stores/{}/inventory/reconcile", owner.store_id);
    let report = h.call(Method::POST, &path, Some(&owner.token), None).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    report.body
}

/// A refusal: problem+json with this status and code and, for validation failures, this
/// code on the first field error.
fn refused(answer: &Resp, status: StatusCode, code: &str, field_code: Option<&str>) {
    answer.assert_problem(status, code);
    if let Some(field_code) = field_code {
        assert_eq!(answer.body["errors"][0]["code"], field_code, "body: {}", answer.text);
    }
}

// ---------------------------------------------------------------- the tests

async fn hot_sku_never_oversells(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    let (_, variant) = h.product_with_stock(&owner, "hot", 10).await;
    let server = Server::start(&h.app).await;

    let carts = ready_carts(&server, "shop", &variant, 1, emails("shopper", 100), None).await;
    let answers = checkout_all(&server, "shop", &carts).await;
    assert_eq!(tally(&answers), counts(&[("201", 10), ("409 insufficient_stock", 90)]));
    for answer in &answers {
        if answer.status == StatusCode::CREATED {
            assert_eq!(answer.body["status"], "pending_payment", "{}", answer.text);
            assert_eq!(answer.body["total"], 4299, "{}", answer.text);
        } else {
            refused(answer, StatusCode::CONFLICT, "insufficient_stock", None);
        }
    }
    assert_eq!(
        level(&h, &owner, &variant).await,
        (10, 10, 0),
        "unpaid orders hold the stock"
    );
    let kinds = movement_kinds(&h, &owner, &variant).await;
    assert_eq!(
        (count(&kinds, "initial"), count(&kinds, "reserved")),
        (1, 10),
        "{kinds:?}"
    );
    assert_eq!(kinds.len(), 11, "{kinds:?}");

    let listed = orders(&h, &owner).await;
    let mut numbers: Vec<i64> = listed.iter().map(|o| o["number"].as_i64().unwrap()).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=10).collect::<Vec<_>>(), "numbers without gaps or repeats");
    let placed = ids_of(answers.iter().filter(|a| a.status == StatusCode::CREATED));
    let listed_ids: BTreeSet<_> = listed.iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(listed_ids, placed.iter().cloned().collect::<BTreeSet<_>>());

    // A refused cart stays open and is refused the same way again.
    let loser = answers.iter().position(|a| a.status == StatusCode::CONFLICT).unwrap();
    refused(
        &server.checkout("shop", &carts[loser]).await,
        StatusCode::CONFLICT,
        "insufficient_stock",
        None,
    );

    // Payment for all ten at once commits exactly the reserved units.
    let paid = on_orders(&server, &owner, &placed, "mark-paid").await;
    assert_eq!(tally(&paid), counts(&[("200", 10)]));
    assert!(paid.iter().all(|p| p.body["status"] == "paid"));
    assert_eq!(level(&h, &owner, &variant).await, (0, 0, 0));
    let kinds = movement_kinds(&h, &owner, &variant).await;
    assert_eq!(count(&kinds, "committed"), 10, "{kinds:?}");
    let report = reconcile(&h, &owner).await;
    assert_eq!(report["variants_checked"], 1);
    assert_eq!(report["drifted"], json!([]), "the ledger agrees with the balances");
    assert_eq!(report["newly_flagged"], 0);
}

async fn lines_of_one_variant_are_summed(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    let (_, variant) = h.product_with_stock(&owner, "tee", 10).await;
    let server = Server::start(&h.app).await;

    let cart = server
        .ready_cart("shop", &[(&variant, 6), (&variant, 6)], "pair@example.com", None)
        .await;
    let view = server.on_cart(Method::GET, "shop", &cart, "", None).await;
    let lines = view.body["lines"].as_array().unwrap().clone();
    assert_eq!(lines.len(), 2, "two lines of one variant: {}", view.text);
    assert_eq!(view.body["subtotal"], 12 * 4299);

    // 6 + 6 is more than the 10 in stock, though each line alone would fit.
    refused(
        &server.checkout("shop", &cart).await,
        StatusCode::CONFLICT,
        "insufficient_stock",
        None,
    );
    assert_eq!(level(&h, &owner, &variant).await, (10, 0, 10), "nothing reserved");
    assert_eq!(movement_kinds(&h, &owner, &variant).await, ["initial"]);
    assert!(orders(&h, &owner).await.is_empty());

    // 5 + 5 fits exactly: one order line of 10.
    for line in &lines {
        let tail = format!("/lines/{}", line["id"].as_str().unwrap());
        let changed = server
            .on_cart(Method::PATCH, "shop", &cart, &tail, Some(json!({"quantity": 5})))
            .await;
        assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    }
    let order = server.checkout("shop", &cart).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.text);
    assert_eq!(order.body["subtotal"], 10 * 4299);
    let id = order.body["id"].as_str().unwrap();
    let detail = h
        .get(&format!("/v1/stores/{}/orders/{id}", owner.store_id), &owner.token)
        .await;
    let order_lines = detail.body["lines"].as_array().unwrap();
    assert_eq!(order_lines.len(), 1, "{}", detail.text);
    assert_eq!(order_lines[0]["quantity"], 10);
    assert_eq!(level(&h, &owner, &variant).await, (10, 10, 0));
    assert_eq!(movement_kinds(&h, &owner, &variant).await, ["initial", "reserved"]);

    // Nothing is left for anyone else.
    let next = server
        .ready_cart("shop", &[(&variant, 1)], "late@example.com", None)
        .await;
    refused(
        &server.checkout("shop", &next).await,
        StatusCode::CONFLICT,
        "insufficient_stock",
        None,
    );
}

async fn usage_limit_holds_under_contention(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    let (_, variant) = h.product_with_stock(&owner, "tee", 100).await;
    let code = create_discount(
        &h,
        &owner,
        json!({"code": "SAVE10", "kind": "percent", "value": 10, "usage_limit": 5}),
    )
    .await;
    let server = Server::start(&h.app).await;

    let carts = ready_carts(&server, "shop", &variant, 1, emails("saver", 50), Some("SAVE10")).await;
    let answers = checkout_all(&server, "shop", &carts).await;
    assert_eq!(tally(&answers), counts(&[("201", 5), ("409 discount_unavailable", 45)]));
    for answer in &answers {
        if answer.status == StatusCode::CREATED {
            assert_eq!(answer.body["discount_id"], code.as_str(), "{}", answer.text);
            assert_eq!(answer.body["discount_total"], 429, "10% of 4299, rounded down");
            assert_eq!(answer.body["total"], 4299 - 429);
        } else {
            refused(answer, StatusCode::CONFLICT, "discount_unavailable", None);
        }
    }
    assert_eq!(times_used(&h, &owner, &code).await, 5);
    assert_eq!(active_redemptions(&h, "shop", &code).await, 5);
    let listed = orders(&h, &owner).await;
    assert_eq!(listed.len(), 5, "refused checkouts left no order");
    assert!(
        listed
            .iter()
            .all(|o| o["discount_id"] == code.as_str() && o["discount_total"].as_i64() > Some(0))
    );
    assert_eq!(
        level(&h, &owner, &variant).await,
        (100, 5, 95),
        "refused checkouts reserved nothing"
    );
    assert_eq!(count(&movement_kinds(&h, &owner, &variant).await, "reserved"), 5);
}

async fn per_customer_limit_holds_under_contention(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    let (_, variant) = h.product_with_stock(&owner, "tee", 100).await;
    let code = create_discount(
        &h,
        &owner,
        json!({"code": "ONCE", "kind": "fixed", "value": 500, "per_customer_limit": 1}),
    )
    .await;
    let server = Server::start(&h.app).await;

    // One shopper, twenty carts, all checked out at once.
    let one_email = vec!["loyal@example.com".to_owned(); 20];
    let carts = ready_carts(&server, "shop", &variant, 1, one_email, Some("ONCE")).await;
    let answers = checkout_all(&server, "shop", &carts).await;
    assert_eq!(
        tally(&answers),
        counts(&[("201", 1), ("409 discount_limit_reached", 19)])
    );
    for answer in &answers {
        if answer.status == StatusCode::CREATED {
            assert_eq!(answer.body["discount_total"], 500, "{}", answer.text);
        } else {
            refused(answer, StatusCode::CONFLICT, "discount_limit_reached", None);
        }
    }
    assert_eq!(times_used(&h, &owner, &code).await, 1);
    assert_eq!(active_redemptions(&h, "shop", &code).await, 1);
    assert_eq!(orders(&h, &owner).await.len(), 1);
    assert_eq!(level(&h, &owner, &variant).await, (100, 1, 99));

    // The limit follows the normalised email; without the code the shopper still buys.
    let again = server
        .ready_cart("shop", &[(&variant, 1)], "  LOYAL@Example.com ", Some("once"))
        .await;
    refused(
        &server.checkout("shop", &again).await,
        StatusCode::CONFLICT,
        "discount_limit_reached",
        None,
    );
    let plain = server
        .ready_cart("shop", &[(&variant, 1)], "loyal@example.com", None)
        .await;
    let order = server.checkout("shop", &plain).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.text);
    assert_eq!(order.body["discount_total"], 0);
    assert_eq!(times_used(&h, &owner, &code).await, 1);
}

async fn cancellations_racing_redemptions_never_lose_or_duplicate_a_use(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    let (_, variant) = h.product_with_stock(&owner, "tee", 100).await;
    let code = create_discount(
        &h,
        &owner,
        json!({"code": "TEN", "kind": "percent", "value": 10, "usage_limit": 10}),
    )
    .await;
    let server = Server::start(&h.app).await;

    // The code can only be applied while uses are left, so every cart gets it up front.
    let first = ready_carts(&server, "shop", &variant, 1, emails("first", 10), Some("TEN")).await;
    let second = ready_carts(&server, "shop", &variant, 1, emails("second", 10), Some("TEN")).await;
    let placed = checkout_all(&server, "shop", &first).await;
    assert_eq!(tally(&placed), counts(&[("201", 10)]));
    assert_eq!(times_used(&h, &owner, &code).await, 10);
    let placed = ids_of(&placed);

    // Five cancellations and ten new checkouts with the code, all at once.
    let mut jobs = Vec::new();
    for id in &placed[..5] {
        let (server, owner, tail) = (server.clone(), owner.clone(), format!("/orders/{id}/cancel"));
        jobs.push(job(
            async move { server.admin(Method::POST, &owner, &tail, None).await },
        ));
    }
    for cart in &second {
        let (server, cart) = (server.clone(), cart.clone());
        jobs.push(job(async move { server.checkout("shop", &cart).await }));
    }
    let answers = all_at_once(jobs).await;
    let (cancels, checkouts) = answers.split_at(5);
    assert_eq!(tally(cancels), counts(&[("200", 5)]));
    assert!(cancels.iter().all(|c| c.body["status"] == "cancelled"));
    let won = checkouts.iter().filter(|c| c.status == StatusCode::CREATED).count();
    assert_eq!(
        tally(checkouts),
        counts(&[("201", won), ("409 discount_unavailable", 10 - won)])
    );
    assert!(won <= 5, "only the five uses given back can be taken again: {won}");

    let used = times_used(&h, &owner, &code).await;
    let listed = orders(&h, &owner).await;
    let carrying = listed
        .iter()
        .filter(|o| o["discount_id"] == code.as_str() && o["status"] != "cancelled")
        .count();
    assert_eq!(used, i64::try_from(carrying).unwrap(), "{listed:?}");
    assert_eq!(used, i64::try_from(10 - 5 + won).unwrap());
    assert!(used <= 10);
    assert_eq!(active_redemptions(&h, "shop", &code).await, used);
    assert_eq!(listed.iter().filter(|o| o["status"] == "cancelled").count(), 5);
    let pending = i64::try_from(5 + won).unwrap();
    assert_eq!(level(&h, &owner, &variant).await, (100, pending, 100 - pending));

    // Cancelling twice gives nothing back twice.
    let again = server
        .admin(Method::POST, &owner, &format!("/orders/{}/cancel", placed[0]), None)
        .await;
    refused(&again, StatusCode::CONFLICT, "invalid_transition", None);
    assert_eq!(times_used(&h, &owner, &code).await, used);
    assert_eq!(active_redemptions(&h, "shop", &code).await, used);

    // The uses still free can be taken, and not one more: the refused carts are still
    // open with the code applied, so they retry; a new cart cannot even apply it.
    let left = usize::try_from(10 - used).unwrap();
    let retries: Vec<&Cart> = second
        .iter()
        .zip(checkouts)
        .filter(|(_, answer)| answer.status == StatusCode::CONFLICT)
        .map(|(cart, _)| cart)
        .collect();
    assert!(retries.len() > left);
    for (i, cart) in retries[..=left].iter().enumerate() {
        let answer = server.checkout("shop", cart).await;
        if i < left {
            assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        } else {
            refused(&answer, StatusCode::CONFLICT, "discount_unavailable", None);
        }
    }
    let fresh = server
        .ready_cart("shop", &[(&variant, 1)], "fourth@example.com", None)
        .await;
    let applied = server
        .on_cart(Method::PUT, "shop", &fresh, "/discount", Some(json!({"code": "TEN"})))
        .await;
    refused(
        &applied,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("discount_unavailable"),
    );
    assert_eq!(times_used(&h, &owner, &code).await, 10);
    assert_eq!(active_redemptions(&h, "shop", &code).await, 10);
}

/// A racer in [`expiry_racing_payment_is_one_or_the_other`].
enum Move {
    Pay(Resp),
    Sweep(usize),
}

async fn expiry_racing_payment_is_one_or_the_other(db: Db) {
    // Phase 1: the reservations run out, then payment races the sweeper.
    let config = AppConfig {
        reservation_ttl: Duration::from_millis(300),
        ..AppConfig::default()
    };
    let h = harness_with(db.clone(), config);
    let owner = h.owner("shop").await;
    let (_, variant) = h.product_with_stock(&owner, "tee", 20).await;
    let server = Server::start(&h.app).await;
    let carts = ready_carts(&server, "shop", &variant, 1, emails("slow", 10), None).await;
    let placed = checkout_all(&server, "shop", &carts).await;
    assert_eq!(tally(&placed), counts(&[("201", 10)]));
    let placed = ids_of(&placed);
    assert_eq!(level(&h, &owner, &variant).await, (20, 10, 10));
    tokio::time::sleep(Duration::from_millis(350)).await;

    let mut jobs = Vec::new();
    for id in &placed {
        let (server, owner, tail) = (server.clone(), owner.clone(), format!("/orders/{id}/mark-paid"));
        jobs.push(job(async move {
            Move::Pay(server.admin(Method::POST, &owner, &tail, None).await)
        }));
    }
    for _ in 0..3 {
        let app = h.app.clone();
        jobs.push(job(
            async move { Move::Sweep(app.expire_overdue_orders().await.unwrap()) },
        ));
    }
    let mut payments = Vec::new();
    let mut swept = 0;
    for outcome in all_at_once(jobs).await {
        match outcome {
            Move::Pay(answer) => payments.push(answer),
            Move::Sweep(n) => swept += n,
        }
    }
    let paid: BTreeSet<String> = ids_of(payments.iter().filter(|p| p.status == StatusCode::OK))
        .into_iter()
        .collect();
    for payment in payments.iter().filter(|p| p.status != StatusCode::OK) {
        payment.assert_problem(StatusCode::CONFLICT, payment.body["code"].as_str().unwrap_or("?"));
        assert!(
            ["order_expired", "invalid_transition"].contains(&payment.body["code"].as_str().unwrap()),
            "{}",
            payment.text
        );
    }
    assert_eq!(swept + paid.len(), 10, "each order paid or expired, exactly once");
    let finals = statuses(&h, &owner).await;
    for id in &placed {
        let expected = if paid.contains(id) { "paid" } else { "expired" };
        assert_eq!(finals[id], expected, "order {id}");
    }
    let paid_units = i64::try_from(paid.len()).unwrap();
    assert_eq!(
        level(&h, &owner, &variant).await,
        (20 - paid_units, 0, 20 - paid_units),
        "committed or released, never both or neither"
    );
    let kinds = movement_kinds(&h, &owner, &variant).await;
    assert_eq!(
        (count(&kinds, "committed"), count(&kinds, "released")),
        (paid.len(), 10 - paid.len()),
        "{kinds:?}"
    );
    assert!(
        paid.is_empty(),
        "payment after the reservation ran out is refused by design"
    );
    assert_eq!(
        h.app.expire_overdue_orders().await.unwrap(),
        0,
        "nothing left to expire"
    );
    refused(
        &server
            .admin(Method::POST, &owner, &format!("/orders/{}/mark-paid", placed[0]), None)
            .await,
        StatusCode::CONFLICT,
        "invalid_transition",
        None,
    );

    // Phase 2: a long reservation; payment and cancellation race on each order.
    let h = Harness::new(db);
    let owner = h.owner("shop2").await;
    let (_, variant) = h.product_with_stock(&owner, "tee", 20).await;
    let server = Server::start(&h.app).await;
    let carts = ready_carts(&server, "shop2", &variant, 1, emails("torn", 10), None).await;
    let placed = checkout_all(&server, "shop2", &carts).await;
    assert_eq!(tally(&placed), counts(&[("201", 10)]));
    let placed = ids_of(&placed);

    let mut jobs = Vec::new();
    for id in &placed {
        for action in ["mark-paid", "cancel"] {
            let (server, owner, tail) = (server.clone(), owner.clone(), format!("/orders/{id}/{action}"));
            jobs.push(job(
                async move { server.admin(Method::POST, &owner, &tail, None).await },
            ));
        }
    }
    let answers = all_at_once(jobs).await;
    let finals = statuses(&h, &owner).await;
    let mut paid = 0;
    for (id, pair) in placed.iter().zip(answers.chunks(2)) {
        let (pay, cancel) = (&pair[0], &pair[1]);
        match (pay.status, cancel.status) {
            (StatusCode::OK, StatusCode::CONFLICT) => {
                assert_eq!(pay.body["status"], "paid");
                refused(cancel, StatusCode::CONFLICT, "invalid_transition", None);
                assert_eq!(finals[id], "paid");
                paid += 1;
            }
            (StatusCode::CONFLICT, StatusCode::OK) => {
                assert_eq!(cancel.body["status"], "cancelled");
                refused(pay, StatusCode::CONFLICT, "invalid_transition", None);
                assert_eq!(finals[id], "cancelled");
            }
            _ => panic!("exactly one must win: pay {} / cancel {}", pay.text, cancel.text),
        }
    }
    assert_eq!(level(&h, &owner, &variant).await, (20 - paid, 0, 20 - paid));
    let kinds = movement_kinds(&h, &owner, &variant).await;
    let paid_count = usize::try_from(paid).unwrap();
    assert_eq!(
        (count(&kinds, "committed"), count(&kinds, "released")),
        (paid_count, 10 - paid_count),
        "{kinds:?}"
    );
}

async fn reconciliation_blocks_only_the_drifted_sku(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    let created = h
        .post(
            &format!("/v1/stores/{}/products", owner.store_id),
            &owner.token,
            json!({
                "handle": "pair",
                "title": "Pair",
                "published": true,
                "options": ["Size"],
                "variants": [
                    {"sku": "A-SKU", "options": ["A"], "price": 1000, "inventory_quantity": 5},
                    {"sku": "B-SKU", "options": ["B"], "price": 1000, "inventory_quantity": 5}
                ]
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let variant_id = |sku: &str| {
        created.body["variants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["sku"] == sku)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (a, b) = (variant_id("A-SKU"), variant_id("B-SKU"));
    let server = Server::start(&h.app).await;
    let mut order = BTreeMap::new();
    for (variant, email) in [(&a, "a@example.com"), (&b, "b@example.com")] {
        let cart = server.ready_cart("shop", &[(variant, 1)], email, None).await;
        let placed = server.checkout("shop", &cart).await;
        assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text);
        let id = placed.body["id"].as_str().unwrap().to_owned();
        let paid = server
            .admin(Method::POST, &owner, &format!("/orders/{id}/mark-paid"), None)
            .await;
        assert_eq!(paid.status, StatusCode::OK, "{}", paid.text);
        order.insert(variant.clone(), id);
    }
    let fulfil = |variant: &str| {
        let tail = format!("/orders/{}/fulfill", order[variant]);
        let (server, owner) = (server.clone(), owner.clone());
        async move { server.admin(Method::POST, &owner, &tail, None).await }
    };
    assert_eq!(reconcile(&h, &owner).await["drifted"], json!([]), "no drift yet");

    // Someone changes A's balance behind the application's back.
    h.app
        .db()
        .execute_admin(
            "UPDATE inventory_levels SET on_hand = on_hand + 3 \
             WHERE variant_id = (SELECT id FROM variants WHERE sku = 'A-SKU')",
        )
        .await
        .unwrap();
    assert_eq!(level(&h, &owner, &a).await, (7, 0, 7));

    let report = reconcile(&h, &owner).await;
    assert_eq!(report["variants_checked"], 2);
    assert_eq!(report["newly_flagged"], 1);
    assert_eq!(
        report["drifted"],
        json!([{"variant_id": a, "on_hand": 7, "ledger_on_hand": 4, "reserved": 0, "live_reserved": 0}])
    );
    // Flagged once: a second run reports it again but raises no second alert.
    let again = reconcile(&h, &owner).await;
    assert_eq!(
        (
            again["newly_flagged"].as_i64(),
            again["drifted"].as_array().unwrap().len()
        ),
        (Some(0), 1)
    );
    let alerts = h
        .get(&format!("/v1/stores/{}/alerts", owner.store_id), &owner.token)
        .await;
    let drift_alerts: Vec<&Value> = alerts.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "inventory_drift")
        .collect();
    assert_eq!(drift_alerts.len(), 1, "{}", alerts.text);
    assert_eq!(drift_alerts[0]["subject"], a.as_str());
    assert!(drift_alerts[0]["resolved_at"].is_null());

    refused(&fulfil(&a).await, StatusCode::CONFLICT, "inventory_drift", None);
    let shipped = fulfil(&b).await;
    assert_eq!(shipped.status, StatusCode::OK, "{}", shipped.text);
    assert_eq!(shipped.body["status"], "fulfilled");

    let resolve = |variant: &str, reason: &str| {
        let tail = format!("/inventory/{variant}/resolve-drift");
        let (server, owner, body) = (server.clone(), owner.clone(), json!({"reason": reason}));
        async move { server.admin(Method::POST, &owner, &tail, Some(body)).await }
    };
    refused(
        &resolve(&b, "nothing to resolve").await,
        StatusCode::CONFLICT,
        "no_drift",
        None,
    );
    refused(
        &resolve(&a, "   ").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("invalid_reason"),
    );
    let resolved = resolve(&a, "counted 7 on the shelf").await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.text);
    assert_eq!(
        (
            &resolved.body["on_hand"],
            &resolved.body["reserved"],
            &resolved.body["available"]
        ),
        (&json!(7), &json!(0), &json!(7))
    );
    assert_eq!(movement_kinds(&h, &owner, &a).await.last().unwrap(), "adjustment");

    let shipped = fulfil(&a).await;
    assert_eq!(shipped.status, StatusCode::OK, "{}", shipped.text);
    assert_eq!(shipped.body["status"], "fulfilled");
    let report = reconcile(&h, &owner).await;
    assert_eq!(
        (report["drifted"].clone(), report["newly_flagged"].clone()),
        (json!([]), json!(0))
    );
    let alerts = h
        .get(&format!("/v1/stores/{}/alerts", owner.store_id), &owner.token)
        .await;
    let drift = alerts.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "inventory_drift")
        .unwrap();
    assert!(
        !drift["resolved_at"].is_null(),
        "resolving the drift resolves its alert"
    );
}

async fn bad_checkout_input_changes_nothing(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    let other = h.owner("other").await;
    let (_, variant) = h.product_with_stock(&owner, "tee", 5).await;
    let (_, foreign) = h.product_with_stock(&other, "theirs", 5).await;
    let server = Server::start(&h.app).await;
    create_discount(
        &h,
        &owner,
        json!({"code": "OLD", "kind": "percent", "value": 10, "ends_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    create_discount(
        &h,
        &owner,
        json!({"code": "OFF", "kind": "percent", "value": 10, "active": false}),
    )
    .await;
    let pulled = create_discount(&h, &owner, json!({"code": "PULLED", "kind": "percent", "value": 10})).await;

    // Carts in every state the refusals need, all made before the snapshot.
    let empty = server.new_cart("shop").await;
    let anonymous = server.new_cart("shop").await;
    let added = server
        .on_cart(
            Method::POST,
            "shop",
            &anonymous,
            "/lines",
            Some(json!({"variant_id": variant, "quantity": 1})),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let no_lines = server.ready_cart("shop", &[], "nolines@example.com", None).await;
    let with_pulled = server
        .ready_cart("shop", &[(&variant, 1)], "pulled@example.com", Some("PULLED"))
        .await;
    let disabled = h
        .call(
            Method::PUT,
            &format!("/v1/stores/{}/discounts/{pulled}", owner.store_id),
            Some(&owner.token),
            Some(json!({"code": "PULLED", "kind": "percent", "value": 10, "active": false})),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text);
    let done = server
        .ready_cart("shop", &[(&variant, 1)], "done@example.com", None)
        .await;
    let first = server.checkout("shop", &done).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);

    let discounts = format!("/v1/stores/{}/discounts", owner.store_id);
    let before = (
        h.snapshot(&owner).await,
        h.snapshot(&other).await,
        orders(&h, &owner).await,
        h.get(&discounts, &owner.token).await.body,
        level(&h, &owner, &variant).await,
        level(&h, &other, &foreign).await,
    );
    assert_eq!(before.4, (5, 1, 4));

    let add = |cart: &Cart, body: Value| {
        let (server, cart) = (server.clone(), cart.clone());
        async move { server.on_cart(Method::POST, "shop", &cart, "/lines", Some(body)).await }
    };
    let unknown = stormcom_domain::VariantId::generate().to_string();
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    for (body, code, field_code) in [
        (
            json!({"variant_id": unknown, "quantity": 1}),
            "validation_failed",
            Some("unknown_variant"),
        ),
        (
            json!({"variant_id": foreign, "quantity": 1}),
            "validation_failed",
            Some("unknown_variant"),
        ),
        (
            json!({"variant_id": variant, "quantity": 0}),
            "validation_failed",
            Some("invalid_quantity"),
        ),
        (
            json!({"variant_id": variant, "quantity": -1}),
            "validation_failed",
            Some("invalid_quantity"),
        ),
        (
            json!({"variant_id": variant, "quantity": 1001}),
            "validation_failed",
            Some("invalid_quantity"),
        ),
        (
            json!({"variant_id": variant, "quantity": 1, "price": 1}),
            "unknown_field",
            None,
        ),
        (json!({"variant_id": variant, "quantity": "1"}), "invalid_field", None),
        (json!({"variant_id": "var_nope", "quantity": 1}), "invalid_field", None),
        (json!({"variant_id": variant}), "missing_field", None),
    ] {
        refused(&add(&empty, body).await, unprocessable, code, field_code);
    }

    // A wrong, borrowed or missing secret, another store's path: all "no such cart".
    let good_line = json!({"variant_id": variant, "quantity": 1});
    let wrong = (empty.0.clone(), format!("cs_{}", "0".repeat(64)));
    refused(
        &add(&wrong, good_line.clone()).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    refused(
        &server.checkout("shop", &wrong).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let borrowed = (anonymous.0.clone(), empty.1.clone());
    refused(
        &server.checkout("shop", &borrowed).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let no_secret = server
        .call(
            Method::POST,
            &format!("/v1/storefront/shop/carts/{}/checkout", anonymous.0),
            None,
            None,
            None,
        )
        .await;
    refused(&no_secret, StatusCode::NOT_FOUND, "not_found", None);
    refused(
        &server.checkout("other", &anonymous).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    refused(
        &server.checkout("nowhere", &anonymous).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );

    // Codes that cannot be applied.
    let apply = |code: &str| {
        let (server, cart, body) = (server.clone(), empty.clone(), json!({"code": code}));
        async move {
            server
                .on_cart(Method::PUT, "shop", &cart, "/discount", Some(body))
                .await
        }
    };
    for (code, field_code) in [
        ("OLD", "discount_unavailable"),
        ("OFF", "discount_unavailable"),
        ("PULLED", "discount_unavailable"),
        ("NOPE", "unknown_code"),
        ("no spaces!", "invalid_code"),
    ] {
        refused(&apply(code).await, unprocessable, "validation_failed", Some(field_code));
    }

    // Contact details that are not valid.
    let contact = |body: Value| {
        let (server, cart) = (server.clone(), empty.clone());
        async move { server.on_cart(Method::PUT, "shop", &cart, "/contact", Some(body)).await }
    };
    refused(
        &contact(json!({"email": "not-an-email"})).await,
        unprocessable,
        "validation_failed",
        Some("invalid_email"),
    );
    let bad_country = json!({"email": "x@example.com", "shipping_address":
        {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "usa"}});
    refused(
        &contact(bad_country).await,
        unprocessable,
        "validation_failed",
        Some("invalid_country"),
    );

    // Checkouts that cannot go through.
    refused(
        &server.checkout("shop", &anonymous).await,
        unprocessable,
        "validation_failed",
        Some("missing_contact"),
    );
    refused(
        &server.checkout("shop", &no_lines).await,
        unprocessable,
        "validation_failed",
        Some("empty_cart"),
    );
    refused(
        &server.checkout("shop", &with_pulled).await,
        StatusCode::CONFLICT,
        "discount_unavailable",
        None,
    );
    refused(
        &server.checkout("shop", &done).await,
        StatusCode::CONFLICT,
        "cart_closed",
        None,
    );
    refused(
        &add(&done, good_line.clone()).await,
        StatusCode::CONFLICT,
        "cart_closed",
        None,
    );
    let closed_contact = server
        .on_cart(
            Method::PUT,
            "shop",
            &done,
            "/contact",
            Some(json!({"email": "late@example.com"})),
        )
        .await;
    refused(&closed_contact, StatusCode::CONFLICT, "cart_closed", None);

    let after = (
        h.snapshot(&owner).await,
        h.snapshot(&other).await,
        orders(&h, &owner).await,
        h.get(&discounts, &owner.token).await.body,
        level(&h, &owner, &variant).await,
        level(&h, &other, &foreign).await,
    );
    assert_eq!(after, before);
    let view = server.on_cart(Method::GET, "shop", &empty, "", None).await;
    assert_eq!(
        (
            &view.body["lines"],
            &view.body["discount_code"],
            &view.body["has_contact"]
        ),
        (&json!([]), &Value::Null, &json!(false)),
        "{}",
        view.text
    );
    let view = server.on_cart(Method::GET, "shop", &anonymous, "", None).await;
    assert_eq!(view.body["lines"].as_array().unwrap().len(), 1, "{}", view.text);
}

async fn customer_pii_is_sealed_at_rest_and_shown_to_staff(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    let other = h.owner("other").await;
    let (_, variant) = h.product_with_stock(&owner, "tee", 5).await;
    let server = Server::start(&h.app).await;
    let address = json!({
        "line1": "1 Canary Wharf",
        "line2": "Floor 3",
        "city": "London",
        "postal_code": "E14 5AB",
        "country": "GB"
    });
    let leaks = |text: &str| {
        let text = text.to_lowercase();
        ["canary", "wharf", "london", "e14 5ab"]
            .iter()
            .any(|s| text.contains(s))
    };

    let cart = server.new_cart("shop").await;
    let line = json!({"variant_id": variant, "quantity": 1});
    let added = server.on_cart(Method::POST, "shop", &cart, "/lines", Some(line)).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let contact = json!({
        "email": "Canary.Shopper@Example.com",
        "name": "Canary Shopper",
        "shipping_address": address
    });
    let set = server
        .on_cart(Method::PUT, "shop", &cart, "/contact", Some(contact))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    assert_eq!(set.body["has_contact"], true);
    assert!(
        !leaks(&set.text),
        "the storefront never echoes contact details: {}",
        set.text
    );
    let view = server.on_cart(Method::GET, "shop", &cart, "", None).await;
    assert!(!leaks(&view.text), "{}", view.text);
    let order = server.checkout("shop", &cart).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.text);
    assert!(
        !leaks(&order.text) && order.body.get("customer").is_none(),
        "{}",
        order.text
    );
    let id = order.body["id"].as_str().unwrap().to_owned();

    // Staff with orders:read see the decrypted, normalised details.
    let detail = h
        .get(&format!("/v1/stores/{}/orders/{id}", owner.store_id), &owner.token)
        .await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.text);
    assert_eq!(
        detail.body["customer"],
        json!({"email": "canary.shopper@example.com", "name": "Canary Shopper", "shipping_address": address})
    );
    let listed = h
        .get(&format!("/v1/stores/{}/orders", owner.store_id), &owner.token)
        .await;
    assert!(!leaks(&listed.text), "the order list carries no contact details");
    let audit = h
        .get(&format!("/v1/stores/{}/audit?limit=100", owner.store_id), &owner.token)
        .await;
    assert!(!leaks(&audit.text), "the audit log carries no contact details");
    // Another store's owner cannot read it at all.
    h.get(&format!("/v1/stores/{}/orders/{id}", owner.store_id), &other.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    // At rest: sealed bytes only, in the customer row, the cart row and the events.
    let scope = h.app.store_by_handle("shop").await.unwrap().scope();
    let mut reader = h.app.db().reader().await.unwrap();
    let stored = commerce::find_order(&mut reader, &scope, id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let customer = commerce::find_customer(&mut reader, &scope, stored.customer_id)
        .await
        .unwrap()
        .unwrap();
    let contains = |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    let plaintexts: [&[u8]; 6] = [
        b"canary.shopper@example.com",
        b"Canary.Shopper@Example.com",
        b"Canary Shopper",
        b"Canary Wharf",
        b"London",
        b"E14 5AB",
    ];
    let name = customer.name.clone().unwrap();
    let sealed_address = customer.address.clone().unwrap();
    assert!(
        customer.email.len() > "canary.shopper@example.com".len(),
        "sealed, with nonce and tag"
    );
    let cart_row = commerce::find_cart(&mut reader, &scope, cart.0.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let cart_fields = [
        cart_row.email.clone().unwrap(),
        cart_row.name.clone().unwrap(),
        cart_row.address.clone().unwrap(),
        cart_row.email_index.clone().unwrap(),
    ];
    for field in [&customer.email, &name, &sealed_address]
        .into_iter()
        .chain(&cart_fields)
    {
        for plain in plaintexts {
            assert!(!contains(field, plain), "a stored field holds plaintext");
        }
    }
    for event in commerce::events(&mut reader, &scope, 100).await.unwrap() {
        assert!(!leaks(&event.payload) && !leaks(&event.subject), "{}", event.payload);
    }
    drop(reader);

    // The same shopper, spelled differently, is the same customer (blind index).
    let again = server
        .ready_cart("shop", &[(&variant, 1)], "  CANARY.shopper@EXAMPLE.com ", None)
        .await;
    let second = server.checkout("shop", &again).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text);
    let mut reader = h.app.db().reader().await.unwrap();
    let second = commerce::find_order(
        &mut reader,
        &scope,
        second.body["id"].as_str().unwrap().parse().unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(second.customer_id, stored.customer_id);
}
