//! Where records come from, all into one channel of chunks: `spawn` starts the source the flags
//! name. The synthetic and file sources run on a thread of their own (making, reading and checking
//! records is CPU work that need not wait on the runtime) and send chunks of records; the live
//! sources (`live`) are tasks that send each post as it comes. `Synthetic` makes realistic v1.1
//! tweets (any script, emoji, long tweets with `extended_tweet`, hashtags with code point indices;
//! deterministic for a given seed); `file_record` checks one JSON line of a tweet archive.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use super::live::Chunk;

use super::live;
use super::{ProduceArgs, SourceKind};
use crate::error::Error;
use crate::tweet::{Entities, ExtendedTweet, Hashtag, Tweet, User, twitter_time};

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

/// Starts the source `args` names, sending on `tx`. Synthetic makes `--count` tweets (100 by
/// default); a file ends at its end; the live sources run until the receiver is gone. Input lines
/// that are not tweets (file source) are reported, skipped and counted in `bad_lines`.
pub fn spawn(args: &ProduceArgs, tx: mpsc::Sender<Chunk>, bad_lines: Arc<AtomicU64>) -> Source {
    let ended = Arc::new(Mutex::new(None));
    let task = match args.source {
        SourceKind::Synthetic => {
            let (seed, count) = (args.seed, args.count.unwrap_or(100));
            on_thread(&ended, tx, move |tx| {
                synthetic(seed, count, tx);
                Ok(())
            });
            None
        }
        SourceKind::File => {
            let (path, limit) = (args.file.clone().unwrap_or_default(), args.count);
            on_thread(&ended, tx, move |tx| read_file(&path, limit, tx, &bad_lines));
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

/// Makes `count` synthetic tweets, a chunk at a time.
fn synthetic(seed: Option<u64>, count: u64, tx: &mpsc::Sender<Chunk>) {
    let mut tweets = Synthetic::new(seed);
    let mut left = count;
    while left > 0 {
        let n = left.min(CHUNK_RECORDS as u64);
        let chunk: Chunk = (0..n)
            .map(|_| {
                let t = tweets.next_tweet();
                (t.partition_key().to_string(), Bytes::from(t.to_bytes()))
            })
            .collect();
        if tx.blocking_send(chunk).is_err() {
            return;
        }
        left -= n;
    }
}

/// Sends the tweet lines of `path` (`-`: stdin), at most `limit`, in chunks; a chunk also goes out
/// before every read, so no record waits behind a read that may block (a pipe). Lines that are not
/// tweets are reported with their line number and skipped.
fn read_file(
    path: &std::path::Path,
    limit: Option<u64>,
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
    let mut lines = Lines { path, tx, number: 0, left, bad_lines, chunk: Vec::new(), gone: false };
    let mut buf = BytesMut::new();
    loop {
        // Every complete line read so far, as slices of one shared block.
        if let Some(last) = buf.iter().rposition(|&b| b == b'\n') {
            let block = buf.split_to(last + 1).freeze();
            let mut start = 0;
            for end in memchr_all(&block) {
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

/// Offsets of every newline in `block`.
fn memchr_all(block: &[u8]) -> impl Iterator<Item = usize> + '_ {
    block.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i)
}

/// The lines of a file on their way to the channel.
struct Lines<'a> {
    path: &'a std::path::Path,
    tx: &'a mpsc::Sender<Chunk>,
    number: u64,
    left: u64,
    bad_lines: &'a AtomicU64,
    chunk: Chunk,
    /// The receiver is gone: nothing more is read.
    gone: bool,
}

impl Lines<'_> {
    /// Checks one line (without its newline): a tweet joins the chunk, which goes out once full;
    /// anything else is reported.
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
        match file_record(&line) {
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

/// v1.1 streams cut `text` at 140 characters and carry the rest in `extended_tweet`.
const SHORT_TEXT_CHARS: usize = 140;
/// Tweets hold at most 280 characters.
const MAX_TEXT_CHARS: usize = 280;
/// Twitter's snowflake epoch (2010-11-04T01:42:54.657Z) in milliseconds.
const SNOWFLAKE_EPOCH_MS: i64 = 1_288_834_974_657;

const FIRST_NAMES: &[&str] = &[
    "Ana",
    "José",
    "Zoë",
    "Łukasz",
    "Ингрид",
    "Дмитрий",
    "Αλέξης",
    "محمد",
    "فاطمة",
    "יעל",
    "अनन्या",
    "राहुल",
    "太郎",
    "さくら",
    "小明",
    "美玲",
    "민준",
    "서연",
    "Nguyễn",
    "Søren",
    "Chloé",
    "Ayşe",
    "Kwame",
    "Ngozi",
    "Björk",
    "Siobhán",
    "Mateus",
    "Olu",
    "Priya",
    "Tomás",
];
const LAST_NAMES: &[&str] = &[
    "García",
    "Müller",
    "Kowalski",
    "Иванова",
    "Παπαδόπουλος",
    "الحسن",
    "כהן",
    "शर्मा",
    "山田",
    "佐藤",
    "王",
    "김",
    "Trần",
    "Jørgensen",
    "Dubois",
    "Yılmaz",
    "Mensah",
    "Okafor",
    "Guðmundsdóttir",
    "O'Brien",
    "Silva",
    "Smith",
    "🦀",
    "✨",
    "",
];
const WORDS: &[&str] = &[
    "stream",
    "data",
    "real-time",
    "latency",
    "shard",
    "the",
    "a",
    "is",
    "fast",
    "today",
    "coffee",
    "weekend",
    "launch",
    "deploy",
    "rust",
    "lambda",
    "серверный",
    "поток",
    "данные",
    "ストリーム",
    "処理",
    "リアルタイム",
    "数据",
    "实时",
    "处理",
    "데이터",
    "스트림",
    "datos",
    "flujo",
    "Straße",
    "über",
    "naïve",
    "café",
    "déjà vu",
    "حقيقي",
    "الوقت",
    "בזמן",
    "אמת",
    "समय",
    "वास्तविक",
    "ζωντανά",
    "δεδομένα",
    "hôm nay",
    "güzel",
    "🚀",
    "🔥",
    "😂",
    "❤️",
    "👍🏽",
    "🎉",
    "🌏",
    "🤖",
    "👨‍👩‍👧",
    "🇯🇵",
    "🦀",
    "☕",
    "✅",
    "📈",
];
const HASHTAGS: &[&str] =
    &["AWS", "serverless", "Kinesis", "DynamoDB", "rustlang", "データ", "실시간", "données", "éxito", "流处理"];
const LANGS: &[&str] = &["en", "es", "de", "fr", "ja", "zh", "ko", "ru", "ar", "he", "hi", "el", "vi", "tr", "und"];

/// An endless, seeded supply of synthetic tweets.
pub struct Synthetic {
    rng: SmallRng,
    users: Vec<User>,
    clock: DateTime<Utc>,
    sequence: u64,
}

impl Synthetic {
    /// Tweets from `seed`; with a seed the clock starts at a fixed instant, so the output is the
    /// same on every run. Without one, the clock starts now and the seed is random.
    pub fn new(seed: Option<u64>) -> Self {
        let (seed, clock) = match seed {
            Some(s) => (s, Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().unwrap_or_else(Utc::now)),
            None => (rand::rng().random(), Utc::now()),
        };
        let mut rng = SmallRng::seed_from_u64(seed);
        let users = (0..500).map(|i| make_user(&mut rng, i)).collect();
        Synthetic { rng, users, clock, sequence: 0 }
    }

    /// The next tweet.
    pub fn next_tweet(&mut self) -> Tweet {
        self.clock += Duration::milliseconds(self.rng.random_range(1..40));
        self.sequence += 1;
        let user = self.users[self.rng.random_range(0..self.users.len())].clone();
        // Snowflake: milliseconds since Twitter's epoch, then a 22-bit sequence: unique per tweet.
        let id = ((self.clock.timestamp_millis() - SNOWFLAKE_EPOCH_MS) as u64) << 22 | (self.sequence & 0x3F_FFFF);

        let long = self.rng.random_bool(0.15);
        let target = if long {
            self.rng.random_range(SHORT_TEXT_CHARS + 1..=MAX_TEXT_CHARS - 30)
        } else {
            self.rng.random_range(10..=120)
        };
        let mut full = String::new();
        let mut chars = 0;
        while chars < target {
            let w = WORDS[self.rng.random_range(0..WORDS.len())];
            if !full.is_empty() {
                full.push(' ');
                chars += 1;
            }
            full.push_str(w);
            chars += w.chars().count();
        }
        let mut hashtags = Vec::new();
        for _ in 0..self.rng.random_range(0..=2) {
            let tag = HASHTAGS[self.rng.random_range(0..HASHTAGS.len())];
            full.push_str(" #");
            let start = full.chars().count() - 1;
            full.push_str(tag);
            hashtags.push(Hashtag { text: tag.to_string(), indices: [start, start + 1 + tag.chars().count()] });
        }
        let full: String = full.chars().take(MAX_TEXT_CHARS).collect();
        hashtags.retain(|h| h.indices[1] <= MAX_TEXT_CHARS);

        let (text, truncated, extended_tweet) = if full.chars().count() > SHORT_TEXT_CHARS {
            let mut short: String = full.chars().take(SHORT_TEXT_CHARS - 1).collect();
            short.push('…');
            (short, true, Some(ExtendedTweet { full_text: full }))
        } else {
            (full, false, None)
        };
        Tweet {
            id_str: id.to_string(),
            created_at: twitter_time(self.clock),
            text,
            truncated,
            extended_tweet,
            user,
            lang: Some(LANGS[self.rng.random_range(0..LANGS.len())].to_string()),
            entities: Entities { hashtags },
        }
    }
}

impl Iterator for Synthetic {
    type Item = Tweet;
    fn next(&mut self) -> Option<Tweet> {
        Some(self.next_tweet())
    }
}

fn make_user(rng: &mut SmallRng, i: usize) -> User {
    let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
    let last = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
    let name = if last.is_empty() { first.to_string() } else { format!("{first} {last}") };
    // Handles are ASCII letters, digits and underscores, at most 15 characters.
    let letters: String = (0..rng.random_range(3..9)).map(|_| (b'a' + rng.random_range(0..26)) as char).collect();
    let screen_name = format!("{letters}_{i}");
    User { name, screen_name, id_str: rng.random_range(10_000_000u64..2_000_000_000_000_000_000).to_string() }
}

/// The partition key of one JSON line (already trimmed), or why it is not a tweet the function
/// could write. The line itself is sent as it is, so records from any v1.1 producer stay whole.
pub fn file_record(line: &[u8]) -> Result<String, String> {
    // The 2017 producer keyed by screen_name; fall back to the user id, then the tweet id.
    let (_, key) = crate::tweet::item_and_key(line).map_err(|e| e.to_string())?;
    let key = key.ok_or("no user.screen_name, user.id_str or id_str for a partition key")?;
    // Kinesis partition keys hold at most 256 Unicode characters.
    Ok(match key.char_indices().nth(256) {
        Some((cut, _)) => key[..cut].to_string(),
        None => key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tweet::item_from_payload;
    use std::collections::HashSet;

    #[test]
    fn file_lines_are_keyed_by_screen_name() {
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
            read_file(&path, limit, &tx, &bad).expect("read");
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

    #[test]
    fn same_seed_same_tweets() {
        let a: Vec<Tweet> = Synthetic::new(Some(7)).take(50).collect();
        let b: Vec<Tweet> = Synthetic::new(Some(7)).take(50).collect();
        let c: Vec<Tweet> = Synthetic::new(Some(8)).take(50).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn tweets_are_valid_unique_and_varied() {
        let tweets: Vec<Tweet> = Synthetic::new(Some(1)).take(2000).collect();
        let ids: HashSet<&str> = tweets.iter().map(|t| t.id_str.as_str()).collect();
        assert_eq!(ids.len(), tweets.len(), "ids are unique");
        assert!(tweets.iter().any(|t| t.truncated && t.extended_tweet.is_some()));
        assert!(tweets.iter().any(|t| t.text.chars().any(|c| c as u32 >= 0x1F300)), "emoji");
        assert!(tweets.iter().any(|t| t.text.chars().any(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c))), "CJK");
        for t in &tweets {
            let full = t.extended_tweet.as_ref().map_or(&t.text, |e| &e.full_text);
            assert!(full.chars().count() <= MAX_TEXT_CHARS);
            assert!(t.text.chars().count() <= SHORT_TEXT_CHARS);
            assert!(t.user.screen_name.len() <= 15 && t.user.screen_name.is_ascii());
            for h in &t.entities.hashtags {
                let tagged: String = full.chars().skip(h.indices[0]).take(h.indices[1] - h.indices[0]).collect();
                assert_eq!(tagged, format!("#{}", h.text));
            }
            let item = item_from_payload(&t.to_bytes()).expect("handler accepts every synthetic tweet");
            assert_eq!(&item.message, full);
        }
    }
}
