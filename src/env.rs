//! The environment variables the shim reads, one name each: the webhook
//! writes them into containers ([`crate::plan`]) and `forcebacklog run`
//! sets them for its command ([`crate::shim`]). The shim itself (the
//! `shim/` crate, `no_std`) reads the same names as C strings.

/// The backlog to use (decimal 1..=65535).
pub const BACKLOG: &str = "BACKLOG";
/// The dynamic loader's preload list, where the shim goes first.
pub const LD_PRELOAD: &str = "LD_PRELOAD";
/// `raise` or `set`.
pub const MODE: &str = "FORCEBACKLOG_MODE";
/// The comma-separated ports whose listeners are changed.
pub const PORTS: &str = "FORCEBACKLOG_PORTS";
/// Exactly `1` turns the shim's one debug line on.
pub const DEBUG: &str = "FORCEBACKLOG_DEBUG";
