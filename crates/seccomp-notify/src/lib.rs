//! A safe API over the seccomp user-notification interface
//! (`seccomp(2)` with `SECCOMP_FILTER_FLAG_NEW_LISTENER` and the
//! `SECCOMP_IOCTL_NOTIF_*` ioctls), for `forcebacklog run --method
//! supervise`.
//!
//! No maintained crate wraps these safely without linking the C
//! libseccomp (which the static musl build avoids); `libc` has the
//! structures and ioctl numbers. Each `unsafe` block below is one system
//! call on owned, initialised memory, with its `SAFETY:` line.
//!
//! - [`install`] sets `no_new_privs`, installs a classic BPF filter on the
//!   calling thread and returns the [`Listener`] for the filter's
//!   `SECCOMP_RET_USER_NOTIF` verdicts.
//! - [`Listener::recv`] waits for the next [`Notification`],
//!   [`Listener::id_valid`] tells whether its caller is still waiting
//!   (its pid still names the same task), [`Listener::respond`] answers.
//! - [`user_notif_available`] asks the kernel whether it knows the action.

#![deny(unsafe_op_in_unsafe_fn)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// One classic BPF instruction (`struct sock_filter`).
pub use libc::sock_filter;

/// `SECCOMP_RET_USER_NOTIF`: the verdict that reaches the [`Listener`].
pub const RET_USER_NOTIF: u32 = libc::SECCOMP_RET_USER_NOTIF;

/// `SECCOMP_IOCTL_NOTIF_ID_VALID` as kernels before 5.17 know it (the
/// direction bits were wrong, `_IOR`); later kernels accept both.
#[allow(clippy::unnecessary_cast)] // Ioctl is c_int on musl, c_ulong on glibc
const NOTIF_ID_VALID_OLD: libc::Ioctl = ((2u32 << 30) | (8 << 16) | ((b'!' as u32) << 8) | 2) as _;

/// A system call the kernel was asked to let the supervisor answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    /// The cookie to answer with.
    pub id: u64,
    /// The calling thread's id (in the listener's pid namespace).
    pub pid: u32,
    /// The system call number.
    pub nr: i32,
    /// The `AUDIT_ARCH_*` value of the call.
    pub arch: u32,
    /// The six raw argument registers.
    pub args: [u64; 6],
}

/// The answer to a [`Notification`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The call returns this value (no error).
    Return(i64),
    /// The call fails with this errno (positive, e.g. `libc::EBADF`).
    Error(i32),
    /// The kernel runs the original call itself
    /// (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
    Continue,
}

/// The listener of a filter installed by [`install`] (or received from
/// the process that installed it).
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
}

impl From<OwnedFd> for Listener {
    fn from(fd: OwnedFd) -> Self {
        Listener { fd }
    }
}

impl From<Listener> for OwnedFd {
    fn from(listener: Listener) -> Self {
        listener.fd
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The result of a system call returning -1 and errno, or a value.
fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Asks the kernel whether it supports `SECCOMP_RET_USER_NOTIF`
/// (`SECCOMP_GET_ACTION_AVAIL`): `Err` with `EOPNOTSUPP` when it does not
/// know the action, `EINVAL`/`ENOSYS` on kernels without the operation.
pub fn user_notif_available() -> io::Result<()> {
    let action: u32 = RET_USER_NOTIF;
    // SAFETY: SECCOMP_GET_ACTION_AVAIL reads one u32 through the pointer,
    // which points to a live local for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0,
            &action as *const u32,
        )
    };
    check(ret).map(drop)
}

/// Sets `no_new_privs` and installs `program` on the calling thread with
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`. The filter is inherited by every
/// child and survives `execve`; it cannot be removed. `EBUSY` means a
/// filter of this thread already has a listener (a supervisor inside a
/// supervisor). The returned descriptor is close-on-exec.
pub fn install(program: &[sock_filter]) -> io::Result<Listener> {
    let len = u16::try_from(program.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "filter too long"))?;
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    check(libc::c_long::from(ret))?;
    let fprog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: the kernel copies `len` instructions from `filter`, which
    // points to `program` (alive and unmodified during the call); it never
    // writes through the pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        )
    };
    let fd = RawFd::try_from(check(ret)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "listener fd out of range"))?;
    // SAFETY: on success the call returned a new descriptor that nothing
    // else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(Listener { fd })
}

impl Listener {
    /// Waits for the next notification (`SECCOMP_IOCTL_NOTIF_RECV`),
    /// retrying on `EINTR`. `ENOENT` means the caller died before it was
    /// received: wait for the next one.
    pub fn recv(&self) -> io::Result<Notification> {
        loop {
            // The kernel requires a zeroed structure.
            let mut notif = libc::seccomp_notif {
                id: 0,
                pid: 0,
                flags: 0,
                data: libc::seccomp_data {
                    nr: 0,
                    arch: 0,
                    instruction_pointer: 0,
                    args: [0; 6],
                },
            };
            // SAFETY: the ioctl writes one `struct seccomp_notif` (the size
            // encoded in the request number) into the live local.
            let ret = unsafe {
                libc::ioctl(
                    self.fd.as_raw_fd(),
                    libc::SECCOMP_IOCTL_NOTIF_RECV,
                    &mut notif as *mut libc::seccomp_notif,
                )
            };
            match check(libc::c_long::from(ret)) {
                Ok(_) => {
                    return Ok(Notification {
                        id: notif.id,
                        pid: notif.pid,
                        nr: notif.data.nr,
                        arch: notif.data.arch,
                        args: notif.data.args,
                    });
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Whether the notification `id` is still pending
    /// (`SECCOMP_IOCTL_NOTIF_ID_VALID`): its caller has not died, so a pid
    /// or pidfd taken from it still names that caller.
    pub fn id_valid(&self, id: u64) -> io::Result<bool> {
        let mut last = None;
        for request in [libc::SECCOMP_IOCTL_NOTIF_ID_VALID, NOTIF_ID_VALID_OLD] {
            // SAFETY: the ioctl reads one u64 from the live local.
            let ret = unsafe { libc::ioctl(self.fd.as_raw_fd(), request, &id as *const u64) };
            match check(libc::c_long::from(ret)) {
                Ok(_) => return Ok(true),
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
                // An older kernel knows the request only with the old number.
                Err(err) if err.raw_os_error() == Some(libc::EINVAL) => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL)))
    }

    /// Answers notification `id` (`SECCOMP_IOCTL_NOTIF_SEND`). `ENOENT`
    /// means the caller died or was interrupted meanwhile.
    pub fn respond(&self, id: u64, reply: Reply) -> io::Result<()> {
        let (val, error, flags) = match reply {
            Reply::Return(val) => (val, 0, 0),
            Reply::Error(errno) => (-1, -errno.abs(), 0),
            Reply::Continue => (0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
        };
        let mut resp = libc::seccomp_notif_resp {
            id,
            val,
            error,
            flags,
        };
        // SAFETY: the ioctl reads (and may write back) one
        // `struct seccomp_notif_resp`, the live local.
        let ret = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND,
                &mut resp as *mut libc::seccomp_notif_resp,
            )
        };
        check(libc::c_long::from(ret)).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unnecessary_cast)] // Ioctl is c_int on musl, c_ulong on glibc
    fn the_old_id_valid_number_is_the_ior_form() {
        assert_eq!(NOTIF_ID_VALID_OLD as u64 & 0xffff_ffff, 0x8008_2102);
        assert_eq!(
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID as u64 & 0xffff_ffff,
            0x4008_2102
        );
    }

    /// `nr == SYS_getppid` -> `SECCOMP_RET_USER_NOTIF`, else allow.
    fn trap_getppid() -> Vec<sock_filter> {
        let insn = |code, jt, jf, k| sock_filter { code, jt, jf, k };
        vec![
            insn(0x20, 0, 0, 0),
            insn(0x15, 0, 1, libc::SYS_getppid as u32),
            insn(0x06, 0, 0, RET_USER_NOTIF),
            insn(0x06, 0, 0, libc::SECCOMP_RET_ALLOW),
        ]
    }

    /// A thread installs the filter and sends its listener back; its
    /// getppid() calls are answered by this thread.
    #[test]
    fn notifications_are_received_validated_and_answered() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let trapped = std::thread::spawn(move || {
            let listener = install(&trap_getppid()).expect("install the filter");
            tx.send(listener).expect("send the listener");
            // SAFETY: getppid has no arguments and touches no memory.
            let first = unsafe { libc::getppid() };
            // SAFETY: the same call, raw.
            let second = unsafe { libc::syscall(libc::SYS_getppid) };
            let errno = io::Error::last_os_error().raw_os_error();
            go_rx.recv().expect("wait");
            // A second listener on the same thread is refused.
            let nested = install(&trap_getppid()).map(drop);
            (first, second, errno, nested.map_err(|e| e.raw_os_error()))
        });
        let listener = rx.recv().expect("the listener");
        let tid = |n: &Notification| n.pid;
        let first = listener.recv().expect("recv");
        assert_eq!(first.nr, libc::SYS_getppid as i32);
        assert!(listener.id_valid(first.id).expect("id_valid"));
        listener
            .respond(first.id, Reply::Return(4242))
            .expect("send");
        let second = listener.recv().expect("recv");
        assert_eq!(tid(&second), tid(&first));
        listener
            .respond(second.id, Reply::Error(libc::EBADF))
            .expect("send");
        assert!(!listener.id_valid(second.id).expect("id_valid"));
        go_tx.send(()).expect("go");
        let (first, second, errno, nested) = trapped.join().expect("join");
        assert_eq!(first, 4242);
        assert_eq!((second, errno), (-1, Some(libc::EBADF)));
        assert_eq!(nested, Err(Some(libc::EBUSY)));
    }

    #[test]
    fn the_kernel_supports_user_notification() {
        user_notif_available().expect("SECCOMP_GET_ACTION_AVAIL for SECCOMP_RET_USER_NOTIF");
    }
}
