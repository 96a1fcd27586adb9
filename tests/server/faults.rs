//! Faults and hostile input against `forcebacklog serve` over real TLS:
//! each gets a bounded, clear answer, and the server stays healthy (a
//! normal review is answered and `/healthz` is 200 afterwards).
//!
//! What `tests/server/http.rs` already proves is not repeated here
//! (docs/reliability.md lists both): partial headers, a stalled body (408),
//! 413 announced and streamed, malformed JSON, no `request`, TLS 1.1,
//! handshake timeout. This file adds headers trickled byte by byte (HTTP/1.1
//! and HTTP/2 CONTINUATION frames), a wrong `apiVersion`/`kind` or a body
//! that is not an object, a Pod with 1,000 containers, JSON nested 100,000
//! deep, a flood of connections that never handshake, and plain HTTP on
//! the TLS port.

use crate::support;

use base64::Engine;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::client::{Alpn, Client, TLS_ANY, admin_get, bounded, client_config, tls_connect};
use support::fixtures::{pod, review};
use support::{Setup, quick, setup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

impl Setup {
    async fn client(&self, alpn: Alpn) -> Client {
        Client::connect(self.server.addr, &self.ca.cert_der(), alpn).await
    }

    /// A normal review on a fresh connection is injected, and `/healthz` is 200.
    async fn assert_healthy(&self) {
        for alpn in [Alpn::H2, Alpn::Http11] {
            let mut client = self.client(alpn).await;
            let body = review(
                "uid-ok",
                "CREATE",
                &pod(json!({"forcebacklog/value": "234"})),
            );
            let reply = client.post("/mutate", body).await;
            assert_eq!(reply.status, 200, "{alpn:?}: {}", reply.text());
            assert_eq!(reply.json()["response"]["uid"], "uid-ok");
            assert!(reply.json()["response"]["patch"].is_string());
        }
        assert_eq!(admin_get(self.server.admin, "/healthz").await.status, 200);
    }
}

/// The `error` of a 400 answer.
fn error_400(reply: &support::client::Reply, what: &str) -> String {
    assert_eq!(reply.status, 400, "{what}: {}", reply.text());
    assert_eq!(reply.content_type(), "application/json", "{what}");
    reply.json()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no error string: {}", reply.text()))
        .to_owned()
}

#[tokio::test]
async fn http1_headers_trickled_byte_by_byte_are_cut_off_at_the_header_deadline() {
    let tuning = forcebacklog::server::Tuning {
        header_read_timeout: Duration::from_millis(400),
        ..quick()
    };
    let s = setup(tuning).await;
    let config = client_config(&s.ca.cert_der(), TLS_ANY, Alpn::Http11);
    let tls = tls_connect(s.server.addr, config).await.expect("tls");
    let (mut read, mut write) = tokio::io::split(tls);
    let started = Instant::now();
    // One header byte every 50 ms: the connection makes progress all the
    // time, so only a deadline on the whole header block stops it.
    let trickle = tokio::spawn(async move {
        let head = b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
        if write.write_all(head).await.is_err() {
            return 0usize;
        }
        let mut sent = 0;
        while started.elapsed() < Duration::from_secs(10) {
            if write.write_all(b"a").await.is_err() || write.flush().await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sent
    });
    let mut answer = Vec::new();
    let _ = bounded("server closes", read.read_to_end(&mut answer)).await;
    let closed_after = started.elapsed();
    trickle.abort();
    assert!(
        closed_after >= Duration::from_millis(350) && closed_after < Duration::from_secs(3),
        "closed after {closed_after:?}"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.contains("200 OK"), "{answer}");
    s.assert_healthy().await;
}

/// HTTP/2 frames by hand: hyper's client cannot send a header block slowly.
mod h2_frames {
    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const GOAWAY: u8 = 0x7;
    pub const CONTINUATION: u8 = 0x9;
    pub const ACK: u8 = 0x1;

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// HPACK: `:method POST`, `:scheme https`, `:path /mutate`,
    /// `:authority localhost`, then a literal `x-slow` header whose value
    /// (`len` bytes of `a`) the caller sends afterwards.
    pub fn header_block_start(len: usize) -> Vec<u8> {
        let mut b = vec![0x83, 0x87, 0x04, 7];
        b.extend_from_slice(b"/mutate");
        b.extend_from_slice(&[0x01, 9]);
        b.extend_from_slice(b"localhost");
        b.extend_from_slice(&[0x00, 6]);
        b.extend_from_slice(b"x-slow");
        // HPACK integer, 7-bit prefix, no Huffman.
        if len < 127 {
            b.push(len as u8);
        } else {
            b.push(0x7f);
            let mut rest = len - 127;
            while rest >= 128 {
                b.push((rest % 128) as u8 | 0x80);
                rest /= 128;
            }
            b.push(rest as u8);
        }
        b
    }
}

/// A raw HTTP/2 connection: the write half, and a task that collects what
/// the server sends until it ends the stream (HEADERS or RST_STREAM) or
/// the connection (GOAWAY with its error code, or EOF).
async fn raw_h2(
    s: &Setup,
) -> (
    tokio::io::WriteHalf<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    tokio::task::JoinHandle<Vec<String>>,
) {
    use h2_frames::*;
    let config = client_config(&s.ca.cert_der(), TLS_ANY, Alpn::H2);
    let tls = tls_connect(s.server.addr, config).await.expect("tls");
    let (mut read, mut write) = tokio::io::split(tls);
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16384];
        loop {
            match read.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    seen.push("eof".to_owned());
                    return seen;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            while buf.len() >= 9 {
                let len =
                    (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
                if buf.len() < 9 + len {
                    break;
                }
                let kind = buf[3];
                seen.push(match kind {
                    GOAWAY => format!(
                        "goaway {}",
                        u32::from_be_bytes([buf[13], buf[14], buf[15], buf[16]])
                    ),
                    RST_STREAM => "rst_stream".to_owned(),
                    HEADERS => "headers".to_owned(),
                    other => format!("frame {other}"),
                });
                buf.drain(..9 + len);
                if kind == GOAWAY || kind == RST_STREAM || kind == HEADERS {
                    return seen;
                }
            }
        }
    });
    write.write_all(PREFACE).await.expect("preface");
    write
        .write_all(&frame(SETTINGS, 0, 0, &[]))
        .await
        .expect("settings");
    write
        .write_all(&frame(SETTINGS, ACK, 0, &[]))
        .await
        .expect("settings ack");
    (write, reader)
}

/// GOAWAY's ENHANCE_YOUR_CALM (RFC 9113 §7).
const ENHANCE_YOUR_CALM: u32 = 0xb;

#[tokio::test]
async fn http2_headers_trickled_in_continuation_frames_are_cut_off_and_hold_up_no_one() {
    use h2_frames::*;
    let s = setup(quick()).await;
    let (mut write, reader) = raw_h2(&s).await;
    write
        .write_all(&frame(HEADERS, 0, 1, &header_block_start(100)))
        .await
        .expect("headers");
    // One-byte CONTINUATION frames every 50 ms, while another client is served.
    let mut other = s.client(Alpn::H2).await;
    let started = Instant::now();
    while !reader.is_finished() && started.elapsed() < Duration::from_secs(5) {
        if write
            .write_all(&frame(CONTINUATION, 0, 1, b"a"))
            .await
            .is_err()
        {
            break;
        }
        let asked = Instant::now();
        let body = review(
            "uid-other",
            "CREATE",
            &pod(json!({"forcebacklog/value": "7"})),
        );
        let reply = other.post("/mutate", body).await;
        assert_eq!(reply.status, 200);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{:?}",
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The server's HTTP/2 layer allows a header block 5 CONTINUATION frames
    // (enough for its 64 KiB header-list limit), then ends the connection.
    let seen = bounded("the server ends the trickle", reader)
        .await
        .expect("reader");
    assert_eq!(
        seen.last().map(String::as_str),
        Some(format!("goaway {ENHANCE_YOUR_CALM}").as_str()),
        "{seen:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    s.assert_healthy().await;
}

#[tokio::test]
async fn an_http2_header_block_over_64_kib_is_refused() {
    use h2_frames::*;
    let s = setup(quick()).await;
    let (mut write, reader) = raw_h2(&s).await;
    // 5 frames of 16 KiB: within the frame count, over the size limit.
    let value_len = 5 * 16 * 1024 - 64;
    let mut block = header_block_start(value_len);
    block.resize(block.len() + value_len, b'a');
    let mut chunks = block.chunks(16 * 1024).peekable();
    let mut kind = HEADERS;
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            0x4 | 0x1
        } else {
            0
        }; // END_HEADERS | END_STREAM
        if write
            .write_all(&frame(kind, flags, 1, chunk))
            .await
            .is_err()
        {
            break;
        }
        kind = CONTINUATION;
    }
    let seen = bounded("the server refuses the header block", reader)
        .await
        .expect("reader");
    eprintln!("server frames: {seen:?}");
    let end = seen.last().cloned().unwrap_or_default();
    // A 431 answer (HEADERS), a stream reset or a GOAWAY: never a review.
    assert!(
        end == "headers" || end == "rst_stream" || end.starts_with("goaway"),
        "{seen:?}"
    );
    s.assert_healthy().await;
}

/// A client that sends one HTTP/2 frame a byte at a time never completes a
/// frame, so it cannot answer the server's keep-alive PING: hyper closes
/// the connection one ping interval + one ping timeout after the last
/// complete frame (30 s + 20 s by default; 1 s + 1 s here).
#[tokio::test]
async fn http2_bytes_trickled_inside_one_frame_are_cut_off_by_the_keep_alive_ping() {
    use h2_frames::*;
    let tuning = forcebacklog::server::Tuning {
        h2_keep_alive_interval: Duration::from_secs(1),
        h2_keep_alive_timeout: Duration::from_secs(1),
        ..quick()
    };
    let s = setup(tuning).await;
    let (mut write, reader) = raw_h2(&s).await;
    let started = Instant::now();
    let headers = frame(HEADERS, 0x4, 1, &vec![0u8; 16 * 1024]);
    for byte in headers {
        if reader.is_finished() || write.write_all(&[byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(started.elapsed() < Duration::from_secs(20), "never cut off");
    }
    let seen = tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("cut off within 20 s")
        .expect("reader");
    let waited = started.elapsed();
    eprintln!("cut off after {waited:?}: {seen:?}");
    assert!(
        waited > Duration::from_millis(1500) && waited < Duration::from_secs(10),
        "{waited:?} {seen:?}"
    );
    s.assert_healthy().await;
}

#[tokio::test]
async fn a_wrong_api_version_or_kind_or_a_non_object_gets_400_naming_it() {
    let s = setup(quick()).await;
    let good: Value = serde_json::from_slice(&review(
        "uid-1",
        "CREATE",
        &pod(json!({"forcebacklog/value": "234"})),
    ))
    .expect("json");
    for alpn in [Alpn::H2, Alpn::Http11] {
        let mut client = s.client(alpn).await;
        for path in ["/mutate", "/mutate/namespace", "/validate"] {
            let mut v1beta1 = good.clone();
            v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
            let error = error_400(&client.post(path, v1beta1.to_string()).await, path);
            assert!(error.contains("\"admission.k8s.io/v1beta1\""), "{error}");
            assert!(
                error.contains("expected apiVersion admission.k8s.io/v1"),
                "{error}"
            );

            let mut pod_kind = good.clone();
            pod_kind["kind"] = json!("Pod");
            let error = error_400(&client.post(path, pod_kind.to_string()).await, path);
            assert!(error.contains("kind \"Pod\""), "{error}");

            let mut no_version = good.clone();
            no_version
                .as_object_mut()
                .expect("object")
                .remove("apiVersion");
            let error = error_400(&client.post(path, no_version.to_string()).await, path);
            assert!(error.contains("apiVersion \"\""), "{error}");

            for body in ["\"AdmissionReview\"", "42", "null", "true", "[{}]"] {
                let error = error_400(&client.post(path, body).await, body);
                assert!(
                    error.starts_with("request body is not a valid AdmissionReview"),
                    "{body}: {error}"
                );
            }
        }
    }
    s.assert_healthy().await;
}

/// A Pod with `n` containers, each with a little env and a mount.
fn big_pod(n: usize, annotations: Value) -> Value {
    let containers: Vec<Value> = (0..n)
        .map(|i| {
            json!({"name": format!("c{i}"), "image": "busybox:1.37",
                   "env": [{"name": "I", "value": i.to_string()}],
                   "volumeMounts": [{"name": "data", "mountPath": "/data"}]})
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "big", "namespace": "shop", "annotations": annotations},
           "spec": {"containers": containers, "volumes": [{"name": "data", "emptyDir": {}}]}})
}

#[tokio::test]
async fn a_pod_with_1000_containers_is_answered_in_bounded_time_and_its_patch_applies() {
    let s = setup(quick()).await;
    let pod = big_pod(1000, json!({"forcebacklog/value": "234"}));
    let body = review("uid-big", "CREATE", &pod);
    assert!(body.len() > 100_000, "{}", body.len());
    for alpn in [Alpn::H2, Alpn::Http11] {
        let mut client = s.client(alpn).await;
        let started = Instant::now();
        let reply = client.post("/mutate", body.clone()).await;
        let took = started.elapsed();
        assert_eq!(reply.status, 200, "{}", reply.text());
        // Generous for an unoptimised test build; the release build takes
        // about 3 ms (bench/README.md, "Webhook", scale).
        assert!(took < Duration::from_secs(5), "{took:?}");
        let response = &reply.json()["response"];
        assert_eq!(response["uid"], "uid-big");
        let patch = base64::prelude::BASE64_STANDARD
            .decode(response["patch"].as_str().expect("a patch"))
            .expect("base64");
        let patch: json_patch::Patch = serde_json::from_slice(&patch).expect("JSON Patch");
        let mut mutated = pod.clone();
        json_patch::patch(&mut mutated, &patch).expect("applies");
        let typed: k8s_openapi::api::core::v1::Pod =
            serde_json::from_value(mutated.clone()).expect("a Pod");
        let spec = typed.spec.expect("spec");
        assert_eq!(spec.containers.len(), 1000);
        assert!(spec.containers.iter().all(|c| {
            c.env
                .as_ref()
                .is_some_and(|env| env.iter().any(|e| e.name == "BACKLOG"))
        }));
    }

    // 1,000 names in forcebacklog/containers, one of them unknown: skipped
    // with a warning of bounded size, not one that lists every name.
    let names: Vec<String> = (0..999)
        .map(|i| format!("c{i}"))
        .chain(["nope".to_owned()])
        .collect();
    let pod = big_pod(
        1000,
        json!({"forcebacklog/value": "234", "forcebacklog/containers": names.join(",")}),
    );
    let mut client = s.client(Alpn::H2).await;
    let started = Instant::now();
    let reply = client
        .post("/mutate", review("uid-names", "CREATE", &pod))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let response = &reply.json()["response"];
    assert_eq!(response["allowed"], true);
    let warnings = response["warnings"].as_array().expect("warnings");
    let text = warnings
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("\"nope\""), "{text}");
    assert!(text.len() < 4096, "{} bytes of warnings", text.len());
    s.assert_healthy().await;
}

/// `depth` nested arrays around `inner`.
fn nested(depth: usize, inner: &str) -> String {
    let mut s = String::with_capacity(depth * 2 + inner.len());
    s.extend(std::iter::repeat_n('[', depth));
    s.push_str(inner);
    s.extend(std::iter::repeat_n(']', depth));
    s
}

#[tokio::test]
async fn json_nested_100000_deep_is_answered_without_recursion() {
    let s = setup(quick()).await;
    const DEPTH: usize = 100_000;
    let deep = nested(DEPTH, "1");
    let mut client = s.client(Alpn::H2).await;
    let started = Instant::now();

    // The whole body: not an AdmissionReview.
    for path in ["/mutate", "/validate"] {
        let error = error_400(&client.post(path, deep.clone()).await, path);
        assert!(
            error.starts_with("request body is not a valid AdmissionReview"),
            "{error}"
        );
    }
    // Unclosed.
    let error = error_400(&client.post("/mutate", "[".repeat(DEPTH)).await, "unclosed");
    assert!(
        error.starts_with("request body is not a valid AdmissionReview"),
        "{error}"
    );

    // Inside a field the webhook does not read: skipped without recursing,
    // the pod is injected and the field is left alone.
    let review_text = |object: Value, deep_at: &str| {
        String::from_utf8(review("uid-deep", "CREATE", &object))
            .expect("utf-8")
            .replace(&format!("\"{deep_at}\""), &deep)
    };
    let mut p = pod(json!({"forcebacklog/value": "234"}));
    p["spec"]["x-vendor-extension"] = json!("DEEP");
    let reply = client.post("/mutate", review_text(p, "DEEP")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.json()["response"]["patch"].is_string());

    // As our annotation's value: not a string, so the pod is admitted
    // unchanged with a warning naming the key.
    let p = pod(json!({"forcebacklog/value": "DEEP"}));
    let reply = client.post("/mutate", review_text(p, "DEEP")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let response = &reply.json()["response"];
    assert_eq!(response["allowed"], true);
    assert!(
        response["warnings"][0]
            .as_str()
            .unwrap_or_default()
            .contains("forcebacklog/value"),
        "{response}"
    );

    // In a typed field (the containers list): a clear 400 naming the object.
    let mut p = pod(json!({"forcebacklog/value": "234"}));
    p["spec"]["containers"] = json!("DEEP");
    let error = error_400(
        &client.post("/mutate", review_text(p, "DEEP")).await,
        "containers",
    );
    assert!(
        error.starts_with("request.object is not a valid Pod"),
        "{error}"
    );

    // As the old object of an update on /validate: answered.
    let deployment = support::fixtures::deployment(json!({"forcebacklog/value": "abc"}));
    let body = String::from_utf8(review("uid-deep", "UPDATE", &deployment))
        .expect("utf-8")
        .replace("\"oldObject\":null", &format!("\"oldObject\":{deep}"));
    let reply = client.post("/validate", body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["response"]["allowed"], false);

    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    s.assert_healthy().await;
}

#[tokio::test]
async fn connections_that_never_handshake_do_not_delay_a_real_client_and_are_closed() {
    let tuning = forcebacklog::server::Tuning {
        setup_timeout: Duration::from_millis(1500),
        ..quick()
    };
    let s = setup(tuning).await;
    let addr: SocketAddr = s.server.addr;
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    // Half of them send a partial ClientHello and stop.
    for tcp in idle.iter_mut().step_by(2) {
        tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .await
            .expect("partial hello");
    }
    let started = Instant::now();
    s.assert_healthy().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Every one of them is closed by the handshake deadline.
    let closing = Instant::now();
    for mut tcp in idle {
        let mut rest = Vec::new();
        let _ = bounded("closed", tcp.read_to_end(&mut rest)).await;
    }
    assert!(
        closing.elapsed() < Duration::from_secs(5),
        "{:?}",
        closing.elapsed()
    );
    s.assert_healthy().await;
}

#[tokio::test]
async fn plain_http_on_the_tls_port_is_closed_at_once() {
    let s = setup(quick()).await;
    let mut tcp = tokio::net::TcpStream::connect(s.server.addr)
        .await
        .expect("connect");
    tcp.write_all(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .await
        .expect("write");
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = bounded("closed", tcp.read_to_end(&mut answer)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Nothing but (at most) a TLS alert record: never an HTTP answer.
    assert!(answer.is_empty() || answer[0] == 0x15, "{answer:?}");
    s.assert_healthy().await;
}
