//! `forcebacklog sockets` against real listeners in a fresh network
//! namespace (`unshare -n`, so the namespace holds only the test's sockets
//! and its counters start at 0): the backlog with and without the shim,
//! read as an unprivileged user without capabilities; a burst that
//! overflows a listen(20) server; IPv6; many sockets (a multi-part netlink
//! dump); `--pid` from outside the namespace; `--watch`; and the
//! `--serve` metrics endpoint scraped and parsed.
//!
//! Needs root (to create namespaces), util-linux (unshare, nsenter,
//! setpriv), iproute2 (ip) and python3.

use crate::support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn peers_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sockets/peers.py")
}

/// Whether root and every tool are here (else a failure naming the
/// package, or a skip with FORCEBACKLOG_ALLOW_SKIP=1).
fn prerequisites() -> bool {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    if !is_root {
        let message = "the sockets tests create network namespaces: run them as root";
        if support::allow_skip() {
            eprintln!("SKIP (FORCEBACKLOG_ALLOW_SKIP=1): {message}");
            return false;
        }
        panic!("{message} (or set FORCEBACKLOG_ALLOW_SKIP=1 to skip)");
    }
    [
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("setpriv", "util-linux"),
        ("ip", "iproute2"),
        ("python3", "python3"),
    ]
    .iter()
    .all(|(tool, package)| support::require_tool(tool, package))
}

/// The binary under test, copied where an unprivileged user can run it
/// (the target directory may sit under a private home).
fn public_bin() -> &'static Path {
    static BIN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = BIN.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod 0755");
        let path = dir.path().join("forcebacklog");
        std::fs::copy(support::BIN, &path).expect("copy the binary");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod 0755");
        (dir, path)
    });
    path
}

/// A fresh network namespace with `lo` up, held by a process until drop.
struct Netns {
    holder: Child,
}

impl Netns {
    fn new() -> Netns {
        let mut holder = Command::new("unshare")
            .args(["-n", "sh", "-c", "ip link set lo up && echo up && exec cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run unshare -n");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read from the namespace holder");
        assert_eq!(line, "up\n", "unshare -n sh: ip link set lo up failed");
        Netns { holder }
    }

    fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// `program args` inside the namespace.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/proc/{}/ns/net", self.pid()))
            .arg("--")
            .arg(program)
            .args(args);
        cmd
    }

    /// `forcebacklog sockets args` inside the namespace as user 65534,
    /// no groups, no capabilities.
    fn sockets_unprivileged(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(
            "setpriv",
            &[
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
            ],
        );
        cmd.arg(public_bin()).arg("sockets").args(args);
        cmd
    }

    /// Starts `peers.py args` in the namespace (with `env`) and waits for
    /// its `ready`.
    fn peers(&self, args: &[&str], env: &[(&str, &str)]) -> Peers {
        let mut cmd = self.command("python3", &[]);
        cmd.arg(peers_script())
            .args(args)
            .env_remove("LD_PRELOAD")
            .env_remove("BACKLOG")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("start peers.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read peers.py");
        assert_eq!(line, "ready\n", "peers.py {args:?} did not get ready");
        let stdin = child.stdin.take();
        Peers { child, stdin }
    }

    /// `sockets --output json` as an unprivileged user, parsed.
    fn json(&self) -> Value {
        let out = run(self.sockets_unprivileged(&["--output", "json"]));
        assert!(out.status.success(), "sockets failed: {out:?}");
        serde_json::from_slice(&out.stdout).expect("sockets --output json prints JSON")
    }

    /// [`Netns::json`] once `sockets` equals `expected`, or after 10 s
    /// (a burst's handshakes take a moment on a busy machine).
    fn json_when(&self, expected: &Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let value = self.json();
            if &value["sockets"] == expected || Instant::now() > deadline {
                return value;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Running peers, stopped on drop (stdin closed).
struct Peers {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Drop for Peers {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("run {cmd:?}: {err}"))
}

fn shim_env() -> [(&'static str, String); 2] {
    [
        ("LD_PRELOAD", support::shim().display().to_string()),
        ("BACKLOG", "4096".to_owned()),
    ]
}

fn socket(address: &str, port: u16, backlog: u32, queue: u32) -> Value {
    json!({"address": address, "port": port, "backlog": backlog, "queue": queue})
}

#[test]
fn backlog_without_and_with_the_shim_read_without_privileges() {
    if !prerequisites() {
        return;
    }
    let ns = Netns::new();
    let _plain = ns.peers(&["listen", "127.0.0.1", "20", "8080"], &[]);
    let env = shim_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _shimmed = ns.peers(&["listen", "127.0.0.1", "20", "8081"], &env);

    let value = ns.json();
    assert_eq!(
        value,
        json!({
            "sockets": [socket("127.0.0.1", 8080, 20, 0), socket("127.0.0.1", 8081, 4096, 0)],
            "listen_overflows": 0,
            "listen_drops": 0,
            "req_q_full_drop": 0,
            "req_q_full_do_cookies": 0,
        })
    );

    let out = run(ns.sockets_unprivileged(&[]));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ADDRESS     PORT  BACKLOG  QUEUE\n\
         127.0.0.1   8080       20      0\n\
         127.0.0.1   8081     4096      0\n\
         ListenOverflows 0  ListenDrops 0  TCPReqQFullDrop 0  TCPReqQFullDoCookies 0\n"
    );
}

#[test]
fn a_burst_overflows_listen_20_and_not_with_the_shim() {
    if !prerequisites() {
        return;
    }
    // Nobody accepts: the queue fills to backlog + 1 (the kernel's rule)
    // and every further handshake is dropped and counted.
    let ns = Netns::new();
    let _server = ns.peers(&["listen", "127.0.0.1", "20", "8080"], &[]);
    let _clients = ns.peers(&["burst", "127.0.0.1", "8080", "100"], &[]);
    let expected = json!([socket("127.0.0.1", 8080, 20, 21)]);
    let value = ns.json_when(&expected);
    assert_eq!(value["sockets"], expected);
    let overflows = value["listen_overflows"].as_u64().expect("a number");
    let drops = value["listen_drops"].as_u64().expect("a number");
    assert!(overflows > 0, "ListenOverflows counted: {value}");
    assert!(drops >= overflows, "ListenDrops include overflows: {value}");

    let ns = Netns::new();
    let env = shim_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _server = ns.peers(&["listen", "127.0.0.1", "20", "8080"], &env);
    let _clients = ns.peers(&["burst", "127.0.0.1", "8080", "100"], &[]);
    let expected = json!([socket("127.0.0.1", 8080, 4096, 100)]);
    let value = ns.json_when(&expected);
    assert_eq!(value["sockets"], expected);
    assert_eq!(value["listen_overflows"], 0, "{value}");
    assert_eq!(value["listen_drops"], 0, "{value}");
}

#[test]
fn ipv6_listeners() {
    if !prerequisites() {
        return;
    }
    let ns = Netns::new();
    let _loopback = ns.peers(&["listen", "::1", "33", "8080"], &[]);
    let _any = ns.peers(&["listen", "::", "44", "8081"], &[]);
    let _v4 = ns.peers(&["listen", "0.0.0.0", "55", "8082"], &[]);
    let _clients = ns.peers(&["burst", "::1", "8080", "3"], &[]);
    let expected = json!([
        socket("0.0.0.0", 8082, 55, 0),
        socket("::1", 8080, 33, 3),
        socket("::", 8081, 44, 0),
    ]);
    assert_eq!(ns.json_when(&expected)["sockets"], expected);
}

#[test]
fn many_sockets_in_a_multi_part_dump() {
    if !prerequisites() {
        return;
    }
    const COUNT: u16 = 1500;
    let ns = Netns::new();
    let ports: Vec<String> = (20000..20000 + COUNT).map(|p| p.to_string()).collect();
    let mut args = vec!["listen", "127.0.0.1", "7"];
    args.extend(ports.iter().map(String::as_str));
    let _v4 = ns.peers(&args, &[]);
    args[1] = "::1";
    let _v6 = ns.peers(&args, &[]);
    let value = ns.json();
    let sockets = value["sockets"].as_array().expect("an array");
    assert_eq!(sockets.len(), 2 * usize::from(COUNT));
    let mut expected: Vec<Value> = (20000..20000 + COUNT)
        .map(|port| socket("127.0.0.1", port, 7, 0))
        .collect();
    expected.extend((20000..20000 + COUNT).map(|port| socket("::1", port, 7, 0)));
    assert_eq!(sockets, &expected);
}

#[test]
fn pid_reads_another_namespace() {
    if !prerequisites() {
        return;
    }
    let ns = Netns::new();
    let _server = ns.peers(&["listen", "127.0.0.1", "20", "8080"], &[]);
    let _clients = ns.peers(&["burst", "127.0.0.1", "8080", "40"], &[]);
    let expected = json!([socket("127.0.0.1", 8080, 20, 21)]);
    ns.json_when(&expected);
    // From outside, as root: the namespace is entered by a thread.
    let pid = ns.pid().to_string();
    let out = run({
        let mut cmd = Command::new(public_bin());
        cmd.args(["sockets", "--pid", &pid, "--output", "json"]);
        cmd
    });
    assert!(out.status.success(), "{out:?}");
    let value: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(value["sockets"], expected);
    assert!(value["listen_overflows"].as_u64() > Some(0), "{value}");

    // From outside without privileges: one clear line, exit 1.
    let out = run({
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(public_bin())
        .args(["sockets", "--pid", &pid]);
        cmd
    });
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "forcebacklog: cannot enter the network namespace of pid {pid} (that needs CAP_SYS_ADMIN"
        )) && stderr.lines().count() == 1,
        "{stderr}"
    );

    let out = run({
        let mut cmd = Command::new(public_bin());
        cmd.args(["sockets", "--pid", "4000000000"]);
        cmd
    });
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "forcebacklog: no process with pid 4000000000\n"
    );
}

#[test]
fn watch_prints_a_json_line_per_round() {
    if !prerequisites() {
        return;
    }
    let ns = Netns::new();
    let _server = ns.peers(&["listen", "127.0.0.1", "20", "8080"], &[]);
    let mut child = ns
        .sockets_unprivileged(&["--output", "json", "--watch", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start sockets --watch");
    let started = Instant::now();
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    for _ in 0..2 {
        let line = lines.next().expect("a line").expect("read a line");
        let value: Value = serde_json::from_str(&line).expect("one JSON object per line");
        assert_eq!(value["sockets"], json!([socket("127.0.0.1", 8080, 20, 0)]));
    }
    let elapsed = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
}

/// One sample of Prometheus text: `name{labels}` → value.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (key, value) = line.rsplit_once(' ').expect("`name value`");
        let value: f64 = value.parse().expect("a number");
        assert!(
            samples.insert(key.to_owned(), value).is_none(),
            "duplicate sample {key}"
        );
    }
    samples
}

#[test]
fn metrics_endpoint_scraped_and_parsed() {
    if !prerequisites() {
        return;
    }
    let ns = Netns::new();
    let _server = ns.peers(&["listen", "127.0.0.1", "20", "8080"], &[]);
    let mut serving = ns
        .sockets_unprivileged(&["--serve", "127.0.0.1:9464"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sockets --serve");
    let mut stderr = BufReader::new(serving.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("read stderr");
    assert_eq!(
        line,
        "forcebacklog: serving listen-queue metrics on http://127.0.0.1:9464/metrics\n"
    );
    let scrape = || {
        let out = run(ns.command(
            "python3",
            &[
                &peers_script().display().to_string(),
                "scrape",
                "http://127.0.0.1:9464/metrics",
            ],
        ));
        assert!(out.status.success(), "scrape: {out:?}");
        let text = String::from_utf8(out.stdout).expect("UTF-8");
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics ends with # EOF:\n{text}"
        );
        for family in [
            "# TYPE forcebacklog_listen_backlog gauge",
            "# TYPE forcebacklog_listen_queue gauge",
            "# TYPE forcebacklog_listen_overflows counter",
            "# TYPE forcebacklog_listen_drops counter",
            "# TYPE forcebacklog_syn_queue_full_drops counter",
            "# TYPE forcebacklog_syn_queue_full_cookies counter",
        ] {
            assert!(text.lines().any(|l| l == family), "{family} in:\n{text}");
        }
        parse_metrics(&text)
    };

    let before = scrape();
    assert_eq!(
        before.get(r#"forcebacklog_listen_backlog{address="127.0.0.1",port="8080"}"#),
        Some(&20.0),
        "{before:?}"
    );
    assert!(
        before.contains_key(r#"forcebacklog_listen_backlog{address="127.0.0.1",port="9464"}"#),
        "the server's own listener: {before:?}"
    );
    assert_eq!(
        before.get(r#"forcebacklog_listen_queue{address="127.0.0.1",port="8080"}"#),
        Some(&0.0)
    );
    assert_eq!(
        before.get("forcebacklog_listen_overflows_total"),
        Some(&0.0)
    );
    assert_eq!(before.get("forcebacklog_listen_drops_total"), Some(&0.0));
    assert_eq!(
        before.get("forcebacklog_syn_queue_full_drops_total"),
        Some(&0.0)
    );

    // Values are read afresh at each scrape.
    let _clients = ns.peers(&["burst", "127.0.0.1", "8080", "60"], &[]);
    ns.json_when(&json!([
        socket("127.0.0.1", 8080, 20, 21),
        socket("127.0.0.1", 9464, 1024, 0),
    ]));
    let after = scrape();
    assert_eq!(
        after.get(r#"forcebacklog_listen_queue{address="127.0.0.1",port="8080"}"#),
        Some(&21.0),
        "{after:?}"
    );
    assert!(
        after.get("forcebacklog_listen_overflows_total") > Some(&0.0),
        "{after:?}"
    );

    // SIGTERM (the sidecar's stop) ends it promptly with status 0.
    let out = Command::new("kill")
        .args(["-TERM", &serving.id().to_string()])
        .output()
        .expect("run kill");
    assert!(out.status.success(), "{out:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = serving.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = serving.kill();
            let _ = serving.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.is_some_and(|s| s.success()),
        "exit after SIGTERM: {status:?}"
    );
    let _ = std::io::stderr().flush();
}
