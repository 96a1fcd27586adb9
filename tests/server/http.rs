//! `forcebacklog serve` over real TLS: the webhook endpoints, bad input,
//! limits, protocols and TLS versions, metrics.

use crate::support;

use base64::Engine;
use http_body_util::BodyExt;
use hyper::Method;
use hyper::body::{Bytes, Frame};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::client::{
    self, Alpn, Client, TLS_ANY, TLS12_ONLY, admin_get, bounded, client_config, full, sample,
    tls_connect,
};
use support::fixtures::{deployment, pod, review};
use support::{quick, setup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn annotated_pod() -> Value {
    pod(json!({ "forcebacklog/value": "234" }))
}

#[tokio::test]
async fn mutate_echoes_the_uid_and_sends_a_base64_json_patch_over_h2_and_http1() {
    let s = setup(quick()).await;
    for alpn in [Alpn::H2, Alpn::Http11] {
        let mut client = Client::connect(s.server.addr, &s.ca.cert_der(), alpn).await;
        let uid = format!("705ab4f5-6393-11e8-b7cc-42010a800002-{alpn:?}");
        let reply = client
            .post("/mutate", review(&uid, "CREATE", &annotated_pod()))
            .await;
        assert_eq!(reply.status, 200, "{alpn:?}: {}", reply.text());
        assert_eq!(reply.content_type(), "application/json");
        let body = reply.json();
        assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(body["kind"], "AdmissionReview");
        let response = &body["response"];
        assert_eq!(response["uid"], uid.as_str());
        assert_eq!(response["allowed"], true);
        assert_eq!(response["patchType"], "JSONPatch");
        // On the wire the patch is a base64 STRING, as the API requires,
        // not the array of numbers a naive serialisation would give.
        let patch = response["patch"]
            .as_str()
            .unwrap_or_else(|| panic!("patch is not a string: {}", response["patch"]));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .expect("patch is base64");
        let ops: Value = serde_json::from_slice(&decoded).expect("patch is JSON");
        let ops = ops.as_array().expect("patch is a JSON array");
        assert!(!ops.is_empty());
        assert!(
            ops.iter()
                .all(|op| op["op"].is_string() && op["path"].is_string()),
            "{ops:?}"
        );
        let text = String::from_utf8_lossy(&decoded);
        assert!(text.contains("forcebacklog-install"), "{text}");
        assert!(text.contains("LD_PRELOAD"), "{text}");
    }
    let metrics = s.server.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"forcebacklog_admission_requests_total{endpoint="mutate",result="injected"}"#
        ),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "forcebacklog_injections_total"), Some(2.0));
}

#[tokio::test]
async fn a_pod_without_the_annotation_is_allowed_unchanged() {
    let s = setup(quick()).await;
    let mut client = Client::connect(s.server.addr, &s.ca.cert_der(), Alpn::Both).await;
    let reply = client
        .post("/mutate", review("uid-plain", "CREATE", &pod(json!({}))))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let response = &reply.json()["response"];
    assert_eq!(response["uid"], "uid-plain");
    assert_eq!(response["allowed"], true);
    assert!(
        response.get("patch").is_none_or(Value::is_null),
        "{response}"
    );
}

#[tokio::test]
async fn a_pod_with_an_invalid_value_is_admitted_with_a_warning_and_counted_as_skipped() {
    let s = setup(quick()).await;
    let mut client = Client::connect(s.server.addr, &s.ca.cert_der(), Alpn::Both).await;
    let bad = pod(json!({ "forcebacklog/value": "abc" }));
    let reply = client
        .post("/mutate", review("uid-bad", "CREATE", &bad))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let response = &reply.json()["response"];
    assert_eq!(response["uid"], "uid-bad");
    assert_eq!(response["allowed"], true);
    let warnings = response["warnings"].as_array().cloned().unwrap_or_default();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("forcebacklog/value"))),
        "{response}"
    );
    let metrics = s.server.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"forcebacklog_admission_requests_total{endpoint="mutate",result="skipped"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    let skips: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("forcebacklog_skips_total{reason="))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(skips, 1.0, "{metrics}");
}

#[tokio::test]
async fn the_namespace_entry_injects_a_pod_without_annotations() {
    let s = setup(quick()).await;
    let mut client = Client::connect(s.server.addr, &s.ca.cert_der(), Alpn::Both).await;
    let reply = client
        .post(
            "/mutate/namespace",
            review("uid-ns", "CREATE", &pod(json!({}))),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let response = &reply.json()["response"];
    assert_eq!(response["uid"], "uid-ns");
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    assert!(response["patch"].is_string(), "{response}");
}

#[tokio::test]
async fn validate_denies_a_workload_with_an_invalid_value_and_names_it() {
    let s = setup(quick()).await;
    let mut client = Client::connect(s.server.addr, &s.ca.cert_der(), Alpn::Both).await;
    let bad = deployment(json!({ "forcebacklog/value": "70000" }));
    let reply = client
        .post("/validate", review("uid-deny", "CREATE", &bad))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let response = &reply.json()["response"];
    assert_eq!(response["uid"], "uid-deny");
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("forcebacklog/value") && message.contains("70000"),
        "{response}"
    );

    let good = deployment(json!({ "forcebacklog/value": "1024" }));
    let reply = client
        .post("/validate", review("uid-allow", "CREATE", &good))
        .await;
    assert_eq!(reply.json()["response"]["allowed"], true);

    let metrics = s.server.metrics().await;
    assert_eq!(sample(&metrics, "forcebacklog_denials_total"), Some(1.0));
}

#[tokio::test]
async fn malformed_bodies_get_400_with_a_json_error_and_the_server_stays_healthy() {
    let s = setup(quick()).await;
    for alpn in [Alpn::H2, Alpn::Http11] {
        let mut client = Client::connect(s.server.addr, &s.ca.cert_der(), alpn).await;
        for body in [
            &b"{not json"[..],
            b"",
            b"[]",
            b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}",
            &[0xff, 0xfe, 0x00],
        ] {
            let reply = client.post("/mutate", body.to_vec()).await;
            assert_eq!(reply.status, 400, "{alpn:?} {body:?}: {}", reply.text());
            assert_eq!(reply.content_type(), "application/json");
            let error = reply.json()["error"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(error.contains("AdmissionReview"), "{error}");
        }
        // The same connection still works.
        let reply = client.post("/validate", b"{".to_vec()).await;
        assert_eq!(reply.status, 400);
    }
    assert_eq!(admin_get(s.server.admin, "/healthz").await.status, 200);
    let metrics = s.server.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"forcebacklog_admission_requests_total{endpoint="mutate",result="malformed"}"#
        ),
        Some(10.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"forcebacklog_admission_requests_total{endpoint="validate",result="malformed"}"#
        ),
        Some(2.0)
    );
}

fn assert_too_large(reply: &client::Reply, what: &str) {
    assert_eq!(reply.status, 413, "{what}: {}", reply.text());
    assert_eq!(reply.content_type(), "application/json");
    let error = reply.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("3145728"), "{what}: {error}");
}

#[tokio::test]
async fn bodies_over_3_mib_get_413_whether_announced_or_streamed() {
    let s = setup(quick()).await;
    let limit = forcebacklog::server::MAX_BODY_BYTES;
    assert_eq!(limit, 3 * 1024 * 1024);

    // Exactly at the limit is read (and judged by the core: not a review).
    let mut client = Client::connect(s.server.addr, &s.ca.cert_der(), Alpn::H2).await;
    let reply = client.post("/mutate", vec![b' '; limit]).await;
    assert_eq!(reply.status, 400, "{}", reply.text());

    for alpn in [Alpn::H2, Alpn::Http11] {
        // Announced with Content-Length: refused before reading.
        let mut client = Client::connect(s.server.addr, &s.ca.cert_der(), alpn).await;
        let reply = client.post("/mutate", vec![b' '; limit + 1]).await;
        assert_too_large(&reply, &format!("{alpn:?} with content-length"));

        // Streamed without a length: refused once the limit is crossed.
        let mut client = Client::connect(s.server.addr, &s.ca.cert_der(), alpn).await;
        let (mut tx, body) = http_body_util::channel::Channel::<Bytes>::new(4);
        let request = client
            .request(Method::POST, "/mutate")
            .body(body.map_err(|never| match never {}).boxed())
            .expect("request");
        let feeder = tokio::spawn(async move {
            let chunk = Bytes::from(vec![b' '; 256 * 1024]);
            for _ in 0..16 {
                if tx.send(Frame::data(chunk.clone())).await.is_err() {
                    break;
                }
            }
        });
        let reply = client.send(request).await.expect("response");
        assert_too_large(&reply, &format!("{alpn:?} streamed"));
        feeder.abort();
    }
    assert_eq!(admin_get(s.server.admin, "/healthz").await.status, 200);
    let metrics = s.server.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"forcebacklog_admission_requests_total{endpoint="mutate",result="too_large"}"#
        ),
        Some(4.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn unknown_paths_get_404_and_other_methods_405() {
    let s = setup(quick()).await;
    for alpn in [Alpn::H2, Alpn::Http11] {
        let mut client = Client::connect(s.server.addr, &s.ca.cert_der(), alpn).await;
        let reply = client.post("/mutate/other", b"{}".to_vec()).await;
        assert_eq!(reply.status, 404);
        assert!(reply.json()["error"].as_str().is_some());
        let reply = client.post("/", b"{}".to_vec()).await;
        assert_eq!(reply.status, 404);

        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let request = client
                .request(method.clone(), "/mutate")
                .body(full(Bytes::new()))
                .expect("request");
            let reply = client.send(request).await.expect("response");
            assert_eq!(reply.status, 405, "{alpn:?} {method}");
            assert_eq!(
                reply.headers.get("allow").and_then(|v| v.to_str().ok()),
                Some("POST")
            );
            assert!(reply.json()["error"].as_str().is_some());
        }
    }
}

#[tokio::test]
async fn alpn_picks_http2_or_http1_and_tls_is_1_2_or_newer() {
    let s = setup(quick()).await;
    let ca = s.ca.cert_der();
    let cases = [
        (Alpn::Both, Some(&b"h2"[..]), hyper::Version::HTTP_2),
        (Alpn::H2, Some(b"h2"), hyper::Version::HTTP_2),
        (Alpn::Http11, Some(b"http/1.1"), hyper::Version::HTTP_11),
        (Alpn::None, None, hyper::Version::HTTP_11),
    ];
    for (alpn, negotiated, version) in cases {
        let mut client = Client::connect(s.server.addr, &ca, alpn).await;
        assert_eq!(client.alpn.as_deref(), negotiated, "{alpn:?}");
        assert_eq!(client.tls_version, rustls::ProtocolVersion::TLSv1_3);
        let reply = client.post("/mutate", b"{}".to_vec()).await;
        assert_eq!(reply.version, version, "{alpn:?}");
        assert_eq!(reply.status, 400);
    }

    // A client that speaks only TLS 1.2 is served.
    let mut client =
        Client::connect_with(s.server.addr, client_config(&ca, TLS12_ONLY, Alpn::Both)).await;
    assert_eq!(client.tls_version, rustls::ProtocolVersion::TLSv1_2);
    let reply = client.post("/validate", b"{}".to_vec()).await;
    assert_eq!(reply.status, 400);
    let _ = TLS_ANY;
}

/// A TLS 1.1 ClientHello, byte for byte: legacy version 3.2, no
/// supported_versions extension, two CBC suites TLS 1.1 servers offer;
/// with `sig_algs`, a signature_algorithms extension too.
fn tls11_client_hello(sig_algs: bool) -> Vec<u8> {
    let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // cipher suites
    body.extend_from_slice(&[0x01, 0x00]); // compression: null
    if sig_algs {
        // extensions (8 bytes): signature_algorithms = [rsa_pkcs1_sha256]
        body.extend_from_slice(&[0x00, 0x08, 0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x01]);
    }
    let mut handshake = vec![0x01, 0x00, 0x00, body.len() as u8]; // ClientHello
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn a_tls_1_1_client_is_refused_with_a_fatal_alert() {
    let s = setup(quick()).await;
    for (sig_algs, description) in [(true, 70u8), (false, 40)] {
        let mut tcp = tokio::net::TcpStream::connect(s.server.addr)
            .await
            .expect("connect");
        tcp.write_all(&tls11_client_hello(sig_algs))
            .await
            .expect("hello");
        let mut answer = Vec::new();
        bounded("alert", tcp.read_to_end(&mut answer))
            .await
            .expect("read");
        // No ServerHello: the only record is an alert (21), level fatal (2):
        // protocol_version (70), or handshake_failure (40) for a hello
        // without the signature_algorithms extension TLS 1.2 requires.
        assert_eq!(answer.len(), 7, "{answer:?}");
        assert_eq!(answer[0], 0x15, "not an alert record: {answer:?}");
        assert_eq!(&answer[5..7], &[2, description], "{answer:?}");
    }
    assert_eq!(admin_get(s.server.admin, "/healthz").await.status, 200);
}

#[tokio::test]
async fn metrics_list_every_series_and_admin_answers_health() {
    let s = setup(quick()).await;
    let mut client = Client::connect(s.server.addr, &s.ca.cert_der(), Alpn::H2).await;
    client.post("/mutate", b"{".to_vec()).await;
    client.post("/mutate/namespace", b"{".to_vec()).await;

    let healthz = admin_get(s.server.admin, "/healthz").await;
    assert_eq!(healthz.status, 200);
    let readyz = admin_get(s.server.admin, "/readyz").await;
    assert_eq!(readyz.status, 200);

    let reply = admin_get(s.server.admin, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .content_type()
            .starts_with("application/openmetrics-text"),
        "{}",
        reply.content_type()
    );
    let text = reply.text();
    for (series, value) in [
        (
            r#"forcebacklog_admission_requests_total{endpoint="mutate",result="malformed"}"#,
            1.0,
        ),
        (
            r#"forcebacklog_admission_requests_total{endpoint="mutate_namespace",result="malformed"}"#,
            1.0,
        ),
        (
            r#"forcebacklog_admission_requests_total{endpoint="validate",result="allowed"}"#,
            0.0,
        ),
        (
            r#"forcebacklog_admission_duration_seconds_count{endpoint="mutate"}"#,
            1.0,
        ),
        (
            r#"forcebacklog_admission_duration_seconds_count{endpoint="validate"}"#,
            0.0,
        ),
        ("forcebacklog_injections_total", 0.0),
        ("forcebacklog_denials_total", 0.0),
        (r#"forcebacklog_tls_reloads_total{result="success"}"#, 0.0),
        (r#"forcebacklog_tls_reloads_total{result="error"}"#, 0.0),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    // Skip reasons are chosen by the core; the family appears with the first skip.
    assert!(text.contains("# TYPE forcebacklog_admission_duration_seconds histogram"));

    let reply = admin_get(s.server.admin, "/nope").await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn one_http2_connection_carries_64_concurrent_streams() {
    let s = setup(quick()).await;
    let client = Client::connect(s.server.addr, &s.ca.cert_der(), Alpn::H2).await;
    let body = Bytes::from(review("uid-many", "CREATE", &annotated_pod()));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let mut sender = client.h2_sender();
        let request = client
            .request(Method::POST, "/mutate")
            .body(full(body.clone()))
            .expect("request");
        tasks.spawn(async move {
            sender.ready().await.expect("ready");
            let response = sender.send_request(request).await.expect("response");
            let status = response.status();
            response.into_body().collect().await.expect("body");
            status
        });
    }
    let statuses = bounded("64 streams", tasks.join_all()).await;
    eprintln!(
        "64 concurrent HTTP/2 streams on one connection: {:?}",
        started.elapsed()
    );
    assert_eq!(statuses.len(), 64);
    // Every stream got the same answer (400 until the core lands, 200 after).
    assert!(statuses.iter().all(|s| *s == statuses[0]), "{statuses:?}");
}

#[tokio::test]
async fn slow_headers_are_cut_off_by_the_header_timeout() {
    let tuning = forcebacklog::server::Tuning {
        header_read_timeout: Duration::from_millis(300),
        ..quick()
    };
    let s = setup(tuning).await;
    let config = client_config(&s.ca.cert_der(), TLS_ANY, Alpn::Http11);
    let mut tls = tls_connect(s.server.addr, config).await.expect("tls");
    tls.write_all(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("partial headers");
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = bounded("server closes", tls.read_to_end(&mut rest)).await;
    let waited = started.elapsed();
    // Closed by the 300 ms timeout: not at once, not much later.
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert!(
        !String::from_utf8_lossy(&rest).contains("200 OK"),
        "{rest:?}"
    );
    assert_eq!(admin_get(s.server.admin, "/healthz").await.status, 200);
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408() {
    let tuning = forcebacklog::server::Tuning {
        request_timeout: Duration::from_millis(300),
        ..quick()
    };
    let s = setup(tuning).await;
    for alpn in [Alpn::H2, Alpn::Http11] {
        let mut client = Client::connect(s.server.addr, &s.ca.cert_der(), alpn).await;
        let (mut tx, body) = http_body_util::channel::Channel::<Bytes>::new(1);
        let request = client
            .request(Method::POST, "/validate")
            .header("content-length", "1000")
            .body(body.map_err(|never| match never {}).boxed())
            .expect("request");
        tx.send(Frame::data(Bytes::from_static(b"{\"apiVersion\":")))
            .await
            .expect("first bytes");
        let reply = client.send(request).await.expect("response");
        assert_eq!(reply.status, 408, "{alpn:?}: {}", reply.text());
        assert!(reply.json()["error"].as_str().is_some());
        drop(tx);
    }
    let metrics = s.server.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"forcebacklog_admission_requests_total{endpoint="validate",result="read_failed"}"#
        ),
        Some(2.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_connection_that_never_handshakes_is_closed() {
    let tuning = forcebacklog::server::Tuning {
        setup_timeout: Duration::from_millis(300),
        ..quick()
    };
    let s = setup(tuning).await;
    let mut tcp = tokio::net::TcpStream::connect(s.server.addr)
        .await
        .expect("connect");
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = bounded("server closes", tcp.read_to_end(&mut rest)).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert!(rest.is_empty(), "{rest:?}");
}
