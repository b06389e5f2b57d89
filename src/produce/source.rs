//! Where records come from, all into one channel: `spawn` starts the source the flags name, as a
//! task that sends (partition key, bytes) until it ends or the channel closes. `Synthetic` makes
//! realistic v1.1 tweets (any script, emoji, long tweets with `extended_tweet`, hashtags with code
//! point indices; deterministic for a given seed); `file_record` reads one JSON line of a tweet
//! archive; the live sources are `live`. Every source yields the same v1.1 record.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::live::{self, Record};
use super::{ProduceArgs, SourceKind};
use crate::error::Error;
use crate::tweet::{Entities, ExtendedTweet, Hashtag, Tweet, User, twitter_time};

/// Records a source may send ahead of delivery.
pub const CHANNEL_DEPTH: usize = 1024;

/// Starts the source `args` names, sending on `tx`. Synthetic makes `--count` tweets (100 by
/// default); a file ends at its end; the live sources run until the receiver is gone. Input lines
/// that are not tweets (file source) are reported, skipped and counted in `bad_lines`.
pub fn spawn(args: &ProduceArgs, tx: mpsc::Sender<Record>, bad_lines: Arc<AtomicU64>) -> JoinHandle<Result<(), Error>> {
    match args.source {
        SourceKind::Synthetic => {
            let (seed, count) = (args.seed, args.count.unwrap_or(100));
            tokio::spawn(async move {
                let mut tweets = Synthetic::new(seed);
                for _ in 0..count {
                    let t = tweets.next_tweet();
                    if tx.send((t.partition_key().to_string(), t.to_bytes())).await.is_err() {
                        break;
                    }
                }
                Ok(())
            })
        }
        SourceKind::File => tokio::spawn(read_file(args.file.clone().unwrap_or_default(), args.count, tx, bad_lines)),
        SourceKind::Bluesky => {
            let backoff = live::Backoff { scale: args.reconnect_scale };
            let url = args.bluesky_url.clone();
            tokio::spawn(async move {
                live::bluesky(url, tx, backoff).await;
                Ok(())
            })
        }
        SourceKind::X => {
            let backoff = live::Backoff { scale: args.reconnect_scale };
            // Checked by `precheck`; never printed.
            let token = std::env::var("X_BEARER_TOKEN").unwrap_or_default().trim().to_string();
            let (url, track) = (args.x_url.clone(), args.track.clone());
            tokio::spawn(async move {
                live::x(url, token, track, tx, backoff).await;
                Ok(())
            })
        }
    }
}

/// Sends the tweet lines of `path` (`-`: stdin), at most `limit`; lines that are not tweets are
/// reported with their line number and skipped.
async fn read_file(
    path: std::path::PathBuf,
    limit: Option<u64>,
    tx: mpsc::Sender<Record>,
    bad_lines: Arc<AtomicU64>,
) -> Result<(), Error> {
    let io = |e| Error::io(path.display().to_string(), e);
    let reader: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if path.as_os_str() == "-" {
        Box::new(tokio::io::stdin())
    } else {
        Box::new(tokio::fs::File::open(&path).await.map_err(io)?)
    };
    let mut lines = tokio::io::BufReader::new(reader).lines();
    let (mut number, mut sent) = (0u64, 0u64);
    while sent < limit.unwrap_or(u64::MAX) {
        let Some(line) = lines.next_line().await.map_err(io)? else { break };
        number += 1;
        if line.trim().is_empty() {
            continue;
        }
        match file_record(&line) {
            Ok(record) => {
                if tx.send(record).await.is_err() {
                    break;
                }
                sent += 1;
            }
            Err(reason) => {
                bad_lines.fetch_add(1, Ordering::Relaxed);
                crate::progress::status(format!("{}:{number}: skipped: {reason}", path.display()));
            }
        }
    }
    Ok(())
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

/// What the producer needs of a tweet's JSON: the partition key.
#[derive(serde::Deserialize)]
struct KeyView<'a> {
    #[serde(default, borrow)]
    id_str: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    user: Option<KeyUser<'a>>,
}

#[derive(serde::Deserialize)]
struct KeyUser<'a> {
    #[serde(default, borrow)]
    screen_name: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    id_str: Option<std::borrow::Cow<'a, str>>,
}

/// One line of a JSON-lines file as (partition key, record bytes), or why it is not a tweet the
/// function could write. The line is sent as it is, so records from any v1.1 producer stay whole.
pub fn file_record(line: &str) -> Result<(String, Vec<u8>), String> {
    let line = line.trim();
    crate::tweet::item_from_payload(line.as_bytes()).map_err(|e| e.to_string())?;
    let view: KeyView<'_> = serde_json::from_str(line).map_err(|e| e.to_string())?;
    // The 2017 producer keyed by screen_name; fall back to the user id, then the tweet id.
    let key = view
        .user
        .as_ref()
        .and_then(|u| [&u.screen_name, &u.id_str].into_iter().flatten().find(|s| !s.is_empty()).map(|s| s.to_string()))
        .or_else(|| view.id_str.map(|s| s.to_string()))
        .filter(|k| !k.is_empty())
        .ok_or("no user.screen_name, user.id_str or id_str for a partition key")?;
    // Kinesis partition keys hold at most 256 Unicode characters.
    let key: String = key.chars().take(256).collect();
    Ok((key, line.as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tweet::item_from_payload;
    use std::collections::HashSet;

    #[test]
    fn file_lines_keep_their_bytes_and_are_keyed_by_screen_name() {
        let t = Synthetic::new(Some(3)).next_tweet();
        let line = String::from_utf8(t.to_bytes()).expect("utf8");
        let (key, data) = file_record(&format!("  {line}  ")).expect("valid line");
        assert_eq!(key, t.user.screen_name);
        assert_eq!(data, line.as_bytes());
        assert!(file_record("{not json").expect_err("bad").starts_with("not a JSON tweet"));
        assert!(file_record(r#"{"text":"no id"}"#).expect_err("bad").starts_with("no tweet id"));
        let no_handle = r#"{"id_str":"9","created_at":"Wed Oct 10 20:19:24 +0000 2018","text":"t","user":{"name":"N","id_str":"77"}}"#;
        assert_eq!(file_record(no_handle).expect("valid").0, "77");
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
