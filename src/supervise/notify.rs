//! The user-notification method: the filter returns
//! `SECCOMP_RET_USER_NOTIF` for `listen`; the helper passes the filter's
//! listener to the supervisor over a Unix socket, and for each
//! notification the supervisor takes the socket from the calling thread
//! (`pidfd_open` + `pidfd_getfd`), checks the notification is still
//! pending, calls `listen` itself with the new backlog and answers with
//! that call's result or errno. The original call is never continued
//! after that (it would set the small backlog again).

use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use rustix::process::{PidfdFlags, PidfdGetfdFlags};
use seccomp_notify::{Listener, Notification, Reply};

use super::{Rule, SuperviseError, arch};

/// `PIDFD_THREAD` (Linux 6.9+): a pidfd for a thread, not only a
/// thread-group leader (the same bit as `O_EXCL`).
const PIDFD_THREAD: u32 = 0o200;

/// Set once `pidfd_open` rejected `PIDFD_THREAD` (a kernel before 6.9).
static NO_PIDFD_THREAD: AtomicBool = AtomicBool::new(false);

/// The rendezvous of the supervisor and its helper: an abstract Unix
/// socket (no file system needed), accepted from the helper's pid only.
pub struct Rendezvous {
    name: String,
    socket: UnixListener,
}

impl Rendezvous {
    /// Binds a fresh abstract name.
    pub fn bind() -> io::Result<Rendezvous> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("forcebacklog-supervise-{}-{nanos}", std::process::id());
        let socket = UnixListener::bind_addr(&SocketAddr::from_abstract_name(&name)?)?;
        socket.set_nonblocking(true)?;
        Ok(Rendezvous { name, socket })
    }

    /// The abstract name, for the helper's environment.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for the helper's listener. `Ok(Err(code))` when the helper
    /// exited first (it printed why), with its exit status.
    pub fn receive(&self, child: &mut Child) -> Result<Result<Listener, i32>, SuperviseError> {
        let handoff = |reason: String| SuperviseError::Handoff { reason };
        let helper = child.id();
        let stream = loop {
            match self.socket.accept() {
                Ok((stream, _)) => {
                    let peer = rustix::net::sockopt::socket_peercred(&stream)
                        .map_err(|err| handoff(format!("SO_PEERCRED: {err}")))?;
                    if u32::try_from(peer.pid.as_raw_nonzero().get()).ok() == Some(helper) {
                        break stream;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    if let Some(status) = child
                        .try_wait()
                        .map_err(|err| handoff(format!("waiting for the helper: {err}")))?
                    {
                        return Ok(Err(super::status_code(status)));
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(handoff(format!("accept: {err}"))),
            }
        };
        stream
            .set_nonblocking(false)
            .map_err(|err| handoff(err.to_string()))?;
        match recv_fd(&stream).map_err(|err| handoff(format!("recvmsg: {err}")))? {
            Some(fd) => Ok(Ok(Listener::from(fd))),
            // The helper failed after connecting and said why.
            None => Ok(Err(child.wait().map_or(1, super::status_code))),
        }
    }
}

/// Receives one descriptor, `None` on end of stream.
fn recv_fd(stream: &UnixStream) -> io::Result<Option<OwnedFd>> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    loop {
        match rustix::net::recvmsg(
            stream,
            &mut [IoSliceMut::new(&mut byte)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    let mut received = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            for fd in fds {
                received.get_or_insert(fd);
            }
        }
    }
    Ok(received)
}

/// In the helper: connects to the supervisor, installs the filter and
/// sends its listener. The connection comes first, so a failure to
/// install closes it and the supervisor reports the helper's error.
pub fn install_and_send(
    name: &str,
    program: &[seccompiler::sock_filter],
) -> Result<(), SuperviseError> {
    let handoff = |reason: String| SuperviseError::Handoff { reason };
    let address = SocketAddr::from_abstract_name(name).map_err(|err| handoff(err.to_string()))?;
    let stream =
        UnixStream::connect_addr(&address).map_err(|err| handoff(format!("connect: {err}")))?;
    let program: Vec<seccomp_notify::sock_filter> = program
        .iter()
        .map(|insn| seccomp_notify::sock_filter {
            code: insn.code,
            jt: insn.jt,
            jf: insn.jf,
            k: insn.k,
        })
        .collect();
    let listener = seccomp_notify::install(&program).map_err(|err| {
        if err.raw_os_error() == Some(nix::libc::EBUSY) {
            SuperviseError::Nested
        } else {
            SuperviseError::Filter(err.to_string())
        }
    })?;
    let fds = [listener.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        &stream,
        &[io::IoSlice::new(b"L")],
        &mut control,
        SendFlags::empty(),
    )
    .map_err(|err| handoff(format!("sendmsg: {err}")))?;
    Ok(())
}

/// Answers the notifications on a thread of its own, and waits for the
/// command (reaping orphaned descendants: the supervisor is a child
/// subreaper) until it exits; returns its exit status.
pub fn supervise(
    listener: Listener,
    main: Pid,
    rule: Rule,
    debug: bool,
) -> Result<i32, SuperviseError> {
    std::thread::Builder::new()
        .name("seccomp-notify".into())
        .spawn(move || serve(&listener, rule, debug))
        .map_err(|err| SuperviseError::Handoff {
            reason: format!("cannot start the notification thread: {err}"),
        })?;
    super::forward_signals(main);
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == main => return Ok(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == main => return Ok(128 + sig as i32),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(source) => {
                return Err(SuperviseError::Sys {
                    call: "waitpid",
                    source,
                });
            }
        }
    }
}

/// The notification loop; ends when the listener fails (no process is
/// left under the filter).
fn serve(listener: &Listener, rule: Rule, debug: bool) {
    loop {
        let notification = match listener.recv() {
            Ok(notification) => notification,
            // The caller died before the notification was read.
            Err(err) if err.raw_os_error() == Some(nix::libc::ENOENT) => continue,
            Err(_) => return,
        };
        // A panic must not end this thread: the listener would close and
        // every later listen() of the command would fail with ENOSYS.
        let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            answer(listener, &notification, rule, debug)
        }))
        .unwrap_or(Some(Reply::Continue));
        if let Some(reply) = reply {
            // ENOENT: the caller died or was interrupted meanwhile.
            let _ = listener.respond(notification.id, reply);
        }
    }
}

/// The answer to one notification; `None` when it is no longer pending.
fn answer(
    listener: &Listener,
    notification: &Notification,
    rule: Rule,
    debug: bool,
) -> Option<Reply> {
    let Some((fd, app)) =
        arch::notified_listen(notification.arch, notification.nr, &notification.args)
    else {
        // Not a call this filter traps: let the kernel run it.
        return Some(Reply::Continue);
    };
    let tid = notification.pid;
    let socket = match take_fd(tid, fd) {
        Ok(socket) => socket,
        Err(Errno::EBADF) => return Some(Reply::Error(nix::libc::EBADF)),
        Err(Errno::ESRCH) => return None,
        Err(errno) => {
            // Not taken (e.g. a program that made itself non-dumpable):
            // nothing was called yet, so the kernel may run the original.
            eprintln!(
                "forcebacklog: listen(fd {fd}) of pid {tid} keeps its backlog {app}: \
                 cannot take the socket ({errno:?}: {}); FORCEBACKLOG_SUPERVISE_VIA=ptrace \
                 reaches it",
                errno.desc()
            );
            return Some(Reply::Continue);
        }
    };
    // The pid named the caller only if the notification is still pending.
    if !listener.id_valid(notification.id).unwrap_or(false) {
        return None;
    }
    let new = rule.apply(app);
    match rustix::net::listen(&socket, new) {
        Ok(()) => {
            if debug && new != app {
                eprintln!("forcebacklog: listen(fd {fd}) backlog {app} -> {new} (pid {tid})");
            }
            Some(Reply::Return(0))
        }
        Err(err) => Some(Reply::Error(err.raw_os_error())),
    }
}

/// A duplicate of descriptor `fd` of thread `tid`.
fn take_fd(tid: u32, fd: i32) -> Result<OwnedFd, Errno> {
    // What the kernel answers for a negative descriptor (rustix takes
    // non-negative ones only).
    if fd < 0 {
        return Err(Errno::EBADF);
    }
    let errno = |err: rustix::io::Errno| Errno::from_raw(err.raw_os_error());
    let pidfd = pidfd_of_thread(tid)?;
    rustix::process::pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty()).map_err(errno)
}

/// A pidfd for thread `tid`: `PIDFD_THREAD` on Linux 6.9+, else the pidfd
/// of its thread group (from `Tgid:` in /proc/TID/status).
fn pidfd_of_thread(tid: u32) -> Result<OwnedFd, Errno> {
    let errno = |err: rustix::io::Errno| Errno::from_raw(err.raw_os_error());
    let pid = |raw: u32| {
        i32::try_from(raw)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .ok_or(Errno::ESRCH)
    };
    if !NO_PIDFD_THREAD.load(Ordering::Relaxed) {
        match rustix::process::pidfd_open(pid(tid)?, PidfdFlags::from_bits_retain(PIDFD_THREAD)) {
            Ok(pidfd) => return Ok(pidfd),
            Err(rustix::io::Errno::INVAL) => NO_PIDFD_THREAD.store(true, Ordering::Relaxed),
            Err(err) => return Err(errno(err)),
        }
    }
    let status =
        std::fs::read_to_string(format!("/proc/{tid}/status")).map_err(|_| Errno::ESRCH)?;
    let tgid = thread_group(&status).ok_or(Errno::ESRCH)?;
    rustix::process::pidfd_open(pid(tgid)?, PidfdFlags::empty()).map_err(errno)
}

/// `Tgid:` of a /proc/TID/status text.
fn thread_group(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))
        .and_then(|value| value.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_group_from_status() {
        assert_eq!(
            thread_group("Name:\tx\nTgid:\t4242\nPid:\t4243\n"),
            Some(4242)
        );
        assert_eq!(thread_group("Pid:\t1\n"), None);
    }

    #[test]
    fn a_descriptor_of_another_thread_is_taken() {
        let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        let (a, _b) = UnixStream::pair().expect("socketpair");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&a);
        let taken = std::thread::spawn(move || take_fd(tid, fd).map(drop))
            .join()
            .expect("join");
        assert_eq!(taken, Ok(()));
        let closed = std::thread::spawn(move || take_fd(tid, 100_000).map(drop))
            .join()
            .expect("join");
        assert_eq!(closed, Err(Errno::EBADF));
        assert_eq!(take_fd(tid, -1).map(drop), Err(Errno::EBADF));
    }
}
