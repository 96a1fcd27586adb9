//! The bare axum + rustls fixed-body server with mimalloc, the allocator
//! `forcebacklog` uses: the same yardstick with the same allocator.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    forcebacklog_webhook_bench::baseline::main()
}
