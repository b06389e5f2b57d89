//! The Kinesis event as Lambda sends it, and the batch response it wants back. The record data
//! stays base64 text here, so one record that is not base64 is that record's problem, not the
//! whole invocation's (with `aws_lambda_events`' types it would fail the event's deserialization).
//! Serializes exactly as Lambda sends it (`approximateArrivalTimestamp` as a number).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use stream_json::event::number_or_string;
/// The event as the function reads it, and its parser, from the `stream-json` package (src/json),
/// which is compiled at opt-level 3.
pub use stream_json::event::{Batch, BatchRecord, KinesisRef, parse};

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

impl<'a> From<&'a Record> for BatchRecord<'a> {
    fn from(r: &'a Record) -> Self {
        let k = &r.kinesis;
        BatchRecord {
            kinesis: KinesisRef {
                partition_key: Cow::Borrowed(&k.partition_key),
                sequence_number: Cow::Borrowed(&k.sequence_number),
                data: Cow::Borrowed(&k.data),
                approximate_arrival_timestamp: k.approximate_arrival_timestamp,
            },
            event_id: Cow::Borrowed(&r.event_id),
            event_source_arn: Cow::Borrowed(&r.event_source_arn),
        }
    }
}

impl From<Record> for BatchRecord<'static> {
    /// The record as the function reads it, owning its text.
    fn from(r: Record) -> Self {
        let k = r.kinesis;
        BatchRecord {
            kinesis: KinesisRef {
                partition_key: Cow::Owned(k.partition_key),
                sequence_number: Cow::Owned(k.sequence_number),
                data: Cow::Owned(k.data),
                approximate_arrival_timestamp: k.approximate_arrival_timestamp,
            },
            event_id: Cow::Owned(r.event_id),
            event_source_arn: Cow::Owned(r.event_source_arn),
        }
    }
}

impl<'a> From<&'a Event> for Batch<'a> {
    fn from(e: &'a Event) -> Self {
        Batch { records: e.records.iter().map(BatchRecord::from).collect() }
    }
}

/// Where a Kinesis record came from, as the event source mapping names it in the event.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The shard the record was read from.
    pub shard_id: &'a str,
    /// The stream's ARN.
    pub stream_arn: &'a str,
    /// The stream's region.
    pub region: &'a str,
    /// The function's execution role (invokeIdentityArn).
    pub role_arn: &'a str,
}

impl Record {
    /// A Kinesis record as the event source mapping puts it into the event.
    pub fn from_kinesis(record: &aws_sdk_kinesis::types::Record, source: Source<'_>) -> Record {
        use base64::Engine;
        let arrival = record.approximate_arrival_timestamp().map_or(0.0, |t| t.as_secs_f64());
        let kms = record.encryption_type() == Some(&aws_sdk_kinesis::types::EncryptionType::Kms);
        Record {
            kinesis: KinesisData {
                kinesis_schema_version: "1.0".into(),
                partition_key: record.partition_key().unwrap_or_default().to_string(),
                sequence_number: record.sequence_number().to_string(),
                data: base64::engine::general_purpose::STANDARD.encode(record.data().as_ref()),
                // Lambda reports arrival times with millisecond precision.
                approximate_arrival_timestamp: (arrival * 1000.0).round() / 1000.0,
                encryption_type: kms.then(|| "KMS".to_string()),
            },
            event_source: "aws:kinesis".into(),
            event_version: "1.0".into(),
            event_id: format!("{}:{}", source.shard_id, record.sequence_number()),
            event_name: "aws:kinesis:record".into(),
            invoke_identity_arn: source.role_arn.to_string(),
            aws_region: source.region.to_string(),
            event_source_arn: source.stream_arn.to_string(),
        }
    }

    /// The shard id: the part of `eventID` before the colon.
    pub fn shard_id(&self) -> &str {
        self.event_id.split_once(':').map_or("", |(shard, _)| shard)
    }
}

/// The partial batch response: `{"batchItemFailures":[{"itemIdentifier":"<sequence number>"}]}`.
/// <https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html>
pub type Response = aws_lambda_events::streams::KinesisEventResponse;

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's sample event of two records, as a fixture.
    pub(super) const SAMPLE: &str = include_str!("../../tests/fixtures/kinesis-event.json");

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
    fn the_function_reads_what_it_needs_of_the_event() {
        let event: Event = serde_json::from_str(SAMPLE).expect("sample event");
        let batch: Batch = serde_json::from_str(SAMPLE).expect("sample batch");
        assert_eq!(batch, Batch::from(&event));
        assert_eq!(batch.records[0].shard_id(), "shardId-000000000006");
    }

    /// The records' text is borrowed from the event's JSON, not copied; an escaped value is
    /// unescaped into a string of its own.
    #[test]
    fn the_batch_borrows_the_records_from_the_event_text() {
        let batch = parse(SAMPLE).expect("sample batch");
        let r = &batch.records[0];
        assert!(matches!(r.kinesis.data, Cow::Borrowed(_)) && matches!(r.event_id, Cow::Borrowed(_)));
        let escaped = SAMPLE.replace("SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==", "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg\\u003d=");
        let batch = parse(&escaped).expect("escaped batch");
        assert_eq!(batch.records[0].kinesis.data, "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==");
        assert!(matches!(batch.records[0].kinesis.data, Cow::Owned(_)));
    }

    #[test]
    fn a_record_that_is_not_base64_does_not_break_the_event() {
        let json = SAMPLE.replace("SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==", "%%% not base64 %%%");
        let event: Event = serde_json::from_str(&json).expect("still an event");
        assert_eq!(event.records[0].kinesis.data, "%%% not base64 %%%");
    }
}

#[cfg(test)]
mod from_kinesis {
    use super::*;
    use aws_sdk_kinesis::primitives::{Blob, DateTime};
    use aws_sdk_kinesis::types::EncryptionType;

    /// AWS's documented sample Kinesis event (Lambda developer guide, "Using Lambda with Kinesis").
    const AWS_SAMPLE_EVENT: &str = r#"{
    "Records": [
        {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": "1",
                "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
                "data": "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==",
                "approximateArrivalTimestamp": 1545084650.987
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": "shardId-000000000006:49590338271490256608559692538361571095921575989136588898",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
            "awsRegion": "us-east-2",
            "eventSourceARN": "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream"
        }
    ]
}"#;

    #[test]
    fn the_event_is_byte_for_byte_the_documented_sample() {
        let record = aws_sdk_kinesis::types::Record::builder()
            .sequence_number("49590338271490256608559692538361571095921575989136588898")
            .partition_key("1")
            .data(Blob::new("Hello, this is a test.".as_bytes()))
            .approximate_arrival_timestamp(DateTime::from_millis(1_545_084_650_987))
            .build()
            .expect("valid record");
        let stream_arn = "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream";
        let role = "arn:aws:iam::123456789012:role/lambda-role";
        let source = Source { shard_id: "shardId-000000000006", stream_arn, region: "us-east-2", role_arn: role };
        let event = Event { records: vec![Record::from_kinesis(&record, source)] };
        let ours = serde_json::to_string(&event).expect("json");
        let sample: String = AWS_SAMPLE_EVENT.split_whitespace().collect();
        assert_eq!(ours, sample, "same fields, same order, same values");
    }

    #[test]
    fn event_record_has_the_shape_lambda_sends() {
        let record = aws_sdk_kinesis::types::Record::builder()
            .sequence_number("49590338271490256608559692538361571095921575989136588898")
            .partition_key("pk")
            .data(Blob::new("hello 🌏".as_bytes()))
            .approximate_arrival_timestamp(DateTime::from_millis(1_545_084_650_987))
            .encryption_type(EncryptionType::Kms)
            .build()
            .expect("valid record");
        let source = Source {
            shard_id: "shardId-000000000006",
            stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/s",
            region: "us-east-1",
            role_arn: "arn:aws:iam::123456789012:role/r",
        };
        let event = Event { records: vec![Record::from_kinesis(&record, source)] };
        let json = serde_json::to_value(&event).expect("json");
        let r = &json["Records"][0];
        assert_eq!(r["eventID"], "shardId-000000000006:49590338271490256608559692538361571095921575989136588898");
        assert_eq!(r["eventSource"], "aws:kinesis");
        assert_eq!(r["eventName"], "aws:kinesis:record");
        assert_eq!(r["eventSourceARN"], "arn:aws:kinesis:us-east-1:123456789012:stream/s");
        assert_eq!(r["awsRegion"], "us-east-1");
        assert_eq!(r["invokeIdentityArn"], "arn:aws:iam::123456789012:role/r");
        assert_eq!(r["eventVersion"], "1.0");
        assert_eq!(r["kinesis"]["data"], "aGVsbG8g8J+Mjw==");
        assert_eq!(r["kinesis"]["partitionKey"], "pk");
        assert_eq!(r["kinesis"]["kinesisSchemaVersion"], "1.0");
        assert_eq!(r["kinesis"]["encryptionType"], "KMS");
        assert_eq!(r["kinesis"]["approximateArrivalTimestamp"].as_f64(), Some(1_545_084_650.987));
        // The same JSON reads as aws_lambda_events' type too.
        let theirs: aws_lambda_events::kinesis::KinesisEvent =
            serde_json::from_value(json.clone()).expect("their type");
        assert_eq!(theirs.records[0].kinesis.data.as_slice(), "hello 🌏".as_bytes());
    }
}

/// Events as Lambda writes them are read without serde (`stream_json::event`'s fast reader); every
/// other text is left to serde_json. Both read every event alike.
#[cfg(test)]
mod fast_reader {
    use super::*;
    use proptest::prelude::*;
    use stream_json::event::parse_fast;

    use super::tests::SAMPLE;

    /// How serde_json reads `text`: the batch, or its error in its words.
    fn serde_reads(text: &str) -> Result<Batch<'_>, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn events_as_lambda_writes_them_are_read_without_serde_and_the_same() {
        let compact: String = SAMPLE.split_whitespace().collect();
        let kms = SAMPLE
            .replace("\"approximateArrivalTimestamp\"", "\"encryptionType\": \"KMS\", \"approximateArrivalTimestamp\"");
        let texts = [
            SAMPLE.to_string(),
            compact.clone(),
            kms,
            compact.replace("1545084650.987", "\"1545084650.987\""),
            compact.replace("1545084650.987", "1545084650"),
            compact.replace("1545084650.987", "1.545084650987E9"),
            compact.replace("1545084650.987", "-0"),
            compact.replace("\"data\":\"SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==\",", ""),
            r#"{"Records":[]}"#.into(),
            "{}".into(),
            " {\r\n\t\"Records\" : [ ] , \"other\" : \"x\" } \n".into(),
        ];
        for text in &texts {
            let fast = parse_fast(text);
            assert!(fast.is_some(), "read without serde: {text}");
            assert_eq!(fast.map(Ok), Some(serde_reads(text)), "{text}");
        }
        assert_eq!(parse_fast(&compact).expect("sample").records.len(), 2);
        assert_eq!(
            parse_fast(&texts[3]).expect("a string time").records[0].kinesis.approximate_arrival_timestamp,
            1545084650.987
        );
    }

    #[test]
    fn every_other_text_is_left_to_serde_json_and_read_as_it_reads_it() {
        let compact: String = SAMPLE.split_whitespace().collect();
        let data = "\"data\":\"SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==\"";
        let texts = [
            // Escapes: in a value, in a key.
            compact.replace("Lg==", "Lg\\u003d="),
            compact.replace("\"data\"", "\"d\\u0061ta\""),
            // A control character in a string; another kind where a string is expected.
            compact.replace("Lg==", "Lg=\u{1}"),
            compact.replace("\"eventVersion\":\"1.0\"", "\"eventVersion\":1.0"),
            compact.replace("\"eventName\":\"aws:kinesis:record\"", "\"eventName\":null"),
            compact.replace("\"eventName\":\"aws:kinesis:record\"", "\"eventName\":{\"a\":[1]}"),
            compact.replace("\"partitionKey\":\"1\"", "\"partitionKey\":1"),
            // Fields twice, fields missing.
            compact.replacen(data, &format!("{data},{data}"), 1),
            compact.replacen("\"kinesis\":{", "\"kinesis\":{},\"kinesis\":{", 1),
            compact.replacen("{\"Records\":", "{\"Records\":[],\"Records\":", 1),
            compact.replace("\"sequenceNumber\":\"49590338271490256608559692538361571095921575989136588898\",", ""),
            r#"{"Records":[{"eventID":"s:1"}]}"#.into(),
            // Other kinds of values and times.
            r#"{"Records":null}"#.into(),
            r#"{"Records":[[]]}"#.into(),
            compact.replace("1545084650.987", "null"),
            compact.replace("1545084650.987", "true"),
            compact.replace("1545084650.987", "01"),
            compact.replace("1545084650.987", "1e999"),
            compact.replace("1545084650.987", "\"soon\""),
            // A string that does not end where a control character or a backslash stands.
            "{\"Records\":[],\"x\":\"a\n}".into(),
            r#"{"Records":[],"x":"a\}"#.into(),
            // Not one event.
            String::new(),
            "[]".into(),
            format!("{compact} {{}}"),
            compact.replacen("}]}", "},]}", 1),
            compact.replacen("\"Records\":[", "\"Records\":[,", 1),
            compact[..compact.len() - 1].to_string(),
        ];
        for text in &texts {
            assert_eq!(parse_fast(text), None, "left to serde_json: {text}");
            assert_eq!(parse(text).map_err(|e| e.to_string()), serde_reads(text), "{text}");
        }
        // Escaped text is unescaped as serde_json does it.
        assert_eq!(parse(&texts[0]).expect("escaped").records[0].kinesis.data, "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==");
    }

    /// `s` as a JSON string, escaped where it must be.
    fn json_str(s: &str) -> String {
        serde_json::to_string(s).expect("a string")
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(
                "tests/proptest-regressions/event.txt",
            ))),
            cases: 2000,
            ..ProptestConfig::default()
        })]
        /// Any event, as Lambda writes it or not, reads as serde_json reads it; the ones as Lambda
        /// writes them (nothing escaped, every field once, strings where strings go) are read
        /// without serde.
        #[test]
        fn events_read_as_serde_json_reads_them(
            records in proptest::collection::vec((
                "[A-Za-z0-9+/=é\"\\\\\u{1}]{0,40}",
                "[a-z0-9é\"]{0,6}",
                any::<f64>().prop_filter("finite", |f| f.is_finite()),
                0usize..5,
                0usize..6,
                0usize..8,
            ), 0..4),
            ws in proptest::sample::select(vec!["", " ", "\n  ", "\t", "\r\n"]),
        ) {
            let mut lambda_like = true;
            let mut texts = Vec::new();
            for (data, key, arrival, form, extra, turn) in &records {
                let mut kinesis = vec![
                    ("kinesisSchemaVersion", json_str("1.0")),
                    ("partitionKey", json_str(key)),
                    ("sequenceNumber", json_str("4959")),
                    ("data", json_str(data)),
                ];
                lambda_like &= json_str(data) == format!("\"{data}\"") && json_str(key) == format!("\"{key}\"");
                match form {
                    0 => kinesis.push(("approximateArrivalTimestamp", arrival.to_string())),
                    1 => kinesis.push(("approximateArrivalTimestamp", format!("{arrival:e}"))),
                    2 => kinesis.push(("approximateArrivalTimestamp", json_str(&arrival.to_string()))),
                    3 => {}
                    _ => {
                        kinesis.push(("approximateArrivalTimestamp", "null".into()));
                        lambda_like = false;
                    }
                }
                let mut record = vec![
                    ("eventSource", json_str("aws:kinesis")),
                    ("eventID", json_str("shardId-000000000006:4959")),
                    ("eventSourceARN", json_str("arn:aws:kinesis:us-east-2:123456789012:stream/s")),
                ];
                match extra {
                    1 => kinesis.push(("encryptionType", json_str("KMS"))),
                    2 => {
                        record.push(("eventVersion", "1".into()));
                        lambda_like = false;
                    }
                    3 => {
                        kinesis.push(("data", json_str(data)));
                        lambda_like = false;
                    }
                    4 => {
                        kinesis.retain(|(k, _)| *k != "sequenceNumber");
                        lambda_like = false;
                    }
                    5 => {
                        record.push(("eventID", json_str("again")));
                        lambda_like = false;
                    }
                    _ => {}
                }
                let object = |mut members: Vec<(&str, String)>| {
                    let n = members.len();
                    members.rotate_left(turn % n);
                    let members: Vec<String> = members.iter().map(|(k, v)| format!("{ws}\"{k}\"{ws}:{ws}{v}{ws}")).collect();
                    format!("{{{}}}", members.join(","))
                };
                let kinesis = object(kinesis);
                record.push(("kinesis", kinesis));
                texts.push(format!("{ws}{}{ws}", object(record)));
            }
            let text = format!("{ws}{{{ws}\"Records\"{ws}:{ws}[{}]{ws}}}{ws}", texts.join(","));
            let want = serde_reads(&text);
            prop_assert_eq!(parse(&text).map_err(|e| e.to_string()), want.clone(), "{}", text);
            match parse_fast(&text) {
                Some(batch) => prop_assert_eq!(Ok(batch), want.clone(), "{}", text),
                None => prop_assert!(!lambda_like, "an event as Lambda writes it left to serde_json: {}", text),
            }
            if lambda_like {
                prop_assert!(want.is_ok(), "{}", text);
            }
        }
    }
}
