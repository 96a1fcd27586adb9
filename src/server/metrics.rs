//! Prometheus metrics of one server instance (prometheus-client).
//!
//! Every counter on the request path is created up front and kept as a
//! handle, so recording a request is a few atomic adds and one histogram
//! observation; only skip reasons (a small, bounded set chosen by the
//! mutation core) go through a family lookup.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry, Unit};
use std::time::Duration;

use crate::review::{Endpoint, Outcome};

/// How a request ended (the `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The pod got the shim.
    Injected,
    /// The pod was targeted but skipped.
    Skipped,
    /// Not targeted, nothing changed.
    Untouched,
    /// `/validate` allowed the object.
    Allowed,
    /// `/validate` denied the object.
    Denied,
    /// The body was not an AdmissionReview (HTTP 400).
    Malformed,
    /// The body was over the size limit (HTTP 413).
    TooLarge,
    /// The body did not arrive in time, or could not be read (HTTP 408/400).
    ReadFailed,
}

impl Status {
    const ALL: [Status; 8] = [
        Status::Injected,
        Status::Skipped,
        Status::Untouched,
        Status::Allowed,
        Status::Denied,
        Status::Malformed,
        Status::TooLarge,
        Status::ReadFailed,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Status::Injected => "injected",
            Status::Skipped => "skipped",
            Status::Untouched => "untouched",
            Status::Allowed => "allowed",
            Status::Denied => "denied",
            Status::Malformed => "malformed",
            Status::TooLarge => "too_large",
            Status::ReadFailed => "read_failed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The status of a review the core answered.
    pub fn of(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Injected => Status::Injected,
            Outcome::Skipped(_) => Status::Skipped,
            Outcome::Untouched => Status::Untouched,
            Outcome::Allowed => Status::Allowed,
            Outcome::Denied => Status::Denied,
        }
    }
}

/// Why a webhook connection ended without being served to its end (the
/// `reason` label of `forcebacklog_connection_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnFailure {
    /// The TLS handshake failed: not TLS, an old protocol version, no
    /// common cipher, a broken record.
    TlsError,
    /// The peer closed the connection before the TLS handshake finished
    /// (a TCP probe, a client that gave up).
    TlsClosed,
    /// No first request within the setup deadline: the TLS handshake, then
    /// the HTTP/2 preface and first request or the HTTP/1.1 request head.
    SetupTimeout,
    /// Closed during the TLS handshake or before the first request because
    /// the server is shutting down.
    Shutdown,
    /// After the first request: the connection ended with an HTTP or I/O
    /// error (a reset, a protocol error, an unanswered HTTP/2 PING).
    Http,
}

impl ConnFailure {
    /// Every reason, in label order.
    pub const ALL: [ConnFailure; 5] = [
        ConnFailure::TlsError,
        ConnFailure::TlsClosed,
        ConnFailure::SetupTimeout,
        ConnFailure::Shutdown,
        ConnFailure::Http,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            ConnFailure::TlsError => "tls_error",
            ConnFailure::TlsClosed => "tls_closed",
            ConnFailure::SetupTimeout => "setup_timeout",
            ConnFailure::Shutdown => "shutdown",
            ConnFailure::Http => "http_error",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One open webhook connection: counted in `forcebacklog_connections_open`
/// from [`Metrics::connection_opened`] until dropped.
#[derive(Debug)]
pub struct ConnSlot {
    open: Gauge,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

type HistogramFamily = Family<EndpointLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 25 µs .. ~0.8 s, doubling.
    Histogram::new(exponential_buckets(0.000_025, 2.0, 16))
}

/// Registers `metric` and returns the handle that updates it.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// `admission_requests`, one counter per endpoint and result.
fn request_counters(
    registry: &mut Registry,
) -> [[Counter; Status::ALL.len()]; Endpoint::ALL.len()] {
    let family = Family::<RequestLabels, Counter>::default();
    let counters = Endpoint::ALL.map(|endpoint| {
        Status::ALL.map(|status| {
            family.get_or_create_owned(&RequestLabels {
                endpoint: endpoint.label(),
                result: status.label(),
            })
        })
    });
    registry.register(
        "admission_requests",
        "Admission requests by webhook endpoint and result",
        family,
    );
    counters
}

/// `admission_duration_seconds`, one histogram per endpoint.
fn duration_histograms(registry: &mut Registry) -> [Histogram; Endpoint::ALL.len()] {
    let family: HistogramFamily = Family::new_with_constructor(latency_histogram);
    let histograms = Endpoint::ALL.map(|endpoint| {
        family.get_or_create_owned(&EndpointLabels {
            endpoint: endpoint.label(),
        })
    });
    registry.register_with_unit(
        "admission_duration",
        "Time from request headers to response, by webhook endpoint",
        Unit::Seconds,
        family,
    );
    histograms
}

/// `connection_failures`, one counter per reason.
fn connection_failure_counters(registry: &mut Registry) -> [Counter; ConnFailure::ALL.len()] {
    let family = Family::<ReasonLabels, Counter>::default();
    let counters = ConnFailure::ALL.map(|reason| {
        family.get_or_create_owned(&ReasonLabels {
            reason: reason.label(),
        })
    });
    registry.register(
        "connection_failures",
        "Webhook connections that ended early or with an error, by reason",
        family,
    );
    counters
}

/// The registry and the handles the request path updates.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: [[Counter; Status::ALL.len()]; Endpoint::ALL.len()],
    durations: [Histogram; Endpoint::ALL.len()],
    decisions: Decisions,
    tls: TlsMetrics,
    connections: Connections,
}

/// What the mutation core and `/validate` decided, beyond the request counter.
#[derive(Debug)]
struct Decisions {
    injections: Counter,
    skips: Family<ReasonLabels, Counter>,
    denials: Counter,
}

impl Decisions {
    /// `injections`, `skips` by reason, and `denials`.
    fn register(r: &mut Registry) -> Self {
        Decisions {
            injections: registered(
                r,
                "injections",
                "Pods that got the shim",
                Counter::default(),
            ),
            skips: registered(
                r,
                "skips",
                "Targeted pods admitted unchanged, by reason",
                Family::<ReasonLabels, Counter>::default(),
            ),
            denials: registered(
                r,
                "denials",
                "Objects /validate rejected",
                Counter::default(),
            ),
        }
    }
}

/// The served certificate: its reloads and its expiry.
#[derive(Debug)]
struct TlsMetrics {
    reloads_ok: Counter,
    reloads_failed: Counter,
    not_after: Gauge,
}

impl TlsMetrics {
    /// `tls_reloads` by result, and `tls_certificate_not_after_seconds`.
    fn register(r: &mut Registry) -> Self {
        let reloads = registered(
            r,
            "tls_reloads",
            "Certificate reload attempts after the files changed",
            Family::<ResultLabels, Counter>::default(),
        );
        let not_after = Gauge::default();
        r.register_with_unit(
            "tls_certificate_not_after",
            "When the served certificate expires (Unix time)",
            Unit::Seconds,
            not_after.clone(),
        );
        TlsMetrics {
            reloads_ok: reloads.get_or_create_owned(&ResultLabels { result: "success" }),
            reloads_failed: reloads.get_or_create_owned(&ResultLabels { result: "error" }),
            not_after,
        }
    }
}

/// The webhook's connections: open, the limit, refused, and failed.
#[derive(Debug)]
struct Connections {
    open: Gauge,
    limit: Gauge,
    refused: Counter,
    failures: [Counter; ConnFailure::ALL.len()],
}

impl Connections {
    /// `connections_open`, `connections_limit`, `connections_refused` and
    /// `connection_failures` by reason.
    fn register(r: &mut Registry) -> Self {
        Connections {
            open: registered(
                r,
                "connections_open",
                "Webhook connections open now, in the TLS handshake or after it",
                Gauge::default(),
            ),
            limit: registered(
                r,
                "connections_limit",
                "Webhook connections served at once (--max-connections, capped by the file-descriptor limit)",
                Gauge::default(),
            ),
            refused: registered(
                r,
                "connections_refused",
                "Webhook connections closed at accept because the limit was reached",
                Counter::default(),
            ),
            failures: connection_failure_counters(r),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every series of the request path present at 0.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("forcebacklog");
        let r = &mut registry;
        let requests = request_counters(r);
        let durations = duration_histograms(r);
        let decisions = Decisions::register(r);
        let tls = TlsMetrics::register(r);
        let connections = Connections::register(r);
        Self {
            registry,
            requests,
            durations,
            decisions,
            tls,
            connections,
        }
    }
    /// Records one finished webhook request.
    pub fn request(&self, endpoint: Endpoint, status: Status, elapsed: Duration) {
        self.requests[endpoint.index()][status.index()].inc();
        self.durations[endpoint.index()].observe(elapsed.as_secs_f64());
    }

    /// Records what the core decided (beyond the request counter).
    pub fn outcome(&self, outcome: &Outcome) {
        match outcome {
            Outcome::Injected => {
                self.decisions.injections.inc();
            }
            Outcome::Skipped(reason) => {
                self.decisions
                    .skips
                    .get_or_create(&ReasonLabels { reason })
                    .inc();
            }
            Outcome::Denied => {
                self.decisions.denials.inc();
            }
            Outcome::Untouched | Outcome::Allowed => {}
        }
    }

    /// Records a certificate reload attempt.
    pub fn tls_reload(&self, ok: bool) {
        if ok {
            self.tls.reloads_ok.inc();
        } else {
            self.tls.reloads_failed.inc();
        }
    }

    /// Records the expiry (Unix seconds) of the certificate now served.
    pub fn tls_not_after(&self, unix_seconds: i64) {
        self.tls.not_after.set(unix_seconds);
    }

    /// Records the connection limit in force.
    pub fn connection_limit(&self, limit: usize) {
        self.connections
            .limit
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
    }

    /// Counts one more open connection until the slot is dropped.
    pub fn connection_opened(&self) -> ConnSlot {
        self.connections.open.inc();
        ConnSlot {
            open: self.connections.open.clone(),
        }
    }

    /// Webhook connections open now.
    pub fn connections_open(&self) -> usize {
        usize::try_from(self.connections.open.get()).unwrap_or(0)
    }

    /// Counts a connection refused at the limit.
    pub fn connection_refused(&self) {
        self.connections.refused.inc();
    }

    /// Connections refused at the limit so far.
    pub fn connections_refused(&self) -> u64 {
        self.connections.refused.get()
    }

    /// Counts a connection that ended early or with an error.
    pub fn connection_failed(&self, reason: ConnFailure) {
        self.connections.failures[reason.index()].inc();
    }

    /// The failure counts so far, in [`ConnFailure::ALL`] order.
    pub fn connection_failures(&self) -> [u64; ConnFailure::ALL.len()] {
        ConnFailure::ALL.map(|reason| self.connections.failures[reason.index()].get())
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_series_with_its_labels() {
        let metrics = Metrics::new();
        let mutate = Endpoint::Mutate {
            namespace_opt_in: false,
        };
        metrics.request(mutate, Status::Injected, Duration::from_micros(80));
        metrics.outcome(&Outcome::Injected);
        metrics.outcome(&Outcome::Skipped("invalid"));
        metrics.outcome(&Outcome::Denied);
        metrics.tls_reload(true);
        metrics.tls_not_after(1_767_225_600);
        metrics.connection_limit(1000);
        let slot = metrics.connection_opened();
        let _second = metrics.connection_opened();
        drop(slot);
        metrics.connection_refused();
        metrics.connection_failed(ConnFailure::SetupTimeout);
        let text = metrics.encode().expect("encode");
        for line in [
            r#"forcebacklog_admission_requests_total{endpoint="mutate",result="injected"} 1"#,
            r#"forcebacklog_admission_requests_total{endpoint="validate",result="denied"} 0"#,
            "forcebacklog_injections_total 1",
            r#"forcebacklog_skips_total{reason="invalid"} 1"#,
            "forcebacklog_denials_total 1",
            r#"forcebacklog_tls_reloads_total{result="success"} 1"#,
            r#"forcebacklog_tls_reloads_total{result="error"} 0"#,
            r#"forcebacklog_admission_duration_seconds_count{endpoint="mutate"} 1"#,
            r#"forcebacklog_admission_duration_seconds_bucket{le="0.0001",endpoint="mutate"} 1"#,
            "forcebacklog_tls_certificate_not_after_seconds 1767225600",
            "forcebacklog_connections_limit 1000",
            "forcebacklog_connections_open 1",
            "forcebacklog_connections_refused_total 1",
            r#"forcebacklog_connection_failures_total{reason="setup_timeout"} 1"#,
            r#"forcebacklog_connection_failures_total{reason="tls_error"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
