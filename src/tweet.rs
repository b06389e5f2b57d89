//! The one record shape of the pipeline: a v1.1-compatible tweet (what the 2017 producer sent and
//! every source maps to), its bytes on the stream, and the table item the function writes.
//! Pure: no AWS types here; `process` turns an `Item` into DynamoDB attributes.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Twitter v1.1's `created_at` format: "Wed Oct 10 20:19:24 +0000 2018".
pub const TWITTER_TIME_FORMAT: &str = "%a %b %d %H:%M:%S %z %Y";

/// DynamoDB: a partition key value holds at most 2,048 bytes.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
/// DynamoDB: a sort key value holds at most 1,024 bytes.
pub const MAX_SORT_KEY_BYTES: usize = 1024;
/// DynamoDB: an item holds at most 400 KB (names and values, UTF-8).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// A tweet in the v1.1 shape, as producers write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tweet {
    /// Tweet id as a decimal string.
    pub id_str: String,
    /// Creation time in Twitter's format (`TWITTER_TIME_FORMAT`).
    pub created_at: String,
    /// Text; for long tweets the first 140 characters and an ellipsis (`truncated` is then true).
    pub text: String,
    /// True when `text` is cut and the full text is in `extended_tweet`.
    #[serde(default)]
    pub truncated: bool,
    /// Full text of a long tweet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_tweet: Option<ExtendedTweet>,
    /// The author.
    pub user: User,
    /// BCP 47 language tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Hashtags and other entities.
    #[serde(default)]
    pub entities: Entities,
}

/// `extended_tweet` of a long v1.1 tweet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtendedTweet {
    /// The untruncated text.
    pub full_text: String,
}

/// The author of a tweet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Display name (any script, emoji allowed).
    pub name: String,
    /// Handle without the @.
    pub screen_name: String,
    /// User id as a decimal string.
    pub id_str: String,
}

/// `entities` of a tweet; only hashtags are produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entities {
    /// Hashtags in the text.
    #[serde(default)]
    pub hashtags: Vec<Hashtag>,
}

/// One hashtag and where it sits in the text (code point offsets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hashtag {
    /// The tag without `#`.
    pub text: String,
    /// Start and end offsets in code points.
    pub indices: [usize; 2],
}

impl Tweet {
    /// The bytes put on the stream: compact JSON, UTF-8.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain structs of strings into a Vec cannot fail.
        serde_json::to_vec(self).expect("a Tweet always serializes")
    }

    /// The partition key producers use: the author's handle (as the 2017 producer did).
    pub fn partition_key(&self) -> &str {
        &self.user.screen_name
    }
}

/// The table item written for one tweet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Partition key: `user.name`, falling back to `screen_name`, then the user id.
    pub username: String,
    /// Sort key: the tweet id.
    pub id: String,
    /// `created_at` as ISO-8601 UTC with milliseconds.
    pub timestamp: String,
    /// The full text.
    pub message: String,
}

/// Attribute names of the table.
pub mod attr {
    /// Partition key.
    pub const USERNAME: &str = "Username";
    /// Sort key.
    pub const ID: &str = "Id";
    /// ISO-8601 time.
    pub const TIMESTAMP: &str = "Timestamp";
    /// Full text.
    pub const MESSAGE: &str = "Message";
}

impl Item {
    /// The item's size as DynamoDB counts it: attribute names plus UTF-8 values.
    pub fn size(&self) -> usize {
        attr::USERNAME.len()
            + self.username.len()
            + attr::ID.len()
            + self.id.len()
            + attr::TIMESTAMP.len()
            + self.timestamp.len()
            + attr::MESSAGE.len()
            + self.message.len()
    }
}

/// Why a record can never become an item. Retrying does not help: these are quarantined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// The payload is not UTF-8 (byte offset of the first bad byte).
    NotUtf8 { valid_up_to: usize },
    /// The payload is not JSON of a tweet.
    NotJson(String),
    /// Neither `id_str` nor `id`.
    NoId,
    /// `user.name`, `user.screen_name` and `user.id_str` are all empty or missing.
    EmptyKey,
    /// A key is over DynamoDB's limit.
    KeyTooLong { attribute: &'static str, bytes: usize },
    /// `created_at` is missing or not a time.
    BadTimestamp(String),
    /// The item is over 400 KB.
    ItemTooLarge { bytes: usize },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::NotUtf8 { valid_up_to } => {
                write!(f, "not UTF-8 (bad byte at offset {valid_up_to})")
            }
            Invalid::NotJson(e) => write!(f, "not a JSON tweet: {e}"),
            Invalid::NoId => f.write_str("no tweet id (id_str or id)"),
            Invalid::EmptyKey => f.write_str("empty key: user.name, user.screen_name and user.id_str all empty"),
            Invalid::KeyTooLong { attribute, bytes } => {
                write!(f, "{attribute} is {bytes} bytes, over DynamoDB's key limit")
            }
            Invalid::BadTimestamp(t) => {
                write!(f, "created_at {t:?} is not a Twitter or RFC 3339 time")
            }
            Invalid::ItemTooLarge { bytes } => {
                write!(f, "item is {bytes} bytes, over DynamoDB's 400 KB limit")
            }
        }
    }
}

/// What the handler reads of a record: a lenient, borrowing view of the tweet.
#[derive(Deserialize)]
struct TweetView<'a> {
    #[serde(default, borrow)]
    id_str: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default, borrow)]
    created_at: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    /// Tweets fetched with tweet_mode=extended carry `full_text` at the top.
    #[serde(default, borrow)]
    full_text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    extended_tweet: Option<ExtendedView<'a>>,
    #[serde(default, borrow)]
    user: Option<UserView<'a>>,
}

#[derive(Deserialize)]
struct ExtendedView<'a> {
    #[serde(default, borrow)]
    full_text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct UserView<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    screen_name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    id_str: Option<Cow<'a, str>>,
}

/// Turns a record's payload (already base64-decoded) into the item to write.
/// UTF-8, never ASCII: the 2017 handler mangled every emoji and CJK tweet here.
pub fn item_from_payload(payload: &[u8]) -> Result<Item, Invalid> {
    item_from_view(view_of(payload)?)
}

/// For producers, from one parse: the item the function will write (so a line it would refuse is
/// caught before it is sent) and the 2017 producer's partition key — `user.screen_name`, else
/// `user.id_str`, else `id_str` — when the tweet has one.
pub fn item_and_key(payload: &[u8]) -> Result<(Item, Option<String>), Invalid> {
    let view = view_of(payload)?;
    let key = view
        .user
        .as_ref()
        .and_then(|u| [&u.screen_name, &u.id_str].into_iter().flatten().find(|s| !s.is_empty()))
        .or(view.id_str.as_ref())
        .filter(|k| !k.is_empty())
        .map(|k| k.to_string());
    Ok((item_from_view(view)?, key))
}

fn view_of(payload: &[u8]) -> Result<TweetView<'_>, Invalid> {
    let text = std::str::from_utf8(payload).map_err(|e| Invalid::NotUtf8 { valid_up_to: e.valid_up_to() })?;
    serde_json::from_str(text).map_err(|e| Invalid::NotJson(e.to_string()))
}

fn item_from_view(view: TweetView<'_>) -> Result<Item, Invalid> {
    let id = match (&view.id_str, view.id) {
        (Some(s), _) if !s.is_empty() => s.to_string(),
        (_, Some(n)) => n.to_string(),
        _ => return Err(Invalid::NoId),
    };
    let username = view
        .user
        .as_ref()
        .and_then(|u| [&u.name, &u.screen_name, &u.id_str].into_iter().flatten().find(|s| !s.is_empty()))
        .map(|s| s.to_string())
        .ok_or(Invalid::EmptyKey)?;
    if username.len() > MAX_PARTITION_KEY_BYTES {
        return Err(Invalid::KeyTooLong { attribute: attr::USERNAME, bytes: username.len() });
    }
    if id.len() > MAX_SORT_KEY_BYTES {
        return Err(Invalid::KeyTooLong { attribute: attr::ID, bytes: id.len() });
    }
    let created = view.created_at.as_deref().unwrap_or("");
    let timestamp = iso_timestamp(created).ok_or_else(|| Invalid::BadTimestamp(created.chars().take(64).collect()))?;
    // The full text: extended_tweet.full_text for long streamed tweets (`text` is cut at 140),
    // then full_text (tweet_mode=extended), then text.
    let message = view
        .extended_tweet
        .and_then(|e| e.full_text)
        .or(view.full_text)
        .or(view.text)
        .map(Cow::into_owned)
        .unwrap_or_default();
    let item = Item { username, id, timestamp, message };
    let bytes = item.size();
    if bytes > MAX_ITEM_BYTES {
        return Err(Invalid::ItemTooLarge { bytes });
    }
    Ok(item)
}

/// Seconds since the epoch (Kinesis arrival times) as ISO-8601 UTC with milliseconds.
pub fn iso_millis(epoch_secs: f64) -> String {
    chrono::DateTime::from_timestamp_millis((epoch_secs * 1000.0).round() as i64)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// `created_at` (Twitter's format, or RFC 3339) as ISO-8601 UTC with milliseconds:
/// "Wed Oct 10 20:19:24 +0000 2018" → "2018-10-10T20:19:24.000Z".
pub fn iso_timestamp(created_at: &str) -> Option<String> {
    twitter_time_to_iso(created_at).or_else(|| chrono_iso(created_at))
}

/// `iso_timestamp` by chrono's parser and formatter alone: every form the fast path leaves.
fn chrono_iso(created_at: &str) -> Option<String> {
    let t = DateTime::parse_from_str(created_at, TWITTER_TIME_FORMAT)
        .or_else(|_| DateTime::parse_from_rfc3339(created_at))
        .ok()?;
    Some(t.with_timezone(&Utc).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// The common case of `iso_timestamp` without chrono's format interpreter (a third of a record's
/// cost in the handler): exactly "Www Mmm DD HH:MM:SS ±hhmm YYYY" with a weekday that matches the
/// date, as chrono checks. Anything else is left to chrono (`None`).
fn twitter_time_to_iso(s: &str) -> Option<String> {
    use chrono::{Datelike, Duration, NaiveDate, Timelike};
    const MONTHS: [&[u8; 3]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    const DAYS: [&[u8; 3]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    let b = s.as_bytes();
    if b.len() != 30 || [3, 7, 10, 19, 25].iter().any(|&i| b[i] != b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<u32> {
        b[from..from + len].iter().try_fold(0u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    let month = MONTHS.iter().position(|m| m[..] == b[4..7])? as u32 + 1;
    let date = NaiveDate::from_ymd_opt(num(26, 4)? as i32, month, num(8, 2)?)?;
    if DAYS[date.weekday().num_days_from_monday() as usize][..] != b[0..3] {
        return None;
    }
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let sign = match b[20] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (oh, om) = (num(21, 2)?, num(23, 2)?);
    if om > 59 || oh > 23 {
        return None;
    }
    let local = date.and_hms_opt(hour, minute, second)?;
    let utc = local - Duration::minutes(sign * i64::from(oh * 60 + om));
    let (d, t) = (utc.date(), utc.time());
    if !(1000..=9999).contains(&d.year()) {
        return None;
    }
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
        d.year(),
        d.month(),
        d.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// A time in Twitter's `created_at` format.
pub fn twitter_time(t: DateTime<Utc>) -> String {
    t.format("%a %b %d %H:%M:%S +0000 %Y").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The fast path answers exactly as chrono does, for valid times and for near misses
        /// (day 0 or 32, hour 24, second 60, a wrong weekday, odd offsets, years off four digits).
        #[test]
        fn the_fast_timestamp_path_agrees_with_chrono(
            weekday in 0usize..7, month in 0usize..12, day in 0u32..33, hour in 0u32..26, minute in 0u32..61,
            second in 0u32..62, sign in proptest::sample::select(vec!['+', '-', ' ']), oh in 0u32..26,
            om in 0u32..61, year in proptest::sample::select(vec![999, 1000, 1970, 2018, 2024, 2100, 9999, 10000]),
        ) {
            const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
            const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
            let s = format!(
                "{} {} {day:02} {hour:02}:{minute:02}:{second:02} {sign}{oh:02}{om:02} {year:04}",
                DAYS[weekday], MONTHS[month]
            );
            proptest::prop_assert_eq!(iso_timestamp(&s), chrono_iso(&s), "{}", s);
        }
    }

    #[test]
    fn the_fast_timestamp_path_takes_real_tweets_and_leaves_the_rest_to_chrono() {
        let t = "Wed Oct 10 20:19:24 +0000 2018";
        assert_eq!(twitter_time_to_iso(t).as_deref(), Some("2018-10-10T20:19:24.000Z"));
        assert_eq!(twitter_time_to_iso("Thu Oct 11 01:19:24 +0500 2018").as_deref(), Some("2018-10-10T20:19:24.000Z"));
        assert_eq!(twitter_time_to_iso("Wed Oct 10 20:19:24 -0130 2018").as_deref(), Some("2018-10-10T21:49:24.000Z"));
        for other in ["Thu Oct 10 20:19:24 +0000 2018", "2018-10-10T20:19:24Z", "Wed Oct 10 20:19:24 +0000 2018 "] {
            assert_eq!(twitter_time_to_iso(other), None, "{other}");
        }
        assert_eq!(iso_timestamp("2018-10-10T22:19:24.5+02:00").as_deref(), Some("2018-10-10T20:19:24.500Z"));
    }

    fn tweet_json(name: &str, text: &str) -> String {
        serde_json::json!({
            "id_str": "1050118621198921728",
            "created_at": "Wed Oct 10 20:19:24 +0000 2018",
            "text": text,
            "user": {"name": name, "screen_name": "sn", "id_str": "42"},
            "lang": "en",
            "entities": {"hashtags": []}
        })
        .to_string()
    }

    #[test]
    fn emoji_and_cjk_survive_decoding() {
        let json = tweet_json("山田太郎 🐱", "こんにちは世界 🌏 Grüße — مرحبا");
        let item = item_from_payload(json.as_bytes()).expect("valid tweet");
        assert_eq!(item.username, "山田太郎 🐱");
        assert_eq!(item.message, "こんにちは世界 🌏 Grüße — مرحبا");
        assert_eq!(item.id, "1050118621198921728");
    }

    #[test]
    fn timestamp_becomes_iso_utc_with_millis() {
        let item = item_from_payload(tweet_json("a", "b").as_bytes()).expect("valid");
        assert_eq!(item.timestamp, "2018-10-10T20:19:24.000Z");
        assert_eq!(iso_timestamp("Wed Oct 10 22:19:24 +0200 2018").as_deref(), Some("2018-10-10T20:19:24.000Z"));
        assert_eq!(iso_timestamp("2024-02-29T12:00:00.123Z").as_deref(), Some("2024-02-29T12:00:00.123Z"));
        assert_eq!(iso_timestamp("yesterday"), None);
    }

    #[test]
    fn extended_text_wins_over_truncated_text() {
        let mut v: serde_json::Value = serde_json::from_str(&tweet_json("a", "short…")).expect("json");
        v["truncated"] = true.into();
        v["extended_tweet"] = serde_json::json!({"full_text": "the whole long text"});
        let item = item_from_payload(v.to_string().as_bytes()).expect("valid");
        assert_eq!(item.message, "the whole long text");
    }

    #[test]
    fn key_falls_back_from_name_to_screen_name_to_user_id() {
        let mut v: serde_json::Value = serde_json::from_str(&tweet_json("", "t")).expect("json");
        assert_eq!(item_from_payload(v.to_string().as_bytes()).expect("valid").username, "sn");
        v["user"]["screen_name"] = "".into();
        assert_eq!(item_from_payload(v.to_string().as_bytes()).expect("valid").username, "42");
        v["user"]["id_str"] = "".into();
        assert_eq!(item_from_payload(v.to_string().as_bytes()), Err(Invalid::EmptyKey));
    }

    #[test]
    fn invalid_payloads_are_named() {
        assert!(matches!(item_from_payload(b"\xff\xfe"), Err(Invalid::NotUtf8 { valid_up_to: 0 })));
        assert!(matches!(item_from_payload(b"not json"), Err(Invalid::NotJson(_))));
        assert_eq!(item_from_payload(br#"{"user":{"name":"a"},"created_at":"x"}"#), Err(Invalid::NoId));
        let long = "x".repeat(MAX_PARTITION_KEY_BYTES + 1);
        assert!(matches!(
            item_from_payload(tweet_json(&long, "t").as_bytes()),
            Err(Invalid::KeyTooLong { attribute: "Username", .. })
        ));
        let huge = "y".repeat(MAX_ITEM_BYTES);
        assert!(matches!(item_from_payload(tweet_json("a", &huge).as_bytes()), Err(Invalid::ItemTooLarge { .. })));
    }

    #[test]
    fn numeric_id_is_accepted_when_id_str_is_missing() {
        let json = r#"{"id":7,"created_at":"Wed Oct 10 20:19:24 +0000 2018","text":"t","user":{"name":"n"}}"#;
        assert_eq!(item_from_payload(json.as_bytes()).expect("valid").id, "7");
    }

    #[test]
    fn tweet_round_trips_through_its_bytes() {
        let t = Tweet {
            id_str: "1".into(),
            created_at: twitter_time(DateTime::from_timestamp(1_539_202_764, 0).expect("valid time")),
            text: "hi 👋".into(),
            truncated: false,
            extended_tweet: None,
            user: User { name: "N".into(), screen_name: "n".into(), id_str: "2".into() },
            lang: Some("en".into()),
            entities: Entities::default(),
        };
        assert_eq!(t.created_at, "Wed Oct 10 20:19:24 +0000 2018");
        let back: Tweet = serde_json::from_slice(&t.to_bytes()).expect("json");
        assert_eq!(back, t);
        assert_eq!(item_from_payload(&t.to_bytes()).expect("valid").timestamp, "2018-10-10T20:19:24.000Z");
    }
}
