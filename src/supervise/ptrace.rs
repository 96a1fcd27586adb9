//! The ptrace method: the filter returns `SECCOMP_RET_TRACE` for `listen`;
//! the supervisor, the command's tracer, rewrites the backlog argument
//! register on each seccomp stop and lets the kernel run the real call,
//! so the return value and `errno` are native.

use std::process::Child;

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::{Rule, SuperviseError, arch, block};

/// `PTRACE_EVENT_SECCOMP` (`<linux/ptrace.h>`).
const EVENT_SECCOMP: i32 = 7;

/// Attaches to the helper (stopped by itself before it installs the
/// filter), lets it go on, and traces it and its descendants until it
/// exits. `fallback` is why user notification was not used, if it was
/// considered.
pub fn supervise(
    child: Child,
    rule: Rule,
    debug: bool,
    fallback: Option<&str>,
) -> Result<i32, SuperviseError> {
    let sys = |call| move |source| SuperviseError::Sys { call, source };
    let main = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    match waitpid(main, Some(WaitPidFlag::WUNTRACED)).map_err(sys("waitpid"))? {
        WaitStatus::Stopped(_, _) => {}
        WaitStatus::Exited(_, code) => return Ok(code),
        WaitStatus::Signaled(_, sig, _) => return Ok(128 + sig as i32),
        _ => {}
    }
    let trace = ptrace::Options::PTRACE_O_TRACESECCOMP
        | ptrace::Options::PTRACE_O_TRACECLONE
        | ptrace::Options::PTRACE_O_TRACEFORK
        | ptrace::Options::PTRACE_O_TRACEVFORK
        | ptrace::Options::PTRACE_O_TRACEEXEC
        | ptrace::Options::PTRACE_O_EXITKILL;
    if let Err(errno) = ptrace::seize(main, trace) {
        let _ = signal::kill(main, Signal::SIGKILL);
        let _ = waitpid(main, None);
        let mut reason = block::seize_reason(errno, block::yama_scope());
        if let Some(fallback) = fallback {
            reason.push_str("; user notification is not available either: ");
            reason.push_str(fallback);
        }
        return Err(SuperviseError::Seize { reason });
    }
    signal::kill(main, Signal::SIGCONT).map_err(sys("kill(SIGCONT)"))?;
    super::forward_signals(main);
    trace_loop(main, rule, debug).map_err(sys("waitpid"))
}

/// The tracing loop: returns the command's exit status once it has exited.
fn trace_loop(main: Pid, rule: Rule, debug: bool) -> Result<i32, Errno> {
    loop {
        let status = match waitpid(None, Some(WaitPidFlag::__WALL)) {
            Ok(status) => status,
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(errno),
        };
        match status {
            WaitStatus::Exited(pid, code) if pid == main => return Ok(code),
            WaitStatus::Signaled(pid, sig, _) if pid == main => return Ok(128 + sig as i32),
            WaitStatus::PtraceEvent(pid, _, event) => {
                if event == EVENT_SECCOMP {
                    rewrite(pid, rule, debug);
                }
                // Seccomp, clone/fork/vfork/exec events, the first stop of a
                // new tracee and group-stops: continue without a signal.
                resume(pid, None);
            }
            // A signal for the tracee: deliver it.
            WaitStatus::Stopped(pid, sig) => resume(pid, Some(sig)),
            _ => {}
        }
    }
}

/// Continues a tracee; one that has died meanwhile is not an error.
fn resume(pid: Pid, sig: Option<Signal>) {
    let _ = ptrace::cont(pid, sig);
}

/// On a seccomp stop for `listen`, replaces the backlog argument.
fn rewrite(pid: Pid, rule: Rule, debug: bool) {
    let Ok(mut regs) = ptrace::getregs(pid) else {
        return;
    };
    let Some((fd, app)) = arch::listen_args(&regs) else {
        return;
    };
    let new = rule.apply(app);
    if new == app {
        return;
    }
    arch::set_backlog(&mut regs, new);
    if ptrace::setregs(pid, regs).is_ok() && debug {
        eprintln!("forcebacklog: listen(fd {fd}) backlog {app} -> {new} (pid {pid})");
    }
}
