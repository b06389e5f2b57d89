//! Where the handler's writes go: the events table and the quarantine table, through
//! BatchWriteItem — and, for schemas that order by version, a conditional PutItem — (`DynamoStore`,
//! via `dynamo`), or memory (`MemoryStore`, for tests and benchmarks without a network). The
//! handler sees only `Store`; a failed write is an `Error`, whose disposition says whether to try
//! again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};

use crate::dynamo;
use crate::error::Error;
use crate::schema::{Schema, number};

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

/// The key attribute names of a table: partition key, and sort key if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyNames {
    /// Partition key attribute.
    pub partition: String,
    /// Sort key attribute.
    pub sort: Option<String>,
}

impl KeyNames {
    /// The event table's keys as `schema` makes them.
    pub fn of(schema: &Schema) -> KeyNames {
        KeyNames {
            partition: schema.partition_key().0.to_string(),
            sort: schema.sort_key().map(|(n, _)| n.to_string()),
        }
    }

    /// The quarantine table's keys.
    pub fn rejected() -> KeyNames {
        KeyNames { partition: rejected_attr::SHARD.into(), sort: Some(rejected_attr::SEQUENCE.into()) }
    }

    /// The key of an item as text (a number's text, binary in base64; "" for no sort key).
    pub fn key_of(&self, item: &Attrs) -> Option<(String, String)> {
        let text = |v: &AttributeValue| match v {
            AttributeValue::S(s) | AttributeValue::N(s) => Some(s.clone()),
            AttributeValue::B(b) => {
                use base64::Engine;
                Some(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
            }
            _ => None,
        };
        let partition = text(item.get(&self.partition)?)?;
        let sort = match &self.sort {
            Some(s) => text(item.get(s)?)?,
            None => String::new(),
        };
        Some((partition, sort))
    }
}

/// The condition of a put that must not replace a newer version: the item is written when the
/// table holds none with its key, or one whose `version` attribute is not above `value`.
#[derive(Debug, Clone, Copy)]
pub struct Guard<'a> {
    /// The table's partition key attribute (its absence means no item yet).
    pub key: &'a str,
    /// The version attribute.
    pub version: &'a str,
    /// The item's version (a number's text).
    pub value: &'a str,
}

/// What a conditional put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The item was written.
    Written,
    /// The table holds a newer version: nothing was written.
    Superseded,
}

/// Where items go.
pub trait Store: Sync {
    /// Writes up to 25 items with distinct keys to `target` in one call and returns the indices
    /// (into `items`) of those left unprocessed.
    fn write(&self, target: Target, items: Vec<Attrs>) -> impl Future<Output = Result<Vec<usize>, Error>> + Send;

    /// Writes one item to the events table unless it holds a newer version (`guard`).
    fn put_if_newer(&self, item: Attrs, guard: &Guard<'_>) -> impl Future<Output = Result<Put, Error>> + Send;
}

/// The tables, through BatchWriteItem (and PutItem for ordered writes).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    events: String,
    rejected: Option<String>,
    keys: KeyNames,
}

impl DynamoStore {
    /// A store writing `events` (and quarantining into `rejected`, when there is one), whose keys
    /// are the built-in tweets schema's.
    pub fn new(client: aws_sdk_dynamodb::Client, events: impl Into<String>, rejected: Option<String>) -> Self {
        DynamoStore { client, events: events.into(), rejected, keys: KeyNames::of(Schema::tweets()) }
    }

    /// The same store for the events table `schema` shapes.
    pub fn for_schema(self, schema: &Schema) -> Self {
        DynamoStore { keys: KeyNames::of(schema), ..self }
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
        let keys = match target {
            Target::Events => self.keys.clone(),
            Target::Rejected => KeyNames::rejected(),
        };
        dynamo::batch_write(&self.client, table, (&keys.partition, keys.sort.as_deref()), requests).await
    }

    async fn put_if_newer(&self, item: Attrs, guard: &Guard<'_>) -> Result<Put, Error> {
        let written =
            dynamo::put_unless_newer(&self.client, &self.events, item, guard.key, guard.version, guard.value).await?;
        Ok(if written { Put::Written } else { Put::Superseded })
    }
}

/// One table in memory: items by (partition key, sort key).
pub type MemoryTable = HashMap<(String, String), Attrs>;

/// Tables in memory: what benchmarks measure the handler against with the network removed, and
/// what tests read back. Conditional puts compare versions by value, as DynamoDB does.
#[derive(Debug)]
pub struct MemoryStore {
    tables: Mutex<HashMap<Target, MemoryTable>>,
    calls: Mutex<usize>,
    keys: KeyNames,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::for_schema(Schema::tweets())
    }
}

impl MemoryStore {
    /// Empty tables; the events table keyed as `schema` says.
    pub fn for_schema(schema: &Schema) -> Self {
        MemoryStore { tables: Mutex::default(), calls: Mutex::default(), keys: KeyNames::of(schema) }
    }

    fn keys(&self, target: Target) -> KeyNames {
        match target {
            Target::Events => self.keys.clone(),
            Target::Rejected => KeyNames::rejected(),
        }
    }

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
        let keys = self.keys(target);
        for item in items {
            let key =
                keys.key_of(&item).ok_or_else(|| Error::failed("item without its key", "report this as a bug"))?;
            table.insert(key, item);
        }
        Ok(Vec::new())
    }

    async fn put_if_newer(&self, item: Attrs, guard: &Guard<'_>) -> Result<Put, Error> {
        fn poisoned<T>(_: T) -> Error {
            Error::failed("memory store lock poisoned", "report this as a bug")
        }
        *self.calls.lock().map_err(poisoned)? += 1;
        let mut tables = self.tables.lock().map_err(poisoned)?;
        let table = tables.entry(Target::Events).or_default();
        let key =
            self.keys.key_of(&item).ok_or_else(|| Error::failed("item without its key", "report this as a bug"))?;
        let held = table.get(&key).and_then(|old| old.get(guard.version)).and_then(|v| v.as_n().ok());
        if held.is_some_and(|held| number::compare(held, guard.value) == Some(std::cmp::Ordering::Greater)) {
            return Ok(Put::Superseded);
        }
        table.insert(key, item);
        Ok(Put::Written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory store's conditional put is DynamoDB's: versions compare as numbers ("10" is above
    /// "9"), an equal version is written again, a lower one is superseded; each put is a call.
    #[tokio::test]
    async fn memory_puts_keep_the_higher_version_by_value() {
        let orders = Schema::built_in("orders").expect("built in");
        let store = MemoryStore::for_schema(orders);
        let put = |version: &'static str, status: &str| {
            let item = Attrs::from([
                ("OrderId".to_string(), AttributeValue::S("o-1".into())),
                ("Version".to_string(), AttributeValue::N(version.into())),
                ("Status".to_string(), AttributeValue::S(status.into())),
            ]);
            let store = &store;
            async move { store.put_if_newer(item, &Guard { key: "OrderId", version: "Version", value: version }).await }
        };
        assert_eq!(put("9", "a").await.expect("put"), Put::Written);
        assert_eq!(put("10", "b").await.expect("put"), Put::Written);
        assert_eq!(put("9", "late").await.expect("put"), Put::Superseded);
        assert_eq!(put("10", "again").await.expect("put"), Put::Written);
        let items = store.items(Target::Events);
        assert_eq!(items[&("o-1".to_string(), String::new())]["Status"], AttributeValue::S("again".into()));
        assert_eq!(store.calls(), 4);
    }
}
