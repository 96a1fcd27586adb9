//! `forcebacklog sockets`: the listening TCP sockets of a network
//! namespace, with the backlog the kernel holds for each, the current
//! accept-queue length, and the namespace's listen-overflow counters.
//!
//! The sockets come from sock_diag (netlink `inet_diag`), which for a
//! LISTEN socket reports the backlog (`idiag_wqueue`, what `ss` shows as
//! Send-Q) and the accept-queue length (`idiag_rqueue`, Recv-Q).
//! `/proc/net/tcp` is no substitute: its `tx_queue` column is 0 for a
//! listener, so it cannot show the backlog. The counters come from the
//! namespace's `/proc/<pid>/net/netstat` (`TcpExt:` lines, what `nstat`
//! reads). Neither needs root nor a capability, so this runs as
//! `kubectl debug --image=<forcebacklog image> --target=CONTAINER` under
//! Pod Security "restricted": every container of a pod shares the pod's
//! network namespace.
//!
//! `--pid PID` reads another process's namespace: when it is ours, as
//! usual; otherwise a short-lived thread enters it with `setns` (which
//! needs CAP_SYS_ADMIN) to open its netlink socket there.
//!
//! `--serve ADDR` exports the same figures as Prometheus metrics, read
//! afresh at each scrape (see `encode_metrics`).

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use serde::Serialize;

/// What went wrong while reading sockets or counters, or serving them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sock_diag netlink socket could not be opened, bound or used.
    #[error("sock_diag request for {family} listening sockets failed")]
    Netlink {
        /// `IPv4` or `IPv6`.
        family: &'static str,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The kernel's sock_diag answer could not be decoded.
    #[error("cannot decode the kernel's sock_diag answer for {family} sockets: {reason}")]
    Decode {
        /// `IPv4` or `IPv6`.
        family: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// The namespace's netstat file could not be read.
    #[error("cannot read {}", path.display())]
    Netstat {
        /// The file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The netstat file lacks a counter (a kernel without it).
    #[error("{} has no TcpExt counter {name}", path.display())]
    MissingCounter {
        /// The file.
        path: PathBuf,
        /// The counter's kernel name, e.g. `ListenOverflows`.
        name: &'static str,
    },
    /// `--pid` names no running process.
    #[error("no process with pid {pid}")]
    NoProcess {
        /// The pid.
        pid: u32,
    },
    /// The network namespace of `--pid` could not be opened or entered.
    #[error(
        "cannot enter the network namespace of pid {pid} (that needs CAP_SYS_ADMIN; \
         without it, run `forcebacklog sockets` inside the namespace, e.g. with \
         `kubectl debug --target` or `nsenter -n`)"
    )]
    EnterNamespace {
        /// The pid.
        pid: u32,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// A helper thread could not be started or died.
    #[error("the thread reading pid {pid}'s namespace failed")]
    Thread {
        /// The pid.
        pid: u32,
    },
    /// Writing the output failed (e.g. a closed pipe).
    #[error("cannot write the output")]
    Output(#[source] io::Error),
    /// `--serve`: the address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// `--serve`: the runtime or the server failed.
    #[error("the metrics server failed")]
    Serve(#[source] io::Error),
}

/// Whose network namespace to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The namespace this process runs in.
    Current,
    /// The namespace of this process id.
    Pid(u32),
}

/// One listening TCP socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Listener {
    /// The local address it is bound to (`0.0.0.0` and `::` for any).
    pub address: IpAddr,
    /// The local port.
    pub port: u16,
    /// The backlog the kernel holds: listen()'s argument capped at the
    /// namespace's `net.core.somaxconn` (`ss` Send-Q).
    pub backlog: u32,
    /// Connections waiting in the accept queue now (`ss` Recv-Q).
    pub queue: u32,
}

/// The namespace's listen counters (`/proc/net/netstat`, `TcpExt:`),
/// counted since the namespace was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Counters {
    /// `ListenOverflows`: handshakes dropped because an accept queue was full.
    pub listen_overflows: u64,
    /// `ListenDrops`: every SYN or final ACK a listener dropped (overflows included).
    pub listen_drops: u64,
    /// `TCPReqQFullDrop`: SYNs dropped because the SYN queue was full and
    /// SYN cookies were off.
    pub req_q_full_drop: u64,
    /// `TCPReqQFullDoCookies`: SYN cookies sent because the SYN queue was full.
    pub req_q_full_do_cookies: u64,
}

/// The counters' kernel names, in [`Counters`] order.
const COUNTER_NAMES: [&str; 4] = [
    "ListenOverflows",
    "ListenDrops",
    "TCPReqQFullDrop",
    "TCPReqQFullDoCookies",
];

impl Counters {
    fn values(&self) -> [u64; 4] {
        [
            self.listen_overflows,
            self.listen_drops,
            self.req_q_full_drop,
            self.req_q_full_do_cookies,
        ]
    }
}

/// Everything `sockets` shows for one namespace at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Snapshot {
    /// The listening sockets, IPv4 then IPv6, by port and address.
    pub sockets: Vec<Listener>,
    /// The namespace's counters.
    #[serde(flatten)]
    pub counters: Counters,
}

/// Reads the listening sockets and the counters of `target`'s namespace.
pub(crate) fn snapshot(target: Target) -> Result<Snapshot, Error> {
    let netstat = match target {
        Target::Current => PathBuf::from("/proc/self/net/netstat"),
        Target::Pid(pid) => PathBuf::from(format!("/proc/{pid}/net/netstat")),
    };
    let sockets = match target {
        Target::Current => listeners()?,
        Target::Pid(pid) if same_namespace(pid)? => listeners()?,
        Target::Pid(pid) => listeners_in(pid)?,
    };
    let counters = read_counters(&netstat)?;
    Ok(Snapshot { sockets, counters })
}

/// Whether `pid` shares our network namespace.
fn same_namespace(pid: u32) -> Result<bool, Error> {
    use std::os::unix::fs::MetadataExt;
    let theirs = std::fs::metadata(format!("/proc/{pid}/ns/net")).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            Error::NoProcess { pid }
        } else {
            Error::EnterNamespace { pid, source }
        }
    })?;
    let ours = std::fs::metadata("/proc/self/ns/net")
        .map_err(|source| Error::EnterNamespace { pid, source })?;
    Ok((theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino()))
}

/// The listeners of `pid`'s namespace, from a thread that enters it (a
/// netlink socket belongs to the namespace of the thread that opens it;
/// the thread ends right after, so no other code runs in that namespace).
fn listeners_in(pid: u32) -> Result<Vec<Listener>, Error> {
    let path = format!("/proc/{pid}/ns/net");
    let file = std::fs::File::open(&path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            Error::NoProcess { pid }
        } else {
            Error::EnterNamespace { pid, source }
        }
    })?;
    let thread = std::thread::Builder::new()
        .name("forcebacklog-netns".into())
        .spawn(move || {
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&file),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(|errno| Error::EnterNamespace {
                pid,
                source: errno.into(),
            })?;
            listeners()
        })
        .map_err(|_| Error::Thread { pid })?;
    thread.join().map_err(|_| Error::Thread { pid })?
}

/// The listening TCP sockets of this thread's namespace, IPv4 then IPv6.
pub(crate) fn listeners() -> Result<Vec<Listener>, Error> {
    let mut all = dump(AF_INET, "IPv4")?;
    all.extend(dump(AF_INET6, "IPv6")?);
    Ok(all)
}

/// One sock_diag dump of the LISTEN TCP sockets of `family`.
fn dump(family: u8, name: &'static str) -> Result<Vec<Listener>, Error> {
    let netlink = |source: io::Error| Error::Netlink {
        family: name,
        source,
    };
    let socket = diag_socket().map_err(netlink)?;
    socket.send(&listen_request(family), 0).map_err(netlink)?;
    let mut found = Vec::new();
    loop {
        let (datagram, _) = socket.recv_from_full().map_err(netlink)?;
        if datagram.is_empty() {
            return Err(decode_error(
                name,
                "the socket closed before the end of the dump",
            ));
        }
        if read_datagram(&datagram, name, &mut found)? {
            found.sort_by_key(|l| (l.port, l.address));
            return Ok(found);
        }
    }
}

/// A sock_diag netlink socket of this thread's namespace, connected to the kernel.
fn diag_socket() -> io::Result<netlink_sys::Socket> {
    let mut socket = netlink_sys::Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
    Ok(socket)
}

/// The bytes of a dump request for the LISTEN TCP sockets of `family`.
fn listen_request(family: u8) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut request = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::LISTEN,
            socket_id: if family == AF_INET {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            },
        })
        .into(),
    );
    request.finalize();
    // serialize() needs exactly buffer_len() bytes.
    let mut bytes = vec![0; request.buffer_len()];
    request.serialize(&mut bytes);
    bytes
}

/// Adds the listeners of one datagram of the dump of `family` to `found`;
/// true when the datagram ends the dump.
fn read_datagram(
    datagram: &[u8],
    family: &'static str,
    found: &mut Vec<Listener>,
) -> Result<bool, Error> {
    let mut offset = 0;
    while offset < datagram.len() {
        let message = NetlinkMessage::<SockDiagMessage>::deserialize(&datagram[offset..])
            .map_err(|err| decode_error(family, err.to_string()))?;
        let length = message.header.length as usize;
        match message.payload {
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                let header = &response.header;
                found.push(Listener {
                    address: header.socket_id.source_address,
                    port: header.socket_id.source_port,
                    backlog: header.send_queue,
                    queue: header.recv_queue,
                });
            }
            NetlinkPayload::Done(_) => return Ok(true),
            NetlinkPayload::Error(error) => {
                return Err(Error::Netlink {
                    family,
                    source: error.to_io(),
                });
            }
            NetlinkPayload::Noop | NetlinkPayload::Overrun(_) => {}
            other => {
                return Err(decode_error(
                    family,
                    format!("unexpected message {other:?}"),
                ));
            }
        }
        if length == 0 {
            return Err(decode_error(family, "a message of length 0"));
        }
        offset += length;
    }
    Ok(false)
}

/// The kernel's answer for `family` could not be decoded, for `reason`.
fn decode_error(family: &'static str, reason: impl Into<String>) -> Error {
    Error::Decode {
        family,
        reason: reason.into(),
    }
}

/// Reads the four listen counters from a netstat file.
pub(crate) fn read_counters(path: &std::path::Path) -> Result<Counters, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Netstat {
        path: path.to_owned(),
        source,
    })?;
    parse_counters(&text).map_err(|name| Error::MissingCounter {
        path: path.to_owned(),
        name,
    })
}

/// The four listen counters of a netstat file's text: its `TcpExt:` lines
/// come in pairs, names then values. Err: the first counter not found.
fn parse_counters(text: &str) -> Result<Counters, &'static str> {
    let lines: Vec<&str> = text.lines().collect();
    let mut values = [None; 4];
    for pair in lines.windows(2) {
        let (Some(names), Some(numbers)) = (
            pair[0].strip_prefix("TcpExt:"),
            pair[1].strip_prefix("TcpExt:"),
        ) else {
            continue;
        };
        for (name, number) in names.split_whitespace().zip(numbers.split_whitespace()) {
            if let Some(index) = COUNTER_NAMES.iter().position(|known| *known == name) {
                values[index] = number.parse::<u64>().ok();
            }
        }
    }
    let mut out = [0; 4];
    for (index, value) in values.iter().enumerate() {
        out[index] = value.ok_or(COUNTER_NAMES[index])?;
    }
    Ok(Counters {
        listen_overflows: out[0],
        listen_drops: out[1],
        req_q_full_drop: out[2],
        req_q_full_do_cookies: out[3],
    })
}

/// The text table: one line per socket, then the counters on one line.
pub(crate) fn render_text(snapshot: &Snapshot) -> String {
    let addresses: Vec<String> = snapshot
        .sockets
        .iter()
        .map(|s| s.address.to_string())
        .collect();
    let width = addresses
        .iter()
        .map(String::len)
        .chain(["ADDRESS".len()])
        .max()
        .unwrap_or_default();
    let mut out = String::new();
    if snapshot.sockets.is_empty() {
        out.push_str("no listening TCP sockets\n");
    } else {
        let _ = writeln!(
            out,
            "{:<width$}  {:>5}  {:>7}  {:>5}",
            "ADDRESS", "PORT", "BACKLOG", "QUEUE"
        );
        for (socket, address) in snapshot.sockets.iter().zip(&addresses) {
            let _ = writeln!(
                out,
                "{address:<width$}  {:>5}  {:>7}  {:>5}",
                socket.port, socket.backlog, socket.queue
            );
        }
    }
    let counters: Vec<String> = COUNTER_NAMES
        .iter()
        .zip(snapshot.counters.values())
        .map(|(name, value)| format!("{name} {value}"))
        .collect();
    let _ = writeln!(out, "{}", counters.join("  "));
    out
}

/// Output format of `sockets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The table of `render_text`.
    Text,
    /// JSON: pretty once, one compact line per round with `--watch`.
    Json,
}

/// `forcebacklog sockets` without `--serve`: print once, or every `watch`
/// until interrupted.
pub fn print(target: Target, output: Output, watch: Option<Duration>) -> Result<(), Error> {
    use std::io::Write as _;
    let mut stdout = io::stdout().lock();
    loop {
        let snapshot = snapshot(target)?;
        let text = match (output, watch) {
            (Output::Text, None) => render_text(&snapshot),
            (Output::Text, Some(_)) => format!("-- {}\n{}\n", utc_time(), render_text(&snapshot)),
            (Output::Json, None) => json(&snapshot, true),
            (Output::Json, Some(_)) => json(&snapshot, false),
        };
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(Error::Output)?;
        match watch {
            Some(every) => std::thread::sleep(every),
            None => return Ok(()),
        }
    }
}

fn json(snapshot: &Snapshot, pretty: bool) -> String {
    // Serialising plain structs of numbers and strings cannot fail.
    let text = if pretty {
        serde_json::to_string_pretty(snapshot)
    } else {
        serde_json::to_string(snapshot)
    };
    text.map(|t| t + "\n").unwrap_or_default()
}

/// The time of day in UTC, `HH:MM:SS`, for `--watch` headers.
fn utc_time() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
        % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct SocketLabels {
    address: String,
    port: u16,
}

/// The Prometheus text (OpenMetrics) of one snapshot:
/// `forcebacklog_listen_backlog{address,port}` and
/// `forcebacklog_listen_queue{address,port}` gauges, and the namespace's
/// counters as `forcebacklog_listen_overflows_total`,
/// `forcebacklog_listen_drops_total`,
/// `forcebacklog_syn_queue_full_drops_total` and
/// `forcebacklog_syn_queue_full_cookies_total`.
pub(crate) fn encode_metrics(snapshot: &Snapshot) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    register_sockets(&mut registry, &snapshot.sockets);
    register_counters(&mut registry, &snapshot.counters);
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// The per-socket gauges: the backlog and the accept-queue length.
fn register_sockets(registry: &mut prometheus_client::registry::Registry, sockets: &[Listener]) {
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;

    let backlog = Family::<SocketLabels, Gauge>::default();
    let queue = Family::<SocketLabels, Gauge>::default();
    for socket in sockets {
        let labels = SocketLabels {
            address: socket.address.to_string(),
            port: socket.port,
        };
        backlog
            .get_or_create(&labels)
            .set(i64::from(socket.backlog));
        queue.get_or_create(&labels).set(i64::from(socket.queue));
    }
    registry.register(
        "forcebacklog_listen_backlog",
        "Backlog of a listening TCP socket as the kernel holds it (ss Send-Q)",
        backlog,
    );
    registry.register(
        "forcebacklog_listen_queue",
        "Connections waiting in a listening TCP socket's accept queue (ss Recv-Q)",
        queue,
    );
}

/// The metric name and help of each counter, in the order of
/// [`COUNTER_NAMES`] and `Counters::values`.
const COUNTER_METRICS: [(&str, &str); 4] = [
    (
        "forcebacklog_listen_overflows",
        "Handshakes dropped because an accept queue was full (TcpExtListenOverflows)",
    ),
    (
        "forcebacklog_listen_drops",
        "SYNs and handshakes dropped by listeners, overflows included (TcpExtListenDrops)",
    ),
    (
        "forcebacklog_syn_queue_full_drops",
        "SYNs dropped because the SYN queue was full (TcpExtTCPReqQFullDrop)",
    ),
    (
        "forcebacklog_syn_queue_full_cookies",
        "SYN cookies sent because the SYN queue was full (TcpExtTCPReqQFullDoCookies)",
    ),
];

/// The namespace's counters, one family each ([`COUNTER_METRICS`]).
fn register_counters(registry: &mut prometheus_client::registry::Registry, counters: &Counters) {
    use prometheus_client::metrics::counter::Counter;

    for ((name, help), value) in COUNTER_METRICS.into_iter().zip(counters.values()) {
        let counter = Counter::<u64>::default();
        counter.inc_by(value);
        registry.register(name, help, counter);
    }
}

/// `forcebacklog sockets --serve ADDR`: serve `/metrics` (a fresh
/// snapshot per scrape) and `/healthz` until SIGTERM or SIGINT. Fails
/// first if the namespace cannot be read at all.
pub fn serve(target: Target, addr: SocketAddr) -> Result<(), Error> {
    snapshot(target)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Serve)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local = listener.local_addr().map_err(Error::Serve)?;
        eprintln!("forcebacklog: serving listen-queue metrics on http://{local}/metrics");
        let router = axum::Router::new()
            .route("/metrics", axum::routing::get(move || metrics(target)))
            .route("/healthz", axum::routing::get(|| async { "ok\n" }));
        axum::serve(listener, router)
            .with_graceful_shutdown(stop_signal())
            .await
            .map_err(Error::Serve)
    })
}

async fn metrics(target: Target) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
    use axum::response::IntoResponse;
    let read = tokio::task::spawn_blocking(move || snapshot(target)).await;
    match read {
        Ok(Ok(snapshot)) => {
            let mut response = encode_metrics(&snapshot).into_response();
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        Ok(Err(err)) => {
            let mut line = format!("forcebacklog: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                let _ = write!(line, ": {cause}");
                source = cause.source();
            }
            eprintln!("{line}");
            (StatusCode::INTERNAL_SERVER_ERROR, line + "\n").into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "reading failed\n").into_response(),
    }
}

/// SIGTERM (a sidecar is PID 1, where SIGTERM's default is to be ignored)
/// or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETSTAT: &str = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPReqQFullDoCookies TCPReqQFullDrop\n\
                           TcpExt: 0 7038 7040 2 3\n\
                           IpExt: InNoRoutes\n\
                           IpExt: 0\n";

    #[test]
    fn counters_are_read_by_name() {
        assert_eq!(
            parse_counters(NETSTAT),
            Ok(Counters {
                listen_overflows: 7038,
                listen_drops: 7040,
                req_q_full_drop: 3,
                req_q_full_do_cookies: 2,
            })
        );
    }

    #[test]
    fn a_missing_counter_is_named() {
        let text = "TcpExt: ListenOverflows ListenDrops\nTcpExt: 1 2\n";
        assert_eq!(parse_counters(text), Err("TCPReqQFullDrop"));
    }

    #[test]
    fn this_kernel_has_the_counters() {
        let counters = read_counters(std::path::Path::new("/proc/self/net/netstat"));
        assert!(counters.is_ok(), "{counters:?}");
    }

    fn sample() -> Snapshot {
        Snapshot {
            sockets: vec![
                Listener {
                    address: "127.0.0.1".parse().expect("address"),
                    port: 8080,
                    backlog: 4096,
                    queue: 3,
                },
                Listener {
                    address: "::".parse().expect("address"),
                    port: 9464,
                    backlog: 1024,
                    queue: 0,
                },
            ],
            counters: Counters {
                listen_overflows: 5,
                listen_drops: 6,
                req_q_full_drop: 0,
                req_q_full_do_cookies: 1,
            },
        }
    }

    #[test]
    fn text_table() {
        assert_eq!(
            render_text(&sample()),
            "ADDRESS     PORT  BACKLOG  QUEUE\n\
             127.0.0.1   8080     4096      3\n\
             ::          9464     1024      0\n\
             ListenOverflows 5  ListenDrops 6  TCPReqQFullDrop 0  TCPReqQFullDoCookies 1\n"
        );
    }

    #[test]
    fn json_names() {
        let value: serde_json::Value = serde_json::from_str(&json(&sample(), false)).expect("JSON");
        assert_eq!(
            value,
            serde_json::json!({
                "sockets": [
                    {"address": "127.0.0.1", "port": 8080, "backlog": 4096, "queue": 3},
                    {"address": "::", "port": 9464, "backlog": 1024, "queue": 0},
                ],
                "listen_overflows": 5,
                "listen_drops": 6,
                "req_q_full_drop": 0,
                "req_q_full_do_cookies": 1,
            })
        );
    }

    #[test]
    fn metrics_text() {
        let text = encode_metrics(&sample());
        for line in [
            "forcebacklog_listen_backlog{address=\"127.0.0.1\",port=\"8080\"} 4096",
            "forcebacklog_listen_queue{address=\"::\",port=\"9464\"} 0",
            "# TYPE forcebacklog_listen_overflows counter",
            "forcebacklog_listen_overflows_total 5",
            "forcebacklog_listen_drops_total 6",
            "forcebacklog_syn_queue_full_drops_total 0",
            "forcebacklog_syn_queue_full_cookies_total 1",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }
}
