//! Thin handlers: extract, call one use case, shape the answer.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use stormcom_domain::redact::Secret;
use stormcom_domain::{MovementId, ProductId, VariantId};

use crate::AppState;
use crate::dto::*;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller, CartSecret, ClientIp, CsvBody, InStore, RawBody};
use crate::problem::{ApiError, ApiResult};
use crate::routes::bearer_token;

pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.app.db().ping().await {
        Ok(()) => Json(Health { status: "ok" }).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "database not ready");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "Not ready",
                "the database is unreachable",
            )
            .into_response()
        }
    }
}

pub async fn openapi(State(state): State<AppState>) -> Response {
    let body: Arc<str> = state.openapi.get().cloned().unwrap_or_else(|| Arc::from("{}"));
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.to_string(),
    )
        .into_response()
}

pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let request = stormcom_app::LoginRequest {
        email: body.email.into_inner(),
        password: body.password,
        totp_code: body.totp_code.map(Secret::into_inner),
        recovery_code: body.recovery_code.map(Secret::into_inner),
        ip,
    };
    let session = state.app.login(request).await?;
    let body = LoginResponse {
        token: session.token.expose().to_owned(),
        token_type: "Bearer",
        expires_at: session.expires_at,
        user_id: session.user_id,
    };
    Ok((StatusCode::OK, Json(body)).into_response())
}

pub async fn logout(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: axum::extract::Request,
) -> ApiResult<StatusCode> {
    if let Some(token) = bearer_token(&request) {
        state.app.logout(&token, ip).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_stores(State(state): State<AppState>, Caller(principal): Caller) -> ApiResult<Json<StoreList>> {
    let stores = state.app.list_stores(principal).await?;
    let data = stores
        .into_iter()
        .map(|(s, role)| StoreDto {
            id: s.id,
            name: s.name,
            handle: s.handle,
            currency: s.currency,
            roles: role.iter().map(|r| r.as_str().to_owned()).collect(),
            created_at: s.created_at,
        })
        .collect();
    Ok(Json(StoreList {
        data,
        next_cursor: None,
    }))
}

#[derive(serde::Deserialize)]
pub struct ProductPath {
    product_id: ProductId,
}

#[derive(serde::Deserialize)]
pub struct VariantPath {
    product_id: ProductId,
    variant_id: VariantId,
}

#[derive(serde::Deserialize)]
pub struct InventoryPath {
    variant_id: VariantId,
}

pub async fn list_products(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<ProductPage>> {
    let page = state.app.list_products(&ctx, query.cursor()?, query.limit).await?;
    Ok(Json(ProductPage {
        data: page
            .items
            .into_iter()
            .map(|v| ProductDto::new(v, ctx.currency()))
            .collect(),
        next_cursor: page.next.map(|id| id.to_string()),
    }))
}

pub async fn create_product(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiJson(body): ApiJson<CreateProductRequest>,
) -> ApiResult<(StatusCode, Json<ProductDto>)> {
    let view = state.app.create_product(&ctx, body.into_new()?).await?;
    Ok((StatusCode::CREATED, Json(ProductDto::new(view, ctx.currency()))))
}

pub async fn get_product(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<ProductPath>,
) -> ApiResult<Json<ProductDto>> {
    let view = state.app.get_product(&ctx, path.product_id).await?;
    Ok(Json(ProductDto::new(view, ctx.currency())))
}

pub async fn update_product(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<ProductPath>,
    ApiJson(body): ApiJson<UpdateProductRequest>,
) -> ApiResult<Json<ProductDto>> {
    let view = state
        .app
        .update_product(&ctx, path.product_id, body.into_patch()?)
        .await?;
    Ok(Json(ProductDto::new(view, ctx.currency())))
}

pub async fn delete_product(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<ProductPath>,
) -> ApiResult<StatusCode> {
    state.app.delete_product(&ctx, path.product_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_variants(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<ProductPath>,
) -> ApiResult<Json<VariantList>> {
    let variants = state.app.list_variants(&ctx, path.product_id).await?;
    Ok(Json(VariantList {
        data: variants
            .into_iter()
            .map(|v| VariantDto::new(v, ctx.currency()))
            .collect(),
        next_cursor: None,
    }))
}

pub async fn create_variant(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<ProductPath>,
    ApiJson(body): ApiJson<CreateVariantRequest>,
) -> ApiResult<(StatusCode, Json<VariantDto>)> {
    let variant = state
        .app
        .create_variant(&ctx, path.product_id, body.into_new()?)
        .await?;
    Ok((StatusCode::CREATED, Json(VariantDto::new(variant, ctx.currency()))))
}

pub async fn get_variant(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<VariantPath>,
) -> ApiResult<Json<VariantDto>> {
    let variant = state.app.get_variant(&ctx, path.product_id, path.variant_id).await?;
    Ok(Json(VariantDto::new(variant, ctx.currency())))
}

pub async fn update_variant(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<VariantPath>,
    ApiJson(body): ApiJson<UpdateVariantRequest>,
) -> ApiResult<Json<VariantDto>> {
    let variant = state
        .app
        .update_variant(&ctx, path.product_id, path.variant_id, body.into_patch()?)
        .await?;
    Ok(Json(VariantDto::new(variant, ctx.currency())))
}

pub async fn delete_variant(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<VariantPath>,
) -> ApiResult<StatusCode> {
    state.app.delete_variant(&ctx, path.product_id, path.variant_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get_inventory(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<InventoryPath>,
) -> ApiResult<Json<InventoryLevelDto>> {
    let level = state.app.inventory_level(&ctx, path.variant_id).await?;
    Ok(Json(InventoryLevelDto::new(path.variant_id, level, None)))
}

pub async fn adjust_inventory(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<InventoryPath>,
    ApiJson(body): ApiJson<AdjustmentRequest>,
) -> ApiResult<(StatusCode, Json<InventoryLevelDto>)> {
    let (level, movement) = state
        .app
        .adjust_inventory(&ctx, path.variant_id, body.delta, &body.reason)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(InventoryLevelDto::new(path.variant_id, level, Some(movement))),
    ))
}

pub async fn list_movements(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<InventoryPath>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<MovementPage>> {
    let after: Option<MovementId> = query.cursor()?;
    let page = state
        .app
        .inventory_movements(&ctx, path.variant_id, after, query.limit)
        .await?;
    Ok(Json(MovementPage {
        data: page.items.into_iter().map(MovementDto::from).collect(),
        next_cursor: page.next.map(|id| id.to_string()),
    }))
}

pub async fn import_shopify(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    CsvBody(body): CsvBody,
) -> ApiResult<Json<ImportSummaryDto>> {
    let summary = state.app.import_shopify(&ctx, body.to_vec(), &|_, _| {}).await?;
    Ok(Json(summary.into()))
}

#[derive(serde::Deserialize)]
pub struct StorefrontPath {
    store_handle: String,
}

#[derive(serde::Deserialize)]
pub struct StorefrontProductPath {
    store_handle: String,
    handle: String,
}

pub async fn storefront_products(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<StorefrontPath>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<StorefrontProductPage>> {
    let (currency, page) = state
        .app
        .storefront_products(&path.store_handle, query.cursor()?, query.limit)
        .await?;
    Ok(Json(StorefrontProductPage {
        data: page
            .items
            .into_iter()
            .map(|v| StorefrontProduct::new(v, currency))
            .collect(),
        next_cursor: page.next.map(|id| id.to_string()),
    }))
}

pub async fn storefront_product(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<StorefrontProductPath>,
) -> ApiResult<Json<StorefrontProduct>> {
    let (currency, view) = state.app.storefront_product(&path.store_handle, &path.handle).await?;
    Ok(Json(StorefrontProduct::new(view, currency)))
}

pub async fn step_up(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<StepUpRequest>,
) -> ApiResult<Json<StepUpResponse>> {
    let valid_until = state
        .app
        .step_up(principal, body.code.as_deref(), body.recovery_code.as_deref(), ip)
        .await?;
    Ok(Json(StepUpResponse { valid_until }))
}

pub async fn enroll_totp(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ClientIp(ip): ClientIp,
) -> ApiResult<(StatusCode, Json<TotpEnrollment>)> {
    let enrollment = state.app.enroll_totp(principal, ip).await?;
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrollment {
            secret: enrollment.secret_base32,
            otpauth_uri: enrollment.otpauth_uri,
        }),
    ))
}

pub async fn confirm_totp(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<TotpConfirmRequest>,
) -> ApiResult<Json<RecoveryCodes>> {
    let recovery_codes = state.app.confirm_totp(principal, &body.code, ip).await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

#[derive(serde::Deserialize)]
pub struct GrantPath {
    grant_id: stormcom_domain::GrantId,
}

#[derive(serde::Deserialize)]
pub struct TokenPath {
    token_id: stormcom_domain::TokenId,
}

pub async fn list_grants(State(state): State<AppState>, InStore(ctx): InStore) -> ApiResult<Json<GrantList>> {
    let grants = state.app.list_grants(&ctx).await?;
    Ok(Json(GrantList {
        data: grants.into_iter().map(GrantDto::from).collect(),
        next_cursor: None,
    }))
}

pub async fn create_grant(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiJson(body): ApiJson<CreateGrantRequest>,
) -> ApiResult<(StatusCode, Json<GrantDto>)> {
    let grant = state.app.create_grant(&ctx, body.into_new()?).await?;
    Ok((StatusCode::CREATED, Json(grant.into())))
}

pub async fn revoke_grant(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<GrantPath>,
) -> ApiResult<StatusCode> {
    state.app.revoke_grant(&ctx, path.grant_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_roles(State(state): State<AppState>, InStore(ctx): InStore) -> ApiResult<Json<RoleList>> {
    let roles = state.app.list_roles(&ctx).await?;
    Ok(Json(RoleList {
        data: roles.into_iter().map(RoleDto::from).collect(),
        next_cursor: None,
    }))
}

pub async fn create_role(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiJson(body): ApiJson<CreateRoleRequest>,
) -> ApiResult<(StatusCode, Json<RoleDto>)> {
    let role = state.app.create_role(&ctx, &body.name, body.permissions()?).await?;
    Ok((StatusCode::CREATED, Json(role.into())))
}

pub async fn list_tokens(State(state): State<AppState>, InStore(ctx): InStore) -> ApiResult<Json<TokenList>> {
    let tokens = state.app.list_api_tokens(&ctx).await?;
    Ok(Json(TokenList {
        data: tokens.into_iter().map(|t| TokenDto::new(t, None)).collect(),
        next_cursor: None,
    }))
}

pub async fn create_token(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiJson(body): ApiJson<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<TokenDto>)> {
    let issued = state
        .app
        .create_api_token(&ctx, &body.name, body.scopes()?, body.expires_at)
        .await?;
    let secret = issued.secret.expose().to_owned();
    Ok((StatusCode::CREATED, Json(TokenDto::new(issued.token, Some(secret)))))
}

pub async fn revoke_token(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<TokenPath>,
) -> ApiResult<StatusCode> {
    state.app.revoke_api_token(&ctx, path.token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_audit(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<AuditPage>> {
    let after: Option<i64> = query.cursor()?;
    let page = state.app.audit_entries(&ctx, after, query.limit).await?;
    Ok(Json(AuditPage {
        data: page.items.into_iter().map(AuditEntryDto::from).collect(),
        next_cursor: page.next.map(|seq| seq.to_string()),
    }))
}

pub async fn verify_audit(State(state): State<AppState>, InStore(ctx): InStore) -> ApiResult<Json<AuditVerification>> {
    Ok(Json(state.app.verify_store_audit(&ctx).await?.into()))
}

#[derive(serde::Deserialize)]
pub struct CartPath {
    store_handle: String,
    cart_id: stormcom_domain::CartId,
}

#[derive(serde::Deserialize)]
pub struct CartLinePath {
    store_handle: String,
    cart_id: stormcom_domain::CartId,
    line_id: stormcom_domain::CartLineId,
}

pub async fn create_cart(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<StorefrontPath>,
) -> ApiResult<(StatusCode, Json<CartDto>)> {
    let cart = state.app.create_cart(&path.store_handle).await?;
    Ok((StatusCode::CREATED, Json(CartDto::new(cart.view, Some(cart.secret)))))
}

pub async fn get_cart(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<CartPath>,
    CartSecret(secret): CartSecret,
) -> ApiResult<Json<CartDto>> {
    let view = state.app.get_cart(&path.store_handle, path.cart_id, &secret).await?;
    Ok(Json(CartDto::new(view, None)))
}

pub async fn add_cart_line(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<CartPath>,
    CartSecret(secret): CartSecret,
    ApiJson(body): ApiJson<AddLineRequest>,
) -> ApiResult<(StatusCode, Json<CartDto>)> {
    let view = state
        .app
        .add_cart_line(
            &path.store_handle,
            path.cart_id,
            &secret,
            body.variant_id,
            body.quantity,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(CartDto::new(view, None))))
}

pub async fn update_cart_line(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<CartLinePath>,
    CartSecret(secret): CartSecret,
    ApiJson(body): ApiJson<UpdateLineRequest>,
) -> ApiResult<Json<CartDto>> {
    let view = state
        .app
        .update_cart_line(&path.store_handle, path.cart_id, &secret, path.line_id, body.quantity)
        .await?;
    Ok(Json(CartDto::new(view, None)))
}

pub async fn remove_cart_line(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<CartLinePath>,
    CartSecret(secret): CartSecret,
) -> ApiResult<Json<CartDto>> {
    let view = state
        .app
        .remove_cart_line(&path.store_handle, path.cart_id, &secret, path.line_id)
        .await?;
    Ok(Json(CartDto::new(view, None)))
}

pub async fn set_cart_contact(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<CartPath>,
    CartSecret(secret): CartSecret,
    ApiJson(body): ApiJson<ContactRequest>,
) -> ApiResult<Json<CartDto>> {
    let view = state
        .app
        .set_cart_contact(&path.store_handle, path.cart_id, &secret, body.into_contact())
        .await?;
    Ok(Json(CartDto::new(view, None)))
}

pub async fn apply_cart_discount(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<CartPath>,
    CartSecret(secret): CartSecret,
    ApiJson(body): ApiJson<DiscountCodeRequest>,
) -> ApiResult<Json<CartDto>> {
    let view = state
        .app
        .set_cart_discount(&path.store_handle, path.cart_id, &secret, Some(&body.code))
        .await?;
    Ok(Json(CartDto::new(view, None)))
}

pub async fn remove_cart_discount(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<CartPath>,
    CartSecret(secret): CartSecret,
) -> ApiResult<Json<CartDto>> {
    let view = state
        .app
        .set_cart_discount(&path.store_handle, path.cart_id, &secret, None)
        .await?;
    Ok(Json(CartDto::new(view, None)))
}

pub async fn checkout(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<CartPath>,
    CartSecret(secret): CartSecret,
) -> ApiResult<(StatusCode, Json<OrderDto>)> {
    let order = state.app.checkout(&path.store_handle, path.cart_id, &secret).await?;
    Ok((StatusCode::CREATED, Json(OrderDto::new(order))))
}

#[derive(serde::Deserialize)]
pub struct OrderPath {
    order_id: stormcom_domain::OrderId,
}

#[derive(serde::Deserialize)]
pub struct DiscountPath {
    discount_id: stormcom_domain::DiscountId,
}

pub async fn list_orders(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<OrderPage>> {
    let page = state.app.list_orders(&ctx, query.cursor()?, query.limit).await?;
    Ok(Json(OrderPage {
        data: page.items.into_iter().map(OrderDto::new).collect(),
        next_cursor: page.next.map(|id| id.to_string()),
    }))
}

pub async fn get_order(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<OrderPath>,
) -> ApiResult<Json<OrderDto>> {
    Ok(Json(OrderDto::detailed(
        state.app.get_order(&ctx, path.order_id).await?,
    )))
}

pub async fn cancel_order(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<OrderPath>,
) -> ApiResult<Json<OrderDto>> {
    Ok(Json(OrderDto::new(state.app.cancel_order(&ctx, path.order_id).await?)))
}

pub async fn fulfill_order(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<OrderPath>,
) -> ApiResult<Json<OrderDto>> {
    Ok(Json(OrderDto::new(state.app.fulfill_order(&ctx, path.order_id).await?)))
}

pub async fn mark_order_paid(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<OrderPath>,
) -> ApiResult<Json<OrderDto>> {
    Ok(Json(OrderDto::new(state.app.mark_paid(&ctx, path.order_id).await?)))
}

pub async fn list_discounts(State(state): State<AppState>, InStore(ctx): InStore) -> ApiResult<Json<DiscountList>> {
    let data = state
        .app
        .list_discounts(&ctx)
        .await?
        .into_iter()
        .map(DiscountDto::from)
        .collect();
    Ok(Json(DiscountList {
        data,
        next_cursor: None,
    }))
}

pub async fn create_discount(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiJson(body): ApiJson<DiscountRequest>,
) -> ApiResult<(StatusCode, Json<DiscountDto>)> {
    let discount = state.app.create_discount(&ctx, body.into_input()).await?;
    Ok((StatusCode::CREATED, Json(discount.into())))
}

pub async fn get_discount(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<DiscountPath>,
) -> ApiResult<Json<DiscountDto>> {
    Ok(Json(state.app.get_discount(&ctx, path.discount_id).await?.into()))
}

pub async fn update_discount(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<DiscountPath>,
    ApiJson(body): ApiJson<DiscountRequest>,
) -> ApiResult<Json<DiscountDto>> {
    Ok(Json(
        state
            .app
            .update_discount(&ctx, path.discount_id, body.into_input())
            .await?
            .into(),
    ))
}

pub async fn unfreeze_discount(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<DiscountPath>,
) -> ApiResult<Json<DiscountDto>> {
    Ok(Json(state.app.unfreeze_discount(&ctx, path.discount_id).await?.into()))
}

pub async fn list_alerts(State(state): State<AppState>, InStore(ctx): InStore) -> ApiResult<Json<AlertList>> {
    let data = state
        .app
        .list_alerts(&ctx)
        .await?
        .into_iter()
        .map(|a| AlertDto {
            id: a.id,
            kind: a.kind,
            subject: a.subject,
            detail: a.detail,
            created_at: a.created_at,
            resolved_at: a.resolved_at,
        })
        .collect();
    Ok(Json(AlertList {
        data,
        next_cursor: None,
    }))
}

pub async fn reconcile(State(state): State<AppState>, InStore(ctx): InStore) -> ApiResult<Json<ReconcileReportDto>> {
    Ok(Json(state.app.reconcile(&ctx).await?.into()))
}

pub async fn resolve_drift(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<InventoryPath>,
    ApiJson(body): ApiJson<ResolveDriftRequest>,
) -> ApiResult<Json<InventoryLevelDto>> {
    let level = state.app.resolve_drift(&ctx, path.variant_id, &body.reason).await?;
    Ok(Json(InventoryLevelDto::new(path.variant_id, level, None)))
}

// ---------------------------------------------------------------- payments

#[derive(serde::Deserialize)]
pub struct ProviderPath {
    provider: String,
}

fn provider_of(name: &str) -> Result<stormcom_domain::payment::Provider, ApiError> {
    name.parse().map_err(|()| ApiError::not_found())
}

pub async fn configure_provider(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<ProviderPath>,
    ApiJson(body): ApiJson<ProviderRequest>,
) -> ApiResult<Json<ProviderDto>> {
    let provider = provider_of(&path.provider)?;
    let view = state
        .app
        .configure_provider(
            &ctx,
            provider,
            body.webhook_secret.as_ref().map(|s| s.expose().as_str()),
            body.enabled.unwrap_or(true),
        )
        .await?;
    Ok(Json(ProviderDto::new(view)))
}

pub async fn list_providers(State(state): State<AppState>, InStore(ctx): InStore) -> ApiResult<Json<ProviderList>> {
    let data = state.app.list_providers(&ctx).await?;
    Ok(Json(ProviderList {
        data: data.into_iter().map(ProviderDto::new).collect(),
    }))
}

pub async fn start_payment(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<OrderPath>,
    ApiJson(body): ApiJson<StartPaymentRequest>,
) -> ApiResult<(StatusCode, Json<PaymentDto>)> {
    let provider = body.provider.parse().map_err(|()| {
        ApiError::from(stormcom_app::AppError::Validation(
            stormcom_domain::ValidationErrors::single("provider", "unknown_provider", "test or stripe"),
        ))
    })?;
    let payment = state
        .app
        .start_payment(&ctx, path.order_id, provider, body.provider_ref.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(PaymentDto::new(payment))))
}

pub async fn get_payment(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<OrderPath>,
) -> ApiResult<Json<PaymentDto>> {
    Ok(Json(PaymentDto::with_refunds(
        state.app.order_payment(&ctx, path.order_id).await?,
    )))
}

pub async fn refund_order(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<OrderPath>,
    ApiJson(body): ApiJson<RefundRequest>,
) -> ApiResult<(StatusCode, Json<RefundDto>)> {
    let refund = state
        .app
        .refund_order(&ctx, path.order_id, body.amount, &body.reason)
        .await?;
    Ok((StatusCode::CREATED, Json(RefundDto::new(refund))))
}

pub async fn list_refunds(
    State(state): State<AppState>,
    InStore(ctx): InStore,
    ApiPath(path): ApiPath<OrderPath>,
) -> ApiResult<Json<RefundList>> {
    let data = state.app.list_refunds(&ctx, path.order_id).await?;
    Ok(Json(RefundList {
        data: data.into_iter().map(RefundDto::new).collect(),
    }))
}

#[derive(serde::Deserialize)]
pub struct CallbackPath {
    provider: String,
    store_id: String,
}

/// Gateway callbacks: the body is taken as raw bytes, because the signature covers the
/// exact bytes sent; it is parsed only after the signature verifies.
pub async fn payment_callback(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<CallbackPath>,
    headers: axum::http::HeaderMap,
    body: RawBody,
) -> ApiResult<Json<CallbackAck>> {
    let store_id = path.store_id.parse().map_err(|_| ApiError::not_found())?;
    let signature = headers
        .get(stormcom_domain::payment::SIGNATURE_HEADER)
        .map(|v| v.to_str().unwrap_or("not-ascii"));
    let outcome = state
        .app
        .payment_callback(&path.provider, store_id, signature, &body.0)
        .await?;
    Ok(Json(CallbackAck {
        received: true,
        event_id: outcome.event_id,
        duplicate: outcome.duplicate,
        outcome: outcome.outcome.to_owned(),
    }))
}
