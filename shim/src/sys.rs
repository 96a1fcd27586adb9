//! Raw Linux system calls: the fallback `listen`, `getsockname` for the
//! local port, and `write` for the debug line.
//!
//! Raw calls never touch `errno`, which is why the shim can preserve the
//! caller's `errno` without help from libc. The numbers differ per
//! architecture; x86_64 and aarch64 are supported.

use core::ffi::c_int;

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const WRITE: usize = 1;
    pub const LISTEN: usize = 50;
    pub const GETSOCKNAME: usize = 51;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const WRITE: usize = 64;
    pub const LISTEN: usize = 201;
    pub const GETSOCKNAME: usize = 204;
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("libforcebacklog.so supports x86_64 and aarch64 Linux only");

/// A three-argument system call; returns the kernel's result (`-errno`
/// on failure).
///
/// # Safety
/// The arguments must be valid for system call `n`: pointers must point
/// to memory the kernel may read or write as that call defines.
#[cfg(target_arch = "x86_64")]
unsafe fn syscall3(n: usize, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    // SAFETY: the x86_64 Linux syscall ABI: number in rax, arguments in
    // rdi/rsi/rdx, result in rax; the kernel clobbers rcx and r11 only.
    // The caller guarantees the arguments are valid for call `n`.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// A three-argument system call; returns the kernel's result (`-errno`
/// on failure).
///
/// # Safety
/// The arguments must be valid for system call `n`: pointers must point
/// to memory the kernel may read or write as that call defines.
#[cfg(target_arch = "aarch64")]
unsafe fn syscall3(n: usize, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    // SAFETY: the aarch64 Linux syscall ABI: number in x8, arguments in
    // x0..x2, result in x0; nothing else is clobbered. The caller
    // guarantees the arguments are valid for call `n`.
    unsafe {
        core::arch::asm!(
            "svc 0",
            inlateout("x0") a as isize => ret,
            in("x1") b,
            in("x2") c,
            in("x8") n,
            options(nostack),
        );
    }
    ret
}

/// The kernel's `listen(2)`; returns 0 or `-errno`.
pub fn listen(fd: c_int, backlog: c_int) -> isize {
    // SAFETY: listen takes two integers; any values are valid (the kernel
    // reports a bad fd or a non-socket as an error).
    unsafe { syscall3(nr::LISTEN, fd as usize, backlog as usize, 0) }
}

/// The local TCP/UDP port of `fd` when it is an IPv4 or IPv6 socket.
pub fn local_port(fd: c_int) -> Option<u16> {
    const AF_INET: u16 = 2;
    const AF_INET6: u16 = 10;
    // sockaddr_storage: 128 bytes, 8-aligned. Left uninitialised: only
    // the bytes the kernel reports as written are read.
    let mut addr = core::mem::MaybeUninit::<[u64; 16]>::uninit();
    let mut len: u32 = 128;
    // SAFETY: addr is 128 writable bytes and len says so; the kernel
    // writes at most len bytes to addr and the real length to len.
    let ret = unsafe {
        syscall3(
            nr::GETSOCKNAME,
            fd as usize,
            addr.as_mut_ptr() as usize,
            &mut len as *mut u32 as usize,
        )
    };
    if ret != 0 || len < 4 {
        return None;
    }
    // SAFETY: the call succeeded and reported at least 4 bytes, so the
    // first 4 bytes of addr (family, port) are initialised.
    let head = unsafe { addr.as_ptr().cast::<[u8; 4]>().read() };
    let family = u16::from_ne_bytes([head[0], head[1]]);
    if family == AF_INET || family == AF_INET6 {
        Some(u16::from_be_bytes([head[2], head[3]]))
    } else {
        None
    }
}

/// Writes `bytes` to standard error with one `write(2)`; the result is
/// ignored (a debug line must never fail the caller's listen).
pub fn write_stderr(bytes: &[u8]) {
    // SAFETY: bytes is a valid readable slice of bytes.len() bytes.
    unsafe {
        syscall3(nr::WRITE, 2, bytes.as_ptr() as usize, bytes.len());
    }
}
