//! The function: `handle` turns one Kinesis batch into table writes in four steps — decode,
//! dedupe, write (the items, and the poison into quarantine), quarantine what DynamoDB refused —
//! and returns one `BatchOutcome`: the response Lambda needs, the counts, and whether the function
//! can work at all. `lambda::run_lambda` wires it to the Runtime API. What a record is, and the item
//! it becomes, is the event schema's to say (`schema`; the KPL aggregate is `kpl`'s); writes go
//! through `store` (BatchWriteItem; conditional PutItem when the schema orders by version), resends
//! through `retry`.

pub mod event;
pub mod lambda;
pub mod metrics;
pub mod store;

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use serde::Serialize;

pub use event::{Batch, BatchRecord, Event, KinesisRef, Record, Response};
pub use store::{Attrs, DynamoStore, MemoryStore, Store, Target};

use crate::dynamo::MAX_BATCH_WRITE;
use crate::error::{Disposition, Error};
use crate::kpl;
use crate::retry::{self, Policy};
use crate::schema::{self, Item, MAX_ITEM_BYTES, Schema, Val};
use store::{Guard, Put, rejected_attr};

/// Calls of one chunk before its records are reported as failed (UnprocessedItems, throttling).
pub const MAX_WRITE_ATTEMPTS: u32 = 8;
/// Time kept back from the invocation's deadline to send the response.
pub const DEADLINE_RESERVE: Duration = Duration::from_millis(500);
/// BatchWriteItem calls in flight at once, by default.
pub const DEFAULT_WRITE_CONCURRENCY: usize = 8;
/// Conditional PutItem calls (one item each) in flight per BatchWriteItem call allowed: a put
/// carries one item where a batch carries 25, so more are in flight for the same throughput.
pub const PUTS_PER_BATCH_SLOT: usize = 4;
/// Payload bytes kept in a quarantine item: room for the other attributes under 400 KB.
pub const MAX_QUARANTINED_PAYLOAD: usize = MAX_ITEM_BYTES - 8 * 1024;

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

    fn policy(&self) -> Policy {
        Policy { max_attempts: MAX_WRITE_ATTEMPTS, deadline: Some((self.deadline, DEADLINE_RESERVE)) }
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
    /// User records dropped because a later record of the batch had the same key (or, when the
    /// schema orders by version, a higher version).
    pub duplicates: usize,
    /// Items not written because the table held a newer version (schemas with a version).
    pub superseded: usize,
    /// Poison records written to quarantine.
    pub quarantined: usize,
    /// Resends of chunks (UnprocessedItems, throttling, 5xx).
    pub retries: usize,
    /// Records from the first failed one on, which Lambda will deliver again.
    pub not_done: usize,
    /// Earliest arrival time in the batch (seconds since the epoch), for the lag metric.
    pub oldest_arrival: f64,
}

/// What `handle_batch` came to.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchOutcome {
    /// The partial batch response: the first record not done, if any.
    pub response: Response,
    /// The counts.
    pub stats: BatchStats,
    /// Set when the function cannot work at all (no table, no credentials, no permission):
    /// Lambda should see an invocation error then, not a partial response.
    pub fatal: Option<String>,
}

/// A user record that can never be written, kept with what it takes to find and replay it.
struct Poison<'a> {
    pos: usize,
    sub: Option<usize>,
    partition_key: Cow<'a, str>,
    payload: Cow<'a, [u8]>,
    reason: String,
}

/// `handle` with the built-in tweets schema.
pub async fn handle_batch<S: Store>(event: &Batch<'_>, store: &S, opts: &Options) -> BatchOutcome {
    handle(event, Schema::tweets(), store, opts).await
}

/// Processes one batch: decodes every record in order (deaggregating KPL aggregates) into the
/// items `schema` makes of them, drops duplicate keys (the later record wins; with a version, the
/// higher version), writes the items — in chunks of 25, several chunks at once, or, when the
/// schema orders by version, one conditional put each — and quarantines the poison records and
/// the items DynamoDB refuses.
///
/// Lambda checkpoints at the lowest sequence number reported and delivers everything from it again,
/// so the response names only the first record whose write (or quarantine) did not make it; puts are
/// keyed, so what is delivered twice overwrites itself.
/// <https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html>
pub async fn handle<S: Store>(event: &Batch<'_>, schema: &Schema, store: &S, opts: &Options) -> BatchOutcome {
    let records = &event.records;
    let decoded = decode(records, schema);
    let (items, duplicates) = dedupe(decoded.items, schema);
    let now = chrono::Utc::now();
    let quarantined: Vec<(usize, Pending)> = decoded.poison.iter().map(|p| quarantine(records, p, now)).collect();

    let names = schema.attribute_names();
    let mut units: Vec<(Target, &[(usize, Pending)])> = Vec::new();
    let ordered = schema.version().is_some();
    if !ordered {
        units.extend(items.chunks(MAX_BATCH_WRITE).map(|c| (Target::Events, c)));
    }
    units.extend(quarantined.chunks(MAX_BATCH_WRITE).map(|c| (Target::Rejected, c)));
    let mut report = write_all(store, &units, names, opts).await;
    if ordered {
        report.absorb(put_newer_all(store, schema, &items, opts).await);
    }

    // Items DynamoDB refused one by one can never be written either: quarantine their records.
    if !report.refused.is_empty() && report.fatal.is_none() {
        let refused = std::mem::take(&mut report.refused);
        let more = quarantine_refused(store, records, refused, now, opts).await;
        report.absorb(more);
    }

    let mut stats = BatchStats {
        records: records.len(),
        user_records: decoded.user_records,
        written: report.written,
        duplicates,
        superseded: report.superseded,
        quarantined: report.quarantined,
        retries: report.retries,
        not_done: 0,
        oldest_arrival: oldest_arrival(records),
    };
    let mut response = Response::default();
    if let Some(pos) = report.first_failed {
        stats.not_done = records.len() - pos;
        response.add_failure(records[pos].kinesis.sequence_number.to_string());
    }
    BatchOutcome { response, stats, fatal: report.fatal }
}

/// Quarantines the records of items DynamoDB refused on their own (batch position, why).
async fn quarantine_refused<S: Store>(
    store: &S,
    records: &[BatchRecord<'_>],
    refused: Vec<(usize, String)>,
    now: chrono::DateTime<chrono::Utc>,
    opts: &Options,
) -> WriteReport {
    let poison: Vec<Poison<'_>> = refused
        .into_iter()
        .map(|(pos, why)| Poison {
            pos,
            sub: None,
            partition_key: Cow::Borrowed(&records[pos].kinesis.partition_key),
            // Decoded again: only refused items need their record's bytes after decoding.
            payload: Cow::Owned(payload(&records[pos]).unwrap_or_default()),
            reason: format!("DynamoDB refused the item: {why}"),
        })
        .collect();
    let items: Vec<(usize, Pending)> = poison.iter().map(|p| quarantine(records, p, now)).collect();
    let units: Vec<_> = items.chunks(MAX_BATCH_WRITE).map(|c| (Target::Rejected, c)).collect();
    write_all(store, &units, &[], opts).await
}

/// A record's payload, base64-decoded; `None` for data that is not base64.
fn payload(record: &BatchRecord<'_>) -> Option<Vec<u8>> {
    base64_simd::STANDARD.decode_to_vec(record.kinesis.data.as_bytes()).ok()
}

/// The batch decoded: the items in batch order, the poison records, the user records counted.
struct Decoded<'a> {
    items: Vec<(usize, Item)>,
    poison: Vec<Poison<'a>>,
    user_records: usize,
}

/// Decodes every record in order; a KPL aggregate yields its sub-records. Poison keeps its reason
/// and its bytes; the payloads of good records are dropped once their item is made, so the batch
/// is never held decoded whole.
fn decode<'r>(records: &'r [BatchRecord<'_>], schema: &Schema) -> Decoded<'r> {
    let mut d = Decoded { items: Vec::with_capacity(records.len()), poison: Vec::new(), user_records: 0 };
    let mut buf = Vec::new();
    for (pos, record) in records.iter().enumerate() {
        let pk = Cow::Borrowed(&*record.kinesis.partition_key);
        buf.clear();
        if base64_simd::STANDARD.decode_append(record.kinesis.data.as_bytes(), &mut buf).is_err() {
            let reason = "data is not base64".to_string();
            let payload = Cow::Borrowed(record.kinesis.data.as_bytes());
            d.poison.push(Poison { pos, sub: None, partition_key: pk, payload, reason });
            continue;
        }
        let payload = buf.as_slice();
        // The whole record is poison: it keeps its own decoded bytes.
        let whole = |reason: String| Poison {
            pos,
            sub: None,
            partition_key: pk,
            payload: Cow::Owned(payload.to_vec()),
            reason,
        };
        if !kpl::is_aggregate(payload) {
            d.user_records += 1;
            match schema.item(payload) {
                Ok(item) => d.items.push((pos, item)),
                Err(why) => d.poison.push(whole(why.to_string())),
            }
            continue;
        }
        // KPL aggregates carry many user records under one sequence number: a failure in any
        // of them can only point at the parent. Lambda does not deaggregate; we do.
        match kpl::deaggregate(payload) {
            Err(why) => d.poison.push(whole(why.to_string())),
            Ok(subs) => {
                d.user_records += subs.len();
                for (i, sub) in subs.iter().enumerate() {
                    match schema.item(sub.data) {
                        Ok(item) => d.items.push((pos, item)),
                        Err(why) => d.poison.push(Poison {
                            pos,
                            sub: Some(i),
                            partition_key: Cow::Owned(sub.partition_key.to_string()),
                            payload: Cow::Owned(sub.data.to_vec()),
                            reason: why.to_string(),
                        }),
                    }
                }
            }
        }
    }
    d
}

/// For each key the last occurrence (the highest sequence number) — or, when the schema orders by
/// version, the one with the highest version (the later of equal ones) — in batch order; and how
/// many were dropped. One pass in batch order with each key's winner so far in a table of borrowed
/// keys (nothing copied): a batch without duplicates, the common case, costs a hash per item.
fn dedupe(items: Vec<(usize, Item)>, schema: &Schema) -> (Vec<(usize, Pending)>, usize) {
    let mut keep = vec![true; items.len()];
    {
        let version = |i: usize| schema.version_value(&items[i].1);
        let mut winner: HashMap<(&Val, Option<&Val>), usize> = HashMap::with_capacity(items.len());
        for (i, (_, item)) in items.iter().enumerate() {
            match winner.entry((item.partition_key(), schema.sort_value(item))) {
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
                Entry::Occupied(mut slot) => {
                    // The earlier item stays only with a strictly higher version.
                    let held = *slot.get();
                    let held_is_newer = match (version(held), version(i)) {
                        (Some(x), Some(y)) => schema::number::compare(x, y) == Some(std::cmp::Ordering::Greater),
                        _ => false,
                    };
                    if held_is_newer {
                        keep[i] = false;
                    } else {
                        keep[held] = false;
                        slot.insert(i);
                    }
                }
            }
        }
    }
    let total = items.len();
    let kept: Vec<(usize, Pending)> = items
        .into_iter()
        .zip(keep)
        .filter_map(|((pos, item), kept)| kept.then_some((pos, Pending::Item(item))))
        .collect();
    let dropped = total - kept.len();
    (kept, dropped)
}

/// Earliest arrival time in the batch (seconds since the epoch), 0 when none is known.
fn oldest_arrival(records: &[BatchRecord<'_>]) -> f64 {
    let oldest = records
        .iter()
        .map(|r| r.kinesis.approximate_arrival_timestamp)
        .filter(|t| *t > 0.0)
        .fold(f64::INFINITY, f64::min);
    if oldest.is_finite() { oldest } else { 0.0 }
}

/// An item waiting to be written. Its attributes are built only for the call that sends it: a
/// batch's worth of attribute maps held at once was a quarter of a 10,000-record invocation's
/// memory.
#[derive(Debug)]
enum Pending {
    Item(Item),
    Quarantine(Attrs),
}

impl Pending {
    /// The attributes to send; `names` are the schema's attribute names.
    fn attributes(&self, names: &[Box<str>]) -> Attrs {
        match self {
            Pending::Item(item) => item.attributes(names),
            Pending::Quarantine(attrs) => attrs.clone(),
        }
    }
}

/// The quarantine item of a poison record, logged with its shard and sequence number.
fn quarantine(records: &[BatchRecord<'_>], p: &Poison<'_>, now: chrono::DateTime<chrono::Utc>) -> (usize, Pending) {
    let record = &records[p.pos];
    tracing::warn!(
        shard = record.shard_id(),
        sequence_number = %record.kinesis.sequence_number,
        sub_record = p.sub,
        reason = %p.reason,
        "record quarantined"
    );
    (p.pos, Pending::Quarantine(quarantine_item(record, p, now)))
}

/// The quarantine item of a poison record: where it came from, why, and its bytes.
fn quarantine_item(record: &BatchRecord<'_>, p: &Poison<'_>, now: chrono::DateTime<chrono::Utc>) -> Attrs {
    let s = |v: &str| AttributeValue::S(v.to_string());
    let sequence = match p.sub {
        Some(i) => format!("{}#{i:05}", record.kinesis.sequence_number),
        None => record.kinesis.sequence_number.to_string(),
    };
    let arrival = crate::time::iso_millis(record.kinesis.approximate_arrival_timestamp);
    let kept = &p.payload[..p.payload.len().min(MAX_QUARANTINED_PAYLOAD)];
    let shard = if record.shard_id().is_empty() { "unknown" } else { record.shard_id() };
    let mut item = Attrs::from([
        (rejected_attr::SHARD.to_string(), s(shard)),
        (rejected_attr::SEQUENCE.to_string(), AttributeValue::S(sequence)),
        (rejected_attr::REASON.to_string(), s(&p.reason)),
        (rejected_attr::PARTITION_KEY.to_string(), s(if p.partition_key.is_empty() { "-" } else { &p.partition_key })),
        (rejected_attr::ARRIVAL.to_string(), AttributeValue::S(arrival)),
        (rejected_attr::QUARANTINED_AT.to_string(), AttributeValue::S(crate::time::iso_text(now))),
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

/// What writing chunks came to.
#[derive(Debug, Default)]
struct WriteReport {
    written: usize,
    superseded: usize,
    quarantined: usize,
    retries: usize,
    /// Lowest batch position among the records not done.
    first_failed: Option<usize>,
    /// Items of the events table that DynamoDB refused on their own: (batch position, why).
    refused: Vec<(usize, String)>,
    /// The function cannot work at all.
    fatal: Option<String>,
}

impl WriteReport {
    fn fail_at(&mut self, pos: usize) {
        self.first_failed = Some(self.first_failed.map_or(pos, |f| f.min(pos)));
    }

    /// Adds one chunk's result.
    fn add(&mut self, target: Target, chunk: ChunkResult) {
        match target {
            Target::Events => {
                self.written += chunk.written;
                self.refused.extend(chunk.refused);
            }
            Target::Rejected => {
                self.quarantined += chunk.written;
                // The quarantine itself refused the record: report it, so it is delivered again.
                chunk.refused.iter().for_each(|(pos, _)| self.fail_at(*pos));
            }
        }
        self.retries += chunk.retries;
        if let Some(pos) = chunk.failed {
            self.fail_at(pos);
        }
        self.fatal = self.fatal.take().or(chunk.fatal);
    }

    /// Adds another round of writes (conditional puts, the quarantine of refused items).
    fn absorb(&mut self, more: WriteReport) {
        self.written += more.written;
        self.superseded += more.superseded;
        self.quarantined += more.quarantined;
        self.retries += more.retries;
        if let Some(pos) = more.first_failed {
            self.fail_at(pos);
        }
        self.refused.extend(more.refused);
        self.fatal = self.fatal.take().or(more.fatal);
    }
}

/// Writes every chunk, several at once. Keys are unique in the batch after dedupe, so no two
/// chunks touch the same key and the order per key is kept.
async fn write_all<S: Store>(
    store: &S,
    units: &[(Target, &[(usize, Pending)])],
    names: &[Box<str>],
    opts: &Options,
) -> WriteReport {
    let results: Vec<(Target, ChunkResult)> = futures::stream::iter(units)
        .map(|&(target, unit)| async move { (target, write_chunk(store, target, unit, names, opts).await) })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut report = WriteReport::default();
    for (target, chunk) in results {
        report.add(target, chunk);
    }
    report
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

/// Writes one chunk, resending what comes back unprocessed (or throttled, or 5xx) while the
/// deadline leaves room to answer. When DynamoDB refuses the chunk (a `Rejected` error, such as a
/// ValidationException), each item is tried alone to find the ones it refuses.
async fn write_chunk<S: Store>(
    store: &S,
    target: Target,
    unit: &[(usize, Pending)],
    names: &[Box<str>],
    opts: &Options,
) -> ChunkResult {
    let mut result = ChunkResult::default();
    let send = |subset: Vec<usize>| send(store, target, unit, subset, names, opts);
    let first = send((0..unit.len()).collect()).await;
    result.retries += first.resends;
    let mut left = first.failed;
    match first.stopped_by.map(|e| (e.disposition(), e)) {
        Some((Disposition::Fatal, e)) => result.fatal = Some(e.to_string()),
        // Refused as a whole (a ValidationException): each item alone finds the ones refused.
        Some((Disposition::Rejected, _)) => {
            let mut still = Vec::new();
            for i in left {
                let alone = send(vec![i]).await;
                result.retries += alone.resends;
                match alone.stopped_by.map(|e| (e.disposition(), e)) {
                    Some((Disposition::Rejected, e)) => result.refused.push((unit[i].0, e.to_string())),
                    Some((Disposition::Fatal, e)) => {
                        result.fatal = Some(e.to_string());
                        still.push(i);
                    }
                    Some((Disposition::Transient, _)) => still.push(i),
                    None => still.extend(alone.failed),
                }
            }
            left = still;
        }
        // Throttled or failing past the SDK's attempts: not done; Lambda delivers them again.
        Some((Disposition::Transient, _)) | None => {}
    }
    result.written = unit.len() - left.len() - result.refused.len();
    result.failed = left.iter().map(|&i| unit[i].0).min();
    result
}

/// What sending part of a chunk came to: indices into the chunk still not written, and why it stopped.
struct Sent {
    failed: Vec<usize>,
    resends: usize,
    stopped_by: Option<Error>,
}

/// Sends the items `subset` of `unit` through `retry::resend`.
async fn send<S: Store>(
    store: &S,
    target: Target,
    unit: &[(usize, Pending)],
    subset: Vec<usize>,
    names: &[Box<str>],
    opts: &Options,
) -> Sent {
    let resent = retry::resend(subset.len(), opts.policy(), |indices: Vec<usize>| {
        let items: Vec<Attrs> = indices.iter().map(|&j| unit[subset[j]].1.attributes(names)).collect();
        async move {
            let left = store.write(target, items).await?;
            if !left.is_empty() {
                tracing::info!(unprocessed = left.len(), "BatchWriteItem left items unprocessed");
            }
            Ok(left.into_iter().map(|k| (indices[k], "unprocessed".to_string())).collect())
        }
    })
    .await;
    Sent {
        failed: resent.failed.into_iter().map(|(j, _)| subset[j]).collect(),
        resends: resent.resends,
        stopped_by: resent.stopped_by,
    }
}

/// Writes each item with a conditional PutItem that never replaces a newer version, many at once
/// (BatchWriteItem takes no conditions). A put whose condition fails is an older version arriving
/// late: counted as superseded, not an error. Throttling and 5xx are resent; an item DynamoDB
/// refuses is quarantined; a failure no resend can fix stops the function.
async fn put_newer_all<S: Store>(
    store: &S,
    schema: &Schema,
    items: &[(usize, Pending)],
    opts: &Options,
) -> WriteReport {
    let names = schema.attribute_names();
    let (Some((version, _)), (key, _)) = (schema.version(), schema.partition_key()) else {
        return WriteReport::default();
    };
    let in_flight = opts.concurrency.max(1) * PUTS_PER_BATCH_SLOT;
    let results: Vec<(usize, retry::Resent, bool)> = futures::stream::iter(items)
        .map(|(pos, pending)| async move {
            let Pending::Item(item) = pending else { return (*pos, retry::Resent::default(), false) };
            let guard = Guard { key, version, value: schema.version_value(item).unwrap_or("0") };
            let superseded = std::sync::atomic::AtomicBool::new(false);
            let resent = retry::resend(1, opts.policy(), |_| async {
                match store.put_if_newer(item.attributes(names), &guard).await? {
                    Put::Written => {}
                    Put::Superseded => superseded.store(true, std::sync::atomic::Ordering::Relaxed),
                }
                Ok(Vec::new())
            })
            .await;
            (*pos, resent, superseded.into_inner())
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let mut report = WriteReport::default();
    for (pos, resent, superseded) in results {
        report.retries += resent.resends;
        match resent.stopped_by.map(|e| (e.disposition(), e)) {
            Some((Disposition::Rejected, e)) => report.refused.push((pos, e.to_string())),
            Some((Disposition::Transient, _)) => report.fail_at(pos),
            Some((Disposition::Fatal, e)) => {
                report.fatal = report.fatal.take().or(Some(e.to_string()));
                report.fail_at(pos);
            }
            None if !resent.failed.is_empty() => report.fail_at(pos),
            None if superseded => report.superseded += 1,
            None => report.written += 1,
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tweet::attr;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// How a scripted call fails: by the error code DynamoDB would send.
    #[derive(Debug, Clone, Copy)]
    enum Failure {
        /// ProvisionedThroughputExceededException.
        Transient,
        /// ValidationException: the items are refused.
        Refused,
        /// ResourceNotFoundException: no table.
        Fatal,
    }

    fn error(failure: Failure) -> Error {
        let code = match failure {
            Failure::Transient => "ProvisionedThroughputExceededException",
            Failure::Refused => "ValidationException",
            Failure::Fatal => "ResourceNotFoundException",
        };
        Error::Aws {
            op: "BatchWriteItem",
            resource: "T".into(),
            message: "boom".into(),
            kind: crate::error::AwsFailure::Service,
            code: Some(code.into()),
            retryable: matches!(failure, Failure::Transient),
            detail: String::new(),
        }
    }

    /// A store that records every call and answers from a script: per call index, how many items to
    /// leave unprocessed, or an error to return.
    #[derive(Default)]
    struct ScriptedStore {
        calls: Mutex<Vec<(Target, Vec<Attrs>)>>,
        unprocessed: Mutex<HashMap<usize, usize>>,
        errors: Mutex<HashMap<usize, Failure>>,
    }

    impl Store for ScriptedStore {
        async fn write(&self, target: Target, items: Vec<Attrs>) -> Result<Vec<usize>, Error> {
            let mut calls = self.calls.lock().expect("lock");
            let n = calls.len();
            let len = items.len();
            calls.push((target, items));
            if let Some(&failure) = self.errors.lock().expect("lock").get(&n) {
                return Err(error(failure));
            }
            let left = self.unprocessed.lock().expect("lock").get(&n).copied().unwrap_or(0);
            Ok((len - left.min(len)..len).collect())
        }

        /// Puts follow the same script, one call each: an error, or written.
        async fn put_if_newer(&self, item: Attrs, _: &Guard<'_>) -> Result<Put, Error> {
            let mut calls = self.calls.lock().expect("lock");
            let n = calls.len();
            calls.push((Target::Events, vec![item]));
            match self.errors.lock().expect("lock").get(&n) {
                Some(&failure) => Err(error(failure)),
                None => Ok(Put::Written),
            }
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

    fn event(records: Vec<Record>) -> Batch<'static> {
        Batch { records: records.into_iter().map(BatchRecord::from).collect() }
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
        let BatchOutcome { response: resp, stats, .. } = handle_batch(&ev, &store, &far()).await;
        assert!(resp.batch_item_failures.is_empty());
        let sizes: Vec<usize> = store.calls.lock().expect("lock").iter().map(|c| c.1.len()).collect();
        assert_eq!(sizes, vec![25, 25, 10]);
        assert_eq!((stats.records, stats.user_records, stats.written, stats.duplicates), (60, 60, 60, 0));
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
        let BatchOutcome { response: resp, stats, .. } = handle_batch(&ev, &store, &far()).await;
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
        let BatchOutcome { response: resp, stats, .. } = handle_batch(&ev, &store, &far()).await;
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
        let BatchOutcome { response: resp, stats, fatal } = handle_batch(&ev, &store, &far()).await;
        assert!(resp.batch_item_failures.is_empty() && fatal.is_none());
        assert_eq!((stats.written, stats.quarantined), (2, 1));
        let calls = store.calls.lock().expect("lock");
        assert_eq!(calls.len(), 5);
        assert_eq!(calls[4].0, Target::Rejected);
        let reason = calls[4].1[0][rejected_attr::REASON].as_s().expect("s").clone();
        assert_eq!(reason, "DynamoDB refused the item: BatchWriteItem on T: boom");
        assert_eq!(calls[4].1[0][rejected_attr::SEQUENCE].as_s().expect("s"), "00001");
    }

    #[tokio::test]
    async fn a_function_that_cannot_work_says_so() {
        let store = ScriptedStore::default();
        store.errors.lock().expect("lock").insert(0, Failure::Fatal);
        let ev = event(vec![record(1, &tweet(1, "u", "t"))]);
        let BatchOutcome { fatal, .. } = handle_batch(&ev, &store, &far()).await;
        assert_eq!(fatal.as_deref(), Some("BatchWriteItem on T: boom"));
        assert_eq!(store.count(), 1, "no retries of a call that cannot succeed");
    }

    /// A call still throttled after the SDK's own attempts (the user's AWS_MAX_ATTEMPTS) is not
    /// sent again on top of them: its records are reported, and Lambda delivers them again.
    #[tokio::test(start_paused = true)]
    async fn a_call_throttled_past_the_sdks_attempts_is_left_to_lambdas_retry() {
        let store = ScriptedStore::default();
        store.errors.lock().expect("lock").insert(0, Failure::Transient);
        let ev = event((0..3).map(|i| record(i, &tweet(i, "u", "t"))).collect());
        let BatchOutcome { response: resp, stats, fatal } = handle_batch(&ev, &store, &far()).await;
        assert_eq!(failures(&resp), vec!["00000"]);
        assert_eq!(store.count(), 1, "one call: the SDK made its attempts inside it");
        assert_eq!((stats.written, stats.not_done, fatal), (0, 3, None));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_chunk_reports_its_first_record() {
        let store = ScriptedStore::default();
        store.errors.lock().expect("lock").insert(1, Failure::Transient);
        let ev = event((0..60).map(|i| record(i, &tweet(i, "u", "t"))).collect());
        let BatchOutcome { response: resp, stats, .. } = handle_batch(&ev, &store, &far()).await;
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
        ev.records.push(BatchRecord::from(bad_b64));
        let BatchOutcome { response: resp, stats, .. } = handle_batch(&ev, &store, &far()).await;
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
        let BatchOutcome { response: resp, .. } = handle_batch(&ev, &store, &far()).await;
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
        let BatchOutcome { response: resp, stats, .. } = handle_batch(&ev, &store, &far()).await;
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
        let BatchOutcome { response: resp, .. } = handle_batch(&ev, &store, &far()).await;
        assert_eq!(failures(&resp), vec!["00009"]);
    }

    #[tokio::test]
    async fn items_left_unprocessed_near_the_deadline_are_reported() {
        let store = ScriptedStore::default();
        store.unprocessed.lock().expect("lock").extend((0..10).map(|n| (n, 1)));
        let ev = event((0..5).map(|i| record(i, &tweet(i, "u", "t"))).collect());
        let opts = Options { deadline: Instant::now() + Duration::from_millis(100), concurrency: 4 };
        let BatchOutcome { response: resp, .. } = handle_batch(&ev, &store, &opts).await;
        // The last item of the chunk (position 4) stays unprocessed; there is no time to resend it.
        assert_eq!(failures(&resp), vec!["00004"]);
    }

    #[tokio::test]
    async fn ten_thousand_records_in_one_invocation() {
        let store = MemoryStore::default();
        let ev = event((0..10_000).map(|i| record(i, &tweet(i, &format!("u{}", i % 97), "t"))).collect());
        let opts = Options { deadline: Instant::now() + Duration::from_secs(60), concurrency: 8 };
        let BatchOutcome { response: resp, stats, .. } = handle_batch(&ev, &store, &opts).await;
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
            let payload = tweet(id.parse().expect("number"), "u", "m");
            Schema::tweets().item(&payload).expect("a tweet").attributes(Schema::tweets().attribute_names())
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
        assert_eq!(store.write(Target::Events, vec![a.clone(), b]).await.expect("call succeeds"), vec![1]);
        assert_eq!(rule.num_calls(), 1);
        let err = store.write(Target::Rejected, vec![a]).await.expect_err("no quarantine table");
        assert_eq!(err.disposition(), Disposition::Fatal);
    }

    /// An orders table answering conditional puts as DynamoDB does (a put never replaces a higher
    /// version); it refuses or throttles the orders it is told to, keeps what is quarantined, and
    /// counts the puts in flight at once.
    #[derive(Default)]
    struct OrdersStore {
        held: Mutex<HashMap<String, String>>,
        refuse: &'static [&'static str],
        throttle: &'static [&'static str],
        quarantined: Mutex<Vec<Attrs>>,
        in_flight: std::sync::atomic::AtomicUsize,
        most_in_flight: std::sync::atomic::AtomicUsize,
    }

    impl Store for OrdersStore {
        async fn write(&self, target: Target, items: Vec<Attrs>) -> Result<Vec<usize>, Error> {
            assert_eq!(target, Target::Rejected, "an ordered schema writes its items by conditional puts only");
            self.quarantined.lock().expect("lock").extend(items);
            Ok(Vec::new())
        }

        async fn put_if_newer(&self, item: Attrs, guard: &Guard<'_>) -> Result<Put, Error> {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.most_in_flight.fetch_max(now, SeqCst);
            tokio::task::yield_now().await; // the other puts start meanwhile
            self.in_flight.fetch_sub(1, SeqCst);
            let id = item[guard.key].as_s().expect("s").clone();
            if self.refuse.contains(&id.as_str()) {
                return Err(error(Failure::Refused));
            }
            if self.throttle.contains(&id.as_str()) {
                return Err(error(Failure::Transient));
            }
            let number = |v: &str| v.parse::<f64>().expect("a version");
            let mut held = self.held.lock().expect("lock");
            if held.get(&id).is_some_and(|v| number(v) > number(guard.value)) {
                return Ok(Put::Superseded);
            }
            held.insert(id, guard.value.to_string());
            Ok(Put::Written)
        }
    }

    fn order(id: u32, version: u32) -> Vec<u8> {
        serde_json::json!({
            "order_id": format!("o-{id}"), "version": version, "status": format!("s{version}"),
            "updated_at": "2025-01-01T00:00:00Z"
        })
        .to_string()
        .into_bytes()
    }

    /// A schema with a version writes each item by a conditional put, four per write slot in
    /// flight: the highest version of a key in the batch is the one put, a put the table holds a
    /// newer version for is counted as superseded, a refused item is quarantined, and a throttled
    /// one is reported for Lambda to deliver again.
    #[tokio::test(start_paused = true)]
    async fn ordered_items_are_put_one_by_one_and_never_over_a_newer_version() {
        let store = OrdersStore { refuse: &["o-4"], throttle: &["o-5"], ..OrdersStore::default() };
        store.held.lock().expect("lock").insert("o-2".into(), "5".into());
        let mut records = vec![
            record(0, &order(1, 2)),
            record(1, &order(1, 1)),
            record(2, &order(2, 3)),
            record(3, &order(3, 1)),
            record(4, &order(4, 1)),
            record(5, &order(5, 1)),
        ];
        records.extend((6..14).map(|i| record(i, &order(i as u32, 1))));
        let schema = Schema::built_in("orders").expect("built in");
        let BatchOutcome { response, stats, fatal } = handle(&event(records), schema, &store, &far()).await;
        assert_eq!(fatal, None);
        assert_eq!(failures(&response), vec!["00005"], "the throttled put is delivered again");
        assert_eq!(
            (stats.written, stats.superseded, stats.duplicates, stats.quarantined, stats.not_done),
            (10, 1, 1, 1, 9)
        );
        let held = store.held.lock().expect("lock");
        assert_eq!(held["o-1"], "2", "the higher version of the batch wins, though it came first");
        assert_eq!(held["o-2"], "5", "a newer version held is kept");
        assert_eq!(held.len(), 11);
        let quarantined = store.quarantined.lock().expect("lock");
        assert_eq!(quarantined.len(), 1);
        assert_eq!(quarantined[0][rejected_attr::SEQUENCE].as_s().expect("s"), "00004");
        assert!(quarantined[0][rejected_attr::REASON].as_s().expect("s").starts_with("DynamoDB refused the item"));
        let most = store.most_in_flight.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(most, PUTS_PER_BATCH_SLOT, "one write slot holds this many puts in flight");
    }

    /// Per key, the highest version wins, and of equal versions (or with no version) the later
    /// record; the winners keep batch order.
    #[test]
    fn dedupe_keeps_the_highest_version_and_the_later_of_equal_ones() {
        let positions = |schema: &Schema, payloads: Vec<Vec<u8>>| {
            let items = payloads.iter().enumerate().map(|(pos, p)| (pos, schema.item(p).expect("an item"))).collect();
            let (kept, dropped) = dedupe(items, schema);
            (kept.iter().map(|(pos, _)| *pos).collect::<Vec<_>>(), dropped)
        };
        let orders = Schema::built_in("orders").expect("built in");
        let batch = [(1, 1), (1, 3), (2, 4), (1, 2), (2, 4), (3, 1)].map(|(id, v)| order(id, v)).to_vec();
        assert_eq!(positions(orders, batch), (vec![1, 4, 5], 3));
        let tweets = [(7, "a"), (8, "b"), (7, "a"), (7, "a")].map(|(id, user)| tweet(id, user, "t")).to_vec();
        assert_eq!(positions(Schema::tweets(), tweets), (vec![1, 3], 2));
        assert_eq!(positions(Schema::tweets(), Vec::new()), (vec![], 0));
    }

    /// Keys of any type are told apart: binary keys too (a batch holding one key twice is refused
    /// whole by BatchWriteItem).
    #[tokio::test]
    async fn duplicate_binary_keys_are_written_once() {
        let text = "name = \"b\"\n[partition_key]\nattribute = \"Id\"\ntype = \"B\"\nfrom = \"/id\"\n";
        let schema = Schema::parse(text, true).expect("schema");
        let store = MemoryStore::for_schema(&schema);
        let ids = ["AQID", "AQIE", "AQID"];
        let ev =
            event(ids.iter().enumerate().map(|(i, id)| record(i, format!(r#"{{"id":"{id}"}}"#).as_bytes())).collect());
        let BatchOutcome { stats, .. } = handle(&ev, &schema, &store, &far()).await;
        assert_eq!((stats.written, stats.duplicates, store.calls()), (2, 1, 1));
        let keys: Vec<(String, String)> = store.items(Target::Events).into_keys().collect();
        assert_eq!(keys.len(), 2);
        assert!(keys.contains(&("AQID".into(), String::new())) && keys.contains(&("AQIE".into(), String::new())));
    }

    /// Records without an arrival time (0) do not count as the oldest.
    #[test]
    fn the_oldest_arrival_is_the_earliest_known_one() {
        let at = |seq: usize, t: f64| {
            let mut r = record(seq, b"x");
            r.kinesis.approximate_arrival_timestamp = t;
            BatchRecord::from(r)
        };
        assert_eq!(oldest_arrival(&[at(0, 0.0), at(1, 1_700_000_005.0), at(2, 1_700_000_002.5)]), 1_700_000_002.5);
        assert_eq!(oldest_arrival(&[at(0, 0.0)]), 0.0);
        assert_eq!(oldest_arrival(&[]), 0.0);
    }

    /// What DynamoDB counts of an item: names and values, in bytes.
    fn item_bytes(item: &Attrs) -> usize {
        item.iter()
            .map(|(name, v)| {
                name.len()
                    + match v {
                        AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
                        AttributeValue::B(b) => b.as_ref().len(),
                        AttributeValue::Bool(_) => 1,
                        other => panic!("unexpected {other:?}"),
                    }
            })
            .sum()
    }

    /// A poison record larger than an item is quarantined with as much of its payload as fits under
    /// DynamoDB's 400 KB, marked truncated, with its full size and the stream it came from.
    #[tokio::test]
    async fn a_poison_record_larger_than_an_item_is_kept_truncated_within_the_item_limit() {
        let store = MemoryStore::default();
        let arn = "arn:aws:kinesis:us-east-1:123456789012:stream/s";
        let big: Vec<u8> = (0..1024 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
        let mut records = vec![record(1, &big), record(2, b"small poison")];
        records.iter_mut().for_each(|r| r.event_source_arn = arn.into());
        let BatchOutcome { stats, .. } = handle_batch(&event(records), &store, &far()).await;
        assert_eq!(stats.quarantined, 2);
        let rejected = store.items(Target::Rejected);
        let item = |seq: &str| rejected[&("shardId-000000000000".to_string(), seq.to_string())].clone();
        let (large, small) = (item("00001"), item("00002"));
        assert!(item_bytes(&large) <= MAX_ITEM_BYTES, "{} bytes", item_bytes(&large));
        let kept = large[rejected_attr::PAYLOAD].as_b().expect("b").as_ref();
        assert!(kept.len() >= MAX_ITEM_BYTES - 16 * 1024, "all but room for the other attributes: {}", kept.len());
        assert_eq!(kept, &big[..kept.len()]);
        assert_eq!(large[rejected_attr::TRUNCATED], AttributeValue::Bool(true));
        assert_eq!(large[rejected_attr::PAYLOAD_BYTES], AttributeValue::N((1024 * 1024).to_string()));
        assert_eq!(large[rejected_attr::SOURCE].as_s().expect("s"), arn);
        assert_eq!(small[rejected_attr::PAYLOAD].as_b().expect("b").as_ref(), b"small poison");
        assert!(!small.contains_key(rejected_attr::TRUNCATED), "a payload kept whole is not marked");
    }

    /// A record with no source ARN (as sandbox tests send) is quarantined without the attribute.
    #[test]
    fn a_quarantine_item_names_its_source_only_when_known() {
        let record = BatchRecord::from(record(1, b"x"));
        let p = Poison {
            pos: 0,
            sub: None,
            partition_key: Cow::Borrowed("k"),
            payload: Cow::Borrowed(b"x"),
            reason: "r".into(),
        };
        let item = quarantine_item(&record, &p, chrono::Utc::now());
        assert!(!item.contains_key(rejected_attr::SOURCE));
    }

    #[test]
    fn options_within_a_timeout_end_after_it() {
        let opts = Options::within(Duration::from_secs(60));
        assert!(opts.deadline > Instant::now() + Duration::from_secs(59));
        assert_eq!(opts.concurrency, DEFAULT_WRITE_CONCURRENCY);
    }

    /// Resends count wherever they happen: an item tried alone after its chunk was refused, and the
    /// quarantine of the item DynamoDB refused.
    #[tokio::test(start_paused = true)]
    async fn resends_of_items_tried_alone_and_of_their_quarantine_are_counted() {
        let store = ScriptedStore::default();
        // 0: the chunk refused; 1: item 0 alone, left unprocessed; 2: resent; 3: item 1 alone,
        // refused; 4: item 2 alone; 5: the quarantine of item 1, left unprocessed; 6: resent.
        store.errors.lock().expect("lock").extend([(0, Failure::Refused), (3, Failure::Refused)]);
        store.unprocessed.lock().expect("lock").extend([(1, 1), (5, 1)]);
        let ev = event((0..3).map(|i| record(i, &tweet(i, "u", "t"))).collect());
        let BatchOutcome { response, stats, fatal } = handle_batch(&ev, &store, &far()).await;
        assert!(response.batch_item_failures.is_empty() && fatal.is_none());
        assert_eq!((stats.written, stats.quarantined, stats.retries), (2, 1, 2));
        let targets: Vec<Target> = store.calls.lock().expect("lock").iter().map(|c| c.0).collect();
        assert_eq!(targets.len(), 7);
        assert_eq!(&targets[5..], [Target::Rejected, Target::Rejected]);
    }

    /// When the function cannot work at all, the items DynamoDB refused are not quarantined:
    /// Lambda delivers the whole batch again, and they are found again then.
    #[tokio::test]
    async fn nothing_is_quarantined_when_the_function_cannot_work() {
        let store = ScriptedStore::default();
        // Chunk 0 (25 items) refused: 25 calls alone, the first refused; then chunk 1: no table.
        store.errors.lock().expect("lock").extend([(0, Failure::Refused), (1, Failure::Refused), (26, Failure::Fatal)]);
        let ev = event((0..30).map(|i| record(i, &tweet(i, "u", "t"))).collect());
        let BatchOutcome { fatal, .. } = handle_batch(&ev, &store, &far()).await;
        assert!(fatal.is_some());
        let calls = store.calls.lock().expect("lock");
        assert_eq!(calls.len(), 27);
        assert!(calls.iter().all(|c| c.0 == Target::Events), "no quarantine written");
    }

    /// A store for another schema maps UnprocessedItems back by that schema's keys, not the tweets'.
    #[tokio::test]
    async fn dynamo_store_for_a_schema_returns_unprocessed_indices_by_its_keys() {
        use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        let orders = Schema::built_in("orders").expect("built in");
        let item = |id: u32| orders.item(&order(id, 1)).expect("an order").attributes(orders.attribute_names());
        let (a, b) = (item(1), item(2));
        let left = WriteRequest::builder()
            .put_request(PutRequest::builder().set_item(Some(b.clone())).build().expect("put"))
            .build();
        let rule = mock!(aws_sdk_dynamodb::Client::batch_write_item)
            .then_output(move || BatchWriteItemOutput::builder().unprocessed_items("T", vec![left.clone()]).build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]);
        let store = DynamoStore::new(client, "T", None).for_schema(orders);
        assert_eq!(store.write(Target::Events, vec![a, b]).await.expect("call succeeds"), vec![1]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(
                "tests/proptest-regressions/process.txt",
            ))),
            cases: 2000,
            ..proptest::test_runner::Config::default()
        })]
        /// Record data decodes as the `base64` crate's strict standard decoder decodes it: the same
        /// bytes, and the same refusals for near misses (a character out of the alphabet, URL-safe
        /// ones, whitespace, padding missing, misplaced or extra, non-zero trailing bits).
        #[test]
        fn record_data_decodes_as_the_base64_crate_does(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            edit in 0usize..4,
            at in 0usize..100,
            ch in proptest::sample::select(vec!['A', 'B', 'Q', 'g', '/', '+', '=', '-', '_', ' ', '\n', '\u{e9}']),
        ) {
            let standard = B64;
            let mut text = standard.encode(&bytes);
            let i = at % (text.len() + 1);
            match edit {
                1 if i < text.len() => text.replace_range(i..=i, ch.encode_utf8(&mut [0; 4])),
                2 if i < text.len() => { text.remove(i); }
                3 => text.insert(i, ch),
                _ => {}
            }
            let record = BatchRecord {
                kinesis: KinesisRef { data: Cow::Borrowed(&text), ..Default::default() },
                ..Default::default()
            };
            proptest::prop_assert_eq!(payload(&record), standard.decode(&text).ok(), "{:?}", text);
        }
    }

    #[test]
    fn response_serializes_as_lambda_expects() {
        let mut resp = Response::default();
        resp.add_failure("4959");
        assert_eq!(serde_json::to_string(&resp).expect("json"), r#"{"batchItemFailures":[{"itemIdentifier":"4959"}]}"#);
        assert_eq!(serde_json::to_string(&Response::default()).expect("json"), r#"{"batchItemFailures":[]}"#);
    }
}
