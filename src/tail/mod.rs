//! `stream tail`: the stack's stream itself, followed across every shard — from the trim horizon,
//! the latest record, a time or a sequence number; KPL aggregates opened into their user records
//! (`SEQ#n`); filtered by partition key and text; as a table, JSON lines or one JSON array. A
//! child shard is read after its parents (so each key's records come in order), and each shard
//! at most once a second: the five reads per second Kinesis allows a shard are shared with the
//! function's event source mapping.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use aws_sdk_kinesis::types::Shard;
use clap::Args;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};

use crate::args::{BadValue, at_least, point_in_time};
use crate::aws::Clients;
use crate::error::{Disposition, Error};
use crate::kinesis::reader::{MAX_RECORDS_PER_READ, Pace, Position, ShardReader, shard_iterator};
use crate::kinesis::{self, Lineage};
use crate::output::Output;
use crate::progress;
use crate::shutdown::Shutdown;
use crate::stack;

mod show;
use show::{Filter, Printer};
pub use show::{Shown, TailSummary, open_record};

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
        let filter = Filter { keys: args.keys.iter().cloned().collect(), grep: args.grep.clone() };
        Ok(Tail::following(client, stream, filter, args.count, args.until_idle, start, only))
    }

    /// A tail of `stream` that has listed and read nothing yet: the shards listed first begin at
    /// `start`; `only` is `--from SHARD:SEQ`'s shard and sequence number.
    fn following(
        client: aws_sdk_kinesis::Client,
        stream: String,
        filter: Filter,
        count: Option<u64>,
        until_idle: bool,
        start: Position,
        only: Option<(String, String)>,
    ) -> Tail {
        Tail {
            client,
            stream,
            filter,
            count,
            until_idle,
            start,
            only,
            scope: BTreeSet::new(),
            lineage: Lineage::default(),
            first_listing: true,
            relist_due: false,
            closed: BTreeSet::new(),
            reads: FuturesUnordered::new(),
            summary: TailSummary::default(),
        }
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
