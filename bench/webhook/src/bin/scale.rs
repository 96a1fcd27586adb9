//! Time per review as the pod grows: `forcebacklog::review::handle` called
//! in process on Pod CREATE reviews of 1 to 1,000 containers.
//!
//! ```text
//! scale FIXTURE.json [SECONDS_PER_SIZE [SIZES]]
//! ```
//!
//! The pods are the fixture's pod with its containers repeated (renamed
//! `<name>-<i>`), so each container is as rich as a real one (env with
//! valueFrom, probes, resources, mounts, securityContext). For each size the
//! review is answered repeatedly for SECONDS_PER_SIZE (default 0.5) in
//! batches; the median batch gives the time per review. SIZES (a comma
//! list, e.g. `3` to profile one size) replaces the default 1 to 1,000.
//! The least-squares
//! line `a + b·n` through 1 to 50 containers shows whether growth is
//! linear: the largest deviation from it is printed, and the line's
//! prediction for 200 and 1,000 containers next to the measurement.

use forcebacklog::patch::Injector;
use forcebacklog::review::{self, Endpoint, Outcome};
use serde_json::Value;
use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const SIZES: [usize; 6] = [1, 3, 10, 50, 200, 1000];

fn review_with(fixture: &Value, n: usize) -> Result<Vec<u8>, String> {
    let mut review = fixture.clone();
    let containers = review
        .pointer_mut("/request/object/spec/containers")
        .and_then(Value::as_array_mut)
        .ok_or("the fixture has no request.object.spec.containers array")?;
    let templates = std::mem::take(containers);
    if templates.is_empty() {
        return Err("the fixture's pod has no containers".to_owned());
    }
    for i in 0..n {
        let mut c = templates[i % templates.len()].clone();
        let name = format!("{}-{i}", c["name"].as_str().unwrap_or("c"));
        c["name"] = Value::String(name);
        containers.push(c);
    }
    serde_json::to_vec(&review).map_err(|e| e.to_string())
}

/// Median time of one review over batches run for about `budget`.
fn time_per_review(body: &[u8], config: &Injector, budget: Duration) -> Duration {
    let endpoint = Endpoint::Mutate {
        namespace_opt_in: false,
    };
    // Calibrate a batch to about 5 ms.
    let mut batch = 1u32;
    loop {
        let started = Instant::now();
        for _ in 0..batch {
            black_box(review::handle(black_box(body), endpoint, config).ok());
        }
        if started.elapsed() >= Duration::from_millis(5) || batch >= 1 << 20 {
            break;
        }
        batch *= 2;
    }
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < budget || samples.len() < 5 {
        let t = Instant::now();
        for _ in 0..batch {
            black_box(review::handle(black_box(body), endpoint, config).ok());
        }
        samples.push(t.elapsed() / batch);
    }
    samples.sort();
    samples[samples.len() / 2]
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: scale FIXTURE.json [SECONDS_PER_SIZE [SIZES]]");
        return ExitCode::from(2);
    };
    let seconds: f64 = match args.get(1).map(|s| s.parse()) {
        None => 0.5,
        Some(Ok(s)) if s > 0.0 && s <= 60.0 => s,
        Some(_) => {
            eprintln!("scale: SECONDS_PER_SIZE must be a number in (0, 60]");
            return ExitCode::from(2);
        }
    };
    let sizes: Vec<usize> = match args.get(2) {
        None => SIZES.to_vec(),
        Some(list) => match list.split(',').map(str::parse).collect() {
            Ok(sizes) => sizes,
            Err(_) => {
                eprintln!("scale: SIZES must be a comma list of container counts");
                return ExitCode::from(2);
            }
        },
    };
    let fixture: Value = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("scale: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = Injector::default();
    let budget = Duration::from_secs_f64(seconds);
    println!("containers  review-bytes   us/review   ns/byte   us/container");
    let mut points = Vec::new();
    for &n in &sizes {
        let body = match review_with(&fixture, n) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("scale: {e}");
                return ExitCode::FAILURE;
            }
        };
        match review::handle(
            &body,
            Endpoint::Mutate {
                namespace_opt_in: false,
            },
            &config,
        ) {
            Ok(r) if r.outcome == Outcome::Injected => {}
            Ok(r) => {
                eprintln!(
                    "scale: {n} containers: expected an injection, got {:?}",
                    r.outcome
                );
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("scale: {n} containers: {e}");
                return ExitCode::FAILURE;
            }
        }
        let t = time_per_review(&body, &config, budget);
        let us = t.as_secs_f64() * 1e6;
        println!(
            "{n:>10}  {:>12}  {us:>10.1}  {:>8.2}  {:>13.2}",
            body.len(),
            t.as_secs_f64() * 1e9 / body.len() as f64,
            us / n as f64
        );
        points.push((n as f64, us));
    }
    if sizes != SIZES {
        return ExitCode::SUCCESS;
    }
    // Least squares a + b·n over 1 to 50 containers; 200 and 1,000 are
    // compared with the line's prediction.
    let (fitted, beyond) = points.split_at(4);
    let count = fitted.len() as f64;
    let (sx, sy) = fitted
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / count, sy / count);
    let sxy: f64 = fitted.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = fitted.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let b = sxy / sxx;
    let a = my - b * mx;
    let deviation = |(x, y): &(f64, f64)| ((y - (a + b * x)) / y).abs() * 100.0;
    let worst = fitted.iter().map(deviation).fold(0.0, f64::max);
    println!(
        "fit over 1-50 containers: {a:.1} us + {b:.2} us per container; largest deviation {worst:.1} %"
    );
    for point in beyond {
        println!(
            "{:>5} containers: the line predicts {:.0} us, measured {:.0} us ({:+.1} %)",
            point.0,
            a + b * point.0,
            point.1,
            (point.1 - (a + b * point.0)) / (a + b * point.0) * 100.0
        );
    }
    ExitCode::SUCCESS
}
