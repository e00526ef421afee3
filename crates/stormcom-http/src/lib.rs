//! The HTTP edge of StormCom: the axum router, its access checks, problem+json errors
//! and the OpenAPI document, all driven by one route table ([`routes`]).

pub mod client_ip;
pub mod dto;
mod extract;
mod handlers;
mod idempotency;
pub mod logging;
pub mod metrics;
pub mod problem;
pub mod ratelimit;
pub mod request_id;
pub mod routes;
pub mod server;

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use stormcom_app::{App, StoreContext};
use stormcom_domain::Permission;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder};

use crate::dto::*;
use crate::problem::{ApiError, Problem};
use crate::routes::{Access, MicroCache, RouteSpec, RouteTemplate, Routes, op};

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub app: App,
    limiter: Option<ratelimit::RateLimiter>,
    openapi: Arc<OnceLock<Arc<str>>>,
    request_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub request_timeout: Duration,
    /// Largest CSV accepted by the import endpoint.
    pub import_body_limit: usize,
    /// How long public storefront answers may be served from memory; zero disables it.
    pub storefront_cache_ttl: Duration,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` headers name the client.
    pub trusted_proxies: client_ip::TrustedProxies,
    /// Request rate limits. `None` (the default, for embedding and tests) limits
    /// nothing; `stormcom serve` always sets one.
    pub rate_limiter: Option<ratelimit::RateLimiter>,
    /// Browser origins allowed to call `/v1/storefront/*` cross-origin (see
    /// [`parse_origins`]). Empty: no CORS headers, so browsers refuse cross-origin calls.
    /// Other routes never answer CORS.
    pub cors_origins: Vec<HeaderValue>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            import_body_limit: 64 * 1024 * 1024,
            storefront_cache_ttl: Duration::from_secs(1),
            trusted_proxies: client_ip::TrustedProxies::default(),
            rate_limiter: None,
            cors_origins: Vec::new(),
        }
    }
}

/// The assembled API.
pub struct Api {
    pub router: Router,
    pub routes: Vec<RouteSpec>,
    pub openapi: OpenApi,
}

fn table(routes: Routes, config: &HttpConfig) -> Routes {
    use Access::{Public, SignedIn, Store};
    use Method as M;
    use Permission as P;
    routes
        .add(
            op(M::GET, "/healthz", Public, "Liveness").returns::<Health>(StatusCode::OK),
            handlers::healthz,
        )
        .add(
            op(M::GET, "/readyz", Public, "Readiness: the database answers").returns::<Health>(StatusCode::OK),
            handlers::readyz,
        )
        .add(
            op(M::GET, "/v1/openapi.json", Public, "This document"),
            handlers::openapi,
        )
        .add(
            op(
                M::POST,
                "/v1/auth/login",
                Public,
                "Exchange email and password for a session token",
            )
            .json::<LoginRequest>()
            .returns::<LoginResponse>(StatusCode::OK),
            handlers::login,
        )
        .add(
            op(M::POST, "/v1/auth/logout", Public, "Revoke the presented session token").no_content(),
            handlers::logout,
        )
        .add(
            op(M::GET, "/v1/stores", SignedIn, "Stores the caller belongs to").returns::<StoreList>(StatusCode::OK),
            handlers::list_stores,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/products",
                Store(P::CatalogRead),
                "List products",
            )
            .paged()
            .returns::<ProductPage>(StatusCode::OK),
            handlers::list_products,
        )
        .add(
            op(
                M::POST,
                "/v1/stores/{store_id}/products",
                Store(P::CatalogWrite),
                "Create a product (optionally with variants)",
            )
            .json::<CreateProductRequest>()
            .returns::<ProductDto>(StatusCode::CREATED),
            handlers::create_product,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/products/{product_id}",
                Store(P::CatalogRead),
                "Get a product",
            )
            .returns::<ProductDto>(StatusCode::OK),
            handlers::get_product,
        )
        .add(
            op(
                M::PATCH,
                "/v1/stores/{store_id}/products/{product_id}",
                Store(P::CatalogWrite),
                "Update a product",
            )
            .json::<UpdateProductRequest>()
            .returns::<ProductDto>(StatusCode::OK),
            handlers::update_product,
        )
        .add(
            op(
                M::DELETE,
                "/v1/stores/{store_id}/products/{product_id}",
                Store(P::CatalogWrite),
                "Delete a product, its variants and images",
            )
            .no_content(),
            handlers::delete_product,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/products/{product_id}/variants",
                Store(P::CatalogRead),
                "List a product's variants",
            )
            .returns::<VariantList>(StatusCode::OK),
            handlers::list_variants,
        )
        .add(
            op(
                M::POST,
                "/v1/stores/{store_id}/products/{product_id}/variants",
                Store(P::CatalogWrite),
                "Add a variant",
            )
            .json::<CreateVariantRequest>()
            .returns::<VariantDto>(StatusCode::CREATED),
            handlers::create_variant,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/products/{product_id}/variants/{variant_id}",
                Store(P::CatalogRead),
                "Get a variant",
            )
            .returns::<VariantDto>(StatusCode::OK),
            handlers::get_variant,
        )
        .add(
            op(
                M::PATCH,
                "/v1/stores/{store_id}/products/{product_id}/variants/{variant_id}",
                Store(P::CatalogWrite),
                "Update a variant",
            )
            .json::<UpdateVariantRequest>()
            .returns::<VariantDto>(StatusCode::OK),
            handlers::update_variant,
        )
        .add(
            op(
                M::DELETE,
                "/v1/stores/{store_id}/products/{product_id}/variants/{variant_id}",
                Store(P::CatalogWrite),
                "Delete a variant",
            )
            .no_content(),
            handlers::delete_variant,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/inventory/{variant_id}",
                Store(P::InventoryRead),
                "A variant's stock level",
            )
            .returns::<InventoryLevelDto>(StatusCode::OK),
            handlers::get_inventory,
        )
        .add(
            op(
                M::POST,
                "/v1/stores/{store_id}/inventory/{variant_id}/adjustments",
                Store(P::InventoryWrite),
                "Adjust on-hand stock",
            )
            .json::<AdjustmentRequest>()
            .returns::<InventoryLevelDto>(StatusCode::CREATED),
            handlers::adjust_inventory,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/inventory/{variant_id}/movements",
                Store(P::InventoryRead),
                "The variant's movement ledger",
            )
            .paged()
            .returns::<MovementPage>(StatusCode::OK),
            handlers::list_movements,
        )
        .add(
            op(
                M::POST,
                "/v1/stores/{store_id}/imports/shopify",
                Store(P::CatalogWrite),
                "Import a Shopify product CSV (needs inventory:write too)",
            )
            .csv(config.import_body_limit)
            .returns::<ImportSummaryDto>(StatusCode::OK),
            handlers::import_shopify,
        )
        .add(
            op(
                M::POST,
                "/v1/auth/step-up",
                SignedIn,
                "Prove the second factor again, for critical actions",
            )
            .json::<StepUpRequest>()
            .returns::<StepUpResponse>(StatusCode::OK),
            handlers::step_up,
        )
        .add(
            op(
                M::POST,
                "/v1/me/mfa/totp",
                SignedIn,
                "Start TOTP enrolment (secret and otpauth URI, shown once)",
            )
            .returns::<TotpEnrollment>(StatusCode::CREATED),
            handlers::enroll_totp,
        )
        .add(
            op(
                M::POST,
                "/v1/me/mfa/totp/confirm",
                SignedIn,
                "Confirm TOTP with a first code; returns recovery codes",
            )
            .json::<TotpConfirmRequest>()
            .returns::<RecoveryCodes>(StatusCode::OK),
            handlers::confirm_totp,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/grants",
                Store(P::AccessRead),
                "Live grants of the store",
            )
            .returns::<GrantList>(StatusCode::OK),
            handlers::list_grants,
        )
        .add(
            op(
                M::POST,
                "/v1/stores/{store_id}/grants",
                Store(P::AccessGrant),
                "Grant a role or permission to a user",
            )
            .json::<CreateGrantRequest>()
            .returns::<GrantDto>(StatusCode::CREATED),
            handlers::create_grant,
        )
        .add(
            op(
                M::DELETE,
                "/v1/stores/{store_id}/grants/{grant_id}",
                Store(P::AccessGrant),
                "Revoke a grant",
            )
            .no_content(),
            handlers::revoke_grant,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/roles",
                Store(P::AccessRead),
                "Custom roles of the store",
            )
            .returns::<RoleList>(StatusCode::OK),
            handlers::list_roles,
        )
        .add(
            op(
                M::POST,
                "/v1/stores/{store_id}/roles",
                Store(P::AccessGrant),
                "Create a custom role",
            )
            .json::<CreateRoleRequest>()
            .returns::<RoleDto>(StatusCode::CREATED),
            handlers::create_role,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/api-tokens",
                Store(P::TokensWrite),
                "API tokens (never their secrets)",
            )
            .returns::<TokenList>(StatusCode::OK),
            handlers::list_tokens,
        )
        .add(
            op(
                M::POST,
                "/v1/stores/{store_id}/api-tokens",
                Store(P::TokensWrite),
                "Create an API token (secret shown once)",
            )
            .json::<CreateTokenRequest>()
            .returns::<TokenDto>(StatusCode::CREATED),
            handlers::create_token,
        )
        .add(
            op(
                M::DELETE,
                "/v1/stores/{store_id}/api-tokens/{token_id}",
                Store(P::TokensWrite),
                "Revoke an API token",
            )
            .no_content(),
            handlers::revoke_token,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/audit",
                Store(P::AuditRead),
                "The store's audit log, oldest first",
            )
            .paged()
            .returns::<AuditPage>(StatusCode::OK),
            handlers::list_audit,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/audit/verify",
                Store(P::AuditRead),
                "Verify the store's hash chain",
            )
            .returns::<AuditVerification>(StatusCode::OK),
            handlers::verify_audit,
        )
        .add(
            op(
                M::GET,
                "/v1/storefront/{store_handle}/products",
                Public,
                "Published products of a store",
            )
            .paged()
            .cached()
            .returns::<StorefrontProductPage>(StatusCode::OK),
            handlers::storefront_products,
        )
        .add(
            op(
                M::GET,
                "/v1/storefront/{store_handle}/products/{handle}",
                Public,
                "A published product by handle",
            )
            .cached()
            .returns::<StorefrontProduct>(StatusCode::OK),
            handlers::storefront_product,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/orders",
                Store(P::OrdersRead),
                "List orders",
            )
            .paged()
            .returns::<OrderPage>(StatusCode::OK),
            handlers::list_orders,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/orders/{order_id}",
                Store(P::OrdersRead),
                "An order with its lines and customer",
            )
            .returns::<OrderDto>(StatusCode::OK),
            handlers::get_order,
        )
        .add(
            op(
                M::POST,
                "/v1/stores/{store_id}/orders/{order_id}/cancel",
                Store(P::OrdersWrite),
                "Cancel an unpaid order",
            )
            .returns::<OrderDto>(StatusCode::OK),
            handlers::cancel_order,
        )
        .add(
            op(
                M::POST,
                "/v1/stores/{store_id}/orders/{order_id}/fulfill",
                Store(P::OrdersWrite),
                "Fulfil a paid order",
            )
            .returns::<OrderDto>(StatusCode::OK),
            handlers::fulfill_order,
        )
        .add(
            op(
                M::POST,
                "/v1/stores/{store_id}/orders/{order_id}/mark-paid",
                Store(P::OrdersWrite),
                "Record payment; commits the stock",
            )
            .returns::<OrderDto>(StatusCode::OK),
            handlers::mark_order_paid,
        )
        .add(
            op(
                M::POST,
                "/v1/stores/{store_id}/orders/{order_id}/payments",
                Store(P::OrdersWrite),
                "Open a payment for an unpaid order through a provider",
            )
            .json::<StartPaymentRequest>()
            .returns::<PaymentDto>(StatusCode::CREATED),
            handlers::start_payment,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/orders/{order_id}/payment",
                Store(P::OrdersRead),
                "The order's payment with its refunds",
            )
            .returns::<PaymentDto>(StatusCode::OK),
            handlers::get_payment,
        )
        .add(
            op(
                M::POST,
                "/v1/stores/{store_id}/orders/{order_id}/refunds",
                Store(P::OrdersRefund),
                "Refund part or all of the captured payment",
            )
            .json::<RefundRequest>()
            .returns::<RefundDto>(StatusCode::CREATED),
            handlers::refund_order,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/orders/{order_id}/refunds",
                Store(P::OrdersRead),
                "Refunds of an order",
            )
            .returns::<RefundList>(StatusCode::OK),
            handlers::list_refunds,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/payment-providers",
                Store(P::PaymentsManage),
                "Payment providers of the store (secrets are never shown)",
            )
            .returns::<ProviderList>(StatusCode::OK),
            handlers::list_providers,
        )
        .add(
            op(
                M::PUT,
                "/v1/stores/{store_id}/payment-providers/{provider}",
                Store(P::PaymentsManage),
                "Set a provider's webhook secret and switch it on or off",
            )
            .json::<ProviderRequest>()
            .returns::<ProviderDto>(StatusCode::OK),
            handlers::configure_provider,
        )
        .add(
            op(
                M::POST,
                "/v1/payments/{provider}/callbacks/{store_id}",
                Public,
                "Signed gateway event (Stripe-Signature); duplicates are acknowledged and ignored",
            )
            .returns::<CallbackAck>(StatusCode::OK),
            handlers::payment_callback,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/discounts",
                Store(P::DiscountsWrite),
                "Discount codes",
            )
            .returns::<DiscountList>(StatusCode::OK),
            handlers::list_discounts,
        )
        .add(
            op(
                M::POST,
                "/v1/stores/{store_id}/discounts",
                Store(P::DiscountsWrite),
                "Create a discount code",
            )
            .json::<DiscountRequest>()
            .returns::<DiscountDto>(StatusCode::CREATED),
            handlers::create_discount,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/discounts/{discount_id}",
                Store(P::DiscountsWrite),
                "A discount code",
            )
            .returns::<DiscountDto>(StatusCode::OK),
            handlers::get_discount,
        )
        .add(
            op(
                M::PUT,
                "/v1/stores/{store_id}/discounts/{discount_id}",
                Store(P::DiscountsWrite),
                "Replace a discount code's rules",
            )
            .json::<DiscountRequest>()
            .returns::<DiscountDto>(StatusCode::OK),
            handlers::update_discount,
        )
        .add(
            op(
                M::POST,
                "/v1/stores/{store_id}/discounts/{discount_id}/unfreeze",
                Store(P::DiscountsWrite),
                "Reactivate a frozen code",
            )
            .returns::<DiscountDto>(StatusCode::OK),
            handlers::unfreeze_discount,
        )
        .add(
            op(
                M::GET,
                "/v1/stores/{store_id}/alerts",
                Store(P::StoreRead),
                "Alerts raised by monitoring rules",
            )
            .returns::<AlertList>(StatusCode::OK),
            handlers::list_alerts,
        )
        .add(
            op(
                M::POST,
                "/v1/stores/{store_id}/inventory/reconcile",
                Store(P::InventoryWrite),
                "Reconcile stock with the ledger",
            )
            .returns::<ReconcileReportDto>(StatusCode::OK),
            handlers::reconcile,
        )
        .add(
            op(
                M::POST,
                "/v1/stores/{store_id}/inventory/{variant_id}/resolve-drift",
                Store(P::InventoryWrite),
                "Accept counted stock after a drift",
            )
            .json::<ResolveDriftRequest>()
            .returns::<InventoryLevelDto>(StatusCode::OK),
            handlers::resolve_drift,
        )
        .add(
            op(
                M::POST,
                "/v1/storefront/{store_handle}/carts",
                Public,
                "Create a cart (returns its secret once)",
            )
            .returns::<CartDto>(StatusCode::CREATED),
            handlers::create_cart,
        )
        .add(
            op(
                M::GET,
                "/v1/storefront/{store_handle}/carts/{cart_id}",
                Public,
                "A cart, priced now (X-Cart-Secret)",
            )
            .returns::<CartDto>(StatusCode::OK),
            handlers::get_cart,
        )
        .add(
            op(
                M::POST,
                "/v1/storefront/{store_handle}/carts/{cart_id}/lines",
                Public,
                "Add a line (X-Cart-Secret)",
            )
            .json::<AddLineRequest>()
            .returns::<CartDto>(StatusCode::CREATED),
            handlers::add_cart_line,
        )
        .add(
            op(
                M::PATCH,
                "/v1/storefront/{store_handle}/carts/{cart_id}/lines/{line_id}",
                Public,
                "Change a line's quantity",
            )
            .json::<UpdateLineRequest>()
            .returns::<CartDto>(StatusCode::OK),
            handlers::update_cart_line,
        )
        .add(
            op(
                M::DELETE,
                "/v1/storefront/{store_handle}/carts/{cart_id}/lines/{line_id}",
                Public,
                "Remove a line",
            )
            .returns::<CartDto>(StatusCode::OK),
            handlers::remove_cart_line,
        )
        .add(
            op(
                M::PUT,
                "/v1/storefront/{store_handle}/carts/{cart_id}/contact",
                Public,
                "Set email, name and shipping address",
            )
            .json::<ContactRequest>()
            .returns::<CartDto>(StatusCode::OK),
            handlers::set_cart_contact,
        )
        .add(
            op(
                M::PUT,
                "/v1/storefront/{store_handle}/carts/{cart_id}/discount",
                Public,
                "Apply a discount code",
            )
            .json::<DiscountCodeRequest>()
            .returns::<CartDto>(StatusCode::OK),
            handlers::apply_cart_discount,
        )
        .add(
            op(
                M::DELETE,
                "/v1/storefront/{store_handle}/carts/{cart_id}/discount",
                Public,
                "Remove the discount code",
            )
            .returns::<CartDto>(StatusCode::OK),
            handlers::remove_cart_discount,
        )
        .add(
            op(
                M::POST,
                "/v1/storefront/{store_handle}/carts/{cart_id}/checkout",
                Public,
                "Check out: an order with stock reserved (honours Idempotency-Key)",
            )
            .idempotent()
            .returns::<OrderDto>(StatusCode::CREATED),
            handlers::checkout,
        )
}

/// Builds the whole API around `app`.
pub fn build(app: App, config: &HttpConfig) -> Api {
    let state = AppState {
        app,
        limiter: config.rate_limiter.clone(),
        openapi: Arc::new(OnceLock::new()),
        request_timeout: config.request_timeout,
    };
    let cache = (!config.storefront_cache_ttl.is_zero()).then(|| MicroCache::new(config.storefront_cache_ttl, 10_000));
    let routes::RouteParts {
        router,
        specs: routes,
        paths,
        mut schemas,
    } = table(Routes::new(state.clone(), cache), config).into_parts();
    schemas.push(("Problem".to_owned(), <Problem as utoipa::PartialSchema>::schema()));
    let openapi = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("StormCom API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Multi-tenant commerce. Errors are application/problem+json with a stable `code`.",
                )),
        )
        .paths(paths)
        .components(Some(
            ComponentsBuilder::new()
                .schemas_from_iter(schemas)
                .security_scheme(
                    "bearer",
                    SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
                )
                .build(),
        ))
        .build();
    let _ = state.openapi.set(Arc::from(openapi.to_json().unwrap_or_default()));

    let cors = (!config.cors_origins.is_empty()).then(|| Arc::new(storefront_cors_layer(&config.cors_origins)));
    let router = router
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                "this path does not accept that method",
            )
        })
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(from_fn(request_id::middleware))
                .layer(from_fn(access_log))
                .layer(from_fn_with_state(
                    config.trusted_proxies.clone(),
                    client_ip::middleware,
                ))
                // The security headers wrap everything below them, panics included (the
                // request timeout is applied per route, in `routes::enforce_access`).
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_FRAME_OPTIONS,
                    HeaderValue::from_static("DENY"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    HeaderName::from_static("referrer-policy"),
                    HeaderValue::from_static("no-referrer"),
                ))
                // A JSON API loads nothing and is framed by no one.
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
                ))
                .layer(CatchPanicLayer::custom(|_| ApiError::internal().into_response()))
                // Innermost, so preflight answers carry the headers above too.
                .layer(from_fn_with_state(cors, storefront_cors)),
        );
    Api {
        router,
        routes,
        openapi,
    }
}

/// Storefront origins as an operator writes them: comma-separated
/// `scheme://host[:port]`, without paths; `*` is refused (the storefront list is an
/// allow-list, not a wildcard).
pub fn parse_origins(list: &str) -> Result<Vec<HeaderValue>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            let host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .ok_or_else(|| format!("origin '{origin}' must start with https:// or http://"))?;
            if host.is_empty() || host.contains(['/', '*', ' ', '?', '#', '@']) {
                return Err(format!("origin '{origin}' must be scheme://host[:port], nothing more"));
            }
            HeaderValue::from_str(origin).map_err(|_| format!("origin '{origin}' is not a valid header value"))
        })
        .collect()
}

fn storefront_cors_layer(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([header::CONTENT_TYPE, HeaderName::from_static("x-cart-secret")])
        .expose_headers([HeaderName::from_static(request_id::HEADER)])
        .max_age(Duration::from_secs(600))
}

/// CORS for the public storefront only: admin and auth routes are for first-party
/// clients, and answering their preflights would only widen what a hostile page can try.
async fn storefront_cors(State(cors): State<Option<Arc<CorsLayer>>>, request: Request, next: Next) -> Response {
    let Some(cors) = cors.filter(|_| request.uri().path().starts_with("/v1/storefront/")) else {
        return next.run(request).await;
    };
    let inner = tower::service_fn(move |request: Request| {
        let next = next.clone();
        async move { Ok::<_, Infallible>(next.run(request).await) }
    });
    match cors.layer(inner).oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// One line per request: request id, method, route template (never the raw path or
/// query, which may carry identifiers or personal data), class, store id when the route
/// is a store's, status and latency; and the request counters and latency histogram.
async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Methods are client text: only the standard ones are logged as sent.
    let method = match *request.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "(other)",
    };
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let (route, class) = response
        .extensions()
        .get::<RouteTemplate>()
        .map_or(("(unmatched)", "none"), |t| (t.0, t.1.as_str()));
    let store_id = response
        .extensions()
        .get::<StoreContext>()
        .map(|c| tracing::field::display(c.store_id()));
    let status = response.status();
    ::metrics::counter!(metrics::HTTP_REQUESTS, "class" => class, "status" => status.as_str().to_owned()).increment(1);
    ::metrics::histogram!(metrics::HTTP_REQUEST_DURATION, "class" => class).record(elapsed.as_secs_f64());
    let request_id = request_id::current();
    let request_id = request_id.as_deref().unwrap_or("");
    let status = status.as_u16();
    let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    if status >= 500 {
        tracing::warn!(
            request_id, method, route, class, store_id, status, latency_us, "request"
        );
    } else {
        tracing::info!(
            request_id, method, route, class, store_id, status, latency_us, "request"
        );
    }
    response
}
