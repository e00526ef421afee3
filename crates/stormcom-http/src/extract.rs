//! Extractors whose every failure is a problem+json answer with a stable code, and
//! whose messages never echo submitted values (they may be personal data).

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use stormcom_app::{Principal, StoreContext};

use crate::problem::ApiError;

fn content_type_is(request: &Request, wanted: &[&str]) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .is_some_and(|essence| {
            wanted.iter().any(|w| essence == *w) || wanted.contains(&"+json") && essence.ends_with("+json")
        })
}

async fn body_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection: BytesRejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "Payload too large",
                    "the request body is larger than this endpoint accepts",
                )
            } else {
                ApiError::bad_request("invalid_body", "the request body could not be read")
            }
        })
}

/// A JSON body. Unknown fields are refused (`deny_unknown_fields` on every request
/// type), so a smuggled `store_id` is an error, never obeyed.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !content_type_is(&request, &["application/json", "+json"]) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                "send the body as application/json",
            ));
        }
        let bytes = body_bytes(request, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    let value = deserialize(deserializer)?;
    // Only whitespace may follow the value: `{…}garbage` is not JSON.
    deserializer.end().map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!(
                "the body is not valid JSON (line {}, column {}): trailing characters",
                e.line(),
                e.column()
            ),
        )
    })?;
    Ok(value)
}

fn deserialize<T: DeserializeOwned>(
    deserializer: &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        if matches!(
            inner.classify(),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        ) {
            return ApiError::bad_request(
                "malformed_json",
                format!(
                    "the body is not valid JSON (line {}, column {})",
                    inner.line(),
                    inner.column()
                ),
            );
        }
        let message = inner.to_string();
        let field = |prefix: &str| {
            let name: String = message.split('`').nth(1).unwrap_or("").chars().take(64).collect();
            if prefix == "." || prefix.is_empty() {
                name
            } else {
                format!("{prefix}.{name}")
            }
        };
        if message.starts_with("unknown field") {
            // The path already ends with the unknown key itself.
            let path: String = path.chars().take(128).collect();
            ApiError::unprocessable("unknown_field", format!("unknown field '{path}'"))
        } else if message.starts_with("missing field") {
            ApiError::unprocessable("missing_field", format!("missing field '{}'", field(&path)))
        } else {
            ApiError::unprocessable("invalid_field", format!("field '{path}' has the wrong type or value"))
        }
    })
}

/// A CSV body (`text/csv`).
pub struct CsvBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for CsvBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !content_type_is(&request, &["text/csv"]) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                "send the file as text/csv",
            ));
        }
        body_bytes(request, state).await.map(CsvBody)
    }
}

/// The body exactly as sent, whatever its type (signed gateway callbacks).
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        body_bytes(request, state).await.map(RawBody)
    }
}

/// Path parameters. A malformed id names nothing, so it answers 404 like a missing one.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|_| ApiError::not_found())
    }
}

/// Query parameters; unknown ones are refused so typos do not pass silently.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e| {
                let text = e.body_text();
                let detail = if text.contains("unknown field") {
                    // The parameter's name (not its value) helps fix a typo.
                    let name: String = text.split('`').nth(1).unwrap_or("").chars().take(64).collect();
                    format!("unknown query parameter '{name}'")
                } else {
                    "a query parameter has the wrong type or value".to_owned()
                };
                ApiError::bad_request("invalid_query", detail)
            })
    }
}

/// The authenticated caller, put in place by the route's access check.
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .copied()
            .map(Caller)
            .ok_or_else(missing_access)
    }
}

/// The caller authorized inside the store named by the path, put in place by the
/// route's access check. A handler can only reach store data through it.
pub struct InStore(pub StoreContext);

impl<S: Send + Sync> FromRequestParts<S> for InStore {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<StoreContext>()
            .copied()
            .map(InStore)
            .ok_or_else(missing_access)
    }
}

/// A handler asked for a context its route's access level does not provide: a bug.
/// Fail closed.
fn missing_access() -> ApiError {
    tracing::error!("handler needs a caller its route does not authenticate");
    ApiError::internal()
}

/// The client's address as [`crate::routes::client_ip`] sees it (forwarded headers only
/// from trusted proxies), so audit, brute-force throttling and rate limits agree.
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<crate::client_ip::ClientIp>()
                .map(|c| c.0)
                .or_else(|| {
                    parts
                        .extensions
                        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                        .map(|c| c.0.ip())
                }),
        ))
    }
}

/// The cart secret from `X-Cart-Secret`. Missing means "not your cart": 404.
pub struct CartSecret(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CartSecret {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .headers
            .get("x-cart-secret")
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty() && s.len() <= 128)
            .map(|s| Self(s.to_owned()))
            .ok_or_else(ApiError::not_found)
    }
}
