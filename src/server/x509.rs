//! The validity period of an X.509 certificate, read straight from its DER
//! (RFC 5280 §4.1): just enough of the structure to reach
//! `tbsCertificate.validity`, nothing else. rustls has already checked that
//! the certificate parses and matches its key before this runs.
//!
//! Times are Unix seconds (UTC); [`rfc3339`] prints them for log lines.

/// `notBefore` and `notAfter` of a certificate, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// The first second the certificate is valid.
    pub not_before: i64,
    /// The last second the certificate is valid.
    pub not_after: i64,
}

/// Where `now` falls against a [`Validity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// Before `notBefore`.
    NotYetValid,
    /// Between `notBefore` and `notAfter`, both included.
    Valid,
    /// After `notAfter`.
    Expired,
}

impl Validity {
    /// Where `now` (Unix seconds) falls.
    pub fn at(&self, now: i64) -> Period {
        if now < self.not_before {
            Period::NotYetValid
        } else if now > self.not_after {
            Period::Expired
        } else {
            Period::Valid
        }
    }
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0; // [0] EXPLICIT
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// Reads `notBefore` and `notAfter` of a DER certificate; `None` when the
/// bytes are not a certificate this reader understands.
pub fn validity(der: &[u8]) -> Option<Validity> {
    let (certificate, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(certificate, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&VERSION) {
        rest = tlv(rest)?.2;
    }
    let (_serial, rest) = expect(rest, INTEGER)?;
    let (_signature, rest) = expect(rest, SEQUENCE)?;
    let (_issuer, rest) = expect(rest, SEQUENCE)?;
    let (period, _) = expect(rest, SEQUENCE)?;
    let (not_before, rest) = time(period)?;
    let (not_after, _) = time(rest)?;
    Some(Validity {
        not_before,
        not_after,
    })
}

/// One tag-length-value: (tag, value, what follows). Short and long
/// definite lengths up to 4 bytes; low tag numbers only (all this reader
/// meets).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (value, rest) = rest.split_at(len);
    Some((tag, value, rest))
}

fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match tlv(input)? {
        (found, value, rest) if found == tag => Some((value, rest)),
        _ => None,
    }
}

/// A `Time` (UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime
/// `YYYYMMDDHHMMSSZ`, the only forms RFC 5280 allows) as Unix seconds.
fn time(input: &[u8]) -> Option<(i64, &[u8])> {
    let (tag, value, rest) = tlv(input)?;
    let (year, digits) = match (tag, value.len()) {
        (UTC_TIME, 13) => {
            let yy = number(&value[..2])?;
            // RFC 5280 §4.1.2.5.1: 50..99 are 19xx, 00..49 are 20xx.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &value[2..])
        }
        (GENERALIZED_TIME, 15) => (number(&value[..4])?, &value[4..]),
        _ => return None,
    };
    if digits.last() != Some(&b'Z') {
        return None;
    }
    let month = number(&digits[0..2])?;
    let day = number(&digits[2..4])?;
    let hour = number(&digits[4..6])?;
    let minute = number(&digits[6..8])?;
    let second = number(&digits[8..10])?;
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3_600 + minute * 60 + second, rest))
}

fn number(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0i64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
    })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number from [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix seconds as `2026-01-01T00:00:00Z`.
pub fn rfc3339(unix: i64) -> String {
    let (year, month, day) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

/// The current time in Unix seconds (0 if the clock is before 1970).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn reads_utc_and_generalized_times() {
        // rcgen writes UTCTime up to 2049 and GeneralizedTime from 2050.
        let v = validity(&cert((2024, 2, 29), (2051, 1, 1))).expect("validity");
        assert_eq!(rfc3339(v.not_before), "2024-02-29T00:00:00Z");
        assert_eq!(rfc3339(v.not_after), "2051-01-01T00:00:00Z");
        assert_eq!(v.not_before, 1_709_164_800);
        assert_eq!(v.at(v.not_before - 1), Period::NotYetValid);
        assert_eq!(v.at(v.not_before), Period::Valid);
        assert_eq!(v.at(v.not_after), Period::Valid);
        assert_eq!(v.at(v.not_after + 1), Period::Expired);
    }

    #[test]
    fn dates_round_trip_over_centuries() {
        for days in [-719_468, -1, 0, 1, 11_016, 19_782, 30_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn anything_else_is_none_never_a_panic() {
        let good = cert((2024, 1, 1), (2025, 1, 1));
        assert!(validity(&good).is_some());
        for cut in 0..good.len() {
            // Any truncation either fails or still reads the two times
            // (they sit early in the structure); it never panics.
            let _ = validity(&good[..cut]);
        }
        assert_eq!(validity(b""), None);
        assert_eq!(validity(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(validity(&[0x30, 0x80]), None);
        assert_eq!(validity(&[0x1f, 0x01, 0x00]), None);
        // A bad date inside an otherwise well-formed certificate.
        let text = b"240101000000Z";
        let at = good
            .windows(text.len())
            .position(|w| w == text)
            .expect("notBefore in the DER");
        let mut bad = good.clone();
        bad[at + 2..at + 4].copy_from_slice(b"13"); // month 13
        assert_eq!(validity(&bad), None);
    }
}
