//! An open-loop load generator at a fixed request rate, with latency
//! percentiles: what h2load cannot do (its `--rps` sends a burst every
//! 10 ms and reports no percentiles).
//!
//! ```text
//! loadgen URL BODY.json CA.pem h1|h2 RATE SECONDS
//! ```
//!
//! Every 1/RATE s (tokio interval, missed ticks caught up) one POST of
//! BODY starts, whether or not earlier ones have finished: over HTTP/2 as
//! a new stream on one connection, over HTTP/1.1 on an idle connection of
//! a pool of 8 (a request waits for one when all are busy, and that wait
//! counts). A request's latency runs from its tick to the last byte of the
//! response. Requests still open 5 s after the last tick count as timeouts.
//! The output is one line of `key=value` figures (milliseconds).

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const USAGE: &str = "usage: loadgen URL BODY.json CA.pem h1|h2 RATE SECONDS";
const H1_CONNECTIONS: usize = 8;

struct Target {
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{url}: only https:// URLs"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| format!("{url}: needs host:port"))?;
    Ok(Target {
        host: host.to_owned(),
        port: port.parse().map_err(|e| format!("{url}: port: {e}"))?,
        path: if path.is_empty() { "/" } else { path }.to_owned(),
    })
}

async fn tls(
    target: &Target,
    ca: &CertificateDer<'static>,
    alpn: &[u8],
) -> Result<TlsStream<TcpStream>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).map_err(|e| format!("CA: {e}"))?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let name = ServerName::try_from(target.host.clone()).map_err(|e| e.to_string())?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))
}

enum Senders {
    H2(http2::SendRequest<Full<Bytes>>),
    H1 {
        idle: Mutex<Vec<http1::SendRequest<Full<Bytes>>>>,
        permits: Semaphore,
    },
}

impl Senders {
    async fn send(&self, request: Request<Full<Bytes>>) -> Result<(), String> {
        match self {
            Senders::H2(sender) => {
                let mut sender = sender.clone();
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| e.to_string())?;
                finish(response).await
            }
            Senders::H1 { idle, permits } => {
                let _permit = permits.acquire().await.map_err(|e| e.to_string())?;
                let mut sender = idle
                    .lock()
                    .map_err(|_| "pool poisoned".to_owned())?
                    .pop()
                    .ok_or("no idle connection under a permit")?;
                let result = match sender.send_request(request).await {
                    Ok(response) => finish(response).await,
                    Err(e) => Err(e.to_string()),
                };
                if let Ok(mut idle) = idle.lock() {
                    idle.push(sender);
                }
                result
            }
        }
    }
}

async fn finish(response: hyper::Response<hyper::body::Incoming>) -> Result<(), String> {
    let status = response.status();
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

async fn connect(
    target: &Target,
    ca: &CertificateDer<'static>,
    h2: bool,
) -> Result<Senders, String> {
    if h2 {
        let io = TokioIo::new(tls(target, ca, b"h2").await?);
        let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
        tokio::spawn(conn);
        return Ok(Senders::H2(sender));
    }
    let mut idle = Vec::new();
    for _ in 0..H1_CONNECTIONS {
        let io = TokioIo::new(tls(target, ca, b"http/1.1").await?);
        let (sender, conn) = http1::handshake(io)
            .await
            .map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
        tokio::spawn(conn);
        idle.push(sender);
    }
    Ok(Senders::H1 {
        idle: Mutex::new(idle),
        permits: Semaphore::new(H1_CONNECTIONS),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn run(args: &[String]) -> Result<String, String> {
    let [url, body, ca, proto, rate, seconds] = args else {
        return Err(USAGE.to_owned());
    };
    let target = parse_url(url)?;
    let body = Bytes::from(std::fs::read(body).map_err(|e| format!("{body}: {e}"))?);
    let ca = CertificateDer::from_pem_file(ca).map_err(|e| format!("{ca}: {e}"))?;
    let h2 = match proto.as_str() {
        "h2" => true,
        "h1" => false,
        other => return Err(format!("protocol {other:?}: h1 or h2")),
    };
    let rate: u32 = rate
        .parse()
        .ok()
        .filter(|r| (1..=100_000).contains(r))
        .ok_or("RATE: 1..=100000")?;
    let seconds: u32 = seconds
        .parse()
        .ok()
        .filter(|s| (1..=120).contains(s))
        .ok_or("SECONDS: 1..=120")?;
    let senders = Arc::new(connect(&target, &ca, h2).await?);
    let authority = format!("{}:{}", target.host, target.port);
    let total = rate as usize * seconds as usize;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<Duration, String>>();

    let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    for _ in 0..total {
        ticker.tick().await;
        let tick = Instant::now();
        let mut request = Request::post(target.path.as_str())
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .map_err(|e| e.to_string())?;
        if !h2 {
            request.headers_mut().insert(
                hyper::header::HOST,
                authority.parse().map_err(|_| "host header")?,
            );
        } else {
            *request.uri_mut() = format!("https://{authority}{}", target.path)
                .parse()
                .map_err(|_| "uri")?;
        }
        let (senders, tx) = (Arc::clone(&senders), tx.clone());
        tokio::spawn(async move {
            let result = senders.send(request).await.map(|()| tick.elapsed());
            let _ = tx.send(result);
        });
    }
    let sending = started.elapsed();
    drop(tx);
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0usize;
    let mut first_error = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some(result)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        match result {
            Ok(latency) => latencies.push(latency),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let timeouts = total - latencies.len() - errors;
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let mut line = format!(
        "sent={total} rate={:.0} ok={} errors={errors} timeouts={timeouts} p50={:.3} p90={:.3} p99={:.3} p999={:.3} max={:.3}",
        total as f64 / sending.as_secs_f64(),
        latencies.len(),
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(at(0.999)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    if let Some(e) = first_error {
        line.push_str(&format!(" first_error={e:?}"));
    }
    Ok(line)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
