//! `forcebacklog run --method supervise`: raise the backlog of programs
//! `LD_PRELOAD` cannot reach (statically linked programs, raw `listen`
//! system calls) with a seccomp filter that traps `listen` only and a
//! supervisor process that applies the shim's rule.
//!
//! How it works:
//! - `run` checks what could block it (`block`: Yama, a tracer of its
//!   own) and chooses a method: user notification where the kernel and
//!   the seccomp profile allow `pidfd_getfd` (probed on this process),
//!   ptrace otherwise; `FORCEBACKLOG_SUPERVISE_VIA=notify|ptrace` forces
//!   one. It becomes a child subreaper, and starts this binary again as a
//!   hidden helper (`__supervised-exec`). Its steps by name:
//!   `supervised_rule`, `choose`, `prepare`, `spawn_helper`, then
//!   `notify_supervise` or `ptrace::supervise`.
//! - The helper sets `no_new_privs`, installs the filter (only the native
//!   `listen` numbers are trapped; every other call and every other
//!   architecture is allowed untouched) and executes the command. Threads
//!   and forked or executed children inherit the filter.
//! - `notify`: the helper sends the filter's listener to the supervisor,
//!   which calls `listen` itself on a duplicate of the socket and answers
//!   with that result or errno.
//! - `ptrace`: the helper stops itself; the supervisor attaches with
//!   `PTRACE_SEIZE`, and rewrites the backlog argument register on each
//!   seccomp stop; the kernel runs the real call.
//! - The exit status of the command is the supervisor's; the usual
//!   termination signals sent to the supervisor are passed on to it.
//!
//! The few system calls without a safe wrapper (`seccomp` with a listener
//! and its ioctls) live in the `seccomp-notify` crate; this crate stays
//! free of `unsafe`.

mod arch;
mod block;
mod notify;
mod ptrace;

use std::ffi::OsString;
use std::io::{self, IsTerminal};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitCode, ExitStatus};

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use seccompiler::sock_filter;

use crate::shim::RunOptions;

/// The name of the hidden helper subcommand.
pub(crate) const HELPER: &str = "__supervised-exec";

/// Set on the helper only: the supervisor's pid. The helper refuses to
/// start without its parent being that supervisor, and removes it from
/// the command's environment.
const SUPERVISOR_ENV: &str = "FORCEBACKLOG_SUPERVISOR_PID";

/// Set on the helper only, for user notification: the abstract Unix
/// socket name the listener is sent to.
const RENDEZVOUS_ENV: &str = "FORCEBACKLOG_SUPERVISOR_SOCKET";

/// Forces a method: `notify`, `ptrace` or `auto` (the default).
pub(crate) const VIA_ENV: &str = "FORCEBACKLOG_SUPERVISE_VIA";

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
    /// `FORCEBACKLOG_SUPERVISE_VIA` has an unknown value.
    #[error("{VIA_ENV}={value:?} is not one of auto, notify, ptrace")]
    Via {
        /// The value as given.
        value: String,
    },
    /// Yama forbids ptrace altogether.
    #[error(
        "--method supervise is blocked: kernel.yama.ptrace_scope is 3 (ptrace disabled); \
         use the default method (the shim)"
    )]
    YamaDisabled,
    /// Yama allows ptrace (and `pidfd_getfd`) to admins only.
    #[error(
        "--method supervise is blocked: kernel.yama.ptrace_scope is 2 (admin-only attach) and \
         this process lacks CAP_SYS_PTRACE; use the default method (the shim)"
    )]
    YamaAdminOnly,
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
    /// A seccomp filter with a listener already covers this process.
    #[error(
        "--method supervise is blocked: this process is already under a seccomp \
         user-notification supervisor (a supervisor inside a supervisor) (EBUSY)"
    )]
    Nested,
    /// User notification was forced but cannot work here.
    #[error("--method supervise is blocked: {VIA_ENV}=notify, but {reason}")]
    NotifyBlocked {
        /// What blocks it.
        reason: String,
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
    /// The listener could not be passed from the helper to the supervisor.
    #[error("supervisor: cannot receive the seccomp listener: {reason}")]
    Handoff {
        /// What failed.
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

/// Which method `FORCEBACKLOG_SUPERVISE_VIA` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// User notification where the probe allows it, else ptrace.
    Auto,
    /// User notification, or refuse.
    Notify,
    /// ptrace.
    Ptrace,
}

impl Via {
    fn parse(value: Option<&str>) -> Result<Via, SuperviseError> {
        match value.map(str::trim) {
            None | Some("" | "auto") => Ok(Via::Auto),
            Some("notify") => Ok(Via::Notify),
            Some("ptrace") => Ok(Via::Ptrace),
            Some(other) => Err(SuperviseError::Via {
                value: other.to_owned(),
            }),
        }
    }
}

/// The method chosen, and for ptrace why user notification was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Method {
    Notify,
    Ptrace { fallback: Option<String> },
}

/// Chooses the method: `probe` is the user-notification probe's result.
fn choose(via: Via, probe: impl FnOnce() -> Result<(), String>) -> Result<Method, SuperviseError> {
    match via {
        Via::Ptrace => Ok(Method::Ptrace { fallback: None }),
        Via::Notify => probe()
            .map(|()| Method::Notify)
            .map_err(|reason| SuperviseError::NotifyBlocked { reason }),
        Via::Auto => Ok(match probe() {
            Ok(()) => Method::Notify,
            Err(reason) => Method::Ptrace {
                fallback: Some(reason),
            },
        }),
    }
}

/// Runs `command` under the supervisor; returns its exit status (128 +
/// signal number when it was killed by a signal).
pub fn run(options: &RunOptions, command: &[OsString]) -> Result<ExitCode, SuperviseError> {
    let options = options.normalised()?;
    let rule = supervised_rule(&options, command)?;
    let via = Via::parse(std::env::var(VIA_ENV).ok().as_deref())?;
    block::preflight()?;
    let method = choose(via, block::probe_notify)?;
    if options.debug {
        say_method(&method);
    }
    nix::sys::prctl::set_child_subreaper(true).map_err(|source| SuperviseError::Sys {
        call: "prctl(PR_SET_CHILD_SUBREAPER)",
        source,
    })?;
    let exe = std::env::current_exe().map_err(|source| SuperviseError::Spawn {
        exe: "/proc/self/exe".into(),
        source,
    })?;
    let ready = prepare(method)?;
    let child = spawn_helper(&exe, command, &ready)?;
    let code = match ready {
        Ok(rendezvous) => notify_supervise(rendezvous, child, rule, options.debug)?,
        Err(fallback) => ptrace::supervise(child, rule, options.debug, fallback.as_deref())?,
    };
    Ok(exit_code(code))
}

/// The rule to apply, once the options and the command are ones the
/// supervisor can run (no port list, a command, a supported architecture).
fn supervised_rule(options: &RunOptions, command: &[OsString]) -> Result<Rule, SuperviseError> {
    if options.ports.is_some() {
        return Err(SuperviseError::PortsUnsupported);
    }
    if command.is_empty() {
        return Err(crate::shim::ShimError::NoCommand.into());
    }
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        return Err(SuperviseError::UnsupportedArch);
    }
    Ok(match options.mode.as_deref() {
        Some("set") => Rule::Set(options.backlog),
        _ => Rule::Raise(options.backlog),
    })
}

/// Says (with `--debug`) which method supervises, and why not user
/// notification when it is ptrace.
fn say_method(method: &Method) {
    match method {
        Method::Notify => eprintln!("forcebacklog: supervising via seccomp user notification"),
        Method::Ptrace { fallback: None } => {
            eprintln!("forcebacklog: supervising via ptrace ({VIA_ENV}=ptrace)")
        }
        Method::Ptrace {
            fallback: Some(reason),
        } => eprintln!(
            "forcebacklog: supervising via ptrace: user notification is unavailable: {reason}"
        ),
    }
}

/// The method with what it needs: the rendezvous for the listener (user
/// notification), or why user notification was not used (ptrace).
type Ready = Result<notify::Rendezvous, Option<String>>;

/// Prepares the chosen method: user notification binds the rendezvous
/// the helper hands its listener to.
fn prepare(method: Method) -> Result<Ready, SuperviseError> {
    Ok(match method {
        Method::Notify => {
            Ok(
                notify::Rendezvous::bind().map_err(|err| SuperviseError::Handoff {
                    reason: format!("cannot bind an abstract Unix socket: {err}"),
                })?,
            )
        }
        Method::Ptrace { fallback } => Err(fallback),
    })
}

/// Starts this binary again as the helper that runs `command` (told where
/// the rendezvous is when there is one).
fn spawn_helper(exe: &Path, command: &[OsString], ready: &Ready) -> Result<Child, SuperviseError> {
    let mut helper = Command::new(exe);
    helper
        .arg(HELPER)
        .arg("--")
        .args(command)
        .env(SUPERVISOR_ENV, std::process::id().to_string());
    match ready {
        Ok(rendezvous) => helper.env(RENDEZVOUS_ENV, rendezvous.name()),
        Err(_) => helper.env_remove(RENDEZVOUS_ENV),
    };
    helper.spawn().map_err(|source| SuperviseError::Spawn {
        exe: exe.to_owned(),
        source,
    })
}

/// Supervises via user notification once the helper has handed over its
/// listener; the helper's exit status when it ended before that.
fn notify_supervise(
    rendezvous: notify::Rendezvous,
    mut child: Child,
    rule: Rule,
    debug: bool,
) -> Result<i32, SuperviseError> {
    match rendezvous.receive(&mut child)? {
        Ok(listener) => {
            drop(rendezvous);
            let main = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
            notify::supervise(listener, main, rule, debug)
        }
        Err(code) => Ok(code),
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code & 0xff).unwrap_or(u8::MAX))
}

/// An exit status as a shell reports it (128 + N when killed by signal N).
fn status_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|sig| 128 + sig))
        .unwrap_or(1)
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

const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
const SECCOMP_RET_USER_NOTIF: u32 = seccomp_notify::RET_USER_NOTIF;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;

/// The filter: the native `listen` numbers return `action`
/// (`SECCOMP_RET_TRACE` or `SECCOMP_RET_USER_NOTIF`), everything else
/// (and every other architecture) `SECCOMP_RET_ALLOW`.
fn filter(audit_arch: u32, listen: &[u32], action: u32) -> Vec<sock_filter> {
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
    // 3..3+n: nr == listen[i]? -> action; 3+n: action; 4+n: allow.
    let mut program = vec![
        stmt(BPF_LD_W_ABS, 4),
        jump(audit_arch, 0, n + 2),
        stmt(BPF_LD_W_ABS, 0),
    ];
    for (i, &nr) in listen.iter().enumerate() {
        let i = u8::try_from(i).unwrap_or(u8::MAX);
        let left = n - i - 1;
        // On a match jump to the action; on the last mismatch to allow.
        let jf = if left == 0 { 1 } else { 0 };
        program.push(jump(nr, left, jf));
    }
    program.push(stmt(BPF_RET_K, action));
    program.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    program
}

/// The hidden helper: installs the filter (handing its listener to the
/// supervisor, or first waiting to be traced) and executes the command.
/// Returns only on failure.
pub fn exec_helper(command: &[OsString]) -> SuperviseError {
    let Some((program, args)) = command.split_first() else {
        return crate::shim::ShimError::NoCommand.into();
    };
    let parent = nix::unistd::getppid().as_raw().to_string();
    if std::env::var_os(SUPERVISOR_ENV).is_none_or(|pid| pid != parent.as_str()) {
        return SuperviseError::NotSupervised;
    }
    if arch::LISTEN.is_empty() {
        return SuperviseError::UnsupportedArch;
    }
    if let Some(name) = std::env::var_os(RENDEZVOUS_ENV) {
        let filter = filter(arch::AUDIT_ARCH, arch::LISTEN, SECCOMP_RET_USER_NOTIF);
        if let Err(err) = notify::install_and_send(&name.to_string_lossy(), &filter) {
            return err;
        }
    } else {
        if let Err(source) = signal::raise(Signal::SIGSTOP) {
            return SuperviseError::Sys {
                call: "raise(SIGSTOP)",
                source,
            };
        }
        // Without a tracer every trapped listen() would fail with ENOSYS.
        if !matches!(block::tracer_pid(), Some(tracer) if tracer != 0) {
            return SuperviseError::NotSupervised;
        }
        // `apply_filter` sets no_new_privs first (needed without CAP_SYS_ADMIN).
        let filter = filter(arch::AUDIT_ARCH, arch::LISTEN, SECCOMP_RET_TRACE);
        if let Err(err) = seccompiler::apply_filter(&filter) {
            return SuperviseError::Filter(err.to_string());
        }
    }
    let err = Command::new(program)
        .args(args)
        .env_remove(SUPERVISOR_ENV)
        .env_remove(RENDEZVOUS_ENV)
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
    fn the_method_is_chosen_by_the_probe_or_forced() {
        let ok = || Ok(());
        let eperm = || Err("the seccomp profile forbids pidfd_getfd (EPERM)".to_owned());
        assert_eq!(choose(Via::Auto, ok).ok(), Some(Method::Notify));
        assert_eq!(
            choose(Via::Auto, eperm).ok(),
            Some(Method::Ptrace {
                fallback: Some("the seccomp profile forbids pidfd_getfd (EPERM)".into())
            })
        );
        assert_eq!(
            choose(Via::Ptrace, ok).ok(),
            Some(Method::Ptrace { fallback: None })
        );
        assert_eq!(choose(Via::Notify, ok).ok(), Some(Method::Notify));
        assert_eq!(
            choose(Via::Notify, eperm)
                .map_err(|e| e.to_string())
                .err()
                .as_deref(),
            Some(
                "--method supervise is blocked: FORCEBACKLOG_SUPERVISE_VIA=notify, but the \
                 seccomp profile forbids pidfd_getfd (EPERM)"
            )
        );
    }

    #[test]
    fn via_values() {
        assert_eq!(Via::parse(None).ok(), Some(Via::Auto));
        assert_eq!(Via::parse(Some("auto")).ok(), Some(Via::Auto));
        assert_eq!(Via::parse(Some("")).ok(), Some(Via::Auto));
        assert_eq!(Via::parse(Some("notify")).ok(), Some(Via::Notify));
        assert_eq!(Via::parse(Some("ptrace")).ok(), Some(Via::Ptrace));
        assert_eq!(
            Via::parse(Some("bpf"))
                .map_err(|e| e.to_string())
                .err()
                .as_deref(),
            Some("FORCEBACKLOG_SUPERVISE_VIA=\"bpf\" is not one of auto, notify, ptrace")
        );
    }

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
        for (listen, action) in [
            (&[50u32][..], SECCOMP_RET_TRACE),
            (&[50, 0x4000_0032], SECCOMP_RET_TRACE),
            (&[201], SECCOMP_RET_TRACE),
            (&[50, 0x4000_0032], SECCOMP_RET_USER_NOTIF),
            (&[201], SECCOMP_RET_USER_NOTIF),
        ] {
            let program = filter(0xc000_003e, listen, action);
            for &nr in listen {
                assert_eq!(verdict(&program, 0xc000_003e, nr), action);
                assert_eq!(verdict(&program, 0x4000_0003, nr), SECCOMP_RET_ALLOW);
            }
            for nr in [0, 1, 49, 51, 288, 0x4000_0000] {
                assert_eq!(verdict(&program, 0xc000_003e, nr), SECCOMP_RET_ALLOW);
            }
        }
    }
}
