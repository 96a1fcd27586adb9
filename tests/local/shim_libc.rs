//! libforcebacklog.so in real C programs, linked against glibc (gcc) and
//! musl (musl-gcc): the backlog the kernel holds, read back with `ss`,
//! for every setting; errno; many threads; exec'd children.

use crate::support;

use support::{Libc, Running, server, server_command};

/// One test per libc for each scenario.
macro_rules! per_libc {
    ($($name:ident),* $(,)?) => {
        mod glibc {
            $(#[test] fn $name() { super::$name(super::Libc::Glibc) })*
        }
        mod musl {
            $(#[test] fn $name() { super::$name(super::Libc::Musl) })*
        }
    };
}

per_libc!(
    set_mode_is_exact,
    raise_mode_never_lowers,
    unset_backlog_passes_through,
    invalid_settings_pass_through,
    ports_filter_selects_listeners,
    debug_line_is_exact,
    errno_is_the_kernels,
    many_threads,
    exec_child_inherits,
);

/// Starts the C server of `libc` listening with `backlog` and `env`;
/// returns the backlog `ss` shows and the server's output.
fn listen_once(
    libc: Libc,
    backlog: &str,
    env: &[(&str, &str)],
) -> Option<(u32, std::process::Output, u16)> {
    let server = server(libc)?;
    if !support::have_ss() {
        return None;
    }
    let running = Running::start(server_command(&server, &["listen", backlog], env));
    let port = running.port();
    let seen = support::ss_backlog(port);
    Some((seen, running.finish(), port))
}

fn set_mode_is_exact(libc: Libc) {
    for (app, expected) in [("20", 234), ("511", 234)] {
        let Some((seen, ..)) = listen_once(
            libc,
            app,
            &[("BACKLOG", "234"), ("FORCEBACKLOG_MODE", "set")],
        ) else {
            return;
        };
        assert_eq!(seen, expected, "{libc:?}: app {app}, BACKLOG=234, set");
    }
}

fn raise_mode_never_lowers(libc: Libc) {
    for (app, mode, expected) in [
        ("20", None, 234),
        ("511", None, 511),
        ("20", Some("raise"), 234),
        ("511", Some("raise"), 511),
        ("511", Some(""), 511),
    ] {
        let mut env = vec![("BACKLOG", "234")];
        if let Some(mode) = mode {
            env.push(("FORCEBACKLOG_MODE", mode));
        }
        let Some((seen, ..)) = listen_once(libc, app, &env) else {
            return;
        };
        assert_eq!(
            seen, expected,
            "{libc:?}: app {app}, BACKLOG=234, mode {mode:?}"
        );
    }
}

fn unset_backlog_passes_through(libc: Libc) {
    let Some((seen, out, _)) = listen_once(libc, "20", &[("FORCEBACKLOG_DEBUG", "1")]) else {
        return;
    };
    assert_eq!(seen, 20, "{libc:?}: no BACKLOG");
    assert!(
        out.stderr.is_empty(),
        "nothing changed, nothing printed: {out:?}"
    );
}

fn invalid_settings_pass_through(libc: Libc) {
    let invalid_backlogs = [
        "",
        "abc",
        "0",
        "-5",
        "12abc",
        "99999999999",
        " 234",
        "234 ",
        "65536",
        "+5",
        "0x10",
    ];
    let mut cases: Vec<Vec<(&str, &str)>> = invalid_backlogs
        .iter()
        .map(|value| vec![("BACKLOG", *value)])
        .collect();
    // An unknown mode or a malformed port list also changes nothing.
    cases.push(vec![("BACKLOG", "234"), ("FORCEBACKLOG_MODE", "lower")]);
    cases.push(vec![("BACKLOG", "234"), ("FORCEBACKLOG_MODE", "SET")]);
    cases.push(vec![("BACKLOG", "234"), ("FORCEBACKLOG_PORTS", "80,")]);
    cases.push(vec![("BACKLOG", "234"), ("FORCEBACKLOG_PORTS", "http")]);
    for env in cases {
        let mut env = env.clone();
        env.push(("FORCEBACKLOG_DEBUG", "1"));
        let Some((seen, out, _)) = listen_once(libc, "20", &env) else {
            return;
        };
        assert_eq!(seen, 20, "{libc:?}: {env:?} must pass through unchanged");
        assert!(out.stderr.is_empty(), "{env:?}: {out:?}");
        assert!(out.status.success(), "{env:?}: {out:?}");
    }
}

fn ports_filter_selects_listeners(libc: Libc) {
    let Some(server) = server(libc) else { return };
    if !support::have_ss() {
        return;
    }
    let (selected, other) = (support::free_port(), support::free_port());
    let ports = format!("1,{selected}");
    let running = Running::start(server_command(
        &server,
        &["listen", "20", &selected.to_string(), &other.to_string()],
        &[("BACKLOG", "234"), ("FORCEBACKLOG_PORTS", &ports)],
    ));
    let listening = running.listening();
    assert_eq!(listening.len(), 2, "{:?}", running.lines);
    assert_eq!(
        support::ss_backlog(selected),
        234,
        "{libc:?}: port in the list"
    );
    assert_eq!(
        support::ss_backlog(other),
        20,
        "{libc:?}: port not in the list"
    );
    running.finish();
}

fn debug_line_is_exact(libc: Libc) {
    let Some((seen, out, port)) = listen_once(
        libc,
        "20",
        &[("BACKLOG", "234"), ("FORCEBACKLOG_DEBUG", "1")],
    ) else {
        return;
    };
    assert_eq!(seen, 234);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("forcebacklog: listen(fd 3, port {port}) backlog 20 -> 234\n"),
        "{libc:?}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("forcebacklog"),
        "never on stdout: {stdout}"
    );

    // No line when the value does not change, or without FORCEBACKLOG_DEBUG=1.
    for (app, env) in [
        ("511", vec![("BACKLOG", "234"), ("FORCEBACKLOG_DEBUG", "1")]),
        (
            "20",
            vec![("BACKLOG", "234"), ("FORCEBACKLOG_DEBUG", "yes")],
        ),
        ("20", vec![("BACKLOG", "234")]),
    ] {
        let Some((_, out, _)) = listen_once(libc, app, &env) else {
            return;
        };
        assert!(out.stderr.is_empty(), "{libc:?} {app} {env:?}: {out:?}");
    }
}

fn errno_is_the_kernels(libc: Libc) {
    let Some(server) = server(libc) else { return };
    for env in [
        vec![("BACKLOG", "234")],
        vec![
            ("BACKLOG", "234"),
            ("FORCEBACKLOG_DEBUG", "1"),
            ("FORCEBACKLOG_MODE", "set"),
        ],
        vec![],
    ] {
        let mut command = server_command(&server, &["errno"], &env);
        command.stdin(std::process::Stdio::null());
        let out = command.output().expect("run the errno server");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{libc:?} {env:?}: {out:?}");
        assert!(
            stdout.contains("notsock ret -1 errno 88 ENOTSOCK"),
            "{libc:?} {env:?}: listen(0) on a non-socket:\n{stdout}"
        );
        assert!(
            stdout.contains("closed ret -1 errno 9 EBADF"),
            "{libc:?} {env:?}: listen() on a closed fd:\n{stdout}"
        );
        let expected = if env.is_empty() { 20 } else { 234 };
        assert!(
            stdout.contains(&format!("success ret 0 errno 4242 backlog {expected}")),
            "{libc:?} {env:?}: a successful listen keeps errno:\n{stdout}"
        );
    }
}

fn many_threads(libc: Libc) {
    let Some(server) = server(libc) else { return };
    if !support::have_ss() {
        return;
    }
    // 64 threads released together by a barrier, 1,000 listen() calls
    // each (the first ones race on resolving the real listen), every
    // result checked in the program via TCP_INFO, plus a non-socket
    // (ENOTSOCK) and a bad fd (EBADF) every tenth call.
    let running = Running::start(server_command(
        &server,
        &["threads", "64", "1000", "20", "234"],
        &[("BACKLOG", "234")],
    ));
    assert!(
        running.lines.iter().any(|l| l == "calls 64000 failures 0"),
        "{libc:?}: {:?}",
        running.lines
    );
    let listening = running.listening();
    assert_eq!(listening.len(), 64, "{:?}", running.lines);
    let backlogs = support::ss_backlogs();
    for socket in &listening {
        assert_eq!(
            backlogs.get(&socket.port),
            Some(&234),
            "{libc:?}: {socket:?}"
        );
    }
    let out = running.finish();
    assert!(out.status.success(), "{out:?}");
}

fn exec_child_inherits(libc: Libc) {
    let Some(server) = server(libc) else { return };
    if !support::have_ss() {
        return;
    }
    // The server forks and execs itself; the child does the listen().
    let running = Running::start(server_command(
        &server,
        &["spawn", "20"],
        &[("BACKLOG", "234"), ("FORCEBACKLOG_MODE", "set")],
    ));
    assert_eq!(support::ss_backlog(running.port()), 234, "{libc:?}");
    let out = running.finish();
    assert!(out.status.success(), "{out:?}");
}

/// A program without any libc, linked directly against the shim: none of
/// the weak libc symbols exists, the shim still loads, and its raw
/// `listen` system call gives the kernel's results.
#[cfg(target_arch = "x86_64")]
#[test]
fn without_libc_symbols_the_raw_syscall_is_used() {
    if !support::require_tool("gcc", "gcc") {
        return;
    }
    let shim = support::shim();
    let shim_dir = shim.parent().expect("the shim's directory");
    let dir = tempfile::tempdir().expect("temporary directory");
    let program = dir.path().join("no_libc");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/no_libc.c");
    let out = std::process::Command::new("gcc")
        .args([
            "-O2",
            "-nostdlib",
            "-nostartfiles",
            "-fno-stack-protector",
            "-o",
        ])
        .arg(&program)
        .arg(&source)
        .arg("-L")
        .arg(shim_dir)
        .arg("-l:libforcebacklog.so")
        .arg(format!("-Wl,-rpath,{}", shim_dir.display()))
        .output()
        .expect("run gcc");
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(&program)
        .env("BACKLOG", "234")
        .stdout(std::process::Stdio::piped())
        .output()
        .expect("run the program");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n", "{out:?}");
    assert!(out.status.success(), "{out:?}");
}
