//! Limits as an operator deploys them: two `stormcom serve` processes sharing one rate
//! budget through Redis, and `admin set-plan` lifting a store quota.

#![expect(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_stormcom");

fn command(dir: &std::path::Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_remove("STORMCOM_DATABASE_URL")
        .env_remove("STORMCOM_REDIS_URL")
        .env("STORMCOM_DATA_DIR", dir)
        .env("STORMCOM_LOG", "info");
    command
}

/// A running `serve`, killed on drop.
struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &std::path::Path, envs: &[(&str, &str)]) -> Server {
    let mut child = command(dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "off"])
        .envs(envs.iter().copied())
        .env("STORMCOM_STOREFRONT_CACHE_MS", "0")
        .env("STORMCOM_AUDIT_CHECKPOINT_SECS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("serve exited before listening"))
            .unwrap();
        // The log is JSON lines; the listening line carries the bound address.
        let line: serde_json::Value = serde_json::from_str(&line).unwrap();
        if line["message"].as_str().unwrap_or_default().contains("listening on") {
            break line["address"].as_str().unwrap().to_owned();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Server { child, address }
}

/// One HTTP/1.1 GET; returns (status, raw head).
fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let head = response.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head)
}

#[test]
fn two_server_processes_share_one_rate_budget_through_redis() {
    let Some(redis) = stormcom_testkit::redis_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("stormcom:test:{}", uuid::Uuid::now_v7().simple());
    let envs = [
        ("STORMCOM_REDIS_URL", redis.as_str()),
        ("STORMCOM_REDIS_KEY_PREFIX", prefix.as_str()),
        ("STORMCOM_RATE_LIMITS", "storefront_read=1/6"),
    ];
    let a = serve(dir.path(), &envs);
    let b = serve(dir.path(), &envs);
    assert_ne!(a.address, b.address);

    let mut allowed = 0;
    for i in 0..14 {
        let server = if i % 2 == 0 { &a } else { &b };
        // Any storefront read spends the budget, even of a store that does not exist.
        let (status, head) = get(&server.address, "/v1/storefront/nope/products");
        match status {
            404 => allowed += 1,
            429 => {
                assert!(head.contains("\r\nretry-after: "), "{head}");
                assert!(head.contains("\r\nratelimit: \"storefront_read\";r=0;t="), "{head}");
            }
            other => panic!("unexpected status {other}: {head}"),
        }
    }
    assert_eq!(allowed, 6, "one budget of 6 across both processes");
    // Health checks are never limited.
    assert_eq!(get(&a.address, "/healthz").0, 200);
}

#[test]
fn a_configured_but_unreachable_redis_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "off"])
        .env("STORMCOM_REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("STORMCOM_REDIS_URL: cannot reach Redis"), "{stderr}");
}

fn run(dir: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = command(dir)
        .args(args)
        .env("STORMCOM_PLAN_FREE", "stores=1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn set_plan_lifts_the_store_quota_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    ok(&run(
        dir,
        &["admin", "create-user", "--email", "ann@example.com"],
        "a long password\n",
    ));
    let first = [
        "admin",
        "create-store",
        "--name",
        "A",
        "--handle",
        "a",
        "--owner",
        "ann@example.com",
    ];
    ok(&run(dir, &first, ""));
    let second = [
        "admin",
        "create-store",
        "--name",
        "B",
        "--handle",
        "b",
        "--owner",
        "ann@example.com",
    ];
    let refused = run(dir, &second, "");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("free plan allows at most 1 stores per organization"),
        "{stderr}"
    );

    let bad = run(dir, &["admin", "set-plan", "--store", "a", "--plan", "gold"], "");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown plan 'gold'"));
    let changed = ok(&run(dir, &["admin", "set-plan", "--store", "a", "--plan", "pro"], ""));
    assert!(changed.trim().ends_with("free -> pro"), "{changed}");
    ok(&run(dir, &second, ""));
    let verified = ok(&run(dir, &["audit", "verify"], ""));
    assert!(verified.contains("all chains ok"), "{verified}");
}
