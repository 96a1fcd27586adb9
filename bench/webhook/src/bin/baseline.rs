//! The bare axum + rustls fixed-body server with the libc allocator
//! (see `forcebacklog_webhook_bench::baseline`).

fn main() -> std::process::ExitCode {
    forcebacklog_webhook_bench::baseline::main()
}
