//! Helpers of the shim integration tests (`tests/shim_*.rs`): required
//! tools, the installed shim, the C test server built with gcc and
//! musl-gcc, and reading a listener's backlog back from `ss`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::OnceLock;

/// The `forcebacklog` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_forcebacklog");

/// Whether a missing tool may skip a test (`FORCEBACKLOG_ALLOW_SKIP=1`).
pub fn allow_skip() -> bool {
    std::env::var_os("FORCEBACKLOG_ALLOW_SKIP").is_some_and(|v| v == "1")
}

/// Whether `tool` is on PATH. When it is missing the test fails naming
/// the Debian `package`, unless skipping is allowed: then a skip line is
/// printed and `false` returned.
pub fn require_tool(tool: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    if found {
        return true;
    }
    let message = format!("`{tool}` is missing: install the Debian package `{package}`");
    if allow_skip() {
        eprintln!("SKIP (FORCEBACKLOG_ALLOW_SKIP=1): {message}");
        return false;
    }
    panic!("{message} (or set FORCEBACKLOG_ALLOW_SKIP=1 to skip)");
}

/// A directory for this test binary's build products, kept between runs.
fn work_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("shim-tests")
        .join(env!("CARGO_CRATE_NAME"));
    std::fs::create_dir_all(&dir).expect("create the test work directory");
    dir
}

/// `libforcebacklog.so`, written by `forcebacklog install-shim` once per
/// test binary.
pub fn shim() -> &'static Path {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        let dir = work_dir().join("shim");
        std::fs::create_dir_all(&dir).expect("create the shim directory");
        let out = Command::new(BIN)
            .arg("install-shim")
            .arg(&dir)
            .output()
            .expect("run forcebacklog install-shim");
        assert!(out.status.success(), "install-shim failed: {out:?}");
        dir.join("libforcebacklog.so")
    })
}

/// The C library a test server is linked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Libc {
    /// `gcc`, Debian's glibc.
    Glibc,
    /// `musl-gcc` from musl-tools.
    Musl,
}

impl Libc {
    fn compiler(self) -> (&'static str, &'static str) {
        match self {
            Libc::Glibc => ("gcc", "gcc"),
            Libc::Musl => ("musl-gcc", "musl-tools"),
        }
    }

    fn interpreter(self) -> &'static str {
        match self {
            Libc::Glibc => "ld-linux",
            Libc::Musl => "ld-musl",
        }
    }
}

/// The C test server (`tests/c/backlog_server.c`) linked against `libc`,
/// compiled once per test binary; `None` when its compiler is missing and
/// skipping is allowed.
pub fn server(libc: Libc) -> Option<PathBuf> {
    static BUILT: OnceLock<std::sync::Mutex<HashMap<Libc, PathBuf>>> = OnceLock::new();
    let (compiler, package) = libc.compiler();
    if !require_tool(compiler, package) {
        return None;
    }
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().expect("server cache lock");
    if let Some(path) = built.get(&libc) {
        return Some(path.clone());
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/backlog_server.c");
    let output = work_dir().join(format!("backlog_server-{compiler}"));
    let out = Command::new(compiler)
        .args(["-O2", "-Wall", "-Wextra", "-pthread", "-o"])
        .arg(&output)
        .arg(&source)
        .output()
        .unwrap_or_else(|err| panic!("running {compiler}: {err}"));
    assert!(
        out.status.success(),
        "{compiler} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The test is only meaningful if the program really uses that libc's
    // dynamic loader (LD_PRELOAD needs a dynamic program).
    if require_tool("readelf", "binutils") {
        let headers = Command::new("readelf")
            .arg("-l")
            .arg(&output)
            .output()
            .expect("run readelf");
        let text = String::from_utf8_lossy(&headers.stdout);
        assert!(
            text.contains(libc.interpreter()),
            "{compiler} built a program without the {} interpreter:\n{text}",
            libc.interpreter()
        );
    }
    built.insert(libc, output.clone());
    Some(output)
}

/// A port that was free a moment ago (bound to 0, read back, released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A running test server, stopped by [`Running::finish`] (or on drop).
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Its stdout lines up to and including `ready`.
    pub lines: Vec<String>,
}

/// One `listening FD PORT ret R errno E` line of the C server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listening {
    /// The socket's file descriptor.
    pub fd: i32,
    /// Its local port.
    pub port: u16,
    /// listen()'s return value.
    pub ret: i32,
}

impl Running {
    /// Starts `command` (stdin/stdout/stderr piped) and waits for its
    /// `ready` line.
    pub fn start(mut command: Command) -> Running {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("start {command:?}: {err}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read the server's stdout");
            let done = line == "ready";
            lines.push(line);
            if done {
                break;
            }
        }
        let running = Running {
            child,
            stdin,
            lines,
        };
        if running.lines.last().map(String::as_str) != Some("ready") {
            let out = running.finish();
            panic!("server exited before `ready`: {out:?}");
        }
        running
    }

    /// The `listening` lines.
    pub fn listening(&self) -> Vec<Listening> {
        self.lines
            .iter()
            .filter_map(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    ["listening", fd, port, "ret", ret, ..] => Some(Listening {
                        fd: fd.parse().ok()?,
                        port: port.parse().ok()?,
                        ret: ret.parse().ok()?,
                    }),
                    _ => None,
                }
            })
            .collect()
    }

    /// The single listener's port.
    pub fn port(&self) -> u16 {
        let listening = self.listening();
        assert_eq!(listening.len(), 1, "{:?}", self.lines);
        listening[0].port
    }

    /// Closes stdin (the server then exits) and collects everything.
    pub fn finish(mut self) -> Output {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for the server");
        let mut stderr = Vec::new();
        if let Some(mut err) = self.child.stderr.take() {
            err.read_to_end(&mut stderr).expect("read stderr");
        }
        Output {
            status,
            stdout: self.lines.join("\n").into_bytes(),
            stderr,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The C server in `libc` with `args`, the shim preloaded and `env` set
/// (BACKLOG and friends removed first, so only `env` counts).
pub fn server_command(server: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(server);
    command.args(args).env("LD_PRELOAD", shim());
    for key in [
        "BACKLOG",
        "FORCEBACKLOG_MODE",
        "FORCEBACKLOG_PORTS",
        "FORCEBACKLOG_DEBUG",
    ] {
        command.env_remove(key);
    }
    command.envs(env.iter().copied());
    command
}

/// Whether `ss` (iproute2) is available; see [`require_tool`].
pub fn have_ss() -> bool {
    require_tool("ss", "iproute2")
}

/// The backlog (`Send-Q` of the LISTEN socket) of every TCP listener, by
/// local port, as `ss -Hltn` shows it.
pub fn ss_backlogs() -> HashMap<u16, u32> {
    let out = Command::new("ss")
        .arg("-Hltn")
        .output()
        .expect("run ss -Hltn");
    assert!(out.status.success(), "ss failed: {out:?}");
    let mut backlogs = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // State Recv-Q Send-Q Local:Port Peer:Port
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [_, _, send_q, local, ..] = words.as_slice()
            && let Some((_, port)) = local.rsplit_once(':')
            && let (Ok(port), Ok(send_q)) = (port.parse(), send_q.parse())
        {
            backlogs.insert(port, send_q);
        }
    }
    backlogs
}

/// The backlog of the listener on `port`, as `ss -Hltn` shows it.
pub fn ss_backlog(port: u16) -> u32 {
    let out = Command::new("ss")
        .args(["-Hltn", "sport", "=", &format!(":{port}")])
        .output()
        .expect("run ss");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one listener on port {port} expected:\n{text}"
    );
    let send_q = lines[0].split_whitespace().nth(2).expect("a Send-Q column");
    send_q.parse().expect("Send-Q is a number")
}
