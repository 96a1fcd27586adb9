//! Warnings about many connections in few lines: whatever a client does to
//! its own connections (bad handshakes, silence, resets) is logged at debug
//! level and counted in the metrics, and this task turns the counts into
//! at most one warning per interval:
//!
//! - refusals at the connection limit: at most one line per
//!   [`super::Tuning::refusal_log_interval`] (1 s), with how many;
//! - connection failures: at most one line per
//!   [`super::Tuning::failure_log_interval`] (10 s), with the count of each
//!   reason since the last line.
//!
//! Nothing is logged while nothing happens.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::MissedTickBehavior;

use super::metrics::{ConnFailure, Metrics};

/// Logs the summaries until the task is dropped.
pub async fn run(
    metrics: Arc<Metrics>,
    limit: usize,
    refusal_interval: Duration,
    failure_interval: Duration,
) {
    let mut refusals = tokio::time::interval(refusal_interval);
    refusals.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failures = tokio::time::interval(failure_interval);
    failures.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut refused_before = metrics.connections_refused();
    let mut failed_before = metrics.connection_failures();
    loop {
        tokio::select! {
            _ = refusals.tick() => {
                let refused = metrics.connections_refused();
                if refused > refused_before {
                    tracing::warn!(
                        refused = refused - refused_before,
                        limit,
                        "at the connection limit: refused {} new connection(s) in the last {} ms \
                         (--max-connections; forcebacklog_connections_refused_total)",
                        refused - refused_before,
                        refusal_interval.as_millis()
                    );
                }
                refused_before = refused;
            }
            _ = failures.tick() => {
                let failed = metrics.connection_failures();
                if let Some(line) = failure_line(&failed_before, &failed) {
                    tracing::warn!(
                        "{line} in the last {} s (each one at debug level; \
                         forcebacklog_connection_failures_total)",
                        failure_interval.as_secs_f64()
                    );
                }
                failed_before = failed;
            }
        }
    }
}

/// `3 webhook connection(s) failed: tls_error 2, setup_timeout 1`, or
/// `None` when no count grew.
fn failure_line(before: &[u64], now: &[u64]) -> Option<String> {
    let grown: Vec<(ConnFailure, u64)> = ConnFailure::ALL
        .iter()
        .zip(before.iter().zip(now))
        // Closing connections at shutdown is the server's doing, not news.
        .filter(|(reason, _)| **reason != ConnFailure::Shutdown)
        .filter(|(_, (b, n))| n > b)
        .map(|(reason, (b, n))| (*reason, n - b))
        .collect();
    if grown.is_empty() {
        return None;
    }
    let total: u64 = grown.iter().map(|(_, n)| n).sum();
    let parts: Vec<String> = grown
        .iter()
        .map(|(reason, n)| format!("{} {n}", reason.label()))
        .collect();
    Some(format!(
        "{total} webhook connection(s) failed: {}",
        parts.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_each_reason_that_grew() {
        assert_eq!(failure_line(&[1, 0, 0, 0, 0], &[1, 0, 0, 0, 0]), None);
        assert_eq!(failure_line(&[0, 0, 0, 0, 0], &[0, 0, 0, 9, 0]), None);
        assert_eq!(
            failure_line(&[1, 0, 0, 0, 4], &[3, 0, 1, 0, 4]).as_deref(),
            Some("3 webhook connection(s) failed: tls_error 2, setup_timeout 1")
        );
    }
}
