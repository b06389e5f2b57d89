//! Delivery: one worker per open shard, fed the records whose partition key hashes to it. A worker
//! keeps one PutRecords call in flight (the order Kinesis keeps per shard), packs records into KPL
//! aggregates with `--aggregate`, closes a batch when it is full or has lingered, and paces its
//! writes to the shard's limits. Only failed entries are resent (`kinesis::put_records`); what still
//! fails goes to the dead-letter file. Every count lives in one `Counters`, read as a `Counts`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Mutex, mpsc};

use super::deadletter::DeadLetter;
use crate::error::{Disposition, Error};
use crate::kinesis::{
    self, Batcher, Carries, Entry, MAX_RECORDS_PER_CALL, SHARD_BYTES_PER_S, SHARD_RECORDS_PER_S, ShardMap,
};
use crate::kpl;

/// Aggregates are closed at this size, as the KPL's AggregationMaxSize default.
pub const AGGREGATE_MAX_BYTES: usize = 51_200;

/// Bytes a sub-record adds to an aggregate beyond its data and key: the protobuf framing.
const AGGREGATE_RECORD_OVERHEAD: usize = 16;

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

/// The shard workers of one run.
pub struct Delivery {
    map: ShardMap,
    senders: Vec<mpsc::Sender<Entry>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    shared: Arc<Shared>,
}

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
            // Bounded: a slow shard holds the source back instead of filling memory.
            let (tx, rx) = mpsc::channel(2 * MAX_RECORDS_PER_CALL);
            senders.push(tx);
            workers.push(tokio::spawn(worker(shared.clone(), rx)));
        }
        Delivery { map, senders, workers, shared }
    }

    /// Hands one record to the worker of its shard; false once delivery has stopped.
    pub async fn route(&self, key: String, data: Vec<u8>) -> bool {
        let shard = self.map.shard_for(&key);
        self.senders[shard].send(Entry { key, data }).await.is_ok()
    }

    /// True once an error that no retry can fix stopped delivery.
    pub fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    /// The counters, for a live line.
    pub fn counters(&self) -> Arc<Counters> {
        self.shared.counters.clone()
    }

    /// Lets every worker send what it holds, waits for them, and flushes the dead-letter file.
    pub async fn finish(self) -> Result<Finished, Error> {
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
/// have had their time at 1,000 records/s and 1 MiB/s (one second of burst allowed).
struct Pace {
    free_at: Instant,
}

impl Pace {
    async fn wait(&mut self, records: usize, bytes: usize) {
        let needed = (records as f64 / SHARD_RECORDS_PER_S).max(bytes as f64 / SHARD_BYTES_PER_S);
        let now = Instant::now();
        let burst = Duration::from_secs(1);
        let start = self.free_at.max(now.checked_sub(burst).unwrap_or(now));
        if start > now {
            tokio::time::sleep_until(start.into()).await;
        }
        self.free_at = start + Duration::from_secs_f64(needed);
    }
}

/// One shard's state: the batch being filled, the aggregate being packed, the pace.
struct Worker {
    shared: Arc<Shared>,
    batcher: Batcher<Outgoing>,
    aggregate: Vec<Entry>,
    aggregate_bytes: usize,
    pace: Pace,
}

/// One shard's worker: batches what arrives, sends one batch at a time, in order.
async fn worker(shared: Arc<Shared>, mut rx: mpsc::Receiver<Entry>) {
    let batch_size = shared.settings.batch_size;
    let linger = shared.settings.linger;
    let mut w = Worker {
        shared,
        batcher: Batcher::new(batch_size),
        aggregate: Vec::new(),
        aggregate_bytes: 0,
        pace: Pace { free_at: Instant::now() },
    };
    let mut linger_until: Option<Instant> = None;
    loop {
        let next = match linger_until {
            Some(t) => tokio::select! {
                e = rx.recv() => Some(e),
                _ = tokio::time::sleep_until(t.into()) => None,
            },
            None => Some(rx.recv().await),
        };
        match next {
            // Lingered long enough: ship what there is.
            None => {
                w.flush().await;
                linger_until = None;
            }
            // The source is done: ship everything and stop.
            Some(None) => {
                w.flush().await;
                return;
            }
            Some(Some(entry)) => {
                linger_until.get_or_insert_with(|| Instant::now() + linger);
                w.add(entry).await;
            }
        }
    }
}

impl Worker {
    /// Takes one record: into the aggregate being packed, or straight into the batch.
    async fn add(&mut self, entry: Entry) {
        if !self.shared.settings.aggregate {
            let user_bytes = entry.data.len() as u64;
            self.push(Outgoing { entry, user_records: 1, user_bytes }).await;
            return;
        }
        // Sub-records of one shard share the aggregate; it is put with the first key.
        let size = entry.size() + AGGREGATE_RECORD_OVERHEAD;
        if self.aggregate_bytes + size > AGGREGATE_MAX_BYTES
            && let Some(out) = self.close_aggregate()
        {
            self.push(out).await;
        }
        self.aggregate_bytes += size;
        self.aggregate.push(entry);
    }

    /// Ships the aggregate being packed and the batch being filled.
    async fn flush(&mut self) {
        if let Some(out) = self.close_aggregate() {
            self.push(out).await;
        }
        if let Some(batch) = self.batcher.take() {
            self.send(batch).await;
        }
    }

    /// Turns the collected sub-records into one aggregate record (a lone record is sent plain).
    fn close_aggregate(&mut self) -> Option<Outgoing> {
        self.aggregate_bytes = 0;
        let user_bytes = self.aggregate.iter().map(|e| e.data.len() as u64).sum();
        match self.aggregate.len() {
            0 => None,
            1 => self.aggregate.pop().map(|entry| Outgoing { entry, user_records: 1, user_bytes }),
            n => {
                let key = self.aggregate[0].key.clone();
                let data = kpl::aggregate(self.aggregate.iter().map(|e| (e.key.as_str(), e.data.as_slice())));
                self.aggregate.clear();
                Some(Outgoing { entry: Entry { key, data }, user_records: n as u64, user_bytes })
            }
        }
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
        let shared = &self.shared;
        let c = &shared.counters;
        if shared.stop.load(Ordering::Relaxed) {
            // A fatal error elsewhere: keep the records rather than send them.
            let mut dl = shared.dead_letter.lock().await;
            for out in &batch {
                Counters::add(&c.failed, out.user_records);
                let _ = dl.add(&out.entry, "NotSent", "stopped after an error that no retry can fix");
            }
            return;
        }
        let bytes: usize = batch.iter().map(|o| o.entry.size()).sum();
        self.pace.wait(batch.len(), bytes).await;
        let put = kinesis::put_records(&shared.settings.client, &shared.settings.stream, &batch).await;
        Counters::add(&c.calls, put.calls as u64);
        Counters::add(&c.retried, put.resent as u64);
        let mut failed = vec![false; batch.len()];
        put.failed.iter().for_each(|(i, _)| failed[*i] = true);
        for out in batch.iter().zip(&failed).filter(|(_, f)| !**f).map(|(o, _)| o) {
            Counters::add(&c.sent, out.user_records);
            Counters::add(&c.bytes, out.user_bytes);
            Counters::add(&c.kinesis_records, 1);
        }
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
}
