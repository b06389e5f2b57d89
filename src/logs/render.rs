//! One log event made readable: the function's JSON lines as time, level, message and fields (the
//! batch summary's counts in a fixed order, a quarantined record marked), an EMF line as its
//! metrics, and anything else (Lambda's START, END and REPORT lines, plain text) as it is.
//! Pure: text in, text out.

use serde_json::{Map, Value};

use crate::tweet::iso_millis;

/// The batch summary's counts, in the order an operator reads them.
const SUMMARY_FIELDS: [&str; 8] =
    ["records", "user_records", "written", "duplicates", "retried", "quarantined", "not_done", "duration_ms"];

/// Marks a quarantined record's line, so it stands out in a page of batch summaries.
pub const QUARANTINE_MARK: &str = "QUARANTINED";

/// `message`, logged at `timestamp_ms`, as one readable line.
pub fn line(timestamp_ms: i64, message: &str) -> String {
    let time = iso_millis(timestamp_ms as f64 / 1000.0);
    let text = message.trim_end();
    let rendered = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(doc)) if doc.contains_key("_aws") => metrics(&doc),
        Ok(Value::Object(doc)) => structured(&doc).unwrap_or_else(|| text.to_string()),
        _ => text.replace('\t', "  "),
    };
    format!("{time}  {rendered}")
}

/// A JSON log line (tracing's `{"level", "fields": {"message", …}}`, or a flat `{"level",
/// "message", …}`): level, message, then the fields as `name=value`.
fn structured(doc: &Map<String, Value>) -> Option<String> {
    let level = doc.get("level").and_then(Value::as_str)?;
    let fields = doc.get("fields").and_then(Value::as_object).unwrap_or(doc);
    let message = fields.get("message").or_else(|| fields.get("msg")).and_then(Value::as_str).unwrap_or("");
    let skip = ["message", "msg", "level", "fields", "timestamp", "time", "target"];
    let mut names: Vec<&String> = fields.keys().filter(|k| !skip.contains(&k.as_str())).collect();
    // The summary's counts first, in their order; any other field after, as logged.
    names.sort_by_key(|k| SUMMARY_FIELDS.iter().position(|f| f == k).unwrap_or(SUMMARY_FIELDS.len()));
    let pairs: Vec<String> = names.iter().map(|k| format!("{k}={}", value(&fields[k.as_str()]))).collect();
    let mark = if message == "record quarantined" { format!("{QUARANTINE_MARK} ") } else { String::new() };
    Some(format!("{level:<5}  {mark}{message}  {}", pairs.join(" ")).trim_end().to_string())
}

/// An EMF line: its namespace and each declared metric with its value.
fn metrics(doc: &Map<String, Value>) -> String {
    let mut parts = Vec::new();
    let directives = doc.get("_aws").and_then(|a| a.get("CloudWatchMetrics")).and_then(Value::as_array);
    for directive in directives.into_iter().flatten() {
        let namespace = directive.get("Namespace").and_then(Value::as_str).unwrap_or("?");
        let names = directive.get("Metrics").and_then(Value::as_array).into_iter().flatten();
        let values: Vec<String> = names
            .filter_map(|m| m.get("Name").and_then(Value::as_str))
            .map(|name| format!("{name}={}", doc.get(name).map_or_else(|| "-".to_string(), value)))
            .collect();
        parts.push(format!("{namespace}: {}", values.join(" ")));
    }
    format!("METRICS  {}", parts.join("; "))
}

/// A field's value: strings bare, whole numbers without ".0", fractions to two places.
fn value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            Some(f) => format!("{f:.2}"),
            None => n.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_795_685_400_250;

    #[test]
    fn the_batch_summary_shows_its_counts_in_order() {
        let summary = r#"{"level":"INFO","fields":{"message":"batch done","duration_ms":12.345,"not_done":0,"quarantined":1,"retried":0,"duplicates":2,"written":97,"user_records":100,"records":100}}"#;
        assert_eq!(
            line(T, summary),
            "2026-11-26T09:30:00.250Z  INFO   batch done  records=100 user_records=100 written=97 duplicates=2 \
             retried=0 quarantined=1 not_done=0 duration_ms=12.35"
        );
    }

    #[test]
    fn a_quarantined_record_is_marked() {
        let q = r#"{"level":"WARN","fields":{"message":"record quarantined","shard":"shardId-000000000001","sequence_number":"4960","sub_record":null,"reason":"not JSON"}}"#;
        let shown = line(T, q);
        assert!(shown.contains("WARN   QUARANTINED record quarantined  "), "{shown}");
        assert!(shown.contains("shard=shardId-000000000001 sequence_number=4960 sub_record=null reason=not JSON"));
    }

    #[test]
    fn emf_lines_are_summarised_as_their_metrics() {
        let emf = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"stream","Dimensions":[["FunctionName"]],"Metrics":[{"Name":"RecordsIn","Unit":"Count"},{"Name":"Written","Unit":"Count"},{"Name":"DurationMs","Unit":"Milliseconds"}]}]},"FunctionName":"f","RecordsIn":100.0,"Written":98.0,"DurationMs":3.14159}"#;
        assert_eq!(line(T, emf), "2026-11-26T09:30:00.250Z  METRICS  stream: RecordsIn=100 Written=98 DurationMs=3.14");
    }

    #[test]
    fn platform_and_plain_lines_pass_through() {
        let report = "REPORT RequestId: 8f5c\tDuration: 2.10 ms\tBilled Duration: 3 ms";
        assert_eq!(
            line(T, report),
            "2026-11-26T09:30:00.250Z  REPORT RequestId: 8f5c  Duration: 2.10 ms  Billed Duration: 3 ms"
        );
        assert_eq!(
            line(T, "START RequestId: 8f5c Version: $LATEST\n"),
            "2026-11-26T09:30:00.250Z  START RequestId: 8f5c Version: $LATEST"
        );
        assert_eq!(line(T, "{not json"), "2026-11-26T09:30:00.250Z  {not json");
        assert_eq!(line(T, r#"{"no":"level"}"#), r#"2026-11-26T09:30:00.250Z  {"no":"level"}"#);
    }

    #[test]
    fn flat_json_lines_read_too() {
        let flat = r#"{"level":"ERROR","message":"the function cannot work","table":"t"}"#;
        assert_eq!(line(T, flat), "2026-11-26T09:30:00.250Z  ERROR  the function cannot work  table=t");
    }
}
