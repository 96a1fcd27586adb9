//! A JSON scanner that finds the few members the review reads and steps
//! over everything else by its structure.
//!
//! An AdmissionReview is mostly what the webhook never looks at (the
//! pod's spec, `managedFields`, `userInfo`). Reading it with serde_json
//! costs a token-by-token walk of all of it; this scanner instead steps
//! over an object or array 64 bytes at a time (its quotes, backslashes
//! and brackets found as bit masks, see [`Scanner::container`]), and over
//! a lone string sixteen bytes at a time (to the next quote, one SSE2
//! compare a step; backslashes are looked at only before a quote). Keys
//! are found the same way, their backslashes with their quote, and
//! matched on their bytes. [`de`] makes it a serde `Deserializer`, so the
//! views read themselves through it; [`pod`] reads a targeted pod's spec,
//! containers, `env` and `volumeMounts` on the scanner directly, without
//! serde's layers. What it reads (keys, the strings it returns) is
//! exact JSON; what it steps over is only checked for its structure
//! (strings end, brackets balance), not for its grammar: the API server
//! sends what Go's `encoding/json` wrote. Any surprise (a non-string
//! where a string is expected, a key with an escape, a duplicate key the
//! caller cares about) is left to the caller, which then reads the body
//! with serde_json to answer it exactly.

mod de;
mod pod;

pub(crate) use pod::{pod_view, spec_view};

/// The scanner could not follow the text: the caller falls back to a full parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unexpected;

/// A position in a JSON text.
pub(crate) struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// `bytes` as text, once checked as UTF-8 as a whole ([`Self::text`]).
    text: Option<&'a str>,
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
        Scanner {
            bytes,
            pos: 0,
            text: None,
        }
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

    /// The index of the next `"` from the current position, sixteen
    /// bytes at a time ([`quotes`]), then eight.
    #[inline(always)]
    fn next_quote(&self) -> Result<usize, Unexpected> {
        let mut at = self.pos;
        while let Some(chunk) = self.bytes.get(at..).and_then(<[u8]>::first_chunk::<16>) {
            let (quote, _) = quotes(chunk);
            if quote != 0 {
                return Ok(at + quote.trailing_zeros() as usize);
            }
            at += 16;
        }
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
        // Without an early exit, so the compiler can check many bytes at a
        // time (keys and names are short: memchr's set-up would dominate).
        if raw.iter().fold(false, |seen, &b| seen | (b == b'\\')) {
            return Err(Unexpected);
        }
        self.str_between(self.pos - 1 - raw.len(), self.pos - 1)
    }

    /// A key without escapes, as raw bytes; `Unexpected` for a key with
    /// one (read by the fallback). Its closing quote and any backslash
    /// are looked for together, sixteen bytes at a time ([`quotes`]).
    pub(crate) fn plain_key(&mut self) -> Result<&'a [u8], Unexpected> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut at = start;
        while let Some(chunk) = self.bytes.get(at..).and_then(<[u8]>::first_chunk::<16>) {
            let (quote, backslash) = quotes(chunk);
            let (quote, backslash) = (quote.trailing_zeros(), backslash.trailing_zeros());
            if backslash < quote {
                return Err(Unexpected);
            }
            if quote < 32 {
                return Ok(self.key_until(start, at + quote as usize));
            }
            at += 16;
        }
        let tail = self.bytes.get(at..).unwrap_or_default();
        match tail.iter().position(|&b| b == b'"' || b == b'\\') {
            Some(i) if tail[i] == b'"' => Ok(self.key_until(start, at + i)),
            _ => Err(Unexpected),
        }
    }

    /// The key from `start` to its closing quote at `quote`; moves past it.
    #[inline(always)]
    fn key_until(&mut self, start: usize, quote: usize) -> &'a [u8] {
        self.pos = quote + 1;
        &self.bytes[start..quote]
    }

    /// Checks the whole text as UTF-8, once: afterwards every string read
    /// is a slice of it instead of being checked on its own (reading a
    /// pod's views takes hundreds of short strings).
    pub(crate) fn check_text(&mut self) -> Result<(), Unexpected> {
        if self.text.is_none() {
            self.text = Some(simdutf8::basic::from_utf8(self.bytes).map_err(|_| Unexpected)?);
        }
        Ok(())
    }

    /// `bytes[start..end]` (between ASCII delimiters) as text.
    fn str_between(&self, start: usize, end: usize) -> Result<&'a str, Unexpected> {
        match self.text {
            Some(text) => text.get(start..end).ok_or(Unexpected),
            None => std::str::from_utf8(&self.bytes[start..end]).map_err(|_| Unexpected),
        }
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

    /// Steps over an object or array at the current position, by its
    /// brackets, 64 bytes a step: the step's quotes, backslashes and
    /// brackets as bit masks ([`Classes`]), the escaped quotes removed and
    /// the insides of strings found with a prefix XOR ([`Walk::step`]),
    /// then only the brackets outside strings are visited.
    fn container(&mut self) -> Result<(), Unexpected> {
        let mut walk = Walk::default();
        let mut at = self.pos;
        while at < self.bytes.len() {
            let (block, len) = block_at(self.bytes, at);
            if let Some(end) = walk.step(&Classes::of(&block)) {
                self.pos = at + end + 1;
                return Ok(());
            }
            at += len;
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
            let key = self.plain_key()?;
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

/// The quotes and the backslashes of sixteen bytes: bit `i` for byte
/// `i`. SSE2 (part of every x86-64): one compare and one mask each.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn quotes(chunk: &[u8; 16]) -> (u32, u32) {
    use safe_arch::{cmp_eq_mask_i8_m128i, m128i, move_mask_i8_m128i, set_splat_i8_m128i};
    let v = m128i::from(*chunk);
    let mask = |b: u8| move_mask_i8_m128i(cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b as i8)));
    (mask(b'"') as u32, mask(b'\\') as u32)
}

/// Byte by byte: other architectures, and the reference in tests.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn quotes_scalar(chunk: &[u8; 16]) -> (u32, u32) {
    chunk
        .iter()
        .enumerate()
        .fold((0, 0), |(quote, backslash), (i, &b)| {
            (
                quote | u32::from(b == b'"') << i,
                backslash | u32::from(b == b'\\') << i,
            )
        })
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn quotes(chunk: &[u8; 16]) -> (u32, u32) {
    quotes_scalar(chunk)
}

/// Bytes per step of [`Scanner::container`].
const BLOCK: usize = 64;

/// The 64 bytes at `at` (padded with spaces at the end of the text, which
/// belong to no class) and how many of them are the text's.
#[inline(always)]
fn block_at(bytes: &[u8], at: usize) -> ([u8; BLOCK], usize) {
    match bytes.get(at..).and_then(<[u8]>::first_chunk::<BLOCK>) {
        Some(block) => (*block, BLOCK),
        None => {
            let rest = bytes.get(at..).unwrap_or_default();
            let mut block = [b' '; BLOCK];
            block[..rest.len()].copy_from_slice(rest);
            (block, rest.len())
        }
    }
}

/// The quotes, backslashes and brackets of a block: bit `i` for byte `i`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Classes {
    quote: u64,
    backslash: u64,
    open: u64,
    close: u64,
}

impl Classes {
    /// SSE2 (part of every x86-64): 16 bytes compared at once, one bit
    /// kept per byte. `{` and `[` differ only in bit 5 (0x7B, 0x5B), as do
    /// `}` and `]`.
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    #[inline(always)]
    fn of(block: &[u8; BLOCK]) -> Self {
        use safe_arch::{cmp_eq_mask_i8_m128i, m128i, move_mask_i8_m128i, set_splat_i8_m128i};
        let mut c = Classes::default();
        for (i, sixteen) in block.chunks_exact(16).enumerate() {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(sixteen);
            let v = m128i::from(bytes);
            let folded = v | set_splat_i8_m128i(0x20);
            let bits = |m: m128i| u64::from(move_mask_i8_m128i(m) as u16) << (16 * i);
            c.quote |= bits(cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'"' as i8)));
            c.backslash |= bits(cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'\\' as i8)));
            c.open |= bits(cmp_eq_mask_i8_m128i(folded, set_splat_i8_m128i(b'{' as i8)));
            c.close |= bits(cmp_eq_mask_i8_m128i(folded, set_splat_i8_m128i(b'}' as i8)));
        }
        c
    }

    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    fn of(block: &[u8; BLOCK]) -> Self {
        Self::scalar(block)
    }

    /// Byte by byte: other architectures, and the reference in tests.
    #[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
    fn scalar(block: &[u8; BLOCK]) -> Self {
        let mut c = Classes::default();
        for (i, &b) in block.iter().enumerate() {
            let bit = 1u64 << i;
            match b {
                b'"' => c.quote |= bit,
                b'\\' => c.backslash |= bit,
                b'{' | b'[' => c.open |= bit,
                b'}' | b']' => c.close |= bit,
                _ => {}
            }
        }
        c
    }
}

/// Every other bit, from bit 0.
const EVEN: u64 = 0x5555_5555_5555_5555;

/// Where [`Scanner::container`] is between steps.
#[derive(Default)]
struct Walk {
    /// Brackets open.
    depth: usize,
    /// The last step ended inside a string.
    in_string: bool,
    /// 1 when the last step ended with an odd run of backslashes: the
    /// next step's first byte is escaped.
    escape_carry: u64,
}

impl Walk {
    /// One block; the index of the bracket that closes the container,
    /// when it is in this block.
    #[inline(always)]
    fn step(&mut self, c: &Classes) -> Option<usize> {
        let escaped = self.escaped(c.backslash);
        let mut inside = prefix_xor(c.quote & !escaped);
        if self.in_string {
            inside = !inside;
        }
        self.in_string = inside >> 63 == 1;
        let (open, close) = (c.open & !inside, c.close & !inside);
        let mut brackets = open | close;
        while brackets != 0 {
            let bit = brackets & brackets.wrapping_neg();
            if open & bit != 0 {
                self.depth += 1;
            } else {
                self.depth = self.depth.checked_sub(1)?;
                if self.depth == 0 {
                    return Some(bit.trailing_zeros() as usize);
                }
            }
            brackets ^= bit;
        }
        None
    }

    /// The bytes a backslash escapes: the second of each pair in a run of
    /// backslashes, and the byte after an odd run (carried into the next
    /// block when the run ends the block).
    #[inline(always)]
    fn escaped(&mut self, backslash: u64) -> u64 {
        if backslash == 0 {
            return std::mem::take(&mut self.escape_carry);
        }
        let backslash = backslash & !self.escape_carry;
        let follows_escape = backslash << 1 | self.escape_carry;
        // Runs that start on an odd bit, added to the runs: the carry of
        // the addition marks the runs that start on even bits.
        let odd_starts = backslash & !EVEN & !follows_escape;
        let (even_starts, overflow) = odd_starts.overflowing_add(backslash);
        self.escape_carry = u64::from(overflow);
        (EVEN ^ (even_starts << 1)) & follows_escape
    }
}

/// Bit `i` is the XOR of bits 0..=i: set between an opening quote
/// (included) and its closing quote (excluded).
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
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
mod tests;
