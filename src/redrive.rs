//! `stream redrive`: the batches the event source mapping gave up on, sent through the function
//! again. The on-failure queue (`<stack>-FailedBatches`) holds only where each batch was (shard,
//! first and last sequence number), so the records are read back from the stream while it still
//! holds them (those past its retention are reported lost to the stream), shown (`--dry-run`),
//! then sent as the same Kinesis event: to the deployed function with Lambda's Invoke, or with
//! `--local` to the function run here in `stream local`'s execution environment. A message is
//! deleted only when its whole batch succeeded; the others stay for the next run. Records of other
//! lanes (a parallelization factor above 1) between the first and last are sent too: the
//! function's writes are idempotent, so a record done twice lands once.
//! <https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html>

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_kinesis::types::ShardIteratorType;
use base64::Engine;
use bytes::Bytes;
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::args::at_least;
use crate::aws::Clients;
use crate::error::Error;
use crate::process::event::{Event, Record, Source};
use crate::progress;
use crate::sandbox::{self, Environment, Outcome, function};
use crate::stack::{self, Deployed};
use crate::template::output;

/// Lambda's synchronous Invoke takes at most 6 MB of payload.
const MAX_INVOKE_PAYLOAD: usize = 6 * 1024 * 1024 - 4096;
/// How long a message being redriven stays hidden from other readers of the queue.
const VISIBILITY_S: i32 = 900;

/// `stream redrive`
#[derive(Debug, Clone, Args)]
pub struct RedriveArgs {
    /// Show the failed batches and their records; send nothing, delete nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Send the records to the function run here, in `stream local`'s execution environment,
    /// instead of the deployed function
    #[arg(long)]
    pub local: bool,

    /// Where `stream local` keeps its state, with --local (default: $XDG_STATE_HOME/stream or
    /// ~/.local/state/stream)
    #[arg(long, value_name = "DIR", env = "STREAM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Redrive at most N failed batches
    #[arg(long, value_name = "N", value_parser = at_least::<u64>(1))]
    pub limit: Option<u64>,

    /// Delete the message of a batch whose records past the stream's retention are lost, once
    /// every record the stream still holds succeeded (without it, such a message stays)
    #[arg(long)]
    pub forget_lost: bool,
}

/// Where a failed batch was: `KinesisBatchInfo` of the on-failure record (read in its camelCase,
/// shown in our snake_case).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all(deserialize = "camelCase"))]
pub struct BatchInfo {
    /// The shard.
    pub shard_id: String,
    /// The batch's first record.
    pub start_sequence_number: String,
    /// The batch's last record.
    pub end_sequence_number: String,
    /// Records in the batch.
    pub batch_size: u64,
    /// The stream.
    pub stream_arn: String,
}

/// The parts of an on-failure record redrive reads.
#[derive(Debug, Deserialize)]
struct OnFailure {
    #[serde(rename = "KinesisBatchInfo")]
    batch: BatchInfo,
}

/// One record read back, as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shown {
    /// Its sequence number.
    pub sequence: String,
    /// Its partition key.
    pub partition_key: String,
    /// Its data, when UTF-8; else base64 with a `base64:` prefix.
    pub data: String,
}

/// What became of one failed batch.
#[derive(Debug, Clone, Serialize)]
pub struct Batch {
    /// Where it was.
    #[serde(flatten)]
    pub info: BatchInfo,
    /// Records read back from the stream (between the first and last, other lanes' included).
    pub records: Vec<Shown>,
    /// Records of the batch the stream no longer holds (past its retention, or its shard gone).
    pub lost: u64,
    /// Records the function reported failed, or all of them when the invocation failed.
    pub failed: u64,
    /// Why it did not succeed, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// True when its message was deleted from the queue.
    pub deleted: bool,
}

/// The summary of `stream redrive`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RedriveOutput {
    /// The on-failure queue.
    pub queue: String,
    /// Where the records were sent: the deployed function, the local one, or nowhere (dry run).
    pub target: String,
    /// Each failed batch.
    pub batches: Vec<Batch>,
}

impl RedriveOutput {
    /// The error that decides the exit code: batches left in the queue (not in a dry run).
    pub fn problem(&self) -> Option<Error> {
        let kept = self.batches.iter().filter(|b| !b.deleted).count();
        (self.target != "nowhere (dry run)" && kept > 0).then(|| Error::Partial {
            what: format!("{kept} of {} failed batches did not succeed and stay in the queue", self.batches.len()),
            hint: "see why above; fix it, then run `stream redrive` again".into(),
        })
    }
}

impl fmt::Display for RedriveOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.batches.is_empty() {
            return write!(f, "nothing to redrive: {} is empty", self.queue);
        }
        for b in &self.batches {
            let i = &b.info;
            writeln!(
                f,
                "{}  {}..{}  {} records in the batch, {} read back, {} lost to the stream, {} failed{}{}",
                i.shard_id,
                i.start_sequence_number,
                i.end_sequence_number,
                i.batch_size,
                b.records.len(),
                b.lost,
                b.failed,
                if b.deleted { ", done (message deleted)" } else { "" },
                b.problem.as_deref().map(|p| format!(": {p}")).unwrap_or_default()
            )?;
            if self.target == "nowhere (dry run)" {
                for r in &b.records {
                    writeln!(f, "  {}  {}  {}", r.sequence, r.partition_key, r.data.escape_default())?;
                }
            }
        }
        let done = self.batches.iter().filter(|b| b.deleted).count();
        write!(f, "{} failed batches from {}; {done} redriven to {}", self.batches.len(), self.queue, self.target)
    }
}

/// `stream redrive`: each failed batch read back, sent, and its message deleted when it succeeded.
pub async fn run(args: &RedriveArgs, stack_name: &str, clients: &Clients) -> Result<RedriveOutput, Error> {
    let deployed = stack::load(clients, stack_name).await?;
    let queue = queue_url(&deployed)?;
    let messages = receive(clients, &queue, args.limit).await?;
    let mut target = Target::new(args, stack_name, clients, &deployed).await?;
    let mut batches = Vec::new();
    for message in &messages {
        let batch = redrive_one(clients, &deployed, &mut target, message, args).await;
        let handle = message.receipt_handle().unwrap_or_default();
        let settled = match &batch {
            Ok(b) if b.deleted => clients
                .sqs
                .delete_message()
                .queue_url(&queue)
                .receipt_handle(handle)
                .send()
                .await
                .map(drop)
                .map_err(|e| Error::aws("DeleteMessage", &queue, e)),
            // Kept: visible again at once, for the next run (or another reader).
            _ => release(clients, &queue, handle).await,
        };
        settled?;
        batches.push(batch?);
    }
    target.stop().await;
    Ok(RedriveOutput { queue, target: target.name(), batches })
}

/// The on-failure queue's URL, from the stack's outputs.
fn queue_url(deployed: &Deployed) -> Result<String, Error> {
    let found = deployed.stack.outputs().iter().find(|o| o.output_key() == Some(output::FAILED_QUEUE_URL));
    found.and_then(|o| o.output_value()).map(str::to_string).ok_or_else(|| {
        let name = deployed.stack.stack_name().unwrap_or_default();
        Error::failed(
            format!("stack \"{name}\" has no output {}", output::FAILED_QUEUE_URL),
            format!("run `stream deploy --stack {name}` to update it"),
        )
    })
}

/// Every message of the queue (up to `limit`), each hidden while this run works on it.
async fn receive(
    clients: &Clients,
    queue: &str,
    limit: Option<u64>,
) -> Result<Vec<aws_sdk_sqs::types::Message>, Error> {
    let (mut got, mut ids) = (Vec::new(), BTreeSet::new());
    let limit = limit.unwrap_or(u64::MAX) as usize;
    while got.len() < limit {
        let out = clients
            .sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages((limit - got.len()).min(10) as i32)
            .visibility_timeout(VISIBILITY_S)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| Error::aws("ReceiveMessage", queue, e))?;
        let fresh: Vec<_> = out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter(|m| ids.insert(m.message_id().unwrap_or_default().to_string()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        got.extend(fresh);
    }
    Ok(got)
}

/// Makes a message visible again at once.
async fn release(clients: &Clients, queue: &str, handle: &str) -> Result<(), Error> {
    let req = clients.sqs.change_message_visibility().queue_url(queue).receipt_handle(handle).visibility_timeout(0);
    req.send().await.map(drop).map_err(|e| Error::aws("ChangeMessageVisibility", queue, e))
}

/// Reads back, sends and judges one failed batch.
async fn redrive_one(
    clients: &Clients,
    deployed: &Deployed,
    target: &mut Target,
    message: &aws_sdk_sqs::types::Message,
    args: &RedriveArgs,
) -> Result<Batch, Error> {
    let body = message.body().unwrap_or_default();
    let info = serde_json::from_str::<OnFailure>(body).map(|o| o.batch).map_err(|e| {
        Error::failed(
            format!(
                "a message of the on-failure queue is not an on-failure record ({e}): {}",
                body.chars().take(200).collect::<String>()
            ),
            "remove it from the queue (it is not a failed batch of this stack's mapping)",
        )
    })?;
    let mut batch = Batch { info, records: Vec::new(), lost: 0, failed: 0, problem: None, deleted: false };
    if batch.info.stream_arn != deployed.outputs.stream_arn {
        batch.problem =
            Some(format!("the batch is from another stream ({}): left in the queue", batch.info.stream_arn));
        return Ok(batch);
    }
    let (records, lost, why_lost) = read_back(clients, &deployed.outputs.stream_name, &batch.info).await?;
    batch.records = records.iter().map(shown).collect();
    batch.lost = lost;
    if args.dry_run {
        batch.problem = why_lost;
        return Ok(batch);
    }
    progress::status(format!(
        "stream redrive: sending {} records of {} {}..{}",
        records.len(),
        batch.info.shard_id,
        batch.info.start_sequence_number,
        batch.info.end_sequence_number
    ));
    let source = Source {
        shard_id: &batch.info.shard_id,
        stream_arn: &deployed.outputs.stream_arn,
        region: &deployed.outputs.region,
        role_arn: &target.role_arn,
    };
    let event: Vec<Record> = records.iter().map(|r| Record::from_kinesis(r, source)).collect();
    let failed = target.send(&event).await?;
    settle(&mut batch, failed, why_lost, args.forget_lost);
    Ok(batch)
}

/// What the function's answer makes of a batch: its message is deleted only when no record failed
/// and none is lost to the stream, or the lost ones are to be forgotten (`--forget-lost`); the
/// reason shown is the failure's, else the loss's.
fn settle(batch: &mut Batch, failed: Option<(u64, String)>, why_lost: Option<String>, forget_lost: bool) {
    batch.deleted = failed.is_none() && (batch.lost == 0 || forget_lost);
    batch.failed = failed.as_ref().map_or(0, |(n, _)| *n);
    batch.problem = failed.map(|(_, why)| why).or(why_lost);
}

/// The records from the batch's first to its last sequence number, how many of the batch the
/// stream no longer holds, and why.
async fn read_back(
    clients: &Clients,
    stream: &str,
    info: &BatchInfo,
) -> Result<(Vec<aws_sdk_kinesis::types::Record>, u64, Option<String>), Error> {
    let where_ = format!("{stream}/{}", info.shard_id);
    let it = clients
        .kinesis
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(&info.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(&info.start_sequence_number)
        .send()
        .await;
    let mut iterator = match it {
        Ok(out) => out.shard_iterator,
        Err(e) => {
            let err = Error::aws("GetShardIterator", &where_, e);
            return match err.code() {
                Some("ResourceNotFoundException" | "InvalidArgumentException") => {
                    Ok((Vec::new(), info.batch_size, Some(format!("the stream no longer holds this batch ({err})"))))
                }
                _ => Err(err),
            };
        }
    };
    let mut records = Vec::new();
    while let Some(it) = iterator.take() {
        let page = clients.kinesis.get_records().shard_iterator(it).limit(10_000).send().await;
        let page = page.map_err(|e| Error::aws("GetRecords", &where_, e))?;
        let empty = page.records().is_empty();
        for r in page.records {
            if seq_after(r.sequence_number(), &info.end_sequence_number) {
                return Ok(judge(records, info));
            }
            records.push(r);
        }
        if empty && page.millis_behind_latest.unwrap_or(0) == 0 {
            break;
        }
        iterator = page.next_shard_iterator;
    }
    Ok(judge(records, info))
}

/// How many of the batch are lost: the first record read is not the batch's first (trimmed past
/// retention), or fewer records than the batch held came back.
fn judge(
    records: Vec<aws_sdk_kinesis::types::Record>,
    info: &BatchInfo,
) -> (Vec<aws_sdk_kinesis::types::Record>, u64, Option<String>) {
    let starts_right = records.first().is_some_and(|r| r.sequence_number() == info.start_sequence_number);
    let lost = if starts_right { 0 } else { info.batch_size.saturating_sub(records.len() as u64).max(1) };
    let why = (lost > 0).then(|| format!("{lost} records of the batch are past the stream's retention and lost to it"));
    (records, lost, why)
}

/// True when sequence number `a` comes after `b` (both decimal, of any length).
fn seq_after(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

fn shown(r: &aws_sdk_kinesis::types::Record) -> Shown {
    let data = match std::str::from_utf8(r.data().as_ref()) {
        Ok(text) => text.to_string(),
        Err(_) => format!("base64:{}", base64::engine::general_purpose::STANDARD.encode(r.data().as_ref())),
    };
    Shown {
        sequence: r.sequence_number().to_string(),
        partition_key: r.partition_key().unwrap_or_default().to_string(),
        data,
    }
}

/// Where the records go.
struct Target {
    kind: Kind,
    /// The function's execution role (the records' invokeIdentityArn).
    role_arn: String,
}

enum Kind {
    DryRun,
    Deployed { lambda: aws_sdk_lambda::Client, function: String, timeout_s: u64 },
    Local(Box<Environment>),
}

impl Target {
    async fn new(
        args: &RedriveArgs,
        stack_name: &str,
        clients: &Clients,
        deployed: &Deployed,
    ) -> Result<Target, Error> {
        let function = stack::function_configuration(clients, &deployed.outputs.function_name).await?;
        let role_arn = function.role().unwrap_or_default().to_string();
        let kind = if args.dry_run {
            Kind::DryRun
        } else if args.local {
            deployed.local_run()?;
            let dir = sandbox::state_dir(args.state_dir.as_deref(), &clients.region, stack_name)?;
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
            let (_, log) = function::log_sink(&dir, |_| {})?;
            let prepared = function::prepare(
                clients,
                &function,
                deployed.parameter(crate::template::param::ARCHITECTURE),
                deployed.code()?,
                &dir,
                log,
            )
            .await?;
            let env =
                Environment::new(Arc::new(prepared.spec)).await.map_err(|e| Error::io("the local Runtime API", e))?;
            Kind::Local(Box::new(env))
        } else {
            let timeout_s = function.timeout().unwrap_or(3).max(1) as u64;
            Kind::Deployed {
                lambda: clients.lambda.clone(),
                function: deployed.outputs.function_name.clone(),
                timeout_s,
            }
        };
        Ok(Target { kind, role_arn })
    }

    fn name(&self) -> String {
        match &self.kind {
            Kind::DryRun => "nowhere (dry run)".into(),
            Kind::Deployed { function, .. } => format!("function {function} (Invoke)"),
            Kind::Local(_) => "the function run here (stream local's environment)".into(),
        }
    }

    /// Sends `records` as Kinesis events of at most 6 MB each; None when every one succeeded, else
    /// how many failed and why.
    async fn send(&mut self, records: &[Record]) -> Result<Option<(u64, String)>, Error> {
        for chunk in chunks(records) {
            let payload = serde_json::to_vec(&Event { records: chunk.to_vec() })
                .map_err(|e| Error::failed(format!("writing the event: {e}"), "report this as a bug"))?;
            let answer = match &mut self.kind {
                Kind::DryRun => return Ok(None),
                Kind::Deployed { lambda, function, timeout_s } => invoke(lambda, function, *timeout_s, payload).await,
                Kind::Local(env) => match env.invoke(Bytes::from(payload)).await {
                    Outcome::Response(body) => Ok(body.to_vec()),
                    other => Err(format!("the function failed: {}", other.kind())),
                },
            };
            let failed = match answer {
                Ok(body) => failures(&body, chunk),
                Err(why) => Some((chunk.len() as u64, why)),
            };
            if failed.is_some() {
                return Ok(failed);
            }
        }
        Ok(None)
    }

    async fn stop(&mut self) {
        if let Kind::Local(env) = &mut self.kind {
            env.stop().await;
        }
    }
}

/// The records in events of at most 6 MB (the base64 data and the record's fields) and 10,000
/// records, as a synchronous Invoke takes them.
fn chunks(records: &[Record]) -> Vec<&[Record]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, r) in records.iter().enumerate() {
        let size = r.kinesis.data.len() + r.kinesis.partition_key.len() + 600;
        if i > start && (bytes + size > MAX_INVOKE_PAYLOAD || i - start == 10_000) {
            out.push(&records[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}

/// Invokes the deployed function synchronously with `payload`; its answer, or why it failed. The
/// call may take as long as the function's timeout.
async fn invoke(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    timeout_s: u64,
    payload: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let wait = std::time::Duration::from_secs(timeout_s + 30);
    let timeouts =
        aws_smithy_types::timeout::TimeoutConfig::builder().read_timeout(wait).operation_attempt_timeout(wait).build();
    let out = lambda
        .invoke()
        .function_name(function)
        .payload(aws_sdk_lambda::primitives::Blob::new(payload))
        .customize()
        .config_override(aws_sdk_lambda::config::Builder::default().timeout_config(timeouts))
        .send()
        .await
        .map_err(|e| Error::aws("Invoke", function, e).to_string())?;
    if let Some(error) = out.function_error() {
        let body = out.payload().map(|p| String::from_utf8_lossy(p.as_ref()).chars().take(300).collect::<String>());
        return Err(format!("the function failed ({error}): {}", body.unwrap_or_default()));
    }
    Ok(out.payload.map(|p| p.into_inner()).unwrap_or_default())
}

/// What the function's answer says failed, as the mapping reads it with ReportBatchItemFailures:
/// nothing for an empty answer or an empty or null `batchItemFailures`; every record for an answer
/// that is not such a response or names a record not in the event.
fn failures(body: &[u8], sent: &[Record]) -> Option<(u64, String)> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let all = |why: &str| Some((sent.len() as u64, why.to_string()));
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return all("the function's answer is not JSON");
    };
    let listed = match &value["batchItemFailures"] {
        serde_json::Value::Null => return None,
        serde_json::Value::Array(a) if a.is_empty() => return None,
        serde_json::Value::Array(a) => a,
        _ => return all("the function's batchItemFailures is not a list"),
    };
    let sequences: BTreeSet<&str> = sent.iter().map(|r| r.kinesis.sequence_number.as_str()).collect();
    let ids: Vec<&str> = listed.iter().filter_map(|f| f["itemIdentifier"].as_str()).collect();
    if ids.len() != listed.len() || ids.iter().any(|id| !sequences.contains(id)) {
        return all("the function named a record that is not in the event");
    }
    Some((ids.len() as u64, format!("the function reported {} records failed: {}", ids.len(), ids.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: &str, bytes: usize) -> Record {
        let mut r = Record::default();
        r.kinesis.sequence_number = seq.into();
        r.kinesis.data = "x".repeat(bytes);
        r
    }

    fn info() -> BatchInfo {
        BatchInfo {
            shard_id: "shardId-000000000001".into(),
            start_sequence_number: "10".into(),
            end_sequence_number: "14".into(),
            batch_size: 5,
            stream_arn: "arn".into(),
        }
    }

    fn batch(deleted: bool, problem: Option<&str>) -> Batch {
        let shown = Shown { sequence: "10".into(), partition_key: "user-7".into(), data: "caf\u{e9}\n".into() };
        Batch { info: info(), records: vec![shown], lost: 2, failed: 3, problem: problem.map(str::to_string), deleted }
    }

    /// A record as GetRecords returns it, of partition key "k".
    fn stream_record(seq: &str, data: &[u8]) -> aws_sdk_kinesis::types::Record {
        aws_sdk_kinesis::types::Record::builder()
            .sequence_number(seq)
            .partition_key("k")
            .data(aws_sdk_kinesis::primitives::Blob::new(data))
            .build()
            .expect("record")
    }

    fn output(target: &str, batches: Vec<Batch>) -> RedriveOutput {
        RedriveOutput { queue: "s-FailedBatches".into(), target: target.into(), batches }
    }

    /// Exit 3 when a batch stays in the queue after a run that sent; never for a dry run or when
    /// every message was deleted.
    #[test]
    fn batches_left_in_the_queue_decide_the_exit() {
        let sent = "function s-Function (Invoke)";
        assert!(output(sent, vec![batch(true, None), batch(true, None)]).problem().is_none());
        assert!(output(sent, Vec::new()).problem().is_none());
        assert!(output("nowhere (dry run)", vec![batch(false, None)]).problem().is_none());
        let err = output(sent, vec![batch(true, None), batch(false, None), batch(false, None)]).problem();
        let err = err.expect("two batches kept");
        assert_eq!(err.exit_code(), 3);
        assert_eq!(err.to_string(), "2 of 3 failed batches did not succeed and stay in the queue");
        assert_eq!(err.hint(), "see why above; fix it, then run `stream redrive` again");
        let one = output(sent, vec![batch(false, None)]).problem().expect("one batch kept");
        assert_eq!(one.to_string(), "1 of 1 failed batches did not succeed and stay in the queue");
    }

    /// A batch's line, its records only in a dry run (escaped, one line each), and the count line.
    #[test]
    fn the_summary_names_each_batch_and_what_became_of_it() {
        let shown = output("nowhere (dry run)", vec![batch(false, Some("2 records lost"))]).to_string();
        assert_eq!(
            shown,
            "shardId-000000000001  10..14  5 records in the batch, 1 read back, 2 lost to the stream, 3 failed: \
             2 records lost\n  10  user-7  caf\\u{e9}\\n\n1 failed batches from s-FailedBatches; 0 redriven to \
             nowhere (dry run)"
        );
        let sent = output("function f (Invoke)", vec![batch(true, None), batch(false, Some("timed out"))]).to_string();
        let lines: Vec<&str> = sent.lines().collect();
        assert_eq!(lines.len(), 3, "{sent}");
        assert!(lines[0].ends_with("3 failed, done (message deleted)"), "{sent}");
        assert!(lines[1].ends_with("3 failed: timed out"), "{sent}");
        assert_eq!(lines[2], "2 failed batches from s-FailedBatches; 1 redriven to function f (Invoke)");
        assert_eq!(output("x", Vec::new()).to_string(), "nothing to redrive: s-FailedBatches is empty");
    }

    /// A record's data shown as text when it is UTF-8, else as base64 with its prefix.
    #[test]
    fn records_are_shown_as_text_or_base64() {
        let text = shown(&stream_record("42", "café".as_bytes()));
        assert_eq!(text, Shown { sequence: "42".into(), partition_key: "k".into(), data: "café".into() });
        assert_eq!(shown(&stream_record("42", &[0xff, 0x00, 0x01])).data, "base64:/wAB");
    }

    /// Deleted only when nothing failed and nothing is lost, or the lost are forgotten; the
    /// failure's reason before the loss's.
    #[test]
    fn a_batch_is_deleted_only_when_it_succeeded() {
        let settled = |lost: u64, failed: Option<(u64, &str)>, forget_lost: bool| {
            let mut b = batch(false, None);
            b.lost = lost;
            let why_lost = (lost > 0).then(|| format!("{lost} lost"));
            settle(&mut b, failed.map(|(n, why)| (n, why.to_string())), why_lost, forget_lost);
            (b.deleted, b.failed, b.problem)
        };
        assert_eq!(settled(0, None, false), (true, 0, None));
        assert_eq!(settled(0, None, true), (true, 0, None));
        assert_eq!(settled(0, Some((2, "reported")), false), (false, 2, Some("reported".into())));
        assert_eq!(settled(3, None, false), (false, 0, Some("3 lost".into())));
        assert_eq!(settled(3, None, true), (true, 0, Some("3 lost".into())));
        assert_eq!(settled(3, Some((1, "reported")), true), (false, 1, Some("reported".into())));
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(seq_after("10", "9") && !seq_after("9", "10") && !seq_after("5", "5"));
        assert!(seq_after(
            "49601189658422359378836298522902373528957594348623495187",
            "49601189658422359378836298522902373528957594348623495186"
        ));
    }

    /// Success and failure as the mapping reads a partial batch response.
    #[test]
    fn the_answer_is_read_as_the_mapping_reads_it() {
        let sent = [record("1", 1), record("2", 1)];
        for ok in ["", " ", "{}", "null", r#"{"batchItemFailures":[]}"#, r#"{"batchItemFailures":null}"#] {
            assert_eq!(failures(ok.as_bytes(), &sent), None, "{ok}");
        }
        assert_eq!(failures(br#"{"batchItemFailures":[{"itemIdentifier":"2"}]}"#, &sent).map(|f| f.0), Some(1));
        for bad in [
            "not json",
            r#"{"batchItemFailures":"x"}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"9"}]}"#,
            r#"{"batchItemFailures":[{}]}"#,
        ] {
            assert_eq!(failures(bad.as_bytes(), &sent).map(|f| f.0), Some(2), "{bad}");
        }
    }

    #[test]
    fn events_stay_under_invokes_limit() {
        let records: Vec<Record> = (0..20).map(|i| record(&i.to_string(), 1024 * 1024)).collect();
        let sizes: Vec<usize> = chunks(&records).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [5, 5, 5, 5]);
        let small: Vec<Record> = (0..25_000).map(|i| record(&i.to_string(), 10)).collect();
        assert_eq!(chunks(&small).iter().map(|c| c.len()).collect::<Vec<_>>(), [10_000, 10_000, 5_000]);
        assert!(chunks(&[]).is_empty());
        // Each record counts its data, its partition key and 600 bytes of the event's fields: two
        // records of exactly the limit together share an event; a byte of key more splits them.
        let half = MAX_INVOKE_PAYLOAD / 2 - 600;
        let pair = |key: usize| {
            let mut second = record("2", half - 10);
            second.kinesis.partition_key = "k".repeat(key);
            chunks(&[record("1", half), second]).iter().map(|c| c.len()).collect::<Vec<_>>()
        };
        assert_eq!(pair(10), [2]);
        assert_eq!(pair(11), [1, 1]);
        // A record over the limit alone is an event of its own (Invoke refuses it), never an empty one.
        let big = [record("1", MAX_INVOKE_PAYLOAD + 1), record("2", 1)];
        assert_eq!(chunks(&big).iter().map(|c| c.len()).collect::<Vec<_>>(), [1, 1]);
    }

    /// A batch read back whole has nothing lost; one whose first record is gone lost what is missing.
    #[test]
    fn records_past_retention_are_counted_lost() {
        let info = info();
        let r = |seq: &str| stream_record(seq, b"d");
        let whole: Vec<_> = ["10", "11", "12", "13", "14"].iter().map(|s| r(s)).collect();
        let (_, lost, why) = judge(whole, &info);
        assert_eq!((lost, why), (0, None));
        let trimmed: Vec<_> = ["13", "14"].iter().map(|s| r(s)).collect();
        let (_, lost, why) = judge(trimmed, &info);
        assert_eq!(lost, 3);
        assert!(why.is_some_and(|w| w.contains("past the stream's retention")));
        assert_eq!(judge(Vec::new(), &info).1, 5);
    }
}
