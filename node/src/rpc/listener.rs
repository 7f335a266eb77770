//! The RPC server's own accept loop: what jsonrpsee's leaves unbounded.
//!
//! jsonrpsee limits the requests in flight, not the connections: an idle
//! kept-alive connection holds a socket (and its buffers) for as long as
//! the client likes, and a client that trickles a request's body, or the
//! headers of any request after its first, one byte at a time keeps its
//! connection forever. A few thousand of either take a public node's RPC
//! down. Here every connection takes a permit of
//! [`RpcLimits::max_connections`] while it speaks HTTP (one over the limit
//! is answered 503 and closed; a WebSocket gives its permit back once
//! upgraded: jsonrpsee counts those against the same limit itself, and
//! closes the ones that answer no ping within [`RpcLimits::ws_inactive_limit`]),
//! its request headers, and the silence before and between requests, must
//! come within [`RpcLimits::header_timeout`], and a request must be read
//! and answered within [`RpcLimits::request_timeout`] (go-ethereum's read
//! and write timeouts).

use super::RpcLimits;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use jsonrpsee::server::{ConnectionGuard, HttpResponse, StopHandle};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// What a connection over the limit gets before it is closed.
const OVER_LIMIT: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 21\r\nconnection: close\r\n\r\ntoo many connections\n";

/// A pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Accepts connections until `stop` and serves each with a service from
/// `make_service`.
pub(super) async fn accept_loop<S, F>(listener: TcpListener, limits: RpcLimits, stop: StopHandle, make_service: F)
where
    F: Fn() -> S,
    S: Service + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let guard = ConnectionGuard::new(limits.max_connections as usize);
    let stopped = stop.clone().shutdown();
    tokio::pin!(stopped);
    loop {
        let socket = tokio::select! {
            _ = &mut stopped => break,
            socket = accept_next(&listener) => socket,
        };
        let Some(permit) = guard.try_acquire() else {
            tokio::spawn(refuse(socket));
            continue;
        };
        // Small JSON answers: send them now, not after a delayed ACK.
        let _ = socket.set_nodelay(true);
        let service = Deadline { inner: make_service(), limit: limits.request_timeout };
        let (header_timeout, stop) = (limits.header_timeout, stop.clone());
        tokio::spawn(async move {
            serve(socket, service, header_timeout, stop).await;
            drop(permit);
        });
    }
}

/// The next accepted connection. A failed accept (out of file descriptors,
/// most likely) is retried after [`ACCEPT_BACKOFF`], so the loop does not
/// spin while connections close.
pub(crate) async fn accept_next(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((socket, _)) => return socket,
            Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
        }
    }
}

/// One connection: HTTP/1.1, upgradable to WebSocket. Not HTTP/2 over
/// plain TCP (which no Ethereum client speaks): its connections would stay
/// open idle, out of reach of the header time limit.
async fn serve<S>(socket: TcpStream, service: Deadline<S>, header_timeout: Duration, stop: StopHandle)
where
    S: Service + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let connection = builder.serve_connection(TokioIo::new(socket), TowerToHyperService::new(service)).with_upgrades();
    let stopped = stop.shutdown();
    tokio::pin!(connection, stopped);
    tokio::select! {
        // A timeout or a client gone: the connection just ends.
        _ = &mut connection => {}
        _ = &mut stopped => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Answers a connection over the limit and closes it.
async fn refuse(mut socket: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = socket.write_all(OVER_LIMIT).await;
        let _ = socket.shutdown().await;
    })
    .await;
}

/// The HTTP service of one connection (jsonrpsee's).
pub(super) trait Service: tower::Service<Request, Response = HttpResponse, Error = tower::BoxError> {}

impl<S: tower::Service<Request, Response = HttpResponse, Error = tower::BoxError>> Service for S {}

/// A request as hyper hands it over.
type Request = hyper::Request<hyper::body::Incoming>;

/// A request (body included) read and answered within `limit`, or the
/// connection fails and closes.
#[derive(Clone)]
struct Deadline<S> {
    inner: S,
    limit: Duration,
}

impl<S: Service> tower::Service<Request> for Deadline<S>
where
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = tower::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, tower::BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let answer = self.inner.call(request);
        let limit = self.limit;
        Box::pin(async move {
            match tokio::time::timeout(limit, answer).await {
                Ok(answer) => answer,
                Err(_) => Err(format!("request not read and answered within {} s", limit.as_secs_f64()).into()),
            }
        })
    }
}
