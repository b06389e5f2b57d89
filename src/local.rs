//! `stream local`: runs the function's handler on this machine over the stack's stream. Reads
//! every shard from TRIM_HORIZON, builds the event Lambda would send, calls the same
//! `process::handle_batch`, and keeps its place per shard (checkpoint = last record done).

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::{EncryptionType, Record, Shard, ShardIteratorType};
use serde::Serialize;

use crate::aws::Clients;
use crate::cli::LocalArgs;
use crate::error::Error;
use crate::process::event::KinesisData;
use crate::process::{BatchStats, DynamoStore, Event, Options, handle_batch};
use crate::shutdown::Shutdown;
use crate::stack::{self, Outputs};
use crate::template::param;

/// Lambda polls each shard about once a second when it is idle.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// The function's timeout in the template; the handler's deadline here.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(60);

/// The summary of `stream local`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LocalOutput {
    /// Shards read.
    pub shards: usize,
    /// Invocations of the handler.
    pub batches: usize,
    /// Records delivered to the handler (retries included).
    pub records: usize,
    /// Items written.
    pub written: usize,
    /// Records dropped as duplicates of a later record in their batch.
    pub duplicates: usize,
    /// Poison records written to quarantine.
    pub quarantined: usize,
    /// Chunk writes resent (UnprocessedItems, throttling, 5xx).
    pub write_retries: usize,
    /// Batches retried from a reported failure.
    pub retried_batches: usize,
    /// Records given up after the mapping's retry limit.
    pub skipped: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// True when Ctrl-C stopped the run.
    pub interrupted: bool,
}

impl LocalOutput {
    /// The error that decides the exit code, if any.
    pub fn problem(&self) -> Option<Error> {
        if self.interrupted {
            Some(Error::Interrupted)
        } else if self.skipped > 0 {
            Some(Error::Partial {
                what: format!("{} records were skipped after the retry limit", self.skipped),
                hint: "run with -v to see why the handler rejected them".into(),
            })
        } else {
            None
        }
    }
}

impl fmt::Display for LocalOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "processed {} records from {} shard(s) in {} batch(es) in {:.2} s: {} items written, {} duplicates dropped, \
             {} quarantined, {} write retries, {} batch retries, {} skipped",
            self.records,
            self.shards,
            self.batches,
            self.seconds,
            self.written,
            self.duplicates,
            self.quarantined,
            self.write_retries,
            self.retried_batches,
            self.skipped
        )
    }
}

/// One shard's reading position.
struct ShardState {
    id: String,
    iterator: Option<String>,
    /// Sequence number of the last record the handler finished.
    checkpoint: Option<String>,
    /// Failed attempts of the current batch.
    attempts: u32,
    idle: bool,
}

/// Lists every shard of the stream. ListShards has no paginator: this is its one `next_token` loop.
pub async fn list_shards(client: &aws_sdk_kinesis::Client, stream: &str) -> Result<Vec<Shard>, Error> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        // With a token, the stream name must be left out.
        let req = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        let out = req.send().await.map_err(|e| Error::aws("ListShards", stream, e))?;
        shards.extend(out.shards.unwrap_or_default());
        token = out.next_token;
        if token.is_none() {
            return Ok(shards);
        }
    }
}

/// A Kinesis record as the event source mapping puts it into the event.
pub fn event_record(record: &Record, shard_id: &str, outputs: &Outputs) -> crate::process::Record {
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
        invoke_identity_arn: String::new(),
        aws_region: outputs.region.clone(),
        event_source_arn: outputs.stream_arn.clone(),
    }
}

/// Reads a number from the stack's parameters.
fn stack_number(params: &HashMap<String, String>, name: &str, default: u32) -> u32 {
    params.get(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn iterator(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
    after: Option<&str>,
    at: Option<&str>,
) -> Result<Option<String>, Error> {
    let mut req = client.get_shard_iterator().stream_name(stream).shard_id(shard);
    req = match (at, after) {
        (Some(seq), _) => req.shard_iterator_type(ShardIteratorType::AtSequenceNumber).starting_sequence_number(seq),
        (None, Some(seq)) => {
            req.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).starting_sequence_number(seq)
        }
        (None, None) => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
    };
    let out = req.send().await.map_err(|e| Error::aws("GetShardIterator", format!("{stream}/{shard}"), e))?;
    Ok(out.shard_iterator)
}

impl LocalArgs {
    /// Checks the flags' meaning before any call.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(n) = self.batch_size
            && !(1..=10_000).contains(&n)
        {
            return Err(Error::usage(
                format!("--batch-size {n} is out of range"),
                "give --batch-size a value from 1 to 10000",
            ));
        }
        Ok(())
    }
}

/// `stream local`: polls every shard in turn, hands each batch to the handler, and on a reported
/// failure reads again from the failed record, up to the mapping's retry limit (as Lambda does).
pub async fn run(
    args: &LocalArgs,
    stack_name: &str,
    clients: &Clients,
    shutdown: Shutdown,
) -> Result<LocalOutput, Error> {
    args.validate()?;
    let found =
        stack::describe(clients, stack_name).await?.ok_or_else(|| Error::StackNotFound { stack: stack_name.into() })?;
    let outputs = stack::load(clients, stack_name).await?;
    let params: HashMap<String, String> = found
        .parameters()
        .iter()
        .filter_map(|p| Some((p.parameter_key()?.to_string(), p.parameter_value()?.to_string())))
        .collect();
    let batch_size = args.batch_size.unwrap_or_else(|| stack_number(&params, param::BATCH_SIZE, 100));
    let max_retries = stack_number(&params, param::MAX_RETRIES, 10);
    let store = DynamoStore::new(clients.dynamodb.clone(), &outputs.table_name, Some(outputs.rejected_table.clone()));
    let kinesis = &clients.kinesis;
    let stream = outputs.stream_name.as_str();

    let started = Instant::now();
    let mut out = LocalOutput::default();
    let mut shards = Vec::new();
    for shard in list_shards(kinesis, stream).await? {
        let id = shard.shard_id().to_string();
        let it = iterator(kinesis, stream, &id, None, None).await?;
        shards.push(ShardState { id, iterator: it, checkpoint: None, attempts: 0, idle: false });
    }
    out.shards = shards.len();

    while !shutdown.is_triggered() {
        let mut progressed = false;
        for shard in shards.iter_mut() {
            let Some(it) = shard.iterator.clone() else {
                shard.idle = true;
                continue;
            };
            let page = kinesis
                .get_records()
                .shard_iterator(it)
                .limit(batch_size as i32)
                .send()
                .await
                .map_err(|e| Error::aws("GetRecords", format!("{stream}/{}", shard.id), e))?;
            let records = page.records();
            if records.is_empty() {
                shard.idle = page.millis_behind_latest().unwrap_or(0) == 0;
                shard.iterator = page.next_shard_iterator().map(str::to_string);
                continue;
            }
            progressed = true;
            shard.idle = false;
            let event = Event { records: records.iter().map(|r| event_record(r, &shard.id, &outputs)).collect() };
            let (response, stats, fatal) = handle_batch(&event, &store, &Options::within(FUNCTION_TIMEOUT)).await;
            if let Some(why) = fatal {
                return Err(Error::failed(
                    format!("the function cannot work: {why}"),
                    "check that the stack's tables exist and the credentials may write them",
                ));
            }
            add(&mut out, &stats);
            let failed = response.batch_item_failures.iter().filter_map(|f| f.item_identifier.clone()).next();
            match failed {
                None => {
                    shard.checkpoint = records.last().map(|r| r.sequence_number().to_string());
                    shard.iterator = page.next_shard_iterator().map(str::to_string);
                    shard.attempts = 0;
                }
                Some(seq) if shard.attempts < max_retries => {
                    // Lambda checkpoints before the failed record and delivers from it again.
                    shard.attempts += 1;
                    out.retried_batches += 1;
                    tracing::warn!(shard = %shard.id, sequence_number = %seq, attempt = shard.attempts, "batch reported a failure; retrying from it");
                    shard.iterator = iterator(kinesis, stream, &shard.id, None, Some(&seq)).await?;
                }
                Some(seq) => {
                    // Retries exhausted: Lambda moves past the batch (to its on-failure destination).
                    let skipped = records.iter().skip_while(|r| r.sequence_number() != seq).count();
                    out.skipped += skipped;
                    tracing::error!(shard = %shard.id, sequence_number = %seq, skipped, "retries exhausted; moving past the batch");
                    shard.checkpoint = records.last().map(|r| r.sequence_number().to_string());
                    shard.iterator = page.next_shard_iterator().map(str::to_string);
                    shard.attempts = 0;
                }
            }
        }
        if args.until_idle && shards.iter().all(|s| s.idle) {
            break;
        }
        if !progressed {
            let mut s = shutdown.clone();
            tokio::select! {
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = s.wait() => {}
            }
        }
    }
    out.interrupted = shutdown.is_triggered();
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

fn add(out: &mut LocalOutput, stats: &BatchStats) {
    out.batches += 1;
    out.records += stats.records;
    out.written += stats.written;
    out.duplicates += stats.duplicates;
    out.quarantined += stats.quarantined;
    out.write_retries += stats.retries;
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::primitives::{Blob, DateTime};

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
        let event = Event { records: vec![event_record(&record, "shardId-000000000006", &outputs)] };
        let json = serde_json::to_value(&event).expect("json");
        let r = &json["Records"][0];
        assert_eq!(r["eventID"], "shardId-000000000006:49590338271490256608559692538361571095921575989136588898");
        assert_eq!(r["eventSource"], "aws:kinesis");
        assert_eq!(r["eventName"], "aws:kinesis:record");
        assert_eq!(r["eventSourceARN"], "arn:aws:kinesis:us-east-1:123456789012:stream/s");
        assert_eq!(r["awsRegion"], "us-east-1");
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
