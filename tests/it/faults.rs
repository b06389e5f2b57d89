//! The processor under faults moto cannot produce, injected by a proxy in front of it: 30 % of
//! BatchWriteItem calls throttled, 10 % answered 500, 20 % with half their items left unprocessed;
//! one poison record of each kind in every 100, and producer duplicates. Through the real binary
//! (`stream local`): every valid tweet lands exactly once by key, every poison record is in
//! quarantine with its reason, and nothing else is there.

use crate::common;
use crate::fault_proxy;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use common::World;
use fault_proxy::{FaultProxy, Faults};
use stream::tweet::{Item, item_from_payload};

/// One poison record of each kind, for slot `n`, with the start of its reason.
pub fn poison(n: usize) -> Vec<(Vec<u8>, &'static str)> {
    let t = |id: String, name: &str, text: &str| {
        serde_json::json!({"id_str": id, "created_at": "Wed Oct 10 20:19:24 +0000 2018", "text": text,
            "user": {"name": name, "screen_name": "", "id_str": ""}})
        .to_string()
        .into_bytes()
    };
    let mut bad_digest = stream::kpl::aggregate([("a", t(format!("9{n}"), "n", "t").as_slice())]);
    let last = bad_digest.len() - 1;
    bad_digest[last] ^= 0xFF;
    vec![
        (format!("\u{0}{n}").into_bytes().into_iter().chain([0xFF, 0xFE]).collect(), "not UTF-8"),
        (format!("{{\"broken\": {n}").into_bytes(), "not a JSON tweet"),
        (format!(r#"{{"text":"{n}","user":{{"name":"n"}}}}"#).into_bytes(), "no tweet id"),
        (t(format!("8{n}"), "", "t"), "empty key"),
        (t(format!("7{n}"), &"k".repeat(2049), "t"), "Username is 2049 bytes"),
        (t(format!("6{n}"), "n", &"x".repeat(401 * 1024)), "item is"),
        (bad_digest, "KPL aggregate with a bad MD5 digest"),
    ]
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn faults_lose_nothing_and_write_nothing_twice() {
    let w = World::new("faults", "sa-east-1");
    let clients = w.clients().await;
    w.run(&["deploy"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;

    // 1,000 tweets; after every 100, one poison record of each kind; every 50th tweet sent twice.
    let mut tweets = stream::produce::source::Synthetic::new(Some(21));
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    let mut expected: BTreeMap<(String, String), Item> = BTreeMap::new();
    let mut reasons: Vec<&str> = Vec::new();
    for i in 0..1000 {
        let tweet = tweets.next_tweet();
        let item = item_from_payload(&tweet.to_bytes()).expect("valid tweet");
        expected.insert((item.username.clone(), item.id.clone()), item);
        records.push((tweet.user.screen_name.clone(), tweet.to_bytes()));
        if i % 50 == 0 {
            records.push((tweet.user.screen_name.clone(), tweet.to_bytes()));
        }
        if i % 100 == 99 {
            for (payload, reason) in poison(i) {
                records.push(("poison".into(), payload));
                reasons.push(reason);
            }
        }
    }
    common::put_all(&clients.kinesis, &outputs.stream_name, &records, 100).await;

    let proxy =
        FaultProxy::before_moto(Faults { throttle: 0.3, server_error: 0.1, unprocessed: 0.2, ..Faults::default() }, 7);
    let mut cmd = w.cmd(&["local", "--until-idle", "--output", "json", "--endpoint-url", &proxy.url]);
    let out = cmd.output().expect("stream local runs");
    let (stdout, _) = common::check(&out, 0, &["local"]);
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json summary");
    // Every record is done exactly once; batches retried from a reported failure deliver some twice.
    assert_eq!(summary["records"], records.len(), "{summary}");
    assert!(summary["deliveries"].as_u64() >= Some(records.len() as u64), "{summary}");
    assert_eq!(summary["skipped"], 0, "{summary}");

    let c = &proxy.counters;
    assert!(c.throttled.load(Ordering::SeqCst) > 0, "throttling was injected");
    assert!(c.server_errors.load(Ordering::SeqCst) > 0, "5xx was injected");
    assert!(c.trimmed.load(Ordering::SeqCst) > 0, "UnprocessedItems were injected");

    // Every valid tweet exactly once by key, with the right attributes; nothing else.
    let mut table: BTreeMap<(String, String), Item> = BTreeMap::new();
    let mut pages = clients.dynamodb.scan().table_name(&outputs.table_name).into_paginator().items().send();
    while let Some(item) = pages.next().await {
        let item = item.expect("scan");
        let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let it = Item { username: s("Username"), id: s("Id"), timestamp: s("Timestamp"), message: s("Message") };
        assert!(table.insert((it.username.clone(), it.id.clone()), it).is_none(), "keys are unique");
    }
    assert_eq!(table.len(), expected.len());
    assert_eq!(table, expected);

    // Every poison record quarantined, once, with its reason.
    let mut quarantined: Vec<String> = Vec::new();
    let mut pages = clients.dynamodb.scan().table_name(&outputs.rejected_table).into_paginator().items().send();
    while let Some(item) = pages.next().await {
        let item = item.expect("scan");
        quarantined.push(item.get("Reason").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default());
    }
    assert_eq!(quarantined.len(), reasons.len());
    for reason in &reasons {
        let n = quarantined.iter().filter(|q| q.starts_with(reason)).count();
        assert_eq!(n, 10, "ten records quarantined for {reason}");
    }
    w.run(&["destroy", "--yes"], 0);
}
