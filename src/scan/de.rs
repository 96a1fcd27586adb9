//! The scanner as a serde [`Deserializer`](de::Deserializer): the views
//! (`PodView`, `Annotations`) read themselves from the request bytes with
//! their own `Deserialize` impls, and every field they ignore is stepped
//! over by the scanner ([`Scanner::value`]) instead of being walked token
//! by token.
//!
//! What it hands to a view is exact: strings without escapes are borrowed
//! (checked as UTF-8), strings with escapes are decoded by serde_json,
//! integers are read exactly. What it does not follow (a key with an
//! escape, a float, an integer out of range, an enum, a map or list left
//! unfinished by its visitor) is [`Unexpected`], and so is any error a
//! view raises: the caller then reads the body with serde_json, which
//! gives the exact answer or error.

use super::{Scanner, Unexpected};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::fmt;

impl fmt::Display for Unexpected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("text the scanner does not follow")
    }
}

impl std::error::Error for Unexpected {}

impl de::Error for Unexpected {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Unexpected
    }
}

impl<'a> Scanner<'a> {
    /// The string at the current position (its opening quote), borrowed
    /// when it needs no decoding.
    fn string_value<V: Visitor<'a>>(&mut self, visitor: V) -> Result<V::Value, Unexpected> {
        let start = self.pos;
        self.pos += 1;
        let raw = self.string_body()?;
        if !raw
            .iter()
            .fold(false, |odd, &b| odd | (b == b'\\') | (b < 0x20))
        {
            let text = self.str_between(start + 1, self.pos - 1)?;
            return visitor.visit_borrowed_str(text);
        }
        let decoded: String =
            serde_json::from_slice(&self.bytes[start..self.pos]).map_err(|_| Unexpected)?;
        visitor.visit_string(decoded)
    }

    /// An integer at the current position; anything else (a float, a
    /// leading zero, out of range) is left to serde_json.
    fn integer<V: Visitor<'a>>(&mut self, visitor: V) -> Result<V::Value, Unexpected> {
        let negative = self.bytes.get(self.pos) == Some(&b'-');
        if negative {
            self.pos += 1;
        }
        let start = self.pos;
        let mut value = 0u64;
        while let Some(&digit @ b'0'..=b'9') = self.bytes.get(self.pos) {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(digit - b'0')))
                .ok_or(Unexpected)?;
            self.pos += 1;
        }
        let digits = &self.bytes[start..self.pos];
        let leading_zero = digits.len() > 1 && digits[0] == b'0';
        let fraction = matches!(self.bytes.get(self.pos), Some(b'.' | b'e' | b'E'));
        if digits.is_empty() || leading_zero || fraction {
            return Err(Unexpected);
        }
        if !negative {
            return visitor.visit_u64(value);
        }
        let negated = 0i64.checked_sub_unsigned(value).ok_or(Unexpected)?;
        visitor.visit_i64(negated)
    }

    /// Moves past `word` (`true`, `false`, `null`) at the current position.
    fn literal(&mut self, word: &[u8]) -> Result<(), Unexpected> {
        if !self.bytes[self.pos..].starts_with(word) {
            return Err(Unexpected);
        }
        self.pos += word.len();
        Ok(())
    }
}

impl<'de> de::Deserializer<'de> for &mut Scanner<'de> {
    type Error = Unexpected;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unexpected> {
        match self.peek().ok_or(Unexpected)? {
            b'"' => self.string_value(visitor),
            b'{' => {
                self.pos += 1;
                let mut members = Members {
                    s: self,
                    state: State::First,
                };
                let value = visitor.visit_map(&mut members)?;
                members.finished(value)
            }
            b'[' => {
                self.pos += 1;
                let mut elements = Members {
                    s: self,
                    state: State::First,
                };
                let value = visitor.visit_seq(&mut elements)?;
                elements.finished(value)
            }
            b't' => self
                .literal(b"true")
                .and_then(|()| visitor.visit_bool(true)),
            b'f' => self
                .literal(b"false")
                .and_then(|()| visitor.visit_bool(false)),
            b'n' => self.literal(b"null").and_then(|()| visitor.visit_unit()),
            b'-' | b'0'..=b'9' => self.integer(visitor),
            _ => Err(Unexpected),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unexpected> {
        if self.null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unexpected> {
        self.value()?;
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Unexpected> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Unexpected> {
        Err(Unexpected)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

/// Where a map or list is between its members.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Just after the opening bracket.
    First,
    /// After a member.
    Next,
    /// After the closing bracket.
    Done,
}

/// The members of a map, or the elements of a list.
struct Members<'s, 'a> {
    s: &'s mut Scanner<'a>,
    state: State,
}

impl Members<'_, '_> {
    /// True when another member follows; moves past the comma or the
    /// closing `close`.
    fn more(&mut self, close: u8) -> Result<bool, Unexpected> {
        let next = self.s.peek();
        match (self.state, next) {
            (State::Done, _) => Ok(false),
            (_, Some(b)) if b == close => {
                self.s.pos += 1;
                self.state = State::Done;
                Ok(false)
            }
            (State::First, Some(_)) => {
                self.state = State::Next;
                Ok(true)
            }
            (State::Next, Some(b',')) => {
                self.s.pos += 1;
                Ok(true)
            }
            _ => Err(Unexpected),
        }
    }

    /// `value` when the visitor read the map or list to its end.
    fn finished<T>(&self, value: T) -> Result<T, Unexpected> {
        if self.state == State::Done {
            Ok(value)
        } else {
            Err(Unexpected)
        }
    }
}

impl<'de> MapAccess<'de> for Members<'_, 'de> {
    type Error = Unexpected;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Unexpected> {
        if !self.more(b'}')? {
            return Ok(None);
        }
        let key = self.s.plain_key()?;
        // Just past its closing quote.
        let start = self.s.pos - 1 - key.len();
        self.s.expect(b':')?;
        seed.deserialize(Key {
            s: &*self.s,
            raw: key,
            start,
        })
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Unexpected> {
        seed.deserialize(&mut *self.s)
    }
}

impl<'de> SeqAccess<'de> for Members<'_, 'de> {
    type Error = Unexpected;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Unexpected> {
        if !self.more(b']')? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.s).map(Some)
    }
}

/// A key (without escapes) being read. A struct's field names are
/// matched on its bytes ([`de::Deserializer::deserialize_identifier`]);
/// anything else reads it as text.
struct Key<'s, 'a> {
    s: &'s Scanner<'a>,
    raw: &'a [u8],
    /// Where `raw` starts in the text.
    start: usize,
}

impl<'de> de::Deserializer<'de> for Key<'_, 'de> {
    type Error = Unexpected;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unexpected> {
        let text = self
            .s
            .str_between(self.start, self.start + self.raw.len())?;
        visitor.visit_borrowed_str(text)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unexpected> {
        visitor.visit_borrowed_bytes(self.raw)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::Value;
    use std::borrow::Cow;

    /// What the scanner reads as `T`, and what serde_json reads.
    fn both<'a, T: Deserialize<'a>>(text: &'a str) -> (Result<T, Unexpected>, Option<T>) {
        let mut s = Scanner::new(text.as_bytes());
        let scanned =
            T::deserialize(&mut s).and_then(|v| if s.at_end() { Ok(v) } else { Err(Unexpected) });
        (scanned, serde_json::from_str(text).ok())
    }

    #[test]
    fn values_read_as_serde_json_reads_them() {
        for text in [
            r#"{"a":[1,-2,true,false,null,"x"],"b":{"c":{}},"d":[]}"#,
            r#" { "a" : [ 1 , { "b" : "c\"d\u00e9" } ] } "#,
            "0",
            "-9223372036854775808",
            "18446744073709551615",
            r#""plain""#,
        ] {
            let (scanned, parsed) = both::<Value>(text);
            assert_eq!(scanned.ok(), parsed, "{text}");
        }
    }

    #[test]
    fn what_it_does_not_follow_is_unexpected() {
        for text in [
            "1.5",
            "1e3",
            "01",
            "-",
            "18446744073709551616",
            "-9223372036854775809",
            r#"{"a\u0062":1}"#,
            r#"{"a":1,}"#,
            "[1,]",
            "[1 2]",
            "tru",
            "{\"a\":\"\u{1}\"}",
        ] {
            let (scanned, _) = both::<Value>(text);
            assert_eq!(scanned, Err(Unexpected), "{text}");
        }
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Only<'a> {
        #[serde(borrow, default)]
        keep: Cow<'a, str>,
    }

    #[test]
    fn plain_strings_are_borrowed_and_escaped_ones_decoded() {
        let (scanned, _) = both::<Only<'_>>(r#"{"keep":"abc"}"#);
        assert!(matches!(
            scanned,
            Ok(Only {
                keep: Cow::Borrowed("abc")
            })
        ));
        let (scanned, parsed) = both::<Only<'_>>(r#"{"keep":"a\nb\u00e9"}"#);
        assert_eq!(scanned.ok(), parsed);
        assert!(parsed.is_some_and(|p| p.keep == "a\nbé"));
    }

    #[test]
    fn ignored_values_are_stepped_over() {
        let text = r#"{"skip":{"x":[1.5e3,"]",{"}":null}]},"keep":"k","more":-0.25}"#;
        let (scanned, parsed) = both::<Only<'_>>(text);
        assert_eq!(scanned.ok(), parsed);
        let (scanned, _) = both::<Option<Only<'_>>>("null");
        assert_eq!(scanned, Ok(None));
    }
}
