//! Drives the real router in-process (`Router::oneshot`): every layer, extractor and
//! access check runs exactly as in `stormcom serve`.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use stormcom_app::{App, AppConfig};
use stormcom_http::routes::RouteSpec;
use stormcom_http::{HttpConfig, build};
use stormcom_store::Db;
use tower::ServiceExt;

pub const PASSWORD: &str = "correct horse battery";

pub struct Harness {
    pub router: Router,
    pub routes: Vec<RouteSpec>,
    pub app: App,
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// Asserts a problem+json answer with this status and code, carrying the request id.
    pub fn assert_problem(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(self.body["code"], code, "body: {}", self.text);
        assert_eq!(
            self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        let request_id = self
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(!request_id.is_empty(), "every response carries x-request-id");
        assert_eq!(self.body["request_id"], request_id, "problem body names the request id");
        assert_eq!(self.body["status"], status.as_u16());
    }
}

/// A store owner signed in through the API.
#[derive(Debug, Clone)]
pub struct Owner {
    pub email: String,
    pub token: String,
    pub store_id: String,
    pub store_handle: String,
}

impl Harness {
    /// Without the storefront microcache, so every read sees the latest write.
    pub fn new(db: Db) -> Self {
        let config = HttpConfig {
            storefront_cache_ttl: std::time::Duration::ZERO,
            ..HttpConfig::default()
        };
        Self::with_config(db, &config)
    }

    /// Without plan quotas: suites that walk every route make more of everything than a
    /// plan allows. `quotas.rs` sets its plans with [`Harness::with_configs`].
    pub fn with_config(db: Db, config: &HttpConfig) -> Self {
        let app = AppConfig {
            plans: stormcom_domain::PlanTable::unlimited(),
            ..AppConfig::default()
        };
        Self::with_configs(db, app, config)
    }

    pub fn with_configs(db: Db, app_config: AppConfig, config: &HttpConfig) -> Self {
        let app = App::new(db, app_config, stormcom_app::Keys::generate().unwrap());
        let api = build(app.clone(), config);
        Self {
            router: api.router,
            routes: api.routes,
            app,
        }
    }

    /// The same application behind a router built with another configuration.
    pub fn sharing(&self, config: &HttpConfig) -> Self {
        let api = build(self.app.clone(), config);
        Self {
            router: api.router,
            routes: api.routes,
            app: self.app.clone(),
        }
    }

    pub async fn send(&self, request: Request<Body>) -> Resp {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(&body).unwrap())),
            None => builder.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn post_csv(&self, path: &str, token: &str, csv: &[u8]) -> Resp {
        let request = Request::post(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "text/csv")
            .body(Body::from(csv.to_vec()))
            .unwrap();
        self.send(request).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Resp {
        self.call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    /// A new user owning a new store, signed in.
    pub async fn owner(&self, handle: &str) -> Owner {
        let email = format!("owner@{handle}.example");
        self.app.create_user(&email, PASSWORD).await.unwrap();
        let store = self
            .app
            .create_store(&format!("Store {handle}"), handle, "USD", &email)
            .await
            .unwrap();
        let login = self.login(&email, PASSWORD).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.text);
        Owner {
            email,
            token: login.body["token"].as_str().unwrap().to_owned(),
            store_id: store.id.to_string(),
            store_handle: handle.to_owned(),
        }
    }

    /// Creates a product with one variant holding `stock` units; returns (product, variant) ids.
    pub async fn product_with_stock(&self, owner: &Owner, handle: &str, stock: i64) -> (String, String) {
        let created = self
            .post(
                &format!("/v1/stores/{}/products", owner.store_id),
                &owner.token,
                json!({
                    "handle": handle,
                    "title": format!("Product {handle}"),
                    "published": true,
                    "options": ["Size"],
                    "variants": [{"options": ["M"], "price": 4299, "inventory_quantity": stock}]
                }),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        (
            created.body["id"].as_str().unwrap().to_owned(),
            created.body["variants"][0]["id"].as_str().unwrap().to_owned(),
        )
    }

    /// Everything an owner can read about their store, for before/after comparisons.
    pub async fn snapshot(&self, owner: &Owner) -> Value {
        let products = self
            .get(
                &format!("/v1/stores/{}/products?limit=100", owner.store_id),
                &owner.token,
            )
            .await;
        assert_eq!(products.status, StatusCode::OK, "{}", products.text);
        let mut ledgers = Vec::new();
        for product in products.body["data"].as_array().unwrap() {
            for variant in product["variants"].as_array().unwrap() {
                let path = format!(
                    "/v1/stores/{}/inventory/{}/movements?limit=100",
                    owner.store_id,
                    variant["id"].as_str().unwrap()
                );
                ledgers.push(self.get(&path, &owner.token).await.body);
            }
        }
        let mut access = Vec::new();
        for list in ["grants", "roles", "api-tokens", "audit?limit=100"] {
            let response = self
                .get(&format!("/v1/stores/{}/{list}", owner.store_id), &owner.token)
                .await;
            assert_eq!(response.status, StatusCode::OK, "{}", response.text);
            access.push(response.body);
        }
        json!({"products": products.body, "ledgers": ledgers, "access": access})
    }
}

/// A signed-in user with no grants yet.
#[derive(Debug, Clone)]
pub struct User {
    pub email: String,
    pub token: String,
}

impl Harness {
    pub async fn user(&self, email: &str) -> User {
        self.app.create_user(email, PASSWORD).await.unwrap();
        let login = self.login(email, PASSWORD).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.text);
        User {
            email: email.to_owned(),
            token: login.body["token"].as_str().unwrap().to_owned(),
        }
    }

    /// Enrols and confirms TOTP for the session; returns the secret and recovery codes.
    /// Confirming also counts as a step-up for this session.
    pub async fn enable_totp(&self, token: &str) -> (stormcom_domain::totp::TotpSecret, Vec<String>) {
        let enrolled = self.call(Method::POST, "/v1/me/mfa/totp", Some(token), None).await;
        assert_eq!(enrolled.status, StatusCode::CREATED, "{}", enrolled.text);
        let encoded = enrolled.body["secret"].as_str().unwrap().to_owned();
        let bytes = totp_rs::Secret::try_from_base32(encoded).unwrap().as_bytes().to_vec();
        let secret = stormcom_domain::totp::TotpSecret::from_bytes(bytes).unwrap();
        let code = totp_code(&secret, 0);
        let confirmed = self.post("/v1/me/mfa/totp/confirm", token, json!({"code": code})).await;
        assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.text);
        let codes = confirmed.body["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        (secret, codes)
    }

    /// The store's audit actions, oldest first.
    pub async fn audit_actions(&self, owner: &Owner) -> Vec<String> {
        let mut actions = Vec::new();
        let mut after = String::new();
        loop {
            let path = format!("/v1/stores/{}/audit?limit=100{after}", owner.store_id);
            let page = self.get(&path, &owner.token).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.text);
            actions.extend(
                page.body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["action"].as_str().unwrap().to_owned()),
            );
            match page.body["next_cursor"].as_str() {
                Some(cursor) => after = format!("&after={cursor}"),
                None => return actions,
            }
        }
    }
}

/// The TOTP code `steps_ahead` time steps from now.
pub fn totp_code(secret: &stormcom_domain::totp::TotpSecret, steps_ahead: u64) -> String {
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    stormcom_domain::totp::generate_at(secret, now + 30 * steps_ahead)
}

impl Harness {
    /// A new cart of the store; returns (cart id, secret).
    pub async fn cart(&self, store_handle: &str) -> (String, String) {
        let created = self
            .call(
                Method::POST,
                &format!("/v1/storefront/{store_handle}/carts"),
                None,
                None,
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        (
            created.body["id"].as_str().unwrap().to_owned(),
            created.body["secret"].as_str().unwrap().to_owned(),
        )
    }

    /// A storefront call on a cart, with its secret.
    pub async fn cart_call(
        &self,
        method: Method,
        store_handle: &str,
        cart: &(String, String),
        tail: &str,
        body: Option<Value>,
    ) -> Resp {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("/v1/storefront/{store_handle}/carts/{}{tail}", cart.0))
            .header("x-cart-secret", &cart.1);
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let body = match body {
            Some(body) => Body::from(serde_json::to_vec(&body).unwrap()),
            None => Body::empty(),
        };
        self.send(builder.body(body).unwrap()).await
    }

    /// Checks out `quantity` of a variant as `email`; returns the answer.
    pub async fn buy(&self, store_handle: &str, variant: &str, quantity: i64, email: &str, code: Option<&str>) -> Resp {
        let cart = self.cart(store_handle).await;
        let added = self
            .cart_call(
                Method::POST,
                store_handle,
                &cart,
                "/lines",
                Some(json!({"variant_id": variant, "quantity": quantity})),
            )
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
        let contact = self
            .cart_call(
                Method::PUT,
                store_handle,
                &cart,
                "/contact",
                Some(json!({"email": email})),
            )
            .await;
        assert_eq!(contact.status, StatusCode::OK, "{}", contact.text);
        if let Some(code) = code {
            let applied = self
                .cart_call(
                    Method::PUT,
                    store_handle,
                    &cart,
                    "/discount",
                    Some(json!({"code": code})),
                )
                .await;
            assert_eq!(applied.status, StatusCode::OK, "{}", applied.text);
        }
        self.cart_call(Method::POST, store_handle, &cart, "/checkout", None)
            .await
    }
}
