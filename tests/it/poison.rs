//! Poison records on a real stream (moto), through the real binary: every kind is quarantined
//! with its reason and bytes, the valid tweets around them land, nothing blocks the shard, and
//! `stream replay` puts quarantined records back into the stream.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::World;

fn tweet(id: &str, name: &str, text: &str) -> Vec<u8> {
    serde_json::json!({
        "id_str": id, "created_at": "Wed Oct 10 20:19:24 +0000 2018", "text": text,
        "user": {"name": name, "screen_name": "sn", "id_str": "1"}
    })
    .to_string()
    .into_bytes()
}

/// The poison records, with the start of the reason each must be quarantined for.
fn poison() -> Vec<(Vec<u8>, &'static str)> {
    let mut bad_digest = stream::kpl::aggregate([("a", tweet("900", "n", "t").as_slice())]);
    let n = bad_digest.len();
    bad_digest[n - 1] ^= 0xFF;
    vec![
        (b"\xc3\x28 invalid utf-8".to_vec(), "not UTF-8"),
        (b"{\"id_str\": ".to_vec(), "not a JSON tweet"),
        (br#"{"text":"no id","created_at":"Wed Oct 10 20:19:24 +0000 2018","user":{"name":"n"}}"#.to_vec(), "no tweet id"),
        (serde_json::json!({"id_str":"901","created_at":"Wed Oct 10 20:19:24 +0000 2018","text":"t","user":{"name":"","screen_name":"","id_str":""}}).to_string().into_bytes(), "empty key"),
        (tweet("902", &"k".repeat(2100), "t"), "Username is 2100 bytes"),
        (tweet("903", "n", &"x".repeat(450 * 1024)), "item is"),
        (bad_digest, "KPL aggregate with a bad MD5 digest"),
    ]
}

async fn put(kinesis: &aws_sdk_kinesis::Client, stream: &str, records: &[Vec<u8>]) {
    for r in records {
        let entry = PutRecordsRequestEntry::builder()
            .partition_key("poison")
            .data(Blob::new(r.clone()))
            .build()
            .expect("entry");
        let out = kinesis.put_records().stream_name(stream).records(entry).send().await.expect("put");
        assert_eq!(out.failed_record_count(), Some(0));
    }
}

/// Quarantined records as (partition key, payload, reason), sorted: what must survive a replay.
fn quarantined(rows: &[serde_json::Value]) -> Vec<(String, String, String)> {
    let field = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or_else(|| panic!("{k} in {r}")).to_string();
    let mut v: Vec<_> =
        rows.iter().map(|r| (field(r, "PartitionKey"), field(r, "Payload"), field(r, "Reason"))).collect();
    v.sort();
    v
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn poison_records_are_quarantined_and_can_be_replayed() {
    let w = World::new("poison", "eu-central-1");
    let clients = w.clients().await;
    w.run(&["deploy"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;

    // Valid tweets, then every kind of poison, then a KPL aggregate with one good and one bad record.
    w.run(&["produce", "--count", "200", "--seed", "3"], 0);
    let poison = poison();
    put(&clients.kinesis, &outputs.stream_name, &poison.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>()).await;
    let good = tweet("904", "kpl user", "from an aggregate");
    let mixed = stream::kpl::aggregate([("g", good.as_slice()), ("b", b"[1,2,3]".as_slice())]);
    put(&clients.kinesis, &outputs.stream_name, &[mixed]).await;

    let (out, _) = w.run(&["local", "--until-idle", "--batch-size", "50"], 0);
    assert!(out.contains("processed 208 records"), "{out}");

    // Read from the tables themselves, not through `scan-table`.
    let expected: std::collections::BTreeSet<(String, String)> = stream::produce::source::Synthetic::new(Some(3))
        .take(200)
        .map(|t| stream::tweet::item_from_payload(&t.to_bytes()).expect("tweet"))
        .map(|i| (i.username, i.id))
        .chain([("kpl user".to_string(), "904".to_string())])
        .collect();
    assert_eq!(expected.len(), 201, "200 tweets and the good record of the aggregate");
    let same_keys = |got: std::collections::BTreeSet<(String, String)>| {
        let missing: Vec<_> = expected.difference(&got).collect();
        let extra: Vec<_> = got.difference(&expected).collect();
        assert!(missing.is_empty() && extra.is_empty(), "missing from the table {missing:?}, not expected {extra:?}");
    };
    same_keys(common::table_keys(&clients.dynamodb, &outputs.table_name).await);
    let (rejected, _) = w.run(&["scan-table", "--rejected", "--output", "jsonl"], 0);
    let rejected: Vec<serde_json::Value> = rejected.lines().map(|l| serde_json::from_str(l).expect("jsonl")).collect();
    assert_eq!(rejected.len(), poison.len() + 1);
    let by_reason: BTreeMap<String, &serde_json::Value> =
        rejected.iter().map(|r| (r["Reason"].as_str().expect("reason").to_string(), r)).collect();
    for (payload, reason) in &poison {
        let (_, item) =
            by_reason.iter().find(|(r, _)| r.starts_with(reason)).unwrap_or_else(|| panic!("{reason} quarantined"));
        assert_eq!(item["PayloadBytes"].as_u64(), Some(payload.len() as u64));
        assert_eq!(item["Shard"], "shardId-000000000000");
        assert!(item["ArrivalTime"].as_str().expect("arrival").ends_with('Z'));
        let kept = B64.decode(item["Payload"].as_str().expect("payload")).expect("base64");
        if item.get("Truncated").is_some() {
            assert!(payload.starts_with(&kept) && kept.len() < payload.len());
        } else {
            assert_eq!(&kept, payload);
        }
    }
    let sub =
        rejected.iter().find(|r| r["Sequence"].as_str().is_some_and(|s| s.ends_with("#00001"))).expect("sub-record");
    assert_eq!(sub["PartitionKey"], "b");
    let (table, _) = w.run(&["scan-table", "--rejected"], 0);
    assert!(table.lines().next().expect("header").starts_with("Shard"), "{table}");

    // Replay: everything but the truncated record goes back to the stream and leaves quarantine;
    // the function quarantines each again (it is still poison), under its new sequence number.
    let (out, _) = w.run(&["replay"], 0);
    assert!(out.contains(&format!("replayed {} quarantined records", poison.len())), "{out}");
    assert!(out.contains("1 too large to replay"), "{out}");
    assert_eq!(common::item_count(&clients.dynamodb, &outputs.rejected_table).await, 1);
    w.run(&["local", "--until-idle"], 0);
    // `local` resumes after its checkpoint: the replayed copies are quarantined again under their
    // new sequence numbers (7), next to the one that was too large to replay.
    assert_eq!(common::item_count(&clients.dynamodb, &outputs.rejected_table).await, poison.len() + 1);
    // What replay put back is what was quarantined: each record's own key and bytes (the sub-record
    // under its own key "b"), so each is quarantined again for the same reason.
    let (again, _) = w.run(&["scan-table", "--rejected", "--output", "jsonl"], 0);
    let again: Vec<serde_json::Value> = again.lines().map(|l| serde_json::from_str(l).expect("jsonl")).collect();
    assert_eq!(quarantined(&again), quarantined(&rejected));
    let sequences = |rows: &[serde_json::Value]| -> BTreeSet<String> {
        rows.iter().map(|r| r["Sequence"].as_str().expect("sequence").to_string()).collect()
    };
    assert_eq!(sequences(&again).intersection(&sequences(&rejected)).count(), 1, "only the unreplayed one is the same");
    same_keys(common::table_keys(&clients.dynamodb, &outputs.table_name).await);
    w.run(&["destroy", "--yes"], 0);
}
