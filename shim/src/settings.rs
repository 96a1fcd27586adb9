//! The shim's environment contract, as pure functions over bytes.
//!
//! - `BACKLOG`: a decimal integer in 1..=65535 (ASCII digits only, no
//!   sign, no spaces). Unset, empty or anything else: pass through.
//! - `FORCEBACKLOG_MODE`: `raise` (default; also when unset or empty) or
//!   `set`. Any other value: pass through (an unknown mode changes
//!   nothing, like an invalid `BACKLOG`).
//! - `FORCEBACKLOG_PORTS`: unset or empty means every listener; otherwise
//!   a comma list of decimal ports in 1..=65535 without spaces (`8080` or
//!   `8080,9090`). An invalid list: pass through.
//! - `FORCEBACKLOG_DEBUG`: exactly `1` turns the debug line on.

use core::ffi::c_int;

/// Longest value worth reading for a number (`65535` plus leading zeros).
pub const MAX_NUMBER_LEN: usize = 16;
/// Longest `FORCEBACKLOG_PORTS` value read.
pub const MAX_PORTS_LEN: usize = 4096;
/// Longest `FORCEBACKLOG_MODE` / `FORCEBACKLOG_DEBUG` value read.
pub const MAX_WORD_LEN: usize = 8;

/// How the new backlog relates to the application's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// max(application's backlog, BACKLOG).
    Raise,
    /// Exactly BACKLOG.
    Set,
}

/// A decimal integer in 1..=65535 made of ASCII digits only.
pub fn parse_number(text: &[u8]) -> Option<u16> {
    if text.is_empty() || text.len() > MAX_NUMBER_LEN {
        return None;
    }
    let mut value: u32 = 0;
    for &byte in text {
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(byte - b'0');
        if value > 65535 {
            return None;
        }
    }
    if value == 0 { None } else { Some(value as u16) }
}

/// `FORCEBACKLOG_MODE`; `None` for an unknown mode.
pub fn parse_mode(text: Option<&[u8]>) -> Option<Mode> {
    match text {
        None | Some(b"") | Some(b"raise") => Some(Mode::Raise),
        Some(b"set") => Some(Mode::Set),
        Some(_) => None,
    }
}

/// Whether `FORCEBACKLOG_PORTS` is a valid list: non-empty items, each a
/// port in 1..=65535, separated by single commas.
pub fn ports_valid(list: &[u8]) -> bool {
    !list.is_empty()
        && list.len() <= MAX_PORTS_LEN
        && list
            .split(|&b| b == b',')
            .all(|item| parse_number(item).is_some())
}

/// Whether a valid port list contains `port`.
pub fn ports_contain(list: &[u8], port: u16) -> bool {
    list.split(|&b| b == b',')
        .any(|item| parse_number(item) == Some(port))
}

/// The backlog to pass on. Compared as the kernel does, unsigned: a
/// negative application value means "as large as allowed" and is never
/// lowered in `raise` mode.
pub fn new_backlog(mode: Mode, app: c_int, backlog: u16) -> c_int {
    let wanted = c_int::from(backlog);
    match mode {
        Mode::Set => wanted,
        Mode::Raise if (app as u32) < (wanted as u32) => wanted,
        Mode::Raise => app,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_range_parse() {
        assert_eq!(parse_number(b"1"), Some(1));
        assert_eq!(parse_number(b"234"), Some(234));
        assert_eq!(parse_number(b"0234"), Some(234));
        assert_eq!(parse_number(b"65535"), Some(65535));
    }

    #[test]
    fn invalid_numbers_are_rejected() {
        for text in [
            &b""[..],
            b"0",
            b"000",
            b"abc",
            b"-5",
            b"+5",
            b"12abc",
            b" 234",
            b"234 ",
            b"65536",
            b"99999999999",
            b"4294967530",
            b"00000000000000001",
            b"1.5",
        ] {
            assert_eq!(parse_number(text), None, "{:?}", core::str::from_utf8(text));
        }
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode(None), Some(Mode::Raise));
        assert_eq!(parse_mode(Some(b"")), Some(Mode::Raise));
        assert_eq!(parse_mode(Some(b"raise")), Some(Mode::Raise));
        assert_eq!(parse_mode(Some(b"set")), Some(Mode::Set));
        assert_eq!(parse_mode(Some(b"SET")), None);
        assert_eq!(parse_mode(Some(b"lower")), None);
    }

    #[test]
    fn port_lists() {
        assert!(ports_valid(b"8080"));
        assert!(ports_valid(b"8080,9090"));
        for bad in [
            &b""[..],
            b",",
            b"8080,",
            b",8080",
            b"8080,,9090",
            b"8080, 9090",
            b"0",
            b"65536",
            b"http",
        ] {
            assert!(!ports_valid(bad), "{:?}", core::str::from_utf8(bad));
        }
        assert!(ports_contain(b"8080,9090", 9090));
        assert!(!ports_contain(b"8080,9090", 80));
    }

    #[test]
    fn raise_never_lowers_and_set_is_exact() {
        assert_eq!(new_backlog(Mode::Raise, 20, 234), 234);
        assert_eq!(new_backlog(Mode::Raise, 511, 234), 511);
        assert_eq!(new_backlog(Mode::Raise, -1, 234), -1);
        assert_eq!(new_backlog(Mode::Raise, 0, 234), 234);
        assert_eq!(new_backlog(Mode::Set, 511, 234), 234);
        assert_eq!(new_backlog(Mode::Set, -1, 234), 234);
    }
}
