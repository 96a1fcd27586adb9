//! A static Rust std server for tests/local/supervise.rs: `TcpListener::bind`
//! (std's own backlog, 128) on 127.0.0.1, an ephemeral port; prints
//! `listening FD PORT ret 0 errno 0` and `ready`, then waits for stdin to
//! close. Built at test time for x86_64-unknown-linux-musl, static.
use std::io::Read;
use std::os::fd::AsRawFd;

fn main() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    println!("listening {} {port} ret 0 errno 0", listener.as_raw_fd());
    println!("ready");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
