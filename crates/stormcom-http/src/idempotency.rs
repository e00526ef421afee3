//! The `Idempotency-Key` middleware: wraps mutating admin POSTs and storefront checkout,
//! after the access check (so the principal is known). The rules live in
//! `stormcom_app::idempotency`; this layer reads the body once, fingerprints it, and
//! stores or replays the answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::RequestExt;
use axum::body::Body;
use axum::extract::{RawPathParams, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use stormcom_app::idempotency::{self, Claim};
use stormcom_app::store::StoreScope;
use stormcom_app::{Principal, StoreContext};
use tracing::Instrument;

use crate::AppState;
use crate::problem::ApiError;

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on an answer that was replayed from an earlier request with the same key.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Largest answer kept for replay; larger ones are answered but the key is released.
const MAX_STORED_ANSWER: usize = 4 * 1024 * 1024;

pub async fn middleware(
    State((state, body_limit)): State<(AppState, usize)>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(key) = request.headers().get(&IDEMPOTENCY_KEY) else {
        return next.run(request).await;
    };
    let Some(key) = key
        .to_str()
        .ok()
        .filter(|k| idempotency::valid_key(k))
        .map(str::to_owned)
    else {
        return ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
        )
        .into_response();
    };
    let app = &state.app;

    // Whose key: the signed-in principal; on the storefront, whoever holds the cart
    // secret (so nobody else can read a checkout's answer by guessing its key).
    let principal = match request.extensions().get::<Principal>() {
        Some(p) => p.to_string(),
        None => {
            let secret = request
                .headers()
                .get("x-cart-secret")
                .map(HeaderValue::as_bytes)
                .unwrap_or_default();
            format!("cart:{}", hex::encode(&Sha256::digest(secret)[..16]))
        }
    };
    let scope: Option<StoreScope> = match request.extensions().get::<StoreContext>() {
        Some(ctx) => Some(*ctx.scope()),
        None => {
            let handle = request.extract_parts::<RawPathParams>().await.ok().and_then(|params| {
                params
                    .iter()
                    .find(|(name, _)| *name == "store_handle")
                    .map(|(_, v)| v.to_owned())
            });
            match handle {
                // An unknown store: let the handler answer its 404.
                Some(h) => match app.store_by_handle(&h).await {
                    Ok(store) => Some(store.scope()),
                    Err(_) => return next.run(request).await,
                },
                None => None,
            }
        }
    };

    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, body_limit).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Payload too large",
            "the request body is larger than this endpoint accepts",
        )
        .into_response();
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let path = parts.uri.path_and_query().map_or("", |p| p.as_str());
    let fingerprint = idempotency::fingerprint(parts.method.as_str(), path, content_type, &bytes);

    // Claim, run and store on their own task: a client that hangs up, or the request
    // timeout, must not cut the sequence between committing the claim and storing the
    // answer (the key would stay "in progress" for a day). It runs to the end; a retry
    // meanwhile is told to wait, and afterwards gets the stored answer.
    let keyed = Keyed {
        app: app.clone(),
        scope,
        principal,
        key,
        claimed: Arc::default(),
    };
    let request = Request::from_parts(parts, Body::from(bytes));
    let task = tokio::spawn(crate::request_id::carried(
        keyed
            .clone()
            .claim_and_run(fingerprint, next, request)
            .instrument(tracing::Span::current()),
    ));
    match task.await {
        Ok(response) => response,
        Err(e) => {
            // A panic: the handler's transaction rolled back, so a retry may run again.
            tracing::error!(error = %e, "idempotent request task failed");
            if keyed.claimed.load(Ordering::SeqCst) {
                keyed.release().await;
            }
            ApiError::internal().into_response()
        }
    }
}

/// A request with an Idempotency-Key.
#[derive(Clone)]
struct Keyed {
    app: stormcom_app::App,
    scope: Option<StoreScope>,
    principal: String,
    key: String,
    /// Set once this request holds the key: only then may a failure release it.
    claimed: Arc<AtomicBool>,
}

impl Keyed {
    /// Claims the key, then runs the request, replays its stored answer, or refuses.
    async fn claim_and_run(self, fingerprint: Vec<u8>, next: Next, request: Request) -> Response {
        let claim = self
            .app
            .claim_idempotent(self.scope.as_ref(), &self.principal, &self.key, &fingerprint)
            .await;
        match claim {
            Err(e) => ApiError::from(e).into_response(),
            Ok(Claim::Reused) => ApiError::unprocessable(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
            )
            .into_response(),
            Ok(Claim::InProgress) => {
                let mut response = ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_key_in_progress",
                    "Conflict",
                    "a request with this Idempotency-Key is still being processed",
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            Ok(Claim::Replay {
                status,
                content_type,
                body,
            }) => {
                let mut response = Response::new(Body::from(body));
                *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                if let Ok(value) = HeaderValue::from_str(&content_type)
                    && !content_type.is_empty()
                {
                    response.headers_mut().insert(header::CONTENT_TYPE, value);
                }
                response
                    .headers_mut()
                    .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
                response
            }
            Ok(Claim::Proceed) => {
                self.claimed.store(true, Ordering::SeqCst);
                self.run(next, request).await
            }
        }
    }

    /// Runs the request, then stores its answer, or forgets the key after a server-side
    /// failure (worth retrying).
    async fn run(self, next: Next, request: Request) -> Response {
        let response = next.run(request).await;
        let status = response.status();
        if status.is_server_error() {
            self.release().await;
            return response;
        }
        let (parts, body) = response.into_parts();
        let Ok(body) = axum::body::to_bytes(body, MAX_STORED_ANSWER).await else {
            self.release().await;
            return ApiError::internal().into_response();
        };
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if let Err(e) = self
            .app
            .complete_idempotent(
                self.scope.as_ref(),
                &self.principal,
                &self.key,
                status.as_u16(),
                content_type,
                &body,
            )
            .await
        {
            // The effect happened; the key stays "in progress" until it expires, so a
            // retry is refused rather than run twice.
            tracing::error!(error = %e, "could not store an idempotent answer");
        }
        Response::from_parts(parts, Body::from(body))
    }

    async fn release(&self) {
        if let Err(e) = self
            .app
            .release_idempotent(self.scope.as_ref(), &self.principal, &self.key)
            .await
        {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
    }
}
