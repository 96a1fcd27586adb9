//! `forcebacklog run`: a real program started with the embedded shim
//! preloaded, its backlog read back with `ss`; exit codes, signals,
//! `LD_PRELOAD` merging, and options rejected before anything runs.

use crate::support;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{BIN, Libc, Running};

fn forcebacklog_run(args: &[&str], command: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("run").args(args).arg("--").args(command);
    for key in [
        "BACKLOG",
        "LD_PRELOAD",
        "FORCEBACKLOG_MODE",
        "FORCEBACKLOG_PORTS",
        "FORCEBACKLOG_DEBUG",
    ] {
        cmd.env_remove(key);
    }
    cmd
}

fn output(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("run {cmd:?}: {err}"))
}

#[test]
fn python_http_server_gets_the_backlog() {
    if !support::require_tool("python3", "python3") || !support::have_ss() {
        return;
    }
    // http.server hard-codes listen(5) (socketserver's request_queue_size).
    let port = support::free_port();
    let mut child = forcebacklog_run(
        &["--backlog", "1024"],
        &[
            "python3",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("start forcebacklog run python3");
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        if let Some(&backlog) = support::ss_backlogs().get(&port) {
            break Some(backlog);
        }
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(seen, Some(1024), "python3 -m http.server on port {port}");
}

#[test]
fn c_server_with_every_option() {
    let Some(server) = support::server(Libc::Glibc) else {
        return;
    };
    if !support::have_ss() {
        return;
    }
    let (selected, other) = (support::free_port(), support::free_port());
    let server = server.to_string_lossy().into_owned();
    let mut cmd = forcebacklog_run(
        &[
            "--backlog",
            "234",
            "--mode",
            "set",
            "--ports",
            &selected.to_string(),
            "--debug",
        ],
        &[
            &server,
            "listen",
            "511",
            &selected.to_string(),
            &other.to_string(),
        ],
    );
    // An inherited setting must not override the command line.
    cmd.env("FORCEBACKLOG_MODE", "raise");
    let running = Running::start(cmd);
    assert_eq!(
        support::ss_backlog(selected),
        234,
        "set mode lowers 511 to 234"
    );
    assert_eq!(support::ss_backlog(other), 511, "other port untouched");
    let fd = running.listening()[0].fd;
    let out = running.finish();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("forcebacklog: listen(fd {fd}, port {selected}) backlog 511 -> 234\n")
    );
}

#[test]
fn exit_code_passes_through() {
    for code in [0, 1, 7, 255] {
        let out = output(forcebacklog_run(
            &["--backlog", "64"],
            &["sh", "-c", &format!("exit {code}")],
        ));
        assert_eq!(out.status.code(), Some(code), "{out:?}");
    }
}

#[test]
fn a_signal_passes_through() {
    let out = output(forcebacklog_run(
        &["--backlog", "64"],
        &["sh", "-c", "kill -TERM $$"],
    ));
    assert_eq!(out.status.signal(), Some(15), "{out:?}");
}

#[test]
fn existing_ld_preload_is_kept() {
    // A real second library: a copy of the shim under another name.
    let dir = tempfile::tempdir().expect("temporary directory");
    let other = dir.path().join("libother.so");
    std::fs::copy(support::shim(), &other).expect("copy the shim");
    let mut cmd = forcebacklog_run(
        &["--backlog", "64"],
        &["sh", "-c", "printf %s \"$LD_PRELOAD\""],
    );
    cmd.env("LD_PRELOAD", &other);
    let out = output(cmd);
    assert!(out.status.success(), "{out:?}");
    let preload = String::from_utf8_lossy(&out.stdout).into_owned();
    let (ours, rest) = preload
        .split_once(':')
        .unwrap_or_else(|| panic!("{preload}"));
    assert!(
        ours.ends_with(".so") && ours.contains("libforcebacklog"),
        "{preload}"
    );
    assert_eq!(rest, other.to_string_lossy(), "{preload}");
    assert!(out.stderr.is_empty(), "both libraries load: {out:?}");
}

#[test]
fn the_variables_reach_the_command() {
    let out = output(forcebacklog_run(
        &["--backlog", "300", "--mode", "raise", "--ports", "80,443"],
        &[
            "sh",
            "-c",
            "printf '%s|%s|%s|%s' \"$BACKLOG\" \"$FORCEBACKLOG_MODE\" \"$FORCEBACKLOG_PORTS\" \"${FORCEBACKLOG_DEBUG-unset}\"",
        ],
    ));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "300|raise|80,443|unset"
    );
}

#[test]
fn ports_are_normalised_like_the_annotation() {
    // The rule of `forcebacklog/ports`: spaces around items are fine, and
    // the shim gets the list without them (it reads `80,443` only).
    let out = output(forcebacklog_run(
        &["--backlog", "300", "--ports", " 80, 443"],
        &["sh", "-c", "printf '%s' \"$FORCEBACKLOG_PORTS\""],
    ));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "80,443");
}

/// Runs `forcebacklog run ARGS -- sh -c 'touch MARKER'` and checks that
/// it fails with one error line containing `needle` and that the command
/// never ran.
fn rejected_before_running(args: &[&str], needle: &str) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let marker = dir.path().join("ran");
    let script = format!("touch '{}'", marker.display());
    let out = output(forcebacklog_run(args, &["sh", "-c", &script]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?}: {out:?}");
    assert!(!marker.exists(), "{args:?}: the command ran");
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
}

#[test]
fn bad_options_are_rejected_before_running() {
    rejected_before_running(
        &["--backlog", "64", "--ports", "80,x"],
        "invalid --ports \"80,x\"",
    );
    rejected_before_running(&["--backlog", "64", "--ports", "80, ,81"], "--ports");
    rejected_before_running(&["--backlog", "64", "--ports", "80 81"], "--ports");
    rejected_before_running(&["--backlog", "64", "--ports", ""], "--ports");
    rejected_before_running(&["--backlog", "0"], "--backlog");
    rejected_before_running(&["--backlog", "65536"], "--backlog");
    rejected_before_running(&["--backlog", "abc"], "--backlog");
    rejected_before_running(&["--backlog", "64", "--mode", "lower"], "--mode");
}

#[test]
fn bad_ports_error_is_one_line() {
    let out = output(forcebacklog_run(
        &["--backlog", "64", "--ports", "80,x"],
        &["true"],
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("forcebacklog: invalid --ports"),
        "{stderr}"
    );
}

#[test]
fn a_missing_command_is_a_clear_error() {
    let out = output(forcebacklog_run(
        &["--backlog", "64"],
        &["forcebacklog-no-such-command"],
    ));
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "forcebacklog: forcebacklog-no-such-command: command not found\n"
    );
}
