//! The HTTP server of `relflow serve` (API, page, webhooks) and of
//! `relflow bridge`'s webhooks: the axum app on hyper, with limits a slow or
//! hostile client cannot sit out. `axum::serve` has none: a client that
//! sends its headers (or body) one byte a minute holds a connection, and a
//! task, for ever.
//!
//! * The request headers must arrive within `header_timeout` (hyper's
//!   `header_read_timeout`), else the connection is closed.
//! * The request body must arrive within `body_timeout`
//!   (tower-http's `RequestBodyTimeout`), else the request fails.
//! * At most `max_connections` are served at once; further ones wait in
//!   the listen backlog until one ends.
//!
//! Responses (server-sent events, live logs) are not limited.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::RequestBodyTimeout;

/// How long a client may take, and how many may connect at once.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// Serves `app` on `listener` until `shutdown`, then lets open requests
/// finish.
pub async fn serve(listener: TcpListener, app: Router, limits: HttpLimits, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: wait for a descriptor instead of spinning.
                    tracing::warn!("cannot accept an HTTP connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // What axum's `ConnectInfo` extractor reads (the audit log's "from where").
        let app = app.clone().layer(axum::Extension(axum::extract::ConnectInfo(peer)));
        let service = TowerToHyperService::new(RequestBodyTimeout::new(app, limits.body_timeout));
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::routing::post;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn server(limits: HttpLimits) -> (String, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let app = Router::new().route("/echo", post(|body: axum::body::Bytes| async move { body }));
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, app, limits, stop.clone()));
        (addr, stop)
    }

    /// Everything the server sends until it closes the connection.
    async fn read_to_close(stream: &mut tokio::net::TcpStream) -> String {
        let mut out = Vec::new();
        // The bound only keeps a broken build from hanging the suite.
        let read = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut out)).await;
        assert!(read.is_ok(), "the server kept the slow connection open");
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn slow_headers_and_slow_bodies_are_cut_off() {
        let limits = HttpLimits {
            header_timeout: Duration::from_millis(300),
            body_timeout: Duration::from_millis(300),
            max_connections: 8,
        };
        let (addr, stop) = server(limits).await;
        let mut slow_headers = tokio::net::TcpStream::connect(&addr).await.unwrap();
        slow_headers.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let mut slow_body = tokio::net::TcpStream::connect(&addr).await.unwrap();
        slow_body.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b").await.unwrap();
        let _ = read_to_close(&mut slow_headers).await;
        let reply = read_to_close(&mut slow_body).await;
        assert!(!reply.contains("200 OK"), "{reply}");

        let mut fast = tokio::net::TcpStream::connect(&addr).await.unwrap();
        fast.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
            .await
            .unwrap();
        let reply = read_to_close(&mut fast).await;
        assert!(reply.starts_with("HTTP/1.1 200 OK") && reply.ends_with("hi"), "{reply}");
        stop.cancel();
    }

    #[tokio::test]
    async fn connections_over_the_cap_wait_for_a_free_one() {
        let limits =
            HttpLimits { header_timeout: Duration::from_secs(600), max_connections: 1, ..HttpLimits::default() };
        let (addr, stop) = server(limits).await;
        let mut holder = tokio::net::TcpStream::connect(&addr).await.unwrap();
        holder.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let mut waiting = tokio::net::TcpStream::connect(&addr).await.unwrap();
        waiting
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .await
            .unwrap();
        let answered = tokio::spawn(async move { read_to_close(&mut waiting).await });
        // Closing the one connection served lets the waiting one in.
        drop(holder);
        let reply = answered.await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
        stop.cancel();
    }
}
