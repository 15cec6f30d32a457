//! The accept loop: HTTP/1.1 connections served by hyper with a header-read timeout
//! (which also closes idle keep-alive connections), a deadline on reading each
//! request's body, a cap on connections served at once (one more is answered 503 and
//! closed), and a graceful drain on shutdown (the listener closes, requests in
//! progress, streams included, run to their end).

use axum::Router;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use switchyard_wire::{ApiError, ErrorKind};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

/// What one connection may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a request's headers, from when the server waits for them.
    pub header_read_timeout: Duration,
    /// Time to send a request's whole body, from its headers' arrival.
    pub body_read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// Descriptors kept back from the connection cap for the gateway's own files
/// (listener, logs, model files, the runtime's own).
const RESERVED_FILES: u64 = 64;
/// The largest default connection cap.
const DEFAULT_MAX_CONNECTIONS: u64 = 4096;

/// Raises this process's open-file limit to its hard limit and returns the limit in
/// force. A gateway holds a client connection and an upstream connection per request
/// in flight; the common default of 1,024 runs out long before the CPU does.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// The connection cap when none is configured: half the open-file limit left after
/// [`RESERVED_FILES`] (each client connection may need an upstream one), at most
/// 4,096, at least 1.
pub fn default_max_connections() -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    connection_cap(soft)
}

fn connection_cap(open_file_limit: u64) -> usize {
    let cap =
        (open_file_limit.saturating_sub(RESERVED_FILES) / 2).clamp(1, DEFAULT_MAX_CONNECTIONS);
    usize::try_from(cap).unwrap_or(1)
}

/// A request body that must arrive whole by a deadline. The timer is made only when
/// the body is not already there, so most requests (whose body comes with the
/// headers) never make one.
pub struct TimedBody {
    inner: Incoming,
    deadline: Instant,
    after: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

/// The error a body read too slowly ends with; ingress answers it with 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within {} ms (server.body_read_timeout_ms)", .0.as_millis())]
pub struct BodyTimeout(pub Duration);

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(self.after))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `app` on `listener` until `shutdown`, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    limits: Limits,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept:
                    // the listener stays; try again shortly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small SSE events must leave at once, not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tokio::spawn(refuse(stream, limits.max_connections));
            continue;
        };
        let app = app.clone();
        let body_read_timeout = limits.body_read_timeout;
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let (mut parts, inner) = request.into_parts();
            parts.extensions.insert(ConnectInfo(peer));
            let body = TimedBody {
                inner,
                deadline: Instant::now() + body_read_timeout,
                after: body_read_timeout,
                timer: None,
            };
            let request = hyper::Request::from_parts(parts, body);
            let mut app = app.clone();
            async move { tower::Service::call(&mut app, request).await }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Answers a connection over the cap with a 503 and closes it.
async fn refuse(mut stream: TcpStream, cap: usize) {
    let body = ApiError::new(
        ErrorKind::Unavailable,
        format!("the gateway is serving its maximum of {cap} connections; retry shortly"),
    )
    .body()
    .to_string();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_a_descriptor_for_each_upstream_connection() {
        assert_eq!(connection_cap(1024), 480);
        assert_eq!(connection_cap(1_048_576), 4096);
        assert_eq!(connection_cap(10), 1);
        assert_eq!(connection_cap(0), 1);
    }
}
