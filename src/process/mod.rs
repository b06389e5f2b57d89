//! The function: `handle_batch` turns one Kinesis batch into table writes, quarantines what can
//! never be written, and returns the response Lambda needs. `lambda::run_lambda` wires it to the
//! Runtime API; `stream local` calls the same `handle_batch`.
//! Decoding a record is `tweet`'s job (and `kpl`'s for aggregates); writes go through `store`.

pub mod event;
pub mod lambda;
pub mod metrics;
pub mod store;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use futures::StreamExt;
use rand::Rng;
use serde::Serialize;

pub use event::{Event, Record, Response};
pub use store::{Attrs, DynamoStore, Failure, MemoryStore, Store, StoreError, Target};

use crate::kpl;
use crate::tweet::{Item, MAX_ITEM_BYTES, attr, item_from_payload};
use store::rejected_attr;

/// DynamoDB BatchWriteItem takes at most 25 requests per call.
pub const MAX_BATCH_WRITE: usize = 25;
/// Attempts of one chunk before its records are reported as failed (UnprocessedItems, throttling).
pub const MAX_WRITE_ATTEMPTS: u32 = 8;
/// Time kept back from the invocation's deadline to send the response.
pub const DEADLINE_RESERVE: Duration = Duration::from_millis(500);
/// BatchWriteItem calls in flight at once, by default.
pub const DEFAULT_WRITE_CONCURRENCY: usize = 8;
/// Payload bytes kept in a quarantine item: room for the other attributes under 400 KB.
pub const MAX_QUARANTINED_PAYLOAD: usize = MAX_ITEM_BYTES - 8 * 1024;

const BACKOFF_BASE: Duration = Duration::from_millis(50);
const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// How one invocation runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// When Lambda stops the invocation.
    pub deadline: Instant,
    /// BatchWriteItem calls in flight at once.
    pub concurrency: usize,
}

impl Options {
    /// Options with `timeout` from now and the default concurrency.
    pub fn within(timeout: Duration) -> Self {
        Options { deadline: Instant::now() + timeout, concurrency: DEFAULT_WRITE_CONCURRENCY }
    }
}

/// What one invocation did, for the summary line and the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct BatchStats {
    /// Kinesis records in the event.
    pub records: usize,
    /// User records after KPL deaggregation.
    pub user_records: usize,
    /// Items written to the table.
    pub written: usize,
    /// User records dropped because a later record of the batch had the same key.
    pub duplicates: usize,
    /// Poison records written to quarantine.
    pub quarantined: usize,
    /// Resends of chunks (UnprocessedItems, throttling, 5xx).
    pub retries: usize,
    /// Records from the first failed one on, which Lambda will deliver again.
    pub not_done: usize,
    /// Earliest arrival time in the batch (seconds since the epoch), for the lag metric.
    pub oldest_arrival: f64,
}

/// A user record that can never be written, kept with what it takes to find and replay it.
struct Poison<'a> {
    pos: usize,
    sub: Option<usize>,
    partition_key: &'a str,
    payload: &'a [u8],
    reason: String,
}

/// Processes one batch: decodes every record in order (deaggregating KPL aggregates), quarantines
/// poison records, writes the items in chunks of 25 with duplicate keys removed (the later record
/// wins), several chunks at once, and returns the response Lambda needs.
///
/// Lambda checkpoints at the lowest sequence number reported and delivers everything from it again,
/// so the response names only the first record whose write (or quarantine) did not make it; puts are
/// keyed, so what is delivered twice overwrites itself.
/// <https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html>
/// The third value is set when the function cannot work at all (no table, no credentials, no
/// permission): Lambda should see an invocation error then, not a partial response.
pub async fn handle_batch<S: Store>(
    event: &Event,
    store: &S,
    opts: &Options,
) -> (Response, BatchStats, Option<String>) {
    let records = &event.records;
    let mut stats = BatchStats { records: records.len(), ..Default::default() };
    stats.oldest_arrival = records
        .iter()
        .map(|r| r.kinesis.approximate_arrival_timestamp)
        .filter(|t| *t > 0.0)
        .fold(f64::INFINITY, f64::min);
    if !stats.oldest_arrival.is_finite() {
        stats.oldest_arrival = 0.0;
    }

    // Decode. Payloads are decoded into one buffer per record, kept for quarantine.
    let payloads: Vec<Option<Vec<u8>>> =
        records.iter().map(|r| base64::engine::general_purpose::STANDARD.decode(&r.kinesis.data).ok()).collect();
    let mut items: Vec<(usize, Item)> = Vec::with_capacity(records.len());
    let mut poison: Vec<Poison<'_>> = Vec::new();
    for (pos, (record, payload)) in records.iter().zip(&payloads).enumerate() {
        let pk = record.kinesis.partition_key.as_str();
        let Some(payload) = payload else {
            let raw = record.kinesis.data.as_bytes();
            poison.push(Poison {
                pos,
                sub: None,
                partition_key: pk,
                payload: raw,
                reason: "data is not base64".into(),
            });
            continue;
        };
        if !kpl::is_aggregate(payload) {
            stats.user_records += 1;
            match item_from_payload(payload) {
                Ok(item) => items.push((pos, item)),
                Err(why) => poison.push(Poison { pos, sub: None, partition_key: pk, payload, reason: why.to_string() }),
            }
            continue;
        }
        // KPL aggregates carry many user records under one sequence number: a failure in any
        // of them can only point at the parent. Lambda does not deaggregate; we do.
        match kpl::deaggregate(payload) {
            Err(why) => poison.push(Poison { pos, sub: None, partition_key: pk, payload, reason: why.to_string() }),
            Ok(subs) => {
                stats.user_records += subs.len();
                for (i, sub) in subs.iter().enumerate() {
                    match item_from_payload(sub.data) {
                        Ok(item) => items.push((pos, item)),
                        Err(why) => poison.push(Poison {
                            pos,
                            sub: Some(i),
                            partition_key: sub.partition_key,
                            payload: sub.data,
                            reason: why.to_string(),
                        }),
                    }
                }
            }
        }
    }
    let survivors = dedupe_keep_last(&items);
    stats.duplicates = items.len() - survivors.len();

    // Write units: chunks of items and chunks of quarantine records, each with batch positions.
    let now = chrono::Utc::now();
    let mut units: Vec<(Target, Vec<(usize, Attrs)>)> = Vec::new();
    let mut item_attrs: Vec<(usize, Attrs)> = Vec::with_capacity(survivors.len());
    let mut items = items.into_iter().map(Some).collect::<Vec<_>>();
    for i in survivors {
        if let Some((pos, item)) = items[i].take() {
            item_attrs.push((pos, into_attributes(item)));
        }
    }
    let mut rest = item_attrs.into_iter().peekable();
    while rest.peek().is_some() {
        units.push((Target::Events, rest.by_ref().take(MAX_BATCH_WRITE).collect()));
    }
    for p in &poison {
        let record = &records[p.pos];
        tracing::warn!(
            shard = record.shard_id(),
            sequence_number = %record.kinesis.sequence_number,
            sub_record = p.sub,
            reason = %p.reason,
            "record quarantined"
        );
    }
    let quarantined: Vec<(usize, Attrs)> =
        poison.iter().map(|p| (p.pos, quarantine_item(&records[p.pos], p, now))).collect();
    let mut rest = quarantined.into_iter().peekable();
    while rest.peek().is_some() {
        units.push((Target::Rejected, rest.by_ref().take(MAX_BATCH_WRITE).collect()));
    }

    // Write, several chunks at once. Keys are unique in the batch after dedupe, so no two
    // chunks touch the same key and order per key is kept.
    let results: Vec<(Target, ChunkResult)> = futures::stream::iter(units.iter())
        .map(|(target, unit)| async move { (*target, write_with_retries(store, *target, unit, opts.deadline).await) })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut first_failed: Option<usize> = None;
    let mut fatal = None;
    let mut refused: Vec<(usize, String)> = Vec::new();
    let mut fail_at = |pos: usize| first_failed = Some(first_failed.map_or(pos, |f: usize| f.min(pos)));
    for (target, r) in results {
        match target {
            Target::Events => stats.written += r.written,
            Target::Rejected => stats.quarantined += r.written,
        }
        stats.retries += r.retries;
        if let Some(pos) = r.failed {
            fail_at(pos);
        }
        fatal = fatal.or(r.fatal);
        match target {
            Target::Events => refused.extend(r.refused),
            // The quarantine itself refused the record: report it, so it is delivered again.
            Target::Rejected => r.refused.iter().for_each(|(pos, _)| fail_at(*pos)),
        }
    }

    // Items DynamoDB refused one by one are poison too: quarantine their records.
    if !refused.is_empty() && fatal.is_none() {
        let extra: Vec<(usize, Attrs)> = refused
            .iter()
            .map(|(pos, why)| {
                let record = &records[*pos];
                let payload = payloads[*pos].as_deref().unwrap_or_default();
                let p = Poison {
                    pos: *pos,
                    sub: None,
                    partition_key: &record.kinesis.partition_key,
                    payload,
                    reason: format!("DynamoDB refused the item: {why}"),
                };
                tracing::warn!(shard = record.shard_id(), sequence_number = %record.kinesis.sequence_number, reason = %p.reason, "record quarantined");
                (*pos, quarantine_item(record, &p, now))
            })
            .collect();
        for unit in extra.chunks(MAX_BATCH_WRITE) {
            let r = write_with_retries(store, Target::Rejected, unit, opts.deadline).await;
            stats.quarantined += r.written;
            stats.retries += r.retries;
            r.failed.into_iter().chain(r.refused.iter().map(|(p, _)| *p)).for_each(&mut fail_at);
            fatal = fatal.or(r.fatal);
        }
    }

    let mut response = Response::default();
    if let Some(pos) = first_failed {
        stats.not_done = records.len() - pos;
        response.add_failure(records[pos].kinesis.sequence_number.clone());
    }
    (response, stats, fatal)
}

/// Indices of `items` to write: for each key, the last occurrence (the highest sequence number),
/// in batch order. Sorting indices by borrowed keys avoids copying any key.
fn dedupe_keep_last(items: &[(usize, Item)]) -> Vec<usize> {
    let key = |i: usize| (items[i].1.username.as_str(), items[i].1.id.as_str());
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| key(a).cmp(&key(b)).then(a.cmp(&b)));
    let mut keep: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|&(n, &i)| order.get(n + 1).is_none_or(|&next| key(next) != key(i)))
        .map(|(_, &i)| i)
        .collect();
    keep.sort_unstable();
    keep
}

/// An item as DynamoDB attributes (moves the strings).
pub fn into_attributes(item: Item) -> Attrs {
    Attrs::from([
        (attr::USERNAME.to_string(), AttributeValue::S(item.username)),
        (attr::ID.to_string(), AttributeValue::S(item.id)),
        (attr::TIMESTAMP.to_string(), AttributeValue::S(item.timestamp)),
        (attr::MESSAGE.to_string(), AttributeValue::S(item.message)),
    ])
}

/// The quarantine item of a poison record: where it came from, why, and its bytes.
fn quarantine_item(record: &Record, p: &Poison<'_>, now: chrono::DateTime<chrono::Utc>) -> Attrs {
    let s = |v: &str| AttributeValue::S(v.to_string());
    let sequence = match p.sub {
        Some(i) => format!("{}#{i:05}", record.kinesis.sequence_number),
        None => record.kinesis.sequence_number.clone(),
    };
    let arrival = crate::tweet::iso_millis(record.kinesis.approximate_arrival_timestamp);
    let kept = &p.payload[..p.payload.len().min(MAX_QUARANTINED_PAYLOAD)];
    let shard = if record.shard_id().is_empty() { "unknown" } else { record.shard_id() };
    let mut item = Attrs::from([
        (rejected_attr::SHARD.to_string(), s(shard)),
        (rejected_attr::SEQUENCE.to_string(), AttributeValue::S(sequence)),
        (rejected_attr::REASON.to_string(), s(&p.reason)),
        (rejected_attr::PARTITION_KEY.to_string(), s(if p.partition_key.is_empty() { "-" } else { p.partition_key })),
        (rejected_attr::ARRIVAL.to_string(), AttributeValue::S(arrival)),
        (rejected_attr::QUARANTINED_AT.to_string(), s(&now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())),
        (rejected_attr::PAYLOAD.to_string(), AttributeValue::B(Blob::new(kept))),
        (rejected_attr::PAYLOAD_BYTES.to_string(), AttributeValue::N(p.payload.len().to_string())),
    ]);
    if !record.event_source_arn.is_empty() {
        item.insert(rejected_attr::SOURCE.to_string(), s(&record.event_source_arn));
    }
    if kept.len() < p.payload.len() {
        // A payload over the item limit cannot be kept whole; the record stays findable in the
        // stream by shard and sequence number until the stream's retention ends.
        item.insert(rejected_attr::TRUNCATED.to_string(), AttributeValue::Bool(true));
    }
    item
}

/// What writing one chunk came to.
#[derive(Debug, Default)]
struct ChunkResult {
    written: usize,
    retries: usize,
    /// Lowest batch position among the items not written (transient failures).
    failed: Option<usize>,
    /// Items DynamoDB refused on their own: (batch position, why).
    refused: Vec<(usize, String)>,
    /// The function cannot work at all.
    fatal: Option<String>,
}

/// Writes one chunk, resending what comes back unprocessed (or throttled, or 5xx) with exponential
/// backoff and jitter, while the deadline leaves room to answer. When DynamoDB refuses the chunk
/// (ValidationException), each item is tried alone to find the ones it refuses.
async fn write_with_retries<S: Store>(
    store: &S,
    target: Target,
    unit: &[(usize, Attrs)],
    deadline: Instant,
) -> ChunkResult {
    let mut result = ChunkResult::default();
    let all: Vec<usize> = (0..unit.len()).collect();
    let (pending, error) = attempt(store, target, unit, all, deadline, &mut result.retries).await;
    let mut left = pending;
    match error {
        Some(e) if e.failure == Failure::Fatal => result.fatal = Some(e.message),
        Some(e) if e.failure == Failure::Refused => {
            let mut still = Vec::new();
            for i in left {
                match attempt(store, target, unit, vec![i], deadline, &mut result.retries).await {
                    (_, Some(e)) if e.failure == Failure::Refused => result.refused.push((unit[i].0, e.message)),
                    (_, Some(e)) if e.failure == Failure::Fatal => {
                        result.fatal = Some(e.message);
                        still.push(i);
                    }
                    (p, _) => still.extend(p),
                }
            }
            left = still;
        }
        _ => {}
    }
    result.written = unit.len() - left.len() - result.refused.len();
    result.failed = left.iter().map(|&i| unit[i].0).min();
    result
}

/// Sends `pending` (indices into `unit`) until all are written, the attempts or the time run out, or
/// an error that retrying cannot fix. Returns what is left and that error.
async fn attempt<S: Store>(
    store: &S,
    target: Target,
    unit: &[(usize, Attrs)],
    mut pending: Vec<usize>,
    deadline: Instant,
    retries: &mut usize,
) -> (Vec<usize>, Option<StoreError>) {
    for n in 0..MAX_WRITE_ATTEMPTS {
        if n > 0 {
            let delay = backoff(n);
            if Instant::now() + delay + DEADLINE_RESERVE >= deadline {
                tracing::warn!(left = pending.len(), "deadline near: leaving the rest to Lambda's retry");
                break;
            }
            *retries += 1;
            tokio::time::sleep(delay).await;
        }
        let refs: Vec<&Attrs> = pending.iter().map(|&i| &unit[i].1).collect();
        match store.write(target, &refs).await {
            Ok(left) if left.is_empty() => return (Vec::new(), None),
            Ok(left) => {
                pending = left.iter().filter_map(|&j| pending.get(j).copied()).collect();
                tracing::info!(unprocessed = pending.len(), attempt = n, "BatchWriteItem left items unprocessed");
            }
            Err(e) if e.retryable() => {
                tracing::warn!(error = %e.message, attempt = n, "BatchWriteItem failed; retrying")
            }
            Err(e) => {
                tracing::error!(error = %e.message, "BatchWriteItem failed");
                return (pending, Some(e));
            }
        }
    }
    (pending, None)
}

/// Full-jitter exponential backoff: a random delay between half and all of min(cap, base · 2^attempt).
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE.saturating_mul(1 << attempt.min(16)).min(BACKOFF_CAP);
    let millis = ceiling.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(millis / 2..=millis.max(1)))
}
#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as B64;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A store that records every call and answers from a script: per call index, how many items to
    /// leave unprocessed, or an error to return.
    #[derive(Default)]
    struct ScriptedStore {
        calls: Mutex<Vec<(Target, Vec<Attrs>)>>,
        unprocessed: Mutex<HashMap<usize, usize>>,
        errors: Mutex<HashMap<usize, Failure>>,
    }

    impl Store for ScriptedStore {
        async fn write(&self, target: Target, items: &[&Attrs]) -> Result<Vec<usize>, StoreError> {
            let mut calls = self.calls.lock().expect("lock");
            let n = calls.len();
            calls.push((target, items.iter().map(|i| (*i).clone()).collect()));
            if let Some(&failure) = self.errors.lock().expect("lock").get(&n) {
                return Err(StoreError { message: "boom".into(), failure });
            }
            let left = self.unprocessed.lock().expect("lock").get(&n).copied().unwrap_or(0);
            Ok((items.len() - left.min(items.len())..items.len()).collect())
        }
    }

    impl ScriptedStore {
        fn ids(&self, call: usize) -> Vec<String> {
            let calls = self.calls.lock().expect("lock");
            calls[call]
                .1
                .iter()
                .map(|a| a.get(attr::ID).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default())
                .collect()
        }
        fn count(&self) -> usize {
            self.calls.lock().expect("lock").len()
        }
    }

    fn record(seq: usize, payload: &[u8]) -> Record {
        let mut r = Record::default();
        r.kinesis.sequence_number = format!("{seq:05}");
        r.kinesis.partition_key = "pk".into();
        r.kinesis.data = B64.encode(payload);
        r.kinesis.approximate_arrival_timestamp = 1_700_000_000.0 + seq as f64;
        r.event_id = format!("shardId-000000000000:{seq:05}");
        r
    }

    fn tweet(id: usize, user: &str, text: &str) -> Vec<u8> {
        serde_json::json!({
            "id_str": id.to_string(), "created_at": "Wed Oct 10 20:19:24 +0000 2018", "text": text,
            "user": {"name": user, "screen_name": user, "id_str": "1"}
        })
        .to_string()
        .into_bytes()
    }

    fn event(records: Vec<Record>) -> Event {
        Event { records }
    }

    fn far() -> Options {
        Options { deadline: Instant::now() + Duration::from_secs(60), concurrency: 1 }
    }

    fn failures(resp: &Response) -> Vec<String> {
        resp.batch_item_failures.iter().filter_map(|f| f.item_identifier.clone()).collect()
    }

    #[tokio::test]
    async fn batch_is_written_in_chunks_of_25() {
        let store = ScriptedStore::default();
        let ev = event((0..60).map(|i| record(i, &tweet(i, "u", "t"))).collect());
        let (resp, stats, _) = handle_batch(&ev, &store, &far()).await;
        assert!(resp.batch_item_failures.is_empty());
        let sizes: Vec<usize> = store.calls.lock().expect("lock").iter().map(|c| c.1.len()).collect();
        assert_eq!(sizes, vec![25, 25, 10]);
        assert_eq!(stats.written, 60);
        assert_eq!(stats.oldest_arrival, 1_700_000_000.0);
    }

    #[tokio::test]
    async fn duplicate_keys_are_written_once_and_the_later_wins() {
        let store = ScriptedStore::default();
        let ev = event(vec![
            record(1, &tweet(7, "u", "first")),
            record(2, &tweet(8, "u", "other")),
            record(3, &tweet(7, "u", "second")),
            record(4, &tweet(7, "v", "same id, other user")),
        ]);
        let (resp, stats, _) = handle_batch(&ev, &store, &far()).await;
        assert!(resp.batch_item_failures.is_empty());
        assert_eq!(store.count(), 1);
        let calls = store.calls.lock().expect("lock");
        let written: Vec<(String, String)> = calls[0]
            .1
            .iter()
            .map(|a| (a[attr::ID].as_s().expect("s").clone(), a[attr::MESSAGE].as_s().expect("s").clone()))
            .collect();
        assert_eq!(
            written,
            vec![
                ("8".into(), "other".into()),
                ("7".into(), "second".into()),
                ("7".into(), "same id, other user".into())
            ]
        );
        assert_eq!(stats.duplicates, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn unprocessed_items_are_resent_alone() {
        let store = ScriptedStore::default();
        store.unprocessed.lock().expect("lock").insert(0, 3);
        let ev = event((0..10).map(|i| record(i, &tweet(i, "u", "t"))).collect());
        let (resp, stats, _) = handle_batch(&ev, &store, &far()).await;
        assert!(resp.batch_item_failures.is_empty());
        assert_eq!(store.count(), 2);
        assert_eq!(store.ids(1), vec!["7", "8", "9"]);
        assert_eq!(stats.retries, 1);
        assert_eq!(stats.written, 10);
    }

    #[tokio::test]
    async fn items_dynamodb_refuses_are_found_one_by_one_and_quarantined() {
        let store = ScriptedStore::default();
        // Call 0: the chunk of 3 is refused; calls 1-3: each item alone, the second refused;
        // call 4: its quarantine.
        store.errors.lock().expect("lock").extend([(0, Failure::Refused), (2, Failure::Refused)]);
        let ev = event((0..3).map(|i| record(i, &tweet(i, "u", "t"))).collect());
        let (resp, stats, fatal) = handle_batch(&ev, &store, &far()).await;
        assert!(resp.batch_item_failures.is_empty() && fatal.is_none());
        assert_eq!((stats.written, stats.quarantined), (2, 1));
        let calls = store.calls.lock().expect("lock");
        assert_eq!(calls.len(), 5);
        assert_eq!(calls[4].0, Target::Rejected);
        let reason = calls[4].1[0][rejected_attr::REASON].as_s().expect("s").clone();
        assert_eq!(reason, "DynamoDB refused the item: boom");
        assert_eq!(calls[4].1[0][rejected_attr::SEQUENCE].as_s().expect("s"), "00001");
    }

    #[tokio::test]
    async fn a_function_that_cannot_work_says_so() {
        let store = ScriptedStore::default();
        store.errors.lock().expect("lock").insert(0, Failure::Fatal);
        let ev = event(vec![record(1, &tweet(1, "u", "t"))]);
        let (_, _, fatal) = handle_batch(&ev, &store, &far()).await;
        assert_eq!(fatal.as_deref(), Some("boom"));
        assert_eq!(store.count(), 1, "no retries of a call that cannot succeed");
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_call_is_retried_and_succeeds() {
        let store = ScriptedStore::default();
        store.errors.lock().expect("lock").insert(0, Failure::Transient);
        let ev = event((0..3).map(|i| record(i, &tweet(i, "u", "t"))).collect());
        let (resp, stats, _) = handle_batch(&ev, &store, &far()).await;
        assert!(resp.batch_item_failures.is_empty());
        assert_eq!(store.count(), 2);
        assert_eq!(stats.written, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_chunk_reports_its_first_record() {
        let store = ScriptedStore::default();
        store.errors.lock().expect("lock").extend((1..=MAX_WRITE_ATTEMPTS as usize).map(|n| (n, Failure::Transient)));
        let ev = event((0..60).map(|i| record(i, &tweet(i, "u", "t"))).collect());
        let (resp, stats, _) = handle_batch(&ev, &store, &far()).await;
        assert_eq!(failures(&resp), vec!["00025"]);
        assert_eq!(stats.written, 35, "the other chunks are written; Lambda's replay overwrites them");
        assert_eq!(stats.not_done, 35);
    }

    #[tokio::test]
    async fn poison_records_are_quarantined_and_the_batch_succeeds() {
        let store = MemoryStore::default();
        let long_key = tweet(5, &"k".repeat(3000), "t");
        let ev = event(vec![
            record(1, &tweet(1, "u", "ok")),
            record(2, b"\xff not utf8"),
            record(3, b"not json"),
            record(4, br#"{"user":{"name":"a"},"created_at":"Wed Oct 10 20:19:24 +0000 2018"}"#),
            record(5, &long_key),
            record(6, &tweet(6, "u", "after")),
        ]);
        let mut bad_b64 = record(7, b"x");
        bad_b64.kinesis.data = "%%%".into();
        let mut ev = ev;
        ev.records.push(bad_b64);
        let (resp, stats, _) = handle_batch(&ev, &store, &far()).await;
        assert!(resp.batch_item_failures.is_empty(), "poison never blocks the shard");
        assert_eq!(stats.written, 2);
        assert_eq!(stats.quarantined, 5);
        let rejected = store.items(Target::Rejected);
        let reason = |seq: &str| {
            rejected[&("shardId-000000000000".to_string(), seq.to_string())][rejected_attr::REASON]
                .as_s()
                .expect("s")
                .clone()
        };
        assert!(reason("00002").starts_with("not UTF-8"));
        assert!(reason("00003").starts_with("not a JSON tweet"));
        assert!(reason("00004").starts_with("no tweet id"));
        assert!(reason("00005").contains("over DynamoDB's key limit"));
        assert_eq!(reason("00007"), "data is not base64");
        let item = &rejected[&("shardId-000000000000".to_string(), "00002".to_string())];
        assert_eq!(item[rejected_attr::PAYLOAD].as_b().expect("b").as_ref(), b"\xff not utf8");
        assert_eq!(item[rejected_attr::ARRIVAL].as_s().expect("s"), "2023-11-14T22:13:22.000Z");
        assert_eq!(item[rejected_attr::PARTITION_KEY].as_s().expect("s"), "pk");
    }

    #[tokio::test(start_paused = true)]
    async fn quarantine_that_cannot_be_written_reports_the_poison_record() {
        let store = ScriptedStore::default();
        // Call 0 writes the items, then the quarantine fails on every attempt.
        store.errors.lock().expect("lock").extend((1..=MAX_WRITE_ATTEMPTS as usize).map(|n| (n, Failure::Transient)));
        let ev = event(vec![record(1, &tweet(1, "u", "ok")), record(2, b"junk"), record(3, &tweet(3, "u", "ok"))]);
        let (resp, _, _) = handle_batch(&ev, &store, &far()).await;
        assert_eq!(failures(&resp), vec!["00002"]);
    }

    #[tokio::test]
    async fn kpl_aggregates_are_deaggregated_and_bad_sub_records_quarantined() {
        let store = MemoryStore::default();
        let (t1, t2, t3) = (tweet(1, "u", "a"), tweet(2, "v", "b"), tweet(3, "w", "c"));
        let good = kpl::aggregate([("u", t1.as_slice()), ("v", t2.as_slice())]);
        let mixed = kpl::aggregate([("w", t3.as_slice()), ("x", b"not json".as_slice())]);
        let mut bad_digest = kpl::aggregate([("y", t1.as_slice())]);
        let n = bad_digest.len();
        bad_digest[n - 1] ^= 0xFF;
        let ev = event(vec![record(1, &good), record(2, &mixed), record(3, &bad_digest)]);
        let (resp, stats, _) = handle_batch(&ev, &store, &far()).await;
        assert!(resp.batch_item_failures.is_empty());
        assert_eq!(stats.user_records, 4, "two aggregates read, the bad one counts as nothing");
        let ids: Vec<String> = store.items(Target::Events).keys().map(|(_, id)| id.clone()).collect();
        assert_eq!(ids.len(), 3);
        let rejected = store.items(Target::Rejected);
        let key = |s: &str| ("shardId-000000000000".to_string(), s.to_string());
        assert!(
            rejected[&key("00002#00001")][rejected_attr::REASON].as_s().expect("s").starts_with("not a JSON tweet")
        );
        assert_eq!(rejected[&key("00002#00001")][rejected_attr::PARTITION_KEY].as_s().expect("s"), "x");
        assert_eq!(
            rejected[&key("00003")][rejected_attr::REASON].as_s().expect("s"),
            "KPL aggregate with a bad MD5 digest"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_sub_record_reports_its_parent() {
        let store = ScriptedStore::default();
        store.errors.lock().expect("lock").extend((0..MAX_WRITE_ATTEMPTS as usize).map(|n| (n, Failure::Transient)));
        let (t1, t2) = (tweet(1, "u", "a"), tweet(2, "v", "b"));
        let agg = kpl::aggregate([("u", t1.as_slice()), ("v", t2.as_slice())]);
        let ev = event(vec![record(9, &agg)]);
        let (resp, _, _) = handle_batch(&ev, &store, &far()).await;
        assert_eq!(failures(&resp), vec!["00009"]);
    }

    #[tokio::test]
    async fn items_left_unprocessed_near_the_deadline_are_reported() {
        let store = ScriptedStore::default();
        store.unprocessed.lock().expect("lock").extend((0..10).map(|n| (n, 1)));
        let ev = event((0..5).map(|i| record(i, &tweet(i, "u", "t"))).collect());
        let opts = Options { deadline: Instant::now() + Duration::from_millis(100), concurrency: 4 };
        let (resp, _, _) = handle_batch(&ev, &store, &opts).await;
        // The last item of the chunk (position 4) stays unprocessed; there is no time to resend it.
        assert_eq!(failures(&resp), vec!["00004"]);
    }

    #[tokio::test]
    async fn ten_thousand_records_in_one_invocation() {
        let store = MemoryStore::default();
        let ev = event((0..10_000).map(|i| record(i, &tweet(i, &format!("u{}", i % 97), "t"))).collect());
        let opts = Options { deadline: Instant::now() + Duration::from_secs(60), concurrency: 8 };
        let (resp, stats, _) = handle_batch(&ev, &store, &opts).await;
        assert!(resp.batch_item_failures.is_empty());
        assert_eq!(stats.written, 10_000);
        assert_eq!(store.items(Target::Events).len(), 10_000);
        assert_eq!(store.calls(), 400);
    }

    /// DynamoStore sends one BatchWriteItem per chunk and maps DynamoDB's UnprocessedItems back to its inputs.
    #[tokio::test]
    async fn dynamo_store_returns_unprocessed_indices() {
        use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        let item = |id: &str| {
            into_attributes(Item { username: "u".into(), id: id.into(), timestamp: "t".into(), message: "m".into() })
        };
        let (a, b) = (item("1"), item("2"));
        let left = WriteRequest::builder()
            .put_request(PutRequest::builder().set_item(Some(b.clone())).build().expect("put"))
            .build();
        let rule = mock!(aws_sdk_dynamodb::Client::batch_write_item)
            .match_requests(|r| r.request_items().and_then(|m| m.get("T")).is_some_and(|reqs| reqs.len() == 2))
            .then_output(move || BatchWriteItemOutput::builder().unprocessed_items("T", vec![left.clone()]).build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]);
        let store = DynamoStore::new(client, "T", None);
        assert_eq!(store.write(Target::Events, &[&a, &b]).await.expect("call succeeds"), vec![1]);
        assert_eq!(rule.num_calls(), 1);
        let err = store.write(Target::Rejected, &[&a]).await.expect_err("no quarantine table");
        assert_eq!(err.failure, Failure::Fatal);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..30 {
            assert!(backoff(attempt) <= BACKOFF_CAP);
        }
        assert!(backoff(1) <= Duration::from_millis(100));
    }

    #[test]
    fn response_serializes_as_lambda_expects() {
        let mut resp = Response::default();
        resp.add_failure("4959");
        assert_eq!(serde_json::to_string(&resp).expect("json"), r#"{"batchItemFailures":[{"itemIdentifier":"4959"}]}"#);
        assert_eq!(serde_json::to_string(&Response::default()).expect("json"), r#"{"batchItemFailures":[]}"#);
    }
}
