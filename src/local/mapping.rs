//! The Kinesis event source mapping as Lambda runs it, with the mapping's own settings: batches of
//! up to BatchSize records gathered for up to the batching window; ParallelizationFactor lanes per
//! shard, a record's lane chosen by its partition key so each key keeps its order; a partial
//! failure (ReportBatchItemFailures) retries from the lowest reported sequence number; a function
//! error bisects the batch (BisectBatchOnFunctionError, free of the retry quota) or retries it;
//! after MaximumRetryAttempts, or past MaximumRecordAgeInSeconds, the batch's shard and sequence
//! range go to the on-failure destination and the shard moves on. Reading the shard is `reader`'s.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::json;

use super::Ctx;
use super::checkpoint::{Progress, SHARD_END};
use super::reader::{IDLE_POLL, ShardReader};
use crate::error::Error;
use crate::filter::{self, Pattern};
use crate::kinesis::reader::Position;
use crate::process::Record;
use crate::process::event::Source;
use crate::sandbox::Outcome;
use crate::tweet::iso_millis;

/// Lambda's limit on an invocation's payload.
const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// The mapping's settings, as ListEventSourceMappings reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The mapping's UUID.
    pub uuid: String,
    /// BatchSize.
    pub batch_size: usize,
    /// MaximumBatchingWindowInSeconds.
    pub window: Duration,
    /// StartingPosition.
    pub start: Position,
    /// FunctionResponseTypes holds ReportBatchItemFailures.
    pub report_item_failures: bool,
    /// BisectBatchOnFunctionError.
    pub bisect: bool,
    /// MaximumRetryAttempts (`None`: -1, until the records expire).
    pub max_retries: Option<u32>,
    /// MaximumRecordAgeInSeconds (`None`: -1, no limit).
    pub max_record_age: Option<Duration>,
    /// ParallelizationFactor.
    pub parallelization: usize,
    /// DestinationConfig.OnFailure.Destination.
    pub on_failure: Option<String>,
    /// FilterCriteria: a record no filter matches is dropped (when there is any filter).
    pub filters: Vec<Pattern>,
}

/// The error for a mapping setting Lambda honours and `stream local` cannot: refused, never ignored.
pub fn unsupported(what: &str) -> Error {
    Error::usage(
        format!("stream local cannot run this event source mapping: it has {what}"),
        "Lambda would honour it and stream local would not: remove it from the mapping, or test this in AWS",
    )
}

impl Settings {
    /// Reads a mapping's configuration, with Lambda's defaults where a value is absent. A setting
    /// `stream local` cannot honour is refused: a tumbling window, an enhanced fan-out consumer as
    /// the source, an on-failure destination other than SQS, a filter it cannot evaluate.
    pub fn from_mapping(m: &aws_sdk_lambda::types::EventSourceMappingConfiguration) -> Result<Settings, Error> {
        use aws_sdk_lambda::types::{EventSourcePosition, FunctionResponseType};
        if let Some(w) = m.tumbling_window_in_seconds().filter(|w| *w > 0) {
            return Err(unsupported(&format!("a tumbling window (TumblingWindowInSeconds {w})")));
        }
        if let Some(source) = m.event_source_arn().filter(|a| a.contains("/consumer/")) {
            return Err(unsupported(&format!("an enhanced fan-out consumer as its source ({source})")));
        }
        let on_failure = m
            .destination_config()
            .and_then(|d| d.on_failure())
            .and_then(|f| f.destination())
            .filter(|d| !d.is_empty())
            .map(str::to_string);
        if let Some(d) = on_failure.as_deref().filter(|d| d.split(':').nth(2) != Some("sqs")) {
            return Err(unsupported(&format!("an on-failure destination other than SQS ({d})")));
        }
        let mut filters = Vec::new();
        for f in m.filter_criteria().map(|c| c.filters()).unwrap_or_default() {
            let text = f.pattern().unwrap_or_default();
            let pattern = filter::parse(text).map_err(|why| unsupported(&format!("a filter that {why}: {text}")))?;
            filters.push(pattern);
        }
        let start = match m.starting_position() {
            Some(EventSourcePosition::Latest) => Position::Latest,
            Some(EventSourcePosition::AtTimestamp) => {
                Position::AtTimestamp(m.starting_position_timestamp().map_or(0.0, |t| t.as_secs_f64()))
            }
            _ => Position::TrimHorizon,
        };
        Ok(Settings {
            uuid: m.uuid().unwrap_or_default().to_string(),
            batch_size: m.batch_size().unwrap_or(100).clamp(1, 10_000) as usize,
            window: Duration::from_secs(m.maximum_batching_window_in_seconds().unwrap_or(0).max(0) as u64),
            start,
            report_item_failures: m.function_response_types().contains(&FunctionResponseType::ReportBatchItemFailures),
            bisect: m.bisect_batch_on_function_error().unwrap_or(false),
            max_retries: m.maximum_retry_attempts().filter(|n| *n >= 0).map(|n| n as u32),
            max_record_age: m
                .maximum_record_age_in_seconds()
                .filter(|n| *n >= 0)
                .map(|n| Duration::from_secs(n as u64)),
            parallelization: m.parallelization_factor().unwrap_or(1).clamp(1, 10) as usize,
            on_failure,
            filters,
        })
    }
}

/// What to do with a batch after its invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every record is done.
    Done,
    /// Records before this index are done; retry from it (one retry used).
    RetryFrom(usize),
    /// Retry the whole batch (one retry used).
    RetryAll,
    /// Split the batch in two and run each half (no retry used).
    Bisect,
}

/// Lambda's reading of an invocation's result: `sequences` are the batch's sequence numbers in order.
pub fn verdict(outcome: &Outcome, sequences: &[&str], settings: &Settings) -> Verdict {
    let body = match outcome {
        Outcome::Response(body) => body,
        _ if settings.bisect && sequences.len() > 1 => return Verdict::Bisect,
        _ => return Verdict::RetryAll,
    };
    if !settings.report_item_failures {
        return Verdict::Done;
    }
    // Success: an empty or null response, or an empty or null batchItemFailures.
    if body.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Done;
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Verdict::RetryAll;
    };
    let failures = match &value["batchItemFailures"] {
        serde_json::Value::Null => return Verdict::Done,
        serde_json::Value::Array(a) if a.is_empty() => return Verdict::Done,
        serde_json::Value::Array(a) => a,
        _ => return Verdict::RetryAll,
    };
    // Any identifier that is missing, empty or not in the batch fails the whole batch.
    let mut lowest: Option<usize> = None;
    for f in failures {
        let Some(id) = f["itemIdentifier"].as_str().filter(|s| !s.is_empty()) else {
            return Verdict::RetryAll;
        };
        let Some(i) = sequences.iter().position(|s| *s == id) else {
            return Verdict::RetryAll;
        };
        lowest = Some(lowest.map_or(i, |l: usize| l.min(i)));
    }
    match lowest {
        Some(0) | None => Verdict::RetryAll,
        Some(i) => Verdict::RetryFrom(i),
    }
}

/// The lane of a partition key: records of one key always share a lane, so they stay in order.
pub fn lane_of(partition_key: &str, lanes: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    partition_key.hash(&mut h);
    (h.finish() % lanes.max(1) as u64) as usize
}

/// One record in flight through the mapping.
#[derive(Debug, Clone)]
pub struct Rec {
    ord: u64,
    seq: String,
    arrival: f64,
    bytes: usize,
    record: Record,
}

/// Why a batch went to the on-failure destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// MaximumRetryAttempts reached.
    RetryAttemptsExhausted,
    /// MaximumRecordAgeInSeconds passed.
    RecordAgeExceeded,
}

impl Condition {
    fn as_str(self) -> &'static str {
        match self {
            Condition::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            Condition::RecordAgeExceeded => "RecordAgeExceeded",
        }
    }
}

/// The on-failure record Lambda sends for a Kinesis batch: the shard and sequence range, not the
/// data. `responseContext` is there when the batch was invoked and failed: `functionError` is
/// `"Unhandled"` for a function error of any kind (error, timeout, crash, init error, memory) and
/// null for a batch retried from its partial response; it is absent when records expired by age,
/// whose invoke count is at least 1 all the same.
/// <https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html>
pub fn on_failure_record(
    function_arn: &str,
    stream_arn: &str,
    shard: &str,
    batch: &[Rec],
    condition: Condition,
    invokes: u32,
    last: Option<&Outcome>,
) -> serde_json::Value {
    let (first, lastr) = (batch.first(), batch.last());
    let mut doc = serde_json::Map::new();
    doc.insert(
        "requestContext".into(),
        json!({
            "requestId": crate::sandbox::request_id(),
            "functionArn": function_arn,
            "condition": condition.as_str(),
            "approximateInvokeCount": invokes.max(1),
        }),
    );
    if let (Some(outcome), Condition::RetryAttemptsExhausted) = (last, condition) {
        let error = if outcome.is_function_error() { json!("Unhandled") } else { serde_json::Value::Null };
        doc.insert(
            "responseContext".into(),
            json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": error}),
        );
    }
    doc.insert("version".into(), json!("1.0"));
    doc.insert("timestamp".into(), json!(iso_millis(chrono::Utc::now().timestamp_millis() as f64 / 1000.0)));
    doc.insert(
        "KinesisBatchInfo".into(),
        json!({
            "shardId": shard,
            "startSequenceNumber": first.map(|r| r.seq.as_str()).unwrap_or_default(),
            "endSequenceNumber": lastr.map(|r| r.seq.as_str()).unwrap_or_default(),
            "approximateArrivalOfFirstRecord": first.map(|r| iso_millis(r.arrival)).unwrap_or_default(),
            "approximateArrivalOfLastRecord": lastr.map(|r| iso_millis(r.arrival)).unwrap_or_default(),
            "batchSize": batch.len(),
            "streamArn": stream_arn,
        }),
    );
    serde_json::Value::Object(doc)
}

/// One lane of a shard: records waiting in order, and batches to run again first.
#[derive(Default)]
struct Lane {
    queue: VecDeque<Rec>,
    redo: VecDeque<Vec<Rec>>,
    attempts: u32,
    busy: bool,
    first_queued: Option<Instant>,
}

impl Lane {
    /// The next batch when one is due: a batch to redo at once; otherwise a full batch, or what is
    /// queued once the window has passed (at once with no window).
    fn take_batch(&mut self, s: &Settings, now: Instant) -> Option<Vec<Rec>> {
        if self.busy {
            return None;
        }
        if let Some(b) = self.redo.pop_front() {
            return Some(b);
        }
        let due = self.queue.len() >= s.batch_size
            || self.first_queued.is_some_and(|t| now.duration_since(t) >= s.window)
            || self.queue.iter().map(|r| r.bytes).sum::<usize>() >= MAX_PAYLOAD_BYTES;
        if self.queue.is_empty() || !due {
            return None;
        }
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(r) = self.queue.front() {
            if batch.len() >= s.batch_size || (!batch.is_empty() && bytes + r.bytes > MAX_PAYLOAD_BYTES) {
                break;
            }
            bytes += r.bytes;
            batch.extend(self.queue.pop_front());
        }
        self.first_queued = if self.queue.is_empty() { None } else { Some(now) };
        Some(batch)
    }

    fn due_at(&self, s: &Settings) -> Option<Instant> {
        if self.busy || !self.redo.is_empty() {
            return None;
        }
        self.first_queued.map(|t| t + s.window)
    }
}

/// A finished invocation: its lane, its batch, how it ended.
type Done = (usize, Vec<Rec>, Outcome);

/// How a shard's task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardEnd {
    /// Closed by a split or merge and every record done: its children may start.
    Closed,
    /// Caught up (`--until-idle`).
    Idle,
    /// The run is stopping.
    Stopped,
}

/// Runs one shard until it is closed and done, caught up (`until_idle`), or the run stops:
/// reading (`ShardReader`) and dispatching (`Dispatcher`) take turns, and the loop sleeps until
/// the next read, the next batch window or the next finished invocation.
pub async fn run_shard(ctx: Arc<Ctx>, shard: String, until_idle: bool) -> Result<ShardEnd, Error> {
    let mut reader = ShardReader::open(&ctx, &shard).await?;
    let mut dispatch = Dispatcher::new(ctx.clone(), shard.clone());
    loop {
        let stopping = ctx.shutdown.is_triggered();
        if stopping && dispatch.inflight.is_empty() {
            return Ok(ShardEnd::Stopped);
        }
        if !stopping {
            let records = reader.read(&ctx, dispatch.room()).await?;
            dispatch.enqueue(&records)?;
            dispatch.start_due().await?;
        }
        if reader.closed() && dispatch.idle() {
            // Lambda checkpoints a finished shard at its end; its children carry on.
            ctx.checkpoints.set(&shard, SHARD_END)?;
            return Ok(ShardEnd::Closed);
        }
        if until_idle && reader.caught_up() && dispatch.idle() {
            return Ok(ShardEnd::Idle);
        }
        let wake = dispatch.next_due().unwrap_or(reader.next_read()).min(reader.next_read());
        let wake = wake.max(Instant::now() + Duration::from_millis(5)).min(Instant::now() + IDLE_POLL);
        tokio::select! {
            Some(done) = dispatch.inflight.next(), if !dispatch.inflight.is_empty() => dispatch.settle(done).await?,
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = ctx.shutdown.wait(), if !stopping => {}
        }
    }
}

/// One shard's lanes and the invocations in flight.
struct Dispatcher {
    ctx: Arc<Ctx>,
    shard: String,
    lanes: Vec<Lane>,
    progress: Progress,
    inflight: FuturesUnordered<BoxFuture<'static, Done>>,
    /// Records read but not done, at most: reading pauses above it.
    cap: usize,
}

impl Dispatcher {
    fn new(ctx: Arc<Ctx>, shard: String) -> Dispatcher {
        let s = &ctx.settings;
        let cap = (s.batch_size * s.parallelization * 2).max(1_000);
        let lanes = (0..s.parallelization).map(|_| Lane::default()).collect();
        Dispatcher { ctx, shard, lanes, progress: Progress::default(), inflight: FuturesUnordered::new(), cap }
    }

    /// How many more records may be read now.
    fn room(&self) -> usize {
        self.cap.saturating_sub(self.progress.outstanding())
    }

    /// True when nothing is queued, waiting to be redone, or in flight.
    fn idle(&self) -> bool {
        self.lanes.iter().all(|l| l.queue.is_empty() && l.redo.is_empty()) && self.inflight.is_empty()
    }

    /// When the earliest batching window ends.
    fn next_due(&self) -> Option<Instant> {
        self.lanes.iter().filter_map(|l| l.due_at(&self.ctx.settings)).min()
    }

    /// Queues records just read, each in the lane of its partition key. A record the mapping's
    /// filters drop is done at once: checkpointed past, never invoked (as Lambda does).
    fn enqueue(&mut self, records: &[aws_sdk_kinesis::types::Record]) -> Result<(), Error> {
        let (ctx, now) = (self.ctx.clone(), Instant::now());
        for r in records {
            if !filter::matches(&ctx.settings.filters, r.data().as_ref()) {
                let ord = self.progress.read(r.sequence_number());
                ctx.stats.filtered(1);
                ctx.stats.records_done(1);
                if let Some(seq) = self.progress.done([ord]) {
                    ctx.checkpoints.set(&self.shard, &seq)?;
                }
                continue;
            }
            let source = Source {
                shard_id: &self.shard,
                stream_arn: &ctx.outputs.stream_arn,
                region: &ctx.outputs.region,
                role_arn: &ctx.role_arn,
            };
            let record = Record::from_kinesis(r, source);
            let rec = Rec {
                ord: self.progress.read(r.sequence_number()),
                seq: r.sequence_number().to_string(),
                arrival: r.approximate_arrival_timestamp().map_or(0.0, |t| t.as_secs_f64()),
                bytes: record.kinesis.data.len() + 512,
                record,
            };
            let lane = &mut self.lanes[lane_of(r.partition_key().unwrap_or_default(), ctx.settings.parallelization)];
            if lane.queue.is_empty() {
                lane.first_queued = Some(now);
            }
            lane.queue.push_back(rec);
        }
        Ok(())
    }

    /// Starts the batches that are due, one per idle lane; records past MaximumRecordAgeInSeconds
    /// are given up before the invocation, as Lambda does.
    async fn start_due(&mut self) -> Result<(), Error> {
        let ctx = self.ctx.clone();
        for i in 0..self.lanes.len() {
            let Some(mut batch) = self.lanes[i].take_batch(&ctx.settings, Instant::now()) else { continue };
            if let Some(age) = ctx.settings.max_record_age {
                let oldest_allowed = chrono::Utc::now().timestamp_millis() as f64 / 1000.0 - age.as_secs_f64();
                let expired = batch.iter().take_while(|r| r.arrival < oldest_allowed).count();
                if expired > 0 {
                    let old: Vec<Rec> = batch.drain(..expired).collect();
                    give_up(&ctx, &self.shard, &old, Condition::RecordAgeExceeded, 0, None).await;
                    self.finish(&old)?;
                }
            }
            if batch.is_empty() {
                continue;
            }
            self.lanes[i].busy = true;
            self.inflight.push(Box::pin(invoke(ctx.clone(), i, batch)));
        }
        Ok(())
    }

    /// Applies the verdict of a finished invocation to its lane.
    async fn settle(&mut self, (lane_index, batch, outcome): Done) -> Result<(), Error> {
        let ctx = self.ctx.clone();
        let s = &ctx.settings;
        self.lanes[lane_index].busy = false;
        let sequences: Vec<&str> = batch.iter().map(|r| r.seq.as_str()).collect();
        let v = verdict(&outcome, &sequences, s);
        ctx.stats.outcome(&outcome, &v);
        let retry = match v {
            Verdict::Done => {
                self.lanes[lane_index].attempts = 0;
                return self.finish(&batch);
            }
            Verdict::Bisect => {
                let mut first = batch;
                let second = first.split_off(first.len() / 2);
                let lane = &mut self.lanes[lane_index];
                lane.redo.push_front(second);
                lane.redo.push_front(first);
                return Ok(());
            }
            Verdict::RetryFrom(i) => {
                let mut done = batch;
                let rest = done.split_off(i);
                self.finish(&done)?;
                rest
            }
            Verdict::RetryAll => batch,
        };
        let lane = &mut self.lanes[lane_index];
        lane.attempts += 1;
        if s.max_retries.is_some_and(|max| lane.attempts > max) {
            let invokes = lane.attempts;
            lane.attempts = 0;
            give_up(&ctx, &self.shard, &retry, Condition::RetryAttemptsExhausted, invokes, Some(&outcome)).await;
            return self.finish(&retry);
        }
        ctx.stats.retry();
        lane.redo.push_front(retry);
        Ok(())
    }

    /// Marks records done and saves the shard's checkpoint when it moved.
    fn finish(&mut self, batch: &[Rec]) -> Result<(), Error> {
        self.ctx.stats.records_done(batch.len());
        if let Some(seq) = self.progress.done(batch.iter().map(|r| r.ord)) {
            self.ctx.checkpoints.set(&self.shard, &seq)?;
        }
        Ok(())
    }
}

/// Sends the on-failure record (when the mapping has a destination) and counts the records skipped.
async fn give_up(ctx: &Ctx, shard: &str, batch: &[Rec], condition: Condition, invokes: u32, last: Option<&Outcome>) {
    ctx.stats.skipped(batch.len());
    let doc = on_failure_record(&ctx.function_arn, &ctx.outputs.stream_arn, shard, batch, condition, invokes, last);
    tracing::warn!(shard, condition = condition.as_str(), records = batch.len(), "batch given up");
    let Some((sqs, url)) = &ctx.on_failure else { return };
    let sent = sqs.send_message().queue_url(url).message_body(doc.to_string()).send().await;
    if let Err(e) = sent {
        ctx.stats.error(format!("on-failure record for {shard}: {}", Error::aws("SendMessage", url, e)));
    }
}

/// The event of a batch, serialized from the records in place (the same JSON as `process::Event`).
#[derive(serde::Serialize)]
struct EventRef<'a> {
    #[serde(rename = "Records")]
    records: Vec<&'a Record>,
}

/// Runs one batch in a warm (or new) execution environment.
async fn invoke(ctx: Arc<Ctx>, lane: usize, batch: Vec<Rec>) -> Done {
    let event = EventRef { records: batch.iter().map(|r| &r.record).collect() };
    let body = Bytes::from(serde_json::to_vec(&event).unwrap_or_default());
    ctx.stats.delivered(batch.len());
    let outcome = match ctx.pool.take().await {
        Ok(mut env) => {
            let o = env.invoke(body).await;
            ctx.pool.give(env);
            o
        }
        Err(e) => Outcome::InitError(format!("could not open a Runtime API endpoint: {e}")),
    };
    ctx.stats.returned();
    (lane, batch, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            uuid: "u".into(),
            batch_size: 3,
            window: Duration::ZERO,
            start: Position::TrimHorizon,
            report_item_failures: true,
            bisect: true,
            max_retries: Some(2),
            max_record_age: None,
            parallelization: 1,
            on_failure: None,
            filters: Vec::new(),
        }
    }

    /// Settings stream local cannot honour are refused by name, with exit code 2; the rest read.
    #[test]
    fn settings_local_cannot_honour_are_refused() {
        use aws_sdk_lambda::types::{
            DestinationConfig, EventSourceMappingConfiguration, Filter, FilterCriteria, OnFailure,
        };
        let base =
            || EventSourceMappingConfiguration::builder().event_source_arn("arn:aws:kinesis:us-east-1:1:stream/s");
        let on_failure =
            |arn: &str| DestinationConfig::builder().on_failure(OnFailure::builder().destination(arn).build()).build();
        let filter = |p: &str| FilterCriteria::builder().filters(Filter::builder().pattern(p).build()).build();
        for (m, what) in [
            (base().tumbling_window_in_seconds(60).build(), "tumbling window"),
            (
                base().event_source_arn("arn:aws:kinesis:us-east-1:1:stream/s/consumer/c:1").build(),
                "enhanced fan-out consumer",
            ),
            (base().destination_config(on_failure("arn:aws:sns:us-east-1:1:topic")).build(), "other than SQS"),
            (
                base().filter_criteria(filter(r#"{"data":{"t":[{"wildcard":"*"}]}}"#)).build(),
                "a filter that uses \"wildcard\"",
            ),
        ] {
            let err = Settings::from_mapping(&m).expect_err(what);
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(what), "{err}");
        }
        let ok = base()
            .tumbling_window_in_seconds(0)
            .destination_config(on_failure("arn:aws:sqs:us-east-1:1:q"))
            .filter_criteria(filter(r#"{"data":{"lang":["en"]}}"#))
            .batch_size(7)
            .build();
        let s = Settings::from_mapping(&ok).expect("supported");
        assert_eq!((s.batch_size, s.filters.len(), s.on_failure.as_deref()), (7, 1, Some("arn:aws:sqs:us-east-1:1:q")));
    }

    /// Lambda's defaults where the mapping leaves a value out, -1 as "no limit", and values clamped
    /// to the ranges Lambda allows.
    #[test]
    fn a_mappings_settings_are_read_with_lambdas_defaults() {
        use aws_sdk_lambda::types::{
            DestinationConfig, EventSourceMappingConfiguration as Mapping, EventSourcePosition, FunctionResponseType,
            OnFailure,
        };
        let s = Settings::from_mapping(&Mapping::builder().build()).expect("defaults");
        assert_eq!(
            (s.batch_size, s.window, s.start, s.report_item_failures, s.bisect),
            (100, Duration::ZERO, Position::TrimHorizon, false, false)
        );
        assert_eq!((s.max_retries, s.max_record_age, s.parallelization, s.on_failure), (None, None, 1, None));
        let set = Mapping::builder()
            .uuid("u-1")
            .batch_size(20_000)
            .maximum_batching_window_in_seconds(5)
            .starting_position(EventSourcePosition::Latest)
            .function_response_types(FunctionResponseType::ReportBatchItemFailures)
            .bisect_batch_on_function_error(true)
            .maximum_retry_attempts(0)
            .maximum_record_age_in_seconds(60)
            .parallelization_factor(11)
            .build();
        let s = Settings::from_mapping(&set).expect("set");
        assert_eq!(
            (s.uuid.as_str(), s.batch_size, s.window, s.start),
            ("u-1", 10_000, Duration::from_secs(5), Position::Latest)
        );
        assert_eq!((s.report_item_failures, s.bisect, s.max_retries), (true, true, Some(0)));
        assert_eq!((s.max_record_age, s.parallelization), (Some(Duration::from_secs(60)), 10));
        let blank = DestinationConfig::builder().on_failure(OnFailure::builder().destination("").build()).build();
        let unlimited = Mapping::builder()
            .batch_size(0)
            .maximum_batching_window_in_seconds(-3)
            .starting_position(EventSourcePosition::AtTimestamp)
            .starting_position_timestamp(aws_smithy_types::DateTime::from_secs_f64(1_700_000_000.5))
            .maximum_retry_attempts(-1)
            .maximum_record_age_in_seconds(-1)
            .parallelization_factor(0)
            .destination_config(blank)
            .build();
        let s = Settings::from_mapping(&unlimited).expect("unlimited");
        assert_eq!((s.batch_size, s.window, s.start), (1, Duration::ZERO, Position::AtTimestamp(1_700_000_000.5)));
        assert_eq!((s.max_retries, s.max_record_age, s.parallelization, s.on_failure), (None, None, 1, None));
    }

    /// What a finished invocation does to its lane: a partial failure finishes the records before
    /// the lowest reported one (the checkpoint moves) and redoes the rest with a retry used; a
    /// function error bisects without using one; a record that fails past MaximumRetryAttempts is
    /// given up and checkpointed past; success resets the count.
    #[tokio::test]
    async fn a_finished_invocation_moves_its_lane_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shard = "shardId-000000000000";
        let ctx = crate::local::test_ctx(Settings { max_retries: Some(1), ..settings() }, dir.path());
        let mut d = Dispatcher::new(ctx.clone(), shard.into());
        let batch: Vec<Rec> =
            ["1", "2", "3"].iter().map(|seq| Rec { ord: d.progress.read(seq), ..rec(seq, 0.0) }).collect();
        let redo = |d: &Dispatcher| -> Vec<Vec<String>> {
            d.lanes[0].redo.iter().map(|b| b.iter().map(|r| r.seq.clone()).collect()).collect()
        };
        let next = |d: &mut Dispatcher| {
            let batch = d.lanes[0].take_batch(&ctx.settings, Instant::now()).expect("a batch to redo");
            d.lanes[0].busy = true;
            batch
        };
        d.lanes[0].busy = true;
        let partial = response(r#"{"batchItemFailures":[{"itemIdentifier":"3"},{"itemIdentifier":"2"}]}"#);
        d.settle((0, batch, partial)).await.expect("settle");
        assert!(!d.lanes[0].busy);
        assert_eq!((ctx.checkpoints.get(shard).as_deref(), ctx.stats.snapshot().records), (Some("1"), 1));
        assert_eq!((redo(&d), d.lanes[0].attempts), (vec![vec!["2".to_string(), "3".into()]], 1));
        assert!(!d.idle(), "a batch to redo");
        let rest = next(&mut d);
        d.settle((0, rest, Outcome::Timeout)).await.expect("settle");
        assert_eq!((redo(&d), d.lanes[0].attempts), (vec![vec!["2".to_string()], vec!["3".into()]], 1));
        let two = next(&mut d);
        d.settle((0, two, Outcome::Timeout)).await.expect("settle");
        let counts = ctx.stats.snapshot();
        assert_eq!((counts.skipped, counts.records, counts.retries), (1, 2, 1), "{counts:?}");
        assert_eq!((ctx.checkpoints.get(shard).as_deref(), d.lanes[0].attempts), (Some("2"), 0));
        let three = next(&mut d);
        d.settle((0, three, Outcome::Timeout)).await.expect("settle");
        assert_eq!((d.lanes[0].attempts, ctx.stats.snapshot().retries), (1, 2), "one retry of 3");
        let three = next(&mut d);
        d.settle((0, three, response("{}"))).await.expect("settle");
        assert_eq!((ctx.checkpoints.get(shard).as_deref(), d.lanes[0].attempts), (Some("3"), 0));
        assert_eq!((ctx.stats.snapshot().records, ctx.stats.snapshot().skipped), (3, 1));
        assert!(d.idle() && redo(&d).is_empty());
    }

    /// Records past MaximumRecordAgeInSeconds are given up before the invocation (counted skipped,
    /// checkpointed past) and the rest of the batch is invoked; the records read bound what may be
    /// read next, and the shard is idle only with nothing queued or in flight.
    #[tokio::test]
    async fn records_past_their_age_are_given_up_before_the_invocation() {
        use aws_sdk_kinesis::primitives::{Blob, DateTime};
        let dir = tempfile::tempdir().expect("tempdir");
        let shard = "shardId-000000000000";
        let s = Settings { batch_size: 10, max_record_age: Some(Duration::from_secs(60)), ..settings() };
        let ctx = crate::local::test_ctx(s, dir.path());
        let mut d = Dispatcher::new(ctx.clone(), shard.into());
        assert!(d.idle() && d.next_due().is_none());
        assert_eq!(d.room(), 1_000, "at least 1,000 records may be read ahead");
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let records: Vec<aws_sdk_kinesis::types::Record> = [now - 120.0, now - 90.0, now - 5.0]
            .iter()
            .enumerate()
            .map(|(i, at)| {
                aws_sdk_kinesis::types::Record::builder()
                    .sequence_number((i + 1).to_string())
                    .partition_key("k")
                    .data(Blob::new(r#"{"id":1}"#))
                    .approximate_arrival_timestamp(DateTime::from_secs_f64(*at))
                    .build()
                    .expect("record")
            })
            .collect();
        d.enqueue(&records).expect("enqueue");
        assert!(!d.idle() && d.next_due().is_some());
        assert_eq!(d.room(), 997);
        assert!(d.lanes[0].queue.iter().all(|r| r.bytes == r.record.kinesis.data.len() + 512), "data and fields");
        d.start_due().await.expect("start");
        let counts = ctx.stats.snapshot();
        assert_eq!((counts.skipped, counts.records), (2, 2), "{counts:?}");
        assert_eq!(ctx.checkpoints.get(shard).as_deref(), Some("2"));
        assert_eq!((d.inflight.len(), d.lanes[0].busy, d.room()), (1, true, 999), "the third is invoked");
        assert!(!d.idle(), "an invocation in flight");
        let wide = crate::local::test_ctx(Settings { batch_size: 1_000, parallelization: 2, ..settings() }, dir.path());
        assert_eq!(Dispatcher::new(wide, shard.into()).room(), 4_000, "two batches per lane");
    }

    fn response(json: &str) -> Outcome {
        Outcome::Response(Bytes::from(json.to_string()))
    }

    #[test]
    fn partial_failures_retry_from_the_lowest_reported_record() {
        let seqs = ["1", "2", "3", "4"];
        let s = settings();
        assert_eq!(verdict(&response(r#"{"batchItemFailures":[]}"#), &seqs, &s), Verdict::Done);
        assert_eq!(verdict(&response(""), &seqs, &s), Verdict::Done);
        assert_eq!(verdict(&response("null"), &seqs, &s), Verdict::Done);
        assert_eq!(verdict(&response(r#"{"batchItemFailures":null}"#), &seqs, &s), Verdict::Done);
        let two = r#"{"batchItemFailures":[{"itemIdentifier":"4"},{"itemIdentifier":"3"}]}"#;
        assert_eq!(verdict(&response(two), &seqs, &s), Verdict::RetryFrom(2));
        let first = r#"{"batchItemFailures":[{"itemIdentifier":"1"}]}"#;
        assert_eq!(verdict(&response(first), &seqs, &s), Verdict::RetryAll);
        // Identifiers that are empty, missing or not in the batch fail all of it.
        for bad in [
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{"id":"2"}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"9"}]}"#,
            "not json",
        ] {
            assert_eq!(verdict(&response(bad), &seqs, &s), Verdict::RetryAll, "{bad}");
        }
        // Without ReportBatchItemFailures a response is success whatever it says.
        let plain = Settings { report_item_failures: false, ..settings() };
        assert_eq!(verdict(&response(two), &seqs, &plain), Verdict::Done);
    }

    #[test]
    fn function_errors_bisect_down_to_one_record_then_retry() {
        let s = settings();
        for o in [Outcome::Timeout, Outcome::Crash("killed".into()), Outcome::InitError("x".into())] {
            assert_eq!(verdict(&o, &["1", "2"], &s), Verdict::Bisect);
            assert_eq!(verdict(&o, &["1"], &s), Verdict::RetryAll);
        }
        let no_bisect = Settings { bisect: false, ..settings() };
        assert_eq!(verdict(&Outcome::Timeout, &["1", "2"], &no_bisect), Verdict::RetryAll);
    }

    #[test]
    fn a_key_always_has_the_same_lane() {
        for key in ["ana", "bo", "çağla", ""] {
            let lane = lane_of(key, 4);
            assert!(lane < 4);
            assert_eq!(lane_of(key, 4), lane);
            assert_eq!(lane_of(key, 1), 0);
        }
        let used: std::collections::HashSet<usize> = (0..100).map(|i| lane_of(&format!("user{i}"), 4)).collect();
        assert_eq!(used.len(), 4, "keys spread over the lanes");
    }

    /// Each record read is queued in the lane of its partition key, whatever its place in the read
    /// or in the shard: every record of a key in one lane (`lane_of`'s), in the order read. Lanes
    /// by position or in turn would put a key's consecutive records in different lanes.
    #[test]
    fn records_are_queued_in_the_lane_of_their_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Settings { parallelization: 4, batch_size: 100, ..settings() };
        let mut d = Dispatcher::new(crate::local::test_ctx(s, dir.path()), "shardId-000000000000".into());
        // Keys in runs and interleaved, over two reads of odd sizes.
        let keys: Vec<String> = (0..40).map(|i: usize| format!("user{}", (i / 3 + i % 2) % 5)).collect();
        let records: Vec<aws_sdk_kinesis::types::Record> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                aws_sdk_kinesis::types::Record::builder()
                    .sequence_number(format!("{:05}", i + 1))
                    .partition_key(k)
                    .data(aws_sdk_kinesis::primitives::Blob::new(r#"{"id":1}"#))
                    .build()
                    .expect("record")
            })
            .collect();
        d.enqueue(&records[..13]).expect("enqueue");
        d.enqueue(&records[13..]).expect("enqueue");
        let mut queued = 0;
        for (i, lane) in d.lanes.iter().enumerate() {
            let got: Vec<(&str, &str)> = lane
                .queue
                .iter()
                .map(|r| (r.record.kinesis.partition_key.as_str(), r.record.kinesis.sequence_number.as_str()))
                .collect();
            for (key, seq) in &got {
                assert_eq!(lane_of(key, 4), i, "{key} ({seq}) is in lane {i}, not its own: {got:?}");
            }
            assert!(got.windows(2).all(|w| w[0].1 < w[1].1), "lane {i} keeps the order read: {got:?}");
            queued += got.len();
        }
        assert_eq!(queued, 40);
        assert!(d.lanes.iter().filter(|l| !l.queue.is_empty()).count() > 1, "the keys use several lanes");
    }

    fn rec(seq: &str, arrival: f64) -> Rec {
        Rec {
            ord: 0,
            seq: seq.into(),
            arrival,
            bytes: 10,
            record: serde_json::from_value(json!({
                "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "k", "sequenceNumber": seq, "data": "",
                    "approximateArrivalTimestamp": arrival},
                "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": "s:1", "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "", "awsRegion": "us-east-1", "eventSourceARN": "arn"
            }))
            .expect("record"),
        }
    }

    /// AWS's documented example record (Lambda developer guide, "kinesis-on-failure-destination"),
    /// request id and timestamp aside: same fields, same nesting, same order, same values.
    #[test]
    fn the_on_failure_record_is_the_documented_one() {
        const DOCUMENTED: &str = r#"{
    "requestContext": {
        "requestId": "c9b8fa9f-5a7f-xmpl-af9c-0c604cde93a5",
        "functionArn": "arn:aws:lambda:us-east-2:123456789012:function:myfunction",
        "condition": "RetryAttemptsExhausted",
        "approximateInvokeCount": 1
    },
    "responseContext": {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled"
    },
    "version": "1.0",
    "timestamp": "2019-11-14T00:38:06.021Z",
    "KinesisBatchInfo": {
        "shardId": "shardId-000000000001",
        "startSequenceNumber": "49601189658422359378836298521827638475320189012309704722",
        "endSequenceNumber": "49601189658422359378836298522902373528957594348623495186",
        "approximateArrivalOfFirstRecord": "2019-11-14T00:38:04.835Z",
        "approximateArrivalOfLastRecord": "2019-11-14T00:38:05.580Z",
        "batchSize": 500,
        "streamArn": "arn:aws:kinesis:us-east-2:123456789012:stream/mystream"
    }
}"#;
        let mut batch: Vec<Rec> = (0..500).map(|i| rec(&i.to_string(), 1_573_691_884.835)).collect();
        batch[0].seq = "49601189658422359378836298521827638475320189012309704722".into();
        batch[499].seq = "49601189658422359378836298522902373528957594348623495186".into();
        batch[499].arrival = 1_573_691_885.580;
        let outcomes = [
            Outcome::Error { error_type: "Runtime.Unknown".into(), message: "boom".into() },
            Outcome::Timeout,
            Outcome::Crash("killed".into()),
            Outcome::InitError("Runtime.ConfigError".into()),
        ];
        for outcome in outcomes {
            let mut doc = on_failure_record(
                "arn:aws:lambda:us-east-2:123456789012:function:myfunction",
                "arn:aws:kinesis:us-east-2:123456789012:stream/mystream",
                "shardId-000000000001",
                &batch,
                Condition::RetryAttemptsExhausted,
                1,
                Some(&outcome),
            );
            assert_eq!(doc["requestContext"]["requestId"].as_str().map(str::len), Some(36));
            doc["requestContext"]["requestId"] = json!("c9b8fa9f-5a7f-xmpl-af9c-0c604cde93a5");
            doc["timestamp"] = json!("2019-11-14T00:38:06.021Z");
            let expected: serde_json::Value = serde_json::from_str(DOCUMENTED).expect("the documented record");
            assert_eq!(
                serde_json::to_string(&doc).expect("json"),
                serde_json::to_string(&expected).expect("json"),
                "{outcome:?}"
            );
        }
    }

    /// A batch retried from its partial response is no function error: `functionError` is null.
    /// Records that expired by age carry no response at all, and an invoke count of at least 1 (as
    /// AWS records them).
    #[test]
    fn partial_failures_and_expired_records_are_told_apart() {
        let batch = [rec("100", 1_700_000_000.25), rec("200", 1_700_000_001.5)];
        let partial = Outcome::Response(Bytes::from_static(br#"{"batchItemFailures":[{"itemIdentifier":"100"}]}"#));
        let doc =
            on_failure_record("arn:f", "arn:s", "s", &batch, Condition::RetryAttemptsExhausted, 3, Some(&partial));
        assert_eq!(
            doc["responseContext"],
            json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": null})
        );
        assert_eq!(doc["requestContext"]["approximateInvokeCount"], 3);
        let aged = on_failure_record("arn:f", "arn:s", "s", &batch, Condition::RecordAgeExceeded, 0, None);
        assert_eq!(aged["requestContext"]["condition"], "RecordAgeExceeded");
        assert_eq!(aged["requestContext"]["approximateInvokeCount"], 1);
        assert!(aged.get("responseContext").is_none());
        assert_eq!(aged["KinesisBatchInfo"]["approximateArrivalOfFirstRecord"], "2023-11-14T22:13:20.250Z");
        assert_eq!(aged["KinesisBatchInfo"]["batchSize"], 2);
    }

    #[test]
    fn the_batch_is_serialized_exactly_as_the_event_type() {
        let batch = [rec("1", 1.5), rec("2", 2.25)];
        let ours = serde_json::to_string(&EventRef { records: batch.iter().map(|r| &r.record).collect() });
        let event = crate::process::Event { records: batch.iter().map(|r| r.record.clone()).collect() };
        assert_eq!(ours.expect("json"), serde_json::to_string(&event).expect("json"));
    }

    #[test]
    fn lanes_batch_by_size_or_window() {
        let s = Settings { window: Duration::from_secs(1), ..settings() };
        let now = Instant::now();
        let mut lane = Lane::default();
        lane.queue.extend([rec("1", 0.0), rec("2", 0.0)]);
        lane.first_queued = Some(now);
        assert!(lane.take_batch(&s, now).is_none(), "not full, window open");
        let batch = lane.take_batch(&s, now + Duration::from_secs(1)).expect("window passed");
        assert_eq!(batch.len(), 2);
        lane.queue.extend([rec("3", 0.0), rec("4", 0.0), rec("5", 0.0), rec("6", 0.0)]);
        lane.first_queued = Some(now);
        assert_eq!(lane.take_batch(&s, now).expect("full").len(), 3);
        lane.redo.push_back(vec![rec("9", 0.0)]);
        assert_eq!(lane.take_batch(&s, now).expect("redo first")[0].seq, "9");
        lane.busy = true;
        assert!(lane.take_batch(&s, now + Duration::from_secs(5)).is_none(), "one batch at a time per lane");
        // 6 MB of records is due at once, window open and batch not full, and is what one event holds.
        let s = Settings { batch_size: 100, ..s };
        let mut lane = Lane::default();
        lane.queue.extend((0..7).map(|i| Rec { bytes: 1024 * 1024, ..rec(&i.to_string(), 0.0) }));
        lane.first_queued = Some(now);
        assert_eq!(lane.take_batch(&s, now).map(|b| b.len()), Some(6), "6 MB due, a 7th MB waits");
        assert!(lane.take_batch(&s, now).is_none(), "1 MB left: not due");
        // The lane wakes its shard when its window ends; not while busy or with a batch to redo.
        assert_eq!(lane.due_at(&s), Some(now + Duration::from_secs(1)));
        lane.redo.push_back(Vec::new());
        assert_eq!(lane.due_at(&s), None);
        lane.redo.clear();
        lane.busy = true;
        assert_eq!(lane.due_at(&s), None);
    }
}
