//! The KPL aggregate record format, read by the function and written by the producer:
//! `F3 89 9A C2` | protobuf `AggregatedRecord` | MD5 of the protobuf bytes.
//! <https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md>
//! A leaf: bytes in, bytes out; a hand-written proto2 reader/writer for three small messages.

use std::collections::HashMap;

use bytes::Bytes;
use md5::{Digest, Md5};

/// The four bytes every aggregate starts with.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

/// One user record inside an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubRecord<'a> {
    /// Partition key from the aggregate's key table.
    pub partition_key: &'a str,
    /// Explicit hash key, when the producer set one.
    pub explicit_hash_key: Option<&'a str>,
    /// The user record's bytes.
    pub data: &'a [u8],
}

/// Why an aggregate cannot be read. Each is poison: the bytes will never read differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KplError {
    /// The MD5 trailer does not match the protobuf bytes.
    BadDigest,
    /// The protobuf ends in the middle of a field.
    Truncated,
    /// A field has a wire type the format does not use, or a required field is missing.
    Malformed(&'static str),
    /// A record points past the end of a key table.
    BadIndex,
    /// A key is not UTF-8.
    NotUtf8,
}

impl std::fmt::Display for KplError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KplError::BadDigest => f.write_str("KPL aggregate with a bad MD5 digest"),
            KplError::Truncated => f.write_str("KPL aggregate cut short"),
            KplError::Malformed(what) => write!(f, "malformed KPL aggregate: {what}"),
            KplError::BadIndex => f.write_str("KPL aggregate record points past its key table"),
            KplError::NotUtf8 => f.write_str("KPL aggregate key is not UTF-8"),
        }
    }
}

/// True when `data` carries the aggregate magic and room for a digest. Anything else is a plain record.
pub fn is_aggregate(data: &[u8]) -> bool {
    data.len() >= MAGIC.len() + DIGEST_LEN && data[..MAGIC.len()] == MAGIC
}

/// A cursor over protobuf bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, KplError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.pos).ok_or(KplError::Truncated)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(KplError::Malformed("varint longer than 10 bytes"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], KplError> {
        let len = usize::try_from(self.varint()?).map_err(|_| KplError::Truncated)?;
        let end = self.pos.checked_add(len).filter(|&e| e <= self.buf.len()).ok_or(KplError::Truncated)?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Skips a field of an unused number (tags, future fields).
    fn skip(&mut self, wire_type: u64) -> Result<(), KplError> {
        match wire_type {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            _ => Err(KplError::Malformed("unknown wire type")),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), KplError> {
        if self.pos + n > self.buf.len() {
            return Err(KplError::Truncated);
        }
        self.pos += n;
        Ok(())
    }
}

/// Splits an aggregate into its records, in order. Checks the digest first.
pub fn deaggregate(data: &[u8]) -> Result<Vec<SubRecord<'_>>, KplError> {
    if !is_aggregate(data) {
        return Err(KplError::Malformed("no aggregate magic"));
    }
    let body = &data[MAGIC.len()..data.len() - DIGEST_LEN];
    let digest = &data[data.len() - DIGEST_LEN..];
    if Md5::digest(body).as_slice() != digest {
        return Err(KplError::BadDigest);
    }
    let mut keys: Vec<&str> = Vec::new();
    let mut hash_keys: Vec<&str> = Vec::new();
    // (partition key index, explicit hash key index, data)
    let mut raw: Vec<(u64, Option<u64>, &[u8])> = Vec::new();
    let mut r = Reader::new(body);
    while !r.done() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => keys.push(std::str::from_utf8(r.bytes()?).map_err(|_| KplError::NotUtf8)?),
            (2, 2) => hash_keys.push(std::str::from_utf8(r.bytes()?).map_err(|_| KplError::NotUtf8)?),
            (3, 2) => raw.push(read_record(r.bytes()?)?),
            (_, wire) => r.skip(wire)?,
        }
    }
    raw.into_iter()
        .map(|(pk, ehk, data)| {
            let partition_key =
                *keys.get(usize::try_from(pk).map_err(|_| KplError::BadIndex)?).ok_or(KplError::BadIndex)?;
            let explicit_hash_key = match ehk {
                Some(i) => Some(
                    *hash_keys.get(usize::try_from(i).map_err(|_| KplError::BadIndex)?).ok_or(KplError::BadIndex)?,
                ),
                None => None,
            };
            Ok(SubRecord { partition_key, explicit_hash_key, data })
        })
        .collect()
}

fn read_record(buf: &[u8]) -> Result<(u64, Option<u64>, &[u8]), KplError> {
    let mut r = Reader::new(buf);
    let (mut pk, mut ehk, mut data) = (None, None, None);
    while !r.done() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 0) => pk = Some(r.varint()?),
            (2, 0) => ehk = Some(r.varint()?),
            (3, 2) => data = Some(r.bytes()?),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok((
        pk.ok_or(KplError::Malformed("record without partition_key_index"))?,
        ehk,
        data.ok_or(KplError::Malformed("record without data"))?,
    ))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes `v` takes as a varint.
fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Bytes a length-delimited field of `len` bytes takes: tag, length, payload.
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, field << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Bytes of a `Record` message (partition_key_index, data) inside the aggregate, without its framing.
fn record_len(key_index: usize, data_len: usize) -> usize {
    1 + varint_len(key_index as u64) + field_len(data_len)
}

/// What `Aggregator::take` hands back: one record as it came, or an aggregate of several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packed {
    /// A lone record, sent as it is (an aggregate of one only adds bytes).
    Plain {
        /// Its partition key.
        key: String,
        /// Its data.
        data: Bytes,
    },
    /// An aggregate, to be put with the partition key of its first record.
    Aggregate {
        /// The first record's partition key.
        key: String,
        /// The aggregate's bytes.
        data: Vec<u8>,
        /// Records inside.
        records: usize,
    },
}

/// Packs records bound for one shard into one aggregate, knowing its exact size as it grows, so
/// that a caller can close it just below a limit. Equal keys share one entry of the key table.
/// Kinesis routes an aggregate by the partition key it is put with, so aggregate only records
/// bound for the same shard.
#[derive(Debug, Default)]
pub struct Aggregator {
    /// Key → index in the key table.
    keys: HashMap<String, usize>,
    /// (key index, data) in arrival order.
    records: Vec<(usize, Bytes)>,
    /// Bytes of the protobuf body so far.
    body: usize,
    /// Data bytes of the records so far.
    data: usize,
}

impl Aggregator {
    /// Records collected.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when nothing is collected.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Data bytes of the records collected (what their senders asked to put).
    pub fn data_bytes(&self) -> usize {
        self.data
    }

    /// The aggregate's size, magic and digest included, once a record of `key` and `data_len`
    /// bytes is added.
    pub fn size_with(&self, key: &str, data_len: usize) -> usize {
        let (index, key_entry) = match self.keys.get(key) {
            Some(&i) => (i, 0),
            None => (self.keys.len(), field_len(key.len())),
        };
        MAGIC.len() + self.body + key_entry + field_len(record_len(index, data_len)) + DIGEST_LEN
    }

    /// Adds a record.
    pub fn push(&mut self, key: String, data: Bytes) {
        let next = self.keys.len();
        let index = match self.keys.get(&key) {
            Some(&i) => i,
            None => {
                self.body += field_len(key.len());
                self.keys.insert(key, next);
                next
            }
        };
        self.body += field_len(record_len(index, data.len()));
        self.data += data.len();
        self.records.push((index, data));
    }

    /// Empties the aggregator: the key table in index order, the records, the body's size.
    fn drain(&mut self) -> (Vec<String>, Vec<(usize, Bytes)>, usize) {
        let mut table = vec![String::new(); self.keys.len()];
        for (key, i) in self.keys.drain() {
            table[i] = key;
        }
        self.data = 0;
        (table, std::mem::take(&mut self.records), std::mem::replace(&mut self.body, 0))
    }

    /// What was collected (a lone record plain), leaving the aggregator empty.
    pub fn take(&mut self) -> Option<Packed> {
        let (mut table, records, body) = self.drain();
        match records.len() {
            0 => None,
            1 => records.into_iter().next().map(|(i, data)| Packed::Plain { key: std::mem::take(&mut table[i]), data }),
            n => {
                let data = write_aggregate(&table, &records, body);
                Some(Packed::Aggregate { key: std::mem::take(&mut table[0]), data, records: n })
            }
        }
    }
}

/// The aggregate's bytes: magic, key table, records, MD5 of the protobuf body; one allocation.
fn write_aggregate(keys: &[String], records: &[(usize, Bytes)], body: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + body + DIGEST_LEN);
    out.extend_from_slice(&MAGIC);
    for key in keys {
        put_bytes(&mut out, 1, key.as_bytes());
    }
    for (index, data) in records {
        put_varint(&mut out, 3 << 3 | 2);
        put_varint(&mut out, record_len(*index, data.len()) as u64);
        put_varint(&mut out, 1 << 3);
        put_varint(&mut out, *index as u64);
        put_bytes(&mut out, 3, data);
    }
    let digest = Md5::digest(&out[MAGIC.len()..]);
    out.extend_from_slice(&digest);
    out
}

/// Builds an aggregate of `(partition key, data)` records; equal keys share one table entry.
/// Kinesis routes an aggregate by the partition key it is put with, so aggregate only records
/// bound for the same shard.
pub fn aggregate<'a>(records: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut agg = Aggregator::default();
    for (key, data) in records {
        agg.push(key.to_string(), Bytes::copy_from_slice(data));
    }
    let (keys, records, body) = agg.drain();
    write_aggregate(&keys, &records, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_round_trips() {
        let recs: Vec<(&str, &[u8])> =
            vec![("a", b"one"), ("b", "twö 🌏".as_bytes()), ("a", b""), ("c", &[0, 255, 10])];
        let agg = aggregate(recs.iter().copied());
        assert!(is_aggregate(&agg));
        let back = deaggregate(&agg).expect("valid aggregate");
        let pairs: Vec<(&str, &[u8])> = back.iter().map(|s| (s.partition_key, s.data)).collect();
        assert_eq!(pairs, recs);
        assert!(back.iter().all(|s| s.explicit_hash_key.is_none()));
    }

    /// The size announced before each record is the size of the aggregate written with it.
    #[test]
    fn aggregator_knows_its_exact_size() {
        let mut agg = Aggregator::default();
        assert!(agg.is_empty());
        let mut expected = Vec::new();
        let mut announced = 0;
        for i in 0..300usize {
            // Keys repeat, indices pass 127 (a two-byte varint), data lengths pass 127 and 16,383.
            let key = format!("user_{}", i % 200);
            let data = Bytes::from(vec![b'a' + (i % 26) as u8; (i * 61) % 20_000]);
            announced = agg.size_with(&key, data.len());
            expected.push((key.clone(), data.clone()));
            agg.push(key, data);
        }
        assert!(!agg.is_empty(), "the worker closes an aggregate by its size only when it holds records");
        assert_eq!(agg.len(), 300);
        assert_eq!(agg.data_bytes(), expected.iter().map(|(_, d)| d.len()).sum::<usize>());
        let Some(Packed::Aggregate { key, data, records }) = agg.take() else { panic!("an aggregate") };
        assert_eq!((key.as_str(), records, data.len()), ("user_0", 300, announced));
        let back = deaggregate(&data).expect("valid aggregate");
        let pairs: Vec<(&str, &[u8])> = back.iter().map(|s| (s.partition_key, s.data)).collect();
        let want: Vec<(&str, &[u8])> = expected.iter().map(|(k, d)| (k.as_str(), d.as_ref())).collect();
        assert_eq!(pairs, want);
        assert!(agg.is_empty() && agg.take().is_none(), "taking empties it");
    }

    #[test]
    fn a_lone_record_is_sent_plain() {
        let mut agg = Aggregator::default();
        agg.push("k".into(), Bytes::from_static(b"data"));
        assert_eq!(agg.take(), Some(Packed::Plain { key: "k".into(), data: Bytes::from_static(b"data") }));
    }

    #[test]
    fn varint_lengths() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(varint_len(v), out.len(), "{v}");
        }
    }

    #[test]
    fn plain_records_are_not_aggregates() {
        assert!(!is_aggregate(b"{\"id_str\":\"1\"}"));
        assert!(!is_aggregate(&MAGIC));
    }

    #[test]
    fn bad_digest_is_refused() {
        let mut agg = aggregate([("a", b"x".as_slice())]);
        let n = agg.len();
        agg[n - 1] ^= 1;
        assert_eq!(deaggregate(&agg), Err(KplError::BadDigest));
    }

    /// Builds an aggregate around arbitrary protobuf bytes, with a correct digest.
    fn wrap(body: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(body);
        out.extend_from_slice(&Md5::digest(body));
        out
    }

    #[test]
    fn malformed_bodies_are_refused_without_panic() {
        // Record pointing at key index 3 of an empty table.
        let mut rec = Vec::new();
        put_varint(&mut rec, 1 << 3);
        put_varint(&mut rec, 3);
        put_bytes(&mut rec, 3, b"d");
        let mut body = Vec::new();
        put_bytes(&mut body, 3, &rec);
        assert_eq!(deaggregate(&wrap(&body)), Err(KplError::BadIndex));
        // Length running past the end.
        assert_eq!(deaggregate(&wrap(&[0x0A, 0x05, b'a'])), Err(KplError::Truncated));
        // Wire type 7 does not exist.
        assert!(matches!(deaggregate(&wrap(&[0x0F])), Err(KplError::Malformed(_))));
        // Key that is not UTF-8.
        assert_eq!(deaggregate(&wrap(&[0x0A, 0x01, 0xFF])), Err(KplError::NotUtf8));
    }

    #[test]
    fn explicit_hash_keys_and_tags_are_read() {
        let mut rec = Vec::new();
        put_varint(&mut rec, 1 << 3);
        put_varint(&mut rec, 0);
        put_varint(&mut rec, 2 << 3);
        put_varint(&mut rec, 0);
        put_bytes(&mut rec, 3, b"payload");
        let mut tag = Vec::new();
        put_bytes(&mut tag, 1, b"k");
        put_bytes(&mut rec, 4, &tag);
        let mut body = Vec::new();
        put_bytes(&mut body, 1, b"pk");
        put_bytes(&mut body, 2, b"340282366920938463463374607431768211455");
        put_bytes(&mut body, 3, &rec);
        let agg = wrap(&body);
        let recs = deaggregate(&agg).expect("valid");
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].explicit_hash_key, Some("340282366920938463463374607431768211455"));
        assert_eq!(recs[0].data, b"payload");
    }

    /// Fields of numbers the format does not use are skipped whatever their wire type (varint,
    /// 64-bit, length-delimited, 32-bit), in the aggregate and in a record, as protobuf readers do;
    /// a fixed-width field cut short is `Truncated`.
    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        let unknown = |out: &mut Vec<u8>, field: u64| {
            put_varint(out, field << 3);
            put_varint(out, 300);
            put_varint(out, (field + 1) << 3 | 1);
            out.extend_from_slice(&[7; 8]);
            put_bytes(out, field + 2, b"skip me");
            put_varint(out, (field + 3) << 3 | 5);
            out.extend_from_slice(&[9; 4]);
        };
        let mut rec = Vec::new();
        unknown(&mut rec, 10);
        put_varint(&mut rec, 1 << 3);
        put_varint(&mut rec, 0);
        put_bytes(&mut rec, 3, b"payload");
        unknown(&mut rec, 20);
        let mut body = Vec::new();
        unknown(&mut body, 10);
        put_bytes(&mut body, 1, b"pk");
        unknown(&mut body, 20);
        put_bytes(&mut body, 3, &rec);
        unknown(&mut body, 30);
        let agg = wrap(&body);
        let recs = deaggregate(&agg).expect("valid");
        assert_eq!(recs, [SubRecord { partition_key: "pk", explicit_hash_key: None, data: b"payload" }]);
        for (wire, width) in [(1u8, 8usize), (5, 4)] {
            let mut cut = vec![(10 << 3) | wire];
            cut.extend(std::iter::repeat_n(0, width - 1));
            assert_eq!(deaggregate(&wrap(&cut)), Err(KplError::Truncated), "wire type {wire}");
        }
    }
}
