//! The v1.1 tweet: the record shape every tweet source maps to (what the 2017 producer sent), its
//! bytes on the stream, and the table item the built-in `tweets` schema makes of it, in tweet terms
//! (`item_from_payload`, `Invalid`). The decoding itself is `schema`'s: this module names its
//! result. Pure: no AWS types here.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::schema::{self, Field, Refusal, Schema, Val};
pub use crate::time::{TWITTER_TIME_FORMAT, iso_millis, iso_timestamp, twitter_time};

/// DynamoDB: a partition key value holds at most 2,048 bytes.
pub const MAX_PARTITION_KEY_BYTES: usize = schema::MAX_PARTITION_KEY_BYTES;
/// DynamoDB: a sort key value holds at most 1,024 bytes.
pub const MAX_SORT_KEY_BYTES: usize = schema::MAX_SORT_KEY_BYTES;
/// DynamoDB: an item holds at most 400 KB (names and values, UTF-8).
pub const MAX_ITEM_BYTES: usize = schema::MAX_ITEM_BYTES;

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

/// The item the built-in `tweets` schema makes of a record's payload (already base64-decoded), in
/// tweet terms. UTF-8, never ASCII: the 2017 handler mangled every emoji and CJK tweet here.
pub fn item_from_payload(payload: &[u8]) -> Result<Item, Invalid> {
    let schema = Schema::tweets();
    let item = schema.item(payload).map_err(Invalid::from)?;
    let text = |i: usize| match item.fixed(i) {
        Some(Val::S(s)) => s.to_string(),
        _ => String::new(),
    };
    Ok(Item { username: text(0), id: text(1), timestamp: text(2), message: text(3) })
}

/// For producers, from one read: the item the function will write (so a line it would refuse is
/// caught before it is sent) and the 2017 producer's partition key — `user.screen_name`, else
/// `user.id_str`, else `id_str` — when the tweet has one.
pub fn item_and_key(payload: &[u8]) -> Result<(Item, Option<String>), Invalid> {
    let item = item_from_payload(payload)?;
    let key = match Schema::tweets().kinesis_key(payload) {
        Ok(key) => Some(key),
        Err(Refusal::Missing { field: Field::KinesisKey, .. }) => None,
        Err(other) => return Err(Invalid::from(other)),
    };
    Ok((item, key))
}

impl From<Refusal> for Invalid {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotUtf8 { valid_up_to } => Invalid::NotUtf8 { valid_up_to },
            Refusal::NotJson { detail, .. } => Invalid::NotJson(detail),
            Refusal::Missing { field: Field::SortKey, .. } => Invalid::NoId,
            Refusal::Missing { field: Field::PartitionKey, .. } => Invalid::EmptyKey,
            Refusal::Missing { .. } => Invalid::BadTimestamp(String::new()),
            Refusal::KeyTooLong { attribute, bytes } => Invalid::KeyTooLong {
                attribute: if attribute == Arc::from(attr::ID) { attr::ID } else { attr::USERNAME },
                bytes,
            },
            Refusal::BadTime { value, .. } => Invalid::BadTimestamp(value),
            Refusal::ItemTooLarge { bytes } => Invalid::ItemTooLarge { bytes },
            Refusal::Unstorable { path, why } => Invalid::NotJson(format!("{path}: {why}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

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

    /// The built-in tweets schema gives every reason exactly as the tweet's own words name it.
    #[test]
    fn tweets_reasons_are_the_tweet_pipelines_own() {
        let tweets = Schema::tweets();
        let ok = r#""created_at":"Wed Oct 10 20:19:24 +0000 2018""#;
        for payload in [
            "\u{0}".to_string(),
            "not json".to_string(),
            format!(r#"{{{ok},"user":{{"name":"a"}}}}"#),
            format!(r#"{{{ok},"id_str":"1","user":{{"name":"","screen_name":""}}}}"#),
            format!(r#"{{{ok},"id_str":"1","user":{{"name":"{}"}}}}"#, "k".repeat(3000)),
            format!(r#"{{{ok},"id_str":"{}","user":{{"name":"a"}}}}"#, "1".repeat(1500)),
            r#"{"id_str":"1","user":{"name":"a"}}"#.to_string(),
            r#"{"id_str":"1","created_at":"yesterday","user":{"name":"a"}}"#.to_string(),
            format!(r#"{{{ok},"id_str":"1","user":{{"name":"a"}},"text":"{}"}}"#, "y".repeat(MAX_ITEM_BYTES)),
            format!(r#"{{{ok},"id_str":"1","id":"x","user":{{"name":"a"}}}}"#),
            format!(r#"{{{ok},"id_str":["1"],"user":{{"name":"a"}}}}"#),
            format!(r#"{{{ok},"id_str":"1","user":"u"}}"#),
        ] {
            let refusal = tweets.item(payload.as_bytes()).expect_err("refused");
            let invalid = Invalid::from(refusal.clone());
            assert_eq!(refusal.to_string(), invalid.to_string(), "{payload:.80}");
        }
    }
}
