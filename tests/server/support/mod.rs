//! Test support for the `forcebacklog serve` tests: certificates, a real
//! TLS client, AdmissionReview fixtures, and a server on 127.0.0.1:0.

pub mod client;
pub mod fixtures;
pub mod logs;
pub mod pki;

use forcebacklog::config::InjectConfig;
use forcebacklog::server::{ServeConfig, ServeError, Tuning};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Timings for tests: quick reloads, everything else as in production.
pub fn quick() -> Tuning {
    Tuning {
        reload_interval: Duration::from_millis(100),
        reload_debounce: Duration::from_millis(300),
        ..Tuning::default()
    }
}

/// A server running [`forcebacklog::server::run`] on its own ports.
pub struct TestServer {
    /// The HTTPS webhook address.
    pub addr: SocketAddr,
    /// The plain-HTTP admin address.
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl TestServer {
    /// Starts a server on 127.0.0.1:0 without waiting for it.
    pub async fn spawn(cert: PathBuf, key: PathBuf, tuning: Tuning) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind webhook");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let addr = listener.local_addr().expect("webhook addr");
        let admin_addr = admin.local_addr().expect("admin addr");
        let config = ServeConfig {
            addr,
            admin_addr,
            tls_cert: cert,
            tls_key: key,
            inject: InjectConfig::default(),
            tuning,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(forcebacklog::server::run(
            listener,
            admin,
            config,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            admin: admin_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Starts a server and waits until `/readyz` says 200.
    pub async fn start(cert: PathBuf, key: PathBuf, tuning: Tuning) -> Self {
        let server = Self::spawn(cert, key, tuning).await;
        client::bounded("server ready", async {
            loop {
                if client::admin_get(server.admin, "/readyz").await.status == 200 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        server
    }

    /// Resolves the shutdown future given to `run`.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for `run` to return.
    pub async fn join(&mut self) -> Result<(), ServeError> {
        let task = self.task.take().expect("joined once");
        client::bounded("run() returns", task)
            .await
            .expect("server task panicked")
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let reply = client::admin_get(self.admin, "/metrics").await;
        assert_eq!(reply.status, 200);
        reply.text()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A CA, a serving certificate issued by it and a [`TestServer`] using it.
pub struct Setup {
    /// The CA clients trust.
    pub ca: pki::Ca,
    _issued: pki::Issued,
    _dir: tempfile::TempDir,
    /// The running server.
    pub server: TestServer,
}

/// Starts a server with a fresh CA and certificate and `tuning`.
pub async fn setup(tuning: Tuning) -> Setup {
    let ca = pki::Ca::new();
    let issued = ca.issue("forcebacklog.forcebacklog.svc", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = pki::write_plain(dir.path(), &issued);
    let server = TestServer::start(cert, key, tuning).await;
    Setup {
        ca,
        _issued: issued,
        _dir: dir,
        server,
    }
}
