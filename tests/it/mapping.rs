//! The event source mapping's lifecycle under `stream local`, on moto: FilterCriteria set by
//! `deploy --filter` is the mapping's and is applied as Lambda applies it; settings `stream local`
//! cannot honour are refused, not ignored; a shard split mid-run keeps each key's last version
//! (children read after their parent); an idle shard is read once a second.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::World;
use stream::produce::source::Synthetic;

/// English tweets, through a `$or` whose other branch matches none: a hashtag at offset `N.0`, where
/// tweets write offsets as integers. Lambda compares numbers as written, so the pattern must reach
/// the mapping with `N.0` as written, and `local` must not read it as N.
fn english(offset: usize) -> String {
    format!(r#"{{"data":{{"$or":[{{"lang":["en"]}},{{"entities":{{"hashtags":{{"indices":[{offset}.0]}}}}}}]}}}}"#)
}

/// The filter patterns the function's mapping holds.
async fn held_patterns(lambda: &aws_sdk_lambda::Client, function: &str) -> Vec<String> {
    let mappings = lambda.list_event_source_mappings().function_name(function).send().await.expect("list");
    mappings.event_source_mappings()[0]
        .filter_criteria()
        .map(|c| c.filters().iter().filter_map(|f| f.pattern()).map(str::to_string).collect())
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn filters_are_the_mappings_and_drop_what_does_not_match() {
    let w = World::new("filter", "eu-south-1");
    let clients = w.clients().await;
    let lambda = w.lambda().await;
    let tweets: Vec<_> = Synthetic::new(Some(12)).take(300).collect();
    let is_english = |t: &stream::tweet::Tweet| t.lang.as_deref() == Some("en");
    // The offset of a hashtag of a tweet the filter drops: read as a value it would be taken.
    let offset = tweets
        .iter()
        .filter(|t| !is_english(t))
        .find_map(|t| t.entities.hashtags.first())
        .map(|h| h.indices[0])
        .expect("a tweet in another language with a hashtag");
    let pattern = english(offset);
    // Given spread out, held compact.
    w.run(&["deploy", "--filter", &pattern.replace(',', ", ").replace(':', ": ")], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    // The mapping in the stack holds the pattern.
    assert_eq!(held_patterns(&lambda, &outputs.function_name).await, std::slice::from_ref(&pattern));

    w.run(&["produce", "-n", "300", "--seed", "12"], 0);
    let english: BTreeSet<(String, String)> = tweets
        .iter()
        .filter(|t| is_english(t))
        .map(|t| stream::tweet::item_from_payload(&t.to_bytes()).expect("tweet"))
        .map(|i| (i.username, i.id))
        .collect();
    let others = tweets.iter().filter(|t| !is_english(t)).count();
    assert!(!english.is_empty() && others > 0, "both kinds were made");

    let (out, _) = w.run(&["local", "--until-idle", "--output", "json"], 0);
    let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(summary["records"], 300, "every record done: {summary}");
    assert_eq!(summary["filtered"], others, "{summary}");
    assert_eq!(summary["deliveries"], 300 - others as u64, "filtered records are never delivered: {summary}");
    let mut table = BTreeSet::new();
    let mut pages = clients.dynamodb.scan().table_name(&outputs.table_name).into_paginator().items().send();
    while let Some(item) = pages.next().await {
        let item = item.expect("scan");
        let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        table.insert((s("Username"), s("Id")));
    }
    assert_eq!(table, english, "only the English tweets landed");

    // More than Lambda's default 5 are sent with a warning (a raised quota takes up to 10).
    let mut six = vec!["deploy", "--yes"];
    let patterns: Vec<String> = (0..6).map(|i| format!(r#"{{"data":{{"n":[{i}]}}}}"#)).collect();
    patterns.iter().for_each(|p| six.extend(["--filter", p.as_str()]));
    let (_, err) = w.run(&six, 0);
    assert!(err.contains("warning: 6 --filter patterns: Lambda takes 5 per mapping unless"), "{err}");
    assert_eq!(held_patterns(&lambda, &outputs.function_name).await, patterns);

    // Removed with '': the mapping has no filter any more.
    w.run(&["deploy", "--filter", "", "--yes"], 0);
    assert!(held_patterns(&lambda, &outputs.function_name).await.is_empty());
    w.run(&["destroy", "--yes"], 0);
}

/// A tumbling window or an SNS on-failure destination would be honoured by Lambda: refused.
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn settings_local_cannot_honour_are_refused() {
    use aws_sdk_lambda::types::{DestinationConfig, OnFailure};
    let w = World::new("refuse", "eu-west-3");
    let clients = w.clients().await;
    let lambda = w.lambda().await;
    w.run(&["deploy"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    let uuid = lambda
        .list_event_source_mappings()
        .function_name(&outputs.function_name)
        .send()
        .await
        .expect("list")
        .event_source_mappings()[0]
        .uuid()
        .expect("uuid")
        .to_string();
    lambda.update_event_source_mapping().uuid(&uuid).tumbling_window_in_seconds(60).send().await.expect("window");
    let (_, err) = w.run(&["local", "--until-idle"], 2);
    common::assert_error_lines(&err, "a tumbling window (TumblingWindowInSeconds 60)", "Lambda would honour it");
    let sns = DestinationConfig::builder()
        .on_failure(OnFailure::builder().destination("arn:aws:sns:eu-west-3:123456789012:t").build())
        .build();
    lambda
        .update_event_source_mapping()
        .uuid(&uuid)
        .tumbling_window_in_seconds(0)
        .destination_config(sns)
        .send()
        .await
        .expect("sns");
    let (_, err) = w.run(&["local", "--until-idle"], 2);
    common::assert_error_lines(&err, "an on-failure destination other than SQS", "test this in AWS");
    w.run(&["destroy", "--yes"], 0);
}

/// A shard is split while `stream local` runs, and the parent keeps its records as in Kinesis (the
/// fault proxy serves the stream's reads: moto's split leaves the children empty and never ends the
/// parent). The same keys are written before the split, just before it (into the parent) and after
/// it (into the children); the parent's last versions take longer to write than `stream local`
/// takes to list the shards again. The children are read only once the parent is closed and done:
/// every key ends with its last version. Read as soon as they are listed, they would be written
/// before the parent's last versions.
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_shard_split_mid_run_keeps_each_keys_last_version() {
    use crate::fault_proxy::{FaultProxy, Faults};
    use crate::split_stream::SplitStream;
    let w = World::new("reshard", "sa-east-1");
    let clients = w.clients().await;
    w.run(&["deploy", "--batch-size", "7"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    let kinesis = SplitStream::new(&outputs.stream_name);
    // 7 s: longer than `stream local`'s 5 s between listings.
    let slow = Faults { delay_marker: Some((r#"{"S":"v5"}"#, Duration::from_secs(7))), ..Faults::default() };
    let proxy = FaultProxy::serving(kinesis.clone(), slow, 1);
    // Version `version` of 9 keys' tweets, put at once.
    let put = |version: usize| {
        let records: Vec<(String, Vec<u8>)> = (0..9)
            .map(|key| {
                let data = serde_json::json!({"id_str": format!("{}", 500 + key), "created_at": "Wed Oct 10 20:19:24 +0000 2018",
                    "text": format!("v{version}"), "user": {"name": format!("k{key}"), "screen_name": format!("k{key}"), "id_str": "1"}});
                (format!("k{key}"), data.to_string().into_bytes())
            })
            .collect();
        kinesis.put_all(&records);
    };
    (0..5).for_each(put);
    let local = w
        .cmd(&["local", "--output", "json", "--endpoint-url", &proxy.url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("stream local");
    let messages = || async {
        let mut out = BTreeMap::new();
        let mut pages = clients.dynamodb.scan().table_name(&outputs.table_name).into_paginator().items().send();
        while let Some(item) = pages.next().await {
            let item = item.expect("scan");
            let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            out.insert(s("Username"), s("Message"));
        }
        out
    };
    let wait_for = |version: &'static str| async move {
        let until = Instant::now() + Duration::from_secs(90);
        loop {
            let m = messages().await;
            if m.len() == 9 && m.values().all(|v| v == version) {
                return;
            }
            assert!(Instant::now() < until, "the table never showed {version} for every key: {m:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    wait_for("v4").await;
    put(5);
    let children = kinesis.split("shardId-000000000000");
    (6..10).for_each(put);
    wait_for("v9").await;
    std::process::Command::new("kill").args(["-INT", &local.id().to_string()]).status().expect("kill");
    let out = local.wait_with_output().expect("stream local ends");
    let (stdout, stderr) = common::check(&out, 130, &["local"]);
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    // Each child's first read came after the parent's last write was answered.
    let written = proxy.counters.delayed_answers();
    let reads = proxy.counters.read_times();
    for child in &children {
        let first = reads.get(child).and_then(|r| r.first()).unwrap_or_else(|| panic!("{child} read: {reads:?}"));
        let early = written.iter().filter(|w| *w > first).count();
        assert_eq!(early, 0, "{child} was read before {early} of its parent's last writes ended: {stderr}");
    }
    assert_eq!(written.len(), 2, "the parent's last versions: 9 records in batches of 7");
    assert!(stderr.contains("shard shardId-000000000000 is closed and done"), "{stderr}");
    let last = messages().await;
    assert!(last.values().all(|m| m == "v9"), "every key's last version: {last:?}");
    assert_eq!(summary["shards"], 3, "the parent and both children were read: {summary}");
    w.run(&["destroy", "--yes"], 0);
}

/// A throttled GetRecords (the shard's five reads a second are shared with other consumers) is
/// backed off and counted, never dropped in silence; an idle shard is polled about once a second.
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn read_throttles_are_counted_and_an_idle_shard_is_polled_once_a_second() {
    use crate::fault_proxy::{FaultProxy, Faults};
    use std::sync::atomic::Ordering;
    let w = World::new("polling", "ap-east-1");
    w.run(&["deploy"], 0);
    w.run(&["produce", "-n", "50", "--seed", "8"], 0);
    // The SDK tries a throttled call 4 times: 8 throttled answers are two GetRecords that fail.
    let proxy = FaultProxy::before_moto(Faults { throttle_first_reads: 8, ..Faults::default() }, 1);
    let (out, _) = w.run(&["local", "--until-idle", "--output", "json", "--endpoint-url", &proxy.url], 0);
    let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(summary["records"], 50, "{summary}");
    assert_eq!(summary["read_throttles"], 2, "{summary}");
    assert_eq!(proxy.counters.reads_throttled.load(Ordering::SeqCst), 8);

    // Caught up and left running, the shard is read about once a second (not in a tight loop).
    let before = proxy.counters.read_times()["shardId-000000000000"].len();
    let local = w
        .cmd(&["local", "--output", "json", "--endpoint-url", &proxy.url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("stream local");
    tokio::time::sleep(Duration::from_secs(5)).await;
    std::process::Command::new("kill").args(["-INT", &local.id().to_string()]).status().expect("kill");
    let out = local.wait_with_output().expect("ends");
    common::check(&out, 130, &["local"]);
    // Timed at the proxy: once a second, no more often (a 500 ms poll would be twice as many).
    let reads = proxy.counters.read_times();
    let idle = &reads["shardId-000000000000"][before..];
    let gaps: Vec<f64> = idle.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    assert!(gaps.len() >= 2, "an idle shard is read about once a second: {gaps:.2?}");
    assert!(gaps.iter().all(|g| (0.9..=1.5).contains(g)), "an idle shard is read once a second: {gaps:.2?}");
    w.run(&["destroy", "--yes"], 0);
}
