//! A JSON scanner that finds the few members the review reads and steps
//! over everything else by its structure.
//!
//! An AdmissionReview is mostly what the webhook never looks at (the
//! pod's spec, `managedFields`, `userInfo`). Reading it with serde_json
//! costs a token-by-token walk of all of it; this scanner instead jumps
//! from one string delimiter or bracket to the next, eight bytes at a
//! time inside strings (to the next quote; backslashes are looked at only
//! before a quote). What it reads (keys, the strings it returns) is
//! exact JSON; what it steps over is only checked for its structure
//! (strings end, brackets balance), not for its grammar: the API server
//! sends what Go's `encoding/json` wrote. Any surprise (a non-string
//! where a string is expected, a key with an escape, a duplicate key the
//! caller cares about) is left to the caller, which then reads the body
//! with serde_json to answer it exactly.

mod de;

/// The scanner could not follow the text: the caller falls back to a full parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unexpected;

/// A position in a JSON text.
pub(crate) struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

const ONES: u64 = u64::MAX / 255;
const HIGH: u64 = ONES << 7;

/// The high bit of each byte of `word` equal to `byte`; exact for the
/// lowest such byte (higher bits may be false positives).
#[inline(always)]
fn lowest_match(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & HIGH
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Scanner { bytes, pos: 0 }
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), Unexpected> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Unexpected)
        }
    }

    /// True when only whitespace is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// Moves past the closing quote of a string whose opening quote is
    /// behind; returns the string's raw content (escapes not decoded).
    #[inline(always)]
    fn string_body(&mut self) -> Result<&'a [u8], Unexpected> {
        let start = self.pos;
        loop {
            let quote = self.next_quote()?;
            self.pos = quote + 1;
            // A quote ends the string unless an odd run of backslashes
            // escapes it (rare: checked backwards only then).
            if quote == start || self.bytes[quote - 1] != b'\\' {
                return Ok(&self.bytes[start..quote]);
            }
            let run = self.bytes[start..quote]
                .iter()
                .rev()
                .take_while(|&&b| b == b'\\')
                .count();
            if run % 2 == 0 {
                return Ok(&self.bytes[start..quote]);
            }
        }
    }

    /// The index of the next `"` from the current position, eight bytes
    /// at a time.
    #[inline(always)]
    fn next_quote(&self) -> Result<usize, Unexpected> {
        let mut at = self.pos;
        while let Some(chunk) = self.bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
            let hits = lowest_match(u64::from_le_bytes(*chunk), b'"');
            if hits != 0 {
                return Ok(at + (hits.trailing_zeros() / 8) as usize);
            }
            at += 8;
        }
        let tail = self.bytes.get(at..).unwrap_or_default();
        match tail.iter().position(|&b| b == b'"') {
            Some(i) => Ok(at + i),
            None => Err(Unexpected),
        }
    }

    /// Moves back to `position` (an earlier [`Self::position`]).
    pub(crate) fn rewind(&mut self, position: usize) {
        self.pos = position;
    }

    /// The current position.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// A string value: its raw content (escapes not decoded).
    pub(crate) fn raw_string(&mut self) -> Result<&'a [u8], Unexpected> {
        self.expect(b'"')?;
        self.string_body()
    }

    /// A string value without escapes, as `str`; `Unexpected` for
    /// anything else (a string with escapes is read by the fallback).
    pub(crate) fn plain_string(&mut self) -> Result<&'a str, Unexpected> {
        let raw = self.raw_string()?;
        if raw.contains(&b'\\') {
            return Err(Unexpected);
        }
        std::str::from_utf8(raw).map_err(|_| Unexpected)
    }

    /// True (and moves past it) when the next value is `null`.
    pub(crate) fn null(&mut self) -> bool {
        if self.peek() == Some(b'n') && self.bytes[self.pos..].starts_with(b"null") {
            self.pos += 4;
            true
        } else {
            false
        }
    }

    /// Steps over one value; returns its text.
    pub(crate) fn value(&mut self) -> Result<&'a [u8], Unexpected> {
        let start = match self.peek() {
            Some(_) => self.pos,
            None => return Err(Unexpected),
        };
        match self.bytes[self.pos] {
            b'"' => {
                self.pos += 1;
                self.string_body()?;
            }
            b'{' | b'[' => self.container()?,
            _ => {
                // A number or a literal: up to the next delimiter.
                while let Some(b) = self.bytes.get(self.pos) {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                        break;
                    }
                    if matches!(b, b'"' | b'{' | b'[' | b':') {
                        return Err(Unexpected);
                    }
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err(Unexpected);
                }
            }
        }
        Ok(&self.bytes[start..self.pos])
    }

    /// Steps over an object or array at the current position, by its brackets.
    fn container(&mut self) -> Result<(), Unexpected> {
        let mut depth = 0usize;
        while let Some(&b) = self.bytes.get(self.pos) {
            self.pos += 1;
            match b {
                b'"' => {
                    self.string_body()?;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        Err(Unexpected)
    }

    /// Calls `member` with each key (raw, escapes not decoded) of the
    /// object at the current position; `member` must consume the value.
    pub(crate) fn object(
        &mut self,
        mut member: impl FnMut(&'a [u8], &mut Self) -> Result<(), Unexpected>,
    ) -> Result<(), Unexpected> {
        self.expect(b'{')?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let key = self.raw_string()?;
            if key.contains(&b'\\') {
                return Err(Unexpected);
            }
            self.expect(b':')?;
            member(key, self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Unexpected),
            }
        }
    }
}

/// Sets `slot` once; a second value for the same key is `Unexpected`.
pub(crate) fn once<T>(slot: &mut Option<T>, value: T) -> Result<(), Unexpected> {
    if slot.is_some() {
        return Err(Unexpected);
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip(text: &str) -> Result<&str, Unexpected> {
        let mut s = Scanner::new(text.as_bytes());
        let v = s.value()?;
        Ok(std::str::from_utf8(v).expect("utf-8"))
    }

    #[test]
    fn values_are_stepped_over_exactly() {
        for text in [
            r#""""#,
            r#""a""#,
            r#""0123456789abcdef\"0123456789""#,
            r#""\\""#,
            r#""x\\\"y""#,
            r#"{"a":[1,2,{"b":"]}"}],"c":"{"}"#,
            "[[],[[]],{}]",
            "12.5e-3",
            "true",
            "null",
        ] {
            assert_eq!(skip(&format!("{text} ,")), Ok(text), "{text}");
            assert_eq!(skip(text), Ok(text), "{text}");
        }
    }

    #[test]
    fn unfinished_text_is_unexpected() {
        for text in ["", "\"abc", "\"abc\\\"", "{\"a\":[1,2}", "[", "{", ":"] {
            assert_eq!(skip(text), Err(Unexpected), "{text:?}");
        }
    }

    #[test]
    fn objects_give_their_members() {
        let text = br#" { "a" : "x" , "b":{"c":[1]}, "d": null } "#;
        let mut s = Scanner::new(text);
        let mut seen = Vec::new();
        s.object(|key, s| {
            seen.push((key.to_vec(), s.value()?.to_vec()));
            Ok(())
        })
        .unwrap();
        assert!(s.at_end());
        assert_eq!(
            seen,
            [
                (b"a".to_vec(), b"\"x\"".to_vec()),
                (b"b".to_vec(), br#"{"c":[1]}"#.to_vec()),
                (b"d".to_vec(), b"null".to_vec()),
            ]
        );
        assert_eq!(Scanner::new(b"{}").object(|_, _| Err(Unexpected)), Ok(()));
        assert_eq!(
            Scanner::new(br#"{"a\u0062":1}"#).object(|_, s| s.value().map(drop)),
            Err(Unexpected)
        );
        assert_eq!(
            Scanner::new(br#"{"a" 1}"#).object(|_, s| s.value().map(drop)),
            Err(Unexpected)
        );
    }

    #[test]
    fn plain_strings_only() {
        assert_eq!(Scanner::new(br#""uid-1""#).plain_string(), Ok("uid-1"));
        assert_eq!(Scanner::new(br#""a\nb""#).plain_string(), Err(Unexpected));
        assert_eq!(Scanner::new(b"5").plain_string(), Err(Unexpected));
        assert_eq!(Scanner::new(b"\"\xff\"").plain_string(), Err(Unexpected));
    }
}
