//! Why a record can never be written ([`Refusal`]), and which of the schema's values it is about
//! ([`Field`]); the words are what the dead-letter file and `--dry-run` show.

use std::fmt;
use std::sync::Arc;

/// Which of the schema's values a reason is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The table's partition key.
    PartitionKey,
    /// The table's sort key.
    SortKey,
    /// The event time.
    Time,
    /// The TTL.
    Ttl,
    /// The version.
    Version,
    /// A projected attribute.
    Attribute,
    /// A field every record must have.
    Required,
    /// The producer's Kinesis partition key.
    KinesisKey,
}

/// Why a record can never become an item: it is quarantined with this reason, never retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The payload is not UTF-8 (byte offset of the first bad byte).
    NotUtf8 {
        /// Where the first bad byte is.
        valid_up_to: usize,
    },
    /// Not JSON, not an object, or a field of the wrong JSON type (serde_json's words).
    NotJson {
        /// What one event is called: "not a JSON tweet".
        noun: Arc<str>,
        /// What is wrong, and where.
        detail: String,
    },
    /// A value the schema needs is absent.
    Missing {
        /// Which.
        field: Field,
        /// The reason as the schema words it.
        message: String,
    },
    /// A key value is over DynamoDB's limit.
    KeyTooLong {
        /// The key's attribute.
        attribute: Arc<str>,
        /// Its size in bytes.
        bytes: usize,
    },
    /// A time that none of the formats reads.
    BadTime {
        /// The field, as a dotted path.
        path: String,
        /// Its text (at most 64 characters).
        value: String,
        /// The formats, in words ("a Twitter or RFC 3339").
        formats: String,
    },
    /// A value DynamoDB cannot store (a number out of range, nesting too deep, a bad name).
    Unstorable {
        /// The field, as a dotted path.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The item is over 400 KB.
    ItemTooLarge {
        /// Its size in bytes, as DynamoDB counts it.
        bytes: usize,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotUtf8 { valid_up_to } => write!(f, "not UTF-8 (bad byte at offset {valid_up_to})"),
            Refusal::NotJson { noun, detail } => write!(f, "not a JSON {noun}: {detail}"),
            Refusal::Missing { message, .. } => f.write_str(message),
            Refusal::KeyTooLong { attribute, bytes } => {
                write!(f, "{attribute} is {bytes} bytes, over DynamoDB's key limit")
            }
            Refusal::BadTime { path, value, formats } => write!(f, "{path} {value:?} is not {formats} time"),
            Refusal::Unstorable { path, why } if path.is_empty() => f.write_str(why),
            Refusal::Unstorable { path, why } => write!(f, "{path}: {why}"),
            Refusal::ItemTooLarge { bytes } => write!(f, "item is {bytes} bytes, over DynamoDB's 400 KB limit"),
        }
    }
}
