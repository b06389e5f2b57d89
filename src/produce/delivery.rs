//! Delivery: one worker per open shard, fed the records whose partition key hashes to it. A worker
//! keeps one PutRecords call in flight (the order Kinesis keeps per shard), packs records into KPL
//! aggregates with `--aggregate`, closes a batch when it is full or has lingered, and paces its
//! writes to the shard's limits. Only failed entries are resent (`kinesis::put_records`); what still
//! fails goes to the dead-letter file. Every count lives in one `Counters`, read as a `Counts`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{Mutex, mpsc};

use super::deadletter::DeadLetter;
use crate::error::{Disposition, Error};
use crate::kinesis::{self, Batcher, Carries, Entry, SHARD_BYTES_PER_S, SHARD_RECORDS_PER_S, ShardMap};
use crate::kpl;

/// Aggregates are closed before they pass this size, as the KPL's AggregationMaxSize default.
pub const AGGREGATE_MAX_BYTES: usize = 51_200;

/// How the workers deliver.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The client PutRecords goes through.
    pub client: aws_sdk_kinesis::Client,
    /// The stream.
    pub stream: String,
    /// Records per PutRecords call (at most 500).
    pub batch_size: usize,
    /// How long a partly filled batch may wait for more.
    pub linger: Duration,
    /// Pack records into KPL aggregates.
    pub aggregate: bool,
    /// Where records that still fail after every retry go.
    pub dead_letter: std::path::PathBuf,
}

/// The counts of a run, as read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// User records the stream accepted.
    pub sent: u64,
    /// Data bytes of those user records.
    pub bytes: u64,
    /// Kinesis records put (fewer than `sent` with --aggregate).
    pub kinesis_records: u64,
    /// Entries resent after a failure.
    pub retried: u64,
    /// User records in the dead-letter file.
    pub failed: u64,
    /// PutRecords calls.
    pub calls: u64,
}

/// The counts as the workers update them.
#[derive(Debug, Default)]
pub struct Counters {
    sent: AtomicU64,
    bytes: AtomicU64,
    kinesis_records: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    calls: AtomicU64,
}

impl Counters {
    /// The counts now.
    pub fn snapshot(&self) -> Counts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            sent: get(&self.sent),
            bytes: get(&self.bytes),
            kinesis_records: get(&self.kinesis_records),
            retried: get(&self.retried),
            failed: get(&self.failed),
            calls: get(&self.calls),
        }
    }

    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// One Kinesis record on its way: its entry, and the user records and bytes it stands for.
struct Outgoing {
    entry: Entry,
    user_records: u64,
    user_bytes: u64,
}

impl Carries for Outgoing {
    fn entry(&self) -> &Entry {
        &self.entry
    }
}

/// What every worker shares.
struct Shared {
    settings: Settings,
    counters: Arc<Counters>,
    dead_letter: Mutex<DeadLetter>,
    fatal: Mutex<Option<Error>>,
    stop: AtomicBool,
}

/// What a finished delivery came to.
#[derive(Debug)]
pub struct Finished {
    /// The final counts.
    pub counts: Counts,
    /// The dead-letter file, when something went there.
    pub dead_letter: Option<String>,
}

/// The shard workers of one run. Records are routed into a per-shard buffer (`push`) and handed
/// to the workers a chunk at a time (`hand_over`): one channel message and at most one wake-up per
/// chunk, not per record.
pub struct Delivery {
    map: ShardMap,
    senders: Vec<mpsc::Sender<Vec<Entry>>>,
    buffers: Vec<Vec<Entry>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    shared: Arc<Shared>,
}

/// Chunks a worker may have queued: a slow shard holds the source back instead of filling memory.
const WORKER_QUEUE_CHUNKS: usize = 4;

impl Delivery {
    /// Starts one worker per shard of `map`.
    pub fn start(map: ShardMap, settings: Settings) -> Delivery {
        let shared = Arc::new(Shared {
            dead_letter: Mutex::new(DeadLetter::new(&settings.dead_letter)),
            settings,
            counters: Arc::new(Counters::default()),
            fatal: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let (mut senders, mut workers) = (Vec::with_capacity(map.len()), Vec::with_capacity(map.len()));
        for _ in 0..map.len() {
            let (tx, rx) = mpsc::channel(WORKER_QUEUE_CHUNKS);
            senders.push(tx);
            workers.push(tokio::spawn(worker(shared.clone(), rx)));
        }
        let buffers = (0..map.len()).map(|_| Vec::new()).collect();
        Delivery { map, senders, buffers, workers, shared }
    }

    /// Routes one record to its shard's buffer; `hand_over` passes the buffers on.
    pub fn push(&mut self, key: String, data: Bytes) {
        let shard = self.map.shard_for(&key);
        self.buffers[shard].push(Entry { key, data });
    }

    /// Hands every buffered record to its shard's worker; false once delivery has stopped.
    pub async fn hand_over(&mut self) -> bool {
        for (buffer, tx) in self.buffers.iter_mut().zip(&self.senders) {
            if buffer.is_empty() {
                continue;
            }
            let chunk = std::mem::replace(buffer, Vec::with_capacity(buffer.len()));
            if tx.send(chunk).await.is_err() {
                return false;
            }
        }
        true
    }

    /// True once an error that no retry can fix stopped delivery.
    pub fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    /// The counters, for a live line.
    pub fn counters(&self) -> Arc<Counters> {
        self.shared.counters.clone()
    }

    /// Hands over what is buffered, lets every worker send what it holds, waits for them, and
    /// flushes the dead-letter file.
    pub async fn finish(mut self) -> Result<Finished, Error> {
        self.hand_over().await;
        drop(self.senders);
        for w in self.workers {
            let _ = w.await;
        }
        let mut dl = self.shared.dead_letter.lock().await;
        dl.flush()?;
        if let Some(fatal) = self.shared.fatal.lock().await.take() {
            return Err(fatal);
        }
        Ok(Finished {
            counts: self.shared.counters.snapshot(),
            dead_letter: (dl.written() > 0).then(|| dl.path().display().to_string()),
        })
    }
}

/// Paces one shard's writes to its limits: a batch may start once the records and bytes before it
/// have had their time at 1,000 records/s and 1 MiB/s (one second of burst allowed). Aiming at the
/// limit itself is right: above it Kinesis throttles, and throttled entries are resent.
struct Pace {
    free_at: Instant,
}

impl Pace {
    /// Waits until a batch of `records` and `bytes` may start.
    async fn wait(&mut self, records: usize, bytes: usize) {
        let now = Instant::now();
        let start = self.book(records, bytes, now);
        if start > now {
            tokio::time::sleep_until(start.into()).await;
        }
    }

    /// Books the shard's time for a batch and says when it may start: once the batches before it
    /// have had theirs, or up to a second before `now` after a pause (the burst).
    fn book(&mut self, records: usize, bytes: usize, now: Instant) -> Instant {
        let needed = (records as f64 / SHARD_RECORDS_PER_S).max(bytes as f64 / SHARD_BYTES_PER_S);
        let burst = Duration::from_secs(1);
        let start = self.free_at.max(now.checked_sub(burst).unwrap_or(now));
        self.free_at = start + Duration::from_secs_f64(needed);
        start
    }
}

/// One shard's state: the batch being filled, the aggregate being packed, the pace, and since when
/// the oldest record waiting has waited.
struct Worker {
    shared: Arc<Shared>,
    batcher: Batcher<Outgoing>,
    aggregate: kpl::Aggregator,
    pace: Pace,
    /// Batches sent so far: a change tells that what waits now started waiting anew.
    sent: u64,
}

/// One shard's worker: batches what arrives, sends one batch at a time, in order. A partly filled
/// batch is sent once its first record has waited `linger`; one timer, moved only when a new
/// batch starts.
async fn worker(shared: Arc<Shared>, mut rx: mpsc::Receiver<Vec<Entry>>) {
    let linger = shared.settings.linger;
    // A batch of at most one second of the shard's bytes: a call never carries more than the
    // shard takes in a second (more would only be throttled), and 500 records are half a second.
    let batcher = Batcher::new(shared.settings.batch_size).with_max_bytes(SHARD_BYTES_PER_S as usize);
    let mut w = Worker {
        shared,
        batcher,
        aggregate: kpl::Aggregator::default(),
        pace: Pace { free_at: Instant::now() },
        sent: 0,
    };
    let timer = tokio::time::sleep(linger);
    tokio::pin!(timer);
    let mut armed = false;
    loop {
        tokio::select! {
            chunk = rx.recv() => {
                // The source is done: ship everything and stop.
                let Some(chunk) = chunk else { return w.flush().await };
                let (was_waiting, sent) = (!w.is_empty(), w.sent);
                for entry in chunk {
                    w.add(entry).await;
                }
                if w.is_empty() {
                    armed = false;
                } else if !was_waiting || w.sent != sent {
                    timer.as_mut().reset(tokio::time::Instant::now() + linger);
                    armed = true;
                }
            }
            // Lingered long enough: ship what there is.
            () = &mut timer, if armed => {
                w.flush().await;
                armed = false;
            }
        }
    }
}

impl Worker {
    /// True when no record waits in the aggregate or the batch.
    fn is_empty(&self) -> bool {
        self.aggregate.is_empty() && self.batcher.is_empty()
    }

    /// Takes one record: into the aggregate being packed, or straight into the batch.
    async fn add(&mut self, entry: Entry) {
        if !self.shared.settings.aggregate {
            let user_bytes = entry.data.len() as u64;
            self.push(Outgoing { entry, user_records: 1, user_bytes }).await;
            return;
        }
        // Sub-records of one shard share the aggregate; it is put with the first key, which
        // counts against the record's 1 MiB too.
        if !self.aggregate.is_empty() && self.aggregate.size_with(&entry.key, entry.data.len()) > AGGREGATE_MAX_BYTES {
            self.close_aggregate().await;
        }
        self.aggregate.push(entry.key, entry.data);
    }

    /// Ships the aggregate being packed and the batch being filled.
    async fn flush(&mut self) {
        self.close_aggregate().await;
        if let Some(batch) = self.batcher.take() {
            self.send(batch).await;
        }
    }

    /// Turns the collected sub-records into one Kinesis record (a lone record is sent plain).
    async fn close_aggregate(&mut self) {
        let user_bytes = self.aggregate.data_bytes() as u64;
        let out = match self.aggregate.take() {
            None => return,
            Some(kpl::Packed::Plain { key, data }) => {
                Outgoing { entry: Entry { key, data }, user_records: 1, user_bytes }
            }
            Some(kpl::Packed::Aggregate { key, data, records }) => {
                Outgoing { entry: Entry { key, data: data.into() }, user_records: records as u64, user_bytes }
            }
        };
        self.push(out).await;
    }

    async fn push(&mut self, out: Outgoing) {
        match self.batcher.push(out) {
            Ok(Some(full)) => self.send(full).await,
            Ok(None) => {}
            Err(too_big) => {
                Counters::add(&self.shared.counters.failed, too_big.user_records);
                let reason = "record over Kinesis' 1 MiB limit (data plus partition key)";
                let _ = self.shared.dead_letter.lock().await.add(&too_big.entry, "RecordTooLarge", reason);
            }
        }
    }

    /// Sends one batch (paced, resending failed entries) and accounts for every record in it.
    async fn send(&mut self, batch: Vec<Outgoing>) {
        self.sent += 1;
        let shared = &self.shared;
        if shared.stop.load(Ordering::Relaxed) {
            // A fatal error elsewhere: keep the records rather than send them.
            let mut dl = shared.dead_letter.lock().await;
            for out in &batch {
                Counters::add(&shared.counters.failed, out.user_records);
                let _ = dl.add(&out.entry, "NotSent", "stopped after an error that no retry can fix");
            }
            return;
        }
        let bytes: usize = batch.iter().map(|o| o.entry.size()).sum();
        self.pace.wait(batch.len(), bytes).await;
        let put = kinesis::put_records(&shared.settings.client, &shared.settings.stream, &batch).await;
        account(shared, &batch, put).await;
    }
}

/// Counts what a put came to; what failed goes to the dead-letter file; a fatal error stops delivery.
async fn account(shared: &Shared, batch: &[Outgoing], put: kinesis::Put) {
    let c = &shared.counters;
    Counters::add(&c.calls, put.calls as u64);
    Counters::add(&c.retried, put.resent as u64);
    let mut failed = vec![false; batch.len()];
    put.failed.iter().for_each(|(i, _)| failed[*i] = true);
    let (mut sent, mut bytes, mut records) = (0, 0, 0);
    for out in batch.iter().zip(&failed).filter(|(_, f)| !**f).map(|(o, _)| o) {
        sent += out.user_records;
        bytes += out.user_bytes;
        records += 1;
    }
    Counters::add(&c.sent, sent);
    Counters::add(&c.bytes, bytes);
    Counters::add(&c.kinesis_records, records);
    if !put.failed.is_empty() {
        let fatal = put.stopped_by.as_ref().is_some_and(|e| e.disposition() == Disposition::Fatal);
        let why = put.stopped_by.as_ref().map(Error::to_string).or(put.last_error.clone());
        let mut dl = shared.dead_letter.lock().await;
        for (i, code) in &put.failed {
            // The entry's own ErrorCode or the failed call's; NotSent when nothing could be sent.
            let code = if fatal { "NotSent" } else { code.as_str() };
            let reason = why.clone().unwrap_or_else(|| format!("{code} on every attempt"));
            Counters::add(&c.failed, batch[*i].user_records);
            let _ = dl.add(&batch[*i].entry, code, &reason);
        }
    }
    if let Some(e) = put.stopped_by.filter(|e| e.disposition() == Disposition::Fatal) {
        shared.stop.store(true, Ordering::Relaxed);
        shared.fatal.lock().await.get_or_insert(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A batch not yet full leaves once its first record has waited the linger, without waiting
    /// for more records or for the end; records after it wait a linger of their own.
    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_leaves_once_it_has_lingered() {
        use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
        use aws_sdk_kinesis::types::{HashKeyRange, Shard};
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        let put = mock!(aws_sdk_kinesis::Client::put_records).then_output(|| {
            PutRecordsOutput::builder().failed_record_count(0).set_records(Some(Vec::new())).build().expect("output")
        });
        let client = mock_client!(aws_sdk_kinesis, RuleMode::MatchAny, [&put]);
        let range = HashKeyRange::builder().starting_hash_key("0").ending_hash_key(u128::MAX.to_string()).build();
        let shard = Shard::builder().shard_id("shardId-0").hash_key_range(range.expect("range")).build();
        let map = ShardMap::new(&[shard.expect("shard")]).expect("one open shard");
        let dir = tempfile::tempdir().expect("tempdir");
        let linger = Duration::from_millis(100);
        let settings = Settings {
            client,
            stream: "s".into(),
            batch_size: 500,
            linger,
            aggregate: false,
            dead_letter: dir.path().join("dead.jsonl"),
        };
        let mut delivery = Delivery::start(map, settings);
        let counters = delivery.counters();
        let mut send = async |n: usize| {
            for i in 0..n {
                delivery.push(format!("k{i}"), Bytes::from_static(b"{}"));
            }
            assert!(delivery.hand_over().await);
        };
        send(3).await;
        tokio::time::sleep(linger / 2).await;
        assert_eq!((put.num_calls(), counters.snapshot().sent), (0, 0), "not before the linger");
        tokio::time::sleep(linger).await;
        assert_eq!((put.num_calls(), counters.snapshot().sent), (1, 3), "sent once it lingered");
        send(2).await;
        tokio::time::sleep(linger / 2).await;
        assert_eq!(put.num_calls(), 1, "the next records wait a linger of their own");
        tokio::time::sleep(linger).await;
        assert_eq!((put.num_calls(), counters.snapshot().sent), (2, 5));
        let finished = delivery.finish().await.expect("finished");
        assert_eq!((finished.counts.sent, finished.counts.calls, finished.dead_letter), (5, 2, None));
    }

    /// A shard takes 1,000 records and 1 MiB a second: each batch starts when the ones before it
    /// have had their time, by whichever limit it reaches first.
    #[test]
    fn batches_are_paced_at_the_shards_records_and_bytes() {
        let t = Instant::now();
        let mut pace = Pace { free_at: t };
        assert_eq!(pace.book(500, 1_000, t), t);
        assert_eq!(pace.book(500, 1_000, t), t + 500 * MS, "500 records take half a second");
        assert_eq!(pace.book(10, 512 * 1024, t), t + 1_000 * MS);
        assert_eq!(pace.book(1, 0, t), t + 1_500 * MS, "512 KiB take half a second");
        assert_eq!(pace.book(1, 0, t + 1_700 * MS), t + 1_501 * MS, "later than booked: starts now, within the burst");
    }

    /// After a pause a shard takes a second's worth at once (the burst), then the pace again.
    #[test]
    fn after_a_pause_one_second_of_burst_goes_at_once() {
        let t = Instant::now() + Duration::from_secs(60);
        let mut pace = Pace { free_at: t - Duration::from_secs(10) };
        let starts: Vec<Instant> = (0..4).map(|_| pace.book(500, 0, t)).collect();
        assert_eq!(starts, [t - 1_000 * MS, t - 500 * MS, t, t + 500 * MS]);
    }

    /// `wait` sleeps until the booked start, and not at all when it has passed.
    #[tokio::test(start_paused = true)]
    async fn wait_sleeps_until_the_batch_may_start() {
        let mut pace = Pace { free_at: Instant::now() + Duration::from_secs(3) };
        let before = tokio::time::Instant::now();
        pace.wait(1, 0).await;
        assert!(before.elapsed() >= 2_900 * MS, "{:?}", before.elapsed());
        let mut idle = Pace { free_at: Instant::now() - Duration::from_secs(10) };
        let before = tokio::time::Instant::now();
        idle.wait(500, 0).await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }
}
