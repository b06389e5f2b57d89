//! The dead-letter file: records the stream did not accept after every retry, one JSON line each
//! with the reason, so nothing is dropped silently. Created (mode 0600) at the first failure only.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Serialize;

use crate::error::Error;
use crate::kinesis::Entry;

/// One line of the file.
#[derive(Debug, Serialize)]
struct Line<'a> {
    partition_key: &'a str,
    /// The record's bytes, base64.
    data: String,
    error_code: &'a str,
    reason: &'a str,
    time: String,
}

/// Appends failed records to a file, opened on first use.
#[derive(Debug)]
pub struct DeadLetter {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    written: usize,
}

impl DeadLetter {
    /// A dead-letter file at `path` (not created until a record fails).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DeadLetter { path: path.into(), file: None, written: 0 }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records written so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Appends one record with why it failed.
    pub fn add(&mut self, entry: &Entry, error_code: &str, reason: &str) -> Result<(), Error> {
        let io = |e| Error::io(self.path.display().to_string(), e);
        if self.file.is_none() {
            use std::os::unix::fs::OpenOptionsExt;
            let file =
                std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path).map_err(io)?;
            self.file = Some(BufWriter::new(file));
        }
        let line = Line {
            partition_key: &entry.key,
            data: base64::engine::general_purpose::STANDARD.encode(&entry.data),
            error_code,
            reason,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        let Some(file) = self.file.as_mut() else { return Ok(()) };
        serde_json::to_writer(&mut *file, &line).map_err(|e| io(e.into()))?;
        file.write_all(b"\n").map_err(io)?;
        self.written += 1;
        Ok(())
    }

    /// Flushes what was written.
    pub fn flush(&mut self) -> Result<(), Error> {
        let path = self.path.display().to_string();
        match self.file.as_mut() {
            Some(f) => f.flush().map_err(|e| Error::io(path, e)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn failed_records_are_kept_with_their_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dead.jsonl");
        let mut dl = DeadLetter::new(&path);
        assert!(!path.exists(), "nothing is created before a failure");
        assert_eq!(dl.written(), 0, "no failure, no dead letter reported");
        dl.add(
            &Entry { key: "k".into(), data: b"payload".to_vec().into() },
            "ProvisionedThroughputExceededException",
            "Rate exceeded",
        )
        .expect("add");
        dl.flush().expect("flush");
        let text = std::fs::read_to_string(&path).expect("read");
        let line: serde_json::Value = serde_json::from_str(text.trim()).expect("json line");
        assert_eq!(line["partition_key"], "k");
        assert_eq!(line["data"], "cGF5bG9hZA==");
        assert_eq!(line["error_code"], "ProvisionedThroughputExceededException");
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        assert_eq!(dl.written(), 1);
        // A second failure appends its own line, and the count follows the lines.
        dl.add(&Entry { key: "k2".into(), data: b"two".to_vec().into() }, "InternalFailure", "5xx").expect("add");
        dl.flush().expect("flush");
        let text = std::fs::read_to_string(&path).expect("read");
        let keys: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line")["partition_key"].to_string())
            .collect();
        assert_eq!(keys, ["\"k\"", "\"k2\""]);
        assert_eq!(dl.written(), 2);
    }
}
