//! `baseline` and `baseline-mimalloc` (bin/): the yardstick for the
//! webhook's CPU per review: an HTTPS server that
//! reads each POST body completely and answers with a fixed body, and does
//! nothing else (no parsing, no routing beyond one path, no metrics).
//!
//! ```text
//! baseline --stack hyper|hyper-nagle|hyper-review|axum-server ADDR CERT.pem KEY.pem BODY.json
//! ```
//!
//! Both stacks use the webhook's crates and TLS settings: rustls 0.23 with
//! the ring provider, TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`, a
//! multi-threaded tokio runtime (one worker per CPU it may run on), axum 0.8
//! for the handler.
//!
//! - `hyper`: the webhook's own transport: accept with TCP_NODELAY,
//!   tokio-rustls, hyper-util's connection builder pinned to the protocol
//!   ALPN chose. What the webhook costs above this is the cost of the
//!   review itself (parsing, the mutation core, the response, metrics).
//! - `hyper-nagle`: the same without TCP_NODELAY, to show what Nagle's
//!   algorithm saves in CPU (fewer, fuller segments) and costs in latency.
//! - `hyper-review`: the `hyper` stack whose handler answers with
//!   `forcebacklog::review::handle` (BODY.json unused): the webhook's
//!   transport and core with none of its server plumbing (timeouts, body
//!   limit, metrics, logging, graceful shutdown), to show what that costs.
//! - `axum-server`: axum-server 0.9 with default settings, the usual way to
//!   put axum behind rustls (no TCP_NODELAY).
//!
//! BODY.json is what the webhook answers for the benchmark's review, so
//! both servers send the same bytes back.

use axum::Router;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const USAGE: &str = "usage: baseline --stack hyper|hyper-nagle|hyper-review|axum-server ADDR CERT.pem KEY.pem BODY.json";

#[derive(Clone, Copy)]
enum Stack {
    Hyper { nodelay: bool, review: bool },
    AxumServer,
}

struct Args {
    stack: Stack,
    addr: SocketAddr,
    tls: ServerConfig,
    body: Bytes,
}

fn parse_args() -> Result<Args, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [flag, stack, addr, cert, key, body] = args.as_slice() else {
        return Err(USAGE.to_owned());
    };
    if flag != "--stack" {
        return Err(USAGE.to_owned());
    }
    let stack = match stack.as_str() {
        "hyper" => Stack::Hyper {
            nodelay: true,
            review: false,
        },
        "hyper-nagle" => Stack::Hyper {
            nodelay: false,
            review: false,
        },
        "hyper-review" => Stack::Hyper {
            nodelay: true,
            review: true,
        },
        "axum-server" => Stack::AxumServer,
        other => return Err(format!("unknown stack {other:?}; {USAGE}")),
    };
    let addr = addr
        .parse()
        .map_err(|e| format!("ADDR {addr:?} is not host:port: {e}"))?;
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;
    let mut tls =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("certificate/key: {e}"))?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let body = std::fs::read(body).map_err(|e| format!("{body}: {e}"))?;
    Ok(Args {
        stack,
        addr,
        tls,
        body: Bytes::from(body),
    })
}

fn review_router() -> Router {
    let config = Arc::new(forcebacklog::patch::Injector::default());
    Router::new().route(
        "/mutate",
        post(move |request: Bytes| {
            let config = Arc::clone(&config);
            async move {
                let endpoint = forcebacklog::review::Endpoint::Mutate {
                    namespace_opt_in: false,
                };
                match forcebacklog::review::handle(&request, endpoint, &config) {
                    Ok(reviewed) => {
                        ([(CONTENT_TYPE, "application/json")], reviewed.body).into_response()
                    }
                    Err(e) => (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
                }
            }
        }),
    )
}

fn router(fixed: Bytes) -> Router {
    Router::new().route(
        "/mutate",
        post(move |request: Bytes| {
            let fixed = fixed.clone();
            async move {
                // The body is read in full (the extractor), then dropped.
                drop(request);
                ([(CONTENT_TYPE, "application/json")], fixed).into_response()
            }
        }),
    )
}

async fn serve_hyper(listener: TcpListener, tls: ServerConfig, app: Router, nodelay: bool) {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let base = Builder::new(TokioExecutor::new());
    let h1 = Arc::new(base.clone().http1_only());
    let h2 = Arc::new(base.http2_only());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        if nodelay {
            let _ = stream.set_nodelay(true);
        }
        let (acceptor, app, h1, h2) = (acceptor.clone(), app.clone(), h1.clone(), h2.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let builder = match tls.get_ref().1.alpn_protocol() {
                Some(b"h2") => h2,
                _ => h1,
            };
            let _ = builder
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                .await;
        });
    }
}

/// The whole program; `bin/baseline.rs` and `bin/baseline_mimalloc.rs`
/// (the same with mimalloc, the webhook's allocator) call it.
pub fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("baseline: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("baseline: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), String> = runtime.block_on(async move {
        let app = router(args.body);
        match args.stack {
            Stack::Hyper { nodelay, review } => {
                let app = if review { review_router() } else { app };
                let listener = TcpListener::bind(args.addr)
                    .await
                    .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
                eprintln!("baseline (hyper): listening on {}", args.addr);
                serve_hyper(listener, args.tls, app, nodelay).await;
                Ok(())
            }
            Stack::AxumServer => {
                let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(args.tls));
                eprintln!("baseline (axum-server): listening on {}", args.addr);
                axum_server::bind_rustls(args.addr, config)
                    .serve(app.into_make_service())
                    .await
                    .map_err(|e| format!("cannot serve on {}: {e}", args.addr))
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("baseline: {message}");
            ExitCode::FAILURE
        }
    }
}
