//! The architecture-specific parts: the audit architecture and `listen`
//! numbers the filter matches, and where ptrace finds the arguments.

#[cfg(target_arch = "x86_64")]
mod imp {
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
mod imp {
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
mod imp {
    /// No supervisor support: nothing matches.
    pub const AUDIT_ARCH: u32 = 0;
    /// No supervisor support: nothing is trapped.
    pub const LISTEN: &[u32] = &[];

    pub fn listen_args<T>(_: &T) -> Option<(i32, i32)> {
        None
    }

    pub fn set_backlog<T>(_: &mut T, _: i32) {}
}

pub use imp::*;

/// (fd, backlog) of a user notification: the same two arguments, taken
/// from the raw argument array as the kernel reads them (`int`s), when
/// the call is a native `listen`.
pub fn notified_listen(arch: u32, nr: i32, args: &[u64; 6]) -> Option<(i32, i32)> {
    if arch != AUDIT_ARCH || !LISTEN.iter().any(|&n| n as i32 == nr) {
        return None;
    }
    Some((args[0] as i32, args[1] as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn x86_64_registers() {
        let mut regs = zeroed_regs();
        regs.orig_rax = 50;
        regs.rdi = 3;
        regs.rsi = 20;
        assert_eq!(listen_args(&regs), Some((3, 20)));
        set_backlog(&mut regs, -1);
        assert_eq!(regs.rsi, u64::MAX);
        set_backlog(&mut regs, 4096);
        assert_eq!(listen_args(&regs), Some((3, 4096)));
        regs.orig_rax = 0x4000_0000 | 50;
        assert_eq!(listen_args(&regs), Some((3, 4096)));
        regs.orig_rax = 49;
        assert_eq!(listen_args(&regs), None);
        assert_eq!(AUDIT_ARCH, 0xc000_003e);
    }

    #[test]
    #[cfg(target_arch = "aarch64")]
    fn aarch64_registers() {
        let mut regs = zeroed_regs();
        regs.regs[8] = 201;
        regs.regs[0] = 3;
        regs.regs[1] = 20;
        assert_eq!(listen_args(&regs), Some((3, 20)));
        set_backlog(&mut regs, -1);
        assert_eq!(regs.regs[1], u64::MAX);
        set_backlog(&mut regs, 4096);
        assert_eq!(listen_args(&regs), Some((3, 4096)));
        regs.regs[8] = 50;
        assert_eq!(listen_args(&regs), None);
        assert_eq!(AUDIT_ARCH, 0xc000_00b7);
    }

    /// A register set of zeros (every field is an integer).
    #[cfg(target_arch = "x86_64")]
    fn zeroed_regs() -> nix::libc::user_regs_struct {
        nix::libc::user_regs_struct {
            r15: 0,
            r14: 0,
            r13: 0,
            r12: 0,
            rbp: 0,
            rbx: 0,
            r11: 0,
            r10: 0,
            r9: 0,
            r8: 0,
            rax: 0,
            rcx: 0,
            rdx: 0,
            rsi: 0,
            rdi: 0,
            orig_rax: 0,
            rip: 0,
            cs: 0,
            eflags: 0,
            rsp: 0,
            ss: 0,
            fs_base: 0,
            gs_base: 0,
            ds: 0,
            es: 0,
            fs: 0,
            gs: 0,
        }
    }

    /// A register set of zeros.
    #[cfg(target_arch = "aarch64")]
    fn zeroed_regs() -> nix::libc::user_regs_struct {
        nix::libc::user_regs_struct {
            regs: [0; 31],
            sp: 0,
            pc: 0,
            pstate: 0,
        }
    }

    #[test]
    fn notified_listen_matches_the_native_arch_only() {
        let args = [3, u64::MAX, 0, 0, 0, 0];
        let nr = LISTEN.first().map_or(-1, |&n| n as i32);
        if LISTEN.is_empty() {
            return;
        }
        assert_eq!(notified_listen(AUDIT_ARCH, nr, &args), Some((3, -1)));
        assert_eq!(notified_listen(0x4000_0003, nr, &args), None);
        assert_eq!(notified_listen(AUDIT_ARCH, nr + 1, &args), None);
    }
}
