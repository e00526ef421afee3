//! The `stormcom` binary as an operator uses it, on both backends.

#![expect(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use stormcom_testkit::{POSTGRES_URL_VAR, postgres_url};

const BIN: &str = env!("CARGO_BIN_EXE_stormcom");
const APPAREL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/shopify/apparel.csv");

/// Where a CLI run keeps its data: a fresh data dir, and for PostgreSQL a fresh schema.
struct Target {
    dir: tempfile::TempDir,
    database_url: Option<String>,
}

impl Target {
    fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command
            .env_remove("STORMCOM_DATABASE_URL")
            .env("STORMCOM_DATA_DIR", self.dir.path())
            .env("STORMCOM_LOG", "info");
        if let Some(url) = &self.database_url {
            command.env("STORMCOM_DATABASE_URL", url);
        }
        command
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }
}

fn sqlite_target() -> Target {
    Target {
        dir: tempfile::tempdir().unwrap(),
        database_url: None,
    }
}

async fn postgres_target() -> Option<(Target, String, String)> {
    let url = postgres_url()?;
    let schema = format!("cli_{}", uuid::Uuid::now_v7().simple());
    stormcom_store::Db::connect_postgres_schema(&url, &schema, &Default::default())
        .await
        .unwrap()
        .close()
        .await;
    let separator = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    Some((
        Target {
            dir: tempfile::tempdir().unwrap(),
            database_url: Some(scoped),
        },
        url,
        schema,
    ))
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Starts `serve` on a free port (and its metrics listener on another) and returns it
/// with both addresses once it listens. The log is JSON lines.
#[expect(
    clippy::zombie_processes,
    reason = "the caller waits for the server after stopping it"
)]
fn serve(target: &Target) -> (Child, String, String) {
    let mut child = target
        .command()
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut metrics = None;
    for line in lines.by_ref() {
        let line: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        let address = line["address"].as_str().map(str::to_owned);
        let message = line["message"].as_str().unwrap_or_default();
        if message.starts_with("metrics on") {
            metrics = address;
        } else if message.contains("listening on") {
            // Keep draining the log so the server never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return (child, address.unwrap(), metrics.unwrap());
        }
    }
    panic!("serve exited without listening");
}

fn http_get(address: &str, path: &str) -> String {
    http_get_with(address, path, "")
}

/// A GET with extra header lines (each ending in CRLF).
fn http_get_with(address: &str, path: &str, headers: &str) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn operator_story(target: &Target) {
    let user = target.run(
        &["admin", "create-user", "--email", "Owner@Shop.example"],
        "a long enough password\n",
    );
    assert!(stdout(&user).trim().starts_with("usr_"));
    let short = target.run(&["admin", "create-user", "--email", "x@shop.example"], "short\n");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("password"));

    let (mut server, address, metrics) = serve(target);
    assert!(http_get(&address, "/healthz").starts_with("HTTP/1.1 200"));
    // Prometheus text on its own listener, counting the request above.
    let scraped = http_get(&metrics, "/metrics");
    assert!(scraped.starts_with("HTTP/1.1 200"), "{scraped}");
    assert!(
        scraped.contains(r#"stormcom_http_requests_total{class="system",status="200"} 1"#),
        "{scraped}"
    );
    assert!(
        http_get(&address, "/metrics").starts_with("HTTP/1.1 404"),
        "not on the public port"
    );
    // Operator commands work while the server runs on the same database.
    let store = target.run(
        &[
            "admin",
            "create-store",
            "--name",
            "Apparel",
            "--handle",
            "apparel",
            "--currency",
            "USD",
            "--owner",
            "owner@shop.example",
        ],
        "",
    );
    let store_id = stdout(&store).trim().to_owned();
    assert!(store_id.starts_with("str_"), "{store_id}");
    let imported = stdout(&target.run(&["import", "shopify", "--store", "apparel", APPAREL], ""));
    assert!(
        imported.contains("products: 20 created, 0 updated, 0 unchanged, 0 rejected"),
        "{imported}"
    );
    assert!(imported.contains("variants: 22 created"), "{imported}");
    assert!(imported.contains("rows rejected: none"), "{imported}");
    let page = http_get(&address, "/v1/storefront/apparel/products/classic-varsity-top");
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("\"price\":6000"),
        "{page}"
    );

    let again = stdout(&target.run(&["import", "shopify", "--store", "apparel", APPAREL], ""));
    assert!(
        again.contains("products: 0 created, 0 updated, 20 unchanged"),
        "{again}"
    );
    let reconciled = stdout(&target.run(&["inventory", "reconcile"], ""));
    assert!(
        reconciled.contains("22 variants checked, 0 drifted") && reconciled.contains("no drift"),
        "{reconciled}"
    );
    let verified = stdout(&target.run(&["audit", "verify"], ""));
    assert!(verified.contains("all chains ok"), "{verified}");
    let checkpoints = target.dir.path().join("checkpoints.jsonl");
    let exported = stdout(&target.run(&["audit", "checkpoint", "--export", checkpoints.to_str().unwrap()], ""));
    assert!(exported.contains("exported"), "{exported}");
    let against_file = stdout(&target.run(
        &[
            "audit",
            "verify",
            "--store",
            "apparel",
            "--checkpoints",
            checkpoints.to_str().unwrap(),
        ],
        "",
    ));
    assert!(
        against_file.contains("apparel: ok") && against_file.contains("1 checkpoints checked"),
        "{against_file}"
    );
    let missing = target.run(&["import", "shopify", "--store", "nope", APPAREL], "");
    assert!(!missing.status.success());

    // Incident response: a burst of bad bearer tokens (11 in a quiet window: over 5× the
    // floor of 2) raises one failed-login-spike alert, listed by the operator command.
    assert_eq!(stdout(&target.run(&["admin", "alerts"], "")), "");
    for i in 0..11 {
        let answer = http_get_with(
            &address,
            "/v1/stores",
            &format!("Authorization: Bearer scs_guess_{i}\r\n"),
        );
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
    let alerts = stdout(&target.run(&["admin", "alerts"], ""));
    let alerts: Vec<serde_json::Value> = alerts.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "failed_login_spike");

    // SIGTERM: graceful shutdown, exit 0.
    let pid = server.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(server.wait().unwrap().success());
}

#[test]
fn sqlite_operator_story() {
    let target = sqlite_target();
    operator_story(&target);
    assert!(
        target.dir.path().join("stormcom.db").exists(),
        "the default database lives in the data dir"
    );
}

#[tokio::test]
async fn postgres_operator_story() {
    let Some((target, url, schema)) = postgres_target().await else {
        eprintln!("{POSTGRES_URL_VAR} is not set: skipping");
        return;
    };
    tokio::task::spawn_blocking(move || operator_story(&target))
        .await
        .unwrap();
    stormcom_store::Db::drop_postgres_schema(&url, &schema).await.unwrap();
}

#[test]
fn an_unknown_database_scheme_is_refused_clearly() {
    let target = Target {
        dir: tempfile::tempdir().unwrap(),
        database_url: Some("mysql://root@localhost/db".into()),
    };
    let output = target.run(&["migrate"], "");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unsupported database URL scheme 'mysql'") && stderr.contains("postgres://"),
        "{stderr}"
    );
}

#[test]
fn migrate_is_idempotent() {
    let target = sqlite_target();
    for _ in 0..2 {
        assert_eq!(stdout(&target.run(&["migrate"], "")).trim(), "migrated (sqlite)");
    }
    assert!(Path::new(&target.dir.path().join("stormcom.db")).exists());
}
