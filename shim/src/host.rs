//! The functions the shim borrows from the program's own libc.
//!
//! The shim has no `DT_NEEDED` entries, so it works with glibc and musl
//! alike: `dlsym`, `getenv` and `__errno_location` (which both libcs
//! export) are weak undefined symbols, bound by the dynamic loader from
//! the global scope when the shim is loaded. A symbol the program's libc
//! lacks (e.g. `dlsym` on glibc < 2.34 without libdl) resolves to null
//! instead of failing the load; the shim then falls back to raw system
//! calls or passes the call through.

use core::ffi::{c_char, c_int, c_void};

/// Address of the weak undefined symbol `$name`, read from the GOT; 0
/// when no loaded object defines it.
macro_rules! weak_symbol {
    ($name:literal) => {{
        let addr: usize;
        // SAFETY: reads one GOT slot that the static linker created for
        // the weak symbol declared in the same template; the dynamic
        // loader filled it before any code of the shim runs. No other
        // memory is touched.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            core::arch::asm!(
                concat!(".weak ", $name),
                concat!("mov {0}, qword ptr [rip + ", $name, "@GOTPCREL]"),
                out(reg) addr,
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        // SAFETY: as above, with the aarch64 GOT addressing pair.
        #[cfg(target_arch = "aarch64")]
        unsafe {
            core::arch::asm!(
                concat!(".weak ", $name),
                concat!("adrp {0}, :got:", $name),
                concat!("ldr {0}, [{0}, :got_lo12:", $name, "]"),
                out(reg) addr,
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        addr
    }};
}

type DlsymFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;
type GetenvFn = unsafe extern "C" fn(*const c_char) -> *mut c_char;
type ErrnoFn = unsafe extern "C" fn() -> *mut c_int;

/// `RTLD_NEXT`, `(void *)-1` in glibc and musl.
const RTLD_NEXT: *mut c_void = usize::MAX as *mut c_void;

/// `dlsym(RTLD_NEXT, name)`: the next definition of `name` after the shim
/// in the lookup order, or null (no `dlsym`, or no such symbol).
///
/// The loader identifies "the object after the caller" from the return
/// address, so this must be called from code inside the shim (it is: it
/// is never a tail call, the result is used).
pub fn next_symbol(name: &core::ffi::CStr) -> usize {
    let addr = weak_symbol!("dlsym");
    if addr == 0 {
        return 0;
    }
    // SAFETY: a non-null `dlsym` GOT slot holds the libc function with
    // this C signature.
    let dlsym: DlsymFn = unsafe { core::mem::transmute::<usize, DlsymFn>(addr) };
    // SAFETY: RTLD_NEXT is a valid handle and name is NUL-terminated.
    unsafe { dlsym(RTLD_NEXT, name.as_ptr()) as usize }
}

/// The value of environment variable `name`, without its NUL, or `None`
/// when unset (or when the program's libc has no `getenv`). Values longer
/// than `max` bytes are returned truncated to `max + 1` bytes, which no
/// valid setting is, so they are rejected by the parsers.
pub fn env(name: &core::ffi::CStr, max: usize) -> Option<&'static [u8]> {
    let addr = weak_symbol!("getenv");
    if addr == 0 {
        return None;
    }
    // SAFETY: a non-null `getenv` GOT slot holds the libc function with
    // this C signature.
    let getenv: GetenvFn = unsafe { core::mem::transmute::<usize, GetenvFn>(addr) };
    // SAFETY: name is NUL-terminated.
    let value = unsafe { getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    let mut len = 0;
    // SAFETY: getenv returned a NUL-terminated string; the loop stops at
    // its NUL (or after max + 1 bytes), never reading past it.
    while len <= max && unsafe { *value.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: the first len bytes were just read as part of the string.
    // Like any C caller of getenv, the slice is valid until the program
    // changes that variable (setenv/putenv/unsetenv); the shim only reads
    // it within the one listen() call that fetched it, and a program that
    // changes its environment while another thread calls listen() races
    // with libc's own getenv already. The 'static lifetime is that of C's
    // `char *` and must not be kept beyond the call.
    Some(unsafe { core::slice::from_raw_parts(value.cast::<u8>(), len) })
}

/// The calling thread's `errno` slot, or null when libc has no
/// `__errno_location`.
fn errno_slot() -> *mut c_int {
    let addr = weak_symbol!("__errno_location");
    if addr == 0 {
        return core::ptr::null_mut();
    }
    // SAFETY: a non-null `__errno_location` GOT slot holds the libc
    // function with this C signature.
    let location: ErrnoFn = unsafe { core::mem::transmute::<usize, ErrnoFn>(addr) };
    // SAFETY: __errno_location takes no arguments and always succeeds.
    unsafe { location() }
}

/// The calling thread's `errno` (0 when it cannot be read).
pub fn errno() -> c_int {
    let slot = errno_slot();
    if slot.is_null() {
        return 0;
    }
    // SAFETY: a non-null errno slot is the calling thread's errno.
    unsafe { *slot }
}

/// Sets the calling thread's `errno` (no-op when it cannot be reached).
pub fn set_errno(value: c_int) {
    let slot = errno_slot();
    if !slot.is_null() {
        // SAFETY: a non-null errno slot is the calling thread's errno.
        unsafe { *slot = value };
    }
}
