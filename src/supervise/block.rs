//! What can block the supervisor, found before the command starts where
//! possible, and named in one line: Yama's `ptrace_scope`, a tracer of
//! forcebacklog itself, and (for user notification) a seccomp profile
//! that refuses `pidfd_getfd`.

use std::os::fd::AsRawFd;

use nix::errno::Errno;

use super::SuperviseError;

/// Hidden: the file Yama's scope is read from instead of
/// `/proc/sys/kernel/yama/ptrace_scope` (tests on kernels without Yama).
pub const YAMA_SCOPE_FILE_ENV: &str = "FORCEBACKLOG_SUPERVISE_YAMA_SCOPE_FILE";

/// `CAP_SYS_PTRACE`.
const CAP_SYS_PTRACE: u32 = 19;

/// Yama's `ptrace_scope` (0–3), `None` without Yama.
pub fn yama_scope() -> Option<u8> {
    let path = std::env::var_os(YAMA_SCOPE_FILE_ENV)
        .unwrap_or_else(|| "/proc/sys/kernel/yama/ptrace_scope".into());
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `CapEff:` of a `/proc/PID/status` text holds `cap`.
fn has_capability(status: &str, cap: u32) -> bool {
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << cap) != 0)
}

/// Whether this process holds `CAP_SYS_PTRACE`.
fn has_cap_sys_ptrace() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|status| has_capability(&status, CAP_SYS_PTRACE))
}

/// The refusal Yama's scope calls for. Both methods need ptrace access
/// to the command (`PTRACE_SEIZE`, or `pidfd_getfd` on its threads):
/// scope 3 forbids it to everyone, scope 2 to processes without
/// `CAP_SYS_PTRACE`; scopes 0 and 1 (a parent may attach to its
/// descendants) allow it.
pub fn yama_block(scope: Option<u8>, cap_sys_ptrace: bool) -> Option<SuperviseError> {
    match scope {
        Some(3) => Some(SuperviseError::YamaDisabled),
        Some(2) if !cap_sys_ptrace => Some(SuperviseError::YamaAdminOnly),
        _ => None,
    }
}

/// `TracerPid:` of /proc/self/status.
pub fn tracer_pid() -> Option<i32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("TracerPid:"))
        .and_then(|value| value.trim().parse().ok())
}

/// Refuses early, with the block named, where neither method can work.
pub fn preflight() -> Result<(), SuperviseError> {
    if let Some(refusal) = yama_block(yama_scope(), has_cap_sys_ptrace()) {
        return Err(refusal);
    }
    match tracer_pid() {
        Some(tracer) if tracer != 0 => Err(SuperviseError::AlreadyTraced { tracer }),
        _ => Ok(()),
    }
}

/// Names the likely block behind a refused `PTRACE_SEIZE`.
pub fn seize_reason(errno: Errno, yama: Option<u8>) -> String {
    match errno {
        Errno::EPERM if yama == Some(2) => {
            "kernel.yama.ptrace_scope is 2 (admin-only attach: needs CAP_SYS_PTRACE) (EPERM)".into()
        }
        Errno::EPERM if yama == Some(3) => {
            "kernel.yama.ptrace_scope is 3 (ptrace disabled) (EPERM)".into()
        }
        Errno::EPERM => {
            "the seccomp profile, an LSM or a tracer of the command forbids it (EPERM)".into()
        }
        Errno::ENOSYS => {
            "ptrace is missing (ENOSYS: the seccomp profile forbids it, or an emulator such as \
             qemu-user runs this binary)"
                .into()
        }
        other => format!("{} ({other:?})", other.desc()),
    }
}

/// The step of the user-notification probe that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeStep {
    /// `seccomp(SECCOMP_GET_ACTION_AVAIL, SECCOMP_RET_USER_NOTIF)`.
    Action,
    /// `pidfd_open` of this process.
    PidfdOpen,
    /// `pidfd_getfd` on this process.
    PidfdGetfd,
}

/// Why user notification cannot be used, from the failed probe step.
pub fn probe_reason(step: ProbeStep, errno: Errno) -> String {
    match (step, errno) {
        (ProbeStep::Action, _) => format!(
            "the kernel has no seccomp user notification (SECCOMP_GET_ACTION_AVAIL: {errno:?}; \
             Linux >= 5.0 needed)"
        ),
        (ProbeStep::PidfdOpen | ProbeStep::PidfdGetfd, Errno::ENOSYS) => format!(
            "{} is missing (ENOSYS: Linux >= 5.6 needed, or the seccomp profile hides it)",
            step.call()
        ),
        (_, Errno::EPERM) => format!(
            "the seccomp profile forbids {} (EPERM; Docker's and containerd's default profiles \
             allow it only with CAP_SYS_PTRACE)",
            step.call()
        ),
        (_, other) => format!("{} failed ({other:?}: {})", step.call(), other.desc()),
    }
}

impl ProbeStep {
    fn call(self) -> &'static str {
        match self {
            ProbeStep::Action => "seccomp(SECCOMP_GET_ACTION_AVAIL)",
            ProbeStep::PidfdOpen => "pidfd_open",
            ProbeStep::PidfdGetfd => "pidfd_getfd",
        }
    }
}

/// Probes user notification: the kernel knows the action, and
/// `pidfd_getfd` works on this very process. Only a seccomp profile (or a
/// kernel without the call) refuses the latter: ptrace access to oneself
/// is always granted, Yama included.
pub fn probe_notify() -> Result<(), String> {
    let errno = |err: std::io::Error| Errno::from_raw(err.raw_os_error().unwrap_or(0));
    seccomp_notify::user_notif_available()
        .map_err(|err| probe_reason(ProbeStep::Action, errno(err)))?;
    let rerr = |err: rustix::io::Errno| Errno::from_raw(err.raw_os_error());
    let pidfd = rustix::process::pidfd_open(
        rustix::process::getpid(),
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|err| probe_reason(ProbeStep::PidfdOpen, rerr(err)))?;
    rustix::process::pidfd_getfd(
        &pidfd,
        pidfd.as_raw_fd(),
        rustix::process::PidfdGetfdFlags::empty(),
    )
    .map_err(|err| probe_reason(ProbeStep::PidfdGetfd, rerr(err)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yama_scopes() {
        assert!(yama_block(None, false).is_none());
        assert!(yama_block(Some(0), false).is_none());
        assert!(yama_block(Some(1), false).is_none());
        assert!(yama_block(Some(2), true).is_none());
        let two = yama_block(Some(2), false).map(|e| e.to_string());
        assert_eq!(
            two.as_deref(),
            Some(
                "--method supervise is blocked: kernel.yama.ptrace_scope is 2 (admin-only \
                 attach) and this process lacks CAP_SYS_PTRACE; use the default method (the shim)"
            )
        );
        for cap in [false, true] {
            let three = yama_block(Some(3), cap).map(|e| e.to_string());
            assert_eq!(
                three.as_deref(),
                Some(
                    "--method supervise is blocked: kernel.yama.ptrace_scope is 3 (ptrace \
                     disabled); use the default method (the shim)"
                )
            );
        }
    }

    #[test]
    fn capabilities_from_status() {
        let status = "Name:\tx\nCapEff:\t0000000000080000\n";
        assert!(has_capability(status, CAP_SYS_PTRACE));
        assert!(!has_capability(
            "CapEff:\t0000000000000000\n",
            CAP_SYS_PTRACE
        ));
        assert!(has_capability(
            "CapEff:\t000001ffffffffff\n",
            CAP_SYS_PTRACE
        ));
        assert!(!has_capability("CapEff:\tzz\n", CAP_SYS_PTRACE));
        assert!(!has_capability("", CAP_SYS_PTRACE));
    }

    #[test]
    fn seize_reasons_name_the_block() {
        assert!(seize_reason(Errno::EPERM, Some(2)).starts_with("kernel.yama.ptrace_scope is 2"));
        assert!(seize_reason(Errno::EPERM, Some(3)).starts_with("kernel.yama.ptrace_scope is 3"));
        for scope in [None, Some(0), Some(1)] {
            assert!(seize_reason(Errno::EPERM, scope).starts_with("the seccomp profile"));
        }
        assert!(seize_reason(Errno::ENOSYS, None).starts_with("ptrace is missing (ENOSYS"));
        assert!(seize_reason(Errno::ESRCH, None).ends_with("(ESRCH)"));
    }

    #[test]
    fn probe_reasons_name_the_block() {
        assert_eq!(
            probe_reason(ProbeStep::PidfdGetfd, Errno::EPERM),
            "the seccomp profile forbids pidfd_getfd (EPERM; Docker's and containerd's default \
             profiles allow it only with CAP_SYS_PTRACE)"
        );
        assert!(
            probe_reason(ProbeStep::PidfdOpen, Errno::ENOSYS).starts_with("pidfd_open is missing")
        );
        assert!(probe_reason(ProbeStep::Action, Errno::EINVAL).contains("Linux >= 5.0"));
    }

    #[test]
    fn the_probe_succeeds_on_this_kernel() {
        // Kernel 5.6+ without a seccomp profile (the development machine
        // and CI); in a container under a default profile it fails.
        assert_eq!(probe_notify(), Ok(()));
    }
}
