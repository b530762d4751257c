//! Python-compatible canonical JSON: the exact bytes fedmsg signs.
//!
//! fedmsg signs `json.dumps(msg, sort_keys=True, separators=(',', ':'))` (with
//! the default `ensure_ascii=True`) of the message dict *as Python decoded it*.
//! A signature only verifies if we rebuild those bytes exactly, so this module
//! models JSON the way Python's `json.loads` does rather than the way
//! `serde_json` does:
//!
//! * integers stay arbitrary-precision, printed as written (`-0` becomes `0`,
//!   as `int("-0")` does);
//! * anything with a fraction or exponent is a binary64 float, printed with
//!   Python's `repr` rules (`1e+16`, `1e-05`, `0.1`, `1000000000000000.0`);
//! * strings are sequences of code points and may hold lone surrogates (Python
//!   accepts `"\ud800"`); non-ASCII is escaped as `\uXXXX`, astral characters as
//!   surrogate pairs, U+007F too, `/` is not escaped;
//! * object keys sort by code point, duplicate keys keep the last value;
//! * `NaN`, `Infinity`, `-Infinity` are accepted and written back, as Python does.
//!
//! We tokenize the raw bytes ourselves because `serde_json` without its
//! `arbitrary_precision` feature (which we must not enable workspace-wide)
//! loses integers beyond 64 bits.

use std::fmt::Write as _;

/// Nesting deeper than this is rejected rather than risking stack exhaustion
/// (Python's own limit is its recursion limit, about 1000).
const MAX_DEPTH: usize = 512;

/// A string as Python holds it: code points, lone surrogates allowed.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PyStr(pub Vec<u32>);

impl PyStr {
    /// Whether this string equals `s` (used for envelope field lookups).
    pub fn eq_str(&self, s: &str) -> bool {
        self.0.len() == s.chars().count() && self.0.iter().zip(s.chars()).all(|(a, b)| *a == b as u32)
    }

    /// The string as Rust text; a lone surrogate becomes U+FFFD.
    pub fn to_string_lossy(&self) -> String {
        self.0.iter().map(|&c| char::from_u32(c).unwrap_or('\u{FFFD}')).collect()
    }
}

impl From<&str> for PyStr {
    fn from(s: &str) -> Self {
        PyStr(s.chars().map(|c| c as u32).collect())
    }
}

/// A JSON value with Python `json.loads` semantics (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub enum PyJson {
    Null,
    Bool(bool),
    /// An integer, as the decimal text Python's `int` would print.
    Int(String),
    Float(f64),
    Str(PyStr),
    Array(Vec<PyJson>),
    /// Members in first-seen order; keys are unique (a repeated key keeps the
    /// last value, like a Python dict).
    Object(Vec<(PyStr, PyJson)>),
}

/// Why input could not be read as JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at byte {offset}: {what}")]
pub struct ParseError {
    pub offset: usize,
    pub what: &'static str,
}

impl PyJson {
    /// Looks up a member of an object by key.
    pub fn get(&self, key: &str) -> Option<&PyJson> {
        match self {
            PyJson::Object(m) => m.iter().find(|(k, _)| k.eq_str(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Removes a member of an object, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<PyJson> {
        match self {
            PyJson::Object(m) => {
                let i = m.iter().position(|(k, _)| k.eq_str(key))?;
                Some(m.remove(i).1)
            }
            _ => None,
        }
    }

    /// Sets a member of an object (replacing any previous value).
    /// Does nothing on non-objects.
    pub fn insert(&mut self, key: &str, value: PyJson) {
        if let PyJson::Object(m) = self {
            match m.iter_mut().find(|(k, _)| k.eq_str(key)) {
                Some(slot) => slot.1 = value,
                None => m.push((key.into(), value)),
            }
        }
    }

    /// The value as a Rust string, if it is a string.
    pub fn as_string(&self) -> Option<String> {
        match self {
            PyJson::Str(s) => Some(s.to_string_lossy()),
            _ => None,
        }
    }

    /// The value as a float, if it is a number (what Python's `float(x)` gives).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            PyJson::Int(s) => s.parse().ok(),
            PyJson::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// Converts from `serde_json`. Exact: the workspace builds serde_json with
    /// `arbitrary_precision`, so an integer keeps its digits at any size.
    pub fn from_serde(v: &serde_json::Value) -> PyJson {
        use serde_json::Value as V;
        match v {
            V::Null => PyJson::Null,
            V::Bool(b) => PyJson::Bool(*b),
            V::Number(n) => {
                let text = n.to_string();
                if text.contains(['.', 'e', 'E']) {
                    PyJson::Float(n.as_f64().unwrap_or(f64::NAN))
                } else if text == "-0" {
                    // Python's json reads `-0` as the int 0.
                    PyJson::Int("0".into())
                } else {
                    PyJson::Int(text)
                }
            }
            V::String(s) => PyJson::Str(s.as_str().into()),
            V::Array(a) => PyJson::Array(a.iter().map(PyJson::from_serde).collect()),
            V::Object(o) => PyJson::Object(o.iter().map(|(k, v)| (k.as_str().into(), PyJson::from_serde(v))).collect()),
        }
    }

    /// Converts to `serde_json`. Lossy only where `serde_json` cannot hold the
    /// value: non-finite floats become null, lone surrogates become U+FFFD.
    pub fn to_serde(&self) -> serde_json::Value {
        use serde_json::Value as V;
        match self {
            PyJson::Null => V::Null,
            PyJson::Bool(b) => V::Bool(*b),
            PyJson::Int(s) => s.parse::<serde_json::Number>().map(V::Number).unwrap_or(V::Null),
            PyJson::Float(f) => serde_json::Number::from_f64(*f).map(V::Number).unwrap_or(V::Null),
            PyJson::Str(s) => V::String(s.to_string_lossy()),
            PyJson::Array(a) => V::Array(a.iter().map(PyJson::to_serde).collect()),
            PyJson::Object(o) => V::Object(o.iter().map(|(k, v)| (k.to_string_lossy(), v.to_serde())).collect()),
        }
    }
}

/// `json.dumps(value, sort_keys=True, separators=(',', ':'))`, byte for byte.
pub fn to_canonical(value: &PyJson) -> String {
    let mut out = String::with_capacity(256);
    write_value(&mut out, value);
    out
}

/// Parses `input` and returns its canonical form.
pub fn canonicalize(input: &[u8]) -> Result<String, ParseError> {
    Ok(to_canonical(&parse(input)?))
}

fn write_value(out: &mut String, v: &PyJson) {
    match v {
        PyJson::Null => out.push_str("null"),
        PyJson::Bool(true) => out.push_str("true"),
        PyJson::Bool(false) => out.push_str("false"),
        PyJson::Int(s) => out.push_str(s),
        PyJson::Float(f) => out.push_str(&py_float_repr(*f)),
        PyJson::Str(s) => write_str(out, s),
        PyJson::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        PyJson::Object(m) => {
            let mut members: Vec<&(PyStr, PyJson)> = m.iter().collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (i, (k, val)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                write_value(out, val);
            }
            out.push('}');
        }
    }
}

/// Python's `py_encode_basestring_ascii`.
fn write_str(out: &mut String, s: &PyStr) {
    out.push('"');
    for &c in &s.0 {
        match c {
            0x22 => out.push_str("\\\""),
            0x5c => out.push_str("\\\\"),
            0x0a => out.push_str("\\n"),
            0x0d => out.push_str("\\r"),
            0x09 => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            0x20..=0x7e => out.push(c as u8 as char),
            0..=0xffff => {
                let _ = write!(out, "\\u{c:04x}");
            }
            _ => {
                let v = c - 0x10000;
                let _ = write!(out, "\\u{:04x}\\u{:04x}", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
            }
        }
    }
    out.push('"');
}

/// Python's `float.__repr__` (plus `json`'s spelling of the non-finite values):
/// the shortest digits that round-trip, in exponent form when the decimal point
/// position is `<= -4` or `> 16`.
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    // Rust's `{:e}` gives the same shortest round-trip digits Python uses.
    let e = format!("{f:e}");
    let (neg, e) = match e.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, e.as_str()),
    };
    let (mant, exp) = e.split_once('e').unwrap_or((e, "0"));
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let decpt = exp + 1; // value = 0.DIGITS * 10^decpt
    let n = digits.len() as i32;
    let mut out = String::with_capacity(24);
    if neg {
        out.push('-');
    }
    if decpt <= -4 || decpt > 16 {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else if decpt <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-decpt) as usize));
        out.push_str(&digits);
    } else if decpt < n {
        out.push_str(&digits[..decpt as usize]);
        out.push('.');
        out.push_str(&digits[decpt as usize..]);
    } else {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (decpt - n) as usize));
        out.push_str(".0");
    }
    out
}

/// Parses JSON bytes the way Python's `json.loads(bytes)` does (UTF-8, an
/// optional BOM skipped, whitespace `' \t\n\r'`, `NaN`/`Infinity` accepted,
/// raw control characters in strings rejected).
pub fn parse(input: &[u8]) -> Result<PyJson, ParseError> {
    let input = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(input);
    let mut p = Parser { s: input, i: 0 };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("extra data after the JSON value"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &'static str) -> ParseError {
        ParseError { offset: self.i, what }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.s[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<PyJson, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.s.get(self.i) {
            None => Err(self.err("unexpected end of input")),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(PyJson::Str(self.string()?)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ if self.eat(b"null") => Ok(PyJson::Null),
            _ if self.eat(b"true") => Ok(PyJson::Bool(true)),
            _ if self.eat(b"false") => Ok(PyJson::Bool(false)),
            _ if self.eat(b"NaN") => Ok(PyJson::Float(f64::NAN)),
            _ if self.eat(b"Infinity") => Ok(PyJson::Float(f64::INFINITY)),
            _ => Err(self.err("expected a JSON value")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<PyJson, ParseError> {
        self.i += 1;
        let mut members: Vec<(PyStr, PyJson)> = Vec::new();
        self.ws();
        if self.eat(b"}") {
            return Ok(PyJson::Object(members));
        }
        loop {
            if self.s.get(self.i) != Some(&b'"') {
                return Err(self.err("expected a string key"));
            }
            let k = self.string()?;
            self.ws();
            if !self.eat(b":") {
                return Err(self.err("expected ':'"));
            }
            self.ws();
            let v = self.value(depth + 1)?;
            match members.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => members.push((k, v)),
            }
            self.ws();
            if self.eat(b",") {
                self.ws();
                continue;
            }
            if self.eat(b"}") {
                return Ok(PyJson::Object(members));
            }
            return Err(self.err("expected ',' or '}'"));
        }
    }

    fn array(&mut self, depth: usize) -> Result<PyJson, ParseError> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.eat(b"]") {
            return Ok(PyJson::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth + 1)?);
            self.ws();
            if self.eat(b",") {
                continue;
            }
            if self.eat(b"]") {
                return Ok(PyJson::Array(items));
            }
            return Err(self.err("expected ',' or ']'"));
        }
    }

    /// Python's number grammar: `-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?`, an
    /// int when there is neither fraction nor exponent, else a float.
    fn number(&mut self) -> Result<PyJson, ParseError> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let s = p.i;
            while let Some(b'0'..=b'9') = p.s.get(p.i) {
                p.i += 1;
            }
            p.i - s
        };
        let neg = self.eat(b"-");
        if neg && self.eat(b"Infinity") {
            return Ok(PyJson::Float(f64::NEG_INFINITY));
        }
        let int_start = self.i;
        let n = digits(self);
        if n == 0 {
            return Err(self.err("expected digits"));
        }
        if n > 1 && self.s[int_start] == b'0' {
            // Python reads "0" and then fails on the extra digits.
            return Err(ParseError { offset: int_start + 1, what: "leading zeros are not allowed" });
        }
        let mut is_float = false;
        if self.s.get(self.i) == Some(&b'.') && matches!(self.s.get(self.i + 1), Some(b'0'..=b'9')) {
            self.i += 1;
            digits(self);
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.s.get(self.i) {
            let save = self.i;
            self.i += 1;
            if let Some(b'+' | b'-') = self.s.get(self.i) {
                self.i += 1;
            }
            if digits(self) == 0 {
                self.i = save; // not an exponent: the trailing junk fails later
            } else {
                is_float = true;
            }
        }
        // The matched text is ASCII by construction.
        let text = std::str::from_utf8(&self.s[start..self.i]).map_err(|_| self.err("bad number"))?;
        if is_float {
            let f: f64 = text.parse().map_err(|_| self.err("bad number"))?;
            Ok(PyJson::Float(f))
        } else if text == "-0" {
            Ok(PyJson::Int("0".into()))
        } else {
            Ok(PyJson::Int(text.into()))
        }
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let h = self.s.get(self.i..self.i + 4).ok_or_else(|| self.err("truncated \\u escape"))?;
        let mut v = 0u32;
        for &b in h {
            let d = (b as char).to_digit(16).ok_or_else(|| self.err("bad \\u escape"))?;
            v = v * 16 + d;
        }
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<PyStr, ParseError> {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.i) else {
                return Err(self.err("unterminated string"));
            };
            match b {
                b'"' => {
                    self.i += 1;
                    return Ok(PyStr(out));
                }
                b'\\' => {
                    self.i += 1;
                    let Some(&e) = self.s.get(self.i) else {
                        return Err(self.err("unterminated string"));
                    };
                    self.i += 1;
                    let c = match e {
                        b'"' => 0x22,
                        b'\\' => 0x5c,
                        b'/' => 0x2f,
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => 0x0a,
                        b'r' => 0x0d,
                        b't' => 0x09,
                        b'u' => {
                            let hi = self.hex4()?;
                            // Python joins a high surrogate with a following
                            // \u low surrogate; anything else stays lone.
                            if (0xd800..0xdc00).contains(&hi) && self.s[self.i..].starts_with(b"\\u") {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xdc00..0xe000).contains(&lo) {
                                    0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                                } else {
                                    self.i = save;
                                    hi
                                }
                            } else {
                                hi
                            }
                        }
                        _ => {
                            self.i -= 1;
                            return Err(self.err("invalid escape"));
                        }
                    };
                    out.push(c);
                }
                0x00..=0x1f => return Err(self.err("control character in string")),
                0x20..=0x7f => {
                    out.push(b as u32);
                    self.i += 1;
                }
                _ => {
                    // One UTF-8 sequence (at most 4 bytes).
                    let end = (self.i + 4).min(self.s.len());
                    let chunk = &self.s[self.i..end];
                    let valid = match std::str::from_utf8(chunk) {
                        Ok(s) => s,
                        Err(e) => std::str::from_utf8(&chunk[..e.valid_up_to()]).unwrap_or(""),
                    };
                    let Some(ch) = valid.chars().next() else {
                        return Err(self.err("invalid UTF-8"));
                    };
                    out.push(ch as u32);
                    self.i += ch.len_utf8();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> String {
        canonicalize(s.as_bytes()).unwrap()
    }

    #[test]
    fn float_repr_matches_python() {
        for (f, want) in [
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1e-5, "1e-05"),
            (1e-4, "0.0001"),
            (0.1, "0.1"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.5, "1.5"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e300, "1e+300"),
            (5e-324, "5e-324"),
            (1504643047.123, "1504643047.123"),
            (-2.5e-7, "-2.5e-07"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(py_float_repr(f), want, "{f:e}");
        }
    }

    #[test]
    fn numbers_follow_python() {
        assert_eq!(
            c("[1e16, 1E16, 1.0, 10, -0, -0.0, 1e400, 123456789012345678901234567890]"),
            "[1e+16,1e+16,1.0,10,0,-0.0,Infinity,123456789012345678901234567890]"
        );
        assert_eq!(c("[NaN,-Infinity]"), "[NaN,-Infinity]");
        assert!(parse(b"01").is_err());
        assert!(parse(b"1.").is_err());
        assert!(parse(b"1e").is_err());
        assert!(parse(b".5").is_err());
    }

    #[test]
    fn strings_escape_like_ensure_ascii() {
        assert_eq!(c(r#""a\/b\u00e9\u007f\t\"\\\b\f\n\r\u0001""#), r#""a/b\u00e9\u007f\t\"\\\b\f\n\r\u0001""#);
        assert_eq!(c("\"é😀\""), r#""\u00e9\ud83d\ude00""#);
        assert_eq!(c(r#""\ud83d\ude00 \ud800 x \udc00""#), r#""\ud83d\ude00 \ud800 x \udc00""#);
        assert!(parse(b"\"a\tb\"").is_err());
        assert!(parse(b"\"\xff\"").is_err());
    }

    #[test]
    fn keys_sort_by_code_point_and_last_duplicate_wins() {
        // U+FFFD sorts before U+1F600 by code point (UTF-16 order would differ).
        assert_eq!(
            c("{\"\u{1F600}\":1,\"\u{FFFD}\":2,\"b\":3,\"a\":4,\"a\":5}"),
            r#"{"a":5,"b":3,"\ufffd":2,"\ud83d\ude00":1}"#
        );
        assert_eq!(c(" { } "), "{}");
        assert_eq!(c("[ ]"), "[]");
        assert!(parse(b"{} x").is_err());
        assert!(parse(b"[1,]").is_err());
    }

    #[test]
    fn serde_round_trip_keeps_int_float_distinction() {
        let v: serde_json::Value = serde_json::from_str(r#"{"a":1.0,"b":1,"c":1e16,"d":-5}"#).unwrap();
        assert_eq!(to_canonical(&PyJson::from_serde(&v)), r#"{"a":1.0,"b":1,"c":1e+16,"d":-5}"#);
        assert_eq!(PyJson::from_serde(&v).to_serde(), v);
        let big: serde_json::Value = serde_json::from_str("[123456789012345678901234567890, -0]").unwrap();
        assert_eq!(to_canonical(&PyJson::from_serde(&big)), "[123456789012345678901234567890,0]");
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let deep = "[".repeat(100_000);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
