//! Accepting webhook connections and serving one: TCP_NODELAY, the TLS
//! handshake (bounded in time), then HTTP/2 or HTTP/1.1 as ALPN chose, on
//! hyper-util's connection builder, under graceful-shutdown watch.
//!
//! TCP_NODELAY matters: the apiserver multiplexes many small webhook calls
//! over one HTTP/2 connection, and with Nagle's algorithm on, a small
//! response can wait for the peer's delayed ACK (tens of milliseconds).
//!
//! The protocol comes from ALPN, not from sniffing the first bytes: HTTP/2
//! over TLS requires ALPN (RFC 9113 §3.2), and a pinned protocol means a
//! client that completes the handshake and then says nothing is caught by
//! HTTP/1's header-read timeout instead of waiting forever in detection.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::Watcher;
use hyper_util::service::TowerToHyperService;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::Tuning;

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

/// Serves one accepted connection to the end; errors are logged, not
/// returned (one bad client never affects the others).
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    http: Arc<Http>,
    router: Router,
    watcher: Watcher,
    handshake_timeout: Duration,
) {
    let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(err)) if err.kind() == io::ErrorKind::UnexpectedEof => {
            // A TCP probe that connects and closes: not worth a warning.
            tracing::debug!(%peer, "connection closed before the TLS handshake");
            return;
        }
        Ok(Err(err)) => {
            tracing::warn!(%peer, error = %super::error_chain(&err), "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::warn!(
                %peer,
                "TLS handshake not finished within {} ms",
                handshake_timeout.as_millis()
            );
            return;
        }
    };
    let builder = match tls.get_ref().1.alpn_protocol() {
        Some(b"h2") => &http.h2,
        _ => &http.h1,
    };
    let connection = builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(router));
    if let Err(err) = watcher.watch(connection).await {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
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
