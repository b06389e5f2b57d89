//! The schema file as written: TOML or JSON, read field by field so that every problem is named
//! with its place and what to do (`Problem`), then held as `Spec`, whose JSON (`canonical`) is what
//! the function reads at init. Turning a spec into something that reads events is `compile`'s job.

use serde::Serialize;
use serde_json::Value;

mod read;
mod sections;

pub use read::read;

use super::decode;
use crate::time::{self, Format};

/// One thing wrong with a schema file: what, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What is wrong, naming the field (`partition_key.type: "X" is not S, N or B`).
    pub what: String,
    /// What to do about it.
    pub hint: String,
}

/// A JSON type a value may have where a schema reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    /// A JSON string.
    String,
    /// Any JSON number.
    Number,
    /// A JSON number written without a fraction or an exponent.
    Integer,
    /// true or false.
    Boolean,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
    /// Anything but null.
    Any,
}

impl JsonType {
    const ALL: [(&'static str, JsonType); 7] = [
        ("string", JsonType::String),
        ("number", JsonType::Number),
        ("integer", JsonType::Integer),
        ("boolean", JsonType::Boolean),
        ("object", JsonType::Object),
        ("array", JsonType::Array),
        ("any", JsonType::Any),
    ];
}

/// The kinds a list of JSON types accepts.
pub fn kinds(types: &[JsonType]) -> decode::Kinds {
    types.iter().fold(0, |k, t| {
        k | match t {
            JsonType::String => decode::STRING,
            JsonType::Number => decode::FRACTION | decode::INTEGER,
            JsonType::Integer => decode::INTEGER,
            JsonType::Boolean => decode::BOOLEAN,
            JsonType::Object => decode::OBJECT,
            JsonType::Array => decode::ARRAY,
            JsonType::Any => decode::ANY,
        }
    })
}

/// The DynamoDB type of a key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KeyType {
    /// String.
    S,
    /// Number.
    N,
    /// Binary (the event holds it as base64 text).
    B,
}

impl KeyType {
    /// The type's letter, as DynamoDB and CloudFormation spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::S => "S",
            KeyType::N => "N",
            KeyType::B => "B",
        }
    }

    /// JSON types a source of this key takes when the schema says none.
    fn default_json(self) -> Vec<JsonType> {
        match self {
            KeyType::S => vec![JsonType::String, JsonType::Number],
            KeyType::N => vec![JsonType::Number],
            KeyType::B => vec![JsonType::String],
        }
    }
}

/// Where a value is read from: a JSON Pointer (RFC 6901) and the JSON types it may have there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// RFC 6901 pointer into the event, `/user/name`.
    pub pointer: String,
    /// JSON types allowed at the pointer; another type there refuses the record.
    pub json: Vec<JsonType>,
}

/// A key attribute of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeySpec {
    /// Attribute name.
    pub attribute: String,
    /// DynamoDB type.
    #[serde(rename = "type")]
    pub key_type: KeyType,
    /// Sources, tried in order: the first present and non-empty one is the key.
    pub from: Vec<Source>,
    /// The quarantine reason when no source has a value (default: `no <attribute> (<paths>)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// The partition key the producer gives Kinesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KinesisSpec {
    /// Sources, tried in order (default: the table's partition key's).
    pub partition_key: Vec<Source>,
    /// The reason a line is refused when none has a value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// The event time, stored as ISO-8601 UTC with milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimeSpec {
    /// Attribute name (default `Timestamp`).
    pub attribute: String,
    /// Sources, tried in order.
    pub from: Vec<Source>,
    /// Formats, tried in order.
    pub formats: Vec<Format>,
    /// A record without a time is refused (default true).
    pub required: bool,
    /// The reason when it is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// Where an item's expiry (DynamoDB TTL, epoch seconds) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TtlFrom {
    /// A field of the event, in a time format.
    Field {
        /// Sources, tried in order.
        from: Vec<Source>,
        /// Its format (default epoch_seconds).
        format: Format,
    },
    /// The event time plus this many seconds.
    After(u64),
}

/// The table's TTL attribute, and where its value comes from: `from` (and `format`), or `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TtlSpec {
    /// Attribute name; the table's TTL is enabled on it.
    pub attribute: String,
    /// Sources of the expiry, when it is a field of the event.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<Source>,
    /// The field's format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// The expiry as a duration after the event time, in seconds (`"2592000s"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl TtlSpec {
    /// Where the expiry comes from.
    pub fn expiry(&self) -> TtlFrom {
        match &self.after {
            Some(a) => TtlFrom::After(time::parse_duration(a).map_or(0, |d| d.as_secs())),
            None => TtlFrom::Field { from: self.from.clone(), format: self.format.unwrap_or(Format::EpochSeconds) },
        }
    }
}

/// What a version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionKind {
    /// A JSON number, compared by value.
    Number,
    /// A time, compared as epoch milliseconds.
    Time,
}

/// Ordering: a write never replaces an item holding a newer version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionSpec {
    /// Attribute name (default `Version`), stored as a number.
    pub attribute: String,
    /// Sources, tried in order.
    pub from: Vec<Source>,
    /// Number or time.
    #[serde(rename = "type")]
    pub kind: VersionKind,
    /// Formats of a time version.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub formats: Vec<Format>,
    /// The reason when it is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// What an item holds besides its keys, time, TTL and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreMode {
    /// Every top-level field of the event, as DynamoDB types (objects → M, arrays → L, …).
    Document,
    /// Only the attributes listed.
    Projection,
}

/// One projected attribute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributeSpec {
    /// Attribute name (default: the pointer's last segment).
    pub attribute: String,
    /// Sources, tried in order: the first present (non-null) one is stored.
    pub from: Vec<Source>,
    /// Stored when no source has a value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// A record without it (and without a default) is refused.
    pub required: bool,
    /// The reason then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// The item's contents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemSpec {
    /// Document or projection.
    pub store: StoreMode,
    /// The projected attributes (projection only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AttributeSpec>,
}

/// A field every record must have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    /// RFC 6901 pointer.
    pub pointer: String,
    /// JSON types allowed.
    pub json: Vec<JsonType>,
    /// The reason when it is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// What happens to a number DynamoDB's number type cannot hold (over 38 digits, out of range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NumberPolicy {
    /// The record is quarantined.
    Quarantine,
    /// The number is stored as a string of its text.
    String,
}

/// A schema file, read and checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spec {
    /// Name (`clickstream`): shown by `status`, picks the synthetic events that fit it.
    pub name: String,
    /// What the schema is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What one event is called in reasons: "not a JSON <noun>".
    pub noun: String,
    /// The table's partition key.
    pub partition_key: KeySpec,
    /// The table's sort key, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_key: Option<KeySpec>,
    /// The producer's Kinesis partition key.
    pub kinesis: KinesisSpec,
    /// The event time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeSpec>,
    /// The TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<TtlSpec>,
    /// Ordering by version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<VersionSpec>,
    /// What is stored.
    pub item: ItemSpec,
    /// Fields every record must have.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<Requirement>,
    /// Numbers DynamoDB cannot hold.
    pub numbers: NumberPolicy,
}

impl Spec {
    /// The spec as compact JSON: what `deploy` puts beside the function, and `read` reads back.
    pub fn canonical(&self) -> String {
        // Plain structs of strings, lists and JSON values always serialize.
        serde_json::to_string(self).expect("a Spec always serializes")
    }
}

/// DynamoDB: key attribute names hold at most 255 bytes.
pub const MAX_KEY_NAME_BYTES: usize = 255;
/// DynamoDB: other attribute names hold under 64 KB.
pub const MAX_NAME_BYTES: usize = 65_535;
