//! The KPL aggregate record format, read by the function and written by the producer:
//! `F3 89 9A C2` | protobuf `AggregatedRecord` | MD5 of the protobuf bytes.
//! <https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md>
//! A leaf: bytes in, bytes out; a hand-written proto2 reader/writer for three small messages.

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

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, field << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Builds an aggregate of `(partition key, data)` records; equal keys share one table entry.
/// Kinesis routes an aggregate by the partition key it is put with, so aggregate only records
/// bound for the same shard.
pub fn aggregate<'a>(records: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut keys: Vec<&str> = Vec::new();
    let mut body_records = Vec::new();
    for (key, data) in records {
        let index = keys.iter().position(|k| *k == key).unwrap_or_else(|| {
            keys.push(key);
            keys.len() - 1
        });
        let mut rec = Vec::with_capacity(data.len() + 8);
        put_varint(&mut rec, 1 << 3);
        put_varint(&mut rec, index as u64);
        put_bytes(&mut rec, 3, data);
        body_records.push(rec);
    }
    let mut body = Vec::new();
    for key in &keys {
        put_bytes(&mut body, 1, key.as_bytes());
    }
    for rec in &body_records {
        put_bytes(&mut body, 3, rec);
    }
    let mut out = Vec::with_capacity(MAGIC.len() + body.len() + DIGEST_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    out
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
}
