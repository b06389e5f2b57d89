//! What `stream tail` shows: a record as shown (`Shown`: a plain record, or one user record of a
//! KPL aggregate), the filters, the printer of every output format, and the summary line.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write;

use base64::Engine;
use serde::Serialize;

use crate::error::Error;
use crate::kpl;
use crate::output::{JsonArray, Output};
use crate::tweet::iso_millis;

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
    pub(super) fn new(shard: &str, sequence: String, arrived: &str, key: &str, data: &[u8]) -> Shown {
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
    pub(super) fn data_cell(&self) -> String {
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
    pub(super) fn fields(&self) -> Vec<String> {
        let key = self.partition_key.replace(['\t', '\n', '\r'], " ");
        let problem = self.problem.clone().unwrap_or_default();
        vec![self.arrived.clone(), self.shard.clone(), self.sequence.clone(), key, self.data_cell(), problem]
    }

    /// One line of the table: time, shard, sequence, key, then the data with control
    /// characters escaped so that a record is one line.
    pub(super) fn row(&self) -> String {
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
pub(super) struct Filter {
    pub(super) keys: BTreeSet<String>,
    pub(super) grep: Option<String>,
}

impl Filter {
    pub(super) fn keeps(&self, shown: &Shown) -> bool {
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
pub(super) struct Printer<W: Write> {
    out: W,
    format: Output,
    array: JsonArray,
    header: bool,
}

impl<W: Write> Printer<W> {
    pub(super) fn new(format: Output, out: W) -> Self {
        Printer { out, format, array: JsonArray::default(), header: false }
    }

    pub(super) fn print(&mut self, shown: Shown) -> Result<(), Error> {
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

    pub(super) fn finish(mut self) -> Result<(), Error> {
        if self.format == Output::Json {
            self.array.finish(&mut self.out).and_then(|()| self.out.flush()).map_err(|e| Error::io("stdout", e))?;
        }
        Ok(())
    }
}
