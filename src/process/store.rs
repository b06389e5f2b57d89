//! Where the handler's writes go: the events table and the quarantine table, through
//! BatchWriteItem (`DynamoStore`, via `dynamo`), or memory (`MemoryStore`, for tests and benchmarks
//! without a network). The handler sees only `Store`; a failed write is an `Error`, whose
//! disposition says whether to try again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};

use crate::dynamo;
use crate::error::Error;
use crate::tweet::attr;

/// DynamoDB attributes of one item.
pub type Attrs = HashMap<String, AttributeValue>;

/// Which table a write goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// `<stack>-EventData`: one item per tweet.
    Events,
    /// `<stack>-Rejected`: one item per poison record.
    Rejected,
}

/// Key attributes of the quarantine table.
pub mod rejected_attr {
    /// Partition key: shard id.
    pub const SHARD: &str = "Shard";
    /// Sort key: sequence number, with `#<n>` for the n-th record of a KPL aggregate.
    pub const SEQUENCE: &str = "Sequence";
    /// Why the record was rejected.
    pub const REASON: &str = "Reason";
    /// The record's bytes as they arrived (binary).
    pub const PAYLOAD: &str = "Payload";
    /// Size of the payload in bytes.
    pub const PAYLOAD_BYTES: &str = "PayloadBytes";
    /// True when only the first part of the payload could be kept (the item limit is 400 KB).
    pub const TRUNCATED: &str = "Truncated";
    /// The record's partition key.
    pub const PARTITION_KEY: &str = "PartitionKey";
    /// When Kinesis received the record (ISO-8601).
    pub const ARRIVAL: &str = "ArrivalTime";
    /// When the record was quarantined (ISO-8601).
    pub const QUARANTINED_AT: &str = "QuarantinedAt";
    /// The stream the record came from.
    pub const SOURCE: &str = "EventSourceArn";
}

impl Target {
    /// The (partition, sort) key attribute names.
    pub fn key_names(self) -> (&'static str, &'static str) {
        match self {
            Target::Events => (attr::USERNAME, attr::ID),
            Target::Rejected => (rejected_attr::SHARD, rejected_attr::SEQUENCE),
        }
    }

    /// The key of an item of this table.
    pub fn key_of(self, item: &Attrs) -> Option<(&str, &str)> {
        let (p, s) = self.key_names();
        let get = |n: &str| item.get(n).and_then(|v| v.as_s().ok()).map(String::as_str);
        Some((get(p)?, get(s)?))
    }
}

/// Where items go.
pub trait Store: Sync {
    /// Writes up to 25 items with distinct keys to `target` in one call and returns the indices
    /// (into `items`) of those left unprocessed.
    fn write(&self, target: Target, items: Vec<Attrs>) -> impl Future<Output = Result<Vec<usize>, Error>> + Send;
}

/// The tables, through BatchWriteItem.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    events: String,
    rejected: Option<String>,
}

impl DynamoStore {
    /// A store writing `events` (and quarantining into `rejected`, when there is one).
    pub fn new(client: aws_sdk_dynamodb::Client, events: impl Into<String>, rejected: Option<String>) -> Self {
        DynamoStore { client, events: events.into(), rejected }
    }

    fn table(&self, target: Target) -> Option<&str> {
        match target {
            Target::Events => Some(&self.events),
            Target::Rejected => self.rejected.as_deref(),
        }
    }
}

impl Store for DynamoStore {
    async fn write(&self, target: Target, items: Vec<Attrs>) -> Result<Vec<usize>, Error> {
        let table = self.table(target).ok_or_else(|| {
            Error::config(
                "no quarantine table configured",
                "deploy with `stream deploy`, which sets REJECTED_TABLE_NAME",
            )
        })?;
        let mut requests = Vec::with_capacity(items.len());
        for item in items {
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| Error::failed(format!("building PutRequest: {e}"), "report this as a bug"))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        dynamo::batch_write(&self.client, table, target.key_names(), requests).await
    }
}

/// One table in memory: items by (partition key, sort key).
pub type MemoryTable = HashMap<(String, String), Attrs>;

/// Tables in memory: what benchmarks measure the handler against with the network removed, and
/// what tests read back.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<HashMap<Target, MemoryTable>>,
    calls: Mutex<usize>,
}

impl MemoryStore {
    /// The items of `target`, keyed by their key.
    pub fn items(&self, target: Target) -> MemoryTable {
        self.tables.lock().map(|t| t.get(&target).cloned().unwrap_or_default()).unwrap_or_default()
    }

    /// Write calls made so far.
    pub fn calls(&self) -> usize {
        self.calls.lock().map(|c| *c).unwrap_or(0)
    }
}

impl Store for MemoryStore {
    async fn write(&self, target: Target, items: Vec<Attrs>) -> Result<Vec<usize>, Error> {
        fn poisoned<T>(_: T) -> Error {
            Error::failed("memory store lock poisoned", "report this as a bug")
        }
        *self.calls.lock().map_err(poisoned)? += 1;
        let mut tables = self.tables.lock().map_err(poisoned)?;
        let table = tables.entry(target).or_default();
        for item in items {
            let (a, b) =
                target.key_of(&item).ok_or_else(|| Error::failed("item without its key", "report this as a bug"))?;
            table.insert((a.to_string(), b.to_string()), item);
        }
        Ok(Vec::new())
    }
}
