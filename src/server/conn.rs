//! Accepting webhook connections and serving one: TCP_NODELAY, the TLS
//! handshake, then HTTP/2 or HTTP/1.1 as ALPN chose, on hyper-util's
//! connection builder, under graceful-shutdown watch.
//!
//! TCP_NODELAY matters: the apiserver multiplexes many small webhook calls
//! over one HTTP/2 connection, and with Nagle's algorithm on, a small
//! response can wait for the peer's delayed ACK (tens of milliseconds).
//!
//! The protocol comes from ALPN, not from sniffing the first bytes: HTTP/2
//! over TLS requires ALPN (RFC 9113 §3.2).
//!
//! One deadline covers the whole set-up, [`super::Tuning::setup_timeout`]
//! from accept: the TLS handshake, then the first request (for HTTP/2 the
//! client preface, SETTINGS and a request's HEADERS; for HTTP/1.1 the
//! request head). A client that stops anywhere before its first request is
//! closed at the deadline. HTTP/2's keep-alive PING only starts once the
//! preface has arrived, so without this a client that negotiated `h2` and
//! then said nothing would hold its connection for ever. After the first
//! request, HTTP/1.1's header timeout and HTTP/2's keep-alive take over.
//!
//! Failures are per connection and up to the client, so they are logged at
//! debug level and counted in `forcebacklog_connection_failures_total` by
//! reason; [`super::summary`] turns the counts into at most one warning per
//! interval.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::Watcher;
use hyper_util::service::TowerToHyperService;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::Tuning;
use super::metrics::{ConnFailure, Metrics};

/// Accepts one connection and turns Nagle's algorithm off on it.
///
/// A socket that cannot take the option (the peer already reset it) is
/// still returned; serving it will fail at once and be logged there.
pub async fn accept(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let (stream, peer) = listener.accept().await?;
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %err, "cannot set TCP_NODELAY");
    }
    Ok((stream, peer))
}

/// True for accept errors that concern only the connection being accepted
/// (the loop goes on at once); false for resource exhaustion and the like
/// (the loop pauses briefly so it does not spin).
pub fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The HTTP protocol settings, one builder per ALPN outcome.
#[derive(Debug, Clone)]
pub struct Http {
    h1: Builder<TokioExecutor>,
    h2: Builder<TokioExecutor>,
}

impl Http {
    /// Builders with the timeouts and limits of `tuning`.
    pub fn new(tuning: &Tuning) -> Self {
        let mut base = Builder::new(TokioExecutor::new());
        base.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(tuning.header_read_timeout)
            .keep_alive(true);
        base.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(256)
            .max_header_list_size(64 * 1024)
            .keep_alive_interval(Some(tuning.h2_keep_alive_interval))
            .keep_alive_timeout(tuning.h2_keep_alive_timeout);
        Self {
            h1: base.clone().http1_only(),
            h2: base.http2_only(),
        }
    }
}

/// What every webhook connection needs.
pub struct Context {
    /// The TLS acceptor (certificates from the reloading resolver).
    pub acceptor: TlsAcceptor,
    /// The HTTP protocol settings.
    pub http: Http,
    /// The webhook routes.
    pub router: Router,
    /// Where failures are counted.
    pub metrics: Arc<Metrics>,
    /// From accept to the first request's head.
    pub setup_timeout: Duration,
}

/// Serves one accepted connection to the end. Nothing is returned: one bad
/// client never affects the others; failures are counted and logged at
/// debug level.
///
/// `draining` turns true when the server stops accepting: a connection
/// still in its TLS handshake, or that has not sent a request yet, is then
/// closed at once; `watcher` lets the others finish their requests.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    cx: Arc<Context>,
    watcher: Watcher,
    mut draining: watch::Receiver<bool>,
) {
    let deadline = Instant::now() + cx.setup_timeout;
    let served = match handshake(stream, peer, &cx, deadline, &mut draining).await {
        Ok(tls) => serve_http(tls, peer, &cx, watcher, deadline, &mut draining).await,
        Err(reason) => Err(reason),
    };
    if let Err(reason) = served {
        cx.metrics.connection_failed(reason);
    }
}

/// The TLS handshake, within the set-up deadline and until shutdown.
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    cx: &Context,
    deadline: Instant,
    draining: &mut watch::Receiver<bool>,
) -> Result<TlsStream<TcpStream>, ConnFailure> {
    let handshake = tokio::time::timeout_at(deadline, cx.acceptor.accept(stream));
    tokio::select! {
        accepted = handshake => match accepted {
            Ok(Ok(tls)) => Ok(tls),
            Ok(Err(err)) if err.kind() == io::ErrorKind::UnexpectedEof => {
                tracing::debug!(%peer, "connection closed before the TLS handshake finished");
                Err(ConnFailure::TlsClosed)
            }
            Ok(Err(err)) => {
                tracing::debug!(%peer, error = %crate::error_chain(&err), "TLS handshake failed");
                Err(ConnFailure::TlsError)
            }
            Err(_) => {
                tracing::debug!(
                    %peer,
                    "TLS handshake not finished within {} ms",
                    cx.setup_timeout.as_millis()
                );
                Err(ConnFailure::SetupTimeout)
            }
        },
        _ = draining.wait_for(|draining| *draining) => {
            tracing::debug!(%peer, "closed in the TLS handshake: shutting down");
            Err(ConnFailure::Shutdown)
        }
    }
}

/// HTTP/2 or HTTP/1.1 as ALPN chose, until the connection ends. Until the
/// first request: the set-up deadline, and shutdown (hyper would finish an
/// HTTP/2 handshake before honouring it, and a client that never sends the
/// preface would hold the drain).
async fn serve_http(
    tls: TlsStream<TcpStream>,
    peer: SocketAddr,
    cx: &Context,
    watcher: Watcher,
    deadline: Instant,
    draining: &mut watch::Receiver<bool>,
) -> Result<(), ConnFailure> {
    let builder = match tls.get_ref().1.alpn_protocol() {
        Some(b"h2") => &cx.http.h2,
        _ => &cx.http.h1,
    };
    let first_request = Arc::new(AtomicBool::new(false));
    let service = FirstRequest {
        inner: TowerToHyperService::new(cx.router.clone()),
        seen: Arc::clone(&first_request),
    };
    let connection = watcher.watch(builder.serve_connection(TokioIo::new(tls), service));
    tokio::pin!(connection);
    let mut deadline_passed = false;
    let mut draining_seen = false;
    let ended = loop {
        tokio::select! {
            ended = &mut connection => break ended,
            () = tokio::time::sleep_until(deadline), if !deadline_passed => {
                deadline_passed = true;
                if !first_request.load(Ordering::Relaxed) {
                    tracing::debug!(
                        %peer,
                        "no request within {} ms of connecting; closing",
                        cx.setup_timeout.as_millis()
                    );
                    return Err(ConnFailure::SetupTimeout);
                }
            }
            _ = draining.wait_for(|draining| *draining), if !draining_seen => {
                draining_seen = true;
                if !first_request.load(Ordering::Relaxed) {
                    tracing::debug!(%peer, "closed before a request: shutting down");
                    return Err(ConnFailure::Shutdown);
                }
            }
        }
    };
    match ended {
        Ok(()) => Ok(()),
        Err(err) => ended_with(&*err, first_request.load(Ordering::Relaxed), peer),
    }
}

/// How a connection that ended with `err` counts: a failure, or (an idle
/// HTTP/1.1 connection past its header timeout) the usual end.
fn ended_with(
    err: &(dyn std::error::Error + Send + Sync + 'static),
    served_a_request: bool,
    peer: SocketAddr,
) -> Result<(), ConnFailure> {
    let timeout = err
        .downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_timeout);
    if timeout && served_a_request {
        // HTTP/1.1's header timeout is also its keep-alive idle time:
        // the usual end of an idle connection, not a failure.
        tracing::debug!(%peer, "HTTP/1.1 connection idle or slow past the header timeout; closed");
        Ok(())
    } else if timeout {
        tracing::debug!(%peer, "no request head within the header timeout; closed");
        Err(ConnFailure::SetupTimeout)
    } else {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
        Err(ConnFailure::Http)
    }
}

/// The router as a hyper service that notes its first call, which ends the
/// set-up deadline.
#[derive(Debug, Clone)]
struct FirstRequest<S> {
    inner: S,
    seen: Arc<AtomicBool>,
}

impl<R, S: hyper::service::Service<R>> hyper::service::Service<R> for FirstRequest<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, request: R) -> Self::Future {
        self.seen.store(true, Ordering::Relaxed);
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_have_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::spawn(TcpStream::connect(addr));
        let (stream, peer) = accept(&listener).await.expect("accept");
        let client = client.await.expect("join").expect("connect");
        assert_eq!(peer, client.local_addr().expect("client addr"));
        assert!(stream.nodelay().expect("getsockopt TCP_NODELAY"));
        // The default is off, so the option above is ours.
        assert!(!client.nodelay().expect("getsockopt TCP_NODELAY"));
    }

    #[test]
    fn only_per_connection_errors_skip_the_pause() {
        assert!(is_connection_error(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
        assert!(!is_connection_error(&io::Error::from_raw_os_error(24))); // EMFILE
    }
}
