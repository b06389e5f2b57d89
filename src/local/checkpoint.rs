//! Checkpoints that outlive `stream local`: per shard, the sequence number up to which every record
//! is done. A restarted run resumes after it (records done past it in parallel lanes come again,
//! as they do in Lambda: delivery is at least once, the table's keys make it exactly once).
//! The file belongs to one stream and one mapping; another stream (a recreated stack) starts afresh.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The position of a shard that is closed (split or merged) and whose every record is done, as
/// Lambda checkpoints it: its children take over.
pub const SHARD_END: &str = "SHARD_END";

/// What the file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoints {
    /// The stream the positions belong to.
    pub stream_arn: String,
    /// The event source mapping's UUID.
    pub mapping: String,
    /// Shard id → last sequence number done.
    pub shards: BTreeMap<String, String>,
}

/// The checkpoint file, written whole (temporary file and rename) at every change.
pub struct CheckpointFile {
    path: PathBuf,
    data: Mutex<Checkpoints>,
}

impl CheckpointFile {
    /// Opens `path`; positions of another stream or mapping, or `reset`, start empty.
    pub fn open(path: &Path, stream_arn: &str, mapping: &str, reset: bool) -> Result<Self, Error> {
        let fresh = Checkpoints { stream_arn: stream_arn.into(), mapping: mapping.into(), shards: BTreeMap::new() };
        let data = match std::fs::read(path) {
            Ok(bytes) if !reset => match serde_json::from_slice::<Checkpoints>(&bytes) {
                Ok(c) if c.stream_arn == stream_arn && c.mapping == mapping => c,
                Ok(_) => {
                    tracing::warn!(path = %path.display(), "checkpoints of another stream or mapping: starting afresh");
                    fresh
                }
                Err(e) => {
                    return Err(Error::failed(
                        format!("checkpoint file {} is not readable: {e}", path.display()),
                        "delete it, or run with --reset to start from the mapping's starting position",
                    ));
                }
            },
            Ok(_) => fresh,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => fresh,
            Err(e) => return Err(Error::io(path.display().to_string(), e)),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
        }
        Ok(CheckpointFile { path: path.to_path_buf(), data: Mutex::new(data) })
    }

    /// The position of `shard`, if one was saved.
    pub fn get(&self, shard: &str) -> Option<String> {
        self.data.lock().unwrap_or_else(|p| p.into_inner()).shards.get(shard).cloned()
    }

    /// Every saved position.
    pub fn all(&self) -> Checkpoints {
        self.data.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Saves `sequence` as the position of `shard`.
    pub fn set(&self, shard: &str, sequence: &str) -> Result<(), Error> {
        let mut data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        data.shards.insert(shard.to_string(), sequence.to_string());
        let json = serde_json::to_vec_pretty(&*data).unwrap_or_default();
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| Error::io(self.path.display().to_string(), e))
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Records of one shard in the order they were read, and which are done: the checkpoint is the
/// last record of the leading run of done ones.
#[derive(Debug, Default)]
pub struct Progress {
    window: BTreeMap<u64, (String, bool)>,
    next: u64,
}

impl Progress {
    /// Registers a record just read; returns its ordinal.
    pub fn read(&mut self, sequence: &str) -> u64 {
        let ord = self.next;
        self.next += 1;
        self.window.insert(ord, (sequence.to_string(), false));
        ord
    }

    /// Marks records done; returns the new checkpoint when it moved.
    pub fn done(&mut self, ordinals: impl IntoIterator<Item = u64>) -> Option<String> {
        for o in ordinals {
            if let Some(e) = self.window.get_mut(&o) {
                e.1 = true;
            }
        }
        let mut moved = None;
        while let Some(entry) = self.window.first_entry() {
            if !entry.get().1 {
                break;
            }
            moved = Some(entry.remove().0);
        }
        moved
    }

    /// Records read and not yet done (or waiting behind one that is not).
    pub fn outstanding(&self) -> usize {
        self.window.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkpoint_waits_for_every_earlier_record() {
        let mut p = Progress::default();
        let ords: Vec<u64> = ["10", "11", "12", "13"].iter().map(|s| p.read(s)).collect();
        assert_eq!(p.done([ords[1], ords[3]]), None, "record 10 is not done yet");
        assert_eq!(p.done([ords[0]]), Some("11".to_string()));
        assert_eq!(p.outstanding(), 2);
        assert_eq!(p.done([ords[2]]), Some("13".to_string()));
        assert_eq!(p.outstanding(), 0);
    }

    #[test]
    fn the_file_survives_a_restart_and_belongs_to_one_stream() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s/checkpoints.json");
        let f = CheckpointFile::open(&path, "arn:s", "uuid", false).expect("open");
        f.set("shardId-0", "49").expect("save");
        let again = CheckpointFile::open(&path, "arn:s", "uuid", false).expect("reopen");
        assert_eq!(again.get("shardId-0").as_deref(), Some("49"));
        assert_eq!(again.path(), path);
        let shards = BTreeMap::from([("shardId-0".to_string(), "49".to_string())]);
        assert_eq!(again.all(), Checkpoints { stream_arn: "arn:s".into(), mapping: "uuid".into(), shards });
        assert!(!path.with_extension("json.tmp").exists(), "written through a temporary file, renamed");
        assert_eq!(CheckpointFile::open(&path, "arn:other", "uuid", false).expect("other").get("shardId-0"), None);
        assert_eq!(CheckpointFile::open(&path, "arn:s", "another", false).expect("mapping").get("shardId-0"), None);
        assert_eq!(CheckpointFile::open(&path, "arn:s", "uuid", true).expect("reset").get("shardId-0"), None);
        std::fs::write(&path, "not json").expect("break it");
        let err = CheckpointFile::open(&path, "arn:s", "uuid", false).err().expect("unreadable");
        assert!(err.to_string().contains("is not readable") && err.hint().contains("--reset"), "{err}");
        let reset = CheckpointFile::open(&path, "arn:s", "uuid", true).expect("--reset opens a broken file afresh");
        assert_eq!(reset.all().shards.len(), 0);
        // Only a missing file starts afresh; one that cannot be read is an error.
        let err = CheckpointFile::open(dir.path(), "arn:s", "uuid", false).err().expect("a directory");
        assert_eq!(err.exit_code(), 1, "{err}");
    }
}
