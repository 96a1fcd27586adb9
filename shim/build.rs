//! Link flags of libforcebacklog.so.
//!
//! The shim must load into glibc and musl programs alike, so it links
//! against nothing: no C runtime start files, no libc, no libgcc. Every
//! libc function it uses is a weak undefined symbol that the dynamic
//! loader resolves from the program's own libc (see `src/host.rs`). The
//! remaining flags keep the file small: one page-packed load segment, no
//! RELRO padding, GNU hash only, no build id.

fn main() {
    const ARGS: &[&str] = &[
        "-nostdlib",
        "-nostartfiles",
        "-nodefaultlibs",
        "-Wl,--gc-sections",
        "-Wl,-z,noseparate-code",
        "-Wl,-z,norelro",
        "-Wl,-z,noexecstack",
        "-Wl,--hash-style=gnu",
        "-Wl,--build-id=none",
        "-Wl,--as-needed",
    ];
    for arg in ARGS {
        println!("cargo:rustc-cdylib-link-arg={arg}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
