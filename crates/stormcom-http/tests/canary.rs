//! Canary test for information disclosure, on both backends: a whole session (sign-in,
//! failed sign-ins, catalog changes, API tokens, a guest checkout with email, name and
//! address, malformed and invalid requests) runs through the real router with unique
//! canary values, while every log event at every level is formatted as JSON through the
//! same redacting writer `stormcom serve` uses. No canary secret or personal value may
//! appear in the captured log, nor in any error body.

#![expect(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

pub mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Harness, Resp};
use serde_json::{Value, json};
use stormcom_store::Db;
use tracing_subscriber::fmt::MakeWriter;

stormcom_testkit::backend_tests!(no_canary_reaches_logs_or_error_bodies);

/// Everything logged in this process (all tests of this binary share it; each test
/// looks for its own canaries only).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs, once per process, a global JSON subscriber at TRACE level writing through
/// the production redacting writer into memory. Global, so events from any thread count.
fn captured_logs() -> Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_max_level(tracing::Level::TRACE)
            .with_writer(stormcom_http::logging::Redacting(logs.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
    .clone()
}

/// Every answer of the session, to check error bodies afterwards.
struct Session {
    h: Harness,
    answers: Vec<(String, Resp)>,
}

impl Session {
    async fn call(&mut self, what: &str, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let answer = self.h.call(method, path, token, body).await;
        self.answers.push((what.to_owned(), answer.clone()));
        answer
    }

    /// A raw body (malformed JSON and the like).
    async fn raw(&mut self, what: &str, method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let answer = self.h.send(request.body(Body::from(body.to_owned())).unwrap()).await;
        self.answers.push((what.to_owned(), answer.clone()));
        answer
    }
}

async fn no_canary_reaches_logs_or_error_bodies(db: Db) {
    let logs = captured_logs();
    // Lowercase, because emails are normalised before they are stored or compared.
    let tag = format!("cnry{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let owner_email = format!("owner-{tag}@canary.example");
    let password = format!("pw-{tag}-correct-horse");
    let wrong_password = format!("wrong-{tag}-horse-battery");
    let stranger_email = format!("nobody-{tag}@canary.example");
    let shopper_email = format!("shopper-{tag}@canary.example");
    let shopper_name = format!("Ann {tag} Shopper");
    let street = format!("{tag} Lighthouse Lane");
    let city = format!("Port{tag}");
    let postal = format!("PC{tag}");
    let forged_token = format!("scs_{tag}{tag}{tag}");
    let title = format!("Parka {tag}");

    let mut s = Session {
        h: Harness::new(db),
        answers: Vec::new(),
    };
    s.h.app.create_user(&owner_email, &password).await.unwrap();
    let store =
        s.h.app
            .create_store("Canary Store", "canary", "USD", &owner_email)
            .await
            .unwrap();
    let store_id = store.id.to_string();

    // Sign-in: wrong password, unknown email, malformed and mistyped bodies, then right.
    let login = |email: &str, password: &str| json!({"email": email, "password": password});
    let failed = s
        .call(
            "wrong password",
            Method::POST,
            "/v1/auth/login",
            None,
            Some(login(&owner_email, &wrong_password)),
        )
        .await;
    failed.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let failed = s
        .call(
            "unknown email",
            Method::POST,
            "/v1/auth/login",
            None,
            Some(login(&stranger_email, &password)),
        )
        .await;
    failed.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let json_type = [("content-type", "application/json")];
    let malformed = s
        .raw(
            "malformed login",
            Method::POST,
            "/v1/auth/login",
            &json_type,
            &format!(r#"{{"email": "{owner_email}", "password": "{password}""#),
        )
        .await;
    malformed.assert_problem(StatusCode::BAD_REQUEST, "malformed_json");
    let mistyped = s
        .raw(
            "mistyped login",
            Method::POST,
            "/v1/auth/login",
            &json_type,
            &format!(r#"{{"email": ["{owner_email}"], "password": "{password}"}}"#),
        )
        .await;
    mistyped.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    let ok = s
        .call(
            "login",
            Method::POST,
            "/v1/auth/login",
            None,
            Some(login(&owner_email, &password)),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let session = ok.body["token"].as_str().unwrap().to_owned();
    let forged = s
        .call("forged token", Method::GET, "/v1/stores", Some(&forged_token), None)
        .await;
    forged.assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");

    // Catalog changes, good and bad.
    let products = format!("/v1/stores/{store_id}/products");
    let created = s
        .call(
            "create product",
            Method::POST,
            &products,
            Some(&session),
            Some(json!({
                "handle": "parka",
                "title": title,
                "published": true,
                "options": ["Size"],
                "variants": [{"options": ["M"], "price": 12900, "inventory_quantity": 5}]
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let product = created.body["id"].as_str().unwrap().to_owned();
    let variant = created.body["variants"][0]["id"].as_str().unwrap().to_owned();
    let patched = s
        .call(
            "rename product",
            Method::PATCH,
            &format!("{products}/{product}"),
            Some(&session),
            Some(json!({"title": format!("{title} II")})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let invalid = s
        .call(
            "invalid product",
            Method::POST,
            &products,
            Some(&session),
            Some(json!({"handle": format!("Not A Handle {tag}"), "title": ""})),
        )
        .await;
    invalid.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let smuggled = s
        .call(
            "smuggled field",
            Method::POST,
            &products,
            Some(&session),
            Some(json!({"handle": "x", "title": title, "vendor_email": owner_email, "price": tag})),
        )
        .await;
    assert!(smuggled.status.is_client_error(), "{}", smuggled.text);

    // An API token: shown once in its answer, never logged.
    let minted = s
        .call(
            "mint token",
            Method::POST,
            &format!("/v1/stores/{store_id}/api-tokens"),
            Some(&session),
            Some(json!({"name": "feed", "scopes": ["catalog:read"]})),
        )
        .await;
    assert_eq!(minted.status, StatusCode::CREATED, "{}", minted.text);
    let api_token = minted.body["token"].as_str().unwrap().to_owned();
    let listed = s
        .call("read by token", Method::GET, &products, Some(&api_token), None)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);

    // A guest checkout with contact details, after some bad contact requests.
    let cart = s.h.cart("canary").await;
    let line = json!({"variant_id": variant, "quantity": 1});
    let added = s.h.cart_call(Method::POST, "canary", &cart, "/lines", Some(line)).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let contact_path = format!("/v1/storefront/canary/carts/{}/contact", cart.0);
    let cart_headers = [("content-type", "application/json"), ("x-cart-secret", cart.1.as_str())];
    let address = json!({"line1": street, "city": city, "postal_code": postal, "country": "GB"});
    let bad_email = s
        .raw(
            "invalid email",
            Method::PUT,
            &contact_path,
            &cart_headers,
            &json!({"email": format!("{shopper_name} at {street}"), "name": shopper_name}).to_string(),
        )
        .await;
    assert_eq!(bad_email.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad_email.text);
    let truncated = s
        .raw(
            "malformed contact",
            Method::PUT,
            &contact_path,
            &cart_headers,
            &format!(
                r#"{{"email": "{shopper_email}", "name": "{shopper_name}", "shipping_address": {{"line1": "{street}""#
            ),
        )
        .await;
    truncated.assert_problem(StatusCode::BAD_REQUEST, "malformed_json");
    let bad_country = s
        .raw(
            "invalid address",
            Method::PUT,
            &contact_path,
            &cart_headers,
            &json!({
                "email": shopper_email,
                "name": shopper_name,
                "shipping_address": {"line1": street, "city": city, "postal_code": postal, "country": tag}
            })
            .to_string(),
        )
        .await;
    assert_eq!(
        bad_country.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bad_country.text
    );
    let wrong_secret = s
        .raw(
            "wrong cart secret",
            Method::PUT,
            &contact_path,
            &[
                ("content-type", "application/json"),
                ("x-cart-secret", "not-the-secret"),
            ],
            &json!({"email": shopper_email, "name": shopper_name, "shipping_address": address}).to_string(),
        )
        .await;
    wrong_secret.assert_problem(StatusCode::NOT_FOUND, "not_found");
    let contact = s
        .raw(
            "set contact",
            Method::PUT,
            &contact_path,
            &cart_headers,
            &json!({"email": shopper_email, "name": shopper_name, "shipping_address": address}).to_string(),
        )
        .await;
    assert_eq!(contact.status, StatusCode::OK, "{}", contact.text);
    // A made-up HTTP method is client text too.
    let odd = s
        .raw(
            "made-up method",
            Method::from_bytes(format!("X{}", tag.to_uppercase()).as_bytes()).unwrap(),
            &contact_path,
            &cart_headers,
            "",
        )
        .await;
    assert!(odd.status.is_client_error(), "{}", odd.text);
    let order = s.h.cart_call(Method::POST, "canary", &cart, "/checkout", None).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.text);
    let order_id = order.body["id"].as_str().unwrap().to_owned();
    // Staff read the order (the details are in this answer, legitimately), and pay it.
    let detail = s
        .call(
            "read order",
            Method::GET,
            &format!("/v1/stores/{store_id}/orders/{order_id}"),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(
        detail.body["customer"]["email"],
        shopper_email.as_str(),
        "{}",
        detail.text
    );
    let paid = s
        .call(
            "pay order",
            Method::POST,
            &format!("/v1/stores/{store_id}/orders/{order_id}/mark-paid"),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{}", paid.text);
    let logout = s
        .call("logout", Method::POST, "/v1/auth/logout", Some(&session), None)
        .await;
    assert!(logout.status.is_success(), "{}", logout.text);

    let log = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_lowercase();
    // The log is really there: one access line per answer, by request id, with the route
    // template and the store id of store routes.
    for (what, answer) in &s.answers {
        let id = answer.headers.get("x-request-id").unwrap().to_str().unwrap();
        assert!(
            log.contains(&format!(r#""request_id":"{id}""#)),
            "no access log line for {what}"
        );
    }
    assert!(log.contains(r#""route":"/v1/auth/login""#), "{log}");
    assert!(log.contains(&format!(r#""store_id":"{store_id}""#)), "{log}");

    let secrets = [
        owner_email.as_str(),
        stranger_email.as_str(),
        shopper_email.as_str(),
        password.as_str(),
        wrong_password.as_str(),
        shopper_name.as_str(),
        street.as_str(),
        city.as_str(),
        postal.as_str(),
        forged_token.as_str(),
        session.as_str(),
        api_token.as_str(),
        cart.1.as_str(),
    ];
    for secret in secrets {
        let secret = secret.to_lowercase();
        assert!(!log.contains(&secret), "the log shows {secret}");
    }
    // No log line carries the canary at all, not even a product title or a bad value.
    assert!(!log.contains(&tag), "the log shows the canary tag");
    for (what, answer) in &s.answers {
        if answer.status.is_client_error() || answer.status.is_server_error() {
            assert!(
                !answer.text.to_lowercase().contains(&tag),
                "the error body of {what} echoes submitted data: {}",
                answer.text
            );
            assert_eq!(
                answer.headers.get(header::CONTENT_TYPE).unwrap(),
                "application/problem+json",
                "{what}"
            );
        }
    }
}
