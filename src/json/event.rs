//! The Kinesis event as the function reads it: per record only the fields it uses, borrowed from the
//! event's text. `stream`'s `process::event` re-exports it beside the owned `Event` it is read the
//! same as; it is here so that serde_json's parser for it is compiled at opt-level 3 (`parse`).

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};

mod fast;

/// The reader of events as Lambda writes them alone (`None`: it leaves the text to serde_json); for
/// the tests.
pub use fast::batch as parse_fast;

/// `text` as a Kinesis event: the one place the function's events are parsed, so that the parser
/// is compiled in this package. Events as Lambda writes them are read without serde (`fast`); the
/// others by serde_json, which reads them the same and words every error.
pub fn parse(text: &str) -> Result<Batch<'_>, serde_json::Error> {
    match fast::batch(text) {
        Some(batch) => Ok(batch),
        None => serde_json::from_str(text),
    }
}

/// What the function reads of an event, borrowed from the event's JSON text: per record only the
/// fields it uses, so the others (about half of each record: source, version, name, role, region)
/// are skipped, and the ones it uses — the base64 data above all, most of the event — are not
/// copied (a 6 MB event was held twice, as its text and as owned strings). Reads every event
/// `Event` reads; a value written with JSON escapes is unescaped into its own string.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Batch<'a> {
    /// The records, in order.
    #[serde(rename = "Records", borrow, default)]
    pub records: Vec<BatchRecord<'a>>,
}

/// One record as the function reads it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct BatchRecord<'a> {
    /// The Kinesis part.
    #[serde(borrow)]
    pub kinesis: KinesisRef<'a>,
    /// `<shard id>:<sequence number>`.
    #[serde(rename = "eventID", borrow, default)]
    pub event_id: Cow<'a, str>,
    /// The stream's ARN.
    #[serde(rename = "eventSourceARN", borrow, default)]
    pub event_source_arn: Cow<'a, str>,
}

/// The `kinesis` object of a record as the function reads it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisRef<'a> {
    /// The record's partition key.
    #[serde(borrow, default)]
    pub partition_key: Cow<'a, str>,
    /// The record's sequence number: opaque, ordered within a shard.
    #[serde(borrow)]
    pub sequence_number: Cow<'a, str>,
    /// The payload, base64.
    #[serde(borrow, default)]
    pub data: Cow<'a, str>,
    /// Seconds since the epoch, with milliseconds.
    #[serde(default, deserialize_with = "number_or_string")]
    pub approximate_arrival_timestamp: f64,
}

impl BatchRecord<'_> {
    /// The shard id: the part of `eventID` before the colon.
    pub fn shard_id(&self) -> &str {
        self.event_id.split_once(':').map_or("", |(shard, _)| shard)
    }
}

/// Lambda sends the arrival time as a number; some libraries write it as a string: read both.
pub fn number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(f64),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Number(n) => Ok(n),
        Either::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}
