//! Payment gateway callbacks: the Stripe signature scheme and the events StormCom acts on.
//!
//! A callback carries `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]` where each
//! `v1` is HMAC-SHA256 of `"{t}.{raw body}"` under the endpoint's secret. Several `v1`
//! values appear while a secret is being rolled; any one matching is enough. Written by
//! hand because it is twenty lines of HMAC; the gateway SDK crates are far larger than
//! the whole scheme.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// The gateways a store can take payments through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Built in, for development and demos: StormCom creates the payment and emits the
    /// gateway's signed events itself (`stormcom payments simulate`).
    Test,
    /// Stripe, or anything speaking its webhook signature scheme.
    Stripe,
}

impl Provider {
    pub const ALL: [Self; 2] = [Self::Test, Self::Stripe];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Stripe => "stripe",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|p| p.as_str() == s).ok_or(())
    }
}

/// Webhook signing secrets are at least this long (Stripe's `whsec_…` are 38).
pub const MIN_SECRET_LEN: usize = 16;
pub const MAX_SECRET_LEN: usize = 256;

/// The `Stripe-Signature` header name.
pub const SIGNATURE_HEADER: &str = "stripe-signature";

/// Why a callback's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureError {
    Missing,
    Malformed,
    /// Signed longer ago than the replay window allows.
    Expired,
    /// Signed in the future (beyond the allowed clock skew).
    FromTheFuture,
    /// No `v1` value matches the body under the secret.
    Mismatch,
}

impl SignatureError {
    /// Stable problem code (and metric label).
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Missing => "signature_missing",
            Self::Malformed => "signature_malformed",
            Self::Expired => "signature_expired",
            Self::FromTheFuture => "signature_from_future",
            Self::Mismatch => "signature_invalid",
        }
    }

    #[must_use]
    pub const fn message(self) -> &'static str {
        match self {
            Self::Missing => "the Stripe-Signature header is missing",
            Self::Malformed => "the Stripe-Signature header is not t=<seconds>,v1=<hex>",
            Self::Expired => "the signature timestamp is too old",
            Self::FromTheFuture => "the signature timestamp is in the future",
            Self::Mismatch => "no signature matches the body",
        }
    }
}

/// How far a signature's timestamp may be from now, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureWindow {
    pub max_age: i64,
    pub max_future: i64,
}

impl Default for SignatureWindow {
    fn default() -> Self {
        Self {
            max_age: 300,
            // Gateways' clocks can run a little ahead of ours; more than this is refused.
            max_future: 30,
        }
    }
}

/// Longest header accepted, and most `v1` values: bounds the work an attacker can ask for.
const MAX_HEADER_LEN: usize = 2048;
const MAX_SIGNATURES: usize = 8;

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value a gateway would send for `body` signed at `timestamp`.
#[must_use]
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

fn parse(header: &str) -> Result<(i64, Vec<[u8; 32]>), SignatureError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let (key, value) = item.trim().split_once('=').ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                let t = value.parse::<i64>().map_err(|_| SignatureError::Malformed)?;
                if timestamp.replace(t).is_some() {
                    return Err(SignatureError::Malformed);
                }
            }
            "v1" => {
                let mut tag = [0u8; 32];
                hex::decode_to_slice(value, &mut tag).map_err(|_| SignatureError::Malformed)?;
                signatures.push(tag);
                if signatures.len() > MAX_SIGNATURES {
                    return Err(SignatureError::Malformed);
                }
            }
            _ => {} // other schemes (v0 test signatures) are ignored, as Stripe's own libraries do
        }
    }
    match timestamp {
        Some(t) if !signatures.is_empty() => Ok((t, signatures)),
        _ => Err(SignatureError::Malformed),
    }
}

/// Checks a callback before anything else looks at its body: the header's shape, then
/// every `v1` against the HMAC (constant-time), then the timestamp against `now`.
/// Returns the signed timestamp.
pub fn verify(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now: i64,
    window: SignatureWindow,
) -> Result<i64, SignatureError> {
    let header = header.map(str::trim).filter(|h| !h.is_empty());
    let (timestamp, signatures) = parse(header.ok_or(SignatureError::Missing)?)?;
    let expected = mac(secret, timestamp, body);
    if !signatures.iter().any(|tag| expected.clone().verify_slice(tag).is_ok()) {
        return Err(SignatureError::Mismatch);
    }
    if timestamp < now.saturating_sub(window.max_age) {
        return Err(SignatureError::Expired);
    }
    if timestamp > now.saturating_add(window.max_future) {
        return Err(SignatureError::FromTheFuture);
    }
    Ok(timestamp)
}

/// A gateway event as Stripe shapes it; unknown fields are ignored (gateways add fields).
#[derive(Debug, Clone, Deserialize)]
pub struct GatewayEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub object: EventObject,
}

/// The object an event is about: a payment intent or a refund.
#[derive(Debug, Clone, Deserialize)]
pub struct EventObject {
    pub id: String,
    #[serde(default)]
    pub amount: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    /// On a refund: the payment it refunds.
    #[serde(default)]
    pub payment_intent: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// Metadata key naming the order a payment is for.
pub const ORDER_METADATA: &str = "stormcom_order_id";
/// Metadata key naming the StormCom refund a gateway refund carries out.
pub const REFUND_METADATA: &str = "stormcom_refund_id";

/// What StormCom does with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Money was captured: the order becomes paid.
    PaymentSucceeded,
    /// The payment failed: the order is cancelled, its stock and discount use released.
    PaymentFailed,
    /// A refund was created or changed state at the gateway.
    Refund,
    /// Acknowledged and ignored.
    Other,
}

impl EventKind {
    #[must_use]
    pub fn of(kind: &str) -> Self {
        match kind {
            "payment_intent.succeeded" => Self::PaymentSucceeded,
            "payment_intent.payment_failed" => Self::PaymentFailed,
            "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" => Self::Refund,
            _ => Self::Other,
        }
    }
}

/// Event ids are opaque strings from the gateway; bounded so the ledger stays sane.
#[must_use]
pub fn valid_event_id(id: &str) -> bool {
    (1..=255).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret_0123456789";
    const NOW: i64 = 1_800_000_000;

    fn check(header: Option<&str>, body: &[u8]) -> Result<i64, SignatureError> {
        verify(SECRET, header, body, NOW, SignatureWindow::default())
    }

    #[test]
    fn a_signed_body_verifies_and_anything_changed_does_not() {
        let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
        let header = sign(SECRET, NOW - 10, body);
        assert_eq!(check(Some(&header), body), Ok(NOW - 10));
        assert_eq!(
            check(Some(&header), br#"{"id":"evt_1","type":"payment_intent.succeedes"}"#),
            Err(SignatureError::Mismatch)
        );
        let other = sign(b"whsec_another_secret_000000", NOW, body);
        assert_eq!(check(Some(&other), body), Err(SignatureError::Mismatch));
        // The timestamp is signed too: moving it breaks the signature.
        let moved = header.replace(&format!("t={}", NOW - 10), &format!("t={NOW}"));
        assert_eq!(check(Some(&moved), body), Err(SignatureError::Mismatch));
    }

    #[test]
    fn any_matching_v1_is_enough_and_other_schemes_are_ignored() {
        let body = b"{}";
        let good = sign(SECRET, NOW, body);
        let tag = good.split("v1=").nth(1).unwrap_or_default();
        let header = format!("t={NOW},v1={},v0=abc,v1={tag}", "00".repeat(32));
        assert_eq!(check(Some(&header), body), Ok(NOW));
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let body = b"{}";
        assert_eq!(check(Some(&sign(SECRET, NOW - 300, body)), body), Ok(NOW - 300));
        assert_eq!(
            check(Some(&sign(SECRET, NOW - 301, body)), body),
            Err(SignatureError::Expired)
        );
        // A little clock skew is tolerated, more is refused.
        assert_eq!(check(Some(&sign(SECRET, NOW + 30, body)), body), Ok(NOW + 30));
        assert_eq!(
            check(Some(&sign(SECRET, NOW + 31, body)), body),
            Err(SignatureError::FromTheFuture)
        );
        let strict = SignatureWindow {
            max_age: 60,
            max_future: 0,
        };
        assert!(verify(SECRET, Some(&sign(SECRET, NOW, body)), body, NOW, strict).is_ok());
        assert_eq!(
            verify(SECRET, Some(&sign(SECRET, NOW + 1, body)), body, NOW, strict),
            Err(SignatureError::FromTheFuture)
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_told_apart() {
        let body = b"{}";
        assert_eq!(check(None, body), Err(SignatureError::Missing));
        assert_eq!(check(Some("  "), body), Err(SignatureError::Missing));
        for bad in [
            "garbage",
            "t=abc,v1=00",
            "v1=0011",
            &format!("t={NOW}"),
            &format!("t={NOW},v1=zz"),
            &format!("t={NOW},t={NOW},v1={}", "00".repeat(32)),
            &format!("t={NOW},{}", vec![format!("v1={}", "00".repeat(32)); 9].join(",")),
        ] {
            assert_eq!(check(Some(bad), body), Err(SignatureError::Malformed), "{bad}");
        }
    }

    #[test]
    fn event_kinds_and_ids() {
        assert_eq!(EventKind::of("payment_intent.succeeded"), EventKind::PaymentSucceeded);
        assert_eq!(EventKind::of("payment_intent.payment_failed"), EventKind::PaymentFailed);
        assert_eq!(EventKind::of("refund.updated"), EventKind::Refund);
        assert_eq!(EventKind::of("customer.created"), EventKind::Other);
        assert!(valid_event_id("evt_1NG8Du2eZvKYlo2CUI79vXWy"));
        assert!(!valid_event_id(""));
        assert!(!valid_event_id("evt 1"));
        assert!(!valid_event_id(&"e".repeat(256)));
    }
}
