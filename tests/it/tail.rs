//! `stream tail` through the real binary on moto: every record once, aggregates opened into their
//! user records (`SEQ#n`), key and text filters, `--count`, the three formats, `--from SHARD:SEQ`
//! and `--since`, and a split and a merge followed parents first. Refused flags give two lines.

use crate::common::{self, World};

use std::collections::BTreeMap;

use serde_json::Value;
use stream::produce::source::Synthetic;

/// The JSON lines of `stream tail … --output jsonl`.
fn jsonl(out: &str) -> Vec<Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// (partition key, data) of each shown record, sorted.
fn key_data(rows: &[Value]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r["partition_key"].as_str().unwrap_or("").into(), r["data"].as_str().unwrap_or("").into()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn tail_shows_every_record_filters_and_follows_a_reshard() {
    let w = World::new("tail", "me-central-1");
    let clients = w.clients().await;
    w.run(&["deploy", "--shards", "2"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    w.run(&["produce", "--count", "40", "--seed", "21"], 0);
    w.run(&["produce", "--count", "60", "--seed", "22", "--aggregate"], 0);
    let made: Vec<(String, String)> = {
        let tweets = Synthetic::new(Some(21)).take(40).chain(Synthetic::new(Some(22)).take(60));
        let mut v: Vec<_> =
            tweets.map(|t| (t.user.screen_name.clone(), String::from_utf8(t.to_bytes()).expect("utf-8"))).collect();
        v.sort();
        v
    };

    // Everything, once: 40 plain records and the 60 user records of the aggregates.
    let (out, err) = w.run(&["tail", "--from", "trim-horizon", "--until-idle", "--output", "jsonl"], 0);
    let rows = jsonl(&out);
    assert_eq!(key_data(&rows), made, "{err}");
    let subs = rows.iter().filter(|r| r["sequence"].as_str().is_some_and(|s| s.contains('#'))).count();
    assert_eq!(subs, 60, "user records of aggregates are SEQ#n");
    assert!(err.contains("100 records shown of ") && err.contains("from 2 shard(s)"), "{err}");
    for r in &rows {
        assert!(r["arrived"].as_str().is_some_and(|t| t.ends_with('Z')), "{r}");
        assert!(r["shard"].as_str().is_some_and(|s| s.starts_with("shardId-")), "{r}");
    }

    // Filters: one key; a text; --count stops early. The table has a header and one row each.
    let key = made[7].0.clone();
    let (out, _) = w.run(&["tail", "--from", "trim-horizon", "--until-idle", "--key", &key, "-o", "jsonl"], 0);
    let expected: Vec<_> = made.iter().filter(|(k, _)| *k == key).cloned().collect();
    assert_eq!(key_data(&jsonl(&out)), expected);
    let word = "\"lang\":\"en\"";
    let (out, _) = w.run(&["tail", "--from", "trim-horizon", "--until-idle", "--grep", word, "-o", "jsonl"], 0);
    let expected: Vec<_> = made.iter().filter(|(_, d)| d.contains(word)).cloned().collect();
    assert!(!expected.is_empty() && expected.len() < made.len(), "the filter picks some");
    assert_eq!(key_data(&jsonl(&out)), expected);
    let (out, _) = w.run(&["tail", "--from", "trim-horizon", "--count", "7"], 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 8, "a header and 7 rows: {out}");
    assert!(lines[0].starts_with("ARRIVED"), "{out}");
    assert!(lines[1..].iter().all(|l| l.contains("  000000000000  ") || l.contains("  000000000001  ")), "{out}");
    let (out, _) = w.run(&["tail", "--from", "trim-horizon", "--until-idle", "-o", "json"], 0);
    let array: Vec<Value> = serde_json::from_str(&out).expect("one JSON array");
    assert_eq!(key_data(&array), made);

    // --since: all of it arrived in the last hour, none in the future; --from SHARD:SEQ starts there.
    let (out, _) = w.run(&["tail", "--since", "1h", "--until-idle", "-o", "jsonl"], 0);
    assert_eq!(jsonl(&out).len(), 100);
    let shard1: Vec<&Value> = rows.iter().filter(|r| r["shard"] == "shardId-000000000001").collect();
    let fifth = shard1[4]["sequence"].as_str().expect("seq").split('#').next().expect("seq").to_string();
    let from = format!("shardId-000000000001:{fifth}");
    let (out, _) = w.run(&["tail", "--from", &from, "--until-idle", "-o", "jsonl"], 0);
    let tail_rows = jsonl(&out);
    assert!(tail_rows.iter().all(|r| r["shard"] == "shardId-000000000001"), "only that shard");
    assert_eq!(tail_rows[0]["sequence"].as_str().expect("seq").split('#').next(), Some(fifth.as_str()));
    assert!(tail_rows.len() < shard1.len() && tail_rows.len() >= shard1.len() - 4);

    // Reshard: split shard 0 (children 2 and 3), then merge 3 with 1 (child 4). Children are read
    // only once their parents are read to their end: every record of a child comes after every
    // record of its parents. (moto copies a merge's parents' records into the child, and keeps
    // sending writes to closed parents: the split's children stay empty there.)
    let kinesis = &clients.kinesis;
    let mid = (u128::MAX / 4).to_string();
    kinesis
        .split_shard()
        .stream_name(&outputs.stream_name)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(&mid)
        .send()
        .await
        .expect("SplitShard");
    kinesis
        .merge_shards()
        .stream_name(&outputs.stream_name)
        .shard_to_merge("shardId-000000000003")
        .adjacent_shard_to_merge("shardId-000000000001")
        .send()
        .await
        .expect("MergeShards");
    let (out, err) = w.run(&["tail", "--from", "trim-horizon", "--until-idle", "-o", "jsonl"], 0);
    assert!(err.contains("from 5 shard(s)"), "parents, the split's children and the merge's: {err}");
    let rows = jsonl(&out);
    let position = |shard: &str, last: bool| {
        let mut at = rows.iter().enumerate().filter(|(_, r)| r["shard"] == shard).map(|(i, _)| i);
        if last { at.next_back() } else { at.next() }
    };
    let first_child = position("shardId-000000000004", false).expect("the merge's child has records on moto");
    for parent in ["shardId-000000000001", "shardId-000000000000"] {
        assert!(position(parent, true).expect("parent read") < first_child, "{parent} before its child");
    }
    let mut per_shard: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *per_shard.entry(r["shard"].as_str().expect("shard")).or_default() += 1;
    }
    assert_eq!(per_shard["shardId-000000000004"], per_shard["shardId-000000000001"], "{per_shard:?}");

    // A bare sequence number that more than one shard holds (moto numbers each shard from 1) is
    // refused with what to give instead.
    let (_, err) = w.run(&["tail", "--from", "1", "--until-idle"], 2);
    common::assert_error_lines(&err, "is in more than one shard", "give --from SHARD:SEQUENCE");
    // A shard the stream does not have: exit 1 after the listing, the JSON output still one document.
    let (out, err) = w.run(&["tail", "--from", "shardId-000000000099:1", "--until-idle", "-o", "json"], 1);
    common::assert_error_lines(&err, "has no shard shardId-000000000099", "give --from SHARD:SEQUENCE");
    assert_eq!(serde_json::from_str::<Value>(&out).expect("one document"), serde_json::json!([]));
    w.run(&["destroy", "--yes"], 0);
}

/// Refused flags: two lines, exit 2, before any AWS call.
#[test]
fn bad_tail_flags_are_refused() {
    let dead = ["--endpoint-url", common::DEAD_ENDPOINT];
    let cases: [(&[&str], &str, &str); 5] = [
        (&["--from", "oldest"], "--from \"oldest\" is not a starting point", "trim-horizon, latest"),
        (&["--since", "yesterday"], "--since \"yesterday\" is not a time", "give --since a time like"),
        (&["--count", "0"], "--count 0 is out of range", "--count"),
        (&["--from", "latest", "--since", "5m"], "--since", "--from"),
        (&["--output", "yaml"], "yaml", "table"),
    ];
    for (args, what, hint) in cases {
        let all: Vec<&str> = ["tail"].iter().chain(args).chain(&dead).copied().collect();
        let (_, err) = common::run_plain(&all, &[], 2);
        common::assert_error_lines(&err, what, hint);
    }
}

/// The gaps between consecutive times, in seconds.
fn gaps(times: &[std::time::Instant]) -> Vec<f64> {
    times.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect()
}

/// Politeness, timed at the proxy: a throttled shard is left alone 1, 2, then 4 s (the SDK sends
/// no throttled read again), and a shard with nothing new is read once a second, no more often.
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn tail_reads_at_most_once_a_second_and_backs_off_when_throttled() {
    use crate::fault_proxy::{FaultProxy, Faults};
    use std::sync::atomic::Ordering;
    let w = World::new("tailpace", "ap-south-2");
    w.run(&["deploy"], 0);
    w.run(&["produce", "--count", "30", "--seed", "23"], 0);
    let proxy = FaultProxy::before_moto(Faults { throttle_first_reads: 3, ..Faults::default() }, 5);
    let (out, err) =
        w.run(&["tail", "--from", "trim-horizon", "--count", "30", "-o", "jsonl", "--endpoint-url", &proxy.url], 0);
    assert_eq!(jsonl(&out).len(), 30, "{err}");
    assert!(err.contains("3 reads throttled"), "{err}");
    assert_eq!(proxy.counters.reads_throttled.load(Ordering::SeqCst), 3, "each throttled read was tail's own");
    let reads = proxy.counters.read_times();
    let times = &reads["shardId-000000000000"];
    assert_eq!((reads.len(), times.len()), (1, 4), "three throttled reads, then one that got all 30: {reads:?}");
    // Each gap is the backoff, give or take the time a request takes to arrive.
    let got = gaps(times);
    for (gap, backoff) in got.iter().zip([1.0, 2.0, 4.0]) {
        assert!(*gap >= backoff - 0.1 && *gap <= backoff + 0.5, "backoffs of 1, 2 and 4 s: {got:.2?}");
    }

    // Nothing new on the shard: one read a second, no more often, for as long as it runs.
    let proxy = FaultProxy::before_moto(Faults::default(), 6);
    let tail = w
        .cmd(&["tail", "--from", "latest", "--endpoint-url", &proxy.url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("stream tail");
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    std::process::Command::new("kill").args(["-INT", &tail.id().to_string()]).status().expect("kill");
    common::check(&tail.wait_with_output().expect("tail ends"), 0, &["tail"]);
    let reads = proxy.counters.read_times();
    let got = gaps(&reads["shardId-000000000000"]);
    assert!(got.len() >= 3, "read about once a second for 4.5 s: {got:.2?}");
    assert!(got.iter().all(|g| (0.95..=1.5).contains(g)), "an idle shard is read once a second: {got:.2?}");
    w.run(&["destroy", "--yes"], 0);
}
