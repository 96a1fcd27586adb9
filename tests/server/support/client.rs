//! A real HTTPS client for the webhook: tokio-rustls (ring) trusting the
//! test CA, then hyper's HTTP/1.1 or HTTP/2 client on ONE connection, so
//! tests see exactly which TLS version, ALPN protocol and certificate that
//! connection got, and can keep it alive across server events.

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Frame};
use hyper::client::conn::{http1, http2};
use hyper::{HeaderMap, Method, Request, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Request bodies: whole buffers or streamed frames.
pub type ReqBody = BoxBody<Bytes, Box<dyn Error + Send + Sync>>;

/// Every test step is bounded by this.
pub const STEP: Duration = Duration::from_secs(20);

/// Runs `fut`, failing the test if it takes longer than [`STEP`].
pub async fn bounded<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {STEP:?}"))
}

/// A whole-buffer request body.
pub fn full(bytes: impl Into<Bytes>) -> ReqBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// What ALPN the client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// `h2` only.
    H2,
    /// `http/1.1` only.
    Http11,
    /// `h2` and `http/1.1`, like the apiserver.
    Both,
    /// No ALPN extension at all.
    None,
}

/// TLS versions a client may offer.
pub const TLS12_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
/// TLS 1.3 and 1.2.
pub const TLS_ANY: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A client configuration trusting `ca`.
pub fn client_config(
    ca: &CertificateDer<'static>,
    versions: &[&'static SupportedProtocolVersion],
    alpn: Alpn,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).expect("CA into the trust store");
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .expect("client versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = match alpn {
        Alpn::H2 => vec![b"h2".to_vec()],
        Alpn::Http11 => vec![b"http/1.1".to_vec()],
        Alpn::Both => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Alpn::None => Vec::new(),
    };
    Arc::new(config)
}

/// A TCP connection and TLS handshake to `addr` as `localhost`.
pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost").expect("server name");
    TlsConnector::from(config).connect(name, tcp).await
}

enum Sender {
    H1(http1::SendRequest<ReqBody>),
    H2(http2::SendRequest<ReqBody>),
}

/// One HTTPS connection to the webhook.
pub struct Client {
    sender: Sender,
    authority: String,
    /// The negotiated TLS version.
    pub tls_version: ProtocolVersion,
    /// The negotiated ALPN protocol, if any.
    pub alpn: Option<Vec<u8>>,
    /// The leaf certificate the server presented.
    pub peer_cert: CertificateDer<'static>,
    driver: tokio::task::JoinHandle<()>,
}

/// A response, read to the end.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The HTTP version it came over.
    pub version: Version,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "response body is not JSON ({err}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `content-type` header.
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Client {
    /// Connects with TLS 1.3/1.2 offering `alpn`.
    pub async fn connect(addr: SocketAddr, ca: &CertificateDer<'static>, alpn: Alpn) -> Self {
        Self::connect_with(addr, client_config(ca, TLS_ANY, alpn)).await
    }

    /// Connects with a given client configuration; HTTP/2 when ALPN chose
    /// `h2`, HTTP/1.1 otherwise.
    pub async fn connect_with(addr: SocketAddr, config: Arc<ClientConfig>) -> Self {
        let tls = bounded("TLS connect", tls_connect(addr, config))
            .await
            .expect("TLS connection to the webhook");
        let (_, session) = tls.get_ref();
        let tls_version = session.protocol_version().expect("negotiated version");
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let peer_cert = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .expect("server certificate")
            .clone()
            .into_owned();
        let io = TokioIo::new(tls);
        let (sender, driver) = if alpn.as_deref() == Some(b"h2") {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .expect("HTTP/2 handshake");
            let driver = tokio::spawn(async move {
                let _ = conn.await;
            });
            (Sender::H2(sender), driver)
        } else {
            let (sender, conn) = http1::handshake(io).await.expect("HTTP/1.1 handshake");
            let driver = tokio::spawn(async move {
                let _ = conn.await;
            });
            (Sender::H1(sender), driver)
        };
        Self {
            sender,
            authority: format!("localhost:{}", addr.port()),
            tls_version,
            alpn,
            peer_cert,
            driver,
        }
    }

    /// A request builder for `path` on this server.
    pub fn request(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        let builder = Request::builder().method(method);
        match self.sender {
            Sender::H1(_) => builder.uri(path).header("host", &self.authority),
            Sender::H2(_) => builder.uri(format!("https://{}{path}", self.authority)),
        }
    }

    /// `POST path` with a JSON body.
    pub async fn post(&mut self, path: &str, body: impl Into<Bytes>) -> Reply {
        let request = self
            .request(Method::POST, path)
            .header("content-type", "application/json")
            .body(full(body))
            .expect("request");
        self.send(request).await.expect("response")
    }

    /// Sends a request and reads the whole response.
    pub async fn send(&mut self, request: Request<ReqBody>) -> Result<Reply, hyper::Error> {
        bounded("request", async {
            let response = match &mut self.sender {
                Sender::H1(sender) => {
                    sender.ready().await?;
                    sender.send_request(request).await?
                }
                Sender::H2(sender) => {
                    sender.ready().await?;
                    sender.send_request(request).await?
                }
            };
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok(Reply {
                status: parts.status,
                version: parts.version,
                headers: parts.headers,
                body,
            })
        })
        .await
    }

    /// An HTTP/2 sender to run concurrent streams on this connection.
    pub fn h2_sender(&self) -> http2::SendRequest<ReqBody> {
        match &self.sender {
            Sender::H2(sender) => sender.clone(),
            Sender::H1(_) => panic!("not an HTTP/2 connection"),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// `GET path` on the plain-HTTP admin port, on a fresh connection.
pub async fn admin_get(addr: SocketAddr, path: &str) -> Reply {
    bounded("admin request", async {
        let tcp = TcpStream::connect(addr).await.expect("admin connect");
        let (mut sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .expect("admin handshake");
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = Request::get(path)
            .header("host", addr.to_string())
            .body(full(Bytes::new()))
            .expect("request");
        let response = sender.send_request(request).await.expect("admin response");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("admin body").to_bytes();
        driver.abort();
        Reply {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        }
    })
    .await
}

/// The value of one sample line in Prometheus text, e.g.
/// `forcebacklog_injections_total` or
/// `forcebacklog_admission_requests_total{endpoint="mutate",result="malformed"}`.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// Starts a request whose body arrives in two halves; returns the sender
/// of the second half and the task that yields the response.
pub async fn half_sent(
    mut client: Client,
    body: Vec<u8>,
) -> (
    http_body_util::channel::Sender<Bytes>,
    tokio::task::JoinHandle<Result<Reply, hyper::Error>>,
) {
    let (mut tx, channel) = http_body_util::channel::Channel::<Bytes>::new(2);
    let request = client
        .request(Method::POST, "/mutate")
        .header("content-type", "application/json")
        .header("content-length", body.len().to_string())
        .body(channel.map_err(|never| match never {}).boxed())
        .expect("request");
    let half = body.len() / 2;
    tx.send(Frame::data(Bytes::copy_from_slice(&body[..half])))
        .await
        .expect("first half");
    let task = tokio::spawn(async move { client.send(request).await });
    (tx, task)
}
