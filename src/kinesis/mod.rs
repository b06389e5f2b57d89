//! Kinesis as every command uses it: the limits of PutRecords and of a shard, the record to put,
//! a batcher that closes batches within those limits while carrying whatever travels with each
//! record, the one ListShards loop, and PutRecords with only the failed entries sent again.
//! Which shard a key goes to, and which shard is read after which, is `shards`; reading a shard
//! politely is `reader`.
//! <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html>

pub mod reader;
pub mod shards;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, Shard};
use bytes::Bytes;

use crate::error::Error;
use crate::retry::{self, Policy};

pub use shards::{Lineage, ShardMap, hash_key};

/// PutRecords takes at most 500 records per call.
pub const MAX_RECORDS_PER_CALL: usize = 500;
/// PutRecords takes at most 5 MiB per call, partition keys included.
pub const MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;
/// A record (data plus partition key) holds at most 1 MiB.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Calls of one batch before the entries still failing are given up.
pub const MAX_PUT_ATTEMPTS: u32 = 8;
/// A shard takes at most 1,000 records per second.
pub const SHARD_RECORDS_PER_S: f64 = 1000.0;
/// A shard takes at most 1 MiB per second.
pub const SHARD_BYTES_PER_S: f64 = 1024.0 * 1024.0;

/// One record to put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Partition key (1-256 characters).
    pub key: String,
    /// Payload, shared: each (re)send hands the SDK a reference to it, not a copy.
    pub data: Bytes,
}

impl Entry {
    /// Bytes the record counts against the limits: data plus partition key.
    pub fn size(&self) -> usize {
        self.data.len() + self.key.len()
    }
}

/// What a batch carries: a record to put, and whatever its sender needs back with it.
pub trait Carries {
    /// The record.
    fn entry(&self) -> &Entry;
}

impl Carries for Entry {
    fn entry(&self) -> &Entry {
        self
    }
}

/// Collects items into PutRecords-sized batches (≤ 500 records and ≤ 5 MiB), keeping each
/// record together with what travels with it.
#[derive(Debug)]
pub struct Batcher<T> {
    max_records: usize,
    max_bytes: usize,
    items: Vec<T>,
    bytes: usize,
}

impl<T: Carries> Batcher<T> {
    /// A batcher that closes batches at `max_records` (capped at 500) or 5 MiB.
    pub fn new(max_records: usize) -> Self {
        let max_records = max_records.clamp(1, MAX_RECORDS_PER_CALL);
        Batcher { max_records, max_bytes: MAX_BYTES_PER_CALL, items: Vec::with_capacity(max_records), bytes: 0 }
    }

    /// Closes batches at `max_bytes` instead (capped at 5 MiB; a lone record may still reach 1 MiB).
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes.clamp(1, MAX_BYTES_PER_CALL);
        self
    }

    /// True when no item is waiting.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Adds an item; returns a batch once one is full: the items before this one when it does not
    /// fit with them, or all of them, this one included, when it fills the batch exactly.
    /// A record over 1 MiB is handed back (`Err`): no call could ever accept it.
    pub fn push(&mut self, item: T) -> Result<Option<Vec<T>>, T> {
        let size = item.entry().size();
        if size > MAX_RECORD_BYTES {
            return Err(item);
        }
        let mut full = None;
        if self.items.len() == self.max_records || self.bytes + size > self.max_bytes {
            full = self.take();
        }
        self.bytes += size;
        self.items.push(item);
        if self.items.len() == self.max_records && full.is_none() {
            full = self.take();
        }
        Ok(full)
    }

    /// The items collected so far, if any.
    pub fn take(&mut self) -> Option<Vec<T>> {
        if self.items.is_empty() {
            return None;
        }
        self.bytes = 0;
        Some(std::mem::replace(&mut self.items, Vec::with_capacity(self.max_records)))
    }
}

/// Every shard of the stream. ListShards has no paginator: this is its one `next_token` loop.
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

/// What putting one batch came to.
#[derive(Debug, Default)]
pub struct Put {
    /// Items (indices into the batch) the stream did not accept, with their last error code.
    pub failed: Vec<(usize, String)>,
    /// The last PutRecords call that failed as a whole, in words.
    pub last_error: Option<String>,
    /// PutRecords calls made.
    pub calls: usize,
    /// Entries sent again after a failure.
    pub resent: usize,
    /// A failure no repetition fixes (refused request, missing stream, no permission), if one ended it.
    pub stopped_by: Option<Error>,
}

/// Puts `batch` with PutRecords, sending again only the entries that come back with an
/// `ErrorCode` (throttled, internal failure), at most `MAX_PUT_ATTEMPTS` calls in all.
pub async fn put_records<T: Carries>(client: &aws_sdk_kinesis::Client, stream: &str, batch: &[T]) -> Put {
    let resent = retry::resend(batch.len(), Policy::attempts(MAX_PUT_ATTEMPTS), |indices: Vec<usize>| async move {
        let request = indices
            .iter()
            .map(|&i| {
                let e = batch[i].entry();
                // The data is shared with the batch, not copied: a resend costs a reference count.
                let data = Blob::from_maybe_shared(e.data.clone());
                PutRecordsRequestEntry::builder().partition_key(&e.key).data(data).build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::failed(format!("building PutRecords entries: {e}"), "report this as a bug"))?;
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(request))
            .send()
            .await
            .map_err(|e| Error::aws("PutRecords", stream, e))?;
        if out.failed_record_count.unwrap_or(0) == 0 {
            return Ok(Vec::new());
        }
        // Results come back in request order: keep the entries whose result carries an error.
        Ok(indices.into_iter().zip(out.records).filter_map(|(i, r)| Some((i, r.error_code?))).collect())
    })
    .await;
    Put {
        failed: resent.failed,
        last_error: resent.last_error,
        calls: resent.calls,
        resent: resent.resent_items,
        stopped_by: resent.stopped_by,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
    use aws_sdk_kinesis::types::PutRecordsResultEntry;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn entry(i: usize, size: usize) -> Entry {
        Entry { key: format!("k{i}"), data: vec![b'x'; size].into() }
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
        assert_eq!(batches, vec![5 * (MAX_RECORD_BYTES - 2 + 2)]);
        assert!(batches[0] <= MAX_BYTES_PER_CALL);
        assert_eq!(b.take().map(|v| v.len()), Some(1));
    }

    #[test]
    fn record_over_1_mib_is_handed_back() {
        let mut b = Batcher::new(10);
        assert_eq!(b.push(entry(0, MAX_RECORD_BYTES)).expect_err("too big").data.len(), MAX_RECORD_BYTES);
        assert!(b.push(entry(0, MAX_RECORD_BYTES - 2)).is_ok());
    }

    /// What travels with a record stays with it, whichever batch it lands in.
    #[test]
    fn batches_carry_their_payload() {
        #[derive(Debug)]
        struct Tagged(Entry, u32);
        impl Carries for Tagged {
            fn entry(&self) -> &Entry {
                &self.0
            }
        }
        let mut b = Batcher::new(2);
        assert!(b.is_empty());
        assert!(b.push(Tagged(entry(0, 1), 10)).expect("fits").is_none());
        assert!(!b.is_empty(), "one waits");
        let full = b.push(Tagged(entry(1, 1), 11)).expect("fits").expect("full at 2");
        assert!(b.is_empty() && b.take().is_none(), "a full batch leaves whole");
        assert_eq!(full.iter().map(|t| (t.0.key.as_str(), t.1)).collect::<Vec<_>>(), [("k0", 10), ("k1", 11)]);
    }

    /// ListShards is asked page after page, a page after the first by its token alone (Kinesis
    /// refuses the stream name beside it), until a page has no token; every page's shards count.
    #[tokio::test]
    async fn shards_are_listed_across_pages() {
        use aws_sdk_kinesis::operation::list_shards::ListShardsOutput;
        let shard = |id: &str| Shard::builder().shard_id(id).build().expect("shard");
        let first = mock!(aws_sdk_kinesis::Client::list_shards)
            .match_requests(|r| r.stream_name() == Some("s") && r.next_token().is_none())
            .then_output(move || {
                ListShardsOutput::builder().shards(shard("a")).shards(shard("b")).next_token("t1").build()
            });
        let second = mock!(aws_sdk_kinesis::Client::list_shards)
            .match_requests(|r| r.stream_name().is_none() && r.next_token() == Some("t1"))
            .then_output(move || ListShardsOutput::builder().shards(shard("c")).build());
        let client = mock_client!(aws_sdk_kinesis, RuleMode::Sequential, [&first, &second]);
        let ids: Vec<String> =
            list_shards(&client, "s").await.expect("listed").iter().map(|s| s.shard_id().to_string()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
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
        let batch: Vec<Entry> = (0..4).map(|i| entry(i, 5)).collect();
        let put = put_records(&client, "s", &batch).await;
        assert!(put.failed.is_empty() && put.stopped_by.is_none());
        assert_eq!((put.calls, put.resent), (2, 2));
        assert_eq!(partial.num_calls(), 1);
        assert_eq!(resend.num_calls(), 1);
    }

    /// An entry throttled on every attempt is reported failed, by its index, after MAX_PUT_ATTEMPTS calls.
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
        let put = put_records(&client, "s", &[entry(0, 5)]).await;
        assert_eq!(put.failed, vec![(0, "ProvisionedThroughputExceededException".to_string())]);
        assert_eq!(always.num_calls(), MAX_PUT_ATTEMPTS as usize);
        assert_eq!(put.resent, MAX_PUT_ATTEMPTS as usize - 1);
    }
}
