//! Reading one shard as the event source mapping does: from its checkpoint (or the mapping's
//! starting position), one GetRecords at a time, paced within Kinesis' five reads per second per
//! shard and once a second when idle, with an expired iterator renewed after the last record read.
//! Also the record as the mapping puts it into the event.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::{EncryptionType, Record, ShardIteratorType};

use super::Ctx;
use super::checkpoint::SHARD_END;
use crate::error::{Disposition, Error};
use crate::process::event::KinesisData;
use crate::stack::Outputs;

/// Lambda polls an idle shard about once a second.
pub const IDLE_POLL: Duration = Duration::from_secs(1);
/// Kinesis allows five GetRecords calls per second per shard.
const MIN_READ_GAP: Duration = Duration::from_millis(200);

/// Where a shard without a checkpoint starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// The oldest record.
    TrimHorizon,
    /// Only records put from now on.
    Latest,
    /// Records from this time (seconds since the epoch).
    AtTimestamp(f64),
}

/// Where one shard is read.
pub struct ShardReader {
    shard: String,
    iterator: Option<String>,
    last_read: Option<String>,
    next_read: Instant,
    caught_up: bool,
    closed: bool,
}

impl ShardReader {
    /// Starts after the shard's checkpoint, or at the mapping's starting position.
    pub async fn open(ctx: &Ctx, shard: &str) -> Result<ShardReader, Error> {
        let last_read = ctx.checkpoints.get(shard);
        if last_read.as_deref() == Some(SHARD_END) {
            // Closed and done in an earlier run.
            let (next_read, caught_up, closed) = (Instant::now(), true, true);
            return Ok(ShardReader {
                shard: shard.to_string(),
                iterator: None,
                last_read,
                next_read,
                caught_up,
                closed,
            });
        }
        let iterator = iterator_after(ctx, shard, last_read.as_deref()).await?;
        let (next_read, caught_up, closed) = (Instant::now(), false, false);
        Ok(ShardReader { shard: shard.to_string(), iterator, last_read, next_read, caught_up, closed })
    }

    /// When the next read may start.
    pub fn next_read(&self) -> Instant {
        self.next_read
    }

    /// True when the last read found nothing new and the shard is at its tip (or closed).
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// True when the shard is closed (split or merged) and every record of it has been read.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// One GetRecords of at most `limit` records, when its turn has come; an empty list otherwise.
    /// Only an error that no wait can fix (the stream is gone, reading is denied) ends the shard.
    pub async fn read(&mut self, ctx: &Ctx, limit: usize) -> Result<Vec<Record>, Error> {
        let now = Instant::now();
        if now < self.next_read || limit == 0 {
            return Ok(Vec::new());
        }
        let Some(it) = self.iterator.clone() else {
            // A closed shard read to its end.
            (self.caught_up, self.closed) = (true, true);
            return Ok(Vec::new());
        };
        let limit = limit.min(10_000) as i32;
        let page = match ctx.clients.kinesis.get_records().shard_iterator(it).limit(limit).send().await {
            Ok(page) => page,
            Err(e) => {
                let err = Error::aws("GetRecords", format!("{}/{}", ctx.outputs.stream_name, self.shard), e);
                self.next_read = now + IDLE_POLL;
                return self.failed(ctx, err).await.map(|()| Vec::new());
            }
        };
        let behind = page.millis_behind_latest().unwrap_or(0);
        ctx.stats.set_lag(&self.shard, behind);
        let records = page.records;
        self.caught_up = records.is_empty() && behind == 0;
        if let Some(r) = records.last() {
            self.last_read = Some(r.sequence_number().to_string());
        }
        self.iterator = page.next_shard_iterator;
        self.next_read = now + if records.is_empty() { IDLE_POLL } else { MIN_READ_GAP };
        Ok(records)
    }

    /// What a failed read means: a fresh iterator, an error that ends the shard, or a wait.
    async fn failed(&mut self, ctx: &Ctx, err: Error) -> Result<(), Error> {
        match err.code() {
            Some("ExpiredIteratorException") => {
                self.iterator = iterator_after(ctx, &self.shard, self.last_read.as_deref()).await?;
                Ok(())
            }
            // The shard's read allowance is shared with other consumers: wait, count, read again.
            Some("ProvisionedThroughputExceededException") => {
                ctx.stats.read_throttled();
                Ok(())
            }
            _ if err.disposition() == Disposition::Fatal => Err(err),
            _ => {
                ctx.stats.error(err.to_string());
                Ok(())
            }
        }
    }
}

/// An iterator after `seq`, or at the mapping's starting position.
async fn iterator_after(ctx: &Ctx, shard: &str, seq: Option<&str>) -> Result<Option<String>, Error> {
    let stream = &ctx.outputs.stream_name;
    let req = ctx.clients.kinesis.get_shard_iterator().stream_name(stream).shard_id(shard);
    let req = match (seq, &ctx.settings.start) {
        (Some(seq), _) => req.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).starting_sequence_number(seq),
        (None, Start::TrimHorizon) => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
        (None, Start::Latest) => req.shard_iterator_type(ShardIteratorType::Latest),
        (None, Start::AtTimestamp(t)) => req
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(aws_smithy_types::DateTime::from_secs_f64(*t)),
    };
    let out = req.send().await.map_err(|e| Error::aws("GetShardIterator", format!("{stream}/{shard}"), e))?;
    Ok(out.shard_iterator)
}

/// A Kinesis record as the event source mapping puts it into the event.
pub fn event_record(record: &Record, shard_id: &str, outputs: &Outputs, role_arn: &str) -> crate::process::Record {
    use base64::Engine;
    let arrival = record.approximate_arrival_timestamp().map_or(0.0, |t| t.as_secs_f64());
    crate::process::Record {
        kinesis: KinesisData {
            kinesis_schema_version: "1.0".into(),
            partition_key: record.partition_key().unwrap_or_default().to_string(),
            sequence_number: record.sequence_number().to_string(),
            data: base64::engine::general_purpose::STANDARD.encode(record.data().as_ref()),
            // Lambda reports arrival times with millisecond precision.
            approximate_arrival_timestamp: (arrival * 1000.0).round() / 1000.0,
            encryption_type: (record.encryption_type() == Some(&EncryptionType::Kms)).then(|| "KMS".to_string()),
        },
        event_source: "aws:kinesis".into(),
        event_version: "1.0".into(),
        event_id: format!("{shard_id}:{}", record.sequence_number()),
        event_name: "aws:kinesis:record".into(),
        invoke_identity_arn: role_arn.to_string(),
        aws_region: outputs.region.clone(),
        event_source_arn: outputs.stream_arn.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::Event;
    use aws_sdk_kinesis::primitives::{Blob, DateTime};

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
        let record = Record::builder()
            .sequence_number("49590338271490256608559692538361571095921575989136588898")
            .partition_key("1")
            .data(Blob::new("Hello, this is a test.".as_bytes()))
            .approximate_arrival_timestamp(DateTime::from_millis(1_545_084_650_987))
            .build()
            .expect("valid record");
        let outputs = Outputs {
            stream_name: "lambda-stream".into(),
            stream_arn: "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream".into(),
            table_name: "t".into(),
            function_name: "f".into(),
            region: "us-east-2".into(),
            producer_user: "u".into(),
            rejected_table: "r".into(),
        };
        let role = "arn:aws:iam::123456789012:role/lambda-role";
        let event = Event { records: vec![event_record(&record, "shardId-000000000006", &outputs, role)] };
        let ours = serde_json::to_string(&event).expect("json");
        let sample: String = AWS_SAMPLE_EVENT.split_whitespace().collect();
        assert_eq!(ours, sample, "same fields, same order, same values");
    }

    #[test]
    fn event_record_has_the_shape_lambda_sends() {
        let record = Record::builder()
            .sequence_number("49590338271490256608559692538361571095921575989136588898")
            .partition_key("pk")
            .data(Blob::new("hello 🌏".as_bytes()))
            .approximate_arrival_timestamp(DateTime::from_millis(1_545_084_650_987))
            .encryption_type(EncryptionType::Kms)
            .build()
            .expect("valid record");
        let outputs = Outputs {
            stream_name: "s".into(),
            stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/s".into(),
            table_name: "t".into(),
            function_name: "f".into(),
            region: "us-east-1".into(),
            producer_user: "u".into(),
            rejected_table: "r".into(),
        };
        let event = Event {
            records: vec![event_record(&record, "shardId-000000000006", &outputs, "arn:aws:iam::123456789012:role/r")],
        };
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
