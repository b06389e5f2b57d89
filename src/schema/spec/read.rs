//! Reading a schema file: the text parsed as TOML or JSON, then walked field by field by a
//! `Reader` that notes every problem with its place (`partition_key.type`) and goes on, so that
//! one run names them all. The typed field readers are here; what each section holds is `sections`.

use serde_json::{Map, Value};

use super::{JsonType, Problem, Source, Spec};

/// Reads schema text (`toml` true: TOML, else JSON) into a spec, or every problem found.
pub fn read(text: &str, toml: bool) -> Result<Spec, Vec<Problem>> {
    let value: Value = if toml {
        ::toml::from_str(text).map_err(|e| vec![syntax("TOML", &e.to_string())])?
    } else {
        serde_json::from_str(text).map_err(|e| vec![syntax("JSON", &e.to_string())])?
    };
    let mut r = Reader::default();
    let spec = r.spec(&value);
    match spec {
        Some(spec) if r.problems.is_empty() => Ok(spec),
        _ => Err(r.problems),
    }
}

/// A parser's error as one problem: its first line and the line it points at.
fn syntax(format: &str, message: &str) -> Problem {
    let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("cannot be read").trim_end_matches(':').to_string();
    let detail = message.lines().last().map(str::trim).filter(|l| !l.is_empty() && *l != first);
    let what = match detail {
        Some(d) if format == "TOML" => format!("not valid TOML: {first}: {d}"),
        _ => format!("not valid {format}: {first}"),
    };
    Problem { what, hint: format!("fix the {format} syntax (see template/schemas/ for examples)") }
}

/// Reads fields one by one, noting every problem with its place.
#[derive(Default)]
pub(super) struct Reader {
    pub(super) problems: Vec<Problem>,
}

/// A field's place, for messages: `partition_key.type`.
pub(super) fn at(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

impl Reader {
    pub(super) fn problem(&mut self, what: impl Into<String>, hint: impl Into<String>) {
        self.problems.push(Problem { what: what.into(), hint: hint.into() });
    }

    /// A table (JSON object) at `path` with only `known` keys; unknown keys are problems.
    pub(super) fn table<'v>(&mut self, v: &'v Value, path: &str, known: &[&str]) -> Option<&'v Map<String, Value>> {
        let Some(map) = v.as_object() else {
            self.problem(format!("{path}: is {}, not a table", kind(v)), format!("write {path} as a table"));
            return None;
        };
        for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
            self.problem(
                format!("{}: unknown field", at(path, key)),
                format!("the fields of {} are: {}", if path.is_empty() { "a schema" } else { path }, known.join(", ")),
            );
        }
        Some(map)
    }

    pub(super) fn string(&mut self, map: &Map<String, Value>, path: &str, key: &str) -> Option<String> {
        match map.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                let place = at(path, key);
                self.problem(format!("{place}: is {}, not a string", kind(other)), format!("write {place} in quotes"));
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, map: &Map<String, Value>, path: &str, key: &str, default: bool) -> bool {
        match map.get(key) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                let place = at(path, key);
                self.problem(
                    format!("{place}: is {}, not true or false", kind(other)),
                    format!("set {place} = true or false"),
                );
                default
            }
        }
    }

    /// A value out of a fixed list of names.
    pub(super) fn choice<T: Copy>(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        key: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let text = self.string(map, path, key)?;
        let found = choices.iter().find(|(n, _)| *n == text).map(|(_, c)| *c);
        if found.is_none() {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            let place = at(path, key);
            self.problem(
                format!("{place}: \"{text}\" is not one of {}", names.join(", ")),
                format!("set {place} to one of: {}", names.join(", ")),
            );
        }
        found
    }

    /// A name as the item's attribute: 1 byte to `max` bytes.
    pub(super) fn attribute_name(&mut self, name: String, place: &str, max: usize) -> Option<String> {
        if name.is_empty() || name.len() > max {
            self.problem(
                format!(
                    "{place}: \"{}\" is {} bytes, not 1 to {max}",
                    name.chars().take(40).collect::<String>(),
                    name.len()
                ),
                format!("give {place} a name of 1 to {max} bytes"),
            );
            return None;
        }
        Some(name)
    }

    /// `json = "string"` or `json = ["string", "number"]`.
    pub(super) fn json_types(&mut self, v: &Value, place: &str) -> Option<Vec<JsonType>> {
        let names: Vec<&Value> = match v {
            Value::Array(list) => list.iter().collect(),
            one => vec![one],
        };
        let mut out = Vec::new();
        for n in names {
            match n.as_str().and_then(|s| JsonType::ALL.iter().find(|(name, _)| *name == s)) {
                Some((_, t)) => out.push(*t),
                None => {
                    let all: Vec<&str> = JsonType::ALL.iter().map(|(n, _)| *n).collect();
                    self.problem(format!("{place}: {n} is not a JSON type"), format!("use {}", all.join(", ")));
                    return None;
                }
            }
        }
        (!out.is_empty()).then_some(out).or_else(|| {
            self.problem(format!("{place}: no JSON type given"), "name at least one type, or leave json out");
            None
        })
    }

    /// `from = "/a"`, `from = ["/a", "/b"]`, or `from = [{ pointer = "/a", json = "string" }, …]`;
    /// `json` (the field's, when a source names none) applies to every source without its own.
    pub(super) fn sources(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        key: &str,
        json: &[JsonType],
    ) -> Option<Vec<Source>> {
        let place = at(path, key);
        let Some(v) = map.get(key) else {
            self.problem(
                format!("{place}: missing"),
                format!("give {place} the JSON Pointer of the value, e.g. \"/id\""),
            );
            return None;
        };
        let items: Vec<&Value> = match v {
            Value::Array(list) if !list.is_empty() => list.iter().collect(),
            Value::Array(_) => {
                self.problem(format!("{place}: is empty"), format!("give {place} at least one JSON Pointer"));
                return None;
            }
            one => vec![one],
        };
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let here = format!("{place}[{i}]");
            let (pointer, own) = match item {
                Value::String(p) => (p.clone(), None),
                Value::Object(_) => {
                    let m = self.table(item, &here, &["pointer", "json"])?;
                    let p = self.string(m, &here, "pointer");
                    let j = m.get("json").and_then(|j| self.json_types(j, &at(&here, "json")));
                    (p?, j)
                }
                other => {
                    self.problem(
                        format!("{here}: is {}, not a JSON Pointer", kind(other)),
                        "write pointers as strings, e.g. \"/user/id\"",
                    );
                    return None;
                }
            };
            if let Err(why) = crate::schema::pointer::parse(&pointer) {
                self.problem(
                    format!("{here}: {pointer:?} {why}"),
                    "write an RFC 6901 JSON Pointer: \"/field/nested\" (~1 for /, ~0 for ~)",
                );
                continue;
            }
            if pointer.is_empty() {
                self.problem(format!("{here}: \"\" points at the whole event"), "point at a field, e.g. \"/id\"");
                continue;
            }
            out.push(Source { pointer, json: own.unwrap_or_else(|| json.to_vec()) });
        }
        Some(out)
    }
}

/// A value's JSON kind, for messages.
pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parser's error becomes one line: its first line, and for TOML the last one (what was
    /// expected at the line it points at), never a blank or a repeat; JSON's is one line already.
    #[test]
    fn a_parsers_error_is_one_line_with_what_it_expected() {
        let toml =
            "TOML parse error at line 2, column 15\n  |\n2 | [partition_key\n  |               ^\nexpected `.`, `]`\n";
        let cases = [
            ("TOML", toml, "not valid TOML: TOML parse error at line 2, column 15: expected `.`, `]`"),
            ("TOML", "unexpected end:\n\n", "not valid TOML: unexpected end"),
            ("TOML", "bad value", "not valid TOML: bad value"),
            ("TOML", "", "not valid TOML: cannot be read"),
            (
                "JSON",
                "EOF while parsing a value at line 1 column 9\nat the end",
                "not valid JSON: EOF while parsing a value at line 1 column 9",
            ),
        ];
        for (format, message, what) in cases {
            let p = syntax(format, message);
            assert_eq!(p.what, what, "{message:?}");
            assert_eq!(p.hint, format!("fix the {format} syntax (see template/schemas/ for examples)"));
        }
    }

    /// An attribute name is 1 to `max` bytes, both ends included; the message shows the first 40
    /// characters and the length.
    #[test]
    fn attribute_names_are_1_to_max_bytes() {
        let mut r = Reader::default();
        assert_eq!(r.attribute_name("K".repeat(255), "partition_key.attribute", 255), Some("K".repeat(255)));
        assert_eq!(r.attribute_name("é".into(), "x", 2), Some("é".into()));
        assert!(r.problems.is_empty(), "{:?}", r.problems.iter().map(|p| &p.what).collect::<Vec<_>>());
        assert_eq!(r.attribute_name("K".repeat(256), "partition_key.attribute", 255), None);
        assert_eq!(r.attribute_name(String::new(), "sort_key.attribute", 255), None);
        let what: Vec<&str> = r.problems.iter().map(|p| p.what.as_str()).collect();
        assert_eq!(
            what,
            [
                format!("partition_key.attribute: \"{}\" is 256 bytes, not 1 to 255", "K".repeat(40)).as_str(),
                "sort_key.attribute: \"\" is 0 bytes, not 1 to 255",
            ]
        );
        assert_eq!(r.problems[0].hint, "give partition_key.attribute a name of 1 to 255 bytes");
    }
}
