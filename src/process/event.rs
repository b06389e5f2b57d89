//! The Kinesis event as Lambda sends it, and the batch response it wants back. The record data
//! stays base64 text here, so one record that is not base64 is that record's problem, not the
//! whole invocation's (with `aws_lambda_events`' types it would fail the event's deserialization).
//! Serializes exactly as Lambda sends it (`approximateArrivalTimestamp` as a number).

use serde::{Deserialize, Deserializer, Serialize};

/// A Kinesis event: one shard's records, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The records.
    #[serde(rename = "Records", default)]
    pub records: Vec<Record>,
}

/// One record of the event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The Kinesis part.
    pub kinesis: KinesisData,
    /// `aws:kinesis`.
    #[serde(default)]
    pub event_source: String,
    /// `1.0`.
    #[serde(default)]
    pub event_version: String,
    /// `<shard id>:<sequence number>`.
    #[serde(rename = "eventID", default)]
    pub event_id: String,
    /// `aws:kinesis:record`.
    #[serde(default)]
    pub event_name: String,
    /// The function's execution role.
    #[serde(default)]
    pub invoke_identity_arn: String,
    /// Region of the stream.
    #[serde(default)]
    pub aws_region: String,
    /// The stream's ARN.
    #[serde(rename = "eventSourceARN", default)]
    pub event_source_arn: String,
}

/// The `kinesis` object of a record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisData {
    /// `1.0`.
    #[serde(default)]
    pub kinesis_schema_version: String,
    /// The record's partition key.
    #[serde(default)]
    pub partition_key: String,
    /// The record's sequence number: opaque, ordered within a shard.
    pub sequence_number: String,
    /// The payload, base64.
    #[serde(default)]
    pub data: String,
    /// Seconds since the epoch, with milliseconds.
    #[serde(default, deserialize_with = "number_or_string")]
    pub approximate_arrival_timestamp: f64,
    /// `KMS` for encrypted streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_type: Option<String>,
}

impl Record {
    /// The shard id: the part of `eventID` before the colon.
    pub fn shard_id(&self) -> &str {
        self.event_id.split_once(':').map_or("", |(shard, _)| shard)
    }
}

/// Lambda sends the arrival time as a number; some libraries write it as a string: read both.
fn number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(f64),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Number(n) => Ok(n),
        Either::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// The partial batch response: `{"batchItemFailures":[{"itemIdentifier":"<sequence number>"}]}`.
/// <https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html>
pub type Response = aws_lambda_events::streams::KinesisEventResponse;

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../tests/fixtures/kinesis-event.json");

    #[test]
    fn aws_sample_event_parses() {
        let event: Event = serde_json::from_str(SAMPLE).expect("sample event");
        assert_eq!(event.records.len(), 2);
        let r = &event.records[0];
        assert_eq!(r.shard_id(), "shardId-000000000006");
        assert_eq!(r.kinesis.sequence_number, "49590338271490256608559692538361571095921575989136588898");
        assert_eq!(r.kinesis.data, "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==");
        assert_eq!(r.kinesis.approximate_arrival_timestamp, 1545084650.987);
        assert_eq!(r.event_source_arn, "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream");
    }

    #[test]
    fn serializes_as_lambda_sends_it() {
        let event: Event = serde_json::from_str(SAMPLE).expect("sample event");
        let ours: serde_json::Value = serde_json::to_value(&event).expect("json");
        let sample: serde_json::Value = serde_json::from_str(SAMPLE).expect("json");
        assert_eq!(ours, sample, "same fields, same types, same values");
    }

    #[test]
    fn events_written_by_aws_lambda_events_read_the_same() {
        let theirs: aws_lambda_events::kinesis::KinesisEvent = serde_json::from_str(SAMPLE).expect("sample");
        let json = serde_json::to_string(&theirs).expect("json");
        let ours: Event = serde_json::from_str(&json).expect("their JSON is ours");
        assert_eq!(ours.records[1].kinesis.approximate_arrival_timestamp, 1545084711.166);
        assert_eq!(ours.records[1].kinesis.data, "VGhpcyBpcyBvbmx5IGEgdGVzdC4=");
    }

    #[test]
    fn a_record_that_is_not_base64_does_not_break_the_event() {
        let json = SAMPLE.replace("SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==", "%%% not base64 %%%");
        let event: Event = serde_json::from_str(&json).expect("still an event");
        assert_eq!(event.records[0].kinesis.data, "%%% not base64 %%%");
    }
}
