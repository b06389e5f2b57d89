//! Property tests (proptest) over everything that reads untrusted bytes: record decoding, KPL
//! deaggregation and the whole handler. Nothing panics, and the table ends up holding exactly the
//! valid tweets the generator made (their distinct keys, last version wins), the quarantine
//! exactly the poison.

use proptest::prelude::*;
use stream::kpl;
use stream::process::{Batch, BatchOutcome, Event, MemoryStore, Options, Record, Target, handle_batch};
use stream::tweet::item_from_payload;

/// Bytes with the KPL magic in front and a valid digest at the end: reaches the protobuf reader.
fn framed(body: &[u8]) -> Vec<u8> {
    use md5::{Digest, Md5};
    let mut out = kpl::MAGIC.to_vec();
    out.extend_from_slice(body);
    out.extend_from_slice(&Md5::digest(body));
    out
}

/// JSON-ish bytes: tweets with fields dropped, mistyped or oversized.
fn tweetish() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<u64>()),
        // Valid times (so that decoding gets past them) and near-misses.
        proptest::option::of(prop_oneof![
            created_at().prop_map(|(text, _)| text),
            "[A-Za-z]{3} [A-Za-z]{3} [0-9]{2} [0-9:]{8} \\+0000 [0-9]{4}",
        ]),
        any::<String>(),
        proptest::option::of((any::<String>(), any::<String>(), any::<String>())),
    )
        .prop_map(|(id_str, id, created, text, user)| {
            let mut v = serde_json::json!({"text": text});
            if let Some(s) = id_str {
                v["id_str"] = s.into();
            }
            if let Some(n) = id {
                v["id"] = n.into();
            }
            if let Some(c) = created {
                v["created_at"] = c.into();
            }
            if let Some((name, screen, uid)) = user {
                v["user"] = serde_json::json!({"name": name, "screen_name": screen, "id_str": uid});
            }
            v.to_string().into_bytes()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = item_from_payload(&bytes);
        let _ = kpl::deaggregate(&bytes);
        let _ = kpl::deaggregate(&framed(&bytes));
    }

    #[test]
    fn decoding_tweetish_json_never_panics(bytes in tweetish()) {
        if let Ok(item) = item_from_payload(&bytes) {
            prop_assert!(!item.username.is_empty() && !item.id.is_empty());
            prop_assert!(item.timestamp.ends_with('Z'));
        }
    }

    #[test]
    fn aggregates_of_any_records_round_trip(records in proptest::collection::vec(("[a-z]{1,8}", proptest::collection::vec(any::<u8>(), 0..64)), 1..20)) {
        let agg = kpl::aggregate(records.iter().map(|(k, d)| (k.as_str(), d.as_slice())));
        let back = kpl::deaggregate(&agg).expect("own aggregate reads");
        prop_assert_eq!(back.len(), records.len());
        for (sub, (k, d)) in back.iter().zip(&records) {
            prop_assert_eq!(sub.partition_key, k.as_str());
            prop_assert_eq!(sub.data, d.as_slice());
        }
    }
}

/// One user record as generated, and what the handler must make of it — decided here, by the
/// generator, not by asking the handler's own decoder.
#[derive(Debug, Clone)]
enum UserRecord {
    /// A tweet the table must hold: its key and the message and timestamp it must carry.
    Valid { username: String, id: String, message: String, timestamp: String, bytes: Vec<u8> },
    /// Bytes that can never become an item (wrong types, bad time, key over the limit, not JSON).
    Poison(Vec<u8>),
}

impl UserRecord {
    fn bytes(&self) -> &[u8] {
        match self {
            UserRecord::Valid { bytes, .. } | UserRecord::Poison(bytes) => bytes,
        }
    }
}

/// Names in every script, with an emoji, and one just under DynamoDB's 2,048-byte key limit.
fn username() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_]{1,15}",
        Just("Zoë 🦀".to_string()),
        Just("山田 太郎".to_string()),
        Just("محمد الحسن".to_string()),
        // 682 three-byte characters: 2,046 bytes.
        Just("語".repeat(682)),
    ]
}

/// A created_at that parses: Twitter's format or RFC 3339, and the ISO time the item must carry.
fn created_at() -> impl Strategy<Value = (String, String)> {
    (0i64..4_000_000_000, any::<bool>()).prop_map(|(secs, twitter)| {
        let t = chrono::DateTime::from_timestamp(secs, 0).expect("in range");
        let text = if twitter { stream::tweet::twitter_time(t) } else { t.to_rfc3339() };
        (text, t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
    })
}

/// A valid tweet; `id` from a small pool so that keys repeat (the later record must win).
fn valid_tweet() -> impl Strategy<Value = UserRecord> {
    let text = prop_oneof![4 => any::<String>(), 1 => "\\PC{1000,5000}"];
    (0u32..6, username(), created_at(), text, any::<bool>(), "[a-z ]{0,20}").prop_map(
        |(id, username, (created, timestamp), text, extended, short)| {
            let id = id.to_string();
            let mut v = serde_json::json!({"id_str": id, "created_at": created, "user": {"name": username, "screen_name": "h", "id_str": "5"}});
            // A long streamed tweet carries its full text in extended_tweet; `text` is cut.
            if extended {
                v["text"] = short.clone().into();
                v["extended_tweet"] = serde_json::json!({"full_text": text});
            } else {
                v["text"] = text.clone().into();
            }
            let bytes = v.to_string().into_bytes();
            UserRecord::Valid { username, id, message: text, timestamp, bytes }
        },
    )
}

/// A record that can never be written, each kind of it.
fn poison() -> impl Strategy<Value = UserRecord> {
    let ok_time = "Wed Oct 10 20:19:24 +0000 2018";
    prop_oneof![
        // Wrong JSON types.
        Just(serde_json::json!({"id_str": "1", "id": "x", "created_at": ok_time, "user": {"name": "u"}})),
        Just(serde_json::json!({"id_str": ["1"], "created_at": ok_time, "user": {"name": "u"}})),
        Just(serde_json::json!({"id_str": "1", "created_at": ok_time, "user": "u"})),
        Just(serde_json::json!({"id_str": "1", "created_at": 1539202764, "user": {"name": "u"}})),
        // No id, no key, a time that is not one.
        Just(serde_json::json!({"created_at": ok_time, "user": {"name": "u"}})),
        Just(serde_json::json!({"id_str": "1", "created_at": ok_time, "user": {"name": "", "screen_name": ""}})),
        "[a-zA-Z0-9 :+]{0,40}".prop_map(|t| serde_json::json!({"id_str": "1", "created_at": format!("x{t}"), "user": {"name": "u"}})),
        // A username one byte over DynamoDB's 2,048-byte key limit.
        Just(serde_json::json!({"id_str": "1", "created_at": ok_time, "user": {"name": format!("a{}", "語".repeat(683))}})),
    ]
    .prop_map(|v| UserRecord::Poison(v.to_string().into_bytes()))
    .boxed()
    .prop_union(proptest::collection::vec(any::<u8>(), 0..64).prop_map(|mut b| {
        // Not UTF-8, whatever else it is.
        b.push(0xFF);
        UserRecord::Poison(b)
    }).boxed())
}

fn user_record() -> impl Strategy<Value = UserRecord> {
    prop_oneof![3 => valid_tweet(), 1 => poison()]
}

/// One Kinesis record: a plain user record, a KPL aggregate of several, or data that is not base64.
#[derive(Debug, Clone)]
enum KinesisRecord {
    Plain(UserRecord),
    Aggregate(Vec<UserRecord>),
    NotBase64(String),
}

fn kinesis_record() -> impl Strategy<Value = KinesisRecord> {
    prop_oneof![
        6 => user_record().prop_map(KinesisRecord::Plain),
        2 => proptest::collection::vec(user_record(), 2..6).prop_map(KinesisRecord::Aggregate),
        1 => "[%!@ ]{1,8}".prop_map(KinesisRecord::NotBase64),
    ]
}

/// Partition keys as producers send them: ASCII, non-ASCII, up to Kinesis' 256 characters.
fn partition_key() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9_]{1,15}", Just("ü🦀".repeat(128)), "\\PC{1,256}"]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Whatever the records, the table ends up holding exactly the valid tweets' distinct keys, each
    /// with its last version's message and time, and the quarantine exactly the poison — both
    /// worked out by the generator, independently of the handler.
    #[test]
    fn the_table_holds_exactly_the_valid_tweets(batch in proptest::collection::vec((kinesis_record(), partition_key()), 0..40)) {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let mut expected: std::collections::BTreeMap<(String, String), (String, String)> = Default::default();
        let (mut poison, mut user_records) = (0usize, 0usize);
        let mut records = Vec::new();
        for (i, (record, key)) in batch.iter().enumerate() {
            let subs: Vec<&UserRecord> = match record {
                KinesisRecord::Plain(u) => vec![u],
                KinesisRecord::Aggregate(us) => us.iter().collect(),
                KinesisRecord::NotBase64(_) => vec![],
            };
            user_records += subs.len();
            for u in &subs {
                match u {
                    UserRecord::Valid { username, id, message, timestamp, .. } => {
                        expected.insert((username.clone(), id.clone()), (message.clone(), timestamp.clone()));
                    }
                    UserRecord::Poison(_) => poison += 1,
                }
            }
            let data = match record {
                KinesisRecord::Plain(u) => b64(u.bytes()),
                KinesisRecord::Aggregate(us) => b64(&kpl::aggregate(us.iter().map(|u| (key.as_str(), u.bytes())))),
                KinesisRecord::NotBase64(text) => {
                    poison += 1;
                    text.clone()
                }
            };
            let mut r = Record::default();
            r.kinesis.sequence_number = format!("{i:04}");
            r.kinesis.partition_key = key.clone();
            r.kinesis.data = data;
            r.event_id = format!("shardId-000000000000:{i:04}");
            records.push(r);
        }
        let n = records.len();
        // As Lambda hands it over: the event's JSON, read as the function reads it.
        let json = serde_json::to_vec(&Event { records }).expect("event json");
        let event: Batch = serde_json::from_slice(&json).expect("the function reads the event");
        let store = MemoryStore::default();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let BatchOutcome { response, stats, fatal } = rt.block_on(handle_batch(&event, &store, &Options::within(std::time::Duration::from_secs(30))));
        prop_assert!(response.batch_item_failures.is_empty() && fatal.is_none(), "the memory store never fails");
        prop_assert_eq!(stats.records, n);
        prop_assert_eq!(stats.user_records, user_records);
        let table: std::collections::BTreeMap<(String, String), (String, String)> = store
            .items(Target::Events)
            .into_iter()
            .map(|(k, item)| {
                let s = |a: &str| item[a].as_s().expect("string attribute").clone();
                (k, (s("Message"), s("Timestamp")))
            })
            .collect();
        prop_assert_eq!(&table, &expected);
        prop_assert_eq!(stats.written, expected.len());
        prop_assert_eq!(stats.quarantined, poison);
        prop_assert_eq!(store.items(Target::Rejected).len(), poison);
    }
}

/// The generator makes valid tweets at all (a strategy that never does would make the property
/// above hold for a handler that quarantines everything).
#[test]
fn the_generator_makes_valid_tweets_and_poison() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut valid, mut bad) = (0, 0);
    for _ in 0..500 {
        match user_record().new_tree(&mut runner).expect("value").current() {
            UserRecord::Valid { bytes, username, .. } => {
                let item = item_from_payload(&bytes).expect("a valid tweet decodes");
                assert_eq!(item.username, username);
                valid += 1;
            }
            UserRecord::Poison(bytes) => {
                assert!(
                    item_from_payload(&bytes).is_err(),
                    "poison never decodes: {}",
                    String::from_utf8_lossy(&bytes)
                );
                bad += 1;
            }
        }
    }
    assert!(valid > 250 && bad > 50, "{valid} valid, {bad} poison");
}
