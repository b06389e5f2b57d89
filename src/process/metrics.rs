//! CloudWatch Embedded Metric Format: one JSON line per invocation on stdout, which CloudWatch
//! Logs turns into metrics without any API call from the function.
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>

use serde_json::{Value, json};

use super::BatchStats;

/// Namespace of the metrics.
pub const NAMESPACE: &str = "stream";

/// The EMF document for one invocation of `function`; `versioned` (a schema that orders by
/// version) adds the count of superseded writes.
pub fn emf(function: &str, stats: &BatchStats, duration_ms: f64, now_ms: i64, versioned: bool) -> Value {
    let lag_ms =
        if stats.oldest_arrival > 0.0 { (now_ms as f64 - stats.oldest_arrival * 1000.0).max(0.0) } else { 0.0 };
    let mut counts = vec![
        ("RecordsIn", stats.records as f64),
        ("UserRecords", stats.user_records as f64),
        ("Written", stats.written as f64),
        ("DuplicatesDropped", stats.duplicates as f64),
        ("Retried", stats.retries as f64),
        ("Quarantined", stats.quarantined as f64),
        ("NotDone", stats.not_done as f64),
    ];
    if versioned {
        counts.push(("Superseded", stats.superseded as f64));
    }
    let mut metrics: Vec<Value> = counts.iter().map(|(name, _)| json!({"Name": name, "Unit": "Count"})).collect();
    metrics.push(json!({"Name": "DurationMs", "Unit": "Milliseconds"}));
    metrics.push(json!({"Name": "OldestRecordAgeMs", "Unit": "Milliseconds"}));
    let mut doc = json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["FunctionName"]],
                "Metrics": metrics,
            }]
        },
        "FunctionName": function,
        "DurationMs": duration_ms,
        "OldestRecordAgeMs": lag_ms,
    });
    for (name, value) in counts {
        doc[name] = json!(value);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_metric_has_a_value() {
        let stats = BatchStats {
            records: 10,
            written: 7,
            quarantined: 1,
            duplicates: 2,
            oldest_arrival: 100.0,
            ..Default::default()
        };
        let doc = emf("f", &stats, 12.5, 160_000, false);
        let declared = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().expect("metrics");
        assert_eq!(declared.len(), 9);
        let ordered = emf("f", &BatchStats { superseded: 3, ..stats }, 12.5, 160_000, true);
        assert_eq!(ordered["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().map(Vec::len), Some(10));
        assert_eq!(ordered["Superseded"], 3.0);
        for m in declared {
            let name = m["Name"].as_str().expect("name");
            assert!(doc[name].is_number(), "{name} has a value");
        }
        assert_eq!(doc["RecordsIn"], 10.0);
        assert_eq!(doc["Quarantined"], 1.0);
        assert_eq!(doc["OldestRecordAgeMs"], 60_000.0);
        assert_eq!(doc["FunctionName"], "f");
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["FunctionName"]]));
    }
}
