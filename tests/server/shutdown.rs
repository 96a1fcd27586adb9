//! Graceful shutdown: not ready at once, new connections refused,
//! in-flight requests finish, bounded by the grace period.

use crate::support;

use hyper::Method;
use hyper::body::{Bytes, Frame};
use serde_json::json;
use std::time::{Duration, Instant};
use support::client::{Alpn, Client, admin_get, bounded, half_sent};
use support::fixtures::{pod, review};
use support::pki::{Ca, write_plain};
use support::{TestServer, quick};

#[tokio::test]
async fn in_flight_requests_finish_new_connections_are_refused_and_run_returns() {
    let ca = Ca::new();
    let issued = ca.issue("shutdown", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_plain(dir.path(), &issued);
    let mut server = TestServer::start(cert, key, quick()).await;

    let body = review(
        "uid-in-flight",
        "CREATE",
        &pod(json!({ "forcebacklog/value": "234" })),
    );
    // What this body gets when nothing is shutting down.
    let mut reference = Client::connect(server.addr, &ca.cert_der(), Alpn::H2).await;
    let expected = reference.post("/mutate", body.clone()).await;
    drop(reference);

    let mut in_flight = Vec::new();
    for alpn in [Alpn::H2, Alpn::Http11] {
        let client = Client::connect(server.addr, &ca.cert_der(), alpn).await;
        in_flight.push(half_sent(client, body.clone()).await);
    }
    // An idle keep-alive connection must not hold the shutdown up.
    let mut idle = Client::connect(server.addr, &ca.cert_der(), Alpn::Http11).await;
    idle.post("/mutate", b"{}".to_vec()).await;
    // Let the server start reading both bodies.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let stopping = Instant::now();
    server.stop();
    bounded("readyz 503", async {
        while admin_get(server.admin, "/readyz").await.status != 503 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(admin_get(server.admin, "/healthz").await.status, 200);
    bounded("connections refused", async {
        loop {
            match tokio::net::TcpStream::connect(server.addr).await {
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => break,
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await;

    // The in-flight requests complete, with the answer they would have had.
    let half = body.len() / 2;
    for (mut tx, task) in in_flight {
        tx.send(Frame::data(Bytes::copy_from_slice(&body[half..])))
            .await
            .expect("second half");
        drop(tx);
        let reply = bounded("in-flight response", task)
            .await
            .expect("join")
            .expect("in-flight request answered");
        assert_eq!(reply.status, expected.status, "{}", reply.text());
        assert_eq!(reply.body, expected.body);
    }

    let result = server.join().await;
    let took = stopping.elapsed();
    assert!(result.is_ok(), "{result:?}");
    eprintln!("shutdown with 2 in-flight requests took {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Everything is closed once run() returned.
    assert!(tokio::net::TcpStream::connect(server.admin).await.is_err());
    let request = idle
        .request(Method::POST, "/mutate")
        .body(support::client::full(b"{}".to_vec()))
        .expect("request");
    assert!(idle.send(request).await.is_err());
}

#[tokio::test]
async fn the_grace_period_bounds_a_request_that_never_finishes() {
    let ca = Ca::new();
    let issued = ca.issue("grace", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_plain(dir.path(), &issued);
    let tuning = forcebacklog::server::Tuning {
        shutdown_grace: Duration::from_millis(500),
        request_timeout: Duration::from_secs(60),
        ..quick()
    };
    let mut server = TestServer::start(cert, key, tuning).await;
    let client = Client::connect(server.addr, &ca.cert_der(), Alpn::H2).await;
    let (tx, task) = half_sent(client, vec![b' '; 1000]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let stopping = Instant::now();
    server.stop();
    let result = server.join().await;
    let took = stopping.elapsed();
    assert!(result.is_ok(), "{result:?}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let answer = bounded("client sees the end", task).await.expect("join");
    assert!(answer.is_err(), "{answer:?}");
    drop(tx);
}
