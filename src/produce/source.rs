//! Where records come from, all into one channel of chunks: `spawn` starts the source the flags
//! name. The synthetic and file sources run on a thread of their own (making, reading and checking
//! records is CPU work that need not wait on the runtime) and send chunks of records; the live
//! sources (`live`) are tasks that send each post as it comes. Every record is checked against the
//! stack's event schema before it is sent (`file_record`: the item the function would make of it,
//! and its Kinesis partition key), so a record the function would refuse never leaves; synthetic
//! events come from `synthetic`.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use super::live::Chunk;
pub use crate::synthetic::Synthetic;

use super::live;
use super::{ProduceArgs, SourceKind};
use crate::error::Error;
use crate::schema::Schema;
use crate::synthetic::{Events, Kind};

/// Records sent together: one channel message and one wake-up for this many records.
pub const CHUNK_RECORDS: usize = 256;
/// Chunks a source may send ahead of delivery.
pub const CHANNEL_CHUNKS: usize = 4;
/// Bytes read from a file at a time; records are slices of these blocks, not copies.
const READ_BLOCK: usize = 256 * 1024;

/// A running source: a task (live sources) or a thread (synthetic, file), and the error it ended
/// with, if any.
pub struct Source {
    task: Option<JoinHandle<()>>,
    ended: Arc<Mutex<Option<Error>>>,
}

impl Source {
    /// Stops the source if it still runs (a thread stops at its next send, or with the process
    /// when it waits on stdin) and returns how it ended.
    pub fn stop(self) -> Result<(), Error> {
        if let Some(task) = self.task {
            task.abort();
        }
        self.ended.lock().map_or(Ok(()), |mut e| e.take().map_or(Ok(()), Err))
    }
}

/// Starts the source `args` names, sending on `tx`, each record checked against `schema`.
/// Synthetic makes `--count` events of `kind` (100 by default); a file (or stdin) ends at its end;
/// the live sources run until the receiver is gone. Input lines the function would refuse (file
/// source) are reported, skipped and counted in `bad_lines`.
pub fn spawn(
    args: &ProduceArgs,
    kind: Kind,
    schema: Arc<Schema>,
    tx: mpsc::Sender<Chunk>,
    bad_lines: Arc<AtomicU64>,
) -> Source {
    let ended = Arc::new(Mutex::new(None));
    let task = match args.source {
        SourceKind::Synthetic => {
            let (seed, count) = (args.seed, args.count.unwrap_or(100));
            on_thread(&ended, tx, move |tx| synthetic(kind, seed, count, &schema, tx));
            None
        }
        SourceKind::File | SourceKind::Stdin => {
            let path =
                if args.source == SourceKind::Stdin { "-".into() } else { args.file.clone().unwrap_or_default() };
            let limit = args.count;
            on_thread(&ended, tx, move |tx| read_file(&path, limit, &schema, tx, &bad_lines));
            None
        }
        SourceKind::Bluesky => {
            let backoff = live::Backoff { scale: args.reconnect_scale };
            let url = args.bluesky_url.clone();
            Some(tokio::spawn(live::bluesky(url, crate::net::Net::from_env(), tx, backoff)))
        }
        SourceKind::X => {
            let backoff = live::Backoff { scale: args.reconnect_scale };
            // Checked by `precheck`; never printed.
            let token = std::env::var("X_BEARER_TOKEN").unwrap_or_default().trim().to_string();
            let (url, track) = (args.x_url.clone(), args.track.clone());
            Some(tokio::spawn(live::x(url, crate::net::Net::from_env(), token, track, tx, backoff)))
        }
    };
    Source { task, ended }
}

/// Runs `work` on a thread of its own; its error is kept in `ended` before `tx` is dropped, so the
/// channel closing tells that the error, if any, is there.
fn on_thread(
    ended: &Arc<Mutex<Option<Error>>>,
    tx: mpsc::Sender<Chunk>,
    work: impl FnOnce(&mpsc::Sender<Chunk>) -> Result<(), Error> + Send + 'static,
) {
    let ended = ended.clone();
    std::thread::spawn(move || {
        if let Err(e) = work(&tx)
            && let Ok(mut slot) = ended.lock()
        {
            *slot = Some(e);
        }
        drop(tx);
    });
}

/// Makes `count` synthetic events of `kind`, a chunk at a time, keyed as `schema` says; an event
/// the schema refuses ends the source (the kind does not fit the stack's schema).
fn synthetic(
    kind: Kind,
    seed: Option<u64>,
    count: u64,
    schema: &Schema,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), Error> {
    let mut events = Events::new(kind, seed);
    let mut left = count;
    while left > 0 {
        let n = left.min(CHUNK_RECORDS as u64);
        let mut chunk: Chunk = Vec::with_capacity(n as usize);
        for event in events.by_ref().take(n as usize) {
            let key = schema.kinesis_key(&event).map_err(|why| misfit(kind, schema, &why.to_string()))?;
            chunk.push((key, Bytes::from(event)));
        }
        if tx.blocking_send(chunk).is_err() {
            return Ok(());
        }
        left -= n;
    }
    Ok(())
}

/// Synthetic events of `kind` that the stack's schema refuses.
pub fn misfit(kind: Kind, schema: &Schema, why: &str) -> Error {
    Error::usage(
        format!("synthetic {} events do not fit the stack's schema \"{}\": {why}", kind.name(), schema.name()),
        match Kind::for_schema(schema.name()) {
            Some(k) => format!("give --kind {}, or send your own events with --source file", k.name()),
            None => "send events of your schema with --source file (or --source stdin)".to_string(),
        },
    )
}

/// Sends the tweet lines of `path` (`-`: stdin), at most `limit`, in chunks; a chunk also goes out
/// before every read, so no record waits behind a read that may block (a pipe). Lines that are not
/// tweets are reported with their line number and skipped.
fn read_file(
    path: &std::path::Path,
    limit: Option<u64>,
    schema: &Schema,
    tx: &mpsc::Sender<Chunk>,
    bad_lines: &AtomicU64,
) -> Result<(), Error> {
    let io = |e| Error::io(path.display().to_string(), e);
    let mut reader: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).map_err(io)?)
    };
    let left = limit.unwrap_or(u64::MAX);
    let mut lines = Lines { path, schema, tx, number: 0, left, bad_lines, chunk: Vec::new(), gone: false };
    let mut buf = BytesMut::new();
    loop {
        // Every complete line read so far, as slices of one shared block.
        if let Some(last) = memchr::memrchr(b'\n', &buf) {
            let block = buf.split_to(last + 1).freeze();
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', &block) {
                lines.take(block.slice(start..end));
                start = end + 1;
            }
        }
        if !lines.send() || lines.left == 0 {
            return Ok(());
        }
        if buf.capacity() - buf.len() < READ_BLOCK / 2 {
            buf.reserve(READ_BLOCK);
        }
        let filled = buf.len();
        buf.resize(buf.capacity(), 0);
        let n = loop {
            match reader.read(&mut buf[filled..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other.map_err(io)?,
            }
        };
        buf.truncate(filled + n);
        if n == 0 {
            // The end: a last line without a newline is a line too.
            if !buf.is_empty() {
                lines.take(buf.split().freeze());
            }
            lines.send();
            return Ok(());
        }
    }
}

/// The lines of a file on their way to the channel.
struct Lines<'a> {
    path: &'a std::path::Path,
    schema: &'a Schema,
    tx: &'a mpsc::Sender<Chunk>,
    number: u64,
    left: u64,
    bad_lines: &'a AtomicU64,
    chunk: Chunk,
    /// The receiver is gone: nothing more is read.
    gone: bool,
}

impl Lines<'_> {
    /// Checks one line (without its newline): an event the function would write joins the chunk,
    /// which goes out once full; anything else is reported.
    fn take(&mut self, line: Bytes) {
        self.number += 1;
        if self.left == 0 || self.gone {
            return;
        }
        let mut line = line.slice_ref(line.trim_ascii());
        if !(line.starts_with(b"{") && line.ends_with(b"}"))
            && let Ok(text) = std::str::from_utf8(&line)
        {
            // Other Unicode white space around a line is no part of it either.
            line = line.slice_ref(text.trim().as_bytes());
        }
        if line.is_empty() {
            return;
        }
        match file_record(self.schema, &line) {
            Ok(key) => {
                self.chunk.push((key, line));
                self.left -= 1;
                if self.chunk.len() == CHUNK_RECORDS {
                    self.send();
                }
            }
            Err(reason) => {
                self.bad_lines.fetch_add(1, Ordering::Relaxed);
                crate::progress::status(format!("{}:{}: skipped: {reason}", self.path.display(), self.number));
            }
        }
    }

    /// Sends the chunk, if any; false once the receiver is gone.
    fn send(&mut self) -> bool {
        if !self.chunk.is_empty() && !self.gone {
            let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_RECORDS));
            self.gone = self.tx.blocking_send(chunk).is_err();
        }
        !self.gone
    }
}

/// The Kinesis partition key of one JSON line (already trimmed), as `schema` says (for tweets the
/// 2017 producer's: screen_name, then the user id, then the tweet id; at most 256 characters), or
/// why the function could not write it. The line itself is sent as it is, so records from any
/// producer stay whole.
pub fn file_record(schema: &Schema, line: &[u8]) -> Result<String, String> {
    schema.kinesis_key(line).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_lines_are_keyed_by_screen_name() {
        let file_record = |line: &[u8]| file_record(Schema::tweets(), line);
        let t = Synthetic::new(Some(3)).next_tweet();
        assert_eq!(file_record(&t.to_bytes()).expect("valid line"), t.user.screen_name);
        assert!(file_record(b"{not json").expect_err("bad").starts_with("not a JSON tweet"));
        assert!(file_record(br#"{"text":"no id"}"#).expect_err("bad").starts_with("no tweet id"));
        let no_handle = br#"{"id_str":"9","created_at":"Wed Oct 10 20:19:24 +0000 2018","text":"t","user":{"name":"N","id_str":"77"}}"#;
        assert_eq!(file_record(no_handle).expect("valid"), "77");
        let long = format!(
            r#"{{"id_str":"9","created_at":"Wed Oct 10 20:19:24 +0000 2018","text":"t","user":{{"name":"N","screen_name":"{}"}}}}"#,
            "é".repeat(300)
        );
        assert_eq!(file_record(long.as_bytes()).expect("valid"), "é".repeat(256), "cut at 256 characters");
    }

    /// `--count` synthetic events leave in full chunks and a last partial one, each keyed by the
    /// schema; the same seed makes the same events; a schema the events do not fit is refused.
    #[test]
    fn synthetic_events_leave_in_chunks_of_the_count() {
        let made = |kind: Kind, count: u64, schema: &Schema| {
            let (tx, mut rx) = mpsc::channel(8);
            synthetic(kind, Some(7), count, schema, &tx).map(|()| {
                drop(tx);
                std::iter::from_fn(|| rx.try_recv().ok()).collect::<Vec<Chunk>>()
            })
        };
        let chunks = made(Kind::Tweets, 300, Schema::tweets()).expect("made");
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [CHUNK_RECORDS, 300 - CHUNK_RECORDS]);
        let again = made(Kind::Tweets, 300, Schema::tweets()).expect("made");
        assert_eq!(chunks, again, "one seed, one sequence");
        for (key, data) in chunks.iter().flatten() {
            assert_eq!(key, &file_record(Schema::tweets(), data).expect("a tweet"));
        }
        assert!(made(Kind::Tweets, 0, Schema::tweets()).expect("none").is_empty());
        let orders = Schema::built_in("orders").expect("built in");
        let refused = made(Kind::Tweets, 10, orders).expect_err("tweets are no orders");
        assert!(refused.to_string().starts_with("synthetic tweets events do not fit"), "{refused}");
    }

    /// Lines come out whole and trimmed, in order, in chunks; blank lines are passed over, bad
    /// lines counted, a last line without a newline kept, and `--count` stops the reading.
    #[test]
    fn files_are_read_in_chunks_of_their_lines() {
        let tweets: Vec<Vec<u8>> = Synthetic::new(Some(5)).take(700).map(|t| t.to_bytes()).collect();
        let mut text = Vec::new();
        for (i, t) in tweets.iter().enumerate() {
            if i == 10 {
                text.extend_from_slice(b"not a tweet\n\n");
            }
            text.extend_from_slice(b"  ");
            text.extend_from_slice(t);
            if i + 1 < tweets.len() {
                text.extend_from_slice(b" \r\n");
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, &text).expect("write");
        for (limit, want) in [(None, 700), (Some(300), 300)] {
            let (tx, mut rx) = mpsc::channel(1000);
            let bad = AtomicU64::new(0);
            read_file(&path, limit, Schema::tweets(), &tx, &bad).expect("read");
            drop(tx);
            let mut got = Vec::new();
            while let Ok(chunk) = rx.try_recv() {
                assert!(!chunk.is_empty() && chunk.len() <= CHUNK_RECORDS);
                got.extend(chunk);
            }
            assert_eq!(got.len(), want);
            assert_eq!(bad.load(Ordering::Relaxed), 1);
            for (i, (_, data)) in got.iter().enumerate() {
                assert_eq!(data.as_ref(), tweets[i].as_slice(), "line {i}");
            }
        }
    }
}
