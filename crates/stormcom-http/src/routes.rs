//! The route table. Each route declares its access (public, any signed-in user, or a
//! store permission) where it is registered; the check runs in a middleware wrapped
//! around that one handler, before any body is read. The same table generates the
//! OpenAPI document and drives the tests that walk every route.

use axum::extract::{DefaultBodyLimit, RawPathParams, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use axum::{RequestExt, Router};
use stormcom_app::{AccessDecision, AppError, Principal, StoreContext};
use stormcom_domain::secret::BearerToken;
use stormcom_domain::{Permission, StoreId};
use utoipa::openapi::path::{Operation, OperationBuilder, ParameterBuilder, ParameterIn, Paths};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, HttpMethod, Ref, RefOr, Required, ResponseBuilder, Schema};

use crate::AppState;
use crate::problem::ApiError;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    /// Any valid session.
    SignedIn,
    /// A member of the store in the path holding this permission.
    Store(Permission),
}

#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub class: RouteClass,
    pub summary: &'static str,
}

/// Routes grouped by the kind of load they carry: rate limits, metrics and logs are
/// per class, so a flood of storefront reads cannot starve logins or checkouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// Health checks and the OpenAPI document.
    System,
    /// Login, logout, MFA and step-up.
    Auth,
    AdminRead,
    AdminWrite,
    /// Public catalog reads.
    StorefrontRead,
    /// Carts and checkout.
    Checkout,
    /// Signed calls from payment gateways.
    PaymentCallback,
}

impl RouteClass {
    pub const ALL: [Self; 7] = [
        Self::System,
        Self::Auth,
        Self::AdminRead,
        Self::AdminWrite,
        Self::StorefrontRead,
        Self::Checkout,
        Self::PaymentCallback,
    ];

    /// Derived from the path and method, so a new route cannot be left unclassified.
    #[must_use]
    pub fn of(method: &Method, path: &str) -> Self {
        let read = *method == Method::GET || *method == Method::HEAD;
        if !path.starts_with("/v1/") || path == "/v1/openapi.json" {
            Self::System
        } else if path.starts_with("/v1/auth/") || path.starts_with("/v1/me/") {
            Self::Auth
        } else if path.starts_with("/v1/payments/") {
            Self::PaymentCallback
        } else if path.starts_with("/v1/storefront/") {
            if path.contains("/carts") {
                Self::Checkout
            } else {
                Self::StorefrontRead
            }
        } else if read {
            Self::AdminRead
        } else {
            Self::AdminWrite
        }
    }

    /// Position in [`RouteClass::ALL`].
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Auth => "auth",
            Self::AdminRead => "admin_read",
            Self::AdminWrite => "admin_write",
            Self::StorefrontRead => "storefront_read",
            Self::Checkout => "checkout",
            Self::PaymentCallback => "payment_callback",
        }
    }
}

/// The template and class of the route that handled a request, for logs and metrics.
#[derive(Debug, Clone, Copy)]
pub struct RouteTemplate(pub &'static str, pub RouteClass);

/// One operation being declared.
pub struct Op {
    spec: RouteSpec,
    tag: &'static str,
    body_limit: usize,
    request: Option<(&'static str, RefOr<Schema>)>,
    response: Option<(StatusCode, Option<RefOr<Schema>>)>,
    query: &'static [&'static str],
    schemas: Vec<(String, RefOr<Schema>)>,
    cached: bool,
    idempotent: bool,
}

/// JSON bodies are small; endpoints that take files raise this per route.
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

pub fn op(method: Method, path: &'static str, access: Access, summary: &'static str) -> Op {
    let tag = path.trim_start_matches("/v1/").split('/').next().unwrap_or("system");
    let method_is_post = method == Method::POST;
    Op {
        spec: RouteSpec {
            class: RouteClass::of(&method, path),
            method,
            path,
            access,
            summary,
        },
        tag,
        body_limit: DEFAULT_BODY_LIMIT,
        request: None,
        response: None,
        query: &[],
        schemas: Vec::new(),
        cached: false,
        // Every mutating POST of the admin API honours Idempotency-Key.
        idempotent: method_is_post && access != Access::Public,
    }
}

impl Op {
    fn schema_ref<T: utoipa::ToSchema>(&mut self) -> RefOr<Schema> {
        let name = T::name().into_owned();
        self.schemas.push((name.clone(), T::schema()));
        T::schemas(&mut self.schemas);
        RefOr::Ref(Ref::from_schema_name(name))
    }

    #[must_use]
    pub fn json<T: utoipa::ToSchema>(mut self) -> Self {
        let schema = self.schema_ref::<T>();
        self.request = Some(("application/json", schema));
        self
    }

    #[must_use]
    pub fn csv(mut self, body_limit: usize) -> Self {
        self.request = Some((
            "text/csv",
            RefOr::T(Schema::Object(utoipa::openapi::Object::with_type(
                utoipa::openapi::Type::String,
            ))),
        ));
        self.body_limit = body_limit;
        self
    }

    #[must_use]
    pub fn returns<T: utoipa::ToSchema>(mut self, status: StatusCode) -> Self {
        let schema = self.schema_ref::<T>();
        self.response = Some((status, Some(schema)));
        self
    }

    #[must_use]
    pub fn no_content(mut self) -> Self {
        self.response = Some((StatusCode::NO_CONTENT, None));
        self
    }

    /// Serve successful answers from the shared microcache (public reads only).
    #[must_use]
    pub fn cached(mut self) -> Self {
        debug_assert_eq!(self.spec.access, Access::Public, "only public answers may be shared");
        self.cached = self.spec.access == Access::Public;
        self
    }

    /// Honour `Idempotency-Key` on a public route (storefront checkout).
    #[must_use]
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    #[must_use]
    pub fn paged(mut self) -> Self {
        self.query = &["limit", "after"];
        self
    }

    fn operation(&self) -> Operation {
        let mut builder = OperationBuilder::new().summary(Some(self.spec.summary)).tag(self.tag);
        for segment in self.spec.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                builder = builder.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True),
                );
            }
        }
        for name in self.query {
            builder = builder.parameter(ParameterBuilder::new().name(*name).parameter_in(ParameterIn::Query));
        }
        if let Some((content_type, schema)) = &self.request {
            builder = builder.request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        *content_type,
                        ContentBuilder::new().schema(Some(schema.clone())).build(),
                    )
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        if let Some((status, schema)) = &self.response {
            let mut response = ResponseBuilder::new().description(status.canonical_reason().unwrap_or(""));
            if let Some(schema) = schema {
                response = response.content(
                    "application/json",
                    ContentBuilder::new().schema(Some(schema.clone())).build(),
                );
            }
            builder = builder.response(status.as_u16().to_string(), response.build());
        }
        builder = builder.response(
            "default",
            ResponseBuilder::new()
                .description("Error")
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build(),
        );
        if self.spec.access != Access::Public {
            builder = builder.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
        }
        if let Access::Store(permission) = self.spec.access {
            builder = builder.description(Some(format!("Requires the `{permission}` permission in the store.")));
        }
        builder.build()
    }
}

/// The registered routes, taken apart for assembly.
pub(crate) struct RouteParts {
    pub router: Router<AppState>,
    pub specs: Vec<RouteSpec>,
    pub paths: Paths,
    pub schemas: Vec<(String, RefOr<Schema>)>,
}

/// Routes being registered, with their table and OpenAPI paths.
pub struct Routes {
    state: AppState,
    cache: Option<MicroCache>,
    router: Router<AppState>,
    pub(crate) specs: Vec<RouteSpec>,
    pub(crate) paths: Paths,
    pub(crate) schemas: Vec<(String, RefOr<Schema>)>,
}

impl Routes {
    pub fn new(state: AppState, cache: Option<MicroCache>) -> Self {
        Self {
            state,
            cache,
            router: Router::new(),
            specs: Vec::new(),
            paths: Paths::new(),
            schemas: Vec::new(),
        }
    }

    #[must_use]
    pub fn add<H, T>(mut self, op: Op, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let guard = from_fn_with_state(
            (
                self.state.clone(),
                op.spec.access,
                RouteTemplate(op.spec.path, op.spec.class),
            ),
            enforce_access,
        );
        let handler = handler.layer(DefaultBodyLimit::max(op.body_limit));
        let (filter, http_method) = method_filter(&op.spec.method);
        let method_router = match (self.cache.clone().filter(|_| op.cached), op.idempotent) {
            (Some(cache), _) => on(
                filter,
                handler.layer(from_fn_with_state(cache, serve_cached)).layer(guard),
            ),
            (None, true) => on(
                filter,
                handler
                    .layer(from_fn_with_state(
                        (self.state.clone(), op.body_limit),
                        crate::idempotency::middleware,
                    ))
                    .layer(guard),
            ),
            (None, false) => on(filter, handler.layer(guard)),
        };
        self.router = self.router.route(op.spec.path, method_router);
        self.paths
            .add_path_operation(op.spec.path, vec![http_method], op.operation());
        self.schemas.extend(op.schemas);
        self.specs.push(op.spec);
        self
    }

    pub(crate) fn into_parts(self) -> RouteParts {
        RouteParts {
            router: self.router,
            specs: self.specs,
            paths: self.paths,
            schemas: self.schemas,
        }
    }
}

/// A short-lived cache of public answers, keyed by path and query. Storefront reads
/// dominate traffic and change rarely; a second of staleness turns a database round
/// trip per read into a memory lookup. Only 200 answers are kept (so probing random
/// handles cannot fill it), and the size is bounded.
#[derive(Clone)]
pub struct MicroCache {
    entries: moka::sync::Cache<String, CachedAnswer>,
    max_age: HeaderValue,
}

#[derive(Clone)]
struct CachedAnswer {
    content_type: Option<HeaderValue>,
    body: bytes::Bytes,
}

/// Largest answer worth caching.
const MAX_CACHED_BODY: usize = 1024 * 1024;

impl MicroCache {
    #[must_use]
    pub fn new(ttl: std::time::Duration, capacity: u64) -> Self {
        let max_age = HeaderValue::from_str(&format!("public, max-age={}", ttl.as_secs()))
            .unwrap_or(HeaderValue::from_static("no-cache"));
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            max_age,
        }
    }

    fn answer(&self, answer: CachedAnswer) -> Response {
        let mut response = answer.body.into_response();
        if let Some(content_type) = answer.content_type {
            response.headers_mut().insert(header::CONTENT_TYPE, content_type);
        }
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, self.max_age.clone());
        response
    }
}

async fn serve_cached(State(cache): State<MicroCache>, request: Request, next: Next) -> Response {
    let key = request
        .uri()
        .path_and_query()
        .map_or_else(String::new, ToString::to_string);
    if let Some(hit) = cache.entries.get(&key) {
        return cache.answer(hit);
    }
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, MAX_CACHED_BODY).await {
        Ok(body) => {
            let answer = CachedAnswer {
                content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
                body,
            };
            cache.entries.insert(key, answer.clone());
            cache.answer(answer)
        }
        Err(_) => ApiError::internal().into_response(),
    }
}

fn method_filter(method: &Method) -> (MethodFilter, HttpMethod) {
    match *method {
        Method::POST => (MethodFilter::POST, HttpMethod::Post),
        Method::PUT => (MethodFilter::PUT, HttpMethod::Put),
        Method::PATCH => (MethodFilter::PATCH, HttpMethod::Patch),
        Method::DELETE => (MethodFilter::DELETE, HttpMethod::Delete),
        _ => (MethodFilter::GET, HttpMethod::Get),
    }
}

/// The client's address: resolved once per request by [`crate::client_ip::middleware`]
/// (forwarded headers count only from trusted proxies), else the connection's peer.
pub fn client_ip(request: &Request) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<crate::client_ip::ClientIp>()
        .map(|c| c.0)
        .or_else(|| {
            request
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip())
        })
}

/// Reads `Authorization: Bearer <token>`.
pub fn bearer_token(request: &Request) -> Option<BearerToken> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 512)
        .then(|| BearerToken::from_presented(token.to_owned()))
}

/// Failed tokens are throttled per client address (`App::authenticate_from`).
async fn authenticate(
    state: &AppState,
    token: Option<BearerToken>,
    ip: Option<std::net::IpAddr>,
) -> Result<Principal, ApiError> {
    let token = token.ok_or(AppError::Unauthenticated)?;
    Ok(state.app.authenticate_from(&token, ip).await?)
}

/// The route's whole request (access check, limits, handler) within the request
/// timeout. Timed out here, inside the route, the 503 is problem+json and is logged and
/// counted under its route.
async fn enforce_access(
    State((state, access, template)): State<(AppState, Access, RouteTemplate)>,
    request: Request,
    next: Next,
) -> Response {
    let limit = state.request_timeout;
    match tokio::time::timeout(limit, checked_request(state, access, template, request, next)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "request_timeout",
                "Request timeout",
                format!("the request took longer than {} s; retry later", limit.as_secs_f64()),
            )
            .with_retry_after(1)
            .into_response();
            response.extensions_mut().insert(template);
            response
        }
    }
}

async fn checked_request(
    state: AppState,
    access: Access,
    template: RouteTemplate,
    mut request: Request,
    next: Next,
) -> Response {
    // A member lacking the permission: refused (and audited) only once the request is
    // past the rate limit, so a limited caller cannot grow the audit chain.
    let mut missing_permission = None;
    let checked = async {
        match access {
            Access::Public => {}
            Access::SignedIn => {
                let principal = authenticate(&state, bearer_token(&request), client_ip(&request)).await?;
                request.extensions_mut().insert(principal);
            }
            Access::Store(permission) => {
                let principal = authenticate(&state, bearer_token(&request), client_ip(&request)).await?;
                let params = request
                    .extract_parts::<RawPathParams>()
                    .await
                    .map_err(|_| ApiError::not_found())?;
                let store: StoreId = params
                    .iter()
                    .find(|(name, _)| *name == "store_id")
                    .and_then(|(_, value)| value.parse().ok())
                    .ok_or_else(ApiError::not_found)?;
                // Inserted first so a refused caller is still limited as themselves.
                request.extensions_mut().insert(principal);
                let context = match state
                    .app
                    .authorize(principal, store, permission, client_ip(&request))
                    .await?
                {
                    AccessDecision::Granted(context) => context,
                    AccessDecision::MissingPermission(context) => {
                        missing_permission = Some((context, permission));
                        context
                    }
                };
                // Also on a refusal: the limiter charges the store's plan.
                request.extensions_mut().insert(context);
            }
        }
        Ok::<(), ApiError>(())
    }
    .await;
    let limit = match &state.limiter {
        Some(limiter) if template.1 != RouteClass::System => {
            let (key, plan) = crate::ratelimit::payer(access, &request);
            limiter.check(template.1, plan, &key).await
        }
        _ => None,
    };
    if let Some(refused) = limit.as_ref().filter(|d| !d.allowed) {
        let mut response = crate::ratelimit::too_many(template.1, refused);
        response.extensions_mut().insert(template);
        return response;
    }
    let checked = match (checked, missing_permission) {
        (Ok(()), Some((context, permission))) => Err(ApiError::from(state.app.refuse(&context, permission).await)),
        (checked, _) => checked,
    };
    let mut response = match checked {
        Ok(()) => {
            // For the access log: the store the request was authorized in.
            let context = request.extensions().get::<StoreContext>().copied();
            let mut response = next.run(request).await;
            if let Some(context) = context {
                response.extensions_mut().insert(context);
            }
            response
        }
        Err(error) => {
            let unauthenticated = error.status() == StatusCode::UNAUTHORIZED;
            let mut response = error.into_response();
            if unauthenticated {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
    };
    if let Some(decision) = &limit {
        decision.apply_headers(response.headers_mut());
    }
    response.extensions_mut().insert(template);
    response
}
