//! `forcebacklog::review::handle` called N times in process on one review,
//! for counting its instructions under callgrind without the server:
//!
//! ```text
//! reviews FIXTURE.json N [unannotated]
//! valgrind --tool=callgrind reviews FIXTURE.json 1100   # minus N=100, / 1000
//! ```
//!
//! `unannotated` removes the pod's `forcebacklog/value` annotation first
//! (the pod then passes untouched). mimalloc, as in the server.

use forcebacklog::patch::Injector;
use forcebacklog::review::{self, Endpoint};
use serde_json::Value;
use std::hint::black_box;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(path), Some(Ok(n))) = (args.first(), args.get(1).map(|n| n.parse::<u32>())) else {
        eprintln!("usage: reviews FIXTURE.json N [unannotated]");
        return ExitCode::from(2);
    };
    let mut body = match std::fs::read(path) {
        Ok(body) => body,
        Err(e) => {
            eprintln!("reviews: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.get(2).map(String::as_str) == Some("unannotated") {
        let Ok(mut review) = serde_json::from_slice::<Value>(&body) else {
            eprintln!("reviews: {path}: not JSON");
            return ExitCode::FAILURE;
        };
        if let Some(Value::Object(a)) = review.pointer_mut("/request/object/metadata/annotations") {
            a.remove("forcebacklog/value");
        }
        body = serde_json::to_vec(&review).unwrap_or_default();
    }
    let config = Injector::default();
    let endpoint = Endpoint::Mutate {
        namespace_opt_in: false,
    };
    for _ in 0..n {
        if let Err(e) = black_box(review::handle(black_box(&body), endpoint, &config)) {
            eprintln!("reviews: {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
