//! `forcebacklog run --method supervise`: raise the backlog of programs
//! `LD_PRELOAD` cannot reach (statically linked programs, raw `listen`
//! system calls) with a seccomp filter and a ptrace supervisor.
//!
//! How it works:
//! - `run` starts this binary again as a hidden helper
//!   (`__supervised-exec`), which stops itself with `SIGSTOP`.
//! - The supervisor (this process) attaches to it with `PTRACE_SEIZE`
//!   (seccomp, clone, fork, vfork and exec events; the tracees are killed
//!   if the supervisor dies), then lets it continue.
//! - The helper installs a seccomp filter that returns `SECCOMP_RET_TRACE`
//!   for the native `listen` system call only (every other call and every
//!   other architecture is allowed untouched; `no_new_privs` is set), and
//!   executes the command.
//! - On each trapped `listen` the supervisor rewrites the backlog argument
//!   register with the shim's rule and continues: the kernel runs the real
//!   `listen`, so the return value and `errno` are native. Threads and
//!   forked or executed children inherit the filter and are traced
//!   automatically.
//! - The exit status of the command is the supervisor's; the usual
//!   termination signals sent to the supervisor are passed on to it.
//!
//! Everything here goes through safe APIs (`nix` for ptrace and wait,
//! `seccompiler` to install the filter).

use std::ffi::OsString;
use std::io::{self, IsTerminal};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use seccompiler::sock_filter;

use crate::shim::RunOptions;

/// The name of the hidden helper subcommand.
pub const HELPER: &str = "__supervised-exec";

/// Set on the helper only: the supervisor's pid. The helper refuses to
/// start without its parent being that supervisor, and removes it from
/// the command's environment.
const SUPERVISOR_ENV: &str = "FORCEBACKLOG_SUPERVISOR_PID";

/// Why a supervised command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    /// The shim's options were invalid.
    #[error(transparent)]
    Options(#[from] crate::shim::ShimError),
    /// `--ports` needs the socket's address, which the supervisor does not read.
    #[error(
        "--ports is not supported with --method supervise (every listener gets the backlog); \
         use the default method (the shim) to select ports"
    )]
    PortsUnsupported,
    /// This architecture has no supervisor support.
    #[error("--method supervise is supported on x86_64 and aarch64 only")]
    UnsupportedArch,
    /// Yama forbids ptrace altogether.
    #[error(
        "--method supervise is blocked: kernel.yama.ptrace_scope is 3 (ptrace disabled); \
         use the default method (the shim)"
    )]
    YamaDisabled,
    /// forcebacklog is itself traced (a supervisor inside a supervisor,
    /// a debugger, strace).
    #[error(
        "--method supervise is blocked: this process is already traced by pid {tracer} \
         (a supervisor inside a supervisor, a debugger or strace)"
    )]
    AlreadyTraced {
        /// The tracer's process id.
        tracer: i32,
    },
    /// Starting the helper process failed.
    #[error("cannot start the supervised helper {}", exe.display())]
    Spawn {
        /// The helper executable (this binary).
        exe: std::path::PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// `PTRACE_SEIZE` was refused.
    #[error("--method supervise is blocked: ptrace(PTRACE_SEIZE) refused: {reason}")]
    Seize {
        /// The likely cause, with the errno.
        reason: String,
    },
    /// A system call of the supervisor failed.
    #[error("supervisor: {call} failed")]
    Sys {
        /// The call.
        call: &'static str,
        /// The errno.
        #[source]
        source: Errno,
    },
    /// The helper was started without a supervisor.
    #[error("{HELPER} is internal to `forcebacklog run --method supervise`")]
    NotSupervised,
    /// Installing the seccomp filter failed.
    #[error("--method supervise is blocked: cannot install the seccomp filter: {0}")]
    Filter(String),
    /// The command does not exist.
    #[error("{}: command not found", command.to_string_lossy())]
    CommandNotFound {
        /// The command as given.
        command: OsString,
    },
    /// The command could not be executed.
    #[error("cannot run {}", command.to_string_lossy())]
    Exec {
        /// The command as given.
        command: OsString,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

/// How the backlog is changed: the shim's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// max(app's value, backlog), comparing as unsigned (a negative
    /// value asks the kernel for its maximum and is kept).
    Raise(u16),
    /// Exactly the backlog.
    Set(u16),
}

impl Rule {
    fn apply(self, app: i32) -> i32 {
        match self {
            Rule::Set(wanted) => i32::from(wanted),
            Rule::Raise(wanted) if (app as u32) < u32::from(wanted) => i32::from(wanted),
            Rule::Raise(_) => app,
        }
    }
}

/// Runs `command` under the supervisor; returns its exit status (128 +
/// signal number when it was killed by a signal).
pub fn run(options: &RunOptions, command: &[OsString]) -> Result<ExitCode, SuperviseError> {
    let options = options.normalised()?;
    if options.ports.is_some() {
        return Err(SuperviseError::PortsUnsupported);
    }
    if command.is_empty() {
        return Err(crate::shim::ShimError::NoCommand.into());
    }
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        return Err(SuperviseError::UnsupportedArch);
    }
    let rule = match options.mode.as_deref() {
        Some("set") => Rule::Set(options.backlog),
        _ => Rule::Raise(options.backlog),
    };
    preflight()?;
    let sys = |call| move |source| SuperviseError::Sys { call, source };
    nix::sys::prctl::set_child_subreaper(true).map_err(sys("prctl(PR_SET_CHILD_SUBREAPER)"))?;

    let exe = std::env::current_exe().map_err(|source| SuperviseError::Spawn {
        exe: "/proc/self/exe".into(),
        source,
    })?;
    let child = Command::new(&exe)
        .arg(HELPER)
        .arg("--")
        .args(command)
        .env(SUPERVISOR_ENV, std::process::id().to_string())
        .spawn()
        .map_err(|source| SuperviseError::Spawn {
            exe: exe.clone(),
            source,
        })?;
    let main = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    // The helper stops itself before it installs the filter, so it is
    // traced before its first trapped call.
    match waitpid(main, Some(WaitPidFlag::WUNTRACED)).map_err(sys("waitpid"))? {
        WaitStatus::Stopped(_, _) => {}
        WaitStatus::Exited(_, code) => return Ok(exit_code(code)),
        WaitStatus::Signaled(_, sig, _) => return Ok(exit_code(128 + sig as i32)),
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
        return Err(SuperviseError::Seize {
            reason: seize_reason(errno),
        });
    }
    signal::kill(main, Signal::SIGCONT).map_err(sys("kill(SIGCONT)"))?;
    forward_signals(main);
    let code = supervise(main, rule, options.debug).map_err(sys("waitpid"))?;
    Ok(exit_code(code))
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code & 0xff).unwrap_or(u8::MAX))
}

/// Refuses early, with the block named, where ptrace cannot work.
fn preflight() -> Result<(), SuperviseError> {
    if let Ok(scope) = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        && scope.trim() == "3"
    {
        return Err(SuperviseError::YamaDisabled);
    }
    match tracer_pid() {
        Some(tracer) if tracer != 0 => Err(SuperviseError::AlreadyTraced { tracer }),
        _ => Ok(()),
    }
}

/// `TracerPid:` of /proc/self/status.
fn tracer_pid() -> Option<i32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("TracerPid:"))
        .and_then(|value| value.trim().parse().ok())
}

/// Names the likely block behind a refused `PTRACE_SEIZE`.
fn seize_reason(errno: Errno) -> String {
    let yama = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .map(|scope| scope.trim().to_owned())
        .unwrap_or_default();
    match errno {
        Errno::EPERM if yama == "2" => {
            "kernel.yama.ptrace_scope is 2 (admin-only attach: needs CAP_SYS_PTRACE) (EPERM)".into()
        }
        Errno::EPERM => {
            "the seccomp profile, an LSM or a tracer of the command forbids it (EPERM)".into()
        }
        Errno::ENOSYS => "the seccomp profile forbids ptrace (ENOSYS)".into(),
        other => format!("{} ({other:?})", other.desc()),
    }
}

/// Passes the termination signals the supervisor receives on to the
/// command. `SIGINT` and `SIGQUIT` from a terminal already reach both, so
/// they are passed on only when stdin is not a terminal.
fn forward_signals(main: Pid) {
    use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
    // All are registered, so none of them ends the supervisor itself.
    let wanted = [SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGINT, SIGQUIT];
    let terminal = io::stdin().is_terminal();
    let Ok(mut signals) = signal_hook::iterator::Signals::new(wanted) else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("forward-signals".into())
        .spawn(move || {
            for number in signals.forever() {
                if terminal && (number == SIGINT || number == SIGQUIT) {
                    continue;
                }
                if let Ok(sig) = Signal::try_from(number) {
                    let _ = signal::kill(main, sig);
                }
            }
        });
    drop(spawned);
}

/// The tracing loop: returns the command's exit status once it has exited.
fn supervise(main: Pid, rule: Rule, debug: bool) -> Result<i32, Errno> {
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
                if event == libc_event::SECCOMP {
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

/// Event numbers of `PTRACE_GETEVENTMSG` stops (`<linux/ptrace.h>`).
mod libc_event {
    /// `PTRACE_EVENT_SECCOMP`.
    pub const SECCOMP: i32 = 7;
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

#[cfg(target_arch = "x86_64")]
mod arch {
    use nix::libc::user_regs_struct;

    /// `AUDIT_ARCH_X86_64`.
    pub const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    /// `listen` for x86_64, and for x32 (`__X32_SYSCALL_BIT | 50`).
    pub const LISTEN: &[u32] = &[50, 0x4000_0000 | 50];

    /// (fd, backlog) of a trapped `listen`.
    pub fn listen_args(regs: &user_regs_struct) -> Option<(i32, i32)> {
        if !LISTEN.iter().any(|&nr| u64::from(nr) == regs.orig_rax) {
            return None;
        }
        Some((regs.rdi as i32, regs.rsi as i32))
    }

    /// Writes the backlog argument (the kernel reads it as an `int`).
    pub fn set_backlog(regs: &mut user_regs_struct, backlog: i32) {
        regs.rsi = i64::from(backlog) as u64;
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    use nix::libc::user_regs_struct;

    /// `AUDIT_ARCH_AARCH64`.
    pub const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;
    /// `listen`.
    pub const LISTEN: &[u32] = &[201];

    /// (fd, backlog) of a trapped `listen`: x8 holds the number, x0 and
    /// x1 the arguments (read through `NT_PRSTATUS`).
    pub fn listen_args(regs: &user_regs_struct) -> Option<(i32, i32)> {
        if !LISTEN.iter().any(|&nr| u64::from(nr) == regs.regs[8]) {
            return None;
        }
        Some((regs.regs[0] as i32, regs.regs[1] as i32))
    }

    /// Writes the backlog argument (the kernel reads it as an `int`).
    pub fn set_backlog(regs: &mut user_regs_struct, backlog: i32) {
        regs.regs[1] = i64::from(backlog) as u64;
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod arch {
    /// No supervisor support: nothing matches.
    pub const AUDIT_ARCH: u32 = 0;
    /// No supervisor support: nothing is trapped.
    pub const LISTEN: &[u32] = &[];

    pub fn listen_args<T>(_: &T) -> Option<(i32, i32)> {
        None
    }

    pub fn set_backlog<T>(_: &mut T, _: i32) {}
}

const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;

/// The filter: the native `listen` numbers return `SECCOMP_RET_TRACE`,
/// everything else (and every other architecture) `SECCOMP_RET_ALLOW`.
fn filter(audit_arch: u32, listen: &[u32]) -> Vec<sock_filter> {
    let stmt = |code, k| sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |k, jt, jf| sock_filter {
        code: BPF_JMP_JEQ_K,
        jt,
        jf,
        k,
    };
    let n = u8::try_from(listen.len()).unwrap_or(u8::MAX);
    // 0: load arch; 1: arch? else -> allow; 2: load nr;
    // 3..3+n: nr == listen[i]? -> trace; 3+n: trace; 4+n: allow.
    let mut program = vec![
        stmt(BPF_LD_W_ABS, 4),
        jump(audit_arch, 0, n + 2),
        stmt(BPF_LD_W_ABS, 0),
    ];
    for (i, &nr) in listen.iter().enumerate() {
        let i = u8::try_from(i).unwrap_or(u8::MAX);
        let left = n - i - 1;
        // On a match jump to the trace return; on the last mismatch to allow.
        let jf = if left == 0 { 1 } else { 0 };
        program.push(jump(nr, left, jf));
    }
    program.push(stmt(BPF_RET_K, SECCOMP_RET_TRACE));
    program.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    program
}

/// The hidden helper: waits to be traced, installs the filter and
/// executes the command. Returns only on failure.
pub fn exec_helper(command: &[OsString]) -> SuperviseError {
    let Some((program, args)) = command.split_first() else {
        return crate::shim::ShimError::NoCommand.into();
    };
    let parent = nix::unistd::getppid().as_raw().to_string();
    if std::env::var_os(SUPERVISOR_ENV).is_none_or(|pid| pid != parent.as_str()) {
        return SuperviseError::NotSupervised;
    }
    if let Err(source) = signal::raise(Signal::SIGSTOP) {
        return SuperviseError::Sys {
            call: "raise(SIGSTOP)",
            source,
        };
    }
    // Without a tracer every trapped listen() would fail with ENOSYS.
    if !matches!(tracer_pid(), Some(tracer) if tracer != 0) {
        return SuperviseError::NotSupervised;
    }
    if arch::LISTEN.is_empty() {
        return SuperviseError::UnsupportedArch;
    }
    // `apply_filter` sets no_new_privs first (needed without CAP_SYS_ADMIN).
    if let Err(err) = seccompiler::apply_filter(&filter(arch::AUDIT_ARCH, arch::LISTEN)) {
        return SuperviseError::Filter(err.to_string());
    }
    let err = Command::new(program)
        .args(args)
        .env_remove(SUPERVISOR_ENV)
        .exec();
    if err.kind() == io::ErrorKind::NotFound {
        SuperviseError::CommandNotFound {
            command: program.to_owned(),
        }
    } else {
        SuperviseError::Exec {
            command: program.to_owned(),
            source: err,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_the_shim() {
        assert_eq!(Rule::Raise(234).apply(5), 234);
        assert_eq!(Rule::Raise(234).apply(1000), 1000);
        assert_eq!(Rule::Raise(234).apply(-1), -1);
        assert_eq!(Rule::Raise(234).apply(0), 234);
        assert_eq!(Rule::Set(234).apply(1000), 234);
        assert_eq!(Rule::Set(234).apply(-1), 234);
    }

    /// Runs the BPF program on (arch, nr) with a tiny interpreter of the
    /// four instruction kinds it uses.
    fn verdict(program: &[sock_filter], arch: u32, nr: u32) -> u32 {
        let mut pc = 0usize;
        let mut acc = 0u32;
        loop {
            let insn = &program[pc];
            match insn.code {
                BPF_LD_W_ABS => acc = if insn.k == 4 { arch } else { nr },
                BPF_JMP_JEQ_K => {
                    pc += usize::from(if acc == insn.k { insn.jt } else { insn.jf });
                }
                BPF_RET_K => return insn.k,
                other => panic!("unexpected instruction {other:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn filter_traps_listen_only_for_the_native_arch() {
        for listen in [&[50u32][..], &[50, 0x4000_0032], &[201]] {
            let program = filter(0xc000_003e, listen);
            for &nr in listen {
                assert_eq!(verdict(&program, 0xc000_003e, nr), SECCOMP_RET_TRACE);
                assert_eq!(verdict(&program, 0x4000_0003, nr), SECCOMP_RET_ALLOW);
            }
            for nr in [0, 1, 49, 51, 288, 0x4000_0000] {
                assert_eq!(verdict(&program, 0xc000_003e, nr), SECCOMP_RET_ALLOW);
            }
        }
    }
}
