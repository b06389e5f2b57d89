//! Reading one shard with GetRecords, politely: from a position (trim horizon, latest, a time, a
//! sequence number), one call at a time and no sooner than the pace allows, a throttled shard left
//! alone longer after each throttle, an expired iterator renewed after the last record read.
//! Shared by `stream local` (as the event source mapping reads) and `stream tail`.
//! <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html>

use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::{Record, ShardIteratorType};

use crate::error::Error;

/// GetRecords returns at most 10,000 records per call.
pub const MAX_RECORDS_PER_READ: usize = 10_000;
/// The longest a throttled shard is left alone before the next read.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Where reading a shard starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Position {
    /// The oldest record the stream still holds.
    TrimHorizon,
    /// Only records put from now on.
    Latest,
    /// Records that arrived at or after this time (seconds since the epoch).
    AtTimestamp(f64),
    /// This record and those after it.
    AtSequence(String),
    /// The records after this one.
    AfterSequence(String),
}

/// How often a shard may be read: `busy` after a read that returned records, `idle` after one that
/// returned none (both at least 200 ms: Kinesis allows five reads per second per shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Gap after a read that returned records.
    pub busy: Duration,
    /// Gap after an empty read or a failed one.
    pub idle: Duration,
}

/// Gets an iterator at `position` (None: the shard is closed and read to its end).
pub async fn shard_iterator(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
    position: &Position,
) -> Result<Option<String>, Error> {
    let req = client.get_shard_iterator().stream_name(stream).shard_id(shard);
    let req = match position {
        Position::TrimHorizon => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
        Position::Latest => req.shard_iterator_type(ShardIteratorType::Latest),
        Position::AtTimestamp(t) => req
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(aws_smithy_types::DateTime::from_secs_f64(*t)),
        Position::AtSequence(seq) => {
            req.shard_iterator_type(ShardIteratorType::AtSequenceNumber).starting_sequence_number(seq)
        }
        Position::AfterSequence(seq) => {
            req.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).starting_sequence_number(seq)
        }
    };
    let out = req.send().await.map_err(|e| Error::aws("GetShardIterator", format!("{stream}/{shard}"), e))?;
    Ok(out.shard_iterator)
}

/// One shard being read.
pub struct ShardReader {
    client: aws_sdk_kinesis::Client,
    stream: String,
    shard: String,
    start: Position,
    pace: Pace,
    iterator: Option<String>,
    last_read: Option<String>,
    next_read: Instant,
    backoff: Duration,
    behind_ms: i64,
    caught_up: bool,
    closed: bool,
}

impl ShardReader {
    /// Starts reading `shard` at `start`.
    pub async fn open(
        client: &aws_sdk_kinesis::Client,
        stream: &str,
        shard: &str,
        start: Position,
        pace: Pace,
    ) -> Result<ShardReader, Error> {
        let iterator = shard_iterator(client, stream, shard, &start).await?;
        Ok(ShardReader {
            client: client.clone(),
            stream: stream.to_string(),
            shard: shard.to_string(),
            start,
            pace,
            iterator,
            last_read: None,
            next_read: Instant::now(),
            backoff: pace.idle,
            behind_ms: 0,
            caught_up: false,
            closed: false,
        })
    }

    /// A reader of a shard already read to its end: it reads nothing and is closed.
    pub fn finished(client: &aws_sdk_kinesis::Client, stream: &str, shard: &str) -> ShardReader {
        let pace = Pace { busy: Duration::ZERO, idle: Duration::ZERO };
        ShardReader {
            client: client.clone(),
            stream: stream.to_string(),
            shard: shard.to_string(),
            start: Position::TrimHorizon,
            pace,
            iterator: None,
            last_read: None,
            next_read: Instant::now(),
            backoff: Duration::ZERO,
            behind_ms: 0,
            caught_up: true,
            closed: true,
        }
    }

    /// The shard's id.
    pub fn shard(&self) -> &str {
        &self.shard
    }

    /// When the next read may start.
    pub fn next_read(&self) -> Instant {
        self.next_read
    }

    /// How far behind the shard's tip the last read was, in milliseconds.
    pub fn millis_behind(&self) -> i64 {
        self.behind_ms
    }

    /// True when the last read found nothing new and the shard is at its tip (or closed).
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// True when the shard is closed (split or merged) and every record of it has been read.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// One GetRecords of at most `limit` records when its turn has come; an empty list otherwise.
    /// A failed read is returned after the next one is put off (longer after each throttle); an
    /// expired iterator is renewed after the last record read, not returned.
    pub async fn read(&mut self, limit: usize) -> Result<Vec<Record>, Error> {
        let now = Instant::now();
        if now < self.next_read || limit == 0 {
            return Ok(Vec::new());
        }
        let Some(it) = self.iterator.clone() else {
            (self.caught_up, self.closed) = (true, true);
            return Ok(Vec::new());
        };
        let limit = limit.min(MAX_RECORDS_PER_READ) as i32;
        let page = match self.client.get_records().shard_iterator(it).limit(limit).send().await {
            Ok(page) => page,
            Err(e) => {
                return self.failed(now, Error::aws("GetRecords", format!("{}/{}", self.stream, self.shard), e)).await;
            }
        };
        self.backoff = self.pace.idle;
        self.behind_ms = page.millis_behind_latest().unwrap_or(0);
        let records = page.records;
        self.caught_up = records.is_empty() && self.behind_ms == 0;
        if let Some(r) = records.last() {
            self.last_read = Some(r.sequence_number().to_string());
        }
        self.iterator = page.next_shard_iterator;
        self.next_read = now + if records.is_empty() { self.pace.idle } else { self.pace.busy };
        Ok(records)
    }

    /// Puts the next read off after a failure: a renewed iterator now, a throttled shard after a
    /// backoff that doubles each time (up to 8 s), anything else after the idle gap.
    async fn failed(&mut self, now: Instant, err: Error) -> Result<Vec<Record>, Error> {
        match err.code() {
            Some("ExpiredIteratorException") => {
                let from = match &self.last_read {
                    Some(seq) => Position::AfterSequence(seq.clone()),
                    None => self.start.clone(),
                };
                self.iterator = shard_iterator(&self.client, &self.stream, &self.shard, &from).await?;
                Ok(Vec::new())
            }
            Some("ProvisionedThroughputExceededException") => {
                self.next_read = now + self.backoff;
                self.backoff = (self.backoff * 2).clamp(Duration::from_millis(200), MAX_BACKOFF);
                Err(err)
            }
            _ => {
                self.next_read = now + self.pace.idle;
                Err(err)
            }
        }
    }
}
