//! Brute-force defence (threat model §5 "Failed Auth Attempts", §2 Spoofing), on both
//! backends: growing delays with 429 + Retry-After, the lock after 100 failures, unknown
//! and known emails alike, step-up and second-factor failures, bad bearer tokens per
//! address, and the failed-login spike alert. The throttle's clock is moved by the test
//! instead of sleeping.

#![expect(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

pub mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use common::{Harness, PASSWORD, Resp, totp_code};
use serde_json::{Value, json};
use stormcom_app::{App, AppConfig, Clock, Keys};
use stormcom_domain::throttle::{WINDOW_SECONDS, window_start};
use stormcom_domain::totp::{self, TotpSecret};
use stormcom_http::{HttpConfig, build};
use stormcom_store::Db;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

stormcom_testkit::backend_tests!(
    failures_grow_the_wait_and_a_success_resets_the_account_only,
    unknown_and_known_emails_are_throttled_and_locked_alike,
    an_account_locks_after_100_failures_until_the_lock_ends,
    second_factor_failures_at_login_and_step_up_are_throttled,
    bad_bearer_tokens_from_one_address_get_429,
    a_failure_spike_raises_one_alert_and_one_audit_entry_per_window,
    parallel_guesses_cannot_slip_past_the_count,
    the_purge_forgets_only_what_the_policy_no_longer_remembers,
);

/// The throttle's clock, in unix seconds; starts one minute into a 15-minute window.
#[derive(Clone)]
struct TestClock(Arc<AtomicI64>);

impl TestClock {
    fn advance(&self, secs: u64) {
        self.0.fetch_add(i64::try_from(secs).unwrap(), Ordering::SeqCst);
    }

    fn set(&self, unix: i64) {
        self.0.store(unix, Ordering::SeqCst);
    }

    fn get(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn harness(db: Db, config: AppConfig) -> (Harness, TestClock) {
    let start = window_start(OffsetDateTime::now_utc().unix_timestamp()) + 60;
    let clock = TestClock(Arc::new(AtomicI64::new(start)));
    let source = clock.clone();
    let app = App::new(db, config, Keys::generate().unwrap()).with_clock(Clock::new(move || {
        OffsetDateTime::from_unix_timestamp(source.get()).unwrap()
    }));
    let api = build(
        app.clone(),
        &HttpConfig {
            storefront_cache_ttl: Duration::ZERO,
            ..HttpConfig::default()
        },
    );
    let h = Harness {
        router: api.router,
        routes: api.routes,
        app,
    };
    (h, clock)
}

/// A request arriving from `ip` (`None`: no peer address, as in the other tests).
async fn call_from(
    h: &Harness,
    ip: Option<&str>,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(ip) = ip {
        builder = builder.extension(ConnectInfo(SocketAddr::new(ip.parse().unwrap(), 40_000)));
    }
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap())),
        None => builder.body(Body::empty()),
    };
    h.send(request.unwrap()).await
}

async fn login_from(h: &Harness, ip: Option<&str>, email: &str, password: &str) -> Resp {
    let body = json!({"email": email, "password": password});
    call_from(h, ip, Method::POST, "/v1/auth/login", None, Some(body)).await
}

fn retry_after(r: &Resp) -> u64 {
    r.headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After: {}", r.text))
}

/// Asserts `429 too_many_attempts` and returns its Retry-After.
fn throttled(r: &Resp) -> u64 {
    r.assert_problem(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    retry_after(r)
}

/// A six-digit code that is not valid now (nor one step either side).
fn wrong_code(secret: &TotpSecret) -> String {
    let now = u64::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let valid: Vec<String> = [now - 30, now, now + 30]
        .iter()
        .map(|t| totp::generate_at(secret, *t))
        .collect();
    (0..10)
        .map(|d| d.to_string().repeat(6))
        .find(|c| !valid.contains(c))
        .unwrap()
}

/// The platform chain's actions, oldest first.
async fn platform_actions(h: &Harness) -> Vec<String> {
    let mut reader = h.app.db().reader().await.unwrap();
    stormcom_store::audit::entries(&mut reader, stormcom_store::audit::PLATFORM_CHAIN, 0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.record.action)
        .collect()
}

async fn assert_platform_chain_verifies(h: &Harness) {
    let report = h
        .app
        .verify_chain(stormcom_store::audit::PLATFORM_CHAIN, None, &|_, _| {})
        .await
        .unwrap();
    assert!(report.failure.is_none(), "{:?}", report.failure);
    assert!(report.entries_verified > 0);
}

async fn failures_grow_the_wait_and_a_success_resets_the_account_only(db: Db) {
    let (h, clock) = harness(db, AppConfig::default());
    let owner = h.owner("shop").await;
    let attacker = Some("198.51.100.1");
    // Five free failures, and the sixth is still answered: it sets the first wait.
    for _ in 0..6 {
        login_from(&h, attacker, &owner.email, "wrong password")
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    // Each further failure doubles the wait; while it runs, even the right password is
    // not evaluated.
    for wait in [1, 2, 4] {
        let r = login_from(&h, attacker, &owner.email, PASSWORD).await;
        assert_eq!(throttled(&r), wait);
        clock.advance(wait);
        login_from(&h, attacker, &owner.email, "wrong password")
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    // The account's wait applies from an address that never failed, too (see authguard).
    let victim = Some("203.0.113.9");
    assert_eq!(throttled(&login_from(&h, victim, &owner.email, PASSWORD).await), 8);
    clock.advance(8);
    let ok = login_from(&h, victim, &owner.email, PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    // The success reset the account: five free failures again, then a one-second wait.
    for _ in 0..6 {
        login_from(&h, victim, &owner.email, "wrong password")
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    assert_eq!(throttled(&login_from(&h, victim, &owner.email, PASSWORD).await), 1);

    // The attacker's address keeps its nine failures: a success from it (its own
    // account) takes back only that attempt, so its next failure, on any account,
    // waits 16 s.
    let own = "attacker@elsewhere.example";
    h.app.create_user(own, PASSWORD).await.unwrap();
    let ok = login_from(&h, attacker, own, PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    login_from(&h, attacker, own, "wrong password")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(throttled(&login_from(&h, attacker, own, PASSWORD).await), 16);
    assert_platform_chain_verifies(&h).await;
}

/// Everything a client can see of an answer, except the request id.
fn visible(r: &Resp) -> Value {
    let mut headers: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(name, _)| *name != "x-request-id")
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_owned()))
        .collect();
    headers.sort();
    let mut body = r.body.clone();
    body["request_id"] = Value::Null;
    json!({"status": r.status.as_u16(), "headers": headers, "body": body})
}

async fn unknown_and_known_emails_are_throttled_and_locked_alike(db: Db) {
    let mut config = AppConfig::default();
    let account = &mut config.auth_throttle.account;
    account.free_attempts = 2;
    account.max_delay = Duration::from_secs(4);
    if let Some(lock) = account.lockout.as_mut() {
        lock.threshold = 6;
    }
    let (h, clock) = harness(db, config);
    let owner = h.owner("shop").await;
    let unknown = "nobody@shop.example";
    let mut statuses = Vec::new();
    // Through the free failures, the growing waits and into the lock, the two answer alike.
    for _ in 0..12 {
        let known = login_from(&h, None, &owner.email, "wrong password").await;
        let other = login_from(&h, None, unknown, "wrong password").await;
        assert_eq!(visible(&known), visible(&other));
        statuses.push(known.status.as_u16());
        if known.status == StatusCode::TOO_MANY_REQUESTS {
            clock.advance(retry_after(&known).min(4));
        }
    }
    assert_eq!(
        statuses,
        [401, 401, 401, 429, 401, 429, 401, 429, 401, 429, 429, 429],
        "2 free, waits of 1, 2, 4 s, then the lock at the sixth failure"
    );
    // Locked: the right password is not evaluated either, and says nothing more.
    let known = login_from(&h, None, &owner.email, PASSWORD).await;
    let other = login_from(&h, None, unknown, PASSWORD).await;
    assert_eq!(visible(&known), visible(&other));
    assert!(throttled(&known) > 3000, "a lock of an hour: {}", known.text);

    let locks = platform_actions(&h)
        .await
        .iter()
        .filter(|a| *a == "auth.account_locked")
        .count();
    assert_eq!(locks, 2, "one lock for each account, known or not");
    // An operator lifts the lock (audited).
    assert!(h.app.unlock_account(&owner.email).await.unwrap());
    let ok = login_from(&h, None, &owner.email, PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert!(platform_actions(&h).await.contains(&"auth.account_unlocked".to_owned()));
    assert_platform_chain_verifies(&h).await;
}

async fn step_up_from(h: &Harness, token: &str, body: Value) -> Resp {
    call_from(h, None, Method::POST, "/v1/auth/step-up", Some(token), Some(body)).await
}

/// At the default threshold. Step-up failures cost no argon2 run, so 100 of them are
/// quick; they count against the same account budget as the password.
async fn an_account_locks_after_100_failures_until_the_lock_ends(db: Db) {
    let (h, clock) = harness(db, AppConfig::default());
    let owner = h.owner("shop").await;
    let (secret, _) = h.enable_totp(&owner.token).await;
    for n in 1..=100 {
        step_up_from(&h, &owner.token, json!({"code": wrong_code(&secret)}))
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "invalid_mfa_code");
        if n < 100 {
            // Longer than any wait before the lock (15 minutes at most).
            clock.advance(900);
        }
    }
    let locked = step_up_from(&h, &owner.token, json!({"code": totp_code(&secret, 1)})).await;
    assert_eq!(throttled(&locked), 3600);
    // The same budget: the password and second factor are refused for the hour too.
    clock.advance(1800);
    let login = json!({"email": owner.email, "password": PASSWORD, "totp_code": totp_code(&secret, 1)});
    let refused = call_from(&h, None, Method::POST, "/v1/auth/login", None, Some(login.clone())).await;
    assert_eq!(throttled(&refused), 1800);
    let locks = platform_actions(&h)
        .await
        .iter()
        .filter(|a| *a == "auth.account_locked")
        .count();
    assert_eq!(locks, 1);

    clock.advance(1800);
    let ok = call_from(&h, None, Method::POST, "/v1/auth/login", None, Some(login)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    // The success cleared the account: failures are free again.
    step_up_from(&h, &owner.token, json!({"code": wrong_code(&secret)}))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_mfa_code");
    assert_platform_chain_verifies(&h).await;
}

async fn second_factor_failures_at_login_and_step_up_are_throttled(db: Db) {
    let (h, clock) = harness(db, AppConfig::default());
    let owner = h.owner("shop").await;
    let (secret, recovery) = h.enable_totp(&owner.token).await;
    let ip = Some("198.51.100.30");
    let login = |code: String| {
        let body = json!({"email": owner.email, "password": PASSWORD, "totp_code": code});
        call_from(&h, ip, Method::POST, "/v1/auth/login", None, Some(body))
    };
    // The first half of a two-step login is not a failure: asked again and again, it
    // never throttles.
    for _ in 0..8 {
        login_from(&h, ip, &owner.email, PASSWORD)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "mfa_required");
    }
    for _ in 0..6 {
        login(wrong_code(&secret))
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "invalid_mfa_code");
    }
    // A right code waits like a wrong one.
    assert_eq!(throttled(&login(totp_code(&secret, 1)).await), 1);
    clock.advance(1);
    let ok = login(totp_code(&secret, 1)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let token = ok.body["token"].as_str().unwrap().to_owned();

    // Step-up: the same rule, with recovery codes counted like TOTP codes.
    for _ in 0..6 {
        step_up_from(&h, &token, json!({"recovery_code": "0000-0000-0000"}))
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "invalid_mfa_code");
    }
    let r = step_up_from(&h, &token, json!({"recovery_code": recovery[0]})).await;
    assert_eq!(throttled(&r), 1);
    clock.advance(1);
    let ok = step_up_from(&h, &token, json!({"recovery_code": recovery[0]})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let actions = platform_actions(&h).await;
    let count = |action: &str| actions.iter().filter(|a| *a == action).count();
    assert_eq!(count("mfa.step_up_failed"), 6);
    assert_eq!(count("mfa.step_up"), 1);
    assert_platform_chain_verifies(&h).await;
}

async fn bad_bearer_tokens_from_one_address_get_429(db: Db) {
    let (h, clock) = harness(db, AppConfig::default());
    let owner = h.owner("shop").await;
    let stores = |ip: &'static str, token: String| {
        let h = &h;
        async move { call_from(h, Some(ip), Method::GET, "/v1/stores", Some(&token), None).await }
    };
    let scanner = "198.51.100.40";
    // Ten free failures (clients retry an expired session a little), the eleventh sets
    // a one-second wait.
    for i in 0..11 {
        let fake = if i % 2 == 0 {
            format!("not-a-session-{i}")
        } else {
            format!("sc_{}_{i}", owner.store_id)
        };
        stores(scanner, fake)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    assert_eq!(throttled(&stores(scanner, "another-guess".into()).await), 1);
    // While it waits, the address is refused without evaluating anything, a good
    // token included; another address is not affected.
    assert_eq!(throttled(&stores(scanner, owner.token.clone()).await), 1);
    assert_eq!(stores("203.0.113.41", owner.token.clone()).await.status, StatusCode::OK);
    stores("203.0.113.41", "bad".into())
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    clock.advance(1);
    assert_eq!(stores(scanner, owner.token.clone()).await.status, StatusCode::OK);
    // A good token does not clear the address's failures: the next bad one waits 2 s.
    stores(scanner, "bad".into())
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(throttled(&stores(scanner, "bad".into()).await), 2);
}

async fn bad_tokens(h: &Harness, n: usize) {
    for i in 0..n {
        call_from(h, None, Method::GET, "/v1/stores", Some(&format!("bad-{i}")), None)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
}

async fn spike_alerts(h: &Harness) -> Vec<String> {
    h.app
        .platform_alerts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| {
            assert_eq!(a.kind, "failed_login_spike");
            a.subject
        })
        .collect()
}

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .unwrap()
        .format(&Rfc3339)
        .unwrap()
}

async fn a_failure_spike_raises_one_alert_and_one_audit_entry_per_window(db: Db) {
    let (h, clock) = harness(db, AppConfig::default());
    let first = window_start(clock.get());
    // A quiet past counts as 2 a window, so the bar is 10 failures.
    bad_tokens(&h, 10).await;
    assert!(spike_alerts(&h).await.is_empty());
    bad_tokens(&h, 1).await;
    assert_eq!(spike_alerts(&h).await, [rfc3339(first)]);
    // More failures in the same window raise nothing more.
    bad_tokens(&h, 9).await;
    let count = |actions: &[String]| actions.iter().filter(|a| *a == "security.failed_login_spike").count();
    assert_eq!(count(&platform_actions(&h).await), 1);

    // A busier past raises the bar: 4 a window over the previous 16 → 20.
    let later = first + 40 * WINDOW_SECONDS;
    for back in (1..=16).rev() {
        clock.set(later - back * WINDOW_SECONDS + 30);
        bad_tokens(&h, 4).await;
    }
    clock.set(later + 30);
    bad_tokens(&h, 20).await;
    assert_eq!(spike_alerts(&h).await.len(), 1);
    bad_tokens(&h, 1).await;
    assert_eq!(spike_alerts(&h).await, [rfc3339(first), rfc3339(later)]);
    let actions = platform_actions(&h).await;
    assert_eq!(count(&actions), 2);
    assert_platform_chain_verifies(&h).await;
}

/// Each attempt is counted before it is evaluated, under the subject's row lock: of 40
/// guesses sent at once (real parallel requests), only the five free ones and the one
/// that sets the first wait are evaluated.
async fn parallel_guesses_cannot_slip_past_the_count(db: Db) {
    let (h, _clock) = harness(db, AppConfig::default());
    let owner = h.owner("shop").await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let router = h.router.clone();
        let body = json!({"email": owner.email, "password": format!("guess number {i}")});
        let request = Request::post("/v1/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        tasks.spawn(async move { tower::ServiceExt::oneshot(router, request).await.unwrap().status() });
    }
    let statuses = tasks.join_all().await;
    let evaluated = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let throttled = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((evaluated, throttled), (6, 34), "{statuses:?}");
}

/// The hourly purge: a bad-token address is forgotten after an hour, a login address
/// after a quiet day, an account (or unknown email) after a quiet month, failure windows
/// after a day; nothing sooner, and a blocked subject never.
async fn the_purge_forgets_only_what_the_policy_no_longer_remembers(db: Db) {
    let (h, clock) = harness(db, AppConfig::default());
    let attacker = Some("198.51.100.7");
    for _ in 0..7 {
        let r = login_from(&h, attacker, "nobody@nowhere.example", "guess").await;
        assert!(matches!(r.status.as_u16(), 401 | 429), "{}", r.text);
        clock.advance(2);
    }
    let bad = call_from(
        &h,
        Some("198.51.100.8"),
        Method::GET,
        "/v1/stores",
        Some("scs_not_a_session"),
        None,
    )
    .await;
    bad.assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    // Account, login address, token address: three subjects; one window.
    assert_eq!(h.app.purge_auth_failures().await.unwrap(), (0, 0), "all of it is fresh");

    clock.advance(3600 + 60);
    assert_eq!(
        h.app.purge_auth_failures().await.unwrap(),
        (1, 0),
        "the token address goes after an hour"
    );
    clock.advance(24 * 3600);
    assert_eq!(
        h.app.purge_auth_failures().await.unwrap(),
        (1, 2),
        "the login address after a quiet day, and the day-old window's rows (password, api_token)"
    );
    // The account still remembers its seven failures: the next one waits.
    let r = login_from(&h, Some("203.0.113.50"), "nobody@nowhere.example", "guess").await;
    r.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert!(throttled(&login_from(&h, Some("203.0.113.50"), "nobody@nowhere.example", "guess").await) > 1);

    clock.advance(31 * 24 * 3600);
    let (subjects, _) = h.app.purge_auth_failures().await.unwrap();
    assert_eq!(subjects, 2, "the account and the second address, after a quiet month");
    for _ in 0..5 {
        login_from(&h, Some("203.0.113.51"), "nobody@nowhere.example", "guess")
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
}
