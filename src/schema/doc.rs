//! JSON text that serde_json has already read whole (so it is valid JSON) turned into DynamoDB
//! values in one pass: objects → M, arrays → L, numbers → N with their exact text, strings → S,
//! booleans → BOOL, null → NULL. Here, too, what DynamoDB cannot hold is found: nesting past 32
//! levels, numbers it cannot store, empty or duplicate attribute names, lone UTF-16 surrogates.

use super::item::Val;
use super::number::{self, Unfit};

/// DynamoDB nests maps and lists at most 32 levels deep.
pub const MAX_DEPTH: usize = 32;

/// Why a value cannot be stored, and where (segments from the outside in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unstorable {
    /// The field's place: segments, outermost first.
    pub path: Vec<String>,
    /// What is wrong with it.
    pub why: Why,
}

/// What is wrong with a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// Maps and lists nest deeper than DynamoDB allows.
    TooDeep,
    /// A number DynamoDB cannot hold (its text, and why).
    Number(String, Unfit),
    /// An object member named "" (DynamoDB names hold at least one character).
    EmptyName,
    /// A name of 64 KB or more.
    LongName,
    /// The same name twice in one object.
    Duplicate(String),
    /// A \u escape that is half of a UTF-16 pair.
    LoneSurrogate,
}

/// How numbers DynamoDB cannot hold are treated: refused, or kept as strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbers {
    /// Refuse the record.
    Refuse,
    /// Store the number's text as a string.
    AsString,
}

/// Converts valid JSON `text` into a value. `depth` is how deep `text` already sits.
pub fn convert(text: &str, depth: usize, numbers: Numbers) -> Result<Val, Unstorable> {
    let mut c = Cursor { b: text.as_bytes(), s: text, i: 0, numbers };
    c.value(depth)
}

/// An object's members, converted, in its order.
pub type Members = Vec<(Box<str>, Val)>;

/// The members of the valid JSON object `text`, converted; `None` when `text` is not an object.
pub fn members(text: &str, numbers: Numbers) -> Option<Result<Members, Unstorable>> {
    let mut c = Cursor { b: text.as_bytes(), s: text, i: 0, numbers };
    c.ws();
    (c.peek() == b'{').then(|| c.object(0, true))
}

struct Cursor<'a> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
    numbers: Numbers,
}

fn at(segment: impl Into<String>, mut e: Unstorable) -> Unstorable {
    e.path.insert(0, segment.into());
    e
}

fn fail(why: Why) -> Unstorable {
    Unstorable { path: Vec::new(), why }
}

impl Cursor<'_> {
    fn peek(&self) -> u8 {
        self.b.get(self.i).copied().unwrap_or(0)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Val, Unstorable> {
        self.ws();
        match self.peek() {
            b'{' => Ok(Val::M(self.object(depth, false)?.into())),
            b'[' => self.list(depth),
            b'"' => Ok(Val::S(self.string()?.into())),
            b't' => {
                self.i += 4;
                Ok(Val::Bool(true))
            }
            b'f' => {
                self.i += 5;
                Ok(Val::Bool(false))
            }
            b'n' => {
                self.i += 4;
                Ok(Val::Null)
            }
            _ => self.number(),
        }
    }

    /// An object: a map value at `depth`, or (`item`) the event itself, whose members are the
    /// item's attributes and sit at `depth`.
    fn object(&mut self, depth: usize, item: bool) -> Result<Vec<(Box<str>, Val)>, Unstorable> {
        if !item && depth >= MAX_DEPTH {
            return Err(fail(Why::TooDeep));
        }
        let inner = if item { depth } else { depth + 1 };
        self.i += 1;
        let mut out: Vec<(Box<str>, Val)> = Vec::new();
        loop {
            self.ws();
            match self.peek() {
                b'}' => {
                    self.i += 1;
                    return Ok(out);
                }
                b',' => self.i += 1,
                _ => {
                    let name = self.string()?;
                    self.ws();
                    self.i += 1; // ':'
                    let value = self.value(inner).map_err(|e| at(name.clone(), e))?;
                    if name.is_empty() {
                        return Err(fail(Why::EmptyName));
                    }
                    if name.len() > super::spec::MAX_NAME_BYTES {
                        return Err(at(name.chars().take(32).collect::<String>(), fail(Why::LongName)));
                    }
                    if out.iter().any(|(n, _)| **n == *name) {
                        return Err(fail(Why::Duplicate(name)));
                    }
                    out.push((name.into(), value));
                }
            }
        }
    }

    fn list(&mut self, depth: usize) -> Result<Val, Unstorable> {
        if depth >= MAX_DEPTH {
            return Err(fail(Why::TooDeep));
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            self.ws();
            match self.peek() {
                b']' => {
                    self.i += 1;
                    return Ok(Val::L(out.into()));
                }
                b',' => self.i += 1,
                _ => {
                    let index = out.len();
                    out.push(self.value(depth + 1).map_err(|e| at(index.to_string(), e))?);
                }
            }
        }
    }

    fn number(&mut self) -> Result<Val, Unstorable> {
        let start = self.i;
        while matches!(self.peek(), b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
            self.i += 1;
        }
        let text = &self.s[start..self.i];
        match (number::check(text), self.numbers) {
            (Ok(()), _) => Ok(Val::N(text.into())),
            (Err(_), Numbers::AsString) => Ok(Val::S(text.into())),
            (Err(why), Numbers::Refuse) => Err(fail(Why::Number(text.to_string(), why))),
        }
    }

    /// A string at the cursor (which is on its opening quote), unescaped.
    fn string(&mut self) -> Result<String, Unstorable> {
        self.i += 1;
        let start = self.i;
        while !matches!(self.peek(), b'"' | b'\\') {
            self.i += 1;
        }
        if self.peek() == b'"' {
            let out = self.s[start..self.i].to_string();
            self.i += 1;
            return Ok(out);
        }
        let mut out = self.s[start..self.i].to_string();
        loop {
            match self.peek() {
                b'"' => {
                    self.i += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.i += 1;
                    let e = self.peek();
                    self.i += 1;
                    match e {
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'u' => out.push(self.unicode_escape()?),
                        other => out.push(char::from(other)),
                    }
                }
                _ => {
                    let from = self.i;
                    while !matches!(self.peek(), b'"' | b'\\') {
                        self.i += 1;
                    }
                    out.push_str(&self.s[from..self.i]);
                }
            }
        }
    }

    /// The character of a `\uXXXX` escape (the cursor is past the `u`), a surrogate pair read whole.
    fn unicode_escape(&mut self) -> Result<char, Unstorable> {
        let hex = |c: &mut Self| -> u32 {
            let v = u32::from_str_radix(&c.s[c.i..c.i + 4], 16).unwrap_or(0);
            c.i += 4;
            v
        };
        let first = hex(self);
        if !(0xD800..0xE000).contains(&first) {
            return char::from_u32(first).ok_or(fail(Why::LoneSurrogate));
        }
        if first >= 0xDC00 || !self.s[self.i..].starts_with("\\u") {
            return Err(fail(Why::LoneSurrogate));
        }
        self.i += 2;
        let second = hex(self);
        if !(0xDC00..0xE000).contains(&second) {
            return Err(fail(Why::LoneSurrogate));
        }
        char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)).ok_or(fail(Why::LoneSurrogate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(text: &str) -> Result<Val, Unstorable> {
        serde_json::from_str::<serde::de::IgnoredAny>(text).expect("the tests give valid JSON");
        convert(text, 0, Numbers::Refuse)
    }

    #[test]
    fn json_becomes_dynamodb_values() {
        let v = conv(r#" {"a": [1, -2.50e3, true, null], "b": {"c": "x\"y\u00e9\ud83e\udd80"}, "": 0 } "#);
        assert_eq!(v, Err(Unstorable { path: vec![], why: Why::EmptyName }));
        let v = conv(r#"{"a": [1, -2.50e3, true, null], "b": {"c": "x\"y\u00e9\ud83e\udd80\n"}}"#).expect("valid");
        let want = Val::M(
            vec![
                (
                    "a".into(),
                    Val::L(vec![Val::N("1".into()), Val::N("-2.50e3".into()), Val::Bool(true), Val::Null].into()),
                ),
                ("b".into(), Val::M(vec![("c".into(), Val::S("x\"yé🦀\n".into()))].into())),
            ]
            .into(),
        );
        assert_eq!(v, want);
    }

    #[test]
    fn what_dynamodb_cannot_hold_is_named_with_its_place() {
        let why = |t: &str| conv(t).map(drop).map_err(|e| (e.path.join("."), e.why));
        assert_eq!(why(r#"{"a":{"b":[0, 1e200]}}"#), Err(("a.b.1".into(), Why::Number("1e200".into(), Unfit::Range))));
        assert_eq!(why(r#"{"a":1,"a":2}"#), Err((String::new(), Why::Duplicate("a".into()))));
        assert_eq!(why(r#"{"s":"\ud83e"}"#), Err(("s".into(), Why::LoneSurrogate)));
        assert_eq!(why(r#"{"s":"\udd80x"}"#), Err(("s".into(), Why::LoneSurrogate)));
        let deep32 = format!("{}{}", "[".repeat(32), "]".repeat(32));
        assert!(conv(&deep32).is_ok(), "32 levels are allowed");
        let deep33 = format!("{}{}", "[".repeat(33), "]".repeat(33));
        assert_eq!(conv(&deep33).map_err(|e| e.why), Err(Why::TooDeep));
        assert_eq!(convert("1e200", 0, Numbers::AsString), Ok(Val::S("1e200".into())));
    }
}
