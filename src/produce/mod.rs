//! `stream produce`: records from a source into the stack's stream. Records are routed to the shard
//! their partition key hashes to (`shards`); each shard has one worker with one PutRecords call in
//! flight (the order Kinesis keeps per shard), a linger bound, and a pace within the shard's write
//! limits; shards run in parallel. Only failed entries are resent; what still fails goes to the
//! dead-letter file (`deadletter`). Records come from `source`; the stream's name from `stack`.

pub mod deadletter;
pub mod live;
pub mod shards;
pub mod source;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use serde::Serialize;

use tokio::io::AsyncBufReadExt;
use tokio::sync::{Mutex, mpsc};

use crate::aws::Clients;
use crate::cli::{ProduceArgs, SourceKind};
use crate::error::{AwsFailure, Error};
use crate::kpl;
use crate::process::backoff;
use crate::shutdown::Shutdown;
use crate::stack;
use deadletter::DeadLetter;
use shards::ShardMap;

/// PutRecords takes at most 500 records per call.
pub const MAX_RECORDS_PER_CALL: usize = 500;
/// PutRecords takes at most 5 MiB per call, partition keys included.
pub const MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;
/// A record (data plus partition key) holds at most 1 MiB.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Sends of one batch before the entries still failing are given up.
pub const MAX_PUT_ATTEMPTS: u32 = 8;
/// A shard takes at most 1,000 records per second.
pub const SHARD_RECORDS_PER_S: f64 = 1000.0;
/// A shard takes at most 1 MiB per second.
pub const SHARD_BYTES_PER_S: f64 = 1024.0 * 1024.0;
/// Aggregates are closed at this size, as the KPL's AggregationMaxSize default.
pub const AGGREGATE_MAX_BYTES: usize = 51_200;

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

    /// Adds an entry; returns a batch once it is full: the entries before this one when it does not
    /// fit with them, or all of them, this one included, when it fills the batch exactly.
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
        let out = match client.put_records().stream_name(stream).set_records(Some(request)).send().await {
            Ok(out) => out,
            Err(e) => {
                let code = aws_smithy_types::error::metadata::ProvideErrorMetadata::code(&e).map(str::to_string);
                let err = Error::aws("PutRecords", stream, e);
                // Missing stream, no permission, no credentials: no retry can help.
                let fatal = matches!(err, Error::Aws { kind: AwsFailure::Credentials, .. })
                    || matches!(
                        code.as_deref(),
                        Some("ResourceNotFoundException" | "AccessDeniedException" | "ValidationException")
                    );
                if fatal {
                    return Err(err);
                }
                // The SDK already retried this call; count it as one attempt of ours.
                let reason = err.to_string();
                tracing::warn!(error = %reason, attempt, "PutRecords failed as a whole");
                pending = pending.into_iter().map(|(e, _)| (e, reason.clone())).collect();
                continue;
            }
        };
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
    /// Shards written to.
    pub shards: usize,
    /// User records the stream accepted.
    pub sent: u64,
    /// Bytes of those records.
    pub bytes: u64,
    /// Kinesis records put (fewer than `sent` with --aggregate).
    pub kinesis_records: u64,
    /// Entries resent after a failure.
    pub retried: u64,
    /// User records in the dead-letter file.
    pub failed: u64,
    /// Input lines that were not tweets (file source).
    pub bad_lines: u64,
    /// PutRecords calls.
    pub calls: u64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Dead-letter file, when something went there.
    pub dead_letter: Option<String>,
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
                hint: format!(
                    "they are in {}; add shards (`stream deploy --shards N`) or lower --rate, then send that file again",
                    self.dead_letter.as_deref().unwrap_or("the dead-letter file")
                ),
            })
        } else {
            None
        }
    }
}

impl fmt::Display for ProduceOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = if self.seconds > 0.0 { self.sent as f64 / self.seconds } else { 0.0 };
        let mib = if self.seconds > 0.0 { self.bytes as f64 / 1048576.0 / self.seconds } else { 0.0 };
        write!(
            f,
            "produced {} records to {} ({} shard(s)) in {:.2} s ({:.0} records/s, {:.2} MiB/s, {} PutRecords calls, {} resent, {} failed",
            self.sent, self.stream, self.shards, self.seconds, rate, mib, self.calls, self.retried, self.failed
        )?;
        if self.kinesis_records != self.sent {
            write!(f, ", {} Kinesis records", self.kinesis_records)?;
        }
        if self.bad_lines > 0 {
            write!(f, ", {} bad input lines skipped", self.bad_lines)?;
        }
        if self.interrupted {
            write!(f, ", interrupted")?;
        }
        write!(f, ")")
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
        if !(1..=MAX_RECORDS_PER_CALL).contains(&self.batch_size) {
            return Err(Error::usage(
                format!("--batch-size {} is out of range", self.batch_size),
                "give --batch-size a value from 1 to 500 (PutRecords' limit)",
            ));
        }
        match (self.source, &self.file) {
            (SourceKind::File, None) => {
                Err(Error::usage("--source file needs --file", "give --file PATH (or --file - to read stdin)"))
            }
            (SourceKind::File, Some(path)) if path.as_os_str() != "-" && !path.is_file() => Err(Error::usage(
                format!("{} is not a readable file", path.display()),
                "give --file the path of a JSON-lines file of tweets, or - for stdin",
            )),
            (SourceKind::Synthetic | SourceKind::Bluesky | SourceKind::X, Some(_)) => {
                Err(Error::usage("--file is only read with --source file", "add --source file, or leave --file out"))
            }
            (SourceKind::X, None) if std::env::var("X_BEARER_TOKEN").map_or(true, |t| t.trim().is_empty()) => {
                Err(Error::usage(
                    "--source x needs an X API bearer token in X_BEARER_TOKEN",
                    "export X_BEARER_TOKEN (from the X developer portal; it is never printed)",
                ))
            }
            (SourceKind::X, None) if self.track.is_empty() => Err(Error::usage(
                "--source x needs at least one --track rule",
                "add --track 'rust lang:en' (repeat for more rules)",
            )),
            (SourceKind::Bluesky, None) if crate::net::endpoint(&self.bluesky_url).is_err() => Err(Error::usage(
                format!("--bluesky-url {} is not a ws:// or wss:// URL", self.bluesky_url),
                format!("leave it out for {}", crate::cli::BLUESKY_URL),
            )),
            _ => Ok(()),
        }
    }
}

/// Counters shared by the shard workers.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    bytes: AtomicU64,
    kinesis_records: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    calls: AtomicU64,
}

/// One user record on its way: its entry and how many user records it stands for.
struct Outgoing {
    entry: Entry,
    user_records: u64,
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

/// What every shard worker shares.
struct Shared {
    client: aws_sdk_kinesis::Client,
    stream: String,
    counters: Counters,
    dead_letter: Mutex<DeadLetter>,
    fatal: Mutex<Option<Error>>,
    stop: AtomicBool,
    batch_size: usize,
    linger: Duration,
    aggregate: bool,
}

/// One shard's worker: batches what arrives, sends one batch at a time, in order.
async fn shard_worker(shared: Arc<Shared>, mut rx: mpsc::Receiver<Entry>) {
    let mut batcher = Batcher::new(shared.batch_size);
    let mut weights: Vec<u64> = Vec::new();
    let mut aggregate: Vec<Entry> = Vec::new();
    let mut aggregate_bytes = 0usize;
    let mut pace = Pace { free_at: Instant::now() };
    let mut linger_until: Option<Instant> = None;
    loop {
        let next = match linger_until {
            Some(t) => tokio::select! {
                e = rx.recv() => Some(e),
                _ = tokio::time::sleep_until(t.into()) => None,
            },
            None => Some(rx.recv().await),
        };
        let mut ready: Vec<Outgoing> = Vec::new();
        let lingered = next.is_none();
        match next {
            // Linger over: ship what there is.
            None => {
                ready.extend(close_aggregate(&mut aggregate, &mut aggregate_bytes));
            }
            Some(None) => {
                ready.extend(close_aggregate(&mut aggregate, &mut aggregate_bytes));
                for out in ready.drain(..) {
                    push(&shared, &mut batcher, &mut weights, out, &mut pace).await;
                }
                flush(&shared, &mut batcher, &mut weights, &mut pace).await;
                return;
            }
            Some(Some(entry)) => {
                if linger_until.is_none() {
                    linger_until = Some(Instant::now() + shared.linger);
                }
                if shared.aggregate {
                    // Sub-records of one shard share the aggregate; it is put with the first key.
                    let size = entry.size() + 16;
                    if aggregate_bytes + size > AGGREGATE_MAX_BYTES {
                        ready.extend(close_aggregate(&mut aggregate, &mut aggregate_bytes));
                    }
                    aggregate_bytes += size;
                    aggregate.push(entry);
                } else {
                    ready.push(Outgoing { entry, user_records: 1 });
                }
            }
        }
        for out in ready {
            push(&shared, &mut batcher, &mut weights, out, &mut pace).await;
        }
        if lingered {
            flush(&shared, &mut batcher, &mut weights, &mut pace).await;
            linger_until = None;
        }
    }
}

/// Turns the collected sub-records into one aggregate record (a lone record is sent plain).
fn close_aggregate(records: &mut Vec<Entry>, bytes: &mut usize) -> Option<Outgoing> {
    *bytes = 0;
    match records.len() {
        0 => None,
        1 => records.pop().map(|entry| Outgoing { entry, user_records: 1 }),
        n => {
            let key = records[0].key.clone();
            let data = kpl::aggregate(records.iter().map(|e| (e.key.as_str(), e.data.as_slice())));
            records.clear();
            Some(Outgoing { entry: Entry { key, data }, user_records: n as u64 })
        }
    }
}

async fn push(shared: &Shared, batcher: &mut Batcher, weights: &mut Vec<u64>, out: Outgoing, pace: &mut Pace) {
    // Weights follow the entries in the batcher; a full batch is always a prefix of them.
    weights.push(out.user_records);
    match batcher.push(out.entry) {
        Ok(Some(full)) => {
            let w: Vec<u64> = weights.drain(..full.len()).collect();
            send(shared, full, w, pace).await;
        }
        Ok(None) => {}
        Err(too_big) => {
            weights.pop();
            shared.counters.failed.fetch_add(out.user_records, Ordering::Relaxed);
            let mut dl = shared.dead_letter.lock().await;
            let _ = dl.add(&too_big, "RecordTooLarge", "record over Kinesis' 1 MiB limit (data plus partition key)");
        }
    }
}

async fn flush(shared: &Shared, batcher: &mut Batcher, weights: &mut Vec<u64>, pace: &mut Pace) {
    if let Some(batch) = batcher.take() {
        let w = std::mem::take(weights);
        send(shared, batch, w, pace).await;
    }
}

/// Sends one batch (paced, resending failed entries) and accounts for every record in it.
async fn send(shared: &Shared, batch: Vec<Entry>, weights: Vec<u64>, pace: &mut Pace) {
    let bytes: usize = batch.iter().map(Entry::size).sum();
    let user_records: u64 = weights.iter().sum();
    if shared.stop.load(Ordering::Relaxed) {
        // A fatal error elsewhere: keep the records rather than send them.
        dead_letter_all(shared, &batch, "NotSent", "stopped after an error that no retry can fix").await;
        shared.counters.failed.fetch_add(user_records, Ordering::Relaxed);
        return;
    }
    pace.wait(batch.len(), bytes).await;
    let keys: Vec<(String, usize)> = batch.iter().map(|e| (e.key.clone(), e.data.len())).collect();
    match put_with_retries(&shared.client, &shared.stream, batch.clone()).await {
        Ok(outcome) => {
            let c = &shared.counters;
            c.calls.fetch_add(outcome.calls as u64, Ordering::Relaxed);
            c.retried.fetch_add(outcome.retried as u64, Ordering::Relaxed);
            // Match failed entries back to their weights by position: failures keep request order.
            let mut failed_weight = 0;
            let mut failed_bytes = 0;
            let mut failed_iter = outcome.failed.iter().peekable();
            for (i, e) in batch.iter().enumerate() {
                if let Some((f, _)) = failed_iter.peek()
                    && f.key == e.key
                    && f.data == e.data
                {
                    failed_weight += weights[i];
                    failed_bytes += keys[i].1;
                    failed_iter.next();
                }
            }
            c.sent.fetch_add(user_records - failed_weight, Ordering::Relaxed);
            c.bytes.fetch_add((bytes - batch_key_bytes(&keys) - failed_bytes) as u64, Ordering::Relaxed);
            c.kinesis_records.fetch_add((batch.len() - outcome.failed.len()) as u64, Ordering::Relaxed);
            c.failed.fetch_add(failed_weight, Ordering::Relaxed);
            if !outcome.failed.is_empty() {
                let mut dl = shared.dead_letter.lock().await;
                for (entry, reason) in &outcome.failed {
                    let code = reason.split(':').next().unwrap_or(reason);
                    let _ = dl.add(entry, code, reason);
                }
            }
        }
        Err(fatal) => {
            dead_letter_all(shared, &batch, "NotSent", &fatal.to_string()).await;
            shared.counters.failed.fetch_add(user_records, Ordering::Relaxed);
            shared.stop.store(true, Ordering::Relaxed);
            shared.fatal.lock().await.get_or_insert(fatal);
        }
    }
}

fn batch_key_bytes(keys: &[(String, usize)]) -> usize {
    keys.iter().map(|(k, _)| k.len()).sum()
}

async fn dead_letter_all(shared: &Shared, batch: &[Entry], code: &str, reason: &str) {
    let mut dl = shared.dead_letter.lock().await;
    for e in batch {
        let _ = dl.add(e, code, reason);
    }
}

/// Everything about `produce`'s flags and files that can be checked before any call.
pub fn precheck(args: &ProduceArgs, stack_name: &str) -> Result<(), Error> {
    args.validate()?;
    if args.as_producer {
        check_producer_profile(stack_name)?;
    }
    Ok(())
}

/// Checks that the producer's profile (written by `deploy`) is there, before any call.
fn check_producer_profile(stack_name: &str) -> Result<(), Error> {
    let path = crate::credentials::credentials_path()?;
    if crate::credentials::profile_key_id(&path, stack_name)?.is_none() {
        return Err(Error::config(
            format!("no producer profile \"{stack_name}\" in {}", path.display()),
            format!("run `stream deploy --stack {stack_name}` on this machine; it writes the profile"),
        ));
    }
    Ok(())
}

/// A Kinesis client that signs with the producer's profile (written by `deploy`).
async fn producer_client(clients: &Clients, stack_name: &str) -> Result<aws_sdk_kinesis::Client, Error> {
    check_producer_profile(stack_name)?;
    let args = crate::aws::AwsArgs {
        region: Some(clients.region.clone()),
        profile: Some(stack_name.to_string()),
        endpoint_url: std::env::var("AWS_ENDPOINT_URL").ok().filter(|u| !u.is_empty()).or(clients.endpoint_url.clone()),
    };
    let config = crate::aws::load_config(&args, crate::aws::RetryMode::Adaptive).await;
    Ok(aws_sdk_kinesis::Client::new(&config))
}

/// `stream produce` (flags already checked by `precheck`): reads the source, routes each record to its shard's worker, waits for every
/// worker to finish its last batch, and reports.
pub async fn run(
    args: &ProduceArgs,
    stack_name: &str,
    clients: &Clients,
    shutdown: Shutdown,
) -> Result<ProduceOutput, Error> {
    let outputs = stack::load(clients, stack_name).await?;
    let stream = outputs.stream_name;
    let map = ShardMap::new(&crate::local::list_shards(&clients.kinesis, &stream).await?)?;
    let client = if args.as_producer { producer_client(clients, stack_name).await? } else { clients.kinesis.clone() };
    let shared = Arc::new(Shared {
        client,
        stream: stream.clone(),
        counters: Counters::default(),
        dead_letter: Mutex::new(DeadLetter::new(&args.dead_letter)),
        fatal: Mutex::new(None),
        stop: AtomicBool::new(false),
        batch_size: args.batch_size,
        linger: Duration::from_millis(args.linger_ms),
        aggregate: args.aggregate,
    });
    let started = Instant::now();
    let mut senders = Vec::with_capacity(map.len());
    let mut workers = Vec::with_capacity(map.len());
    for _ in 0..map.len() {
        // Bounded: a slow shard holds the source back instead of filling memory.
        let (tx, rx) = mpsc::channel(2 * MAX_RECORDS_PER_CALL);
        senders.push(tx);
        workers.push(tokio::spawn(shard_worker(shared.clone(), rx)));
    }
    let live = crate::progress::stderr_is_tty().then(|| tokio::spawn(live_line(shared.clone(), started)));

    let mut made: u64 = 0;
    let mut bad_lines: u64 = 0;
    let mut route = async |key: String, data: Vec<u8>| -> bool {
        if let Some(rate) = args.rate {
            // The total rate: record n leaves at n/rate seconds.
            let due = started + Duration::from_secs_f64(made as f64 / f64::from(rate));
            tokio::time::sleep_until(due.into()).await;
        }
        made += 1;
        let shard = map.shard_for(&key);
        senders[shard].send(Entry { key, data }).await.is_ok()
    };
    let stopped = |shutdown: &Shutdown| shutdown.is_triggered() || shared.stop.load(Ordering::Relaxed);
    let mut finished_source = true;
    match args.source {
        SourceKind::Synthetic => {
            let mut tweets = source::Synthetic::new(args.seed);
            for _ in 0..args.count.unwrap_or(100) {
                if stopped(&shutdown) {
                    finished_source = false;
                    break;
                }
                let t = tweets.next_tweet();
                if !route(t.partition_key().to_string(), t.to_bytes()).await {
                    break;
                }
            }
        }
        SourceKind::Bluesky | SourceKind::X => {
            let (tx, mut rx) = mpsc::channel::<live::Record>(1024);
            let backoff = live::Backoff { scale: args.reconnect_scale };
            let task = match args.source {
                SourceKind::Bluesky => tokio::spawn(live::bluesky(args.bluesky_url.clone(), tx, backoff)),
                _ => {
                    let token = std::env::var("X_BEARER_TOKEN").unwrap_or_default().trim().to_string();
                    tokio::spawn(live::x(args.x_url.clone(), token, args.track.clone(), tx, backoff))
                }
            };
            let limit = args.count.unwrap_or(u64::MAX);
            let mut taken = 0u64;
            let mut wait = shutdown.clone();
            while taken < limit {
                if stopped(&shutdown) {
                    finished_source = false;
                    break;
                }
                let next = tokio::select! {
                    r = rx.recv() => r,
                    _ = wait.wait() => None,
                };
                let Some((key, data)) = next else {
                    finished_source = !shutdown.is_triggered();
                    break;
                };
                taken += 1;
                if !route(key, data).await {
                    break;
                }
            }
            task.abort();
        }
        SourceKind::File => {
            let path = args.file.clone().unwrap_or_default();
            let reader: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if path.as_os_str() == "-" {
                Box::new(tokio::io::stdin())
            } else {
                Box::new(tokio::fs::File::open(&path).await.map_err(|e| Error::io(path.display().to_string(), e))?)
            };
            let mut lines = tokio::io::BufReader::new(reader).lines();
            let mut number = 0u64;
            let limit = args.count.unwrap_or(u64::MAX);
            let mut taken = 0u64;
            while taken < limit {
                if stopped(&shutdown) {
                    finished_source = false;
                    break;
                }
                let Some(line) = lines.next_line().await.map_err(|e| Error::io(path.display().to_string(), e))? else {
                    break;
                };
                number += 1;
                if line.trim().is_empty() {
                    continue;
                }
                match source::file_record(&line) {
                    Ok((key, data)) => {
                        taken += 1;
                        if !route(key, data).await {
                            break;
                        }
                    }
                    Err(reason) => {
                        bad_lines += 1;
                        crate::progress::status(format!("{}:{number}: skipped: {reason}", path.display()));
                    }
                }
            }
        }
    }
    drop(senders);
    for w in workers {
        let _ = w.await;
    }
    if let Some(l) = live {
        l.abort();
        eprintln!();
    }
    let mut dl = shared.dead_letter.lock().await;
    dl.flush()?;
    if let Some(fatal) = shared.fatal.lock().await.take() {
        return Err(fatal);
    }
    let c = &shared.counters;
    Ok(ProduceOutput {
        stream,
        shards: map.len(),
        sent: c.sent.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
        kinesis_records: c.kinesis_records.load(Ordering::Relaxed),
        retried: c.retried.load(Ordering::Relaxed),
        failed: c.failed.load(Ordering::Relaxed),
        bad_lines,
        calls: c.calls.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        dead_letter: (dl.written() > 0).then(|| dl.path().display().to_string()),
        interrupted: !finished_source && shutdown.is_triggered(),
    })
}

/// The live line on a terminal: sent, records/s, MiB/s, retries, failures.
async fn live_line(shared: Arc<Shared>, started: Instant) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let c = &shared.counters;
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let sent = c.sent.load(Ordering::Relaxed);
        eprint!(
            "\r\x1b[2Ksent {sent}  {:.0} records/s  {:.2} MiB/s  {} resent  {} failed",
            sent as f64 / secs,
            c.bytes.load(Ordering::Relaxed) as f64 / 1048576.0 / secs,
            c.retried.load(Ordering::Relaxed),
            c.failed.load(Ordering::Relaxed)
        );
    }
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
