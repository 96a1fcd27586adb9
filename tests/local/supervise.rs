//! `forcebacklog run --method supervise`: programs the shim cannot reach
//! (a static musl program, raw `syscall(SYS_listen)`) get the backlog,
//! read back with `ss`; errno exactness, threads, fork + exec children,
//! a non-root user without capabilities, exit statuses, signals, and the
//! refusals. Each runs with both methods (`FORCEBACKLOG_SUPERVISE_VIA`
//! = `notify`, seccomp user notification, and `ptrace`), and the
//! automatic choice is checked on the host and in Docker.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::{BIN, Running};

/// The test programs and a copy of the binary, in a directory every user
/// can read (the non-root tests run them as uid 65534).
struct Programs {
    dir: PathBuf,
}

impl Programs {
    fn bin(&self) -> PathBuf {
        self.dir.join("forcebacklog")
    }
    /// `backlog_server.c`, static musl.
    fn server(&self) -> PathBuf {
        self.dir.join("server-static")
    }
    /// The same with every listen() a raw `syscall(SYS_listen, ...)`.
    fn raw(&self) -> PathBuf {
        self.dir.join("server-raw")
    }
}

/// Builds the static servers once; `None` when musl-gcc is missing and
/// skipping is allowed.
fn programs() -> Option<&'static Programs> {
    static BUILT: OnceLock<Option<Programs>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if !support::require_tool("musl-gcc", "musl-tools") || !support::have_ss() {
                return None;
            }
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("run-supervise");
            std::fs::create_dir_all(&dir).expect("create the work directory");
            let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/backlog_server.c");
            for (name, extra) in [
                ("server-static", None),
                ("server-raw", Some("-DRAW_LISTEN")),
            ] {
                let out = Command::new("musl-gcc")
                    .args(["-static", "-O2", "-Wall", "-Wextra", "-pthread", "-o"])
                    .arg(dir.join(name))
                    .args(extra)
                    .arg(&source)
                    .output()
                    .expect("run musl-gcc");
                assert!(
                    out.status.success(),
                    "musl-gcc failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::fs::copy(BIN, dir.join("forcebacklog")).expect("copy the binary");
            for path in [dir.clone(), dir.join("forcebacklog")] {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .expect("chmod");
            }
            Some(Programs { dir })
        })
        .as_ref()
}

/// The two supervisor methods, forced through `FORCEBACKLOG_SUPERVISE_VIA`.
const METHODS: [&str; 2] = ["notify", "ptrace"];

/// [`run`] with the supervisor method forced.
fn run_via(
    via: &str,
    programs: &Programs,
    args: &[&str],
    command: &[&Path],
    tail: &[&str],
) -> Command {
    let mut cmd = run(programs, args, command, tail);
    cmd.env("FORCEBACKLOG_SUPERVISE_VIA", via);
    cmd
}

/// `forcebacklog run ARGS -- COMMAND`, with the shim's and the
/// supervisor's variables cleared.
fn run(programs: &Programs, args: &[&str], command: &[&Path], tail: &[&str]) -> Command {
    let mut cmd = Command::new(programs.bin());
    cmd.arg("run").args(args).arg("--").args(command).args(tail);
    for key in [
        "BACKLOG",
        "LD_PRELOAD",
        "FORCEBACKLOG_MODE",
        "FORCEBACKLOG_PORTS",
        "FORCEBACKLOG_SUPERVISE_VIA",
        "FORCEBACKLOG_SUPERVISE_YAMA_SCOPE_FILE",
    ] {
        cmd.env_remove(key);
    }
    cmd
}

/// The same command as uid/gid 65534 with no capabilities at all.
fn as_nobody(command: Command) -> Option<Command> {
    if !support::require_tool("setpriv", "util-linux") {
        return None;
    }
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
    ]);
    cmd.arg(command.get_program()).args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    Some(cmd)
}

#[test]
fn the_servers_are_static() {
    let Some(programs) = programs() else { return };
    if !support::require_tool("readelf", "binutils") {
        return;
    }
    let rust = if cfg!(target_arch = "x86_64") {
        rust_std_server()
    } else {
        None
    };
    for server in [programs.server(), programs.raw()].into_iter().chain(rust) {
        let out = Command::new("readelf")
            .arg("-l")
            .arg(&server)
            .output()
            .expect("run readelf");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && !text.contains("INTERP"), "{text}");
    }
}

#[test]
fn static_and_raw_syscall_servers_get_the_backlog() {
    let Some(programs) = programs() else { return };
    for server in [programs.server(), programs.raw()] {
        for via in METHODS {
            let running = Running::start(run_via(
                via,
                programs,
                &["--backlog", "300", "--method", "supervise"],
                &[&server],
                &["listen", "20"],
            ));
            assert_eq!(support::ss_backlog(running.port()), 300, "{via} {server:?}");
            let out = running.finish();
            assert!(out.status.success(), "{out:?}");
        }

        // The shim cannot reach them: they keep their own value.
        let running = Running::start(run(
            programs,
            &["--backlog", "300"],
            &[&server],
            &["listen", "20"],
        ));
        assert_eq!(support::ss_backlog(running.port()), 20, "{server:?}");
        running.finish();
    }
}

/// `tests/supervise/std_listener.rs` built static for
/// x86_64-unknown-linux-musl (std's `TcpListener::bind` listens with 128).
fn rust_std_server() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let programs = programs()?;
            let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
            let source =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/supervise/std_listener.rs");
            let output = programs.dir.join("std-listener");
            let out = Command::new(rustc)
                .args([
                    "-O",
                    "--edition",
                    "2021",
                    "--target",
                    "x86_64-unknown-linux-musl",
                    "-C",
                    "target-feature=+crt-static",
                    "-o",
                ])
                .arg(&output)
                .arg(&source)
                .output()
                .expect("run rustc");
            if !out.status.success() {
                let message = format!(
                    "cannot build a static Rust program (`rustup target add \
                     x86_64-unknown-linux-musl`): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                if support::allow_skip() {
                    eprintln!("SKIP (FORCEBACKLOG_ALLOW_SKIP=1): {message}");
                    return None;
                }
                panic!("{message}");
            }
            Some(output)
        })
        .clone()
}

#[test]
#[cfg(target_arch = "x86_64")]
fn static_rust_std_server_gets_the_backlog() {
    let Some(programs) = programs() else { return };
    let Some(server) = rust_std_server() else {
        return;
    };
    for (args, expect) in [
        (&["--backlog", "300", "--method", "supervise"][..], 300),
        (&["--backlog", "100", "--method", "supervise"], 128),
        (
            &["--backlog", "100", "--method", "supervise", "--mode", "set"],
            100,
        ),
        // The shim cannot reach it.
        (&["--backlog", "300"], 128),
    ] {
        for via in METHODS {
            let running = Running::start(run_via(via, programs, args, &[&server], &[]));
            assert_eq!(
                support::ss_backlog(running.port()),
                expect,
                "{via} {args:?}"
            );
            let out = running.finish();
            assert!(out.status.success(), "{out:?}");
        }
    }
}

#[test]
fn mode_set_and_raise() {
    let Some(programs) = programs() else { return };
    for ((mode, expect), via) in [("raise", 1000), ("set", 300)]
        .into_iter()
        .flat_map(|case| METHODS.map(|via| (case, via)))
    {
        let running = Running::start(run_via(
            via,
            programs,
            &["--backlog", "300", "--method", "supervise", "--mode", mode],
            &[&programs.raw()],
            &["listen", "1000"],
        ));
        assert_eq!(
            support::ss_backlog(running.port()),
            expect,
            "{via} --mode {mode}"
        );
        running.finish();
    }
}

#[test]
fn return_values_and_errno_are_exact() {
    let Some(programs) = programs() else { return };
    for (server, via) in [programs.server(), programs.raw()]
        .into_iter()
        .flat_map(|server| METHODS.map(|via| (server.clone(), via)))
    {
        let out = Running::start(run_via(
            via,
            programs,
            &["--backlog", "300", "--method", "supervise"],
            &[&server],
            &["errno"],
        ))
        .finish();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("notsock ret -1 errno 88 ENOTSOCK"),
            "{via} {text}"
        );
        assert!(text.contains("closed ret -1 errno 9 EBADF"), "{via} {text}");
        assert!(
            text.contains("udp ret -1 errno 95 EOPNOTSUPP"),
            "{via} {text}"
        );
        assert!(
            text.contains("success ret 0 errno 4242 backlog 300"),
            "{text}"
        );
        assert!(out.status.success(), "{out:?}");
    }
}

#[test]
fn threads_calling_listen_concurrently() {
    let Some(programs) = programs() else { return };
    // 8 threads x 100 calls; each checks its backlog via TCP_INFO and the
    // errno of a non-socket and of fd -1 on every tenth call.
    for via in METHODS {
        let running = Running::start(run_via(
            via,
            programs,
            &["--backlog", "300", "--method", "supervise"],
            &[&programs.raw()],
            &["threads", "8", "100", "20", "300"],
        ));
        assert!(
            running.lines.iter().any(|l| l == "calls 800 failures 0"),
            "{via} {:?}",
            running.lines
        );
        for listening in running.listening() {
            assert_eq!(support::ss_backlog(listening.port), 300, "{via}");
        }
        let out = running.finish();
        assert!(out.status.success(), "{out:?}");
    }
}

#[test]
fn a_forked_and_executed_child_is_supervised() {
    let Some(programs) = programs() else { return };
    // `spawn` forks, the child execs the server in `listen` mode.
    for via in METHODS {
        let running = Running::start(run_via(
            via,
            programs,
            &["--backlog", "300", "--method", "supervise"],
            &[&programs.server()],
            &["spawn", "20"],
        ));
        assert_eq!(support::ss_backlog(running.port()), 300, "{via}");
        let out = running.finish();
        assert!(out.status.success(), "{out:?}");
    }
}

#[test]
fn works_as_nobody_without_capabilities() {
    let Some(programs) = programs() else { return };
    for via in METHODS {
        for (server, args) in [
            (programs.server(), &["listen", "20"][..]),
            (programs.raw(), &["spawn", "20"][..]),
        ] {
            let Some(cmd) = as_nobody(run_via(
                via,
                programs,
                &["--backlog", "300", "--method", "supervise"],
                &[&server],
                args,
            )) else {
                return;
            };
            let running = Running::start(cmd);
            assert_eq!(support::ss_backlog(running.port()), 300, "{via} {server:?}");
            let out = running.finish();
            assert!(out.status.success(), "{out:?}");
        }
        let Some(cmd) = as_nobody(run_via(
            via,
            programs,
            &["--backlog", "300", "--method", "supervise"],
            &[&programs.server()],
            &["threads", "4", "50", "20", "300"],
        )) else {
            return;
        };
        let running = Running::start(cmd);
        assert!(
            running.lines.iter().any(|l| l == "calls 200 failures 0"),
            "{via} {:?}",
            running.lines
        );
        running.finish();
    }
}

#[test]
fn exit_status_and_signals_pass_through() {
    let Some(programs) = programs() else { return };
    for via in METHODS {
        exit_status_and_signals_via(programs, via);
    }
}

fn exit_status_and_signals_via(programs: &Programs, via: &str) {
    let sh = Path::new("/bin/sh");
    let status = |tail: &[&str]| {
        run_via(
            via,
            programs,
            &["--backlog", "300", "--method", "supervise"],
            &[sh],
            tail,
        )
        .stdin(Stdio::null())
        .status()
        .expect("run sh")
    };
    assert_eq!(status(&["-c", "exit 7"]).code(), Some(7), "{via}");
    // Killed by a signal: 128 + its number, as a shell reports it.
    assert_eq!(status(&["-c", "kill -TERM $$"]).code(), Some(143), "{via}");

    // SIGTERM to the supervisor reaches the command.
    let mut child = run_via(
        via,
        programs,
        &["--backlog", "300", "--method", "supervise"],
        &[sh],
        &["-c", "trap 'exit 42' TERM; while :; do sleep 0.05; done"],
    )
    .stdin(Stdio::null())
    .spawn()
    .expect("start");
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{via}: SIGTERM was not passed on"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(42), "{status:?} {:?}", status.signal());
}

#[test]
fn refusals_are_one_line() {
    let Some(programs) = programs() else { return };
    let check = |mut cmd: Command, expect: &str| {
        let out = cmd.stdin(Stdio::null()).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expect), "{stderr}");
    };
    let supervise = ["--backlog", "300", "--method", "supervise"];
    let mut with_ports = supervise.to_vec();
    with_ports.extend(["--ports", "8080"]);
    check(
        run(programs, &with_ports, &[Path::new("true")], &[]),
        "--ports is not supported with --method supervise",
    );
    check(
        run(
            programs,
            &supervise,
            &[Path::new("forcebacklog-no-such-command")],
            &[],
        ),
        "forcebacklog-no-such-command: command not found",
    );
    // A supervisor inside a supervisor, for each outer method (the inner
    // one inherits the variable): the seccomp listener is taken (EBUSY),
    // or this process is traced.
    let bin = programs.bin();
    let mut inner = supervise.to_vec();
    inner.extend(["--", "true"]);
    for (via, expect) in [
        (
            "notify",
            "is blocked: this process is already under a seccomp user-notification supervisor \
             (a supervisor inside a supervisor) (EBUSY)",
        ),
        ("ptrace", "is blocked: this process is already traced"),
    ] {
        check(
            run_via(
                via,
                programs,
                &supervise,
                &[&bin],
                &[&["run"][..], &inner].concat(),
            ),
            expect,
        );
    }
    // The automatic choice inside a user-notification supervisor.
    let mut outer = run_via(
        "notify",
        programs,
        &supervise,
        &[&bin],
        &[&["run"][..], &inner].concat(),
    );
    outer.env_remove("FORCEBACKLOG_SUPERVISE_VIA");
    check(outer, "(a supervisor inside a supervisor) (EBUSY)");
    check(
        run_via("bpf", programs, &supervise, &[Path::new("true")], &[]),
        "FORCEBACKLOG_SUPERVISE_VIA=\"bpf\" is not one of auto, notify, ptrace",
    );
    // Yama (this kernel may have none: its scope is read from a file).
    let scope = tempfile::NamedTempFile::new().expect("a temporary file");
    // Read by uid 65534.
    std::fs::set_permissions(scope.path(), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    for (value, expect) in [
        (
            "3\n",
            "is blocked: kernel.yama.ptrace_scope is 3 (ptrace disabled)",
        ),
        (
            "2\n",
            "is blocked: kernel.yama.ptrace_scope is 2 (admin-only attach) and this process \
             lacks CAP_SYS_PTRACE",
        ),
    ] {
        std::fs::write(scope.path(), value).expect("write the scope");
        for via in METHODS {
            let mut cmd = run_via(via, programs, &supervise, &[Path::new("true")], &[]);
            cmd.env("FORCEBACKLOG_SUPERVISE_YAMA_SCOPE_FILE", scope.path());
            let Some(cmd) = as_nobody(cmd) else { return };
            check(cmd, expect);
        }
    }
    // Scopes 0 and 1 allow both (a parent may trace its descendants).
    for value in ["0\n", "1\n"] {
        std::fs::write(scope.path(), value).expect("write the scope");
        for via in METHODS {
            let mut cmd = run_via(via, programs, &supervise, &[Path::new("true")], &[]);
            cmd.env("FORCEBACKLOG_SUPERVISE_YAMA_SCOPE_FILE", scope.path());
            let Some(mut cmd) = as_nobody(cmd) else {
                return;
            };
            let out = cmd.stdin(Stdio::null()).output().expect("run");
            assert!(out.status.success(), "{via} scope {value}: {out:?}");
        }
    }
    // The internal helper alone.
    let mut helper = Command::new(programs.bin());
    helper.args(["__supervised-exec", "--", "true"]);
    check(helper, "internal to `forcebacklog run --method supervise`");
}

/// Without `FORCEBACKLOG_SUPERVISE_VIA` the supervisor probes
/// `pidfd_getfd` and chooses user notification where no seccomp profile
/// forbids it (here); `--debug` says which.
#[test]
fn user_notification_is_chosen_where_allowed() {
    let Some(programs) = programs() else { return };
    let running = Running::start(run(
        programs,
        &["--backlog", "300", "--method", "supervise", "--debug"],
        &[&programs.server()],
        &["listen", "20"],
    ));
    assert_eq!(support::ss_backlog(running.port()), 300);
    let out = running.finish();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l == "forcebacklog: supervising via seccomp user notification"),
        "{stderr}"
    );
    assert!(stderr.contains("backlog 20 -> 300"), "{stderr}");
}

/// Runs `docker ARGS`, returning trimmed stdout; panics with stderr.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Removes the test's container and image, whatever happens.
struct DockerCleanup {
    container: String,
    image: String,
}

impl Drop for DockerCleanup {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.container])
            .output();
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

/// What Pod Security "restricted" gives a container, on Docker: the
/// runtime's default seccomp profile, a non-root user, every capability
/// dropped, no-new-privileges. The supervisor is PID 1 of a FROM scratch
/// image holding the binary (with its shared libraries) and the static
/// servers; `docker stop` must reach the command through it.
#[test]
fn in_docker_under_the_default_seccomp_profile_as_non_root() {
    let Some(programs) = programs() else { return };
    if !support::require_tool("docker", "docker.io")
        || !support::require_tool("nsenter", "util-linux")
        || !support::require_tool("ldd", "libc-bin")
    {
        return;
    }
    let security = docker(&["info", "--format", "{{.SecurityOptions}}"]);
    assert!(
        security.contains("seccomp"),
        "docker runs without seccomp: {security}"
    );
    let tag = std::process::id();
    let cleanup = DockerCleanup {
        container: format!("wt-sup-run-supervise-{tag}"),
        image: format!("wt-sup-run-supervise:{tag}"),
    };
    let context = tempfile::tempdir().expect("temporary directory");
    let ctx = context.path();
    std::fs::copy(programs.bin(), ctx.join("forcebacklog")).expect("copy the binary");
    std::fs::copy(programs.server(), ctx.join("server-static")).expect("copy");
    std::fs::copy(programs.raw(), ctx.join("server-raw")).expect("copy");
    let ldd = Command::new("ldd")
        .arg(programs.bin())
        .output()
        .expect("run ldd");
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|word| word.starts_with('/'))
    {
        let target = ctx.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(lib, &target).unwrap_or_else(|err| panic!("copy {lib}: {err}"));
    }
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY . /\nUSER 65532:65532\n",
    )
    .expect("write the Dockerfile");
    docker(&["build", "-q", "-t", &cleanup.image, &ctx.to_string_lossy()]);
    let restricted = [
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--user",
        "65532:65532",
    ];
    let supervise = [
        "/forcebacklog",
        "run",
        "--backlog",
        "300",
        "--method",
        "supervise",
        "--",
    ];

    // errno exactness inside the container.
    let text = docker(
        &[
            &["run", "--rm"][..],
            &restricted,
            &[&cleanup.image],
            &supervise,
        ]
        .concat()
        .into_iter()
        .chain(["/server-raw", "errno"])
        .collect::<Vec<_>>(),
    );
    assert!(text.contains("notsock ret -1 errno 88 ENOTSOCK"), "{text}");
    assert!(text.contains("closed ret -1 errno 9 EBADF"), "{text}");
    assert!(
        text.contains("success ret 0 errno 4242 backlog 300"),
        "{text}"
    );
    assert!(text.contains("udp ret -1 errno 95 EOPNOTSUPP"), "{text}");

    // The automatic choice: the default profile forbids pidfd_getfd
    // without CAP_SYS_PTRACE, so the probe falls back to ptrace.
    let debug_run = |env: &[&str]| {
        let args: Vec<&str> = [
            &["run", "--rm"][..],
            env,
            &restricted,
            &[&cleanup.image, "/forcebacklog", "run", "--backlog", "300"],
            &[
                "--method",
                "supervise",
                "--debug",
                "--",
                "/server-raw",
                "errno",
            ],
        ]
        .concat();
        Command::new("docker")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    };
    let out = debug_run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.lines().any(|l| l
            == "forcebacklog: supervising via ptrace: user notification is unavailable: the \
                seccomp profile forbids pidfd_getfd (EPERM; Docker's and containerd's default \
                profiles allow it only with CAP_SYS_PTRACE)"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("backlog 300"),
        "{out:?}"
    );
    // Forced, user notification refuses in one line naming the block.
    let out = debug_run(&["-e", "FORCEBACKLOG_SUPERVISE_VIA=notify"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(
            "--method supervise is blocked: FORCEBACKLOG_SUPERVISE_VIA=notify, but the seccomp \
             profile forbids pidfd_getfd (EPERM"
        ),
        "{stderr}"
    );

    // A static server: the backlog read with ss in the container's
    // network namespace; it waits for stdin (kept open by -i).
    let args: Vec<&str> = [
        &["run", "-d", "-i", "--name", &cleanup.container][..],
        &restricted,
        &[&cleanup.image],
        &supervise,
        &["/server-static", "listen", "20", "8080"],
    ]
    .concat();
    docker(&args);
    let pid = docker(&["inspect", "-f", "{{.State.Pid}}", &cleanup.container]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let line = loop {
        let out = Command::new("nsenter")
            .args(["-t", &pid, "-n", "ss", "-Hltn", "sport", "=", ":8080"])
            .output()
            .expect("run nsenter ss");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !text.is_empty() || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let send_q: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(send_q.get(2), Some(&"300"), "ss in the container: {line:?}");

    // docker stop sends SIGTERM to PID 1, the supervisor: it must pass it
    // on (otherwise docker waits 10 s and kills).
    let started = Instant::now();
    docker(&["stop", "-t", "10", &cleanup.container]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "docker stop took {:?}",
        started.elapsed()
    );
    let code = docker(&["inspect", "-f", "{{.State.ExitCode}}", &cleanup.container]);
    assert_eq!(code, "143", "killed by the passed-on SIGTERM");
    drop(cleanup);
}
