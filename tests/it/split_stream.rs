//! A Kinesis stream kept as Kinesis keeps it across a split, for the fault proxy to serve in moto's
//! place (ListShards, GetShardIterator and GetRecords of this one stream): a split parent is closed
//! and keeps its records; what is put afterwards goes to the child whose hash key range holds the
//! key; a closed shard read to its end gives no next iterator. (moto 5.2.5's split puts every
//! record, old and new, back into the closed parent, leaves the children empty and never ends the
//! parent's iterator, so no child is ever read there.)

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

struct Record {
    seq: String,
    key: String,
    data: Vec<u8>,
    arrival: f64,
}

struct Shard {
    id: String,
    parent: Option<String>,
    range: (u128, u128),
    /// The sequence number the shard starts at.
    first: String,
    records: Vec<Record>,
    closed: bool,
}

impl Shard {
    fn listed(&self) -> Value {
        let mut seq = json!({"StartingSequenceNumber": self.first});
        if self.closed {
            let last = self.records.last().map_or(&self.first, |r| &r.seq);
            seq["EndingSequenceNumber"] = json!(last);
        }
        let mut shard = json!({
            "ShardId": self.id,
            "HashKeyRange": {"StartingHashKey": self.range.0.to_string(), "EndingHashKey": self.range.1.to_string()},
            "SequenceNumberRange": seq,
        });
        if let Some(p) = &self.parent {
            shard["ParentShardId"] = json!(p);
        }
        shard
    }
}

/// The stream: its shards, children after their parents.
pub struct SplitStream {
    name: String,
    state: Mutex<(Vec<Shard>, u64)>,
}

/// A Kinesis error answer.
fn error(kind: &str, message: &str) -> (u16, String) {
    (400, json!({"__type": kind, "message": message}).to_string())
}

impl SplitStream {
    /// A stream named `name` with one shard (`shardId-000000000000`) over the whole key space.
    pub fn new(name: &str) -> Arc<SplitStream> {
        SplitStream::with_shards(name, 1)
    }

    /// A stream named `name` with `n` shards splitting the key space evenly, as CreateStream does.
    pub fn with_shards(name: &str, n: u128) -> Arc<SplitStream> {
        let width = u128::MAX / n;
        let shards = (0..n)
            .map(|i| {
                let end = if i == n - 1 { u128::MAX } else { (i + 1) * width - 1 };
                let range = (i * width, end);
                Shard {
                    id: format!("shardId-{i:012}"),
                    parent: None,
                    range,
                    first: seq(1),
                    records: Vec::new(),
                    closed: false,
                }
            })
            .collect();
        Arc::new(SplitStream { name: name.to_string(), state: Mutex::new((shards, 1)) })
    }

    /// Puts (partition key, data) records at once, in order, each in the open shard whose range
    /// holds its key's hash key, as PutRecords does.
    pub fn put_all(&self, records: &[(String, Vec<u8>)]) {
        let mut state = self.state.lock().expect("stream");
        let (shards, next) = &mut *state;
        let arrival = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
        for (key, data) in records {
            let hash = stream::kinesis::hash_key(key);
            let shard = shards.iter_mut().find(|s| !s.closed && s.range.0 <= hash && hash <= s.range.1);
            let shard = shard.expect("an open shard holds every hash key");
            shard.records.push(Record { seq: seq(*next), key: key.clone(), data: data.clone(), arrival });
            *next += 1;
        }
    }

    /// Splits `shard` in the middle of its range, as SplitShard does: it is closed with the records
    /// it holds; two children take its halves. Returns the children's ids.
    pub fn split(&self, shard: &str) -> [String; 2] {
        let mut state = self.state.lock().expect("stream");
        let (shards, next) = &mut *state;
        let n = shards.len();
        let parent = shards.iter_mut().find(|s| s.id == shard && !s.closed).expect("an open shard to split");
        parent.closed = true;
        let (start, end) = parent.range;
        let mid = start + (end - start) / 2;
        let ids = [format!("shardId-{n:012}"), format!("shardId-{:012}", n + 1)];
        for (id, range) in ids.iter().zip([(start, mid), (mid + 1, end)]) {
            let first = seq(*next);
            let parent = Some(shard.to_string());
            shards.push(Shard { id: id.clone(), parent, range, first, records: Vec::new(), closed: false });
        }
        ids
    }

    /// The answer (status, JSON body) to a Kinesis call about this stream; None for any other call,
    /// which goes on to moto.
    pub fn serve(&self, target: &str, body: &[u8]) -> Option<(u16, String)> {
        let request: Value = serde_json::from_slice(body).ok()?;
        let ours = request["StreamName"].as_str() == Some(self.name.as_str())
            || request["StreamARN"].as_str().is_some_and(|a| a.ends_with(&format!("/{}", self.name)));
        match target.strip_prefix("Kinesis_20131202.")? {
            "ListShards" if ours => Some(self.list_shards()),
            "GetShardIterator" if ours => Some(self.shard_iterator(&request)),
            "GetRecords" => {
                let (stream, shard, at) = parse_iterator(request["ShardIterator"].as_str()?)?;
                (stream == self.name).then(|| self.get_records(&shard, at, request["Limit"].as_u64()))
            }
            _ => None,
        }
    }

    fn list_shards(&self) -> (u16, String) {
        let state = self.state.lock().expect("stream");
        (200, json!({"Shards": state.0.iter().map(Shard::listed).collect::<Vec<_>>()}).to_string())
    }

    fn shard_iterator(&self, request: &Value) -> (u16, String) {
        let state = self.state.lock().expect("stream");
        let id = request["ShardId"].as_str().unwrap_or_default();
        let Some(shard) = state.0.iter().find(|s| s.id == id) else {
            return error("ResourceNotFoundException", &format!("no shard {id}"));
        };
        let at_seq = |s: &str| shard.records.iter().position(|r| r.seq.as_str() >= s).unwrap_or(shard.records.len());
        let from = request["StartingSequenceNumber"].as_str().unwrap_or_default();
        let index = match request["ShardIteratorType"].as_str().unwrap_or_default() {
            "TRIM_HORIZON" => 0,
            "LATEST" => shard.records.len(),
            "AT_SEQUENCE_NUMBER" => at_seq(from),
            "AFTER_SEQUENCE_NUMBER" => {
                shard.records.iter().position(|r| r.seq.as_str() > from).unwrap_or(shard.records.len())
            }
            "AT_TIMESTAMP" => {
                let t = request["Timestamp"].as_f64().unwrap_or_default();
                shard.records.iter().position(|r| r.arrival >= t).unwrap_or(shard.records.len())
            }
            other => return error("InvalidArgumentException", &format!("iterator type {other}")),
        };
        (200, json!({"ShardIterator": iterator(&self.name, id, index)}).to_string())
    }

    fn get_records(&self, id: &str, at: usize, limit: Option<u64>) -> (u16, String) {
        let state = self.state.lock().expect("stream");
        let Some(shard) = state.0.iter().find(|s| s.id == id) else {
            return error("ResourceNotFoundException", &format!("no shard {id}"));
        };
        let end = (at + limit.unwrap_or(10_000) as usize).min(shard.records.len());
        let records: Vec<Value> = shard.records[at.min(end)..end]
            .iter()
            .map(|r| {
                json!({"SequenceNumber": r.seq, "PartitionKey": r.key, "Data": B64.encode(&r.data),
                    "ApproximateArrivalTimestamp": r.arrival})
            })
            .collect();
        let behind = if end < shard.records.len() { 1000 } else { 0 };
        let mut page = json!({"Records": records, "MillisBehindLatest": behind});
        if shard.closed && end == shard.records.len() {
            // The end of a closed shard: no next iterator, and where its keys went.
            let children: Vec<Value> = state
                .0
                .iter()
                .filter(|c| c.parent.as_deref() == Some(id))
                .map(|c| json!({"ShardId": c.id, "ParentShards": [id], "HashKeyRange": c.listed()["HashKeyRange"]}))
                .collect();
            page["ChildShards"] = json!(children);
        } else {
            page["NextShardIterator"] = json!(iterator(&self.name, id, end));
        }
        (200, page.to_string())
    }
}

/// Sequence number `n`, of a fixed width: the string order is the numeric order.
fn seq(n: u64) -> String {
    format!("{n:021}")
}

/// An iterator shaped as moto's (base64 of `stream:shard:position`), so the proxy's read log reads
/// its shard the same way.
fn iterator(stream: &str, shard: &str, index: usize) -> String {
    B64.encode(format!("{stream}:{shard}:{index}"))
}

fn parse_iterator(iterator: &str) -> Option<(String, String, usize)> {
    let text = String::from_utf8(B64.decode(iterator).ok()?).ok()?;
    let mut parts = text.split(':');
    Some((parts.next()?.to_string(), parts.next()?.to_string(), parts.next()?.parse().ok()?))
}
