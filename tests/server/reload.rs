//! Certificate reload: the kubelet's Secret-volume swap, files rewritten in
//! place, broken pairs kept out, rotation under load, start-up errors.

use crate::support;

use forcebacklog::server::{ServeConfig, Tuning};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::client::{Alpn, Client, TLS_ANY, bounded, client_config, full, sample, tls_connect};
use support::pki::{Ca, Issued, SecretVolume, write_plain};
use support::{TestServer, quick};

/// The leaf certificate a NEW connection is given.
async fn served_cert(server: &TestServer, ca: &Ca) -> Vec<u8> {
    let config = client_config(&ca.cert_der(), TLS_ANY, Alpn::Both);
    let tls = tls_connect(server.addr, config).await.expect("tls connect");
    let (_, session) = tls.get_ref();
    session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("peer certificate")
        .to_vec()
}

/// Waits until new connections are given `issued`.
async fn wait_for_cert(server: &TestServer, ca: &Ca, issued: &Issued) {
    bounded("new certificate served", async {
        while served_cert(server, ca).await != issued.cert_der.to_vec() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Waits until `/metrics` shows `series` at `value`.
async fn wait_for_metric(server: &TestServer, series: &str, value: f64) {
    bounded(series, async {
        loop {
            if sample(&server.metrics().await, series) == Some(value) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

const RELOAD_OK: &str = r#"forcebacklog_tls_reloads_total{result="success"}"#;
const RELOAD_ERR: &str = r#"forcebacklog_tls_reloads_total{result="error"}"#;

#[tokio::test]
async fn a_kubelet_secret_swap_reaches_new_connections_and_keeps_open_ones() {
    let ca = Ca::new();
    let first = ca.issue("webhook-first", 1001);
    let second = ca.issue("webhook-second", 1002);
    let mut volume = SecretVolume::new(&first);
    let server = TestServer::start(volume.cert(), volume.key(), quick()).await;

    let mut h1 = Client::connect(server.addr, &ca.cert_der(), Alpn::Http11).await;
    let mut h2 = Client::connect(server.addr, &ca.cert_der(), Alpn::H2).await;
    assert_eq!(h1.peer_cert, first.cert_der);
    let before = h1.post("/mutate", b"{}".to_vec()).await.status;
    h2.post("/mutate", b"{}".to_vec()).await;

    volume.swap(&second);
    wait_for_cert(&server, &ca, &second).await;
    wait_for_metric(&server, RELOAD_OK, 1.0).await;

    // Connections opened before the swap keep working, on their old session.
    assert_eq!(h1.post("/mutate", b"{}".to_vec()).await.status, before);
    assert_eq!(h2.post("/mutate", b"{}".to_vec()).await.status, before);
    assert_eq!(h1.peer_cert, first.cert_der);

    // A certificate whose key is not the one beside it: kept out.
    let third = ca.issue("webhook-third", 1003);
    volume.update(third.cert_pem.as_bytes(), second.key_pem.as_bytes());
    wait_for_metric(&server, RELOAD_ERR, 1.0).await;
    assert_eq!(served_cert(&server, &ca).await, second.cert_der.to_vec());

    // Garbage: kept out too.
    volume.update(b"not a certificate", b"not a key");
    wait_for_metric(&server, RELOAD_ERR, 2.0).await;
    assert_eq!(served_cert(&server, &ca).await, second.cert_der.to_vec());

    // A good pair after the broken ones is taken.
    volume.swap(&third);
    wait_for_cert(&server, &ca, &third).await;
    wait_for_metric(&server, RELOAD_OK, 2.0).await;
    assert_eq!(h2.post("/validate", b"{}".to_vec()).await.status, before);
    assert_eq!(
        support::client::admin_get(server.admin, "/readyz")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn plain_files_rewritten_in_place_are_reloaded() {
    let ca = Ca::new();
    let first = ca.issue("in-place-first", 2001);
    let second = ca.issue("in-place-second", 2002);
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_plain(dir.path(), &first);
    let server = TestServer::start(cert, key, quick()).await;
    assert_eq!(served_cert(&server, &ca).await, first.cert_der.to_vec());
    // Key first, then certificate, as a careless script would: the
    // mismatched moment in between may be seen and rejected; the final
    // pair is served.
    write_plain(dir.path(), &second);
    wait_for_cert(&server, &ca, &second).await;
}

#[tokio::test]
async fn rotation_under_continuous_load_fails_no_request() {
    let ca = Ca::new();
    let issued: Vec<Issued> = (0..4)
        .map(|i| ca.issue(&format!("rotating-{i}"), 3000 + i))
        .collect();
    let mut volume = SecretVolume::new(&issued[0]);
    let server = TestServer::start(volume.cert(), volume.key(), quick()).await;
    let addr = server.addr;
    let ca_der = ca.cert_der();

    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut load = tokio::task::JoinSet::new();
    for alpn in [Alpn::H2, Alpn::Http11] {
        let (done, served, failed, ca_der) = (
            Arc::clone(&done),
            Arc::clone(&served),
            Arc::clone(&failed),
            ca_der.clone(),
        );
        // One long-lived connection and, alongside, a fresh connection per request.
        load.spawn(async move {
            let mut kept = Client::connect(addr, &ca_der, alpn).await;
            let config = client_config(&ca_der, TLS_ANY, alpn);
            while !done.load(Ordering::Relaxed) {
                let mut fresh = Client::connect_with(addr, Arc::clone(&config)).await;
                for client in [&mut kept, &mut fresh] {
                    let request = client
                        .request(hyper::Method::POST, "/mutate")
                        .body(full(b"{}".to_vec()))
                        .expect("request");
                    match client.send(request).await {
                        Ok(_) => served.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }
        });
    }
    for next in &issued[1..] {
        tokio::time::sleep(Duration::from_millis(250)).await;
        volume.swap(next);
        wait_for_cert(&server, &ca, next).await;
    }
    done.store(true, Ordering::Relaxed);
    bounded("load stops", load.join_all()).await;
    let (served, failed) = (
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    eprintln!("rotation under load: {served} requests served, {failed} failed, 3 rotations");
    assert_eq!(failed, 0);
    assert!(served > 20, "{served}");
    assert_eq!(sample(&server.metrics().await, RELOAD_OK), Some(3.0));
}

#[tokio::test]
async fn start_up_with_an_unusable_pair_is_an_error_naming_the_file() {
    let ca = Ca::new();
    let good = ca.issue("good", 1);
    let other = ca.issue("other", 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_plain(dir.path(), &good);
    let mismatched = dir.path().join("other.key");
    std::fs::write(&mismatched, &other.key_pem).expect("write");
    let garbage = dir.path().join("garbage.crt");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n@@@\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let missing = dir.path().join("missing.crt");

    for (cert, key, expect) in [
        (missing.clone(), key.clone(), "missing.crt"),
        (garbage.clone(), key.clone(), "garbage.crt"),
        (cert.clone(), mismatched.clone(), "other.key"),
        (cert.clone(), cert.clone(), "no usable PEM private key"),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let config = ServeConfig {
            addr: listener.local_addr().expect("addr"),
            admin_addr: admin.local_addr().expect("addr"),
            tls_cert: cert,
            tls_key: key,
            inject: Default::default(),
            tuning: Tuning::default(),
        };
        let result = bounded(
            "run fails",
            forcebacklog::server::run(listener, admin, config, std::future::pending()),
        )
        .await;
        let err = result.expect_err("an unusable pair must not serve");
        let text = forcebacklog::error_chain(&err);
        assert!(text.contains(expect), "{expect}: {text}");
    }
}

/// `run` on fresh listeners with this pair; what it returned.
async fn run_with(cert: std::path::PathBuf, key: std::path::PathBuf) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let config = ServeConfig {
        addr: listener.local_addr().expect("addr"),
        admin_addr: admin.local_addr().expect("addr"),
        tls_cert: cert,
        tls_key: key,
        inject: Default::default(),
        tuning: Tuning::default(),
    };
    let result = bounded(
        "run fails",
        forcebacklog::server::run(listener, admin, config, std::future::pending()),
    )
    .await;
    let err = result.expect_err("the pair must not be served");
    forcebacklog::error_chain(&err)
}

#[tokio::test]
async fn expired_and_not_yet_valid_pairs_are_refused_at_start_up() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let expired = ca.issue_dated("expired", 1, (2020, 1, 1), (2021, 1, 1));
    let (cert, key) = write_plain(dir.path(), &expired);
    let text = run_with(cert, key).await;
    assert!(
        text.contains("tls.crt: the certificate expired at 2021-01-01T00:00:00Z (now "),
        "{text}"
    );
    let future = ca.issue_dated("future", 2, (2099, 1, 1), (2100, 1, 1));
    let (cert, key) = write_plain(dir.path(), &future);
    let text = run_with(cert, key).await;
    assert!(
        text.contains("tls.crt: the certificate is not valid before 2099-01-01T00:00:00Z"),
        "{text}"
    );
}

const NOT_AFTER: &str = "forcebacklog_tls_certificate_not_after_seconds";

#[tokio::test]
async fn expired_and_not_yet_valid_pairs_are_kept_out_on_reload_and_the_expiry_metric_follows() {
    let ca = Ca::new();
    let first = ca.issue_dated("dated-first", 4001, (2020, 1, 1), (2040, 6, 1));
    let mut volume = SecretVolume::new(&first);
    let server = TestServer::start(volume.cert(), volume.key(), quick()).await;
    // 2040-06-01T00:00:00Z
    assert_eq!(
        sample(&server.metrics().await, NOT_AFTER),
        Some(2_222_121_600.0)
    );

    let expired = ca.issue_dated("dated-expired", 4002, (2020, 1, 1), (2021, 1, 1));
    volume.swap(&expired);
    wait_for_metric(&server, RELOAD_ERR, 1.0).await;
    assert_eq!(served_cert(&server, &ca).await, first.cert_der.to_vec());

    let future = ca.issue_dated("dated-future", 4003, (2099, 1, 1), (2100, 1, 1));
    volume.swap(&future);
    wait_for_metric(&server, RELOAD_ERR, 2.0).await;
    // Looked at again every tick, never counted twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = server.metrics().await;
    assert_eq!(sample(&metrics, RELOAD_ERR), Some(2.0));
    assert_eq!(sample(&metrics, RELOAD_OK), Some(0.0));
    assert_eq!(sample(&metrics, NOT_AFTER), Some(2_222_121_600.0));
    assert_eq!(served_cert(&server, &ca).await, first.cert_der.to_vec());

    let renewed = ca.issue_dated("dated-renewed", 4004, (2020, 1, 1), (2041, 1, 1));
    volume.swap(&renewed);
    wait_for_cert(&server, &ca, &renewed).await;
    // 2041-01-01T00:00:00Z
    wait_for_metric(&server, NOT_AFTER, 2_240_611_200.0).await;
    assert_eq!(sample(&server.metrics().await, RELOAD_OK), Some(1.0));
}

#[tokio::test]
async fn a_pair_renamed_file_by_file_is_reloaded_without_an_error() {
    let ca = Ca::new();
    let issued: Vec<Issued> = (0..4)
        .map(|i| ca.issue(&format!("renamed-{i}"), 5000 + i))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_plain(dir.path(), &issued[0]);
    let tuning = Tuning {
        reload_debounce: Duration::from_millis(600),
        ..quick()
    };
    let server = TestServer::start(cert.clone(), key.clone(), tuning).await;
    for (round, next) in issued[1..].iter().enumerate() {
        // Each file written aside, then renamed over the served one: the
        // certificate first, the key 250 ms later (the poll, every 100 ms,
        // sees the mismatched pair in between).
        let staged_cert = dir.path().join("tls.crt.new");
        let staged_key = dir.path().join("tls.key.new");
        std::fs::write(&staged_cert, &next.cert_pem).expect("write");
        std::fs::write(&staged_key, &next.key_pem).expect("write");
        std::fs::rename(&staged_cert, &cert).expect("rename cert");
        tokio::time::sleep(Duration::from_millis(250)).await;
        std::fs::rename(&staged_key, &key).expect("rename key");
        wait_for_cert(&server, &ca, next).await;
        wait_for_metric(&server, RELOAD_OK, (round + 1) as f64).await;
    }
    assert_eq!(sample(&server.metrics().await, RELOAD_ERR), Some(0.0));
}
