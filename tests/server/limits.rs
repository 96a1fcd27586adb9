//! Hostile and faulty clients against `forcebacklog serve` over real TLS:
//! connections that never get to a request are closed at one set-up
//! deadline, the connection limit refuses the rest while the admin port
//! keeps answering, per-connection failures are counted and summarised
//! instead of logged one by one, and shutdown is neither held up by them
//! nor cut short by the shutdown delay.

use crate::support;

use forcebacklog::server::Tuning;
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::client::{
    Alpn, Client, TLS_ANY, admin_get, bounded, client_config, half_sent, sample, tls_connect,
};
use support::fixtures::{pod, review};
use support::logs::capture;
use support::{Setup, quick, setup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty HTTP/2 SETTINGS frame.
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

fn failures(metrics: &str, reason: &str) -> f64 {
    let series = format!(r#"forcebacklog_connection_failures_total{{reason="{reason}"}}"#);
    sample(metrics, &series).unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

/// Reads until the server closes; how long that took from `since`.
async fn closed_after<R: AsyncReadExt + Unpin>(mut stream: R, since: Instant) -> Duration {
    let mut sink = Vec::new();
    let _ = bounded("server closes", stream.read_to_end(&mut sink)).await;
    since.elapsed()
}

/// A review injected over a fresh connection of each protocol.
async fn assert_served(s: &Setup) {
    for alpn in [Alpn::H2, Alpn::Http11] {
        let mut client = Client::connect(s.server.addr, &s.ca.cert_der(), alpn).await;
        let body = review(
            "uid-ok",
            "CREATE",
            &pod(json!({"forcebacklog/value": "234"})),
        );
        let reply = client.post("/mutate", body).await;
        assert_eq!(reply.status, 200, "{alpn:?}: {}", reply.text());
        assert!(reply.json()["response"]["patch"].is_string());
    }
}

/// `/healthz`, `/readyz` and `/metrics` each answer within `limit`.
async fn assert_admin_answers(admin: SocketAddr, limit: Duration) {
    for path in ["/healthz", "/readyz", "/metrics"] {
        let asked = Instant::now();
        let reply = admin_get(admin, path).await;
        let took = asked.elapsed();
        assert_eq!(reply.status, 200, "{path}");
        assert!(took < limit, "{path} took {took:?}");
    }
}

async fn wait_for_open(s: &Setup, open: f64) {
    bounded("connections open", async {
        loop {
            let metrics = s.server.metrics().await;
            if sample(&metrics, "forcebacklog_connections_open") == Some(open) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn connections_silent_after_tls_are_closed_at_the_setup_deadline() {
    let (_guard, logs) = capture("forcebacklog=debug");
    let tuning = Tuning {
        setup_timeout: Duration::from_millis(600),
        failure_log_interval: Duration::from_secs(60),
        ..quick()
    };
    let s = setup(tuning).await;
    let h2 = client_config(&s.ca.cert_der(), TLS_ANY, Alpn::H2);
    let h1 = client_config(&s.ca.cert_der(), TLS_ANY, Alpn::Http11);

    let started = Instant::now();
    // `h2` negotiated, then not a byte: HTTP/2's keep-alive never starts.
    let silent_h2 = tls_connect(s.server.addr, h2.clone()).await.expect("tls");
    // The preface and SETTINGS, then no request.
    let mut preface_only = tls_connect(s.server.addr, h2).await.expect("tls");
    preface_only.write_all(PREFACE).await.expect("preface");
    preface_only.write_all(SETTINGS).await.expect("settings");
    preface_only.flush().await.expect("flush");
    // HTTP/1.1 negotiated, then no request line.
    let silent_h1 = tls_connect(s.server.addr, h1).await.expect("tls");
    // A real client asks at once and is not cut off at the deadline.
    let mut real = Client::connect(s.server.addr, &s.ca.cert_der(), Alpn::H2).await;
    assert_eq!(real.post("/mutate", b"{}".to_vec()).await.status, 400);

    let closing = [
        tokio::spawn(closed_after(silent_h2, started)),
        tokio::spawn(closed_after(preface_only, started)),
        tokio::spawn(closed_after(silent_h1, started)),
    ];
    for (what, task) in ["silent h2", "preface only", "silent http/1.1"]
        .into_iter()
        .zip(closing)
    {
        let after = task.await.expect("join");
        eprintln!("{what}: closed {after:?} after connecting (set-up deadline 600 ms)");
        assert!(
            after >= Duration::from_millis(550) && after < Duration::from_secs(3),
            "{what}: closed after {after:?}"
        );
    }
    let metrics = s.server.metrics().await;
    assert_eq!(failures(&metrics, "setup_timeout"), 3.0, "{metrics}");
    assert_eq!(sample(&metrics, "forcebacklog_connections_open"), Some(1.0));

    tokio::time::sleep(Duration::from_millis(700)).await;
    let reply = real.post("/mutate", b"{}".to_vec()).await;
    assert_eq!(
        reply.status, 400,
        "the real client's connection is still served"
    );

    // One debug line per closed connection, no warning.
    let debug = logs.at("DEBUG");
    let closed_lines = debug
        .iter()
        .filter(|l| l.contains("no request within 600 ms"))
        .count();
    assert_eq!(closed_lines, 3, "{debug:#?}");
    let warnings: Vec<String> = logs
        .at("WARN")
        .into_iter()
        .filter(|l| !l.contains("bad admission request"))
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_served(&s).await;
}

#[tokio::test]
async fn past_the_connection_limit_new_connections_are_closed_and_the_admin_port_answers() {
    let (_guard, logs) = capture("forcebacklog=info");
    let tuning = Tuning {
        max_connections: 10,
        setup_timeout: Duration::from_secs(30),
        refusal_log_interval: Duration::from_millis(200),
        ..quick()
    };
    let s = setup(tuning).await;
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(TcpStream::connect(s.server.addr).await.expect("connect"));
    }
    wait_for_open(&s, 10.0).await;

    let refusing = Instant::now();
    let mut refused: u32 = 0;
    while refusing.elapsed() < Duration::from_secs(1) {
        let extra = TcpStream::connect(s.server.addr).await.expect("connect");
        let after = closed_after(extra, Instant::now()).await;
        assert!(after < Duration::from_secs(1), "refused after {after:?}");
        refused += 1;
        if refused.is_multiple_of(10) {
            assert_admin_answers(s.server.admin, Duration::from_millis(500)).await;
        }
    }
    let elapsed = refusing.elapsed();
    let metrics = s.server.metrics().await;
    assert_eq!(
        sample(&metrics, "forcebacklog_connections_limit"),
        Some(10.0)
    );
    assert_eq!(
        sample(&metrics, "forcebacklog_connections_open"),
        Some(10.0)
    );
    assert_eq!(
        sample(&metrics, "forcebacklog_connections_refused_total"),
        Some(f64::from(refused))
    );
    // Let the last interval's line out, then count.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines: Vec<String> = logs
        .at("WARN")
        .into_iter()
        .filter(|l| l.contains("at the connection limit"))
        .collect();
    let allowed = (elapsed + Duration::from_millis(300)).as_millis() / 200 + 1;
    eprintln!(
        "{refused} refused connections in {elapsed:?}: {} warning line(s)",
        lines.len()
    );
    assert!(
        !lines.is_empty() && lines.len() as u128 <= allowed,
        "{lines:#?}"
    );
    let reported: u64 = lines
        .iter()
        .map(|l| {
            let (_, after) = l.split_once("refused ").expect("count");
            after
                .split(' ')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .expect("number")
        })
        .sum();
    assert_eq!(reported, u64::from(refused), "{lines:#?}");

    // Slots free up as connections end; new clients are served again.
    held.truncate(5);
    wait_for_open(&s, 5.0).await;
    assert_served(&s).await;
}

#[tokio::test]
async fn two_thousand_bad_handshakes_are_counted_and_summed_up_in_few_warnings() {
    let (_guard, logs) = capture("forcebacklog=debug");
    let tuning = Tuning {
        failure_log_interval: Duration::from_millis(500),
        ..quick()
    };
    let s = setup(tuning).await;
    let addr = s.server.addr;
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for worker in 0..20 {
        clients.spawn(async move {
            for i in 0..100 {
                let mut tcp = TcpStream::connect(addr).await.expect("connect");
                if (worker + i) % 2 == 0 {
                    // Plain HTTP on the TLS port.
                    let _ = tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
                } else {
                    // A TLS record header announcing a handshake, then garbage.
                    let _ = tcp
                        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x04, 0xff, 0xff, 0xff, 0xff])
                        .await;
                }
                let mut sink = Vec::new();
                let _ = tcp.read_to_end(&mut sink).await;
            }
        });
    }
    bounded("2,000 bad handshakes", clients.join_all()).await;
    bounded("all counted", async {
        while failures(&s.server.metrics().await, "tls_error") < 2000.0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let elapsed = started.elapsed();
    assert_eq!(failures(&s.server.metrics().await, "tls_error"), 2000.0);

    let warnings = logs.at("WARN");
    let allowed = elapsed.as_millis() / 500 + 1;
    eprintln!(
        "2,000 bad handshakes in {elapsed:?}: {} warning line(s), {} debug line(s)",
        warnings.len(),
        logs.at("DEBUG").len()
    );
    assert!(
        !warnings.is_empty() && warnings.len() as u128 <= allowed,
        "{warnings:#?}"
    );
    // The summaries add up to every failure.
    let total: u64 = warnings
        .iter()
        .map(|l| {
            let (_, tail) = l.split_once("WARN ").expect("level");
            let message = tail.split_once(": ").map_or(tail, |(_, m)| m);
            message
                .split(' ')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no count in {l}"))
        })
        .sum();
    assert_eq!(total, 2000, "{warnings:#?}");
    assert!(
        warnings.iter().all(|l| l.contains("tls_error")),
        "{warnings:#?}"
    );
    let each = logs
        .at("DEBUG")
        .iter()
        .filter(|l| l.contains("TLS handshake failed"))
        .count();
    assert_eq!(each, 2000);
    assert_served(&s).await;
}

#[tokio::test]
async fn connections_still_in_set_up_do_not_hold_the_shutdown() {
    let tuning = Tuning {
        setup_timeout: Duration::from_secs(30),
        ..quick()
    };
    let mut s = setup(tuning).await;
    let addr = s.server.addr;
    let h2 = client_config(&s.ca.cert_der(), TLS_ANY, Alpn::H2);
    let mut silent_tcp = Vec::new();
    let mut partial_hello = Vec::new();
    let mut silent_h2 = Vec::new();
    for _ in 0..20 {
        silent_tcp.push(TcpStream::connect(addr).await.expect("connect"));
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .await
            .expect("partial hello");
        partial_hello.push(tcp);
        silent_h2.push(tls_connect(addr, h2.clone()).await.expect("tls"));
    }
    // An idle HTTP/2 client that has been served: GOAWAY, then closed.
    let mut idle = Client::connect(addr, &s.ca.cert_der(), Alpn::H2).await;
    assert_eq!(idle.post("/mutate", b"{}".to_vec()).await.status, 400);
    wait_for_open(&s, 61.0).await;

    let stopping = Instant::now();
    s.server.stop();
    let result = s.server.join().await;
    let took = stopping.elapsed();
    assert!(result.is_ok(), "{result:?}");
    eprintln!("shutdown with 60 connections in set-up and 1 idle: {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    for tcp in silent_tcp.into_iter().chain(partial_hello) {
        closed_after(tcp, stopping).await;
    }
    for tls in silent_h2 {
        closed_after(tls, stopping).await;
    }
}

#[tokio::test]
async fn the_shutdown_delay_keeps_serving_while_not_ready_then_drains() {
    let tuning = Tuning {
        shutdown_delay: Duration::from_millis(800),
        ..quick()
    };
    let mut s = setup(tuning).await;
    let ca = s.ca.cert_der();
    let body = review(
        "uid-delay",
        "CREATE",
        &pod(json!({"forcebacklog/value": "234"})),
    );
    let mut kept = Client::connect(s.server.addr, &ca, Alpn::H2).await;
    assert_eq!(kept.post("/mutate", body.clone()).await.status, 200);

    let stopping = Instant::now();
    s.server.stop();
    bounded("readyz 503", async {
        while admin_get(s.server.admin, "/readyz").await.status != 503 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let not_ready = stopping.elapsed();
    assert!(not_ready < Duration::from_millis(300), "{not_ready:?}");
    assert_eq!(admin_get(s.server.admin, "/healthz").await.status, 200);

    // Within the delay: the open connection and new ones are served.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(kept.post("/mutate", body.clone()).await.status, 200);
    for alpn in [Alpn::H2, Alpn::Http11] {
        let mut fresh = Client::connect(s.server.addr, &ca, alpn).await;
        assert_eq!(
            fresh.post("/mutate", body.clone()).await.status,
            200,
            "{alpn:?}"
        );
    }
    // A request still in flight when the delay ends is finished.
    let late = Client::connect(s.server.addr, &ca, Alpn::H2).await;
    let (mut tx, in_flight) = half_sent(late, body.clone()).await;
    assert!(stopping.elapsed() < Duration::from_millis(800));

    bounded("connections refused after the delay", async {
        loop {
            match TcpStream::connect(s.server.addr).await {
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => break,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await;
    let refused_from = stopping.elapsed();
    assert!(
        refused_from >= Duration::from_millis(780),
        "{refused_from:?}"
    );
    tx.send(hyper::body::Frame::data(
        hyper::body::Bytes::copy_from_slice(&body[body.len() / 2..]),
    ))
    .await
    .expect("second half");
    drop(tx);
    let reply = bounded("in-flight answer", in_flight)
        .await
        .expect("join")
        .expect("answered after the delay");
    assert_eq!(reply.status, 200);
    let result = s.server.join().await;
    let took = stopping.elapsed();
    assert!(result.is_ok(), "{result:?}");
    eprintln!(
        "shutdown delay 800 ms: not ready after {not_ready:?}, refusing after {refused_from:?}, returned after {took:?}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn the_grace_warning_counts_only_the_connections_still_open() {
    let (_guard, logs) = capture("forcebacklog=info");
    let tuning = Tuning {
        shutdown_grace: Duration::from_millis(400),
        request_timeout: Duration::from_secs(60),
        ..quick()
    };
    let mut s = setup(tuning).await;
    let ca = s.ca.cert_der();
    // Served and gone, served and idle, and one request that never ends.
    for _ in 0..8 {
        let mut gone = Client::connect(s.server.addr, &ca, Alpn::H2).await;
        gone.post("/mutate", b"{}".to_vec()).await;
    }
    let mut idle = Vec::new();
    for alpn in [Alpn::H2, Alpn::Http11, Alpn::H2] {
        let mut client = Client::connect(s.server.addr, &ca, alpn).await;
        client.post("/mutate", b"{}".to_vec()).await;
        idle.push(client);
    }
    let stuck = Client::connect(s.server.addr, &ca, Alpn::H2).await;
    let (_tx, _task) = half_sent(stuck, vec![b' '; 1000]).await;
    wait_for_open(&s, 4.0).await;

    s.server.stop();
    assert!(s.server.join().await.is_ok());
    let grace: Vec<String> = logs
        .at("WARN")
        .into_iter()
        .filter(|l| l.contains("grace period"))
        .collect();
    assert_eq!(grace.len(), 1, "{grace:#?}");
    assert!(grace[0].contains("connections=1"), "{grace:#?}");
    let draining: Vec<String> = logs
        .at("INFO")
        .into_iter()
        .filter(|l| l.contains("stopped accepting"))
        .collect();
    assert!(draining[0].contains("connections=4"), "{draining:#?}");
}

#[tokio::test]
async fn ordinary_ends_of_served_connections_are_not_failures() {
    let (_guard, logs) = capture("forcebacklog=debug");
    let tuning = Tuning {
        header_read_timeout: Duration::from_millis(300),
        failure_log_interval: Duration::from_millis(200),
        ..quick()
    };
    let s = setup(tuning).await;
    // HTTP/1.1 keep-alive left idle past the header timeout (closed by the
    // server), HTTP/2 closed by the client.
    let mut idle = Client::connect(s.server.addr, &s.ca.cert_der(), Alpn::Http11).await;
    idle.post("/mutate", b"{}".to_vec()).await;
    let mut gone = Client::connect(s.server.addr, &s.ca.cert_der(), Alpn::H2).await;
    gone.post("/mutate", b"{}".to_vec()).await;
    drop(gone);
    wait_for_open(&s, 0.0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics = s.server.metrics().await;
    for reason in [
        "tls_error",
        "tls_closed",
        "setup_timeout",
        "shutdown",
        "http_error",
    ] {
        assert_eq!(failures(&metrics, reason), 0.0, "{reason}: {metrics}");
    }
    let summaries: Vec<String> = logs
        .at("WARN")
        .into_iter()
        .filter(|l| l.contains("failed"))
        .collect();
    assert!(summaries.is_empty(), "{summaries:#?}");
}
