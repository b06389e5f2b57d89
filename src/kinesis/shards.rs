//! Which shard a record goes to, as Kinesis decides it: the MD5 of the partition key read as a
//! 128-bit big-endian number, inside the hash key range of one open shard (from ListShards).
//! And in which order shards are read across splits and merges (`Lineage`): a child after its
//! parents, so that each key's records are read in order.
//! <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html>

use std::collections::BTreeSet;

use aws_sdk_kinesis::types::Shard;
use md5::{Digest, Md5};

use crate::error::Error;

/// The open shards of a stream, ordered by hash key range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    /// (first hash key, last hash key, shard id), sorted by first hash key.
    ranges: Vec<(u128, u128, String)>,
}

/// The hash key Kinesis computes for a partition key.
pub fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

impl ShardMap {
    /// The map of the open shards (a closed shard has an ending sequence number).
    pub fn new(shards: &[Shard]) -> Result<Self, Error> {
        let mut ranges = Vec::new();
        for s in shards {
            if s.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_some() {
                continue;
            }
            let range = s.hash_key_range();
            let parse = |v: Option<&str>| v.and_then(|v| v.parse::<u128>().ok());
            let (Some(start), Some(end)) =
                (parse(range.map(|r| r.starting_hash_key())), parse(range.map(|r| r.ending_hash_key())))
            else {
                return Err(Error::failed(
                    format!("shard {} has no readable hash key range", s.shard_id()),
                    "run again; if it persists the stream is being resharded",
                ));
            };
            ranges.push((start, end, s.shard_id().to_string()));
        }
        if ranges.is_empty() {
            return Err(Error::failed(
                "the stream has no open shard",
                "wait until the stream is ACTIVE, then run again",
            ));
        }
        ranges.sort();
        Ok(ShardMap { ranges })
    }

    /// Number of open shards.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True when there is no shard (never, for a map built by `new`).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Id of the shard at `index`.
    pub fn id(&self, index: usize) -> &str {
        &self.ranges[index].2
    }

    /// Index of the shard that holds `partition_key`.
    pub fn shard_for(&self, partition_key: &str) -> usize {
        if self.ranges.len() == 1 {
            // One open shard takes every key: no MD5 needed to say so.
            return 0;
        }
        let h = hash_key(partition_key);
        // The last range starting at or before h.
        self.ranges.partition_point(|(start, _, _)| *start <= h).saturating_sub(1)
    }
}

/// Which shards may be read, across splits and merges: a shard once each of its parents (a split
/// has one, a merge two) is read to its end, or is no longer listed (expired with its records).
#[derive(Debug, Default)]
pub struct Lineage {
    started: BTreeSet<String>,
    done: BTreeSet<String>,
}

impl Lineage {
    /// The shards of `listed` that may start now and have not started yet; they count as started.
    pub fn ready<'a>(&mut self, listed: &'a [Shard]) -> Vec<&'a Shard> {
        let ids: BTreeSet<&str> = listed.iter().map(|s| s.shard_id()).collect();
        let mut ready = Vec::new();
        for shard in listed {
            let parents = [shard.parent_shard_id(), shard.adjacent_parent_shard_id()];
            let parents_done = parents.into_iter().flatten().all(|p| self.done.contains(p) || !ids.contains(p));
            if parents_done && self.started.insert(shard.shard_id().to_string()) {
                ready.push(shard);
            }
        }
        ready
    }

    /// Marks `shard` as read to its end (or not to be read): its children may start.
    pub fn done(&mut self, shard: &str) {
        self.started.insert(shard.to_string());
        self.done.insert(shard.to_string());
    }

    /// How many shards have started.
    pub fn started(&self) -> usize {
        self.started.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::types::{HashKeyRange, SequenceNumberRange};

    fn shard(id: &str, start: u128, end: u128, closed: bool) -> Shard {
        let mut seq = SequenceNumberRange::builder().starting_sequence_number("1");
        if closed {
            seq = seq.ending_sequence_number("2");
        }
        Shard::builder()
            .shard_id(id)
            .hash_key_range(
                HashKeyRange::builder()
                    .starting_hash_key(start.to_string())
                    .ending_hash_key(end.to_string())
                    .build()
                    .expect("range"),
            )
            .sequence_number_range(seq.build().expect("seq"))
            .build()
            .expect("shard")
    }

    fn child(id: &str, parent: Option<&str>, adjacent: Option<&str>) -> Shard {
        let mut b = Shard::builder()
            .shard_id(id)
            .hash_key_range(HashKeyRange::builder().starting_hash_key("0").ending_hash_key("1").build().expect("range"))
            .sequence_number_range(SequenceNumberRange::builder().starting_sequence_number("1").build().expect("seq"));
        if let Some(p) = parent {
            b = b.parent_shard_id(p);
        }
        if let Some(a) = adjacent {
            b = b.adjacent_parent_shard_id(a);
        }
        b.build().expect("shard")
    }

    /// A split's children start after their parent is done, a merge's child after both parents,
    /// and a shard whose parent expired at once; nothing starts twice.
    #[test]
    fn children_start_after_their_parents() {
        let listed = [
            child("s0", None, None),
            child("s1", Some("s0"), None),
            child("s2", Some("s0"), None),
            child("s3", Some("s1"), Some("s2")),
            child("s4", Some("expired"), None),
        ];
        let ids = |v: Vec<&Shard>| v.iter().map(|s| s.shard_id().to_string()).collect::<Vec<_>>();
        let mut lineage = Lineage::default();
        assert_eq!(ids(lineage.ready(&listed)), ["s0", "s4"]);
        assert!(lineage.ready(&listed).is_empty(), "nothing starts twice");
        lineage.done("s0");
        assert_eq!(ids(lineage.ready(&listed)), ["s1", "s2"]);
        lineage.done("s1");
        assert!(lineage.ready(&listed).is_empty(), "a merge waits for both parents");
        lineage.done("s2");
        assert_eq!(ids(lineage.ready(&listed)), ["s3"]);
        assert_eq!(lineage.started(), 5);
    }

    #[test]
    fn hash_key_is_md5_as_big_endian() {
        // md5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(hash_key(""), 0xd41d8cd98f00b204e9800998ecf8427e);
    }

    #[test]
    fn keys_go_to_the_shard_whose_range_holds_their_hash() {
        let half = u128::MAX / 2;
        let map = ShardMap::new(&[
            shard("shardId-000000000001", half + 1, u128::MAX, false),
            shard("shardId-000000000000", 0, half, false),
            shard("shardId-000000000009", 0, u128::MAX, true),
        ])
        .expect("map");
        assert_eq!((map.len(), map.is_empty()), (2, false), "closed shards are left out");
        let closed = ShardMap::new(&[shard("shardId-000000000009", 0, u128::MAX, true)]).expect_err("no open shard");
        assert_eq!(closed.to_string(), "the stream has no open shard");
        for key in ["a", "b", "zoe", "山田", "🦀", ""] {
            let expected = if hash_key(key) <= half { "shardId-000000000000" } else { "shardId-000000000001" };
            assert_eq!(map.id(map.shard_for(key)), expected, "{key}");
        }
    }
}
