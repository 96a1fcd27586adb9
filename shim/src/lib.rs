//! `libforcebacklog.so`: an `LD_PRELOAD` library that interposes
//! `listen()` and raises the TCP accept-queue backlog of programs that
//! cannot be changed.
//!
//! `BACKLOG=234 LD_PRELOAD=/path/libforcebacklog.so app` makes every
//! `listen(fd, n)` of `app` use max(n, 234) (`FORCEBACKLOG_MODE=raise`,
//! the default) or exactly 234 (`FORCEBACKLOG_MODE=set`), optionally only
//! for the local ports in `FORCEBACKLOG_PORTS`. The settings are read on
//! every call; see [`settings`] for the exact rules. Anything unset or
//! invalid passes the call through unchanged: the shim never breaks a
//! program.
//!
//! Design constraints, all kept here:
//! - `no_std`, no allocator, no `DT_NEEDED` entries: one file for glibc
//!   and musl programs. libc functions are weak symbols bound from the
//!   program's libc ([`host`]); kernel calls that must not disturb
//!   `errno` are raw system calls ([`sys`]).
//! - The real `listen` is the next one in the lookup order
//!   (`dlsym(RTLD_NEXT, "listen")`, so other preload libraries keep
//!   working), cached in an atomic; without one the shim issues the
//!   system call and sets `errno` itself. Return value and `errno` are
//!   those of the real call.
//! - Never writes to stdout; with `FORCEBACKLOG_DEBUG=1` exactly one line
//!   per changed call goes to stderr through a raw `write(2)`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod host;
mod line;
mod settings;
mod sys;

use core::ffi::c_int;
use core::sync::atomic::{AtomicUsize, Ordering};

use settings::{MAX_NUMBER_LEN, MAX_PORTS_LEN, MAX_WORD_LEN};

/// The next `listen` in the lookup order: 0 = not looked up yet,
/// [`NO_NEXT`] = none (use the system call), else its address.
static NEXT_LISTEN: AtomicUsize = AtomicUsize::new(0);
const NO_NEXT: usize = 1;

type ListenFn = unsafe extern "C" fn(c_int, c_int) -> c_int;

/// The interposed `listen(2)`.
///
/// # Safety
/// Same contract as libc's `listen`: any integers are accepted.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    let backlog = adjusted(fd, backlog);
    let next = next_listen();
    if next != NO_NEXT {
        // SAFETY: `next` is the address dlsym returned for "listen", a
        // function with libc's listen signature.
        let real: ListenFn = unsafe { core::mem::transmute::<usize, ListenFn>(next) };
        // SAFETY: forwarding the caller's arguments to the real listen.
        return unsafe { real(fd, backlog) };
    }
    let ret = sys::listen(fd, backlog);
    if ret < 0 {
        host::set_errno(-ret as c_int);
        return -1;
    }
    0
}

/// The address of the next `listen`, looked up once. Threads racing on
/// the first call all store the same value, so a relaxed atomic is
/// enough.
fn next_listen() -> usize {
    let cached = NEXT_LISTEN.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // dlsym may change errno even when it succeeds; the caller's errno
    // must be exactly what the real listen leaves.
    let saved = host::errno();
    let found = host::next_symbol(c"listen");
    host::set_errno(saved);
    // RTLD_NEXT never returns this object's own listen, so a non-null
    // result is the libc (or next preload library) definition.
    let next = if found == 0 { NO_NEXT } else { found };
    NEXT_LISTEN.store(next, Ordering::Relaxed);
    next
}

/// The backlog to pass on for `listen(fd, app)`, from the environment.
fn adjusted(fd: c_int, app: c_int) -> c_int {
    let Some(backlog) = host::env(c"BACKLOG", MAX_NUMBER_LEN).and_then(settings::parse_number)
    else {
        return app;
    };
    let Some(mode) = settings::parse_mode(host::env(c"FORCEBACKLOG_MODE", MAX_WORD_LEN)) else {
        return app;
    };
    let ports = host::env(c"FORCEBACKLOG_PORTS", MAX_PORTS_LEN).filter(|list| !list.is_empty());
    let debug = host::env(c"FORCEBACKLOG_DEBUG", MAX_WORD_LEN) == Some(b"1");
    let port = if ports.is_some() || debug {
        sys::local_port(fd)
    } else {
        None
    };
    if let Some(list) = ports {
        let selected = settings::ports_valid(list)
            && port.is_some_and(|port| settings::ports_contain(list, port));
        if !selected {
            return app;
        }
    }
    let new = settings::new_backlog(mode, app, backlog);
    if debug && new != app {
        sys::write_stderr(line::Line::new(fd, port, app, new).as_bytes());
    }
    new
}

/// A panic cannot happen in this code (no indexing, no arithmetic that
/// can overflow in release); if one did, stop the process rather than
/// unwind through C frames.
#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: ud2 raises SIGILL; nothing after it runs.
    unsafe {
        core::arch::asm!("ud2", options(noreturn, nomem, nostack))
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: udf raises SIGILL; nothing after it runs.
    unsafe {
        core::arch::asm!("udf #0", options(noreturn, nomem, nostack))
    }
}
