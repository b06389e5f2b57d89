//! `stream produce` through the real binary on moto: records land on the shard their key hashes
//! to, in order per key; aggregates deaggregate to exactly what was produced; a file source sends
//! every good line and names the bad ones; throttled entries are resent and nothing is lost; what
//! never succeeds is in the dead-letter file, with exit code 3; a partly filled batch leaves after
//! --linger-ms while the source is still open.

use crate::common;
use crate::fault_proxy;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use common::World;
use fault_proxy::{FaultProxy, Faults};
use stream::kinesis::ShardMap;
use stream::produce::source::Synthetic;

use common::read_stream as read_all;

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn records_go_to_their_shard_in_order_and_aggregates_read_back_whole() {
    let w = World::new("shards", "ap-northeast-1");
    let clients = w.clients().await;
    w.run(&["deploy", "--shards", "4"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;

    let (out, _) = w.run(&["produce", "--count", "1500", "--seed", "5"], 0);
    assert!(out.contains("produced 1500 records") && out.contains("(4 shard(s))"), "{out}");
    let records = read_all(&clients.kinesis, &outputs.stream_name).await;
    assert_eq!(records.len(), 1500);
    let map =
        ShardMap::new(&stream::kinesis::list_shards(&clients.kinesis, &outputs.stream_name).await.expect("shards"))
            .expect("map");
    let mut per_key: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for (shard, key, data) in &records {
        assert_eq!(map.id(map.shard_for(key)), shard, "{key} is on the shard its hash picks");
        per_key.entry(key.clone()).or_default().push(data.clone());
    }
    assert!(per_key.len() > 4 && records.iter().map(|r| &r.0).collect::<BTreeSet<_>>().len() == 4, "all shards used");
    // Order per key is the order the tweets were made.
    let mut made: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut tweets = Synthetic::new(Some(5));
    for _ in 0..1500 {
        let t = tweets.next_tweet();
        made.entry(t.user.screen_name.clone()).or_default().push(t.to_bytes());
    }
    assert_eq!(per_key, made);

    // Aggregated: fewer Kinesis records, the same user records once deaggregated.
    let (out, _) = w.run(&["produce", "--count", "700", "--seed", "6", "--aggregate", "--output", "json"], 0);
    let summary: serde_json::Value = serde_json::from_str(&out).expect("json summary");
    assert_eq!(summary["sent"], 700);
    let kinesis_records = summary["kinesis_records"].as_u64().expect("count");
    assert!(kinesis_records < 100, "{summary}");
    let all = read_all(&clients.kinesis, &outputs.stream_name).await;
    assert_eq!(all.len() as u64, 1500 + kinesis_records);
    let mut users: Vec<Vec<u8>> = Vec::new();
    for (shard, key, data) in &all[..] {
        if stream::kpl::is_aggregate(data) {
            assert_eq!(map.id(map.shard_for(key)), shard);
            for sub in stream::kpl::deaggregate(data).expect("our aggregate") {
                assert_eq!(
                    map.id(map.shard_for(sub.partition_key)),
                    shard,
                    "sub-records share their aggregate's shard"
                );
                users.push(sub.data.to_vec());
            }
        }
    }
    let mut expected: Vec<Vec<u8>> = Synthetic::new(Some(6)).take(700).map(|t| t.to_bytes()).collect();
    users.sort();
    expected.sort();
    assert_eq!(users, expected);

    // The function writes what the producer aggregated: the table holds every tweet made, once.
    w.run(&["local", "--until-idle"], 0);
    let made: BTreeSet<(String, String)> = Synthetic::new(Some(5))
        .take(1500)
        .chain(Synthetic::new(Some(6)).take(700))
        .map(|t| stream::tweet::item_from_payload(&t.to_bytes()).expect("valid tweet"))
        .map(|i| (i.username, i.id))
        .collect();
    let mut table = BTreeSet::new();
    let mut pages = clients.dynamodb.scan().table_name(&outputs.table_name).into_paginator().items().send();
    while let Some(item) = pages.next().await {
        let item = item.expect("scan");
        let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        table.insert((s("Username"), s("Id")));
    }
    assert_eq!(table, made);
    w.run(&["destroy", "--yes"], 0);
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn file_source_sends_good_lines_and_names_bad_ones() {
    let w = World::new("file", "eu-west-2");
    let clients = w.clients().await;
    w.run(&["deploy"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    let path = w.dir.path().join("tweets.jsonl");
    let mut file = std::fs::File::create(&path).expect("create");
    let mut lines = Vec::new();
    for (i, t) in Synthetic::new(Some(8)).take(100).enumerate() {
        let line = String::from_utf8(t.to_bytes()).expect("utf8");
        writeln!(file, "{line}").expect("write");
        lines.push(line.into_bytes());
        match i {
            9 => writeln!(file, "{{not json").expect("write"),
            19 => writeln!(file).expect("write"),
            29 => writeln!(file, r#"{{"text":"no id"}}"#).expect("write"),
            _ => {}
        }
    }
    drop(file);
    let p = path.to_str().expect("utf8 path");
    let (out, err) = w.run(&["produce", "--source", "file", "--file", p], 0);
    assert!(out.contains("produced 100 records") && out.contains("2 bad input lines skipped"), "{out}");
    assert!(err.contains(&format!("{p}:11: skipped: not a JSON tweet")), "{err}");
    assert!(err.contains(&format!("{p}:33: skipped: no tweet id")), "{err}");
    let got: BTreeSet<Vec<u8>> =
        read_all(&clients.kinesis, &outputs.stream_name).await.into_iter().map(|r| r.2).collect();
    assert_eq!(got, lines.iter().cloned().collect::<BTreeSet<_>>());

    // The same through stdin, at most 10 lines.
    let mut child = w
        .cmd(&["produce", "--source", "file", "--file", "-", "--count", "10"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(&std::fs::read(&path).expect("read")).expect("pipe");
    let out = child.wait_with_output().expect("wait");
    let (stdout, _) = common::check(&out, 0, &["produce", "--file", "-"]);
    assert!(stdout.contains("produced 10 records"), "{stdout}");
    assert_eq!(read_all(&clients.kinesis, &outputs.stream_name).await.len(), 110);

    // --rate paces the total: record n leaves n/rate seconds after the start, so 30 records at
    // 20/s take at least 29/20 s. A lower bound only: a slow machine makes a run longer, never shorter.
    let (out, _) = w.run(&["produce", "--count", "30", "--seed", "6", "--rate", "20"], 0);
    let seconds: f64 = common::number_after(&out, " in ", " s ");
    assert!(out.contains("produced 30 records") && seconds >= 1.45, "30 records at 20/s in {seconds} s: {out}");
    assert_eq!(read_all(&clients.kinesis, &outputs.stream_name).await.len(), 140);

    let (_, err) = w.run(&["produce", "--source", "file", "--endpoint-url", common::DEAD_ENDPOINT], 2);
    common::assert_error_lines(&err, "--source file needs --file", "--file PATH");
    w.run(&["destroy", "--yes"], 0);
}

/// Throttled entries are resent alone until they land, each up to 8 times; what still fails then
/// goes to the dead-letter file (exit 3).
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn throttled_entries_are_resent_and_what_never_succeeds_is_dead_lettered() {
    let w = World::new("throttle", "us-west-1");
    let clients = w.clients().await;
    w.run(&["deploy", "--shards", "2"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;

    // 30 % of entries throttled on every call: all are resent until they land, once each.
    let proxy = FaultProxy::before_moto(Faults { put_entry_failure: 0.3, ..Faults::default() }, 3);
    let (out, _) =
        w.run(&["produce", "--count", "1000", "--seed", "12", "--batch-size", "100", "--endpoint-url", &proxy.url], 0);
    assert!(out.contains("produced 1000 records") && out.contains(" 0 failed"), "{out}");
    assert!(proxy.counters.put_entries_failed.load(std::sync::atomic::Ordering::SeqCst) > 200);
    let got: Vec<Vec<u8>> = read_all(&clients.kinesis, &outputs.stream_name).await.into_iter().map(|r| r.2).collect();
    assert_eq!(got.len(), 1000, "nothing lost, nothing twice");
    let mut expected: Vec<Vec<u8>> = Synthetic::new(Some(12)).take(1000).map(|t| t.to_bytes()).collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    expected.sort();
    assert_eq!(got_sorted, expected);

    // Every entry throttled on every call: the records end in the dead-letter file, exit code 3.
    let always = FaultProxy::before_moto(Faults { put_entry_failure: 1.0, ..Faults::default() }, 4);
    let dead = w.dir.path().join("dead.jsonl");
    let args = [
        "produce",
        "--count",
        "20",
        "--seed",
        "13",
        "--endpoint-url",
        &always.url,
        "--dead-letter",
        dead.to_str().expect("utf8"),
    ];
    let (out, err) = w.run(&args, 3);
    assert!(out.contains("20 failed"), "{out}");
    common::assert_error_lines(&err, "20 of 20 records were not accepted", "dead.jsonl");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&dead)
        .expect("dead letters")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 20);
    assert!(lines.iter().all(|l| l["error_code"] == "ProvisionedThroughputExceededException"));

    // An entry is sent up to 8 times (the README's number, not the code's constant): one that
    // fails 7 times lands with its 8th send; one that fails 8 times is given up.
    const ATTEMPTS: u32 = 8;
    for (fails, code) in [(ATTEMPTS - 1, 0), (ATTEMPTS, 3)] {
        let proxy = FaultProxy::before_moto(Faults { put_entry_fails_exactly: Some(fails), ..Faults::default() }, 5);
        let seed = format!("{}", 20 + fails);
        let dead = w.dir.path().join(format!("dead-{fails}.jsonl"));
        let dead = dead.to_str().expect("utf8");
        let args = ["produce", "-n", "20", "--seed", &seed, "--endpoint-url", &proxy.url, "--dead-letter", dead];
        let (out, _) = w.run(&args, code);
        let failed = proxy.counters.put_entries_failed.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(failed, 20 * fails as usize, "each entry failed {fails} times: {out}");
        let landed = if code == 0 { "20 records" } else { "20 failed" };
        assert!(out.contains(landed), "{fails} failures each: {out}");
    }
    w.run(&["destroy", "--yes"], 0);
}

/// Bad flags and files are refused with a hint, before any AWS call (the endpoint is dead).
#[test]
fn bad_producer_input_is_refused_before_any_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("c");
    let (_, err) = common::run_plain(
        &["produce", "--as-producer", "--stack", "s1", "--endpoint-url", "http://127.0.0.1:9"],
        &[("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().expect("utf8"))],
        2,
    );
    common::assert_error_lines(&err, "no producer profile \"s1\"", "stream deploy --stack s1");
    let (_, err) = common::run_plain(
        &["produce", "--source", "file", "--file", "/no/such/file.jsonl", "--endpoint-url", "http://127.0.0.1:9"],
        &[("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("c").to_str().expect("utf8"))],
        2,
    );
    common::assert_error_lines(&err, "/no/such/file.jsonl is not a readable file", "JSON-lines file");
    let (_, err) =
        common::run_plain(&["produce", "--batch-size", "501", "--endpoint-url", common::DEAD_ENDPOINT], &[], 2);
    common::assert_error_lines(&err, "--batch-size 501 is out of range", "from 1 to 500");
    let (_, err) = common::run_plain(&["produce", "--rate", "0", "--endpoint-url", common::DEAD_ENDPOINT], &[], 2);
    common::assert_error_lines(&err, "--rate 0 is out of range", "at least 1");
    // Flags that do not go together, and what a live source needs, each named with what to do.
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, "{}\n").expect("write");
    let file = file.to_str().expect("utf8 path");
    // (flags, environment, error line, hint line)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str, &'a str);
    let refused: [Case<'_>; 5] = [
        (&["--file", file], &[], "--file is only read with --source file", "add --source file"),
        (
            &["--source", "file", "--file", file, "--kind", "iot"],
            &[],
            "--kind is only read with --source synthetic",
            "add --source synthetic",
        ),
        (
            &["--source", "x", "--track", "rust"],
            &[("X_BEARER_TOKEN", " ")],
            "--source x needs an X API bearer token",
            "export X_BEARER_TOKEN",
        ),
        (
            &["--source", "x"],
            &[("X_BEARER_TOKEN", "sekret-bearer-7")],
            "--source x needs at least one --track rule",
            "--track 'rust lang:en'",
        ),
        (
            &["--source", "bluesky", "--bluesky-url", "ftp://127.0.0.1:9/"],
            &[],
            "--bluesky-url ftp://127.0.0.1:9/: scheme ftp is not ws, wss, http or https",
            "leave it out",
        ),
    ];
    for (flags, env, what, hint) in refused {
        let args: Vec<&str> =
            ["produce"].iter().chain(flags).chain(&["--endpoint-url", common::DEAD_ENDPOINT]).copied().collect();
        let (_, err) = common::run_plain(&args, env, 2);
        common::assert_error_lines(&err, what, hint);
        assert!(!err.contains("sekret-bearer-7"), "the token is never printed: {err}");
    }
}

/// Ctrl-C while records are in flight: every record taken from the source (`made`) is either in
/// the stream or in the dead-letter file, and the stream holds exactly the first `made` tweets of
/// the seed, in order per key — nothing buffered is dropped.
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn ctrl_c_flushes_what_is_in_flight_and_exits_130() {
    let w = World::new("ctrlc", "ap-south-1");
    let clients = w.clients().await;
    w.run(&["deploy", "--shards", "2"], 0);
    let outputs = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs;
    let child = w
        .cmd(&["produce", "--count", "1000000", "--rate", "400", "--seed", "9", "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Interrupt as soon as the first records landed: later ones are still in the workers' batches.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while read_all(&clients.kinesis, &outputs.stream_name).await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "no record reached the stream");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let kill = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill runs");
    assert!(kill.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait")).await.expect("join");
    let (stdout, stderr) = common::check(&out, 130, &["produce", "(Ctrl-C)"]);
    assert!(stderr.contains("interrupted"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("summary printed");
    assert_eq!(summary["interrupted"], true);
    let (made, sent, failed) = (summary["made"].as_u64(), summary["sent"].as_u64(), summary["failed"].as_u64());
    let (made, sent, failed) = (made.expect("made"), sent.expect("sent"), failed.expect("failed"));
    assert_eq!(made, sent + failed, "every record made is sent or dead-lettered: {summary}");
    assert_eq!(failed, 0, "{summary}");
    assert!(made > 0 && made < 1_000_000, "{summary}");
    let mut landed: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for (_, key, data) in read_all(&clients.kinesis, &outputs.stream_name).await {
        landed.entry(key).or_default().push(data);
    }
    let mut expected: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for t in Synthetic::new(Some(9)).take(made as usize) {
        expected.entry(t.user.screen_name.clone()).or_default().push(t.to_bytes());
    }
    assert_eq!(landed, expected, "the stream holds exactly the first {made} tweets, in order per key");
    w.run(&["destroy", "--yes"], 0);
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_terminal_gets_a_live_line() {
    let w = World::new("live", "ca-west-1");
    w.run(&["deploy"], 0);
    // `script` (util-linux) runs the command on a pseudo-terminal, as a person would.
    let command = format!("{} produce --stack {} --region {} --count 600 --rate 300", common::bin(), w.stack, w.region);
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("AWS_SHARED_CREDENTIALS_FILE", w.credentials_file())
        .output()
        .expect("script runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let live: Vec<&str> = text.split('\r').filter(|l| l.contains("records/s") && l.contains("resent")).collect();
    assert!(live.len() >= 3, "a live line refreshed while sending: {text}");
    assert!(text.contains("produced 600 records"), "{text}");
    w.run(&["destroy", "--yes"], 0);
}

/// A partly filled batch does not wait for the source to end: once its first record has waited
/// --linger-ms it is put, plain or packed into an aggregate, while the source (stdin) stays open.
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_partly_filled_batch_leaves_after_linger_while_the_source_is_open() {
    let w = World::new("linger", "eu-north-1");
    let clients = w.clients().await;
    // One shard: the records of a run are one batch, in order.
    w.run(&["deploy", "--shards", "1"], 0);
    let stream_name = stream::stack::load(&clients, &w.stack).await.expect("outputs").outputs.stream_name;
    let mut landed = 0;
    for (seed, extra) in [(21, None), (22, Some("--aggregate"))] {
        let mut args = vec!["produce", "--source", "stdin", "--linger-ms", "200", "--output", "json"];
        args.extend(extra);
        let mut child = w
            .cmd(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stdin = child.stdin.take().expect("stdin");
        let tweets: Vec<Vec<u8>> = Synthetic::new(Some(seed)).take(3).map(|t| t.to_bytes()).collect();
        for t in &tweets {
            stdin.write_all(t).and_then(|()| stdin.write_all(b"\n")).expect("pipe");
        }
        stdin.flush().expect("flush");
        // Three records of a batch of 500: only the linger sends them before stdin closes.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let (fresh, got) = loop {
            let fresh = read_all(&clients.kinesis, &stream_name).await.split_off(landed);
            let mut got = Vec::new();
            for (_, _, data) in &fresh {
                if stream::kpl::is_aggregate(data) {
                    got.extend(stream::kpl::deaggregate(data).expect("our aggregate").iter().map(|s| s.data.to_vec()));
                } else {
                    got.push(data.clone());
                }
            }
            if got.len() >= tweets.len() {
                break (fresh, got);
            }
            assert!(std::time::Instant::now() < deadline, "{extra:?}: {} of 3 put while stdin stayed open", got.len());
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert!(child.try_wait().expect("child state").is_none(), "{extra:?}: the producer is still reading stdin");
        assert_eq!(got, tweets, "{extra:?}: the three lines, whole and in order");
        assert_eq!(fresh.len(), if extra.is_some() { 1 } else { 3 }, "{extra:?}: one aggregate, or three records");
        landed += fresh.len();
        drop(stdin);
        let out = child.wait_with_output().expect("wait");
        let (stdout, _) = common::check(&out, 0, &args);
        let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("summary printed");
        assert_eq!((summary["sent"].as_u64(), summary["failed"].as_u64()), (Some(3), Some(0)), "{summary}");
    }
    w.run(&["destroy", "--yes"], 0);
}
