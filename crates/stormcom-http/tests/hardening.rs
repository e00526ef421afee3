//! The HTTP edge under hostile or careless clients, on both backends: security headers,
//! storefront-only CORS, body, header and connection limits (the real server loop over
//! TCP, `stormcom_http::server::serve`), and the Prometheus families on /metrics.

#![expect(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

pub mod common;

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use common::Harness;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use stormcom_http::HttpConfig;
use stormcom_http::server::Limits;
use stormcom_store::Db;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

stormcom_testkit::backend_tests!(
    every_answer_carries_the_security_headers,
    a_timed_out_request_is_problem_json_with_the_security_headers,
    cors_answers_listed_origins_on_the_storefront_only,
    an_oversized_body_is_413_problem_json,
    oversized_or_too_many_headers_are_431,
    connections_over_the_cap_are_refused_with_503,
    metrics_list_every_family_and_count_requests_and_alerts,
);

/// A request cut off by the request timeout gets a problem+json 503 with the security
/// headers, like any other answer.
async fn a_timed_out_request_is_problem_json_with_the_security_headers(db: Db) {
    let setup = Harness::new(db);
    let owner = setup.owner("shop").await;
    let config = HttpConfig {
        storefront_cache_ttl: std::time::Duration::ZERO,
        request_timeout: std::time::Duration::from_millis(20),
        ..HttpConfig::default()
    };
    let h = setup.sharing(&config);
    let mut csv = String::from("Handle,Title,Variant Price\n");
    for i in 0..400 {
        csv.push_str(&format!("slow-{i},Slow {i},100\n"));
    }
    let answer = h
        .post_csv(
            &format!("/v1/stores/{}/imports/shopify", owner.store_id),
            &owner.token,
            csv.as_bytes(),
        )
        .await;
    answer.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "request_timeout");
    assert_eq!(answer.headers.get("retry-after").unwrap(), "1");
    assert_security_headers(&answer);
}

fn assert_security_headers(answer: &common::Resp) {
    let has = |name: &str, value: &str| answer.headers.get(name).and_then(|v| v.to_str().ok()) == Some(value);
    assert!(has("x-content-type-options", "nosniff"), "{:?}", answer.headers);
    assert!(has("x-frame-options", "DENY"), "{:?}", answer.headers);
    assert!(has("referrer-policy", "no-referrer"), "{:?}", answer.headers);
    assert!(
        has("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
        "{:?}",
        answer.headers
    );
    // Session tokens, API tokens and errors are never stored by a cache.
    assert!(has("cache-control", "no-store"), "{:?}", answer.headers);
}

async fn every_answer_carries_the_security_headers(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    let answers = [
        h.call(Method::GET, "/healthz", None, None).await,
        h.login(&owner.email, common::PASSWORD).await,
        h.login(&owner.email, "a wrong password").await,
        h.post(
            &format!("/v1/stores/{}/api-tokens", owner.store_id),
            &owner.token,
            json!({"name": "feed", "scopes": ["catalog:read"]}),
        )
        .await,
        h.call(Method::GET, "/v1/nowhere", None, None).await,
    ];
    assert_eq!(answers[1].status, StatusCode::OK);
    assert_eq!(answers[3].status, StatusCode::CREATED, "{}", answers[3].text);
    for answer in &answers {
        assert_security_headers(answer);
        assert!(answer.headers.get("access-control-allow-origin").is_none());
    }
}

fn cors_config() -> HttpConfig {
    HttpConfig {
        storefront_cache_ttl: std::time::Duration::ZERO,
        cors_origins: stormcom_http::parse_origins("https://shop.example, http://localhost:3000").unwrap(),
        ..HttpConfig::default()
    }
}

async fn cors_answers_listed_origins_on_the_storefront_only(db: Db) {
    let h = Harness::with_config(db, &cors_config());
    let owner = h.owner("shop").await;
    h.product_with_stock(&owner, "tee", 3).await;
    let preflight = |path: &str, origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri(path)
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type,x-cart-secret")
            .body(Body::empty())
            .unwrap()
    };
    let allowed = |answer: &common::Resp| {
        answer
            .headers
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .map(|v| v.to_str().unwrap().to_owned())
    };

    // A listed origin may create carts and read products from the browser.
    let ok = h
        .send(preflight("/v1/storefront/shop/carts", "https://shop.example"))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(allowed(&ok).as_deref(), Some("https://shop.example"));
    let methods = ok
        .headers
        .get(header::ACCESS_CONTROL_ALLOW_METHODS)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let headers = ok
        .headers
        .get(header::ACCESS_CONTROL_ALLOW_HEADERS)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(headers.contains("x-cart-secret"), "{headers}");
    assert_eq!(ok.headers.get("x-content-type-options").unwrap(), "nosniff");
    let read = h
        .send(
            Request::get("/v1/storefront/shop/products/tee")
                .header(header::ORIGIN, "http://localhost:3000")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(allowed(&read).as_deref(), Some("http://localhost:3000"));
    assert!(
        read.headers
            .get_all(header::VARY)
            .iter()
            .any(|v| v.to_str().unwrap().contains("origin"))
    );

    // Another origin gets no grant, on preflight or on a simple request.
    let denied = h
        .send(preflight("/v1/storefront/shop/carts", "https://evil.example"))
        .await;
    assert_eq!(allowed(&denied), None);
    let read = h
        .send(
            Request::get("/v1/storefront/shop/products/tee")
                .header(header::ORIGIN, "https://evil.example")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(allowed(&read), None);

    // Auth and admin routes never answer CORS, even to a listed origin.
    for path in [
        "/v1/auth/login".to_owned(),
        format!("/v1/stores/{}/products", owner.store_id),
    ] {
        let answer = h.send(preflight(&path, "https://shop.example")).await;
        assert_eq!(allowed(&answer), None, "{path}");
        assert!(
            answer.headers.get(header::ACCESS_CONTROL_ALLOW_METHODS).is_none(),
            "{path}"
        );
    }
    let login = h
        .send(
            Request::post("/v1/auth/login")
                .header(header::ORIGIN, "https://shop.example")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    json!({"email": owner.email, "password": common::PASSWORD}).to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(allowed(&login), None);

    // Wildcards and paths are not origins.
    assert!(stormcom_http::parse_origins("*").is_err());
    assert!(stormcom_http::parse_origins("https://shop.example/path").is_err());
    assert!(stormcom_http::parse_origins("shop.example").is_err());
    assert_eq!(stormcom_http::parse_origins(" ").unwrap(), Vec::<HeaderValue>::new());
}

async fn an_oversized_body_is_413_problem_json(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    let before = h.snapshot(&owner).await;
    let huge = json!({"handle": "big", "title": "x".repeat(300 * 1024)});
    let answer = h
        .post(&format!("/v1/stores/{}/products", owner.store_id), &owner.token, huge)
        .await;
    answer.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(h.snapshot(&owner).await, before, "nothing changed");
}

// ---------------------------------------------------------------- over TCP

/// Serves the harness's router with `limits` on 127.0.0.1:0 for the rest of the test.
async fn start(h: &Harness, limits: Limits) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(stormcom_http::server::serve(
        listener,
        h.router.clone(),
        limits,
        std::future::pending(),
    ));
    address
}

/// One answer read off a connection: status line, lowercased head, body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` (raw HTTP/1.1) and reads one whole answer, leaving the connection open.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> Answer {
    stream.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if bytes.len() >= end + 4 + length {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                let body = String::from_utf8_lossy(&bytes[end + 4..end + 4 + length]).into_owned();
                return Answer { status, head, body };
            }
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "connection closed mid-answer: {}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&chunk[..n]);
    }
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n";

async fn oversized_or_too_many_headers_are_431(db: Db) {
    let h = Harness::new(db);
    let limits = Limits {
        max_header_bytes: 16 * 1024,
        max_headers: 32,
        ..Limits::default()
    };
    let address = start(&h, limits).await;

    let mut fine = TcpStream::connect(address).await.unwrap();
    let cookie = format!(
        "GET /healthz HTTP/1.1\r\nhost: test\r\ncookie: {}\r\n\r\n",
        "a".repeat(8 * 1024)
    );
    assert_eq!(exchange(&mut fine, cookie.as_bytes()).await.status, 200);

    let mut big = TcpStream::connect(address).await.unwrap();
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nhost: test\r\ncookie: {}\r\n\r\n",
        "a".repeat(32 * 1024)
    );
    assert_eq!(exchange(&mut big, huge.as_bytes()).await.status, 431);

    let mut many = TcpStream::connect(address).await.unwrap();
    let headers: String = (0..40).map(|i| format!("x-h{i}: v\r\n")).collect();
    let request = format!("GET /healthz HTTP/1.1\r\nhost: test\r\n{headers}\r\n");
    assert_eq!(exchange(&mut many, request.as_bytes()).await.status, 431);

    // The refusals cost nobody else their connection.
    assert_eq!(exchange(&mut fine, HEALTHZ).await.status, 200);
}

async fn connections_over_the_cap_are_refused_with_503(db: Db) {
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    let limits = Limits {
        max_connections: 3,
        ..Limits::default()
    };
    let address = start(&h, limits).await;
    // Three connections, each proven to be served (so each holds its slot)...
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(address).await.unwrap();
        assert_eq!(exchange(&mut stream, HEALTHZ).await.status, 200);
        held.push(stream);
    }
    // ...so a fourth is told, politely, to come back later.
    let mut extra = TcpStream::connect(address).await.unwrap();
    let refused = exchange(&mut extra, HEALTHZ).await;
    assert_eq!(refused.status, 503);
    assert!(
        refused.head.contains("content-type: application/problem+json"),
        "{}",
        refused.head
    );
    assert!(refused.head.contains("retry-after: 1"), "{}", refused.head);
    for header in [
        "x-content-type-options: nosniff",
        "x-frame-options: DENY",
        "referrer-policy: no-referrer",
        "content-security-policy: default-src 'none'; frame-ancestors 'none'",
        "cache-control: no-store",
    ] {
        assert!(
            refused.head.contains(&header.to_lowercase()),
            "{header} in {}",
            refused.head
        );
    }
    let problem: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(problem["code"], "too_many_connections");
    assert_eq!(problem["status"], 503);
    // The served connections keep working, and the router sees each peer's address
    // (`ConnectInfo`): the audit entry of a change records it.
    for stream in &mut held {
        assert_eq!(exchange(stream, HEALTHZ).await.status, 200);
    }
    let body = json!({"handle": "tee", "title": "Tee"}).to_string();
    let create = format!(
        "POST /v1/stores/{}/products HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        owner.store_id,
        owner.token,
        body.len()
    );
    assert_eq!(exchange(&mut held[0], create.as_bytes()).await.status, 201);
    let audit = h
        .get(&format!("/v1/stores/{}/audit?limit=100", owner.store_id), &owner.token)
        .await;
    let last = audit.body["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["action"].as_str(), last["actor_ip"].as_str()),
        (Some("product.created"), Some("127.0.0.1"))
    );
}

/// The recorder is process-wide; tests of this binary that read it take turns.
fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| stormcom_http::metrics::install().unwrap())
}
static METRICS_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The value of one series in exposition text (0 when absent).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn metrics_list_every_family_and_count_requests_and_alerts(db: Db) {
    let _turn = METRICS_TURN.lock().await;
    let handle = prometheus();
    let text = stormcom_http::metrics::render(handle);
    for (family, kind) in [
        ("stormcom_http_requests_total", "counter"),
        ("stormcom_http_request_duration_seconds", "histogram"),
        ("stormcom_rate_limited_total", "counter"),
        ("stormcom_quota_rejections_total", "counter"),
        ("stormcom_failed_logins_total", "counter"),
        ("stormcom_account_lockouts_total", "counter"),
        ("stormcom_alerts_raised_total", "counter"),
        ("stormcom_payment_callbacks_rejected_total", "counter"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "{family} missing:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family} has no help:\n{text}"
        );
    }
    for series in [
        r#"stormcom_failed_logins_total{kind="totp"}"#,
        r#"stormcom_rate_limited_total{class="checkout"}"#,
        r#"stormcom_alerts_raised_total{kind="inventory_drift"}"#,
        "stormcom_account_lockouts_total",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{series} "))),
            "{series} not at zero:\n{text}"
        );
    }

    // Requests are counted by class and status, and timed by class.
    let h = Harness::new(db);
    let owner = h.owner("shop").await;
    let (_, variant) = h.product_with_stock(&owner, "tee", 5).await;
    let ok = r#"stormcom_http_requests_total{class="system",status="200"}"#;
    let missing = r#"stormcom_http_requests_total{class="admin_read",status="404"}"#;
    let timed = r#"stormcom_http_request_duration_seconds_count{class="system"}"#;
    let before = stormcom_http::metrics::render(handle);
    for _ in 0..3 {
        assert_eq!(h.call(Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
    }
    let absent = h
        .get(
            &format!(
                "/v1/stores/{}/products/prod_00000000000000000000000000000000",
                owner.store_id
            ),
            &owner.token,
        )
        .await;
    assert_eq!(absent.status, StatusCode::NOT_FOUND);

    // An alert is counted once it is raised: drift found by reconciliation.
    h.app
        .db()
        .execute_admin("UPDATE inventory_levels SET on_hand = on_hand + 2")
        .await
        .unwrap();
    let reconcile = format!("/v1/stores/{}/inventory/reconcile", owner.store_id);
    let report = h.post(&reconcile, &owner.token, json!({})).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    assert_eq!(report.body["newly_flagged"], 1, "{} (variant {variant})", report.text);
    // Reported again, but not raised again.
    assert_eq!(
        h.post(&reconcile, &owner.token, json!({})).await.body["newly_flagged"],
        0
    );

    let after = stormcom_http::metrics::render(handle);
    let alerts = r#"stormcom_alerts_raised_total{kind="inventory_drift"}"#;
    assert_eq!(sample(&after, ok) - sample(&before, ok), 3.0, "{after}");
    assert_eq!(sample(&after, missing) - sample(&before, missing), 1.0, "{after}");
    assert_eq!(sample(&after, timed) - sample(&before, timed), 3.0, "{after}");
    assert_eq!(sample(&after, alerts) - sample(&before, alerts), 1.0, "{after}");
}
