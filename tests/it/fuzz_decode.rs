//! Property tests (proptest) over everything that reads untrusted bytes: record decoding, KPL
//! deaggregation and the whole handler. Nothing panics, and every record ends up written,
//! quarantined or reported.

use proptest::prelude::*;
use stream::kpl;
use stream::process::{BatchOutcome, Event, MemoryStore, Options, Record, Target, handle_batch};
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
        proptest::option::of("[A-Za-z]{3} [A-Za-z]{3} [0-9]{2} [0-9:]{8} \\+0000 [0-9]{4}"),
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Whatever the records, the handler answers: each is written, quarantined, or reported.
    #[test]
    fn handler_accounts_for_every_record(payloads in proptest::collection::vec(prop_oneof![
        tweetish().prop_map(|b| { use base64::Engine; base64::engine::general_purpose::STANDARD.encode(b) }),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| { use base64::Engine; base64::engine::general_purpose::STANDARD.encode(b) }),
        any::<String>(),
    ], 0..40)) {
        let records: Vec<Record> = payloads.into_iter().enumerate().map(|(i, data)| {
            let mut r = Record::default();
            r.kinesis.sequence_number = format!("{i:04}");
            r.kinesis.data = data;
            r.event_id = format!("shardId-000000000000:{i:04}");
            r
        }).collect();
        let n = records.len();
        let event = Event { records };
        let store = MemoryStore::default();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let BatchOutcome { response: resp, stats, .. } = rt.block_on(handle_batch(&event, &store, &Options::within(std::time::Duration::from_secs(30))));
        prop_assert!(resp.batch_item_failures.is_empty(), "the memory store never fails");
        prop_assert_eq!(stats.records, n);
        // Each user record is written, dropped as a duplicate, or quarantined; records that hold
        // no readable user record at all are quarantined whole.
        prop_assert_eq!(stats.written + stats.duplicates + stats.quarantined, stats.user_records + count_unreadable(&event));
        prop_assert_eq!(store.items(Target::Rejected).len(), stats.quarantined);
    }
}

/// Records that never become user records: not base64, or an aggregate that cannot be read.
fn count_unreadable(event: &Event) -> usize {
    use base64::Engine;
    event
        .records
        .iter()
        .filter(|r| match base64::engine::general_purpose::STANDARD.decode(&r.kinesis.data) {
            Err(_) => true,
            Ok(b) => kpl::is_aggregate(&b) && kpl::deaggregate(&b).is_err(),
        })
        .count()
}
