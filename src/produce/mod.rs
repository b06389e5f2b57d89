//! `stream produce`: tweets from a source into the stack's stream with PutRecords, batched to the
//! service's limits, resending only the entries that came back failed. Tweets come from `source`;
//! the stream's name from `stack`.

pub mod source;

use std::fmt;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use serde::Serialize;

use crate::aws::Clients;
use crate::cli::ProduceArgs;
use crate::error::Error;
use crate::process::backoff;
use crate::shutdown::Shutdown;
use crate::stack;

/// PutRecords takes at most 500 records per call.
pub const MAX_RECORDS_PER_CALL: usize = 500;
/// PutRecords takes at most 5 MiB per call, partition keys included.
pub const MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;
/// A record (data plus partition key) holds at most 1 MiB.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Sends of one batch before the entries still failing are given up.
pub const MAX_PUT_ATTEMPTS: u32 = 8;

/// One record to put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Partition key (1-256 characters).
    pub key: String,
    /// Payload.
    pub data: Vec<u8>,
}

impl Entry {
    /// Bytes the record counts against the limits: data plus partition key.
    pub fn size(&self) -> usize {
        self.data.len() + self.key.len()
    }
}

/// Collects entries into PutRecords-sized batches (≤ 500 records and ≤ 5 MiB).
#[derive(Debug)]
pub struct Batcher {
    max_records: usize,
    entries: Vec<Entry>,
    bytes: usize,
}

impl Batcher {
    /// A batcher that closes batches at `max_records` (capped at 500).
    pub fn new(max_records: usize) -> Self {
        let max_records = max_records.clamp(1, MAX_RECORDS_PER_CALL);
        Batcher { max_records, entries: Vec::with_capacity(max_records), bytes: 0 }
    }

    /// Adds an entry; returns the full batch when this entry does not fit with the others.
    /// An entry over 1 MiB is refused (`Err`): no call could ever accept it.
    pub fn push(&mut self, entry: Entry) -> Result<Option<Vec<Entry>>, Entry> {
        if entry.size() > MAX_RECORD_BYTES {
            return Err(entry);
        }
        let mut full = None;
        if self.entries.len() == self.max_records || self.bytes + entry.size() > MAX_BYTES_PER_CALL {
            full = self.take();
        }
        self.bytes += entry.size();
        self.entries.push(entry);
        if self.entries.len() == self.max_records && full.is_none() {
            full = self.take();
        }
        Ok(full)
    }

    /// The entries collected so far, if any.
    pub fn take(&mut self) -> Option<Vec<Entry>> {
        if self.entries.is_empty() {
            return None;
        }
        self.bytes = 0;
        Some(std::mem::replace(&mut self.entries, Vec::with_capacity(self.max_records)))
    }
}

/// What one batch came to after resending.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// Records the stream accepted.
    pub sent: usize,
    /// Entries resent.
    pub retried: usize,
    /// Entries still failing after the last attempt, with their error code.
    pub failed: Vec<(Entry, String)>,
    /// PutRecords calls made.
    pub calls: usize,
}

/// Puts `entries` with PutRecords, resending only the entries that come back with an `ErrorCode`
/// (throttled or internal failure), with exponential backoff and jitter, at most `MAX_PUT_ATTEMPTS`
/// times. A call that fails as a whole has already been retried by the SDK: it ends the run.
pub async fn put_with_retries(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    entries: Vec<Entry>,
) -> Result<PutOutcome, Error> {
    let mut outcome = PutOutcome::default();
    let mut pending: Vec<(Entry, String)> = entries.into_iter().map(|e| (e, String::new())).collect();
    for attempt in 0..MAX_PUT_ATTEMPTS {
        if pending.is_empty() {
            break;
        }
        if attempt > 0 {
            outcome.retried += pending.len();
            tokio::time::sleep(backoff(attempt)).await;
        }
        let request = pending
            .iter()
            .map(|(e, _)| {
                PutRecordsRequestEntry::builder().partition_key(&e.key).data(Blob::new(e.data.clone())).build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::failed(format!("building PutRecords entries: {e}"), "report this as a bug"))?;
        outcome.calls += 1;
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(request))
            .send()
            .await
            .map_err(|e| Error::aws("PutRecords", stream, e))?;
        if out.failed_record_count.unwrap_or(0) == 0 {
            outcome.sent += pending.len();
            pending.clear();
            break;
        }
        // Results come back in request order: keep the entries whose result carries an error.
        let mut still = Vec::new();
        for ((entry, _), result) in pending.into_iter().zip(out.records) {
            match result.error_code {
                Some(code) => still.push((entry, code)),
                None => outcome.sent += 1,
            }
        }
        pending = still;
    }
    outcome.failed = pending;
    Ok(outcome)
}

/// The summary of `stream produce`.
#[derive(Debug, Clone, Serialize)]
pub struct ProduceOutput {
    /// Stream written to.
    pub stream: String,
    /// Records the stream accepted.
    pub sent: usize,
    /// Entries resent after a failure.
    pub retried: usize,
    /// Records given up after the last attempt (or over 1 MiB).
    pub failed: usize,
    /// PutRecords calls.
    pub calls: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// True when Ctrl-C stopped the run early.
    pub interrupted: bool,
}

impl ProduceOutput {
    /// The error that decides the exit code, if any.
    pub fn problem(&self) -> Option<Error> {
        if self.interrupted {
            Some(Error::Interrupted)
        } else if self.failed > 0 {
            Some(Error::Partial {
                what: format!("{} of {} records were not accepted after retries", self.failed, self.failed + self.sent),
                hint: "the stream is throttling: add shards (`stream deploy --shards N`) or lower --rate".into(),
            })
        } else {
            None
        }
    }
}

impl fmt::Display for ProduceOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = if self.seconds > 0.0 { self.sent as f64 / self.seconds } else { 0.0 };
        write!(
            f,
            "produced {} records to {} in {:.2} s ({:.0} records/s, {} PutRecords calls, {} resent, {} failed){}",
            self.sent,
            self.stream,
            self.seconds,
            rate,
            self.calls,
            self.retried,
            self.failed,
            if self.interrupted { ", interrupted" } else { "" }
        )
    }
}

impl ProduceArgs {
    /// Checks the flags' meaning before any call.
    pub fn validate(&self) -> Result<(), Error> {
        if self.rate == Some(0) {
            return Err(Error::usage(
                "--rate 0 would send nothing",
                "give --rate a number of records per second above 0",
            ));
        }
        Ok(())
    }
}

/// `stream produce`: sends `--count` synthetic tweets, paced by `--rate`, one PutRecords call in
/// flight (the order Kinesis keeps per shard is the order they were made).
pub async fn run(
    args: &ProduceArgs,
    stack_name: &str,
    clients: &Clients,
    shutdown: Shutdown,
) -> Result<ProduceOutput, Error> {
    args.validate()?;
    let outputs = stack::load(clients, stack_name).await?;
    let stream = outputs.stream_name;
    let started = Instant::now();
    // With a rate, batches hold ~100 ms of records so a slow rate still ships promptly.
    let per_batch = args.rate.map_or(MAX_RECORDS_PER_CALL, |r| (r as usize / 10).max(1));
    let mut batcher = Batcher::new(per_batch);
    let mut source = source::Synthetic::new(args.seed);
    let mut out = ProduceOutput {
        stream: stream.clone(),
        sent: 0,
        retried: 0,
        failed: 0,
        calls: 0,
        seconds: 0.0,
        interrupted: false,
    };
    let mut remaining = args.count;
    loop {
        // Fill a batch; what the source still has is not made once Ctrl-C arrives.
        let mut full = None;
        while full.is_none() && remaining > 0 && !shutdown.is_triggered() {
            let tweet = source.next_tweet();
            remaining -= 1;
            match batcher.push(Entry { key: tweet.partition_key().to_string(), data: tweet.to_bytes() }) {
                Ok(batch) => full = batch,
                Err(too_big) => {
                    tracing::warn!(partition_key = %too_big.key, bytes = too_big.size(), "record over 1 MiB");
                    out.failed += 1;
                }
            }
        }
        let Some(batch) = full.or_else(|| batcher.take()) else {
            break;
        };
        if let Some(rate) = args.rate {
            // Pace by records: a batch leaves once the records before it have had their time.
            let due = started + Duration::from_secs_f64((out.sent + out.failed) as f64 / f64::from(rate));
            tokio::time::sleep_until(due.into()).await;
        }
        let result = put_with_retries(&clients.kinesis, &stream, batch).await?;
        out.sent += result.sent;
        out.retried += result.retried;
        out.calls += result.calls;
        for (entry, code) in &result.failed {
            tracing::warn!(partition_key = %entry.key, error_code = %code, "record not accepted after retries");
        }
        out.failed += result.failed.len();
    }
    out.interrupted = remaining > 0 && shutdown.is_triggered();
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
    use aws_sdk_kinesis::types::PutRecordsResultEntry;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn entry(i: usize, size: usize) -> Entry {
        Entry { key: format!("k{i}"), data: vec![b'x'; size] }
    }

    #[test]
    fn batches_close_at_500_records() {
        let mut b = Batcher::new(MAX_RECORDS_PER_CALL);
        let mut batches = Vec::new();
        for i in 0..1203 {
            if let Some(full) = b.push(entry(i, 10)).expect("fits") {
                batches.push(full.len());
            }
        }
        batches.extend(b.take().map(|v| v.len()));
        assert_eq!(batches, vec![500, 500, 203]);
    }

    #[test]
    fn batches_close_before_5_mib() {
        let mut b = Batcher::new(MAX_RECORDS_PER_CALL);
        let mut batches = Vec::new();
        // Six records of 1 MiB minus the key: five fit in 5 MiB, the sixth starts a new batch.
        for i in 0..6 {
            if let Some(full) = b.push(entry(i, MAX_RECORD_BYTES - 2)).expect("fits") {
                batches.push(full.iter().map(Entry::size).sum::<usize>());
            }
        }
        assert_eq!(batches.len(), 1);
        assert!(batches[0] <= MAX_BYTES_PER_CALL);
        assert_eq!(b.take().map(|v| v.len()), Some(1));
    }

    #[test]
    fn record_over_1_mib_is_refused() {
        let mut b = Batcher::new(10);
        assert!(b.push(entry(0, MAX_RECORD_BYTES)).is_err());
        assert!(b.push(entry(0, MAX_RECORD_BYTES - 2)).is_ok());
    }

    fn result_ok(seq: usize) -> PutRecordsResultEntry {
        PutRecordsResultEntry::builder().sequence_number(seq.to_string()).shard_id("shardId-000000000000").build()
    }

    fn result_throttled() -> PutRecordsResultEntry {
        PutRecordsResultEntry::builder()
            .error_code("ProvisionedThroughputExceededException")
            .error_message("Rate exceeded for shard")
            .build()
    }

    /// A reply with two throttled entries of four is followed by a resend of just those two.
    #[tokio::test(start_paused = true)]
    async fn rejected_entries_are_resent_alone() {
        let partial =
            mock!(aws_sdk_kinesis::Client::put_records).match_requests(|r| r.records().len() == 4).then_output(|| {
                PutRecordsOutput::builder()
                    .failed_record_count(2)
                    .records(result_ok(1))
                    .records(result_throttled())
                    .records(result_ok(2))
                    .records(result_throttled())
                    .build()
                    .expect("valid output")
            });
        let resend = mock!(aws_sdk_kinesis::Client::put_records)
            .match_requests(|r| {
                r.records().len() == 2
                    && r.records()[0].partition_key() == Some("k1")
                    && r.records()[1].partition_key() == Some("k3")
            })
            .then_output(|| {
                PutRecordsOutput::builder()
                    .failed_record_count(0)
                    .records(result_ok(3))
                    .records(result_ok(4))
                    .build()
                    .expect("valid output")
            });
        let client = mock_client!(aws_sdk_kinesis, RuleMode::Sequential, [&partial, &resend]);
        let outcome = put_with_retries(&client, "s", (0..4).map(|i| entry(i, 5)).collect()).await.expect("puts");
        assert_eq!(outcome.sent, 4);
        assert_eq!(outcome.retried, 2);
        assert!(outcome.failed.is_empty());
        assert_eq!(partial.num_calls(), 1);
        assert_eq!(resend.num_calls(), 1);
    }

    /// An entry throttled on every attempt is reported failed after MAX_PUT_ATTEMPTS calls.
    #[tokio::test(start_paused = true)]
    async fn attempts_are_bounded() {
        let always = mock!(aws_sdk_kinesis::Client::put_records).then_output(|| {
            PutRecordsOutput::builder()
                .failed_record_count(1)
                .records(result_throttled())
                .build()
                .expect("valid output")
        });
        let client = mock_client!(aws_sdk_kinesis, RuleMode::MatchAny, [&always]);
        let outcome = put_with_retries(&client, "s", vec![entry(0, 5)]).await.expect("puts");
        assert_eq!(outcome.sent, 0);
        assert_eq!(outcome.failed.len(), 1);
        assert_eq!(outcome.failed[0].1, "ProvisionedThroughputExceededException");
        assert_eq!(always.num_calls(), MAX_PUT_ATTEMPTS as usize);
    }
}
