//! `stream tail`: the stack's stream itself, followed across every shard — from the trim horizon,
//! the latest record, a time or a sequence number; KPL aggregates opened into their user records
//! (`SEQ#n`); filtered by partition key and text; as a table, JSON lines or one JSON array. A
//! child shard is read after its parents (so each key's records come in order), and each shard
//! at most once a second: the five reads per second Kinesis allows a shard are shared with the
//! function's event source mapping.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use aws_sdk_kinesis::types::Shard;
use base64::Engine;
use clap::Args;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;

use crate::args::{BadValue, at_least, point_in_time};
use crate::aws::Clients;
use crate::error::{Disposition, Error};
use crate::kinesis::reader::{MAX_RECORDS_PER_READ, Pace, Position, ShardReader, shard_iterator};
use crate::kinesis::{self, Lineage};
use crate::kpl;
use crate::output::{JsonArray, Output};
use crate::progress;
use crate::shutdown::Shutdown;
use crate::stack;
use crate::tweet::iso_millis;

/// Each shard is read at most once a second, whatever it holds: Kinesis allows five reads per
/// second per shard, shared with the function's mapping (one a second when it is caught up).
const PACE: Pace = Pace { busy: Duration::from_secs(1), idle: Duration::from_secs(1) };
/// How often the shards are listed again to find the children of a split or merge.
const RELIST: Duration = Duration::from_secs(10);

/// How pacing works, for `stream tail --help`.
const PACING: &str = "Pacing: each shard is read at most once a second (up to 10,000 records a read), \
and a throttled shard is left alone for 1, 2, 4, up to 8 seconds. Kinesis allows five reads per second \
per shard, shared with the function's event source mapping: tail never takes more than one of them.";

/// `stream tail`
#[derive(Debug, Clone, Args)]
#[command(after_help = PACING)]
pub struct TailArgs {
    /// Where to start: trim-horizon (the oldest record the stream keeps), latest (records put from
    /// now on), or a sequence number (SEQ or SHARD:SEQ: that shard from that record on, then its
    /// children)
    #[arg(long, value_name = "WHERE", default_value = "latest", value_parser = parse_from, conflicts_with = "since")]
    pub from: From,

    /// Start at the records that arrived at or after TIME (2026-11-26T09:30:00Z, or 90s, 15m, 2h, 7d ago)
    #[arg(long, value_name = "TIME", value_parser = point_in_time)]
    pub since: Option<f64>,

    /// Only records with this partition key (repeat for several)
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,

    /// Only records whose data contains TEXT
    #[arg(long, value_name = "TEXT")]
    pub grep: Option<String>,

    /// Stop after showing N records
    #[arg(long, value_name = "N", value_parser = at_least::<u64>(1))]
    pub count: Option<u64>,

    /// Stop once every shard is read to its tip
    #[arg(long)]
    pub until_idle: bool,
}

/// Where `--from` starts.
#[derive(Debug, Clone, PartialEq)]
pub enum From {
    /// The oldest record kept.
    TrimHorizon,
    /// Records put from now on.
    Latest,
    /// One shard (found by asking each, when not given) from this record on.
    Sequence { shard: Option<String>, seq: String },
}

fn parse_from(s: &str) -> Result<From, BadValue> {
    let refuse = || BadValue {
        value: format!("{s:?}"),
        what: "is not a starting point".into(),
        hint: "give {flag} trim-horizon, latest, a sequence number, or SHARD:SEQUENCE".into(),
    };
    let digits = |v: &str| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_digit());
    match s.trim() {
        "trim-horizon" | "TRIM_HORIZON" => Ok(From::TrimHorizon),
        "latest" | "LATEST" => Ok(From::Latest),
        t if digits(t) => Ok(From::Sequence { shard: None, seq: t.to_string() }),
        t => match t.split_once(':') {
            Some((shard, seq)) if !shard.is_empty() && digits(seq) => {
                Ok(From::Sequence { shard: Some(shard.to_string()), seq: seq.to_string() })
            }
            _ => Err(refuse()),
        },
    }
}

/// One record as shown: a plain record, or one user record of a KPL aggregate (`SEQ#n`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shown {
    /// The shard it was read from.
    pub shard: String,
    /// Its sequence number; `SEQ#n` for the n-th user record of an aggregate.
    pub sequence: String,
    /// When Kinesis received it (ISO-8601 UTC).
    pub arrived: String,
    /// Its partition key (the user record's own, inside an aggregate).
    pub partition_key: String,
    /// The data, when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The data in base64, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
    /// Why a record that looks like an aggregate could not be opened (it is shown whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Shown {
    fn new(shard: &str, sequence: String, arrived: &str, key: &str, data: &[u8]) -> Shown {
        let (data, data_base64) = match std::str::from_utf8(data) {
            Ok(text) => (Some(text.to_string()), None),
            Err(_) => (None, Some(base64::engine::general_purpose::STANDARD.encode(data))),
        };
        Shown {
            shard: shard.to_string(),
            sequence,
            arrived: arrived.to_string(),
            partition_key: key.to_string(),
            data,
            data_base64,
            problem: None,
        }
    }

    /// The data as one line: control characters (line breaks, tabs) escaped, everything else as
    /// it is (quotes, any script, emoji); binary as `base64:…`.
    fn data_cell(&self) -> String {
        match (&self.data, &self.data_base64) {
            (Some(text), _) => {
                let mut line = String::with_capacity(text.len());
                for c in text.chars() {
                    if c.is_control() {
                        line.extend(c.escape_default());
                    } else {
                        line.push(c);
                    }
                }
                line
            }
            (None, Some(b64)) => format!("base64:{b64}"),
            _ => String::new(),
        }
    }

    /// The fields of `--output text`: arrived, shard, sequence, partition key, data, problem.
    fn fields(&self) -> Vec<String> {
        let key = self.partition_key.replace(['\t', '\n', '\r'], " ");
        let problem = self.problem.clone().unwrap_or_default();
        vec![self.arrived.clone(), self.shard.clone(), self.sequence.clone(), key, self.data_cell(), problem]
    }

    /// One line of the table: time, shard, sequence, key, then the data with control
    /// characters escaped so that a record is one line.
    fn row(&self) -> String {
        let shard = self.shard.trim_start_matches("shardId-");
        let data = self.data_cell();
        let mut row = format!("{}  {shard}  {}  {}  {data}", self.arrived, self.sequence, self.partition_key);
        if let Some(p) = &self.problem {
            let _ = write!(row, "  [{p}]");
        }
        row
    }
}

/// The records of one GetRecords record: itself, or the user records of an aggregate.
pub fn open_record(shard: &str, r: &aws_sdk_kinesis::types::Record) -> Vec<Shown> {
    let arrived = r.approximate_arrival_timestamp().map_or_else(String::new, |t| iso_millis(t.as_secs_f64()));
    let (seq, key, data) = (r.sequence_number(), r.partition_key().unwrap_or_default(), r.data().as_ref());
    if !kpl::is_aggregate(data) {
        return vec![Shown::new(shard, seq.to_string(), &arrived, key, data)];
    }
    match kpl::deaggregate(data) {
        Ok(subs) => subs
            .iter()
            .enumerate()
            .map(|(n, sub)| Shown::new(shard, format!("{seq}#{n}"), &arrived, sub.partition_key, sub.data))
            .collect(),
        Err(e) => {
            let mut whole = Shown::new(shard, seq.to_string(), &arrived, key, data);
            whole.problem = Some(e.to_string());
            vec![whole]
        }
    }
}

/// Which records are shown: a partition key among `keys` (when any), data containing `grep`.
struct Filter {
    keys: BTreeSet<String>,
    grep: Option<String>,
}

impl Filter {
    fn keeps(&self, shown: &Shown) -> bool {
        let key_ok = self.keys.is_empty() || self.keys.contains(&shown.partition_key);
        let text_ok = self.grep.as_ref().is_none_or(|g| shown.data.as_ref().is_some_and(|d| d.contains(g.as_str())));
        key_ok && text_ok
    }
}

/// What `stream tail` saw, printed on stderr when it stops.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TailSummary {
    /// Records shown (user records of aggregates counted one by one).
    pub shown: u64,
    /// Records read, before the filters.
    pub read: u64,
    /// Shards read.
    pub shards: usize,
    /// Reads the shard's allowance refused (each followed by a longer wait).
    pub throttled: u64,
}

impl std::fmt::Display for TailSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} records shown of {} read from {} shard(s); {} reads throttled",
            self.shown, self.read, self.shards, self.throttled
        )
    }
}

/// Where records go: stdout as they come (`out`), in every format (a JSON array too, closed
/// when tail stops), each flushed at once for whoever watches or pipes it.
struct Printer<W: Write> {
    out: W,
    format: Output,
    array: JsonArray,
    header: bool,
}

impl<W: Write> Printer<W> {
    fn new(format: Output, out: W) -> Self {
        Printer { out, format, array: JsonArray::default(), header: false }
    }

    fn print(&mut self, shown: Shown) -> Result<(), Error> {
        let out = &mut self.out;
        let written = match self.format {
            Output::Json => self.array.push(out, &shown),
            Output::Jsonl => serde_json::to_writer(&mut *out, &shown).map_err(Into::into).and_then(|()| writeln!(out)),
            // As the AWS CLI's text: tab-separated, no header.
            Output::Text => writeln!(out, "{}", shown.fields().join("\t")),
            _ if !self.header => {
                self.header = true;
                writeln!(out, "ARRIVED  SHARD  SEQUENCE  PARTITION KEY  DATA\n{}", shown.row())
            }
            _ => writeln!(out, "{}", shown.row()),
        };
        written.and_then(|()| out.flush()).map_err(|e| Error::io("stdout", e))
    }

    fn finish(mut self) -> Result<(), Error> {
        if self.format == Output::Json {
            self.array.finish(&mut self.out).and_then(|()| self.out.flush()).map_err(|e| Error::io("stdout", e))?;
        }
        Ok(())
    }
}

/// A read in flight: the reader comes back with what it read.
type Read = BoxFuture<'static, (ShardReader, Result<Vec<aws_sdk_kinesis::types::Record>, Error>)>;

/// Waits for the shard's turn, then reads at most `limit` records.
fn next_read(mut reader: ShardReader, limit: usize) -> Read {
    Box::pin(async move {
        tokio::time::sleep_until(reader.next_read().into()).await;
        let read = reader.read(limit).await;
        (reader, read)
    })
}

/// `stream tail`: prints records until `--count`, `--until-idle`, or Ctrl-C (a normal end: the
/// summary goes to stderr and the exit code is 0). A closed pipe ends it quietly.
pub async fn run(
    args: &TailArgs,
    format: Output,
    stack_name: &str,
    clients: &Clients,
    shutdown: Shutdown,
) -> Result<TailSummary, Error> {
    let deployed = stack::load(clients, stack_name).await?;
    let mut tail = Tail::new(args, clients, deployed.outputs.stream_name.clone()).await?;
    let mut printer = Printer::new(format, std::io::stdout());
    let ended = tail.follow(&mut printer, &shutdown).await;
    let summary = TailSummary { shards: tail.lineage.started(), ..tail.summary.clone() };
    match ended {
        Err(e) if e.is_broken_pipe() => return Ok(summary),
        Err(e) => {
            // What was printed stays one JSON document: the array closed, then the error, which
            // no failure to write hides.
            let _ = printer.finish();
            return Err(e);
        }
        Ok(()) => {}
    }
    printer.finish()?;
    progress::status(format!("stream tail: {summary}"));
    Ok(summary)
}

/// The shards being followed.
struct Tail {
    client: aws_sdk_kinesis::Client,
    stream: String,
    filter: Filter,
    count: Option<u64>,
    until_idle: bool,
    /// Where the shards listed at the start begin (children found later begin at their start).
    start: Position,
    /// With `--from SHARD:SEQ`: that shard, and the children of what is read.
    only: Option<(String, String)>,
    scope: BTreeSet<String>,
    lineage: Lineage,
    first_listing: bool,
    /// A shard closed since the last listing: its children may be listed.
    relist_due: bool,
    /// The shards the last listing showed closed (with an ending sequence number).
    closed: BTreeSet<String>,
    reads: FuturesUnordered<Read>,
    summary: TailSummary,
}

impl Tail {
    async fn new(args: &TailArgs, clients: &Clients, stream: String) -> Result<Tail, Error> {
        // The SDK would send a throttled read again within a second: tail paces its reads itself.
        let once = aws_sdk_kinesis::config::Builder::from(&clients.config)
            .retry_config(aws_smithy_types::retry::RetryConfig::disabled())
            .build();
        let client = aws_sdk_kinesis::Client::from_conf(once);
        let (start, only) = match (&args.from, args.since) {
            (_, Some(t)) => (Position::AtTimestamp(t), None),
            (From::TrimHorizon, None) => (Position::TrimHorizon, None),
            (From::Latest, None) => (Position::Latest, None),
            (From::Sequence { shard, seq }, None) => {
                let shard = match shard {
                    Some(s) => s.clone(),
                    None => shard_holding(&client, &stream, seq).await?,
                };
                (Position::AtSequence(seq.clone()), Some((shard, seq.clone())))
            }
        };
        Ok(Tail {
            client,
            stream,
            filter: Filter { keys: args.keys.iter().cloned().collect(), grep: args.grep.clone() },
            count: args.count,
            until_idle: args.until_idle,
            start,
            only,
            scope: BTreeSet::new(),
            lineage: Lineage::default(),
            first_listing: true,
            relist_due: false,
            closed: BTreeSet::new(),
            reads: FuturesUnordered::new(),
            summary: TailSummary::default(),
        })
    }

    /// Reads and prints until done; relists the shards at the start, after a shard closes and
    /// every 10 s.
    async fn follow(&mut self, printer: &mut Printer<impl Write>, shutdown: &Shutdown) -> Result<(), Error> {
        let mut relist = tokio::time::interval_at(tokio::time::Instant::now() + RELIST, RELIST);
        let mut relist_now = true;
        loop {
            if relist_now {
                self.start_ready().await?;
                if self.reads.is_empty() && self.until_idle {
                    return Ok(());
                }
            }
            relist_now = tokio::select! {
                Some((reader, read)) = self.reads.next(), if !self.reads.is_empty() => {
                    if self.settle(reader, read, printer)? {
                        return Ok(());
                    }
                    self.reads.is_empty() || self.relist_due
                }
                _ = relist.tick() => true,
                _ = shutdown.wait() => return Ok(()),
            };
        }
    }

    /// Starts the shards that may be read now.
    async fn start_ready(&mut self) -> Result<(), Error> {
        let shards = kinesis::list_shards(&self.client, &self.stream).await?;
        if let Some((shard, _)) = &self.only
            && !shards.iter().any(|s| s.shard_id() == shard)
        {
            return Err(Error::failed(
                format!("stream {} has no shard {shard}", self.stream),
                "give --from SHARD:SEQUENCE with a shard `stream tail` showed, or only the sequence number",
            ));
        }
        self.relist_due = false;
        self.closed = shards
            .iter()
            .filter(|s| s.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_some())
            .map(|s| s.shard_id().to_string())
            .collect();
        let ready: Vec<Shard> = self.lineage.ready(&shards).into_iter().cloned().collect();
        for shard in ready {
            let id = shard.shard_id();
            let position = match self.in_scope(&shard) {
                None => {
                    self.lineage.done(id);
                    continue;
                }
                Some(p) => p,
            };
            let reader = ShardReader::open(&self.client, &self.stream, id, position, PACE).await?;
            self.reads.push(next_read(reader, self.limit()));
        }
        self.first_listing = false;
        Ok(())
    }

    /// Where `shard` starts, or None when it is not followed (`--from SHARD:SEQ` follows one
    /// shard and its descendants).
    fn in_scope(&mut self, shard: &Shard) -> Option<Position> {
        let id = shard.shard_id().to_string();
        if let Some((only, _)) = &self.only {
            let parents = [shard.parent_shard_id(), shard.adjacent_parent_shard_id()];
            let descends = parents.into_iter().flatten().any(|p| self.scope.contains(p));
            if id != *only && !descends {
                return None;
            }
            self.scope.insert(id.clone());
            if id != *only {
                return Some(Position::TrimHorizon);
            }
        }
        // Children found while running hold only records put after their parents closed.
        Some(if self.first_listing { self.start.clone() } else { Position::TrimHorizon })
    }

    /// The most records one read should return: `--count` left when nothing is filtered out.
    fn limit(&self) -> usize {
        let unfiltered = self.filter.keys.is_empty() && self.filter.grep.is_none();
        match self.count {
            Some(n) if unfiltered => (n.saturating_sub(self.summary.shown) as usize).clamp(1, MAX_RECORDS_PER_READ),
            _ => MAX_RECORDS_PER_READ,
        }
    }

    /// Prints what a read returned and puts the shard back in turn; true when `--count` is reached.
    fn settle(
        &mut self,
        reader: ShardReader,
        read: Result<Vec<aws_sdk_kinesis::types::Record>, Error>,
        printer: &mut Printer<impl Write>,
    ) -> Result<bool, Error> {
        match read {
            Ok(records) => {
                for r in &records {
                    self.summary.read += 1;
                    for shown in open_record(reader.shard(), r) {
                        if !self.filter.keeps(&shown) {
                            continue;
                        }
                        printer.print(shown)?;
                        self.summary.shown += 1;
                        if self.count.is_some_and(|n| self.summary.shown >= n) {
                            return Ok(true);
                        }
                    }
                }
            }
            Err(e) if e.code() == Some("ProvisionedThroughputExceededException") => self.summary.throttled += 1,
            Err(e) if e.disposition() == Disposition::Fatal => return Err(e),
            Err(e) => progress::status(format!("stream tail: {e} (reading again)")),
        }
        // A shard listed as closed and read to its tip is done, even where the service still hands
        // out an iterator for it (AWS ends it with no next iterator; the emulator never does).
        if reader.closed() || (reader.caught_up() && self.closed.contains(reader.shard())) {
            self.lineage.done(reader.shard());
            self.relist_due = true;
        } else if !(self.until_idle && reader.caught_up()) {
            let limit = self.limit();
            self.reads.push(next_read(reader, limit));
        }
        Ok(false)
    }
}

/// The shard that holds sequence number `seq`: the one whose record at it has that number.
/// Several (sequence numbers are unique per stream on AWS, not on every emulator) are refused.
async fn shard_holding(client: &aws_sdk_kinesis::Client, stream: &str, seq: &str) -> Result<String, Error> {
    let mut holders = Vec::new();
    for shard in kinesis::list_shards(client, stream).await? {
        let at = Position::AtSequence(seq.to_string());
        let iterator = match shard_iterator(client, stream, shard.shard_id(), &at).await {
            Ok(Some(it)) => it,
            Ok(None) => continue,
            Err(e) if e.code() == Some("InvalidArgumentException") => continue,
            Err(e) => return Err(e),
        };
        let page = client
            .get_records()
            .shard_iterator(iterator)
            .limit(1)
            .send()
            .await
            .map_err(|e| Error::aws("GetRecords", format!("{stream}/{}", shard.shard_id()), e))?;
        if page.records().first().is_some_and(|r| r.sequence_number() == seq) {
            holders.push(shard.shard_id().to_string());
        }
    }
    match holders.len() {
        1 => Ok(holders.remove(0)),
        0 => Err(Error::usage(
            format!("no shard of stream {stream} holds sequence number {seq}"),
            "copy it from `stream tail` or the on-failure message (it may be past retention), or give --from SHARD:SEQUENCE",
        )),
        _ => Err(Error::usage(
            format!("sequence number {seq} is in more than one shard of stream {stream}: {}", holders.join(", ")),
            "give --from SHARD:SEQUENCE",
        )),
    }
}

#[cfg(test)]
mod tests;
