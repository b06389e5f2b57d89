//! Lambda's event filtering for a Kinesis source, as the mapping's FilterCriteria holds it: each
//! filter a pattern in EventBridge's grammar on the record's `data` (the only key Kinesis mappings
//! filter on). `parse` checks a pattern before any call (`deploy --filter`, `stream local`);
//! `matches` decides a record as Lambda does: the filters are ORed, data that is not JSON matches
//! no `data` pattern, and a record that matches nothing is dropped and checkpointed past.
//! <https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html>

use serde_json::{Map, Value};

/// Filters a mapping takes by default (a quota AWS can raise to 10).
pub const MAX_FILTERS: usize = 5;
/// Longest pattern Lambda takes, in characters.
pub const MAX_PATTERN_CHARS: usize = 4096;

/// A checked filter pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    text: String,
    data: Map<String, Value>,
}

impl Pattern {
    /// The pattern as given (what the mapping's FilterCriteria holds).
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Checks one pattern: JSON, an object whose only key is `data`, and within it nested objects
/// down to arrays of matchers Lambda's filtering supports. The error says what is wrong.
pub fn parse(text: &str) -> Result<Pattern, String> {
    if text.chars().count() > MAX_PATTERN_CHARS {
        return Err(format!("is over Lambda's {MAX_PATTERN_CHARS} characters"));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| format!("is not JSON: {e}"))?;
    let Value::Object(top) = value else { return Err("is not a JSON object".into()) };
    if let Some(other) = top.keys().find(|k| *k != "data") {
        return Err(format!("filters on \"{other}\"; a Kinesis source filters on \"data\" only"));
    }
    let Some(Value::Object(data)) = top.get("data") else {
        return Err("has no \"data\" object to filter on".into());
    };
    check_object(data, "data")?;
    Ok(Pattern { text: text.to_string(), data: data.clone() })
}

fn check_object(pattern: &Map<String, Value>, path: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err(format!("has an empty object at {path}"));
    }
    for (key, value) in pattern {
        let here = format!("{path}.{key}");
        match value {
            Value::Object(inner) => check_object(inner, &here)?,
            Value::Array(matchers) if matchers.is_empty() => return Err(format!("has an empty list at {here}")),
            Value::Array(matchers) => matchers.iter().try_for_each(|m| check_matcher(m, &here))?,
            _ => return Err(format!("has a single value at {here}: matchers go in a list, e.g. [\"en\"]")),
        }
    }
    Ok(())
}

fn check_matcher(m: &Value, path: &str) -> Result<(), String> {
    let Value::Object(op) = m else {
        // Strings, numbers, booleans and null match exactly.
        return if m.is_array() { Err(format!("has a list inside a list at {path}")) } else { Ok(()) };
    };
    let (Some((name, arg)), 1) = (op.iter().next(), op.len()) else {
        return Err(format!("has a matcher with {} operators at {path}; give one", op.len()));
    };
    let ok = match name.as_str() {
        "prefix" | "suffix" => {
            arg.is_string() || arg.get("equals-ignore-case").is_some_and(Value::is_string) && name == "prefix"
        }
        "equals-ignore-case" => arg.is_string(),
        "exists" => arg.is_boolean(),
        "anything-but" => match arg {
            Value::String(_) | Value::Number(_) => true,
            Value::Array(list) => !list.is_empty() && list.iter().all(|v| v.is_string() || v.is_number()),
            _ => false,
        },
        "numeric" => numeric_ok(arg),
        other => return Err(format!("uses \"{other}\" at {path}, which Lambda's event filtering does not take")),
    };
    if ok { Ok(()) } else { Err(format!("has a malformed \"{name}\" at {path}")) }
}

/// `[op, n]` or `[op, n, op, n]` with op one of =, <, <=, >, >=.
fn numeric_ok(arg: &Value) -> bool {
    let Value::Array(parts) = arg else { return false };
    (parts.len() == 2 || parts.len() == 4)
        && parts.chunks(2).all(|c| matches!(c[0].as_str(), Some("=" | "<" | "<=" | ">" | ">=")) && c[1].is_number())
}

/// True when `data` (a record's decoded bytes) matches any of `patterns` (all of them, when there
/// are none). Data that is not JSON matches no pattern.
pub fn matches(patterns: &[Pattern], data: &[u8]) -> bool {
    if patterns.is_empty() {
        return true;
    }
    let Ok(Value::Object(event)) = serde_json::from_slice::<Value>(data) else { return false };
    patterns.iter().any(|p| object_matches(&p.data, &event))
}

fn object_matches(pattern: &Map<String, Value>, event: &Map<String, Value>) -> bool {
    pattern.iter().all(|(key, want)| match want {
        Value::Object(inner) => event.get(key).and_then(Value::as_object).is_some_and(|e| object_matches(inner, e)),
        Value::Array(matchers) => matchers.iter().any(|m| field_matches(m, event.get(key))),
        _ => false,
    })
}

/// One matcher against a field (missing when `None`); a list field matches when any element does.
fn field_matches(matcher: &Value, field: Option<&Value>) -> bool {
    if let Some(Value::Object(op)) = Some(matcher)
        && op.get("exists").is_some()
    {
        let present = field.is_some_and(|f| !f.is_object());
        return op["exists"].as_bool() == Some(present);
    }
    match field {
        None => false,
        Some(Value::Array(items)) => items.iter().any(|v| leaf_matches(matcher, v)),
        Some(v) => leaf_matches(matcher, v),
    }
}

fn leaf_matches(matcher: &Value, v: &Value) -> bool {
    let Value::Object(op) = matcher else {
        // Exact: same type and value (the string "300" is not the number 300).
        return matcher == v;
    };
    let Some((name, arg)) = op.iter().next() else { return false };
    let text = v.as_str();
    match name.as_str() {
        "prefix" => match (arg, text) {
            (Value::String(p), Some(t)) => t.starts_with(p.as_str()),
            (Value::Object(o), Some(t)) => o["equals-ignore-case"]
                .as_str()
                .is_some_and(|p| t.get(..p.len()).is_some_and(|head| head.eq_ignore_ascii_case(p))),
            _ => false,
        },
        "suffix" => arg.as_str().zip(text).is_some_and(|(s, t)| t.ends_with(s)),
        "equals-ignore-case" => arg.as_str().zip(text).is_some_and(|(s, t)| t.to_lowercase() == s.to_lowercase()),
        "anything-but" => match arg {
            Value::Array(list) => (v.is_string() || v.is_number()) && !list.contains(v),
            other => (v.is_string() || v.is_number()) && other != v,
        },
        "numeric" => v.as_f64().is_some_and(|x| {
            arg.as_array().is_some_and(|parts| {
                parts.chunks(2).all(|c| {
                    let n = c[1].as_f64().unwrap_or(f64::NAN);
                    match c[0].as_str() {
                        Some("=") => x == n,
                        Some("<") => x < n,
                        Some("<=") => x <= n,
                        Some(">") => x > n,
                        Some(">=") => x >= n,
                        _ => false,
                    }
                })
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
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(parse(&format!(r#"{{"data":{{"t":["{}"]}}}}"#, "x".repeat(MAX_PATTERN_CHARS))).is_err());
    }

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
