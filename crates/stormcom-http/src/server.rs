//! The server loop. `axum::serve` has no knobs for the request head or the number of
//! connections, so this one runs hyper's HTTP/1 connection directly (HTTP/1 only, as
//! `axum::serve` with axum's default features): the request line and headers are capped
//! in bytes and count (over either → `431`, written by hyper), must arrive within a
//! deadline (slow-loris), and at most `max_connections` connections are served at once.
//! A connection over the cap gets a short `503` problem+json and is closed, instead of
//! waiting unseen in the kernel's backlog. Shutdown stops accepting, lets in-flight
//! requests finish (up to a grace period), then returns.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Limits of the connection layer.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; more are answered `503` and closed.
    pub max_connections: usize,
    /// Request line plus headers, in bytes. Hyper needs at least 8 KiB; smaller values
    /// are raised to that.
    pub max_header_bytes: usize,
    /// Number of request headers.
    pub max_headers: usize,
    /// The whole request head must arrive within this (slow-loris); hyper also applies it
    /// to an idle keep-alive connection waiting for its next request.
    pub header_read_timeout: Duration,
    /// After shutdown is asked, in-flight requests get this long to finish.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Hyper refuses a smaller read buffer.
const MIN_HEADER_BYTES: usize = 8 * 1024;

/// Refusals being written at once; beyond this an extra connection is just closed.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// Serves `router` on `listener` until `shutdown` completes. Each request carries
/// `ConnectInfo<SocketAddr>` of its peer.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES))
        .max_headers(limits.max_headers);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, typically: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refuse(stream, &refusals);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                request
            });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing the remaining connections");
    }
    Ok(())
}

fn too_many_connections() -> Vec<u8> {
    let body = r#"{"type":"/problems/too_many_connections","title":"Service unavailable","status":503,"detail":"the server has too many open connections; retry shortly","code":"too_many_connections","request_id":""}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\n\
         cache-control: no-store\r\nx-content-type-options: nosniff\r\nx-frame-options: DENY\r\n\
         referrer-policy: no-referrer\r\ncontent-security-policy: default-src 'none'; frame-ancestors 'none'\r\n\
         connection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers a connection over the cap with `503` and closes it. The answer is written at
/// once; the request is then read and discarded until the client hangs up (bounded), so
/// closing does not reset the connection before the client has read the answer.
fn refuse(stream: TcpStream, refusals: &Arc<Semaphore>) {
    let Ok(permit) = Arc::clone(refusals).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            if stream.write_all(&too_many_connections()).await.is_ok() && stream.shutdown().await.is_ok() {
                let mut sink = [0u8; 1024];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            }
        })
        .await;
        drop(permit);
    });
}
