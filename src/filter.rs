//! Lambda's event filtering for a Kinesis source (FilterCriteria: patterns in EventBridge's grammar
//! on the record's `data`, the only key Kinesis filters on): `parse` checks a pattern before any call
//! (`deploy --filter`, `stream local`), `matches` decides a record as Lambda does. Fields are paths
//! through lists and objects, numbers compare as written ("300, 300.0 and 3.0e2 are not considered
//! equal"), `numeric` by value; data that is not a JSON object matches nothing.
//! <https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html>

use std::collections::{HashMap, HashSet};

/// Filters a mapping takes by default. More is an error from Lambda unless the account's quota
/// was raised, which it can be up to [`MAX_FILTERS`].
pub const DEFAULT_FILTERS: usize = 5;
/// Filters a mapping takes at most, with a raised quota.
pub const MAX_FILTERS: usize = 10;
/// Longest pattern Lambda takes, in characters.
pub const MAX_PATTERN_CHARS: usize = 4096;
/// Most lists and objects read nested in one another (as many as serde_json reads): a record
/// nested deeper matches no pattern.
const MAX_DEPTH: usize = 127;

/// A JSON value as filtering reads it: a number keeps its text.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// Fields in order; a key given twice keeps its last value (in its first place), as serde_json.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Reads JSON text: checked by serde_json first (syntax, UTF-8), then read once, in one pass,
    /// no deeper than [`MAX_DEPTH`].
    fn read(bytes: &[u8]) -> Result<Json, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| e.to_string())?;
        Reader { text, at: 0 }.value(0)
    }

    fn field(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Json::Number(text) => text.parse().ok(),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// A list's items (none for anything else).
    fn items(&self) -> &[Json] {
        match self {
            Json::Array(items) => items,
            _ => &[],
        }
    }

    fn is_scalar(&self) -> bool {
        !matches!(self, Json::Array(_) | Json::Object(_))
    }

    /// Compact JSON, numbers as written.
    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(text) => out.push_str(text),
            Json::String(s) => write_str(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(key, out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// A string as JSON text, escaped as serde_json escapes it.
fn write_str(s: &str, out: &mut String) {
    out.push_str(&serde_json::Value::from(s).to_string());
}

/// One pass over JSON that serde_json has already checked; anything unexpected is an error, never
/// a panic.
struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl Reader<'_> {
    fn peek(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.text.as_bytes().get(self.at) {
            self.at += 1;
        }
        self.text.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.at += usize::from(found);
        found
    }

    /// Past `byte`, which must come next (after whitespace); an error naming where it did not.
    fn require(&mut self, byte: u8) -> Result<(), String> {
        if self.eat(byte) { Ok(()) } else { Err(format!("expected {:?} at byte {}", byte as char, self.at)) }
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        let nested = |r: &mut Self| {
            r.at += 1;
            if depth == MAX_DEPTH { Err(format!("nests deeper than {MAX_DEPTH} levels")) } else { Ok(()) }
        };
        match self.peek() {
            Some(b'{') => {
                nested(self)?;
                let mut fields = Vec::new();
                if !self.eat(b'}') {
                    loop {
                        let key = self.string()?;
                        self.require(b':')?;
                        fields.push((key, self.value(depth + 1)?));
                        if !self.eat(b',') {
                            break;
                        }
                    }
                    self.require(b'}')?;
                }
                Ok(Json::Object(last_wins(fields)))
            }
            Some(b'[') => {
                nested(self)?;
                let mut items = Vec::new();
                if !self.eat(b']') {
                    loop {
                        items.push(self.value(depth + 1)?);
                        if !self.eat(b',') {
                            break;
                        }
                    }
                    self.require(b']')?;
                }
                Ok(Json::Array(items))
            }
            Some(b'"') => self.string().map(Json::String),
            _ => {
                let rest = self.text.as_bytes().get(self.at..).unwrap_or_default();
                let len = rest.iter().position(|b| !matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'+' | b'.' | b'E'));
                let word = self.text.get(self.at..self.at + len.unwrap_or(rest.len())).unwrap_or_default();
                self.at += word.len();
                match word {
                    "true" => Ok(Json::Bool(true)),
                    "false" => Ok(Json::Bool(false)),
                    "null" => Ok(Json::Null),
                    "" => Err(format!("no value at byte {}", self.at)),
                    number => Ok(Json::Number(number.to_string())),
                }
            }
        }
    }

    /// A string, its escapes read by serde_json (only when it has some).
    fn string(&mut self) -> Result<String, String> {
        self.peek();
        let start = self.at;
        self.require(b'"')?;
        let mut escaped = false;
        loop {
            match self.text.as_bytes().get(self.at) {
                Some(b'"') => break,
                Some(b'\\') => (escaped, self.at) = (true, self.at + 2),
                Some(_) => self.at += 1,
                None => return Err("unterminated string".into()),
            }
        }
        self.at += 1;
        let quoted = self.text.get(start..self.at).ok_or("a string cut inside a character")?;
        if escaped {
            serde_json::from_str(quoted).map_err(|e| e.to_string())
        } else {
            Ok(quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')).unwrap_or_default().to_string())
        }
    }
}

/// An object's fields with each key once, its last value in its first place.
fn last_wins(fields: Vec<(String, Json)>) -> Vec<(String, Json)> {
    let mut seen = HashSet::with_capacity(fields.len());
    if fields.iter().all(|(k, _)| seen.insert(k.as_str())) {
        return fields;
    }
    let mut out: Vec<(String, Json)> = Vec::with_capacity(fields.len());
    let mut place: HashMap<String, usize> = HashMap::with_capacity(fields.len());
    for (key, value) in fields {
        match place.get(&key) {
            Some(&i) => out[i].1 = value,
            None => {
                place.insert(key.clone(), out.len());
                out.push((key, value));
            }
        }
    }
    out
}

/// A checked filter pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    text: String,
    top: Json,
}

impl Pattern {
    /// The pattern as given (what the mapping's FilterCriteria holds).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The pattern on one line, numbers and key order as given (a key given twice once, with its
    /// last value, as Lambda reads it).
    pub fn compact(&self) -> String {
        let mut out = String::with_capacity(self.text.len());
        self.top.write(&mut out);
        out
    }
}

/// Checks one pattern: JSON, an object of `data` (and `$or`s of such objects, ANDed with it), and
/// within `data` nested objects down to lists of matchers Lambda's filtering supports. The error
/// says what is wrong.
pub fn parse(text: &str) -> Result<Pattern, String> {
    if text.chars().count() > MAX_PATTERN_CHARS {
        return Err(format!("is over Lambda's {MAX_PATTERN_CHARS} characters"));
    }
    let top = Json::read(text.as_bytes()).map_err(|e| format!("is not JSON: {e}"))?;
    let Json::Object(fields) = &top else { return Err("is not a JSON object".into()) };
    check_top(fields)?;
    Ok(Pattern { text: text.to_string(), top })
}

/// An object's fields.
type Fields = [(String, Json)];

const OR: &str = "$or";

fn fields_of(value: &Json) -> Option<&Fields> {
    match value {
        Json::Object(fields) => Some(fields),
        _ => None,
    }
}

/// The pattern's top: `data` and `$or`, nothing else; `data` somewhere.
fn check_top(fields: &Fields) -> Result<(), String> {
    if fields.is_empty() {
        return Err("has no \"data\" object to filter on".into());
    }
    for (key, value) in fields {
        match (key.as_str(), fields_of(value)) {
            ("data", Some(data)) => check_object(data, "data")?,
            ("data", None) => return Err("has no \"data\" object to filter on".into()),
            (OR, _) => or_branches(value, "the top")?.into_iter().try_for_each(check_top)?,
            (other, _) => return Err(format!("filters on \"{other}\"; a Kinesis source filters on \"data\" only")),
        }
    }
    Ok(())
}

/// A `$or`'s branches: a list of two objects or more.
fn or_branches<'a>(value: &'a Json, path: &str) -> Result<Vec<&'a Fields>, String> {
    let branches = match value {
        Json::Array(items) => items.iter().map(fields_of).collect::<Option<Vec<_>>>(),
        _ => None,
    };
    branches
        .filter(|b| b.len() >= 2)
        .ok_or_else(|| format!("has a $or at {path} that is not a list of 2 objects or more"))
}

fn check_object(fields: &Fields, path: &str) -> Result<(), String> {
    if fields.is_empty() {
        return Err(format!("has an empty object at {path}"));
    }
    for (key, value) in fields {
        if key == OR {
            or_branches(value, path)?.into_iter().try_for_each(|b| check_object(b, path))?;
            continue;
        }
        let here = format!("{path}.{key}");
        match value {
            Json::Object(inner) => check_object(inner, &here)?,
            Json::Array(matchers) if matchers.is_empty() => return Err(format!("has an empty list at {here}")),
            Json::Array(matchers) => matchers.iter().try_for_each(|m| check_matcher(m, &here))?,
            _ => return Err(format!("has a single value at {here}: matchers go in a list, e.g. [\"en\"]")),
        }
    }
    Ok(())
}

fn check_matcher(m: &Json, path: &str) -> Result<(), String> {
    let Json::Object(op) = m else {
        // Strings, numbers, booleans and null match exactly.
        return if matches!(m, Json::Array(_)) { Err(format!("has a list inside a list at {path}")) } else { Ok(()) };
    };
    let [(name, arg)] = op.as_slice() else {
        return Err(format!("has a matcher with {} operators at {path}; give one", op.len()));
    };
    let ok = match name.as_str() {
        "prefix" => matches!(arg, Json::String(_)) || ignore_case(arg).is_some(),
        "suffix" | "equals-ignore-case" => matches!(arg, Json::String(_)),
        "exists" => matches!(arg, Json::Bool(_)),
        "anything-but" => match arg {
            Json::String(_) | Json::Number(_) => true,
            // Only strings or only numbers.
            Json::Array(list) => {
                !list.is_empty()
                    && (list.iter().all(|v| matches!(v, Json::String(_)))
                        || list.iter().all(|v| matches!(v, Json::Number(_))))
            }
            _ => false,
        },
        "numeric" => numeric_ok(arg),
        other => return Err(format!("uses \"{other}\" at {path}, which Lambda's event filtering does not take")),
    };
    if ok { Ok(()) } else { Err(format!("has a malformed \"{name}\" at {path}")) }
}

/// `{"equals-ignore-case": "text"}`, the argument of a prefix that ignores case.
fn ignore_case(arg: &Json) -> Option<&str> {
    match arg {
        Json::Object(op) => match op.as_slice() {
            [(name, Json::String(text))] if name == "equals-ignore-case" => Some(text),
            _ => None,
        },
        _ => None,
    }
}

/// `["=", n]`, one bound (`[op, n]`, op one of <, <=, >, >=), or a range: a lower bound (> or >=)
/// then an upper one (< or <=) above it.
fn numeric_ok(arg: &Json) -> bool {
    let Json::Array(parts) = arg else { return false };
    let op = |i: usize| parts[i].as_str().unwrap_or_default();
    let Some(bounds) = parts.iter().skip(1).step_by(2).map(Json::number).collect::<Option<Vec<f64>>>() else {
        return false;
    };
    match parts.len() {
        2 => compare(op(0), 0.0, 0.0).is_some(),
        4 => matches!(op(0), ">" | ">=") && matches!(op(2), "<" | "<=") && bounds[0] < bounds[1],
        _ => false,
    }
}

/// `x op n` for a numeric operator; None for anything else.
fn compare(op: &str, x: f64, n: f64) -> Option<bool> {
    Some(match op {
        "=" => x == n,
        "<" => x < n,
        "<=" => x <= n,
        ">" => x > n,
        ">=" => x >= n,
        _ => return None,
    })
}

/// True when `data` (a record's decoded bytes) matches any of `patterns` (all of them, when there
/// are none). Data that is not a JSON object matches no pattern.
pub fn matches(patterns: &[Pattern], data: &[u8]) -> bool {
    if patterns.is_empty() {
        return true;
    }
    let Ok(record @ Json::Object(_)) = Json::read(data) else { return false };
    patterns.iter().any(|p| fields_of(&p.top).is_some_and(|top| top_matches(top, &record)))
}

/// Branches of a checked `$or`.
fn branches(value: &Json) -> impl Iterator<Item = &Fields> {
    value.items().iter().filter_map(fields_of)
}

fn top_matches(top: &Fields, record: &Json) -> bool {
    top.iter().all(|(key, value)| match (key.as_str(), fields_of(value)) {
        (OR, _) => branches(value).any(|b| top_matches(b, record)),
        (_, Some(data)) => object_matches(data, record, &mut Vec::new()),
        _ => false,
    })
}

/// A pattern's object at `path` (from the record's top): every field's condition holds.
fn object_matches<'p>(fields: &'p Fields, record: &Json, path: &mut Vec<&'p str>) -> bool {
    fields.iter().all(|(key, value)| {
        if key == OR {
            return branches(value).any(|b| object_matches(b, record, path));
        }
        path.push(key);
        let holds = match value {
            Json::Object(inner) => object_matches(inner, record, path),
            Json::Array(matchers) => {
                let mut leaves = Vec::new();
                collect_leaves(record, path, &mut leaves);
                matchers.iter().any(|m| matcher_holds(m, &leaves))
            }
            _ => false,
        };
        path.pop();
        holds
    })
}

/// Every leaf (a value that is not a list or an object) at `path`, lists crossed.
fn collect_leaves<'r>(value: &'r Json, path: &[&str], out: &mut Vec<&'r Json>) {
    match (value, path.split_first()) {
        (Json::Array(items), _) => items.iter().for_each(|i| collect_leaves(i, path, out)),
        (Json::Object(_), Some((key, rest))) => {
            if let Some(v) = value.field(key) {
                collect_leaves(v, rest, out);
            }
        }
        (leaf, None) if leaf.is_scalar() => out.push(leaf),
        _ => {}
    }
}

/// One matcher against a field's leaves (none: the field does not exist).
fn matcher_holds(matcher: &Json, leaves: &[&Json]) -> bool {
    match matcher {
        Json::Object(op) if op.len() == 1 && op[0].0 == "exists" => {
            let present = !leaves.is_empty();
            op[0].1 == Json::Bool(present)
        }
        _ => leaves.iter().any(|leaf| leaf_matches(matcher, leaf)),
    }
}

/// Text folded character by character without copying it: Σ, σ and the final ς are one letter
/// wherever they stand (as Java's equalsIgnoreCase, which compares upper cases too, has them).
fn folded(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().flat_map(char::to_lowercase).map(|c| if c == 'ς' { 'σ' } else { c })
}

fn leaf_matches(matcher: &Json, v: &Json) -> bool {
    let Json::Object(op) = matcher else {
        // Exact: same type and value, a number as written (the string "300" is not the number 300).
        return matcher == v;
    };
    let Some((name, arg)) = op.first() else { return false };
    let (text, string_arg) = (v.as_str(), arg.as_str());
    match name.as_str() {
        "prefix" => match (string_arg, ignore_case(arg), text) {
            (Some(p), _, Some(t)) => t.starts_with(p),
            (_, Some(p), Some(t)) => {
                let mut t = folded(t);
                folded(p).all(|c| t.next() == Some(c))
            }
            _ => false,
        },
        "suffix" => string_arg.zip(text).is_some_and(|(s, t)| t.ends_with(s)),
        "equals-ignore-case" => string_arg.zip(text).is_some_and(|(s, t)| folded(t).eq(folded(s))),
        "anything-but" => {
            let listed = match arg {
                Json::Array(list) => list.contains(v),
                other => other == v,
            };
            matches!(v, Json::String(_) | Json::Number(_)) && !listed
        }
        "numeric" => v.number().is_some_and(|x| {
            arg.items().chunks(2).all(|c| {
                let n = c.get(1).and_then(Json::number).unwrap_or(f64::NAN);
                c[0].as_str().and_then(|op| compare(op, x, n)) == Some(true)
            })
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: &str) -> Pattern {
        parse(p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn hit(p: &str, data: &str) -> bool {
        matches(&[ok(p)], data.as_bytes())
    }

    /// Patterns Lambda takes are taken; every other is refused with what is wrong and where.
    #[test]
    fn patterns_are_checked_before_any_call() {
        for good in [
            r#"{"data":{"lang":["en"]}}"#,
            r#"{"data":{"user":{"screen_name":[{"prefix":"a"}]}}}"#,
            r#"{"data":{"retweets":[{"numeric":[">",10,"<=",20]}]}}"#,
            r#"{"data":{"lang":[{"anything-but":["en","de"]}], "text":[{"exists":true}]}}"#,
            r#"{"data":{"text":[{"suffix":"!"},{"equals-ignore-case":"hi"},null,"x",3]}}"#,
        ] {
            ok(good);
        }
        for (bad, why) in [
            ("{", "is not JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"partitionKey":["a"]}"#, "filters on \"partitionKey\""),
            (r#"{"data":{"lang":"en"}}"#, "matchers go in a list"),
            (r#"{"data":{"lang":[]}}"#, "empty list"),
            (r#"{"data":{"lang":[{"wildcard":"e*"}]}}"#, "\"wildcard\""),
            (r#"{"data":{"n":[{"numeric":["!=",1]}]}}"#, "malformed \"numeric\""),
            (r#"{"data":{"n":[{"prefix":"a","suffix":"b"}]}}"#, "2 operators"),
            ("{}", "no \"data\" object"),
            (r#"{"data":["x"]}"#, "no \"data\" object"),
            (r#"{"data":{}}"#, "empty object at data"),
            (r#"{"data":{"a":{}}}"#, "empty object at data.a"),
            (r#"{"data":{"a":[["x"]]}}"#, "list inside a list at data.a"),
            (r#"{"data":{"n":[{}]}}"#, "0 operators"),
            // numeric: "=" alone, one bound, or a lower bound then an upper one above it.
            (r#"{"data":{"n":[{"numeric":["<",5,">",1]}]}}"#, "malformed \"numeric\" at data.n"),
            (r#"{"data":{"n":[{"numeric":[">",5,"<",5]}]}}"#, "malformed \"numeric\""),
            (r#"{"data":{"n":[{"numeric":[">",10,"<",5]}]}}"#, "malformed \"numeric\""),
            (r#"{"data":{"n":[{"numeric":["=",1,"=",2]}]}}"#, "malformed \"numeric\""),
            (r#"{"data":{"n":[{"numeric":[">",1,">",2]}]}}"#, "malformed \"numeric\""),
            (r#"{"data":{"n":[{"numeric":["=","1"]}]}}"#, "malformed \"numeric\""),
            (r#"{"data":{"n":[{"numeric":[">"]}]}}"#, "malformed \"numeric\""),
            (r#"{"data":{"n":[{"numeric":[">",1,"<"]}]}}"#, "malformed \"numeric\""),
            (r#"{"data":{"n":[{"numeric":[1,">"]}]}}"#, "malformed \"numeric\""),
            (r#"{"data":{"n":[{"numeric":">"}]}}"#, "malformed \"numeric\""),
            // anything-but: a string, a number, or a list of only strings or only numbers.
            (r#"{"data":{"n":[{"anything-but":["a",1]}]}}"#, "malformed \"anything-but\""),
            (r#"{"data":{"n":[{"anything-but":[]}]}}"#, "malformed \"anything-but\""),
            (r#"{"data":{"n":[{"anything-but":true}]}}"#, "malformed \"anything-but\""),
            (r#"{"data":{"n":[{"anything-but":[true,false]}]}}"#, "malformed \"anything-but\""),
            (r#"{"data":{"n":[{"anything-but":{"prefix":"a"}}]}}"#, "malformed \"anything-but\""),
            (r#"{"data":{"n":[{"prefix":{"equals-ignore-case":"a","x":1}}]}}"#, "malformed \"prefix\""),
            (r#"{"data":{"n":[{"prefix":{"equals-ignore-case":1}}]}}"#, "malformed \"prefix\""),
            (r#"{"data":{"n":[{"prefix":{"wildcard":"a*"}}]}}"#, "malformed \"prefix\""),
            (r#"{"data":{"n":[{"prefix":1}]}}"#, "malformed \"prefix\""),
            (r#"{"data":{"n":[{"suffix":{"equals-ignore-case":"a"}}]}}"#, "malformed \"suffix\""),
            (r#"{"data":{"n":[{"equals-ignore-case":1}]}}"#, "malformed \"equals-ignore-case\""),
            (r#"{"data":{"n":[{"exists":"yes"}]}}"#, "malformed \"exists\""),
            // $or: a list of 2 objects or more, each checked as its level is.
            (r#"{"data":{"$or":[{"a":["x"]}]}}"#, "$or at data that is not a list of 2"),
            (r#"{"data":{"$or":[{"a":["x"]},"b"]}}"#, "$or at data that is not a list of 2"),
            (r#"{"data":{"$or":{"a":["x"]}}}"#, "$or at data that is not a list of 2"),
            (r#"{"data":{"$or":[{"a":["x"]},{"b":"y"}]}}"#, "single value at data.b"),
            (r#"{"data":{"$or":[{"a":["x"]},{}]}}"#, "empty object at data"),
            (r#"{"$or":[{"data":{"a":["x"]}}]}"#, "$or at the top"),
            (r#"{"$or":[{"data":{"a":["x"]}},{"partitionKey":["k"]}]}"#, "filters on \"partitionKey\""),
            (r#"{"$or":[{"data":{"a":["x"]}},{}]}"#, "no \"data\" object"),
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
        // Lambda's length, in characters: exactly 4,096 is taken, one more is not.
        let sized = |chars: usize| format!(r#"{{"data":{{"t":["{}"]}}}}"#, "é".repeat(chars - 19));
        assert_eq!(sized(MAX_PATTERN_CHARS).chars().count(), MAX_PATTERN_CHARS);
        ok(&sized(MAX_PATTERN_CHARS));
        assert!(parse(&sized(MAX_PATTERN_CHARS + 1)).expect_err("long").contains("over Lambda's 4096 characters"));
        for good in [
            r#"{"data":{"n":[{"numeric":["=",3.0e2]}]}}"#,
            r#"{"data":{"n":[{"numeric":[">=",0,"<",5]}]}}"#,
            r#"{"data":{"n":[{"numeric":["<",-1.5]}]}}"#,
            r#"{"data":{"n":[{"anything-but":[1,2.5]}]}}"#,
            r#"{"data":{"n":[{"anything-but":3}]}}"#,
            r#"{"data":{"n":[{"prefix":{"equals-ignore-case":"ab"}}]}}"#,
            r#"{"data":{"$or":[{"a":["x"]},{"b":{"c":[1]}}]}}"#,
            r#"{"data":{"a":["x"],"$or":[{"b":["y"]},{"$or":[{"c":["z"]},{"d":["w"]}]}]}}"#,
            r#"{"$or":[{"data":{"a":["x"]}},{"data":{"b":["y"]}}]}"#,
        ] {
            ok(good);
        }
    }

    /// `--filter` sends the pattern on one line, numbers and key order as written.
    #[test]
    fn a_pattern_is_made_compact_as_written() {
        let p = ok("{ \"data\" : {\n  \"n\": [3.0e2, 1.50, -0],\n  \"b\": [\"a\\\"b\\u00e9\", null, true, false] } }");
        assert_eq!(p.compact(), r#"{"data":{"n":[3.0e2,1.50,-0],"b":["a\"bé",null,true,false]}}"#);
        assert_eq!(ok(&p.compact()).compact(), p.compact(), "compact again is the same");
        assert!(p.text().starts_with("{ \"data\""), "the text stays as given");
        assert_eq!(ok(r#"{"data":{"k":["a"],"j":[1],"k":["c"]}}"#).compact(), r#"{"data":{"k":["c"],"j":[1]}}"#);
    }

    /// Exact and anything-but compare a number's text; numeric compares its value.
    #[test]
    fn numbers_match_as_written_and_numeric_by_value() {
        for (data, exact_300) in [(r#"{"n":300}"#, true), (r#"{"n":300.0}"#, false), (r#"{"n":3.0e2}"#, false)] {
            assert_eq!(hit(r#"{"data":{"n":[300]}}"#, data), exact_300, "{data}");
            assert!(hit(r#"{"data":{"n":[{"numeric":["=",300]}]}}"#, data), "numeric compares values: {data}");
            assert_eq!(hit(r#"{"data":{"n":[{"anything-but":[300]}]}}"#, data), !exact_300, "{data}");
            assert_eq!(hit(r#"{"data":{"n":[{"anything-but":300}]}}"#, data), !exact_300, "{data}");
        }
        assert!(hit(r#"{"data":{"n":[3.0e2]}}"#, r#"{"n":3.0e2}"#));
        assert!(!hit(r#"{"data":{"n":[300.0]}}"#, r#"{"n":3.0e2}"#));
        assert!(!hit(r#"{"data":{"n":[{"numeric":[">",0]}]}}"#, r#"{"n":"5"}"#), "a string is not a number");
        // Each bound at the value 15, and beside it.
        for (op, at, below, above) in [
            ("=", true, false, false),
            ("<", false, true, false),
            ("<=", true, true, false),
            (">", false, false, true),
            (">=", true, false, true),
        ] {
            let p = format!(r#"{{"data":{{"n":[{{"numeric":["{op}",15]}}]}}}}"#);
            assert_eq!(hit(&p, r#"{"n":15}"#), at, "15 {op} 15");
            assert_eq!(hit(&p, r#"{"n":14.5}"#), below, "14.5 {op} 15");
            assert_eq!(hit(&p, r#"{"n":1.55e1}"#), above, "15.5 {op} 15");
        }
        let range = r#"{"data":{"n":[{"numeric":[">=",10,"<",20]}]}}"#;
        for (n, inside) in [("9.99", false), ("10", true), ("19.9", true), ("20", false)] {
            assert_eq!(hit(range, &format!(r#"{{"n":{n}}}"#)), inside, "{n}");
        }
        let open_closed = r#"{"data":{"n":[{"numeric":[">",10,"<=",20]}]}}"#;
        for (n, inside) in [("10", false), ("10.01", true), ("20", true), ("2.01e1", false)] {
            assert_eq!(hit(open_closed, &format!(r#"{{"n":{n}}}"#)), inside, "{n}");
        }
        assert!(!hit(r#"{"data":{"n":[0]}}"#, r#"{"n":-0}"#), "-0 is written otherwise");
        assert!(!hit(r#"{"data":{"n":[1e5]}}"#, r#"{"n":1E5}"#));
        assert!(hit(r#"{"data":{"n":[{"numeric":["=",1e5]}]}}"#, r#"{"n":1E5}"#));
        assert!(hit(r#"{"data":{"n":[{"numeric":["=",0]}]}}"#, r#"{"n":-0}"#));
    }

    /// A field is a path: lists crossed, its leaves its values, no leaf no field.
    #[test]
    fn fields_are_paths_through_lists_and_missing_parents() {
        let order = r#"{"items":[{"id":"1","tags":["a","b"]},{"id":"2"}],"meta":"m","empty":[],"nums":[[1,2],[3]]}"#;
        assert!(hit(r#"{"data":{"items":{"id":["2"]}}}"#, order), "a list of objects is crossed");
        assert!(hit(r#"{"data":{"items":{"tags":["b"]}}}"#, order));
        assert!(!hit(r#"{"data":{"items":{"id":["3"]}}}"#, order));
        assert!(hit(r#"{"data":{"nums":[3]}}"#, order), "lists in lists are crossed");
        assert!(hit(r#"{"data":{"items":{"id":[{"exists":true}]}}}"#, order));
        assert!(!hit(r#"{"data":{"items":[{"exists":true}]}}"#, order), "objects are not leaves");
        assert!(hit(r#"{"data":{"items":[{"exists":false}]}}"#, order));
        assert!(!hit(r#"{"data":{"empty":[{"exists":true}]}}"#, order), "an empty list has no leaf");
        assert!(hit(r#"{"data":{"empty":[{"exists":false}]}}"#, order));
        assert!(hit(r#"{"data":{"user":{"email":[{"exists":false}]}}}"#, order), "a missing parent");
        assert!(!hit(r#"{"data":{"user":{"email":[{"exists":true}]}}}"#, order));
        assert!(hit(r#"{"data":{"meta":{"x":[{"exists":false}]}}}"#, order), "a leaf has no fields");
        assert!(!hit(r#"{"data":{"meta":{"x":["m"]}}}"#, order));
        assert!(hit(r#"{"data":{"user":{"email":[{"exists":false},"x"]}}}"#, order), "matchers are ORed");
        // Exists beside other matchers: either holds.
        assert!(hit(r#"{"data":{"meta":["z",{"exists":true}]}}"#, order));
        // A key given twice keeps its last value, in the record and in the pattern.
        assert!(hit(r#"{"data":{"k":["b"]}}"#, r#"{"k":"a","k":"b"}"#));
        assert!(!hit(r#"{"data":{"k":["a"]}}"#, r#"{"k":"a","k":"b"}"#));
        assert!(!hit(r#"{"data":{"k":["a"],"k":["c"]}}"#, r#"{"k":"a"}"#));
        assert!(hit(r#"{"data":{"k":["a"],"k":["c"]}}"#, r#"{"k":"c"}"#));
        // Many keys, one of them again at the end.
        let wide: String = (0..50_000).map(|i| format!(r#""k{i}":{i},"#)).collect();
        let wide = format!(r#"{{{wide}"k0":"last"}}"#);
        assert!(hit(r#"{"data":{"k0":["last"]}}"#, &wide));
        assert!(hit(r#"{"data":{"k49999":[49999]}}"#, &wide));
        assert!(hit(r#"{"data":{"z":[null]}}"#, r#"{"z":null}"#));
        assert!(hit(r#"{"data":{"z":[{"exists":true}]}}"#, r#"{"z":null}"#), "null is a leaf");
    }

    /// A record nested deeper than serde_json reads (127) matches nothing, and never overflows
    /// the stack, however deep.
    #[test]
    fn deep_records_are_refused_not_a_crash() {
        let nested = |levels: usize| format!(r#"{{"a":{}1{}}}"#, "[".repeat(levels), "]".repeat(levels));
        let any = r#"{"data":{"a":[{"exists":true}]}}"#;
        assert!(hit(any, &nested(126)), "127 levels in all");
        assert!(!hit(any, &nested(127)), "128 levels");
        assert!(serde_json::from_str::<serde_json::Value>(&nested(126)).is_ok(), "as serde_json reads");
        assert!(serde_json::from_str::<serde_json::Value>(&nested(127)).is_err());
        assert!(!hit(any, &nested(100_000)));
        let deep_pattern = format!(r#"{{"data":{}[1]{}}}"#, r#"{"a":"#.repeat(500), "}".repeat(500));
        let err = parse(&deep_pattern).expect_err("deep");
        assert!(err.contains("nests deeper than 127 levels"), "{err}");
    }

    /// `$or` holds when any branch does, at the top, in data, in a nested object, and in itself.
    #[test]
    fn or_takes_any_branch_at_any_level() {
        let or =
            r#"{"data":{"lang":["en"],"$or":[{"retweets":[{"numeric":[">",100]}]},{"user":{"verified":[true]}}]}}"#;
        assert!(hit(or, r#"{"lang":"en","retweets":101}"#));
        assert!(hit(or, r#"{"lang":"en","retweets":1,"user":{"verified":true}}"#));
        assert!(!hit(or, r#"{"lang":"en","retweets":1,"user":{"verified":false}}"#), "no branch");
        assert!(!hit(or, r#"{"lang":"de","retweets":101}"#), "the field beside $or too");
        let nested = r#"{"data":{"$or":[{"a":["x"]},{"$or":[{"b":["y"]},{"c":["z"]}]}]}}"#;
        assert!(hit(nested, r#"{"c":"z"}"#));
        assert!(!hit(nested, r#"{"d":"z"}"#));
        let top = r#"{"$or":[{"data":{"a":["x"]}},{"data":{"b":["y"]}}]}"#;
        assert!(hit(top, r#"{"b":"y"}"#));
        assert!(!hit(top, r#"{"a":"y","b":"x"}"#));
        let inner = r#"{"data":{"u":{"$or":[{"a":["x"]},{"b":["y"]}],"c":["z"]}}}"#;
        assert!(hit(inner, r#"{"u":{"b":"y","c":"z"}}"#));
        assert!(!hit(inner, r#"{"u":{"b":"y","c":"w"}}"#));
        assert!(!hit(inner, r#"{"b":"y","u":{"c":"z"}}"#), "the branch's path is under u");
        let both = r#"{"data":{"a":["x"]},"$or":[{"data":{"b":["y"]}},{"data":{"c":["z"]}}]}"#;
        assert!(hit(both, r#"{"a":"x","c":"z"}"#));
        assert!(!hit(both, r#"{"a":"w","c":"z"}"#), "data and the top's $or are ANDed");
        assert!(!hit(both, r#"{"a":"x"}"#));
    }

    /// prefix, suffix and equals-ignore-case take strings only; ignoring case folds beyond ASCII.
    #[test]
    fn strings_match_by_operator() {
        let t = r#"{"s":"Éclair au café","n":5,"z":null,"b":true}"#;
        assert!(hit(r#"{"data":{"s":[{"prefix":"Écl"}]}}"#, t));
        assert!(!hit(r#"{"data":{"s":[{"prefix":"écl"}]}}"#, t), "prefix is exact");
        assert!(hit(r#"{"data":{"s":[{"prefix":{"equals-ignore-case":"éCL"}}]}}"#, t), "beyond ASCII");
        assert!(!hit(r#"{"data":{"s":[{"prefix":{"equals-ignore-case":"au"}}]}}"#, t));
        assert!(hit(r#"{"data":{"s":[{"suffix":"café"}]}}"#, t));
        assert!(!hit(r#"{"data":{"s":[{"suffix":"CAFÉ"}]}}"#, t));
        assert!(hit(r#"{"data":{"s":[{"equals-ignore-case":"ÉCLAIR AU CAFÉ"}]}}"#, t));
        assert!(!hit(r#"{"data":{"s":[{"equals-ignore-case":"eclair au cafe"}]}}"#, t));
        assert!(!hit(r#"{"data":{"n":[{"prefix":"5"}]}}"#, t), "a number is not a string");
        assert!(!hit(r#"{"data":{"n":[{"suffix":"5"}]}}"#, t));
        assert!(!hit(r#"{"data":{"n":[{"equals-ignore-case":"5"}]}}"#, t));
        assert!(!hit(r#"{"data":{"z":[{"anything-but":"x"}]}}"#, t), "anything-but takes strings and numbers only");
        assert!(!hit(r#"{"data":{"b":[{"anything-but":"x"}]}}"#, t));
        assert!(!hit(r#"{"data":{"gone":[{"anything-but":"x"}]}}"#, t), "nor a missing field");
        assert!(hit(r#"{"data":{"b":[true],"z":[null]}}"#, t));
        assert!(!hit(r#"{"data":{"b":["true"]}}"#, t));
        assert!(hit(r#"{"data":{"s":["Éclair au caf\u00e9"]}}"#, t), "escapes are read");
        // Folded a character at a time: a final sigma is a sigma.
        assert!(hit(r#"{"data":{"s":[{"prefix":{"equals-ignore-case":"ΟΔΟΣ"}}]}}"#, r#"{"s":"οδοσα"}"#));
        assert!(hit(r#"{"data":{"s":[{"equals-ignore-case":"ΟΔΟΣ"}]}}"#, r#"{"s":"οδοσ"}"#));
        assert!(hit(r#"{"data":{"s":[{"equals-ignore-case":"ΟΔΟΣ"}]}}"#, r#"{"s":"οδος"}"#), "the final sigma");
        assert!(hit(r#"{"data":{"s":[{"prefix":{"equals-ignore-case":"οδος"}}]}}"#, r#"{"s":"ΟΔΟΣ 5"}"#));
        assert!(!hit(r#"{"data":{"s":[{"prefix":{"equals-ignore-case":"ΟΔΟΣΑ"}}]}}"#, r#"{"s":"οδοσ"}"#));
        // anything-but: any leaf not listed.
        let but = r#"{"data":{"tags":[{"anything-but":["a","b"]}]}}"#;
        assert!(hit(but, r#"{"tags":["a","c"]}"#));
        assert!(!hit(but, r#"{"tags":["a","b"]}"#));
        assert!(hit(r#"{"data":{"n":[{"anything-but":[1,2]}]}}"#, r#"{"n":"1"}"#), "a string is not listed numbers");
    }

    /// Data that is not a JSON object, or not UTF-8, matches no pattern; no filter takes all.
    #[test]
    fn data_that_is_not_a_json_object_matches_nothing() {
        let none = r#"{"data":{"a":[{"exists":false}]}}"#;
        assert!(hit(none, "{}"));
        for data in ["[1]", "\"text\"", "3", "null", "{", ""] {
            assert!(!hit(none, data), "{data}");
        }
        assert!(!matches(&[ok(none)], b"{\"b\":\"\xff\"}"), "not UTF-8");
        assert!(matches(&[], b"\xff"), "no filter: every record");
    }

    /// The matchers of Lambda's table on a tweet: equals, lists ORed, fields ANDed, filters ORed.
    #[test]
    fn records_match_as_lambda_matches_them() {
        let tweet = r#"{"lang":"en","text":"Hello!","retweets":15,"user":{"screen_name":"ana"},"tags":["rust","aws"],"geo":null}"#;
        assert!(hit(r#"{"data":{"lang":["en"]}}"#, tweet));
        assert!(!hit(r#"{"data":{"lang":["de"]}}"#, tweet));
        assert!(hit(r#"{"data":{"lang":["de","en"]}}"#, tweet), "values in a list are ORed");
        assert!(hit(r#"{"data":{"user":{"screen_name":[{"prefix":"an"}]}}}"#, tweet));
        assert!(hit(r#"{"data":{"text":[{"suffix":"!"}]}}"#, tweet));
        assert!(hit(r#"{"data":{"text":[{"equals-ignore-case":"hello!"}]}}"#, tweet));
        assert!(hit(r#"{"data":{"retweets":[{"numeric":[">",10,"<=",20]}]}}"#, tweet));
        assert!(!hit(r#"{"data":{"retweets":[{"numeric":[">",15]}]}}"#, tweet));
        assert!(!hit(r#"{"data":{"retweets":["15"]}}"#, tweet), "the string is not the number");
        assert!(hit(r#"{"data":{"lang":[{"anything-but":["de","fr"]}]}}"#, tweet));
        assert!(!hit(r#"{"data":{"lang":[{"anything-but":"en"}]}}"#, tweet));
        assert!(hit(r#"{"data":{"tags":["aws"]}}"#, tweet), "a list field matches when an element does");
        assert!(hit(r#"{"data":{"geo":[null]}}"#, tweet));
        assert!(hit(r#"{"data":{"place":[{"exists":false}]}}"#, tweet));
        assert!(!hit(r#"{"data":{"lang":[{"exists":false}]}}"#, tweet));
        assert!(hit(r#"{"data":{"lang":["en"],"user":{"screen_name":["ana"]}}}"#, tweet), "fields are ANDed");
        assert!(!hit(r#"{"data":{"lang":["en"],"user":{"screen_name":["bo"]}}}"#, tweet));
        assert!(!hit(r#"{"data":{"lang":["en"]}}"#, "not json"), "data that is not JSON matches nothing");
        // Several filters are ORed; none means every record.
        let either = [ok(r#"{"data":{"lang":["de"]}}"#), ok(r#"{"data":{"retweets":[15]}}"#)];
        assert!(matches(&either, tweet.as_bytes()));
        assert!(matches(&[], b"anything"));
    }
}
