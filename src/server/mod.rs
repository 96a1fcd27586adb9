//! `forcebacklog serve`: the HTTPS admission webhook and its admin port.
//!
//! - `conn`: accept (TCP_NODELAY), TLS handshake, HTTP/1.1 or HTTP/2 per
//!   connection (hyper-util), one set-up deadline, graceful-shutdown watch.
//! - `tls`: PEM loading, the rustls configuration (TLS 1.2+, ALPN h2 and
//!   http/1.1), certificate reload by polling the files.
//! - `x509`: the certificate's validity period (refused when expired or
//!   not yet valid).
//! - `fds`: the open-files limit and the connection limit under it.
//! - `summary`: per-connection failures and refusals as a few warnings.
//! - `routes`: `POST /mutate`, `/mutate/namespace`, `/validate` → the
//!   mutation core ([`crate::review::handle`]); size and time limits.
//! - `admin`: `/healthz`, `/readyz`, `/metrics` on plain HTTP.
//! - `metrics`: the Prometheus registry of one server.
//! - `logging`: tracing-subscriber set-up, text or JSON.
//! - `shutdown`: SIGTERM/SIGINT handling for [`serve`].
//!
//! [`run`] is the whole server on listeners the caller bound, until a
//! future resolves, which is how the tests drive it on `127.0.0.1:0`;
//! [`serve`] binds the configured addresses and stops on a signal.

mod admin;
mod conn;
mod fds;
mod logging;
mod metrics;
mod routes;
mod shutdown;
mod summary;
mod tls;
mod x509;

use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::config::InjectConfig;
use crate::patch::Injector;
use metrics::Metrics;

pub use logging::LoggingError;
pub use tls::TlsError;

/// The largest AdmissionReview body accepted (413 beyond). The apiserver
/// limits objects to about 3 MiB (etcd's request limit is 1.5 MiB by
/// default), and a review carries the object plus some envelope.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The accept-queue length the listeners ask for; the kernel caps it at
/// `net.core.somaxconn`.
pub(crate) const LISTEN_BACKLOG: u32 = 4096;

/// The default of `--max-connections`: an idle HTTP/2 connection costs
/// about 35 KiB, so 1000 of them (44 MiB RSS in all) fit in the chart's
/// 64 MiB memory limit (docs/reliability.md has the measurement).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1000;

/// Everything `forcebacklog serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where the HTTPS webhook listens.
    pub addr: SocketAddr,
    /// Where the plain-HTTP admin port listens.
    pub admin_addr: SocketAddr,
    /// PEM certificate chain, reloaded when it changes.
    pub tls_cert: PathBuf,
    /// PEM private key, reloaded when it changes.
    pub tls_key: PathBuf,
    /// The mutation core's configuration.
    pub inject: InjectConfig,
    /// Limits and timings.
    pub tuning: Tuning,
}

/// Limits and timings of the server; the defaults suit production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// Largest request body (413 beyond). Default [`MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// From a request's headers to its response (408 after). Default 10 s;
    /// the apiserver's webhook timeout is at most 30 s (10 s by default).
    pub request_timeout: Duration,
    /// HTTP/1.1: time to receive a request's headers, and how long a
    /// keep-alive connection may sit idle. Default 10 s.
    pub header_read_timeout: Duration,
    /// From accept to the first request's head: the TLS handshake, then
    /// the HTTP/2 preface and first request or the HTTP/1.1 request head,
    /// under one deadline (connection closed after). Default 10 s.
    pub setup_timeout: Duration,
    /// Webhook connections served at once (TLS handshakes included); past
    /// it new connections are closed at accept. Default 1000 (about 35 MiB
    /// of idle HTTP/2 connections).
    pub max_connections: usize,
    /// After the shutdown signal, how long the server keeps accepting and
    /// serving while it reports not ready (endpoint removal takes time to
    /// reach the apiserver). Default 0.
    pub shutdown_delay: Duration,
    /// After the shutdown delay, how long in-flight requests may take before
    /// their connections are dropped. Default 20 s (with the delay, inside
    /// the pod's termination grace period).
    pub shutdown_grace: Duration,
    /// How often the certificate files are compared with what is loaded.
    /// Default 2 s.
    pub reload_interval: Duration,
    /// How long a new certificate/key pair that does not load must stay the
    /// same before it counts as an error (files renamed one after the other
    /// are briefly a mismatched pair). Default 1 s.
    pub reload_debounce: Duration,
    /// At most one "at the connection limit" warning per interval.
    /// Default 1 s.
    pub refusal_log_interval: Duration,
    /// At most one warning summing up failed connections per interval.
    /// Default 10 s.
    pub failure_log_interval: Duration,
    /// HTTP/2: how often an idle or stalled connection is pinged. Default 30 s.
    pub h2_keep_alive_interval: Duration,
    /// HTTP/2: how long a ping may go unanswered before the connection is
    /// closed (this is what ends a client stalled inside a frame). Default 20 s.
    pub h2_keep_alive_timeout: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            max_body_bytes: MAX_BODY_BYTES,
            request_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            setup_timeout: Duration::from_secs(10),
            max_connections: DEFAULT_MAX_CONNECTIONS as usize,
            shutdown_delay: Duration::ZERO,
            shutdown_grace: Duration::from_secs(20),
            reload_interval: Duration::from_secs(2),
            reload_debounce: Duration::from_secs(1),
            refusal_log_interval: Duration::from_secs(1),
            failure_log_interval: Duration::from_secs(10),
            h2_keep_alive_interval: Duration::from_secs(30),
            h2_keep_alive_timeout: Duration::from_secs(20),
        }
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listening socket could not be created or bound.
    #[error("cannot listen on {addr} ({what})")]
    Bind {
        /// `webhook` or `admin`.
        what: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The certificate or key is unusable at start-up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The log settings are invalid.
    #[error(transparent)]
    Logging(#[from] LoggingError),
    /// The SIGTERM/SIGINT handlers could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
}

/// State shared by the routes, the admin port and the server loop.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The mutation core, prepared once from the configuration.
    pub(crate) inject: Injector,
    /// Limits and timings.
    pub(crate) tuning: Tuning,
    /// This server's metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// True between "certificate loaded, accepting" and "shutting down".
    pub(crate) ready: Readiness,
}

/// Whether the webhook should get traffic (`/readyz`): not ready until
/// the certificate is loaded and the listener accepts, and again not
/// ready from the shutdown signal on.
#[derive(Debug, Default)]
pub(crate) struct Readiness(AtomicBool);

impl Readiness {
    /// Reports ready.
    pub(crate) fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Reports not ready (shutting down).
    pub(crate) fn set_not_ready(&self) {
        self.0.store(false, Ordering::Release);
    }

    /// True between [`Readiness::set_ready`] and [`Readiness::set_not_ready`].
    pub(crate) fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Installs the global tracing subscriber (`filter` in EnvFilter syntax).
pub fn init_logging(filter: &str, json: bool) -> Result<(), ServeError> {
    Ok(logging::init(filter, json)?)
}

/// Runs the webhook until SIGTERM/SIGINT (binds the addresses itself).
///
/// The first signal starts the graceful shutdown of [`run`]; a second one
/// returns at once, without waiting for in-flight requests.
pub async fn serve(mut config: ServeConfig) -> Result<(), ServeError> {
    let mut signals = shutdown::Signals::install().map_err(ServeError::Signals)?;
    let nofile = fds::raise_limit();
    let wanted = config.tuning.max_connections;
    config.tuning.max_connections = fds::connection_limit(wanted, nofile);
    if config.tuning.max_connections < wanted {
        tracing::warn!(
            open_files = nofile,
            max_connections = config.tuning.max_connections,
            "the open-files limit leaves room for {} webhook connections, not {wanted} \
             ({} kept for the admin port); raise `ulimit -n` or lower --max-connections",
            config.tuning.max_connections,
            fds::RESERVED
        );
    }
    let listener = bind("webhook", config.addr)?;
    let admin = bind("admin", config.admin_addr)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = run(listener, admin, config, async move {
        let _ = stopped.await;
    });
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        name = signals.next() => {
            tracing::info!(signal = name, "shutting down");
            let _ = stop.send(());
        }
    }
    tokio::select! {
        result = &mut server => result,
        name = signals.next() => {
            tracing::warn!(signal = name, "second signal: exiting without waiting for in-flight requests");
            Ok(())
        }
    }
}

/// A listening socket with SO_REUSEADDR and a [`LISTEN_BACKLOG`] queue.
fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServeError> {
    let fail = |source| ServeError::Bind { what, addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(fail)?;
    socket.set_reuseaddr(true).map_err(fail)?;
    socket.bind(addr).map_err(fail)?;
    socket.listen(LISTEN_BACKLOG).map_err(fail)
}

/// The whole server on the given listeners: loads the certificate (an
/// unusable, expired or not yet valid pair is an error, nothing is served),
/// serves the webhook over TLS and the admin port over HTTP, reloads the
/// certificate when its files change, and when `shutdown` resolves: marks
/// itself not ready, keeps serving for [`Tuning::shutdown_delay`], then
/// closes the webhook listener (new connections are refused) and the
/// connections that have not sent a request, lets in-flight requests finish
/// within [`Tuning::shutdown_grace`], and returns.
///
/// The steps, each a function below: `Tls::load` (the certificate),
/// `Background::spawn` (reload, summary and admin tasks),
/// `Accepting::until` (the accept loop), `Accepting::start` (serve one
/// connection), `Accepting::drain` and `Background::stop`.
pub async fn run<F>(
    listener: TcpListener,
    admin: TcpListener,
    config: ServeConfig,
    shutdown: F,
) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send,
{
    let ServeConfig {
        tls_cert,
        tls_key,
        inject,
        tuning,
        ..
    } = config;
    let tls = Tls::load(tls_cert, tls_key).await?;
    let shared = Arc::new(Shared {
        inject: Injector::new(inject),
        tuning,
        metrics: Arc::new(Metrics::new()),
        ready: Readiness::default(),
    });
    let tuning = &shared.tuning;
    shared.metrics.tls_not_after(tls.not_after);
    shared.metrics.connection_limit(tuning.max_connections);
    let mut accepting = Accepting::new(listener, tls.acceptor()?, &shared);
    let not_after = tls.not_after;
    let cert = tls.cert.clone();
    let background = Background::spawn(admin, tls, &shared);

    shared.ready.set_ready();
    tracing::info!(
        https = %display_addr(accepting.listener.local_addr().ok()),
        admin = %display_addr(background.admin_addr),
        cert = %cert.display(),
        not_after = %x509::rfc3339(not_after),
        max_connections = tuning.max_connections,
        "ready"
    );

    accepting.until(shutdown).await;
    shared.ready.set_not_ready();
    if !tuning.shutdown_delay.is_zero() {
        tracing::info!(
            "not ready; serving for the shutdown delay of {} ms",
            tuning.shutdown_delay.as_millis()
        );
        accepting
            .until(tokio::time::sleep(tuning.shutdown_delay))
            .await;
    }
    accepting.drain(tuning.shutdown_grace).await;
    background.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// The certificate as loaded at start-up, and what reloading it needs.
struct Tls {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// The file contents loaded, compared by the reload task.
    pair: tls::PairBytes,
    resolver: Arc<tls::ReloadingResolver>,
    /// `notAfter` of the leaf, Unix seconds.
    not_after: i64,
}

impl Tls {
    /// Loads and checks the certificate/key pair.
    async fn load(cert: PathBuf, key: PathBuf) -> Result<Self, ServeError> {
        let provider = tls::provider();
        let (pair, loaded) = tls::load(&cert, &key, &provider).await?;
        Ok(Self {
            cert,
            key,
            provider,
            pair,
            resolver: Arc::new(tls::ReloadingResolver::new(loaded.key)),
            not_after: loaded.validity.not_after,
        })
    }

    /// The TLS acceptor, serving whatever the resolver holds.
    fn acceptor(&self) -> Result<TlsAcceptor, ServeError> {
        let config = tls::server_config(Arc::clone(&self.resolver), Arc::clone(&self.provider))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// The tasks beside the accept loop: certificate reload, the warning
/// summary, and the admin port.
struct Background {
    reload: JoinHandle<()>,
    summary: JoinHandle<()>,
    admin: JoinHandle<std::io::Result<()>>,
    admin_addr: Option<SocketAddr>,
    admin_stop: oneshot::Sender<()>,
}

impl Background {
    /// Starts the reload task, the summary task and the admin server.
    fn spawn(admin: TcpListener, tls: Tls, shared: &Arc<Shared>) -> Self {
        let tuning = &shared.tuning;
        let metrics = &shared.metrics;
        let watch = tls::Watch {
            cert: tls.cert,
            key: tls.key,
            interval: tuning.reload_interval,
            debounce: tuning.reload_debounce,
        };
        let reload = tokio::spawn(tls::watch(
            watch,
            tls.pair,
            tls.resolver,
            tls.provider,
            Arc::clone(metrics),
        ));
        let summary = tokio::spawn(summary::run(
            Arc::clone(metrics),
            tuning.max_connections,
            tuning.refusal_log_interval,
            tuning.failure_log_interval,
        ));
        let admin_addr = admin.local_addr().ok();
        let (admin_stop, admin_stopped) = oneshot::channel::<()>();
        let router = admin::router(Arc::clone(shared));
        let admin = tokio::spawn(async move {
            axum::serve(admin, router)
                .with_graceful_shutdown(async move {
                    let _ = admin_stopped.await;
                })
                .await
        });
        Self {
            reload,
            summary,
            admin,
            admin_addr,
            admin_stop,
        }
    }

    /// Stops the reload and summary tasks, and closes the admin port
    /// (waiting at most a second for it).
    async fn stop(self) {
        self.reload.abort();
        self.summary.abort();
        let _ = self.admin_stop.send(());
        match tokio::time::timeout(Duration::from_secs(1), self.admin).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => tracing::warn!(error = %err, "admin port failed"),
            Ok(Err(err)) => tracing::warn!(error = %err, "admin port task failed"),
            Err(_) => tracing::debug!("admin port did not close within 1 s"),
        }
    }
}

/// The webhook's accept loop and the connections it started.
struct Accepting {
    listener: TcpListener,
    cx: Arc<conn::Context>,
    graceful: GracefulShutdown,
    /// Turns true when the listener closes (see [`conn::serve`]).
    draining: watch::Sender<bool>,
    connections: JoinSet<()>,
    max_connections: usize,
}

impl Accepting {
    /// The accept loop's state for `listener`, no connection yet.
    fn new(listener: TcpListener, acceptor: TlsAcceptor, shared: &Arc<Shared>) -> Self {
        let tuning = &shared.tuning;
        Self {
            listener,
            cx: Arc::new(conn::Context {
                acceptor,
                http: conn::Http::new(tuning),
                router: routes::router(Arc::clone(shared)),
                metrics: Arc::clone(&shared.metrics),
                setup_timeout: tuning.setup_timeout,
            }),
            graceful: GracefulShutdown::new(),
            draining: watch::Sender::new(false),
            connections: JoinSet::new(),
            max_connections: tuning.max_connections,
        }
    }

    /// Accepts and serves connections until `stop` resolves. Past
    /// `max_connections` open ones, a new connection is closed at once
    /// (counted, and summarised by [`summary`]).
    async fn until(&mut self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                biased;
                () = &mut stop => return,
                Some(_) = self.connections.join_next(), if !self.connections.is_empty() => {}
                accepted = conn::accept(&self.listener) => match accepted {
                    Ok((stream, peer)) => self.start(stream, peer),
                    Err(err) if conn::is_connection_error(&err) => {
                        tracing::debug!(error = %err, "accept failed");
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "accept failed; pausing 100 ms");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }

    /// Serves one accepted connection on its own task, or closes it when
    /// `max_connections` are already open.
    fn start(&mut self, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let metrics = &self.cx.metrics;
        if metrics.connections_open() >= self.max_connections {
            metrics.connection_refused();
            tracing::debug!(%peer, "at the connection limit: closing a new connection");
            drop(stream);
            return;
        }
        let slot = metrics.connection_opened();
        let serve = conn::serve(
            stream,
            peer,
            Arc::clone(&self.cx),
            self.graceful.watcher(),
            self.draining.subscribe(),
        );
        self.connections.spawn(async move {
            let _slot = slot;
            serve.await;
        });
    }

    /// Closes the listener (new connections are refused), closes the
    /// connections still in their TLS handshake, and lets requests in
    /// flight finish within `grace`; after it the rest are dropped.
    async fn drain(self, grace: Duration) {
        let Self {
            listener,
            cx,
            graceful,
            draining,
            mut connections,
            ..
        } = self;
        drop(listener);
        // Connections in their TLS handshake close now; the graceful shutdown
        // closes those that have not sent a request and idle ones, and lets
        // requests in flight finish.
        let _ = draining.send(true);
        let metrics = &cx.metrics;
        tracing::info!(
            connections = metrics.connections_open(),
            "stopped accepting; draining in-flight requests"
        );
        let drain = async {
            graceful.shutdown().await;
            while connections.join_next().await.is_some() {}
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(
                connections = metrics.connections_open(),
                "grace period of {} ms over; closing the remaining connections",
                grace.as_millis()
            );
            connections.abort_all();
            while connections.join_next().await.is_some() {}
        }
    }
}

fn display_addr(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "?".to_owned(), |a| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chains_read_outer_to_inner() {
        let err = TlsError::Read {
            path: PathBuf::from("/certs/tls.crt"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(
            crate::error_chain(&err),
            "cannot read /certs/tls.crt: entity not found"
        );
    }

    #[tokio::test]
    async fn an_address_in_use_is_named() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let err = bind("webhook", addr).expect_err("in use");
        assert_eq!(
            err.to_string(),
            format!("cannot listen on {addr} (webhook)")
        );
    }
}
