//! The real `forcebacklog serve` process: start-up time to ready, a request
//! over TLS, SIGTERM/SIGINT → exit 0, start-up errors → one line, exit 1.

use crate::support;

use hyper::body::{Bytes, Frame};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::client::{Alpn, Client, admin_get, bounded, half_sent};
use support::fixtures::{pod, review};
use support::pki::{Ca, write_plain};

const BIN: &str = env!("CARGO_BIN_EXE_forcebacklog");

/// The binary under test: `FORCEBACKLOG_BIN` when set (a release build,
/// for the figures), else this build's.
fn bin() -> String {
    std::env::var("FORCEBACKLOG_BIN").unwrap_or_else(|_| BIN.to_owned())
}

/// `kill -SIG pid` with procps' kill (the crate forbids unsafe code, so no
/// libc::kill here).
fn send_signal(child: &Child, signal: &str) {
    match Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
    {
        Ok(status) => assert!(status.success(), "kill -{signal} failed: {status}"),
        Err(err) => panic!("cannot run `kill` ({err}): install the Debian package procps"),
    }
}

/// Waits for the process to exit, killing it after `limit`.
fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("forcebacklog serve did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every stderr line, as it comes, on a channel.
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn field(event: &Value, name: &str) -> Option<String> {
    event["fields"][name].as_str().map(str::to_owned)
}

/// A running `forcebacklog serve` and what its "ready" line said.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: SocketAddr,
    admin: SocketAddr,
    to_ready_line: Duration,
    started: Instant,
    /// The lines up to and including "ready".
    early: Vec<String>,
}

/// Starts the binary on 127.0.0.1:0 with JSON logs and waits for "ready".
fn start(cert: &Path, key: &Path) -> Running {
    start_with(cert, key, &[], None)
}

/// [`start`] with more arguments, and under `ulimit -n nofile` when given.
fn start_with(cert: &Path, key: &Path, extra: &[&str], nofile: Option<u32>) -> Running {
    let started = Instant::now();
    let mut command = match nofile {
        Some(limit) => {
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                .arg(bin());
            sh
        }
        None => Command::new(bin()),
    };
    let mut child = command
        .arg("serve")
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .args(["--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .args(["--log-format", "json", "--log-level", "info"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn forcebacklog serve");
    let lines = stderr_lines(&mut child);
    let mut seen = Vec::new();
    // The "ready" event names both bound addresses.
    let ready = loop {
        let line = match lines.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(err) => {
                let _ = child.kill();
                panic!("no ready line ({err}); stderr so far: {seen:#?}");
            }
        };
        let event: Value = serde_json::from_str(&line)
            .unwrap_or_else(|err| panic!("log line is not JSON ({err}): {line}"));
        seen.push(line);
        if field(&event, "message").as_deref() == Some("ready") {
            break event;
        }
    };
    let to_ready_line = started.elapsed();
    assert_eq!(ready["level"], "INFO");
    let addr = field(&ready, "https")
        .expect("https")
        .parse()
        .expect("addr");
    let admin = field(&ready, "admin")
        .expect("admin")
        .parse()
        .expect("addr");
    Running {
        child,
        lines,
        addr,
        admin,
        to_ready_line,
        started,
        early: seen,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_reports_ready_and_exits_0_on_sigterm_and_sigint() {
    let ca = Ca::new();
    let issued = ca.issue("binary", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_plain(dir.path(), &issued);

    for signal in ["TERM", "INT"] {
        let Running {
            mut child,
            lines,
            addr,
            admin,
            to_ready_line,
            started,
            ..
        } = start(&cert, &key);
        let readyz = admin_get(admin, "/readyz").await;
        let to_readyz = started.elapsed();
        assert_eq!(readyz.status, 200);
        eprintln!(
            "process start → ready log line {to_ready_line:?}, → /readyz 200 {to_readyz:?} \
             (start-up target: ready in < 50 ms; this is a debug build)"
        );

        let mut client = Client::connect(addr, &ca.cert_der(), Alpn::Both).await;
        let reply = client.post("/mutate", b"{".to_vec()).await;
        assert_eq!(reply.status, 400);
        assert!(reply.json()["error"].is_string());

        // SIGTERM with an idle HTTP/2 connection still open: the server
        // sends GOAWAY, the client closes, the process exits well within
        // the 20 s grace period.
        let signalled = Instant::now();
        send_signal(&child, signal);
        let status = wait_bounded(&mut child, Duration::from_secs(25));
        let to_exit = signalled.elapsed();
        drop(client);
        assert!(status.success(), "SIG{signal}: {status}");
        assert!(
            to_exit < Duration::from_secs(5),
            "SIG{signal} took {to_exit:?}"
        );
        eprintln!("SIG{signal} → exit 0 in {to_exit:?}");
        let rest: Vec<Value> = lines
            .try_iter()
            .map(|l| serde_json::from_str(&l).expect("JSON log line"))
            .collect();
        let info: Vec<String> = rest
            .iter()
            .filter(|e| e["level"] == "INFO")
            .filter_map(|e| field(e, "message"))
            .collect();
        assert!(
            rest.iter()
                .any(|e| field(e, "signal").as_deref() == Some(&format!("SIG{signal}"))),
            "{rest:#?}"
        );
        // Lifecycle only at info: nothing per request.
        assert_eq!(
            info,
            [
                "shutting down",
                "stopped accepting; draining in-flight requests",
                "stopped"
            ],
            "{rest:#?}"
        );
        // The bad request was one warning.
        let warnings = rest.iter().filter(|e| e["level"] == "WARN").count();
        assert_eq!(warnings, 1, "{rest:#?}");
        let mut stdout = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().expect("stdout piped"), &mut stdout)
            .expect("stdout");
        assert_eq!(stdout, "", "serve writes nothing to stdout");
    }
}

#[test]
fn start_up_errors_are_one_line_and_exit_1() {
    let ca = Ca::new();
    let issued = ca.issue("binary", 1);
    let other = ca.issue("other", 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_plain(dir.path(), &issued);
    let wrong_key = dir.path().join("wrong.key");
    std::fs::write(&wrong_key, &other.key_pem).expect("write");
    let missing = dir.path().join("missing.crt");
    let expired_dir = tempfile::tempdir().expect("tempdir");
    let (expired, expired_key) = write_plain(
        expired_dir.path(),
        &ca.issue_dated("expired", 3, (2020, 1, 1), (2021, 1, 1)),
    );

    let cases = [
        (missing.as_path(), key.as_path(), None, "missing.crt"),
        (
            expired.as_path(),
            expired_key.as_path(),
            None,
            "the certificate expired at 2021-01-01T00:00:00Z",
        ),
        (cert.as_path(), wrong_key.as_path(), None, "wrong.key"),
        (
            cert.as_path(),
            key.as_path(),
            Some("forcebacklog=loud"),
            "--log-level",
        ),
    ];
    for (cert, key, level, expect) in cases {
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .args(["--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key);
        if let Some(level) = level {
            command.args(["--log-level", level]);
        }
        let output = command.output().expect("run forcebacklog serve");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{expect}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{expect}: {stderr}");
        assert!(lines[0].starts_with("forcebacklog: "), "{stderr}");
        assert!(lines[0].contains(expect), "{expect}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_waits_for_an_in_flight_request_and_a_second_signal_ends_at_once() {
    let ca = Ca::new();
    let issued = ca.issue("binary", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_plain(dir.path(), &issued);
    let body = review(
        "uid-binary",
        "CREATE",
        &pod(serde_json::json!({ "forcebacklog/value": "234" })),
    );

    // One SIGTERM: the process stays until the in-flight request is answered.
    let mut running = start(&cert, &key);
    let mut reference = Client::connect(running.addr, &ca.cert_der(), Alpn::H2).await;
    let expected = reference.post("/mutate", body.clone()).await;
    drop(reference);
    let client = Client::connect(running.addr, &ca.cert_der(), Alpn::Http11).await;
    let (mut tx, task) = half_sent(client, body.clone()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    send_signal(&running.child, "TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        running.child.try_wait().expect("try_wait").is_none(),
        "exited with a request in flight"
    );
    assert_eq!(admin_get(running.admin, "/readyz").await.status, 503);
    tx.send(Frame::data(Bytes::copy_from_slice(&body[body.len() / 2..])))
        .await
        .expect("second half");
    let reply = bounded("in-flight answer", task)
        .await
        .expect("join")
        .expect("answered");
    assert_eq!(reply.status, expected.status);
    assert_eq!(reply.body, expected.body);
    let status = wait_bounded(&mut running.child, Duration::from_secs(10));
    assert!(status.success(), "{status}");

    // Two signals: the second ends the process without waiting.
    let mut running = start(&cert, &key);
    let client = Client::connect(running.addr, &ca.cert_der(), Alpn::H2).await;
    let (_tx, _task) = half_sent(client, body.clone()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    send_signal(&running.child, "TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(running.child.try_wait().expect("try_wait").is_none());
    let second = Instant::now();
    send_signal(&running.child, "INT");
    let status = wait_bounded(&mut running.child, Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(
        second.elapsed() < Duration::from_secs(2),
        "{:?}",
        second.elapsed()
    );
    let logged: Vec<String> = running.lines.try_iter().collect();
    assert!(
        logged.iter().any(|l| l.contains("second signal")),
        "{logged:#?}"
    );
}

/// The `Running` process's JSON log events so far.
fn events(lines: &mpsc::Receiver<String>) -> Vec<Value> {
    lines
        .try_iter()
        .map(|l| serde_json::from_str(&l).expect("JSON log line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_low_open_files_limit_the_webhook_refuses_and_the_admin_port_answers() {
    let ca = Ca::new();
    let issued = ca.issue("binary", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_plain(dir.path(), &issued);
    // 64 open files: 32 kept for the admin port and the rest, 32 for
    // webhook connections (not the default 1000).
    let mut running = start_with(&cert, &key, &[], Some(64));
    let mut held = Vec::new();
    for _ in 0..80 {
        held.push(
            tokio::net::TcpStream::connect(running.addr)
                .await
                .expect("connect"),
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let asked = Instant::now();
        assert_eq!(admin_get(running.admin, path).await.status, 200, "{path}");
        let took = asked.elapsed();
        assert!(took < Duration::from_millis(500), "{path}: {took:?}");
    }
    let metrics = admin_get(running.admin, "/metrics").await.text();
    let value = |series: &str| support::client::sample(&metrics, series);
    assert_eq!(
        value("forcebacklog_connections_limit"),
        Some(32.0),
        "{metrics}"
    );
    assert_eq!(
        value("forcebacklog_connections_open"),
        Some(32.0),
        "{metrics}"
    );
    assert_eq!(
        value("forcebacklog_connections_refused_total"),
        Some(48.0),
        "{metrics}"
    );

    // Freed slots serve again.
    drop(held);
    bounded("served again", async {
        loop {
            let config =
                support::client::client_config(&ca.cert_der(), support::client::TLS_ANY, Alpn::H2);
            if support::client::tls_connect(running.addr, config)
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let mut client = Client::connect(running.addr, &ca.cert_der(), Alpn::H2).await;
    assert_eq!(client.post("/mutate", b"{}".to_vec()).await.status, 400);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send_signal(&running.child, "TERM");
    assert!(wait_bounded(&mut running.child, Duration::from_secs(10)).success());

    let early: Vec<Value> = running
        .early
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON log line"))
        .collect();
    let ready = early.last().expect("ready line");
    assert_eq!(ready["fields"]["max_connections"], 32, "{ready}");
    let lowered: Vec<&Value> = early
        .iter()
        .filter(|e| e["level"] == "WARN")
        .filter(|e| field(e, "message").is_some_and(|m| m.contains("open-files limit")))
        .collect();
    assert_eq!(lowered.len(), 1, "{early:#?}");
    let logged = events(&running.lines);
    let refusals: Vec<&Value> = logged
        .iter()
        .filter(|e| field(e, "message").is_some_and(|m| m.contains("at the connection limit")))
        .collect();
    assert_eq!(
        refusals.len(),
        1,
        "48 refusals in one second: one line; {logged:#?}"
    );
    assert_eq!(refusals[0]["fields"]["refused"], 48);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_silent_connections_open_exits_at_once() {
    let ca = Ca::new();
    let issued = ca.issue("binary", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_plain(dir.path(), &issued);
    let mut running = start(&cert, &key);
    let h2 = support::client::client_config(&ca.cert_der(), support::client::TLS_ANY, Alpn::H2);
    let mut silent = Vec::new();
    let mut tcp = Vec::new();
    for _ in 0..50 {
        silent.push(
            support::client::tls_connect(running.addr, h2.clone())
                .await
                .expect("tls"),
        );
        tcp.push(
            tokio::net::TcpStream::connect(running.addr)
                .await
                .expect("connect"),
        );
    }
    let signalled = Instant::now();
    send_signal(&running.child, "TERM");
    let status = wait_bounded(&mut running.child, Duration::from_secs(25));
    let took = signalled.elapsed();
    assert!(status.success(), "{status}");
    eprintln!("SIGTERM with 50 silent h2 and 50 silent TCP connections: exit 0 in {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_delay_flag_keeps_serving_after_sigterm() {
    let ca = Ca::new();
    let issued = ca.issue("binary", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_plain(dir.path(), &issued);
    let mut running = start_with(&cert, &key, &["--shutdown-delay", "1s"], None);
    let mut kept = Client::connect(running.addr, &ca.cert_der(), Alpn::H2).await;
    assert_eq!(kept.post("/mutate", b"{}".to_vec()).await.status, 400);

    let signalled = Instant::now();
    send_signal(&running.child, "TERM");
    bounded("readyz 503", async {
        while admin_get(running.admin, "/readyz").await.status != 503 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(signalled.elapsed() < Duration::from_millis(500));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(kept.post("/mutate", b"{}".to_vec()).await.status, 400);
    let mut fresh = Client::connect(running.addr, &ca.cert_der(), Alpn::Http11).await;
    assert_eq!(fresh.post("/mutate", b"{}".to_vec()).await.status, 400);
    assert!(running.child.try_wait().expect("try_wait").is_none());
    let status = wait_bounded(&mut running.child, Duration::from_secs(10));
    let took = signalled.elapsed();
    assert!(status.success(), "{status}");
    eprintln!("--shutdown-delay 1s: exit 0 {took:?} after SIGTERM");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

/// Resident memory of a process, in KiB (`VmRSS`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The figures of docs/reliability.md, with the production defaults (10 s
/// set-up deadline, 1000 connections, 10 s failure summary). About 40 s;
/// run with a release build:
///
/// ```sh
/// cargo build --release --bin forcebacklog
/// FORCEBACKLOG_BIN=target/release/forcebacklog \
///   cargo test --test server binary::figures -- --ignored --nocapture
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: about 40 s, run by hand for docs/reliability.md"]
async fn figures_for_the_reliability_page() {
    let ca = Ca::new();
    let issued = ca.issue("figures", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_plain(dir.path(), &issued);
    let h2 = support::client::client_config(&ca.cert_der(), support::client::TLS_ANY, Alpn::H2);

    // 1. A silent HTTP/2 connection (h2 negotiated, no preface).
    let mut running = start(&cert, &key);
    let connected = Instant::now();
    let mut silent = support::client::tls_connect(running.addr, h2.clone())
        .await
        .expect("tls");
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::AsyncReadExt::read_to_end(&mut silent, &mut sink),
    )
    .await
    .expect("closed within 30 s");
    eprintln!(
        "FIGURE silent h2 connection closed after {:?}",
        connected.elapsed()
    );

    // 2. Memory at the cap: 1000 idle HTTP/2 connections that each made one
    // review, then one more connection (refused).
    let baseline = rss_kib(running.child.id());
    let body = review(
        "uid-figures",
        "CREATE",
        &pod(serde_json::json!({ "forcebacklog/value": "234" })),
    );
    let mut idle = Vec::new();
    for _ in 0..1000 {
        let mut client = Client::connect(running.addr, &ca.cert_der(), Alpn::H2).await;
        assert_eq!(client.post("/mutate", body.clone()).await.status, 200);
        idle.push(client);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_cap = rss_kib(running.child.id());
    let refused = support::client::tls_connect(running.addr, h2.clone()).await;
    assert!(refused.is_err(), "connection 1001 must be refused");
    let metrics = admin_get(running.admin, "/metrics").await.text();
    eprintln!(
        "FIGURE RSS {} KiB idle, {} KiB with 1000 idle h2 connections: {:.1} KiB per connection; open {:?}, refused {:?}",
        baseline,
        at_cap,
        (at_cap - baseline) as f64 / 1000.0,
        support::client::sample(&metrics, "forcebacklog_connections_open"),
        support::client::sample(&metrics, "forcebacklog_connections_refused_total"),
    );
    drop(idle);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 3. Log lines for 2,000 bad handshakes (plain HTTP on the TLS port),
    // counted until the next summary is due.
    let _ = running.lines.try_iter().count();
    let flood = Instant::now();
    let addr = running.addr;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        tasks.spawn(async move {
            for _ in 0..100 {
                let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
                let _ =
                    tokio::io::AsyncWriteExt::write_all(&mut tcp, b"GET / HTTP/1.1\r\n\r\n").await;
                let mut sink = Vec::new();
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut sink).await;
            }
        });
    }
    tasks.join_all().await;
    let flood_took = flood.elapsed();
    tokio::time::sleep(Duration::from_secs(11)).await;
    let logged: Vec<String> = running.lines.try_iter().collect();
    eprintln!(
        "FIGURE 2,000 bad handshakes in {flood_took:?}: {} log line(s) in the following 11 s: {logged:#?}",
        logged.len()
    );

    // 4. SIGTERM with 1000 silent connections open (500 h2 without a
    // preface, 500 TCP without a ClientHello).
    let mut silent = Vec::new();
    let mut tcp = Vec::new();
    for _ in 0..500 {
        silent.push(
            support::client::tls_connect(running.addr, h2.clone())
                .await
                .expect("tls"),
        );
        tcp.push(
            tokio::net::TcpStream::connect(running.addr)
                .await
                .expect("connect"),
        );
    }
    let signalled = Instant::now();
    send_signal(&running.child, "TERM");
    let status = wait_bounded(&mut running.child, Duration::from_secs(30));
    assert!(status.success());
    eprintln!(
        "FIGURE SIGTERM with 1000 silent connections open: exit 0 after {:?}",
        signalled.elapsed()
    );
}
