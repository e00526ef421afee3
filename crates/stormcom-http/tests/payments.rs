//! Payments, refunds and Idempotency-Key, on both backends: signed gateway callbacks that
//! cannot be replayed or forged, refunds that never sum past the capture, and retries
//! that never run twice. Concurrent calls are spawned tasks on the multi-threaded
//! runtime, released together by a barrier, all hitting the same router and database.

#![expect(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

pub mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Harness, Owner, Resp};
use serde_json::{Value, json};
use stormcom_app::payments::Simulated;
use stormcom_domain::payment::sign;
use stormcom_store::Db;
use tokio::sync::Barrier;

stormcom_testkit::backend_tests!(
    one_event_posted_twenty_times_at_once_captures_once,
    a_redelivered_event_id_with_a_fresh_signature_changes_nothing,
    forged_stale_future_and_malformed_callbacks_are_refused_and_change_nothing,
    an_amount_mismatch_flags_the_order_and_does_not_pay_it,
    ten_concurrent_refunds_of_60_on_100_let_exactly_one_through,
    gateway_refund_events_are_matched_to_api_refunds_and_counted_once,
    refunds_follow_the_order_state_machine,
    payment_failure_releases_stock_and_discount_use_exactly_once,
    unknown_event_types_are_acknowledged_and_ignored,
    racing_events_about_one_payment_settle_it_once,
    events_about_another_intent_or_a_settled_order_change_nothing,
    event_ids_are_kept_30_days_and_expired_idempotency_keys_are_purged,
    idempotency_key_replays_refuses_reuse_and_serialises_duplicates,
    checkout_honours_idempotency_key_per_cart,
    a_keyed_request_cut_off_by_the_timeout_still_finishes_and_replays,
    provider_secrets_are_sealed_and_never_returned,
    the_stripe_python_library_interoperates,
);

const SECRET: &str = "whsec_stormcom_test_0123456789abcdef";

/// A store with the test provider configured, and an unpaid order of `quantity` units.
struct Shop {
    h: Harness,
    owner: Owner,
    variant: String,
    order: Value,
}

impl Shop {
    async fn new(db: Db, stock: i64, quantity: i64, code: Option<&str>) -> Self {
        Self::on(Harness::new(db), "pay", stock, quantity, code).await
    }

    /// Another shop on the same database.
    async fn named(db: Db, handle: &str) -> Self {
        Self::on(Harness::new(db), handle, 10, 1, None).await
    }

    async fn on(h: Harness, handle: &str, stock: i64, quantity: i64, code: Option<&str>) -> Self {
        let owner = h.owner(handle).await;
        let (_, variant) = h.product_with_stock(&owner, "tee", stock).await;
        if let Some(code) = code {
            let created = h
                .post(
                    &format!("/v1/stores/{}/discounts", owner.store_id),
                    &owner.token,
                    json!({"code": code, "kind": "fixed", "value": 100, "usage_limit": 1}),
                )
                .await;
            assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        }
        let configured = h
            .call(
                Method::PUT,
                &format!("/v1/stores/{}/payment-providers/test", owner.store_id),
                Some(&owner.token),
                Some(json!({"webhook_secret": SECRET})),
            )
            .await;
        assert_eq!(configured.status, StatusCode::OK, "{}", configured.text);
        let order = h.buy(handle, &variant, quantity, "payer@example.com", code).await;
        assert_eq!(order.status, StatusCode::CREATED, "{}", order.text);
        Self {
            h,
            owner,
            variant,
            order: order.body,
        }
    }

    fn order_id(&self) -> &str {
        self.order["id"].as_str().unwrap()
    }

    fn total(&self) -> i64 {
        self.order["total"].as_i64().unwrap()
    }

    fn admin(&self, tail: &str) -> String {
        format!("/v1/stores/{}{tail}", self.owner.store_id)
    }

    fn callback_path(&self) -> String {
        format!("/v1/payments/test/callbacks/{}", self.owner.store_id)
    }

    async fn start_payment(&self) -> Value {
        let started = self
            .h
            .post(
                &self.admin(&format!("/orders/{}/payments", self.order_id())),
                &self.owner.token,
                json!({"provider": "test"}),
            )
            .await;
        assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
        started.body
    }

    /// A gateway event about this order from the test provider, signed now.
    async fn event(&self, what: Simulated, amount: Option<i64>, refund: Option<&str>) -> (String, String) {
        let signed = self
            .h
            .app
            .simulate_gateway_event(
                self.owner.store_id.parse().unwrap(),
                self.order_id().parse().unwrap(),
                what,
                amount,
                refund.map(|r| r.parse().unwrap()),
                None,
            )
            .await
            .unwrap();
        (signed.body, signed.signature)
    }

    /// Delivers signed events all at once; their outcomes (or answer texts), in order.
    async fn deliver_together(&self, events: &[(String, String)]) -> Vec<String> {
        let path = self.callback_path();
        let answers = at_once(events.len(), |i| {
            let (body, signature) = events[i].clone();
            let request = Request::post(&path)
                .header("stripe-signature", signature)
                .body(Body::from(body))
                .unwrap();
            send(&self.h, request)
        })
        .await;
        answers
            .iter()
            .map(|a| a.body["outcome"].as_str().unwrap_or(&a.text).to_owned())
            .collect()
    }

    async fn deliver(&self, body: &str, signature: Option<&str>) -> Resp {
        deliver(&self.h, &self.callback_path(), body.as_bytes().to_vec(), signature).await
    }

    async fn order(&self) -> Value {
        let got = self
            .h
            .get(&self.admin(&format!("/orders/{}", self.order_id())), &self.owner.token)
            .await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.text);
        got.body
    }

    async fn payment(&self) -> Resp {
        self.h
            .get(
                &self.admin(&format!("/orders/{}/payment", self.order_id())),
                &self.owner.token,
            )
            .await
    }

    async fn level(&self) -> Value {
        let got = self
            .h
            .get(&self.admin(&format!("/inventory/{}", self.variant)), &self.owner.token)
            .await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.text);
        got.body
    }

    async fn refund(&self, amount: i64) -> Resp {
        self.h
            .post(
                &self.admin(&format!("/orders/{}/refunds", self.order_id())),
                &self.owner.token,
                json!({"amount": amount, "reason": "customer asked"}),
            )
            .await
    }

    async fn pay(&self) {
        self.start_payment().await;
        let (body, signature) = self.event(Simulated::Succeeded, None, None).await;
        let paid = self.deliver(&body, Some(&signature)).await;
        assert_eq!(paid.status, StatusCode::OK, "{}", paid.text);
        assert_eq!(paid.body["outcome"], "captured", "{}", paid.text);
    }

    async fn actions(&self) -> Vec<String> {
        self.h.audit_actions(&self.owner).await
    }
}

async fn deliver(h: &Harness, path: &str, body: Vec<u8>, signature: Option<&str>) -> Resp {
    let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    h.send(request.body(Body::from(body)).unwrap()).await
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Runs `n` copies of `call` at once (released by a barrier) and returns the answers.
async fn at_once<F, Fut>(n: usize, call: F) -> Vec<Resp>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Resp> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            let call = call(i);
            tokio::spawn(async move {
                barrier.wait().await;
                call.await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    answers
}

/// Sends a request through a clone of the router (so it can run on its own task).
fn send(h: &Harness, request: Request<Body>) -> impl std::future::Future<Output = Resp> + Send + 'static {
    let router = h.router.clone();
    async move {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

// ---------------------------------------------------------------- callbacks

async fn one_event_posted_twenty_times_at_once_captures_once(db: Db) {
    let shop = Shop::new(db, 10, 2, None).await;
    shop.start_payment().await;
    let (body, signature) = shop.event(Simulated::Succeeded, None, None).await;
    let path = shop.callback_path();
    let answers = at_once(20, |_| {
        let request = Request::post(&path)
            .header(header::CONTENT_TYPE, "application/json")
            .header("stripe-signature", &signature)
            .body(Body::from(body.clone()))
            .unwrap();
        send(&shop.h, request)
    })
    .await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    let captured: Vec<_> = answers.iter().filter(|a| a.body["outcome"] == "captured").collect();
    let duplicates = answers.iter().filter(|a| a.body["duplicate"] == true).count();
    assert_eq!(captured.len(), 1, "exactly one delivery takes effect");
    assert_eq!(duplicates, 19);

    assert_eq!(shop.order().await["status"], "paid");
    let payment = shop.payment().await.body;
    assert_eq!(payment["status"], "captured");
    assert_eq!(payment["captured_amount"], shop.total());
    let level = shop.level().await;
    assert_eq!(level["on_hand"], 8, "the reservation was committed once: {level}");
    assert_eq!(level["reserved"], 0);
    let actions = shop.actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "payment.captured").count(), 1);
    assert_eq!(actions.iter().filter(|a| *a == "order.paid").count(), 1);
}

async fn a_redelivered_event_id_with_a_fresh_signature_changes_nothing(db: Db) {
    let shop = Shop::new(db, 10, 1, None).await;
    shop.start_payment().await;
    let (body, signature) = shop.event(Simulated::Succeeded, None, None).await;
    let paid = shop.deliver(&body, Some(&signature)).await;
    assert_eq!(paid.body["outcome"], "captured", "{}", paid.text);
    let before = (shop.h.snapshot(&shop.owner).await, shop.payment().await.body);
    // The gateway retries later: the same event id, freshly timestamped and validly signed.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let fresh = sign(SECRET.as_bytes(), now(), body.as_bytes());
    assert_ne!(fresh, signature);
    let again = shop.deliver(&body, Some(&fresh)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["duplicate"], true, "{}", again.text);
    assert_eq!(again.body["outcome"], "duplicate");
    // A different event about the same, already captured payment: acknowledged, no effect.
    let (other, other_sig) = shop.event(Simulated::Succeeded, None, None).await;
    let other = shop.deliver(&other, Some(&other_sig)).await;
    assert_eq!(other.body["outcome"], "ignored_already_settled", "{}", other.text);
    let after = (shop.h.snapshot(&shop.owner).await, shop.payment().await.body);
    assert_eq!(before.1, after.1, "the payment is unchanged");
    assert_eq!(before.0["ledgers"], after.0["ledgers"], "stock is unchanged");
    let captured = shop.actions().await.iter().filter(|a| *a == "payment.captured").count();
    assert_eq!(captured, 1);
}

async fn forged_stale_future_and_malformed_callbacks_are_refused_and_change_nothing(db: Db) {
    let shop = Shop::new(db, 10, 1, None).await;
    shop.start_payment().await;
    let (body, good) = shop.event(Simulated::Succeeded, None, None).await;
    let before = (shop.h.snapshot(&shop.owner).await, shop.payment().await.body);
    let t = now();
    let tampered = body.replace("\"succeeded\"", "\"succeeded\" ");
    let cases: Vec<(&str, String, Option<String>, &str)> = vec![
        ("tampered body", tampered, Some(good.clone()), "signature_invalid"),
        (
            "wrong secret",
            body.clone(),
            Some(sign(b"whsec_someone_elses_secret_000000", t, body.as_bytes())),
            "signature_invalid",
        ),
        (
            "stale timestamp",
            body.clone(),
            Some(sign(SECRET.as_bytes(), t - 301, body.as_bytes())),
            "signature_expired",
        ),
        (
            "future timestamp",
            body.clone(),
            Some(sign(SECRET.as_bytes(), t + 120, body.as_bytes())),
            "signature_from_future",
        ),
        ("missing header", body.clone(), None, "signature_missing"),
        (
            "malformed header",
            body.clone(),
            Some("t=now,v1=xyz".into()),
            "signature_malformed",
        ),
        (
            "no v1 scheme",
            body.clone(),
            Some(format!("t={t},v0={}", "ab".repeat(32))),
            "signature_malformed",
        ),
    ];
    for (case, body, signature, code) in cases {
        let refused = shop.deliver(&body, signature.as_deref()).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{case}: {}", refused.text);
        refused.assert_problem(StatusCode::BAD_REQUEST, code);
    }
    // Signed correctly but not an event: refused after verification, nothing changes.
    let junk = b"not json".to_vec();
    let signature = sign(SECRET.as_bytes(), t, &junk);
    deliver(&shop.h, &shop.callback_path(), junk, Some(&signature))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_event");
    // Unknown provider or store: 404.
    let other = format!("/v1/payments/paypal/callbacks/{}", shop.owner.store_id);
    assert_eq!(
        deliver(&shop.h, &other, body.clone().into_bytes(), Some(&good))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let after = (shop.h.snapshot(&shop.owner).await, shop.payment().await.body);
    assert_eq!(before, after, "refused callbacks change nothing");
    assert_eq!(shop.order().await["status"], "pending_payment");
    // The genuine delivery still works afterwards.
    let paid = shop.deliver(&body, Some(&good)).await;
    assert_eq!(paid.body["outcome"], "captured", "{}", paid.text);
}

async fn an_amount_mismatch_flags_the_order_and_does_not_pay_it(db: Db) {
    let shop = Shop::new(db, 10, 1, None).await;
    shop.start_payment().await;
    let (body, signature) = shop.event(Simulated::Succeeded, Some(shop.total() - 1), None).await;
    let answer = shop.deliver(&body, Some(&signature)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["outcome"], "flagged_amount_mismatch");
    let order = shop.order().await;
    assert_eq!(order["status"], "pending_payment", "not paid");
    assert!(
        order["flagged_reason"].as_str().unwrap().contains("captured"),
        "{order}"
    );
    assert_eq!(shop.payment().await.body["status"], "flagged");
    let alerts = shop.h.get(&shop.admin("/alerts"), &shop.owner.token).await;
    assert!(
        alerts.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "payment_mismatch"),
        "{}",
        alerts.text
    );
    assert!(shop.actions().await.contains(&"payment.flagged".to_owned()));
    // Flagged orders are not swept: the money is there, staff decide.
    assert_eq!(shop.level().await["reserved"], 1);
}

// ---------------------------------------------------------------- refunds

async fn ten_concurrent_refunds_of_60_on_100_let_exactly_one_through(db: Db) {
    // One unit at 4299 minus nothing: pay a 100 order by making the price 100.
    let h = Harness::new(db);
    let owner = h.owner("pay").await;
    let created = h
        .post(
            &format!("/v1/stores/{}/products", owner.store_id),
            &owner.token,
            json!({"handle": "cheap", "title": "Cheap", "published": true, "options": ["Size"],
                   "variants": [{"options": ["M"], "price": 100, "inventory_quantity": 5}]}),
        )
        .await;
    let variant = created.body["variants"][0]["id"].as_str().unwrap().to_owned();
    h.call(
        Method::PUT,
        &format!("/v1/stores/{}/payment-providers/test", owner.store_id),
        Some(&owner.token),
        Some(json!({"webhook_secret": SECRET})),
    )
    .await;
    let order = h.buy("pay", &variant, 1, "payer@example.com", None).await.body;
    let shop = Shop {
        h,
        owner,
        variant,
        order,
    };
    assert_eq!(shop.total(), 100);
    shop.pay().await;

    let path = shop.admin(&format!("/orders/{}/refunds", shop.order_id()));
    let token = shop.owner.token.clone();
    let answers = at_once(10, |_| {
        let request = Request::post(&path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"amount": 60, "reason": "race"}"#))
            .unwrap();
        send(&shop.h, request)
    })
    .await;
    let created = answers.iter().filter(|a| a.status == StatusCode::CREATED).count();
    assert_eq!(created, 1, "{:?}", answers.iter().map(|a| &a.text).collect::<Vec<_>>());
    for refused in answers.iter().filter(|a| a.status != StatusCode::CREATED) {
        refused.assert_problem(StatusCode::CONFLICT, "refund_exceeds_captured");
    }
    let payment = shop.payment().await.body;
    assert_eq!(payment["refunded_amount"], 60);
    assert_eq!(payment["refunds"].as_array().unwrap().len(), 1);
    assert_eq!(shop.order().await["financial_status"], "partially_refunded");
    // 40 is left: 41 is refused, 40 goes through, then nothing more.
    shop.refund(41)
        .await
        .assert_problem(StatusCode::CONFLICT, "refund_exceeds_captured");
    assert_eq!(shop.refund(40).await.status, StatusCode::CREATED);
    shop.refund(1)
        .await
        .assert_problem(StatusCode::CONFLICT, "refund_exceeds_captured");
    assert_eq!(shop.payment().await.body["refunded_amount"], 100);
    let order = shop.order().await;
    assert_eq!(
        (order["status"].as_str(), order["financial_status"].as_str()),
        (Some("paid"), Some("refunded"))
    );
    assert_eq!(order["payment"]["refunded_amount"], 100);
}

async fn gateway_refund_events_are_matched_to_api_refunds_and_counted_once(db: Db) {
    let shop = Shop::new(db, 10, 1, None).await;
    shop.pay().await;
    let refund = shop.refund(1000).await;
    assert_eq!(refund.status, StatusCode::CREATED, "{}", refund.text);
    assert_eq!(refund.body["status"], "pending");
    let refund_id = refund.body["id"].as_str().unwrap().to_owned();

    // The gateway confirms our refund: matched, nothing counted twice.
    let (body, signature) = shop.event(Simulated::Refunded, None, Some(&refund_id)).await;
    let confirmed = shop.deliver(&body, Some(&signature)).await;
    assert_eq!(confirmed.body["outcome"], "refund_confirmed", "{}", confirmed.text);
    let payment = shop.payment().await.body;
    assert_eq!(payment["refunded_amount"], 1000);
    assert_eq!(payment["refunds"][0]["status"], "succeeded");

    // A refund made directly at the gateway is recorded once, as its own refund.
    let (body, signature) = shop.event(Simulated::Refunded, Some(500), None).await;
    let recorded = shop.deliver(&body, Some(&signature)).await;
    assert_eq!(recorded.body["outcome"], "refund_recorded", "{}", recorded.text);
    let again = shop
        .deliver(&body, Some(&sign(SECRET.as_bytes(), now(), body.as_bytes())))
        .await;
    assert_eq!(again.body["duplicate"], true);
    let payment = shop.payment().await.body;
    assert_eq!(payment["refunded_amount"], 1500);
    let refunds = payment["refunds"].as_array().unwrap();
    assert_eq!(refunds.len(), 2);
    assert!(refunds.iter().any(|r| r["source"] == "gateway" && r["amount"] == 500));

    // One the gateway reports beyond the capture is flagged, not counted.
    let (body, signature) = shop.event(Simulated::Refunded, Some(shop.total()), None).await;
    let flagged = shop.deliver(&body, Some(&signature)).await;
    assert_eq!(flagged.body["outcome"], "flagged_refund_exceeds_captured");
    assert_eq!(shop.payment().await.body["refunded_amount"], 1500);
    let actions = shop.actions().await;
    for action in [
        "refund.created",
        "refund.succeeded",
        "refund.recorded",
        "refund.flagged",
    ] {
        assert!(actions.contains(&action.to_owned()), "{action} in {actions:?}");
    }
}

async fn refunds_follow_the_order_state_machine(db: Db) {
    let shop = Shop::new(db, 10, 1, None).await;
    assert_eq!(shop.order().await["financial_status"], "unpaid");
    // Before capture: refused, nothing written.
    shop.refund(100)
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    shop.start_payment().await;
    shop.refund(100)
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    assert_eq!(shop.order().await["financial_status"], "pending");
    for bad in [
        json!({"amount": 0, "reason": "x"}),
        json!({"amount": -5, "reason": "x"}),
        json!({"amount": 5, "reason": " "}),
    ] {
        let answer = shop
            .h
            .post(
                &shop.admin(&format!("/orders/{}/refunds", shop.order_id())),
                &shop.owner.token,
                bad,
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.text);
    }
    shop.pay().await;
    assert_eq!(shop.order().await["financial_status"], "paid");
    // paid → pending_payment is not a move anyone can make; a paid order cannot be cancelled.
    let cancel = shop
        .h
        .post(
            &shop.admin(&format!("/orders/{}/cancel", shop.order_id())),
            &shop.owner.token,
            json!({}),
        )
        .await;
    cancel.assert_problem(StatusCode::CONFLICT, "invalid_transition");
    assert_eq!(shop.refund(shop.total()).await.status, StatusCode::CREATED);
    assert_eq!(shop.payment().await.body["refunded_amount"], shop.total());
    // A viewer cannot refund.
    let viewer = shop.h.user("viewer@pay.example").await;
    let granted = shop
        .h
        .post(
            &shop.admin("/grants"),
            &shop.owner.token,
            json!({"user_email": viewer.email, "role": "viewer"}),
        )
        .await;
    assert_eq!(granted.status, StatusCode::CREATED, "{}", granted.text);
    shop.h
        .post(
            &shop.admin(&format!("/orders/{}/refunds", shop.order_id())),
            &viewer.token,
            json!({"amount": 1, "reason": "x"}),
        )
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
}

async fn payment_failure_releases_stock_and_discount_use_exactly_once(db: Db) {
    let shop = Shop::new(db, 10, 3, Some("ONCE")).await;
    shop.start_payment().await;
    assert_eq!(shop.level().await["reserved"], 3);
    // Two distinct failure events and a staff cancel, all at once.
    let (first, first_sig) = shop.event(Simulated::Failed, None, None).await;
    let (second, second_sig) = shop.event(Simulated::Failed, None, None).await;
    let path = shop.callback_path();
    let cancel_path = shop.admin(&format!("/orders/{}/cancel", shop.order_id()));
    let token = shop.owner.token.clone();
    let answers = at_once(3, |i| {
        let request = match i {
            0 | 1 => {
                let (body, sig) = if i == 0 {
                    (&first, &first_sig)
                } else {
                    (&second, &second_sig)
                };
                Request::post(&path)
                    .header(header::CONTENT_TYPE, "application/json")
                    .header("stripe-signature", sig.as_str())
                    .body(Body::from(body.clone()))
                    .unwrap()
            }
            _ => Request::post(&cancel_path)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        };
        send(&shop.h, request)
    })
    .await;
    let winners = answers
        .iter()
        .filter(|a| {
            a.body["outcome"] == "payment_failed" || (a.status == StatusCode::OK && a.body["status"] == "cancelled")
        })
        .count();
    assert_eq!(winners, 1, "{:?}", answers.iter().map(|a| &a.text).collect::<Vec<_>>());
    assert_eq!(shop.order().await["status"], "cancelled");
    let level = shop.level().await;
    assert_eq!(level["reserved"], 0, "released: {level}");
    assert_eq!(level["on_hand"], 10, "released, not sold: {level}");
    let movements = shop
        .h
        .get(
            &shop.admin(&format!("/inventory/{}/movements?limit=100", shop.variant)),
            &shop.owner.token,
        )
        .await;
    let released = movements.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "released")
        .count();
    assert_eq!(released, 1, "one release in the ledger: {}", movements.text);
    let discounts = shop.h.get(&shop.admin("/discounts"), &shop.owner.token).await;
    assert_eq!(discounts.body["data"][0]["times_used"], 0, "{}", discounts.text);
    // The code can be used again exactly once more.
    let again = shop
        .h
        .buy("pay", &shop.variant, 1, "second@example.com", Some("ONCE"))
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
}

async fn unknown_event_types_are_acknowledged_and_ignored(db: Db) {
    let shop = Shop::new(db, 10, 1, None).await;
    let before = shop.h.snapshot(&shop.owner).await;
    let body =
        json!({"id": "evt_unknown_1", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}).to_string();
    let answer = shop
        .deliver(&body, Some(&sign(SECRET.as_bytes(), now(), body.as_bytes())))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["outcome"], "ignored_event_type");
    let after = shop.h.snapshot(&shop.owner).await;
    assert_eq!(before, after);
    // A success for an order nobody knows: acknowledged, ignored.
    let body = json!({"id": "evt_unknown_2", "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_x", "amount": 1, "currency": "usd"}}})
    .to_string();
    let answer = shop
        .deliver(&body, Some(&sign(SECRET.as_bytes(), now(), body.as_bytes())))
        .await;
    assert_eq!(answer.body["outcome"], "ignored_unknown_order");
}

/// The cleanup job: gateway event ids outlive any retry window (30 days at least, even
/// when configured shorter), and expired Idempotency-Keys go, freeing the key.
async fn event_ids_are_kept_30_days_and_expired_idempotency_keys_are_purged(db: Db) {
    let app = stormcom_app::AppConfig {
        processed_event_retention: std::time::Duration::from_secs(3600),
        plans: stormcom_domain::PlanTable::unlimited(),
        ..stormcom_app::AppConfig::default()
    };
    let http = stormcom_http::HttpConfig {
        storefront_cache_ttl: std::time::Duration::ZERO,
        ..stormcom_http::HttpConfig::default()
    };
    let shop = Shop::on(Harness::with_configs(db, app, &http), "pay", 10, 1, None).await;
    let event =
        |id: &str| json!({"id": id, "type": "customer.created", "data": {"object": {"id": "cus_1"}}}).to_string();
    for id in ["evt_old", "evt_29_days", "evt_new"] {
        let body = event(id);
        let answer = shop
            .deliver(&body, Some(&sign(SECRET.as_bytes(), now(), body.as_bytes())))
            .await;
        assert_eq!(answer.body["outcome"], "ignored_event_type", "{}", answer.text);
    }
    let ago = |days: i64| {
        (time::OffsetDateTime::now_utc() - time::Duration::days(days))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let db = shop.h.app.db();
    for (id, days) in [("evt_old", 31), ("evt_29_days", 29)] {
        db.execute_admin(&format!(
            "UPDATE processed_webhook_events SET received_at = '{}' WHERE event_id = '{id}'",
            ago(days)
        ))
        .await
        .unwrap();
    }
    assert_eq!(
        shop.h.app.purge_processed_events().await.unwrap(),
        1,
        "only the 31-day-old id goes"
    );
    let redeliver = |id: &str| {
        let (shop, body) = (&shop, event(id));
        let signature = sign(SECRET.as_bytes(), now(), body.as_bytes());
        async move { shop.deliver(&body, Some(&signature)).await.body["outcome"].clone() }
    };
    assert_eq!(
        redeliver("evt_29_days").await,
        "duplicate",
        "a 29-day-old id is still known"
    );
    assert_eq!(redeliver("evt_new").await, "duplicate");
    assert_eq!(
        redeliver("evt_old").await,
        "ignored_event_type",
        "a purged id is new again"
    );

    // Idempotency-Keys: a live key is kept; an expired one is purged and the key reusable.
    let path = shop.admin("/products");
    let product = |title: &str| {
        json!({"handle": title.to_lowercase(), "title": title, "options": ["Size"],
            "variants": [{"options": ["M"], "price": 100, "inventory_quantity": 1}]})
    };
    for key in ["key-live", "key-expired"] {
        let created = shop.h.send(keyed(&path, &shop.owner.token, key, &product(key))).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    }
    db.execute_admin(&format!(
        "UPDATE idempotency_keys SET expires_at = '{}' WHERE key = 'key-expired'",
        ago(1)
    ))
    .await
    .unwrap();
    assert_eq!(shop.h.app.purge_idempotency_keys().await.unwrap(), 1);
    assert_eq!(shop.h.app.purge_idempotency_keys().await.unwrap(), 0);
    shop.h
        .send(keyed(&path, &shop.owner.token, "key-live", &product("Other")))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
    let reused = shop
        .h
        .send(keyed(&path, &shop.owner.token, "key-expired", &product("Other")))
        .await;
    assert_eq!(reused.status, StatusCode::CREATED, "{}", reused.text);
    assert!(reused.headers.get("idempotent-replayed").is_none());
}

/// Two events about one payment at the same moment (different ids, so the ledger does
/// not separate them) queue on the order: the second sees what the first did.
async fn racing_events_about_one_payment_settle_it_once(db: Db) {
    for round in 0..3 {
        // Two successes: one capture, the other already settled; nothing flagged.
        let shop = Shop::named(db.clone(), &format!("twice{round}")).await;
        shop.start_payment().await;
        let events = [
            shop.event(Simulated::Succeeded, None, None).await,
            shop.event(Simulated::Succeeded, None, None).await,
        ];
        let mut outcomes = shop.deliver_together(&events).await;
        outcomes.sort();
        assert_eq!(outcomes, ["captured", "ignored_already_settled"], "round {round}");
        let order = shop.order().await;
        assert_eq!(order["status"], "paid");
        assert!(order["flagged_reason"].is_null(), "{order}");

        // A success racing a failure: either the capture wins (the failure is then
        // ignored) or the failure does (the capture is then flagged, and refundable).
        let shop = Shop::named(db.clone(), &format!("race{round}")).await;
        shop.start_payment().await;
        let events = [
            shop.event(Simulated::Succeeded, None, None).await,
            shop.event(Simulated::Failed, None, None).await,
        ];
        let outcomes = shop.deliver_together(&events).await;
        let payment = shop.payment().await.body;
        let order = shop.order().await;
        match (outcomes[0].as_str(), outcomes[1].as_str()) {
            ("captured", "ignored_already_settled") => {
                assert_eq!(
                    (order["status"].as_str(), payment["status"].as_str()),
                    (Some("paid"), Some("captured"))
                );
            }
            ("flagged_order_not_payable", "payment_failed") => {
                assert_eq!(
                    (order["status"].as_str(), payment["status"].as_str()),
                    (Some("cancelled"), Some("flagged"))
                );
                assert_eq!(payment["captured_amount"], shop.total());
                assert_eq!(
                    shop.refund(shop.total()).await.status,
                    StatusCode::CREATED,
                    "the flagged capture can be refunded"
                );
            }
            other => panic!("round {round}: {other:?} left order {order} and payment {payment}"),
        }
    }
}

/// Events that must not touch the order's payment: one about another intent (a double
/// charge is flagged for staff, the real payment stays pending), a failure after staff
/// marked the order paid, and a gateway refund too large for any integer column.
async fn events_about_another_intent_or_a_settled_order_change_nothing(db: Db) {
    let shop = Shop::new(db.clone(), 10, 1, None).await;
    let started = shop.start_payment().await;
    let signed = |body: Value| {
        let body = body.to_string();
        let signature = sign(SECRET.as_bytes(), now(), body.as_bytes());
        (body, signature)
    };
    let intent_event = |id: &str, kind: &str, intent: &str| {
        signed(json!({"id": id, "type": kind, "data": {"object": {
            "id": intent, "object": "payment_intent", "amount": shop.total(), "currency": "usd",
            "metadata": {"stormcom_order_id": shop.order_id()}}}}))
    };
    let (body, signature) = intent_event("evt_other_1", "payment_intent.succeeded", "pi_someone_else");
    let answer = shop.deliver(&body, Some(&signature)).await;
    assert_eq!(answer.body["outcome"], "flagged_other_payment", "{}", answer.text);
    let payment = shop.payment().await.body;
    assert_eq!(
        (payment["status"].as_str(), payment["provider_ref"].clone()),
        (Some("pending"), started["provider_ref"].clone())
    );
    assert!(
        shop.order().await["flagged_reason"]
            .as_str()
            .unwrap()
            .contains("pi_someone_else")
    );
    let (body, signature) = intent_event("evt_other_2", "payment_intent.payment_failed", "pi_someone_else");
    assert_eq!(
        shop.deliver(&body, Some(&signature)).await.body["outcome"],
        "ignored_other_payment"
    );
    assert_eq!(shop.order().await["status"], "pending_payment");
    // The order's own intent still pays it.
    shop.pay().await;

    // Staff marked an order paid; the gateway then reports its payment failed.
    let manual = Shop::named(db, "manual").await;
    manual.start_payment().await;
    let marked = manual
        .h
        .post(
            &manual.admin(&format!("/orders/{}/mark-paid", manual.order_id())),
            &manual.owner.token,
            json!({}),
        )
        .await;
    assert_eq!(marked.status, StatusCode::OK, "{}", marked.text);
    let before = (manual.payment().await.body, manual.actions().await);
    let (body, signature) = manual.event(Simulated::Failed, None, None).await;
    assert_eq!(
        manual.deliver(&body, Some(&signature)).await.body["outcome"],
        "ignored_order_not_pending"
    );
    assert_eq!(
        (manual.payment().await.body, manual.actions().await),
        before,
        "payment and audit unchanged"
    );

    // A refund of i64::MAX: flagged as exceeding the capture, on both backends.
    let payment = shop.payment().await.body;
    let (body, signature) = signed(
        json!({"id": "evt_huge_refund", "type": "refund.updated", "data": {"object": {
        "id": "re_huge", "object": "refund", "amount": i64::MAX, "currency": "usd", "status": "succeeded",
        "payment_intent": payment["provider_ref"]}}}),
    );
    let answer = shop.deliver(&body, Some(&signature)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["outcome"], "flagged_refund_exceeds_captured");
    assert_eq!(shop.payment().await.body["refunded_amount"], 0);
}

// ---------------------------------------------------------------- Idempotency-Key

fn keyed(path: &str, token: &str, key: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

async fn idempotency_key_replays_refuses_reuse_and_serialises_duplicates(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("idem").await;
    let path = format!("/v1/stores/{}/products", owner.store_id);
    let product = json!({"handle": "once", "title": "Once", "options": ["Size"],
        "variants": [{"options": ["M"], "price": 100, "inventory_quantity": 1}]});

    let first = h.send(keyed(&path, &owner.token, "key-1", &product)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let replay = h.send(keyed(&path, &owner.token, "key-1", &product)).await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.body, first.body, "the stored answer, not a second product");
    assert_eq!(replay.headers.get("idempotent-replayed").unwrap(), "true");
    let products = h.get(&path, &owner.token).await;
    assert_eq!(products.body["data"].as_array().unwrap().len(), 1);

    let mut other = product.clone();
    other["title"] = json!("Different");
    h.send(keyed(&path, &owner.token, "key-1", &other))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
    h.send(keyed(&path, &owner.token, &"k".repeat(300), &other))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_idempotency_key");

    // A refused request is remembered as refused (same key, same body, same answer).
    let bad = json!({"handle": "Bad Handle!", "title": ""});
    let refused = h.send(keyed(&path, &owner.token, "key-bad", &bad)).await;
    // The keyed request runs on its own task and still names its request id.
    refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let refused_again = h.send(keyed(&path, &owner.token, "key-bad", &bad)).await;
    assert_eq!(refused_again.body["code"], refused.body["code"]);

    // Keys belong to their principal: another user's identical key is theirs alone.
    let second = h.owner("idem2").await;
    let theirs = h
        .send(keyed(
            &format!("/v1/stores/{}/products", second.store_id),
            &second.token,
            "key-1",
            &product,
        ))
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.text);
    assert!(theirs.headers.get("idempotent-replayed").is_none());

    // Ten at once with one new key: one runs, the rest see it in progress or replay it.
    let mut concurrent = product.clone();
    concurrent["handle"] = json!("concurrent");
    let token = owner.token.clone();
    let answers = at_once(10, |_| send(&h, keyed(&path, &token, "key-race", &concurrent))).await;
    let fresh = answers
        .iter()
        .filter(|a| a.status == StatusCode::CREATED && a.headers.get("idempotent-replayed").is_none())
        .count();
    assert_eq!(
        fresh,
        1,
        "{:?}",
        answers.iter().map(|a| (a.status, &a.text)).collect::<Vec<_>>()
    );
    for other in &answers {
        let in_progress = other.status == StatusCode::CONFLICT && other.body["code"] == "idempotency_key_in_progress";
        assert!(other.status == StatusCode::CREATED || in_progress, "{}", other.text);
    }
    let products = h.get(&path, &owner.token).await;
    assert_eq!(products.body["data"].as_array().unwrap().len(), 2, "once + concurrent");
}

/// The request timeout (or a client hanging up) must not strand a key between the
/// effect and its stored answer: the request finishes on its own task, a retry waits
/// (409) meanwhile and then gets the one answer.
async fn a_keyed_request_cut_off_by_the_timeout_still_finishes_and_replays(db: Db) {
    let config = stormcom_http::HttpConfig {
        storefront_cache_ttl: std::time::Duration::ZERO,
        request_timeout: std::time::Duration::from_millis(50),
        ..stormcom_http::HttpConfig::default()
    };
    let setup = Harness::new(db);
    let owner = setup.owner("slow").await;
    // The same application behind a router whose requests time out after 50 ms.
    let h = setup.sharing(&config);
    let mut csv = String::from("Handle,Title,Variant Price,Variant Inventory Qty\n");
    for i in 0..400 {
        csv.push_str(&format!("item-{i},Item {i},{},5\n", 100 + i));
    }
    let path = format!("/v1/stores/{}/imports/shopify", owner.store_id);
    let import = || {
        Request::post(&path)
            .header(header::AUTHORIZATION, format!("Bearer {}", owner.token))
            .header(header::CONTENT_TYPE, "text/csv")
            .header("idempotency-key", "import-1")
            .body(Body::from(csv.clone()))
            .unwrap()
    };
    let first = h.send(import()).await;
    assert_eq!(
        first.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the import outlasts 50 ms: {}",
        first.text
    );
    let mut answer = h.send(import()).await;
    for _ in 0..600 {
        // While the import holds the database, a retry may itself time out (503).
        match answer.status {
            StatusCode::CONFLICT => answer.assert_problem(StatusCode::CONFLICT, "idempotency_key_in_progress"),
            StatusCode::SERVICE_UNAVAILABLE => {}
            _ => break,
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        answer = h.send(import()).await;
    }
    assert!(answer.status.is_success(), "{}", answer.text);
    assert_eq!(answer.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(answer.body["products_created"], 400, "{}", answer.text);
    // Imported once: the same file again, without a key, finds every product unchanged.
    let again = setup.post_csv(&path, &owner.token, csv.as_bytes()).await;
    assert_eq!(
        (
            again.body["products_created"].as_i64(),
            again.body["products_unchanged"].as_i64()
        ),
        (Some(0), Some(400)),
        "{}",
        again.text
    );
}

async fn checkout_honours_idempotency_key_per_cart(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    let (_, variant) = h.product_with_stock(&owner, "tee", 10).await;
    let cart = h.cart("shop").await;
    let added = h
        .cart_call(
            Method::POST,
            "shop",
            &cart,
            "/lines",
            Some(json!({"variant_id": variant, "quantity": 2})),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED);
    h.cart_call(
        Method::PUT,
        "shop",
        &cart,
        "/contact",
        Some(json!({"email": "a@example.com"})),
    )
    .await;
    let checkout = |secret: &str| {
        Request::post(format!("/v1/storefront/shop/carts/{}/checkout", cart.0))
            .header("x-cart-secret", secret)
            .header("idempotency-key", "checkout-1")
            .body(Body::empty())
            .unwrap()
    };
    let first = h.send(checkout(&cart.1)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let retry = h.send(checkout(&cart.1)).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.body["id"], first.body["id"], "the same order, not an error");
    // Someone without the cart secret learns nothing from the key.
    let stranger = h.send(checkout("not-the-secret")).await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND, "{}", stranger.text);
    let level = h
        .get(
            &format!("/v1/stores/{}/inventory/{variant}", owner.store_id),
            &owner.token,
        )
        .await;
    assert_eq!(level.body["reserved"], 2);
}

// ---------------------------------------------------------------- provider settings

async fn provider_secrets_are_sealed_and_never_returned(db: Db) {
    let shop = Shop::new(db, 10, 1, None).await;
    let list = shop.h.get(&shop.admin("/payment-providers"), &shop.owner.token).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!list.text.contains(SECRET));
    assert_eq!(list.body["data"][0]["webhook_secret_set"], true);
    let audit = shop.h.get(&shop.admin("/audit?limit=100"), &shop.owner.token).await;
    assert!(!audit.text.contains(SECRET), "no secret in the audit trail");
    // Stripe needs its secret; short secrets are refused; unknown providers are 404.
    let put = |provider: &str, body: Value| {
        let path = shop.admin(&format!("/payment-providers/{provider}"));
        let token = shop.owner.token.clone();
        let h = &shop.h;
        async move { h.call(Method::PUT, &path, Some(&token), Some(body)).await }
    };
    put("stripe", json!({}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    put("stripe", json!({"webhook_secret": "short"}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(put("paypal", json!({})).await.status, StatusCode::NOT_FOUND);
    // Disabled: callbacks are refused.
    assert_eq!(put("test", json!({"enabled": false})).await.status, StatusCode::OK);
    shop.start_payment_refused().await;
}

impl Shop {
    async fn start_payment_refused(&self) {
        let (body, signature) = self.event(Simulated::Succeeded, None, None).await;
        let refused = self.deliver(&body, Some(&signature)).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.text);
    }
}

// ---------------------------------------------------------------- a client nobody here wrote

/// Runs `python3 -c script args…`; `None` when Python or the `stripe` package is missing
/// (which fails the test under CI, where `.ci/run` installs it).
fn python(script: &str, args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .ok()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No module named 'stripe'") {
            return None;
        }
        panic!("python failed: {stderr}");
    }
    Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

async fn the_stripe_python_library_interoperates(db: Db) {
    let probe = python("import stripe; print(stripe.VERSION)", &[]);
    let Some(version) = probe else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install the stripe package (see .ci/run)"
        );
        eprintln!("skipping: the Python stripe package is not installed");
        return;
    };
    eprintln!("stripe-python {version}");
    let shop = Shop::new(db, 10, 1, None).await;
    shop.start_payment().await;

    // 1. Headers our test provider emits verify with Stripe's own library.
    let (body, signature) = shop.event(Simulated::Succeeded, None, None).await;
    let verified = python(
        "import sys, stripe\n\
         stripe.WebhookSignature.verify_header(sys.argv[1], sys.argv[2], sys.argv[3], 300)\n\
         print('ok')",
        &[&body, &signature, SECRET],
    );
    assert_eq!(verified.as_deref(), Some("ok"));

    // 2. Headers Stripe's library makes are accepted by our callback endpoint.
    let stripe_signed = python(
        "import sys, stripe\nprint(stripe.WebhookSignature.generate_signature_header(sys.argv[1], sys.argv[2]))",
        &[&body, SECRET],
    )
    .unwrap();
    let answer = shop.deliver(&body, Some(&stripe_signed)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["outcome"], "captured");
    // And one signed with another secret by the same library is refused.
    let forged = python(
        "import sys, stripe\nprint(stripe.WebhookSignature.generate_signature_header(sys.argv[1], sys.argv[2]))",
        &[&body, "whsec_not_the_store_secret_000000"],
    )
    .unwrap();
    shop.deliver(&body, Some(&forged))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "signature_invalid");
}
